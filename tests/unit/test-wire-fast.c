/*
 * test-wire-fast.c — the fast request scanner (proto/wire_fast.c): the
 * common messages are accepted with the message the full path gives
 * (wire_parse_client_msg on the same line, every byte), their strings
 * outlive the line, and everything it does not fully know is declined
 * (never rejected), leaving nothing behind. tests/fuzz/fuzz-wire-fast
 * holds it to the full path on arbitrary lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../fuzz/wire-fast-same.h"
#include "wire.h"
#include "wire_fast.h"

/* One line through both paths: the full one must accept it and the
 * scanner must accept it with the same common fields. Returns the
 * scanner's message (strings its own) and its id reference in *id. */
static struct wire_client_msg
fast_accept(const char *text, json_t **id)
{
    size_t n = strlen(text);
    char *line = malloc(n > 0 ? n : 1);
    struct wire_client_msg full, fast;
    json_t *msg;
    char err[256];

    assert_non_null(line);
    memcpy(line, text, n);
    msg = json_loadb(text, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    assert_non_null(msg);
    assert_int_equal(wire_parse_client_msg(msg, &full, err, sizeof err), 0);
    if (wire_fast_parse_client_msg(line, n, &fast, id) != WIRE_FAST_ACCEPTED) {
        print_error("declined: %s\n", text);
        fail();
    }
    /* The line may go at once: nothing points into it. */
    memset(line, '#', n);
    free(line);
    /* Every byte of the message (wire-fast-same.h), then the common
     * fields one by one, so a failure names the field. */
    assert_true(wire_fast_same(&fast, &full));
    assert_int_equal(fast.kind, full.kind);
    assert_ptr_equal(fast.id, *id);
    if (full.id == NULL)
        assert_null(fast.id);
    else
        assert_true(json_equal(fast.id, full.id) &&
                    json_typeof(fast.id) == json_typeof(full.id));
    assert_int_equal(fast.has_data, full.has_data);
    assert_int_equal(fast.data_len, full.data_len);
    if (full.kind == WIRE_MSG_REQUEST) {
        const struct wire_request *a = &fast.req, *b = &full.req;

        assert_string_equal(a->method, b->method);
        assert_string_equal(a->host, b->host);
        assert_string_equal(a->target, b->target);
        assert_int_equal(a->port, b->port);
        assert_int_equal(a->tls, b->tls);
        assert_int_equal(a->nheaders, b->nheaders);
        for (size_t i = 0; i < a->nheaders; i++) {
            assert_string_equal(a->headers[i].name, b->headers[i].name);
            assert_string_equal(a->headers[i].value, b->headers[i].value);
        }
        assert_int_equal(a->body, b->body);
        assert_int_equal(a->length, b->length);
        assert_true(a->timeout == b->timeout);
        assert_int_equal(a->has_read_timeout, b->has_read_timeout);
        assert_true(a->read_timeout == b->read_timeout);
        assert_int_equal(a->direct, b->direct);
        assert_int_equal(a->tls_options.verify, b->tls_options.verify);
    }
    wire_client_msg_clear(&full);
    json_decref(msg);
    return fast;
}

/* Frees what fast_accept returned. */
static void
fast_free(struct wire_client_msg *m, json_t *id)
{
    wire_client_msg_clear(m);
    json_decref(id);
}

/* The scanner declines text, leaving *out zeroed and no id. */
static void
assert_declined(const char *text)
{
    struct wire_client_msg m, zero;
    json_t *id = (json_t *)&zero; /* must be overwritten with NULL */

    memset(&zero, 0, sizeof zero);
    if (wire_fast_parse_client_msg(text, strlen(text), &m, &id) !=
        WIRE_FAST_DECLINED) {
        print_error("accepted: %s\n", text);
        wire_client_msg_clear(&m);
        json_decref(id);
        fail();
    }
    assert_null(id);
    assert_memory_equal(&m, &zero, sizeof zero);
}

/* The request hconn's loadgen and most clients send: by URL. */
static void
test_get_url(void **state)
{
    json_t *id;
    struct wire_client_msg m =
        fast_accept("{\"id\":1,\"method\":\"GET\","
                    "\"url\":\"http://127.0.0.1:8080/x?y=1#frag\"}",
                    &id);

    (void)state;
    assert_int_equal(m.kind, WIRE_MSG_REQUEST);
    assert_true(json_is_integer(m.id) && json_integer_value(m.id) == 1);
    assert_string_equal(m.req.method, "GET");
    assert_string_equal(m.req.host, "127.0.0.1");
    assert_string_equal(m.req.target, "/x?y=1");
    assert_int_equal(m.req.port, 8080);
    assert_false(m.req.tls);
    assert_int_equal(m.req.body, WIRE_BODY_NONE);
    assert_int_equal(m.req.length, -1);
    assert_true(m.req.tls_options.verify);
    fast_free(&m, id);

    m = fast_accept("{\"id\":2,\"method\":\"GET\",\"url\":\"https://[::1]\"}",
                    &id);
    assert_string_equal(m.req.host, "::1");
    assert_string_equal(m.req.target, "/");
    assert_int_equal(m.req.port, 443);
    assert_true(m.req.tls);
    fast_free(&m, id);
}

/* libhconn's form: host, port, tls, target, headers as pairs, with the
 * short escapes and whitespace of other encoders. */
static void
test_host_port_headers(void **state)
{
    json_t *id;
    struct wire_client_msg m = fast_accept(
        " { \"id\" : 9007199254740991 , \"method\":\"POST\", "
        "\"host\":\"h.test\","
        "\"port\":8443,\"tls\":true,\"target\":\"/a\\/b\","
        "\"headers\":[[\"X-Q\",\"a\\\"b\\\\c\\td\"],[\"X-U\",\"\xc3\xa9\"]],"
        "\"skip_host\":true,\"skip_accept_encoding\":false,"
        "\"raw\":false,\"data\":5}\r",
        &id);

    (void)state;
    assert_true(json_integer_value(m.id) == 9007199254740991LL);
    assert_string_equal(m.req.host, "h.test");
    assert_string_equal(m.req.target, "/a/b");
    assert_int_equal(m.req.port, 8443);
    assert_true(m.req.tls);
    assert_int_equal(m.req.nheaders, 2);
    assert_string_equal(m.req.headers[0].value, "a\"b\\c\td");
    assert_string_equal(m.req.headers[1].value, "\xc3\xa9");
    assert_true(m.req.skip_host);
    assert_true(m.has_data);
    assert_int_equal(m.data_len, 5);
    assert_int_equal(m.req.body, WIRE_BODY_INLINE);
    assert_int_equal(m.req.length, 5);
    fast_free(&m, id);

    /* Defaults: port from tls, target "/", no headers allocated. */
    m = fast_accept("{\"method\":\"HEAD\",\"host\":\"h\",\"headers\":[]}", &id);
    assert_null(m.id);
    assert_null(id);
    assert_int_equal(m.req.port, 80);
    assert_string_equal(m.req.target, "/");
    assert_null(m.req.headers);
    assert_int_equal(m.req.nheaders, 0);
    fast_free(&m, id);
}

/* Headers as an object, in the order given; a string id. */
static void
test_header_object(void **state)
{
    json_t *id;
    struct wire_client_msg m =
        fast_accept("{\"id\":\"req-1\",\"method\":\"GET\",\"host\":\"h\","
                    "\"headers\":{\"B\":\"2\",\"A\":\"1\",\"C\":\"\"}}",
                    &id);

    (void)state;
    assert_string_equal(json_string_value(m.id), "req-1");
    assert_int_equal(m.req.nheaders, 3);
    assert_string_equal(m.req.headers[0].name, "B");
    assert_string_equal(m.req.headers[1].name, "A");
    assert_string_equal(m.req.headers[2].value, "");
    fast_free(&m, id);
}

/* A streamed body with its options; timeouts as integers and fractions. */
static void
test_stream_options(void **state)
{
    json_t *id;
    struct wire_client_msg m = fast_accept(
        "{\"id\":3,\"method\":\"PUT\",\"host\":\"h\",\"body\":\"stream\","
        "\"length\":10,\"expect_continue\":true,\"timeout\":2.5,"
        "\"read_timeout\":0,\"proxy\":false}",
        &id);

    (void)state;
    assert_int_equal(m.req.body, WIRE_BODY_STREAM);
    assert_int_equal(m.req.length, 10);
    assert_true(m.req.expect_continue);
    assert_true(m.req.timeout == 2.5);
    assert_true(m.req.has_read_timeout);
    assert_true(m.req.read_timeout == 0);
    assert_true(m.req.direct);
    fast_free(&m, id);

    m = fast_accept("{\"id\":4,\"method\":\"PUT\",\"host\":\"h\","
                    "\"body\":\"stream\",\"timeout\":86400}",
                    &id);
    assert_int_equal(m.req.length, -1);
    assert_true(m.req.timeout == 86400.0);
    assert_false(m.req.has_read_timeout);
    fast_free(&m, id);

    m = fast_accept("{\"id\":5,\"method\":\"GET\",\"host\":\"h\","
                    "\"timeout\":0.1,\"read_timeout\":86399.999}",
                    &id);
    assert_true(m.req.timeout == 0.1);
    assert_true(m.req.read_timeout == 86399.999);
    fast_free(&m, id);
}

/* The frames of a streamed body. */
static void
test_frames(void **state)
{
    json_t *id;
    struct wire_client_msg m = fast_accept("{\"id\":3,\"data\":4096}", &id);

    (void)state;
    assert_int_equal(m.kind, WIRE_MSG_DATA);
    assert_true(m.has_data);
    assert_int_equal(m.data_len, 4096);
    assert_null(m.req.host);
    fast_free(&m, id);

    m = fast_accept("{\"data\":0,\"id\":\"s\"}", &id);
    assert_int_equal(m.kind, WIRE_MSG_DATA);
    assert_int_equal(m.data_len, 0);
    fast_free(&m, id);

    m = fast_accept("{\"id\":\"s\",\"end\":true}", &id);
    assert_int_equal(m.kind, WIRE_MSG_END);
    assert_false(m.has_data);
    assert_string_equal(json_string_value(m.id), "s");
    fast_free(&m, id);
}

/* "tls" objects of paths, names and flags, as hconn --cacert and the
 * libraries send them: the same options as the full path's. */
static void
test_tls_object(void **state)
{
    json_t *id;
    struct wire_client_msg m = fast_accept(
        "{\"id\":1,\"method\":\"GET\",\"host\":\"127.0.0.1\",\"port\":8443,"
        "\"target\":\"/small\",\"tls\": { \"ca_file\" : "
        "\"/etc/ssl/a\\/ca.pem\","
        "\"server_name\":\"example.test\",\"verify\":true}}",
        &id);

    (void)state;
    assert_true(m.req.tls);
    assert_true(m.req.has_tls_options);
    assert_string_equal(m.req.tls_options.ca_file, "/etc/ssl/a/ca.pem");
    assert_string_equal(m.req.tls_options.server_name, "example.test");
    assert_true(m.req.tls_options.verify);
    assert_false(m.req.tls_options.insecure);
    fast_free(&m, id);

    m = fast_accept("{\"id\":2,\"method\":\"GET\",\"url\":\"https://h/x\","
                    "\"tls\":{\"ca_path\":\"/c\",\"cert_file\":\"/c.crt\","
                    "\"key_file\":\"/c.key\",\"min_version\":\"1.3\","
                    "\"check_hostname\":false}}",
                    &id);
    assert_int_equal(m.req.port, 443);
    assert_string_equal(m.req.tls_options.key_file, "/c.key");
    assert_true(m.req.tls_options.no_check_hostname);
    fast_free(&m, id);

    m = fast_accept("{\"id\":3,\"method\":\"GET\",\"host\":\"h\","
                    "\"tls\":{\"insecure\":true,\"verify\":false}}",
                    &id);
    assert_false(m.req.tls_options.verify);
    assert_true(m.req.tls_options.insecure);
    fast_free(&m, id);

    m = fast_accept("{\"id\":4,\"method\":\"GET\",\"host\":\"h\",\"tls\":{},"
                    "\"http_version\":\"1.1\"}",
                    &id);
    assert_int_equal(m.req.http_version, WIRE_HTTP_1_1);
    assert_true(m.req.tls);
    assert_int_equal(m.req.port, 443);
    assert_true(m.req.has_tls_options);
    fast_free(&m, id);
}

/* What the scanner does not fully know goes to the full path: rare or
 * unknown fields (including ones a newer protocol adds), escapes that may
 * carry U+0000, numbers outside the plain forms, duplicates, and every
 * invalid message, whose error only the full path words. */
static void
test_declines(void **state)
{
    static const char *const lines[] = {
        /* not the common shape */
        "",
        "   ",
        "[]",
        "{}",
        "{\"op\":\"hello\",\"id\":1}",
        "{\"id\":1,\"method\":\"GET\",\"url\":\"http://h/\","
        "\"http_version\":\"1.0\"}",
        "{\"id\":1,\"method\":\"GET\",\"url\":\"http://h/\","
        "\"http_version\":2}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\","
        "\"tls\":{\"ca_pem\":\"-----BEGIN CERTIFICATE-----\\nx\"}}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\","
        "\"tls\":{\"ca_file\":\"/\\u0061\"}}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\",\"tls\":{\"op\":1}}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\","
        "\"proxy\":{\"host\":\"p\",\"port\":1}}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\","
        "\"source_address\":[\"\",0]}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"\\u0068\"}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\",\"timeout\":1e3}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\",\"read_timeout\":-0}",
        /* duplicates */
        "{\"id\":1,\"id\":2,\"method\":\"GET\",\"host\":\"h\"}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\","
        "\"headers\":{\"A\":\"1\",\"A\":\"2\"}}",
        /* invalid JSON or invalid values */
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\"",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\"}x",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\",}",
        "{\"id\":01,\"method\":\"GET\",\"host\":\"h\"}",
        "{\"id\":-1,\"method\":\"GET\",\"host\":\"h\"}",
        "{\"id\":9007199254740992,\"method\":\"GET\",\"host\":\"h\"}",
        "{\"id\":1.0,\"method\":\"GET\",\"host\":\"h\"}",
        "{\"id\":\"\",\"method\":\"GET\",\"host\":\"h\"}",
        "{\"id\":null,\"method\":\"GET\",\"host\":\"h\"}",
        "{\"id\":1,\"method\":\"G\tT\",\"host\":\"h\"}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\xff\"}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\xed\xa0\x80\"}",
        "{\"id\":1,\"method\":\"\",\"host\":\"h\"}",
        "{\"id\":1,\"method\":\"GET\"}",
        "{\"id\":1,\"method\":\"GET\",\"url\":\"ftp://h/\"}",
        "{\"id\":1,\"method\":\"GET\",\"url\":\"http://h/\",\"port\":80}",
        "{\"id\":1,\"method\":\"GET\",\"url\":\"http://h/\",\"tls\":false}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h h\"}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\",\"port\":0}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\",\"port\":65536}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\",\"target\":\"/a b\"}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\",\"target\":\"\"}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\",\"headers\":[[\"A\"]]}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\",\"headers\":\"A: 1\"}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\",\"tls\":1}",
        "{\"id\":1,\"method\":\"GET\",\"url\":\"http://h/\",\"tls\":{}}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\","
        "\"tls\":{\"ca_file\":\"/a\",\"ca_file\":\"/b\"}}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\",\"tls\":{\"ca_file\":\"\"}"
        "}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\",\"tls\":{\"ca_file\":1}}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\",\"tls\":{\"verify\":1}}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\",\"tls\":{\"key_file\":\"/"
        "k\"}}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\","
        "\"tls\":{\"server_name\":\"a b\"}}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\","
        "\"tls\":{\"min_version\":\"1.1\"}}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\","
        "\"tls\":{\"verify\":true,\"insecure\":true}}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\",\"tls\":{\"ca_file\":\"/"
        "a\"}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\",\"proxy\":true}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\",\"body\":\"inline\"}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\",\"body\":\"stream\","
        "\"data\":1}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\",\"length\":1}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\",\"timeout\":0}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\",\"timeout\":86400.5}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\",\"timeout\":1.}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\",\"data\":-1}",
        "{\"id\":1,\"method\":\"GET\",\"host\":\"h\",\"end\":true}",
        /* frames */
        "{\"data\":1}",
        "{\"end\":true}",
        "{\"id\":1,\"end\":false}",
        "{\"id\":1,\"data\":1,\"end\":true}",
        "{\"id\":1,\"data\":1,\"host\":\"h\"}",
    };

    (void)state;
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++)
        assert_declined(lines[i]);
}

/* More headers than the scanner holds: declined, not cut short. */
static void
test_many_headers(void **state)
{
    char line[8192];
    size_t n = 0;

    (void)state;
    n += (size_t)snprintf(line + n, sizeof line - n,
                          "{\"id\":1,\"method\":\"GET\",\"host\":\"h\","
                          "\"headers\":[");
    for (int i = 0; i <= WIRE_FAST_MAX_HEADERS; i++)
        n += (size_t)snprintf(line + n, sizeof line - n, "%s[\"X\",\"%d\"]",
                              i > 0 ? "," : "", i);
    snprintf(line + n, sizeof line - n, "]}");
    assert_declined(line);
}

/* The scanner agrees with the full path on line[0..n): declined, or
 * accepted with the same message as the full path's; returns whether it
 * accepted. */
static bool
fast_agrees(const char *line, size_t n)
{
    struct wire_client_msg fast, full;
    json_t *id, *msg;
    char err[256];
    bool accepted;

    accepted =
        wire_fast_parse_client_msg(line, n, &fast, &id) == WIRE_FAST_ACCEPTED;
    if (accepted) {
        msg =
            json_loadb(line, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
        assert_non_null(msg);
        assert_int_equal(wire_parse_client_msg(msg, &full, err, sizeof err), 0);
        assert_true(wire_fast_same(&fast, &full));
        wire_client_msg_clear(&full);
        json_decref(msg);
        fast_free(&fast, id);
    }
    return accepted;
}

/* Strings are skipped a word at a time to the first byte that needs a
 * look: a header value of every length around the word edges (7/8/9,
 * 15/16/17) with a quote, a backslash escape, a control byte, DEL, UTF-8
 * or a byte that is not UTF-8 at every position agrees with the full
 * path, plain ones are accepted, and a line that ends inside the string
 * (its end in the middle of a word) is declined. */
static void
test_string_edges(void **state)
{
    static const char *const odd[] = {"\"",   "\\\\", "\\n",  "\\q",
                                      "\x01", "\t",   "\x7f", "\xc3\xa9",
                                      "\xe9", "\xc3", "~",    " "};
    char value[40], line[256];

    (void)state;
    for (size_t len = 0; len <= 25; len++) {
        for (size_t at = 0; at <= len; at++) {
            for (size_t k = 0; k < sizeof odd / sizeof *odd; k++) {
                size_t n, vn = 0;

                for (size_t i = 0; i < len; i++) {
                    if (i == at) {
                        memcpy(value + vn, odd[k], strlen(odd[k]));
                        vn += strlen(odd[k]);
                    } else {
                        value[vn++] = (char)('a' + i % 26);
                    }
                }
                n = (size_t)snprintf(
                    line, sizeof line,
                    "{\"id\":1,\"method\":\"GET\",\"url\":\"http://h/\","
                    "\"headers\":[[\"X-V\",\"%.*s\"]]}",
                    (int)vn, value);
                /* Printable ASCII, escapes and UTF-8 are the scanner's;
                 * a bare quote, a bad escape, a control byte or bytes
                 * that are not UTF-8 make the line invalid. */
                if (k != 0 && k != 3 && k != 4 && k != 5 && k != 8 && k != 9)
                    assert_true(fast_agrees(line, n) || at == len);
                else
                    assert_false(fast_agrees(line, n) && at < len);
                /* Cut inside the value, then just after it. */
                for (size_t cut = n - 4 - vn; cut <= n - 4; cut++)
                    assert_false(fast_agrees(line, cut));
            }
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_url),
        cmocka_unit_test(test_host_port_headers),
        cmocka_unit_test(test_header_object),
        cmocka_unit_test(test_stream_options),
        cmocka_unit_test(test_frames),
        cmocka_unit_test(test_tls_object),
        cmocka_unit_test(test_declines),
        cmocka_unit_test(test_many_headers),
        cmocka_unit_test(test_string_edges),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
