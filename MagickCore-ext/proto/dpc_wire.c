/*
 * dpc_wire: see dpc_wire.h.
 */
#include "dpc_wire.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "dpc_bytes.h"
#include "dpc_util.h"

void dpc_wire_encode_hdr(uint8_t *p, const struct dpc_wire_hdr *h)
{
    p[0] = h->version;
    p[1] = h->op;
    p[2] = (uint8_t)(h->status >> 8);
    p[3] = (uint8_t)h->status;
    dpc_put_be32(p + 4, h->id);
    dpc_put_be32(p + 8, h->length);
    dpc_put_be32(p + 12, 0);
}

int dpc_wire_decode_hdr(const uint8_t *p, struct dpc_wire_hdr *h, char *err,
                        size_t errlen)
{
    h->version = p[0];
    h->op = p[1];
    h->status = (uint16_t)(p[2] << 8 | p[3]);
    h->id = dpc_get_be32(p + 4);
    h->length = dpc_get_be32(p + 8);
    if (h->version != DPC_WIRE_VERSION)
        return dpc_errf(err, errlen, "protocol version %u, expected %u",
                        h->version, DPC_WIRE_VERSION);
    if (h->op < DPC_OP_OPEN || h->op > DPC_OP_COPY)
        return dpc_errf(err, errlen, "unknown operation %u", h->op);
    if (h->length > DPC_WIRE_MAX_BODY)
        return dpc_errf(err, errlen, "body of %u bytes exceeds %u", h->length,
                        DPC_WIRE_MAX_BODY);
    if (dpc_get_be32(p + 12) != 0)
        return dpc_errf(err, errlen, "reserved header bits set");
    return 0;
}

uint64_t dpc_wire_slots_body_len(enum dpc_wire_op op, uint32_t count,
                                 uint32_t slot_bytes)
{
    uint64_t n = DPC_WIRE_SLOTS_FIXED + (uint64_t)count * 8;

    if (count == 0 || count > DPC_WIRE_MAX_COUNT || slot_bytes == 0 ||
        slot_bytes > DPC_WIRE_MAX_SLOT_BYTES)
        return 0;
    /* The tiles move one way or the other: either body is bounded. */
    if ((uint64_t)count * slot_bytes > DPC_WIRE_MAX_BODY)  /* < 2^36 */
        return 0;
    if (op == DPC_OP_PUT)
        n += (uint64_t)count * slot_bytes;
    return n <= DPC_WIRE_MAX_BODY ? n : 0;
}

void dpc_wire_derive_key(const char *secret, size_t len,
                         uint8_t key[DPC_WIRE_KEY_LEN])
{
    static const char label[] = "magick-dpc native v1";
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned n = DPC_WIRE_KEY_LEN;

    /* Only allocation can fail here; a zero key then fails every proof. */
    memset(key, 0, DPC_WIRE_KEY_LEN);
    if (ctx == NULL)
        return;
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, label, sizeof(label) - 1) != 1 ||
        EVP_DigestUpdate(ctx, secret, len) != 1 ||
        EVP_DigestFinal_ex(ctx, key, &n) != 1)
        memset(key, 0, DPC_WIRE_KEY_LEN);
    EVP_MD_CTX_free(ctx);
}

void dpc_wire_proof(const uint8_t key[DPC_WIRE_KEY_LEN], const char *label,
                    const uint8_t ns[DPC_WIRE_NONCE_LEN],
                    const uint8_t nc[DPC_WIRE_NONCE_LEN],
                    uint8_t mac[DPC_WIRE_MAC_LEN])
{
    uint8_t msg[32 + 2 * DPC_WIRE_NONCE_LEN];
    size_t n = (size_t)snprintf((char *)msg, 32, "magick-dpc %s", label);
    unsigned maclen = DPC_WIRE_MAC_LEN;

    memcpy(msg + n, ns, DPC_WIRE_NONCE_LEN);
    memcpy(msg + n + DPC_WIRE_NONCE_LEN, nc, DPC_WIRE_NONCE_LEN);
    HMAC(EVP_sha256(), key, DPC_WIRE_KEY_LEN, msg, n + 2 * DPC_WIRE_NONCE_LEN,
         mac, &maclen);
}
