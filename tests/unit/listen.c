/*
 * Unit tests for dpc_listen on a real event loop: a listener on a free
 * loopback port hands an accepted connection to its callback; with the
 * process out of descriptors (RLIMIT_NOFILE lowered, the rest taken) it
 * pauses and says so, and a second after descriptors are back it resumes
 * and accepts the client the backlog held.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "dpc_listen.h"
#include "dpc_util.h"

struct owner {
    int accepted_fd;            /* the last one handed over, or -1 */
    int accepted;
    int pauses, resumes;
};

static void on_accept(void *arg, int fd, struct sockaddr *sa, int salen)
{
    struct owner *o = arg;

    (void)sa;
    (void)salen;
    o->accepted++;
    o->accepted_fd = fd;
}

static void on_paused(void *arg, int paused)
{
    struct owner *o = arg;

    if (paused)
        o->pauses++;
    else
        o->resumes++;
}

/* A non-blocking listening socket on 127.0.0.1:0 (as the server makes
 * them: libevent accepts until EAGAIN); its port in *port. */
static int listen_fd(unsigned *port)
{
    struct sockaddr_in in = { .sin_family = AF_INET };
    socklen_t len = sizeof(in);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&in, sizeof(in)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&in, &len), 0);
    *port = ntohs(in.sin_port);
    return fd;
}

static int connect_to(unsigned port)
{
    struct sockaddr_in in = { .sin_family = AF_INET };
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    in.sin_port = htons((uint16_t)port);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&in, sizeof(in)), 0);
    return fd;
}

/* Runs the loop until *count passes want or seconds pass. */
static void loop_until(struct event_base *base, const int *count, int want,
                       double seconds)
{
    double end = dpc_now() + seconds;
    struct timeval tick = { 0, 20 * 1000 };

    while (*count < want && dpc_now() < end) {
        event_base_loopexit(base, &tick);
        event_base_dispatch(base);
    }
}

/* A client connects: the callback gets a non-blocking descriptor. */
static void listen_accepts_test(void **state)
{
    struct event_base *base = event_base_new();
    struct dpc_log_limit lim = { 0 };
    struct owner o = { .accepted_fd = -1 };
    struct dpc_listen_cfg cfg = { .name = "test", .accept = on_accept,
                                  .paused = on_paused, .arg = &o,
                                  .log = &lim };
    char err[DPC_ERRLEN] = "";
    unsigned port;
    struct dpc_listen *l;
    int c;

    l = dpc_listen_new(base, listen_fd(&port), &cfg, err, sizeof(err));
    assert_non_null(l);
    c = connect_to(port);
    loop_until(base, &o.accepted, 1, 5);
    assert_int_equal(o.accepted, 1);
    assert_true(fcntl(o.accepted_fd, F_GETFL) & O_NONBLOCK);
    assert_int_equal(o.pauses, 0);
    close(o.accepted_fd);
    close(c);
    dpc_listen_free(l);
    event_base_free(base);
}

/* Out of descriptors: paused, told, nothing accepted; descriptors back:
 * resumed a second later and the waiting client accepted. */
static void listen_emfile_pauses_test(void **state)
{
    struct event_base *base = event_base_new();
    struct dpc_log_limit lim = { 0 };
    struct owner o = { .accepted_fd = -1 };
    struct dpc_listen_cfg cfg = { .name = "test", .accept = on_accept,
                                  .paused = on_paused, .arg = &o,
                                  .log = &lim };
    struct rlimit old, low;
    char err[DPC_ERRLEN] = "";
    int taken[256], ntaken = 0, c;
    unsigned port;
    struct dpc_listen *l;

    l = dpc_listen_new(base, listen_fd(&port), &cfg, err, sizeof(err));
    assert_non_null(l);
    c = connect_to(port);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)c + 64 < old.rlim_cur ? (rlim_t)c + 64
                                                 : old.rlim_cur;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    while (ntaken < 256 && (taken[ntaken] = dup(0)) >= 0)
        ntaken++;
    assert_true(ntaken < 256);      /* EMFILE reached */
    loop_until(base, &o.pauses, 1, 5);
    assert_int_equal(o.pauses, 1);
    assert_true(dpc_listen_paused(l));
    assert_int_equal(o.accepted, 0);
    while (ntaken > 0)
        close(taken[--ntaken]);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    loop_until(base, &o.accepted, 1, 5);
    assert_int_equal(o.resumes, 1);
    assert_false(dpc_listen_paused(l));
    assert_int_equal(o.accepted, 1);
    close(o.accepted_fd);
    close(c);
    dpc_listen_free(l);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(listen_accepts_test),
        cmocka_unit_test(listen_emfile_pauses_test),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
