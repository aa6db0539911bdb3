/*
 * deadline.h — a timeout that activity keeps pushing back, at the cost of
 * a time read and a comparison per push rather than a timer re-arm.
 */
#ifndef HCONND_DEADLINE_H
#define HCONND_DEADLINE_H

#include <stdbool.h>
#include <sys/time.h>

struct event;
struct event_base;

struct deadline {
    struct event_base *base;
    struct event *timer; /* made at the first deadline_set */
    struct timeval due;  /* loop time it falls due; cleared: none */
    double seconds;      /* the seconds last set */
    struct timeval span; /* ... as a timeval */
    bool armed;          /* timer pending, firing at fires */
    struct timeval fires;
    void (*cb)(void *arg);
    void *arg;
};

/* Readies d (nothing is allocated yet): cb(arg) runs once a deadline set
 * falls due. */
void deadline_init(struct deadline *d, struct event_base *base,
                   void (*cb)(void *arg), void *arg);

/* Sets d to fall due seconds from now (the loop's cached time), whatever
 * it was before; seconds <= 0 clears it. Returns 0, or -1 when out of
 * memory for its timer (it is then cleared). */
int deadline_set(struct deadline *d, double seconds);

/* Clears d: nothing falls due. */
void deadline_clear(struct deadline *d);

/* True while a deadline is set. */
bool deadline_is_set(const struct deadline *d);

/* Frees d's timer. */
void deadline_free(struct deadline *d);

#endif
