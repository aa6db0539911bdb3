/*
 * memory.h — how hconnd uses the C heap: malloc tuned for streaming, and
 * memory handed back to the kernel once a burst of work is over.
 */
#ifndef HCONND_MEMORY_H
#define HCONND_MEMORY_H

struct event_base;

/* Sets malloc up for hconnd's buffers, and libevent's allocator up to
 * cache its buffer chains; call once, before any libevent call. */
void memory_tune(void);

/* Returns the heap's free pages (and the cached chains) to the kernel
 * once a second has passed without another call; base runs the timer. */
void memory_trim_soon(struct event_base *base);

/* Cancels a planned trim and frees the timer (shutdown). */
void memory_shutdown(void);

#endif
