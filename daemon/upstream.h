/*
 * upstream.h — one connection to an origin: resolve the name (resolve.h),
 * race its addresses (connect.h), then the CONNECT tunnel and TLS, all
 * under one connect timeout. What runs over it (the pool's idle watch, a
 * codec's stream) sets the bufferevent's callbacks.
 */
#ifndef HCONND_UPSTREAM_H
#define HCONND_UPSTREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "connect.h"
#include "resolve.h"

struct event_base;
struct http1_header;
struct http1_parser;
struct sockaddr;
struct resolver;
struct pool_origin;
struct ssl_st;
struct tls;
struct upstream;
struct wire_tls;

/* A proxy's answer to CONNECT, copied out of the parser's input: one
 * allocation (free() frees it all). */
struct upstream_answer {
    int status;
    const char *reason;
    size_t reason_len;
    struct http1_header *fields;
    size_t nfields;
};

/* Connect outcome: error 0 and a usable bev, or HCONN_E... + message.
 * Never called from within upstream_connect itself. */
typedef void (*upstream_connect_cb)(struct upstream *up, int error,
                                    const char *message, void *arg);

/* Decides, before any connect, whether a resolved address may be used
 * (the policy's address classes): 0, or an HCONN_E... code with why set. */
typedef int (*upstream_addr_check_cb)(const struct sockaddr *sa,
                                      const void *arg, char *why, size_t len);

/* Allocates an upstream for host:port, with owner_size bytes for its
 * owner's bookkeeping (upstream_owner); nothing starts yet. */
struct upstream *upstream_new(struct event_base *base, const char *host,
                              uint16_t port, size_t owner_size);

/* The owner's bytes that came with up, zero-filled at first. */
void *upstream_owner(const struct upstream *up);

/* How a connect goes: addresses pass check first (NULL: any will do; arg
 * must outlive the connect), Happy Eyeballs waits attempt_delay between
 * attempts, and the socket binds to source (NULL: any address) and
 * source_port (0: any) first. */
void upstream_set_route(struct upstream *up, upstream_addr_check_cb check,
                        const void *arg, double attempt_delay,
                        const struct sockaddr_storage *source,
                        uint16_t source_port);

/* Makes up a tunnel to origin:port: up's own host:port is the proxy; once
 * connected, connect_head (a CONNECT request) goes out and a 2xx answer
 * opens the tunnel, any other is HCONN_ETUNNEL_FAILED with fail_answer
 * set; TLS then runs inside it with origin's name. origin and
 * connect_head must outlive up. */
void upstream_set_tunnel(struct upstream *up, const char *origin, uint16_t port,
                         const char *connect_head, size_t connect_head_len);

/* Starts resolving and connecting; cb reports the outcome later. With
 * tls set, a TLS handshake follows (options NULL: the defaults), resuming
 * the session cached under origin_key; the timeout covers DNS, TCP and
 * TLS together. */
void upstream_connect(struct upstream *up, struct resolver *resolver,
                      double timeout, struct tls *tls,
                      const struct wire_tls *options, const char *origin_key,
                      upstream_connect_cb cb, void *arg);

/* True when an idle connection can carry a request: open, reading, and
 * nothing unexpected waiting to be read. */
bool upstream_is_reusable(struct upstream *up);

/*
 * Parks an idle connection, taking its bufferevent's callbacks: stops
 * reading a TLS one and hands its record buffers back (half a second
 * later, unless leased again by then); a plain one goes on reading. Calls
 * cb once the server closed, or sent something an idle connection never
 * should (bytes a plain connection read are in its input), with EV_READ,
 * or after timeout seconds with EV_TIMEOUT. Returns 0, or -1 when out of
 * memory (cb will not run).
 */
int upstream_park(struct upstream *up, double timeout,
                  void (*cb)(struct upstream *up, short what));

/* A parked TLS connection woke: reads what came and lets OpenSSL take
 * it in. True when it was only TLS housekeeping, such as the session
 * tickets a TLS 1.3 server sends after the handshake, and the connection
 * may stay parked (upstream_park again); false for application bytes, a
 * close or an error. */
bool upstream_settle_tls(struct upstream *up);

/* The read timeout of what runs over the connection (an HTTP/1.1
 * stream): seconds (0: none) of silence from the origin while reading
 * is enabled, and of a stalled write, starting now. Past it, reading
 * stops and the bufferevent's event callback hears BEV_EVENT_TIMEOUT with
 * BEV_EVENT_READING (or BEV_EVENT_WRITING), as with libevent's own
 * timeouts. */
void upstream_read_timeout(struct upstream *up, double seconds);

/* Bytes came, or reading was enabled again: the read timeout starts
 * again from now; cheap, called per read. */
void upstream_read_progress(struct upstream *up);

/* Ends upstream_park's watch, reading with the bufferevent again (its
 * callbacks and timeouts are the caller's to set). */
void upstream_unpark(struct upstream *up);

/* The connection's number, for logs. */
unsigned long upstream_id(const struct upstream *up);

/* "addr:port" of the peer it reached, for messages. */
const char *upstream_peer(const struct upstream *up);

/* The connection's bufferevent: a codec's while it carries a stream. */
struct bufferevent *upstream_bev(const struct upstream *up);

/* The connection's socket (under a TLS filter too); -1 before it is
 * connected. */
int upstream_fd(const struct upstream *up);

/* True when bev is a TLS filter (the socket carries records only). */
bool upstream_is_tls(const struct upstream *up);

/* True when the TLS handshake resumed a cached session. */
bool upstream_tls_resumed(const struct upstream *up);

/* Whether the connection ends cleanly (a response ended, or it closes
 * while idle without error): TLS state is then sound, its session worth
 * keeping when the connection closes. */
void upstream_set_clean(struct upstream *up, bool clean);

/* Takes a refused tunnel's answer (the caller frees it), or NULL. */
struct upstream_answer *upstream_take_fail_answer(struct upstream *up);

/* An open tunnel's answer to CONNECT, or NULL. */
const struct upstream_answer *upstream_proxy_answer(const struct upstream *up);

/* The ALPN protocols to offer in the TLS handshake, in wire format
 * (length-prefixed names; borrowed, must outlive the connect); none by
 * default. */
void upstream_set_alpn(struct upstream *up, const unsigned char *offer,
                       size_t len);

/* The protocol the server chose by ALPN ("h2", "http/1.1"), "" for none
 * (or no TLS). */
const char *upstream_alpn(const struct upstream *up);

/* Gives up a codec's connection-long state (an HTTP/2 session), freed by
 * free_state when up is freed, before its socket closes. */
void upstream_set_codec_state(struct upstream *up, void *state,
                              void (*free_state)(void *state));

/* The state given with upstream_set_codec_state, or NULL. */
void *upstream_codec_state(const struct upstream *up);

/* Closes the connection and frees up, cancelling anything pending. */
void upstream_free(struct upstream *up);

#endif
