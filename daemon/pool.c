/*
 * pool.c — bookkeeping for the shared upstream connection pool.
 *
 * Origins live in a small chained hash table keyed by a string that names
 * everything making a connection unshareable: scheme, host, port, the TLS
 * settings and, for a tunnel, the proxy and the whole CONNECT request (its
 * credentials included, so tunnels opened with different credentials are
 * never shared). Each origin keeps its idle
 * connections most-recently-used first (warm sockets, warm TLS state) and
 * a FIFO of waiting leases. A global idle list, oldest first, picks the
 * victim when the total limit is reached.
 *
 * Each waiter is matched with at most one connect attempt: a failed
 * connect fails exactly one waiter, so a dead origin cannot keep a queue
 * spinning, and a released connection goes to the first waiter in line.
 *
 * HTTP/2: a connection that negotiated h2 (or is h2c) carries a stream
 * per lease, up to what codec_spare allows; each stream's end gives the
 * stream back (pool_stream_done), not the connection, which is idle when
 * it carries none (still read by its codec: no park, an idle timer
 * instead). An origin that may speak HTTP/2 counts each connect under way
 * as room for h2_max_concurrent_streams waiters, so a burst of requests
 * waits for the first connection instead of opening one each; once an
 * origin answered an h2 offer with HTTP/1.1, it counts one per connect
 * again.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "codec.h"
#include "codec_http2.h"
#include "config.h"
#include "decimal.h"
#include "hconn_error.h"
#include "log.h"
#include "memory.h"
#include "pool.h"
#include "server.h"
#include "timeval.h"
#include "tls.h"
#include "upstream.h"

#define POOL_BUCKETS     256
#define POOL_ORIGIN_UIDS 16 /* users remembered per origin, for stats */
/* Seconds an HTTP/2 connection must have been idle before it gets a PING
 * when taken again. */
#define POOL_H2_PING_IDLE 2

/* The pool's bookkeeping for one connection, in the space its upstream
 * keeps for its owner (upstream_owner). */
struct pool_conn {
    struct upstream *up;
    struct pool_origin *origin;          /* the bucket it belongs to */
    bool idle;                           /* in the idle lists */
    unsigned requests;                   /* responses completed on it */
    TAILQ_ENTRY(pool_conn) origin_entry; /* origin's idle list */
    TAILQ_ENTRY(pool_conn) lru_entry;    /* pool's idle list, oldest first */
    bool h2;                             /* an HTTP/2 connection */
    unsigned streams;                    /* HTTP/2: streams leased on it */
    struct event *idle_timer;            /* HTTP/2: idle_timeout */
    struct timeval idle_since;           /* when it last went idle */
    TAILQ_ENTRY(pool_conn) h2_entry;     /* origin's HTTP/2 connections */
};

#define pool_conn_of(up) ((struct pool_conn *)upstream_owner(up))

TAILQ_HEAD(conn_list, pool_conn);
TAILQ_HEAD(waiter_list, pool_waiter);

struct pool_origin {
    struct pool *pool;
    char *key;   /* see pool_format_key */
    char *label; /* the key without the CONNECT request, for logs and
                    stats: it may hold credentials */
    char *host;  /* what to connect to: the origin, or the proxy */
    uint16_t port;
    char *tls_host; /* a tunnel: the origin behind it */
    uint16_t tls_port;
    char *connect_head; /* a tunnel: the CONNECT request */
    size_t connect_head_len;
    bool tls;
    struct wire_tls *tls_options; /* owned copy; NULL: the defaults */
    /* The target's address filter, or NULL; and an owned copy of its arg */
    upstream_addr_check_cb addr_check;
    void *addr_check_arg;
    uid_t uids[POOL_ORIGIN_UIDS]; /* users whose requests used it, for
                                     stats; the first ones only */
    size_t nuids;
    bool has_source_addr; /* the target's source_address, parsed */
    struct sockaddr_storage source_addr;
    uint16_t source_port;
    struct conn_list idle;         /* most recently used first */
    struct waiter_list waiters;    /* FIFO of pending leases */
    size_t nidle;                  /* in idle */
    size_t nbusy;                  /* leased */
    size_t nconnecting;            /* connects under way */
    size_t nwaiting;               /* in waiters */
    bool wanting;                  /* in pool->wanting */
    enum pool_proto proto;         /* what its requests may speak */
    bool h1_answered;              /* an h2 offer got HTTP/1.1 */
    struct conn_list h2conns;      /* its HTTP/2 connections */
    size_t nh2;                    /* in h2conns */
    size_t nstreams;               /* streams leased on them */
    struct pool_origin *hash_next; /* bucket chain */
    TAILQ_ENTRY(pool_origin) wanting_entry;
};

/* The origin a direct target was last found for, and that target's
 * fields (see pool_origin_find). */
#define POOL_LAST_HOST   256
#define POOL_LAST_FILTER 160
struct pool_last {
    struct pool_origin *origin; /* NULL: none (cleared when it goes) */
    uint16_t port;
    enum pool_proto proto;
    bool filtered;                 /* it had an address filter ... */
    char host[POOL_LAST_HOST];     /* (NUL-terminated) */
    char filter[POOL_LAST_FILTER]; /* ... whose key this is */
    bool tls;                      /* https, with these settings: */
    struct tls_settings_id tls_id;
};

struct pool {
    struct event_base *base;
    struct resolver *resolver;
    struct tls *tls;
    const struct config *cfg;
    struct stats *stats;
    struct pool_origin *buckets[POOL_BUCKETS];
    struct pool_last last; /* the last direct origin found */
    struct conn_list lru;  /* idle connections, oldest first */
    /* Connects under way, all origins (linked by lru_entry, which only
     * idle connections use otherwise), so that pool_free can end them. */
    struct conn_list connecting;
    bool stopped;    /* pool_stop: no new connects */
    size_t nopen;    /* open or opening, all origins */
    size_t nidle;    /* idle, all origins */
    size_t nh2;      /* HTTP/2 connections, all origins */
    size_t nstreams; /* HTTP/2 streams leased, all origins */
    /* Origins with more waiters than connects under way, held back by a
     * limit; retried whenever a connection closes. */
    TAILQ_HEAD(, pool_origin) wanting;
};

static void pool_grow_wanting(struct pool *pool);
static void pool_origin_grow(struct pool_origin *o);

/* FNV-1a: short keys, no adversary who benefits from collisions beyond
 * slowing their own lookups. */
static unsigned
pool_hash(const char *s)
{
    unsigned h = 2166136261u;

    while (*s != '\0')
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h % POOL_BUCKETS;
}

/* What the key says of the protocol: nothing for the defaults (TLS
 * offering h2 and http/1.1, plain HTTP/1.1). */
static const char *
pool_proto_suffix(const struct pool_target *t)
{
    switch (t->proto) {
    case POOL_PROTO_H1:
        return t->tls ? " http/1.1" : "";
    case POOL_PROTO_H2:
        return t->tls ? " h2" : " h2c";
    case POOL_PROTO_AUTO:
    default:
        return "";
    }
}

/* Appends s to the label of len bytes, *n long, as far as it fits. */
static void
pool_label_put(char *label, size_t len, size_t *n, const char *s)
{
    size_t k = strlen(s);

    if (*n + k >= len)
        k = len - 1 - *n;
    memcpy(label + *n, s, k);
    *n += k;
    label[*n] = '\0';
}

/* The readable part of the key: "https://host:port <TLS settings> via
 * proxy:port". Its start, all most keys are, is put together without
 * snprintf: formatting it was the pool's largest cost per request. A
 * part added here that a direct target can carry must be compared by
 * pool_last_match too (or make the target not direct there). */
static void
pool_format_label(const struct pool_target *t, char *label, size_t len)
{
    bool v6 = strchr(t->host, ':') != NULL;
    char port[DECIMAL_U64_SIZE];
    size_t start = 0;
    int n;

    label[0] = '\0';
    decimal_u64(port, t->port);
    pool_label_put(label, len, &start, t->tls ? "https://" : "http://");
    pool_label_put(label, len, &start, v6 ? "[" : "");
    pool_label_put(label, len, &start, t->host);
    pool_label_put(label, len, &start, v6 ? "]:" : ":");
    pool_label_put(label, len, &start, port);
    n = (int)start;

    if (t->tls && n > 0 && (size_t)n < len - 1) {
        label[n] = ' ';
        tls_settings_key(t->tls_options, label + n + 1, len - (size_t)n - 1);
        n = (int)strlen(label);
    }
    start = (size_t)n;
    pool_label_put(label, len, &start, pool_proto_suffix(t));
    n = (int)start;
    if (t->proxy_host != NULL && n > 0 && (size_t)n < len)
        snprintf(label + n, len - (size_t)n,
                 strchr(t->proxy_host, ':') ? " via [%s]:%u" : " via %s:%u",
                 t->proxy_host, t->proxy_port);
    n = (int)strlen(label);
    if (t->addr_filter != NULL && (size_t)n < len)
        snprintf(label + n, len - (size_t)n, " (%s)", t->addr_filter->key);
    n = (int)strlen(label);
    if (t->source_host != NULL && (size_t)n < len)
        snprintf(label + n, len - (size_t)n,
                 strchr(t->source_host, ':') ? " from [%s]:%u" : " from %s:%u",
                 t->source_host[0] != '\0' ? t->source_host : "*",
                 t->source_port);
}

/* The origin key: connections are shared only between requests whose
 * keys are equal. It is the label, then for a tunnel a newline and the
 * CONNECT request. Returns key (label_len set) when it fits there, else a
 * malloc'd copy the caller frees; NULL when out of memory. */
static char *
pool_format_key(const struct pool_target *t, char *key, size_t len,
                size_t *label_len)
{
    char *full;

    pool_format_label(t, key, len);
    *label_len = strlen(key);
    if (t->connect_head == NULL)
        return key;
    if (*label_len + 1 + t->connect_head_len < len) {
        full = key;
    } else if ((full = malloc(*label_len + 2 + t->connect_head_len)) != NULL) {
        memcpy(full, key, *label_len);
    } else {
        return NULL;
    }
    full[*label_len] = '\n';
    memcpy(full + *label_len + 1, t->connect_head, t->connect_head_len);
    full[*label_len + 1 + t->connect_head_len] = '\0';
    return full;
}

struct pool *
pool_new(struct event_base *base, struct resolver *resolver, struct tls *tls,
         const struct config *cfg, struct stats *stats)
{
    struct pool *pool = calloc(1, sizeof *pool);

    if (pool == NULL)
        return NULL;
    pool->base = base;
    pool->resolver = resolver;
    pool->tls = tls;
    pool->cfg = cfg;
    pool->stats = stats;
    TAILQ_INIT(&pool->lru);
    TAILQ_INIT(&pool->connecting);
    TAILQ_INIT(&pool->wanting);
    return pool;
}

/* Frees an origin's own allocations. */
static void
pool_origin_destroy(struct pool_origin *o)
{
    tls_options_free(o->tls_options);
    free(o->addr_check_arg);
    free(o->key);
    free(o->label);
    free(o->host);
    free(o->tls_host);
    free(o->connect_head);
    free(o);
}

/* Parses t's source address (a literal, checked by the wire codec) into
 * o. */
static void
pool_origin_set_source(struct pool_origin *o, const struct pool_target *t)
{
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&o->source_addr;
    struct sockaddr_in *in = (struct sockaddr_in *)&o->source_addr;

    if (t->source_host == NULL)
        return;
    o->source_port = t->source_port;
    if (inet_pton(AF_INET6, t->source_host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        o->has_source_addr = true;
    } else if (inet_pton(AF_INET, t->source_host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        o->has_source_addr = true;
    }
}

/* A new origin for target t under key (label_len bytes of it the label). */
static struct pool_origin *
pool_origin_new(struct pool *pool, const struct pool_target *t, const char *key,
                size_t label_len)
{
    struct pool_origin *o = calloc(1, sizeof *o);
    bool tunnel = t->connect_head != NULL;

    if (o == NULL)
        return NULL;
    o->pool = pool;
    o->key = strdup(key);
    o->label = strndup(key, label_len);
    o->host = strdup(tunnel ? t->proxy_host : t->host);
    o->port = tunnel ? t->proxy_port : t->port;
    o->tls = t->tls;
    o->proto = t->proto;
    TAILQ_INIT(&o->h2conns);
    TAILQ_INIT(&o->idle);
    TAILQ_INIT(&o->waiters);
    if (tunnel) {
        o->tls_host = strdup(t->host);
        o->tls_port = t->port;
        o->connect_head = malloc(t->connect_head_len);
        o->connect_head_len = t->connect_head_len;
        if (o->connect_head != NULL)
            memcpy(o->connect_head, t->connect_head, t->connect_head_len);
    }
    if (t->tls_options != NULL)
        o->tls_options = tls_options_copy(t->tls_options);
    pool_origin_set_source(o, t);
    if (t->addr_filter != NULL) {
        o->addr_check = t->addr_filter->check;
        o->addr_check_arg = malloc(t->addr_filter->arg_len);
        if (o->addr_check_arg != NULL)
            memcpy(o->addr_check_arg, t->addr_filter->arg,
                   t->addr_filter->arg_len);
    }
    if (o->key == NULL || o->label == NULL || o->host == NULL ||
        (t->addr_filter != NULL && o->addr_check_arg == NULL) ||
        (tunnel && (o->tls_host == NULL || o->connect_head == NULL)) ||
        (t->tls_options != NULL && o->tls_options == NULL)) {
        pool_origin_destroy(o);
        return NULL;
    }
    return o;
}

/* A direct target: no tunnel, no source address, and no TLS options
 * unless it is https. Its key (pool_format_label) is made of its host,
 * port, protocol, address filter's key and, for https, TLS settings
 * alone. */
static bool
pool_target_is_direct(const struct pool_target *t)
{
    return (t->tls || t->tls_options == NULL) && t->proxy_host == NULL &&
           t->connect_head == NULL && t->source_host == NULL;
}

/* The last origin found when t is a direct target with the very fields
 * it was found for: their keys are then equal, so the lookup by key
 * would find it too. NULL otherwise. For https the TLS settings are
 * compared as tls_settings_key would write them, digests and all, which
 * was most of the cost of a TLS target's key. */
static struct pool_origin *
pool_last_match(const struct pool *pool, const struct pool_target *t)
{
    const struct pool_last *l = &pool->last;

    if (l->origin == NULL || !pool_target_is_direct(t) || t->tls != l->tls ||
        t->port != l->port || t->proto != l->proto ||
        (t->addr_filter != NULL) != l->filtered ||
        strcmp(t->host, l->host) != 0)
        return NULL;
    if (l->filtered && strcmp(t->addr_filter->key, l->filter) != 0)
        return NULL;
    if (l->tls && !tls_settings_id_match(&l->tls_id, t->tls_options))
        return NULL;
    return l->origin;
}

/* Remembers that direct target t found o (anything else: nothing). */
static void
pool_last_set(struct pool *pool, const struct pool_target *t,
              struct pool_origin *o)
{
    struct pool_last *l = &pool->last;
    size_t hn, fn = 0;

    l->origin = NULL;
    if (!pool_target_is_direct(t))
        return;
    hn = strlen(t->host);
    if (t->addr_filter != NULL)
        fn = strlen(t->addr_filter->key);
    if (hn >= sizeof l->host || fn >= sizeof l->filter)
        return;
    l->tls = t->tls;
    if (l->tls && !tls_settings_id_set(&l->tls_id, t->tls_options))
        return;
    memcpy(l->host, t->host, hn + 1);
    l->filtered = t->addr_filter != NULL;
    if (l->filtered)
        memcpy(l->filter, t->addr_filter->key, fn + 1);
    l->port = t->port;
    l->proto = t->proto;
    l->origin = o;
}

/* The origin for t's key, made when create says so. Formatting and
 * hashing the key was the pool's largest cost per request: the last
 * direct target's fields are compared first. */
static struct pool_origin *
pool_origin_find(struct pool *pool, const struct pool_target *t, bool create)
{
    char buf[2400];
    size_t label_len;
    char *key;
    unsigned b;
    struct pool_origin *o = pool_last_match(pool, t);

    if (o != NULL)
        return o;
    key = pool_format_key(t, buf, sizeof buf, &label_len);
    if (key == NULL)
        return NULL;
    b = pool_hash(key);
    for (o = pool->buckets[b]; o != NULL; o = o->hash_next)
        if (strcmp(o->key, key) == 0)
            break;
    if (o == NULL && create &&
        (o = pool_origin_new(pool, t, key, label_len)) != NULL) {
        o->hash_next = pool->buckets[b];
        pool->buckets[b] = o;
    }
    if (key != buf)
        free(key);
    if (o != NULL)
        pool_last_set(pool, t, o);
    return o;
}

/* Frees an origin nothing refers to any more. */
static void
pool_origin_maybe_free(struct pool_origin *o)
{
    struct pool_origin **p;

    if (o->nidle + o->nbusy + o->nconnecting + o->nwaiting != 0)
        return;
    if (o->wanting)
        TAILQ_REMOVE(&o->pool->wanting, o, wanting_entry);
    if (o->pool->last.origin == o)
        o->pool->last.origin = NULL;
    for (p = &o->pool->buckets[pool_hash(o->key)]; *p != o;
         p = &(*p)->hash_next)
        ;
    *p = o->hash_next;
    pool_origin_destroy(o);
}

static void
pool_idle_remove(struct upstream *up)
{
    struct pool_conn *c = pool_conn_of(up);
    struct pool_origin *o = c->origin;

    TAILQ_REMOVE(&o->idle, c, origin_entry);
    TAILQ_REMOVE(&o->pool->lru, c, lru_entry);
    o->nidle--;
    o->pool->nidle--;
    c->idle = false;
    if (c->idle_timer != NULL)
        evtimer_del(c->idle_timer);
    if (!c->h2)
        upstream_unpark(up);
}

/* Drops an HTTP/2 connection's own bookkeeping before it is freed. */
static void
pool_conn_forget(struct pool_conn *c)
{
    if (c->idle_timer != NULL) {
        event_free(c->idle_timer);
        c->idle_timer = NULL;
    }
    if (!c->h2)
        return;
    TAILQ_REMOVE(&c->origin->h2conns, c, h2_entry);
    c->origin->nh2--;
    c->origin->pool->nh2--;
    c->h2 = false;
}

/* Frees up and lets waiting origins use the slot it held; the origin
 * stays, even if unused now. */
static void
pool_discard(struct upstream *up, const char *why)
{
    struct pool_conn *c = pool_conn_of(up);
    struct pool_origin *o = c->origin;

    if (c->idle)
        pool_idle_remove(up);
    pool_conn_forget(c);
    o->pool->nopen--;
    log_debug("upstream %lu: closed (%s, %u requests): %s", upstream_id(up),
              o->label, c->requests, why);
    upstream_free(up);
    pool_grow_wanting(o->pool);
}

/* Closes up and frees its origin if nothing else uses it. */
static void
pool_close(struct upstream *up, const char *why)
{
    struct pool_origin *o = pool_conn_of(up)->origin;

    pool_discard(up, why);
    pool_origin_maybe_free(o);
}

/* An idle connection has nothing to say: the server closed it, or sent
 * bytes that can only be a protocol error or a late part of a response
 * already finished (or a TLS alert); or it sat unused too long. */
static void
pool_idle_cb(struct upstream *up, short what)
{
    char byte;
    ssize_t n = 1;

    /* A connection parked reading has read what came (upstream.c). */
    if ((what & EV_READ) &&
        evbuffer_get_length(bufferevent_get_input(upstream_bev(up))) == 0)
        n = recv(bufferevent_getfd(upstream_bev(up)), &byte, 1,
                 MSG_PEEK | MSG_DONTWAIT);
    /* TLS 1.3 servers send session tickets after the handshake, often
     * once a fresh connection is already parked: records that carry no
     * response byte keep it. A timeout is no such wake-up. */
    if (n > 0 && (what & EV_READ) && upstream_is_tls(up) &&
        upstream_settle_tls(up) &&
        upstream_park(up, pool_conn_of(up)->origin->pool->cfg->idle_timeout,
                      pool_idle_cb) == 0)
        return;
    /* A timeout or an orderly close leaves the TLS session good. */
    upstream_set_clean(up, n >= 0);
    pool_close(up, (what & EV_TIMEOUT) ? "idle timeout"
                   : n == 0            ? "closed by the server"
                   : n > 0 ? "unexpected bytes from the server while idle"
                           : "socket error while idle");
}

/* Links c into its origin's idle list (most recently used first) and
 * the pool's (oldest first), where leases and evictions find it. */
static void
pool_idle_link(struct pool_conn *c)
{
    struct pool_origin *o = c->origin;

    TAILQ_INSERT_HEAD(&o->idle, c, origin_entry);
    TAILQ_INSERT_TAIL(&o->pool->lru, c, lru_entry);
    o->nidle++;
    o->pool->nidle++;
    c->idle = true;
    event_base_gettimeofday_cached(o->pool->base, &c->idle_since);
}

/* Puts a connection in the idle lists under watch; closes it when the
 * watch cannot be set up. */
static void
pool_idle_add(struct upstream *up)
{
    struct pool_conn *c = pool_conn_of(up);
    struct pool_origin *o = c->origin;
    size_t low = 0, high = 0;

    if (upstream_park(up, o->pool->cfg->idle_timeout, pool_idle_cb) < 0) {
        pool_close(up, "out of memory for its idle watch");
        return;
    }
    memory_trim_soon(o->pool->base);
    /* Setting them, even unchanged, re-arms a reading connection's read
     * event (upstream_park): only when there are any. */
    bufferevent_getwatermark(upstream_bev(up), EV_READ, &low, &high);
    if (low != 0 || high != 0)
        bufferevent_setwatermark(upstream_bev(up), EV_READ, 0, 0);
    pool_idle_link(c);
}

/* Hands a live connection to the waiter w (already unlinked). */
static void
pool_hand_over(struct upstream *up, struct pool_waiter *w)
{
    pool_conn_of(up)->origin->nbusy++;
    w->origin = NULL;
    w->cb(w, up, 0, NULL);
}

/* Takes the first waiter in line, skipping fresh ones unless any is
 * acceptable (a new connection suits everyone). */
static struct pool_waiter *
pool_origin_next_waiter(struct pool_origin *o, bool fresh_ok)
{
    struct pool_waiter *w;

    TAILQ_FOREACH(w, &o->waiters, entry)
    if (fresh_ok || !w->fresh)
        break;
    if (w != NULL) {
        TAILQ_REMOVE(&o->waiters, w, entry);
        o->nwaiting--;
    }
    return w;
}

/* True while o's connects may turn out HTTP/2. */
static bool
pool_origin_may_h2(const struct pool_origin *o)
{
    return o->proto == POOL_PROTO_H2 ||
           (o->proto == POOL_PROTO_AUTO && !o->h1_answered);
}

/* Waiters one connect under way will serve. */
static size_t
pool_origin_per_connect(const struct pool_origin *o)
{
    return pool_origin_may_h2(o) ? o->pool->cfg->h2_max_concurrent_streams : 1;
}

/* Fails up to n waiters of o with error (the first gets detail). */
static void
pool_origin_fail_waiters(struct pool_origin *o, size_t n, int error,
                         const char *message, struct upstream_answer *detail)
{
    struct pool_waiter *w;

    while (n-- > 0 && (w = pool_origin_next_waiter(o, true)) != NULL) {
        w->origin = NULL;
        w->detail = detail;
        detail = NULL;
        w->cb(w, NULL, error, message);
    }
    free(detail);
}

/* An idle HTTP/2 connection sat unused for idle_timeout. */
static void
pool_h2_idle_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct upstream *up = arg;

    upstream_set_clean(up, true);
    pool_close(up, "idle timeout");
}

/* An HTTP/2 connection carries no stream: idle, in the lists and under
 * the idle timer; its codec keeps reading it (a GOAWAY or a close drops
 * it at once). */
static void
pool_h2_idle_add(struct upstream *up)
{
    struct pool_conn *c = pool_conn_of(up);
    struct pool_origin *o = c->origin;
    struct timeval tv = timeval_of(o->pool->cfg->idle_timeout);

    if (c->idle_timer == NULL &&
        (c->idle_timer =
             evtimer_new(o->pool->base, pool_h2_idle_timeout_cb, up)) == NULL) {
        o->nbusy--;
        pool_close(up, "out of memory for its idle timer");
        return;
    }
    evtimer_add(c->idle_timer, &tv);
    o->nbusy--;
    pool_idle_link(c);
}

/* Leases one stream of up to a caller. */
static void
pool_h2_take(struct upstream *up)
{
    struct pool_conn *c = pool_conn_of(up);
    struct pool_origin *o = c->origin;

    if (c->idle) {
        struct timeval now, idle;

        pool_idle_remove(up);
        o->nbusy++;
        /* The socket is read all the while it is idle, so a close or a
         * GOAWAY is seen at once; a PING finds the peer that vanished
         * silently, which takes longer than a moment's idleness. */
        event_base_gettimeofday_cached(o->pool->base, &now);
        evutil_timersub(&now, &c->idle_since, &idle);
        if (idle.tv_sec >= POOL_H2_PING_IDLE)
            codec_http2_ping(up);
    }
    c->streams++;
    o->nstreams++;
    o->pool->nstreams++;
}

void
pool_h2_update(struct upstream *up)
{
    struct pool_conn *c = pool_conn_of(up);
    struct pool_origin *o = c->origin;
    /* A fresh waiter (a retry) needs a connection no request used: a new
     * one takes them all in its first batch. */
    bool fresh_ok = c->requests == 0 && c->streams == 0;
    struct pool_waiter *w;

    if (!codec_http2_usable(up))
        return;
    while (codec_spare(up) > 0 &&
           (w = pool_origin_next_waiter(o, fresh_ok)) != NULL) {
        pool_h2_take(up);
        w->origin = NULL;
        w->cb(w, up, 0, NULL);
    }
    if (c->streams == 0 && !c->idle && codec_http2_usable(up))
        pool_h2_idle_add(up);
}

void
pool_stream_done(struct upstream *up)
{
    struct pool_conn *c = pool_conn_of(up);

    c->streams--;
    c->requests++;
    c->origin->nstreams--;
    c->origin->pool->nstreams--;
}

void
pool_h2_closed(struct upstream *up, int code, const char *why)
{
    struct pool_conn *c = pool_conn_of(up);
    struct pool_origin *o = c->origin;

    if (!c->idle)
        o->nbusy--;
    /* Closed before the server's SETTINGS: the waiters it was to carry
     * fail as they would on a failed connect. */
    if (!codec_http2_ready(up) && c->requests == 0 && c->streams == 0)
        pool_origin_fail_waiters(o, pool_origin_per_connect(o), code, why,
                                 NULL);
    pool_close(up, why);
}

/* A new connection speaks HTTP/2: its codec takes it, and it leases as
 * many streams to the waiters as it may. */
static void
pool_h2_start(struct upstream *up)
{
    struct pool_conn *c = pool_conn_of(up);
    struct pool_origin *o = c->origin;

    if (codec_http2_attach(up, o->pool->cfg) < 0) {
        pool_origin_fail_waiters(o, 1, HCONN_ENO_MEMORY,
                                 "out of memory starting HTTP/2", NULL);
        o->pool->nopen--;
        upstream_free(up);
        pool_grow_wanting(o->pool);
        pool_origin_maybe_free(o);
        return;
    }
    c->h2 = true;
    TAILQ_INSERT_TAIL(&o->h2conns, c, h2_entry);
    o->nh2++;
    o->pool->nh2++;
    o->nbusy++;
    log_debug("upstream %lu: HTTP/2%s", upstream_id(up),
              upstream_is_tls(up) ? "" : " (h2c, prior knowledge)");
    pool_h2_update(up);
    pool_origin_grow(o); /* waiters past its capacity */
    pool_origin_maybe_free(o);
}

/* A TLS connection of an origin asking for HTTP/2 alone: the server must
 * have chosen h2. */
static bool
pool_check_alpn(struct upstream *up, struct pool_origin *o)
{
    char message[200];

    if (o->proto != POOL_PROTO_H2 || !o->tls ||
        strcmp(upstream_alpn(up), "h2") == 0)
        return true;
    if (upstream_alpn(up)[0] == '\0')
        snprintf(message, sizeof message,
                 "%s chose no protocol by ALPN: HTTP/2 (http_version \"2\") "
                 "needs h2",
                 upstream_peer(up));
    else
        snprintf(message, sizeof message,
                 "%s chose \"%s\" by ALPN: HTTP/2 (http_version \"2\") needs "
                 "h2",
                 upstream_peer(up), upstream_alpn(up));
    /* Every waiter of the origin would hear the same. */
    pool_origin_fail_waiters(o, o->nwaiting, HCONN_EUNKNOWN_PROTOCOL, message,
                             NULL);
    upstream_set_clean(up, true);
    o->pool->nopen--;
    upstream_free(up);
    pool_grow_wanting(o->pool);
    pool_origin_maybe_free(o);
    return false;
}

static void
pool_connected_cb(struct upstream *up, int error, const char *message,
                  void *arg)
{
    struct pool_conn *c = pool_conn_of(up);
    struct pool_origin *o = c->origin;
    struct pool_waiter *w;
    char why[400];
    bool h2;

    o->nconnecting--;
    TAILQ_REMOVE(&o->pool->connecting, c, lru_entry);
    if (error == HCONN_ETLS_FAILED && o->proto == POOL_PROTO_H2 &&
        strstr(message, "no application protocol") != NULL) {
        /* The server refused the offer of h2 alone (RFC 7301 §3.2). */
        snprintf(why, sizeof why,
                 "%.300s: the server chose none of the ALPN offer \"h2\" "
                 "(http_version \"2\")",
                 message);
        error = HCONN_EUNKNOWN_PROTOCOL;
        message = why;
    }
    if (error != 0) {
        log_debug("upstream %lu: %s", upstream_id(up), message);
        /* message lives in up: tell the waiters before freeing it. A
         * connect that was to carry many streams fails them all. */
        pool_origin_fail_waiters(o, pool_origin_per_connect(o), error, message,
                                 upstream_take_fail_answer(up));
        o->pool->nopen--;
        upstream_free(up);
        pool_grow_wanting(o->pool);
        pool_origin_maybe_free(o);
        return;
    }
    if (upstream_is_tls(up)) {
        o->pool->stats->tls_handshakes++;
        if (upstream_tls_resumed(up))
            o->pool->stats->tls_resumed++;
    }
    if (!pool_check_alpn(up, o))
        return;
    h2 = o->proto == POOL_PROTO_H2 ||
         (o->proto == POOL_PROTO_AUTO && strcmp(upstream_alpn(up), "h2") == 0);
    if (h2) {
        pool_h2_start(up);
        return;
    }
    w = pool_origin_next_waiter(o, true);
    if (w != NULL)
        pool_hand_over(up, w);
    else
        pool_idle_add(up);
    if (o->proto == POOL_PROTO_AUTO && !o->h1_answered) {
        /* HTTP/1.1 after all: one connection per waiter again. */
        o->h1_answered = true;
        pool_origin_grow(o);
    }
}

/* Makes room for one more connection under the total limit, closing the
 * oldest idle connection if need be. */
static bool
pool_make_room(struct pool *pool)
{
    struct pool_conn *oldest = TAILQ_FIRST(&pool->lru);
    struct upstream *victim;
    struct pool_origin *o;

    if (pool->nopen < pool->cfg->pool_max_total)
        return true;
    if (oldest == NULL)
        return false;
    victim = oldest->up;
    /* Not pool_close: that would re-enter pool_grow_wanting. */
    o = oldest->origin;
    pool_idle_remove(victim);
    pool_conn_forget(oldest);
    upstream_set_clean(victim, true);
    pool->nopen--;
    log_debug("upstream %lu: closed to make room (total limit %zu)",
              upstream_id(victim), pool->cfg->pool_max_total);
    upstream_free(victim);
    pool_origin_maybe_free(o);
    return true;
}

/* HTTP/2 connections of o still waiting for the server's SETTINGS: room
 * for waiters as much as connects under way. */
static size_t
pool_origin_h2_pending(const struct pool_origin *o)
{
    const struct pool_conn *c;
    size_t n = 0;

    TAILQ_FOREACH(c, &o->h2conns, h2_entry)
    n += codec_http2_usable(c->up) && !codec_http2_ready(c->up);
    return n;
}

/* The ALPN offer for proto (PROTOCOL.md 3.6). */
static void
pool_set_alpn(struct upstream *up, enum pool_proto proto)
{
    static const unsigned char h1[] = "\x08http/1.1";
    static const unsigned char h2[] = "\x02h2";
    static const unsigned char both[] = "\x02h2\x08http/1.1";

    if (proto == POOL_PROTO_H2)
        upstream_set_alpn(up, h2, sizeof h2 - 1);
    else if (proto == POOL_PROTO_AUTO)
        upstream_set_alpn(up, both, sizeof both - 1);
    else
        upstream_set_alpn(up, h1, sizeof h1 - 1);
}

/* Starts connects until every waiter has one under way, as far as the
 * limits allow; remembers the origin if they don't. */
static void
pool_origin_grow(struct pool_origin *o)
{
    struct pool *pool = o->pool;
    size_t per = pool_origin_per_connect(o);
    size_t pending = pool_origin_h2_pending(o);
    bool short_of;

    if (pool->stopped)
        return;
    while ((o->nconnecting + pending) * per < o->nwaiting &&
           o->nidle + o->nbusy + o->nconnecting <
               pool->cfg->pool_max_per_origin &&
           pool_make_room(pool)) {
        struct pool_waiter *w = TAILQ_FIRST(&o->waiters);
        struct upstream *up = upstream_new(pool->base, o->host, o->port,
                                           sizeof(struct pool_conn));
        struct pool_conn *c;

        if (up == NULL)
            break;
        c = pool_conn_of(up);
        c->up = up;
        c->origin = o;
        upstream_set_route(up, o->addr_check, o->addr_check_arg,
                           pool->cfg->connect_attempt_delay,
                           o->has_source_addr ? &o->source_addr : NULL,
                           o->source_port);
        if (o->connect_head != NULL)
            upstream_set_tunnel(up, o->tls_host, o->tls_port, o->connect_head,
                                o->connect_head_len);
        if (o->tls)
            pool_set_alpn(up, o->proto);
        o->nconnecting++;
        TAILQ_INSERT_TAIL(&pool->connecting, c, lru_entry);
        pool->nopen++;
        pool->stats->reuse_misses++;
        log_debug("upstream %lu: connecting to %s", upstream_id(up), o->label);
        upstream_connect(up, pool->resolver, w->timeout,
                         o->tls ? pool->tls : NULL, o->tls_options, o->key,
                         pool_connected_cb, o);
    }
    short_of = (o->nconnecting + pending) * per < o->nwaiting;
    if (short_of && !o->wanting)
        TAILQ_INSERT_TAIL(&pool->wanting, o, wanting_entry);
    else if (!short_of && o->wanting)
        TAILQ_REMOVE(&pool->wanting, o, wanting_entry);
    o->wanting = short_of;
}

static void
pool_grow_wanting(struct pool *pool)
{
    struct pool_origin *o, *next;

    TAILQ_FOREACH_SAFE(o, &pool->wanting, wanting_entry, next)
    pool_origin_grow(o);
}

/* Remembers that a request of uid used o (stats show o to uid). */
static void
pool_origin_note_uid(struct pool_origin *o, uid_t uid)
{
    for (size_t i = 0; i < o->nuids; i++)
        if (o->uids[i] == uid)
            return;
    if (o->nuids < POOL_ORIGIN_UIDS)
        o->uids[o->nuids++] = uid;
}

/* The most recently used idle HTTP/1.1 connection of o, or NULL (idle
 * HTTP/2 ones are leased by the stream). */
static struct pool_conn *
pool_origin_idle_h1(const struct pool_origin *o)
{
    struct pool_conn *c;

    TAILQ_FOREACH(c, &o->idle, origin_entry)
    if (!c->h2)
        break;
    return c;
}

int
pool_lease(struct pool *pool, const struct pool_target *target,
           struct pool_waiter *w, struct upstream **out, double timeout)
{
    struct pool_origin *o = pool_origin_find(pool, target, true);
    struct pool_conn *c;

    *out = NULL;
    if (o == NULL)
        return HCONN_ENO_MEMORY;
    pool_origin_note_uid(o, target->uid);
    TAILQ_FOREACH(c, &o->h2conns, h2_entry)
    {
        if (w->fresh || codec_spare(c->up) == 0)
            continue;
        pool_h2_take(c->up);
        pool->stats->reuse_hits++;
        *out = c->up;
        return 0;
    }
    while (!w->fresh && (c = pool_origin_idle_h1(o)) != NULL) {
        struct upstream *up = c->up;

        pool_idle_remove(up);
        if (!upstream_is_reusable(up)) {
            upstream_set_clean(up, true);
            pool_discard(up, "closed or dirty when leased");
            continue;
        }
        o->nbusy++;
        pool->stats->reuse_hits++;
        *out = up;
        return 0;
    }
    w->origin = o;
    w->timeout = timeout;
    TAILQ_INSERT_TAIL(&o->waiters, w, entry);
    o->nwaiting++;
    pool_origin_grow(o);
    return 0;
}

void
pool_cancel(struct pool_waiter *w)
{
    struct pool_origin *o = w->origin;

    if (o == NULL)
        return;
    TAILQ_REMOVE(&o->waiters, w, entry);
    o->nwaiting--;
    w->origin = NULL;
    /* A connect started for this waiter goes on: the next waiter or the
     * idle list will use it. */
    pool_origin_grow(o);
    pool_origin_maybe_free(o);
}

void
pool_release(struct upstream *up)
{
    struct pool_conn *c = pool_conn_of(up);
    struct pool_origin *o = c->origin;
    struct pool_waiter *w;

    o->nbusy--;
    c->requests++;
    /* Bytes after a complete response must never become the next
     * request's response. Handed straight to a waiter, the connection
     * skips the idle watch, so it is checked here; an idle one is watched,
     * and checked again when leased, so the common case pays nothing. */
    if (o->nwaiting > 0 && !upstream_is_reusable(up)) {
        upstream_set_clean(up, true);
        pool_close(up, "bytes arrived after its response");
        return;
    }
    w = pool_origin_next_waiter(o, false);
    if (w != NULL)
        pool_hand_over(up, w);
    else
        pool_idle_add(up);
}

void
pool_drop(struct upstream *up)
{
    pool_conn_of(up)->origin->nbusy--;
    pool_close(up, "not reusable");
}

void
pool_close_idle(struct pool *pool)
{
    struct pool_conn *c;

    while ((c = TAILQ_FIRST(&pool->lru)) != NULL) {
        upstream_set_clean(c->up, true);
        pool_close(c->up, "shutting down");
    }
}

void
pool_stop(struct pool *pool)
{
    pool->stopped = true;
}

void
pool_free(struct pool *pool)
{
    struct pool_conn *c;

    if (pool == NULL)
        return;
    pool->stopped = true;
    pool_close_idle(pool);
    /* HTTP/2 connections whose last stream ended just now, before their
     * codec could make them idle. */
    for (size_t b = 0; b < POOL_BUCKETS; b++) {
        struct pool_origin *o = pool->buckets[b], *next;

        for (; o != NULL; o = next) {
            next = o->hash_next;
            while ((c = TAILQ_FIRST(&o->h2conns)) != NULL) {
                if (!c->idle)
                    o->nbusy--;
                upstream_set_clean(c->up, true);
                pool_discard(c->up, "stopping");
            }
            pool_origin_maybe_free(o);
        }
    }
    while ((c = TAILQ_FIRST(&pool->connecting)) != NULL) {
        struct pool_origin *o = c->origin;

        TAILQ_REMOVE(&pool->connecting, c, lru_entry);
        o->nconnecting--;
        pool->nopen--;
        log_debug("upstream %lu: connect to %s abandoned (stopping)",
                  upstream_id(c->up), o->label);
        upstream_free(c->up);
        pool_origin_maybe_free(o);
    }
    for (size_t b = 0; b < POOL_BUCKETS; b++)
        if (pool->buckets[b] != NULL)
            log_warn("pool freed with origin %s still in use",
                     pool->buckets[b]->label);
    free(pool);
}

size_t
pool_count(const struct pool *pool, size_t *idle)
{
    if (idle != NULL)
        *idle = pool->nidle;
    return pool->nopen;
}

void
pool_stats(const struct pool *pool, bool all, uid_t uid,
           void (*cb)(void *arg, const struct pool_origin_stats *st), void *arg,
           size_t *open, size_t *idle)
{
    size_t nopen = 0, nidle = 0;

    for (size_t b = 0; b < POOL_BUCKETS; b++) {
        for (struct pool_origin *o = pool->buckets[b]; o != NULL;
             o = o->hash_next) {
            bool mine = all;

            for (size_t i = 0; !mine && i < o->nuids; i++)
                mine = o->uids[i] == uid;
            if (!mine)
                continue;
            nopen += o->nidle + o->nbusy + o->nconnecting;
            nidle += o->nidle;
            cb(arg, &(struct pool_origin_stats){o->label, o->nidle, o->nbusy,
                                                o->nconnecting, o->nwaiting,
                                                o->nh2, o->nstreams});
        }
    }
    if (open != NULL)
        *open = nopen;
    if (idle != NULL)
        *idle = nidle;
}

unsigned
pool_requests(const struct upstream *up)
{
    return pool_conn_of(up)->requests;
}

bool
pool_is_idle(const struct upstream *up)
{
    return pool_conn_of(up)->idle;
}
