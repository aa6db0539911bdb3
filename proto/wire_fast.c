/*
 * wire_fast.c — see wire_fast.h.
 *
 * Parsing a request line into a jansson tree and reading the tree back
 * was the largest cost per request left in hconnd. This scanner reads the
 * common messages once, in place, from a private copy of the line: each
 * string is unescaped where it stands and NUL-terminated over its closing
 * quote (never longer than its escaped form), so the copy holds every
 * string the request borrows. The same block holds host and target in
 * front, where wire_parse_client_msg's own block would, so the request
 * owns its strings through req.host and is freed the same way.
 *
 * It declines rather than decides: every check below that fails would
 * also fail (or is not known to pass) in wire_parse_client_msg, and it is
 * left to that function to say why. tests/fuzz/fuzz-wire-fast.c feeds the
 * same lines to both and traps on any accepted line whose result differs.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonword.h"
#include "url.h"
#include "wire.h"
#include "wire_fast.h"

#define WIRE_FAST_MAX_INT     9007199254740991LL /* 2^53-1, as wire.c */
#define WIRE_FAST_MAX_DIGITS  16                 /* digits in 2^53-1 */
#define WIRE_FAST_MAX_METHOD  64                 /* as wire.c */
#define WIRE_FAST_MAX_TIMEOUT 86400.0            /* as wire.c */
#define WIRE_FAST_MAX_REAL    40                 /* bytes in a fraction read */
#define WIRE_FAST_MAX_PATH    4096               /* as wire.c's WIRE_MAX_PATH */
#define WIRE_FAST_PAD         16 /* NULs after the copy: a step's reach */

/* The keys the scanner knows (wire_fast_key_find names them); any other
 * makes it decline. */
enum wire_fast_key {
    WIRE_FAST_KEY_ID,
    WIRE_FAST_KEY_METHOD,
    WIRE_FAST_KEY_URL,
    WIRE_FAST_KEY_HOST,
    WIRE_FAST_KEY_PORT,
    WIRE_FAST_KEY_TLS,
    WIRE_FAST_KEY_TARGET,
    WIRE_FAST_KEY_HEADERS,
    WIRE_FAST_KEY_SKIP_HOST,
    WIRE_FAST_KEY_SKIP_ACCEPT_ENCODING,
    WIRE_FAST_KEY_EXPECT_CONTINUE,
    WIRE_FAST_KEY_RAW,
    WIRE_FAST_KEY_DATA,
    WIRE_FAST_KEY_BODY,
    WIRE_FAST_KEY_LENGTH,
    WIRE_FAST_KEY_TIMEOUT,
    WIRE_FAST_KEY_READ_TIMEOUT,
    WIRE_FAST_KEY_PROXY,
    WIRE_FAST_KEY_END,
    WIRE_FAST_KEY_HTTP_VERSION,
    WIRE_FAST_NKEYS
};

#define WIRE_FAST_BIT(k) (1u << (k))

/* The keys of a "tls" object the scanner knows: paths, names and flags.
 * Inline PEM (long, escaped, checked by wire.c) makes it decline. */
enum wire_fast_tls_key {
    WIRE_FAST_TLS_VERIFY,
    WIRE_FAST_TLS_INSECURE,
    WIRE_FAST_TLS_CHECK_HOSTNAME,
    WIRE_FAST_TLS_CA_FILE,
    WIRE_FAST_TLS_CA_PATH,
    WIRE_FAST_TLS_CERT_FILE,
    WIRE_FAST_TLS_KEY_FILE,
    WIRE_FAST_TLS_SERVER_NAME,
    WIRE_FAST_TLS_MIN_VERSION,
    WIRE_FAST_TLS_NKEYS
};

static const char *const wire_fast_tls_key_names[WIRE_FAST_TLS_NKEYS] = {
    [WIRE_FAST_TLS_VERIFY] = "verify",
    [WIRE_FAST_TLS_INSECURE] = "insecure",
    [WIRE_FAST_TLS_CHECK_HOSTNAME] = "check_hostname",
    [WIRE_FAST_TLS_CA_FILE] = "ca_file",
    [WIRE_FAST_TLS_CA_PATH] = "ca_path",
    [WIRE_FAST_TLS_CERT_FILE] = "cert_file",
    [WIRE_FAST_TLS_KEY_FILE] = "key_file",
    [WIRE_FAST_TLS_SERVER_NAME] = "server_name",
    [WIRE_FAST_TLS_MIN_VERSION] = "min_version",
};

/* A scanned string: len bytes at s, NUL-terminated, valid UTF-8. */
struct wire_fast_str {
    char *s;
    size_t len;
};

/* The cursor over the private copy of the line. */
struct wire_fast_scan {
    char *p, *end;
};

/* What the fields said, before they are checked together. */
struct wire_fast_fields {
    unsigned seen; /* WIRE_FAST_BIT of each key present */
    bool id_is_int;
    int64_t id_int;
    struct wire_fast_str id_str, method, url, host, target, body, version;
    int64_t port, data, length;
    bool tls, skip_host, skip_accept_encoding, expect_continue, raw;
    /* "tls" as an object: the keys present and what they said */
    bool tls_object;
    unsigned tls_seen;
    bool tls_flags[WIRE_FAST_TLS_CA_FILE];
    struct wire_fast_str tls_strs[WIRE_FAST_TLS_NKEYS];
    double timeout, read_timeout;
    struct wire_header headers[WIRE_FAST_MAX_HEADERS];
    size_t nheaders;
};

/* Skips JSON whitespace, as jansson's lexer does. */
static void
wire_fast_ws(struct wire_fast_scan *sc)
{
    while (sc->p < sc->end && (*sc->p == ' ' || *sc->p == '\t' ||
                               *sc->p == '\r' || *sc->p == '\n'))
        sc->p++;
}

/* Takes byte c (after whitespace) if it is next. Inlined: a request
 * line takes a dozen. */
static inline __attribute__((always_inline)) bool
wire_fast_take(struct wire_fast_scan *sc, char c)
{
    /* Compact lines have no whitespace to skip: c is looked for first
     * (it is never whitespace itself). */
    if (sc->p < sc->end && *sc->p == c) {
        sc->p++;
        return true;
    }
    wire_fast_ws(sc);
    if (sc->p < sc->end && *sc->p == c) {
        sc->p++;
        return true;
    }
    return false;
}

/* Reads a string, unescaping it in place. Declines on \u escapes (which
 * may carry U+0000 or surrogate pairs), raw control bytes (invalid JSON)
 * and bytes that are not UTF-8 (which jansson refuses). */
static bool
wire_fast_string(struct wire_fast_scan *sc, struct wire_fast_str *out)
{
    char *p, *w;
    bool high = false;

    if (!wire_fast_take(sc, '"'))
        return false;
    p = out->s = sc->p;
    /* Up to the first quote, backslash, control or non-ASCII byte nothing
     * moves and nothing needs checking: skipped 16 bytes at a time, to the
     * first such byte of the 16 that hold one (or a plain byte before it,
     * without SSE2 on a big-endian machine: the loop below is exact). The
     * NULs that pad the line stop it by the end of the line, so no length
     * check is needed, and a key or a short value takes one step. */
    for (;;) {
        unsigned m = jsonword_odd16(p);

        if (m != 0) {
            p += __builtin_ctz(m);
            break;
        }
        p += 16;
    }
    /* The common end: the first odd byte is the closing quote (not a pad
     * NUL: the line's end is not reached). */
    if (*p == '"') {
        out->len = (size_t)(p - out->s);
        *p = '\0';
        sc->p = p + 1;
        return true;
    }
    w = p;
    while (p < sc->end) {
        unsigned char c = (unsigned char)*p++;

        if (c == '"') {
            out->len = (size_t)(w - out->s);
            *w = '\0';
            sc->p = p;
            return !high || wire_is_utf8(out->s, out->len);
        }
        if (c < 0x20)
            return false;
        high |= c >= 0x80;
        if (c == '\\') {
            if (p == sc->end)
                return false;
            switch (*p++) {
            case '"':
                c = '"';
                break;
            case '\\':
                c = '\\';
                break;
            case '/':
                c = '/';
                break;
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'n':
                c = '\n';
                break;
            case 'r':
                c = '\r';
                break;
            case 't':
                c = '\t';
                break;
            default:
                return false;
            }
        }
        *w++ = (char)c;
    }
    return false;
}

/* Reads the digits of an unsigned integer, at most WIRE_FAST_MAX_DIGITS of them
 * (so at most 10^16-1: no overflow, and json_int_t holds it). A leading
 * zero followed by more digits, a fraction or an exponent is left for the
 * caller's structural check to decline. */
static bool
wire_fast_digits(struct wire_fast_scan *sc, int64_t *out)
{
    const char *start;
    int64_t v = 0;

    wire_fast_ws(sc);
    start = sc->p;
    if (sc->p < sc->end && *sc->p == '0') {
        sc->p++;
        *out = 0;
        return true;
    }
    while (sc->p < sc->end && *sc->p >= '0' && *sc->p <= '9') {
        if (sc->p - start == WIRE_FAST_MAX_DIGITS)
            return false;
        v = v * 10 + (*sc->p++ - '0');
    }
    *out = v;
    return sc->p > start;
}

/* Reads an integer from 0 to 2^53-1. */
static bool
wire_fast_uint(struct wire_fast_scan *sc, int64_t *out)
{
    return wire_fast_digits(sc, out) && *out <= WIRE_FAST_MAX_INT;
}

/* Reads a non-negative number: an integer (as a double, as
 * json_number_value gives it) or digits '.' digits through strtod, as
 * jansson reads a real. Exponents and signs are declined. */
static bool
wire_fast_number(struct wire_fast_scan *sc, double *out)
{
    char buf[WIRE_FAST_MAX_REAL + 1];
    const char *start;
    int64_t v;
    size_t n;

    wire_fast_ws(sc);
    start = sc->p;
    if (!wire_fast_digits(sc, &v))
        return false;
    if (sc->p == sc->end || *sc->p != '.') {
        *out = (double)v;
        return true;
    }
    sc->p++;
    while (sc->p < sc->end && *sc->p >= '0' && *sc->p <= '9')
        sc->p++;
    n = (size_t)(sc->p - start);
    if (sc->p[-1] == '.' || n > WIRE_FAST_MAX_REAL)
        return false;
    memcpy(buf, start, n);
    buf[n] = '\0';
    *out = strtod(buf, NULL);
    return true;
}

/* Takes the literal word (true, false). */
static bool
wire_fast_word(struct wire_fast_scan *sc, const char *word, size_t n)
{
    wire_fast_ws(sc);
    if ((size_t)(sc->end - sc->p) < n || memcmp(sc->p, word, n) != 0)
        return false;
    sc->p += n;
    return true;
}

/* Reads true or false. */
static bool
wire_fast_bool(struct wire_fast_scan *sc, bool *out)
{
    if (wire_fast_word(sc, "true", 4))
        *out = true;
    else if (wire_fast_word(sc, "false", 5))
        *out = false;
    else
        return false;
    return true;
}

/* Adds one header pair; declines past WIRE_FAST_MAX_HEADERS. */
static bool
wire_fast_header_add(struct wire_fast_fields *f,
                     const struct wire_fast_str *name,
                     const struct wire_fast_str *value)
{
    if (f->nheaders == WIRE_FAST_MAX_HEADERS)
        return false;
    f->headers[f->nheaders].name = name->s;
    f->headers[f->nheaders].value = value->s;
    f->nheaders++;
    return true;
}

/* Reads [[name, value], ...]. */
static bool
wire_fast_header_pairs(struct wire_fast_scan *sc, struct wire_fast_fields *f)
{
    struct wire_fast_str name, value;

    if (wire_fast_take(sc, ']'))
        return true;
    do {
        if (!wire_fast_take(sc, '[') || !wire_fast_string(sc, &name) ||
            !wire_fast_take(sc, ',') || !wire_fast_string(sc, &value) ||
            !wire_fast_take(sc, ']') || !wire_fast_header_add(f, &name, &value))
            return false;
    } while (wire_fast_take(sc, ','));
    return wire_fast_take(sc, ']');
}

/* Reads {name: value, ...}; a repeated name is declined, as jansson
 * refuses duplicate keys. */
static bool
wire_fast_header_object(struct wire_fast_scan *sc, struct wire_fast_fields *f)
{
    struct wire_fast_str name, value;

    if (wire_fast_take(sc, '}'))
        return true;
    do {
        if (!wire_fast_string(sc, &name) || !wire_fast_take(sc, ':') ||
            !wire_fast_string(sc, &value))
            return false;
        for (size_t i = 0; i < f->nheaders; i++) {
            if (strcmp(f->headers[i].name, name.s) == 0)
                return false;
        }
        if (!wire_fast_header_add(f, &name, &value))
            return false;
    } while (wire_fast_take(sc, ','));
    return wire_fast_take(sc, '}');
}

/* Reads a "tls" object after its '{': known keys once each, strings and
 * booleans by key. Whether they make sense together is checked later. */
static bool
wire_fast_tls_object(struct wire_fast_scan *sc, struct wire_fast_fields *f)
{
    struct wire_fast_str key;
    int k;

    f->tls_object = true;
    if (wire_fast_take(sc, '}'))
        return true;
    do {
        if (!wire_fast_string(sc, &key) || !wire_fast_take(sc, ':'))
            return false;
        for (k = 0; k < WIRE_FAST_TLS_NKEYS; k++)
            if (strcmp(wire_fast_tls_key_names[k], key.s) == 0)
                break;
        if (k == WIRE_FAST_TLS_NKEYS || (f->tls_seen & WIRE_FAST_BIT(k)) != 0)
            return false;
        f->tls_seen |= WIRE_FAST_BIT(k);
        if (k < WIRE_FAST_TLS_CA_FILE ? !wire_fast_bool(sc, &f->tls_flags[k])
                                      : !wire_fast_string(sc, &f->tls_strs[k]))
            return false;
    } while (wire_fast_take(sc, ','));
    return wire_fast_take(sc, '}');
}

/* The string of tls key k if given (NULL if not); false when it is given
 * but not of min to max bytes. */
static bool
wire_fast_tls_str(const struct wire_fast_fields *f, int k, size_t min,
                  size_t max, const char **out)
{
    if ((f->tls_seen & WIRE_FAST_BIT(k)) == 0)
        return true;
    *out = f->tls_strs[k].s;
    return f->tls_strs[k].len >= min && f->tls_strs[k].len <= max;
}

/* Fills t from a "tls" object as wire_parse_tls would, or declines. */
static bool
wire_fast_tls_options(const struct wire_fast_fields *f, struct wire_tls *t)
{
    bool given_true = (f->tls_seen & WIRE_FAST_BIT(WIRE_FAST_TLS_VERIFY)) &&
                      f->tls_flags[WIRE_FAST_TLS_VERIFY];
    char herr[192];

    if (!wire_fast_tls_str(f, WIRE_FAST_TLS_CA_FILE, 1, WIRE_FAST_MAX_PATH,
                           &t->ca_file) ||
        !wire_fast_tls_str(f, WIRE_FAST_TLS_CA_PATH, 1, WIRE_FAST_MAX_PATH,
                           &t->ca_path) ||
        !wire_fast_tls_str(f, WIRE_FAST_TLS_CERT_FILE, 1, WIRE_FAST_MAX_PATH,
                           &t->cert_file) ||
        !wire_fast_tls_str(f, WIRE_FAST_TLS_KEY_FILE, 1, WIRE_FAST_MAX_PATH,
                           &t->key_file) ||
        !wire_fast_tls_str(f, WIRE_FAST_TLS_SERVER_NAME, 1, URL_HOST_MAX,
                           &t->server_name) ||
        !wire_fast_tls_str(f, WIRE_FAST_TLS_MIN_VERSION, 1, 3, &t->min_version))
        return false;
    if ((t->key_file != NULL && t->cert_file == NULL) ||
        (t->server_name != NULL &&
         url_check_host(t->server_name, herr, sizeof herr) != 0) ||
        (t->min_version != NULL && strcmp(t->min_version, "1.2") != 0 &&
         strcmp(t->min_version, "1.3") != 0))
        return false;
    t->verify = (f->tls_seen & WIRE_FAST_BIT(WIRE_FAST_TLS_VERIFY)) == 0 ||
                f->tls_flags[WIRE_FAST_TLS_VERIFY];
    t->insecure = (f->tls_seen & WIRE_FAST_BIT(WIRE_FAST_TLS_INSECURE)) &&
                  f->tls_flags[WIRE_FAST_TLS_INSECURE];
    if (t->insecure && given_true)
        return false; /* both true: wire.c says why */
    if (t->insecure)
        t->verify = false;
    t->insecure = !t->verify;
    t->no_check_hostname =
        (f->tls_seen & WIRE_FAST_BIT(WIRE_FAST_TLS_CHECK_HOSTNAME)) &&
        !f->tls_flags[WIRE_FAST_TLS_CHECK_HOSTNAME];
    return true;
}

/* Reads the value of key k into f. */
static bool
wire_fast_value(struct wire_fast_scan *sc, enum wire_fast_key k,
                struct wire_fast_fields *f)
{
    bool yes;

    switch (k) {
    case WIRE_FAST_KEY_ID:
        wire_fast_ws(sc);
        if (sc->p < sc->end && *sc->p == '"')
            return wire_fast_string(sc, &f->id_str);
        f->id_is_int = true;
        return wire_fast_uint(sc, &f->id_int);
    case WIRE_FAST_KEY_METHOD:
        return wire_fast_string(sc, &f->method);
    case WIRE_FAST_KEY_URL:
        return wire_fast_string(sc, &f->url);
    case WIRE_FAST_KEY_HOST:
        return wire_fast_string(sc, &f->host);
    case WIRE_FAST_KEY_TARGET:
        return wire_fast_string(sc, &f->target);
    case WIRE_FAST_KEY_BODY:
        return wire_fast_string(sc, &f->body);
    case WIRE_FAST_KEY_HTTP_VERSION:
        return wire_fast_string(sc, &f->version);
    case WIRE_FAST_KEY_PORT:
        return wire_fast_uint(sc, &f->port);
    case WIRE_FAST_KEY_DATA:
        return wire_fast_uint(sc, &f->data);
    case WIRE_FAST_KEY_LENGTH:
        return wire_fast_uint(sc, &f->length);
    case WIRE_FAST_KEY_TLS:
        if (wire_fast_take(sc, '{'))
            return wire_fast_tls_object(sc, f);
        return wire_fast_bool(sc, &f->tls);
    case WIRE_FAST_KEY_SKIP_HOST:
        return wire_fast_bool(sc, &f->skip_host);
    case WIRE_FAST_KEY_SKIP_ACCEPT_ENCODING:
        return wire_fast_bool(sc, &f->skip_accept_encoding);
    case WIRE_FAST_KEY_EXPECT_CONTINUE:
        return wire_fast_bool(sc, &f->expect_continue);
    case WIRE_FAST_KEY_RAW:
        return wire_fast_bool(sc, &f->raw);
    case WIRE_FAST_KEY_TIMEOUT:
        return wire_fast_number(sc, &f->timeout);
    case WIRE_FAST_KEY_READ_TIMEOUT:
        return wire_fast_number(sc, &f->read_timeout);
    case WIRE_FAST_KEY_PROXY: /* false only: a tunnel's object is declined */
        return wire_fast_bool(sc, &yes) && !yes;
    case WIRE_FAST_KEY_END: /* true only: anything else is an error */
        return wire_fast_bool(sc, &yes) && yes;
    case WIRE_FAST_KEY_HEADERS:
        if (wire_fast_take(sc, '['))
            return wire_fast_header_pairs(sc, f);
        if (wire_fast_take(sc, '{'))
            return wire_fast_header_object(sc, f);
        return false;
    case WIRE_FAST_NKEYS:
        break;
    }
    return false;
}

/* True when s is the key lit (a literal); a compare of known length the
 * compiler writes inline. */
#define WIRE_FAST_KEY_IS(s, lit) (memcmp((s)->s, lit, sizeof lit - 1) == 0)

/* The known key named by s, or WIRE_FAST_NKEYS: picked by its length,
 * then compared with the few keys of that length. (A scanned string
 * holds no NUL: that would have been a \u escape or a raw control byte.) */
static enum wire_fast_key
wire_fast_key_find(const struct wire_fast_str *s)
{
    enum wire_fast_key k = WIRE_FAST_NKEYS;

    switch (s->len) {
    case 2:
        if (WIRE_FAST_KEY_IS(s, "id"))
            k = WIRE_FAST_KEY_ID;
        break;
    case 3:
        if (WIRE_FAST_KEY_IS(s, "url"))
            k = WIRE_FAST_KEY_URL;
        else if (WIRE_FAST_KEY_IS(s, "tls"))
            k = WIRE_FAST_KEY_TLS;
        else if (WIRE_FAST_KEY_IS(s, "raw"))
            k = WIRE_FAST_KEY_RAW;
        else if (WIRE_FAST_KEY_IS(s, "end"))
            k = WIRE_FAST_KEY_END;
        break;
    case 4:
        if (WIRE_FAST_KEY_IS(s, "host"))
            k = WIRE_FAST_KEY_HOST;
        else if (WIRE_FAST_KEY_IS(s, "port"))
            k = WIRE_FAST_KEY_PORT;
        else if (WIRE_FAST_KEY_IS(s, "data"))
            k = WIRE_FAST_KEY_DATA;
        else if (WIRE_FAST_KEY_IS(s, "body"))
            k = WIRE_FAST_KEY_BODY;
        break;
    case 5:
        if (WIRE_FAST_KEY_IS(s, "proxy"))
            k = WIRE_FAST_KEY_PROXY;
        break;
    case 6:
        if (WIRE_FAST_KEY_IS(s, "method"))
            k = WIRE_FAST_KEY_METHOD;
        else if (WIRE_FAST_KEY_IS(s, "target"))
            k = WIRE_FAST_KEY_TARGET;
        else if (WIRE_FAST_KEY_IS(s, "length"))
            k = WIRE_FAST_KEY_LENGTH;
        break;
    case 7:
        if (WIRE_FAST_KEY_IS(s, "headers"))
            k = WIRE_FAST_KEY_HEADERS;
        else if (WIRE_FAST_KEY_IS(s, "timeout"))
            k = WIRE_FAST_KEY_TIMEOUT;
        break;
    case 9:
        if (WIRE_FAST_KEY_IS(s, "skip_host"))
            k = WIRE_FAST_KEY_SKIP_HOST;
        break;
    case 12:
        if (WIRE_FAST_KEY_IS(s, "read_timeout"))
            k = WIRE_FAST_KEY_READ_TIMEOUT;
        else if (WIRE_FAST_KEY_IS(s, "http_version"))
            k = WIRE_FAST_KEY_HTTP_VERSION;
        break;
    case 15:
        if (WIRE_FAST_KEY_IS(s, "expect_continue"))
            k = WIRE_FAST_KEY_EXPECT_CONTINUE;
        break;
    case 20:
        if (WIRE_FAST_KEY_IS(s, "skip_accept_encoding"))
            k = WIRE_FAST_KEY_SKIP_ACCEPT_ENCODING;
        break;
    }
    return k;
}

/* Reads the whole line: one object of known, distinct keys, then only
 * whitespace. */
static bool
wire_fast_object(struct wire_fast_scan *sc, struct wire_fast_fields *f)
{
    struct wire_fast_str key;
    enum wire_fast_key k;

    if (!wire_fast_take(sc, '{'))
        return false;
    do {
        if (!wire_fast_string(sc, &key) || !wire_fast_take(sc, ':') ||
            (k = wire_fast_key_find(&key)) == WIRE_FAST_NKEYS ||
            (f->seen & WIRE_FAST_BIT(k)) != 0)
            return false;
        f->seen |= WIRE_FAST_BIT(k);
        if (!wire_fast_value(sc, k, f))
            return false;
    } while (wire_fast_take(sc, ','));
    if (!wire_fast_take(sc, '}'))
        return false;
    wire_fast_ws(sc);
    return sc->p == sc->end;
}

/* True when each byte of a target is visible: none at or below space, no
 * DEL (as wire_parse_origin checks "target"). */
static bool
wire_fast_target_ok(const struct wire_fast_str *t)
{
    for (size_t i = 0; i < t->len; i++) {
        unsigned char b = (unsigned char)t->s[i];

        if (b <= 0x20 || b == 0x7f)
            return false;
    }
    return true;
}

/* Puts host[0..hlen) and the target, "/" when slash and then
 * path[0..plen), at the front of block (room bytes), each NUL-terminated,
 * as wire_parse_origin's block: r->host owns it from here on. */
static bool
wire_fast_set_origin(struct wire_request *r, char *block, size_t room,
                     const char *host, size_t hlen, bool slash,
                     const char *path, size_t plen)
{
    char *target = block + hlen + 1;

    if (hlen + slash + plen + 2 > room)
        return false;
    memmove(block, host, hlen);
    block[hlen] = '\0';
    target[0] = '/';
    memmove(target + slash, path, plen);
    target[slash + plen] = '\0';
    r->host = block;
    r->target = target;
    return true;
}

/* Reads "url", or "host"/"port"/"tls"/"target". */
static bool
wire_fast_origin(const struct wire_fast_fields *f, struct wire_request *r,
                 char *block, size_t room)
{
    const unsigned host_keys =
        WIRE_FAST_BIT(WIRE_FAST_KEY_HOST) | WIRE_FAST_BIT(WIRE_FAST_KEY_PORT) |
        WIRE_FAST_BIT(WIRE_FAST_KEY_TARGET) | WIRE_FAST_BIT(WIRE_FAST_KEY_TLS);
    char uerr[192];
    struct url_parts u;

    if (f->seen & WIRE_FAST_BIT(WIRE_FAST_KEY_URL)) {
        /* TLS options go with an https:// URL; other host keys never. */
        if ((f->seen & host_keys &
             ~(f->tls_object ? WIRE_FAST_BIT(WIRE_FAST_KEY_TLS) : 0u)) != 0 ||
            f->url.len < 1 || f->url.len > WIRE_MAX_LINE ||
            url_splitn(f->url.s, f->url.len, &u, uerr, sizeof uerr) != 0 ||
            (!u.tls && f->tls_object))
            return false;
        r->tls = u.tls;
        r->port = u.port;
        return wire_fast_set_origin(r, block, room, u.host, u.host_len, u.slash,
                                    u.path, u.path_len);
    }
    if ((f->seen & WIRE_FAST_BIT(WIRE_FAST_KEY_HOST)) == 0 || f->host.len < 1 ||
        f->host.len > URL_HOST_MAX ||
        url_check_host(f->host.s, uerr, sizeof uerr) != 0)
        return false;
    r->tls = f->tls || f->tls_object; /* TLS options mean TLS */
    r->port = r->tls ? 443 : 80;
    if (f->seen & WIRE_FAST_BIT(WIRE_FAST_KEY_PORT)) {
        if (f->port < 1 || f->port > 65535)
            return false;
        r->port = (uint16_t)f->port;
    }
    if (f->seen & WIRE_FAST_BIT(WIRE_FAST_KEY_TARGET)) {
        if (f->target.len < 1 || f->target.len > URL_TARGET_MAX ||
            !wire_fast_target_ok(&f->target))
            return false;
        return wire_fast_set_origin(r, block, room, f->host.s, f->host.len,
                                    false, f->target.s, f->target.len);
    }
    return wire_fast_set_origin(r, block, room, f->host.s, f->host.len, true,
                                "", 0);
}

/* Fills a request from f, as wire_parse_request would. */
static bool
wire_fast_request(const struct wire_fast_fields *f, struct wire_client_msg *m,
                  char *block, size_t room)
{
    struct wire_request *r = &m->req;
    bool body = (f->seen & WIRE_FAST_BIT(WIRE_FAST_KEY_BODY)) != 0;

    m->kind = WIRE_MSG_REQUEST;
    if ((f->seen & WIRE_FAST_BIT(WIRE_FAST_KEY_END)) != 0 ||
        f->method.len < 1 || f->method.len > WIRE_FAST_MAX_METHOD ||
        !wire_fast_origin(f, r, block, room))
        return false;
    r->method = f->method.s;
    if (f->nheaders > 0) {
        r->headers = malloc(f->nheaders * sizeof *r->headers);
        if (r->headers == NULL)
            return false;
        memcpy(r->headers, f->headers, f->nheaders * sizeof *r->headers);
        r->nheaders = f->nheaders;
    }
    r->skip_host = f->skip_host;
    r->skip_accept_encoding = f->skip_accept_encoding;
    r->expect_continue = f->expect_continue;
    r->raw = f->raw;

    if (body) {
        if (strcmp(f->body.s, "stream") != 0 || m->has_data)
            return false;
        r->body = WIRE_BODY_STREAM;
        if (f->seen & WIRE_FAST_BIT(WIRE_FAST_KEY_LENGTH))
            r->length = f->length;
    } else if (f->seen & WIRE_FAST_BIT(WIRE_FAST_KEY_LENGTH)) {
        return false;
    } else if (m->has_data) {
        r->body = WIRE_BODY_INLINE;
        r->length = (int64_t)m->data_len;
    }
    if (f->seen & WIRE_FAST_BIT(WIRE_FAST_KEY_TIMEOUT)) {
        if (!(f->timeout > 0) || f->timeout > WIRE_FAST_MAX_TIMEOUT)
            return false;
        r->timeout = f->timeout;
    }
    if (f->seen & WIRE_FAST_BIT(WIRE_FAST_KEY_READ_TIMEOUT)) {
        if (!(f->read_timeout >= 0) || f->read_timeout > WIRE_FAST_MAX_TIMEOUT)
            return false;
        r->has_read_timeout = true;
        r->read_timeout = f->read_timeout;
    }
    r->direct = (f->seen & WIRE_FAST_BIT(WIRE_FAST_KEY_PROXY)) != 0;
    if (f->seen & WIRE_FAST_BIT(WIRE_FAST_KEY_HTTP_VERSION)) {
        if (strcmp(f->version.s, "1.1") == 0)
            r->http_version = WIRE_HTTP_1_1;
        else if (strcmp(f->version.s, "2") == 0)
            r->http_version = WIRE_HTTP_2;
        else if (strcmp(f->version.s, "auto") != 0)
            return false;
    }
    if (f->tls_object) {
        r->has_tls_options = true;
        return wire_fast_tls_options(f, &r->tls_options);
    }
    return true;
}

/* Checks a data or end frame: "id" and one of "data", "end" (true). */
static bool
wire_fast_frame(const struct wire_fast_fields *f, struct wire_client_msg *m)
{
    bool data = (f->seen & WIRE_FAST_BIT(WIRE_FAST_KEY_DATA)) != 0;
    unsigned allowed =
        WIRE_FAST_BIT(WIRE_FAST_KEY_ID) |
        WIRE_FAST_BIT(data ? WIRE_FAST_KEY_DATA : WIRE_FAST_KEY_END);

    m->kind = data ? WIRE_MSG_DATA : WIRE_MSG_END;
    return (f->seen & ~allowed) == 0 &&
           (f->seen & WIRE_FAST_BIT(WIRE_FAST_KEY_ID)) != 0;
}

enum wire_fast_result
wire_fast_parse_client_msg(const char *line, size_t n,
                           struct wire_client_msg *out, json_t **id)
{
    struct wire_fast_fields f;
    struct wire_fast_scan sc;
    size_t room = n + 2; /* host, NUL, target, NUL: never more than n */
    char *block;
    bool ok;

    memset(out, 0, sizeof *out);
    *id = NULL;
    /* The copy, then NULs: wire_fast_string reads 16 bytes at a time. */
    if (n == 0 || n > WIRE_MAX_LINE ||
        (block = malloc(room + n + WIRE_FAST_PAD)) == NULL)
        return WIRE_FAST_DECLINED;
    memcpy(block + room, line, n);
    memset(block + room + n, 0, WIRE_FAST_PAD);
    sc.p = block + room;
    sc.end = sc.p + n;
    f.seen = 0;
    f.id_is_int = false;
    f.nheaders = 0;
    f.tls = f.skip_host = f.skip_accept_encoding = false;
    f.expect_continue = f.raw = false;
    f.tls_object = false;
    f.tls_seen = 0;

    out->req.length = -1;
    out->req.tls_options.verify = true;
    ok = wire_fast_object(&sc, &f);
    if (ok && (f.seen & WIRE_FAST_BIT(WIRE_FAST_KEY_DATA))) {
        out->has_data = true;
        out->data_len = (uint64_t)f.data;
    }
    if (ok && (f.seen & WIRE_FAST_BIT(WIRE_FAST_KEY_ID)) && !f.id_is_int)
        ok = f.id_str.len >= 1 && f.id_str.len <= WIRE_MAX_ID;
    if (ok && (f.seen & WIRE_FAST_BIT(WIRE_FAST_KEY_METHOD)))
        ok = wire_fast_request(&f, out, block, room);
    else if (ok && (f.seen & (WIRE_FAST_BIT(WIRE_FAST_KEY_DATA) |
                              WIRE_FAST_BIT(WIRE_FAST_KEY_END))))
        ok = wire_fast_frame(&f, out);
    else
        ok = false;
    if (ok && (f.seen & WIRE_FAST_BIT(WIRE_FAST_KEY_ID))) {
        *id = f.id_is_int ? json_integer((json_int_t)f.id_int)
                          : json_stringn(f.id_str.s, f.id_str.len);
        ok = *id != NULL;
        out->id = *id;
    }
    if (!ok) {
        if (out->req.host != block)
            free(block);
        wire_client_msg_clear(out);
        return WIRE_FAST_DECLINED;
    }
    if (out->kind != WIRE_MSG_REQUEST)
        free(block);
    return WIRE_FAST_ACCEPTED;
}
