/*
 * responses.c — reason phrases by status code, as http.client.responses:
 * every code RFC 9110 defines plus the registered extensions (WebDAV,
 * RFC 6585, RFC 7725, RFC 8297, RFC 8470, ...). Phrases follow RFC 9110
 * where it renamed one (413, 414, 416, 422).
 */
#include <stddef.h>

#include "hconn.h"

/* A status code and its phrase. */
struct status_phrase {
    int status;
    const char *phrase;
};

/* Sorted by status for the binary search below. */
static const struct status_phrase status_phrases[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {102, "Processing"},
    {103, "Early Hints"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {203, "Non-Authoritative Information"},
    {204, "No Content"},
    {205, "Reset Content"},
    {206, "Partial Content"},
    {207, "Multi-Status"},
    {208, "Already Reported"},
    {226, "IM Used"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {305, "Use Proxy"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {418, "I'm a Teapot"},
    {421, "Misdirected Request"},
    {422, "Unprocessable Content"},
    {423, "Locked"},
    {424, "Failed Dependency"},
    {425, "Too Early"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {451, "Unavailable For Legal Reasons"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
    {506, "Variant Also Negotiates"},
    {507, "Insufficient Storage"},
    {508, "Loop Detected"},
    {510, "Not Extended"},
    {511, "Network Authentication Required"},
};

const char *
hconn_responses(int status)
{
    size_t lo = 0, hi = sizeof(status_phrases) / sizeof(status_phrases[0]);

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (status_phrases[mid].status == status)
            return status_phrases[mid].phrase;
        if (status_phrases[mid].status < status)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
