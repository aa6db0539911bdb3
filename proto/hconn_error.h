/*
 * hconn_error.h — the one error table shared by the wire protocol, hconnd,
 * libhconn and the hconn command.
 *
 * Every failure has one code: a negative int in C (HCONN_E...), a name on
 * the wire ("error":"incomplete_read") and in the CLI's message, and a
 * short description (hconn_strerror). The CLI exits with -code.
 *
 * The numbers are ABI: append new codes at the end, never renumber.
 */
#ifndef HCONN_ERROR_H
#define HCONN_ERROR_H

/* X(CONST, wire name, description) */
#define HCONN_ERRORS(X)                                                        \
    X(OK, "ok", "success")                                                     \
    X(INVALID_URL, "invalid_url", "invalid URL")                               \
    X(BAD_STATUS_LINE, "bad_status_line", "malformed status line")             \
    X(UNKNOWN_PROTOCOL, "unknown_protocol", "unsupported HTTP version")        \
    X(LINE_TOO_LONG, "line_too_long", "line too long")                         \
    X(TOO_MANY_HEADERS, "too_many_headers", "too many header fields")          \
    X(BAD_HEADER, "bad_header", "malformed header field in response")          \
    X(BAD_CONTENT_LENGTH, "bad_content_length",                                \
      "invalid or conflicting Content-Length")                                 \
    X(BAD_FRAMING, "bad_framing",                                              \
      "both Content-Length and Transfer-Encoding in response")                 \
    X(UNKNOWN_TRANSFER_ENCODING, "unknown_transfer_encoding",                  \
      "unsupported Transfer-Encoding")                                         \
    X(BAD_CHUNK, "bad_chunk", "malformed chunked body")                        \
    X(REMOTE_DISCONNECTED, "remote_disconnected",                              \
      "server closed the connection without a complete response head")         \
    X(INCOMPLETE_READ, "incomplete_read", "response body cut short")           \
    X(CONNECTION_CLOSED, "connection_closed", "connection closed")             \
    X(TIMEOUT, "timeout", "timed out")                                         \
    X(DNS_FAILED, "dns_failed", "name resolution failed")                      \
    X(CONNECT_FAILED, "connect_failed", "connection failed")                   \
    X(TLS_VERIFY_FAILED, "tls_verify_failed",                                  \
      "TLS certificate verification failed")                                   \
    X(TLS_FAILED, "tls_failed", "TLS handshake or protocol failure")           \
    X(TUNNEL_FAILED, "tunnel_failed", "proxy tunnel (CONNECT) failed")         \
    X(INVALID_HEADER, "invalid_header", "invalid header field in request")     \
    X(DENIED, "denied", "denied by policy")                                    \
    X(BAD_MESSAGE, "bad_message", "malformed protocol message")                \
    X(LIMIT_EXCEEDED, "limit_exceeded", "limit exceeded")                      \
    X(SHUTTING_DOWN, "shutting_down", "hconnd is shutting down")               \
    X(DAEMON_UNAVAILABLE, "daemon_unavailable", "cannot reach hconnd")         \
    X(NOT_CONNECTED, "not_connected", "not connected")                         \
    X(CANNOT_SEND_REQUEST, "cannot_send_request",                              \
      "cannot send a request in this state")                                   \
    X(RESPONSE_NOT_READY, "response_not_ready",                                \
      "response not ready in this state")                                      \
    X(HTTP_ERROR, "http_error", "HTTP error status (400 or above)")            \
    X(IO_ERROR, "io_error", "local input/output error")                        \
    X(NO_MEMORY, "no_memory", "out of memory")                                 \
    X(INVALID_ARGUMENT, "invalid_argument", "invalid argument")                \
    X(UNSUPPORTED, "unsupported", "not supported")                             \
    X(BODY_LENGTH, "body_length",                                              \
      "request body length differs from the declared length")                  \
    X(WOULD_BLOCK, "would_block",                                              \
      "the operation would block; wait for hconn_events()")                    \
    X(STREAM_RESET, "stream_reset",                                            \
      "the server reset the stream (HTTP/2 RST_STREAM)")                       \
    X(PROTOCOL_ERROR, "protocol_error", "HTTP/2 protocol error")

#define HCONN_ERROR_ENUM_(name, wire, text) HCONN_E##name##_,
enum hconn_error_index_ { HCONN_ERRORS(HCONN_ERROR_ENUM_) HCONN_ERROR_COUNT };
#undef HCONN_ERROR_ENUM_

/* HCONN_OK is 0; every HCONN_E... is the negated index in the table. */
#define HCONN_ERROR_CODE_(name, wire, text)                                    \
    HCONN_E##name = -(int)HCONN_E##name##_,
enum hconn_error { HCONN_ERRORS(HCONN_ERROR_CODE_) };
#undef HCONN_ERROR_CODE_
#define HCONN_OK HCONN_EOK

/* The wire name of code ("incomplete_read"); "unknown" if not a code. */
const char *hconn_error_name(int code);

/* The code whose wire name is name, or 1 (not an error code) if none. */
int hconn_error_from_name(const char *name);

/* A short English description of code. */
const char *hconn_strerror(int code);

#endif
