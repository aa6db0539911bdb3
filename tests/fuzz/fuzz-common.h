/*
 * fuzz-common.h — helpers shared by the libFuzzer targets: a check that
 * traps, deterministic piece sizes drawn from the input, the caller-side
 * byte window (unconsumed bytes, next piece appended, consumed bytes
 * dropped, everything past the live bytes poisoned for ASan) and a
 * growable transcript.
 *
 * Header-only (static inline) so each target is one .c file plus the
 * proto sources.
 */
#ifndef HCONN_FUZZ_COMMON_H
#define HCONN_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sanitizer/asan_interface.h>

/* A violated invariant: a crash libFuzzer reports with the stack. */
#define FZ_CHECK(cond)                                                         \
    do {                                                                       \
        if (!(cond))                                                           \
            __builtin_trap();                                                  \
    } while (0)

/* Allocation failure is not what we are testing. */
static inline void *
fz_xmalloc(size_t n)
{
    void *p = malloc(n > 0 ? n : 1);

    if (p == NULL)
        abort();
    return p;
}

/* ---- Piece sizes ---------------------------------------------------------
 * Two control bytes pick a PRNG seed and a size scale, so every input
 * always splits the same way and the fuzzer can mutate the split. */

struct fz_split {
    uint32_t state; /* xorshift32, never 0 */
    uint32_t max;   /* pieces are 0..max bytes (0 = a call with no new
                       bytes, which a real caller may make too) */
    bool allow_empty;
};

static inline void
fz_split_init(struct fz_split *s, uint8_t a, uint8_t b)
{
    static const uint32_t scale[8] = {1, 2, 3, 7, 16, 64, 512, 4096};

    s->state = ((uint32_t)a << 8 | b) * 2654435761u | 1u;
    s->max = scale[a & 7];
    s->allow_empty = (a & 8) != 0;
}

static inline uint32_t
fz_split_rand(struct fz_split *s)
{
    uint32_t x = s->state;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s->state = x;
    return x;
}

/* The next piece: at most left bytes. */
static inline size_t
fz_split_next(struct fz_split *s, size_t left)
{
    uint32_t r = fz_split_rand(s);
    size_t n;

    if (s->allow_empty && (r & 7) == 0)
        return 0;
    n = 1 + (r >> 3) % s->max;
    return n < left ? n : left;
}

/* ---- The caller's window -------------------------------------------------
 * Live bytes sit at the start of a malloc'd block (the redzone before it
 * catches reads before buf); everything after them is poisoned, so a
 * codec reading past len trips ASan even though the block is larger. */

struct fz_window {
    char *mem;
    size_t cap;
    size_t len;
};

static inline void
fz_window_init(struct fz_window *w, size_t cap)
{
    w->mem = fz_xmalloc(cap);
    w->cap = cap;
    w->len = 0;
    ASAN_POISON_MEMORY_REGION(w->mem, w->cap);
}

static inline void
fz_window_append(struct fz_window *w, const void *src, size_t n)
{
    FZ_CHECK(n <= w->cap - w->len);
    ASAN_UNPOISON_MEMORY_REGION(w->mem + w->len, n);
    if (n > 0)
        memcpy(w->mem + w->len, src, n);
    w->len += n;
}

/* Drops the first n bytes, as a caller does with *consumed. */
static inline void
fz_window_drop(struct fz_window *w, size_t n)
{
    FZ_CHECK(n <= w->len);
    if (n == 0)
        return;
    memmove(w->mem, w->mem + n, w->len - n);
    w->len -= n;
    ASAN_POISON_MEMORY_REGION(w->mem + w->len, w->cap - w->len);
}

static inline void
fz_window_free(struct fz_window *w)
{
    ASAN_UNPOISON_MEMORY_REGION(w->mem, w->cap);
    free(w->mem);
    w->mem = NULL;
}

/* True when [p, p + n) lies inside [base, base + len). */
static inline bool
fz_inside(const char *base, size_t len, const char *p, size_t n)
{
    return n == 0 || (p >= base && n <= len && (size_t)(p - base) <= len - n);
}

/* ---- A growable byte string -------------------------------------------- */

struct fz_bytes {
    char *p;
    size_t len;
    size_t cap;
};

static inline void
fz_bytes_add(struct fz_bytes *b, const void *s, size_t n)
{
    if (n > b->cap - b->len) {
        size_t cap = b->cap > 0 ? b->cap : 256;

        while (cap - b->len < n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (b->p == NULL)
            abort();
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* A length-prefixed field, so concatenations cannot collide. */
static inline void
fz_bytes_field(struct fz_bytes *b, const void *s, size_t n)
{
    uint64_t len = n;

    fz_bytes_add(b, &len, sizeof len);
    fz_bytes_add(b, s, n);
}

static inline void
fz_bytes_int(struct fz_bytes *b, int64_t v)
{
    fz_bytes_add(b, &v, sizeof v);
}

static inline bool
fz_bytes_equal(const struct fz_bytes *a, const struct fz_bytes *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

static inline void
fz_bytes_free(struct fz_bytes *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ---- HTTP tokens ------------------------------------------------------- */

/* RFC 9110 §5.6.2 tchar, written out independently of the codec. */
static inline bool
fz_is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z') ||
           (c != '\0' && memchr("!#$%&'*+-.^_`|~", c, 15) != NULL);
}

#endif
