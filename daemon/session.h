/*
 * session.h — one connected client: reads its protocol messages, queues
 * an exchange per request and writes the replies back strictly in order.
 */
#ifndef HCONND_SESSION_H
#define HCONND_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "policy.h"
#include "pool.h"
#include "wire.h"

struct exchange;
struct server;
struct stats;
struct wire_request;

TAILQ_HEAD(exchange_list, exchange);
TAILQ_HEAD(session_stream_list, session_stream);

struct session {
    struct server *srv;
    unsigned long id; /* for logs */
    pid_t pid;        /* peer credentials (SO_PEERCRED) */
    uid_t uid;
    gid_t gid;
    struct stats *ustats;     /* uid's figures (uidstats_lookup) */
    struct bufferevent *bev;  /* the client's socket; writes only */
    int fd;                   /* that socket (bufferevent_getfd takes a
                                 lock and an indirect call) */
    struct event *read_event; /* reads it (session_read_cb) */
    struct wire_reader reader;
    struct exchange_list queue;         /* replies owed, in order */
    size_t requests_in_flight;          /* request exchanges in queue */
    uint64_t next_seq;                  /* ids for requests that have none */
    size_t body_held;                   /* request body bytes buffered */
    struct session_stream_list streams; /* streamed bodies the client has
                                           not ended, oldest first */
    size_t ndead_streams;               /* of those, the ones whose request is
                                           over: their frames are dropped */
    struct exchange *payload_to;        /* where payload bytes go; NULL drops */
    uint64_t payload_left;              /* payload bytes still to come */
    bool payload_ends_body;             /* an inline body: end it after */
    bool reading_paused;                /* backpressure on the client */
    bool paused_for_replies;            /* ... because its replies pile up */
    size_t input_held;                  /* unread input charged to the budget */
    size_t replies_held;                /* reply bytes queued (exchange outputs
                                           and the socket's), also charged */
    size_t socket_room;                 /* bytes the socket holds past its
                                           send buffer, left by a splice
                                           pump that widened it; charged
                                           until the client reads them */
    bool raw;                           /* a raw request came: read nothing but
                                           its body */
    bool input_ended;                   /* the client half-closed */
    bool closing;                       /* close once the queue is flushed */
    bool draining;                      /* SIGTERM: read on, close once the
                                           queue is empty */
    bool aborting;                      /* close once output is written, now */
    bool flush_scheduled;               /* on the server's flushes list */
    TAILQ_ENTRY(session) flush_entry;   /* ... there */
    int hangup_fd;                      /* a dup of the socket, watched for the
                                           client's hang-up while the bufferevent
                                           is not reading; -1 before first use */
    struct event *hangup_event;
    TAILQ_ENTRY(session) entry; /* server's list */
};

/* Takes over the connected client socket fd. Returns NULL on failure
 * (fd closed). */
struct session *session_new(struct server *srv, int fd);

/* Closes the client and frees everything it owns. */
void session_free(struct session *s);

/* Asks for the queue to be written out from the loop (never re-entrant:
 * exchanges call it from inside their own callbacks). */
void session_schedule_flush(struct session *s);

/* Sets up (false: out of memory) and frees the server's one event that
 * runs the flushes sessions asked for. */
bool session_flushes_init(struct server *srv);
void session_flushes_clear(struct server *srv);

/* Reads the client again after its buffered body shrank. */
void session_resume_reading(struct session *s);

/* Adjusts the body byte count used for the client's buffer budget. */
void session_body_held(struct session *s, ssize_t delta);

/* Adjusts the reply bytes queued for the client (and the budget). */
void session_replies_held(struct session *s, ssize_t delta);

/* Charges (or, negative, gives back) bytes to the client's uid. */
void session_charge(struct session *s, long long delta);

/* Charges what s's socket still holds past its send buffer (a splice pump
 * widened it, and the client has not read it all yet), and gives back
 * what the client has read since the last call. */
void session_settle_socket_room(struct session *s);

/* A request's address limits, in the policy's terms and the pool's. */
struct session_addr_filter {
    struct policy_addr_filter policy;
    struct pool_addr_filter pool; /* arg: policy */
};

/* Checks req against the policy rule that matches the client's uid and
 * gid; proxy_host is the tunnel's proxy (NULL: direct), proxy_is_default
 * when it is the daemon's own. Returns 0 with *pool_filter pointing into
 * f when the rule refuses some address classes (else NULL), or
 * HCONN_EDENIED with why naming the rule and what it refused. */
int session_check_policy(const struct session *s,
                         const struct wire_request *req, const char *proxy_host,
                         uint16_t proxy_port, bool proxy_is_default,
                         struct session_addr_filter *f,
                         const struct pool_addr_filter **pool_filter, char *why,
                         size_t len);

/* SIGTERM: refuse new requests, but keep reading the bodies of those in
 * flight; close once every one has been answered. */
void session_drain(struct session *s);

/* shutdown_timeout passed: ends every request still in flight with a
 * shutting_down error line, then closes once that is written. */
void session_abort_requests(struct session *s);

#endif
