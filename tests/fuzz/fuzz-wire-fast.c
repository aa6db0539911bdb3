/*
 * fuzz-wire-fast.c — libFuzzer target holding the fast request scanner
 * (proto/wire_fast.c) to the full path it stands in for.
 *
 * Input: one message line (cut at the first '\n'), or, after a first byte
 * 0x01, a line composed from the input: each following pair of bytes picks
 * a key and a value from the tables below (the scanner's keys, some it
 * does not know, and values at every edge), so that most composed lines
 * are near-valid requests and frames rather than broken JSON. The line
 * goes through the full path as hconnd runs it (wire_read_line, then
 * wire_parse_client_msg) and through wire_fast_parse_client_msg, from a
 * buffer of exactly its size so ASan sees any read past it. The scanner
 * may decline anything (then it must leave nothing behind), but when it
 * accepts, the full path must accept the same line and give the same
 * message: every byte of it, strings by content (wire-fast-same.h). The
 * scanner never rejects, so a line the full path accepts is either
 * accepted identically or declined to that path.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fuzz-common.h"
#include "hconn_error.h"
#include "wire-fast-same.h"
#include "wire.h"
#include "wire_fast.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
    "{\"ca_file\":\"/a\"}",
    "{\"ca_file\":\"/a\\/b\",\"server_name\":\"h\",\"verify\":true}",
    "{\"cert_file\":\"/c\",\"key_file\":\"/k\",\"ca_path\":\"/p\"}",
    "{\"key_file\":\"/k\"}",
    "{\"insecure\":true,\"verify\":true}",
    "{\"insecure\":true,\"verify\":false,\"check_hostname\":false}",
    "{\"insecure\":false}",
    "{\"min_version\":\"1.2\"}",
    "{\"min_version\":\"1.4\"}",
    "{\"server_name\":\"[::1]\"}",
    "{\"server_name\":\"::1\"}",
    "{\"server_name\":\"h h\"}",
    "{\"ca_pem\":\"x\"}",
    "{\"ca_file\":\"\"}",
    "{\"ca_file\":\"/\\u0000\"}",
    "{\"ca_file\":\"/a\",\"ca_file\":\"/b\"}",
    "{\"ca_file\":\"/a\",\"ca_pem\":\"x\"}",
    "{\"verify\":null}",
    "{\"check_hostname\":true,}",
    "{\"host\":\"p\",\"port\":1}",
    "\"hello\"",
    "\"1.1\"",
    "\"2\"",
    "\"auto\"",
    "\"1.0\"",
    "\"2 \"",
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
        FZ_CHECK(fast.id == id);
        FZ_CHECK(wire_fast_same(&fast, &full));
        /* Its strings are its own: the line may go at once. */
        memset(exact, 'x', n);
        FZ_CHECK(wire_fast_same(&fast, &full));
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
