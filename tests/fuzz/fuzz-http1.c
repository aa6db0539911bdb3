/*
 * fuzz-http1.c — libFuzzer target for the HTTP/1.1 response parser
 * (http1_parser_next in proto/http1.c).
 *
 * Input: three control bytes, then the response bytes. Control byte 0:
 * bit 0 the request was HEAD, bit 1 it said Connection: close, bit 2 eof
 * comes with the last piece; bytes 1 and 2 choose the piece sizes (see
 * fz_split_init). The response is parsed in those pieces, all at once,
 * and all at once with eof; http1-driver.h checks each event and that the
 * three transcripts are identical.
 */
#include <stddef.h>
#include <stdint.h>

#include "http1-driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct h1_result r;

    if (size < 3)
        return 0;
    h1_run_all((const char *)data + 3, size - 3, data[0] & 1, data[0] & 2,
               data[0] & 4, data[1], data[2], &r);
    h1_result_free(&r);
    return 0;
}
