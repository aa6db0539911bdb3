/*
 * lib-util.c — helpers shared by the libhconn check programs; see
 * lib-util.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib-util.h"

hconn *
lib_new(const char *origin, const struct hconn_options *opts)
{
    hconn *c;
    int rc = hconn_new(&c, origin, 0, opts);

    if (rc < 0) {
        printf("Bail out! hconn_new(%s): %s: %s\n", origin,
               hconn_error_name(rc), c ? hconn_errmsg(c) : "");
        exit(1);
    }
    return c;
}

int
lib_fetch(hconn *c, const char *method, const char *path, const char *body,
          hconn_response **rp)
{
    int rc =
        hconn_request(c, method, path, body, body ? strlen(body) : 0, NULL, 0);

    *rp = NULL;
    return rc < 0 ? rc : hconn_getresponse(c, rp);
}

const char *
lib_why(hconn *c, int rc)
{
    static char buf[600];

    snprintf(buf, sizeof(buf), "%s: %s", hconn_error_name(rc),
             c ? hconn_errmsg(c) : "");
    return buf;
}
