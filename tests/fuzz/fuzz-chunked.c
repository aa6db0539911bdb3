/*
 * fuzz-chunked.c — libFuzzer target for the chunked body decoder of the
 * response parser (proto/http1.c): the input follows a fixed, valid
 * "Transfer-Encoding: chunked" head, so every mutation lands in chunk
 * sizes, extensions, chunk data and trailers.
 *
 * Input: three control bytes as in fuzz-http1.c (bit 0 of byte 0 is
 * ignored: a HEAD response has no body), then the body bytes. Besides the
 * driver's checks, a body the parser accepts (END) is decoded again by a
 * small independent decoder, which must agree on the bytes and on where
 * the message ends.
 */
#include <stddef.h>
#include <stdint.h>

#include "http1-driver.h"

#define CHUNKED_HEAD "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Finds the end of the line at b[pos..n): the index of its '\n' and of
 * its content's end (a CR before the LF is not content). */
static bool
ref_line(const char *b, size_t n, size_t pos, size_t *lf, size_t *end)
{
    const char *nl = memchr(b + pos, '\n', n - pos);

    if (nl == NULL)
        return false;
    *lf = (size_t)(nl - b);
    *end = *lf > pos && b[*lf - 1] == '\r' ? *lf - 1 : *lf;
    return true;
}

/* RFC 9112 §7.1 as the parser documents it: 1-16 hex digits, BWS, an
 * optional ";" extension; chunk data then CRLF (or LF); after the last
 * chunk, field lines up to a blank line. Returns the bytes the message
 * takes, or 0 when it is not complete and well-framed. */
static size_t
ref_decode(const char *b, size_t n, struct fz_bytes *out)
{
    size_t pos = 0, lf, end, k;

    for (;;) {
        uint64_t size = 0;

        if (!ref_line(b, n, pos, &lf, &end))
            return 0;
        for (k = pos; k < end && h1_hex(b[k]) >= 0; k++) {
            if (k - pos == 16)
                return 0;
            size = size << 4 | (uint64_t)h1_hex(b[k]);
        }
        if (k == pos)
            return 0;
        while (k < end && (b[k] == ' ' || b[k] == '\t'))
            k++;
        if (k < end && b[k] != ';')
            return 0;
        pos = lf + 1;
        if (size == 0)
            break;
        if (size > n - pos)
            return 0;
        fz_bytes_add(out, b + pos, (size_t)size);
        pos += (size_t)size;
        if (pos < n && b[pos] == '\n')
            pos += 1;
        else if (n - pos >= 2 && b[pos] == '\r' && b[pos + 1] == '\n')
            pos += 2;
        else
            return 0;
    }
    for (;;) {
        bool blank;

        if (!ref_line(b, n, pos, &lf, &end))
            return 0;
        blank = end == pos;
        pos = lf + 1;
        if (blank)
            return pos;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char head[] = CHUNKED_HEAD;
    const size_t hlen = sizeof head - 1;
    struct h1_result r;
    char *in;
    size_t n;

    if (size < 3)
        return 0;
    n = hlen + size - 3;
    in = fz_xmalloc(n);
    memcpy(in, head, hlen);
    memcpy(in + hlen, data + 3, size - 3);
    h1_run_all(in, n, false, data[0] & 2, data[0] & 4, data[1], data[2], &r);
    /* The fixed head always parses: the body is what was fuzzed. */
    FZ_CHECK(r.framing == HTTP1_FRAMING_CHUNKED);
    if (r.final_kind == HTTP1_END) {
        struct fz_bytes ref = {0};
        size_t end = ref_decode(in + hlen, n - hlen, &ref);

        FZ_CHECK(end > 0);
        FZ_CHECK(hlen + end == r.consumed);
        FZ_CHECK(fz_bytes_equal(&ref, &r.body));
        fz_bytes_free(&ref);
    }
    h1_result_free(&r);
    free(in);
    return 0;
}
