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
#include <unistd.h>

#include "hconn_error.h"
#include "tlsfiles.h"

#define TLSFILES_MAX_GROUPS  256  /* supplementary groups taken over */
#define TLSFILES_MAX_ENTRIES 4096 /* directory entries looked at */

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
    if (c->uid == geteuid())
        return 0; /* the client's user is the daemon's (root, or the
                     user a per-user daemon runs as) */
    if (geteuid() != 0)
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

/* Appends up to the cap of the regular file open on fd to *buf (*len
 * bytes so far). Returns 0, HCONN_ETLS_FAILED (not a regular file, a read
 * error) or HCONN_ELIMIT_EXCEEDED, with why set. */
static int
tlsfiles_read_fd(int fd, const char *field, const char *path, char **buf,
                 size_t *len, size_t cap, char *why, size_t whylen)
{
    struct stat st;
    char *nbuf;
    ssize_t n;

    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "tls.%s \"%.512s\": not a regular file", field,
                 path);
        return HCONN_ETLS_FAILED;
    }
    if ((uint64_t)st.st_size > cap - *len) {
        snprintf(why, whylen,
                 "tls.%s \"%.512s\": more than %zu bytes of PEM material "
                 "(the limit of tls.%.4s_pem)",
                 field, path, cap, field);
        return HCONN_ELIMIT_EXCEEDED;
    }
    nbuf = realloc(*buf, *len + (size_t)st.st_size + 2);
    if (nbuf == NULL) {
        snprintf(why, whylen, "out of memory reading tls.%s", field);
        return HCONN_ENO_MEMORY;
    }
    *buf = nbuf;
    /* A file that grew since fstat is cut at its size then: bounded. */
    for (size_t got = 0; got < (size_t)st.st_size; got += (size_t)n) {
        n = read(fd, *buf + *len + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) {
            n = 0;
            continue;
        }
        if (n <= 0) {
            st.st_size = (off_t)got;
            break;
        }
    }
    *len += (size_t)st.st_size;
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

/* Reads one named file into a new buffer. */
static int
tlsfiles_read_file(const struct tlsfiles_client *c, const char *field,
                   const char *path, size_t cap, char **out, char *why,
                   size_t whylen)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    size_t len = 0;
    int rc;

    *out = NULL;
    if (fd < 0)
        return tlsfiles_cannot_open(c, field, path, why, whylen);
    rc = tlsfiles_read_fd(fd, field, path, out, &len, cap, why, whylen);
    close(fd);
    return rc;
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
                  char **out, char *why, size_t whylen)
{
    int dfd = open(path, O_RDONLY | O_NONBLOCK | O_DIRECTORY | O_CLOEXEC);
    DIR *dir;
    struct dirent *e;
    size_t len = 0, seen = 0;
    int rc = 0;

    *out = NULL;
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
    if (rc < 0) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

void
tlsfiles_free(struct tlsfiles_material *m)
{
    if (m == NULL)
        return;
    free(m->ca_pem);
    free(m->cert_pem);
    free(m->key_pem);
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
                                &m->ca_pem, why, whylen);
    else if (o->ca_path != NULL)
        rc = tlsfiles_read_dir(c, o->ca_path, WIRE_MAX_CA_PEM, &m->ca_pem, why,
                               whylen);
    if (rc == 0 && o->cert_file != NULL)
        rc = tlsfiles_read_file(c, "cert_file", o->cert_file, WIRE_MAX_CERT_PEM,
                                &m->cert_pem, why, whylen);
    if (rc == 0 && o->key_file != NULL)
        rc = tlsfiles_read_file(c, "key_file", o->key_file, WIRE_MAX_KEY_PEM,
                                &m->key_pem, why, whylen);
    tlsfiles_restore(&saved);
    if (rc < 0) {
        tlsfiles_free(m);
        return rc;
    }
    /* From here on the request carries the material, as if inline. */
    if (m->ca_pem != NULL)
        o->ca_pem = m->ca_pem;
    if (m->cert_pem != NULL)
        o->cert_pem = m->cert_pem;
    if (m->key_pem != NULL)
        o->key_pem = m->key_pem;
    o->ca_file = o->ca_path = o->cert_file = o->key_file = NULL;
    *out = m;
    return 0;
}
