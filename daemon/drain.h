/*
 * drain.h — keeping a pooled HTTP/1.1 connection whose client left while
 * its response was still coming: the rest of the response is read into
 * nowhere, within drain_max_bytes and drain_timeout, and the connection
 * goes back to the pool as after any clean response (as nginx and curl
 * let a short remainder finish rather than pay a new handshake).
 */
#ifndef HCONND_DRAIN_H
#define HCONND_DRAIN_H

#include <sys/types.h>

struct codec_stream;
struct server;

/* The exchange owning s, whose request went out whole, is being freed
 * with its response unfinished (its client left). Takes s over: it is
 * drained when the codec can tell the rest of the response apart and it
 * fits the limits, else aborted (an HTTP/2 stream is reset alone). The
 * drain lasts at most drain_timeout, never more than read_timeout (0:
 * none). uid is the departed client's, for its stats. */
void drain_start(struct server *srv, struct codec_stream *s, uid_t uid,
                 double read_timeout);

/* Ends every drain, closing its connection (shutdown: nothing waits on
 * them). */
void drain_stop_all(void);

#endif
