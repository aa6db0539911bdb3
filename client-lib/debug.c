/*
 * debug.c — hconn_set_debuglevel's output, as http.client prints it:
 * "send: b'...'" for what goes to the origin, "reply: '...'" for the
 * status line and "header: Name: value" for each response field.
 *
 * The request head is built by hconnd, not here; to show it as it is
 * sent, it is rebuilt from the request message with the same function
 * hconnd uses (proto/http1.c's http1_format_request) and the same inputs:
 * Host, Accept-Encoding and the body's framing are added by the same
 * rules. A default proxy hconnd chooses, and the CONNECT it sends, are not
 * shown (http.client prints neither for a tunnel).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hconn-private.h"
#include "http1.h"

/* Prints prefix and Python's repr() of len bytes (b'...' when bytes,
 * '...' when text), then a newline. */
static void
debug_repr(const char *prefix, bool bytes, const char *p, size_t len)
{
    char quote = memchr(p, '\'', len) && !memchr(p, '"', len) ? '"' : '\'';

    fprintf(stderr, "%s%s%c", prefix, bytes ? "b" : "", quote);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)p[i];

        if (ch == '\\' || ch == (unsigned char)quote)
            fprintf(stderr, "\\%c", ch);
        else if (ch == '\t')
            fputs("\\t", stderr);
        else if (ch == '\n')
            fputs("\\n", stderr);
        else if (ch == '\r')
            fputs("\\r", stderr);
        else if (ch < 0x20 || ch >= 0x7f)
            fprintf(stderr, "\\x%02x", ch);
        else
            fputc(ch, stderr);
    }
    fprintf(stderr, "%c\n", quote);
}

/* Whether the [[name, value]...] array has a field called name. */
static bool
debug_has_field(json_t *headers, const char *name)
{
    size_t i;
    json_t *pair;

    json_array_foreach(headers, i, pair)
    {
        const char *n = json_string_value(json_array_get(pair, 0));

        if (n && strcasecmp(n, name) == 0)
            return true;
    }
    return false;
}

void
debug_request(const struct hconn *c, const json_t *m, const void *body,
              size_t body_len)
{
    json_t *headers = json_object_get(m, "headers");
    json_t *data = json_object_get(m, "data");
    json_t *length = json_object_get(m, "length");
    bool stream = json_object_get(m, "body") != NULL;
    size_t n = json_array_size(headers), len = 0;
    struct http1_header *fields;
    struct http1_request req = {
        .method = json_string_value(json_object_get(m, "method")),
        .target = json_string_value(json_object_get(m, "target")),
        .host = json_string_value(json_object_get(m, "host")),
        .port = (uint16_t)json_integer_value(json_object_get(m, "port")),
        .tls = c->tls,
        .nheaders = n,
        .skip_host = json_is_true(json_object_get(m, "skip_host")),
        .skip_accept_encoding =
            json_is_true(json_object_get(m, "skip_accept_encoding")),
        .content_length = -1,
    };
    char err[256], *head = NULL;

    if (c->debuglevel < 1 || !req.method || !req.target || !req.host)
        return;
    fields = calloc(n + 1, sizeof(*fields));
    if (!fields)
        return;
    for (size_t i = 0; i < n; i++) {
        json_t *pair = json_array_get(headers, i);

        fields[i].name = json_string_value(json_array_get(pair, 0));
        fields[i].name_len = strlen(fields[i].name);
        fields[i].value = json_string_value(json_array_get(pair, 1));
        fields[i].value_len = strlen(fields[i].value);
    }
    req.headers = fields;
    if (json_is_true(json_object_get(m, "expect_continue")) &&
        (data || stream) && !debug_has_field(headers, "Expect"))
        fields[req.nheaders++] =
            (struct http1_header){"Expect", 6, "100-continue", 12};
    if (data)
        req.content_length = json_integer_value(data);
    else if (stream && length)
        req.content_length = json_integer_value(length);
    else if (stream && !debug_has_field(headers, "Content-Length"))
        req.chunked = true;
    if (http1_format_request(&req, &head, &len, err, sizeof(err)) == 0) {
        char *all = body_len ? malloc(len + body_len) : NULL;

        /* http.client sends a bytes body with the head, in one send(). */
        if (all) {
            memcpy(all, head, len);
            memcpy(all + len, body, body_len);
            debug_repr("send: ", true, all, len + body_len);
            free(all);
        } else {
            debug_repr("send: ", true, head, len);
        }
    }
    free(head);
    free(fields);
}

void
debug_body(const struct hconn *c, const void *data, size_t len)
{
    if (c->debuglevel >= 1 && len > 0)
        debug_repr("send: ", true, data, len);
}

void
debug_response(const struct hconn *c, const struct hconn_response *r)
{
    char line[1024];
    int n;

    if (c->debuglevel < 1)
        return;
    n = snprintf(line, sizeof(line), "HTTP/%s %d %s\r\n",
                 r->version == 10   ? "1.0"
                 : r->version == 20 ? "2"
                                    : "1.1",
                 r->status, r->reason);
    if (n < 0)
        return;
    debug_repr("reply: ", false, line,
               (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    for (size_t i = 0; i < r->nheaders; i++)
        fprintf(stderr, "header: %s: %s\n", r->headers[i].name,
                r->headers[i].value);
}
