/*
 * Unit tests for dpc_systemd: a notification reaches a datagram socket
 * named by NOTIFY_SOCKET, by path and abstract name; no NOTIFY_SOCKET is
 * no error, a relative one is; passed sockets are taken from descriptor 3
 * with their names, only for this process, and the variables are removed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "dpc_systemd.h"
#include "dpc_util.h"

/* A datagram socket bound at name ('@' for abstract); returns it. */
static int bound(const char *name)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    size_t len = strlen(name);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

    assert_true(fd >= 0 && len < sizeof(sun.sun_path));
    memcpy(sun.sun_path, name, len);
    if (name[0] == '@')
        sun.sun_path[0] = '\0';
    else
        unlink(name);
    assert_int_equal(bind(fd, (struct sockaddr *)&sun,
                          (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
                                      len + (name[0] != '@'))), 0);
    return fd;
}

static void expect_datagram(int fd, const char *want)
{
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

    assert_true(n >= 0);
    buf[n] = '\0';
    assert_string_equal(buf, want);
}

/* A path: the state arrives as one datagram. */
static void systemd_notify_path_test(void **state)
{
    char path[64], err[DPC_ERRLEN];
    int fd;

    (void)state;
    snprintf(path, sizeof(path), "/tmp/dpc-notify-%d", (int)getpid());
    fd = bound(path);
    setenv("NOTIFY_SOCKET", path, 1);
    assert_int_equal(dpc_systemd_notify("READY=1\nSTATUS=up", err,
                                        sizeof(err)), 0);
    expect_datagram(fd, "READY=1\nSTATUS=up");
    close(fd);
    unlink(path);
    unsetenv("NOTIFY_SOCKET");
}

/* An abstract name, written '@name'. */
static void systemd_notify_abstract_test(void **state)
{
    char name[64], err[DPC_ERRLEN];
    int fd;

    (void)state;
    snprintf(name, sizeof(name), "@dpc-notify-%d", (int)getpid());
    fd = bound(name);
    setenv("NOTIFY_SOCKET", name, 1);
    assert_int_equal(dpc_systemd_notify("STOPPING=1", err, sizeof(err)), 0);
    expect_datagram(fd, "STOPPING=1");
    close(fd);
    unsetenv("NOTIFY_SOCKET");
}

/* None: nothing to do, no error; relative: an error; gone: an error. */
static void systemd_notify_errors_test(void **state)
{
    char err[DPC_ERRLEN];

    (void)state;
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(dpc_systemd_notify("READY=1", err, sizeof(err)), 0);
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    assert_int_equal(dpc_systemd_notify("READY=1", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "NOTIFY_SOCKET"));
    setenv("NOTIFY_SOCKET", "/nonexistent/dpc-notify", 1);
    assert_int_equal(dpc_systemd_notify("READY=1", err, sizeof(err)), -1);
    unsetenv("NOTIFY_SOCKET");
}

static void set_listen_env(const char *pid, const char *n, const char *names)
{
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", n, 1);
    if (names != NULL)
        setenv("LISTEN_FDNAMES", names, 1);
}

/* Two sockets at 3 and 4 for this process: taken, named, close-on-exec,
 * and the variables gone. */
static void systemd_listen_fds_test(void **state)
{
    struct dpc_systemd_fd fds[DPC_SYSTEMD_MAX_FDS];
    char pid[16], err[DPC_ERRLEN];
    int a = socket(AF_INET, SOCK_STREAM, 0), b = socket(AF_UNIX,
                                                        SOCK_STREAM, 0), n, x, y;

    (void)state;
    /* out of the way of 3 and 4 first (either may be a or b), then there */
    x = fcntl(a, F_DUPFD, 10);
    y = fcntl(b, F_DUPFD, 10);
    close(a);
    close(b);
    assert_int_equal(dup2(x, 3), 3);
    assert_int_equal(dup2(y, 4), 4);
    close(x);
    close(y);
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    set_listen_env(pid, "2", "dpc:im7");
    n = dpc_systemd_listen_fds(fds, DPC_SYSTEMD_MAX_FDS, err, sizeof(err));
    assert_int_equal(n, 2);
    assert_int_equal(fds[0].fd, 3);
    assert_int_equal(fds[1].fd, 4);
    assert_string_equal(fds[0].name, "dpc");
    assert_string_equal(fds[1].name, "im7");
    assert_true(fcntl(3, F_GETFD) & FD_CLOEXEC);
    assert_null(getenv("LISTEN_FDS"));
    assert_null(getenv("LISTEN_PID"));
    assert_null(getenv("LISTEN_FDNAMES"));
    /* no names at all: empty ones */
    set_listen_env(pid, "1", NULL);
    assert_int_equal(dpc_systemd_listen_fds(fds, DPC_SYSTEMD_MAX_FDS, err,
                                            sizeof(err)), 1);
    assert_string_equal(fds[0].name, "");
    close(3);
    close(4);
}

/* Another process's sockets, none, malformed, too many. */
static void systemd_listen_fds_refused_test(void **state)
{
    struct dpc_systemd_fd fds[2];
    char pid[16], err[DPC_ERRLEN];

    (void)state;
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    assert_int_equal(dpc_systemd_listen_fds(fds, 2, err, sizeof(err)), 0);
    set_listen_env("1", "1", NULL);
    assert_int_equal(dpc_systemd_listen_fds(fds, 2, err, sizeof(err)), 0);
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    set_listen_env(pid, "1x", NULL);
    assert_int_equal(dpc_systemd_listen_fds(fds, 2, err, sizeof(err)), -1);
    set_listen_env(pid, "-1", NULL);
    assert_int_equal(dpc_systemd_listen_fds(fds, 2, err, sizeof(err)), -1);
    set_listen_env(pid, "3", NULL);
    assert_int_equal(dpc_systemd_listen_fds(fds, 2, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "at most 2"));
    assert_null(getenv("LISTEN_FDS"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(systemd_notify_path_test),
        cmocka_unit_test(systemd_notify_abstract_test),
        cmocka_unit_test(systemd_notify_errors_test),
        cmocka_unit_test(systemd_listen_fds_test),
        cmocka_unit_test(systemd_listen_fds_refused_test),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
