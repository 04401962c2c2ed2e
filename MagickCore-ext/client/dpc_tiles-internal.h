/*
 * dpc_tiles-internal: what dpc_tiles.c (the tile cache) and
 * dpc_tiles_hosts.c (where the tiles live: placement, replicas, lost hosts,
 * rounds of requests, re-copies) share, and nothing else may use.  Every
 * call below runs under the caller's lock (one thread at a time per tile
 * cache); those that talk to the hosts say whether they take the links'
 * locks themselves ("links held": the caller holds them).
 */
#ifndef DPC_TILES_INTERNAL_H
#define DPC_TILES_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "dpc_link.h"
#include "dpc_tiles.h"
#include "dpc_util.h"

#define NONE (-1)

struct entry {
    int64_t tile;               /* NONE when free */
    int32_t prev, next;         /* LRU: head is most recent */
    uint32_t stamp;
    uint32_t seq;               /* odd while tile or bytes change (seqlock) */
    uint8_t dirty;
    uint8_t referenced;         /* hit without the lock: a second chance */
    uint8_t pending;            /* admitted for a covering write, not yet written */
};

/* Per-host request being assembled. */
struct batch {
    uint64_t *slots;
    uint8_t **ptrs;
    int64_t *tiles;             /* the tile of each slot, for a failover */
    uint32_t count;
    uint32_t owed;              /* requests sent on its link behind the
                                 * round's GETs, not waited for */
};

#define DPC_TILES_SCANS 8        /* scans the read-ahead tells apart */
#define DPC_TILES_AHEAD_MAX 64   /* bands one read-ahead fetches at most */
#define DPC_TILES_NEAR 1         /* tiles around a fetch that starts no scan */

struct dpc_tiles {
    struct dpc_tiles_cfg cfg;
    struct dpc_link **links;
    struct dpc_link **order;    /* distinct links by address: lock order */
    size_t norder;
    uint64_t *handles;
    uint64_t tx_n, ty_n, ntiles;
    int tw_shift, th_shift;     /* log2 of a power-of-two tile size, or -1 */
    uint32_t slot_bytes, plane_off[DPC_TILES_PLANES], per_request;
    uint32_t nent;
    struct entry *ent;
    uint8_t *mem;
    int32_t *where;             /* tile -> entry, NONE when not resident */
    uint8_t *written;           /* bitmap: the tile exists on its host */
    uint8_t *unread;            /* bitmap: sent to its hosts and not
                                 * fetched since (the read-ahead's hint) */
    int32_t head, tail;
    uint32_t stamp;
    struct batch *puts, *gets;  /* one per virtual host (below) */
    int64_t *list;              /* tiles of the batch in progress */
    int64_t *direct;            /* its tiles moved without the tile cache */
    uint32_t ndirect;
    uint8_t *nofetch;
    int32_t *zero;              /* entries to zero once write-backs are out */
    uint32_t nzero;
    int32_t *admitted;          /* entries (re)assigned by this batch */
    uint32_t nadmitted;
    int32_t *fetched;           /* entries this batch fetches, in stage order */
    uint32_t nfetched;
    uint8_t *stage;             /* where their bytes arrive */
    size_t stage_cap;
    int failed;                 /* a batch failed: no more lock-free hits
                                 * (__atomic: read_hit reads it) */
    int unacked;                /* write-backs sent, replies not yet read */
    uint32_t copies;            /* replicas: copies of each tile */
    /* Virtual hosts: one cache on one host.  The first n are the caches
     * opened on the n hosts; spare caches opened to re-copy tiles after a
     * loss follow.  Batches, handles and the flags below are per virtual
     * host; a lost host loses all of its caches. */
    size_t nv, nv_cap;
    size_t *phys;               /* virtual host -> host (cfg.links index) */
    uint8_t *dead;              /* lost, no longer used */
    uint8_t *round_failed;      /* failed in the current round */
    enum dpc_errcode *lost_code;    /* per host: why it was lost */
    char (*lost_why)[DPC_ERRLEN];
    /* Where each copy is once copies moved (NULL before: the ring) */
    int32_t *loc_host;          /* ntiles x copies: its virtual host */
    uint32_t *loc_slot;
    int recopy_due;             /* hosts lost (or back) since the last
                                 * re-copy */
    /* Per host: the link a spare cache opens on (a rejoin's once it came
     * back), lost and not back, the next rejoin try and how many failed */
    struct dpc_link **host_link;
    uint8_t *host_dead;
    double *rejoin_at;
    uint32_t *rejoin_tries;
    double rejoin_next;         /* the earliest rejoin_at due, 0: none */
    struct dpc_link **own;      /* links cfg.rejoin gave, nown of them */
    size_t nown;
    uint8_t *restage;           /* tiles being re-copied, nent of them */
    int64_t *retry_tile;        /* GETs of a lost host, sent again */
    uint8_t **retry_ptr;
    enum dpc_errcode fatal;     /* a tile has no copy left: every call fails */
    char fatal_why[DPC_ERRLEN];
    /* Scans the read-ahead follows (threads walking their own columns or
     * rows): a band's span across, the band after the last one fetched,
     * and how many bands that fetch read ahead. */
    struct dpc_tiles_scan {
        uint64_t lo, hi, next;
        uint32_t depth;
        int rowwise;
    } scan[DPC_TILES_SCANS];
    uint32_t scan_victim;
    struct dpc_tiles_stats st;
};

static inline int is_written(const struct dpc_tiles *t, uint64_t tile)
{
    return (t->written[tile / 8] >> (tile % 8)) & 1;
}

static inline void set_written(struct dpc_tiles *t, uint64_t tile)
{
    t->written[tile / 8] |= (uint8_t)(1u << (tile % 8));
}

static inline int is_unread(const struct dpc_tiles *t, uint64_t tile)
{
    return (t->unread[tile / 8] >> (tile % 8)) & 1;
}

static inline void set_unread(struct dpc_tiles *t, uint64_t tile, int on)
{
    if (on)
        t->unread[tile / 8] |= (uint8_t)(1u << (tile % 8));
    else
        t->unread[tile / 8] &= (uint8_t)~(1u << (tile % 8));
}

/* Locks (unlocks) every distinct link, in address order (links may be
 * shared with other caches, dpc_pool: two caches cannot deadlock). */
void dpc_tiles_hosts_lock(struct dpc_tiles *t);
void dpc_tiles_hosts_unlock(struct dpc_tiles *t);
/* The lock order of t->links; -1 when out of memory. */
int dpc_tiles_hosts_lock_order(struct dpc_tiles *t);
/* The per-host state and batches (t->copies and t->nent set); -1 when out
 * of memory, the caller's free frees what was allocated. */
int dpc_tiles_hosts_alloc(struct dpc_tiles *t);
void dpc_tiles_hosts_free(struct dpc_tiles *t);
/* Opens the cache's share on every host (links held).  0, or a negative
 * dpc_errcode: no room or draining (the caller may go elsewhere; *failed
 * is that host's index), or a lost host when there is no replica, or a
 * tile left without a copy. */
int dpc_tiles_hosts_open(struct dpc_tiles *t, size_t *failed, char *err,
                         size_t errlen);
/* Releases the cache on every host not lost (takes the links' locks); the
 * cache's failure, or the first failed release. */
int dpc_tiles_hosts_close(struct dpc_tiles *t, char *err, size_t errlen);
/* Queue a write of tile from p to each of its live copies, a read into p
 * from its first live copy (b: one batch per virtual host). */
void dpc_tiles_hosts_put(struct dpc_tiles *t, struct batch *b, int64_t tile,
                         uint8_t *p);
void dpc_tiles_hosts_get(struct dpc_tiles *t, struct batch *b, int64_t tile,
                         uint8_t *p);
/* One round of b's PUTs (put) or GETs, surviving lost hosts (links held):
 * 0, or a negative dpc_errcode once a tile has no copy left.  then_put,
 * when not NULL, is a batch of PUTs sent right after b's GETs; the round
 * waits for the GETs only, the PUTs' replies are left to a later wait. */
int dpc_tiles_hosts_round(struct dpc_tiles *t, struct batch *b, int put,
                          int wait, const struct dpc_link_rows *rows,
                          struct batch *then_put, char *err, size_t errlen);
/* 1 when a re-copy is due: hosts were lost, or a lost host's rejoin try
 * is (dpc_tiles_hosts_recopy tries it). */
int dpc_tiles_hosts_recopy_due(const struct dpc_tiles *t);
/* After hosts were lost, between the caller's calls: the lost hosts whose
 * turn it is tried again (cfg.rejoin), then the copies they held made
 * again elsewhere (takes the links' locks). */
int dpc_tiles_hosts_recopy(struct dpc_tiles *t, char *err, size_t errlen);

#endif
