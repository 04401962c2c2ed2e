/*
 * Unit tests for dpc_metrics on a real event loop: observations land in
 * the right buckets, cumulative on output and ending at +Inf equal to
 * _count; a timer counts once; the owner's families come first; another
 * path is 404; a name for a host is refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "dpc_metrics.h"
#include "dpc_util.h"

static void collect(void *arg, struct dpc_metrics_out *out)
{
    char v[64];

    (void)arg;
    dpc_metrics_family(out, "things", "gauge", "Things.");
    dpc_metrics_sample_u64(out, "things", NULL, 42);
    snprintf(v, sizeof(v), "where=\"%s\"",
             dpc_metrics_escape("a\"b\\c", (char[32]){ 0 }, 32));
    dpc_metrics_sample(out, "things", v, 0.5);
}

static unsigned port_of(const struct dpc_metrics *m)
{
    const char *colon = strrchr(dpc_metrics_addr(m), ':');

    assert_non_null(colon);
    return (unsigned)atoi(colon + 1);
}

/* GET path from the endpoint, the loop run until the reply is whole
 * (Connection: close), at most 5 s; the reply in a new buffer. */
static char *get(struct event_base *base, unsigned port, const char *path)
{
    struct sockaddr_in in = { .sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port) };
    char req[128], *buf = calloc(1, 1 << 16);
    size_t len = 0;
    double end = dpc_now() + 5;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_non_null(buf);
    assert_int_equal(connect(fd, (struct sockaddr *)&in, sizeof(in)), 0);
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    while (dpc_now() < end) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        ssize_t n;

        event_base_loop(base, EVLOOP_NONBLOCK);
        if (poll(&p, 1, 10) <= 0)
            continue;
        n = read(fd, buf + len, (1 << 16) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return buf;
}

/* 50 us, 3 ms and 20 s: le 0.00005, le 0.005, and only +Inf. */
static void metrics_buckets_test(void **state)
{
    struct event_base *base = event_base_new();
    char err[DPC_ERRLEN], *r;
    struct dpc_metrics *m = dpc_metrics_new(base, "127.0.0.1", 0, collect,
                                            NULL, err, sizeof(err));

    (void)state;
    assert_non_null(m);
    dpc_metrics_observe(m, DPC_METRICS_NATIVE_GET, 0.00005);
    dpc_metrics_observe(m, DPC_METRICS_NATIVE_GET, 0.003);
    dpc_metrics_observe(m, DPC_METRICS_NATIVE_GET, 20);
    r = get(base, port_of(m), "/metrics");
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    assert_non_null(strstr(r, "text/plain; version=0.0.4"));
    assert_non_null(strstr(r, "\r\n\r\n# HELP magick_dpc_things Things.\n"
                              "# TYPE magick_dpc_things gauge\n"
                              "magick_dpc_things 42\n"
                              "magick_dpc_things{where=\"a\\\"b\\\\c\"} 0.5\n"));
#define B "magick_dpc_request_duration_seconds_bucket{protocol=\"native\"," \
          "op=\"get\","
    assert_non_null(strstr(r, B "le=\"0.00001\"} 0\n"));
    assert_non_null(strstr(r, B "le=\"0.00005\"} 1\n"));
    assert_non_null(strstr(r, B "le=\"0.0001\"} 1\n"));
    assert_non_null(strstr(r, B "le=\"0.0025\"} 1\n"));
    assert_non_null(strstr(r, B "le=\"0.005\"} 2\n"));
    assert_non_null(strstr(r, B "le=\"10\"} 2\n"));
    assert_non_null(strstr(r, B "le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(r, "magick_dpc_request_duration_seconds_count{"
                              "protocol=\"native\",op=\"get\"} 3\n"));
    assert_non_null(strstr(r, "magick_dpc_request_duration_seconds_count{"
                              "protocol=\"stock\",op=\"read\"} 0\n"));
    assert_non_null(strstr(r, "# TYPE magick_dpc_request_duration_seconds "
                              "histogram\n"));
    free(r);
    dpc_metrics_free(m);
    event_base_free(base);
}

/* begin/end counts one request; a second end, or one with no metrics,
 * counts nothing. */
static void metrics_timer_test(void **state)
{
    struct event_base *base = event_base_new();
    char err[DPC_ERRLEN], *r;
    struct dpc_metrics *m = dpc_metrics_new(base, "127.0.0.1", 0, collect,
                                            NULL, err, sizeof(err));
    struct dpc_metrics_timer t = { .op = -1 }, u = { .op = -1 };

    (void)state;
    assert_non_null(m);
    dpc_metrics_end(m, &t);                     /* nothing timed */
    dpc_metrics_begin(m, &t, DPC_METRICS_STOCK_WRITE);
    dpc_metrics_end(m, &t);
    dpc_metrics_end(m, &t);                     /* once only */
    dpc_metrics_begin(NULL, &u, DPC_METRICS_STOCK_WRITE);
    dpc_metrics_end(NULL, &u);
    assert_int_equal(u.op, -1);
    r = get(base, port_of(m), "/metrics");
    assert_non_null(strstr(r, "magick_dpc_request_duration_seconds_count{"
                              "protocol=\"stock\",op=\"write\"} 1\n"));
    free(r);
    dpc_metrics_free(m);
    event_base_free(base);
}

/* Any path but /metrics: 404. */
static void metrics_not_found_test(void **state)
{
    struct event_base *base = event_base_new();
    char err[DPC_ERRLEN], *r;
    struct dpc_metrics *m = dpc_metrics_new(base, "127.0.0.1", 0, collect,
                                            NULL, err, sizeof(err));

    (void)state;
    assert_non_null(m);
    r = get(base, port_of(m), "/metricsx");
    assert_non_null(strstr(r, "HTTP/1.1 404"));
    assert_null(strstr(r, "magick_dpc_"));
    free(r);
    dpc_metrics_free(m);
    event_base_free(base);
}

/* A host name (not numeric) is refused, with a reason. */
static void metrics_bad_address_test(void **state)
{
    struct event_base *base = event_base_new();
    char err[DPC_ERRLEN] = "";

    (void)state;
    assert_null(dpc_metrics_new(base, "localhost", 0, collect, NULL, err,
                                sizeof(err)));
    assert_non_null(strstr(err, "numeric"));
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metrics_buckets_test),
        cmocka_unit_test(metrics_timer_test),
        cmocka_unit_test(metrics_not_found_test),
        cmocka_unit_test(metrics_bad_address_test),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
