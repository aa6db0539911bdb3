/*
 * sockread.c — one read from a socket onto an evbuffer's tail.
 *
 * libevent 2.1's evbuffer_read (behind every socket bufferevent) asks the
 * socket how many bytes it holds with an FIONREAD ioctl before each read:
 * one system call per read only to size the buffer. Reading into the
 * space the buffer has reserved, of a size fixed by the caller, needs
 * none; the kernel says how much it gave.
 */
#include <errno.h>
#include <sys/uio.h>

#include <event2/buffer.h>

#include "sockread.h"

ssize_t
sockread_evbuffer(struct evbuffer *buf, int fd, size_t howmuch)
{
    struct evbuffer_iovec vec[2];
    struct iovec iov[2];
    ssize_t n, left;
    int nvec;

    /* A bufferevent freezes its input's tail so that only it appends;
     * this appends just as its own read would, from the same socket. */
    evbuffer_unfreeze(buf, 0);
    nvec = evbuffer_reserve_space(buf, (ev_ssize_t)howmuch, vec, 2);
    if (nvec <= 0) {
        evbuffer_freeze(buf, 0);
        errno = ENOMEM;
        return -1;
    }
    for (int i = 0; i < nvec; i++) {
        iov[i].iov_base = vec[i].iov_base;
        iov[i].iov_len = vec[i].iov_len;
    }
    n = readv(fd, iov, nvec);
    left = n > 0 ? n : 0;
    for (int i = 0; i < nvec; i++) {
        size_t len =
            (size_t)left < vec[i].iov_len ? (size_t)left : vec[i].iov_len;

        vec[i].iov_len = len;
        left -= (ssize_t)len;
    }
    evbuffer_commit_space(buf, vec, n > 0 ? nvec : 0);
    evbuffer_freeze(buf, 0);
    return n;
}
