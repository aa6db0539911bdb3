/*
 * sockread.c — one read from a socket onto an evbuffer's tail.
 *
 * libevent 2.1's evbuffer_read (behind every socket bufferevent) asks the
 * socket how many bytes it holds with an FIONREAD ioctl before each read:
 * one system call per read only to size the buffer. Reading into the
 * space the buffer has reserved, of a size fixed by the caller, needs
 * none; the kernel says how much it gave.
 *
 * sockread_bufferevent gives a socket bufferevent that same read in place
 * of libevent's: everything else about the bufferevent (enabling and
 * disabling, watermarks, timeouts, deferred callbacks, freeing) stays
 * libevent's, so the codecs, the TLS filter over it and the pool see no
 * difference but one system call fewer per read. It reaches the
 * bufferevent's read event through event2/bufferevent_struct.h, which
 * libevent 2.1 installs for this kind of use. Rate limits are not
 * charged for the bytes read here: hconnd sets none.
 */
#include <errno.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>

#include "sockread.h"

ssize_t
sockread_evbuffer(struct evbuffer *buf, int fd, size_t howmuch)
{
    struct evbuffer_iovec vec[2];
    struct iovec iov[2];
    ssize_t n, left;
    int nvec;

    /* A bufferevent freezes its input's tail so that only it appends;
     * this appends just as its own read would, from the same socket. */
    evbuffer_unfreeze(buf, 0);
    nvec = evbuffer_reserve_space(buf, (ev_ssize_t)howmuch, vec, 2);
    if (nvec <= 0) {
        evbuffer_freeze(buf, 0);
        errno = ENOMEM;
        return -1;
    }
    /* The space reserved may be more than asked for (the rest of a
     * chain): the read takes no more than howmuch. */
    left = (ssize_t)howmuch;
    for (int i = 0; i < nvec; i++) {
        iov[i].iov_base = vec[i].iov_base;
        iov[i].iov_len =
            (size_t)left < vec[i].iov_len ? (size_t)left : vec[i].iov_len;
        left -= (ssize_t)iov[i].iov_len;
    }
    n = readv(fd, iov, nvec);
    left = n > 0 ? n : 0;
    for (int i = 0; i < nvec; i++) {
        size_t len =
            (size_t)left < vec[i].iov_len ? (size_t)left : vec[i].iov_len;

        vec[i].iov_len = len;
        left -= (ssize_t)len;
    }
    evbuffer_commit_space(buf, vec, n > 0 ? nvec : 0);
    evbuffer_freeze(buf, 0);
    return n;
}

/* libevent's own read callback of socket bufferevents (static in
 * libevent), for what only it can do: report a read timeout, and act on
 * a read high-water mark lowered below what is buffered. */
static event_callback_fn sockread_libevent_cb;

/* A bufferevent's first read off its socket per readiness: libevent's
 * own size, so that a small response costs a buffer chain of the size it
 * did (the FIONREAD ioctl sized it before), not one of the whole window. */
#define SOCKREAD_FIRST 4096

/* What a read's result n says of the socket: BEV_EVENT_EOF, BEV_EVENT_ERROR,
 * or 0 (bytes, or none for now). */
static short
sockread_end(ssize_t n)
{
    if (n == 0)
        return BEV_EVENT_EOF;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return BEV_EVENT_ERROR;
    return 0;
}

/* The socket of a bufferevent taken over by sockread_bufferevent is
 * readable (or its read timed out). Does what libevent's read callback
 * does, through sockread_evbuffer: a first read of SOCKREAD_FIRST bytes,
 * and when it filled, one more for the rest of what one read may take. */
static void
sockread_bufferevent_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bufferevent *bev = arg;
    struct evbuffer *input = bufferevent_get_input(bev);
    ev_ssize_t max = bufferevent_get_max_to_read(bev);
    /* The read high-water mark, as bufferevent_getwatermark reads it but
     * for its lock (hconnd runs one thread, and sets up no locks). */
    size_t high = bev->wm_read.high, held = evbuffer_get_length(input), first;
    short end = 0; /* BEV_EVENT_EOF or _ERROR once a read met either */
    ssize_t n;

    if (what == EV_TIMEOUT || max <= 0 || (high != 0 && held >= high)) {
        sockread_libevent_cb(fd, what, arg);
        return;
    }
    /* Bounded as libevent bounds it: the most one read may take
     * (bufferevent_set_max_single_read), and no further than the read
     * high-water mark. */
    if (high != 0 && high - held < (size_t)max)
        max = (ev_ssize_t)(high - held);
    first = (size_t)max < SOCKREAD_FIRST ? (size_t)max : SOCKREAD_FIRST;
    /* A callback run from here may free the bufferevent. */
    bufferevent_incref(bev);
    n = sockread_evbuffer(input, (int)fd, first);
    end = sockread_end(n);
    if (n == (ssize_t)first && (size_t)max > first)
        end = sockread_end(
            sockread_evbuffer(input, (int)fd, (size_t)max - first));
    if (n > 0)
        bufferevent_trigger(bev, EV_READ, 0);
    /* The end of input or an error, after the bytes before it (the
     * deferred callbacks run in that order). */
    if (end != 0) {
        bufferevent_disable(bev, EV_READ);
        bufferevent_trigger_event(bev, BEV_EVENT_READING | end, 0);
    }
    bufferevent_decref(bev);
}

int
sockread_take_read_event(struct bufferevent *bev, event_callback_fn cb,
                         void *arg)
{
    struct event *ev = &bev->ev_read;
    evutil_socket_t fd = event_get_fd(ev);

    if (fd < 0)
        return -1;
    /* Exactly as bufferevent_socket_new assigns it (EV_FINALIZE: freeing
     * the bufferevent finalizes the event), but for the callback. */
    event_del(ev);
    if (event_assign(ev, bufferevent_get_base(bev), fd,
                     EV_READ | EV_PERSIST | EV_FINALIZE, cb, arg) < 0)
        return -1;
    /* Back in the loop's set if it was (bufferevent_enable leaves a
     * suspended read alone). */
    if (bufferevent_get_enabled(bev) & EV_READ)
        bufferevent_enable(bev, EV_READ);
    return 0;
}

int
sockread_bufferevent(struct bufferevent *bev)
{
    struct event *ev = &bev->ev_read;
    event_callback_fn cb = event_get_callback(ev);

    /* Every socket bufferevent's read event has the same callback,
     * called with the bufferevent itself: anything else is left alone. */
    if (cb == sockread_bufferevent_cb)
        return 0;
    if (event_get_callback_arg(ev) != bev ||
        (sockread_libevent_cb != NULL && cb != sockread_libevent_cb))
        return -1;
    sockread_libevent_cb = cb;
    return sockread_take_read_event(bev, sockread_bufferevent_cb, bev);
}
