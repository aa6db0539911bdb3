/*
 * memory.h — how hconnd uses the C heap: malloc tuned for streaming, and
 * memory handed back to the kernel once a burst of work is over.
 */
#ifndef HCONND_MEMORY_H
#define HCONND_MEMORY_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;

/* Freed objects of one kind kept for the next ones (an exchange, a
 * stream): under load each request frees one and the next takes it back,
 * as many at a time as requests are in flight, without a trip through
 * malloc's bins. Emptied at every trim, so an idle daemon keeps none.
 * Define one with MEMORY_SPARES; the fields are memory.c's. */
struct memory_spares {
    void **items;
    size_t n, max;
    void (*drop)(void *item);   /* frees one kept object */
    struct memory_spares *next; /* in the trim's list, once used */
    bool listed;
};

/* A static spare list `name` of up to `cap` objects freed by `drop_fn`. */
#define MEMORY_SPARES(name, cap, drop_fn)                                      \
    static void *name##_items[cap];                                            \
    static struct memory_spares name = {name##_items, 0,    cap,               \
                                        drop_fn,      NULL, false}

/* A kept object, or NULL when there is none. */
void *memory_spare_take(struct memory_spares *s);

/* Keeps item for a later memory_spare_take; false when the list is full:
 * the caller frees it. */
bool memory_spare_keep(struct memory_spares *s, void *item);

/* Frees every object s keeps. */
void memory_spares_drop(struct memory_spares *s);

/* Sets malloc up for hconnd's buffers, and libevent's and OpenSSL's
 * allocators up to cache buffer chains and record buffers; call once,
 * before any libevent or OpenSSL call. */
void memory_tune(void);

/* Returns the heap's free pages (and the cached chains and spares) to the
 * kernel once a second has passed without another call; base runs the timer. */
void memory_trim_soon(struct event_base *base);

/* Cancels a planned trim and frees the timer (shutdown). */
void memory_shutdown(void);

#endif
