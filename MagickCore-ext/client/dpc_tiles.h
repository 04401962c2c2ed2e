/*
 * dpc_tiles: one pixel cache kept as tiles on one or more magick-dpc hosts,
 * behind a bounded local tile cache.  The image is cut into tile_w x tile_h
 * tiles; with r replicas, tile t lives on the r hosts (t + k) % n, k < r,
 * in their slot (t / n) * r + k, so each of n hosts holds about r/n of the
 * cache and no two copies of a tile share a host; k = 0 (the primary) is
 * the stripe of a cache without replicas.  Writes go to every live copy in
 * one pipelined batch per host, reads to the first live one.  A host whose
 * request fails (connection lost, no answer in time, a refusal) is lost:
 * this cache no longer uses it, the GETs it owed go again to a surviving
 * copy, and only when some tile has no copy left do the calls fail, from
 * then on.  After a loss, at the end of the call that saw it, every copy
 * the lost host held is made again on another live host that holds none
 * of that tile (in a spare cache opened there), so that a later loss is
 * survived too while enough hosts are left.  A lost host may rejoin
 * (cfg.rejoin): a new connection to its address, on which the next
 * re-copy opens a fresh cache, so that the copies get back to r when the
 * hosts come back one after the other (a rolling restart).  Reads fetch
 * the missing tiles of a region in one pipelined batch per host, plus
 * read-ahead along the direction of access;
 * writes stay in the local cache (write-back) until evicted or flushed.
 * Large regions move their whole, non-resident tiles straight between the
 * caller's buffer and the hosts.
 * Tiles never written are zero and never fetched.
 *
 * Ownership: borrows the links (one per host) for its whole life; owns its
 * tile memory.  One thread at a time per tile cache, but for
 * dpc_tiles_read_hit(); the links may be
 * shared with other tile caches (dpc_pool): each network exchange holds
 * their locks.
 */
#ifndef DPC_TILES_H
#define DPC_TILES_H

#include <stddef.h>
#include <stdint.h>

#include "dpc_link.h"
#include "dpc_util.h"

#define DPC_TILES_PLANES 2
#define DPC_TILES_MAX_COPIES 64

struct dpc_tiles_cfg {
    uint64_t columns, rows;
    uint32_t bpp[DPC_TILES_PLANES];     /* pixels, indexes (0: none) */
    uint32_t tile_w, tile_h;
    uint64_t cache_bytes;               /* local tile cache budget */
    struct dpc_link *const *links;      /* one per host, borrowed */
    size_t nlinks;
    uint32_t replicas;                  /* copies of each tile (0: 1), at
                                         * most nlinks */
    /* With replicas, a lost host may rejoin (NULL: it never does).
     * rejoin(rejoin_arg, h, ...) gives a new link to host h (the address
     * of links[h], its failures forgotten), or NULL with the reason in
     * err; the tile cache holds it until dpc_tiles_close hands it back to
     * unref(rejoin_arg, link).  Called under the caller's lock, links not
     * held, at most every DPC_TILES_REJOIN_SECONDS per lost host (backing
     * off to DPC_TILES_REJOIN_MAX_SECONDS), DPC_TILES_REJOIN_TRIES times
     * in a row. */
    struct dpc_link *(*rejoin)(void *arg, size_t h, char *err,
                               size_t errlen);
    void (*unref)(void *arg, struct dpc_link *l);
    void *rejoin_arg;
};

#define DPC_TILES_REJOIN_SECONDS 1.0
#define DPC_TILES_REJOIN_MAX_SECONDS 8.0
#define DPC_TILES_REJOIN_TRIES 32

struct dpc_tiles_stats {
    uint64_t hits, misses, fetched, written_back, zero_filled;
    uint64_t direct;                    /* tiles moved past the tile cache */
    uint64_t round_trips;
    uint64_t slots_per_host_max;
    uint64_t hosts_lost;
    uint64_t failovers;                 /* GETs sent again to a replica */
    uint64_t recopied;                  /* copies made again elsewhere */
    double recopy_seconds;              /* the calls' time spent on it */
    uint64_t rejoined;                  /* lost hosts reached again */
    uint64_t cloned;                    /* made a copy on the hosts */
};

struct dpc_tiles;

/* Opens the cache's share on every host.  NULL with the reason in err
 * and its code in *code (may be NULL): DPC_E_NO_ROOM when a host refused
 * for lack of room, DPC_E_DRAINING when a host is draining (the caller may
 * try again without it), DPC_E_INVALID for a bad geometry or more replicas
 * than hosts, a lost link's code; and in *host (may be NULL) the index in
 * cfg->links of the host that failed, or cfg->nlinks when the failure was
 * no host's.  With replicas, a host lost while opening is only lost
 * (dpc_tiles_host_lost) as long as every tile keeps a copy.
 *
 * The int calls below return 0, or a negative dpc_errcode with the reason
 * in err: DPC_E_INVALID for a bad region or plane (found here), else the
 * failing link's (dpc_link.h). */
struct dpc_tiles *dpc_tiles_open(const struct dpc_tiles_cfg *cfg,
                                 enum dpc_errcode *code, size_t *host,
                                 char *err, size_t errlen);
/* Copies a region of one plane out of (into) the cache; the buffer holds
 * w x h pixels row after row.  Regions follow ImageMagick's rule
 * (dpc_region.h): a row may run past the right edge onto the next. */
int dpc_tiles_read(struct dpc_tiles *t, int plane, uint64_t x, uint64_t y,
                   uint64_t w, uint64_t h, uint8_t *dst, char *err,
                   size_t errlen);
int dpc_tiles_write(struct dpc_tiles *t, int plane, uint64_t x, uint64_t y,
                    uint64_t w, uint64_t h, const uint8_t *src, char *err,
                    size_t errlen);
/* A read served without the caller's lock, when the region lies in up to
 * four resident tiles: 1 when dst was filled, 0 when the caller must take its
 * lock and call dpc_tiles_read().  May run concurrently with one thread
 * inside the other calls (which must hold the caller's lock). */
int dpc_tiles_read_hit(struct dpc_tiles *t, int plane, uint64_t x,
                       uint64_t y, uint64_t w, uint64_t h, uint8_t *dst);
/* Writes every dirty tile back to its host. */
int dpc_tiles_flush(struct dpc_tiles *t, char *err, size_t errlen);
/* Makes dst, a cache nothing was written to yet, a copy of src on the
 * hosts themselves (COPY, dpc_link_copy): src's dirty tiles are written
 * back, then every host copies its share; no pixel crosses the network.
 * Both must have one layout on the same links with no host lost or copy
 * moved, and every host must take COPY.  0, or a negative dpc_errcode
 * (DPC_E_REFUSED: not possible here, nothing changed; others: a host
 * failed, as in any transfer); after a failure the caller copies the
 * pixels itself, over everything dst holds.  Under both callers' locks. */
int dpc_tiles_clone(struct dpc_tiles *dst, struct dpc_tiles *src, char *err,
                    size_t errlen);
/* Releases the cache on every host not lost and frees t (dirty tiles are
 * dropped: the cache is being destroyed); fails when the cache had failed
 * (a tile without a copy) or a release failed. */
int dpc_tiles_close(struct dpc_tiles *t, char *err, size_t errlen);
void dpc_tiles_get_stats(const struct dpc_tiles *t, struct dpc_tiles_stats *s);
/* The tile cache's size in bytes: cfg.cache_bytes in whole tiles, at least
 * a few, at most the image. */
uint64_t dpc_tiles_cache_bytes(const struct dpc_tiles *t);
/* Lines of tiles, one across and one down the image each, that walks along
 * columns or slanted lines hold (-rotate's shears, -distort: a line per
 * thread and the tiles ahead); a tile cache of fewer fetches each line
 * again and again, and reads no tiles ahead. */
#define DPC_TILES_WALK_LINES 3
/* The bytes of DPC_TILES_WALK_LINES lines for cfg's image and tiles: the
 * smallest tile cache a caller should ask for. */
uint64_t dpc_tiles_walk_bytes(const struct dpc_tiles_cfg *cfg);
/* 1 when host h (an index into cfg.links) is lost to this cache, with why
 * ("HOST:PORT: cause") copied into why; else 0.  Under the caller's lock. */
int dpc_tiles_host_lost(const struct dpc_tiles *t, size_t h, char *why,
                        size_t len);

#endif
