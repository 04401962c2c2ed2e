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

#include "dpc_util.h"

struct dpc_store {
    struct dpc_store_cfg cfg;
    char *spill_dir;
    uint64_t used[2];               /* by tier */
    uint64_t caches;
    uint64_t refused;
};

struct dpc_cache {
    struct dpc_store *store;
    enum dpc_tier tier;
    uint8_t *base;
    uint64_t size;                  /* bytes counted against the budget */
    uint64_t mapped;                /* bytes mapped (page rounded) */
    int fd;                         /* spill file, -1 in RAM */
};

static uint64_t page_round(uint64_t n)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);

    return (n + page - 1) / page * page;
}

struct dpc_store *dpc_store_new(const struct dpc_store_cfg *cfg)
{
    struct dpc_store *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->cfg = *cfg;
    if (cfg->spill_dir != NULL) {
        s->spill_dir = strdup(cfg->spill_dir);
        if (s->spill_dir == NULL) {
            free(s);
            return NULL;
        }
    }
    s->cfg.spill_dir = s->spill_dir;
    return s;
}

void dpc_store_free(struct dpc_store *s)
{
    if (s == NULL)
        return;
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
}

static int fits(const struct dpc_store *s, enum dpc_tier t, uint64_t size)
{
    uint64_t budget = t == DPC_TIER_RAM ? s->cfg.mem_budget : s->cfg.disk_budget;

    return size <= budget && s->used[t] <= budget - size;
}

static int map_ram(struct dpc_cache *c, char *err, size_t errlen)
{
    void *p = mmap(NULL, c->mapped, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

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
    return c;
}

int dpc_cache_shrink(struct dpc_cache *c, uint64_t size, char *err,
                     size_t errlen)
{
    uint64_t mapped = page_round(size);

    if (size == 0 || size > c->size)
        return dpc_errf(err, errlen, "cannot resize cache of %llu to %llu",
                        (unsigned long long)c->size, (unsigned long long)size);
    if (mapped < c->mapped) {
        munmap(c->base + mapped, c->mapped - mapped);
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
    munmap(c->base, c->mapped);
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
