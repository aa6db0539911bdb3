/*
 * httpclient-check.c — libhconn's http.client semantics against a real
 * hconnd, as TAP: close then reuse, readinto and read1, IncompleteRead's
 * partial body and counts, the empty URL, putheader with several values,
 * the HTTPStatus constants, blocksize, no timeout, debuglevel output,
 * Transfer-Encoding under putrequest, and a body that stops once its
 * request is answered.
 *
 *   httpclient-check --nginx HOST:PORT   the harness's nginx (/small.txt,
 *                                        /big.bin, POST /echo)
 *   httpclient-check --fault HOST:PORT   the fault origin of
 *                                        test_httpclient.py (/pieces,
 *                                        /truncated, /slow, /413, /record)
 *   httpclient-check --status-table      prints "code|phrase|description"
 *                                        per known status, for comparison
 *                                        with Python's http.HTTPStatus
 *   httpclient-check --debug HOST:PORT   GET /record with debuglevel 1;
 *                                        the output is on stderr
 *
 * The daemon socket comes from $HCONN_SOCKET. Exits 1 if a check failed.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hconn.h"
#include "lib-util.h"
#include "tap.h"

#define BIG_SIZE (1024 * 1024) /* bytes of nginx's /big.bin */

/* Whether buf holds /big.bin's bytes from offset off. */
static bool
is_big_at(const char *buf, size_t len, size_t off)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)buf[i] != (off + i) % 251)
            return false;
    return true;
}

/* Runs fn with stderr going to a temporary file; returns what was
 * written there (malloc'd, NUL-terminated). */
static char *
capture_stderr(void (*fn)(void *), void *arg)
{
    char path[] = "/tmp/httpclient-check-XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    char *out = calloc(1, 1 << 20);
    ssize_t n;

    if (fd < 0 || saved < 0 || !out) {
        printf("Bail out! cannot capture stderr\n");
        exit(1);
    }
    unlink(path);
    fflush(stderr);
    dup2(fd, 2);
    fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    n = read(fd, out, (1 << 20) - 1);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    return out;
}

/* ---- Offline ----------------------------------------------------------- */

/* The constants and tables. */
static void
check_constants(void)
{
    const char *d = hconn_status_description(HCONN_STATUS_NOT_FOUND);

    check(HCONN_HTTP_PORT == 80 && HCONN_HTTPS_PORT == 443,
          "HCONN_HTTP_PORT 80, HCONN_HTTPS_PORT 443", "%d %d", HCONN_HTTP_PORT,
          HCONN_HTTPS_PORT);
    check(HCONN_STATUS_OK == 200 && HCONN_STATUS_IM_A_TEAPOT == 418 &&
              HCONN_STATUS_NETWORK_AUTHENTICATION_REQUIRED == 511,
          "HCONN_STATUS_ values are the codes", "%s", "no");
    check(HCONN_STATUS_CONTENT_TOO_LARGE == 413 &&
              HCONN_STATUS_REQUEST_ENTITY_TOO_LARGE == 413 &&
              HCONN_STATUS_UNPROCESSABLE_CONTENT ==
                  HCONN_STATUS_UNPROCESSABLE_ENTITY,
          "the names Python 3.13 renamed exist in both spellings", "%s", "no");
    check(strcmp(hconn_status_phrase(HCONN_STATUS_NOT_FOUND), "Not Found") ==
                  0 &&
              d && strcmp(d, "Nothing matches the given URI") == 0,
          "hconn_status_phrase/description(404)", "description %s",
          d ? d : "NULL");
    d = hconn_status_description(HCONN_STATUS_PROCESSING);
    check(d && *d == '\0' && hconn_status_phrase(799) == NULL &&
              hconn_status_description(799) == NULL,
          "no description is \"\", an unknown code NULL", "102: %s",
          d ? d : "NULL");
}

/* Checks hconn_new and the request calls make before any I/O. */
static void
check_offline(const char *origin)
{
    hconn *c;
    int rc;

    rc = hconn_new(&c, origin, 0,
                   &(struct hconn_options){.timeout = HCONN_TIMEOUT_NONE});
    check(rc == 0, "timeout HCONN_TIMEOUT_NONE is accepted", "%s",
          lib_why(c, rc));
    hconn_free(c);
    rc = hconn_new(&c, origin, 0, &(struct hconn_options){.timeout = -2});
    check(rc == HCONN_EINVALID_ARGUMENT, "another negative timeout is not",
          "%s", lib_why(c, rc));
    hconn_free(c);
    rc = hconn_new(&c, origin, 0,
                   &(struct hconn_options){.blocksize = 17 * 1024 * 1024});
    check(rc == HCONN_EINVALID_ARGUMENT, "blocksize over 16 MiB is refused",
          "%s", lib_why(c, rc));
    hconn_free(c);
    rc = hconn_new(&c, origin, 0,
                   &(struct hconn_options){.no_check_hostname = true});
    check(rc == HCONN_EINVALID_ARGUMENT,
          "no_check_hostname without tls is invalid_argument", "%s",
          lib_why(c, rc));
    hconn_free(c);
    rc = hconn_new(&c, origin, 0,
                   &(struct hconn_options){.tls = true,
                                           .insecure = true,
                                           .no_check_hostname = true});
    check(rc == HCONN_EINVALID_ARGUMENT,
          "no_check_hostname with insecure is invalid_argument", "%s",
          lib_why(c, rc));
    hconn_free(c);

    c = lib_new(origin, NULL);
    rc = hconn_request(c, "POST", "/", "hello", 5,
                       &(struct hconn_header){"Content-Length", "3"}, 1);
    check(rc == HCONN_EINVALID_HEADER,
          "a Content-Length other than the body's is invalid_header", "%s",
          lib_why(c, rc));
    rc = hconn_request(c, "POST", "/", "hello", 5,
                       &(struct hconn_header){"Transfer-Encoding", "gzip"}, 1);
    check(rc == HCONN_EINVALID_HEADER,
          "Transfer-Encoding other than chunked is invalid_header", "%s",
          lib_why(c, rc));
    rc = hconn_putrequest(c, "POST", "/", false, false);
    if (rc == 0)
        rc = hconn_putheader(c, "Transfer-Encoding", "chunked");
    if (rc == 0)
        rc = hconn_putheader(c, "Content-Length", "5");
    if (rc == 0)
        rc = hconn_endheaders(c, NULL, 0);
    check(rc == HCONN_EINVALID_HEADER,
          "putrequest with Transfer-Encoding and Content-Length is "
          "invalid_header",
          "%s", lib_why(c, rc));
    rc = hconn_putrequest(c, "GET", "/", false, false);
    if (rc == 0)
        rc = hconn_putheaderv(c, "X-List", NULL, 2);
    check(rc == HCONN_EINVALID_ARGUMENT,
          "putheaderv with NULL values is invalid_argument", "%s",
          lib_why(c, rc));
    rc = hconn_putheaderv(c, "X-List", (const char *[]){"a", "b\r\nc"}, 2);
    check(rc == HCONN_EINVALID_HEADER,
          "putheaderv checks the joined value for CR/LF", "%s", lib_why(c, rc));
    hconn_close(c);
    rc = hconn_putrequest(c, "GET", "/", false, false);
    check(rc == 0, "close forgets an unfinished putrequest", "%s",
          lib_why(c, rc));
    hconn_free(c);
    hconn_close(NULL);
    hconn_free(NULL);
}

/* ---- Against nginx ----------------------------------------------------- */

/* close() mid-body and with a request outstanding; then the same hconn
 * serves the next request (http.client reconnects). */
static void
check_close(const char *origin)
{
    hconn *c = lib_new(origin, NULL);
    hconn_response *r = NULL;
    char buf[100];
    ssize_t n = 0;
    int rc;

    rc = lib_fetch(c, "GET", "/big.bin", NULL, &r);
    if (rc == 0)
        n = hconn_response_read(r, buf, sizeof(buf));
    check(rc == 0 && n == (ssize_t)sizeof(buf), "read 100 bytes of /big.bin",
          "%s, n %zd", lib_why(c, rc), n);
    hconn_close(c);
    if (r) {
        n = hconn_response_read(r, buf, sizeof(buf));
        check(n == 0 && hconn_response_closed(r),
              "after close the response reads as closed and empty", "n %zd", n);
        check(hconn_response_status(r) == 200,
              "after close the response's head is still there", "status %d",
              hconn_response_status(r));
    }
    rc = hconn_request(c, "GET", "/small.txt", NULL, 0, NULL, 0);
    if (rc == 0) {
        hconn_close(c);
        rc = hconn_getresponse(c, &(hconn_response *){NULL});
        check(rc == HCONN_ERESPONSE_NOT_READY,
              "close forgets the request sent: getresponse is "
              "response_not_ready",
              "%s", lib_why(c, rc));
    }
    {
        hconn_response *r2 = NULL;
        void *body = NULL;
        size_t len = 0;

        rc = lib_fetch(c, "GET", "/small.txt", NULL, &r2);
        if (rc == 0)
            rc = hconn_response_read_all(r2, &body, &len);
        check(rc == 0 && len == 12 && memcmp(body, "hello world\n", 12) == 0,
              "the closed hconn serves the next request", "%s, %zu bytes",
              lib_why(c, rc), len);
        free(body);
        hconn_response_close(r2);
    }
    hconn_response_close(r); /* valid after close, before free */
    /* Responses still open when the hconn is freed are freed with it. */
    rc = lib_fetch(c, "GET", "/small.txt", NULL, &r);
    check(rc == 0, "a response left open for hconn_free", "%s", lib_why(c, rc));
    hconn_free(c);
}

/* readinto fills the buffer; read1 returns one piece. */
static void
check_readinto(const char *origin)
{
    hconn *c = lib_new(origin, NULL);
    hconn_response *r;
    static char buf[BIG_SIZE];
    size_t got = 0;
    ssize_t n = 0;
    int rc = lib_fetch(c, "GET", "/big.bin", NULL, &r);

    if (rc == 0) {
        n = hconn_response_readinto(r, buf, 300000);
        check(n == 300000 && is_big_at(buf, 300000, 0),
              "readinto(300000) fills the buffer", "n %zd", n);
        got = n > 0 ? (size_t)n : 0;
        n = hconn_response_read1(r, buf, sizeof(buf));
        check(n > 0 && (size_t)n < BIG_SIZE - got && is_big_at(buf, n, got),
              "read1 returns one piece, not the whole rest", "n %zd", n);
        got += n > 0 ? (size_t)n : 0;
        n = hconn_response_readinto(r, buf, sizeof(buf));
        check(n >= 0 && got + (size_t)n == BIG_SIZE && is_big_at(buf, n, got),
              "readinto past the end returns the rest, short", "n %zd", n);
        n = hconn_response_readinto(r, buf, sizeof(buf));
        check(n == 0, "then 0", "n %zd", n);
        hconn_response_close(r);
    } else {
        check(false, "GET /big.bin", "%s", lib_why(c, rc));
    }
    hconn_free(c);
}

/* POST to /echo with putrequest + Transfer-Encoding: chunked + send():
 * the bytes are raw data that hconnd chunk-encodes once. */
static void
check_putrequest_chunked(const char *origin)
{
    hconn *c = lib_new(origin, NULL);
    hconn_response *r = NULL;
    void *body = NULL;
    size_t len = 0;
    int rc = hconn_putrequest(c, "POST", "/echo", false, false);

    if (rc == 0)
        rc = hconn_putheader(c, "Transfer-Encoding", "chunked");
    if (rc == 0)
        rc = hconn_endheaders(c, NULL, 0);
    if (rc == 0)
        rc = hconn_send(c, "5\r\nhello", 8);
    if (rc == 0)
        rc = hconn_getresponse(c, &r);
    if (rc == 0)
        rc = hconn_response_read_all(r, &body, &len);
    check(rc == 0 && len == 8 && memcmp(body, "5\r\nhello", 8) == 0,
          "putrequest + Transfer-Encoding: chunked + send: the bytes arrive "
          "as sent (chunk-encoded once, by hconnd)",
          "%s, %zu bytes: %.*s", lib_why(c, rc), len, (int)len,
          body ? (char *)body : "");
    free(body);
    hconn_response_close(r);
    hconn_free(c);
}

/* hconn_request with Transfer-Encoding: chunked and an inline body: the
 * same rule as putrequest, the bytes are data that hconnd chunk-encodes. */
static void
check_request_chunked(const char *origin)
{
    hconn *c = lib_new(origin, NULL);
    hconn_response *r = NULL;
    void *body = NULL;
    size_t len = 0;
    int rc = hconn_request(
        c, "POST", "/echo", "5\r\nhello", 8,
        &(struct hconn_header){"Transfer-Encoding", "chunked"}, 1);

    if (rc == 0)
        rc = hconn_getresponse(c, &r);
    if (rc == 0)
        rc = hconn_response_read_all(r, &body, &len);
    check(rc == 0 && len == 8 && memcmp(body, "5\r\nhello", 8) == 0,
          "hconn_request + Transfer-Encoding: chunked: the bytes arrive as "
          "given (chunk-encoded once, by hconnd)",
          "%s, %zu bytes", lib_why(c, rc), len);
    free(body);
    hconn_response_close(r);
    hconn_free(c);
}

/* What blocksize_send does under captured stderr. */
struct block_run {
    const char *origin;
    int rc;
    size_t len;
    bool same;
};

/* POSTs 2500 bytes to /echo with blocksize 1000 and debuglevel 2. */
static void
blocksize_send(void *arg)
{
    struct block_run *b = arg;
    hconn *c = lib_new(b->origin, &(struct hconn_options){.blocksize = 1000});
    static char data[2500];
    hconn_response *r = NULL;
    void *body = NULL;

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)('a' + i % 26);
    hconn_set_debuglevel(c, 2);
    b->rc = hconn_request_stream(c, "POST", "/echo", NULL, 0,
                                 HCONN_LENGTH_UNKNOWN, 0);
    if (b->rc == 0)
        b->rc = hconn_send(c, data, sizeof(data));
    if (b->rc == 0)
        b->rc = hconn_getresponse(c, &r);
    if (b->rc == 0)
        b->rc = hconn_response_read_all(r, &body, &b->len);
    b->same = b->rc == 0 && b->len == sizeof(data) &&
              memcmp(body, data, sizeof(data)) == 0;
    free(body);
    hconn_response_close(r);
    hconn_free(c);
}

/* Counts occurrences of needle in s. */
static int
count(const char *s, const char *needle)
{
    int n = 0;

    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* blocksize: one data frame per blocksize bytes. */
static void
check_blocksize(const char *origin)
{
    struct block_run b = {.origin = origin};
    char *err = capture_stderr(blocksize_send, &b);

    check(b.rc == 0 && b.same, "a 2500-byte streamed body arrives whole",
          "%s, %zu bytes", hconn_error_name(b.rc), b.len);
    check(count(err, "\"data\":1000") == 2 && count(err, "\"data\":500") == 1,
          "blocksize 1000: frames of 1000, 1000 and 500 bytes",
          "debug output: %.300s", err);
    free(err);
}

/* ---- Against the fault origin ----------------------------------------- */

/* read1 returns the first piece although the second one follows. */
static void
check_read1_pieces(hconn *c)
{
    hconn_response *r;
    char buf[100];
    ssize_t n = 0;
    int rc = lib_fetch(c, "GET", "/pieces", NULL, &r);

    if (rc == 0)
        n = hconn_response_read1(r, buf, sizeof(buf));
    check(n == 3 && memcmp(buf, "abc", 3) == 0,
          "read1 returns the first piece alone", "%s, n %zd", lib_why(c, rc),
          n);
    if (rc == 0) {
        n = hconn_response_readinto(r, buf, sizeof(buf));
        check(n == 4 && memcmp(buf, "defg", 4) == 0,
              "readinto returns the rest at the end of the body", "n %zd", n);
        hconn_response_close(r);
    }
}

/* IncompleteRead: read_all hands over the partial body and the counts. */
static void
check_incomplete(hconn *c)
{
    hconn_response *r;
    void *body = NULL;
    size_t len = 0;
    uint64_t received = 0;
    int64_t expected = 0;
    bool inc;
    int rc = lib_fetch(c, "GET", "/truncated", NULL, &r);

    if (rc != 0) {
        check(false, "GET /truncated", "%s", lib_why(c, rc));
        return;
    }
    inc = hconn_response_incomplete_read(r, &received, &expected);
    check(!inc && received == 0 && expected == -1,
          "incomplete_read is false before the body failed", "%s", "it is not");
    rc = hconn_response_read_all(r, &body, &len);
    check(rc == HCONN_EINCOMPLETE_READ && body && len == 500 &&
              memcmp(body, "xxxxx", 5) == 0,
          "read_all of /truncated: incomplete_read with the 500 bytes that "
          "came (IncompleteRead.partial)",
          "%s, body %p, %zu bytes", lib_why(c, rc), body, len);
    inc = hconn_response_incomplete_read(r, &received, &expected);
    check(inc && received == 500 && expected == 1000,
          "hconn_response_incomplete_read: received 500, expected 1000",
          "%d %llu %lld", inc, (unsigned long long)received,
          (long long)expected);
    free(body);
    hconn_response_close(r);
}

/* HCONN_TIMEOUT_NONE outwaits a daemon whose read_timeout is shorter
 * than the origin's delay; the default does not. */
static void
check_no_timeout(const char *origin)
{
    hconn *c =
        lib_new(origin, &(struct hconn_options){.timeout = HCONN_TIMEOUT_NONE});
    hconn_response *r;
    int rc = lib_fetch(c, "GET", "/slow", NULL, &r);

    check(rc == 0 && hconn_response_status(r) == 200,
          "timeout HCONN_TIMEOUT_NONE: the slow origin's 200", "%s",
          lib_why(c, rc));
    if (rc == 0)
        hconn_response_close(r);
    hconn_free(c);
    c = lib_new(origin, NULL);
    rc = lib_fetch(c, "GET", "/slow", NULL, &r);
    check(rc == HCONN_ETIMEOUT, "the default: hconnd's read timeout", "%s",
          lib_why(c, rc));
    if (rc == 0)
        hconn_response_close(r);
    hconn_free(c);
}

/* An upload stops once the origin answered 413. */
static void
check_upload_stops(hconn *c)
{
    static char piece[64 * 1024];
    const uint64_t total = 256ull * 1024 * 1024;
    hconn_response *r = NULL;
    uint64_t sent = 0;
    int rc;

    rc = hconn_request_stream(c, "PUT", "/413", NULL, 0, HCONN_LENGTH_UNKNOWN,
                              0);
    while (rc == 0 && sent < total) {
        rc = hconn_send(c, piece, sizeof(piece));
        if (rc == 0)
            sent += sizeof(piece);
    }
    check(rc == HCONN_ECANNOT_SEND_REQUEST && strstr(hconn_errmsg(c), "413") &&
              sent < total,
          "a body stops once its request is answered (413)",
          "%s after %llu of %llu bytes", lib_why(c, rc),
          (unsigned long long)sent, (unsigned long long)total);
    rc = hconn_send(c, piece, 1);
    check(rc == HCONN_ECANNOT_SEND_REQUEST, "and stays stopped", "%s",
          lib_why(c, rc));
    rc = hconn_getresponse(c, &r);
    check(rc == 0 && hconn_response_status(r) == 413,
          "getresponse returns the 413", "%s", lib_why(c, rc));
    hconn_response_close(r);
    rc = lib_fetch(c, "GET", "/record", NULL, &r);
    check(rc == 0 && hconn_response_status(r) == 200,
          "the next request on the same hconn is served", "%s", lib_why(c, rc));
    hconn_response_close(r);
}

/* The empty URL and putheader with several values: the Python side looks
 * at what the origin received. */
static void
check_requests_recorded(hconn *c)
{
    hconn_response *r = NULL;
    int rc = lib_fetch(c, "POST", "", NULL, &r);

    check(rc == 0 && hconn_response_status(r) == 200,
          "POST with an empty URL is sent (as \"/\")", "%s", lib_why(c, rc));
    hconn_response_close(r);
    rc = hconn_putrequest(c, "GET", "/record", false, false);
    if (rc == 0)
        rc =
            hconn_putheaderv(c, "X-List", (const char *[]){"a", "b c", "d"}, 3);
    if (rc == 0)
        rc = hconn_putheaderv(c, "X-Empty", NULL, 0);
    if (rc == 0)
        rc = hconn_endheaders(c, NULL, 0);
    if (rc == 0)
        rc = hconn_getresponse(c, &r);
    check(rc == 0, "putheaderv request", "%s", lib_why(c, rc));
    hconn_response_close(r);
}

/* --debug: one GET with debuglevel 1, output on stderr. */
static int
run_debug(const char *origin)
{
    hconn *c = lib_new(origin, NULL);
    hconn_response *r = NULL;
    void *body = NULL;
    size_t len;
    int rc;

    hconn_set_debuglevel(c, 1);
    rc = hconn_request(c, "POST", "/record", "x=1", 3,
                       &(struct hconn_header){"X-Test", "it's"}, 1);
    if (rc == 0)
        rc = hconn_getresponse(c, &r);
    if (rc == 0)
        rc = hconn_response_read_all(r, &body, &len);
    free(body);
    hconn_response_close(r);
    hconn_free(c);
    return rc == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--status-table") == 0) {
        for (int s = 100; s < 600; s++)
            if (hconn_status_phrase(s))
                printf("%d|%s|%s\n", s, hconn_status_phrase(s),
                       hconn_status_description(s));
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: httpclient-check --nginx|--fault|--debug "
                        "HOST:PORT\n"
                        "       httpclient-check --status-table\n");
        return 2;
    }
    if (strcmp(argv[1], "--debug") == 0)
        return run_debug(argv[2]);
    if (strcmp(argv[1], "--nginx") == 0) {
        check_constants();
        check_offline(argv[2]);
        check_close(argv[2]);
        check_readinto(argv[2]);
        check_putrequest_chunked(argv[2]);
        check_request_chunked(argv[2]);
        check_blocksize(argv[2]);
    } else if (strcmp(argv[1], "--fault") == 0) {
        /* No read timeout here: the daemon's is short for /slow's sake. */
        hconn *c = lib_new(
            argv[2], &(struct hconn_options){.timeout = HCONN_TIMEOUT_NONE});

        check_read1_pieces(c);
        check_incomplete(c);
        check_requests_recorded(c);
        check_upload_stops(c);
        hconn_free(c);
        check_no_timeout(argv[2]);
    } else {
        return 2;
    }
    return tap_finish();
}
