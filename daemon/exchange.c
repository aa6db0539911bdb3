/*
 * exchange.c — one request through the pool and the HTTP/1.1 codec.
 *
 * Lifecycle: new (head formatted, so a bad request fails before anything
 * is leased) → LEASING → ACTIVE (head and body written, response parsed
 * event by event into replies) → DONE. A request that fails on a reused
 * connection before any response byte arrived goes back to LEASING once,
 * on a fresh connection, when it is safe to replay.
 *
 * Memory per exchange is bounded: upstream reading stops while out holds
 * stream_buffer_bytes, and the request body is either the client's inline
 * body (bounded by max_inline_body_bytes) or a streamed window.
 *
 * Only the session frees exchanges, and only from its own callbacks, so
 * nothing here can free an exchange another call is still inside.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "config.h"
#include "exchange.h"
#include "hconn_error.h"
#include "log.h"
#include "pathcheck.h"
#include "policy.h"
#include "server.h"
#include "session.h"
#include "tlsfiles.h"
#include "uidstats.h"
#include "upstream.h"
#include "wire_line.h"

#define exchange_of_waiter(w)                                                  \
    ((struct exchange *)((char *)(w)-offsetof(struct exchange, waiter)))

static void exchange_process(struct exchange *ex);

static const struct config *
exchange_cfg(const struct exchange *ex)
{
    return ex->session->srv->cfg;
}

/* Counts what out holds among the client's queued replies. */
static void
exchange_out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
                void *arg)
{
    struct exchange *ex = arg;

    session_replies_held(ex->session,
                         (ssize_t)info->n_added - (ssize_t)info->n_deleted);
}

static struct exchange *
exchange_alloc(struct session *s, json_t *id)
{
    struct exchange *ex = calloc(1, sizeof *ex);

    if (ex == NULL)
        return NULL;
    ex->session = s;
    ex->id = json_incref(id);
    ex->out = evbuffer_new();
    ex->body = evbuffer_new();
    if (ex->out == NULL || ex->body == NULL ||
        evbuffer_add_cb(ex->out, exchange_out_cb, ex) == NULL) {
        exchange_free(ex);
        return NULL;
    }
    return ex;
}

/* Queues one encoded reply line; NULL: there was no memory for it. */
static void
exchange_queue_line(struct exchange *ex, const char *line, size_t len)
{
    if (line == NULL) {
        /* Without memory for a reply the client cannot be told anything
         * reliable; close it rather than let it wait forever. */
        log_error("out of memory encoding a reply");
        ex->abort_session = true;
    } else {
        evbuffer_add(ex->out, line, len);
    }
    session_schedule_flush(ex->session);
}

/* Queues one reply line (reply is stolen). */
static void
exchange_reply(struct exchange *ex, json_t *reply)
{
    size_t len = 0;
    char *line = reply != NULL ? wire_encode(reply, &len) : NULL;

    json_decref(reply);
    exchange_queue_line(ex, line, len);
    free(line);
}

/* Queues a line written by wire_line_... (which returned rc), and frees
 * what it held. */
static void
exchange_reply_line(struct exchange *ex, struct wire_line *line, int rc)
{
    exchange_queue_line(ex, rc == 0 ? line->buf : NULL, line->len);
    wire_line_free(line);
}

void
exchange_append_reply(struct exchange *ex, json_t *reply)
{
    exchange_reply(ex, reply);
}

struct exchange *
exchange_new_reply(struct session *s, json_t *reply)
{
    struct exchange *ex = exchange_alloc(s, NULL);

    if (ex == NULL) {
        json_decref(reply);
        return NULL;
    }
    ex->state = EXCHANGE_DONE;
    exchange_reply(ex, reply);
    return ex;
}

/* Finds a request header field by name (case-insensitive). */
static const char *
exchange_request_header(const struct wire_request *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

/* True when value, a comma-separated list, holds token (any case). */
static bool
exchange_list_has(const char *value, const char *token)
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

/* RFC 9110 §9.2.2: idempotent methods may be sent again after a failure
 * the client cannot see past; an Idempotency-Key header makes any method
 * so by the sender's word. */
static bool
exchange_is_replayable(const struct wire_request *req)
{
    static const char *const idempotent[] = {"GET",   "HEAD", "OPTIONS",
                                             "TRACE", "PUT",  "DELETE"};

    if (req->body == WIRE_BODY_STREAM)
        return false; /* the body is not held */
    if (exchange_request_header(req, "Idempotency-Key") != NULL)
        return true;
    for (size_t i = 0; i < sizeof idempotent / sizeof *idempotent; i++)
        if (strcmp(req->method, idempotent[i]) == 0)
            return true;
    return false;
}

/* Formats the HTTP head; on a bad method, target or header the exchange
 * fails before anything is leased, so nothing malformed is ever sent. */
static int
exchange_format_head(struct exchange *ex)
{
    const struct wire_request *req = &ex->m.req;
    struct http1_header *fields;
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
    char err[256];
    int rc;

    fields = calloc(req->nheaders + 1, sizeof *fields);
    if (fields == NULL)
        return HCONN_ENO_MEMORY;
    for (size_t i = 0; i < req->nheaders; i++) {
        fields[i].name = req->headers[i].name;
        fields[i].name_len = strlen(req->headers[i].name);
        fields[i].value = req->headers[i].value;
        fields[i].value_len = strlen(req->headers[i].value);
        /* Any Connection field may say close, and the origin honours it
         * wherever it is: such a connection is never pooled. */
        if (strcasecmp(req->headers[i].name, "Connection") == 0 &&
            exchange_list_has(req->headers[i].value, "close"))
            ex->request_close = true;
    }
    hreq.headers = fields;
    /* A client's own "Expect: 100-continue" asks for what expect_continue
     * does: sent with nothing behind it, a final answer from the origin
     * would meet body bytes it reads as the next request. The codec
     * refuses any other Expect, and one on a request without a body. */
    if (req->body != WIRE_BODY_NONE &&
        exchange_request_header(req, "Expect") != NULL)
        ex->m.req.expect_continue = true;
    /* RFC 9110 §10.1.1: only a request with a body may expect 100. */
    if (req->expect_continue && req->body != WIRE_BODY_NONE &&
        exchange_request_header(req, "Expect") == NULL)
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
    rc = http1_start_request(&hreq, &ex->writer, &ex->head, &ex->head_len, err,
                             sizeof err);
    free(fields);
    if (rc < 0)
        exchange_fail(ex, rc, "%s", err);
    return rc;
}

/* Picks the tunnel, if any: the request's "proxy", else the default proxy
 * for its origin unless it said "proxy": false; formats its CONNECT. */
static int
exchange_route(struct exchange *ex)
{
    const struct wire_request *req = &ex->m.req;
    const struct wire_header *headers = NULL;
    const char *authorization = NULL;
    size_t nheaders = 0, n;
    char err[256];
    int rc;

    if (req->has_proxy) {
        snprintf(ex->proxy_host, sizeof ex->proxy_host, "%s", req->proxy.host);
        ex->proxy_port = req->proxy.port;
        headers = req->proxy.headers;
        nheaders = req->proxy.nheaders;
    } else if (!req->direct) {
        const struct url_proxy *route =
            proxy_default_for(&ex->session->srv->proxies, req->tls, req->host);

        if (route == NULL)
            return 0;
        snprintf(ex->proxy_host, sizeof ex->proxy_host, "%s", route->host);
        ex->proxy_port = route->port;
        authorization = route->authorization;
    } else {
        return 0;
    }
    n = strlen(ex->target_desc);
    snprintf(ex->target_desc + n, sizeof ex->target_desc - n,
             strchr(ex->proxy_host, ':') ? " via [%s]:%u" : " via %s:%u",
             ex->proxy_host, ex->proxy_port);
    rc = proxy_format_connect(req->host, req->port, headers, nheaders,
                              authorization, &ex->connect_head,
                              &ex->connect_head_len, err, sizeof err);
    if (rc < 0)
        exchange_fail(ex, rc, "proxy: %s", err);
    return rc;
}

struct exchange *
exchange_new_request(struct session *s, json_t *msg, struct wire_client_msg *m,
                     json_t *id)
{
    struct exchange *ex = exchange_alloc(s, id);
    const struct wire_request *req;

    if (ex == NULL)
        return NULL;
    ex->msg = json_incref(msg);
    ex->m = *m;
    /* The exchange owns the request's allocations now. */
    memset(&m->req, 0, sizeof m->req);
    req = &ex->m.req;
    ex->state = EXCHANGE_LEASING;
    snprintf(ex->target_desc, sizeof ex->target_desc,
             strchr(req->host, ':') ? "%s %s://[%s]:%u%s" : "%s %s://%s:%u%s",
             req->method, req->tls ? "https" : "http", req->host, req->port,
             req->target);
    ex->replayable = exchange_is_replayable(req);
    ex->body_retained = ex->replayable;

    if (exchange_route(ex) == 0)
        exchange_format_head(ex);
    return ex;
}

static void
exchange_timeval(double seconds, struct timeval *tv)
{
    tv->tv_sec = (time_t)seconds;
    tv->tv_usec = (suseconds_t)((seconds - (double)tv->tv_sec) * 1e6);
}

static double
exchange_read_timeout(const struct exchange *ex)
{
    return ex->m.req.timeout > 0 ? ex->m.req.timeout
                                 : exchange_cfg(ex)->read_timeout;
}

size_t
exchange_body_held(const struct exchange *ex)
{
    return evbuffer_get_length(ex->body);
}

/* Frees the held request body and its share of the client's budget:
 * once the response has begun (or the exchange ended) no replay can need
 * it. */
static void
exchange_drop_body(struct exchange *ex)
{
    size_t held = evbuffer_get_length(ex->body);

    if (held == 0)
        return;
    evbuffer_drain(ex->body, held);
    session_body_held(ex->session, -(ssize_t)held);
    session_resume_reading(ex->session);
}

/* Copies n held body bytes from offset off to out, keeping them for a
 * replay. evbuffer_peek returns how many extents the range needs, which
 * may be more than it was given room for: only those it filled are read.
 * Returns false when not all n bytes could be copied. */
static bool
exchange_copy_body(struct exchange *ex, struct evbuffer *out, size_t off,
                   size_t n)
{
    enum { EXCHANGE_PEEK_VECS = 16 };
    struct evbuffer_iovec vec[EXCHANGE_PEEK_VECS];
    struct evbuffer_ptr pos;

    if (evbuffer_ptr_set(ex->body, &pos, off, EVBUFFER_PTR_SET) < 0)
        return false;
    while (n > 0) {
        int got = evbuffer_peek(ex->body, (ev_ssize_t)n, &pos, vec,
                                EXCHANGE_PEEK_VECS);

        if (got <= 0)
            return false; /* cannot happen: n never exceeds what is held */
        if (got > EXCHANGE_PEEK_VECS)
            got = EXCHANGE_PEEK_VECS;
        for (int i = 0; i < got && n > 0; i++) {
            size_t len = vec[i].iov_len < n ? vec[i].iov_len : n;

            if (evbuffer_add(out, vec[i].iov_base, len) < 0)
                return false;
            n -= len;
            evbuffer_ptr_set(ex->body, &pos, len, EVBUFFER_PTR_ADD);
        }
    }
    return true;
}

/* Writes what the client has sent of the body so far, framed by the body
 * writer, as far as the upstream's output window allows; then the body's
 * end. The writer refuses a byte past the length the head announced and
 * an end short of it, so the origin never reads a body that differs from
 * the head. A piece that cannot be queued whole (no memory) would leave
 * the framing short: the exchange fails and the connection is dropped. */
static void
exchange_pump_body(struct exchange *ex)
{
    struct evbuffer *output;
    size_t window = exchange_cfg(ex)->stream_buffer_bytes;
    size_t unsent, n, queued, sent;
    struct http1_frame f;
    bool queued_all = true;
    int rc = 0;

    if (ex->state != EXCHANGE_ACTIVE || ex->request_sent || ex->expecting ||
        ex->body_refused)
        return;
    output = bufferevent_get_output(ex->up->bev);
    queued = evbuffer_get_length(output);
    sent = (size_t)ex->writer.written;
    unsent = evbuffer_get_length(ex->body) - (ex->body_retained ? sent : 0);
    n = unsent;
    if (queued >= window)
        n = 0;
    else if (n > window - queued)
        n = window - queued;
    if (n > 0 && (rc = http1_writer_data(&ex->writer, n, &f)) == 0) {
        queued_all = evbuffer_add(output, f.pre, f.pre_len) == 0;
        if (queued_all && ex->body_retained) {
            queued_all = exchange_copy_body(ex, output, sent, n);
        } else if (queued_all) {
            int moved = evbuffer_remove_buffer(ex->body, output, n);

            queued_all = moved == (int)n; /* n is within the window */
            session_body_held(ex->session, -(ssize_t)(moved > 0 ? moved : 0));
            session_resume_reading(ex->session);
        }
        queued_all =
            queued_all && evbuffer_add(output, f.post, f.post_len) == 0;
    }
    if (rc == 0 && queued_all && ex->body_complete && n == unsent &&
        (rc = http1_writer_end(&ex->writer, &f)) == 0) {
        queued_all = evbuffer_add(output, f.pre, f.pre_len) == 0;
        ex->request_sent = queued_all;
    }
    if (rc < 0)
        exchange_fail(ex, rc, "%s: %s", ex->target_desc, ex->writer.errmsg);
    else if (!queued_all)
        exchange_fail(ex, HCONN_ENO_MEMORY,
                      "%s: out of memory queueing the request body",
                      ex->target_desc);
}

void
exchange_add_body(struct exchange *ex, struct evbuffer *src, size_t n)
{
    if (ex->state == EXCHANGE_DONE || ex->body_refused) {
        /* The response (or an error) came first; the rest of the body has
         * nowhere to go. */
        evbuffer_drain(src, n);
        return;
    }
    if (ex->writer.length >= 0 &&
        ex->body_received + n > (uint64_t)ex->writer.length) {
        /* Refused at once rather than held: the writer would never let
         * the server have more than the head announced. */
        evbuffer_drain(src, n);
        exchange_fail(ex, HCONN_EBODY_LENGTH,
                      "the streamed body runs past its declared length of "
                      "%lld bytes",
                      (long long)ex->writer.length);
        return;
    }
    evbuffer_remove_buffer(src, ex->body, n);
    ex->body_received += n;
    session_body_held(ex->session, (ssize_t)n);
    exchange_pump_body(ex);
}

void
exchange_end_body(struct exchange *ex)
{
    if (ex->state == EXCHANGE_DONE || ex->body_refused)
        return;
    if (ex->writer.length >= 0 &&
        ex->body_received != (uint64_t)ex->writer.length) {
        exchange_fail(ex, HCONN_EBODY_LENGTH,
                      "the streamed body ended after %llu bytes of the %lld "
                      "declared",
                      (unsigned long long)ex->body_received,
                      (long long)ex->writer.length);
        return;
    }
    ex->body_complete = true;
    exchange_pump_body(ex);
}

/* Reads what the socket holds, up to the window, in one readv. libevent
 * 2.1's own reads stop at 4096 bytes (EVBUFFER_MAX_READ): a loop turn
 * per 4 KiB held large bodies to a fraction of the loopback's speed. */
/* Room on the stack for a reply line; longer ones (many or long header
 * fields) move to the heap. */
#define EXCHANGE_LINE_STORAGE 2048

/* The most a bufferevent reads from a socket at once (libevent 2.1's
 * EVBUFFER_MAX_READ), after asking the kernel how much there is. */
#define EXCHANGE_LIBEVENT_READ 4096

static void
exchange_read_more(struct exchange *ex)
{
    struct evbuffer *in = bufferevent_get_input(ex->up->bev);
    size_t held = evbuffer_get_length(in);
    size_t window = exchange_cfg(ex)->stream_buffer_bytes;
    struct evbuffer_iovec vec[2];
    struct iovec iov[2];
    ssize_t n;
    int nvec;

    /* Under TLS the socket carries records only OpenSSL may read. Less
     * than a full libevent read held means that read emptied the socket:
     * another would only return EAGAIN. */
    if (ex->up->tls || ex->eof || held >= window ||
        held < EXCHANGE_LIBEVENT_READ)
        return;
    /* The bufferevent freezes its input's tail so that only it appends;
     * this appends exactly as it would, from the same socket. */
    evbuffer_unfreeze(in, 0);
    nvec = evbuffer_reserve_space(in, (ev_ssize_t)(window - held), vec, 2);
    if (nvec <= 0) {
        evbuffer_freeze(in, 0);
        return;
    }
    for (int i = 0; i < nvec; i++) {
        iov[i].iov_base = vec[i].iov_base;
        iov[i].iov_len = vec[i].iov_len;
    }
    n = readv(bufferevent_getfd(ex->up->bev), iov, nvec);
    if (n <= 0) {
        evbuffer_commit_space(in, vec, 0);
        evbuffer_freeze(in, 0);
        /* EOF or a reset: the parser decides what the bytes so far mean.
         * EAGAIN: nothing more yet. */
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            ex->eof = true;
        return;
    }
    for (int i = 0; i < nvec; i++) {
        size_t len = (size_t)n < vec[i].iov_len ? (size_t)n : vec[i].iov_len;

        vec[i].iov_len = len;
        n -= (ssize_t)len;
    }
    evbuffer_commit_space(in, vec, nvec);
    evbuffer_freeze(in, 0);
}

static void
exchange_read_cb(struct bufferevent *bev, void *arg)
{
    exchange_read_more(arg);
    exchange_process(arg);
}

static void
exchange_write_cb(struct bufferevent *bev, void *arg)
{
    exchange_pump_body(arg);
}

static void
exchange_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct exchange *ex = arg;
    double t = exchange_read_timeout(ex);

    if (what & BEV_EVENT_TIMEOUT) {
        if (what & BEV_EVENT_READING)
            exchange_fail(ex, HCONN_ETIMEOUT,
                          "no response bytes from %s for %g s", ex->up->peer,
                          t);
        else
            exchange_fail(ex, HCONN_ETIMEOUT,
                          "sending the request to %s stalled for %g s",
                          ex->up->peer, t);
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
     * else is cut short). */
    ex->eof = true;
    exchange_process(ex);
}

/* The body may go: the origin sent 100 Continue, or expect_timeout
 * passed without an answer (RFC 9110 §10.1.1: a client need not wait
 * for ever). The client hears "continue" and sends its data frames. */
static void
exchange_go_ahead(struct exchange *ex)
{
    ex->expecting = false;
    evtimer_del(ex->expect_timer);
    /* One continue per request: a retry on a fresh connection waits for
     * the origin again, but the client has its go-ahead already. */
    if (!ex->m.req.raw && !ex->continue_replied) {
        ex->continue_replied = true;
        exchange_reply(ex, wire_reply_continue(ex->id));
    }
    exchange_pump_body(ex);
}

static void
exchange_expect_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct exchange *ex = arg;

    log_debug("client %lu: %s: no 100 Continue within %g s; sending the body",
              ex->session->id, ex->target_desc,
              exchange_cfg(ex)->expect_timeout);
    exchange_go_ahead(ex);
}

/* Holds the body back until 100 Continue or expect_timeout. */
static void
exchange_expect(struct exchange *ex)
{
    struct timeval tv;

    if (ex->expect_timer == NULL &&
        (ex->expect_timer = evtimer_new(
             ex->session->srv->base, exchange_expect_timeout_cb, ex)) == NULL) {
        exchange_pump_body(ex); /* no timer: do not wait */
        return;
    }
    ex->expecting = true;
    exchange_timeval(exchange_cfg(ex)->expect_timeout, &tv);
    evtimer_add(ex->expect_timer, &tv);
}

/* Queues the request head on the upstream's output. With nothing queued
 * before it on a plain socket, it is written at once: most heads fit the
 * socket buffer, and going through the bufferevent would cost a loop turn
 * and two epoll_ctl calls to arm and disarm the write event. */
static void
exchange_send_head(struct exchange *ex, struct evbuffer *output)
{
    size_t sent = 0;

    if (!ex->up->tls && evbuffer_get_length(output) == 0) {
        ssize_t n = send(bufferevent_getfd(ex->up->bev), ex->head, ex->head_len,
                         MSG_DONTWAIT | MSG_NOSIGNAL);

        /* An error shows again, to the bufferevent, on the rest. */
        if (n > 0)
            sent = (size_t)n;
    }
    if (sent < ex->head_len)
        evbuffer_add(output, ex->head + sent, ex->head_len - sent);
}

static void
exchange_attach(struct exchange *ex, struct upstream *up)
{
    struct timeval tv;
    struct evbuffer *output = bufferevent_get_output(up->bev);

    ex->up = up;
    ex->state = EXCHANGE_ACTIVE;
    ex->reused = up->requests > 0;
    if (ex->reused)
        uidstats_get(ex->session->srv, ex->session->uid)->reuse_hits++;
    else
        uidstats_get(ex->session->srv, ex->session->uid)->reuse_misses++;
    ex->eof = false;
    ex->read_paused = false;
    ex->response_bytes = 0;
    ex->request_sent = false;
    http1_writer_rewind(&ex->writer);
    ex->expecting = false;
    ex->body_refused = false;
    http1_parser_init(&ex->parser, strcmp(ex->m.req.method, "HEAD") == 0,
                      ex->request_close);
    log_debug("client %lu: %s on upstream %lu (%s)", ex->session->id,
              ex->target_desc, up->id, ex->reused ? "reused" : "new");

    exchange_timeval(exchange_read_timeout(ex), &tv);
    bufferevent_setcb(up->bev, exchange_read_cb, exchange_write_cb,
                      exchange_event_cb, ex);
    bufferevent_set_timeouts(up->bev, &tv, &tv);
    bufferevent_setwatermark(up->bev, EV_WRITE,
                             exchange_cfg(ex)->stream_buffer_bytes / 4, 0);
    /* Enabling writing arms the write event even with nothing to write,
     * two epoll_ctl calls for nothing: only when it was turned off. */
    bufferevent_enable(up->bev, (bufferevent_get_enabled(up->bev) & EV_WRITE)
                                    ? EV_READ
                                    : EV_READ | EV_WRITE);
    exchange_send_head(ex, output);
    if (ex->m.req.body == WIRE_BODY_NONE)
        ex->request_sent = true;
    else if (ex->m.req.expect_continue)
        exchange_expect(ex);
    else
        exchange_pump_body(ex);
}

static void
exchange_lease_cb(struct pool_waiter *w, struct upstream *up, int error,
                  const char *message)
{
    struct exchange *ex = exchange_of_waiter(w);

    if (error != 0)
        exchange_fail(ex, error, "%s", message);
    else
        exchange_attach(ex, up);
}

static void
exchange_request_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct exchange *ex = arg;

    exchange_fail(ex, HCONN_ETIMEOUT,
                  "%s: not complete after %g s "
                  "(request_timeout)",
                  ex->target_desc, exchange_cfg(ex)->request_timeout);
}

/* request_timeout bounds the whole exchange, however the origin trickles. */
static void
exchange_start_request_timer(struct exchange *ex)
{
    struct timeval tv;

    if (exchange_cfg(ex)->request_timeout <= 0)
        return;
    ex->request_timer =
        evtimer_new(ex->session->srv->base, exchange_request_timeout_cb, ex);
    exchange_timeval(exchange_cfg(ex)->request_timeout, &tv);
    if (ex->request_timer != NULL)
        evtimer_add(ex->request_timer, &tv);
}

/* The inner destinations were checked: lease, or fail. */
static void
exchange_pathcheck_cb(void *arg, int rc, const char *why)
{
    struct exchange *ex = arg;

    ex->pathcheck = NULL;
    if (rc < 0) {
        exchange_fail(ex, rc, "%s", why);
        return;
    }
    ex->path_checked = true;
    exchange_start(ex);
}

/* A "source_address": the client's policy rule must allow it; it then
 * joins the pool key, so only requests from the same source share. */
static int
exchange_check_source(struct exchange *ex, struct pool_target *target,
                      char *why, size_t len)
{
    const struct wire_request *req = &ex->m.req;
    const struct policy_rule *rule = policy_match(
        exchange_cfg(ex)->policy, ex->session->uid, ex->session->gid);
    int rc = policy_check_source(rule, req->source_host, req->source_port,
                                 ex->session->uid, why, len);

    target->source_host = req->source_host;
    target->source_port = req->source_port;
    return rc;
}

void
exchange_start(struct exchange *ex)
{
    const struct wire_request *req = &ex->m.req;
    struct pool_target target = {
        .host = req->host,
        .port = req->port,
        .tls = req->tls,
        .tls_options = req->has_tls_options ? &req->tls_options : NULL,
        .proxy_host = ex->connect_head != NULL ? ex->proxy_host : NULL,
        .proxy_port = ex->proxy_port,
        .connect_head = ex->connect_head,
        .connect_head_len = ex->connect_head_len,
        .uid = ex->session->uid,
    };
    double timeout =
        req->timeout > 0 ? req->timeout : exchange_cfg(ex)->connect_timeout;
    struct session_addr_filter filter;
    struct upstream *up;
    char why[512];
    int rc;

    if (ex->state != EXCHANGE_LEASING)
        return;
    /* Policy first: a denied request leases nothing, sends nothing. */
    rc = session_check_policy(ex->session, req, target.proxy_host,
                              ex->proxy_port, !req->has_proxy, &filter,
                              &target.addr_filter, why, sizeof why);
    if (rc == 0 && req->has_source)
        rc = exchange_check_source(ex, &target, why, sizeof why);
    if (rc < 0) {
        exchange_fail(ex, rc, "%s", why);
        return;
    }
    /* Files the client named, opened with its rights, on every request:
     * the pool key then names their contents, so none rides a connection
     * made with material it could not read itself. */
    if (ex->attempts == 0 && req->has_tls_options &&
        (rc = tlsfiles_load(
             &(struct tlsfiles_client){bufferevent_getfd(ex->session->bev),
                                       ex->session->uid, ex->session->gid},
             &ex->m.req.tls_options, &ex->tls_material, why, sizeof why)) < 0) {
        exchange_fail(ex, rc, "%s", why);
        return;
    }
    /* What lies behind the first hop (the origin behind a proxy, the host
     * an absolute-form target names) is checked like a direct
     * request before anything is sent; exchange_pathcheck_cb resumes. */
    if (ex->attempts == 0 && !ex->path_checked) {
        rc = pathcheck_start(
            ex->session->srv->resolver, req, target.proxy_host != NULL,
            target.addr_filter != NULL ? &filter.policy : NULL,
            exchange_pathcheck_cb, ex, &ex->pathcheck, why, sizeof why);
        if (rc < 0)
            exchange_fail(ex, rc, "%s", why);
        if (rc != 0)
            return;
        ex->path_checked = true;
    }
    /* The daemon's default proxy is the administrator's choice: its own
     * addresses are not refused (the origin behind it was checked). */
    if (target.proxy_host != NULL && !req->has_proxy)
        target.addr_filter = NULL;
    if (ex->attempts == 0)
        exchange_start_request_timer(ex);
    ex->attempts++;
    ex->waiter.cb = exchange_lease_cb;
    ex->waiter.fresh = ex->attempts > 1;
    rc = pool_lease(ex->session->srv->pool, &target, &ex->waiter, &up, timeout);
    if (rc < 0)
        exchange_fail(ex, rc, "cannot lease a connection for %s",
                      ex->target_desc);
    else if (up != NULL)
        exchange_attach(ex, up);
}

/* A reused connection died before answering: send the request again on a
 * fresh one (RFC 9110 §9.2.2), once. */
static bool
exchange_retry(struct exchange *ex)
{
    if (!ex->reused || !ex->replayable || ex->attempts > 1 ||
        ex->response_bytes != 0 || ex->head_replied ||
        evbuffer_get_length(bufferevent_get_input(ex->up->bev)) != 0)
        return false;
    log_info("client %lu: %s: reused upstream %lu closed before answering; "
             "retrying on a new connection",
             ex->session->id, ex->target_desc, ex->up->id);
    ex->session->srv->stats.retries++;
    uidstats_get(ex->session->srv, ex->session->uid)->retries++;
    pool_drop(ex->up);
    ex->up = NULL;
    ex->state = EXCHANGE_LEASING;
    exchange_start(ex);
    return true;
}

static void
exchange_reply_head(struct exchange *ex, const struct http1_event *ev)
{
    const struct http1_parser *p = &ex->parser;
    int64_t length = p->framing == HTTP1_FRAMING_LENGTH ? p->content_length
                     : p->framing == HTTP1_FRAMING_NONE ? 0
                                                        : -1;
    char storage[EXCHANGE_LINE_STORAGE];
    struct wire_line line;
    int rc;

    wire_line_init(&line, storage, sizeof storage);
    /* proxy_response: http.client's get_proxy_response_headers(). */
    rc = wire_line_head(&line, ex->id, ev->status, ev->reason, ev->reason_len,
                        ev->version, ev->headers, ev->nheaders, length,
                        ex->reused, ex->up->proxy_reply);
    if (rc < 0) {
        exchange_fail(ex, rc, "cannot encode the response head");
    } else if (line.len > WIRE_MAX_LINE) {
        /* 100 fields of 64 KiB each fit the HTTP limits but not one
         * protocol line: the client could not read it. */
        exchange_fail(ex, HCONN_ELINE_TOO_LONG,
                      "%s: response head encodes to %zu bytes, over the "
                      "protocol's %d-byte line limit",
                      ex->up->peer, line.len, WIRE_MAX_LINE);
    } else {
        evbuffer_add(ex->out, line.buf, line.len);
        ex->head_replied = true;
        session_schedule_flush(ex->session);
    }
    wire_line_free(&line);
}

/* Relays len body bytes that start skip bytes into in: the bytes before
 * them (chunk framing) are dropped, the body moves to the client's reply
 * buffer. Moving hands whole buffer chains over, where copying cost as
 * much CPU as the kernel's own copies on large bodies. Returns the bytes
 * taken off in. */
static size_t
exchange_reply_data(struct exchange *ex, struct evbuffer *in, size_t skip,
                    size_t len)
{
    if (!ex->m.req.raw) {
        char storage[EXCHANGE_LINE_STORAGE];
        struct wire_line line;

        int rc;

        wire_line_init(&line, storage, sizeof storage);
        rc = wire_line_data(&line, ex->id, len);
        exchange_reply_line(ex, &line, rc);
        if (rc < 0)
            return 0;
    }
    evbuffer_drain(in, skip);
    evbuffer_remove_buffer(in, ex->out, len);
    session_schedule_flush(ex->session);
    return skip + len;
}

/* The response is complete: reply (the trailers point into the input,
 * so before dropping its consumed bytes), then pool the connection if it
 * is clean: nothing may follow the response. */
static void
exchange_finish(struct exchange *ex, const struct http1_event *ev,
                size_t consumed)
{
    struct upstream *up = ex->up;
    struct evbuffer *in = bufferevent_get_input(up->bev);
    bool keep;

    if (!ex->m.req.raw) {
        char storage[EXCHANGE_LINE_STORAGE];
        struct wire_line line;
        int rc;

        wire_line_init(&line, storage, sizeof storage);
        rc = wire_line_end(&line, ex->id, ev->headers, ev->nheaders);
        if (rc == 0 && line.len > WIRE_MAX_LINE) {
            /* As for heads: the client could not read the line, and would
             * drop the connection with every request pipelined on it. */
            size_t len = line.len;

            wire_line_free(&line);
            exchange_fail(ex, HCONN_ELINE_TOO_LONG,
                          "%s: response trailers encode to %zu bytes, over "
                          "the protocol's %d-byte line limit",
                          up->peer, len, WIRE_MAX_LINE);
            return;
        }
        exchange_reply_line(ex, &line, rc);
    } else {
        session_schedule_flush(ex->session);
    }
    evbuffer_drain(in, consumed);
    keep = http1_parser_keep_alive(&ex->parser) && ex->request_sent &&
           !ex->eof && evbuffer_get_length(in) == 0;
    ex->state = EXCHANGE_DONE;
    ex->up = NULL;
    exchange_drop_body(ex);
    up->clean = true; /* a complete response: TLS state is sound */
    ex->session->srv->stats.responses++;
    uidstats_get(ex->session->srv, ex->session->uid)->responses++;
    log_info("client %lu (uid %ld, gid %ld, pid %ld): %s -> %d, %llu bytes, "
             "%s connection%s",
             ex->session->id, (long)ex->session->uid, (long)ex->session->gid,
             (long)ex->session->pid, ex->target_desc, ex->parser.status,
             (unsigned long long)ex->parser.body_received,
             ex->reused ? "reused" : "new", keep ? "" : ", not kept");
    if (keep)
        pool_release(up);
    else
        pool_drop(up);
}

/* max_response_head_bytes: a head (interim responses included) that
 * grows past it fails before the client sees any of it. */
static bool
exchange_head_too_big(struct exchange *ex, size_t more)
{
    size_t max = exchange_cfg(ex)->max_response_head_bytes;

    if (ex->head_replied || ex->response_bytes + more <= max)
        return false;
    exchange_fail(ex, HCONN_ELIMIT_EXCEEDED,
                  "%s: response head exceeds %zu bytes "
                  "(max_response_head_bytes)",
                  ex->up->peer, max);
    return true;
}

/* Runs the parser over what the upstream has sent, until it needs more
 * bytes, the client's window is full, or the response ends. */
static void
exchange_process(struct exchange *ex)
{
    struct evbuffer *in;
    size_t window = exchange_cfg(ex)->stream_buffer_bytes;

    while (ex->state == EXCHANGE_ACTIVE) {
        struct evbuffer_iovec seg = {0};
        struct http1_event ev;
        size_t avail, consumed, taken = 0;

        in = bufferevent_get_input(ex->up->bev);
        avail = evbuffer_get_length(in);
        if (avail > 0)
            evbuffer_peek(in, -1, NULL, &seg, 1);
        ev = http1_parser_next(&ex->parser, seg.iov_base, seg.iov_len,
                               ex->eof && seg.iov_len == avail, &consumed);
        switch (ev.kind) {
        case HTTP1_NEED_DATA:
            evbuffer_drain(in, consumed);
            ex->response_bytes += consumed;
            if (seg.iov_len - consumed < avail - consumed) {
                /* The next token straddles buffer chains: join them. */
                evbuffer_pullup(in, -1);
                continue;
            }
            exchange_head_too_big(ex, avail - consumed);
            return;
        case HTTP1_INTERIM:
            log_debug("client %lu: %s: interim %d", ex->session->id,
                      ex->target_desc, ev.status);
            if (ev.status == 100 && ex->expecting)
                exchange_go_ahead(ex);
            break;
        case HTTP1_HEAD:
            if (exchange_head_too_big(ex, consumed))
                return;
            if (ex->expecting) {
                /* A final answer instead of 100: the body never goes,
                 * and since the head announced one the connection is
                 * not kept (request_sent stays false). */
                ex->expecting = false;
                ex->body_refused = true;
                evtimer_del(ex->expect_timer);
                exchange_drop_body(ex);
            }
            exchange_reply_head(ex, &ev);
            break;
        case HTTP1_DATA:
            taken = exchange_reply_data(
                ex, in, (size_t)(ev.data - (const char *)seg.iov_base), ev.len);
            break;
        case HTTP1_END:
            exchange_finish(ex, &ev, consumed);
            return;
        case HTTP1_ERROR:
            if (exchange_retry(ex))
                return;
            exchange_fail(ex, ev.error, "%s: %s", ex->up->peer,
                          ex->parser.errmsg);
            return;
        }
        evbuffer_drain(in, consumed - taken);
        ex->response_bytes += consumed;
        if (ev.kind == HTTP1_HEAD && ex->request_sent)
            exchange_drop_body(ex);
        if (evbuffer_get_length(ex->out) >= window) {
            /* The client is behind: stop reading until it catches up. */
            ex->read_paused = true;
            bufferevent_disable(ex->up->bev, EV_READ);
            return;
        }
    }
}

void
exchange_resume(struct exchange *ex)
{
    if (!ex->read_paused || ex->state != EXCHANGE_ACTIVE ||
        evbuffer_get_length(ex->out) >= exchange_cfg(ex)->stream_buffer_bytes)
        return;
    ex->read_paused = false;
    bufferevent_enable(ex->up->bev, EV_READ);
    /* Bytes already buffered raise no new read event. */
    exchange_process(ex);
}

/* Adds a failed tunnel's proxy answer to its error reply, without the
 * header fields when they would take the line past the protocol's limit
 * (a proxy may send 100 fields of 64 KiB each). */
static void
exchange_add_detail(json_t *reply, json_t *detail)
{
    char *line;
    size_t len = 0;

    json_object_update(reply, detail);
    line = wire_encode(reply, &len);
    free(line);
    if (line != NULL && len <= WIRE_MAX_LINE)
        return;
    json_object_del(reply, "headers");
    json_object_set_new(reply, "headers_omitted", json_true());
}

void
exchange_fail(struct exchange *ex, int code, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    json_t *reply;

    if (ex->state == EXCHANGE_DONE)
        return;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);

    if (ex->up != NULL) {
        pool_drop(ex->up);
        ex->up = NULL;
    }
    pool_cancel(&ex->waiter);
    ex->state = EXCHANGE_DONE;
    if (ex->expect_timer != NULL)
        evtimer_del(ex->expect_timer);
    exchange_drop_body(ex);
    ex->session->srv->stats.errors[-code]++;
    uidstats_get(ex->session->srv, ex->session->uid)->errors[-code]++;
    log_info("client %lu (uid %ld, gid %ld, pid %ld): %s -> %s: %s",
             ex->session->id, (long)ex->session->uid, (long)ex->session->gid,
             (long)ex->session->pid, ex->target_desc, hconn_error_name(code),
             message);

    if (ex->m.req.raw && ex->head_replied) {
        /* The body is unframed: no room for an error line. Closing early
         * leaves the reader short of the head's "length". */
        ex->abort_session = true;
        session_schedule_flush(ex->session);
        return;
    }
    reply = wire_reply_error(ex->id, code, message);
    if (reply != NULL && ex->waiter.detail != NULL) /* tunnel_failed */
        exchange_add_detail(reply, ex->waiter.detail);
    if (reply != NULL && code == HCONN_EINCOMPLETE_READ) {
        json_object_set_new(reply, "received",
                            json_integer((json_int_t)ex->parser.body_received));
        if (ex->parser.framing == HTTP1_FRAMING_LENGTH)
            json_object_set_new(reply, "expected",
                                json_integer(ex->parser.content_length));
    }
    exchange_reply(ex, reply);
}

void
exchange_free(struct exchange *ex)
{
    struct wire_client_msg *m;

    if (ex == NULL)
        return;
    if (ex->up != NULL) {
        /* Mid-request or mid-response: unknown state, never pooled. */
        pool_drop(ex->up);
        ex->up = NULL;
    }
    pool_cancel(&ex->waiter);
    if (ex->body != NULL) {
        session_body_held(ex->session, -(ssize_t)evbuffer_get_length(ex->body));
        evbuffer_free(ex->body);
    }
    if (ex->out != NULL) {
        session_replies_held(ex->session,
                             -(ssize_t)evbuffer_get_length(ex->out));
        evbuffer_free(ex->out);
    }
    session_charge(ex->session, -(long long)ex->charged);
    m = &ex->m;
    wire_client_msg_clear(m);
    json_decref(ex->msg);
    json_decref(ex->id);
    json_decref(ex->waiter.detail);
    if (ex->expect_timer != NULL)
        event_free(ex->expect_timer);
    if (ex->request_timer != NULL)
        event_free(ex->request_timer);
    free(ex->head);
    free(ex->connect_head);
    tlsfiles_free(ex->tls_material);
    pathcheck_cancel(ex->pathcheck);
    free(ex);
}
