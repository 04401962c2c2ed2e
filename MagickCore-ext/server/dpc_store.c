/*
 * dpc_store: see dpc_store.h.
 */
#include "dpc_store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dpc_list.h"
#include "dpc_util.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23         /* Linux 5.14 */
#endif

/* A run of warm RAM: mapped, faulted in, not in any cache. */
struct range {
    uint8_t *base;
    uint64_t len;                   /* page multiple */
    double freed;                   /* when it was given back */
};

struct dpc_store {
    struct dpc_store_cfg cfg;
    char *spill_dir;
    uint64_t used[2];               /* by tier */
    uint64_t caches;
    uint64_t refused;
    struct range *warm;             /* sorted by address, never adjacent */
    size_t nwarm, warm_cap;
    uint64_t warm_bytes;
    uint64_t warm_reuses;
    struct dpc_list spills;         /* open spill caches */
    uint64_t spill_touched;         /* bytes since the last write-back */
};

struct dpc_cache {
    struct dpc_store *store;
    enum dpc_tier tier;
    uint8_t *base;
    uint64_t size;                  /* bytes counted against the budget */
    uint64_t mapped;                /* bytes mapped (page rounded) */
    int fd;                         /* spill file, -1 in RAM */
    struct dpc_list_node node;      /* on store->spills when spilled */
    int rounds;                     /* write-back rounds still owed */
};

static uint64_t page_round(uint64_t n)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);

    return (n + page - 1) / page * page;
}

/* Drops entry i from the warm list (its bytes are accounted by the caller). */
static void warm_remove(struct dpc_store *s, size_t i)
{
    memmove(&s->warm[i], &s->warm[i + 1],
            (s->nwarm - i - 1) * sizeof(*s->warm));
    s->nwarm--;
}

/* Gives [base, base+len) to the warm list, merging with its neighbours. */
static int warm_put(struct dpc_store *s, uint8_t *base, uint64_t len,
                    double now)
{
    size_t i = 0;

    while (i < s->nwarm && s->warm[i].base < base)
        i++;
    s->warm_bytes += len;
    if (i > 0 && s->warm[i - 1].base + s->warm[i - 1].len == base) {
        struct range *r = &s->warm[i - 1];

        /* A merged run is as old as its oldest part, so a run that keeps
         * growing is still trimmed. */
        r->len += len;
        if (i < s->nwarm && r->base + r->len == s->warm[i].base) {
            r->len += s->warm[i].len;
            if (s->warm[i].freed < r->freed)
                r->freed = s->warm[i].freed;
            warm_remove(s, i);
        }
        return 0;
    }
    if (i < s->nwarm && base + len == s->warm[i].base) {
        s->warm[i].base = base;
        s->warm[i].len += len;
        return 0;
    }
    if (s->nwarm == s->warm_cap) {
        size_t cap = s->warm_cap ? s->warm_cap * 2 : 16;
        struct range *w = realloc(s->warm, cap * sizeof(*w));

        if (w == NULL) {
            s->warm_bytes -= len;
            return -1;
        }
        s->warm = w;
        s->warm_cap = cap;
    }
    memmove(&s->warm[i + 1], &s->warm[i], (s->nwarm - i) * sizeof(*s->warm));
    s->warm[i] = (struct range){ base, len, now };
    s->nwarm++;
    return 0;
}

/* Unmaps up to len bytes (page multiple) from the end of the oldest warm
 * ranges until that much is released or none is left. */
static void warm_release_bytes(struct dpc_store *s, uint64_t len)
{
    while (len > 0 && s->nwarm > 0) {
        size_t old = 0;
        uint64_t cut;

        for (size_t i = 1; i < s->nwarm; i++)
            if (s->warm[i].freed < s->warm[old].freed)
                old = i;
        cut = s->warm[old].len < len ? s->warm[old].len : len;
        munmap(s->warm[old].base + s->warm[old].len - cut, cut);
        s->warm[old].len -= cut;
        s->warm_bytes -= cut;
        len -= cut;
        if (s->warm[old].len == 0)
            warm_remove(s, old);
    }
}

/* Unmaps warm range i. */
static void warm_release(struct dpc_store *s, size_t i)
{
    munmap(s->warm[i].base, s->warm[i].len);
    s->warm_bytes -= s->warm[i].len;
    warm_remove(s, i);
}

/* The smallest warm range of at least len bytes, carved from its start;
 * NULL when none is big enough. */
static uint8_t *warm_take(struct dpc_store *s, uint64_t len)
{
    size_t best = s->nwarm;
    uint8_t *p;

    for (size_t i = 0; i < s->nwarm; i++)
        if (s->warm[i].len >= len &&
            (best == s->nwarm || s->warm[i].len < s->warm[best].len))
            best = i;
    if (best == s->nwarm)
        return NULL;
    p = s->warm[best].base;
    s->warm[best].base += len;
    s->warm[best].len -= len;
    s->warm_bytes -= len;
    if (s->warm[best].len == 0)
        warm_remove(s, best);
    s->warm_reuses++;
    return p;
}

/* Zeroes RAM that held another cache: resident pages with memset (cheap),
 * the others (never touched, or swapped out) by dropping them, so none is
 * faulted in just to be cleared. */
static void zero_range(uint8_t *p, uint64_t len)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), n = len / page;
    unsigned char *vec = malloc(n);

    if (vec == NULL || mincore(p, len, vec) != 0) {
        free(vec);
        memset(p, 0, len);
        return;
    }
    for (uint64_t i = 0; i < n;) {
        uint64_t j = i;
        int in = vec[i] & 1;

        while (j < n && (vec[j] & 1) == in)
            j++;
        if (in || madvise(p + i * page, (j - i) * page, MADV_DONTNEED) != 0)
            memset(p + i * page, 0, (j - i) * page);
        i = j;
    }
    free(vec);
}

/* Bytes the kernel reports as available for new allocations. */
static uint64_t mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long long kib = 0;

    if (f == NULL)
        return UINT64_MAX;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
            break;
    fclose(f);
    return kib != 0 ? (uint64_t)kib * 1024 : UINT64_MAX;
}

/* Faults a fresh mapping in, in huge pages where it can.  -1 with errno. */
static int populate(uint8_t *p, uint64_t len)
{
    (void)madvise(p, len, MADV_HUGEPAGE);
    /* MADV_POPULATE_WRITE (Linux 5.14) faults everything in one call and
     * fails with ENOMEM where it can, rather than mid-write later. */
    if (madvise(p, len, MADV_POPULATE_WRITE) == 0)
        return 0;
    if (errno != EINVAL)
        return -1;
    for (uint64_t o = 0; o < len; o += (uint64_t)sysconf(_SC_PAGESIZE))
        p[o] = 0;
    return 0;
}

/* Maps the whole RAM budget and faults it in, as one warm range. */
static int preallocate(struct dpc_store *s, char *err, size_t errlen)
{
    uint64_t len = page_round(s->cfg.mem_budget), avail = mem_available();
    uint8_t *p;

    if (len == 0)
        return 0;
    if (len > avail)
        return dpc_errf(err, errlen,
                        "cannot preallocate %llu MiB of memory: only %llu "
                        "MiB available (lower --memory / dpc-memory)",
                        (unsigned long long)(len >> 20),
                        (unsigned long long)(avail >> 20));
    p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
             -1, 0);
    if (p == MAP_FAILED)
        return dpc_errf(err, errlen, "cannot map %llu bytes: %s",
                        (unsigned long long)len, strerror(errno));
    if (populate(p, len) < 0) {
        int e = errno;

        munmap(p, len);
        return dpc_errf(err, errlen, "cannot preallocate %llu MiB: %s",
                        (unsigned long long)(len >> 20), strerror(e));
    }
    if (warm_put(s, p, len, dpc_now()) < 0) {
        munmap(p, len);
        return dpc_errf(err, errlen, "out of memory");
    }
    return 0;
}

struct dpc_store *dpc_store_new(const struct dpc_store_cfg *cfg, char *err,
                                size_t errlen)
{
    struct dpc_store *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        dpc_errf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    if (cfg->spill_dir != NULL) {
        s->spill_dir = strdup(cfg->spill_dir);
        if (s->spill_dir == NULL) {
            free(s);
            dpc_errf(err, errlen, "out of memory");
            return NULL;
        }
    }
    s->cfg.spill_dir = s->spill_dir;
    if (cfg->preallocate && preallocate(s, err, errlen) < 0) {
        dpc_store_free(s);
        return NULL;
    }
    return s;
}

void dpc_store_free(struct dpc_store *s)
{
    if (s == NULL)
        return;
    while (s->nwarm > 0)
        warm_release(s, s->nwarm - 1);
    free(s->warm);
    free(s->spill_dir);
    free(s);
}

void dpc_store_get_stats(const struct dpc_store *s, struct dpc_store_stats *st)
{
    st->caches = s->caches;
    st->bytes_ram = s->used[DPC_TIER_RAM];
    st->bytes_spilled = s->used[DPC_TIER_SPILL];
    st->mem_budget = s->cfg.mem_budget;
    st->disk_budget = s->spill_dir != NULL ? s->cfg.disk_budget : 0;
    st->refused = s->refused;
    st->bytes_warm = s->warm_bytes;
    st->warm_reuses = s->warm_reuses;
    st->preallocated = s->cfg.preallocate;
}

/* Drops a spill cache's pages from the mapping (MADV_DONTNEED on a shared
 * file mapping keeps the data: dirty bits pass to the page cache), starts
 * writing them back after waiting for the write-back the last round
 * started, and drops from the page cache what that one made clean.  So
 * the disk writes one batch while the clients send the next, and a batch
 * leaves memory one round after it was touched.  Advice only: on an error
 * the pages just stay resident a while longer. */
static void spill_release(struct dpc_cache *c)
{
    (void)madvise(c->base, c->mapped, MADV_DONTNEED);
    (void)sync_file_range(c->fd, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE |
                                           SYNC_FILE_RANGE_WRITE);
    (void)posix_fadvise(c->fd, 0, 0, POSIX_FADV_DONTNEED);
    c->rounds--;
}

/* One write-back round over the spill caches that owe one. */
static void spill_round(struct dpc_store *s)
{
    for (struct dpc_list_node *i = s->spills.head; i != NULL; i = i->next) {
        struct dpc_cache *c = DPC_LIST_ENTRY(i, struct dpc_cache, node);

        if (c->rounds > 0)
            spill_release(c);
    }
    s->spill_touched = 0;
}

void dpc_store_trim(struct dpc_store *s, double now)
{
    /* The last batch of a quiet server leaves memory too. */
    spill_round(s);
    if (s->cfg.preallocate)
        return;
    for (size_t i = s->nwarm; i-- > 0;)
        if (now - s->warm[i].freed >= DPC_STORE_KEEP_WARM)
            warm_release(s, i);
}

static int fits(const struct dpc_store *s, enum dpc_tier t, uint64_t size)
{
    uint64_t budget = t == DPC_TIER_RAM ? s->cfg.mem_budget : s->cfg.disk_budget;

    return size <= budget && s->used[t] <= budget - size;
}

/* Warm RAM if a range fits (zeroed: it held another cache), else a fresh
 * mapping, for which warm RAM is released, oldest first, until used, warm
 * and new together fit the budget. */
static int map_ram(struct dpc_cache *c, char *err, size_t errlen)
{
    struct dpc_store *s = c->store;
    void *p = warm_take(s, c->mapped);

    if (p != NULL) {
        zero_range(p, c->mapped);
        c->base = p;
        return 0;
    }
    if (s->used[DPC_TIER_RAM] + s->warm_bytes + c->mapped > s->cfg.mem_budget)
        warm_release_bytes(s, s->used[DPC_TIER_RAM] + s->warm_bytes +
                                  c->mapped - s->cfg.mem_budget);
    p = mmap(NULL, c->mapped, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED && s->cfg.preallocate && populate(p, c->mapped) < 0) {
        /* Preallocated memory too scattered for this cache: a fresh
         * mapping must be faulted in now, as the budget was at start. */
        int e = errno;

        munmap(p, c->mapped);
        return dpc_errf(err, errlen, "cannot fault in %llu bytes: %s",
                        (unsigned long long)c->mapped, strerror(e));
    }
    if (p == MAP_FAILED)
        return dpc_errf(err, errlen, "cannot map %llu bytes: %s",
                        (unsigned long long)c->mapped, strerror(errno));
    /* Large caches fault in 2 MiB at a time, not 4 KiB: far fewer faults
     * when a client first writes them.  Advice only: errors are ignored. */
    (void)madvise(p, c->mapped, MADV_HUGEPAGE);
    c->base = p;
    return 0;
}

static int open_spill_file(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

    if (fd >= 0)
        return fd;
    /* Filesystems without O_TMPFILE: a named file, unlinked at once. */
    if (snprintf(path, sizeof(path), "%s/magick-dpc-XXXXXX", dir) >=
        (int)sizeof(path))
        return dpc_errf(err, errlen, "spill directory path too long");
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return dpc_errf(err, errlen, "cannot create a spill file in %s: %s",
                        dir, strerror(errno));
    unlink(path);
    return fd;
}

static int map_spill(struct dpc_cache *c, const char *dir, char *err,
                     size_t errlen)
{
    void *p;
    int rc;

    c->fd = open_spill_file(dir, err, errlen);
    if (c->fd < 0)
        return -1;
    rc = posix_fallocate(c->fd, 0, (off_t)c->mapped);
    if (rc != 0) {
        dpc_errf(err, errlen, "cannot reserve %llu bytes in %s: %s",
                 (unsigned long long)c->mapped, dir, strerror(rc));
        goto err;
    }
    p = mmap(NULL, c->mapped, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
    if (p == MAP_FAILED) {
        dpc_errf(err, errlen, "cannot map spill file: %s", strerror(errno));
        goto err;
    }
    c->base = p;
    return 0;
err:
    close(c->fd);
    c->fd = -1;
    return -1;
}

struct dpc_cache *dpc_store_open(struct dpc_store *s, uint64_t size, char *err,
                                 size_t errlen)
{
    struct dpc_cache *c;
    int rc;

    if (size == 0 || size > INT64_MAX / 2) {
        dpc_errf(err, errlen, "bad cache size %llu", (unsigned long long)size);
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        dpc_errf(err, errlen, "out of memory");
        return NULL;
    }
    c->store = s;
    c->fd = -1;
    c->size = size;
    c->mapped = page_round(size);
    if (fits(s, DPC_TIER_RAM, size)) {
        c->tier = DPC_TIER_RAM;
        rc = map_ram(c, err, errlen);
    } else if (s->spill_dir != NULL && fits(s, DPC_TIER_SPILL, size)) {
        c->tier = DPC_TIER_SPILL;
        rc = map_spill(c, s->spill_dir, err, errlen);
    } else {
        s->refused++;
        dpc_errf(err, errlen,
                 "no room for %llu bytes (memory %llu of %llu used, "
                 "spill %llu of %llu used)",
                 (unsigned long long)size,
                 (unsigned long long)s->used[DPC_TIER_RAM],
                 (unsigned long long)s->cfg.mem_budget,
                 (unsigned long long)s->used[DPC_TIER_SPILL],
                 (unsigned long long)(s->spill_dir ? s->cfg.disk_budget : 0));
        rc = -1;
    }
    if (rc < 0) {
        free(c);
        return NULL;
    }
    s->used[c->tier] += size;
    s->caches++;
    if (c->tier == DPC_TIER_SPILL)
        dpc_list_push(&s->spills, &c->node);
    return c;
}

void dpc_cache_touched(struct dpc_cache *c, uint64_t n)
{
    struct dpc_store *s = c->store;

    if (c->tier != DPC_TIER_SPILL || n == 0)
        return;
    c->rounds = 2;                  /* one to start writing, one to drop */
    s->spill_touched += n;
    if (s->spill_touched >= DPC_STORE_SPILL_BATCH)
        spill_round(s);
}

/* Part of a cache's mapping the cache no longer needs: RAM stays warm,
 * spill-file mappings (or RAM the list has no room for) are unmapped. */
static void give_back(struct dpc_cache *c, uint8_t *base, uint64_t len)
{
    if (c->tier != DPC_TIER_RAM || warm_put(c->store, base, len, dpc_now()) < 0)
        munmap(base, len);
}

int dpc_cache_shrink(struct dpc_cache *c, uint64_t size, char *err,
                     size_t errlen)
{
    uint64_t mapped = page_round(size);

    if (size == 0 || size > c->size)
        return dpc_errf(err, errlen, "cannot resize cache of %llu to %llu",
                        (unsigned long long)c->size, (unsigned long long)size);
    if (mapped < c->mapped) {
        give_back(c, c->base + mapped, c->mapped - mapped);
        if (c->fd >= 0 && ftruncate(c->fd, (off_t)mapped) != 0)
            return dpc_errf(err, errlen, "cannot shrink spill file: %s",
                            strerror(errno));
        c->mapped = mapped;
    }
    c->store->used[c->tier] -= c->size - size;
    c->size = size;
    return 0;
}

void dpc_cache_close(struct dpc_cache *c)
{
    if (c == NULL)
        return;
    give_back(c, c->base, c->mapped);
    if (c->tier == DPC_TIER_SPILL)
        dpc_list_remove(&c->store->spills, &c->node);
    if (c->fd >= 0)
        close(c->fd);
    c->store->used[c->tier] -= c->size;
    c->store->caches--;
    free(c);
}

uint8_t *dpc_cache_base(const struct dpc_cache *c)
{
    return c->base;
}

uint64_t dpc_cache_size(const struct dpc_cache *c)
{
    return c->size;
}

enum dpc_tier dpc_cache_tier(const struct dpc_cache *c)
{
    return c->tier;
}
