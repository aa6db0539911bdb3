/* get.c: the http.client documentation's first example, in C.
 * Usage: get [HOST:PORT] (default 127.0.0.1:8080); GET / through hconnd. */
#include <stdio.h>
#include <stdlib.h>
#include <hconn.h>

int
main(int argc, char **argv)
{
    const char *host = argc > 1 ? argv[1] : "127.0.0.1:8080";
    hconn *conn;
    hconn_response *r1;
    void *data;
    size_t len;

    if (hconn_new(&conn, host, 0, NULL) < 0 ||
        hconn_request(conn, "GET", "/", NULL, 0, NULL, 0) < 0 ||
        hconn_getresponse(conn, &r1) < 0) {
        fprintf(stderr, "%s\n", conn ? hconn_errmsg(conn) : "out of memory");
        hconn_free(conn);
        return 1;
    }
    printf("%d %s\n", hconn_response_status(r1), hconn_response_reason(r1));
    if (hconn_response_read_all(r1, &data, &len) == 0) {
        printf("%zu bytes\n", len);
        free(data);
    }
    hconn_response_close(r1);
    hconn_free(conn);
    return 0;
}
