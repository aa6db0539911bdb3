/*
 * uidstats.h — traffic figures kept per client uid, so {"op":"stats"}
 * can show a client other than root its own figures only.
 */
#ifndef HCONND_UIDSTATS_H
#define HCONND_UIDSTATS_H

#include <sys/types.h>

#include "server.h"

struct uidstats;

/* The figures of uid, created zero on first use; never NULL (a shared
 * scratch entry when memory runs out). */
struct stats *uidstats_get(struct server *srv, uid_t uid);

/* The same, or NULL when memory runs out: for a pointer kept (entries
 * live as long as the daemon), which must not be the scratch entry. */
struct stats *uidstats_lookup(struct server *srv, uid_t uid);

/* Frees every entry. */
void uidstats_free(struct uidstats *u);

#endif
