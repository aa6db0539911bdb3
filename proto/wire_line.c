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
 * common case, room already there, stays inline in every append: after a
 * failure, bytes may still go where there is room (harmless: the line is
 * never used), but the buffer never grows again. */
static inline bool
wire_line_reserve(struct wire_line *l, size_t n)
{
    if (l->len + n <= l->cap)
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

/* Appends v in decimal, written in place with exactly the room it takes
 * (a data frame's line must fit the caller's buffer as before). Inlined:
 * a response's lines write seven. */
static inline __attribute__((always_inline)) void
wire_line_int(struct wire_line *l, int64_t v)
{
    uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
    size_t n = decimal_digits(u), neg = v < 0;

    if (!wire_line_reserve(l, n + neg))
        return; /* failed is set */
    l->buf[l->len] = '-';
    decimal_write(l->buf + l->len + neg, u, n);
    l->len += neg + n;
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

/* Writes byte c of a string at *p as wire_line_ascii does, left bytes of
 * the string still to go counting c: false when c needs more than a
 * backslash, or its escape would leave too little room before lim. */
static inline bool
wire_line_ascii_byte(char **p, const char *lim, unsigned char c, size_t left)
{
    if (c == '"' || c == '\\') {
        if ((size_t)(lim - *p) < left + 9)
            return false;
        *(*p)++ = '\\';
    } else if (!wire_line_byte_plain(c)) {
        return false;
    }
    *(*p)++ = (char)c;
    return true;
}

/* Writes s[0..n) at p as the inside of a JSON string, when every byte is
 * printable ASCII, a quote or a backslash escaped with a backslash as
 * jansson escapes them, and returns where it ends. NULL at the first byte
 * that needs more (a control byte, UTF-8, ISO-8859-1: the callers' slow
 * path) or when escapes would pass lim. On entry lim - p >= n + 8: words
 * are stored whole, up to 8 bytes past the bytes they stand for.
 *
 * Header names and values (an ETag's quotes included) are such strings
 * almost always: a word at a time, copied as they are checked, they cost
 * a fraction of a validation, an escape pass and a copy. */
static inline __attribute__((always_inline)) char *
wire_line_ascii(char *p, const char *lim, const char *s, size_t n)
{
    size_t i = 0;
    uint64_t x, y;

    if (n < 8) {
        if (n >= 4 && jsonword_plain(x = jsonword_load_short(s, n))) {
            memcpy(p, &x, sizeof x);
            return p + n;
        }
        for (; i < n; i++)
            if (!wire_line_ascii_byte(&p, lim, (unsigned char)s[i], n - i))
                return NULL;
        return p;
    }
    /* Plain so far, so p + i stands for s + i: 16 bytes at a time, then
     * the last 16 (or 8 to 16) as two words that end s, overlapping what
     * is already there. Most names and values end here. */
    for (; n - i > 16; i += 16) {
        x = jsonword_load(s + i);
        y = jsonword_load(s + i + 8);
        if (!jsonword_plain2(x, y))
            break;
        memcpy(p + i, &x, sizeof x);
        memcpy(p + i + 8, &y, sizeof y);
    }
    if (n - i <= 16) {
        size_t start = n >= 16 ? n - 16 : 0;

        x = jsonword_load(s + start);
        y = jsonword_load(s + n - 8);
        if (jsonword_plain2(x, y)) {
            memcpy(p + start, &x, sizeof x);
            memcpy(p + n - 8, &y, sizeof y);
            return p + n;
        }
    }
    /* A byte needs a look: word by word from here. */
    p += i;
    for (;;) {
        size_t left = n - i, k;
        uint64_t m;

        /* The last bytes, fewer than 8, as the word that ends s. */
        x = left >= 8 ? jsonword_load(s + i) : jsonword_load_end(s + n, left);
        m = jsonword_marks(x);
        memcpy(p, &x, sizeof x);
        if (m == 0) {
            if (left <= 8)
                return p + left;
            p += 8;
            i += 8;
            continue;
        }
        /* The bytes before the first mark are plain and already there;
         * the marked byte (within left: the padding is plain) gets its
         * own look. */
        k = jsonword_first(m);
        p += k;
        i += k;
        if (!wire_line_ascii_byte(&p, lim, (unsigned char)s[i], n - i))
            return NULL;
        if (++i == n)
            return p;
    }
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
    size_t k;
    char *p, *latin;

    /* Quotes and room for wire_line_ascii. */
    if (!wire_line_reserve(l, n + 10))
        return; /* failed is set */
    p = l->buf + l->len;
    *p = '"';
    p = wire_line_ascii(p + 1, l->buf + l->cap, s, n);
    if (p != NULL) {
        *p++ = '"';
        l->len = (size_t)(p - l->buf);
        return;
    }
    k = wire_line_plain(s, n);
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

/* Opens a reply object: '{', its "id" when there is one, then the next
 * key: key[0..n) is a ',' and that key, the ',' dropped when there is no
 * id (fewer appends than one for each piece). */
static void
wire_line_open_key(struct wire_line *l, const json_t *id, const char *key,
                   size_t n)
{
    if (id == NULL) {
        wire_line_lit(l, "{");
        wire_line_put(l, key + 1, n - 1);
        return;
    }
    wire_line_lit(l, "{\"id\":");
    if (json_is_integer(id))
        wire_line_int(l, (int64_t)json_integer_value(id));
    else if (json_is_string(id))
        wire_line_utf8(l, json_string_value(id), json_string_length(id));
    else
        wire_line_json(l, id);
    wire_line_put(l, key, n);
}

/* wire_line_open_key with the literal key (",\"key\":..."). */
#define wire_line_open(l, id, key)                                             \
    wire_line_open_key((l), (id), (key), sizeof(key) - 1)

/* Appends ["name","value"], preceded by a comma unless first, when both
 * are printable ASCII (wire_line_ascii): then with one check for room,
 * and the value holds no obs-fold (no LF). False, with nothing appended,
 * when they are not. */
static bool
wire_line_ascii_field(struct wire_line *l, const struct http1_header *h,
                      bool first)
{
    size_t nn = h->name_len, vn = h->value_len;
    const char *lim;
    char *p;

    /* Punctuation (8 bytes) and room for wire_line_ascii's words. */
    if (!wire_line_reserve(l, nn + vn + 16))
        return true; /* failed is set */
    p = l->buf + l->len;
    lim = l->buf + l->cap;
    *p = ',';
    p += !first;
    memcpy(p, "[\"", 2);
    p = wire_line_ascii(p + 2, lim, h->name, nn);
    /* The value's room, after the name's escapes: '","', the value and
     * its words' slack; '"]' fits in that slack. */
    if (p == NULL || (size_t)(lim - p) < vn + 11)
        return false;
    memcpy(p, "\",\"", 3);
    p = wire_line_ascii(p + 3, lim, h->value, vn);
    if (p == NULL)
        return false;
    memcpy(p, "\"]", 2);
    l->len = (size_t)(p + 2 - l->buf);
    return true;
}

/* Appends [name,value],...] (the caller has written the '['), unfolding
 * values that carry obs-folds. */
static void
wire_line_fields(struct wire_line *l, const struct http1_header *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *value = h[i].value;
        size_t vlen = h[i].value_len;
        char *unfolded = NULL;

        if (wire_line_ascii_field(l, &h[i], i == 0))
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
    wire_line_open(l, id, ",\"status\":");
    wire_line_int(l, status);
    wire_line_lit(l, ",\"reason\":");
    wire_line_bytes(l, reason, reason_len);
    wire_line_lit(l, ",\"version\":");
    wire_line_int(l, version);
    wire_line_lit(l, ",\"headers\":[");
    wire_line_fields(l, headers, nheaders);
    if (length >= 0) {
        wire_line_lit(l, ",\"length\":");
        wire_line_int(l, length);
    }
    if (proxy_response == NULL) {
        /* The usual end, with the line's. */
        if (reused)
            wire_line_lit(l, ",\"reused\":true}\n");
        else
            wire_line_lit(l, ",\"reused\":false}\n");
        return l->failed ? HCONN_ENO_MEMORY : 0;
    }
    if (reused)
        wire_line_lit(l, ",\"reused\":true");
    else
        wire_line_lit(l, ",\"reused\":false");
    wire_line_lit(l, ",\"proxy_response\":");
    wire_line_json(l, proxy_response);
    return wire_line_close(l);
}

int
wire_line_data(struct wire_line *l, const json_t *id, uint64_t n)
{
    wire_line_open(l, id, ",\"data\":");
    wire_line_int(l, (int64_t)n);
    return wire_line_close(l);
}

int
wire_line_end(struct wire_line *l, const json_t *id,
              const struct http1_header *trailers, size_t ntrailers)
{
    wire_line_open(l, id, ",\"end\":true,\"trailers\":[");
    wire_line_fields(l, trailers, ntrailers);
    return wire_line_close(l);
}
