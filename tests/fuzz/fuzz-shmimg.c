/*
 * libFuzzer target for dpc_shmimg, the reader of a published image: the
 * input is a whole segment (seg_len is its length), as an untrusted
 * publisher could have written it.
 *
 *  1. The first min(size, 4096) bytes alone, in a heap buffer of exactly
 *     that size: dpc_shmimg_parse must answer without reading past them,
 *     1 only when the header is longer or frames[] too small.
 *  2. The whole segment, with a frames[] of FRAMES entries, then (when it
 *     asks for more room) again with as many as it says.
 *  3. When it accepts, every frame is checked against the segment and the
 *     rules in dpc_shmimg.h, every byte of its pixels is read, and its
 *     metadata (copied into a heap buffer of exactly meta_len bytes) is
 *     walked with dpc_shmimg_next, every byte of every key and value it
 *     reports read, so AddressSanitizer catches any out-of-bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dpc_shmimg.h"

#define FRAMES 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint8_t sink;

static void touch(const uint8_t *p, size_t n)
{
    uint8_t x = 0;

    for (size_t i = 0; i < n; i++)
        x ^= p[i];
    sink ^= x;
}

static void walk_meta(const uint8_t *hdr, const struct dpc_shmimg_frame *f)
{
    uint8_t *blob = malloc(f->meta_len != 0 ? f->meta_len : 1);
    struct dpc_shmimg_rec rec;
    char err[256];
    size_t pos = 0, before;
    int rc;

    if (blob == NULL)
        abort();
    memcpy(blob, hdr + f->meta_off, f->meta_len);
    for (;;) {
        before = pos;
        err[0] = '\0';
        rc = dpc_shmimg_next(blob, f->meta_len, &pos, &rec, err, sizeof(err));
        if (rc <= 0) {
            if (pos != before || (rc < 0 && err[0] == '\0'))
                abort();
            if (rc == 0 && pos < f->meta_len)
                abort();                    /* the end before the end */
            break;
        }
        if (pos <= before || pos > f->meta_len ||
            rec.type < DPC_SHMIMG_U64 || rec.type >= DPC_SHMIMG_NTYPES ||
            rec.key_len == 0 || rec.key_len > DPC_SHMIMG_MAX_KEY ||
            (const uint8_t *)rec.key < blob + before ||
            rec.value + rec.value_len != blob + pos ||
            memchr(rec.key, '\0', rec.key_len) != NULL ||
            ((rec.type == DPC_SHMIMG_U64 || rec.type == DPC_SHMIMG_F64) &&
             rec.value_len != 8) ||
            (rec.type == DPC_SHMIMG_STR &&
             memchr(rec.value, '\0', rec.value_len) != NULL))
            abort();
        touch((const uint8_t *)rec.key, rec.key_len);
        touch(rec.value, rec.value_len);
        sink ^= (uint8_t)dpc_shmimg_is(&rec, "columns");
        sink ^= (uint8_t)dpc_shmimg_u64(&rec);
        sink ^= (uint8_t)(dpc_shmimg_f64(&rec) > 0);
    }
    free(blob);
}

/* A header accepted: every rule of dpc_shmimg.h holds, then read it all. */
static void check_image(const uint8_t *data, size_t size, uint32_t header_len,
                        const struct dpc_shmimg_frame *frames, uint32_t n)
{
    uint64_t prev_end = header_len;
    uint64_t table_end = DPC_SHMIMG_FIXED + (uint64_t)n * DPC_SHMIMG_FRAME;

    if (header_len == 0 || header_len % DPC_SHMIMG_ALIGN != 0 ||
        header_len > size || n == 0 || n > DPC_SHMIMG_MAX_FRAMES ||
        table_end > header_len)
        abort();
    for (uint32_t i = 0; i < n; i++) {
        const struct dpc_shmimg_frame *f = &frames[i];

        if ((uint64_t)f->meta_off + f->meta_len > header_len ||
            (f->meta_len != 0 && f->meta_off < table_end) ||
            f->pix_len == 0 || f->pix_off % DPC_SHMIMG_ALIGN != 0 ||
            f->pix_off < prev_end || f->pix_off > size ||
            f->pix_len > size - f->pix_off)
            abort();
        prev_end = f->pix_off + f->pix_len;
        touch(data + f->pix_off, f->pix_len);
        walk_meta(data, f);
    }
}

/* Step 1: only a prefix of the segment mapped. */
static int parse_prefix(const uint8_t *data, size_t size)
{
    size_t len = size < DPC_SHMIMG_ALIGN ? size : DPC_SHMIMG_ALIGN;
    uint8_t *prefix = malloc(len != 0 ? len : 1);
    struct dpc_shmimg_frame frames[FRAMES];
    uint32_t header_len = 0, n = 0;
    char err[256] = "";
    int rc;

    if (prefix == NULL)
        abort();
    memcpy(prefix, data, len);
    rc = dpc_shmimg_parse(prefix, len, size, &header_len, frames, FRAMES, &n,
                          err, sizeof(err));
    free(prefix);
    if (rc < 0 && err[0] == '\0')
        abort();
    if (rc == 1 && len >= DPC_SHMIMG_FIXED && header_len <= len && n <= FRAMES)
        abort();                            /* had all it needed */
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dpc_shmimg_frame frames[FRAMES], *more;
    uint32_t header_len = 0, n = 0;
    char err[256] = "";
    int pre = parse_prefix(data, size), rc;

    rc = dpc_shmimg_parse(data, size, size, &header_len, frames, FRAMES, &n,
                          err, sizeof(err));
    if (pre < 0 && rc >= 0)
        abort();                            /* the fixed part was refused */
    if (rc < 0) {
        if (err[0] == '\0')
            abort();
        return 0;
    }
    if (rc == 0) {
        check_image(data, size, header_len, frames, n);
        return 0;
    }
    /* 1 with the whole segment: only frames[] can be short. */
    if (size < DPC_SHMIMG_FIXED || n <= FRAMES || header_len > size)
        abort();
    more = malloc((size_t)n * sizeof(*more));
    if (more == NULL)
        abort();
    err[0] = '\0';
    rc = dpc_shmimg_parse(data, size, size, &header_len, more, n, &n, err,
                          sizeof(err));
    if (rc == 1 || (rc < 0 && err[0] == '\0'))
        abort();
    if (rc == 0)
        check_image(data, size, header_len, more, n);
    free(more);
    return 0;
}
