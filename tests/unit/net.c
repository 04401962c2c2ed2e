/*
 * Unit tests for dpc_net: the retry pause (growing, capped, half of it
 * jitter) and how dpc_net_xfer() reports a peer that closed (errno
 * ECONNRESET) or stayed silent (ETIMEDOUT).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "dpc_net.h"
#include "dpc_util.h"

#define assert_contains(hay, needle)                                       \
    do {                                                                   \
        if (strstr((hay), (needle)) == NULL)                               \
            fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));   \
    } while (0)

/* Pauses lie in [base/2, base], base doubling from the first to the cap. */
static void net_backoff_bounds_test(void **state)
{
    static const uint32_t rs[] = { 0, 1, 7, 12345, 0x7fffffff, 0xffffffff };
    unsigned base = DPC_NET_BACKOFF_FIRST_MS;

    for (unsigned attempt = 0; attempt < 40; attempt++) {
        for (size_t i = 0; i < sizeof(rs) / sizeof(*rs); i++) {
            unsigned p = dpc_net_backoff_ms(attempt, rs[i]);

            if (p < base / 2 || p > base)
                fail_msg("attempt %u, r %u: %u ms outside [%u, %u]", attempt,
                         rs[i], p, base / 2, base);
        }
        if (base * 2 <= DPC_NET_BACKOFF_MAX_MS)
            base *= 2;
        else
            base = DPC_NET_BACKOFF_MAX_MS;
    }
}

/* The jitter spreads pauses over their whole range. */
static void net_backoff_spread_test(void **state)
{
    unsigned lo = UINT32_MAX, hi = 0;

    for (uint32_t r = 0; r < 2000; r++) {
        unsigned p = dpc_net_backoff_ms(10, r * 2654435761u);

        lo = p < lo ? p : lo;
        hi = p > hi ? p : hi;
    }
    assert_true(lo <= DPC_NET_BACKOFF_MAX_MS / 2 + 20);
    assert_true(hi >= DPC_NET_BACKOFF_MAX_MS - 20);
}

/* A peer that closes: -DPC_E_CLOSED, "connection closed by the server",
 * ECONNRESET. */
static void net_xfer_closed_test(void **state)
{
    char err[DPC_ERRLEN] = "", buf[8];
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(write(sv[1], "abc", 3), 3);
    close(sv[1]);
    errno = 0;
    assert_int_equal(dpc_net_xfer(sv[0], buf, sizeof(buf), 0, 1000, "peer",
                                  err, sizeof(err)), -DPC_E_CLOSED);
    assert_int_equal(errno, ECONNRESET);
    assert_contains(err, "peer: connection closed by the server");
    close(sv[0]);
}

/* A silent peer: -DPC_E_TIMEOUT after the timeout, ETIMEDOUT. */
static void net_xfer_silent_test(void **state)
{
    char err[DPC_ERRLEN] = "", buf[8];
    double t0 = dpc_now();
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(dpc_net_xfer(sv[0], buf, sizeof(buf), 0, 100, "peer",
                                  err, sizeof(err)), -DPC_E_TIMEOUT);
    assert_int_equal(errno, ETIMEDOUT);
    assert_contains(err, "no answer in time");
    assert_true(dpc_now() - t0 >= 0.09);
    close(sv[0]);
    close(sv[1]);
}

/* dpc_errc returns minus its code and formats the text; dpc_errf is
 * DPC_E_OTHER, -1; dpc_errcode_of reads a result back, and every code has
 * its own name. */
static void net_errcode_plumbing_test(void **state)
{
    char err[DPC_ERRLEN] = "";

    assert_int_equal(dpc_errc(err, sizeof(err), DPC_E_NO_ROOM, "no room for "
                              "%d bytes", 42), -DPC_E_NO_ROOM);
    assert_string_equal(err, "no room for 42 bytes");
    assert_int_equal(dpc_errc(NULL, 0, DPC_E_TIMEOUT, "x"), -DPC_E_TIMEOUT);
    assert_int_equal(dpc_errf(err, sizeof(err), "plain"), -1);
    assert_int_equal(dpc_errcode_of(-1), DPC_E_OTHER);
    assert_int_equal(dpc_errc(err, sizeof(err), DPC_E_OK, "ok?"), -1);
    assert_int_equal(dpc_errcode_of(0), DPC_E_OK);
    assert_int_equal(dpc_errcode_of(7), DPC_E_OK);
    assert_int_equal(dpc_errcode_of(-DPC_E_AUTH), DPC_E_AUTH);
    assert_int_equal(dpc_errcode_of(-1000), DPC_E_OTHER);
    for (int a = 0; a < DPC_E_COUNT; a++)
        for (int b = a + 1; b < DPC_E_COUNT; b++)
            assert_string_not_equal(dpc_errcode_name(a),
                                    dpc_errcode_name(b));
    assert_string_equal(dpc_errcode_name(DPC_E_TIMEOUT), "timeout");
}

/* Names: "host:port", IPv6 addresses in brackets; a numeric host
 * resolves to itself once, a name that does not resolve is refused with
 * the name in the reason. */
static void net_hostport_resolve_test(void **state)
{
    char buf[64], err[DPC_ERRLEN] = "", addrs[4][DPC_NET_ADDRLEN];

    dpc_net_hostport(buf, sizeof(buf), "127.0.0.1", 6668);
    assert_string_equal(buf, "127.0.0.1:6668");
    dpc_net_hostport(buf, sizeof(buf), "::1", 6668);
    assert_string_equal(buf, "[::1]:6668");
    dpc_net_hostport(buf, sizeof(buf), "example.org", 1);
    assert_string_equal(buf, "example.org:1");
    assert_int_equal(dpc_net_resolve("127.0.0.1", 6668, addrs, 4, err,
                                     sizeof(err)), 1);
    assert_string_equal(addrs[0], "127.0.0.1");
    assert_int_equal(dpc_net_resolve("::1", 6668, addrs, 4, err,
                                     sizeof(err)), 1);
    assert_string_equal(addrs[0], "::1");
    assert_true(dpc_net_resolve("localhost", 6668, addrs, 4, err,
                                sizeof(err)) >= 1);
    assert_int_equal(dpc_net_resolve("no-such-host.invalid", 6668, addrs, 4,
                                     err, sizeof(err)), -DPC_E_INVALID);
    assert_contains(err, "no-such-host.invalid:6668");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(net_errcode_plumbing_test),
        cmocka_unit_test(net_backoff_bounds_test),
        cmocka_unit_test(net_backoff_spread_test),
        cmocka_unit_test(net_xfer_closed_test),
        cmocka_unit_test(net_xfer_silent_test),
        cmocka_unit_test(net_hostport_resolve_test),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
