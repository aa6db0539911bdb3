/*
 * hconn.h — libhconn, the client library of hconnd.
 *
 * A C mirror of Python's http.client with python-dugong's stricter rules:
 * an hconn is an HTTPConnection, an hconn_response an HTTPResponse. The
 * HTTP work is done by hconnd; the library speaks its JSON-lines protocol
 * (proto/PROTOCOL.md) over a Unix socket.
 *
 * Conventions:
 * - Functions that can fail return 0 (or a byte count) on success and a
 *   negative HCONN_E... code (hconn_error.h) on failure; hconn_errmsg()
 *   then gives a one-line detail. hconn_error_name() and hconn_strerror()
 *   name and describe a code.
 * - No global state. An hconn and its responses belong to one thread at a
 *   time; use one hconn per thread.
 * - Pipelining (dugong): hconn_request() may be called many times before
 *   hconn_getresponse(); responses come back in request order. While a
 *   write to the daemon would block, the library reads whatever the daemon
 *   sends meanwhile into memory, so a large request body can never
 *   deadlock against responses the daemon is writing back; that buffer is
 *   only bounded by what the daemon sends before the write completes.
 * - Bodies are never cut short silently: a read returns 0 only after the
 *   daemon said the body is complete. A body that ends early is an error
 *   (incomplete_read, connection_closed, remote_disconnected, ...).
 * - Calls block, unless hconn_set_blocking(c, false) chose non-blocking
 *   mode (see "Non-blocking mode" below). With a timeout
 *   (hconn_options.timeout) every wait on the
 *   daemon socket gives up after twice the timeout plus one second: hconnd
 *   applies the timeout to the connect and to each read separately, so its
 *   own, more precise timeout error arrives first. A local timeout
 *   (HCONN_ETIMEOUT) drops the daemon connection. Without a timeout the
 *   waits are unbounded (hconnd's default timeouts still apply upstream);
 *   with HCONN_TIMEOUT_NONE they are unbounded and hconnd waits for the
 *   origin's bytes without a read timeout too (http.client's default).
 * - Errors that leave the daemon stream unusable (the daemon closed the
 *   socket, a malformed reply, a local timeout or I/O error) close the
 *   daemon socket and fail every outstanding request with the same code;
 *   the next hconn_request() connects again.
 */
#ifndef HCONN_H
#define HCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hconn_error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HCONN_HTTP_PORT  80  /* http.client.HTTP_PORT */
#define HCONN_HTTPS_PORT 443 /* http.client.HTTPS_PORT */

/* hconn_options.timeout: no read timeout at all, as http.client's default
 * (timeout=None): sent as "read_timeout": 0, which hconnd bounds by its
 * max_read_timeout setting when that is set. */
#define HCONN_TIMEOUT_NONE (-1.0)

typedef struct hconn hconn;                   /* an HTTPConnection */
typedef struct hconn_response hconn_response; /* an HTTPResponse */

/* A header field: name and value, NUL-terminated. */
struct hconn_header {
    const char *name;
    const char *value;
};

/*
 * Connection options; a zero-filled struct (or NULL) means defaults.
 *
 * TLS (HTTPSConnection(host, port, context)): with tls true hconnd
 * verifies the server by default, as ssl.create_default_context() does:
 * the chain against the system trust store, the host name (or address)
 * against the certificate, and SNI carries the host name. The fields after
 * tls play the part of the SSL context and apply only when tls is true;
 * NULL / false keeps the default. When any is set, each request carries a
 * "tls" object (PROTOCOL.md 3.3) with exactly the fields set; otherwise it
 * carries "tls": true. hconn_new() copies the strings: the caller's may go
 * away afterwards. File and directory names are opened by hconnd, on the
 * same machine and subject to its policy, not by this process: pass
 * absolute paths (a relative one would be taken from hconnd's working
 * directory) that hconnd may read.
 *
 * TLS failures come from hconnd through hconn_getresponse():
 * HCONN_ETLS_VERIFY_FAILED when the certificate is not accepted (untrusted
 * chain, wrong name, expired, ...) and HCONN_ETLS_FAILED for any other
 * handshake or protocol failure (including a CA or client certificate
 * hconnd cannot load); hconn_errmsg() then holds OpenSSL's reason, e.g.
 * "certificate of 127.0.0.1:443 not accepted: unable to get local issuer
 * certificate".
 */
struct hconn_options {
    const char *socket_path; /* hconnd socket; NULL: $HCONN_SOCKET, else
                                $XDG_RUNTIME_DIR/hconnd.sock if that file
                                exists, else /run/hconnd/hconnd.sock */
    double timeout;          /* seconds, sent with each request and used
                                for local socket waits; 0 = hconnd's
                                defaults; HCONN_TIMEOUT_NONE = no read
                                timeout at all */
    bool tls;                /* https (HTTPSConnection): port default 443 */

    /* TLS only (see above). Each string is 1 ... 4096 bytes of UTF-8
     * (server_name: a host name, at most 255 bytes). hconn_new reads the
     * files itself, with the caller's rights, and sends their contents
     * (the protocol's ca_pem, cert_pem, key_pem): the daemon opens none. */
    const char *ca_file;     /* PEM file of trust anchors used instead of
                                the system trust store (cafile) */
    const char *ca_path;     /* directory of hashed PEM trust anchors
                                (c_rehash / openssl rehash), instead of
                                the system store (capath) */
    const char *cert_file;   /* client certificate chain, PEM
                                (load_cert_chain certfile) */
    const char *key_file;    /* its private key, PEM; needs cert_file;
                                NULL: the key is in cert_file */
    const char *server_name; /* name sent as SNI and verified in the
                                certificate, instead of the host
                                (server_hostname) */
    const char *min_version; /* lowest TLS version, "1.2" or "1.3";
                                NULL: hconnd's default (1.2) */
    bool insecure;           /* no certificate or name verification
                                (CERT_NONE, check_hostname False): sent as
                                "insecure": true. Contradicts ca_file and
                                ca_path, which are refused with it */
    bool no_check_hostname;  /* verify the chain but not the name
                                (SSLContext.check_hostname = False): sent as
                                "check_hostname": false; hconnd's policy
                                must allow it (no_check_hostname), else
                                HCONN_EDENIED. Refused with insecure, which
                                already skips the name */

    size_t blocksize; /* http.client's blocksize: bytes per data
                         frame of a streamed body and per read of
                         hconn_send_fd(); 0 = 65536; at most 16 MiB */

    /* http.client's source_address (host, port): hconnd binds its
     * connections for these requests to this IPv4 or IPv6 address literal
     * (no brackets; NULL or "": any) and port (0: any) before connecting.
     * Only addresses of its family are tried. hconnd's policy must allow
     * it ("source_address"); ports below 1024 are for root only. */
    const char *source_address;
    int source_port;
};

/* ---- Connection ------------------------------------------------------- */

/*
 * HTTPConnection(host, port). host is "host", "host:port", "[v6]" or
 * "[v6]:port"; port > 0 overrides the one in host, else 80 (443 with tls).
 * Does not connect. *connp is set whenever memory allowed, even on error,
 * so hconn_errmsg() works: the caller hconn_free()s it in every case.
 * Returns 0, HCONN_EINVALID_URL (bad host or port), HCONN_EINVALID_ARGUMENT
 * (NULL connp; timeout negative (other than HCONN_TIMEOUT_NONE) or above
 * 86400, the protocol's limit; blocksize above 16 MiB; a source_address
 * that is not an address literal or a source_port outside 0..65535; a TLS
 * option set while tls is false; insecure with ca_file, ca_path or
 * no_check_hostname; key_file without cert_file; an empty, over-long or
 * non-UTF-8 string; a
 * server_name that is not a host name; min_version other than "1.2" or
 * "1.3"; a TLS file that is not a regular file or is over the protocol's
 * size for its kind), HCONN_EIO_ERROR (a TLS file cannot be read) or
 * HCONN_ENO_MEMORY (*connp NULL).
 */
int hconn_new(hconn **connp, const char *host, int port,
              const struct hconn_options *opts);

/*
 * http.client's set_tunnel: requests go to host:port (the origin) through
 * a CONNECT tunnel of the proxy this hconn was created with; headers are
 * sent with the CONNECT request (copied). port <= 0: from host, else
 * 80/443. Applies to requests made afterwards. Returns 0,
 * HCONN_EINVALID_URL, HCONN_EINVALID_HEADER or HCONN_ENO_MEMORY.
 */
int hconn_set_tunnel(hconn *c, const char *host, int port,
                     const struct hconn_header *headers, size_t nheaders);

/* HTTP versions for hconn_set_http_version(); also the values
 * hconn_response_version() returns for HTTP/1.1 and HTTP/2. */
#define HCONN_HTTP_AUTO 0  /* hconnd chooses: ALPN h2,http/1.1 over TLS */
#define HCONN_HTTP_1_1  11 /* HTTP/1.1 only */
#define HCONN_HTTP_2                                                           \
    20 /* HTTP/2 only (h2c with prior knowledge for                            \
          plain http) */

/*
 * Which HTTP version hconnd may speak to the origin for requests made
 * afterwards (the protocol's "http_version"): HCONN_HTTP_AUTO (the
 * default: over TLS, ALPN offers h2 and http/1.1 and the server chooses;
 * plain text is HTTP/1.1 unless hconnd's config lists the origin in
 * h2c_origins), HCONN_HTTP_1_1 or HCONN_HTTP_2 (over TLS a server that
 * does not choose h2 fails the request with HCONN_EUNKNOWN_PROTOCOL;
 * plain text is h2c with prior knowledge; hconnd configured with
 * "http2": false answers HCONN_EUNSUPPORTED). The response's version
 * (hconn_response_version()) says what was spoken. Returns 0 or
 * HCONN_EINVALID_ARGUMENT (another value; the setting is unchanged).
 */
int hconn_set_http_version(hconn *c, int version);

/*
 * http.client's get_proxy_response_headers(): the header fields of the
 * proxy's answer to CONNECT for the latest response that came through a
 * tunnel, or of the refusal when hconn_getresponse() failed with
 * HCONN_ETUNNEL_FAILED (e.g. Proxy-Authenticate with a 407). Sets
 * *headers and returns their number; 0 until a tunnel answer was seen.
 * Owned by c; valid until the next hconn_getresponse().
 */
size_t hconn_get_proxy_response_headers(const hconn *c,
                                        const struct hconn_header **headers);

/*
 * Connects to the daemon; a no-op when connected. hconn_request() and
 * hconn_putrequest() connect lazily. Returns 0 or HCONN_EDAEMON_UNAVAILABLE
 * ("cannot connect to hconnd at PATH: reason").
 */
int hconn_connect(hconn *c);

/*
 * Sends a whole request now: method, url (the request-target, e.g.
 * "/index.html"; "" means "/", as in http.client), an optional body and
 * extra header fields (name/value pairs, order and duplicates kept). body
 * NULL means no body (hconnd adds Content-Length: 0 for POST, PUT and
 * PATCH); otherwise body_len bytes are sent inline. hconnd adds Host and
 * Accept-Encoding: identity as http.client does, and frames the body
 * itself: a Content-Length field must equal body_len (0 without a body),
 * Transfer-Encoding may only be "chunked" and makes hconnd chunk-encode the
 * body (its bytes are data, never chunk framing: http.client's
 * encode_chunked=False has no equivalent), and connection-management
 * fields are limited as PROTOCOL.md 3.1 lists (HCONN_EINVALID_HEADER,
 * found by the library for the framing fields; method CONNECT:
 * HCONN_EINVALID_URL). Returns 0, HCONN_EINVALID_URL (method not a token;
 * control bytes or space in url), HCONN_EINVALID_HEADER,
 * HCONN_ECANNOT_SEND_REQUEST (a putrequest() is unfinished or a streamed
 * body still open), or a connection error (HCONN_EDAEMON_UNAVAILABLE,
 * HCONN_ECONNECTION_CLOSED, HCONN_ETIMEOUT, ...). Errors hconnd finds in
 * the request come back from hconn_getresponse().
 */
int hconn_request(hconn *c, const char *method, const char *url,
                  const void *body, size_t body_len,
                  const struct hconn_header *headers, size_t nheaders);

/*
 * Starts a request piece by piece: putrequest, putheader..., endheaders,
 * then send... for a streamed body. skip_host / skip_accept_encoding stop
 * hconnd from adding Host / Accept-Encoding. Nothing is sent before
 * endheaders. Returns 0, HCONN_ECANNOT_SEND_REQUEST (another putrequest or
 * streamed body is unfinished), HCONN_EINVALID_URL (as hconn_request) or
 * HCONN_ENO_MEMORY.
 */
int hconn_putrequest(hconn *c, const char *method, const char *url,
                     bool skip_host, bool skip_accept_encoding);

/* Adds a header field to the request started by hconn_putrequest().
 * Returns 0, HCONN_ECANNOT_SEND_REQUEST (no putrequest) or
 * HCONN_EINVALID_HEADER (name not a token, CR/LF/NUL in value). */
int hconn_putheader(hconn *c, const char *name, const char *value);

/*
 * putheader(name, *values): one field whose value is the nvalues values
 * joined with ", " (nvalues 0: an empty value). http.client folds them
 * onto continuation lines instead ("\r\n\t"), an obsolete form (RFC 9112
 * 5.2) that means the same for list-valued fields. Returns as
 * hconn_putheader, or HCONN_EINVALID_ARGUMENT (values NULL with nvalues >
 * 0) or HCONN_ENO_MEMORY.
 */
int hconn_putheaderv(hconn *c, const char *name, const char *const *values,
                     size_t nvalues);

/*
 * Sends the request started by hconn_putrequest(). body != NULL: len bytes
 * sent inline. body == NULL: if the fields put include Content-Length > 0
 * or Transfer-Encoding, the body is streamed with hconn_send() (with
 * Content-Length, the body ends by itself once that many bytes were sent;
 * otherwise, or if fewer were sent, hconn_getresponse() ends it); else the
 * request has no body. hconn_send() takes the body bytes themselves: hconnd
 * frames them upstream (chunked when there is no Content-Length), as
 * dugong does. So "Transfer-Encoding: chunked" put here means "send the
 * body chunked": the bytes given to hconn_send() are raw data and are
 * chunk-encoded once, by hconnd; they must not be chunk-encoded already,
 * as http.client's send() expects them to be. Transfer-Encoding other than
 * "chunked", or with Content-Length, is refused, and so is a
 * Content-Length that differs from an inline body's len. Returns 0,
 * HCONN_ECANNOT_SEND_REQUEST (no putrequest), HCONN_EINVALID_HEADER (bad
 * Content-Length or Transfer-Encoding) or a connection error; on error the
 * request started is dropped.
 */
int hconn_endheaders(hconn *c, const void *body, size_t len);

/*
 * Sends the next len bytes of a streamed request body (unframed: see
 * hconn_endheaders), in data frames of at most blocksize bytes. Returns 0,
 * HCONN_ECANNOT_SEND_REQUEST (no streamed body open), HCONN_EBODY_LENGTH
 * (more than the Content-Length put; nothing of this call is sent) or a
 * connection error.
 *
 * A body stops as soon as its request has an answer (PROTOCOL.md 3.4):
 * before sending, the call takes in what hconnd has sent and, when that
 * holds the request's final response (e.g. a 413 the origin gave at once)
 * or its error (denied, connect_failed, ...), sends nothing more, ends the
 * body (after a response) and returns HCONN_ECANNOT_SEND_REQUEST, saying
 * so in hconn_errmsg(); hconn_getresponse() then returns that response or
 * error. Later calls for that body fail the same way.
 */
int hconn_send(hconn *c, const void *data, size_t len);

/*
 * Streamed request bodies in one call: http.client's
 * request(method, url, body=<iterable>, headers, encode_chunked=True), and
 * dugong's send_request(..., body=BodyFollowing(n)).
 *
 * Sends the request head now; the body follows with hconn_send() /
 * hconn_send_fd() as raw bytes and ends with hconn_end_body() (or
 * hconn_getresponse()). length >= 0 declares the body's size: hconnd sends
 * Content-Length: length, the body ends by itself after length bytes,
 * more is refused (HCONN_EBODY_LENGTH) and fewer makes hconnd answer
 * body_length, never sending a short body upstream. length < 0
 * (HCONN_LENGTH_UNKNOWN) is http.client's encode_chunked=True: hconnd, not
 * the caller, frames the bytes as Transfer-Encoding: chunked, so no chunk
 * framing is ever passed to hconn_send(). That is why headers may not
 * contain Content-Length or Transfer-Encoding here (HCONN_EINVALID_ARGUMENT):
 * the length argument decides the framing. flags: HCONN_EXPECT_CONTINUE
 * (or an "Expect: 100-continue" field in headers) asks for 100-continue,
 * see hconn_wait_continue(). Returns 0 or the errors of hconn_request().
 */
#define HCONN_LENGTH_UNKNOWN  ((int64_t)-1)
#define HCONN_EXPECT_CONTINUE 0x1u
int hconn_request_stream(hconn *c, const char *method, const char *url,
                         const struct hconn_header *headers, size_t nheaders,
                         int64_t length, unsigned flags);

/*
 * Streams the body from file descriptor fd: len bytes, or until its end
 * when len < 0 (a pipe, a socket, stdin). Reads pieces of blocksize bytes
 * (64 KiB by default): the body is never held in memory whole. Stops, as
 * hconn_send() does, once the request has an answer. With a declared
 * length, len is capped to what is still due. Returns the bytes sent, or
 * HCONN_EBODY_LENGTH (fd ended before len bytes; those read were sent),
 * HCONN_EIO_ERROR (read failed), HCONN_ECANNOT_SEND_REQUEST or a
 * connection error. Non-blocking mode: returns the count sent so far once
 * the output queue is full (or fd has nothing yet; wait for fd too),
 * HCONN_EWOULD_BLOCK if that is 0; call again for the rest.
 */
int64_t hconn_send_fd(hconn *c, int fd, int64_t len);

/*
 * Ends the open streamed body now (the end frame), so that another
 * request can follow before any response is read (pipelining). A body
 * with a declared length ends by itself; ending it short makes hconnd
 * answer body_length. Returns 0, HCONN_ECANNOT_SEND_REQUEST (no streamed
 * body open) or a connection error.
 */
int hconn_end_body(hconn *c);

/*
 * Expect: 100-continue (dugong's send_request(..., expect100=True) then
 * read_response()). After hconn_request_stream(..., HCONN_EXPECT_CONTINUE)
 * (or putheader("Expect", "100-continue") + endheaders), waits for hconnd's
 * verdict before the body goes:
 * - *send_body true: the origin answered 100 Continue, or stayed silent
 *   for hconnd's expect_timeout (1 s by default, as curl): send the body.
 * - *send_body false: the origin gave its final answer first (417, 401,
 *   413, ...). The body must not be sent: the library has ended it (so
 *   hconn_send() now refuses, naming the status) and hconn_getresponse()
 *   returns that response. hconnd does not reuse that upstream connection.
 * Calling it without an expecting stream sets *send_body true. Body bytes
 * sent before the verdict are held by hconnd within its buffer, so waiting
 * is optional. The expecting request must be the oldest unanswered one
 * (else HCONN_ERESPONSE_NOT_READY: read the earlier responses first).
 * Returns 0, HCONN_EWOULD_BLOCK (non-blocking mode), the request's error
 * (which hconn_getresponse() reports again) or a connection error.
 */
int hconn_wait_continue(hconn *c, bool *send_body);

/*
 * The response to the oldest request not yet answered; blocks until its
 * head arrives. Ends an open streamed body first. Discards the rest of a
 * response that was closed unread. Returns 0 with *respp set (free it with
 * hconn_response_close, or let hconn_free do it), or:
 * HCONN_ERESPONSE_NOT_READY when no request is outstanding, a putrequest is
 * unfinished, or the previous response still has an unread body (read it to
 * the end or close it first, as http.client requires); the daemon's error
 * code for the request (HCONN_ECONNECT_FAILED, HCONN_ETIMEOUT,
 * HCONN_EDENIED, ...) with its message; or a connection error.
 */
int hconn_getresponse(hconn *c, hconn_response **respp);

/* The daemon socket's descriptor, -1 when not connected. */
int hconn_fileno(const hconn *c);

/*
 * ---- Non-blocking mode (dugong's coroutine API, the C way) ----
 *
 * hconn_set_blocking(c, false) connects (if needed) and makes every call
 * on c and its responses return at once. A call that cannot proceed
 * returns HCONN_EWOULD_BLOCK, having changed nothing that the same call
 * made again would not pick up: call it again after poll(2) (or epoll,
 * or a libevent event) reports one of hconn_events(c) on hconn_fileno(c),
 * and hconn_process(c) ran. In detail:
 * - Sending calls (request, request_stream, endheaders, send, send_fd)
 *   queue their message whole and write what the socket takes. While
 *   256 KiB or more are queued they are refused with HCONN_EWOULD_BLOCK and
 *   take nothing, so memory stays bounded by that plus one call's data.
 * - Receiving calls (getresponse, wait_continue, read, readinto, readline,
 *   read_all) use the bytes that are there; read/readinto return a short
 *   count rather than wait; readline may return a partial line (no '\n')
 *   when the rest has not arrived; read_all keeps its partial body inside
 *   the response between calls.
 * - HCONN_ETIMEOUT never comes from the library in this mode: the
 *   caller's loop owns time (hconnd's own timeouts still apply).
 * - Connecting to the daemon stays a blocking connect(2) on a local
 *   socket, done by hconn_set_blocking(c, false) itself.
 * hconn_set_blocking(c, true) goes back, first writing out (blocking)
 * whatever is queued. Returns 0 or a connection error.
 */
int hconn_set_blocking(hconn *c, bool blocking);

/*
 * The poll(2) events c waits for: POLLOUT while output is queued, POLLIN
 * while a request is outstanding (or output is queued: replies are taken
 * in meanwhile so pipelined writes can never deadlock). 0 when there is
 * nothing to wait for or c is not connected. Without queued output, POLLIN
 * is dropped while 1 MiB of replies is buffered unread: consume them with
 * getresponse/read first.
 */
short hconn_events(const hconn *c);

/*
 * Does the I/O the socket is ready for, without waiting: writes queued
 * output and buffers what hconnd sent (up to 1 MiB unread, or without limit
 * while output is queued). Call it when poll reports hconn_events(c), then
 * retry the calls that returned HCONN_EWOULD_BLOCK. Returns 0,
 * HCONN_ENOT_CONNECTED or a connection error (the stream is then broken,
 * as in blocking mode).
 */
int hconn_process(hconn *c);

/*
 * HTTPConnection.close(): closes the daemon socket and forgets every
 * request sent and not yet answered (hconn_getresponse() then returns
 * HCONN_ERESPONSE_NOT_READY), and the putrequest or streamed body under
 * way. Responses already returned stay valid and read as closed: a read
 * returns 0, hconn_response_closed() is true. c stays usable: the next
 * request connects again. NULL is a no-op.
 */
void hconn_close(hconn *c);

/* Closes c as hconn_close() and frees it and every response of it not yet
 * closed (their pointers are then invalid). NULL is a no-op. */
void hconn_free(hconn *c);

/*
 * http.client's set_debuglevel. level >= 1: what http.client prints, on
 * stderr: "send: b'...'" with the request head as hconnd sends it (built by
 * the same code as hconnd's: Host, Accept-Encoding, Content-Length or
 * Transfer-Encoding added) and then each piece of the body, "reply:
 * 'HTTP/1.1 200 OK\r\n'" and one "header: Name: value" line per response
 * field. level >= 2 adds each protocol line exchanged with hconnd,
 * prefixed "hconnd> " (sent) and "hconnd< " (received).
 */
void hconn_set_debuglevel(hconn *c, int level);

/* Detail of the last error on c (or one of its responses); "" if none. */
const char *hconn_errmsg(const hconn *c);

/* ---- Response --------------------------------------------------------- */

/* Status code, e.g. 200. */
int hconn_response_status(const hconn_response *r);

/* Reason phrase as the server sent it (may be ""). */
const char *hconn_response_reason(const hconn_response *r);

/* HTTP version of the response: 10, 11 or 20 (HTTP/2). */
int hconn_response_version(const hconn_response *r);

/* True when hconnd sent the request on a pooled keep-alive connection. */
bool hconn_response_reused(const hconn_response *r);

/* Body bytes still to read when the length is known, else -1 (as
 * http.client's .length). 0 for HEAD, 1xx, 204 and 304 responses. */
int64_t hconn_response_length(const hconn_response *r);

/* Value of header name (case-insensitive); repeats are joined with ", ";
 * default_value when absent. The string is owned by r. */
const char *hconn_response_getheader(hconn_response *r, const char *name,
                                     const char *default_value);

/* Sets *headers to all header fields in order, duplicates kept; returns
 * their number. Owned by r. */
size_t hconn_response_getheaders(const hconn_response *r,
                                 const struct hconn_header **headers);

/* Like getheaders, for the trailer fields of a chunked body; empty until
 * the body was read to its end. */
size_t hconn_response_gettrailers(const hconn_response *r,
                                  const struct hconn_header **trailers);

/*
 * Reads up to n body bytes into buf; blocks until n bytes, the end of the
 * body, or an error. Returns the bytes read (fewer than n only at the end
 * of the body; 0 once the body is complete, or when n is 0), or a
 * negative code. If an
 * error arrives after some bytes were copied in this call, returns those
 * bytes; the next call returns the error (and so does every later call).
 * A body cut short is always an error, never a short read followed by 0:
 * HCONN_EINCOMPLETE_READ, HCONN_ECONNECTION_CLOSED (hconnd's socket
 * closed mid-body), HCONN_EREMOTE_DISCONNECTED, HCONN_ETIMEOUT, ...
 */
ssize_t hconn_response_read(hconn_response *r, void *buf, size_t n);

/* http.client's readinto: fills buf as hconn_response_read does (n bytes
 * unless the body ends first). */
ssize_t hconn_response_readinto(hconn_response *r, void *buf, size_t n);

/* http.client's read1: returns at most n bytes, as soon as at least one is
 * available, from at most one piece the daemon sent (waits only when none
 * is buffered). Returns 0 at the end, errors as read. */
ssize_t hconn_response_read1(hconn_response *r, void *buf, size_t n);

/*
 * Reads the whole rest of the body (read() without amt). On success *bufp
 * is a malloc'd buffer of *lenp bytes plus a terminating NUL the caller
 * frees. On error returns the code with *bufp NULL and *lenp 0, except
 * HCONN_EINCOMPLETE_READ (http.client's IncompleteRead): then *bufp holds
 * the bytes that did arrive (IncompleteRead.partial; NUL-terminated, the
 * caller frees it, possibly 0 bytes) and hconn_response_incomplete_read()
 * tells the counts.
 */
int hconn_response_read_all(hconn_response *r, void **bufp, size_t *lenp);

/*
 * Whether r's body ended with HCONN_EINCOMPLETE_READ; if so, sets
 * *received to the body bytes that arrived and *expected to the length
 * announced (-1 when unknown), as hconnd reported them (IncompleteRead's
 * partial and expected; either pointer may be NULL).
 */
bool hconn_response_incomplete_read(const hconn_response *r, uint64_t *received,
                                    int64_t *expected);

/*
 * Reads one line, up to and including '\n', at most size - 1 bytes (in
 * non-blocking mode, possibly a partial line: see hconn_set_blocking), and
 * NUL-terminates it. Returns its length, 0 at the end of the body, or a
 * negative code (HCONN_EINVALID_ARGUMENT when size < 2; errors as read).
 */
ssize_t hconn_response_readline(hconn_response *r, char *buf, size_t size);

/* True when the body was read to its end (or failed): nothing is left. */
bool hconn_response_closed(const hconn_response *r);

/* The daemon socket's descriptor (as hconn_fileno). */
int hconn_response_fileno(const hconn_response *r);

/* Frees r. An unread body is discarded: the connection drains it before
 * the next response. NULL is a no-op. Valid after hconn_close(c), not
 * after hconn_free(c), which frees r itself. */
void hconn_response_close(hconn_response *r);

/* ---- Tables ------------------------------------------------------------ */

/* Reason phrase for a status code (http.client.responses), NULL when
 * unknown. */
const char *hconn_responses(int status);

/* http.HTTPStatus: every member as HCONN_STATUS_<NAME>, with Python 3.13's
 * names and the older ones it keeps as aliases. */
enum hconn_status {
    HCONN_STATUS_CONTINUE = 100,
    HCONN_STATUS_SWITCHING_PROTOCOLS = 101,
    HCONN_STATUS_PROCESSING = 102,
    HCONN_STATUS_EARLY_HINTS = 103,
    HCONN_STATUS_OK = 200,
    HCONN_STATUS_CREATED = 201,
    HCONN_STATUS_ACCEPTED = 202,
    HCONN_STATUS_NON_AUTHORITATIVE_INFORMATION = 203,
    HCONN_STATUS_NO_CONTENT = 204,
    HCONN_STATUS_RESET_CONTENT = 205,
    HCONN_STATUS_PARTIAL_CONTENT = 206,
    HCONN_STATUS_MULTI_STATUS = 207,
    HCONN_STATUS_ALREADY_REPORTED = 208,
    HCONN_STATUS_IM_USED = 226,
    HCONN_STATUS_MULTIPLE_CHOICES = 300,
    HCONN_STATUS_MOVED_PERMANENTLY = 301,
    HCONN_STATUS_FOUND = 302,
    HCONN_STATUS_SEE_OTHER = 303,
    HCONN_STATUS_NOT_MODIFIED = 304,
    HCONN_STATUS_USE_PROXY = 305,
    HCONN_STATUS_TEMPORARY_REDIRECT = 307,
    HCONN_STATUS_PERMANENT_REDIRECT = 308,
    HCONN_STATUS_BAD_REQUEST = 400,
    HCONN_STATUS_UNAUTHORIZED = 401,
    HCONN_STATUS_PAYMENT_REQUIRED = 402,
    HCONN_STATUS_FORBIDDEN = 403,
    HCONN_STATUS_NOT_FOUND = 404,
    HCONN_STATUS_METHOD_NOT_ALLOWED = 405,
    HCONN_STATUS_NOT_ACCEPTABLE = 406,
    HCONN_STATUS_PROXY_AUTHENTICATION_REQUIRED = 407,
    HCONN_STATUS_REQUEST_TIMEOUT = 408,
    HCONN_STATUS_CONFLICT = 409,
    HCONN_STATUS_GONE = 410,
    HCONN_STATUS_LENGTH_REQUIRED = 411,
    HCONN_STATUS_PRECONDITION_FAILED = 412,
    HCONN_STATUS_CONTENT_TOO_LARGE = 413,
    /* the name before Python 3.13: */
    HCONN_STATUS_REQUEST_ENTITY_TOO_LARGE = 413,
    HCONN_STATUS_URI_TOO_LONG = 414,
    /* the name before Python 3.13: */
    HCONN_STATUS_REQUEST_URI_TOO_LONG = 414,
    HCONN_STATUS_UNSUPPORTED_MEDIA_TYPE = 415,
    HCONN_STATUS_RANGE_NOT_SATISFIABLE = 416,
    /* the name before Python 3.13: */
    HCONN_STATUS_REQUESTED_RANGE_NOT_SATISFIABLE = 416,
    HCONN_STATUS_EXPECTATION_FAILED = 417,
    HCONN_STATUS_IM_A_TEAPOT = 418,
    HCONN_STATUS_MISDIRECTED_REQUEST = 421,
    HCONN_STATUS_UNPROCESSABLE_CONTENT = 422,
    /* the name before Python 3.13: */
    HCONN_STATUS_UNPROCESSABLE_ENTITY = 422,
    HCONN_STATUS_LOCKED = 423,
    HCONN_STATUS_FAILED_DEPENDENCY = 424,
    HCONN_STATUS_TOO_EARLY = 425,
    HCONN_STATUS_UPGRADE_REQUIRED = 426,
    HCONN_STATUS_PRECONDITION_REQUIRED = 428,
    HCONN_STATUS_TOO_MANY_REQUESTS = 429,
    HCONN_STATUS_REQUEST_HEADER_FIELDS_TOO_LARGE = 431,
    HCONN_STATUS_UNAVAILABLE_FOR_LEGAL_REASONS = 451,
    HCONN_STATUS_INTERNAL_SERVER_ERROR = 500,
    HCONN_STATUS_NOT_IMPLEMENTED = 501,
    HCONN_STATUS_BAD_GATEWAY = 502,
    HCONN_STATUS_SERVICE_UNAVAILABLE = 503,
    HCONN_STATUS_GATEWAY_TIMEOUT = 504,
    HCONN_STATUS_HTTP_VERSION_NOT_SUPPORTED = 505,
    HCONN_STATUS_VARIANT_ALSO_NEGOTIATES = 506,
    HCONN_STATUS_INSUFFICIENT_STORAGE = 507,
    HCONN_STATUS_LOOP_DETECTED = 508,
    HCONN_STATUS_NOT_EXTENDED = 510,
    HCONN_STATUS_NETWORK_AUTHENTICATION_REQUIRED = 511,
};

/* HTTPStatus(status).phrase: the same phrase as hconn_responses(). */
const char *hconn_status_phrase(int status);

/* HTTPStatus(status).description: a longer explanation, "" for the codes
 * Python gives none; NULL when status is unknown. */
const char *hconn_status_description(int status);

#ifdef __cplusplus
}
#endif

#endif
