/*
 * tlsfiles.h — a request's TLS path fields (ca_file, ca_path, cert_file,
 * key_file) read with the client's own credentials, without blocking,
 * and handed on as inline PEM (see tlsfiles.c for why).
 */
#ifndef HCONND_TLSFILES_H
#define HCONND_TLSFILES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "wire.h"

/* Whose rights open the files. */
struct tlsfiles_client {
    int fd; /* the client's socket: its groups (SO_PEERGROUPS) */
    uid_t uid;
    gid_t gid;
};

struct tlsfiles_blob;

/* The material read (shared with the cache of what files gave); the
 * request's wire_tls points into it. */
struct tlsfiles_material {
    struct tlsfiles_blob *ca;
    struct tlsfiles_blob *cert;
    struct tlsfiles_blob *key;
};

/* True when o names any file. */
bool tlsfiles_named(const struct wire_tls *o);

/*
 * Reads the files o names as client c and points o's PEM fields at what
 * was read (the path fields become NULL). Returns 0 with *out NULL when o
 * names none, 0 with *out to free with tlsfiles_free (after o's last use),
 * or HCONN_ETLS_FAILED (cannot open: one message whether missing or
 * unreadable; not a regular file; no hashed certificate in ca_path),
 * HCONN_ELIMIT_EXCEEDED (over the PEM field's cap), HCONN_EDENIED (the
 * daemon cannot act as c's uid) or HCONN_ENO_MEMORY, with why naming
 * the field and path.
 */
int tlsfiles_load(const struct tlsfiles_client *c, struct wire_tls *o,
                  struct tlsfiles_material **out, char *why, size_t whylen);

void tlsfiles_free(struct tlsfiles_material *m);

#endif
