/*
 * codec_http1.c — the HTTP/1.1 upstream codec: one stream at a time on a
 * connection, driving proto/http1's request writer and response parser
 * over the connection's bufferevent.
 *
 * The head goes out with a direct send when nothing is queued before it
 * on a plain socket; the response is read up to a window at a time
 * (sockread.c: 4 KiB, and the rest of the window when those filled;
 * libevent's own reads stop at 4 KiB, each after an FIONREAD ioctl); body
 * bytes move to the exchange as whole buffer chains. Backpressure stops reading
 * the socket, which carries this stream alone. The rest of a Content-Length
 * body with nothing of it buffered may be lent to the exchange to splice
 * (codec_lend_fd); the parser then counts what it moved.
 *
 * A callback may abort the stream it is called for: the stream is then
 * only marked, and freed once the outermost codec frame on the stack
 * unwinds, so nothing here touches freed memory.
 *
 * A stream whose exchange left mid-response may be detached to a drain
 * (codec_detach): the same parser reads the rest of the response for it,
 * within a byte limit, and the end pools the connection by the same rule
 * as any other response, so a drained response is never mistaken for
 * the next one.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "codec.h"
#include "codec_http2.h"
#include "hconn_error.h"
#include "memory.h"
#include "pool.h"
#include "upstream.h"
#include "wire.h"

/* The smallest window a drain cuts a stream's reads to: libevent's own
 * read size, and the first read of each readiness (sockread.c). */
#define CODEC_HTTP1_MIN_READ 4096

struct codec_stream {
    bool h2;                 /* false: an HTTP/1.1 stream (codec_http2.h) */
    struct upstream *up;     /* owned until the stream ends */
    struct bufferevent *bev; /* up's, ours while the stream lasts */
    const struct codec_events *ev;
    void *arg;
    struct codec_options opt;
    struct http1_parser parser;
    struct http1_writer writer; /* frames the body; written: bytes sent */
    bool request_sent;          /* head + whole body queued */
    bool eof;                   /* the connection closed (or failed) */
    bool paused;                /* not reading: the client is behind */
    bool head_done;             /* the final head was delivered */
    bool fd_lent;               /* body_fd took the socket's reading */
    uint64_t response_bytes;    /* bytes read upstream */
    unsigned busy;              /* codec frames on the stack */
    bool dead;                  /* aborted or ended: free when not busy */
    bool detached;              /* its exchange left: a drain reads on */
    uint64_t drain_limit;       /* detached: response_bytes may reach it,
                                   no more */
    char errmsg[160];           /* the last codec_send_... failure */
};

/* Finds a request header field by name (case-insensitive). */
const char *
codec_request_field(const struct wire_request *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

/* True when value, a comma-separated list, holds token (any case). */
static bool
codec_list_has(const char *value, const char *token)
{
    size_t n = strlen(token);

    for (const char *p = value; p != NULL && *p != '\0';) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (strncasecmp(p, token, n) == 0 &&
            (p[n] == '\0' || p[n] == ',' || p[n] == ' ' || p[n] == '\t'))
            return true;
        p = strchr(p, ',');
    }
    return false;
}

/* Formats the HTTP/1.1 head once, checking the client's fields against
 * the framing the daemon does itself. */
int
codec_prepare(struct codec_request *cr, struct wire_request *req, char *buf,
              size_t cap, char *err, size_t errlen)
{
    /* Most requests carry a few fields: those need no allocation. */
    struct http1_header stack[16], *fields = stack;
    struct http1_request hreq = {
        .method = req->method,
        .target = req->target,
        .host = req->host,
        .port = req->port,
        .tls = req->tls,
        .nheaders = req->nheaders,
        .skip_host = req->skip_host,
        .skip_accept_encoding = req->skip_accept_encoding,
        .content_length = -1,
    };
    int rc;

    cr->head_request = strcmp(req->method, "HEAD") == 0;
    cr->length = -1;
    cr->req = req;
    if (req->nheaders + 1 > sizeof stack / sizeof *stack)
        fields = calloc(req->nheaders + 1, sizeof *fields);
    if (fields == NULL) {
        snprintf(err, errlen, "out of memory formatting the request head");
        return HCONN_ENO_MEMORY;
    }
    for (size_t i = 0; i < req->nheaders; i++) {
        fields[i].name = req->headers[i].name;
        fields[i].name_len = strlen(req->headers[i].name);
        fields[i].value = req->headers[i].value;
        fields[i].value_len = strlen(req->headers[i].value);
        /* Any Connection field may say close, and the origin honours it
         * wherever it is: such a connection is never pooled. */
        if (strcasecmp(req->headers[i].name, "Connection") == 0 &&
            codec_list_has(req->headers[i].value, "close"))
            cr->request_close = true;
    }
    hreq.headers = fields;
    /* A client's own "Expect: 100-continue" asks for what expect_continue
     * does: sent with nothing behind it, a final answer from the origin
     * would meet body bytes it reads as the next request. The codec
     * refuses any other Expect, and one on a request without a body. */
    if (req->body != WIRE_BODY_NONE &&
        codec_request_field(req, "Expect") != NULL)
        req->expect_continue = true;
    /* RFC 9110 §10.1.1: only a request with a body may expect 100. */
    if (req->expect_continue && req->body != WIRE_BODY_NONE &&
        codec_request_field(req, "Expect") == NULL)
        fields[hreq.nheaders++] =
            (struct http1_header){"Expect", 6, "100-continue", 12};
    /* The daemon alone frames the body: the codec checks the client's
     * Content-Length and Transfer-Encoding against it and readies the
     * writer; a stream of unknown length goes chunked unless the
     * client's Content-Length declares one. */
    if (req->body == WIRE_BODY_STREAM && req->length < 0)
        hreq.chunked = true;
    else if (req->body != WIRE_BODY_NONE)
        hreq.content_length = req->length;
    rc = http1_start_request_in(&hreq, &cr->writer, buf, cap, &cr->head,
                                &cr->head_len, err, errlen);
    cr->head_owned = cr->head != NULL && cr->head != buf;
    if (fields != stack)
        free(fields);
    cr->length = cr->writer.length;
    return rc;
}

void
codec_request_clear(struct codec_request *cr)
{
    if (cr->head_owned)
        free(cr->head);
    cr->head = NULL;
    cr->head_owned = false;
}

/* Freed streams kept for the next ones: each is nearly 4 KiB (the
 * parser's header index), past malloc's per-thread cache, and allocating
 * it fresh cost a heap consolidation per request. Responses end in
 * bursts (one loop turn reads many), as many as requests in flight: kept
 * until the next trim (memory.c). */
MEMORY_SPARES(codec_spare_streams, 512, free);

/* Frees s, or keeps it as a spare. */
static void
codec_stream_release(struct codec_stream *s)
{
    if (!memory_spare_keep(&codec_spare_streams, s))
        free(s);
}

/* A spare stream, or a new one (neither cleared); NULL: no memory. */
static struct codec_stream *
codec_stream_alloc(void)
{
    struct codec_stream *s = memory_spare_take(&codec_spare_streams);

    return s != NULL ? s : malloc(sizeof(struct codec_stream));
}

/* Enters a codec frame on s's behalf. */
static void
codec_enter(struct codec_stream *s)
{
    s->busy++;
}

/* Leaves a codec frame: true when s is gone (aborted or ended meanwhile;
 * freed here when this was the outermost frame). */
static bool
codec_leave(struct codec_stream *s)
{
    s->busy--;
    if (!s->dead)
        return false;
    if (s->busy == 0)
        codec_stream_release(s);
    return true;
}

/* Ends s: its connection goes to the pool when keep, else is dropped. */
static void
codec_finish(struct codec_stream *s, bool keep)
{
    struct upstream *up = s->up;

    s->up = NULL;
    s->dead = true;
    if (up != NULL) {
        if (keep)
            pool_release(up);
        else
            pool_drop(up);
    }
}

void
codec_abort(struct codec_stream *s)
{
    if (s == NULL)
        return;
    if (codec_stream_is_http2(s)) {
        codec_http2_abort(s);
        return;
    }
    codec_finish(s, false);
    if (s->busy == 0)
        codec_stream_release(s);
}

/* Reports a failure; the stream's connection is dropped after it. */
static void __attribute__((format(printf, 4, 5)))
codec_fail(struct codec_stream *s, int code, bool unprocessed, const char *fmt,
           ...)
{
    char message[512];
    struct codec_error e = {
        .code = code,
        .message = message,
        .unprocessed = unprocessed,
        .body_received = s->parser.body_received,
        .body_expected = s->parser.framing == HTTP1_FRAMING_LENGTH
                             ? s->parser.content_length
                             : -1,
    };
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    codec_enter(s);
    s->ev->error(s->arg, &e);
    if (!codec_leave(s))
        codec_abort(s);
}

/* max_response_head_bytes: a head (interim responses included) that
 * grows past it fails before the client sees any of it. */
static bool
codec_head_too_big(struct codec_stream *s, size_t more)
{
    if (s->head_done || s->response_bytes + more <= s->opt.max_head_bytes)
        return false;
    codec_fail(s, HCONN_ELIMIT_EXCEEDED, false,
               "%s: response head exceeds %zu bytes "
               "(max_response_head_bytes)",
               upstream_peer(s->up), s->opt.max_head_bytes);
    return true;
}

/* Drops n bytes off in. Most events leave none to drop (a body moves
 * whole, an end has no bytes of its own), and evbuffer_drain takes the
 * buffer's lock and runs its callbacks even for none. */
static inline void
codec_drain(struct evbuffer *in, size_t n)
{
    if (n > 0)
        evbuffer_drain(in, n);
}

/* The response is complete: the exchange replies (the trailers point
 * into the input, so before its consumed bytes go), then the connection
 * is pooled if it is clean: nothing may follow the response. */
static void
codec_end(struct codec_stream *s, const struct http1_event *ev, size_t consumed)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    struct codec_end end = {
        .trailers = ev->headers,
        .ntrailers = ev->nheaders,
        .status = s->parser.status,
        .body_received = s->parser.body_received,
        .keep = http1_parser_keep_alive(&s->parser) && s->request_sent &&
                !s->eof && evbuffer_get_length(in) == consumed,
    };

    s->ev->end(s->arg, &end);
    if (s->dead)
        return;
    codec_drain(in, consumed);
    upstream_set_clean(s->up,
                       true); /* a complete response: TLS state is sound */
    codec_finish(s, end.keep);
}

static void codec_process(struct codec_stream *s);

/* Checked before each parse of a detached stream: it may read on only
 * while what it has read (parsed, and buffered behind) stays within its
 * limit and what its head announced can finish within it (a known
 * remaining length, or chunks, on a connection that may be kept; never a
 * body delimited by the close). True when it must stop: the drain hears
 * of an error and the connection is dropped. */
static bool
codec_drain_over(struct codec_stream *s, size_t buffered)
{
    const struct http1_parser *p = &s->parser;
    const char *why = NULL;

    if (s->response_bytes + buffered > s->drain_limit)
        why = "the rest of the response is over the drain limit";
    else if (s->head_done &&
             (!p->keep_alive || p->framing == HTTP1_FRAMING_CLOSE))
        why = "the response cannot leave the connection reusable";
    else if (s->head_done && p->framing == HTTP1_FRAMING_LENGTH &&
             s->response_bytes +
                     ((uint64_t)p->content_length - p->body_received) >
                 s->drain_limit)
        why = "the rest of the body is over the drain limit";
    if (why == NULL)
        return false;
    codec_fail(s, HCONN_ELIMIT_EXCEEDED, false, "%s: %s", upstream_peer(s->up),
               why);
    return true;
}

/* With the rest of a Content-Length body unread on a plain socket and
 * nothing of it buffered, offers the socket to the exchange (body_fd),
 * which may move the bytes without them passing through here. Only once
 * the whole request is out: reading is then all the stream does. */
static void
codec_lend_fd(struct codec_stream *s, size_t buffered)
{
    uint64_t left = http1_parser_body_left(&s->parser);

    if (s->ev->body_fd == NULL || buffered > 0 || left == 0 || s->paused ||
        s->eof || !s->request_sent || s->dead || upstream_is_tls(s->up))
        return;
    if (!s->ev->body_fd(s->arg, bufferevent_getfd(s->bev), left,
                        s->opt.read_timeout))
        return;
    s->fd_lent = true;
    bufferevent_disable(s->bev, EV_READ);
}

void
codec_body_taken(struct codec_stream *s, uint64_t n, bool eof)
{
    s->fd_lent = false;
    http1_parser_body_taken(&s->parser, n);
    s->response_bytes += n;
    if (eof) {
        s->eof = true;
    } else if (!s->paused) {
        bufferevent_enable(s->bev, EV_READ);
        upstream_read_progress(s->up);
    }
    codec_process(s);
}

/* Runs the parser over what the connection has sent, until it needs more
 * bytes, the stream is paused, or the response ends. */
static void
codec_process(struct codec_stream *s)
{
    codec_enter(s);
    while (!s->dead && !s->paused) {
        struct evbuffer *in = bufferevent_get_input(s->bev);
        struct evbuffer_iovec seg = {0};
        struct http1_event ev;
        size_t avail, consumed, taken = 0, skip;

        avail = evbuffer_get_length(in);
        if (s->detached && codec_drain_over(s, avail))
            break;
        if (avail > 0)
            evbuffer_peek(in, -1, NULL, &seg, 1);
        http1_parser_next_into(&s->parser, seg.iov_base, seg.iov_len,
                               s->eof && seg.iov_len == avail, &consumed, &ev);
        switch (ev.kind) {
        case HTTP1_NEED_DATA:
            codec_drain(in, consumed);
            s->response_bytes += consumed;
            if (seg.iov_len - consumed < avail - consumed) {
                /* The next token straddles buffer chains: join them. */
                evbuffer_pullup(in, -1);
                continue;
            }
            if (!codec_head_too_big(s, avail - consumed))
                codec_lend_fd(s, avail - consumed);
            codec_leave(s);
            return;
        case HTTP1_INTERIM:
            s->ev->interim(s->arg, ev.status);
            break;
        case HTTP1_HEAD:
            if (codec_head_too_big(s, consumed))
                break;
            s->ev->head(s->arg,
                        &(struct codec_head){
                            .status = ev.status,
                            .version = ev.version,
                            .reason = ev.reason,
                            .reason_len = ev.reason_len,
                            .headers = ev.headers,
                            .nheaders = ev.nheaders,
                            .length = s->parser.framing == HTTP1_FRAMING_LENGTH
                                          ? s->parser.content_length
                                      : s->parser.framing == HTTP1_FRAMING_NONE
                                          ? 0
                                          : -1,
                        });
            s->head_done = true;
            break;
        case HTTP1_DATA:
            /* The bytes before the data (chunk framing) are dropped; the
             * data moves to the client's reply buffer. Moving hands whole
             * buffer chains over, where copying cost as much CPU as the
             * kernel's own copies on large bodies. */
            skip = (size_t)(ev.data - (const char *)seg.iov_base);
            codec_drain(in, skip);
            taken = skip;
            if (s->ev->data(s->arg, in, ev.len))
                taken += ev.len;
            break;
        case HTTP1_END:
            codec_end(s, &ev, consumed);
            codec_leave(s);
            return;
        case HTTP1_ERROR:
            codec_fail(s, ev.error, s->response_bytes == 0 && avail == 0,
                       "%s: %s", upstream_peer(s->up), s->parser.errmsg);
            break;
        }
        if (s->dead)
            break;
        codec_drain(in, consumed - taken);
        s->response_bytes += consumed;
    }
    codec_leave(s);
}

/* The connection has bytes: parse them, and push the read timeout back
 * if the stream reads on. A response that ended with these bytes has
 * parked its connection with a timeout of its own (or dropped it), and
 * pushing this one first was a deadline set for nothing per request;
 * both are taken from the loop's one cached time, so the order changes
 * no due time. */
static void
codec_read_cb(struct bufferevent *bev, void *arg)
{
    struct codec_stream *s = arg;

    if (s->fd_lent)
        return; /* a read the loop had queued before the socket was lent */
    codec_enter(s);
    codec_process(s);
    if (!s->dead)
        upstream_read_progress(s->up);
    codec_leave(s);
}

/* The connection's output drained below its low-water mark. */
static void
codec_write_cb(struct bufferevent *bev, void *arg)
{
    struct codec_stream *s = arg;

    codec_enter(s);
    s->ev->writable(s->arg);
    codec_leave(s);
}

/* Timeouts, the end of the connection, errors. */
static void
codec_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct codec_stream *s = arg;

    if (what & BEV_EVENT_TIMEOUT) {
        if (what & BEV_EVENT_READING)
            codec_fail(s, HCONN_ETIMEOUT, false,
                       "no response bytes from %s for %g s",
                       upstream_peer(s->up), s->opt.read_timeout);
        else
            codec_fail(s, HCONN_ETIMEOUT, false,
                       "sending the request to %s stalled for %g s",
                       upstream_peer(s->up), s->opt.read_timeout);
        return;
    }
    if ((what & BEV_EVENT_ERROR) && (what & BEV_EVENT_WRITING)) {
        /* The server stopped taking the request (it may have answered
         * early, e.g. 413): stop sending and read on; the connection
         * cannot be kept since request_sent stays false. */
        bufferevent_disable(bev, EV_WRITE);
        return;
    }
    /* EOF, or an error such as a reset: let the parser decide what the
     * bytes so far amount to (a close-delimited body ends here; anything
     * else is cut short). With the socket lent, its reader sees it. */
    if (s->fd_lent)
        return;
    s->eof = true;
    codec_process(s);
}

/* Queues the request head on the connection's output. With nothing
 * queued before it on a plain socket, it is written at once: most heads
 * fit the socket buffer, and going through the bufferevent would cost a
 * loop turn and two epoll_ctl calls to arm and disarm the write event. */
static void
codec_send_head(struct codec_stream *s, const struct codec_request *cr,
                struct evbuffer *output)
{
    size_t sent = 0;

    if (!upstream_is_tls(s->up) && evbuffer_get_length(output) == 0) {
        ssize_t n = send(upstream_fd(s->up), cr->head, cr->head_len,
                         MSG_DONTWAIT | MSG_NOSIGNAL);

        /* An error shows again, to the bufferevent, on the rest. */
        if (n > 0)
            sent = (size_t)n;
    }
    if (sent < cr->head_len)
        evbuffer_add(output, cr->head + sent, cr->head_len - sent);
}

struct codec_stream *
codec_open(struct upstream *up, const struct codec_request *cr,
           const struct codec_options *opt, const struct codec_events *ev,
           void *arg)
{
    struct codec_stream *s;
    struct bufferevent *bev = upstream_bev(up);
    short off;

    if (codec_http2_is(up))
        return codec_http2_open(up, cr, opt, ev, arg);
    s = codec_stream_alloc();
    if (s == NULL) {
        pool_drop(up);
        return NULL;
    }
    /* Zeroed but for the parser, which http1_parser_init readies without
     * clearing its 3 KiB header index (the index is written before it is
     * read, and clearing it cost more per request than parsing the head),
     * the writer, copied just below, and the message buffer, a string. */
    memset(s, 0, offsetof(struct codec_stream, parser));
    memset(&s->request_sent, 0,
           offsetof(struct codec_stream, errmsg) -
               offsetof(struct codec_stream, request_sent));
    s->errmsg[0] = '\0';
    s->up = up;
    s->bev = bev;
    s->ev = ev;
    s->arg = arg;
    s->opt = *opt;
    s->writer = cr->writer;
    http1_writer_rewind(&s->writer);
    s->request_sent = !s->writer.has_body;
    http1_parser_init(&s->parser, cr->head_request, cr->request_close);

    bufferevent_setcb(bev, codec_read_cb, codec_write_cb, codec_event_cb, s);
    upstream_read_timeout(up, opt->read_timeout);
    bufferevent_setwatermark(bev, EV_WRITE, opt->window / 4, 0);
    /* A plain socket is read up to a window at once: a loop turn per
     * 16 KiB (libevent's default) held large bodies back. Under TLS the
     * filter's reads are OpenSSL's, record by record. */
    if (!upstream_is_tls(up))
        bufferevent_set_max_single_read(bev, opt->window);
    /* Only what is off: enabling writing arms the write event even with
     * nothing to write, two epoll_ctl calls for nothing; a pooled
     * connection reads already (upstream_park), its timeout just set, and
     * enabling a TLS filter's reading, on since the connection was
     * unparked, tries an SSL_read that can only want more. */
    off = (EV_READ | EV_WRITE) & ~bufferevent_get_enabled(bev);
    if (off != 0)
        bufferevent_enable(bev, off);
    codec_send_head(s, cr, bufferevent_get_output(bev));
    return s;
}

size_t
codec_send_room(const struct codec_stream *s)
{
    size_t queued;

    if (codec_stream_is_http2(s))
        return codec_http2_send_room(s);
    queued = evbuffer_get_length(bufferevent_get_output(s->bev));
    return queued >= s->opt.window ? 0 : s->opt.window - queued;
}

uint64_t
codec_body_sent(const struct codec_stream *s)
{
    if (codec_stream_is_http2(s))
        return codec_http2_body_sent(s);
    return s->writer.written;
}

const char *
codec_errmsg(const struct codec_stream *s)
{
    if (codec_stream_is_http2(s))
        return codec_http2_errmsg(s);
    return s->errmsg;
}

/* Copies n bytes of body from offset off to out, keeping them for a
 * replay. evbuffer_peek returns how many extents the range needs, which
 * may be more than it was given room for: only those it filled are read.
 * Returns false when not all n bytes could be copied. */
bool
codec_copy_body(struct evbuffer *body, struct evbuffer *out, size_t off,
                size_t n)
{
    enum { CODEC_PEEK_VECS = 16 };
    struct evbuffer_iovec vec[CODEC_PEEK_VECS];
    struct evbuffer_ptr pos;

    if (evbuffer_ptr_set(body, &pos, off, EVBUFFER_PTR_SET) < 0)
        return false;
    while (n > 0) {
        int got =
            evbuffer_peek(body, (ev_ssize_t)n, &pos, vec, CODEC_PEEK_VECS);

        if (got <= 0)
            return false; /* cannot happen: n never exceeds what is held */
        if (got > CODEC_PEEK_VECS)
            got = CODEC_PEEK_VECS;
        for (int i = 0; i < got && n > 0; i++) {
            size_t len = vec[i].iov_len < n ? vec[i].iov_len : n;

            if (evbuffer_add(out, vec[i].iov_base, len) < 0)
                return false;
            n -= len;
            evbuffer_ptr_set(body, &pos, len, EVBUFFER_PTR_ADD);
        }
    }
    return true;
}

/* Records a send failure's message for codec_errmsg. */
static int
codec_send_failed(struct codec_stream *s, int rc)
{
    if (rc == HCONN_ENO_MEMORY)
        snprintf(s->errmsg, sizeof s->errmsg,
                 "out of memory queueing the request body");
    else
        snprintf(s->errmsg, sizeof s->errmsg, "%s", s->writer.errmsg);
    return rc;
}

/* The writer refuses a byte past the length the head announced, so the
 * origin never reads a body that differs from the head. A piece that
 * cannot be queued whole (no memory) would leave the framing short. */
int
codec_send_data(struct codec_stream *s, struct evbuffer *body, size_t off,
                size_t n, bool retain, ssize_t *moved)
{
    struct evbuffer *output;
    struct http1_frame f;
    bool queued_all;
    int rc;

    if (codec_stream_is_http2(s))
        return codec_http2_send_data(s, body, off, n, retain, moved);
    output = bufferevent_get_output(s->bev);
    *moved = -1;
    if ((rc = http1_writer_data(&s->writer, n, &f)) < 0)
        return codec_send_failed(s, rc);
    queued_all = evbuffer_add(output, f.pre, f.pre_len) == 0;
    if (queued_all && retain) {
        queued_all = codec_copy_body(body, output, off, n);
    } else if (queued_all) {
        int got = evbuffer_remove_buffer(body, output, n);

        queued_all = got == (int)n; /* n is within the window */
        *moved = got > 0 ? got : 0;
    }
    queued_all = queued_all && evbuffer_add(output, f.post, f.post_len) == 0;
    return queued_all ? 0 : codec_send_failed(s, HCONN_ENO_MEMORY);
}

int
codec_send_end(struct codec_stream *s)
{
    struct http1_frame f;
    int rc;

    if (codec_stream_is_http2(s))
        return codec_http2_send_end(s);
    if ((rc = http1_writer_end(&s->writer, &f)) < 0)
        return codec_send_failed(s, rc);
    if (evbuffer_add(bufferevent_get_output(s->bev), f.pre, f.pre_len) < 0)
        return codec_send_failed(s, HCONN_ENO_MEMORY);
    s->request_sent = true;
    return 0;
}

void
codec_pause(struct codec_stream *s)
{
    if (codec_stream_is_http2(s)) {
        codec_http2_pause(s);
        return;
    }
    s->paused = true;
    bufferevent_disable(s->bev, EV_READ);
}

void
codec_resume(struct codec_stream *s)
{
    if (codec_stream_is_http2(s)) {
        codec_http2_resume(s);
        return;
    }
    if (!s->paused || s->fd_lent)
        return;
    s->paused = false;
    bufferevent_enable(s->bev, EV_READ);
    upstream_read_progress(s->up);
    /* Bytes already buffered raise no new read event. */
    codec_process(s);
}

bool
codec_detach(struct codec_stream *s, uint64_t max_bytes,
             const struct codec_events *ev, void *arg)
{
    const struct http1_parser *p = &s->parser;
    uint64_t left = 0;

    if (codec_stream_is_http2(s)) {
        codec_http2_abort(s);
        return false;
    }
    if (s->head_done && p->framing == HTTP1_FRAMING_LENGTH)
        left = (uint64_t)p->content_length - p->body_received;
    /* A request cut short would leave the origin waiting for the rest;
     * a lent socket has bytes the parser never counted. */
    if (!s->request_sent || s->fd_lent || s->eof || s->dead || max_bytes == 0 ||
        left > max_bytes ||
        (s->head_done &&
         (!p->keep_alive || p->framing == HTTP1_FRAMING_CLOSE))) {
        codec_abort(s);
        return false;
    }
    s->ev = ev;
    s->arg = arg;
    s->detached = true;
    s->drain_limit = s->response_bytes + max_bytes;
    /* One read takes no more than the limit lets the drain keep. */
    if (s->opt.window > max_bytes) {
        s->opt.window = max_bytes > CODEC_HTTP1_MIN_READ ? (size_t)max_bytes
                                                         : CODEC_HTTP1_MIN_READ;
        if (!upstream_is_tls(s->up))
            bufferevent_set_max_single_read(s->bev, s->opt.window);
    }
    s->paused = false;
    bufferevent_enable(s->bev, EV_READ);
    upstream_read_progress(s->up);
    /* Bytes already buffered raise no read event: one is raised, from
     * the loop, so that the drain starts after its caller's turn (the
     * end of a response may hand the connection to a waiter). */
    if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0)
        bufferevent_trigger(s->bev, EV_READ, BEV_OPT_DEFER_CALLBACKS);
    return true;
}

bool
codec_can_refuse(const struct upstream *up)
{
    return codec_http2_is(up);
}

unsigned
codec_spare(const struct upstream *up)
{
    if (codec_http2_is(up))
        return codec_http2_spare(up);
    return pool_is_idle(up) ? 1 : 0;
}
