/*
 * Unit tests for dpc_region: ImageMagick's region rule against a reference
 * written the way cache.c states it (in 128-bit arithmetic, so it cannot
 * overflow), over every small region of small images, and the split of
 * wrapping regions into rectangles checked pixel by pixel.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dpc_region.h"

/* cache.c's QueueAuthenticPixelCacheNexus, without its overflow. */
static int reference_ok(uint64_t columns, uint64_t rows, int64_t x, int64_t y,
                        uint64_t w, uint64_t h)
{
    __int128 offset;

    if (w == 0 || h == 0 || x < 0 || y < 0 || (uint64_t)x >= columns ||
        (uint64_t)y >= rows)
        return 0;
    offset = (__int128)y * columns + x;
    offset += (__int128)(h - 1) * columns + (__int128)w - 1;
    return offset < (__int128)columns * rows;
}

/* Every region of a few small images with x, y in [-2, size+2) and w, h up
 * to past the whole image: the same verdict as the reference. */
static void region_check_matches_reference_test(void **state)
{
    static const uint64_t dims[][2] = { { 1, 1 }, { 1, 5 }, { 5, 1 },
                                        { 7, 3 }, { 4, 6 } };
    (void)state;
    for (size_t d = 0; d < sizeof(dims) / sizeof(dims[0]); d++) {
        uint64_t c = dims[d][0], r = dims[d][1];

        for (int64_t y = -2; y < (int64_t)r + 2; y++)
            for (int64_t x = -2; x < (int64_t)c + 2; x++)
                for (uint64_t h = 0; h <= r + 1; h++)
                    for (uint64_t w = 0; w <= c * r + 1; w++) {
                        int got = dpc_region_check(c, r, x, y, w, h, NULL, 0);
                        int want = reference_ok(c, r, x, y, w, h) ? 0 : -1;

                        if (got != want)
                            fail_msg("%llux%llu%+lld%+lld on %llux%llu: %d, "
                                     "want %d", (unsigned long long)w,
                                     (unsigned long long)h, (long long)x,
                                     (long long)y, (unsigned long long)c,
                                     (unsigned long long)r, got, want);
                    }
    }
}

/* Sizes near the top of the range cannot wrap the arithmetic into a yes. */
static void region_check_huge_test(void **state)
{
    const uint64_t big = (uint64_t)1 << 31;
    char err[256] = "";

    (void)state;
    assert_int_equal(dpc_region_check(16, 10, 0, 0, UINT64_MAX, 1, NULL, 0), -1);
    assert_int_equal(dpc_region_check(16, 10, 0, 0, 1, UINT64_MAX, NULL, 0), -1);
    assert_int_equal(dpc_region_check(16, 10, 15, 9, UINT64_MAX, UINT64_MAX,
                                      NULL, 0), -1);
    assert_int_equal(dpc_region_check(16, 10, INT64_MAX, 0, 1, 1, NULL, 0), -1);
    assert_int_equal(dpc_region_check(16, 10, 0, INT64_MIN, 1, 1, NULL, 0), -1);
    assert_int_equal(dpc_region_check(big, big, 0, 0, big * big, 1, NULL, 0), 0);
    assert_int_equal(dpc_region_check(big, big, 0, 0, big * big + 1, 1, err,
                                      sizeof(err)), -1);
    assert_non_null(strstr(err, "runs past the end"));
    assert_int_equal(dpc_region_check(big, big, 1, 0, big, big, NULL, 0), -1);
    assert_int_equal(dpc_region_check(big, big, 0, 1, 1, big, NULL, 0), -1);
    assert_int_equal(dpc_region_check(big, big, big - 1, big - 1, 1, 1, NULL, 0),
                     0);
}

struct coverage {
    uint64_t columns;
    uint64_t *where;            /* region pixel -> image pixel, as split */
    unsigned rects;
};

static int record(void *arg, const struct dpc_region_rect *r)
{
    struct coverage *c = arg;

    if (r->w == 0 || r->h == 0 || r->x + r->w > c->columns)
        fail_msg("rectangle %llux%llu+%llu+%llu not inside",
                 (unsigned long long)r->w, (unsigned long long)r->h,
                 (unsigned long long)r->x, (unsigned long long)r->y);
    for (uint64_t i = 0; i < r->h; i++)
        for (uint64_t j = 0; j < r->w; j++)
            c->where[r->at + i * r->w + j] = (r->y + i) * c->columns + r->x + j;
    c->rects++;
    return 0;
}

/* Every accepted region of small images splits into rectangles inside the
 * image that map each region pixel where a memory cache finds it: region
 * row i, pixel j at (y + i) * columns + x + j. */
static void region_split_covers_runs_test(void **state)
{
    static const uint64_t dims[][2] = { { 1, 4 }, { 5, 1 }, { 7, 3 },
                                        { 4, 6 } };
    (void)state;
    for (size_t d = 0; d < sizeof(dims) / sizeof(dims[0]); d++) {
        uint64_t c = dims[d][0], r = dims[d][1];
        uint64_t *where = calloc((c * r) * (r + 1), sizeof(*where));

        assert_non_null(where);
        for (uint64_t y = 0; y < r; y++)
            for (uint64_t x = 0; x < c; x++)
                for (uint64_t h = 1; h <= r; h++)
                    for (uint64_t w = 1; w <= c * r; w++) {
                        struct coverage cov = { c, where, 0 };

                        if (dpc_region_check(c, r, (int64_t)x, (int64_t)y, w,
                                             h, NULL, 0) < 0)
                            continue;
                        memset(where, 0xff, w * h * sizeof(*where));
                        assert_int_equal(dpc_region_split(c, x, y, w, h,
                                                          record, &cov), 0);
                        for (uint64_t i = 0; i < h; i++)
                            for (uint64_t j = 0; j < w; j++)
                                assert_int_equal(where[i * w + j],
                                                 (y + i) * c + x + j);
                        if (x + w <= c)
                            assert_int_equal(cov.rects, 1);
                        else
                            assert_true(cov.rects <= 3 * h);
                    }
        free(where);
    }
}

static int fail_second(void *arg, const struct dpc_region_rect *r)
{
    (void)r;
    return ++*(int *)arg == 2 ? -7 : 0;
}

/* The first failing callback stops the split and its value is returned. */
static void region_split_stops_on_failure_test(void **state)
{
    int calls = 0;

    (void)state;
    assert_int_equal(dpc_region_split(10, 5, 0, 30, 2, fail_second, &calls),
                     -7);
    assert_int_equal(calls, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(region_check_matches_reference_test),
        cmocka_unit_test(region_check_huge_test),
        cmocka_unit_test(region_split_covers_runs_test),
        cmocka_unit_test(region_split_stops_on_failure_test),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
