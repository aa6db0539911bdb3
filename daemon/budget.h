/*
 * budget.h — the bytes hconnd holds on behalf of clients (partial
 * message lines, parsed requests in flight, request bodies, queued
 * replies), counted per client uid (that uid's figures, uidstats) and in
 * all (the server's), against max_held_bytes and each uid's share,
 * max_held_bytes_per_uid.
 */
#ifndef HCONND_BUDGET_H
#define HCONND_BUDGET_H

#include <stddef.h>
#include <sys/types.h>

struct server;
struct stats;
struct wire_request;

/* Adds delta bytes (negative: gives them back) to uid's count. */
void budget_charge(struct server *srv, uid_t uid, long long delta);

/* The same, given uid's figures (uidstats_lookup), as a session that
 * charges its uid several times per request keeps them. */
void budget_charge_stats(struct server *srv, struct stats *uid_stats,
                         long long delta);

/* Whether extra more bytes for uid stay within both limits. Returns 0,
 * or HCONN_ELIMIT_EXCEEDED with why naming the limit. */
int budget_check(struct server *srv, uid_t uid, size_t extra, char *why,
                 size_t len);

/* What a parsed request holds while it is in flight, roughly: its
 * message's JSON values (about 320 bytes a header pair) and the copies
 * the exchange makes of its strings (head, PEM material), so a request
 * of 100,000 header pairs counts as the tens of megabytes it holds. */
size_t budget_request_cost(const struct wire_request *r);

#endif
