/*
 * test-http1.c — the HTTP/1.1 client codec (proto/http1.c).
 *
 * Response cases are a table: input bytes, the request's properties, and
 * the expected transcript (events, heads, body, trailers, final error,
 * keep-alive, stray bytes). Every case is run four ways — all bytes at
 * once (with EOF in the same call), one byte at a time, in random-size
 * pieces from a fixed seed, and in those pieces with the unconsumed bytes
 * moved to a new buffer before every call — and the four transcripts must
 * be identical before the first is compared with the table. The runner keeps
 * its own buffer, calls the parser until NEED_DATA and drops what it consumed,
 * as the daemon does; it also checks that every pointer in an event lies in the
 * bytes that event consumed and that END/ERROR repeat with nothing consumed.
 * Limits are exercised by generated cases at and just past each limit. Request
 * heads are compared byte for byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hconn_error.h"
#include "http1.h"

/* ---- A growable transcript buffer --------------------------------------- */

struct sbuf {
    char *s;    /* NUL-terminated; may hold NULs (body) */
    size_t len; /* bytes in s */
    size_t cap; /* bytes allocated */
};

/* Binary-safe: bodies may hold any byte. */
static void
sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;

        while (cap < b->len + n + 1)
            cap *= 2;
        b->s = realloc(b->s, cap);
        assert_non_null(b->s);
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void __attribute__((format(printf, 2, 3)))
sb_addf(struct sbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof tmp);
    sb_add(b, tmp, (size_t)n);
}

/* An empty transcript compares as "" without a special case. */
static const char *
sb_str(const struct sbuf *b)
{
    return b->s ? b->s : "";
}

static void
sb_free(struct sbuf *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

/* ---- Response cases ----------------------------------------------------- */

struct response_case {
    const char *name;
    const char *input;    /* what the server sends */
    size_t input_len;     /* 0: strlen(input) */
    bool head;            /* the request was HEAD */
    bool request_close;   /* the request said Connection: close */
    bool eof;             /* the server closes after input */
    const char *events;   /* e.g. "INTERIM 100, HEAD 200 LENGTH, DATA, END" */
    const char *heads;    /* every head: status line, "Name: value" lines;
                             NULL: not checked */
    const char *body;     /* all DATA concatenated; NULL: empty */
    const char *trailers; /* END's fields as "Name: value\n"; NULL: none */
    int error;            /* the final ERROR's code, or 0 */
    const char *errmsg;   /* a substring of errmsg; NULL: not checked */
    bool keep_alive;      /* http1_parser_keep_alive after END */
    size_t leftover;      /* bytes left unconsumed after END */
    size_t ndata;         /* DATA events when fed at once; 0: not checked */
};

/* Bytes with embedded NULs need an explicit length. */
#define BYTES(s) .input = (s), .input_len = sizeof(s) - 1

static const struct response_case response_cases[] = {
    /* -- Content-Length ------------------------------------------------ */
    {
        .name = "200 with Content-Length",
        .input = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                 "Content-Type: text/plain\r\n\r\nhello",
        .events = "HEAD 200 LENGTH, DATA, END",
        .heads = "HTTP/1.1 200 OK\nContent-Length: 5\n"
                 "Content-Type: text/plain\n",
        .body = "hello",
        .keep_alive = true,
        .ndata = 1,
    },
    {
        .name = "Content-Length body never overruns: stray bytes stay",
        .input = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiEXTRA",
        .events = "HEAD 200 LENGTH, DATA, END",
        .body = "hi",
        .keep_alive = true,
        .leftover = 5,
        .ndata = 1,
    },
    {
        .name = "Content-Length 0",
        .input = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        .events = "HEAD 200 LENGTH, END",
        .keep_alive = true,
    },
    {
        .name = "same Content-Length twice",
        .input = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
                 "content-length: 3\r\n\r\nabc",
        .events = "HEAD 200 LENGTH, DATA, END",
        .body = "abc",
        .keep_alive = true,
    },
    {
        .name = "Content-Length list 1,1",
        .input = "HTTP/1.1 200 OK\r\nContent-Length: 1,1\r\n\r\nx",
        .events = "HEAD 200 LENGTH, DATA, END",
        .body = "x",
        .keep_alive = true,
    },
    {
        .name = "Content-Length list with OWS and leading zeros",
        .input = "HTTP/1.1 200 OK\r\nContent-Length: 2 , 02\r\n\r\nab",
        .events = "HEAD 200 LENGTH, DATA, END",
        .body = "ab",
        .keep_alive = true,
    },
    {
        .name = "conflicting Content-Length fields",
        .input = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n"
                 "Content-Length: 13\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_CONTENT_LENGTH,
        .errmsg = "Content-Length \"13\": conflicting values",
    },
    {
        .name = "conflicting Content-Length list",
        .input = "HTTP/1.1 200 OK\r\nContent-Length: 12, 13\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_CONTENT_LENGTH,
        .errmsg = "Content-Length \"12, 13\": conflicting values",
    },
    {
        .name = "Content-Length with a sign",
        .input = "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
        .events = "ERROR",
        .error = HCONN_EBAD_CONTENT_LENGTH,
        .errmsg = "Content-Length \"+5\": not a number",
    },
    {
        .name = "negative Content-Length",
        .input = "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_CONTENT_LENGTH,
        .errmsg = "Content-Length \"-1\": not a number",
    },
    {
        .name = "Content-Length overflow",
        .input = "HTTP/1.1 200 OK\r\n"
                 "Content-Length: 99999999999999999999999\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_CONTENT_LENGTH,
        .errmsg = "too large",
    },
    {
        .name = "Content-Length INT64_MAX + 1",
        .input = "HTTP/1.1 200 OK\r\n"
                 "Content-Length: 9223372036854775808\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_CONTENT_LENGTH,
        .errmsg = "too large",
    },
    {
        .name = "Content-Length INT64_MAX is a length",
        .input = "HTTP/1.1 200 OK\r\n"
                 "Content-Length: 9223372036854775807\r\n\r\nab",
        .eof = true,
        .events = "HEAD 200 LENGTH, DATA, ERROR",
        .body = "ab",
        .error = HCONN_EINCOMPLETE_READ,
        .errmsg = "received 2 of 9223372036854775807 bytes",
    },
    {
        .name = "empty Content-Length",
        .input = "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_CONTENT_LENGTH,
        .errmsg = "empty value",
    },
    {
        .name = "Content-Length with an empty list element",
        .input = "HTTP/1.1 200 OK\r\nContent-Length: 5,\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_CONTENT_LENGTH,
    },
    {
        .name = "hex Content-Length",
        .input = "HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_CONTENT_LENGTH,
    },
    {
        .name = "truncated Content-Length body",
        .input = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        .eof = true,
        .events = "HEAD 200 LENGTH, DATA, ERROR",
        .body = "abc",
        .error = HCONN_EINCOMPLETE_READ,
        .errmsg = "received 3 of 10 bytes",
    },
    {
        .name = "Content-Length body with no byte before EOF",
        .input = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
        .eof = true,
        .events = "HEAD 200 LENGTH, ERROR",
        .error = HCONN_EINCOMPLETE_READ,
        .errmsg = "received 0 of 10 bytes",
    },
    {
        .name = "complete Content-Length body then EOF",
        .input = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
        .eof = true,
        .events = "HEAD 200 LENGTH, DATA, END",
        .body = "abc",
        .keep_alive = true, /* the caller sees the EOF itself */
    },

    /* -- Read until close, HTTP/1.0, Connection ------------------------- */
    {
        .name = "HTTP/1.0 close-delimited",
        .input = "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n"
                 "<html>until close</html>",
        .eof = true,
        .events = "HEAD 200 CLOSE, DATA, END",
        .heads = "HTTP/1.0 200 OK\nContent-Type: text/html\n",
        .body = "<html>until close</html>",
        .ndata = 1,
    },
    {
        .name = "HTTP/1.0 keep-alive with Content-Length",
        .input = "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n"
                 "Content-Length: 3\r\n\r\nabc",
        .events = "HEAD 200 LENGTH, DATA, END",
        .body = "abc",
        .keep_alive = true,
    },
    {
        .name = "HTTP/1.0 with Content-Length but no keep-alive",
        .input = "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc",
        .events = "HEAD 200 LENGTH, DATA, END",
        .body = "abc",
    },
    {
        .name = "HTTP/1.0 keep-alive but close-delimited",
        .input = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nabc",
        .eof = true,
        .events = "HEAD 200 CLOSE, DATA, END",
        .body = "abc",
    },
    {
        .name = "HTTP/1.0 keep-alive and close: close wins",
        .input = "HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\n"
                 "Content-Length: 0\r\n\r\n",
        .events = "HEAD 200 LENGTH, END",
    },
    {
        .name = "HTTP/1.1 close-delimited",
        .input = "HTTP/1.1 200 OK\r\n\r\nxyz",
        .eof = true,
        .events = "HEAD 200 CLOSE, DATA, END",
        .body = "xyz",
    },
    {
        .name = "HTTP/1.1 close-delimited empty body",
        .input = "HTTP/1.1 200 OK\r\n\r\n",
        .eof = true,
        .events = "HEAD 200 CLOSE, END",
    },
    {
        .name = "Connection: close",
        .input = "HTTP/1.1 200 OK\r\nConnection: close\r\n"
                 "Content-Length: 2\r\n\r\nok",
        .events = "HEAD 200 LENGTH, DATA, END",
        .body = "ok",
    },
    {
        .name = "Connection list with close, any case",
        .input = "HTTP/1.1 200 OK\r\nConnection: Upgrade,  CLOSE \r\n"
                 "Content-Length: 0\r\n\r\n",
        .events = "HEAD 200 LENGTH, END",
    },
    {
        .name = "Connection: closed is not close",
        .input = "HTTP/1.1 200 OK\r\nConnection: closed\r\n"
                 "Content-Length: 0\r\n\r\n",
        .events = "HEAD 200 LENGTH, END",
        .keep_alive = true,
    },
    {
        .name = "request asked to close",
        .input = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        .request_close = true,
        .events = "HEAD 200 LENGTH, END",
    },

    /* -- Framing fields, named as they are recorded --------------------- */
    {
        .name = "Content-Length in mixed case, repeated and in a list",
        .input = "HTTP/1.1 200 OK\r\ncontent-LENGTH: 2\r\n"
                 "CONTENT-length:\t2 ,2\t\r\n\r\nab",
        .events = "HEAD 200 LENGTH, DATA, END",
        .body = "ab",
        .keep_alive = true,
    },
    {
        .name = "Content-Length one digit short of overflowing",
        .input = "HTTP/1.1 200 OK\r\n"
                 "Content-Length: 0922337203685477580\r\n\r\nab",
        .eof = true,
        .events = "HEAD 200 LENGTH, DATA, ERROR",
        .body = "ab",
        .error = HCONN_EINCOMPLETE_READ,
        .errmsg = "received 2 of 922337203685477580 bytes",
    },
    {
        .name = "Content-Length INT64_MAX + 10 (its last digit 7 or less)",
        .input = "HTTP/1.1 200 OK\r\n"
                 "Content-Length: 9223372036854775817\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_CONTENT_LENGTH,
        .errmsg = "Content-Length \"9223372036854775817\": too large",
    },
    {
        .name = "names as long as the framing ones are not them",
        .input = "HTTP/1.1 200 OK\r\nContent-Lengtx: 5\r\n"
                 "Transfer-Encodinh: chunked\r\nConnectiom: close\r\n\r\n"
                 "abc",
        .eof = true,
        .events = "HEAD 200 CLOSE, DATA, END",
        .body = "abc",
    },
    {
        .name = "Transfer-Encoding in mixed case beside a look-alike",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encodinx: gzip\r\n"
                 "tRANSFER-eNCODING: Chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
        .events = "HEAD 200 CHUNKED, DATA, END",
        .body = "x",
        .keep_alive = true,
    },
    {
        .name = "HTTP/1.0 KEEP-ALIVE without OWS, any case",
        .input = "HTTP/1.0 200 OK\r\nCONNECTION:KEEP-ALIVE \t\r\n"
                 "Content-Length: 0\r\n\r\n",
        .events = "HEAD 200 LENGTH, END",
        .keep_alive = true,
    },
    {
        .name = "Connection's look-alike does not close",
        .input = "HTTP/1.1 200 OK\r\nConnectiom: close\r\n"
                 "Content-Length: 0\r\n\r\n",
        .events = "HEAD 200 LENGTH, END",
        .keep_alive = true,
    },
    {
        .name = "HTTP/1.0 keep-alive's look-alike does not keep",
        .input = "HTTP/1.0 200 OK\r\nConnection: keep-alivf\r\n"
                 "Content-Length: 0\r\n\r\n",
        .events = "HEAD 200 LENGTH, END",
    },
    {
        .name = "HTTP/1.0 keep-alive, then close in another field",
        .input = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
                 "connection: Close\r\nContent-Length: 0\r\n\r\n",
        .events = "HEAD 200 LENGTH, END",
    },
    {
        .name = "an interim head's framing fields are not the final head's",
        .input = "HTTP/1.1 103 Early Hints\r\nConnection: close\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n"
                 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        .events = "INTERIM 103, HEAD 200 LENGTH, DATA, END",
        .body = "ok",
        .keep_alive = true,
    },
    {
        .name = "framing fields in trailers change nothing",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "1\r\nx\r\n0\r\nContent-Length: 9\r\nConnection: close\r\n"
                 "\r\n",
        .events = "HEAD 200 CHUNKED, DATA, END",
        .body = "x",
        .trailers = "Content-Length: 9\nConnection: close\n",
        .keep_alive = true,
    },
    {
        .name = "obs-fold after trailing OWS, and a Content-Length list folded",
        .input = "HTTP/1.1 200 OK\r\nX-A: one \t\r\n two \r\n"
                 "Content-Length: 1\r\n\t, 1\r\n\r\nz",
        .events = "HEAD 200 LENGTH, DATA, END",
        .heads = "HTTP/1.1 200 OK\nX-A: one two\nContent-Length: 1 , 1\n",
        .body = "z",
        .keep_alive = true,
    },

    /* -- No body -------------------------------------------------------- */
    {
        .name = "HEAD with Content-Length",
        .input = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
        .head = true,
        .events = "HEAD 200 NONE, END",
        .keep_alive = false, /* no body by rule: not kept */
    },
    {
        .name = "HEAD with Transfer-Encoding: chunked",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        .head = true,
        .events = "HEAD 200 NONE, END",
        .keep_alive = false, /* no body by rule: not kept */
    },
    {
        .name = "HEAD answered by HTTP/1.0",
        .input = "HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\n",
        .head = true,
        .events = "HEAD 200 NONE, END",
    },
    {
        .name = "204",
        .input = "HTTP/1.1 204 No Content\r\n\r\n",
        .events = "HEAD 204 NONE, END",
        .keep_alive = false, /* no body by rule: not kept */
    },
    {
        .name = "204 with Content-Length",
        .input = "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
        .events = "HEAD 204 NONE, END",
        .keep_alive = false, /* no body by rule: not kept */
    },
    {
        .name = "304",
        .input = "HTTP/1.1 304 Not Modified\r\nETag: \"abc\"\r\n"
                 "Content-Length: 42\r\n\r\n",
        .events = "HEAD 304 NONE, END",
        .heads = "HTTP/1.1 304 Not Modified\nETag: \"abc\"\n"
                 "Content-Length: 42\n",
        .keep_alive = false, /* no body by rule: not kept */
    },

    /* -- Interim responses --------------------------------------------- */
    {
        .name = "100 then 200",
        .input = "HTTP/1.1 100 Continue\r\n\r\n"
                 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        .events = "INTERIM 100, HEAD 200 LENGTH, DATA, END",
        .heads = "HTTP/1.1 100 Continue\n"
                 "HTTP/1.1 200 OK\nContent-Length: 2\n",
        .body = "ok",
        .keep_alive = true,
    },
    {
        .name = "102 and 103 then 200",
        .input = "HTTP/1.1 102 Processing\r\n\r\n"
                 "HTTP/1.1 103 Early Hints\r\n"
                 "Link: </style.css>; rel=preload\r\n"
                 "Link: </script.js>; rel=preload\r\n\r\n"
                 "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        .events = "INTERIM 102, INTERIM 103, HEAD 200 LENGTH, END",
        .heads = "HTTP/1.1 102 Processing\n"
                 "HTTP/1.1 103 Early Hints\n"
                 "Link: </style.css>; rel=preload\n"
                 "Link: </script.js>; rel=preload\n"
                 "HTTP/1.1 200 OK\nContent-Length: 0\n",
        .keep_alive = true,
    },
    {
        .name = "unknown 1xx is interim",
        .input = "HTTP/1.1 199 Whatever\r\nX: y\r\n\r\n"
                 "HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nx",
        .events = "INTERIM 199, HEAD 404 LENGTH, DATA, END",
        .body = "x",
        .keep_alive = true,
    },
    {
        .name = "101 is refused",
        .input = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\n\r\n\x81\x05hello",
        .events = "ERROR",
        .error = HCONN_EUNSUPPORTED,
        .errmsg = "101 Switching Protocols is not supported",
    },
    {
        .name = "EOF after an interim response",
        .input = "HTTP/1.1 100 Continue\r\n\r\n",
        .eof = true,
        .events = "INTERIM 100, ERROR",
        .error = HCONN_EREMOTE_DISCONNECTED,
        .errmsg = "after an interim 100 response",
    },

    /* -- Status lines --------------------------------------------------- */
    {
        .name = "garbage status line",
        .input = "garbage\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_STATUS_LINE,
        .errmsg = "status line: does not start with \"HTTP/\" (got \"g\")",
    },
    {
        .name = "status code of 2 digits",
        .input = "HTTP/1.1 20\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_STATUS_LINE,
        .errmsg = "status code \"20\" is not 3 digits",
    },
    {
        .name = "status code of 4 digits",
        .input = "HTTP/1.1 2000 X\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_STATUS_LINE,
        .errmsg = "status code \"2000\" is not 3 digits",
    },
    {
        .name = "status code below 100",
        .input = "HTTP/1.1 099 Low\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_STATUS_LINE,
        .errmsg = "out of range",
    },
    {
        .name = "status code not a number",
        .input = "HTTP/1.1 2x0 OK\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_STATUS_LINE,
    },
    {
        .name = "ICY",
        .input = "ICY 200 OK\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_STATUS_LINE,
        .errmsg = "(got \"I\")",
    },
    {
        .name = "lower-case http",
        .input = "http/1.1 200 OK\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_STATUS_LINE,
    },
    {
        .name = "empty line before the status line",
        .input = "\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_STATUS_LINE,
        .errmsg = "(got \"\\x0d\")",
    },
    {
        .name = "no status code",
        .input = "HTTP/1.1\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_STATUS_LINE,
        .errmsg = "no status code",
    },
    {
        .name = "two spaces after the version",
        .input = "HTTP/1.1  200 OK\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_STATUS_LINE,
    },
    {
        .name = "malformed version",
        .input = "HTTP/1.10 200 OK\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_STATUS_LINE,
        .errmsg = "status line: malformed version \"HTTP/1.10\"",
    },
    {
        .name = "version without minor",
        .input = "HTTP/2 200 OK\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_STATUS_LINE,
        .errmsg = "malformed version \"HTTP/2\"",
    },
    {
        .name = "HTTP/2.0",
        .input = "HTTP/2.0 200 OK\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EUNKNOWN_PROTOCOL,
        .errmsg = "status line: version \"HTTP/2.0\" not supported",
    },
    {
        .name = "HTTP/0.9",
        .input = "HTTP/0.9 200 OK\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EUNKNOWN_PROTOCOL,
        .errmsg = "version \"HTTP/0.9\" not supported",
    },
    {
        .name = "HTTP/1.2 is handled as 1.1",
        .input = "HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n",
        .events = "HEAD 200 LENGTH, END",
        .heads = "HTTP/1.1 200 OK\nContent-Length: 0\n",
        .keep_alive = true,
    },
    {
        .name = "no reason and no space",
        .input = "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
        .events = "HEAD 200 LENGTH, END",
        .heads = "HTTP/1.1 200 \nContent-Length: 0\n",
        .keep_alive = true,
    },
    {
        .name = "empty reason",
        .input = "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n",
        .events = "HEAD 404 LENGTH, END",
        .heads = "HTTP/1.1 404 \nContent-Length: 0\n",
        .keep_alive = true,
    },
    {
        .name = "reason with spaces and tabs",
        .input = "HTTP/1.1 500 Internal\tServer  Error\r\n"
                 "Content-Length: 0\r\n\r\n",
        .events = "HEAD 500 LENGTH, END",
        .heads = "HTTP/1.1 500 Internal\tServer  Error\nContent-Length: 0\n",
        .keep_alive = true,
    },
    {
        .name = "NUL in the reason",
        BYTES("HTTP/1.1 200 O\0K\r\n\r\n"),
        .events = "ERROR",
        .error = HCONN_EBAD_STATUS_LINE,
        .errmsg = "reason contains NUL at byte 14",
    },
    {
        .name = "bare CR in the reason",
        .input = "HTTP/1.1 200 O\rK\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_STATUS_LINE,
        .errmsg = "reason contains CR",
    },

    /* -- EOF before the head ends --------------------------------------- */
    {
        .name = "EOF before any byte",
        .input = "",
        .eof = true,
        .events = "ERROR",
        .error = HCONN_EREMOTE_DISCONNECTED,
        .errmsg = "without a response",
    },
    {
        .name = "EOF inside the status line",
        .input = "HTTP/1.1 2",
        .eof = true,
        .events = "ERROR",
        .error = HCONN_EREMOTE_DISCONNECTED,
        .errmsg = "after 10 bytes of the response head",
    },
    {
        .name = "EOF mid-head",
        .input = "HTTP/1.1 200 OK\r\nContent-Le",
        .eof = true,
        .events = "ERROR",
        .error = HCONN_EREMOTE_DISCONNECTED,
        .errmsg = "after 27 bytes of the response head",
    },
    {
        .name = "EOF before the blank line",
        .input = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n",
        .eof = true,
        .events = "ERROR",
        .error = HCONN_EREMOTE_DISCONNECTED,
    },

    /* -- Header fields -------------------------------------------------- */
    {
        .name = "duplicates, order and case kept",
        .input = "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX-Mixed-CASE: v\r\n"
                 "set-cookie: b=2\r\nContent-Length: 0\r\n\r\n",
        .events = "HEAD 200 LENGTH, END",
        .heads = "HTTP/1.1 200 OK\nSet-Cookie: a=1\nX-Mixed-CASE: v\n"
                 "set-cookie: b=2\nContent-Length: 0\n",
        .keep_alive = true,
    },
    {
        .name = "value OWS trimmed, inner whitespace kept",
        .input = "HTTP/1.1 200 OK\r\nX-A: \t v  a l \t \r\nX-Empty:\r\n"
                 "X-Spaces:    \r\nX-B:tight\r\nContent-Length: 0\r\n\r\n",
        .events = "HEAD 200 LENGTH, END",
        .heads = "HTTP/1.1 200 OK\nX-A: v  a l\nX-Empty: \nX-Spaces: \n"
                 "X-B: tight\nContent-Length: 0\n",
        .keep_alive = true,
    },
    {
        .name = "obs-fold continues the previous value",
        .input = "HTTP/1.1 200 OK\r\nX-Folded: first\r\n   second \r\n"
                 "\tthird\r\nX-After: z\r\nContent-Length: 0\r\n\r\n",
        .events = "HEAD 200 LENGTH, END",
        .heads = "HTTP/1.1 200 OK\nX-Folded: first second third\n"
                 "X-After: z\nContent-Length: 0\n",
        .keep_alive = true,
    },
    {
        .name = "obs-fold onto an empty value",
        .input = "HTTP/1.1 200 OK\r\nX-Folded:\r\n value\r\n"
                 "Content-Length: 0\r\n\r\n",
        .events = "HEAD 200 LENGTH, END",
        .heads = "HTTP/1.1 200 OK\nX-Folded: value\nContent-Length: 0\n",
        .keep_alive = true,
    },
    {
        .name = "obs-fold in a framing field",
        .input = "HTTP/1.1 200 OK\r\nContent-Length:\r\n 3\r\n\r\nabc",
        .events = "HEAD 200 LENGTH, DATA, END",
        .body = "abc",
        .keep_alive = true,
    },
    {
        .name = "obs-fold before any field",
        .input = "HTTP/1.1 200 OK\r\n folded\r\nContent-Length: 0\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_HEADER,
        .errmsg = "header line 1: continuation line before any field",
    },
    {
        .name = "space before colon",
        .input = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                 "X-Foo : bar\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_HEADER,
        .errmsg = "header line 2: whitespace between field name \"X-Foo\" "
                  "and colon",
    },
    {
        .name = "space inside a field name",
        .input = "HTTP/1.1 200 OK\r\nX Foo: bar\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_HEADER,
        .errmsg = "header line 1: invalid character in field name at byte 1",
    },
    {
        .name = "no colon",
        .input = "HTTP/1.1 200 OK\r\nA: b\r\nC: d\r\nNoColonHere\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_HEADER,
        .errmsg = "header line 3: no colon",
    },
    {
        .name = "empty field name",
        .input = "HTTP/1.1 200 OK\r\n: value\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_HEADER,
        .errmsg = "empty field name",
    },
    {
        .name = "NUL in a value",
        BYTES("HTTP/1.1 200 OK\r\nX-A: a\0b\r\n\r\n"),
        .events = "ERROR",
        .error = HCONN_EBAD_HEADER,
        .errmsg = "header line 1: value contains NUL at byte 6",
    },
    {
        .name = "bare CR in a value",
        .input = "HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_HEADER,
        .errmsg = "value contains CR",
    },
    {
        .name = "bare LF line endings",
        .input = "HTTP/1.1 200 OK\nContent-Length: 4\nX-A:  b \n\nbody",
        .events = "HEAD 200 LENGTH, DATA, END",
        .heads = "HTTP/1.1 200 OK\nContent-Length: 4\nX-A: b\n",
        .body = "body",
        .keep_alive = true,
    },
    {
        .name = "mixed line endings",
        .input = "HTTP/1.1 200 OK\nContent-Length: 4\r\nX-A: b\n\r\nbody",
        .events = "HEAD 200 LENGTH, DATA, END",
        .body = "body",
        .keep_alive = true,
    },

    /* -- Transfer-Encoding ---------------------------------------------- */
    {
        .name = "chunked with extensions and trailers",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5;name=value\r\nhello\r\n"
                 "6 ; a=\"b;c\"\r\n world\r\n"
                 "0;last\r\nX-Checksum: abc\r\nX-Other:  d \r\n\r\n",
        .events = "HEAD 200 CHUNKED, DATA, END",
        .body = "hello world",
        .trailers = "X-Checksum: abc\nX-Other: d\n",
        .keep_alive = true,
        .ndata = 2,
    },
    {
        .name = "chunked, no trailers, stray bytes stay",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3\r\nabc\r\n0\r\n\r\nHTTP/1.1",
        .events = "HEAD 200 CHUNKED, DATA, END",
        .body = "abc",
        .keep_alive = true,
        .leftover = 8,
        .ndata = 1,
    },
    {
        .name = "chunked, upper-case hex and coding",
        .input = "HTTP/1.1 200 OK\r\nTRANSFER-ENCODING: Chunked\r\n\r\n"
                 "A\r\n0123456789\r\n0000000000000001\r\n!\r\n0\r\n\r\n",
        .events = "HEAD 200 CHUNKED, DATA, END",
        .body = "0123456789!",
        .keep_alive = true,
        .ndata = 2,
    },
    {
        .name = "chunked with bare LF",
        .input = "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n"
                 "2\nab\n1\nc\n0\nX-T: 1\n\n",
        .events = "HEAD 200 CHUNKED, DATA, END",
        .body = "abc",
        .trailers = "X-T: 1\n",
        .keep_alive = true,
    },
    {
        .name = "chunked with empty list elements",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: , chunked,\r\n\r\n"
                 "0\r\n\r\n",
        .events = "HEAD 200 CHUNKED, END",
        .keep_alive = true,
    },
    {
        .name = "chunked HTTP/1.0: parsed, then closed",
        .input = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
        .events = "HEAD 200 CHUNKED, DATA, END",
        .body = "x",
    },
    {
        .name = "chunked with Connection: close",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                 "Connection: close\r\n\r\n1\r\nx\r\n0\r\n\r\n",
        .events = "HEAD 200 CHUNKED, DATA, END",
        .body = "x",
    },
    {
        .name = "Content-Length with chunked",
        .input = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EBAD_FRAMING,
        .errmsg = "both Transfer-Encoding and Content-Length",
    },
    {
        .name = "Transfer-Encoding gzip",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EUNKNOWN_TRANSFER_ENCODING,
        .errmsg = "Transfer-Encoding \"gzip\": unsupported coding \"gzip\"",
    },
    {
        .name = "Transfer-Encoding gzip, chunked",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EUNKNOWN_TRANSFER_ENCODING,
    },
    {
        .name = "Transfer-Encoding over two fields",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EUNKNOWN_TRANSFER_ENCODING,
    },
    {
        .name = "chunked not last",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EUNKNOWN_TRANSFER_ENCODING,
    },
    {
        .name = "chunked twice",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EUNKNOWN_TRANSFER_ENCODING,
        .errmsg = "chunked applied twice",
    },
    {
        .name = "Transfer-Encoding identity",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EUNKNOWN_TRANSFER_ENCODING,
    },
    {
        .name = "empty Transfer-Encoding",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\n",
        .events = "ERROR",
        .error = HCONN_EUNKNOWN_TRANSFER_ENCODING,
        .errmsg = "no coding",
    },

    /* -- Chunk syntax --------------------------------------------------- */
    {
        .name = "chunk size zz",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "zz\r\n",
        .events = "HEAD 200 CHUNKED, ERROR",
        .error = HCONN_EBAD_CHUNK,
        .errmsg = "chunk size \"zz\": not a hex number",
    },
    {
        .name = "empty chunk size",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "\r\n",
        .events = "HEAD 200 CHUNKED, ERROR",
        .error = HCONN_EBAD_CHUNK,
        .errmsg = "chunk size \"\": not a hex number",
    },
    {
        .name = "chunk size of 17 hex digits",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "00000000000000005\r\nhello\r\n0\r\n\r\n",
        .events = "HEAD 200 CHUNKED, ERROR",
        .error = HCONN_EBAD_CHUNK,
        .errmsg = "more than 16 hex digits",
    },
    {
        .name = "chunk size above INT64_MAX",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "8000000000000000\r\n",
        .events = "HEAD 200 CHUNKED, ERROR",
        .error = HCONN_EBAD_CHUNK,
        .errmsg = "too large",
    },
    {
        .name = "chunk size UINT64_MAX",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "ffffffffffffffff\r\n",
        .events = "HEAD 200 CHUNKED, ERROR",
        .error = HCONN_EBAD_CHUNK,
        .errmsg = "too large",
    },
    {
        .name = "chunk size with a sign",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "-5\r\n",
        .events = "HEAD 200 CHUNKED, ERROR",
        .error = HCONN_EBAD_CHUNK,
    },
    {
        .name = "chunk size with junk after it",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5 x\r\nhello\r\n",
        .events = "HEAD 200 CHUNKED, ERROR",
        .error = HCONN_EBAD_CHUNK,
        .errmsg = "unexpected character at byte 2",
    },
    {
        .name = "no CRLF after chunk data",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5\r\nhelloX\r\n0\r\n\r\n",
        .events = "HEAD 200 CHUNKED, DATA, ERROR",
        .body = "hello",
        .error = HCONN_EBAD_CHUNK,
        .errmsg = "no CRLF after chunk data",
    },
    {
        .name = "CR then junk after chunk data",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5\r\nhello\r\r0\r\n\r\n",
        .events = "HEAD 200 CHUNKED, DATA, ERROR",
        .body = "hello",
        .error = HCONN_EBAD_CHUNK,
    },
    {
        .name = "bad trailer line",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "1\r\nx\r\n0\r\nX-Ok: 1\r\nbroken trailer\r\n\r\n",
        .events = "HEAD 200 CHUNKED, DATA, ERROR",
        .body = "x",
        .error = HCONN_EBAD_HEADER,
        .errmsg = "trailer line 2: no colon",
    },
    {
        .name = "truncated chunk data",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "2\r\nab\r\n5\r\nhel",
        .eof = true,
        .events = "HEAD 200 CHUNKED, DATA, ERROR",
        .body = "abhel",
        .error = HCONN_EINCOMPLETE_READ,
        .errmsg = "received 5 bytes of a chunked body",
    },
    {
        .name = "truncated chunk-size line",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "2\r\nab\r\n1",
        .eof = true,
        .events = "HEAD 200 CHUNKED, DATA, ERROR",
        .body = "ab",
        .error = HCONN_EINCOMPLETE_READ,
        .errmsg = "received 2 bytes of a chunked body",
    },
    {
        .name = "truncated before the CRLF after data",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "2\r\nab\r",
        .eof = true,
        .events = "HEAD 200 CHUNKED, DATA, ERROR",
        .body = "ab",
        .error = HCONN_EINCOMPLETE_READ,
    },
    {
        .name = "truncated trailer section",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "2\r\nab\r\n0\r\nX-T: 1\r\n",
        .eof = true,
        .events = "HEAD 200 CHUNKED, DATA, ERROR",
        .body = "ab",
        .error = HCONN_EINCOMPLETE_READ,
    },
    {
        .name = "chunked body with no chunk before EOF",
        .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        .eof = true,
        .events = "HEAD 200 CHUNKED, ERROR",
        .error = HCONN_EINCOMPLETE_READ,
        .errmsg = "received 0 bytes of a chunked body",
    },
};

/* ---- The runner --------------------------------------------------------- */

enum feed_mode {
    FEED_ALL,    /* everything in one call, EOF with it */
    FEED_BYTES,  /* one byte per call, EOF in a call of its own */
    FEED_RANDOM, /* random-size pieces from a fixed seed */
    FEED_MOVED,  /* the same pieces, the unconsumed bytes moved to a new
                    buffer (the old one wiped) before every call, as
                    joining an evbuffer's chains may move them */
};

static const char *const feed_names[] = {"all at once", "byte by byte",
                                         "random pieces", "moved pieces"};

/* What one run produced; three runs of a case must agree. */
struct response_run {
    struct sbuf events;   /* kinds, collapsed DATA */
    struct sbuf heads;    /* every head, as in response_case.heads */
    struct sbuf body;     /* DATA concatenated */
    struct sbuf trailers; /* END's fields */
    int error;            /* ERROR's code */
    char errmsg[192];     /* ERROR's message */
    bool keep_alive;      /* after END */
    bool ended;           /* the run ended with END */
    size_t leftover;      /* unconsumed bytes at the end */
    size_t ndata;         /* DATA events */
    uint64_t body_received;
    enum http1_framing framing;
};

/* Framing is part of the HEAD token so the table pins it too. */
static const char *
framing_name(enum http1_framing f)
{
    switch (f) {
    case HTTP1_FRAMING_NONE:
        return "NONE";
    case HTTP1_FRAMING_LENGTH:
        return "LENGTH";
    case HTTP1_FRAMING_CHUNKED:
        return "CHUNKED";
    case HTTP1_FRAMING_CLOSE:
        return "CLOSE";
    }
    return "?";
}

/* Events must point into the bytes they consumed and nowhere else. */
static bool
in_bytes(const char *p, size_t n, const char *lo, const char *hi)
{
    return p >= lo && p <= hi && n <= (size_t)(hi - p);
}

/* Appends fields as "Name: unfolded value\n", checking they lie in
 * [lo, hi). */
static void
dump_fields(const char *who, const struct http1_header *h, size_t n,
            const char *lo, const char *hi, struct sbuf *out)
{
    for (size_t i = 0; i < n; i++) {
        char *v = malloc(h[i].value_len + 1);
        size_t vl;

        assert_non_null(v);
        if (!in_bytes(h[i].name, h[i].name_len, lo, hi) ||
            !in_bytes(h[i].value, h[i].value_len, lo, hi))
            fail_msg("%s: field %zu points outside the consumed bytes", who, i);
        vl = http1_unfold_value(v, h[i].value, h[i].value_len);
        sb_add(out, h[i].name, h[i].name_len);
        sb_add(out, ": ", 2);
        sb_add(out, v, vl);
        sb_add(out, "\n", 1);
        free(v);
    }
}

/* Tokens are joined as the table writes them: "HEAD 200 LENGTH, END". */
static void
add_event(struct response_run *r, const char *token)
{
    if (r->events.len > 0)
        sb_add(&r->events, ", ", 2);
    sb_add(&r->events, token, strlen(token));
}

/* Records one event; buf[0..consumed) are the bytes it consumed. */
static void
record_event(const char *who, const struct http1_parser *p,
             const struct http1_event *ev, const char *buf, size_t consumed,
             struct response_run *r)
{
    const char *hi = buf + consumed;
    char token[64];

    switch (ev->kind) {
    case HTTP1_NEED_DATA:
        return;
    case HTTP1_INTERIM:
    case HTTP1_HEAD:
        if (!in_bytes(ev->reason, ev->reason_len, buf, hi))
            fail_msg("%s: reason points outside the head", who);
        if (ev->version != 10 && ev->version != 11)
            fail_msg("%s: version %d", who, ev->version);
        sb_addf(&r->heads, "HTTP/1.%d %d ", ev->version % 10, ev->status);
        sb_add(&r->heads, ev->reason, ev->reason_len);
        sb_add(&r->heads, "\n", 1);
        dump_fields(who, ev->headers, ev->nheaders, buf, hi, &r->heads);
        if (ev->kind == HTTP1_INTERIM) {
            snprintf(token, sizeof token, "INTERIM %d", ev->status);
        } else {
            snprintf(token, sizeof token, "HEAD %d %s", ev->status,
                     framing_name(p->framing));
            r->framing = p->framing;
            if (p->status != ev->status || p->version != ev->version)
                fail_msg("%s: parser fields disagree with HEAD", who);
            if (http1_parser_keep_alive(p))
                fail_msg("%s: keep_alive true before END", who);
        }
        add_event(r, token);
        break;
    case HTTP1_DATA:
        if (ev->len == 0 || ev->data + ev->len != hi ||
            !in_bytes(ev->data, ev->len, buf, hi))
            fail_msg("%s: DATA of %zu bytes does not end where consumed "
                     "does",
                     who, ev->len);
        if (r->ndata++ == 0 ||
            strcmp(r->events.s + r->events.len - 4, "DATA") != 0)
            add_event(r, "DATA");
        sb_add(&r->body, ev->data, ev->len);
        break;
    case HTTP1_END:
        add_event(r, "END");
        dump_fields(who, ev->headers, ev->nheaders, buf, hi, &r->trailers);
        r->keep_alive = http1_parser_keep_alive(p);
        r->ended = true;
        if (p->body_received != r->body.len)
            fail_msg("%s: body_received %llu, DATA gave %zu", who,
                     (unsigned long long)p->body_received, r->body.len);
        break;
    case HTTP1_ERROR:
        add_event(r, "ERROR");
        r->error = ev->error;
        snprintf(r->errmsg, sizeof r->errmsg, "%s", p->errmsg);
        if (ev->error >= 0 || consumed != 0)
            fail_msg("%s: ERROR with code %d, consumed %zu", who, ev->error,
                     consumed);
        if (http1_parser_keep_alive(p))
            fail_msg("%s: keep_alive true after ERROR", who);
        break;
    }
}

/* A fixed-seed generator: random pieces, but the same ones every run. */
static uint32_t
xorshift32(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Feeds the case's input one way, as the daemon would. */
static void
run_feed(const struct response_case *c, const char *in, size_t n,
         enum feed_mode mode, struct response_run *r)
{
    struct http1_parser p;
    char *buf = malloc(n + 1);
    char who[160];
    size_t have = 0, fed = 0;
    uint32_t rng = 0x2545f491;
    bool terminal = false;
    enum http1_event_kind tkind = HTTP1_NEED_DATA;
    int terror = 0;

    assert_non_null(buf);
    snprintf(who, sizeof who, "%s [%s]", c->name, feed_names[mode]);
    memset(r, 0, sizeof *r);
    memset(&p, 0, sizeof p);
    http1_parser_init(&p, c->head, c->request_close);
    for (;;) {
        bool eof;

        if (fed < n) {
            size_t piece = n - fed;

            if (mode == FEED_BYTES) {
                piece = 1;
            } else if (mode == FEED_RANDOM || mode == FEED_MOVED) {
                uint32_t x = xorshift32(&rng);

                piece = x % 8 == 0 ? 1 + (x >> 3) % 4096 : 1 + (x >> 3) % 23;
                if (piece > n - fed)
                    piece = n - fed;
            }
            memcpy(buf + have, in + fed, piece);
            have += piece;
            fed += piece;
            eof = mode == FEED_ALL && c->eof && fed == n;
        } else if (c->eof && !terminal) {
            eof = true;
        } else {
            break;
        }
        for (;;) {
            size_t consumed = (size_t)-1;
            struct http1_event ev;

            if (mode == FEED_MOVED) {
                char *moved = malloc(n + 1);

                assert_non_null(moved);
                memcpy(moved, buf, have);
                memset(buf, 'X', n + 1);
                free(buf);
                buf = moved;
            }
            ev = http1_parser_next(&p, buf, have, eof, &consumed);

            if (consumed > have)
                fail_msg("%s: consumed %zu of %zu", who, consumed, have);
            if (terminal) {
                /* END and ERROR repeat, consuming nothing. */
                if (ev.kind != tkind || consumed != 0 ||
                    (tkind == HTTP1_ERROR && ev.error != terror) ||
                    (tkind == HTTP1_END && ev.nheaders != 0))
                    fail_msg("%s: terminal event not repeated", who);
                break;
            }
            record_event(who, &p, &ev, buf, consumed, r);
            memmove(buf, buf + consumed, have - consumed);
            have -= consumed;
            if (ev.kind == HTTP1_NEED_DATA) {
                if (eof)
                    fail_msg("%s: NEED_DATA after EOF", who);
                break;
            }
            if (ev.kind == HTTP1_END || ev.kind == HTTP1_ERROR) {
                terminal = true;
                tkind = ev.kind;
                terror = ev.error;
            }
        }
    }
    if (!terminal)
        fail_msg("%s: no END or ERROR (events: %s)", who, sb_str(&r->events));
    r->leftover = have;
    r->body_received = p.body_received;
    free(buf);
}

/* The transcripts are heap strings. */
static void
run_free(struct response_run *r)
{
    sb_free(&r->events);
    sb_free(&r->heads);
    sb_free(&r->body);
    sb_free(&r->trailers);
}

/* Prints both strings, so a failing case shows what differs. */
static void
expect_same(const char *name, const char *what, const char *got,
            const char *want)
{
    if (strcmp(got, want) != 0)
        fail_msg("%s: %s:\n  got:  \"%s\"\n  want: \"%s\"", name, what, got,
                 want);
}

/* Runs a case all three ways; the runs must agree, then match the case. */
static void
check_response(const struct response_case *c)
{
    size_t n = c->input_len ? c->input_len : strlen(c->input);
    struct response_run r[FEED_MOVED + 1];
    char who[160];

    for (int m = FEED_ALL; m <= FEED_MOVED; m++)
        run_feed(c, c->input, n, (enum feed_mode)m, &r[m]);
    for (int m = FEED_BYTES; m <= FEED_MOVED; m++) {
        snprintf(who, sizeof who, "%s [%s vs all at once]", c->name,
                 feed_names[m]);
        expect_same(who, "events", sb_str(&r[m].events), sb_str(&r[0].events));
        expect_same(who, "heads", sb_str(&r[m].heads), sb_str(&r[0].heads));
        if (r[m].body.len != r[0].body.len ||
            memcmp(sb_str(&r[m].body), sb_str(&r[0].body), r[0].body.len))
            fail_msg("%s: bodies differ", who);
        expect_same(who, "trailers", sb_str(&r[m].trailers),
                    sb_str(&r[0].trailers));
        expect_same(who, "errmsg", r[m].errmsg, r[0].errmsg);
        if (r[m].error != r[0].error || r[m].keep_alive != r[0].keep_alive ||
            r[m].body_received != r[0].body_received ||
            (r[0].ended && r[m].leftover != r[0].leftover))
            fail_msg("%s: error, keep_alive, body or leftover differ", who);
    }

    expect_same(c->name, "events", sb_str(&r[0].events), c->events);
    if (c->heads != NULL)
        expect_same(c->name, "heads", sb_str(&r[0].heads), c->heads);
    expect_same(c->name, "body", sb_str(&r[0].body), c->body ? c->body : "");
    expect_same(c->name, "trailers", sb_str(&r[0].trailers),
                c->trailers ? c->trailers : "");
    if (r[0].error != c->error)
        fail_msg("%s: error %s, want %s", c->name, hconn_error_name(r[0].error),
                 hconn_error_name(c->error));
    if (c->errmsg != NULL && strstr(r[0].errmsg, c->errmsg) == NULL)
        fail_msg("%s: errmsg \"%s\" lacks \"%s\"", c->name, r[0].errmsg,
                 c->errmsg);
    if (c->error != 0 && r[0].errmsg[0] == '\0')
        fail_msg("%s: empty errmsg", c->name);
    if (r[0].keep_alive != c->keep_alive)
        fail_msg("%s: keep_alive %d, want %d", c->name, r[0].keep_alive,
                 c->keep_alive);
    if (r[0].ended && r[0].leftover != c->leftover)
        fail_msg("%s: %zu bytes left over, want %zu", c->name, r[0].leftover,
                 c->leftover);
    /* DATA hands over everything available in the current segment. */
    if (c->ndata != 0 && r[0].ndata != c->ndata)
        fail_msg("%s: %zu DATA events at once, want %zu", c->name, r[0].ndata,
                 c->ndata);
    if ((r[0].framing == HTTP1_FRAMING_LENGTH ||
         r[0].framing == HTTP1_FRAMING_CLOSE) &&
        r[0].ndata > 1)
        fail_msg("%s: body split into %zu DATA events", c->name, r[0].ndata);
    for (int m = FEED_ALL; m <= FEED_MOVED; m++)
        run_free(&r[m]);
}

/* One cmocka test per table row; the row is the test's state. */
static void
test_response_case(void **state)
{
    check_response(*state);
}

/* ---- Generated cases: limits -------------------------------------------- */

/* Builds "prefix" + fill x count + "suffix" in a malloc'd buffer. */
static char *
build(const char *prefix, char fill, size_t count, const char *suffix)
{
    size_t a = strlen(prefix), b = strlen(suffix);
    char *s = malloc(a + count + b + 1);

    assert_non_null(s);
    memcpy(s, prefix, a);
    memset(s + a, fill, count);
    memcpy(s + a + count, suffix, b + 1);
    return s;
}

/* Runs a case whose input was built at run time, then frees it. */
static void
check_generated(struct response_case *c, char *input)
{
    c->input = input;
    check_response(c);
    free(input);
}

/* A status line of exactly HTTP1_MAX_LINE bytes (its CRLF included, as
 * http.client counts) passes; one byte more fails. */
static void
test_status_line_limit(void **state)
{
    const size_t fixed = strlen("HTTP/1.1 200 ") + 2;
    struct response_case ok = {
        .name = "status line at the limit",
        .events = "HEAD 200 LENGTH, END",
        .keep_alive = true,
    };
    struct response_case lf = ok;
    struct response_case over = {
        .name = "status line one past the limit",
        .events = "ERROR",
        .error = HCONN_ELINE_TOO_LONG,
        .errmsg = "status line: longer than 65536 bytes",
    };

    check_generated(&ok, build("HTTP/1.1 200 ", 'R', HTTP1_MAX_LINE - fixed,
                               "\r\nContent-Length: 0\r\n\r\n"));
    lf.name = "status line at the limit, bare LF";
    check_generated(&lf, build("HTTP/1.1 200 ", 'R', HTTP1_MAX_LINE - fixed + 1,
                               "\nContent-Length: 0\r\n\r\n"));
    check_generated(&over,
                    build("HTTP/1.1 200 ", 'R', HTTP1_MAX_LINE - fixed + 1,
                          "\r\nContent-Length: 0\r\n\r\n"));
    (void)state;
}

/* The limit trips as soon as HTTP1_MAX_LINE bytes sit without a line end,
 * with no EOF and no more input; one byte less just waits. */
static void
test_line_limit_without_line_end(void **state)
{
    struct response_case full = {
        .name = "status line filling the limit, no line end",
        .events = "ERROR",
        .error = HCONN_ELINE_TOO_LONG,
    };
    struct response_case header = {
        .name = "header line filling the limit, no line end",
        .events = "ERROR",
        .error = HCONN_ELINE_TOO_LONG,
        .errmsg = "header line 1: longer than 65536 bytes",
    };
    struct response_case under = {
        .name = "one byte under the limit, then EOF",
        .eof = true,
        .events = "ERROR",
        .error = HCONN_EREMOTE_DISCONNECTED,
    };
    const size_t sl = strlen("HTTP/1.1 200 ");

    check_generated(&full,
                    build("HTTP/1.1 200 ", 'R', HTTP1_MAX_LINE - sl, ""));
    check_generated(
        &header, build("HTTP/1.1 200 OK\r\nX: ", 'v', HTTP1_MAX_LINE - 3, ""));
    check_generated(&under,
                    build("HTTP/1.1 200 ", 'R', HTTP1_MAX_LINE - sl - 1, ""));
    (void)state;
}

/* The same limit for a field line, which is counted the same way. */
static void
test_header_line_limit(void **state)
{
    const size_t fixed = strlen("X-Big: ") + 2;
    struct response_case ok = {
        .name = "header line at the limit",
        .events = "HEAD 200 LENGTH, END",
        .keep_alive = true,
    };
    struct response_case over = {
        .name = "header line one past the limit",
        .events = "ERROR",
        .error = HCONN_ELINE_TOO_LONG,
        .errmsg = "header line 2: longer than 65536 bytes",
    };

    check_generated(&ok, build("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                               "X-Big: ",
                               'v', HTTP1_MAX_LINE - fixed, "\r\n\r\n"));
    check_generated(&over, build("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                                 "X-Big: ",
                                 'v', HTTP1_MAX_LINE - fixed + 1, "\r\n\r\n"));
    (void)state;
}

/* Chunk extensions are ignored, but the chunk-size line is still a line;
 * trailer lines have the head's limit. */
static void
test_chunk_and_trailer_line_limit(void **state)
{
    const char *head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    char prefix[128], *want;
    struct response_case ok = {
        .name = "chunk-size line at the limit",
        .events = "HEAD 200 CHUNKED, DATA, END",
        .body = "hello",
        .keep_alive = true,
    };
    struct response_case over = {
        .name = "chunk-size line one past the limit",
        .events = "HEAD 200 CHUNKED, ERROR",
        .error = HCONN_ELINE_TOO_LONG,
        .errmsg = "chunk-size line: longer than 65536 bytes",
    };
    struct response_case tok = {
        .name = "trailer line at the limit",
        .events = "HEAD 200 CHUNKED, END",
        .keep_alive = true,
    };
    struct response_case tover = {
        .name = "trailer line one past the limit",
        .events = "HEAD 200 CHUNKED, ERROR",
        .error = HCONN_ELINE_TOO_LONG,
        .errmsg = "trailer line 2: longer than 65536 bytes",
    };

    snprintf(prefix, sizeof prefix, "%s5;", head);
    check_generated(
        &ok, build(prefix, 'e', HTTP1_MAX_LINE - 4, "\r\nhello\r\n0\r\n\r\n"));
    check_generated(&over, build(prefix, 'e', HTTP1_MAX_LINE - 3,
                                 "\r\nhello\r\n0\r\n\r\n"));
    snprintf(prefix, sizeof prefix, "%s0\r\nA: b\r\nX: ", head);
    want = build("A: b\nX: ", 't', HTTP1_MAX_LINE - 5, "\n");
    tok.trailers = want;
    check_generated(&tok, build(prefix, 't', HTTP1_MAX_LINE - 5, "\r\n\r\n"));
    free(want);
    check_generated(&tover, build(prefix, 't', HTTP1_MAX_LINE - 4, "\r\n\r\n"));
    (void)state;
}

/* Builds a head (or trailer section) of n "X-Hnnn: v" lines. */
static char *
build_fields(const char *prefix, size_t n, bool fold_last, const char *suffix,
             struct sbuf *dump)
{
    struct sbuf s = {0};

    sb_add(&s, prefix, strlen(prefix));
    for (size_t i = 0; i < n; i++) {
        if (fold_last && i == n - 1) {
            sb_addf(&s, " folded\r\n");
            if (dump != NULL) {
                dump->len--; /* the fold joins the previous line */
                sb_addf(dump, " folded\n");
            }
            continue;
        }
        sb_addf(&s, "X-H%03zu: v%zu\r\n", i, i);
        if (dump != NULL)
            sb_addf(dump, "X-H%03zu: v%zu\n", i, i);
    }
    sb_add(&s, suffix, strlen(suffix));
    return s.s;
}

/* http.client: "got more than 100 headers"; folded lines count. */
static void
test_header_count_limit(void **state)
{
    struct sbuf want = {0};
    struct response_case ok = {
        .name = "100 header lines",
        .eof = true,
        .events = "HEAD 200 CLOSE, END",
    };
    struct response_case folded = {
        .name = "99 fields and a folded line",
        .eof = true,
        .events = "HEAD 200 CLOSE, END",
    };
    struct response_case over = {
        .name = "101 header lines",
        .events = "ERROR",
        .error = HCONN_ETOO_MANY_HEADERS,
        .errmsg = "headers: more than 100 field lines",
    };
    struct response_case fover = {
        .name = "100 fields and a folded line",
        .events = "ERROR",
        .error = HCONN_ETOO_MANY_HEADERS,
    };
    struct response_case tok = {
        .name = "100 trailer lines",
        .events = "HEAD 200 CHUNKED, END",
        .keep_alive = true,
    };
    struct response_case tover = {
        .name = "101 trailer lines",
        .events = "HEAD 200 CHUNKED, ERROR",
        .error = HCONN_ETOO_MANY_HEADERS,
        .errmsg = "trailers: more than 100 field lines",
    };
    const char *chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                          "\r\n0\r\n";

    sb_add(&want, "HTTP/1.1 200 OK\n", 16);
    ok.input = build_fields("HTTP/1.1 200 OK\r\n", HTTP1_MAX_HEADERS, false,
                            "\r\n", &want);
    ok.heads = want.s;
    check_response(&ok);
    free((char *)ok.input);
    sb_free(&want);

    sb_add(&want, "HTTP/1.1 200 OK\n", 16);
    folded.input = build_fields("HTTP/1.1 200 OK\r\n", HTTP1_MAX_HEADERS, true,
                                "\r\n", &want);
    folded.heads = want.s;
    check_response(&folded);
    free((char *)folded.input);
    sb_free(&want);

    check_generated(&over,
                    build_fields("HTTP/1.1 200 OK\r\n", HTTP1_MAX_HEADERS + 1,
                                 false, "\r\n", NULL));
    check_generated(&fover,
                    build_fields("HTTP/1.1 200 OK\r\n", HTTP1_MAX_HEADERS + 1,
                                 true, "\r\n", NULL));
    tok.input = build_fields(chunked, HTTP1_MAX_HEADERS, false, "\r\n", &want);
    tok.trailers = want.s;
    check_response(&tok);
    free((char *)tok.input);
    sb_free(&want);
    check_generated(&tover, build_fields(chunked, HTTP1_MAX_HEADERS + 1, false,
                                         "\r\n", NULL));
    (void)state;
}

/* A large body arrives as whatever pieces the caller has, never capped. */
static void
test_large_body(void **state)
{
    enum { N = 1 << 20 };
    char head[64];
    struct response_case c = {
        .name = "1 MiB Content-Length body",
        .events = "HEAD 200 LENGTH, DATA, END",
        .keep_alive = true,
        .ndata = 1,
    };
    char *in;

    snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n",
             N);
    in = build(head, 'b', N, "");
    c.body = in + strlen(head);
    c.input = in;
    check_response(&c);
    free(in);
    (void)state;
}

/* ---- Parser API details ------------------------------------------------- */

/* After END or ERROR the parser repeats itself and consumes nothing. */
static void
test_terminal_repeats(void **state)
{
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxy";
    static const char bad[] = "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n";
    struct http1_parser p;
    struct http1_event ev;
    size_t used, off = 0;

    http1_parser_init(&p, false, false);
    ev = http1_parser_next(&p, ok, sizeof ok - 1, false, &used);
    assert_int_equal(ev.kind, HTTP1_HEAD);
    assert_false(http1_parser_keep_alive(&p));
    assert_int_equal(p.framing, HTTP1_FRAMING_LENGTH);
    assert_int_equal(p.content_length, 1);
    off += used;
    ev = http1_parser_next(&p, ok + off, sizeof ok - 1 - off, false, &used);
    assert_int_equal(ev.kind, HTTP1_DATA);
    assert_int_equal(ev.len, 1);
    off += used;
    for (int i = 0; i < 3; i++) {
        ev =
            http1_parser_next(&p, ok + off, sizeof ok - 1 - off, i == 2, &used);
        assert_int_equal(ev.kind, HTTP1_END);
        assert_int_equal(used, 0);
        assert_int_equal(ev.nheaders, 0);
        assert_true(http1_parser_keep_alive(&p));
    }

    http1_parser_init(&p, false, false);
    for (int i = 0; i < 3; i++) {
        ev = http1_parser_next(&p, bad, sizeof bad - 1, i == 2, &used);
        assert_int_equal(ev.kind, HTTP1_ERROR);
        assert_int_equal(ev.error, HCONN_EBAD_CONTENT_LENGTH);
        assert_int_equal(used, 0);
        assert_int_equal(p.state, HTTP1_S_FAILED);
        assert_false(http1_parser_keep_alive(&p));
    }
    (void)state;
}

/* Parses head (a response head, ending in CRLF CRLF) and returns its
 * event; the message, on error, goes to errmsg. */
static struct http1_event
parse_head(const char *head, size_t n, char *errmsg, size_t errlen)
{
    struct http1_parser p;
    struct http1_event ev;
    size_t used;

    http1_parser_init(&p, false, false);
    ev = http1_parser_next(&p, head, n, false, &used);
    snprintf(errmsg, errlen, "%s", p.errmsg);
    return ev;
}

/* Field names take exactly RFC 9110's tchar bytes, whatever the byte;
 * reasons and values are refused at their first NUL or CR, whichever
 * comes first, and say which and where. */
static void
test_field_bytes(void **state)
{
    static const struct {
        const char *value;
        size_t len;
        const char *errmsg;
    } values[] = {
        {"a\0b\rc", 5, "header line 1: value contains NUL at byte 4"},
        {"a\rb\0c", 5, "header line 1: value contains CR at byte 4"},
        {"abc\r", 4, "header line 1: value contains CR at byte 6"},
        {"\0", 1, "header line 1: value contains NUL at byte 3"},
    };
    char head[128], err[256];
    struct http1_event ev;
    int n;

    for (int c = 0; c < 256; c++) {
        bool tchar = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                     (c >= 'A' && c <= 'Z') ||
                     (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);

        n = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\nX%cY: v\r\nContent-Length: 0\r\n\r\n",
                     c == 0 ? '@' : c);
        if (c == 0) /* %c of NUL: put it in by hand */
            head[18] = '\0';
        ev = parse_head(head, (size_t)n, err, sizeof err);
        if (c == ':' || c == '\n') /* a name "X", or a line of its own */
            continue;
        assert_int_equal(ev.kind, tchar ? HTTP1_HEAD : HTTP1_ERROR);
        if (tchar)
            assert_int_equal(ev.headers[0].name_len, 3);
    }
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        n = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nX: ");
        memcpy(head + n, values[i].value, values[i].len);
        n += (int)values[i].len;
        n += snprintf(head + n, sizeof head - (size_t)n,
                      "\r\nContent-Length: 0\r\n\r\n");
        ev = parse_head(head, (size_t)n, err, sizeof err);
        assert_int_equal(ev.kind, HTTP1_ERROR);
        assert_int_equal(ev.error, HCONN_EBAD_HEADER);
        assert_string_equal(err, values[i].errmsg);
    }
    n = snprintf(head, sizeof head, "HTTP/1.1 200 O\rK\r\n\r\n");
    ev = parse_head(head, (size_t)n, err, sizeof err);
    assert_int_equal(ev.error, HCONN_EBAD_STATUS_LINE);
    assert_string_equal(err, "status line: reason contains CR at byte 14");
    /* Names and codings match in any case, spelt as the RFC or not. */
    n = snprintf(head, sizeof head,
                 "HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 7"
                 "\r\ncontent-length: 8\r\n\r\n");
    ev = parse_head(head, (size_t)n, err, sizeof err);
    assert_int_equal(ev.error, HCONN_EBAD_CONTENT_LENGTH);
    n = snprintf(head, sizeof head,
                 "HTTP/1.1 200 OK\r\ncontent-length: 7"
                 "\r\nTRANSFER-encoding: CHUNKED\r\n\r\n");
    ev = parse_head(head, (size_t)n, err, sizeof err);
    assert_int_equal(ev.error, HCONN_EBAD_FRAMING);
    (void)state;
}

/* ---- Generated cases: bytes at every position --------------------------- */

/* The bytes a head line is searched for (NUL, CR, LF) or that the
 * searches look at twice (every control, tab, DEL, bytes from 0x80), and
 * for names the tchars beside letters and '-': each is put at every
 * position of values, reasons and names whose lengths straddle the 4-,
 * 8- and 16-byte steps of the scans. The outcome is worked out here
 * byte by byte, as RFC 9112 reads a line, and every case is run the four
 * ways, so a step that resumes in another piece is tried too. */
static const unsigned char probe_bytes[] = {
    '\0', '\r', '\n', '\t', ' ', 0x01, 0x1f, 0x7f, 0x80, 0xff,
    ':',  '@',  '"',  '_',  '9', '!',  '~',  '-',  'Z',
};
static const size_t probe_lens[] = {1,  3,  4,  5,  7,  8,  9, 15,
                                    16, 17, 31, 32, 33, 47, 63};

static bool
probe_is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* s[0..n) without SP and HTAB at either end, appended to out. */
static void
sb_add_trimmed(struct sbuf *out, const char *s, size_t n)
{
    while (n > 0 && (s[0] == ' ' || s[0] == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    sb_add(out, s, n);
}

/* What a probe case expects, built up by the caller. */
struct probe {
    struct response_case c;
    char name[128];
    struct sbuf input, heads, body, errmsg;
};

/* Runs the case p describes, then empties it for the next one. */
static void
probe_run(struct probe *p)
{
    p->c.name = p->name;
    p->c.input = sb_str(&p->input);
    p->c.input_len = p->input.len;
    p->c.heads = p->heads.len > 0 ? sb_str(&p->heads) : NULL;
    p->c.body = p->body.len > 0 ? sb_str(&p->body) : NULL;
    p->c.errmsg = p->errmsg.len > 0 ? sb_str(&p->errmsg) : NULL;
    p->c.eof = true;
    check_response(&p->c);
    sb_free(&p->input);
    sb_free(&p->heads);
    sb_free(&p->body);
    sb_free(&p->errmsg);
    memset(&p->c, 0, sizeof p->c);
}

/* A head whose first line break came early: line 1 was the whole head,
 * so what follows the blank line is a read-until-close body. */
static void
probe_expect_close(struct probe *p, size_t body_from)
{
    p->c.events = "HEAD 200 CLOSE, DATA, END";
    sb_add(&p->body, p->input.s + body_from, p->input.len - body_from);
}

/* The case fails with code and a message holding the formatted text. */
static void __attribute__((format(printf, 3, 4)))
probe_expect_error(struct probe *p, int code, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->c.events = "ERROR";
    p->c.error = code;
    sb_add(&p->errmsg, msg, strlen(msg));
}

/* The head's first lines as the transcript shows them: first, then
 * part[0..n) (trimmed of SP and HTAB when trim), then the rest of the
 * input's head (one "Content-Length: 0" field) unless the head ended
 * early (close: the input's rest from body_from is a body). */
static void
probe_expect_head(struct probe *p, const char *first, const char *part,
                  size_t n, bool trim, bool close, size_t body_from)
{
    sb_add(&p->heads, first, strlen(first));
    if (trim)
        sb_add_trimmed(&p->heads, part, n);
    else
        sb_add(&p->heads, part, n);
    sb_addf(&p->heads, "\n");
    if (close) {
        probe_expect_close(p, body_from);
        return;
    }
    sb_addf(&p->heads, "Content-Length: 0\n");
    p->c.events = "HEAD 200 LENGTH, END";
    p->c.keep_alive = true;
}

/* "X-Val: " and value[0..len), which holds at most one NUL, CR or LF
 * and no SP or HTAB right after it; desc names the case. */
static void
probe_value(const char *value, size_t len, const char *desc)
{
    static const char prefix[] = "HTTP/1.1 200 OK\r\nX-Val: ";
    struct probe p = {0};
    size_t f = 0;

    while (f < len && value[f] != '\0' && value[f] != '\r' && value[f] != '\n')
        f++;
    snprintf(p.name, sizeof p.name, "value of %zu bytes, %s", len, desc);
    sb_add(&p.input, prefix, strlen(prefix));
    sb_add(&p.input, value, len);
    sb_addf(&p.input, "\r\nContent-Length: 0\r\n\r\n");
    if (f < len && value[f] != '\n')
        probe_expect_error(&p, HCONN_EBAD_HEADER,
                           "header line 1: value contains %s at byte %zu",
                           value[f] == '\0' ? "NUL" : "CR",
                           strlen("X-Val: ") + f);
    else if (f + 1 < len) /* the rest of the value is a line */
        probe_expect_error(&p, HCONN_EBAD_HEADER, "header line 2: no colon");
    else
        probe_expect_head(&p, "HTTP/1.1 200 OK\nX-Val: ", value, f, true,
                          f < len, strlen(prefix) + len + 2);
    probe_run(&p);
}

/* A reason of len bytes holding c at j. */
static void
probe_reason(size_t len, size_t j, unsigned char c)
{
    static const char prefix[] = "HTTP/1.1 200 ";
    struct probe p = {0};
    char reason[64];

    memset(reason, 'r', len);
    reason[j] = (char)c;
    snprintf(p.name, sizeof p.name, "reason of %zu bytes, 0x%02x at %zu", len,
             c, j);
    sb_add(&p.input, prefix, strlen(prefix));
    sb_add(&p.input, reason, len);
    sb_addf(&p.input, "\r\nContent-Length: 0\r\n\r\n");
    if (c == '\0' || c == '\r')
        probe_expect_error(&p, HCONN_EBAD_STATUS_LINE,
                           "status line: reason contains %s at byte %zu",
                           c == '\0' ? "NUL" : "CR", strlen(prefix) + j);
    else if (c == '\n' && j + 1 < len)
        probe_expect_error(&p, HCONN_EBAD_HEADER, "header line 1: no colon");
    else
        probe_expect_head(&p, "HTTP/1.1 200 ", reason, c == '\n' ? j : len,
                          false, c == '\n', strlen(prefix) + len + 2);
    probe_run(&p);
}

/* A field name of len bytes holding c at j, then ": " and a value of
 * vlen bytes (a line shorter or longer than 16 bytes). */
static void
probe_name(size_t len, size_t j, unsigned char c, size_t vlen)
{
    static const char prefix[] = "HTTP/1.1 200 OK\r\n";
    struct probe p = {0};
    char name[64], value[64];

    for (size_t k = 0; k < len; k++)
        name[k] = k % 2 ? 'n' : 'N';
    name[j] = (char)c;
    memset(value, 'x', vlen);
    snprintf(p.name, sizeof p.name,
             "name of %zu bytes, 0x%02x at %zu, value of %zu", len, c, j, vlen);
    sb_add(&p.input, prefix, strlen(prefix));
    sb_add(&p.input, name, len);
    sb_addf(&p.input, ": ");
    sb_add(&p.input, value, vlen);
    sb_addf(&p.input, "\r\nContent-Length: 0\r\n\r\n");
    p.c.events = "ERROR";
    p.c.error = HCONN_EBAD_HEADER;
    if (probe_is_tchar(c)) {
        p.c.events = "HEAD 200 LENGTH, END";
        p.c.error = 0;
        p.c.keep_alive = true;
        sb_addf(&p.heads, "HTTP/1.1 200 OK\n");
        sb_add(&p.heads, name, len);
        sb_addf(&p.heads, ": ");
        sb_add(&p.heads, value, vlen);
        sb_addf(&p.heads, "\nContent-Length: 0\n");
    } else if (c == ':' && j == 0) {
        sb_addf(&p.errmsg, "header line 1: empty field name");
    } else if (c == ':') {
        /* The name ends early; the rest of it opens the value. */
        p.c.events = "HEAD 200 LENGTH, END";
        p.c.error = 0;
        p.c.keep_alive = true;
        sb_addf(&p.heads, "HTTP/1.1 200 OK\n");
        sb_add(&p.heads, name, j);
        sb_addf(&p.heads, ": ");
        sb_add(&p.heads, name + j + 1, len - j - 1);
        sb_addf(&p.heads, ": ");
        sb_add(&p.heads, value, vlen);
        sb_addf(&p.heads, "\nContent-Length: 0\n");
    } else if (c == '\n' && j == 0) {
        p.c.error = 0; /* a blank line: the head ends */
        sb_addf(&p.heads, "HTTP/1.1 200 OK\n");
        probe_expect_close(&p, strlen(prefix) + 1);
    } else if (c == '\n') {
        sb_addf(&p.errmsg, "header line 1: no colon");
    } else if ((c == ' ' || c == '\t') && j == 0) {
        sb_addf(&p.errmsg, "header line 1: continuation line before any field");
    } else if ((c == ' ' || c == '\t') && j + 1 == len) {
        sb_addf(&p.errmsg,
                "header line 1: whitespace between field name \"%.*s\" "
                "and colon",
                (int)j, name);
    } else {
        sb_addf(&p.errmsg,
                "header line 1: invalid character in field name at byte %zu",
                j);
    }
    probe_run(&p);
}

static void
test_bytes_at_every_position(void **state)
{
    for (size_t l = 0; l < sizeof probe_lens / sizeof *probe_lens; l++) {
        size_t len = probe_lens[l];

        for (size_t j = 0; j < len; j++) {
            for (size_t b = 0; b < sizeof probe_bytes; b++) {
                char value[64], desc[64];

                memset(value, 'v', len);
                value[j] = (char)probe_bytes[b];
                snprintf(desc, sizeof desc, "0x%02x at %zu", probe_bytes[b], j);
                probe_value(value, len, desc);
                probe_reason(len, j, probe_bytes[b]);
                /* Lengths past 33 are for the line search's 32-byte
                 * steps; a name that long is quoted cut short. */
                if (len > 33)
                    continue;
                probe_name(len, j, probe_bytes[b], 1);
                probe_name(len, j, probe_bytes[b], 20);
            }
        }
    }
    (void)state;
}

/* A control the scans let through (tab, 0x01) sits in the same 8, 16 or
 * 32 bytes as a NUL, CR or LF after it: the search goes on past the first
 * and still finds the second, at every distance. */
static void
test_byte_after_a_control(void **state)
{
    static const unsigned char controls[] = {'\t', 0x01};
    static const unsigned char ends[] = {'\0', '\r', '\n'};

    for (size_t len = 17; len <= 49; len += 16) {
        for (size_t j = 0; j < len; j++) {
            for (size_t k = j + 1; k < len; k++) {
                for (size_t a = 0; a < sizeof controls; a++) {
                    for (size_t b = 0; b < sizeof ends; b++) {
                        char value[64], desc[64];

                        memset(value, 'v', len);
                        value[j] = (char)controls[a];
                        value[k] = (char)ends[b];
                        snprintf(desc, sizeof desc,
                                 "0x%02x at %zu, 0x%02x at %zu", controls[a], j,
                                 ends[b], k);
                        probe_value(value, len, desc);
                    }
                }
            }
        }
    }
    (void)state;
}

/* Content-Length as the parser read it before reading a value in one
 * pass: the value split at commas, each element trimmed, then checked
 * digit by digit. Returns NULL and the length, or why it is refused. */
static const char *
cl_reference(const char *value, int64_t *out)
{
    const char *s = value, *end = value + strlen(value);
    bool have = false;

    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    for (;;) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *e = comma != NULL ? comma : end, *b = s;
        int64_t v = 0;

        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (b == e)
            return "empty value";
        for (; b < e; b++) {
            if (*b < '0' || *b > '9')
                return "not a number";
            if (v > (INT64_MAX - (*b - '0')) / 10)
                return "too large";
            v = v * 10 + (*b - '0');
        }
        if (have && v != *out)
            return "conflicting values";
        have = true;
        *out = v;
        if (comma == NULL)
            return NULL;
        s = comma + 1;
    }
}

/* Every Content-Length value of up to 6 bytes from digits, commas, SP,
 * HTAB and a letter (and a few near INT64_MAX) is taken or refused as
 * the element-by-element reading takes or refuses it, with its
 * message. */
static void
test_content_length_values(void **state)
{
    static const char alphabet[] = "19, \tx";
    static const char *const long_values[] = {
        "9223372036854775807",    "9223372036854775808",
        "9223372036854775807x",   "99999999999999999999x",
        "1, 9223372036854775807", "00000000000000000000000001",
    };
    const size_t na = sizeof alphabet - 1;
    char value[32];

    for (size_t len = 0; len <= 6 + sizeof long_values / sizeof *long_values;
         len++) {
        size_t count = 1;

        for (size_t k = 0; k < len && len <= 6; k++)
            count *= na;
        for (size_t c = 0; c < count; c++) {
            struct probe p = {0};
            const char *why;
            int64_t cl = 0;

            if (len <= 6) {
                for (size_t k = 0, x = c; k < len; k++, x /= na)
                    value[k] = alphabet[x % na];
                value[len] = '\0';
            } else {
                snprintf(value, sizeof value, "%s", long_values[len - 7]);
            }
            why = cl_reference(value, &cl);
            snprintf(p.name, sizeof p.name, "Content-Length \"%s\"", value);
            sb_addf(&p.input, "HTTP/1.1 200 OK\r\nContent-Length: %s\r\n\r\n",
                    value);
            if (why != NULL) {
                p.c.events = "ERROR";
                p.c.error = HCONN_EBAD_CONTENT_LENGTH;
                sb_addf(&p.errmsg, ": %s", why);
            } else if (cl == 0) {
                p.c.events = "HEAD 200 LENGTH, END";
                p.c.keep_alive = true;
            } else {
                p.c.events = "HEAD 200 LENGTH, ERROR";
                p.c.error = HCONN_EINCOMPLETE_READ;
                sb_addf(&p.errmsg, "received 0 of %lld bytes", (long long)cl);
            }
            probe_run(&p);
        }
    }
    (void)state;
}

/* A status line's fault as RFC 9112 §4 reads it, checked part by part
 * in the order the parser reports them: NULL when it is good. */
static const char *
status_line_reference(const char *s, size_t n, int *code)
{
    size_t v_end = 0, c_end = 9;

    *code = HCONN_EBAD_STATUS_LINE;
    for (size_t k = 0; k < n && k < 5; k++)
        if (s[k] != "HTTP/"[k])
            return "does not start with";
    while (v_end < n && s[v_end] != ' ')
        v_end++;
    if (v_end != 8 || s[5] < '0' || s[5] > '9' || s[6] != '.' || s[7] < '0' ||
        s[7] > '9')
        return "malformed version";
    if (s[5] != '1') {
        *code = HCONN_EUNKNOWN_PROTOCOL;
        return "not supported";
    }
    if (v_end == n)
        return "no status code";
    while (c_end < n && s[c_end] != ' ')
        c_end++;
    if (c_end != 12 || strspn(s + 9, "0123456789") < 3)
        return "is not 3 digits";
    if (s[9] == '0')
        return "is out of range";
    for (size_t k = c_end; k < n; k++)
        if (s[k] == '\0' || s[k] == '\r')
            return "reason contains";
    *code = 0;
    return NULL;
}

/* The status line the scan takes in one look ("HTTP/1.x NNN", then
 * nothing or SP and a clean reason) and every line one byte away from
 * it, or cut short: each is taken or refused as the full checks do. */
static void
test_status_line_bytes(void **state)
{
    static const char good[] = "HTTP/1.1 200 OK";
    static const unsigned char bytes[] = {' ', '\t', '\0', '\r', '0', '1', '2',
                                          '9', 'x',  '.',  '/',  'H', 0x80};
    const size_t glen = sizeof good - 1;

    for (size_t v = 0; v < glen * sizeof bytes + glen - 5; v++) {
        char line[32], head[64], err[256];
        size_t n = glen;
        struct http1_event ev;
        const char *why;
        int code;

        memcpy(line, good, glen);
        if (v < glen * sizeof bytes)
            line[v / sizeof bytes] = (char)bytes[v % sizeof bytes];
        else
            n = 5 + v - glen * sizeof bytes; /* cut short, "HTTP/" kept */
        memcpy(head, line, n);
        memcpy(head + n, "\r\nContent-Length: 0\r\n\r\n", 23);
        ev = parse_head(head, n + 23, err, sizeof err);
        why = status_line_reference(line, n, &code);
        if (why != NULL) {
            if (ev.kind != HTTP1_ERROR || ev.error != code ||
                strstr(err, why) == NULL)
                fail_msg("status line \"%.*s\": got %d %d \"%s\", want \"%s\"",
                         (int)n, line, ev.kind, ev.error, err, why);
            continue;
        }
        code = (line[9] - '0') * 100 + (line[10] - '0') * 10 + line[11] - '0';
        if (code == 101) {
            assert_int_equal(ev.error, HCONN_EUNSUPPORTED);
            continue;
        }
        assert_int_equal(ev.kind, code < 200 ? HTTP1_INTERIM : HTTP1_HEAD);
        assert_int_equal(ev.status, code);
        assert_int_equal(ev.version, line[7] == '0' ? 10 : 11);
        assert_int_equal(ev.reason_len, n > 12 ? n - 13 : 0);
        assert_memory_equal(ev.reason, line + 13, ev.reason_len);
    }
    (void)state;
}

/* A head is written in one pass when it fits the stack buffer and in
 * two when it does not: either way, byte for byte the same, at every
 * length around the buffer's size. */
static void
test_request_head_sizes(void **state)
{
    static char value[3000];
    struct sbuf want = {0};

    memset(value, 'v', sizeof value);
    for (size_t vlen = 900; vlen < 1100; vlen++) {
        struct http1_header h = {"X-Pad", 5, value, vlen};
        struct http1_request req = {
            .method = "GET",
            .target = "/",
            .host = "h",
            .port = 8080,
            .headers = &h,
            .nheaders = 1,
            .content_length = 12345,
        };
        char *head, err[256];
        size_t len;

        want.len = 0;
        sb_addf(&want, "GET / HTTP/1.1\r\nHost: h:8080\r\n"
                       "Accept-Encoding: identity\r\nX-Pad: ");
        sb_add(&want, value, vlen);
        sb_addf(&want, "\r\nContent-Length: 12345\r\n\r\n");
        assert_int_equal(
            http1_format_request(&req, &head, &len, err, sizeof err), 0);
        assert_int_equal(len, want.len);
        assert_memory_equal(head, want.s, len);
        free(head);
    }
    sb_free(&want);
    (void)state;
}

/* Targets and hosts are scanned eight bytes at a time for a control,
 * space or DEL: every length around a word (1 to 24 bytes), each
 * refused byte and its neighbours (0x20, 0x21, 0x7e, 0x7f, and bytes
 * 0x80 and up, which pass) at every position, named at its byte. */
static void
test_request_url_controls(void **state)
{
    static const unsigned char bad[] = {0x01, 0x09, 0x0a, 0x0d,
                                        0x1f, 0x20, 0x7f};
    static const unsigned char good[] = {'a', 0x21, 0x7e, 0x80, 0xa0, 0xff};

    for (size_t n = 1; n <= 24; n++) {
        for (size_t g = 0; g < sizeof good; g++) {
            char str[32], want[64], err[256], *head;
            size_t len;

            for (int host = 0; host < 2; host++) {
                struct http1_request req = {.method = "GET",
                                            .target = host ? "/" : str,
                                            .host = host ? str : "h",
                                            .content_length = -1};

                memset(str, (char)good[g], n);
                str[0] = host ? str[0] : '/';
                str[n] = '\0';
                assert_int_equal(
                    http1_format_request(&req, &head, &len, err, sizeof err),
                    0);
                assert_non_null(memmem(head, len, str, n));
                free(head);
                for (size_t at = 0; at < n; at++) {
                    for (size_t b = 0; b < sizeof bad; b++) {
                        memset(str, (char)good[g], n);
                        str[at] = (char)bad[b];
                        str[n] = '\0';
                        assert_int_equal(http1_format_request(&req, &head, &len,
                                                              err, sizeof err),
                                         HCONN_EINVALID_URL);
                        snprintf(want, sizeof want,
                                 "contains an invalid character at byte %zu",
                                 at);
                        if (strstr(err, want) == NULL ||
                            strncmp(err, host ? "host" : "target",
                                    host ? 4 : 6) != 0)
                            fail_msg("n %zu at %zu byte 0x%02x: %s", n, at,
                                     bad[b], err);
                    }
                }
            }
        }
    }
    (void)state;
}

/* A caller's buffer holds a head that fits, to its last byte, and
 * nothing past it; a longer head is allocated, the same bytes either
 * way. The parts after one that did not fit (an empty value among them)
 * are only measured: the buffer's bytes past cap stay untouched. */
static void
test_request_head_in(void **state)
{
    static char value[300];
    struct sbuf want = {0};

    memset(value, 'v', sizeof value);
    for (size_t vlen = 0; vlen < 40; vlen++) {
        struct http1_header h[] = {{"X-Pad", 5, value, vlen},
                                   {"X-Empty", 7, NULL, 0},
                                   {"X-B", 3, "b", 1}};
        struct http1_request req = {
            .method = "GET",
            .target = "/",
            .host = "h",
            .port = 8080,
            .headers = h,
            .nheaders = 3,
            .content_length = -1,
        };

        want.len = 0;
        sb_addf(&want, "GET / HTTP/1.1\r\nHost: h:8080\r\n"
                       "Accept-Encoding: identity\r\nX-Pad: ");
        sb_add(&want, value, vlen);
        sb_addf(&want, "\r\nX-Empty: \r\nX-B: b\r\n\r\n");
        for (size_t cap = 0; cap <= want.len + 3; cap++) {
            char buf[200], *head, err[256];
            size_t len;

            memset(buf, '#', sizeof buf);
            assert_int_equal(http1_start_request_in(&req, NULL, buf, cap, &head,
                                                    &len, err, sizeof err),
                             0);
            assert_int_equal(len, want.len);
            assert_memory_equal(head, want.s, len);
            for (size_t k = cap; k < sizeof buf; k++)
                assert_int_equal(buf[k], '#');
            if (len <= cap) {
                assert_ptr_equal(head, buf);
            } else {
                assert_ptr_not_equal(head, buf);
                free(head);
            }
        }
    }
    /* A refusal hands back no head, not the buffer. */
    {
        struct http1_request req = {.method = "GET",
                                    .target = "/ x",
                                    .host = "h",
                                    .content_length = -1};
        char buf[64], *head = buf, err[256];
        size_t len = 1;

        assert_int_equal(http1_start_request_in(&req, NULL, buf, sizeof buf,
                                                &head, &len, err, sizeof err),
                         HCONN_EINVALID_URL);
        assert_null(head);
        assert_int_equal(len, 0);
    }
    sb_free(&want);
    (void)state;
}

/* Scanning resumes where it stopped: p->scanned tracks the bytes seen. */
static void
test_scanned_resumes(void **state)
{
    static const char in[] = "HTTP/1.1 200 OK\r\nX-A: b";
    struct http1_parser p;
    struct http1_event ev;
    size_t used;

    http1_parser_init(&p, false, false);
    ev = http1_parser_next(&p, NULL, 0, false, &used);
    assert_int_equal(ev.kind, HTTP1_NEED_DATA);
    assert_int_equal(used, 0);
    ev = http1_parser_next(&p, in, sizeof in - 1, false, &used);
    assert_int_equal(ev.kind, HTTP1_NEED_DATA);
    assert_int_equal(used, 0);
    assert_int_equal(p.scanned, sizeof in - 1);
    assert_int_equal(p.line_start, strlen("HTTP/1.1 200 OK\r\n"));
    assert_int_equal(p.nlines, 0);
    (void)state;
}

/* ---- Request heads ------------------------------------------------------ */

#define H(n, v)                                                                \
    {                                                                          \
        (n), sizeof(n) - 1, (v), sizeof(v) - 1                                 \
    }
#define FIELDS(...)                                                            \
    .headers = (const struct http1_header[]){__VA_ARGS__},                     \
    .nheaders = sizeof((const struct http1_header[]){__VA_ARGS__}) /           \
                sizeof(struct http1_header)

struct request_case {
    const char *name;
    struct http1_request req;
    const char *want;   /* the exact head; NULL when an error is expected */
    int error;          /* the expected code */
    const char *errmsg; /* a substring of err */
    /* With a head: the body writer it leaves (set w to check it). */
    bool w;
    bool w_chunked;
    int64_t w_length;
};

/* The writer a head leaves: chunk-encoded or not, and its length. */
#define WRITER(chunked, length)                                                \
    .w = true, .w_chunked = (chunked), .w_length = (length)

static const struct request_case request_cases[] = {
    {
        .name = "default GET",
        .req = {.method = "GET",
                .target = "/",
                .host = "example.com",
                .port = 80,
                .content_length = -1},
        .want = "GET / HTTP/1.1\r\nHost: example.com\r\n"
                "Accept-Encoding: identity\r\n\r\n",
    },
    {
        .name = "port 0 is the default",
        .req = {.method = "GET",
                .target = "/",
                .host = "example.com",
                .content_length = -1},
        .want = "GET / HTTP/1.1\r\nHost: example.com\r\n"
                "Accept-Encoding: identity\r\n\r\n",
    },
    {
        .name = "non-default port",
        .req = {.method = "GET",
                .target = "/a?b=c",
                .host = "example.com",
                .port = 8080,
                .content_length = -1},
        .want = "GET /a?b=c HTTP/1.1\r\nHost: example.com:8080\r\n"
                "Accept-Encoding: identity\r\n\r\n",
    },
    {
        .name = "TLS default port",
        .req = {.method = "GET",
                .target = "/",
                .host = "example.com",
                .port = 443,
                .tls = true,
                .content_length = -1},
        .want = "GET / HTTP/1.1\r\nHost: example.com\r\n"
                "Accept-Encoding: identity\r\n\r\n",
    },
    {
        .name = "TLS on port 80",
        .req = {.method = "GET",
                .target = "/",
                .host = "example.com",
                .port = 80,
                .tls = true,
                .content_length = -1},
        .want = "GET / HTTP/1.1\r\nHost: example.com:80\r\n"
                "Accept-Encoding: identity\r\n\r\n",
    },
    {
        .name = "IPv6 host",
        .req = {.method = "GET",
                .target = "/",
                .host = "::1",
                .port = 8080,
                .content_length = -1},
        .want = "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n"
                "Accept-Encoding: identity\r\n\r\n",
    },
    {
        .name = "IPv6 host, default port",
        .req = {.method = "GET",
                .target = "/",
                .host = "2001:db8::1",
                .port = 80,
                .content_length = -1},
        .want = "GET / HTTP/1.1\r\nHost: [2001:db8::1]\r\n"
                "Accept-Encoding: identity\r\n\r\n",
    },
    {
        .name = "skip_host and skip_accept_encoding",
        .req = {.method = "GET",
                .target = "*",
                .host = "example.com",
                .port = 80,
                .skip_host = true,
                .skip_accept_encoding = true,
                .content_length = -1},
        .want = "GET * HTTP/1.1\r\n\r\n",
    },
    {
        .name = "skip_host needs no host",
        .req = {.method = "OPTIONS",
                .target = "*",
                .skip_host = true,
                .content_length = -1},
        .want = "OPTIONS * HTTP/1.1\r\nAccept-Encoding: identity\r\n\r\n",
    },
    {
        .name = "caller Host and Accept-Encoding, any case, in order",
        .req = {.method = "GET",
                .target = "/",
                .host = "example.com",
                .port = 8080,
                .content_length = -1,
                FIELDS(H("X-First", "1"), H("host", "other.example"),
                       H("ACCEPT-ENCODING", "gzip"), H("X-Last", "2"))},
        .want = "GET / HTTP/1.1\r\nX-First: 1\r\nhost: other.example\r\n"
                "ACCEPT-ENCODING: gzip\r\nX-Last: 2\r\n\r\n",
    },
    {
        .name = "automatic fields first, caller fields, then framing",
        .req = {.method = "POST",
                .target = "/upload",
                .host = "h",
                .port = 80,
                .content_length = 11,
                FIELDS(H("Content-Type", "text/plain"), H("X-Empty", ""),
                       H("Set", "a"), H("Set", "b"))},
        .want = "POST /upload HTTP/1.1\r\nHost: h\r\n"
                "Accept-Encoding: identity\r\nContent-Type: text/plain\r\n"
                "X-Empty: \r\nSet: a\r\nSet: b\r\nContent-Length: 11\r\n\r\n",
    },
    {
        .name = "POST without a body gets Content-Length: 0",
        .req = {.method = "POST",
                .target = "/",
                .host = "h",
                .port = 80,
                .content_length = -1},
        .want = "POST / HTTP/1.1\r\nHost: h\r\nAccept-Encoding: identity\r\n"
                "Content-Length: 0\r\n\r\n",
    },
    {
        .name = "put without a body, lower case",
        .req = {.method = "put",
                .target = "/",
                .host = "h",
                .port = 80,
                .skip_accept_encoding = true,
                .content_length = -1},
        .want = "put / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
    },
    {
        .name = "PATCH without a body",
        .req = {.method = "PATCH",
                .target = "/",
                .skip_host = true,
                .skip_accept_encoding = true,
                .content_length = -1},
        .want = "PATCH / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    },
    {
        .name = "DELETE without a body has no Content-Length",
        .req = {.method = "DELETE",
                .target = "/x",
                .host = "h",
                .port = 80,
                .skip_accept_encoding = true,
                .content_length = -1},
        .want = "DELETE /x HTTP/1.1\r\nHost: h\r\n\r\n",
    },
    {
        .name = "GET with an empty body",
        .req = {.method = "GET",
                .target = "/",
                .skip_host = true,
                .skip_accept_encoding = true,
                .content_length = 0},
        .want = "GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    },
    {
        .name = "chunked body",
        .req = {.method = "POST",
                .target = "/",
                .host = "h",
                .port = 80,
                .content_length = -1,
                .chunked = true,
                FIELDS(H("X-A", "b"))},
        .want = "POST / HTTP/1.1\r\nHost: h\r\nAccept-Encoding: identity\r\n"
                "X-A: b\r\nTransfer-Encoding: chunked\r\n\r\n",
        WRITER(true, -1),
    },
    {
        .name = "caller Content-Length kept",
        .req = {.method = "PUT",
                .target = "/",
                .skip_host = true,
                .skip_accept_encoding = true,
                .content_length = 5,
                FIELDS(H("content-length", "5"))},
        .want = "PUT / HTTP/1.1\r\ncontent-length: 5\r\n\r\n",
        WRITER(false, 5),
    },
    {
        .name = "caller Transfer-Encoding kept",
        .req = {.method = "POST",
                .target = "/",
                .skip_host = true,
                .skip_accept_encoding = true,
                .content_length = -1,
                .chunked = true,
                FIELDS(H("Transfer-Encoding", "chunked"))},
        .want = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        WRITER(true, -1),
    },
    {
        .name = "caller Transfer-Encoding chunks a body of known length",
        .req = {.method = "POST",
                .target = "/",
                .skip_host = true,
                .skip_accept_encoding = true,
                .content_length = 10,
                FIELDS(H("transfer-encoding", " Chunked "))},
        .want = "POST / HTTP/1.1\r\ntransfer-encoding:  Chunked \r\n\r\n",
        WRITER(true, 10),
    },
    {
        .name = "caller Content-Length declares an unknown length",
        .req = {.method = "PUT",
                .target = "/",
                .skip_host = true,
                .skip_accept_encoding = true,
                .content_length = -1,
                .chunked = true,
                FIELDS(H("Content-Length", "5"))},
        .want = "PUT / HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
        WRITER(false, 5),
    },
    {
        .name = "Content-Length: 0 without a body",
        .req = {.method = "GET",
                .target = "/",
                .skip_host = true,
                .skip_accept_encoding = true,
                .content_length = -1,
                FIELDS(H("Content-Length", "0"))},
        .want = "GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        WRITER(false, -1),
    },
    {
        .name = "allowed connection-management fields",
        .req = {.method = "POST",
                .target = "/",
                .skip_host = true,
                .skip_accept_encoding = true,
                .content_length = 1,
                FIELDS(H("Connection", "close, Keep-Alive,, TE"),
                       H("TE", "trailers"), H("Expect", "100-Continue"),
                       H("Host", "h"))},
        .want = "POST / HTTP/1.1\r\nConnection: close, Keep-Alive,, TE\r\n"
                "TE: trailers\r\nExpect: 100-Continue\r\nHost: h\r\n"
                "Content-Length: 1\r\n\r\n",
        WRITER(false, 1),
    },
    {
        .name = "absolute-form target",
        .req = {.method = "GET",
                .target = "http://other.example:8080/p?q",
                .host = "proxy",
                .port = 3128,
                .skip_accept_encoding = true,
                .content_length = -1},
        .want = "GET http://other.example:8080/p?q HTTP/1.1\r\n"
                "Host: proxy:3128\r\n\r\n",
    },
    {
        .name = "CONNECT for a tunnel",
        .req = {.method = "CONNECT",
                .target = "h:443",
                .skip_host = true,
                .skip_accept_encoding = true,
                .content_length = -1,
                .tunnel = true,
                FIELDS(H("Host", "h:443"))},
        .want = "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
        WRITER(false, -1),
    },
    {
        .name = "bracketed IPv6 host not bracketed twice",
        .req = {.method = "GET",
                .target = "/",
                .host = "[::1]",
                .port = 81,
                .skip_accept_encoding = true,
                .content_length = -1},
        .want = "GET / HTTP/1.1\r\nHost: [::1]:81\r\n\r\n",
    },

    /* -- Refusals: nothing reaches the output -------------------------- */
    {
        .name = "method with a space",
        .req = {.method = "GE T",
                .target = "/",
                .host = "h",
                .content_length = -1},
        .error = HCONN_EINVALID_URL,
        .errmsg = "method \"GE T\" contains an invalid character at byte 2",
    },
    {
        .name = "method smuggling a request line",
        .req = {.method = "GET / HTTP/1.1\r\nX: y\r\n\r\nGET",
                .target = "/",
                .host = "h",
                .content_length = -1},
        .error = HCONN_EINVALID_URL,
        .errmsg = "method \"GET / HTTP/1.1\\x0d\\x0aX: y",
    },
    {
        .name = "method with a control",
        .req = {.method = "G\x01T",
                .target = "/",
                .host = "h",
                .content_length = -1},
        .error = HCONN_EINVALID_URL,
        .errmsg = "at byte 1",
    },
    {
        .name = "method with a separator",
        .req = {.method = "GET(x)",
                .target = "/",
                .host = "h",
                .content_length = -1},
        .error = HCONN_EINVALID_URL,
    },
    {
        .name = "empty method",
        .req = {.method = "", .target = "/", .host = "h", .content_length = -1},
        .error = HCONN_EINVALID_URL,
        .errmsg = "method is empty",
    },
    {
        .name = "target with a space",
        .req = {.method = "GET",
                .target = "/a b",
                .host = "h",
                .content_length = -1},
        .error = HCONN_EINVALID_URL,
        .errmsg = "target \"/a b\" contains an invalid character at byte 2",
    },
    {
        .name = "target with CRLF",
        .req = {.method = "GET",
                .target = "/\r\nX-Injected: 1",
                .host = "h",
                .content_length = -1},
        .error = HCONN_EINVALID_URL,
    },
    {
        .name = "target with DEL",
        .req = {.method = "GET",
                .target = "/\x7f",
                .host = "h",
                .content_length = -1},
        .error = HCONN_EINVALID_URL,
    },
    {
        .name = "target with a tab",
        .req = {.method = "GET",
                .target = "/\t",
                .host = "h",
                .content_length = -1},
        .error = HCONN_EINVALID_URL,
    },
    {
        .name = "empty target",
        .req =
            {.method = "GET", .target = "", .host = "h", .content_length = -1},
        .error = HCONN_EINVALID_URL,
        .errmsg = "target is empty",
    },
    {
        .name = "host with CRLF",
        .req = {.method = "GET",
                .target = "/",
                .host = "h\r\nX-Injected: 1",
                .content_length = -1},
        .error = HCONN_EINVALID_URL,
        .errmsg = "host \"h\\x0d\\x0aX-Injected: 1\" contains an invalid "
                  "character at byte 1",
    },
    {
        .name = "no host",
        .req = {.method = "GET", .target = "/", .content_length = -1},
        .error = HCONN_EINVALID_URL,
        .errmsg = "host is empty",
    },
    {
        .name = "header name with a space",
        .req = {.method = "GET",
                .target = "/",
                .host = "h",
                .content_length = -1,
                FIELDS(H("X Foo", "1"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "header name \"X Foo\" contains an invalid character at "
                  "byte 1",
    },
    {
        .name = "header name with CRLF",
        .req = {.method = "GET",
                .target = "/",
                .host = "h",
                .content_length = -1,
                FIELDS(H("X-Ok", "1"), H("X-Foo\r\nEvil", "1"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "at byte 5",
    },
    {
        .name = "header name with a colon",
        .req = {.method = "GET",
                .target = "/",
                .host = "h",
                .content_length = -1,
                FIELDS(H("X-Foo:", "1"))},
        .error = HCONN_EINVALID_HEADER,
    },
    {
        .name = "empty header name",
        .req = {.method = "GET",
                .target = "/",
                .host = "h",
                .content_length = -1,
                FIELDS(H("", "1"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "header 1: empty field name",
    },
    {
        .name = "header value with CRLF",
        .req = {.method = "GET",
                .target = "/",
                .host = "h",
                .content_length = -1,
                FIELDS(H("X-Foo", "abc\r\nEvil: 1"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "header \"X-Foo\" value contains CR/LF at byte 3",
    },
    {
        .name = "header value with LF",
        .req = {.method = "GET",
                .target = "/",
                .host = "h",
                .content_length = -1,
                FIELDS(H("X-Foo", "a\nb"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "CR/LF at byte 1",
    },
    {
        .name = "header value with an obs-fold",
        .req = {.method = "GET",
                .target = "/",
                .host = "h",
                .content_length = -1,
                FIELDS(H("X-Foo", "a\r\n b"))},
        .error = HCONN_EINVALID_HEADER,
    },
    {
        .name = "header value with NUL",
        .req = {.method = "GET",
                .target = "/",
                .host = "h",
                .content_length = -1,
                FIELDS(H("X-Foo", "a\0b"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "header \"X-Foo\" value contains NUL at byte 1",
    },
    {
        .name = "Content-Length: 0 with a body (smuggling)",
        .req = {.method = "GET",
                .target = "/",
                .host = "h",
                .content_length = 34,
                FIELDS(H("Content-Length", "0"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg =
            "header \"Content-Length\": 0 differs from the body's 34 bytes",
    },
    {
        .name = "Content-Length larger than the body",
        .req = {.method = "POST",
                .target = "/",
                .host = "h",
                .content_length = 10,
                FIELDS(H("Content-Length", "100"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "100 differs from the body's 10 bytes",
    },
    {
        .name = "Content-Length on a request without a body",
        .req = {.method = "GET",
                .target = "/",
                .host = "h",
                .content_length = -1,
                FIELDS(H("Content-Length", "5"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "5 on a request without a body",
    },
    {
        .name = "Content-Length twice, equal",
        .req = {.method = "POST",
                .target = "/",
                .host = "h",
                .content_length = 5,
                FIELDS(H("Content-Length", "5"), H("content-length", "5"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "header \"content-length\" given twice",
    },
    {
        .name = "Content-Length as a list",
        .req = {.method = "POST",
                .target = "/",
                .host = "h",
                .content_length = 5,
                FIELDS(H("Content-Length", "5, 5"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "is not a byte count",
    },
    {
        .name = "Content-Length with a sign",
        .req = {.method = "POST",
                .target = "/",
                .host = "h",
                .content_length = 5,
                FIELDS(H("Content-Length", "+5"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "is not a byte count",
    },
    {
        .name = "Content-Length empty",
        .req = {.method = "POST",
                .target = "/",
                .host = "h",
                .content_length = 0,
                FIELDS(H("Content-Length", ""))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "is not a byte count",
    },
    {
        .name = "Content-Length of 19 digits",
        .req = {.method = "POST",
                .target = "/",
                .host = "h",
                .content_length = -1,
                .chunked = true,
                FIELDS(H("Content-Length", "1000000000000000000"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "is not a byte count",
    },
    {
        .name = "Transfer-Encoding other than chunked",
        .req = {.method = "POST",
                .target = "/",
                .host = "h",
                .content_length = 10,
                FIELDS(H("Transfer-Encoding", "gzip, chunked"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "only chunked, which the daemon encodes itself",
    },
    {
        .name = "Transfer-Encoding twice",
        .req = {.method = "POST",
                .target = "/",
                .host = "h",
                .content_length = -1,
                .chunked = true,
                FIELDS(H("Transfer-Encoding", "chunked"),
                       H("Transfer-Encoding", "chunked"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "given twice",
    },
    {
        .name = "Transfer-Encoding without a body",
        .req = {.method = "GET",
                .target = "/",
                .host = "h",
                .content_length = -1,
                FIELDS(H("Transfer-Encoding", "chunked"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "on a request without a body",
    },
    {
        .name = "Transfer-Encoding and Content-Length",
        .req = {.method = "POST",
                .target = "/",
                .host = "h",
                .content_length = -1,
                .chunked = true,
                FIELDS(H("Content-Length", "5"),
                       H("Transfer-Encoding", "chunked"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "conflicts with \"Transfer-Encoding\"",
    },
    {
        .name = "Connection: upgrade",
        .req = {.method = "GET",
                .target = "/",
                .host = "h",
                .content_length = -1,
                FIELDS(H("Connection", "close, Upgrade"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "header \"Connection\": \"Upgrade\" is not allowed",
    },
    {
        .name = "Connection naming a field",
        .req = {.method = "POST",
                .target = "/",
                .host = "h",
                .content_length = 3,
                FIELDS(H("Connection", "Content-Length"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "is not allowed (only close, keep-alive and te",
    },
    {
        .name = "Upgrade",
        .req = {.method = "GET",
                .target = "/",
                .host = "h",
                .content_length = -1,
                FIELDS(H("Upgrade", "websocket"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "header \"Upgrade\" is not allowed",
    },
    {
        .name = "HTTP2-Settings",
        .req = {.method = "GET",
                .target = "/",
                .host = "h",
                .content_length = -1,
                FIELDS(H("http2-settings", "AAMAAABkAAQAAP__"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "is not allowed: it belongs to an Upgrade",
    },
    {
        .name = "Keep-Alive",
        .req = {.method = "GET",
                .target = "/",
                .host = "h",
                .content_length = -1,
                FIELDS(H("Keep-Alive", "timeout=600, max=1000"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "the daemon decides how long connections live",
    },
    {
        .name = "Proxy-Connection",
        .req = {.method = "GET",
                .target = "/",
                .host = "h",
                .content_length = -1,
                FIELDS(H("Proxy-Connection", "keep-alive"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "header \"Proxy-Connection\" is not allowed",
    },
    {
        .name = "Trailer",
        .req = {.method = "POST",
                .target = "/",
                .host = "h",
                .content_length = -1,
                .chunked = true,
                FIELDS(H("Trailer", "X-Checksum"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "the daemon sends no request trailers",
    },
    {
        .name = "TE other than trailers",
        .req = {.method = "GET",
                .target = "/",
                .host = "h",
                .content_length = -1,
                FIELDS(H("TE", "trailers, gzip"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "header \"TE\": \"gzip\" is not allowed (only trailers",
    },
    {
        .name = "Expect other than 100-continue",
        .req = {.method = "POST",
                .target = "/",
                .host = "h",
                .content_length = 1,
                FIELDS(H("Expect", "200-ok"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "\"200-ok\" is not allowed (only 100-continue)",
    },
    {
        .name = "Expect twice",
        .req = {.method = "POST",
                .target = "/",
                .host = "h",
                .content_length = 1,
                FIELDS(H("Expect", "100-continue"),
                       H("Expect", "100-continue"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "header \"Expect\" given twice",
    },
    {
        .name = "Expect without a body",
        .req = {.method = "GET",
                .target = "/",
                .host = "h",
                .content_length = -1,
                FIELDS(H("Expect", "100-continue"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "100-continue on a request without a body",
    },
    {
        .name = "Host twice",
        .req = {.method = "GET",
                .target = "/",
                .host = "h",
                .content_length = -1,
                FIELDS(H("Host", "a.example"), H("host", "b.example"))},
        .error = HCONN_EINVALID_HEADER,
        .errmsg = "header \"host\" given twice",
    },
    {
        .name = "CONNECT as a request",
        .req = {.method = "CONNECT",
                .target = "internal.example:22",
                .host = "h",
                .content_length = -1,
                .nheaders = 0},
        .error = HCONN_EINVALID_URL,
        .errmsg = "method \"CONNECT\" is not allowed: tunnels are the "
                  "\"proxy\" field's job",
    },
    {
        .name = "connect in lower case",
        .req = {.method = "connect",
                .target = "h:22",
                .host = "h",
                .content_length = -1,
                .nheaders = 0},
        .error = HCONN_EINVALID_URL,
        .errmsg = "tunnels are the",
    },

    {
        .name = "caller Content-Length and Transfer-Encoding",
        .req = {.method = "POST",
                .target = "/",
                .host = "h",
                .content_length = -1,
                FIELDS(H("Transfer-Encoding", "chunked"),
                       H("Content-Length", "5"))},
        .error = HCONN_EINVALID_HEADER,
    },
    {
        .name = "content_length and chunked both",
        .req = {.method = "POST",
                .target = "/",
                .host = "h",
                .content_length = 5,
                .chunked = true},
        .error = HCONN_EINVALID_ARGUMENT,
    },
    {
        .name = "content_length below -1",
        .req = {.method = "POST",
                .target = "/",
                .host = "h",
                .content_length = -2},
        .error = HCONN_EINVALID_ARGUMENT,
    },
};

/* A refusal must leave *head NULL and *len 0: nothing can be sent. */
static void
test_request_case(void **state)
{
    const struct request_case *c = *state;
    char sentinel, err[256] = "stale";
    char *head = &sentinel;
    size_t len = 12345;
    struct http1_writer w;
    int rc = http1_start_request(&c->req, &w, &head, &len, err, sizeof err);

    if (c->want != NULL) {
        bool body = c->req.content_length >= 0 || c->req.chunked;

        if (rc == HCONN_OK && c->w &&
            (w.state != (body ? HTTP1_W_BODY : HTTP1_W_DONE) ||
             w.chunked != c->w_chunked || w.length != c->w_length ||
             w.written != 0))
            fail_msg("%s: writer state %d chunked %d length %lld", c->name,
                     (int)w.state, (int)w.chunked, (long long)w.length);
        if (rc != HCONN_OK)
            fail_msg("%s: %s: %s", c->name, hconn_error_name(rc), err);
        assert_non_null(head);
        if (len != strlen(c->want) || memcmp(head, c->want, len) != 0)
            fail_msg("%s:\n  got:  \"%.*s\"\n  want: \"%s\"", c->name, (int)len,
                     head, c->want);
        assert_string_equal(err, "");
        free(head);
        return;
    }
    if (rc != c->error)
        fail_msg("%s: %s, want %s", c->name, hconn_error_name(rc),
                 hconn_error_name(c->error));
    assert_null(head);
    assert_int_equal(len, 0);
    assert_int_equal(w.state, HTTP1_W_IDLE);
    assert_true(err[0] != '\0');
    if (c->errmsg != NULL && strstr(err, c->errmsg) == NULL)
        fail_msg("%s: err \"%s\" lacks \"%s\"", c->name, err, c->errmsg);
    /* The culprit is quoted with its controls escaped. */
    assert_null(strpbrk(err, "\r\n"));
}

/* err is optional; a long culprit is cut rather than overflowing it. */
static void
test_request_err_buffer(void **state)
{
    struct http1_request req = {.method = "GET",
                                .target = "/\r\nlong long long long long long "
                                          "long long long long long long",
                                .host = "h",
                                .content_length = -1};
    char err[40];
    char *head;
    size_t len;

    assert_int_equal(http1_format_request(&req, &head, &len, NULL, 0),
                     HCONN_EINVALID_URL);
    assert_null(head);
    assert_int_equal(http1_format_request(&req, &head, &len, err, sizeof err),
                     HCONN_EINVALID_URL);
    assert_int_equal(strlen(err), sizeof err - 1);
    assert_int_equal(http1_format_request(NULL, &head, &len, NULL, 0),
                     HCONN_EINVALID_ARGUMENT);
    (void)state;
}

/* ---- Request body writer ----------------------------------------------- */

/* Starts a request whose head must be accepted; returns its writer. */
static struct http1_writer
start_body(int64_t content_length, bool chunked, const char *te)
{
    struct http1_header field = {"Transfer-Encoding", 17, te,
                                 te != NULL ? strlen(te) : 0};
    struct http1_request req = {.method = "POST",
                                .target = "/",
                                .host = "h",
                                .content_length = content_length,
                                .chunked = chunked,
                                .headers = &field,
                                .nheaders = te != NULL};
    struct http1_writer w;
    char err[256], *head;
    size_t len;

    if (http1_start_request(&req, &w, &head, &len, err, sizeof err) != 0)
        fail_msg("start: %s", err);
    free(head);
    return w;
}

/* Appends one frame around n bytes of data to out (a C string). */
static void
frame_into(char *out, const struct http1_frame *f, const char *data, size_t n)
{
    size_t len = strlen(out);

    memcpy(out + len, f->pre, f->pre_len);
    len += f->pre_len;
    memcpy(out + len, data, n);
    len += n;
    memcpy(out + len, f->post, f->post_len);
    out[len + f->post_len] = '\0';
}

/* Content-Length framing: bytes go as they are, exactly the length. */
static void
test_writer_length(void **state)
{
    struct http1_writer w = start_body(5, false, NULL);
    struct http1_frame f;

    assert_int_equal(w.state, HTTP1_W_BODY);
    assert_int_equal(http1_writer_room(&w), 5);
    assert_int_equal(http1_writer_data(&w, 3, &f), 0);
    assert_int_equal(f.pre_len + f.post_len, 0);
    assert_int_equal(http1_writer_room(&w), 2);
    /* One byte past the head's length: refused, and the writer stays
     * failed, so nothing more can follow on that connection. */
    assert_int_equal(http1_writer_data(&w, 3, &f), HCONN_EBODY_LENGTH);
    assert_int_equal(w.state, HTTP1_W_FAILED);
    assert_non_null(strstr(w.errmsg, "would exceed the declared length of 5"));
    assert_int_equal(http1_writer_data(&w, 1, &f), HCONN_EINVALID_ARGUMENT);
    assert_int_equal(http1_writer_room(&w), 0);

    /* A rewind starts the same body over, for a retry. */
    http1_writer_rewind(&w);
    assert_int_equal(w.state, HTTP1_W_BODY);
    assert_int_equal(w.written, 0);
    assert_int_equal(http1_writer_data(&w, 4, &f), 0);
    assert_int_equal(http1_writer_end(&w, &f), HCONN_EBODY_LENGTH);
    assert_non_null(strstr(w.errmsg, "after 4 bytes of the 5 declared"));
    http1_writer_rewind(&w);
    assert_int_equal(http1_writer_data(&w, 5, &f), 0);
    assert_int_equal(http1_writer_data(&w, 0, &f), 0);
    assert_int_equal(http1_writer_end(&w, &f), 0);
    assert_int_equal(f.pre_len, 0);
    assert_int_equal(w.state, HTTP1_W_DONE);
    assert_int_equal(http1_writer_end(&w, &f), HCONN_EINVALID_ARGUMENT);
    assert_non_null(strstr(w.errmsg, "after the end of the request"));
    (void)state;
}

/* Chunked framing: the daemon encodes the bytes it is given, whatever
 * they look like; an empty piece never becomes the last chunk. */
static void
test_writer_chunked(void **state)
{
    static const char body[] = "0\r\n\r\nGET /x HTTP/1.1\r\n";
    struct http1_writer w = start_body(-1, true, NULL);
    struct http1_frame f;
    char out[256] = "";

    assert_true(w.chunked);
    assert_int_equal(http1_writer_room(&w), UINT64_MAX);
    assert_int_equal(http1_writer_data(&w, 0, &f), 0);
    frame_into(out, &f, "", 0);
    assert_int_equal(http1_writer_data(&w, 5, &f), 0);
    frame_into(out, &f, body, 5);
    assert_int_equal(http1_writer_data(&w, sizeof body - 6, &f), 0);
    frame_into(out, &f, body + 5, sizeof body - 6);
    assert_int_equal(http1_writer_end(&w, &f), 0);
    frame_into(out, &f, "", 0);
    assert_string_equal(out, "5\r\n0\r\n\r\n\r\n"
                             "11\r\nGET /x HTTP/1.1\r\n\r\n"
                             "0\r\n\r\n");
    assert_int_equal(w.written, sizeof body - 1);
    assert_int_equal(http1_writer_data(&w, 1, &f), HCONN_EINVALID_ARGUMENT);
    (void)state;
}

/* A client's Transfer-Encoding on a body of known length: chunked on the
 * wire, and the length still holds. */
static void
test_writer_chunked_length(void **state)
{
    struct http1_writer w = start_body(4, false, "chunked");
    struct http1_frame f;

    assert_true(w.chunked);
    assert_int_equal(w.length, 4);
    assert_int_equal(http1_writer_data(&w, 3, &f), 0);
    assert_string_equal(f.pre, "3\r\n");
    assert_int_equal(http1_writer_end(&w, &f), HCONN_EBODY_LENGTH);
    http1_writer_rewind(&w);
    assert_int_equal(http1_writer_data(&w, 5, &f), HCONN_EBODY_LENGTH);
    http1_writer_rewind(&w);
    assert_int_equal(http1_writer_data(&w, 4, &f), 0);
    assert_int_equal(http1_writer_end(&w, &f), 0);
    assert_int_equal(f.pre_len, 5);
    assert_memory_equal(f.pre, "0\r\n\r\n", 5);
    (void)state;
}

/* No body: the writer is done with the head; an idle one takes nothing. */
static void
test_writer_no_body(void **state)
{
    struct http1_writer w = start_body(-1, false, NULL), idle = {0};
    struct http1_frame f;

    assert_int_equal(w.state, HTTP1_W_DONE);
    http1_writer_rewind(&w);
    assert_int_equal(w.state, HTTP1_W_DONE);
    assert_int_equal(http1_writer_data(&w, 1, &f), HCONN_EINVALID_ARGUMENT);
    assert_int_equal(http1_writer_end(&idle, &f), HCONN_EINVALID_ARGUMENT);
    assert_non_null(strstr(idle.errmsg, "before the head"));
    (void)state;
}

/* ---- Small helpers ------------------------------------------------------ */

/* Lower-case hex, no leading zeros, CRLF, NUL-terminated. */
static void
test_chunk_header(void **state)
{
    static const struct {
        size_t n;
        const char *want;
    } cases[] = {
        {1, "1\r\n"},
        {15, "f\r\n"},
        {16, "10\r\n"},
        {255, "ff\r\n"},
        {4096, "1000\r\n"},
        {0xabcdef, "abcdef\r\n"},
        {SIZE_MAX, "ffffffffffffffff\r\n"},
    };
    char out[HTTP1_CHUNK_HEADER_MAX];

    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        memset(out, 'X', sizeof out);
        assert_int_equal(http1_format_chunk_header(cases[i].n, out),
                         strlen(cases[i].want));
        assert_string_equal(out, cases[i].want);
    }
    (void)state;
}

/* Body bytes taken past the parser (splice) count as received: the body
 * then ends, or, cut short, fails with the exact count; only a
 * Content-Length body in progress offers any, and never more than it
 * owes. */
static void
test_body_taken(void **state)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
                               "ab";
    static const char chunked[] =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    struct http1_parser p;
    struct http1_event ev;
    size_t used;

    for (int cut = 0; cut < 2; cut++) {
        http1_parser_init(&p, false, false);
        assert_int_equal(http1_parser_body_left(&p), 0);
        ev = http1_parser_next(&p, head, sizeof head - 1, false, &used);
        assert_int_equal(ev.kind, HTTP1_HEAD);
        assert_int_equal(http1_parser_body_left(&p), 10);
        ev = http1_parser_next(&p, head + used, 2, false, &used);
        assert_int_equal(ev.kind, HTTP1_DATA);
        assert_int_equal(http1_parser_body_left(&p), 8);
        http1_parser_body_taken(&p, cut ? 5 : 8);
        ev = http1_parser_next(&p, "", 0, cut, &used);
        if (cut) {
            assert_int_equal(ev.kind, HTTP1_ERROR);
            assert_int_equal(ev.error, HCONN_EINCOMPLETE_READ);
            assert_int_equal(p.body_received, 7);
        } else {
            assert_int_equal(ev.kind, HTTP1_END);
            assert_int_equal(p.body_received, 10);
            assert_int_equal(http1_parser_body_left(&p), 0);
        }
    }
    /* More than is owed is clamped: never into the next response. */
    http1_parser_init(&p, false, false);
    ev = http1_parser_next(&p, head, sizeof head - 3, false, &used);
    assert_int_equal(ev.kind, HTTP1_HEAD);
    http1_parser_body_taken(&p, 100);
    assert_int_equal(p.body_received, 10);
    ev = http1_parser_next(&p, "", 0, false, &used);
    assert_int_equal(ev.kind, HTTP1_END);
    /* A chunked body offers none. */
    http1_parser_init(&p, false, false);
    ev = http1_parser_next(&p, chunked, sizeof chunked - 1, false, &used);
    assert_int_equal(ev.kind, HTTP1_HEAD);
    assert_int_equal(http1_parser_body_left(&p), 0);
    (void)state;
}

/* http1_parser_next_into writes every field of the event, as the one
 * http1_parser_next returns: an event left from an earlier call (here,
 * garbage) shows through in none of them, whatever the kind. */
static void
test_next_into(void **state)
{
    static const char *const inputs[] = {
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nA: b\r\n"
        "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: u\r\n\r\n",
        "HTTP/1.0 204\r\nX: y\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nxy",
        "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
    };

    for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++) {
        const char *in = inputs[i];
        size_t n = strlen(in), off = 0;
        struct http1_parser p, q;

        http1_parser_init(&p, false, false);
        http1_parser_init(&q, false, false);
        for (int call = 0; call < 8; call++) {
            struct http1_event want, got;
            size_t used_want, used_got;

            memset(&got, 0xa5, sizeof got);
            want = http1_parser_next(&p, in + off, n - off, true, &used_want);
            http1_parser_next_into(&q, in + off, n - off, true, &used_got,
                                   &got);
            assert_int_equal(got.kind, want.kind);
            assert_int_equal(got.status, want.status);
            assert_int_equal(got.version, want.version);
            assert_ptr_equal(got.reason, want.reason);
            assert_int_equal(got.reason_len, want.reason_len);
            assert_ptr_equal(got.headers,
                             want.headers == NULL ? NULL : q.headers);
            assert_int_equal(got.nheaders, want.nheaders);
            assert_ptr_equal(got.data, want.data);
            assert_int_equal(got.len, want.len);
            assert_int_equal(got.error, want.error);
            assert_int_equal(used_got, used_want);
            off += used_want;
        }
    }
    (void)state;
}

/* Each obs-fold, with the whitespace around it, becomes one SP. */
static void
test_unfold_value(void **state)
{
    static const struct {
        const char *in;
        const char *want;
    } cases[] = {
        {"", ""},
        {"plain", "plain"},
        {"inner  space\tkept", "inner  space\tkept"},
        {"a\r\n b", "a b"},
        {"a\r\n\t \tb", "a b"},
        {"a \t\r\n  b", "a b"},
        {"a\n b", "a b"},
        {"a\r\n b\r\n\tc", "a b c"},
        {"a\r\n   \r\n b", "a b"},
    };
    char out[64];

    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t n = strlen(cases[i].in);

        memset(out, 'X', sizeof out);
        assert_int_equal(http1_unfold_value(out, cases[i].in, n),
                         strlen(cases[i].want));
        assert_string_equal(out, cases[i].want);
    }
    (void)state;
}

int
main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_status_line_limit),
        cmocka_unit_test(test_line_limit_without_line_end),
        cmocka_unit_test(test_header_line_limit),
        cmocka_unit_test(test_chunk_and_trailer_line_limit),
        cmocka_unit_test(test_header_count_limit),
        cmocka_unit_test(test_large_body),
        cmocka_unit_test(test_terminal_repeats),
        cmocka_unit_test(test_field_bytes),
        cmocka_unit_test(test_bytes_at_every_position),
        cmocka_unit_test(test_byte_after_a_control),
        cmocka_unit_test(test_content_length_values),
        cmocka_unit_test(test_status_line_bytes),
        cmocka_unit_test(test_request_head_sizes),
        cmocka_unit_test(test_request_head_in),
        cmocka_unit_test(test_request_url_controls),
        cmocka_unit_test(test_scanned_resumes),
        cmocka_unit_test(test_request_err_buffer),
        cmocka_unit_test(test_chunk_header),
        cmocka_unit_test(test_writer_length),
        cmocka_unit_test(test_writer_chunked),
        cmocka_unit_test(test_writer_chunked_length),
        cmocka_unit_test(test_writer_no_body),
        cmocka_unit_test(test_unfold_value),
        cmocka_unit_test(test_body_taken),
        cmocka_unit_test(test_next_into),
    };
    const size_t nresp = sizeof response_cases / sizeof *response_cases;
    const size_t nreq = sizeof request_cases / sizeof *request_cases;
    const size_t nfixed = sizeof fixed / sizeof *fixed;
    struct CMUnitTest *tests = calloc(nresp + nreq + nfixed, sizeof *tests);
    size_t n = 0;
    int failed;

    if (tests == NULL)
        return 1;
    /* One named test per table row, so a failure names its case. */
    for (size_t i = 0; i < nresp; i++)
        tests[n++] = (struct CMUnitTest){
            .name = response_cases[i].name,
            .test_func = test_response_case,
            .initial_state = (void *)&response_cases[i],
        };
    for (size_t i = 0; i < nreq; i++)
        tests[n++] = (struct CMUnitTest){
            .name = request_cases[i].name,
            .test_func = test_request_case,
            .initial_state = (void *)&request_cases[i],
        };
    for (size_t i = 0; i < nfixed; i++)
        tests[n++] = fixed[i];
    failed = _cmocka_run_group_tests("HTTP/1.1 codec", tests, n, NULL, NULL);
    free(tests);
    return failed;
}
