/*
 * dpc_util: small helpers shared by the core: error text into a caller
 * buffer, little-endian loads and stores, checked arithmetic, and a
 * constant-time compare, the monotonic clock.  No state, no allocation; safe from any thread.
 */
#ifndef DPC_UTIL_H
#define DPC_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define DPC_ERRLEN 192

/* Formats into err (may be NULL); always returns -1 so callers can
 * "return dpc_errf(...)". */
int dpc_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline uint32_t dpc_load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline uint64_t dpc_load_le64(const uint8_t *p)
{
    return (uint64_t)dpc_load_le32(p) | (uint64_t)dpc_load_le32(p + 4) << 32;
}

static inline void dpc_store_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void dpc_store_le64(uint8_t *p, uint64_t v)
{
    dpc_store_le32(p, (uint32_t)v);
    dpc_store_le32(p + 4, (uint32_t)(v >> 32));
}

/* 0 and *out = a * b, or -1 on overflow. */
static inline int dpc_mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}

/* 0 and *out = a + b, or -1 on overflow. */
static inline int dpc_add_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    return __builtin_add_overflow(a, b, out) ? -1 : 0;
}

/* Seconds on the monotonic clock. */
double dpc_now(void);

/* 1 when the n bytes are equal; time depends only on n. */
int dpc_equal_ct(const void *a, const void *b, size_t n);

#endif
