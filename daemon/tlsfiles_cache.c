/*
 * tlsfiles_cache.c — the PEM that TLS files gave, by what identifies the
 * file's contents, so that the file a client names on every request
 * (hconn --cacert, a library's ca_file) is read and hashed once, not per
 * request.
 *
 * An entry is found by field, path and the identity and version of the
 * file the client's own open reached: device, inode, size, modification
 * and change times (nanoseconds). Any write, truncation, chmod or rename
 * onto the path changes one of them. One case it cannot see: a write in
 * the same timestamp tick as the read (file systems stamp from a coarse
 * clock, some only to the second). So an entry whose change time is
 * within TLSFILES_RACY_SECONDS of when its read began is not trusted: the
 * file is read again on every request until it has been quiet that long,
 * as git treats "racily clean" index entries.
 *
 * The cache is shared by every client and charged to none, so it is
 * bounded: at most TLSFILES_CACHE_ENTRIES entries and TLSFILES_CACHE_BYTES
 * of PEM, least recently used out first. A client naming many files only
 * pushes others' entries out, which costs them a read. Blobs are counted
 * references: a request keeps its blob after the entry is gone.
 */
#include <stdlib.h>
#include <string.h>

#include "tlsfiles_cache.h"

#define TLSFILES_CACHE_ENTRIES 32
#define TLSFILES_CACHE_BYTES   (2 * 1024 * 1024)
#define TLSFILES_RACY_SECONDS  2

struct tlsfiles_entry {
    struct tlsfiles_entry *prev, *next; /* most recently used first */
    const char *field;
    char *path;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
    bool racy; /* changed too close to its read: read again */
    struct tlsfiles_blob *blob;
};

static struct tlsfiles_entry *tlsfiles_head, *tlsfiles_tail;
static size_t tlsfiles_count, tlsfiles_bytes;

struct tlsfiles_blob *
tlsfiles_blob_new(size_t len)
{
    struct tlsfiles_blob *b = malloc(sizeof *b + len + 1);

    if (b == NULL)
        return NULL;
    b->refs = 1;
    b->len = 0;
    b->digest[0] = '\0';
    b->pem[0] = '\0';
    return b;
}

void
tlsfiles_blob_seal(struct tlsfiles_blob *b)
{
    b->pem[b->len] = '\0';
    tls_digest(b->pem, b->digest);
}

struct tlsfiles_blob *
tlsfiles_blob_ref(struct tlsfiles_blob *b)
{
    b->refs++;
    return b;
}

void
tlsfiles_blob_unref(struct tlsfiles_blob *b)
{
    if (b != NULL && --b->refs == 0)
        free(b);
}

/* Whether two times are the same to the nanosecond. */
static bool
tlsfiles_same_time(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/* Takes e out of the recency list. */
static void
tlsfiles_unlink(struct tlsfiles_entry *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        tlsfiles_head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        tlsfiles_tail = e->prev;
    e->prev = e->next = NULL;
}

/* Puts e first in the recency list. */
static void
tlsfiles_push_front(struct tlsfiles_entry *e)
{
    e->prev = NULL;
    e->next = tlsfiles_head;
    if (tlsfiles_head != NULL)
        tlsfiles_head->prev = e;
    tlsfiles_head = e;
    if (tlsfiles_tail == NULL)
        tlsfiles_tail = e;
}

/* Unlinks and frees e. */
static void
tlsfiles_drop(struct tlsfiles_entry *e)
{
    tlsfiles_unlink(e);
    tlsfiles_count--;
    tlsfiles_bytes -= e->blob->len;
    tlsfiles_blob_unref(e->blob);
    free(e->path);
    free(e);
}

/* The entry for field and path, whatever version of the file it holds. */
static struct tlsfiles_entry *
tlsfiles_find(const char *field, const char *path)
{
    for (struct tlsfiles_entry *e = tlsfiles_head; e != NULL; e = e->next)
        if (strcmp(e->path, path) == 0 && strcmp(e->field, field) == 0)
            return e;
    return NULL;
}

struct tlsfiles_blob *
tlsfiles_cache_get(const char *field, const char *path, const struct stat *st)
{
    struct tlsfiles_entry *e = tlsfiles_find(field, path);

    if (e == NULL || e->racy || e->dev != st->st_dev || e->ino != st->st_ino ||
        e->size != st->st_size ||
        !tlsfiles_same_time(&e->mtime, &st->st_mtim) ||
        !tlsfiles_same_time(&e->ctime, &st->st_ctim))
        return NULL;
    if (e != tlsfiles_head) {
        tlsfiles_unlink(e);
        tlsfiles_push_front(e);
    }
    return tlsfiles_blob_ref(e->blob);
}

void
tlsfiles_cache_put(const char *field, const char *path, const struct stat *st,
                   const struct timespec *began, struct tlsfiles_blob *b)
{
    struct tlsfiles_entry *e = tlsfiles_find(field, path);

    if (e != NULL)
        tlsfiles_drop(e); /* an older version of the file */
    if (b->len > TLSFILES_CACHE_BYTES / 4)
        return; /* one bundle must not push everything else out */
    while (tlsfiles_tail != NULL &&
           (tlsfiles_count >= TLSFILES_CACHE_ENTRIES ||
            tlsfiles_bytes + b->len > TLSFILES_CACHE_BYTES))
        tlsfiles_drop(tlsfiles_tail);
    if ((e = calloc(1, sizeof *e)) == NULL)
        return;
    if ((e->path = strdup(path)) == NULL) {
        free(e);
        return;
    }
    e->field = field;
    e->dev = st->st_dev;
    e->ino = st->st_ino;
    e->size = st->st_size;
    e->mtime = st->st_mtim;
    e->ctime = st->st_ctim;
    /* A write in the same tick as began would leave ctime as it is. */
    e->racy = st->st_ctim.tv_sec >= began->tv_sec - TLSFILES_RACY_SECONDS;
    e->blob = tlsfiles_blob_ref(b);
    tlsfiles_push_front(e);
    tlsfiles_count++;
    tlsfiles_bytes += b->len;
}

void
tlsfiles_cache_clear(void)
{
    while (tlsfiles_head != NULL)
        tlsfiles_drop(tlsfiles_head);
}

size_t
tlsfiles_cache_entries(void)
{
    return tlsfiles_count;
}

size_t
tlsfiles_cache_bytes(void)
{
    return tlsfiles_bytes;
}
