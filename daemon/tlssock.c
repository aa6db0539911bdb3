/*
 * tlssock.c — OpenSSL reading and writing a TLS connection's socket
 * itself, under libevent's OpenSSL filter bufferevent.
 *
 * libevent's filter runs its SSL over a BIO that reads and writes the
 * evbuffers of a socket bufferevent below it: every record was copied
 * socket -> socket bufferevent's input -> OpenSSL, and on the way out
 * OpenSSL -> socket bufferevent's output -> socket, each step with
 * evbuffer chain work and a deferred callback. Here the filter keeps all
 * its logic (the handshake, SSL_read and SSL_write, watermarks, timeouts,
 * events, the dirty shutdown it allows), but its SSL gets a BIO over the
 * socket itself. The socket bufferevent below stays for its events only,
 * and its buffers stay empty:
 *
 * - its read event no longer reads: it calls the filter's read callback
 *   (the handshake's or consider_reading), which reads through the BIO;
 * - its write event is armed only when a write would block, and then
 *   wakes the filter's write callback, as its draining output did;
 * - the end of the stream and a socket error reach the filter as events
 *   of the socket bufferevent, as before: a server closing without
 *   close_notify stays the dirty shutdown the filter allows, and a reset
 *   stays an error (OpenSSL would see the first as an error and, as
 *   SSL_ERROR_SYSCALL, the second as a dirty shutdown).
 *
 * libevent's socket-mode OpenSSL bufferevent would read the socket too,
 * but it writes a loop turn late: every write arms the write event (an
 * epoll_ctl), waits for it and disarms it (another). The filter writes
 * as soon as bytes are added.
 *
 * One read per readiness for a small response: OpenSSL reads ahead (its
 * whole record buffer at once), and a read that came back short means the
 * socket was empty, so the read OpenSSL would make next only to hear
 * EAGAIN is answered here, until epoll reports the socket readable again
 * (level-triggered: bytes that came meanwhile are reported). A readiness
 * allows TLSSOCK_READS reads, so that one busy connection cannot keep the
 * loop; the rest waits for the next turn.
 *
 * The filter's read loop asks once more after every record, unless its
 * input has reached its read high-water mark: an SSL_read (and an
 * ERR_clear_error) that can only want more when the socket was found
 * empty and OpenSSL holds nothing else. So while the filter reads for
 * tlssock_read_cb, the bytes it adds to its input are watched: once the
 * socket is empty and OpenSSL holds nothing, the filter's high-water mark
 * is set, directly, to what its input already holds, which ends its loop
 * (without suspending its reading, which only setting it through
 * bufferevent_setwatermark does), and is cleared again as soon as the
 * filter returns.
 *
 * A TLS connection through a CONNECT tunnel goes the same way once the
 * proxy's answer is read, unless the socket bufferevent still holds bytes
 * (past the answer, or of CONNECT not yet sent): the filter then keeps
 * its BIO over the socket bufferevent, which reads as sockread.c does.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "sockread.h"
#include "tlssock.h"

/* Reads of the socket per readiness (of up to a record buffer each). */
#define TLSSOCK_READS 4

/* One connection's socket, as its BIO sees it. */
struct tlssock {
    struct bufferevent *tcp;    /* the socket bufferevent under the filter */
    struct bufferevent *filter; /* the filter over it, whose SSL holds this */
    SSL *ssl;
    evutil_socket_t fd;
    bool readable;     /* the socket may hold bytes: a read asks the kernel */
    int reads_left;    /* of TLSSOCK_READS, this readiness */
    short end;         /* BEV_EVENT_EOF or _ERROR once a read met either */
    bool end_reported; /* ... and the filter was told */
    int end_errno;     /* the failed read's errno */
    bool write_failed; /* a write failed: the filter was told */
    bool read_ended;   /* the filter's high-water mark ends its read loop */
};

/* The connection the filter reads for tlssock_read_cb, while it does. */
static struct tlssock *tlssock_reading;

/* The BIO method, made on first use, and its type. */
static BIO_METHOD *tlssock_method;
static int tlssock_type;

/* A read from OpenSSL: from the kernel while the socket may hold bytes,
 * else "retry" (SSL_ERROR_WANT_READ) without a system call. */
static int
tlssock_bio_read(BIO *b, char *out, int len)
{
    struct tlssock *t = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    if (t == NULL || out == NULL || len <= 0)
        return 0;
    if (!t->readable || t->end != 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    n = recv(t->fd, out, (size_t)len, 0);
    if (n > 0) {
        /* Short: the socket is empty now. */
        if (n < len || --t->reads_left <= 0)
            t->readable = false;
        return (int)n;
    }
    t->readable = false;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        BIO_set_retry_read(b);
        return -1;
    }
    /* Kept for the filter's event (tlssock_read_cb): to OpenSSL it is
     * only "no bytes yet". */
    t->end = n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR;
    t->end_errno = n == 0 ? 0 : errno;
    BIO_set_retry_read(b);
    return -1;
}

/* A write from OpenSSL: straight to the socket. */
static int
tlssock_bio_write(BIO *b, const char *in, int len)
{
    struct tlssock *t = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    if (t == NULL || in == NULL || len <= 0)
        return 0;
    if (t->write_failed) {
        BIO_set_retry_write(b);
        return -1;
    }
    n = send(t->fd, in, (size_t)len, MSG_NOSIGNAL);
    if (n >= 0)
        return (int)n;
    BIO_set_retry_write(b);
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        /* The socket bufferevent's write event, its output empty, runs
         * the filter's write callback once the socket takes bytes again
         * (and then takes itself out of the loop's set). */
        bufferevent_enable(t->tcp, EV_WRITE);
        return -1;
    }
    /* As a failed write of the socket bufferevent reports it: an event,
     * from the loop. OpenSSL waits to retry, and never will. */
    t->write_failed = true;
    bufferevent_trigger_event(t->tcp, BEV_EVENT_ERROR | BEV_EVENT_WRITING,
                              BEV_TRIG_DEFER_CALLBACKS);
    return -1;
}

/* OpenSSL asks about a dozen of these per request, mostly whether this
 * BIO does kernel TLS (it does not): its state is fetched only for the
 * one request that needs it. */
static long
tlssock_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct tlssock *t;

    switch (cmd) {
    case BIO_CTRL_FLUSH: /* every write went out, or is retried */
    case BIO_CTRL_DUP:
        return 1;
    case BIO_C_GET_FD:
        if ((t = BIO_get_data(b)) == NULL)
            return -1;
        if (ptr != NULL)
            *(int *)ptr = (int)t->fd;
        return (long)t->fd;
    case BIO_CTRL_GET_CLOSE:
        return BIO_get_shutdown(b);
    case BIO_CTRL_SET_CLOSE:
        BIO_set_shutdown(b, (int)num);
        return 1;
    default:
        return 0;
    }
}

/* The BIO's state goes with it; the socket is the socket bufferevent's
 * to close. */
static int
tlssock_bio_destroy(BIO *b)
{
    free(BIO_get_data(b));
    BIO_set_data(b, NULL);
    BIO_set_init(b, 0);
    return 1;
}

static struct tlssock *tlssock_of(SSL *ssl);

/* Bytes reached a filter's input. When the filter is reading for
 * tlssock_read_cb and another SSL_read could only want more (the socket
 * was found empty, OpenSSL holds no record nor any part of one), a read
 * high-water mark of what the input holds ends the filter's read loop. */
static void
tlssock_input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
                 void *arg)
{
    struct tlssock *t = tlssock_reading;

    (void)arg;
    if (t == NULL || info->n_added == 0 ||
        bufferevent_get_input(t->filter) != buf || t->readable ||
        t->filter->wm_read.high != 0 || SSL_has_pending(t->ssl))
        return;
    t->filter->wm_read.high = evbuffer_get_length(buf);
    t->read_ended = true;
}

/* Runs the filter's read callback readcb for t, ending its read loop
 * when the socket is empty (tlssock_input_cb). */
static void
tlssock_filter_read(struct tlssock *t, bufferevent_data_cb readcb)
{
    tlssock_reading = t;
    readcb(t->tcp, t->filter);
    tlssock_reading = NULL;
    if (t->read_ended) {
        t->read_ended = false;
        t->filter->wm_read.high = 0;
    }
}

/* The socket under a filter is readable: the filter reads it, through
 * the BIO, in its read callback; an end the reads met goes to the filter
 * after the bytes before it. The event's argument stays the socket
 * bufferevent, as libevent's finalizer of the event expects. */
static void
tlssock_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bufferevent *tcp = arg;
    bufferevent_data_cb readcb = NULL;
    void *cbarg = NULL;
    struct tlssock *t;

    /* The filter gives its socket bufferevent itself as the callbacks'
     * argument; freed, the socket bufferevent has none. */
    bufferevent_getcb(tcp, &readcb, NULL, NULL, &cbarg);
    if (cbarg == NULL || bufferevent_get_underlying(cbarg) != tcp ||
        (t = tlssock_of(bufferevent_openssl_get_ssl(cbarg))) == NULL)
        return;
    bufferevent_incref(tcp);
    if (what & EV_TIMEOUT) {
        /* The socket bufferevent has no read timeout of its own (the
         * filter times its reads): reported as libevent would. */
        bufferevent_trigger_event(tcp, BEV_EVENT_READING | BEV_EVENT_TIMEOUT,
                                  BEV_TRIG_DEFER_CALLBACKS);
        bufferevent_decref(tcp);
        return;
    }
    t->readable = true;
    t->reads_left = TLSSOCK_READS;
    /* Called here rather than through a deferred callback of the socket
     * bufferevent: the filter defers its own callbacks, and the read is
     * only the filter's. */
    if (t->end == 0 && readcb != NULL)
        tlssock_filter_read(t, readcb);
    if (t->end != 0 && !t->end_reported) {
        t->end_reported = true;
        bufferevent_disable(tcp, EV_READ);
        EVUTIL_SET_SOCKET_ERROR(t->end_errno);
        bufferevent_trigger_event(tcp, BEV_EVENT_READING | t->end,
                                  BEV_TRIG_DEFER_CALLBACKS);
    }
    bufferevent_decref(tcp);
}

/* The BIO method, made once. */
static BIO_METHOD *
tlssock_bio_method(void)
{
    if (tlssock_method != NULL)
        return tlssock_method;
    tlssock_type = BIO_get_new_index();
    if (tlssock_type < 0)
        return NULL;
    tlssock_type |= BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR;
    tlssock_method = BIO_meth_new(tlssock_type, "hconnd socket");
    if (tlssock_method == NULL ||
        BIO_meth_set_read(tlssock_method, tlssock_bio_read) != 1 ||
        BIO_meth_set_write(tlssock_method, tlssock_bio_write) != 1 ||
        BIO_meth_set_ctrl(tlssock_method, tlssock_bio_ctrl) != 1 ||
        BIO_meth_set_destroy(tlssock_method, tlssock_bio_destroy) != 1) {
        BIO_meth_free(tlssock_method);
        tlssock_method = NULL;
    }
    return tlssock_method;
}

int
tlssock_attach(struct bufferevent *filter, SSL *ssl)
{
    struct bufferevent *tcp = bufferevent_get_underlying(filter);
    BIO_METHOD *method = tlssock_bio_method();
    struct tlssock *t;
    BIO *bio;

    if (tcp == NULL || method == NULL || bufferevent_getfd(tcp) < 0)
        return -1;
    if ((t = calloc(1, sizeof *t)) == NULL)
        return -1;
    if ((bio = BIO_new(method)) == NULL) {
        free(t);
        return -1;
    }
    t->tcp = tcp;
    t->filter = filter;
    t->ssl = ssl;
    t->fd = bufferevent_getfd(tcp);
    /* Nothing to read before the ClientHello is out. */
    t->readable = false;
    BIO_set_data(bio, t);
    BIO_set_init(bio, 1);
    if (evbuffer_add_cb(bufferevent_get_input(filter), tlssock_input_cb,
                        NULL) == NULL ||
        sockread_take_read_event(tcp, tlssock_read_cb, tcp) < 0) {
        BIO_free(bio);
        return -1;
    }
    /* Frees the filter's BIO over the socket bufferevent. */
    SSL_set_bio(ssl, bio, bio);
    SSL_set_read_ahead(ssl, 1);
    return 0;
}

/* ssl's state, when it reads through tlssock_attach. */
static struct tlssock *
tlssock_of(SSL *ssl)
{
    BIO *bio = ssl != NULL ? SSL_get_rbio(ssl) : NULL;

    if (bio == NULL || tlssock_method == NULL ||
        BIO_method_type(bio) != tlssock_type)
        return NULL;
    return BIO_get_data(bio);
}

bool
tlssock_attached(SSL *ssl)
{
    return tlssock_of(ssl) != NULL;
}

void
tlssock_woke(SSL *ssl)
{
    struct tlssock *t = tlssock_of(ssl);

    if (t != NULL) {
        t->readable = true;
        t->reads_left = TLSSOCK_READS;
    }
}

bool
tlssock_ended(SSL *ssl)
{
    struct tlssock *t = tlssock_of(ssl);

    return t != NULL && (t->end != 0 || t->write_failed);
}
