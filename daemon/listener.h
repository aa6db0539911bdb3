/*
 * listener.h — the Unix socket clients connect to.
 */
#ifndef HCONND_LISTENER_H
#define HCONND_LISTENER_H

#include <stddef.h>

struct server;
struct listener;

/*
 * Binds and listens on path. A socket file nobody answers on is stale and
 * replaced; a live daemon on path, or a path that is not a socket, is an
 * error. Returns NULL with err set.
 */
struct listener *listener_open(struct server *srv, const char *path, char *err,
                               size_t errlen);

/* Stops accepting and removes the socket file if it is still ours. */
void listener_close(struct listener *l);

#endif
