/*
 * dpc_bytes: integers to and from byte buffers in a fixed byte order,
 * whatever the host's: little-endian for the stock protocol and the shared
 * memory layouts, big-endian (network order) for the native protocol.
 * No alignment is assumed.
 */
#ifndef DPC_BYTES_H
#define DPC_BYTES_H

#include <stdint.h>

static inline uint32_t dpc_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline uint64_t dpc_get_le64(const uint8_t *p)
{
    return (uint64_t)dpc_get_le32(p) | (uint64_t)dpc_get_le32(p + 4) << 32;
}

static inline void dpc_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void dpc_put_le64(uint8_t *p, uint64_t v)
{
    dpc_put_le32(p, (uint32_t)v);
    dpc_put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint32_t dpc_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

static inline uint64_t dpc_get_be64(const uint8_t *p)
{
    return (uint64_t)dpc_get_be32(p) << 32 | dpc_get_be32(p + 4);
}

static inline void dpc_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void dpc_put_be64(uint8_t *p, uint64_t v)
{
    dpc_put_be32(p, (uint32_t)(v >> 32));
    dpc_put_be32(p + 4, (uint32_t)v);
}

#endif
