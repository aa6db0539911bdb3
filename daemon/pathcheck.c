/*
 * pathcheck.c — the destinations behind a request's first hop, checked
 * like a direct request.
 *
 * A request reaches more than the host it connects to when:
 *   - it goes through a proxy (its own "proxy", or the daemon's default):
 *     the proxy connects to the origin;
 *   - its target is absolute-form ("http://10.0.0.1/x"): that uses the
 *     origin as a forward proxy, which then connects to the host the
 *     target names. (CONNECT as a method never gets here: the codec
 *     refuses it, tunnels being the "proxy" field's job.)
 * Each such inner destination passes the rule's schemes, hosts and
 * ports, and an origin used as a
 * forward proxy must be one the rule's "proxies" allow. When the rule
 * refuses address classes, the daemon resolves each inner host itself
 * and refuses the request if any address is of a refused class: the
 * proxy, not the daemon, picks the address it connects to, so every one
 * must be acceptable. (The proxy may also resolve the name differently,
 * from other DNS or another view of it; the check then says only what the
 * name means here. A name the daemon cannot resolve is refused when the
 * rule refuses any address class.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hconn_error.h"
#include "pathcheck.h"
#include "resolve.h"
#include "url.h"

/* One inner destination. */
struct pathcheck_dest {
    char host[URL_HOST_MAX + 1];
    uint16_t port;
    const char *role; /* for messages: "origin behind the proxy" ... */
};

struct pathcheck {
    struct pathcheck_dest dest[2];
    size_t ndest, next; /* next to resolve */
    struct resolver *resolver;
    struct resolve_waiter waiter;     /* resolving dest[next] */
    bool waiting;                     /* waiter is pending */
    struct policy_addr_filter filter; /* a copy: the caller's may go */
    pathcheck_cb cb;                  /* NULL once cancelled */
    void *arg;
    bool starting; /* inside pathcheck_start: results are returned */
    bool done;     /* finished while starting */
    int rc;
    char why[512];
};

/* True for "/..." and "*": the origin serves the request itself. */
static bool
pathcheck_origin_form(const char *target)
{
    return target[0] == '/' || strcmp(target, "*") == 0;
}

/* The inner destination a non-origin-form target names. Returns 0, or
 * HCONN_EDENIED with why. */
static int
pathcheck_target_dest(const struct wire_request *req, struct pathcheck_dest *d,
                      bool *tls, char *why, size_t len)
{
    char err[256];
    struct url *u;
    int rc;

    if ((u = malloc(sizeof *u)) == NULL) {
        snprintf(why, len, "out of memory");
        return HCONN_ENO_MEMORY;
    }
    rc = url_parse(req->target, u, err, sizeof err);
    if (rc == 0) {
        snprintf(d->host, sizeof d->host, "%s", u->host);
        d->port = u->port;
        *tls = u->tls;
    }
    free(u);
    if (rc != 0) {
        snprintf(why, len,
                 "target \"%.200s\": neither origin-form (\"/...\") nor an "
                 "http:// or https:// URL, so what it reaches cannot be "
                 "checked",
                 req->target);
        return HCONN_EDENIED;
    }
    d->role = "the absolute-form target";
    return 0;
}

int
pathcheck_request(const struct policy_rule *rule,
                  const struct wire_request *req, char *why, size_t len)
{
    struct pathcheck_dest d;
    struct policy_request inner = {0};
    char detail[512];
    int rc;

    /* A rule that restricts nothing has nothing to check, even in a
     * target no proxy could make sense of. */
    if (pathcheck_origin_form(req->target) ||
        !policy_restricts_destinations(rule))
        return 0;
    rc = pathcheck_target_dest(req, &d, &inner.tls, why, len);
    if (rc < 0)
        return rc;
    /* The origin acts as a forward proxy, which "proxies" must allow ... */
    rc = policy_check_request(rule,
                              &(struct policy_request){
                                  .tls = req->tls,
                                  .host = req->host,
                                  .port = req->port,
                                  .proxy_host = req->host,
                                  .proxy_port = req->port,
                              },
                              detail, sizeof detail);
    /* ... for the target's host, which passes as a direct request. */
    inner.host = d.host;
    inner.port = d.port;
    if (rc == 0)
        rc = policy_check_request(rule, &inner, detail, sizeof detail);
    if (rc < 0)
        snprintf(why, len, "%s (%s \"%.200s\")", detail, d.role, req->target);
    return rc;
}

/* Finishes: reports to the caller now (while starting) or by callback. */
static void
pathcheck_finish(struct pathcheck *pc, int rc)
{
    pc->rc = rc;
    if (pc->starting) {
        pc->done = true;
        return;
    }
    if (pc->cb != NULL)
        pc->cb(pc->arg, rc, pc->why);
    free(pc);
}

static void pathcheck_next(struct pathcheck *pc);

/* Every address of one destination must pass the filter: on to the
 * next destination, or finished. Takes addrs (NULL: error and message). */
static void
pathcheck_check(struct pathcheck *pc, struct resolve_addrs *addrs, int error,
                const char *message)
{
    struct pathcheck_dest *d = &pc->dest[pc->next];
    char detail[384];
    int rc = 0;

    if (addrs == NULL) {
        snprintf(pc->why, sizeof pc->why,
                 "policy rule %s: %s (%s), so its addresses cannot be "
                 "checked",
                 pc->filter.rule, message, d->role);
        pathcheck_finish(pc, error == HCONN_ENO_MEMORY ? error : HCONN_EDENIED);
        return;
    }
    for (size_t i = 0; i < addrs->n && rc == 0; i++) {
        rc = policy_check_address(&pc->filter,
                                  (const struct sockaddr *)&addrs->addr[i],
                                  detail, sizeof detail);
        if (rc < 0)
            snprintf(pc->why, sizeof pc->why, "%s: %s (%s)", d->host, detail,
                     d->role);
    }
    resolve_addrs_unref(addrs);
    if (rc < 0) {
        pathcheck_finish(pc, rc);
        return;
    }
    pc->next++;
    pathcheck_next(pc);
}

static void
pathcheck_resolved_cb(struct resolve_waiter *w, struct resolve_addrs *addrs,
                      int error, const char *message)
{
    struct pathcheck *pc =
        (struct pathcheck *)((char *)w - offsetof(struct pathcheck, waiter));

    if (w->more) {
        /* One family's addresses: all of them must pass, so wait for the
         * whole answer, which follows. */
        resolve_addrs_unref(addrs);
        return;
    }
    pc->waiting = false;
    pathcheck_check(pc, addrs, error, message);
}

/* Resolves the next destination, or finishes when all passed. */
static void
pathcheck_next(struct pathcheck *pc)
{
    struct resolve_addrs *addrs = NULL;
    char err[384];
    int rc;

    if (pc->next >= pc->ndest) {
        pathcheck_finish(pc, 0);
        return;
    }
    /* A literal, a hosts entry or a cached answer comes back at once. */
    pc->waiter.cb = pathcheck_resolved_cb;
    rc = resolve_name(pc->resolver, pc->dest[pc->next].host, &pc->waiter,
                      &addrs, err, sizeof err);
    if (rc == 0 && pc->waiter.more) {
        resolve_addrs_unref(addrs); /* a part: the whole answer follows */
        rc = 1;
    }
    if (rc == 1)
        pc->waiting = true;
    else
        pathcheck_check(pc, addrs, rc, err);
}

int
pathcheck_start(struct resolver *resolver, const struct wire_request *req,
                bool tunneled, const struct policy_addr_filter *f,
                pathcheck_cb cb, void *arg, struct pathcheck **out, char *why,
                size_t len)
{
    struct pathcheck *pc;
    bool tls;
    int rc;

    *out = NULL;
    if (f == NULL || (!tunneled && pathcheck_origin_form(req->target)))
        return 0;
    if ((pc = calloc(1, sizeof *pc)) == NULL) {
        snprintf(why, len, "out of memory");
        return HCONN_ENO_MEMORY;
    }
    pc->resolver = resolver;
    pc->filter = *f;
    pc->cb = cb;
    pc->arg = arg;
    if (tunneled) {
        struct pathcheck_dest *d = &pc->dest[pc->ndest++];

        snprintf(d->host, sizeof d->host, "%s", req->host);
        d->port = req->port;
        d->role = "the origin behind the proxy";
    }
    if (!pathcheck_origin_form(req->target) &&
        pathcheck_target_dest(req, &pc->dest[pc->ndest], &tls, why, len) == 0)
        pc->ndest++;
    pc->starting = true;
    pathcheck_next(pc);
    pc->starting = false;
    if (!pc->done) {
        *out = pc;
        return 1;
    }
    rc = pc->rc;
    if (rc < 0)
        snprintf(why, len, "%s", pc->why);
    free(pc);
    return rc;
}

void
pathcheck_cancel(struct pathcheck *pc)
{
    if (pc == NULL)
        return;
    if (pc->waiting)
        resolve_cancel(&pc->waiter);
    free(pc);
}
