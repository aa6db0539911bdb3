/*
 * listener.c — accepting clients on the Unix socket: one we bind, or one
 * the service manager bound and passed to us (socket activation).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
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
    dev_t dev;    /* identity of our socket file, so we never unlink */
    ino_t ino;    /* a successor's */
    bool adopted; /* passed by the service manager: the file is not ours */
    int spare_fd; /* held open so that, out of descriptors, a client can
                     still be accepted to be told why; -1: none */
    struct event *resume_timer; /* accepting again after a pause */
};

/* How long accepting pauses after an accept error that no retry can fix
 * at once (out of descriptors with no spare, out of memory). */
#define LISTENER_PAUSE_MS 100

/* The first descriptor a service manager passes (SD_LISTEN_FDS_START). */
#define LISTENER_ACTIVATION_FD 3

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

/*
 * Out of descriptors, the waiting client cannot be accepted, and the
 * socket stays readable: retrying at once would spin. The spare
 * descriptor is given up for a moment so the client can be accepted, told
 * why and closed. Returns false if there is no spare to do it with.
 */
static bool
listener_refuse_without_fds(struct listener *l, int accept_errno)
{
    int fd;

    if (l->spare_fd < 0)
        return false;
    close(l->spare_fd);
    fd = accept4(evconnlistener_get_fd(l->evl), NULL, NULL,
                 SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) {
        log_warn("refusing a client: accept: %s (%zu clients connected)",
                 strerror(accept_errno), l->srv->nsessions);
        listener_refuse(fd, "hconnd is out of file descriptors; try again "
                            "later");
    }
    l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return l->spare_fd >= 0;
}

static void
listener_error_cb(struct evconnlistener *evl, void *arg)
{
    struct listener *l = arg;
    int err = errno;
    struct timeval tv = {0, LISTENER_PAUSE_MS * 1000};

    if ((err == EMFILE || err == ENFILE) && listener_refuse_without_fds(l, err))
        return;
    /* Nothing to do for this client now, and a retry on the next
     * readiness would come at once: pause instead of spinning. */
    log_warn("accept: %s; not accepting for %d ms", strerror(err),
             LISTENER_PAUSE_MS);
    evconnlistener_disable(evl);
    evtimer_add(l->resume_timer, &tv);
}

static void
listener_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct listener *l = arg;

    evconnlistener_enable(l->evl);
}

/* Accepts clients on fd, a listening socket, from now on; backlog < 0
 * keeps the one it listens with. Returns -1 with errno set. */
static int
listener_start(struct listener *l, int fd, int backlog)
{
    l->resume_timer = evtimer_new(l->srv->base, listener_resume_cb, l);
    if (l->resume_timer == NULL)
        return -1;
    l->evl = evconnlistener_new(l->srv->base, listener_accept_cb, l,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                backlog, fd);
    if (l->evl == NULL)
        return -1;
    evconnlistener_set_error_cb(l->evl, listener_error_cb);
    l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return 0;
}

static struct listener *
listener_new(struct server *srv)
{
    struct listener *l = calloc(1, sizeof *l);

    if (l != NULL) {
        l->srv = srv;
        l->spare_fd = -1;
    }
    return l;
}

/* Frees l and what it holds; the socket file is the caller's business. */
static void
listener_free(struct listener *l)
{
    if (l->evl != NULL)
        evconnlistener_free(l->evl);
    if (l->resume_timer != NULL)
        event_free(l->resume_timer);
    if (l->spare_fd >= 0)
        close(l->spare_fd);
    free(l->path);
    free(l);
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

/* Parses a whole decimal environment value into *out; -1 if it is not
 * one. */
static int
listener_env_number(const char *value, long *out)
{
    char *end;

    errno = 0;
    *out = strtol(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || *out < 0)
        return -1;
    return 0;
}

/*
 * How many sockets the service manager passed: 0 when none were meant for
 * this process, -1 with err set when the variables are malformed. The
 * variables are removed either way, so nothing we might start inherits
 * them.
 */
static long
listener_passed_count(char *err, size_t errlen)
{
    const char *pid_s = getenv("LISTEN_PID"), *fds_s = getenv("LISTEN_FDS");
    long pid, nfds = 0;

    if (pid_s != NULL && fds_s != NULL) {
        if (listener_env_number(pid_s, &pid) < 0) {
            snprintf(err, errlen,
                     "socket activation: LISTEN_PID=%s is not a pid", pid_s);
            nfds = -1;
        } else if (pid != (long)getpid()) {
            /* Meant for another process (one that exec'd us): not ours. */
            nfds = 0;
        } else if (listener_env_number(fds_s, &nfds) < 0 ||
                   nfds > INT_MAX - LISTENER_ACTIVATION_FD) {
            snprintf(err, errlen,
                     "socket activation: LISTEN_FDS=%s is not a count", fds_s);
            nfds = -1;
        }
    }
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return nfds;
}

/* Checks that fd is a listening AF_UNIX stream socket; -1 with err set
 * naming what it is instead. */
static int
listener_check_passed(int fd, char *err, size_t errlen)
{
    int domain = 0, type = 0, accepting = 0;
    socklen_t len;

    len = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0) {
        snprintf(err, errlen, "socket activation: fd %d is not a socket: %s",
                 fd, strerror(errno));
        return -1;
    }
    len = sizeof type;
    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len);
    len = sizeof accepting;
    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len);
    if (domain != AF_UNIX || type != SOCK_STREAM) {
        snprintf(err, errlen,
                 "socket activation: fd %d is not an AF_UNIX stream socket "
                 "(domain %d, type %d); use ListenStream=/path",
                 fd, domain, type);
        return -1;
    }
    if (!accepting) {
        snprintf(err, errlen,
                 "socket activation: fd %d is not listening (Accept=yes "
                 "passes connections; hconnd wants Accept=no)",
                 fd);
        return -1;
    }
    return 0;
}

/* The name clients connect to: a path, "@name" for an abstract socket. */
static char *
listener_bound_name(int fd)
{
    struct sockaddr_un sun;
    socklen_t len = sizeof sun;
    size_t n;
    char *name;

    memset(&sun, 0, sizeof sun);
    if (getsockname(fd, (struct sockaddr *)&sun, &len) < 0 ||
        len <= offsetof(struct sockaddr_un, sun_path))
        return strdup("(unnamed socket)");
    n = len - offsetof(struct sockaddr_un, sun_path);
    if (sun.sun_path[0] != '\0')
        return strndup(sun.sun_path, n);
    name = strndup(sun.sun_path, n);
    if (name != NULL)
        name[0] = '@';
    return name;
}

/* Serves on the socket the service manager passed; NULL with err set. */
static struct listener *
listener_adopt(struct server *srv, long nfds, char *err, size_t errlen)
{
    const int fd = LISTENER_ACTIVATION_FD;
    struct listener *l;

    if (listener_check_passed(fd, err, errlen) < 0)
        return NULL;
    /* One socket serves every client; more would be a unit with several
     * ListenStream= lines, whose other sockets nobody would answer. */
    for (long extra = 1; extra < nfds; extra++) {
        log_warn("socket activation: ignoring passed fd %ld (hconnd serves "
                 "one socket)",
                 fd + extra);
        close(fd + (int)extra);
    }
    l = listener_new(srv);
    if (l == NULL || (l->path = listener_bound_name(fd)) == NULL) {
        snprintf(err, errlen, "out of memory");
        free(l);
        return NULL;
    }
    l->adopted = true;
    /* The manager passes it blocking and inheritable; libevent drains
     * accept() until EAGAIN, which a blocking socket would never return. */
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        snprintf(err, errlen, "cannot set up the passed socket %s: %s", l->path,
                 strerror(errno));
        listener_free(l);
        return NULL;
    }
    /* Backlog 0: the socket already listens, with the unit's Backlog=. */
    if (listener_start(l, fd, 0) < 0) {
        snprintf(err, errlen, "cannot accept on the passed socket %s: %s",
                 l->path, strerror(errno));
        listener_free(l);
        return NULL;
    }
    return l;
}

struct listener *
listener_open(struct server *srv, const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct listener *l;
    struct stat st;
    long passed;
    int fd = -1;

    passed = listener_passed_count(err, errlen);
    if (passed < 0)
        return NULL;
    if (passed > 0)
        return listener_adopt(srv, passed, err, errlen);
    if (strlen(path) >= sizeof sun.sun_path) {
        snprintf(err, errlen, "socket path too long (%zu bytes max): %s",
                 sizeof sun.sun_path - 1, path);
        return NULL;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    listener_make_parent(path);
    if (listener_check_existing(path, &sun, err, errlen) < 0)
        return NULL;
    l = listener_new(srv);
    if (l == NULL || (l->path = strdup(path)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
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
    if (listener_start(l, fd, SOMAXCONN) < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
        unlink(path);
        goto fail;
    }
    return l;

fail:
    if (fd >= 0 && (l == NULL || l->evl == NULL))
        close(fd);
    if (l != NULL)
        listener_free(l);
    return NULL;
}

const char *
listener_path(const struct listener *l)
{
    return l->path;
}

int
listener_activated(const struct listener *l)
{
    return l->adopted;
}

void
listener_close(struct listener *l)
{
    struct stat st;

    if (l == NULL)
        return;
    if (!l->adopted && stat(l->path, &st) == 0 && st.st_dev == l->dev &&
        st.st_ino == l->ino)
        unlink(l->path);
    listener_free(l);
}
