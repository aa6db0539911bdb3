/*
 * pool.h — the shared pool of upstream connections, keyed by origin.
 *
 * A request leases a connection for one exchange and gives it back with
 * pool_release (clean, keep-alive) or pool_drop (anything else). Idle
 * connections are watched: a close, a stray byte or the idle timeout
 * drops them. Limits per origin and in total; past them, leases wait in
 * FIFO order and the oldest idle connection of another origin is closed
 * to make room.
 */
#ifndef HCONND_POOL_H
#define HCONND_POOL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

struct config;
struct resolver;
struct event_base;
struct pool;
struct pool_origin;
struct pool_waiter;
struct sockaddr;
struct stats;
struct tls;
struct upstream;
struct upstream_answer;
struct wire_tls;

/* Which HTTP a connection may speak: part of the pool key. */
enum pool_proto {
    POOL_PROTO_H1 = 0, /* HTTP/1.1 (TLS: ALPN offers http/1.1) */
    POOL_PROTO_AUTO,   /* TLS: ALPN offers h2 and http/1.1 */
    POOL_PROTO_H2,     /* HTTP/2 only: ALPN h2, or h2c in plain text */
};

/* Where a request goes; everything that makes connections unshareable
 * belongs here, since it forms the pool key. */
struct pool_target {
    const char *host; /* the origin */
    uint16_t port;
    bool tls;
    const struct wire_tls *tls_options; /* NULL: the defaults */
    const char *proxy_host;             /* tunnel through this proxy; NULL:
                                           straight to the origin */
    uint16_t proxy_port;
    const char *connect_head; /* the CONNECT request, proxy fields and
                                 all: connections are shared only between
                                 equal ones */
    size_t connect_head_len;
    const struct pool_addr_filter *addr_filter; /* NULL: any address */
    uid_t uid; /* the client's: stats show an origin to its users only */
    const char *source_host; /* bind to this address literal first ("":
                                any address); NULL: no source_address */
    uint16_t source_port;    /* with source_host: the local port, 0 any */
    enum pool_proto proto;   /* what the request may speak */
};

/* Which resolved addresses a new connection may use (the policy's): the
 * check runs on each address before it is connected to. The origin keeps
 * a copy of arg, so the caller's may go; key is part of the pool key, so
 * only requests under equal filters share connections. */
struct pool_addr_filter {
    int (*check)(const struct sockaddr *sa, const void *arg, char *why,
                 size_t len);
    const void *arg;
    size_t arg_len;
    const char *key;
};

/* A lease's outcome: up with error 0, or up NULL with HCONN_E... */
typedef void (*pool_lease_cb)(struct pool_waiter *w, struct upstream *up,
                              int error, const char *message);

/* A pending lease; embedded in its owner, zero-filled before use. */
struct pool_waiter {
    pool_lease_cb cb;
    bool fresh;                 /* needs a new connection (a retry) */
    double timeout;             /* connect timeout, seconds */
    struct pool_origin *origin; /* set while waiting */
    /* with a failure: the proxy's answer for tunnel_failed's error reply;
     * the owner takes it (free()) */
    struct upstream_answer *detail;
    TAILQ_ENTRY(pool_waiter) entry; /* origin's FIFO */
};

/* tls may be NULL when no target will ask for TLS (unit tests). */
struct pool *pool_new(struct event_base *base, struct resolver *resolver,
                      struct tls *tls, const struct config *cfg,
                      struct stats *stats);

/* Starts no connection from now on (the daemon is exiting: the waiters
 * that would use them are about to go). */
void pool_stop(struct pool *pool);

/* Closes every connection, connects under way included, and frees the
 * pool; no lease may be pending. */
void pool_free(struct pool *pool);

/*
 * Leases a connection to target for w. Returns 0 with *up set when an
 * idle connection was ready (never for a fresh waiter), or 0 with *up NULL
 * when w->cb will be called later (w must stay valid until then or until
 * pool_cancel), or HCONN_ENO_MEMORY.
 */
int pool_lease(struct pool *pool, const struct pool_target *target,
               struct pool_waiter *w, struct upstream **up, double timeout);

/* Withdraws a waiting lease; its callback will not run. */
void pool_cancel(struct pool_waiter *w);

/* Returns a leased connection after a complete keep-alive response. */
void pool_release(struct upstream *up);

/* Closes a leased connection that must not be reused. */
void pool_drop(struct upstream *up);

/* HTTP/2 (codec_http2.c): a stream leased on up ended; its lease is
 * over (the connection stays with the codec). */
void pool_stream_done(struct upstream *up);

/* HTTP/2: up's capacity or state changed: leases waiting streams on it,
 * or makes it idle when it carries none. Never from within nghttp2. */
void pool_h2_update(struct upstream *up);

/* HTTP/2: the codec is done with up (failed with code, or ended by
 * GOAWAY) and every stream on it has ended: close and free it. */
void pool_h2_closed(struct upstream *up, int code, const char *why);

/* Responses completed on a pooled connection: 0 for a fresh one. */
unsigned pool_requests(const struct upstream *up);

/* True while the connection waits, idle, in the pool. */
bool pool_is_idle(const struct upstream *up);

/* Closes idle connections (shutdown); leased ones finish first. */
void pool_close_idle(struct pool *pool);

/* Connections open or opening, idle ones among them. */
size_t pool_count(const struct pool *pool, size_t *idle);

/* One origin's figures, for stats. */
struct pool_origin_stats {
    const char *label; /* the pool key, as stats name it */
    size_t idle, busy, connecting, waiting;
    size_t h2;      /* HTTP/2 connections among idle and busy */
    size_t streams; /* HTTP/2 streams leased on them */
};

/* Calls cb with the figures of every origin (all), or of those that
 * requests of uid have used; *open and *idle (may be NULL) count their
 * connections. */
void pool_stats(const struct pool *pool, bool all, uid_t uid,
                void (*cb)(void *arg, const struct pool_origin_stats *st),
                void *arg, size_t *open, size_t *idle);

#endif
