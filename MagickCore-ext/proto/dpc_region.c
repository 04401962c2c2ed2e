/*
 * dpc_region: ImageMagick's region rule (see dpc_region.h).
 */
#include "dpc_region.h"

#include "dpc_util.h"

static int refuse(const char *why, uint64_t columns, uint64_t rows, int64_t x,
                  int64_t y, uint64_t w, uint64_t h, char *err, size_t errlen)
{
    return dpc_errf(err, errlen, "region %llux%llu%+lld%+lld %s the %llux%llu "
                    "image", (unsigned long long)w, (unsigned long long)h,
                    (long long)x, (long long)y, why,
                    (unsigned long long)columns, (unsigned long long)rows);
}

int dpc_region_check(uint64_t columns, uint64_t rows, int64_t x, int64_t y,
                     uint64_t w, uint64_t h, char *err, size_t errlen)
{
    uint64_t first, room;

    if (w == 0 || h == 0)
        return dpc_errf(err, errlen, "empty region %llux%llu",
                        (unsigned long long)w, (unsigned long long)h);
    if (x < 0 || y < 0 || (uint64_t)x >= columns || (uint64_t)y >= rows)
        return refuse("starts outside", columns, rows, x, y, w, h, err,
                      errlen);
    /* first < columns*rows; then (h-1)*columns and w-1 must fit in what
     * is left after it, each compared before it is added. */
    first = (uint64_t)y * columns + (uint64_t)x;
    room = columns * rows - 1 - first;     /* pixels after the first one */
    if (h - 1 > room / columns || w - 1 > room - (h - 1) * columns)
        return refuse("runs past the end of", columns, rows, x, y, w, h, err,
                      errlen);
    return 0;
}

/* The run of region row i: from linear pixel `start`, `len` pixels. */
static int split_run(uint64_t columns, uint64_t start, uint64_t len,
                     uint64_t at, dpc_region_fn fn, void *arg)
{
    struct dpc_region_rect r;
    int rc;

    r.y = start / columns;
    r.x = start % columns;
    r.w = columns - r.x < len ? columns - r.x : len;
    r.h = 1;
    r.at = at;
    if ((rc = fn(arg, &r)) != 0)
        return rc;
    len -= r.w;
    at += r.w;
    if (len >= columns) {                  /* whole rows */
        r.y++;
        r.x = 0;
        r.w = columns;
        r.h = len / columns;
        r.at = at;
        if ((rc = fn(arg, &r)) != 0)
            return rc;
        len -= r.h * columns;
        at += r.h * columns;
        r.y += r.h - 1;
    }
    if (len > 0) {                         /* the start of the last row */
        r.y++;
        r.x = 0;
        r.w = len;
        r.h = 1;
        r.at = at;
        return fn(arg, &r);
    }
    return 0;
}

int dpc_region_split(uint64_t columns, uint64_t x, uint64_t y, uint64_t w,
                     uint64_t h, dpc_region_fn fn, void *arg)
{
    struct dpc_region_rect r = { x, y, w, h, 0 };
    int rc;

    if (x + w <= columns)
        return fn(arg, &r);
    for (uint64_t i = 0; i < h; i++)
        if ((rc = split_run(columns, (y + i) * columns + x, w, i * w, fn,
                            arg)) != 0)
            return rc;
    return 0;
}
