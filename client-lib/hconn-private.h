/*
 * hconn-private.h — libhconn's internal structures, shared by conn.c (the
 * connection and its request queue), response.c (responses and body
 * reads) and transport.c (the daemon socket). Not installed.
 */
#ifndef HCONN_PRIVATE_H
#define HCONN_PRIVATE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "hconn.h"
#include "url.h"
#include "wire.h"

#define HCONN_CHUNK         (64 * 1024) /* socket reads are at least this big */
#define HCONN_ERRMSG_MAX    512     /* bytes of an error detail, NUL incl. */
#define HCONN_MAX_TIMEOUT   86400.0 /* longest "timeout" the protocol takes */
#define HCONN_MAX_PATH      4096    /* bytes of a "tls" file name */
#define HCONN_MAX_BLOCKSIZE (16 * 1024 * 1024) /* largest blocksize */
/* Non-blocking mode: a sending call is taken whole while less than this is
 * queued for the daemon, else it is refused with HCONN_EWOULD_BLOCK. */
#define HCONN_WBUF_HIGH (256 * 1024)
/* Non-blocking mode: hconn_process() buffers replies nobody asked for yet
 * only up to this (more only while output is queued, to avoid deadlock). */
#define HCONN_RBUF_SOFT (1024 * 1024)

/* Where the putrequest/putheader/endheaders/send sequence stands. */
enum conn_state {
    CONN_IDLE,        /* a new request may start */
    CONN_REQ_STARTED, /* putrequest done, collecting headers */
    CONN_BODY_STREAM, /* endheaders sent "body":"stream": send() frames */
};

/* A request sent whose response head getresponse has not returned yet. */
struct pending {
    int64_t id;    /* the request's wire id */
    bool head;     /* HEAD request: the response has no body */
    int error;     /* set when it failed before its head arrived */
    char *message; /* malloc'd detail of error */
    json_t *early; /* head reply taken by hconn_wait_continue(), owned */
};

/* The HTTP response object (HTTPResponse). */
struct hconn_response {
    struct hconn *conn;          /* owner; frees us in hconn_close */
    struct hconn_response *prev; /* conn's list of open responses */
    struct hconn_response *next;
    int64_t id;                   /* wire id of the request */
    int status;                   /* e.g. 200 */
    char *reason;                 /* malloc'd reason phrase */
    int version;                  /* 10 or 11 */
    bool reused;                  /* sent on a pooled connection */
    struct hconn_header *headers; /* malloc'd array with its strings */
    size_t nheaders;
    struct hconn_header *trailers; /* same, from the end frame */
    size_t ntrailers;
    char **joined; /* getheader's joined values, owned */
    size_t njoined;
    int64_t length;        /* announced body length, -1 unknown */
    int64_t length_left;   /* body bytes still due, -1 unknown */
    uint64_t received;     /* body bytes handed to the caller */
    char *all;             /* read_all's partial body (non-blocking mode) */
    size_t all_len;        /* bytes in all */
    size_t all_cap;        /* size of all */
    bool ended;            /* the end frame arrived: body complete, or
                              hconn_close() closed it */
    bool incomplete;       /* the body ended with HCONN_EINCOMPLETE_READ */
    uint64_t inc_received; /* then: bytes received, as hconnd counted */
    int64_t inc_expected;  /* then: the length announced, -1 unknown */
    int error;             /* sticky error that ended the body */
    char *errmsg;          /* malloc'd detail of error */
};

/* The connection object (HTTPConnection). */
struct hconn {
    /* Where requests go. */
    char host[URL_HOST_MAX + 1];        /* origin host, IPv6 without brackets */
    uint16_t port;                      /* origin port */
    bool tls;                           /* https */
    json_t *tls_options;                /* the "tls" object each request
                                           carries, NULL: "tls": tls */
    bool tunnel;                        /* set_tunnel: host/port is the proxy */
    char tunnel_host[URL_HOST_MAX + 1]; /* origin behind the proxy */
    uint16_t tunnel_port;
    json_t *tunnel_headers;             /* [[name, value]...] for CONNECT */
    struct hconn_header *proxy_headers; /* the proxy's last answer to
                                           CONNECT (malloc'd block) */
    size_t nproxy_headers;
    char *socket_path; /* malloc'd daemon socket path */
    double timeout;    /* seconds, 0 = hconnd's, < 0: no read timeout */
    size_t blocksize;  /* bytes per data frame / send_fd read */
    int debuglevel;    /* 1: http.client's lines, 2: protocol lines too */
    int http_version;  /* HCONN_HTTP_...: the requests' "http_version" */

    /* source_address ["addr", port] each request carries; NULL: none */
    json_t *source_address;

    /* The daemon socket and what was received from it. */
    int fd;                    /* -1 when not connected */
    bool eof;                  /* the daemon closed its side */
    char *rbuf;                /* received bytes not yet taken */
    size_t rpos;               /* first unread byte in rbuf */
    size_t rlen;               /* end of the received bytes */
    size_t rcap;               /* size of rbuf */
    struct wire_reader reader; /* line reader state */
    bool nonblocking;          /* calls return HCONN_EWOULD_BLOCK, never wait */
    char *wbuf;                /* non-blocking: bytes queued for the daemon */
    size_t wpos;               /* first unsent byte in wbuf */
    size_t wlen;               /* end of the queued bytes */
    size_t wcap;               /* size of wbuf */
    uint64_t payload_left;     /* raw bytes of the current data frame
                                  still to take from the stream */
    uint64_t rgen;             /* bumped whenever bytes arrive */
    uint64_t scan_gen;         /* rgen when transport_scan_answer last
                                  looked at the buffer */

    /* Requests. */
    int64_t next_id;       /* wire id of the next request */
    struct pending *pend;  /* queue of requests awaiting a head */
    size_t pend_first;     /* index of the oldest entry */
    size_t pend_count;     /* entries in use from pend_first */
    size_t pend_cap;       /* entries allocated */
    enum conn_state state; /* putrequest sequence */
    char *put_method;      /* putrequest's method, malloc'd */
    char *put_target;      /* putrequest's target, malloc'd */
    bool put_skip_host;
    bool put_skip_accept_encoding;
    json_t *put_headers;   /* [[name, value]...] put so far */
    int64_t stream_id;     /* id of the request whose body streams */
    int64_t stream_length; /* its Content-Length, -1 unknown */
    uint64_t stream_sent;  /* body bytes sent so far */
    bool stream_expect;    /* it asked for 100-continue */
    bool stream_continued; /* hconnd said "continue" */
    int64_t refused_id;    /* last request whose body the origin refused
                              before it was sent (0: none) */
    int refused_status;    /* the status it answered with; 0: it failed
                              with refused_error instead */
    int refused_error;     /* that failure's code */

    /* The response stream. */
    bool in_body;    /* the stream is inside a response body */
    int64_t body_id; /* id of that response */
    struct hconn_response *body_owner; /* its object; NULL once closed */
    struct hconn_response *responses;  /* every response not yet freed */

    char errmsg[HCONN_ERRMSG_MAX]; /* detail of the last error */
};

/* ---- conn.c ------------------------------------------------------------ */

/* Sets c's error detail from a format; returns code. */
int conn_error(struct hconn *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The daemon stream is unusable: closes the socket and fails the body in
 * progress and every outstanding request with code and the current detail.
 * Returns code. */
int conn_broken(struct hconn *c, int code);

/* Whether a reply's id is the expected one (a missing id on an error reply
 * is accepted: the daemon could not read ours). */
bool conn_id_matches(const struct wire_reply *rep, int64_t id);

/* Whether rep is an error about an earlier request than id: PROTOCOL.md
 * 3.4 lets the body frames of a request that already failed draw such
 * errors later in the stream. They are skipped. */
bool conn_stray_error(const struct wire_reply *rep, int64_t id);

/* Sets c's detail from an error reply (message, received/expected) and
 * returns its code. */
int conn_reply_error(struct hconn *c, const struct wire_reply *rep);

/* Takes the queued request of id that awaits its head, or NULL. */
struct pending *conn_pending_find(struct hconn *c, int64_t id);

/* Copies a [[name, value]...] array into a malloc'd header array (strings
 * in the same block). Returns 0 or HCONN_ENO_MEMORY. */
int conn_copy_headers(json_t *pairs, struct hconn_header **out, size_t *n);

/* ---- response.c -------------------------------------------------------- */

/* Builds the response for a head reply of request p; takes the body's end
 * frame at once when no body follows. Returns 0 or a negative code. */
int response_new(struct hconn *c, const struct pending *p,
                 const struct wire_reply *head, struct hconn_response **rp);

/* Marks r failed with code and c's current detail (first error wins). */
void response_fail(struct hconn_response *r, int code);

/* Frees a response without touching the stream (conn teardown). */
void response_free(struct hconn_response *r);

/* ---- transport.c ------------------------------------------------------- */

/* Connects c->fd to the daemon. Returns 0 or HCONN_EDAEMON_UNAVAILABLE. */
int transport_connect(struct hconn *c);

/* Closes the socket and forgets every byte received. */
void transport_close(struct hconn *c);

/* Encodes msg as a line and sends it, then payload (len bytes, may be 0).
 * In non-blocking mode both are queued whole and written as far as the
 * socket takes them; HCONN_EWOULD_BLOCK (nothing queued) while
 * transport_out_full(). Returns 0 or a negative code after conn_broken. */
int transport_send_msg(struct hconn *c, const json_t *msg, const void *payload,
                       size_t len);

/* Sends a message without payload (an end frame); in non-blocking mode it
 * is queued even over the high-water mark. Returns 0 or a negative code
 * after conn_broken. */
int transport_send_control(struct hconn *c, const json_t *msg);

/* Takes the next message from the stream (no payload may be pending).
 * *msgp is the decoded object the reply borrows from: json_decref it.
 * A data reply sets c->payload_left. Returns 0, HCONN_EWOULD_BLOCK
 * (non-blocking mode; call again later) or a negative code after
 * conn_broken. */
int transport_next_reply(struct hconn *c, json_t **msgp,
                         struct wire_reply *rep);

/* Bytes of the current data frame already buffered; *p points at them. */
size_t transport_payload_avail(struct hconn *c, const char **p);

/* Drops n bytes (at most the available payload) from the buffer. */
void transport_payload_consume(struct hconn *c, size_t n);

/* Receives payload bytes straight into buf (nothing buffered, n at most
 * payload_left); blocks for at least one. Returns the count, or
 * HCONN_EWOULD_BLOCK (non-blocking mode, nothing there), or a negative code
 * after conn_broken. */
ssize_t transport_payload_direct(struct hconn *c, void *buf, size_t n);

/* Waits for and buffers more bytes from the daemon. Returns 0, or
 * HCONN_EWOULD_BLOCK in non-blocking mode when nothing is there (the stream
 * is intact), or a negative code after conn_broken. */
int transport_fill(struct hconn *c);

/* Non-blocking mode: whether a sending call must be refused now because
 * HCONN_WBUF_HIGH bytes or more are queued. */
bool transport_out_full(const struct hconn *c);

/* Bytes queued for the daemon and not yet written. */
size_t transport_out_pending(const struct hconn *c);

/* Writes queued bytes without waiting. Returns 0 (some may remain) or a
 * negative code after conn_broken. */
int transport_flush(struct hconn *c);

/* Writes every queued byte, waiting as blocking writes do. Returns 0 or a
 * negative code after conn_broken. */
int transport_flush_all(struct hconn *c);

/* Non-blocking mode: reads what the daemon sent without waiting, while
 * fewer than limit unread bytes are buffered. Returns 0 or a negative code
 * after conn_broken. */
int transport_read_ready(struct hconn *c, size_t limit);

/* Writes one protocol line to stderr at debuglevel 2 and above. */
void transport_debug(const struct hconn *c, const char *prefix,
                     const char *line, size_t len);

/* Looks through the replies buffered after the current read position
 * (without taking any) for the head or error reply of request id. Returns
 * 1 with *status (head) or *error (error reply) set when one is there,
 * else 0. Looks only when bytes arrived since the last look. */
int transport_scan_answer(struct hconn *c, int64_t id, int *status, int *error);

/* Sends a message with payload even over the high-water mark (the rest of
 * a call whose first part was taken). Returns 0 or a negative code after
 * conn_broken. */
int transport_send_more(struct hconn *c, const json_t *msg, const void *payload,
                        size_t len);

/* ---- debug.c ----------------------------------------------------------- */

/* debuglevel >= 1: prints "send: b'<head><body>'" for a request message m
 * (its head rebuilt with hconnd's rules, proto/http1.c) and its inline
 * body, if any. */
void debug_request(const struct hconn *c, const json_t *m, const void *body,
                   size_t body_len);

/* debuglevel >= 1: prints "send: b'<bytes>'" for body bytes. */
void debug_body(const struct hconn *c, const void *data, size_t len);

/* debuglevel >= 1: prints "reply: '...'" and "header: ..." for a head. */
void debug_response(const struct hconn *c, const struct hconn_response *r);
/* Reads the PEM file path (directory: every hashed certificate in it) in
 * this process, at most max bytes; *out is malloc'd. Returns 0, or
 * HCONN_EIO_ERROR / HCONN_EINVALID_ARGUMENT / HCONN_ENO_MEMORY with err
 * naming the file (pem.c). */
int hconn_pem_read(const char *path, bool directory, size_t max, char **out,
                   char *err, size_t errlen);

#endif
