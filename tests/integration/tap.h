/*
 * tap.h — the Test Anything Protocol output of the C check programs
 * (lib-check, pipeline-check): one "ok N - what" or "not ok N - what
 * (detail)" line per check, then the plan.
 */
#ifndef HCONN_TAP_H
#define HCONN_TAP_H

#include <stdbool.h>

/* Reports one check; detail (printf-style) is shown when it failed.
 * Returns ok. */
bool check(bool ok, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prints the plan line; returns the exit status: 0 if every check
 * passed, else 1. */
int tap_finish(void);

#endif
