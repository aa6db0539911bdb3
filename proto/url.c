/*
 * url.c — split an http(s) URL, or an HTTPConnection-style "host:port"
 * argument, into host, port and request-target. Pure: no I/O, no
 * allocation; results go into the caller's struct url.
 *
 * Hosts are DNS names or IPv4 literals (letters, digits, '-', '.', '_',
 * case kept) or IPv6 literals (brackets in URLs, none in struct url; no
 * zone ids). Any byte <= 0x20 or 0x7f in a URL is refused, so nothing a
 * caller passes on can split a request line.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hconn_error.h"
#include "jsonword.h"
#include "url.h"

#define URL_PORT_HTTP  80
#define URL_PORT_HTTPS 443

/* Fills err (if any) and returns HCONN_EINVALID_URL, for one-line fails. */
static int __attribute__((format(printf, 3, 4)))
url_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return HCONN_EINVALID_URL;
}

/* Bytes allowed in a reg-name or IPv4 host: what DNS names use. */
static int
url_is_name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

/* Bytes allowed in an IPv6 literal (an embedded IPv4 tail included). */
static int
url_is_ipv6_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
           (c >= 'A' && c <= 'F') || c == ':' || c == '.';
}

/* Checks host[0..len), which holds no ':', as a reg-name or IPv4 host. */
static int
url_check_name(const char *host, size_t len, char *err, size_t errlen)
{
    if (len == 0)
        return url_fail(err, errlen, "empty host");
    if (len > URL_HOST_MAX)
        return url_fail(err, errlen, "host longer than %d bytes", URL_HOST_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)host[i];

        if (!url_is_name_char(c))
            return url_fail(err, errlen,
                            "invalid byte 0x%02x in host at position %zu", c,
                            i);
    }
    return 0;
}

/* Checks host[0..len) as a host without brackets; the one rule for URLs,
 * "host" arguments and the protocol's "host" fields. */
static int
url_check_hostn(const char *host, size_t len, char *err, size_t errlen)
{
    char addr[URL_HOST_MAX + 1];
    struct in6_addr in6;

    if (memchr(host, ':', len) == NULL)
        return url_check_name(host, len, err, errlen);
    if (len > URL_HOST_MAX)
        return url_fail(err, errlen, "host longer than %d bytes", URL_HOST_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)host[i];

        if (c == '%')
            return url_fail(err, errlen,
                            "IPv6 zone ids are not supported (position %zu)",
                            i);
        if (!url_is_ipv6_char(c))
            return url_fail(err, errlen,
                            "invalid byte 0x%02x in IPv6 address at position "
                            "%zu",
                            c, i);
    }
    memcpy(addr, host, len);
    addr[len] = '\0';
    if (inet_pton(AF_INET6, addr, &in6) != 1)
        return url_fail(err, errlen, "invalid IPv6 address \"%s\"", addr);
    return 0;
}

int
url_check_host(const char *host, char *err, size_t errlen)
{
    if (host == NULL)
        return url_fail(err, errlen, "empty host");
    return url_check_hostn(host, strlen(host), err, errlen);
}

/* Parses the digits p[0..len) as a port 1..65535; empty is not a port. */
static int
url_parse_port(const char *p, size_t len, uint16_t *port, char *err,
               size_t errlen)
{
    unsigned long v = 0;

    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return url_fail(err, errlen, "nonnumeric port: '%.*s'",
                            (int)(len > 32 ? 32 : len), p);
        if (v <= 65535)
            v = v * 10 + (unsigned long)(p[i] - '0');
    }
    if (len == 0 || v == 0 || v > 65535)
        return url_fail(err, errlen, "port out of range: '%.*s'",
                        (int)(len > 32 ? 32 : len), p);
    *port = (uint16_t)v;
    return 0;
}

/*
 * Splits an authority a[0..len) ("host", "host:port", "[v6]", "[v6]:port",
 * a trailing ':' meaning the default port) into the host, *out_host[0..
 * *out_len) within a, and, when a port is written, *port with *port_given
 * set. Shared by both parsers; bare_v6 lets a host with two or more colons
 * be an IPv6 literal without brackets (and without a port), which URLs do
 * not allow.
 */
static int
url_hostport_span(const char *a, size_t len, bool bare_v6,
                  const char **out_host, size_t *out_len, uint16_t *port,
                  bool *port_given, char *err, size_t errlen)
{
    const char *host = a, *colon = NULL;
    size_t hostlen = len;
    bool name = false; /* host[0..hostlen) holds no ':' */
    int rc;

    *port_given = false;
    if (len > 0 && a[0] == '[') {
        const char *close = memchr(a, ']', len);

        if (close == NULL)
            return url_fail(err, errlen, "missing ']' after IPv6 address");
        host = a + 1;
        hostlen = (size_t)(close - host);
        if (hostlen == 0)
            return url_fail(err, errlen, "empty IPv6 address");
        if (memchr(host, ':', hostlen) == NULL)
            return url_fail(err, errlen,
                            "not an IPv6 address in brackets: \"%.*s\"",
                            (int)hostlen, host);
        if (close + 1 < a + len) {
            if (close[1] != ':')
                return url_fail(err, errlen, "unexpected byte 0x%02x after ']'",
                                (unsigned char)close[1]);
            colon = close + 1;
        }
    } else {
        colon = memchr(a, ':', len);
        if (colon != NULL &&
            memchr(colon + 1, ':', len - (size_t)(colon + 1 - a)) != NULL) {
            /* Two or more colons: an IPv6 literal, no port. */
            if (!bare_v6)
                return url_fail(
                    err, errlen,
                    "more than one ':' in host (IPv6 addresses need "
                    "brackets)");
            colon = NULL;
        } else {
            /* At most one ':', the port's: the host has none. */
            name = true;
            if (colon != NULL)
                hostlen = (size_t)(colon - a);
        }
    }
    rc = name ? url_check_name(host, hostlen, err, errlen)
              : url_check_hostn(host, hostlen, err, errlen);
    if (rc != 0)
        return rc;
    if (colon != NULL) {
        size_t plen = len - (size_t)(colon + 1 - a);

        if (plen > 0) {
            if ((rc = url_parse_port(colon + 1, plen, port, err, errlen)) != 0)
                return rc;
            *port_given = true;
        }
    }
    *out_host = host;
    *out_len = hostlen;
    return 0;
}

/* url_hostport_span, the host copied into out_host. */
static int
url_split_hostport(const char *a, size_t len, bool bare_v6,
                   char out_host[URL_HOST_MAX + 1], uint16_t *port,
                   bool *port_given, char *err, size_t errlen)
{
    const char *host;
    size_t hostlen;
    int rc = url_hostport_span(a, len, bare_v6, &host, &hostlen, port,
                               port_given, err, errlen);

    if (rc != 0)
        return rc;
    memcpy(out_host, host, hostlen);
    out_host[hostlen] = '\0';
    return 0;
}

#define URL_ONES 0x0101010101010101u
#define URL_HIGH (URL_ONES * 0x80)

/* The high bit of each byte of x that equals c; exact up to the first
 * (lowest-order) one, as jsonword_marks. */
static inline uint64_t
url_word_eq(uint64_t x, unsigned char c)
{
    uint64_t y = x ^ (URL_ONES * c);

    return (y - URL_ONES) & ~y & URL_HIGH;
}

/* The high bit of each byte of x at or below space or DEL; exact up to
 * the first one. */
static inline uint64_t
url_word_space(uint64_t x)
{
    return (((x - URL_ONES * 0x21) & ~x) & URL_HIGH) | url_word_eq(x, 0x7f);
}

/* The offset of the first byte of s[0..n) at or below space or DEL
 * (which a URL refuses), or n when there is none. URLs are checked whole
 * on every request: a word at a time, the last bytes as the word that
 * ends s, and a marked word's bytes looked at one by one. */
static size_t
url_find_space(const char *s, size_t n)
{
    size_t i = 0;

    for (; i + 8 <= n; i += 8)
        if (url_word_space(jsonword_load(s + i)) != 0)
            break;
    if (i == n ||
        (n >= 8 && i > n - 8 && url_word_space(jsonword_load(s + n - 8)) == 0))
        return n;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c <= 0x20 || c == 0x7f)
            return i;
    }
    return n;
}

/* The length of the authority at a[0..n): up to the first '/', '?' or
 * '#', found a word at a time. */
static size_t
url_authority_len(const char *a, size_t n)
{
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        uint64_t x = jsonword_load(a + i);
        uint64_t m =
            url_word_eq(x, '/') | url_word_eq(x, '?') | url_word_eq(x, '#');

        if (m != 0) {
            i += jsonword_first(m);
            break;
        }
    }
    for (; i < n; i++)
        if (a[i] == '/' || a[i] == '?' || a[i] == '#')
            return i;
    return n;
}

/* How many bytes of scheme s[0..n) starts with, "http://" or "https://"
 * in any case, with *tls set for the second; 0 for neither. The test
 * strncasecmp made, with the letters compared at once: setting bit 5
 * folds only 'H', 'T', 'P', 'S' onto 'h', 't', 'p', 's'. */
static size_t
url_scheme_len(const char *s, size_t n, bool *tls)
{
    uint32_t w, http;

    if (n < 7)
        return 0;
    memcpy(&w, s, sizeof w);
    memcpy(&http, "http", sizeof http);
    if ((w | 0x20202020u) != http)
        return 0;
    if (memcmp(s + 4, "://", 3) == 0)
        return 7;
    if (n >= 8 && (s[4] | 0x20) == 's' && memcmp(s + 5, "://", 3) == 0) {
        *tls = true;
        return 8;
    }
    return 0;
}

int
url_split(const char *s, struct url_parts *out, char *err, size_t errlen)
{
    if (s == NULL) {
        *out = (struct url_parts){.host = "", .path = ""};
        return url_fail(err, errlen, "empty URL");
    }
    return url_splitn(s, strlen(s), out, err, errlen);
}

int
url_splitn(const char *s, size_t len, struct url_parts *out, char *err,
           size_t errlen)
{
    const char *p, *auth, *end = s + len, *hash;
    size_t n, i;
    int rc;

    *out = (struct url_parts){.host = "", .path = ""};
    if ((i = url_find_space(s, len)) < len)
        return url_fail(err, errlen,
                        "control or space byte 0x%02x at position %zu",
                        (unsigned char)s[i], i);
    if ((n = url_scheme_len(s, len, &out->tls)) == 0)
        return url_fail(err, errlen, "URL must start with http:// or https://");
    auth = s + n;
    /* The authority ends at the path, the query or the fragment. */
    n = url_authority_len(auth, (size_t)(end - auth));
    if (memchr(auth, '@', n) != NULL)
        return url_fail(err, errlen, "userinfo is not supported");
    rc = url_hostport_span(auth, n, false, &out->host, &out->host_len,
                           &out->port, &out->port_given, err, errlen);
    if (rc != 0)
        return rc;
    if (!out->port_given)
        out->port = out->tls ? URL_PORT_HTTPS : URL_PORT_HTTP;

    /* Path and query, cut at the fragment; "?q" alone becomes "/?q". */
    p = auth + n;
    out->path = p;
    hash = memchr(p, '#', (size_t)(end - p));
    out->path_len = (size_t)((hash != NULL ? hash : end) - p);
    out->slash = out->path_len == 0 || p[0] != '/';
    if (out->path_len + out->slash > URL_TARGET_MAX)
        return url_fail(err, errlen, "target longer than %d bytes",
                        URL_TARGET_MAX);
    return 0;
}

int
url_parse(const char *s, struct url *out, char *err, size_t errlen)
{
    struct url_parts u;
    int rc = url_split(s, &u, err, errlen);

    out->tls = u.tls;
    out->port = u.port;
    out->port_given = u.port_given;
    out->host[0] = out->target[0] = '\0';
    if (rc != 0)
        return rc;
    memcpy(out->host, u.host, u.host_len);
    out->host[u.host_len] = '\0';
    out->target[0] = '/';
    memcpy(out->target + u.slash, u.path, u.path_len);
    out->target[u.slash + u.path_len] = '\0';
    return 0;
}

int
url_parse_authority(const char *host, int port, uint16_t default_port,
                    char out_host[URL_HOST_MAX + 1], uint16_t *out_port,
                    char *err, size_t errlen)
{
    size_t len;
    bool given = false;
    uint16_t p = default_port;
    int rc;

    out_host[0] = '\0';
    if (host == NULL || host[0] == '\0')
        return url_fail(err, errlen, "empty host");
    if (port > 65535)
        return url_fail(err, errlen, "port out of range: %d", port);
    len = strlen(host);
    if (port > 0) {
        /* An explicit port wins: the host is taken whole, as http.client
         * does, brackets around an IPv6 literal dropped. */
        const char *h = host;

        if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
            h++;
            len -= 2;
        }
        if ((rc = url_check_hostn(h, len, err, errlen)) != 0)
            return rc;
        memcpy(out_host, h, len);
        out_host[len] = '\0';
        *out_port = (uint16_t)port;
        return 0;
    }
    rc = url_split_hostport(host, len, true, out_host, &p, &given, err, errlen);
    if (rc != 0)
        return rc;
    *out_port = given ? p : default_port;
    return 0;
}

/* Decodes %XX escapes of src[0..n) into dst (at least n bytes); returns
 * the decoded length. */
static size_t
url_unescape(const char *src, size_t n, char *dst)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        if (src[i] == '%' && i + 2 < n && isxdigit((unsigned char)src[i + 1]) &&
            isxdigit((unsigned char)src[i + 2])) {
            char hex[3] = {src[i + 1], src[i + 2], '\0'};

            dst[o++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            dst[o++] = src[i];
        }
    }
    return o;
}

int
url_basic_credentials(const char *plain, size_t n,
                      char out[6 + (URL_USERINFO_MAX + 2) / 3 * 4 + 1])
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 6;

    if (n > URL_USERINFO_MAX)
        return HCONN_EINVALID_URL;
    memcpy(out, "Basic ", 6);
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)(unsigned char)plain[i] << 16;

        if (i + 1 < n)
            v |= (unsigned)(unsigned char)plain[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)plain[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    out[o] = '\0';
    return 0;
}

int
url_parse_proxy(const char *s, struct url_proxy *out, char *err, size_t errlen)
{
    const char *p = s, *end, *at = NULL, *scheme_end = strstr(s, "://");
    char authority[URL_HOST_MAX + 16], plain[URL_USERINFO_MAX * 3];
    size_t n;

    memset(out, 0, sizeof *out);
    if (scheme_end != NULL) {
        if (scheme_end - s != 4 || strncasecmp(s, "http", 4) != 0)
            return url_fail(err, errlen,
                            "proxy \"%.64s\": only http:// proxies are "
                            "supported",
                            s);
        p = scheme_end + 3;
    }
    end = p + strcspn(p, "/?#");
    if (*end != '\0' && strcmp(end, "/") != 0)
        return url_fail(err, errlen, "proxy \"%.64s\": a proxy URL has no path",
                        s);
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q; /* the last one: a password may hold a bare '@' */
    if (at != NULL) {
        n = (size_t)(at - p);
        if (n > sizeof plain ||
            (n = url_unescape(p, n, plain)) > URL_USERINFO_MAX)
            return url_fail(err, errlen,
                            "proxy \"%.64s\": user and password over %d "
                            "bytes",
                            s, URL_USERINFO_MAX);
        url_basic_credentials(plain, n, out->authorization);
        p = at + 1;
    }
    n = (size_t)(end - p);
    if (n == 0 || n >= sizeof authority)
        return url_fail(err, errlen, "proxy \"%.64s\": %s", s,
                        n == 0 ? "no host" : "host too long");
    memcpy(authority, p, n);
    authority[n] = '\0';
    return url_parse_authority(authority, 0, URL_PROXY_PORT, out->host,
                               &out->port, err, errlen);
}
