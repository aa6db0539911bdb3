/*
 * test-error.c — the shared error table (proto/hconn_error.h, error.c):
 * codes are 0, -1, -2 ... in table order and never renumbered (ABI), every
 * code round-trips through its wire name, and every code has a
 * description.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hconn_error.h"

struct error_row {
    int code;
    const char *name;
    const char *text;
};

#define ROW_(name, wire, text) {HCONN_E##name, wire, text},
static const struct error_row rows[] = {HCONN_ERRORS(ROW_)};
#undef ROW_
#define NROWS (sizeof(rows) / sizeof(rows[0]))

/* The numbers are ABI: pin every one, so a reorder or insertion fails. */
static const struct {
    int code;
    const char *name;
} pinned[] = {
    {0, "ok"},
    {-1, "invalid_url"},
    {-2, "bad_status_line"},
    {-3, "unknown_protocol"},
    {-4, "line_too_long"},
    {-5, "too_many_headers"},
    {-6, "bad_header"},
    {-7, "bad_content_length"},
    {-8, "bad_framing"},
    {-9, "unknown_transfer_encoding"},
    {-10, "bad_chunk"},
    {-11, "remote_disconnected"},
    {-12, "incomplete_read"},
    {-13, "connection_closed"},
    {-14, "timeout"},
    {-15, "dns_failed"},
    {-16, "connect_failed"},
    {-17, "tls_verify_failed"},
    {-18, "tls_failed"},
    {-19, "tunnel_failed"},
    {-20, "invalid_header"},
    {-21, "denied"},
    {-22, "bad_message"},
    {-23, "limit_exceeded"},
    {-24, "shutting_down"},
    {-25, "daemon_unavailable"},
    {-26, "not_connected"},
    {-27, "cannot_send_request"},
    {-28, "response_not_ready"},
    {-29, "http_error"},
    {-30, "io_error"},
    {-31, "no_memory"},
    {-32, "invalid_argument"},
    {-33, "unsupported"},
    {-34, "body_length"},
    {-35, "would_block"},
    {-36, "stream_reset"},
    {-37, "protocol_error"},
};

/* Codes are 0, -1, -2 ... consecutive, in table order; HCONN_OK is 0. */
static void
test_codes_consecutive(void **state)
{
    (void)state;
    assert_int_equal(HCONN_OK, 0);
    assert_int_equal(NROWS, HCONN_ERROR_COUNT);
    for (size_t i = 0; i < NROWS; i++)
        assert_int_equal(rows[i].code, -(int)i);
}

/* Every code's number and name are as released. */
static void
test_codes_pinned(void **state)
{
    (void)state;
    assert_int_equal(sizeof(pinned) / sizeof(pinned[0]), HCONN_ERROR_COUNT);
    for (size_t i = 0; i < sizeof(pinned) / sizeof(pinned[0]); i++) {
        assert_string_equal(hconn_error_name(pinned[i].code), pinned[i].name);
        assert_int_equal(hconn_error_from_name(pinned[i].name), pinned[i].code);
    }
    assert_int_equal(HCONN_EINVALID_URL, -1);
    assert_int_equal(HCONN_EBAD_MESSAGE, -22);
    assert_int_equal(HCONN_EBODY_LENGTH, -34);
}

/* name -> code -> name is the identity for every code. */
static void
test_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < NROWS; i++) {
        assert_string_equal(hconn_error_name(rows[i].code), rows[i].name);
        assert_int_equal(hconn_error_from_name(rows[i].name), rows[i].code);
        assert_string_equal(hconn_strerror(rows[i].code), rows[i].text);
    }
}

/* Names are unique lower-case snake_case; texts are non-empty. */
static void
test_names_well_formed(void **state)
{
    (void)state;
    for (size_t i = 0; i < NROWS; i++) {
        const char *n = rows[i].name;

        assert_true(n[0] != '\0');
        for (size_t k = 0; n[k] != '\0'; k++)
            assert_true((n[k] >= 'a' && n[k] <= 'z') || n[k] == '_');
        for (size_t j = i + 1; j < NROWS; j++)
            assert_string_not_equal(n, rows[j].name);
        assert_true(strlen(hconn_strerror(rows[i].code)) > 0);
    }
}

/* Names that are not in the table map to 1, which is not a code. */
static void
test_unknown_name(void **state)
{
    static const char *const bad[] = {
        "", "nope", "Timeout", "timeout ", "incomplete-read", "OK", "unknown",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(hconn_error_from_name(bad[i]), 1);
}

/* Numbers outside the table are "unknown", never a crash. */
static void
test_out_of_range(void **state)
{
    static const int bad[] = {1,
                              2,
                              1000,
                              -HCONN_ERROR_COUNT,
                              -HCONN_ERROR_COUNT - 1,
                              -1000000,
                              INT32_MIN + 1,
                              INT32_MAX};

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_string_equal(hconn_error_name(bad[i]), "unknown");
        assert_string_equal(hconn_strerror(bad[i]), "unknown error");
    }
}

/* INT_MIN too: negating it would overflow, so the lookup must compare
 * before it negates. */
static void
test_int_min(void **state)
{
    (void)state;
    assert_string_equal(hconn_error_name(INT32_MIN), "unknown");
    assert_string_equal(hconn_strerror(INT32_MIN), "unknown error");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes_consecutive),
        cmocka_unit_test(test_codes_pinned),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_names_well_formed),
        cmocka_unit_test(test_unknown_name),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_int_min),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
