/*
 * wire_fast.h — a direct scanner for the common client messages: a
 * request by "url" or "host"/"port"/"target" with headers, an inline or
 * streamed body and the usual flags, and the data and end frames of a
 * streamed body. It fills the struct wire_client_msg that
 * wire_parse_client_msg would, without building a jansson tree, and it
 * only ever accepts: anything it does not fully understand (an unknown or
 * rare field, a "tls" or "proxy" object, a \u escape, a number with a
 * sign, fraction where an integer goes, or exponent, a duplicate key, an
 * invalid value) makes it decline, and the caller runs the full path
 * (wire_read_line, wire_parse_client_msg), which stays the one definition
 * of validity and the one source of error messages. No I/O.
 */
#ifndef HCONN_WIRE_FAST_H
#define HCONN_WIRE_FAST_H

#include <stddef.h>

#include <jansson.h>

#include "wire.h"

/* Headers the scanner takes in one request; more make it decline. */
#define WIRE_FAST_MAX_HEADERS 64

/* What wire_fast_parse_client_msg did. */
enum wire_fast_result {
    WIRE_FAST_DECLINED = 0, /* not handled: run the full path */
    WIRE_FAST_ACCEPTED = 1, /* *out is what the full path would give */
};

/*
 * Scans one message line, line[0..n) without its '\n' (a '\r' before it
 * is whitespace, as for jansson), which must be a whole line no longer
 * than the reader's limit. On WIRE_FAST_ACCEPTED, *out equals what
 * wire_read_line and wire_parse_client_msg would give with result 0,
 * except that its strings live in a block of the scanner's own (req.host's
 * block, freed by wire_client_msg_clear), not in a json_t; *id is a new
 * reference to the message's "id" (an integer or string json_t, NULL when
 * absent), which out->id borrows: the caller json_decref's it after
 * wire_client_msg_clear. The replies and the stream table address the
 * message by that json_t, as for the full path. On WIRE_FAST_DECLINED,
 * *out is zeroed, *id is NULL and nothing needs freeing. line is not
 * modified and not referenced afterwards.
 */
enum wire_fast_result wire_fast_parse_client_msg(const char *line, size_t n,
                                                 struct wire_client_msg *out,
                                                 json_t **id);

#endif
