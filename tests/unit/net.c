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

/* A peer that closes: -1, "connection closed by the server", ECONNRESET. */
static void net_xfer_closed_test(void **state)
{
    char err[DPC_ERRLEN] = "", buf[8];
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(write(sv[1], "abc", 3), 3);
    close(sv[1]);
    errno = 0;
    assert_int_equal(dpc_net_xfer(sv[0], buf, sizeof(buf), 0, 1000, "peer",
                                  err, sizeof(err)), -1);
    assert_int_equal(errno, ECONNRESET);
    assert_contains(err, "peer: connection closed by the server");
    close(sv[0]);
}

/* A silent peer: -1 after the timeout, ETIMEDOUT. */
static void net_xfer_silent_test(void **state)
{
    char err[DPC_ERRLEN] = "", buf[8];
    double t0 = dpc_now();
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(dpc_net_xfer(sv[0], buf, sizeof(buf), 0, 100, "peer",
                                  err, sizeof(err)), -1);
    assert_int_equal(errno, ETIMEDOUT);
    assert_contains(err, "no answer in time");
    assert_true(dpc_now() - t0 >= 0.09);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(net_backoff_bounds_test),
        cmocka_unit_test(net_backoff_spread_test),
        cmocka_unit_test(net_xfer_closed_test),
        cmocka_unit_test(net_xfer_silent_test),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
