/*
 * notify.c — the sd_notify protocol by hand: one datagram of
 * "VAR=value\n" lines to the AF_UNIX socket named by $NOTIFY_SOCKET (a
 * path, or an abstract name when it starts with '@'). The service manager
 * reads the sender's pid from the kernel-attached credentials, so nothing
 * else travels with it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "hconn_error.h"
#include "log.h"
#include "notify.h"

/* Fills sun from $NOTIFY_SOCKET; returns the address length, 0 when unset,
 * or HCONN_EINVALID_ARGUMENT for a value that names no socket. */
static int
notify_address(struct sockaddr_un *sun)
{
    const char *name = getenv("NOTIFY_SOCKET");
    size_t len;

    if (name == NULL || *name == '\0')
        return 0;
    len = strlen(name);
    if ((name[0] != '/' && name[0] != '@') || len < 2 ||
        len >= sizeof sun->sun_path) {
        log_warn("NOTIFY_SOCKET=%s: not an absolute path or @abstract name "
                 "under %zu bytes; not notifying",
                 name, sizeof sun->sun_path);
        return HCONN_EINVALID_ARGUMENT;
    }
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, name, len);
    if (name[0] == '@') {
        /* An abstract name is exactly its bytes after the leading NUL:
         * no terminator may be counted in the length. */
        sun->sun_path[0] = '\0';
        return (int)(offsetof(struct sockaddr_un, sun_path) + len);
    }
    return (int)(offsetof(struct sockaddr_un, sun_path) + len + 1);
}

int
notify_send(const char *state)
{
    struct sockaddr_un sun;
    int fd, len;
    ssize_t n;

    len = notify_address(&sun);
    if (len <= 0)
        return len;
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_warn("notify: socket: %s", strerror(errno));
        return HCONN_EIO_ERROR;
    }
    /* Never block the loop on a busy service manager: a status it misses
     * is replaced by the next one. */
    n = sendto(fd, state, strlen(state), MSG_NOSIGNAL | MSG_DONTWAIT,
               (struct sockaddr *)&sun, (socklen_t)len);
    if (n < 0)
        log_warn("notify: cannot send to NOTIFY_SOCKET=%s: %s",
                 getenv("NOTIFY_SOCKET"), strerror(errno));
    close(fd);
    return n < 0 ? HCONN_EIO_ERROR : 1;
}

/* Sends prefix followed by STATUS=<formatted text>. A status is one line,
 * so newlines in it become spaces. */
static void
notify_with_status(const char *prefix, const char *fmt, va_list ap)
{
    char state[512];
    int n = snprintf(state, sizeof state, "%sSTATUS=", prefix);

    if (n < 0 || (size_t)n >= sizeof state)
        return;
    vsnprintf(state + n, sizeof state - (size_t)n, fmt, ap);
    for (char *p = state + n; *p != '\0'; p++)
        if (*p == '\n')
            *p = ' ';
    notify_send(state);
}

void
notify_ready(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    notify_with_status("READY=1\n", fmt, ap);
    va_end(ap);
}

void
notify_status(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    notify_with_status("", fmt, ap);
    va_end(ap);
}

void
notify_reloading(void)
{
    struct timespec ts;
    char state[128];

    /* Type=notify-reload matches RELOADING=1 to the reload it asked for
     * by this timestamp; older managers ignore the extra line. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(state, sizeof state,
             "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
             (unsigned long long)ts.tv_sec * 1000000ULL +
                 (unsigned long long)ts.tv_nsec / 1000ULL);
    notify_send(state);
}

void
notify_stopping(void)
{
    notify_send("STOPPING=1\nSTATUS=stopping: draining in-flight responses");
}
