/*
 * wire.h — the hconn wire protocol v1 codec, shared by hconnd and libhconn.
 * proto/PROTOCOL.md is the specification; this is its code. No I/O.
 *
 * Framing: one JSON object per '\n'-terminated line, at most WIRE_MAX_LINE
 * bytes; a message with "data": N is followed by exactly N raw bytes,
 * which the caller reads itself (wire_read_line never looks past '\n').
 *
 * Bump WIRE_VERSION if any message or field below changes meaning.
 */
#ifndef HCONN_WIRE_H
#define HCONN_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* The protocol version; bytes in one line ('\n' included); in a string id. */
#define WIRE_VERSION  1
#define WIRE_MAX_LINE (1024 * 1024)
#define WIRE_MAX_ID   256

/* Bytes in the inline PEM fields of "tls" (PROTOCOL.md 3.3): trust
 * anchors (a bundle of a few hundred certificates), a client certificate
 * chain, a private key. */
#define WIRE_MAX_CA_PEM   (512 * 1024)
#define WIRE_MAX_CERT_PEM (64 * 1024)
#define WIRE_MAX_KEY_PEM  (16 * 1024)

/* Line reader state; zero-filled then wire_reader_init. */
struct wire_reader {
    size_t max_line; /* limit on one line, '\n' included */
    bool discarding; /* dropping the rest of an over-long line */
};

void wire_reader_init(struct wire_reader *r, size_t max_line);

/*
 * Takes the next message line from buf[0..len). Always sets *consumed
 * (bytes the caller must drop, possibly 0) and *msg. Returns:
 *   0, *msg set     a line holding a JSON object was decoded (caller
 *                   json_decref's it);
 *   0, *msg NULL    no complete line yet (*consumed 0), or a blank line
 *                   was skipped or bytes of an over-long line were
 *                   discarded (*consumed > 0): call again;
 *   HCONN_EBAD_MESSAGE   the line is not one JSON object (consumed), or it
 *                   exceeds max_line (its bytes so far consumed and the
 *                   rest, up to '\n', discarded by later calls); err says
 *                   which and where.
 */
int wire_read_line(struct wire_reader *r, const char *buf, size_t len,
                   size_t *consumed, json_t **msg, char *err, size_t errlen);

/* Serialises msg as one compact line ending in '\n'. Returns a malloc'd
 * buffer of *len bytes, or NULL when out of memory. msg is not stolen. */
char *wire_encode(const json_t *msg, size_t *len);

/* A JSON string for bytes from an HTTP head: kept as is when valid UTF-8,
 * else each byte is read as ISO-8859-1 (as http.client does). */
json_t *wire_string_from_bytes(const char *s, size_t len);

/* True when s[0..n) is all valid UTF-8 (RFC 3629). */
bool wire_is_utf8(const char *s, size_t n);

/* s[0..n) read as ISO-8859-1, in UTF-8: bytes 0x80..0xff become
 * U+0080..U+00FF. Returns a malloc'd buffer of *outlen bytes, or NULL. */
char *wire_latin1_to_utf8(const char *s, size_t n, size_t *outlen);

/* ---- Client → daemon ------------------------------------------------ */

enum wire_body {
    WIRE_BODY_NONE,   /* no body */
    WIRE_BODY_INLINE, /* "data": N raw bytes follow the request line */
    WIRE_BODY_STREAM, /* "body": "stream": data frames, then an end frame */
};

/* "http_version": which HTTP a request may use (PROTOCOL.md 3.1). The
 * values are those of libhconn's HCONN_HTTP_... constants. */
enum wire_http_version {
    WIRE_HTTP_AUTO = 0, /* "auto" or absent: ALPN h2,http/1.1; h1 plain */
    WIRE_HTTP_1_1 = 11, /* "1.1": HTTP/1.1 only */
    WIRE_HTTP_2 = 20,   /* "2": HTTP/2 only (h2c for plain text) */
};

/* A request header pair; strings are NUL-free and borrowed from the msg. */
struct wire_header {
    const char *name;
    const char *value;
};

/* The "tls" object. Strings NULL when absent. */
struct wire_tls {
    bool verify;   /* default true */
    bool insecure; /* explicit opt-out of verification */
    const char *ca_file;
    const char *ca_path;
    const char *cert_file;
    const char *key_file;
    const char *ca_pem;      /* trust anchors, PEM, inline */
    const char *cert_pem;    /* client certificate chain, PEM, inline */
    const char *key_pem;     /* its private key, PEM, inline */
    const char *server_name; /* SNI and name to verify, default host */
    const char *min_version; /* "1.2" or "1.3", NULL for the default */
    bool no_check_hostname;  /* "check_hostname": false: verify the chain
                                but not the name */
    /* Never set by the parser: hconnd's digests of ca_pem, cert_pem and
     * key_pem (as the pool key writes them) when it already knows them,
     * so a cached file is not hashed again for every request. */
    const char *ca_pem_digest;
    const char *cert_pem_digest;
    const char *key_pem_digest;
};

/* The "proxy" object: tunnel through host:port with CONNECT. */
struct wire_proxy {
    const char *host;
    uint16_t port;
    struct wire_header *headers; /* malloc'd array, nheaders entries */
    size_t nheaders;
};

/* A validated request message. Borrows strings from the message it came
 * from: keep that json_t alive while this is used. */
struct wire_request {
    const char *method;
    bool tls;                    /* https, or "tls" given with "host" */
    char *host;                  /* malloc'd; IPv6 without brackets */
    uint16_t port;               /* explicit, else 80/443 */
    const char *target;          /* request-target, default "/"; stored
                                    after host's NUL in host's block */
    struct wire_header *headers; /* malloc'd array, nheaders entries */
    size_t nheaders;
    bool skip_host;
    bool skip_accept_encoding;
    enum wire_body body;
    int64_t length; /* INLINE: N; STREAM: "length" or -1 */
    bool expect_continue;
    double timeout; /* seconds; 0 = the daemon's default */
    bool raw;       /* shell mode: head line, bare body, close */
    enum wire_http_version http_version; /* "http_version" */
    bool has_tls_options;
    struct wire_tls tls_options;
    bool has_proxy;
    struct wire_proxy proxy;
    bool direct; /* "proxy": false: no tunnel, not even the daemon's
                    default proxy */
    /* "read_timeout" given, and then its seconds (0: no read timeout) */
    bool has_read_timeout;
    double read_timeout;

    bool has_source;         /* "source_address" other than ["", 0] */
    const char *source_host; /* its address literal, "" for any */
    uint16_t source_port;    /* its port, 0 for any */
};

enum wire_client_kind {
    WIRE_MSG_REQUEST, /* has "method" */
    WIRE_MSG_DATA,    /* {"id", "data": N} for a streamed body */
    WIRE_MSG_END,     /* {"id", "end": true} ends a streamed body */
    WIRE_MSG_OP,      /* {"op": "hello" | "stats", "id"?} */
};

struct wire_client_msg {
    enum wire_client_kind kind;
    json_t *id;              /* borrowed; integer or string; NULL if absent */
    bool has_data;           /* "data" present and valid: payload follows */
    uint64_t data_len;       /* its N */
    bool framing_lost;       /* "data" present but invalid: the payload
                                length is unknown, drop the peer */
    const char *op;          /* OP */
    struct wire_request req; /* REQUEST */
};

/*
 * Validates a client message: every field's type and range, unknown fields
 * refused. Returns 0, or a negative code (HCONN_EBAD_MESSAGE, or
 * HCONN_EINVALID_URL for "url"/"host"/"port"/"target", HCONN_EINVALID_HEADER
 * for "headers", HCONN_ENO_MEMORY) with err naming the field and the
 * problem. Even on error, has_data/data_len/framing_lost and id are set
 * as far as they could be read, so the caller can skip the payload and
 * address its error reply.
 * Call wire_client_msg_clear afterwards in every case.
 */
int wire_parse_client_msg(json_t *msg, struct wire_client_msg *out, char *err,
                          size_t errlen);

void wire_client_msg_clear(struct wire_client_msg *m);

/* ---- Daemon → client: builders -------------------------------------- */

/* Each returns a new object (NULL when out of memory); id is not stolen
 * and is omitted when NULL. Callers may add fields before wire_encode.
 * The response head is written directly instead (wire_line.h). */

/* {"id", "data": n}: a data frame, either direction. */
json_t *wire_data_frame(json_t *id, uint64_t n);
/* {"id", "end": true}; trailers (stolen) added when not NULL. */
json_t *wire_end_frame(json_t *id, json_t *trailers);
/* {"id", "error": name, "message": message}; message NULL means
 * hconn_strerror(code), and bytes that are not UTF-8 read as ISO-8859-1. */
json_t *wire_reply_error(json_t *id, int code, const char *message);
/* {"id", "continue": true}. */
json_t *wire_reply_continue(json_t *id);

/* ---- Daemon → client: parsing (libhconn) ----------------------------- */

enum wire_reply_kind {
    WIRE_REPLY_HEAD,
    WIRE_REPLY_CONTINUE,
    WIRE_REPLY_DATA,
    WIRE_REPLY_END,
    WIRE_REPLY_ERROR,
    WIRE_REPLY_OP, /* a reply to an "op" message: the whole object */
};

/* A validated daemon message; json values and strings are borrowed. */
struct wire_reply {
    enum wire_reply_kind kind;
    json_t *id;
    int status;            /* HEAD */
    const char *reason;    /* HEAD */
    int version;           /* HEAD: 10, 11 or 20 */
    json_t *headers;       /* HEAD: array of [name, value] string pairs */
    int64_t length;        /* HEAD: body length, -1 when unknown */
    bool reused;           /* HEAD */
    uint64_t data_len;     /* DATA */
    json_t *trailers;      /* END: array of pairs (maybe empty) */
    int error;             /* ERROR: HCONN_E..., HCONN_EBAD_MESSAGE for
                              a name this build does not know */
    const char *message;   /* ERROR */
    int64_t received;      /* ERROR: "received", -1 when absent */
    int64_t expected;      /* ERROR: "expected", -1 when absent */
    json_t *proxy_headers; /* HEAD: "proxy_response"'s "headers"; ERROR
                              (tunnel_failed): "headers"; NULL: absent */
};

/* Validates a daemon message. Returns 0 or HCONN_EBAD_MESSAGE with err
 * naming the field. */
int wire_parse_reply(json_t *msg, struct wire_reply *out, char *err,
                     size_t errlen);

#endif
