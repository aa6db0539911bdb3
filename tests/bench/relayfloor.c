/*
 * relayfloor.c — the least a relay shaped like hconnd can do per request,
 * for tests/bench/bench.py to measure hconnd against.
 *
 * It listens on a Unix socket and answers loadgen's --hconn requests with
 * the system calls such a relay cannot avoid and nothing else: one read of
 * the client's line (not parsed), one write of a fixed request to the
 * client's own keep-alive TCP connection to the origin, one read of the
 * response (its head scanned only for Content-Length), one write of a
 * reply loadgen accepts, and epoll_wait shared by whatever is ready. No
 * validation, no policy, no pool, no limits: it is a floor, not a peer,
 * and trusts both sides completely.
 *
 * The CPU it spends per request is what two hops (Unix socket, loopback
 * TCP) cost the kernel and a minimal user space on this machine; what
 * hconnd spends beyond it is hconnd's own.
 *
 * With a fifth argument "tls" the origin side is HTTPS: one TLS session per
 * client, its handshake made once when the client connects (neither side
 * verified), then SSL_write and SSL_read in place of send and read, so
 * the floor of workload 2 holds the record layer's cost and no more.
 *
 * Two knobs, for tests/bench/floorbudget.py, turn the floor into a model
 * of a relay that does more: RELAYFLOOR_WORK_NS spins that many
 * nanoseconds per request (user-space work of its own), RELAYFLOOR_PEEK=1
 * makes the one extra system call hconnd makes per request (a MSG_PEEK
 * of the origin connection before it is reused).
 *
 * usage: relayfloor SOCKET HOST PORT PATH [tls]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#define RF_BUF    (64 * 1024) /* the whole response must fit */
#define RF_EVENTS 256

/* One client and its origin connection. */
struct rf_pair {
    int client, origin;
    SSL *tls;      /* the origin side's, with a fifth argument "tls" */
    size_t in_len; /* response bytes read so far */
    char in[RF_BUF];
};

/* Tags an epoll entry: which side of which pair, or the listener. */
struct rf_tag {
    struct rf_pair *pair;
    bool origin_side;
};

static struct sockaddr_in rf_origin_addr;
static char rf_request[1024];
static size_t rf_request_len;
static long rf_work_ns; /* RELAYFLOOR_WORK_NS */
static bool rf_peek;    /* RELAYFLOOR_PEEK */
static SSL_CTX *rf_tls; /* an HTTPS origin */

static void
rf_die(const char *what)
{
    perror(what);
    exit(1);
}

/* Connects a pair's origin side, with its TLS handshake for an HTTPS
 * origin (blocking: once per client); the socket is then non-blocking,
 * as SSL_read must not wait for the rest of a record. */
static void
rf_connect_origin(struct rf_pair *p)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    if (fd < 0 || connect(fd, (struct sockaddr *)&rf_origin_addr,
                          sizeof rf_origin_addr) < 0)
        rf_die("connect to the origin");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    p->origin = fd;
    if (rf_tls == NULL)
        return;
    if ((p->tls = SSL_new(rf_tls)) == NULL || SSL_set_fd(p->tls, fd) != 1 ||
        SSL_connect(p->tls) != 1) {
        fprintf(stderr, "relayfloor: TLS handshake with the origin failed\n");
        exit(1);
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Up to len of the origin's bytes: > 0 read, 0 none yet (TLS: the rest
 * of a record is still on its way), -1 the origin is gone. */
static ssize_t
rf_origin_read(struct rf_pair *p, char *buf, size_t len)
{
    int n;

    if (p->tls == NULL) {
        ssize_t got = read(p->origin, buf, len);
        return got > 0 ? got : -1;
    }
    n = SSL_read(p->tls, buf, (int)len);
    if (n > 0)
        return n;
    return SSL_get_error(p->tls, n) == SSL_ERROR_WANT_READ ? 0 : -1;
}

/* The response's total length once its head is in, else 0. */
static size_t
rf_response_length(const struct rf_pair *p)
{
    const char *end, *cl;

    end = memmem(p->in, p->in_len, "\r\n\r\n", 4);
    if (end == NULL)
        return 0;
    cl = memmem(p->in, (size_t)(end - p->in), "\r\nContent-Length:", 17);
    if (cl == NULL)
        cl = memmem(p->in, (size_t)(end - p->in), "\r\ncontent-length:", 17);
    if (cl == NULL) {
        fprintf(stderr, "relayfloor: a response without Content-Length\n");
        exit(1);
    }
    return (size_t)(end + 4 - p->in) + strtoul(cl + 17, NULL, 10);
}

/* Reads the origin's bytes; once the response is whole, replies. Returns
 * -1 when the pair is done for. */
static int
rf_origin_readable(struct rf_pair *p)
{
    char line[96];
    struct iovec iov[3];
    size_t total, head;
    ssize_t n;

    /* A readable socket may hold several TLS records: read on while the
     * response is not whole and bytes come. */
    do {
        n = rf_origin_read(p, p->in + p->in_len, sizeof p->in - p->in_len);
        if (n < 0)
            return -1;
        p->in_len += (size_t)n;
        total = rf_response_length(p);
    } while (n > 0 && p->tls != NULL && (total == 0 || p->in_len < total) &&
             p->in_len < sizeof p->in);
    if (total == 0 || p->in_len < total)
        return p->in_len < sizeof p->in ? 0 : -1;
    head =
        (size_t)((char *)memmem(p->in, p->in_len, "\r\n\r\n", 4) + 4 - p->in);
    iov[0].iov_base = line;
    iov[0].iov_len = (size_t)snprintf(
        line, sizeof line,
        "{\"id\":1,\"status\":200}\n{\"id\":1,\"data\":%zu}\n", total - head);
    iov[1].iov_base = p->in + head;
    iov[1].iov_len = total - head;
    iov[2].iov_base = "{\"id\":1,\"end\":true}\n";
    iov[2].iov_len = 20;
    if (writev(p->client, iov, 3) < 0)
        return -1;
    p->in_len = 0;
    return 0;
}

/* Spins for rf_work_ns of wall time: the model's own work. */
static void
rf_work(void)
{
    struct timespec t0, t;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    do
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) <
           rf_work_ns);
}

/* Reads the client's line (whatever it says) and sends the request. */
static int
rf_client_readable(struct rf_pair *p)
{
    char buf[4096];
    ssize_t n = read(p->client, buf, sizeof buf);

    if (n <= 0)
        return -1;
    if (rf_work_ns > 0)
        rf_work();
    if (rf_peek && recv(p->origin, buf, 1, MSG_PEEK | MSG_DONTWAIT) >= 0)
        return -1; /* the origin spoke or closed out of turn */
    if (p->tls != NULL)
        return SSL_write(p->tls, rf_request, (int)rf_request_len) ==
                       (int)rf_request_len
                   ? 0
                   : -1;
    if (send(p->origin, rf_request, rf_request_len, MSG_NOSIGNAL) < 0)
        return -1;
    return 0;
}

static void
rf_add(int ep, int fd, void *tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag};

    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        rf_die("epoll_ctl");
}

/* Accepts a client and pairs it with its own origin connection. */
static void
rf_accept(int ep, int listener)
{
    struct rf_pair *p;
    struct rf_tag *tags;
    int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);

    if (fd < 0)
        return;
    p = calloc(1, sizeof *p);
    tags = calloc(2, sizeof *tags);
    if (p == NULL || tags == NULL)
        rf_die("calloc");
    p->client = fd;
    rf_connect_origin(p);
    tags[0] = (struct rf_tag){p, false};
    tags[1] = (struct rf_tag){p, true};
    rf_add(ep, p->client, &tags[0]);
    rf_add(ep, p->origin, &tags[1]);
}

int
main(int argc, char **argv)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct epoll_event evs[RF_EVENTS];
    static struct rf_tag listener_tag;
    int listener, ep;

    if (argc < 5 || argc > 6 || (argc == 6 && strcmp(argv[5], "tls") != 0) ||
        strlen(argv[1]) >= sizeof sun.sun_path) {
        fprintf(stderr, "usage: relayfloor SOCKET HOST PORT PATH [tls]\n");
        return 2;
    }
    if (argc == 6) {
        if ((rf_tls = SSL_CTX_new(TLS_client_method())) == NULL)
            rf_die("SSL_CTX_new");
        /* One read takes whatever the socket holds, not a record's header
         * and then its body: two system calls a record otherwise. */
        SSL_CTX_set_read_ahead(rf_tls, 1);
    }
    signal(SIGPIPE, SIG_IGN);
    if (getenv("RELAYFLOOR_WORK_NS") != NULL)
        rf_work_ns = atol(getenv("RELAYFLOOR_WORK_NS"));
    rf_peek = getenv("RELAYFLOOR_PEEK") != NULL &&
              strcmp(getenv("RELAYFLOOR_PEEK"), "1") == 0;
    rf_origin_addr.sin_family = AF_INET;
    rf_origin_addr.sin_port = htons((uint16_t)atoi(argv[3]));
    if (inet_pton(AF_INET, argv[2], &rf_origin_addr.sin_addr) != 1)
        rf_die("origin address");
    rf_request_len = (size_t)snprintf(rf_request, sizeof rf_request,
                                      "GET %s HTTP/1.1\r\nHost: %s:%s\r\n\r\n",
                                      argv[4], argv[2], argv[3]);
    strcpy(sun.sun_path, argv[1]);
    unlink(argv[1]);
    listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0 ||
        bind(listener, (struct sockaddr *)&sun, sizeof sun) < 0 ||
        listen(listener, 4096) < 0)
        rf_die("listen");
    if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        rf_die("epoll_create1");
    rf_add(ep, listener, &listener_tag);
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        int n = epoll_wait(ep, evs, RF_EVENTS, -1);

        if (n < 0 && errno != EINTR)
            rf_die("epoll_wait");
        for (int i = 0; i < n; i++) {
            struct rf_tag *t = evs[i].data.ptr;
            struct rf_pair *p = t->pair;

            if (t == &listener_tag) {
                rf_accept(ep, listener);
                continue;
            }
            if ((t->origin_side ? rf_origin_readable(p)
                                : rf_client_readable(p)) == 0)
                continue;
            /* Either side gone: the pair goes (tags leak with it, a bench
             * tool's clients come once per run). */
            SSL_free(p->tls);
            p->tls = NULL;
            close(p->client);
            close(p->origin);
            p->client = p->origin = -1;
        }
    }
}
