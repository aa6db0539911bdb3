/*
 * resolve.c — the daemon's one resolver and its cache.
 *
 * A name is answered, in this order, by: an address literal (never sent
 * to any resolver), the hosts files (/etc/hosts, then hosts_file; read at
 * start and on SIGHUP), "localhost" and its subdomains (RFC 6761: always
 * loopback), the cache, and last by DNS through evdns, which never blocks
 * the loop. A DNS lookup asks AAAA and A at once; the answer is the
 * union, IPv6 first, kept for the smaller TTL of the two, clamped to
 * [dns_ttl_min, dns_ttl_max]. A name that does not exist, or has no
 * address, is kept for dns_negative_ttl; a timeout or a server failure is
 * not kept at all, so the next request asks again.
 *
 * As RFC 8305 §3 asks, nobody waits for the slower family: an AAAA
 * answer is handed to the waiters as soon as it comes, an A answer after
 * a 50 ms resolution delay unless AAAA comes first; the other query
 * still finishes, and the cache keeps the union.
 *
 * Every client shares the cache: one uid cannot learn more from it than
 * from asking DNS itself, and the cache cannot be filled with anything
 * but what the configured nameservers said. Lookups of a name already
 * being asked join that lookup instead of sending queries of their own.
 * The table is bounded (dns_cache_size): when full, expired answers go
 * first, then the least recently used.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "config.h"
#include "hconn_error.h"
#include "log.h"
#include "resolve.h"

#define RESOLVE_BUCKETS    1024
#define RESOLVE_NAME_MAX   255
#define RESOLVE_HOSTS_PATH "/etc/hosts"
#define RESOLVE_CONF_PATH  "/etc/resolv.conf"
#define RESOLVE_DELAY      0.05 /* RFC 8305 §3's Resolution Delay */

TAILQ_HEAD(resolve_waiter_list, resolve_waiter);

/* A cached (or pending) answer for one name. */
struct resolve_entry {
    struct resolver *r;
    char *name;                      /* lower case, no trailing dot */
    struct resolve_entry *hash_next; /* bucket chain */
    TAILQ_ENTRY(resolve_entry) lru;  /* r->lru, least recently used first */
    bool pending;                    /* queries under way */
    bool delivering;                 /* waiters being called: keep it */
    bool cached;                     /* in the table */
    bool orphan;                     /* out of the table, in r->orphans,
                                        until its queries end */
    bool starting;                   /* resolve_name is sending its
                                        queries: deliver nothing yet */
    double keep;                     /* settled: seconds to keep it */
    int queries;                     /* A/AAAA queries not yet answered */
    struct resolve_addrs *v6, *v4;   /* answers so far */
    int ttl;                         /* smallest TTL seen, -1: none */
    int dns_error[2];                /* DNS_ERR_* of AAAA [0] and A [1] */
    struct resolve_addrs *addrs;     /* done: the answer, or NULL */
    int error;                       /* done: HCONN_E... when no addrs */
    char message[320];               /* with error */
    double expires;                  /* monotonic seconds */
    struct resolve_waiter_list waiters;
    struct resolve_waiter_list followers; /* given early, awaiting the
                                             final answer */
    /* RFC 8305 §3: waiters need not wait for the slower family. */
    struct resolve_addrs *early; /* the first family's answer, handed out
                                    while the other query is pending */
    struct event *delay_timer;   /* the resolution delay after an A
                                    answer, waiting for AAAA */
};

/* One name from the hosts files. */
struct resolve_host {
    char *name;
    struct resolve_addrs *addrs;
    struct resolve_host *next;
};

struct resolver {
    struct event_base *base;
    struct evdns_base *dns;
    const struct config *cfg;
    struct resolve_host **hosts; /* RESOLVE_BUCKETS chains, or NULL */
    struct resolve_entry *buckets[RESOLVE_BUCKETS];
    TAILQ_HEAD(, resolve_entry) lru;
    TAILQ_HEAD(, resolve_entry) orphans; /* dropped while pending */
    size_t nentries;
    /* figures for stats */
    uint64_t cache_hits, cache_misses, coalesced, queries, hosts_hits, negative;
};

/* Monotonic seconds: TTLs must not follow the wall clock's jumps. */
static double
resolve_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* FNV-1a over a normalised name. */
static unsigned
resolve_hash(const char *s)
{
    unsigned h = 2166136261u;

    while (*s != '\0')
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h % RESOLVE_BUCKETS;
}

/* Lower case, one trailing dot dropped: "Example.COM." is "example.com".
 * Returns -1 when name does not fit. */
static int
resolve_normalise(const char *name, char out[RESOLVE_NAME_MAX + 1])
{
    size_t n = strlen(name);

    if (n > 1 && name[n - 1] == '.')
        n--;
    if (n == 0 || n > RESOLVE_NAME_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)name[i]);
    out[n] = '\0';
    return 0;
}

/* ---- Answers ------------------------------------------------------------ */

/* An empty answer with room for cap addresses. */
static struct resolve_addrs *
resolve_addrs_new(size_t cap)
{
    struct resolve_addrs *a =
        calloc(1, sizeof *a + (cap ? cap : 1) * sizeof a->addr[0]);

    if (a != NULL) {
        a->refs = 1;
        a->cap = cap ? cap : 1;
    }
    return a;
}

/* Appends one address (raw: 4 or 16 bytes) to *a, growing it; a is owned
 * by the caller alone. Returns -1 when out of memory. */
static int
resolve_addrs_push(struct resolve_addrs **a, int family, const void *raw)
{
    struct sockaddr_storage *ss;

    if (*a == NULL && (*a = resolve_addrs_new(4)) == NULL)
        return -1;
    if ((*a)->n == (*a)->cap) {
        struct resolve_addrs *b =
            realloc(*a, sizeof **a + 2 * (*a)->cap * sizeof(*a)->addr[0]);

        if (b == NULL)
            return -1;
        b->cap *= 2;
        *a = b;
    }
    ss = &(*a)->addr[(*a)->n];
    memset(ss, 0, sizeof *ss);
    if (family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

        in6->sin6_family = AF_INET6;
        memcpy(&in6->sin6_addr, raw, 16);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;

        in->sin_family = AF_INET;
        memcpy(&in->sin_addr, raw, 4);
    }
    /* A name listed twice with one address yields it once. */
    for (size_t i = 0; i < (*a)->n; i++)
        if (memcmp(&(*a)->addr[i], ss, sizeof *ss) == 0)
            return 0;
    (*a)->n++;
    return 0;
}

void
resolve_addrs_unref(struct resolve_addrs *a)
{
    if (a != NULL && --a->refs == 0)
        free(a);
}

/* Takes a reference. */
static struct resolve_addrs *
resolve_addrs_ref(struct resolve_addrs *a)
{
    a->refs++;
    return a;
}

/* An address literal as an answer, or NULL when name is not one. */
static struct resolve_addrs *
resolve_literal(const char *name, bool *oom)
{
    unsigned char raw[16];
    struct resolve_addrs *a = NULL;
    int family = inet_pton(AF_INET6, name, raw) == 1  ? AF_INET6
                 : inet_pton(AF_INET, name, raw) == 1 ? AF_INET
                                                      : 0;

    *oom = false;
    if (family == 0)
        return NULL;
    if (resolve_addrs_push(&a, family, raw) < 0)
        *oom = true;
    return a;
}

/* ---- Hosts files -------------------------------------------------------- */

static void
resolve_hosts_free(struct resolve_host **hosts)
{
    if (hosts == NULL)
        return;
    for (size_t b = 0; b < RESOLVE_BUCKETS; b++) {
        struct resolve_host *h = hosts[b], *next;

        for (; h != NULL; h = next) {
            next = h->next;
            free(h->name);
            resolve_addrs_unref(h->addrs);
            free(h);
        }
    }
    free(hosts);
}

static struct resolve_host *
resolve_hosts_find(struct resolve_host **hosts, const char *name)
{
    struct resolve_host *h;

    if (hosts == NULL)
        return NULL;
    for (h = hosts[resolve_hash(name)]; h != NULL; h = h->next)
        if (strcmp(h->name, name) == 0)
            return h;
    return NULL;
}

/* Adds "name has address raw" to the table. Returns -1 when out of
 * memory. */
static int
resolve_hosts_add(struct resolve_host **hosts, const char *name, int family,
                  const void *raw)
{
    struct resolve_host *h = resolve_hosts_find(hosts, name);

    if (h == NULL) {
        unsigned b = resolve_hash(name);

        if ((h = calloc(1, sizeof *h)) == NULL ||
            (h->name = strdup(name)) == NULL) {
            free(h);
            return -1;
        }
        h->next = hosts[b];
        hosts[b] = h;
    }
    /* IPv6 ones first, in file order within each family. */
    if (resolve_addrs_push(&h->addrs, family, raw) < 0)
        return -1;
    if (family == AF_INET6) {
        struct resolve_addrs *a = h->addrs;
        size_t last = a->n - 1, at = 0;
        struct sockaddr_storage ss = a->addr[last];

        while (at < last && a->addr[at].ss_family == AF_INET6)
            at++;
        memmove(&a->addr[at + 1], &a->addr[at],
                (last - at) * sizeof a->addr[0]);
        a->addr[at] = ss;
    }
    return 0;
}

/* Reads one hosts(5) file into hosts. missing_ok: a file that does not
 * exist is no error. Returns 0, or -1 with err set. */
static int
resolve_hosts_read(struct resolve_host **hosts, const char *path,
                   bool missing_ok, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    char line[4096];
    unsigned lineno = 0;

    if (f == NULL) {
        if (missing_ok && errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        char *save = NULL, *addr, *name, *hash = strchr(line, '#');
        unsigned char raw[16];
        int family;

        lineno++;
        if (hash != NULL)
            *hash = '\0';
        addr = strtok_r(line, " \t\r\n", &save);
        if (addr == NULL)
            continue;
        family = inet_pton(AF_INET6, addr, raw) == 1  ? AF_INET6
                 : inet_pton(AF_INET, addr, raw) == 1 ? AF_INET
                                                      : 0;
        if (family == 0) {
            log_warn("%s:%u: \"%.64s\" is not an address; line ignored", path,
                     lineno, addr);
            continue;
        }
        while ((name = strtok_r(NULL, " \t\r\n", &save)) != NULL) {
            char norm[RESOLVE_NAME_MAX + 1];

            if (resolve_normalise(name, norm) < 0)
                continue;
            if (resolve_hosts_add(hosts, norm, family, raw) < 0) {
                fclose(f);
                snprintf(err, errlen, "%s: out of memory", path);
                return -1;
            }
        }
    }
    fclose(f);
    return 0;
}

/* A new table from /etc/hosts and cfg's hosts_file, or NULL with err. */
static struct resolve_host **
resolve_hosts_load(const struct config *cfg, char *err, size_t errlen)
{
    struct resolve_host **hosts = calloc(RESOLVE_BUCKETS, sizeof *hosts);

    if (hosts == NULL) {
        snprintf(err, errlen, "hosts: out of memory");
        return NULL;
    }
    if (resolve_hosts_read(hosts, RESOLVE_HOSTS_PATH, true, err, errlen) < 0 ||
        (cfg->hosts_file != NULL &&
         resolve_hosts_read(hosts, cfg->hosts_file, false, err, errlen) < 0)) {
        resolve_hosts_free(hosts);
        return NULL;
    }
    return hosts;
}

/* "localhost" and "*.localhost" (RFC 6761 §6.3) when the hosts files do
 * not say otherwise: ::1 then 127.0.0.1. */
static struct resolve_addrs *
resolve_localhost(const char *name)
{
    static const unsigned char v6[16] = {[15] = 1}, v4[4] = {127, 0, 0, 1};
    size_t n = strlen(name);
    struct resolve_addrs *a = NULL;

    if (strcmp(name, "localhost") != 0 &&
        !(n > 10 && strcmp(name + n - 10, ".localhost") == 0))
        return NULL;
    if (resolve_addrs_push(&a, AF_INET6, v6) < 0 ||
        resolve_addrs_push(&a, AF_INET, v4) < 0) {
        resolve_addrs_unref(a);
        return NULL;
    }
    return a;
}

/* ---- Nameservers -------------------------------------------------------- */

/* Loads the nameservers, search list and options of cfg's resolv.conf
 * into dns (already cleared). A missing file or one without nameservers
 * is only a warning: literals, hosts and localhost still resolve. */
static void
resolve_conf_load(struct evdns_base *dns, const struct config *cfg)
{
    const char *path =
        cfg->resolv_conf != NULL ? cfg->resolv_conf : RESOLVE_CONF_PATH;
    int rc = evdns_base_resolv_conf_parse(
        dns,
        DNS_OPTION_NAMESERVERS | DNS_OPTION_SEARCH | DNS_OPTION_MISC |
            DNS_OPTION_NAMESERVERS_NO_DEFAULT,
        path);

    if (rc != 0 || evdns_base_count_nameservers(dns) == 0)
        log_warn("no nameserver in %s; resolving from hosts files only", path);
}

struct resolver *
resolve_new(struct event_base *base, const struct config *cfg, char *err,
            size_t errlen)
{
    struct resolver *r = calloc(1, sizeof *r);

    if (r == NULL) {
        snprintf(err, errlen, "resolver: out of memory");
        return NULL;
    }
    r->base = base;
    r->cfg = cfg;
    TAILQ_INIT(&r->lru);
    TAILQ_INIT(&r->orphans);
    r->dns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (r->dns == NULL) {
        snprintf(err, errlen, "resolver: cannot set up evdns");
        free(r);
        return NULL;
    }
    if ((r->hosts = resolve_hosts_load(cfg, err, errlen)) == NULL) {
        evdns_base_free(r->dns, 0);
        free(r);
        return NULL;
    }
    resolve_conf_load(r->dns, cfg);
    return r;
}

/* ---- The cache ---------------------------------------------------------- */

/* Unlinks e from the table (it may live on while being delivered). */
static void
resolve_entry_unlink(struct resolve_entry *e)
{
    struct resolve_entry **p;

    if (!e->cached)
        return;
    for (p = &e->r->buckets[resolve_hash(e->name)]; *p != e;
         p = &(*p)->hash_next)
        ;
    *p = e->hash_next;
    TAILQ_REMOVE(&e->r->lru, e, lru);
    e->r->nentries--;
    e->cached = false;
}

static void
resolve_entry_free(struct resolve_entry *e)
{
    if (e->delay_timer != NULL)
        event_free(e->delay_timer);
    resolve_addrs_unref(e->early);
    if (e->orphan)
        TAILQ_REMOVE(&e->r->orphans, e, lru);
    resolve_addrs_unref(e->v6);
    resolve_addrs_unref(e->v4);
    resolve_addrs_unref(e->addrs);
    free(e->name);
    free(e);
}

/* Drops e unless something still needs it (queries or waiters): those
 * free it when they finish. */
static void
resolve_entry_drop(struct resolve_entry *e)
{
    bool cached = e->cached;

    resolve_entry_unlink(e);
    if (!e->pending && !e->delivering) {
        resolve_entry_free(e);
    } else if (cached && e->pending) {
        TAILQ_INSERT_TAIL(&e->r->orphans, e, lru);
        e->orphan = true;
    }
}

/* Makes room for one more entry under dns_cache_size. */
static void
resolve_make_room(struct resolver *r)
{
    struct resolve_entry *e, *next;
    double now = resolve_now();

    if (r->nentries < r->cfg->dns_cache_size)
        return;
    for (e = TAILQ_FIRST(&r->lru); e != NULL; e = next) {
        next = TAILQ_NEXT(e, lru);
        if (!e->pending && e->expires <= now)
            resolve_entry_drop(e);
    }
    for (e = TAILQ_FIRST(&r->lru);
         e != NULL && r->nentries >= r->cfg->dns_cache_size; e = next) {
        next = TAILQ_NEXT(e, lru);
        if (!e->pending)
            resolve_entry_drop(e);
    }
}

static struct resolve_entry *
resolve_entry_find(struct resolver *r, const char *name)
{
    struct resolve_entry *e;

    for (e = r->buckets[resolve_hash(name)]; e != NULL; e = e->hash_next)
        if (strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

/* Plain words for an evdns error code. */
static const char *
resolve_dns_strerror(int code)
{
    switch (code) {
    case DNS_ERR_NOTEXIST:
        return "no such name (the nameserver answered NXDOMAIN)";
    case DNS_ERR_NODATA:
        return "the name has no address (no A or AAAA record)";
    case DNS_ERR_TIMEOUT:
        return "the nameserver did not answer in time";
    case DNS_ERR_SERVERFAILED:
        return "the nameserver failed (SERVFAIL)";
    case DNS_ERR_REFUSED:
        return "the nameserver refused the query";
    case DNS_ERR_FORMAT:
    case DNS_ERR_TRUNCATED:
        return "the nameserver's answer could not be read";
    case DNS_ERR_SHUTDOWN:
        return "the resolver is shutting down";
    default:
        return "the lookup failed";
    }
}

/* The answers so far as one list, IPv6 first; NULL when there are none
 * or memory is short. */
static struct resolve_addrs *
resolve_entry_union(const struct resolve_entry *e)
{
    size_t n6 = e->v6 ? e->v6->n : 0, n4 = e->v4 ? e->v4->n : 0;
    struct resolve_addrs *a = n6 + n4 > 0 ? resolve_addrs_new(n6 + n4) : NULL;

    if (a == NULL)
        return NULL;
    if (n6 > 0)
        memcpy(a->addr, e->v6->addr, n6 * sizeof a->addr[0]);
    if (n4 > 0)
        memcpy(a->addr + n6, e->v4->addr, n4 * sizeof a->addr[0]);
    a->n = n6 + n4;
    return a;
}

/* Both queries are answered: settles e's outcome (addrs, or error and
 * message) and how long it is kept. */
static void
resolve_entry_settle(struct resolve_entry *e)
{
    const struct config *cfg = e->r->cfg;
    double keep;
    size_t n = (e->v6 ? e->v6->n : 0) + (e->v4 ? e->v4->n : 0);

    e->pending = false;
    if (e->delay_timer != NULL)
        event_del(e->delay_timer);
    resolve_addrs_unref(e->early);
    e->early = NULL;
    if (n > 0 && (e->addrs = resolve_entry_union(e)) != NULL) {
        keep = e->ttl < 0 ? cfg->dns_ttl_min : (double)e->ttl;
        keep = keep < cfg->dns_ttl_min   ? cfg->dns_ttl_min
               : keep > cfg->dns_ttl_max ? cfg->dns_ttl_max
                                         : keep;
        log_debug("resolved %s: %zu addresses, kept %gs", e->name, n, keep);
    } else if (n > 0) {
        e->error = HCONN_ENO_MEMORY;
        snprintf(e->message, sizeof e->message,
                 "cannot resolve \"%.200s\": out of memory", e->name);
        keep = 0;
    } else {
        /* The AAAA error is the less telling one when A said more. */
        int code = e->dns_error[1] != DNS_ERR_NODATA ? e->dns_error[1]
                                                     : e->dns_error[0];
        bool negative = (e->dns_error[0] == DNS_ERR_NOTEXIST ||
                         e->dns_error[0] == DNS_ERR_NODATA) &&
                        (e->dns_error[1] == DNS_ERR_NOTEXIST ||
                         e->dns_error[1] == DNS_ERR_NODATA);

        e->error = HCONN_EDNS_FAILED;
        snprintf(e->message, sizeof e->message, "cannot resolve \"%.200s\": %s",
                 e->name, resolve_dns_strerror(code));
        keep = negative ? cfg->dns_negative_ttl : 0;
        log_debug("resolving %s failed (%s), kept %gs", e->name,
                  resolve_dns_strerror(code), keep);
    }
    e->keep = keep;
    e->expires = resolve_now() + keep;
    resolve_addrs_unref(e->v6);
    resolve_addrs_unref(e->v4);
    e->v6 = e->v4 = NULL;
}

/* Both queries are answered: settles e and calls its waiters. */
static void
resolve_entry_finish(struct resolve_entry *e)
{
    struct resolve_waiter *w;

    resolve_entry_settle(e);
    if (e->starting)
        return;
    /* Waiters may start lookups, or cancel other waiters, from their
     * callbacks: take them one at a time, and keep e until done. Those
     * given the early answer get the whole one now. */
    e->delivering = true;
    while ((w = TAILQ_FIRST(&e->waiters)) != NULL ||
           (w = TAILQ_FIRST(&e->followers)) != NULL) {
        if (w->more)
            TAILQ_REMOVE(&e->followers, w, entry_link);
        else
            TAILQ_REMOVE(&e->waiters, w, entry_link);
        w->entry = NULL;
        w->more = false;
        if (e->addrs != NULL)
            w->cb(w, resolve_addrs_ref(e->addrs), 0, NULL);
        else
            w->cb(w, NULL, e->error, e->message);
    }
    e->delivering = false;
    if (e->keep <= 0 || !e->cached)
        resolve_entry_drop(e);
}

/* Hands the first family's addresses to the waiters, leaving the other
 * query to finish for the cache; later lookups get them at once too. */
static void
resolve_entry_early(struct resolve_entry *e)
{
    struct resolve_waiter *w;

    if (e->early != NULL || (e->early = resolve_entry_union(e)) == NULL)
        return;
    log_debug("resolved %s: %zu %s addresses; not waiting for the other "
              "family",
              e->name, e->early->n,
              e->early->addr[0].ss_family == AF_INET6 ? "IPv6" : "IPv4");
    e->delivering = true;
    while ((w = TAILQ_FIRST(&e->waiters)) != NULL) {
        TAILQ_REMOVE(&e->waiters, w, entry_link);
        TAILQ_INSERT_TAIL(&e->followers, w, entry_link);
        w->more = true;
        w->cb(w, resolve_addrs_ref(e->early), 0, NULL);
    }
    e->delivering = false;
}

/* The resolution delay passed without an AAAA answer. */
static void
resolve_delay_cb(evutil_socket_t fd, short what, void *arg)
{
    resolve_entry_early(arg);
}

/* One query's answer; family: which one. */
static void
resolve_answer(struct resolve_entry *e, int family, int result, int count,
               int ttl, const void *addresses)
{
    struct resolve_addrs **into = family == AF_INET6 ? &e->v6 : &e->v4;
    size_t len = family == AF_INET6 ? 16 : 4;

    e->dns_error[family == AF_INET6 ? 0 : 1] = result;
    if (result == DNS_ERR_NONE) {
        for (int i = 0; i < count; i++)
            if (resolve_addrs_push(into, family,
                                   (const char *)addresses + (size_t)i * len) <
                0)
                break;
        if (count > 0 && (e->ttl < 0 || ttl < e->ttl))
            e->ttl = ttl;
        if (count == 0)
            e->dns_error[family == AF_INET6 ? 0 : 1] = DNS_ERR_NODATA;
    }
    if (--e->queries == 0) {
        resolve_entry_finish(e);
        return;
    }
    /* RFC 8305 §3: an AAAA answer goes out at once, an A answer after
     * the resolution delay unless AAAA comes first. */
    if (result != DNS_ERR_NONE || count == 0 || e->starting || e->early != NULL)
        return;
    if (family == AF_INET6) {
        resolve_entry_early(e);
        return;
    }
    if (e->delay_timer == NULL &&
        (e->delay_timer = evtimer_new(e->r->base, resolve_delay_cb, e)) == NULL)
        return; /* the full answer will do */
    evtimer_add(
        e->delay_timer,
        &(struct timeval){.tv_usec = (suseconds_t)(RESOLVE_DELAY * 1e6)});
}

static void
resolve_aaaa_cb(int result, char type, int count, int ttl, void *addresses,
                void *arg)
{
    resolve_answer(arg, AF_INET6, result, count, ttl, addresses);
}

static void
resolve_a_cb(int result, char type, int count, int ttl, void *addresses,
             void *arg)
{
    resolve_answer(arg, AF_INET, result, count, ttl, addresses);
}

/* Starts the AAAA and A queries for a new entry; one that cannot be
 * sent counts as failed at once. */
static void
resolve_entry_query(struct resolver *r, struct resolve_entry *e)
{
    e->pending = true;
    e->queries = 2;
    e->ttl = -1;
    r->queries += 2;
    /* Either callback may run before the other query is even sent (an
     * immediate failure): count both first. */
    if (evdns_base_resolve_ipv6(r->dns, e->name, 0, resolve_aaaa_cb, e) == NULL)
        resolve_answer(e, AF_INET6, DNS_ERR_UNKNOWN, 0, 0, NULL);
    if (evdns_base_resolve_ipv4(r->dns, e->name, 0, resolve_a_cb, e) == NULL)
        resolve_answer(e, AF_INET, DNS_ERR_UNKNOWN, 0, 0, NULL);
}

int
resolve_name(struct resolver *r, const char *name, struct resolve_waiter *w,
             struct resolve_addrs **now, char *err, size_t errlen)
{
    char norm[RESOLVE_NAME_MAX + 1];
    struct resolve_host *h;
    struct resolve_entry *e;
    bool oom;
    int rc;

    *now = resolve_literal(name, &oom);
    if (*now != NULL || oom) {
        if (oom)
            snprintf(err, errlen, "cannot resolve \"%.200s\": out of memory",
                     name);
        return oom ? HCONN_ENO_MEMORY : 0;
    }
    if (resolve_normalise(name, norm) < 0) {
        snprintf(err, errlen, "cannot resolve \"%.200s\": not a host name",
                 name);
        return HCONN_EDNS_FAILED;
    }
    if ((h = resolve_hosts_find(r->hosts, norm)) != NULL) {
        r->hosts_hits++;
        *now = resolve_addrs_ref(h->addrs);
        return 0;
    }
    if ((*now = resolve_localhost(norm)) != NULL)
        return 0;
    e = resolve_entry_find(r, norm);
    if (e != NULL && !e->pending && e->expires <= resolve_now()) {
        resolve_entry_drop(e);
        e = NULL;
    }
    if (e != NULL && e->pending && e->early != NULL) {
        r->coalesced++;
        w->entry = e;
        w->more = true;
        TAILQ_INSERT_TAIL(&e->followers, w, entry_link);
        *now = resolve_addrs_ref(e->early);
        return 0;
    }
    if (e != NULL && e->pending) {
        r->coalesced++;
        w->entry = e;
        TAILQ_INSERT_TAIL(&e->waiters, w, entry_link);
        return 1;
    }
    if (e != NULL) {
        r->cache_hits++;
        TAILQ_REMOVE(&r->lru, e, lru);
        TAILQ_INSERT_TAIL(&r->lru, e, lru);
        if (e->addrs != NULL) {
            *now = resolve_addrs_ref(e->addrs);
            return 0;
        }
        r->negative++;
        snprintf(err, errlen, "%s", e->message);
        return e->error;
    }
    if (evdns_base_count_nameservers(r->dns) == 0) {
        snprintf(err, errlen,
                 "cannot resolve \"%.200s\": it is in no hosts file and no "
                 "nameserver is configured",
                 name);
        return HCONN_EDNS_FAILED;
    }
    r->cache_misses++;
    resolve_make_room(r);
    if ((e = calloc(1, sizeof *e)) == NULL ||
        (e->name = strdup(norm)) == NULL) {
        free(e);
        snprintf(err, errlen, "cannot resolve \"%.200s\": out of memory", name);
        return HCONN_ENO_MEMORY;
    }
    e->r = r;
    TAILQ_INIT(&e->waiters);
    TAILQ_INIT(&e->followers);
    e->hash_next = r->buckets[resolve_hash(norm)];
    r->buckets[resolve_hash(norm)] = e;
    TAILQ_INSERT_TAIL(&r->lru, e, lru);
    r->nentries++;
    e->cached = true;
    w->entry = e;
    TAILQ_INSERT_TAIL(&e->waiters, w, entry_link);
    /* A query that cannot even be sent fails at once: its outcome is this
     * call's, not the waiter's callback's. */
    e->starting = true;
    resolve_entry_query(r, e);
    e->starting = false;
    if (e->pending)
        return 1;
    resolve_cancel(w);
    if (e->addrs != NULL)
        *now = resolve_addrs_ref(e->addrs);
    else
        snprintf(err, errlen, "%s", e->message);
    rc = e->addrs != NULL ? 0 : e->error;
    if (e->keep <= 0)
        resolve_entry_drop(e);
    return rc;
}

void
resolve_cancel(struct resolve_waiter *w)
{
    if (w->entry == NULL)
        return;
    if (w->more)
        TAILQ_REMOVE(&w->entry->followers, w, entry_link);
    else
        TAILQ_REMOVE(&w->entry->waiters, w, entry_link);
    w->entry = NULL;
    w->more = false;
}

int
resolve_reload(struct resolver *r, char *err, size_t errlen)
{
    struct resolve_host **hosts = resolve_hosts_load(r->cfg, err, errlen);
    struct resolve_entry *e, *next;

    if (hosts == NULL)
        return -1;
    resolve_hosts_free(r->hosts);
    r->hosts = hosts;
    /* Pending lookups finish and are then dropped with the rest. */
    for (e = TAILQ_FIRST(&r->lru); e != NULL; e = next) {
        next = TAILQ_NEXT(e, lru);
        resolve_entry_drop(e);
    }
    evdns_base_clear_nameservers_and_suspend(r->dns);
    evdns_base_search_clear(r->dns);
    resolve_conf_load(r->dns, r->cfg);
    evdns_base_resume(r->dns);
    return 0;
}

void
resolve_free(struct resolver *r)
{
    struct resolve_entry *e, *next;

    if (r == NULL)
        return;
    /* Without callbacks: nothing is waiting any more. */
    evdns_base_free(r->dns, 0);
    for (e = TAILQ_FIRST(&r->lru); e != NULL; e = next) {
        next = TAILQ_NEXT(e, lru);
        resolve_entry_unlink(e);
        resolve_entry_free(e);
    }
    while ((e = TAILQ_FIRST(&r->orphans)) != NULL)
        resolve_entry_free(e);
    resolve_hosts_free(r->hosts);
    free(r);
}

json_t *
resolve_stats(const struct resolver *r)
{
    return json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "cache_hits",
        (json_int_t)r->cache_hits, "cache_misses", (json_int_t)r->cache_misses,
        "coalesced", (json_int_t)r->coalesced, "queries",
        (json_int_t)r->queries, "hosts", (json_int_t)r->hosts_hits, "negative",
        (json_int_t)r->negative, "entries", (json_int_t)r->nentries);
}
