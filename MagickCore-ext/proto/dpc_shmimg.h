/*
 * dpc_shmimg: the layout of a published image in a shared segment (the
 * shm: coder's format), its codec only.  The segment is untrusted input
 * to every reader: dpc_shmimg_parse() checks every offset and length
 * against the segment and each other before anything is used.
 *
 *   header region, [0, header_len), header_len a multiple of 4096:
 *     "MDPCSHM1" | u32 header_len | u32 nframes | u64 total_size
 *     nframes x { u64 pix_off | u64 pix_len | u32 meta_off | u32 meta_len |
 *                 u64 0 }
 *     metadata blobs (within the header region)
 *   each frame's pixels at pix_off (a multiple of 4096, past the header,
 *   in frame order, not overlapping), laid out as the reader's pixel cache
 *   wants them, so a reader can map them in place.
 *
 * A metadata blob is a run of records:
 *     u8 type | u8 0 | u16 key_len | u32 value_len | key | value
 * with U64 and F64 values exactly 8 bytes.  Integers little-endian.
 * No state; safe from any thread.
 */
#ifndef DPC_SHMIMG_H
#define DPC_SHMIMG_H

#include <stddef.h>
#include <stdint.h>

#define DPC_SHMIMG_MAGIC "MDPCSHM1"
#define DPC_SHMIMG_ALIGN 4096u
#define DPC_SHMIMG_FIXED 24u            /* magic, header_len, nframes, total */
#define DPC_SHMIMG_FRAME 32u
#define DPC_SHMIMG_MAX_FRAMES 65536u
#define DPC_SHMIMG_MAX_HEADER (256u << 20)
#define DPC_SHMIMG_MAX_KEY 1024u

enum dpc_shmimg_type {
    DPC_SHMIMG_U64 = 1,
    DPC_SHMIMG_F64,
    DPC_SHMIMG_STR,                     /* text, no NUL inside */
    DPC_SHMIMG_BYTES,
    DPC_SHMIMG_NTYPES
};

struct dpc_shmimg_frame {
    uint64_t pix_off, pix_len;
    uint32_t meta_off, meta_len;
};

struct dpc_shmimg_rec {
    enum dpc_shmimg_type type;
    const char *key;                    /* not NUL-terminated */
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
};

/* Reading.  hdr holds the first hdr_len bytes of a segment of seg_len
 * bytes.  With hdr_len >= DPC_SHMIMG_FIXED, sets *header_len (so a caller
 * can map that much and call again).  Returns 0 when the whole header is in
 * hdr and valid (frames[] filled), 1 when more of the header is needed or
 * frames[] has room for fewer than *nframes (both set then, so a caller can
 * map header_len bytes and size frames[] for a second call), -1 with the
 * reason when invalid. */
int dpc_shmimg_parse(const uint8_t *hdr, size_t hdr_len, uint64_t seg_len,
                     uint32_t *header_len, struct dpc_shmimg_frame *frames,
                     uint32_t max, uint32_t *nframes, char *err,
                     size_t errlen);
/* The next record of a blob at *pos: 1 and *rec, 0 at the end, -1 on a
 * malformed record. */
int dpc_shmimg_next(const uint8_t *blob, size_t len, size_t *pos,
                    struct dpc_shmimg_rec *rec, char *err, size_t errlen);
/* 1 when the record's key is key. */
int dpc_shmimg_is(const struct dpc_shmimg_rec *rec, const char *key);

/* Writing.  Lays out nframes frames whose metadata and pixel lengths are
 * given: fills frames[] and returns the header and total sizes.  -1 on
 * overflow or limits. */
int dpc_shmimg_layout(uint32_t nframes, const uint32_t *meta_len,
                      const uint64_t *pix_len, struct dpc_shmimg_frame *frames,
                      uint32_t *header_len, uint64_t *total, char *err,
                      size_t errlen);
/* Writes the fixed part and frame table (hdr has header_len bytes). */
void dpc_shmimg_put_header(uint8_t *hdr, uint32_t header_len, uint64_t total,
                           const struct dpc_shmimg_frame *frames,
                           uint32_t nframes);

/* A growing metadata blob.  Appends never fail midway: on allocation
 * failure or limits the blob is marked failed (and stays so). */
struct dpc_shmimg_blob {
    uint8_t *data;
    size_t len, cap;
    int failed;
};
void dpc_shmimg_add(struct dpc_shmimg_blob *b, enum dpc_shmimg_type type,
                    const char *key, const void *value, size_t value_len);
void dpc_shmimg_add_u64(struct dpc_shmimg_blob *b, const char *key,
                        uint64_t v);
void dpc_shmimg_add_f64(struct dpc_shmimg_blob *b, const char *key, double v);
void dpc_shmimg_blob_free(struct dpc_shmimg_blob *b);

uint64_t dpc_shmimg_u64(const struct dpc_shmimg_rec *rec);
double dpc_shmimg_f64(const struct dpc_shmimg_rec *rec);

#endif
