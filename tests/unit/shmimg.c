/*
 * Unit tests for dpc_shmimg, the layout of a published image in a shared
 * segment: layout and header writing, metadata records, and the reader's
 * checks of every offset and length (the segment is untrusted input).
 *
 * Segments are heap buffers of exactly their length, and the reader is
 * given exactly the bytes it is told it has, so an over-read shows under
 * AddressSanitizer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dpc_shmimg.h"

#define ALIGN DPC_SHMIMG_ALIGN
#define MAXF 8

#define assert_contains(hay, needle)                                       \
    do {                                                                   \
        if (strstr((hay), (needle)) == NULL)                               \
            fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));   \
    } while (0)

/* A whole segment as a writer makes it. */
struct img {
    uint8_t *seg;
    uint64_t total;
    uint32_t header_len, n;
    struct dpc_shmimg_frame frames[MAXF];
};

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Lays out n frames with the given blobs (NULL: none) and pixel lengths,
 * writes header, metadata and pixels (frame i's bytes are 'A' + i). */
static void make_img(struct img *im, uint32_t n,
                     const struct dpc_shmimg_blob *blobs,
                     const uint64_t *pix_len)
{
    uint32_t meta_len[MAXF] = { 0 };
    char err[256] = "";

    assert_true(n <= MAXF);
    memset(im, 0, sizeof(*im));
    im->n = n;
    for (uint32_t i = 0; i < n && blobs != NULL; i++)
        meta_len[i] = (uint32_t)blobs[i].len;
    if (dpc_shmimg_layout(n, meta_len, pix_len, im->frames, &im->header_len,
                          &im->total, err, sizeof(err)) != 0)
        fail_msg("layout: %s", err);
    im->seg = calloc(1, im->total);
    assert_non_null(im->seg);
    dpc_shmimg_put_header(im->seg, im->header_len, im->total, im->frames, n);
    for (uint32_t i = 0; i < n; i++) {
        if (blobs != NULL && blobs[i].len != 0)
            memcpy(im->seg + im->frames[i].meta_off, blobs[i].data,
                   blobs[i].len);
        memset(im->seg + im->frames[i].pix_off, 'A' + (int)i,
               im->frames[i].pix_len);
    }
}

/* One frame of 4096 pixel bytes, no metadata: the smallest image. */
static void make_simple(struct img *im)
{
    const uint64_t pix[1] = { ALIGN };

    make_img(im, 1, NULL, pix);
}

static void free_img(struct img *im)
{
    free(im->seg);
    im->seg = NULL;
}

/* Parses the first hdr_len bytes of im (copied into a buffer of exactly
 * that size) as a segment of seg_len bytes. */
static int parse(const struct img *im, size_t hdr_len, uint64_t seg_len,
                 uint32_t *header_len, struct dpc_shmimg_frame *frames,
                 uint32_t max, uint32_t *nframes, char *err, size_t errlen)
{
    uint8_t *copy = malloc(hdr_len != 0 ? hdr_len : 1);
    int rc;

    assert_non_null(copy);
    memcpy(copy, im->seg, hdr_len);
    rc = dpc_shmimg_parse(copy, hdr_len, seg_len, header_len, frames, max,
                          nframes, err, errlen);
    free(copy);
    return rc;
}

/* The whole header of im must be refused with a reason containing why. */
static void refused(const struct img *im, const char *why)
{
    struct dpc_shmimg_frame frames[MAXF];
    uint32_t header_len, n;
    char err[256] = "";
    size_t hdr_len = im->header_len != 0 && im->header_len <= im->total
                         ? im->header_len : (size_t)im->total;

    if (parse(im, hdr_len, im->total, &header_len, frames, MAXF, &n, err,
              sizeof(err)) != -1)
        fail_msg("image accepted (refusal wanted: %s)", why);
    assert_contains(err, why);
}

/* Frame i's table entry in the segment. */
static uint8_t *entry(struct img *im, uint32_t i)
{
    return im->seg + DPC_SHMIMG_FIXED + (size_t)i * DPC_SHMIMG_FRAME;
}

/* The next record of blob must be malformed, with a reason containing
 * why.  The blob is given in a buffer of exactly len bytes. */
static void record_refused(const uint8_t *blob, size_t len, const char *why)
{
    uint8_t *copy = malloc(len != 0 ? len : 1);
    struct dpc_shmimg_rec rec;
    char err[256] = "";
    size_t pos = 0;

    assert_non_null(copy);
    memcpy(copy, blob, len);
    if (dpc_shmimg_next(copy, len, &pos, &rec, err, sizeof(err)) != -1)
        fail_msg("malformed record accepted (%s)", why);
    assert_int_equal(pos, 0);
    assert_contains(err, why);
    free(copy);
}

/* A record header: type, reserved, key_len, value_len. */
static size_t rec_hdr(uint8_t *p, uint8_t type, uint8_t reserved,
                      uint16_t klen, uint32_t vlen)
{
    p[0] = type;
    p[1] = reserved;
    p[2] = (uint8_t)klen;
    p[3] = (uint8_t)(klen >> 8);
    put_le32(p + 4, vlen);
    return 8;
}

/* Three frames with metadata of every type round-trip through layout,
 * put_header, parse and next. */
static void shmimg_round_trip_test(void **state)
{
    struct dpc_shmimg_blob blobs[3] = { { 0 } };
    const uint64_t pix[3] = { ALIGN, 1, 10000 };
    const uint8_t raw[5] = { 0, 1, 2, 0, 255 };
    struct dpc_shmimg_frame frames[MAXF];
    struct dpc_shmimg_rec rec;
    uint32_t header_len = 0, n = 0;
    char err[256] = "";
    struct img im;
    size_t pos;
    const uint8_t *blob;

    dpc_shmimg_add_u64(&blobs[0], "columns", 640);
    dpc_shmimg_add_u64(&blobs[0], "max", UINT64_MAX);
    dpc_shmimg_add_f64(&blobs[0], "gamma", 0.4545);
    dpc_shmimg_add(&blobs[0], DPC_SHMIMG_STR, "comment", "hello", 5);
    dpc_shmimg_add(&blobs[0], DPC_SHMIMG_BYTES, "profile:icc", raw,
                   sizeof(raw));
    dpc_shmimg_add(&blobs[0], DPC_SHMIMG_STR, "empty", "", 0);
    dpc_shmimg_add_f64(&blobs[2], "delay", -1.5);
    assert_false(blobs[0].failed);
    assert_false(blobs[2].failed);
    make_img(&im, 3, blobs, pix);
    assert_int_equal(im.header_len, ALIGN);
    assert_int_equal(parse(&im, im.header_len, im.total, &header_len, frames,
                           MAXF, &n, err, sizeof(err)), 0);
    assert_int_equal(header_len, im.header_len);
    assert_int_equal(n, 3);
    assert_memory_equal(frames, im.frames, 3 * sizeof(frames[0]));

    blob = im.seg + frames[0].meta_off;
    pos = 0;
    assert_int_equal(dpc_shmimg_next(blob, frames[0].meta_len, &pos, &rec,
                                     err, sizeof(err)), 1);
    assert_int_equal(rec.type, DPC_SHMIMG_U64);
    assert_true(dpc_shmimg_is(&rec, "columns"));
    assert_false(dpc_shmimg_is(&rec, "column"));
    assert_false(dpc_shmimg_is(&rec, "columnsx"));
    assert_true(dpc_shmimg_u64(&rec) == 640);
    assert_int_equal(dpc_shmimg_next(blob, frames[0].meta_len, &pos, &rec,
                                     err, sizeof(err)), 1);
    assert_true(dpc_shmimg_is(&rec, "max"));
    assert_true(dpc_shmimg_u64(&rec) == UINT64_MAX);
    assert_int_equal(dpc_shmimg_next(blob, frames[0].meta_len, &pos, &rec,
                                     err, sizeof(err)), 1);
    assert_int_equal(rec.type, DPC_SHMIMG_F64);
    assert_true(dpc_shmimg_is(&rec, "gamma"));
    assert_true(dpc_shmimg_f64(&rec) == 0.4545);
    assert_int_equal(dpc_shmimg_next(blob, frames[0].meta_len, &pos, &rec,
                                     err, sizeof(err)), 1);
    assert_int_equal(rec.type, DPC_SHMIMG_STR);
    assert_true(dpc_shmimg_is(&rec, "comment"));
    assert_int_equal(rec.value_len, 5);
    assert_memory_equal(rec.value, "hello", 5);
    assert_true(dpc_shmimg_u64(&rec) == 0);     /* not 8 bytes */
    assert_int_equal(dpc_shmimg_next(blob, frames[0].meta_len, &pos, &rec,
                                     err, sizeof(err)), 1);
    assert_int_equal(rec.type, DPC_SHMIMG_BYTES);
    assert_true(dpc_shmimg_is(&rec, "profile:icc"));
    assert_int_equal(rec.value_len, sizeof(raw));
    assert_memory_equal(rec.value, raw, sizeof(raw));
    assert_int_equal(dpc_shmimg_next(blob, frames[0].meta_len, &pos, &rec,
                                     err, sizeof(err)), 1);
    assert_true(dpc_shmimg_is(&rec, "empty"));
    assert_int_equal(rec.value_len, 0);
    assert_int_equal(dpc_shmimg_next(blob, frames[0].meta_len, &pos, &rec,
                                     err, sizeof(err)), 0);
    assert_int_equal(pos, frames[0].meta_len);

    pos = 0;
    assert_int_equal(frames[1].meta_len, 0);
    assert_int_equal(dpc_shmimg_next(im.seg + frames[1].meta_off, 0, &pos,
                                     &rec, err, sizeof(err)), 0);
    blob = im.seg + frames[2].meta_off;
    assert_int_equal(dpc_shmimg_next(blob, frames[2].meta_len, &pos, &rec,
                                     err, sizeof(err)), 1);
    assert_true(dpc_shmimg_is(&rec, "delay"));
    assert_true(dpc_shmimg_f64(&rec) == -1.5);
    assert_int_equal(dpc_shmimg_next(blob, frames[2].meta_len, &pos, &rec,
                                     err, sizeof(err)), 0);

    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(im.seg[frames[i].pix_off], 'A' + i);
        assert_int_equal(im.seg[frames[i].pix_off + frames[i].pix_len - 1],
                         'A' + i);
    }
    for (int i = 0; i < 3; i++)
        dpc_shmimg_blob_free(&blobs[i]);
    free_img(&im);
}

/* Layout: metadata right after the frame table, pixels page-aligned past
 * the header in frame order, total = end of the last frame's pixels. */
static void shmimg_layout_test(void **state)
{
    const uint32_t meta[3] = { 100, 0, 5000 };
    const uint64_t pix[3] = { 1, 4097, 8192 };
    struct dpc_shmimg_frame f[3];
    uint32_t header_len;
    uint64_t total;
    char err[256] = "";

    assert_int_equal(dpc_shmimg_layout(3, meta, pix, f, &header_len, &total,
                                       err, sizeof(err)), 0);
    assert_int_equal(f[0].meta_off, 24 + 3 * 32);
    assert_int_equal(f[0].meta_len, 100);
    assert_int_equal(f[1].meta_off, 24 + 3 * 32 + 100);
    assert_int_equal(f[1].meta_len, 0);
    assert_int_equal(f[2].meta_off, 24 + 3 * 32 + 100);
    assert_int_equal(f[2].meta_len, 5000);
    assert_int_equal(header_len, 2 * ALIGN);
    assert_true(f[0].pix_off == 2 * ALIGN && f[0].pix_len == 1);
    assert_true(f[1].pix_off == 3 * ALIGN && f[1].pix_len == 4097);
    assert_true(f[2].pix_off == 5 * ALIGN && f[2].pix_len == 8192);
    assert_true(total == 7 * ALIGN);
}

/* Layout refuses no frames, too many, empty pixels, metadata past the
 * header limit and pixel lengths that overflow. */
static void shmimg_layout_refuses_test(void **state)
{
    const uint32_t meta[2] = { 0, 0 }, big[2] = { DPC_SHMIMG_MAX_HEADER, 1 };
    uint64_t pix[2] = { 1, 1 };
    struct dpc_shmimg_frame f[2];
    uint32_t header_len;
    uint64_t total;
    char err[256] = "";

    assert_int_equal(dpc_shmimg_layout(0, meta, pix, f, &header_len, &total,
                                       err, sizeof(err)), -1);
    assert_contains(err, "0 frames (1 to 65536)");
    assert_int_equal(dpc_shmimg_layout(DPC_SHMIMG_MAX_FRAMES + 1, meta, pix,
                                       f, &header_len, &total, err,
                                       sizeof(err)), -1);
    assert_contains(err, "65537 frames");
    assert_int_equal(dpc_shmimg_layout(2, big, pix, f, &header_len, &total,
                                       err, sizeof(err)), -1);
    assert_contains(err, "metadata over 268435456 bytes");
    pix[1] = 0;
    assert_int_equal(dpc_shmimg_layout(2, meta, pix, f, &header_len, &total,
                                       err, sizeof(err)), -1);
    assert_contains(err, "frame 1: bad pixel length");
    pix[1] = UINT64_MAX - ALIGN;
    assert_int_equal(dpc_shmimg_layout(2, meta, pix, f, &header_len, &total,
                                       err, sizeof(err)), -1);
    assert_contains(err, "frame 1: bad pixel length");
    pix[0] = (uint64_t)INT64_MAX;
    pix[1] = 1;
    assert_int_equal(dpc_shmimg_layout(2, meta, pix, f, &header_len, &total,
                                       err, sizeof(err)), -1);
    assert_contains(err, "frame 0: bad pixel length");
}

/* Two phases: with fewer than 24 bytes, 1 (more needed) unless the
 * segment itself is that short; with the fixed part but not the whole
 * header, 1 with header_len and nframes set; then 0. */
static void shmimg_parse_short_header_test(void **state)
{
    struct dpc_shmimg_blob blob = { 0 };
    const uint64_t pix[2] = { 10, 20 };
    struct dpc_shmimg_blob blobs[2];
    struct dpc_shmimg_frame frames[MAXF];
    uint32_t header_len = 0, n = 0;
    char err[256] = "";
    struct img im;
    uint8_t big[6000];

    memset(big, 'v', sizeof(big));
    dpc_shmimg_add(&blob, DPC_SHMIMG_BYTES, "big", big, sizeof(big));
    blobs[0] = blob;
    blobs[1] = (struct dpc_shmimg_blob){ 0 };
    make_img(&im, 2, blobs, pix);
    assert_int_equal(im.header_len, 2 * ALIGN);
    assert_int_equal(parse(&im, 0, im.total, &header_len, frames, MAXF, &n,
                           err, sizeof(err)), 1);
    assert_int_equal(parse(&im, 23, im.total, &header_len, frames, MAXF, &n,
                           err, sizeof(err)), 1);
    assert_int_equal(parse(&im, 23, 23, &header_len, frames, MAXF, &n, err,
                           sizeof(err)), -1);
    assert_contains(err, "segment of 23 bytes is too short for an image");
    assert_int_equal(parse(&im, 24, im.total, &header_len, frames, MAXF, &n,
                           err, sizeof(err)), 1);
    assert_int_equal(header_len, 2 * ALIGN);
    assert_int_equal(n, 2);
    header_len = n = 0;
    assert_int_equal(parse(&im, ALIGN, im.total, &header_len, frames, MAXF,
                           &n, err, sizeof(err)), 1);
    assert_int_equal(header_len, 2 * ALIGN);
    assert_int_equal(n, 2);
    assert_int_equal(parse(&im, 2 * ALIGN - 1, im.total, &header_len, frames,
                           MAXF, &n, err, sizeof(err)), 1);
    assert_int_equal(parse(&im, 2 * ALIGN, im.total, &header_len, frames,
                           MAXF, &n, err, sizeof(err)), 0);
    assert_memory_equal(frames, im.frames, 2 * sizeof(frames[0]));
    dpc_shmimg_blob_free(&blob);
    free_img(&im);
}

/* Two phases: frames[] too small gives 1 with nframes set and frames[]
 * untouched; a second call with room gives 0. */
static void shmimg_parse_frames_room_test(void **state)
{
    const uint64_t pix[5] = { 1, 2, 3, 4, 5 };
    struct dpc_shmimg_frame frames[MAXF], zero[MAXF];
    uint32_t header_len = 0, n = 0;
    char err[256] = "";
    struct img im;

    make_img(&im, 5, NULL, pix);
    memset(frames, 0, sizeof(frames));
    memset(zero, 0, sizeof(zero));
    assert_int_equal(parse(&im, im.header_len, im.total, &header_len, frames,
                           4, &n, err, sizeof(err)), 1);
    assert_int_equal(n, 5);
    assert_int_equal(header_len, ALIGN);
    assert_memory_equal(frames, zero, sizeof(frames));
    assert_int_equal(parse(&im, im.header_len, im.total, &header_len, frames,
                           0, &n, err, sizeof(err)), 1);
    assert_int_equal(parse(&im, im.header_len, im.total, &header_len, frames,
                           n, &n, err, sizeof(err)), 0);
    assert_memory_equal(frames, im.frames, 5 * sizeof(frames[0]));
    free_img(&im);
}

/* A header that does not start "MDPCSHM1" is refused. */
static void shmimg_bad_magic_test(void **state)
{
    struct img im;

    make_simple(&im);
    im.seg[7] = '2';
    refused(&im, "not a published image (bad magic)");
    memset(im.seg, 0, 8);
    refused(&im, "bad magic");
    free_img(&im);
}

/* total_size must be the segment's length exactly. */
static void shmimg_total_mismatch_test(void **state)
{
    struct dpc_shmimg_frame frames[MAXF];
    uint32_t header_len, n;
    char err[256] = "";
    struct img im;

    make_simple(&im);
    assert_int_equal(parse(&im, ALIGN, im.total + 1, &header_len, frames,
                           MAXF, &n, err, sizeof(err)), -1);
    assert_contains(err, "header says 8192 bytes, the segment has 8193");
    assert_int_equal(parse(&im, ALIGN, im.total - 1, &header_len, frames,
                           MAXF, &n, err, sizeof(err)), -1);
    assert_contains(err, "the segment has 8191");
    put_le64(im.seg + 16, UINT64_MAX);
    refused(&im, "header says 18446744073709551615 bytes");
    free_img(&im);
}

/* header_len must be a non-zero multiple of 4096, within the limit and
 * the segment. */
static void shmimg_bad_header_len_test(void **state)
{
    static const uint32_t bad[] = { 0, 1, 24, 4095, 4097, 6000, 3 * 4096,
                                    UINT32_MAX & ~(ALIGN - 1) };
    struct dpc_shmimg_frame frames[MAXF];
    uint32_t header_len, n;
    char err[256] = "";
    struct img im;

    make_simple(&im);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        put_le32(im.seg + 8, bad[i]);
        assert_int_equal(parse(&im, ALIGN, im.total, &header_len, frames,
                               MAXF, &n, err, sizeof(err)), -1);
        assert_contains(err, "bad header length");
    }
    /* Past DPC_SHMIMG_MAX_HEADER even in a segment big enough for it. */
    put_le32(im.seg + 8, DPC_SHMIMG_MAX_HEADER + ALIGN);
    put_le64(im.seg + 16, 1ULL << 40);
    assert_int_equal(parse(&im, ALIGN, 1ULL << 40, &header_len, frames, MAXF,
                           &n, err, sizeof(err)), -1);
    assert_contains(err, "bad header length 268439552");
    /* The header may not be the whole segment: no room for pixels. */
    put_le32(im.seg + 8, 2 * ALIGN);
    put_le64(im.seg + 16, im.total);
    assert_int_equal(parse(&im, im.total, im.total, &header_len, frames, MAXF,
                           &n, err, sizeof(err)), -1);
    assert_contains(err, "frame 0: pixels");
    free_img(&im);
}

/* Frame counts of 0, past DPC_SHMIMG_MAX_FRAMES, or too many for the
 * header's room are refused. */
static void shmimg_bad_frame_count_test(void **state)
{
    struct img im;

    make_simple(&im);
    put_le32(im.seg + 12, 0);
    refused(&im, "bad frame count 0");
    put_le32(im.seg + 12, DPC_SHMIMG_MAX_FRAMES + 1);
    refused(&im, "bad frame count 65537");
    put_le32(im.seg + 12, UINT32_MAX);
    refused(&im, "bad frame count 4294967295");
    put_le32(im.seg + 12, 128);     /* 24 + 128 * 32 = 4120 > 4096 */
    refused(&im, "frame table past the header");
    put_le32(im.seg + 12, 2);       /* fits, but frame 1 is all zeros */
    refused(&im, "frame 1: pixels [0, +0)");
    free_img(&im);
}

/* Pixels must start on a 4096 boundary. */
static void shmimg_pixels_unaligned_test(void **state)
{
    struct img im;

    make_simple(&im);
    put_le64(entry(&im, 0), ALIGN + 1);
    put_le64(entry(&im, 0) + 8, 100);
    refused(&im, "frame 0: pixels [4097, +100) outside the segment's 8192 "
            "bytes, unaligned or overlapping");
    put_le64(entry(&im, 0), ALIGN / 2);
    refused(&im, "frame 0: pixels [2048, +100)");
    free_img(&im);
}

/* Pixels may not overlap the header, each other, or come out of order. */
static void shmimg_pixels_overlap_test(void **state)
{
    const uint64_t pix[2] = { 2 * ALIGN, ALIGN };
    struct img im;

    make_img(&im, 2, NULL, pix);
    put_le64(entry(&im, 0), 0);             /* over the header */
    refused(&im, "frame 0: pixels [0, +8192)");
    put_le64(entry(&im, 0), im.frames[0].pix_off);
    put_le64(entry(&im, 1), im.frames[0].pix_off + ALIGN);
    refused(&im, "frame 1: pixels [8192, +4096)");
    put_le64(entry(&im, 1), im.frames[0].pix_off);
    refused(&im, "frame 1: pixels");
    /* Frame 1 before frame 0: out of order. */
    put_le64(entry(&im, 0), 2 * ALIGN);
    put_le64(entry(&im, 0) + 8, ALIGN);
    put_le64(entry(&im, 1), ALIGN);
    put_le64(entry(&im, 1) + 8, ALIGN);
    refused(&im, "frame 1: pixels [4096, +4096)");
    /* Back to back is fine. */
    put_le64(entry(&im, 0), ALIGN);
    put_le64(entry(&im, 0) + 8, ALIGN);
    put_le64(entry(&im, 1), 2 * ALIGN);
    put_le64(entry(&im, 1) + 8, 2 * ALIGN);
    {
        struct dpc_shmimg_frame frames[MAXF];
        uint32_t header_len, n;
        char err[256] = "";

        assert_int_equal(parse(&im, ALIGN, im.total, &header_len, frames,
                               MAXF, &n, err, sizeof(err)), 0);
    }
    free_img(&im);
}

/* Pixels past the segment's end, and empty pixels, are refused. */
static void shmimg_pixels_past_end_test(void **state)
{
    struct img im;

    make_simple(&im);
    put_le64(entry(&im, 0) + 8, ALIGN + 1);
    refused(&im, "frame 0: pixels [4096, +4097) outside the segment's 8192");
    put_le64(entry(&im, 0), 2 * ALIGN);
    put_le64(entry(&im, 0) + 8, 1);
    refused(&im, "frame 0: pixels [8192, +1)");
    put_le64(entry(&im, 0), ALIGN);
    put_le64(entry(&im, 0) + 8, 0);
    refused(&im, "frame 0: pixels [4096, +0)");
    free_img(&im);
}

/* pix_off + pix_len wrapping past 2^64 is refused, not taken as small. */
static void shmimg_pixels_overflow_test(void **state)
{
    struct img im;

    make_simple(&im);
    put_le64(entry(&im, 0), UINT64_MAX - ALIGN + 1);    /* aligned */
    put_le64(entry(&im, 0) + 8, 2 * ALIGN);
    refused(&im, "frame 0: pixels [18446744073709547520, +8192)");
    put_le64(entry(&im, 0), ALIGN);
    put_le64(entry(&im, 0) + 8, UINT64_MAX);
    refused(&im, "frame 0: pixels [4096, +18446744073709551615)");
    free_img(&im);
}

/* Metadata must lie in the header region past the frame table; an empty
 * blob may point anywhere within the header. */
static void shmimg_meta_outside_test(void **state)
{
    struct dpc_shmimg_frame frames[MAXF];
    uint32_t header_len, n;
    char err[256] = "";
    struct img im;

    make_simple(&im);
    put_le32(entry(&im, 0) + 16, ALIGN - 10);
    put_le32(entry(&im, 0) + 20, 11);
    refused(&im, "frame 0: metadata outside the header");
    put_le32(entry(&im, 0) + 20, 10);
    assert_int_equal(parse(&im, ALIGN, im.total, &header_len, frames, MAXF,
                           &n, err, sizeof(err)), 0);
    put_le32(entry(&im, 0) + 16, 0);        /* over the fixed part */
    put_le32(entry(&im, 0) + 20, 8);
    refused(&im, "metadata outside the header");
    put_le32(entry(&im, 0) + 16, 24 + 32 - 1);  /* over the table's end */
    refused(&im, "metadata outside the header");
    put_le32(entry(&im, 0) + 16, UINT32_MAX);
    put_le32(entry(&im, 0) + 20, UINT32_MAX);   /* sum past 2^32 */
    refused(&im, "metadata outside the header");
    put_le32(entry(&im, 0) + 16, UINT32_MAX);
    put_le32(entry(&im, 0) + 20, 1);
    refused(&im, "metadata outside the header");
    put_le32(entry(&im, 0) + 16, ALIGN + 1);    /* past the header, empty */
    put_le32(entry(&im, 0) + 20, 0);
    refused(&im, "metadata outside the header");
    put_le32(entry(&im, 0) + 16, 0);            /* empty, anywhere inside */
    assert_int_equal(parse(&im, ALIGN, im.total, &header_len, frames, MAXF,
                           &n, err, sizeof(err)), 0);
    free_img(&im);
}

/* The frame entry's reserved u64 must be 0. */
static void shmimg_reserved_test(void **state)
{
    const uint64_t pix[2] = { 1, 1 };
    struct img im;

    make_img(&im, 2, NULL, pix);
    entry(&im, 1)[31] = 1;
    refused(&im, "frame 1: reserved field set");
    entry(&im, 1)[31] = 0;
    entry(&im, 0)[24] = 0x80;
    refused(&im, "frame 0: reserved field set");
    free_img(&im);
}

/* Malformed records: type 0 or past the last, reserved byte, key_len 0 or
 * past the limit, key or value longer than what is left, a truncated
 * record header, U64/F64 not 8 bytes, NUL in a STR value or in a key. */
static void shmimg_next_malformed_test(void **state)
{
    uint8_t b[64 + DPC_SHMIMG_MAX_KEY + 8];
    size_t n;

    n = rec_hdr(b, 0, 0, 1, 0);
    b[n++] = 'k';
    record_refused(b, n, "malformed record at 0");
    n = rec_hdr(b, DPC_SHMIMG_NTYPES, 0, 1, 0);
    b[n++] = 'k';
    record_refused(b, n, "malformed record at 0");
    n = rec_hdr(b, 0xff, 0, 1, 0);
    b[n++] = 'k';
    record_refused(b, n, "malformed record");
    n = rec_hdr(b, DPC_SHMIMG_BYTES, 1, 1, 0);
    b[n++] = 'k';
    record_refused(b, n, "malformed record");
    n = rec_hdr(b, DPC_SHMIMG_BYTES, 0, 0, 1);
    b[n++] = 'v';
    record_refused(b, n, "malformed record at 0");
    n = rec_hdr(b, DPC_SHMIMG_BYTES, 0, DPC_SHMIMG_MAX_KEY + 1, 0);
    memset(b + n, 'k', DPC_SHMIMG_MAX_KEY + 1);
    record_refused(b, n + DPC_SHMIMG_MAX_KEY + 1, "malformed record");
    n = rec_hdr(b, DPC_SHMIMG_BYTES, 0, 4, 0);
    memcpy(b + n, "key", 3);
    record_refused(b, n + 3, "malformed record at 0");  /* key past end */
    n = rec_hdr(b, DPC_SHMIMG_BYTES, 0, 3, 5);
    memcpy(b + n, "keyvalu", 7);
    record_refused(b, n + 7, "malformed record at 0");  /* value past end */
    n = rec_hdr(b, DPC_SHMIMG_BYTES, 0, 3, UINT32_MAX);
    memcpy(b + n, "keyv", 4);
    record_refused(b, n + 4, "malformed record at 0");
    rec_hdr(b, DPC_SHMIMG_BYTES, 0, 0, 0);
    record_refused(b, 7, "truncated record at 0");
    record_refused(b, 1, "truncated record at 0");
    n = rec_hdr(b, DPC_SHMIMG_U64, 0, 1, 7);
    memcpy(b + n, "k1234567", 8);
    record_refused(b, n + 8, "malformed record 'k'");
    n = rec_hdr(b, DPC_SHMIMG_U64, 0, 1, 9);
    memcpy(b + n, "k123456789", 10);
    record_refused(b, n + 10, "malformed record 'k'");
    n = rec_hdr(b, DPC_SHMIMG_F64, 0, 2, 4);
    memcpy(b + n, "kk1234", 6);
    record_refused(b, n + 6, "malformed record 'kk'");
    n = rec_hdr(b, DPC_SHMIMG_STR, 0, 3, 3);
    memcpy(b + n, "strx\0y", 6);
    record_refused(b, n + 6, "malformed record 'str'");
    n = rec_hdr(b, DPC_SHMIMG_BYTES, 0, 3, 1);
    memcpy(b + n, "k\0yv", 4);
    record_refused(b, n + 4, "malformed record");
}

/* A malformed record after good ones is reported at its offset and the
 * good ones before it are read. */
static void shmimg_next_stops_test(void **state)
{
    struct dpc_shmimg_blob b = { 0 };
    struct dpc_shmimg_rec rec;
    char err[256] = "";
    uint8_t *copy;
    size_t pos = 0, good;

    dpc_shmimg_add_u64(&b, "a", 1);
    dpc_shmimg_add(&b, DPC_SHMIMG_STR, "b", "x", 1);
    good = b.len;
    dpc_shmimg_add(&b, DPC_SHMIMG_BYTES, "c", "yz", 2);
    assert_false(b.failed);
    b.data[good] = 9;                       /* type */
    copy = malloc(b.len);
    assert_non_null(copy);
    memcpy(copy, b.data, b.len);
    assert_int_equal(dpc_shmimg_next(copy, b.len, &pos, &rec, err,
                                     sizeof(err)), 1);
    assert_int_equal(dpc_shmimg_next(copy, b.len, &pos, &rec, err,
                                     sizeof(err)), 1);
    assert_int_equal(pos, good);
    assert_int_equal(dpc_shmimg_next(copy, b.len, &pos, &rec, err,
                                     sizeof(err)), -1);
    assert_int_equal(pos, good);
    assert_contains(err, "malformed record at 27");
    /* Cut one byte short: the value no longer fits. */
    copy[good] = DPC_SHMIMG_BYTES;
    assert_int_equal(dpc_shmimg_next(copy, b.len - 1, &pos, &rec, err,
                                     sizeof(err)), -1);
    free(copy);
    dpc_shmimg_blob_free(&b);
}

/* Edge cases that are fine: NUL inside BYTES, an empty STR, a key of
 * DPC_SHMIMG_MAX_KEY bytes, a record exactly filling the blob. */
static void shmimg_next_edges_test(void **state)
{
    char key[DPC_SHMIMG_MAX_KEY + 2];
    struct dpc_shmimg_blob b = { 0 };
    struct dpc_shmimg_rec rec;
    char err[256] = "";
    size_t pos = 0;

    memset(key, 'k', DPC_SHMIMG_MAX_KEY);
    key[DPC_SHMIMG_MAX_KEY] = '\0';
    dpc_shmimg_add(&b, DPC_SHMIMG_BYTES, "bin", "\0\0\0", 3);
    dpc_shmimg_add(&b, DPC_SHMIMG_STR, "s", NULL, 0);
    dpc_shmimg_add(&b, DPC_SHMIMG_U64, key, "12345678", 8);
    assert_false(b.failed);
    assert_int_equal(b.len, 8 + 3 + 3 + 8 + 1 + 8 + DPC_SHMIMG_MAX_KEY + 8);
    assert_int_equal(dpc_shmimg_next(b.data, b.len, &pos, &rec, err,
                                     sizeof(err)), 1);
    assert_int_equal(rec.value_len, 3);
    assert_int_equal(dpc_shmimg_next(b.data, b.len, &pos, &rec, err,
                                     sizeof(err)), 1);
    assert_int_equal(rec.type, DPC_SHMIMG_STR);
    assert_int_equal(rec.value_len, 0);
    assert_int_equal(dpc_shmimg_next(b.data, b.len, &pos, &rec, err,
                                     sizeof(err)), 1);
    assert_int_equal(rec.key_len, DPC_SHMIMG_MAX_KEY);
    assert_true(dpc_shmimg_is(&rec, key));
    assert_int_equal(pos, b.len);
    assert_int_equal(dpc_shmimg_next(b.data, b.len, &pos, &rec, err,
                                     sizeof(err)), 0);
    /* A key one byte longer makes the blob fail, and it stays failed. */
    key[DPC_SHMIMG_MAX_KEY] = 'k';
    key[DPC_SHMIMG_MAX_KEY + 1] = '\0';
    dpc_shmimg_add(&b, DPC_SHMIMG_STR, key, "v", 1);
    assert_true(b.failed);
    dpc_shmimg_add_u64(&b, "ok", 1);
    assert_true(b.failed);
    dpc_shmimg_blob_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_false(b.failed);
    dpc_shmimg_add(&b, DPC_SHMIMG_STR, "", "v", 1);   /* empty key */
    assert_true(b.failed);
    dpc_shmimg_blob_free(&b);
}

/* F64 values keep every bit, infinities and NaN included. */
static void shmimg_f64_bits_test(void **state)
{
    const double v[] = { 0.0, -0.0, 1e308, -4.9e-324, INFINITY, NAN };
    struct dpc_shmimg_blob b = { 0 };
    struct dpc_shmimg_rec rec;
    char err[256] = "";
    size_t pos = 0;

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        dpc_shmimg_add_f64(&b, "v", v[i]);
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        double got;

        assert_int_equal(dpc_shmimg_next(b.data, b.len, &pos, &rec, err,
                                         sizeof(err)), 1);
        got = dpc_shmimg_f64(&rec);
        assert_memory_equal(&got, &v[i], sizeof(got));
    }
    dpc_shmimg_blob_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shmimg_round_trip_test),
        cmocka_unit_test(shmimg_layout_test),
        cmocka_unit_test(shmimg_layout_refuses_test),
        cmocka_unit_test(shmimg_parse_short_header_test),
        cmocka_unit_test(shmimg_parse_frames_room_test),
        cmocka_unit_test(shmimg_bad_magic_test),
        cmocka_unit_test(shmimg_total_mismatch_test),
        cmocka_unit_test(shmimg_bad_header_len_test),
        cmocka_unit_test(shmimg_bad_frame_count_test),
        cmocka_unit_test(shmimg_pixels_unaligned_test),
        cmocka_unit_test(shmimg_pixels_overlap_test),
        cmocka_unit_test(shmimg_pixels_past_end_test),
        cmocka_unit_test(shmimg_pixels_overflow_test),
        cmocka_unit_test(shmimg_meta_outside_test),
        cmocka_unit_test(shmimg_reserved_test),
        cmocka_unit_test(shmimg_next_malformed_test),
        cmocka_unit_test(shmimg_next_stops_test),
        cmocka_unit_test(shmimg_next_edges_test),
        cmocka_unit_test(shmimg_f64_bits_test),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
