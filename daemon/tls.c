/*
 * tls.c — OpenSSL client contexts and the per-origin session cache.
 *
 * Contexts are few (one per distinct trust/identity setting) and live as
 * long as the daemon; each is built once, so a ca_file is read once, not
 * per connection. Sessions are kept per pool origin key, which already
 * names every TLS setting, so a session is only ever offered to a server
 * reached with the same trust and identity it was made under.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "hconn_error.h"
#include "log.h"
#include "tls.h"

#define TLS_MAX_SESSIONS 4096 /* origins remembered for resumption */

struct tls_context {
    char *key; /* tls_settings_key of its settings */
    SSL_CTX *ctx;
    struct tls_context *next;
};

/* The session to offer the next connection to one origin. */
struct tls_slot {
    char *origin_key;
    SSL_SESSION *session; /* NULL until a server sent one */
    struct tls_slot *next;
};

struct tls {
    struct tls_context *contexts;
    struct tls_slot *slots;
    size_t nslots;
};

static const struct wire_tls tls_defaults = {.verify = true};

struct tls *
tls_new(void)
{
    return calloc(1, sizeof(struct tls));
}

void
tls_free(struct tls *t)
{
    if (t == NULL)
        return;
    while (t->contexts != NULL) {
        struct tls_context *c = t->contexts;

        t->contexts = c->next;
        SSL_CTX_free(c->ctx);
        free(c->key);
        free(c);
    }
    while (t->slots != NULL) {
        struct tls_slot *s = t->slots;

        t->slots = s->next;
        SSL_SESSION_free(s->session);
        free(s->origin_key);
        free(s);
    }
    free(t);
}

void
tls_settings_key(const struct wire_tls *o, char *key, size_t len)
{
    if (o == NULL)
        o = &tls_defaults;
    snprintf(key, len, "verify=%d;ca=%s;capath=%s;cert=%s;key=%s;sni=%s;min=%s",
             o->verify && !o->insecure, o->ca_file ? o->ca_file : "",
             o->ca_path ? o->ca_path : "", o->cert_file ? o->cert_file : "",
             o->key_file ? o->key_file : "",
             o->server_name ? o->server_name : "",
             o->min_version ? o->min_version : "");
    /* A connection made without the name check serves only such
     * requests. */
    if (o->no_check_hostname && strlen(key) + 12 < len)
        strcat(key, ";nohostcheck");
}

/* OpenSSL's first queued error as text, or fallback. */
static void
tls_queue_error(char *buf, size_t len, const char *fallback)
{
    unsigned long e = ERR_get_error();

    if (e == 0)
        snprintf(buf, len, "%s", fallback);
    else
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
}

/* Keeps the session a server just issued (TLS 1.3 sends it after the
 * handshake) for the next connection to the same origin. */
static int
tls_new_session_cb(SSL *ssl, SSL_SESSION *session)
{
    struct tls_slot *slot = SSL_get_app_data(ssl);

    if (slot == NULL)
        return 0;
    SSL_SESSION_free(slot->session);
    slot->session = session;
    return 1; /* we keep the reference */
}

static SSL_CTX *
tls_context_build(const struct wire_tls *o, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char why[256];
    int min = TLS1_2_VERSION;

    if (ctx == NULL) {
        tls_queue_error(why, sizeof why, "out of memory");
        snprintf(err, errlen, "cannot create a TLS context: %s", why);
        return NULL;
    }
    if (o->min_version != NULL && strcmp(o->min_version, "1.3") == 0)
        min = TLS1_3_VERSION;
    SSL_CTX_set_min_proto_version(ctx, min);
    /* Idle pooled connections give their read and write buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
                                            SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, tls_new_session_cb);

    if (o->verify && !o->insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (o->ca_file != NULL || o->ca_path != NULL) {
            if (SSL_CTX_load_verify_locations(ctx, o->ca_file, o->ca_path) !=
                1) {
                tls_queue_error(why, sizeof why, "unreadable");
                snprintf(err, errlen, "cannot load the CA from %s: %s",
                         o->ca_file ? o->ca_file : o->ca_path, why);
                goto fail;
            }
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            tls_queue_error(why, sizeof why, "unreadable");
            snprintf(err, errlen, "cannot load the system trust store: %s",
                     why);
            goto fail;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    if (o->cert_file != NULL) {
        const char *key = o->key_file ? o->key_file : o->cert_file;

        if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            tls_queue_error(why, sizeof why, "unusable");
            snprintf(err, errlen,
                     "cannot use the client certificate %s with key %s: %s",
                     o->cert_file, key, why);
            goto fail;
        }
    }
    return ctx;

fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* The context for o's settings, built on first use. */
static SSL_CTX *
tls_context_get(struct tls *t, const struct wire_tls *o, char *err,
                size_t errlen)
{
    char key[2048];
    struct tls_context *c;
    SSL_CTX *ctx;

    tls_settings_key(o, key, sizeof key);
    for (c = t->contexts; c != NULL; c = c->next)
        if (strcmp(c->key, key) == 0)
            return c->ctx;
    ctx = tls_context_build(o, err, errlen);
    if (ctx == NULL)
        return NULL;
    c = calloc(1, sizeof *c);
    if (c == NULL || (c->key = strdup(key)) == NULL) {
        free(c);
        SSL_CTX_free(ctx);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->ctx = ctx;
    c->next = t->contexts;
    t->contexts = c;
    return ctx;
}

static struct tls_slot *
tls_slot_get(struct tls *t, const char *origin_key)
{
    struct tls_slot *s;

    for (s = t->slots; s != NULL; s = s->next)
        if (strcmp(s->origin_key, origin_key) == 0)
            return s;
    if (t->nslots >= TLS_MAX_SESSIONS || (s = calloc(1, sizeof *s)) == NULL)
        return NULL;
    if ((s->origin_key = strdup(origin_key)) == NULL) {
        free(s);
        return NULL;
    }
    s->next = t->slots;
    t->slots = s;
    t->nslots++;
    return s;
}

SSL *
tls_connection_new(struct tls *t, const struct wire_tls *o, const char *host,
                   const char *origin_key, int *code, char *err, size_t errlen)
{
    const char *name;
    unsigned char addr[sizeof(struct in6_addr)];
    struct tls_slot *slot;
    bool is_ip;
    SSL_CTX *ctx;
    SSL *ssl;

    if (o == NULL)
        o = &tls_defaults;
    *code = HCONN_ETLS_FAILED;
    ctx = tls_context_get(t, o, err, errlen);
    if (ctx == NULL)
        return NULL;
    ssl = SSL_new(ctx);
    if (ssl == NULL) {
        *code = HCONN_ENO_MEMORY;
        snprintf(err, errlen, "cannot create a TLS connection");
        return NULL;
    }
    name = o->server_name ? o->server_name : host;
    is_ip = inet_pton(AF_INET, name, addr) == 1 ||
            inet_pton(AF_INET6, name, addr) == 1;
    /* RFC 6066 §3: SNI carries host names only, never address literals. */
    if (!is_ip)
        SSL_set_tlsext_host_name(ssl, name);
    if (o->verify && !o->insecure && !o->no_check_hostname) {
        int ok = is_ip
                     ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name)
                     : SSL_set1_host(ssl, name);

        if (ok != 1) {
            SSL_free(ssl);
            snprintf(err, errlen, "cannot verify against the name \"%s\"",
                     name);
            return NULL;
        }
    } else if (!o->verify || o->insecure) {
        log_warn("TLS to %s without certificate verification (insecure)", name);
    }
    slot = tls_slot_get(t, origin_key);
    SSL_set_app_data(ssl, slot);
    if (slot != NULL && slot->session != NULL)
        SSL_set_session(ssl, slot->session);
    return ssl;
}

int
tls_handshake_error(SSL *ssl, unsigned long openssl_error, const char *peer,
                    char *err, size_t errlen)
{
    long verify = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
    char why[256];

    if (verify != X509_V_OK) {
        snprintf(err, errlen, "certificate of %s not accepted: %s", peer,
                 X509_verify_cert_error_string(verify));
        ERR_clear_error();
        return HCONN_ETLS_VERIFY_FAILED;
    }
    if (openssl_error != 0)
        ERR_error_string_n(openssl_error, why, sizeof why);
    else
        tls_queue_error(why, sizeof why, "connection closed");
    snprintf(err, errlen, "TLS handshake with %s failed: %s", peer, why);
    ERR_clear_error();
    return HCONN_ETLS_FAILED;
}

bool
tls_resumed(SSL *ssl)
{
    return SSL_session_reused(ssl) == 1;
}

/* strdup that keeps NULL; sets *failed when memory runs out. */
static const char *
tls_strdup(const char *s, bool *failed)
{
    char *c;

    if (s == NULL)
        return NULL;
    if ((c = strdup(s)) == NULL)
        *failed = true;
    return c;
}

struct wire_tls *
tls_options_copy(const struct wire_tls *o)
{
    struct wire_tls *c;
    bool failed = false;

    if (o == NULL || (c = malloc(sizeof *c)) == NULL)
        return NULL;
    *c = *o;
    c->ca_file = tls_strdup(o->ca_file, &failed);
    c->ca_path = tls_strdup(o->ca_path, &failed);
    c->cert_file = tls_strdup(o->cert_file, &failed);
    c->key_file = tls_strdup(o->key_file, &failed);
    c->server_name = tls_strdup(o->server_name, &failed);
    c->min_version = tls_strdup(o->min_version, &failed);
    if (failed) {
        tls_options_free(c);
        return NULL;
    }
    return c;
}

void
tls_options_free(struct wire_tls *o)
{
    if (o == NULL)
        return;
    free((char *)o->ca_file);
    free((char *)o->ca_path);
    free((char *)o->cert_file);
    free((char *)o->key_file);
    free((char *)o->server_name);
    free((char *)o->min_version);
    free(o);
}
