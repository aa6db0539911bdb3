/*
 * test-url.c — the URL and "host:port" parsers (proto/url.c): good and bad
 * URLs in tables (schemes, IPv4/IPv6/names, ports, userinfo, fragments,
 * query-only targets, control bytes), through url_parse and through
 * url_split, which copies nothing; url_parse_authority as
 * http.client's HTTPConnection._get_hostport, and url_check_host.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hconn_error.h"
#include "url.h"

/* Asserts that err mentions want, printing both when it does not. */
static void
assert_err_has(const char *err, const char *want)
{
    if (strstr(err, want) == NULL) {
        print_error("error \"%s\" does not mention \"%s\"\n", err, want);
        fail();
    }
}

struct good_url {
    const char *url;
    bool tls;
    const char *host;
    uint16_t port;
    bool port_given;
    const char *target;
};

static const struct good_url good_urls[] = {
    {"http://example.com", false, "example.com", 80, false, "/"},
    {"https://example.com/", true, "example.com", 443, false, "/"},
    {"HTTP://Example.COM/a/b?c=d", false, "Example.COM", 80, false, "/a/b?c=d"},
    {"HtTpS://h:8443/x", true, "h", 8443, true, "/x"},
    {"http://h:/x", false, "h", 80, false, "/x"},
    {"https://h:", true, "h", 443, false, "/"},
    {"http://127.0.0.1:8080/", false, "127.0.0.1", 8080, true, "/"},
    {"http://h:0080/", false, "h", 80, true, "/"},
    {"http://h:1/", false, "h", 1, true, "/"},
    {"http://h:65535/", false, "h", 65535, true, "/"},
    {"http://[::1]/", false, "::1", 80, false, "/"},
    {"http://[::1]:8080/p", false, "::1", 8080, true, "/p"},
    {"https://[2001:DB8::1]", true, "2001:DB8::1", 443, false, "/"},
    {"http://[::ffff:192.0.2.1]:81", false, "::ffff:192.0.2.1", 81, true, "/"},
    {"http://[::1]:/", false, "::1", 80, false, "/"},
    {"http://h/p#frag", false, "h", 80, false, "/p"},
    {"http://h#frag", false, "h", 80, false, "/"},
    {"http://h/#", false, "h", 80, false, "/"},
    {"http://h?q=1", false, "h", 80, false, "/?q=1"},
    {"http://h:81?q", false, "h", 81, true, "/?q"},
    {"http://h?q#f", false, "h", 80, false, "/?q"},
    {"http://h?", false, "h", 80, false, "/?"},
    {"http://h/p?q=a/b#f?x", false, "h", 80, false, "/p?q=a/b"},
    {"http://h//double//slash", false, "h", 80, false, "//double//slash"},
    {"http://my_host-1.local./", false, "my_host-1.local.", 80, false, "/"},
    {"http://h/a%20b?x=%00", false, "h", 80, false, "/a%20b?x=%00"},
    {"http://h/caf\xc3\xa9", false, "h", 80, false, "/caf\xc3\xa9"},
    {"http://h/p@q:r", false, "h", 80, false, "/p@q:r"},
};

/* url_split's spans say what url_parse copied: they lie in the URL, and
 * the target is "/" then the path when slash. */
static void
check_split(const char *url, const struct url *want)
{
    struct url_parts p;
    char err[256], target[256];
    size_t n = strlen(url);

    assert_int_equal(url_split(url, &p, err, sizeof(err)), 0);
    assert_int_equal(p.tls, want->tls);
    assert_int_equal(p.port, want->port);
    assert_int_equal(p.port_given, want->port_given);
    assert_true(p.host >= url && p.host + p.host_len <= url + n);
    assert_true(p.path >= url && p.path + p.path_len <= url + n);
    assert_int_equal(p.host_len, strlen(want->host));
    assert_memory_equal(p.host, want->host, p.host_len);
    assert_true(p.slash + p.path_len < sizeof(target));
    target[0] = '/';
    memcpy(target + p.slash, p.path, p.path_len);
    target[p.slash + p.path_len] = '\0';
    assert_string_equal(target, want->target);
}

/* Good URLs split into the expected parts, by both parsers. */
static void
test_good_urls(void **state)
{
    static struct url u;
    char err[256];

    (void)state;
    for (size_t i = 0; i < sizeof(good_urls) / sizeof(good_urls[0]); i++) {
        const struct good_url *t = &good_urls[i];
        int rc = url_parse(t->url, &u, err, sizeof(err));

        if (rc != 0)
            print_error("%s: %s\n", t->url, err);
        assert_int_equal(rc, 0);
        assert_int_equal(u.tls, t->tls);
        assert_string_equal(u.host, t->host);
        assert_int_equal(u.port, t->port);
        assert_int_equal(u.port_given, t->port_given);
        assert_string_equal(u.target, t->target);
        check_split(t->url, &u);
    }
}

struct bad_url {
    const char *url;
    const char *err; /* a part of the message */
};

static const struct bad_url bad_urls[] = {
    {"", "http:// or https://"},
    {"ftp://h/", "http:// or https://"},
    {"example.com/", "http:// or https://"},
    {"http:/h/", "http:// or https://"},
    {"httpx://h/", "http:// or https://"},
    {"http://", "empty host"},
    {"http:///path", "empty host"},
    {"http://?q", "empty host"},
    {"http://:80/", "empty host"},
    {"http://user@h/", "userinfo"},
    {"http://user:pw@h:80/", "userinfo"},
    {"http://@h/", "userinfo"},
    {"http://h:abc/", "nonnumeric port: 'abc'"},
    {"http://h:-1/", "nonnumeric port"},
    {"http://h:+80/", "nonnumeric port"},
    {"http://h:8o/", "nonnumeric port"},
    {"http://h:0/", "port out of range"},
    {"http://h:65536/", "port out of range"},
    {"http://h:99999999999999999999999/", "port out of range"},
    {"http://[::1/", "missing ']'"},
    {"http://[]/", "empty IPv6 address"},
    {"http://[fe80::1%25eth0]/", "zone"},
    {"http://[::g]/", "0x67"},
    {"http://[1:2:3]/", "invalid IPv6 address"},
    {"http://[1::2::3]/", "invalid IPv6 address"},
    {"http://[example.com]/", "not an IPv6 address"},
    {"http://[::1]x/", "after ']'"},
    {"http://[::1]]/", "after ']'"},
    {"http://::1/", "more than one ':'"},
    {"http://h:80:90/", "more than one ':'"},
    {"http://ex!ample.com/", "0x21"},
    {"http://ex\xc3\xa4mple.com/", "0xc3"},
    {"http://h h/", "0x20 at position 8"},
    {"http://h/\n", "0x0a at position 9"},
    {"http://h/a b", "0x20 at position 10"},
    {"http://h/\x7f", "0x7f at position 9"},
    {"http://h/\r\nHost: evil", "0x0d at position 9"},
    {"http://h\t/", "0x09 at position 8"},
    {" http://h/", "0x20 at position 0"},
    {"http://h/\x01", "0x01"},
};

/* Bad URLs are refused with invalid_url and a message naming why. */
static void
test_bad_urls(void **state)
{
    static struct url u;
    char err[256];

    (void)state;
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        const struct bad_url *t = &bad_urls[i];

        struct url_parts p;

        err[0] = '\0';
        if (url_parse(t->url, &u, err, sizeof(err)) != HCONN_EINVALID_URL) {
            print_error("accepted: \"%s\"\n", t->url);
            fail();
        }
        assert_err_has(err, t->err);
        err[0] = '\0';
        assert_int_equal(url_split(t->url, &p, err, sizeof(err)),
                         HCONN_EINVALID_URL);
        assert_err_has(err, t->err);
    }
    assert_int_equal(url_parse(NULL, &u, err, sizeof(err)), HCONN_EINVALID_URL);
    /* No err buffer: still the code, no write. */
    assert_int_equal(url_parse("ftp://h", &u, NULL, 0), HCONN_EINVALID_URL);
}

/* The space and control check runs a word at a time: in URLs of every
 * length to 40, a control byte, a space or DEL at every position is
 * refused naming that byte and position (the first when there are two),
 * and the bytes around them (0x21, 0x7e, 0x80, 0xff) pass it. */
static void
test_space_edges(void **state)
{
    static const unsigned char bad[] = {0x01, 0x09, 0x1f, 0x20, 0x7f};
    static const unsigned char good[] = {0x21, 0x7e, 0x80, 0xff};
    char url[48], err[256], want[64];
    struct url_parts p;

    (void)state;
    for (size_t len = 10; len <= 40; len++) {
        memcpy(url, "http://h/", 9);
        for (size_t i = 9; i < len; i++)
            url[i] = (char)('a' + i % 26);
        url[len] = '\0';
        assert_int_equal(url_splitn(url, len, &p, err, sizeof err), 0);
        for (size_t at = 0; at < len; at++) {
            for (size_t k = 0; k < sizeof bad; k++) {
                char keep = url[at], next = url[len - 1];

                url[at] = (char)bad[k];
                if (at + 1 < len)
                    url[len - 1] = (char)bad[(k + 1) % sizeof bad];
                snprintf(want, sizeof want,
                         "control or space byte 0x%02x at position %zu", bad[k],
                         at);
                err[0] = '\0';
                assert_int_equal(url_split(url, &p, err, sizeof err),
                                 HCONN_EINVALID_URL);
                assert_string_equal(err, want);
                url[at] = keep;
                url[len - 1] = next;
            }
            for (size_t k = 0; at >= 9 && k < sizeof good; k++) {
                char keep = url[at];

                url[at] = (char)good[k];
                assert_int_equal(url_split(url, &p, err, sizeof err), 0);
                assert_int_equal(p.path_len, len - 8);
                url[at] = keep;
            }
        }
    }
}

/* The authority's end is found a word at a time: hosts of every length
 * to 24 (":80" after some), ended by '/', '?', '#' or the URL's end, with
 * or without a '@' before it. */
static void
test_authority_edges(void **state)
{
    static const char ends[] = {'/', '?', '#', '\0'};
    char url[64], err[256];
    struct url_parts p;

    (void)state;
    for (size_t len = 1; len <= 24; len++) {
        for (size_t e = 0; e < sizeof ends; e++) {
            for (int kind = 0; kind < 3; kind++) {
                size_t n = 7;

                memcpy(url, "http://", 7);
                for (size_t i = 0; i < len; i++)
                    url[n++] = (char)('a' + i % 26);
                if (kind == 1) {
                    memcpy(url + n, ":80", 3);
                    n += 3;
                } else if (kind == 2) {
                    url[7 + len / 2] = '@';
                }
                /* The end, then "x" after it (a path, query or fragment). */
                url[n] = ends[e];
                if (ends[e] != '\0')
                    memcpy(url + n + 1, "x", 2);
                err[0] = '\0';
                if (kind == 2) {
                    assert_int_equal(url_split(url, &p, err, sizeof err),
                                     HCONN_EINVALID_URL);
                    assert_string_equal(err, "userinfo is not supported");
                    continue;
                }
                assert_int_equal(url_split(url, &p, err, sizeof err), 0);
                assert_int_equal(p.host_len, len);
                assert_ptr_equal(p.host, url + 7);
                assert_int_equal(p.port, 80);
                assert_int_equal(p.port_given, kind == 1);
                assert_ptr_equal(p.path, url + n);
                assert_int_equal(p.path_len,
                                 ends[e] == '/' || ends[e] == '?' ? 2 : 0);
            }
        }
    }
}

/* Every byte value in a host name, at its start, middle and end, with
 * and without a port after it: only letters, digits, '-', '.' and '_'
 * pass, and the error names the byte and its position. */
static void
test_host_bytes(void **state)
{
    char host[8], url[32], err[256], want[64];
    struct url_parts p;

    (void)state;
    for (unsigned c = 1; c < 256; c++) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';

        for (size_t at = 0; at < 3; at++) {
            memcpy(host, "ab", 3);
            host[2] = '\0';
            memmove(host + at + 1, host + at, 3 - at);
            host[at] = (char)c;
            snprintf(want, sizeof want,
                     "invalid byte 0x%02x in host at position %zu", c, at);
            err[0] = '\0';
            if (c != ':') {
                assert_int_equal(url_check_host(host, err, sizeof err),
                                 ok ? 0 : HCONN_EINVALID_URL);
                if (!ok)
                    assert_string_equal(err, want);
            }
            /* In a URL the delimiters and spaces are refused before,
             * and a '[' first opens an IPv6 literal. */
            if (c <= 0x20 || c == 0x7f || c == '/' || c == '?' || c == '#' ||
                c == '@' || c == ':' || (c == '[' && at == 0))
                continue;
            for (int port = 0; port < 2; port++) {
                snprintf(url, sizeof url, "http://%s%s/", host,
                         port ? ":8080" : "");
                err[0] = '\0';
                assert_int_equal(url_split(url, &p, err, sizeof err),
                                 ok ? 0 : HCONN_EINVALID_URL);
                if (!ok)
                    assert_string_equal(err, want);
            }
        }
    }
}

/* The scheme, in any case, and what is not quite one. */
static void
test_scheme_edges(void **state)
{
    static const struct {
        const char *url;
        int rc;
        bool tls;
    } cases[] = {
        {"http://h", 0, false},
        {"HTTP://h", 0, false},
        {"hTtP://h", 0, false},
        {"https://h", 0, true},
        {"HTTPS://h", 0, true},
        {"httpS://h", 0, true},
        {"http://", HCONN_EINVALID_URL, false},  /* empty host */
        {"https://", HCONN_EINVALID_URL, true},  /* empty host */
        {"http:/", HCONN_EINVALID_URL, false},   /* 6 bytes */
        {"http:/h", HCONN_EINVALID_URL, false},  /* 7 bytes */
        {"https:/h", HCONN_EINVALID_URL, false}, /* 8 bytes */
        {"http", HCONN_EINVALID_URL, false},
        {"", HCONN_EINVALID_URL, false},
        {"httpx://h", HCONN_EINVALID_URL, false},
        {"htt://h", HCONN_EINVALID_URL, false},
        {"hxxp://h", HCONN_EINVALID_URL, false},
        {"(TTP://h", HCONN_EINVALID_URL, false}, /* 0x28 | 0x20 != 'h' */
        {"http\x1a//h", HCONN_EINVALID_URL, false},
        {"http:\x0f/h", HCONN_EINVALID_URL, false},
        {"https;//h", HCONN_EINVALID_URL, false},
        {"http3://h", HCONN_EINVALID_URL, false},
        {"ftp://h", HCONN_EINVALID_URL, false},
    };
    char err[256];
    struct url_parts p;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        err[0] = '\0';
        if (url_split(cases[i].url, &p, err, sizeof err) != cases[i].rc) {
            print_error("\"%s\": %s\n", cases[i].url, err);
            fail();
        }
        assert_int_equal(p.tls, cases[i].tls);
    }
}

/* Host and target length limits, at and over the edge. */
static void
test_url_limits(void **state)
{
    static struct url u;
    static char s[URL_TARGET_MAX + 64];
    char err[256];
    size_t n;

    (void)state;
    /* Host of URL_HOST_MAX bytes: fine; one more: refused. */
    strcpy(s, "http://");
    n = strlen(s);
    memset(s + n, 'a', URL_HOST_MAX);
    strcpy(s + n + URL_HOST_MAX, "/");
    assert_int_equal(url_parse(s, &u, err, sizeof(err)), 0);
    assert_int_equal(strlen(u.host), URL_HOST_MAX);
    memset(s + n, 'a', URL_HOST_MAX + 1);
    strcpy(s + n + URL_HOST_MAX + 1, "/");
    assert_int_equal(url_parse(s, &u, err, sizeof(err)), HCONN_EINVALID_URL);
    assert_err_has(err, "longer than 255");

    /* Target of URL_TARGET_MAX bytes: fine; one more: refused. */
    strcpy(s, "http://h/");
    n = strlen(s);
    memset(s + n, 'p', URL_TARGET_MAX - 1);
    s[n + URL_TARGET_MAX - 1] = '\0';
    assert_int_equal(url_parse(s, &u, err, sizeof(err)), 0);
    assert_int_equal(strlen(u.target), URL_TARGET_MAX);
    strcat(s, "p");
    assert_int_equal(url_parse(s, &u, err, sizeof(err)), HCONN_EINVALID_URL);
    assert_err_has(err, "target longer");
    /* A query-only target gets its '/' within the same limit. */
    strcpy(s, "http://h?");
    n = strlen(s);
    memset(s + n, 'q', URL_TARGET_MAX - 2);
    s[n + URL_TARGET_MAX - 2] = '\0';
    assert_int_equal(url_parse(s, &u, err, sizeof(err)), 0);
    assert_int_equal(strlen(u.target), URL_TARGET_MAX);
    strcat(s, "q");
    assert_int_equal(url_parse(s, &u, err, sizeof(err)), HCONN_EINVALID_URL);
}

struct authority_case {
    const char *host;
    int port;
    uint16_t default_port;
    int rc;
    const char *want_host; /* rc 0 */
    uint16_t want_port;    /* rc 0 */
    const char *err;       /* rc != 0: part of the message */
};

static const struct authority_case authority_cases[] = {
    {"example.com", 0, 80, 0, "example.com", 80, NULL},
    {"example.com:8080", 0, 80, 0, "example.com", 8080, NULL},
    {"example.com:", 0, 443, 0, "example.com", 443, NULL},
    {"example.com", 8443, 443, 0, "example.com", 8443, NULL},
    {"example.com", -1, 80, 0, "example.com", 80, NULL},
    {"127.0.0.1:1", 0, 80, 0, "127.0.0.1", 1, NULL},
    {"[::1]", 0, 80, 0, "::1", 80, NULL},
    {"[::1]:8080", 0, 80, 0, "::1", 8080, NULL},
    {"[::1]:", 0, 443, 0, "::1", 443, NULL},
    {"[::1]", 8080, 80, 0, "::1", 8080, NULL},
    {"::1", 8080, 80, 0, "::1", 8080, NULL},
    {"::1", 0, 80, 0, "::1", 80, NULL},
    {"fe80::1:2", 0, 80, 0, "fe80::1:2", 80, NULL},
    {"host:abc", 0, 80, HCONN_EINVALID_URL, NULL, 0, "nonnumeric port: 'abc'"},
    {"host:0", 0, 80, HCONN_EINVALID_URL, NULL, 0, "port out of range"},
    {"host:65536", 0, 80, HCONN_EINVALID_URL, NULL, 0, "port out of range"},
    {"host", 65536, 80, HCONN_EINVALID_URL, NULL, 0, "port out of range"},
    {"host:80", 8080, 80, HCONN_EINVALID_URL, NULL, 0, "IPv6"},
    {"", 0, 80, HCONN_EINVALID_URL, NULL, 0, "empty host"},
    {":80", 0, 80, HCONN_EINVALID_URL, NULL, 0, "empty host"},
    {"[::1", 0, 80, HCONN_EINVALID_URL, NULL, 0, "missing ']'"},
    {"[::1]x", 0, 80, HCONN_EINVALID_URL, NULL, 0, "after ']'"},
    {"[]", 0, 80, HCONN_EINVALID_URL, NULL, 0, "empty IPv6"},
    {"a b", 0, 80, HCONN_EINVALID_URL, NULL, 0, "0x20"},
    {"user@host", 0, 80, HCONN_EINVALID_URL, NULL, 0, "0x40"},
    {"host/path", 0, 80, HCONN_EINVALID_URL, NULL, 0, "0x2f"},
};

/* url_parse_authority: HTTPConnection("host:port", port) semantics. */
static void
test_authority(void **state)
{
    char host[URL_HOST_MAX + 1], err[256];
    uint16_t port;

    (void)state;
    for (size_t i = 0; i < sizeof(authority_cases) / sizeof(*authority_cases);
         i++) {
        const struct authority_case *t = &authority_cases[i];
        int rc;

        err[0] = '\0';
        port = 0;
        rc = url_parse_authority(t->host, t->port, t->default_port, host, &port,
                                 err, sizeof(err));
        if (rc != t->rc)
            print_error("\"%s\" %d: rc %d (%s)\n", t->host, t->port, rc, err);
        assert_int_equal(rc, t->rc);
        if (rc == 0) {
            assert_string_equal(host, t->want_host);
            assert_int_equal(port, t->want_port);
        } else {
            assert_err_has(err, t->err);
        }
    }
    assert_int_equal(
        url_parse_authority(NULL, 0, 80, host, &port, err, sizeof(err)),
        HCONN_EINVALID_URL);
}

/* url_check_host: the rule for the protocol's "host" fields. */
static void
test_check_host(void **state)
{
    static const char *const good[] = {
        "example.com", "EXAMPLE.com.",   "a",           "1.2.3.4", "::1",
        "2001:db8::",  "::ffff:1.2.3.4", "under_score", "x-y",
    };
    static const struct {
        const char *host;
        const char *err;
    } bad[] = {
        {"", "empty host"},   {"a/b", "0x2f"},
        {"[::1]", "0x5b"},    {"a:b", "invalid IPv6 address"},
        {"host\r\n", "0x0d"}, {"a b", "0x20"},
        {"a?b", "0x3f"},      {"a#b", "0x23"},
        {"a@b", "0x40"},      {"fe80::1%eth0", "zone"},
    };
    char err[256], longhost[URL_HOST_MAX + 2];

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(url_check_host(good[i], err, sizeof(err)), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(url_check_host(bad[i].host, err, sizeof(err)),
                         HCONN_EINVALID_URL);
        assert_err_has(err, bad[i].err);
    }
    assert_int_equal(url_check_host(NULL, err, sizeof(err)),
                     HCONN_EINVALID_URL);
    memset(longhost, 'h', URL_HOST_MAX);
    longhost[URL_HOST_MAX] = '\0';
    assert_int_equal(url_check_host(longhost, err, sizeof(err)), 0);
    longhost[URL_HOST_MAX] = 'h';
    longhost[URL_HOST_MAX + 1] = '\0';
    assert_int_equal(url_check_host(longhost, err, sizeof(err)),
                     HCONN_EINVALID_URL);
    assert_err_has(err, "longer than 255");
}

/* A small err buffer is truncated, never overrun. */
static void
test_small_err(void **state)
{
    static struct url u;
    char err[8];

    (void)state;
    memset(err, 'X', sizeof(err));
    assert_int_equal(url_parse("http://user@h/", &u, err, 4),
                     HCONN_EINVALID_URL);
    assert_int_equal(strlen(err), 3);
    assert_int_equal(err[4], 'X');
}

/* Proxy URLs as curl's -x and http_proxy take them. */
static void
test_proxy_urls(void **state)
{
    struct url_proxy p;
    char err[256];

    (void)state;
    assert_int_equal(url_parse_proxy("127.0.0.1:3128", &p, err, sizeof err), 0);
    assert_string_equal(p.host, "127.0.0.1");
    assert_int_equal(p.port, 3128);
    assert_string_equal(p.authorization, "");

    assert_int_equal(url_parse_proxy("HTTP://proxy/", &p, err, sizeof err), 0);
    assert_string_equal(p.host, "proxy");
    assert_int_equal(p.port, URL_PROXY_PORT);

    assert_int_equal(url_parse_proxy("http://[::1]:8080", &p, err, sizeof err),
                     0);
    assert_string_equal(p.host, "::1");
    assert_int_equal(p.port, 8080);

    /* RFC 7617's example; "%40" decodes, the last '@' ends userinfo. */
    assert_int_equal(url_parse_proxy("http://Aladdin:open%20sesame@p:1", &p,
                                     err, sizeof err),
                     0);
    assert_string_equal(p.authorization, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    assert_int_equal(url_parse_proxy("u:p@ss@p:1", &p, err, sizeof err), 0);
    assert_string_equal(p.host, "p");
    assert_string_equal(p.authorization, "Basic dTpwQHNz");

    assert_int_equal(url_parse_proxy("https://p:1", &p, err, sizeof err),
                     HCONN_EINVALID_URL);
    assert_err_has(err, "only http://");
    assert_int_equal(url_parse_proxy("socks5://p:1", &p, err, sizeof err),
                     HCONN_EINVALID_URL);
    assert_int_equal(url_parse_proxy("http://p:1/x", &p, err, sizeof err),
                     HCONN_EINVALID_URL);
    assert_err_has(err, "no path");
    assert_int_equal(url_parse_proxy("http://u:p@", &p, err, sizeof err),
                     HCONN_EINVALID_URL);
    assert_err_has(err, "no host");
    assert_int_equal(url_parse_proxy("p:99999", &p, err, sizeof err),
                     HCONN_EINVALID_URL);
    assert_int_equal(url_parse_proxy("a b:1", &p, err, sizeof err),
                     HCONN_EINVALID_URL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_urls),
        cmocka_unit_test(test_bad_urls),
        cmocka_unit_test(test_url_limits),
        cmocka_unit_test(test_authority),
        cmocka_unit_test(test_check_host),
        cmocka_unit_test(test_small_err),
        cmocka_unit_test(test_proxy_urls),
        cmocka_unit_test(test_space_edges),
        cmocka_unit_test(test_scheme_edges),
        cmocka_unit_test(test_authority_edges),
        cmocka_unit_test(test_host_bytes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
