/*
 * test-config.c — hconnd's config file (daemon/config.c): the HTTP/2 keys
 * ("http2", "h2c_origins", "h2_max_concurrent_streams") and the drain
 * keys ("drain_max_bytes", "drain_timeout") with their defaults, valid
 * values and refusals naming the key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

/* Writes text to a temporary file and loads it over cfg; returns what
 * config_load returned, err holding its message. */
static int
load_text(struct config *cfg, const char *text, char *err, size_t errlen)
{
    char path[] = "/tmp/hconn-test-config-XXXXXX";
    int fd = mkstemp(path), rc;
    FILE *f;

    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    rc = config_load(cfg, path, err, errlen);
    unlink(path);
    return rc;
}

/* The defaults: HTTP/2 on, no h2c origins, 100 streams. */
static void
test_h2_defaults(void **state)
{
    struct config cfg;

    (void)state;
    config_init(&cfg);
    assert_true(cfg.http2);
    assert_int_equal(cfg.n_h2c_origins, 0);
    assert_int_equal(cfg.h2_max_concurrent_streams, 100);
    assert_false(config_is_h2c_origin(&cfg, "localhost", 80));
    config_clear(&cfg);
}

/* Valid values are taken; origins match without case and brackets. */
static void
test_h2_keys(void **state)
{
    struct config cfg;
    char err[512];

    (void)state;
    config_init(&cfg);
    assert_int_equal(
        load_text(&cfg,
                  "{\"http2\": false, \"h2_max_concurrent_streams\":"
                  " 7, \"h2c_origins\": [\"LocalHost:8080\","
                  " \"[::1]:9000\", \"127.0.0.1:1\"]}",
                  err, sizeof err),
        0);
    assert_false(cfg.http2);
    assert_int_equal(cfg.h2_max_concurrent_streams, 7);
    assert_int_equal(cfg.n_h2c_origins, 3);
    assert_true(config_is_h2c_origin(&cfg, "localhost", 8080));
    assert_true(config_is_h2c_origin(&cfg, "LOCALHOST", 8080));
    assert_true(config_is_h2c_origin(&cfg, "::1", 9000));
    assert_true(config_is_h2c_origin(&cfg, "127.0.0.1", 1));
    assert_false(config_is_h2c_origin(&cfg, "localhost", 8081));
    assert_false(config_is_h2c_origin(&cfg, "127.0.0.2", 1));
    /* A second load replaces the list. */
    assert_int_equal(load_text(&cfg, "{\"h2c_origins\": []}", err, sizeof err),
                     0);
    assert_int_equal(cfg.n_h2c_origins, 0);
    assert_false(config_is_h2c_origin(&cfg, "localhost", 8080));
    config_clear(&cfg);
}

/* Wrong values are refused naming the key, and leave cfg unchanged. */
static void
test_h2_bad(void **state)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"{\"http2\": 1}", "\"http2\""},
        {"{\"http2\": \"yes\"}", "\"http2\""},
        {"{\"h2_max_concurrent_streams\": 0}", "\"h2_max_concurrent_streams\""},
        {"{\"h2_max_concurrent_streams\": 1001}",
         "\"h2_max_concurrent_streams\""},
        {"{\"h2c_origins\": \"h:80\"}", "\"h2c_origins\""},
        {"{\"h2c_origins\": [\"h\"]}", "\"h2c_origins\"[0]"},
        {"{\"h2c_origins\": [\"h:80\", \"h:0\"]}", "\"h2c_origins\"[1]"},
        {"{\"h2c_origins\": [\"h:65536\"]}", "\"h2c_origins\"[0]"},
        {"{\"h2c_origins\": [\"::1:80\"]}", "\"h2c_origins\"[0]"},
        {"{\"h2c_origins\": [\"[::1]80\"]}", "\"h2c_origins\"[0]"},
        {"{\"h2c_origins\": [\":80\"]}", "\"h2c_origins\"[0]"},
        {"{\"h2c_origins\": [\"h:80x\"]}", "\"h2c_origins\"[0]"},
        {"{\"h2c_origins\": [\"h/x:80\"]}", "\"h2c_origins\"[0]"},
        {"{\"h2c_origins\": [5]}", "\"h2c_origins\"[0]"},
    };
    struct config cfg;
    char err[512];

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        config_init(&cfg);
        assert_int_equal(
            load_text(&cfg, "{\"h2c_origins\": [\"a:1\"]}", err, sizeof err),
            0);
        assert_int_equal(load_text(&cfg, cases[i].text, err, sizeof err), -1);
        if (strstr(err, cases[i].want) == NULL) {
            print_error("%s: error \"%s\" does not name %s\n", cases[i].text,
                        err, cases[i].want);
            fail();
        }
        assert_true(cfg.http2);
        assert_int_equal(cfg.h2_max_concurrent_streams, 100);
        assert_true(config_is_h2c_origin(&cfg, "a", 1));
        config_clear(&cfg);
    }
}

/* Draining: 64 KiB in 1 s by default; 0 turns it off; out of range is
 * refused naming the key. */
static void
test_drain_keys(void **state)
{
    struct config cfg;
    char err[512];

    (void)state;
    config_init(&cfg);
    assert_int_equal(cfg.drain_max_bytes, 65536);
    assert_true(cfg.drain_timeout == 1);
    assert_int_equal(load_text(&cfg,
                               "{\"drain_max_bytes\": 0,"
                               " \"drain_timeout\": 0.25}",
                               err, sizeof err),
                     0);
    assert_int_equal(cfg.drain_max_bytes, 0);
    assert_true(cfg.drain_timeout == 0.25);
    assert_int_equal(
        load_text(&cfg, "{\"drain_timeout\": 61}", err, sizeof err), -1);
    assert_non_null(strstr(err, "\"drain_timeout\""));
    assert_int_equal(
        load_text(&cfg, "{\"drain_max_bytes\": -1}", err, sizeof err), -1);
    assert_non_null(strstr(err, "\"drain_max_bytes\""));
    config_clear(&cfg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_h2_defaults),
        cmocka_unit_test(test_h2_keys),
        cmocka_unit_test(test_h2_bad),
        cmocka_unit_test(test_drain_keys),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
