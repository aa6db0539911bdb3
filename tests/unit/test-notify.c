/*
 * test-notify.c — the sd_notify client (daemon/notify.c): the datagrams
 * it sends to a path and to an abstract socket, and the values of
 * $NOTIFY_SOCKET it refuses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "hconn_error.h"
#include "notify.h"

/* A datagram socket standing in for the service manager's. */
struct manager {
    int fd;
    char dir[64];   /* temp dir of a path socket, "" for abstract */
    char env[128];  /* the NOTIFY_SOCKET value that names it */
    char path[128]; /* the socket file, "" for abstract */
};

static void
manager_open(struct manager *m, int abstract)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    socklen_t len;

    memset(m, 0, sizeof *m);
    m->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(m->fd >= 0);
    if (abstract) {
        int n = snprintf(m->env, sizeof m->env, "@hconn-test-notify-%ld",
                         (long)getpid());

        memcpy(sun.sun_path, m->env, (size_t)n);
        sun.sun_path[0] = '\0';
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n);
    } else {
        snprintf(m->dir, sizeof m->dir, "/tmp/hconn-test-notify-XXXXXX");
        assert_non_null(mkdtemp(m->dir));
        snprintf(m->path, sizeof m->path, "%s/notify", m->dir);
        snprintf(m->env, sizeof m->env, "%s", m->path);
        assert_true(strlen(m->path) < sizeof sun.sun_path);
        memcpy(sun.sun_path, m->path, strlen(m->path) + 1);
        len = sizeof sun;
    }
    assert_int_equal(bind(m->fd, (struct sockaddr *)&sun, len), 0);
    setenv("NOTIFY_SOCKET", m->env, 1);
}

/* The next datagram, NUL-terminated; "" when none is waiting. */
static const char *
manager_receive(struct manager *m)
{
    static char buf[1024];
    ssize_t n = recv(m->fd, buf, sizeof buf - 1, MSG_DONTWAIT);

    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static void
manager_close(struct manager *m)
{
    close(m->fd);
    if (m->path[0] != '\0') {
        unlink(m->path);
        rmdir(m->dir);
    }
    unsetenv("NOTIFY_SOCKET");
}

static void
test_ready_and_stopping_to_a_path(void **state)
{
    struct manager m;

    (void)state;
    manager_open(&m, 0);
    notify_ready("listening on %s", "/run/x.sock");
    assert_string_equal(manager_receive(&m),
                        "READY=1\nSTATUS=listening on /run/x.sock");
    notify_stopping();
    assert_string_equal(
        manager_receive(&m),
        "STOPPING=1\nSTATUS=stopping: draining in-flight responses");
    assert_string_equal(manager_receive(&m), "");
    manager_close(&m);
}

static void
test_abstract_socket(void **state)
{
    struct manager m;

    (void)state;
    manager_open(&m, 1);
    assert_int_equal(notify_send("STATUS=abstract"), 1);
    assert_string_equal(manager_receive(&m), "STATUS=abstract");
    manager_close(&m);
}

/* A status is one line: a newline in it must not start another
 * assignment (a status naming a file could otherwise say READY=1). */
static void
test_status_stays_one_line(void **state)
{
    struct manager m;

    (void)state;
    manager_open(&m, 0);
    notify_status("a\nREADY=1");
    assert_string_equal(manager_receive(&m), "STATUS=a READY=1");
    manager_close(&m);
}

static void
test_reloading_carries_a_timestamp(void **state)
{
    struct manager m;
    const char *msg;
    unsigned long long usec = 0;

    (void)state;
    manager_open(&m, 0);
    notify_reloading();
    msg = manager_receive(&m);
    assert_true(strncmp(msg, "RELOADING=1\nMONOTONIC_USEC=", 27) == 0);
    assert_int_equal(sscanf(msg + 27, "%llu", &usec), 1);
    assert_true(usec > 0);
    notify_ready("reloaded");
    assert_string_equal(manager_receive(&m), "READY=1\nSTATUS=reloaded");
    manager_close(&m);
}

static void
test_unset_or_bad_socket(void **state)
{
    char longname[200];

    (void)state;
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(notify_send("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    assert_int_equal(notify_send("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "relative/notify", 1);
    assert_int_equal(notify_send("READY=1"), HCONN_EINVALID_ARGUMENT);
    setenv("NOTIFY_SOCKET", "@", 1);
    assert_int_equal(notify_send("READY=1"), HCONN_EINVALID_ARGUMENT);
    memset(longname, 'a', sizeof longname - 1);
    longname[0] = '/';
    longname[sizeof longname - 1] = '\0';
    setenv("NOTIFY_SOCKET", longname, 1);
    assert_int_equal(notify_send("READY=1"), HCONN_EINVALID_ARGUMENT);
    /* Nobody listens there: an error for the caller, not a crash. */
    setenv("NOTIFY_SOCKET", "/nonexistent/hconn-notify", 1);
    assert_int_equal(notify_send("READY=1"), HCONN_EIO_ERROR);
    unsetenv("NOTIFY_SOCKET");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_and_stopping_to_a_path),
        cmocka_unit_test(test_abstract_socket),
        cmocka_unit_test(test_status_stays_one_line),
        cmocka_unit_test(test_reloading_carries_a_timestamp),
        cmocka_unit_test(test_unset_or_bad_socket),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
