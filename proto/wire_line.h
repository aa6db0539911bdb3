/*
 * wire_line.h — the reply lines hconnd writes for every response (its
 * head, data frames and end), written from their parts. The lines every
 * response costs (its head, data frames and end) are written from their parts
 * instead of built as objects and dumped: building and dumping them was
 * hconnd's largest cost per request. The bytes equal wire_encode's for the same
 * object (jansson's compact form: keys in the order below, strings escaped as
 * jansson escapes them). No I/O.
 */
#ifndef HCONN_WIRE_LINE_H
#define HCONN_WIRE_LINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct http1_header;

/* An output buffer: starts in the caller's storage (init), moves to the
 * heap if a line outgrows it (free releases that). */
struct wire_line {
    char *buf;
    size_t len, cap;
    bool heap;   /* buf is malloc'd */
    bool failed; /* out of memory: the line is incomplete */
};

void wire_line_init(struct wire_line *l, char *storage, size_t size);
void wire_line_free(struct wire_line *l);

/* Each appends one line, '\n' included, and returns 0 or HCONN_ENO_MEMORY.
 * id (an integer or string) is left out when NULL; header and reason
 * bytes read as wire_string_from_bytes reads them, with obs-folds in
 * values unfolded. */

/* {"id","status","reason","version","headers":[[name,value]...],
 *  "length" (left out when < 0),"reused","proxy_response" (when not
 *  NULL)} */
int wire_line_head(struct wire_line *l, const json_t *id, int status,
                   const char *reason, size_t reason_len, int version,
                   const struct http1_header *headers, size_t nheaders,
                   int64_t length, bool reused, const json_t *proxy_response);
/* {"id","data":n} */
int wire_line_data(struct wire_line *l, const json_t *id, uint64_t n);
/* {"id","end":true,"trailers":[[name,value]...]} */
int wire_line_end(struct wire_line *l, const json_t *id,
                  const struct http1_header *trailers, size_t ntrailers);

#endif
