/*
 * proxy.c — the default proxies (config, then environment), no_proxy
 * matching, and the CONNECT request head.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "hconn_error.h"
#include "http1.h"
#include "proxy.h"
#include "wire.h"

/* The setting's value: the config key when set, else the first of the
 * environment variables that is set. */
static const char *
proxy_setting(const char *configured, const char *var, const char *var2)
{
    const char *v = configured;

    if (v == NULL)
        v = getenv(var);
    if (v == NULL && var2 != NULL)
        v = getenv(var2);
    return v;
}

/* Parses one default proxy setting; empty means none. */
static int
proxy_load_route(struct url_proxy **out, const char *name, const char *value,
                 char *err, size_t errlen)
{
    char detail[256];
    int rc;

    *out = NULL;
    if (value == NULL || *value == '\0')
        return 0;
    if ((*out = malloc(sizeof **out)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return HCONN_ENO_MEMORY;
    }
    rc = url_parse_proxy(value, *out, detail, sizeof detail);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", name, detail);
        free(*out);
        *out = NULL;
    }
    return rc;
}

int
proxy_defaults_load(struct proxy_defaults *d, const struct config *cfg,
                    char *err, size_t errlen)
{
    const char *no_proxy = proxy_setting(cfg->no_proxy, "no_proxy", "NO_PROXY");
    int rc;

    memset(d, 0, sizeof *d);
    rc = proxy_load_route(&d->http, "http_proxy",
                          proxy_setting(cfg->http_proxy, "http_proxy", NULL),
                          err, errlen);
    if (rc == 0)
        rc = proxy_load_route(
            &d->https, "https_proxy",
            proxy_setting(cfg->https_proxy, "https_proxy", "HTTPS_PROXY"), err,
            errlen);
    if (rc == 0 && no_proxy != NULL && *no_proxy != '\0' &&
        (d->no_proxy = strdup(no_proxy)) == NULL) {
        snprintf(err, errlen, "out of memory");
        rc = HCONN_ENO_MEMORY;
    }
    if (rc != 0)
        proxy_defaults_clear(d);
    return rc;
}

void
proxy_defaults_clear(struct proxy_defaults *d)
{
    free(d->http);
    free(d->https);
    free(d->no_proxy);
    memset(d, 0, sizeof *d);
}

/* True when host is entry[0..n) or one of its subdomains. */
static bool
proxy_host_matches(const char *host, const char *entry, size_t n)
{
    size_t hlen = strlen(host);

    if (n > 0 && entry[0] == '.') {
        entry++;
        n--;
    }
    if (n == 0 || hlen < n || strncasecmp(host + hlen - n, entry, n) != 0)
        return false;
    return hlen == n || host[hlen - n - 1] == '.';
}

const struct url_proxy *
proxy_default_for(const struct proxy_defaults *d, bool tls, const char *host)
{
    const struct url_proxy *route = tls ? d->https : d->http;
    const char *p = d->no_proxy;

    if (route == NULL || p == NULL)
        return route;
    while (*p != '\0') {
        size_t n;

        p += strspn(p, ", \t");
        n = strcspn(p, ", \t");
        if (n == 1 && *p == '*')
            return NULL;
        if (n > 0 && proxy_host_matches(host, p, n))
            return NULL;
        p += n;
    }
    return route;
}

int
proxy_format_connect(const char *host, uint16_t port,
                     const struct wire_header *headers, size_t nheaders,
                     const char *authorization, char **head, size_t *len,
                     char *err, size_t errlen)
{
    char authority[URL_HOST_MAX + 16];
    struct http1_header *fields = calloc(nheaders + 2, sizeof *fields);
    struct http1_request req = {
        .method = "CONNECT",
        .tunnel = true,
        .target = authority,
        .host = host,
        .port = port,
        .headers = fields,
        .skip_host = true,
        .skip_accept_encoding = true,
        .content_length = -1,
    };
    bool has_authorization = false;
    int rc;

    if (fields == NULL) {
        snprintf(err, errlen, "out of memory");
        return HCONN_ENO_MEMORY;
    }
    /* RFC 9110 §9.3.6: authority-form target, and Host names it too. */
    snprintf(authority, sizeof authority,
             strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
    fields[req.nheaders++] =
        (struct http1_header){"Host", 4, authority, strlen(authority)};
    for (size_t i = 0; i < nheaders; i++) {
        if (strcasecmp(headers[i].name, "Proxy-Authorization") == 0)
            has_authorization = true;
        fields[req.nheaders++] =
            (struct http1_header){headers[i].name, strlen(headers[i].name),
                                  headers[i].value, strlen(headers[i].value)};
    }
    if (authorization != NULL && *authorization != '\0' && !has_authorization)
        fields[req.nheaders++] = (struct http1_header){
            "Proxy-Authorization", 19, authorization, strlen(authorization)};
    rc = http1_format_request(&req, head, len, err, errlen);
    free(fields);
    return rc;
}
