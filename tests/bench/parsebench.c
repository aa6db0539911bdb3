/*
 * parsebench.c — CPU per client message line, full path against the fast
 * scanner, on the lines hconnd sees most: loadgen's GET by URL, libhconn's
 * request by host/port/target with headers, a data frame. Each line is
 * parsed as hconnd does it (wire_read_line, wire_parse_client_msg and
 * their frees; or wire_fast_parse_client_msg and its frees) N times, the
 * two alternating in rounds, and the best round's process CPU time per
 * line is printed. A measurement, not a test (built with -Dbench=true).
 *
 *   parsebench [N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wire.h"
#include "wire_fast.h"

#define PB_ROUNDS 7

/* Process CPU seconds. */
static double
pb_cpu(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Parses line n times through the full path; returns CPU ns per line. */
static double
pb_full(const char *line, size_t len, long n)
{
    struct wire_reader r;
    struct wire_client_msg m;
    char err[256];
    size_t consumed;
    json_t *msg;
    double t = pb_cpu();

    wire_reader_init(&r, WIRE_MAX_LINE);
    for (long i = 0; i < n; i++) {
        if (wire_read_line(&r, line, len, &consumed, &msg, err, sizeof err) ||
            msg == NULL || wire_parse_client_msg(msg, &m, err, sizeof err)) {
            fprintf(stderr, "parsebench: full path refused: %s\n", err);
            exit(1);
        }
        wire_client_msg_clear(&m);
        json_decref(msg);
    }
    return (pb_cpu() - t) * 1e9 / (double)n;
}

/* Parses line n times through the scanner; returns CPU ns per line. */
static double
pb_fast(const char *line, size_t len, long n)
{
    struct wire_client_msg m;
    json_t *id;
    double t = pb_cpu();

    for (long i = 0; i < n; i++) {
        if (wire_fast_parse_client_msg(line, len - 1, &m, &id) !=
            WIRE_FAST_ACCEPTED) {
            fprintf(stderr, "parsebench: scanner declined %s", line);
            exit(1);
        }
        wire_client_msg_clear(&m);
        json_decref(id);
    }
    return (pb_cpu() - t) * 1e9 / (double)n;
}

int
main(int argc, char **argv)
{
    static const char *const lines[] = {
        "{\"id\":1,\"method\":\"GET\",\"url\":\"http://127.0.0.1:8080/small\"}"
        "\n",
        "{\"id\":7,\"method\":\"GET\",\"host\":\"127.0.0.1\",\"port\":8080,"
        "\"tls\":false,\"target\":\"/small\",\"headers\":[[\"Accept\","
        "\"*/*\"],[\"User-Agent\",\"bench/1\"],[\"X-Trace\",\"abc123\"]]}\n",
        "{\"id\":7,\"data\":65536}\n",
        /* loadgen --hconn --tls --ca's line, as hconn --cacert sends */
        "{\"id\":1,\"method\":\"GET\",\"url\":\"https://127.0.0.1:8443/small\","
        "\"tls\":{\"ca_file\":\"/tmp/hconn-bench-x/certs/ca.crt\"}}\n",
        /* the same with --http-version 1.1 */
        "{\"id\":1,\"method\":\"GET\",\"url\":\"https://127.0.0.1:8443/small\","
        "\"http_version\":\"1.1\","
        "\"tls\":{\"ca_file\":\"/tmp/hconn-bench-x/certs/ca.crt\"}}\n",
    };
    long n = argc > 1 ? atol(argv[1]) : 200000;

    if (n <= 0) {
        fprintf(stderr, "usage: parsebench [N]\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        size_t len = strlen(lines[i]);
        double full = 1e30, fast = 1e30, t;

        for (int r = 0; r < PB_ROUNDS; r++) {
            if ((t = pb_full(lines[i], len, n)) < full)
                full = t;
            if ((t = pb_fast(lines[i], len, n)) < fast)
                fast = t;
        }
        printf("full %7.0f ns  fast %7.0f ns  (%.1fx)  %.*s\n", full, fast,
               full / fast, (int)(len - 1 < 60 ? len - 1 : 60), lines[i]);
    }
    return 0;
}
