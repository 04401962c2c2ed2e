/*
 * Unit tests for dpc_stock: decoding and validation of the stock
 * distributed-cache wire format (IM6 and IM7 open payloads, regions,
 * quantum inference, plane sizes and the encoders).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>

#include "dpc_stock.h"

#define IM6_DIRECT 1
#define IM6_PSEUDO 2
#define IM6_CMYK 12
#define IM6_SRGB 13

#define assert_contains(hay, needle)                                       \
    do {                                                                   \
        if (strstr((hay), (needle)) == NULL)                               \
            fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));   \
    } while (0)

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

/* An IM6 open payload: u32 class, u32 colorspace, u64 channels, u64
 * columns, u64 rows. */
static void im6_open(uint8_t p[DPC_STOCK_OPEN_IM6_LEN], uint32_t klass,
                     uint32_t colorspace, uint64_t columns, uint64_t rows)
{
    memset(p, 0, DPC_STOCK_OPEN_IM6_LEN);
    put_le32(p, klass);
    put_le32(p + 4, colorspace);
    put_le64(p + 8, 0);
    put_le64(p + 16, columns);
    put_le64(p + 24, rows);
}

/* An IM7 open payload; the channel map is filled with junk on purpose. */
static void im7_open(uint8_t p[DPC_STOCK_OPEN_IM7_LEN], uint32_t klass,
                     uint32_t colorspace, uint64_t columns, uint64_t rows,
                     uint64_t nchannels, uint64_t meta)
{
    memset(p, 0xa5, DPC_STOCK_OPEN_IM7_LEN);
    put_le32(p, klass);
    put_le32(p + 4, colorspace);
    put_le32(p + 8, 0);                 /* alpha_trait */
    put_le32(p + 12, 0x7ffffff);        /* channels */
    put_le64(p + 16, columns);
    put_le64(p + 24, rows);
    put_le64(p + 32, nchannels);
    put_le64(p + 1064, meta);
}

static struct dpc_stock_region region(uint64_t w, uint64_t h, int64_t x,
                                      int64_t y, uint64_t length)
{
    struct dpc_stock_region r = {
        .width = w, .height = h, .x = x, .y = y, .length = length,
    };

    return r;
}

/* Asserts that an IM6 payload is refused with an error containing why. */
static void im6_refused(uint32_t klass, uint32_t colorspace, uint64_t columns,
                        uint64_t rows, const char *why)
{
    uint8_t p[DPC_STOCK_OPEN_IM6_LEN];
    struct dpc_stock_open o;
    char err[256] = "";

    im6_open(p, klass, colorspace, columns, rows);
    assert_int_equal(dpc_stock_parse_open(DPC_STOCK_IM6, p, &o, err,
                                          sizeof(err)), -1);
    assert_contains(err, why);
}

/* The same for an IM7 payload. */
static void im7_refused(uint64_t columns, uint64_t rows, uint64_t nchannels,
                        uint64_t meta, uint32_t colorspace, const char *why)
{
    uint8_t p[DPC_STOCK_OPEN_IM7_LEN];
    struct dpc_stock_open o;
    char err[256] = "";

    im7_open(p, 1, colorspace, columns, rows, nchannels, meta);
    assert_int_equal(dpc_stock_parse_open(DPC_STOCK_IM7, p, &o, err,
                                          sizeof(err)), -1);
    assert_contains(err, why);
}

static int infer(enum dpc_stock_flavor f, const struct dpc_stock_open *o,
                 enum dpc_stock_plane plane, struct dpc_stock_region r,
                 char *err, size_t errlen)
{
    return dpc_stock_infer_quantum(f, o, plane, &r, err, errlen);
}

static struct dpc_stock_open im6_parsed(uint32_t klass, uint32_t colorspace)
{
    uint8_t p[DPC_STOCK_OPEN_IM6_LEN];
    struct dpc_stock_open o;

    im6_open(p, klass, colorspace, 16, 10);
    assert_int_equal(dpc_stock_parse_open(DPC_STOCK_IM6, p, &o, NULL, 0), 0);
    return o;
}

/* Flavor constants: nonce and open sizes. */
static void stock_flavor_sizes_test(void **state)
{
    assert_int_equal(dpc_stock_nonce_len(DPC_STOCK_IM6), 8);
    assert_int_equal(dpc_stock_nonce_len(DPC_STOCK_IM7), 16);
    assert_int_equal(dpc_stock_open_len(DPC_STOCK_IM6), 32);
    assert_int_equal(dpc_stock_open_len(DPC_STOCK_IM7), 1072);
}

/* The open payload a real IM6 convert sent for a 4x4 xc:red. */
static void stock_im6_open_real_client_test(void **state)
{
    static const uint8_t p[DPC_STOCK_OPEN_IM6_LEN] = {
        0x01, 0, 0, 0, 0x0d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0x04, 0, 0, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 0, 0, 0, 0,
    };
    struct dpc_stock_open o;
    char err[128] = "";

    assert_int_equal(dpc_stock_parse_open(DPC_STOCK_IM6, p, &o, err,
                                          sizeof(err)), 0);
    assert_int_equal(o.columns, 4);
    assert_int_equal(o.rows, 4);
    assert_int_equal(o.storage_class, IM6_DIRECT);
    assert_int_equal(o.colorspace, IM6_SRGB);
    assert_int_equal(o.number_channels, 4);
    assert_int_equal(o.metacontent_extent, 0);
    assert_int_equal(o.has_indexes, 0);
}

/* Large little-endian fields decode in full (no truncation to 32 bits). */
static void stock_im6_open_wide_fields_test(void **state)
{
    uint8_t p[DPC_STOCK_OPEN_IM6_LEN];
    struct dpc_stock_open o;

    im6_open(p, IM6_DIRECT, IM6_SRGB, 0x12345, 0x10203);
    assert_int_equal(dpc_stock_parse_open(DPC_STOCK_IM6, p, &o, NULL, 0), 0);
    assert_int_equal(o.columns, 0x12345);
    assert_int_equal(o.rows, 0x10203);
}

/* PseudoClass images carry an index plane. */
static void stock_im6_open_pseudoclass_has_indexes_test(void **state)
{
    struct dpc_stock_open o = im6_parsed(IM6_PSEUDO, IM6_SRGB);

    assert_int_equal(o.storage_class, IM6_PSEUDO);
    assert_int_equal(o.has_indexes, 1);
}

/* CMYK images carry an index plane (the black channel). */
static void stock_im6_open_cmyk_has_indexes_test(void **state)
{
    struct dpc_stock_open o = im6_parsed(IM6_DIRECT, IM6_CMYK);

    assert_int_equal(o.colorspace, IM6_CMYK);
    assert_int_equal(o.has_indexes, 1);
}

/* A side of exactly DPC_STOCK_MAX_DIM is still accepted. */
static void stock_im6_open_max_dim_test(void **state)
{
    uint8_t p[DPC_STOCK_OPEN_IM6_LEN];
    struct dpc_stock_open o;

    im6_open(p, IM6_DIRECT, IM6_SRGB, DPC_STOCK_MAX_DIM, 1);
    assert_int_equal(dpc_stock_parse_open(DPC_STOCK_IM6, p, &o, NULL, 0), 0);
    assert_int_equal(o.columns, DPC_STOCK_MAX_DIM);
}

/* Zero columns are refused. */
static void stock_im6_open_zero_columns_test(void **state)
{
    im6_refused(IM6_DIRECT, IM6_SRGB, 0, 10, "bad image size 0x10");
}

/* Zero rows are refused. */
static void stock_im6_open_zero_rows_test(void **state)
{
    im6_refused(IM6_DIRECT, IM6_SRGB, 10, 0, "bad image size 10x0");
}

/* A side over DPC_STOCK_MAX_DIM is refused. */
static void stock_im6_open_too_wide_test(void **state)
{
    im6_refused(IM6_DIRECT, IM6_SRGB, DPC_STOCK_MAX_DIM + 1, 1,
                "bad image size 2147483649x1");
    im6_refused(IM6_DIRECT, IM6_SRGB, 1, DPC_STOCK_MAX_DIM + 1,
                "bad image size 1x2147483649");
}

/* Sides within the limit whose byte size overflows are refused. */
static void stock_im6_open_product_overflow_test(void **state)
{
    im6_refused(IM6_DIRECT, IM6_SRGB, DPC_STOCK_MAX_DIM, DPC_STOCK_MAX_DIM,
                "overflows");
}

/* Storage class 3 does not exist. */
static void stock_im6_open_bad_storage_class_test(void **state)
{
    im6_refused(3, IM6_SRGB, 4, 4, "bad storage class 3");
}

/* Colorspace 65 is past the last one; 64 is the last accepted. */
static void stock_im6_open_bad_colorspace_test(void **state)
{
    uint8_t p[DPC_STOCK_OPEN_IM6_LEN];
    struct dpc_stock_open o;

    im6_refused(IM6_DIRECT, 65, 4, 4, "bad colorspace 65");
    im6_open(p, IM6_DIRECT, 64, 4, 4);
    assert_int_equal(dpc_stock_parse_open(DPC_STOCK_IM6, p, &o, NULL, 0), 0);
}

/* A refusal with err NULL still returns -1 (no crash). */
static void stock_im6_open_null_err_test(void **state)
{
    uint8_t p[DPC_STOCK_OPEN_IM6_LEN];
    struct dpc_stock_open o;

    im6_open(p, IM6_DIRECT, IM6_SRGB, 0, 0);
    assert_int_equal(dpc_stock_parse_open(DPC_STOCK_IM6, p, &o, NULL, 0), -1);
}

/* An IM7 payload: fields at their offsets, channel map ignored. */
static void stock_im7_open_good_test(void **state)
{
    uint8_t p[DPC_STOCK_OPEN_IM7_LEN];
    struct dpc_stock_open o;
    char err[128] = "";

    im7_open(p, 1, 23, 640, 480, 3, 0);
    assert_int_equal(dpc_stock_parse_open(DPC_STOCK_IM7, p, &o, err,
                                          sizeof(err)), 0);
    assert_int_equal(o.storage_class, 1);
    assert_int_equal(o.colorspace, 23);
    assert_int_equal(o.columns, 640);
    assert_int_equal(o.rows, 480);
    assert_int_equal(o.number_channels, 3);
    assert_int_equal(o.metacontent_extent, 0);
    assert_int_equal(o.has_indexes, 0);
}

/* IM7 metacontent makes an index plane; PseudoClass alone does not. */
static void stock_im7_open_metacontent_test(void **state)
{
    uint8_t p[DPC_STOCK_OPEN_IM7_LEN];
    struct dpc_stock_open o;

    im7_open(p, 1, 23, 8, 8, 4, DPC_STOCK_MAX_META);
    assert_int_equal(dpc_stock_parse_open(DPC_STOCK_IM7, p, &o, NULL, 0), 0);
    assert_int_equal(o.metacontent_extent, DPC_STOCK_MAX_META);
    assert_int_equal(o.has_indexes, 1);
    im7_open(p, 2, 23, 8, 8, 1, 0);
    assert_int_equal(dpc_stock_parse_open(DPC_STOCK_IM7, p, &o, NULL, 0), 0);
    assert_int_equal(o.has_indexes, 0);
}

/* 64 channels is IM7's maximum and accepted. */
static void stock_im7_open_max_channels_test(void **state)
{
    uint8_t p[DPC_STOCK_OPEN_IM7_LEN];
    struct dpc_stock_open o;

    im7_open(p, 1, 23, 8, 8, DPC_STOCK_MAX_CHANNELS, 0);
    assert_int_equal(dpc_stock_parse_open(DPC_STOCK_IM7, p, &o, NULL, 0), 0);
    assert_int_equal(o.number_channels, DPC_STOCK_MAX_CHANNELS);
}

/* IM7 with no channels is refused. */
static void stock_im7_open_zero_channels_test(void **state)
{
    im7_refused(8, 8, 0, 0, 23, "bad channel count 0");
}

/* IM7 with more than 64 channels is refused. */
static void stock_im7_open_too_many_channels_test(void **state)
{
    im7_refused(8, 8, 65, 0, 23, "bad channel count 65");
    im7_refused(8, 8, UINT64_MAX, 0, 23, "bad channel count");
}

/* IM7 metacontent over 4096 bytes per pixel is refused. */
static void stock_im7_open_metacontent_too_big_test(void **state)
{
    im7_refused(8, 8, 3, DPC_STOCK_MAX_META + 1, 23,
                "bad metacontent extent 4097");
}

/* IM7 zero sizes, oversized sides and overflowing products are refused. */
static void stock_im7_open_bad_size_test(void **state)
{
    im7_refused(0, 8, 3, 0, 23, "bad image size 0x8");
    im7_refused(8, 0, 3, 0, 23, "bad image size 8x0");
    im7_refused(DPC_STOCK_MAX_DIM + 1, 8, 3, 0, 23, "bad image size");
    im7_refused(DPC_STOCK_MAX_DIM, DPC_STOCK_MAX_DIM, 3, 0, 23, "overflows");
}

/* IM7 colorspace past 64 is refused. */
static void stock_im7_open_bad_colorspace_test(void **state)
{
    im7_refused(8, 8, 3, 0, 65, "bad colorspace 65");
}

/* Encoding a region writes five little-endian words that decode back. */
static void stock_region_roundtrip_test(void **state)
{
    static const uint8_t want[DPC_STOCK_REGION_LEN] = {
        3, 0, 0, 0, 0, 0, 0, 0,
        2, 0, 0, 0, 0, 0, 0, 0,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        7, 0, 0, 0, 0, 0, 0, 0,
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
    };
    struct dpc_stock_region r = region(3, 2, -1, 7, 0x0706050403020100ULL);
    struct dpc_stock_region back;
    uint8_t p[DPC_STOCK_REGION_LEN];

    assert_int_equal(dpc_stock_encode_region(p, &r), DPC_STOCK_REGION_LEN);
    assert_memory_equal(p, want, sizeof(want));
    dpc_stock_parse_region(p, &back);
    assert_int_equal(back.width, 3);
    assert_int_equal(back.height, 2);
    assert_true(back.x == -1);
    assert_true(back.y == 7);
    assert_int_equal(back.length, 0x0706050403020100ULL);
}

/* A header is the command byte then the 8-byte key. */
static void stock_encode_header_test(void **state)
{
    static const uint8_t key[DPC_STOCK_KEYLEN] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    static const uint8_t want[DPC_STOCK_HDRLEN] = { 'w', 1, 2, 3, 4,
                                                    5, 6, 7, 8 };
    uint8_t p[DPC_STOCK_HDRLEN];

    assert_int_equal(dpc_stock_encode_header(p, 'w', key), DPC_STOCK_HDRLEN);
    assert_memory_equal(p, want, sizeof(want));
}

/* Regions inside, on every edge, and the whole image are accepted. */
static void stock_region_inside_test(void **state)
{
    struct dpc_stock_region ok[] = {
        region(3, 2, 5, 7, 0), region(16, 10, 0, 0, 0),
        region(1, 1, 15, 9, 0), region(16, 1, 0, 9, 0),
        region(1, 10, 15, 0, 0), region(4, 3, 12, 7, 0),
    };

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        assert_int_equal(dpc_stock_check_region(&ok[i], 16, 10, NULL, 0), 0);
}

/* A negative x is refused and the message shows it. */
static void stock_region_negative_x_test(void **state)
{
    struct dpc_stock_region r = region(3, 2, -1, 0, 0);
    char err[256] = "";

    assert_int_equal(dpc_stock_check_region(&r, 16, 10, err, sizeof(err)), -1);
    assert_string_equal(err, "region 3x2-1+0 starts outside the 16x10 image");
}

/* A negative y is refused. */
static void stock_region_negative_y_test(void **state)
{
    struct dpc_stock_region r = region(3, 2, 0, INT64_MIN, 0);
    char err[256] = "";

    assert_int_equal(dpc_stock_check_region(&r, 16, 10, err, sizeof(err)), -1);
    assert_contains(err, "starts outside the 16x10 image");
}

/* Empty regions are refused. */
static void stock_region_empty_test(void **state)
{
    struct dpc_stock_region w0 = region(0, 2, 0, 0, 0);
    struct dpc_stock_region h0 = region(2, 0, 0, 0, 0);
    char err[256] = "";

    assert_int_equal(dpc_stock_check_region(&w0, 16, 10, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "empty region 0x2");
    err[0] = '\0';
    assert_int_equal(dpc_stock_check_region(&h0, 16, 10, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "empty region 2x0");
}

/* x + width wrapping around (x = INT64_MAX) is refused. */
static void stock_region_x_overflow_test(void **state)
{
    struct dpc_stock_region r = region(2, 1, INT64_MAX, 0, 0);
    struct dpc_stock_region ry = region(1, 2, 0, INT64_MAX, 0);
    struct dpc_stock_region rw = region(UINT64_MAX, 1, 2, 0, 0);

    assert_int_equal(dpc_stock_check_region(&r, 16, 10, NULL, 0), -1);
    assert_int_equal(dpc_stock_check_region(&ry, 16, 10, NULL, 0), -1);
    assert_int_equal(dpc_stock_check_region(&rw, 16, 10, NULL, 0), -1);
}

/* Rows that run past the right edge onto the next row are served, as
 * ImageMagick's memory cache serves them (a glyph row drawn past the edge:
 * 15x1+193+19 on 200x50). */
static void stock_region_wraps_test(void **state)
{
    struct dpc_stock_region ok[] = {
        region(4, 1, 13, 0, 0), region(17, 1, 0, 0, 0),
        region(16, 1, 15, 8, 0), region(160, 1, 0, 0, 0),
        region(20, 3, 5, 2, 0),
    };
    struct dpc_stock_region glyph = region(15, 1, 193, 19, 0);

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        assert_int_equal(dpc_stock_check_region(&ok[i], 16, 10, NULL, 0), 0);
    assert_int_equal(dpc_stock_check_region(&glyph, 200, 50, NULL, 0), 0);
}

/* A region whose last pixel lies past the cache, or whose first lies
 * outside the image, is refused. */
static void stock_region_beyond_edges_test(void **state)
{
    struct dpc_stock_region bad[] = {
        region(1, 4, 0, 7, 0),  region(1, 11, 0, 0, 0),
        region(1, 1, 16, 0, 0), region(1, 1, 0, 10, 0),
        region(2, 1, 15, 9, 0), region(161, 1, 0, 0, 0),
        region(17, 10, 0, 0, 0), region(16, 2, 1, 8, 0),
    };
    char err[256] = "";

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(dpc_stock_check_region(&bad[i], 16, 10, NULL, 0), -1);
    assert_int_equal(dpc_stock_check_region(&bad[4], 16, 10, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "region 2x1+15+9 runs past the end of the 16x10 "
                             "image");
}

/* IM6 pixels: 4, 8 and 16 bytes per pixel are Q8, Q16 and HDRI. */
static void stock_infer_im6_pixels_test(void **state)
{
    struct dpc_stock_open o = im6_parsed(IM6_DIRECT, IM6_SRGB);

    assert_int_equal(infer(DPC_STOCK_IM6, &o, DPC_PLANE_PIXELS,
                           region(4, 2, 0, 0, 8 * 4), NULL, 0), 1);
    assert_int_equal(infer(DPC_STOCK_IM6, &o, DPC_PLANE_PIXELS,
                           region(4, 2, 0, 0, 8 * 8), NULL, 0), 2);
    assert_int_equal(infer(DPC_STOCK_IM6, &o, DPC_PLANE_PIXELS,
                           region(4, 2, 0, 0, 8 * 16), NULL, 0), 4);
}

/* IM6 indexes: 1, 2 and 4 bytes per pixel. */
static void stock_infer_im6_indexes_test(void **state)
{
    struct dpc_stock_open o = im6_parsed(IM6_PSEUDO, IM6_SRGB);

    assert_int_equal(infer(DPC_STOCK_IM6, &o, DPC_PLANE_INDEXES,
                           region(3, 3, 0, 0, 9), NULL, 0), 1);
    assert_int_equal(infer(DPC_STOCK_IM6, &o, DPC_PLANE_INDEXES,
                           region(3, 3, 0, 0, 18), NULL, 0), 2);
    assert_int_equal(infer(DPC_STOCK_IM6, &o, DPC_PLANE_INDEXES,
                           region(3, 3, 0, 0, 36), NULL, 0), 4);
}

/* IM7 pixels scale with the channel count. */
static void stock_infer_im7_pixels_test(void **state)
{
    uint8_t p[DPC_STOCK_OPEN_IM7_LEN];
    struct dpc_stock_open o;
    char err[256] = "";

    im7_open(p, 1, 23, 16, 10, 3, 0);
    assert_int_equal(dpc_stock_parse_open(DPC_STOCK_IM7, p, &o, NULL, 0), 0);
    assert_int_equal(infer(DPC_STOCK_IM7, &o, DPC_PLANE_PIXELS,
                           region(2, 2, 0, 0, 4 * 3), NULL, 0), 1);
    assert_int_equal(infer(DPC_STOCK_IM7, &o, DPC_PLANE_PIXELS,
                           region(2, 2, 0, 0, 4 * 6), NULL, 0), 2);
    assert_int_equal(infer(DPC_STOCK_IM7, &o, DPC_PLANE_PIXELS,
                           region(2, 2, 0, 0, 4 * 12), NULL, 0), 4);
    assert_int_equal(infer(DPC_STOCK_IM7, &o, DPC_PLANE_PIXELS,
                           region(2, 2, 0, 0, 4 * 9), err, sizeof(err)), -1);
    assert_string_equal(err, "9 bytes per pixel fits no quantum");
}

/* A zero length fits no quantum. */
static void stock_infer_zero_length_test(void **state)
{
    struct dpc_stock_open o = im6_parsed(IM6_DIRECT, IM6_SRGB);
    char err[256] = "";

    assert_int_equal(infer(DPC_STOCK_IM6, &o, DPC_PLANE_PIXELS,
                           region(4, 2, 0, 0, 0), err, sizeof(err)), -1);
    assert_contains(err, "length 0 is not a whole number of pixels");
}

/* A length that is not a multiple of the pixel count is refused. */
static void stock_infer_not_multiple_test(void **state)
{
    struct dpc_stock_open o = im6_parsed(IM6_DIRECT, IM6_SRGB);
    char err[256] = "";

    assert_int_equal(infer(DPC_STOCK_IM6, &o, DPC_PLANE_PIXELS,
                           region(4, 2, 0, 0, 65), err, sizeof(err)), -1);
    assert_string_equal(err, "length 65 is not a whole number of pixels "
                             "for a 4x2 region");
}

/* 3 bytes per pixel is no IM6 pixel size. */
static void stock_infer_three_bytes_test(void **state)
{
    struct dpc_stock_open o = im6_parsed(IM6_DIRECT, IM6_SRGB);
    char err[256] = "";

    assert_int_equal(infer(DPC_STOCK_IM6, &o, DPC_PLANE_PIXELS,
                           region(4, 2, 0, 0, 8 * 3), err, sizeof(err)), -1);
    assert_string_equal(err, "3 bytes per pixel fits no quantum");
}

/* 32 bytes per pixel would be Q64, which is not served. */
static void stock_infer_q64_refused_test(void **state)
{
    struct dpc_stock_open o = im6_parsed(IM6_DIRECT, IM6_SRGB);
    struct dpc_stock_open pc = im6_parsed(IM6_PSEUDO, IM6_SRGB);
    char err[256] = "";

    assert_int_equal(infer(DPC_STOCK_IM6, &o, DPC_PLANE_PIXELS,
                           region(4, 2, 0, 0, 8 * 32), err, sizeof(err)), -1);
    assert_string_equal(err, "32 bytes per pixel fits no quantum");
    assert_int_equal(infer(DPC_STOCK_IM6, &pc, DPC_PLANE_INDEXES,
                           region(4, 2, 0, 0, 8 * 8), NULL, 0), -1);
    assert_int_equal(infer(DPC_STOCK_IM6, &pc, DPC_PLANE_INDEXES,
                           region(4, 2, 0, 0, 8 * 3), NULL, 0), -1);
}

/* IM7 metacontent cannot come first: its size says nothing of the quantum. */
static void stock_infer_im7_metacontent_first_test(void **state)
{
    uint8_t p[DPC_STOCK_OPEN_IM7_LEN];
    struct dpc_stock_open o;
    char err[256] = "";

    im7_open(p, 1, 23, 16, 10, 3, 8);
    assert_int_equal(dpc_stock_parse_open(DPC_STOCK_IM7, p, &o, NULL, 0), 0);
    assert_int_equal(infer(DPC_STOCK_IM7, &o, DPC_PLANE_INDEXES,
                           region(2, 2, 0, 0, 4 * 8), err, sizeof(err)), -1);
    assert_string_equal(err, "metacontent before pixels: quantum unknown");
}

/* Plane sizes for IM6 with and without indexes, and IM7 metacontent. */
static void stock_plane_bpp_test(void **state)
{
    struct dpc_stock_open direct = im6_parsed(IM6_DIRECT, IM6_SRGB);
    struct dpc_stock_open cmyk = im6_parsed(IM6_DIRECT, IM6_CMYK);
    uint8_t p[DPC_STOCK_OPEN_IM7_LEN];
    struct dpc_stock_open o7;
    uint64_t bpp[DPC_PLANE_COUNT];

    dpc_stock_plane_bpp(DPC_STOCK_IM6, &direct, 2, bpp);
    assert_int_equal(bpp[DPC_PLANE_PIXELS], 8);
    assert_int_equal(bpp[DPC_PLANE_INDEXES], 0);
    dpc_stock_plane_bpp(DPC_STOCK_IM6, &cmyk, 4, bpp);
    assert_int_equal(bpp[DPC_PLANE_PIXELS], 16);
    assert_int_equal(bpp[DPC_PLANE_INDEXES], 4);
    im7_open(p, 1, 23, 16, 10, 5, 12);
    assert_int_equal(dpc_stock_parse_open(DPC_STOCK_IM7, p, &o7, NULL, 0), 0);
    dpc_stock_plane_bpp(DPC_STOCK_IM7, &o7, 2, bpp);
    assert_int_equal(bpp[DPC_PLANE_PIXELS], 10);
    assert_int_equal(bpp[DPC_PLANE_INDEXES], 12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stock_flavor_sizes_test),
        cmocka_unit_test(stock_im6_open_real_client_test),
        cmocka_unit_test(stock_im6_open_wide_fields_test),
        cmocka_unit_test(stock_im6_open_pseudoclass_has_indexes_test),
        cmocka_unit_test(stock_im6_open_cmyk_has_indexes_test),
        cmocka_unit_test(stock_im6_open_max_dim_test),
        cmocka_unit_test(stock_im6_open_zero_columns_test),
        cmocka_unit_test(stock_im6_open_zero_rows_test),
        cmocka_unit_test(stock_im6_open_too_wide_test),
        cmocka_unit_test(stock_im6_open_product_overflow_test),
        cmocka_unit_test(stock_im6_open_bad_storage_class_test),
        cmocka_unit_test(stock_im6_open_bad_colorspace_test),
        cmocka_unit_test(stock_im6_open_null_err_test),
        cmocka_unit_test(stock_im7_open_good_test),
        cmocka_unit_test(stock_im7_open_metacontent_test),
        cmocka_unit_test(stock_im7_open_max_channels_test),
        cmocka_unit_test(stock_im7_open_zero_channels_test),
        cmocka_unit_test(stock_im7_open_too_many_channels_test),
        cmocka_unit_test(stock_im7_open_metacontent_too_big_test),
        cmocka_unit_test(stock_im7_open_bad_size_test),
        cmocka_unit_test(stock_im7_open_bad_colorspace_test),
        cmocka_unit_test(stock_region_roundtrip_test),
        cmocka_unit_test(stock_encode_header_test),
        cmocka_unit_test(stock_region_inside_test),
        cmocka_unit_test(stock_region_negative_x_test),
        cmocka_unit_test(stock_region_negative_y_test),
        cmocka_unit_test(stock_region_empty_test),
        cmocka_unit_test(stock_region_x_overflow_test),
        cmocka_unit_test(stock_region_wraps_test),
        cmocka_unit_test(stock_region_beyond_edges_test),
        cmocka_unit_test(stock_infer_im6_pixels_test),
        cmocka_unit_test(stock_infer_im6_indexes_test),
        cmocka_unit_test(stock_infer_im7_pixels_test),
        cmocka_unit_test(stock_infer_zero_length_test),
        cmocka_unit_test(stock_infer_not_multiple_test),
        cmocka_unit_test(stock_infer_three_bytes_test),
        cmocka_unit_test(stock_infer_q64_refused_test),
        cmocka_unit_test(stock_infer_im7_metacontent_first_test),
        cmocka_unit_test(stock_plane_bpp_test),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
