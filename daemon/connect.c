/*
 * connect.c — Happy Eyeballs v2 (RFC 8305 §5): from a name's addresses to
 * one connected socket, the way curl's cf-he filter does it beneath its
 * socket and TLS layers.
 *
 * The addresses are ordered IPv6 first, then alternating families (§4).
 * One attempt starts; each connection attempt delay later, or at once
 * when every attempt under way has failed (a refused family falls back
 * without waiting), the next one starts beside those still running. The
 * first to connect wins, the others are closed. Only when every address
 * failed does the race fail, naming each address and why.
 *
 * An address is checked (the policy's address classes) just before it is
 * tried: a refused one is skipped without a packet sent to it. A source
 * address restricts the race to its family; a fixed source port makes
 * the attempts strictly sequential, since two sockets cannot bind it.
 *
 * Sockets are opened here rather than through bufferevent_socket_connect
 * so that several can be pending at once and bound first; the winner is
 * handed to the caller, which wraps it in a bufferevent.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "connect.h"
#include "hconn_error.h"
#include "log.h"
#include "resolve.h"
#include "timeval.h"

/* One connect in flight. */
struct connect_attempt {
    int fd;              /* -1 once closed */
    struct event *event; /* EV_WRITE: connected or failed */
    size_t index;        /* into race->list */
    struct connect_race *race;
};

struct connect_race {
    struct event_base *base;
    struct connect_options o; /* host and role copied below */
    char host[256];
    char role[16];
    struct sockaddr_storage *list;     /* the addresses, in try order */
    size_t n;                          /* in list */
    size_t cap;                        /* room in list and attempts */
    size_t next;                       /* next position in list to try */
    bool more_coming;                  /* the other family's answer is due */
    struct connect_attempt **attempts; /* one per address at most */
    size_t nattempts;                  /* started */
    size_t nactive;                    /* still connecting */
    struct event *delay_timer;         /* starts the next attempt */
    struct event *done_event;          /* delivers an outcome off-stack */
    int error;                         /* with done_event */
    int denied_error;                  /* the policy refused an address */
    char denied[300];                  /* ... saying why */
    char failures[768];                /* "addr: why; addr: why" */
    connect_race_cb cb;
    void *cb_arg;
};

static void connect_race_step(struct connect_race *race);

void
connect_format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
    char addr[INET6_ADDRSTRLEN] = "?";

    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

        inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof addr);
        snprintf(buf, len, "[%s]:%u", addr, ntohs(in6->sin6_port));
    } else {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &in->sin_addr, addr, sizeof addr);
        snprintf(buf, len, "%s:%u", addr, ntohs(in->sin_port));
    }
}

void
connect_order(const struct sockaddr_storage *addrs, size_t n, size_t *order)
{
    size_t i6 = 0, i4 = 0, k = 0;
    bool six = true;

    /* Each cursor walks its own family in the resolver's order. */
    while (k < n) {
        int want = six ? AF_INET6 : AF_INET;
        size_t *cur = six ? &i6 : &i4;

        while (*cur < n && addrs[*cur].ss_family != want)
            (*cur)++;
        if (*cur < n)
            order[k++] = (*cur)++;
        six = !six;
    }
}

/* The address at position pos of the order, with the port set. */
static void
connect_addr_at(const struct connect_race *race, size_t pos,
                struct sockaddr_storage *ss, socklen_t *len)
{
    *ss = race->list[pos];
    if (ss->ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(race->o.port);
        *len = sizeof(struct sockaddr_in6);
    } else {
        ((struct sockaddr_in *)ss)->sin_port = htons(race->o.port);
        *len = sizeof(struct sockaddr_in);
    }
}

/* Appends "addr: why" to the failures listed in the final message. */
static void
connect_note_failure(struct connect_race *race, const char *addr,
                     const char *why)
{
    size_t n = strlen(race->failures);

    if (n + 4 < sizeof race->failures)
        snprintf(race->failures + n, sizeof race->failures - n, "%s%s: %s",
                 n > 0 ? "; " : "", addr, why);
}

/* Closes one attempt's socket and watch. */
static void
connect_attempt_close(struct connect_attempt *a)
{
    if (a->event != NULL) {
        event_free(a->event);
        a->event = NULL;
    }
    if (a->fd >= 0) {
        close(a->fd);
        a->fd = -1;
        a->race->nactive--;
    }
}

/* Ends the race now (the caller is the loop): fd >= 0 won. */
static void
connect_race_end(struct connect_race *race, int fd, const char *peer, int error,
                 const char *message)
{
    for (size_t i = 0; i < race->nattempts; i++)
        connect_attempt_close(race->attempts[i]);
    if (race->delay_timer != NULL)
        event_del(race->delay_timer);
    race->cb(fd, peer, error, message, race->cb_arg);
}

/* The final failure's message: what the user typed, then each address. */
static void
connect_failure_message(struct connect_race *race, char *buf, size_t len)
{
    const char *v6 = strchr(race->host, ':');
    const char *why =
        race->failures[0] != '\0' ? race->failures : "no address to try";
    char typed[300];
    size_t n;

    if (race->nattempts == 0 && race->denied_error != 0) {
        snprintf(buf, len, "%s", race->denied);
        return;
    }
    snprintf(typed, sizeof typed, "%s%.255s%s:%u", v6 ? "[" : "", race->host,
             v6 ? "]" : "", race->o.port);
    /* An address typed as such, tried alone: name it once. */
    n = strlen(typed);
    if (strncmp(why, typed, n) == 0 && strncmp(why + n, ": ", 2) == 0 &&
        strchr(why, ';') == NULL)
        why += n + 2;
    snprintf(buf, len, "connect to %.15s%.270s failed: %.700s", race->role,
             typed, why);
}

/* Delivers a failure decided while no callback may run yet. */
static void
connect_done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct connect_race *race = arg;
    char message[1024];

    connect_failure_message(race, message, sizeof message);
    connect_race_end(race, -1, NULL, race->error, message);
}

/* Fails the race from the loop's next turn. */
static void
connect_race_fail_later(struct connect_race *race, int error)
{
    race->error = error;
    if (race->done_event == NULL &&
        (race->done_event = evtimer_new(race->base, connect_done_cb, race)) ==
            NULL) {
        log_error("connect: out of memory");
        abort();
    }
    event_active(race->done_event, EV_TIMEOUT, 0);
}

/* An attempt's socket turned writable: connected, or failed. */
static void
connect_attempt_cb(evutil_socket_t fd, short what, void *arg)
{
    struct connect_attempt *a = arg;
    struct connect_race *race = a->race;
    struct sockaddr_storage ss;
    socklen_t sslen, errlen = sizeof(int);
    char peer[64];
    int err = 0;

    connect_addr_at(race, a->index, &ss, &sslen);
    connect_format_addr((struct sockaddr *)&ss, peer, sizeof peer);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0)
        err = errno;
    if (err == 0) {
        int won = a->fd;

        /* Keep the winner out of the sweep that closes the rest. */
        event_free(a->event);
        a->event = NULL;
        a->fd = -1;
        race->nactive--;
        log_debug("connect: %s%s: %s won after %zu attempts", race->role,
                  race->host, peer, race->nattempts);
        connect_race_end(race, won, peer, 0, NULL);
        return;
    }
    log_debug("connect: %s%s: %s failed: %s", race->role, race->host, peer,
              strerror(err));
    connect_note_failure(race, peer, strerror(err));
    connect_attempt_close(a);
    /* A failure lets the next address go at once (RFC 8305 §5). */
    if (race->nactive == 0 || race->next < race->n)
        connect_race_step(race);
}

/* Opens a socket for ss, binds the source and starts the connect.
 * Returns the fd, or -1 with errno set. */
static int
connect_open(const struct connect_race *race, const struct sockaddr_storage *ss,
             socklen_t sslen)
{
    int fd =
        socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, saved;

    if (fd < 0)
        return -1;
    if (race->o.has_source_addr || race->o.source_port != 0) {
        struct sockaddr_storage src = {.ss_family = ss->ss_family};
        socklen_t srclen = ss->ss_family == AF_INET6
                               ? sizeof(struct sockaddr_in6)
                               : sizeof(struct sockaddr_in);

        if (race->o.has_source_addr)
            src = race->o.source_addr;
        if (src.ss_family == AF_INET6)
            ((struct sockaddr_in6 *)&src)->sin6_port =
                htons(race->o.source_port);
        else
            ((struct sockaddr_in *)&src)->sin_port = htons(race->o.source_port);
        /* An IPv6 socket must not also claim the port for IPv4; a fixed
         * port must be reusable straight after its last connection. */
        if (ss->ss_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (race->o.source_port != 0)
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&src, srclen) < 0)
            goto fail;
    }
    if (connect(fd, (const struct sockaddr *)ss, sslen) == 0 ||
        errno == EINPROGRESS)
        return fd;
fail:
    saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

/* Starts the next address that passes the checks; arms the delay timer
 * for the one after. Fails the race when nothing is left and nothing is
 * running. */
static void
connect_race_step(struct connect_race *race)
{
    struct timeval tv;
    char peer[64], why[512];
    int code;

    /* Two sockets cannot bind one fixed port: one attempt at a time. */
    if (race->o.source_port != 0 && race->nactive > 0)
        return;
    while (race->next < race->n) {
        size_t pos = race->next++;
        struct sockaddr_storage ss;
        socklen_t sslen;
        struct connect_attempt *a;
        int fd;

        connect_addr_at(race, pos, &ss, &sslen);
        connect_format_addr((struct sockaddr *)&ss, peer, sizeof peer);
        if (race->o.has_source_addr &&
            ss.ss_family != race->o.source_addr.ss_family) {
            connect_note_failure(race, peer,
                                 "not of the source address's family");
            continue;
        }
        /* Checked on the address, not the name: a name that resolves to
         * a refused address must not reach it. */
        if (race->o.check != NULL &&
            (code = race->o.check((struct sockaddr *)&ss, race->o.check_arg,
                                  why, sizeof why)) != 0) {
            log_info("connect: %s%s: %s; not connecting", race->role,
                     race->host, why);
            if (race->denied_error == 0) {
                race->denied_error = code;
                snprintf(race->denied, sizeof race->denied, "%s%.64s: %.180s",
                         race->role, race->host, why);
            }
            connect_note_failure(race, peer, "refused by the policy");
            continue;
        }
        fd = connect_open(race, &ss, sslen);
        if (fd < 0) {
            connect_note_failure(race, peer, strerror(errno));
            continue;
        }
        if ((a = calloc(1, sizeof *a)) == NULL) {
            close(fd);
            connect_race_fail_later(race, HCONN_ENO_MEMORY);
            return;
        }
        race->attempts[race->nattempts++] = a;
        *a = (struct connect_attempt){.fd = fd, .index = pos, .race = race};
        a->event = event_new(race->base, fd, EV_WRITE, connect_attempt_cb, a);
        if (a->event == NULL || event_add(a->event, NULL) < 0) {
            close(fd);
            a->fd = -1;
            connect_race_fail_later(race, HCONN_ENO_MEMORY);
            return;
        }
        race->nactive++;
        log_debug("connect: %s%s: trying %s (attempt %zu)", race->role,
                  race->host, peer, race->nattempts);
        /* With a fixed source port the next attempt waits for this one's
         * failure instead of the delay. The timer runs even when no
         * address is left: one may still come with the other family. */
        if (race->o.source_port == 0) {
            tv = timeval_of(race->o.attempt_delay);
            evtimer_add(race->delay_timer, &tv);
        }
        return;
    }
    if (race->nactive == 0 && !race->more_coming)
        connect_race_fail_later(race,
                                race->nattempts == 0 && race->denied_error != 0
                                    ? race->denied_error
                                    : HCONN_ECONNECT_FAILED);
}

/* The attempt delay passed without a winner: the next address joins. */
static void
connect_delay_cb(evutil_socket_t fd, short what, void *arg)
{
    connect_race_step(arg);
}

/* Makes room for want addresses in list and attempts. */
static int
connect_race_grow(struct connect_race *race, size_t want)
{
    struct sockaddr_storage *list;
    struct connect_attempt **attempts;

    if (want <= race->cap)
        return 0;
    if ((list = realloc(race->list, want * sizeof *list)) == NULL)
        return -1;
    race->list = list;
    if ((attempts = realloc(race->attempts, want * sizeof *attempts)) == NULL)
        return -1;
    race->attempts = attempts;
    race->cap = want;
    return 0;
}

/* Puts addrs' addresses not in the list yet behind the ones tried, and
 * orders everything untried again (RFC 8305 §4). Returns -1 when out of
 * memory. */
static int
connect_race_merge(struct connect_race *race, const struct resolve_addrs *addrs)
{
    size_t fresh = 0, untried, *order;
    struct sockaddr_storage *tail;

    if (connect_race_grow(race, race->n + addrs->n + 1) < 0)
        return -1;
    for (size_t i = 0; i < addrs->n; i++) {
        bool known = false;

        for (size_t j = 0; j < race->n + fresh && !known; j++)
            known = memcmp(&race->list[j], &addrs->addr[i],
                           sizeof addrs->addr[i]) == 0;
        if (!known)
            race->list[race->n + fresh++] = addrs->addr[i];
    }
    untried = race->n + fresh - race->next;
    tail = malloc((untried + 1) * sizeof *tail);
    order = malloc((untried + 1) * sizeof *order);
    if (tail == NULL || order == NULL) {
        free(tail);
        free(order);
        return -1;
    }
    memcpy(tail, race->list + race->next, untried * sizeof *tail);
    connect_order(tail, untried, order);
    for (size_t i = 0; i < untried; i++)
        race->list[race->next + i] = tail[order[i]];
    race->n += fresh;
    free(tail);
    free(order);
    return 0;
}

struct connect_race *
connect_race_start(struct event_base *base, struct resolve_addrs *addrs,
                   const struct connect_options *o, connect_race_cb cb,
                   void *arg)
{
    struct connect_race *race = calloc(1, sizeof *race);

    if (race == NULL)
        return NULL;
    race->base = base;
    race->o = *o;
    race->more_coming = o->more_coming;
    snprintf(race->host, sizeof race->host, "%s", o->host);
    snprintf(race->role, sizeof race->role, "%s", o->role ? o->role : "");
    race->cb = cb;
    race->cb_arg = arg;
    race->delay_timer = evtimer_new(base, connect_delay_cb, race);
    if (race->delay_timer == NULL || connect_race_merge(race, addrs) < 0) {
        connect_race_free(race);
        return NULL;
    }
    /* The first attempt starts here; any outcome arrives from the loop. */
    connect_race_step(race);
    return race;
}

void
connect_race_add(struct connect_race *race, const struct resolve_addrs *addrs,
                 bool final)
{
    if (addrs != NULL && connect_race_merge(race, addrs) < 0) {
        connect_race_fail_later(race, HCONN_ENO_MEMORY);
        return;
    }
    race->more_coming = !final;
    /* Nothing running, or the delay already over: go at once. */
    if (race->nactive == 0 || !evtimer_pending(race->delay_timer, NULL))
        connect_race_step(race);
}

void
connect_race_describe(const struct connect_race *race, char *buf, size_t len)
{
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < race->nattempts && n + 2 < len; i++) {
        struct sockaddr_storage ss;
        socklen_t sslen;
        char peer[64];

        connect_addr_at(race, race->attempts[i]->index, &ss, &sslen);
        connect_format_addr((struct sockaddr *)&ss, peer, sizeof peer);
        snprintf(buf + n, len - n, "%s%s", i > 0 ? ", " : "", peer);
        n = strlen(buf);
    }
}

void
connect_race_free(struct connect_race *race)
{
    if (race == NULL)
        return;
    for (size_t i = 0; i < race->nattempts; i++) {
        connect_attempt_close(race->attempts[i]);
        free(race->attempts[i]);
    }
    if (race->delay_timer != NULL)
        event_free(race->delay_timer);
    if (race->done_event != NULL)
        event_free(race->done_event);
    free(race->list);
    free(race->attempts);
    free(race);
}
