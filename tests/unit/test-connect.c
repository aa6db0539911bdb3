/*
 * test-connect.c — Happy Eyeballs' address order (RFC 8305 §4) and the
 * address text used in messages, then a race on the loopback: a refused
 * address falls back to the next at once, a name whose every address
 * refuses fails naming each one, and a race whose addresses all refused
 * waits for the other family's still being resolved.
 */
#include <arpa/inet.h>
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

#include "connect.h"
#include "hconn_error.h"
#include "resolve.h"

/* An answer holding the addresses in texts, in order. */
static struct resolve_addrs *
addrs_of(const char *const *texts, size_t n)
{
    struct resolve_addrs *a =
        calloc(1, sizeof *a + (n + 1) * sizeof a->addr[0]);

    assert_non_null(a);
    a->refs = 1;
    a->cap = n + 1;
    for (size_t i = 0; i < n; i++) {
        struct sockaddr_storage *ss = &a->addr[a->n++];

        if (strchr(texts[i], ':') != NULL) {
            ss->ss_family = AF_INET6;
            assert_int_equal(inet_pton(AF_INET6, texts[i],
                                       &((struct sockaddr_in6 *)ss)->sin6_addr),
                             1);
        } else {
            ss->ss_family = AF_INET;
            assert_int_equal(inet_pton(AF_INET, texts[i],
                                       &((struct sockaddr_in *)ss)->sin_addr),
                             1);
        }
    }
    return a;
}

/* IPv6 first, families alternating, each family's order kept; a family
 * that runs out leaves the rest to the other. */
static void
test_order_interleaves_ipv6_first(void **state)
{
    static const char *const texts[] = {"10.0.0.1", "10.0.0.2", "10.0.0.3",
                                        "2001:db8::1", "2001:db8::2"};
    static const size_t want[] = {3, 0, 4, 1, 2};
    struct resolve_addrs *a = addrs_of(texts, 5);
    size_t order[5];

    (void)state;
    connect_order(a->addr, a->n, order);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(order[i], want[i]);
    resolve_addrs_unref(a);
}

/* One family only: its own order. */
static void
test_order_single_family(void **state)
{
    static const char *const texts[] = {"10.0.0.3", "10.0.0.1"};
    struct resolve_addrs *a = addrs_of(texts, 2);
    size_t order[2];

    (void)state;
    connect_order(a->addr, a->n, order);
    assert_int_equal(order[0], 0);
    assert_int_equal(order[1], 1);
    resolve_addrs_unref(a);
}

static void
test_format_addr(void **state)
{
    static const char *const texts[] = {"::1", "127.0.0.1"};
    struct resolve_addrs *a = addrs_of(texts, 2);
    char buf[64];

    (void)state;
    ((struct sockaddr_in6 *)&a->addr[0])->sin6_port = htons(8080);
    ((struct sockaddr_in *)&a->addr[1])->sin_port = htons(80);
    connect_format_addr((struct sockaddr *)&a->addr[0], buf, sizeof buf);
    assert_string_equal(buf, "[::1]:8080");
    connect_format_addr((struct sockaddr *)&a->addr[1], buf, sizeof buf);
    assert_string_equal(buf, "127.0.0.1:80");
    resolve_addrs_unref(a);
}

struct outcome {
    int fd;
    int error;
    char peer[64];
    char message[1024];
    bool done;
    struct event_base *base;
};

static void
race_cb(int fd, const char *peer, int error, const char *message, void *arg)
{
    struct outcome *o = arg;

    o->fd = fd;
    o->error = error;
    o->done = true;
    snprintf(o->peer, sizeof o->peer, "%s", peer ? peer : "");
    snprintf(o->message, sizeof o->message, "%s", message ? message : "");
    event_base_loopbreak(o->base);
}

/* A listener on 127.0.0.1; its port in *port. */
static int
listen_v4(uint16_t *port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(fd, 4), 0);
    getsockname(fd, (struct sockaddr *)&sin, &len);
    *port = ntohs(sin.sin_port);
    return fd;
}

/* Runs a race over texts to port; the outcome in *o. */
static void
run_race(const char *const *texts, size_t n, uint16_t port, double delay,
         struct outcome *o)
{
    struct event_base *base = event_base_new();
    struct resolve_addrs *a = addrs_of(texts, n);
    struct connect_options opts = {
        .host = "dual.test", .role = "", .port = port, .attempt_delay = delay};
    struct connect_race *race;

    memset(o, 0, sizeof *o);
    o->base = base;
    race = connect_race_start(base, a, &opts, race_cb, o);
    resolve_addrs_unref(a);
    assert_non_null(race);
    assert_false(o->done); /* never from inside connect_race_start */
    event_base_dispatch(base);
    assert_true(o->done);
    connect_race_free(race);
    event_base_free(base);
}

/* 127.0.0.2 has no listener on the port (refused); 127.0.0.1 has one. */
static void
test_race_refused_falls_back(void **state)
{
    static const char *const texts[] = {"127.0.0.2", "127.0.0.1"};
    uint16_t port;
    int lfd = listen_v4(&port);
    struct outcome o;
    char want[64];

    (void)state;
    /* The delay is far longer than the test may take: only the refusal
     * can start the second attempt. */
    run_race(texts, 2, port, 2.0, &o);
    assert_int_equal(o.error, 0);
    assert_true(o.fd >= 0);
    snprintf(want, sizeof want, "127.0.0.1:%u", port);
    assert_string_equal(o.peer, want);
    close(o.fd);
    close(lfd);
}

/* Every address refuses: connect_failed naming the host and each one. */
static void
test_race_all_refused_names_each(void **state)
{
    static const char *const texts[] = {"127.0.0.2", "127.0.0.3"};
    uint16_t port;
    int lfd = listen_v4(&port);
    struct outcome o;
    char want[64];

    (void)state;
    close(lfd); /* now nothing listens on port */
    run_race(texts, 2, port, 0.05, &o);
    assert_int_equal(o.fd, -1);
    assert_int_equal(o.error, HCONN_ECONNECT_FAILED);
    snprintf(want, sizeof want, "connect to dual.test:%u failed", port);
    assert_non_null(strstr(o.message, want));
    snprintf(want, sizeof want, "127.0.0.2:%u: Connection refused", port);
    assert_non_null(strstr(o.message, want));
    snprintf(want, sizeof want, "127.0.0.3:%u: Connection refused", port);
    assert_non_null(strstr(o.message, want));
}

struct late {
    struct connect_race *race;
    struct resolve_addrs *addrs;
};

static void
late_add_cb(evutil_socket_t fd, short what, void *arg)
{
    struct late *l = arg;

    connect_race_add(l->race, l->addrs, true);
}

/* The first family refuses while the other is still being resolved: the
 * race waits, and the addresses added later win. */
static void
test_race_waits_for_more_addresses(void **state)
{
    static const char *const first[] = {"127.0.0.2"};
    static const char *const whole[] = {"127.0.0.2", "127.0.0.1"};
    struct event_base *base = event_base_new();
    struct resolve_addrs *a = addrs_of(first, 1);
    uint16_t port;
    int lfd = listen_v4(&port);
    struct connect_options opts = {.host = "late.test",
                                   .role = "",
                                   .port = port,
                                   .attempt_delay = 2.0,
                                   .more_coming = true};
    struct timeval tv = {.tv_usec = 100000};
    struct outcome o = {.base = base};
    struct late l = {.addrs = addrs_of(whole, 2)};
    struct event *ev;
    char want[64];

    (void)state;
    l.race = connect_race_start(base, a, &opts, race_cb, &o);
    resolve_addrs_unref(a);
    assert_non_null(l.race);
    ev = evtimer_new(base, late_add_cb, &l);
    evtimer_add(ev, &tv);
    event_base_dispatch(base);
    assert_true(o.done);
    assert_int_equal(o.error, 0);
    snprintf(want, sizeof want, "127.0.0.1:%u", port);
    assert_string_equal(o.peer, want);
    close(o.fd);
    close(lfd);
    event_free(ev);
    connect_race_free(l.race);
    resolve_addrs_unref(l.addrs);
    event_base_free(base);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_interleaves_ipv6_first),
        cmocka_unit_test(test_order_single_family),
        cmocka_unit_test(test_format_addr),
        cmocka_unit_test(test_race_refused_falls_back),
        cmocka_unit_test(test_race_all_refused_names_each),
        cmocka_unit_test(test_race_waits_for_more_addresses),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
