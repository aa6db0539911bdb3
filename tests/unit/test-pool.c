/*
 * test-pool.c — the upstream pool against real loopback listeners run on
 * the same event loop: leasing, reuse, limits, eviction, stale detection,
 * connect failures and cancellation.
 */
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "config.h"
#include "hconn_error.h"
#include "memory.h"
#include "pool.h"
#include "resolve.h"
#include "server.h"
#include "upstream.h"
#include "wire.h"

#define MAX_ACCEPTED 16

#define DIGEST_A "0123456789abcdef0123456789abcdef"
#define DIGEST_B "0123456789abcdef0123456789abcdee"

/* A listening origin on 127.0.0.1 that records the sockets it accepts. */
struct origin {
    struct evconnlistener *evl;
    uint16_t port;
    int accepted[MAX_ACCEPTED];
    int naccepted;
};

struct lease {
    struct pool_waiter w; /* first: the callback casts back */
    struct upstream *up;
    int error;
    int calls;
};

struct fixture {
    struct event_base *base;
    struct resolver *resolver;
    struct config cfg;
    struct stats stats;
    struct pool *pool;
    struct origin a, b;
};

static void
origin_accept_cb(struct evconnlistener *evl, evutil_socket_t fd,
                 struct sockaddr *sa, int len, void *arg)
{
    struct origin *o = arg;

    assert_true(o->naccepted < MAX_ACCEPTED);
    o->accepted[o->naccepted++] = fd;
}

static void
origin_start(struct fixture *f, struct origin *o)
{
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;

    o->evl = evconnlistener_new_bind(f->base, origin_accept_cb, o,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                     16, (struct sockaddr *)&sin, sizeof sin);
    assert_non_null(o->evl);
    getsockname(evconnlistener_get_fd(o->evl), (struct sockaddr *)&sin, &len);
    o->port = ntohs(sin.sin_port);
}

static void
origin_stop(struct origin *o)
{
    for (int i = 0; i < o->naccepted; i++)
        if (o->accepted[i] >= 0)
            close(o->accepted[i]);
    if (o->evl != NULL)
        evconnlistener_free(o->evl);
}

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);

    f->base = event_base_new();
    config_init(&f->cfg);
    f->cfg.pool_max_per_origin = 2;
    f->cfg.pool_max_total = 3;
    /* Loopback literals only: no nameserver is ever asked. */
    f->cfg.resolv_conf = strdup("/dev/null");
    f->resolver = resolve_new(f->base, &f->cfg, NULL, 0);
    assert_non_null(f->resolver);
    f->pool = pool_new(f->base, f->resolver, NULL, &f->cfg, &f->stats);
    origin_start(f, &f->a);
    origin_start(f, &f->b);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    pool_free(f->pool);
    origin_stop(&f->a);
    origin_stop(&f->b);
    resolve_free(f->resolver);
    memory_shutdown(); /* its trim timer belongs to this base */
    event_base_free(f->base);
    config_clear(&f->cfg);
    free(f);
    return 0;
}

static void
lease_cb(struct pool_waiter *w, struct upstream *up, int error,
         const char *message)
{
    struct lease *l = (struct lease *)w;

    l->up = up;
    l->error = error;
    l->calls++;
}

/* Runs the loop until cond holds (or a bounded number of rounds pass). */
#define RUN_UNTIL(f, cond)                                                     \
    do {                                                                       \
        for (int round_ = 0; round_ < 2000 && !(cond); round_++)               \
            event_base_loop((f)->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);         \
        assert_true(cond);                                                     \
    } while (0)

static struct pool_target
target_of(const struct origin *o)
{
    return (struct pool_target){.host = "127.0.0.1", .port = o->port};
}

/* Leases t and returns the connected upstream. */
static struct upstream *
lease_target(struct fixture *f, const struct pool_target *t, struct lease *l)
{
    struct upstream *up = NULL;

    memset(l, 0, sizeof *l);
    l->w.cb = lease_cb;
    assert_int_equal(pool_lease(f->pool, t, &l->w, &up, 5), 0);
    if (up != NULL)
        return up;
    RUN_UNTIL(f, l->calls == 1);
    assert_int_equal(l->error, 0);
    return l->up;
}

/* Leases to o and returns the connected upstream. */
static struct upstream *
lease_connected(struct fixture *f, struct origin *o, struct lease *l)
{
    struct pool_target t = target_of(o);

    return lease_target(f, &t, l);
}

static void
test_release_then_reuse(void **state)
{
    struct fixture *f = *state;
    struct lease l1, l2;
    struct upstream *up = lease_connected(f, &f->a, &l1);
    size_t idle;

    assert_int_equal(pool_requests(up), 0);
    pool_release(up);
    assert_int_equal(pool_count(f->pool, &idle), 1);
    assert_int_equal(idle, 1);
    /* The idle connection comes straight back, marked as reused. */
    assert_ptr_equal(lease_connected(f, &f->a, &l2), up);
    assert_int_equal(l2.calls, 0);
    assert_int_equal(pool_requests(up), 1);
    assert_int_equal(f->stats.reuse_hits, 1);
    assert_int_equal(f->stats.reuse_misses, 1);
    assert_int_equal(f->a.naccepted, 1);
    pool_drop(up);
    assert_int_equal(pool_count(f->pool, NULL), 0);
}

static void
test_idle_close_is_detected(void **state)
{
    struct fixture *f = *state;
    struct lease l;
    struct upstream *up = lease_connected(f, &f->a, &l);

    RUN_UNTIL(f, f->a.naccepted == 1);
    pool_release(up);
    /* The origin closes the idle connection: the pool notices by itself. */
    close(f->a.accepted[0]);
    f->a.accepted[0] = -1;
    RUN_UNTIL(f, pool_count(f->pool, NULL) == 0);
}

static void
test_idle_stray_bytes_drop(void **state)
{
    struct fixture *f = *state;
    struct lease l;
    struct upstream *up = lease_connected(f, &f->a, &l);

    RUN_UNTIL(f, f->a.naccepted == 1);
    pool_release(up);
    assert_int_equal(write(f->a.accepted[0], "x", 1), 1);
    RUN_UNTIL(f, pool_count(f->pool, NULL) == 0);
}

static void
test_closed_idle_skipped_at_lease(void **state)
{
    struct fixture *f = *state;
    struct lease l1, l2;
    struct upstream *up = lease_connected(f, &f->a, &l1);
    struct upstream *next;

    RUN_UNTIL(f, f->a.naccepted == 1);
    pool_release(up);
    /* Closed, and leased again before the loop could see it: the peek at
     * lease time must catch it and open a new connection instead. */
    close(f->a.accepted[0]);
    f->a.accepted[0] = -1;
    usleep(10000);
    next = lease_connected(f, &f->a, &l2);
    assert_int_equal(l2.calls, 1);
    assert_int_equal(pool_requests(next), 0);
    pool_drop(next);
}

static void
test_per_origin_limit_queues(void **state)
{
    struct fixture *f = *state;
    struct pool_target t = target_of(&f->a);
    struct lease l1, l2, l3 = {.w.cb = lease_cb};
    struct upstream *up1 = lease_connected(f, &f->a, &l1);
    struct upstream *up2 = lease_connected(f, &f->a, &l2);
    struct upstream *up3 = NULL;

    assert_int_equal(pool_lease(f->pool, &t, &l3.w, &up3, 5), 0);
    assert_null(up3);
    for (int i = 0; i < 50; i++)
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(l3.calls, 0); /* limit 2 per origin: it waits */
    assert_int_equal(f->a.naccepted, 2);
    pool_release(up1);
    /* Handed over directly, no new connection. */
    assert_int_equal(l3.calls, 1);
    assert_ptr_equal(l3.up, up1);
    pool_drop(up2);
    pool_drop(up1);
}

static void
test_total_limit_evicts_idle(void **state)
{
    struct fixture *f = *state;
    struct lease l[4];
    struct upstream *a1 = lease_connected(f, &f->a, &l[0]);
    struct upstream *a2 = lease_connected(f, &f->a, &l[1]);
    struct upstream *b1 = lease_connected(f, &f->b, &l[2]);
    struct upstream *b2;
    size_t idle;

    pool_release(a1);
    /* Total limit 3 reached: a fourth connection closes the idle one. */
    b2 = lease_connected(f, &f->b, &l[3]);
    assert_int_equal(pool_count(f->pool, &idle), 3);
    assert_int_equal(idle, 0);
    pool_drop(a2);
    pool_drop(b1);
    pool_drop(b2);
    assert_int_equal(pool_count(f->pool, NULL), 0);
}

static void
test_fresh_waiter_skips_idle(void **state)
{
    struct fixture *f = *state;
    struct pool_target t = target_of(&f->a);
    struct lease l1, l2 = {.w.cb = lease_cb, .w.fresh = true};
    struct upstream *up1 = lease_connected(f, &f->a, &l1);
    struct upstream *up2 = NULL;

    pool_release(up1);
    assert_int_equal(pool_lease(f->pool, &t, &l2.w, &up2, 5), 0);
    assert_null(up2);
    RUN_UNTIL(f, l2.calls == 1);
    assert_int_equal(l2.error, 0);
    assert_ptr_not_equal(l2.up, up1);
    assert_int_equal(f->a.naccepted, 2);
    pool_drop(l2.up);
}

static void
test_connect_refused(void **state)
{
    struct fixture *f = *state;
    struct origin dead = {0};
    struct pool_target t;
    struct lease l = {.w.cb = lease_cb};
    struct upstream *up = NULL;

    /* A port that was just listening and no longer is. */
    origin_start(f, &dead);
    t = target_of(&dead);
    origin_stop(&dead);
    assert_int_equal(pool_lease(f->pool, &t, &l.w, &up, 5), 0);
    assert_int_equal(l.calls, 0); /* never called back from inside */
    RUN_UNTIL(f, l.calls == 1);
    assert_int_equal(l.error, HCONN_ECONNECT_FAILED);
    assert_null(l.up);
    assert_int_equal(pool_count(f->pool, NULL), 0);
}

static void
test_cancelled_lease_goes_idle(void **state)
{
    struct fixture *f = *state;
    struct pool_target t = target_of(&f->a);
    struct lease l = {.w.cb = lease_cb};
    struct upstream *up = NULL;
    size_t idle = 0;

    assert_int_equal(pool_lease(f->pool, &t, &l.w, &up, 5), 0);
    pool_cancel(&l.w);
    RUN_UNTIL(f, pool_count(f->pool, &idle) == 1 && idle == 1);
    assert_int_equal(l.calls, 0);
}

/* Admits any address: a filter that changes the key, not the outcome. */
static int
admit_any(const struct sockaddr *sa, const void *arg, char *why, size_t len)
{
    (void)sa;
    (void)arg;
    (void)why;
    (void)len;
    return 0;
}

/* Leases v right after base, whose connection up0 is idle: twice, once
 * found by key, once by the fields just kept; it gets up0 exactly when
 * same. Then base gets up0 back, and leaves it idle. */
static void
lease_after(struct fixture *f, const struct pool_target *base,
            struct upstream *up0, const struct pool_target *v, bool same)
{
    struct lease l, l0;
    struct upstream *up = NULL;

    for (int round = 0; round < 2; round++) {
        up = lease_target(f, v, &l);
        if (same)
            assert_ptr_equal(up, up0);
        else
            assert_ptr_not_equal(up, up0);
        pool_release(up);
    }
    if (up != up0)
        pool_drop(lease_target(f, v, &l));
    assert_ptr_equal(lease_target(f, base, &l0), up0);
    pool_release(up0);
}

/* The pool finds the last plain origin by comparing a target's fields
 * rather than its key: a target that differs from the one before it in
 * any field the key holds (address filter, its key, source address,
 * port, host) must never get that one's idle connection, and one equal in
 * all of them (a host string elsewhere in memory) must; after each
 * other target the first still finds its own. */
static void
test_last_origin_keys(void **state)
{
    struct fixture *f = *state;
    char host[] = "127.0.0.1";
    struct pool_addr_filter k1 = {admit_any, "x", 1, "deny=L rule=one"};
    struct pool_addr_filter k2 = {admit_any, "x", 1, "deny=L rule=two"};
    struct pool_target base = target_of(&f->a), v[6];
    struct lease l0, l, l1;
    struct upstream *up0 = lease_connected(f, &f->a, &l0), *up, *up1;

    for (size_t i = 0; i < sizeof v / sizeof *v; i++)
        v[i] = base;
    v[0].addr_filter = &k1;
    v[1].addr_filter = &k2;
    v[2].source_host = ""; /* any address: still a key of its own */
    v[3].port = f->b.port;
    v[4].host = host;
    v[5].host = "::ffff:127.0.0.1"; /* the same address, another key */
    pool_release(up0);
    for (size_t i = 0; i < sizeof v / sizeof *v; i++)
        lease_after(f, &base, up0, &v[i], i == 4);
    /* k1 then k2 back to back: the kept filter key is compared too. */
    up = lease_target(f, &v[0], &l);
    pool_release(up);
    up1 = lease_target(f, &v[1], &l1);
    assert_ptr_not_equal(up1, up);
    pool_drop(up1);
    assert_ptr_equal(lease_target(f, &v[0], &l), up);
    pool_drop(up);
    /* The origin goes with its last connection, and the pool forgets
     * it: the next lease makes a new one (ASan would see a stale one). */
    pool_drop(lease_target(f, &base, &l0));
    assert_int_equal(pool_count(f->pool, NULL), 0);
    up = lease_target(f, &base, &l0);
    assert_int_equal(l0.calls, 1);
    pool_drop(up);
}

/* The same for https targets, whose TLS settings the pool compares as
 * their key would write them (tls_settings_id). The pool has no TLS
 * context here (tls NULL: the connections are plain TCP), which changes
 * nothing in how origins are found. A target that differs from the one
 * before it in one TLS field, or in being https, its protocol or its
 * filter, must never get that one's idle connection; one written another
 * way with an equal key (another PEM of the same digest, an empty server
 * name, another uid) must. */
static void
test_last_tls_origin_keys(void **state)
{
    struct fixture *f = *state;
    struct pool_addr_filter k1 = {admit_any, "x", 1, "deny=L rule=one"};
    const struct wire_tls base_tls = {
        .verify = true, .ca_pem = "A", .ca_pem_digest = DIGEST_A};
    struct wire_tls o[12];
    struct pool_target base = target_of(&f->a), v[15];
    const size_t nv = sizeof v / sizeof *v;
    bool same[sizeof v / sizeof *v] = {false};
    struct lease l0, l;
    struct upstream *up0, *up;

    base.tls = true;
    base.tls_options = &base_tls;
    for (size_t i = 0; i < sizeof o / sizeof *o; i++)
        o[i] = base_tls;
    o[0].verify = false;
    o[1].insecure = true;
    o[2].ca_pem = "B";
    o[2].ca_pem_digest = DIGEST_B;
    o[3].cert_pem = "C";
    o[3].cert_pem_digest = DIGEST_A;
    o[4].min_version = "1.3";
    o[5].server_name = "localhost";
    o[6].no_check_hostname = true;
    o[7].ca_pem_digest = NULL; /* inline: the digest of "A" itself */
    o[8].key_pem = "K";
    o[8].key_pem_digest = DIGEST_B;
    o[9].ca_pem = "another A"; /* ... of the same digest: the same key */
    o[10].server_name = "";    /* the host's name: the same key */
    o[11].min_version = "";    /* the default: the same key */
    for (size_t i = 0; i < nv; i++)
        v[i] = base;
    for (size_t i = 0; i < sizeof o / sizeof *o; i++)
        v[i].tls_options = &o[i];
    same[9] = same[10] = same[11] = true;
    v[12].tls_options = NULL; /* the defaults: no CA of its own */
    v[13].addr_filter = &k1;
    v[14].uid = 12345; /* not in the key: the same */
    same[14] = true;
    up0 = lease_target(f, &base, &l0);
    pool_release(up0);
    for (size_t i = 0; i < nv; i++)
        lease_after(f, &base, up0, &v[i], same[i]);
    /* Plain and https to one host and port, back to back. */
    v[0] = base;
    v[0].tls = false;
    v[0].tls_options = NULL;
    up = lease_target(f, &v[0], &l);
    assert_ptr_not_equal(up, up0);
    pool_release(up);
    assert_ptr_equal(lease_target(f, &base, &l0), up0);
    pool_release(up0);
    assert_ptr_equal(lease_target(f, &v[0], &l), up);
    pool_drop(up);
    pool_drop(lease_target(f, &base, &l0));
    assert_int_equal(pool_count(f->pool, NULL), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_release_then_reuse, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_idle_close_is_detected, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_idle_stray_bytes_drop, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_closed_idle_skipped_at_lease,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_origin_limit_queues, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_total_limit_evicts_idle, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fresh_waiter_skips_idle, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_connect_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancelled_lease_goes_idle, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_last_origin_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_tls_origin_keys, setup,
                                        teardown),
    };

    return cmocka_run_group_tests_name("pool", tests, NULL, NULL);
}
