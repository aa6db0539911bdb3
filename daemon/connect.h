/*
 * connect.h — racing a name's addresses to one TCP connection, Happy
 * Eyeballs v2 (RFC 8305): IPv6 first, families interleaved, the next
 * attempt after the connection attempt delay or as soon as the one before
 * fails; the first to connect wins and the others are closed. Every
 * address passes the caller's check (the policy) before it is tried.
 */
#ifndef HCONND_CONNECT_H
#define HCONND_CONNECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct connect_race;
struct event_base;
struct resolve_addrs;

/* The outcome: a connected, non-blocking socket fd (the callee owns it)
 * and the address that won as "addr:port" / "[v6]:port"; or fd -1 with
 * HCONN_E... and a message naming what the user typed and each address
 * tried. Never called from within connect_race_start. */
typedef void (*connect_race_cb)(int fd, const char *peer, int error,
                                const char *message, void *arg);

/* Refuses an address before it is tried (NULL: any will do): 0, or an
 * HCONN_E... with why set. */
typedef int (*connect_check_cb)(const struct sockaddr *sa, const void *arg,
                                char *why, size_t len);

struct connect_options {
    const char *host;       /* as the user typed it, for messages */
    const char *role;       /* "" or "proxy ", for messages */
    uint16_t port;          /* the port to connect to */
    double attempt_delay;   /* seconds before the next attempt starts */
    connect_check_cb check; /* NULL: every address may be tried */
    const void *check_arg;
    /* Where connections come from (bound before connect): has_source_addr
     * limits the race to that address's family; source_port (0: any)
     * makes attempts one at a time, since two cannot share the port. */
    bool has_source_addr;
    struct sockaddr_storage source_addr;
    uint16_t source_port;
    /* The other family's addresses are still being resolved: when every
     * attempt has failed, wait for connect_race_add rather than fail. */
    bool more_coming;
};

/* Starts racing addrs (copied); cb reports the outcome later. Returns
 * NULL when out of memory (cb will not run). */
struct connect_race *connect_race_start(struct event_base *base,
                                        struct resolve_addrs *addrs,
                                        const struct connect_options *o,
                                        connect_race_cb cb, void *arg);

/* The whole answer arrived (RFC 8305 §3, §4): its addresses not known
 * yet join the untried ones, in order again; final says no more will
 * come. addrs NULL: none (the lookup failed for the other family). */
void connect_race_add(struct connect_race *race,
                      const struct resolve_addrs *addrs, bool final);

/* The addresses attempted so far, for a timeout's message: "[::1]:80,
 * 127.0.0.1:80". */
void connect_race_describe(const struct connect_race *race, char *buf,
                           size_t len);

/* Stops the race, closing every socket it still holds; cb will not run. */
void connect_race_free(struct connect_race *race);

/* RFC 8305 §4: the order to try n addresses in: IPv6 first, then
 * alternating families, each family's own order kept. Fills order[0..n)
 * with indexes into addrs. */
void connect_order(const struct sockaddr_storage *addrs, size_t n,
                   size_t *order);

/* "addr:port" or "[v6]:port" for sa, in buf. */
void connect_format_addr(const struct sockaddr *sa, char *buf, size_t len);

#endif
