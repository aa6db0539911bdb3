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
#include <string.h>

/* Room for any uint64_t's digits (20) and a NUL. */
#define DECIMAL_U64_SIZE 21

/* How many decimal digits v has (1..20). */
static inline size_t
decimal_digits(uint64_t v)
{
    size_t n = 1;

    for (uint64_t t = 10; n < 20 && v >= t; t *= 10)
        n++;
    return n;
}

/* Writes v's n digits (n == decimal_digits(v)) at out, most significant
 * first, two at a time from the back: no NUL, nothing past out[n - 1]. */
static inline void
decimal_write(char *out, uint64_t v, size_t n)
{
    static const char pairs[201] = "00010203040506070809"
                                   "10111213141516171819"
                                   "20212223242526272829"
                                   "30313233343536373839"
                                   "40414243444546474849"
                                   "50515253545556575859"
                                   "60616263646566676869"
                                   "70717273747576777879"
                                   "80818283848586878889"
                                   "90919293949596979899";
    char *p = out + n;

    while (v >= 100) {
        size_t r = (size_t)(v % 100);

        v /= 100;
        p -= 2;
        memcpy(p, pairs + 2 * r, 2);
    }
    if (v >= 10) {
        p -= 2;
        memcpy(p, pairs + 2 * v, 2);
    } else {
        *--p = (char)('0' + v);
    }
}

/* Writes v's digits, most significant first, NUL-terminated, at the
 * start of out; returns how many digits. */
static inline size_t
decimal_u64(char out[DECIMAL_U64_SIZE], uint64_t v)
{
    size_t n = decimal_digits(v);

    decimal_write(out, v, n);
    out[n] = '\0';
    return n;
}

#endif
