/*
 * conn.c — the connection object (http.client's HTTPConnection): options,
 * request messages (whole, or putrequest/putheader/endheaders/send), the
 * queue of requests awaiting their response, and getresponse, which walks
 * the daemon's in-order reply stream.
 *
 * Stream invariants: replies come in request order and never interleave.
 * Between heads the stream is "between responses"; after a head with a
 * body it is "in_body" until that response's end or error frame. Only the
 * response that owns the body (body_owner) reads it; a response closed
 * early leaves in_body set and getresponse drains the rest.
 *
 * Every call that reads or writes the stream is resumable: in non-blocking
 * mode it returns HCONN_EWOULD_BLOCK before changing any state it would
 * have to undo, and the same call made again picks up where it stopped.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hconn-build.h"
#include "hconn-private.h"

/* ---- Errors ------------------------------------------------------------ */

int
conn_error(struct hconn *c, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
    va_end(ap);
    return code;
}

/* Records a failure on a queued request (first failure wins). */
static void
pending_fail(struct pending *p, int code, const char *message)
{
    if (p->error)
        return;
    p->error = code;
    p->message = strdup(message);
}

int
conn_broken(struct hconn *c, int code)
{
    char msg[HCONN_ERRMSG_MAX];

    snprintf(msg, sizeof(msg), "%s", c->errmsg);
    transport_close(c);
    for (size_t i = 0; i < c->pend_count; i++)
        pending_fail(&c->pend[c->pend_first + i], code, msg);
    if (c->body_owner) {
        struct hconn_response *r = c->body_owner;
        size_t used = strlen(c->errmsg);

        if (r->length >= 0)
            snprintf(c->errmsg + used, sizeof(c->errmsg) - used,
                     " (after %" PRIu64 " of %" PRId64 " body bytes)",
                     r->received, r->length);
        else
            snprintf(c->errmsg + used, sizeof(c->errmsg) - used,
                     " (after %" PRIu64 " body bytes)", r->received);
        response_fail(r, code);
        snprintf(c->errmsg, sizeof(c->errmsg), "%s", msg);
    }
    c->in_body = false;
    c->body_owner = NULL;
    if (c->state == CONN_BODY_STREAM)
        c->state = CONN_IDLE;
    return code;
}

bool
conn_id_matches(const struct wire_reply *rep, int64_t id)
{
    if (!rep->id)
        return rep->kind == WIRE_REPLY_ERROR;
    return json_is_integer(rep->id) && json_integer_value(rep->id) == id;
}

bool
conn_stray_error(const struct wire_reply *rep, int64_t id)
{
    return rep->kind == WIRE_REPLY_ERROR && rep->id &&
           json_is_integer(rep->id) && json_integer_value(rep->id) < id;
}

/* Whether s contains the decimal number v. */
static bool
conn_mentions(const char *s, int64_t v)
{
    char num[24];

    snprintf(num, sizeof(num), "%" PRId64, v);
    return strstr(s, num) != NULL;
}

int
conn_reply_error(struct hconn *c, const struct wire_reply *rep)
{
    const char *msg = rep->message && *rep->message
                          ? rep->message
                          : hconn_strerror(rep->error);

    if (rep->received >= 0 && rep->expected >= 0 &&
        !(conn_mentions(msg, rep->received) &&
          conn_mentions(msg, rep->expected)))
        return conn_error(c, rep->error,
                          "%s (received %" PRId64 " of %" PRId64 " bytes)", msg,
                          rep->received, rep->expected);
    if (rep->received >= 0 && !conn_mentions(msg, rep->received))
        return conn_error(c, rep->error, "%s (received %" PRId64 " bytes)", msg,
                          rep->received);
    return conn_error(c, rep->error, "%s", msg);
}

int
conn_copy_headers(json_t *pairs, struct hconn_header **out, size_t *n)
{
    size_t count = json_is_array(pairs) ? json_array_size(pairs) : 0;
    size_t bytes = 0;
    struct hconn_header *h;
    char *s;

    *out = NULL;
    *n = 0;
    for (size_t i = 0; i < count; i++) {
        json_t *pair = json_array_get(pairs, i);
        bytes += strlen(json_string_value(json_array_get(pair, 0))) + 1;
        bytes += strlen(json_string_value(json_array_get(pair, 1))) + 1;
    }
    h = malloc(count * sizeof(*h) + bytes + 1);
    if (!h)
        return HCONN_ENO_MEMORY;
    s = (char *)(h + count);
    for (size_t i = 0; i < count; i++) {
        json_t *pair = json_array_get(pairs, i);
        const char *name = json_string_value(json_array_get(pair, 0));
        const char *value = json_string_value(json_array_get(pair, 1));
        size_t nl = strlen(name) + 1, vl = strlen(value) + 1;

        h[i].name = memcpy(s, name, nl);
        s += nl;
        h[i].value = memcpy(s, value, vl);
        s += vl;
    }
    *out = h;
    *n = count;
    return 0;
}

/* ---- Validation (as http.client's putrequest/putheader) --------------- */

/* RFC 9110 tchar. */
static bool
conn_is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
           (ch >= 'A' && ch <= 'Z') || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Whether s is a non-empty token. */
static bool
conn_is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!conn_is_tchar((unsigned char)*s))
            return false;
    return true;
}

/* The request-target for url: http.client sends "/" for an empty URL. */
static const char *
conn_target(const char *url)
{
    return url && !*url ? "/" : url;
}

/* Checks method and request-target. Returns 0 or a code with detail. */
static int
conn_check_request_line(struct hconn *c, const char *method, const char *url)
{
    if (!method || !conn_is_token(method))
        return conn_error(
            c, HCONN_EINVALID_URL, "invalid method %s%s%s: must be a token",
            method ? "\"" : "", method ? method : "(null)", method ? "\"" : "");
    if (!url)
        return conn_error(c, HCONN_EINVALID_URL, "no request-target (NULL)");
    for (const unsigned char *p = (const unsigned char *)url; *p; p++)
        if (*p <= 0x20 || *p == 0x7f)
            return conn_error(c, HCONN_EINVALID_URL,
                              "URL can't contain control characters or "
                              "space (byte 0x%02x at offset %zu)",
                              *p, (size_t)(p - (const unsigned char *)url));
    return 0;
}

/* Checks one header field. Returns 0 or HCONN_EINVALID_HEADER. */
static int
conn_check_header(struct hconn *c, const char *name, const char *value)
{
    if (!name || !conn_is_token(name))
        return conn_error(c, HCONN_EINVALID_HEADER,
                          "invalid header name \"%s\"", name ? name : "");
    if (!value)
        return conn_error(c, HCONN_EINVALID_HEADER, "header %s has no value",
                          name);
    if (strpbrk(value, "\r\n"))
        return conn_error(c, HCONN_EINVALID_HEADER,
                          "invalid header value for %s: contains CR or LF",
                          name);
    return 0;
}

/* Appends [name, value] to a header array. Returns 0 or a code. */
static int
conn_append_header(struct hconn *c, json_t *arr, const char *name,
                   const char *value)
{
    json_t *pair = json_pack("[oo]", wire_string_from_bytes(name, strlen(name)),
                             wire_string_from_bytes(value, strlen(value)));

    if (!pair || json_array_append_new(arr, pair) < 0)
        return conn_error(c, HCONN_ENO_MEMORY, "out of memory");
    return 0;
}

/* Builds a checked [[name, value]...] array. Returns 0 or a code. */
static int
conn_headers_json(struct hconn *c, const struct hconn_header *headers, size_t n,
                  json_t **out)
{
    json_t *arr = json_array();
    int rc;

    *out = NULL;
    if (!arr)
        return conn_error(c, HCONN_ENO_MEMORY, "out of memory");
    if (n && !headers) {
        json_decref(arr);
        return conn_error(c, HCONN_EINVALID_ARGUMENT,
                          "headers is NULL but nheaders is %zu", n);
    }
    for (size_t i = 0; i < n; i++) {
        rc = conn_check_header(c, headers[i].name, headers[i].value);
        if (rc == 0)
            rc = conn_append_header(c, arr, headers[i].name, headers[i].value);
        if (rc < 0) {
            json_decref(arr);
            return rc;
        }
    }
    *out = arr;
    return 0;
}

/*
 * The framing fields among [[name, value]...] hdrs, checked against the
 * daemon's rules (PROTOCOL.md 3.1: hconnd alone frames request bodies): a
 * Transfer-Encoding may only be "chunked", meaning "send this body
 * chunked" (hconnd chunk-encodes the raw bytes), and excludes
 * Content-Length, which must be a byte count. Sets *te and *length (-1:
 * none). Returns 0 or HCONN_EINVALID_HEADER.
 */
static int
conn_framing_fields(struct hconn *c, json_t *hdrs, bool *te, int64_t *length)
{
    size_t i;
    json_t *pair;

    *te = false;
    *length = -1;
    json_array_foreach(hdrs, i, pair)
    {
        const char *name = json_string_value(json_array_get(pair, 0));
        const char *value = json_string_value(json_array_get(pair, 1));

        if (strcasecmp(name, "Transfer-Encoding") == 0) {
            if (strcasecmp(value, "chunked") != 0)
                return conn_error(c, HCONN_EINVALID_HEADER,
                                  "Transfer-Encoding \"%s\": only \"chunked\" "
                                  "may be asked for (hconnd frames the body)",
                                  value);
            *te = true;
        } else if (strcasecmp(name, "Content-Length") == 0) {
            char *end;
            long long v;

            errno = 0;
            v = strtoll(value, &end, 10);
            if (!*value || *end || errno || v < 0 || value[0] == '-' ||
                value[0] == '+' || (*length >= 0 && *length != v))
                return conn_error(c, HCONN_EINVALID_HEADER,
                                  "invalid Content-Length \"%s\"", value);
            *length = v;
        }
    }
    if (*te && *length >= 0)
        return conn_error(c, HCONN_EINVALID_HEADER,
                          "both Content-Length and Transfer-Encoding given");
    return 0;
}

/* Checks a Content-Length among hdrs against an inline body of len bytes
 * (none: 0). Returns 0 or HCONN_EINVALID_HEADER. */
static int
conn_check_inline_framing(struct hconn *c, json_t *hdrs, size_t len)
{
    bool te;
    int64_t length;
    int rc = conn_framing_fields(c, hdrs, &te, &length);

    if (rc == 0 && length >= 0 && (uint64_t)length != len)
        return conn_error(c, HCONN_EINVALID_HEADER,
                          "Content-Length %" PRId64 " but the body has %zu "
                          "bytes",
                          length, len);
    return rc;
}

/* ---- The request queue ------------------------------------------------- */

/* Makes room for one more queued request. Returns 0 or HCONN_ENO_MEMORY. */
static int
conn_pending_reserve(struct hconn *c)
{
    size_t cap;
    struct pending *p;

    if (c->pend_first + c->pend_count < c->pend_cap)
        return 0;
    if (c->pend_first > 0) {
        memmove(c->pend, c->pend + c->pend_first,
                c->pend_count * sizeof(*c->pend));
        c->pend_first = 0;
        return 0;
    }
    cap = c->pend_cap ? c->pend_cap * 2 : 8;
    p = realloc(c->pend, cap * sizeof(*p));
    if (!p)
        return conn_error(c, HCONN_ENO_MEMORY, "out of memory");
    c->pend = p;
    c->pend_cap = cap;
    return 0;
}

/* Queues request id (room was reserved). */
static void
conn_pending_push(struct hconn *c, int64_t id, bool head)
{
    c->pend[c->pend_first + c->pend_count++] = (struct pending){
        .id = id,
        .head = head,
    };
}

/* Drops the oldest queued request. */
static void
conn_pending_pop(struct hconn *c)
{
    free(c->pend[c->pend_first].message);
    json_decref(c->pend[c->pend_first].early);
    c->pend_first++;
    if (--c->pend_count == 0)
        c->pend_first = 0;
}

struct pending *
conn_pending_find(struct hconn *c, int64_t id)
{
    for (size_t i = 0; i < c->pend_count; i++)
        if (c->pend[c->pend_first + i].id == id)
            return &c->pend[c->pend_first + i];
    return NULL;
}

/* ---- Building and sending requests ------------------------------------ */

/* Whether a [[name, value]...] array asks for 100-continue (curl's -H
 * 'Expect: 100-continue'): hconnd then holds the body back itself. */
static bool
conn_headers_expect(json_t *headers)
{
    size_t i;
    json_t *pair;

    json_array_foreach(headers, i, pair)
    {
        const char *name = json_string_value(json_array_get(pair, 0));
        const char *value = json_string_value(json_array_get(pair, 1));

        if (name && value && strcasecmp(name, "Expect") == 0 &&
            strcasecmp(value, "100-continue") == 0)
            return true;
    }
    return false;
}

/* The error for a sending call refused because output is queued. */
static int
conn_would_block(struct hconn *c)
{
    return conn_error(c, HCONN_EWOULD_BLOCK,
                      "%zu bytes are still queued for hconnd: wait for "
                      "POLLOUT and hconn_process() (non-blocking)",
                      transport_out_pending(c));
}

/* A request message without its body field; headers is stolen. */
static json_t *
conn_request_msg(struct hconn *c, int64_t id, const char *method,
                 const char *target, json_t *headers, bool skip_host,
                 bool skip_accept_encoding)
{
    json_t *m, *target_json = wire_string_from_bytes(target, strlen(target));
    json_t *tls =
        c->tls_options ? json_incref(c->tls_options) : json_boolean(c->tls);
    int bad = 0;

    /* "o" steals tls, target_json and headers, even when packing fails. */
    m = json_pack("{sI ss ss si so so so}", "id", (json_int_t)id, "method",
                  method, "host", c->tunnel ? c->tunnel_host : c->host, "port",
                  (int)(c->tunnel ? c->tunnel_port : c->port), "tls", tls,
                  "target", target_json, "headers", headers);
    if (!m)
        return NULL;
    if (skip_host)
        bad |= json_object_set_new(m, "skip_host", json_true());
    if (skip_accept_encoding)
        bad |= json_object_set_new(m, "skip_accept_encoding", json_true());
    if (c->timeout > 0)
        bad |= json_object_set_new(m, "timeout", json_real(c->timeout));
    else if (c->timeout < 0) /* HCONN_TIMEOUT_NONE */
        bad |= json_object_set_new(m, "read_timeout", json_integer(0));
    if (c->source_address)
        bad |= json_object_set(m, "source_address", c->source_address);
    if (c->http_version != HCONN_HTTP_AUTO)
        bad |= json_object_set_new(
            m, "http_version",
            json_string(c->http_version == HCONN_HTTP_2 ? "2" : "1.1"));
    if (c->tunnel)
        bad |= json_object_set_new(m, "proxy",
                                   json_pack("{ss si sO}", "host", c->host,
                                             "port", (int)c->port, "headers",
                                             c->tunnel_headers));
    if (bad) {
        json_decref(m);
        return NULL;
    }
    return m;
}

/* The error for starting a request while another one is being put. */
static int
conn_busy(struct hconn *c)
{
    if (c->state == CONN_REQ_STARTED)
        return conn_error(c, HCONN_ECANNOT_SEND_REQUEST,
                          "a putrequest is unfinished");
    return conn_error(c, HCONN_ECANNOT_SEND_REQUEST,
                      "the streamed body of request %" PRId64
                      " is unfinished (getresponse ends it)",
                      c->stream_id);
}

/* Connects if needed and makes room to queue one request. */
static int
conn_ready_to_send(struct hconn *c)
{
    int rc = hconn_connect(c);

    if (rc == 0)
        rc = conn_pending_reserve(c);
    return rc;
}

/* Sends request message m (stolen) with its inline body, if any, and
 * queues it. Returns 0 or a code. */
static int
conn_send_request(struct hconn *c, json_t *m, int64_t id, const char *method,
                  const void *body, size_t len)
{
    int rc;

    if (!m)
        return conn_error(c, HCONN_ENO_MEMORY, "out of memory");
    if (!transport_out_full(c))
        debug_request(c, m, body, body ? len : 0);
    rc = transport_send_msg(c, m, body, body ? len : 0);
    json_decref(m);
    if (rc < 0)
        return rc;
    conn_pending_push(c, id, strcmp(method, "HEAD") == 0);
    return 0;
}

/* What every request does first: checks the connection can take one now
 * and the request line and headers are sound; fills *hdrs (the caller's
 * to release) on success. */
static int
conn_prepare_request(hconn *c, const char *method, const char *url,
                     const struct hconn_header *headers, size_t nheaders,
                     json_t **hdrs)
{
    int rc;

    if (c->state != CONN_IDLE)
        return conn_busy(c);
    if (transport_out_full(c))
        return conn_would_block(c);
    rc = conn_check_request_line(c, method, url);
    if (rc == 0)
        rc = conn_headers_json(c, headers, nheaders, hdrs);
    if (rc < 0)
        return rc;
    rc = conn_ready_to_send(c);
    if (rc < 0)
        json_decref(*hdrs);
    return rc;
}

int
hconn_request(hconn *c, const char *method, const char *url, const void *body,
              size_t body_len, const struct hconn_header *headers,
              size_t nheaders)
{
    json_t *hdrs, *m;
    bool expect;
    int64_t id;
    int rc;

    url = conn_target(url);
    rc = conn_prepare_request(c, method, url, headers, nheaders, &hdrs);
    if (rc == 0 &&
        (rc = conn_check_inline_framing(c, hdrs, body ? body_len : 0)) < 0)
        json_decref(hdrs);
    if (rc < 0)
        return rc;
    id = c->next_id++;
    expect = body && conn_headers_expect(hdrs);
    m = conn_request_msg(c, id, method, url, hdrs, false, false);
    if (m && body &&
        json_object_set_new(m, "data", json_integer((json_int_t)body_len)) <
            0) {
        json_decref(m);
        m = NULL;
    }
    /* hconnd holds an inline body itself until the origin's 100. */
    if (m && expect &&
        json_object_set_new(m, "expect_continue", json_true()) < 0) {
        json_decref(m);
        m = NULL;
    }
    return conn_send_request(c, m, id, method, body, body_len);
}

/* Opens the streamed body of request id just sent. */
static void
conn_stream_open(struct hconn *c, int64_t id, int64_t length, bool expect)
{
    c->state = CONN_BODY_STREAM;
    c->stream_id = id;
    c->stream_length = length;
    c->stream_sent = 0;
    c->stream_expect = expect;
    c->stream_continued = false;
}

int
hconn_request_stream(hconn *c, const char *method, const char *url,
                     const struct hconn_header *headers, size_t nheaders,
                     int64_t length, unsigned flags)
{
    json_t *hdrs, *m;
    bool expect;
    int64_t id;
    int rc;

    if (flags & ~(unsigned)HCONN_EXPECT_CONTINUE)
        return conn_error(c, HCONN_EINVALID_ARGUMENT, "unknown flags 0x%x",
                          flags & ~(unsigned)HCONN_EXPECT_CONTINUE);
    for (size_t i = 0; headers && i < nheaders; i++)
        if (headers[i].name &&
            (strcasecmp(headers[i].name, "Content-Length") == 0 ||
             strcasecmp(headers[i].name, "Transfer-Encoding") == 0))
            return conn_error(c, HCONN_EINVALID_ARGUMENT,
                              "header %s given to hconn_request_stream: the "
                              "length argument decides the framing",
                              headers[i].name);
    url = conn_target(url);
    rc = conn_prepare_request(c, method, url, headers, nheaders, &hdrs);
    if (rc < 0)
        return rc;
    id = c->next_id++;
    expect = (flags & HCONN_EXPECT_CONTINUE) || conn_headers_expect(hdrs);
    m = conn_request_msg(c, id, method, url, hdrs, false, false);
    if (m && (json_object_set_new(m, "body", json_string("stream")) < 0 ||
              (length >= 0 &&
               json_object_set_new(m, "length", json_integer(length)) < 0) ||
              (expect &&
               json_object_set_new(m, "expect_continue", json_true()) < 0))) {
        json_decref(m);
        m = NULL;
    }
    rc = conn_send_request(c, m, id, method, NULL, 0);
    if (rc < 0)
        return rc;
    conn_stream_open(c, id, length < 0 ? -1 : length, expect);
    if (length == 0)
        return hconn_end_body(c);
    return 0;
}

int
hconn_putrequest(hconn *c, const char *method, const char *url, bool skip_host,
                 bool skip_accept_encoding)
{
    int rc;

    if (c->state != CONN_IDLE)
        return conn_busy(c);
    url = conn_target(url);
    rc = conn_check_request_line(c, method, url);
    if (rc < 0)
        return rc;
    c->put_method = strdup(method);
    c->put_target = strdup(url);
    c->put_headers = json_array();
    if (!c->put_method || !c->put_target || !c->put_headers) {
        free(c->put_method);
        free(c->put_target);
        json_decref(c->put_headers);
        c->put_method = c->put_target = NULL;
        c->put_headers = NULL;
        return conn_error(c, HCONN_ENO_MEMORY, "out of memory");
    }
    c->put_skip_host = skip_host;
    c->put_skip_accept_encoding = skip_accept_encoding;
    c->state = CONN_REQ_STARTED;
    return 0;
}

int
hconn_putheader(hconn *c, const char *name, const char *value)
{
    int rc;

    if (c->state != CONN_REQ_STARTED)
        return conn_error(c, HCONN_ECANNOT_SEND_REQUEST,
                          "putheader without putrequest");
    rc = conn_check_header(c, name, value);
    if (rc == 0)
        rc = conn_append_header(c, c->put_headers, name, value);
    return rc;
}

int
hconn_putheaderv(hconn *c, const char *name, const char *const *values,
                 size_t nvalues)
{
    size_t len = 0;
    char *joined, *p;
    int rc;

    if (nvalues && !values)
        return conn_error(c, HCONN_EINVALID_ARGUMENT,
                          "values is NULL but nvalues is %zu", nvalues);
    for (size_t i = 0; i < nvalues; i++) {
        if (!values[i])
            return conn_error(c, HCONN_EINVALID_HEADER,
                              "value %zu of header %s is NULL", i,
                              name ? name : "");
        len += strlen(values[i]) + 2;
    }
    joined = p = malloc(len + 1);
    if (!joined)
        return conn_error(c, HCONN_ENO_MEMORY, "out of memory");
    *p = '\0';
    /* http.client folds the values onto continuation lines ("\r\n\t"),
     * which RFC 9112 deprecates: one line, joined with ", ", means the
     * same for a list-valued field. */
    for (size_t i = 0; i < nvalues; i++)
        p += sprintf(p, "%s%s", i ? ", " : "", values[i]);
    rc = hconn_putheader(c, name, joined);
    free(joined);
    return rc;
}

/* Forgets putrequest's state. */
static void
conn_put_clear(struct hconn *c)
{
    free(c->put_method);
    free(c->put_target);
    json_decref(c->put_headers);
    c->put_method = c->put_target = NULL;
    c->put_headers = NULL;
}

/* How the body of the request being put is framed: sets *stream and
 * *length (-1 unknown) from Content-Length / Transfer-Encoding. */
static int
conn_put_framing(struct hconn *c, bool *stream, int64_t *length)
{
    bool te;
    int rc = conn_framing_fields(c, c->put_headers, &te, length);

    *stream = rc == 0 && (te || *length > 0);
    return rc;
}

int
hconn_endheaders(hconn *c, const void *body, size_t len)
{
    bool stream = false, expect;
    int64_t length = -1, id;
    json_t *m;
    int rc;

    if (c->state != CONN_REQ_STARTED)
        return conn_error(c, HCONN_ECANNOT_SEND_REQUEST,
                          "endheaders without putrequest");
    if (transport_out_full(c))
        return conn_would_block(c); /* the put request stays as it is */
    if (!body)
        rc = conn_put_framing(c, &stream, &length);
    else
        rc = conn_check_inline_framing(c, c->put_headers, len);
    if (rc == 0)
        rc = conn_ready_to_send(c);
    if (rc < 0) {
        conn_put_clear(c);
        c->state = CONN_IDLE;
        return rc;
    }
    id = c->next_id++;
    expect = (body || stream) && conn_headers_expect(c->put_headers);
    m = conn_request_msg(c, id, c->put_method, c->put_target,
                         json_incref(c->put_headers), c->put_skip_host,
                         c->put_skip_accept_encoding);
    if (m && body &&
        json_object_set_new(m, "data", json_integer((json_int_t)len)) < 0) {
        json_decref(m);
        m = NULL;
    }
    /* With a Content-Length, "length" tells hconnd not to chunk. */
    if (m && stream &&
        (json_object_set_new(m, "body", json_string("stream")) < 0 ||
         (length >= 0 &&
          json_object_set_new(m, "length", json_integer(length)) < 0))) {
        json_decref(m);
        m = NULL;
    }
    if (m && expect &&
        json_object_set_new(m, "expect_continue", json_true()) < 0) {
        json_decref(m);
        m = NULL;
    }
    c->state = CONN_IDLE;
    rc = conn_send_request(c, m, id, c->put_method, body, len);
    conn_put_clear(c);
    if (rc == 0 && stream)
        conn_stream_open(c, id, length, expect);
    return rc;
}

/* Sends the end frame of the streamed body; never would_block. Returns 0
 * or a code. */
static int
conn_end_stream(struct hconn *c)
{
    json_t *id = json_integer(c->stream_id);
    json_t *m = id ? wire_end_frame(id, NULL) : NULL;
    int rc;

    json_decref(id);
    if (!m)
        return conn_error(c, HCONN_ENO_MEMORY, "out of memory");
    /* Queued even over the high-water mark: a line of a few bytes, and
     * the body it ends was already taken. */
    rc = transport_send_control(c, m);
    json_decref(m);
    c->state = CONN_IDLE;
    return rc;
}

int
hconn_end_body(hconn *c)
{
    if (c->state != CONN_BODY_STREAM)
        return conn_error(c, HCONN_ECANNOT_SEND_REQUEST,
                          "no streamed request body is open");
    return conn_end_stream(c);
}

/* The error for sending on a body whose request was answered or failed
 * before the body was complete. */
static int
conn_body_stopped(struct hconn *c)
{
    if (c->refused_status == 0)
        return conn_error(c, HCONN_ECANNOT_SEND_REQUEST,
                          "request %" PRId64 " failed (%s) before its body "
                          "was sent whole: the rest of the body is not sent; "
                          "hconn_getresponse() reports the error",
                          c->refused_id, hconn_error_name(c->refused_error));
    return conn_error(c, HCONN_ECANNOT_SEND_REQUEST,
                      "the server answered request %" PRId64 " with status "
                      "%d before its body was sent whole: the rest of the "
                      "body is not sent",
                      c->refused_id, c->refused_status);
}

/* PROTOCOL.md 3.4: a body stops as soon as its request has an answer.
 * Takes in what hconnd sent meanwhile; when that holds the final
 * response or the error of the streaming request, ends the body with its
 * end frame (a stream stays open under its id until then, whatever
 * became of its request) and returns HCONN_ECANNOT_SEND_REQUEST. Returns
 * 0 to go on. */
static int
conn_check_answered(struct hconn *c)
{
    int status = 0, error = 0, rc;

    rc = transport_read_ready(c, SIZE_MAX);
    if (rc < 0)
        return rc;
    if (!transport_scan_answer(c, c->stream_id, &status, &error))
        return 0;
    c->refused_id = c->stream_id;
    c->refused_status = status;
    c->refused_error = error;
    if ((rc = conn_end_stream(c)) < 0)
        return rc;
    c->state = CONN_IDLE;
    return conn_body_stopped(c);
}

int
hconn_send(hconn *c, const void *data, size_t len)
{
    size_t off = 0;
    int rc;

    if (c->state != CONN_BODY_STREAM && c->refused_id != 0 &&
        c->refused_id == c->next_id - 1)
        return conn_body_stopped(c);
    if (c->state != CONN_BODY_STREAM)
        return conn_error(c, HCONN_ECANNOT_SEND_REQUEST,
                          "no streamed request body is open");
    if (transport_out_full(c))
        return conn_would_block(c);
    if (c->stream_length >= 0 &&
        len > (uint64_t)c->stream_length - c->stream_sent)
        return conn_error(c, HCONN_EBODY_LENGTH,
                          "sending %zu more bytes would exceed "
                          "Content-Length %" PRId64 " (%" PRIu64 " sent)",
                          len, c->stream_length, c->stream_sent);
    if (len == 0)
        return 0;
    if (!data)
        return conn_error(c, HCONN_EINVALID_ARGUMENT, "data is NULL");
    if ((rc = conn_check_answered(c)) < 0)
        return rc;
    /* One data frame per blocksize bytes; the call is taken whole. */
    while (off < len) {
        size_t n = len - off < c->blocksize ? len - off : c->blocksize;
        json_t *id = json_integer(c->stream_id);
        json_t *m = id ? wire_data_frame(id, n) : NULL;

        json_decref(id);
        if (!m)
            return conn_error(c, HCONN_ENO_MEMORY, "out of memory");
        debug_body(c, (const char *)data + off, n);
        rc = off == 0 ? transport_send_msg(c, m, (const char *)data, n)
                      : transport_send_more(c, m, (const char *)data + off, n);
        json_decref(m);
        if (rc < 0)
            return rc;
        off += n;
        c->stream_sent += n;
    }
    if (c->stream_length >= 0 && c->stream_sent == (uint64_t)c->stream_length)
        return conn_end_stream(c);
    return 0;
}

/* Waits until fd has bytes to read (blocking mode, fd non-blocking).
 * Returns 0 or -errno. */
static int
conn_wait_fd(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};

    while (poll(&pfd, 1, -1) < 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

int64_t
hconn_send_fd(hconn *c, int fd, int64_t len)
{
    const size_t piece = c->blocksize;
    char *buf;
    int64_t sent = 0;
    int rc = 0;

    if (c->state != CONN_BODY_STREAM)
        return hconn_send(c, NULL, 0); /* the state error, with detail */
    if (fd < 0)
        return conn_error(c, HCONN_EINVALID_ARGUMENT,
                          "invalid file descriptor %d", fd);
    if (c->stream_length >= 0 &&
        (len < 0 || len > c->stream_length - (int64_t)c->stream_sent))
        len = c->stream_length - (int64_t)c->stream_sent;
    buf = malloc(piece);
    if (!buf)
        return conn_error(c, HCONN_ENO_MEMORY, "out of memory");
    while (len < 0 || sent < len) {
        size_t want = len >= 0 && (uint64_t)(len - sent) < piece
                          ? (size_t)(len - sent)
                          : piece;
        ssize_t n;

        /* Nothing is read from fd that could not be queued at once. */
        if (transport_out_full(c)) {
            rc = conn_would_block(c);
            break;
        }
        n = read(fd, buf, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (c->nonblocking) {
                rc = conn_error(c, HCONN_EWOULD_BLOCK,
                                "file descriptor %d has no data yet", fd);
                break;
            }
            if ((rc = conn_wait_fd(fd)) == 0)
                continue;
            errno = -rc;
            n = -1;
        }
        if (n < 0) {
            rc = conn_error(c, HCONN_EIO_ERROR,
                            "reading the body from file descriptor %d: %s", fd,
                            strerror(errno));
            break;
        }
        if (n == 0) {
            if (len >= 0)
                rc = conn_error(c, HCONN_EBODY_LENGTH,
                                "file descriptor %d ended after %" PRId64
                                " of %" PRId64 " body bytes",
                                fd, sent, len);
            break;
        }
        rc = hconn_send(c, buf, (size_t)n);
        if (rc < 0)
            break;
        sent += n;
    }
    free(buf);
    if (rc == HCONN_EWOULD_BLOCK && sent > 0)
        return sent;
    return rc < 0 ? rc : sent;
}

/* ---- Responses --------------------------------------------------------- */

/* One step of discarding the rest of a closed response's body. Returns 0
 * or a code (the stream then broke). */
static int
conn_drain_step(struct hconn *c)
{
    struct wire_reply rep;
    json_t *msg;
    const char *p;
    int rc;

    if (c->payload_left > 0) {
        size_t n = transport_payload_avail(c, &p);

        if (n > 0) {
            transport_payload_consume(c, n);
            return 0;
        }
        return transport_fill(c);
    }
    rc = transport_next_reply(c, &msg, &rep);
    if (rc < 0)
        return rc;
    if (!conn_id_matches(&rep, c->body_id) || rep.kind == WIRE_REPLY_HEAD ||
        rep.kind == WIRE_REPLY_OP) {
        json_decref(msg);
        conn_error(c, HCONN_EBAD_MESSAGE,
                   "unexpected reply from hconnd inside the body of "
                   "request %" PRId64,
                   c->body_id);
        return conn_broken(c, HCONN_EBAD_MESSAGE);
    }
    if (rep.kind == WIRE_REPLY_END || rep.kind == WIRE_REPLY_ERROR)
        c->in_body = false;
    json_decref(msg);
    return 0;
}

/* Keeps the proxy's answer to CONNECT (validated pairs) for
 * hconn_get_proxy_response_headers; on ENOMEM the old one is dropped. */
static void
conn_keep_proxy_headers(struct hconn *c, json_t *pairs)
{
    free(c->proxy_headers);
    if (conn_copy_headers(pairs, &c->proxy_headers, &c->nproxy_headers) < 0)
        c->nproxy_headers = 0;
}

size_t
hconn_get_proxy_response_headers(const hconn *c,
                                 const struct hconn_header **headers)
{
    *headers = c->proxy_headers;
    return c->nproxy_headers;
}

/* Returns the oldest queued request's failure and drops it. */
static int
conn_pending_failed(struct hconn *c)
{
    struct pending *p = &c->pend[c->pend_first];
    int code = p->error;

    snprintf(c->errmsg, sizeof(c->errmsg), "%s",
             p->message ? p->message : hconn_strerror(code));
    conn_pending_pop(c);
    return code;
}

/*
 * One step towards the reply to p, the request at the head of the queue:
 * drains an abandoned body, or takes the next reply and checks it is p's
 * head, error or continue. Returns 0 with msg and rep set; 1 when the
 * caller should look at p again (a step was made, or p or the connection
 * failed); HCONN_EWOULD_BLOCK when non-blocking and nothing is ready.
 * what names the wait in the error ("continue of", "response to").
 */
static int
conn_next_reply(hconn *c, struct pending *p, const char *what, json_t **msg,
                struct wire_reply *rep)
{
    int rc;

    if (c->in_body) {
        rc = conn_drain_step(c);
        return rc == HCONN_EWOULD_BLOCK ? rc : 1;
    }
    rc = transport_next_reply(c, msg, rep);
    if (rc < 0)
        return rc == HCONN_EWOULD_BLOCK ? rc : 1;
    if (conn_stray_error(rep, p->id)) {
        json_decref(*msg);
        return 1;
    }
    if (!conn_id_matches(rep, p->id) ||
        (rep->kind != WIRE_REPLY_HEAD && rep->kind != WIRE_REPLY_ERROR &&
         rep->kind != WIRE_REPLY_CONTINUE)) {
        json_decref(*msg);
        conn_error(c, HCONN_EBAD_MESSAGE,
                   "unexpected reply from hconnd while waiting for the %s "
                   "request %" PRId64,
                   what, p->id);
        conn_broken(c, HCONN_EBAD_MESSAGE);
        return 1;
    }
    return 0;
}

int
hconn_wait_continue(hconn *c, bool *send_body)
{
    struct pending *p;

    if (!send_body)
        return conn_error(c, HCONN_EINVALID_ARGUMENT, "send_body is NULL");
    *send_body = false;
    if (c->refused_id != 0 && c->refused_id == c->next_id - 1 &&
        c->state != CONN_BODY_STREAM)
        return 0; /* asked again after a refusal */
    if (c->state != CONN_BODY_STREAM)
        return conn_error(c, HCONN_ECANNOT_SEND_REQUEST,
                          "no streamed request body is open");
    if (!c->stream_expect || c->stream_continued) {
        *send_body = true;
        return 0;
    }
    p = c->pend_count > 0 ? &c->pend[c->pend_first] : NULL;
    if (!p || p->id != c->stream_id || c->body_owner)
        return conn_error(c, HCONN_ERESPONSE_NOT_READY,
                          "earlier responses must be read before waiting "
                          "for the continue of request %" PRId64,
                          c->stream_id);
    for (;;) {
        struct wire_reply rep;
        json_t *msg;
        int rc;

        if (!p->error && c->fd < 0)
            pending_fail(p, HCONN_ECONNECTION_CLOSED,
                         "not connected to hconnd");
        if (p->error) {
            c->state = CONN_IDLE;
            snprintf(c->errmsg, sizeof(c->errmsg), "%s",
                     p->message ? p->message : hconn_strerror(p->error));
            return p->error; /* getresponse reports it again */
        }
        rc = conn_next_reply(c, p, "continue of", &msg, &rep);
        if (rc == HCONN_EWOULD_BLOCK)
            return rc;
        if (rc != 0)
            continue;
        if (rep.kind == WIRE_REPLY_CONTINUE) {
            json_decref(msg);
            c->stream_continued = true;
            *send_body = true;
            return 0;
        }
        if (rep.kind == WIRE_REPLY_ERROR) {
            pending_fail(p, conn_reply_error(c, &rep), c->errmsg);
            json_decref(msg);
            continue;
        }
        /* A final answer first: the body never goes (PROTOCOL.md 5.4);
         * getresponse() hands this head out. */
        p->early = msg;
        c->refused_id = p->id;
        c->refused_status = rep.status;
        return conn_end_stream(c);
    }
}

int
hconn_getresponse(hconn *c, hconn_response **respp)
{
    struct pending *p;

    if (!respp)
        return conn_error(c, HCONN_EINVALID_ARGUMENT, "respp is NULL");
    *respp = NULL;
    if (c->state == CONN_REQ_STARTED)
        return conn_error(c, HCONN_ERESPONSE_NOT_READY,
                          "putrequest without endheaders");
    if (c->state == CONN_BODY_STREAM)
        conn_end_stream(c); /* a failure fails the queue: reported below */
    if (c->pend_count == 0)
        return conn_error(c, HCONN_ERESPONSE_NOT_READY,
                          "no request is awaiting a response");
    if (c->body_owner)
        return conn_error(c, HCONN_ERESPONSE_NOT_READY,
                          "the previous response's body has not been read "
                          "to its end or closed");
    p = &c->pend[c->pend_first];
    for (;;) {
        struct wire_reply rep;
        json_t *msg;
        int rc;

        if (!p->error && c->fd < 0)
            pending_fail(p, HCONN_ECONNECTION_CLOSED,
                         "not connected to hconnd");
        if (p->error)
            return conn_pending_failed(c);
        if (p->early) {
            char err[256];

            msg = p->early;
            p->early = NULL;
            if (wire_parse_reply(msg, &rep, err, sizeof(err)) < 0) {
                json_decref(msg); /* it parsed when it was taken */
                pending_fail(p, HCONN_EBAD_MESSAGE, err);
                continue;
            }
            goto head;
        }
        rc = conn_next_reply(c, p, "response to", &msg, &rep);
        if (rc == HCONN_EWOULD_BLOCK)
            return rc;
        if (rc != 0)
            continue;
        if (rep.kind == WIRE_REPLY_CONTINUE) {
            /* Nobody waited for it: the body was sent (or held) anyway. */
            json_decref(msg);
            continue;
        }
    head:
        if (rep.proxy_headers != NULL)
            conn_keep_proxy_headers(c, rep.proxy_headers);
        if (rep.kind == WIRE_REPLY_ERROR) {
            rc = conn_reply_error(c, &rep);
            json_decref(msg);
            conn_pending_pop(c);
            return rc;
        }
        rc = response_new(c, p, &rep, respp);
        json_decref(msg);
        conn_pending_pop(c);
        return rc;
    }
}

/* ---- The connection object -------------------------------------------- */

/* A JSON string for the option name's value. Returns 0 or a code. */
static int
conn_tls_string(struct hconn *c, const char *name, const char *value,
                size_t max, json_t **out)
{
    size_t len = strlen(value);
    json_t *probe;

    *out = NULL;
    if (len == 0 || len > max)
        return conn_error(c, HCONN_EINVALID_ARGUMENT,
                          "TLS option %s must be 1 to %zu bytes (got %zu)",
                          name, max, len);
    *out = json_string(value);
    if (*out)
        return 0;
    /* json_string refuses invalid UTF-8, and fails when out of memory. */
    probe = json_string_nocheck(value);
    if (!probe)
        return conn_error(c, HCONN_ENO_MEMORY, "out of memory");
    json_decref(probe);
    return conn_error(c, HCONN_EINVALID_ARGUMENT,
                      "TLS option %s is not valid UTF-8, which the protocol "
                      "cannot carry",
                      name);
}

/* Replaces *v, the path of TLS file field name, with the file's PEM
 * contents under the matching *_pem name ("ca_path": the directory's
 * hashed certificates). */
static int
conn_tls_file(struct hconn *c, const char *name, const char *path, json_t **v)
{
    bool ca = name[0] == 'c' && name[1] == 'a';
    size_t max = ca                               ? WIRE_MAX_CA_PEM
                 : strcmp(name, "cert_file") == 0 ? WIRE_MAX_CERT_PEM
                                                  : WIRE_MAX_KEY_PEM;
    char err[HCONN_ERRMSG_MAX - 64], *pem;
    int rc;

    json_decref(*v);
    *v = NULL;
    rc = hconn_pem_read(path, strcmp(name, "ca_path") == 0, max, &pem, err,
                        sizeof err);
    if (rc < 0)
        return conn_error(c, rc, "TLS option %s: %s", name, err);
    *v = json_string(pem);
    free(pem);
    if (*v == NULL)
        return conn_error(c, HCONN_EINVALID_ARGUMENT,
                          "TLS option %s: %s is not UTF-8 PEM", name, path);
    return 0;
}

/* Checks opts' TLS fields and builds the "tls" object requests carry from
 * those set (c->tls_options stays NULL when none is). Returns 0 or a
 * code. */
static int
conn_tls_options(struct hconn *c, const struct hconn_options *opts)
{
    const struct {
        const char *name;
        const char *value;
        size_t max;
    } fields[] = {
        {"ca_file", opts->ca_file, HCONN_MAX_PATH},
        {"ca_path", opts->ca_path, HCONN_MAX_PATH},
        {"cert_file", opts->cert_file, HCONN_MAX_PATH},
        {"key_file", opts->key_file, HCONN_MAX_PATH},
        {"server_name", opts->server_name, URL_HOST_MAX},
        {"min_version", opts->min_version, 3},
    };
    const size_t nfields = sizeof(fields) / sizeof(fields[0]);
    const char *first = opts->insecure            ? "insecure"
                        : opts->no_check_hostname ? "no_check_hostname"
                                                  : NULL;
    char err[256];
    json_t *obj, *v;
    int rc;

    for (size_t i = 0; i < nfields && !first; i++)
        if (fields[i].value)
            first = fields[i].name;
    if (!first)
        return 0;
    if (!opts->tls)
        return conn_error(c, HCONN_EINVALID_ARGUMENT,
                          "TLS option %s given without tls (an https "
                          "connection)",
                          first);
    if (opts->insecure && (opts->ca_file || opts->ca_path))
        return conn_error(c, HCONN_EINVALID_ARGUMENT,
                          "insecure and a CA are contradictory (%s given): "
                          "insecure turns verification off",
                          opts->ca_file ? "ca_file" : "ca_path");
    if (opts->insecure && opts->no_check_hostname)
        return conn_error(c, HCONN_EINVALID_ARGUMENT,
                          "insecure and no_check_hostname together: insecure "
                          "already skips the name check");
    if (opts->key_file && !opts->cert_file)
        return conn_error(c, HCONN_EINVALID_ARGUMENT,
                          "TLS option key_file needs cert_file");
    if (opts->server_name &&
        url_check_host(opts->server_name, err, sizeof(err)) < 0)
        return conn_error(c, HCONN_EINVALID_ARGUMENT,
                          "TLS option server_name: %s", err);
    if (opts->min_version && strcmp(opts->min_version, "1.2") != 0 &&
        strcmp(opts->min_version, "1.3") != 0)
        return conn_error(c, HCONN_EINVALID_ARGUMENT,
                          "TLS option min_version must be \"1.2\" or "
                          "\"1.3\"");
    obj = json_object();
    if (!obj)
        return conn_error(c, HCONN_ENO_MEMORY, "out of memory");
    for (size_t i = 0; i < nfields; i++) {
        if (!fields[i].value)
            continue;
        rc = conn_tls_string(c, fields[i].name, fields[i].value, fields[i].max,
                             &v);
        if (rc == 0 && i < 4) {
            /* Files are read here, with the caller's rights and in its
             * mount namespace, and sent as PEM (PROTOCOL.md 3.3). */
            rc = conn_tls_file(c, fields[i].name, fields[i].value, &v);
        }
        if (rc == 0 && i == 1 && json_object_get(obj, "ca_pem") != NULL) {
            /* ca_file and ca_path both: trust anchors from each. */
            json_t *both = json_sprintf(
                "%s%s", json_string_value(json_object_get(obj, "ca_pem")),
                json_string_value(v));

            json_decref(v);
            v = both;
            if (v == NULL)
                rc = conn_error(c, HCONN_ENO_MEMORY, "out of memory");
        }
        if (rc == 0 && json_object_set_new(obj,
                                           i == 0 || i == 1 ? "ca_pem"
                                           : i == 2         ? "cert_pem"
                                           : i == 3         ? "key_pem"
                                                            : fields[i].name,
                                           v) < 0)
            rc = conn_error(c, HCONN_ENO_MEMORY, "out of memory");
        if (rc < 0) {
            json_decref(obj);
            return rc;
        }
    }
    if ((opts->insecure &&
         json_object_set_new(obj, "insecure", json_true()) < 0) ||
        (opts->no_check_hostname &&
         json_object_set_new(obj, "check_hostname", json_false()) < 0)) {
        json_decref(obj);
        return conn_error(c, HCONN_ENO_MEMORY, "out of memory");
    }
    c->tls_options = obj;
    return 0;
}

/* The daemon socket to use: opts, $HCONN_SOCKET, a user daemon's socket in
 * $XDG_RUNTIME_DIR if it exists, else the system one. malloc'd. */
static char *
conn_socket_path(const struct hconn_options *opts)
{
    const char *env = getenv("HCONN_SOCKET");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    struct stat st;
    char *path;

    if (opts && opts->socket_path)
        return strdup(opts->socket_path);
    if (env && *env)
        return strdup(env);
    if (xdg && *xdg && asprintf(&path, "%s/hconnd.sock", xdg) >= 0) {
        if (stat(path, &st) == 0)
            return path;
        free(path);
    }
    return strdup(HCONN_DEFAULT_SOCKET);
}

/* Checks opts' source_address and source_port and keeps them as the
 * request field; ("", 0) is no source at all, as in http.client. */
static int
conn_source_address(struct hconn *c, const struct hconn_options *opts)
{
    const char *addr = opts->source_address ? opts->source_address : "";
    unsigned char raw[16];

    if (*addr && inet_pton(AF_INET, addr, raw) != 1 &&
        inet_pton(AF_INET6, addr, raw) != 1)
        return conn_error(c, HCONN_EINVALID_ARGUMENT,
                          "source_address \"%.64s\" is not an IPv4 or IPv6 "
                          "address (no brackets, no names)",
                          addr);
    if (opts->source_port < 0 || opts->source_port > 65535)
        return conn_error(c, HCONN_EINVALID_ARGUMENT,
                          "source_port %d is not a port from 0 to 65535",
                          opts->source_port);
    if (!*addr && opts->source_port == 0)
        return 0;
    c->source_address = json_pack("[si]", addr, opts->source_port);
    if (!c->source_address)
        return conn_error(c, HCONN_ENO_MEMORY, "out of memory");
    return 0;
}

int
hconn_new(hconn **connp, const char *host, int port,
          const struct hconn_options *opts)
{
    struct hconn *c;
    char err[256];
    int rc;

    if (!connp)
        return HCONN_EINVALID_ARGUMENT;
    *connp = c = calloc(1, sizeof(*c));
    if (!c)
        return HCONN_ENO_MEMORY;
    c->fd = -1;
    c->next_id = 1;
    c->state = CONN_IDLE;
    wire_reader_init(&c->reader, WIRE_MAX_LINE);
    c->tls = opts && opts->tls;
    c->socket_path = conn_socket_path(opts);
    if (!c->socket_path)
        return conn_error(c, HCONN_ENO_MEMORY, "out of memory");
    if (opts && opts->timeout != HCONN_TIMEOUT_NONE &&
        !(opts->timeout >= 0 && opts->timeout <= HCONN_MAX_TIMEOUT))
        return conn_error(c, HCONN_EINVALID_ARGUMENT,
                          "invalid timeout %g: seconds from 0 to %g, or "
                          "HCONN_TIMEOUT_NONE",
                          opts->timeout, HCONN_MAX_TIMEOUT);
    c->timeout = opts ? opts->timeout : 0;
    c->blocksize = opts && opts->blocksize ? opts->blocksize : HCONN_CHUNK;
    if (c->blocksize > HCONN_MAX_BLOCKSIZE)
        return conn_error(c, HCONN_EINVALID_ARGUMENT,
                          "invalid blocksize %zu: at most %d bytes",
                          c->blocksize, HCONN_MAX_BLOCKSIZE);
    if (opts && (rc = conn_tls_options(c, opts)) < 0)
        return rc;
    if (opts && (rc = conn_source_address(c, opts)) < 0)
        return rc;
    if (!host)
        return conn_error(c, HCONN_EINVALID_URL, "no host given");
    rc = url_parse_authority(host, port, c->tls ? 443 : 80, c->host, &c->port,
                             err, sizeof(err));
    if (rc < 0)
        return conn_error(c, rc, "%s", err);
    return 0;
}

int
hconn_set_tunnel(hconn *c, const char *host, int port,
                 const struct hconn_header *headers, size_t nheaders)
{
    char err[256];
    json_t *hdrs;
    int rc;

    if (!host)
        return conn_error(c, HCONN_EINVALID_URL, "no tunnel host given");
    rc = conn_headers_json(c, headers, nheaders, &hdrs);
    if (rc < 0)
        return rc;
    rc = url_parse_authority(host, port, c->tls ? 443 : 80, c->tunnel_host,
                             &c->tunnel_port, err, sizeof(err));
    if (rc < 0) {
        json_decref(hdrs);
        c->tunnel = false;
        return conn_error(c, rc, "%s", err);
    }
    json_decref(c->tunnel_headers);
    c->tunnel_headers = hdrs;
    c->tunnel = true;
    return 0;
}

int
hconn_connect(hconn *c)
{
    if (c->fd >= 0)
        return 0;
    return transport_connect(c);
}

int
hconn_fileno(const hconn *c)
{
    return c ? c->fd : -1;
}

int
hconn_set_blocking(hconn *c, bool blocking)
{
    int rc = 0;

    if (blocking && c->nonblocking) {
        c->nonblocking = false;
        rc = transport_flush_all(c);
    }
    c->nonblocking = !blocking;
    return rc < 0 ? rc : hconn_connect(c);
}

/* Whether a request is outstanding or a body is being read. */
static bool
conn_awaiting(const struct hconn *c)
{
    return c->pend_count > 0 || c->in_body;
}

short
hconn_events(const hconn *c)
{
    short ev = 0;

    if (!c || c->fd < 0)
        return 0;
    if (transport_out_pending(c) > 0)
        ev |= POLLOUT | POLLIN; /* replies are taken in while writing */
    else if (conn_awaiting(c) && !c->eof && c->rlen - c->rpos < HCONN_RBUF_SOFT)
        ev |= POLLIN;
    return ev;
}

int
hconn_process(hconn *c)
{
    int rc;

    if (c->fd < 0)
        return conn_error(c, HCONN_ENOT_CONNECTED, "not connected to hconnd");
    rc = transport_flush(c);
    if (rc == 0 && !c->eof)
        rc = transport_read_ready(
            c, transport_out_pending(c) > 0 ? SIZE_MAX : HCONN_RBUF_SOFT);
    return rc;
}

void
hconn_set_debuglevel(hconn *c, int level)
{
    c->debuglevel = level;
}

/* Sets the "http_version" later requests carry (see hconn.h). */
int
hconn_set_http_version(hconn *c, int version)
{
    if (version != HCONN_HTTP_AUTO && version != HCONN_HTTP_1_1 &&
        version != HCONN_HTTP_2)
        return conn_error(c, HCONN_EINVALID_ARGUMENT,
                          "invalid HTTP version %d: HCONN_HTTP_AUTO (0), "
                          "HCONN_HTTP_1_1 (11) or HCONN_HTTP_2 (20)",
                          version);
    c->http_version = version;
    return 0;
}

const char *
hconn_errmsg(const hconn *c)
{
    return c ? c->errmsg : "";
}

void
hconn_close(hconn *c)
{
    if (!c)
        return;
    transport_close(c);
    /* As HTTPConnection.close() closes its response: nothing more of a
     * body is read, and the object stays valid until freed. */
    for (struct hconn_response *r = c->responses; r; r = r->next)
        if (!r->ended && !r->error)
            r->ended = true;
    c->in_body = false;
    c->body_owner = NULL;
    while (c->pend_count > 0)
        conn_pending_pop(c);
    conn_put_clear(c);
    c->state = CONN_IDLE;
    c->refused_id = 0;
}

void
hconn_free(hconn *c)
{
    if (!c)
        return;
    hconn_close(c);
    while (c->responses)
        response_free(c->responses);
    free(c->pend);
    json_decref(c->tunnel_headers);
    free(c->proxy_headers);
    json_decref(c->tls_options);
    json_decref(c->source_address);
    free(c->socket_path);
    free(c);
}
