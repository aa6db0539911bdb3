/*
 * splice.h — moves a known number of response body bytes from an
 * upstream socket to a client's socket through a pipe with splice(2), so
 * they never pass through user space.
 *
 * A pump fills its pipe from the source, then writes the bytes in the
 * pipe to the client: in framed mode a data frame's header line for
 * exactly the bytes already in the pipe first, so every frame's length
 * is exact even if the source ends early; in raw mode the bytes alone.
 * It writes only once its sink says nothing is queued for the client
 * ahead of the body. The pipe is the pump's only buffer of its own, and
 * the client's socket may hold SPLICE_SOCKET_PIPES more while it runs: a
 * client that does not read stalls its own pump, which then stops
 * reading the source, and memory stays at what splice_held_bytes says
 * (bytes the socket holds when the pump ends are the session's to charge:
 * session_settle_socket_room).
 */
#ifndef HCONND_SPLICE_H
#define HCONND_SPLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The least a body must still owe for splicing to pay: a pipe costs
 * four system calls to make and close, which copying 64 KiB outweighs. */
#define SPLICE_MIN_BYTES (64 * 1024)

/* The client's socket may hold this many pipes' worth while a pump runs
 * (splice.c says why). */
#define SPLICE_SOCKET_PIPES 16

/* The longest data frame header a pump writes: {"id":<id>,"data":<n>}\n
 * is longer only for a very long string id, whose bodies are copied. */
#define SPLICE_HEADER_MAX 512

struct event_base;
struct splice_pump;

/* Where the bytes go. */
struct splice_sink {
    int fd;      /* the client's socket (non-blocking) */
    bool framed; /* each run of bytes goes in a data frame */
    bool widen;  /* fd may hold SPLICE_SOCKET_PIPES pipes meanwhile */
    /* True when nothing is queued for the client ahead of the body; asked
     * until it says so, on each chance to write to fd. */
    bool (*clear)(void *arg);
    /* Writes the header line of a data frame of n bytes into buf (cap
     * bytes); its length, or 0 when it could not. */
    size_t (*frame)(void *arg, size_t n, char *buf, size_t cap);
    void *arg;
};

/* How a pump ended. For the first three every byte read went to the
 * client and every frame is whole. */
enum splice_outcome {
    SPLICE_DONE,        /* all the bytes moved */
    SPLICE_SRC_EOF,     /* the source ended (or was reset) first */
    SPLICE_SRC_TIMEOUT, /* the source was silent for read_timeout */
    SPLICE_DST_FAILED,  /* writing to the client failed: a frame may be
                           cut, the client must be cut off */
};

/* Reports the end of a pump: moved bytes were read from the source (and,
 * but for SPLICE_DST_FAILED, delivered); err is the errno behind a
 * failure. The pump is inert then; the callee frees it (splice_free). */
typedef void (*splice_done_cb)(void *arg, uint64_t moved,
                               enum splice_outcome outcome, int err);

/* Whether splicing is on: HCONND_SPLICE=0 in the environment turns it off
 * (for benchmarks that compare both paths in one run). */
bool splice_enabled(void);

/* Starts moving len bytes from src to sink->fd through a pipe of about
 * pipe_bytes. The first moves happen from the loop, never within this
 * call. NULL when no pipe could be had (the caller copies instead). */
struct splice_pump *splice_start(struct event_base *base, int src, uint64_t len,
                                 const struct splice_sink *sink,
                                 size_t pipe_bytes, double read_timeout,
                                 splice_done_cb cb, void *arg);

/* The kernel memory p may hold at most: its pipe, and the room it added
 * to the client's socket. */
size_t splice_held_bytes(const struct splice_pump *p);

/* The most splice_held_bytes can be for a pipe of pipe_bytes: what a
 * client's budget must be able to take before a pump starts. */
size_t splice_cost_bound(size_t pipe_bytes);

/* True while a data frame's header has gone out (even in part) and not
 * all its bytes: the client's stream cannot take another line now. */
bool splice_frame_open(const struct splice_pump *p);

/* Stops p, closing its pipe and giving the client's socket back its
 * send buffer; its source is left as it stands. */
void splice_free(struct splice_pump *p);

#endif
