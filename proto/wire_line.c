/*
 * wire_line.c — see wire_line.h.
 */
#include <stdlib.h>
#include <string.h>

#include "decimal.h"
#include "hconn_error.h"
#include "http1.h"
#include "jsonword.h"
#include "wire.h"
#include "wire_line.h"

void
wire_line_init(struct wire_line *l, char *storage, size_t size)
{
    *l = (struct wire_line){.buf = storage, .cap = size};
}

void
wire_line_free(struct wire_line *l)
{
    if (l->heap)
        free(l->buf);
    l->buf = NULL;
    l->len = l->cap = 0;
    l->heap = false;
}

/* Grows the buffer for n more bytes; false (and failed set) when out of
 * memory. */
static bool
wire_line_grow(struct wire_line *l, size_t n)
{
    size_t cap = l->cap ? l->cap : 256;
    char *buf;

    if (l->failed)
        return false;
    while (cap < l->len + n)
        cap *= 2;
    buf = l->heap ? realloc(l->buf, cap) : malloc(cap);
    if (buf == NULL) {
        l->failed = true;
        return false;
    }
    if (!l->heap && l->len > 0)
        memcpy(buf, l->buf, l->len);
    l->buf = buf;
    l->cap = cap;
    l->heap = true;
    return true;
}

/* Room for n more bytes; false (and failed set) when out of memory. The
 * common case, room already there, stays inline in every append. */
static inline bool
wire_line_reserve(struct wire_line *l, size_t n)
{
    if (!l->failed && l->len + n <= l->cap)
        return true;
    return wire_line_grow(l, n);
}

static inline void
wire_line_put(struct wire_line *l, const char *s, size_t n)
{
    if (n > 0 && wire_line_reserve(l, n)) {
        memcpy(l->buf + l->len, s, n);
        l->len += n;
    }
}

#define wire_line_lit(l, s) wire_line_put((l), (s), sizeof(s) - 1)

static void
wire_line_int(struct wire_line *l, int64_t v)
{
    char digits[DECIMAL_U64_SIZE];

    if (v < 0)
        wire_line_lit(l, "-");
    wire_line_put(l, digits,
                  decimal_u64(digits, v < 0 ? -(uint64_t)v : (uint64_t)v));
}

/* One byte as jsonword_plain tests eight. */
static inline bool
wire_line_byte_plain(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* The length of the run at the start of s[0..n) that goes into a JSON
 * string as it is: printable ASCII, which is UTF-8 on its own and needs no
 * escape. Header names and values are that almost always, and a word at a
 * time they cost a fraction of a byte-by-byte validation and escape. */
static inline size_t
wire_line_plain(const char *s, size_t n)
{
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        if (!jsonword_plain(jsonword_load(s + i)))
            break;
    }
    /* The last bytes, as the word that ends the string (it overlaps
     * bytes already seen): a plain string needs no byte-by-byte tail. */
    if (i < n && n >= 8 && i + 8 > n &&
        jsonword_plain(jsonword_load(s + n - 8)))
        return n;
    while (i < n && wire_line_byte_plain((unsigned char)s[i]))
        i++;
    return i;
}

/* Appends s[0..n) of UTF-8 as a JSON string, escaped as jansson does:
 * the two mandatory escapes, the short forms, \uXXXX (upper case) for the
 * other control characters; everything else as is. s[0..plain) is known
 * to need no escape (wire_line_plain). */
static void
wire_line_utf8_from(struct wire_line *l, const char *s, size_t n, size_t plain)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t run = 0;

    wire_line_lit(l, "\"");
    for (size_t i = plain; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6] = {'\\', 0};
        size_t elen = 2;

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        wire_line_put(l, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            elen = 6;
        }
        wire_line_put(l, esc, elen);
    }
    wire_line_put(l, s + run, n - run);
    wire_line_lit(l, "\"");
}

/* wire_line_utf8_from, finding the plain run itself. */
static void
wire_line_utf8(struct wire_line *l, const char *s, size_t n)
{
    wire_line_utf8_from(l, s, n, wire_line_plain(s, n));
}

/* Appends bytes from an HTTP head as a JSON string, read as
 * wire_string_from_bytes reads them. Only what follows the plain ASCII
 * run is validated: ASCII bytes are whole UTF-8 sequences, so the rest is
 * UTF-8 exactly when all of it is. */
static void
wire_line_bytes(struct wire_line *l, const char *s, size_t n)
{
    size_t k = wire_line_plain(s, n);
    char *latin;

    if (k == n) {
        if (!wire_line_reserve(l, n + 2))
            return; /* failed is set */
        l->buf[l->len++] = '"';
        if (n > 0)
            memcpy(l->buf + l->len, s, n);
        l->len += n;
        l->buf[l->len++] = '"';
        return;
    }
    if (wire_is_utf8(s + k, n - k)) {
        wire_line_utf8_from(l, s, n, k);
        return;
    }
    if ((latin = wire_latin1_to_utf8(s, n, &k)) == NULL) {
        l->failed = true;
        return;
    }
    wire_line_utf8(l, latin, k);
    free(latin);
}

/* Appends a JSON value in jansson's compact form. */
static void
wire_line_json(struct wire_line *l, const json_t *v)
{
    size_t n = json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);

    if (n == 0 || !wire_line_reserve(l, n)) {
        l->failed = true;
        return;
    }
    json_dumpb(v, l->buf + l->len, n, JSON_COMPACT | JSON_ENCODE_ANY);
    l->len += n;
}

/* Opens a reply object: '{' and its "id" when there is one. */
static void
wire_line_open(struct wire_line *l, const json_t *id)
{
    wire_line_lit(l, "{");
    if (id == NULL)
        return;
    wire_line_lit(l, "\"id\":");
    if (json_is_integer(id))
        wire_line_int(l, (int64_t)json_integer_value(id));
    else if (json_is_string(id))
        wire_line_utf8(l, json_string_value(id), json_string_length(id));
    else
        wire_line_json(l, id);
    wire_line_lit(l, ",");
}

/* Appends ["name","value"], preceded by a comma unless first, when both
 * are plain ASCII (wire_line_plain): then with one check for room, and
 * the value holds no obs-fold (no LF). False when they are not. */
static bool
wire_line_plain_field(struct wire_line *l, const struct http1_header *h,
                      bool first)
{
    size_t nn = h->name_len, vn = h->value_len;
    char *p;

    if (wire_line_plain(h->name, nn) != nn ||
        wire_line_plain(h->value, vn) != vn)
        return false;
    if (!wire_line_reserve(l, nn + vn + 8))
        return true; /* failed is set */
    p = l->buf + l->len;
    if (!first)
        *p++ = ',';
    memcpy(p, "[\"", 2);
    p += 2;
    if (nn > 0)
        memcpy(p, h->name, nn);
    p += nn;
    memcpy(p, "\",\"", 3);
    p += 3;
    if (vn > 0)
        memcpy(p, h->value, vn);
    p += vn;
    memcpy(p, "\"]", 2);
    l->len = (size_t)(p + 2 - l->buf);
    return true;
}

/* Appends [[name,value],...], unfolding values that carry obs-folds. */
static void
wire_line_fields(struct wire_line *l, const struct http1_header *h, size_t n)
{
    wire_line_lit(l, "[");
    for (size_t i = 0; i < n; i++) {
        const char *value = h[i].value;
        size_t vlen = h[i].value_len;
        char *unfolded = NULL;

        if (wire_line_plain_field(l, &h[i], i == 0))
            continue;
        if (vlen > 0 && memchr(value, '\n', vlen) != NULL) {
            if ((unfolded = malloc(vlen + 1)) == NULL) {
                l->failed = true;
                return;
            }
            vlen = http1_unfold_value(unfolded, value, vlen);
            value = unfolded;
        }
        if (i > 0)
            wire_line_lit(l, ",");
        wire_line_lit(l, "[");
        wire_line_bytes(l, h[i].name, h[i].name_len);
        wire_line_lit(l, ",");
        wire_line_bytes(l, value, vlen);
        wire_line_lit(l, "]");
        free(unfolded);
    }
    wire_line_lit(l, "]");
}

/* Ends the object and the line. */
static int
wire_line_close(struct wire_line *l)
{
    wire_line_lit(l, "}\n");
    return l->failed ? HCONN_ENO_MEMORY : 0;
}

int
wire_line_head(struct wire_line *l, const json_t *id, int status,
               const char *reason, size_t reason_len, int version,
               const struct http1_header *headers, size_t nheaders,
               int64_t length, bool reused, const json_t *proxy_response)
{
    wire_line_open(l, id);
    wire_line_lit(l, "\"status\":");
    wire_line_int(l, status);
    wire_line_lit(l, ",\"reason\":");
    wire_line_bytes(l, reason, reason_len);
    wire_line_lit(l, ",\"version\":");
    wire_line_int(l, version);
    wire_line_lit(l, ",\"headers\":");
    wire_line_fields(l, headers, nheaders);
    if (length >= 0) {
        wire_line_lit(l, ",\"length\":");
        wire_line_int(l, length);
    }
    if (reused)
        wire_line_lit(l, ",\"reused\":true");
    else
        wire_line_lit(l, ",\"reused\":false");
    if (proxy_response != NULL) {
        wire_line_lit(l, ",\"proxy_response\":");
        wire_line_json(l, proxy_response);
    }
    return wire_line_close(l);
}

int
wire_line_data(struct wire_line *l, const json_t *id, uint64_t n)
{
    wire_line_open(l, id);
    wire_line_lit(l, "\"data\":");
    wire_line_int(l, (int64_t)n);
    return wire_line_close(l);
}

int
wire_line_end(struct wire_line *l, const json_t *id,
              const struct http1_header *trailers, size_t ntrailers)
{
    wire_line_open(l, id);
    wire_line_lit(l, "\"end\":true,\"trailers\":");
    wire_line_fields(l, trailers, ntrailers);
    return wire_line_close(l);
}
