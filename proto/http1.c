/*
 * http1.c — the sans-I/O HTTP/1.1 client codec (contract in http1.h).
 *
 * Requests: http1_start_request checks every byte the caller hands in
 * before writing anything, then lays the head out the way http.client's
 * putrequest/putheader/endheaders do, so a caller can never put a line
 * break (or a second message) on the wire. The body's framing is the
 * codec's, not the caller's: the caller's Content-Length and
 * Transfer-Encoding must agree with the body it has, fields that would
 * change the connection for the next request are refused, and the body
 * writer (h11's writers: idle, body, done) frames each piece, enforcing
 * the declared length and the one last chunk.
 *
 * Responses: http1_parser_next is a state machine over the caller's
 * buffer. A head or trailer section is scanned line by line as bytes
 * arrive, each byte once (p->scanned, p->line_start, p->nlines), so limits
 * trip as early as they can and byte-at-a-time input stays linear; when
 * the blank line arrives the section is indexed in one more pass and the
 * event points into the caller's bytes. Bodies are handed back in place.
 * Framing follows RFC 9112 §6.3 in order, refusing (not guessing) where a
 * guess could desynchronise a pooled connection.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "decimal.h"
#include "hconn_error.h"
#include "http1.h"

#define HTTP1_QUOTE_MAX  32 /* bytes of a culprit shown in a message */
#define HTTP1_QUOTE_SIZE (HTTP1_QUOTE_MAX * 4 + 4) /* all \xHH, "...", NUL */

/* ---- Shared helpers ----------------------------------------------------- */

/* RFC 9110 §5.6.2: tchar, the bytes of a token (method, field name):
 * DIGIT, ALPHA and "!#$%&'*+-.^_`|~", a row of 16 bytes a line from 0x00
 * to 0x7f; none above (the rows left out are zero). A lookup, not a
 * search of the list nor a range check, for every name byte. */
/* clang-format off */
static const unsigned char http1_tchar[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0,
};
/* clang-format on */

static bool
http1_is_tchar(unsigned char c)
{
    return http1_tchar[c] != 0;
}

/* Four bytes of a name at once: true when each is a tchar. */
static bool
http1_are_tchars4(const unsigned char *s)
{
    return (http1_tchar[s[0]] & http1_tchar[s[1]] & http1_tchar[s[2]] &
            http1_tchar[s[3]]) != 0;
}

#if defined(__SSE2__)
/* How many of the 16 bytes at s, from the first, are ASCII letters or
 * '-', the bytes of nearly every field name (all tchars): 16 bytes
 * looked at together. Signed compares: a byte from 0x80 is no letter. */
static size_t
http1_count_name_bytes16(const char *s)
{
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)s);
    __m128i folded = _mm_or_si128(x, _mm_set1_epi8(0x20)); /* A-Z: a-z */
    __m128i letter =
        _mm_and_si128(_mm_cmpgt_epi8(folded, _mm_set1_epi8('a' - 1)),
                      _mm_cmplt_epi8(folded, _mm_set1_epi8('z' + 1)));
    __m128i dash = _mm_cmpeq_epi8(x, _mm_set1_epi8('-'));
    unsigned run = (unsigned)_mm_movemask_epi8(_mm_or_si128(letter, dash));

    return (size_t)__builtin_ctz(~run); /* bit 16 of ~run is set */
}
#endif

/* Status codes and lengths are ASCII digits only, whatever the locale. */
static bool
http1_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Hex digit value, or -1. */
static int
http1_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* ASCII case folding: tolower() would depend on the locale. */
static char
http1_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Field names and codings compare case-insensitively (RFC 9110 §5.1). */
static bool
http1_ieq(const char *s, size_t n, const char *lit)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (lit[i] == '\0' || http1_lower(s[i]) != http1_lower(lit[i]))
            return false;
    }
    return lit[i] == '\0';
}

/* http1_ieq against a string literal: a name of another length is told
 * apart without a look at its bytes, and one spelt as the literal is
 * (most are) matches without folding case. */
#define http1_ieq_lit(s, n, lit)                                               \
    ((n) == sizeof(lit) - 1 &&                                                 \
     (memcmp((s), (lit), (n)) == 0 || http1_ieq((s), (n), (lit))))

/* Where s[0..n) holds its first NUL or CR (RFC 9110 §5.5, RFC 9112 §2.2:
 * never valid in a reason or a field value), or n. */
static size_t
http1_find_nul_cr(const char *s, size_t n)
{
    const char *cr = memchr(s, '\r', n);
    size_t end = cr != NULL ? (size_t)(cr - s) : n;
    const char *nul = memchr(s, '\0', end);

    return nul != NULL ? (size_t)(nul - s) : end;
}

/* True for the bytes that end a head line (LF) or may never be in one
 * (NUL, and CR other than the one before LF): a bit test, not a search. */
static bool
http1_is_line_byte(unsigned char c)
{
    return c <= '\r' && ((1u << c) & (1u << '\0' | 1u << '\n' | 1u << '\r'));
}

/* The 8 bytes at s as a word whose lowest byte is s[0], on any host. */
static uint64_t
http1_load_le(const char *s)
{
    uint64_t x;

    memcpy(&x, s, sizeof x);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    x = __builtin_bswap64(x);
#endif
    return x;
}

/* Where s[i..n) holds its first NUL, CR or LF, or n: a line's end and
 * every byte that makes it invalid in one pass. Bytes are looked at 16
 * (SSE2, every x86-64) or 8 (any host, and the rest) together for any
 * below 0x20; a marked tab or other control is let through and the
 * search goes on after it. In a word the first marked byte is exact: a
 * borrow only marks bytes above a marked one. */
static size_t
http1_find_line_byte(const char *s, size_t i, size_t n)
{
    const uint64_t ones = 0x0101010101010101u, high = ones * 0x80;

#if defined(__SSE2__)
    const __m128i ctl = _mm_set1_epi8(0x1f);

    /* 32 bytes a step while there are as many: most head lines are 17 to
     * 47 bytes long, and each step of 16 cost a load, a test and a branch
     * of its own (two or three a line). */
    while (n - i >= 32) {
        __m128i lo = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        __m128i hi =
            _mm_loadu_si128((const __m128i *)(const void *)(s + i + 16));
        unsigned marked = (unsigned)_mm_movemask_epi8(
                              _mm_cmpeq_epi8(_mm_min_epu8(lo, ctl), lo)) |
                          (unsigned)_mm_movemask_epi8(
                              _mm_cmpeq_epi8(_mm_min_epu8(hi, ctl), hi))
                              << 16;

        for (; marked != 0; marked &= marked - 1) {
            size_t k = i + (size_t)__builtin_ctz(marked);

            if (http1_is_line_byte((unsigned char)s[k]))
                return k;
        }
        i += 32;
    }
    while (n - i >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        unsigned marked = (unsigned)_mm_movemask_epi8(
            _mm_cmpeq_epi8(_mm_min_epu8(x, ctl), x));

        for (; marked != 0; marked &= marked - 1) {
            size_t k = i + (size_t)__builtin_ctz(marked);

            if (http1_is_line_byte((unsigned char)s[k]))
                return k;
        }
        i += 16;
    }
#endif
    while (n - i >= 8) {
        uint64_t x = http1_load_le(s + i);
        uint64_t marked = (x - ones * 0x20) & ~x & high;

        if (marked == 0) {
            i += 8;
            continue;
        }
        i += (size_t)__builtin_ctzll(marked) / 8;
        if (http1_is_line_byte((unsigned char)s[i]))
            return i;
        i++;
    }
    while (i < n && !http1_is_line_byte((unsigned char)s[i]))
        i++;
    return i;
}

/* OWS proper (RFC 9110 §5.6.3), tested so that most bytes, above SP, take
 * one compare. */
static bool
http1_is_sp_ht(char c)
{
    return (unsigned char)c <= ' ' && (c == ' ' || c == '\t');
}

/* Whitespace around list elements and values. CR and LF count too: inside
 * a parsed value they can only be part of an obs-fold (RFC 9112 §5.2). */
static bool
http1_is_ows(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Narrows s[0..n) to its content, in place: values point into the
 * caller's buffer and are never copied. */
static void
http1_trim(const char **s, size_t *n)
{
    while (*n > 0 && http1_is_ows((*s)[0])) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && http1_is_ows((*s)[*n - 1]))
        (*n)--;
}

/* Copies a culprit into a message safely: a message may end up in a log
 * line or a JSON reply, so controls and quotes become \xHH and long
 * culprits are cut. */
static const char *
http1_quote(char out[HTTP1_QUOTE_SIZE], const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    for (size_t i = 0; i < n && i < HTTP1_QUOTE_MAX; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            out[o++] = (char)c;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (n > HTTP1_QUOTE_MAX) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

/* One element at a time of a comma-separated field value (RFC 9110
 * §5.6.1); elements come back trimmed, empty ones included. */
struct http1_list {
    const char *s; /* the whole value */
    size_t n;      /* its length */
    size_t pos;    /* where the next element starts */
    bool done;     /* the last element has been returned */
};

static bool
http1_list_next(struct http1_list *l, const char **elt, size_t *elt_len)
{
    size_t j = l->pos;

    if (l->done)
        return false;
    while (j < l->n && l->s[j] != ',')
        j++;
    *elt = l->s + l->pos;
    *elt_len = j - l->pos;
    http1_trim(elt, elt_len);
    if (j == l->n)
        l->done = true;
    else
        l->pos = j + 1;
    return true;
}

/* ---- Request heads ------------------------------------------------------ */

/* Writes into the caller's err buffer, which may be absent. */
static int __attribute__((format(printf, 4, 5)))
http1_request_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* The automatic fields a request gets, decided once before both passes. */
struct http1_auto {
    bool host;              /* write Host */
    bool accept_encoding;   /* write Accept-Encoding: identity */
    bool bracket;           /* Host is an IPv6 literal: add [ ] */
    bool port;              /* Host carries ":port" */
    bool chunked;           /* write Transfer-Encoding: chunked */
    int64_t content_length; /* write Content-Length: this, if >= 0 */
    size_t method_len;      /* the lengths of req's strings, measured */
    size_t target_len;      /* once */
    size_t host_len;        /* (with host) */
};

/* Sizes (p == NULL) or writes the head; the same code does both so the
 * measured length and the written bytes cannot disagree. Once a part
 * does not fit in what is left of the buffer, it and every part after it
 * are only measured: len then exceeds the buffer, and the caller writes
 * the head again into one of len bytes. */
struct http1_out {
    char *p;       /* the buffer, or NULL to measure only */
    size_t room;   /* bytes left at p + len; 0 once a part did not fit */
    size_t len;    /* bytes so far */
    bool overflow; /* the length does not fit a size_t */
};

/* Appends, or only counts; a length that wraps marks overflow. One
 * comparison a part: the head goes out once a request. */
static inline void
http1_put(struct http1_out *o, const char *s, size_t n)
{
    /* n == 0 may come with s == NULL (an empty header value), which
     * memcpy must not be given. */
    if (n == 0)
        return;
    if (n <= o->room) {
        memcpy(o->p + o->len, s, n);
        o->room -= n;
    } else {
        o->room = 0;
    }
    o->len += n;
    if (o->len < n)
        o->overflow = true;
}

/* For a string literal: its length is known when compiled. */
#define http1_put_lit(o, lit) http1_put((o), (lit), sizeof(lit) - 1)

/* The layout of http.client's putrequest + putheader + endheaders: the
 * request line, Host, Accept-Encoding, the caller's fields in order, then
 * the framing field _send_request adds. */
static void
http1_write_head(const struct http1_request *req, const struct http1_auto *a,
                 struct http1_out *o)
{
    char num[DECIMAL_U64_SIZE];

    http1_put(o, req->method, a->method_len);
    http1_put(o, " ", 1);
    http1_put(o, req->target, a->target_len);
    http1_put(o, " HTTP/1.1\r\n", 11);
    if (a->host) {
        http1_put(o, "Host: ", 6);
        if (a->bracket)
            http1_put(o, "[", 1);
        http1_put(o, req->host, a->host_len);
        if (a->bracket)
            http1_put(o, "]", 1);
        if (a->port) {
            http1_put(o, ":", 1);
            http1_put(o, num, decimal_u64(num, req->port));
        }
        http1_put(o, "\r\n", 2);
    }
    if (a->accept_encoding)
        http1_put_lit(o, "Accept-Encoding: identity\r\n");
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http1_header *h = &req->headers[i];

        http1_put(o, h->name, h->name_len);
        http1_put(o, ": ", 2);
        http1_put(o, h->value, h->value_len);
        http1_put(o, "\r\n", 2);
    }
    if (a->chunked)
        http1_put_lit(o, "Transfer-Encoding: chunked\r\n");
    if (a->content_length >= 0) {
        http1_put_lit(o, "Content-Length: ");
        http1_put(o, num, decimal_u64(num, (uint64_t)a->content_length));
        http1_put(o, "\r\n", 2);
    }
    http1_put(o, "\r\n", 2);
}

/* True when the 8 bytes of w hold a control, space or DEL (0x00 to
 * 0x20, or 0x7f). Exact as to whether one is there, not where: a byte
 * below 0x21 borrows through the subtraction only into bytes above it. */
static inline bool
http1_word_has_ctl(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    uint64_t del = w ^ (ones * 0x7f);

    return (((w - ones * 0x21) & ~w) | ((del - ones) & ~del)) & highs;
}

/* http.client refuses a request-target (and host) with controls, space or
 * DEL: each would end the request line early (InvalidURL). Returns where
 * s[0..n) holds the first, or n. Eight bytes at a time while none is in
 * them; the word that holds one is looked at byte by byte. */
static size_t
http1_find_url_ctl(const char *s, size_t n)
{
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        uint64_t w;

        memcpy(&w, s + i, 8);
        if (http1_word_has_ctl(w))
            break;
    }
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c <= 0x20 || c == 0x7f)
            return i;
    }
    return n;
}

/* What the caller's fields say, gathered in one pass. */
struct http1_given {
    const struct http1_header *cl; /* its Content-Length field */
    const struct http1_header *te; /* its Transfer-Encoding field */
    bool host;                     /* it gave Host */
    bool ae;                       /* it gave Accept-Encoding */
    bool expect;                   /* it gave Expect: 100-continue */
};

/* Fields that would change what the pooled connection is, or how long it
 * lives, after this request: the pool's business, never a client's
 * (PROTOCOL.md 3.1). */
static const struct {
    const char *name;
    const char *why;
} http1_refused_fields[] = {
    {"Upgrade", "a protocol switch would take a pooled connection away"},
    {"HTTP2-Settings", "it belongs to an Upgrade to h2c"},
    {"Keep-Alive", "the daemon decides how long connections live"},
    {"Proxy-Connection", "the daemon decides how long connections live"},
    {"Trailer", "the daemon sends no request trailers"},
};

/* Checks that every element of a list field is empty or one of allowed
 * (a NULL-terminated list); names the first that is not. */
static int
http1_check_list(const struct http1_header *h, const char *const *allowed,
                 const char *why, char *err, size_t errlen)
{
    struct http1_list l = {h->value, h->value_len, 0, false};
    char q[HTTP1_QUOTE_SIZE], qn[HTTP1_QUOTE_SIZE];
    const char *elt;
    size_t n;

    if (h->value_len == 0)
        return HCONN_OK; /* the value may be NULL: no pointer arithmetic */
    while (http1_list_next(&l, &elt, &n)) {
        bool ok = n == 0;

        for (size_t i = 0; !ok && allowed[i] != NULL; i++)
            ok = http1_ieq(elt, n, allowed[i]);
        if (!ok)
            return http1_request_fail(
                err, errlen, HCONN_EINVALID_HEADER,
                "header \"%s\": \"%s\" is not allowed (%s)",
                http1_quote(qn, h->name, h->name_len), http1_quote(q, elt, n),
                why);
    }
    return HCONN_OK;
}

/* A field that may be given once at most: a second one is refused, since
 * servers and proxies disagree on which one counts. */
static int
http1_once(const struct http1_header *h, bool seen, char *err, size_t errlen)
{
    char q[HTTP1_QUOTE_SIZE];

    if (!seen)
        return HCONN_OK;
    return http1_request_fail(err, errlen, HCONN_EINVALID_HEADER,
                              "header \"%s\" given twice: servers disagree on "
                              "which one counts",
                              http1_quote(q, h->name, h->name_len));
}

/* Applies the connection-management table to one field the caller gave,
 * noting the ones that decide framing in g. */
static int
http1_check_managed_field(const struct http1_header *h, struct http1_given *g,
                          char *err, size_t errlen)
{
    static const char *const connection[] = {"close", "keep-alive", "te", NULL};
    static const char *const te[] = {"trailers", NULL};
    char q[HTTP1_QUOTE_SIZE], qv[HTTP1_QUOTE_SIZE];
    const char *v = h->value;
    size_t vn = h->value_len;
    int rc = HCONN_OK;

    for (size_t i = 0;
         i < sizeof http1_refused_fields / sizeof *http1_refused_fields; i++)
        if (http1_ieq(h->name, h->name_len, http1_refused_fields[i].name))
            return http1_request_fail(err, errlen, HCONN_EINVALID_HEADER,
                                      "header \"%s\" is not allowed: %s",
                                      http1_quote(q, h->name, h->name_len),
                                      http1_refused_fields[i].why);
    http1_trim(&v, &vn);
    if (http1_ieq_lit(h->name, h->name_len, "Host")) {
        rc = http1_once(h, g->host, err, errlen);
        g->host = true;
    } else if (http1_ieq_lit(h->name, h->name_len, "Accept-Encoding")) {
        g->ae = true;
    } else if (http1_ieq_lit(h->name, h->name_len, "Connection")) {
        rc = http1_check_list(h, connection,
                              "only close, keep-alive and te: the connection "
                              "is shared",
                              err, errlen);
    } else if (http1_ieq_lit(h->name, h->name_len, "TE")) {
        rc = http1_check_list(h, te,
                              "only trailers: responses come chunked or not "
                              "at all",
                              err, errlen);
    } else if (http1_ieq_lit(h->name, h->name_len, "Expect")) {
        rc = http1_once(h, g->expect, err, errlen);
        if (rc == HCONN_OK && !http1_ieq_lit(v, vn, "100-continue"))
            rc = http1_request_fail(
                err, errlen, HCONN_EINVALID_HEADER,
                "header \"%s\": \"%s\" is not allowed (only 100-continue)",
                http1_quote(q, h->name, h->name_len), http1_quote(qv, v, vn));
        g->expect = true;
    } else if (http1_ieq_lit(h->name, h->name_len, "Content-Length")) {
        rc = http1_once(h, g->cl != NULL, err, errlen);
        bool digits = vn > 0 && vn <= 18; /* no overflow when summed */

        for (size_t k = 0; k < vn; k++)
            digits = digits && http1_is_digit(v[k]);
        if (rc == HCONN_OK && !digits)
            rc = http1_request_fail(err, errlen, HCONN_EINVALID_HEADER,
                                    "header \"%s\": \"%s\" is not a byte count",
                                    http1_quote(q, h->name, h->name_len),
                                    http1_quote(qv, h->value, h->value_len));
        g->cl = h;
    } else if (http1_ieq_lit(h->name, h->name_len, "Transfer-Encoding")) {
        rc = http1_once(h, g->te != NULL, err, errlen);
        if (rc == HCONN_OK && !http1_ieq_lit(v, vn, "chunked"))
            rc = http1_request_fail(
                err, errlen, HCONN_EINVALID_HEADER,
                "header \"%s\": \"%s\" is not allowed (only chunked, which "
                "the daemon encodes itself)",
                http1_quote(q, h->name, h->name_len), http1_quote(qv, v, vn));
        g->te = h;
    }
    return rc;
}

/* Checks the caller's fields: tokens for names, no CR, LF or NUL in
 * values, and the connection-management table. */
static int
http1_check_request_fields(const struct http1_request *req,
                           struct http1_given *g, char *err, size_t errlen)
{
    char q[HTTP1_QUOTE_SIZE];

    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http1_header *h = &req->headers[i];
        int rc;

        if (h->name == NULL || h->name_len == 0)
            return http1_request_fail(err, errlen, HCONN_EINVALID_HEADER,
                                      "header %zu: empty field name", i + 1);
        if (h->value == NULL && h->value_len > 0)
            return http1_request_fail(err, errlen, HCONN_EINVALID_ARGUMENT,
                                      "header \"%s\": value is NULL",
                                      http1_quote(q, h->name, h->name_len));
        for (size_t k = 0; k < h->name_len; k++) {
            if (!http1_is_tchar((unsigned char)h->name[k]))
                return http1_request_fail(
                    err, errlen, HCONN_EINVALID_HEADER,
                    "header name \"%s\" contains an invalid character at "
                    "byte %zu",
                    http1_quote(q, h->name, h->name_len), k);
        }
        /* RFC 9110 §5.5: CR, LF and NUL are never valid in a value; CR or
         * LF would start a new field or end the head (header injection). */
        for (size_t k = 0; k < h->value_len; k++) {
            char c = h->value[k];

            if (c == '\r' || c == '\n' || c == '\0')
                return http1_request_fail(
                    err, errlen, HCONN_EINVALID_HEADER,
                    "header \"%s\" value contains %s at byte %zu",
                    http1_quote(q, h->name, h->name_len),
                    c == '\0' ? "NUL" : "CR/LF", k);
        }
        rc = http1_check_managed_field(h, g, err, errlen);
        if (rc < 0)
            return rc;
    }
    return HCONN_OK;
}

/* http.client's _METHODS_EXPECTING_BODY, compared upper-cased as it does. */
static bool
http1_method_expects_body(const char *method, size_t n)
{
    return http1_ieq_lit(method, n, "POST") ||
           http1_ieq_lit(method, n, "PUT") || http1_ieq_lit(method, n, "PATCH");
}

/* An IDLE writer, as a zeroed one reads: the message buffer is only
 * emptied, since clearing its 160 bytes cost more than writing a head. */
static void
http1_writer_clear(struct http1_writer *w)
{
    w->state = HTTP1_W_IDLE;
    w->has_body = false;
    w->chunked = false;
    w->length = 0;
    w->written = 0;
    w->error = 0;
    w->errmsg[0] = '\0';
}

/* Decides the body's framing: the caller's Content-Length and
 * Transfer-Encoding must agree with the body it has (they never frame it
 * by themselves), else http.client's automatic field. */
static int
http1_decide_request_framing(const struct http1_request *req,
                             const struct http1_given *g, struct http1_auto *a,
                             struct http1_writer *w, char *err, size_t errlen)
{
    bool body = req->content_length >= 0 || req->chunked;

    http1_writer_clear(w);
    w->has_body = body;
    w->length = req->content_length;
    /* RFC 9112 §6.2: a sender MUST NOT send Content-Length together with
     * Transfer-Encoding; an origin or proxy may pick either, which is how
     * requests get smuggled. */
    if (g->cl != NULL && g->te != NULL)
        return http1_request_fail(err, errlen, HCONN_EINVALID_HEADER,
                                  "header \"Content-Length\" conflicts with "
                                  "\"Transfer-Encoding\"");
    if (g->expect && !body)
        return http1_request_fail(err, errlen, HCONN_EINVALID_HEADER,
                                  "header \"Expect\": 100-continue on a "
                                  "request without a body");
    if (g->cl != NULL) {
        const char *v = g->cl->value;
        size_t vn = g->cl->value_len;
        int64_t n = 0;

        http1_trim(&v, &vn);
        for (size_t k = 0; k < vn; k++) /* at most 18 digits */
            n = n * 10 + (v[k] - '0');
        if (!body && n != 0)
            return http1_request_fail(err, errlen, HCONN_EINVALID_HEADER,
                                      "header \"Content-Length\": %" PRId64
                                      " on a request "
                                      "without a body (only 0 is allowed)",
                                      n);
        if (req->content_length >= 0 && n != req->content_length)
            return http1_request_fail(
                err, errlen, HCONN_EINVALID_HEADER,
                "header \"Content-Length\": %" PRId64 " differs from the "
                "body's %" PRId64 " bytes (the daemon frames the body)",
                n, req->content_length);
        w->length = body ? n : -1;
    } else if (g->te != NULL) {
        if (!body)
            return http1_request_fail(err, errlen, HCONN_EINVALID_HEADER,
                                      "header \"Transfer-Encoding\" on a "
                                      "request without a body");
        w->chunked = true;
    } else if (req->chunked) {
        a->chunked = w->chunked = true;
    } else if (req->content_length >= 0) {
        a->content_length = req->content_length;
    } else if (http1_method_expects_body(req->method, a->method_len)) {
        a->content_length = 0;
    }
    return HCONN_OK;
}

/* Validates every input before writing a byte: on failure nothing is
 * allocated or returned, so nothing injected can reach the wire. */
int
http1_start_request_in(const struct http1_request *req, struct http1_writer *wr,
                       char *buf, size_t cap, char **head, size_t *len,
                       char *err, size_t errlen)
{
    struct http1_auto a = {.content_length = -1};
    struct http1_out o;
    struct http1_given g = {0};
    char stack[1024];
    struct http1_writer w;
    char q[HTTP1_QUOTE_SIZE];
    size_t bad;
    int rc;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (head != NULL)
        *head = NULL;
    if (len != NULL)
        *len = 0;
    if (wr != NULL)
        http1_writer_clear(wr);
    if (req == NULL || head == NULL || len == NULL ||
        (req->nheaders > 0 && req->headers == NULL))
        return http1_request_fail(err, errlen, HCONN_EINVALID_ARGUMENT,
                                  "request: missing argument");

    if (req->method == NULL || req->method[0] == '\0')
        return http1_request_fail(err, errlen, HCONN_EINVALID_URL,
                                  "method is empty");
    a.method_len = strlen(req->method);
    for (size_t i = 0; i < a.method_len; i++) {
        if (!http1_is_tchar((unsigned char)req->method[i]))
            return http1_request_fail(
                err, errlen, HCONN_EINVALID_URL,
                "method \"%s\" contains an invalid character at byte %zu",
                http1_quote(q, req->method, a.method_len), i);
    }
    /* Any case: some proxies compare methods case-insensitively, and a
     * CONNECT they accept is a raw tunnel to anywhere. */
    if (!req->tunnel && http1_ieq_lit(req->method, a.method_len, "CONNECT"))
        return http1_request_fail(
            err, errlen, HCONN_EINVALID_URL,
            "method \"%s\" is not allowed: tunnels are the \"proxy\" "
            "field's job",
            http1_quote(q, req->method, a.method_len));
    if (req->target == NULL || req->target[0] == '\0')
        return http1_request_fail(err, errlen, HCONN_EINVALID_URL,
                                  "target is empty");
    a.target_len = strlen(req->target);
    bad = http1_find_url_ctl(req->target, a.target_len);
    if (bad < a.target_len)
        return http1_request_fail(
            err, errlen, HCONN_EINVALID_URL,
            "target \"%s\" contains an invalid character at byte %zu",
            http1_quote(q, req->target, a.target_len), bad);
    if (req->content_length < -1)
        return http1_request_fail(err, errlen, HCONN_EINVALID_ARGUMENT,
                                  "content_length %" PRId64 " is below -1",
                                  req->content_length);
    if (req->content_length >= 0 && req->chunked)
        return http1_request_fail(err, errlen, HCONN_EINVALID_ARGUMENT,
                                  "content_length and chunked both given");

    rc = http1_check_request_fields(req, &g, err, errlen);
    if (rc == HCONN_OK)
        rc = http1_decide_request_framing(req, &g, &a, &w, err, errlen);
    if (rc < 0)
        return rc;

    /* putrequest: Host, then Accept-Encoding, unless skipped or given. */
    a.host = !req->skip_host && !g.host;
    if (a.host) {
        size_t hl;

        if (req->host == NULL || req->host[0] == '\0')
            return http1_request_fail(err, errlen, HCONN_EINVALID_URL,
                                      "host is empty");
        hl = a.host_len = strlen(req->host);
        bad = http1_find_url_ctl(req->host, hl);
        if (bad < hl)
            return http1_request_fail(
                err, errlen, HCONN_EINVALID_URL,
                "host \"%s\" contains an invalid character at byte %zu",
                http1_quote(q, req->host, hl), bad);
        /* RFC 9110 §7.2 / RFC 3986 §3.2.2: an IPv6 literal is bracketed;
         * tolerate a caller who already did. */
        a.bracket = memchr(req->host, ':', hl) != NULL && req->host[0] != '[';
        /* Port 0 means "not given"; a default port is left out as
         * http.client does. */
        a.port = req->port != 0 && req->port != (req->tls ? 443 : 80);
    }
    a.accept_encoding = !req->skip_accept_encoding && !g.ae;

    /* One pass into the caller's buffer (or the stack) for the usual
     * head; a larger one is measured by it and written again once its
     * buffer is there. */
    if (buf == NULL) {
        buf = stack;
        cap = sizeof stack;
    }
    o = (struct http1_out){.p = buf, .room = cap};
    http1_write_head(req, &a, &o);
    if (o.overflow)
        return http1_request_fail(err, errlen, HCONN_ENO_MEMORY,
                                  "request head too large");
    if (buf != stack && o.len <= cap) {
        *head = buf;
    } else {
        *head = malloc(o.len);
        if (*head == NULL)
            return http1_request_fail(err, errlen, HCONN_ENO_MEMORY,
                                      "no memory for a %zu-byte request head",
                                      o.len);
        if (o.len <= cap) {
            memcpy(*head, stack, o.len);
        } else {
            o = (struct http1_out){.p = *head, .room = o.len};
            http1_write_head(req, &a, &o);
        }
    }
    *len = o.len;
    w.state = w.has_body ? HTTP1_W_BODY : HTTP1_W_DONE;
    if (wr != NULL)
        *wr = w;
    return HCONN_OK;
}

int
http1_start_request(const struct http1_request *req, struct http1_writer *wr,
                    char **head, size_t *len, char *err, size_t errlen)
{
    return http1_start_request_in(req, wr, NULL, 0, head, len, err, errlen);
}

int
http1_format_request(const struct http1_request *req, char **head, size_t *len,
                     char *err, size_t errlen)
{
    return http1_start_request(req, NULL, head, len, err, errlen);
}

/* Lower-case hex without leading zeros (RFC 9112 §7.1), the shortest
 * line a parser can misread least. */
size_t
http1_format_chunk_header(size_t n, char out[HTTP1_CHUNK_HEADER_MAX])
{
    static const char hex[] = "0123456789abcdef";
    char digits[sizeof(size_t) * 2];
    size_t nd = 0, len = 0;

    do {
        digits[nd++] = hex[n & 15];
        n >>= 4;
    } while (n != 0);
    while (nd > 0)
        out[len++] = digits[--nd];
    out[len++] = '\r';
    out[len++] = '\n';
    out[len] = '\0';
    return len;
}

/* ---- Request bodies ----------------------------------------------------- */

/* Leaves the writer FAILED: a body that breaks its framing must not go
 * on, since the server would read the rest as something else. */
static int __attribute__((format(printf, 3, 4)))
http1_writer_fail(struct http1_writer *w, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(w->errmsg, sizeof w->errmsg, fmt, ap);
    va_end(ap);
    w->state = HTTP1_W_FAILED;
    w->error = code;
    return code;
}

/* Misuse: data or end where there is no body open. */
static int
http1_writer_not_open(struct http1_writer *w, const char *what)
{
    return http1_writer_fail(w, HCONN_EINVALID_ARGUMENT, "body %s %s", what,
                             w->state == HTTP1_W_IDLE ? "before the head"
                             : w->state == HTTP1_W_DONE
                                 ? "after the end of the request"
                                 : "after a framing error");
}

/* A frame with nothing around the data. */
static void
http1_frame_clear(struct http1_frame *f)
{
    f->pre_len = 0;
    f->pre[0] = '\0';
    f->post = "";
    f->post_len = 0;
}

int
http1_writer_data(struct http1_writer *w, uint64_t n, struct http1_frame *f)
{
    http1_frame_clear(f);
    if (w->state != HTTP1_W_BODY)
        return http1_writer_not_open(w, "data");
    if (n > http1_writer_room(w))
        return http1_writer_fail(w, HCONN_EBODY_LENGTH,
                                 "%" PRIu64 " more body bytes after %" PRIu64
                                 " would exceed the "
                                 "declared length of %" PRId64,
                                 n, w->written, w->length);
    if (n == 0)
        return HCONN_OK; /* "0\r\n" would be the last chunk */
    if (w->chunked) {
        f->pre_len = http1_format_chunk_header((size_t)n, f->pre);
        f->post = "\r\n";
        f->post_len = 2;
    }
    w->written += n;
    return HCONN_OK;
}

int
http1_writer_end(struct http1_writer *w, struct http1_frame *f)
{
    http1_frame_clear(f);
    if (w->state != HTTP1_W_BODY)
        return http1_writer_not_open(w, "end");
    if (w->length >= 0 && w->written != (uint64_t)w->length)
        return http1_writer_fail(w, HCONN_EBODY_LENGTH,
                                 "the body ended after %" PRIu64 " bytes of "
                                 "the %" PRId64 " declared",
                                 w->written, w->length);
    if (w->chunked) {
        memcpy(f->pre, HTTP1_LAST_CHUNK, sizeof HTTP1_LAST_CHUNK);
        f->pre_len = sizeof HTTP1_LAST_CHUNK - 1;
    }
    w->state = HTTP1_W_DONE;
    return HCONN_OK;
}

uint64_t
http1_writer_room(const struct http1_writer *w)
{
    if (w->state != HTTP1_W_BODY)
        return 0;
    if (w->length < 0)
        return UINT64_MAX;
    return (uint64_t)w->length - w->written;
}

void
http1_writer_rewind(struct http1_writer *w)
{
    if (w->state == HTTP1_W_IDLE)
        return;
    w->state = w->has_body ? HTTP1_W_BODY : HTTP1_W_DONE;
    w->written = 0;
    w->error = 0;
    w->errmsg[0] = '\0';
}

/* ---- Response parser: errors -------------------------------------------- */

/* Every failure goes through here: the parser stays FAILED and repeats the
 * same code on every later call. */
static int __attribute__((format(printf, 3, 4)))
http1_fail(struct http1_parser *p, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(p->errmsg, sizeof p->errmsg, fmt, ap);
    va_end(ap);
    p->state = HTTP1_S_FAILED;
    p->error = code;
    return -1;
}

/* http.client's IncompleteRead says how much arrived of how much. */
static int
http1_fail_incomplete(struct http1_parser *p)
{
    if (p->framing == HTTP1_FRAMING_CHUNKED)
        return http1_fail(p, HCONN_EINCOMPLETE_READ,
                          "received %" PRIu64 " bytes of a chunked body",
                          p->body_received);
    return http1_fail(p, HCONN_EINCOMPLETE_READ,
                      "received %" PRIu64 " of %" PRId64 " bytes",
                      p->body_received, p->content_length);
}

/* Names the line a limit or syntax error is about. */
static void
http1_line_name(const struct http1_parser *p, bool trailers, char *out,
                size_t outlen)
{
    if (!trailers && p->line_start == 0)
        snprintf(out, outlen, "status line");
    else
        snprintf(out, outlen, "%s line %zu", trailers ? "trailer" : "header",
                 p->nlines + 1);
}

/* ---- Response parser: heads and trailer sections ------------------------ */

/* RFC 9112 §4: status-line = HTTP-version SP status-code SP [reason].
 * Every check in order, for a line http1_take_status_line doubts:
 * returns -1 with the line's first fault, or 0. clean: the scan found no
 * NUL or CR in s[0..n). */
static int __attribute__((cold))
http1_check_status_line(struct http1_parser *p, const char *s, size_t n,
                        bool clean)
{
    char q[HTTP1_QUOTE_SIZE];
    size_t v_end = 0, c_end, k;
    int status;

    while (v_end < n && s[v_end] != ' ')
        v_end++;
    /* RFC 9112 §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT */
    if (v_end != 8 || memcmp(s, "HTTP/", 5) != 0 || !http1_is_digit(s[5]) ||
        s[6] != '.' || !http1_is_digit(s[7]))
        return http1_fail(p, HCONN_EBAD_STATUS_LINE,
                          "status line: malformed version \"%s\"",
                          http1_quote(q, s, v_end));
    if (s[5] != '1')
        return http1_fail(p, HCONN_EUNKNOWN_PROTOCOL,
                          "status line: version \"%s\" not supported",
                          http1_quote(q, s, v_end));
    if (v_end == n)
        return http1_fail(p, HCONN_EBAD_STATUS_LINE,
                          "status line: no status code after the version");
    c_end = 9;
    while (c_end < n && s[c_end] != ' ')
        c_end++;
    if (c_end - 9 != 3 || !http1_is_digit(s[9]) || !http1_is_digit(s[10]) ||
        !http1_is_digit(s[11]))
        return http1_fail(p, HCONN_EBAD_STATUS_LINE,
                          "status line: status code \"%s\" is not 3 digits",
                          http1_quote(q, s + 9, c_end - 9));
    status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    if (status < 100)
        return http1_fail(p, HCONN_EBAD_STATUS_LINE,
                          "status line: status code \"%s\" is out of range",
                          http1_quote(q, s + 9, 3));
    /* RFC 9112 §2.2: a bare CR is invalid; RFC 9110 §5.5 for NUL. Only
     * a line the scan found one in is searched for where it is. */
    k = clean ? n : c_end + http1_find_nul_cr(s + c_end, n - c_end);
    if (k < n)
        return http1_fail(p, HCONN_EBAD_STATUS_LINE,
                          "status line: reason contains %s at byte %zu",
                          s[k] == '\0' ? "NUL" : "CR", k);
    return 0;
}

/* Checks and takes the status line s[0..n), as soon as it is complete,
 * before the rest of the head. The common line ("HTTP/1.x NNN", then
 * nothing or SP and a clean reason) passes in one look; any other goes
 * through every check (http1_check_status_line), so it is refused
 * exactly as the full checks refuse it. */
static int
http1_take_status_line(struct http1_parser *p, const char *s, size_t n,
                       bool clean)
{
    if (!(clean && n >= 12 && memcmp(s, "HTTP/1.", 7) == 0 &&
          http1_is_digit(s[7]) && s[8] == ' ' && s[9] >= '1' && s[9] <= '9' &&
          http1_is_digit(s[10]) && http1_is_digit(s[11]) &&
          (n == 12 || s[12] == ' ')) &&
        http1_check_status_line(p, s, n, clean) < 0)
        return -1;
    /* RFC 9110 §2.5: a higher minor version is handled as the highest
     * minor version we implement, 1.1. */
    p->version = s[7] == '0' ? 10 : 11;
    p->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    p->status_end = n;
    return 0;
}

/* Fields framing depends on, told apart once, as each is recorded
 * (p->field_kind); p->framing_fields has bit 1 << kind for each kind a
 * head holds. */
enum {
    HTTP1_FIELD_CONTENT_LENGTH = 1,
    HTTP1_FIELD_TRANSFER_ENCODING = 2,
    HTTP1_FIELD_CONNECTION = 3,
};
_Static_assert(HTTP1_MAX_HEADERS <= UINT8_MAX + 1,
               "a field's index fits kind_first and kind_last");

/* Which of those a field name is (its HTTP1_FIELD_...), or 0: most names
 * are told apart by their length alone. */
static unsigned
http1_field_kind(const char *name, size_t n)
{
    switch (n) {
    case sizeof "Content-Length" - 1:
        return http1_ieq_lit(name, n, "Content-Length")
                   ? HTTP1_FIELD_CONTENT_LENGTH
                   : 0;
    case sizeof "Transfer-Encoding" - 1:
        return http1_ieq_lit(name, n, "Transfer-Encoding")
                   ? HTTP1_FIELD_TRANSFER_ENCODING
                   : 0;
    case sizeof "Connection" - 1:
        return http1_ieq_lit(name, n, "Connection") ? HTTP1_FIELD_CONNECTION
                                                    : 0;
    default:
        return 0;
    }
}

/* Records a checked field line s[0..n) (s[n] its CR or LF) at byte at of its
 * section: a new field whose colon is name_len bytes in, or an obs-fold, which
 * extends the previous field's value over the line break (turned into a space
 * by http1_unfold_value). Offsets and lengths only: the bytes may move before
 * the section ends (http1_fields_at). A new field's value is trimmed here (RFC
 * 9112 §5.1: OWS is SP and HTAB, and a checked line holds no CR or LF); a
 * folded one is trimmed once the section ends. */
static void
http1_record_field(struct http1_parser *p, const char *s, size_t at, bool fold,
                   size_t name_len, size_t n)
{
    struct http1_header *h;
    size_t k, v = name_len + 1, end = n;
    unsigned kind;

    if (fold) {
        k = p->nfields - 1;
        p->headers[k].value_len = at + n - p->value_at[k];
        p->folded = true;
        return;
    }
    while (http1_is_sp_ht(s[v])) /* s[n] is neither */
        v++;
    while (end > v && http1_is_sp_ht(s[end - 1]))
        end--;
    k = p->nfields++;
    h = &p->headers[k];
    p->field_at[k] = (uint32_t)at;
    p->value_at[k] = (uint32_t)(at + v);
    h->name_len = name_len;
    h->value_len = end - v;
    kind = http1_field_kind(s, name_len);
    p->field_kind[k] = (uint8_t)kind;
    if (kind != 0) {
        if (!(p->framing_fields & 1u << kind))
            p->kind_first[kind] = (uint8_t)k;
        p->kind_last[kind] = (uint8_t)k;
        p->framing_fields |= 1u << kind;
    }
}

/* The section that starts at base has ended: points its recorded fields
 * into it, each value without the OWS around it (RFC 9112 §5.1; a folded
 * value's line breaks count as OWS at its ends). Returns how many there
 * are. */
static size_t
http1_fields_at(struct http1_parser *p, const char *base)
{
    for (size_t k = 0; k < p->nfields; k++) {
        p->headers[k].name = base + p->field_at[k];
        p->headers[k].value = base + p->value_at[k];
    }
    for (size_t k = 0; p->folded && k < p->nfields; k++)
        http1_trim(&p->headers[k].value, &p->headers[k].value_len);
    return p->nfields;
}

/* Back to the start of a section: no line open, no field recorded. */
static void
http1_section_clear(struct http1_parser *p)
{
    p->scanned = p->line_start = p->nlines = p->nfields = 0;
    p->nul_cr_at = 0;
    p->folded = false;
    p->framing_fields = 0;
}

/* RFC 9112 §5: field-line = field-name ":" OWS field-value OWS, with
 * obs-fold (§5.2) continuing the previous line. s[0..n) excludes the line
 * end. Every check in order, for a line http1_take_field_line doubts:
 * returns -1 with the line's first fault, or 0 with *name_len set (0
 * for a folded line). */
static int __attribute__((cold))
http1_check_field_line(struct http1_parser *p, const char *s, size_t n,
                       bool trailers, size_t *name_len)
{
    const char *what = trailers ? "trailer" : "header";
    char q[HTTP1_QUOTE_SIZE];
    size_t line = p->nlines + 1, k = 0;
    const char *colon;

    /* Folded lines count as lines, as http.client counts them: the limit
     * is what bounds the memory a head can take. */
    if (p->nlines >= HTTP1_MAX_HEADERS)
        return http1_fail(p, HCONN_ETOO_MANY_HEADERS,
                          "%ss: more than %d field lines", what,
                          HTTP1_MAX_HEADERS);
    if (s[0] == ' ' || s[0] == '\t') {
        if (p->nlines == 0)
            return http1_fail(p, HCONN_EBAD_HEADER,
                              "%s line %zu: continuation line before any "
                              "field",
                              what, line);
    } else {
        while (k < n && http1_is_tchar((unsigned char)s[k]))
            k++;
        if (k < n && s[k] == ':' && k == 0)
            return http1_fail(p, HCONN_EBAD_HEADER,
                              "%s line %zu: empty field name", what, line);
        if (k == n || s[k] != ':') {
            colon = memchr(s, ':', n);
            if (colon == NULL)
                return http1_fail(p, HCONN_EBAD_HEADER, "%s line %zu: no colon",
                                  what, line);
            /* RFC 9112 §5.1: no whitespace between name and colon. */
            if (k > 0 && (s[k] == ' ' || s[k] == '\t')) {
                size_t w = k;

                while (s[w] == ' ' || s[w] == '\t')
                    w++;
                if (s + w == colon)
                    return http1_fail(p, HCONN_EBAD_HEADER,
                                      "%s line %zu: whitespace between field "
                                      "name \"%s\" and colon",
                                      what, line, http1_quote(q, s, k));
            }
            return http1_fail(p, HCONN_EBAD_HEADER,
                              "%s line %zu: invalid character in field name "
                              "at byte %zu",
                              what, line, k);
        }
        k++;
    }
    /* A field's name ends at its colon; a folded line (k 0) has none. */
    *name_len = k == 0 ? 0 : k - 1;
    /* RFC 9110 §5.5: CR (bare, here) and NUL are never valid in a value. */
    k += http1_find_nul_cr(s + k, n - k);
    if (k < n)
        return http1_fail(p, HCONN_EBAD_HEADER,
                          "%s line %zu: value contains %s at byte %zu", what,
                          line, s[k] == '\0' ? "NUL" : "CR", k);
    return 0;
}

/* Checks and records the field line s[0..n) (at byte at of its section;
 * s[n] is its CR or LF). clean: the scan found no NUL or CR in it. The
 * common line (room for it, a token, a colon, a clean value) passes
 * with one look at its name; any other goes through every check
 * (http1_check_field_line), which says what is wrong, so a line is
 * refused exactly as the full checks refuse it. */
static int
http1_take_field_line(struct http1_parser *p, const char *s, size_t n,
                      size_t at, bool trailers, bool clean)
{
    bool fold = s[0] == ' ' || s[0] == '\t';
    size_t k = 0;

    if (!fold) {
        /* Sixteen bytes, then four a step while the line holds them,
         * then one: s[n] (CR or LF) is not a tchar, so the name ends by
         * then. */
#if defined(__SSE2__)
        if (n >= 16)
            k = http1_count_name_bytes16(s);
#endif
        if (s[k] != ':') {
            while (n - k >= 4 &&
                   http1_are_tchars4((const unsigned char *)s + k))
                k += 4;
            while (http1_is_tchar((unsigned char)s[k]))
                k++;
        }
    }
    if (p->nlines >= HTTP1_MAX_HEADERS || !clean ||
        (fold ? p->nlines == 0 : k == 0 || s[k] != ':')) {
        if (http1_check_field_line(p, s, n, trailers, &k) < 0)
            return -1;
        fold = k == 0;
    }
    http1_record_field(p, s, at, fold, k, n);
    p->nlines++;
    return 0;
}

/*
 * Scans base[0..n) (a head or a trailer section, from its first byte) for
 * its end, checking each line as it completes. Returns 1 with *end set
 * past the blank line, 0 when more bytes are needed, -1 on error. Resumes
 * at p->scanned, so every byte is looked at once however input arrives:
 * one search finds both a line's end and any NUL or CR in it
 * (p->nul_cr_at), so a clean line's value is never looked at again.
 */
static int
http1_scan_section(struct http1_parser *p, const char *base, size_t n,
                   bool trailers, size_t *end)
{
    char q[HTTP1_QUOTE_SIZE], what[32];
    size_t i = p->scanned, ls = p->line_start, nul_cr_at = p->nul_cr_at;
    bool status_line, clean;
    int rc = 0;

    if (i > n || ls > i)
        return http1_fail(p, HCONN_EINVALID_ARGUMENT,
                          "parser: unconsumed bytes were dropped");
    /* Refuse a non-HTTP reply (or HTTP/0.9) at once rather than waiting
     * for a line end that may never come. */
    if (!trailers && ls == 0 && (n < 5 || memcmp(base, "HTTP/", 5) != 0)) {
        for (size_t k = i; k < n && k < 5; k++) {
            if (base[k] != "HTTP/"[k])
                return http1_fail(p, HCONN_EBAD_STATUS_LINE,
                                  "status line: does not start with "
                                  "\"HTTP/\" (got \"%s\")",
                                  http1_quote(q, base, k + 1));
        }
    }
    while (i < n) {
        size_t lf, e;

        i = http1_find_line_byte(base, i, n);
        if (i == n)
            break;
        if (base[i] == '\r' && i + 1 < n && base[i + 1] == '\n') {
            e = i; /* CRLF, the common line end */
            lf = i + 1;
        } else if (base[i] == '\n') {
            /* RFC 9112 §2.2: a bare LF ends a line too (and a CR just
             * before it, seen by an earlier call, is its CRLF's). */
            e = lf = i;
            if (e > ls && base[e - 1] == '\r')
                e--;
        } else {
            /* NUL or CR: the line is refused once complete, unless it
             * is a CR that turns out to be its line end's. */
            if (nul_cr_at == 0)
                nul_cr_at = i + 1;
            i++;
            continue;
        }
        /* The limit counts the line end, as http.client's readline does. */
        if (lf + 1 - ls > HTTP1_MAX_LINE)
            goto too_long;
        clean = nul_cr_at == 0 || nul_cr_at > e;
        status_line = !trailers && ls == 0;
        if (e == ls && !status_line) {
            *end = lf + 1;
            rc = 1;
            i = lf + 1;
            break;
        }
        if (status_line ? http1_take_status_line(p, base, e, clean)
                        : http1_take_field_line(p, base + ls, e - ls, ls,
                                                trailers, clean))
            return -1;
        ls = i = lf + 1;
        nul_cr_at = 0;
    }
    p->scanned = i;
    p->line_start = ls;
    p->nul_cr_at = nul_cr_at;
    /* This many bytes and no line end: the line cannot fit any more. */
    if (rc == 0 && n - ls >= HTTP1_MAX_LINE)
        goto too_long;
    return rc;

too_long:
    p->line_start = ls;
    http1_line_name(p, trailers, what, sizeof what);
    return http1_fail(p, HCONN_ELINE_TOO_LONG, "%s: longer than %d bytes", what,
                      HTTP1_MAX_LINE);
}

/* ---- Response parser: framing ------------------------------------------- */

/* Content-Length: 1*DIGIT; RFC 9110 §8.6 lets a recipient accept a list
 * (or repeated fields) of one identical value; anything else is refused.
 * A value is read in one pass, element by element as http1_list_next
 * would hand them out trimmed, so each value gets the refusal its first
 * bad element earns: empty, then (in digit order) not a number or too
 * large, then conflicting. */
static int
http1_content_length(struct http1_parser *p, int64_t *out)
{
    char q[HTTP1_QUOTE_SIZE];
    const char *why = NULL;
    bool have = false;
    int64_t cl = 0;

    for (size_t i = p->kind_first[HTTP1_FIELD_CONTENT_LENGTH];
         i <= p->kind_last[HTTP1_FIELD_CONTENT_LENGTH]; i++) {
        const struct http1_header *h = &p->headers[i];
        const char *s = h->value;
        size_t n = h->value_len, k = 0;

        if (p->field_kind[i] != HTTP1_FIELD_CONTENT_LENGTH)
            continue;
        for (;;) {
            size_t start;
            int64_t v = 0;

            while (k < n && http1_is_ows(s[k]))
                k++;
            start = k;
            for (; k < n && http1_is_digit(s[k]); k++) {
                int d = s[k] - '0';

                /* v * 10 + d > INT64_MAX, without a division */
                if (v > INT64_MAX / 10 ||
                    (v == INT64_MAX / 10 && d > INT64_MAX % 10)) {
                    why = "too large";
                    goto refuse;
                }
                v = v * 10 + d;
            }
            if (k == start && (k == n || s[k] == ',')) {
                why = "empty value";
                goto refuse;
            }
            while (k < n && http1_is_ows(s[k]))
                k++;
            if (k < n && s[k] != ',') {
                why = "not a number";
                goto refuse;
            }
            if (have && v != cl) {
                why = "conflicting values";
                goto refuse;
            }
            have = true;
            cl = v;
            if (k == n)
                break;
            k++; /* past the comma */
        }
        continue;
    refuse:
        return http1_fail(p, HCONN_EBAD_CONTENT_LENGTH,
                          "Content-Length \"%s\": %s",
                          http1_quote(q, h->value, h->value_len), why);
    }
    *out = cl;
    return 0;
}

/* RFC 9112 §6.1/§7: we decode chunked only, so the combined coding list
 * must be exactly "chunked" (chunked last, and applied once). */
static int
http1_transfer_encoding(struct http1_parser *p)
{
    char q[HTTP1_QUOTE_SIZE], qe[HTTP1_QUOTE_SIZE];
    const struct http1_header *last = NULL;
    bool chunked = false;

    for (size_t i = p->kind_first[HTTP1_FIELD_TRANSFER_ENCODING];
         i <= p->kind_last[HTTP1_FIELD_TRANSFER_ENCODING]; i++) {
        const struct http1_header *h = &p->headers[i];
        struct http1_list l = {h->value, h->value_len, 0, false};
        const char *e;
        size_t en;

        if (p->field_kind[i] != HTTP1_FIELD_TRANSFER_ENCODING)
            continue;
        last = h;
        while (http1_list_next(&l, &e, &en)) {
            if (en == 0)
                continue; /* RFC 9110 §5.6.1: empty elements don't count */
            if (!http1_ieq_lit(e, en, "chunked"))
                return http1_fail(p, HCONN_EUNKNOWN_TRANSFER_ENCODING,
                                  "Transfer-Encoding \"%s\": unsupported "
                                  "coding \"%s\"",
                                  http1_quote(q, h->value, h->value_len),
                                  http1_quote(qe, e, en));
            if (chunked)
                return http1_fail(p, HCONN_EUNKNOWN_TRANSFER_ENCODING,
                                  "Transfer-Encoding \"%s\": chunked applied "
                                  "twice",
                                  http1_quote(q, h->value, h->value_len));
            chunked = true;
        }
    }
    if (!chunked)
        return http1_fail(
            p, HCONN_EUNKNOWN_TRANSFER_ENCODING,
            "Transfer-Encoding \"%s\": no coding",
            last != NULL ? http1_quote(q, last->value, last->value_len) : "");
    return 0;
}

/* Decides framing (RFC 9112 §6.3, steps in order) and keep-alive for the
 * final head, whose fields are in p->headers; kinds: its framing_fields
 * (only the fields from the first to the last of a kind are looked at). */
static int
http1_decide_framing(struct http1_parser *p, unsigned kinds)
{
    bool has_cl = kinds & 1u << HTTP1_FIELD_CONTENT_LENGTH;
    bool has_te = kinds & 1u << HTTP1_FIELD_TRANSFER_ENCODING;
    bool has_conn = kinds & 1u << HTTP1_FIELD_CONNECTION;
    bool conn_close = false, conn_keep = false, reusable;

    for (size_t i = p->kind_first[HTTP1_FIELD_CONNECTION];
         has_conn && i <= p->kind_last[HTTP1_FIELD_CONNECTION]; i++) {
        const struct http1_header *h = &p->headers[i];

        if (p->field_kind[i] == HTTP1_FIELD_CONNECTION) {
            /* RFC 9110 §7.6.1: a list of case-insensitive options; most
             * are the one option keep-alive (a trimmed value, so the
             * list's one element). */
            struct http1_list l = {h->value, h->value_len, 0, false};
            const char *e;
            size_t en;

            if (http1_ieq_lit(h->value, h->value_len, "keep-alive")) {
                conn_keep = true;
                continue;
            }

            while (http1_list_next(&l, &e, &en)) {
                if (http1_ieq_lit(e, en, "close"))
                    conn_close = true;
                else if (http1_ieq_lit(e, en, "keep-alive"))
                    conn_keep = true;
            }
        }
    }

    p->content_length = -1;
    if (p->head_request || p->status < 200 || p->status == 204 ||
        p->status == 304) {
        /* Step 1: no body whatever the fields say. */
        p->framing = HTTP1_FRAMING_NONE;
    } else if (has_te && has_cl) {
        /* Step 3 says Transfer-Encoding wins; but the pair is the mark of
         * request smuggling, and a pooled connection must not guess. */
        return http1_fail(p, HCONN_EBAD_FRAMING,
                          "both Transfer-Encoding and Content-Length");
    } else if (has_te) {
        /* Step 4: chunked last, else (for a response) read until close;
         * we only accept chunked, so any other list is refused. */
        if (http1_transfer_encoding(p) < 0)
            return -1;
        p->framing = HTTP1_FRAMING_CHUNKED;
    } else if (has_cl) {
        /* Step 5 (step 6 is for requests). */
        if (http1_content_length(p, &p->content_length) < 0)
            return -1;
        p->framing = HTTP1_FRAMING_LENGTH;
    } else {
        /* Step 7. */
        p->framing = HTTP1_FRAMING_CLOSE;
    }

    /* RFC 9112 §9.3: 1.1 persists unless "close"; 1.0 only with
     * "keep-alive". §6.1: Transfer-Encoding in a 1.0 message means faulty
     * framing, so such a connection is closed after the message. */
    if (p->version == 11)
        reusable = !conn_close;
    else
        reusable = conn_keep && !conn_close && !has_te;
    /* A response without a body by rule (HEAD, 204, 304) ends where its
     * head ends, but an origin that sends a body anyway (a common bug)
     * puts bytes on the connection that the next request would take for
     * its response: they can land a moment after the head, when the
     * connection already carries another user's request, and nothing
     * tells them apart. Such a connection is not kept. */
    p->keep_alive = reusable && !p->request_close &&
                    p->framing != HTTP1_FRAMING_CLOSE &&
                    p->framing != HTTP1_FRAMING_NONE;
    return 0;
}

/* ---- Response parser: the state machine --------------------------------- */

/* Each step either produces an event (returns true) or moves to another
 * state having consumed bytes at *off (returns false). */

/* A head is consumed only whole: its event points into it. */
static bool
http1_step_head(struct http1_parser *p, const char *buf, size_t len, bool eof,
                size_t *off, struct http1_event *ev)
{
    const char *base = buf + *off;
    size_t n = len - *off, end, nh, sl_end;
    unsigned kinds;
    int rc = http1_scan_section(p, base, n, false, &end);

    if (rc < 0)
        return true;
    if (rc == 0) {
        if (!eof) {
            ev->kind = HTTP1_NEED_DATA;
        } else if (n > 0) {
            http1_fail(p, HCONN_EREMOTE_DISCONNECTED,
                       "server closed the connection after %zu bytes of "
                       "the response head",
                       n);
        } else if (p->status != 0) {
            http1_fail(p, HCONN_EREMOTE_DISCONNECTED,
                       "server closed the connection after an interim %d "
                       "response",
                       p->status);
        } else {
            http1_fail(p, HCONN_EREMOTE_DISCONNECTED,
                       "server closed the connection without a response");
        }
        return true;
    }

    sl_end = p->status_end;
    nh = http1_fields_at(p, base);
    kinds = p->framing_fields;
    http1_section_clear(p);
    ev->status = p->status;
    ev->version = p->version;
    /* Checked: "HTTP/x.y NNN" then nothing, or SP and the reason. */
    ev->reason = base + (sl_end > 12 ? 13 : sl_end);
    ev->reason_len = sl_end > 12 ? sl_end - 13 : 0;
    ev->headers = p->headers;
    ev->nheaders = nh;

    if (p->status == 101) {
        http1_fail(p, HCONN_EUNSUPPORTED,
                   "101 Switching Protocols is not supported");
        return true;
    }
    if (p->status < 200) {
        /* RFC 9110 §15.2: any other 1xx is interim; the final head
         * follows. p->status keeps it only for the EOF message. */
        ev->kind = HTTP1_INTERIM;
        *off += end;
        return true;
    }
    if (http1_decide_framing(p, kinds) < 0)
        return true;
    ev->kind = HTTP1_HEAD;
    *off += end;
    p->state =
        p->framing == HTTP1_FRAMING_CHUNKED ? HTTP1_S_CHUNK_SIZE : HTTP1_S_BODY;
    return true;
}

/* END is terminal: keep-alive becomes answerable only from here. */
static bool
http1_end(struct http1_parser *p, struct http1_event *ev)
{
    p->state = HTTP1_S_DONE;
    ev->kind = HTTP1_END;
    return true;
}

/* Hands back body bytes in place. */
static bool
http1_data(struct http1_parser *p, const char *buf, size_t n, size_t *off,
           struct http1_event *ev)
{
    ev->kind = HTTP1_DATA;
    ev->data = buf + *off;
    ev->len = n;
    *off += n;
    p->body_received += n;
    return true;
}

/* Content-Length, read-until-close and no-body responses. */
static bool
http1_step_body(struct http1_parser *p, const char *buf, size_t len, bool eof,
                size_t *off, struct http1_event *ev)
{
    size_t n = len - *off;

    if (p->framing == HTTP1_FRAMING_NONE)
        return http1_end(p, ev);
    if (p->framing == HTTP1_FRAMING_LENGTH) {
        uint64_t left = (uint64_t)p->content_length - p->body_received;

        if (left == 0)
            return http1_end(p, ev);
        if (n > 0)
            return http1_data(p, buf, n < left ? n : (size_t)left, off, ev);
        if (eof)
            http1_fail_incomplete(p);
        else
            ev->kind = HTTP1_NEED_DATA;
        return true;
    }
    if (n > 0)
        return http1_data(p, buf, n, off, ev);
    if (eof)
        return http1_end(p, ev);
    ev->kind = HTTP1_NEED_DATA;
    return true;
}

/* RFC 9112 §7.1: chunk-size [chunk-ext] CRLF, with chunk-ext =
 * *(BWS ";" ...) ignored. */
static bool
http1_step_chunk_size(struct http1_parser *p, const char *buf, size_t len,
                      bool eof, size_t *off, struct http1_event *ev)
{
    const char *base = buf + *off, *lf = NULL;
    size_t n = len - *off, e, k = 0;
    char q[HTTP1_QUOTE_SIZE];
    uint64_t size = 0;

    if (p->scanned > n) {
        http1_fail(p, HCONN_EINVALID_ARGUMENT,
                   "parser: unconsumed bytes were dropped");
        return true;
    }
    if (n > p->scanned)
        lf = memchr(base + p->scanned, '\n', n - p->scanned);
    if (lf == NULL) {
        p->scanned = n;
        if (n >= HTTP1_MAX_LINE)
            http1_fail(p, HCONN_ELINE_TOO_LONG,
                       "chunk-size line: longer than %d bytes", HTTP1_MAX_LINE);
        else if (eof)
            http1_fail_incomplete(p);
        else
            ev->kind = HTTP1_NEED_DATA;
        return true;
    }
    if ((size_t)(lf - base) + 1 > HTTP1_MAX_LINE) {
        http1_fail(p, HCONN_ELINE_TOO_LONG,
                   "chunk-size line: longer than %d bytes", HTTP1_MAX_LINE);
        return true;
    }
    e = (size_t)(lf - base);
    if (e > 0 && base[e - 1] == '\r')
        e--;
    for (; k < e && http1_hex_value(base[k]) >= 0; k++) {
        if (k == 16) {
            http1_fail(p, HCONN_EBAD_CHUNK,
                       "chunk size \"%s\": more than 16 hex digits",
                       http1_quote(q, base, e));
            return true;
        }
        size = size << 4 | (uint64_t)http1_hex_value(base[k]);
    }
    if (k == 0) {
        http1_fail(p, HCONN_EBAD_CHUNK, "chunk size \"%s\": not a hex number",
                   http1_quote(q, base, e));
        return true;
    }
    while (k < e && (base[k] == ' ' || base[k] == '\t'))
        k++;
    if (k < e && base[k] != ';') {
        http1_fail(p, HCONN_EBAD_CHUNK,
                   "chunk size \"%s\": unexpected character at byte %zu",
                   http1_quote(q, base, e), k);
        return true;
    }
    if (size > (uint64_t)INT64_MAX - p->body_received) {
        http1_fail(p, HCONN_EBAD_CHUNK, "chunk size \"%s\": too large",
                   http1_quote(q, base, e));
        return true;
    }
    *off += (size_t)(lf - base) + 1;
    p->scanned = 0;
    if (size == 0) {
        /* The last chunk: a trailer section follows (§7.1.2). */
        http1_section_clear(p);
        p->state = HTTP1_S_TRAILERS;
    } else {
        p->chunk_left = size;
        p->state = HTTP1_S_CHUNK_DATA;
    }
    return false;
}

/* Chunk data up to the chunk's end, never past it, so the CRLF after it
 * is always checked. */
static bool
http1_step_chunk_data(struct http1_parser *p, const char *buf, size_t len,
                      bool eof, size_t *off, struct http1_event *ev)
{
    size_t n = len - *off;

    if (n == 0) {
        if (eof)
            http1_fail_incomplete(p);
        else
            ev->kind = HTTP1_NEED_DATA;
        return true;
    }
    if (n > p->chunk_left)
        n = (size_t)p->chunk_left;
    p->chunk_left -= n;
    if (p->chunk_left == 0)
        p->state = HTTP1_S_CHUNK_CRLF;
    return http1_data(p, buf, n, off, ev);
}

/* The CRLF that closes chunk data (a bare LF is accepted, as for lines). */
static bool
http1_step_chunk_crlf(struct http1_parser *p, const char *buf, size_t len,
                      bool eof, size_t *off, struct http1_event *ev)
{
    const char *base = buf + *off;
    size_t n = len - *off, crlf = 0;

    if (n >= 1 && base[0] == '\n')
        crlf = 1;
    else if (n >= 2 && base[0] == '\r' && base[1] == '\n')
        crlf = 2;
    else if (n >= 2 || (n == 1 && base[0] != '\r')) {
        http1_fail(p, HCONN_EBAD_CHUNK,
                   "no CRLF after chunk data (received %" PRIu64
                   " bytes of a chunked body)",
                   p->body_received);
        return true;
    }
    if (crlf == 0) {
        if (eof)
            http1_fail_incomplete(p);
        else
            ev->kind = HTTP1_NEED_DATA;
        return true;
    }
    *off += crlf;
    p->state = HTTP1_S_CHUNK_SIZE;
    return false;
}

/* RFC 9112 §7.1.2: trailer fields, kept and returned with END. */
static bool
http1_step_trailers(struct http1_parser *p, const char *buf, size_t len,
                    bool eof, size_t *off, struct http1_event *ev)
{
    const char *base = buf + *off;
    size_t end, nh;
    int rc = http1_scan_section(p, base, len - *off, true, &end);

    if (rc < 0)
        return true;
    if (rc == 0) {
        if (eof)
            http1_fail_incomplete(p);
        else
            ev->kind = HTTP1_NEED_DATA;
        return true;
    }
    nh = http1_fields_at(p, base);
    http1_section_clear(p);
    *off += end;
    ev->headers = p->headers;
    ev->nheaders = nh;
    return http1_end(p, ev);
}

/* Clears every state field, so one parser can be reused response after
 * response. */
void
http1_parser_init(struct http1_parser *p, bool head_request, bool request_close)
{
    /* Not the header index: entries are written before they are read,
     * and clearing 3 KiB per response was the parser's largest cost; nor
     * the message past its first byte, written whole when it is set. */
    memset(p, 0, offsetof(struct http1_parser, errmsg));
    p->errmsg[0] = '\0';
    p->head_request = head_request;
    p->request_close = request_close;
    p->state = HTTP1_S_HEAD;
    p->framing = HTTP1_FRAMING_NONE;
    p->content_length = -1;
}

/*
 * One event per call. Outcomes: NEED_DATA (consumed = bytes the parser is
 * done with, 0 inside a head or trailer section, whose bytes the next
 * event will point at); INTERIM/HEAD (consumed = the head); DATA (consumed
 * ends at the last data byte); END (consumed covers trailers, if any);
 * ERROR (consumed 0). After END or ERROR every call returns the same kind
 * (END without trailers, ERROR with the same code) and consumes nothing.
 */
void
http1_parser_next_into(struct http1_parser *p, const char *buf, size_t len,
                       bool eof, size_t *consumed, struct http1_event *ev)
{
    size_t off = 0;
    bool done = false;

    *ev = (struct http1_event){.kind = HTTP1_ERROR};

    if (buf == NULL) {
        if (len != 0 && p->state != HTTP1_S_FAILED)
            http1_fail(p, HCONN_EINVALID_ARGUMENT, "parser: NULL buffer");
        buf = ""; /* keep pointer arithmetic defined */
    }
    while (!done) {
        switch (p->state) {
        case HTTP1_S_HEAD:
            done = http1_step_head(p, buf, len, eof, &off, ev);
            break;
        case HTTP1_S_BODY:
            done = http1_step_body(p, buf, len, eof, &off, ev);
            break;
        case HTTP1_S_CHUNK_SIZE:
            done = http1_step_chunk_size(p, buf, len, eof, &off, ev);
            break;
        case HTTP1_S_CHUNK_DATA:
            done = http1_step_chunk_data(p, buf, len, eof, &off, ev);
            break;
        case HTTP1_S_CHUNK_CRLF:
            done = http1_step_chunk_crlf(p, buf, len, eof, &off, ev);
            break;
        case HTTP1_S_TRAILERS:
            done = http1_step_trailers(p, buf, len, eof, &off, ev);
            break;
        case HTTP1_S_DONE:
            ev->kind = HTTP1_END;
            done = true;
            break;
        case HTTP1_S_FAILED:
        default:
            done = true;
            break;
        }
    }
    if (p->state == HTTP1_S_FAILED) {
        *ev = (struct http1_event){.kind = HTTP1_ERROR, .error = p->error};
        off = 0;
    }
    if (consumed != NULL)
        *consumed = off;
}

/* The steps write through a pointer to the caller's event: built here
 * and returned by value, it was copied out again, some 20 instructions a
 * call and three calls a response, on the daemon's path. */
struct http1_event
http1_parser_next(struct http1_parser *p, const char *buf, size_t len, bool eof,
                  size_t *consumed)
{
    struct http1_event ev;

    http1_parser_next_into(p, buf, len, eof, consumed, &ev);
    return ev;
}

/* Only a complete response can vouch for the connection. */
bool
http1_parser_keep_alive(const struct http1_parser *p)
{
    return p->state == HTTP1_S_DONE && p->keep_alive;
}

uint64_t
http1_parser_body_left(const struct http1_parser *p)
{
    if (p->state != HTTP1_S_BODY || p->framing != HTTP1_FRAMING_LENGTH)
        return 0;
    return (uint64_t)p->content_length - p->body_received;
}

/* Past the left count would let a caller overrun the body into the next
 * response: clamped, since no caller can rightly ask for it. */
void
http1_parser_body_taken(struct http1_parser *p, uint64_t n)
{
    uint64_t left = http1_parser_body_left(p);

    p->body_received += n < left ? n : left;
}

/* RFC 9112 §5.2: obs-fold = OWS CRLF RWS; the whole run (and a bare LF
 * fold) becomes one SP, so a folded value reads as one line. */
size_t
http1_unfold_value(char *dst, const char *value, size_t value_len)
{
    size_t o = 0, i = 0;

    while (i < value_len) {
        if (value[i] != '\r' && value[i] != '\n') {
            dst[o++] = value[i++];
            continue;
        }
        while (o > 0 && (dst[o - 1] == ' ' || dst[o - 1] == '\t'))
            o--;
        while (i < value_len && http1_is_ows(value[i]))
            i++;
        dst[o++] = ' ';
    }
    dst[o] = '\0';
    return o;
}
