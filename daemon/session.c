/*
 * session.c — one client connection.
 *
 * Input: message lines (wire codec), each possibly followed by a payload
 * that goes into an exchange's body or is skipped. Every request, and
 * every reply that is not part of a request (op replies, errors about bad
 * lines), takes a slot in the queue; output is the queue's slots written
 * strictly in order, the head slot first.
 *
 * Backpressure both ways: the client's output never holds much more than
 * stream_buffer_bytes (exchanges stop reading upstream when their own
 * buffer fills), and reading the client pauses while the request bodies it
 * sent are held beyond client_body_buffer_bytes, or a streamed body is
 * a window ahead of its upstream.
 *
 * Exchanges are freed only here (flush, free), from the loop, never from
 * inside an exchange's own call chain.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "budget.h"
#include "config.h"
#include "exchange.h"
#include "hconn-build.h"
#include "hconn_error.h"
#include "localaddr.h"
#include "log.h"
#include "memory.h"
#include "pathcheck.h"
#include "policy.h"
#include "pool.h"
#include "resolve.h"
#include "server.h"
#include "session.h"
#include "sockread.h"
#include "tls.h"
#include "tlsfiles.h"
#include "uidstats.h"
#include "wire_fast.h"

static unsigned long session_next_id = 1;

static void session_read(struct session *s);
static void session_stop_reading(struct session *s);
static bool session_account_input(struct session *s, struct evbuffer *in,
                                  bool check);
static void session_event_cb(struct bufferevent *bev, short what, void *arg);

static const struct config *
session_cfg(const struct session *s)
{
    return s->srv->cfg;
}

/* Appends a slot to the queue. It asks for no flush: a slot has nothing
 * to write until a reply is queued in it, and queueing one asks (a flush
 * per request cost a loop turn that found nothing to do). */
static void
session_enqueue(struct session *s, struct exchange *ex)
{
    if (ex == NULL) {
        log_error("client %lu: out of memory; closing", s->id);
        s->closing = true;
        session_schedule_flush(s);
        return;
    }
    exchange_link(&s->queue, ex);
}

/* Queues a ready reply. Consecutive ones share one slot: a client that
 * sends many lines and reads nothing costs the replies' bytes, not a
 * slot each. */
static void
session_reply(struct session *s, json_t *reply)
{
    struct exchange *last = TAILQ_LAST(&s->queue, exchange_list);

    if (last != NULL && exchange_takes_replies(last)) {
        exchange_append_reply(last, reply);
        return;
    }
    session_enqueue(s, exchange_new_reply(s, reply));
}

static void
session_reply_error(struct session *s, json_t *id, int code,
                    const char *message)
{
    s->srv->stats.errors[-code]++;
    s->ustats->errors[-code]++;
    log_info("client %lu: %s: %s", s->id, hconn_error_name(code), message);
    session_reply(s, wire_reply_error(id, code, message));
}

/* Skips n payload bytes that belong to a rejected message. */
static void
session_skip_payload(struct session *s, uint64_t n)
{
    s->payload_to = NULL;
    s->payload_left = n;
    s->payload_ends_body = false;
}

/*
 * A streamed request body as the client addresses it. Frames carry the
 * request's id, and ids may repeat, so they go to the oldest stream under
 * that id until the client's end frame closes it. A stream outlives its
 * request (answered early, refused, failed, or never accepted): the
 * client's frames for it may already be under way, and they must never
 * reach a later request that reuses the id.
 */
struct session_stream {
    json_t *id;
    struct exchange *ex; /* NULL once the request is over: frames dropped */
    TAILQ_ENTRY(session_stream) entry;
};

static void
session_stream_close(struct session *s, struct session_stream *st)
{
    TAILQ_REMOVE(&s->streams, st, entry);
    if (st->ex == NULL)
        s->ndead_streams--;
    json_decref(st->id);
    free(st);
}

/* A client that never ends its dead streams does not make the list grow
 * past its request limit: the oldest dead one goes first. */
static void
session_stream_bound(struct session *s)
{
    struct session_stream *st, *next;

    TAILQ_FOREACH_SAFE(st, &s->streams, entry, next)
    {
        if (s->ndead_streams <= session_cfg(s)->max_requests_per_client)
            break;
        if (st->ex == NULL)
            session_stream_close(s, st);
    }
}

/* Opens the stream of a request with "body": "stream"; ex NULL when the
 * request was refused before it became an exchange. */
static void
session_stream_open(struct session *s, json_t *id, struct exchange *ex)
{
    struct session_stream *st = calloc(1, sizeof *st);

    if (st == NULL) {
        log_error("client %lu: out of memory; closing", s->id);
        s->closing = true;
        session_schedule_flush(s);
        return;
    }
    st->id = json_incref(id);
    st->ex = ex;
    TAILQ_INSERT_TAIL(&s->streams, st, entry);
    if (ex == NULL) {
        s->ndead_streams++;
        session_stream_bound(s);
    }
}

/* The oldest stream the client has not ended under id, or NULL. */
static struct session_stream *
session_stream_find(struct session *s, json_t *id)
{
    struct session_stream *st;

    if (id == NULL)
        return NULL;
    TAILQ_FOREACH(st, &s->streams, entry)
    if (json_equal(st->id, id))
        return st;
    return NULL;
}

/* ex is going away: its stream, if still open, drops further frames. */
static void
session_stream_detach(struct session *s, struct exchange *ex)
{
    struct session_stream *st;

    TAILQ_FOREACH(st, &s->streams, entry)
    {
        if (st->ex == ex) {
            st->ex = NULL;
            s->ndead_streams++;
            session_stream_bound(s);
            return;
        }
    }
}

/* True while some stream still feeds a request. */
static bool
session_has_live_stream(const struct session *s)
{
    const struct session_stream *st;

    TAILQ_FOREACH(st, &s->streams, entry)
    if (st->ex != NULL)
        return true;
    return false;
}

/* After a raw request only its body is read (PROTOCOL.md 6). */
static bool
session_wants_input(const struct session *s)
{
    return !s->raw || s->payload_left > 0 || session_has_live_stream(s);
}

/* {"op":"stats"}: root sees every figure and origin; any other client
 * only its own uid's (its counters, the origins its requests used, its
 * clients), never another user's origins, proxies or TLS material. */
/* Every reply fits the protocol's line limit: with tens of thousands of
 * pooled origins (distinct TLS settings, say) the per-origin figures would
 * not, and they go, leaving their count. */
static void
session_fit_stats(json_t *reply)
{
    json_t *pool = json_object_get(reply, "pool");
    size_t len = 0;
    char *line = reply != NULL ? wire_encode(reply, &len) : NULL;

    free(line);
    if (line == NULL || len <= WIRE_MAX_LINE || pool == NULL)
        return;
    json_object_set_new(pool, "origins_omitted",
                        json_integer((json_int_t)json_object_size(
                            json_object_get(pool, "origins"))));
    json_object_set_new(pool, "origins", json_object());
}

/* The origins of a stats reply, and their HTTP/2 figures summed. */
struct session_stats_acc {
    json_t *origins;
    size_t h2, streams;
};

/* Adds one origin's figures to the stats reply's "origins". */
static void
session_stats_origin(void *arg, const struct pool_origin_stats *o)
{
    struct session_stats_acc *acc = arg;

    acc->h2 += o->h2;
    acc->streams += o->streams;
    json_object_set_new(
        acc->origins, o->label,
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "idle", (json_int_t)o->idle,
                  "busy", (json_int_t)o->busy, "connecting",
                  (json_int_t)o->connecting, "waiting", (json_int_t)o->waiting,
                  "h2", (json_int_t)o->h2, "streams", (json_int_t)o->streams));
}

static json_t *
session_stats(struct session *s)
{
    struct server *srv = s->srv;
    bool all = s->uid == 0;
    struct stats *st = all ? &srv->stats : uidstats_get(srv, s->uid);
    size_t idle, open, clients = 0;
    json_t *origins = json_object();
    json_t *errors = json_object(), *reply;
    const struct session *other;
    struct session_stats_acc acc = {.origins = origins};

    pool_stats(srv->pool, all, s->uid, session_stats_origin, &acc, &open,
               &idle);
    TAILQ_FOREACH(other, &srv->sessions, entry)
    clients += all || other->uid == s->uid;
    for (int i = 1; i < HCONN_ERROR_COUNT; i++)
        if (st->errors[i] != 0)
            json_object_set_new(errors, hconn_error_name(-i),
                                json_integer((json_int_t)st->errors[i]));
    reply = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I, "
        "s:o}, s:o}",
        "op", "stats", "uptime", (json_int_t)(time(NULL) - srv->stats.started),
        "clients", (json_int_t)clients, "requests", (json_int_t)st->requests,
        "responses", (json_int_t)st->responses, "reuse_hits",
        (json_int_t)st->reuse_hits, "reuse_misses",
        (json_int_t)st->reuse_misses, "retries", (json_int_t)st->retries,
        "pool", "open", (json_int_t)open, "idle", (json_int_t)idle,
        "h2_connections", (json_int_t)acc.h2, "h2_streams",
        (json_int_t)acc.streams, "origins", origins, "errors", errors);
    if (reply != NULL) {
        /* Connections whose client left mid-response (drain.c). */
        json_t *pool = json_object_get(reply, "pool");

        json_object_set_new(pool, "drained",
                            json_integer((json_int_t)st->drained));
        json_object_set_new(pool, "drain_closed",
                            json_integer((json_int_t)st->drain_closed));
    }
    if (reply != NULL && all) {
        /* Daemon-wide figures, for root only. */
        json_object_set_new(reply, "clients_total",
                            json_integer((json_int_t)st->clients_total));
        json_object_set_new(reply, "tls",
                            json_pack("{s:I, s:I, s:I}", "handshakes",
                                      (json_int_t)st->tls_handshakes, "resumed",
                                      (json_int_t)st->tls_resumed, "contexts",
                                      (json_int_t)tls_context_count(srv->tls)));
        /* Counts only, but shared by every user's lookups. */
        json_object_set_new(reply, "dns", resolve_stats(srv->resolver));
    }
    if (!all && reply != NULL)
        json_object_set_new(reply, "uid", json_integer((json_int_t)s->uid));
    if (reply != NULL)
        json_object_set_new(reply, "held_bytes",
                            json_integer((json_int_t)st->held_bytes));
    session_fit_stats(reply);
    return reply;
}

static void
session_handle_op(struct session *s, const struct wire_client_msg *m)
{
    json_t *reply;

    if (strcmp(m->op, "hello") == 0)
        reply = json_pack("{s:s, s:i, s:s}", "op", "hello", "version",
                          WIRE_VERSION, "server", "hconnd/" HCONN_VERSION);
    else
        reply = session_stats(s);
    if (reply != NULL && m->id != NULL)
        json_object_set(reply, "id", m->id);
    session_reply(s, reply);
}

static void
session_handle_request(struct session *s, json_t *msg,
                       struct wire_client_msg *m)
{
    const struct config *cfg = session_cfg(s);
    const struct wire_request *req = &m->req;
    /* A request without an id is answered under its number. */
    json_t *seq =
        m->id == NULL ? json_integer((json_int_t)(s->next_seq + 1)) : NULL;
    json_t *id = m->id != NULL ? m->id : seq;
    uint64_t payload = m->has_data ? m->data_len : 0;
    size_t cost = budget_request_cost(req);
    struct exchange *ex;
    char message[256];

    s->next_seq++;
    s->srv->stats.requests++;
    s->ustats->requests++;
    if (s->raw) {
        /* PROTOCOL.md 6: messages after a raw request are ignored. */
        session_skip_payload(s, payload);
    } else if (s->srv->shutting_down) {
        session_reply_error(s, id, HCONN_ESHUTTING_DOWN,
                            "hconnd is shutting down; no new requests");
        session_skip_payload(s, payload);
    } else if (s->requests_in_flight >= cfg->max_requests_per_client) {
        snprintf(message, sizeof message,
                 "too many requests in flight on this connection (limit %zu)",
                 cfg->max_requests_per_client);
        session_reply_error(s, id, HCONN_ELIMIT_EXCEEDED, message);
        session_skip_payload(s, payload);
    } else if (req->body == WIRE_BODY_INLINE &&
               (uint64_t)req->length > cfg->max_inline_body_bytes) {
        snprintf(message, sizeof message,
                 "\"data\": %lld bytes exceeds the inline body limit of %zu; "
                 "use \"body\": \"stream\"",
                 (long long)req->length, cfg->max_inline_body_bytes);
        session_reply_error(s, id, HCONN_ELIMIT_EXCEEDED, message);
        session_skip_payload(s, payload);
    } else if (budget_check(s->srv, s->uid,
                            cost + (req->body == WIRE_BODY_INLINE
                                        ? (size_t)req->length
                                        : 0),
                            message, sizeof message) < 0) {
        session_reply_error(s, id, HCONN_ELIMIT_EXCEEDED, message);
        session_skip_payload(s, payload);
    } else {
        ex = exchange_new_request(s, msg, m, id);
        if (ex != NULL) {
            exchange_set_charge(ex, cost);
            session_charge(s, (long long)cost);
        }
        session_enqueue(s, ex);
        if (ex != NULL) {
            s->requests_in_flight++;
            if (exchange_is_raw(ex))
                s->raw = true;
            if (exchange_body_kind(ex) == WIRE_BODY_STREAM)
                session_stream_open(s, id, ex);
            exchange_start(ex);
            if (exchange_body_kind(ex) == WIRE_BODY_INLINE) {
                s->payload_to = ex;
                s->payload_left = payload;
                s->payload_ends_body = true;
                if (payload == 0)
                    exchange_end_body(ex);
            }
        }
        json_decref(seq);
        return;
    }
    /* Refused: frames the client already sent for it are dropped. */
    if (req->body == WIRE_BODY_STREAM && !s->raw)
        session_stream_open(s, id, NULL);
    json_decref(seq);
}

/* A request refused by the codec whose body would have come in frames
 * still owns those frames (its id was valid; see session_stream). */
static bool
session_is_refused_stream(json_t *msg, const struct wire_client_msg *m)
{
    const char *body = json_string_value(json_object_get(msg, "body"));

    return m->id != NULL && json_object_get(msg, "method") != NULL &&
           body != NULL && strcmp(body, "stream") == 0;
}

/* Acts on one message line: msg decoded, or fast already scanned (msg
 * NULL; its strings are its own, see wire_fast.h), which is used in
 * place (a copy of its 344 bytes cost more than what reads it) and
 * cleared. */
static void
session_handle(struct session *s, json_t *msg, struct wire_client_msg *fast)
{
    struct wire_client_msg parsed, *m = fast;
    struct session_stream *st;
    char err[512];
    int rc = 0;

    if (m == NULL) {
        m = &parsed;
        rc = wire_parse_client_msg(msg, m, err, sizeof err);
    }
    if (rc < 0 && s->raw) {
        if (m->has_data)
            session_skip_payload(s, m->data_len);
    } else if (rc < 0) {
        session_reply_error(s, m->id, rc, err);
        if (json_is_true(json_object_get(msg, "raw"))) {
            /* A raw client reads one reply and then waits for the close;
             * an invalid raw request ends the session too. */
            s->raw = true;
            s->closing = true;
        } else if (m->framing_lost) {
            /* Where the next message starts is unknown: stop here. */
            s->closing = true;
        } else if (m->has_data) {
            session_skip_payload(s, m->data_len);
        }
        if (!s->closing && session_is_refused_stream(msg, m))
            session_stream_open(s, m->id, NULL);
    } else if (m->kind == WIRE_MSG_REQUEST) {
        session_handle_request(s, msg, m);
    } else if (m->kind == WIRE_MSG_OP) {
        if (!s->raw)
            session_handle_op(s, m);
    } else if ((st = session_stream_find(s, m->id)) == NULL) {
        if (!s->raw) {
            snprintf(err, sizeof err,
                     "\"id\": no request with a streamed "
                     "body open under this id");
            session_reply_error(s, m->id, HCONN_EBAD_MESSAGE, err);
        }
        if (m->has_data)
            session_skip_payload(s, m->data_len);
    } else if (m->kind == WIRE_MSG_DATA) {
        /* To a request that is over, the bytes are dropped (ex NULL). */
        s->payload_to = st->ex;
        s->payload_left = m->data_len;
        s->payload_ends_body = false;
    } else {
        struct exchange *ex = st->ex;

        session_stream_close(s, st);
        if (ex != NULL)
            exchange_end_body(ex);
    }
    wire_client_msg_clear(m);
}

/* Moves payload bytes to their exchange. Returns false when reading must
 * pause (a streamed body is a window ahead of its upstream). */
static bool
session_read_payload(struct session *s, struct evbuffer *in)
{
    size_t n = evbuffer_get_length(in);
    struct exchange *ex = s->payload_to;

    if (n > s->payload_left)
        n = (size_t)s->payload_left;
    if (ex == NULL)
        evbuffer_drain(in, n);
    else
        exchange_add_body(ex, in, n);
    s->payload_left -= n;
    if (s->payload_left == 0 && ex != NULL && s->payload_ends_body)
        exchange_end_body(ex);
    if (s->payload_left == 0)
        s->payload_to = NULL;
    return ex == NULL || exchange_body_kind(ex) != WIRE_BODY_STREAM ||
           exchange_body_held(ex) < session_cfg(s)->stream_buffer_bytes;
}

/* Where the first line of in (avail bytes) ends: the offset of its LF,
 * or -1. Most lines arrive whole in the buffer's first chain, where
 * memchr finds the end for a fraction of what evbuffer_search costs; a
 * line that runs on past that chain is searched for across chains. */
static ev_ssize_t
session_find_eol(struct evbuffer *in, size_t avail,
                 struct evbuffer_iovec *first)
{
    const char *lf;

    /* Empty (as after each request's line): nothing to peek at. (Asked
     * for everything with room for one extent, evbuffer_peek fills that
     * one and says 1 whatever follows.) */
    if (avail == 0 || evbuffer_peek(in, -1, NULL, first, 1) <= 0) {
        first->iov_len = 0;
        return -1;
    }
    lf = memchr(first->iov_base, '\n', first->iov_len);
    if (lf != NULL)
        return lf - (const char *)first->iov_base;
    if (first->iov_len >= avail)
        return -1;
    return evbuffer_search(in, "\n", 1, NULL).pos;
}

/* Takes the next message line off in, if a whole one is there. Returns
 * false when more bytes are needed. */
static bool
session_read_line(struct session *s, struct evbuffer *in)
{
    struct evbuffer_iovec first;
    size_t avail = evbuffer_get_length(in), len, consumed;
    ev_ssize_t eol = session_find_eol(in, avail, &first);
    struct wire_client_msg fast;
    const char *line;
    json_t *msg;
    char err[256];
    int rc;

    if (eol >= 0)
        len = (size_t)eol + 1;
    else if (avail > 0 && (avail >= s->reader.max_line || s->reader.discarding))
        len = avail; /* let the codec report or discard the long line */
    else
        return false;
    /* A line within the first chain is read where it lies. */
    line = len <= first.iov_len
               ? (const char *)first.iov_base
               : (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
    /* A whole line of a common message skips the jansson tree; anything
     * else (and every error) takes the full path below. */
    if (eol >= 0 && !s->reader.discarding && len <= s->reader.max_line &&
        wire_fast_parse_client_msg(line, len - 1, &fast, &msg) ==
            WIRE_FAST_ACCEPTED) {
        evbuffer_drain(in, len);
        session_account_input(s, in, false);
        session_handle(s, NULL, &fast);
        json_decref(msg); /* the id fast.id borrowed */
        return true;
    }
    rc =
        wire_read_line(&s->reader, line, len, &consumed, &msg, err, sizeof err);
    evbuffer_drain(in, consumed);
    session_account_input(s, in, false); /* the message charges itself */
    if (rc < 0)
        session_reply_error(s, NULL, rc, err);
    else if (msg != NULL)
        session_handle(s, msg, NULL);
    json_decref(msg);
    return consumed > 0 || msg != NULL || rc < 0;
}

/* The client's input ended: a request whose body it had not finished can
 * never be whole. Failing it drops its upstream connection, so the origin
 * sees the request cut off rather than waiting out read_timeout, and never
 * a short body passed off as complete. */
static void
session_fail_open_bodies(struct session *s)
{
    struct exchange *ex;

    for (ex = TAILQ_FIRST(&s->queue); ex != NULL; ex = exchange_next(ex))
        exchange_input_ended(ex);
}

/* End of input is a half-close or a full one; a Unix socket whose peer
 * has closed both directions polls POLLHUP. Nobody can read the replies
 * of a client that has gone, so its work stops at once: waiting for the
 * responses would hold upstream connections until read_timeout. */
static bool
session_peer_gone(const struct session *s)
{
    struct pollfd p = {.fd = bufferevent_getfd(s->bev), .events = POLLOUT};

    return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR)) != 0;
}

static void
session_hangup_cb(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;

    if (!session_peer_gone(s))
        return; /* new input, or a half-close: nothing to do yet */
    log_debug("client %lu: hung up; ending its requests", s->id);
    session_free(s);
}

/* While the bufferevent does not read (backpressure, a raw request, a
 * half-close, closing), nothing would notice a client that closed. An
 * edge-triggered watch wakes on its hang-up, and on new input, which it
 * leaves alone; it sits on a duplicate of the socket because libevent
 * cannot mix edge- and level-triggered events on one descriptor. Without
 * a descriptor to spare, the hang-up shows on the next write instead. */
static void
session_watch_hangup(struct session *s)
{
    if (s->hangup_event == NULL) {
        if (s->hangup_fd < 0)
            s->hangup_fd = fcntl(bufferevent_getfd(s->bev), F_DUPFD_CLOEXEC, 0);
        if (s->hangup_fd < 0)
            return;
        s->hangup_event = event_new(s->srv->base, s->hangup_fd,
                                    EV_READ | EV_CLOSED | EV_ET | EV_PERSIST,
                                    session_hangup_cb, s);
        if (s->hangup_event == NULL)
            return;
    }
    event_add(s->hangup_event, NULL);
}

/* The bufferevent reads again and sees the end of input itself. */
static void
session_unwatch_hangup(struct session *s)
{
    if (s->hangup_event != NULL)
        event_del(s->hangup_event);
}

/* Charges the client's unread input (a partial line, a payload on its
 * way) to the budget. With check, growth past a limit is refused: the
 * client gets limit_exceeded and is closed, its input dropped, since the
 * line it is sending can never be read. Returns false then. */
static bool
session_account_input(struct session *s, struct evbuffer *in, bool check)
{
    size_t n = evbuffer_get_length(in);
    char why[256];

    if (check && n > s->input_held &&
        budget_check(s->srv, s->uid, n - s->input_held, why, sizeof why) < 0) {
        session_reply_error(s, NULL, HCONN_ELIMIT_EXCEEDED, why);
        evbuffer_drain(in, n);
        n = 0;
        s->closing = true;
    }
    session_charge(s, (long long)n - (long long)s->input_held);
    s->input_held = n;
    return !s->closing;
}

void
session_charge(struct session *s, long long delta)
{
    budget_charge_stats(s->srv, s->ustats, delta);
}

void
session_settle_socket_room(struct session *s)
{
    int fd = bufferevent_getfd(s->bev);
    int queued = 0, sndbuf = 0;
    socklen_t len = sizeof sndbuf;
    size_t over = 0;

    /* The bytes stay the kernel's, held for this client, after the pump
     * that put them there has given back its charge. */
    if (ioctl(fd, SIOCOUTQ, &queued) == 0 &&
        getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) == 0 &&
        queued > sndbuf)
        over = (size_t)(queued - sndbuf);
    session_charge(s, (long long)over - (long long)s->socket_room);
    s->socket_room = over;
}

void
session_replies_held(struct session *s, ssize_t delta)
{
    s->replies_held += (size_t)delta;
    session_charge(s, delta);
}

/* A client that reads nothing of its replies is no longer read once they
 * pile up past max_queued_reply_bytes. */
static bool
session_replies_full(struct session *s)
{
    if (s->replies_held <= session_cfg(s)->max_queued_reply_bytes)
        return false;
    s->paused_for_replies = true;
    return true;
}

/* A client holding request body bytes while its uid is over its share
 * (or everyone over max_held_bytes) waits for its own bodies to drain:
 * they do as the origins take them, and that resumes it. */
static bool
session_bodies_over_share(struct session *s)
{
    char why[256];

    return s->body_held > 0 &&
           budget_check(s->srv, s->uid, 0, why, sizeof why) < 0;
}

/* Reads what the client has sent, until it runs out, a limit says pause,
 * or no more input is wanted. */
static void
session_read(struct session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);

    if (s->socket_room > 0)
        session_settle_socket_room(s);
    if (!s->closing)
        session_account_input(s, in, true);
    while (!s->closing && !s->reading_paused && session_wants_input(s)) {
        if (s->payload_left > 0) {
            if (evbuffer_get_length(in) == 0)
                goto need_more;
            if (!session_read_payload(s, in))
                break;
            continue;
        }
        if (s->body_held > session_cfg(s)->client_body_buffer_bytes)
            break;
        if (session_replies_full(s) || session_bodies_over_share(s))
            break;
        if (!session_read_line(s, in))
            goto need_more;
    }
    session_account_input(s, in, false);
    if (s->closing || !session_wants_input(s)) {
        /* Nothing more will be read: a raw request ends the session once
         * its body is in, and after lost framing the rest is noise. */
        session_stop_reading(s);
        session_watch_hangup(s);
        return;
    }
    s->reading_paused = true;
    session_stop_reading(s);
    session_watch_hangup(s);
    return;

need_more:
    session_account_input(s, in, false);
    if (s->input_ended) {
        /* Whatever is left can never become a message. */
        if (evbuffer_get_length(in) > 0 || s->payload_left > 0)
            log_info("client %lu: input ended inside a message", s->id);
        session_fail_open_bodies(s);
        s->closing = true;
        session_schedule_flush(s);
    }
}

void
session_resume_reading(struct session *s)
{
    if (!s->reading_paused)
        return;
    s->reading_paused = false;
    if (!s->input_ended) {
        event_add(s->read_event, NULL);
        session_unwatch_hangup(s);
    }
    /* Bytes already buffered raise no read event; read them off-stack. */
    session_schedule_flush(s);
}

void
session_body_held(struct session *s, ssize_t delta)
{
    s->body_held += (size_t)delta;
    session_charge(s, delta);
}

/* Removes a slot whose replies have all been written. */
static void
session_retire(struct session *s, struct exchange *ex)
{
    exchange_unlink(&s->queue, ex);
    if (exchange_is_request(ex))
        s->requests_in_flight--;
    if (s->payload_to == ex)
        s->payload_to = NULL; /* the rest of its payload is skipped */
    if (exchange_is_request(ex) && exchange_body_kind(ex) == WIRE_BODY_STREAM)
        session_stream_detach(s, ex);
    if (exchange_is_raw(ex))
        s->closing = true;
    if (exchange_aborts_session(ex))
        s->closing = s->aborting = true;
    exchange_free(ex);
}

/* With nothing queued for the client, writes up to n bytes of src to its
 * socket at once, saving the loop turn and the two epoll_ctl calls that
 * arming and disarming the bufferevent's write event would cost per
 * reply. Returns the bytes written; an error shows again, to the
 * bufferevent, on whatever is left. */
static size_t
session_write_direct(struct session *s, struct evbuffer *src, size_t n)
{
    int written = evbuffer_write_atmost(src, s->fd, (ev_ssize_t)n);

    return written > 0 ? (size_t)written : 0;
}

/* Writes the queue's replies in order while the client's output has
 * room. Returns false if the session was freed. */
static bool
session_flush(struct session *s)
{
    struct evbuffer *output = bufferevent_get_output(s->bev);
    size_t window = session_cfg(s)->stream_buffer_bytes;
    struct exchange *ex;

    while (!s->aborting && (ex = TAILQ_FIRST(&s->queue)) != NULL) {
        size_t queued = evbuffer_get_length(output);
        struct evbuffer *out = exchange_out(ex);
        size_t pending = evbuffer_get_length(out);

        if (pending > 0) {
            size_t n = pending < window - queued ? pending : window - queued;

            if (queued >= window)
                break;
            /* Bytes leaving out are no longer its to count; those moved
             * to output count there (session_output_cb). */
            if (queued == 0) {
                size_t written = session_write_direct(s, out, n);

                n -= written;
                session_replies_held(s, -(ssize_t)written);
            }
            if (n > 0) {
                int moved = evbuffer_remove_buffer(out, output, n);

                if (moved > 0)
                    session_replies_held(s, -(ssize_t)moved);
            }
            exchange_resume(ex);
        }
        if (!exchange_is_done(ex) || evbuffer_get_length(out) != 0)
            break;
        session_retire(s, ex);
    }
    if (s->paused_for_replies &&
        s->replies_held <= session_cfg(s)->max_queued_reply_bytes / 2) {
        s->paused_for_replies = false;
        session_resume_reading(s);
    }
    if ((s->closing || s->draining) &&
        (TAILQ_EMPTY(&s->queue) || s->aborting) &&
        evbuffer_get_length(output) == 0) {
        session_free(s);
        return false;
    }
    return true;
}

/* Runs one session's flush from the loop, and reads what it held back. */
static void
session_run_flush(struct session *s)
{
    if (!session_flush(s))
        return;
    if (!s->reading_paused && !s->closing && session_wants_input(s) &&
        (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0 ||
         s->input_ended))
        session_read(s);
    /* Reading may have queued replies or ended the session's input. */
    if (s->closing)
        session_flush(s);
}

/* Takes s off the server's flushes list. */
static void
session_unschedule_flush(struct session *s)
{
    struct server *srv = s->srv;

    TAILQ_REMOVE(&srv->flushes, s, flush_entry);
    srv->nflushes--;
    s->flush_scheduled = false;
}

/* Runs the sessions that asked for a flush, oldest first: one loop
 * activation for every session served in a loop turn rather than one
 * each. A session that asks again while this runs (reading its input
 * queued more) joins the end; the pass stops after as many as were
 * waiting when it began, so a session that keeps asking cannot hold
 * the loop, and the event goes active again for the rest, behind the
 * callbacks already active, as a session's own event would (it may
 * already be: the list emptied and a session asked again). */
static void
session_flushes_cb(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    size_t n = srv->nflushes;
    struct session *s;

    while (n-- > 0 && (s = TAILQ_FIRST(&srv->flushes)) != NULL) {
        session_unschedule_flush(s);
        session_run_flush(s); /* may free s */
    }
    if (!TAILQ_EMPTY(&srv->flushes))
        event_active(srv->flush_event, EV_TIMEOUT, 0);
}

/* Replies are queued several times per request (head, data, end), each
 * asking for a flush: only the first puts the session on the list, and
 * only the first session on it activates the event. */
void
session_schedule_flush(struct session *s)
{
    struct server *srv = s->srv;

    if (s->flush_scheduled)
        return;
    s->flush_scheduled = true;
    if (TAILQ_EMPTY(&srv->flushes))
        event_active(srv->flush_event, EV_TIMEOUT, 0);
    TAILQ_INSERT_TAIL(&srv->flushes, s, flush_entry);
    srv->nflushes++;
}

bool
session_flushes_init(struct server *srv)
{
    TAILQ_INIT(&srv->flushes);
    srv->nflushes = 0;
    /* Only ever made active, never added: EV_PERSIST spares the loop
     * the event_del it runs after a non-persistent event's callback. */
    srv->flush_event =
        event_new(srv->base, -1, EV_PERSIST, session_flushes_cb, srv);
    return srv->flush_event != NULL;
}

void
session_flushes_clear(struct server *srv)
{
    if (srv->flush_event != NULL)
        event_free(srv->flush_event);
    srv->flush_event = NULL;
}

/* Bytes read off the client's socket at most per read: a chain of 4 KiB
 * with libevent's header, as libevent's own reads of at most 4096. */
#define SESSION_READ_SIZE 4000

/* The client's socket is readable. The session reads it itself rather
 * than through the bufferevent, whose every read costs an FIONREAD ioctl
 * as well (sockread.c); end of input and errors go where the
 * bufferevent would have reported them. */
static void
session_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;
    ssize_t n = sockread_evbuffer(bufferevent_get_input(s->bev), (int)fd,
                                  SESSION_READ_SIZE);

    if (n > 0)
        session_read(s);
    else if (n == 0)
        session_event_cb(s->bev, BEV_EVENT_READING | BEV_EVENT_EOF, s);
    else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        session_event_cb(s->bev, BEV_EVENT_READING | BEV_EVENT_ERROR, s);
}

/* Stops watching the socket for input (the bufferevent never reads). */
static void
session_stop_reading(struct session *s)
{
    event_del(s->read_event);
}

/* The socket's own output buffer counts among the queued replies. */
static void
session_output_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
                  void *arg)
{
    session_replies_held(arg,
                         (ssize_t)info->n_added - (ssize_t)info->n_deleted);
}

static void
session_write_cb(struct bufferevent *bev, void *arg)
{
    session_flush(arg);
}

static void
session_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct session *s = arg;

    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
        !session_peer_gone(s)) {
        /* A half-close (socat after its input ends) still wants every
         * reply owed; close once they are written. */
        log_debug("client %lu: end of input", s->id);
        s->input_ended = true;
        session_stop_reading(s);
        session_watch_hangup(s);
        session_read(s);
        session_flush(s);
        return;
    }
    log_debug("client %lu: connection %s", s->id,
              (what & BEV_EVENT_ERROR) ? strerror(errno) : "lost");
    session_free(s);
}

/* max_clients_per_uid: one user cannot take every client slot. Past it
 * the new client gets one limit_exceeded line and is closed. */
static void
session_limit_uid(struct session *s)
{
    size_t limit = config_clients_per_uid(session_cfg(s)), n = 0;
    const struct session *other;
    char message[160];

    if (limit == 0)
        return;
    TAILQ_FOREACH(other, &s->srv->sessions, entry)
    n += other->uid == s->uid;
    if (n <= limit)
        return;
    snprintf(message, sizeof message,
             "too many clients of uid %ld connected to hconnd (limit %zu, "
             "max_clients_per_uid)",
             (long)s->uid, limit);
    session_reply_error(s, NULL, HCONN_ELIMIT_EXCEEDED, message);
    s->closing = true;
    session_stop_reading(s);
}

struct session *
session_new(struct server *srv, int fd)
{
    const struct config *cfg = srv->cfg;
    struct session *s = calloc(1, sizeof *s);
    struct ucred cred;
    socklen_t len = sizeof cred;

    if (s == NULL) {
        close(fd);
        return NULL;
    }
    s->srv = srv;
    s->id = session_next_id++;
    TAILQ_INIT(&s->queue);
    wire_reader_init(&s->reader, cfg->max_message_bytes);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        s->pid = cred.pid;
        s->uid = cred.uid;
        s->gid = cred.gid;
    }
    s->fd = fd;
    s->bev = bufferevent_socket_new(
        srv->base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    s->read_event =
        event_new(srv->base, fd, EV_READ | EV_PERSIST, session_read_cb, s);
    s->hangup_fd = -1;
    TAILQ_INIT(&s->streams);
    s->ustats = uidstats_lookup(srv, s->uid);
    if (s->bev == NULL || s->read_event == NULL || s->ustats == NULL) {
        if (s->bev == NULL)
            close(fd);
        if (s->bev != NULL)
            bufferevent_free(s->bev);
        if (s->read_event != NULL)
            event_free(s->read_event);
        free(s);
        return NULL;
    }
    bufferevent_setcb(s->bev, NULL, session_write_cb, session_event_cb, s);
    evbuffer_add_cb(bufferevent_get_output(s->bev), session_output_cb, s);
    bufferevent_setwatermark(s->bev, EV_WRITE, cfg->stream_buffer_bytes / 2, 0);
    /* libevent writes 16 KiB a call by default; a window per syscall. */
    bufferevent_set_max_single_write(s->bev, cfg->stream_buffer_bytes);
    bufferevent_enable(s->bev, EV_WRITE);
    event_add(s->read_event, NULL);
    TAILQ_INSERT_TAIL(&srv->sessions, s, entry);
    srv->nsessions++;
    srv->stats.clients_total++;
    log_info("client %lu: connected (pid %ld, uid %ld, gid %ld)", s->id,
             (long)s->pid, (long)s->uid, (long)s->gid);
    session_limit_uid(s);
    return s;
}

int
session_check_policy(const struct session *s, const struct wire_request *req,
                     const char *proxy_host, uint16_t proxy_port,
                     bool proxy_is_default, struct session_addr_filter *f,
                     const struct pool_addr_filter **pool_filter, char *why,
                     size_t len)
{
    const struct policy_rule *rule =
        policy_match(session_cfg(s)->policy, s->uid, s->gid);
    const struct wire_tls *tls =
        req->has_tls_options ? &req->tls_options : NULL;
    struct policy_request preq = {
        .tls = req->tls,
        .host = req->host,
        .port = req->port,
        .proxy_host = proxy_host,
        .proxy_port = proxy_port,
        .proxy_is_default = proxy_is_default,
        .insecure = tls != NULL && (tls->insecure || !tls->verify),
        .no_check_hostname = tls != NULL && tls->no_check_hostname,
        .client_cert =
            tls != NULL && (tls->cert_file != NULL || tls->key_file != NULL ||
                            tls->cert_pem != NULL),
        .tls_files = tls != NULL && s->uid != 0 && tlsfiles_named(tls),
    };
    int rc = policy_check_request(rule, &preq, why, len);

    /* An absolute-form target: what the origin reaches for. */
    if (rc == 0)
        rc = pathcheck_request(rule, req, why, len);
    *pool_filter = NULL;
    if (rc < 0 || !policy_addr_filter(rule, &f->policy))
        return rc;
    f->policy.own = localaddr_addrs(s->srv->localaddr);
    f->pool = (struct pool_addr_filter){
        .check = policy_check_address_cb,
        .arg = &f->policy,
        .arg_len = sizeof f->policy,
        .key = f->policy.key,
    };
    *pool_filter = &f->pool;
    return 0;
}

void
session_drain(struct session *s)
{
    s->draining = true;
    session_schedule_flush(s);
}

void
session_abort_requests(struct session *s)
{
    struct exchange *ex;

    for (ex = TAILQ_FIRST(&s->queue); ex != NULL; ex = exchange_next(ex))
        if (exchange_is_request(ex))
            exchange_fail(ex, HCONN_ESHUTTING_DOWN,
                          "hconnd stopped before this request was finished "
                          "(shutdown_timeout %g s)",
                          session_cfg(s)->shutdown_timeout);
    s->closing = true;
    session_stop_reading(s);
    session_schedule_flush(s);
}

/* Closing a Unix socket with unread bytes in it makes the client's next
 * read fail with ECONNRESET, even after the replies it was sent: a raw
 * client (socat) would lose its clean end of file. Whatever the client
 * sent that will never be read is dropped first. */
static void
session_discard_input(struct session *s)
{
    evutil_socket_t fd = bufferevent_getfd(s->bev);
    char scratch[4096];
    int rounds = 256; /* the receive queue is bounded; so is this loop */

    while (rounds-- > 0 && recv(fd, scratch, sizeof scratch, MSG_DONTWAIT) > 0)
        ;
}

void
session_free(struct session *s)
{
    struct server *srv = s->srv;
    struct exchange *ex;

    while ((ex = TAILQ_FIRST(&s->queue)) != NULL) {
        exchange_unlink(&s->queue, ex);
        exchange_free(ex);
    }
    while (!TAILQ_EMPTY(&s->streams))
        session_stream_close(s, TAILQ_FIRST(&s->streams));
    TAILQ_REMOVE(&srv->sessions, s, entry);
    srv->nsessions--;
    if (s->hangup_event != NULL)
        event_free(s->hangup_event);
    if (s->hangup_fd >= 0)
        close(s->hangup_fd);
    /* What is still charged goes back: unread input, unsent replies. */
    session_charge(
        s, -(long long)(s->input_held + s->replies_held + s->socket_room));
    evbuffer_remove_cb(bufferevent_get_output(s->bev), session_output_cb, s);
    session_discard_input(s);
    event_free(s->read_event);
    bufferevent_free(s->bev);
    memory_trim_soon(srv->base);
    /* Last: freeing what it owns may have asked for a flush, which must
     * not run on freed memory. */
    if (s->flush_scheduled)
        session_unschedule_flush(s);
    log_info("client %lu: closed", s->id);
    free(s);
    server_session_closed(srv);
}
