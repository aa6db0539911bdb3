/*
 * request-check.h — an independent model of http1_format_request (its
 * contract in http1.h, http.client's layout) for fuzz-request.c and
 * fuzz-wire.c: which requests it must accept (the connection-management
 * table of PROTOCOL.md 3.1 included), the exact head it must write, the
 * shape every accepted head must have (CR and LF only as line ends,
 * "name: value" fields, one blank line at the end), and the body writer
 * it must leave: its framing, the length it enforces, and bytes that
 * decode to exactly the body given.
 */
#ifndef HCONN_FUZZ_REQUEST_CHECK_H
#define HCONN_FUZZ_REQUEST_CHECK_H

#include <inttypes.h>
#include <stdio.h>

#include "fuzz-common.h"
#include "hconn_error.h"
#include "http1.h"

/* ASCII, case-insensitive, s[0..n) against a literal. */
static inline bool
rq_ieq(const char *s, size_t n, const char *lit)
{
    size_t i;

    for (i = 0; i < n; i++) {
        char a = s[i], b = lit[i];

        if (b == '\0')
            return false;
        if (a >= 'A' && a <= 'Z')
            a = (char)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = (char)(b - 'A' + 'a');
        if (a != b)
            return false;
    }
    return lit[i] == '\0';
}

/* A request-target or host: no controls, space or DEL. */
static inline bool
rq_url_ok(const char *s)
{
    if (s == NULL || s[0] == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s == 0x7f)
            return false;
    }
    return true;
}

/* What the caller's fields say about framing, and the body writer the
 * head must leave behind. */
struct rq_fields {
    bool host, ae, cl, te;
    bool w_body, w_chunked; /* the writer: a body, chunk-encoded */
    int64_t w_length;       /* the writer's enforced length, or -1 */
};

/* s[0..n) without leading and trailing SP and HTAB. */
static inline void
rq_trim(const char **s, size_t *n)
{
    while (*n > 0 && ((*s)[0] == ' ' || (*s)[0] == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

/* True when every comma-separated element of v is empty or one of the
 * two literals (b may be NULL). */
static inline bool
rq_list_only(const char *v, size_t n, const char *a, const char *b,
             const char *c)
{
    size_t start = 0;

    if (n == 0)
        return true; /* v may be NULL */
    for (size_t i = 0; i <= n; i++) {
        if (i == n || v[i] == ',') {
            const char *e = v + start;
            size_t en = i - start;

            rq_trim(&e, &en);
            if (en > 0 && !rq_ieq(e, en, a) && !(b && rq_ieq(e, en, b)) &&
                !(c && rq_ieq(e, en, c)))
                return false;
            start = i + 1;
        }
    }
    return true;
}

/* The connection-management table (PROTOCOL.md 3.1) for one field;
 * counts what decides framing. */
static inline bool
rq_field_ok(const struct http1_header *h, size_t *nhost, size_t *nexpect,
            size_t *ncl, size_t *nte, int64_t *cl)
{
    static const char *const refused[] = {"Upgrade", "HTTP2-Settings",
                                          "Keep-Alive", "Proxy-Connection",
                                          "Trailer"};
    const char *v = h->value;
    size_t vn = h->value_len;

    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
        if (rq_ieq(h->name, h->name_len, refused[i]))
            return false;
    rq_trim(&v, &vn);
    if (rq_ieq(h->name, h->name_len, "Host"))
        return ++*nhost == 1;
    if (rq_ieq(h->name, h->name_len, "Connection"))
        return rq_list_only(h->value, h->value_len, "close", "keep-alive",
                            "te");
    if (rq_ieq(h->name, h->name_len, "TE"))
        return rq_list_only(h->value, h->value_len, "trailers", NULL, NULL);
    if (rq_ieq(h->name, h->name_len, "Expect"))
        return ++*nexpect == 1 && rq_ieq(v, vn, "100-continue");
    if (rq_ieq(h->name, h->name_len, "Transfer-Encoding"))
        return ++*nte == 1 && rq_ieq(v, vn, "chunked");
    if (rq_ieq(h->name, h->name_len, "Content-Length")) {
        if (++*ncl != 1 || vn == 0 || vn > 18)
            return false;
        *cl = 0;
        for (size_t k = 0; k < vn; k++) {
            if (v[k] < '0' || v[k] > '9')
                return false;
            *cl = *cl * 10 + (v[k] - '0');
        }
    }
    return true;
}

/* True when http1_start_request must accept req; f says what it must do. */
static inline bool
rq_valid(const struct http1_request *req, struct rq_fields *f)
{
    size_t nhost = 0, nexpect = 0, ncl = 0, nte = 0;
    int64_t cl = -1;
    bool body;

    memset(f, 0, sizeof *f);
    if (req->method == NULL || req->method[0] == '\0')
        return false;
    for (const char *m = req->method; *m != '\0'; m++) {
        if (!fz_is_tchar((unsigned char)*m))
            return false;
    }
    if (!req->tunnel && rq_ieq(req->method, strlen(req->method), "CONNECT"))
        return false;
    if (!rq_url_ok(req->target))
        return false;
    if (req->content_length < -1 || (req->content_length >= 0 && req->chunked))
        return false;
    if (req->nheaders > 0 && req->headers == NULL)
        return false;
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http1_header *h = &req->headers[i];

        if (h->name == NULL || h->name_len == 0)
            return false;
        if (h->value == NULL && h->value_len > 0)
            return false;
        for (size_t k = 0; k < h->name_len; k++) {
            if (!fz_is_tchar((unsigned char)h->name[k]))
                return false;
        }
        for (size_t k = 0; k < h->value_len; k++) {
            if (h->value[k] == '\r' || h->value[k] == '\n' ||
                h->value[k] == '\0')
                return false;
        }
        if (!rq_field_ok(h, &nhost, &nexpect, &ncl, &nte, &cl))
            return false;
        f->ae |= rq_ieq(h->name, h->name_len, "Accept-Encoding");
    }
    f->host = nhost > 0;
    f->cl = ncl > 0;
    f->te = nte > 0;
    body = req->content_length >= 0 || req->chunked;
    /* RFC 9112 §6.2: never both (request smuggling); the caller's fields
     * must describe the body the daemon frames. */
    if (f->cl && f->te)
        return false;
    if (nexpect > 0 && !body)
        return false;
    if (f->cl && !body && cl != 0)
        return false;
    if (f->cl && req->content_length >= 0 && cl != req->content_length)
        return false;
    if (f->te && !body)
        return false;
    if (!req->skip_host && !f->host && !rq_url_ok(req->host))
        return false;
    f->w_body = body;
    f->w_chunked = body && (f->te || (!f->cl && req->chunked));
    f->w_length = f->cl && body ? cl : req->content_length;
    return true;
}

static inline void
rq_adds(struct fz_bytes *b, const char *s)
{
    fz_bytes_add(b, s, strlen(s));
}

/* The head http.client would write for a valid req. */
static inline void
rq_expected(const struct http1_request *req, const struct rq_fields *f,
            struct fz_bytes *b)
{
    const char *m = req->method;
    char num[32];

    rq_adds(b, req->method);
    rq_adds(b, " ");
    rq_adds(b, req->target);
    rq_adds(b, " HTTP/1.1\r\n");
    if (!req->skip_host && !f->host) {
        bool v6 = strchr(req->host, ':') != NULL && req->host[0] != '[';

        rq_adds(b, "Host: ");
        rq_adds(b, v6 ? "[" : "");
        rq_adds(b, req->host);
        rq_adds(b, v6 ? "]" : "");
        if (req->port != 0 && req->port != (req->tls ? 443 : 80)) {
            snprintf(num, sizeof num, ":%u", (unsigned)req->port);
            rq_adds(b, num);
        }
        rq_adds(b, "\r\n");
    }
    if (!req->skip_accept_encoding && !f->ae)
        rq_adds(b, "Accept-Encoding: identity\r\n");
    for (size_t i = 0; i < req->nheaders; i++) {
        fz_bytes_add(b, req->headers[i].name, req->headers[i].name_len);
        rq_adds(b, ": ");
        fz_bytes_add(b, req->headers[i].value, req->headers[i].value_len);
        rq_adds(b, "\r\n");
    }
    if (!f->cl && !f->te) {
        int64_t cl = -1;

        if (req->chunked)
            rq_adds(b, "Transfer-Encoding: chunked\r\n");
        else if (req->content_length >= 0)
            cl = req->content_length;
        else if (rq_ieq(m, strlen(m), "POST") || rq_ieq(m, strlen(m), "PUT") ||
                 rq_ieq(m, strlen(m), "PATCH"))
            cl = 0;
        if (cl >= 0) {
            snprintf(num, sizeof num, "Content-Length: %" PRId64 "\r\n", cl);
            rq_adds(b, num);
        }
    }
    rq_adds(b, "\r\n");
}

/* Every accepted head: CR and LF only as "\r\n" line ends, a request line
 * of three parts, then "name: value" lines, then one blank line. */
static inline void
rq_check_shape(const char *head, size_t len)
{
    size_t pos = 0, line = 0;

    FZ_CHECK(len >= 4 && memcmp(head + len - 4, "\r\n\r\n", 4) == 0);
    FZ_CHECK(memchr(head, '\0', len) == NULL);
    while (pos < len) {
        size_t e = pos, k = pos, spaces = 0;

        while (head[e] != '\r' && head[e] != '\n')
            e++; /* the head ends in "\r\n\r\n": a CR or LF is found */
        FZ_CHECK(head[e] == '\r' && e + 1 < len && head[e + 1] == '\n');
        if (e == pos) {
            FZ_CHECK(line > 0 && e + 2 == len); /* the blank line is last */
        } else if (line == 0) {
            for (; k < e; k++)
                spaces += head[k] == ' ';
            FZ_CHECK(spaces == 2);
            FZ_CHECK(e - pos > 9 && memcmp(head + e - 9, " HTTP/1.1", 9) == 0);
        } else {
            while (k < e && fz_is_tchar((unsigned char)head[k]))
                k++;
            FZ_CHECK(k > pos && k + 1 < e);
            FZ_CHECK(head[k] == ':' && head[k + 1] == ' ');
        }
        pos = e + 2;
        line++;
    }
}

/* The most body bytes rq_check_writer writes through the writer. */
#define RQ_MAX_BODY (1u << 17)

/* Decodes a chunked body independently of the codec: the sizes, CRLFs
 * and last chunk must be exact and nothing may follow it. */
static inline void
rq_dechunk(const struct fz_bytes *wire, struct fz_bytes *out)
{
    size_t pos = 0;

    for (;;) {
        size_t size = 0, digits = 0;

        while (pos < wire->len && wire->p[pos] != '\r') {
            char c = wire->p[pos++];
            int v = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                           : -1;

            FZ_CHECK(v >= 0 && digits < 15);
            FZ_CHECK(digits > 0 || v != 0 ||
                     (pos < wire->len && wire->p[pos] == '\r'));
            size = size * 16 + (size_t)v;
            digits++;
        }
        FZ_CHECK(digits > 0 && pos + 2 <= wire->len);
        FZ_CHECK(wire->p[pos] == '\r' && wire->p[pos + 1] == '\n');
        pos += 2;
        if (size == 0)
            break;
        FZ_CHECK(size + 2 <= wire->len - pos);
        fz_bytes_add(out, wire->p + pos, size);
        pos += size;
        FZ_CHECK(wire->p[pos] == '\r' && wire->p[pos + 1] == '\n');
        pos += 2;
    }
    FZ_CHECK(wire->len - pos == 2 && wire->p[pos] == '\r' &&
             wire->p[pos + 1] == '\n');
}

/* Drives the body writer the head left: pieces drawn from split, about
 * as many bytes as the body should have (one more or one fewer when off
 * is +1 or -1). Checks that it refuses exactly what breaks the declared
 * length, never frames an empty chunk, and that what it wrote decodes to
 * exactly the bytes given. */
static inline void
rq_check_writer(struct http1_writer *w, const struct rq_fields *f,
                struct fz_split *split, int off)
{
    struct fz_bytes wire = {0}, sent = {0};
    struct http1_frame fr;
    uint64_t total, given = 0;
    int rc;

    FZ_CHECK(w->state == (f->w_body ? HTTP1_W_BODY : HTTP1_W_DONE));
    FZ_CHECK(w->chunked == f->w_chunked && w->written == 0);
    if (!f->w_body) {
        FZ_CHECK(http1_writer_room(w) == 0);
        FZ_CHECK(http1_writer_data(w, 1, &fr) == HCONN_EINVALID_ARGUMENT);
        return;
    }
    FZ_CHECK(w->length == f->w_length);
    total = f->w_length >= 0 ? (uint64_t)f->w_length : split->max * 3u;
    if (off < 0 && total > 0)
        total--;
    else if (off > 0)
        total++;
    /* A declared length in the gigabytes (a Content-Length given to a
     * stream) is driven part of the way: the end must then fail short. */
    if (total > RQ_MAX_BODY)
        total = RQ_MAX_BODY;
    while (given < total) {
        size_t n = fz_split_next(split, total - given);
        bool over = f->w_length >= 0 && given + n > (uint64_t)f->w_length;
        char piece[4096];

        rc = http1_writer_data(w, n, &fr);
        if (over) {
            FZ_CHECK(rc == HCONN_EBODY_LENGTH && w->state == HTTP1_W_FAILED);
            FZ_CHECK(w->errmsg[0] != '\0');
            goto out;
        }
        FZ_CHECK(rc == HCONN_OK && w->written == given + n);
        FZ_CHECK((n == 0 || !f->w_chunked) == (fr.pre_len == 0));
        fz_bytes_add(&wire, fr.pre, fr.pre_len);
        for (size_t i = 0; i < n; i++)
            piece[i] = (char)((given + i) % 251);
        fz_bytes_add(&wire, piece, n);
        fz_bytes_add(&sent, piece, n);
        fz_bytes_add(&wire, fr.post, fr.post_len);
        given += n;
    }
    rc = http1_writer_end(w, &fr);
    if (f->w_length >= 0 && given != (uint64_t)f->w_length) {
        FZ_CHECK(rc == HCONN_EBODY_LENGTH && w->state == HTTP1_W_FAILED);
        goto out;
    }
    FZ_CHECK(rc == HCONN_OK && w->state == HTTP1_W_DONE);
    fz_bytes_add(&wire, fr.pre, fr.pre_len);
    if (f->w_chunked) {
        struct fz_bytes body = {0};

        rq_dechunk(&wire, &body);
        FZ_CHECK(fz_bytes_equal(&body, &sent));
        fz_bytes_free(&body);
    } else {
        FZ_CHECK(fz_bytes_equal(&wire, &sent));
    }
    /* Nothing after the end, and a rewind starts the same body over. */
    FZ_CHECK(http1_writer_end(w, &fr) == HCONN_EINVALID_ARGUMENT);
    http1_writer_rewind(w);
    FZ_CHECK(w->state == HTTP1_W_BODY && w->written == 0);
out:
    fz_bytes_free(&wire);
    fz_bytes_free(&sent);
}

/* Formats req and checks the outcome against the model; with split, then
 * drives the body writer (rq_check_writer). */
static inline void
rq_check(const struct http1_request *req, struct fz_split *split, int off)
{
    struct rq_fields f;
    bool valid = rq_valid(req, &f);
    struct http1_writer w;
    char *head = (char *)1, err[256];
    size_t len = 1;
    int rc;

    err[0] = 'x';
    err[1] = '\0';
    rc = http1_start_request(req, &w, &head, &len, err, sizeof err);
    if (rc != HCONN_OK) {
        FZ_CHECK(!valid);
        FZ_CHECK(rc == HCONN_EINVALID_URL || rc == HCONN_EINVALID_HEADER ||
                 rc == HCONN_EINVALID_ARGUMENT);
        FZ_CHECK(head == NULL && len == 0 && w.state == HTTP1_W_IDLE);
        FZ_CHECK(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
        return;
    }
    FZ_CHECK(valid);
    FZ_CHECK(head != NULL);
    rq_check_shape(head, len);
    {
        struct fz_bytes want = {0};

        rq_expected(req, &f, &want);
        FZ_CHECK(want.len == len && memcmp(want.p, head, len) == 0);
        fz_bytes_free(&want);
    }
    free(head);
    if (split != NULL)
        rq_check_writer(&w, &f, split, off);
}

#endif
