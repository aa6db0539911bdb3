/*
 * test-wire.c — the wire protocol v1 codec (proto/wire.c, PROTOCOL.md):
 * line framing fed whole, split at every byte boundary and byte by byte;
 * every client message field valid and invalid (exact code, and err names
 * the field); payload framing kept on errors; reply builders to exact JSON
 * text; the client's reply parser; UTF-8 / ISO-8859-1 strings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hconn_error.h"
#include "http1.h"
#include "wire.h"
#include "decimal.h"
#include "wire_line.h"

#define MAX_INT53 9007199254740991LL

/* Asserts that err mentions want, printing both when it does not. */
static void
assert_err_has(const char *err, const char *want)
{
    if (strstr(err, want) == NULL) {
        print_error("error \"%s\" does not mention \"%s\"\n", err, want);
        fail();
    }
}

/* ---- Framing ---------------------------------------------------------- */

/* A growing text of what a reader produced: "M <json>" or "E <code> <err>"
 * lines, so a whole feed and a split feed can be compared. */
struct transcript {
    char text[8192];
    size_t len;
};

static void
transcript_add(struct transcript *t, int rc, json_t *msg, const char *err)
{
    char *s = msg != NULL ? json_dumps(msg, JSON_COMPACT) : NULL;
    int n;

    if (msg != NULL)
        n = snprintf(t->text + t->len, sizeof(t->text) - t->len, "M %s\n", s);
    else
        n = snprintf(t->text + t->len, sizeof(t->text) - t->len, "E %d %s\n",
                     rc, err);
    free(s);
    assert_true(n > 0 && (size_t)n < sizeof(t->text) - t->len);
    t->len += (size_t)n;
}

/* Feeds in[0..len) in chunks of at most step bytes (0: all at once, then
 * also split once at split) into a reader with a caller-side buffer, as a
 * daemon would, and records every message and error. */
static void
feed(const char *in, size_t len, size_t split, size_t step, size_t max_line,
     struct transcript *t)
{
    struct wire_reader r;
    char *pending = malloc(len + 1);
    size_t have = 0, off = 0;

    assert_non_null(pending);
    memset(&r, 0, sizeof(r));
    wire_reader_init(&r, max_line);
    memset(t, 0, sizeof(*t));
    while (off < len) {
        size_t n = step > 0 ? step : (off < split ? split - off : len - off);

        if (n > len - off)
            n = len - off;
        memcpy(pending + have, in + off, n);
        have += n;
        off += n;
        for (;;) {
            size_t consumed;
            json_t *msg;
            char err[256] = "";
            int rc = wire_read_line(&r, pending, have, &consumed, &msg, err,
                                    sizeof(err));

            assert_true(consumed <= have);
            memmove(pending, pending + consumed, have - consumed);
            have -= consumed;
            if (rc != 0) {
                assert_int_equal(rc, HCONN_EBAD_MESSAGE);
                assert_null(msg);
                transcript_add(t, rc, NULL, err);
            } else if (msg != NULL) {
                transcript_add(t, 0, msg, NULL);
                json_decref(msg);
            } else if (consumed == 0) {
                break;
            }
        }
    }
    free(pending);
}

static const char framing_input[] =
    "{\"id\":1,\"method\":\"GET\"}\n"
    "\n"
    "\r\n"
    " \t \r\n"
    "{\"a\":\"b c\"} \r\n"
    "{\"x\":}\n"
    "[1,2]\n"
    "42\n"
    "{\"long\":\"0123456789012345678901234567890123456789\"}\n"
    "{\"k\":\"caf\xc3\xa9\"}\n"
    "{\"a\":1,\"a\":2}\n"
    "{\"bad\":\"\xff\"}\n"
    "  {\"sp\":true}  \n"
    "{\"last\":null}\n";

static const char framing_expect[] =
    "M {\"id\":1,\"method\":\"GET\"}\n"
    "M {\"a\":\"b c\"}\n"
    "E -22 invalid JSON: unexpected token near '}' (column 6)\n"
    "E -22 message is not a JSON object\n"
    "E -22 message is not a JSON object\n"
    "E -22 message line exceeds 48 bytes\n"
    "M {\"k\":\"caf\xc3\xa9\"}\n"
    "E -22 invalid JSON: duplicate object key near '\"a\"' (column 10)\n"
    "E -22 invalid JSON: unable to decode byte 0xff near '\"' (column 8)\n"
    "M {\"sp\":true}\n"
    "M {\"last\":null}\n";

/* A stream of lines read from one buffer: messages, skipped blank lines,
 * CRLF, errors that do not stop the stream. */
static void
test_framing_whole(void **state)
{
    struct transcript t;

    (void)state;
    feed(framing_input, sizeof(framing_input) - 1, 0, 0, 48, &t);
    assert_string_equal(t.text, framing_expect);
}

/* The same bytes split in two at every boundary, then byte by byte. */
static void
test_framing_split(void **state)
{
    static struct transcript t;
    size_t len = sizeof(framing_input) - 1;

    (void)state;
    for (size_t split = 0; split <= len; split++) {
        feed(framing_input, len, split, 0, 48, &t);
        assert_string_equal(t.text, framing_expect);
    }
    feed(framing_input, len, 0, 1, 48, &t);
    assert_string_equal(t.text, framing_expect);
    feed(framing_input, len, 0, 7, 48, &t);
    assert_string_equal(t.text, framing_expect);
}

/* Incomplete lines wait; blank lines are consumed without a message. */
static void
test_framing_partial_and_blank(void **state)
{
    struct wire_reader r = {0};
    size_t consumed = 99;
    json_t *msg = (json_t *)1;
    char err[128];

    (void)state;
    wire_reader_init(&r, WIRE_MAX_LINE);
    assert_int_equal(
        wire_read_line(&r, "{\"a\":1}", 7, &consumed, &msg, err, sizeof(err)),
        0);
    assert_int_equal(consumed, 0);
    assert_null(msg);
    assert_int_equal(
        wire_read_line(&r, "", 0, &consumed, &msg, err, sizeof(err)), 0);
    assert_int_equal(consumed, 0);
    assert_int_equal(
        wire_read_line(&r, "\n{}", 3, &consumed, &msg, err, sizeof(err)), 0);
    assert_int_equal(consumed, 1);
    assert_null(msg);
    assert_int_equal(
        wire_read_line(&r, "\r\n", 2, &consumed, &msg, err, sizeof(err)), 0);
    assert_int_equal(consumed, 2);
    assert_null(msg);
    assert_int_equal(
        wire_read_line(&r, "{}\r\n", 4, &consumed, &msg, err, sizeof(err)), 0);
    assert_int_equal(consumed, 4);
    assert_non_null(msg);
    assert_int_equal(json_object_size(msg), 0);
    json_decref(msg);
}

/* The real limit: 1 MiB including '\n' passes, one byte more does not;
 * an over-long line is discarded through its '\n' and the next one read. */
static void
test_framing_overlong(void **state)
{
    struct wire_reader r = {0};
    size_t consumed, total = 0, n = WIRE_MAX_LINE + 64;
    char *buf = malloc(n + 64), err[128];
    json_t *msg;
    int rc;

    (void)state;
    assert_non_null(buf);
    wire_reader_init(&r, WIRE_MAX_LINE);

    /* Exactly WIRE_MAX_LINE bytes with the '\n': a message. */
    memcpy(buf, "{\"a\":\"", 6);
    memset(buf + 6, 'x', WIRE_MAX_LINE - 9);
    memcpy(buf + WIRE_MAX_LINE - 3, "\"}\n", 3);
    rc = wire_read_line(&r, buf, WIRE_MAX_LINE, &consumed, &msg, err,
                        sizeof(err));
    assert_int_equal(rc, 0);
    assert_int_equal(consumed, WIRE_MAX_LINE);
    assert_non_null(msg);
    json_decref(msg);

    /* One byte more, '\n' in the buffer: refused, line dropped whole. */
    memcpy(buf, "{\"a\":\"", 6);
    memset(buf + 6, 'x', WIRE_MAX_LINE - 8);
    memcpy(buf + WIRE_MAX_LINE - 2, "\"}\n{}\n", 6);
    rc = wire_read_line(&r, buf, WIRE_MAX_LINE + 4, &consumed, &msg, err,
                        sizeof(err));
    assert_int_equal(rc, HCONN_EBAD_MESSAGE);
    assert_string_equal(err, "message line exceeds 1048576 bytes");
    assert_int_equal(consumed, WIRE_MAX_LINE + 1);
    assert_null(msg);
    rc = wire_read_line(&r, buf + consumed, 3, &consumed, &msg, err,
                        sizeof(err));
    assert_int_equal(rc, 0);
    assert_non_null(msg);
    json_decref(msg);

    /* No '\n' yet: everything consumed, the rest discarded later. */
    memset(buf, 'y', n);
    rc = wire_read_line(&r, buf, n, &consumed, &msg, err, sizeof(err));
    assert_int_equal(rc, HCONN_EBAD_MESSAGE);
    assert_int_equal(consumed, n);
    assert_true(r.discarding);
    rc = wire_read_line(&r, buf, 1000, &consumed, &msg, err, sizeof(err));
    assert_int_equal(rc, 0);
    assert_int_equal(consumed, 1000);
    assert_null(msg);
    memcpy(buf, "yyy\n{\"ok\":1}\n", 13);
    for (size_t off = 0; off < 13; off += consumed) {
        rc = wire_read_line(&r, buf + off, 13 - off, &consumed, &msg, err,
                            sizeof(err));
        assert_int_equal(rc, 0);
        assert_true(consumed > 0);
        total += msg != NULL;
        if (msg != NULL) {
            assert_true(json_is_true(json_object_get(msg, "ok")) ||
                        json_integer_value(json_object_get(msg, "ok")) == 1);
            json_decref(msg);
        }
    }
    assert_int_equal(total, 1);
    assert_false(r.discarding);
    free(buf);
}

/* A zero max_line means the protocol's limit. */
static void
test_reader_init_default(void **state)
{
    struct wire_reader r = {0};

    (void)state;
    wire_reader_init(&r, 0);
    assert_int_equal(r.max_line, WIRE_MAX_LINE);
    wire_reader_init(&r, 100);
    assert_int_equal(r.max_line, 100);
}

/* ---- Client messages: helpers ---------------------------------------- */

/* One client message read through the line reader and validated. */
struct parsed {
    json_t *json;
    struct wire_client_msg m;
    char err[512];
    int rc;
};

/* Reads text (one line, no '\n') and validates it; the reader must
 * accept the line. */
static int
parse(struct parsed *p, const char *text)
{
    struct wire_reader r = {0};
    size_t len = strlen(text), consumed;
    char *line = malloc(len + 1);

    assert_non_null(line);
    memcpy(line, text, len);
    line[len] = '\n';
    wire_reader_init(&r, WIRE_MAX_LINE);
    memset(p, 0, sizeof(*p));
    p->rc = wire_read_line(&r, line, len + 1, &consumed, &p->json, p->err,
                           sizeof(p->err));
    free(line);
    if (p->rc != 0 || p->json == NULL)
        print_error("reader refused %s: %s\n", text, p->err);
    assert_int_equal(p->rc, 0);
    assert_non_null(p->json);
    assert_int_equal(consumed, len + 1);
    p->rc = wire_parse_client_msg(p->json, &p->m, p->err, sizeof(p->err));
    return p->rc;
}

static void
parsed_free(struct parsed *p)
{
    wire_client_msg_clear(&p->m);
    json_decref(p->json);
    p->json = NULL;
}

/* Parses text, which must be valid; the caller frees p. */
static void
parse_ok(struct parsed *p, const char *text)
{
    if (parse(p, text) != 0)
        print_error("refused %s: %s\n", text, p->err);
    assert_int_equal(p->rc, 0);
}

/* ---- Client messages: requests ----------------------------------------- */

/* The smallest request and all its defaults. */
static void
test_request_minimal(void **state)
{
    struct parsed p;
    struct wire_request *r = &p.m.req;

    (void)state;
    parse_ok(&p, "{\"method\":\"GET\",\"url\":\"http://example.com\"}");
    assert_int_equal(p.m.kind, WIRE_MSG_REQUEST);
    assert_null(p.m.id);
    assert_false(p.m.has_data);
    assert_false(p.m.framing_lost);
    assert_string_equal(r->method, "GET");
    assert_false(r->tls);
    assert_string_equal(r->host, "example.com");
    assert_int_equal(r->port, 80);
    assert_string_equal(r->target, "/");
    assert_null(r->headers);
    assert_int_equal(r->nheaders, 0);
    assert_false(r->skip_host);
    assert_false(r->skip_accept_encoding);
    assert_int_equal(r->body, WIRE_BODY_NONE);
    assert_int_equal(r->length, -1);
    assert_false(r->expect_continue);
    assert_true(r->timeout == 0);
    assert_false(r->raw);
    assert_false(r->has_tls_options);
    assert_true(r->tls_options.verify);
    assert_false(r->has_proxy);
    parsed_free(&p);
}

/* "url" sets tls, host, port and target (fragment cut, "?q" -> "/?q"). */
static void
test_request_url(void **state)
{
    static const struct {
        const char *url;
        bool tls;
        const char *host;
        uint16_t port;
        const char *target;
    } cases[] = {
        {"https://example.com:8443/a/b?c=d#frag", true, "example.com", 8443,
         "/a/b?c=d"},
        {"HTTPS://h", true, "h", 443, "/"},
        {"http://[::1]:8080/x", false, "::1", 8080, "/x"},
        {"http://h?q=1", false, "h", 80, "/?q=1"},
    };
    char text[512];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct parsed p;

        snprintf(text, sizeof(text), "{\"method\":\"GET\",\"url\":\"%s\"}",
                 cases[i].url);
        parse_ok(&p, text);
        assert_int_equal(p.m.req.tls, cases[i].tls);
        assert_string_equal(p.m.req.host, cases[i].host);
        assert_int_equal(p.m.req.port, cases[i].port);
        assert_string_equal(p.m.req.target, cases[i].target);
        parsed_free(&p);
    }
}

/* "host" with optional "port", "tls" and "target". */
static void
test_request_host_form(void **state)
{
    struct parsed p;

    (void)state;
    parse_ok(&p, "{\"method\":\"GET\",\"host\":\"example.com\"}");
    assert_false(p.m.req.tls);
    assert_string_equal(p.m.req.host, "example.com");
    assert_int_equal(p.m.req.port, 80);
    assert_string_equal(p.m.req.target, "/");
    parsed_free(&p);

    parse_ok(&p, "{\"method\":\"GET\",\"host\":\"h\",\"tls\":true}");
    assert_true(p.m.req.tls);
    assert_int_equal(p.m.req.port, 443);
    assert_false(p.m.req.has_tls_options);
    parsed_free(&p);

    parse_ok(&p, "{\"method\":\"OPTIONS\",\"host\":\"::1\",\"port\":8443,"
                 "\"tls\":false,\"target\":\"*\"}");
    assert_false(p.m.req.tls);
    assert_string_equal(p.m.req.host, "::1");
    assert_int_equal(p.m.req.port, 8443);
    assert_string_equal(p.m.req.target, "*");
    parsed_free(&p);

    /* Absolute-form target (a forward proxy) is sent verbatim. */
    parse_ok(&p, "{\"method\":\"GET\",\"host\":\"proxy\",\"port\":3128,"
                 "\"target\":\"http://example.com/x?y#z\"}");
    assert_string_equal(p.m.req.target, "http://example.com/x?y#z");
    parsed_free(&p);

    /* A "tls" object with "host" means TLS with those options. */
    parse_ok(&p, "{\"method\":\"GET\",\"host\":\"h\",\"tls\":{}}");
    assert_true(p.m.req.tls);
    assert_int_equal(p.m.req.port, 443);
    assert_true(p.m.req.has_tls_options);
    assert_true(p.m.req.tls_options.verify);
    assert_false(p.m.req.tls_options.insecure);
    parsed_free(&p);
}

/* "id": absent, integer 0..2^53-1 or string 1..256 bytes. */
static void
test_request_id(void **state)
{
    struct parsed p;
    char text[600];

    (void)state;
    parse_ok(&p, "{\"id\":0,\"method\":\"GET\",\"url\":\"http://h/\"}");
    assert_int_equal(json_integer_value(p.m.id), 0);
    parsed_free(&p);
    parse_ok(&p, "{\"id\":9007199254740991,\"method\":\"GET\",\"host\":\"h\"}");
    assert_int_equal(json_integer_value(p.m.id), MAX_INT53);
    parsed_free(&p);
    parse_ok(&p, "{\"id\":\"req-\xc3\xa9\",\"method\":\"GET\",\"host\":\"h\"}");
    assert_string_equal(json_string_value(p.m.id), "req-\xc3\xa9");
    parsed_free(&p);

    memset(text, 0, sizeof(text));
    strcpy(text, "{\"method\":\"GET\",\"host\":\"h\",\"id\":\"");
    memset(text + strlen(text), 'i', WIRE_MAX_ID);
    strcat(text, "\"}");
    parse_ok(&p, text);
    assert_int_equal(json_string_length(p.m.id), WIRE_MAX_ID);
    parsed_free(&p);
    text[strlen(text) - 2] = '\0';
    strcat(text, "i\"}");
    assert_int_equal(parse(&p, text), HCONN_EBAD_MESSAGE);
    assert_err_has(p.err, "\"id\"");
    assert_null(p.m.id);
    parsed_free(&p);
}

/* Headers as pairs (order, duplicates, empty values kept) or an object. */
static void
test_request_headers(void **state)
{
    struct parsed p;
    struct wire_header *h;

    (void)state;
    parse_ok(&p, "{\"method\":\"GET\",\"host\":\"h\",\"headers\":["
                 "[\"Accept\",\"text/html\"],[\"X-A\",\"1\"],[\"X-A\",\"2\"],"
                 "[\"Empty\",\"\"]]}");
    h = p.m.req.headers;
    assert_int_equal(p.m.req.nheaders, 4);
    assert_string_equal(h[0].name, "Accept");
    assert_string_equal(h[0].value, "text/html");
    assert_string_equal(h[1].name, "X-A");
    assert_string_equal(h[1].value, "1");
    assert_string_equal(h[2].name, "X-A");
    assert_string_equal(h[2].value, "2");
    assert_string_equal(h[3].value, "");
    parsed_free(&p);

    parse_ok(&p, "{\"method\":\"GET\",\"host\":\"h\",\"headers\":"
                 "{\"Zed\":\"z\",\"Accept\":\"*/*\"}}");
    h = p.m.req.headers;
    assert_int_equal(p.m.req.nheaders, 2);
    assert_string_equal(h[0].name, "Zed");
    assert_string_equal(h[0].value, "z");
    assert_string_equal(h[1].name, "Accept");
    assert_string_equal(h[1].value, "*/*");
    parsed_free(&p);

    parse_ok(&p, "{\"method\":\"GET\",\"host\":\"h\",\"headers\":[]}");
    assert_int_equal(p.m.req.nheaders, 0);
    parsed_free(&p);
    parse_ok(&p, "{\"method\":\"GET\",\"host\":\"h\",\"headers\":{}}");
    assert_int_equal(p.m.req.nheaders, 0);
    parsed_free(&p);
}

/* The boolean options. */
static void
test_request_bools(void **state)
{
    struct parsed p;

    (void)state;
    parse_ok(&p, "{\"method\":\"GET\",\"host\":\"h\",\"skip_host\":true,"
                 "\"skip_accept_encoding\":true,\"expect_continue\":true,"
                 "\"raw\":true}");
    assert_true(p.m.req.skip_host);
    assert_true(p.m.req.skip_accept_encoding);
    assert_true(p.m.req.expect_continue);
    assert_true(p.m.req.raw);
    parsed_free(&p);
    parse_ok(&p, "{\"method\":\"GET\",\"host\":\"h\",\"skip_host\":false,"
                 "\"raw\":false}");
    assert_false(p.m.req.skip_host);
    assert_false(p.m.req.raw);
    parsed_free(&p);
}

/* "http_version": absent and "auto" are auto; "1.1" and "2" force one. */
static void
test_request_http_version(void **state)
{
    static const struct {
        const char *text;
        enum wire_http_version want;
    } cases[] = {
        {"{\"method\":\"GET\",\"host\":\"h\"}", WIRE_HTTP_AUTO},
        {"{\"method\":\"GET\",\"host\":\"h\",\"http_version\":\"auto\"}",
         WIRE_HTTP_AUTO},
        {"{\"method\":\"GET\",\"host\":\"h\",\"http_version\":\"1.1\"}",
         WIRE_HTTP_1_1},
        {"{\"method\":\"GET\",\"host\":\"h\",\"http_version\":\"2\"}",
         WIRE_HTTP_2},
    };
    struct parsed p;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        parse_ok(&p, cases[i].text);
        assert_int_equal(p.m.req.http_version, cases[i].want);
        parsed_free(&p);
    }
}

/* Body: none, inline ("data"), streamed with or without "length". */
static void
test_request_body(void **state)
{
    struct parsed p;

    (void)state;
    parse_ok(&p, "{\"id\":1,\"method\":\"POST\",\"host\":\"h\",\"data\":5}");
    assert_true(p.m.has_data);
    assert_int_equal(p.m.data_len, 5);
    assert_int_equal(p.m.req.body, WIRE_BODY_INLINE);
    assert_int_equal(p.m.req.length, 5);
    parsed_free(&p);

    parse_ok(&p, "{\"method\":\"POST\",\"host\":\"h\",\"data\":0}");
    assert_true(p.m.has_data);
    assert_int_equal(p.m.data_len, 0);
    assert_int_equal(p.m.req.body, WIRE_BODY_INLINE);
    assert_int_equal(p.m.req.length, 0);
    parsed_free(&p);

    parse_ok(&p, "{\"method\":\"PUT\",\"host\":\"h\",\"body\":\"stream\"}");
    assert_false(p.m.has_data);
    assert_int_equal(p.m.req.body, WIRE_BODY_STREAM);
    assert_int_equal(p.m.req.length, -1);
    parsed_free(&p);

    parse_ok(&p, "{\"method\":\"PUT\",\"host\":\"h\",\"body\":\"stream\","
                 "\"length\":9007199254740991}");
    assert_int_equal(p.m.req.body, WIRE_BODY_STREAM);
    assert_int_equal(p.m.req.length, MAX_INT53);
    parsed_free(&p);

    parse_ok(&p, "{\"method\":\"PUT\",\"host\":\"h\",\"body\":\"stream\","
                 "\"length\":0}");
    assert_int_equal(p.m.req.length, 0);
    parsed_free(&p);
}

/* "timeout": integer or real, > 0 and <= 86400. */
static void
test_request_timeout(void **state)
{
    struct parsed p;

    (void)state;
    parse_ok(&p, "{\"method\":\"GET\",\"host\":\"h\",\"timeout\":5}");
    assert_true(p.m.req.timeout == 5.0);
    parsed_free(&p);
    parse_ok(&p, "{\"method\":\"GET\",\"host\":\"h\",\"timeout\":0.25}");
    assert_true(p.m.req.timeout == 0.25);
    parsed_free(&p);
    parse_ok(&p, "{\"method\":\"GET\",\"host\":\"h\",\"timeout\":86400}");
    assert_true(p.m.req.timeout == 86400.0);
    parsed_free(&p);
}

/* "source_address": [host, port] as http.client's tuple; literals only. */
static void
test_request_source_address(void **state)
{
    static const char *const bad[] = {
        "\"127.0.0.1\"",     "[\"127.0.0.1\"]",  "[\"127.0.0.1\",0,1]",
        "[\"localhost\",0]", "[\"[::1]\",0]",    "[\"::1\",-1]",
        "[\"::1\",65536]",   "[\"::1\",\"80\"]", "[1,2]",
    };
    struct parsed p;
    struct wire_request *r = &p.m.req;
    char text[256];

    (void)state;
    parse_ok(&p, "{\"method\":\"GET\",\"host\":\"h\","
                 "\"source_address\":[\"::1\",4000]}");
    assert_true(r->has_source);
    assert_string_equal(r->source_host, "::1");
    assert_int_equal(r->source_port, 4000);
    parsed_free(&p);
    parse_ok(&p, "{\"method\":\"GET\",\"host\":\"h\","
                 "\"source_address\":[\"\",5000]}");
    assert_true(r->has_source);
    assert_string_equal(r->source_host, "");
    assert_int_equal(r->source_port, 5000);
    parsed_free(&p);
    /* ("", 0) is no source at all. */
    parse_ok(&p, "{\"method\":\"GET\",\"host\":\"h\","
                 "\"source_address\":[\"\",0]}");
    assert_false(r->has_source);
    parsed_free(&p);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(text, sizeof text,
                 "{\"method\":\"GET\",\"host\":\"h\",\"source_address\":%s}",
                 bad[i]);
        assert_int_equal(parse(&p, text), HCONN_EBAD_MESSAGE);
        if (strstr(p.err, "source_address") == NULL)
            fail_msg("%s: error \"%s\" does not name the field", bad[i], p.err);
        parsed_free(&p);
    }
}

/* Inline PEM material: taken as is, one source per kind, and checked to
 * hold a PEM block. */
static void
test_request_tls_inline_pem(void **state)
{
    static const struct {
        const char *tls, *error;
    } bad[] = {
        {"{\"ca_pem\":\"x\"}",
         "field \"tls.ca_pem\" must hold PEM (\"-----BEGIN ...\")"},
        {"{\"ca_pem\":\"-----BEGIN C\",\"ca_path\":\"/d\"}",
         "field \"tls.ca_pem\" excludes \"tls.ca_path\""},
        {"{\"cert_pem\":\"-----BEGIN C\",\"cert_file\":\"/c\"}",
         "field \"tls.cert_pem\" excludes \"tls.cert_file\""},
        {"{\"cert_pem\":\"-----BEGIN C\",\"key_pem\":\"-----BEGIN K\","
         "\"key_file\":\"/k\"}",
         "field \"tls.key_pem\" excludes \"tls.key_file\""},
        {"{\"key_file\":\"/k\"}",
         "field \"tls.key_file\" needs \"tls.cert_pem\" or "
         "\"tls.cert_file\""},
        {"{\"key_pem\":\"\"}", "field \"tls.key_pem\" must be a string of 1 "
                               "to 16384 bytes"},
    };
    struct parsed p;
    struct wire_tls *t = &p.m.req.tls_options;
    char text[512];

    (void)state;
    parse_ok(&p, "{\"method\":\"GET\",\"url\":\"https://h/\",\"tls\":{"
                 "\"ca_pem\":\"-----BEGIN CERTIFICATE-----\\nA\","
                 "\"cert_pem\":\"-----BEGIN CERTIFICATE-----\\nB\","
                 "\"key_pem\":\"-----BEGIN PRIVATE KEY-----\\nC\"}}");
    assert_string_equal(t->ca_pem, "-----BEGIN CERTIFICATE-----\nA");
    assert_string_equal(t->cert_pem, "-----BEGIN CERTIFICATE-----\nB");
    assert_string_equal(t->key_pem, "-----BEGIN PRIVATE KEY-----\nC");
    assert_null(t->ca_file);
    parsed_free(&p);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(text, sizeof text,
                 "{\"method\":\"GET\",\"url\":\"https://h/\",\"tls\":%s}",
                 bad[i].tls);
        assert_int_equal(parse(&p, text), HCONN_EBAD_MESSAGE);
        assert_string_equal(p.err, bad[i].error);
        parsed_free(&p);
    }
}

/* The "tls" options object, every field. */
static void
test_request_tls_options(void **state)
{
    struct parsed p;
    struct wire_tls *t = &p.m.req.tls_options;

    (void)state;
    parse_ok(&p, "{\"method\":\"GET\",\"url\":\"https://h/\",\"tls\":{"
                 "\"verify\":true,\"ca_file\":\"/etc/ca.pem\","
                 "\"ca_path\":\"/etc/ssl/certs\",\"cert_file\":\"c.pem\","
                 "\"key_file\":\"k.pem\",\"server_name\":\"example.com\","
                 "\"min_version\":\"1.3\"}}");
    assert_true(p.m.req.tls);
    assert_true(p.m.req.has_tls_options);
    assert_true(t->verify);
    assert_false(t->insecure);
    assert_string_equal(t->ca_file, "/etc/ca.pem");
    assert_string_equal(t->ca_path, "/etc/ssl/certs");
    assert_string_equal(t->cert_file, "c.pem");
    assert_string_equal(t->key_file, "k.pem");
    assert_string_equal(t->server_name, "example.com");
    assert_string_equal(t->min_version, "1.3");
    parsed_free(&p);

    /* Two spellings of one switch: each turns verification off. */
    parse_ok(&p, "{\"method\":\"GET\",\"url\":\"https://h/\",\"tls\":"
                 "{\"insecure\":true,\"min_version\":\"1.2\"}}");
    assert_false(t->verify);
    assert_true(t->insecure);
    assert_null(t->ca_file);
    assert_string_equal(t->min_version, "1.2");
    parsed_free(&p);
    parse_ok(&p, "{\"method\":\"GET\",\"url\":\"https://h/\",\"tls\":"
                 "{\"verify\":false}}");
    assert_false(t->verify);
    assert_true(t->insecure);
    parsed_free(&p);
    parse_ok(&p, "{\"method\":\"GET\",\"url\":\"https://h/\",\"tls\":"
                 "{\"verify\":false,\"insecure\":true}}");
    assert_false(t->verify);
    assert_true(t->insecure);
    parsed_free(&p);
}

/* The "proxy" object. */
static void
test_request_proxy(void **state)
{
    struct parsed p;
    struct wire_proxy *x = &p.m.req.proxy;

    (void)state;
    parse_ok(&p, "{\"method\":\"GET\",\"url\":\"https://h/\",\"proxy\":{"
                 "\"host\":\"proxy.local\",\"port\":3128,\"headers\":"
                 "[[\"Proxy-Authorization\",\"Basic eA==\"]]}}");
    assert_true(p.m.req.has_proxy);
    assert_string_equal(x->host, "proxy.local");
    assert_int_equal(x->port, 3128);
    assert_int_equal(x->nheaders, 1);
    assert_string_equal(x->headers[0].name, "Proxy-Authorization");
    assert_string_equal(x->headers[0].value, "Basic eA==");
    parsed_free(&p);

    parse_ok(&p, "{\"method\":\"GET\",\"url\":\"http://h/\",\"proxy\":{"
                 "\"host\":\"::1\",\"port\":1,\"headers\":{\"A\":\"b\"}}}");
    assert_string_equal(x->host, "::1");
    assert_int_equal(x->nheaders, 1);
    assert_string_equal(x->headers[0].name, "A");
    parsed_free(&p);

    /* false: straight to the origin, past any default proxy. */
    parse_ok(&p, "{\"method\":\"GET\",\"url\":\"http://h/\",\"proxy\":false}");
    assert_false(p.m.req.has_proxy);
    assert_true(p.m.req.direct);
    parsed_free(&p);
}

struct bad_msg {
    const char *json;
    int code;
    const char *err; /* must appear in err: the field's name */
};

#define REQ  "\"method\":\"GET\",\"url\":\"http://h/\""
#define HREQ "\"method\":\"GET\",\"host\":\"h\""

static const struct bad_msg bad_requests[] = {
    /* http_version */
    {"{" REQ ",\"http_version\":\"2.0\"}", HCONN_EBAD_MESSAGE,
     "\"http_version\""},
    {"{" REQ ",\"http_version\":\"1.0\"}", HCONN_EBAD_MESSAGE,
     "\"http_version\""},
    {"{" REQ ",\"http_version\":\"\"}", HCONN_EBAD_MESSAGE, "\"http_version\""},
    {"{" REQ ",\"http_version\":2}", HCONN_EBAD_MESSAGE, "\"http_version\""},
    {"{" REQ ",\"http_version\":null}", HCONN_EBAD_MESSAGE, "\"http_version\""},
    /* unknown fields */
    {"{" REQ ",\"foo\":1}", HCONN_EBAD_MESSAGE, "unknown field \"foo\""},
    {"{" REQ ",\"timout\":5}", HCONN_EBAD_MESSAGE, "unknown field \"timout\""},
    {"{" REQ ",\"Method\":\"GET\"}", HCONN_EBAD_MESSAGE,
     "unknown field \"Method\""},
    /* method */
    {"{\"method\":\"\",\"host\":\"h\"}", HCONN_EBAD_MESSAGE, "\"method\""},
    {"{\"method\":5,\"host\":\"h\"}", HCONN_EBAD_MESSAGE, "\"method\""},
    {"{\"method\":null,\"host\":\"h\"}", HCONN_EBAD_MESSAGE, "\"method\""},
    {"{\"method\":\"G\\u0000T\",\"host\":\"h\"}", HCONN_EBAD_MESSAGE,
     "\"method\""},
    {"{\"method\":"
     "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
     "AAAA\",\"host\":\"h\"}",
     HCONN_EBAD_MESSAGE, "\"method\""},
    /* where to */
    {"{\"method\":\"GET\"}", HCONN_EBAD_MESSAGE,
     "request needs \"url\" or \"host\""},
    {"{" REQ ",\"host\":\"h\"}", HCONN_EBAD_MESSAGE,
     "\"url\" and \"host\" are mutually exclusive"},
    {"{" REQ ",\"port\":80}", HCONN_EBAD_MESSAGE,
     "\"url\" and \"port\" are mutually exclusive"},
    {"{" REQ ",\"tls\":true}", HCONN_EBAD_MESSAGE,
     "\"url\" and \"tls\" are mutually exclusive"},
    {"{" REQ ",\"target\":\"/\"}", HCONN_EBAD_MESSAGE,
     "\"url\" and \"target\" are mutually exclusive"},
    {"{" REQ ",\"tls\":{}}", HCONN_EBAD_MESSAGE, "\"tls\""},
    {"{\"method\":\"GET\",\"url\":5}", HCONN_EINVALID_URL, "\"url\""},
    {"{\"method\":\"GET\",\"url\":\"\"}", HCONN_EINVALID_URL, "\"url\""},
    {"{\"method\":\"GET\",\"url\":\"ftp://h/\"}", HCONN_EINVALID_URL,
     "\"url\""},
    {"{\"method\":\"GET\",\"url\":\"http://u@h/\"}", HCONN_EINVALID_URL,
     "userinfo"},
    {"{\"method\":\"GET\",\"url\":\"http://h:99999/\"}", HCONN_EINVALID_URL,
     "port out of range"},
    {"{\"method\":\"GET\",\"url\":\"http://h/\\r\\nX: y\"}", HCONN_EINVALID_URL,
     "0x0d at position 9"},
    {"{\"method\":\"GET\",\"host\":5}", HCONN_EINVALID_URL, "\"host\""},
    {"{\"method\":\"GET\",\"host\":\"\"}", HCONN_EINVALID_URL, "\"host\""},
    {"{\"method\":\"GET\",\"host\":\"a b\"}", HCONN_EINVALID_URL, "\"host\""},
    {"{\"method\":\"GET\",\"host\":\"[::1]\"}", HCONN_EINVALID_URL, "\"host\""},
    {"{\"method\":\"GET\",\"host\":\"h:80\"}", HCONN_EINVALID_URL, "\"host\""},
    {"{\"method\":\"GET\",\"host\":\"h\\u0000x\"}", HCONN_EINVALID_URL,
     "\"host\""},
    {"{" HREQ ",\"port\":0}", HCONN_EINVALID_URL, "\"port\""},
    {"{" HREQ ",\"port\":65536}", HCONN_EINVALID_URL, "\"port\""},
    {"{" HREQ ",\"port\":\"80\"}", HCONN_EINVALID_URL, "\"port\""},
    {"{" HREQ ",\"port\":80.5}", HCONN_EINVALID_URL, "\"port\""},
    {"{" HREQ ",\"port\":-80}", HCONN_EINVALID_URL, "\"port\""},
    {"{" HREQ ",\"tls\":\"yes\"}", HCONN_EBAD_MESSAGE, "\"tls\""},
    {"{" HREQ ",\"tls\":1}", HCONN_EBAD_MESSAGE, "\"tls\""},
    {"{" HREQ ",\"tls\":[]}", HCONN_EBAD_MESSAGE, "\"tls\""},
    {"{" HREQ ",\"target\":\"\"}", HCONN_EINVALID_URL, "\"target\""},
    {"{" HREQ ",\"target\":5}", HCONN_EINVALID_URL, "\"target\""},
    {"{" HREQ ",\"target\":\"/a b\"}", HCONN_EINVALID_URL, "\"target\""},
    {"{" HREQ ",\"target\":\"/\\r\\nHost: x\"}", HCONN_EINVALID_URL,
     "\"target\""},
    {"{" HREQ ",\"target\":\"/\\u007f\"}", HCONN_EINVALID_URL, "\"target\""},
    {"{" HREQ ",\"target\":\"/\\u0000\"}", HCONN_EINVALID_URL, "\"target\""},
    /* headers */
    {"{" HREQ ",\"headers\":\"A: b\"}", HCONN_EINVALID_HEADER, "\"headers\""},
    {"{" HREQ ",\"headers\":5}", HCONN_EINVALID_HEADER, "\"headers\""},
    {"{" HREQ ",\"headers\":[[\"a\"]]}", HCONN_EINVALID_HEADER,
     "\"headers[0]\""},
    {"{" HREQ ",\"headers\":[[\"a\",\"b\",\"c\"]]}", HCONN_EINVALID_HEADER,
     "\"headers[0]\""},
    {"{" HREQ ",\"headers\":[\"a\"]}", HCONN_EINVALID_HEADER, "\"headers[0]\""},
    {"{" HREQ ",\"headers\":[[\"a\",\"b\"],[\"c\",1]]}", HCONN_EINVALID_HEADER,
     "\"headers[1]\""},
    {"{" HREQ ",\"headers\":[[\"a\",\"b\"],[null,\"d\"]]}",
     HCONN_EINVALID_HEADER, "\"headers[1]\""},
    {"{" HREQ ",\"headers\":[[\"a\",\"b\"],[\"X\",\"b\\u0000c\"]]}",
     HCONN_EINVALID_HEADER, "NUL"},
    {"{" HREQ ",\"headers\":[[\"a\",\"b\"],[\"X\",\"b\\u0000c\"]]}",
     HCONN_EINVALID_HEADER, "\"headers[1]\""},
    {"{" HREQ ",\"headers\":[[\"X\\u0000Y\",\"b\"]]}", HCONN_EINVALID_HEADER,
     "\"headers[0]\""},
    {"{" HREQ ",\"headers\":{\"Accept\":1}}", HCONN_EINVALID_HEADER,
     "\"Accept\""},
    {"{" HREQ ",\"headers\":{\"Accept\":[\"a\",\"b\"]}}", HCONN_EINVALID_HEADER,
     "\"Accept\""},
    {"{" HREQ ",\"headers\":{\"Accept\":\"a\\u0000b\"}}", HCONN_EINVALID_HEADER,
     "\"Accept\""},
    /* bools */
    {"{" HREQ ",\"skip_host\":1}", HCONN_EBAD_MESSAGE, "\"skip_host\""},
    {"{" HREQ ",\"skip_accept_encoding\":\"true\"}", HCONN_EBAD_MESSAGE,
     "\"skip_accept_encoding\""},
    {"{" HREQ ",\"expect_continue\":null}", HCONN_EBAD_MESSAGE,
     "\"expect_continue\""},
    {"{" HREQ ",\"raw\":0}", HCONN_EBAD_MESSAGE, "\"raw\""},
    /* body */
    {"{" HREQ ",\"data\":5,\"body\":\"stream\"}", HCONN_EBAD_MESSAGE,
     "\"data\" and \"body\" are mutually exclusive"},
    {"{" HREQ ",\"body\":\"inline\"}", HCONN_EBAD_MESSAGE, "\"body\""},
    {"{" HREQ ",\"body\":true}", HCONN_EBAD_MESSAGE, "\"body\""},
    {"{" HREQ ",\"length\":5}", HCONN_EBAD_MESSAGE, "\"length\""},
    {"{" HREQ ",\"data\":5,\"length\":5}", HCONN_EBAD_MESSAGE, "\"length\""},
    {"{" HREQ ",\"body\":\"stream\",\"length\":-1}", HCONN_EBAD_MESSAGE,
     "\"length\""},
    {"{" HREQ ",\"body\":\"stream\",\"length\":\"5\"}", HCONN_EBAD_MESSAGE,
     "\"length\""},
    {"{" HREQ ",\"body\":\"stream\",\"length\":1.0}", HCONN_EBAD_MESSAGE,
     "\"length\""},
    {"{" HREQ ",\"body\":\"stream\",\"length\":9007199254740992}",
     HCONN_EBAD_MESSAGE, "\"length\""},
    /* timeout */
    {"{" HREQ ",\"timeout\":0}", HCONN_EBAD_MESSAGE, "\"timeout\""},
    {"{" HREQ ",\"timeout\":-1}", HCONN_EBAD_MESSAGE, "\"timeout\""},
    {"{" HREQ ",\"timeout\":0.0}", HCONN_EBAD_MESSAGE, "\"timeout\""},
    {"{" HREQ ",\"timeout\":86400.5}", HCONN_EBAD_MESSAGE, "\"timeout\""},
    {"{" HREQ ",\"timeout\":\"5\"}", HCONN_EBAD_MESSAGE, "\"timeout\""},
    {"{" HREQ ",\"timeout\":true}", HCONN_EBAD_MESSAGE, "\"timeout\""},
    /* tls options */
    {"{" HREQ ",\"tls\":{\"foo\":1}}", HCONN_EBAD_MESSAGE,
     "unknown field \"tls.foo\""},
    {"{" HREQ ",\"tls\":{\"verify\":\"yes\"}}", HCONN_EBAD_MESSAGE,
     "\"tls.verify\""},
    {"{" HREQ ",\"tls\":{\"insecure\":1}}", HCONN_EBAD_MESSAGE,
     "\"tls.insecure\""},
    {"{" HREQ ",\"tls\":{\"verify\":true,\"insecure\":true}}",
     HCONN_EBAD_MESSAGE, "\"tls.insecure\""},
    {"{" HREQ ",\"tls\":{\"ca_file\":5}}", HCONN_EBAD_MESSAGE,
     "\"tls.ca_file\""},
    {"{" HREQ ",\"tls\":{\"ca_file\":\"\"}}", HCONN_EBAD_MESSAGE,
     "\"tls.ca_file\""},
    {"{" HREQ ",\"tls\":{\"ca_path\":\"a\\u0000b\"}}", HCONN_EBAD_MESSAGE,
     "\"tls.ca_path\""},
    {"{" HREQ ",\"tls\":{\"cert_file\":[]}}", HCONN_EBAD_MESSAGE,
     "\"tls.cert_file\""},
    {"{" HREQ ",\"tls\":{\"key_file\":null}}", HCONN_EBAD_MESSAGE,
     "\"tls.key_file\""},
    {"{" HREQ ",\"tls\":{\"server_name\":\"a b\"}}", HCONN_EBAD_MESSAGE,
     "\"tls.server_name\""},
    {"{" HREQ ",\"tls\":{\"min_version\":\"1.1\"}}", HCONN_EBAD_MESSAGE,
     "\"tls.min_version\""},
    {"{" HREQ ",\"tls\":{\"min_version\":1.3}}", HCONN_EBAD_MESSAGE,
     "\"tls.min_version\""},
    /* proxy */
    {"{" HREQ ",\"proxy\":\"p:3128\"}", HCONN_EBAD_MESSAGE, "\"proxy\""},
    {"{" HREQ ",\"proxy\":true}", HCONN_EBAD_MESSAGE, "object or false"},
    {"{" HREQ ",\"proxy\":{}}", HCONN_EBAD_MESSAGE, "\"proxy.host\""},
    {"{" HREQ ",\"proxy\":{\"host\":\"p\"}}", HCONN_EBAD_MESSAGE,
     "\"proxy.port\""},
    {"{" HREQ ",\"proxy\":{\"port\":1}}", HCONN_EBAD_MESSAGE, "\"proxy.host\""},
    {"{" HREQ ",\"proxy\":{\"host\":\"p\",\"port\":0}}", HCONN_EINVALID_URL,
     "\"proxy.port\""},
    {"{" HREQ ",\"proxy\":{\"host\":\"p\",\"port\":\"1\"}}", HCONN_EINVALID_URL,
     "\"proxy.port\""},
    {"{" HREQ ",\"proxy\":{\"host\":\"a b\",\"port\":1}}", HCONN_EINVALID_URL,
     "\"proxy.host\""},
    {"{" HREQ ",\"proxy\":{\"host\":5,\"port\":1}}", HCONN_EINVALID_URL,
     "\"proxy.host\""},
    {"{" HREQ ",\"proxy\":{\"host\":\"p\",\"port\":1,\"user\":\"x\"}}",
     HCONN_EBAD_MESSAGE, "unknown field \"proxy.user\""},
    {"{" HREQ ",\"proxy\":{\"host\":\"p\",\"port\":1,\"headers\":[[1,2]]}}",
     HCONN_EINVALID_HEADER, "\"proxy.headers[0]\""},
    /* id */
    {"{" HREQ ",\"id\":-1}", HCONN_EBAD_MESSAGE, "\"id\""},
    {"{" HREQ ",\"id\":9007199254740992}", HCONN_EBAD_MESSAGE, "\"id\""},
    {"{" HREQ ",\"id\":1.5}", HCONN_EBAD_MESSAGE, "\"id\""},
    {"{" HREQ ",\"id\":\"\"}", HCONN_EBAD_MESSAGE, "\"id\""},
    {"{" HREQ ",\"id\":\"a\\u0000\"}", HCONN_EBAD_MESSAGE, "\"id\""},
    {"{" HREQ ",\"id\":true}", HCONN_EBAD_MESSAGE, "\"id\""},
    {"{" HREQ ",\"id\":null}", HCONN_EBAD_MESSAGE, "\"id\""},
    {"{" HREQ ",\"id\":[1]}", HCONN_EBAD_MESSAGE, "\"id\""},
    {"{" HREQ ",\"id\":{}}", HCONN_EBAD_MESSAGE, "\"id\""},
};

/* Every request field's invalid forms: the exact code and the field's
 * name in err. */
static void
test_request_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_requests) / sizeof(bad_requests[0]);
         i++) {
        const struct bad_msg *t = &bad_requests[i];
        struct parsed p;
        int rc = parse(&p, t->json);

        if (rc != t->code)
            print_error("%s: rc %d, want %d (%s)\n", t->json, rc, t->code,
                        p.err);
        assert_int_equal(rc, t->code);
        if (strstr(p.err, t->err) == NULL)
            print_error("%s\n", t->json);
        assert_err_has(p.err, t->err);
        assert_false(p.m.framing_lost);
        parsed_free(&p);
    }
}

/* A 64-byte method is the longest; "target" may be long. */
static void
test_request_limits(void **state)
{
    struct parsed p;
    char text[256];

    (void)state;
    snprintf(
        text, sizeof(text), "{\"method\":\"%.64s\",\"host\":\"h\"}",
        "MMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMM");
    parse_ok(&p, text);
    assert_int_equal(strlen(p.m.req.method), 64);
    parsed_free(&p);
}

/* ---- Client messages: payload framing on errors ------------------------ */

/* However bad the rest, a valid "data" is reported so the payload can be
 * skipped, and a valid "id" so the error can be addressed. */
static void
test_framing_kept_on_error(void **state)
{
    static const struct {
        const char *json;
        uint64_t data_len;
        const char *id; /* string id expected, or NULL for integer 7 */
    } cases[] = {
        {"{\"id\":7,\"method\":\"GET\",\"host\":\"h\",\"data\":5,"
         "\"bogus\":1}",
         5, NULL},
        {"{\"id\":7,\"method\":\"GET\",\"url\":\"ftp://x\",\"data\":3}", 3,
         NULL},
        {"{\"id\":\"a\",\"op\":\"hello\",\"data\":12}", 12, "a"},
        {"{\"id\":7,\"op\":\"nope\",\"data\":0}", 0, NULL},
        {"{\"id\":7,\"data\":9,\"x\":1}", 9, NULL},
        {"{\"id\":7,\"data\":4,\"method\":\"GET\"}", 4, NULL},
        {"{\"id\":7,\"data\":9007199254740991,\"end\":true}", MAX_INT53, NULL},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct parsed p;

        assert_int_not_equal(parse(&p, cases[i].json), 0);
        assert_true(p.m.has_data);
        assert_false(p.m.framing_lost);
        assert_int_equal(p.m.data_len, cases[i].data_len);
        assert_non_null(p.m.id);
        if (cases[i].id != NULL)
            assert_string_equal(json_string_value(p.m.id), cases[i].id);
        else
            assert_int_equal(json_integer_value(p.m.id), 7);
        parsed_free(&p);
    }
}

/* "data" present but not a valid length: the framing is lost, and the
 * daemon must drop the connection after its error reply. */
static void
test_framing_lost(void **state)
{
    static const char *const cases[] = {
        "{\"id\":7,\"method\":\"POST\",\"host\":\"h\",\"data\":-1}",
        "{\"id\":7,\"method\":\"POST\",\"host\":\"h\",\"data\":\"5\"}",
        "{\"id\":7,\"method\":\"POST\",\"host\":\"h\",\"data\":1.5}",
        "{\"id\":7,\"method\":\"POST\",\"host\":\"h\",\"data\":5.0}",
        "{\"id\":7,\"method\":\"POST\",\"host\":\"h\",\"data\":null}",
        "{\"id\":7,\"method\":\"POST\",\"host\":\"h\",\"data\":true}",
        "{\"id\":7,\"method\":\"POST\",\"host\":\"h\",\"data\":[5]}",
        "{\"id\":7,\"data\":9007199254740992}",
        "{\"id\":7,\"data\":-5}",
        "{\"id\":7,\"op\":\"hello\",\"data\":\"x\"}",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct parsed p;

        assert_int_equal(parse(&p, cases[i]), HCONN_EBAD_MESSAGE);
        assert_true(p.m.framing_lost);
        assert_false(p.m.has_data);
        assert_err_has(p.err, "\"data\"");
        assert_non_null(p.m.id);
        assert_int_equal(json_integer_value(p.m.id), 7);
        parsed_free(&p);
    }
    /* A bad id does not hide the framing, nor the other way round. */
    {
        struct parsed p;

        assert_int_equal(parse(&p, "{\"id\":-1,\"data\":\"x\"}"),
                         HCONN_EBAD_MESSAGE);
        assert_true(p.m.framing_lost);
        assert_null(p.m.id);
        parsed_free(&p);
        assert_int_equal(parse(&p, "{\"id\":-1,\"data\":3}"),
                         HCONN_EBAD_MESSAGE);
        assert_true(p.m.has_data);
        assert_int_equal(p.m.data_len, 3);
        assert_null(p.m.id);
        assert_err_has(p.err, "\"id\"");
        parsed_free(&p);
    }
}

/* ---- Client messages: frames and ops ----------------------------------- */

/* Data and end frames of a streamed body. */
static void
test_frames(void **state)
{
    struct parsed p;

    (void)state;
    parse_ok(&p, "{\"id\":1,\"data\":100}");
    assert_int_equal(p.m.kind, WIRE_MSG_DATA);
    assert_int_equal(json_integer_value(p.m.id), 1);
    assert_true(p.m.has_data);
    assert_int_equal(p.m.data_len, 100);
    parsed_free(&p);
    parse_ok(&p, "{\"data\":0,\"id\":\"x\"}");
    assert_int_equal(p.m.kind, WIRE_MSG_DATA);
    assert_int_equal(p.m.data_len, 0);
    parsed_free(&p);
    parse_ok(&p, "{\"id\":\"x\",\"end\":true}");
    assert_int_equal(p.m.kind, WIRE_MSG_END);
    assert_string_equal(json_string_value(p.m.id), "x");
    assert_false(p.m.has_data);
    parsed_free(&p);
}

/* Ops: hello and stats, with or without id. */
static void
test_ops(void **state)
{
    struct parsed p;

    (void)state;
    parse_ok(&p, "{\"op\":\"hello\"}");
    assert_int_equal(p.m.kind, WIRE_MSG_OP);
    assert_string_equal(p.m.op, "hello");
    assert_null(p.m.id);
    parsed_free(&p);
    parse_ok(&p, "{\"op\":\"stats\",\"id\":3}");
    assert_int_equal(p.m.kind, WIRE_MSG_OP);
    assert_string_equal(p.m.op, "stats");
    assert_int_equal(json_integer_value(p.m.id), 3);
    parsed_free(&p);
}

static const struct bad_msg bad_others[] = {
    {"{}", HCONN_EBAD_MESSAGE, "message has none of method, op, data, end"},
    {"{\"id\":1}", HCONN_EBAD_MESSAGE,
     "message has none of method, op, data, end"},
    {"{\"url\":\"http://h/\"}", HCONN_EBAD_MESSAGE,
     "message has none of method, op, data, end"},
    {"{\"data\":5}", HCONN_EBAD_MESSAGE, "\"id\""},
    {"{\"end\":true}", HCONN_EBAD_MESSAGE, "\"id\""},
    {"{\"id\":1,\"end\":false}", HCONN_EBAD_MESSAGE, "\"end\""},
    {"{\"id\":1,\"end\":1}", HCONN_EBAD_MESSAGE, "\"end\""},
    {"{\"id\":1,\"end\":true,\"trailers\":[]}", HCONN_EBAD_MESSAGE,
     "unknown field \"trailers\""},
    {"{\"id\":1,\"data\":5,\"x\":1}", HCONN_EBAD_MESSAGE,
     "unknown field \"x\""},
    {"{\"id\":1,\"data\":5,\"end\":true}", HCONN_EBAD_MESSAGE,
     "unknown field \"end\""},
    {"{\"op\":\"nope\"}", HCONN_EBAD_MESSAGE, "unknown op \"nope\""},
    {"{\"op\":\"\"}", HCONN_EBAD_MESSAGE, "\"op\""},
    {"{\"op\":5}", HCONN_EBAD_MESSAGE, "\"op\""},
    {"{\"op\":\"hello\",\"version\":1}", HCONN_EBAD_MESSAGE,
     "unknown field \"version\""},
    {"{\"op\":\"stats\",\"id\":1.5}", HCONN_EBAD_MESSAGE, "\"id\""},
};

/* Malformed frames, ops and unclassifiable messages. */
static void
test_others_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_others) / sizeof(bad_others[0]); i++) {
        const struct bad_msg *t = &bad_others[i];
        struct parsed p;
        int rc = parse(&p, t->json);

        if (rc != t->code)
            print_error("%s: rc %d (%s)\n", t->json, rc, p.err);
        assert_int_equal(rc, t->code);
        assert_err_has(p.err, t->err);
        parsed_free(&p);
    }
}

/* Not an object, or a message built with a NUL in a key (the line reader
 * cannot produce one: jansson refuses it). */
static void
test_client_msg_not_object(void **state)
{
    struct wire_client_msg m;
    char err[128];
    json_t *v = json_array();

    (void)state;
    assert_int_equal(wire_parse_client_msg(v, &m, err, sizeof(err)),
                     HCONN_EBAD_MESSAGE);
    assert_string_equal(err, "message is not a JSON object");
    wire_client_msg_clear(&m);
    json_decref(v);
    assert_int_equal(wire_parse_client_msg(NULL, &m, err, sizeof(err)),
                     HCONN_EBAD_MESSAGE);
    wire_client_msg_clear(&m);

    v = json_pack("{s:s, s:s}", "method", "GET", "host", "h");
    assert_non_null(v);
    assert_int_equal(json_object_setn_new(v, "raw\0x", 5, json_true()), 0);
    assert_int_equal(wire_parse_client_msg(v, &m, err, sizeof(err)),
                     HCONN_EBAD_MESSAGE);
    assert_err_has(err, "NUL");
    wire_client_msg_clear(&m);
    json_decref(v);
}

/* ---- Daemon → client: builders ----------------------------------------- */

/* Encodes o (consumed) and compares with want, '\n' included. */
static void
assert_encodes(json_t *o, const char *want)
{
    size_t len = 0;
    char *s;

    assert_non_null(o);
    s = wire_encode(o, &len);
    assert_non_null(s);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(s, want, len);
    free(s);
    json_decref(o);
}

/* Every builder, to the exact line. */
static void
test_builders(void **state)
{
    json_t *id = json_integer(1), *sid = json_string("a"), *o;

    (void)state;
    assert_encodes(wire_data_frame(id, 1256), "{\"id\":1,\"data\":1256}\n");
    assert_encodes(wire_data_frame(sid, 0), "{\"id\":\"a\",\"data\":0}\n");
    assert_encodes(wire_data_frame(id, (uint64_t)MAX_INT53),
                   "{\"id\":1,\"data\":9007199254740991}\n");
    assert_encodes(wire_end_frame(sid, NULL), "{\"id\":\"a\",\"end\":true}\n");
    assert_encodes(wire_reply_continue(id), "{\"id\":1,\"continue\":true}\n");
    assert_encodes(wire_reply_continue(NULL), "{\"continue\":true}\n");

    o = wire_reply_error(id, HCONN_EINCOMPLETE_READ, "got 900 of 1256 bytes");
    assert_non_null(o);
    json_object_set_new(o, "received", json_integer(900));
    json_object_set_new(o, "expected", json_integer(1256));
    assert_encodes(o, "{\"id\":1,\"error\":\"incomplete_read\",\"message\":"
                      "\"got 900 of 1256 bytes\",\"received\":900,"
                      "\"expected\":1256}\n");
    assert_encodes(
        wire_reply_error(NULL, HCONN_EBAD_MESSAGE, "unknown field \"foo\""),
        "{\"error\":\"bad_message\",\"message\":"
        "\"unknown field \\\"foo\\\"\"}\n");
    assert_encodes(wire_reply_error(sid, HCONN_ETIMEOUT, NULL),
                   "{\"id\":\"a\",\"error\":\"timeout\",\"message\":"
                   "\"timed out\"}\n");
    assert_encodes(wire_reply_error(id, HCONN_EBAD_HEADER, "bad \xff byte"),
                   "{\"id\":1,\"error\":\"bad_header\",\"message\":"
                   "\"bad \xc3\xbf byte\"}\n");

    /* The ids were shared, not stolen. */
    assert_int_equal(id->refcount, 1);
    assert_int_equal(sid->refcount, 1);
    json_decref(id);
    json_decref(sid);
}

/* wire_encode keeps one line: newlines in strings are escaped; UTF-8 is
 * kept as is; key order is insertion order. */
static void
test_encode(void **state)
{
    (void)state;
    assert_encodes(
        json_pack("{s:s,s:i,s:b,s:n}", "z", "a\nb\r\"\\", "a", -3, "m", 1, "n"),
        "{\"z\":\"a\\nb\\r\\\"\\\\\",\"a\":-3,\"m\":true,"
        "\"n\":null}\n");
    assert_encodes(json_pack("{s:s}", "k", "caf\xc3\xa9 / \xf0\x9f\x98\x80"),
                   "{\"k\":\"caf\xc3\xa9 / \xf0\x9f\x98\x80\"}\n");
    assert_encodes(json_object(), "{}\n");
}

/* ---- Daemon → client: parsing ------------------------------------------ */

/* Parses one reply line (no '\n'). */
static int
reply(const char *text, json_t **json, struct wire_reply *r, char *err,
      size_t errlen)
{
    json_error_t je;

    *json = json_loads(text, JSON_ALLOW_NUL, &je);
    if (*json == NULL)
        print_error("bad test JSON %s: %s\n", text, je.text);
    assert_non_null(*json);
    return wire_parse_reply(*json, r, err, errlen);
}

/* Each reply kind, with its fields. */
static void
test_parse_reply_kinds(void **state)
{
    struct wire_reply r;
    json_t *j;
    char err[256];

    (void)state;
    assert_int_equal(
        reply("{\"id\":1,\"status\":200,\"reason\":\"OK\",\"version\":11,"
              "\"headers\":[[\"A\",\"1\"],[\"A\",\"2\"]],\"length\":1256,"
              "\"reused\":true}",
              &j, &r, err, sizeof(err)),
        0);
    assert_int_equal(r.kind, WIRE_REPLY_HEAD);
    assert_int_equal(json_integer_value(r.id), 1);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.reason, "OK");
    assert_int_equal(r.version, 11);
    assert_int_equal(json_array_size(r.headers), 2);
    assert_int_equal(r.length, 1256);
    assert_true(r.reused);
    json_decref(j);

    assert_int_equal(reply("{\"id\":\"x\",\"status\":101,\"reason\":\"\","
                           "\"version\":10,\"headers\":[]}",
                           &j, &r, err, sizeof(err)),
                     0);
    assert_int_equal(r.kind, WIRE_REPLY_HEAD);
    assert_string_equal(json_string_value(r.id), "x");
    assert_int_equal(r.version, 10);
    assert_int_equal(r.length, -1);
    assert_false(r.reused);
    json_decref(j);

    assert_int_equal(reply("{\"id\":2,\"status\":200,\"reason\":\"\","
                           "\"version\":20,\"headers\":[]}",
                           &j, &r, err, sizeof(err)),
                     0);
    assert_int_equal(r.version, 20);
    json_decref(j);

    assert_int_equal(
        reply("{\"id\":1,\"continue\":true}", &j, &r, err, sizeof(err)), 0);
    assert_int_equal(r.kind, WIRE_REPLY_CONTINUE);
    json_decref(j);

    assert_int_equal(
        reply("{\"id\":1,\"data\":4096}", &j, &r, err, sizeof(err)), 0);
    assert_int_equal(r.kind, WIRE_REPLY_DATA);
    assert_int_equal(r.data_len, 4096);
    json_decref(j);

    assert_int_equal(
        reply("{\"id\":1,\"end\":true,\"trailers\":[[\"T\",\"v\"]]}", &j, &r,
              err, sizeof(err)),
        0);
    assert_int_equal(r.kind, WIRE_REPLY_END);
    assert_int_equal(json_array_size(r.trailers), 1);
    json_decref(j);
    assert_int_equal(reply("{\"id\":1,\"end\":true}", &j, &r, err, sizeof(err)),
                     0);
    assert_int_equal(r.kind, WIRE_REPLY_END);
    assert_null(r.trailers);
    json_decref(j);

    assert_int_equal(reply("{\"id\":1,\"error\":\"incomplete_read\","
                           "\"message\":\"cut\",\"received\":900,"
                           "\"expected\":1256}",
                           &j, &r, err, sizeof(err)),
                     0);
    assert_int_equal(r.kind, WIRE_REPLY_ERROR);
    assert_int_equal(r.error, HCONN_EINCOMPLETE_READ);
    assert_string_equal(r.message, "cut");
    assert_int_equal(r.received, 900);
    assert_int_equal(r.expected, 1256);
    json_decref(j);

    assert_int_equal(reply("{\"id\":1,\"error\":\"incomplete_read\","
                           "\"message\":\"cut\",\"received\":900}",
                           &j, &r, err, sizeof(err)),
                     0);
    assert_int_equal(r.received, 900);
    assert_int_equal(r.expected, -1);
    json_decref(j);

    assert_int_equal(reply("{\"error\":\"tunnel_failed\",\"message\":\"407\","
                           "\"status\":407,\"reason\":\"Proxy Auth\","
                           "\"headers\":[]}",
                           &j, &r, err, sizeof(err)),
                     0);
    assert_int_equal(r.kind, WIRE_REPLY_ERROR);
    assert_int_equal(r.error, HCONN_ETUNNEL_FAILED);
    assert_null(r.id);
    assert_int_equal(r.received, -1);
    json_decref(j);

    assert_int_equal(reply("{\"op\":\"hello\",\"version\":1,"
                           "\"server\":\"hconnd/0.1.0\"}",
                           &j, &r, err, sizeof(err)),
                     0);
    assert_int_equal(r.kind, WIRE_REPLY_OP);
    json_decref(j);
    assert_int_equal(reply("{\"op\":\"stats\",\"id\":2,\"idle\":3,"
                           "\"origins\":{\"x\":1}}",
                           &j, &r, err, sizeof(err)),
                     0);
    assert_int_equal(r.kind, WIRE_REPLY_OP);
    assert_int_equal(json_integer_value(r.id), 2);
    json_decref(j);
}

/* An error name this build does not know: still an ERROR, as
 * bad_message, message kept; "ok" is no error either. */
static void
test_parse_reply_unknown_error(void **state)
{
    struct wire_reply r;
    json_t *j;
    char err[256];

    (void)state;
    assert_int_equal(reply("{\"id\":1,\"error\":\"quantum_flux\","
                           "\"message\":\"from the future\"}",
                           &j, &r, err, sizeof(err)),
                     0);
    assert_int_equal(r.kind, WIRE_REPLY_ERROR);
    assert_int_equal(r.error, HCONN_EBAD_MESSAGE);
    assert_string_equal(r.message, "from the future");
    json_decref(j);
    assert_int_equal(reply("{\"id\":1,\"error\":\"ok\",\"message\":\"?\"}", &j,
                           &r, err, sizeof(err)),
                     0);
    assert_int_equal(r.error, HCONN_EBAD_MESSAGE);
    json_decref(j);
    /* No message: the description of the code stands in. */
    assert_int_equal(
        reply("{\"id\":1,\"error\":\"timeout\"}", &j, &r, err, sizeof(err)), 0);
    assert_int_equal(r.error, HCONN_ETIMEOUT);
    assert_string_equal(r.message, "timed out");
    json_decref(j);
}

/* Fields this build does not know are ignored (forward compatibility),
 * and the classification order decides mixed messages. */
static void
test_parse_reply_extra_fields(void **state)
{
    struct wire_reply r;
    json_t *j;
    char err[256];

    (void)state;
    assert_int_equal(reply("{\"id\":1,\"status\":200,\"reason\":\"OK\","
                           "\"version\":11,\"headers\":[],\"x_new\":{\"a\":1},"
                           "\"timing\":0.5}",
                           &j, &r, err, sizeof(err)),
                     0);
    assert_int_equal(r.kind, WIRE_REPLY_HEAD);
    json_decref(j);
    assert_int_equal(
        reply("{\"id\":1,\"data\":3,\"chunk\":true}", &j, &r, err, sizeof(err)),
        0);
    assert_int_equal(r.kind, WIRE_REPLY_DATA);
    json_decref(j);
    assert_int_equal(reply("{\"id\":1,\"error\":\"denied\",\"message\":\"m\","
                           "\"status\":403,\"data\":\"x\"}",
                           &j, &r, err, sizeof(err)),
                     0);
    assert_int_equal(r.kind, WIRE_REPLY_ERROR);
    assert_int_equal(r.error, HCONN_EDENIED);
    json_decref(j);
    assert_int_equal(
        reply("{\"op\":\"hello\",\"error\":\"x\"}", &j, &r, err, sizeof(err)),
        0);
    assert_int_equal(r.kind, WIRE_REPLY_OP);
    json_decref(j);
}

static const struct bad_msg bad_replies[] = {
    {"{}", HCONN_EBAD_MESSAGE, "none of"},
    {"{\"id\":1}", HCONN_EBAD_MESSAGE, "none of"},
    {"{\"id\":true,\"data\":1}", HCONN_EBAD_MESSAGE, "\"id\""},
    {"{\"id\":1,\"status\":\"200\",\"reason\":\"OK\",\"version\":11,"
     "\"headers\":[]}",
     HCONN_EBAD_MESSAGE, "\"status\""},
    {"{\"id\":1,\"status\":99,\"reason\":\"OK\",\"version\":11,"
     "\"headers\":[]}",
     HCONN_EBAD_MESSAGE, "\"status\""},
    {"{\"id\":1,\"status\":200,\"version\":11,\"headers\":[]}",
     HCONN_EBAD_MESSAGE, "\"reason\""},
    {"{\"id\":1,\"status\":200,\"reason\":5,\"version\":11,\"headers\":[]}",
     HCONN_EBAD_MESSAGE, "\"reason\""},
    {"{\"id\":1,\"status\":200,\"reason\":\"OK\",\"version\":12,"
     "\"headers\":[]}",
     HCONN_EBAD_MESSAGE, "\"version\""},
    {"{\"id\":1,\"status\":200,\"reason\":\"OK\",\"version\":19,"
     "\"headers\":[]}",
     HCONN_EBAD_MESSAGE, "\"version\""},
    {"{\"id\":1,\"status\":200,\"reason\":\"OK\",\"headers\":[]}",
     HCONN_EBAD_MESSAGE, "\"version\""},
    {"{\"id\":1,\"status\":200,\"reason\":\"OK\",\"version\":11}",
     HCONN_EBAD_MESSAGE, "\"headers\""},
    {"{\"id\":1,\"status\":200,\"reason\":\"OK\",\"version\":11,"
     "\"headers\":[[\"a\"]]}",
     HCONN_EBAD_MESSAGE, "\"headers[0]\""},
    {"{\"id\":1,\"status\":200,\"reason\":\"OK\",\"version\":11,"
     "\"headers\":{\"a\":\"b\"}}",
     HCONN_EBAD_MESSAGE, "\"headers\""},
    {"{\"id\":1,\"status\":200,\"reason\":\"OK\",\"version\":11,"
     "\"headers\":[],\"length\":-1}",
     HCONN_EBAD_MESSAGE, "\"length\""},
    {"{\"id\":1,\"status\":200,\"reason\":\"OK\",\"version\":11,"
     "\"headers\":[],\"reused\":1}",
     HCONN_EBAD_MESSAGE, "\"reused\""},
    {"{\"id\":1,\"data\":-1}", HCONN_EBAD_MESSAGE, "\"data\""},
    {"{\"id\":1,\"data\":\"1\"}", HCONN_EBAD_MESSAGE, "\"data\""},
    {"{\"id\":1,\"end\":false}", HCONN_EBAD_MESSAGE, "\"end\""},
    {"{\"id\":1,\"end\":true,\"trailers\":[[1,2]]}", HCONN_EBAD_MESSAGE,
     "\"trailers[0]\""},
    {"{\"id\":1,\"continue\":false}", HCONN_EBAD_MESSAGE, "\"continue\""},
    {"{\"id\":1,\"error\":5,\"message\":\"m\"}", HCONN_EBAD_MESSAGE,
     "\"error\""},
    {"{\"id\":1,\"error\":\"timeout\",\"message\":1}", HCONN_EBAD_MESSAGE,
     "\"message\""},
    {"{\"id\":1,\"error\":\"incomplete_read\",\"message\":\"m\","
     "\"received\":\"9\"}",
     HCONN_EBAD_MESSAGE, "\"received\""},
    {"{\"id\":1,\"error\":\"incomplete_read\",\"message\":\"m\","
     "\"expected\":-2}",
     HCONN_EBAD_MESSAGE, "\"expected\""},
    {"{\"op\":5}", HCONN_EBAD_MESSAGE, "\"op\""},
};

/* Malformed replies: bad_message naming the field. */
static void
test_parse_reply_invalid(void **state)
{
    struct wire_reply r;
    char err[256];
    json_t *j;

    (void)state;
    for (size_t i = 0; i < sizeof(bad_replies) / sizeof(bad_replies[0]); i++) {
        int rc = reply(bad_replies[i].json, &j, &r, err, sizeof(err));

        if (rc != bad_replies[i].code)
            print_error("%s: rc %d\n", bad_replies[i].json, rc);
        assert_int_equal(rc, bad_replies[i].code);
        assert_err_has(err, bad_replies[i].err);
        json_decref(j);
    }
    j = json_array();
    assert_int_equal(wire_parse_reply(j, &r, err, sizeof(err)),
                     HCONN_EBAD_MESSAGE);
    json_decref(j);
}

/* ---- Daemon → client: lines written directly -------------------------- */

/* Checks that a wire_line call returned 0 and wrote want, then empties
 * the line for the next. */
static void
assert_line(struct wire_line *l, int rc, const char *want)
{
    assert_int_equal(rc, 0);
    assert_int_equal(l->len, strlen(want));
    assert_memory_equal(l->buf, want, l->len);
    l->len = 0;
}

/* Checks that a wire_line call returned 0 and wrote wire_encode's line
 * for o, then empties the line for the next. */
static void
assert_line_json(struct wire_line *l, int rc, json_t *o)
{
    size_t len;
    char *want = wire_encode(o, &len);

    assert_non_null(want);
    assert_int_equal(rc, 0);
    assert_int_equal(l->len, len);
    assert_memory_equal(l->buf, want, len);
    free(want);
    l->len = 0;
}

static void
test_reply_lines(void **state)
{
    static const struct http1_header h[] = {
        {"Content-Type", 12, "text/html", 9},
        {"Set-Cookie", 10, "a", 1},
        {"Set-Cookie", 10, "b", 1},
    };
    static const struct http1_header odd[] = {
        {"X-Folded", 8, "a\r\n b", 5},   /* obs-fold: one space */
        {"X-Latin", 7, "caf\xe9", 4},    /* ISO-8859-1 */
        {"X-Quote", 7, "\"\\\x01\t", 4}, /* escapes as jansson's */
        {"X-Empty", 7, NULL, 0},
    };
    json_t *id = json_integer(1), *sid = json_string("a\"b"),
           *proxy = json_pack("{s:i}", "status", 200);
    char small[8];
    struct wire_line l;

    (void)state;
    /* Storage of 8 bytes: every line below moves to the heap. */
    wire_line_init(&l, small, sizeof small);
    assert_line(
        &l, wire_line_head(&l, id, 200, "OK", 2, 11, h, 3, 1256, true, NULL),
        "{\"id\":1,\"status\":200,\"reason\":\"OK\",\"version\":11,"
        "\"headers\":[[\"Content-Type\",\"text/html\"],"
        "[\"Set-Cookie\",\"a\"],[\"Set-Cookie\",\"b\"]],"
        "\"length\":1256,\"reused\":true}\n");
    assert_line(&l,
                wire_line_head(&l, NULL, 204, "No Content", 10, 10, NULL, 0, -1,
                               false, NULL),
                "{\"status\":204,\"reason\":\"No Content\",\"version\":10,"
                "\"headers\":[],\"reused\":false}\n");
    assert_line(
        &l, wire_line_head(&l, sid, 304, "", 0, 11, NULL, 0, 0, false, proxy),
        "{\"id\":\"a\\\"b\",\"status\":304,\"reason\":\"\","
        "\"version\":11,\"headers\":[],\"length\":0,"
        "\"reused\":false,\"proxy_response\":{\"status\":200}}\n");
    assert_line(
        &l,
        wire_line_head(&l, id, 200, "\xc4h", 2, 11, odd, 4, -1, false, NULL),
        "{\"id\":1,\"status\":200,\"reason\":\"\xc3\x84h\","
        "\"version\":11,\"headers\":[[\"X-Folded\",\"a b\"],"
        "[\"X-Latin\",\"caf\xc3\xa9\"],"
        "[\"X-Quote\",\"\\\"\\\\\\u0001\\t\"],[\"X-Empty\",\"\"]],"
        "\"reused\":false}\n");
    assert_line(&l, wire_line_data(&l, id, 1256), "{\"id\":1,\"data\":1256}\n");
    assert_line(&l, wire_line_data(&l, id, (uint64_t)MAX_INT53),
                "{\"id\":1,\"data\":9007199254740991}\n");
    assert_line(&l, wire_line_end(&l, id, NULL, 0),
                "{\"id\":1,\"end\":true,\"trailers\":[]}\n");
    assert_line(&l, wire_line_end(&l, NULL, h, 1),
                "{\"end\":true,\"trailers\":[[\"Content-Type\",\"text/html\"]]}"
                "\n");
    wire_line_free(&l);
    json_decref(id);
    json_decref(sid);
    json_decref(proxy);
}

/* The written lines equal jansson's dump of the same object, for every
 * byte in names, values and reasons, and every kind of id. */
static void
test_reply_lines_match_jansson(void **state)
{
    char buf[64], storage[512];
    struct wire_line l;
    unsigned seed = 7;

    (void)state;
    wire_line_init(&l, storage, sizeof storage);
    for (int round = 0; round < 2000; round++) {
        struct http1_header h[3];
        char names[3][8], values[3][16];
        size_t nh = (size_t)(round % 4), rlen, len;
        json_t *id, *headers = json_array(), *o;
        char *want;

        for (size_t i = 0; i < sizeof buf; i++) {
            seed = seed * 1103515245u + 12345u;
            buf[i] = (char)(seed >> 16);
        }
        for (size_t i = 0; i < nh; i++) {
            memcpy(names[i], buf + 8 * i, 8);
            memcpy(values[i], buf + 24 + 8 * i, 16);
            h[i] = (struct http1_header){names[i], 1 + (size_t)(buf[i] & 7),
                                         values[i], (size_t)(buf[3] & 15)};
            /* No CR or LF: unfolding is checked above. */
            for (size_t k = 0; k < 16; k++)
                if (values[i][k] == '\r' || values[i][k] == '\n')
                    values[i][k] = ' ';
            json_array_append_new(
                headers,
                json_pack("[o,o]",
                          wire_string_from_bytes(h[i].name, h[i].name_len),
                          wire_string_from_bytes(h[i].value, h[i].value_len)));
        }
        rlen = (size_t)(buf[4] & 15);
        id = round % 3 == 0   ? NULL
             : round % 3 == 1 ? json_integer(round * 1000003LL)
                              : json_stringn(buf + 40, (size_t)(buf[5] & 7));
        if (id == NULL && round % 3 == 2) /* not UTF-8: use a plain one */
            id = json_string("id");
        o = json_object();
        if (id != NULL)
            json_object_set(o, "id", id);
        json_object_set_new(o, "status", json_integer(100 + round % 500));
        json_object_set_new(o, "reason",
                            wire_string_from_bytes(buf + 48, rlen));
        json_object_set_new(o, "version", json_integer(11));
        json_object_set_new(o, "headers", headers);
        if (round % 2)
            json_object_set_new(o, "length", json_integer(round));
        json_object_set_new(o, "reused", json_boolean(round % 5 == 0));
        want = wire_encode(o, &len);
        assert_non_null(want);
        l.len = 0;
        assert_int_equal(wire_line_head(&l, id, 100 + round % 500, buf + 48,
                                        rlen, 11, h, nh, round % 2 ? round : -1,
                                        round % 5 == 0, NULL),
                         0);
        assert_int_equal(l.len, len);
        assert_memory_equal(l.buf, want, len);
        free(want);
        json_decref(o);
        json_decref(id);
    }
    wire_line_free(&l);
}

/* Fills o as jansson's form of wire_line_head(NULL, 200, reason[0..len),
 * 11, headers, no length, not reused). */
static void
head_want(json_t *o, const char *reason, size_t len, json_t *headers)
{
    json_object_set_new(o, "status", json_integer(200));
    json_object_set_new(o, "reason", wire_string_from_bytes(reason, len));
    json_object_set_new(o, "version", json_integer(11));
    json_object_set_new(o, "headers", headers);
    json_object_set_new(o, "reused", json_false());
}

/* Plain ASCII runs are copied a word at a time: a byte that needs a look
 * of its own (an escape, a control character, UTF-8, ISO-8859-1) at any
 * offset of a long value, and every byte value alone, come out as
 * jansson's dump of wire_string_from_bytes. */
static void
test_reply_lines_plain_runs(void **state)
{
    static const unsigned char odd[] = {'"',  '\\', 0x00, 0x1f, '\n', 0x7f,
                                        0x80, 0xc3, 0xe9, 0xff, ' ',  '~'};
    char storage[64], value[40];
    struct wire_line l;

    (void)state;
    wire_line_init(&l, storage, sizeof storage);
    for (size_t len = 0; len <= sizeof value; len++) {
        for (size_t at = 0; at <= len; at++) {
            for (size_t k = 0; k < sizeof odd; k++) {
                struct http1_header h = {"X-Value", 7, value, len};
                json_t *o = json_object();

                for (size_t i = 0; i < len; i++)
                    value[i] = (char)('A' + (i * 7) % 58);
                if (at < len)
                    value[at] = (char)odd[k];
                /* A whole sequence ("\xc3\xa9") stays UTF-8; the other
                 * high bytes alone are ISO-8859-1. */
                if (at + 1 < len && odd[k] == 0xc3)
                    value[at + 1] = (char)0xa9;
                /* A lone LF is an obs-fold's; checked elsewhere. */
                if (odd[k] == '\n' && at < len)
                    value[at] = '\t';
                head_want(o, value, len,
                          json_pack("[[s,o]]", "X-Value",
                                    wire_string_from_bytes(value, len)));
                assert_line_json(&l,
                                 wire_line_head(&l, NULL, 200, value, len, 11,
                                                &h, 1, -1, false, NULL),
                                 o);
                json_decref(o);
            }
        }
    }
    wire_line_free(&l);
}

/* The ASCII writer's edges: names and values of every length up to 40
 * (the 4..7-byte short word, 8/9, 15/16/17: one word and a tail) with one
 * or two bytes that need a look of their own (escapes, a control byte,
 * DEL, high bytes, a cut UTF-8 sequence) at every pair of positions,
 * written into a line whose room ends anywhere near the field (so an
 * escape can run out of room as the words are stored): always jansson's
 * dump of wire_string_from_bytes. */
static void
test_reply_lines_ascii_edges(void **state)
{
    static const unsigned char odd[] = {'"',  '\\', 0x01, 0x1f, 0x7f,
                                        0x80, 0xc3, 0xe9, 0xff, 'a'};
    /* The second odd byte of a pair. */
    static const unsigned char odd2[] = {'"', 0x01, 0x80, '\\'};
    char value[40], plain[40], storage[96];

    (void)state;
    for (size_t i = 0; i < sizeof plain; i++)
        plain[i] = (char)('a' + i % 26);
    for (size_t len = 0; len <= sizeof value; len++) {
        /* The edges of words and 16-byte steps: 7/8/9, 15/16/17,
         * 23/24/25, 31/32/33, then 38 to 40. */
        if (len > 17 && len < 38 && ((len + 1) & 7) > 2)
            continue;
        for (size_t a = 0; a <= len; a++) {
            for (size_t b = a; b <= len; b++) {
                size_t nk = sizeof odd * (b == a || b == len ? 1 : sizeof odd2);

                for (size_t k = 0; k < nk; k++) {
                    struct http1_header h[3] = {{"N", 1, value, len},
                                                {value, len, "v", 1},
                                                {value, len, plain, len}};
                    size_t room = 40 + (a * 7 + b + k) % 56;
                    struct wire_line l;
                    json_t *o = json_object();
                    size_t want_len;
                    char *want;

                    /* Half the pairs among backslashes: an escape per
                     * byte runs out of room. */
                    for (size_t i = 0; i < len; i++)
                        value[i] = (k / sizeof odd) % 2 == 0
                                       ? (char)('A' + (i * 5) % 26)
                                       : '\\';
                    if (a < len)
                        value[a] = (char)odd[k % sizeof odd];
                    if (b < len && b != a)
                        value[b] = (char)odd2[k / sizeof odd];
                    head_want(o, value, len,
                              json_pack("[[s,o],[o,s],[o,o]]", "N",
                                        wire_string_from_bytes(value, len),
                                        wire_string_from_bytes(value, len), "v",
                                        wire_string_from_bytes(value, len),
                                        wire_string_from_bytes(plain, len)));
                    want = wire_encode(o, &want_len);
                    assert_non_null(want);
                    /* Nothing is written past the room given. */
                    memset(storage, 0xa5, sizeof storage);
                    wire_line_init(&l, storage, room);
                    assert_int_equal(wire_line_head(&l, NULL, 200, value, len,
                                                    11, h, 3, -1, false, NULL),
                                     0);
                    assert_int_equal(l.len, want_len);
                    assert_memory_equal(l.buf, want, want_len);
                    for (size_t i = room; i < sizeof storage; i++)
                        assert_int_equal((unsigned char)storage[i], 0xa5);
                    wire_line_free(&l);
                    free(want);
                    json_decref(o);
                }
            }
        }
    }
}

/* Numbers are written without printf: the edges of every width, and
 * integer ids down to INT64_MIN, as jansson writes them. */
static void
test_decimal(void **state)
{
    static const struct {
        uint64_t v;
        const char *want;
    } cases[] = {
        {0, "0"},
        {9, "9"},
        {10, "10"},
        {99, "99"},
        {100, "100"},
        {101, "101"},
        {999, "999"},
        {1000, "1000"},
        {65535, "65535"},
        {2147483648u, "2147483648"},
        {9007199254740992u, "9007199254740992"},
        {9999999999999999999u, "9999999999999999999"},
        {10000000000000000000u, "10000000000000000000"},
        {999999999, "999999999"},
        {1000000000, "1000000000"},
        {(uint64_t)INT64_MAX, "9223372036854775807"},
        {UINT64_MAX, "18446744073709551615"},
    };
    static const int64_t ids[] = {
        0, -1, 7, 99, 100, -100, -2147483648LL, INT64_MAX, INT64_MIN};
    char out[DECIMAL_U64_SIZE], storage[128];
    struct wire_line l;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        assert_int_equal(decimal_u64(out, cases[i].v), strlen(cases[i].want));
        assert_string_equal(out, cases[i].want);
    }
    wire_line_init(&l, storage, sizeof storage);
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
        json_t *id = json_integer(ids[i]);
        json_t *o = json_pack("{s:O, s:I}", "id", id, "data", (json_int_t)1);

        assert_line_json(&l, wire_line_data(&l, id, 1), o);
        json_decref(o);
        json_decref(id);
    }
    wire_line_free(&l);
}

/* Builders and parser agree: what the daemon sends, libhconn reads. */
static void
test_round_trip(void **state)
{
    static const struct http1_header ab = {"A", 1, "b", 1};
    struct wire_line wl;
    char storage[256];
    struct wire_reader rd = {0};
    struct wire_reply r;
    json_t *id = json_integer(42), *o, *msg;
    size_t len, consumed;
    char *line, err[256];

    (void)state;
    wire_reader_init(&rd, WIRE_MAX_LINE);
    wire_line_init(&wl, storage, sizeof storage);
    assert_int_equal(
        wire_line_head(&wl, id, 404, "Not Found", 9, 11, &ab, 1, 9, true, NULL),
        0);
    assert_int_equal(
        wire_read_line(&rd, wl.buf, wl.len, &consumed, &msg, err, sizeof(err)),
        0);
    assert_int_equal(consumed, wl.len);
    assert_int_equal(wire_parse_reply(msg, &r, err, sizeof(err)), 0);
    assert_int_equal(r.kind, WIRE_REPLY_HEAD);
    assert_int_equal(json_integer_value(r.id), 42);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.reason, "Not Found");
    assert_int_equal(r.length, 9);
    assert_true(r.reused);
    json_decref(msg);
    wire_line_free(&wl);

    o = wire_reply_error(id, HCONN_EDNS_FAILED, "no such host \"x\"");
    line = wire_encode(o, &len);
    json_decref(o);
    assert_int_equal(
        wire_read_line(&rd, line, len, &consumed, &msg, err, sizeof(err)), 0);
    assert_int_equal(wire_parse_reply(msg, &r, err, sizeof(err)), 0);
    assert_int_equal(r.kind, WIRE_REPLY_ERROR);
    assert_int_equal(r.error, HCONN_EDNS_FAILED);
    assert_string_equal(r.message, "no such host \"x\"");
    json_decref(msg);
    free(line);
    json_decref(id);
}

/* ---- Strings from an HTTP head ----------------------------------------- */

/* Valid UTF-8 is kept; anything else is read as ISO-8859-1. */
static void
test_string_from_bytes(void **state)
{
    static const struct {
        const char *in;
        size_t len;
        const char *out;
        size_t outlen;
    } cases[] = {
        {"", 0, "", 0},
        {"OK", 2, "OK", 2},
        {"caf\xc3\xa9", 5, "caf\xc3\xa9", 5},           /* UTF-8 kept */
        {"\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80", 4}, /* U+1F600 */
        {"\xef\xbf\xbf", 3, "\xef\xbf\xbf", 3},         /* U+FFFF */
        {"\xf4\x8f\xbf\xbf", 4, "\xf4\x8f\xbf\xbf", 4}, /* U+10FFFF */
        {"a\0b", 3, "a\0b", 3},                         /* NUL kept */
        {"caf\xe9", 4, "caf\xc3\xa9", 5},               /* latin-1 */
        {"\xff", 1, "\xc3\xbf", 2},
        {"\x80", 1, "\xc2\x80", 2},
        {"\xc0\xaf", 2, "\xc3\x80\xc2\xaf", 4}, /* overlong */
        {"\xe0\x80\xaf", 3, "\xc3\xa0\xc2\x80\xc2\xaf", 6},
        {"\xed\xa0\x80", 3, "\xc3\xad\xc2\xa0\xc2\x80", 6}, /* surrogate */
        {"\xf4\x90\x80\x80", 4, "\xc3\xb4\xc2\x90\xc2\x80\xc2\x80", 8},
        {"\xe2\x82", 2, "\xc3\xa2\xc2\x82", 4}, /* truncated */
        {"ok \xc3\xa9 \xe9", 7, "ok \xc3\x83\xc2\xa9 \xc3\xa9", 10},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *v = wire_string_from_bytes(cases[i].in, cases[i].len);

        assert_non_null(v);
        assert_int_equal(json_string_length(v), cases[i].outlen);
        assert_memory_equal(json_string_value(v), cases[i].out,
                            cases[i].outlen);
        json_decref(v);
    }
}

/* Our UTF-8 check agrees with jansson's on every 1- and 2-byte string and
 * on every 3- and 4-byte string with a multi-byte lead and tails drawn
 * from the boundary bytes. */
static void
test_string_from_bytes_agrees(void **state)
{
    static const unsigned char tails[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90,
                                          0x9f, 0xa0, 0xbf, 0xc0, 0xff};
    const size_t nt = sizeof(tails);
    unsigned char s[4];

    (void)state;
    for (unsigned a = 0; a < 256; a++) {
        for (unsigned b = 0; b < 257; b++) {
            size_t len = b == 256 ? 1 : 2;
            json_t *mine, *ref;

            s[0] = (unsigned char)a;
            s[1] = (unsigned char)b;
            mine = wire_string_from_bytes((char *)s, len);
            ref = json_stringn((char *)s, len);
            assert_non_null(mine);
            assert_int_equal(ref != NULL,
                             json_string_length(mine) == len &&
                                 memcmp(json_string_value(mine), s, len) == 0);
            json_decref(mine);
            json_decref(ref);
        }
    }
    for (unsigned a = 0xc0; a < 256; a++) {
        for (size_t i = 0; i < nt * nt * nt; i++) {
            s[0] = (unsigned char)a;
            s[1] = tails[i % nt];
            s[2] = tails[i / nt % nt];
            s[3] = tails[i / nt / nt];
            for (size_t len = 3; len <= 4; len++) {
                json_t *mine = wire_string_from_bytes((char *)s, len);
                json_t *ref = json_stringn((char *)s, len);

                assert_non_null(mine);
                assert_int_equal(ref != NULL,
                                 json_string_length(mine) == len &&
                                     memcmp(json_string_value(mine), s, len) ==
                                         0);
                json_decref(mine);
                json_decref(ref);
            }
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_framing_whole),
        cmocka_unit_test(test_framing_split),
        cmocka_unit_test(test_framing_partial_and_blank),
        cmocka_unit_test(test_framing_overlong),
        cmocka_unit_test(test_reader_init_default),
        cmocka_unit_test(test_request_minimal),
        cmocka_unit_test(test_request_url),
        cmocka_unit_test(test_request_host_form),
        cmocka_unit_test(test_request_id),
        cmocka_unit_test(test_request_headers),
        cmocka_unit_test(test_request_bools),
        cmocka_unit_test(test_request_http_version),
        cmocka_unit_test(test_request_body),
        cmocka_unit_test(test_request_timeout),
        cmocka_unit_test(test_request_tls_options),
        cmocka_unit_test(test_request_source_address),
        cmocka_unit_test(test_request_tls_inline_pem),
        cmocka_unit_test(test_request_proxy),
        cmocka_unit_test(test_request_invalid),
        cmocka_unit_test(test_request_limits),
        cmocka_unit_test(test_framing_kept_on_error),
        cmocka_unit_test(test_framing_lost),
        cmocka_unit_test(test_frames),
        cmocka_unit_test(test_ops),
        cmocka_unit_test(test_others_invalid),
        cmocka_unit_test(test_client_msg_not_object),
        cmocka_unit_test(test_builders),
        cmocka_unit_test(test_reply_lines),
        cmocka_unit_test(test_reply_lines_match_jansson),
        cmocka_unit_test(test_reply_lines_plain_runs),
        cmocka_unit_test(test_reply_lines_ascii_edges),
        cmocka_unit_test(test_decimal),
        cmocka_unit_test(test_encode),
        cmocka_unit_test(test_parse_reply_kinds),
        cmocka_unit_test(test_parse_reply_unknown_error),
        cmocka_unit_test(test_parse_reply_extra_fields),
        cmocka_unit_test(test_parse_reply_invalid),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_string_from_bytes),
        cmocka_unit_test(test_string_from_bytes_agrees),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
