/*
 * dpc_store: where the server keeps pixel caches.  Each cache is one
 * contiguous mapping: anonymous memory while the RAM budget allows, else a
 * file in the spill directory (unlinked at once, space reserved with
 * posix_fallocate so a full disk refuses the open instead of faulting later),
 * else the open is refused.  Budgets count reserved bytes.
 *
 * RAM a closed cache gave back stays mapped ("warm") for DPC_STORE_KEEP_WARM
 * seconds and is reused, zeroed, by the next caches: a fresh page costs a
 * fault and the kernel's zeroing, and far more on guests whose memory the
 * host backs lazily.  With preallocate, the whole RAM budget is faulted in
 * at start and kept warm for the server's life.  Warm and used RAM together
 * stay within the budget: warm RAM is released when a fresh mapping needs
 * its room.
 *
 * A spill file is mapped too, but its pages must not stay in memory: they
 * would count toward the server's RSS and its memory cgroup, and a server
 * spilling 1 GiB with a 256 MiB budget would hold 1 GiB.  Callers report
 * the bytes they read or write (dpc_cache_touched); after each
 * DPC_STORE_SPILL_BATCH bytes of spill caches, the spill caches touched
 * are dropped from the mapping and written back, and the pages the
 * previous round wrote are dropped from the page cache.  So spilled
 * caches hold about two batches in memory, at the price of waiting, once
 * per batch on the event loop, for the disk to finish the previous one.
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
    int preallocate;                /* fault in mem_budget at start */
};

#define DPC_STORE_KEEP_WARM 5.0     /* seconds freed RAM stays mapped */
/* Bytes of spill caches read or written between write-backs. */
#define DPC_STORE_SPILL_BATCH (4u << 20)

struct dpc_store_stats {
    uint64_t caches;
    uint64_t bytes_ram;             /* reserved in RAM */
    uint64_t bytes_spilled;         /* reserved in spill files */
    uint64_t mem_budget, disk_budget;
    uint64_t refused;               /* opens refused for want of room */
    uint64_t bytes_warm;            /* freed RAM kept mapped for reuse */
    uint64_t warm_reuses;           /* opens served from warm RAM */
    int preallocated;
};

struct dpc_store;
struct dpc_cache;

/* NULL with the reason in err: out of memory, or (preallocate) a budget
 * the machine cannot hold. */
struct dpc_store *dpc_store_new(const struct dpc_store_cfg *cfg, char *err,
                                size_t errlen);
/* Every cache must have been closed first. */
void dpc_store_free(struct dpc_store *s);
void dpc_store_get_stats(const struct dpc_store *s, struct dpc_store_stats *st);
/* Releases warm RAM freed more than DPC_STORE_KEEP_WARM seconds before now
 * (never when preallocated), and runs a spill write-back round, so a quiet
 * server's spill pages leave memory too.  Called about once a second. */
void dpc_store_trim(struct dpc_store *s, double now);

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

/* The caller has read or written n bytes of the cache's memory (no pointer
 * into it may be kept across this call for a spill cache: its pages may be
 * dropped, and are read back from the file on the next access). */
void dpc_cache_touched(struct dpc_cache *c, uint64_t n);

uint8_t *dpc_cache_base(const struct dpc_cache *c);
uint64_t dpc_cache_size(const struct dpc_cache *c);
enum dpc_tier dpc_cache_tier(const struct dpc_cache *c);

#endif
