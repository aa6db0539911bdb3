/*
 * fuzz-wire-fast.c — libFuzzer target holding the fast request scanner
 * (proto/wire_fast.c) to the full path it stands in for.
 *
 * Input: one message line (cut at the first '\n'), or, after a first byte
 * 0x01, a line composed from the input: each following pair of bytes picks
 * a key and a value from the tables below (the scanner's keys, some it
 * does not know, and values at every edge), so that most composed lines
 * are near-valid requests and frames rather than broken JSON. It goes
 * through the
 * full path as hconnd runs it (wire_read_line, then
 * wire_parse_client_msg) and through wire_fast_parse_client_msg, from a
 * buffer of exactly its size so ASan sees any read past it. The scanner
 * may decline anything (then it must leave nothing behind), but when it
 * accepts, the full path must accept the same line and give the same
 * message: kind, id (type and value), framing, and every request field,
 * string by string. The scanner never rejects, so a line the full path
 * accepts is either accepted identically or declined to that path.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fuzz-common.h"
#include "hconn_error.h"
#include "wire.h"
#include "wire_fast.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Both NULL, or both strings with the same bytes. */
static bool
wff_same_str(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

/* The same doubles, sign of zero included. */
static bool
wff_same_num(double a, double b)
{
    return a == b && signbit(a) == signbit(b);
}

/* The same header list. */
static bool
wff_same_headers(const struct wire_header *a, size_t na,
                 const struct wire_header *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++) {
        if (!wff_same_str(a[i].name, b[i].name) ||
            !wff_same_str(a[i].value, b[i].value))
            return false;
    }
    return true;
}

/* The same "tls" options. */
static bool
wff_same_tls(const struct wire_tls *a, const struct wire_tls *b)
{
    return a->verify == b->verify && a->insecure == b->insecure &&
           wff_same_str(a->ca_file, b->ca_file) &&
           wff_same_str(a->ca_path, b->ca_path) &&
           wff_same_str(a->cert_file, b->cert_file) &&
           wff_same_str(a->key_file, b->key_file) &&
           wff_same_str(a->ca_pem, b->ca_pem) &&
           wff_same_str(a->cert_pem, b->cert_pem) &&
           wff_same_str(a->key_pem, b->key_pem) &&
           wff_same_str(a->server_name, b->server_name) &&
           wff_same_str(a->min_version, b->min_version) &&
           a->no_check_hostname == b->no_check_hostname;
}

/* Every field of two validated requests. */
static bool
wff_same_request(const struct wire_request *a, const struct wire_request *b)
{
    return wff_same_str(a->method, b->method) && a->tls == b->tls &&
           wff_same_str(a->host, b->host) && a->port == b->port &&
           wff_same_str(a->target, b->target) &&
           wff_same_headers(a->headers, a->nheaders, b->headers, b->nheaders) &&
           a->skip_host == b->skip_host &&
           a->skip_accept_encoding == b->skip_accept_encoding &&
           a->body == b->body && a->length == b->length &&
           a->expect_continue == b->expect_continue &&
           wff_same_num(a->timeout, b->timeout) && a->raw == b->raw &&
           a->has_tls_options == b->has_tls_options &&
           wff_same_tls(&a->tls_options, &b->tls_options) &&
           a->has_proxy == b->has_proxy &&
           wff_same_str(a->proxy.host, b->proxy.host) &&
           a->proxy.port == b->proxy.port &&
           wff_same_headers(a->proxy.headers, a->proxy.nheaders,
                            b->proxy.headers, b->proxy.nheaders) &&
           a->direct == b->direct &&
           a->has_read_timeout == b->has_read_timeout &&
           wff_same_num(a->read_timeout, b->read_timeout) &&
           a->has_source == b->has_source &&
           wff_same_str(a->source_host, b->source_host) &&
           a->source_port == b->source_port;
}

/* The same id: both absent, or equal values of the same JSON type. */
static bool
wff_same_id(const json_t *a, const json_t *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return json_typeof(a) == json_typeof(b) && json_equal(a, b);
}

/* Keys of composed lines: all the scanner knows, and some it must not. */
static const char *const wff_keys[] = {
    "id",
    "method",
    "url",
    "host",
    "port",
    "tls",
    "target",
    "headers",
    "skip_host",
    "skip_accept_encoding",
    "expect_continue",
    "raw",
    "data",
    "body",
    "length",
    "timeout",
    "read_timeout",
    "proxy",
    "end",
    "op",
    "http_version",
    "source_address",
    "i\\u0064",
    "ho\\/st",
};

/* Values of composed lines, as JSON text. */
static const char *const wff_values[] = {
    "0",
    "1",
    "5",
    "80",
    "443",
    "65535",
    "65536",
    "9007199254740991",
    "9007199254740992",
    "99999999999999999999",
    "-1",
    "-0",
    "01",
    "1.5",
    "0.0",
    "-0.0",
    "86400",
    "86400.0",
    "86400.000001",
    "0.000001",
    "1e2",
    "1.",
    "true",
    "false",
    "null",
    "\"GET\"",
    "\"POST\"",
    "\"stream\"",
    "\"h\"",
    "\"\"",
    "\"\\u0068\"",
    "\"http://127.0.0.1:8080/x?a#f\"",
    "\"https://[::1]\"",
    "\"HTTP://H:1\"",
    "\"ftp://h/\"",
    "\"/a b\"",
    "\"/x\\/y\"",
    "\"a\\\"b\\\\c\\t\"",
    "\"\xc3\xa9\"",
    "\"\xed\xa0\x80\"",
    "\"[::1]\"",
    "\"::1\"",
    "\"h h\"",
    "[[\"A\",\"1\"]]",
    "[[\"A\",\"1\"],[\"A\",\"2\"]]",
    "{\"A\":\"1\",\"B\":\"2\"}",
    "{\"A\":\"1\",\"A\":\"2\"}",
    "{}",
    "[]",
    "[[\"A\"]]",
    "[[\"A\",1]]",
    "[\"\",0]",
    "{\"verify\":false}",
    "{\"host\":\"p\",\"port\":1}",
    "\"hello\"",
};

/* Composes a line from data (see the top): '{', pairs, '}'. Returns the
 * malloc'd line and its length in *n. */
static char *
wff_compose(const uint8_t *data, size_t size, size_t *n)
{
    static const char *const spaces[] = {"", " ", "\t", " \r"};
    size_t cap = 64 + size * 64, len = 0;
    char *line = fz_xmalloc(cap);

    line[len++] = '{';
    for (size_t i = 0; i + 1 < size; i += 2) {
        const char *key =
            wff_keys[data[i] % (sizeof wff_keys / sizeof *wff_keys)];
        const char *value =
            wff_values[data[i + 1] % (sizeof wff_values / sizeof *wff_values)];
        const char *sp = spaces[data[i] >> 6];

        len += (size_t)snprintf(line + len, cap - len, "%s%s\"%s\":%s%s",
                                i > 0 ? "," : "", sp, key, sp, value);
    }
    line[len++] = '}';
    *n = len;
    return line;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl;
    size_t n;
    char *composed = NULL;
    struct wire_client_msg full, fast, zero;
    struct wire_reader r;
    char *exact, *withnl, err[512];
    size_t consumed;
    json_t *msg = NULL, *id = NULL;
    int rc = HCONN_EBAD_MESSAGE;
    enum wire_fast_result fr;

    if (size > 0 && data[0] == 0x01) {
        composed = wff_compose(data + 1, size - 1, &n);
        data = (const uint8_t *)composed;
        size = n;
    }
    nl = memchr(data, '\n', size);
    n = nl != NULL ? (size_t)(nl - data) : size;
    if (n >= WIRE_MAX_LINE) {
        free(composed);
        return 0;
    }
    exact = fz_xmalloc(n);
    memcpy(exact, data, n);
    withnl = fz_xmalloc(n + 1);
    memcpy(withnl, data, n);
    withnl[n] = '\n';

    wire_reader_init(&r, WIRE_MAX_LINE);
    if (wire_read_line(&r, withnl, n + 1, &consumed, &msg, err, sizeof err) ==
            0 &&
        msg != NULL)
        rc = wire_parse_client_msg(msg, &full, err, sizeof err);
    else
        memset(&full, 0, sizeof full);

    fr = wire_fast_parse_client_msg(exact, n, &fast, &id);
    if (fr == WIRE_FAST_ACCEPTED) {
        /* Accepted: the full path accepts it too, with the same result. */
        FZ_CHECK(msg != NULL && rc == 0);
        FZ_CHECK(fast.kind == full.kind);
        FZ_CHECK(fast.id == id && wff_same_id(fast.id, full.id));
        FZ_CHECK(fast.has_data == full.has_data);
        FZ_CHECK(fast.data_len == full.data_len);
        FZ_CHECK(fast.framing_lost == full.framing_lost);
        FZ_CHECK(wff_same_str(fast.op, full.op));
        FZ_CHECK(wff_same_request(&fast.req, &full.req));
        /* Its strings are its own: the line may go at once. */
        memset(exact, 'x', n);
        FZ_CHECK(wff_same_request(&fast.req, &full.req));
    } else {
        FZ_CHECK(fr == WIRE_FAST_DECLINED && id == NULL);
        memset(&zero, 0, sizeof zero);
        FZ_CHECK(memcmp(&fast, &zero, sizeof zero) == 0);
    }
    wire_client_msg_clear(&fast);
    json_decref(id);
    if (msg != NULL)
        wire_client_msg_clear(&full);
    json_decref(msg);
    free(withnl);
    free(exact);
    free(composed);
    return 0;
}
