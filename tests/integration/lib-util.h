/*
 * lib-util.h — helpers the libhconn check programs (lib-check,
 * httpclient-check) share: a connection or a bail-out, one request and its
 * response head, and an error's text for a TAP detail line.
 */
#ifndef HCONN_LIB_UTIL_H
#define HCONN_LIB_UTIL_H

#include "hconn.h"

/* A new hconn to origin with opts (NULL: defaults); prints "Bail out!"
 * and exits if even that fails. */
hconn *lib_new(const char *origin, const struct hconn_options *opts);

/* Sends method path (optional NUL-terminated body) and gets the response
 * head. Returns 0 or a code; the error text is in hconn_errmsg(c). */
int lib_fetch(hconn *c, const char *method, const char *path, const char *body,
              hconn_response **rp);

/* "name: detail" of a failure, for a detail line (a static buffer). */
const char *lib_why(hconn *c, int rc);

#endif
