/*
 * Unit tests for dpc_store: RAM caches within the memory budget, refusals
 * past it, shrink and close giving bytes back, spilling to a private
 * directory under /tmp when RAM is full, spill pages written back and
 * dropped after a batch, zero-filled mappings, and warm RAM:
 * reused zeroed, carved and merged, within the budget, trimmed, and
 * preallocated.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "dpc_store.h"
#include "dpc_util.h"

#define KIB 1024ULL
#define MIB (1024ULL * 1024)

#define assert_contains(hay, needle)                                       \
    do {                                                                   \
        if (strstr((hay), (needle)) == NULL)                               \
            fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));   \
    } while (0)

struct fixture {
    char dir[64];                       /* spill directory, "" if none */
    struct dpc_store *store;
};

static struct dpc_store *new_store(uint64_t mem, uint64_t disk,
                                   const char *dir)
{
    struct dpc_store_cfg cfg = {
        .mem_budget = mem, .disk_budget = disk, .spill_dir = dir,
    };
    struct dpc_store *s = dpc_store_new(&cfg, NULL, 0);

    assert_non_null(s);
    return s;
}

static struct dpc_store_stats stats(const struct dpc_store *s)
{
    struct dpc_store_stats st;

    dpc_store_get_stats(s, &st);
    return st;
}

static int all_zero(const uint8_t *p, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

static void fill(uint8_t *p, uint64_t n, unsigned seed)
{
    for (uint64_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 31 + seed);
}

static int filled(const uint8_t *p, uint64_t n, unsigned seed)
{
    for (uint64_t i = 0; i < n; i++)
        if (p[i] != (uint8_t)(i * 31 + seed))
            return 0;
    return 1;
}

/* Entries in dir other than . and .. */
static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static int make_spill_dir(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/dpc-store-test.XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int remove_spill_dir(void **state)
{
    struct fixture *f = *state;
    int rc = rmdir(f->dir);

    dpc_store_free(f->store);
    free(f);
    return rc;
}

/* A cache within the RAM budget is mapped in RAM and counted. */
static void store_ram_open_test(void **state)
{
    struct dpc_store *s = new_store(1 * MIB, 0, NULL);
    char err[256] = "";
    struct dpc_cache *c = dpc_store_open(s, 100000, err, sizeof(err));
    struct dpc_store_stats st;

    assert_non_null(c);
    assert_int_equal(dpc_cache_tier(c), DPC_TIER_RAM);
    assert_int_equal(dpc_cache_size(c), 100000);
    st = stats(s);
    assert_int_equal(st.caches, 1);
    assert_int_equal(st.bytes_ram, 100000);
    assert_int_equal(st.bytes_spilled, 0);
    assert_int_equal(st.mem_budget, 1 * MIB);
    assert_int_equal(st.disk_budget, 0);
    assert_int_equal(st.refused, 0);
    dpc_cache_close(c);
    dpc_store_free(s);
}

/* A new cache reads as zeros and takes writes over its whole size. */
static void store_zero_filled_test(void **state)
{
    struct dpc_store *s = new_store(1 * MIB, 0, NULL);
    struct dpc_cache *c = dpc_store_open(s, 300001, NULL, 0);

    assert_non_null(c);
    assert_true(all_zero(dpc_cache_base(c), 300001));
    fill(dpc_cache_base(c), 300001, 7);
    assert_true(filled(dpc_cache_base(c), 300001, 7));
    dpc_cache_close(c);
    c = dpc_store_open(s, 300001, NULL, 0);
    assert_non_null(c);
    assert_true(all_zero(dpc_cache_base(c), 300001));
    dpc_cache_close(c);
    dpc_store_free(s);
}

/* The budget fits exactly; one byte more is refused. */
static void store_exact_budget_test(void **state)
{
    struct dpc_store *s = new_store(1 * MIB, 0, NULL);
    struct dpc_cache *c = dpc_store_open(s, 1 * MIB, NULL, 0);

    assert_non_null(c);
    assert_null(dpc_store_open(s, 1, NULL, 0));
    dpc_cache_close(c);
    assert_null(dpc_store_open(s, 1 * MIB + 1, NULL, 0));
    assert_int_equal(stats(s).refused, 2);
    dpc_store_free(s);
}

/* Past the RAM budget (no spill) the open is refused; err names sizes. */
static void store_refused_past_budget_test(void **state)
{
    struct dpc_store *s = new_store(1 * MIB, 0, NULL);
    struct dpc_cache *a = dpc_store_open(s, 600000, NULL, 0);
    char err[256] = "";
    struct dpc_store_stats st;

    assert_non_null(a);
    assert_null(dpc_store_open(s, 600000, err, sizeof(err)));
    assert_string_equal(err, "no room for 600000 bytes (memory 600000 of "
                             "1048576 used, spill 0 of 0 used)");
    st = stats(s);
    assert_int_equal(st.caches, 1);
    assert_int_equal(st.bytes_ram, 600000);
    assert_int_equal(st.refused, 1);
    dpc_cache_close(a);
    dpc_store_free(s);
}

/* A zero or absurd size is refused as bad, not counted as no room. */
static void store_bad_size_test(void **state)
{
    struct dpc_store *s = new_store(1 * MIB, 0, NULL);
    char err[256] = "";

    assert_null(dpc_store_open(s, 0, err, sizeof(err)));
    assert_string_equal(err, "bad cache size 0");
    assert_null(dpc_store_open(s, UINT64_MAX, err, sizeof(err)));
    assert_string_equal(err, "bad cache size 18446744073709551615");
    assert_int_equal(stats(s).caches, 0);
    dpc_store_free(s);
}

/* Shrinking gives bytes back to the budget and keeps the data. */
static void store_shrink_returns_budget_test(void **state)
{
    struct dpc_store *s = new_store(1 * MIB, 0, NULL);
    struct dpc_cache *a = dpc_store_open(s, 1 * MIB, NULL, 0);
    struct dpc_cache *b;
    char err[256] = "";

    assert_non_null(a);
    fill(dpc_cache_base(a), 300000, 3);
    assert_int_equal(dpc_cache_shrink(a, 300000, err, sizeof(err)), 0);
    assert_int_equal(dpc_cache_size(a), 300000);
    assert_int_equal(stats(s).bytes_ram, 300000);
    assert_true(filled(dpc_cache_base(a), 300000, 3));
    b = dpc_store_open(s, 1 * MIB - 300000, NULL, 0);
    assert_non_null(b);
    assert_int_equal(stats(s).bytes_ram, 1 * MIB);
    dpc_cache_close(b);
    dpc_cache_close(a);
    dpc_store_free(s);
}

/* Shrink refuses to grow a cache or make it empty. */
static void store_shrink_refuses_growth_test(void **state)
{
    struct dpc_store *s = new_store(1 * MIB, 0, NULL);
    struct dpc_cache *a = dpc_store_open(s, 4096, NULL, 0);
    char err[256] = "";

    assert_non_null(a);
    assert_int_equal(dpc_cache_shrink(a, 4097, err, sizeof(err)), -1);
    assert_string_equal(err, "cannot resize cache of 4096 to 4097");
    assert_int_equal(dpc_cache_shrink(a, 0, err, sizeof(err)), -1);
    assert_string_equal(err, "cannot resize cache of 4096 to 0");
    assert_int_equal(dpc_cache_size(a), 4096);
    assert_int_equal(stats(s).bytes_ram, 4096);
    dpc_cache_close(a);
    dpc_store_free(s);
}

/* Closing returns every byte and the cache count. */
static void store_close_returns_budget_test(void **state)
{
    struct dpc_store *s = new_store(1 * MIB, 0, NULL);
    struct dpc_cache *a = dpc_store_open(s, 700000, NULL, 0);
    struct dpc_store_stats st;

    assert_non_null(a);
    assert_null(dpc_store_open(s, 700000, NULL, 0));
    dpc_cache_close(a);
    st = stats(s);
    assert_int_equal(st.caches, 0);
    assert_int_equal(st.bytes_ram, 0);
    a = dpc_store_open(s, 700000, NULL, 0);
    assert_non_null(a);
    dpc_cache_close(a);
    dpc_cache_close(NULL);
    dpc_store_free(s);
}

/* When RAM is full the cache goes to an unlinked file in the spill dir. */
static void store_spill_when_ram_full_test(void **state)
{
    struct fixture *f = *state;
    struct dpc_cache *ram, *sp;
    struct dpc_store_stats st;
    char err[256] = "";

    f->store = new_store(64 * KIB, 1 * MIB, f->dir);
    assert_int_equal(stats(f->store).disk_budget, 1 * MIB);
    ram = dpc_store_open(f->store, 64 * KIB, err, sizeof(err));
    assert_non_null(ram);
    assert_int_equal(dpc_cache_tier(ram), DPC_TIER_RAM);
    sp = dpc_store_open(f->store, 100000, err, sizeof(err));
    if (sp == NULL)
        fail_msg("spill open failed: %s", err);
    assert_int_equal(dpc_cache_tier(sp), DPC_TIER_SPILL);
    st = stats(f->store);
    assert_int_equal(st.caches, 2);
    assert_int_equal(st.bytes_ram, 64 * KIB);
    assert_int_equal(st.bytes_spilled, 100000);
    assert_int_equal(dir_entries(f->dir), 0);
    assert_true(all_zero(dpc_cache_base(sp), 100000));
    fill(dpc_cache_base(sp), 100000, 11);
    assert_true(filled(dpc_cache_base(sp), 100000, 11));
    dpc_cache_close(sp);
    dpc_cache_close(ram);
    st = stats(f->store);
    assert_int_equal(st.caches, 0);
    assert_int_equal(st.bytes_ram, 0);
    assert_int_equal(st.bytes_spilled, 0);
}

/* Bytes of one (1 MiB) page-aligned buffer resident in memory. */
static uint64_t resident(const uint8_t *p, uint64_t len)
{
    unsigned char vec[256];
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), n = 0;

    assert_true(len / page <= sizeof(vec));
    assert_int_equal(mincore((void *)p, len, vec), 0);
    for (uint64_t i = 0; i < len / page; i++)
        n += vec[i] & 1;
    return n * page;
}

/* Two batches of spill bytes touched later, two spill caches' pages are
 * written back and out of the page cache, and read back intact. */
static void store_spill_touched_releases_test(void **state)
{
    struct fixture *f = *state;
    struct dpc_cache *a, *b;

    f->store = new_store(0, 4 * MIB, f->dir);
    a = dpc_store_open(f->store, 1 * MIB, NULL, 0);
    b = dpc_store_open(f->store, 1 * MIB, NULL, 0);
    assert_non_null(a);
    assert_non_null(b);
    fill(dpc_cache_base(a), 1 * MIB, 13);
    fill(dpc_cache_base(b), 1 * MIB, 17);
    dpc_cache_touched(a, 1 * MIB);
    dpc_cache_touched(b, 1 * MIB);
    assert_int_equal(resident(dpc_cache_base(a), 1 * MIB), 1 * MIB);
    dpc_cache_touched(a, DPC_STORE_SPILL_BATCH - 2 * MIB);  /* written */
    dpc_cache_touched(b, DPC_STORE_SPILL_BATCH);            /* a dropped */
    assert_int_equal(resident(dpc_cache_base(a), 1 * MIB), 0);
    dpc_cache_touched(a, DPC_STORE_SPILL_BATCH);            /* b dropped */
    assert_int_equal(resident(dpc_cache_base(b), 1 * MIB), 0);
    assert_true(filled(dpc_cache_base(a), 1 * MIB, 13));
    assert_true(filled(dpc_cache_base(b), 1 * MIB, 17));
    dpc_cache_close(a);
    dpc_cache_close(b);
}

/* A spill cache touched less than a batch leaves memory after two trims
 * (the server's once-a-second timer). */
static void store_spill_trim_releases_test(void **state)
{
    struct fixture *f = *state;
    struct dpc_cache *a;

    f->store = new_store(0, 4 * MIB, f->dir);
    a = dpc_store_open(f->store, 1 * MIB, NULL, 0);
    assert_non_null(a);
    fill(dpc_cache_base(a), 1 * MIB, 19);
    dpc_cache_touched(a, 1 * MIB);
    dpc_store_trim(f->store, dpc_now());
    dpc_store_trim(f->store, dpc_now());
    assert_int_equal(resident(dpc_cache_base(a), 1 * MIB), 0);
    assert_true(filled(dpc_cache_base(a), 1 * MIB, 19));
    dpc_cache_close(a);
}

/* With RAM and the disk budget both used up, the open is refused. */
static void store_spill_refused_when_disk_full_test(void **state)
{
    struct fixture *f = *state;
    struct dpc_cache *a;
    char err[256] = "";

    f->store = new_store(0, 128 * KIB, f->dir);
    a = dpc_store_open(f->store, 100000, err, sizeof(err));
    assert_non_null(a);
    assert_int_equal(dpc_cache_tier(a), DPC_TIER_SPILL);
    assert_null(dpc_store_open(f->store, 100000, err, sizeof(err)));
    assert_string_equal(err, "no room for 100000 bytes (memory 0 of 0 used, "
                             "spill 100000 of 131072 used)");
    assert_int_equal(stats(f->store).refused, 1);
    assert_int_equal(stats(f->store).bytes_spilled, 100000);
    dpc_cache_close(a);
}

/* Shrinking a spilled cache returns disk budget and keeps the data. */
static void store_spill_shrink_test(void **state)
{
    struct fixture *f = *state;
    struct dpc_cache *a, *b;

    f->store = new_store(0, 256 * KIB, f->dir);
    a = dpc_store_open(f->store, 200000, NULL, 0);
    assert_non_null(a);
    fill(dpc_cache_base(a), 100000, 5);
    assert_int_equal(dpc_cache_shrink(a, 100000, NULL, 0), 0);
    assert_int_equal(stats(f->store).bytes_spilled, 100000);
    assert_true(filled(dpc_cache_base(a), 100000, 5));
    b = dpc_store_open(f->store, 256 * KIB - 100000, NULL, 0);
    assert_non_null(b);
    assert_int_equal(dpc_cache_tier(b), DPC_TIER_SPILL);
    dpc_cache_close(b);
    dpc_cache_close(a);
    assert_int_equal(stats(f->store).bytes_spilled, 0);
}

/* A spill directory that does not exist fails the open with its name. */
static void store_spill_dir_missing_test(void **state)
{
    struct dpc_store *s = new_store(0, 1 * MIB, "/nonexistent/dpc-spill");
    char err[256] = "";

    assert_null(dpc_store_open(s, 4096, err, sizeof(err)));
    assert_contains(err, "/nonexistent/dpc-spill");
    assert_int_equal(stats(s).caches, 0);
    assert_int_equal(stats(s).bytes_spilled, 0);
    dpc_store_free(s);
}

/* Without a spill dir a disk budget is ignored and reported as 0. */
static void store_no_spill_dir_test(void **state)
{
    struct dpc_store *s = new_store(4 * KIB, 1 * MIB, NULL);
    char err[256] = "";

    assert_int_equal(stats(s).disk_budget, 0);
    assert_null(dpc_store_open(s, 8 * KIB, err, sizeof(err)));
    assert_contains(err, "spill 0 of 0 used");
    dpc_store_free(s);
}

/* A closed cache's RAM stays warm and serves the next open, zeroed. */
static void store_warm_reuse_zeroed_test(void **state)
{
    struct dpc_store *s = new_store(8 * MIB, 0, NULL);
    struct dpc_cache *c = dpc_store_open(s, 1 * MIB, NULL, 0);
    uint8_t *first;
    struct dpc_store_stats st;

    assert_non_null(c);
    first = dpc_cache_base(c);
    fill(first, 1 * MIB, 3);
    dpc_cache_close(c);
    st = stats(s);
    assert_int_equal(st.bytes_warm, 1 * MIB);
    assert_int_equal(st.bytes_ram, 0);
    c = dpc_store_open(s, 1 * MIB, NULL, 0);
    assert_non_null(c);
    assert_ptr_equal(dpc_cache_base(c), first);
    assert_true(all_zero(dpc_cache_base(c), 1 * MIB));
    st = stats(s);
    assert_int_equal(st.warm_reuses, 1);
    assert_int_equal(st.bytes_warm, 0);
    dpc_cache_close(c);
    dpc_store_free(s);
}

/* A smaller cache is carved from a warm run; the rest stays warm, and
 * neighbours given back merge into one run again. */
static void store_warm_carve_merge_test(void **state)
{
    struct dpc_store *s = new_store(8 * MIB, 0, NULL);
    struct dpc_cache *big = dpc_store_open(s, 4 * MIB, NULL, 0), *a, *b;

    assert_non_null(big);
    dpc_cache_close(big);
    a = dpc_store_open(s, 1 * MIB, NULL, 0);
    b = dpc_store_open(s, 1 * MIB, NULL, 0);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(stats(s).warm_reuses, 2);
    assert_int_equal(stats(s).bytes_warm, 2 * MIB);
    dpc_cache_close(a);
    dpc_cache_close(b);
    assert_int_equal(stats(s).bytes_warm, 4 * MIB);
    big = dpc_store_open(s, 4 * MIB, NULL, 0);      /* needs the merged run */
    assert_non_null(big);
    assert_int_equal(stats(s).warm_reuses, 3);
    dpc_cache_close(big);
    dpc_store_free(s);
}

/* Warm and used RAM together stay within the budget: a fresh mapping
 * releases warm RAM it cannot use. */
static void store_warm_within_budget_test(void **state)
{
    struct dpc_store *s = new_store(4 * MIB, 0, NULL);
    struct dpc_cache *c = dpc_store_open(s, 3 * MIB, NULL, 0);
    struct dpc_store_stats st;

    assert_non_null(c);
    dpc_cache_close(c);
    c = dpc_store_open(s, 4 * MIB, NULL, 0);
    assert_non_null(c);
    st = stats(s);
    assert_int_equal(st.bytes_warm, 0);
    assert_int_equal(st.warm_reuses, 0);
    assert_true(st.bytes_ram + st.bytes_warm <= 4 * MIB);
    dpc_cache_close(c);
    dpc_store_free(s);
}

/* A shrink gives its tail to the warm list. */
static void store_shrink_tail_warm_test(void **state)
{
    struct dpc_store *s = new_store(8 * MIB, 0, NULL);
    struct dpc_cache *c = dpc_store_open(s, 4 * MIB, NULL, 0);

    assert_non_null(c);
    assert_int_equal(dpc_cache_shrink(c, 1 * MIB, NULL, 0), 0);
    assert_int_equal(stats(s).bytes_warm, 3 * MIB);
    dpc_cache_close(c);
    assert_int_equal(stats(s).bytes_warm, 4 * MIB);
    dpc_store_free(s);
}

/* Warm RAM is released once it has been idle DPC_STORE_KEEP_WARM. */
static void store_trim_test(void **state)
{
    struct dpc_store *s = new_store(8 * MIB, 0, NULL);
    struct dpc_cache *c = dpc_store_open(s, 2 * MIB, NULL, 0);
    double now = dpc_now();

    assert_non_null(c);
    dpc_cache_close(c);
    dpc_store_trim(s, now);
    assert_int_equal(stats(s).bytes_warm, 2 * MIB);
    dpc_store_trim(s, now + DPC_STORE_KEEP_WARM + 1);
    assert_int_equal(stats(s).bytes_warm, 0);
    dpc_store_free(s);
}

/* Preallocated: the whole budget is warm from the start, caches come from
 * it zeroed, and trimming never gives it back. */
static void store_preallocate_test(void **state)
{
    struct dpc_store_cfg cfg = { .mem_budget = 6 * MIB, .preallocate = 1 };
    struct dpc_store *s = dpc_store_new(&cfg, NULL, 0);
    struct dpc_cache *a, *b;
    struct dpc_store_stats st;

    assert_non_null(s);
    st = stats(s);
    assert_int_equal(st.bytes_warm, 6 * MIB);
    assert_true(st.preallocated);
    a = dpc_store_open(s, 2 * MIB, NULL, 0);
    b = dpc_store_open(s, 4 * MIB, NULL, 0);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(all_zero(dpc_cache_base(b), 4 * MIB));
    st = stats(s);
    assert_int_equal(st.warm_reuses, 2);
    assert_int_equal(st.bytes_warm, 0);
    assert_null(dpc_store_open(s, 1, NULL, 0));
    dpc_cache_close(a);
    dpc_cache_close(b);
    dpc_store_trim(s, dpc_now() + 1000);
    assert_int_equal(stats(s).bytes_warm, 6 * MIB);
    dpc_store_free(s);
}

/* A budget the machine cannot hold fails at start, naming the fix. */
static void store_preallocate_too_big_test(void **state)
{
    struct dpc_store_cfg cfg = { .mem_budget = 1ULL << 50, .preallocate = 1 };
    char err[256] = "";

    assert_null(dpc_store_new(&cfg, err, sizeof(err)));
    assert_contains(err, "cannot preallocate");
    assert_contains(err, "MiB available");
    assert_contains(err, "--memory");
}

/* Runs merge with a following neighbour too (b given back before a). */
static void store_warm_merge_following_test(void **state)
{
    struct dpc_store *s = new_store(8 * MIB, 0, NULL);
    struct dpc_cache *big = dpc_store_open(s, 4 * MIB, NULL, 0), *a, *b;

    assert_non_null(big);
    dpc_cache_close(big);
    a = dpc_store_open(s, 2 * MIB, NULL, 0);
    b = dpc_store_open(s, 2 * MIB, NULL, 0);
    assert_non_null(a);
    assert_non_null(b);
    dpc_cache_close(b);
    dpc_cache_close(a);
    big = dpc_store_open(s, 4 * MIB, NULL, 0);
    assert_non_null(big);
    assert_int_equal(stats(s).warm_reuses, 3);
    dpc_cache_close(big);
    dpc_store_free(s);
}

/* Only as much warm RAM as a fresh mapping needs is released. */
static void store_warm_partial_release_test(void **state)
{
    struct dpc_store *s = new_store(8 * MIB, 0, NULL);
    struct dpc_cache *a = dpc_store_open(s, 2 * MIB, NULL, 0), *b, *c;

    b = dpc_store_open(s, 3 * MIB, NULL, 0);
    assert_non_null(a);
    assert_non_null(b);
    dpc_cache_close(b);
    c = dpc_store_open(s, 4 * MIB, NULL, 0);   /* no 4 MiB run: fresh */
    assert_non_null(c);
    assert_int_equal(stats(s).bytes_warm, 2 * MIB);
    dpc_cache_close(a);
    dpc_cache_close(c);
    dpc_store_free(s);
}

/* Reuse zeroes what the last cache touched without faulting in what it
 * never touched. */
static void store_warm_zero_untouched_test(void **state)
{
    long page = sysconf(_SC_PAGESIZE);
    struct dpc_store *s = new_store(8 * MIB, 0, NULL);
    struct dpc_cache *c = dpc_store_open(s, 4 * MIB, NULL, 0);
    unsigned char vec[256];
    uint8_t *tail;

    assert_non_null(c);
    fill(dpc_cache_base(c), 1 * MIB, 9);
    dpc_cache_close(c);
    c = dpc_store_open(s, 4 * MIB, NULL, 0);
    assert_non_null(c);
    assert_int_equal(stats(s).warm_reuses, 1);
    tail = dpc_cache_base(c) + 3 * MIB;
    assert_true((size_t)(1 * MIB / page) <= sizeof(vec));
    assert_int_equal(mincore(tail, 1 * MIB, vec), 0);
    for (long i = 0; i < (long)(1 * MIB / page); i++)
        assert_int_equal(vec[i] & 1, 0);
    assert_true(all_zero(dpc_cache_base(c), 4 * MIB));
    dpc_cache_close(c);
    dpc_store_free(s);
}

/* Preallocated memory too scattered for a cache: the cache gets a fresh
 * mapping, faulted in at once, and the budget still holds. */
static void store_preallocate_fragmented_test(void **state)
{
    struct dpc_store_cfg cfg = { .mem_budget = 6 * MIB, .preallocate = 1 };
    struct dpc_store *s = dpc_store_new(&cfg, NULL, 0);
    struct dpc_cache *a, *b, *c, *d;
    struct dpc_store_stats st;

    assert_non_null(s);
    a = dpc_store_open(s, 2 * MIB, NULL, 0);
    b = dpc_store_open(s, 2 * MIB, NULL, 0);
    c = dpc_store_open(s, 2 * MIB, NULL, 0);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    dpc_cache_close(a);
    dpc_cache_close(c);
    d = dpc_store_open(s, 4 * MIB, NULL, 0);
    assert_non_null(d);
    st = stats(s);
    assert_true(st.bytes_ram + st.bytes_warm <= 6 * MIB);
    assert_true(all_zero(dpc_cache_base(d), 4 * MIB));
    dpc_cache_close(b);
    dpc_cache_close(d);
    dpc_store_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(store_ram_open_test),
        cmocka_unit_test(store_zero_filled_test),
        cmocka_unit_test(store_exact_budget_test),
        cmocka_unit_test(store_refused_past_budget_test),
        cmocka_unit_test(store_bad_size_test),
        cmocka_unit_test(store_shrink_returns_budget_test),
        cmocka_unit_test(store_shrink_refuses_growth_test),
        cmocka_unit_test(store_close_returns_budget_test),
        cmocka_unit_test(store_warm_reuse_zeroed_test),
        cmocka_unit_test(store_warm_carve_merge_test),
        cmocka_unit_test(store_warm_within_budget_test),
        cmocka_unit_test(store_shrink_tail_warm_test),
        cmocka_unit_test(store_trim_test),
        cmocka_unit_test(store_preallocate_test),
        cmocka_unit_test(store_preallocate_too_big_test),
        cmocka_unit_test(store_warm_merge_following_test),
        cmocka_unit_test(store_warm_partial_release_test),
        cmocka_unit_test(store_warm_zero_untouched_test),
        cmocka_unit_test(store_preallocate_fragmented_test),
        cmocka_unit_test_setup_teardown(store_spill_when_ram_full_test,
                                        make_spill_dir, remove_spill_dir),
        cmocka_unit_test_setup_teardown(store_spill_refused_when_disk_full_test,
                                        make_spill_dir, remove_spill_dir),
        cmocka_unit_test_setup_teardown(store_spill_touched_releases_test,
                                        make_spill_dir, remove_spill_dir),
        cmocka_unit_test_setup_teardown(store_spill_trim_releases_test,
                                        make_spill_dir, remove_spill_dir),
        cmocka_unit_test_setup_teardown(store_spill_shrink_test,
                                        make_spill_dir, remove_spill_dir),
        cmocka_unit_test(store_spill_dir_missing_test),
        cmocka_unit_test(store_no_spill_dir_test),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
