/*
 * response.c — the response object (http.client's HTTPResponse): the head
 * as hconnd reported it, and the body read out of the daemon's data
 * frames with read / readinto / readline / read_all.
 *
 * A body is complete only when the daemon's end frame arrived (and, when
 * the length was announced, every byte of it). Anything else that ends a
 * body is an error that sticks to the response: bytes already copied by
 * the failing call are returned first, the error on the next call.
 * HCONN_EWOULD_BLOCK (non-blocking mode) never sticks: it only says "not
 * yet".
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hconn-private.h"

void
response_fail(struct hconn_response *r, int code)
{
    if (r->error)
        return;
    r->error = code;
    r->errmsg = strdup(r->conn->errmsg);
}

/* Returns r's sticky error, restoring its detail as the current one. */
static int
response_error(struct hconn_response *r)
{
    snprintf(r->conn->errmsg, sizeof(r->conn->errmsg), "%s",
             r->errmsg ? r->errmsg : hconn_strerror(r->error));
    return r->error;
}

/* The stream has left r's body: the next reply is the next response's. */
static void
response_detach(struct hconn_response *r)
{
    struct hconn *c = r->conn;

    if (c->body_owner == r) {
        c->body_owner = NULL;
        c->in_body = false;
    }
}

/* Fails r with HCONN_EINCOMPLETE_READ, keeping the counts hconnd gave
 * (IncompleteRead's partial and expected). */
static void
response_incomplete(struct hconn_response *r, uint64_t received,
                    int64_t expected)
{
    if (r->error)
        return;
    r->incomplete = true;
    r->inc_received = received;
    r->inc_expected = expected;
    response_fail(r, HCONN_EINCOMPLETE_READ);
}

/* Fails r because of a protocol violation: the stream is dropped. */
static int
response_bad_reply(struct hconn_response *r, const char *what)
{
    struct hconn *c = r->conn;

    conn_error(c, HCONN_EBAD_MESSAGE,
               "bad reply from hconnd in the body of request %" PRId64 ": %s",
               r->id, what);
    conn_broken(c, HCONN_EBAD_MESSAGE);
    response_fail(r, HCONN_EBAD_MESSAGE);
    return r->error;
}

/*
 * Moves r's body along until payload bytes are due. Returns 1 when the
 * current data frame has bytes left, 0 when the body is complete,
 * HCONN_EWOULD_BLOCK, or r's (negative) error. May block.
 */
static int
response_advance(struct hconn_response *r)
{
    struct hconn *c = r->conn;

    for (;;) {
        struct wire_reply rep;
        json_t *msg;
        int rc;

        if (r->error)
            return r->error;
        if (r->ended)
            return 0;
        if (c->body_owner != r) {
            conn_error(c, HCONN_ECONNECTION_CLOSED,
                       "the connection to hconnd was lost");
            response_fail(r, HCONN_ECONNECTION_CLOSED);
            continue;
        }
        if (c->payload_left > 0)
            return 1;
        rc = transport_next_reply(c, &msg, &rep);
        if (rc == HCONN_EWOULD_BLOCK)
            return rc;
        if (rc < 0) {
            response_fail(r, rc); /* conn_broken normally did already */
            continue;
        }
        if (conn_stray_error(&rep, r->id)) {
            json_decref(msg);
            continue;
        }
        if (!conn_id_matches(&rep, r->id)) {
            json_decref(msg);
            response_bad_reply(r, "reply for another request");
            continue;
        }
        switch (rep.kind) {
        case WIRE_REPLY_DATA:
            if (r->length_left >= 0 && rep.data_len > (uint64_t)r->length_left)
                response_bad_reply(r, "more body bytes than announced");
            break;
        case WIRE_REPLY_END:
            r->ended = true;
            response_detach(r);
            if (conn_copy_headers(rep.trailers, &r->trailers, &r->ntrailers) <
                0) {
                conn_error(c, HCONN_ENO_MEMORY, "out of memory");
                response_fail(r, HCONN_ENO_MEMORY);
            } else if (r->length_left > 0) {
                conn_error(c, HCONN_EINCOMPLETE_READ,
                           "hconnd ended the body after %" PRIu64 " of %" PRId64
                           " bytes",
                           r->received, r->length);
                response_incomplete(r, r->received, r->length);
            }
            break;
        case WIRE_REPLY_ERROR:
            response_detach(r);
            if (rep.error == HCONN_EINCOMPLETE_READ) {
                conn_reply_error(c, &rep);
                response_incomplete(
                    r, rep.received >= 0 ? (uint64_t)rep.received : r->received,
                    rep.expected >= 0 ? rep.expected : r->length);
            } else {
                response_fail(r, conn_reply_error(c, &rep));
            }
            break;
        case WIRE_REPLY_CONTINUE:
            break;
        default:
            response_bad_reply(r, "unexpected message kind");
            break;
        }
        json_decref(msg);
    }
}

/* Counts k body bytes handed to the caller. */
static void
response_account(struct hconn_response *r, size_t k)
{
    r->received += k;
    if (r->length_left > 0)
        r->length_left -= (int64_t)k;
}

/* Once an announced length is fully read, takes the end frame at once so
 * closed() turns true as in http.client (the daemon sends it right away). */
static void
response_finish_known(struct hconn_response *r)
{
    if (r->length_left == 0 && !r->ended && !r->error &&
        r->conn->payload_left == 0)
        response_advance(r);
}

/* Reads more from hconnd. Returns 0, HCONN_EWOULD_BLOCK (non-blocking
 * mode: nothing there yet), or the error the response now carries. */
static int
response_fill(struct hconn_response *r)
{
    int rc = transport_fill(r->conn);

    if (rc < 0 && rc != HCONN_EWOULD_BLOCK) {
        response_fail(r, rc);
        rc = r->error;
    }
    return rc;
}

/* Copies body bytes: all n (some == false) or as soon as at least one
 * arrived (some == true). Returns the count, 0 at the end, or an error. */
static ssize_t
response_read_core(struct hconn_response *r, char *buf, size_t n, bool some)
{
    struct hconn *c = r->conn;
    size_t copied = 0;
    int rc = 0;

    if (n > SSIZE_MAX)
        n = SSIZE_MAX;
    if (n == 0)
        return r->error ? response_error(r) : 0;
    if (!buf)
        return conn_error(c, HCONN_EINVALID_ARGUMENT, "buf is NULL");
    while (copied < n) {
        const char *p;
        size_t avail;

        rc = response_advance(r);
        if (rc <= 0)
            break;
        avail = transport_payload_avail(c, &p);
        if (avail == 0 && c->nonblocking) {
            /* Only what is there: a partial count is not the end here. */
            if ((rc = response_fill(r)) < 0)
                break;
            continue;
        }
        if (avail > 0) {
            size_t k = avail < n - copied ? avail : n - copied;

            memcpy(buf + copied, p, k);
            transport_payload_consume(c, k);
            response_account(r, k);
            copied += k;
        } else if (some && copied > 0) {
            break;
        } else if (n - copied >= HCONN_CHUNK) {
            ssize_t k = transport_payload_direct(c, buf + copied, n - copied);

            if (k < 0) {
                response_fail(r, (int)k);
                rc = r->error;
                break;
            }
            response_account(r, (size_t)k);
            copied += (size_t)k;
        } else if ((rc = response_fill(r)) < 0) {
            break;
        }
        if (some && copied > 0 && c->payload_left == 0)
            break;
    }
    response_finish_known(r);
    if (copied > 0)
        return (ssize_t)copied;
    if (rc == HCONN_EWOULD_BLOCK && !r->error)
        return rc;
    if (rc < 0 || r->error)
        return response_error(r);
    return 0;
}

ssize_t
hconn_response_read(hconn_response *r, void *buf, size_t n)
{
    return response_read_core(r, buf, n, false);
}

ssize_t
hconn_response_readinto(hconn_response *r, void *buf, size_t n)
{
    return response_read_core(r, buf, n, false);
}

ssize_t
hconn_response_read1(hconn_response *r, void *buf, size_t n)
{
    return response_read_core(r, buf, n, true);
}

bool
hconn_response_incomplete_read(const hconn_response *r, uint64_t *received,
                               int64_t *expected)
{
    if (received)
        *received = r->incomplete ? r->inc_received : 0;
    if (expected)
        *expected = r->incomplete ? r->inc_expected : -1;
    return r->incomplete;
}

int
hconn_response_read_all(hconn_response *r, void **bufp, size_t *lenp)
{
    size_t cap, len = 0;
    char *buf;

    *bufp = NULL;
    *lenp = 0;
    if (r->all) { /* resumed after HCONN_EWOULD_BLOCK */
        buf = r->all;
        len = r->all_len;
        cap = r->all_cap;
        r->all = NULL;
    } else {
        if (r->length_left >= 0 && (uint64_t)r->length_left < SIZE_MAX / 2)
            cap = (size_t)r->length_left + 1;
        else
            cap = HCONN_CHUNK;
        buf = malloc(cap);
        if (!buf)
            return conn_error(r->conn, HCONN_ENO_MEMORY, "out of memory");
    }
    for (;;) {
        ssize_t n;

        if (cap - len - 1 == 0) {
            char *bigger;

            if (r->ended && !r->error)
                break;
            bigger = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!bigger) {
                free(buf);
                return conn_error(r->conn, HCONN_ENO_MEMORY,
                                  "out of memory reading the body");
            }
            buf = bigger;
            cap *= 2;
        }
        n = response_read_core(r, buf + len, cap - len - 1, false);
        if (n == HCONN_EWOULD_BLOCK) {
            r->all = buf; /* kept for the next call */
            r->all_len = len;
            r->all_cap = cap;
            return (int)n;
        }
        if (n == HCONN_EINCOMPLETE_READ) {
            /* IncompleteRead.partial: what did arrive is the caller's. */
            buf[len] = '\0';
            *bufp = buf;
            *lenp = len;
            return (int)n;
        }
        if (n < 0) {
            free(buf);
            return (int)n;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    *bufp = buf;
    *lenp = len;
    return 0;
}

ssize_t
hconn_response_readline(hconn_response *r, char *buf, size_t size)
{
    struct hconn *c = r->conn;
    size_t copied = 0, n;
    int rc = 0;

    if (!buf || size < 2)
        return conn_error(c, HCONN_EINVALID_ARGUMENT,
                          "readline needs a buffer of at least 2 bytes");
    n = size - 1 > SSIZE_MAX ? SSIZE_MAX : size - 1;
    while (copied < n) {
        const char *p, *nl;
        size_t avail, k;

        rc = response_advance(r);
        if (rc <= 0)
            break;
        avail = transport_payload_avail(c, &p);
        if (avail == 0) {
            if ((rc = response_fill(r)) < 0)
                break;
            continue;
        }
        k = avail < n - copied ? avail : n - copied;
        nl = memchr(p, '\n', k);
        if (nl)
            k = (size_t)(nl - p) + 1;
        memcpy(buf + copied, p, k);
        transport_payload_consume(c, k);
        response_account(r, k);
        copied += k;
        if (nl)
            break;
    }
    buf[copied] = '\0';
    response_finish_known(r);
    if (copied > 0)
        return (ssize_t)copied;
    if (rc == HCONN_EWOULD_BLOCK && !r->error)
        return rc;
    if (rc < 0 || r->error)
        return response_error(r);
    return 0;
}

int
response_new(struct hconn *c, const struct pending *p,
             const struct wire_reply *head, struct hconn_response **rp)
{
    struct hconn_response *r = calloc(1, sizeof(*r));
    /* As http.client: HEAD, 1xx, 204 and 304 responses have no body,
     * whatever their Content-Length says. */
    bool no_body = p->head || head->status < 200 || head->status == 204 ||
                   head->status == 304;
    int64_t length = no_body ? 0 : head->length;

    *rp = NULL;
    /* The stream is in this response's body from now on, even if we fail
     * to build the object: getresponse then drains it. */
    c->in_body = true;
    c->body_id = p->id;
    c->body_owner = NULL;
    if (!r)
        return conn_error(c, HCONN_ENO_MEMORY, "out of memory");
    r->conn = c;
    r->id = p->id;
    r->next = c->responses;
    if (c->responses)
        c->responses->prev = r;
    c->responses = r;
    r->status = head->status;
    r->version = head->version;
    r->reused = head->reused;
    r->length = r->length_left = length < 0 ? -1 : length;
    r->reason = strdup(head->reason ? head->reason : "");
    if (!r->reason ||
        conn_copy_headers(head->headers, &r->headers, &r->nheaders) < 0) {
        response_free(r);
        return conn_error(c, HCONN_ENO_MEMORY, "out of memory");
    }
    c->body_owner = r;
    debug_response(c, r);
    if (r->length == 0)
        response_advance(r); /* no body: take the end frame now */
    *rp = r;
    return 0;
}

void
response_free(struct hconn_response *r)
{
    struct hconn *c = r->conn;

    if (c->body_owner == r)
        c->body_owner = NULL;
    if (r->prev)
        r->prev->next = r->next;
    else
        c->responses = r->next;
    if (r->next)
        r->next->prev = r->prev;
    for (size_t i = 0; i < r->njoined; i++)
        free(r->joined[i]);
    free(r->joined);
    free(r->headers);
    free(r->trailers);
    free(r->reason);
    free(r->errmsg);
    free(r->all);
    free(r);
}

void
hconn_response_close(hconn_response *r)
{
    if (r)
        response_free(r); /* an unread body stays in_body: drained later */
}

int
hconn_response_status(const hconn_response *r)
{
    return r->status;
}

const char *
hconn_response_reason(const hconn_response *r)
{
    return r->reason;
}

int
hconn_response_version(const hconn_response *r)
{
    return r->version;
}

bool
hconn_response_reused(const hconn_response *r)
{
    return r->reused;
}

int64_t
hconn_response_length(const hconn_response *r)
{
    return r->length_left;
}

bool
hconn_response_closed(const hconn_response *r)
{
    return r->ended || r->error;
}

int
hconn_response_fileno(const hconn_response *r)
{
    return r->conn->fd;
}

size_t
hconn_response_getheaders(const hconn_response *r,
                          const struct hconn_header **headers)
{
    *headers = r->headers;
    return r->nheaders;
}

size_t
hconn_response_gettrailers(const hconn_response *r,
                           const struct hconn_header **trailers)
{
    *trailers = r->trailers;
    return r->ntrailers;
}

const char *
hconn_response_getheader(hconn_response *r, const char *name,
                         const char *default_value)
{
    const char *first = NULL;
    size_t count = 0, len = 0;
    char *joined, *s, **list;

    for (size_t i = 0; i < r->nheaders; i++) {
        if (strcasecmp(r->headers[i].name, name) != 0)
            continue;
        if (!first)
            first = r->headers[i].value;
        len += strlen(r->headers[i].value) + (count ? 2 : 0);
        count++;
    }
    if (count <= 1)
        return count ? first : default_value;
    joined = s = malloc(len + 1);
    if (!joined)
        return first; /* out of memory: the first value is all we can do */
    for (size_t i = 0, n = 0; i < r->nheaders; i++) {
        size_t vl;

        if (strcasecmp(r->headers[i].name, name) != 0)
            continue;
        if (n++) {
            memcpy(s, ", ", 2);
            s += 2;
        }
        vl = strlen(r->headers[i].value);
        memcpy(s, r->headers[i].value, vl);
        s += vl;
    }
    *s = '\0';
    /* Repeated lookups return the string kept from the first one. */
    for (size_t i = 0; i < r->njoined; i++) {
        if (strcmp(r->joined[i], joined) == 0) {
            free(joined);
            return r->joined[i];
        }
    }
    list = realloc(r->joined, (r->njoined + 1) * sizeof(*list));
    if (!list) {
        free(joined);
        return first;
    }
    r->joined = list;
    r->joined[r->njoined++] = joined;
    return joined;
}
