/*
 * dpc_siphash: see dpc_siphash.h.  Written from the SipHash paper; the key
 * derivation matches ImageMagick's DeriveSipKeyFromSecret() byte for byte.
 */
#include "dpc_siphash.h"

#include "dpc_bytes.h"
#include "dpc_util.h"

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                            \
    do {                                                                    \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);           \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                              \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                              \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);           \
    } while (0)

uint64_t dpc_siphash24(const uint8_t key[DPC_SIPHASH_KEYLEN], const void *msg,
                       size_t len)
{
    const uint8_t *p = msg;
    uint64_t k0 = dpc_get_le64(key), k1 = dpc_get_le64(key + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    uint64_t b = (uint64_t)len << 56, m;
    size_t i, whole = len - len % 8;

    for (i = 0; i < whole; i += 8) {
        m = dpc_get_le64(p + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t j = 0; j < len % 8; j++)
        b |= (uint64_t)p[whole + j] << (8 * j);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

void dpc_siphash_key_from_secret(const char *secret, size_t len,
                                 uint8_t key[DPC_SIPHASH_KEYLEN])
{
    uint64_t k0 = 0x0706050403020100ULL, k1 = 0x0f0e0d0c0b0a0908ULL;

    for (size_t i = 0; i < len; i++) {
        uint8_t b = (uint8_t)secret[i];

        k0 ^= b;
        k0 *= 0x100000001b3ULL;
        k1 ^= (uint64_t)b << ((i & 7) * 8);
        k1 = ROTL(k1, 5);
    }
    dpc_put_le64(key, k0);
    dpc_put_le64(key + 8, k1);
}

void dpc_siphash_session_key(const uint8_t key[DPC_SIPHASH_KEYLEN],
                             const uint8_t *nonce, size_t noncelen,
                             uint8_t out[8])
{
    dpc_put_le64(out, dpc_siphash24(key, nonce, noncelen));
}
