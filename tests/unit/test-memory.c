/*
 * test-memory.c — spare lists (daemon/memory.c): objects kept for reuse
 * come back last in, first out, no more than a list's bound are kept,
 * and the trim that follows a calm second frees every one of them, in
 * every list, and again for objects kept after it. OpenSSL's record
 * buffers, freed, go to the next record buffer asked for, and to no
 * other allocation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <event2/event.h>
#include <malloc.h>
#include <openssl/crypto.h>

#include "memory.h"

/* Objects the lists' drop functions freed. */
static int memory_dropped;

/* A spare list's drop function: frees and counts. */
static void
test_drop(void *item)
{
    memory_dropped++;
    free(item);
}

MEMORY_SPARES(test_small, 2, test_drop);
MEMORY_SPARES(test_other, 8, test_drop);

/* Runs base until the planned trim has run: its timer is base's only
 * event, so the loop ends with it. */
static void
test_run_trim(struct event_base *base)
{
    memory_trim_soon(base);
    assert_int_equal(event_base_dispatch(base), 1);
}

/* Kept objects come back newest first; a full list refuses. */
static void
test_keep_and_take(void **state)
{
    void *a = malloc(16), *b = malloc(16), *c = malloc(16);

    (void)state;
    assert_null(memory_spare_take(&test_small));
    assert_true(memory_spare_keep(&test_small, a));
    assert_true(memory_spare_keep(&test_small, b));
    assert_false(memory_spare_keep(&test_small, c));
    assert_ptr_equal(memory_spare_take(&test_small), b);
    assert_ptr_equal(memory_spare_take(&test_small), a);
    assert_null(memory_spare_take(&test_small));
    free(a);
    free(b);
    free(c);
}

/* A freed record buffer (OpenSSL's read buffer is about 16.7 KiB, its
 * write buffer 17 KiB) is the next one OpenSSL asks for; other sizes are
 * malloc's. */
static void
test_record_buffers_recycled(void **state)
{
    void *a, *b, *small;

    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    skip(); /* nothing is cached under AddressSanitizer (memory.c) */
#endif
    a = OPENSSL_malloc(16709);
    assert_non_null(a);
    assert_true(malloc_usable_size(a) >= 17000);
    OPENSSL_free(a);
    small = OPENSSL_malloc(100);
    assert_ptr_not_equal(small, a);
    b = OPENSSL_malloc(17000);
    assert_ptr_equal(b, a);
    OPENSSL_free(small);
    OPENSSL_free(b);
}

/* A trim frees what every list keeps; a list used again after it is
 * emptied by the next trim too. */
static void
test_trim_frees_spares(void **state)
{
    struct event_base *base = event_base_new();

    (void)state;
    assert_non_null(base);
    memory_dropped = 0;
    assert_true(memory_spare_keep(&test_small, malloc(16)));
    for (int i = 0; i < 5; i++)
        assert_true(memory_spare_keep(&test_other, malloc(16)));
    test_run_trim(base);
    assert_int_equal(memory_dropped, 6);
    assert_null(memory_spare_take(&test_small));
    assert_null(memory_spare_take(&test_other));

    assert_true(memory_spare_keep(&test_other, malloc(16)));
    test_run_trim(base);
    assert_int_equal(memory_dropped, 7);
    assert_null(memory_spare_take(&test_other));

    /* Shutdown frees them as well. */
    assert_true(memory_spare_keep(&test_small, malloc(16)));
    memory_shutdown();
    assert_int_equal(memory_dropped, 8);
    event_base_free(base);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keep_and_take),
        cmocka_unit_test(test_record_buffers_recycled),
        cmocka_unit_test(test_trim_frees_spares),
    };

    memory_tune();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
