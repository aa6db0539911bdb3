/*
 * sockread.h — reading a socket into an evbuffer without libevent 2.1's
 * FIONREAD ioctl.
 */
#ifndef HCONND_SOCKREAD_H
#define HCONND_SOCKREAD_H

#include <stddef.h>
#include <sys/types.h>

#include <event2/event.h>

struct bufferevent;
struct evbuffer;

/* Reads once, up to howmuch bytes, from fd onto the end of buf. Returns
 * the bytes read, 0 at the end of input, or -1 with errno (EAGAIN: none
 * yet). A tail frozen by a bufferevent is unfrozen for the append. */
ssize_t sockread_evbuffer(struct evbuffer *buf, int fd, size_t howmuch);

/* Makes bev, made by bufferevent_socket_new, read its socket with
 * sockread_evbuffer instead of libevent's FIONREAD-sized reads, up to
 * bufferevent_get_max_to_read and the read high-water mark per read.
 * Once, after bufferevent_socket_new (bufferevent_setfd would give
 * libevent's own read back). Returns 0, or -1 when
 * its read event is not libevent's (it then reads as before). */
int sockread_bufferevent(struct bufferevent *bev);

/* Gives the read event of bev (made by bufferevent_socket_new) the
 * callback cb(fd, what, arg) in place of libevent's, which reads the
 * socket into bev's input: enabling, disabling and suspending bev's
 * reading still add and remove the event. Returns 0, or -1 (bev's read
 * event may then be gone). */
int sockread_take_read_event(struct bufferevent *bev, event_callback_fn cb,
                             void *arg);

#endif
