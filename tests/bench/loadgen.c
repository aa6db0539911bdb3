/*
 * loadgen.c — a closed-loop HTTP load generator for tests/bench/bench.py.
 *
 * C clients each keep one request in flight (send, read the whole response,
 * send the next) for a duration or a request count, and the run ends with
 * one JSON line: requests, errors, requests per second and latency
 * percentiles (CLOCK_MONOTONIC, from the moment a request is issued,
 * reconnects included, to its last response byte).
 *
 * Three ways to reach a server:
 *   HTTP/1.1 keep-alive over TCP (--tcp HOST:PORT), optionally through a
 *     CONNECT tunnel (--tunnel HOST:PORT) and/or in TLS (--tls);
 *   HTTP/1.1 over a Unix socket (--unix PATH), e.g. nginx as a local pool;
 *   hconnd's JSON-lines protocol over its socket (--unix PATH --hconn URL).
 *
 * Each worker thread (-t) runs its own epoll loop, edge-triggered, over
 * its share of the clients. Nothing here is a test: bench.py reads the
 * figures and decides nothing from them.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define IN_SIZE      (64 * 1024) /* read buffer per client */
#define MAX_EVENTS   256
#define ERRMSG_SIZE  256
#define GIVE_UP_ERRS 1000 /* errors in a row: the peer is broken */

/* How a client talks to its server. */
enum lg_mode {
    LG_HTTP,  /* HTTP/1.1 over TCP or a Unix socket */
    LG_HCONN, /* hconnd's protocol over its Unix socket */
};

/* Where a client is in its connection's life. */
enum lg_state {
    ST_CONNECTING,  /* TCP connect in progress */
    ST_TUNNEL_SEND, /* writing CONNECT */
    ST_TUNNEL_READ, /* reading the proxy's answer to CONNECT */
    ST_HANDSHAKE,   /* TLS handshake */
    ST_SEND,        /* writing the request */
    ST_RECV,        /* reading the response */
};

/* Where the response parser is. */
enum lg_phase {
    PH_HEAD,       /* HTTP: status line and fields */
    PH_LENGTH,     /* HTTP: Content-Length body */
    PH_CHUNK_SIZE, /* HTTP: chunk-size line */
    PH_CHUNK_DATA, /* HTTP: chunk data */
    PH_CHUNK_CRLF, /* HTTP: CRLF after chunk data */
    PH_TRAILER,    /* HTTP: trailer fields up to the empty line */
    PH_TO_EOF,     /* HTTP: body delimited by the close */
    PH_LINE,       /* hconnd: a reply line */
    PH_PAYLOAD,    /* hconnd: a data frame's payload */
};

/* What the command line asked for; read-only once the workers run. */
struct lg_opts {
    enum lg_mode mode;
    const char *label;        /* echoed in the result line */
    char *tcp_host;           /* --tcp host (numeric), malloc'd */
    int tcp_port;             /* --tcp port */
    const char *unix_path;    /* --unix */
    const char *tunnel;       /* --tunnel HOST:PORT: CONNECT target */
    bool tls;                 /* --tls */
    const char *ca_file;      /* --ca */
    char *tls_name;           /* name or IP to verify and SNI, malloc'd */
    const char *target;       /* request-target (HTTP modes) */
    const char *host_header;  /* Host field (HTTP modes) */
    const char *hconn_url;    /* --hconn URL */
    const char *http_version; /* --http-version: the request's field */
    int clients;              /* -c */
    int threads;              /* -t */
    double duration;          /* -d seconds */
    double warmup;            /* -w seconds not measured */
    long long count;          /* -n requests to measure (0: by duration) */
};

struct lg_worker;

/* One closed-loop client: one connection, one request at a time. */
struct lg_client {
    struct lg_worker *w;  /* owner */
    int fd;               /* -1 when not connected */
    SSL *ssl;             /* NULL without TLS */
    SSL_SESSION *session; /* last TLS session, offered on reconnect */
    enum lg_state state;
    enum lg_phase phase;
    size_t out_off;      /* bytes of the current output already sent */
    const char *out;     /* the current output: CONNECT or the request */
    size_t out_len;      /* its length */
    char in[IN_SIZE];    /* bytes read, not yet parsed */
    size_t in_len;       /* valid bytes in in[] */
    uint64_t remaining;  /* body or payload bytes still expected */
    bool close_after;    /* the response ends the connection */
    bool ok;             /* the response so far counts as a success */
    bool reused;         /* the connection already served a response */
    bool got_bytes;      /* some byte of this response has arrived */
    uint64_t start_ns;   /* when the current request was issued */
    uint64_t resp_bytes; /* body bytes of the current response */
};

/* One thread: an epoll loop over its share of the clients. */
struct lg_worker {
    const struct lg_opts *o;
    SSL_CTX *ctx;            /* shared, NULL without TLS */
    const char *request;     /* the request bytes every client sends */
    size_t request_len;      /* their length */
    const char *connect_req; /* CONNECT request, NULL without --tunnel */
    size_t connect_len;
    int epfd;
    struct lg_client *clients;
    int nclients;
    uint64_t measure_start; /* responses done before this are warm-up */
    uint64_t measure_end;   /* the loop stops here (a cap with -n) */
    long long quota;        /* requests to measure (count mode), else 0 */
    uint64_t *lat;          /* measured latencies, ns */
    size_t nlat, caplat;
    uint64_t last_done;      /* completion time of the last measured one */
    long long errors;        /* failed requests, measured or not */
    long long reconnects;    /* connections opened after the first */
    long long retries;       /* requests resent after an idle close */
    uint64_t body_bytes;     /* body bytes of measured responses */
    long long errors_in_row; /* failed requests since the last success */
    char first_error[ERRMSG_SIZE];
    bool failed; /* gave up: the peer keeps failing */
};

static uint64_t
lg_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
lg_die(const char *fmt, ...)
{
    va_list ap;

    fputs("loadgen: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

/* Splits "HOST:PORT" (IPv4 or a name; "[v6]:port") into a malloc'd host and
 * a port; dies on a malformed value, naming the option. */
static void
lg_split_hostport(const char *opt, const char *arg, char **host, int *port)
{
    const char *colon = strrchr(arg, ':');
    const char *h = arg;
    size_t hlen;
    char *endp;
    long p;

    if (colon == NULL || colon == arg)
        lg_die("%s '%s': expected HOST:PORT", opt, arg);
    hlen = (size_t)(colon - arg);
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    p = strtol(colon + 1, &endp, 10);
    if (*endp != '\0' || p < 1 || p > 65535)
        lg_die("%s '%s': port must be 1 to 65535", opt, arg);
    *host = strndup(h, hlen);
    if (*host == NULL)
        lg_die("out of memory");
    *port = (int)p;
}

/* Remembers why the first failure happened, for the result line. */
static void
lg_note_error(struct lg_worker *w, const char *fmt, ...)
{
    va_list ap;

    if (w->first_error[0] != '\0')
        return;
    va_start(ap, fmt);
    vsnprintf(w->first_error, sizeof w->first_error, fmt, ap);
    va_end(ap);
}

/* ---- Connections -------------------------------------------------------- */

static void
lg_client_close(struct lg_client *c)
{
    if (c->ssl != NULL) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd); /* also leaves the epoll set */
        c->fd = -1;
    }
}

/* Starts a connection and the current request on it. Returns 0, or -1 with
 * the reason noted (the caller counts the error). */
static int
lg_client_connect(struct lg_client *c)
{
    struct lg_worker *w = c->w;
    const struct lg_opts *o = w->o;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET};
    int fd;

    c->in_len = 0;
    c->reused = false;
    if (o->unix_path != NULL) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            lg_note_error(w, "socket: %s", strerror(errno));
            return -1;
        }
        snprintf(sun.sun_path, sizeof sun.sun_path, "%s", o->unix_path);
        /* Blocking: a Unix connect waits for backlog room instead of
         * failing with EAGAIN, and never waits on the network. */
        if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
            lg_note_error(w, "connect %s: %s", o->unix_path, strerror(errno));
            close(fd);
            return -1;
        }
        if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
            close(fd);
            return -1;
        }
        c->state = ST_SEND;
    } else {
        struct sockaddr_storage ss;
        socklen_t sslen;
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        int one = 1;

        memset(&ss, 0, sizeof ss);
        if (inet_pton(AF_INET, o->tcp_host, &sin->sin_addr) == 1) {
            sin->sin_family = AF_INET;
            sin->sin_port = htons((uint16_t)o->tcp_port);
            sslen = sizeof *sin;
        } else if (inet_pton(AF_INET6, o->tcp_host, &sin6->sin6_addr) == 1) {
            sin6->sin6_family = AF_INET6;
            sin6->sin6_port = htons((uint16_t)o->tcp_port);
            sslen = sizeof *sin6;
        } else {
            lg_die("--tcp: '%s' is not a numeric address", o->tcp_host);
        }
        fd =
            socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            lg_note_error(w, "socket: %s", strerror(errno));
            return -1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, (struct sockaddr *)&ss, sslen) < 0 &&
            errno != EINPROGRESS) {
            lg_note_error(w, "connect %s:%d: %s", o->tcp_host, o->tcp_port,
                          strerror(errno));
            close(fd);
            return -1;
        }
        c->state = ST_CONNECTING;
    }
    c->fd = fd;
    ev.data.ptr = c;
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        lg_die("epoll_ctl: %s", strerror(errno));
    if (c->state == ST_SEND) {
        c->out = w->request;
        c->out_len = w->request_len;
        c->out_off = 0;
    }
    return 0;
}

/* Sets up TLS on a connected (or tunnelled) socket. Returns 0 or -1. */
static int
lg_client_start_tls(struct lg_client *c)
{
    struct lg_worker *w = c->w;
    const char *name = w->o->tls_name;
    X509_VERIFY_PARAM *param;
    struct in6_addr a6;
    struct in_addr a4;

    c->ssl = SSL_new(w->ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
        return -1;
    param = SSL_get0_param(c->ssl);
    if (inet_pton(AF_INET, name, &a4) == 1 ||
        inet_pton(AF_INET6, name, &a6) == 1) {
        if (X509_VERIFY_PARAM_set1_ip_asc(param, name) != 1)
            return -1;
    } else {
        SSL_set_tlsext_host_name(c->ssl, name);
        if (X509_VERIFY_PARAM_set1_host(param, name, 0) != 1)
            return -1;
    }
    if (c->session != NULL)
        SSL_set_session(c->ssl, c->session);
    SSL_set_connect_state(c->ssl);
    c->state = ST_HANDSHAKE;
    return 0;
}

/* ---- I/O ----------------------------------------------------------------- */

/* Reads into in[]. Returns bytes read, 0 at EOF, -1 when it would block,
 * -2 on an error (noted). */
static ssize_t
lg_client_read(struct lg_client *c)
{
    size_t room = sizeof c->in - c->in_len;
    ssize_t n;

    if (room == 0) {
        lg_note_error(c->w, "response line or head over %d bytes", IN_SIZE);
        return -2;
    }
    if (c->ssl != NULL) {
        int r = SSL_read(c->ssl, c->in + c->in_len, (int)room);

        if (r > 0) {
            c->in_len += (size_t)r;
            return r;
        }
        switch (SSL_get_error(c->ssl, r)) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            return -1;
        case SSL_ERROR_ZERO_RETURN:
            return 0;
        case SSL_ERROR_SYSCALL:
            if (ERR_peek_error() == 0)
                return 0; /* a close without close_notify */
            /* fall through */
        default:
            lg_note_error(c->w, "TLS read: %s",
                          ERR_reason_error_string(ERR_get_error()));
            ERR_clear_error();
            return -2;
        }
    }
    n = recv(c->fd, c->in + c->in_len, room, 0);
    if (n > 0) {
        c->in_len += (size_t)n;
        return n;
    }
    if (n == 0)
        return 0;
    if (errno == EAGAIN || errno == EINTR)
        return -1;
    lg_note_error(c->w, "recv: %s", strerror(errno));
    return -2;
}

/* Writes the rest of the current output. Returns 1 when all is sent, 0 when
 * it would block, -1 on an error (noted). */
static int
lg_client_write(struct lg_client *c)
{
    while (c->out_off < c->out_len) {
        const char *p = c->out + c->out_off;
        size_t len = c->out_len - c->out_off;

        if (c->ssl != NULL) {
            int r = SSL_write(c->ssl, p, (int)len);

            if (r > 0) {
                c->out_off += (size_t)r;
                continue;
            }
            switch (SSL_get_error(c->ssl, r)) {
            case SSL_ERROR_WANT_READ:
            case SSL_ERROR_WANT_WRITE:
                return 0;
            default:
                lg_note_error(c->w, "TLS write: %s",
                              ERR_reason_error_string(ERR_get_error()));
                ERR_clear_error();
                return -1;
            }
        } else {
            ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);

            if (n >= 0) {
                c->out_off += (size_t)n;
                continue;
            }
            if (errno == EAGAIN || errno == EINTR)
                return 0;
            lg_note_error(c->w, "send: %s", strerror(errno));
            return -1;
        }
    }
    return 1;
}

/* Whether the server has closed the (idle) connection already. */
static bool
lg_client_peer_closed(struct lg_client *c)
{
    char b;

    return recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* Drops the first n bytes of in[]. */
static void
lg_client_consume(struct lg_client *c, size_t n)
{
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
}

/* ---- HTTP/1.1 responses -------------------------------------------------- */

/* Whether the field value (len bytes) holds token, case-insensitively. */
static bool
lg_value_has(const char *v, size_t len, const char *token)
{
    size_t tlen = strlen(token);

    for (size_t i = 0; i + tlen <= len; i++)
        if (strncasecmp(v + i, token, tlen) == 0)
            return true;
    return false;
}

/* Parses a complete head of hlen bytes (CRLFs included) and picks the body
 * framing. Returns 0 or -1 (noted). */
static int
lg_http_head(struct lg_client *c, size_t hlen)
{
    const char *p = c->in, *end = c->in + hlen;
    const char *eol = memchr(p, '\n', hlen);
    bool http10, chunked = false, have_length = false, keep_alive = false;
    int status;

    if (eol == NULL || hlen < 12 || memcmp(p, "HTTP/1.", 7) != 0) {
        lg_note_error(c->w, "bad status line: %.40s", p);
        return -1;
    }
    http10 = p[7] == '0';
    status = atoi(p + 9);
    c->ok = status >= 200 && status < 300;
    if (!c->ok)
        lg_note_error(c->w, "HTTP status %d", status);
    c->close_after = false;
    for (p = eol + 1; p < end; p = eol + 1) {
        const char *colon, *v;
        size_t nlen, vlen;

        eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            break;
        colon = memchr(p, ':', (size_t)(eol - p));
        if (colon == NULL)
            continue; /* the final empty line */
        nlen = (size_t)(colon - p);
        v = colon + 1;
        vlen = (size_t)(eol - v);
#define LG_NAME_IS(s) (nlen == sizeof(s) - 1 && strncasecmp(p, s, nlen) == 0)
        if (LG_NAME_IS("content-length")) {
            c->remaining = strtoull(v, NULL, 10);
            have_length = true;
        } else if (LG_NAME_IS("transfer-encoding")) {
            chunked = lg_value_has(v, vlen, "chunked");
        } else if (LG_NAME_IS("connection") || LG_NAME_IS("proxy-connection")) {
            if (lg_value_has(v, vlen, "close"))
                c->close_after = true;
            if (lg_value_has(v, vlen, "keep-alive"))
                keep_alive = true;
        }
#undef LG_NAME_IS
    }
    if (http10 && !keep_alive)
        c->close_after = true;
    if (status == 204 || status == 304 || (status >= 100 && status < 200)) {
        c->phase = PH_LENGTH;
        c->remaining = 0;
    } else if (chunked) {
        c->phase = PH_CHUNK_SIZE;
    } else if (have_length) {
        c->phase = PH_LENGTH;
    } else {
        c->phase = PH_TO_EOF;
        c->close_after = true;
    }
    return 0;
}

/* Runs the HTTP response parser over in[]. Returns 1 when the response is
 * complete, 0 when it needs more bytes, -1 on malformed input (noted). */
static int
lg_http_parse(struct lg_client *c)
{
    for (;;) {
        char *nl;
        size_t n;

        switch (c->phase) {
        case PH_HEAD:
            nl = memmem(c->in, c->in_len, "\r\n\r\n", 4);
            if (nl == NULL)
                return 0;
            n = (size_t)(nl - c->in) + 4;
            if (lg_http_head(c, n) < 0)
                return -1;
            lg_client_consume(c, n);
            break;
        case PH_LENGTH:
            n = c->in_len < c->remaining ? c->in_len : c->remaining;
            c->remaining -= n;
            c->resp_bytes += n;
            lg_client_consume(c, n);
            return c->remaining == 0 ? 1 : 0;
        case PH_CHUNK_SIZE:
            nl = memmem(c->in, c->in_len, "\r\n", 2);
            if (nl == NULL)
                return 0;
            c->remaining = strtoull(c->in, NULL, 16);
            lg_client_consume(c, (size_t)(nl - c->in) + 2);
            c->phase = c->remaining == 0 ? PH_TRAILER : PH_CHUNK_DATA;
            break;
        case PH_CHUNK_DATA:
            n = c->in_len < c->remaining ? c->in_len : c->remaining;
            c->remaining -= n;
            c->resp_bytes += n;
            lg_client_consume(c, n);
            if (c->remaining > 0)
                return 0;
            c->phase = PH_CHUNK_CRLF;
            break;
        case PH_CHUNK_CRLF:
            if (c->in_len < 2)
                return 0;
            if (memcmp(c->in, "\r\n", 2) != 0) {
                lg_note_error(c->w, "chunk data not followed by CRLF");
                return -1;
            }
            lg_client_consume(c, 2);
            c->phase = PH_CHUNK_SIZE;
            break;
        case PH_TRAILER:
            nl = memmem(c->in, c->in_len, "\r\n", 2);
            if (nl == NULL)
                return 0;
            n = (size_t)(nl - c->in);
            lg_client_consume(c, n + 2);
            if (n == 0)
                return 1;
            break;
        case PH_TO_EOF:
            c->resp_bytes += c->in_len;
            c->in_len = 0;
            return 0; /* completed by the close */
        default:
            return -1;
        }
    }
}

/* ---- hconnd replies ------------------------------------------------------ */

/* Top-level keys of a reply line that the client acts on. */
#define KEY_ERROR  1u
#define KEY_STATUS 2u
#define KEY_END    4u
#define KEY_DATA   8u
#define KEY_OP     16u

/* Past the JSON string starting at p (a '"'); NULL if unterminated. */
static const char *
lg_json_skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

/* To the ',' or '}' that ends the value starting at p; NULL if none. */
static const char *
lg_json_skip_value(const char *p, const char *end)
{
    int depth = 0;

    while (p < end) {
        switch (*p) {
        case '"':
            p = lg_json_skip_string(p, end);
            if (p == NULL)
                return NULL;
            continue;
        case '{':
        case '[':
            depth++;
            break;
        case '}':
        case ']':
            if (depth == 0)
                return p;
            depth--;
            break;
        case ',':
            if (depth == 0)
                return p;
            break;
        default:
            break;
        }
        p++;
    }
    return NULL;
}

/* Finds the top-level keys of the reply object in [p, end) that matter here
 * (a KEY_ mask) and the values of "data" and "status". Returns 0, or -1 for
 * a line that is not one JSON object. */
static int
lg_wire_scan(const char *p, const char *end, unsigned *keys, uint64_t *data,
             int *status)
{
    *keys = 0;
    *data = 0;
    *status = 0;
    while (p < end && (*p == ' ' || *p == '\r'))
        p++;
    if (p == end || *p != '{')
        return -1;
    p++;
    while (p < end && *p != '}') {
        const char *k = p + 1, *kend;
        size_t klen;

        if (*p != '"' || (kend = lg_json_skip_string(p, end)) == NULL)
            return -1;
        klen = (size_t)(kend - 1 - k);
        p = kend;
        if (p >= end || *p != ':')
            return -1;
        p++;
#define LG_KEY_IS(s) (klen == sizeof(s) - 1 && memcmp(k, s, klen) == 0)
        if (LG_KEY_IS("error"))
            *keys |= KEY_ERROR;
        else if (LG_KEY_IS("status")) {
            *keys |= KEY_STATUS;
            *status = atoi(p);
        } else if (LG_KEY_IS("end"))
            *keys |= KEY_END;
        else if (LG_KEY_IS("op"))
            *keys |= KEY_OP;
        else if (LG_KEY_IS("data")) {
            *keys |= KEY_DATA;
            *data = strtoull(p, NULL, 10);
        }
#undef LG_KEY_IS
        p = lg_json_skip_value(p, end);
        if (p == NULL)
            return -1;
        if (*p == ',')
            p++;
    }
    return p < end ? 0 : -1;
}

/* Runs the reply parser over in[]. Returns 1 when the request's replies are
 * complete (end or error), 0 when it needs more bytes, -1 on a malformed
 * reply (noted). */
static int
lg_hconn_parse(struct lg_client *c)
{
    for (;;) {
        char *nl;
        unsigned keys;
        uint64_t data;
        int status;
        size_t n;

        if (c->phase == PH_PAYLOAD) {
            n = c->in_len < c->remaining ? c->in_len : c->remaining;
            c->remaining -= n;
            c->resp_bytes += n;
            lg_client_consume(c, n);
            if (c->remaining > 0)
                return 0;
            c->phase = PH_LINE;
        }
        nl = memchr(c->in, '\n', c->in_len);
        if (nl == NULL)
            return 0;
        if (lg_wire_scan(c->in, nl, &keys, &data, &status) < 0) {
            lg_note_error(c->w, "bad reply line: %.60s", c->in);
            return -1;
        }
        /* Classified in the order PROTOCOL.md section 5 gives. */
        if (keys & (KEY_OP | KEY_ERROR)) {
            lg_note_error(c->w, "hconnd replied: %.*s",
                          (int)(nl - c->in < 200 ? nl - c->in : 200), c->in);
            lg_client_consume(c, (size_t)(nl - c->in) + 1);
            c->ok = false;
            return 1;
        }
        if (keys & KEY_STATUS) {
            if (status < 200 || status >= 300) {
                c->ok = false;
                lg_note_error(c->w, "HTTP status %d", status);
            }
            lg_client_consume(c, (size_t)(nl - c->in) + 1);
        } else if (keys & KEY_END) {
            lg_client_consume(c, (size_t)(nl - c->in) + 1);
            return 1;
        } else if (keys & KEY_DATA) {
            lg_client_consume(c, (size_t)(nl - c->in) + 1);
            c->remaining = data;
            c->phase = PH_PAYLOAD;
        } else {
            lg_client_consume(c, (size_t)(nl - c->in) + 1); /* continue */
        }
    }
}

/* ---- The client state machine -------------------------------------------- */

/* Sets up the next request: same connection if it stays open. */
static void
lg_client_begin(struct lg_client *c, uint64_t now)
{
    c->start_ns = now;
    c->resp_bytes = 0;
    c->ok = true;
    c->got_bytes = false;
    c->close_after = false;
    c->phase = c->w->o->mode == LG_HCONN ? PH_LINE : PH_HEAD;
    c->out = c->w->request;
    c->out_len = c->w->request_len;
    c->out_off = 0;
    c->state = ST_SEND;
}

/* Whether the worker should issue more requests. */
static bool
lg_worker_running(const struct lg_worker *w, uint64_t now)
{
    if (w->failed)
        return false;
    if (w->quota > 0 && (long long)w->nlat >= w->quota)
        return false;
    return now < w->measure_end;
}

/* Books a finished request (ok says whether it succeeded). */
static void
lg_client_done(struct lg_client *c, bool ok, uint64_t now)
{
    struct lg_worker *w = c->w;

    if (!ok) {
        w->errors++;
        if (++w->errors_in_row >= GIVE_UP_ERRS)
            w->failed = true;
        return;
    }
    w->errors_in_row = 0;
    /* Counted by completion time, so the window's rate is exact. */
    if (now < w->measure_start)
        return;
    if (now > w->measure_end)
        return;
    if (w->quota > 0 && (long long)w->nlat >= w->quota)
        return;
    if (w->nlat == w->caplat) {
        w->caplat = w->caplat ? 2 * w->caplat : 65536;
        w->lat = realloc(w->lat, w->caplat * sizeof *w->lat);
        if (w->lat == NULL)
            lg_die("out of memory for latencies");
    }
    w->lat[w->nlat++] = now - c->start_ns;
    w->body_bytes += c->resp_bytes;
    w->last_done = now;
}

/* Drops the connection and starts the next request on a new one (or the
 * same request again when resend is set), unless the run is over. */
static void
lg_client_restart(struct lg_client *c, bool resend, uint64_t now)
{
    struct lg_worker *w = c->w;

    if (c->ssl != NULL && c->session == NULL)
        c->session = SSL_get1_session(c->ssl);
    lg_client_close(c);
    if (!lg_worker_running(w, now))
        return;
    if (!resend)
        lg_client_begin(c, now);
    else
        lg_client_begin(c, c->start_ns);
    w->reconnects++;
    while (lg_client_connect(c) < 0) {
        lg_client_done(c, false, now);
        now = lg_now_ns();
        if (!lg_worker_running(w, now))
            return;
        lg_client_begin(c, now);
    }
}

/* A failure on the current request: count it and reconnect. */
static void
lg_client_fail(struct lg_client *c, uint64_t now)
{
    lg_client_done(c, false, now);
    lg_client_restart(c, false, now);
}

/* Drives the client until it would block. */
static void
lg_client_advance(struct lg_client *c)
{
    struct lg_worker *w = c->w;
    const struct lg_opts *o = w->o;

    for (;;) {
        uint64_t now;
        ssize_t n;
        int r, err;
        socklen_t len;
        char *eoh;

        switch (c->state) {
        case ST_CONNECTING:
            err = 0;
            len = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err != 0) {
                lg_note_error(w, "connect %s:%d: %s", o->tcp_host, o->tcp_port,
                              strerror(err));
                lg_client_fail(c, lg_now_ns());
                return;
            }
            if (w->connect_req != NULL) {
                c->out = w->connect_req;
                c->out_len = w->connect_len;
                c->out_off = 0;
                c->state = ST_TUNNEL_SEND;
            } else if (o->tls) {
                if (lg_client_start_tls(c) < 0) {
                    lg_note_error(w, "cannot set up TLS");
                    lg_client_fail(c, lg_now_ns());
                    return;
                }
            } else {
                c->out = w->request;
                c->out_len = w->request_len;
                c->out_off = 0;
                c->state = ST_SEND;
            }
            break;
        case ST_TUNNEL_SEND:
            r = lg_client_write(c);
            if (r == 0)
                return;
            if (r < 0) {
                lg_client_fail(c, lg_now_ns());
                return;
            }
            c->state = ST_TUNNEL_READ;
            break;
        case ST_TUNNEL_READ:
            n = lg_client_read(c);
            if (n == -1)
                return;
            eoh = memmem(c->in, c->in_len, "\r\n\r\n", 4);
            if (eoh == NULL) {
                if (n <= 0) {
                    lg_note_error(w, "proxy closed during CONNECT");
                    lg_client_fail(c, lg_now_ns());
                    return;
                }
                break;
            }
            if (c->in_len < 12 || memcmp(c->in + 9, "200", 3) != 0) {
                lg_note_error(w, "CONNECT refused: %.40s", c->in);
                lg_client_fail(c, lg_now_ns());
                return;
            }
            lg_client_consume(c, (size_t)(eoh - c->in) + 4);
            if (o->tls) {
                if (lg_client_start_tls(c) < 0) {
                    lg_client_fail(c, lg_now_ns());
                    return;
                }
            } else {
                c->out = w->request;
                c->out_len = w->request_len;
                c->out_off = 0;
                c->state = ST_SEND;
            }
            break;
        case ST_HANDSHAKE:
            r = SSL_do_handshake(c->ssl);
            if (r != 1) {
                err = SSL_get_error(c->ssl, r);
                if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
                    return;
                lg_note_error(w, "TLS handshake: %s",
                              ERR_reason_error_string(ERR_get_error()));
                ERR_clear_error();
                lg_client_fail(c, lg_now_ns());
                return;
            }
            if (c->session != NULL) {
                SSL_SESSION_free(c->session);
                c->session = NULL;
            }
            c->out = w->request;
            c->out_len = w->request_len;
            c->out_off = 0;
            c->state = ST_SEND;
            break;
        case ST_SEND:
            if (c->reused && c->out_off == 0 && lg_client_peer_closed(c)) {
                /* As curl does before reusing a connection: a server
                 * that closes after each response without saying so
                 * (tinyproxy) costs a reconnect, not a failed send. */
                lg_client_restart(c, true, lg_now_ns());
                return;
            }
            r = lg_client_write(c);
            if (r == 0)
                return;
            if (r < 0) {
                lg_client_fail(c, lg_now_ns());
                return;
            }
            c->state = ST_RECV;
            break;
        case ST_RECV:
            n = lg_client_read(c);
            if (n == -1)
                return;
            if (n == -2) {
                lg_client_fail(c, lg_now_ns());
                return;
            }
            now = lg_now_ns();
            if (n == 0) {
                if (c->phase == PH_TO_EOF) {
                    lg_client_done(c, c->ok, now);
                    lg_client_restart(c, false, now);
                } else if (!c->got_bytes && c->in_len == 0 && c->reused) {
                    /* The server closed an idle keep-alive connection
                     * just as the request went: send it again. */
                    w->retries++;
                    lg_client_restart(c, true, now);
                } else {
                    lg_note_error(w, "connection closed mid-response");
                    lg_client_fail(c, now);
                }
                return;
            }
            c->got_bytes = true;
            r = o->mode == LG_HCONN ? lg_hconn_parse(c) : lg_http_parse(c);
            if (r < 0) {
                lg_client_fail(c, now);
                return;
            }
            if (r == 0)
                break;
            lg_client_done(c, c->ok, now);
            if (c->close_after || c->in_len > 0) {
                /* Bytes past the response would mean the server answered
                 * what was never asked: start over on a new connection. */
                lg_client_restart(c, false, now);
                return;
            }
            c->reused = true;
            if (!lg_worker_running(w, now)) {
                lg_client_close(c);
                return;
            }
            lg_client_begin(c, now);
            break;
        }
    }
}

/* ---- Workers ------------------------------------------------------------- */

static void *
lg_worker_run(void *arg)
{
    struct lg_worker *w = arg;
    struct epoll_event evs[MAX_EVENTS];
    uint64_t now = lg_now_ns();

    for (int i = 0; i < w->nclients; i++) {
        w->clients[i].w = w;
        w->clients[i].fd = -1;
    }
    for (int i = 0; i < w->nclients; i++) {
        struct lg_client *c = &w->clients[i];

        lg_client_begin(c, now);
        if (lg_client_connect(c) < 0) {
            lg_client_done(c, false, now);
            w->failed = true; /* the server is not there: no run */
            goto out;
        }
        if (c->state == ST_SEND)
            lg_client_advance(c);
    }
    for (;;) {
        int n = epoll_wait(w->epfd, evs, MAX_EVENTS, 50);

        if (n < 0 && errno != EINTR)
            lg_die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            struct lg_client *c = evs[i].data.ptr;

            if (c->fd >= 0)
                lg_client_advance(c);
        }
        now = lg_now_ns();
        if (!lg_worker_running(w, now))
            break;
    }
out:
    for (int i = 0; i < w->nclients; i++) {
        lg_client_close(&w->clients[i]);
        if (w->clients[i].session != NULL)
            SSL_SESSION_free(w->clients[i].session);
    }
    return NULL;
}

static int
lg_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* The q-quantile of n sorted values, in microseconds. */
static double
lg_quantile_us(const uint64_t *v, size_t n, double q)
{
    size_t i;

    if (n == 0)
        return 0;
    i = (size_t)(q * (double)(n - 1) + 0.5);
    return (double)v[i] / 1000.0;
}

/* Prints s as a JSON string. */
static void
lg_print_json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

/* Appends s to buf (at *len, of size cap) with " and \ escaped for JSON. */
static void
lg_json_escape(char *buf, size_t cap, size_t *len, const char *s)
{
    for (; *s && *len + 3 < cap; s++) {
        if (*s == '"' || *s == '\\')
            buf[(*len)++] = '\\';
        buf[(*len)++] = *s;
    }
    buf[*len] = '\0';
}

/* Builds the bytes every client sends for one request. */
static char *
lg_build_request(const struct lg_opts *o, size_t *len)
{
    char *buf;
    size_t cap = 8192, n = 0;

    buf = malloc(cap);
    if (buf == NULL)
        lg_die("out of memory");
    if (o->mode == LG_HCONN) {
        /* Depth 1 per client, so one constant id serves every request. */
        n = (size_t)snprintf(buf, cap,
                             "{\"id\":1,\"method\":\"GET\",\"url\":\"");
        lg_json_escape(buf, cap, &n, o->hconn_url);
        if (o->http_version != NULL) {
            n += (size_t)snprintf(buf + n, cap - n, "\",\"http_version\":\"");
            lg_json_escape(buf, cap, &n, o->http_version);
        }
        if (o->ca_file != NULL) {
            n += (size_t)snprintf(buf + n, cap - n,
                                  "\",\"tls\":{\"ca_file\":\"");
            lg_json_escape(buf, cap, &n, o->ca_file);
            n += (size_t)snprintf(buf + n, cap - n, "\"}}\n");
        } else {
            n += (size_t)snprintf(buf + n, cap - n, "\"}\n");
        }
    } else {
        n = (size_t)snprintf(buf, cap, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n",
                             o->target, o->host_header);
    }
    if (n >= cap - 1)
        lg_die("request too long");
    *len = n;
    return buf;
}

static const char lg_usage[] =
    "usage: loadgen [options]\n"
    "  --tcp HOST:PORT     connect over TCP (numeric address)\n"
    "  --unix PATH         connect to a Unix socket instead\n"
    "  --tunnel HOST:PORT  send CONNECT HOST:PORT first (a forward proxy)\n"
    "  --tls               TLS after connecting (or tunnelling)\n"
    "  --ca FILE           CA certificates to verify with (TLS and --hconn)\n"
    "  --tls-name NAME     name or IP to verify (default: the Host's host)\n"
    "  --target T          request-target (default /); absolute-form for a\n"
    "                      forward proxy\n"
    "  --host H            Host field (default: the --tcp address)\n"
    "  --hconn URL         speak hconnd's protocol (with --unix) for URL\n"
    "  --http-version V    send \"http_version\": V with --hconn (\"1.1\",\n"
    "                      \"2\"; default: none, the daemon's auto)\n"
    "  -c N                concurrent clients (default 1)\n"
    "  -t N                threads (default 1)\n"
    "  -d SECONDS          measured duration (default 5)\n"
    "  -w SECONDS          warm-up before measuring (default 0.5)\n"
    "  -n N                measure N requests (-d then caps the time;\n"
    "                      default 600)\n"
    "  --label TEXT        echoed in the result line\n";

static void
lg_parse_args(int argc, char **argv, struct lg_opts *o)
{
    static const struct option longopts[] = {
        {"tcp", required_argument, NULL, 'T'},
        {"unix", required_argument, NULL, 'U'},
        {"tunnel", required_argument, NULL, 'C'},
        {"tls", no_argument, NULL, 'S'},
        {"ca", required_argument, NULL, 'A'},
        {"tls-name", required_argument, NULL, 'N'},
        {"target", required_argument, NULL, 'P'},
        {"host", required_argument, NULL, 'H'},
        {"hconn", required_argument, NULL, 'J'},
        {"http-version", required_argument, NULL, 'V'},
        {"label", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool duration_given = false;
    int opt;

    *o = (struct lg_opts){.mode = LG_HTTP,
                          .label = "",
                          .target = "/",
                          .clients = 1,
                          .threads = 1,
                          .duration = 5,
                          .warmup = 0.5};
    while ((opt = getopt_long(argc, argv, "c:t:d:w:n:h", longopts, NULL)) !=
           -1) {
        switch (opt) {
        case 'T':
            free(o->tcp_host);
            lg_split_hostport("--tcp", optarg, &o->tcp_host, &o->tcp_port);
            break;
        case 'U':
            o->unix_path = optarg;
            break;
        case 'C':
            o->tunnel = optarg;
            break;
        case 'S':
            o->tls = true;
            break;
        case 'A':
            o->ca_file = optarg;
            break;
        case 'N':
            free(o->tls_name);
            o->tls_name = strdup(optarg);
            if (o->tls_name == NULL)
                lg_die("out of memory");
            break;
        case 'P':
            o->target = optarg;
            break;
        case 'H':
            o->host_header = optarg;
            break;
        case 'J':
            o->hconn_url = optarg;
            o->mode = LG_HCONN;
            break;
        case 'V':
            o->http_version = optarg;
            break;
        case 'L':
            o->label = optarg;
            break;
        case 'c':
            o->clients = atoi(optarg);
            break;
        case 't':
            o->threads = atoi(optarg);
            break;
        case 'd':
            o->duration = atof(optarg);
            duration_given = true;
            break;
        case 'w':
            o->warmup = atof(optarg);
            break;
        case 'n':
            o->count = atoll(optarg);
            break;
        case 'h':
            fputs(lg_usage, stdout);
            exit(0);
        default:
            fputs(lg_usage, stderr);
            exit(2);
        }
    }
    if (optind != argc)
        lg_die("unexpected argument '%s'", argv[optind]);
    if ((o->tcp_host == NULL) == (o->unix_path == NULL))
        lg_die("give exactly one of --tcp and --unix");
    if (o->mode == LG_HCONN && o->unix_path == NULL)
        lg_die("--hconn needs --unix (the daemon's socket)");
    if (o->http_version != NULL && o->mode != LG_HCONN)
        lg_die("--http-version needs --hconn");
    if ((o->tls || o->tunnel) && o->tcp_host == NULL)
        lg_die("--tls and --tunnel need --tcp");
    if (o->clients < 1 || o->threads < 1 || o->duration <= 0 || o->warmup < 0 ||
        o->count < 0)
        lg_die("-c, -t and -d must be positive, -w and -n not negative");
    if (o->count > 0 && !duration_given)
        o->duration = 600;
    if (o->threads > o->clients)
        o->threads = o->clients;
    if (o->host_header == NULL) {
        if (o->tunnel != NULL)
            o->host_header = o->tunnel;
        else if (o->tcp_host != NULL) {
            static char hp[300];

            snprintf(hp, sizeof hp, "%s:%d", o->tcp_host, o->tcp_port);
            o->host_header = hp;
        } else {
            o->host_header = "localhost";
        }
    }
    if (o->tls && o->tls_name == NULL) {
        const char *colon = strrchr(o->host_header, ':');
        size_t hlen = colon != NULL && !strchr(colon, ']')
                          ? (size_t)(colon - o->host_header)
                          : strlen(o->host_header);
        char *h = strndup(o->host_header, hlen);

        if (h == NULL)
            lg_die("out of memory");
        if (h[0] == '[' && hlen >= 2) {
            memmove(h, h + 1, hlen - 2);
            h[hlen - 2] = '\0';
        }
        o->tls_name = h;
    }
}

/* One SSL_CTX for every client: verification on, TLS 1.2 or later. */
static SSL_CTX *
lg_tls_context(const struct lg_opts *o)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL)
        lg_die("SSL_CTX_new failed");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (o->ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1)
            lg_die("--ca %s: cannot load it", o->ca_file);
    } else {
        SSL_CTX_set_default_verify_paths(ctx);
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
    return ctx;
}

int
main(int argc, char **argv)
{
    struct lg_opts o;
    struct lg_worker *workers;
    pthread_t *tids;
    SSL_CTX *ctx = NULL;
    char *request, *connect_req = NULL;
    size_t request_len, connect_len = 0, nlat = 0;
    uint64_t *lat, t0, measure_start, last = 0, body_bytes = 0;
    long long errors = 0, reconnects = 0, retries = 0;
    const char *first_error = "";
    bool failed = false;
    double seconds;

    lg_parse_args(argc, argv, &o);
    signal(SIGPIPE, SIG_IGN);
    if (o.tls)
        ctx = lg_tls_context(&o);
    request = lg_build_request(&o, &request_len);
    if (o.tunnel != NULL) {
        connect_req = malloc(1024);
        if (connect_req == NULL)
            lg_die("out of memory");
        connect_len = (size_t)snprintf(connect_req, 1024,
                                       "CONNECT %s HTTP/1.1\r\nHost: "
                                       "%s\r\n\r\n",
                                       o.tunnel, o.tunnel);
    }

    workers = calloc((size_t)o.threads, sizeof *workers);
    tids = calloc((size_t)o.threads, sizeof *tids);
    if (workers == NULL || tids == NULL)
        lg_die("out of memory");
    t0 = lg_now_ns();
    measure_start = t0 + (uint64_t)(o.warmup * 1e9);
    for (int i = 0; i < o.threads; i++) {
        struct lg_worker *w = &workers[i];

        w->o = &o;
        w->ctx = ctx;
        w->request = request;
        w->request_len = request_len;
        w->connect_req = connect_req;
        w->connect_len = connect_len;
        w->nclients = o.clients / o.threads + (i < o.clients % o.threads);
        w->clients = calloc((size_t)w->nclients, sizeof *w->clients);
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (w->clients == NULL || w->epfd < 0)
            lg_die("cannot set up worker %d", i);
        w->measure_start = measure_start;
        w->measure_end = measure_start + (uint64_t)(o.duration * 1e9);
        if (o.count > 0) {
            w->quota = o.count / o.threads + (i < o.count % o.threads);
            if (w->quota == 0)
                w->quota = 1;
        }
        if (pthread_create(&tids[i], NULL, lg_worker_run, w) != 0)
            lg_die("pthread_create failed");
    }
    for (int i = 0; i < o.threads; i++) {
        struct lg_worker *w = &workers[i];

        pthread_join(tids[i], NULL);
        nlat += w->nlat;
        errors += w->errors;
        reconnects += w->reconnects;
        retries += w->retries;
        body_bytes += w->body_bytes;
        failed |= w->failed;
        if (w->last_done > last)
            last = w->last_done;
        if (first_error[0] == '\0')
            first_error = w->first_error;
    }
    lat = malloc((nlat ? nlat : 1) * sizeof *lat);
    if (lat == NULL)
        lg_die("out of memory");
    nlat = 0;
    for (int i = 0; i < o.threads; i++) {
        if (workers[i].nlat > 0)
            memcpy(lat + nlat, workers[i].lat, workers[i].nlat * sizeof *lat);
        nlat += workers[i].nlat;
    }
    qsort(lat, nlat, sizeof *lat, lg_cmp_u64);
    if (o.count > 0)
        seconds =
            last > measure_start ? (double)(last - measure_start) / 1e9 : 0;
    else
        seconds = o.duration;

    {
        double sum = 0;

        for (size_t i = 0; i < nlat; i++)
            sum += (double)lat[i];
        printf("{\"label\":");
        lg_print_json_string(o.label);
        printf(",\"clients\":%d,\"threads\":%d,\"seconds\":%.3f,"
               "\"requests\":%zu,\"errors\":%lld,\"reconnects\":%lld,"
               "\"retries\":%lld,\"rps\":%.1f,\"p50_us\":%.1f,"
               "\"p90_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f,"
               "\"mean_us\":%.1f,\"body_bytes\":%llu,\"first_error\":",
               o.clients, o.threads, seconds, nlat, errors, reconnects, retries,
               seconds > 0 ? (double)nlat / seconds : 0,
               lg_quantile_us(lat, nlat, 0.50), lg_quantile_us(lat, nlat, 0.90),
               lg_quantile_us(lat, nlat, 0.99), lg_quantile_us(lat, nlat, 1.0),
               nlat ? sum / (double)nlat / 1000.0 : 0,
               (unsigned long long)body_bytes);
        lg_print_json_string(first_error);
        printf("}\n");
    }
    fflush(stdout);
    for (int i = 0; i < o.threads; i++) {
        free(workers[i].lat);
        free(workers[i].clients);
        close(workers[i].epfd);
    }
    free(workers);
    free(tids);
    free(lat);
    free(request);
    free(connect_req);
    SSL_CTX_free(ctx);
    free(o.tcp_host);
    free(o.tls_name);
    return nlat > 0 && !failed ? 0 : 1;
}
