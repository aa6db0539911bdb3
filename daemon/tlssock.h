/*
 * tlssock.h — a TLS connection's records read from and written to its
 * socket by OpenSSL itself, under libevent's OpenSSL filter bufferevent
 * (see tlssock.c).
 */
#ifndef HCONND_TLSSOCK_H
#define HCONND_TLSSOCK_H

#include <stdbool.h>

struct bufferevent;
struct ssl_st;

/* Makes ssl, just handed to filter (bufferevent_openssl_filter_new over a
 * socket bufferevent whose buffers are empty, before the filter is
 * enabled), read and write the socket directly: the socket bufferevent
 * below then only raises the filter's read, write and end events.
 * Returns 0, or -1 when out of memory (filter is then unusable: free
 * it). */
int tlssock_attach(struct bufferevent *filter, struct ssl_st *ssl);

/* True when ssl reads its socket through tlssock_attach. */
bool tlssock_attached(struct ssl_st *ssl);

/* The socket turned readable outside the filter's read event (a parked
 * connection's watch): ssl's next reads go to the kernel. */
void tlssock_woke(struct ssl_st *ssl);

/* True once a read of ssl's socket met the end of the stream or an
 * error (reported to the filter as an event, from the loop). */
bool tlssock_ended(struct ssl_st *ssl);

#endif
