/*
 * dpc_stock: see dpc_stock.h.  Field layouts follow ImageMagick's
 * OpenDistributePixelCache() and Read/WriteDistributePixelCache*().
 */
#include "dpc_stock.h"

#include <string.h>

#include "dpc_bytes.h"
#include "dpc_region.h"
#include "dpc_util.h"

#define IM6_PSEUDO_CLASS 2
#define IM6_CMYK_COLORSPACE 12
#define MAX_STORAGE_CLASS 2
#define MAX_COLORSPACE 64

size_t dpc_stock_nonce_len(enum dpc_stock_flavor f)
{
    return f == DPC_STOCK_IM7 ? 16 : 8;
}

size_t dpc_stock_open_len(enum dpc_stock_flavor f)
{
    return f == DPC_STOCK_IM7 ? DPC_STOCK_OPEN_IM7_LEN : DPC_STOCK_OPEN_IM6_LEN;
}

static int check_dims(const struct dpc_stock_open *o, uint64_t max_bpp,
                      char *err, size_t errlen)
{
    uint64_t pixels, bytes;

    if (o->columns == 0 || o->rows == 0 || o->columns > DPC_STOCK_MAX_DIM ||
        o->rows > DPC_STOCK_MAX_DIM)
        return dpc_errf(err, errlen, "bad image size %llux%llu",
                        (unsigned long long)o->columns,
                        (unsigned long long)o->rows);
    if (dpc_mul_u64(o->columns, o->rows, &pixels) < 0 ||
        dpc_mul_u64(pixels, max_bpp, &bytes) < 0 || bytes > INT64_MAX)
        return dpc_errf(err, errlen, "image size %llux%llu overflows",
                        (unsigned long long)o->columns,
                        (unsigned long long)o->rows);
    return 0;
}

static int parse_open_im6(const uint8_t *p, struct dpc_stock_open *o,
                          char *err, size_t errlen)
{
    o->storage_class = dpc_get_le32(p);
    o->colorspace = dpc_get_le32(p + 4);
    /* p + 8: image->channels (size_t), not needed to serve the cache */
    o->columns = dpc_get_le64(p + 16);
    o->rows = dpc_get_le64(p + 24);
    o->number_channels = 4;
    o->metacontent_extent = 0;
    o->has_indexes = o->storage_class == IM6_PSEUDO_CLASS ||
                     o->colorspace == IM6_CMYK_COLORSPACE;
    return check_dims(o, 5 * DPC_STOCK_MAX_QUANTUM, err, errlen);
}

static int parse_open_im7(const uint8_t *p, struct dpc_stock_open *o,
                          char *err, size_t errlen)
{
    o->storage_class = dpc_get_le32(p);
    o->colorspace = dpc_get_le32(p + 4);
    /* p + 8: alpha_trait, p + 12: channels; p + 40: the channel map */
    o->columns = dpc_get_le64(p + 16);
    o->rows = dpc_get_le64(p + 24);
    o->number_channels = dpc_get_le64(p + 32);
    o->metacontent_extent = dpc_get_le64(p + DPC_STOCK_OPEN_IM7_LEN - 8);
    if (o->number_channels == 0 ||
        o->number_channels > DPC_STOCK_MAX_CHANNELS)
        return dpc_errf(err, errlen, "bad channel count %llu",
                        (unsigned long long)o->number_channels);
    if (o->metacontent_extent > DPC_STOCK_MAX_META)
        return dpc_errf(err, errlen, "bad metacontent extent %llu",
                        (unsigned long long)o->metacontent_extent);
    o->has_indexes = o->metacontent_extent != 0;
    return check_dims(o,
                      o->number_channels * DPC_STOCK_MAX_QUANTUM +
                          o->metacontent_extent,
                      err, errlen);
}

int dpc_stock_parse_open(enum dpc_stock_flavor f, const uint8_t *p,
                         struct dpc_stock_open *o, char *err, size_t errlen)
{
    int rc;

    memset(o, 0, sizeof(*o));
    rc = f == DPC_STOCK_IM7 ? parse_open_im7(p, o, err, errlen)
                            : parse_open_im6(p, o, err, errlen);
    if (rc < 0)
        return rc;
    if (o->storage_class > MAX_STORAGE_CLASS)
        return dpc_errf(err, errlen, "bad storage class %u", o->storage_class);
    if (o->colorspace > MAX_COLORSPACE)
        return dpc_errf(err, errlen, "bad colorspace %u", o->colorspace);
    return 0;
}

void dpc_stock_parse_region(const uint8_t *p, struct dpc_stock_region *r)
{
    r->width = dpc_get_le64(p);
    r->height = dpc_get_le64(p + 8);
    r->x = (int64_t)dpc_get_le64(p + 16);
    r->y = (int64_t)dpc_get_le64(p + 24);
    r->length = dpc_get_le64(p + 32);
}

int dpc_stock_check_region(const struct dpc_stock_region *r, uint64_t columns,
                           uint64_t rows, char *err, size_t errlen)
{
    return dpc_region_check(columns, rows, r->x, r->y, r->width, r->height,
                            err, errlen);
}

void dpc_stock_plane_bpp(enum dpc_stock_flavor f, const struct dpc_stock_open *o,
                         unsigned q, uint64_t bpp[DPC_PLANE_COUNT])
{
    bpp[DPC_PLANE_PIXELS] = o->number_channels * q;
    if (!o->has_indexes)
        bpp[DPC_PLANE_INDEXES] = 0;
    else if (f == DPC_STOCK_IM7)
        bpp[DPC_PLANE_INDEXES] = o->metacontent_extent;
    else
        bpp[DPC_PLANE_INDEXES] = q;     /* IndexPacket is one Quantum */
}

int dpc_stock_infer_quantum(enum dpc_stock_flavor f,
                            const struct dpc_stock_open *o,
                            enum dpc_stock_plane plane,
                            const struct dpc_stock_region *r, char *err,
                            size_t errlen)
{
    uint64_t pixels, per, unit;

    if (plane == DPC_PLANE_INDEXES && f == DPC_STOCK_IM7)
        return dpc_errf(err, errlen,
                        "metacontent before pixels: quantum unknown");
    if (dpc_mul_u64(r->width, r->height, &pixels) < 0 || pixels == 0 ||
        r->length == 0 || r->length % pixels != 0)
        return dpc_errf(err, errlen, "length %llu is not a whole number of "
                        "pixels for a %llux%llu region",
                        (unsigned long long)r->length,
                        (unsigned long long)r->width,
                        (unsigned long long)r->height);
    per = r->length / pixels;
    unit = plane == DPC_PLANE_PIXELS ? o->number_channels : 1;
    if (per % unit != 0)
        return dpc_errf(err, errlen, "%llu bytes per pixel fits no quantum",
                        (unsigned long long)per);
    switch (per / unit) {
    case 1:
    case 2:
    case 4:
        return (int)(per / unit);
    default:
        return dpc_errf(err, errlen, "%llu bytes per pixel fits no quantum",
                        (unsigned long long)per);
    }
}

size_t dpc_stock_encode_header(uint8_t *p, uint8_t cmd,
                               const uint8_t key[DPC_STOCK_KEYLEN])
{
    p[0] = cmd;
    memcpy(p + 1, key, DPC_STOCK_KEYLEN);
    return DPC_STOCK_HDRLEN;
}

size_t dpc_stock_encode_region(uint8_t *p, const struct dpc_stock_region *r)
{
    dpc_put_le64(p, r->width);
    dpc_put_le64(p + 8, r->height);
    dpc_put_le64(p + 16, (uint64_t)r->x);
    dpc_put_le64(p + 24, (uint64_t)r->y);
    dpc_put_le64(p + 32, r->length);
    return DPC_STOCK_REGION_LEN;
}
