/*
 * get.c — the http.client documentation's first example, in C:
 *
 *   conn = HTTPConnection("www.python.org")
 *   conn.request("GET", "/")
 *   r1 = conn.getresponse(); print(r1.status, r1.reason); data1 = r1.read()
 *   conn.request("GET", "/")
 *   r2 = conn.getresponse(); ...
 *
 * Usage: get [HOST:PORT [PATH]]   (default 127.0.0.1:8080 /)
 * Two requests on one connection; prints status, reason and body length.
 */
#include <stdio.h>
#include <stdlib.h>

#include "hconn.h"

int
main(int argc, char **argv)
{
    const char *host = argc > 1 ? argv[1] : "127.0.0.1:8080";
    const char *path = argc > 2 ? argv[2] : "/";
    hconn *conn;
    int rc = hconn_new(&conn, host, 0, NULL);

    for (int i = 0; rc == 0 && i < 2; i++) {
        hconn_response *r;
        void *data;
        size_t len;

        rc = hconn_request(conn, "GET", path, NULL, 0, NULL, 0);
        if (rc == 0)
            rc = hconn_getresponse(conn, &r);
        if (rc == 0) {
            printf("%d %s\n", hconn_response_status(r),
                   hconn_response_reason(r));
            rc = hconn_response_read_all(r, &data, &len);
            hconn_response_close(r);
        }
        if (rc == 0) {
            printf("%zu bytes\n", len);
            free(data);
        }
    }
    if (rc < 0)
        fprintf(stderr, "get: %s: %s\n", hconn_error_name(rc),
                conn ? hconn_errmsg(conn) : "out of memory");
    hconn_free(conn);
    return rc < 0 ? -rc : 0;
}
