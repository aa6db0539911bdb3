/*
 * fuzz-wire.c — libFuzzer target for the wire protocol codec
 * (proto/wire.c): line framing, client message validation, the reply
 * parser, the reply builders and wire_string_from_bytes.
 *
 * Input: three control bytes, then the stream a peer would send. Byte 0,
 * bits 0-2: the reader's line limit (the default or a small one, so the
 * over-long line path runs); bytes 1-2 choose piece sizes. The stream is
 * read in those pieces and all at once, keeping a window of unconsumed
 * bytes as hconnd does; both runs must give the same transcript. Every
 * message is validated as a client message (and a valid request is
 * formatted as the daemon would, checked by request-check.h), parsed as
 * a reply, and encoded and decoded again, which must give back an equal
 * object and the same bytes. The raw input also goes through
 * wire_string_from_bytes and through each reply builder and back through
 * wire_parse_reply.
 */
#include <stddef.h>
#include <stdint.h>
#include <strings.h>

#include "hconn_error.h"
#include "request-check.h"
#include "http1.h"
#include "wire.h"
#include "wire_line.h"

#define WIRE_MAX_INT ((int64_t)9007199254740991LL) /* 2^53-1, as wire.c */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Encodes msg (one line, '\n' only at its end), reads it back and
 * re-encodes: equal object, same bytes. Returns the malloc'd line. */
static char *
wf_roundtrip(const json_t *msg, size_t *len)
{
    struct wire_reader r;
    char *line, *again, err[256];
    size_t n, n2, consumed;
    json_t *back;

    line = wire_encode(msg, &n);
    FZ_CHECK(line != NULL);
    FZ_CHECK(n >= 3 && line[0] == '{' && line[n - 1] == '\n');
    FZ_CHECK(memchr(line, '\n', n - 1) == NULL);
    wire_reader_init(&r, n);
    FZ_CHECK(wire_read_line(&r, line, n, &consumed, &back, err, sizeof err) ==
             0);
    FZ_CHECK(back != NULL && consumed == n);
    FZ_CHECK(json_equal(msg, back));
    again = wire_encode(back, &n2);
    FZ_CHECK(again != NULL && n2 == n && memcmp(again, line, n) == 0);
    free(again);
    json_decref(back);
    *len = n;
    return line;
}

/* A failed validation says what was wrong. */
static void
wf_check_err(const char *err, size_t errlen)
{
    FZ_CHECK(memchr(err, '\0', errlen) != NULL && err[0] != '\0');
}

static void
wf_check_str(const char *s)
{
    if (s != NULL)
        FZ_CHECK(strlen(s) < WIRE_MAX_LINE);
}

/* The daemon's mapping (daemon/exchange.c): wire request → http1. */
static void
wf_format_request(const struct wire_request *req)
{
    struct http1_header *fields =
        fz_xmalloc((req->nheaders + 1) * sizeof *fields);
    struct http1_request h = {
        .method = req->method,
        .target = req->target,
        .host = req->host,
        .port = req->port,
        .tls = req->tls,
        .headers = fields,
        .nheaders = req->nheaders,
        .skip_host = req->skip_host,
        .skip_accept_encoding = req->skip_accept_encoding,
        .content_length = -1,
    };

    for (size_t i = 0; i < req->nheaders; i++) {
        fields[i].name = req->headers[i].name;
        fields[i].name_len = strlen(req->headers[i].name);
        fields[i].value = req->headers[i].value;
        fields[i].value_len = strlen(req->headers[i].value);
    }
    if (req->body == WIRE_BODY_STREAM && req->length < 0)
        h.chunked = true;
    else if (req->body != WIRE_BODY_NONE)
        h.content_length = req->length;
    rq_check(&h, NULL, 0);
    free(fields);
}

/* A message that validated as a client message. */
static void
wf_check_client(const struct wire_client_msg *m)
{
    const struct wire_request *r = &m->req;

    FZ_CHECK(!m->framing_lost);
    FZ_CHECK(!m->has_data || m->data_len <= (uint64_t)WIRE_MAX_INT);
    FZ_CHECK(m->id == NULL || json_is_integer(m->id) || json_is_string(m->id));
    switch (m->kind) {
    case WIRE_MSG_REQUEST:
        FZ_CHECK(r->method != NULL && r->method[0] != '\0');
        FZ_CHECK(r->host != NULL && r->target != NULL);
        FZ_CHECK(r->port != 0);
        FZ_CHECK(r->nheaders == 0 || r->headers != NULL);
        for (size_t i = 0; i < r->nheaders; i++) {
            FZ_CHECK(r->headers[i].name != NULL);
            FZ_CHECK(r->headers[i].value != NULL);
            wf_check_str(r->headers[i].name);
            wf_check_str(r->headers[i].value);
        }
        FZ_CHECK((r->body == WIRE_BODY_INLINE) == m->has_data);
        FZ_CHECK(r->body != WIRE_BODY_NONE || r->length == -1);
        FZ_CHECK(r->length >= -1 && r->length <= WIRE_MAX_INT);
        FZ_CHECK(r->timeout >= 0 && r->timeout <= 86400.0);
        wf_check_str(r->tls_options.ca_file);
        wf_check_str(r->tls_options.ca_path);
        wf_check_str(r->tls_options.cert_file);
        wf_check_str(r->tls_options.key_file);
        wf_check_str(r->tls_options.server_name);
        wf_check_str(r->tls_options.min_version);
        if (r->has_proxy) {
            FZ_CHECK(r->proxy.host != NULL && r->proxy.port != 0);
            FZ_CHECK(r->proxy.nheaders == 0 || r->proxy.headers != NULL);
            for (size_t i = 0; i < r->proxy.nheaders; i++) {
                wf_check_str(r->proxy.headers[i].name);
                wf_check_str(r->proxy.headers[i].value);
            }
        }
        wf_format_request(r);
        break;
    case WIRE_MSG_DATA:
        FZ_CHECK(m->has_data && m->id != NULL);
        break;
    case WIRE_MSG_END:
        FZ_CHECK(m->id != NULL);
        break;
    case WIRE_MSG_OP:
        FZ_CHECK(m->op != NULL &&
                 (strcmp(m->op, "hello") == 0 || strcmp(m->op, "stats") == 0));
        break;
    default:
        FZ_CHECK(0);
    }
}

/* A message that validated as a daemon reply. */
static void
wf_check_reply(const struct wire_reply *r)
{
    switch (r->kind) {
    case WIRE_REPLY_HEAD:
        FZ_CHECK(r->status >= 100 && r->status <= 999);
        FZ_CHECK(r->version == 10 || r->version == 11 || r->version == 20);
        FZ_CHECK(r->reason != NULL && json_is_array(r->headers));
        FZ_CHECK(r->length >= -1);
        break;
    case WIRE_REPLY_ERROR:
        FZ_CHECK(r->error < 0 && r->message != NULL);
        FZ_CHECK(strcmp(hconn_error_name(r->error), "unknown") != 0);
        break;
    case WIRE_REPLY_END:
        FZ_CHECK(r->trailers == NULL || json_is_array(r->trailers));
        break;
    case WIRE_REPLY_DATA:
        FZ_CHECK(r->data_len <= (uint64_t)WIRE_MAX_INT);
        break;
    case WIRE_REPLY_CONTINUE:
    case WIRE_REPLY_OP:
        break;
    default:
        FZ_CHECK(0);
    }
}

/* Everything done with one decoded message. */
static void
wf_message(json_t *msg)
{
    struct wire_client_msg cm;
    struct wire_reply rp;
    char err[256], *line;
    size_t len;
    int rc;

    line = wf_roundtrip(msg, &len);
    free(line);

    err[0] = '\0';
    rc = wire_parse_client_msg(msg, &cm, err, sizeof err);
    if (rc == 0) {
        wf_check_client(&cm);
    } else {
        FZ_CHECK(rc == HCONN_EBAD_MESSAGE || rc == HCONN_EINVALID_URL ||
                 rc == HCONN_EINVALID_HEADER || rc == HCONN_ENO_MEMORY);
        wf_check_err(err, sizeof err);
        FZ_CHECK(!cm.framing_lost || !cm.has_data);
    }
    wire_client_msg_clear(&cm);

    err[0] = '\0';
    rc = wire_parse_reply(msg, &rp, err, sizeof err);
    if (rc == 0) {
        wf_check_reply(&rp);
    } else {
        FZ_CHECK(rc == HCONN_EBAD_MESSAGE);
        wf_check_err(err, sizeof err);
    }
}

/* Reads in[0..n) as a stream of lines in the pieces split gives (NULL:
 * all at once), recording each message (encoded) and error; deep: run
 * wf_message on each message too (once per input is enough). */
static void
wf_read_stream(const char *in, size_t n, size_t max_line,
               struct fz_split *split, bool deep, struct fz_bytes *t)
{
    struct wire_reader r;
    struct fz_window w;
    size_t fed = 0;

    wire_reader_init(&r, max_line);
    fz_window_init(&w, n);
    while (fed < n) {
        size_t k = split != NULL ? fz_split_next(split, n - fed) : n - fed;

        fz_window_append(&w, in + fed, k);
        fed += k;
        for (;;) {
            bool discarding = r.discarding;
            size_t consumed = SIZE_MAX;
            json_t *msg = NULL;
            char err[256];
            int rc;

            err[0] = '\0';
            rc = wire_read_line(&r, w.mem, w.len, &consumed, &msg, err,
                                sizeof err);
            FZ_CHECK(consumed <= w.len);
            if (rc != 0) {
                FZ_CHECK(rc == HCONN_EBAD_MESSAGE && msg == NULL);
                FZ_CHECK(consumed > 0);
                wf_check_err(err, sizeof err);
                fz_bytes_add(t, "X", 1);
                fz_bytes_field(t, err, strlen(err));
            } else if (msg != NULL) {
                FZ_CHECK(!discarding && json_is_object(msg));
                FZ_CHECK(consumed > 0 && consumed <= r.max_line);
                FZ_CHECK(w.mem[consumed - 1] == '\n');
                FZ_CHECK(memchr(w.mem, '\n', consumed - 1) == NULL);
                {
                    size_t elen;
                    char *line = wire_encode(msg, &elen);

                    FZ_CHECK(line != NULL);
                    fz_bytes_add(t, "M", 1);
                    fz_bytes_field(t, line, elen);
                    free(line);
                }
                if (deep)
                    wf_message(msg);
                json_decref(msg);
            } else if (consumed == 0) {
                /* No complete line: nothing to do until more bytes. */
                FZ_CHECK(discarding ? w.len == 0 : w.len < r.max_line);
                FZ_CHECK(memchr(w.mem, '\n', w.len) == NULL);
                break;
            } else if (!discarding) {
                /* A blank line, skipped. */
                FZ_CHECK(w.mem[consumed - 1] == '\n');
            }
            fz_window_drop(&w, consumed);
        }
    }
    fz_window_free(&w);
}

/* Builders → encode → decode → wire_parse_reply gives back what went
 * in: whatever bytes a daemon copies from an origin, libhconn parses. */
static json_t *
wf_reparse_line(const char *line, size_t n, struct wire_reply *rp)
{
    struct wire_reader r;
    json_t *back;
    char err[256];
    size_t consumed;

    wire_reader_init(&r, n);
    FZ_CHECK(wire_read_line(&r, line, n, &consumed, &back, err, sizeof err) ==
                 0 &&
             back != NULL && consumed == n);
    FZ_CHECK(wire_parse_reply(back, rp, err, sizeof err) == 0);
    return back;
}

/* Round-trips a built reply (stolen) and parses it as libhconn would. */
static json_t *
wf_reparse(json_t *built, struct wire_reply *rp)
{
    json_t *back;
    char *line;
    size_t n;

    FZ_CHECK(built != NULL);
    line = wf_roundtrip(built, &n);
    back = wf_reparse_line(line, n, rp);
    free(line);
    json_decref(built);
    return back;
}

/* A [[name, value]] array from raw bytes. */
static json_t *
wf_pairs(const char *s, size_t n)
{
    json_t *pair = json_pack("[oo]", wire_string_from_bytes(s, n / 2),
                             wire_string_from_bytes(s + n / 2, n - n / 2));

    FZ_CHECK(pair != NULL);
    return json_pack("[o]", pair);
}

static void
wf_builders(const uint8_t *ctl, const char *in, size_t n)
{
    struct wire_reply rp;
    json_t *id = ctl[0] & 8 ? json_integer(ctl[1]) : json_stringn("x", 1);
    json_t *back, *s = wire_string_from_bytes(in, n);
    char *cmsg = fz_xmalloc(n + 1);
    int code = -(1 + ctl[1] % (HCONN_ERROR_COUNT - 1));
    int status = 100 + (ctl[1] << 8 | ctl[2]) % 900;
    int64_t length = ctl[0] & 16 ? -1 : (int64_t)ctl[2] << 40 | ctl[1];
    uint64_t dlen = ((uint64_t)ctl[1] << 45 | ctl[2]) & (uint64_t)WIRE_MAX_INT;

    FZ_CHECK(id != NULL && s != NULL);
    memcpy(cmsg, in, n);
    cmsg[n] = '\0';

    /* An error whose message is origin bytes (NUL ends it). */
    back = wf_reparse(wire_reply_error(id, code, cmsg), &rp);
    FZ_CHECK(rp.kind == WIRE_REPLY_ERROR && rp.error == code);
    FZ_CHECK(json_equal(rp.id, id));
    {
        json_t *want = wire_string_from_bytes(cmsg, strlen(cmsg));

        FZ_CHECK(want != NULL &&
                 strcmp(rp.message, json_string_value(want)) == 0);
        json_decref(want);
    }
    json_decref(back);

    /* A head written directly, with the input as reason and as one
     * header pair: the parser reads it back, and without a line feed in
     * the value (which would be unfolded) it is byte for byte jansson's
     * dump of the same object. */
    {
        struct http1_header pair = {in, n / 2, in + n / 2, n - n / 2};
        int version = ctl[0] & 32 ? 11 : 10;
        bool reused = ctl[0] & 64;
        struct wire_line l;
        char storage[64];

        wire_line_init(&l, storage, sizeof storage);
        FZ_CHECK(wire_line_head(&l, id, status, in, n, version, &pair, 1,
                                length, reused, NULL) == 0);
        back = wf_reparse_line(l.buf, l.len, &rp);
        FZ_CHECK(rp.kind == WIRE_REPLY_HEAD && rp.status == status);
        FZ_CHECK(rp.version == version);
        FZ_CHECK(rp.length == length && rp.reused == reused);
        FZ_CHECK(strcmp(rp.reason, json_string_value(s)) == 0);
        FZ_CHECK(json_array_size(rp.headers) == 1);
        json_decref(back);
        if (memchr(in + n / 2, '\n', n - n / 2) == NULL) {
            json_t *o = json_pack("{s:O, s:i, s:O, s:i, s:o}", "id", id,
                                  "status", status, "reason", s, "version",
                                  version, "headers", wf_pairs(in, n));
            size_t len;
            char *want;

            FZ_CHECK(o != NULL);
            if (length >= 0)
                json_object_set_new(o, "length", json_integer(length));
            json_object_set_new(o, "reused", json_boolean(reused));
            want = wire_encode(o, &len);
            FZ_CHECK(want != NULL && len == l.len &&
                     memcmp(want, l.buf, len) == 0);
            free(want);
            json_decref(o);
        }
        wire_line_free(&l);
    }

    back = wf_reparse(wire_data_frame(id, dlen), &rp);
    FZ_CHECK(rp.kind == WIRE_REPLY_DATA && rp.data_len == dlen);
    json_decref(back);

    back = wf_reparse(wire_end_frame(id, ctl[0] & 128 ? wf_pairs(in, n) : NULL),
                      &rp);
    FZ_CHECK(rp.kind == WIRE_REPLY_END);
    FZ_CHECK(json_array_size(rp.trailers) == (ctl[0] & 128 ? 1u : 0u));
    json_decref(back);

    back = wf_reparse(wire_reply_continue(id), &rp);
    FZ_CHECK(rp.kind == WIRE_REPLY_CONTINUE);
    json_decref(back);

    free(cmsg);
    json_decref(s);
    json_decref(id);
}

/* Valid UTF-8 is kept as is, anything else read as ISO-8859-1. */
static void
wf_string_from_bytes(const char *in, size_t n)
{
    json_t *s = wire_string_from_bytes(in, n), *o;
    const unsigned char *u = (const unsigned char *)in;
    const char *v;
    size_t vlen, k = 0;
    char *line;

    FZ_CHECK(s != NULL && json_is_string(s));
    v = json_string_value(s);
    vlen = json_string_length(s);
    if (vlen != n || memcmp(v, in, n) != 0) {
        for (size_t i = 0; i < n; i++) {
            if (u[i] < 0x80) {
                FZ_CHECK(k < vlen && v[k++] == (char)u[i]);
            } else {
                FZ_CHECK(k + 1 < vlen);
                FZ_CHECK((unsigned char)v[k++] == (0xc0 | u[i] >> 6));
                FZ_CHECK((unsigned char)v[k++] == (0x80 | (u[i] & 0x3f)));
            }
        }
        FZ_CHECK(k == vlen);
    }
    o = json_pack("{so}", "s", s);
    FZ_CHECK(o != NULL);
    line = wf_roundtrip(o, &vlen);
    free(line);
    json_decref(o);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t max_lines[8] = {0, 1, 2, 5, 16, 64, 300, 4096};
    struct fz_bytes pieces = {0}, whole = {0};
    struct fz_split split;
    const char *in = (const char *)data + 3;
    size_t n, max_line;

    if (size < 3)
        return 0;
    n = size - 3;
    max_line = max_lines[data[0] & 7];
    fz_split_init(&split, data[1], data[2]);
    wf_read_stream(in, n, max_line, &split, false, &pieces);
    wf_read_stream(in, n, max_line, NULL, true, &whole);
    FZ_CHECK(fz_bytes_equal(&pieces, &whole));
    fz_bytes_free(&pieces);
    fz_bytes_free(&whole);

    wf_string_from_bytes(in, n);
    wf_builders(data, in, n);
    return 0;
}
