/*
 * Unit tests for dpc_parse: strict whole numbers, byte sizes, durations
 * and HOST:PORT addresses as given on the command line or in policy.xml.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>

#include "dpc_parse.h"
#include "dpc_util.h"

#define assert_contains(hay, needle)                                       \
    do {                                                                   \
        if (strstr((hay), (needle)) == NULL)                               \
            fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));   \
    } while (0)

typedef int (*parse_fn)(const char *, uint64_t *, char *, size_t);

/* s must parse to want. */
static void parses(parse_fn fn, const char *s, uint64_t want)
{
    uint64_t v = 12345;
    char err[256] = "";

    if (fn(s, &v, err, sizeof(err)) != 0)
        fail_msg("'%s' refused: %s", s, err);
    if (v != want)
        fail_msg("'%s' gave %llu, want %llu", s, (unsigned long long)v,
                 (unsigned long long)want);
}

/* s must be refused with an error containing why; out is untouched. */
static void refused(parse_fn fn, const char *s, const char *why)
{
    uint64_t v = 12345;
    char err[256] = "";

    if (fn(s, &v, err, sizeof(err)) != -1)
        fail_msg("'%s' accepted as %llu", s, (unsigned long long)v);
    assert_contains(err, why);
}

static void hostport_ok(const char *s, const char *host, unsigned port)
{
    char h[64] = "", err[256] = "";
    unsigned p = 1;

    if (dpc_parse_hostport(s, h, sizeof(h), &p, err, sizeof(err)) != 0)
        fail_msg("'%s' refused: %s", s, err);
    assert_string_equal(h, host);
    assert_int_equal(p, port);
}

static void hostport_refused(const char *s, const char *why)
{
    char h[64] = "", err[256] = "";
    unsigned p = 1;

    if (dpc_parse_hostport(s, h, sizeof(h), &p, err, sizeof(err)) != -1)
        fail_msg("'%s' accepted as host '%s' port %u", s, h, p);
    assert_contains(err, why);
}

/* Whole numbers: 0 and the largest u64. */
static void parse_u64_accepts_test(void **state)
{
    parses(dpc_parse_u64, "0", 0);
    parses(dpc_parse_u64, "42", 42);
    parses(dpc_parse_u64, "007", 7);
    parses(dpc_parse_u64, "18446744073709551615", UINT64_MAX);
}

/* Whole numbers: empty, signs, junk, spaces and overflow are refused. */
static void parse_u64_rejects_test(void **state)
{
    static const char *const bad[] = {
        "", "-1", "+1", "12x", " 1", "1 ", "0x10", "1.5",
        "18446744073709551616", "99999999999999999999999",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        refused(dpc_parse_u64, bad[i], "is not a whole number");
}

/* Sizes: binary and decimal suffixes, any case. */
static void parse_size_accepts_test(void **state)
{
    parses(dpc_parse_size, "0", 0);
    parses(dpc_parse_size, "100", 100);
    parses(dpc_parse_size, "100B", 100);
    parses(dpc_parse_size, "512MiB", 512ULL << 20);
    parses(dpc_parse_size, "512mib", 512ULL << 20);
    parses(dpc_parse_size, "1G", 1ULL << 30);
    parses(dpc_parse_size, "10GB", 10000000000ULL);
    parses(dpc_parse_size, "1KB", 1000);
    parses(dpc_parse_size, "1K", 1024);
    parses(dpc_parse_size, "3M", 3ULL << 20);
    parses(dpc_parse_size, "2MB", 2000000);
    parses(dpc_parse_size, "2TiB", 2ULL << 40);
    parses(dpc_parse_size, "16777215TiB", 16777215ULL << 40);
}

/* Sizes: spaces before the unit, unknown units, no digits are refused. */
static void parse_size_rejects_test(void **state)
{
    refused(dpc_parse_size, "4 GiB", "unknown unit ' GiB'");
    refused(dpc_parse_size, "1QB", "unknown unit 'QB'");
    refused(dpc_parse_size, "1KiBB", "unknown unit");
    refused(dpc_parse_size, "", "is not a size");
    refused(dpc_parse_size, "MiB", "is not a size");
    refused(dpc_parse_size, "-1M", "is not a size");
}

/* Sizes: a product past 2^64 - 1 is too large. */
static void parse_size_overflow_test(void **state)
{
    refused(dpc_parse_size, "20000000TiB", "'20000000TiB' is too large");
    refused(dpc_parse_size, "16777216TiB", "is too large");
}

/* Durations: ms, s, m, h, and bare seconds. */
static void parse_duration_accepts_test(void **state)
{
    parses(dpc_parse_duration_ms, "30s", 30000);
    parses(dpc_parse_duration_ms, "500ms", 500);
    parses(dpc_parse_duration_ms, "5m", 300000);
    parses(dpc_parse_duration_ms, "1h", 3600000);
    parses(dpc_parse_duration_ms, "10", 10000);
    parses(dpc_parse_duration_ms, "0", 0);
}

/* Durations: junk, empty, signs and overflow are refused. */
static void parse_duration_rejects_test(void **state)
{
    refused(dpc_parse_duration_ms, "", "is not a duration");
    refused(dpc_parse_duration_ms, "-5s", "is not a duration");
    refused(dpc_parse_duration_ms, "1.5s", "unknown unit '.5s'");
    refused(dpc_parse_duration_ms, "10 s", "unknown unit ' s'");
    refused(dpc_parse_duration_ms, "3d", "unknown unit 'd'");
    refused(dpc_parse_duration_ms, "18446744073709551615", "is too large");
}

/* HOST:PORT, HOST alone and [V6]:PORT. */
static void parse_hostport_accepts_test(void **state)
{
    hostport_ok("127.0.0.1:6668", "127.0.0.1", 6668);
    hostport_ok("localhost", "localhost", DPC_DEFAULT_PORT);
    hostport_ok("example.org:65535", "example.org", 65535);
    hostport_ok("127.0.0.1:0", "127.0.0.1", 0);
    hostport_ok("[::1]:7000", "::1", 7000);
    hostport_ok("[fe80::1%eth0]", "fe80::1%eth0", DPC_DEFAULT_PORT);
}

/* An IPv6 address without brackets is refused and told how to write it. */
static void parse_hostport_v6_needs_brackets_test(void **state)
{
    hostport_refused("::1:7000", "write IPv6 addresses as [ADDR]:PORT");
    hostport_refused("::1", "[ADDR]:PORT");
}

/* Ports past 65535, empty or signed ports are refused. */
static void parse_hostport_bad_port_test(void **state)
{
    hostport_refused("127.0.0.1:65536", "'127.0.0.1:65536': bad port");
    hostport_refused("[::1]:65536", "bad port");
    hostport_refused("localhost:", "bad port");
    hostport_refused("localhost:+80", "bad port");
    hostport_refused("localhost:80x", "bad port");
}

/* Empty hosts are refused. */
static void parse_hostport_empty_host_test(void **state)
{
    hostport_refused("", "bad host");
    hostport_refused(":6668", "':6668': bad host");
    hostport_refused("[]:6668", "bad host");
}

/* Malformed brackets are refused. */
static void parse_hostport_brackets_test(void **state)
{
    hostport_refused("[::1", "missing ']'");
    hostport_refused("[::1]7000", "junk after ']'");
}

/* A host that does not fit the caller's buffer is refused, not cut. */
static void parse_hostport_host_too_long_test(void **state)
{
    char h[8] = "", err[256] = "";
    unsigned p = 1;

    assert_int_equal(dpc_parse_hostport("abcdefgh:80", h, sizeof(h), &p, err,
                                        sizeof(err)), -1);
    assert_contains(err, "bad host");
    assert_int_equal(dpc_parse_hostport("abcdefg:80", h, sizeof(h), &p, err,
                                        sizeof(err)), 0);
    assert_string_equal(h, "abcdefg");
    assert_int_equal(p, 80);
}

/* Secrets: long random ones pass; short ones and placeholders do not. */
static void parse_secret_check_test(void **state)
{
    static const char *const bad[] = {
        "CHANGE-ME", "change-me-change-me-please", "CHANGEME0000000000",
        "a long random string", "Replace me with a secret!!", "aaaaaaaaaaaaaaaaaaaaaaaa",
        "your-secret-goes-here", "short-secret", "",
    };
    char err[DPC_ERRLEN];

    (void)state;
    assert_int_equal(dpc_parse_secret_check("q8Vd3kP0zR7wYt2mXb9LcN4s", 24,
                                            err, sizeof(err)), 0);
    assert_int_equal(dpc_parse_secret_check("0123456789abcdef", 16, err,
                                            sizeof(err)), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        assert_int_equal(dpc_parse_secret_check(bad[i], strlen(bad[i]), err,
                                                sizeof(err)), -DPC_E_INVALID);
        assert_non_null(strstr(err, "cache:shared-secret"));
    }
    dpc_parse_secret_check("short-secret", 12, err, sizeof(err));
    assert_non_null(strstr(err, "too short"));
    dpc_parse_secret_check("CHANGE-ME-CHANGE-ME", 19, err, sizeof(err));
    assert_non_null(strstr(err, "placeholder"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_u64_accepts_test),
        cmocka_unit_test(parse_u64_rejects_test),
        cmocka_unit_test(parse_size_accepts_test),
        cmocka_unit_test(parse_size_rejects_test),
        cmocka_unit_test(parse_size_overflow_test),
        cmocka_unit_test(parse_duration_accepts_test),
        cmocka_unit_test(parse_duration_rejects_test),
        cmocka_unit_test(parse_hostport_accepts_test),
        cmocka_unit_test(parse_hostport_v6_needs_brackets_test),
        cmocka_unit_test(parse_hostport_bad_port_test),
        cmocka_unit_test(parse_hostport_empty_host_test),
        cmocka_unit_test(parse_hostport_brackets_test),
        cmocka_unit_test(parse_hostport_host_too_long_test),
        cmocka_unit_test(parse_secret_check_test),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
