/*
 * wire.c — the hconn wire protocol v1 codec (proto/PROTOCOL.md is the
 * spec): line framing, validation of client messages, the daemon's reply
 * builders and the client's reply parser. Pure: no I/O, no clock; the
 * caller owns the socket and reads the raw payload bytes itself.
 *
 * Client messages are untrusted. Every field is read with a typed,
 * bounds-checked getter (OpenSMTPD style) that names the field in err, and
 * unknown fields are refused, so a bad message becomes an error reply that
 * says what was wrong, never a crash or a silently ignored typo. Replies
 * come from our own daemon: unknown fields in them are ignored, so a newer
 * daemon can add some.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hconn_error.h"
#include "url.h"
#include "wire.h"

#define WIRE_MAX_INT     9007199254740991LL /* 2^53-1: exact in a double */
#define WIRE_MAX_METHOD  64                 /* bytes in a method */
#define WIRE_MAX_PATH    4096               /* bytes in a TLS file path */
#define WIRE_MAX_TIMEOUT 86400.0            /* seconds in "timeout" */
#define WIRE_DECODE_FLAGS                                                      \
    (JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)

/* Where the errors of one message go; obj prefixes field names ("tls."). */
struct wire_ctx {
    char *err;
    size_t errlen;
    const char *obj;
};

/* Writes err and returns code, so every failure is one statement. */
static int __attribute__((format(printf, 3, 4)))
wire_fail(struct wire_ctx *c, int code, const char *fmt, ...)
{
    va_list ap;

    if (c->err != NULL && c->errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(c->err, c->errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ---- Framing --------------------------------------------------------- */

void
wire_reader_init(struct wire_reader *r, size_t max_line)
{
    r->max_line = max_line > 0 ? max_line : WIRE_MAX_LINE;
    r->discarding = false;
}

/* True for a line of JSON whitespace only: ignored, like an empty line. */
static bool
wire_line_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return false;
    }
    return true;
}

int
wire_read_line(struct wire_reader *r, const char *buf, size_t len,
               size_t *consumed, json_t **msg, char *err, size_t errlen)
{
    struct wire_ctx c = {err, errlen, ""};
    const char *nl;
    size_t n;
    json_error_t jerr;
    json_t *v;

    *consumed = 0;
    *msg = NULL;
    if (r->discarding) {
        /* The tail of an over-long line, already reported. */
        nl = memchr(buf, '\n', len);
        if (nl == NULL) {
            *consumed = len;
            return 0;
        }
        *consumed = (size_t)(nl - buf) + 1;
        r->discarding = false;
        return 0;
    }
    nl = memchr(buf, '\n', len < r->max_line ? len : r->max_line);
    if (nl == NULL) {
        if (len < r->max_line)
            return 0; /* no complete line yet */
        /* Over-long: drop through its '\n' if buffered, else discard
         * what we have and the rest in later calls. */
        nl = memchr(buf, '\n', len);
        if (nl != NULL) {
            *consumed = (size_t)(nl - buf) + 1;
        } else {
            *consumed = len;
            r->discarding = true;
        }
        return wire_fail(&c, HCONN_EBAD_MESSAGE,
                         "message line exceeds %zu bytes", r->max_line);
    }
    n = (size_t)(nl - buf);
    *consumed = n + 1;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (wire_line_blank(buf, n))
        return 0;
    v = json_loadb(buf, n, WIRE_DECODE_FLAGS, &jerr);
    if (v == NULL)
        return wire_fail(&c, HCONN_EBAD_MESSAGE, "invalid JSON: %s (column %d)",
                         jerr.text, jerr.column);
    if (!json_is_object(v)) {
        json_decref(v);
        return wire_fail(&c, HCONN_EBAD_MESSAGE,
                         "message is not a JSON object");
    }
    *msg = v;
    return 0;
}

char *
wire_encode(const json_t *msg, size_t *len)
{
    size_t n = json_dumpb(msg, NULL, 0, JSON_COMPACT);
    char *buf;

    if (n == 0 || (buf = malloc(n + 1)) == NULL)
        return NULL;
    if (json_dumpb(msg, buf, n, JSON_COMPACT) != n) {
        free(buf);
        return NULL;
    }
    buf[n] = '\n';
    *len = n + 1;
    return buf;
}

/* Length of the UTF-8 sequence at s[0..n) (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0 when it is not one. */
static size_t
wire_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char lo = 0x80, hi = 0xbf;
    size_t need;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        need = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        need = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        need = 4;
    else
        return 0;
    if (s[0] == 0xe0)
        lo = 0xa0; /* overlong */
    else if (s[0] == 0xed)
        hi = 0x9f; /* surrogates */
    else if (s[0] == 0xf0)
        lo = 0x90; /* overlong */
    else if (s[0] == 0xf4)
        hi = 0x8f; /* above U+10FFFF */
    if (n < need || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    }
    return need;
}

bool
wire_is_utf8(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t step;

    for (size_t i = 0; i < n; i += step)
        if ((step = wire_utf8_seq(u + i, n - i)) == 0)
            return false;
    return true;
}

char *
wire_latin1_to_utf8(const char *s, size_t n, size_t *outlen)
{
    const unsigned char *u = (const unsigned char *)s;
    char *buf = malloc(2 * n);
    size_t k = 0;

    if (buf == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (u[i] < 0x80) {
            buf[k++] = (char)u[i];
        } else {
            buf[k++] = (char)(0xc0 | (u[i] >> 6));
            buf[k++] = (char)(0x80 | (u[i] & 0x3f));
        }
    }
    *outlen = k;
    return buf;
}

json_t *
wire_string_from_bytes(const char *s, size_t len)
{
    size_t k;
    char *buf;
    json_t *v;

    if (len == 0)
        return json_string("");
    if (wire_is_utf8(s, len))
        return json_stringn(s, len);
    if ((buf = wire_latin1_to_utf8(s, len, &k)) == NULL)
        return NULL;
    v = json_stringn_nocheck(buf, k);
    free(buf);
    return v;
}

/* ---- Typed field getters ---------------------------------------------
 * Each leaves *out alone when key is absent (the caller set the default)
 * and fails with code naming the field when it is present but wrong. */

/* Reads an optional boolean. */
static int
wire_get_bool(struct wire_ctx *c, const json_t *obj, const char *key, bool *out)
{
    json_t *v = json_object_get(obj, key);

    if (v == NULL)
        return 0;
    if (!json_is_boolean(v))
        return wire_fail(c, HCONN_EBAD_MESSAGE,
                         "field \"%s%s\" must be true or false", c->obj, key);
    *out = json_is_true(v);
    return 0;
}

/* True when v is an integer in [min, max]. */
static bool
wire_int_in(const json_t *v, int64_t min, int64_t max)
{
    return json_is_integer(v) && json_integer_value(v) >= min &&
           json_integer_value(v) <= max;
}

/* Reads an optional integer in [min, max]. */
static int
wire_get_int(struct wire_ctx *c, const json_t *obj, const char *key,
             int64_t min, int64_t max, int code, int64_t *out)
{
    json_t *v = json_object_get(obj, key);

    if (v == NULL)
        return 0;
    if (!wire_int_in(v, min, max))
        return wire_fail(c, code,
                         "field \"%s%s\" must be an integer from %lld to %lld",
                         c->obj, key, (long long)min, (long long)max);
    *out = json_integer_value(v);
    return 0;
}

/* Reads an optional port number, 1..65535. */
static int
wire_get_port(struct wire_ctx *c, const json_t *obj, const char *key, int code,
              uint16_t *out)
{
    int64_t port = -1;
    int rc = wire_get_int(c, obj, key, 1, 65535, code, &port);

    if (rc == 0 && port > 0)
        *out = (uint16_t)port;
    return rc;
}

/* Reads an optional string of minlen..maxlen bytes without U+0000. */
static int
wire_get_string(struct wire_ctx *c, const json_t *obj, const char *key,
                size_t minlen, size_t maxlen, int code, const char **out)
{
    json_t *v = json_object_get(obj, key);
    size_t n;

    if (v == NULL)
        return 0;
    if (!json_is_string(v))
        return wire_fail(c, code, "field \"%s%s\" must be a string", c->obj,
                         key);
    n = json_string_length(v);
    if (n < minlen || n > maxlen)
        return wire_fail(c, code,
                         "field \"%s%s\" must be a string of %zu to %zu bytes",
                         c->obj, key, minlen, maxlen);
    if (strlen(json_string_value(v)) != n)
        return wire_fail(c, code, "field \"%s%s\" contains a NUL character",
                         c->obj, key);
    *out = json_string_value(v);
    return 0;
}

/* Reads an optional string of any content (replies: no NUL check). */
static int
wire_get_text(struct wire_ctx *c, const json_t *obj, const char *key,
              const char **out)
{
    json_t *v = json_object_get(obj, key);

    if (v == NULL)
        return 0;
    if (!json_is_string(v))
        return wire_fail(c, HCONN_EBAD_MESSAGE,
                         "field \"%s%s\" must be a string", c->obj, key);
    *out = json_string_value(v);
    return 0;
}

/* Fails when key is absent: for the fields a message cannot do without. */
static int
wire_require(struct wire_ctx *c, const json_t *obj, const char *key)
{
    if (json_object_get(obj, key) != NULL)
        return 0;
    return wire_fail(c, HCONN_EBAD_MESSAGE, "field \"%s%s\" is required",
                     c->obj, key);
}

/* Refuses any key of obj not in the NULL-terminated allowed list, so a
 * misspelt option is an error rather than silently ignored. */
static int
wire_check_keys(struct wire_ctx *c, json_t *obj, const char *const *allowed)
{
    const char *key;
    size_t klen;
    json_t *v;

    json_object_keylen_foreach(obj, key, klen, v)
    {
        size_t i;

        if (strlen(key) != klen)
            return wire_fail(c, HCONN_EBAD_MESSAGE,
                             "field name \"%s%s...\" contains a NUL character",
                             c->obj, key);
        for (i = 0; allowed[i] != NULL; i++) {
            if (strcmp(key, allowed[i]) == 0)
                break;
        }
        if (allowed[i] == NULL)
            return wire_fail(c, HCONN_EBAD_MESSAGE, "unknown field \"%s%s\"",
                             c->obj, key);
    }
    return 0;
}

/* Checks one header name or value string, where says which. */
static int
wire_header_string(struct wire_ctx *c, const json_t *v, const char *where,
                   const char **out)
{
    if (!json_is_string(v))
        return wire_fail(c, HCONN_EINVALID_HEADER, "%s must be a string",
                         where);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return wire_fail(c, HCONN_EINVALID_HEADER,
                         "%s contains a NUL character", where);
    *out = json_string_value(v);
    return 0;
}

/* Reads optional header fields, [[name, value], ...] or {name: value},
 * into a malloc'd array; order and duplicates kept. */
static int
wire_get_headers(struct wire_ctx *c, json_t *obj, const char *key,
                 struct wire_header **out, size_t *n)
{
    json_t *v = json_object_get(obj, key);
    char where[128];
    size_t count;
    int rc;

    if (v == NULL)
        return 0;
    if (!json_is_array(v) && !json_is_object(v))
        return wire_fail(c, HCONN_EINVALID_HEADER,
                         "field \"%s%s\" must be an array of [name, value] "
                         "pairs or an object",
                         c->obj, key);
    count = json_is_array(v) ? json_array_size(v) : json_object_size(v);
    if (count == 0)
        return 0;
    if ((*out = calloc(count, sizeof(**out))) == NULL)
        return wire_fail(c, HCONN_ENO_MEMORY, "out of memory");
    if (json_is_array(v)) {
        size_t i;
        json_t *pair;

        json_array_foreach(v, i, pair)
        {
            snprintf(where, sizeof(where), "field \"%s%s[%zu]\"", c->obj, key,
                     i);
            if (!json_is_array(pair) || json_array_size(pair) != 2)
                return wire_fail(c, HCONN_EINVALID_HEADER,
                                 "%s must be a [name, value] pair", where);
            snprintf(where, sizeof(where), "header name in \"%s%s[%zu]\"",
                     c->obj, key, i);
            rc = wire_header_string(c, json_array_get(pair, 0), where,
                                    &(*out)[i].name);
            if (rc != 0)
                return rc;
            snprintf(where, sizeof(where), "header value in \"%s%s[%zu]\"",
                     c->obj, key, i);
            rc = wire_header_string(c, json_array_get(pair, 1), where,
                                    &(*out)[i].value);
            if (rc != 0)
                return rc;
        }
    } else {
        const char *name;
        size_t nlen, i = 0;
        json_t *value;

        json_object_keylen_foreach(v, name, nlen, value)
        {
            if (strlen(name) != nlen)
                return wire_fail(c, HCONN_EINVALID_HEADER,
                                 "header name \"%.64s...\" in \"%s%s\" "
                                 "contains a NUL character",
                                 name, c->obj, key);
            snprintf(where, sizeof(where), "header \"%.64s\" in \"%s%s\"", name,
                     c->obj, key);
            (*out)[i].name = name;
            if ((rc = wire_header_string(c, value, where, &(*out)[i].value)))
                return rc;
            i++;
        }
    }
    *n = count;
    return 0;
}

/* Checks an array of [name, value] string pairs in a reply. */
static int
wire_check_pairs(struct wire_ctx *c, const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key), *pair;
    size_t i;

    if (v == NULL)
        return 0;
    if (!json_is_array(v))
        return wire_fail(c, HCONN_EBAD_MESSAGE,
                         "field \"%s\" must be an array of [name, value] pairs",
                         key);
    json_array_foreach(v, i, pair)
    {
        if (!json_is_array(pair) || json_array_size(pair) != 2 ||
            !json_is_string(json_array_get(pair, 0)) ||
            !json_is_string(json_array_get(pair, 1)))
            return wire_fail(c, HCONN_EBAD_MESSAGE,
                             "field \"%s[%zu]\" must be a [name, value] pair "
                             "of strings",
                             key, i);
    }
    return 0;
}

/* ---- Client → daemon ------------------------------------------------- */

/* True for a usable id: integer 0..2^53-1, or 1..WIRE_MAX_ID bytes of
 * text without U+0000. */
static bool
wire_id_valid(const json_t *id)
{
    size_t n;

    if (json_is_integer(id))
        return wire_int_in(id, 0, WIRE_MAX_INT);
    if (!json_is_string(id))
        return false;
    n = json_string_length(id);
    return n >= 1 && n <= WIRE_MAX_ID && strlen(json_string_value(id)) == n;
}

/* Copies host and target into one malloc'd block owned by r->host, so a
 * target cut out of a URL outlives the parse. */
static int
wire_set_origin(struct wire_ctx *c, struct wire_request *r, const char *host,
                const char *target)
{
    size_t hlen = strlen(host), tlen = strlen(target);

    if ((r->host = malloc(hlen + tlen + 2)) == NULL)
        return wire_fail(c, HCONN_ENO_MEMORY, "out of memory");
    memcpy(r->host, host, hlen + 1);
    memcpy(r->host + hlen + 1, target, tlen + 1);
    r->target = r->host + hlen + 1;
    return 0;
}

/* Reads "url", or "host"/"port"/"tls"/"target": where the request goes. */
static int
wire_parse_origin(struct wire_ctx *c, json_t *msg, struct wire_request *r)
{
    static const char *const host_keys[] = {"host", "port", "tls", "target"};
    json_t *tls = json_object_get(msg, "tls");
    const char *s = NULL, *target = "/";
    char uerr[192];
    int rc;

    if (json_object_get(msg, "url") != NULL) {
        struct url *u; /* 64 KiB: on the heap, not the loop's stack */

        for (size_t i = 0; i < sizeof(host_keys) / sizeof(*host_keys); i++) {
            if (json_object_get(msg, host_keys[i]) == NULL ||
                (strcmp(host_keys[i], "tls") == 0 && json_is_object(tls)))
                continue;
            return wire_fail(c, HCONN_EBAD_MESSAGE,
                             "\"url\" and \"%s\" are mutually exclusive",
                             host_keys[i]);
        }
        rc = wire_get_string(c, msg, "url", 1, WIRE_MAX_LINE,
                             HCONN_EINVALID_URL, &s);
        if (rc != 0)
            return rc;
        if ((u = malloc(sizeof(*u))) == NULL)
            return wire_fail(c, HCONN_ENO_MEMORY, "out of memory");
        if ((rc = url_parse(s, u, uerr, sizeof(uerr))) != 0)
            rc = wire_fail(c, rc, "field \"url\": %s", uerr);
        else if (json_is_object(tls) && !u->tls)
            rc = wire_fail(c, HCONN_EBAD_MESSAGE,
                           "field \"tls\": TLS options for an http:// URL");
        else
            rc = wire_set_origin(c, r, u->host, u->target);
        r->tls = u->tls;
        r->port = u->port;
        free(u);
        return rc;
    }
    if (json_object_get(msg, "host") == NULL)
        return wire_fail(c, HCONN_EBAD_MESSAGE,
                         "request needs \"url\" or \"host\"");
    rc = wire_get_string(c, msg, "host", 1, URL_HOST_MAX, HCONN_EINVALID_URL,
                         &s);
    if (rc != 0)
        return rc;
    if ((rc = url_check_host(s, uerr, sizeof(uerr))) != 0)
        return wire_fail(c, rc, "field \"host\": %s", uerr);
    if (json_is_object(tls))
        r->tls = true; /* TLS options mean TLS */
    else if (tls != NULL && !json_is_boolean(tls))
        return wire_fail(c, HCONN_EBAD_MESSAGE,
                         "field \"tls\" must be true, false or an object");
    else
        r->tls = json_is_true(tls);
    r->port = r->tls ? 443 : 80;
    if ((rc = wire_get_port(c, msg, "port", HCONN_EINVALID_URL, &r->port)) ||
        (rc = wire_get_string(c, msg, "target", 1, URL_TARGET_MAX,
                              HCONN_EINVALID_URL, &target)))
        return rc;
    for (size_t i = 0; target[i] != '\0'; i++) {
        unsigned char b = (unsigned char)target[i];

        if (b <= 0x20 || b == 0x7f)
            return wire_fail(c, HCONN_EINVALID_URL,
                             "field \"target\": control or space byte 0x%02x "
                             "at position %zu",
                             b, i);
    }
    return wire_set_origin(c, r, s, target);
}

/* Checks an inline PEM field: some "-----BEGIN " block, nothing that
 * could not be PEM. OpenSSL parses it later; this only refuses what is
 * plainly not certificate or key material, naming the field. */
static int
wire_check_pem(struct wire_ctx *c, const char *key, const char *pem)
{
    if (pem != NULL && strstr(pem, "-----BEGIN ") == NULL)
        return wire_fail(c, HCONN_EBAD_MESSAGE,
                         "field \"tls.%s\" must hold PEM (\"-----BEGIN "
                         "...\")",
                         key);
    return 0;
}

/* Reads the "tls" options object. */
static int
wire_parse_tls(struct wire_ctx *c, json_t *obj, struct wire_tls *t)
{
    static const char *const keys[] = {
        "verify",   "insecure",       "ca_file",     "ca_path", "cert_file",
        "key_file", "server_name",    "min_version", "ca_pem",  "cert_pem",
        "key_pem",  "check_hostname", NULL};
    struct wire_ctx tc = {c->err, c->errlen, "tls."};
    char herr[192];
    bool check_hostname = true;
    int rc;

    t->verify = true;
    if ((rc = wire_check_keys(&tc, obj, keys)) ||
        (rc = wire_get_bool(&tc, obj, "verify", &t->verify)) ||
        (rc = wire_get_bool(&tc, obj, "insecure", &t->insecure)) ||
        (rc = wire_get_string(&tc, obj, "ca_file", 1, WIRE_MAX_PATH,
                              HCONN_EBAD_MESSAGE, &t->ca_file)) ||
        (rc = wire_get_string(&tc, obj, "ca_path", 1, WIRE_MAX_PATH,
                              HCONN_EBAD_MESSAGE, &t->ca_path)) ||
        (rc = wire_get_string(&tc, obj, "cert_file", 1, WIRE_MAX_PATH,
                              HCONN_EBAD_MESSAGE, &t->cert_file)) ||
        (rc = wire_get_string(&tc, obj, "key_file", 1, WIRE_MAX_PATH,
                              HCONN_EBAD_MESSAGE, &t->key_file)) ||
        (rc = wire_get_string(&tc, obj, "ca_pem", 1, WIRE_MAX_CA_PEM,
                              HCONN_EBAD_MESSAGE, &t->ca_pem)) ||
        (rc = wire_get_string(&tc, obj, "cert_pem", 1, WIRE_MAX_CERT_PEM,
                              HCONN_EBAD_MESSAGE, &t->cert_pem)) ||
        (rc = wire_get_string(&tc, obj, "key_pem", 1, WIRE_MAX_KEY_PEM,
                              HCONN_EBAD_MESSAGE, &t->key_pem)) ||
        (rc = wire_get_string(&tc, obj, "server_name", 1, URL_HOST_MAX,
                              HCONN_EBAD_MESSAGE, &t->server_name)) ||
        (rc = wire_get_string(&tc, obj, "min_version", 1, 3, HCONN_EBAD_MESSAGE,
                              &t->min_version)) ||
        (rc = wire_check_pem(c, "ca_pem", t->ca_pem)) ||
        (rc = wire_check_pem(c, "cert_pem", t->cert_pem)) ||
        (rc = wire_check_pem(c, "key_pem", t->key_pem)) ||
        (rc = wire_get_bool(&tc, obj, "check_hostname", &check_hostname)))
        return rc;
    t->no_check_hostname = !check_hostname;
    /* One source each for the trust anchors, the certificate and the key:
     * the material in effect is never a mix the client did not mean. */
    if (t->ca_pem != NULL && (t->ca_file != NULL || t->ca_path != NULL))
        return wire_fail(c, HCONN_EBAD_MESSAGE,
                         "field \"tls.ca_pem\" excludes \"tls.%s\"",
                         t->ca_file != NULL ? "ca_file" : "ca_path");
    if (t->cert_pem != NULL && t->cert_file != NULL)
        return wire_fail(c, HCONN_EBAD_MESSAGE,
                         "field \"tls.cert_pem\" excludes \"tls.cert_file\"");
    if (t->key_pem != NULL && t->key_file != NULL)
        return wire_fail(c, HCONN_EBAD_MESSAGE,
                         "field \"tls.key_pem\" excludes \"tls.key_file\"");
    if ((t->key_pem != NULL || t->key_file != NULL) && t->cert_pem == NULL &&
        t->cert_file == NULL)
        return wire_fail(c, HCONN_EBAD_MESSAGE,
                         "field \"tls.%s\" needs \"tls.cert_pem\" or "
                         "\"tls.cert_file\"",
                         t->key_pem != NULL ? "key_pem" : "key_file");
    if (t->server_name != NULL &&
        url_check_host(t->server_name, herr, sizeof(herr)) != 0)
        return wire_fail(c, HCONN_EBAD_MESSAGE, "field \"tls.server_name\": %s",
                         herr);
    if (t->min_version != NULL && strcmp(t->min_version, "1.2") != 0 &&
        strcmp(t->min_version, "1.3") != 0)
        return wire_fail(
            c, HCONN_EBAD_MESSAGE,
            "field \"tls.min_version\" must be \"1.2\" or \"1.3\"");
    /* One meaning for two spellings: verification is off iff insecure. */
    if (t->insecure && json_is_true(json_object_get(obj, "verify")))
        return wire_fail(c, HCONN_EBAD_MESSAGE,
                         "fields \"tls.verify\" and \"tls.insecure\" are both "
                         "true");
    if (t->insecure)
        t->verify = false;
    t->insecure = !t->verify;
    return 0;
}

/* Reads the "proxy" object: CONNECT through host:port. */
static int
wire_parse_proxy(struct wire_ctx *c, json_t *obj, struct wire_proxy *p)
{
    static const char *const keys[] = {"host", "port", "headers", NULL};
    struct wire_ctx pc = {c->err, c->errlen, "proxy."};
    char herr[192];
    int rc;

    if ((rc = wire_check_keys(&pc, obj, keys)) ||
        (rc = wire_require(&pc, obj, "host")) ||
        (rc = wire_require(&pc, obj, "port")) ||
        (rc = wire_get_string(&pc, obj, "host", 1, URL_HOST_MAX,
                              HCONN_EINVALID_URL, &p->host)) ||
        (rc = wire_get_port(&pc, obj, "port", HCONN_EINVALID_URL, &p->port)) ||
        (rc = wire_get_headers(&pc, obj, "headers", &p->headers, &p->nheaders)))
        return rc;
    if ((rc = url_check_host(p->host, herr, sizeof(herr))) != 0)
        return wire_fail(c, rc, "field \"proxy.host\": %s", herr);
    return 0;
}

/* Reads "source_address": [HOST, PORT] as http.client's tuple, HOST an
 * IPv4 or IPv6 address literal without brackets ("" for any), PORT
 * 0..65535 (0: any). Names are refused: the daemon binds, it does not
 * resolve, a source. */
static int
wire_parse_source(struct wire_ctx *c, const json_t *v, struct wire_request *r)
{
    const json_t *host = json_array_get(v, 0), *port = json_array_get(v, 1);
    unsigned char raw[16];
    const char *h;

    if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_string(host) ||
        !json_is_integer(port))
        return wire_fail(c, HCONN_EBAD_MESSAGE,
                         "field \"source_address\" must be [HOST, PORT]: an "
                         "address string (\"\" for any) and a port number");
    h = json_string_value(host);
    if (*h != '\0' && inet_pton(AF_INET, h, raw) != 1 &&
        inet_pton(AF_INET6, h, raw) != 1)
        return wire_fail(c, HCONN_EBAD_MESSAGE,
                         "field \"source_address[0]\": \"%.64s\" is not an "
                         "IPv4 or IPv6 address (no brackets, no names)",
                         h);
    if (json_integer_value(port) < 0 || json_integer_value(port) > 65535)
        return wire_fail(c, HCONN_EBAD_MESSAGE,
                         "field \"source_address[1]\" must be a port from 0 "
                         "to 65535");
    if (*h == '\0' && json_integer_value(port) == 0)
        return 0; /* ("", 0): the default, as in http.client */
    r->has_source = true;
    r->source_host = h;
    r->source_port = (uint16_t)json_integer_value(port);
    return 0;
}

/* Validates a request message (it has "method"). */
static int
wire_parse_request(struct wire_ctx *c, json_t *msg, struct wire_client_msg *m)
{
    static const char *const keys[] = {"id",
                                       "method",
                                       "url",
                                       "host",
                                       "port",
                                       "tls",
                                       "target",
                                       "headers",
                                       "skip_host",
                                       "skip_accept_encoding",
                                       "expect_continue",
                                       "raw",
                                       "data",
                                       "body",
                                       "length",
                                       "timeout",
                                       "read_timeout",
                                       "proxy",
                                       "source_address",
                                       "http_version",
                                       NULL};
    struct wire_request *r = &m->req;
    json_t *tls = json_object_get(msg, "tls"), *proxy, *timeout, *source;
    const char *body = NULL, *version = NULL;
    int rc;

    m->kind = WIRE_MSG_REQUEST;
    r->length = -1;
    r->tls_options.verify = true;
    if ((rc = wire_check_keys(c, msg, keys)) ||
        (rc = wire_require(c, msg, "method")) ||
        (rc = wire_get_string(c, msg, "method", 1, WIRE_MAX_METHOD,
                              HCONN_EBAD_MESSAGE, &r->method)) ||
        (rc = wire_parse_origin(c, msg, r)) ||
        (rc = wire_get_headers(c, msg, "headers", &r->headers, &r->nheaders)) ||
        (rc = wire_get_bool(c, msg, "skip_host", &r->skip_host)) ||
        (rc = wire_get_bool(c, msg, "skip_accept_encoding",
                            &r->skip_accept_encoding)) ||
        (rc = wire_get_bool(c, msg, "expect_continue", &r->expect_continue)) ||
        (rc = wire_get_bool(c, msg, "raw", &r->raw)) ||
        (rc = wire_get_string(c, msg, "body", 1, 16, HCONN_EBAD_MESSAGE,
                              &body)) ||
        (rc = wire_get_string(c, msg, "http_version", 1, 8, HCONN_EBAD_MESSAGE,
                              &version)))
        return rc;
    if (version == NULL || strcmp(version, "auto") == 0)
        r->http_version = WIRE_HTTP_AUTO;
    else if (strcmp(version, "1.1") == 0)
        r->http_version = WIRE_HTTP_1_1;
    else if (strcmp(version, "2") == 0)
        r->http_version = WIRE_HTTP_2;
    else
        return wire_fail(c, HCONN_EBAD_MESSAGE,
                         "field \"http_version\" must be \"auto\", \"1.1\" "
                         "or \"2\"");

    /* Body: inline ("data"), streamed ("body"), or none. */
    if (body != NULL && strcmp(body, "stream") != 0)
        return wire_fail(c, HCONN_EBAD_MESSAGE,
                         "field \"body\" must be \"stream\"");
    if (body != NULL && json_object_get(msg, "data") != NULL)
        return wire_fail(c, HCONN_EBAD_MESSAGE,
                         "\"data\" and \"body\" are mutually exclusive");
    if (body == NULL && json_object_get(msg, "length") != NULL)
        return wire_fail(c, HCONN_EBAD_MESSAGE,
                         "field \"length\" needs \"body\": \"stream\"");
    if (body != NULL) {
        r->body = WIRE_BODY_STREAM;
        rc = wire_get_int(c, msg, "length", 0, WIRE_MAX_INT, HCONN_EBAD_MESSAGE,
                          &r->length);
        if (rc != 0)
            return rc;
    } else if (m->has_data) {
        r->body = WIRE_BODY_INLINE;
        r->length = (int64_t)m->data_len;
    }

    timeout = json_object_get(msg, "timeout");
    if (timeout != NULL) {
        if (!json_is_number(timeout) || !(json_number_value(timeout) > 0) ||
            json_number_value(timeout) > WIRE_MAX_TIMEOUT)
            return wire_fail(c, HCONN_EBAD_MESSAGE,
                             "field \"timeout\" must be a number of seconds "
                             "above 0 and at most %g",
                             WIRE_MAX_TIMEOUT);
        r->timeout = json_number_value(timeout);
    }
    timeout = json_object_get(msg, "read_timeout");
    if (timeout != NULL) {
        if (!json_is_number(timeout) || !(json_number_value(timeout) >= 0) ||
            json_number_value(timeout) > WIRE_MAX_TIMEOUT)
            return wire_fail(c, HCONN_EBAD_MESSAGE,
                             "field \"read_timeout\" must be a number of "
                             "seconds from 0 (none) to %g",
                             WIRE_MAX_TIMEOUT);
        r->has_read_timeout = true;
        r->read_timeout = json_number_value(timeout);
    }
    if ((source = json_object_get(msg, "source_address")) != NULL &&
        (rc = wire_parse_source(c, source, r)) != 0)
        return rc;
    if (json_is_object(tls)) {
        r->has_tls_options = true;
        if ((rc = wire_parse_tls(c, tls, &r->tls_options)) != 0)
            return rc;
    }
    if ((proxy = json_object_get(msg, "proxy")) != NULL) {
        if (json_is_false(proxy)) {
            r->direct = true;
            return 0;
        }
        if (!json_is_object(proxy))
            return wire_fail(c, HCONN_EBAD_MESSAGE,
                             "field \"proxy\" must be an object or false");
        r->has_proxy = true;
        if ((rc = wire_parse_proxy(c, proxy, &r->proxy)) != 0)
            return rc;
    }
    return 0;
}

/* Validates an op message: {"op": "hello" | "stats", "id"?}. */
static int
wire_parse_op(struct wire_ctx *c, json_t *msg, struct wire_client_msg *m)
{
    static const char *const keys[] = {"id", "op", NULL};
    int rc;

    m->kind = WIRE_MSG_OP;
    rc = wire_get_string(c, msg, "op", 1, 64, HCONN_EBAD_MESSAGE, &m->op);
    if (rc != 0)
        return rc;
    if (strcmp(m->op, "hello") != 0 && strcmp(m->op, "stats") != 0)
        return wire_fail(c, HCONN_EBAD_MESSAGE, "unknown op \"%s\"", m->op);
    return wire_check_keys(c, msg, keys);
}

/* Validates a data or end frame of a streamed request body. */
static int
wire_parse_frame(struct wire_ctx *c, json_t *msg, struct wire_client_msg *m)
{
    static const char *const data_keys[] = {"id", "data", NULL};
    static const char *const end_keys[] = {"id", "end", NULL};
    bool data = json_object_get(msg, "data") != NULL;
    const char *what = data ? "data frame" : "end frame";
    int rc;

    m->kind = data ? WIRE_MSG_DATA : WIRE_MSG_END;
    if ((rc = wire_check_keys(c, msg, data ? data_keys : end_keys)) != 0)
        return rc;
    if (m->id == NULL)
        return wire_fail(c, HCONN_EBAD_MESSAGE,
                         "field \"id\" is required in a %s", what);
    if (!data && !json_is_true(json_object_get(msg, "end")))
        return wire_fail(c, HCONN_EBAD_MESSAGE, "field \"end\" must be true");
    return 0;
}

int
wire_parse_client_msg(json_t *msg, struct wire_client_msg *out, char *err,
                      size_t errlen)
{
    struct wire_ctx c = {err, errlen, ""};
    json_t *id, *data;

    memset(out, 0, sizeof(*out));
    out->req.length = -1;
    out->req.tls_options.verify = true;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (!json_is_object(msg))
        return wire_fail(&c, HCONN_EBAD_MESSAGE,
                         "message is not a JSON object");

    /* Framing and id first: whatever else is wrong, the caller must skip
     * the payload and can address its error reply. */
    if ((data = json_object_get(msg, "data")) != NULL) {
        if (wire_int_in(data, 0, WIRE_MAX_INT)) {
            out->has_data = true;
            out->data_len = (uint64_t)json_integer_value(data);
        } else {
            out->framing_lost = true;
        }
    }
    id = json_object_get(msg, "id");
    if (id != NULL && wire_id_valid(id))
        out->id = id;
    if (out->framing_lost)
        return wire_fail(&c, HCONN_EBAD_MESSAGE,
                         "field \"data\" must be an integer from 0 to %lld "
                         "(payload length unknown: framing lost)",
                         WIRE_MAX_INT);
    if (id != NULL && out->id == NULL)
        return wire_fail(&c, HCONN_EBAD_MESSAGE,
                         "field \"id\" must be an integer from 0 to %lld or a "
                         "string of 1 to %d bytes",
                         WIRE_MAX_INT, WIRE_MAX_ID);

    if (json_object_get(msg, "method") != NULL)
        return wire_parse_request(&c, msg, out);
    if (json_object_get(msg, "op") != NULL)
        return wire_parse_op(&c, msg, out);
    if (data != NULL || json_object_get(msg, "end") != NULL)
        return wire_parse_frame(&c, msg, out);
    return wire_fail(&c, HCONN_EBAD_MESSAGE,
                     "message has none of method, op, data, end");
}

void
wire_client_msg_clear(struct wire_client_msg *m)
{
    free(m->req.host);
    free(m->req.headers);
    free(m->req.proxy.headers);
    memset(m, 0, sizeof(*m));
}

/* ---- Daemon → client: builders --------------------------------------- */

/* A new reply object, "id" first when given. */
static json_t *
wire_reply_new(json_t *id)
{
    json_t *o = json_object();

    if (o != NULL && id != NULL && json_object_set(o, "id", id) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *
wire_data_frame(json_t *id, uint64_t n)
{
    json_t *o = wire_reply_new(id);

    if (o == NULL ||
        json_object_set_new(o, "data", json_integer((json_int_t)n)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *
wire_end_frame(json_t *id, json_t *trailers)
{
    json_t *o = wire_reply_new(id);
    int bad = 0;

    if (o == NULL) {
        json_decref(trailers);
        return NULL;
    }
    bad |= json_object_set_new(o, "end", json_true());
    if (trailers != NULL)
        bad |= json_object_set_new(o, "trailers", trailers);
    if (bad != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *
wire_reply_error(json_t *id, int code, const char *message)
{
    json_t *o = wire_reply_new(id);

    if (message == NULL)
        message = hconn_strerror(code);
    if (o == NULL ||
        json_object_set_new(o, "error", json_string(hconn_error_name(code))) !=
            0 ||
        json_object_set_new(o, "message",
                            wire_string_from_bytes(message, strlen(message))) !=
            0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *
wire_reply_continue(json_t *id)
{
    json_t *o = wire_reply_new(id);

    if (o == NULL || json_object_set_new(o, "continue", json_true()) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- Daemon → client: parsing ---------------------------------------- */

/* Reads the proxy's answer to CONNECT a head may carry. */
static int
wire_parse_proxy_response(struct wire_ctx *c, json_t *msg,
                          struct wire_reply *out)
{
    json_t *pr = json_object_get(msg, "proxy_response");
    struct wire_ctx pc = {c->err, c->errlen, "proxy_response."};
    int rc;

    if (pr == NULL)
        return 0;
    if (!json_is_object(pr))
        return wire_fail(c, HCONN_EBAD_MESSAGE,
                         "field \"proxy_response\" must be an object");
    if ((rc = wire_check_pairs(&pc, pr, "headers")) != 0)
        return rc;
    out->proxy_headers = json_object_get(pr, "headers");
    return 0;
}

/* Reads a HEAD reply's fields. */
static int
wire_parse_head(struct wire_ctx *c, json_t *msg, struct wire_reply *out)
{
    int64_t status = 0, version = 0;
    int rc;

    out->kind = WIRE_REPLY_HEAD;
    if ((rc = wire_require(c, msg, "reason")) ||
        (rc = wire_require(c, msg, "version")) ||
        (rc = wire_require(c, msg, "headers")) ||
        (rc = wire_get_int(c, msg, "status", 100, 999, HCONN_EBAD_MESSAGE,
                           &status)) ||
        (rc = wire_get_text(c, msg, "reason", &out->reason)) ||
        (rc = wire_get_int(c, msg, "version", 10, 20, HCONN_EBAD_MESSAGE,
                           &version)) ||
        (rc = wire_check_pairs(c, msg, "headers")) ||
        (rc = wire_get_int(c, msg, "length", 0, WIRE_MAX_INT,
                           HCONN_EBAD_MESSAGE, &out->length)) ||
        (rc = wire_get_bool(c, msg, "reused", &out->reused)))
        return rc;
    if (version != 10 && version != 11 && version != 20)
        return wire_fail(c, HCONN_EBAD_MESSAGE,
                         "field \"version\" must be 10, 11 or 20");
    out->status = (int)status;
    out->version = (int)version;
    out->headers = json_object_get(msg, "headers");
    return wire_parse_proxy_response(c, msg, out);
}

/* Reads an ERROR reply's fields; an unknown name is kept as bad_message. */
static int
wire_parse_error_reply(struct wire_ctx *c, json_t *msg, struct wire_reply *out)
{
    const char *name = NULL;
    int rc;

    out->kind = WIRE_REPLY_ERROR;
    if ((rc = wire_get_text(c, msg, "error", &name)) ||
        (rc = wire_get_text(c, msg, "message", &out->message)) ||
        (rc = wire_get_int(c, msg, "received", 0, WIRE_MAX_INT,
                           HCONN_EBAD_MESSAGE, &out->received)) ||
        (rc = wire_get_int(c, msg, "expected", 0, WIRE_MAX_INT,
                           HCONN_EBAD_MESSAGE, &out->expected)) ||
        (rc = wire_check_pairs(c, msg, "headers")))
        return rc;
    out->proxy_headers = json_object_get(msg, "headers");
    out->error = hconn_error_from_name(name);
    if (out->error >= 0) /* unknown, or "ok", which is no error */
        out->error = HCONN_EBAD_MESSAGE;
    if (out->message == NULL)
        out->message = hconn_strerror(out->error);
    return 0;
}

int
wire_parse_reply(json_t *msg, struct wire_reply *out, char *err, size_t errlen)
{
    struct wire_ctx c = {err, errlen, ""};
    int64_t n = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    out->length = -1;
    out->received = -1;
    out->expected = -1;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (!json_is_object(msg))
        return wire_fail(&c, HCONN_EBAD_MESSAGE,
                         "message is not a JSON object");
    out->id = json_object_get(msg, "id");
    if (out->id != NULL && !json_is_integer(out->id) &&
        !json_is_string(out->id))
        return wire_fail(&c, HCONN_EBAD_MESSAGE,
                         "field \"id\" must be an integer or a string");

    if (json_object_get(msg, "op") != NULL) {
        const char *op = NULL;

        out->kind = WIRE_REPLY_OP;
        return wire_get_text(&c, msg, "op", &op);
    }
    if (json_object_get(msg, "error") != NULL)
        return wire_parse_error_reply(&c, msg, out);
    if (json_object_get(msg, "status") != NULL)
        return wire_parse_head(&c, msg, out);
    if (json_object_get(msg, "continue") != NULL) {
        out->kind = WIRE_REPLY_CONTINUE;
        if (!json_is_true(json_object_get(msg, "continue")))
            return wire_fail(&c, HCONN_EBAD_MESSAGE,
                             "field \"continue\" must be true");
        return 0;
    }
    if (json_object_get(msg, "end") != NULL) {
        out->kind = WIRE_REPLY_END;
        if (!json_is_true(json_object_get(msg, "end")))
            return wire_fail(&c, HCONN_EBAD_MESSAGE,
                             "field \"end\" must be true");
        if ((rc = wire_check_pairs(&c, msg, "trailers")) != 0)
            return rc;
        out->trailers = json_object_get(msg, "trailers");
        return 0;
    }
    if (json_object_get(msg, "data") != NULL) {
        out->kind = WIRE_REPLY_DATA;
        rc = wire_get_int(&c, msg, "data", 0, WIRE_MAX_INT, HCONN_EBAD_MESSAGE,
                          &n);
        out->data_len = (uint64_t)n;
        return rc;
    }
    return wire_fail(&c, HCONN_EBAD_MESSAGE,
                     "message has none of op, error, status, continue, end, "
                     "data");
}
