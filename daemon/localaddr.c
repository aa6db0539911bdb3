/*
 * localaddr.c — the machine's own addresses, kept current.
 *
 * A service listening on 0.0.0.0 answers on every address of the machine,
 * not only on 127.0.0.1: a rule that refuses loopback must refuse those
 * addresses too (policy_check_address counts them as loopback). They are
 * read with getifaddrs at start and read again whenever the kernel
 * announces an address change on a non-blocking NETLINK_ROUTE socket
 * (RTM_NEWADDR, RTM_DELADDR) watched by the event loop. Where netlink
 * cannot be opened, the list is read again every LOCALADDR_POLL seconds
 * instead.
 */
#include <errno.h>
#include <ifaddrs.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "localaddr.h"
#include "log.h"

#define LOCALADDR_POLL 5 /* seconds between reads without netlink */

struct localaddr {
    struct policy_own_addrs own; /* the current list */
    bool failing;                /* the last read failed (logged once) */
    int fd;                      /* NETLINK_ROUTE, or -1 */
    struct event *ev;            /* fd readable, or the poll timer */
};

/* Reads the addresses again; keeps the old list when that fails. */
static void
localaddr_refresh(struct localaddr *la)
{
    struct ifaddrs *ifs, *i;
    struct sockaddr_storage *addrs;
    size_t n = 0;

    if (getifaddrs(&ifs) < 0) {
        if (!la->failing)
            log_warn("cannot list the machine's addresses: %s; keeping the "
                     "%zu known",
                     strerror(errno), la->own.n);
        la->failing = true;
        return;
    }
    la->failing = false;
    for (i = ifs; i != NULL; i = i->ifa_next)
        n += i->ifa_addr != NULL && (i->ifa_addr->sa_family == AF_INET ||
                                     i->ifa_addr->sa_family == AF_INET6);
    addrs = calloc(n + 1, sizeof *addrs);
    if (addrs == NULL) {
        freeifaddrs(ifs);
        log_warn("out of memory listing the machine's addresses");
        return;
    }
    n = 0;
    for (i = ifs; i != NULL; i = i->ifa_next) {
        if (i->ifa_addr == NULL)
            continue;
        if (i->ifa_addr->sa_family == AF_INET)
            memcpy(&addrs[n++], i->ifa_addr, sizeof(struct sockaddr_in));
        else if (i->ifa_addr->sa_family == AF_INET6)
            memcpy(&addrs[n++], i->ifa_addr, sizeof(struct sockaddr_in6));
    }
    freeifaddrs(ifs);
    free(la->own.addrs);
    la->own.addrs = addrs;
    la->own.n = n;
    log_debug("the machine has %zu addresses of its own", n);
}

/* Netlink says something changed: drain the socket; read the list again
 * if an address came or went (or messages were lost). */
static void
localaddr_netlink_cb(evutil_socket_t fd, short what, void *arg)
{
    struct localaddr *la = arg;
    char buf[8192];
    bool changed = false;
    ssize_t n;

    while ((n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) != 0) {
        if (n < 0) {
            /* ENOBUFS: the kernel dropped messages; assume a change. */
            changed |= errno == ENOBUFS;
            if (errno == EINTR || errno == ENOBUFS)
                continue;
            break;
        }
        int len = (int)n;

        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, len);
             h = NLMSG_NEXT(h, len))
            changed |=
                h->nlmsg_type == RTM_NEWADDR || h->nlmsg_type == RTM_DELADDR;
    }
    if (changed)
        localaddr_refresh(la);
}

static void
localaddr_poll_cb(evutil_socket_t fd, short what, void *arg)
{
    localaddr_refresh(arg);
}

/* Opens the netlink socket for address changes; -1 when it cannot. */
static int
localaddr_netlink_open(void)
{
    struct sockaddr_nl sa = {
        .nl_family = AF_NETLINK,
        .nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR,
    };
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    NETLINK_ROUTE);

    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

struct localaddr *
localaddr_new(struct event_base *base)
{
    struct localaddr *la = calloc(1, sizeof *la);
    struct timeval poll = {.tv_sec = LOCALADDR_POLL};

    if (la == NULL)
        return NULL;
    /* Subscribe first, then read: a change in between is not missed. */
    la->fd = localaddr_netlink_open();
    if (la->fd >= 0) {
        la->ev = event_new(base, la->fd, EV_READ | EV_PERSIST,
                           localaddr_netlink_cb, la);
        if (la->ev != NULL)
            event_add(la->ev, NULL);
    } else {
        log_warn("cannot watch address changes (netlink: %s); reading the "
                 "machine's addresses every %d s",
                 strerror(errno), LOCALADDR_POLL);
        la->ev = event_new(base, -1, EV_PERSIST, localaddr_poll_cb, la);
        if (la->ev != NULL)
            event_add(la->ev, &poll);
    }
    if (la->ev == NULL) {
        localaddr_free(la);
        return NULL;
    }
    localaddr_refresh(la);
    return la;
}

void
localaddr_free(struct localaddr *la)
{
    if (la == NULL)
        return;
    if (la->ev != NULL)
        event_free(la->ev);
    if (la->fd >= 0)
        close(la->fd);
    free(la->own.addrs);
    free(la);
}

const struct policy_own_addrs *
localaddr_addrs(const struct localaddr *la)
{
    return la != NULL ? &la->own : NULL;
}
