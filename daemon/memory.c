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
#include <stdbool.h>

#include <event2/event.h>

#include "memory.h"

static struct event *memory_trim_timer;
static bool memory_trim_armed;   /* the timer is pending */
static bool memory_trim_delayed; /* a call came since it was armed */

void
memory_tune(void)
{
    mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 8 * 1024 * 1024);
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
}
