/*
 * localaddr.h — the machine's own addresses, read at start and kept
 * current as interfaces change, for the policy to count as loopback.
 */
#ifndef HCONND_LOCALADDR_H
#define HCONND_LOCALADDR_H

#include "policy.h"

struct event_base;
struct localaddr;

/* Reads the addresses and watches for changes on base. NULL: out of
 * memory. */
struct localaddr *localaddr_new(struct event_base *base);

void localaddr_free(struct localaddr *la);

/* The current list; the pointer stays valid until localaddr_free (the
 * list behind it changes). NULL for a NULL la. */
const struct policy_own_addrs *localaddr_addrs(const struct localaddr *la);

#endif
