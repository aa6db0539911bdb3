/*
 * tunnel-check — libhconn's set_tunnel end to end, for test_proxy.py.
 *
 *   tunnel-check PROXY_HOST:PORT ORIGIN_HOST:PORT PATH [PROXY_AUTHORIZATION]
 *
 * As http.client: HTTPConnection(proxy), set_tunnel(origin, headers),
 * request("GET", PATH), getresponse(), read(). Prints "status N", each
 * field of the proxy's answer to CONNECT as "proxy-header NAME: VALUE",
 * then "body " and the body. On failure prints "error NAME: MESSAGE" (and
 * the proxy's answer's fields) and exits with the code negated.
 */
#include <stdio.h>
#include <stdlib.h>

#include "hconn.h"

static void
print_proxy_headers(const hconn *c)
{
    const struct hconn_header *h;
    size_t n = hconn_get_proxy_response_headers(c, &h);

    for (size_t i = 0; i < n; i++)
        printf("proxy-header %s: %s\n", h[i].name, h[i].value);
}

int
main(int argc, char **argv)
{
    struct hconn_header auth = {"Proxy-Authorization", argc > 4 ? argv[4] : ""};
    hconn_response *r = NULL;
    hconn *c = NULL;
    void *body;
    size_t len;
    int rc;

    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: tunnel-check PROXY_HOST:PORT ORIGIN_HOST:PORT "
                        "PATH [PROXY_AUTHORIZATION]\n");
        return 2;
    }
    rc = hconn_new(&c, argv[1], 0, NULL);
    if (rc == 0)
        rc = hconn_set_tunnel(c, argv[2], 0, &auth, argc > 4 ? 1 : 0);
    if (rc == 0)
        rc = hconn_request(c, "GET", argv[3], NULL, 0, NULL, 0);
    if (rc == 0)
        rc = hconn_getresponse(c, &r);
    if (rc == 0) {
        printf("status %d\n", hconn_response_status(r));
        print_proxy_headers(c);
        rc = hconn_response_read_all(r, &body, &len);
    }
    if (rc < 0) {
        printf("error %s: %s\n", hconn_error_name(rc),
               c != NULL ? hconn_errmsg(c) : "out of memory");
        if (c != NULL)
            print_proxy_headers(c);
        hconn_free(c);
        return -rc;
    }
    printf("body %.*s", (int)len, (const char *)body);
    free(body);
    hconn_free(c);
    return 0;
}
