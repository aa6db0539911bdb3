/*
 * test-tls.c — the TLS settings key (daemon/tls.c) and its compact copy,
 * tls_settings_id, which the pool compares a request's settings with
 * instead of writing their key: for every pair of settings that differ
 * in one field (or in none, written another way), the copy matches
 * exactly when the two keys are equal, and never when it would have to
 * compute a digest to know.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tls.h"

#define DIGEST_A "0123456789abcdef0123456789abcdef"
#define DIGEST_B "0123456789abcdef0123456789abcdee"

/* A server name one byte too long for the copy, and the longest kept. */
static char name_too_long[TLS_ID_NAME + 1];
static char name_longest[TLS_ID_NAME];

/* Settings that differ from {.verify = true} in one field each, and some
 * that differ only in how they are written. */
static const struct wire_tls *
variant(size_t i)
{
    static struct wire_tls v[] = {
        {.verify = true},
        {.verify = false},
        {.verify = true, .insecure = true}, /* the key of verify false */
        {.verify = true, .ca_pem = "A", .ca_pem_digest = DIGEST_A},
        {.verify = true, .ca_pem = "B", .ca_pem_digest = DIGEST_B},
        {.verify = true, .ca_pem = "other A", .ca_pem_digest = DIGEST_A},
        {.verify = true, .cert_pem = "A", .cert_pem_digest = DIGEST_A},
        {.verify = true,
         .cert_pem = "A",
         .cert_pem_digest = DIGEST_A,
         .key_pem = "A",
         .key_pem_digest = DIGEST_A},
        {.verify = true,
         .cert_pem = "A",
         .cert_pem_digest = DIGEST_A,
         .key_pem = "B",
         .key_pem_digest = DIGEST_B},
        {.verify = true, .min_version = "1.3"},
        {.verify = true, .min_version = "1.2"},
        {.verify = true, .min_version = ""}, /* the key of the default */
        {.verify = true, .server_name = "localhost"},
        {.verify = true, .server_name = "localhost."},
        {.verify = true, .server_name = ""}, /* the key of the default */
        {.verify = true, .no_check_hostname = true},
        {.verify = false, .no_check_hostname = true},
        /* Inline PEM whose digest is not known: computed for the key,
         * never compared. */
        {.verify = true, .ca_pem = "A"},
        {.verify = true, .cert_pem = "A", .key_pem = "A"},
        {.verify = true, .server_name = name_longest},
        {.verify = true, .server_name = name_too_long},
    };

    if (i == 0)
        return NULL; /* the defaults */
    return i - 1 < sizeof v / sizeof *v ? &v[i - 1] : NULL;
}

#define VARIANTS 22 /* NULL and the 21 above */

static void
test_settings_id_matches_equal_keys_only(void **state)
{
    char ka[2048], kb[2048];
    struct tls_settings_id id;
    int matched = 0, set = 0;

    (void)state;
    memset(name_too_long, 'n', sizeof name_too_long - 1);
    memset(name_longest, 'n', sizeof name_longest - 1);
    for (size_t a = 0; a < VARIANTS; a++) {
        const struct wire_tls *oa = variant(a);
        bool known =
            oa == NULL || ((oa->ca_pem == NULL || oa->ca_pem_digest) &&
                           (oa->cert_pem == NULL || oa->cert_pem_digest) &&
                           (oa->key_pem == NULL || oa->key_pem_digest));
        bool fits = oa == NULL || oa->server_name != name_too_long;

        tls_settings_key(oa, ka, sizeof ka);
        memset(&id, 0x55, sizeof id);
        assert_int_equal(tls_settings_id_set(&id, oa), known && fits);
        if (!(known && fits))
            continue;
        set++;
        for (size_t b = 0; b < VARIANTS; b++) {
            const struct wire_tls *ob = variant(b);
            bool equal;

            tls_settings_key(ob, kb, sizeof kb);
            equal = strcmp(ka, kb) == 0;
            if (tls_settings_id_match(&id, ob)) {
                assert_true(equal);
                matched++;
            } else if (equal) {
                /* Only when a digest would have to be computed. */
                assert_true(ob != NULL &&
                            ((ob->ca_pem && !ob->ca_pem_digest) ||
                             (ob->cert_pem && !ob->cert_pem_digest) ||
                             (ob->key_pem && !ob->key_pem_digest)));
            }
        }
    }
    assert_int_equal(set, VARIANTS - 3);
    /* Ordered pairs of equal keys: the defaults written four ways (16),
     * verify false and insecure (4), two PEMs of one digest (4), and the
     * 11 others each with itself. */
    assert_int_equal(matched, 16 + 4 + 4 + 11);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settings_id_matches_equal_keys_only),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
