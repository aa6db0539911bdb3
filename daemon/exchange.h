/*
 * exchange.h — one request's trip: lease an upstream connection, open a
 * stream on it through its codec (codec.h), and turn the codec's events
 * into protocol replies in the exchange's own output buffer. The
 * session moves that buffer to the client when the exchange's turn comes.
 *
 * An exchange is also the slot for a ready-made reply (op replies, errors
 * about messages that are not requests), so every reply keeps its place
 * in the client's order.
 */
#ifndef HCONND_EXCHANGE_H
#define HCONND_EXCHANGE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <jansson.h>

#include "codec.h"
#include "pool.h"
#include "wire.h"

struct evbuffer;
struct session;
struct upstream;
struct tlsfiles_material;
struct pathcheck;

enum exchange_state {
    EXCHANGE_LEASING, /* waiting for a connection */
    EXCHANGE_ACTIVE,  /* request going out, response coming in */
    EXCHANGE_DONE,    /* the last reply (end, error, or a ready-made
                         reply slot's only one) is in out */
};

struct exchange {
    struct session *session;
    TAILQ_ENTRY(exchange) entry; /* the session's queue, in order */
    enum exchange_state state;
    json_t *id;                /* echoed on every reply (owned) */
    json_t *msg;               /* the request message (owned) */
    struct wire_client_msg m;  /* validated; m.req borrows from msg */
    char target_desc[320];     /* "GET http://h:p/x" for logs */
    struct codec_request creq; /* the request readied for the codec */
    char proxy_host[256];      /* a tunnel's proxy (a copy: the defaults may
                                  be reloaded meanwhile), or "" */
    uint16_t proxy_port;
    char *connect_head; /* a tunnel's CONNECT request */
    size_t connect_head_len;
    struct evbuffer *body;  /* request body bytes held (see below) */
    uint64_t body_received; /* body bytes that came from the client */
    bool body_complete;     /* the client sent the whole body */
    bool body_retained;     /* body keeps sent bytes for a replay */
    bool replayable;        /* safe to send again on a new connection */
    bool request_sent;      /* head + whole body written */
    bool expecting;         /* Expect: 100-continue sent, body held
                               back until 100 or expect_timer */
    bool body_refused;      /* a final response came instead: the
                               body is never sent */
    bool continue_replied;  /* the client got its one "continue" */
    struct event *expect_timer;
    /* request_timeout, from the first lease */
    struct event *request_timer;
    unsigned attempts;           /* connections tried */
    struct pool_waiter waiter;   /* lease in progress */
    struct codec_stream *stream; /* the request on its connection */
    struct upstream *up;         /* the stream's connection (borrowed) */
    bool reused;                 /* up had served a request before */
    bool read_paused;            /* out is full: not reading upstream */
    uint64_t resp_received;      /* a failed response's body bytes */
    int64_t resp_expected;       /* ... and its announced length, or -1 */
    bool head_replied;           /* the head reply is in out */
    bool abort_session;          /* raw mode failed mid-body: close */
    struct evbuffer *out;        /* replies not yet moved to the client */
    /* TLS files read with the client's rights; m.req's PEM fields point
     * into it */
    struct tlsfiles_material *tls_material;
    struct pathcheck *pathcheck; /* inner destinations being resolved */
    size_t charged;              /* the request's bytes in the budget */
    bool path_checked;           /* ... and found allowed */
};

/* A slot holding one ready reply (stolen) for the client, in order. */
struct exchange *exchange_new_reply(struct session *s, json_t *reply);

/* Appends one more ready reply (stolen) to a reply slot: a client's
 * error and op replies share a slot, so each costs its bytes only. */
void exchange_append_reply(struct exchange *ex, json_t *reply);

/* A request from a validated message; takes over msg and m->req. On a
 * request that cannot be sent (bad header, bad method), the exchange is
 * created DONE with the error reply in out. Returns NULL on ENOMEM. */
struct exchange *exchange_new_request(struct session *s, json_t *msg,
                                      struct wire_client_msg *m, json_t *id);

/* Starts leasing a connection for a request. */
void exchange_start(struct exchange *ex);

/* Moves n body bytes from src into the exchange (and upstream when it is
 * connected). */
void exchange_add_body(struct exchange *ex, struct evbuffer *src, size_t n);

/* The client has sent the whole body. */
void exchange_end_body(struct exchange *ex);

/* Body bytes held that still count against the client's buffer budget. */
size_t exchange_body_held(const struct exchange *ex);

/* Called after the session took bytes from out: reads upstream again if
 * that had been paused. */
void exchange_resume(struct exchange *ex);

/* Ends the exchange with an error reply, dropping its connection. */
void exchange_fail(struct exchange *ex, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Frees ex; a connection still mid-response is closed, never pooled. */
void exchange_free(struct exchange *ex);

#endif
