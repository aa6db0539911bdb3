/*
 * h2mem.h — the allocator hconnd gives nghttp2 (h2mem.c): malloc's, with
 * the small blocks a request frees kept for the next one.
 */
#ifndef HCONND_H2MEM_H
#define HCONND_H2MEM_H

#include <stdbool.h>
#include <stddef.h>

#include <nghttp2/nghttp2.h>

/* Blocks of up to this many usable bytes are kept when freed. */
#define H2MEM_MAX_BLOCK 1024
/* Blocks kept per size class, and bytes kept in all, at most. */
#define H2MEM_CLASS_BLOCKS 64
#define H2MEM_MAX_BYTES    (128 * 1024)

/* The allocator, for nghttp2_session_client_new3. */
nghttp2_mem *h2mem_get(void);

/* Whether freed blocks are kept (not under AddressSanitizer, which is
 * left to catch a block used after it was freed); tests may turn it
 * off and on. */
void h2mem_set_caching(bool on);

/* Bytes kept in freed blocks now. */
size_t h2mem_cached_bytes(void);

/* Frees every block kept (no HTTP/2 session is left to reuse them). */
void h2mem_drop(void);

#endif
