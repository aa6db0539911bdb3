/*
 * tlsfiles.c — the path fields of a request's "tls" object (ca_file,
 * ca_path, cert_file, key_file), read with the client's own credentials
 * and turned into the inline PEM fields the TLS code uses.
 *
 * Why: hconnd may run as root and serves clients of every uid. A path a
 * client names must open only if the client itself could open it, or the
 * daemon lends it its own rights (a root-only CA file as trust anchor, a
 * root-only key as identity). So each file is opened with the daemon's
 * file-system uid, gid and groups switched to the client's (setfsuid and
 * setfsgid are per thread, and the daemon has one thread), on every
 * request: the pool key then names the material, so a client that cannot
 * read the file never gets as far as a pooled connection made with it.
 *
 * Nothing here may block the event loop: files open with O_NONBLOCK (a
 * FIFO opens at once instead of waiting for a writer), only regular files
 * are read, and each is read up to the size cap of its PEM field. A file
 * that does not exist and one the client may not read give the same
 * message, so the reply tells the client nothing it could not learn
 * itself.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hconn_error.h"
#include "tlsfiles.h"
#include "tlsfiles_cache.h"

#define TLSFILES_MAX_GROUPS  256  /* supplementary groups taken over */
#define TLSFILES_MAX_ENTRIES 4096 /* directory entries looked at */

static uid_t tlsfiles_euid; /* the daemon's, read once */
static bool tlsfiles_euid_known;

/* The file-system identity in effect before tlsfiles_become. */
struct tlsfiles_saved {
    bool switched;
    uid_t fsuid;
    gid_t fsgid;
    gid_t groups[TLSFILES_MAX_GROUPS];
    int ngroups;
};

/* Takes on the client's file-system identity: uid, gid and the groups
 * the kernel recorded for the socket (SO_PEERGROUPS). Returns 0, or -1
 * when the daemon cannot act as that uid (then nothing changed). */
static int
tlsfiles_become(const struct tlsfiles_client *c, struct tlsfiles_saved *saved)
{
    gid_t groups[TLSFILES_MAX_GROUPS];
    socklen_t len = sizeof groups;
    int ngroups = 0;

    saved->switched = false;
    if (!tlsfiles_euid_known) { /* hconnd never changes it */
        tlsfiles_euid = geteuid();
        tlsfiles_euid_known = true;
    }
    if (c->uid == tlsfiles_euid)
        return 0; /* the client's user is the daemon's (root, or the
                     user a per-user daemon runs as) */
    if (tlsfiles_euid != 0)
        return -1; /* cannot take another uid's rights */
    if (getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0)
        ngroups = (int)(len / sizeof *groups);
    saved->ngroups = getgroups(TLSFILES_MAX_GROUPS, saved->groups);
    if (saved->ngroups < 0)
        return -1;
    if (setgroups((size_t)ngroups, groups) < 0)
        return -1;
    saved->fsgid = (gid_t)setfsgid(c->gid);
    saved->fsuid = (uid_t)setfsuid(c->uid);
    saved->switched = true;
    /* setfsuid reports the old value only; the new one must read back. */
    if ((uid_t)setfsuid((uid_t)-1) != c->uid ||
        (gid_t)setfsgid((gid_t)-1) != c->gid)
        return -1;
    return 0;
}

/* Back to the daemon's own identity. */
static void
tlsfiles_restore(const struct tlsfiles_saved *saved)
{
    if (!saved->switched)
        return;
    setfsuid(saved->fsuid);
    setfsgid(saved->fsgid);
    if (setgroups((size_t)saved->ngroups, saved->groups) < 0)
        abort(); /* running on with a client's groups would be worse */
}

/* Checks that st, the file open as field, is a regular file within cap
 * (len bytes already taken). Returns 0, HCONN_ETLS_FAILED or
 * HCONN_ELIMIT_EXCEEDED, with why set. */
static int
tlsfiles_check_stat(const struct stat *st, const char *field, const char *path,
                    size_t len, size_t cap, char *why, size_t whylen)
{
    if (!S_ISREG(st->st_mode)) {
        snprintf(why, whylen, "tls.%s \"%.512s\": not a regular file", field,
                 path);
        return HCONN_ETLS_FAILED;
    }
    if ((uint64_t)st->st_size > cap - len) {
        snprintf(why, whylen,
                 "tls.%s \"%.512s\": more than %zu bytes of PEM material "
                 "(the limit of tls.%.4s_pem)",
                 field, path, cap, field);
        return HCONN_ELIMIT_EXCEEDED;
    }
    return 0;
}

/* Reads up to size bytes of fd into buf; returns how many it got (a file
 * that shrank since fstat gives fewer, one that grew is cut: bounded). */
static size_t
tlsfiles_read_upto(int fd, char *buf, size_t size)
{
    size_t got = 0;
    ssize_t n;

    while (got < size) {
        n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

/* Appends up to the cap of the regular file open on fd to *buf (*len
 * bytes so far). Returns 0, HCONN_ETLS_FAILED (not a regular file, a read
 * error) or HCONN_ELIMIT_EXCEEDED, with why set. */
static int
tlsfiles_read_fd(int fd, const char *field, const char *path, char **buf,
                 size_t *len, size_t cap, char *why, size_t whylen)
{
    struct stat st;
    char *nbuf;
    int rc;

    if (fstat(fd, &st) < 0)
        st.st_mode = 0;
    if ((rc = tlsfiles_check_stat(&st, field, path, *len, cap, why, whylen)) <
        0)
        return rc;
    nbuf = realloc(*buf, *len + (size_t)st.st_size + 2);
    if (nbuf == NULL) {
        snprintf(why, whylen, "out of memory reading tls.%s", field);
        return HCONN_ENO_MEMORY;
    }
    *buf = nbuf;
    *len += tlsfiles_read_upto(fd, *buf + *len, (size_t)st.st_size);
    (*buf)[(*len)++] = '\n'; /* PEM blocks of several files stay apart */
    (*buf)[*len] = '\0';
    return 0;
}

/* The one message for every file the client cannot open. */
static int
tlsfiles_cannot_open(const struct tlsfiles_client *c, const char *field,
                     const char *path, char *why, size_t whylen)
{
    snprintf(why, whylen,
             "tls.%s \"%.512s\": cannot open it as uid %ld (no such file, or "
             "not readable by that uid)",
             field, path, (long)c->uid);
    return HCONN_ETLS_FAILED;
}

/* The PEM of one named file, opened as the client on every request (that
 * open is the access check) but read only when the cache has no entry
 * for the version of the file it reached. Not fstatat and
 * faccessat(AT_EACCESS), one call fewer: they resolve the path twice, so
 * a client swapping a symlink between them could pass the check on its
 * own file and reach the cached entry of one it cannot read. The fstat
 * of the open descriptor names exactly the file the check admitted. */
static int
tlsfiles_read_file(const struct tlsfiles_client *c, const char *field,
                   const char *path, size_t cap, struct tlsfiles_blob **out,
                   char *why, size_t whylen)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    struct timespec began;
    struct stat st;
    size_t got;
    int rc;

    *out = NULL;
    if (fd < 0)
        return tlsfiles_cannot_open(c, field, path, why, whylen);
    if (fstat(fd, &st) < 0)
        st.st_mode = 0;
    if ((rc = tlsfiles_check_stat(&st, field, path, 0, cap, why, whylen)) < 0 ||
        (*out = tlsfiles_cache_get(field, path, &st)) != NULL) {
        close(fd);
        return rc;
    }
    if ((*out = tlsfiles_blob_new((size_t)st.st_size + 1)) == NULL) {
        close(fd);
        snprintf(why, whylen, "out of memory reading tls.%s", field);
        return HCONN_ENO_MEMORY;
    }
    clock_gettime(CLOCK_REALTIME, &began);
    got = tlsfiles_read_upto(fd, (*out)->pem, (size_t)st.st_size);
    close(fd);
    (*out)->len = got;
    (*out)->pem[(*out)->len++] = '\n'; /* as a ca_path bundle's files */
    tlsfiles_blob_seal(*out);
    /* A file that changed size under the read is not remembered. */
    if (got == (size_t)st.st_size)
        tlsfiles_cache_put(field, path, &st, &began, *out);
    return 0;
}

/* True for the names OpenSSL's hashed directory lookup reads: 8 hex
 * digits, a dot, a decimal sequence number. */
static bool
tlsfiles_hashed_name(const char *name)
{
    size_t i;

    for (i = 0; i < 8; i++)
        if (!((name[i] >= '0' && name[i] <= '9') ||
              (name[i] >= 'a' && name[i] <= 'f')))
            return false;
    if (name[8] != '.' || name[9] == '\0')
        return false;
    for (i = 9; name[i] != '\0'; i++)
        if (name[i] < '0' || name[i] > '9')
            return false;
    return true;
}

/* Reads every hashed certificate of a ca_path directory into one PEM
 * bundle, under one size cap for them all. */
static int
tlsfiles_read_dir(const struct tlsfiles_client *c, const char *path, size_t cap,
                  struct tlsfiles_blob **blob, char *why, size_t whylen)
{
    int dfd = open(path, O_RDONLY | O_NONBLOCK | O_DIRECTORY | O_CLOEXEC);
    DIR *dir;
    struct dirent *e;
    size_t len = 0, seen = 0;
    char *bundle = NULL, **out = &bundle;
    int rc = 0;

    *blob = NULL;
    if (dfd < 0)
        return tlsfiles_cannot_open(c, "ca_path", path, why, whylen);
    if ((dir = fdopendir(dfd)) == NULL) {
        close(dfd);
        return tlsfiles_cannot_open(c, "ca_path", path, why, whylen);
    }
    while (rc == 0 && (e = readdir(dir)) != NULL &&
           seen++ < TLSFILES_MAX_ENTRIES) {
        int fd;

        if (!tlsfiles_hashed_name(e->d_name))
            continue;
        fd = openat(dirfd(dir), e->d_name,
                    O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
            continue; /* as OpenSSL: an unreadable entry is not a match */
        rc = tlsfiles_read_fd(fd, "ca_path", path, out, &len, cap, why, whylen);
        close(fd);
    }
    closedir(dir);
    if (rc == 0 && *out == NULL) {
        snprintf(why, whylen,
                 "tls.ca_path \"%.512s\": no hashed certificate (HASH.N) the "
                 "client can read in it",
                 path);
        rc = HCONN_ETLS_FAILED;
    }
    if (rc == 0 && (*blob = tlsfiles_blob_new(len)) == NULL) {
        snprintf(why, whylen, "out of memory reading tls.ca_path");
        rc = HCONN_ENO_MEMORY;
    }
    if (rc == 0) {
        memcpy((*blob)->pem, bundle, len);
        (*blob)->len = len;
        tlsfiles_blob_seal(*blob);
    }
    free(bundle);
    return rc;
}

void
tlsfiles_free(struct tlsfiles_material *m)
{
    if (m == NULL)
        return;
    tlsfiles_blob_unref(m->ca);
    tlsfiles_blob_unref(m->cert);
    tlsfiles_blob_unref(m->key);
    free(m);
}

bool
tlsfiles_named(const struct wire_tls *o)
{
    return o->ca_file != NULL || o->ca_path != NULL || o->cert_file != NULL ||
           o->key_file != NULL;
}

int
tlsfiles_load(const struct tlsfiles_client *c, struct wire_tls *o,
              struct tlsfiles_material **out, char *why, size_t whylen)
{
    struct tlsfiles_material *m;
    struct tlsfiles_saved saved;
    int rc = 0;

    *out = NULL;
    if (!tlsfiles_named(o))
        return 0;
    if ((m = calloc(1, sizeof *m)) == NULL) {
        snprintf(why, whylen, "out of memory");
        return HCONN_ENO_MEMORY;
    }
    if (tlsfiles_become(c, &saved) < 0) {
        tlsfiles_restore(&saved);
        free(m);
        snprintf(why, whylen,
                 "tls: hconnd cannot open files with the rights of uid %ld",
                 (long)c->uid);
        return HCONN_EDENIED;
    }
    if (o->ca_file != NULL)
        rc = tlsfiles_read_file(c, "ca_file", o->ca_file, WIRE_MAX_CA_PEM,
                                &m->ca, why, whylen);
    else if (o->ca_path != NULL)
        rc = tlsfiles_read_dir(c, o->ca_path, WIRE_MAX_CA_PEM, &m->ca, why,
                               whylen);
    if (rc == 0 && o->cert_file != NULL)
        rc = tlsfiles_read_file(c, "cert_file", o->cert_file, WIRE_MAX_CERT_PEM,
                                &m->cert, why, whylen);
    if (rc == 0 && o->key_file != NULL)
        rc = tlsfiles_read_file(c, "key_file", o->key_file, WIRE_MAX_KEY_PEM,
                                &m->key, why, whylen);
    tlsfiles_restore(&saved);
    if (rc < 0) {
        tlsfiles_free(m);
        return rc;
    }
    /* From here on the request carries the material, as if inline. */
    if (m->ca != NULL) {
        o->ca_pem = m->ca->pem;
        o->ca_pem_digest = m->ca->digest;
    }
    if (m->cert != NULL) {
        o->cert_pem = m->cert->pem;
        o->cert_pem_digest = m->cert->digest;
    }
    if (m->key != NULL) {
        o->key_pem = m->key->pem;
        o->key_pem_digest = m->key->digest;
    }
    o->ca_file = o->ca_path = o->cert_file = o->key_file = NULL;
    *out = m;
    return 0;
}
