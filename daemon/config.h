/*
 * config.h — hconnd's settings: every limit and timeout, with its default
 * and the key that sets it in the JSON config file (hconnd --config FILE).
 */
#ifndef HCONND_CONFIG_H
#define HCONND_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct policy;

/* An origin of "h2c_origins": HTTP/2 with prior knowledge in plain text. */
struct config_origin {
    char *host; /* lower case; IPv6 without brackets */
    uint16_t port;
};

struct config {
    char *socket_path;               /* "socket": where to listen */
    size_t max_message_bytes;        /* one protocol line */
    size_t max_inline_body_bytes;    /* "data": N on a request */
    size_t max_clients;              /* concurrent client connections */
    size_t max_clients_per_uid;      /* clients of one uid; 0: no limit
                                        but max_clients; CONFIG_AUTO:
                                        a quarter of max_clients */
    size_t max_held_bytes;           /* bytes held for all clients */
    size_t max_held_bytes_per_uid;   /* ... for the clients of one uid;
                                        CONFIG_AUTO: a quarter of
                                        max_held_bytes */
    size_t max_queued_reply_bytes;   /* replies queued for one client
                                        before it is no longer read */
    size_t max_requests_per_client;  /* requests in flight per client */
    size_t max_response_head_bytes;  /* a response head, all lines and
                                        interim responses together */
    size_t pool_max_per_origin;      /* upstream connections per origin */
    size_t pool_max_total;           /* upstream connections in all */
    size_t stream_buffer_bytes;      /* per-request response high-water mark */
    size_t client_body_buffer_bytes; /* request bodies held per client */
    size_t tls_max_contexts;         /* TLS contexts kept built */
    double connect_timeout;          /* seconds: DNS + TCP connect */
    double read_timeout;             /* seconds without a response byte */
    double max_read_timeout;         /* longest read timeout a request may
                                        ask for; 0: no ceiling */
    double request_timeout;          /* seconds for a whole exchange, lease
                                        to last byte; 0: none */
    double idle_timeout;             /* seconds a pooled connection is kept */
    double expect_timeout;           /* seconds to wait for 100 Continue */
    double shutdown_timeout;         /* seconds to drain on SIGTERM */
    size_t drain_max_bytes;          /* bytes an HTTP/1.1 response whose client
                                        left may still be read to keep its
                                        connection (drain.c); 0: close at once */
    double drain_timeout;            /* seconds such a response may take; 0:
                                        close at once */
    /* The default CONNECT proxies, as the environment variables of the
     * same names (see proxy.h); NULL: take them from the environment. */
    char *http_proxy;
    char *https_proxy;
    char *no_proxy;
    char *hosts_file;      /* "hosts_file": names resolved before DNS,
                              after /etc/hosts; read at start and on
                              SIGHUP; NULL: /etc/hosts alone */
    struct policy *policy; /* "policy"; NULL: the built-in allow-all */

    /* Resolving and connecting (resolve.c, connect.c). */
    char *resolv_conf;            /* "resolv_conf": nameservers, search list
                                     and options (resolv.conf(5), with
                                     "nameserver ADDR:PORT" allowed); read
                                     at start and on SIGHUP; NULL:
                                     /etc/resolv.conf */
    double connect_attempt_delay; /* seconds between Happy Eyeballs
                                     attempts (RFC 8305) */
    double dns_ttl_min;           /* seconds an answer is kept at least */
    double dns_ttl_max;           /* ... and at most, whatever its TTL */
    double dns_negative_ttl;      /* seconds NXDOMAIN / no address is kept */
    size_t dns_cache_size;        /* names in the DNS cache */

    /* HTTP/2 (codec_http2.c). */
    bool http2;                        /* "http2": offer h2 by ALPN */
    struct config_origin *h2c_origins; /* "h2c_origins": plain-text
                                          origins spoken to in h2c */
    size_t n_h2c_origins;
    size_t h2_max_concurrent_streams; /* our cap on streams per h2
                                         connection */
};

/* A default computed from other keys (see config_clients_per_uid). */
#define CONFIG_AUTO ((size_t)-1)

/* max_clients_per_uid in effect: its value, or a quarter of max_clients
 * (at least 1) by default. */
size_t config_clients_per_uid(const struct config *cfg);

/* max_held_bytes_per_uid in effect: its value, or a quarter of
 * max_held_bytes by default. */
size_t config_held_bytes_per_uid(const struct config *cfg);

/* Fills cfg with the documented defaults; socket_path from the
 * environment (see config_default_socket). */
void config_init(struct config *cfg);

/* Frees what config_init/config_load allocated. */
void config_clear(struct config *cfg);

/* The default socket: the build's system path when running as root,
 * else $XDG_RUNTIME_DIR/hconnd.sock when that is set. */
const char *config_default_socket(void);

/* Applies the keys of the JSON object in path over cfg. Returns 0, or -1
 * with err naming the file, key and problem (cfg then unchanged). */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen);

/* Reloads (SIGHUP): fills next with the defaults, then the keys in path;
 * socket_path keeps cur's value (it applies at start only).
 * The caller swaps next in, so a bad file leaves cur untouched. Returns 0,
 * or -1 with err as config_load (next then holds nothing). */
int config_reload(const struct config *cur, struct config *next,
                  const char *path, char *err, size_t errlen);

/* True when host:port is listed in "h2c_origins" (host compared without
 * case, IPv6 without brackets). */
bool config_is_h2c_origin(const struct config *cfg, const char *host,
                          uint16_t port);

/* The path read when --config is not given, if the file exists. */
#define CONFIG_DEFAULT_PATH "/etc/hconnd/hconnd.json"

#endif
