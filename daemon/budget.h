/*
 * budget.h — the bytes hconnd holds on behalf of clients (partial
 * message lines, parsed requests in flight, request bodies, queued
 * replies), counted per client uid and in all, against max_held_bytes
 * and each uid's share, max_held_bytes_per_uid.
 */
#ifndef HCONND_BUDGET_H
#define HCONND_BUDGET_H

#include <stddef.h>
#include <sys/types.h>

struct budget;
struct config;

struct budget *budget_new(void);
void budget_free(struct budget *b);

/* Adds delta bytes (negative: gives them back) to uid's count. */
void budget_charge(struct budget *b, uid_t uid, long long delta);

/* Whether extra more bytes for uid stay within both limits of cfg.
 * Returns 0, or HCONN_ELIMIT_EXCEEDED with why naming the limit. */
int budget_check(const struct budget *b, const struct config *cfg, uid_t uid,
                 size_t extra, char *why, size_t len);

/* Bytes held for uid, and for everyone. */
size_t budget_held(const struct budget *b, uid_t uid);
size_t budget_total(const struct budget *b);

#endif
