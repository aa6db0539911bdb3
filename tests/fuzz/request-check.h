/*
 * request-check.h — an independent model of http1_format_request (its
 * contract in http1.h, http.client's layout) for fuzz-request.c and
 * fuzz-wire.c: which requests it must accept, the exact head it must
 * write, and the shape every accepted head must have (CR and LF only as
 * line ends, "name: value" fields, one blank line at the end).
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

/* What the caller's fields say about framing. */
struct rq_fields {
    bool host, ae, cl, te;
};

/* True when http1_format_request must accept req. */
static inline bool
rq_valid(const struct http1_request *req, struct rq_fields *f)
{
    memset(f, 0, sizeof *f);
    if (req->method == NULL || req->method[0] == '\0')
        return false;
    for (const char *m = req->method; *m != '\0'; m++) {
        if (!fz_is_tchar((unsigned char)*m))
            return false;
    }
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
        f->host |= rq_ieq(h->name, h->name_len, "Host");
        f->ae |= rq_ieq(h->name, h->name_len, "Accept-Encoding");
        f->cl |= rq_ieq(h->name, h->name_len, "Content-Length");
        f->te |= rq_ieq(h->name, h->name_len, "Transfer-Encoding");
    }
    /* RFC 9112 §6.2: never both (request smuggling). */
    if (f->cl && (f->te || req->chunked))
        return false;
    if (!req->skip_host && !f->host && !rq_url_ok(req->host))
        return false;
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

/* Formats req and checks the outcome against the model. */
static inline void
rq_check(const struct http1_request *req)
{
    struct rq_fields f;
    bool valid = rq_valid(req, &f);
    char *head = (char *)1, err[256];
    size_t len = 1;
    int rc;

    err[0] = 'x';
    err[1] = '\0';
    rc = http1_format_request(req, &head, &len, err, sizeof err);
    if (rc != HCONN_OK) {
        FZ_CHECK(!valid);
        FZ_CHECK(rc == HCONN_EINVALID_URL || rc == HCONN_EINVALID_HEADER ||
                 rc == HCONN_EINVALID_ARGUMENT);
        FZ_CHECK(head == NULL && len == 0);
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
}

#endif
