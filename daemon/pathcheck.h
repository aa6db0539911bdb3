/*
 * pathcheck.h — what a request reaches behind its first hop (the origin
 * behind a proxy, the host an absolute-form target names),
 * checked against the policy rule like a direct request (see pathcheck.c).
 */
#ifndef HCONND_PATHCHECK_H
#define HCONND_PATHCHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "policy.h"
#include "wire.h"

struct resolver;
struct pathcheck;

/* The outcome of an address check: 0, or HCONN_EDENIED with why. */
typedef void (*pathcheck_cb)(void *arg, int rc, const char *why);

/*
 * Checks a target that is not origin-form ("/..." or "*"): the origin is
 * used as a forward proxy, which the rule's "proxies" must allow, and the
 * host:port the target names passes the rule's schemes (not for
 * CONNECT), hosts and ports. Returns 0 (origin-form targets too), or
 * HCONN_EDENIED with why naming the rule, what it refused and the target.
 */
int pathcheck_request(const struct policy_rule *rule,
                      const struct wire_request *req, char *why, size_t len);

/*
 * Resolves each inner destination (the origin when tunneled through a
 * proxy; the target's host when not origin-form) and checks every
 * address against f (NULL: the rule refuses no class, nothing to do).
 * Returns 0 when all passed at once (numeric or hosts-file names),
 * HCONN_EDENIED / HCONN_ENO_MEMORY with why set, or 1 with *pc set when
 * cb will report later (exactly once, unless pathcheck_cancel(*pc) is
 * called first).
 */
int pathcheck_start(struct resolver *resolver, const struct wire_request *req,
                    bool tunneled, const struct policy_addr_filter *f,
                    pathcheck_cb cb, void *arg, struct pathcheck **pc,
                    char *why, size_t len);

/* Withdraws a pending check; its callback will not run. */
void pathcheck_cancel(struct pathcheck *pc);

#endif
