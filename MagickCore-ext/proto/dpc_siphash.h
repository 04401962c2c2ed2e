/*
 * dpc_siphash: SipHash-2-4 and the key derivation ImageMagick's stock
 * distributed cache uses to turn policy.xml's cache:shared-secret into a
 * SipHash key.  The session key of a stock connection is
 * SipHash-2-4(key, server nonce), sent little-endian.  Pure functions.
 */
#ifndef DPC_SIPHASH_H
#define DPC_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define DPC_SIPHASH_KEYLEN 16

/* Standard SipHash-2-4 of len bytes of msg under a 16-byte key. */
uint64_t dpc_siphash24(const uint8_t key[DPC_SIPHASH_KEYLEN], const void *msg,
                       size_t len);

/* ImageMagick's derivation of a SipHash key from the shared secret. */
void dpc_siphash_key_from_secret(const char *secret, size_t len,
                                 uint8_t key[DPC_SIPHASH_KEYLEN]);

/* The 8 bytes a stock client sends back for nonce: LE(SipHash(key, nonce)). */
void dpc_siphash_session_key(const uint8_t key[DPC_SIPHASH_KEYLEN],
                             const uint8_t *nonce, size_t noncelen,
                             uint8_t out[8]);

#endif
