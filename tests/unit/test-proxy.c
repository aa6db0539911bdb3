/*
 * test-proxy.c — the daemon's default proxies (daemon/proxy.c): config
 * over environment, no_proxy matching, and the CONNECT request head.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "hconn_error.h"
#include "proxy.h"
#include "wire.h"

static void
proxy_env_clear(void)
{
    static const char *const vars[] = {"http_proxy",  "https_proxy",
                                       "HTTPS_PROXY", "no_proxy",
                                       "NO_PROXY",    "HTTP_PROXY"};

    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        unsetenv(vars[i]);
}

static void
test_environment(void **state)
{
    struct config cfg;
    struct proxy_defaults d;
    char err[256];

    (void)state;
    proxy_env_clear();
    config_init(&cfg);
    setenv("HTTP_PROXY", "http://cgi-injected:1", 1); /* never read */
    setenv("HTTPS_PROXY", "http://u:p@secure:3128", 1);
    setenv("no_proxy", "localhost, .internal,10.1.2.3", 1);
    assert_int_equal(proxy_defaults_load(&d, &cfg, err, sizeof err), 0);
    assert_null(d.http);
    assert_non_null(d.https);
    assert_string_equal(d.https->host, "secure");
    assert_int_equal(d.https->port, 3128);
    assert_string_equal(d.https->authorization, "Basic dTpw");

    assert_ptr_equal(proxy_default_for(&d, true, "example.com"), d.https);
    assert_null(proxy_default_for(&d, false, "example.com"));
    assert_null(proxy_default_for(&d, true, "localhost"));
    assert_null(proxy_default_for(&d, true, "LOCALHOST"));
    assert_null(proxy_default_for(&d, true, "a.b.internal"));
    assert_null(proxy_default_for(&d, true, "internal"));
    assert_ptr_equal(proxy_default_for(&d, true, "notinternal"), d.https);
    assert_null(proxy_default_for(&d, true, "10.1.2.3"));
    assert_ptr_equal(proxy_default_for(&d, true, "110.1.2.3"), d.https);
    proxy_defaults_clear(&d);

    setenv("no_proxy", "*", 1);
    assert_int_equal(proxy_defaults_load(&d, &cfg, err, sizeof err), 0);
    assert_null(proxy_default_for(&d, true, "example.com"));
    proxy_defaults_clear(&d);
    proxy_env_clear();
    config_clear(&cfg);
}

static void
test_config_wins(void **state)
{
    struct config cfg;
    struct proxy_defaults d;
    char err[256];

    (void)state;
    proxy_env_clear();
    config_init(&cfg);
    setenv("http_proxy", "envproxy:1", 1);
    setenv("https_proxy", "envproxy:2", 1);
    cfg.http_proxy = strdup("cfgproxy:3");
    cfg.https_proxy = strdup(""); /* set, and empty: none */
    assert_int_equal(proxy_defaults_load(&d, &cfg, err, sizeof err), 0);
    assert_string_equal(d.http->host, "cfgproxy");
    assert_int_equal(d.http->port, 3);
    assert_null(d.https);
    proxy_defaults_clear(&d);

    free(cfg.http_proxy);
    cfg.http_proxy = strdup("ftp://nope");
    assert_int_equal(proxy_defaults_load(&d, &cfg, err, sizeof err),
                     HCONN_EINVALID_URL);
    assert_non_null(strstr(err, "http_proxy"));
    assert_null(d.http);
    assert_null(d.https);
    proxy_env_clear();
    config_clear(&cfg);
}

static void
test_connect_head(void **state)
{
    struct wire_header fields[] = {{"X-Trace", "1"}};
    struct wire_header auth[] = {{"proxy-authorization", "Bearer t"}};
    char *head, err[256];
    size_t len;
    const char *want;

    (void)state;
    assert_int_equal(proxy_format_connect("origin.test", 443, fields, 1,
                                          "Basic dTpw", &head, &len, err,
                                          sizeof err),
                     0);
    want = "CONNECT origin.test:443 HTTP/1.1\r\n"
           "Host: origin.test:443\r\n"
           "X-Trace: 1\r\n"
           "Proxy-Authorization: Basic dTpw\r\n\r\n";
    assert_int_equal(len, strlen(want));
    assert_memory_equal(head, want, len);
    free(head);

    /* The caller's own Proxy-Authorization wins; IPv6 in brackets. */
    assert_int_equal(proxy_format_connect("::1", 80, auth, 1, "Basic dTpw",
                                          &head, &len, err, sizeof err),
                     0);
    want = "CONNECT [::1]:80 HTTP/1.1\r\n"
           "Host: [::1]:80\r\n"
           "proxy-authorization: Bearer t\r\n\r\n";
    assert_int_equal(len, strlen(want));
    assert_memory_equal(head, want, len);
    free(head);

    fields[0].value = "a\r\nInjected: 1";
    assert_int_equal(proxy_format_connect("o", 1, fields, 1, NULL, &head, &len,
                                          err, sizeof err),
                     HCONN_EINVALID_HEADER);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_environment),
        cmocka_unit_test(test_config_wins),
        cmocka_unit_test(test_connect_head),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
