/*
 * memory.c — malloc tuning and trimming.
 *
 * Response bodies pass through buffers of up to stream_buffer_bytes that
 * are freed and allocated again at the pace of the transfer. With glibc's
 * defaults each one is a fresh mmap, or a heap top trimmed back to the
 * kernel, so every page faults in again; perf showed the faults costing
 * more CPU than the copying. So the heap keeps its free memory while work
 * goes on, and gives it back in one malloc_trim once things calm down:
 * a burst of TLS handshakes, for instance, leaves tens of KiB per
 * connection free but resident until then.
 *
 * libevent's buffer chains, 1 to 16 KiB, come and go several times per
 * request (each read, each reply), and malloc's per-thread cache stops at
 * 1 KiB: each cost a trip through malloc's bins. A few freed blocks of
 * those sizes wait in a cache of our own (libevent's allocator is ours,
 * event_set_mem_functions), emptied at every trim. The blocks are malloc's
 * own, classed by the size malloc_usable_size gives: any block may go to
 * free() instead, and none needs a header.
 *
 * OpenSSL's record buffers go the same way (CRYPTO_set_mem_functions):
 * OpenSSL frees a connection's read and write buffers whenever they empty
 * (SSL_MODE_RELEASE_BUFFERS), and the next connection to read or write
 * takes one back, still warm in the CPU's cache. Each busy connection
 * keeping its own 34 KiB instead, at 256 connections 8.7 MiB, meant
 * reading records into and writing them from memory the cache had long
 * dropped.
 *
 * The caches (these blocks, and the spare objects of memory_spares) are
 * as deep as the requests in flight: at 256 clients, lists of 16 to 64
 * overflowed at each burst of responses and ran dry at the next burst of
 * requests, and every request went through malloc's bins again (six
 * more malloc calls and 2.5k more instructions per HTTPS request than at
 * 16 clients, mostly in consolidating and unlinking free chunks). What
 * they hold was in use at the peak; the trim gives it all back.
 */
#include <malloc.h>
#include <stdbool.h>
#include <stdlib.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "memory.h"

static struct event *memory_trim_timer;
static bool memory_trim_armed;   /* the timer is pending */
static bool memory_trim_delayed; /* a call came since it was armed */

#define MEMORY_CLASS_MIN    10  /* 1 KiB: the smallest block cached */
#define MEMORY_CLASSES      5   /* ... to 16 KiB */
#define MEMORY_CLASS_BLOCKS 512 /* blocks kept per class, at most */

/* Under AddressSanitizer nothing is cached (memory_tune). */
#if defined(__SANITIZE_ADDRESS__)
#define MEMORY_CACHE_CHAINS 0
#else
#define MEMORY_CACHE_CHAINS 1
#endif

/* Freed blocks by class: class c holds blocks of at least 2^(10 + c)
 * usable bytes (and less than twice that). */
static void *memory_blocks[MEMORY_CLASSES][MEMORY_CLASS_BLOCKS];
static size_t memory_nblocks[MEMORY_CLASSES];
static bool memory_caching; /* from memory_tune to memory_shutdown */

/* OpenSSL's record buffers (about 16.7 KiB read, 17 KiB written) are
 * made MEMORY_TLS_BLOCK bytes, and freed ones cached like the chains. */
#define MEMORY_TLS_BLOCK  20480
#define MEMORY_TLS_BLOCKS 64
static void *memory_tls_blocks[MEMORY_TLS_BLOCKS];
static size_t memory_ntls_blocks;

/* Spare lists that kept an object since they were last emptied. */
static struct memory_spares *memory_spare_lists;

/* The class of a block of n usable bytes, or -1. */
static int
memory_class(size_t n)
{
    if (n < ((size_t)1 << MEMORY_CLASS_MIN) ||
        n >= ((size_t)1 << (MEMORY_CLASS_MIN + MEMORY_CLASSES)))
        return -1;
    /* The highest bit set: one instruction, where a loop took one turn
     * per class on every chain libevent allocates or frees. */
    return (int)(sizeof(unsigned long) * 8 - 1) - __builtin_clzl(n) -
           MEMORY_CLASS_MIN;
}

/* libevent's malloc: a cached block when the request is a power of two
 * of a class (as every buffer chain is), else malloc's. */
static void *
memory_ev_malloc(size_t n)
{
    int c = memory_class(n);

    if (c >= 0 && n == ((size_t)1 << (MEMORY_CLASS_MIN + c)) &&
        memory_nblocks[c] > 0)
        return memory_blocks[c][--memory_nblocks[c]];
    return malloc(n);
}

/* libevent's free: blocks of a class wait for the next malloc of it while
 * there is room. */
static void
memory_ev_free(void *p)
{
    int c;

    if (p == NULL)
        return;
    c = memory_caching ? memory_class(malloc_usable_size(p)) : -1;
    if (c >= 0 && memory_nblocks[c] < MEMORY_CLASS_BLOCKS) {
        memory_blocks[c][memory_nblocks[c]++] = p;
        return;
    }
    free(p);
}

/* libevent's realloc: malloc's (the blocks are malloc's own). */
static void *
memory_ev_realloc(void *p, size_t n)
{
    return realloc(p, n);
}

/* OpenSSL's malloc: a record buffer (over 16 KiB, up to MEMORY_TLS_BLOCK)
 * is a cached block, or a new one of MEMORY_TLS_BLOCK bytes. */
static void *
memory_ssl_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    if (n > 16384 && n <= MEMORY_TLS_BLOCK) {
        if (memory_ntls_blocks > 0)
            return memory_tls_blocks[--memory_ntls_blocks];
        n = MEMORY_TLS_BLOCK;
    }
    return malloc(n);
}

/* OpenSSL's free: a block of MEMORY_TLS_BLOCK usable bytes (and less
 * than a chunk more) waits for the next record buffer while there is
 * room. */
static void
memory_ssl_free(void *p, const char *file, int line)
{
    size_t usable;

    (void)file;
    (void)line;
    if (p == NULL)
        return;
    if (memory_caching && memory_ntls_blocks < MEMORY_TLS_BLOCKS) {
        usable = malloc_usable_size(p);
        if (usable >= MEMORY_TLS_BLOCK && usable < MEMORY_TLS_BLOCK + 64) {
            memory_tls_blocks[memory_ntls_blocks++] = p;
            return;
        }
    }
    free(p);
}

/* OpenSSL's realloc: malloc's (the blocks are malloc's own). */
static void *
memory_ssl_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    return realloc(p, n);
}

/* Frees the cached blocks and every spare list's objects. */
static void
memory_drop_blocks(void)
{
    /* The spares first: freeing one may free a block into the cache. */
    while (memory_spare_lists != NULL) {
        struct memory_spares *s = memory_spare_lists;

        memory_spare_lists = s->next;
        s->next = NULL;
        s->listed = false;
        memory_spares_drop(s);
    }
    for (int c = 0; c < MEMORY_CLASSES; c++)
        while (memory_nblocks[c] > 0)
            free(memory_blocks[c][--memory_nblocks[c]]);
    while (memory_ntls_blocks > 0)
        free(memory_tls_blocks[--memory_ntls_blocks]);
}

void *
memory_spare_take(struct memory_spares *s)
{
    return s->n > 0 ? s->items[--s->n] : NULL;
}

bool
memory_spare_keep(struct memory_spares *s, void *item)
{
    if (s->n >= s->max)
        return false;
    s->items[s->n++] = item;
    /* Listed for the next trim to empty. */
    if (!s->listed) {
        s->listed = true;
        s->next = memory_spare_lists;
        memory_spare_lists = s;
    }
    return true;
}

void
memory_spares_drop(struct memory_spares *s)
{
    while (s->n > 0)
        s->drop(s->items[--s->n]);
}

void
memory_tune(void)
{
    mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 8 * 1024 * 1024);
    /* Under AddressSanitizer freed blocks are left to it, to be caught
     * if used again. */
    if (MEMORY_CACHE_CHAINS) {
        memory_caching = true;
        event_set_mem_functions(memory_ev_malloc, memory_ev_realloc,
                                memory_ev_free);
        /* Refused once OpenSSL has allocated: then only not cached. */
        CRYPTO_set_mem_functions(memory_ssl_malloc, memory_ssl_realloc,
                                 memory_ssl_free);
    }
}

/* Trims once a second has passed without a call to memory_trim_soon
 * (between one and two seconds after the last). */
static void
memory_trim_cb(evutil_socket_t fd, short what, void *arg)
{
    struct timeval second = {1, 0};

    if (memory_trim_delayed) {
        memory_trim_delayed = false;
        if (evtimer_add(memory_trim_timer, &second) == 0)
            return;
    }
    memory_trim_armed = false;
    memory_drop_blocks();
    malloc_trim(0);
}

void
memory_trim_soon(struct event_base *base)
{
    struct timeval second = {1, 0};

    if (memory_trim_timer == NULL &&
        (memory_trim_timer = evtimer_new(base, memory_trim_cb, NULL)) == NULL)
        return; /* no timer, no trim: only memory held longer */
    /* Each call puts the trim back: a trim walks the whole heap, and under
     * steady load it would only give back what is reused at once. A call
     * with the timer armed only marks it, rather than re-arming the timer
     * for every request the pool and the sessions end. */
    if (memory_trim_armed) {
        memory_trim_delayed = true;
        return;
    }
    if (evtimer_add(memory_trim_timer, &second) == 0)
        memory_trim_armed = true;
}

void
memory_shutdown(void)
{
    if (memory_trim_timer != NULL)
        event_free(memory_trim_timer);
    memory_trim_timer = NULL;
    memory_trim_armed = memory_trim_delayed = false;
    memory_caching = false;
    memory_drop_blocks();
}
