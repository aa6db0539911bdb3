/*
 * version-check.c — libhconn's hconn_set_http_version(), run by
 * test_http_version.py against a scripted daemon (or the real one): the
 * values it refuses, then one GET of URL's origin per version (auto, 1.1,
 * 2) on one hconn, printing "version N" with each response's
 * hconn_response_version() and its body length. The caller checks what
 * reached the daemon.
 *
 *   version-check HOST:PORT   (HCONN_SOCKET names the daemon)
 */
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "hconn.h"
#include "tap.h"

/* GETs "/" on c and prints the response's version and body length;
 * returns the response's version or a negative error. */
static int
version_check_get(hconn *c, int version)
{
    hconn_response *r = NULL;
    char buf[4096];
    ssize_t n;
    size_t total = 0;
    int rc, got;

    rc = hconn_set_http_version(c, version);
    if (!check(rc == 0, "hconn_set_http_version accepts a valid version",
               "version %d: %d %s", version, rc, hconn_errmsg(c)))
        return rc;
    rc = hconn_request(c, "GET", "/", NULL, 0, NULL, 0);
    if (rc == 0)
        rc = hconn_getresponse(c, &r);
    if (!check(rc == 0, "GET through hconnd", "version %d: %d %s", version, rc,
               hconn_errmsg(c)))
        return rc;
    while ((n = hconn_response_read(r, buf, sizeof(buf))) > 0)
        total += (size_t)n;
    check(n == 0, "the body reads to its end", "%zd %s", n, hconn_errmsg(c));
    got = hconn_response_version(r);
    printf("version %d status %d body %zu\n", got, hconn_response_status(r),
           total);
    hconn_response_close(r);
    return got;
}

int
main(int argc, char **argv)
{
    static const int bad[] = {1, 2, 10, 12, 21, -1, 200};
    hconn *c = NULL;
    int rc;

    if (argc != 2) {
        fprintf(stderr, "usage: version-check HOST:PORT\n");
        return 2;
    }
    rc = hconn_new(&c, argv[1], 0, NULL);
    if (!check(rc == 0, "hconn_new", "%d", rc))
        return tap_finish();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rc = hconn_set_http_version(c, bad[i]);
        check(rc == HCONN_EINVALID_ARGUMENT &&
                  strstr(hconn_errmsg(c), "HTTP version") != NULL,
              "hconn_set_http_version refuses a value that is no version",
              "%d: %d %s", bad[i], rc, hconn_errmsg(c));
    }
    /* A refused value leaves the setting alone: the first request still
     * goes out as auto. */
    version_check_get(c, HCONN_HTTP_AUTO);
    version_check_get(c, HCONN_HTTP_1_1);
    version_check_get(c, HCONN_HTTP_2);
    hconn_free(c);
    return tap_finish();
}
