/*
 * jsonword.h — eight or sixteen bytes of a JSON string looked at
 * together.
 *
 * Most strings the daemon reads and writes (keys, methods, URLs, header
 * names and values) are printable ASCII without a quote or a backslash:
 * they need no escape either way and are valid UTF-8 on their own. A
 * word-wide test finds the end of such a run in a fraction of the time
 * a byte-by-byte one takes; with SSE2 (every x86-64) sixteen bytes take
 * one compare, with a portable fallback (tested by building with
 * -U__SSE2__). Pure: no I/O, no allocation.
 */
#ifndef HCONN_JSONWORD_H
#define HCONN_JSONWORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define JSONWORD_BIG_ENDIAN 1
#else
#define JSONWORD_BIG_ENDIAN 0
#endif

/* The marks of the 8 bytes in x: the high bit of a byte is set where it
 * needs a look of its own (anything but printable ASCII, 0x20..0x7f,
 * other than '"' and '\\'). Zero exactly when no byte does. A borrow
 * starts only at a byte that truly needs a look and can falsely mark only
 * bytes of higher order than it: the lowest-order mark is always a true
 * one, and no byte is let through that should not be. */
static inline uint64_t
jsonword_marks(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101u, high = ones * 0x80;
    uint64_t quote = x ^ (ones * '"'), backslash = x ^ (ones * '\\');
    uint64_t marked = ((x - ones * 0x20) & ~x) | ((quote - ones) & ~quote) |
                      ((backslash - ones) & ~backslash) | x;

    return marked & high;
}

/* The offset in memory of the first byte that marks m (not 0) flags, in
 * a word from jsonword_load (marks as jsonword_marks', or any test whose
 * lowest-order mark is exact): every byte before it is unmarked. On a
 * little-endian machine it is the lowest-order mark, a true one; on a
 * big-endian one it may be a false mark, so callers look at the byte
 * itself before they trust it. */
static inline unsigned
jsonword_first(uint64_t m)
{
#if JSONWORD_BIG_ENDIAN
    return (unsigned)__builtin_clzll(m) / 8;
#else
    return (unsigned)__builtin_ctzll(m) / 8;
#endif
}

/* The 8 bytes at s as a word (any alignment). */
static inline uint64_t
jsonword_load(const char *s)
{
    uint64_t x;

    memcpy(&x, s, sizeof x);
    return x;
}

#ifdef __SSE2__
/* A bit for each of the 16 bytes in v that needs a look of its own (bit
 * i for byte i), exact: one compare for all. Bytes from 0x80 are
 * negative as signed, so the compare below space takes them with the
 * control bytes. */
static inline unsigned
jsonword_odd_sse2(__m128i v)
{
    __m128i odd =
        _mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
                     _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                  _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))));

    return (unsigned)_mm_movemask_epi8(odd);
}
#endif

/* True when none of the 16 bytes in x and y needs a look of its own: most
 * header names and values are 8 to 16 bytes, two words. With SSE2 (every
 * x86-64) the two are tested at once, in a third of the instructions. */
static inline bool
jsonword_plain2(uint64_t x, uint64_t y)
{
#ifdef __SSE2__
    return jsonword_odd_sse2(_mm_set_epi64x((long long)y, (long long)x)) == 0;
#else
    return (jsonword_marks(x) | jsonword_marks(y)) == 0;
#endif
}

/* Where in the 16 bytes at s the first that needs a look of its own is:
 * not 0 exactly when one does, and its lowest bit (bit i for s[i]) at or
 * before the first such byte, every byte before it plain. With SSE2 the
 * mask is exact; else it holds one bit, from the two words' marks (which
 * may be a false mark on a big-endian machine, as jsonword_first says). */
static inline unsigned
jsonword_odd16(const char *s)
{
#ifdef __SSE2__
    return jsonword_odd_sse2(_mm_loadu_si128((const __m128i *)(const void *)s));
#else
    uint64_t a = jsonword_marks(jsonword_load(s));
    uint64_t b = jsonword_marks(jsonword_load(s + 8));

    if (a != 0)
        return 1u << jsonword_first(a);
    return b != 0 ? 1u << (8 + jsonword_first(b)) : 0;
#endif
}

/* True when none of the 8 bytes in x needs a look of its own. */
static inline bool
jsonword_plain(uint64_t x)
{
#ifdef __SSE2__
    return jsonword_plain2(x, x);
#else
    return jsonword_marks(x) == 0;
#endif
}

/* Spaces: plain bytes that pad a word past the bytes it stands for. */
#define JSONWORD_SPACES 0x2020202020202020u

/* The r bytes (1..7) before end, first in memory, then spaces: the tail of
 * a string, read as the one word that ends it (end[-8..0) must be
 * readable). */
static inline uint64_t
jsonword_load_end(const char *end, size_t r)
{
    uint64_t x = jsonword_load(end - 8);

#if JSONWORD_BIG_ENDIAN
    return x << (8 * (8 - r)) | JSONWORD_SPACES >> (8 * r);
#else
    return x >> (8 * (8 - r)) | JSONWORD_SPACES << (8 * r);
#endif
}

/* The n bytes (4..7) at s, then spaces, from two overlapping 4-byte
 * loads: a short string as one word, reading only s[0..n). */
static inline uint64_t
jsonword_load_short(const char *s, size_t n)
{
    uint32_t lo, hi;

    memcpy(&lo, s, sizeof lo);
    memcpy(&hi, s + n - 4, sizeof hi);
#if JSONWORD_BIG_ENDIAN
    return (uint64_t)lo << 32 | ((uint64_t)hi << (8 * (8 - n)) & 0xffffffffu) |
           JSONWORD_SPACES >> (8 * n);
#else
    return lo | ((uint64_t)hi >> (8 * (8 - n))) << 32 |
           JSONWORD_SPACES << (8 * n);
#endif
}

#endif
