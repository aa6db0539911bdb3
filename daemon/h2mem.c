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
 * Here a freed block of up to H2MEM_MAX_BLOCK bytes waits on a free list
 * of its size class (16 bytes wide; linked through the blocks
 * themselves), and a request of that class takes it back: a few loads
 * and stores each way. Each block is a malloc'd one behind a word that
 * holds its class (0: larger, freed to malloc), written when it is
 * allocated: the free finds the class there, where asking malloc for the
 * block's usable size cost a call and a third of the free's instructions
 * (17 frees per request). A miss allocates the class's whole size, so
 * that the block returns to the class its requests look in.
 *
 * The word costs no memory: glibc's chunks span 16-byte multiples and
 * hold 8 bytes fewer, so malloc(16k + 8) takes the chunk malloc(16k)
 * did. It leaves nghttp2's blocks 8-byte aligned, as much as anything it
 * allocates needs (its structures hold pointers and 64-bit integers, no
 * long double or vector type).
 *
 * What is kept is bounded (H2MEM_CLASS_BLOCKS a class, H2MEM_MAX_BYTES in
 * all, counted in class sizes) and freed when the last HTTP/2 session
 * closes. hconnd has one thread: the lists need no lock.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "h2mem.h"

/* The width of a size class: class k serves requests of up to
 * k * H2MEM_GRAIN bytes, from blocks of that many. */
#define H2MEM_GRAIN   16
#define H2MEM_CLASSES (H2MEM_MAX_BLOCK / H2MEM_GRAIN + 1)

/* Under AddressSanitizer freed blocks go back to it at once, to be caught
 * if used again. */
#if defined(__SANITIZE_ADDRESS__)
#define H2MEM_CACHE 0
#else
#define H2MEM_CACHE 1
#endif

/* The word before each block: its class, 0 for a block above them. */
typedef uint64_t h2mem_head;

/* A kept block: its first bytes link it to the next of its class. */
struct h2mem_block {
    struct h2mem_block *next;
};

static struct h2mem_block *h2mem_lists[H2MEM_CLASSES];
static unsigned h2mem_counts[H2MEM_CLASSES];
static size_t h2mem_bytes; /* class sizes of the kept blocks, summed */
static bool h2mem_caching = H2MEM_CACHE;

/* The class of a request of n bytes (0: above the classes), and the
 * bytes a block for it holds. */
static size_t
h2mem_class(size_t n, size_t *size)
{
    size_t k = n > 0 ? (n + H2MEM_GRAIN - 1) / H2MEM_GRAIN : 1;

    if (k >= H2MEM_CLASSES) {
        *size = n;
        return 0;
    }
    *size = k * H2MEM_GRAIN;
    return k;
}

/* The word before block p. */
static h2mem_head *
h2mem_head_of(void *p)
{
    return (h2mem_head *)p - 1;
}

/* Labels a block malloc or realloc gave (NULL: none) with class k; the
 * block nghttp2 sees. */
static void *
h2mem_label(h2mem_head *head, size_t k)
{
    if (head == NULL)
        return NULL;
    *head = k;
    return head + 1;
}

/* nghttp2's malloc: a kept block of n's class, else a new block of the
 * class's size (or of n, above the classes). */
static void *
h2mem_malloc(size_t n, void *user)
{
    size_t size, k = h2mem_class(n, &size);
    struct h2mem_block *b;

    if (k > 0 && (b = h2mem_lists[k]) != NULL) {
        h2mem_lists[k] = b->next;
        h2mem_counts[k]--;
        h2mem_bytes -= k * H2MEM_GRAIN;
        return b;
    }
    if (size > SIZE_MAX - sizeof(h2mem_head))
        return NULL;
    return h2mem_label(malloc(sizeof(h2mem_head) + size), k);
}

/* nghttp2's free: a small block waits for the next request of its class
 * while there is room. */
static void
h2mem_free(void *p, void *user)
{
    size_t k;

    if (p == NULL)
        return;
    k = (size_t)*h2mem_head_of(p);
    if (k > 0 && h2mem_caching && h2mem_counts[k] < H2MEM_CLASS_BLOCKS &&
        h2mem_bytes + k * H2MEM_GRAIN <= H2MEM_MAX_BYTES) {
        struct h2mem_block *b = p;

        b->next = h2mem_lists[k];
        h2mem_lists[k] = b;
        h2mem_counts[k]++;
        h2mem_bytes += k * H2MEM_GRAIN;
        return;
    }
    free(h2mem_head_of(p));
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

/* nghttp2's realloc: malloc's, to the size of n's class, which the block
 * then belongs to. */
static void *
h2mem_realloc(void *p, size_t n, void *user)
{
    size_t size, k;

    if (p == NULL)
        return h2mem_malloc(n, user);
    k = h2mem_class(n, &size);
    if (size > SIZE_MAX - sizeof(h2mem_head))
        return NULL;
    return h2mem_label(realloc(h2mem_head_of(p), sizeof(h2mem_head) + size), k);
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
            free(h2mem_head_of(b));
        }
        h2mem_counts[k] = 0;
    }
    h2mem_bytes = 0;
}
