/*
 * config.c — defaults and the JSON config file. The key table is the one
 * list of settings: loading, validation and the docs follow it.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "hconn-build.h"
#include "policy.h"

enum config_type {
    CONFIG_SIZE,
    CONFIG_SECONDS,
    CONFIG_STRING,
    CONFIG_POLICY,
    CONFIG_BOOL,
    CONFIG_ORIGINS,
};

struct config_key {
    const char *name;
    enum config_type type;
    size_t offset;
    double min, max; /* accepted range for numbers */
};

#define KEY(name, type, field, min, max)                                       \
    {                                                                          \
        name, type, offsetof(struct config, field), min, max                   \
    }
static const struct config_key config_keys[] = {
    KEY("socket", CONFIG_STRING, socket_path, 0, 0),
    KEY("max_message_bytes", CONFIG_SIZE, max_message_bytes, 1024, 1 << 30),
    KEY("max_inline_body_bytes", CONFIG_SIZE, max_inline_body_bytes, 0,
        1ULL << 40),
    KEY("max_clients", CONFIG_SIZE, max_clients, 1, 1 << 20),
    KEY("max_clients_per_uid", CONFIG_SIZE, max_clients_per_uid, 0, 1 << 20),
    KEY("max_held_bytes", CONFIG_SIZE, max_held_bytes, 1 << 20, 1ULL << 40),
    KEY("max_held_bytes_per_uid", CONFIG_SIZE, max_held_bytes_per_uid, 1 << 16,
        1ULL << 40),
    KEY("max_queued_reply_bytes", CONFIG_SIZE, max_queued_reply_bytes, 4096,
        1 << 30),
    KEY("max_requests_per_client", CONFIG_SIZE, max_requests_per_client, 1,
        1 << 20),
    KEY("max_response_head_bytes", CONFIG_SIZE, max_response_head_bytes, 1024,
        1 << 30),
    KEY("pool_max_per_origin", CONFIG_SIZE, pool_max_per_origin, 1, 1 << 20),
    KEY("pool_max_total", CONFIG_SIZE, pool_max_total, 1, 1 << 20),
    KEY("stream_buffer_bytes", CONFIG_SIZE, stream_buffer_bytes, 4096, 1 << 30),
    KEY("client_body_buffer_bytes", CONFIG_SIZE, client_body_buffer_bytes, 4096,
        1ULL << 40),
    KEY("tls_max_contexts", CONFIG_SIZE, tls_max_contexts, 1, 1 << 20),
    KEY("connect_timeout", CONFIG_SECONDS, connect_timeout, 0.001, 86400),
    KEY("read_timeout", CONFIG_SECONDS, read_timeout, 0.001, 86400),
    KEY("max_read_timeout", CONFIG_SECONDS, max_read_timeout, 0, 86400),
    KEY("request_timeout", CONFIG_SECONDS, request_timeout, 0, 86400),
    KEY("idle_timeout", CONFIG_SECONDS, idle_timeout, 0.001, 86400),
    KEY("expect_timeout", CONFIG_SECONDS, expect_timeout, 0, 86400),
    KEY("shutdown_timeout", CONFIG_SECONDS, shutdown_timeout, 0, 86400),
    KEY("drain_max_bytes", CONFIG_SIZE, drain_max_bytes, 0, 1 << 30),
    KEY("drain_timeout", CONFIG_SECONDS, drain_timeout, 0, 60),
    KEY("http_proxy", CONFIG_STRING, http_proxy, 0, 0),
    KEY("https_proxy", CONFIG_STRING, https_proxy, 0, 0),
    KEY("no_proxy", CONFIG_STRING, no_proxy, 0, 0),
    KEY("hosts_file", CONFIG_STRING, hosts_file, 0, 0),
    KEY("resolv_conf", CONFIG_STRING, resolv_conf, 0, 0),
    KEY("connect_attempt_delay", CONFIG_SECONDS, connect_attempt_delay, 0.01,
        2),
    KEY("dns_ttl_min", CONFIG_SECONDS, dns_ttl_min, 0, 86400),
    KEY("dns_ttl_max", CONFIG_SECONDS, dns_ttl_max, 0, 604800),
    KEY("dns_negative_ttl", CONFIG_SECONDS, dns_negative_ttl, 0, 86400),
    KEY("dns_cache_size", CONFIG_SIZE, dns_cache_size, 1, 1 << 24),
    KEY("policy", CONFIG_POLICY, policy, 0, 0),
    KEY("http2", CONFIG_BOOL, http2, 0, 0),
    KEY("h2c_origins", CONFIG_ORIGINS, h2c_origins, 0, 0),
    KEY("h2_max_concurrent_streams", CONFIG_SIZE, h2_max_concurrent_streams, 1,
        1000),
};
#undef KEY

const char *
config_default_socket(void)
{
    static char path[4096];
    const char *runtime = getenv("XDG_RUNTIME_DIR");

    if (geteuid() == 0 || runtime == NULL || *runtime == '\0')
        return HCONN_DEFAULT_SOCKET;
    snprintf(path, sizeof path, "%s/hconnd.sock", runtime);
    return path;
}

size_t
config_clients_per_uid(const struct config *cfg)
{
    if (cfg->max_clients_per_uid != CONFIG_AUTO)
        return cfg->max_clients_per_uid;
    return cfg->max_clients >= 4 ? cfg->max_clients / 4 : 1;
}

size_t
config_held_bytes_per_uid(const struct config *cfg)
{
    if (cfg->max_held_bytes_per_uid != CONFIG_AUTO)
        return cfg->max_held_bytes_per_uid;
    return cfg->max_held_bytes / 4;
}

void
config_init(struct config *cfg)
{
    *cfg = (struct config){
        .socket_path = strdup(config_default_socket()),
        .max_message_bytes = 1024 * 1024,
        .max_inline_body_bytes = 64 * 1024 * 1024,
        .max_clients = 4096,
        .max_clients_per_uid = CONFIG_AUTO,
        .max_held_bytes = (size_t)512 << 20,
        .max_held_bytes_per_uid = CONFIG_AUTO,
        .max_queued_reply_bytes = 1024 * 1024,
        .max_requests_per_client = 1024,
        .max_response_head_bytes = 1024 * 1024,
        .pool_max_per_origin = 16,
        .pool_max_total = 512,
        .stream_buffer_bytes = 256 * 1024,
        .client_body_buffer_bytes = 16 * 1024 * 1024,
        .tls_max_contexts = 64,
        .connect_timeout = 10,
        .read_timeout = 60,
        .request_timeout = 0,
        .idle_timeout = 60,
        .expect_timeout = 1, /* curl's --expect100-timeout */
        .shutdown_timeout = 10,
        .drain_max_bytes = 64 * 1024,
        .drain_timeout = 1,
        .connect_attempt_delay = 0.25, /* RFC 8305 §8 */
        .dns_ttl_min = 1,
        .dns_ttl_max = 300,
        .dns_negative_ttl = 5,
        .dns_cache_size = 4096,
        .http2 = true,
        .h2_max_concurrent_streams = 100,
    };
}

/* Frees an array of origins. */
static void
config_free_origins(struct config_origin *o, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(o[i].host);
    free(o);
}

/* A deep copy of n origins; NULL when n is 0 or out of memory. */
static struct config_origin *
config_copy_origins(const struct config_origin *o, size_t n)
{
    struct config_origin *c = n > 0 ? calloc(n, sizeof *c) : NULL;

    for (size_t i = 0; c != NULL && i < n; i++) {
        c[i].port = o[i].port;
        if ((c[i].host = strdup(o[i].host)) == NULL) {
            config_free_origins(c, i);
            return NULL;
        }
    }
    return c;
}

/* Parses "host:port" or "[v6]:port" into o (host lower-cased, brackets
 * dropped). Returns 0, or -1 when s is not of that form. */
static int
config_parse_origin(const char *s, struct config_origin *o)
{
    const char *colon, *hs = s, *he;
    char *end;
    unsigned long port;

    if (*s == '[') {
        he = strchr(s, ']');
        if (he == NULL || he[1] != ':')
            return -1;
        hs = s + 1;
        colon = he + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
            return -1;
        he = colon;
    }
    if (he == hs || !isdigit((unsigned char)colon[1]))
        return -1;
    port = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || port == 0 || port > 65535)
        return -1;
    for (const char *p = hs; p < he; p++)
        if (!isalnum((unsigned char)*p) && strchr(".-_:%", *p) == NULL)
            return -1;
    o->host = strndup(hs, (size_t)(he - hs));
    if (o->host == NULL)
        return -1;
    for (char *p = o->host; *p != '\0'; p++)
        *p = (char)tolower((unsigned char)*p);
    o->port = (uint16_t)port;
    return 0;
}

/* Replaces cfg's "h2c_origins" with the array value. */
static int
config_set_origins(struct config *cfg, const char *name, json_t *value,
                   char *err, size_t errlen)
{
    struct config_origin *o;
    size_t n = json_is_array(value) ? json_array_size(value) : 0, i;

    if (!json_is_array(value)) {
        snprintf(err, errlen, "\"%s\" must be an array of \"host:port\"", name);
        return -1;
    }
    o = calloc(n > 0 ? n : 1, sizeof *o);
    if (o == NULL) {
        snprintf(err, errlen, "\"%s\": out of memory", name);
        return -1;
    }
    for (i = 0; i < n; i++) {
        json_t *v = json_array_get(value, i);

        if (!json_is_string(v) ||
            config_parse_origin(json_string_value(v), &o[i]) < 0) {
            snprintf(err, errlen,
                     "\"%s\"[%zu] must be a string \"host:port\" "
                     "(IPv6 as \"[::1]:8080\")",
                     name, i);
            config_free_origins(o, i);
            return -1;
        }
    }
    config_free_origins(cfg->h2c_origins, cfg->n_h2c_origins);
    cfg->h2c_origins = o;
    cfg->n_h2c_origins = n;
    return 0;
}

bool
config_is_h2c_origin(const struct config *cfg, const char *host, uint16_t port)
{
    for (size_t i = 0; i < cfg->n_h2c_origins; i++)
        if (cfg->h2c_origins[i].port == port &&
            strcasecmp(cfg->h2c_origins[i].host, host) == 0)
            return true;
    return false;
}

void
config_clear(struct config *cfg)
{
    free(cfg->socket_path);
    free(cfg->http_proxy);
    free(cfg->https_proxy);
    free(cfg->no_proxy);
    free(cfg->hosts_file);
    free(cfg->resolv_conf);
    policy_free(cfg->policy);
    config_free_origins(cfg->h2c_origins, cfg->n_h2c_origins);
    cfg->h2c_origins = NULL;
    cfg->n_h2c_origins = 0;
    cfg->socket_path = cfg->http_proxy = cfg->https_proxy = cfg->no_proxy =
        cfg->hosts_file = cfg->resolv_conf = NULL;
    cfg->policy = NULL;
}

/* A copy of an optional string setting; NULL stays NULL. */
static char *
config_strdup(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

/* Stores one JSON value into the field key describes, range-checked. */
static int
config_set(struct config *cfg, const struct config_key *key, json_t *value,
           char *err, size_t errlen)
{
    char *field = (char *)cfg + key->offset;
    double n;

    if (key->type == CONFIG_POLICY) {
        struct policy *p = policy_parse(value, err, errlen);

        if (p == NULL)
            return -1;
        policy_free(cfg->policy);
        cfg->policy = p;
        return 0;
    }
    if (key->type == CONFIG_ORIGINS)
        return config_set_origins(cfg, key->name, value, err, errlen);
    if (key->type == CONFIG_BOOL) {
        if (!json_is_boolean(value)) {
            snprintf(err, errlen, "\"%s\" must be true or false", key->name);
            return -1;
        }
        *(bool *)field = json_is_true(value);
        return 0;
    }
    if (key->type == CONFIG_STRING) {
        if (!json_is_string(value)) {
            snprintf(err, errlen, "\"%s\" must be a string", key->name);
            return -1;
        }
        free(*(char **)field);
        *(char **)field = strdup(json_string_value(value));
        return 0;
    }
    if (!json_is_number(value) ||
        (key->type == CONFIG_SIZE && !json_is_integer(value))) {
        snprintf(err, errlen, "\"%s\" must be %s", key->name,
                 key->type == CONFIG_SIZE ? "an integer" : "a number");
        return -1;
    }
    n = json_number_value(value);
    if (n < key->min || n > key->max) {
        snprintf(err, errlen, "\"%s\" must be between %g and %g", key->name,
                 key->min, key->max);
        return -1;
    }
    if (key->type == CONFIG_SIZE)
        *(size_t *)field = (size_t)json_integer_value(value);
    else
        *(double *)field = n;
    return 0;
}

int
config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
    struct config next = *cfg;
    json_error_t jerr;
    const char *name;
    json_t *root, *value;
    char detail[256];

    root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        snprintf(err, errlen, "%s:%d:%d: %s", path, jerr.line, jerr.column,
                 jerr.text);
        return -1;
    }
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: the top level must be an object", path);
        goto fail;
    }
    next.socket_path = strdup(cfg->socket_path);
    next.http_proxy = config_strdup(cfg->http_proxy);
    next.https_proxy = config_strdup(cfg->https_proxy);
    next.no_proxy = config_strdup(cfg->no_proxy);
    next.hosts_file = config_strdup(cfg->hosts_file);
    next.resolv_conf = config_strdup(cfg->resolv_conf);
    next.policy = NULL; /* cfg's, unless the file has its own */
    next.h2c_origins =
        config_copy_origins(cfg->h2c_origins, cfg->n_h2c_origins);
    if (next.h2c_origins == NULL)
        next.n_h2c_origins = 0;
    json_object_foreach(root, name, value)
    {
        const struct config_key *key = NULL;

        for (size_t i = 0; i < sizeof config_keys / sizeof *config_keys; i++)
            if (strcmp(config_keys[i].name, name) == 0)
                key = &config_keys[i];
        if (key == NULL) {
            snprintf(err, errlen, "%s: unknown key \"%s\"", path, name);
            goto fail_next;
        }
        if (config_set(&next, key, value, detail, sizeof detail) < 0) {
            snprintf(err, errlen, "%s: %s", path, detail);
            goto fail_next;
        }
    }
    if (next.dns_ttl_min > next.dns_ttl_max) {
        snprintf(err, errlen,
                 "%s: \"dns_ttl_min\" (%g) is above \"dns_ttl_max\" (%g)", path,
                 next.dns_ttl_min, next.dns_ttl_max);
        goto fail_next;
    }
    json_decref(root);
    if (next.policy == NULL) {
        next.policy = cfg->policy;
        cfg->policy = NULL;
    }
    config_clear(cfg);
    *cfg = next;
    return 0;

fail_next:
    config_clear(&next);
fail:
    json_decref(root);
    return -1;
}

int
config_reload(const struct config *cur, struct config *next, const char *path,
              char *err, size_t errlen)
{
    config_init(next);
    if (config_load(next, path, err, errlen) < 0) {
        config_clear(next);
        return -1;
    }
    free(next->socket_path);
    next->socket_path = config_strdup(cur->socket_path);
    return 0;
}
