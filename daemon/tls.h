/*
 * tls.h — TLS for upstream connections: OpenSSL client contexts per
 * distinct set of trust and identity settings, cached with a bound and
 * sharing one system trust store; verification on by default (host name
 * or IP address, SNI); a session cache per origin so new connections
 * resume.
 */
#ifndef HCONND_TLS_H
#define HCONND_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "wire.h"

struct tls;

struct config;

/* cfg (kept, may be reloaded in place) bounds the context cache. */
struct tls *tls_new(const struct config *cfg);
void tls_free(struct tls *t);

#define TLS_DIGEST_HEX 33 /* 128 bits of SHA-256 in hex, and a NUL */

/* "-" for no material, else the first 128 bits of pem's SHA-256 in hex:
 * keys name the material without ever holding (or logging) it. */
void tls_digest(const char *pem, char out[TLS_DIGEST_HEX]);

/* Writes a string naming every setting in o (NULL: the defaults) into
 * key: connections made with different keys are never shared. PEM
 * material appears only as a digest. */
void tls_settings_key(const struct wire_tls *o, char *key, size_t len);

/* What tls_settings_key writes for one set of settings, kept so that a
 * later request's settings can be compared with it without writing (and
 * hashing) their key: the pool's shortcut to the origin it found last. */
#define TLS_ID_VERSION 8   /* min_version bytes kept, NUL included */
#define TLS_ID_NAME    256 /* server_name bytes kept, NUL included */
struct tls_settings_id {
    bool verify;
    bool no_check_hostname;
    char ca[TLS_DIGEST_HEX], cert[TLS_DIGEST_HEX], key[TLS_DIGEST_HEX];
    char min_version[TLS_ID_VERSION];
    char server_name[TLS_ID_NAME];
};

/* Keeps o's settings (NULL: the defaults) in id. False when they cannot
 * be compared cheaply (PEM whose digest hconnd does not know, a server
 * name or version longer than id holds): id must then not be matched. */
bool tls_settings_id_set(struct tls_settings_id *id, const struct wire_tls *o);

/* True only when tls_settings_key would write the same key for o as for
 * the settings id was last set from (by tls_settings_id_set returning
 * true); false when it cannot tell without computing a digest. */
bool tls_settings_id_match(const struct tls_settings_id *id,
                           const struct wire_tls *o);

/*
 * Prepares one connection's SSL for host (o NULL: defaults), with SNI, the
 * name to verify and the session cached under origin_key. Returns NULL
 * with *code (HCONN_ETLS_FAILED, HCONN_ENO_MEMORY) and err set when the
 * settings cannot be used (an unreadable ca_file, a key not matching its
 * certificate ...).
 */
SSL *tls_connection_new(struct tls *t, const struct wire_tls *o,
                        const char *host, const char *origin_key, int *code,
                        char *err, size_t errlen);

/* Explains a failed handshake: HCONN_ETLS_VERIFY_FAILED with OpenSSL's
 * verification reason, or HCONN_ETLS_FAILED with its error queue. */
int tls_handshake_error(SSL *ssl, unsigned long openssl_error, const char *peer,
                        char *err, size_t errlen);

/* A deep copy of o (NULL stays NULL), for holders that outlive the
 * request o came with; tls_options_free releases it. */
struct wire_tls *tls_options_copy(const struct wire_tls *o);
void tls_options_free(struct wire_tls *o);

/* Contexts cached now (at most tls_max_contexts). */
size_t tls_context_count(const struct tls *t);

/* Whether the handshake resumed a cached session. */
bool tls_resumed(SSL *ssl);

#endif
