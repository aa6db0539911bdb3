/*
 * codec_http2.h — the HTTP/2 upstream codec (codec_http2.c), for the
 * codec's own entry points (codec_http1.c dispatches codec.h's calls on
 * a stream of an HTTP/2 connection here) and for the pool, which turns a
 * fresh connection into an HTTP/2 one and leases its streams.
 *
 * One nghttp2 client session per connection, owned by the connection
 * (upstream_set_codec_state) from the moment it is known to speak HTTP/2
 * until it closes, idle or not; it reads the socket always.
 */
#ifndef HCONND_CODEC_HTTP2_H
#define HCONND_CODEC_HTTP2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "codec.h"

struct config;
struct evbuffer;
struct upstream;

/* Starts an HTTP/2 session on a connection just made (after TLS and its
 * ALPN "h2", or plain for h2c): sends the preface and our settings.
 * 0, or HCONN_ENO_MEMORY. */
int codec_http2_attach(struct upstream *up, const struct config *cfg);

/* True when up carries an HTTP/2 session. */
bool codec_http2_is(const struct upstream *up);

/* True while up may take new streams (no GOAWAY, not failed). */
bool codec_http2_usable(const struct upstream *up);

/* True once the server's SETTINGS came: until then no stream opens, so
 * that its limits (streams, windows) hold from the first. */
bool codec_http2_ready(const struct upstream *up);

/* Streams up may open now: the lower of the server's
 * MAX_CONCURRENT_STREAMS and h2_max_concurrent_streams, less those open. */
unsigned codec_http2_spare(const struct upstream *up);

/* Streams open on up (nghttp2's count of ours not yet closed). */
unsigned codec_http2_open_streams(const struct upstream *up);

/* Sends a PING: an idle connection taken again is checked by it (a dead
 * peer shows as a read error or a close rather than a lost request). */
void codec_http2_ping(struct upstream *up);

/* codec.h's calls, for streams of HTTP/2 connections. */
struct codec_stream *codec_http2_open(struct upstream *up,
                                      const struct codec_request *cr,
                                      const struct codec_options *opt,
                                      const struct codec_events *ev, void *arg);
size_t codec_http2_send_room(const struct codec_stream *s);
uint64_t codec_http2_body_sent(const struct codec_stream *s);
int codec_http2_send_data(struct codec_stream *s, struct evbuffer *body,
                          size_t off, size_t n, bool retain, ssize_t *moved);
int codec_http2_send_end(struct codec_stream *s);
const char *codec_http2_errmsg(const struct codec_stream *s);
void codec_http2_pause(struct codec_stream *s);
void codec_http2_resume(struct codec_stream *s);
void codec_http2_abort(struct codec_stream *s);

/* True when s is a stream of an HTTP/2 connection: both codecs' streams
 * begin with this flag. */
#define codec_stream_is_http2(s) (*(const bool *)(const void *)(s))

/* Copies n bytes of body from offset off to out (codec_http1.c). */
bool codec_copy_body(struct evbuffer *body, struct evbuffer *out, size_t off,
                     size_t n);

#endif
