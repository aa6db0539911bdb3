/*
 * url.h — split an http(s) URL into the parts a request needs. Pure.
 *
 * Shared by hconnd (the protocol's "url" field) and the hconn command.
 */
#ifndef HCONN_URL_H
#define HCONN_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define URL_HOST_MAX   255   /* longest DNS name / address literal accepted */
#define URL_TARGET_MAX 65535 /* longest request-target accepted */

struct url {
    bool tls;                        /* scheme was https */
    char host[URL_HOST_MAX + 1];     /* host, IPv6 without brackets */
    uint16_t port;                   /* explicit port, else 80/443 */
    bool port_given;                 /* the URL named a port */
    char target[URL_TARGET_MAX + 1]; /* request-target: path and query,
                                        "/" when the URL has no path; a
                                        copy, since the fragment is cut */
};

/*
 * Parses "http[s]://host[:port][/path][?query]" (scheme case-insensitive,
 * IPv6 literals in brackets, no userinfo, no fragment sent). Returns 0, or
 * HCONN_EINVALID_URL with a message naming the problem in err.
 */
int url_parse(const char *s, struct url *out, char *err, size_t errlen);

/* An http(s) URL's parts, pointing into the string url_split read. */
struct url_parts {
    bool tls;         /* scheme was https */
    uint16_t port;    /* explicit port, else 80/443 */
    bool port_given;  /* the URL named a port */
    const char *host; /* host[0..host_len), IPv6 without brackets */
    size_t host_len;
    const char *path; /* path and query, the fragment cut */
    size_t path_len;
    bool slash; /* path is empty or a query alone: the request-target
                   is "/" followed by it, else path itself */
};

/* url_parse's checks and errors, with nothing copied: what it would copy
 * is left in place in s. */
int url_split(const char *s, struct url_parts *out, char *err, size_t errlen);
/* url_split of s[0..len), which holds no NUL (a caller that knows the
 * length saves a strlen). */
int url_splitn(const char *s, size_t len, struct url_parts *out, char *err,
               size_t errlen);

/*
 * Parses an HTTPConnection-style host argument: "host", "host:port",
 * "[v6]" or "[v6]:port". port > 0 overrides; else the one in host, else
 * default_port. Returns 0 or HCONN_EINVALID_URL with err filled.
 */
int url_parse_authority(const char *host, int port, uint16_t default_port,
                        char out_host[URL_HOST_MAX + 1], uint16_t *out_port,
                        char *err, size_t errlen);

#define URL_USERINFO_MAX 255  /* "user:password" of a proxy URL, decoded */
#define URL_PROXY_PORT   1080 /* curl's default for a proxy URL */

/* A forward proxy, from a URL as curl's -x and http_proxy take it. */
struct url_proxy {
    char host[URL_HOST_MAX + 1]; /* IPv6 without brackets */
    uint16_t port;               /* explicit, else URL_PROXY_PORT */
    /* "Basic <base64 of user:password>" (RFC 7617) when the URL had
     * userinfo, else "": the Proxy-Authorization value. */
    char authorization[6 + (URL_USERINFO_MAX + 2) / 3 * 4 + 1];
};

/*
 * Parses "[http://][user[:password]@]host[:port][/]": userinfo
 * percent-decoded, at most URL_USERINFO_MAX bytes. Returns 0, or
 * HCONN_EINVALID_URL with err naming the problem (another scheme, a path,
 * a bad host or port).
 */
int url_parse_proxy(const char *s, struct url_proxy *out, char *err,
                    size_t errlen);

/* Formats "Basic <base64 of userpass>" (RFC 7617) into out, which has
 * room for url_proxy.authorization. Returns 0, or HCONN_EINVALID_URL when
 * userpass is over URL_USERINFO_MAX bytes. */
int url_basic_credentials(const char *userpass, size_t n,
                          char out[6 + (URL_USERINFO_MAX + 2) / 3 * 4 + 1]);

/* Checks a host name or address literal (no brackets) for use on the wire:
 * non-empty, at most URL_HOST_MAX bytes, no control, space or URL delimiter
 * bytes. Returns 0 or HCONN_EINVALID_URL with err filled. */
int url_check_host(const char *host, char *err, size_t errlen);

#endif
