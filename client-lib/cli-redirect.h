/*
 * cli-redirect.h — what the hconn command's -L needs to follow a
 * redirect: the next URL from a Location value (RFC 3986 section 5
 * reference resolution) and curl's rules for the next request.
 */
#ifndef HCONN_CLI_REDIRECT_H
#define HCONN_CLI_REDIRECT_H

#include <stdbool.h>

/* Whether status is a redirect -L follows: 301, 302, 303, 307, 308. */
bool redirect_status(int status);

/* Whether the next request after status to a request of method becomes a
 * GET without a body, as curl does: 303 for anything but HEAD, and 301
 * and 302 for a POST. */
bool redirect_to_get(int status, const char *method);

/* Resolves location against the absolute URL base. Returns a malloc'd
 * absolute URL without fragment, or NULL (out of memory, or base without
 * a scheme). */
char *redirect_resolve(const char *base, const char *location);

/* A URL given without "scheme://" is http://, as in curl: returns a
 * malloc'd copy, prefixed when needed (NULL when out of memory). */
char *redirect_default_scheme(const char *url);

#endif
