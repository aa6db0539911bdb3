/*
 * test-h2mem.c — the allocator hconnd gives nghttp2 (daemon/h2mem.c): a
 * freed small block serves the next request of its size class, whole;
 * calloc zeroes a reused block; realloc keeps the bytes and moves the
 * block to its new size's class; what is kept is bounded per class and
 * in all; large blocks and a dropped cache go back to malloc; and with
 * caching off nothing is kept. An nghttp2 session made with it runs a
 * request and its response.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>

#include "h2mem.h"

/* Each test starts with caching on and nothing kept. */
static int
setup(void **state)
{
    h2mem_set_caching(true);
    h2mem_drop();
    return 0;
}

static int
teardown(void **state)
{
    h2mem_drop();
    return 0;
}

static void
test_freed_block_serves_its_class(void **state)
{
    nghttp2_mem *m = h2mem_get();

    for (size_t n = 1; n <= H2MEM_MAX_BLOCK; n += 7) {
        void *p = m->malloc(n, m->mem_user_data);
        void *q;

        assert_non_null(p);
        /* The whole class is the caller's (AddressSanitizer checks). */
        memset(p, 0xa5, (n + 15) / 16 * 16);
        m->free(p, m->mem_user_data);
        assert_true(h2mem_cached_bytes() > 0);
        /* Any request of the same 16-byte class takes it back, whole. */
        q = m->malloc((n + 15) / 16 * 16, m->mem_user_data);
        assert_ptr_equal(q, p);
        assert_int_equal(h2mem_cached_bytes(), 0);
        memset(q, 0x5a, (n + 15) / 16 * 16);
        m->free(q, m->mem_user_data);
        h2mem_drop();
    }
}

static void
test_calloc_zeroes_a_reused_block(void **state)
{
    nghttp2_mem *m = h2mem_get();
    unsigned char *p = m->malloc(100, m->mem_user_data), *q;

    memset(p, 0xff, 100);
    m->free(p, m->mem_user_data);
    q = m->calloc(4, 25, m->mem_user_data);
    assert_ptr_equal(q, p);
    for (size_t i = 0; i < 100; i++)
        assert_int_equal(q[i], 0);
    m->free(q, m->mem_user_data);
    /* An overflowing count is refused. */
    assert_null(m->calloc(SIZE_MAX / 2, 3, m->mem_user_data));
}

static void
test_realloc_keeps_the_bytes(void **state)
{
    nghttp2_mem *m = h2mem_get();
    char *p = m->realloc(NULL, 40, m->mem_user_data);

    assert_non_null(p);
    memcpy(p, "0123456789012345678901234567890123456789", 40);
    p = m->realloc(p, 4000, m->mem_user_data);
    assert_non_null(p);
    assert_memory_equal(p, "0123456789012345678901234567890123456789", 40);
    /* Too large to keep: straight back to malloc. */
    m->free(p, m->mem_user_data);
    assert_int_equal(h2mem_cached_bytes(), 0);
}

/* A block realloc'd to n bytes joins n's class: freed, it serves the next
 * request of that class, and counts as that class's size. (Classed by
 * malloc's usable size, a block realloc'd to 100 bytes, 104 usable, went
 * to the class of 96, out of reach of requests of 97 to 112 bytes.) */
static void
test_realloc_moves_the_block_to_its_class(void **state)
{
    nghttp2_mem *m = h2mem_get();

    for (size_t n = 1; n <= H2MEM_MAX_BLOCK; n++) {
        size_t size = (n + 15) / 16 * 16;
        char *p = m->malloc(8, m->mem_user_data), *q;

        assert_non_null(p);
        memcpy(p, "01234567", 8);
        p = m->realloc(p, n, m->mem_user_data);
        assert_non_null(p);
        assert_memory_equal(p, "01234567", n < 8 ? n : 8);
        memset(p, 0x5a, size);
        m->free(p, m->mem_user_data);
        assert_int_equal(h2mem_cached_bytes(), size);
        q = m->malloc(size, m->mem_user_data);
        assert_ptr_equal(q, p);
        assert_int_equal(h2mem_cached_bytes(), 0);
        m->free(q, m->mem_user_data);
        h2mem_drop();
    }
    /* Past the classes and back into one. */
    {
        char *p = m->malloc(H2MEM_MAX_BLOCK + 1, m->mem_user_data), *q;

        assert_non_null(p);
        m->free(p, m->mem_user_data);
        assert_int_equal(h2mem_cached_bytes(), 0);
        p = m->malloc(H2MEM_MAX_BLOCK + 1, m->mem_user_data);
        p = m->realloc(p, 48, m->mem_user_data);
        assert_non_null(p);
        m->free(p, m->mem_user_data);
        assert_int_equal(h2mem_cached_bytes(), 48);
        q = m->malloc(33, m->mem_user_data);
        assert_ptr_equal(q, p);
        m->free(q, m->mem_user_data);
    }
}

static void
test_bounded_per_class_and_in_all(void **state)
{
    nghttp2_mem *m = h2mem_get();
    enum { N = H2MEM_CLASS_BLOCKS + 8 };
    void *p[N];

    for (size_t i = 0; i < N; i++)
        p[i] = m->malloc(64, m->mem_user_data);
    for (size_t i = 0; i < N; i++)
        m->free(p[i], m->mem_user_data);
    assert_true(h2mem_cached_bytes() <= H2MEM_CLASS_BLOCKS * 64 + 64);
    assert_true(h2mem_cached_bytes() >= H2MEM_CLASS_BLOCKS * 64);
    h2mem_drop();
    assert_int_equal(h2mem_cached_bytes(), 0);

    /* Many classes at once: never more than H2MEM_MAX_BYTES kept. */
    {
        enum { K = H2MEM_MAX_BLOCK / 16, EACH = 16 };
        static void *q[K + 1][EACH];

        for (size_t k = 1; k <= K; k++)
            for (size_t i = 0; i < EACH; i++)
                q[k][i] = m->malloc(k * 16, m->mem_user_data);
        for (size_t k = 1; k <= K; k++)
            for (size_t i = 0; i < EACH; i++)
                m->free(q[k][i], m->mem_user_data);
        assert_true(h2mem_cached_bytes() <= H2MEM_MAX_BYTES);
        assert_true(h2mem_cached_bytes() > H2MEM_MAX_BYTES - H2MEM_MAX_BLOCK);
    }
}

static void
test_no_caching_keeps_nothing(void **state)
{
    nghttp2_mem *m = h2mem_get();
    void *p = m->malloc(64, m->mem_user_data);

    m->free(p, m->mem_user_data);
    assert_true(h2mem_cached_bytes() > 0);
    /* Turning it off gives back what was kept. */
    h2mem_set_caching(false);
    assert_int_equal(h2mem_cached_bytes(), 0);
    p = m->malloc(64, m->mem_user_data);
    m->free(p, m->mem_user_data);
    assert_int_equal(h2mem_cached_bytes(), 0);
    h2mem_set_caching(true);
}

/* The client's callbacks: what it has to send goes to a buffer. */
struct wire {
    uint8_t bytes[65536];
    size_t len;
    int status;
    size_t body;
    bool closed;
};

static ssize_t
wire_send(nghttp2_session *session, const uint8_t *data, size_t len, int flags,
          void *user_data)
{
    struct wire *w = user_data;

    assert_true(w->len + len <= sizeof w->bytes);
    memcpy(w->bytes + w->len, data, len);
    w->len += len;
    return (ssize_t)len;
}

static int
wire_header(nghttp2_session *session, const nghttp2_frame *frame,
            const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen,
            uint8_t flags, void *user_data)
{
    struct wire *w = user_data;

    if (nlen == 7 && memcmp(name, ":status", 7) == 0)
        w->status = atoi((const char *)value);
    return 0;
}

static int
wire_data(nghttp2_session *session, uint8_t flags, int32_t id,
          const uint8_t *data, size_t len, void *user_data)
{
    ((struct wire *)user_data)->body += len;
    return 0;
}

static int
wire_close(nghttp2_session *session, int32_t id, uint32_t code, void *user_data)
{
    ((struct wire *)user_data)->closed = code == NGHTTP2_NO_ERROR;
    return 0;
}

/* Moves what from has written to to's input. */
static void
wire_pass(nghttp2_session *from, struct wire *fw, nghttp2_session *to)
{
    fw->len = 0;
    assert_int_equal(nghttp2_session_send(from), 0);
    if (fw->len > 0)
        assert_int_equal(nghttp2_session_mem_recv(to, fw->bytes, fw->len),
                         (ssize_t)fw->len);
}

/* A server that answers every request 200 with a small body. */
static int
server_frame(nghttp2_session *session, const nghttp2_frame *frame,
             void *user_data)
{
    static const nghttp2_nv nv[] = {
        {(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0},
        {(uint8_t *)"x-test", (uint8_t *)"a value long enough to allocate", 6,
         31, 0},
    };

    if (frame->hd.type == NGHTTP2_HEADERS &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        assert_int_equal(
            nghttp2_submit_response(session, frame->hd.stream_id, nv, 2, NULL),
            0);
    return 0;
}

static void
test_a_session_runs_on_it(void **state)
{
    static const nghttp2_nv req[] = {
        {(uint8_t *)":method", (uint8_t *)"GET", 7, 3, 0},
        {(uint8_t *)":scheme", (uint8_t *)"https", 7, 5, 0},
        {(uint8_t *)":authority", (uint8_t *)"example.com", 10, 11, 0},
        {(uint8_t *)":path", (uint8_t *)"/", 5, 1, 0},
    };
    nghttp2_session_callbacks *cbs;
    nghttp2_session *client, *server;
    struct wire cw = {0}, sw = {0};

    assert_int_equal(nghttp2_session_callbacks_new(&cbs), 0);
    nghttp2_session_callbacks_set_send_callback(cbs, wire_send);
    nghttp2_session_callbacks_set_on_header_callback(cbs, wire_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, wire_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, wire_close);
    assert_int_equal(
        nghttp2_session_client_new3(&client, cbs, &cw, NULL, h2mem_get()), 0);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, server_frame);
    assert_int_equal(nghttp2_session_server_new(&server, cbs, &sw), 0);
    nghttp2_session_callbacks_del(cbs);
    assert_int_equal(nghttp2_submit_settings(client, 0, NULL, 0), 0);
    assert_int_equal(nghttp2_submit_settings(server, 0, NULL, 0), 0);
    for (int i = 0; i < 20; i++) {
        cw.status = 0;
        cw.closed = false;
        assert_true(nghttp2_submit_request(client, NULL, req, 4, NULL, NULL) >
                    0);
        for (int turn = 0; turn < 4; turn++) {
            wire_pass(client, &cw, server);
            wire_pass(server, &sw, client);
        }
        assert_int_equal(cw.status, 200);
        assert_true(cw.closed);
    }
    /* The requests' blocks came back to the cache, and were reused. */
    assert_true(h2mem_cached_bytes() > 0);
    nghttp2_session_del(client);
    nghttp2_session_del(server);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_freed_block_serves_its_class,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_calloc_zeroes_a_reused_block,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_realloc_keeps_the_bytes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_realloc_moves_the_block_to_its_class, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounded_per_class_and_in_all,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_caching_keeps_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_session_runs_on_it, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
