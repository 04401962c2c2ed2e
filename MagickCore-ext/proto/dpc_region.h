/*
 * dpc_region: ImageMagick's rule for which pixel regions a cache serves,
 * and how a region that runs past the right edge lies in the cache.
 *
 * ImageMagick's own caches (cache.c, QueueAuthenticPixelCacheNexus) treat
 * each row of a region as a run of `w` pixels in the image's row-major
 * layout, starting at pixel y*columns + x and one image row further on for
 * every region row.  A run may pass the right edge and continue on the next
 * image row (FreeType glyph rows drawn past the edge do this).  A region is
 * served when its first pixel lies inside the image and the last pixel of
 * its last run inside the cache:
 *
 *     0 <= x < columns,  0 <= y < rows,  w > 0,  h > 0,
 *     y*columns + x + (h-1)*columns + w-1 < columns*rows
 *
 * Rows of a region wider than the image overlap; a write copies them in
 * order, so the later row wins, as a memory cache's memcpy loop does.
 *
 * Pure arithmetic, overflow-checked; no state.  Safe from any thread.
 */
#ifndef DPC_REGION_H
#define DPC_REGION_H

#include <stddef.h>
#include <stdint.h>

/* 0 when ImageMagick's memory cache serves the region of a columns x rows
 * image, else -1 with the reason in err (may be NULL).  columns * rows must
 * not overflow (the caller checked the image). */
int dpc_region_check(uint64_t columns, uint64_t rows, int64_t x, int64_t y,
                     uint64_t w, uint64_t h, char *err, size_t errlen);

/* One rectangle inside the image, and where its pixels start in the
 * region's buffer (pixels from the buffer's start; there its rows lie
 * packed, w pixels apart). */
struct dpc_region_rect {
    uint64_t x, y, w, h;
    uint64_t at;
};

typedef int (*dpc_region_fn)(void *arg, const struct dpc_region_rect *r);

/* Calls fn for rectangles that together are the region, in the order a
 * memory cache copies them: one when the region lies inside the image,
 * else up to three per region row (the rest of the row the run starts on,
 * the whole rows it covers, the start of the row it ends on).  The region
 * must have passed dpc_region_check().  Stops at the first fn that fails
 * and returns its value; 0 when all succeeded. */
int dpc_region_split(uint64_t columns, uint64_t x, uint64_t y, uint64_t w,
                     uint64_t h, dpc_region_fn fn, void *arg);

#endif
