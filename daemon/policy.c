/*
 * policy.c — parsing and checking the egress rules.
 *
 * The language (man hconnd.json(5)):
 *
 *   "policy": {
 *     "default": {RULE},
 *     "rules": [{"name": "...", "uids": [...], "gids": [...], RULE}, ...]
 *   }
 *
 * RULE keys: schemes, hosts, ports, proxies (lists), loopback, private,
 * link_local, insecure_tls, no_check_hostname, client_certs, tls_files,
 * source_address (booleans). The default rule starts from the built-in
 * one, which allows everything; each listed rule starts from the default
 * rule, so a rule states only what differs.
 * Unknown keys are errors, so a misspelt restriction is never silently
 * ignored.
 *
 * Host names are compared without case and without one trailing dot, so
 * "Example.COM." cannot slip past a rule for "example.com"; IPv6 literals
 * ("::1" or "[::1]") are compared as addresses, so "0:0::1" is "::1".
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hconn_error.h"
#include "policy.h"

#define POLICY_ARRAY_MAX 4096 /* entries in any one list */

static void
policy_rule_clear(struct policy_rule *r)
{
    for (size_t i = 0; i < r->nhosts; i++)
        free(r->hosts[i]);
    for (size_t i = 0; i < r->nproxies; i++)
        free(r->proxies[i]);
    free(r->hosts);
    free(r->proxies);
    free(r->ports);
    free(r->uids);
    free(r->gids);
}

void
policy_free(struct policy *p)
{
    if (p == NULL)
        return;
    policy_rule_clear(&p->def);
    for (size_t i = 0; i < p->nrules; i++)
        policy_rule_clear(&p->rules[i]);
    free(p->rules);
    free(p);
}

/* The built-in rule: every scheme, host, port, proxy and address. Loopback
 * origins must stay reachable without a config file: every test and the
 * demo use them. */
static void
policy_rule_allow_all(struct policy_rule *r, const char *name)
{
    *r = (struct policy_rule){.http = true,
                              .https = true,
                              .insecure_tls = true,
                              .client_certs = true,
                              .tls_files = true,
                              .source_address = true,
                              .no_check_hostname = true};
    snprintf(r->name, sizeof r->name, "%s", name);
}

struct policy *
policy_new_default(void)
{
    struct policy *p = calloc(1, sizeof *p);

    if (p != NULL)
        policy_rule_allow_all(&p->def, "built-in default");
    return p;
}

/* ---- Parsing ------------------------------------------------------------ */

/* True when s is an IPv6 literal, bare or in brackets; its address in
 * *out. */
static bool
policy_ipv6_literal(const char *s, struct in6_addr *out)
{
    char buf[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(s);

    if (n >= 2 && s[0] == '[' && s[n - 1] == ']' && n - 2 < sizeof buf) {
        memcpy(buf, s + 1, n - 2);
        buf[n - 2] = '\0';
        s = buf;
    }
    return inet_pton(AF_INET6, s, out) == 1;
}

/* A pattern that is an IPv6 literal matches the same address however it
 * is written; sets *match and returns true when pattern is one. */
static bool
policy_ipv6_matches(const char *pattern, const char *host, bool *match)
{
    struct in6_addr p, h;

    if (!policy_ipv6_literal(pattern, &p))
        return false;
    *match = policy_ipv6_literal(host, &h) && memcmp(&p, &h, sizeof p) == 0;
    return true;
}

/* A host pattern is a host name or address, "*.suffix", or "*". */
static bool
policy_valid_host_pattern(const char *s)
{
    const char *p = s;
    struct in6_addr v6;

    if (strcmp(s, "*") == 0 || policy_ipv6_literal(s, &v6))
        return true;
    if (strncmp(s, "*.", 2) == 0)
        p += 2;
    if (*p == '\0' || strlen(p) > 255)
        return false;
    for (; *p != '\0'; p++)
        if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') ||
              ('0' <= *p && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
              *p == ':'))
            return false;
    return true;
}

static int
policy_parse_port(const char *s, uint16_t *port)
{
    char *end;
    long n = strtol(s, &end, 10);

    if (end == s || *end != '\0' || n < 1 || n > 65535)
        return -1;
    *port = (uint16_t)n;
    return 0;
}

/* A proxy pattern: "host:port", "[v6]:port", port "*" for any; "*" alone
 * for any proxy. */
static bool
policy_valid_proxy_pattern(const char *s)
{
    const char *colon = strrchr(s, ':');
    char host[300];
    uint16_t port;
    size_t n;

    if (strcmp(s, "*") == 0)
        return true;
    if (colon == NULL || colon == s)
        return false;
    if (strcmp(colon + 1, "*") != 0 && policy_parse_port(colon + 1, &port) < 0)
        return false;
    n = (size_t)(colon - s);
    if (s[0] == '[') {
        if (n < 3 || s[n - 1] != ']')
            return false;
        s++;
        n -= 2;
    }
    if (n >= sizeof host)
        return false;
    memcpy(host, s, n);
    host[n] = '\0';
    return policy_valid_host_pattern(host);
}

/* Reads a list of strings, each checked by valid. */
static int
policy_parse_strings(const json_t *v, const char *where, const char *key,
                     bool (*valid)(const char *), const char *what, char ***out,
                     size_t *n, char *err, size_t errlen)
{
    size_t i;
    const json_t *e;

    if (!json_is_array(v) || json_array_size(v) > POLICY_ARRAY_MAX) {
        snprintf(err, errlen, "%s.%s: must be an array of %s", where, key,
                 what);
        return -1;
    }
    *out = calloc(json_array_size(v) + 1, sizeof **out);
    if (*out == NULL) {
        snprintf(err, errlen, "%s.%s: out of memory", where, key);
        return -1;
    }
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e) || !valid(json_string_value(e))) {
            snprintf(err, errlen, "%s.%s[%zu]: must be %s", where, key, i,
                     what);
            return -1;
        }
        if (((*out)[i] = strdup(json_string_value(e))) == NULL) {
            snprintf(err, errlen, "%s.%s: out of memory", where, key);
            return -1;
        }
        (*n)++;
    }
    return 0;
}

static int
policy_parse_schemes(struct policy_rule *r, const json_t *v, const char *where,
                     char *err, size_t errlen)
{
    size_t i;
    const json_t *e;

    if (!json_is_array(v)) {
        snprintf(err, errlen,
                 "%s.schemes: must be an array of \"http\", \"https\"", where);
        return -1;
    }
    r->http = r->https = false;
    json_array_foreach(v, i, e)
    {
        const char *s = json_string_value(e);

        if (s != NULL && strcmp(s, "http") == 0) {
            r->http = true;
        } else if (s != NULL && strcmp(s, "https") == 0) {
            r->https = true;
        } else {
            snprintf(err, errlen,
                     "%s.schemes[%zu]: must be \"http\" or \"https\"", where,
                     i);
            return -1;
        }
    }
    return 0;
}

static int
policy_parse_ports(struct policy_rule *r, const json_t *v, const char *where,
                   char *err, size_t errlen)
{
    size_t i;
    const json_t *e;

    if (!json_is_array(v) || json_array_size(v) > POLICY_ARRAY_MAX) {
        snprintf(err, errlen, "%s.ports: must be an array of ports", where);
        return -1;
    }
    r->ports = calloc(json_array_size(v) + 1, sizeof *r->ports);
    if (r->ports == NULL) {
        snprintf(err, errlen, "%s.ports: out of memory", where);
        return -1;
    }
    json_array_foreach(v, i, e)
    {
        struct policy_ports range;
        const char *s = json_string_value(e);
        const char *dash = s != NULL ? strchr(s, '-') : NULL;
        char lo[8];

        if (json_is_integer(e) && json_integer_value(e) >= 1 &&
            json_integer_value(e) <= 65535) {
            range.lo = range.hi = (uint16_t)json_integer_value(e);
        } else if (dash != NULL && (size_t)(dash - s) < sizeof lo &&
                   (memcpy(lo, s, (size_t)(dash - s)), lo[dash - s] = '\0',
                    policy_parse_port(lo, &range.lo) == 0) &&
                   policy_parse_port(dash + 1, &range.hi) == 0 &&
                   range.lo <= range.hi) {
            /* "LOW-HIGH" */
        } else {
            snprintf(err, errlen,
                     "%s.ports[%zu]: must be a port from 1 to 65535 or a "
                     "range \"LOW-HIGH\"",
                     where, i);
            return -1;
        }
        r->ports[r->nports++] = range;
    }
    return 0;
}

/* "uids"/"gids": arrays of non-negative integers. */
static int
policy_parse_ids(const json_t *v, const char *where, const char *key,
                 unsigned **out, size_t *n, char *err, size_t errlen)
{
    size_t i;
    const json_t *e;

    if (!json_is_array(v) || json_array_size(v) > POLICY_ARRAY_MAX) {
        snprintf(err, errlen, "%s.%s: must be an array of numeric ids", where,
                 key);
        return -1;
    }
    *out = calloc(json_array_size(v) + 1, sizeof **out);
    if (*out == NULL) {
        snprintf(err, errlen, "%s.%s: out of memory", where, key);
        return -1;
    }
    json_array_foreach(v, i, e)
    {
        if (!json_is_integer(e) || json_integer_value(e) < 0 ||
            json_integer_value(e) > 4294967294LL) {
            snprintf(err, errlen, "%s.%s[%zu]: must be a numeric id", where,
                     key, i);
            return -1;
        }
        (*out)[(*n)++] = (unsigned)json_integer_value(e);
    }
    return 0;
}

static int
policy_parse_bool(const json_t *v, const char *where, const char *key,
                  bool *out, char *err, size_t errlen)
{
    if (!json_is_boolean(v)) {
        snprintf(err, errlen, "%s.%s: must be true or false", where, key);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

/* Parses one rule object over r (already holding the inherited values).
 * is_default: "name", "uids" and "gids" are not allowed. */
static int
policy_parse_rule(struct policy_rule *r, const json_t *obj, const char *where,
                  bool is_default, char *err, size_t errlen)
{
    static const struct {
        const char *key;
        unsigned class;
    } classes[] = {
        {"loopback", POLICY_ADDR_LOOPBACK},
        {"private", POLICY_ADDR_PRIVATE},
        {"link_local", POLICY_ADDR_LINK_LOCAL},
    };
    const char *key;
    const json_t *v;

    if (!json_is_object(obj)) {
        snprintf(err, errlen, "%s: must be an object", where);
        return -1;
    }
    json_object_foreach((json_t *)obj, key, v)
    {
        int rc = 0;
        bool b, known = true;

        if (strcmp(key, "schemes") == 0) {
            rc = policy_parse_schemes(r, v, where, err, errlen);
            r->has_schemes = true;
        } else if (strcmp(key, "hosts") == 0) {
            rc = policy_parse_strings(
                v, where, key, policy_valid_host_pattern,
                "a host name, address, \"*.suffix\" or \"*\"", &r->hosts,
                &r->nhosts, err, errlen);
            r->has_hosts = true;
        } else if (strcmp(key, "ports") == 0) {
            rc = policy_parse_ports(r, v, where, err, errlen);
            r->has_ports = true;
        } else if (strcmp(key, "proxies") == 0) {
            rc = policy_parse_strings(
                v, where, key, policy_valid_proxy_pattern,
                "\"HOST:PORT\" (HOST a host pattern, PORT a number or \"*\") "
                "or \"*\"",
                &r->proxies, &r->nproxies, err, errlen);
            r->has_proxies = true;
        } else if (strcmp(key, "insecure_tls") == 0) {
            rc =
                policy_parse_bool(v, where, key, &r->insecure_tls, err, errlen);
        } else if (strcmp(key, "no_check_hostname") == 0) {
            rc = policy_parse_bool(v, where, key, &r->no_check_hostname, err,
                                   errlen);
        } else if (strcmp(key, "client_certs") == 0) {
            rc =
                policy_parse_bool(v, where, key, &r->client_certs, err, errlen);
        } else if (strcmp(key, "tls_files") == 0) {
            rc = policy_parse_bool(v, where, key, &r->tls_files, err, errlen);
        } else if (strcmp(key, "source_address") == 0) {
            rc = policy_parse_bool(v, where, key, &r->source_address, err,
                                   errlen);
        } else if (!is_default && strcmp(key, "name") == 0) {
            if (!json_is_string(v) || json_string_length(v) == 0 ||
                json_string_length(v) > 64) {
                snprintf(err, errlen,
                         "%s.name: must be a string of 1 to 64 "
                         "bytes",
                         where);
                rc = -1;
            }
        } else if (!is_default && strcmp(key, "uids") == 0) {
            rc = policy_parse_ids(v, where, key, (unsigned **)&r->uids,
                                  &r->nuids, err, errlen);
        } else if (!is_default && strcmp(key, "gids") == 0) {
            rc = policy_parse_ids(v, where, key, (unsigned **)&r->gids,
                                  &r->ngids, err, errlen);
        } else {
            known = false;
            for (size_t i = 0; i < sizeof classes / sizeof *classes; i++) {
                if (strcmp(key, classes[i].key) != 0)
                    continue;
                known = true;
                rc = policy_parse_bool(v, where, key, &b, err, errlen);
                if (rc == 0 && b)
                    r->deny_addr &= ~classes[i].class;
                else if (rc == 0)
                    r->deny_addr |= classes[i].class;
            }
            if (!known) {
                snprintf(err, errlen, "%s: unknown key \"%s\"%s", where, key,
                         is_default && (strcmp(key, "uids") == 0 ||
                                        strcmp(key, "gids") == 0 ||
                                        strcmp(key, "name") == 0)
                             ? " (the default rule matches everyone)"
                             : "");
                rc = -1;
            }
        }
        if (rc < 0)
            return -1;
    }
    if (!is_default && r->nuids == 0 && r->ngids == 0) {
        snprintf(err, errlen,
                 "%s: a rule needs \"uids\" or \"gids\" (non-empty) to match "
                 "clients by",
                 where);
        return -1;
    }
    return 0;
}

struct policy *
policy_parse(const json_t *value, char *err, size_t errlen)
{
    struct policy *p = policy_new_default();
    const json_t *rules, *def;
    const char *key;
    const json_t *v;

    if (p == NULL) {
        snprintf(err, errlen, "policy: out of memory");
        return NULL;
    }
    if (!json_is_object(value)) {
        snprintf(err, errlen,
                 "policy: must be an object with \"default\" and \"rules\"");
        goto fail;
    }
    json_object_foreach((json_t *)value, key, v)
    {
        if (strcmp(key, "default") != 0 && strcmp(key, "rules") != 0) {
            snprintf(err, errlen,
                     "policy: unknown key \"%s\" (expected \"default\", "
                     "\"rules\")",
                     key);
            goto fail;
        }
    }
    snprintf(p->def.name, sizeof p->def.name, "default");
    def = json_object_get(value, "default");
    if (def != NULL && policy_parse_rule(&p->def, def, "policy.default", true,
                                         err, errlen) < 0)
        goto fail;
    rules = json_object_get(value, "rules");
    if (rules == NULL)
        return p;
    if (!json_is_array(rules) || json_array_size(rules) > POLICY_ARRAY_MAX) {
        snprintf(err, errlen, "policy.rules: must be an array of rules");
        goto fail;
    }
    p->rules = calloc(json_array_size(rules) + 1, sizeof *p->rules);
    if (p->rules == NULL) {
        snprintf(err, errlen, "policy.rules: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < json_array_size(rules); i++) {
        struct policy_rule *r = &p->rules[i];
        const json_t *obj = json_array_get(rules, i);
        const char *name = json_string_value(json_object_get(obj, "name"));
        char where[64];

        /* Inherit the default's booleans; lists are looked up through
         * parent while has_* is false. */
        *r = (struct policy_rule){.parent = &p->def,
                                  .http = p->def.http,
                                  .https = p->def.https,
                                  .deny_addr = p->def.deny_addr,
                                  .insecure_tls = p->def.insecure_tls,
                                  .client_certs = p->def.client_certs,
                                  .tls_files = p->def.tls_files,
                                  .source_address = p->def.source_address};
        r->no_check_hostname = p->def.no_check_hostname;
        p->nrules++;
        snprintf(where, sizeof where, "policy.rules[%zu]", i);
        if (name != NULL)
            snprintf(r->name, sizeof r->name, "rules[%zu] \"%.64s\"", i, name);
        else
            snprintf(r->name, sizeof r->name, "rules[%zu]", i);
        if (policy_parse_rule(r, obj, where, false, err, errlen) < 0)
            goto fail;
    }
    return p;

fail:
    policy_free(p);
    return NULL;
}

/* ---- Matching and checking ---------------------------------------------- */

const struct policy_rule *
policy_match(const struct policy *p, uid_t uid, gid_t gid)
{
    static struct policy_rule builtin;

    if (p == NULL) {
        if (builtin.name[0] == '\0')
            policy_rule_allow_all(&builtin, "built-in default");
        return &builtin;
    }
    for (size_t i = 0; i < p->nrules; i++) {
        const struct policy_rule *r = &p->rules[i];

        for (size_t j = 0; j < r->nuids; j++)
            if (r->uids[j] == uid)
                return r;
        for (size_t j = 0; j < r->ngids; j++)
            if (r->gids[j] == gid)
                return r;
    }
    return &p->def;
}

/* Length of host without one trailing dot. */
static size_t
policy_host_len(const char *host)
{
    size_t n = strlen(host);

    return n > 1 && host[n - 1] == '.' ? n - 1 : n;
}

/* True when host matches pattern: "*", "*.suffix" (subdomains only), or
 * the name itself; case-insensitive. */
static bool
policy_host_matches(const char *pattern, const char *host)
{
    size_t n = policy_host_len(host), m;
    bool match;

    if (strcmp(pattern, "*") == 0)
        return true;
    if (policy_ipv6_matches(pattern, host, &match))
        return match;
    if (strncmp(pattern, "*.", 2) == 0) {
        m = policy_host_len(pattern + 1); /* ".suffix" */
        return n > m && strncasecmp(host + n - m, pattern + 1, m) == 0;
    }
    m = policy_host_len(pattern);
    return n == m && strncasecmp(host, pattern, n) == 0;
}

static bool
policy_host_allowed(const struct policy_rule *r, const char *host)
{
    const struct policy_rule *src = r->has_hosts || !r->parent ? r : r->parent;

    if (!src->has_hosts)
        return true;
    for (size_t i = 0; i < src->nhosts; i++)
        if (policy_host_matches(src->hosts[i], host))
            return true;
    return false;
}

static bool
policy_port_allowed(const struct policy_rule *r, uint16_t port)
{
    const struct policy_rule *src = r->has_ports || !r->parent ? r : r->parent;

    if (!src->has_ports)
        return true;
    for (size_t i = 0; i < src->nports; i++)
        if (src->ports[i].lo <= port && port <= src->ports[i].hi)
            return true;
    return false;
}

static bool
policy_proxy_allowed(const struct policy_rule *r, const char *host,
                     uint16_t port)
{
    const struct policy_rule *src =
        r->has_proxies || !r->parent ? r : r->parent;

    if (!src->has_proxies)
        return true;
    for (size_t i = 0; i < src->nproxies; i++) {
        const char *pat = src->proxies[i];
        const char *colon = strrchr(pat, ':');
        char hostpat[300];
        size_t n = (size_t)(colon - pat);
        uint16_t want;

        if (strcmp(pat, "*") == 0)
            return true;
        if (strcmp(colon + 1, "*") != 0 &&
            (policy_parse_port(colon + 1, &want) < 0 || want != port))
            continue;
        if (pat[0] == '[') {
            pat++;
            n -= 2;
        }
        memcpy(hostpat, pat, n);
        hostpat[n] = '\0';
        if (policy_host_matches(hostpat, host))
            return true;
    }
    return false;
}

bool
policy_restricts_destinations(const struct policy_rule *r)
{
    const struct policy_rule *parent = r->parent != NULL ? r->parent : r;

    return !r->http || !r->https || r->deny_addr != 0 ||
           (r->has_hosts ? r : parent)->has_hosts ||
           (r->has_ports ? r : parent)->has_ports ||
           (r->has_proxies ? r : parent)->has_proxies;
}

int
policy_check_request(const struct policy_rule *r,
                     const struct policy_request *req, char *why, size_t len)
{
    if (req->tls ? !r->https : !r->http) {
        snprintf(why, len, "policy rule %s: scheme %s is not allowed", r->name,
                 req->tls ? "https" : "http");
        return HCONN_EDENIED;
    }
    if (!policy_host_allowed(r, req->host)) {
        snprintf(why, len, "policy rule %s: host \"%.255s\" is not allowed",
                 r->name, req->host);
        return HCONN_EDENIED;
    }
    if (!policy_port_allowed(r, req->port)) {
        snprintf(why, len, "policy rule %s: port %u is not allowed", r->name,
                 req->port);
        return HCONN_EDENIED;
    }
    /* The daemon's own default proxy is the administrator's choice. */
    if (req->proxy_host != NULL && !req->proxy_is_default &&
        !policy_proxy_allowed(r, req->proxy_host, req->proxy_port)) {
        snprintf(why, len, "policy rule %s: proxy %s%.255s%s:%u is not allowed",
                 r->name, strchr(req->proxy_host, ':') ? "[" : "",
                 req->proxy_host, strchr(req->proxy_host, ':') ? "]" : "",
                 req->proxy_port);
        return HCONN_EDENIED;
    }
    if (req->insecure && !r->insecure_tls) {
        snprintf(why, len,
                 "policy rule %s: turning certificate verification off is "
                 "not allowed",
                 r->name);
        return HCONN_EDENIED;
    }
    if (req->no_check_hostname && !r->no_check_hostname) {
        snprintf(why, len,
                 "policy rule %s: turning the certificate name check off "
                 "(check_hostname) is not allowed",
                 r->name);
        return HCONN_EDENIED;
    }
    if (req->client_cert && !r->client_certs) {
        snprintf(why, len,
                 "policy rule %s: client certificates (cert_pem, key_pem, "
                 "cert_file, key_file) are not allowed",
                 r->name);
        return HCONN_EDENIED;
    }
    if (req->tls_files && !r->tls_files) {
        snprintf(why, len,
                 "policy rule %s: TLS files (ca_file, ca_path, cert_file, "
                 "key_file) are not allowed; send the PEM material inline "
                 "(ca_pem, cert_pem, key_pem)",
                 r->name);
        return HCONN_EDENIED;
    }
    return 0;
}

int
policy_check_source(const struct policy_rule *r, const char *host,
                    uint16_t port, uid_t uid, char *why, size_t len)
{
    if (!r->source_address) {
        snprintf(why, len,
                 "policy rule %s: choosing the source address is not allowed",
                 r->name);
        return HCONN_EDENIED;
    }
    if (port != 0 && port < 1024 && uid != 0) {
        snprintf(why, len,
                 "source port %u is privileged (below 1024): only root may "
                 "bind it",
                 port);
        return HCONN_EDENIED;
    }
    return 0;
}

/* ---- Address classes ---------------------------------------------------- */

/*
 * The one table of address classes, hconnd.json(5) prints it. Searched
 * in order, first match wins, so the more specific ranges come first. A
 * range that embeds an IPv4 address (mapped, compatible, NAT64, 6to4,
 * Teredo, SIIT) is classified by that address: the packets end up there.
 * "private" also holds every special-purpose range that is not the
 * public internet (documentation, benchmarking, reserved, multicast,
 * broadcast), so a rule that keeps clients on the public internet
 * refuses them too.
 */
#define POLICY_EMBED_NONE (-1)
static const struct policy_addr_range {
    int family;         /* AF_INET or AF_INET6 */
    uint8_t prefix[16]; /* network byte order */
    unsigned bits;      /* prefix length */
    unsigned cls;       /* POLICY_ADDR_*, when nothing is embedded */
    int embed;          /* byte offset of an embedded IPv4 address */
    bool inverted;      /* Teredo: the embedded address is inverted */
} policy_addr_table[] = {
    /* IPv4 */
    {AF_INET, {0}, 8, POLICY_ADDR_LOOPBACK, POLICY_EMBED_NONE, false},
    {AF_INET, {127}, 8, POLICY_ADDR_LOOPBACK, POLICY_EMBED_NONE, false},
    {AF_INET, {10}, 8, POLICY_ADDR_PRIVATE, POLICY_EMBED_NONE, false},
    {AF_INET, {100, 64}, 10, POLICY_ADDR_PRIVATE, POLICY_EMBED_NONE, false},
    {AF_INET, {169, 254}, 16, POLICY_ADDR_LINK_LOCAL, POLICY_EMBED_NONE, false},
    {AF_INET, {172, 16}, 12, POLICY_ADDR_PRIVATE, POLICY_EMBED_NONE, false},
    {AF_INET, {192, 0, 0}, 24, POLICY_ADDR_PRIVATE, POLICY_EMBED_NONE, false},
    {AF_INET, {192, 0, 2}, 24, POLICY_ADDR_PRIVATE, POLICY_EMBED_NONE, false},
    {AF_INET, {192, 88, 99}, 24, POLICY_ADDR_PRIVATE, POLICY_EMBED_NONE, false},
    {AF_INET, {192, 168}, 16, POLICY_ADDR_PRIVATE, POLICY_EMBED_NONE, false},
    {AF_INET, {198, 18}, 15, POLICY_ADDR_PRIVATE, POLICY_EMBED_NONE, false},
    {AF_INET,
     {198, 51, 100},
     24,
     POLICY_ADDR_PRIVATE,
     POLICY_EMBED_NONE,
     false},
    {AF_INET, {203, 0, 113}, 24, POLICY_ADDR_PRIVATE, POLICY_EMBED_NONE, false},
    {AF_INET, {224}, 4, POLICY_ADDR_PRIVATE, POLICY_EMBED_NONE, false},
    {AF_INET, {240}, 4, POLICY_ADDR_PRIVATE, POLICY_EMBED_NONE, false},
    /* IPv6 */
    {AF_INET6, {0}, 128, POLICY_ADDR_LOOPBACK, POLICY_EMBED_NONE, false},
    {AF_INET6, {[15] = 1}, 128, POLICY_ADDR_LOOPBACK, POLICY_EMBED_NONE, false},
    {AF_INET6, {[10] = 0xff, 0xff}, 96, 0, 12, false},   /* mapped */
    {AF_INET6, {[8] = 0xff, 0xff}, 96, 0, 12, false},    /* SIIT */
    {AF_INET6, {0}, 96, 0, 12, false},                   /* compatible */
    {AF_INET6, {0, 0x64, 0xff, 0x9b}, 96, 0, 12, false}, /* NAT64 */
    {AF_INET6,
     {0, 0x64, 0xff, 0x9b, 0, 1},
     48,
     POLICY_ADDR_PRIVATE,
     POLICY_EMBED_NONE,
     false}, /* local-use NAT64, RFC 8215 */
    {AF_INET6,
     {1, 0},
     64,
     POLICY_ADDR_PRIVATE,
     POLICY_EMBED_NONE,
     false},                                         /* discard-only
                                                      */
    {AF_INET6, {0x20, 0x01, 0, 0}, 32, 0, 12, true}, /* Teredo */
    {AF_INET6,
     {0x20, 0x01, 0, 2},
     48,
     POLICY_ADDR_PRIVATE,
     POLICY_EMBED_NONE,
     false}, /* benchmarking */
    {AF_INET6,
     {0x20, 0x01, 0x0d, 0xb8},
     32,
     POLICY_ADDR_PRIVATE,
     POLICY_EMBED_NONE,
     false},                                   /* documentation */
    {AF_INET6, {0x20, 0x02}, 16, 0, 2, false}, /* 6to4 */
    {AF_INET6, {0xfc}, 7, POLICY_ADDR_PRIVATE, POLICY_EMBED_NONE, false},
    {AF_INET6,
     {0xfe, 0x80},
     10,
     POLICY_ADDR_LINK_LOCAL,
     POLICY_EMBED_NONE,
     false},
    {AF_INET6,
     {0xfe, 0xc0},
     10,
     POLICY_ADDR_PRIVATE,
     POLICY_EMBED_NONE,
     false}, /* site-local (deprecated) */
    {AF_INET6,
     {0xff},
     8,
     POLICY_ADDR_PRIVATE,
     POLICY_EMBED_NONE,
     false}, /* multicast
              */
};

/* True when the first bits of a equal those of prefix. */
static bool
policy_prefix_matches(const uint8_t *a, const uint8_t *prefix, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;

    if (memcmp(a, prefix, whole) != 0)
        return false;
    return rest == 0 ||
           ((a[whole] ^ prefix[whole]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

/* Classifies addr (4 or 16 bytes of family) through the table; an
 * embedded IPv4 address is classified in its turn. */
static enum policy_addr_class
policy_classify(int family, const uint8_t *addr)
{
    size_t n = sizeof policy_addr_table / sizeof *policy_addr_table;

    if (addr[0] == 255 && addr[1] == 255 && addr[2] == 255 && addr[3] == 255 &&
        family == AF_INET)
        return POLICY_ADDR_PRIVATE; /* broadcast (inside 240/4 anyway) */
    for (size_t i = 0; i < n; i++) {
        const struct policy_addr_range *r = &policy_addr_table[i];
        uint8_t v4[4];

        if (r->family != family ||
            !policy_prefix_matches(addr, r->prefix, r->bits))
            continue;
        if (r->embed == POLICY_EMBED_NONE)
            return (enum policy_addr_class)r->cls;
        for (int j = 0; j < 4; j++)
            v4[j] = addr[r->embed + j] ^ (r->inverted ? 0xff : 0);
        return policy_classify(AF_INET, v4);
    }
    return POLICY_ADDR_PUBLIC;
}

enum policy_addr_class
policy_addr_class(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return policy_classify(
            AF_INET,
            (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr);
    if (sa->sa_family == AF_INET6)
        return policy_classify(
            AF_INET6, ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
    return POLICY_ADDR_PUBLIC;
}

/* The IPv4 address sa is or embeds as mapped (::ffff:a.b.c.d), in
 * v4; false when it is none. */
static bool
policy_as_v4(const struct sockaddr *sa, uint8_t v4[4])
{
    const uint8_t *b;

    if (sa->sa_family == AF_INET) {
        memcpy(v4, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    if (sa->sa_family != AF_INET6)
        return false;
    b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    if (!IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)b))
        return false;
    memcpy(v4, b + 12, 4);
    return true;
}

/* True when sa is one of the machine's own addresses. */
static bool
policy_is_own(const struct policy_own_addrs *own, const struct sockaddr *sa)
{
    uint8_t v4[4], o4[4];
    bool is_v4 = policy_as_v4(sa, v4);

    for (size_t i = 0; own != NULL && i < own->n; i++) {
        const struct sockaddr *o = (const struct sockaddr *)&own->addrs[i];

        if (is_v4 && policy_as_v4(o, o4) && memcmp(v4, o4, 4) == 0)
            return true;
        if (!is_v4 && sa->sa_family == AF_INET6 && o->sa_family == AF_INET6 &&
            memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr,
                   &((const struct sockaddr_in6 *)o)->sin6_addr, 16) == 0)
            return true;
    }
    return false;
}

bool
policy_addr_filter(const struct policy_rule *rule, struct policy_addr_filter *f)
{
    *f = (struct policy_addr_filter){.deny = rule->deny_addr};
    if (f->deny == 0)
        return false; /* no filter: its names are never read */
    snprintf(f->rule, sizeof f->rule, "%s", rule->name);
    snprintf(f->key, sizeof f->key, "deny=%s%s%s rule=%.90s",
             rule->deny_addr & POLICY_ADDR_LOOPBACK ? "L" : "",
             rule->deny_addr & POLICY_ADDR_PRIVATE ? "P" : "",
             rule->deny_addr & POLICY_ADDR_LINK_LOCAL ? "K" : "", rule->name);
    return f->deny != 0;
}

int
policy_check_address(const struct policy_addr_filter *f,
                     const struct sockaddr *sa, char *why, size_t len)
{
    enum policy_addr_class c = policy_addr_class(sa);
    char addr[INET6_ADDRSTRLEN] = "?";
    bool own = false;

    /* The machine's own addresses reach its own services, as 127.0.0.1
     * does (a service on 0.0.0.0 answers on each): loopback. */
    if (c != POLICY_ADDR_LOOPBACK && (f->deny & POLICY_ADDR_LOOPBACK) &&
        policy_is_own(f->own, sa)) {
        c = POLICY_ADDR_LOOPBACK;
        own = true;
    }
    if ((f->deny & (unsigned)c) == 0)
        return 0;
    if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr,
                  sizeof addr);
    else
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr,
                  sizeof addr);
    snprintf(why, len, "policy rule %s: address %s is %s, which is not allowed",
             f->rule, addr,
             own                         ? "this machine's own (loopback)"
             : c == POLICY_ADDR_LOOPBACK ? "loopback"
             : c == POLICY_ADDR_PRIVATE  ? "private"
                                         : "link-local");
    return HCONN_EDENIED;
}

int
policy_check_address_cb(const struct sockaddr *sa, const void *arg, char *why,
                        size_t len)
{
    return policy_check_address(arg, sa, why, len);
}
