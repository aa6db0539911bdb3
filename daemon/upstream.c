/*
 * upstream.c — one origin connection: from a name to a ready connection,
 * through a tunnel and TLS when asked; and parking it while idle.
 *
 * The name goes to the shared resolver (resolve.c) and its addresses to
 * the Happy Eyeballs race (connect.c), which hands back the winning
 * socket; the connect timer covers the whole sequence, DNS included, as
 * curl's --connect-timeout does.
 *
 * A tunnel adds a step between TCP and TLS: CONNECT goes to the proxy and
 * its answer is parsed with the same strict response codec as any origin
 * response. Only a 2xx opens the tunnel; anything else fails the connect
 * with the proxy's status, reason and headers, and the connection is
 * closed, so nothing meant for the origin ever reaches the proxy.
 */
#include <errno.h>
#include <stddef.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/util.h>

#include "deadline.h"
#include "hconn_error.h"
#include "http1.h"
#include "log.h"
#include "memory.h"
#include "resolve.h"
#include "sockread.h"
#include "timeval.h"
#include "tls.h"
#include "tlssock.h"
#include "upstream.h"
#include "wire.h"

/* One connection, from a name to a ready socket. */
struct upstream {
    unsigned long id;        /* for logs */
    struct bufferevent *bev; /* NULL until a connect is under way */
    int fd; /* bev's socket, once connected: bufferevent_getfd takes a
               lock and an indirect call, per request */
    struct event_base *base;
    struct resolve_waiter resolving; /* the name's lookup, while pending */
    struct connect_race *race;       /* racing the addresses */
    struct event *connect_timer;     /* bounds DNS + every connect */
    struct event *fail_event;        /* delivers a failure off-stack */
    int fail_error;                  /* what fail_event delivers */
    char fail_message[256];
    upstream_connect_cb cb;
    void *cb_arg;
    char host[256]; /* what we resolve */
    uint16_t port;
    char peer[64]; /* "addr:port" being tried, for logs */
    /* Refuses addresses before any connect (NULL: any will do); arg must
     * outlive the connect. */
    upstream_addr_check_cb addr_check;
    const void *addr_check_arg;
    double attempt_delay; /* Happy Eyeballs' connection attempt delay */
    bool has_source_addr; /* bind to source_addr before connecting */
    struct sockaddr_storage source_addr;
    uint16_t source_port;     /* and to this local port (0: any) */
    bool connected;           /* ready: TCP up, and TLS done if any */
    bool tls;                 /* bev is a TLS filter over the TCP one */
    bool tls_resumed;         /* the handshake resumed a cached session */
    bool clean;               /* closing after a clean end: keep the session */
    const char *connect_head; /* a tunnel: CONNECT to send first (borrowed) */
    size_t connect_head_len;
    const char *tls_host;        /* name TLS verifies: the origin behind a
                                    tunnel (borrowed); NULL: host */
    char tunnel_target[272];     /* "origin:port" of a tunnel, for logs */
    struct http1_parser *tunnel; /* parsing the proxy's answer */
    /* The tunnel's CONNECT answer, once it opened; owned */
    struct upstream_answer *proxy_answer;
    /* A refused tunnel's answer, for the failure's error reply; owned
     * until the pool hands it to the waiter */
    struct upstream_answer *fail_answer;
    struct ssl_st *ssl;       /* set up, not yet handed to the filter */
    struct event *park_event; /* upstream_park's watch on the socket */
    void (*park_cb)(struct upstream *up, short what);
    /* Parked and not yet woken or unparked. (Not event_pending: a watch
     * that fired is no longer pending for EV_READ while its callback
     * still waits to run.) */
    bool parked;
    /* Parked with the bufferevent still reading, its callbacks ours (a
     * plain connection: see upstream_park_reading). */
    bool park_reading;
    /* Parked with only the socket bufferevent's reading off, the TLS
     * filter's left on (upstream_park_stop_reading). */
    bool park_socket_only;
    /* Parked with OpenSSL's buffers still held: they go after
     * UPSTREAM_BUFFER_HOLD, then the watch runs park_left longer. */
    bool park_holds_buffers;
    double park_left;
    /* The read timeout (upstream_read_timeout): seconds,
     * 0 for none, and when it falls due. */
    double read_timeout;
    struct deadline read_deadline;
    /* What the bufferevent's own timeouts are: its write timeout
     * in seconds (0: none), and whether it has a read timeout (only
     * when the deadline could not be had). */
    double write_timeout;
    bool libevent_reads;
    /* ALPN: the offer (wire format, borrowed) and the server's choice */
    const unsigned char *alpn_offer;
    size_t alpn_offer_len;
    char alpn[32];
    /* What a codec keeps for the connection's whole life (an HTTP/2
     * session), freed with it */
    void *codec_state;
    void (*codec_state_free)(void *state);
    max_align_t owner[]; /* upstream_owner's space */
};

static unsigned long upstream_next_id = 1;

/* A connection's read timeout fell due: as libevent's own read
 * timeout would, reading stops and the bufferevent's event callback (the
 * codec's, or the park's) hears BEV_EVENT_READING | BEV_EVENT_TIMEOUT.
 * Reading stopped meanwhile (a paused stream, a lent socket, the end of
 * input) stops the timeout too; it starts again with the reading. */
static void
upstream_read_due(void *arg)
{
    struct upstream *up = arg;

    if (up->bev == NULL || !(bufferevent_get_enabled(up->bev) & EV_READ))
        return;
    bufferevent_disable(up->bev, EV_READ);
    bufferevent_trigger_event(up->bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT,
                              0);
}

struct upstream *
upstream_new(struct event_base *base, const char *host, uint16_t port,
             size_t owner_size)
{
    struct upstream *up = calloc(1, sizeof *up + owner_size);

    if (up == NULL)
        return NULL;
    up->id = upstream_next_id++;
    up->fd = -1;
    up->base = base;
    up->port = port;
    snprintf(up->host, sizeof up->host, "%s", host);
    deadline_init(&up->read_deadline, base, upstream_read_due, up);
    return up;
}

void
upstream_set_tunnel(struct upstream *up, const char *origin, uint16_t port,
                    const char *connect_head, size_t connect_head_len)
{
    up->tls_host = origin;
    snprintf(up->tunnel_target, sizeof up->tunnel_target,
             strchr(origin, ':') ? "[%s]:%u" : "%s:%u", origin, port);
    up->connect_head = connect_head;
    up->connect_head_len = connect_head_len;
}

/* "proxy " when host is a proxy, for messages. */
static const char *
upstream_role(const struct upstream *up)
{
    return up->connect_head != NULL ? "proxy " : "";
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
    /* Cut to fit, on purpose: the message names the peer first. */
    snprintf(up->fail_message, sizeof up->fail_message, "%.*s",
             (int)sizeof up->fail_message - 1, message);
    if (up->fail_event == NULL)
        up->fail_event = evtimer_new(up->base, upstream_fail_cb, up);
    if (up->fail_event == NULL) {
        log_error("upstream %lu: out of memory", up->id);
        abort();
    }
    event_active(up->fail_event, EV_TIMEOUT, 0);
}

/* "host:port (addr)" as the user typed the host, with the address the
 * connection reached; a tunnel: "origin:port via proxy host:port (addr)". */
static void
upstream_describe(const struct upstream *up, char *buf, size_t len)
{
    const char *v6 = strchr(up->host, ':');
    char typed[300];

    snprintf(typed, sizeof typed, "%s%s%s:%u", v6 ? "[" : "", up->host,
             v6 ? "]" : "", up->port);
    /* An address typed as such is named once. */
    if (up->connect_head != NULL)
        snprintf(buf, len, "%s via proxy %s%s%s%s", up->tunnel_target, typed,
                 strcmp(typed, up->peer) != 0 ? " (" : "",
                 strcmp(typed, up->peer) != 0 ? up->peer : "",
                 strcmp(typed, up->peer) != 0 ? ")" : "");
    else
        snprintf(buf, len, "%s%s%s%s", typed,
                 strcmp(typed, up->peer) != 0 ? " (" : "",
                 strcmp(typed, up->peer) != 0 ? up->peer : "",
                 strcmp(typed, up->peer) != 0 ? ")" : "");
}

static void
upstream_connect_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct upstream *up = arg;
    const char *v6 = strchr(up->host, ':');
    char message[1024], tried[512];

    resolve_cancel(&up->resolving); /* a follow-up answer included */
    if (up->race == NULL && up->bev == NULL) {
        snprintf(message, sizeof message,
                 "resolving %s\"%s\" timed out (no answer from the "
                 "nameserver)",
                 upstream_role(up), up->host);
    } else if (up->race != NULL) {
        connect_race_describe(up->race, tried, sizeof tried);
        connect_race_free(up->race);
        up->race = NULL;
        snprintf(message, sizeof message,
                 "connect to %s%s%s%s:%u timed out (tried %s)",
                 upstream_role(up), v6 ? "[" : "", up->host, v6 ? "]" : "",
                 up->port, tried[0] != '\0' ? tried : "no address");
    } else if (up->tunnel != NULL) {
        snprintf(message, sizeof message,
                 "proxy %s:%u (%s) did not answer CONNECT %s in time", up->host,
                 up->port, up->peer, up->tunnel_target);
    } else {
        upstream_describe(up, tried, sizeof tried);
        snprintf(message, sizeof message, "%s with %.700s timed out",
                 up->ssl != NULL || up->tls ? "TLS handshake" : "connect",
                 tried);
    }
    upstream_finish(up, HCONN_ETIMEOUT, message);
}

/* Keeps the protocol the server chose by ALPN, "" for none. */
static void
upstream_note_alpn(struct upstream *up, SSL *ssl)
{
    const unsigned char *proto = NULL;
    unsigned int len = 0;

    SSL_get0_alpn_selected(ssl, &proto, &len);
    if (proto == NULL || len >= sizeof up->alpn)
        len = 0;
    if (len > 0)
        memcpy(up->alpn, proto, len);
    up->alpn[len] = '\0';
}

static void
upstream_tls_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct upstream *up = arg;
    char message[1024], who[700];
    int code;

    if (what & BEV_EVENT_CONNECTED) {
        up->connected = true;
        up->tls_resumed = tls_resumed(bufferevent_openssl_get_ssl(bev));
        upstream_note_alpn(up, bufferevent_openssl_get_ssl(bev));
        upstream_describe(up, who, sizeof who);
        log_debug("upstream %lu: TLS with %s up%s", up->id, who,
                  up->tls_resumed ? ", session resumed" : "");
        upstream_finish(up, 0, NULL);
        return;
    }
    /* A TLS failure is the server's answer, not an unreachable address:
     * no other address is tried. */
    upstream_describe(up, who, sizeof who);
    code = tls_handshake_error(bufferevent_openssl_get_ssl(bev),
                               bufferevent_get_openssl_error(bev), who, message,
                               sizeof message);
    upstream_finish(up, code, message);
}

/* Under TLS, OpenSSL's records land in the socket bufferevent's output,
 * and libevent would arm its write event for them (epoll_ctl), write
 * them a loop turn later and disarm it (epoll_ctl again): two system
 * calls and a turn for every request. They are written at once instead;
 * the write event is on only while bytes remain for the socket. */
static void
upstream_tls_out_cb(struct evbuffer *out, const struct evbuffer_cb_info *info,
                    void *arg)
{
    struct bufferevent *tcp = arg;

    if (evbuffer_get_length(out) == 0) {
        /* Drained (by libevent's write event, or just below). */
        bufferevent_disable(tcp, EV_WRITE);
        return;
    }
    /* While the write event is on, libevent writes, in order. */
    if (info->n_added == 0 || (bufferevent_get_enabled(tcp) & EV_WRITE))
        return;
    /* An error leaves the bytes to libevent, whose write reports it. The
     * bufferevent freezes its output's front so that only it drains; this
     * drains exactly as it would, to the same socket. */
    evbuffer_unfreeze(out, 1);
    evbuffer_write(out, bufferevent_getfd(tcp));
    evbuffer_freeze(out, 1);
    if (evbuffer_get_length(out) > 0)
        bufferevent_enable(tcp, EV_WRITE);
}

/* Puts a TLS filter over the connected socket; the handshake starts at
 * once and ends in upstream_tls_event_cb. */
static void
upstream_start_tls(struct upstream *up)
{
    struct bufferevent *tcp = up->bev;
    SSL *ssl = up->ssl;
    struct bufferevent *filter = bufferevent_openssl_filter_new(
        up->base, tcp, ssl, BUFFEREVENT_SSL_CONNECTING,
        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);

    if (filter == NULL) {
        up->ssl = NULL; /* freed with the filter that was not made */
        upstream_fail_later(up, HCONN_ENO_MEMORY,
                            "cannot set up TLS on the connection");
        return;
    }
    up->ssl = NULL; /* the filter owns it now */
    up->bev = filter;
    up->tls = true;
    /* OpenSSL reads and writes the socket itself (tlssock.c): the socket
     * bufferevent only raises events, its write event only when a write
     * would block. Not in a tunnel whose socket bufferevent still holds
     * bytes: past the proxy's answer, or of CONNECT not yet sent. */
    if (evbuffer_get_length(bufferevent_get_input(tcp)) == 0 &&
        evbuffer_get_length(bufferevent_get_output(tcp)) == 0) {
        if (tlssock_attach(filter, ssl) < 0) {
            upstream_fail_later(up, HCONN_ENO_MEMORY,
                                "cannot set up TLS on the connection");
            return;
        }
        bufferevent_disable(tcp, EV_WRITE);
    } else if (evbuffer_add_cb(bufferevent_get_output(tcp), upstream_tls_out_cb,
                               tcp) != NULL &&
               evbuffer_get_length(bufferevent_get_output(tcp)) == 0) {
        /* Without it the write event does as before: only slower. */
        bufferevent_disable(tcp, EV_WRITE);
    }
    /* Framing (Content-Length, chunked) already tells a complete body from
     * a cut one, and many servers close without close_notify. */
    bufferevent_openssl_set_allow_dirty_shutdown(filter, 1);
    bufferevent_setcb(filter, NULL, NULL, upstream_tls_event_cb, up);
    bufferevent_enable(filter, EV_READ | EV_WRITE);
}

/* The tunnel is open (or the plain connection is up): go on to TLS, or
 * hand the connection over. */
static void
upstream_ready(struct upstream *up)
{
    if (up->ssl != NULL) {
        upstream_start_tls(up);
        return;
    }
    up->connected = true;
    upstream_finish(up, 0, NULL);
}

/* Copies an answer's status, reason and fields into one allocation, as
 * they point into the parser's input; NULL when out of memory. */
static struct upstream_answer *
upstream_answer_copy(const struct http1_event *ev)
{
    size_t size = sizeof(struct upstream_answer) +
                  ev->nheaders * sizeof(struct http1_header) + ev->reason_len;
    struct upstream_answer *a;
    char *p;

    for (size_t i = 0; i < ev->nheaders; i++)
        size += ev->headers[i].name_len + ev->headers[i].value_len;
    a = malloc(size);
    if (a == NULL)
        return NULL;
    a->status = ev->status;
    a->nfields = ev->nheaders;
    a->fields = (struct http1_header *)(a + 1);
    p = (char *)(a->fields + ev->nheaders);
    memcpy(p, ev->reason, ev->reason_len);
    a->reason = p;
    a->reason_len = ev->reason_len;
    p += ev->reason_len;
    for (size_t i = 0; i < ev->nheaders; i++) {
        const struct http1_header *h = &ev->headers[i];

        memcpy(p, h->name, h->name_len);
        memcpy(p + h->name_len, h->value, h->value_len);
        a->fields[i] = (struct http1_header){p, h->name_len, p + h->name_len,
                                             h->value_len};
        p += h->name_len + h->value_len;
    }
    return a;
}

/* Acts on the proxy's final answer to CONNECT, whose head is the first
 * head_len bytes of the input. */
static void
upstream_tunnel_answered(struct upstream *up, const struct http1_event *ev,
                         size_t head_len)
{
    char message[1024];
    struct upstream_answer *reply = upstream_answer_copy(ev);

    snprintf(message, sizeof message,
             "proxy %s:%u (%s) refused CONNECT %s: %d %.*s", up->host, up->port,
             up->peer, up->tunnel_target, ev->status,
             (int)(ev->reason_len < 128 ? ev->reason_len : 128), ev->reason);
    /* ev points into the parser and the input: both go now. Bytes after
     * the head already belong to the tunnel. */
    free(up->tunnel);
    up->tunnel = NULL;
    evbuffer_drain(bufferevent_get_input(up->bev), head_len);
    if (reply == NULL) {
        upstream_finish(up, HCONN_ENO_MEMORY,
                        "cannot record the proxy's answer");
        return;
    }
    if (ev->status / 100 == 2) {
        log_debug("upstream %lu: tunnel via %s:%u to %s open (%d)", up->id,
                  up->host, up->port, up->tunnel_target, ev->status);
        up->proxy_answer = reply;
        upstream_ready(up);
        return;
    }
    up->fail_answer = reply;
    upstream_finish(up, HCONN_ETUNNEL_FAILED, message);
}

/* Runs the parser over the proxy's answer so far; eof: the proxy closed. */
static void
upstream_tunnel_parse(struct upstream *up, bool eof)
{
    struct evbuffer *in = bufferevent_get_input(up->bev);
    char message[1024];

    for (;;) {
        size_t len = evbuffer_get_length(in), used = 0;
        const char *buf = (const char *)evbuffer_pullup(in, -1);
        struct http1_event ev =
            http1_parser_next(up->tunnel, buf, len, eof, &used);

        switch (ev.kind) {
        case HTTP1_NEED_DATA:
            evbuffer_drain(in, used);
            return;
        case HTTP1_INTERIM:
            evbuffer_drain(in, used);
            continue;
        case HTTP1_HEAD:
            upstream_tunnel_answered(up, &ev, used);
            return;
        default:
            snprintf(message, sizeof message,
                     "proxy %s:%u (%s) gave no valid answer to CONNECT %s: %s",
                     up->host, up->port, up->peer, up->tunnel_target,
                     ev.kind == HTTP1_ERROR ? up->tunnel->errmsg
                                            : "unexpected event");
            upstream_finish(up, HCONN_ETUNNEL_FAILED, message);
            return;
        }
    }
}

static void
upstream_tunnel_read_cb(struct bufferevent *bev, void *arg)
{
    upstream_tunnel_parse(arg, false);
}

static void
upstream_tunnel_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct upstream *up = arg;
    char message[1024];

    if (what & BEV_EVENT_EOF) {
        upstream_tunnel_parse(up, true);
        return;
    }
    snprintf(message, sizeof message,
             "connection to proxy %s:%u (%s) failed during CONNECT %s: %s",
             up->host, up->port, up->peer, up->tunnel_target,
             strerror(EVUTIL_SOCKET_ERROR()));
    upstream_finish(up, HCONN_ETUNNEL_FAILED, message);
}

/* Sends CONNECT and waits for the proxy's answer. */
static void
upstream_start_tunnel(struct upstream *up)
{
    up->tunnel = calloc(1, sizeof *up->tunnel);
    if (up->tunnel == NULL) {
        upstream_fail_later(up, HCONN_ENO_MEMORY, "cannot allocate a parser");
        return;
    }
    http1_parser_init(up->tunnel, false, false);
    bufferevent_setcb(up->bev, upstream_tunnel_read_cb, NULL,
                      upstream_tunnel_event_cb, up);
    bufferevent_enable(up->bev, EV_READ | EV_WRITE);
    bufferevent_write(up->bev, up->connect_head, up->connect_head_len);
}

/* The race is won: fd is connected to up->peer. Wraps it in a
 * bufferevent and goes on to the tunnel or TLS. */
static void
upstream_connected(struct upstream *up, int fd)
{
    char who[700];
    int one = 1;

    /* Request heads and bodies go out in separate writes; without
     * NODELAY the second waits for the first's ACK. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    up->bev = bufferevent_socket_new(
        up->base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (up->bev == NULL) {
        close(fd);
        upstream_fail_later(up, HCONN_ENO_MEMORY,
                            "cannot allocate a connection");
        return;
    }
    up->fd = fd;
    /* Every plain response byte, and a proxy's answer to CONNECT, is
     * read from this bufferevent: without libevent's FIONREAD ioctl per
     * read (sockread.c). Failing, it reads as libevent does. TLS reads
     * the socket itself (tlssock.c). */
    if (up->ssl == NULL || up->connect_head != NULL)
        sockread_bufferevent(up->bev);
    upstream_describe(up, who, sizeof who);
    log_debug("upstream %lu: connected to %s", up->id, who);
    if (up->connect_head != NULL)
        upstream_start_tunnel(up);
    else
        upstream_ready(up);
}

/* The race's outcome. */
static void
upstream_race_cb(int fd, const char *peer, int error, const char *message,
                 void *arg)
{
    struct upstream *up = arg;

    /* The rest of a name's answer no longer matters. */
    resolve_cancel(&up->resolving);
    connect_race_free(up->race);
    up->race = NULL;
    if (fd < 0) {
        upstream_finish(up, error, message);
        return;
    }
    snprintf(up->peer, sizeof up->peer, "%s", peer);
    upstream_connected(up, fd);
}

/* Races the name's addresses; takes over the reference to addrs. more:
 * the other family's addresses follow through upstream_resolved_cb. */
static void
upstream_race(struct upstream *up, struct resolve_addrs *addrs, bool more)
{
    struct connect_options o = {
        .host = up->host,
        .role = upstream_role(up),
        .port = up->port,
        .attempt_delay = up->attempt_delay,
        .check = up->addr_check,
        .check_arg = up->addr_check_arg,
        .has_source_addr = up->has_source_addr,
        .source_addr = up->source_addr,
        .source_port = up->source_port,
        .more_coming = more,
    };

    up->race = connect_race_start(up->base, addrs, &o, upstream_race_cb, up);
    resolve_addrs_unref(addrs);
    if (up->race == NULL) {
        resolve_cancel(&up->resolving);
        upstream_fail_later(up, HCONN_ENO_MEMORY,
                            "cannot start connecting: out of memory");
    }
}

/* The resolver's answer, from the loop. */
static void
upstream_resolved_cb(struct resolve_waiter *w, struct resolve_addrs *addrs,
                     int error, const char *message)
{
    struct upstream *up =
        (struct upstream *)((char *)w - offsetof(struct upstream, resolving));
    char buf[512];

    if (up->race != NULL) {
        /* The whole answer, after one family's (RFC 8305 §3). */
        connect_race_add(up->race, addrs, !w->more);
        resolve_addrs_unref(addrs);
        return;
    }
    if (addrs == NULL) {
        snprintf(buf, sizeof buf, "%s%s", up->connect_head ? "proxy: " : "",
                 message);
        upstream_finish(up, error, buf);
        return;
    }
    upstream_race(up, addrs, w->more);
}

void
upstream_connect(struct upstream *up, struct resolver *resolver, double timeout,
                 struct tls *tls, const struct wire_tls *options,
                 const char *origin_key, upstream_connect_cb cb, void *arg)
{
    struct timeval tv = timeval_of(timeout);
    struct resolve_addrs *addrs = NULL;
    char message[1024];
    int rc;

    up->cb = cb;
    up->cb_arg = arg;
    up->connect_timer = evtimer_new(up->base, upstream_connect_timeout_cb, up);
    if (up->connect_timer == NULL) {
        upstream_fail_later(up, HCONN_ENO_MEMORY, "cannot allocate a timer");
        return;
    }
    evtimer_add(up->connect_timer, &tv);
    if (tls != NULL) {
        int code;

        /* Settings that cannot work fail before any packet is sent. */
        up->ssl = tls_connection_new(
            tls, options, up->tls_host != NULL ? up->tls_host : up->host,
            origin_key, &code, message, sizeof message);
        if (up->ssl == NULL) {
            upstream_fail_later(up, code, message);
            return;
        }
        if (up->alpn_offer_len > 0 &&
            SSL_set_alpn_protos(up->ssl, up->alpn_offer,
                                (unsigned)up->alpn_offer_len) != 0) {
            upstream_fail_later(up, HCONN_ENO_MEMORY,
                                "cannot set the ALPN offer");
            return;
        }
    }
    /* A literal, a hosts entry or a cached answer comes back at once;
     * anything else later, through upstream_resolved_cb. */
    up->resolving.cb = upstream_resolved_cb;
    rc = resolve_name(resolver, up->host, &up->resolving, &addrs, message,
                      sizeof message);
    if (rc == 0) {
        upstream_race(up, addrs, up->resolving.more);
    } else if (rc < 0) {
        char buf[1100];

        snprintf(buf, sizeof buf, "%s%s", up->connect_head ? "proxy: " : "",
                 message);
        upstream_fail_later(up, rc, buf);
    }
}

/* A parked TLS connection's buffers wait this long before they are freed
 * (seconds). OpenSSL frees its read and write buffers as they empty
 * (SSL_MODE_RELEASE_BUFFERS, tls.c; memory.c recycles them), so there is
 * mostly nothing left to free; but SSL_free_buffers walks OpenSSL's 32
 * write pipelines to find that out, 30 cache lines gone cold under load:
 * a connection leased again sooner, as under steady load, skips it. */
#define UPSTREAM_BUFFER_HOLD 0.5

/* Arms the park watch for timeout seconds. */
static int
upstream_park_arm(struct upstream *up, double timeout)
{
    struct timeval tv = timeval_of(timeout);

    return event_add(up->park_event, &tv);
}

static void
upstream_park_cb(evutil_socket_t fd, short what, void *arg)
{
    struct upstream *up = arg;

    /* Still idle after the hold: the buffers go now, and the heap is
     * trimmed soon after; the idle timeout runs on. */
    if (what == EV_TIMEOUT && up->park_holds_buffers) {
        up->park_holds_buffers = false;
        SSL_free_buffers(bufferevent_openssl_get_ssl(up->bev));
        memory_trim_soon(up->base);
        if (up->park_left > 0 && upstream_park_arm(up, up->park_left) == 0)
            return;
    }
    up->parked = false;
    up->park_cb(up, what);
}

/* A connection parked reading woke: bytes came (they are in its input,
 * where upstream_is_reusable sees them too). */
static void
upstream_parked_read_cb(struct bufferevent *bev, void *arg)
{
    struct upstream *up = arg;

    if (!up->parked || evbuffer_get_length(bufferevent_get_input(bev)) == 0)
        return;
    up->parked = false;
    up->park_cb(up, EV_READ);
}

/* A connection parked reading met its end, an error, or its timeout
 * (libevent stopped the reading or writing that met it). */
static void
upstream_parked_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct upstream *up = arg;

    if (!up->parked)
        return;
    up->parked = false;
    up->park_cb(up, (what & BEV_EVENT_TIMEOUT) ? EV_TIMEOUT : EV_READ);
}

/* The bufferevent whose write event waits for room in the socket: a TLS
 * filter's socket bufferevent (tlssock.c arms it when a write would
 * block), else the connection's own. */
static struct bufferevent *
upstream_socket_bev(struct upstream *up)
{
    struct bufferevent *tcp =
        up->tls ? bufferevent_get_underlying(up->bev) : NULL;

    return tcp != NULL ? tcp : up->bev;
}

/* A connection's read timeout runs seconds from now (0: none): the
 * deadline, or libevent's read timeout when there is no memory for the
 * deadline's timer. With writes, stalled writes get libevent's timeout
 * of the same length, which costs nothing while nothing waits to be
 * written; it is only set again when it changes.
 *
 * TLS connections too. libevent's OpenSSL filter restarts its read
 * timer at every record it reads, a re-insert in the loop's heap whose
 * sifting reads the events of other connections, gone cold at 256 of
 * them; the deadline goes off the same way (reading stops, the filter's
 * event callback hears BEV_EVENT_READING | BEV_EVENT_TIMEOUT) and each
 * read only stores when it falls due. And the filter arms its write timer
 * at every write and leaves it armed once its output is empty: a
 * response taking longer in all than the timeout, however steadily it
 * came, ended as a stalled request. The write timeout is its socket
 * bufferevent's instead, whose write event is armed only while a write
 * waits for room; the filter passes its timeout on as BEV_EVENT_WRITING |
 * BEV_EVENT_TIMEOUT. */
static void
upstream_set_timeouts(struct upstream *up, double seconds, bool writes)
{
    struct bufferevent *bev = up->bev, *sock = upstream_socket_bev(up);
    struct timeval tv = {0, 0};

    up->read_timeout = seconds;
    if (deadline_set(&up->read_deadline, seconds) == 0 && !up->libevent_reads &&
        (!writes || seconds == up->write_timeout))
        return; /* as they should be: the usual case, cheaply */
    if (seconds > 0)
        tv = timeval_of(seconds);
    if (!deadline_is_set(&up->read_deadline) && seconds > 0) {
        bufferevent_set_timeouts(bev, &tv, sock == bev ? &tv : NULL);
        if (sock != bev)
            bufferevent_set_timeouts(sock, NULL, &tv);
        up->libevent_reads = true;
        up->write_timeout = seconds;
        return;
    }
    if (sock == bev) {
        bufferevent_set_timeouts(bev, NULL, writes ? &tv : &bev->timeout_write);
    } else {
        if (up->libevent_reads)
            bufferevent_set_timeouts(bev, NULL, NULL);
        if (writes)
            bufferevent_set_timeouts(sock, NULL, &tv);
    }
    up->libevent_reads = false;
    if (writes)
        up->write_timeout = seconds;
}

void
upstream_read_timeout(struct upstream *up, double seconds)
{
    upstream_set_timeouts(up, seconds, true);
}

void
upstream_read_progress(struct upstream *up)
{
    /* A timer per connection stays armed; this only moves its due time
     * (deadline.c), where libevent re-armed its read event's timer at
     * every read. */
    if (up->read_timeout > 0)
        deadline_set(&up->read_deadline, up->read_timeout);
}

/*
 * Parks a plain connection whose bufferevent reads (as every one does when
 * its response ends): it goes on reading, into the parked callbacks, with
 * timeout as its read timeout, from now. A read buffer is only allocated
 * when bytes come, and then the connection is closed; leasing it again is
 * only taking the callbacks back (codec_open). Watching the socket with
 * an event of its own instead cost four event changes per request: the
 * watch on and off, the bufferevent's reading off and on. The timeout is
 * a deadline moved, not a timer re-armed (deadline.c).
 */
static void
upstream_park_reading(struct upstream *up, double timeout)
{
    up->park_reading = true;
    up->parked = true;
    bufferevent_setcb(up->bev, upstream_parked_read_cb, NULL,
                      upstream_parked_event_cb, up);
    upstream_set_timeouts(up, timeout, false);
}

/* A connection parked by its park watch has no read timeout, and no
 * write timeout where one could go off. A TLS connection's socket
 * bufferevent keeps its write timeout for the next request unless a
 * write still waits for room (the filter holds bytes): its write event
 * is armed only then. */
static void
upstream_park_timeouts(struct upstream *up)
{
    struct bufferevent *sock = upstream_socket_bev(up);

    if (sock == up->bev || up->libevent_reads)
        bufferevent_set_timeouts(up->bev, NULL, NULL);
    if (sock == up->bev ||
        evbuffer_get_length(bufferevent_get_output(up->bev)) != 0) {
        if (sock != up->bev)
            bufferevent_set_timeouts(sock, NULL, NULL);
        up->write_timeout = 0;
    }
    up->read_timeout = 0;
    up->libevent_reads = false;
    deadline_clear(&up->read_deadline);
}

/*
 * Stops a connection's reading for its park watch. A TLS filter whose
 * OpenSSL reads the socket itself (tlssock.c) keeps its reading on, and
 * only the socket bufferevent's read event, which is what calls the
 * filter to read, goes off. Enabling the filter's reading again, as
 * unparking did, makes it try an SSL_read at once, and that read can
 * only want more: bytes that came while parked woke the watch instead,
 * the BIO answers without a system call until the socket is reported
 * readable, and a connection with records left in OpenSSL is not leased
 * (upstream_is_reusable). It cost about 2.5k instructions per request,
 * and a read chain reserved in the filter's input until the response.
 */
static void
upstream_park_stop_reading(struct upstream *up)
{
    struct bufferevent *tcp = bufferevent_get_underlying(up->bev);

    up->park_socket_only =
        up->tls && tcp != NULL &&
        (bufferevent_get_enabled(up->bev) & EV_READ) &&
        tlssock_attached(bufferevent_openssl_get_ssl(up->bev));
    bufferevent_disable(up->park_socket_only ? tcp : up->bev, EV_READ);
}

int
upstream_park(struct upstream *up, double timeout,
              void (*cb)(struct upstream *up, short what))
{
    up->park_cb = cb;
    if (!up->tls && (bufferevent_get_enabled(up->bev) & EV_READ)) {
        upstream_park_reading(up, timeout);
        return 0;
    }
    /* Reading the bufferevent would keep a read buffer reserved on each
     * connection (for TLS, OpenSSL's 16 KiB record buffer and libevent's
     * 8 KiB chain): an idle one only needs to know the socket woke. So
     * would a plain one whose reading stopped (at the end of its input:
     * the watch sees that end). */
    if (up->park_event == NULL &&
        (up->park_event = event_new(up->base, bufferevent_getfd(up->bev),
                                    EV_READ, upstream_park_cb, up)) == NULL)
        return -1;
    /* The watch goes on before the bufferevent's read comes off, and
     * unparking does the reverse: the socket stays in epoll's set
     * throughout, instead of costing two epoll_ctl calls per request. */
    up->park_holds_buffers = up->tls && timeout > UPSTREAM_BUFFER_HOLD;
    up->park_left = timeout - UPSTREAM_BUFFER_HOLD;
    if (upstream_park_arm(up, up->park_holds_buffers ? UPSTREAM_BUFFER_HOLD
                                                     : timeout) < 0)
        return -1;
    up->park_reading = false;
    up->parked = true;
    bufferevent_setcb(up->bev, NULL, NULL, NULL, up);
    upstream_park_timeouts(up);
    upstream_park_stop_reading(up);
    if (up->tls && !up->park_holds_buffers)
        SSL_free_buffers(bufferevent_openssl_get_ssl(up->bev));
    return 0;
}

void
upstream_unpark(struct upstream *up)
{
    if (!up->parked)
        return;
    up->parked = false;
    if (up->park_reading)
        return; /* reading all along; codec_open takes the callbacks */
    up->park_holds_buffers = false;
    bufferevent_enable(
        up->park_socket_only ? bufferevent_get_underlying(up->bev) : up->bev,
        EV_READ);
    event_del(up->park_event);
}

/* Bytes upstream_settle_tls reads at most per read, as libevent 2.1's
 * evbuffer_read (EVBUFFER_MAX_READ). */
#define UPSTREAM_SETTLE_READ 4096

bool
upstream_settle_tls(struct upstream *up)
{
    struct bufferevent *tcp = bufferevent_get_underlying(up->bev);
    SSL *ssl = bufferevent_openssl_get_ssl(up->bev);
    struct evbuffer *raw;
    char byte;
    int n, rounds = 4;

    if (!up->tls || tcp == NULL || ssl == NULL)
        return false;
    if (tlssock_attached(ssl)) {
        /* OpenSSL reads the socket itself, as much as a readiness of the
         * filter's would (tlssock.c), and takes in every record it can;
         * only application data would show as a byte to peek at. */
        tlssock_woke(ssl);
        n = SSL_peek(ssl, &byte, 1);
        if (tlssock_ended(ssl) || n > 0 ||
            SSL_get_error(ssl, n) != SSL_ERROR_WANT_READ)
            return false;
        /* A partial record left over makes the connection unfit to
         * lease (upstream_is_reusable). */
        SSL_free_buffers(ssl);
        return !SSL_has_pending(ssl);
    }
    raw = bufferevent_get_input(tcp);
    /* As much as libevent's own reads would take, without their FIONREAD
     * ioctl each. */
    do
        n = (int)sockread_evbuffer(raw, bufferevent_getfd(tcp),
                                   UPSTREAM_SETTLE_READ);
    while (n > 0 && --rounds > 0);
    if (n == 0)
        return false; /* closed by the server */
    /* OpenSSL takes in every record it can; only application data would
     * show as a byte to peek at. A partial record left over makes the
     * connection unfit to lease (upstream_is_reusable). */
    n = SSL_peek(ssl, &byte, 1);
    if (n > 0 || SSL_get_error(ssl, n) != SSL_ERROR_WANT_READ)
        return false;
    SSL_free_buffers(ssl);
    return evbuffer_get_length(raw) == 0;
}

bool
upstream_is_reusable(struct upstream *up)
{
    char byte;
    ssize_t n;

    if (up->bev == NULL || !up->connected)
        return false;
    /* Parked reading, and the reading stopped: libevent stops it at the
     * end of input, an error or a timeout, whose callback (to the park's,
     * or by now the next owner's) may still be on its way. */
    if (up->park_reading && !(bufferevent_get_enabled(up->bev) & EV_READ))
        return false;
    if (evbuffer_get_length(bufferevent_get_input(up->bev)) != 0)
        return false;
    if (up->tls) {
        /* Records already off the socket, decrypted or not, are bytes
         * the server sent after its response as surely as unread ones. */
        struct bufferevent *tcp = bufferevent_get_underlying(up->bev);
        SSL *ssl = bufferevent_openssl_get_ssl(up->bev);

        /* SSL_has_pending: OpenSSL reads ahead from its socket, and
         * counts records read but not yet processed there. The socket
         * bufferevent's input only fills when OpenSSL does not read the
         * socket itself (tlssock.c): otherwise it is not looked at, one
         * cold structure fewer per lease. */
        if (SSL_has_pending(ssl) || tlssock_ended(ssl) ||
            (tcp != NULL && !tlssock_attached(ssl) &&
             evbuffer_get_length(bufferevent_get_input(tcp)) != 0))
            return false;
    }
    /* The server may have closed (or sent stray bytes) since the loop last
     * looked; the kernel knows already. */
    n = recv(up->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void
upstream_free(struct upstream *up)
{
    if (up == NULL)
        return;
    if (up->codec_state_free != NULL)
        up->codec_state_free(up->codec_state);
    resolve_cancel(&up->resolving);
    connect_race_free(up->race);
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
    if (up->connect_timer != NULL)
        event_free(up->connect_timer);
    if (up->fail_event != NULL)
        event_free(up->fail_event);
    if (up->park_event != NULL)
        event_free(up->park_event);
    deadline_free(&up->read_deadline);
    free(up->tunnel);
    free(up->proxy_answer);
    free(up->fail_answer);
    free(up);
}

unsigned long
upstream_id(const struct upstream *up)
{
    return up->id;
}

const char *
upstream_peer(const struct upstream *up)
{
    return up->peer;
}

struct bufferevent *
upstream_bev(const struct upstream *up)
{
    return up->bev;
}

int
upstream_fd(const struct upstream *up)
{
    return up->fd;
}

bool
upstream_is_tls(const struct upstream *up)
{
    return up->tls;
}

void *
upstream_owner(const struct upstream *up)
{
    return (void *)up->owner;
}

void
upstream_set_route(struct upstream *up, upstream_addr_check_cb check,
                   const void *arg, double attempt_delay,
                   const struct sockaddr_storage *source, uint16_t source_port)
{
    up->addr_check = check;
    up->addr_check_arg = arg;
    up->attempt_delay = attempt_delay;
    up->has_source_addr = source != NULL;
    if (source != NULL)
        up->source_addr = *source;
    up->source_port = source_port;
}

bool
upstream_tls_resumed(const struct upstream *up)
{
    return up->tls_resumed;
}

void
upstream_set_clean(struct upstream *up, bool clean)
{
    up->clean = clean;
}

struct upstream_answer *
upstream_take_fail_answer(struct upstream *up)
{
    struct upstream_answer *a = up->fail_answer;

    up->fail_answer = NULL;
    return a;
}

const struct upstream_answer *
upstream_proxy_answer(const struct upstream *up)
{
    return up->proxy_answer;
}

void
upstream_set_alpn(struct upstream *up, const unsigned char *offer, size_t len)
{
    up->alpn_offer = offer;
    up->alpn_offer_len = len;
}

const char *
upstream_alpn(const struct upstream *up)
{
    return up->alpn;
}

void
upstream_set_codec_state(struct upstream *up, void *state,
                         void (*free_state)(void *state))
{
    up->codec_state = state;
    up->codec_state_free = free_state;
}

void *
upstream_codec_state(const struct upstream *up)
{
    return up->codec_state;
}
