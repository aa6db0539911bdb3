/*
 * log.c — stderr logging. Under systemd the journal adds timestamps, so a
 * line is just the level and the message; lines are written with one
 * write(2) so concurrent writers never interleave within a line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "log.h"

static int log_max_level = LOG_LEVEL_NOTICE;

static const char *const log_level_names[] = {
    [LOG_LEVEL_ERROR] = "error",   [LOG_LEVEL_WARN] = "warning",
    [LOG_LEVEL_NOTICE] = "notice", [LOG_LEVEL_INFO] = "info",
    [LOG_LEVEL_DEBUG] = "debug",
};

void
log_set_verbosity(int verbosity)
{
    log_max_level = LOG_LEVEL_NOTICE + verbosity;
}

int
log_enabled(enum log_level level)
{
    return (int)level <= log_max_level;
}

void
log_write(enum log_level level, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    int n;

    if (!log_enabled(level))
        return;
    n = snprintf(line, sizeof line, "hconnd: %s: ", log_level_names[level]);
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    /* Nothing useful can be done if stderr is gone. */
    if (write(STDERR_FILENO, line, (size_t)n) < 0)
        return;
}
