/*
 * codec_http2.c — the HTTP/2 upstream codec: many streams on one
 * connection, through one libnghttp2 client session per connection
 * (framing, HPACK and flow control are nghttp2's).
 *
 * The session belongs to the connection for its whole life, idle too, and
 * reads the socket always: backpressure is per stream, by flow control.
 * Automatic WINDOW_UPDATEs are off; each stream's window is
 * stream_buffer_bytes, and its bytes are consumed (the window reopened)
 * only as its client takes them, so a stalled client stops its own stream
 * and nothing else. The connection's window is consumed as bytes arrive.
 *
 * A request goes out as the HTTP/1.1 head the codec readied (every check
 * on the client's fields already made), turned into HTTP/2 fields: the
 * request line and Host become :method, :scheme, :authority and :path,
 * names go lower case, and the connection-specific fields (RFC 9113
 * §8.2.2: Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding,
 * Upgrade) are dropped, TE kept only as "trailers". The body goes through
 * a data provider under the peer's windows.
 *
 * Reentrancy: nghttp2's callbacks run the exchange's, which may abort
 * their stream or open others; I/O initiated by the exchange (sending,
 * resuming, aborting) and the pool's leasing of freed capacity run from a
 * deferred "kick" event, never inside nghttp2. Streams and the connection
 * are freed only when no codec frame is on the stack.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/time.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include "codec_http2.h"
#include "config.h"
#include "h2mem.h"
#include "hconn_error.h"
#include "log.h"
#include "pool.h"
#include "server.h"
#include "timeval.h"
#include "upstream.h"
#include "wire.h"

/* Output queued on the socket before the session stops serialising. */
#define H2_OUT_HIGH (256 * 1024)
/* The connection's receive window: large, since each stream is bounded
 * by its own window and the connection's is consumed on arrival. */
#define H2_CONN_WINDOW ((1 << 30) - 1)
/* Frames gathered for one write: a TLS record's worth. */
#define H2_FLUSH_STAGE 16384
/* Streams assumed allowed before the server's SETTINGS come
 * (RFC 9113 §6.5.2 recommends at least 100). */
#define H2_INITIAL_PEER_STREAMS 100

/* A header block being received, or delivered: each field's name NUL
 * value NUL is copied into one buffer, reused block after block. */
struct h2_fields {
    struct http1_header *v;
    size_t n, cap;
    char *bytes;
    size_t len, size;
};
/* A spare stream keeps a field buffer up to this size. */
#define H2_SPARE_FIELD_BYTES 4096
/* A request with up to this many fields, and a head this long, is turned
 * into HTTP/2's fields on the stack. */
#define H2_STACK_FIELDS 40
#define H2_STACK_HEAD   2048

struct h2_conn;

struct h2_stream {
    bool h2; /* true: codec_stream_is_http2 */
    struct h2_conn *conn;
    int32_t id;
    const struct codec_events *ev; /* NULL once detached from the exchange */
    void *arg;
    struct codec_options opt;
    bool head_request;
    bool has_body;        /* a data provider frames a body */
    int64_t length;       /* the body's declared length, -1: unknown */
    uint64_t body_sent;   /* body bytes handed to the stream */
    struct evbuffer *out; /* body bytes not yet framed */
    bool send_ended;      /* codec_send_end */
    bool deferred;        /* the provider waits for bytes */
    /* The response. */
    int status;
    bool head_done;
    int64_t resp_length; /* content-length, -1: unknown */
    struct h2_fields fields;
    size_t head_bytes; /* header bytes, interim blocks included */
    bool too_big;      /* head_bytes passed max_head_bytes */
    bool too_many;     /* a block of more than HTTP1_MAX_HEADERS fields */
    struct evbuffer *in;
    uint64_t body_received; /* body bytes delivered to the exchange */
    bool remote_ended;      /* END_STREAM came */
    bool paused;
    bool closed;       /* nghttp2 closed it */
    bool rst_received; /* the server reset it */
    uint32_t rst_code;
    struct event *timer;     /* read_timeout */
    struct timespec touched; /* the last response byte (CLOCK_MONOTONIC) */
    char errmsg[160];
    TAILQ_ENTRY(h2_stream) entry;
};

struct h2_conn {
    struct upstream *up;
    struct bufferevent *bev;
    nghttp2_session *session;
    struct event *kick;
    struct event *settings_timer; /* connect_timeout for their SETTINGS */
    double settings_timeout;
    size_t window;   /* per-stream receive window */
    size_t max_head; /* header bytes per response */
    size_t cap;      /* h2_max_concurrent_streams */
    unsigned nopen;  /* our streams nghttp2 has not closed */
    bool dead;       /* failed or closing: no new streams */
    bool goaway;     /* the server said GOAWAY */
    uint32_t goaway_code;
    int32_t goaway_last_id;
    bool ready;       /* the server's SETTINGS came: streams may open */
    bool draining;    /* failed: writing our GOAWAY out before closing */
    bool sent_goaway; /* nghttp2 ended the session with an error */
    uint32_t sent_goaway_code;
    char problem[160]; /* the last invalid frame, for messages */
    bool pool_dirty;   /* capacity changed: let the pool lease */
    bool out_full;     /* h2_flush stopped at H2_OUT_HIGH */
    unsigned busy;     /* codec frames on the stack */
    bool closing;      /* close once not busy */
    char close_why[400];
    int close_code;         /* why it failed: HCONN_E... */
    int32_t last_id;        /* h2_stream_get's last find (0: none) */
    struct h2_stream *last; /* ... and its stream */
    TAILQ_HEAD(, h2_stream) streams;
};

#define h2_stream_of(s) ((struct h2_stream *)(void *)(s))

/* nghttp2 sessions alive (h2mem.c's blocks are kept while there are). */
static unsigned h2_nsessions;

static void h2_conn_fail(struct h2_conn *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- Frames on the stack, and freeing ------------------------------- */

static void
h2_enter(struct h2_conn *c)
{
    c->busy++;
}

static void h2_stream_free(struct h2_stream *s);

/* Forgets the remembered stream (nghttp2 closed it, or it is freed). */
static void
h2_stream_forget(struct h2_conn *c, const struct h2_stream *s)
{
    if (c->last == s) {
        c->last_id = 0;
        c->last = NULL;
    }
}

/* Frees the streams that are both closed and detached. */
static void
h2_reap(struct h2_conn *c)
{
    struct h2_stream *s, *next;

    TAILQ_FOREACH_SAFE(s, &c->streams, entry, next)
    {
        if (!s->closed || s->ev != NULL)
            continue;
        TAILQ_REMOVE(&c->streams, s, entry);
        h2_stream_forget(c, s);
        h2_stream_free(s);
    }
}

/* Leaves a codec frame; the outermost one reaps streams and closes the
 * connection when that was asked for. True when c is gone. */
static bool
h2_leave(struct h2_conn *c)
{
    if (--c->busy > 0)
        return false;
    h2_reap(c);
    if (!c->closing || c->draining)
        return false;
    /* Frees c (upstream_free runs h2_conn_free). */
    pool_h2_closed(c->up, c->close_code, c->close_why);
    return true;
}

/* Runs the kick soon, from the loop. */
static void
h2_schedule(struct h2_conn *c)
{
    if (c->kick != NULL)
        event_active(c->kick, EV_TIMEOUT, 0);
}

/* ---- Fields --------------------------------------------------------- */

/* Grows f's byte buffer to hold need more bytes, moving the fields that
 * point into it. */
static int
h2_fields_grow(struct h2_fields *f, size_t need)
{
    size_t size = f->size ? f->size : 1024;
    char *bytes;

    while (size - f->len < need)
        size *= 2;
    bytes = malloc(size);
    if (bytes == NULL)
        return -1;
    if (f->len > 0) {
        memcpy(bytes, f->bytes, f->len);
        for (size_t i = 0; i < f->n; i++) {
            f->v[i].name = bytes + (f->v[i].name - f->bytes);
            f->v[i].value = bytes + (f->v[i].value - f->bytes);
        }
    }
    free(f->bytes);
    f->bytes = bytes;
    f->size = size;
    return 0;
}

/* Appends one field (copied: name NUL value NUL). */
static int
h2_fields_add(struct h2_fields *f, const uint8_t *name, size_t nlen,
              const uint8_t *value, size_t vlen)
{
    size_t need = nlen + vlen + 2;
    char *at;

    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        struct http1_header *v = realloc(f->v, cap * sizeof *v);

        if (v == NULL)
            return -1;
        f->v = v;
        f->cap = cap;
    }
    if (f->size - f->len < need && h2_fields_grow(f, need) < 0)
        return -1;
    at = f->bytes + f->len;
    memcpy(at, name, nlen);
    at[nlen] = '\0';
    memcpy(at + nlen + 1, value, vlen);
    at[nlen + 1 + vlen] = '\0';
    f->v[f->n++] = (struct http1_header){at, nlen, at + nlen + 1, vlen};
    f->len += need;
    return 0;
}

/* Empties a header block (its array and buffer are kept for the next). */
static void
h2_fields_clear(struct h2_fields *f)
{
    f->n = 0;
    f->len = 0;
}

/* ---- Streams: allocation, and spares ---------------------------------- */

/* Freed streams kept for the next ones, with their two buffers, timer and
 * field array and buffer, as HTTP/1.1's are (codec_http1.c): a new stream
 * cost four allocations, and its response one more per field, all freed
 * at its end, per request. Streams end in bursts (one read ends many), so
 * a few are kept, a few KiB each at most. */
#define H2_SPARE_MAX 16
static struct h2_stream *h2_spare_streams[H2_SPARE_MAX];
static size_t h2_nspare_streams;

static void h2_timeout_cb(evutil_socket_t fd, short what, void *arg);

/* Frees s and all it holds. */
static void
h2_stream_destroy(struct h2_stream *s)
{
    if (s->timer != NULL)
        event_free(s->timer);
    if (s->out != NULL)
        evbuffer_free(s->out);
    if (s->in != NULL)
        evbuffer_free(s->in);
    free(s->fields.v);
    free(s->fields.bytes);
    free(s);
}

/* Keeps s as a spare, emptied (its timer stopped, its buffers drained,
 * its fields cleared but their array and a small buffer kept), or frees
 * it. */
static void
h2_stream_free(struct h2_stream *s)
{
    if (h2_nspare_streams < H2_SPARE_MAX && s->out != NULL && s->in != NULL &&
        s->timer != NULL && evtimer_del(s->timer) == 0 &&
        evbuffer_drain(s->out, evbuffer_get_length(s->out)) == 0 &&
        evbuffer_drain(s->in, evbuffer_get_length(s->in)) == 0) {
        h2_fields_clear(&s->fields);
        if (s->fields.size > H2_SPARE_FIELD_BYTES) {
            free(s->fields.bytes);
            s->fields.bytes = NULL;
            s->fields.size = 0;
        }
        h2_spare_streams[h2_nspare_streams++] = s;
        return;
    }
    h2_stream_destroy(s);
}

/* A stream on c's loop, zeroed but for its buffers, timer (whose argument
 * is the stream) and field array: a spare, or a new one; NULL: no
 * memory. */
static struct h2_stream *
h2_stream_new(struct h2_conn *c)
{
    struct event_base *base = bufferevent_get_base(c->bev);
    struct h2_stream *s;

    if (h2_nspare_streams > 0) {
        struct h2_stream keep;

        s = h2_spare_streams[--h2_nspare_streams];
        keep = *s;
        memset(s, 0, sizeof *s);
        s->out = keep.out;
        s->in = keep.in;
        s->fields.v = keep.fields.v;
        s->fields.cap = keep.fields.cap;
        s->fields.bytes = keep.fields.bytes;
        s->fields.size = keep.fields.size;
        s->timer = keep.timer;
        if (event_get_base(s->timer) == base)
            return s;
        event_free(s->timer);
    } else {
        s = calloc(1, sizeof *s);
        if (s == NULL)
            return NULL;
        s->out = evbuffer_new();
        s->in = evbuffer_new();
    }
    s->timer = evtimer_new(base, h2_timeout_cb, s);
    if (s->out == NULL || s->in == NULL || s->timer == NULL) {
        h2_stream_destroy(s);
        return NULL;
    }
    return s;
}

/* ---- Failing and ending streams -------------------------------------- */

/* Detaches s from its exchange: the pool's lease ends, and a stream still
 * open is reset (CANCEL) so the server stops. */
static void
h2_detach(struct h2_stream *s, uint32_t rst_code)
{
    struct h2_conn *c = s->conn;

    if (s->ev == NULL)
        return;
    s->ev = NULL;
    s->arg = NULL;
    if (s->timer != NULL)
        evtimer_del(s->timer);
    /* A stream whose both ends are over is closed by nghttp2 itself once
     * the frame that ended it is processed: a reset would only cost a
     * frame and a write per request. */
    if (!s->closed && !c->dead &&
        !(s->remote_ended &&
          nghttp2_session_get_stream_local_close(c->session, s->id) == 1))
        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, s->id,
                                  rst_code);
    pool_stream_done(c->up);
    c->pool_dirty = true;
    h2_schedule(c);
}

/* Reports a failure of s to its exchange, then detaches it. */
static void __attribute__((format(printf, 5, 6)))
h2_stream_fail(struct h2_stream *s, int code, bool unprocessed, bool refused,
               const char *fmt, ...)
{
    char message[512];
    struct codec_error e = {
        .code = code,
        .message = message,
        .unprocessed = unprocessed,
        .refused = refused,
        .body_received = s->body_received,
        .body_expected = s->resp_length,
    };
    va_list ap;

    if (s->ev == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    s->ev->error(s->arg, &e);
    h2_detach(s, NGHTTP2_CANCEL);
}

/* Names an HTTP/2 error code: "INTERNAL_ERROR (2)". */
static const char *
h2_code_name(uint32_t code, char *buf, size_t len)
{
    snprintf(buf, len, "%s (%u)", nghttp2_http2_strerror(code), code);
    return buf;
}

/* The response is complete: the end reply, then the stream is over. */
static void
h2_stream_end(struct h2_stream *s)
{
    struct codec_end end = {
        .trailers = s->fields.v,
        .ntrailers = s->fields.n,
        .status = s->status,
        .body_received = s->body_received,
        .keep = true,
    };

    if (s->resp_length >= 0 && !s->head_request && s->status != 204 &&
        s->status != 304 && s->body_received != (uint64_t)s->resp_length) {
        h2_stream_fail(s, HCONN_EINCOMPLETE_READ, false, false,
                       "%s: the stream ended after %llu of %lld body bytes",
                       upstream_peer(s->conn->up),
                       (unsigned long long)s->body_received,
                       (long long)s->resp_length);
        return;
    }
    s->ev->end(s->arg, &end);
    h2_fields_clear(&s->fields);
    h2_detach(s, NGHTTP2_CANCEL);
}

/* Arms the stream's timer to fire in seconds. */
static void
h2_stream_arm(struct h2_stream *s, double seconds)
{
    struct timeval tv = timeval_of(seconds);

    evtimer_add(s->timer, &tv);
}

/* Restarts the stream's read timeout (not while its client is behind).
 * Only the time is noted while the timer runs: it fires read_timeout
 * after it was armed, and h2_timeout_cb moves it on by what came since.
 * Moving it for every frame (three times per small response) cost more
 * than the frames' own handling. */
static void
h2_stream_touch(struct h2_stream *s)
{
    if (s->timer == NULL || s->ev == NULL)
        return;
    if (s->paused || !(s->opt.read_timeout > 0)) {
        evtimer_del(s->timer);
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &s->touched);
    if (!evtimer_pending(s->timer, NULL))
        h2_stream_arm(s, s->opt.read_timeout);
}

/* Moves what the stream holds to its client while it keeps up; reopens
 * the stream's window by what it took; the end once all is delivered. */
static void
h2_stream_deliver(struct h2_stream *s)
{
    struct h2_conn *c = s->conn;

    while (s->ev != NULL && !s->paused && evbuffer_get_length(s->in) > 0) {
        size_t n = evbuffer_get_length(s->in);

        if (!s->ev->data(s->arg, s->in, n)) {
            evbuffer_drain(s->in, evbuffer_get_length(s->in));
            break;
        }
        s->body_received += n;
        if (!c->dead && !s->closed)
            nghttp2_session_consume_stream(c->session, s->id, n);
    }
    if (s->ev != NULL && !s->paused && s->remote_ended &&
        evbuffer_get_length(s->in) == 0)
        h2_stream_end(s);
}

/* ---- nghttp2's callbacks --------------------------------------------- */

/* Our stream of id, or NULL. The last one found is remembered: a
 * response's frames and fields come a dozen callbacks in a row for one
 * stream, each a search of nghttp2's stream map otherwise. */
static struct h2_stream *
h2_stream_get(struct h2_conn *c, int32_t id)
{
    struct h2_stream *s;

    if (id <= 0)
        return NULL;
    if (id == c->last_id)
        return c->last;
    s = nghttp2_session_get_stream_user_data(c->session, id);
    if (s != NULL) {
        c->last_id = id;
        c->last = s;
    }
    return s;
}

/* A header block starts: its fields replace the last block's. */
static int
h2_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame,
                    void *user_data)
{
    struct h2_stream *s = h2_stream_get(user_data, frame->hd.stream_id);

    if (s != NULL) {
        h2_fields_clear(&s->fields);
        s->status = s->head_done ? s->status : 0;
    }
    return 0;
}

/* A :status value's code: three digits (nghttp2 checks them too), else
 * 0. */
static int
h2_status_code(const uint8_t *v, size_t len)
{
    if (len != 3)
        return 0;
    for (size_t i = 0; i < 3; i++)
        if (v[i] < '0' || v[i] > '9')
            return 0;
    return (v[0] - '0') * 100 + (v[1] - '0') * 10 + (v[2] - '0');
}

/* One field of a header block: :status kept, the others collected. */
static int
h2_on_header(nghttp2_session *session, const nghttp2_frame *frame,
             const uint8_t *name, size_t nlen, const uint8_t *value,
             size_t vlen, uint8_t flags, void *user_data)
{
    struct h2_stream *s = h2_stream_get(user_data, frame->hd.stream_id);

    if (s == NULL || s->ev == NULL)
        return 0;
    /* max_response_head_bytes bounds the fields as HTTP/1.1's head: each
     * counts as it would on the wire, interim blocks included. */
    s->head_bytes += nlen + vlen + 4;
    if (s->head_bytes > s->opt.max_head_bytes) {
        s->too_big = true;
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
        if (!s->head_done)
            s->status = h2_status_code(value, vlen);
        return 0;
    }
    if (nlen > 0 && name[0] == ':')
        return 0; /* nghttp2 checks the pseudo-header fields */
    /* As HTTP/1.1's (and http.client's) limit on field lines. */
    if (s->fields.n >= HTTP1_MAX_HEADERS) {
        s->too_many = true;
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (h2_fields_add(&s->fields, name, nlen, value, vlen) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

/* The length a head announces: 0 when no body can follow, else its
 * content-length, else -1. */
static int64_t
h2_response_length(const struct h2_stream *s)
{
    if (s->head_request || s->status == 204 || s->status == 304)
        return 0;
    for (size_t i = 0; i < s->fields.n; i++) {
        const struct http1_header *h = &s->fields.v[i];

        if (h->name_len == 14 && memcmp(h->name, "content-length", 14) == 0) {
            /* Digits only (nghttp2 refuses any other value); strtoll's
             * locale-aware generality cost a few hundred instructions. */
            int64_t n = 0;

            if (h->value_len == 0)
                return -1;
            for (size_t j = 0; j < h->value_len; j++) {
                int d = h->value[j] - '0';

                if (d < 0 || d > 9 || n > (INT64_MAX - d) / 10)
                    return -1;
                n = n * 10 + d;
            }
            return n;
        }
    }
    return -1;
}

/* A whole header block came: an interim response, the head, or the
 * trailers. */
static void
h2_stream_headers(struct h2_stream *s)
{
    if (s->head_done) {
        /* Trailers: delivered with the end (kept in fields). */
        return;
    }
    if (s->status >= 100 && s->status < 200) {
        h2_fields_clear(&s->fields);
        s->ev->interim(s->arg, s->status);
        return;
    }
    s->resp_length = h2_response_length(s);
    s->head_done = true;
    s->ev->head(s->arg, &(struct codec_head){
                            .status = s->status,
                            .version = 20,
                            .reason = "",
                            .reason_len = 0,
                            .headers = s->fields.v,
                            .nheaders = s->fields.n,
                            .length = s->resp_length,
                        });
    h2_fields_clear(&s->fields);
}

/* A whole frame came: heads, ends of streams, resets, GOAWAY, SETTINGS. */
static int
h2_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
                 void *user_data)
{
    struct h2_conn *c = user_data;
    struct h2_stream *s = h2_stream_get(user_data, frame->hd.stream_id);
    char name[64];

    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (s == NULL || s->ev == NULL)
            break;
        h2_stream_touch(s);
        h2_stream_headers(s);
        if (s->ev != NULL && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
            s->remote_ended = true;
            h2_stream_deliver(s);
        }
        break;
    case NGHTTP2_DATA:
        if (s != NULL && s->ev != NULL &&
            (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
            s->remote_ended = true;
            h2_stream_deliver(s);
        }
        break;
    case NGHTTP2_RST_STREAM:
        if (s != NULL) {
            s->rst_received = true;
            s->rst_code = frame->rst_stream.error_code;
        }
        break;
    case NGHTTP2_GOAWAY:
        c->goaway = true;
        c->goaway_code = frame->goaway.error_code;
        c->goaway_last_id = frame->goaway.last_stream_id;
        c->pool_dirty = true;
        log_debug("upstream %lu: GOAWAY %s, last stream %d", upstream_id(c->up),
                  h2_code_name(c->goaway_code, name, sizeof name),
                  (int)c->goaway_last_id);
        break;
    case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
            c->ready = true;
            evtimer_del(c->settings_timer);
        }
        c->pool_dirty = true;
        h2_schedule(c);
        break;
    case NGHTTP2_WINDOW_UPDATE:
        c->pool_dirty = true;
        h2_schedule(c);
        break;
    default:
        break;
    }
    return 0;
}

/* Body bytes of a stream: held until the read is parsed. */
static int
h2_on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t id,
                 const uint8_t *data, size_t len, void *user_data)
{
    struct h2_stream *s = h2_stream_get(user_data, id);

    /* The connection's window reopens at once: only streams hold back. */
    nghttp2_session_consume_connection(session, len);
    if (s == NULL || s->ev == NULL) {
        if (s != NULL && !s->closed)
            nghttp2_session_consume_stream(session, id, len);
        return 0;
    }
    h2_stream_touch(s);
    /* Delivered once the read is parsed (h2_read_cb): one data reply per
     * read rather than per frame. */
    if (evbuffer_add(s->in, data, len) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

/* nghttp2 closed a stream: a complete response, or its failure. */
static int
h2_on_stream_close(nghttp2_session *session, int32_t id, uint32_t code,
                   void *user_data)
{
    struct h2_conn *c = user_data;
    struct h2_stream *s = h2_stream_get(user_data, id);
    const char *peer = upstream_peer(c->up);
    char name[64];

    if (s == NULL)
        return 0;
    h2_stream_forget(c, s);
    s->closed = true;
    c->nopen--;
    c->pool_dirty = true;
    h2_schedule(c);
    if (s->ev == NULL)
        return 0;
    if (s->too_many) {
        h2_stream_fail(s, HCONN_ETOO_MANY_HEADERS, false, false,
                       "%s: a header block of more than %d fields", peer,
                       HTTP1_MAX_HEADERS);
    } else if (s->too_big) {
        h2_stream_fail(s, HCONN_ELIMIT_EXCEEDED, false, false,
                       "%s: response head exceeds %zu bytes "
                       "(max_response_head_bytes)",
                       peer, s->opt.max_head_bytes);
    } else if (s->rst_received && s->rst_code == NGHTTP2_REFUSED_STREAM) {
        h2_stream_fail(s, HCONN_ESTREAM_RESET, true, true,
                       "origin refused the stream: REFUSED_STREAM (7)");
    } else if (s->rst_received) {
        h2_stream_fail(s, HCONN_ESTREAM_RESET, false, false,
                       "origin reset the stream: %s",
                       h2_code_name(s->rst_code, name, sizeof name));
    } else if (code == NGHTTP2_NO_ERROR && s->remote_ended) {
        h2_stream_deliver(s); /* what the client has yet to take */
    } else if (code == NGHTTP2_REFUSED_STREAM && c->goaway) {
        /* Above the GOAWAY's last stream id: never processed. */
        h2_stream_fail(s, HCONN_EREMOTE_DISCONNECTED, true, true,
                       "%s: origin sent GOAWAY %s before processing the "
                       "stream",
                       peer, h2_code_name(c->goaway_code, name, sizeof name));
    } else if (s->head_done && s->resp_length >= 0) {
        h2_stream_fail(
            s, HCONN_EINCOMPLETE_READ, false, false,
            "%s: the stream ended after %llu of %lld body bytes "
            "(%s)",
            peer,
            (unsigned long long)(s->body_received + evbuffer_get_length(s->in)),
            (long long)s->resp_length, h2_code_name(code, name, sizeof name));
    } else {
        h2_stream_fail(s, HCONN_EPROTOCOL_ERROR, !s->head_done, false,
                       "%s: HTTP/2 protocol error on the stream: %s%s%s", peer,
                       h2_code_name(code, name, sizeof name),
                       c->problem[0] ? ": " : "", c->problem);
    }
    return 0;
}

/* Keeps what was wrong with a refused frame, for the error message. */
static int
h2_on_invalid_frame(nghttp2_session *session, const nghttp2_frame *frame,
                    int lib_error_code, void *user_data)
{
    struct h2_conn *c = user_data;

    snprintf(c->problem, sizeof c->problem, "%s",
             nghttp2_strerror(lib_error_code));
    return 0;
}

/* Notes a GOAWAY with an error that nghttp2 sends: the session is over;
 * and a request's HEADERS, after which its body may go. */
static int
h2_on_frame_send(nghttp2_session *session, const nghttp2_frame *frame,
                 void *user_data)
{
    struct h2_conn *c = user_data;

    if (frame->hd.type == NGHTTP2_GOAWAY &&
        frame->goaway.error_code != NGHTTP2_NO_ERROR) {
        c->sent_goaway = true;
        c->sent_goaway_code = frame->goaway.error_code;
    }
    if (frame->hd.type == NGHTTP2_HEADERS) {
        struct h2_stream *s = h2_stream_get(user_data, frame->hd.stream_id);

        /* The stream is open now, with the peer's window: room for the
         * body, which the kick offers its exchange. */
        if (s != NULL && s->ev != NULL && s->has_body && !s->send_ended)
            h2_schedule(c);
    }
    return 0;
}

/* nghttp2's own account of an error, for the message and the log. */
static int
h2_on_error(nghttp2_session *session, int lib_error_code, const char *msg,
            size_t len, void *user_data)
{
    struct h2_conn *c = user_data;

    snprintf(c->problem, sizeof c->problem, "%.*s", (int)len, msg);
    log_debug("upstream %lu: HTTP/2: %.*s", upstream_id(c->up), (int)len, msg);
    return 0;
}

/* The request body: what the exchange queued, under the peer's windows
 * (nghttp2 asks for no more than they allow). */
static ssize_t
h2_read_body(nghttp2_session *session, int32_t id, uint8_t *buf, size_t len,
             uint32_t *flags, nghttp2_data_source *source, void *user_data)
{
    struct h2_stream *s = source->ptr;
    size_t held = evbuffer_get_length(s->out);
    size_t n = held < len ? held : len;

    if (n > 0) {
        evbuffer_remove(s->out, buf, n);
        h2_stream_touch(s);
        h2_schedule(s->conn); /* room for more */
    }
    if (s->send_ended && evbuffer_get_length(s->out) == 0) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return (ssize_t)n;
    }
    if (n == 0) {
        s->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

/* ---- Connection I/O --------------------------------------------------- */

/* Queues the staged frames on the connection's output in one piece.
 * False when out of memory. */
static bool
h2_flush_stage(struct evbuffer *out, uint8_t *stage, size_t *staged)
{
    bool ok = *staged == 0 || evbuffer_add(out, stage, *staged) == 0;

    *staged = 0;
    return ok;
}

/* Serialises what the session has to send onto the socket, while the
 * socket's queue is short. nghttp2 hands over a frame at a time; small
 * ones are gathered and queued together, since under TLS every piece
 * added to the output becomes a record and a write of its own: the
 * HEADERS of many streams opened in one loop turn go out in one. */
static void
h2_flush(struct h2_conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    uint8_t stage[H2_FLUSH_STAGE];
    size_t staged = 0;
    /* nghttp2 wants to write while a frame is queued, or one it handed
     * over awaits the call that finishes it (its callbacks and state):
     * a call with nothing of either would only say so, at a few hundred
     * instructions, two or three times per request. Once a frame came,
     * the next call is due anyway: asked once. */
    bool more = nghttp2_session_want_write(c->session), ok = true;

    c->out_full = false;
    while (more && ok && !c->closing) {
        const uint8_t *data;
        ssize_t n;

        if (evbuffer_get_length(out) + staged >= H2_OUT_HIGH) {
            c->out_full = true; /* h2_write_cb resumes */
            break;
        }
        n = nghttp2_session_mem_send(c->session, &data);
        if (n < 0) {
            h2_flush_stage(out, stage, &staged);
            h2_conn_fail(c, HCONN_EPROTOCOL_ERROR, "%s: HTTP/2: %s",
                         upstream_peer(c->up), nghttp2_strerror((int)n));
            return;
        }
        if (n == 0)
            break;
        if (staged + (size_t)n > sizeof stage)
            ok = h2_flush_stage(out, stage, &staged);
        if (ok && (size_t)n <= sizeof stage) {
            memcpy(stage + staged, data, (size_t)n);
            staged += (size_t)n;
        } else if (ok) {
            ok = evbuffer_add(out, data, (size_t)n) == 0;
        }
    }
    if (!ok || !h2_flush_stage(out, stage, &staged)) {
        h2_conn_fail(c, HCONN_ENO_MEMORY, "out of memory sending to %s",
                     upstream_peer(c->up));
        return;
    }
    if (c->closing || c->dead)
        return;
    if (!nghttp2_session_want_read(c->session) &&
        !nghttp2_session_want_write(c->session)) {
        char name[64];

        if (c->sent_goaway)
            h2_conn_fail(c, HCONN_EPROTOCOL_ERROR,
                         "%s: HTTP/2 protocol error: %s (GOAWAY %s sent)",
                         upstream_peer(c->up),
                         c->problem[0] ? c->problem : "from the server",
                         h2_code_name(c->sent_goaway_code, name, sizeof name));
        else
            h2_conn_fail(c, HCONN_EREMOTE_DISCONNECTED,
                         "%s: the server ended the HTTP/2 connection (GOAWAY "
                         "%s)",
                         upstream_peer(c->up),
                         h2_code_name(c->goaway_code, name, sizeof name));
    }
}

/* The deferred work: deliveries to clients that caught up, room for
 * bodies, output, and capacity for the pool's waiters. */
static void
h2_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct h2_conn *c = arg;
    struct h2_stream *s;

    h2_enter(c);
    TAILQ_FOREACH(s, &c->streams, entry)
    {
        if (s->ev == NULL)
            continue;
        h2_stream_deliver(s);
        if (s->ev != NULL && s->has_body && !s->send_ended &&
            codec_http2_send_room((struct codec_stream *)s) > 0)
            s->ev->writable(s->arg);
    }
    if (!c->dead)
        h2_flush(c);
    if (c->pool_dirty && !c->dead && !c->closing) {
        c->pool_dirty = false;
        pool_h2_update(c->up);
    }
    h2_leave(c);
}

/* The connection has bytes: nghttp2 parses them all, then streams get
 * theirs and what the session has to say goes out. */
static void
h2_read_cb(struct bufferevent *bev, void *arg)
{
    struct h2_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct h2_stream *s;

    h2_enter(c);
    while (!c->dead && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        ssize_t n;

        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        n = nghttp2_session_mem_recv(c->session, v.iov_base, v.iov_len);
        if (n < 0) {
            h2_conn_fail(c, HCONN_EPROTOCOL_ERROR,
                         "%s: HTTP/2 protocol error: %s", upstream_peer(c->up),
                         n == NGHTTP2_ERR_FLOODED
                             ? "the server flooded the connection"
                             : nghttp2_strerror((int)n));
            break;
        }
        evbuffer_drain(in, (size_t)n);
    }
    TAILQ_FOREACH(s, &c->streams, entry)
    if (s->ev != NULL && evbuffer_get_length(s->in) > 0)
        h2_stream_deliver(s);
    if (!c->dead)
        h2_flush(c);
    h2_leave(c);
}

/* The connection's output drained: more may go, or a drain is over. */
static void
h2_write_cb(struct bufferevent *bev, void *arg)
{
    struct h2_conn *c = arg;

    if (c->draining) {
        /* Our GOAWAY is out: close now. */
        h2_enter(c);
        c->draining = false;
        h2_leave(c);
        return;
    }
    /* Only frames held back by a long output wait for this (a body's
     * room comes from the kick its data provider schedules). */
    if (c->out_full)
        h2_schedule(c);
}

/* The connection closed, failed or stalled: every stream on it fails. */
static void
h2_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct h2_conn *c = arg;
    char name[64];

    h2_enter(c);
    c->draining = false; /* nothing more goes out */
    if (c->goaway)
        h2_conn_fail(c, HCONN_EREMOTE_DISCONNECTED,
                     "%s: the connection closed after GOAWAY %s",
                     upstream_peer(c->up),
                     h2_code_name(c->goaway_code, name, sizeof name));
    else
        h2_conn_fail(c, HCONN_EREMOTE_DISCONNECTED, "%s: %s",
                     upstream_peer(c->up),
                     (what & BEV_EVENT_EOF) ? "the server closed the "
                                              "HTTP/2 connection"
                                            : "HTTP/2 connection error");
    h2_leave(c);
}

/* The connection is over: every stream on it fails (those the server
 * cannot have processed say so, for a retry), then it closes. */
static void
h2_conn_fail(struct h2_conn *c, int code, const char *fmt, ...)
{
    char message[400];
    struct h2_stream *s;
    va_list ap;

    if (c->dead)
        return;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    c->dead = true;
    h2_enter(c);
    TAILQ_FOREACH(s, &c->streams, entry)
    {
        bool refused = c->goaway && s->id > c->goaway_last_id;
        bool nothing = !s->head_done && evbuffer_get_length(s->in) == 0;
        int scode = code;

        if (s->ev == NULL)
            continue;
        s->closed = true;
        if (code == HCONN_EREMOTE_DISCONNECTED && s->head_done)
            scode = HCONN_EINCOMPLETE_READ;
        h2_stream_fail(s, scode, nothing, refused, "%s", message);
    }
    snprintf(c->close_why, sizeof c->close_why, "%s", message);
    c->close_code = code;
    c->closing = true;
    /* A GOAWAY nghttp2 queued (the server broke the protocol) goes out
     * before the socket closes, within a second. */
    if (code != HCONN_EREMOTE_DISCONNECTED && code != HCONN_ETIMEOUT) {
        struct timeval second = {1, 0};
        struct evbuffer *out = bufferevent_get_output(c->bev);
        const uint8_t *data;
        ssize_t n;

        while ((n = nghttp2_session_mem_send(c->session, &data)) > 0)
            evbuffer_add(out, data, (size_t)n);
        if (evbuffer_get_length(out) > 0) {
            c->draining = true;
            bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
            bufferevent_set_timeouts(c->bev, NULL, &second);
            bufferevent_enable(c->bev, EV_WRITE);
        }
    }
    h2_leave(c);
}

/* ---- Setup ------------------------------------------------------------ */

static void
h2_conn_free(void *arg)
{
    struct h2_conn *c = arg;
    struct h2_stream *s;

    while ((s = TAILQ_FIRST(&c->streams)) != NULL) {
        s->closed = true;
        s->ev = NULL;
        h2_reap(c);
    }
    if (c->kick != NULL)
        event_free(c->kick);
    if (c->settings_timer != NULL)
        event_free(c->settings_timer);
    nghttp2_session_del(c->session);
    /* The blocks nghttp2 freed wait only while a session may reuse them. */
    if (--h2_nsessions == 0)
        h2mem_drop();
    free(c);
}

/* The server's SETTINGS did not come within connect_timeout: the
 * connection never became usable. */
static void
h2_settings_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct h2_conn *c = arg;

    h2_enter(c);
    h2_conn_fail(c, HCONN_ETIMEOUT,
                 "%s: no HTTP/2 SETTINGS from the server within %g s",
                 upstream_peer(c->up), c->settings_timeout);
    h2_leave(c);
}

int
codec_http2_attach(struct upstream *up, const struct config *cfg)
{
    struct h2_conn *c = calloc(1, sizeof *c);
    nghttp2_session_callbacks *cbs = NULL;
    nghttp2_option *opt = NULL;
    nghttp2_settings_entry iv[3];
    struct bufferevent *bev = upstream_bev(up);
    int rc = -1;

    if (c == NULL)
        return HCONN_ENO_MEMORY;
    c->up = up;
    c->bev = bev;
    c->window = cfg->stream_buffer_bytes > NGHTTP2_MAX_WINDOW_SIZE
                    ? NGHTTP2_MAX_WINDOW_SIZE
                    : cfg->stream_buffer_bytes;
    c->max_head = cfg->max_response_head_bytes;
    c->cap = cfg->h2_max_concurrent_streams;
    TAILQ_INIT(&c->streams);
    c->kick = event_new(bufferevent_get_base(bev), -1, 0, h2_kick_cb, c);
    c->settings_timer =
        evtimer_new(bufferevent_get_base(bev), h2_settings_timeout_cb, c);
    c->settings_timeout = cfg->connect_timeout;
    if (c->kick == NULL || c->settings_timer == NULL ||
        nghttp2_session_callbacks_new(&cbs) != 0 ||
        nghttp2_option_new(&opt) != 0)
        goto out;
    nghttp2_session_callbacks_set_on_begin_headers_callback(
        cbs, h2_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, h2_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, h2_on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs,
                                                              h2_on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs,
                                                           h2_on_stream_close);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(
        cbs, h2_on_invalid_frame);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, h2_on_frame_send);
    nghttp2_session_callbacks_set_error_callback2(cbs, h2_on_error);
    /* Windows reopen only as clients take bytes; the peer's stream limit
     * is assumed modest until its SETTINGS say. nghttp2's flood limits
     * (queued SETTINGS/PING acks, settings per frame) stay on. */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_peer_max_concurrent_streams(opt,
                                                   H2_INITIAL_PEER_STREAMS);
    nghttp2_option_set_max_send_header_block_length(opt, 1 << 20);
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_option_set_max_settings(opt, 32);
    if (nghttp2_session_client_new3(&c->session, cbs, c, opt, h2mem_get()) != 0)
        goto out;
    iv[0] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
    iv[1] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
                                     (uint32_t)c->window};
    iv[2] = (nghttp2_settings_entry){
        NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
        c->max_head > UINT32_MAX ? UINT32_MAX : (uint32_t)c->max_head};
    if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, 3) != 0 ||
        nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0,
                                              H2_CONN_WINDOW) != 0)
        goto out;
    rc = 0;
out:
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    if (rc < 0) {
        if (c->session != NULL)
            nghttp2_session_del(c->session);
        if (c->kick != NULL)
            event_free(c->kick);
        if (c->settings_timer != NULL)
            event_free(c->settings_timer);
        free(c);
        if (h2_nsessions == 0)
            h2mem_drop();
        return HCONN_ENO_MEMORY;
    }
    h2_nsessions++;
    upstream_set_codec_state(up, c, h2_conn_free);
    bufferevent_setcb(bev, h2_read_cb, h2_write_cb, h2_event_cb, c);
    bufferevent_set_timeouts(bev, NULL, NULL);
    bufferevent_setwatermark(bev, EV_READ, 0, 0);
    bufferevent_setwatermark(bev, EV_WRITE, H2_OUT_HIGH / 4, 0);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    h2_schedule(c); /* the preface and SETTINGS go out */
    {
        struct timeval tv = timeval_of(c->settings_timeout);

        evtimer_add(c->settings_timer, &tv);
    }
    /* Bytes that came with the handshake would raise no new event. */
    if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
        h2_read_cb(bev, c);
    return 0;
}

/* The HTTP/2 state of up, or NULL for an HTTP/1.1 connection. */
static struct h2_conn *
h2_conn_of(const struct upstream *up)
{
    return upstream_codec_state(up);
}

bool
codec_http2_is(const struct upstream *up)
{
    return h2_conn_of(up) != NULL;
}

bool
codec_http2_usable(const struct upstream *up)
{
    struct h2_conn *c = h2_conn_of(up);

    return c != NULL && !c->dead && !c->closing && !c->goaway;
}

bool
codec_http2_ready(const struct upstream *up)
{
    struct h2_conn *c = h2_conn_of(up);

    return c != NULL && c->ready;
}

unsigned
codec_http2_spare(const struct upstream *up)
{
    struct h2_conn *c = h2_conn_of(up);
    uint32_t peer, cap;

    if (!codec_http2_usable(up) || !c->ready)
        return 0;
    peer = nghttp2_session_get_remote_settings(
        c->session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    cap = peer < c->cap ? peer : (uint32_t)c->cap;
    return cap > c->nopen ? cap - c->nopen : 0;
}

unsigned
codec_http2_open_streams(const struct upstream *up)
{
    struct h2_conn *c = h2_conn_of(up);

    return c != NULL ? c->nopen : 0;
}

void
codec_http2_ping(struct upstream *up)
{
    struct h2_conn *c = h2_conn_of(up);

    if (c != NULL && !c->dead &&
        nghttp2_submit_ping(c->session, NGHTTP2_FLAG_NONE, NULL) == 0)
        h2_schedule(c);
}

/* ---- Streams ---------------------------------------------------------- */

/* True for the connection-specific fields HTTP/2 forbids (RFC 9113
 * §8.2.2) and Host, which becomes :authority. */
static bool
h2_dropped_field(const char *name, size_t len, const char *value, size_t vlen)
{
    /* By length first: every request has several fields, few of them
     * any of these. */
    switch (len) {
    case 2: /* TE: only "trailers" may go (the codec refuses others). */
        return memcmp(name, "te", 2) == 0 &&
               !(vlen == 8 && strncasecmp(value, "trailers", 8) == 0);
    case 4:
        return memcmp(name, "host", 4) == 0;
    case 7:
        return memcmp(name, "upgrade", 7) == 0;
    case 10:
        return memcmp(name, "connection", 10) == 0 ||
               memcmp(name, "keep-alive", 10) == 0;
    case 14:
        return memcmp(name, "http2-settings", 14) == 0;
    case 16:
        return memcmp(name, "proxy-connection", 16) == 0;
    case 17:
        return memcmp(name, "transfer-encoding", 17) == 0;
    default:
        return false;
    }
}

/* How a pseudo-header field's name is passed: nghttp2 keeps the fields
 * until their HEADERS frame is sent, a copy of each string (lower-cased)
 * unless told it outlives the frame, as these literals do. Copying the
 * four names was 380 instructions per request, most of it lower-casing
 * them. The other strings are in the caller's copy of the head, gone
 * before the frame goes: copied. */
#define H2_STATIC_NAME NGHTTP2_NV_FLAG_NO_COPY_NAME

/* The request's fields as HTTP/2 sees them, from the HTTP/1.1 head the
 * codec readied (in buf, a copy it lower-cases in place). */
static size_t
h2_request_fields(char *buf, size_t len, const struct wire_request *req,
                  nghttp2_nv *nv, size_t max, char *authority,
                  size_t authority_len)
{
    char *p = buf, *end = buf + len, *line_end, *sp1, *sp2;
    size_t n = 4;
    bool have_authority = false;

    /* The request line: METHOD SP target SP HTTP/1.1 CRLF. The head is
     * the codec's own, every line ending in CRLF and no CR elsewhere
     * (codec_prepare refuses one in any field). */
    line_end = memchr(p, '\r', (size_t)(end - p));
    sp1 = memchr(p, ' ', (size_t)(line_end - p));
    sp2 = memrchr(p, ' ', (size_t)(line_end - p));
    nv[0] = (nghttp2_nv){(uint8_t *)":method", (uint8_t *)p, 7,
                         (size_t)(sp1 - p), H2_STATIC_NAME};
    nv[1] = (nghttp2_nv){
        (uint8_t *)":scheme", (uint8_t *)(req->tls ? "https" : "http"), 7,
        req->tls ? 5 : 4, H2_STATIC_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
    nv[3] = (nghttp2_nv){(uint8_t *)":path", (uint8_t *)sp1 + 1, 5,
                         (size_t)(sp2 - sp1 - 1), H2_STATIC_NAME};
    p = line_end + 2;
    while (p < end && n < max) {
        char *colon, *v, *ve;

        line_end = memchr(p, '\r', (size_t)(end - p));
        if (line_end == NULL || line_end == p)
            break;
        colon = memchr(p, ':', (size_t)(line_end - p));
        if (colon == NULL)
            break;
        for (char *q = p; q < colon; q++)
            if (*q >= 'A' && *q <= 'Z')
                *q = (char)(*q - 'A' + 'a');
        v = colon + 1;
        while (v < line_end && (*v == ' ' || *v == '\t'))
            v++;
        ve = line_end;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        if ((size_t)(colon - p) == 4 && memcmp(p, "host", 4) == 0 &&
            !have_authority) {
            nv[2] = (nghttp2_nv){(uint8_t *)":authority", (uint8_t *)v, 10,
                                 (size_t)(ve - v), H2_STATIC_NAME};
            have_authority = true;
        }
        if (!h2_dropped_field(p, (size_t)(colon - p), v, (size_t)(ve - v)))
            nv[n++] =
                (nghttp2_nv){(uint8_t *)p, (uint8_t *)v, (size_t)(colon - p),
                             (size_t)(ve - v), NGHTTP2_NV_FLAG_NONE};
        p = line_end + 2;
    }
    if (!have_authority) {
        /* skip_host: the authority is still the origin's. */
        bool v6 = strchr(req->host, ':') != NULL;
        bool dflt = req->port == (req->tls ? 443 : 80);

        if (dflt)
            snprintf(authority, authority_len, v6 ? "[%s]" : "%s", req->host);
        else
            snprintf(authority, authority_len, v6 ? "[%s]:%u" : "%s:%u",
                     req->host, req->port);
        nv[2] = (nghttp2_nv){(uint8_t *)":authority", (uint8_t *)authority, 10,
                             strlen(authority), H2_STATIC_NAME};
    }
    return n;
}

/* A stream's read_timeout passed: it fails alone. */
static void
h2_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct h2_stream *s = arg;
    struct h2_conn *c = s->conn;
    struct timespec now;
    double idle;

    if (s->ev == NULL || s->paused)
        return;
    /* Bytes came since the timer was armed: it runs on from the last. */
    clock_gettime(CLOCK_MONOTONIC, &now);
    idle = (double)(now.tv_sec - s->touched.tv_sec) +
           (double)(now.tv_nsec - s->touched.tv_nsec) / 1e9;
    if (idle >= 0 && idle < s->opt.read_timeout) {
        h2_stream_arm(s, s->opt.read_timeout - idle);
        return;
    }
    h2_enter(c);
    h2_stream_fail(s, HCONN_ETIMEOUT, false, false,
                   "no response bytes from %s for %g s (HTTP/2 stream)",
                   upstream_peer(c->up), s->opt.read_timeout);
    h2_leave(c);
}

struct codec_stream *
codec_http2_open(struct upstream *up, const struct codec_request *cr,
                 const struct codec_options *opt, const struct codec_events *ev,
                 void *arg)
{
    struct h2_conn *c = h2_conn_of(up);
    struct h2_stream *s = h2_stream_new(c);
    size_t max = cr->req->nheaders + 8, n;
    /* Common requests fit on the stack (nghttp2 copies the fields). */
    nghttp2_nv nv_stack[H2_STACK_FIELDS];
    char head_stack[H2_STACK_HEAD];
    nghttp2_nv *nv =
        max <= H2_STACK_FIELDS ? nv_stack : calloc(max, sizeof *nv);
    char *head = cr->head_len < sizeof head_stack ? head_stack
                                                  : malloc(cr->head_len + 1);
    char authority[300];
    nghttp2_data_provider prd;
    int32_t id = -1;

    if (s != NULL) {
        s->h2 = true;
        s->conn = c;
        s->ev = ev;
        s->arg = arg;
        s->opt = *opt;
        s->head_request = cr->head_request;
        s->has_body = cr->req->body != WIRE_BODY_NONE;
        s->length = cr->req->body != WIRE_BODY_NONE ? cr->length : 0;
        s->resp_length = -1;
    }
    if (s == NULL || nv == NULL || head == NULL)
        goto fail;
    memcpy(head, cr->head, cr->head_len);
    head[cr->head_len] = '\0';
    n = h2_request_fields(head, cr->head_len, cr->req, nv, max, authority,
                          sizeof authority);
    prd.source.ptr = s;
    prd.read_callback = h2_read_body;
    id = nghttp2_submit_request(c->session, NULL, nv, n,
                                s->has_body ? &prd : NULL, s);
    if (id < 0) {
        log_warn("upstream %lu: cannot open an HTTP/2 stream: %s",
                 upstream_id(up), nghttp2_strerror(id));
        goto fail;
    }
    if (nv != nv_stack)
        free(nv);
    if (head != head_stack)
        free(head);
    s->id = id;
    c->nopen++;
    TAILQ_INSERT_TAIL(&c->streams, s, entry);
    h2_stream_touch(s);
    h2_schedule(c);
    return (struct codec_stream *)s;

fail:
    if (nv != nv_stack)
        free(nv);
    if (head != head_stack)
        free(head);
    if (s != NULL)
        h2_stream_free(s);
    pool_stream_done(up);
    c->pool_dirty = true;
    h2_schedule(c);
    return NULL;
}

size_t
codec_http2_send_room(const struct codec_stream *cs)
{
    const struct h2_stream *s = h2_stream_of(cs);
    struct h2_conn *c = s->conn;
    int32_t w, cw;
    size_t room, held = evbuffer_get_length(s->out);

    if (s->ev == NULL || s->closed || c->dead || s->send_ended)
        return 0;
    w = nghttp2_session_get_stream_remote_window_size(c->session, s->id);
    cw = nghttp2_session_get_remote_window_size(c->session);
    if (w < 0 || cw < 0)
        return 0;
    room = (size_t)(w < cw ? w : cw);
    if (room > s->opt.window)
        room = s->opt.window;
    return room > held ? room - held : 0;
}

uint64_t
codec_http2_body_sent(const struct codec_stream *cs)
{
    return h2_stream_of(cs)->body_sent;
}

const char *
codec_http2_errmsg(const struct codec_stream *cs)
{
    return h2_stream_of(cs)->errmsg;
}

/* Lets the data provider run again with what was queued. */
static void
h2_stream_wake(struct h2_stream *s)
{
    if (s->deferred && !s->closed && !s->conn->dead) {
        s->deferred = false;
        nghttp2_session_resume_data(s->conn->session, s->id);
    }
    h2_schedule(s->conn);
}

int
codec_http2_send_data(struct codec_stream *cs, struct evbuffer *body,
                      size_t off, size_t n, bool retain, ssize_t *moved)
{
    struct h2_stream *s = h2_stream_of(cs);

    *moved = -1;
    if (s->length >= 0 && s->body_sent + n > (uint64_t)s->length) {
        snprintf(s->errmsg, sizeof s->errmsg,
                 "request body runs past its declared length of %lld bytes",
                 (long long)s->length);
        return HCONN_EBODY_LENGTH;
    }
    if (retain) {
        if (!codec_copy_body(body, s->out, off, n))
            goto nomem;
    } else {
        int got = evbuffer_remove_buffer(body, s->out, n);

        *moved = got > 0 ? got : 0;
        if (got != (int)n)
            goto nomem;
    }
    s->body_sent += n;
    h2_stream_wake(s);
    return 0;
nomem:
    snprintf(s->errmsg, sizeof s->errmsg,
             "out of memory queueing the request body");
    return HCONN_ENO_MEMORY;
}

int
codec_http2_send_end(struct codec_stream *cs)
{
    struct h2_stream *s = h2_stream_of(cs);

    if (s->length >= 0 && s->body_sent != (uint64_t)s->length) {
        snprintf(s->errmsg, sizeof s->errmsg,
                 "request body ended after %llu of %lld declared bytes",
                 (unsigned long long)s->body_sent, (long long)s->length);
        return HCONN_EBODY_LENGTH;
    }
    s->send_ended = true;
    h2_stream_wake(s);
    return 0;
}

void
codec_http2_pause(struct codec_stream *cs)
{
    struct h2_stream *s = h2_stream_of(cs);

    s->paused = true;
    h2_stream_touch(s);
}

void
codec_http2_resume(struct codec_stream *cs)
{
    struct h2_stream *s = h2_stream_of(cs);

    if (!s->paused)
        return;
    s->paused = false;
    h2_stream_touch(s);
    h2_schedule(s->conn); /* delivers what is held */
}

void
codec_http2_abort(struct codec_stream *cs)
{
    struct h2_stream *s = h2_stream_of(cs);
    struct h2_conn *c;

    if (s == NULL)
        return;
    c = s->conn;
    h2_enter(c);
    h2_detach(s, NGHTTP2_CANCEL);
    h2_leave(c);
}
