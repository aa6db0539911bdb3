/*
 * uidstats.c — per-uid figures in a small chained hash table. Entries
 * live as long as the daemon: uids are few and only root makes new ones.
 */
#include <stdlib.h>

#include "uidstats.h"

#define UIDSTATS_BUCKETS 64

struct uidstats_entry {
    uid_t uid;
    struct stats stats;
    struct uidstats_entry *next;
};

struct uidstats {
    struct uidstats_entry *buckets[UIDSTATS_BUCKETS];
};

struct stats *
uidstats_get(struct server *srv, uid_t uid)
{
    static struct stats scratch; /* out of memory: counted nowhere */
    struct uidstats_entry **b, *e;

    if (srv->uidstats == NULL &&
        (srv->uidstats = calloc(1, sizeof *srv->uidstats)) == NULL)
        return &scratch;
    b = &srv->uidstats->buckets[uid % UIDSTATS_BUCKETS];
    for (e = *b; e != NULL; e = e->next)
        if (e->uid == uid)
            return &e->stats;
    if ((e = calloc(1, sizeof *e)) == NULL)
        return &scratch;
    e->uid = uid;
    e->next = *b;
    *b = e;
    return &e->stats;
}

void
uidstats_free(struct uidstats *u)
{
    if (u == NULL)
        return;
    for (size_t i = 0; i < UIDSTATS_BUCKETS; i++) {
        while (u->buckets[i] != NULL) {
            struct uidstats_entry *e = u->buckets[i];

            u->buckets[i] = e->next;
            free(e);
        }
    }
    free(u);
}
