/*
 * budget.c — bytes held on behalf of clients, per uid and in all.
 *
 * Every buffer a client makes the daemon fill is charged to the client's
 * uid while it is held: the partial message line in its input, each
 * parsed request until its exchange ends (an estimate of the parse's own
 * size), request bodies held, and replies queued for it. Crossing
 * max_held_bytes or the uid's share refuses the next request (or closes a
 * client whose unfinished line crosses it) with limit_exceeded naming the
 * limit: one user cannot spend the memory every user shares.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "budget.h"
#include "config.h"
#include "hconn_error.h"

#define BUDGET_BUCKETS 64

struct budget_uid {
    uid_t uid;
    size_t held;
    struct budget_uid *next;
};

struct budget {
    size_t total;
    struct budget_uid *buckets[BUDGET_BUCKETS];
};

struct budget *
budget_new(void)
{
    return calloc(1, sizeof(struct budget));
}

void
budget_free(struct budget *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < BUDGET_BUCKETS; i++) {
        while (b->buckets[i] != NULL) {
            struct budget_uid *u = b->buckets[i];

            b->buckets[i] = u->next;
            free(u);
        }
    }
    free(b);
}

/* uid's entry; created when create is set (NULL when memory runs out:
 * that uid's bytes then count in the total only). */
static struct budget_uid *
budget_find(const struct budget *b, uid_t uid, bool create)
{
    struct budget_uid *u;

    for (u = b->buckets[uid % BUDGET_BUCKETS]; u != NULL; u = u->next)
        if (u->uid == uid)
            return u;
    if (!create || (u = calloc(1, sizeof *u)) == NULL)
        return NULL;
    u->uid = uid;
    u->next = b->buckets[uid % BUDGET_BUCKETS];
    ((struct budget *)b)->buckets[uid % BUDGET_BUCKETS] = u;
    return u;
}

void
budget_charge(struct budget *b, uid_t uid, long long delta)
{
    struct budget_uid *u;

    if (b == NULL || delta == 0)
        return;
    u = budget_find(b, uid, true);
    b->total += (size_t)delta;
    if (u != NULL)
        u->held += (size_t)delta;
}

int
budget_check(const struct budget *b, const struct config *cfg, uid_t uid,
             size_t extra, char *why, size_t len)
{
    size_t share = config_held_bytes_per_uid(cfg);
    size_t mine = budget_held(b, uid);

    if (b == NULL)
        return 0;
    if (mine + extra > share) {
        snprintf(why, len,
                 "bytes held for uid %ld (%zu, and %zu more) would exceed "
                 "max_held_bytes_per_uid (%zu)",
                 (long)uid, mine, extra, share);
        return HCONN_ELIMIT_EXCEEDED;
    }
    if (b->total + extra > cfg->max_held_bytes) {
        snprintf(why, len,
                 "bytes held for all clients (%zu, and %zu more) would "
                 "exceed max_held_bytes (%zu)",
                 b->total, extra, cfg->max_held_bytes);
        return HCONN_ELIMIT_EXCEEDED;
    }
    return 0;
}

size_t
budget_held(const struct budget *b, uid_t uid)
{
    const struct budget_uid *u = b != NULL ? budget_find(b, uid, false) : NULL;

    return u != NULL ? u->held : 0;
}

size_t
budget_total(const struct budget *b)
{
    return b != NULL ? b->total : 0;
}
