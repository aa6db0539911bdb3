/*
 * test-redirect.c — the hconn command's -L arithmetic
 * (client-lib/cli-redirect.c): RFC 3986 section 5.4's reference
 * resolution examples, curl's method rules and its default scheme.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli-redirect.h"

/* RFC 3986 5.4.1 and 5.4.2 against base http://a/b/c/d;p?q (fragments
 * are dropped: they never go to a server). */
static void
test_rfc3986_examples(void **state)
{
    static const char *const cases[][2] = {
        {"g", "http://a/b/c/g"},
        {"./g", "http://a/b/c/g"},
        {"g/", "http://a/b/c/g/"},
        {"/g", "http://a/g"},
        {"//g", "http://g"},
        {"?y", "http://a/b/c/d;p?y"},
        {"g?y", "http://a/b/c/g?y"},
        {"#s", "http://a/b/c/d;p?q"},
        {"g#s", "http://a/b/c/g"},
        {"", "http://a/b/c/d;p?q"},
        {".", "http://a/b/c/"},
        {"./", "http://a/b/c/"},
        {"..", "http://a/b/"},
        {"../", "http://a/b/"},
        {"../g", "http://a/b/g"},
        {"../..", "http://a/"},
        {"../../", "http://a/"},
        {"../../g", "http://a/g"},
        {"../../../g", "http://a/g"},
        {"/./g", "http://a/g"},
        {"/../g", "http://a/g"},
        {"g.", "http://a/b/c/g."},
        {"..g", "http://a/b/c/..g"},
        {"./../g", "http://a/b/g"},
        {"g/./h", "http://a/b/c/g/h"},
        {"g/../h", "http://a/b/c/h"},
        {"g;x=1/../y", "http://a/b/c/y"},
        {"https://x:8/p/../q?a/../b", "https://x:8/q?a/../b"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = redirect_resolve("http://a/b/c/d;p?q", cases[i][0]);

        if (!got || strcmp(got, cases[i][1]) != 0) {
            print_error("\"%s\" resolved to \"%s\", not \"%s\"\n", cases[i][0],
                        got ? got : "NULL", cases[i][1]);
            fail();
        }
        free(got);
    }
}

/* A base without a path resolves as if it were "/". */
static void
test_base_without_path(void **state)
{
    char *got = redirect_resolve("http://h:1", "x");

    (void)state;
    assert_string_equal(got, "http://h:1/x");
    free(got);
    got = redirect_resolve("http://h:1", "?q");
    assert_string_equal(got, "http://h:1/?q");
    free(got);
    assert_null(redirect_resolve("no-scheme/x", "y"));
}

/* curl: 303 makes anything but HEAD a GET; 301 and 302 only a POST. */
static void
test_method_rules(void **state)
{
    (void)state;
    assert_true(redirect_to_get(303, "POST"));
    assert_true(redirect_to_get(303, "PUT"));
    assert_false(redirect_to_get(303, "HEAD"));
    assert_true(redirect_to_get(301, "POST"));
    assert_true(redirect_to_get(302, "POST"));
    assert_false(redirect_to_get(302, "PUT"));
    assert_false(redirect_to_get(307, "POST"));
    assert_false(redirect_to_get(308, "POST"));
    assert_true(redirect_status(301) && redirect_status(308));
    assert_false(redirect_status(300) || redirect_status(304) ||
                 redirect_status(305));
}

/* curl: no "scheme://" means http://. */
static void
test_default_scheme(void **state)
{
    static const char *const cases[][2] = {
        {"127.0.0.1:8080/x", "http://127.0.0.1:8080/x"},
        {"localhost", "http://localhost"},
        {"[::1]:80/", "http://[::1]:80/"},
        {"https://h/", "https://h/"},
        {"HTTP://h/", "HTTP://h/"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = redirect_default_scheme(cases[i][0]);

        assert_string_equal(got, cases[i][1]);
        free(got);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc3986_examples),
        cmocka_unit_test(test_base_without_path),
        cmocka_unit_test(test_method_rules),
        cmocka_unit_test(test_default_scheme),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
