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

/* The request's side: what has gone upstream on this attempt. */
enum exchange_send {
    EXCHANGE_SEND_NONE = 0,  /* no stream yet */
    EXCHANGE_SEND_BODY,      /* head out; body bytes go as they come */
    EXCHANGE_SEND_EXPECTING, /* head out with Expect: 100-continue; the
                                body waits for 100 or expect_timer */
    EXCHANGE_SEND_REFUSED,   /* a final response came instead of 100:
                                the body never goes */
    EXCHANGE_SEND_DONE,      /* head and whole body queued */
};

/* The response's side: what the client has been told. */
enum exchange_reply {
    EXCHANGE_REPLY_NONE = 0, /* nothing yet: a replay is still possible */
    EXCHANGE_REPLY_HEAD,     /* the head reply is in out; body follows */
    EXCHANGE_REPLY_END,      /* the end reply is in out */
    EXCHANGE_REPLY_FAILED,   /* the error reply is in out (or, raw mode
                                past the head, the client is cut off) */
};

struct exchange {
    struct session *session;
    TAILQ_ENTRY(exchange) entry; /* the session's queue, in order */
    enum exchange_state state;
    enum exchange_send send;   /* the request's side */
    enum exchange_reply reply; /* the response's side */
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
    bool continue_replied;  /* the client got its one "continue" */
    struct event *expect_timer;
    /* request_timeout, from the first lease */
    struct event *request_timer;
    unsigned attempts;           /* connections tried */
    struct pool_waiter waiter;   /* lease in progress */
    struct codec_stream *stream; /* the request on its connection */
    struct upstream *up;         /* the stream's connection (borrowed) */
    bool reused;                 /* up had served a request before */
    uint64_t resp_received;      /* a failed response's body bytes */
    int64_t resp_expected;       /* ... and its announced length, or -1 */
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
