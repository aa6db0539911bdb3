/*
 * fields.h — parsed HTTP header fields as the protocol's header lists,
 * for response heads, trailers and a proxy's answer to CONNECT.
 */
#ifndef HCONND_FIELDS_H
#define HCONND_FIELDS_H

#include <stddef.h>

#include <jansson.h>

struct http1_header;

/* [[name, value], ...] in order, obs-folds unfolded, bytes that are not
 * UTF-8 read as ISO-8859-1; NULL when out of memory. */
json_t *fields_to_json(const struct http1_header *h, size_t n);

/* {"status", "reason", "headers"}: a proxy's answer to CONNECT as the
 * protocol shows it; NULL when out of memory. */
json_t *fields_answer_to_json(int status, const char *reason, size_t reason_len,
                              const struct http1_header *h, size_t n);

#endif
