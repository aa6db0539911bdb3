/*
 * pathcheck.c — the destinations behind a request's first hop, checked
 * like a direct request.
 *
 * A request reaches more than the host it connects to when:
 *   - it goes through a proxy (its own "proxy", or the daemon's default):
 *     the proxy connects to the origin;
 *   - its target is not origin-form: an absolute-form target
 *     ("http://10.0.0.1/x") or a CONNECT uses the origin as a forward
 *     proxy, which then connects to the host the target names.
 * Each such inner destination passes the rule's schemes (not for CONNECT,
 * whose payload is opaque), hosts and ports, and an origin used as a
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

#include <event2/dns.h>
#include <event2/util.h>

#include "hconn_error.h"
#include "pathcheck.h"
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
    struct evdns_base *dns;
    struct evdns_getaddrinfo_request *req; /* pending resolution */
    struct policy_addr_filter filter;      /* a copy: the caller's may go */
    pathcheck_cb cb;                       /* NULL once cancelled */
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
                      bool *tls, bool *any_scheme, char *why, size_t len)
{
    char err[256];
    struct url *u;
    int rc;

    *any_scheme = strcmp(req->method, "CONNECT") == 0;
    if (*any_scheme) {
        *tls = false;
        rc = url_parse_authority(req->target, 0, 0, d->host, &d->port, err,
                                 sizeof err);
        if (rc == 0 && d->port == 0)
            rc = HCONN_EINVALID_URL;
    } else {
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
    }
    if (rc != 0) {
        snprintf(why, len,
                 "target \"%.200s\": neither origin-form (\"/...\") nor %s, "
                 "so what it reaches cannot be checked",
                 req->target,
                 *any_scheme ? "host:port" : "an http:// or https:// URL");
        return HCONN_EDENIED;
    }
    d->role = *any_scheme ? "the CONNECT target" : "the absolute-form target";
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
    rc =
        pathcheck_target_dest(req, &d, &inner.tls, &inner.any_scheme, why, len);
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

/* Every address of one destination must pass the filter. */
static void
pathcheck_resolved_cb(int result, struct evutil_addrinfo *res, void *arg)
{
    struct pathcheck *pc = arg;
    struct pathcheck_dest *d = &pc->dest[pc->next];
    char detail[384];
    int rc = 0;

    pc->req = NULL;
    if (result == EVUTIL_EAI_CANCEL || pc->cb == NULL) {
        /* Cancelled: nobody waits for this any more. */
        if (res != NULL)
            evutil_freeaddrinfo(res);
        if (!pc->starting)
            free(pc);
        else
            pc->done = true;
        return;
    }
    if (result != 0) {
        snprintf(pc->why, sizeof pc->why,
                 "policy rule %s: cannot resolve \"%s\", %s, to check its "
                 "addresses: %s",
                 pc->filter.rule, d->host, d->role,
                 evutil_gai_strerror(result));
        pathcheck_finish(pc, HCONN_EDENIED);
        return;
    }
    for (struct evutil_addrinfo *a = res; a != NULL && rc == 0;
         a = a->ai_next) {
        rc = policy_check_address(&pc->filter, a->ai_addr, detail,
                                  sizeof detail);
        if (rc < 0)
            snprintf(pc->why, sizeof pc->why, "%s: %s (%s)", d->host, detail,
                     d->role);
    }
    evutil_freeaddrinfo(res);
    if (rc < 0) {
        pathcheck_finish(pc, rc);
        return;
    }
    pc->next++;
    pathcheck_next(pc);
}

/* Resolves the next destination, or finishes when all passed. */
static void
pathcheck_next(struct pathcheck *pc)
{
    struct evutil_addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_protocol = IPPROTO_TCP,
    };
    struct evdns_getaddrinfo_request *req;
    char port[8];

    if (pc->next >= pc->ndest) {
        pathcheck_finish(pc, 0);
        return;
    }
    snprintf(port, sizeof port, "%u", pc->dest[pc->next].port);
    /* A numeric host or one from the hosts file answers inside the call
     * (NULL returned); the callback has run by then. */
    req = evdns_getaddrinfo(pc->dns, pc->dest[pc->next].host, port, &hints,
                            pathcheck_resolved_cb, pc);
    if (req != NULL)
        pc->req = req;
}

int
pathcheck_start(struct evdns_base *dns, const struct wire_request *req,
                bool tunneled, const struct policy_addr_filter *f,
                pathcheck_cb cb, void *arg, struct pathcheck **out, char *why,
                size_t len)
{
    struct pathcheck *pc;
    bool tls, any;
    int rc;

    *out = NULL;
    if (f == NULL || (!tunneled && pathcheck_origin_form(req->target)))
        return 0;
    if ((pc = calloc(1, sizeof *pc)) == NULL) {
        snprintf(why, len, "out of memory");
        return HCONN_ENO_MEMORY;
    }
    pc->dns = dns;
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
        pathcheck_target_dest(req, &pc->dest[pc->ndest], &tls, &any, why,
                              len) == 0)
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
    pc->cb = NULL;
    if (pc->req != NULL)
        evdns_getaddrinfo_cancel(pc->req); /* its callback frees pc */
}
