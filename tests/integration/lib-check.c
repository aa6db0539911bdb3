/*
 * lib-check.c — libhconn against a real hconnd and a real origin, as TAP.
 *
 *   lib-check HOST:PORT              nginx origin (the integration harness
 *                                    configures the locations used below)
 *   lib-check --truncated HOST:PORT  the scripted fault origin, whose
 *                                    GET /truncated announces 1000 bytes,
 *                                    sends 500 and closes
 *   lib-check --tls HOST:PORT CA_FILE
 *                                    nginx's TLS server, whose certificate
 *                                    for 127.0.0.1 and localhost is signed
 *                                    by CA_FILE (an absolute path: hconnd
 *                                    opens it), /small.txt as above
 *
 * The daemon socket comes from $HCONN_SOCKET. Prints "ok N - what" or
 * "not ok N - what (detail)" per check and "1..N" at the end; exits 1 if
 * any check failed.
 *
 * Origin locations relied on: /small.txt ("hello world\n"), /headers (two
 * X-Dup fields "a" and "b", X-Connection: $connection), /big.bin (1 MiB,
 * byte i = i % 251), /chunked ("line1\nline2\nline3\n", chunked), /missing
 * (404), POST /echo (echoes the request body).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hconn.h"
#include "lib-util.h"
#include "tap.h"

#define BIG_SIZE (1024 * 1024) /* bytes of /big.bin */

/* Reads the whole body with read(n) calls of size n into a malloc'd
 * buffer. Returns 0 or the code that ended it. */
static int
read_by(hconn_response *r, size_t n, char **out, size_t *len)
{
    size_t cap = BIG_SIZE + 1, got = 0;
    char *buf = malloc(cap);
    char *chunk = malloc(n);
    ssize_t k;

    while (buf && chunk && (k = hconn_response_read(r, chunk, n)) != 0) {
        if (k < 0) {
            free(buf);
            free(chunk);
            return (int)k;
        }
        if (got + (size_t)k > cap) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger)
                break;
            buf = bigger;
            cap *= 2;
        }
        memcpy(buf + got, chunk, (size_t)k);
        got += (size_t)k;
    }
    free(chunk);
    *out = buf;
    *len = got;
    return buf ? 0 : HCONN_ENO_MEMORY;
}

/* Whether buf is /big.bin's body. */
static bool
is_big(const char *buf, size_t len)
{
    if (len != BIG_SIZE)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)buf[i] != i % 251)
            return false;
    return true;
}

/* Checks that need no daemon. */
static void
check_offline(void)
{
    hconn *c;
    int rc;
    const char *nf = hconn_responses(404);

    check(nf && strcmp(nf, "Not Found") == 0, "hconn_responses(404)", "got %s",
          nf ? nf : "NULL");
    check(hconn_responses(999) == NULL, "hconn_responses(999) is NULL",
          "not NULL");
    rc = hconn_new(&c, "[::1]:8080", 0, NULL);
    check(rc == 0 && hconn_fileno(c) == -1,
          "hconn_new(\"[::1]:8080\") parses, does not connect", "%s",
          lib_why(c, rc));
    hconn_free(c);
    rc = hconn_new(&c, "host:abc", 0, NULL);
    check(rc == HCONN_EINVALID_URL && *hconn_errmsg(c),
          "hconn_new(\"host:abc\") is invalid_url", "%s", lib_why(c, rc));
    hconn_free(c);
    rc = hconn_new(&c, "127.0.0.1", 0, NULL);
    if (rc == 0) {
        rc = hconn_getresponse(c, &(hconn_response *){NULL});
        check(rc == HCONN_ERESPONSE_NOT_READY,
              "getresponse with no request is response_not_ready", "%s",
              lib_why(c, rc));
        rc = hconn_send(c, "x", 1);
        check(rc == HCONN_ECANNOT_SEND_REQUEST,
              "send without a streamed body is cannot_send_request", "%s",
              lib_why(c, rc));
        rc = hconn_request(c, "GET", "/a b", NULL, 0, NULL, 0);
        check(rc == HCONN_EINVALID_URL, "a space in the target is invalid_url",
              "%s", lib_why(c, rc));
        rc = hconn_request(c, "GET", "/", NULL, 0,
                           &(struct hconn_header){"X-Bad", "a\r\nb"}, 1);
        check(rc == HCONN_EINVALID_HEADER, "CR/LF in a value is invalid_header",
              "%s", lib_why(c, rc));
    }
    hconn_free(c);
}

/* GET /small.txt: head, read_all, closed() transitions. */
static void
check_small(hconn *c)
{
    hconn_response *r;
    void *body = NULL;
    size_t len = 0;
    char byte;
    int rc = lib_fetch(c, "GET", "/small.txt", NULL, &r);

    if (!check(rc == 0, "GET /small.txt", "%s", lib_why(c, rc)))
        return;
    check(hconn_response_status(r) == 200 &&
              strcmp(hconn_response_reason(r), "OK") == 0 &&
              hconn_response_version(r) == 11,
          "status 200, reason OK, version 11", "got %d \"%s\" %d",
          hconn_response_status(r), hconn_response_reason(r),
          hconn_response_version(r));
    check(hconn_response_length(r) == 12, "length is 12 before reading",
          "got %lld", (long long)hconn_response_length(r));
    check(!hconn_response_closed(r), "closed() is false before reading",
          "true");
    check(hconn_fileno(c) >= 0, "fileno() is the daemon socket", "%d",
          hconn_fileno(c));
    rc = hconn_response_read_all(r, &body, &len);
    check(rc == 0 && len == 12 && memcmp(body, "hello world\n", 12) == 0,
          "read_all gives \"hello world\\n\"", "rc %s, %zu bytes",
          lib_why(c, rc), len);
    free(body);
    check(hconn_response_closed(r) && hconn_response_length(r) == 0,
          "closed() is true after read_all", "closed %d length %lld",
          hconn_response_closed(r), (long long)hconn_response_length(r));
    rc = (int)hconn_response_read(r, &byte, 1);
    check(rc == 0, "read after the end returns 0", "%d", rc);
    hconn_response_close(r);

    /* read(12) exactly: closed() turns true as in http.client. */
    rc = lib_fetch(c, "GET", "/small.txt", NULL, &r);
    if (rc == 0) {
        char buf[12];
        ssize_t n = hconn_response_read(r, buf, sizeof(buf));

        check(n == 12 && hconn_response_closed(r),
              "read(length) reads all and closes", "n %zd closed %d", n,
              hconn_response_closed(r));
        hconn_response_close(r);
    }
}

/* GET /headers: getheader joins and defaults, getheaders order. */
static void
check_headers(hconn *c)
{
    const struct hconn_header *h;
    hconn_response *r;
    size_t n, a = SIZE_MAX, b = SIZE_MAX;
    const char *v, *conn1, *conn2;
    char *saved = NULL;
    int rc = lib_fetch(c, "GET", "/headers", NULL, &r);

    if (!check(rc == 0, "GET /headers", "%s", lib_why(c, rc)))
        return;
    v = hconn_response_getheader(r, "x-dup", NULL);
    check(v && strcmp(v, "a, b") == 0, "getheader(\"x-dup\") == \"a, b\"",
          "got %s", v ? v : "NULL");
    v = hconn_response_getheader(r, "X-DUP", NULL);
    check(v && strcmp(v, "a, b") == 0, "getheader is case-insensitive",
          "got %s", v ? v : "NULL");
    v = hconn_response_getheader(r, "X-Absent", "dflt");
    check(v && strcmp(v, "dflt") == 0, "getheader default for a missing field",
          "got %s", v ? v : "NULL");
    check(hconn_response_getheader(r, "X-Absent", NULL) == NULL,
          "getheader default NULL", "not NULL");
    n = hconn_response_getheaders(r, &h);
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(h[i].name, "X-Dup") == 0 && !strcmp(h[i].value, "a"))
            a = i;
        if (strcasecmp(h[i].name, "X-Dup") == 0 && !strcmp(h[i].value, "b"))
            b = i;
    }
    check(a < b && b < n, "getheaders keeps both X-Dup fields in order",
          "a at %zu, b at %zu of %zu", a, b, n);
    conn1 = hconn_response_getheader(r, "X-Connection", NULL);
    check(conn1 != NULL, "X-Connection present", "missing");
    saved = conn1 ? strdup(conn1) : NULL;
    hconn_response_close(r);

    /* A second request reuses the pooled upstream connection. */
    rc = lib_fetch(c, "GET", "/headers", NULL, &r);
    if (rc == 0) {
        conn2 = hconn_response_getheader(r, "X-Connection", NULL);
        check(hconn_response_reused(r) && saved && conn2 &&
                  strcmp(saved, conn2) == 0,
              "second GET /headers reuses the pooled connection",
              "reused %d, X-Connection %s then %s", hconn_response_reused(r),
              saved ? saved : "NULL", conn2 ? conn2 : "NULL");
        hconn_response_close(r);
    } else {
        check(false, "second GET /headers", "%s", lib_why(c, rc));
    }
    free(saved);
}

/* GET /big.bin with read(n) for several n, and with readinto. */
static void
check_big(hconn *c)
{
    static const size_t sizes[] = {1, 7, 4096, 1 << 20};
    char what[64];

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        hconn_response *r;
        char *body = NULL;
        size_t len = 0;
        int rc = lib_fetch(c, "GET", "/big.bin", NULL, &r);

        snprintf(what, sizeof(what), "GET /big.bin with read(%zu)", sizes[i]);
        if (rc == 0)
            rc = read_by(r, sizes[i], &body, &len);
        check(rc == 0 && is_big(body, len) && hconn_response_closed(r), what,
              "rc %s, %zu bytes", lib_why(c, rc), len);
        free(body);
        hconn_response_close(r);
    }

    hconn_response *r;
    int rc = lib_fetch(c, "GET", "/big.bin", NULL, &r);
    if (rc == 0) {
        char *body = malloc(BIG_SIZE + 65536);
        size_t got = 0;
        ssize_t n;
        bool short_ok = true;

        while ((n = hconn_response_readinto(r, body + got, 65536)) > 0) {
            got += (size_t)n;
            if (got > BIG_SIZE)
                break;
        }
        short_ok = n == 0;
        check(short_ok && is_big(body, got), "GET /big.bin with readinto",
              "last %zd (%s), %zu bytes", n, n < 0 ? lib_why(c, (int)n) : "",
              got);
        free(body);
        hconn_response_close(r);
    }
}

/* GET /chunked: readline, read_all, unknown length. */
static void
check_chunked(hconn *c)
{
    static const char *const lines[] = {"line1\n", "line2\n", "line3\n"};
    hconn_response *r;
    char line[64];
    ssize_t n;
    void *body;
    size_t len;
    bool ok = true;
    int rc = lib_fetch(c, "GET", "/chunked", NULL, &r);

    if (!check(rc == 0, "GET /chunked", "%s", lib_why(c, rc)))
        return;
    check(hconn_response_length(r) == -1, "chunked length is -1", "%lld",
          (long long)hconn_response_length(r));
    for (int i = 0; i < 3; i++) {
        n = hconn_response_readline(r, line, sizeof(line));
        if (n != 6 || strcmp(line, lines[i]) != 0) {
            ok = false;
            check(false, "readline over /chunked", "line %d: %zd \"%s\"", i, n,
                  n > 0 ? line : lib_why(c, (int)n));
            break;
        }
    }
    if (ok) {
        n = hconn_response_readline(r, line, sizeof(line));
        check(n == 0, "readline over /chunked: three lines, then 0", "%zd", n);
        check(hconn_response_closed(r), "closed() after the end", "false");
    }
    hconn_response_close(r);

    rc = lib_fetch(c, "GET", "/chunked", NULL, &r);
    if (rc == 0) {
        n = hconn_response_readline(r, line, 4);
        check(n == 3 && strcmp(line, "lin") == 0, "readline stops at size - 1",
              "%zd \"%s\"", n, line);
        rc = hconn_response_read_all(r, &body, &len);
        check(rc == 0 && len == 15 &&
                  memcmp(body, "e1\nline2\nline3\n", 15) == 0,
              "read_all over the rest of /chunked", "rc %s, %zu bytes",
              lib_why(c, rc), len);
        if (rc == 0)
            free(body);
        hconn_response_close(r);
    }
}

/* 404, POST /echo, HEAD. */
static void
check_misc(hconn *c)
{
    hconn_response *r;
    void *body;
    size_t len;
    char byte;
    int rc = lib_fetch(c, "GET", "/missing", NULL, &r);

    if (check(rc == 0 && hconn_response_status(r) == 404, "GET /missing is 404",
              "%s status %d", lib_why(c, rc),
              r ? hconn_response_status(r) : 0)) {
        rc = hconn_response_read_all(r, &body, &len);
        check(rc == 0, "404 body read to the end", "%s", lib_why(c, rc));
        if (rc == 0)
            free(body);
    }
    hconn_response_close(r);

    rc = lib_fetch(c, "POST", "/echo", "ping=1&x=2", &r);
    if (check(rc == 0 && hconn_response_status(r) == 200, "POST /echo", "%s",
              lib_why(c, rc))) {
        rc = hconn_response_read_all(r, &body, &len);
        check(rc == 0 && len == 10 && memcmp(body, "ping=1&x=2", 10) == 0,
              "POST /echo echoes the inline body", "rc %s, %zu bytes",
              lib_why(c, rc), len);
        if (rc == 0)
            free(body);
    }
    hconn_response_close(r);

    rc = lib_fetch(c, "HEAD", "/small.txt", NULL, &r);
    if (check(rc == 0 && hconn_response_status(r) == 200, "HEAD /small.txt",
              "%s", lib_why(c, rc))) {
        const char *cl = hconn_response_getheader(r, "Content-Length", "");

        check(hconn_response_length(r) == 0 && hconn_response_closed(r),
              "HEAD: length 0 and closed at once", "length %lld closed %d",
              (long long)hconn_response_length(r), hconn_response_closed(r));
        check(hconn_response_read(r, &byte, 1) == 0, "HEAD: read gives 0",
              "not 0");
        check(strcmp(cl, "12") == 0, "HEAD: Content-Length header kept",
              "got \"%s\"", cl);
    }
    hconn_response_close(r);
}

/* 20 requests before the first getresponse; answers in order. */
static void
check_pipelining(hconn *c)
{
    char body[32], what[80];
    int rc = 0, i, bad = -1;

    for (i = 0; i < 20 && rc == 0; i++) {
        if (i % 2 == 0) {
            snprintf(body, sizeof(body), "request %d", i);
            rc = hconn_request(c, "POST", "/echo", body, strlen(body), NULL, 0);
        } else {
            rc = hconn_request(c, "GET", "/small.txt", NULL, 0, NULL, 0);
        }
    }
    if (!check(rc == 0, "20 pipelined requests sent", "request %d: %s", i - 1,
               lib_why(c, rc)))
        return;
    for (i = 0; i < 20; i++) {
        hconn_response *r;
        void *got;
        size_t len;

        rc = hconn_getresponse(c, &r);
        if (rc == 0)
            rc = hconn_response_read_all(r, &got, &len);
        if (rc < 0) {
            bad = i;
            snprintf(what, sizeof(what), "%s", lib_why(c, rc));
            hconn_response_close(r);
            break;
        }
        if (i % 2 == 0)
            snprintf(body, sizeof(body), "request %d", i);
        else
            snprintf(body, sizeof(body), "hello world\n");
        if (len != strlen(body) || memcmp(got, body, len) != 0) {
            bad = i;
            snprintf(what, sizeof(what), "got %zu bytes \"%.*s\"", len,
                     (int)(len < 20 ? len : 20), (char *)got);
        }
        free(got);
        hconn_response_close(r);
        if (bad >= 0)
            break;
    }
    check(bad < 0, "20 pipelined responses come back in order",
          "response %d: %s", bad, bad >= 0 ? what : "");
}

/* putrequest / putheader / endheaders / send. */
static void
check_streaming(hconn *c)
{
    hconn_response *r;
    void *body;
    size_t len;
    int rc;

    rc = hconn_putrequest(c, "POST", "/echo", false, false);
    if (rc == 0)
        rc = hconn_putheader(c, "Content-Length", "11");
    if (rc == 0)
        rc = hconn_putheader(c, "Content-Type", "text/plain");
    if (rc == 0)
        rc = hconn_endheaders(c, NULL, 0);
    if (rc == 0)
        rc = hconn_send(c, "hello ", 6);
    if (rc == 0)
        rc = hconn_send(c, "world", 5);
    if (rc == 0)
        rc = hconn_getresponse(c, &r);
    if (check(rc == 0, "putrequest/putheader/endheaders/send POST /echo", "%s",
              lib_why(c, rc))) {
        rc = hconn_response_read_all(r, &body, &len);
        check(rc == 0 && len == 11 && memcmp(body, "hello world", 11) == 0,
              "streamed body with Content-Length echoed", "rc %s, %zu bytes",
              lib_why(c, rc), len);
        if (rc == 0)
            free(body);
        hconn_response_close(r);
    }

    rc = hconn_putrequest(c, "POST", "/echo", false, false);
    if (rc == 0)
        rc = hconn_putheader(c, "Content-Length", "3");
    if (rc == 0)
        rc = hconn_endheaders(c, NULL, 0);
    if (rc == 0) {
        rc = hconn_send(c, "abcd", 4);
        check(rc == HCONN_EBODY_LENGTH,
              "send beyond Content-Length is body_length", "%s",
              lib_why(c, rc));
        rc = hconn_send(c, "abc", 3);
    }
    if (rc == 0)
        rc = hconn_getresponse(c, &r);
    if (check(rc == 0, "request completes after a refused send", "%s",
              lib_why(c, rc))) {
        rc = hconn_response_read_all(r, &body, &len);
        check(rc == 0 && len == 3 && memcmp(body, "abc", 3) == 0,
              "only the bytes sent are echoed", "rc %s, %zu bytes",
              lib_why(c, rc), len);
        if (rc == 0)
            free(body);
        hconn_response_close(r);
    }

    /* Without a length the body ends at getresponse; send() takes raw
     * bytes and hconnd does the chunked framing. */
    rc = hconn_putrequest(c, "POST", "/echo", false, false);
    if (rc == 0)
        rc = hconn_putheader(c, "Transfer-Encoding", "chunked");
    if (rc == 0)
        rc = hconn_endheaders(c, NULL, 0);
    if (rc == 0)
        rc = hconn_send(c, "chunk1", 6);
    if (rc == 0)
        rc = hconn_send(c, "chunk2", 6);
    if (rc == 0)
        rc = hconn_getresponse(c, &r); /* sends the end frame */
    if (check(rc == 0, "streamed body with Transfer-Encoding", "%s",
              lib_why(c, rc))) {
        rc = hconn_response_read_all(r, &body, &len);
        check(rc == 0 && len == 12 && memcmp(body, "chunk1chunk2", 12) == 0,
              "streamed body of unknown length echoed", "rc %s, %zu bytes",
              lib_why(c, rc), len);
        if (rc == 0)
            free(body);
        hconn_response_close(r);
    }

    /* Fewer bytes than the Content-Length: getresponse sends the end
     * frame and hconnd reports the shortfall. */
    rc = hconn_putrequest(c, "POST", "/echo", false, false);
    if (rc == 0)
        rc = hconn_putheader(c, "Content-Length", "10");
    if (rc == 0)
        rc = hconn_endheaders(c, NULL, 0);
    if (rc == 0)
        rc = hconn_send(c, "abc", 3);
    if (rc == 0) {
        rc = hconn_getresponse(c, &r);
        check(rc == HCONN_EBODY_LENGTH,
              "a streamed body short of its Content-Length is body_length",
              "%s", lib_why(c, rc));
        if (rc == 0)
            hconn_response_close(r);
    } else {
        check(false, "streamed body short of its Content-Length", "%s",
              lib_why(c, rc));
    }

    /* The connection is still usable afterwards. */
    rc = lib_fetch(c, "GET", "/small.txt", NULL, &r);
    if (check(rc == 0, "a request after the body_length error", "%s",
              lib_why(c, rc))) {
        rc = hconn_response_read_all(r, &body, &len);
        if (rc == 0)
            free(body);
        hconn_response_close(r);
    }
}

/* response_not_ready, and draining a response closed unread. */
static void
check_states(hconn *c)
{
    hconn_response *r1, *r2;
    void *body;
    size_t len;
    int rc;

    rc = hconn_request(c, "GET", "/small.txt", NULL, 0, NULL, 0);
    if (rc == 0)
        rc = hconn_request(c, "GET", "/small.txt", NULL, 0, NULL, 0);
    if (rc == 0)
        rc = hconn_getresponse(c, &r1);
    if (!check(rc == 0, "two requests, first response", "%s", lib_why(c, rc)))
        return;
    rc = hconn_getresponse(c, &r2);
    check(rc == HCONN_ERESPONSE_NOT_READY,
          "getresponse before reading the previous body is "
          "response_not_ready",
          "%s", lib_why(c, rc));
    rc = hconn_response_read_all(r1, &body, &len);
    if (rc == 0)
        free(body);
    rc = hconn_getresponse(c, &r2);
    check(rc == 0, "getresponse works once the body was read", "%s",
          lib_why(c, rc));
    hconn_response_close(r1);
    if (rc == 0) {
        rc = hconn_response_read_all(r2, &body, &len);
        if (rc == 0)
            free(body);
        hconn_response_close(r2);
    }

    /* A response closed unread is drained before the next one. */
    rc = hconn_request(c, "GET", "/big.bin", NULL, 0, NULL, 0);
    if (rc == 0)
        rc = hconn_request(c, "GET", "/small.txt", NULL, 0, NULL, 0);
    if (rc == 0)
        rc = hconn_getresponse(c, &r1);
    if (rc == 0) {
        char buf[100];

        rc = (int)hconn_response_read(r1, buf, sizeof(buf));
        hconn_response_close(r1);
        rc = hconn_getresponse(c, &r2);
    }
    if (check(rc == 0, "response after one closed unread", "%s",
              lib_why(c, rc))) {
        rc = hconn_response_read_all(r2, &body, &len);
        check(rc == 0 && len == 12 && memcmp(body, "hello world\n", 12) == 0,
              "the closed body was drained", "rc %s, %zu bytes", lib_why(c, rc),
              len);
        if (rc == 0)
            free(body);
        hconn_response_close(r2);
    }
}

/* Reads /truncated with read(size) until it ends; returns the final code
 * and the byte count. */
static int
read_truncated(hconn *c, size_t size, size_t *total)
{
    hconn_response *r;
    char buf[4096];
    ssize_t n;
    int rc = lib_fetch(c, "GET", "/truncated", NULL, &r);

    *total = 0;
    if (rc < 0)
        return rc;
    while ((n = hconn_response_read(r, buf, size)) > 0)
        *total += (size_t)n;
    if (n < 0 && hconn_response_read(r, buf, size) != n)
        n = 1; /* the error must stick */
    hconn_response_close(r);
    return (int)n;
}

/* A connection with TLS options: tls, ca_file, server_name, insecure.
 * Returns the hconn_new code; *cp is set as hconn_new sets it. */
static int
new_tls(hconn **cp, const char *origin, bool tls, const char *ca_file,
        const char *server_name, bool insecure)
{
    struct hconn_options o = {
        .tls = tls,
        .ca_file = ca_file,
        .server_name = server_name,
        .insecure = insecure,
    };

    return hconn_new(cp, origin, 0, &o);
}

/* GET /small.txt on c; returns 0 with *status and the body checked against
 * "hello world\n" in *exact, or the code. */
static int
tls_get_small(hconn *c, int *status, bool *exact)
{
    hconn_response *r;
    void *body;
    size_t len;
    int rc = lib_fetch(c, "GET", "/small.txt", NULL, &r);

    *status = 0;
    *exact = false;
    if (rc < 0)
        return rc;
    *status = hconn_response_status(r);
    rc = hconn_response_read_all(r, &body, &len);
    if (rc == 0) {
        *exact = len == 12 && memcmp(body, "hello world\n", 12) == 0;
        free(body);
    }
    hconn_response_close(r);
    return rc;
}

/* Option checks that hconn_new does itself. */
static void
check_tls_options_offline(const char *origin, const char *ca_file)
{
    hconn *c;
    int rc;

    rc = new_tls(&c, origin, false, ca_file, NULL, false);
    check(rc == HCONN_EINVALID_ARGUMENT && strstr(hconn_errmsg(c), "tls"),
          "ca_file without tls is invalid_argument", "%s", lib_why(c, rc));
    hconn_free(c);
    rc = new_tls(&c, origin, false, NULL, NULL, true);
    check(rc == HCONN_EINVALID_ARGUMENT,
          "insecure without tls is "
          "invalid_argument",
          "%s", lib_why(c, rc));
    hconn_free(c);
    rc = new_tls(&c, origin, true, ca_file, NULL, true);
    check(rc == HCONN_EINVALID_ARGUMENT &&
              strstr(hconn_errmsg(c), "contradictory"),
          "insecure with ca_file is invalid_argument", "%s", lib_why(c, rc));
    hconn_free(c);
    rc = hconn_new(&c, origin, 0,
                   &(struct hconn_options){.tls = true, .min_version = "1.1"});
    check(rc == HCONN_EINVALID_ARGUMENT,
          "min_version \"1.1\" is "
          "invalid_argument",
          "%s", lib_why(c, rc));
    hconn_free(c);
    rc = new_tls(&c, origin, true, NULL, "bad name/", false);
    check(rc == HCONN_EINVALID_ARGUMENT,
          "a server_name with '/' is "
          "invalid_argument",
          "%s", lib_why(c, rc));
    hconn_free(c);
    rc = hconn_new(&c, origin, 0,
                   &(struct hconn_options){.tls = true, .key_file = ca_file});
    check(rc == HCONN_EINVALID_ARGUMENT,
          "key_file without cert_file is "
          "invalid_argument",
          "%s", lib_why(c, rc));
    hconn_free(c);
}

/* https to nginx's TLS server: verification with and without the test CA,
 * the server name, insecure, options without tls. */
static void
check_tls(const char *origin, const char *ca_file)
{
    hconn *c;
    char *copy;
    const char *proto;
    hconn_response *r;
    bool exact = false;
    int rc, status = 0;

    check_tls_options_offline(origin, ca_file);

    /* The CA file's name is copied: the caller's buffer may go away. */
    copy = strdup(ca_file);
    rc = new_tls(&c, origin, true, copy, NULL, false);
    memset(copy, 'x', strlen(copy));
    free(copy);
    if (rc == 0)
        rc = tls_get_small(c, &status, &exact);
    check(rc == 0 && status == 200 && exact,
          "GET /small.txt over TLS verified with ca_file: 200, exact body",
          "%s, status %d, body %s", lib_why(c, rc), status,
          exact ? "ok" : "wrong");
    /* Again on the same hconn: the pooled TLS connection. */
    rc = tls_get_small(c, &status, &exact);
    check(rc == 0 && status == 200 && exact, "a second GET over TLS",
          "%s, status %d", lib_why(c, rc), status);
    hconn_free(c);

    rc = new_tls(&c, origin, true, NULL, NULL, false);
    if (rc == 0)
        rc = tls_get_small(c, &status, &exact);
    check(rc == HCONN_ETLS_VERIFY_FAILED &&
              strstr(hconn_errmsg(c), "certificate"),
          "system trust store only: tls_verify_failed naming the "
          "certificate",
          "%s", lib_why(c, rc));
    hconn_free(c);

    rc = new_tls(&c, origin, true, ca_file, "wrong.example", false);
    if (rc == 0)
        rc = tls_get_small(c, &status, &exact);
    check(rc == HCONN_ETLS_VERIFY_FAILED,
          "server_name \"wrong.example\": tls_verify_failed", "%s",
          lib_why(c, rc));
    hconn_free(c);

    /* SSLContext.check_hostname = False: the chain is still verified. */
    rc = hconn_new(&c, origin, 0,
                   &(struct hconn_options){.tls = true,
                                           .ca_file = ca_file,
                                           .server_name = "wrong.example",
                                           .no_check_hostname = true});
    if (rc == 0)
        rc = tls_get_small(c, &status, &exact);
    check(rc == 0 && status == 200 && exact,
          "no_check_hostname with server_name \"wrong.example\": 200",
          "%s, status %d", lib_why(c, rc), status);
    hconn_free(c);
    rc = hconn_new(
        &c, origin, 0,
        &(struct hconn_options){.tls = true, .no_check_hostname = true});
    if (rc == 0)
        rc = tls_get_small(c, &status, &exact);
    check(rc == HCONN_ETLS_VERIFY_FAILED,
          "no_check_hostname still verifies the chain: tls_verify_failed", "%s",
          lib_why(c, rc));
    hconn_free(c);

    rc = new_tls(&c, origin, true, ca_file, "localhost", false);
    if (rc == 0)
        rc = tls_get_small(c, &status, &exact);
    check(rc == 0 && status == 200 && exact,
          "server_name \"localhost\" with ca_file: 200", "%s, status %d",
          lib_why(c, rc), status);
    hconn_free(c);

    rc = new_tls(&c, origin, true, NULL, NULL, true);
    if (rc == 0)
        rc = tls_get_small(c, &status, &exact);
    check(rc == 0 && status == 200 && exact, "insecure: 200, exact body",
          "%s, status %d", lib_why(c, rc), status);
    hconn_free(c);

    rc = hconn_new(&c, origin, 0,
                   &(struct hconn_options){
                       .tls = true, .ca_file = ca_file, .min_version = "1.3"});
    if (rc == 0)
        rc = lib_fetch(c, "GET", "/small.txt", NULL, &r);
    if (check(rc == 0, "min_version \"1.3\" with ca_file", "%s",
              lib_why(c, rc))) {
        proto = hconn_response_getheader(r, "X-TLS-Protocol", "");
        check(strcmp(proto, "TLSv1.3") == 0,
              "min_version \"1.3\" gets "
              "TLSv1.3",
              "got \"%s\"", proto);
        hconn_response_close(r);
    }
    hconn_free(c);
}

/* The fault origin: every way of reading a truncated body fails. */
static void
check_truncated(hconn *c)
{
    static const size_t sizes[] = {1, 100, 500, 1000, 4096};
    char what[80];
    hconn_response *r;
    void *body = (void *)1;
    size_t total, len = 1;
    int rc;

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        rc = read_truncated(c, sizes[i], &total);
        snprintf(what, sizeof(what),
                 "read(%zu) of /truncated ends in incomplete_read", sizes[i]);
        check(rc == HCONN_EINCOMPLETE_READ && total == 500 &&
                  strstr(hconn_errmsg(c), "500") &&
                  strstr(hconn_errmsg(c), "1000"),
              what, "%d %s after %zu bytes", rc, lib_why(c, rc), total);
    }
    rc = lib_fetch(c, "GET", "/truncated", NULL, &r);
    if (rc == 0) {
        rc = hconn_response_read_all(r, &body, &len);
        /* IncompleteRead.partial: the 500 bytes that came are handed
         * over with the error (httpclient-check checks them). */
        check(rc == HCONN_EINCOMPLETE_READ && body != NULL && len == 500 &&
                  hconn_response_closed(r),
              "read_all of /truncated is incomplete_read, with the partial "
              "body",
              "%s, %zu bytes", lib_why(c, rc), len);
        free(body);
        hconn_response_close(r);
    } else {
        check(false, "GET /truncated", "%s", lib_why(c, rc));
    }
    rc = lib_fetch(c, "GET", "/truncated", NULL, &r);
    if (rc == 0) {
        char buf[64];
        ssize_t n;
        size_t got = 0;

        while ((n = hconn_response_readinto(r, buf, sizeof(buf))) > 0)
            got += (size_t)n;
        check(n == HCONN_EINCOMPLETE_READ && got == 500,
              "readinto of /truncated ends in incomplete_read",
              "%zd after %zu bytes", n, got);
        hconn_response_close(r);
    }
}

int
main(int argc, char **argv)
{
    bool truncated = argc == 3 && strcmp(argv[1], "--truncated") == 0;
    bool tls = argc == 4 && strcmp(argv[1], "--tls") == 0;
    const char *origin = argv[tls ? 2 : argc - 1];
    hconn *c;

    if (!(argc == 2 && argv[1][0] != '-') && !truncated && !tls) {
        fprintf(stderr, "usage: lib-check [--truncated] HOST:PORT\n"
                        "       lib-check --tls HOST:PORT CA_FILE\n"
                        "(the daemon socket comes from $HCONN_SOCKET)\n");
        return 2;
    }
    if (tls) {
        check_tls(origin, argv[3]);
        return tap_finish();
    }
    c = lib_new(origin, NULL);
    if (truncated) {
        check_truncated(c);
    } else {
        check_offline();
        check_small(c);
        check_headers(c);
        check_big(c);
        check_chunked(c);
        check_misc(c);
        check_pipelining(c);
        check_streaming(c);
        check_states(c);
    }
    hconn_free(c);
    return tap_finish();
}
