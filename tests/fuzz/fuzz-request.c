/*
 * fuzz-request.c — libFuzzer target for http1_start_request and the body
 * writer (proto/http1.c): request heads built from strings carved out of
 * the input, checked against request-check.h's model (accept exactly the
 * valid requests, write exactly http.client's head, and never a CR or LF
 * that is not a line end), then the body written through the writer in
 * pieces and decoded again.
 *
 * Input: five control bytes, then fields separated by 0x1f: method,
 * target, host, then header name, value, name, value ... Byte 0: bit 0
 * skip_host, bit 1 skip_accept_encoding, bit 2 tls, bit 3 chunked, bit 4
 * an empty value is NULL (see below), bits 5-6 content_length (-1, 0, bytes
 * 3-4, or minus byte 3 minus 2), bit 7 the body is one byte off its
 * length (longer when byte 4 is odd). Bytes 1-2: the port (big-endian);
 * bytes 3-4 also seed the body's piece sizes (fz_split). A
 * missing method, target or host is NULL. Every string is a separate
 * exact-size allocation, so any read past one trips ASan.
 *
 * An empty value is sometimes passed as NULL with value_len 0 (bit 4, or
 * a name without a value), which the API allows: that once reached
 * memcpy(dst, NULL, 0) (corpus/request/null-value).
 * -DFUZZ_REQUEST_NULL_VALUES=0 turns it off.
 */
#include <stddef.h>
#include <stdint.h>

#include "request-check.h"

#define RQ_SEP         0x1f
#define RQ_MAX_HEADERS 64

#ifndef FUZZ_REQUEST_NULL_VALUES
#define FUZZ_REQUEST_NULL_VALUES 1
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A NUL-terminated copy (an embedded NUL just ends the C string). */
static char *
rq_strdup(const uint8_t *s, size_t n)
{
    char *p = fz_xmalloc(n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http1_header headers[RQ_MAX_HEADERS];
    char *str[3] = {NULL, NULL, NULL};
    struct http1_request req = {0};
    struct fz_split split;
    size_t nparts = 0, nh = 0, pos = 5;
    uint8_t flags;
    bool null_values;

    if (size < 5)
        return 0;
    flags = data[0];
    null_values = FUZZ_REQUEST_NULL_VALUES && (flags & 16);
    req.skip_host = flags & 1;
    req.skip_accept_encoding = flags & 2;
    req.tls = flags & 4;
    req.chunked = flags & 8;
    switch ((flags >> 5) & 3) {
    case 0:
        req.content_length = -1;
        break;
    case 1:
        req.content_length = 0;
        break;
    case 2:
        req.content_length = (int64_t)data[3] << 8 | data[4];
        break;
    default:
        req.content_length = -(int64_t)data[3] - 2;
        break;
    }
    req.port = (uint16_t)(data[1] << 8 | data[2]);

    while (pos <= size && nh < RQ_MAX_HEADERS) {
        const uint8_t *sep = memchr(data + pos, RQ_SEP, size - pos);
        size_t n = sep != NULL ? (size_t)(sep - (data + pos)) : size - pos;

        if (nparts < 3) {
            str[nparts] = rq_strdup(data + pos, n);
        } else if ((nparts - 3) % 2 == 0) {
            char *name = fz_xmalloc(n);

            memcpy(name, data + pos, n);
            headers[nh].name = name;
            headers[nh].name_len = n;
            /* A name without a value part: an empty value. */
            headers[nh].value = FUZZ_REQUEST_NULL_VALUES ? NULL : fz_xmalloc(0);
            headers[nh].value_len = 0;
            nh++;
        } else if (n > 0 || !null_values) {
            char *value = fz_xmalloc(n);

            memcpy(value, data + pos, n);
            free((void *)headers[nh - 1].value);
            headers[nh - 1].value = value;
            headers[nh - 1].value_len = n;
        }
        nparts++;
        pos += n + 1;
    }
    req.method = str[0];
    req.target = str[1];
    req.host = str[2];
    req.headers = nh > 0 ? headers : NULL;
    req.nheaders = nh;

    fz_split_init(&split, data[3], data[4]);
    rq_check(&req, &split, (flags & 128) ? ((data[4] & 1) ? 1 : -1) : 0);

    for (size_t i = 0; i < nh; i++) {
        free((void *)headers[i].name);
        free((void *)headers[i].value);
    }
    for (size_t i = 0; i < 3; i++)
        free(str[i]);
    return 0;
}
