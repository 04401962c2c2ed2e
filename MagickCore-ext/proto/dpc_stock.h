/*
 * dpc_stock: the wire format of ImageMagick's stock distributed pixel cache
 * (handshake generation C), decoding and validation only.  Integers are
 * x86_64 host order (little-endian); enums are 4 bytes.  Every function is
 * pure: it reads a buffer the caller has already sized, never allocates.
 *
 * A command is 1 byte, the 8-byte session key, then a payload:
 *   'o' open      IM6: 32 bytes, IM7: 1072 bytes     reply 4-byte status
 *   'r'/'R' read  40-byte region                      reply `length` bytes
 *   'w'/'W' write 40-byte region + `length` bytes     no reply
 *   'd' destroy   -                                   reply status, close
 *   's' status    - (magick-dpc extension)            reply u32 len + JSON
 *   'D' drain     - (magick-dpc extension)            reply u32 len + JSON
 *                 (the status once draining began; an older server
 *                 answers it as any unknown command: 4 zero bytes, close)
 */
#ifndef DPC_STOCK_H
#define DPC_STOCK_H

#include <stddef.h>
#include <stdint.h>

#define DPC_STOCK_KEYLEN 8
#define DPC_STOCK_HDRLEN 9          /* command byte + session key */
#define DPC_STOCK_OPEN_IM6_LEN 32
#define DPC_STOCK_OPEN_IM7_LEN 1072
#define DPC_STOCK_REGION_LEN 40
#define DPC_STOCK_STATUS_LEN 4
#define DPC_STOCK_NONCE_MAX 16

/* Images larger than this on a side are refused (ImageMagick's own
 * width/height limits are far below it). */
#define DPC_STOCK_MAX_DIM ((uint64_t)1 << 31)
#define DPC_STOCK_MAX_CHANNELS 64   /* IM7 MaxPixelChannels */
#define DPC_STOCK_MAX_META 4096     /* IM7 metacontent bytes per pixel */
#define DPC_STOCK_MAX_QUANTUM 4     /* HDRI float; Q64 is not served */

enum dpc_stock_flavor {
    DPC_STOCK_IM6,                  /* 8-byte nonce, 32-byte open */
    DPC_STOCK_IM7                   /* 16-byte nonce, 1072-byte open */
};

enum dpc_stock_plane {
    DPC_PLANE_PIXELS,               /* 'r' / 'w' */
    DPC_PLANE_INDEXES,              /* 'R' / 'W': IM6 indexes, IM7 metacontent */
    DPC_PLANE_COUNT
};

struct dpc_stock_open {
    uint64_t columns, rows;
    uint32_t storage_class, colorspace;
    uint64_t number_channels;       /* IM7 only */
    uint64_t metacontent_extent;    /* IM7 only */
    int has_indexes;                /* an index/metacontent plane exists */
};

struct dpc_stock_region {
    uint64_t width, height;
    int64_t x, y;
    uint64_t length;
};

size_t dpc_stock_nonce_len(enum dpc_stock_flavor f);
size_t dpc_stock_open_len(enum dpc_stock_flavor f);

/* Decodes and validates an open payload of dpc_stock_open_len(f) bytes.
 * 0, or -1 with the reason in err. */
int dpc_stock_parse_open(enum dpc_stock_flavor f, const uint8_t *p,
                         struct dpc_stock_open *o, char *err, size_t errlen);

/* Decodes a 40-byte region header (no validation). */
void dpc_stock_parse_region(const uint8_t *p, struct dpc_stock_region *r);

/* Checks r by ImageMagick's own region rule (dpc_region.h: its rows are
 * runs that may wrap past the right edge).  0, or -1 with the reason. */
int dpc_stock_check_region(const struct dpc_stock_region *r, uint64_t columns,
                           uint64_t rows, char *err, size_t errlen);

/* Bytes per pixel of each plane given the quantum size q in bytes; the
 * index plane is 0 when the cache has none. */
void dpc_stock_plane_bpp(enum dpc_stock_flavor f, const struct dpc_stock_open *o,
                         unsigned q, uint64_t bpp[DPC_PLANE_COUNT]);

/* Infers the client's quantum size from the first data request on plane.
 * Returns q (1, 2 or 4), or -1 with the reason in err. */
int dpc_stock_infer_quantum(enum dpc_stock_flavor f,
                            const struct dpc_stock_open *o,
                            enum dpc_stock_plane plane,
                            const struct dpc_stock_region *r, char *err,
                            size_t errlen);

/* Encoders, for clients and tests.  Return bytes written. */
size_t dpc_stock_encode_header(uint8_t *p, uint8_t cmd,
                               const uint8_t key[DPC_STOCK_KEYLEN]);
size_t dpc_stock_encode_region(uint8_t *p, const struct dpc_stock_region *r);

#endif
