/*
 * cli-redirect.c — URL arithmetic for the hconn command's -L: where a
 * Location points (RFC 3986 section 5.2, with its dot-segment removal),
 * which method the next hop uses (curl's rules), and curl's default
 * scheme for a URL typed without one.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli-redirect.h"

bool
redirect_status(int status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 ||
           status == 308;
}

bool
redirect_to_get(int status, const char *method)
{
    if (status == 303)
        return strcmp(method, "HEAD") != 0;
    return (status == 301 || status == 302) && strcmp(method, "POST") == 0;
}

/* Length of a "scheme:" prefix of s (RFC 3986: ALPHA *( ALPHA / DIGIT /
 * "+" / "-" / "." ) ":"), the colon included; 0 when there is none. */
static size_t
redirect_scheme_len(const char *s)
{
    size_t i = 0;

    if (!isalpha((unsigned char)s[0]))
        return 0;
    while (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' ||
           s[i] == '.')
        i++;
    return s[i] == ':' ? i + 1 : 0;
}

char *
redirect_default_scheme(const char *url)
{
    size_t n = redirect_scheme_len(url);
    char *out;

    if (n > 0 && strncmp(url + n, "//", 2) == 0)
        return strdup(url);
    if (asprintf(&out, "http://%s", url) < 0)
        return NULL;
    return out;
}

/* RFC 3986 5.2.4: removes "." and ".." segments from path, in place
 * (the result is never longer). Returns 0, or -1 when out of memory. */
static int
redirect_remove_dots(char *path)
{
    char *copy = strdup(path), *in = copy;
    size_t out = 0;

    if (!copy)
        return -1;
    while (*in) {
        if (strncmp(in, "../", 3) == 0) {
            in += 3;
        } else if (strncmp(in, "./", 2) == 0) {
            in += 2;
        } else if (strncmp(in, "/./", 3) == 0) {
            in += 2;
        } else if (strcmp(in, "/.") == 0) {
            in[1] = '\0';
        } else if (strncmp(in, "/../", 4) == 0 || strcmp(in, "/..") == 0) {
            /* "/../x" -> "/x", "/.." -> "/" */
            if (in[3] == '/') {
                in += 3;
            } else {
                in += 2;
                *in = '/';
            }
            while (out > 0 && path[--out] != '/')
                ;
        } else if (strcmp(in, ".") == 0 || strcmp(in, "..") == 0) {
            in += strlen(in);
        } else {
            do
                path[out++] = *in++;
            while (*in && *in != '/');
        }
    }
    path[out] = '\0';
    free(copy);
    return 0;
}

char *
redirect_resolve(const char *base, const char *location)
{
    size_t scheme = redirect_scheme_len(base), auth_end, path_end, q;
    size_t loc_len = strcspn(location, "#");
    char *out = NULL, *path, *query;
    int n;

    if (scheme == 0 || strncmp(base + scheme, "//", 2) != 0)
        return NULL;
    auth_end = scheme + 2 + strcspn(base + scheme + 2, "/?#");
    path_end = auth_end + strcspn(base + auth_end, "?#");
    if (redirect_scheme_len(location) > 0) {
        n = asprintf(&out, "%.*s", (int)loc_len, location);
    } else if (strncmp(location, "//", 2) == 0) {
        n = asprintf(&out, "%.*s%.*s", (int)scheme, base, (int)loc_len,
                     location);
    } else if (location[0] == '/') {
        n = asprintf(&out, "%.*s%.*s", (int)auth_end, base, (int)loc_len,
                     location);
    } else if (location[0] == '?') {
        n = asprintf(&out, "%.*s%s%.*s", (int)path_end, base,
                     path_end == auth_end ? "/" : "", (int)loc_len, location);
    } else if (loc_len == 0) {
        n = asprintf(&out, "%.*s",
                     (int)(auth_end + strcspn(base + auth_end, "#")), base);
    } else {
        /* Merge: the base path up to its last '/', then the reference. */
        size_t dir = path_end;

        while (dir > auth_end && base[dir - 1] != '/')
            dir--;
        n = asprintf(&out, "%.*s%s%.*s", (int)dir, base,
                     dir == auth_end ? "/" : "", (int)loc_len, location);
    }
    if (n < 0)
        return NULL;
    /* Dot segments of the path, the query left alone. */
    scheme = redirect_scheme_len(out);
    if (strncmp(out + scheme, "//", 2) != 0)
        return out;
    path = out + scheme + 2 + strcspn(out + scheme + 2, "/?");
    q = strcspn(path, "?");
    query = strdup(path + q);
    if (!query) {
        free(out);
        return NULL;
    }
    path[q] = '\0';
    if (redirect_remove_dots(path) < 0) {
        free(query);
        free(out);
        return NULL;
    }
    memmove(path + strlen(path), query, strlen(query) + 1);
    free(query);
    return out;
}
