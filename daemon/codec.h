/*
 * codec.h — the seam between an exchange and the protocol spoken on its
 * upstream connection. An exchange opens a stream on a leased connection
 * for its request, sends and ends the body through it, pauses and resumes
 * the stream's reading, and closes or aborts it; the codec reports the
 * response back (interim, head, data, end, errors) through callbacks, in
 * the manner of curl's connection filters and nghttp2's stream callbacks.
 *
 * The exchange never touches the connection's socket or bufferevent: the
 * codec owns the stream's I/O and gives the connection back to the pool
 * (or drops it) when the stream ends. codec_open chooses the codec by
 * what the connection speaks: HTTP/1.1 (codec_http1.c), one stream at a
 * time, or HTTP/2 (codec_http2.c), many.
 *
 * One optional exception: a codec may lend the socket for the rest of a
 * body of known length (body_fd), which the exchange then splices to its
 * client (splice.c) and hands back (codec_body_taken). Only HTTP/1.1
 * does: an HTTP/2 connection's socket carries every stream's frames.
 */
#ifndef HCONND_CODEC_H
#define HCONND_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "http1.h"

struct evbuffer;
struct upstream;
struct wire_request;

/* A request made ready before any lease, so that a bad one fails before
 * anything is leased and nothing malformed is ever sent. */
struct codec_request {
    bool head_request;  /* HEAD: no body follows the response head */
    bool request_close; /* some Connection field said close */
    int64_t length;     /* the body's declared length; -1: not known */
    const struct wire_request *req; /* the request (borrowed: the
                                       exchange keeps it) */
    /* HTTP/1.1: the head, formatted once and sent on every attempt, and
     * the body writer it readied (each stream rewinds a copy). */
    char *head;
    size_t head_len;
    bool head_owned; /* head was malloc'd, not the caller's buffer */
    struct http1_writer writer;
};

/* A response head as the codec received it; the fields (and the reason)
 * point into the codec's input and last only for the callback. */
struct codec_head {
    int status;
    int version; /* 10, 11, 20 */
    const char *reason;
    size_t reason_len;
    const struct http1_header *headers;
    size_t nheaders;
    int64_t length; /* the body's length; -1: not known until its end */
};

/* The end of a response. */
struct codec_end {
    const struct http1_header *trailers; /* as for codec_head */
    size_t ntrailers;
    int status;             /* the final status */
    uint64_t body_received; /* body bytes delivered */
    bool keep;              /* the connection goes back to the pool */
};

/* A stream's failure: the stream is over and its connection dropped
 * once the callback returns (or at once, when it aborts the stream). */
struct codec_error {
    int code; /* HCONN_E... */
    const char *message;
    bool unprocessed;       /* no response byte came: the origin cannot
                               have acted on the request */
    bool refused;           /* the origin said it did not process it
                               (HTTP/2 REFUSED_STREAM, or above a GOAWAY's
                               last stream): safe to send again whatever
                               the method */
    uint64_t body_received; /* body bytes delivered before it */
    int64_t body_expected;  /* the length announced, or -1 */
};

/* The exchange's side of a stream. Any callback may close or abort the
 * stream (codec_abort); the codec then touches it no more. */
struct codec_events {
    void (*interim)(void *arg, int status);
    void (*head)(void *arg, const struct codec_head *head);
    /* Moves len body bytes from the front of in to the client; false
     * when they could not be taken (they are dropped). */
    bool (*data)(void *arg, struct evbuffer *in, size_t len);
    /* The response is complete; the stream is over once it returns. */
    void (*end)(void *arg, const struct codec_end *end);
    void (*error)(void *arg, const struct codec_error *error);
    /* The connection took what was queued: room for more body. */
    void (*writable)(void *arg);
    /* Optional (NULL: never asked). The rest of a Content-Length body,
     * left bytes, is on the connection's plain socket fd with nothing of
     * it buffered: true takes them straight from fd (splice.c, past the
     * codec and user space), read_timeout seconds of silence at most. The
     * codec then leaves fd alone until codec_body_taken, or until the
     * stream is aborted. false: they come through data() as ever. */
    bool (*body_fd)(void *arg, int fd, uint64_t left, double read_timeout);
};

/* How a stream runs. */
struct codec_options {
    double read_timeout;   /* seconds of silence, 0: none */
    size_t window;         /* bytes buffered per direction, at most */
    size_t max_head_bytes; /* response head, interim responses included */
};

struct codec_stream;

/* Finds a request header field by name (case-insensitive); NULL. */
const char *codec_request_field(const struct wire_request *req,
                                const char *name);

/* Readies req for sending (the codec's own rules on methods, targets and
 * header fields; may set req->expect_continue when the client's own
 * Expect asks for it). A head of at most cap bytes is formatted into buf,
 * which must outlast cr; a longer one is allocated. 0, or HCONN_E...
 * with err saying what was wrong. */
int codec_prepare(struct codec_request *cr, struct wire_request *req, char *buf,
                  size_t cap, char *err, size_t errlen);

/* Frees what codec_prepare made. */
void codec_request_clear(struct codec_request *cr);

/* Opens a stream for cr on up, a connection leased for it, and sends the
 * head. The stream owns up from now on. NULL when out of memory (up is
 * dropped then). */
struct codec_stream *codec_open(struct upstream *up,
                                const struct codec_request *cr,
                                const struct codec_options *opt,
                                const struct codec_events *ev, void *arg);

/* Bytes of body the stream takes now (its send window). */
size_t codec_send_room(const struct codec_stream *s);

/* Body bytes sent on this stream so far. */
uint64_t codec_body_sent(const struct codec_stream *s);

/* Sends n body bytes of body from offset off: copied when retain (kept
 * for a replay), else moved off body's front (off 0; *moved says how
 * many, -1 when none were tried). 0, or HCONN_E... (see
 * codec_errmsg); the stream is unusable after a failure. */
int codec_send_data(struct codec_stream *s, struct evbuffer *body, size_t off,
                    size_t n, bool retain, ssize_t *moved);

/* Ends the request body. 0, or HCONN_E... (see codec_errmsg). */
int codec_send_end(struct codec_stream *s);

/* What the last failing codec_send_... call found wrong. */
const char *codec_errmsg(const struct codec_stream *s);

/* Stops reading the stream's response (its client is behind). */
void codec_pause(struct codec_stream *s);

/* Reads a paused stream's response again, delivering what is
 * buffered; nothing when it is not paused. */
void codec_resume(struct codec_stream *s);

/* After body_fd took a body: n of its bytes were read from the socket,
 * eof when the connection ended (or was reset) before the rest. The
 * stream reads on: the end of the response, or incomplete_read. */
void codec_body_taken(struct codec_stream *s, uint64_t n, bool eof);

/* Ends a stream mid-way: its connection, in an unknown state, is
 * dropped. Safe from within the stream's own callbacks. */
void codec_abort(struct codec_stream *s);

/* The stream's exchange is leaving (its client went away) with the
 * response unfinished. HTTP/1.1: when the request went out whole and the
 * rest of the response can be told apart from what follows, the codec
 * keeps the stream and reads that rest for ev and arg (a drain, drain.c)
 * instead: at most max_bytes more bytes from the connection, head and
 * framing included, the response's end then pooling the connection as
 * ever. Returns true then; nothing is delivered before the caller's turn
 * of the loop is over. Otherwise (a request cut short, a body lent to
 * splice, a response delimited by the close or already longer than
 * max_bytes, HTTP/2, whose stream is reset) it aborts the stream like
 * codec_abort and returns false. */
bool codec_detach(struct codec_stream *s, uint64_t max_bytes,
                  const struct codec_events *ev, void *arg);

/* True when the protocol on up can tell that a request was not processed
 * (HTTP/2's REFUSED_STREAM and GOAWAY), so that even a request that is
 * not idempotent may go again: its body is worth keeping until the
 * response begins. */
bool codec_can_refuse(const struct upstream *up);

/* Requests the connection can take besides those it carries: 1 for an
 * idle HTTP/1.1 connection, else 0; for HTTP/2, the streams it may still
 * open. */
unsigned codec_spare(const struct upstream *up);

#endif
