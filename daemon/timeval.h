/*
 * timeval.h — seconds as the configuration and the protocol give them
 * (a double) turned into the struct timeval libevent's timers take.
 */
#ifndef HCONND_TIMEVAL_H
#define HCONND_TIMEVAL_H

#include <sys/time.h>

/* seconds (>= 0) as a timeval, to the microsecond below. */
static inline struct timeval
timeval_of(double seconds)
{
    struct timeval tv;

    tv.tv_sec = (time_t)seconds;
    tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
    return tv;
}

#endif
