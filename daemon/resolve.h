/*
 * resolve.h — name resolution for every upstream connection: address
 * literals answered at once, hosts files, and one DNS cache shared by all
 * clients (TTLs honoured between a floor and a ceiling, NXDOMAIN and
 * "no address" answers kept briefly, concurrent lookups of one name
 * sharing one pair of A and AAAA queries). Waiters get the first
 * family's addresses without waiting for the other's (RFC 8305 §3).
 */
#ifndef HCONND_RESOLVE_H
#define HCONND_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <jansson.h>

struct config;
struct event_base;
struct resolve_entry;
struct resolver;
struct resolve_waiter;

/* One answer: the addresses of a name (port 0), in the order they came,
 * IPv6 ones first. Shared by reference between the cache and the
 * connections using it. */
struct resolve_addrs {
    unsigned refs; /* resolve_addrs_unref frees at 0 */
    size_t n;      /* entries in addr */
    size_t cap;    /* room in addr */
    struct sockaddr_storage addr[];
};

/* A lookup's outcome, delivered from the loop, never from inside
 * resolve_name: addrs (the callee takes a reference with it, and drops
 * it with resolve_addrs_unref) with error 0, or NULL with HCONN_E... and
 * a message naming the name. */
typedef void (*resolve_cb)(struct resolve_waiter *w,
                           struct resolve_addrs *addrs, int error,
                           const char *message);

/* A pending lookup; embedded in its owner, zero-filled before use. */
struct resolve_waiter {
    resolve_cb cb;
    struct resolve_entry *entry;            /* set while waiting */
    TAILQ_ENTRY(resolve_waiter) entry_link; /* entry's waiters */
    bool more; /* given one family's answer: the whole one follows */
};

/* Creates the resolver: nameservers from cfg->resolv_conf (default
 * /etc/resolv.conf), names from /etc/hosts then cfg->hosts_file. cfg must
 * outlive it (its TTL settings are read at each answer). Returns NULL with
 * err set when a file named in cfg cannot be read or memory is short. */
struct resolver *resolve_new(struct event_base *base, const struct config *cfg,
                             char *err, size_t errlen);

/* SIGHUP: reads the hosts files and resolv.conf again and empties the
 * cache (lookups under way finish). Returns 0, or -1 with err set (the
 * old hosts are kept then). */
int resolve_reload(struct resolver *r, char *err, size_t errlen);

/* Frees the resolver; pending waiters are never called. */
void resolve_free(struct resolver *r);

/*
 * Resolves name (no brackets around IPv6). Returns:
 *   0          *now set: an address literal, a hosts entry or a cached
 *              answer (the caller owns a reference); with w->more set,
 *              one family's, and w->cb later brings the whole answer;
 *   1          w->cb runs later (w must stay valid until then or until
 *              resolve_cancel);
 *   HCONN_E... a cached negative answer or no nameserver (HCONN_EDNS_FAILED)
 *              or out of memory, with err set.
 */
int resolve_name(struct resolver *r, const char *name, struct resolve_waiter *w,
                 struct resolve_addrs **now, char *err, size_t errlen);

/* Withdraws a waiting lookup; the query goes on for the cache's sake. */
void resolve_cancel(struct resolve_waiter *w);

/* Drops a reference taken from resolve_name or a resolve_cb. */
void resolve_addrs_unref(struct resolve_addrs *a);

/* {"cache_hits", "cache_misses", "coalesced", "queries", "hosts",
 * "negative", "entries"} for stats. */
json_t *resolve_stats(const struct resolver *r);

#endif
