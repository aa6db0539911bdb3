/*
 * splice.c — zero-copy body relay: upstream socket → pipe → client
 * socket with splice(2) (see splice.h for the contract).
 *
 * One loop (splice_run) alternates two moves until neither can progress:
 * fill (source → pipe, at most the bytes still owed and the pipe's room)
 * and drain (pipe → client, behind a frame header in framed mode). It
 * then waits on whichever side blocked it: the source while the pipe is
 * empty (with read_timeout), the client while bytes wait in the pipe.
 * A pipe counts its room in slots, not bytes: a fill may find it full
 * before pipe_bytes, so an EAGAIN with bytes in the pipe waits on the
 * client, whose draining frees slots, never on the source, which may be
 * readable all along.
 *
 * While a pump runs, the client's socket may hold SPLICE_SOCKET_PIPES
 * pipes' worth (splice_widen_sink). A Unix socket wakes its writer only
 * once three quarters of its send buffer are read: with the default
 * buffer (208 KiB) the client had 52 KiB, less than one of its reads,
 * to read while the daemon was being woken and scheduled, and it ran dry
 * on nearly every hand-off (about 4,500 times in a 1 GiB download), so
 * the download went at the pace of the scheduler's wake-ups and fell
 * below curl's on a busy machine. With 16 pipes (4 MiB by default) the
 * client still has 4 pipes to read when the daemon is woken, and one
 * wake-up refills the socket. Memory is not added so much as moved: the
 * bytes would otherwise wait in the upstream socket, whose receive
 * buffer the kernel grows to tcp_rmem's maximum for a fast origin.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>

#include "splice.h"
#include "timeval.h"

struct splice_pump {
    struct splice_sink sink;
    int src;           /* the upstream socket (borrowed) */
    int pipe[2];       /* read end, write end (owned) */
    size_t cap;        /* the pipe's size in bytes */
    int sndbuf_was;    /* the client's SO_SNDBUF before us; 0: untouched */
    size_t widened;    /* bytes of send buffer we added to the client's */
    uint64_t left;     /* bytes still to read from src */
    size_t in_pipe;    /* bytes read, not yet written */
    uint64_t moved;    /* bytes read from src in all */
    size_t frame_left; /* bytes of the open frame not yet written */
    char header[SPLICE_HEADER_MAX];
    size_t header_len; /* the open frame's header ... */
    size_t header_off; /* ... and how much of it went out */
    bool cleared;      /* the sink said nothing is ahead of us */
    bool src_ended;    /* no more reads: src_outcome says why */
    enum splice_outcome src_outcome;
    int err;                /* errno behind a failure */
    bool finished;          /* done reported: inert */
    struct timeval timeout; /* read_timeout; zero: none */
    struct event *src_ev;
    struct event *dst_ev;
    splice_done_cb cb;
    void *arg;
};

bool
splice_enabled(void)
{
    static int enabled = -1;

    if (enabled < 0) {
        const char *v = getenv("HCONND_SPLICE");

        enabled = v == NULL || v[0] != '0';
    }
    return enabled;
}

/* Reports the outcome once; the pump does nothing more. */
static void
splice_finish(struct splice_pump *p, enum splice_outcome outcome)
{
    p->finished = true;
    event_del(p->src_ev);
    event_del(p->dst_ev);
    p->cb(p->arg, p->moved, outcome, p->err);
}

/* One fill: source → pipe. Returns true on progress; sets *wait_src when
 * the source has nothing now and the pipe is empty. */
static bool
splice_fill(struct splice_pump *p, bool *wait_src)
{
    size_t room = p->cap - p->in_pipe;
    size_t want = p->left < room ? (size_t)p->left : room;
    ssize_t n;

    if (p->src_ended || want == 0)
        return false;
    n = splice(p->src, NULL, p->pipe[1], NULL, want,
               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
        p->left -= (uint64_t)n;
        p->in_pipe += (size_t)n;
        p->moved += (uint64_t)n;
        return true;
    }
    if (n < 0 && errno == EINTR)
        return true;
    if (n < 0 && errno == EAGAIN) {
        /* Either the source is dry or the pipe's slots are taken. */
        *wait_src = p->in_pipe == 0;
        return false;
    }
    /* End of file, or a reset: the bytes so far are all there is. */
    p->err = n < 0 ? errno : 0;
    p->src_ended = true;
    p->src_outcome = SPLICE_SRC_EOF;
    return true;
}

/* One drain step: a frame header, or pipe → client. Returns true on
 * progress; sets *wait_dst when the client cannot take bytes now, and
 * *failed when writing to it failed. */
static bool
splice_drain(struct splice_pump *p, bool *wait_dst, bool *failed)
{
    ssize_t n;

    if (p->in_pipe == 0)
        return false;
    if (!p->cleared && !(p->cleared = p->sink.clear(p->sink.arg))) {
        *wait_dst = true;
        return false;
    }
    if (p->frame_left == 0) {
        /* A frame announces exactly what the pipe holds: bytes already
         * read, which an early end upstream cannot take back. */
        p->frame_left = p->in_pipe;
        p->header_len = p->header_off = 0;
        if (p->sink.framed) {
            p->header_len = p->sink.frame(p->sink.arg, p->in_pipe, p->header,
                                          sizeof p->header);
            if (p->header_len == 0) {
                p->err = ENOMEM;
                *failed = true;
                return false;
            }
        }
    }
    if (p->header_off < p->header_len) {
        n = send(p->sink.fd, p->header + p->header_off,
                 p->header_len - p->header_off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0)
            p->header_off += (size_t)n;
    } else {
        n = splice(p->pipe[0], NULL, p->sink.fd, NULL, p->frame_left,
                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
            p->frame_left -= (size_t)n;
            p->in_pipe -= (size_t)n;
        }
    }
    if (n > 0 || (n < 0 && errno == EINTR))
        return true;
    if (n < 0 && errno == EAGAIN) {
        *wait_dst = true;
        return false;
    }
    p->err = n < 0 ? errno : EPIPE;
    *failed = true;
    return false;
}

/* Moves bytes until blocked, then waits on what blocked, or reports the
 * end. */
static void
splice_run(struct splice_pump *p)
{
    bool wait_src = false, wait_dst = false, failed = false;

    for (;;) {
        bool progress;

        wait_src = wait_dst = false;
        progress = splice_fill(p, &wait_src);
        progress |= splice_drain(p, &wait_dst, &failed);
        if (failed) {
            splice_finish(p, SPLICE_DST_FAILED);
            return;
        }
        if (p->in_pipe == 0 && p->left == 0) {
            splice_finish(p, SPLICE_DONE);
            return;
        }
        if (p->in_pipe == 0 && p->src_ended) {
            splice_finish(p, p->src_outcome);
            return;
        }
        if (!progress)
            break;
    }
    if (wait_dst)
        event_add(p->dst_ev, NULL);
    if (wait_src)
        event_add(p->src_ev, p->timeout.tv_sec > 0 || p->timeout.tv_usec > 0
                                 ? &p->timeout
                                 : NULL);
}

/* The source has bytes (or its end), or was silent too long. */
static void
splice_src_cb(evutil_socket_t fd, short what, void *arg)
{
    struct splice_pump *p = arg;

    if (p->finished)
        return;
    if ((what & EV_TIMEOUT) && !p->src_ended) {
        p->src_ended = true;
        p->src_outcome = SPLICE_SRC_TIMEOUT;
    }
    splice_run(p);
}

/* The client's socket has room. */
static void
splice_dst_cb(evutil_socket_t fd, short what, void *arg)
{
    struct splice_pump *p = arg;

    if (!p->finished)
        splice_run(p);
}

/* Gives fd back the send buffer it had (was, as SO_SNDBUF reported it):
 * later replies on the connection are held to the usual amount. */
static void
splice_restore_sink(int was, int fd)
{
    int ask = was / 2;

    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &ask, sizeof ask);
}

/* Gives the client's socket room for SPLICE_SOCKET_PIPES pipes while the
 * pump runs (see the top of the file), within net.core.wmem_max; what
 * it added counts as the pump's (splice_held_bytes). The kernel doubles
 * what SO_SNDBUF is given, as it reports. */
static void
splice_widen_sink(struct splice_pump *p)
{
    size_t want = p->cap * SPLICE_SOCKET_PIPES;
    int was = 0, now = 0, ask;
    socklen_t len = sizeof was;

    if (!p->sink.widen)
        return;
    if (want > (size_t)INT_MAX)
        want = (size_t)INT_MAX;
    ask = (int)(want / 2);
    if (getsockopt(p->sink.fd, SOL_SOCKET, SO_SNDBUF, &was, &len) < 0 ||
        was <= 0 || (size_t)was >= want ||
        setsockopt(p->sink.fd, SOL_SOCKET, SO_SNDBUF, &ask, sizeof ask) < 0)
        return;
    len = sizeof now;
    if (getsockopt(p->sink.fd, SOL_SOCKET, SO_SNDBUF, &now, &len) < 0 ||
        now <= was) {
        /* Capped below what it was (wmem_max under wmem_default). */
        splice_restore_sink(was, p->sink.fd);
        return;
    }
    p->sndbuf_was = was;
    p->widened = (size_t)(now - was);
}

struct splice_pump *
splice_start(struct event_base *base, int src, uint64_t len,
             const struct splice_sink *sink, size_t pipe_bytes,
             double read_timeout, splice_done_cb cb, void *arg)
{
    struct splice_pump *p = calloc(1, sizeof *p);
    int size;

    if (p == NULL)
        return NULL;
    p->pipe[0] = p->pipe[1] = -1;
    if (pipe2(p->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
        free(p);
        return NULL;
    }
    /* The pipe is the stream's buffer: the window's size, as the copying
     * path would hold (a smaller pipe when the kernel refuses it). */
    if (pipe_bytes > 0 && pipe_bytes <= (size_t)1 << 30)
        (void)fcntl(p->pipe[1], F_SETPIPE_SZ, (int)pipe_bytes);
    size = fcntl(p->pipe[1], F_GETPIPE_SZ);
    if (size < 65536) {
        /* A user over fs.pipe-user-pages-soft gets one-page pipes: a
         * system call per 4 KiB, where copying would cost less. */
        splice_free(p);
        return NULL;
    }
    p->cap = (size_t)size;
    p->sink = *sink;
    splice_widen_sink(p);
    p->src = src;
    p->left = len;
    p->cb = cb;
    p->arg = arg;
    if (read_timeout > 0)
        p->timeout = timeval_of(read_timeout);
    p->src_ev = event_new(base, src, EV_READ, splice_src_cb, p);
    p->dst_ev = event_new(base, sink->fd, EV_WRITE, splice_dst_cb, p);
    if (p->src_ev == NULL || p->dst_ev == NULL) {
        splice_free(p);
        return NULL;
    }
    /* From the loop: the caller is inside the codec, which the pump's
     * report would re-enter. */
    event_active(p->src_ev, EV_READ, 0);
    return p;
}

size_t
splice_held_bytes(const struct splice_pump *p)
{
    return p->cap + p->widened;
}

size_t
splice_cost_bound(size_t pipe_bytes)
{
    return pipe_bytes * (1 + SPLICE_SOCKET_PIPES);
}

bool
splice_frame_open(const struct splice_pump *p)
{
    return p->frame_left > 0 && (p->header_off > 0 || p->header_len == 0);
}

void
splice_free(struct splice_pump *p)
{
    if (p == NULL)
        return;
    if (p->src_ev != NULL)
        event_free(p->src_ev);
    if (p->dst_ev != NULL)
        event_free(p->dst_ev);
    if (p->pipe[0] >= 0)
        close(p->pipe[0]);
    if (p->pipe[1] >= 0)
        close(p->pipe[1]);
    if (p->sndbuf_was > 0)
        splice_restore_sink(p->sndbuf_was, p->sink.fd);
    free(p);
}
