/*
 * listener.h — the Unix socket clients connect to.
 */
#ifndef HCONND_LISTENER_H
#define HCONND_LISTENER_H

#include <stddef.h>

struct server;
struct listener;

/*
 * Listens for clients. Under socket activation ($LISTEN_PID is this
 * process, $LISTEN_FDS >= 1) adopts the passed fd 3, which must be a
 * listening AF_UNIX stream socket, unsets LISTEN_PID, LISTEN_FDS and
 * LISTEN_FDNAMES, and never creates or removes a file: path is unused.
 * Otherwise binds and listens on path: a socket file nobody answers on is
 * stale and replaced; a live daemon on path, or a path that is not a
 * socket, is an error. Returns NULL with err set.
 */
struct listener *listener_open(struct server *srv, const char *path, char *err,
                               size_t errlen);

/* Where clients connect: the socket's path ("@name" if abstract), for logs
 * and the service status. */
const char *listener_path(const struct listener *l);

/* True when the socket came from the service manager (socket activation). */
int listener_activated(const struct listener *l);

/* Stops accepting and removes the socket file if it is still ours (never
 * an adopted one: it belongs to the service manager). */
void listener_close(struct listener *l);

#endif
