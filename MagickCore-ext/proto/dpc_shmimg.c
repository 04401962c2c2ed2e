/*
 * dpc_shmimg: see dpc_shmimg.h.
 */
#include <stdlib.h>
#include <string.h>

#include "dpc_shmimg.h"
#include "dpc_bytes.h"
#include "dpc_util.h"

#define REC_HDR 8u

static uint64_t round_up(uint64_t v)
{
    return (v + DPC_SHMIMG_ALIGN - 1) & ~(uint64_t)(DPC_SHMIMG_ALIGN - 1);
}

static int check_frame(const struct dpc_shmimg_frame *f, uint32_t i,
                       uint32_t header_len, uint32_t table_end,
                       uint64_t seg_len, uint64_t prev_end, char *err,
                       size_t errlen)
{
    uint64_t end;

    if ((uint64_t)f->meta_off + f->meta_len > header_len ||
        (f->meta_len != 0 && f->meta_off < table_end))
        return dpc_errf(err, errlen, "frame %u: metadata outside the header",
                        i);
    if (f->pix_len == 0 || f->pix_off % DPC_SHMIMG_ALIGN != 0 ||
        f->pix_off < prev_end || dpc_add_u64(f->pix_off, f->pix_len, &end) ||
        end > seg_len)
        return dpc_errf(err, errlen, "frame %u: pixels [%llu, +%llu) outside "
                        "the segment's %llu bytes, unaligned or overlapping",
                        i, (unsigned long long)f->pix_off,
                        (unsigned long long)f->pix_len,
                        (unsigned long long)seg_len);
    return 0;
}

int dpc_shmimg_parse(const uint8_t *hdr, size_t hdr_len, uint64_t seg_len,
                     uint32_t *header_len, struct dpc_shmimg_frame *frames,
                     uint32_t max, uint32_t *nframes, char *err,
                     size_t errlen)
{
    uint64_t total, prev_end;
    uint32_t n, table_end;

    if (hdr_len < DPC_SHMIMG_FIXED)
        return seg_len < DPC_SHMIMG_FIXED
                   ? dpc_errf(err, errlen, "segment of %llu bytes is too "
                              "short for an image", (unsigned long long)seg_len)
                   : 1;
    if (memcmp(hdr, DPC_SHMIMG_MAGIC, 8) != 0)
        return dpc_errf(err, errlen, "not a published image (bad magic)");
    *header_len = dpc_get_le32(hdr + 8);
    n = dpc_get_le32(hdr + 12);
    total = dpc_get_le64(hdr + 16);
    if (total != seg_len)
        return dpc_errf(err, errlen, "header says %llu bytes, the segment "
                        "has %llu", (unsigned long long)total,
                        (unsigned long long)seg_len);
    if (*header_len % DPC_SHMIMG_ALIGN != 0 || *header_len == 0 ||
        *header_len > DPC_SHMIMG_MAX_HEADER || *header_len > seg_len)
        return dpc_errf(err, errlen, "bad header length %u", *header_len);
    if (n == 0 || n > DPC_SHMIMG_MAX_FRAMES)
        return dpc_errf(err, errlen, "bad frame count %u", n);
    table_end = DPC_SHMIMG_FIXED + n * DPC_SHMIMG_FRAME;
    if (table_end > *header_len)
        return dpc_errf(err, errlen, "frame table past the header");
    *nframes = n;
    if (hdr_len < *header_len || n > max)
        return 1;
    prev_end = *header_len;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p = hdr + DPC_SHMIMG_FIXED + (size_t)i * DPC_SHMIMG_FRAME;
        struct dpc_shmimg_frame *f = &frames[i];

        f->pix_off = dpc_get_le64(p);
        f->pix_len = dpc_get_le64(p + 8);
        f->meta_off = dpc_get_le32(p + 16);
        f->meta_len = dpc_get_le32(p + 20);
        if (dpc_get_le64(p + 24) != 0)
            return dpc_errf(err, errlen, "frame %u: reserved field set", i);
        if (check_frame(f, i, *header_len, table_end, seg_len, prev_end, err,
                        errlen) < 0)
            return -1;
        prev_end = f->pix_off + f->pix_len;
    }
    return 0;
}

int dpc_shmimg_next(const uint8_t *blob, size_t len, size_t *pos,
                    struct dpc_shmimg_rec *rec, char *err, size_t errlen)
{
    const uint8_t *p = blob + *pos;
    size_t left = len - *pos, klen, vlen;

    if (*pos >= len)
        return 0;
    if (left < REC_HDR)
        return dpc_errf(err, errlen, "truncated record at %zu", *pos);
    klen = (size_t)p[2] | (size_t)p[3] << 8;
    vlen = dpc_get_le32(p + 4);
    if (p[0] == 0 || p[0] >= DPC_SHMIMG_NTYPES || p[1] != 0 || klen == 0 ||
        klen > DPC_SHMIMG_MAX_KEY || klen > left - REC_HDR ||
        vlen > left - REC_HDR - klen)
        return dpc_errf(err, errlen, "malformed record at %zu", *pos);
    rec->type = (enum dpc_shmimg_type)p[0];
    rec->key = (const char *)p + REC_HDR;
    rec->key_len = klen;
    rec->value = p + REC_HDR + klen;
    rec->value_len = vlen;
    if (memchr(rec->key, '\0', klen) != NULL ||
        ((rec->type == DPC_SHMIMG_U64 || rec->type == DPC_SHMIMG_F64) &&
         vlen != 8) ||
        (rec->type == DPC_SHMIMG_STR && memchr(rec->value, '\0', vlen)))
        return dpc_errf(err, errlen, "malformed record '%.*s'",
                        (int)(klen > 64 ? 64 : klen), rec->key);
    *pos += REC_HDR + klen + vlen;
    return 1;
}

int dpc_shmimg_is(const struct dpc_shmimg_rec *rec, const char *key)
{
    return strlen(key) == rec->key_len &&
           memcmp(rec->key, key, rec->key_len) == 0;
}

uint64_t dpc_shmimg_u64(const struct dpc_shmimg_rec *rec)
{
    return rec->value_len == 8 ? dpc_get_le64(rec->value) : 0;
}

double dpc_shmimg_f64(const struct dpc_shmimg_rec *rec)
{
    uint64_t bits = dpc_shmimg_u64(rec);
    double v;

    memcpy(&v, &bits, sizeof(v));
    return v;
}

int dpc_shmimg_layout(uint32_t nframes, const uint32_t *meta_len,
                      const uint64_t *pix_len, struct dpc_shmimg_frame *frames,
                      uint32_t *header_len, uint64_t *total, char *err,
                      size_t errlen)
{
    uint64_t off, end;

    if (nframes == 0 || nframes > DPC_SHMIMG_MAX_FRAMES)
        return dpc_errf(err, errlen, "%u frames (1 to %u)", nframes,
                        DPC_SHMIMG_MAX_FRAMES);
    off = DPC_SHMIMG_FIXED + (uint64_t)nframes * DPC_SHMIMG_FRAME;
    for (uint32_t i = 0; i < nframes; i++) {
        frames[i].meta_off = (uint32_t)off;
        frames[i].meta_len = meta_len[i];
        off += meta_len[i];
        if (off > DPC_SHMIMG_MAX_HEADER)
            return dpc_errf(err, errlen, "metadata over %u bytes",
                            DPC_SHMIMG_MAX_HEADER);
    }
    *header_len = (uint32_t)round_up(off);
    end = *header_len;
    for (uint32_t i = 0; i < nframes; i++) {
        frames[i].pix_off = round_up(end);
        frames[i].pix_len = pix_len[i];
        if (pix_len[i] == 0 || frames[i].pix_off < end ||
            dpc_add_u64(frames[i].pix_off, pix_len[i], &end) ||
            end > (uint64_t)INT64_MAX - DPC_SHMIMG_ALIGN)
            return dpc_errf(err, errlen, "frame %u: bad pixel length", i);
    }
    *total = end;
    return 0;
}

void dpc_shmimg_put_header(uint8_t *hdr, uint32_t header_len, uint64_t total,
                           const struct dpc_shmimg_frame *frames,
                           uint32_t nframes)
{
    memcpy(hdr, DPC_SHMIMG_MAGIC, 8);
    dpc_put_le32(hdr + 8, header_len);
    dpc_put_le32(hdr + 12, nframes);
    dpc_put_le64(hdr + 16, total);
    for (uint32_t i = 0; i < nframes; i++) {
        uint8_t *p = hdr + DPC_SHMIMG_FIXED + (size_t)i * DPC_SHMIMG_FRAME;

        dpc_put_le64(p, frames[i].pix_off);
        dpc_put_le64(p + 8, frames[i].pix_len);
        dpc_put_le32(p + 16, frames[i].meta_off);
        dpc_put_le32(p + 20, frames[i].meta_len);
        dpc_put_le64(p + 24, 0);
    }
}

void dpc_shmimg_add(struct dpc_shmimg_blob *b, enum dpc_shmimg_type type,
                    const char *key, const void *value, size_t value_len)
{
    size_t klen = strlen(key), need;
    uint8_t *p;

    if (b->failed || klen == 0 || klen > DPC_SHMIMG_MAX_KEY ||
        value_len > DPC_SHMIMG_MAX_HEADER) {
        b->failed = 1;
        return;
    }
    need = b->len + REC_HDR + klen + value_len;
    if (need > DPC_SHMIMG_MAX_HEADER) {
        b->failed = 1;
        return;
    }
    if (need > b->cap) {
        size_t cap = b->cap != 0 ? b->cap : 1024;

        while (cap < need)
            cap *= 2;
        p = realloc(b->data, cap);
        if (p == NULL) {
            b->failed = 1;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    p = b->data + b->len;
    p[0] = (uint8_t)type;
    p[1] = 0;
    p[2] = (uint8_t)klen;
    p[3] = (uint8_t)(klen >> 8);
    dpc_put_le32(p + 4, (uint32_t)value_len);
    memcpy(p + REC_HDR, key, klen);
    if (value_len != 0)
        memcpy(p + REC_HDR + klen, value, value_len);
    b->len = need;
}

void dpc_shmimg_add_u64(struct dpc_shmimg_blob *b, const char *key,
                        uint64_t v)
{
    uint8_t buf[8];

    dpc_put_le64(buf, v);
    dpc_shmimg_add(b, DPC_SHMIMG_U64, key, buf, 8);
}

void dpc_shmimg_add_f64(struct dpc_shmimg_blob *b, const char *key, double v)
{
    uint8_t buf[8];
    uint64_t bits;

    memcpy(&bits, &v, sizeof(bits));
    dpc_put_le64(buf, bits);
    dpc_shmimg_add(b, DPC_SHMIMG_F64, key, buf, 8);
}

void dpc_shmimg_blob_free(struct dpc_shmimg_blob *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}
