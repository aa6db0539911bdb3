/*
 * tls.c — OpenSSL client contexts and the per-origin session cache.
 *
 * Certificate and key material reaches this file only as PEM in memory
 * (the request's inline fields, or files the client's own rights opened
 * for it: tlsfiles.c); the daemon never opens a file a client named with
 * its own rights here.
 *
 * The system trust store is loaded once, into one X509_STORE that every
 * context verifying against it shares. Contexts are keyed by the settings
 * that shape them (verification, hashes of the PEM material, minimum
 * version; not the server name, which is per connection) and cached, most
 * recently used first, up to tls_max_contexts; past that the least
 * recently used one is released. Each connection holds its own reference
 * to its context, so a released context lives exactly as long as its
 * last connection.
 *
 * Sessions are kept per pool origin key, which names every TLS setting,
 * so a session is only ever offered to a server reached with the same
 * trust and identity it was made under.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "hconn_error.h"
#include "log.h"
#include "tls.h"

#define TLS_MAX_SESSIONS 4096 /* origins remembered for resumption */

struct tls_context {
    char *key; /* tls_context_key of its settings */
    SSL_CTX *ctx;
    struct tls_context *next; /* most recently used first */
};

/* The session to offer the next connection to one origin. */
struct tls_slot {
    char *origin_key;
    SSL_SESSION *session; /* NULL until a server sent one */
    unsigned refs;        /* connections using it, and 1 while listed */
    struct tls_slot *next;
};

/* The SSL ex_data index holding a connection's slot reference. */
static int tls_slot_index = -1;

struct tls {
    const struct config *cfg; /* tls_max_contexts (may be reloaded) */
    X509_STORE *system_store; /* the system trust store, loaded once */
    bool system_store_failed; /* ... and why not, once */
    struct tls_context *contexts;
    size_t ncontexts;
    struct tls_slot *slots;
    size_t nslots;
};

static const struct wire_tls tls_defaults = {.verify = true};

/* Drops one reference to a slot; the last frees it. */
static void
tls_slot_unref(struct tls_slot *s)
{
    if (s == NULL || --s->refs > 0)
        return;
    SSL_SESSION_free(s->session);
    free(s->origin_key);
    free(s);
}

/* OpenSSL frees a connection: its slot reference goes. */
static void
tls_slot_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                 long argl, void *argp)
{
    tls_slot_unref(ptr);
}

struct tls *
tls_new(const struct config *cfg)
{
    struct tls *t = calloc(1, sizeof(struct tls));

    if (tls_slot_index < 0)
        tls_slot_index =
            SSL_get_ex_new_index(0, NULL, NULL, NULL, tls_slot_ex_free);
    if (t != NULL)
        t->cfg = cfg;
    return t;
}

static void
tls_context_free(struct tls_context *c)
{
    SSL_CTX_free(c->ctx);
    free(c->key);
    free(c);
}

void
tls_free(struct tls *t)
{
    if (t == NULL)
        return;
    while (t->contexts != NULL) {
        struct tls_context *c = t->contexts;

        t->contexts = c->next;
        tls_context_free(c);
    }
    while (t->slots != NULL) {
        struct tls_slot *s = t->slots;

        t->slots = s->next;
        tls_slot_unref(s);
    }
    X509_STORE_free(t->system_store);
    free(t);
}

void
tls_digest(const char *pem, char out[TLS_DIGEST_HEX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (pem == NULL ||
        EVP_Digest(pem, strlen(pem), md, &n, EVP_sha256(), NULL) != 1 ||
        n < 16) {
        snprintf(out, TLS_DIGEST_HEX, "-");
        return;
    }
    for (int i = 0; i < 16; i++) {
        out[2 * i] = "0123456789abcdef"[md[i] >> 4];
        out[2 * i + 1] = "0123456789abcdef"[md[i] & 15];
    }
    out[32] = '\0';
}

/* pem's digest: the one hconnd already knows (known), else computed into
 * buf; NULL when buf is NULL and it would have to be computed. */
static const char *
tls_digest_of(const char *pem, const char *known, char *buf)
{
    if (pem != NULL && known != NULL)
        return known;
    if (buf == NULL)
        return pem == NULL ? "-" : NULL;
    tls_digest(pem, buf);
    return buf;
}

/* Every setting a key names, as the key writes it. tls_settings_key
 * writes these, and tls_settings_id compares them, so a setting added
 * here is in both. */
struct tls_fields {
    bool verify; /* verify and not insecure */
    bool no_check_hostname;
    const char *ca, *cert, *key; /* digests, "-" for none */
    const char *min_version;     /* "" for the default */
    const char *server_name;     /* "" for the host */
};

/* o's fields (o NULL: the defaults), the digests hconnd does not know yet
 * computed into digests[3]; with digests NULL, false when one would have
 * to be. */
static bool
tls_fields_of(const struct wire_tls *o, struct tls_fields *f,
              char (*digests)[TLS_DIGEST_HEX])
{
    if (o == NULL)
        o = &tls_defaults;
    f->verify = o->verify && !o->insecure;
    f->no_check_hostname = o->no_check_hostname;
    f->ca = tls_digest_of(o->ca_pem, o->ca_pem_digest,
                          digests != NULL ? digests[0] : NULL);
    f->cert = tls_digest_of(o->cert_pem, o->cert_pem_digest,
                            digests != NULL ? digests[1] : NULL);
    f->key = tls_digest_of(o->key_pem, o->key_pem_digest,
                           digests != NULL ? digests[2] : NULL);
    f->min_version = o->min_version != NULL ? o->min_version : "";
    f->server_name = o->server_name != NULL ? o->server_name : "";
    return f->ca != NULL && f->cert != NULL && f->key != NULL;
}

/* A key being written into len bytes at p (n of them used): what does not
 * fit is cut, as snprintf would, and it stays NUL-terminated. */
struct tls_key {
    char *p;
    size_t len, n;
};

/* Appends s to k. */
static void
tls_key_put(struct tls_key *k, const char *s)
{
    size_t m = strlen(s);

    if (k->len == 0)
        return;
    if (m > k->len - 1 - k->n)
        m = k->len - 1 - k->n;
    memcpy(k->p + k->n, s, m);
    k->n += m;
    k->p[k->n] = '\0';
}

/* The settings that shape a context: everything but the server name.
 * Written without printf: it is built for every request. */
static void
tls_context_key_put(const struct tls_fields *f, struct tls_key *k)
{
    tls_key_put(k, f->verify ? "verify=1;ca=" : "verify=0;ca=");
    tls_key_put(k, f->ca);
    tls_key_put(k, ";cert=");
    tls_key_put(k, f->cert);
    tls_key_put(k, ";key=");
    tls_key_put(k, f->key);
    tls_key_put(k, ";min=");
    tls_key_put(k, f->min_version);
}

/* tls_context_key_put of o into key (len bytes). */
static void
tls_context_key(const struct wire_tls *o, char *key, size_t len)
{
    char digests[3][TLS_DIGEST_HEX];
    struct tls_fields f;
    struct tls_key k = {key, len, 0};

    if (len > 0)
        key[0] = '\0';
    tls_fields_of(o, &f, digests);
    tls_context_key_put(&f, &k);
}

void
tls_settings_key(const struct wire_tls *o, char *key, size_t len)
{
    char digests[3][TLS_DIGEST_HEX];
    struct tls_fields f;
    struct tls_key k = {key, len, 0};

    if (len > 0)
        key[0] = '\0';
    tls_fields_of(o, &f, digests);
    tls_context_key_put(&f, &k);
    tls_key_put(&k, ";sni=");
    tls_key_put(&k, f.server_name);
    /* A connection made without the name check serves only such
     * requests. */
    if (f.no_check_hostname && k.n + 12 < len)
        tls_key_put(&k, ";nohostcheck");
}

/* Copies s into out (size bytes); false when it does not fit. */
static bool
tls_copy_field(char *out, size_t size, const char *s)
{
    size_t n = strlen(s);

    if (n >= size)
        return false;
    memcpy(out, s, n + 1);
    return true;
}

bool
tls_settings_id_set(struct tls_settings_id *id, const struct wire_tls *o)
{
    struct tls_fields f;

    if (!tls_fields_of(o, &f, NULL))
        return false;
    id->verify = f.verify;
    id->no_check_hostname = f.no_check_hostname;
    return tls_copy_field(id->ca, sizeof id->ca, f.ca) &&
           tls_copy_field(id->cert, sizeof id->cert, f.cert) &&
           tls_copy_field(id->key, sizeof id->key, f.key) &&
           tls_copy_field(id->min_version, sizeof id->min_version,
                          f.min_version) &&
           tls_copy_field(id->server_name, sizeof id->server_name,
                          f.server_name);
}

bool
tls_settings_id_match(const struct tls_settings_id *id,
                      const struct wire_tls *o)
{
    struct tls_fields f;

    return tls_fields_of(o, &f, NULL) && f.verify == id->verify &&
           f.no_check_hostname == id->no_check_hostname &&
           strcmp(f.ca, id->ca) == 0 && strcmp(f.cert, id->cert) == 0 &&
           strcmp(f.key, id->key) == 0 &&
           strcmp(f.min_version, id->min_version) == 0 &&
           strcmp(f.server_name, id->server_name) == 0;
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
    struct tls_slot *slot = SSL_get_ex_data(ssl, tls_slot_index);

    if (slot == NULL)
        return 0;
    SSL_SESSION_free(slot->session);
    slot->session = session;
    return 1; /* we keep the reference */
}

/* Never prompts for a pass phrase: the daemon has no terminal, and an
 * encrypted key simply fails to load. */
static int
tls_no_passphrase_cb(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

/* The shared system trust store, loaded on first use. */
static X509_STORE *
tls_system_store(struct tls *t, char *err, size_t errlen)
{
    char why[256];

    if (t->system_store != NULL)
        return t->system_store;
    t->system_store = X509_STORE_new();
    if (t->system_store == NULL ||
        X509_STORE_set_default_paths(t->system_store) != 1) {
        tls_queue_error(why, sizeof why, "unreadable");
        snprintf(err, errlen, "cannot load the system trust store: %s", why);
        X509_STORE_free(t->system_store);
        t->system_store = NULL;
    }
    return t->system_store;
}

/* A store of the certificates in pem; NULL with err set when it holds
 * none, or something that is not a certificate. */
static X509_STORE *
tls_store_from_pem(const char *pem, char *err, size_t errlen)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509_STORE *store = X509_STORE_new();
    STACK_OF(X509_INFO) *infos = NULL;
    int n = 0;
    char why[256];

    if (bio != NULL && store != NULL)
        infos = PEM_X509_INFO_read_bio(bio, NULL, tls_no_passphrase_cb, NULL);
    for (int i = 0; infos != NULL && i < sk_X509_INFO_num(infos); i++) {
        X509_INFO *info = sk_X509_INFO_value(infos, i);

        if (info->x509 != NULL && X509_STORE_add_cert(store, info->x509) == 1)
            n++;
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    BIO_free(bio);
    if (n == 0) {
        tls_queue_error(why, sizeof why, "no certificate in it");
        snprintf(err, errlen, "cannot use the trust anchors (ca): %s", why);
        X509_STORE_free(store);
        return NULL;
    }
    ERR_clear_error();
    return store;
}

/* Installs the client certificate chain and key from PEM on ctx. */
static int
tls_use_identity(SSL_CTX *ctx, const char *cert_pem, const char *key_pem,
                 char *err, size_t errlen)
{
    BIO *bio = BIO_new_mem_buf(cert_pem, -1);
    BIO *kbio = BIO_new_mem_buf(key_pem != NULL ? key_pem : cert_pem, -1);
    X509 *cert = NULL, *extra;
    EVP_PKEY *key = NULL;
    char why[256];
    int ok = 0;

    if (bio == NULL || kbio == NULL)
        goto done;
    cert = PEM_read_bio_X509(bio, NULL, tls_no_passphrase_cb, NULL);
    if (cert == NULL || SSL_CTX_use_certificate(ctx, cert) != 1)
        goto done;
    while ((extra = PEM_read_bio_X509(bio, NULL, tls_no_passphrase_cb, NULL)) !=
           NULL)
        if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
            X509_free(extra);
            goto done;
        }
    ERR_clear_error(); /* the end of the chain reads as an error */
    key = PEM_read_bio_PrivateKey(kbio, NULL, tls_no_passphrase_cb, NULL);
    ok = key != NULL && SSL_CTX_use_PrivateKey(ctx, key) == 1 &&
         SSL_CTX_check_private_key(ctx) == 1;

done:
    if (!ok) {
        tls_queue_error(why, sizeof why, "unusable");
        snprintf(err, errlen,
                 "cannot use the client certificate and key (cert, key): %s",
                 why);
    }
    X509_free(cert);
    EVP_PKEY_free(key);
    BIO_free(bio);
    BIO_free(kbio);
    return ok ? 0 : -1;
}

static SSL_CTX *
tls_context_build(struct tls *t, const struct wire_tls *o, char *err,
                  size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char why[256];
    int min = TLS1_2_VERSION;

    if (ctx == NULL) {
        tls_queue_error(why, sizeof why, "out of memory");
        snprintf(err, errlen, "cannot create a TLS context: %s", why);
        return NULL;
    }
    if (o->ca_file != NULL || o->ca_path != NULL || o->cert_file != NULL ||
        o->key_file != NULL) {
        /* tlsfiles_load turns paths into PEM first; this file never opens
         * a path with the daemon's rights. */
        snprintf(err, errlen, "TLS files were not read for the client");
        goto fail;
    }
    if (o->min_version != NULL && strcmp(o->min_version, "1.3") == 0)
        min = TLS1_3_VERSION;
    SSL_CTX_set_min_proto_version(ctx, min);
    /* OpenSSL frees a connection's read and write buffers whenever they
     * empty: idle pooled connections hold none, and busy ones take
     * recycled ones (memory.c), warm in the cache, instead of each
     * keeping its own 34 KiB cold between requests. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
                                            SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, tls_new_session_cb);
    SSL_CTX_set_default_passwd_cb(ctx, tls_no_passphrase_cb);

    if (o->verify && !o->insecure) {
        X509_STORE *store = o->ca_pem != NULL
                                ? tls_store_from_pem(o->ca_pem, err, errlen)
                                : tls_system_store(t, err, errlen);

        if (store == NULL)
            goto fail;
        if (o->ca_pem != NULL) {
            SSL_CTX_set_cert_store(ctx, store); /* takes it */
        } else {
            /* Shared: one copy of the system store for every context. */
            SSL_CTX_set1_cert_store(ctx, store);
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    if (o->cert_pem != NULL &&
        tls_use_identity(ctx, o->cert_pem, o->key_pem, err, errlen) < 0)
        goto fail;
    return ctx;

fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* Releases the least recently used contexts beyond the configured bound. */
static void
tls_context_trim(struct tls *t)
{
    size_t max = t->cfg != NULL ? t->cfg->tls_max_contexts : 64;
    struct tls_context **p = &t->contexts;
    size_t i = 0;

    while (*p != NULL && ++i <= max)
        p = &(*p)->next;
    while (*p != NULL) {
        struct tls_context *c = *p;

        *p = c->next;
        tls_context_free(c);
        t->ncontexts--;
    }
}

/* The context for o's settings (moved to the front), built on first use. */
static SSL_CTX *
tls_context_get(struct tls *t, const struct wire_tls *o, char *err,
                size_t errlen)
{
    char key[512];
    struct tls_context *c, **p;
    SSL_CTX *ctx;

    tls_context_key(o, key, sizeof key);
    for (p = &t->contexts; (c = *p) != NULL; p = &c->next) {
        if (strcmp(c->key, key) == 0) {
            *p = c->next;
            c->next = t->contexts;
            t->contexts = c;
            return c->ctx;
        }
    }
    ctx = tls_context_build(t, o, err, errlen);
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
    t->ncontexts++;
    tls_context_trim(t);
    return ctx;
}

size_t
tls_context_count(const struct tls *t)
{
    return t->ncontexts;
}

/* The slot for origin_key, moved to the front, or a new one; past
 * TLS_MAX_SESSIONS the least recently used is dropped from the list (its
 * connections keep it until they close). NULL when out of memory. */
static struct tls_slot *
tls_slot_get(struct tls *t, const char *origin_key)
{
    struct tls_slot *s, **p;

    for (p = &t->slots; (s = *p) != NULL; p = &s->next) {
        if (strcmp(s->origin_key, origin_key) == 0) {
            *p = s->next;
            s->next = t->slots;
            t->slots = s;
            return s;
        }
    }
    if (t->nslots >= TLS_MAX_SESSIONS) {
        for (p = &t->slots; (*p)->next != NULL; p = &(*p)->next)
            ;
        tls_slot_unref(*p);
        *p = NULL;
        t->nslots--;
    }
    if ((s = calloc(1, sizeof *s)) == NULL)
        return NULL;
    if ((s->origin_key = strdup(origin_key)) == NULL) {
        free(s);
        return NULL;
    }
    s->refs = 1;
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
    if (slot != NULL && SSL_set_ex_data(ssl, tls_slot_index, slot) == 1)
        slot->refs++;
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
    c->ca_pem = tls_strdup(o->ca_pem, &failed);
    c->cert_pem = tls_strdup(o->cert_pem, &failed);
    c->key_pem = tls_strdup(o->key_pem, &failed);
    c->server_name = tls_strdup(o->server_name, &failed);
    c->min_version = tls_strdup(o->min_version, &failed);
    c->ca_pem_digest = tls_strdup(o->ca_pem_digest, &failed);
    c->cert_pem_digest = tls_strdup(o->cert_pem_digest, &failed);
    c->key_pem_digest = tls_strdup(o->key_pem_digest, &failed);
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
    free((char *)o->ca_pem);
    free((char *)o->cert_pem);
    free((char *)o->key_pem);
    free((char *)o->server_name);
    free((char *)o->min_version);
    free((char *)o->ca_pem_digest);
    free((char *)o->cert_pem_digest);
    free((char *)o->key_pem_digest);
    free(o);
}
