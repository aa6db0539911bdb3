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
    /* The entry found last: a request looks its uid up about ten times
     * (budget charges, counters), nearly always the same one. */
    struct uidstats_entry *last;
};

struct stats *
uidstats_get(struct server *srv, uid_t uid)
{
    static struct stats scratch; /* out of memory: counted nowhere */
    struct stats *st = uidstats_lookup(srv, uid);

    return st != NULL ? st : &scratch;
}

struct stats *
uidstats_lookup(struct server *srv, uid_t uid)
{
    struct uidstats_entry **b, *e;

    if (srv->uidstats != NULL && (e = srv->uidstats->last) != NULL &&
        e->uid == uid)
        return &e->stats;
    if (srv->uidstats == NULL &&
        (srv->uidstats = calloc(1, sizeof *srv->uidstats)) == NULL)
        return NULL;
    b = &srv->uidstats->buckets[uid % UIDSTATS_BUCKETS];
    for (e = *b; e != NULL; e = e->next)
        if (e->uid == uid)
            break;
    if (e == NULL) {
        if ((e = calloc(1, sizeof *e)) == NULL)
            return NULL;
        e->uid = uid;
        e->next = *b;
        *b = e;
    }
    srv->uidstats->last = e;
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
