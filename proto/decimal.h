/*
 * decimal.h — unsigned integers as decimal digits, without printf: the
 * numbers every request formats (a port, a length, a frame's size) cost a
 * vfprintf call each through snprintf, more than the rest of the line
 * around them. No I/O.
 */
#ifndef HCONN_DECIMAL_H
#define HCONN_DECIMAL_H

#include <stddef.h>
#include <stdint.h>

/* Room for any uint64_t's digits (20) and a NUL. */
#define DECIMAL_U64_SIZE 21

/* Writes v's digits, most significant first, NUL-terminated, at the
 * start of out; returns how many digits. */
static inline size_t
decimal_u64(char out[DECIMAL_U64_SIZE], uint64_t v)
{
    char digits[20], *p = digits + sizeof digits;
    size_t n;

    do
        *--p = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    n = (size_t)(digits + sizeof digits - p);
    for (size_t i = 0; i < n; i++)
        out[i] = p[i];
    out[n] = '\0';
    return n;
}

#endif
