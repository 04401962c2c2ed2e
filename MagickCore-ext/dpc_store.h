/*
 * dpc_store: where the server keeps pixel caches.  Each cache is one
 * contiguous mapping: anonymous memory while the RAM budget allows, else a
 * file in the spill directory (unlinked at once, space reserved with
 * posix_fallocate so a full disk refuses the open instead of faulting later),
 * else the open is refused.  Budgets count reserved bytes.
 *
 * Single-threaded: the server's event loop owns the store and every cache.
 */
#ifndef DPC_STORE_H
#define DPC_STORE_H

#include <stddef.h>
#include <stdint.h>

enum dpc_tier { DPC_TIER_RAM, DPC_TIER_SPILL };

struct dpc_store_cfg {
    uint64_t mem_budget;            /* bytes of RAM for caches */
    uint64_t disk_budget;           /* bytes of spill files; 0: no spilling */
    const char *spill_dir;          /* copied; NULL: no spilling */
};

struct dpc_store_stats {
    uint64_t caches;
    uint64_t bytes_ram;             /* reserved in RAM */
    uint64_t bytes_spilled;         /* reserved in spill files */
    uint64_t mem_budget, disk_budget;
    uint64_t refused;               /* opens refused for want of room */
};

struct dpc_store;
struct dpc_cache;

/* NULL on allocation failure. */
struct dpc_store *dpc_store_new(const struct dpc_store_cfg *cfg);
/* Every cache must have been closed first. */
void dpc_store_free(struct dpc_store *s);
void dpc_store_get_stats(const struct dpc_store *s, struct dpc_store_stats *st);

/* Reserves and maps a zero-filled cache of size bytes, RAM first, then
 * spill.  NULL with the reason in err when neither budget has room. */
struct dpc_cache *dpc_store_open(struct dpc_store *s, uint64_t size, char *err,
                                 size_t errlen);
/* Shrinks a cache to size (<= its size), giving the rest back to the
 * budget.  0, or -1 with the reason in err. */
int dpc_cache_shrink(struct dpc_cache *c, uint64_t size, char *err,
                     size_t errlen);
/* Unmaps the cache and returns its bytes to the budget. */
void dpc_cache_close(struct dpc_cache *c);

uint8_t *dpc_cache_base(const struct dpc_cache *c);
uint64_t dpc_cache_size(const struct dpc_cache *c);
enum dpc_tier dpc_cache_tier(const struct dpc_cache *c);

#endif
