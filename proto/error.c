/*
 * error.c — lookups in the shared error table (hconn_error.h).
 */
#include <string.h>

#include "hconn_error.h"

struct error_entry {
    const char *name; /* wire name, e.g. "incomplete_read" */
    const char *text; /* description for humans */
};

#define ERROR_ENTRY_(name, wire, text) {wire, text},
static const struct error_entry error_table[] = {HCONN_ERRORS(ERROR_ENTRY_)};
#undef ERROR_ENTRY_

static const struct error_entry *
error_lookup(int code)
{
    /* Compare before negating: -INT_MIN overflows. */
    if (code > 0 || code <= -HCONN_ERROR_COUNT)
        return NULL;
    return &error_table[-code];
}

const char *
hconn_error_name(int code)
{
    const struct error_entry *e = error_lookup(code);

    return e ? e->name : "unknown";
}

const char *
hconn_strerror(int code)
{
    const struct error_entry *e = error_lookup(code);

    return e ? e->text : "unknown error";
}

int
hconn_error_from_name(const char *name)
{
    for (int i = 0; i < HCONN_ERROR_COUNT; i++) {
        if (strcmp(error_table[i].name, name) == 0)
            return -i;
    }
    return 1;
}
