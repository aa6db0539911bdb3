/*
 * tap.c — see tap.h.
 */
#include <stdarg.h>
#include <stdio.h>

#include "tap.h"

static int checks;   /* checks run so far */
static int failures; /* checks failed */

bool
check(bool ok, const char *what, const char *fmt, ...)
{
    va_list ap;

    checks++;
    if (ok) {
        printf("ok %d - %s\n", checks, what);
    } else {
        failures++;
        printf("not ok %d - %s (", checks, what);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf(")\n");
    }
    fflush(stdout);
    return ok;
}

int
tap_finish(void)
{
    printf("1..%d\n", checks);
    return failures ? 1 : 0;
}
