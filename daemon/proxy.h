/*
 * proxy.h — CONNECT tunnels: the daemon-wide default proxies and the
 * CONNECT request that opens a tunnel.
 *
 * The defaults follow curl's environment variables, read from the
 * config file's keys of the same names first, then from hconnd's own
 * environment: http_proxy (lower case only: HTTP_PROXY may be set by a
 * CGI caller's Proxy: header) for http:// origins, https_proxy or
 * HTTPS_PROXY for https:// origins, and no_proxy or NO_PROXY for the
 * hosts that go direct. A request's own "proxy" object wins over them and
 * "proxy": false bypasses them.
 */
#ifndef HCONND_PROXY_H
#define HCONND_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "url.h"

struct config;
struct wire_header;

struct proxy_defaults {
    struct url_proxy *http;  /* for http:// origins; NULL: direct */
    struct url_proxy *https; /* for https:// origins; NULL: direct */
    char *no_proxy;          /* comma-separated exceptions, or NULL */
};

/*
 * Sets d from cfg's http_proxy, https_proxy and no_proxy, each falling
 * back to the environment when the key is absent; an empty value means
 * none. Returns 0, or HCONN_EINVALID_URL with err naming the setting (d
 * then holds nothing).
 */
int proxy_defaults_load(struct proxy_defaults *d, const struct config *cfg,
                        char *err, size_t errlen);

/* Frees what proxy_defaults_load allocated; d holds nothing after. */
void proxy_defaults_clear(struct proxy_defaults *d);

/*
 * The default proxy for an origin, or NULL to go direct: none is set for
 * its scheme, or host matches no_proxy ("*" for all; otherwise each entry
 * is a host name matching itself and its subdomains, a leading "." being
 * optional, or an address literal matching itself; case-insensitive).
 */
const struct url_proxy *proxy_default_for(const struct proxy_defaults *d,
                                          bool tls, const char *host);

/*
 * Formats "CONNECT host:port HTTP/1.1" with "Host: host:port" and the
 * given fields (and Proxy-Authorization: authorization unless they carry
 * one; authorization may be NULL or ""), as http.client's set_tunnel
 * sends it.
 * Returns 0 with *head a malloc'd buffer of *len bytes, or
 * HCONN_EINVALID_HEADER / HCONN_ENO_MEMORY with err filled.
 */
int proxy_format_connect(const char *host, uint16_t port,
                         const struct wire_header *headers, size_t nheaders,
                         const char *authorization, char **head, size_t *len,
                         char *err, size_t errlen);

#endif
