/*
 * transport.c — libhconn's I/O on the daemon's Unix socket: connecting,
 * sending protocol lines and payloads, receiving bytes into one buffer and
 * cutting them into messages with the wire codec.
 *
 * Non-blocking mode never waits: sends are queued in an output buffer and
 * written as the socket takes them, receives take what is there, and a
 * call that needs more returns HCONN_EWOULD_BLOCK with the stream intact.
 *
 * Every wait goes through poll() so the optional timeout applies and
 * EINTR is simply retried. Writes never block blind: when the socket is
 * full, whatever the daemon sends meanwhile is read into the receive
 * buffer, so pipelined responses can't deadlock against a large request
 * body. Any failure here leaves the stream unusable: it is reported
 * through conn_broken, which closes the socket.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "hconn-private.h"

/* Above this size an empty receive buffer is given back to the system. */
#define RBUF_KEEP (4 * HCONN_CHUNK)

/* The local wait on the daemon in ms (-1 = forever): twice the request
 * timeout plus a second, so the daemon's own timeout error comes first. */
static int
transport_wait_ms(const struct hconn *c)
{
    double ms;

    if (c->timeout <= 0)
        return -1;
    ms = (c->timeout * 2 + 1) * 1000;
    return ms >= INT_MAX ? INT_MAX : (int)ms;
}

/* Monotonic milliseconds. */
static int64_t
transport_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Polls fd for events within the local wait, retrying on EINTR with the
 * time left. Returns revents, 0 on timeout, or -errno. */
static int
transport_poll(struct hconn *c, short events)
{
    int wait = transport_wait_ms(c);
    int64_t deadline = wait < 0 ? 0 : transport_now_ms() + wait;

    for (;;) {
        struct pollfd pfd = {.fd = c->fd, .events = events};
        int n = poll(&pfd, 1, wait);

        if (n > 0)
            return pfd.revents;
        if (n == 0)
            return 0;
        if (errno != EINTR)
            return -errno;
        if (wait >= 0) {
            int64_t left = deadline - transport_now_ms();
            wait = left > 0 ? (int)left : 0;
        }
    }
}

void
transport_debug(const struct hconn *c, const char *prefix, const char *line,
                size_t len)
{
    if (c->debuglevel < 2)
        return;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    fprintf(stderr, "%s%.*s\n", prefix, len > INT_MAX ? INT_MAX : (int)len,
            line);
}

int
transport_connect(struct hconn *c)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    size_t plen = strlen(c->socket_path);
    int fd;

    if (plen == 0 || plen >= sizeof(sun.sun_path))
        return conn_error(c, HCONN_EDAEMON_UNAVAILABLE,
                          "cannot connect to hconnd at %s: %s", c->socket_path,
                          plen ? "socket path too long" : "empty socket path");
    memcpy(sun.sun_path, c->socket_path, plen + 1);

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return conn_error(c, HCONN_EDAEMON_UNAVAILABLE,
                          "cannot connect to hconnd at %s: %s", c->socket_path,
                          strerror(errno));
    /* A Unix connect interrupted by a signal may be retried; EISCONN then
     * means the first attempt went through. */
    while (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int e = errno;

        if (e == EINTR)
            continue;
        if (e == EISCONN)
            break;
        close(fd);
        return conn_error(c, HCONN_EDAEMON_UNAVAILABLE,
                          "cannot connect to hconnd at %s: %s", c->socket_path,
                          strerror(e));
    }
    c->fd = fd;
    c->eof = false;
    c->rpos = c->rlen = 0;
    c->payload_left = 0;
    wire_reader_init(&c->reader, WIRE_MAX_LINE);
    return 0;
}

void
transport_close(struct hconn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->eof = false;
    free(c->wbuf);
    c->wbuf = NULL;
    c->wpos = c->wlen = c->wcap = 0;
    free(c->rbuf);
    c->rbuf = NULL;
    c->rpos = c->rlen = c->rcap = 0;
    c->payload_left = 0;
    wire_reader_init(&c->reader, WIRE_MAX_LINE);
}

/* Makes room for at least HCONN_CHUNK more bytes at the end of rbuf.
 * Unread bytes move to the front only when that frees at least half the
 * buffer, so buffering stays linear. Returns 0 or HCONN_ENO_MEMORY. */
static int
transport_reserve(struct hconn *c)
{
    size_t unread = c->rlen - c->rpos;
    size_t cap;
    char *p;

    if (unread == 0) {
        c->rpos = c->rlen = 0;
        if (c->rcap > RBUF_KEEP) {
            free(c->rbuf);
            c->rbuf = NULL;
            c->rcap = 0;
        }
    } else if (c->rpos > 0 && c->rpos >= unread) {
        memmove(c->rbuf, c->rbuf + c->rpos, unread);
        c->rpos = 0;
        c->rlen = unread;
    }
    if (c->rcap - c->rlen >= HCONN_CHUNK)
        return 0;
    cap = c->rcap ? c->rcap : HCONN_CHUNK;
    while (cap - c->rlen < HCONN_CHUNK) {
        if (cap > SIZE_MAX / 2)
            return HCONN_ENO_MEMORY;
        cap *= 2;
    }
    p = realloc(c->rbuf, cap);
    if (!p)
        return HCONN_ENO_MEMORY;
    c->rbuf = p;
    c->rcap = cap;
    return 0;
}

/* Reports a failed recv/send errno e as the stream's end. */
static int
transport_io_failed(struct hconn *c, int e, const char *what)
{
    if (e == EPIPE || e == ECONNRESET)
        conn_error(c, HCONN_ECONNECTION_CLOSED,
                   "hconnd closed the connection (%s: %s)", what, strerror(e));
    else
        conn_error(c, HCONN_EIO_ERROR, "%s on the hconnd socket: %s", what,
                   strerror(e));
    return conn_broken(c, e == EPIPE || e == ECONNRESET
                              ? HCONN_ECONNECTION_CLOSED
                              : HCONN_EIO_ERROR);
}

/* The local wait ran out. */
static int
transport_timed_out(struct hconn *c)
{
    conn_error(c, HCONN_ETIMEOUT, "no answer from hconnd within %.3g s",
               c->timeout * 2 + 1);
    return conn_broken(c, HCONN_ETIMEOUT);
}

/* Reads whatever is there without waiting into rbuf. Returns bytes read
 * (0 if none, setting c->eof at the end of the stream) or a negative code
 * after conn_broken. */
static ssize_t
transport_recv_some(struct hconn *c)
{
    ssize_t n;
    int rc = transport_reserve(c);

    if (rc < 0) {
        conn_error(c, rc, "out of memory buffering hconnd's replies");
        return conn_broken(c, rc);
    }
    do
        n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        c->rlen += (size_t)n;
        c->rgen++;
        return n;
    }
    if (n == 0) {
        c->eof = true;
        return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
    return transport_io_failed(c, errno, "recv");
}

int
transport_fill(struct hconn *c)
{
    for (;;) {
        int ev;
        ssize_t n;

        if (c->fd < 0)
            return conn_error(c, HCONN_ECONNECTION_CLOSED,
                              "not connected to hconnd");
        if (c->eof) {
            conn_error(c, HCONN_ECONNECTION_CLOSED,
                       "hconnd closed the connection");
            return conn_broken(c, HCONN_ECONNECTION_CLOSED);
        }
        if (c->nonblocking) {
            /* Queued requests may be what the daemon waits for. */
            int rc = transport_flush(c);

            if (rc < 0)
                return rc;
            n = transport_recv_some(c);
            if (n < 0)
                return (int)n;
            if (n > 0)
                return 0;
            if (c->eof)
                continue;
            return conn_error(c, HCONN_EWOULD_BLOCK,
                              "waiting for hconnd's reply (non-blocking)");
        }
        ev = transport_poll(c, POLLIN);
        if (ev < 0)
            return transport_io_failed(c, -ev, "poll");
        if (ev == 0)
            return transport_timed_out(c);
        n = transport_recv_some(c);
        if (n < 0)
            return (int)n;
        if (n > 0)
            return 0;
        /* EOF (handled above on the next turn) or a spurious wakeup. */
    }
}

/* Writes len bytes; while the socket is full, buffers what the daemon
 * sends. Returns 0 or a negative code after conn_broken. */
static int
transport_write(struct hconn *c, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        int ev;

        if (n >= 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return transport_io_failed(c, errno, "send");
        ev = transport_poll(c, c->eof ? POLLOUT : POLLIN | POLLOUT);
        if (ev < 0)
            return transport_io_failed(c, -ev, "poll");
        if (ev == 0)
            return transport_timed_out(c);
        if ((ev & (POLLIN | POLLHUP)) && !c->eof) {
            ssize_t r = transport_recv_some(c);
            if (r < 0)
                return (int)r;
        }
    }
    return 0;
}

bool
transport_out_full(const struct hconn *c)
{
    return c->nonblocking && c->wlen - c->wpos >= HCONN_WBUF_HIGH;
}

size_t
transport_out_pending(const struct hconn *c)
{
    return c->wlen - c->wpos;
}

/* Appends bytes to the output queue. Returns 0 or HCONN_ENO_MEMORY. */
static int
transport_queue(struct hconn *c, const void *buf, size_t len)
{
    size_t queued = c->wlen - c->wpos;

    if (len == 0)
        return 0;
    if (c->wpos > 0 && c->wcap - c->wlen < len) {
        memmove(c->wbuf, c->wbuf + c->wpos, queued);
        c->wpos = 0;
        c->wlen = queued;
    }
    if (c->wcap - c->wlen < len) {
        size_t cap = c->wcap ? c->wcap : HCONN_CHUNK;
        char *p;

        while (cap - c->wlen < len) {
            if (cap > SIZE_MAX / 2)
                return HCONN_ENO_MEMORY;
            cap *= 2;
        }
        p = realloc(c->wbuf, cap);
        if (!p)
            return HCONN_ENO_MEMORY;
        c->wbuf = p;
        c->wcap = cap;
    }
    memcpy(c->wbuf + c->wlen, buf, len);
    c->wlen += len;
    return 0;
}

int
transport_flush(struct hconn *c)
{
    while (c->wpos < c->wlen && c->fd >= 0) {
        ssize_t n = send(c->fd, c->wbuf + c->wpos, c->wlen - c->wpos,
                         MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n >= 0) {
            c->wpos += (size_t)n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return transport_io_failed(c, errno, "send");
    }
    if (c->wpos == c->wlen) {
        c->wpos = c->wlen = 0;
        if (c->wcap > RBUF_KEEP) {
            free(c->wbuf);
            c->wbuf = NULL;
            c->wcap = 0;
        }
    }
    return 0;
}

int
transport_flush_all(struct hconn *c)
{
    int rc = 0;

    if (c->wpos < c->wlen && c->fd >= 0) {
        size_t len = c->wlen - c->wpos;
        char *copy = malloc(len);

        /* transport_write may not write from wbuf itself: it is ours. */
        if (!copy) {
            conn_error(c, HCONN_ENO_MEMORY, "out of memory");
            return conn_broken(c, HCONN_ENO_MEMORY);
        }
        memcpy(copy, c->wbuf + c->wpos, len);
        c->wpos = c->wlen = 0;
        rc = transport_write(c, copy, len);
        free(copy);
    }
    return rc;
}

int
transport_read_ready(struct hconn *c, size_t limit)
{
    while (c->fd >= 0 && !c->eof && c->rlen - c->rpos < limit) {
        ssize_t n = transport_recv_some(c);

        if (n < 0)
            return (int)n;
        if (n == 0)
            break;
    }
    return 0;
}

/* transport_send_msg; force: queue it even over the high-water mark. */
static int
transport_send(struct hconn *c, const json_t *msg, const void *payload,
               size_t len, bool force)
{
    size_t llen;
    char *line;
    int rc;

    if (!force && transport_out_full(c))
        return conn_error(c, HCONN_EWOULD_BLOCK,
                          "%zu bytes are queued for hconnd (non-blocking)",
                          transport_out_pending(c));
    line = wire_encode(msg, &llen);
    if (!line) {
        conn_error(c, HCONN_ENO_MEMORY, "out of memory encoding a message");
        return HCONN_ENO_MEMORY;
    }
    transport_debug(c, "hconnd> ", line, llen);
    if (c->nonblocking) {
        size_t mark = c->wlen;

        rc = transport_queue(c, line, llen);
        if (rc == 0)
            rc = transport_queue(c, payload, len);
        free(line);
        if (rc < 0) {
            c->wlen = mark; /* nothing of this message is queued */
            return conn_error(c, rc, "out of memory queueing a message");
        }
        return transport_flush(c);
    }
    rc = transport_flush_all(c);
    if (rc == 0)
        rc = transport_write(c, line, llen);
    free(line);
    if (rc == 0 && len > 0)
        rc = transport_write(c, payload, len);
    return rc;
}

int
transport_send_msg(struct hconn *c, const json_t *msg, const void *payload,
                   size_t len)
{
    return transport_send(c, msg, payload, len, false);
}

int
transport_send_control(struct hconn *c, const json_t *msg)
{
    return transport_send(c, msg, NULL, 0, true);
}

int
transport_send_more(struct hconn *c, const json_t *msg, const void *payload,
                    size_t len)
{
    return transport_send(c, msg, payload, len, true);
}

int
transport_scan_answer(struct hconn *c, int64_t id, int *status, int *error)
{
    size_t pos = c->rpos, end = c->rlen;
    char err[256];

    if (c->scan_gen == c->rgen || !c->rbuf)
        return 0;
    c->scan_gen = c->rgen;
    /* Past the rest of the data frame being read, if it is all here. */
    if (c->payload_left > end - pos)
        return 0;
    pos += (size_t)c->payload_left;
    while (pos < end) {
        const char *line = c->rbuf + pos;
        const char *nl = memchr(line, '\n', end - pos);
        struct wire_reply rep;
        json_t *msg;
        int found = 0;

        if (!nl)
            return 0; /* the rest of the line has not arrived */
        msg = json_loadb(line, (size_t)(nl - line), 0, NULL);
        pos += (size_t)(nl - line) + 1;
        if (!msg)
            continue; /* a blank line; a bad one breaks the stream later */
        if (wire_parse_reply(msg, &rep, err, sizeof(err)) == 0) {
            if (rep.kind == WIRE_REPLY_DATA)
                pos = rep.data_len > end - pos ? end : pos + rep.data_len;
            else if (rep.id && json_is_integer(rep.id) &&
                     json_integer_value(rep.id) == id &&
                     (rep.kind == WIRE_REPLY_HEAD ||
                      rep.kind == WIRE_REPLY_ERROR)) {
                *status = rep.kind == WIRE_REPLY_HEAD ? rep.status : 0;
                *error = rep.kind == WIRE_REPLY_ERROR ? rep.error : 0;
                found = 1;
            }
        }
        json_decref(msg);
        if (found)
            return 1;
    }
    return 0;
}

int
transport_next_reply(struct hconn *c, json_t **msgp, struct wire_reply *rep)
{
    char err[256];

    *msgp = NULL;
    for (;;) {
        size_t consumed = 0;
        json_t *msg = NULL;
        const char *line = c->rbuf ? c->rbuf + c->rpos : "";
        int rc = wire_read_line(&c->reader, line, c->rlen - c->rpos, &consumed,
                                &msg, err, sizeof(err));

        c->rpos += consumed;
        if (rc < 0) {
            conn_error(c, HCONN_EBAD_MESSAGE, "bad message from hconnd: %s",
                       err);
            return conn_broken(c, HCONN_EBAD_MESSAGE);
        }
        if (msg) {
            transport_debug(c, "hconnd< ", line, consumed);
            rc = wire_parse_reply(msg, rep, err, sizeof(err));
            if (rc < 0) {
                json_decref(msg);
                conn_error(c, HCONN_EBAD_MESSAGE, "bad message from hconnd: %s",
                           err);
                return conn_broken(c, HCONN_EBAD_MESSAGE);
            }
            if (rep->kind == WIRE_REPLY_DATA)
                c->payload_left = rep->data_len;
            *msgp = msg;
            return 0;
        }
        if (consumed > 0)
            continue; /* a blank line, or the tail of an over-long one */
        rc = transport_fill(c);
        if (rc < 0)
            return rc;
    }
}

size_t
transport_payload_avail(struct hconn *c, const char **p)
{
    size_t n = c->rlen - c->rpos;

    if (n > c->payload_left)
        n = (size_t)c->payload_left;
    *p = c->rbuf ? c->rbuf + c->rpos : "";
    return n;
}

void
transport_payload_consume(struct hconn *c, size_t n)
{
    c->rpos += n;
    c->payload_left -= n;
}

ssize_t
transport_payload_direct(struct hconn *c, void *buf, size_t n)
{
    /* A blocking read tries the socket before polling it: in a large
     * body the bytes are there already, and a poll per read was a third
     * of the system calls a download made. */
    bool try_first = !c->nonblocking;

    if (n > c->payload_left)
        n = (size_t)c->payload_left;
    if (n > SSIZE_MAX)
        n = SSIZE_MAX;
    for (;;) {
        ssize_t got;
        int ev;

        if (c->fd < 0)
            return conn_error(c, HCONN_ECONNECTION_CLOSED,
                              "not connected to hconnd");
        if (c->eof) {
            conn_error(c, HCONN_ECONNECTION_CLOSED,
                       "hconnd closed the connection");
            return conn_broken(c, HCONN_ECONNECTION_CLOSED);
        }
        if (c->nonblocking) {
            int rc = transport_flush(c);

            if (rc < 0)
                return rc;
            ev = POLLIN;
        } else if (try_first) {
            ev = POLLIN;
            try_first = false;
        } else {
            ev = transport_poll(c, POLLIN);
        }
        if (ev < 0)
            return transport_io_failed(c, -ev, "poll");
        if (ev == 0)
            return transport_timed_out(c);
        do
            got = recv(c->fd, buf, n, MSG_DONTWAIT);
        while (got < 0 && errno == EINTR);
        if (got > 0) {
            c->payload_left -= (uint64_t)got;
            return got;
        }
        if (got == 0)
            c->eof = true;
        else if (errno != EAGAIN && errno != EWOULDBLOCK)
            return transport_io_failed(c, errno, "recv");
        else if (c->nonblocking)
            return conn_error(c, HCONN_EWOULD_BLOCK,
                              "waiting for body bytes from hconnd "
                              "(non-blocking)");
    }
}
