/*
 * http1-driver.h — drives the response parser (proto/http1.c) the way the
 * daemon does and checks its contract (http1.h) on every event; shared by
 * fuzz-http1.c and fuzz-chunked.c.
 *
 * The driver keeps a window of unconsumed bytes, appends the next piece
 * of input, calls http1_parser_next until NEED_DATA, drops what each call
 * consumed, and finally calls with eof. Every event is checked as it
 * comes (bounds, pointers, framing arithmetic) and written to a
 * transcript: heads and trailers field by field, DATA coalesced (its
 * bytes go to a separate body buffer), the final error code. Runs over
 * the same bytes split differently must give identical transcripts.
 */
#ifndef HCONN_FUZZ_HTTP1_DRIVER_H
#define HCONN_FUZZ_HTTP1_DRIVER_H

#include "fuzz-common.h"
#include "hconn_error.h"
#include "http1.h"

struct h1_opts {
    bool head_request;
    bool request_close;
    bool eof_early;         /* eof with the last piece, not one call later */
    struct fz_split *split; /* piece sizes; NULL: everything at once */
};

struct h1_result {
    struct fz_bytes transcript;
    struct fz_bytes body;             /* every DATA's bytes, in order */
    enum http1_event_kind final_kind; /* END or ERROR */
    int error;
    size_t consumed; /* bytes consumed over the whole run */
    enum http1_framing framing;
    bool keep_alive;
};

static inline int
h1_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static inline bool
h1_is_ows(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Field lines of a head or a trailer section: inside the bytes the event
 * consumed, well-formed names, trimmed values without NUL; and
 * http1_unfold_value on each value leaves one line. The value is all
 * there is between the name's colon and the end of its (last) line but
 * whitespace, however it was trimmed. */
static inline void
h1_check_fields(const struct http1_event *ev, const char *base, size_t n)
{
    FZ_CHECK(ev->nheaders <= HTTP1_MAX_HEADERS);
    for (size_t i = 0; i < ev->nheaders; i++) {
        const struct http1_header *h = &ev->headers[i];
        const char *t;
        char *u;
        size_t ulen;

        FZ_CHECK(h->name_len > 0);
        FZ_CHECK(fz_inside(base, n, h->name, h->name_len));
        FZ_CHECK(fz_inside(base, n, h->value, h->value_len));
        FZ_CHECK(h->name[h->name_len] == ':');
        for (t = h->name + h->name_len + 1; t < h->value; t++)
            FZ_CHECK(h1_is_ows(*t));
        for (t = h->value + h->value_len; t < base + n && *t != '\n'; t++)
            FZ_CHECK(*t == ' ' || *t == '\t' || *t == '\r');
        FZ_CHECK(t < base + n);
        for (size_t k = 0; k < h->name_len; k++)
            FZ_CHECK(fz_is_tchar((unsigned char)h->name[k]));
        FZ_CHECK(h->value_len == 0 ||
                 memchr(h->value, '\0', h->value_len) == NULL);
        if (h->value_len > 0) {
            FZ_CHECK(!h1_is_ows(h->value[0]));
            FZ_CHECK(!h1_is_ows(h->value[h->value_len - 1]));
        }
        u = fz_xmalloc(h->value_len + 1);
        ulen = http1_unfold_value(u, h->value, h->value_len);
        FZ_CHECK(ulen <= h->value_len);
        FZ_CHECK(u[ulen] == '\0');
        FZ_CHECK(memchr(u, '\r', ulen) == NULL &&
                 memchr(u, '\n', ulen) == NULL);
        free(u);
    }
}

/* INTERIM and HEAD: the whole head was consumed and the event points
 * into it. */
static inline void
h1_check_head(const struct http1_parser *p, const struct http1_event *ev,
              const char *buf, size_t consumed)
{
    FZ_CHECK(consumed >= 13); /* "HTTP/1.x NNN\n" */
    FZ_CHECK(memcmp(buf, "HTTP/1.", 7) == 0);
    FZ_CHECK(buf[consumed - 1] == '\n');
    FZ_CHECK(ev->version == 10 || ev->version == 11);
    FZ_CHECK(ev->status >= 100 && ev->status <= 999);
    FZ_CHECK(ev->headers == p->headers || ev->nheaders == 0);
    FZ_CHECK(fz_inside(buf, consumed, ev->reason, ev->reason_len));
    for (size_t k = 0; k < ev->reason_len; k++)
        FZ_CHECK(ev->reason[k] != '\r' && ev->reason[k] != '\n' &&
                 ev->reason[k] != '\0');
    h1_check_fields(ev, buf, consumed);
}

/* A DATA event of a chunked body never runs past its chunk: when the
 * call started at a chunk-size line, that line is re-read here. */
static inline void
h1_check_chunk_data(const struct http1_parser *p, const struct http1_event *ev,
                    const char *buf, enum http1_state before,
                    uint64_t left_before)
{
    if (before == HTTP1_S_CHUNK_DATA) {
        FZ_CHECK(ev->len <= left_before);
        FZ_CHECK(p->chunk_left == left_before - ev->len);
    } else {
        size_t lim = (size_t)(ev->data - buf), i = 0, digits = 0;
        uint64_t size = 0;

        FZ_CHECK(before == HTTP1_S_CHUNK_SIZE || before == HTTP1_S_CHUNK_CRLF);
        if (before == HTTP1_S_CHUNK_CRLF) {
            FZ_CHECK(lim >= 1);
            if (buf[0] == '\n') {
                i = 1;
            } else {
                FZ_CHECK(lim >= 2 && buf[0] == '\r' && buf[1] == '\n');
                i = 2;
            }
        }
        while (i < lim && h1_hex(buf[i]) >= 0 && digits < 16) {
            size = size << 4 | (uint64_t)h1_hex(buf[i]);
            i++;
            digits++;
        }
        FZ_CHECK(digits > 0);
        FZ_CHECK(lim > 0 && buf[lim - 1] == '\n');
        FZ_CHECK(ev->len <= size);
        FZ_CHECK(p->chunk_left == size - ev->len);
    }
    FZ_CHECK(p->state ==
             (p->chunk_left == 0 ? HTTP1_S_CHUNK_CRLF : HTTP1_S_CHUNK_DATA));
}

/* The contract of one http1_parser_next call. */
static inline void
h1_check_event(const struct http1_parser *p, const struct h1_opts *o,
               const struct http1_event *ev, const char *buf, size_t len,
               size_t consumed, bool eof, enum http1_state before,
               uint64_t left_before, uint64_t received_before)
{
    FZ_CHECK(consumed <= len);
    switch (ev->kind) {
    case HTTP1_NEED_DATA:
        /* After eof no byte will come: the parser must decide. */
        FZ_CHECK(!eof);
        FZ_CHECK(p->state != HTTP1_S_DONE && p->state != HTTP1_S_FAILED);
        break;
    case HTTP1_INTERIM:
        h1_check_head(p, ev, buf, consumed);
        FZ_CHECK(ev->status < 200 && ev->status != 101);
        FZ_CHECK(p->state == HTTP1_S_HEAD);
        break;
    case HTTP1_HEAD:
        h1_check_head(p, ev, buf, consumed);
        FZ_CHECK(ev->status >= 200);
        FZ_CHECK(p->status == ev->status && p->version == ev->version);
        FZ_CHECK(p->body_received == 0);
        if (o->head_request || ev->status == 204 || ev->status == 304)
            FZ_CHECK(p->framing == HTTP1_FRAMING_NONE);
        FZ_CHECK((p->framing == HTTP1_FRAMING_LENGTH) ==
                 (p->content_length >= 0));
        FZ_CHECK(p->state == (p->framing == HTTP1_FRAMING_CHUNKED
                                  ? HTTP1_S_CHUNK_SIZE
                                  : HTTP1_S_BODY));
        break;
    case HTTP1_DATA:
        FZ_CHECK(ev->len > 0);
        FZ_CHECK(fz_inside(buf, consumed, ev->data, ev->len));
        FZ_CHECK(ev->data + ev->len == buf + consumed);
        FZ_CHECK(p->framing != HTTP1_FRAMING_NONE);
        FZ_CHECK(p->body_received == received_before + ev->len);
        if (p->framing == HTTP1_FRAMING_LENGTH)
            FZ_CHECK(p->body_received <= (uint64_t)p->content_length);
        if (p->framing == HTTP1_FRAMING_CHUNKED)
            h1_check_chunk_data(p, ev, buf, before, left_before);
        break;
    case HTTP1_END:
        FZ_CHECK(p->state == HTTP1_S_DONE);
        h1_check_fields(ev, buf, consumed);
        if (consumed > 0) {
            /* Only a trailer section is consumed with END. */
            FZ_CHECK(p->framing == HTTP1_FRAMING_CHUNKED);
            FZ_CHECK(buf[consumed - 1] == '\n');
        }
        FZ_CHECK(ev->nheaders == 0 || p->framing == HTTP1_FRAMING_CHUNKED);
        if (p->framing == HTTP1_FRAMING_LENGTH)
            FZ_CHECK(p->body_received == (uint64_t)p->content_length);
        if (p->framing == HTTP1_FRAMING_NONE)
            FZ_CHECK(p->body_received == 0);
        if (p->framing == HTTP1_FRAMING_CLOSE)
            FZ_CHECK(eof);
        if (p->framing == HTTP1_FRAMING_CLOSE || o->request_close)
            FZ_CHECK(!http1_parser_keep_alive(p));
        break;
    case HTTP1_ERROR:
        FZ_CHECK(consumed == 0);
        FZ_CHECK(p->state == HTTP1_S_FAILED);
        FZ_CHECK(ev->error < 0 && ev->error == p->error);
        FZ_CHECK(strcmp(hconn_error_name(ev->error), "unknown") != 0);
        FZ_CHECK(memchr(p->errmsg, '\0', sizeof p->errmsg) != NULL);
        FZ_CHECK(p->errmsg[0] != '\0');
        FZ_CHECK(!http1_parser_keep_alive(p));
        break;
    default:
        FZ_CHECK(0);
    }
}

/* Appends a head or trailer section's fields to the transcript. */
static inline void
h1_record_fields(struct fz_bytes *t, const struct http1_event *ev)
{
    fz_bytes_int(t, (int64_t)ev->nheaders);
    for (size_t i = 0; i < ev->nheaders; i++) {
        fz_bytes_field(t, ev->headers[i].name, ev->headers[i].name_len);
        fz_bytes_field(t, ev->headers[i].value, ev->headers[i].value_len);
    }
}

static inline void
h1_record(struct h1_result *r, const struct http1_parser *p,
          const struct http1_event *ev, bool *in_data)
{
    struct fz_bytes *t = &r->transcript;

    if (ev->kind == HTTP1_NEED_DATA)
        return;
    if (ev->kind == HTTP1_DATA) {
        /* Piece sizes decide how a body is cut: only its bytes count. */
        if (!*in_data)
            fz_bytes_add(t, "D", 1);
        *in_data = true;
        fz_bytes_add(&r->body, ev->data, ev->len);
        return;
    }
    *in_data = false;
    switch (ev->kind) {
    case HTTP1_INTERIM:
    case HTTP1_HEAD:
        fz_bytes_add(t, ev->kind == HTTP1_HEAD ? "H" : "I", 1);
        fz_bytes_int(t, ev->status);
        fz_bytes_int(t, ev->version);
        fz_bytes_field(t, ev->reason, ev->reason_len);
        h1_record_fields(t, ev);
        if (ev->kind == HTTP1_HEAD) {
            fz_bytes_int(t, p->framing);
            fz_bytes_int(t, p->content_length);
            fz_bytes_int(t, p->keep_alive);
        }
        break;
    case HTTP1_END:
        fz_bytes_add(t, "E", 1);
        h1_record_fields(t, ev);
        fz_bytes_int(t, http1_parser_keep_alive(p));
        break;
    default:
        fz_bytes_add(t, "X", 1);
        fz_bytes_int(t, ev->error);
        break;
    }
}

/* After END or ERROR: the same kind again, nothing consumed, whatever
 * the caller passes. */
static inline void
h1_check_repeat(struct http1_parser *p, const struct fz_window *w,
                const struct h1_result *r)
{
    for (int i = 0; i < 3; i++) {
        size_t consumed = SIZE_MAX;
        struct http1_event ev =
            i < 2 ? http1_parser_next(p, w->mem, w->len, i == 1, &consumed)
                  : http1_parser_next(p, NULL, 0, true, &consumed);

        FZ_CHECK(ev.kind == r->final_kind);
        FZ_CHECK(consumed == 0);
        if (ev.kind == HTTP1_ERROR)
            FZ_CHECK(ev.error == r->error);
        else
            FZ_CHECK(ev.nheaders == 0);
    }
}

/* One response over in[0..n), split as o says. */
static inline void
h1_run(const char *in, size_t n, const struct h1_opts *o, struct h1_result *r)
{
    struct http1_parser p;
    struct fz_window w;
    size_t fed = 0;
    uint64_t data_sum = 0;
    bool done = false, eof = false, in_data = false;

    memset(r, 0, sizeof *r);
    http1_parser_init(&p, o->head_request, o->request_close);
    fz_window_init(&w, n);
    while (!done) {
        if (fed < n) {
            size_t k =
                o->split != NULL ? fz_split_next(o->split, n - fed) : n - fed;

            fz_window_append(&w, in + fed, k);
            fed += k;
            eof = o->eof_early && fed == n;
        } else {
            FZ_CHECK(!eof); /* eof already given and still NEED_DATA */
            eof = true;
        }
        for (;;) {
            enum http1_state before = p.state;
            uint64_t left_before = p.chunk_left;
            uint64_t received_before = p.body_received;
            size_t consumed = SIZE_MAX;
            struct http1_event ev =
                http1_parser_next(&p, w.mem, w.len, eof, &consumed);

            h1_check_event(&p, o, &ev, w.mem, w.len, consumed, eof, before,
                           left_before, received_before);
            if (ev.kind == HTTP1_DATA)
                data_sum += ev.len;
            FZ_CHECK(p.body_received == data_sum);
            h1_record(r, &p, &ev, &in_data);
            fz_window_drop(&w, consumed);
            r->consumed += consumed;
            if (ev.kind == HTTP1_NEED_DATA)
                break;
            if (ev.kind == HTTP1_END || ev.kind == HTTP1_ERROR) {
                r->final_kind = ev.kind;
                r->error = ev.error;
                done = true;
                break;
            }
            /* INTERIM, HEAD and DATA always consume: no endless loop. */
            FZ_CHECK(consumed > 0);
        }
    }
    r->framing = p.framing;
    r->keep_alive = http1_parser_keep_alive(&p);
    h1_check_repeat(&p, &w, r);
    fz_window_free(&w);
}

static inline void
h1_result_free(struct h1_result *r)
{
    fz_bytes_free(&r->transcript);
    fz_bytes_free(&r->body);
}

/* Two runs over the same bytes must agree on everything observable. */
static inline void
h1_check_same(const struct h1_result *a, const struct h1_result *b)
{
    FZ_CHECK(fz_bytes_equal(&a->transcript, &b->transcript));
    FZ_CHECK(fz_bytes_equal(&a->body, &b->body));
    FZ_CHECK(a->final_kind == b->final_kind);
    FZ_CHECK(a->error == b->error);
    /* ERROR consumes nothing, even bytes its own call had passed (a
     * chunk-size line before a bad trailer), which a piecewise run may
     * have dropped earlier: only a complete message's length compares. */
    if (a->final_kind == HTTP1_END)
        FZ_CHECK(a->consumed == b->consumed);
    FZ_CHECK(a->framing == b->framing);
    FZ_CHECK(a->keep_alive == b->keep_alive);
}

/* The three ways every input is run: in pieces (eof with the last piece
 * or one call later, per the control byte), all at once then eof, and
 * all at once with eof. Returns the piecewise result for extra checks. */
static inline void
h1_run_all(const char *in, size_t n, bool head_request, bool request_close,
           bool eof_early, uint8_t split_a, uint8_t split_b,
           struct h1_result *out)
{
    struct fz_split split;
    struct h1_opts o = {head_request, request_close, eof_early, &split};
    struct h1_result once, once_eof;

    fz_split_init(&split, split_a, split_b);
    h1_run(in, n, &o, out);
    o.split = NULL;
    o.eof_early = false;
    h1_run(in, n, &o, &once);
    o.eof_early = true;
    h1_run(in, n, &o, &once_eof);
    h1_check_same(out, &once);
    h1_check_same(&once, &once_eof);
    h1_result_free(&once);
    h1_result_free(&once_eof);
}

#endif
