/*
 * h2mem.c — the allocator nghttp2 uses in hconnd (its nghttp2_mem):
 * malloc's, with the small blocks it frees kept for the next request.
 *
 * nghttp2 allocates a dozen blocks per request and frees them within it:
 * the stream, the HEADERS frame queued for it, its copy of the request's
 * fields, a buffer for each header name and value it decodes (an
 * nghttp2_rcbuf), and the dynamic table's entries. They are freed in
 * bursts (a header block's buffers at its end, a stream's state at its
 * close) that overflow malloc's per-thread cache of 7 blocks a size, so
 * most went through malloc's bins: callgrind counted 4.2k instructions of
 * malloc and free per HTTP/2 request, against 1.3k per HTTP/1.1 request.
 *
 * Here a freed block of up to H2MEM_MAX_BLOCK usable bytes waits on a
 * free list of its size class (16 bytes wide; linked through the blocks
 * themselves), and a request of that class takes it back: a few loads
 * and stores each way. The blocks stay malloc's own, classed by the size
 * malloc_usable_size gives (as memory.c does for libevent's chains), so
 * any of them may go to free() and realloc() instead and none needs a
 * header. A miss allocates the class's whole size, so that the block
 * returns to the class its requests look in.
 *
 * What is kept is bounded (H2MEM_CLASS_BLOCKS a class, H2MEM_MAX_BYTES in
 * all) and freed when the last HTTP/2 session closes. hconnd has one
 * thread: the lists need no lock.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "h2mem.h"

/* The width of a size class: class k serves requests of up to
 * k * H2MEM_GRAIN bytes, from blocks of at least that many. */
#define H2MEM_GRAIN   16
#define H2MEM_CLASSES (H2MEM_MAX_BLOCK / H2MEM_GRAIN + 1)

/* Under AddressSanitizer freed blocks go back to it at once, to be caught
 * if used again. */
#if defined(__SANITIZE_ADDRESS__)
#define H2MEM_CACHE 0
#else
#define H2MEM_CACHE 1
#endif

/* A kept block: its first bytes link it to the next of its class. */
struct h2mem_block {
    struct h2mem_block *next;
};

static struct h2mem_block *h2mem_lists[H2MEM_CLASSES];
static unsigned h2mem_counts[H2MEM_CLASSES];
static size_t h2mem_bytes; /* class sizes of the kept blocks, summed */
static bool h2mem_caching = H2MEM_CACHE;

/* nghttp2's malloc: a kept block of n's class, else a new block of the
 * class's size (or of n, above the classes). */
static void *
h2mem_malloc(size_t n, void *user)
{
    size_t k = n > 0 ? (n + H2MEM_GRAIN - 1) / H2MEM_GRAIN : 1;
    struct h2mem_block *b;

    if (k >= H2MEM_CLASSES)
        return malloc(n);
    b = h2mem_lists[k];
    if (b == NULL)
        return malloc(k * H2MEM_GRAIN);
    h2mem_lists[k] = b->next;
    h2mem_counts[k]--;
    h2mem_bytes -= k * H2MEM_GRAIN;
    return b;
}

/* nghttp2's free: a small block waits for the next request of its class
 * while there is room. */
static void
h2mem_free(void *p, void *user)
{
    size_t k;

    if (p == NULL)
        return;
    k = h2mem_caching ? malloc_usable_size(p) / H2MEM_GRAIN : 0;
    if (k > 0 && k < H2MEM_CLASSES && h2mem_counts[k] < H2MEM_CLASS_BLOCKS &&
        h2mem_bytes + k * H2MEM_GRAIN <= H2MEM_MAX_BYTES) {
        struct h2mem_block *b = p;

        b->next = h2mem_lists[k];
        h2mem_lists[k] = b;
        h2mem_counts[k]++;
        h2mem_bytes += k * H2MEM_GRAIN;
        return;
    }
    free(p);
}

/* nghttp2's calloc: as its malloc, zeroed. */
static void *
h2mem_calloc(size_t nmemb, size_t size, void *user)
{
    void *p;

    if (size > 0 && nmemb > SIZE_MAX / size)
        return NULL;
    p = h2mem_malloc(nmemb * size, user);
    if (p != NULL)
        memset(p, 0, nmemb * size);
    return p;
}

/* nghttp2's realloc: malloc's (every block is malloc's own). */
static void *
h2mem_realloc(void *p, size_t n, void *user)
{
    if (p == NULL)
        return h2mem_malloc(n, user);
    return realloc(p, n);
}

static nghttp2_mem h2mem_mem = {
    .mem_user_data = NULL,
    .malloc = h2mem_malloc,
    .free = h2mem_free,
    .calloc = h2mem_calloc,
    .realloc = h2mem_realloc,
};

nghttp2_mem *
h2mem_get(void)
{
    return &h2mem_mem;
}

void
h2mem_set_caching(bool on)
{
    if (!on)
        h2mem_drop();
    h2mem_caching = on;
}

size_t
h2mem_cached_bytes(void)
{
    return h2mem_bytes;
}

void
h2mem_drop(void)
{
    for (size_t k = 0; k < H2MEM_CLASSES; k++) {
        while (h2mem_lists[k] != NULL) {
            struct h2mem_block *b = h2mem_lists[k];

            h2mem_lists[k] = b->next;
            free(b);
        }
        h2mem_counts[k] = 0;
    }
    h2mem_bytes = 0;
}
