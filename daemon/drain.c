/*
 * drain.c — reads the rest of a response whose client left, then lets the
 * codec pool the connection (see drain.h).
 *
 * The codec keeps the stream and its parser (codec_detach); a drain is
 * only the stream's new owner: it discards what the codec delivers,
 * bounds the time the rest may take, and counts the outcome. Whether the
 * connection is kept is decided where it is for every response, in the
 * codec: a complete response with keep-alive, the request sent whole,
 * nothing read past its end. Every doubt (an error, the limit, the
 * deadline, a close) drops the connection, so a drained response can
 * never become the next request's, nor a byte of it the start of the
 * next response.
 *
 * Nothing is charged to the departed client: the bytes are dropped as
 * they are parsed, and the codec reads at most drain_max_bytes of them.
 * A draining connection stays leased, so it counts against the pool's
 * limits like any other in use. Drains are listed so that a shutdown can
 * end them at once (drain_stop_all).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "codec.h"
#include "codec_http2.h"
#include "config.h"
#include "drain.h"
#include "log.h"
#include "server.h"
#include "timeval.h"
#include "uidstats.h"

struct drain {
    struct server *srv;
    uid_t uid;                   /* the departed client's, for stats */
    struct codec_stream *stream; /* read on by the codec for us */
    struct event *deadline;      /* drain_timeout */
    TAILQ_ENTRY(drain) entry;    /* drain_all */
};

/* Every drain under way. */
static TAILQ_HEAD(drain_list,
                  drain) drain_all = TAILQ_HEAD_INITIALIZER(drain_all);

/* Counts a drain's outcome: the connection pooled (kept) or closed. */
static void
drain_count(struct server *srv, uid_t uid, bool kept)
{
    struct stats *u = uidstats_get(srv, uid);

    if (kept) {
        srv->stats.drained++;
        u->drained++;
    } else {
        srv->stats.drain_closed++;
        u->drain_closed++;
    }
}

/* Forgets d; its stream is the codec's (ended) or already aborted. */
static void
drain_free(struct drain *d)
{
    TAILQ_REMOVE(&drain_all, d, entry);
    event_free(d->deadline);
    free(d);
}

/* Interim responses, the head, room to send: nothing to do. */
static void
drain_on_interim(void *arg, int status)
{
}

static void
drain_on_head(void *arg, const struct codec_head *head)
{
}

static void
drain_on_writable(void *arg)
{
}

/* Body bytes: not taken, so the codec drops them as it parses. */
static bool
drain_on_data(void *arg, struct evbuffer *in, size_t len)
{
    return false;
}

/* The response is complete: the codec pools the connection if it may. */
static void
drain_on_end(void *arg, const struct codec_end *end)
{
    struct drain *d = arg;

    log_debug("drain: response finished after its client left; "
              "connection %s",
              end->keep ? "pooled" : "closed");
    drain_count(d->srv, d->uid, end->keep);
    drain_free(d);
}

/* A framing fault, the limit, a read timeout, a close: the codec drops
 * the connection once this returns. */
static void
drain_on_error(void *arg, const struct codec_error *e)
{
    struct drain *d = arg;

    log_debug("drain: connection closed: %s", e->message);
    drain_count(d->srv, d->uid, false);
    drain_free(d);
}

static const struct codec_events drain_events = {
    .interim = drain_on_interim,
    .head = drain_on_head,
    .data = drain_on_data,
    .end = drain_on_end,
    .error = drain_on_error,
    .writable = drain_on_writable,
    .body_fd = NULL, /* never lent: the parser must count every byte */
};

/* drain_timeout passed: a silent or slow origin loses its connection. */
static void
drain_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct drain *d = arg;
    struct codec_stream *s = d->stream;

    log_debug("drain: not finished within its deadline; connection closed");
    drain_count(d->srv, d->uid, false);
    drain_free(d);
    codec_abort(s);
}

void
drain_start(struct server *srv, struct codec_stream *s, uid_t uid,
            double read_timeout)
{
    const struct config *cfg = srv->cfg;
    double seconds = cfg->drain_timeout;
    bool h2 = codec_stream_is_http2(s);
    struct timeval tv;
    struct drain *d;

    if (read_timeout > 0 && read_timeout < seconds)
        seconds = read_timeout;
    d = h2 || srv->shutting_down || seconds <= 0 || cfg->drain_max_bytes == 0
            ? NULL
            : calloc(1, sizeof *d);
    if (d != NULL)
        d->deadline = evtimer_new(srv->base, drain_deadline_cb, d);
    if (d == NULL || d->deadline == NULL) {
        free(d);
        codec_abort(s); /* HTTP/2: this stream alone is reset */
        if (!h2)
            drain_count(srv, uid, false);
        return;
    }
    d->srv = srv;
    d->uid = uid;
    d->stream = s;
    if (!codec_detach(s, cfg->drain_max_bytes, &drain_events, d)) {
        event_free(d->deadline);
        free(d);
        drain_count(srv, uid, false);
        return;
    }
    tv = timeval_of(seconds);
    evtimer_add(d->deadline, &tv);
    TAILQ_INSERT_TAIL(&drain_all, d, entry);
}

void
drain_stop_all(void)
{
    struct drain *d;

    while ((d = TAILQ_FIRST(&drain_all)) != NULL) {
        struct codec_stream *s = d->stream;

        drain_count(d->srv, d->uid, false);
        drain_free(d);
        codec_abort(s);
    }
}
