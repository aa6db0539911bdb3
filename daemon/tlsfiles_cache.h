/*
 * tlsfiles_cache.h — what TLS files gave, kept so that a file a client
 * names again, unchanged, is neither read nor hashed again (see
 * tlsfiles_cache.c). Whether the client may read the file is not the
 * cache's business: tlsfiles.c opens it as the client on every request.
 */
#ifndef HCONND_TLSFILES_CACHE_H
#define HCONND_TLSFILES_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <time.h>

#include "tls.h"

/* One file's PEM (or a ca_path bundle), shared by the cache and by every
 * request using it; its digest is the pool key's. */
struct tlsfiles_blob {
    unsigned refs;
    size_t len; /* bytes in pem, its NUL not counted */
    char digest[TLS_DIGEST_HEX];
    char pem[];
};

/* A blob with room for len bytes and a NUL, one reference; NULL when out
 * of memory. */
struct tlsfiles_blob *tlsfiles_blob_new(size_t len);

/* Sets b's digest once its pem is complete. */
void tlsfiles_blob_seal(struct tlsfiles_blob *b);

struct tlsfiles_blob *tlsfiles_blob_ref(struct tlsfiles_blob *b);
void tlsfiles_blob_unref(struct tlsfiles_blob *b);

/* The blob cached for path as field (a field's name, static) whose open
 * file is st, a new reference; NULL when there is none or the entry must
 * be read again. */
struct tlsfiles_blob *tlsfiles_cache_get(const char *field, const char *path,
                                         const struct stat *st);

/* Remembers b (takes a reference of its own) as what path gave as field
 * when its open file was st and reading began at began. */
void tlsfiles_cache_put(const char *field, const char *path,
                        const struct stat *st, const struct timespec *began,
                        struct tlsfiles_blob *b);

/* Forgets every entry (at exit). */
void tlsfiles_cache_clear(void);

/* Entries and bytes cached now. */
size_t tlsfiles_cache_entries(void);
size_t tlsfiles_cache_bytes(void);

#endif
