/*
 * test-policy.c — the egress rules without a daemon: parsing (and the
 * error text that names the key and rule), matching by uid and gid,
 * inheritance from the default rule, each request check, and address
 * classes for every family and spelling.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "hconn_error.h"
#include "policy.h"

static struct policy *
parse(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, 0, &jerr);
    char err[512] = "";
    struct policy *p;

    assert_non_null(v);
    p = policy_parse(v, err, sizeof err);
    json_decref(v);
    if (p == NULL)
        fail_msg("policy_parse: %s", err);
    return p;
}

/* Asserts that text is refused with an error containing needle. */
static void
assert_refused(const char *text, const char *needle)
{
    json_error_t jerr;
    json_t *v = json_loads(text, 0, &jerr);
    char err[512] = "";
    struct policy *p;

    assert_non_null(v);
    p = policy_parse(v, err, sizeof err);
    json_decref(v);
    if (p != NULL) {
        policy_free(p);
        fail_msg("accepted: %s", text);
    }
    if (strstr(err, needle) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", err, needle);
}

static int
check(const struct policy_rule *r, bool tls, const char *host, uint16_t port,
      char *why, size_t len)
{
    struct policy_request req = {.tls = tls, .host = host, .port = port};

    return policy_check_request(r, &req, why, len);
}

static struct sockaddr_storage
addr(const char *text)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof ss);
    if (strchr(text, ':') != NULL) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

        in6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;

        in->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, text, &in->sin_addr), 1);
    }
    return ss;
}

static enum policy_addr_class
class_of(const char *text)
{
    struct sockaddr_storage ss = addr(text);

    return policy_addr_class((struct sockaddr *)&ss);
}

static void
test_builtin_allows_everything(void **state)
{
    const struct policy_rule *r = policy_match(NULL, 1000, 1000);
    struct policy_addr_filter f;
    struct policy_request req = {.tls = true,
                                 .host = "127.0.0.1",
                                 .port = 22,
                                 .proxy_host = "10.0.0.1",
                                 .proxy_port = 3128,
                                 .insecure = true,
                                 .client_cert = true};
    char why[256];

    assert_int_equal(policy_check_request(r, &req, why, sizeof why), 0);
    assert_false(policy_addr_filter(r, &f));
}

static void
test_hosts_exact_suffix_any(void **state)
{
    struct policy *p =
        parse("{\"default\": {\"hosts\": [\"example.com\", \"*.corp.test\"]}}");
    const struct policy_rule *r = policy_match(p, 0, 0);
    char why[256];

    assert_int_equal(check(r, false, "example.com", 80, why, sizeof why), 0);
    assert_int_equal(check(r, false, "EXAMPLE.com.", 80, why, sizeof why), 0);
    assert_int_equal(check(r, false, "a.corp.test", 80, why, sizeof why), 0);
    assert_int_equal(check(r, false, "a.b.CORP.test", 80, why, sizeof why), 0);
    /* *.suffix: subdomains only; no partial labels. */
    assert_int_equal(check(r, false, "corp.test", 80, why, sizeof why),
                     HCONN_EDENIED);
    assert_int_equal(check(r, false, "evilcorp.test", 80, why, sizeof why),
                     HCONN_EDENIED);
    assert_int_equal(check(r, false, "www.example.com", 80, why, sizeof why),
                     HCONN_EDENIED);
    assert_non_null(strstr(why, "rule default"));
    assert_non_null(strstr(why, "\"www.example.com\""));
    assert_int_equal(check(r, false, "example.com.evil", 80, why, sizeof why),
                     HCONN_EDENIED);
    policy_free(p);

    p = parse("{\"default\": {\"hosts\": [\"*\"]}}");
    assert_int_equal(
        check(policy_match(p, 0, 0), false, "anything", 80, why, sizeof why),
        0);
    policy_free(p);
}

static void
test_ports_and_schemes(void **state)
{
    struct policy *p = parse("{\"default\": {\"schemes\": [\"https\"], "
                             "\"ports\": [443, \"8000-8010\"]}}");
    const struct policy_rule *r = policy_match(p, 0, 0);
    char why[256];

    assert_int_equal(check(r, true, "h", 443, why, sizeof why), 0);
    assert_int_equal(check(r, true, "h", 8000, why, sizeof why), 0);
    assert_int_equal(check(r, true, "h", 8010, why, sizeof why), 0);
    assert_int_equal(check(r, true, "h", 8011, why, sizeof why), HCONN_EDENIED);
    assert_non_null(strstr(why, "port 8011"));
    assert_int_equal(check(r, false, "h", 443, why, sizeof why), HCONN_EDENIED);
    assert_non_null(strstr(why, "scheme http "));
    policy_free(p);
}

static void
test_rules_match_by_uid_then_gid_and_inherit(void **state)
{
    struct policy *p =
        parse("{\"default\": {\"ports\": [443], \"loopback\": false},"
              " \"rules\": ["
              "  {\"name\": \"dev\", \"uids\": [1000], \"ports\": [8080],"
              "   \"loopback\": true},"
              "  {\"gids\": [50, 1000], \"insecure_tls\": false}]}");
    const struct policy_rule *dev = policy_match(p, 1000, 1000);
    const struct policy_rule *grp = policy_match(p, 7, 50);
    const struct policy_rule *def = policy_match(p, 7, 7);
    struct policy_request insecure = {
        .host = "h", .port = 443, .insecure = true};
    struct policy_addr_filter f;
    char why[256];

    assert_string_equal(dev->name, "rules[0] \"dev\"");
    assert_string_equal(grp->name, "rules[1]");
    assert_string_equal(def->name, "default");
    /* A listed rule replaces the default's list; others inherit it. */
    assert_int_equal(check(dev, false, "h", 8080, why, sizeof why), 0);
    assert_int_equal(check(dev, false, "h", 443, why, sizeof why),
                     HCONN_EDENIED);
    assert_int_equal(check(grp, false, "h", 443, why, sizeof why), 0);
    assert_int_equal(check(grp, false, "h", 8080, why, sizeof why),
                     HCONN_EDENIED);
    assert_int_equal(policy_check_request(grp, &insecure, why, sizeof why),
                     HCONN_EDENIED);
    assert_non_null(strstr(why, "rules[1]"));
    assert_int_equal(policy_check_request(def, &insecure, why, sizeof why), 0);
    /* Booleans too: loopback off by default, back on for dev. */
    assert_false(policy_addr_filter(dev, &f));
    assert_true(policy_addr_filter(grp, &f));
    assert_int_equal(f.deny, POLICY_ADDR_LOOPBACK);
    policy_free(p);
}

static void
test_proxies(void **state)
{
    struct policy *p = parse("{\"default\": {\"proxies\": "
                             "[\"proxy.corp:3128\", \"*.corp.test:*\", "
                             "\"[::1]:8080\"]}}");
    const struct policy_rule *r = policy_match(p, 0, 0);
    struct policy_request req = {.host = "h", .port = 80};
    char why[256];

    req.proxy_host = "proxy.corp";
    req.proxy_port = 3128;
    assert_int_equal(policy_check_request(r, &req, why, sizeof why), 0);
    req.proxy_host = "x.corp.test";
    req.proxy_port = 1;
    assert_int_equal(policy_check_request(r, &req, why, sizeof why), 0);
    req.proxy_host = "::1";
    req.proxy_port = 8080;
    assert_int_equal(policy_check_request(r, &req, why, sizeof why), 0);
    req.proxy_port = 8081;
    assert_int_equal(policy_check_request(r, &req, why, sizeof why),
                     HCONN_EDENIED);
    assert_non_null(strstr(why, "proxy [::1]:8081"));
    req.proxy_host = "proxy.corp";
    req.proxy_port = 3129;
    assert_int_equal(policy_check_request(r, &req, why, sizeof why),
                     HCONN_EDENIED);
    /* The daemon's own default proxy is the administrator's choice. */
    req.proxy_is_default = true;
    assert_int_equal(policy_check_request(r, &req, why, sizeof why), 0);
    policy_free(p);

    p = parse("{\"default\": {\"proxies\": [\"*\"]}}");
    req.proxy_is_default = false;
    assert_int_equal(
        policy_check_request(policy_match(p, 0, 0), &req, why, sizeof why), 0);
    policy_free(p);
}

static void
test_address_classes(void **state)
{
    assert_int_equal(class_of("127.0.0.1"), POLICY_ADDR_LOOPBACK);
    assert_int_equal(class_of("127.255.1.2"), POLICY_ADDR_LOOPBACK);
    assert_int_equal(class_of("0.0.0.0"), POLICY_ADDR_LOOPBACK);
    assert_int_equal(class_of("::1"), POLICY_ADDR_LOOPBACK);
    assert_int_equal(class_of("::"), POLICY_ADDR_LOOPBACK);
    assert_int_equal(class_of("::ffff:127.0.0.1"), POLICY_ADDR_LOOPBACK);
    assert_int_equal(class_of("10.1.2.3"), POLICY_ADDR_PRIVATE);
    assert_int_equal(class_of("172.16.0.1"), POLICY_ADDR_PRIVATE);
    assert_int_equal(class_of("172.31.255.255"), POLICY_ADDR_PRIVATE);
    assert_int_equal(class_of("172.32.0.1"), POLICY_ADDR_PUBLIC);
    assert_int_equal(class_of("172.15.255.255"), POLICY_ADDR_PUBLIC);
    assert_int_equal(class_of("192.168.1.1"), POLICY_ADDR_PRIVATE);
    assert_int_equal(class_of("100.64.0.1"), POLICY_ADDR_PRIVATE);
    assert_int_equal(class_of("100.128.0.1"), POLICY_ADDR_PUBLIC);
    assert_int_equal(class_of("fd00::1"), POLICY_ADDR_PRIVATE);
    assert_int_equal(class_of("::ffff:10.0.0.1"), POLICY_ADDR_PRIVATE);
    assert_int_equal(class_of("169.254.169.254"), POLICY_ADDR_LINK_LOCAL);
    assert_int_equal(class_of("fe80::1"), POLICY_ADDR_LINK_LOCAL);
    assert_int_equal(class_of("93.184.216.34"), POLICY_ADDR_PUBLIC);
    assert_int_equal(class_of("2606:4700::1111"), POLICY_ADDR_PUBLIC);
}

/* IPv6 forms that carry an IPv4 address count as that address: the
 * packets end up there. */
static void
test_embedded_ipv4_counts_as_itself(void **state)
{
    /* NAT64 (well-known prefix) */
    assert_int_equal(class_of("64:ff9b::127.0.0.1"), POLICY_ADDR_LOOPBACK);
    assert_int_equal(class_of("64:ff9b::10.0.0.1"), POLICY_ADDR_PRIVATE);
    assert_int_equal(class_of("64:ff9b::93.184.216.34"), POLICY_ADDR_PUBLIC);
    assert_int_equal(class_of("64:ff9b:1::1"), POLICY_ADDR_PRIVATE);
    /* 6to4: 2002:AABB:CCDD:: */
    assert_int_equal(class_of("2002:7f00:1::1"), POLICY_ADDR_LOOPBACK);
    assert_int_equal(class_of("2002:a9fe:a9fe::"), POLICY_ADDR_LINK_LOCAL);
    assert_int_equal(class_of("2002:5db8:d822::1"), POLICY_ADDR_PUBLIC);
    /* SIIT ::ffff:0:a.b.c.d, mapped, compatible */
    assert_int_equal(class_of("::ffff:0:127.0.0.1"), POLICY_ADDR_LOOPBACK);
    assert_int_equal(class_of("::ffff:0:192.168.0.1"), POLICY_ADDR_PRIVATE);
    assert_int_equal(class_of("::127.0.0.1"), POLICY_ADDR_LOOPBACK);
    assert_int_equal(class_of("::10.1.1.1"), POLICY_ADDR_PRIVATE);
    assert_int_equal(class_of("::ffff:169.254.1.1"), POLICY_ADDR_LINK_LOCAL);
    /* Teredo: the client's address, inverted, in the last 32 bits */
    assert_int_equal(class_of("2001:0:4136:e378:8000:63bf:80ff:fffe"),
                     POLICY_ADDR_LOOPBACK);
}

/* The other special-purpose ranges are not the public internet. */
static void
test_special_ranges_are_private(void **state)
{
    static const char *const ranges[] = {
        "192.0.2.1",    "198.51.100.7",    "203.0.113.9", "198.18.0.1",
        "198.19.255.1", "192.0.0.8",       "224.0.0.1",   "239.1.1.1",
        "240.0.0.1",    "255.255.255.255", "192.88.99.1", "2001:db8::1",
        "ff02::1",      "ff0e::1",         "fec0::1",     "100::1",
        "2001:2::1",
    };

    for (size_t i = 0; i < sizeof ranges / sizeof *ranges; i++) {
        if (class_of(ranges[i]) != POLICY_ADDR_PRIVATE)
            fail_msg("%s is not private", ranges[i]);
    }
    assert_int_equal(class_of("198.20.0.1"), POLICY_ADDR_PUBLIC);
    assert_int_equal(class_of("223.255.255.255"), POLICY_ADDR_PUBLIC);
}

/* Whether a rule restricts destinations at all, lists inherited. */
static void
test_restricts_destinations(void **state)
{
    struct policy *p = parse("{\"rules\": [{\"uids\": [1]},"
                             " {\"uids\": [2], \"ports\": [443]}]}");

    assert_false(policy_restricts_destinations(policy_match(NULL, 0, 0)));
    assert_false(policy_restricts_destinations(policy_match(p, 1, 1)));
    assert_true(policy_restricts_destinations(policy_match(p, 2, 2)));
    policy_free(p);
    p = parse("{\"default\": {\"proxies\": []}, \"rules\": [{\"uids\": [1]}]}");
    assert_true(policy_restricts_destinations(policy_match(p, 1, 1)));
    policy_free(p);
    p = parse("{\"default\": {\"link_local\": false}}");
    assert_true(policy_restricts_destinations(policy_match(p, 1, 1)));
    policy_free(p);
}

/* The machine's own addresses count as loopback where loopback is
 * refused, whatever their class by the table. */
static void
test_own_addresses_count_as_loopback(void **state)
{
    struct policy *p = parse("{\"default\": {\"loopback\": false}}");
    struct sockaddr_storage own[2] = {addr("198.51.100.7"), addr("2606::7")};
    struct policy_own_addrs list = {own, 2};
    struct policy_addr_filter f;
    struct sockaddr_storage a;
    char why[256];

    assert_true(policy_addr_filter(policy_match(p, 1, 1), &f));
    f.own = &list;
    a = addr("198.51.100.7");
    assert_int_equal(
        policy_check_address(&f, (struct sockaddr *)&a, why, sizeof why),
        HCONN_EDENIED);
    assert_string_equal(why, "policy rule default: address 198.51.100.7 is "
                             "this machine's own (loopback), which is not "
                             "allowed");
    a = addr("::ffff:198.51.100.7");
    assert_int_equal(
        policy_check_address(&f, (struct sockaddr *)&a, why, sizeof why),
        HCONN_EDENIED);
    a = addr("2606::7");
    assert_int_equal(
        policy_check_address(&f, (struct sockaddr *)&a, why, sizeof why),
        HCONN_EDENIED);
    a = addr("198.51.100.8");
    assert_int_equal(
        policy_check_address(&f, (struct sockaddr *)&a, why, sizeof why), 0);
    policy_free(p);
}

static void
test_check_address_names_rule_and_address(void **state)
{
    struct policy *p = parse("{\"rules\": [{\"name\": \"box\", \"uids\": [5],"
                             " \"private\": false, \"link_local\": false}]}");
    struct policy_addr_filter f;
    struct sockaddr_storage a;
    char why[256];

    assert_true(policy_addr_filter(policy_match(p, 5, 5), &f));
    a = addr("10.0.0.7");
    assert_int_equal(
        policy_check_address_cb((struct sockaddr *)&a, &f, why, sizeof why),
        HCONN_EDENIED);
    assert_non_null(strstr(why, "rules[0] \"box\""));
    assert_non_null(strstr(why, "10.0.0.7 is private"));
    a = addr("fe80::2");
    assert_int_equal(
        policy_check_address(&f, (struct sockaddr *)&a, why, sizeof why),
        HCONN_EDENIED);
    assert_non_null(strstr(why, "link-local"));
    a = addr("127.0.0.1");
    assert_int_equal(
        policy_check_address(&f, (struct sockaddr *)&a, why, sizeof why), 0);
    a = addr("93.184.216.34");
    assert_int_equal(
        policy_check_address(&f, (struct sockaddr *)&a, why, sizeof why), 0);
    policy_free(p);
}

/* IPv6 literals in host and proxy patterns, bare or in brackets, match
 * the address however it is spelt, and nothing else. */
static void
test_ipv6_host_patterns(void **state)
{
    struct policy *p = parse("{\"default\": {\"hosts\": [\"[::1]\", "
                             "\"2001:db8::10\"], \"proxies\": "
                             "[\"[fd00::1]:3128\"]}}");
    const struct policy_rule *r = policy_match(p, 1000, 1000);
    struct policy_request req = {.host = "h", .port = 80};
    char why[256];

    (void)state;
    assert_int_equal(check(r, false, "::1", 80, why, sizeof why), 0);
    assert_int_equal(check(r, false, "0:0:0:0:0:0:0:1", 80, why, sizeof why),
                     0);
    assert_int_equal(check(r, false, "2001:DB8:0::10", 80, why, sizeof why), 0);
    assert_int_equal(check(r, false, "::2", 80, why, sizeof why),
                     HCONN_EDENIED);
    assert_int_equal(check(r, false, "127.0.0.1", 80, why, sizeof why),
                     HCONN_EDENIED);
    req.host = "::1";
    req.proxy_host = "fd00:0::1";
    req.proxy_port = 3128;
    assert_int_equal(policy_check_request(r, &req, why, sizeof why), 0);
    req.proxy_host = "fd00::2";
    assert_int_equal(policy_check_request(r, &req, why, sizeof why),
                     HCONN_EDENIED);
    policy_free(p);
    assert_refused("{\"default\": {\"hosts\": [\"[::1\"]}}",
                   "policy.default.hosts[0]");
}

/* "source_address": the rule's say, and privileged ports for root only. */
static void
test_source_address(void **state)
{
    struct policy *p = parse("{\"default\": {\"source_address\": false}, "
                             "\"rules\": [{\"uids\": [1000], "
                             "\"source_address\": true}, "
                             "{\"uids\": [1001]}]}");
    char why[256];

    (void)state;
    assert_int_equal(policy_check_source(policy_match(p, 2000, 2000), "::1", 0,
                                         2000, why, sizeof why),
                     HCONN_EDENIED);
    assert_non_null(strstr(why, "rule default"));
    /* Inherited from the default rule. */
    assert_int_equal(policy_check_source(policy_match(p, 1001, 1001), "", 4000,
                                         1001, why, sizeof why),
                     HCONN_EDENIED);
    assert_int_equal(policy_check_source(policy_match(p, 1000, 1000),
                                         "127.0.0.1", 4000, 1000, why,
                                         sizeof why),
                     0);
    assert_int_equal(policy_check_source(policy_match(p, 1000, 1000), "", 80,
                                         1000, why, sizeof why),
                     HCONN_EDENIED);
    assert_non_null(strstr(why, "privileged"));
    policy_free(p);
    /* The built-in rule allows it, a low port to root only. */
    assert_int_equal(policy_check_source(policy_match(NULL, 0, 0), "", 80, 0,
                                         why, sizeof why),
                     0);
    assert_int_equal(policy_check_source(policy_match(NULL, 5, 5), "", 80, 5,
                                         why, sizeof why),
                     HCONN_EDENIED);
}

static void
test_errors_name_key_and_rule(void **state)
{
    assert_refused("[]", "policy: must be an object");
    assert_refused("{\"defaults\": {}}", "unknown key \"defaults\"");
    assert_refused("{\"default\": {\"uids\": [1]}}",
                   "policy.default: unknown key \"uids\"");
    assert_refused("{\"default\": {\"ports\": [0]}}",
                   "policy.default.ports[0]");
    assert_refused("{\"default\": {\"ports\": [\"9-3\"]}}",
                   "policy.default.ports[0]");
    assert_refused("{\"default\": {\"schemes\": [\"ftp\"]}}",
                   "policy.default.schemes[0]");
    assert_refused("{\"default\": {\"hosts\": [\"a b\"]}}",
                   "policy.default.hosts[0]");
    assert_refused("{\"default\": {\"proxies\": [\"p\"]}}",
                   "policy.default.proxies[0]");
    assert_refused("{\"default\": {\"loopback\": 1}}",
                   "policy.default.loopback: must be true or false");
    assert_refused("{\"rules\": [{\"uids\": [1]}, {\"uids\": [\"root\"]}]}",
                   "policy.rules[1].uids[0]");
    assert_refused("{\"rules\": [{\"uids\": [1]}, {\"gids\": []}]}",
                   "policy.rules[1]: a rule needs");
    assert_refused("{\"rules\": [{\"uids\": [1], \"host\": []}]}",
                   "policy.rules[0]: unknown key \"host\"");
    assert_refused("{\"rules\": {}}", "policy.rules: must be an array");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_allows_everything),
        cmocka_unit_test(test_ipv6_host_patterns),
        cmocka_unit_test(test_source_address),
        cmocka_unit_test(test_hosts_exact_suffix_any),
        cmocka_unit_test(test_ports_and_schemes),
        cmocka_unit_test(test_rules_match_by_uid_then_gid_and_inherit),
        cmocka_unit_test(test_proxies),
        cmocka_unit_test(test_address_classes),
        cmocka_unit_test(test_embedded_ipv4_counts_as_itself),
        cmocka_unit_test(test_special_ranges_are_private),
        cmocka_unit_test(test_own_addresses_count_as_loopback),
        cmocka_unit_test(test_restricts_destinations),
        cmocka_unit_test(test_check_address_names_rule_and_address),
        cmocka_unit_test(test_errors_name_key_and_rule),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
