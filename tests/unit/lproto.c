/*
 * Unit tests for dpc_lproto, the codec of the local Unix-socket protocol:
 * the 8-byte header (version, op, status, reserved byte, body length), the
 * request bodies with their exact lengths, names, and the encoder.
 *
 * Bodies are handed to the parser in heap buffers of exactly the declared
 * length, so an over-read shows under AddressSanitizer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dpc_lproto.h"

#define assert_contains(hay, needle)                                       \
    do {                                                                   \
        if (strstr((hay), (needle)) == NULL)                               \
            fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));   \
    } while (0)

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static void hdr_bytes(uint8_t b[DPC_LP_HDR], uint8_t version, uint8_t op,
                      uint8_t status, uint8_t reserved, uint32_t len)
{
    b[0] = version;
    b[1] = op;
    b[2] = status;
    b[3] = reserved;
    b[4] = (uint8_t)len;
    b[5] = (uint8_t)(len >> 8);
    b[6] = (uint8_t)(len >> 16);
    b[7] = (uint8_t)(len >> 24);
}

/* The header must be refused, with an error containing why. */
static void hdr_refused(const uint8_t b[DPC_LP_HDR], int is_reply,
                        const char *why)
{
    struct dpc_lp_hdr h;
    char err[256] = "";

    if (dpc_lp_parse_hdr(b, is_reply, &h, err, sizeof(err)) != -1)
        fail_msg("header %02x %02x %02x %02x accepted as %s", b[0], b[1],
                 b[2], b[3], is_reply ? "reply" : "request");
    assert_contains(err, why);
}

/* Parses a request of op whose body is the len bytes at body, given to the
 * parser in a heap buffer of exactly len bytes.  Returns what it returns. */
static int parse_body(uint8_t op, const void *body, uint32_t len,
                      struct dpc_lp_req *r, char *err, size_t errlen)
{
    struct dpc_lp_hdr h = { .op = op, .status = 0, .len = len };
    uint8_t *copy = malloc(len != 0 ? len : 1);
    int rc;

    assert_non_null(copy);
    if (len != 0)
        memcpy(copy, body, len);
    rc = dpc_lp_parse_req(&h, copy, r, err, errlen);
    free(copy);
    return rc;
}

static void req_refused(uint8_t op, const void *body, uint32_t len,
                        const char *why)
{
    struct dpc_lp_req r;
    char err[256] = "";

    if (parse_body(op, body, len, &r, err, sizeof(err)) != -1)
        fail_msg("%s body of %u bytes accepted", dpc_lp_op_name(op), len);
    assert_contains(err, why);
}

/* Encodes r, then parses the bytes back as the server does; returns the
 * encoded length, fills *out. */
static size_t round_trip(const struct dpc_lp_req *r, struct dpc_lp_req *out,
                         uint8_t buf[DPC_LP_HDR + DPC_LP_MAX_REQ])
{
    struct dpc_lp_hdr h;
    char err[256] = "";
    size_t n = dpc_lp_encode_req(r, buf, DPC_LP_HDR + DPC_LP_MAX_REQ);

    if (n < DPC_LP_HDR)
        fail_msg("%s request not encoded", dpc_lp_op_name(r->op));
    if (dpc_lp_parse_hdr(buf, 0, &h, err, sizeof(err)) != 0)
        fail_msg("encoded %s header refused: %s", dpc_lp_op_name(r->op), err);
    assert_int_equal(h.op, r->op);
    assert_int_equal(h.status, 0);
    assert_int_equal(h.len, n - DPC_LP_HDR);
    if (parse_body(h.op, buf + DPC_LP_HDR, h.len, out, err, sizeof(err)) != 0)
        fail_msg("encoded %s body refused: %s", dpc_lp_op_name(r->op), err);
    return n;
}

/* A request header of every op is accepted and decoded. */
static void lproto_hdr_accepts_test(void **state)
{
    uint8_t b[DPC_LP_HDR];
    struct dpc_lp_hdr h;
    char err[256] = "";

    for (unsigned op = DPC_LP_ALLOC; op < DPC_LP_NOPS; op++) {
        hdr_bytes(b, DPC_LP_VERSION, (uint8_t)op, 0, 0, 8);
        assert_int_equal(dpc_lp_parse_hdr(b, 0, &h, err, sizeof(err)), 0);
        assert_int_equal(h.op, op);
        assert_int_equal(h.status, 0);
        assert_int_equal(h.len, 8);
    }
    hdr_bytes(b, DPC_LP_VERSION, DPC_LP_PUBLISH, 0, 0, DPC_LP_MAX_REQ);
    assert_int_equal(dpc_lp_parse_hdr(b, 0, &h, err, sizeof(err)), 0);
    assert_int_equal(h.len, DPC_LP_MAX_REQ);
}

/* Body length is little-endian: bytes 4..7 = 01 02 00 00 is 513. */
static void lproto_hdr_little_endian_test(void **state)
{
    const uint8_t b[DPC_LP_HDR] = { 1, DPC_LP_LIST, 0, 0,
                                    0x01, 0x02, 0, 0 };
    struct dpc_lp_hdr h;
    char err[256] = "";

    assert_int_equal(dpc_lp_parse_hdr(b, 1, &h, err, sizeof(err)), 0);
    assert_int_equal(h.len, 0x201);
}

/* Requests: wrong version, op none or unknown, a status, the reserved byte,
 * a body past DPC_LP_MAX_REQ are refused. */
static void lproto_hdr_rejects_test(void **state)
{
    uint8_t b[DPC_LP_HDR];

    hdr_bytes(b, 0, DPC_LP_ALLOC, 0, 0, 8);
    hdr_refused(b, 0, "local protocol version 0, want 1");
    hdr_bytes(b, 2, DPC_LP_ALLOC, 0, 0, 8);
    hdr_refused(b, 0, "version 2");
    hdr_bytes(b, DPC_LP_VERSION, DPC_LP_NONE, 0, 0, 0);
    hdr_refused(b, 0, "unknown op 0");
    hdr_bytes(b, DPC_LP_VERSION, DPC_LP_NOPS, 0, 0, 0);
    hdr_refused(b, 0, "unknown op 9");
    hdr_bytes(b, DPC_LP_VERSION, 0xff, 0, 0, 0);
    hdr_refused(b, 0, "unknown op 255");
    hdr_bytes(b, DPC_LP_VERSION, DPC_LP_ALLOC, DPC_LP_EINVAL, 0, 8);
    hdr_refused(b, 0, "bad status 1");
    hdr_bytes(b, DPC_LP_VERSION, DPC_LP_ALLOC, 0, 1, 8);
    hdr_refused(b, 0, "reserved byte set");
    hdr_bytes(b, DPC_LP_VERSION, DPC_LP_PUBLISH, 0, 0, DPC_LP_MAX_REQ + 1);
    hdr_refused(b, 0, "body of 257 bytes (max 256)");
    hdr_bytes(b, DPC_LP_VERSION, DPC_LP_PUBLISH, 0, 0, UINT32_MAX);
    hdr_refused(b, 0, "body of 4294967295 bytes");
}

/* Replies: op none with an error status (a refusal at connect), any known
 * status, bodies up to DPC_LP_MAX_REPLY; a status past the last is not. */
static void lproto_hdr_reply_test(void **state)
{
    uint8_t b[DPC_LP_HDR];
    struct dpc_lp_hdr h;
    char err[256] = "";

    hdr_bytes(b, DPC_LP_VERSION, DPC_LP_NONE, DPC_LP_EPERM, 0, 20);
    assert_int_equal(dpc_lp_parse_hdr(b, 1, &h, err, sizeof(err)), 0);
    assert_int_equal(h.op, DPC_LP_NONE);
    assert_int_equal(h.status, DPC_LP_EPERM);
    for (unsigned st = 0; st < DPC_LP_NSTATUS; st++) {
        hdr_bytes(b, DPC_LP_VERSION, DPC_LP_ATTACH, (uint8_t)st, 0, 16);
        assert_int_equal(dpc_lp_parse_hdr(b, 1, &h, err, sizeof(err)), 0);
        assert_int_equal(h.status, st);
    }
    hdr_bytes(b, DPC_LP_VERSION, DPC_LP_LIST, 0, 0, DPC_LP_MAX_REPLY);
    assert_int_equal(dpc_lp_parse_hdr(b, 1, &h, err, sizeof(err)), 0);
    assert_int_equal(h.len, DPC_LP_MAX_REPLY);
    hdr_bytes(b, DPC_LP_VERSION, DPC_LP_LIST, 0, 0, DPC_LP_MAX_REPLY + 1);
    hdr_refused(b, 1, "max 4194304");
    hdr_bytes(b, DPC_LP_VERSION, DPC_LP_ATTACH, DPC_LP_NSTATUS, 0, 0);
    hdr_refused(b, 1, "bad status 7");
    hdr_bytes(b, DPC_LP_VERSION, DPC_LP_NOPS, 0, 0, 0);
    hdr_refused(b, 1, "unknown op 9");
    hdr_bytes(b, DPC_LP_VERSION, DPC_LP_ATTACH, 0, 0x80, 0);
    hdr_refused(b, 1, "reserved byte set");
}

/* dpc_lp_encode_hdr writes version, op, status, 0 and a little-endian
 * length, and parses back. */
static void lproto_encode_hdr_test(void **state)
{
    const uint8_t want[DPC_LP_HDR] = { 1, DPC_LP_STATUS, DPC_LP_ENOSPC, 0,
                                       0x04, 0x03, 0x02, 0x01 };
    uint8_t b[DPC_LP_HDR];

    memset(b, 0xee, sizeof(b));
    dpc_lp_encode_hdr(b, DPC_LP_STATUS, DPC_LP_ENOSPC, 0x01020304);
    assert_memory_equal(b, want, sizeof(want));
}

/* The exact bytes of an ALLOC, a PUBLISH and an ATTACH request. */
static void lproto_encode_bytes_test(void **state)
{
    static const uint8_t alloc[] = {
        1, DPC_LP_ALLOC, 0, 0, 8, 0, 0, 0,
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
    };
    static const uint8_t publish[] = {
        1, DPC_LP_PUBLISH, 0, 0, 19, 0, 0, 0,
        0x00, 0x10, 0, 0, 0, 0, 0, 0,           /* size 4096 */
        0x10, 0x27, 0, 0, 0, 0, 0, 0,           /* ttl 10000 ms */
        'a', '.', 'b',
    };
    static const uint8_t attach[] = {
        1, DPC_LP_ATTACH, 0, 0, 6, 0, 0, 0,
        0xff, 0xff, 0xff, 0xff, 'x', 'y',
    };
    uint8_t buf[DPC_LP_HDR + DPC_LP_MAX_REQ];
    struct dpc_lp_req r = { .op = DPC_LP_ALLOC, .size = 0x0102030405060708 };

    assert_int_equal(dpc_lp_encode_req(&r, buf, sizeof(buf)), sizeof(alloc));
    assert_memory_equal(buf, alloc, sizeof(alloc));
    r = (struct dpc_lp_req){ .op = DPC_LP_PUBLISH, .size = 4096,
                             .ttl_ms = 10000, .name = "a.b" };
    assert_int_equal(dpc_lp_encode_req(&r, buf, sizeof(buf)), sizeof(publish));
    assert_memory_equal(buf, publish, sizeof(publish));
    r = (struct dpc_lp_req){ .op = DPC_LP_ATTACH, .owner = DPC_LP_SELF,
                             .name = "xy" };
    assert_int_equal(dpc_lp_encode_req(&r, buf, sizeof(buf)), sizeof(attach));
    assert_memory_equal(buf, attach, sizeof(attach));
}

/* Every request op encodes and parses back to the same fields. */
static void lproto_round_trip_test(void **state)
{
    const struct dpc_lp_req reqs[] = {
        { .op = DPC_LP_ALLOC, .size = 1 },
        { .op = DPC_LP_ALLOC, .size = UINT64_MAX },
        { .op = DPC_LP_FREE, .id = 0 },
        { .op = DPC_LP_FREE, .id = UINT64_MAX },
        { .op = DPC_LP_PUBLISH, .size = 1 << 20, .ttl_ms = 0, .name = "img" },
        { .op = DPC_LP_PUBLISH, .size = 7, .ttl_ms = UINT64_MAX,
          .name = "A-z_0.9" },
        { .op = DPC_LP_COMMIT, .id = 42 },
        { .op = DPC_LP_ATTACH, .owner = DPC_LP_SELF, .name = "img" },
        { .op = DPC_LP_ATTACH, .owner = 1000, .name = "x" },
        { .op = DPC_LP_REMOVE, .owner = 0, .name = "img-2" },
        { .op = DPC_LP_LIST },
        { .op = DPC_LP_STATUS },
    };
    uint8_t buf[DPC_LP_HDR + DPC_LP_MAX_REQ];

    for (size_t i = 0; i < N_ELEMS(reqs); i++) {
        struct dpc_lp_req out;

        memset(&out, 0x5a, sizeof(out));
        round_trip(&reqs[i], &out, buf);
        assert_int_equal(out.op, reqs[i].op);
        assert_true(out.size == reqs[i].size);
        assert_true(out.id == reqs[i].id);
        assert_true(out.ttl_ms == reqs[i].ttl_ms);
        assert_int_equal(out.owner, reqs[i].owner);
        assert_string_equal(out.name, reqs[i].name);
    }
}

/* A name of DPC_LP_NAME_MAX characters fits a PUBLISH within
 * DPC_LP_MAX_REQ and comes back whole and NUL-terminated. */
static void lproto_longest_name_test(void **state)
{
    struct dpc_lp_req r = { .op = DPC_LP_PUBLISH, .size = 4096 }, out;
    uint8_t buf[DPC_LP_HDR + DPC_LP_MAX_REQ];

    memset(r.name, 'n', DPC_LP_NAME_MAX);
    r.name[DPC_LP_NAME_MAX] = '\0';
    assert_int_equal(round_trip(&r, &out, buf),
                     DPC_LP_HDR + 16 + DPC_LP_NAME_MAX);
    assert_int_equal(strlen(out.name), DPC_LP_NAME_MAX);
    assert_string_equal(out.name, r.name);
    r.op = DPC_LP_REMOVE;
    assert_int_equal(round_trip(&r, &out, buf),
                     DPC_LP_HDR + 4 + DPC_LP_NAME_MAX);
    assert_string_equal(out.name, r.name);
}

/* Bodies of the wrong length for their op are refused, naming both. */
static void lproto_req_wrong_length_test(void **state)
{
    uint8_t body[DPC_LP_MAX_REQ];

    memset(body, 'a', sizeof(body));
    memset(body, 1, 16);
    req_refused(DPC_LP_ALLOC, body, 7, "alloc body of 7 bytes, want 8");
    req_refused(DPC_LP_ALLOC, body, 9, "alloc body of 9 bytes, want 8");
    req_refused(DPC_LP_ALLOC, body, 0, "want 8");
    req_refused(DPC_LP_FREE, body, 16, "free body of 16 bytes, want 8");
    req_refused(DPC_LP_COMMIT, body, 4, "commit body of 4 bytes, want 8");
    req_refused(DPC_LP_PUBLISH, body, 15, "publish body of 15 bytes, want 16");
    req_refused(DPC_LP_PUBLISH, body, 0, "want 16");
    req_refused(DPC_LP_ATTACH, body, 3, "attach body of 3 bytes, want 4");
    req_refused(DPC_LP_REMOVE, body, 0, "remove body of 0 bytes, want 4");
    req_refused(DPC_LP_LIST, body, 1, "list body of 1 bytes, want 0");
    req_refused(DPC_LP_STATUS, body, 8, "status body of 8 bytes, want 0");
}

/* ALLOC and PUBLISH of 0 bytes are refused; 1 byte is fine. */
static void lproto_req_size_zero_test(void **state)
{
    uint8_t body[16 + 3] = { 0 };
    struct dpc_lp_req r;
    char err[256] = "";

    req_refused(DPC_LP_ALLOC, body, 8, "size 0");
    body[8] = 1;                            /* a ttl does not help */
    memcpy(body + 16, "img", 3);
    req_refused(DPC_LP_PUBLISH, body, sizeof(body), "size 0");
    body[0] = 1;
    assert_int_equal(parse_body(DPC_LP_PUBLISH, body, sizeof(body), &r, err,
                                sizeof(err)), 0);
    assert_true(r.size == 1 && r.ttl_ms == 1);
    assert_string_equal(r.name, "img");
    assert_int_equal(parse_body(DPC_LP_ALLOC, body, 8, &r, err, sizeof(err)),
                     0);
    assert_true(r.size == 1);
}

/* PUBLISH, ATTACH and REMOVE refuse empty, dotted, too long names and
 * names with characters outside [A-Za-z0-9._-], NUL included. */
static void lproto_req_bad_name_test(void **state)
{
    static const char *const bad[] = {
        ".hidden", "a/b", "..", "a b", "a\nb", "a:b", "\xc3\xa9", "a*",
    };
    uint8_t body[4 + DPC_LP_NAME_MAX + 1], pub[16 + 2];

    memset(body, 0, 4);
    req_refused(DPC_LP_ATTACH, body, 4, "bad name");
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        size_t n = strlen(bad[i]);

        memcpy(body + 4, bad[i], n);
        req_refused(DPC_LP_ATTACH, body, (uint32_t)(4 + n), "bad name");
        req_refused(DPC_LP_REMOVE, body, (uint32_t)(4 + n), "bad name");
    }
    memcpy(body + 4, "ab\0c", 4);           /* NUL inside: not cut short */
    req_refused(DPC_LP_ATTACH, body, 8, "bad name");
    memcpy(body + 4, "abc\0", 4);           /* trailing NUL */
    req_refused(DPC_LP_ATTACH, body, 8, "bad name");
    memset(body + 4, 'x', DPC_LP_NAME_MAX + 1);
    req_refused(DPC_LP_REMOVE, body, 4 + DPC_LP_NAME_MAX + 1,
                "1-128 of A-Z a-z 0-9 . _ -");
    memset(pub, 0, sizeof(pub));
    pub[0] = 1;
    memcpy(pub + 16, ".x", 2);
    req_refused(DPC_LP_PUBLISH, pub, sizeof(pub), "not starting with '.'");
    req_refused(DPC_LP_PUBLISH, pub, 16, "bad name");
}

/* dpc_lp_valid_name: the allowed alphabet, the length bounds, no leading
 * dot; only len bytes are looked at. */
static void lproto_valid_name_test(void **state)
{
    char longest[DPC_LP_NAME_MAX + 2];

    assert_true(dpc_lp_valid_name("a", 1));
    assert_true(dpc_lp_valid_name("AZaz09._-", 9));
    assert_true(dpc_lp_valid_name("a.", 2));
    assert_true(dpc_lp_valid_name("-", 1));
    assert_true(dpc_lp_valid_name("ab/", 2));       /* only 2 bytes count */
    assert_false(dpc_lp_valid_name("", 0));
    assert_false(dpc_lp_valid_name(".", 1));
    assert_false(dpc_lp_valid_name(".a", 2));
    assert_false(dpc_lp_valid_name("a/", 2));
    assert_false(dpc_lp_valid_name("a\0", 2));
    assert_false(dpc_lp_valid_name("a+b", 3));
    assert_false(dpc_lp_valid_name("a~", 2));
    memset(longest, 'q', sizeof(longest));
    assert_true(dpc_lp_valid_name(longest, DPC_LP_NAME_MAX));
    assert_false(dpc_lp_valid_name(longest, DPC_LP_NAME_MAX + 1));
}

/* The encoder returns 0 for unknown ops, bad names and a short buffer. */
static void lproto_encode_refuses_test(void **state)
{
    uint8_t buf[DPC_LP_HDR + DPC_LP_MAX_REQ];
    struct dpc_lp_req r = { .op = DPC_LP_NONE };

    assert_int_equal(dpc_lp_encode_req(&r, buf, sizeof(buf)), 0);
    r.op = DPC_LP_NOPS;
    assert_int_equal(dpc_lp_encode_req(&r, buf, sizeof(buf)), 0);
    r = (struct dpc_lp_req){ .op = DPC_LP_PUBLISH, .size = 1, .name = "" };
    assert_int_equal(dpc_lp_encode_req(&r, buf, sizeof(buf)), 0);
    r = (struct dpc_lp_req){ .op = DPC_LP_ATTACH, .name = ".x" };
    assert_int_equal(dpc_lp_encode_req(&r, buf, sizeof(buf)), 0);
    r = (struct dpc_lp_req){ .op = DPC_LP_REMOVE, .name = "a/b" };
    assert_int_equal(dpc_lp_encode_req(&r, buf, sizeof(buf)), 0);
    /* A name filling the whole array has no NUL: strnlen stops at 129. */
    r = (struct dpc_lp_req){ .op = DPC_LP_ATTACH };
    memset(r.name, 'a', sizeof(r.name));
    assert_int_equal(dpc_lp_encode_req(&r, buf, sizeof(buf)), 0);
    r = (struct dpc_lp_req){ .op = DPC_LP_LIST };
    assert_int_equal(dpc_lp_encode_req(&r, buf, sizeof(buf) - 1), 0);
    assert_int_equal(dpc_lp_encode_req(&r, buf, sizeof(buf)), DPC_LP_HDR);
}

/* Op and status names, and "?" past the last. */
static void lproto_names_test(void **state)
{
    assert_string_equal(dpc_lp_op_name(DPC_LP_NONE), "none");
    assert_string_equal(dpc_lp_op_name(DPC_LP_PUBLISH), "publish");
    assert_string_equal(dpc_lp_op_name(DPC_LP_STATUS), "status");
    assert_string_equal(dpc_lp_op_name(DPC_LP_NOPS), "?");
    assert_string_equal(dpc_lp_op_name(1000), "?");
    assert_string_equal(dpc_lp_status_name(DPC_LP_OK), "ok");
    assert_string_equal(dpc_lp_status_name(DPC_LP_ENOSPC),
                        "out of shared memory");
    assert_string_equal(dpc_lp_status_name(DPC_LP_EBUSY),
                        "segment still mapped writable");
    assert_string_equal(dpc_lp_status_name(DPC_LP_NSTATUS), "?");
    for (unsigned i = 0; i < DPC_LP_NOPS; i++)
        assert_string_not_equal(dpc_lp_op_name(i), "?");
    for (unsigned i = 0; i < DPC_LP_NSTATUS; i++)
        assert_string_not_equal(dpc_lp_status_name(i), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lproto_hdr_accepts_test),
        cmocka_unit_test(lproto_hdr_little_endian_test),
        cmocka_unit_test(lproto_hdr_rejects_test),
        cmocka_unit_test(lproto_hdr_reply_test),
        cmocka_unit_test(lproto_encode_hdr_test),
        cmocka_unit_test(lproto_encode_bytes_test),
        cmocka_unit_test(lproto_round_trip_test),
        cmocka_unit_test(lproto_longest_name_test),
        cmocka_unit_test(lproto_req_wrong_length_test),
        cmocka_unit_test(lproto_req_size_zero_test),
        cmocka_unit_test(lproto_req_bad_name_test),
        cmocka_unit_test(lproto_valid_name_test),
        cmocka_unit_test(lproto_encode_refuses_test),
        cmocka_unit_test(lproto_names_test),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
