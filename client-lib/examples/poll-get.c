/*
 * poll-get.c — libhconn's non-blocking mode in a poll(2) loop: several
 * URLs of one origin fetched concurrently, pipelined on one hconn, the C
 * form of dugong's coroutine example.
 *
 * Usage: poll-get HOST:PORT PATH...   (e.g. poll-get 127.0.0.1:8080 / /a)
 *
 * Every request is queued at once; then one loop waits on the hconn's fd
 * for the events it asks for (hconn_events) and moves the current
 * response along. Each libhconn call returns HCONN_EWOULD_BLOCK instead of
 * waiting, and is simply called again once poll says so. Prints
 * "STATUS LENGTH PATH" per URL, in request order. Any other work (more
 * fds, timers) would go in the same poll set.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>

#include "hconn.h"

/* Where the loop stands with the response it is reading. */
struct fetch {
    int sent;             /* requests queued so far */
    int done;             /* responses read to their end */
    hconn_response *resp; /* the response being read, NULL between */
    unsigned long long n; /* its body bytes so far */
};

/* Does as much as possible without waiting. Returns 0 when every response
 * was read, HCONN_EWOULD_BLOCK to wait for hconn_events(), or an error. */
static int
step(hconn *c, struct fetch *f, int npaths, char **paths)
{
    char buf[16384];
    int rc;

    while (f->sent < npaths) {
        rc = hconn_request(c, "GET", paths[f->sent], NULL, 0, NULL, 0);
        if (rc < 0)
            return rc; /* HCONN_EWOULD_BLOCK: the output queue is full */
        f->sent++;
    }
    while (f->done < npaths) {
        ssize_t n;

        if (!f->resp) {
            rc = hconn_getresponse(c, &f->resp);
            if (rc < 0)
                return rc;
            f->n = 0;
        }
        while ((n = hconn_response_read1(f->resp, buf, sizeof(buf))) > 0)
            f->n += (unsigned long long)n;
        if (n < 0)
            return (int)n;
        printf("%d %llu %s\n", hconn_response_status(f->resp), f->n,
               paths[f->done]);
        hconn_response_close(f->resp);
        f->resp = NULL;
        f->done++;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    struct fetch f = {0};
    hconn *c;
    int rc;

    if (argc < 3) {
        fprintf(stderr, "usage: poll-get HOST:PORT PATH...\n");
        return 2;
    }
    rc = hconn_new(&c, argv[1], 0, NULL);
    if (rc == 0)
        rc = hconn_set_blocking(c, false);
    while (rc == 0 || rc == HCONN_EWOULD_BLOCK) {
        struct pollfd pfd;

        rc = step(c, &f, argc - 2, argv + 2);
        if (rc != HCONN_EWOULD_BLOCK)
            break;
        pfd = (struct pollfd){.fd = hconn_fileno(c), .events = hconn_events(c)};
        if (poll(&pfd, 1, -1) < 0)
            continue; /* EINTR: look again */
        rc = hconn_process(c);
    }
    if (rc < 0)
        fprintf(stderr, "poll-get: %s: %s\n", hconn_error_name(rc),
                c ? hconn_errmsg(c) : "out of memory");
    hconn_response_close(f.resp);
    hconn_free(c);
    return rc < 0 ? -rc : 0;
}
