/*
 * budget.c — bytes held on behalf of clients, per uid and in all.
 *
 * Every buffer a client makes the daemon fill is charged to the client's
 * uid while it is held: the partial message line in its input, each
 * parsed request until its exchange ends (an estimate of the parse's own
 * size), request bodies held, and replies queued for it. The counts are
 * the held_bytes figures of the uid (uidstats) and of the server.
 * Crossing max_held_bytes or the uid's share refuses the next request (or
 * closes a client whose unfinished line crosses it) with limit_exceeded
 * naming the limit: one user cannot spend the memory every user shares.
 */
#include <stdio.h>
#include <string.h>

#include "budget.h"
#include "config.h"
#include "hconn_error.h"
#include "server.h"
#include "uidstats.h"
#include "wire.h"

void
budget_charge(struct server *srv, uid_t uid, long long delta)
{
    if (delta != 0)
        budget_charge_stats(srv, uidstats_get(srv, uid), delta);
}

void
budget_charge_stats(struct server *srv, struct stats *uid_stats,
                    long long delta)
{
    srv->stats.held_bytes += (uint64_t)delta;
    uid_stats->held_bytes += (uint64_t)delta;
}

int
budget_check(struct server *srv, uid_t uid, size_t extra, char *why, size_t len)
{
    const struct config *cfg = srv->cfg;
    size_t share = config_held_bytes_per_uid(cfg);
    size_t mine = (size_t)uidstats_get(srv, uid)->held_bytes;
    size_t all = (size_t)srv->stats.held_bytes;

    if (mine + extra > share) {
        snprintf(why, len,
                 "bytes held for uid %ld (%zu, and %zu more) would exceed "
                 "max_held_bytes_per_uid (%zu)",
                 (long)uid, mine, extra, share);
        return HCONN_ELIMIT_EXCEEDED;
    }
    if (all + extra > cfg->max_held_bytes) {
        snprintf(why, len,
                 "bytes held for all clients (%zu, and %zu more) would "
                 "exceed max_held_bytes (%zu)",
                 all, extra, cfg->max_held_bytes);
        return HCONN_ELIMIT_EXCEEDED;
    }
    return 0;
}

size_t
budget_request_cost(const struct wire_request *r)
{
    const struct wire_tls *t = &r->tls_options;
    size_t n = 4096 + 2 * strlen(r->target);

    for (size_t i = 0; i < r->nheaders; i++)
        n += 320 +
             2 * (strlen(r->headers[i].name) + strlen(r->headers[i].value));
    for (size_t i = 0; i < r->proxy.nheaders; i++)
        n += 320 + 2 * (strlen(r->proxy.headers[i].name) +
                        strlen(r->proxy.headers[i].value));
    if (r->has_tls_options)
        n += 2 * ((t->ca_pem ? strlen(t->ca_pem) : 0) +
                  (t->cert_pem ? strlen(t->cert_pem) : 0) +
                  (t->key_pem ? strlen(t->key_pem) : 0));
    return n;
}
