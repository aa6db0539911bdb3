/*
 * http1.h — a sans-I/O HTTP/1.1 client codec: request heads and framed
 * request bodies out, response events in. No sockets, no clock, no
 * allocation beyond the one buffer http1_start_request hands to its
 * caller (none when the caller's own buffer holds the head).
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
    int64_t content_length;    /* body length, or -1: none or unknown */
    bool chunked;              /* a body of unknown length follows */
    bool tunnel;               /* a CONNECT opening a tunnel (proxy.c);
                                  any other CONNECT is refused */
};

/* How a request body is framed on the wire, and where it stands: h11's
 * writers. http1_start_request fills one in from the head it writes. */
enum http1_writer_state {
    HTTP1_W_IDLE = 0, /* no head yet */
    HTTP1_W_BODY,     /* the head announced a body: data, then end */
    HTTP1_W_DONE,     /* the whole request is out (or had no body) */
    HTTP1_W_FAILED,   /* a call broke the framing: error, errmsg */
};

struct http1_writer {
    enum http1_writer_state state;
    bool has_body;    /* the head announced a body */
    bool chunked;     /* the body goes chunk-encoded */
    int64_t length;   /* the body's length, enforced; -1: not known */
    uint64_t written; /* body bytes framed so far */
    int error;        /* FAILED: the HCONN_E... returned */
    char errmsg[160]; /* FAILED: what was wrong */
};

/* The framing bytes around one piece of body (http1_writer_data) or at
 * its end (http1_writer_end): the caller writes pre, the piece, post. */
struct http1_frame {
    char pre[HTTP1_CHUNK_HEADER_MAX]; /* a chunk-size line, the last chunk */
    size_t pre_len;
    const char *post; /* "\r\n" after a chunk's data, or "" */
    size_t post_len;
};

/*
 * Formats a request head with http.client's layout, and readies w (when
 * not NULL) to frame its body. The daemon alone frames bodies, so the
 * caller's framing and connection-management fields are checked against
 * what it frames, never trusted (the table is in PROTOCOL.md 3.1):
 *
 * - the body: none (content_length -1, !chunked), content_length bytes,
 *   or unknown (chunked): sent chunked, unless the caller's
 *   Content-Length gives its length;
 * - Content-Length (at most one, digits only) must equal the body's
 *   length: 0 without a body; with an unknown body it declares one;
 * - Transfer-Encoding (at most one) may only be "chunked", on a body: it
 *   asks for chunk encoding, which the writer does (the body's bytes are
 *   data, never pre-chunked); never together with Content-Length;
 * - without either, http.client's automatic framing: Content-Length from
 *   content_length, Transfer-Encoding: chunked for an unknown length,
 *   Content-Length: 0 for POST, PUT and PATCH without a body;
 * - Connection: only close, keep-alive and te tokens; TE: only trailers;
 *   Expect: only 100-continue, once, on a body; Host: at most once;
 *   Upgrade, Keep-Alive, Proxy-Connection, Trailer, HTTP2-Settings: never;
 * - Host unless skip_host or the caller gave one; Accept-Encoding:
 *   identity unless skip_accept_encoding or the caller gave one.
 * Rejects CONNECT unless tunnel, a method with bytes outside tchar, a
 * target with controls, space or DEL (HCONN_EINVALID_URL); header names
 * that are not tokens, values with CR, LF or NUL, and fields against the
 * rules above (HCONN_EINVALID_HEADER); err names the field and why.
 * On success *head is a malloc'd buffer of *len bytes the caller frees,
 * and w is in BODY (or DONE for a request without a body).
 */
int http1_start_request(const struct http1_request *req, struct http1_writer *w,
                        char **head, size_t *len, char *err, size_t errlen);

/* http1_start_request, with a head of at most cap bytes written into
 * the caller's buf (then *head == buf: nothing allocated); a longer one
 * is malloc'd as there (*head != buf: the caller frees it). buf NULL:
 * always malloc'd. On failure *head is NULL. */
int http1_start_request_in(const struct http1_request *req,
                           struct http1_writer *w, char *buf, size_t cap,
                           char **head, size_t *len, char *err, size_t errlen);

/* http1_start_request without a body writer (a CONNECT, a test). */
int http1_format_request(const struct http1_request *req, char **head,
                         size_t *len, char *err, size_t errlen);

/*
 * Frames the next n body bytes: fills f with what goes before and after
 * them. n == 0 frames nothing (an empty chunk would end the body). Past a
 * known length: HCONN_EBODY_LENGTH; outside BODY: HCONN_EINVALID_ARGUMENT;
 * either leaves w FAILED with errmsg set.
 */
int http1_writer_data(struct http1_writer *w, uint64_t n,
                      struct http1_frame *f);

/* Ends the body: f->pre is the last chunk of a chunked body, else empty.
 * Short of a known length: HCONN_EBODY_LENGTH (w FAILED); then DONE. */
int http1_writer_end(struct http1_writer *w, struct http1_frame *f);

/* Body bytes w still takes before its length is reached; UINT64_MAX when
 * the length is not known; 0 outside BODY. */
uint64_t http1_writer_room(const struct http1_writer *w);

/* Back to the start of the same body, to send it again on a new
 * connection after the same head. */
void http1_writer_rewind(struct http1_writer *w);

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
    int64_t content_length;  /* LENGTH: declared length; else -1 */
    uint64_t body_received;  /* body bytes returned in DATA so far */
    uint64_t chunk_left;     /* CHUNK_DATA: bytes left in this chunk */
    bool keep_alive;         /* the head allows reuse (see below) */
    size_t scanned;          /* head/line bytes already scanned */
    size_t line_start;       /* head, trailers: where the open line starts */
    size_t nlines;           /* head, trailers: field lines so far */
    size_t nfields;          /* head, trailers: fields so far (a folded
                                line continues one) */
    size_t nul_cr_at;        /* head, trailers: 1 + where the open line's
                                first NUL or CR is; 0: none yet */
    size_t status_end;       /* head: where the status line's CR/LF is */
    bool folded;             /* head, trailers: a field has an obs-fold */
    unsigned framing_fields; /* head: which of Content-Length,
                                Transfer-Encoding, Connection it has */
    int error;               /* FAILED: the HCONN_E... ERROR returned */
    char errmsg[192];        /* ERROR: what was wrong and where */
    struct http1_header headers[HTTP1_MAX_HEADERS]; /* the last head */
    /* Where each field of the open section starts, from its first byte,
     * and where its value starts (past the OWS after the colon):
     * headers[] holds the lengths until the section ends, since the
     * caller may move the bytes between calls. */
    uint32_t field_at[HTTP1_MAX_HEADERS];
    uint32_t value_at[HTTP1_MAX_HEADERS];
    /* Which of those names each field has (1, 2, 3 in that order), else
     * 0: told once, as the field is recorded, for the framing decision;
     * and where the first and the last field of each kind are. */
    uint8_t field_kind[HTTP1_MAX_HEADERS];
    uint8_t kind_first[4];
    uint8_t kind_last[4];
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

/* http1_parser_next, with the event written into *ev (every field, as
 * the one returned would be), for a caller on the hot path. */
void http1_parser_next_into(struct http1_parser *p, const char *buf, size_t len,
                            bool eof, size_t *consumed, struct http1_event *ev);

/*
 * After HTTP1_END: true when the connection may carry another request:
 * HTTP/1.1 without Connection: close, or HTTP/1.0 with keep-alive, and the
 * body was delimited by length or chunks (never CLOSE, and never NONE: a
 * body some origins send after HEAD, 204 or 304 anyway would be read as
 * the next response) and the request did not ask to close. The caller
 * must also check that no stray bytes followed END.
 */
bool http1_parser_keep_alive(const struct http1_parser *p);

/* Bytes of a Content-Length body still to come that the parser has not
 * been given (0 outside such a body): a caller may move up to that many
 * from the connection past the parser (splice) and say so with
 * http1_parser_body_taken. */
uint64_t http1_parser_body_left(const struct http1_parser *p);

/* Counts n body bytes (at most http1_parser_body_left) that the caller
 * moved past the parser; the next http1_parser_next goes on after them
 * (END once the body is whole; with eof and bytes short,
 * HCONN_EINCOMPLETE_READ as ever). */
void http1_parser_body_taken(struct http1_parser *p, uint64_t n);

/* Copies a header value into dst (value_len + 1 bytes) with each obs-fold
 * (CRLF followed by SP/HT) replaced by one SP, NUL-terminated; returns
 * the copied length. */
size_t http1_unfold_value(char *dst, const char *value, size_t value_len);

#endif
