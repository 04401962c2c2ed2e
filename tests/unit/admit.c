/*
 * Unit tests for dpc_admit: a source's share of the handshakes, waiting
 * past it, the global limit, refusal past what one source may hold not yet
 * authenticated, greeting the waiting as handshakes end, source keys (IPv4,
 * IPv6 /64, IPv4-mapped), and many sources coming and going.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include <cmocka.h>

#include "dpc_admit.h"

static struct dpc_admit_key v4(const char *addr)
{
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(9) };
    struct dpc_admit_key k;

    assert_int_equal(inet_pton(AF_INET, addr, &in.sin_addr), 1);
    dpc_admit_key((const struct sockaddr *)&in, &k);
    return k;
}

static struct dpc_admit_key v6(const char *addr)
{
    struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
    struct dpc_admit_key k;

    assert_int_equal(inet_pton(AF_INET6, addr, &in6.sin6_addr), 1);
    dpc_admit_key((const struct sockaddr *)&in6, &k);
    return k;
}

static struct dpc_admit *new_admit(unsigned max, unsigned per, unsigned pend)
{
    struct dpc_admit_cfg cfg = { max, per, pend };
    struct dpc_admit *a = dpc_admit_new(&cfg);

    assert_non_null(a);
    return a;
}

/* One arrival from k with the expected verdict; returns its source. */
static struct dpc_admit_source *arrive(struct dpc_admit *a,
                                       struct dpc_admit_key k,
                                       enum dpc_admit_verdict want)
{
    struct dpc_admit_source *src = (void *)1;

    assert_int_equal(dpc_admit_arrive(a, &k, &src), want);
    if (want == DPC_ADMIT_REFUSE)
        assert_null(src);
    else
        assert_non_null(src);
    return src;
}

/* A source's handshakes beyond its share wait; another source is greeted. */
static void admit_share_then_wait_test(void **state)
{
    struct dpc_admit *a = new_admit(4, 2, 100);
    struct dpc_admit_source *s1, *s2, *s3;

    s1 = arrive(a, v4("10.0.0.1"), DPC_ADMIT_GREET);
    s2 = arrive(a, v4("10.0.0.1"), DPC_ADMIT_GREET);
    assert_ptr_equal(s1, s2);
    arrive(a, v4("10.0.0.1"), DPC_ADMIT_WAIT);
    assert_false(dpc_admit_can_greet(a, s1));
    s3 = arrive(a, v4("10.0.0.2"), DPC_ADMIT_GREET);
    assert_ptr_not_equal(s1, s3);
    assert_int_equal(dpc_admit_handshakes(a), 3);
    assert_int_equal(dpc_admit_waiting(a), 1);
    assert_int_equal(dpc_admit_sources(a), 2);
    assert_false(dpc_admit_full(a));
    dpc_admit_leave(a, s1, 1);
    dpc_admit_leave(a, s1, 0);
    dpc_admit_leave(a, s1, 0);
    dpc_admit_leave(a, s3, 0);
    assert_int_equal(dpc_admit_sources(a), 0);
    dpc_admit_free(a);
}

/* Every slot taken: full, and even a new source waits. */
static void admit_full_test(void **state)
{
    struct dpc_admit *a = new_admit(4, 2, 100);
    struct dpc_admit_source *s1, *s2, *s3;

    s1 = arrive(a, v4("10.0.0.1"), DPC_ADMIT_GREET);
    arrive(a, v4("10.0.0.1"), DPC_ADMIT_GREET);
    s2 = arrive(a, v4("10.0.0.2"), DPC_ADMIT_GREET);
    arrive(a, v4("10.0.0.2"), DPC_ADMIT_GREET);
    assert_true(dpc_admit_full(a));
    s3 = arrive(a, v4("10.0.0.3"), DPC_ADMIT_WAIT);
    assert_false(dpc_admit_can_greet(a, s3));
    /* a slot comes free: the new source may start, full no longer */
    dpc_admit_leave(a, s1, 0);
    assert_false(dpc_admit_full(a));
    assert_true(dpc_admit_can_greet(a, s3));
    dpc_admit_greet(a, s3);
    assert_true(dpc_admit_full(a));
    assert_int_equal(dpc_admit_waiting(a), 0);
    dpc_admit_leave(a, s1, 0);
    dpc_admit_leave(a, s2, 0);
    dpc_admit_leave(a, s2, 0);
    dpc_admit_leave(a, s3, 0);
    assert_int_equal(dpc_admit_handshakes(a), 0);
    assert_int_equal(dpc_admit_sources(a), 0);
    dpc_admit_free(a);
}

/* A source holding max_pending is refused; other sources are not. */
static void admit_refuse_past_pending_test(void **state)
{
    struct dpc_admit *a = new_admit(16, 1, 3);
    struct dpc_admit_source *s1, *s2;

    s1 = arrive(a, v4("192.0.2.9"), DPC_ADMIT_GREET);
    arrive(a, v4("192.0.2.9"), DPC_ADMIT_WAIT);
    arrive(a, v4("192.0.2.9"), DPC_ADMIT_WAIT);
    arrive(a, v4("192.0.2.9"), DPC_ADMIT_REFUSE);
    arrive(a, v4("192.0.2.9"), DPC_ADMIT_REFUSE);
    s2 = arrive(a, v4("192.0.2.10"), DPC_ADMIT_GREET);
    assert_int_equal(dpc_admit_waiting(a), 2);
    /* its handshake ends: one waiting is greeted, one place frees up */
    dpc_admit_leave(a, s1, 0);
    assert_true(dpc_admit_can_greet(a, s1));
    dpc_admit_greet(a, s1);
    arrive(a, v4("192.0.2.9"), DPC_ADMIT_WAIT);
    arrive(a, v4("192.0.2.9"), DPC_ADMIT_REFUSE);
    dpc_admit_leave(a, s1, 0);
    dpc_admit_leave(a, s1, 1);
    dpc_admit_leave(a, s1, 1);
    dpc_admit_leave(a, s2, 0);
    assert_int_equal(dpc_admit_sources(a), 0);
    dpc_admit_free(a);
}

/* A refused arrival from a new source leaves no entry behind. */
static void admit_refused_new_source_test(void **state)
{
    struct dpc_admit *a = new_admit(1, 1, 1);
    struct dpc_admit_source *s1;

    s1 = arrive(a, v4("10.1.1.1"), DPC_ADMIT_GREET);
    arrive(a, v4("10.1.1.1"), DPC_ADMIT_REFUSE);
    assert_int_equal(dpc_admit_sources(a), 1);
    dpc_admit_leave(a, s1, 0);
    assert_int_equal(dpc_admit_sources(a), 0);
    dpc_admit_free(a);
}

/* Zero limits act as 1. */
static void admit_zero_limits_test(void **state)
{
    struct dpc_admit *a = new_admit(0, 0, 0);
    struct dpc_admit_source *s1;

    s1 = arrive(a, v4("10.1.1.1"), DPC_ADMIT_GREET);
    assert_true(dpc_admit_full(a));
    arrive(a, v4("10.1.1.1"), DPC_ADMIT_REFUSE);
    dpc_admit_leave(a, s1, 0);
    dpc_admit_free(a);
}

/* IPv4 by address, IPv6 by /64, IPv4-mapped IPv6 as IPv4. */
static void admit_keys_test(void **state)
{
    struct dpc_admit_key a = v6("2001:db8:1:2::1"),
                         b = v6("2001:db8:1:2:ffff::7"),
                         c = v6("2001:db8:1:3::1"),
                         m = v6("::ffff:192.0.2.1"), d = v4("192.0.2.1"),
                         e = v4("192.0.2.2");
    char buf[DPC_ADMIT_KEY_STRLEN];
    struct sockaddr_un un = { .sun_family = AF_UNIX, .sun_path = "x" };
    struct dpc_admit_key u;

    assert_memory_equal(&a, &b, sizeof(a));
    assert_memory_not_equal(&a, &c, sizeof(a));
    assert_memory_equal(&m, &d, sizeof(m));
    assert_memory_not_equal(&d, &e, sizeof(d));
    dpc_admit_key_str(&a, buf, sizeof(buf));
    assert_string_equal(buf, "2001:db8:1:2::/64");
    dpc_admit_key_str(&m, buf, sizeof(buf));
    assert_string_equal(buf, "192.0.2.1");
    dpc_admit_key((const struct sockaddr *)&un, &u);
    assert_int_equal(u.family, 0);
    dpc_admit_key_str(&u, buf, sizeof(buf));
    assert_string_equal(buf, "unknown");
}

/* Two addresses of one /64 share one source's share. */
static void admit_v6_prefix_shares_test(void **state)
{
    struct dpc_admit *a = new_admit(8, 1, 8);
    struct dpc_admit_source *s1, *s2, *s3;

    s1 = arrive(a, v6("2001:db8::1"), DPC_ADMIT_GREET);
    s2 = arrive(a, v6("2001:db8::2"), DPC_ADMIT_WAIT);
    assert_ptr_equal(s1, s2);
    s3 = arrive(a, v6("2001:db8:0:1::1"), DPC_ADMIT_GREET);
    dpc_admit_leave(a, s1, 0);
    dpc_admit_leave(a, s1, 1);
    assert_int_equal(dpc_admit_sources(a), 1);
    dpc_admit_leave(a, s3, 0);
    dpc_admit_free(a);
}

/* Thousands of sources arrive and leave; counts stay exact. */
static void admit_many_sources_test(void **state)
{
    static struct dpc_admit_source *src[4096];
    struct dpc_admit *a = new_admit(4096, 1, 2);
    char addr[32];

    for (int i = 0; i < 4096; i++) {
        snprintf(addr, sizeof(addr), "10.%d.%d.1", i / 256, i % 256);
        src[i] = arrive(a, v4(addr), DPC_ADMIT_GREET);
    }
    assert_int_equal(dpc_admit_sources(a), 4096);
    assert_true(dpc_admit_full(a));
    for (int i = 0; i < 4096; i += 2)
        dpc_admit_leave(a, src[i], 0);
    assert_int_equal(dpc_admit_sources(a), 2048);
    for (int i = 1; i < 4096; i += 2) {
        /* found again: over its share of 1, it waits */
        snprintf(addr, sizeof(addr), "10.%d.%d.1", i / 256, i % 256);
        assert_ptr_equal(arrive(a, v4(addr), DPC_ADMIT_WAIT), src[i]);
        dpc_admit_leave(a, src[i], 1);
        dpc_admit_leave(a, src[i], 0);
    }
    assert_int_equal(dpc_admit_sources(a), 0);
    assert_int_equal(dpc_admit_handshakes(a), 0);
    dpc_admit_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(admit_share_then_wait_test),
        cmocka_unit_test(admit_full_test),
        cmocka_unit_test(admit_refuse_past_pending_test),
        cmocka_unit_test(admit_refused_new_source_test),
        cmocka_unit_test(admit_zero_limits_test),
        cmocka_unit_test(admit_keys_test),
        cmocka_unit_test(admit_v6_prefix_shares_test),
        cmocka_unit_test(admit_many_sources_test),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
