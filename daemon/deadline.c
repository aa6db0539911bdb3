/*
 * deadline.c — a timeout pushed back by activity without re-arming a
 * timer at each push.
 *
 * A read timeout restarted at every read, as libevent's bufferevent
 * timeouts are, re-inserts a timer in the loop's heap per read and per
 * request. Here a push only stores when the deadline falls due, from the
 * loop's cached time; one timer per deadline stays armed for the earliest
 * due time it has been given. When it fires and the deadline has moved
 * later meanwhile, it is armed again for the rest; only a deadline moved
 * earlier than the timer arms it at once. What falls due is exactly what
 * a timer re-armed at every push would have fired for.
 *
 * The cached time is the loop's monotonic clock plus an offset to the
 * wall clock that libevent refreshes every few seconds: a step of the
 * wall clock between a push and the timer moves the due time by the
 * step. A due time found further away than the span last set (a step
 * back) is brought back to the span from now, so a step delays a
 * deadline by one span at most; a step forward can bring it early.
 */
#include <event2/event.h>
#include <event2/util.h>

#include "deadline.h"
#include "timeval.h"

/* Arms the timer for due, from now. */
static int
deadline_arm(struct deadline *d, const struct timeval *now)
{
    struct timeval left;

    evutil_timersub(&d->due, now, &left);
    if (left.tv_sec < 0)
        evutil_timerclear(&left);
    if (event_add(d->timer, &left) < 0)
        return -1;
    d->armed = true;
    d->fires = d->due;
    return 0;
}

/* The timer fired: the deadline fell due, moved later (armed again for
 * the rest), or was cleared. */
static void
deadline_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct deadline *d = arg;
    struct timeval now, left;

    (void)fd;
    (void)what;
    d->armed = false;
    if (!evutil_timerisset(&d->due))
        return;
    event_base_gettimeofday_cached(d->base, &now);
    if (evutil_timercmp(&now, &d->due, <)) {
        evutil_timersub(&d->due, &now, &left);
        if (evutil_timercmp(&left, &d->span, >))
            evutil_timeradd(&now, &d->span, &d->due);
        if (deadline_arm(d, &now) == 0)
            return;
    }
    evutil_timerclear(&d->due);
    d->cb(d->arg);
}

void
deadline_init(struct deadline *d, struct event_base *base,
              void (*cb)(void *arg), void *arg)
{
    *d = (struct deadline){.base = base, .cb = cb, .arg = arg};
}

int
deadline_set(struct deadline *d, double seconds)
{
    struct timeval now;

    if (!(seconds > 0)) {
        deadline_clear(d);
        return 0;
    }
    if (d->timer == NULL &&
        (d->timer = evtimer_new(d->base, deadline_timer_cb, d)) == NULL) {
        deadline_clear(d);
        return -1;
    }
    event_base_gettimeofday_cached(d->base, &now);
    if (seconds != d->seconds) {
        d->span = timeval_of(seconds);
        d->seconds = seconds;
    }
    evutil_timeradd(&now, &d->span, &d->due);
    /* A timer firing no later than due re-arms itself for the rest. */
    if (d->armed && !evutil_timercmp(&d->fires, &d->due, >))
        return 0;
    if (deadline_arm(d, &now) < 0) {
        deadline_clear(d);
        return -1;
    }
    return 0;
}

void
deadline_clear(struct deadline *d)
{
    /* The timer, if armed, is left to fire for nothing: a deadline set
     * again soon (the next request) then costs no re-arm. */
    evutil_timerclear(&d->due);
}

bool
deadline_is_set(const struct deadline *d)
{
    return evutil_timerisset(&d->due);
}

void
deadline_free(struct deadline *d)
{
    if (d->timer != NULL)
        event_free(d->timer);
    d->timer = NULL;
    d->armed = false;
    evutil_timerclear(&d->due);
}
