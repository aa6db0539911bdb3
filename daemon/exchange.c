/*
 * exchange.c — one request through the pool and an upstream codec
 * (codec.h), which owns the connection's I/O while the request is on it.
 *
 * Lifecycle: new (readied by the codec, so a bad request fails before
 * anything is leased) → LEASING → ACTIVE (head and body written, response
 * parsed event by event into replies) → DONE. A request that fails on a reused
 * connection before any response byte arrived goes back to LEASING once,
 * on a fresh connection, when it is safe to replay. Within ACTIVE, send
 * says where the request stands upstream and reply what the client has
 * been told; neither knows which protocol the stream rides on.
 *
 * Memory per exchange is bounded: upstream reading stops while out holds
 * stream_buffer_bytes, and the request body is either the client's inline
 * body (bounded by max_inline_body_bytes) or a streamed window.
 *
 * The rest of a large Content-Length body may instead go from the
 * origin's socket to the client's through a pipe of stream_buffer_bytes
 * (splice.c), never through out: see exchange_on_body_fd.
 *
 * Only the session frees exchanges, and only from its own callbacks, so
 * nothing here can free an exchange another call is still inside.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "budget.h"
#include "codec.h"
#include "config.h"
#include "drain.h"
#include "exchange.h"
#include "fields.h"
#include "hconn_error.h"
#include "log.h"
#include "memory.h"
#include "pathcheck.h"
#include "policy.h"
#include "pool.h"
#include "server.h"
#include "session.h"
#include "splice.h"
#include "timeval.h"
#include "tlsfiles.h"
#include "uidstats.h"
#include "upstream.h"
#include "wire_line.h"

enum exchange_state {
    EXCHANGE_LEASING, /* waiting for a connection */
    EXCHANGE_ACTIVE,  /* request going out, response coming in */
    EXCHANGE_DONE,    /* the last reply (end, error, or a ready-made
                         reply slot's only one) is in out */
};

/* The request's side: what has gone upstream on this attempt. */
enum exchange_send {
    EXCHANGE_SEND_NONE = 0,  /* no stream yet */
    EXCHANGE_SEND_BODY,      /* head out; body bytes go as they come */
    EXCHANGE_SEND_EXPECTING, /* head out with Expect: 100-continue; the
                                body waits for 100 or expect_timer */
    EXCHANGE_SEND_REFUSED,   /* a final response came instead of 100:
                                the body never goes */
    EXCHANGE_SEND_DONE,      /* head and whole body queued */
};

/* The response's side: what the client has been told. */
enum exchange_reply {
    EXCHANGE_REPLY_NONE = 0, /* nothing yet: a replay is still possible */
    EXCHANGE_REPLY_HEAD,     /* the head reply is in out; body follows */
    EXCHANGE_REPLY_END,      /* the end reply is in out */
    EXCHANGE_REPLY_FAILED,   /* the error reply is in out (or, raw mode
                                past the head, the client is cut off) */
};

struct exchange {
    struct session *session;
    TAILQ_ENTRY(exchange) entry; /* the session's queue, in order */
    enum exchange_state state;
    enum exchange_send send;   /* the request's side */
    enum exchange_reply reply; /* the response's side */
    json_t *id;                /* echoed on every reply (owned) */
    json_t *msg;               /* the request message (owned), or NULL
                                  when the fast path scanned it */
    struct wire_client_msg m;  /* validated; m.req borrows from msg, or
                                  owns its strings (wire_fast.h) */
    struct codec_request creq; /* the request readied for the codec */
    uint16_t proxy_port;
    char *connect_head; /* a tunnel's CONNECT request */
    size_t connect_head_len;
    struct evbuffer *body;  /* request body bytes held (see below) */
    uint64_t body_received; /* body bytes that came from the client */
    bool body_complete;     /* the client sent the whole body */
    bool body_retained;     /* body keeps sent bytes for a replay */
    bool replayable;        /* safe to send again on a new connection */
    bool continue_replied;  /* the client got its one "continue" */
    struct event *expect_timer;
    /* request_timeout, from the first lease */
    struct event *request_timer;
    unsigned attempts;           /* connections tried */
    struct pool_waiter waiter;   /* lease in progress */
    struct codec_stream *stream; /* the request on its connection */
    struct upstream *up;         /* the stream's connection (borrowed) */
    struct splice_pump *pump;    /* the body spliced to the client, or
                                    NULL (see exchange_on_body_fd) */
    bool reused;                 /* up had served a request before */
    uint64_t resp_received;      /* a failed response's body bytes */
    int64_t resp_expected;       /* ... and its announced length, or -1 */
    bool abort_session;          /* raw mode failed mid-body: close */
    struct evbuffer *out;        /* replies not yet moved to the client */
    /* TLS files read with the client's rights; m.req's PEM fields point
     * into it */
    struct tlsfiles_material *tls_material;
    struct pathcheck *pathcheck; /* inner destinations being resolved */
    size_t charged;              /* the request's bytes in the budget */
    bool path_checked;           /* ... and found allowed */
    /* Last, the buffers a reused exchange does not wipe (exchange_reuse):
     * strings by their first byte, the head by creq pointing into it. */
    char target_desc[320]; /* exchange_desc's, once formatted */
    char proxy_host[256];  /* a tunnel's proxy (a copy: the defaults may
                              be reloaded meanwhile), or "" */
    char head_buf[512];    /* creq.head when it fits: most heads */
};

#define exchange_of_waiter(w)                                                  \
    ((struct exchange *)((char *)(w)-offsetof(struct exchange, waiter)))

static const struct config *
exchange_cfg(const struct exchange *ex)
{
    return ex->session->srv->cfg;
}

/* "GET http://h:p/x", and " via proxy:port" through a tunnel, for logs
 * and error messages. Formatted on first use: most requests never need
 * it, and formatting it for every one cost 3% of the daemon's own
 * instructions per request. */
static const char *
exchange_desc(struct exchange *ex)
{
    const struct wire_request *req = &ex->m.req;
    size_t n;

    if (ex->target_desc[0] != '\0' || req->method == NULL)
        return ex->target_desc;
    snprintf(ex->target_desc, sizeof ex->target_desc,
             strchr(req->host, ':') ? "%s %s://[%s]:%u%s" : "%s %s://%s:%u%s",
             req->method, req->tls ? "https" : "http", req->host, req->port,
             req->target);
    if (ex->proxy_host[0] == '\0')
        return ex->target_desc;
    n = strlen(ex->target_desc);
    snprintf(ex->target_desc + n, sizeof ex->target_desc - n,
             strchr(ex->proxy_host, ':') ? " via [%s]:%u" : " via %s:%u",
             ex->proxy_host, ex->proxy_port);
    return ex->target_desc;
}

/* Appends len bytes to out, counting them among the client's queued
 * replies. The count moves where bytes are added to out (here and in
 * exchange_on_data) and where they leave it (session_flush, and
 * exchange_release): a callback on the buffer, run at every change,
 * cost more per request than that. */
static void
exchange_out_add(struct exchange *ex, const void *data, size_t len)
{
    if (evbuffer_add(ex->out, data, len) == 0)
        session_replies_held(ex->session, (ssize_t)len);
}

/* Frees a spare exchange: its buffers are empty. */
static void
exchange_spare_drop(void *item)
{
    struct exchange *ex = item;

    evbuffer_free(ex->body);
    evbuffer_free(ex->out);
    free(ex);
}

/* Freed exchanges kept for the next ones, their two buffers (empty) still
 * set up: a request then costs no calloc of the
 * exchange nor the five allocations of its buffers. As many as requests
 * in flight (a few hundred bytes each), until the next trim (memory.c). */
MEMORY_SPARES(exchange_spares, 1024, exchange_spare_drop);

/* A spare exchange, wiped but for its buffers and its message; NULL if
 * none. */
static struct exchange *
exchange_reuse(void)
{
    struct exchange *ex = memory_spare_take(&exchange_spares);
    struct evbuffer *out, *body;

    if (ex == NULL)
        return NULL;
    out = ex->out;
    body = ex->body;
    /* Wiped but for the buffers at its end: a string's first byte says
     * it is empty, and the rest (1 KiB, cache lines of a struct that has
     * gone cold while hundreds of others were in flight) is only read
     * after it is written; and but for the message, which the caller
     * sets (exchange_new_request copies it in, exchange_new_reply
     * clears it). */
    memset(ex, 0, offsetof(struct exchange, m));
    memset((char *)&ex->m + sizeof ex->m, 0,
           offsetof(struct exchange, target_desc) -
               offsetof(struct exchange, m) - sizeof ex->m);
    ex->target_desc[0] = '\0';
    ex->proxy_host[0] = '\0';
    ex->out = out;
    ex->body = body;
    return ex;
}

static struct exchange *
exchange_alloc(struct session *s, json_t *id)
{
    struct exchange *ex = exchange_reuse();

    if (ex == NULL) {
        ex = calloc(1, sizeof *ex);
        if (ex == NULL)
            return NULL;
        ex->session = s;
        ex->out = evbuffer_new();
        ex->body = evbuffer_new();
        if (ex->out == NULL || ex->body == NULL) {
            exchange_free(ex);
            return NULL;
        }
    }
    ex->session = s;
    ex->id = json_incref(id);
    return ex;
}

/* Keeps ex for reuse when its buffers are empty and there is room;
 * otherwise frees the buffers and ex. */
static void
exchange_release(struct exchange *ex)
{
    bool empty = ex->out != NULL && ex->body != NULL &&
                 evbuffer_get_length(ex->out) == 0 &&
                 evbuffer_get_length(ex->body) == 0;

    if (empty && memory_spare_keep(&exchange_spares, ex))
        return;
    if (ex->body != NULL) {
        session_body_held(ex->session, -(ssize_t)evbuffer_get_length(ex->body));
        evbuffer_free(ex->body);
    }
    if (ex->out != NULL) {
        session_replies_held(ex->session,
                             -(ssize_t)evbuffer_get_length(ex->out));
        evbuffer_free(ex->out);
    }
    free(ex);
}

void
exchange_spares_free(void)
{
    memory_spares_drop(&exchange_spares);
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
        exchange_out_add(ex, line, len);
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
    memset(&ex->m, 0, sizeof ex->m); /* a reply slot has no message */
    ex->state = EXCHANGE_DONE;
    exchange_reply(ex, reply);
    return ex;
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
    if (codec_request_field(req, "Idempotency-Key") != NULL)
        return true;
    for (size_t i = 0; i < sizeof idempotent / sizeof *idempotent; i++)
        if (strcmp(req->method, idempotent[i]) == 0)
            return true;
    return false;
}

/* Readies the request for the codec; on a bad method, target or header
 * the exchange fails before anything is leased, so nothing malformed is
 * ever sent. */
static int
exchange_format_head(struct exchange *ex)
{
    char err[256];
    int rc = codec_prepare(&ex->creq, &ex->m.req, ex->head_buf,
                           sizeof ex->head_buf, err, sizeof err);

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
    size_t nheaders = 0;
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
    ex->replayable = exchange_is_replayable(req);
    ex->body_retained = ex->replayable;

    if (exchange_route(ex) == 0)
        exchange_format_head(ex);
    return ex;
}

/* Seconds of silence from the origin before a timeout, 0: none. A
 * request's own "read_timeout" (0: none) or "timeout" is kept within
 * max_read_timeout when that is set. */
static double
exchange_read_timeout(const struct exchange *ex)
{
    const struct wire_request *req = &ex->m.req;
    double ceiling = exchange_cfg(ex)->max_read_timeout, t;

    if (!req->has_read_timeout && !(req->timeout > 0))
        return exchange_cfg(ex)->read_timeout;
    t = req->has_read_timeout ? req->read_timeout : req->timeout;
    if (ceiling > 0 && (t <= 0 || t > ceiling))
        t = ceiling;
    return t;
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

/* Sends what the client has sent of the body so far, as far as the
 * stream's send window allows; then the body's end. The codec refuses a
 * byte past the length the head announced and an end short of it, so
 * the origin never reads a body that differs from the head. A piece that
 * cannot be queued whole (no memory) would leave the framing short: the
 * exchange fails and the connection is dropped. */
static void
exchange_pump_body(struct exchange *ex)
{
    size_t unsent, n, room, sent;
    ssize_t moved = -1;
    int rc = 0;

    if (ex->state != EXCHANGE_ACTIVE || ex->send != EXCHANGE_SEND_BODY)
        return;
    room = codec_send_room(ex->stream);
    sent = (size_t)codec_body_sent(ex->stream);
    unsent = evbuffer_get_length(ex->body) - (ex->body_retained ? sent : 0);
    n = unsent < room ? unsent : room;
    if (n > 0) {
        rc = codec_send_data(ex->stream, ex->body, ex->body_retained ? sent : 0,
                             n, ex->body_retained, &moved);
        if (moved >= 0) {
            session_body_held(ex->session, -moved);
            session_resume_reading(ex->session);
        }
    }
    if (rc == 0 && ex->body_complete && n == unsent &&
        (rc = codec_send_end(ex->stream)) == 0)
        ex->send = EXCHANGE_SEND_DONE;
    if (rc < 0)
        exchange_fail(ex, rc, "%s: %s", exchange_desc(ex),
                      codec_errmsg(ex->stream));
}

void
exchange_add_body(struct exchange *ex, struct evbuffer *src, size_t n)
{
    if (ex->state == EXCHANGE_DONE || ex->send == EXCHANGE_SEND_REFUSED) {
        /* The response (or an error) came first; the rest of the body has
         * nowhere to go. */
        evbuffer_drain(src, n);
        return;
    }
    if (ex->creq.length >= 0 &&
        ex->body_received + n > (uint64_t)ex->creq.length) {
        /* Refused at once rather than held: the writer would never let
         * the server have more than the head announced. */
        evbuffer_drain(src, n);
        exchange_fail(ex, HCONN_EBODY_LENGTH,
                      "the streamed body runs past its declared length of "
                      "%lld bytes",
                      (long long)ex->creq.length);
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
    if (ex->state == EXCHANGE_DONE || ex->send == EXCHANGE_SEND_REFUSED)
        return;
    if (ex->creq.length >= 0 &&
        ex->body_received != (uint64_t)ex->creq.length) {
        exchange_fail(ex, HCONN_EBODY_LENGTH,
                      "the streamed body ended after %llu bytes of the %lld "
                      "declared",
                      (unsigned long long)ex->body_received,
                      (long long)ex->creq.length);
        return;
    }
    ex->body_complete = true;
    exchange_pump_body(ex);
}

/* Room on the stack for a reply line; longer ones (many or long header
 * fields) move to the heap. */
#define EXCHANGE_LINE_STORAGE 2048

/* The body may go: the origin sent 100 Continue, or expect_timeout
 * passed without an answer (RFC 9110 §10.1.1: a client need not wait
 * for ever). The client hears "continue" and sends its data frames. */
static void
exchange_go_ahead(struct exchange *ex)
{
    ex->send = EXCHANGE_SEND_BODY;
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
              ex->session->id, exchange_desc(ex),
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
    ex->send = EXCHANGE_SEND_EXPECTING;
    tv = timeval_of(exchange_cfg(ex)->expect_timeout);
    evtimer_add(ex->expect_timer, &tv);
}

static const struct codec_events exchange_codec_events;

/* The connection is ours: open a stream on it and send the request. */
static void
exchange_attach(struct exchange *ex, struct upstream *up)
{
    struct codec_options opt = {
        .read_timeout = exchange_read_timeout(ex),
        .window = exchange_cfg(ex)->stream_buffer_bytes,
        .max_head_bytes = exchange_cfg(ex)->max_response_head_bytes,
    };

    ex->up = up;
    ex->state = EXCHANGE_ACTIVE;
    ex->reused = pool_requests(up) > 0;
    /* An inline body is held anyway: kept until the response begins, it
     * lets a request the origin refused unprocessed go again whole. */
    if (ex->m.req.body == WIRE_BODY_INLINE && codec_can_refuse(up))
        ex->body_retained = true;
    if (ex->reused)
        ex->session->ustats->reuse_hits++;
    else
        ex->session->ustats->reuse_misses++;
    ex->send = EXCHANGE_SEND_BODY;
    ex->resp_received = 0;
    ex->resp_expected = -1;
    log_debug("client %lu: %s on upstream %lu (%s)", ex->session->id,
              exchange_desc(ex), upstream_id(up),
              ex->reused ? "reused" : "new");

    ex->stream = codec_open(up, &ex->creq, &opt, &exchange_codec_events, ex);
    if (ex->stream == NULL) {
        ex->up = NULL;
        exchange_fail(ex, HCONN_ENO_MEMORY,
                      "%s: out of memory opening a stream", exchange_desc(ex));
        return;
    }
    if (ex->m.req.body == WIRE_BODY_NONE)
        ex->send = EXCHANGE_SEND_DONE;
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
                  exchange_desc(ex), exchange_cfg(ex)->request_timeout);
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
    tv = timeval_of(exchange_cfg(ex)->request_timeout);
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

/* What the request may speak to its origin (PROTOCOL.md 3.6): part of
 * the pool key. HTTP/2 carries origin-form targets (and "*") only, so an
 * absolute-form one, for a forward proxy, keeps HTTP/1.1. 0, or
 * HCONN_EUNSUPPORTED with why set. */
static int
exchange_http_proto(const struct exchange *ex, enum pool_proto *proto,
                    char *why, size_t len)
{
    const struct wire_request *req = &ex->m.req;
    const struct config *cfg = exchange_cfg(ex);
    bool origin_form = req->target[0] == '/' || strcmp(req->target, "*") == 0;

    if (req->http_version == WIRE_HTTP_2) {
        if (!cfg->http2) {
            snprintf(why, len, "HTTP/2 is turned off (http2: false)");
            return HCONN_EUNSUPPORTED;
        }
        if (!origin_form) {
            snprintf(why, len,
                     "HTTP/2 (http_version \"2\") needs an origin-form "
                     "target (\"/...\"), not \"%.200s\"",
                     req->target);
            return HCONN_EUNSUPPORTED;
        }
        *proto = POOL_PROTO_H2;
    } else if (req->http_version == WIRE_HTTP_1_1 || !origin_form) {
        *proto = POOL_PROTO_H1;
    } else if (req->tls) {
        *proto = cfg->http2 ? POOL_PROTO_AUTO : POOL_PROTO_H1;
    } else {
        *proto = cfg->http2 && config_is_h2c_origin(cfg, req->host, req->port)
                     ? POOL_PROTO_H2
                     : POOL_PROTO_H1;
    }
    return 0;
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
    if ((rc = exchange_http_proto(ex, &target.proto, why, sizeof why)) < 0) {
        exchange_fail(ex, rc, "%s", why);
        return;
    }
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
                      exchange_desc(ex));
    else if (up != NULL)
        exchange_attach(ex, up);
}

/* The most connections a request refused unprocessed is tried on. */
#define EXCHANGE_MAX_REFUSED_ATTEMPTS 4

/* A reused connection died before answering: send the request again on a
 * fresh one (RFC 9110 §9.2.2), once. A request the origin said it did not
 * process (HTTP/2 REFUSED_STREAM, a stream above a GOAWAY's last id) goes
 * again whatever its method (RFC 9113 §8.7), when its body is still held. */
static bool
exchange_retry(struct exchange *ex, const struct codec_error *e)
{
    /* REFUSED_STREAM is retried once; a GOAWAY's refusal may meet
     * another GOAWAY on the next connection. */
    unsigned most =
        e->code == HCONN_ESTREAM_RESET ? 2 : EXCHANGE_MAX_REFUSED_ATTEMPTS;
    bool refused = e->refused && ex->attempts < most &&
                   (ex->m.req.body == WIRE_BODY_NONE || ex->body_retained);

    if (ex->reply != EXCHANGE_REPLY_NONE)
        return false;
    if (!refused &&
        (!ex->reused || !ex->replayable || ex->attempts > 1 || !e->unprocessed))
        return false;
    log_info("client %lu: %s: %s upstream %lu; retrying on a new connection",
             ex->session->id, exchange_desc(ex),
             refused ? "not processed by" : "no answer on reused",
             upstream_id(ex->up));
    ex->session->srv->stats.retries++;
    ex->session->ustats->retries++;
    codec_abort(ex->stream);
    ex->stream = NULL;
    ex->up = NULL;
    ex->state = EXCHANGE_LEASING;
    exchange_start(ex);
    return true;
}

/* The client's window is full: stop reading the stream until it catches
 * up. */
static void
exchange_check_window(struct exchange *ex)
{
    if (ex->state == EXCHANGE_ACTIVE &&
        evbuffer_get_length(ex->out) >= exchange_cfg(ex)->stream_buffer_bytes) {
        codec_pause(ex->stream);
    }
}

/* An interim response: 100 lets an expecting body go. */
static void
exchange_on_interim(void *arg, int status)
{
    struct exchange *ex = arg;

    log_debug("client %lu: %s: interim %d", ex->session->id, exchange_desc(ex),
              status);
    if (status == 100 && ex->send == EXCHANGE_SEND_EXPECTING)
        exchange_go_ahead(ex);
    exchange_check_window(ex);
}

/* The final response head: the head reply. */
static void
exchange_on_head(void *arg, const struct codec_head *h)
{
    struct exchange *ex = arg;
    const struct upstream_answer *a = upstream_proxy_answer(ex->up);
    char storage[EXCHANGE_LINE_STORAGE];
    struct wire_line line;
    json_t *proxy_response = NULL;
    int rc;

    if (ex->send == EXCHANGE_SEND_EXPECTING) {
        /* A final answer instead of 100: the body never goes, and since
         * the head announced one the connection is not kept (the request
         * is never all sent). */
        ex->send = EXCHANGE_SEND_REFUSED;
        evtimer_del(ex->expect_timer);
        exchange_drop_body(ex);
    }
    wire_line_init(&line, storage, sizeof storage);
    /* proxy_response: http.client's get_proxy_response_headers(). */
    if (a != NULL)
        proxy_response = fields_answer_to_json(
            a->status, a->reason, a->reason_len, a->fields, a->nfields);
    rc =
        a != NULL && proxy_response == NULL
            ? HCONN_ENO_MEMORY
            : wire_line_head(&line, ex->id, h->status, h->reason, h->reason_len,
                             h->version, h->headers, h->nheaders, h->length,
                             ex->reused, proxy_response);
    json_decref(proxy_response);
    if (rc < 0) {
        exchange_fail(ex, rc, "cannot encode the response head");
    } else if (line.len > WIRE_MAX_LINE) {
        /* 100 fields of 64 KiB each fit the HTTP limits but not one
         * protocol line: the client could not read it. */
        exchange_fail(ex, HCONN_ELINE_TOO_LONG,
                      "%s: response head encodes to %zu bytes, over the "
                      "protocol's %d-byte line limit",
                      upstream_peer(ex->up), line.len, WIRE_MAX_LINE);
    } else {
        exchange_out_add(ex, line.buf, line.len);
        ex->reply = EXCHANGE_REPLY_HEAD;
        session_schedule_flush(ex->session);
    }
    wire_line_free(&line);
    if (ex->state != EXCHANGE_ACTIVE)
        return;
    if (ex->send == EXCHANGE_SEND_DONE)
        exchange_drop_body(ex);
    exchange_check_window(ex);
}

/* Relays len body bytes from the front of in to the client's reply
 * buffer. */
static bool
exchange_on_data(void *arg, struct evbuffer *in, size_t len)
{
    struct exchange *ex = arg;
    int moved;

    if (!ex->m.req.raw) {
        char storage[EXCHANGE_LINE_STORAGE];
        struct wire_line line;
        int rc;

        wire_line_init(&line, storage, sizeof storage);
        rc = wire_line_data(&line, ex->id, len);
        exchange_reply_line(ex, &line, rc);
        if (rc < 0)
            return false;
    }
    moved = evbuffer_remove_buffer(in, ex->out, len);
    if (moved > 0)
        session_replies_held(ex->session, moved);
    session_schedule_flush(ex->session);
    exchange_check_window(ex);
    return true;
}

/* Splicing may write once nothing is queued for the client ahead of the
 * body: this exchange heads the queue and its replies so far, and every
 * earlier one, have left the daemon. What its own output still holds
 * needs a flush: the session writes it a window at a time, and with the
 * socket lent, no upstream read will ask for the next. */
static bool
exchange_splice_clear(void *arg)
{
    struct exchange *ex = arg;

    if (TAILQ_FIRST(&ex->session->queue) != ex)
        return false;
    if (evbuffer_get_length(ex->out) > 0) {
        session_schedule_flush(ex->session);
        return false;
    }
    return evbuffer_get_length(bufferevent_get_output(ex->session->bev)) == 0;
}

/* A spliced data frame's header line. */
static size_t
exchange_splice_frame(void *arg, size_t n, char *buf, size_t cap)
{
    struct exchange *ex = arg;
    struct wire_line line;
    size_t len = 0;

    wire_line_init(&line, buf, cap);
    if (wire_line_data(&line, ex->id, n) == 0 && !line.heap)
        len = line.len;
    wire_line_free(&line);
    return len;
}

/* Stops a pump, if any, giving back its charge but for what the client's
 * socket still holds past its usual size. Returns true when
 * it had sent part of a frame: the client's stream can then take nothing
 * more. */
static bool
exchange_splice_stop(struct exchange *ex)
{
    bool cut;

    if (ex->pump == NULL)
        return false;
    cut = splice_frame_open(ex->pump);
    session_charge(ex->session, -(long long)splice_held_bytes(ex->pump));
    splice_free(ex->pump);
    ex->pump = NULL;
    /* A client that has not read what the widened socket took still
     * holds it: the charge stays until it is read. */
    session_settle_socket_room(ex->session);
    return cut;
}

/* The pump ended: the codec counts what it moved and reads on (the end
 * of the response, or incomplete_read with exact counts), unless the
 * client or the origin's silence ended the exchange. */
static void
exchange_splice_done(void *arg, uint64_t moved, enum splice_outcome outcome,
                     int err)
{
    struct exchange *ex = arg;

    exchange_splice_stop(ex);
    log_debug("client %lu: %s: %llu body bytes spliced%s", ex->session->id,
              exchange_desc(ex), (unsigned long long)moved,
              outcome == SPLICE_DONE ? "" : ", then the body was cut short");
    switch (outcome) {
    case SPLICE_DONE:
    case SPLICE_SRC_EOF:
        codec_body_taken(ex->stream, moved, outcome == SPLICE_SRC_EOF);
        break;
    case SPLICE_SRC_TIMEOUT:
        exchange_fail(ex, HCONN_ETIMEOUT, "no response bytes from %s for %g s",
                      upstream_peer(ex->up), exchange_read_timeout(ex));
        break;
    case SPLICE_DST_FAILED:
        /* A frame may be cut: nothing more can be framed for the client. */
        ex->abort_session = true;
        exchange_fail(ex, HCONN_ECONNECTION_CLOSED,
                      "writing the body to the client failed after %llu "
                      "bytes: %s",
                      (unsigned long long)moved, strerror(err));
        break;
    }
}

/* The rest of a large Content-Length body may go from the origin's socket
 * to the client's without passing through user space, when that is safe:
 * the exchange heads the client's queue (a later reply never overtakes
 * an earlier one; the pump still waits for what is queued ahead of it to
 * go out), a data frame's header fits the pump's buffer, and the client's
 * uid can be charged the pipe, as it would be the bytes the copying path
 * holds (and, when it can, the room the pump adds to its socket). */
static bool
exchange_on_body_fd(void *arg, int fd, uint64_t left, double read_timeout)
{
    struct exchange *ex = arg;
    struct splice_sink sink = {
        .fd = bufferevent_getfd(ex->session->bev),
        .framed = !ex->m.req.raw,
        .clear = exchange_splice_clear,
        .frame = exchange_splice_frame,
        .arg = ex,
    };
    size_t window = exchange_cfg(ex)->stream_buffer_bytes;
    char header[SPLICE_HEADER_MAX], why[256];

    if (!splice_enabled() || left < SPLICE_MIN_BYTES || ex->pump != NULL ||
        ex->state != EXCHANGE_ACTIVE || ex->reply != EXCHANGE_REPLY_HEAD ||
        TAILQ_FIRST(&ex->session->queue) != ex || ex->session->aborting ||
        (sink.framed &&
         exchange_splice_frame(ex, left, header, sizeof header) == 0))
        return false;
    /* A share too small for the socket's room still splices through the
     * pipe alone, which costs what copying would hold. */
    sink.widen = budget_check(ex->session->srv, ex->session->uid,
                              splice_cost_bound(window), why, sizeof why) == 0;
    if (!sink.widen && budget_check(ex->session->srv, ex->session->uid, window,
                                    why, sizeof why) < 0)
        return false;
    ex->pump = splice_start(ex->session->srv->base, fd, left, &sink, window,
                            read_timeout, exchange_splice_done, ex);
    if (ex->pump == NULL)
        return false;
    session_charge(ex->session, (long long)splice_held_bytes(ex->pump));
    return true;
}

/* The response is complete: the end reply, then the stream is over (the
 * codec pools its connection when end->keep). */
static void
exchange_on_end(void *arg, const struct codec_end *end)
{
    struct exchange *ex = arg;

    if (!ex->m.req.raw) {
        char storage[EXCHANGE_LINE_STORAGE];
        struct wire_line line;
        int rc;

        wire_line_init(&line, storage, sizeof storage);
        rc = wire_line_end(&line, ex->id, end->trailers, end->ntrailers);
        if (rc == 0 && line.len > WIRE_MAX_LINE) {
            /* As for heads: the client could not read the line, and would
             * drop the connection with every request pipelined on it. */
            size_t len = line.len;

            wire_line_free(&line);
            exchange_fail(ex, HCONN_ELINE_TOO_LONG,
                          "%s: response trailers encode to %zu bytes, over "
                          "the protocol's %d-byte line limit",
                          upstream_peer(ex->up), len, WIRE_MAX_LINE);
            return;
        }
        exchange_reply_line(ex, &line, rc);
    } else {
        session_schedule_flush(ex->session);
    }
    ex->state = EXCHANGE_DONE;
    ex->reply = EXCHANGE_REPLY_END;
    ex->stream = NULL;
    ex->up = NULL;
    exchange_drop_body(ex);
    ex->session->srv->stats.responses++;
    ex->session->ustats->responses++;
    log_info("client %lu (uid %ld, gid %ld, pid %ld): %s -> %d, %llu bytes, "
             "%s connection%s",
             ex->session->id, (long)ex->session->uid, (long)ex->session->gid,
             (long)ex->session->pid, exchange_desc(ex), end->status,
             (unsigned long long)end->body_received,
             ex->reused ? "reused" : "new", end->keep ? "" : ", not kept");
}

/* The stream failed: once more on a fresh connection when that is safe,
 * else the error reply. */
static void
exchange_on_error(void *arg, const struct codec_error *e)
{
    struct exchange *ex = arg;

    if (exchange_retry(ex, e))
        return;
    ex->resp_received = e->body_received;
    ex->resp_expected = e->body_expected;
    exchange_fail(ex, e->code, "%s", e->message);
}

/* The connection has room for more body. */
static void
exchange_on_writable(void *arg)
{
    exchange_pump_body(arg);
}

static const struct codec_events exchange_codec_events = {
    .interim = exchange_on_interim,
    .head = exchange_on_head,
    .data = exchange_on_data,
    .end = exchange_on_end,
    .error = exchange_on_error,
    .writable = exchange_on_writable,
    .body_fd = exchange_on_body_fd,
};

void
exchange_resume(struct exchange *ex)
{
    if (ex->state != EXCHANGE_ACTIVE ||
        evbuffer_get_length(ex->out) >= exchange_cfg(ex)->stream_buffer_bytes)
        return;
    codec_resume(ex->stream);
}

/* Adds a failed tunnel's proxy answer to its error reply, without the
 * header fields when they would take the line past the protocol's limit
 * (a proxy may send 100 fields of 64 KiB each). */
static void
exchange_add_detail(json_t *reply, const struct upstream_answer *a)
{
    json_t *detail = fields_answer_to_json(a->status, a->reason, a->reason_len,
                                           a->fields, a->nfields);
    char *line;
    size_t len = 0;

    json_object_update(reply, detail);
    json_decref(detail);
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

    /* Cut mid-frame, the client's stream can take no error line. */
    if (exchange_splice_stop(ex))
        ex->abort_session = true;
    if (ex->stream != NULL) {
        codec_abort(ex->stream);
        ex->stream = NULL;
        ex->up = NULL;
    }
    pool_cancel(&ex->waiter);
    ex->state = EXCHANGE_DONE;
    if (ex->expect_timer != NULL)
        evtimer_del(ex->expect_timer);
    exchange_drop_body(ex);
    ex->session->srv->stats.errors[-code]++;
    ex->session->ustats->errors[-code]++;
    log_info("client %lu (uid %ld, gid %ld, pid %ld): %s -> %s: %s",
             ex->session->id, (long)ex->session->uid, (long)ex->session->gid,
             (long)ex->session->pid, exchange_desc(ex), hconn_error_name(code),
             message);

    if ((ex->m.req.raw && ex->reply == EXCHANGE_REPLY_HEAD) ||
        ex->abort_session) {
        ex->reply = EXCHANGE_REPLY_FAILED;
        /* The body is unframed (or a spliced frame was cut): no room for
         * an error line. Closing early leaves the reader short of the
         * head's "length" (or of the frame's). */
        ex->abort_session = true;
        session_schedule_flush(ex->session);
        return;
    }
    ex->reply = EXCHANGE_REPLY_FAILED;
    reply = wire_reply_error(ex->id, code, message);
    if (reply != NULL && ex->waiter.detail != NULL) /* tunnel_failed */
        exchange_add_detail(reply, ex->waiter.detail);
    if (reply != NULL && code == HCONN_EINCOMPLETE_READ) {
        json_object_set_new(reply, "received",
                            json_integer((json_int_t)ex->resp_received));
        if (ex->resp_expected >= 0)
            json_object_set_new(reply, "expected",
                                json_integer(ex->resp_expected));
    }
    exchange_reply(ex, reply);
}

void
exchange_free(struct exchange *ex)
{
    struct wire_client_msg *m;

    if (ex == NULL)
        return;
    exchange_splice_stop(ex);
    if (ex->stream != NULL && ex->state == EXCHANGE_ACTIVE &&
        ex->send == EXCHANGE_SEND_DONE) {
        /* The client left mid-response: the rest may be read into
         * nowhere to keep the connection (drain.c decides). */
        drain_start(ex->session->srv, ex->stream, ex->session->uid,
                    exchange_read_timeout(ex));
        ex->stream = NULL;
        ex->up = NULL;
    } else if (ex->stream != NULL) {
        /* Mid-request: unknown state, never pooled. */
        codec_abort(ex->stream);
        ex->stream = NULL;
        ex->up = NULL;
    }
    pool_cancel(&ex->waiter);
    session_charge(ex->session, -(long long)ex->charged);
    m = &ex->m;
    wire_client_msg_clear(m);
    json_decref(ex->msg);
    json_decref(ex->id);
    free(ex->waiter.detail);
    if (ex->expect_timer != NULL)
        event_free(ex->expect_timer);
    if (ex->request_timer != NULL)
        event_free(ex->request_timer);
    codec_request_clear(&ex->creq);
    free(ex->connect_head);
    tlsfiles_free(ex->tls_material);
    pathcheck_cancel(ex->pathcheck);
    exchange_release(ex);
}

void
exchange_link(struct exchange_list *queue, struct exchange *ex)
{
    TAILQ_INSERT_TAIL(queue, ex, entry);
}

void
exchange_unlink(struct exchange_list *queue, struct exchange *ex)
{
    TAILQ_REMOVE(queue, ex, entry);
}

struct exchange *
exchange_next(const struct exchange *ex)
{
    return TAILQ_NEXT(ex, entry);
}

bool
exchange_is_request(const struct exchange *ex)
{
    return ex->m.req.method != NULL;
}

bool
exchange_is_done(const struct exchange *ex)
{
    return ex->state == EXCHANGE_DONE;
}

bool
exchange_takes_replies(const struct exchange *ex)
{
    return ex->m.req.method == NULL && ex->state == EXCHANGE_DONE &&
           !ex->abort_session;
}

enum wire_body
exchange_body_kind(const struct exchange *ex)
{
    return ex->m.req.body;
}

bool
exchange_is_raw(const struct exchange *ex)
{
    return ex->m.req.raw;
}

bool
exchange_aborts_session(const struct exchange *ex)
{
    return ex->abort_session;
}

void
exchange_set_charge(struct exchange *ex, size_t charged)
{
    ex->charged = charged;
}

struct evbuffer *
exchange_out(struct exchange *ex)
{
    return ex->out;
}

/* Failing the request drops its upstream connection, so the origin sees
 * the request cut off rather than waiting out read_timeout, and never a
 * short body passed off as complete. */
void
exchange_input_ended(struct exchange *ex)
{
    if (ex->m.req.method == NULL || ex->m.req.body == WIRE_BODY_NONE ||
        ex->body_complete || ex->send == EXCHANGE_SEND_REFUSED)
        return;
    exchange_fail(ex, HCONN_EBAD_MESSAGE,
                  "the client's input ended inside the request body, "
                  "after %llu bytes",
                  (unsigned long long)ex->body_received);
}
