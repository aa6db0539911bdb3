/*
 * pipeline-check.c — libhconn's streamed uploads, 100-continue, pipelining,
 * non-blocking mode and strict close semantics against a real hconnd, as
 * TAP ("ok N - what" / "not ok N - what (detail)", then "1..N"; exit 1 if
 * any check failed). Run by test_dugong.py; the daemon socket comes from
 * $HCONN_SOCKET.
 *
 *   pipeline-check pipeline HOST:PORT COUNT SIZE
 *       nginx: COUNT POST /echo requests of SIZE bytes each, all sent
 *       before the first response is read; every echo checked in order
 *   pipeline-check nonblock HOST:PORT
 *       nginx: the same in non-blocking mode with poll(2): streamed
 *       bodies, GET /big.bin, /chunked, read_all and readline resumed
 *   pipeline-check sendfd HOST:PORT FILE
 *       nginx: FILE streamed with hconn_send_fd, with its length and
 *       chunked from a pipe, echoed exactly
 *   pipeline-check expect HOST:PORT
 *       fault origin: /continue answers 100 then 201 "got it"; /refuse
 *       answers 403 "no" at once; /ok answers 200 "ok"
 *   pipeline-check strict HOST:PORT
 *       fault origin: /close-delimited sends 3000 bytes without length
 *       and closes; /cut announces 1000, sends 600 and closes; /reset
 *       announces 1000, sends 600 and resets
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hconn.h"
#include "tap.h"

/* The text of a failure for a detail line. */
static const char *
why(hconn *c, int rc)
{
    static char buf[600];

    snprintf(buf, sizeof(buf), "%s: %s", hconn_error_name(rc), hconn_errmsg(c));
    return buf;
}

/* A new hconn to origin; exits if even that fails. */
static hconn *
open_conn(const char *origin)
{
    hconn *c;
    int rc = hconn_new(&c, origin, 0, NULL);

    if (rc < 0) {
        printf("Bail out! hconn_new(%s): %s\n", origin, hconn_error_name(rc));
        exit(1);
    }
    return c;
}

/* Byte i of request k's body: distinct per request, so a response that
 * came back out of order cannot pass. */
static unsigned char
pattern(size_t k, size_t i)
{
    return (unsigned char)((i * 7 + k * 13) % 251);
}

/* Fills buf with request k's body. */
static void
fill(unsigned char *buf, size_t k, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = pattern(k, i);
}

/* This process's peak resident set in kiB (VmHWM), -1 if unknown. */
static long
peak_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;

    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %ld", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

/* COUNT echoes of SIZE bytes: every request sent, then every response
 * read, in order. */
static void
check_pipeline(const char *origin, size_t count, size_t size)
{
    hconn *c = open_conn(origin);
    unsigned char *body = malloc(size), *got = malloc(size);
    size_t k, bad = SIZE_MAX;
    int rc = 0;
    char detail[700] = "";

    for (k = 0; k < count && rc == 0; k++) {
        fill(body, k, size);
        rc = hconn_request(c, "POST", "/echo", body, size, NULL, 0);
    }
    check(rc == 0, "every pipelined request sent before any response read",
          "request %zu: %s", k - 1, why(c, rc));
    for (k = 0; k < count && rc == 0 && bad == SIZE_MAX; k++) {
        hconn_response *r;
        ssize_t n;

        rc = hconn_getresponse(c, &r);
        if (rc < 0) {
            snprintf(detail, sizeof(detail), "%s", why(c, rc));
            bad = k;
            break;
        }
        n = hconn_response_read(r, got, size);
        fill(body, k, size);
        if (hconn_response_status(r) != 200 || n != (ssize_t)size ||
            memcmp(got, body, size) != 0 ||
            hconn_response_read(r, got, 1) != 0) {
            snprintf(detail, sizeof(detail), "status %d, read %zd: %s",
                     hconn_response_status(r), n,
                     n < 0 ? why(c, (int)n) : "wrong bytes");
            bad = k;
        }
        hconn_response_close(r);
    }
    check(bad == SIZE_MAX, "every echo came back whole and in order",
          "response %zu: %s", bad, detail);
    printf("# client peak RSS %ld kiB\n", peak_rss_kib());
    free(body);
    free(got);
    hconn_free(c);
}

/* Waits for c's events with poll(2) and runs hconn_process. Returns 0 or a
 * code. */
static int
pump(hconn *c)
{
    struct pollfd pfd = {.fd = hconn_fileno(c), .events = hconn_events(c)};

    if (pfd.events == 0)
        return 0;
    if (poll(&pfd, 1, 30000) <= 0)
        return HCONN_ETIMEOUT;
    return hconn_process(c);
}

/* Stops (true) or resumes (false) the daemon named by
 * HCONN_CHECK_DAEMON_PID, when the test names it. */
static void
daemon_pause(bool stop)
{
    const char *pid = getenv("HCONN_CHECK_DAEMON_PID");

    if (pid != NULL && atoi(pid) > 0)
        kill((pid_t)atoi(pid), stop ? SIGSTOP : SIGCONT);
}

/* Retries call (an int expression on c) while it would block. */
#define NB(c, call)                                                            \
    ({                                                                         \
        int64_t rc_;                                                           \
        int guard_ = 0;                                                        \
        while ((rc_ = (call)) == HCONN_EWOULD_BLOCK && guard_ == 0)            \
            guard_ = pump(c);                                                  \
        guard_ ? guard_ : rc_;                                                 \
    })

/* Non-blocking mode end to end. */
static void
check_nonblock(const char *origin)
{
    enum { N = 8, SIZE = 300 * 1024 };
    hconn *c = open_conn(origin);
    unsigned char *body = malloc(SIZE), *got = malloc(SIZE + 1);
    int rc = hconn_set_blocking(c, false);
    int would_block = 0;
    size_t k;
    char line[64];

    check(rc == 0 && hconn_fileno(c) >= 0,
          "set_blocking(false) connects and exposes the fd", "%s", why(c, rc));
    /* Streamed bodies: the output queue fills and send says would_block.
     * A daemon that reads as fast as this writes would leave the queue
     * empty, so it is paused until the first would_block. */
    daemon_pause(true);
    for (k = 0; k < N && rc == 0; k++) {
        size_t off = 0;

        fill(body, k, SIZE);
        rc = (int)NB(
            c, hconn_request_stream(c, "POST", "/echo", NULL, 0, SIZE, 0));
        while (rc == 0 && off < SIZE) {
            /* Whole bodies, on every other request, outrun the daemon's
             * reading: the socket takes about 200 KiB, and the queue is
             * full at 256 KiB. */
            size_t most = k % 2 == 0 ? SIZE : 50000;
            size_t piece = SIZE - off < most ? SIZE - off : most;

            rc = hconn_send(c, body + off, piece);
            if (rc == HCONN_EWOULD_BLOCK) {
                would_block++;
                daemon_pause(false);
                rc = pump(c);
                continue;
            }
            off += piece;
        }
    }
    daemon_pause(false);
    check(rc == 0, "8 streamed 300 KiB bodies queued in non-blocking mode",
          "%s", why(c, rc));
    check(would_block > 0, "send returned would_block while output was queued",
          "never");
    /* The daemon stops reading a client whose replies pile up unread
     * (max_queued_reply_bytes), so these may have to wait their turn. */
    if (rc == 0)
        rc = (int)NB(c, hconn_request(c, "GET", "/chunked", NULL, 0, NULL, 0));
    if (rc == 0)
        rc = (int)NB(c, hconn_request(c, "GET", "/big.bin", NULL, 0, NULL, 0));
    check(rc == 0, "two GETs queued behind the uploads", "%s", why(c, rc));
    for (k = 0; k < N && rc == 0; k++) {
        hconn_response *r;
        void *all;
        size_t len;

        rc = NB(c, hconn_getresponse(c, &r));
        if (rc < 0)
            break;
        rc = NB(c, hconn_response_read_all(r, &all, &len));
        fill(body, k, SIZE);
        if (!check(rc == 0 && len == SIZE && memcmp(all, body, SIZE) == 0,
                   "non-blocking echo read with read_all",
                   "response %zu: %s, %zu bytes", k, why(c, rc), len))
            rc = rc ? rc : -1;
        if (rc == 0)
            free(all);
        hconn_response_close(r);
    }
    if (rc == 0) {
        hconn_response *r;
        ssize_t n;
        size_t total = 0;

        rc = NB(c, hconn_getresponse(c, &r));
        while (rc == 0 && (n = (ssize_t)NB(c, hconn_response_readline(
                                                  r, line, sizeof(line)))) > 0)
            total += (size_t)n;
        check(rc == 0 && total == 18 && hconn_response_closed(r),
              "non-blocking readline over /chunked", "%s, %zu bytes",
              why(c, rc), total);
        if (rc == 0)
            hconn_response_close(r);
        rc = NB(c, hconn_getresponse(c, &r));
        total = 0;
        while (rc == 0 &&
               (n = (ssize_t)NB(c, hconn_response_readinto(r, got, SIZE))) > 0)
            total += (size_t)n;
        check(rc == 0 && n == 0 && total == 1024 * 1024,
              "non-blocking readinto over /big.bin", "%s, %zu bytes",
              why(c, rc), total);
        if (rc == 0)
            hconn_response_close(r);
    }
    check(hconn_events(c) == 0, "no events wanted when nothing is due", "%d",
          hconn_events(c));
    rc = hconn_set_blocking(c, true);
    check(rc == 0, "back to blocking mode", "%s", why(c, rc));
    free(body);
    free(got);
    hconn_free(c);
}

/* Reads r's body into buf (at most cap) and closes r. Returns the length
 * or a negative code. */
static ssize_t
slurp(hconn_response *r, char *buf, size_t cap)
{
    size_t got = 0;
    ssize_t n;

    while ((n = hconn_response_read(r, buf + got, cap - got)) > 0)
        got += (size_t)n;
    hconn_response_close(r);
    return n < 0 ? n : (ssize_t)got;
}

/* hconn_send_fd from a regular file (Content-Length) and a pipe
 * (chunked). */
static void
check_sendfd(const char *origin, const char *path)
{
    hconn *c = open_conn(origin);
    int fd = open(path, O_RDONLY), pipefd[2];
    struct stat st;
    char *want, *got;
    hconn_response *r;
    int64_t sent;
    ssize_t n = -1;
    int rc;

    if (fd < 0 || fstat(fd, &st) < 0) {
        printf("Bail out! %s: %s\n", path, strerror(errno));
        exit(1);
    }
    want = malloc((size_t)st.st_size + 1);
    got = malloc((size_t)st.st_size + 1);
    if (read(fd, want, (size_t)st.st_size) != st.st_size) {
        printf("Bail out! short read of %s\n", path);
        exit(1);
    }
    lseek(fd, 0, SEEK_SET);
    rc = hconn_request_stream(c, "POST", "/echo", NULL, 0, st.st_size, 0);
    sent = rc < 0 ? rc : hconn_send_fd(c, fd, -1);
    rc = sent < 0 ? (int)sent : hconn_getresponse(c, &r);
    if (rc == 0)
        n = slurp(r, got, (size_t)st.st_size + 1);
    check(sent == st.st_size && n == st.st_size &&
              memcmp(want, got, (size_t)st.st_size) == 0,
          "send_fd of a regular file with its length, echoed exactly",
          "sent %" PRId64 ", echoed %zd: %s", sent, n, why(c, rc));

    /* A pipe: unknown length, hconnd chunks it; the file is written
     * into the pipe by a child, so neither side holds it whole. */
    if (pipe(pipefd) < 0) {
        printf("Bail out! pipe: %s\n", strerror(errno));
        exit(1);
    }
    if (fork() == 0) {
        close(pipefd[0]);
        if (write(pipefd[1], want, (size_t)st.st_size) != st.st_size)
            _exit(1);
        _exit(0);
    }
    close(pipefd[1]);
    rc = hconn_request_stream(c, "POST", "/echo", NULL, 0, HCONN_LENGTH_UNKNOWN,
                              0);
    sent = rc < 0 ? rc : hconn_send_fd(c, pipefd[0], -1);
    if (sent >= 0)
        rc = hconn_end_body(c);
    if (rc == 0)
        rc = hconn_getresponse(c, &r);
    n = -1;
    if (rc == 0)
        n = slurp(r, got, (size_t)st.st_size + 1);
    check(sent == st.st_size && n == st.st_size &&
              memcmp(want, got, (size_t)st.st_size) == 0,
          "send_fd from a pipe, chunked, echoed exactly",
          "sent %" PRId64 ", echoed %zd: %s", sent, n, why(c, rc));
    close(pipefd[0]);

    /* A file shorter than the length declared: body_length, and hconnd
     * sends nothing malformed (it answers body_length too). */
    lseek(fd, 0, SEEK_SET);
    rc = hconn_request_stream(c, "POST", "/echo", NULL, 0, st.st_size + 10, 0);
    sent = rc < 0 ? rc : hconn_send_fd(c, fd, st.st_size + 10);
    check(sent == HCONN_EBODY_LENGTH,
          "send_fd of a file shorter than "
          "declared is body_length",
          "%" PRId64 ": %s", sent, why(c, (int)sent));
    rc = hconn_getresponse(c, &r);
    check(rc == HCONN_EBODY_LENGTH, "hconnd refuses the short body too", "%s",
          why(c, rc));
    if (rc == 0)
        hconn_response_close(r);
    rc = hconn_request_stream(c, "POST", "/echo", NULL, 0, 4, 0);
    if (rc == 0)
        rc = hconn_send(c, "abcd", 4);
    if (rc == 0)
        rc = hconn_getresponse(c, &r);
    n = rc == 0 ? slurp(r, got, 16) : -1;
    check(n == 4 && memcmp(got, "abcd", 4) == 0,
          "the connection goes on after body_length", "%s", why(c, rc));
    close(fd);
    free(want);
    free(got);
    hconn_free(c);
}

/* 100-continue with the fault origin. */
static void
check_expect(const char *origin)
{
    hconn *c = open_conn(origin);
    hconn_response *r;
    bool go = false;
    char buf[64];
    ssize_t n = -1;
    int rc;

    rc = hconn_request_stream(c, "PUT", "/continue", NULL, 0, 5,
                              HCONN_EXPECT_CONTINUE);
    if (rc == 0)
        rc = hconn_wait_continue(c, &go);
    check(rc == 0 && go, "100 Continue: wait_continue says send the body",
          "%s, send_body %d", why(c, rc), go);
    if (rc == 0)
        rc = hconn_send(c, "hello", 5);
    if (rc == 0)
        rc = hconn_getresponse(c, &r);
    if (rc == 0) {
        int status = hconn_response_status(r);

        n = slurp(r, buf, sizeof(buf));
        check(status == 201 && n == 6 && memcmp(buf, "got it", 6) == 0,
              "the body went after 100 and the final response came",
              "status %d, %zd bytes", status, n);
    } else {
        check(false, "PUT /continue", "%s", why(c, rc));
    }

    rc = hconn_request_stream(c, "PUT", "/refuse", NULL, 0, 5,
                              HCONN_EXPECT_CONTINUE);
    go = true;
    if (rc == 0)
        rc = hconn_wait_continue(c, &go);
    check(rc == 0 && !go, "a final response first: do not send the body",
          "%s, send_body %d", why(c, rc), go);
    rc = hconn_send(c, "hello", 5);
    check(rc == HCONN_ECANNOT_SEND_REQUEST && strstr(hconn_errmsg(c), "403"),
          "send after the refusal is cannot_send_request naming the status",
          "%s", why(c, rc));
    rc = hconn_getresponse(c, &r);
    if (rc == 0) {
        int status = hconn_response_status(r);

        n = slurp(r, buf, sizeof(buf));
        check(status == 403 && n == 2 && memcmp(buf, "no", 2) == 0,
              "getresponse returns the early final response",
              "status %d, %zd bytes", status, n);
    } else {
        check(false, "getresponse after the refusal", "%s", why(c, rc));
    }
    rc = hconn_request(c, "GET", "/ok", NULL, 0, NULL, 0);
    if (rc == 0)
        rc = hconn_getresponse(c, &r);
    if (rc == 0) {
        bool reused = hconn_response_reused(r);

        n = slurp(r, buf, sizeof(buf));
        check(n == 2 && !reused,
              "the next request works, on a fresh upstream connection",
              "%zd bytes, reused %d", n, reused);
    } else {
        check(false, "GET /ok after the refusal", "%s", why(c, rc));
    }

    /* Without waiting: getresponse skips the continue. */
    rc = hconn_request_stream(c, "PUT", "/continue", NULL, 0, 5,
                              HCONN_EXPECT_CONTINUE);
    if (rc == 0)
        rc = hconn_send(c, "hello", 5);
    if (rc == 0)
        rc = hconn_getresponse(c, &r);
    n = rc == 0 ? slurp(r, buf, sizeof(buf)) : -1;
    check(n == 6, "body sent before the verdict is held and delivered", "%s",
          why(c, rc));
    hconn_free(c);
}

/* Reads path with read(size) until it ends. Returns the final code (0 at
 * a complete end) and the byte count. */
static int
read_all_by(hconn *c, const char *path, size_t size, size_t *total)
{
    hconn_response *r;
    char buf[8192];
    ssize_t n;
    int rc = hconn_request(c, "GET", path, NULL, 0, NULL, 0);

    *total = 0;
    if (rc == 0)
        rc = hconn_getresponse(c, &r);
    if (rc < 0)
        return rc;
    while ((n = hconn_response_read(r, buf, size)) > 0)
        *total += (size_t)n;
    if (n < 0 && hconn_response_read(r, buf, size) != n)
        n = 1; /* the error must stick */
    hconn_response_close(r);
    return (int)n;
}

/* Origin closes or resets mid-body, and a close-delimited body. */
static void
check_strict(const char *origin)
{
    static const size_t sizes[] = {1, 2, 3, 7, 64, 599, 600, 601, 1000, 8192};
    hconn *c = open_conn(origin);
    char what[120];
    size_t total;
    int rc;

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        rc = read_all_by(c, "/cut", sizes[i], &total);
        snprintf(what, sizeof(what),
                 "origin closes mid-body: read(%zu) ends in incomplete_read "
                 "after 600 bytes",
                 sizes[i]);
        check(rc == HCONN_EINCOMPLETE_READ && total == 600 &&
                  strstr(hconn_errmsg(c), "600") &&
                  strstr(hconn_errmsg(c), "1000"),
              what, "%d %s after %zu bytes", rc, why(c, rc), total);
        rc = read_all_by(c, "/reset", sizes[i], &total);
        snprintf(what, sizeof(what),
                 "origin resets mid-body: read(%zu) is an error after at "
                 "most 600 bytes",
                 sizes[i]);
        check(
            (rc == HCONN_EINCOMPLETE_READ || rc == HCONN_ECONNECTION_CLOSED) &&
                total <= 600,
            what, "%d %s after %zu bytes", rc, why(c, rc), total);
        rc = read_all_by(c, "/close-delimited", sizes[i], &total);
        snprintf(what, sizeof(what),
                 "close-delimited body read(%zu): all 3000 bytes, then 0",
                 sizes[i]);
        check(rc == 0 && total == 3000, what, "%d %s after %zu bytes", rc,
              why(c, rc), total);
    }
    hconn_free(c);
}

int
main(int argc, char **argv)
{
    const char *mode = argc > 2 ? argv[1] : "";

    if (strcmp(mode, "pipeline") == 0 && argc == 5)
        check_pipeline(argv[2], strtoul(argv[3], NULL, 10),
                       strtoul(argv[4], NULL, 10));
    else if (strcmp(mode, "nonblock") == 0 && argc == 3)
        check_nonblock(argv[2]);
    else if (strcmp(mode, "sendfd") == 0 && argc == 4)
        check_sendfd(argv[2], argv[3]);
    else if (strcmp(mode, "expect") == 0 && argc == 3)
        check_expect(argv[2]);
    else if (strcmp(mode, "strict") == 0 && argc == 3)
        check_strict(argv[2]);
    else {
        fprintf(stderr, "usage: pipeline-check pipeline HOST:PORT COUNT SIZE\n"
                        "       pipeline-check nonblock|expect|strict "
                        "HOST:PORT\n"
                        "       pipeline-check sendfd HOST:PORT FILE\n");
        return 2;
    }
    return tap_finish();
}
