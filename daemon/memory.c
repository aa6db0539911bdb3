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
 */
#include <malloc.h>

#include <event2/event.h>

#include "memory.h"

static struct event *memory_trim_timer;

void
memory_tune(void)
{
    mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 8 * 1024 * 1024);
}

static void
memory_trim_cb(evutil_socket_t fd, short what, void *arg)
{
    malloc_trim(0);
}

void
memory_trim_soon(struct event_base *base)
{
    struct timeval second = {1, 0};

    if (memory_trim_timer == NULL &&
        (memory_trim_timer = evtimer_new(base, memory_trim_cb, NULL)) == NULL)
        return; /* no timer, no trim: only memory held longer */
    /* Each call pushes the trim back: a trim walks the whole heap, and
     * under steady load it would only give back what is reused at once. */
    evtimer_add(memory_trim_timer, &second);
}

void
memory_shutdown(void)
{
    if (memory_trim_timer != NULL)
        event_free(memory_trim_timer);
    memory_trim_timer = NULL;
}
