/*
 * Unit tests for dpc_wire, the native protocol's codec: the header's byte
 * layout and every rejection of its decoder, the PUT/GET body length and
 * each of its bounds, the key derivation and both proofs (checked against
 * OpenSSL computing the documented formulas directly), and the big-endian
 * helpers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "dpc_bytes.h"
#include "dpc_util.h"
#include "dpc_wire.h"

#define assert_contains(hay, needle)                                       \
    do {                                                                   \
        if (strstr((hay), (needle)) == NULL)                               \
            fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));   \
    } while (0)

/* A header with every field distinct, as bytes. */
static const uint8_t hdr_bytes[DPC_WIRE_HDR_LEN] = {
    1, 3, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0x03,
    0, 0, 0, 0
};

/* Encoding puts each field in network byte order where the spec says. */
static void wire_encode_layout_test(void **state)
{
    struct dpc_wire_hdr h = { .version = 1, .op = DPC_OP_GET,
                              .status = 0x1234, .id = 0xdeadbeef,
                              .length = 0x00010203 };
    uint8_t p[DPC_WIRE_HDR_LEN];

    memset(p, 0xff, sizeof(p));
    dpc_wire_encode_hdr(p, &h);
    assert_memory_equal(p, hdr_bytes, sizeof(p));
}

/* Decoding a valid header gives back every field. */
static void wire_decode_roundtrip_test(void **state)
{
    struct dpc_wire_hdr h;
    char err[DPC_ERRLEN] = "";

    assert_int_equal(dpc_wire_decode_hdr(hdr_bytes, &h, err, sizeof(err)), 0);
    assert_int_equal(h.version, 1);
    assert_int_equal(h.op, DPC_OP_GET);
    assert_int_equal(h.status, 0x1234);
    assert_int_equal(h.id, 0xdeadbeef);
    assert_int_equal(h.length, 0x00010203);
    assert_string_equal(err, "");
}

static void expect_reject(const uint8_t *p, const char *why)
{
    struct dpc_wire_hdr h;
    char err[DPC_ERRLEN] = "";

    assert_int_equal(dpc_wire_decode_hdr(p, &h, err, sizeof(err)), -1);
    assert_contains(err, why);
}

/* Versions other than 1 are refused, naming both. */
static void wire_decode_bad_version_test(void **state)
{
    uint8_t p[DPC_WIRE_HDR_LEN];

    memcpy(p, hdr_bytes, sizeof(p));
    p[0] = 2;
    expect_reject(p, "protocol version 2, expected 1");
    p[0] = 0;
    expect_reject(p, "protocol version 0");
}

/* Operations 0 and 6.. are unknown; 1..5 all decode. */
static void wire_decode_unknown_op_test(void **state)
{
    struct dpc_wire_hdr h;
    uint8_t p[DPC_WIRE_HDR_LEN];

    memcpy(p, hdr_bytes, sizeof(p));
    p[1] = 0;
    expect_reject(p, "unknown operation 0");
    p[1] = DPC_OP_COPY + 1;
    expect_reject(p, "unknown operation 7");
    p[1] = 255;
    expect_reject(p, "unknown operation 255");
    for (uint8_t op = DPC_OP_OPEN; op <= DPC_OP_COPY; op++) {
        p[1] = op;
        assert_int_equal(dpc_wire_decode_hdr(p, &h, NULL, 0), 0);
        assert_int_equal(h.op, op);
    }
}

/* A body of DPC_WIRE_MAX_BODY is accepted, one byte more is not. */
static void wire_decode_body_limit_test(void **state)
{
    struct dpc_wire_hdr h;
    uint8_t p[DPC_WIRE_HDR_LEN];

    memcpy(p, hdr_bytes, sizeof(p));
    dpc_put_be32(p + 8, DPC_WIRE_MAX_BODY);
    assert_int_equal(dpc_wire_decode_hdr(p, &h, NULL, 0), 0);
    assert_int_equal(h.length, DPC_WIRE_MAX_BODY);
    dpc_put_be32(p + 8, DPC_WIRE_MAX_BODY + 1);
    expect_reject(p, "exceeds");
    dpc_put_be32(p + 8, UINT32_MAX);
    expect_reject(p, "body of 4294967295 bytes");
}

/* Any bit of the reserved word set is refused. */
static void wire_decode_reserved_test(void **state)
{
    uint8_t p[DPC_WIRE_HDR_LEN];

    for (int i = 12; i < 16; i++) {
        memcpy(p, hdr_bytes, sizeof(p));
        p[i] = 0x80;
        expect_reject(p, "reserved header bits set");
    }
}

/* GET bodies are the fixed part and the slot list; PUT bodies carry the
 * tiles too. */
static void wire_slots_len_ok_test(void **state)
{
    assert_int_equal(dpc_wire_slots_body_len(DPC_OP_GET, 1, 100), 16 + 8);
    assert_int_equal(dpc_wire_slots_body_len(DPC_OP_PUT, 1, 100),
                     16 + 8 + 100);
    assert_int_equal(dpc_wire_slots_body_len(DPC_OP_GET, DPC_WIRE_MAX_COUNT,
                                             8192),
                     16 + 8 * DPC_WIRE_MAX_COUNT);
    assert_int_equal(dpc_wire_slots_body_len(DPC_OP_PUT, 3,
                                             DPC_WIRE_MAX_SLOT_BYTES),
                     16 + 24 + 3ull * DPC_WIRE_MAX_SLOT_BYTES);
}

/* Each bound: no slots, too many, empty or oversized slots, tiles that
 * would not fit in one body (either way), and a PUT whose list and tiles
 * together pass the limit. */
static void wire_slots_len_bounds_test(void **state)
{
    assert_int_equal(dpc_wire_slots_body_len(DPC_OP_GET, 0, 100), 0);
    assert_int_equal(dpc_wire_slots_body_len(DPC_OP_GET,
                                             DPC_WIRE_MAX_COUNT + 1, 8), 0);
    assert_int_equal(dpc_wire_slots_body_len(DPC_OP_PUT, 1, 0), 0);
    assert_int_equal(dpc_wire_slots_body_len(DPC_OP_GET, 1,
                                             DPC_WIRE_MAX_SLOT_BYTES + 1), 0);
    /* 5 x 16 MiB tiles: more than a body, for a GET's reply as well */
    assert_int_equal(dpc_wire_slots_body_len(DPC_OP_GET, 5,
                                             DPC_WIRE_MAX_SLOT_BYTES), 0);
    assert_int_equal(dpc_wire_slots_body_len(DPC_OP_PUT, 5,
                                             DPC_WIRE_MAX_SLOT_BYTES), 0);
    /* exactly a body of tiles: a GET's reply fits, a PUT's body does not */
    assert_int_equal(dpc_wire_slots_body_len(DPC_OP_GET, 4,
                                             DPC_WIRE_MAX_SLOT_BYTES), 16 + 32);
    assert_int_equal(dpc_wire_slots_body_len(DPC_OP_PUT, 4,
                                             DPC_WIRE_MAX_SLOT_BYTES), 0);
    /* tiles under the limit, list and tiles together over it: a PUT of
     * 4095 x 16 KiB is refused, its GET is not; 4000 of them fit */
    assert_int_equal(dpc_wire_slots_body_len(DPC_OP_PUT, 4095, 16384), 0);
    assert_int_equal(dpc_wire_slots_body_len(DPC_OP_GET, 4095, 16384),
                     16 + 8 * 4095);
    assert_int_equal(dpc_wire_slots_body_len(DPC_OP_PUT, 4000, 16384),
                     16 + 8 * 4000 + 4000ull * 16384);
}

/* K = SHA-256("magick-dpc native v1" || secret). */
static void wire_derive_key_test(void **state)
{
    static const char msg[] = "magick-dpc native v1" "s3cret";
    uint8_t key[DPC_WIRE_KEY_LEN], want[32], other[DPC_WIRE_KEY_LEN];
    unsigned n = 0;

    dpc_wire_derive_key("s3cret", 6, key);
    assert_int_equal(EVP_Digest(msg, sizeof(msg) - 1, want, &n, EVP_sha256(),
                                NULL), 1);
    assert_int_equal(n, 32);
    assert_memory_equal(key, want, sizeof(key));
    dpc_wire_derive_key("s3creT", 6, other);
    assert_memory_not_equal(key, other, sizeof(key));
    dpc_wire_derive_key("s3cret", 5, other);    /* the length counts */
    assert_memory_not_equal(key, other, sizeof(key));
}

/* Proofs are HMAC-SHA256(K, "magick-dpc <label>" || Ns || Nc); the two
 * labels and every input change them. */
static void wire_proof_test(void **state)
{
    uint8_t key[DPC_WIRE_KEY_LEN], ns[32], nc[32], msg[17 + 64];
    uint8_t mac[32], want[32], other[32];
    unsigned n = 0;

    for (int i = 0; i < 32; i++) {
        key[i] = (uint8_t)i;
        ns[i] = (uint8_t)(100 + i);
        nc[i] = (uint8_t)(200 + i);
    }
    dpc_wire_proof(key, "client", ns, nc, mac);
    memcpy(msg, "magick-dpc client", 17);
    memcpy(msg + 17, ns, 32);
    memcpy(msg + 49, nc, 32);
    assert_non_null(HMAC(EVP_sha256(), key, 32, msg, sizeof(msg), want, &n));
    assert_memory_equal(mac, want, 32);
    dpc_wire_proof(key, "server", ns, nc, other);
    memcpy(msg, "magick-dpc server", 17);
    assert_non_null(HMAC(EVP_sha256(), key, 32, msg, sizeof(msg), want, &n));
    assert_memory_equal(other, want, 32);
    assert_memory_not_equal(mac, other, 32);
    nc[31] ^= 1;
    dpc_wire_proof(key, "client", ns, nc, other);
    assert_memory_not_equal(mac, other, 32);
    nc[31] ^= 1;
    ns[0] ^= 1;
    dpc_wire_proof(key, "client", ns, nc, other);
    assert_memory_not_equal(mac, other, 32);
    ns[0] ^= 1;
    key[5] ^= 1;
    dpc_wire_proof(key, "client", ns, nc, other);
    assert_memory_not_equal(mac, other, 32);
}

/* The byte-order helpers: big-endian both ways, all bits. */
static void wire_byte_order_test(void **state)
{
    uint8_t p[8];

    dpc_put_be32(p, 0x01020304);
    assert_int_equal(p[0], 1);
    assert_int_equal(p[3], 4);
    assert_int_equal(dpc_get_be32(p), 0x01020304);
    dpc_put_be64(p, 0x8877665544332211ull);
    assert_int_equal(p[0], 0x88);
    assert_int_equal(p[7], 0x11);
    assert_true(dpc_get_be64(p) == 0x8877665544332211ull);
    dpc_put_be32(p, UINT32_MAX);
    assert_int_equal(dpc_get_be32(p), UINT32_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wire_encode_layout_test),
        cmocka_unit_test(wire_decode_roundtrip_test),
        cmocka_unit_test(wire_decode_bad_version_test),
        cmocka_unit_test(wire_decode_unknown_op_test),
        cmocka_unit_test(wire_decode_body_limit_test),
        cmocka_unit_test(wire_decode_reserved_test),
        cmocka_unit_test(wire_slots_len_ok_test),
        cmocka_unit_test(wire_slots_len_bounds_test),
        cmocka_unit_test(wire_derive_key_test),
        cmocka_unit_test(wire_proof_test),
        cmocka_unit_test(wire_byte_order_test),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
