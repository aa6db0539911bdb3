/*
 * pem.c — TLS files read in the client's own process and sent as inline
 * PEM (the "tls" object's ca_pem, cert_pem, key_pem; PROTOCOL.md 3.3).
 *
 * The daemon may run with other rights, and in another mount namespace
 * than a sandboxed client: the material the client means is what the
 * client itself can read, so the library reads it and sends the bytes.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hconn-private.h"

/* Appends the regular file path to *buf (*len bytes so far), at most max
 * bytes in all. Returns 0 or a code with err set. */
static int
pem_append(const char *path, char **buf, size_t *len, size_t max, char *err,
           size_t errlen)
{
    FILE *f = fopen(path, "re");
    struct stat st;
    char *nbuf;
    size_t n;

    if (f == NULL) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return HCONN_EIO_ERROR;
    }
    if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        snprintf(err, errlen, "%s is not a regular file", path);
        return HCONN_EINVALID_ARGUMENT;
    }
    if ((uint64_t)st.st_size + 1 > max - *len) {
        fclose(f);
        snprintf(err, errlen, "%s: more than %zu bytes of PEM", path, max);
        return HCONN_EINVALID_ARGUMENT;
    }
    if ((nbuf = realloc(*buf, *len + (size_t)st.st_size + 2)) == NULL) {
        fclose(f);
        snprintf(err, errlen, "out of memory");
        return HCONN_ENO_MEMORY;
    }
    *buf = nbuf;
    n = fread(*buf + *len, 1, (size_t)st.st_size, f);
    fclose(f);
    *len += n;
    (*buf)[(*len)++] = '\n';
    (*buf)[*len] = '\0';
    return 0;
}

/* True for OpenSSL's hashed names: 8 hex digits, '.', digits. */
static bool
pem_hashed_name(const char *s)
{
    size_t i;

    for (i = 0; i < 8; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    if (s[8] != '.' || s[9] == '\0')
        return false;
    for (i = 9; s[i] != '\0'; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

int
hconn_pem_read(const char *path, bool directory, size_t max, char **out,
               char *err, size_t errlen)
{
    size_t len = 0;
    DIR *dir;
    struct dirent *e;
    int rc = 0;

    *out = NULL;
    if (!directory)
        return pem_append(path, out, &len, max, err, errlen);
    if ((dir = opendir(path)) == NULL) {
        snprintf(err, errlen, "cannot read the directory %s: %s", path,
                 strerror(errno));
        return HCONN_EIO_ERROR;
    }
    while (rc == 0 && (e = readdir(dir)) != NULL) {
        char file[HCONN_MAX_PATH + 300];

        if (!pem_hashed_name(e->d_name))
            continue;
        snprintf(file, sizeof file, "%s/%s", path, e->d_name);
        rc = pem_append(file, out, &len, max, err, errlen);
    }
    closedir(dir);
    if (rc == 0 && *out == NULL) {
        snprintf(err, errlen, "%s holds no hashed certificate (HASH.N)", path);
        rc = HCONN_EINVALID_ARGUMENT;
    }
    if (rc < 0) {
        free(*out);
        *out = NULL;
    }
    return rc;
}
