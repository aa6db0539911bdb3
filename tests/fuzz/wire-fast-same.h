/*
 * wire-fast-same.h — whether the fast scanner's message equals the full
 * parser's, for fuzz-wire-fast and test-wire-fast. Every byte of the two
 * structs is compared: the pointer fields by what they point to (then
 * blanked in copies), everything else with memcmp, so a field added to
 * struct wire_request later (a scalar with a default the scanner does not
 * set, say) makes the two differ until the scanner sets it too, and a new
 * pointer field differs until it is listed here. Both parsers memset the
 * struct first, so padding compares equal. Header-only (static inline).
 */
#ifndef HCONN_WIRE_FAST_SAME_H
#define HCONN_WIRE_FAST_SAME_H

#include <stdbool.h>
#include <string.h>

#include "wire.h"

/* Both NULL, or both strings with the same bytes; then both blanked. */
static inline bool
wfs_str(const char **a, const char **b)
{
    bool same = (*a == NULL || *b == NULL) ? *a == *b : strcmp(*a, *b) == 0;

    *a = *b = NULL;
    return same;
}

/* The same header lists (n entries each); then both pointers blanked
 * (in the callers' copies: the arrays themselves are left alone). */
static inline bool
wfs_headers(struct wire_header **a, struct wire_header **b, size_t na,
            size_t nb)
{
    bool same = na == nb && (*a == NULL) == (*b == NULL);

    for (size_t i = 0; same && i < na; i++)
        same = strcmp((*a)[i].name, (*b)[i].name) == 0 &&
               strcmp((*a)[i].value, (*b)[i].value) == 0;
    *a = *b = NULL;
    return same;
}

/* True when fast (from wire_fast_parse_client_msg) and full (from
 * wire_parse_client_msg) are the same message. The ids compare by JSON
 * type and value. */
static inline bool
wire_fast_same(const struct wire_client_msg *fast,
               const struct wire_client_msg *full)
{
    struct wire_client_msg a, b;
    struct wire_request *ra = &a.req, *rb = &b.req;
    bool same = true;

    memcpy(&a, fast, sizeof a);
    memcpy(&b, full, sizeof b);
    if (a.id == NULL || b.id == NULL)
        same &= a.id == b.id;
    else
        same &=
            json_typeof(a.id) == json_typeof(b.id) && json_equal(a.id, b.id);
    a.id = b.id = NULL;
    same &= wfs_str(&a.op, &b.op);
    same &= wfs_str(&ra->method, &rb->method);
    same &= wfs_str((const char **)&ra->host, (const char **)&rb->host);
    same &= wfs_str(&ra->target, &rb->target);
    same &= wfs_str(&ra->tls_options.ca_file, &rb->tls_options.ca_file);
    same &= wfs_str(&ra->tls_options.ca_path, &rb->tls_options.ca_path);
    same &= wfs_str(&ra->tls_options.cert_file, &rb->tls_options.cert_file);
    same &= wfs_str(&ra->tls_options.key_file, &rb->tls_options.key_file);
    same &= wfs_str(&ra->tls_options.ca_pem, &rb->tls_options.ca_pem);
    same &= wfs_str(&ra->tls_options.cert_pem, &rb->tls_options.cert_pem);
    same &= wfs_str(&ra->tls_options.key_pem, &rb->tls_options.key_pem);
    same &= wfs_str(&ra->tls_options.server_name, &rb->tls_options.server_name);
    same &= wfs_str(&ra->tls_options.min_version, &rb->tls_options.min_version);
    same &= wfs_str(&ra->proxy.host, &rb->proxy.host);
    same &= wfs_str(&ra->source_host, &rb->source_host);
    same &= wfs_headers(&ra->headers, &rb->headers, ra->nheaders, rb->nheaders);
    same &= wfs_headers(&ra->proxy.headers, &rb->proxy.headers,
                        ra->proxy.nheaders, rb->proxy.nheaders);
    return same && memcmp(&a, &b, sizeof a) == 0;
}

#endif
