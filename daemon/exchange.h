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

#include "wire.h"

struct evbuffer;
struct exchange;
struct exchange_list;
struct session;

/* A slot holding one ready reply (stolen) for the client, in order. */
struct exchange *exchange_new_reply(struct session *s, json_t *reply);

/* Appends one more ready reply (stolen) to a reply slot: a client's
 * error and op replies share a slot, so each costs its bytes only. */
void exchange_append_reply(struct exchange *ex, json_t *reply);

/* A request from a validated message; takes over msg (NULL when
 * wire_fast scanned it) and m->req. On a request that cannot be sent (bad
 * header, bad method), the exchange is created DONE with the error reply
 * in out. Returns NULL on ENOMEM. */
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

/* Appends ex to a session's queue. */
void exchange_link(struct exchange_list *queue, struct exchange *ex);

/* Takes ex off a session's queue. */
void exchange_unlink(struct exchange_list *queue, struct exchange *ex);

/* The exchange after ex in its queue, or NULL. */
struct exchange *exchange_next(const struct exchange *ex);

/* True for a request (false for a slot of ready replies). */
bool exchange_is_request(const struct exchange *ex);

/* True once the exchange's last reply is in its output. */
bool exchange_is_done(const struct exchange *ex);

/* True for a reply slot that more ready replies may join. */
bool exchange_takes_replies(const struct exchange *ex);

/* The request's body: none, inline, or streamed. */
enum wire_body exchange_body_kind(const struct exchange *ex);

/* True for a raw-mode request: the session closes after its reply. */
bool exchange_is_raw(const struct exchange *ex);

/* True when the client must be cut off once this slot is written (a raw
 * body cut short, a reply lost to a lack of memory). */
bool exchange_aborts_session(const struct exchange *ex);

/* Records the bytes the request was charged to its client's budget, given
 * back when the exchange is freed. */
void exchange_set_charge(struct exchange *ex, size_t charged);

/* The replies not yet moved to the client, counted among its queued
 * replies (session_replies_held): whoever drains it gives the count
 * back. */
struct evbuffer *exchange_out(struct exchange *ex);

/* The client's input ended: a request whose body it had not finished can
 * never be whole, and fails. */
void exchange_input_ended(struct exchange *ex);

/* Frees ex; a connection still mid-response is closed, never pooled. */
void exchange_free(struct exchange *ex);

/* Frees the exchanges kept for reuse (at shutdown). */
void exchange_spares_free(void);

#endif
