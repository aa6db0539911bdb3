/*
 * jsonword.h — eight bytes of a JSON string looked at together.
 *
 * Most strings the daemon reads and writes (keys, methods, URLs, header
 * names and values) are printable ASCII without a quote or a backslash:
 * they need no escape either way and are valid UTF-8 on their own. A
 * word-wide test finds the end of such a run in a fraction of the time
 * a byte-by-byte one takes. Pure: no I/O, no allocation.
 */
#ifndef HCONN_JSONWORD_H
#define HCONN_JSONWORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* True when none of the 8 bytes in x needs a look of its own: each is
 * printable ASCII (0x20..0x7f) other than '"' and '\\'. The tests are
 * exact as a whole (a byte's borrow can only mark a byte that is itself
 * marked), so no byte is let through that should not be. */
static inline bool
jsonword_plain(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101u, high = ones * 0x80;
    uint64_t quote = x ^ (ones * '"'), backslash = x ^ (ones * '\\');
    uint64_t marked = ((x - ones * 0x20) & ~x) | ((quote - ones) & ~quote) |
                      ((backslash - ones) & ~backslash) | x;

    return (marked & high) == 0;
}

/* The 8 bytes at s as a word (any alignment). */
static inline uint64_t
jsonword_load(const char *s)
{
    uint64_t x;

    memcpy(&x, s, sizeof x);
    return x;
}

#endif
