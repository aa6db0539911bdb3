/*
 * server.h — the daemon-wide context every module reaches through its
 * owner: the event loop, the resolver, settings, the pool and figures.
 */
#ifndef HCONND_SERVER_H
#define HCONND_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include "hconn_error.h"
#include "proxy.h"

/* BSD's safe iteration (the current element may be removed); glibc's
 * sys/queue.h lacks it. */
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                             \
    for ((var) = TAILQ_FIRST(head);                                            \
         (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);                \
         (var) = (tvar))
#endif

struct config;
struct pool;
struct listener;
struct session;
struct tls;
struct localaddr;
struct uidstats;

/* Running figures, reported by {"op":"stats"}. */
struct stats {
    time_t started;                     /* for uptime */
    uint64_t clients_total;             /* client connections accepted */
    uint64_t requests;                  /* requests received */
    uint64_t responses;                 /* responses completed */
    uint64_t reuse_hits;                /* leases served from idle */
    uint64_t reuse_misses;              /* leases that needed a connect */
    uint64_t retries;                   /* replays on a fresh connection */
    uint64_t tls_handshakes;            /* TLS connections opened */
    uint64_t tls_resumed;               /* ... of which resumed a session */
    uint64_t drained;                   /* kept after a client left (drain.c) */
    uint64_t drain_closed;              /* ... closed instead */
    uint64_t errors[HCONN_ERROR_COUNT]; /* error replies, by -code */
    uint64_t held_bytes;                /* held for clients now (budget.c) */
};

TAILQ_HEAD(session_list, session);

struct server {
    struct event_base *base;
    struct resolver *resolver; /* names, hosts files, the DNS cache */
    struct config *cfg;
    struct pool *pool;
    struct tls *tls;               /* contexts and the session cache */
    struct localaddr *localaddr;   /* the machine's own addresses */
    struct uidstats *uidstats;     /* figures per client uid */
    struct proxy_defaults proxies; /* default CONNECT proxies */
    struct listener *listener;
    struct session_list sessions; /* every connected client */
    size_t nsessions;
    struct session_list flushes; /* sessions that asked for a flush, in
                                    the order they asked (session.c) */
    size_t nflushes;
    struct event *flush_event; /* runs them from the loop; active while
                                  flushes is not empty */
    struct stats stats;
    bool shutting_down;           /* SIGTERM seen: drain, accept nothing */
    struct event *shutdown_timer; /* ends the drain after shutdown_timeout */
    bool drain_expired;           /* shutdown_timeout passed: requests
                                     ended, the farewell runs */
};

/* Called when a session ends, so a draining server can exit. */
void server_session_closed(struct server *srv);

#endif
