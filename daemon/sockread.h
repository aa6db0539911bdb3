/*
 * sockread.h — reading a socket into an evbuffer without libevent 2.1's
 * FIONREAD ioctl.
 */
#ifndef HCONND_SOCKREAD_H
#define HCONND_SOCKREAD_H

#include <stddef.h>
#include <sys/types.h>

struct evbuffer;

/* Reads once, up to howmuch bytes, from fd onto the end of buf. Returns
 * the bytes read, 0 at the end of input, or -1 with errno (EAGAIN: none
 * yet). A tail frozen by a bufferevent is unfrozen for the append. */
ssize_t sockread_evbuffer(struct evbuffer *buf, int fd, size_t howmuch);

#endif
