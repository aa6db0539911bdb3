/*
 * log.h — one line per event on stderr, filtered by verbosity (-v).
 */
#ifndef HCONND_LOG_H
#define HCONND_LOG_H

enum log_level {
    LOG_LEVEL_ERROR,
    LOG_LEVEL_WARN,
    LOG_LEVEL_NOTICE, /* always shown: start, stop */
    LOG_LEVEL_INFO,   /* shown with -v: one line per request */
    LOG_LEVEL_DEBUG,  /* shown with -vv: connections, pool decisions */
};

/* Sets which levels are written: LOG_LEVEL_NOTICE + verbosity and below. */
void log_set_verbosity(int verbosity);

/* True when messages of level would be written (skip costly formatting). */
int log_enabled(enum log_level level);

void log_write(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...)  log_write(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...)   log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_notice(...) log_write(LOG_LEVEL_NOTICE, __VA_ARGS__)
/* Lines shown only with -v are per request or per connection: their
 * arguments (descriptions formatted for the line) are not even computed
 * when the line would not be written. */
#define log_info(...)                                                          \
    do {                                                                       \
        if (log_enabled(LOG_LEVEL_INFO))                                       \
            log_write(LOG_LEVEL_INFO, __VA_ARGS__);                            \
    } while (0)
#define log_debug(...)                                                         \
    do {                                                                       \
        if (log_enabled(LOG_LEVEL_DEBUG))                                      \
            log_write(LOG_LEVEL_DEBUG, __VA_ARGS__);                           \
    } while (0)

#endif
