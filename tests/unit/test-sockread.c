/*
 * test-sockread.c — reading a socket into an evbuffer without libevent's
 * FIONREAD ioctl (daemon/sockread.c): a read takes no more than it was
 * allowed, and a socket bufferevent whose read was taken over still
 * delivers its bytes, its end of input after them, its read high-water
 * mark and its read timeout as libevent's own read does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "sockread.h"

/* A connected pair of non-blocking stream sockets. */
static void
sockread_pair(int fds[2])
{
    assert_int_equal(
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds),
        0);
}

/* Writes n bytes of a known pattern to fd. */
static void
sockread_fill(int fd, size_t n)
{
    char buf[8192];

    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (char)('a' + i % 26);
    while (n > 0) {
        size_t k = n < sizeof buf ? n : sizeof buf;

        assert_int_equal(write(fd, buf, k), (ssize_t)k);
        n -= k;
    }
}

/* The buffer's tail chain has room for far more than asked: the read
 * still stops at what was asked. */
static void
test_read_takes_no_more_than_asked(void **state)
{
    struct evbuffer *buf = evbuffer_new();
    int fds[2];

    (void)state;
    sockread_pair(fds);
    sockread_fill(fds[1], 10000);
    assert_int_equal(evbuffer_expand(buf, 65536), 0);
    assert_int_equal(sockread_evbuffer(buf, fds[0], 100), 100);
    assert_int_equal(evbuffer_get_length(buf), 100);
    assert_int_equal(sockread_evbuffer(buf, fds[0], 5000), 5000);
    assert_int_equal(evbuffer_get_length(buf), 5100);
    evbuffer_free(buf);
    close(fds[0]);
    close(fds[1]);
}

/* What the callbacks of a taken-over bufferevent saw. */
struct seen {
    struct event_base *base;
    size_t most_held; /* the input's length at its longest */
    size_t reads;     /* read callbacks */
    size_t bytes;     /* bytes taken from the input */
    short events;     /* the event callback's what */
    size_t bytes_at_event;
    bool drain; /* the read callback empties the input */
};

static void
seen_read_cb(struct bufferevent *bev, void *arg)
{
    struct seen *s = arg;
    size_t n = evbuffer_get_length(bufferevent_get_input(bev));

    s->reads++;
    if (n > s->most_held)
        s->most_held = n;
    if (s->drain) {
        s->bytes += n;
        evbuffer_drain(bufferevent_get_input(bev), n);
    } else {
        /* libevent calls again each loop turn while the input is at its
         * high-water mark: one turn at a time. */
        event_base_loopbreak(s->base);
    }
}

static void
seen_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct seen *s = arg;

    s->events = what;
    s->bytes_at_event = s->bytes;
    event_base_loopbreak(s->base);
}

/* A socket bufferevent over fds[0], its read taken over. */
static struct bufferevent *
seen_bufferevent(struct seen *s, int fd)
{
    struct bufferevent *bev = bufferevent_socket_new(
        s->base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);

    assert_non_null(bev);
    assert_int_equal(sockread_bufferevent(bev), 0);
    /* Taken over once only; a second call changes nothing. */
    assert_int_equal(sockread_bufferevent(bev), 0);
    bufferevent_setcb(bev, seen_read_cb, NULL, seen_event_cb, s);
    return bev;
}

/* Frees bev and the base. A callback still due holds a reference to the
 * bufferevent, and its memory goes once the loop has run that. */
static void
seen_free(struct seen *s, struct bufferevent *bev)
{
    bufferevent_free(bev);
    event_base_loop(s->base, EVLOOP_NONBLOCK);
    event_base_free(s->base);
}

/* Every byte reaches the read callback, at most max_single_read per
 * read, and the end of input comes after the last of them. */
static void
test_bytes_then_end_of_input(void **state)
{
    struct seen s = {.base = event_base_new(), .drain = true};
    struct bufferevent *bev;
    int fds[2];

    (void)state;
    sockread_pair(fds);
    bev = seen_bufferevent(&s, fds[0]);
    assert_int_equal(bufferevent_set_max_single_read(bev, 10000), 0);
    bufferevent_enable(bev, EV_READ);
    sockread_fill(fds[1], 100000);
    shutdown(fds[1], SHUT_WR);
    event_base_dispatch(s.base);
    assert_int_equal(s.events, BEV_EVENT_READING | BEV_EVENT_EOF);
    assert_int_equal(s.bytes_at_event, 100000);
    assert_true(s.most_held <= 10000);
    assert_true(s.reads >= 10);
    seen_free(&s, bev);
    close(fds[1]);
}

/* Undrained, the input stops growing at the read high-water mark: loop
 * turns with the socket still full read nothing more. */
static void
test_high_water_mark_holds(void **state)
{
    struct seen s = {.base = event_base_new()};
    struct bufferevent *bev;
    int fds[2];

    (void)state;
    sockread_pair(fds);
    bev = seen_bufferevent(&s, fds[0]);
    bufferevent_setwatermark(bev, EV_READ, 0, 3000);
    bufferevent_enable(bev, EV_READ);
    sockread_fill(fds[1], 20000);
    for (int i = 0; i < 10; i++)
        event_base_dispatch(s.base);
    assert_int_equal(evbuffer_get_length(bufferevent_get_input(bev)), 3000);
    assert_int_equal(s.most_held, 3000);
    seen_free(&s, bev);
    close(fds[1]);
}

/* Nothing arrives: the read timeout is reported as libevent reports it. */
static void
test_read_timeout(void **state)
{
    struct seen s = {.base = event_base_new(), .drain = true};
    struct bufferevent *bev;
    struct timeval timeout = {0, 10000};
    int fds[2];

    (void)state;
    sockread_pair(fds);
    bev = seen_bufferevent(&s, fds[0]);
    bufferevent_set_timeouts(bev, &timeout, NULL);
    bufferevent_enable(bev, EV_READ);
    event_base_dispatch(s.base);
    assert_int_equal(s.events, BEV_EVENT_READING | BEV_EVENT_TIMEOUT);
    assert_int_equal(s.reads, 0);
    seen_free(&s, bev);
    close(fds[1]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_takes_no_more_than_asked),
        cmocka_unit_test(test_bytes_then_end_of_input),
        cmocka_unit_test(test_high_water_mark_holds),
        cmocka_unit_test(test_read_timeout),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
