/*
 * upstream.c — resolving and connecting one origin connection.
 *
 * Resolution goes through evdns (the /etc/hosts file and resolv.conf), so
 * nothing blocks the loop. Each resolved address is tried in turn; the
 * connect timer covers the whole sequence, DNS included, as curl's
 * --connect-timeout does.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include "hconn_error.h"
#include "log.h"
#include "tls.h"
#include "upstream.h"

static unsigned long upstream_next_id = 1;

static void upstream_try_next(struct upstream *up, int last_errno);

struct upstream *
upstream_new(struct event_base *base, const char *host, uint16_t port)
{
    struct upstream *up = calloc(1, sizeof *up);

    if (up == NULL)
        return NULL;
    up->id = upstream_next_id++;
    up->base = base;
    up->port = port;
    snprintf(up->host, sizeof up->host, "%s", host);
    return up;
}

/* Delivers the outcome; on failure the bev is gone so the owner only has
 * to free the upstream. */
static void
upstream_finish(struct upstream *up, int error, const char *message)
{
    if (up->connect_timer != NULL)
        event_del(up->connect_timer);
    if (error != 0 && up->bev != NULL) {
        bufferevent_free(up->bev);
        up->bev = NULL;
    }
    up->cb(up, error, message, up->cb_arg);
}

/* Runs a failure recorded in fail_event from the loop, so that the owner
 * never sees a callback while it is still inside upstream_connect. */
static void
upstream_fail_cb(evutil_socket_t fd, short what, void *arg)
{
    struct upstream *up = arg;

    upstream_finish(up, up->fail_error, up->fail_message);
}

static void
upstream_fail_later(struct upstream *up, int error, const char *message)
{
    up->fail_error = error;
    snprintf(up->fail_message, sizeof up->fail_message, "%s", message);
    if (up->fail_event == NULL)
        up->fail_event = evtimer_new(up->base, upstream_fail_cb, up);
    if (up->fail_event == NULL) {
        log_error("upstream %lu: out of memory", up->id);
        abort();
    }
    event_active(up->fail_event, EV_TIMEOUT, 0);
}

static void
upstream_connect_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct upstream *up = arg;
    char message[512];

    if (up->dns_req != NULL) {
        struct evdns_getaddrinfo_request *req = up->dns_req;

        /* The cancel runs upstream_resolved_cb with EVUTIL_EAI_CANCEL,
         * which must not report anything: clear dns_req first. */
        up->dns_req = NULL;
        evdns_getaddrinfo_cancel(req);
        snprintf(message, sizeof message, "resolving %s timed out", up->host);
    } else {
        snprintf(message, sizeof message, "connect to %s:%u (%s) timed out",
                 up->host, up->port, up->peer);
    }
    upstream_finish(up, HCONN_ETIMEOUT, message);
}

static void
upstream_tls_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct upstream *up = arg;
    char message[512];
    int code;

    if (what & BEV_EVENT_CONNECTED) {
        up->connected = true;
        up->tls_resumed = tls_resumed(bufferevent_openssl_get_ssl(bev));
        log_debug("upstream %lu: TLS with %s:%u (%s) up%s", up->id, up->host,
                  up->port, up->peer,
                  up->tls_resumed ? ", session resumed" : "");
        upstream_finish(up, 0, NULL);
        return;
    }
    /* A TLS failure is the server's answer, not an unreachable address:
     * no other address is tried. */
    code = tls_handshake_error(bufferevent_openssl_get_ssl(bev),
                               bufferevent_get_openssl_error(bev), up->peer,
                               message, sizeof message);
    upstream_finish(up, code, message);
}

/* Puts a TLS filter over the connected socket; the handshake starts at
 * once and ends in upstream_tls_event_cb. */
static void
upstream_start_tls(struct upstream *up)
{
    struct bufferevent *filter = bufferevent_openssl_filter_new(
        up->base, up->bev, up->ssl, BUFFEREVENT_SSL_CONNECTING,
        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);

    if (filter == NULL) {
        upstream_fail_later(up, HCONN_ENO_MEMORY,
                            "cannot set up TLS on the connection");
        return;
    }
    up->ssl = NULL; /* the filter owns it now */
    up->bev = filter;
    up->tls = true;
    /* Framing (Content-Length, chunked) already tells a complete body from
     * a cut one, and many servers close without close_notify. */
    bufferevent_openssl_set_allow_dirty_shutdown(filter, 1);
    bufferevent_setcb(filter, NULL, NULL, upstream_tls_event_cb, up);
    bufferevent_enable(filter, EV_READ | EV_WRITE);
}

static void
upstream_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct upstream *up = arg;
    int fd, one = 1;

    if (what & BEV_EVENT_CONNECTED) {
        fd = bufferevent_getfd(bev);
        /* Request heads and bodies go out in separate writes; without
         * NODELAY the second waits for the first's ACK. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        log_debug("upstream %lu: connected to %s:%u (%s)", up->id, up->host,
                  up->port, up->peer);
        if (up->ssl != NULL) {
            upstream_start_tls(up);
            return;
        }
        up->connected = true;
        upstream_finish(up, 0, NULL);
        return;
    }
    /* Any other event before CONNECTED is a failed connect. */
    bufferevent_free(up->bev);
    up->bev = NULL;
    upstream_try_next(up, EVUTIL_SOCKET_ERROR());
}

/* Starts a connect to the next resolved address, or reports the last
 * failure once none is left. */
static void
upstream_try_next(struct upstream *up, int last_errno)
{
    char message[512];

    while (up->next_addr != NULL) {
        struct evutil_addrinfo *ai = up->next_addr;
        char addr[INET6_ADDRSTRLEN] = "?";
        const void *raw;

        up->next_addr = ai->ai_next;
        raw =
            ai->ai_family == AF_INET6
                ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
                : (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
        evutil_inet_ntop(ai->ai_family, raw, addr, sizeof addr);
        snprintf(up->peer, sizeof up->peer,
                 ai->ai_family == AF_INET6 ? "[%s]:%u" : "%s:%u", addr,
                 up->port);

        up->bev = bufferevent_socket_new(
            up->base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        if (up->bev == NULL) {
            upstream_fail_later(up, HCONN_ENO_MEMORY,
                                "cannot allocate a connection");
            return;
        }
        bufferevent_setcb(up->bev, NULL, NULL, upstream_event_cb, up);
        if (bufferevent_socket_connect(up->bev, ai->ai_addr,
                                       (int)ai->ai_addrlen) == 0)
            return;
        last_errno = EVUTIL_SOCKET_ERROR();
        bufferevent_free(up->bev);
        up->bev = NULL;
    }
    snprintf(message, sizeof message, "connect to %s:%u (%s) failed: %s",
             up->host, up->port, up->peer, strerror(last_errno));
    upstream_fail_later(up, HCONN_ECONNECT_FAILED, message);
}

static void
upstream_resolved_cb(int result, struct evutil_addrinfo *res, void *arg)
{
    struct upstream *up = arg;
    char message[512];

    /* Cancelled by upstream_free or the timeout: up may be gone. */
    if (result == EVUTIL_EAI_CANCEL)
        return;
    up->dns_req = NULL;
    if (result != 0) {
        snprintf(message, sizeof message, "cannot resolve \"%s\": %s", up->host,
                 evutil_gai_strerror(result));
        upstream_fail_later(up, HCONN_EDNS_FAILED, message);
        return;
    }
    up->addrs = res;
    up->next_addr = res;
    upstream_try_next(up, ECONNREFUSED);
}

void
upstream_connect(struct upstream *up, struct evdns_base *dns, double timeout,
                 struct tls *tls, const struct wire_tls *options,
                 const char *origin_key, upstream_connect_cb cb, void *arg)
{
    struct evutil_addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_protocol = IPPROTO_TCP,
        .ai_flags = EVUTIL_AI_ADDRCONFIG,
    };
    struct timeval tv = {
        .tv_sec = (time_t)timeout,
        .tv_usec = (suseconds_t)((timeout - (double)(time_t)timeout) * 1e6),
    };
    char port[8];

    up->cb = cb;
    up->cb_arg = arg;
    up->connect_timer = evtimer_new(up->base, upstream_connect_timeout_cb, up);
    if (up->connect_timer == NULL) {
        upstream_fail_later(up, HCONN_ENO_MEMORY, "cannot allocate a timer");
        return;
    }
    evtimer_add(up->connect_timer, &tv);
    if (tls != NULL) {
        char message[512];
        int code;

        /* Settings that cannot work fail before any packet is sent. */
        up->ssl = tls_connection_new(tls, options, up->host, origin_key, &code,
                                     message, sizeof message);
        if (up->ssl == NULL) {
            upstream_fail_later(up, code, message);
            return;
        }
    }
    snprintf(port, sizeof port, "%u", up->port);
    /* A numeric host or one from /etc/hosts resolves at once: the
     * callback runs inside this call and NULL comes back. A cancelled
     * request's callback may run after upstream_free, so it must not
     * touch up (see upstream_resolved_cb). */
    up->dns_req = evdns_getaddrinfo(dns, up->host, port, &hints,
                                    upstream_resolved_cb, up);
}

bool
upstream_is_reusable(struct upstream *up)
{
    char byte;
    ssize_t n;

    if (up->bev == NULL || !up->connected)
        return false;
    if (evbuffer_get_length(bufferevent_get_input(up->bev)) != 0)
        return false;
    /* The server may have closed (or sent stray bytes) since the loop last
     * looked; the kernel knows already. */
    n = recv(bufferevent_getfd(up->bev), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void
upstream_free(struct upstream *up)
{
    if (up == NULL)
        return;
    if (up->dns_req != NULL) {
        struct evdns_getaddrinfo_request *req = up->dns_req;

        up->dns_req = NULL;
        evdns_getaddrinfo_cancel(req);
    }
    if (up->bev != NULL && up->tls && up->connected && up->clean) {
        /* OpenSSL voids the session of a connection freed without a
         * shutdown, and that session object is the one cached for the
         * origin: after a clean end, say the connection was shut down. */
        SSL_set_shutdown(bufferevent_openssl_get_ssl(up->bev),
                         SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    }
    if (up->bev != NULL)
        bufferevent_free(up->bev);
    if (up->ssl != NULL)
        SSL_free(up->ssl);
    if (up->addrs != NULL)
        evutil_freeaddrinfo(up->addrs);
    if (up->connect_timer != NULL)
        event_free(up->connect_timer);
    if (up->fail_event != NULL)
        event_free(up->fail_event);
    free(up);
}
