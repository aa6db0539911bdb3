/*
 * listener.c — accepting clients on the Unix socket.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/listener.h>

#include "config.h"
#include "listener.h"
#include "log.h"
#include "server.h"
#include "session.h"

struct listener {
    struct server *srv;
    struct evconnlistener *evl;
    char *path;
    dev_t dev; /* identity of our socket file, so we never unlink */
    ino_t ino; /* a successor's */
};

/* Refuses the connection with one protocol error line. */
static void
listener_refuse(int fd, const char *message)
{
    char line[256];
    int n = snprintf(line, sizeof line,
                     "{\"error\":\"limit_exceeded\",\"message\":\"%s\"}\n",
                     message);

    /* Best effort: the client may already be gone. */
    if (send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        log_debug("refused client: %s", strerror(errno));
    close(fd);
}

static void
listener_accept_cb(struct evconnlistener *evl, evutil_socket_t fd,
                   struct sockaddr *addr, int len, void *arg)
{
    struct listener *l = arg;
    struct server *srv = l->srv;

    if (srv->nsessions >= srv->cfg->max_clients) {
        log_warn("refusing a client: %zu clients connected (max_clients)",
                 srv->nsessions);
        listener_refuse(fd, "too many clients connected to hconnd");
        return;
    }
    if (session_new(srv, fd) == NULL)
        log_error("cannot set up a client: out of memory");
}

static void
listener_error_cb(struct evconnlistener *evl, void *arg)
{
    /* EMFILE and friends: log and go on; libevent retries on the next
     * readiness, by which time a client may have left. */
    log_warn("accept: %s", strerror(errno));
}

/* Decides whether an existing file at path may be replaced. */
static int
listener_check_existing(const char *path, const struct sockaddr_un *sun,
                        char *err, size_t errlen)
{
    struct stat st;
    int fd, rc;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s exists and is not a socket", path);
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    rc = connect(fd, (const struct sockaddr *)sun, sizeof *sun);
    close(fd);
    if (rc == 0) {
        snprintf(err, errlen, "another hconnd is already listening on %s",
                 path);
        return -1;
    }
    log_info("removing stale socket %s", path);
    if (unlink(path) < 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot remove stale socket %s: %s", path,
                 strerror(errno));
        return -1;
    }
    return 0;
}

/* Creates the socket's directory when missing (a user daemon's first run
 * outside systemd, which would make it with RuntimeDirectory=). */
static void
listener_make_parent(const char *path)
{
    char dir[sizeof((struct sockaddr_un *)0)->sun_path];
    char *slash;

    snprintf(dir, sizeof dir, "%s", path);
    slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return;
    *slash = '\0';
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        log_warn("cannot create %s: %s", dir, strerror(errno));
}

struct listener *
listener_open(struct server *srv, const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct listener *l;
    struct stat st;
    int fd = -1;

    if (strlen(path) >= sizeof sun.sun_path) {
        snprintf(err, errlen, "socket path too long (%zu bytes max): %s",
                 sizeof sun.sun_path - 1, path);
        return NULL;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    listener_make_parent(path);
    if (listener_check_existing(path, &sun, err, errlen) < 0)
        return NULL;
    l = calloc(1, sizeof *l);
    if (l == NULL || (l->path = strdup(path)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    l->srv = srv;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
        snprintf(err, errlen, "cannot bind %s: %s", path, strerror(errno));
        goto fail;
    }
    /* Who may do what is policy's job; the socket itself is open to all
     * local users unless its directory says otherwise. */
    chmod(path, 0666);
    if (stat(path, &st) == 0) {
        l->dev = st.st_dev;
        l->ino = st.st_ino;
    }
    l->evl = evconnlistener_new(srv->base, listener_accept_cb, l,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                SOMAXCONN, fd);
    if (l->evl == NULL) {
        snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
        unlink(path);
        goto fail;
    }
    evconnlistener_set_error_cb(l->evl, listener_error_cb);
    return l;

fail:
    if (fd >= 0)
        close(fd);
    if (l != NULL)
        free(l->path);
    free(l);
    return NULL;
}

void
listener_close(struct listener *l)
{
    struct stat st;

    if (l == NULL)
        return;
    evconnlistener_free(l->evl);
    if (stat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino)
        unlink(l->path);
    free(l->path);
    free(l);
}
