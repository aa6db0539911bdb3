/*
 * http1.h — a sans-I/O HTTP/1.1 client codec: request heads out, response
 * events in. No sockets, no clock, no allocation beyond the one buffer
 * http1_format_request hands to its caller.
 *
 * The response parser follows h11 and picohttpparser: the caller holds the
 * bytes, the parser returns one event per call plus how many bytes the
 * caller may now drop; events point into the caller's buffer. Body framing
 * follows RFC 9112 §6.3 step by step.
 */
#ifndef HCONN_HTTP1_H
#define HCONN_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP1_MAX_LINE         65536 /* bytes in one head line, as http.client */
#define HTTP1_MAX_HEADERS      100 /* header fields in a head, as http.client */
#define HTTP1_CHUNK_HEADER_MAX 24  /* "ffffffffffffffff\r\n" and NUL */
#define HTTP1_LAST_CHUNK       "0\r\n\r\n"

/* A header field; name and value are not NUL-terminated. */
struct http1_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* Everything that goes into a request head. */
struct http1_request {
    const char *method; /* e.g. "GET"; sent verbatim */
    const char *target; /* request-target, sent verbatim */
    const char *host;   /* origin host for Host, IPv6 without brackets */
    uint16_t port;      /* origin port; appended to Host unless default */
    bool tls;           /* default port is 443 rather than 80 */
    const struct http1_header *headers; /* caller's fields, in order */
    size_t nheaders;
    bool skip_host;            /* no automatic Host field */
    bool skip_accept_encoding; /* no automatic Accept-Encoding: identity */
    int64_t content_length;    /* body length, or -1 for no body */
    bool chunked;              /* body of unknown length follows in chunks */
};

/*
 * Formats the request head (request line, fields, blank line) with
 * http.client's rules: Host unless skip_host or the caller gave one;
 * Accept-Encoding: identity unless skip_accept_encoding or the caller gave
 * one; Content-Length from content_length unless the caller gave
 * Content-Length or Transfer-Encoding; Content-Length: 0 for POST, PUT and
 * PATCH without a body; Transfer-Encoding: chunked when chunked.
 * Rejects a method with bytes outside tchar, a target with controls, space
 * or DEL (HCONN_EINVALID_URL), and header names that are not tokens or
 * values with CR, LF or NUL (HCONN_EINVALID_HEADER); err names the culprit.
 * On success *head is a malloc'd buffer of *len bytes the caller frees.
 */
int http1_format_request(const struct http1_request *req, char **head,
                         size_t *len, char *err, size_t errlen);

/* Writes the chunk-size line for a chunk of n > 0 bytes into out; returns
 * its length. The chunk's data and a "\r\n" follow it on the wire. */
size_t http1_format_chunk_header(size_t n, char out[HTTP1_CHUNK_HEADER_MAX]);

/* How the response body is delimited (RFC 9112 §6.3). */
enum http1_framing {
    HTTP1_FRAMING_NONE,    /* HEAD, 1xx, 204, 304: no body */
    HTTP1_FRAMING_LENGTH,  /* Content-Length */
    HTTP1_FRAMING_CHUNKED, /* Transfer-Encoding: chunked */
    HTTP1_FRAMING_CLOSE,   /* read until the server closes */
};

enum http1_event_kind {
    HTTP1_NEED_DATA, /* feed more bytes (or eof) and call again */
    HTTP1_INTERIM,   /* a 1xx head (100, 102, 103 ...); more heads follow */
    HTTP1_HEAD,      /* the final response head */
    HTTP1_DATA,      /* a piece of the body */
    HTTP1_END,       /* the response is complete; headers = trailers */
    HTTP1_ERROR,     /* error = HCONN_E..., message in parser->errmsg */
};

struct http1_event {
    enum http1_event_kind kind;
    int status;         /* INTERIM, HEAD: 100..999 */
    int version;        /* INTERIM, HEAD: 10 or 11 */
    const char *reason; /* INTERIM, HEAD; may be empty */
    size_t reason_len;
    const struct http1_header *headers; /* INTERIM, HEAD; END: trailers */
    size_t nheaders;
    const char *data; /* DATA */
    size_t len;
    int error; /* ERROR */
};

enum http1_state {
    HTTP1_S_HEAD = 0,   /* reading a status line and fields */
    HTTP1_S_BODY,       /* Content-Length or read-to-close body */
    HTTP1_S_CHUNK_SIZE, /* a chunk-size line */
    HTTP1_S_CHUNK_DATA, /* chunk data */
    HTTP1_S_CHUNK_CRLF, /* the CRLF after chunk data */
    HTTP1_S_TRAILERS,   /* trailer fields after the last chunk */
    HTTP1_S_DONE,       /* END returned */
    HTTP1_S_FAILED,     /* ERROR returned */
};

/*
 * Parser state. Zero-filled then http1_parser_init; the fields after
 * "state" are readable by the caller once HTTP1_HEAD has been returned.
 */
struct http1_parser {
    bool head_request;  /* the request was HEAD: no body follows */
    bool request_close; /* the request said Connection: close */
    enum http1_state state;
    int status;  /* final status */
    int version; /* 10 or 11 */
    enum http1_framing framing;
    int64_t content_length; /* LENGTH: declared length; else -1 */
    uint64_t body_received; /* body bytes returned in DATA so far */
    uint64_t chunk_left;    /* CHUNK_DATA: bytes left in this chunk */
    bool keep_alive;        /* the head allows reuse (see below) */
    size_t scanned;         /* head/line bytes already scanned */
    size_t line_start;      /* head, trailers: where the open line starts */
    size_t nlines;          /* head, trailers: field lines so far */
    int error;              /* FAILED: the HCONN_E... ERROR returned */
    char errmsg[192];       /* ERROR: what was wrong and where */
    struct http1_header headers[HTTP1_MAX_HEADERS]; /* the last head */
};

/* Prepares p for one response to a request with the given properties. */
void http1_parser_init(struct http1_parser *p, bool head_request,
                       bool request_close);

/*
 * Parses the response bytes buf[0..len) (the caller's unconsumed input,
 * starting where the previous call's *consumed ended); eof says the
 * server closed after them. Returns the next event and sets *consumed to
 * the bytes the caller must drop before the next call. Pointers in the
 * event point into buf and stay valid until those bytes are dropped.
 * NEED_DATA consumes what it could; call again with more bytes or eof.
 * On eof: nothing received → HCONN_EREMOTE_DISCONNECTED; a partial head →
 * HCONN_EREMOTE_DISCONNECTED; a short LENGTH or CHUNKED body →
 * HCONN_EINCOMPLETE_READ; a CLOSE body → END.
 */
struct http1_event http1_parser_next(struct http1_parser *p, const char *buf,
                                     size_t len, bool eof, size_t *consumed);

/*
 * After HTTP1_END: true when the connection may carry another request:
 * HTTP/1.1 without Connection: close, or HTTP/1.0 with keep-alive, and the
 * body was length-delimited (never CLOSE) and the request did not ask to
 * close. The caller must also check that no stray bytes followed END.
 */
bool http1_parser_keep_alive(const struct http1_parser *p);

/* Copies a header value into dst (value_len + 1 bytes) with each obs-fold
 * (CRLF followed by SP/HT) replaced by one SP, NUL-terminated; returns
 * the copied length. */
size_t http1_unfold_value(char *dst, const char *value, size_t value_len);

#endif
