/*
 * Unit tests for dpc_tiles.  The "fake link" is the real thing served in
 * process: dpc_link connects to two hosts, each a dpc_native state machine
 * over a dpc_store, served by a thread on a loopback port (nativehost.h),
 * so every tile that leaves the tile cache really goes through the wire
 * protocol and comes back, and a host can be made to close in the middle
 * of a batch.  Each test keeps a model of the image (a plain array written
 * by ImageMagick's region rule, dpc_region.h) and compares reads with it.
 *
 * The image is 40x24 pixels of 8 bytes in 4x4 tiles (10x6 = 60 tiles,
 * striped over two hosts) behind a tile cache of 8 tiles, so most batches
 * evict.  Covers: tiles never written read as zero without a fetch;
 * eviction write-back, then reads served by fetches; regions running past
 * the right edge; zeros written over tiles never written costing
 * nothing; clones made on the hosts (COPY) and when they are refused;
 * the direct path for large regions; an index plane
 * sharing the slot; a host closing mid-batch (an error, no crash, and no
 * tile of the failed round served afterwards); concurrent lock-free
 * readers beside a writer holding the caller's lock; two tile caches in
 * two threads on the same links, shared through dpc_pool.  Replicas, on
 * three hosts: each host's share, copies on distinct hosts (any one host
 * lost, every tile still reads right), writes fanned out to every copy,
 * a failover in the middle of a fetch round, the lost copies made again
 * so a second loss is survived, the failure once a tile has no copy left
 * (the last host, or two at once), and a lost host without replicas.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dpc_link.h"
#include "dpc_pool.h"
#include "dpc_region.h"
#include "dpc_tiles.h"
#include "dpc_util.h"
#include "nativehost.h"

#define COLS 40
#define ROWS 24
#define BPP 8
#define IBPP 2
#define TW 4
#define TH 4
#define NTILES ((COLS / TW) * (ROWS / TH))
#define HOSTS 2

#define assert_contains(hay, needle)                                       \
    do {                                                                   \
        if (strstr((hay), (needle)) == NULL)                               \
            fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));   \
    } while (0)

static const uint8_t key[DPC_WIRE_KEY_LEN] = { 4, 2 };

struct fixture {
    struct nativehost host[HOSTS];
    struct dpc_link *link[HOSTS];
    struct dpc_tiles *t;
    uint8_t model[COLS * ROWS * BPP];
    uint8_t imodel[COLS * ROWS * IBPP];
};

static void setup(struct fixture *f, uint32_t ibpp)
{
    struct dpc_tiles_cfg cfg = { .columns = COLS, .rows = ROWS,
                                 .bpp = { BPP, ibpp }, .tile_w = TW,
                                 .tile_h = TH, .cache_bytes = 1,
                                 .links = f->link, .nlinks = HOSTS };
    char err[DPC_ERRLEN] = "";

    memset(f, 0, sizeof(*f));
    for (int i = 0; i < HOSTS; i++) {
        memcpy(f->host[i].key, key, sizeof(key));
        nh_start(&f->host[i]);
        f->link[i] = nh_connect(&f->host[i]);
    }
    f->t = dpc_tiles_open(&cfg, NULL, NULL, err, sizeof(err));
    if (f->t == NULL)
        fail_msg("dpc_tiles_open: %s", err);
}

/* Closes the tile cache (unless the test did) and the hosts. */
static void teardown(struct fixture *f)
{
    char err[DPC_ERRLEN] = "";

    if (f->t != NULL && dpc_tiles_close(f->t, err, sizeof(err)) < 0)
        fail_msg("dpc_tiles_close: %s", err);
    for (int i = 0; i < HOSTS; i++) {
        dpc_link_free(f->link[i]);
        nh_stop(&f->host[i]);
    }
}

/* ImageMagick's rule: region row r is a run of w pixels from pixel
 * (y + r) * COLS + x of the row-major image; later rows win. */
static void model_io(uint8_t *model, uint32_t bpp, uint64_t x, uint64_t y,
                     uint64_t w, uint64_t h, uint8_t *buf, int write)
{
    for (uint64_t r = 0; r < h; r++) {
        uint8_t *m = model + ((y + r) * COLS + x) * bpp;

        if (write)
            memcpy(m, buf + r * w * bpp, w * bpp);
        else
            memcpy(buf + r * w * bpp, m, w * bpp);
    }
}

/* Fills buf with bytes that differ by seed and position. */
static void scribble(uint8_t *buf, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)((i * 131 + seed * 17 + (i >> 8)) | 1);
}

static void write_region(struct fixture *f, int plane, uint64_t x, uint64_t y,
                         uint64_t w, uint64_t h, unsigned seed)
{
    uint32_t bpp = plane == 0 ? BPP : IBPP;
    uint8_t *buf = malloc(w * h * bpp);
    char err[DPC_ERRLEN] = "";

    assert_non_null(buf);
    scribble(buf, w * h * bpp, seed);
    if (dpc_tiles_write(f->t, plane, x, y, w, h, buf, err, sizeof(err)) < 0)
        fail_msg("write %llux%llu+%llu+%llu: %s", (unsigned long long)w,
                 (unsigned long long)h, (unsigned long long)x,
                 (unsigned long long)y, err);
    model_io(plane == 0 ? f->model : f->imodel, bpp, x, y, w, h, buf, 1);
    free(buf);
}

static void check_region(struct fixture *f, int plane, uint64_t x, uint64_t y,
                         uint64_t w, uint64_t h)
{
    uint32_t bpp = plane == 0 ? BPP : IBPP;
    uint8_t *got = malloc(w * h * bpp), *want = malloc(w * h * bpp);
    char err[DPC_ERRLEN] = "";

    assert_non_null(got);
    assert_non_null(want);
    memset(got, 0x5a, w * h * bpp);
    if (dpc_tiles_read(f->t, plane, x, y, w, h, got, err, sizeof(err)) < 0)
        fail_msg("read %llux%llu+%llu+%llu: %s", (unsigned long long)w,
                 (unsigned long long)h, (unsigned long long)x,
                 (unsigned long long)y, err);
    model_io(plane == 0 ? f->model : f->imodel, bpp, x, y, w, h, want, 0);
    for (size_t i = 0; i < w * h * bpp; i++)
        if (got[i] != want[i])
            fail_msg("read %llux%llu+%llu+%llu plane %d: byte %zu is %u, "
                     "expected %u", (unsigned long long)w,
                     (unsigned long long)h, (unsigned long long)x,
                     (unsigned long long)y, plane, i, got[i], want[i]);
    free(got);
    free(want);
}

static struct dpc_tiles_stats stats(const struct fixture *f)
{
    struct dpc_tiles_stats st;

    dpc_tiles_get_stats(f->t, &st);
    return st;
}

/* Every region shape the tests read back: the whole image, inner ones,
 * tile-aligned ones, single pixels, and rows running past the edge. */
static void check_all(struct fixture *f, int plane)
{
    check_region(f, plane, 0, 0, COLS, ROWS);
    check_region(f, plane, 3, 5, 17, 9);
    check_region(f, plane, 4, 8, 4, 4);
    check_region(f, plane, 39, 23, 1, 1);
    check_region(f, plane, 0, 0, 1, 1);
    check_region(f, plane, 1, 1, 2, 2);
    check_region(f, plane, 30, 2, 25, 3);       /* wraps onto the next row */
    check_region(f, plane, 5, 20, 3 * COLS, 1); /* three image rows long */
}

/* A cache never written reads as zeros everywhere, and nothing is fetched:
 * the hosts see their OPEN and nothing else until the CLOSE. */
static void tiles_unwritten_read_zero_test(void **state)
{
    struct fixture f;
    static uint8_t buf[COLS * ROWS * BPP];
    char err[DPC_ERRLEN] = "";
    struct dpc_tiles_stats st;

    setup(&f, 0);
    memset(buf, 0x77, sizeof(buf));
    assert_int_equal(dpc_tiles_read(f.t, 0, 0, 0, COLS, ROWS, buf, err,
                                    sizeof(err)), 0);
    for (size_t i = 0; i < sizeof(buf); i++)
        assert_int_equal(buf[i], 0);
    check_all(&f, 0);
    st = stats(&f);
    assert_int_equal(st.fetched, 0);
    assert_int_equal(st.direct, 0);
    assert_int_equal(st.round_trips, 0);
    assert_true(st.zero_filled > 0);
    assert_int_equal(st.slots_per_host_max, NTILES / HOSTS);
    teardown(&f);
    for (int i = 0; i < HOSTS; i++)
        assert_int_equal(f.host[i].requests, 2);    /* OPEN, CLOSE */
}

/* Small writes all over the image through an 8-tile cache: dirty tiles
 * are evicted with their bytes written back, and reading everything back
 * (after more evictions) fetches them correct; after a flush, again. */
static void tiles_eviction_writeback_test(void **state)
{
    struct fixture f;
    char err[DPC_ERRLEN] = "";
    struct dpc_tiles_stats st;
    unsigned seed = 1;

    setup(&f, 0);
    for (uint64_t y = 0; y < ROWS; y += 3)
        for (uint64_t x = 0; x < COLS; x += 5)
            write_region(&f, 0, x, y, 3, 2, seed++);
    st = stats(&f);
    assert_true(st.written_back > 0);
    assert_true(st.misses > 8);
    check_all(&f, 0);
    st = stats(&f);
    assert_true(st.fetched > 0);
    for (uint64_t y = 0; y < ROWS; y++)         /* pixel by pixel */
        for (uint64_t x = 0; x < COLS; x += 7)
            check_region(&f, 0, x, y, 1, 1);
    write_region(&f, 0, 2, 2, 9, 9, seed++);
    assert_int_equal(dpc_tiles_flush(f.t, err, sizeof(err)), 0);
    check_all(&f, 0);
    teardown(&f);
}

/* ImageMagick clears every image it reads row by row (ResetImagePixels)
 * before the coder writes it: zeros written to tiles never written cost
 * nothing (no tile cached, written back or fetched later).  Zeros written
 * over tiles that hold data, and data written over cleared ones, still
 * read back as the model says. */
static void tiles_zero_clear_test(void **state)
{
    struct fixture f;
    static uint8_t zero[COLS * BPP];
    struct dpc_tiles_stats st;
    char err[DPC_ERRLEN] = "";

    (void)state;
    setup(&f, 0);
    for (uint64_t y = 0; y < ROWS; y++)
        assert_int_equal(dpc_tiles_write(f.t, 0, 0, y, COLS, 1, zero, err,
                                         sizeof(err)), 0);
    assert_int_equal(dpc_tiles_flush(f.t, err, sizeof(err)), 0);
    st = stats(&f);
    assert_int_equal(st.misses, 0);
    assert_int_equal(st.written_back, 0);
    assert_int_equal(st.direct, 0);
    assert_int_equal(st.round_trips, 0);
    check_all(&f, 0);
    assert_int_equal(stats(&f).fetched, 0);
    /* data, evicted to the hosts, then zeros over part of it */
    for (uint64_t y = 0; y < ROWS; y += 2)
        write_region(&f, 0, 0, y, COLS, 2, (unsigned)y + 1);
    assert_int_equal(dpc_tiles_flush(f.t, err, sizeof(err)), 0);
    for (uint64_t y = 5; y < 14; y++) {
        assert_int_equal(dpc_tiles_write(f.t, 0, 3, y, 30, 1, zero, err,
                                         sizeof(err)), 0);
        model_io(f.model, BPP, 3, y, 30, 1, zero, 1);
    }
    check_all(&f, 0);
    teardown(&f);
    /* a tile partly zeroed while never written, the rest written later */
    setup(&f, 0);
    assert_int_equal(dpc_tiles_write(f.t, 0, 8, 8, 2, 2, zero, err,
                                     sizeof(err)), 0);
    write_region(&f, 0, 10, 10, 2, 2, 3);
    check_all(&f, 0);
    teardown(&f);
}

/* A second tile cache like f->t's (cfg: tile size tw x th). */
static struct dpc_tiles *open_like(struct fixture *f, uint32_t tw,
                                   uint32_t th)
{
    struct dpc_tiles_cfg cfg = { .columns = COLS, .rows = ROWS,
                                 .bpp = { BPP, 0 }, .tile_w = tw,
                                 .tile_h = th, .cache_bytes = 1,
                                 .links = f->link, .nlinks = HOSTS };
    char err[DPC_ERRLEN] = "";
    struct dpc_tiles *t = dpc_tiles_open(&cfg, NULL, NULL, err, sizeof(err));

    if (t == NULL)
        fail_msg("dpc_tiles_open: %s", err);
    return t;
}

/* A clone made on the hosts (COPY): the copy reads as the original did,
 * dirty tiles of the original included, with nothing fetched for the
 * copy; writes to either leave the other as it was.  Refused, with
 * nothing changed, for another tile size, a copy already written to, and
 * a host whose status says nothing of COPY; the links go on serving. */
static void tiles_clone_test(void **state)
{
    struct fixture f;
    static uint8_t orig[COLS * ROWS * BPP];
    struct dpc_tiles *src, *dst;
    char err[DPC_ERRLEN] = "";
    unsigned seed = 1;

    (void)state;
    setup(&f, 0);
    for (uint64_t y = 0; y < ROWS; y += 3)          /* some stay dirty */
        for (uint64_t x = 0; x < COLS; x += 7)
            write_region(&f, 0, x, y, 5, 2, seed++);
    src = f.t;
    dst = open_like(&f, TW, TH);
    assert_int_equal(dpc_tiles_clone(dst, src, err, sizeof(err)), 0);
    f.t = dst;
    assert_int_equal(stats(&f).cloned, 1);
    check_all(&f, 0);
    memcpy(orig, f.model, sizeof(orig));
    write_region(&f, 0, 2, 2, 20, 10, seed++);      /* the copy changes */
    check_all(&f, 0);
    assert_int_equal(dpc_tiles_close(dst, err, sizeof(err)), 0);
    f.t = src;
    memcpy(f.model, orig, sizeof(orig));            /* not the original */
    check_all(&f, 0);
    /* refused: another tile size; a copy written to */
    dst = open_like(&f, 8, 4);
    assert_int_equal(dpc_tiles_clone(dst, src, err, sizeof(err)),
                     -DPC_E_REFUSED);
    assert_contains(err, "layout");
    assert_int_equal(dpc_tiles_close(dst, err, sizeof(err)), 0);
    dst = open_like(&f, TW, TH);
    assert_int_equal(dpc_tiles_write(dst, 0, 0, 0, 1, 1, orig, err,
                                     sizeof(err)), 0);
    assert_int_equal(dpc_tiles_clone(dst, src, err, sizeof(err)),
                     -DPC_E_REFUSED);
    assert_int_equal(dpc_tiles_close(dst, err, sizeof(err)), 0);
    check_all(&f, 0);
    teardown(&f);
    /* hosts whose status says nothing of COPY: asked once, then refused */
    memset(&f, 0, sizeof(f));
    for (int i = 0; i < HOSTS; i++) {
        memcpy(f.host[i].key, key, sizeof(key));
        f.host[i].no_copy = 1;
        nh_start(&f.host[i]);
        f.link[i] = nh_connect(&f.host[i]);
    }
    f.t = open_like(&f, TW, TH);
    write_region(&f, 0, 0, 0, COLS, ROWS, seed++);
    dst = open_like(&f, TW, TH);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(dpc_tiles_clone(dst, f.t, err, sizeof(err)),
                         -DPC_E_REFUSED);
        assert_contains(err, "older than COPY");
    }
    assert_int_equal(dpc_tiles_close(dst, err, sizeof(err)), 0);
    check_all(&f, 0);
    teardown(&f);
    assert_int_equal(f.host[0].status_calls, 1);
}

/* Replaces setup()'s tile cache by one of cfg, then writes image (fresh
 * bytes, cfg's size) row by row and flushes it to the hosts. */
static void reopen_written(struct fixture *f, const struct dpc_tiles_cfg *cfg,
                           uint8_t *image, unsigned seed)
{
    size_t row = (size_t)cfg->columns * BPP;
    char err[DPC_ERRLEN] = "";

    assert_int_equal(dpc_tiles_close(f->t, err, sizeof(err)), 0);
    f->t = dpc_tiles_open(cfg, NULL, NULL, err, sizeof(err));
    if (f->t == NULL)
        fail_msg("dpc_tiles_open: %s", err);
    scribble(image, row * cfg->rows, seed);
    for (uint64_t y = 0; y < cfg->rows; y++)
        assert_int_equal(dpc_tiles_write(f->t, 0, 0, y, cfg->columns, 1,
                                         image + y * row, err, sizeof(err)),
                         0);
    assert_int_equal(dpc_tiles_flush(f->t, err, sizeof(err)), 0);
}

/* A column read pixel by pixel, as MagickCore reads one reaching past the
 * image's edge, through a 32-tile cache: the read-ahead grows along the
 * scan, so 96 tiles come in a few round trips (one for every other tile
 * before), and every pixel is right. */
#define SCAN_COLS 8
#define SCAN_ROWS 512
static void tiles_column_scan_test(void **state)
{
    struct fixture f;
    struct dpc_tiles_cfg cfg = { .columns = SCAN_COLS, .rows = SCAN_ROWS,
                                 .bpp = { BPP, 0 }, .tile_w = TW,
                                 .tile_h = TH,
                                 .cache_bytes = 32 * TW * TH * BPP,
                                 .links = f.link, .nlinks = HOSTS };
    static uint8_t image[SCAN_COLS * SCAN_ROWS * BPP];
    char err[DPC_ERRLEN] = "";
    uint64_t before;

    (void)state;
    setup(&f, 0);
    reopen_written(&f, &cfg, image, 9);
    before = stats(&f).round_trips;
    for (uint64_t y = 0; y < 96 * TH; y++) {
        uint8_t px[BPP];

        assert_int_equal(dpc_tiles_read(f.t, 0, 1, y, 1, 1, px, err,
                                        sizeof(err)), 0);
        assert_memory_equal(px, image + (y * SCAN_COLS + 1) * BPP, BPP);
    }
    print_message("96 tiles down a column: %llu round trips\n",
                  (unsigned long long)(stats(&f).round_trips - before));
    assert_true(stats(&f).round_trips - before <= 16);
    teardown(&f);
}

/* A resampling walk, as -distort and -rotate read their source: for each
 * output row, 2x1 reads along a slanted line, the line one pixel lower
 * each row, through a 200-tile cache.  Every tile is new to the walk
 * when the line first touches it, so each fetch brings the tiles around
 * it that were written and not read since (those ahead of the line), kept
 * until the line reaches them: about half the round trips of the next
 * band alone (506 here), nothing fetched twice, and every pixel right. */
#define WALK 128
#define WALK_CACHE 200          /* tiles: three lines' worth and more */
static void tiles_slanted_walk_test(void **state)
{
    struct fixture f;
    struct dpc_tiles_cfg cfg = { .columns = WALK, .rows = WALK,
                                 .bpp = { BPP, 0 }, .tile_w = TW,
                                 .tile_h = TH,
                                 .cache_bytes = WALK_CACHE * TW * TH * BPP,
                                 .links = f.link, .nlinks = HOSTS };
    static uint8_t image[WALK * WALK * BPP];
    char err[DPC_ERRLEN] = "";
    struct dpc_tiles_stats st;
    uint64_t before, fetched;

    (void)state;
    setup(&f, 0);
    reopen_written(&f, &cfg, image, 11);
    st = stats(&f);
    before = st.round_trips;
    fetched = st.fetched;
    for (int64_t r = 0; r < WALK + WALK / 2; r++)
        for (int64_t x = 0; x + 2 <= WALK; x += 2) {
            int64_t y = r - x / 2;
            uint8_t px[2 * BPP];

            if (y < 0 || y >= WALK)
                continue;
            assert_int_equal(dpc_tiles_read(f.t, 0, (uint64_t)x,
                                            (uint64_t)y, 2, 1, px, err,
                                            sizeof(err)), 0);
            assert_memory_equal(px, image + ((uint64_t)y * WALK +
                                             (uint64_t)x) * BPP,
                                2 * BPP);
        }
    st = stats(&f);
    print_message("%d tiles walked along a slant: %llu round trips, %llu "
                  "fetched\n", (WALK / TW) * (WALK / TH),
                  (unsigned long long)(st.round_trips - before),
                  (unsigned long long)(st.fetched - fetched));
    assert_true(st.round_trips - before <= 350);
    assert_true(st.fetched - fetched <= (WALK / TW) * (WALK / TH) + 16);
    teardown(&f);
}

/* Two threads' column walks, as -rotate's shears read (a 1-pixel-wide
 * column each, the two columns half the image apart), through a cache of
 * dpc_tiles_walk_bytes: no tile is fetched twice.  Through a cache of
 * one line of tiles down the image, as the drop-in gave to a small
 * cache:dpc-tile-cache before, the two lines evict each other. */
static uint64_t column_walks(struct fixture *f, uint64_t cache_bytes)
{
    struct dpc_tiles_cfg cfg = { .columns = WALK, .rows = WALK,
                                 .bpp = { BPP, 0 }, .tile_w = TW,
                                 .tile_h = TH, .cache_bytes = cache_bytes,
                                 .links = f->link, .nlinks = HOSTS };
    static uint8_t image[WALK * WALK * BPP];
    uint8_t column[WALK * BPP];
    char err[DPC_ERRLEN] = "";
    uint64_t fetched;

    if (cache_bytes == 0)
        cfg.cache_bytes = dpc_tiles_walk_bytes(&cfg);
    reopen_written(f, &cfg, image, 13);
    fetched = stats(f).fetched;
    for (uint64_t x = 0; x < WALK / 2; x++)
        for (uint64_t c = x; c < WALK; c += WALK / 2) {
            assert_int_equal(dpc_tiles_read(f->t, 0, c, 0, 1, WALK, column,
                                            err, sizeof(err)), 0);
            for (uint64_t y = 0; y < WALK; y++)
                assert_memory_equal(column + y * BPP,
                                    image + (y * WALK + c) * BPP, BPP);
        }
    return stats(f).fetched - fetched;
}

static void tiles_column_walks_test(void **state)
{
    struct fixture f;
    uint64_t tiles = (WALK / TW) * (WALK / TH), once, line;

    (void)state;
    setup(&f, 0);
    once = column_walks(&f, 0);
    /* one line of tiles down the image, and a few more */
    line = column_walks(&f, (WALK / TH + 8) * TW * TH * BPP);
    print_message("%llu tiles, two columns at a time: %llu fetched in "
                  "dpc_tiles_walk_bytes, %llu in one line of tiles\n",
                  (unsigned long long)tiles, (unsigned long long)once,
                  (unsigned long long)line);
    assert_true(once <= tiles);       /* some are still in from the writes */
    assert_true(line > 2 * tiles);
    teardown(&f);
}

/* Writes whose rows run past the right edge (ImageMagick draws glyph rows
 * that way): each row continues on the next image row, later rows win;
 * the image reads back as the model says. */
static void tiles_region_wraps_test(void **state)
{
    struct fixture f;
    uint8_t buf[8];
    char err[DPC_ERRLEN] = "";

    setup(&f, 0);
    write_region(&f, 0, 35, 0, 12, 4, 1);           /* 5 + 7 per row */
    write_region(&f, 0, 38, 10, 2 * COLS + 3, 2, 2);/* rows overlap */
    write_region(&f, 0, 0, 23, COLS, 1, 3);
    write_region(&f, 0, 39, 22, COLS + 1, 1, 4);    /* ends at the last */
    check_all(&f, 0);
    check_region(&f, 0, 35, 0, 12, 4);
    check_region(&f, 0, 38, 10, 2 * COLS + 3, 2);
    /* past the cache's end: refused (DPC_E_INVALID), as ImageMagick does */
    assert_int_equal(dpc_tiles_write(f.t, 0, 39, 23, 2, 1, buf, err,
                                     sizeof(err)),
                     -DPC_E_INVALID);
    assert_true(err[0] != '\0');
    assert_int_equal(dpc_tiles_read(f.t, 0, COLS, 0, 1, 1, buf, err,
                                    sizeof(err)),
                     -DPC_E_INVALID);
    assert_int_equal(dpc_tiles_read(f.t, 1, 0, 0, 1, 1, buf, err,
                                    sizeof(err)),
                     -DPC_E_INVALID);
    assert_contains(err, "no plane 1");
    teardown(&f);
}

/* Whole-image writes and reads are too large for the 8-tile cache: their
 * whole tiles go straight between the caller's buffer and the hosts
 * (stats.direct), partly covered ones through the cache; a fresh region
 * read then fetches directly, and smaller reads see the same pixels. */
static void tiles_direct_path_test(void **state)
{
    struct fixture f;
    struct dpc_tiles_stats st;
    uint64_t direct;

    setup(&f, 0);
    write_region(&f, 0, 0, 0, COLS, ROWS, 7);
    st = stats(&f);
    assert_true(st.direct >= NTILES - 8);
    direct = st.direct;
    write_region(&f, 0, 2, 1, COLS - 3, ROWS - 2, 8);  /* ragged edges */
    check_region(&f, 0, 0, 0, COLS, ROWS);
    st = stats(&f);
    assert_true(st.direct > direct);
    assert_true(st.round_trips > 0);
    check_all(&f, 0);
    teardown(&f);
}

/* Pixels and indexes share each tile's slot: both planes round-trip
 * through evictions, and writing one plane leaves the other alone (no
 * direct path: a whole-tile write of one plane does not cover the slot). */
static void tiles_index_plane_test(void **state)
{
    struct fixture f;
    struct dpc_tiles_stats st;

    setup(&f, IBPP);
    write_region(&f, 1, 0, 0, COLS, ROWS, 1);
    write_region(&f, 0, 0, 0, COLS, ROWS, 2);
    write_region(&f, 1, 6, 3, 11, 13, 3);
    write_region(&f, 0, 33, 7, 20, 2, 4);
    check_all(&f, 0);
    check_all(&f, 1);
    st = stats(&f);
    assert_int_equal(st.direct, 0);
    assert_true(st.written_back > 0 && st.fetched > 0);
    teardown(&f);
}

/* Waits (bounded) until host h has closed its connection. */
static void wait_dropped(struct nativehost *h)
{
    for (int i = 0; i < 500; i++) {
        if (__atomic_load_n(&h->closed_early, __ATOMIC_ACQUIRE))
            return;
        usleep(10 * 1000);
    }
    fail_msg("the host did not close its connection");
}

/* After a flush, host 1 takes the first request of the next fetch round
 * and closes without answering: the read fails with an error naming the
 * host, no tile of that round is served afterwards (read_hit declines,
 * locked reads fail on the broken link rather than return stale bytes),
 * and closing the cache reports the lost host instead of crashing. */
static void tiles_failed_round_test(void **state)
{
    struct fixture f;
    static uint8_t buf[COLS * ROWS * BPP];
    char err[DPC_ERRLEN] = "", want[64];
    uint8_t px[BPP];

    setup(&f, 0);
    write_region(&f, 0, 0, 0, COLS, ROWS, 9);
    assert_int_equal(dpc_tiles_flush(f.t, err, sizeof(err)), 0);
    check_region(&f, 0, 0, 0, 4, 4);            /* tile 0 resident */
    assert_int_equal(dpc_tiles_read_hit(f.t, 0, 1, 1, 1, 1, px), 1);
    __atomic_store_n(&f.host[1].drop_after, 1, __ATOMIC_RELEASE);
    memset(buf, 0, sizeof(buf));
    /* tiles 2..5 of the first band: on both hosts, fetched in one round */
    assert_int_equal(dpc_tiles_read(f.t, 0, 8, 0, 16, 4, buf, err,
                                    sizeof(err)),
                     -DPC_E_CLOSED);
    snprintf(want, sizeof(want), "127.0.0.1:%u", f.host[1].port);
    assert_contains(err, want);
    wait_dropped(&f.host[1]);
    /* nothing served from the failed round, nor lock-free at all */
    assert_int_equal(dpc_tiles_read_hit(f.t, 0, 8, 0, 1, 1, px), 0);
    assert_int_equal(dpc_tiles_read_hit(f.t, 0, 1, 1, 1, 1, px), 0);
    assert_int_equal(dpc_tiles_read(f.t, 0, 12, 0, 4, 4, buf, err,
                                    sizeof(err)),
                     -DPC_E_CLOSED);
    assert_true(dpc_link_broken(f.link[1]));
    assert_false(dpc_link_broken(f.link[0]));
    /* a tile of the healthy host: the read may fail (the cache lost a
     * host), but never returns other bytes than were written */
    memset(buf, 0, sizeof(buf));
    if (dpc_tiles_read(f.t, 0, 16, 0, 4, 4, buf, err, sizeof(err)) == 0) {
        static uint8_t want_px[4 * 4 * BPP];

        model_io(f.model, BPP, 16, 0, 4, 4, want_px, 0);
        assert_memory_equal(buf, want_px, sizeof(want_px));
    }
    err[0] = '\0';
    assert_int_equal(dpc_tiles_close(f.t, err, sizeof(err)),
                     -DPC_E_CLOSED);
    assert_contains(err, want);
    f.t = NULL;
    teardown(&f);
}

/* Concurrency: one writer, holding the caller's lock, rewrites whole
 * tiles (each pixel: its x, y and the write's generation), mostly four
 * that stay resident and are rewritten in place, now and then others, and
 * reads bands, evicting and fetching; three readers call
 * dpc_tiles_read_hit() without the lock on regions inside one tile and
 * across four, falling back to dpc_tiles_read() under the lock when it
 * declines.  Every region read must hold the right coordinates, and one
 * generation per tile (no torn or misplaced tile). */
#define READERS 3
#define ROUNDS 15000

struct shared {
    struct fixture *f;
    pthread_mutex_t lock;           /* the caller's lock */
    int done;                       /* __atomic */
    unsigned long hits, checks, bad;    /* under lock */
    char why[2 * DPC_ERRLEN];
};

static void encode(uint8_t *p, uint64_t x, uint64_t y, uint32_t gen)
{
    p[0] = (uint8_t)x;
    p[1] = (uint8_t)y;
    p[2] = 0xa5;
    p[3] = 0x5a;
    memcpy(p + 4, &gen, 4);
}

/* Checks a region read; 0 when consistent, else -1 with the reason. */
static int verify(const uint8_t *buf, uint64_t x, uint64_t y, uint64_t w,
                  uint64_t h, char *why, size_t len)
{
    uint32_t gen[NTILES];
    uint8_t seen[NTILES] = { 0 };

    for (uint64_t r = 0; r < h; r++)
        for (uint64_t c = 0; c < w; c++) {
            const uint8_t *p = buf + (r * w + c) * BPP;
            uint64_t tile = (y + r) / TH * (COLS / TW) + (x + c) / TW;
            uint32_t g;

            memcpy(&g, p + 4, 4);
            if (p[0] != x + c || p[1] != y + r || p[2] != 0xa5 ||
                p[3] != 0x5a)
                return dpc_errf(why, len, "pixel %llu,%llu holds %u,%u",
                                (unsigned long long)(x + c),
                                (unsigned long long)(y + r), p[0], p[1]);
            if (seen[tile] && gen[tile] != g)
                return dpc_errf(why, len, "tile %llu torn: %u and %u",
                                (unsigned long long)tile, gen[tile], g);
            seen[tile] = 1;
            gen[tile] = g;
        }
    return 0;
}

static void *reader_main(void *arg)
{
    struct shared *s = arg;
    uint8_t buf[8 * 8 * BPP];
    char err[DPC_ERRLEN], why[DPC_ERRLEN + 16];
    unsigned r = (unsigned)(uintptr_t)&r;
    unsigned long hits = 0, checks = 0;

    while (!__atomic_load_n(&s->done, __ATOMIC_ACQUIRE)) {
        uint64_t x, y, w, h;
        int hit, rc = 0;

        r = r * 1103515245u + 12345u;
        if ((r >> 16) & 1) {            /* inside one tile, mostly 0-3 */
            x = (r >> 17) % ((r >> 30) ? 4 * TW : COLS);
            y = (r >> 23) % ((r >> 30) ? TH : ROWS);
            w = 1 + (r >> 3) % (TW - x % TW);
            h = 1 + (r >> 7) % (TH - y % TH);
        } else {                        /* across up to four tiles */
            x = (r >> 17) % ((r >> 30) ? 3 * TW : COLS - 4);
            y = (r >> 23) % ((r >> 30) ? TH : ROWS - 4);
            w = 2 + (r >> 3) % 3;
            h = 2 + (r >> 7) % 3;
        }
        hit = dpc_tiles_read_hit(s->f->t, 0, x, y, w, h, buf);
        if (!hit) {
            pthread_mutex_lock(&s->lock);
            rc = dpc_tiles_read(s->f->t, 0, x, y, w, h, buf, err,
                                sizeof(err));
            pthread_mutex_unlock(&s->lock);
        }
        if (rc < 0)
            snprintf(why, sizeof(why), "read failed: %s", err);
        if (rc < 0 || verify(buf, x, y, w, h, why, sizeof(why)) < 0) {
            pthread_mutex_lock(&s->lock);
            if (s->bad++ == 0)
                snprintf(s->why, sizeof(s->why), "%s (%s)", why,
                         hit ? "lock-free" : "locked");
            pthread_mutex_unlock(&s->lock);
        }
        hits += (unsigned long)hit;
        checks++;
    }
    pthread_mutex_lock(&s->lock);
    s->hits += hits;
    s->checks += checks;
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* Writes tile `tile` whole, every pixel tagged with gen. */
static int write_tile(struct fixture *f, uint64_t tile, uint32_t gen)
{
    uint8_t buf[TW * TH * BPP];
    uint64_t x0 = tile % (COLS / TW) * TW, y0 = tile / (COLS / TW) * TH;
    char err[DPC_ERRLEN];

    for (uint64_t r = 0; r < TH; r++)
        for (uint64_t c = 0; c < TW; c++)
            encode(buf + (r * TW + c) * BPP, x0 + c, y0 + r, gen);
    return dpc_tiles_write(f->t, 0, x0, y0, TW, TH, buf, err, sizeof(err));
}

/* Lock-free readers beside a writer holding the lock (see above), on f's
 * open tile cache; with drop, that host closes its connection halfway. */
static void run_concurrent(struct fixture *f, struct nativehost *drop)
{
    struct shared s = { .f = f };
    static uint8_t big[COLS * ROWS * BPP];
    pthread_t th[READERS];
    char err[DPC_ERRLEN] = "", why[DPC_ERRLEN];
    uint8_t px[BPP];

    pthread_mutex_init(&s.lock, NULL);
    for (uint64_t tile = 0; tile < NTILES; tile++)
        assert_int_equal(write_tile(f, tile, 0), 0);
    for (int i = 0; i < READERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &s), 0);
    for (uint32_t g = 1; g <= ROUNDS; g++) {
        /* mostly tiles 0-3, rewritten in place while readers copy them;
         * every tenth anywhere, evicting */
        uint64_t tile = g % 10 ? g % 4 : (g / 10 * 7) % NTILES;
        int rc;

        if (drop != NULL && g == ROUNDS / 2)
            __atomic_store_n(&drop->drop_after, 1, __ATOMIC_RELEASE);
        pthread_mutex_lock(&s.lock);
        rc = write_tile(f, tile, g);
        if (rc == 0 && g % 500 == 0)    /* a band: fetches, evictions */
            rc = dpc_tiles_read(f->t, 0, 0, (g / 500) % (ROWS / TH) * TH,
                                COLS, TH, big, err, sizeof(err));
        if (rc == 0 && g % 3000 == 0)
            rc = dpc_tiles_flush(f->t, err, sizeof(err));
        pthread_mutex_unlock(&s.lock);
        if (rc < 0)
            fail_msg("writer, round %u: %s", g, err);
    }
    __atomic_store_n(&s.done, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < READERS; i++)
        pthread_join(th[i], NULL);
    if (s.bad > 0)
        fail_msg("%lu of %lu reads wrong, first: %s", s.bad, s.checks,
                 s.why);
    assert_true(s.checks > 0);
    print_message("%lu reads, %lu served lock-free\n", s.checks, s.hits);
    /* quiet now: a resident tile is served lock-free, and right */
    assert_int_equal(dpc_tiles_read(f->t, 0, 0, 0, 4, 4, big, err,
                                    sizeof(err)), 0);
    assert_int_equal(dpc_tiles_read_hit(f->t, 0, 2, 3, 1, 1, px), 1);
    assert_int_equal(verify(px, 2, 3, 1, 1, why, sizeof(why)), 0);
    assert_int_equal(dpc_tiles_read(f->t, 0, 0, 0, COLS, ROWS, big, err,
                                    sizeof(err)), 0);
    assert_int_equal(verify(big, 0, 0, COLS, ROWS, why, sizeof(why)), 0);
    pthread_mutex_destroy(&s.lock);
}

static void tiles_concurrent_readers_test(void **state)
{
    struct fixture f;

    setup(&f, 0);
    run_concurrent(&f, NULL);
    teardown(&f);
}

/* Links shared through dpc_pool: two threads each acquire links to both
 * hosts from the pool (the same two links; the second names the hosts in
 * the other order, as another image striped differently would), open a
 * tile cache of their own on them, and write and read it through constant
 * evictions at the same time; each reads back exactly what it wrote. */
struct sharer {
    struct nativehost *host;
    int reversed;
    struct dpc_link *link[HOSTS];
    unsigned seed;
    uint8_t model[COLS * ROWS * BPP];
    char err[2 * DPC_ERRLEN];
};

static int sharer_run(struct sharer *w)
{
    struct dpc_tiles_cfg cfg = { .columns = COLS, .rows = ROWS,
                                 .bpp = { BPP, 0 }, .tile_w = TW,
                                 .tile_h = TH, .cache_bytes = 1,
                                 .links = w->link, .nlinks = HOSTS };
    static const uint64_t shapes[][4] = {
        { 0, 0, 3, 2 }, { 5, 1, 9, 7 }, { 30, 4, 25, 2 }, { 0, 0, COLS, ROWS },
        { 17, 3, 1, 1 }, { 2, 9, 36, 13 },
    };
    uint8_t buf[COLS * ROWS * BPP], want[COLS * ROWS * BPP];
    char err[DPC_ERRLEN] = "";
    struct dpc_tiles *t;
    int rc = -1;

    t = dpc_tiles_open(&cfg, NULL, NULL, err, sizeof(err));
    if (t == NULL)
        return dpc_errf(w->err, sizeof(w->err), "open: %s", err);
    for (unsigned round = 0; round < 60; round++) {
        const uint64_t *r = shapes[round % 6];
        uint64_t x = r[2] == COLS ? 0 : r[0] + round % 3, y = r[1];
        uint64_t n = r[2] * r[3];

        scribble(buf, n * BPP, w->seed + round);
        if (dpc_tiles_write(t, 0, x, y, r[2], r[3], buf, err,
                            sizeof(err)) < 0) {
            dpc_errf(w->err, sizeof(w->err), "write %u: %s", round, err);
            goto out;
        }
        model_io(w->model, BPP, x, y, r[2], r[3], buf, 1);
        if (round % 5 == 4 && dpc_tiles_read(t, 0, 0, 0, COLS, ROWS, buf, err,
                                             sizeof(err)) < 0) {
            dpc_errf(w->err, sizeof(w->err), "read %u: %s", round, err);
            goto out;
        }
        if (round % 5 == 4 && memcmp(buf, w->model, sizeof(buf)) != 0) {
            dpc_errf(w->err, sizeof(w->err), "round %u: the image read back "
                     "differs from the one written", round);
            goto out;
        }
    }
    if (dpc_tiles_flush(t, err, sizeof(err)) < 0 ||
        dpc_tiles_read(t, 0, 0, 0, COLS, ROWS, buf, err, sizeof(err)) < 0) {
        dpc_errf(w->err, sizeof(w->err), "final read: %s", err);
        goto out;
    }
    model_io(w->model, BPP, 0, 0, COLS, ROWS, want, 0);
    if (memcmp(buf, want, sizeof(buf)) != 0) {
        dpc_errf(w->err, sizeof(w->err), "final image differs");
        goto out;
    }
    rc = 0;
out:
    if (dpc_tiles_close(t, err, sizeof(err)) < 0 && rc == 0)
        rc = dpc_errf(w->err, sizeof(w->err), "close: %s", err);
    return rc;
}

static void *sharer_main(void *arg)
{
    struct sharer *w = arg;

    return sharer_run(w) < 0 ? w : NULL;
}

/* Two tile caches in two threads on two pooled links (see above). */
static void tiles_shared_links_test(void **state)
{
    struct nativehost host[HOSTS];
    static struct sharer w[2];
    pthread_t th[2];
    char err[DPC_ERRLEN] = "";

    memset(host, 0, sizeof(host));
    memset(w, 0, sizeof(w));
    for (int i = 0; i < HOSTS; i++) {
        memcpy(host[i].key, key, sizeof(key));
        nh_start(&host[i]);
    }
    for (int k = 0; k < 2; k++) {
        w[k].reversed = k;
        w[k].seed = 100 * (unsigned)k + 1;
        for (int i = 0; i < HOSTS; i++) {
            struct nativehost *h = &host[k ? HOSTS - 1 - i : i];

            w[k].link[i] = dpc_pool_acquire("127.0.0.1", h->port, h->key,
                                            NULL, 10000, NULL, err,
                                            sizeof(err));
            if (w[k].link[i] == NULL)
                fail_msg("dpc_pool_acquire: %s", err);
        }
    }
    /* one connection per host, shared */
    assert_ptr_equal(w[0].link[0], w[1].link[1]);
    assert_ptr_equal(w[0].link[1], w[1].link[0]);
    for (int k = 0; k < 2; k++)
        assert_int_equal(pthread_create(&th[k], NULL, sharer_main, &w[k]), 0);
    for (int k = 0; k < 2; k++) {
        void *bad = NULL;

        pthread_join(th[k], &bad);
        if (bad != NULL)
            fail_msg("thread %d: %s", k, w[k].err);
    }
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < HOSTS; i++)
            dpc_pool_release(w[k].link[i]);
    for (int i = 0; i < HOSTS; i++) {
        nh_stop(&host[i]);
        assert_int_equal(__atomic_load_n(&host[i].connections,
                                         __ATOMIC_ACQUIRE), 1);
    }
}

/* Replicas: three hosts, two copies of each tile (the same image, tiles
 * and tile cache as above). */
#define RHOSTS 3

struct rfixture {
    struct nativehost host[RHOSTS];
    struct dpc_link *link[RHOSTS];
    struct fixture f;           /* its t and model; its hosts unused */
};

static void rsetup(struct rfixture *r, uint32_t replicas)
{
    struct dpc_tiles_cfg cfg = { .columns = COLS, .rows = ROWS,
                                 .bpp = { BPP, 0 }, .tile_w = TW,
                                 .tile_h = TH, .cache_bytes = 1,
                                 .links = r->link, .nlinks = RHOSTS,
                                 .replicas = replicas };
    char err[DPC_ERRLEN] = "";

    memset(r, 0, sizeof(*r));
    for (int i = 0; i < RHOSTS; i++) {
        memcpy(r->host[i].key, key, sizeof(key));
        nh_start(&r->host[i]);
        r->link[i] = nh_connect(&r->host[i]);
    }
    r->f.t = dpc_tiles_open(&cfg, NULL, NULL, err, sizeof(err));
    if (r->f.t == NULL)
        fail_msg("dpc_tiles_open: %s", err);
}

static void rteardown(struct rfixture *r)
{
    char err[DPC_ERRLEN] = "";

    if (r->f.t != NULL && dpc_tiles_close(r->f.t, err, sizeof(err)) < 0)
        fail_msg("dpc_tiles_close: %s", err);
    for (int i = 0; i < RHOSTS; i++) {
        dpc_link_free(r->link[i]);
        nh_stop(&r->host[i]);
    }
}

/* The whole image written in pieces, flushed: every tile on its hosts. */
static void rwrite_all(struct rfixture *r)
{
    char err[DPC_ERRLEN] = "";
    unsigned seed = 11;

    for (uint64_t y = 0; y < ROWS; y += 4)
        for (uint64_t x = 0; x < COLS; x += 8)
            write_region(&r->f, 0, x, y, 8, 4, seed++);
    write_region(&r->f, 0, 3, 5, 17, 9, seed++);   /* ragged, evicting */
    if (dpc_tiles_flush(r->f.t, err, sizeof(err)) < 0)
        fail_msg("flush: %s", err);
}

/* Placement: with 2 replicas over 3 hosts each host opens 2/3 of the
 * tiles' slots (60 tiles: 40), not 1/3; with more replicas than hosts the
 * open fails and says so. */
static void tiles_replica_share_test(void **state)
{
    struct rfixture r;
    struct dpc_tiles_cfg cfg = { .columns = COLS, .rows = ROWS,
                                 .bpp = { BPP, 0 }, .tile_w = TW,
                                 .tile_h = TH, .cache_bytes = 1,
                                 .nlinks = RHOSTS, .replicas = 4 };
    char err[DPC_ERRLEN] = "";
    enum dpc_errcode code;

    rsetup(&r, 2);
    assert_int_equal(stats(&r.f).slots_per_host_max, NTILES * 2 / RHOSTS);
    cfg.links = r.link;
    assert_null(dpc_tiles_open(&cfg, &code, NULL, err, sizeof(err)));
    assert_int_equal(code, DPC_E_INVALID);
    assert_contains(err, "4 replicas");
    rteardown(&r);
}

/* Distinct hosts and write fan-out: for each host in turn, an image
 * written with 2 replicas over 3 hosts, flushed, then that host closes
 * its connection: every tile still reads back right from its other copy
 * (so no tile had both copies on one host, and every write reached both),
 * the cache says which host it lost, and only it. */
static void tiles_replica_any_host_lost_test(void **state)
{
    for (int lost = 0; lost < RHOSTS; lost++) {
        struct rfixture r;
        char why[DPC_ERRLEN] = "", want[64];
        struct dpc_tiles_stats st;

        rsetup(&r, 2);
        rwrite_all(&r);
        /* out of the tile cache: everything is fetched again */
        check_region(&r.f, 0, 0, 0, COLS, 8);
        __atomic_store_n(&r.host[lost].drop_after, 1, __ATOMIC_RELEASE);
        check_all(&r.f, 0);
        for (uint64_t y = 0; y < ROWS; y += 5)       /* small reads too */
            for (uint64_t x = 0; x < COLS; x += 3)
                check_region(&r.f, 0, x, y, 2, 2);
        st = stats(&r.f);
        assert_int_equal(st.hosts_lost, 1);
        assert_true(st.failovers > 0);
        for (int h = 0; h < RHOSTS; h++)
            assert_int_equal(dpc_tiles_host_lost(r.f.t, (size_t)h, why,
                                                 sizeof(why)), h == lost);
        dpc_tiles_host_lost(r.f.t, (size_t)lost, why, sizeof(why));
        snprintf(want, sizeof(want), "127.0.0.1:%u", r.host[lost].port);
        assert_contains(why, want);
        /* writes go on to the survivors */
        write_region(&r.f, 0, 0, 0, COLS, ROWS, 40 + (unsigned)lost);
        write_region(&r.f, 0, 6, 6, 5, 5, 50);
        check_all(&r.f, 0);
        rteardown(&r);
    }
}

/* A host lost in the middle of a fetch round (it takes the first GET and
 * closes): the round's GETs it owed go to the replicas, the read returns
 * the right pixels, and the copies it held are made again on the other two
 * hosts.  So a second host lost later is survived too; the last one lost,
 * some tile has no copy left: the read fails naming the hosts, and so does
 * every later call, the lock-free path included. */
static void tiles_replica_failover_then_fail_test(void **state)
{
    struct rfixture r;
    static uint8_t buf[COLS * ROWS * BPP];
    char err[DPC_ERRLEN] = "", want[64];
    uint8_t px[BPP];
    int rc;

    rsetup(&r, 2);
    rwrite_all(&r);
    check_region(&r.f, 0, 0, 0, 4, 4);            /* tile 0 resident */
    __atomic_store_n(&r.host[1].drop_after, 1, __ATOMIC_RELEASE);
    check_region(&r.f, 0, 8, 4, 16, 4);           /* tiles 12..15 */
    wait_dropped(&r.host[1]);
    assert_int_equal(stats(&r.f).hosts_lost, 1);
    /* every tile had a copy on host 1 or not: 2/3 of them were re-copied */
    assert_int_equal(stats(&r.f).recopied, NTILES * 2 / RHOSTS);
    check_all(&r.f, 0);
    write_region(&r.f, 0, 5, 3, 20, 9, 77);       /* writes go on */
    __atomic_store_n(&r.host[2].drop_after, 1, __ATOMIC_RELEASE);
    check_all(&r.f, 0);                           /* the second loss */
    assert_int_equal(stats(&r.f).hosts_lost, 2);
    check_all(&r.f, 0);
    __atomic_store_n(&r.host[0].drop_after, 1, __ATOMIC_RELEASE);
    rc = dpc_tiles_read(r.f.t, 0, 0, 0, COLS, ROWS, buf, err, sizeof(err));
    assert_int_equal(rc, -DPC_E_CLOSED);
    assert_contains(err, "no copy of a tile is left");
    snprintf(want, sizeof(want), "127.0.0.1:%u", r.host[0].port);
    assert_contains(err, want);
    assert_int_equal(dpc_tiles_read_hit(r.f.t, 0, 1, 1, 1, 1, px), 0);
    assert_int_equal(dpc_tiles_write(r.f.t, 0, 0, 0, 1, 1, px, err,
                                     sizeof(err)), -DPC_E_CLOSED);
    assert_int_equal(dpc_tiles_flush(r.f.t, err, sizeof(err)),
                     -DPC_E_CLOSED);
    assert_int_equal(dpc_tiles_close(r.f.t, err, sizeof(err)),
                     -DPC_E_CLOSED);
    assert_contains(err, "no copy");
    r.f.t = NULL;
    rteardown(&r);
}

/* Two hosts lost in the same round, before any re-copy: the tiles whose
 * two copies were there have none left; the error names both hosts. */
static void tiles_replica_two_lost_at_once_test(void **state)
{
    struct rfixture r;
    static uint8_t buf[COLS * ROWS * BPP];
    char err[DPC_ERRLEN] = "", want[64];

    rsetup(&r, 2);
    rwrite_all(&r);
    __atomic_store_n(&r.host[0].drop_after, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&r.host[2].drop_after, 1, __ATOMIC_RELEASE);
    assert_int_equal(dpc_tiles_read(r.f.t, 0, 0, 0, COLS, ROWS, buf, err,
                                    sizeof(err)), -DPC_E_CLOSED);
    assert_contains(err, "no copy of a tile is left");
    snprintf(want, sizeof(want), "127.0.0.1:%u", r.host[0].port);
    assert_contains(err, want);
    snprintf(want, sizeof(want), "127.0.0.1:%u", r.host[2].port);
    assert_contains(err, want);
    assert_int_equal(dpc_tiles_close(r.f.t, err, sizeof(err)),
                     -DPC_E_CLOSED);
    r.f.t = NULL;
    rteardown(&r);
}

/* Without replicas a lost host fails the cache at once, and the error
 * says how to survive it. */
static void tiles_single_copy_lost_test(void **state)
{
    struct rfixture r;
    static uint8_t buf[COLS * ROWS * BPP];
    char err[DPC_ERRLEN] = "", want[64];

    rsetup(&r, 1);
    rwrite_all(&r);
    __atomic_store_n(&r.host[0].drop_after, 1, __ATOMIC_RELEASE);
    assert_int_equal(dpc_tiles_read(r.f.t, 0, 0, 0, COLS, ROWS, buf, err,
                                    sizeof(err)), -DPC_E_CLOSED);
    snprintf(want, sizeof(want), "127.0.0.1:%u:", r.host[0].port);
    assert_contains(err, want);
    assert_contains(err, "cache:dpc-replicas=2");
    assert_int_equal(dpc_tiles_close(r.f.t, err, sizeof(err)),
                     -DPC_E_CLOSED);
    r.f.t = NULL;
    rteardown(&r);
}

/* cfg.rejoin for the rolling restart below: a new connection to the host
 * (a new connection to a nativehost is a restarted host: the caches of the
 * old one are gone). */
static struct dpc_link *rejoin_host(void *arg, size_t h, char *err,
                                    size_t errlen)
{
    struct rfixture *r = arg;

    return dpc_link_connect("127.0.0.1", r->host[h].port, key, 10000, NULL,
                            err, errlen);
}

static void unref_link(void *arg, struct dpc_link *l)
{
    (void)arg;
    dpc_link_free(l);
}

/* A rolling restart: with 2 replicas over 3 hosts, each host in turn drops
 * the cache's connection (its caches gone) and comes back on its port; a
 * second later the next call reaches it again and the copies it lost are
 * made again, so the cache survives all three (without a rejoin the third
 * loss leaves tiles with no copy: tiles_replica_failover_then_fail_test),
 * every pixel reads back right, and no host is reported lost at the end. */
static void tiles_replica_rolling_restart_test(void **state)
{
    struct rfixture r;
    struct dpc_tiles_cfg cfg = { .columns = COLS, .rows = ROWS,
                                 .bpp = { BPP, 0 }, .tile_w = TW,
                                 .tile_h = TH, .cache_bytes = 1,
                                 .nlinks = RHOSTS, .replicas = 2,
                                 .rejoin = rejoin_host, .unref = unref_link };
    char err[DPC_ERRLEN] = "";
    struct dpc_tiles_stats st;

    rsetup(&r, 2);
    dpc_tiles_close(r.f.t, NULL, 0);
    cfg.links = r.link;
    cfg.rejoin_arg = &r;
    r.f.t = dpc_tiles_open(&cfg, NULL, NULL, err, sizeof(err));
    if (r.f.t == NULL)
        fail_msg("dpc_tiles_open: %s", err);
    rwrite_all(&r);
    for (int i = 0; i < RHOSTS; i++) {
        __atomic_store_n(&r.host[i].drop_after, 1, __ATOMIC_RELEASE);
        check_all(&r.f, 0);                 /* lost, copies made again */
        assert_int_equal(stats(&r.f).hosts_lost, (uint64_t)i + 1);
        assert_int_equal(dpc_tiles_host_lost(r.f.t, (size_t)i, NULL, 0), 1);
        __atomic_store_n(&r.host[i].drop_after, 0, __ATOMIC_RELEASE);
        usleep((useconds_t)(DPC_TILES_REJOIN_SECONDS * 1e6) + 100000);
        check_region(&r.f, 0, 0, 0, 4, 4);  /* the rejoin's turn */
        assert_int_equal(stats(&r.f).rejoined, (uint64_t)i + 1);
        assert_int_equal(dpc_tiles_host_lost(r.f.t, (size_t)i, NULL, 0), 0);
        write_region(&r.f, 0, 5, 3, 9, 7, 60 + (unsigned)i);
        check_all(&r.f, 0);
    }
    st = stats(&r.f);
    assert_int_equal(st.hosts_lost, RHOSTS);
    assert_true(st.recopied >= NTILES);
    for (int h = 0; h < RHOSTS; h++)
        assert_int_equal(dpc_tiles_host_lost(r.f.t, (size_t)h, NULL, 0), 0);
    rteardown(&r);
}

/* The concurrency test above on three hosts with two replicas, one host
 * closing its connection halfway: the writer's failover happens beside
 * the lock-free readers, and no read is wrong. */
static void tiles_replica_concurrent_failover_test(void **state)
{
    struct rfixture r;

    rsetup(&r, 2);
    run_concurrent(&r.f, &r.host[1]);
    assert_int_equal(stats(&r.f).hosts_lost, 1);
    rteardown(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tiles_unwritten_read_zero_test),
        cmocka_unit_test(tiles_eviction_writeback_test),
        cmocka_unit_test(tiles_zero_clear_test),
        cmocka_unit_test(tiles_clone_test),
        cmocka_unit_test(tiles_column_scan_test),
        cmocka_unit_test(tiles_slanted_walk_test),
        cmocka_unit_test(tiles_column_walks_test),
        cmocka_unit_test(tiles_region_wraps_test),
        cmocka_unit_test(tiles_direct_path_test),
        cmocka_unit_test(tiles_index_plane_test),
        cmocka_unit_test(tiles_failed_round_test),
        cmocka_unit_test(tiles_concurrent_readers_test),
        cmocka_unit_test(tiles_shared_links_test),
        cmocka_unit_test(tiles_replica_share_test),
        cmocka_unit_test(tiles_replica_any_host_lost_test),
        cmocka_unit_test(tiles_replica_failover_then_fail_test),
        cmocka_unit_test(tiles_replica_two_lost_at_once_test),
        cmocka_unit_test(tiles_single_copy_lost_test),
        cmocka_unit_test(tiles_replica_concurrent_failover_test),
        cmocka_unit_test(tiles_replica_rolling_restart_test),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
