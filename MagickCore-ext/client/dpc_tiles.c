/*
 * dpc_tiles: see dpc_tiles.h.
 *
 * The local cache is an array of entries, each one slot (all planes of a
 * tile), found through a tile -> entry map and ordered by an LRU list.
 * Entries used by the batch in progress are pinned with the batch's stamp
 * so they are never chosen as victims of the same batch.
 *
 * Reads that hit one resident tile may run without the caller's lock
 * (dpc_tiles_read_hit): every change of an entry's identity or bytes is
 * bracketed by its sequence number going odd and back to even, and such a
 * reader copies, then checks the number did not move (a seqlock).  Such
 * a reader may copy bytes a writer is changing and then throws them away;
 * so that this is no data race, both sides touch slot bytes and the fields
 * the reader looks at (tile, seq, referenced) only with atomic operations,
 * relaxed ones ordered by the fences around seq: shared_load, shared_store
 * and shared_zero go word by word where aligned.  The link receives fetched
 * tiles into a staging buffer (recv cannot store atomically), copied into
 * their slots with shared_store once they are in.  Those hits set `referenced`
 * instead of moving the entry in the LRU list; the victim search gives
 * referenced entries a second chance.
 *
 * Replicas and lost hosts change only the locked path: which hosts a
 * batch's requests go to (put_tile, get_tile), and rounds of requests
 * (round_trip) that survive a host's failure.  A host is lost at its first
 * failed request and never used again by this cache, so no copy it held
 * can be read stale; every write goes to all the live copies at once, so
 * any of them holds the tile.
 */
#include "dpc_tiles.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpc_region.h"
#include "dpc_util.h"

#define MIN_ENTRIES 8
/* A batch of at least this many tiles, or a region too large for the tile
 * cache, moves its whole tiles that are not resident straight between the
 * caller's buffer and the hosts: bulk transfers would only evict the cache. */
#define DIRECT_MIN_TILES 8
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
};

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
    int32_t head, tail;
    uint32_t stamp;
    struct batch *puts, *gets;  /* one per host */
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
    int recopy_due;             /* hosts lost since the last re-copy */
    uint8_t *restage;           /* tiles being re-copied, nent of them */
    int64_t *retry_tile;        /* GETs of a lost host, sent again */
    uint8_t **retry_ptr;
    enum dpc_errcode fatal;     /* a tile has no copy left: every call fails */
    char fatal_why[DPC_ERRLEN];
    struct dpc_tiles_stats st;
};

static int is_written(const struct dpc_tiles *t, uint64_t tile)
{
    return (t->written[tile / 8] >> (tile % 8)) & 1;
}

static void set_written(struct dpc_tiles *t, uint64_t tile)
{
    t->written[tile / 8] |= (uint8_t)(1u << (tile % 8));
}

static uint8_t *entry_mem(const struct dpc_tiles *t, int32_t e)
{
    return t->mem + (size_t)e * t->slot_bytes;
}

/* Copies n bytes out of a slot that a writer may be changing. */
static void shared_load(uint8_t *dst, const uint8_t *src, size_t n)
{
    for (; n > 0 && ((uintptr_t)src & 7) != 0; n--)
        *dst++ = __atomic_load_n(src++, __ATOMIC_RELAXED);
    for (; n >= 8; n -= 8, src += 8, dst += 8) {
        uint64_t v = __atomic_load_n((const uint64_t *)src, __ATOMIC_RELAXED);

        memcpy(dst, &v, 8);
    }
    for (; n > 0; n--)
        *dst++ = __atomic_load_n(src++, __ATOMIC_RELAXED);
}

/* Copies n bytes into a slot that lock-free readers may be copying. */
static void shared_store(uint8_t *dst, const uint8_t *src, size_t n)
{
    for (; n > 0 && ((uintptr_t)dst & 7) != 0; n--)
        __atomic_store_n(dst++, *src++, __ATOMIC_RELAXED);
    for (; n >= 8; n -= 8, src += 8, dst += 8) {
        uint64_t v;

        memcpy(&v, src, 8);
        __atomic_store_n((uint64_t *)dst, v, __ATOMIC_RELAXED);
    }
    for (; n > 0; n--)
        __atomic_store_n(dst++, *src++, __ATOMIC_RELAXED);
}

static void shared_zero(uint8_t *dst, size_t n)
{
    for (; n > 0 && ((uintptr_t)dst & 7) != 0; n--)
        __atomic_store_n(dst++, 0, __ATOMIC_RELAXED);
    for (; n >= 8; n -= 8, dst += 8)
        __atomic_store_n((uint64_t *)dst, 0, __ATOMIC_RELAXED);
    for (; n > 0; n--)
        __atomic_store_n(dst++, 0, __ATOMIC_RELAXED);
}

/* An entry's tile, as the lock-free readers see it change. */
static void set_tile(struct dpc_tiles *t, int32_t e, int64_t tile)
{
    __atomic_store_n(&t->ent[e].tile, tile, __ATOMIC_RELAXED);
}

static void seq_begin(struct dpc_tiles *t, int32_t e)
{
    __atomic_store_n(&t->ent[e].seq, t->ent[e].seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

static void seq_end(struct dpc_tiles *t, int32_t e)
{
    __atomic_store_n(&t->ent[e].seq, t->ent[e].seq + 1, __ATOMIC_RELEASE);
}

static void set_where(struct dpc_tiles *t, int64_t tile, int32_t e)
{
    __atomic_store_n(&t->where[tile], e, __ATOMIC_RELEASE);
}

static void lru_unlink(struct dpc_tiles *t, int32_t e)
{
    struct entry *x = &t->ent[e];

    if (x->prev != NONE)
        t->ent[x->prev].next = x->next;
    else
        t->head = x->next;
    if (x->next != NONE)
        t->ent[x->next].prev = x->prev;
    else
        t->tail = x->prev;
}

static void lru_push_head(struct dpc_tiles *t, int32_t e)
{
    t->ent[e].prev = NONE;
    t->ent[e].next = t->head;
    if (t->head != NONE)
        t->ent[t->head].prev = e;
    t->head = e;
    if (t->tail == NONE)
        t->tail = e;
}

static void touch(struct dpc_tiles *t, int32_t e)
{
    if (t->head == e)
        return;
    lru_unlink(t, e);
    lru_push_head(t, e);
}

static int by_address(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)*(struct dpc_link *const *)a;
    uintptr_t y = (uintptr_t)*(struct dpc_link *const *)b;

    return x < y ? -1 : x > y;
}

/* Links may be shared with other caches (dpc_pool): hold every distinct one
 * of ours, always in address order so two caches cannot deadlock. */
static void lock_links(struct dpc_tiles *t)
{
    for (size_t i = 0; i < t->norder; i++)
        dpc_link_lock(t->order[i]);
}

static void unlock_links(struct dpc_tiles *t)
{
    for (size_t i = t->norder; i-- > 0;)
        dpc_link_unlock(t->order[i]);
}

static int set_lock_order(struct dpc_tiles *t)
{
    t->order = malloc(t->cfg.nlinks * sizeof(*t->order));
    if (t->order == NULL)
        return -1;
    memcpy(t->order, t->links, t->cfg.nlinks * sizeof(*t->order));
    qsort(t->order, t->cfg.nlinks, sizeof(*t->order), by_address);
    for (size_t i = 0; i < t->cfg.nlinks; i++)
        if (t->norder == 0 || t->order[t->norder - 1] != t->order[i])
            t->order[t->norder++] = t->order[i];
    return 0;
}

static void free_all(struct dpc_tiles *t)
{
    for (size_t h = 0; t->puts != NULL && t->gets != NULL && h < t->nv_cap;
         h++) {
        free(t->puts[h].slots);
        free(t->puts[h].ptrs);
        free(t->puts[h].tiles);
        free(t->gets[h].slots);
        free(t->gets[h].ptrs);
        free(t->gets[h].tiles);
    }
    free(t->dead);
    free(t->phys);
    free(t->loc_host);
    free(t->loc_slot);
    free(t->restage);
    free(t->round_failed);
    free(t->lost_code);
    free(t->lost_why);
    free(t->retry_tile);
    free(t->retry_ptr);
    free(t->puts);
    free(t->gets);
    free(t->list);
    free(t->nofetch);
    free(t->zero);
    free(t->admitted);
    free(t->fetched);
    free(t->stage);
    free(t->handles);
    free(t->links);
    free(t->order);
    free(t->ent);
    free(t->mem);
    free(t->where);
    free(t->written);
    free(t->direct);
    free(t);
}

/* The batches of virtual host v.  A batch holds each of its tiles at most
 * once per virtual host: the copies of a tile are on distinct hosts. */
static int alloc_batch(struct dpc_tiles *t, size_t v)
{
    t->puts[v].slots = malloc(t->nent * sizeof(uint64_t));
    t->puts[v].ptrs = malloc(t->nent * sizeof(uint8_t *));
    t->puts[v].tiles = malloc(t->nent * sizeof(int64_t));
    t->gets[v].slots = malloc(t->nent * sizeof(uint64_t));
    t->gets[v].ptrs = malloc(t->nent * sizeof(uint8_t *));
    t->gets[v].tiles = malloc(t->nent * sizeof(int64_t));
    if (!t->puts[v].slots || !t->puts[v].ptrs || !t->puts[v].tiles ||
        !t->gets[v].slots || !t->gets[v].ptrs || !t->gets[v].tiles) {
        free(t->puts[v].slots);
        free(t->puts[v].ptrs);
        free(t->puts[v].tiles);
        free(t->gets[v].slots);
        free(t->gets[v].ptrs);
        free(t->gets[v].tiles);
        t->puts[v] = t->gets[v] = (struct batch){ 0 };
        return -1;
    }
    return 0;
}

static int alloc_batches(struct dpc_tiles *t)
{
    size_t n = t->cfg.nlinks;

    /* each re-copy after a loss opens at most one spare cache on each of
     * the hosts left, and there are at most n - 1 losses */
    t->nv_cap = t->copies > 1 ? n * n : n;
    t->puts = calloc(t->nv_cap, sizeof(*t->puts));
    t->gets = calloc(t->nv_cap, sizeof(*t->gets));
    t->dead = calloc(t->nv_cap, 1);
    t->round_failed = calloc(t->nv_cap, 1);
    t->phys = calloc(t->nv_cap, sizeof(*t->phys));
    t->lost_code = calloc(n, sizeof(*t->lost_code));
    t->lost_why = calloc(n, sizeof(*t->lost_why));
    t->retry_tile = malloc(t->nent * sizeof(*t->retry_tile));
    t->retry_ptr = malloc(t->nent * sizeof(*t->retry_ptr));
    if (t->puts == NULL || t->gets == NULL || t->dead == NULL ||
        t->round_failed == NULL || t->phys == NULL || t->lost_code == NULL ||
        t->lost_why == NULL || t->retry_tile == NULL || t->retry_ptr == NULL)
        return -1;
    for (size_t h = 0; h < n; h++) {
        t->phys[h] = h;
        if (alloc_batch(t, h) < 0)
            return -1;
    }
    t->nv = n;
    return 0;
}

/* n = 2^k: k; else -1. */
static int log2_exact(uint32_t n)
{
    return n != 0 && (n & (n - 1)) == 0 ? __builtin_ctz(n) : -1;
}

static int layout(struct dpc_tiles *t, char *err, size_t errlen)
{
    const struct dpc_tiles_cfg *c = &t->cfg;
    uint64_t px = (uint64_t)c->tile_w * c->tile_h, slot;

    if (c->columns == 0 || c->rows == 0 || c->tile_w == 0 ||
        c->tile_h == 0 || c->bpp[0] == 0 || c->nlinks == 0)
        return dpc_errc(err, errlen, DPC_E_INVALID, "bad tile cache geometry");
    t->copies = c->replicas > 0 ? c->replicas : 1;
    if (t->copies > c->nlinks || t->copies > DPC_TILES_MAX_COPIES)
        return dpc_errc(err, errlen, DPC_E_INVALID, "%u replicas of each "
                        "tile need as many hosts, not %zu", t->copies,
                        c->nlinks);
    t->tx_n = (c->columns + c->tile_w - 1) / c->tile_w;
    t->ty_n = (c->rows + c->tile_h - 1) / c->tile_h;
    t->tw_shift = log2_exact(c->tile_w);
    t->th_shift = log2_exact(c->tile_h);
    t->ntiles = t->tx_n * t->ty_n;
    slot = px * (c->bpp[0] + c->bpp[1]);
    if (slot > DPC_WIRE_MAX_SLOT_BYTES || t->ntiles > INT32_MAX)
        return dpc_errc(err, errlen, DPC_E_INVALID,
                        "tiles of %llu bytes are too large",
                        (unsigned long long)slot);
    t->slot_bytes = (uint32_t)slot;
    t->plane_off[0] = 0;
    t->plane_off[1] = (uint32_t)(px * c->bpp[0]);
    t->per_request = (DPC_WIRE_MAX_BODY - DPC_WIRE_SLOTS_FIXED) /
                     (t->slot_bytes + 8);
    if (t->per_request > DPC_WIRE_MAX_COUNT)
        t->per_request = DPC_WIRE_MAX_COUNT;
    t->nent = (uint32_t)(c->cache_bytes / t->slot_bytes);
    if (t->nent < MIN_ENTRIES)
        t->nent = MIN_ENTRIES;
    if (t->nent > t->ntiles)
        t->nent = (uint32_t)t->ntiles;
    if (t->nent < 2)
        t->nent = 2;
    return 0;
}

/* Copy k of tile: on host (tile + k) % n, in its slot (tile / n) * copies
 * + k.  Copy 0 is where a cache without replicas keeps the tile. */
static size_t ring_host(const struct dpc_tiles *t, uint64_t tile,
                        uint32_t k)
{
    return (size_t)((tile + k) % t->cfg.nlinks);
}

/* The virtual host and slot of copy k of tile: the ring's until a re-copy
 * moved it (loc_host). */
static size_t copy_host(const struct dpc_tiles *t, uint64_t tile, uint32_t k)
{
    if (t->loc_host != NULL)
        return (size_t)t->loc_host[tile * t->copies + k];
    return ring_host(t, tile, k);
}

static uint64_t copy_slot(const struct dpc_tiles *t, uint64_t tile,
                          uint32_t k)
{
    if (t->loc_host != NULL)
        return t->loc_slot[tile * t->copies + k];
    return tile / t->cfg.nlinks * t->copies + k;
}

/* The slots host h needs: one past the highest slot of any copy on it. */
static uint64_t host_slots(const struct dpc_tiles *t, size_t h)
{
    size_t n = t->cfg.nlinks;
    uint64_t slots = 0;

    for (uint32_t k = 0; k < t->copies; k++) {
        size_t primary = (h + n - k % n) % n;
        uint64_t count = (t->ntiles + n - 1 - primary) / n;

        if (count > 0 && (count - 1) * t->copies + k + 1 > slots)
            slots = (count - 1) * t->copies + k + 1;
    }
    return slots > 0 ? slots : 1;
}

/* Host h failed a request (why: "HOST:PORT: cause"): this cache no longer
 * uses it.  Its requests of the current round are marked for a failover. */
static void lose_host(struct dpc_tiles *t, size_t v, int rc, const char *why)
{
    size_t p = t->phys[v];

    t->round_failed[v] = 1;
    if (t->dead[v])
        return;
    for (size_t u = 0; u < t->nv; u++)     /* every cache on that host */
        if (t->phys[u] == p) {
            t->dead[u] = 1;
            t->round_failed[u] = 1;
        }
    t->lost_code[p] = dpc_errcode_of(rc);
    snprintf(t->lost_why[p], sizeof(t->lost_why[p]), "%s", why);
    t->st.hosts_lost++;
    t->recopy_due = t->copies > 1;
}

/* Makes every later call fail with the reason: tile `tile` has no copy
 * left.  Returns the negative code. */
static int no_copy_left(struct dpc_tiles *t, uint64_t tile, char *err,
                        size_t errlen)
{
    size_t n = t->cfg.nlinks, h0 = t->phys[copy_host(t, tile, 0)], len = 0;
    char *m = t->fatal_why;

    if (t->copies == 1 && n == 1)
        snprintf(m, sizeof(t->fatal_why), "%s", t->lost_why[h0]);
    else if (t->copies == 1)
        snprintf(m, sizeof(t->fatal_why), "%s; the tiles it held have no "
                 "other copy (cache:dpc-replicas=2 keeps one on another "
                 "host)", t->lost_why[h0]);
    else
        for (uint32_t k = 0; k < t->copies && len < sizeof(t->fatal_why);
             k++)
            len += (size_t)snprintf(m + len, sizeof(t->fatal_why) - len,
                                    "%s%s", k == 0 ? "no copy of a tile is "
                                    "left: " : "; ",
                                    t->lost_why[t->phys[copy_host(t, tile,
                                                                  k)]]);
    t->fatal = t->lost_code[h0] != DPC_E_OK ? t->lost_code[h0] : DPC_E_CLOSED;
    __atomic_store_n(&t->failed, 1, __ATOMIC_RELAXED);
    return dpc_errc(err, errlen, t->fatal, "%s", t->fatal_why);
}

/* After hosts were lost: 0 when every tile still has a live copy, else
 * the failure (no_copy_left). */
static int check_copies(struct dpc_tiles *t, char *err, size_t errlen)
{
    size_t n = t->cfg.nlinks;

    /* on the ring, the copies of tiles t and t + n lie on the same hosts */
    for (uint64_t tile = 0;
         tile < t->ntiles && (tile < n || t->loc_host != NULL); tile++) {
        uint32_t k = 0;

        while (k < t->copies && t->dead[copy_host(t, tile, k)])
            k++;
        if (k == t->copies)
            return no_copy_left(t, tile, err, errlen);
    }
    return 0;
}

static int open_hosts(struct dpc_tiles *t, char *err, size_t errlen)
{
    size_t n = t->cfg.nlinks;
    char why[DPC_ERRLEN];

    for (size_t h = 0; h < n; h++) {
        uint64_t slots = host_slots(t, h);

        if (slots > t->st.slots_per_host_max)
            t->st.slots_per_host_max = slots;
        int rc = dpc_link_open(t->links[h], t->slot_bytes, slots,
                               &t->handles[h], why, sizeof(why));

        if (rc < 0 && rc != -DPC_E_NO_ROOM && t->copies > 1) {
            lose_host(t, h, rc, why);   /* the other copies will do */
            continue;
        }
        if (rc < 0) {               /* no room: the caller may go elsewhere */
            dpc_errc(err, errlen, dpc_errcode_of(rc), "%s", why);
            while (h-- > 0)
                if (!t->dead[h])
                    dpc_link_close_cache(t->links[h], t->handles[h], NULL, 0);
            return rc;
        }
    }
    if (t->st.hosts_lost > 0 && check_copies(t, err, errlen) < 0) {
        for (size_t h = 0; h < n; h++)
            if (!t->dead[h])
                dpc_link_close_cache(t->links[h], t->handles[h], NULL, 0);
        return -(int)t->fatal;
    }
    return 0;
}

struct dpc_tiles *dpc_tiles_open(const struct dpc_tiles_cfg *cfg,
                                 enum dpc_errcode *code, char *err,
                                 size_t errlen)
{
    struct dpc_tiles *t = calloc(1, sizeof(*t));
    int rc;

    if (code != NULL)
        *code = DPC_E_OK;
    if (t == NULL) {
        rc = dpc_errc(err, errlen, DPC_E_NOMEM, "out of memory");
        goto err;
    }
    t->cfg = *cfg;
    if ((rc = layout(t, err, errlen)) < 0) {
        free(t);
        goto err;
    }
    t->links = malloc(cfg->nlinks * cfg->nlinks * sizeof(*t->links));
    t->handles = calloc(cfg->nlinks * cfg->nlinks, sizeof(*t->handles));
    t->ent = malloc(t->nent * sizeof(*t->ent));
    t->mem = malloc((size_t)t->nent * t->slot_bytes);
    t->where = malloc(t->ntiles * sizeof(*t->where));
    t->written = calloc((t->ntiles + 7) / 8, 1);
    t->list = malloc(t->nent * sizeof(*t->list));
    t->direct = malloc(t->nent * sizeof(*t->direct));
    t->nofetch = malloc(t->nent);
    t->zero = malloc(t->nent * sizeof(*t->zero));
    t->admitted = malloc(t->nent * sizeof(*t->admitted));
    t->fetched = malloc(t->nent * sizeof(*t->fetched));
    if (!t->links || !t->handles || !t->ent || !t->mem || !t->where ||
        !t->written || !t->list || !t->direct || !t->nofetch || !t->zero ||
        !t->admitted || !t->fetched ||
        alloc_batches(t) < 0) {
        rc = dpc_errc(err, errlen, DPC_E_NOMEM,
                      "out of memory for a %u-tile cache", t->nent);
        free_all(t);
        goto err;
    }
    memcpy(t->links, cfg->links, cfg->nlinks * sizeof(*t->links));
    t->cfg.links = t->links;
    if (set_lock_order(t) < 0) {
        rc = dpc_errc(err, errlen, DPC_E_NOMEM, "out of memory");
        free_all(t);
        goto err;
    }
    for (uint64_t i = 0; i < t->ntiles; i++)
        t->where[i] = NONE;
    t->head = t->tail = NONE;
    for (uint32_t e = 0; e < t->nent; e++) {
        t->ent[e] = (struct entry){ .tile = NONE };
        lru_push_head(t, (int32_t)e);
    }
    lock_links(t);
    if ((rc = open_hosts(t, err, errlen)) < 0) {
        unlock_links(t);
        free_all(t);
        goto err;
    }
    unlock_links(t);
    return t;
err:
    if (code != NULL)
        *code = dpc_errcode_of(rc);
    return NULL;
}

static void batch_add(struct batch *b, uint64_t slot, int64_t tile,
                      uint8_t *p)
{
    b->slots[b->count] = slot;
    b->tiles[b->count] = tile;
    b->ptrs[b->count++] = p;
}

/* Queues a write of tile from p to each of its live copies (b: one batch
 * per host). */
static void put_tile(struct dpc_tiles *t, struct batch *b, int64_t tile,
                     uint8_t *p)
{
    for (uint32_t k = 0; k < t->copies; k++) {
        size_t h = copy_host(t, (uint64_t)tile, k);

        if (!t->dead[h])
            batch_add(&b[h], copy_slot(t, (uint64_t)tile, k), tile, p);
    }
}

/* Queues a read of tile into p from its first live copy.  There is one:
 * check_copies() fails the cache once a tile has none. */
static void get_tile(struct dpc_tiles *t, struct batch *b, int64_t tile,
                     uint8_t *p)
{
    for (uint32_t k = 0; k < t->copies; k++) {
        size_t h = copy_host(t, (uint64_t)tile, k);

        if (!t->dead[h]) {
            batch_add(&b[h], copy_slot(t, (uint64_t)tile, k), tile, p);
            return;
        }
    }
}

/* Sends the assembled batches: b[h] for every host, chunked per request.
 * A host whose send fails is lost; the GETs of a lost host are left for
 * the failover (round_failed). */
static void send_batches(struct dpc_tiles *t, struct batch *b, int put,
                         const struct dpc_link_rows *rows)
{
    char why[DPC_ERRLEN];

    for (size_t h = 0; h < t->nv; h++) {
        if (b[h].count > 0 && t->dead[h]) {
            t->round_failed[h] = 1;     /* lost since the batch was made */
            continue;
        }
        for (uint32_t i = 0; i < b[h].count; i += t->per_request) {
            uint32_t k = b[h].count - i < t->per_request ? b[h].count - i
                                                          : t->per_request;
            int rc = put ? dpc_link_put(t->links[h], t->handles[h],
                                        t->slot_bytes, k, b[h].slots + i,
                                        (const uint8_t *const *)b[h].ptrs + i,
                                        rows, why, sizeof(why))
                         : dpc_link_get(t->links[h], t->handles[h],
                                        t->slot_bytes, k, b[h].slots + i,
                                        b[h].ptrs + i, rows, why, sizeof(why));
            if (rc < 0) {
                lose_host(t, h, rc, why);
                break;
            }
        }
    }
}

/* Collects every queued reply, of lost hosts' links too: a GET queued
 * there must not land in our buffers later (their links may be shared).
 * A host whose replies fail is lost. */
static void wait_all(struct dpc_tiles *t)
{
    char why[DPC_ERRLEN];
    int rc;

    for (size_t h = 0; h < t->nv; h++)
        if ((rc = dpc_link_wait(t->links[h], why, sizeof(why))) < 0 &&
            !t->dead[h])
            lose_host(t, h, rc, why);
    t->unacked = 0;
    t->st.round_trips++;
}

/* Moves the GETs of the hosts that failed this round to surviving copies;
 * how many moved. */
static uint32_t fail_over(struct dpc_tiles *t, struct batch *b)
{
    uint32_t m = 0;

    for (size_t h = 0; h < t->nv; h++)
        for (uint32_t i = 0; t->round_failed[h] && i < b[h].count; i++) {
            t->retry_tile[m] = b[h].tiles[i];
            t->retry_ptr[m++] = b[h].ptrs[i];
        }
    if (m == 0)
        return 0;
    for (size_t h = 0; h < t->nv; h++)
        b[h].count = 0;
    for (uint32_t i = 0; i < m; i++)
        get_tile(t, b, t->retry_tile[i], t->retry_ptr[i]);
    t->st.failovers += m;
    return m;
}

/* One round: b's PUTs (put) or GETs, then every reply unless it is a PUT
 * round that need not wait (a write-back's replies are collected by the
 * next wait: the client copies the next band while the server takes this
 * one).  The GETs a host failed go again to another copy, until all are
 * in.  0, or a negative dpc_errcode when a tile has no copy left.  Links
 * held. */
static int round_trip(struct dpc_tiles *t, struct batch *b, int put,
                      int wait, const struct dpc_link_rows *rows, char *err,
                      size_t errlen)
{
    uint64_t lost = t->st.hosts_lost;
    int rc;

    for (;;) {
        memset(t->round_failed, 0, t->nv);
        send_batches(t, b, put, rows);
        if (!wait) {
            t->unacked = 1;
            break;
        }
        wait_all(t);
        if (t->st.hosts_lost != lost &&
            (rc = check_copies(t, err, errlen)) < 0)
            return rc;
        if (put || fail_over(t, b) == 0)
            break;
    }
    return t->st.hosts_lost != lost ? check_copies(t, err, errlen) : 0;
}

/* A copy of a tile to move onto host p, which holds none of it. */
struct move {
    int64_t tile;
    uint32_t k;
    uint32_t p;
};

/* Where a lost copy k of tile goes: the first host along the ring after
 * its copies that is alive and holds no copy of it (nor is planned to:
 * plan[0..k-1]); NONE when there is none. */
static int64_t recopy_target(const struct dpc_tiles *t, uint64_t tile,
                             uint32_t k, const int64_t *plan)
{
    size_t n = t->cfg.nlinks;

    for (size_t j = 0; j < n; j++) {
        size_t p = (size_t)((tile + t->copies + j) % n);
        uint32_t i = 0;

        if (t->dead[p])
            continue;
        for (; i < t->copies; i++) {
            size_t v = copy_host(t, tile, i);

            if ((i < k && plan[i] == (int64_t)p) ||
                (!t->dead[v] && t->phys[v] == p))
                break;
        }
        if (i == t->copies)
            return (int64_t)p;
    }
    return NONE;
}

/* A spare cache of slots on host p, as a new virtual host *vp.  0, or -1
 * (no room there, or p lost meanwhile: those copies stay lost). */
static int open_spare(struct dpc_tiles *t, size_t p, uint64_t slots,
                      size_t *vp)
{
    char why[DPC_ERRLEN];
    size_t v = t->nv;
    int rc;

    if (v == t->nv_cap || (t->puts[v].slots == NULL && alloc_batch(t, v) < 0))
        return -1;
    rc = dpc_link_open(t->links[p], t->slot_bytes, slots, &t->handles[v],
                       why, sizeof(why));
    if (rc < 0) {
        if (rc != -DPC_E_NO_ROOM)
            lose_host(t, p, rc, why);
        return -1;
    }
    t->links[v] = t->links[p];
    t->phys[v] = p;
    t->dead[v] = 0;
    t->nv++;
    *vp = v;
    return 0;
}

/* The copies of moves[0..m): each written tile read from a live copy and
 * written to its new cache, then recorded there.  Links held. */
static int recopy_batch(struct dpc_tiles *t, const struct move *moves,
                        uint32_t m, const size_t *spare, uint32_t *next,
                        char *err, size_t errlen)
{
    uint32_t f = 0;
    int rc;

    for (size_t v = 0; v < t->nv; v++)
        t->gets[v].count = t->puts[v].count = 0;
    for (uint32_t i = 0; i < m; i++)
        if (is_written(t, (uint64_t)moves[i].tile))
            get_tile(t, t->gets, moves[i].tile,
                     t->restage + (size_t)f++ * t->slot_bytes);
    if (f > 0 && (rc = round_trip(t, t->gets, 0, 1, NULL, err, errlen)) < 0)
        return rc;
    f = 0;
    for (uint32_t i = 0; i < m; i++) {
        const struct move *x = &moves[i];
        size_t v = spare[x->p], at = (size_t)x->tile * t->copies + x->k;

        if (t->dead[v])
            continue;                   /* lost meanwhile: the next round */
        if (is_written(t, (uint64_t)x->tile))
            batch_add(&t->puts[v], next[x->p], x->tile,
                      t->restage + (size_t)f++ * t->slot_bytes);
        t->loc_host[at] = (int32_t)v;
        t->loc_slot[at] = next[x->p]++;
    }
    if (f > 0 && (rc = round_trip(t, t->puts, 1, 1, NULL, err, errlen)) < 0)
        return rc;
    t->st.recopied += m;
    return 0;
}

/* The ring's placement as an explicit table, before the first move. */
static int make_loc(struct dpc_tiles *t)
{
    size_t cells = (size_t)t->ntiles * t->copies;

    if (t->loc_host != NULL)
        return 0;
    t->loc_host = malloc(cells * sizeof(*t->loc_host));
    t->loc_slot = malloc(cells * sizeof(*t->loc_slot));
    t->restage = malloc((size_t)t->nent * t->slot_bytes);
    if (t->loc_host == NULL || t->loc_slot == NULL || t->restage == NULL) {
        free(t->loc_host);
        free(t->loc_slot);
        t->loc_host = NULL;
        t->loc_slot = NULL;
        return -1;
    }
    for (uint64_t tile = 0; tile < t->ntiles; tile++)
        for (uint32_t k = 0; k < t->copies; k++) {
            t->loc_host[tile * t->copies + k] = (int32_t)ring_host(t, tile, k);
            t->loc_slot[tile * t->copies + k] =
                (uint32_t)(tile / t->cfg.nlinks * t->copies + k);
        }
    return 0;
}

/* After hosts were lost: each copy they held is made again on another
 * live host, in a spare cache opened there, so that a later loss is
 * survived too (as long as there are enough hosts).  Runs between the
 * caller's calls, links not held; a failure here is the cache's only when
 * a tile has no copy left. */
static int recopy(struct dpc_tiles *t, char *err, size_t errlen)
{
    size_t n = t->cfg.nlinks, *spare = NULL;
    uint64_t *count = NULL;
    uint32_t *next = NULL;
    struct move *moves = NULL;
    int64_t plan[DPC_TILES_MAX_COPIES];
    int rc = 0;

    if (make_loc(t) < 0)
        return 0;                       /* no room to track moves: fewer copies */
    spare = calloc(n, sizeof(*spare));
    count = calloc(n, sizeof(*count));
    next = calloc(n, sizeof(*next));
    moves = malloc(t->nent * sizeof(*moves));
    if (spare == NULL || count == NULL || next == NULL || moves == NULL)
        goto out;
    lock_links(t);
    while (t->recopy_due && rc == 0 && t->fatal == DPC_E_OK) {
        uint64_t lost = t->st.hosts_lost;
        uint32_t m = 0;

        t->recopy_due = 0;
        memset(count, 0, n * sizeof(*count));
        memset(next, 0, n * sizeof(*next));
        /* plan: how many copies each host takes */
        for (uint64_t tile = 0; tile < t->ntiles; tile++)
            for (uint32_t k = 0; k < t->copies; k++) {
                plan[k] = NONE;
                if (t->dead[copy_host(t, tile, k)] &&
                    (plan[k] = recopy_target(t, tile, k, plan)) != NONE)
                    count[plan[k]]++;
            }
        for (size_t p = 0; p < n; p++)
            if (count[p] > 0 && open_spare(t, p, count[p], &spare[p]) < 0)
                count[p] = 0;
        /* the same plan again, carried out nent copies at a time */
        for (uint64_t tile = 0; tile < t->ntiles && rc == 0; tile++)
            for (uint32_t k = 0; k < t->copies && rc == 0; k++) {
                plan[k] = NONE;
                if (!t->dead[copy_host(t, tile, k)] ||
                    (plan[k] = recopy_target(t, tile, k, plan)) == NONE ||
                    count[plan[k]] == 0 || next[plan[k]] >= count[plan[k]])
                    continue;
                moves[m++] = (struct move){ (int64_t)tile, k,
                                            (uint32_t)plan[k] };
                if (m == t->nent) {
                    rc = recopy_batch(t, moves, m, spare, next, err, errlen);
                    m = 0;
                }
            }
        if (rc == 0 && m > 0)
            rc = recopy_batch(t, moves, m, spare, next, err, errlen);
        if (t->st.hosts_lost != lost)
            t->recopy_due = t->copies > 1;
    }
    unlock_links(t);
out:
    free(spare);
    free(count);
    free(next);
    free(moves);
    return rc;
}

/* The least recently used entry not pinned by this batch. */
static int32_t victim(struct dpc_tiles *t)
{
    int32_t e = t->tail, prev;

    while (e != NONE) {
        prev = t->ent[e].prev;
        if (t->ent[e].stamp != t->stamp) {
            if (!__atomic_load_n(&t->ent[e].referenced, __ATOMIC_RELAXED))
                return e;
            __atomic_store_n(&t->ent[e].referenced, 0, __ATOMIC_RELAXED);
            touch(t, e);        /* hit since: a second chance */
        }
        e = prev;
    }
    return NONE;
}

/* Gives tile list[i] an entry: a victim's, written back first if dirty;
 * zero-filled, or queued for fetching. */
static void admit(struct dpc_tiles *t, uint32_t i, int *flush, int *fetch)
{
    int64_t tile = t->list[i];
    int32_t e = victim(t);

    t->st.misses++;
    seq_begin(t, e);            /* ends once its bytes are in (ensure) */
    t->admitted[t->nadmitted++] = e;
    if (t->ent[e].tile != NONE) {
        int64_t old = t->ent[e].tile;

        if (t->ent[e].dirty) {
            put_tile(t, t->puts, old, entry_mem(t, e));
            t->st.written_back++;
            *flush = 1;
        }
        set_where(t, old, NONE);
    }
    set_tile(t, e, tile);
    t->ent[e].dirty = 0;
    t->ent[e].stamp = t->stamp;
    __atomic_store_n(&t->ent[e].referenced, 0, __ATOMIC_RELAXED);
    set_where(t, tile, e);
    touch(t, e);
    t->ent[e].pending = t->nofetch[i];
    if (!is_written(t, (uint64_t)tile)) {
        if (!t->nofetch[i])         /* a write covering it needs no zeros */
            t->zero[t->nzero++] = e;    /* its old tile may still be out */
        t->st.zero_filled++;
    } else if (!t->nofetch[i]) {
        get_tile(t, t->gets, tile,
                 t->stage + (size_t)t->nfetched * t->slot_bytes);
        t->fetched[t->nfetched++] = e;
        t->st.fetched++;
        *fetch = 1;
    }
}

/* One pipelined round: write-backs first (sent before their buffers are
 * reused), then zero-fills, then fetches, then every reply.  A round of
 * write-backs alone does not wait (round_trip; a failed write-back breaks
 * the link, see dpc_link).  Links held. */
static int exchange(struct dpc_tiles *t, int flush, int fetch, char *err,
                    size_t errlen)
{
    int rc;

    if (flush && (rc = round_trip(t, t->puts, 1, 0, NULL, err, errlen)) < 0)
        return rc;
    for (uint32_t i = 0; i < t->nzero; i++)
        shared_zero(entry_mem(t, t->zero[i]), t->slot_bytes);
    if (!fetch)
        return 0;
    if ((rc = round_trip(t, t->gets, 0, 1, NULL, err, errlen)) < 0)
        return rc;
    for (uint32_t i = 0; i < t->nfetched; i++)
        shared_store(entry_mem(t, t->fetched[i]),
                     t->stage + (size_t)i * t->slot_bytes, t->slot_bytes);
    return 0;
}

/* Room in the staging buffer for n fetched tiles.  0, or a negative
 * dpc_errcode. */
static int stage_reserve(struct dpc_tiles *t, uint32_t n, char *err,
                         size_t errlen)
{
    size_t need = (size_t)n * t->slot_bytes;
    uint8_t *p;

    if (need <= t->stage_cap)
        return 0;
    if ((p = realloc(t->stage, need)) == NULL)
        return dpc_errc(err, errlen, DPC_E_NOMEM, "out of memory for %u "
                        "fetched tiles", n);
    t->stage = p;
    t->stage_cap = need;
    return 0;
}

/* Makes the n tiles of t->list resident, pinned for this batch: one
 * pipelined round of write-backs and fetches.  n <= nent. */
static int ensure(struct dpc_tiles *t, uint32_t n, char *err, size_t errlen)
{
    int fetch = 0, flush = 0, rc;
    uint32_t missing = 0;

    t->stamp++;
    t->nzero = 0;
    t->nadmitted = 0;
    t->nfetched = 0;
    for (size_t h = 0; h < t->nv; h++)
        t->puts[h].count = t->gets[h].count = 0;
    /* Pin what is resident first, so no victim is a tile of this batch. */
    for (uint32_t i = 0; i < n; i++) {
        int32_t e = t->where[t->list[i]];

        if (e != NONE) {
            t->st.hits++;
            t->ent[e].stamp = t->stamp;
            touch(t, e);
        } else {
            missing++;
        }
    }
    if ((rc = stage_reserve(t, missing, err, errlen)) < 0)
        return rc;
    for (uint32_t i = 0; i < n; i++)
        if (t->where[t->list[i]] == NONE)
            admit(t, i, &flush, &fetch);
    if (!flush && !fetch) {
        for (uint32_t i = 0; i < t->nzero; i++)
            shared_zero(entry_mem(t, t->zero[i]), t->slot_bytes);
        rc = 0;
    } else {
        lock_links(t);
        rc = exchange(t, flush, fetch, err, errlen);
        unlock_links(t);
    }
    if (rc < 0) {
        /* half-fetched tiles: no more unlocked hits */
        __atomic_store_n(&t->failed, 1, __ATOMIC_RELAXED);
        /* Nor locked ones: what this round admitted may never have come. */
        for (uint32_t i = 0; i < t->nadmitted; i++) {
            int32_t e = t->admitted[i];

            set_where(t, t->ent[e].tile, NONE);
            set_tile(t, e, NONE);
            t->ent[e].dirty = 0;
        }
    }
    for (uint32_t i = 0; i < t->nadmitted; i++) {
        int32_t e = t->admitted[i];

        /* one admitted for a write that covers it holds another tile's
         * bytes until copy_tile() writes it: it ends the bracket there */
        if (rc < 0 || !t->ent[e].pending)
            seq_end(t, e);
        if (rc < 0)
            t->ent[e].pending = 0;
    }
    return rc;
}

/* Copies between buf (the region) and tile `tile`'s part of it. */
static void copy_tile(struct dpc_tiles *t, int plane, int64_t tile,
                      uint64_t x, uint64_t y, uint64_t w, uint64_t h,
                      uint8_t *buf, int write)
{
    uint32_t tw = t->cfg.tile_w, th = t->cfg.tile_h, bpp = t->cfg.bpp[plane];
    uint64_t tx = (uint64_t)tile % t->tx_n, ty = (uint64_t)tile / t->tx_n;
    uint64_t x0 = tx * tw > x ? tx * tw : x;
    uint64_t x1 = (tx + 1) * tw < x + w ? (tx + 1) * tw : x + w;
    uint64_t y0 = ty * th > y ? ty * th : y;
    uint64_t y1 = (ty + 1) * th < y + h ? (ty + 1) * th : y + h;
    int32_t e = t->where[tile];
    uint8_t *base = entry_mem(t, e) + t->plane_off[plane];
    size_t run = (size_t)(x1 - x0) * bpp;

    if (write && !t->ent[e].pending)
        seq_begin(t, e);
    for (uint64_t r = y0; r < y1; r++) {
        uint8_t *tp = base + ((r - ty * th) * tw + (x0 - tx * tw)) * bpp;
        uint8_t *bp = buf + ((r - y) * w + (x0 - x)) * bpp;

        if (write)
            shared_store(tp, bp, run);
        else
            memcpy(bp, tp, run);    /* we hold the lock writers take */
    }
    if (write) {
        t->ent[e].dirty = 1;
        t->ent[e].pending = 0;
        set_written(t, (uint64_t)tile);
        seq_end(t, e);
    }
}

/* 1 when a write of the region replaces every byte of the tile's slot. */
static int covers(const struct dpc_tiles *t, int plane, int64_t tile,
                  uint64_t x, uint64_t y, uint64_t w, uint64_t h)
{
    uint64_t tx = (uint64_t)tile % t->tx_n, ty = (uint64_t)tile / t->tx_n;
    uint64_t ex = (tx + 1) * t->cfg.tile_w, ey = (ty + 1) * t->cfg.tile_h;

    if (t->cfg.bpp[1 - plane] != 0)
        return 0;               /* the other plane shares the slot */
    ex = ex < t->cfg.columns ? ex : t->cfg.columns;
    ey = ey < t->cfg.rows ? ey : t->cfg.rows;
    return x <= tx * t->cfg.tile_w && y <= ty * t->cfg.tile_h &&
           x + w >= ex && y + h >= ey;
}

/* Appends the tiles of band [tx0,tx1] x [ty0,ty1] to the list. */
static uint32_t add_tiles(struct dpc_tiles *t, uint32_t n, uint64_t tx0,
                          uint64_t tx1, uint64_t ty0, uint64_t ty1)
{
    for (uint64_t ty = ty0; ty <= ty1; ty++)
        for (uint64_t tx = tx0; tx <= tx1; tx++) {
            t->nofetch[n] = 0;
            t->list[n++] = (int64_t)(ty * t->tx_n + tx);
        }
    return n;
}

/* Read-ahead: the next band in the direction of access, when a fetch is
 * due anyway and the band fits beside this batch. */
static uint32_t read_ahead(struct dpc_tiles *t, uint32_t n, uint64_t tx0,
                           uint64_t tx1, uint64_t ty0, uint64_t ty1,
                           int rowwise)
{
    uint32_t need = 0;

    for (uint32_t i = 0; i < n; i++)
        need |= t->where[t->list[i]] == NONE &&
                is_written(t, (uint64_t)t->list[i]);
    if (!need)
        return n;
    if (rowwise && ty1 + 1 < t->ty_n &&
        n + (tx1 - tx0 + 1) <= t->nent / 2)
        return add_tiles(t, n, tx0, tx1, ty1 + 1, ty1 + 1);
    if (!rowwise && tx1 + 1 < t->tx_n && n + (ty1 - ty0 + 1) <= t->nent / 2)
        return add_tiles(t, n, tx1 + 1, tx1 + 1, ty0, ty1);
    return n;
}

/* Moves the batch's non-resident tiles that lie wholly inside the region
 * (and whose slot holds this plane alone) from t->list to t->direct;
 * returns how many tiles stay in t->list. */
static uint32_t split_direct(struct dpc_tiles *t, int plane, uint32_t n,
                             int bulk, uint64_t x, uint64_t y, uint64_t w,
                             uint64_t h)
{
    uint32_t tw = t->cfg.tile_w, th = t->cfg.tile_h, k = 0;

    t->ndirect = 0;
    if ((n < DIRECT_MIN_TILES && !bulk) || t->cfg.bpp[1 - plane] != 0)
        return n;
    for (uint32_t i = 0; i < n; i++) {
        int64_t tile = t->list[i];
        uint64_t x0 = (uint64_t)tile % t->tx_n * tw;
        uint64_t y0 = (uint64_t)tile / t->tx_n * th;

        if (t->where[tile] == NONE && x0 >= x && y0 >= y &&
            x0 + tw <= x + w && y0 + th <= y + h)
            t->direct[t->ndirect++] = tile;
        else
            t->list[k++] = tile;
    }
    return k;
}

/* Sends (fetches) t->direct's tiles from (into) their places in the region
 * buffer: one slot is a tile's rows, w pixels apart.  Writes are not waited
 * for, like write-backs; tiles never written read as zeros. */
static int direct_io(struct dpc_tiles *t, int plane, uint64_t x, uint64_t y,
                     uint64_t w, uint8_t *buf, int write, char *err,
                     size_t errlen)
{
    size_t hosts = t->nv;
    uint32_t tw = t->cfg.tile_w, th = t->cfg.tile_h, bpp = t->cfg.bpp[plane];
    struct dpc_link_rows rows = { tw * bpp, w * bpp };
    struct batch *b = write ? t->puts : t->gets;
    int any = 0, rc;

    for (size_t h = 0; h < hosts; h++)
        b[h].count = 0;
    for (uint32_t i = 0; i < t->ndirect; i++) {
        int64_t tile = t->direct[i];
        uint64_t x0 = (uint64_t)tile % t->tx_n * tw;
        uint64_t y0 = (uint64_t)tile / t->tx_n * th;
        uint8_t *p = buf + ((y0 - y) * w + (x0 - x)) * bpp;

        if (!write && !is_written(t, (uint64_t)tile)) {
            for (uint32_t r = 0; r < th; r++)
                memset(p + (size_t)r * rows.stride, 0, rows.run);
            continue;
        }
        if (write) {
            set_written(t, (uint64_t)tile);
            put_tile(t, b, tile, p);
        } else {
            get_tile(t, b, tile, p);
        }
        t->st.direct++;
        any = 1;
    }
    if (!any)
        return 0;
    lock_links(t);
    rc = round_trip(t, b, write, !write, &rows, err, errlen);
    unlock_links(t);
    return rc;
}

/* A non-empty rectangle inside the image, of a plane the cache has
 * (tiles_io() checked both). */
static int region_io(struct dpc_tiles *t, int plane, uint64_t x, uint64_t y,
                     uint64_t w, uint64_t h, uint8_t *buf, int write,
                     char *err, size_t errlen)
{
    uint64_t tx0 = x / t->cfg.tile_w, tx1 = (x + w - 1) / t->cfg.tile_w;
    uint64_t ty0 = y / t->cfg.tile_h, ty1 = (y + h - 1) / t->cfg.tile_h;
    uint64_t max = t->nent / 2 > 0 ? t->nent / 2 : 1;
    int whole = (tx1 - tx0 + 1) * (ty1 - ty0 + 1) <= max, rc;

    /* Fast path: a region inside one resident tile (the common case of
     * the small reads behind interpolation and convolution). */
    if (tx0 == tx1 && ty0 == ty1) {
        int64_t tile = (int64_t)(ty0 * t->tx_n + tx0);

        if (t->where[tile] != NONE) {
            t->st.hits++;
            touch(t, t->where[tile]);
            copy_tile(t, plane, tile, x, y, w, h, buf, write);
            return 0;
        }
    }
    /* The whole region in one batch when it fits, else band by band. */
    for (uint64_t ty = ty0; ty <= ty1; ty = whole ? ty1 + 1 : ty + 1) {
        for (uint64_t tx = tx0; tx <= tx1; tx = whole ? tx1 + 1 : tx + max) {
            uint64_t bx1 = whole ? tx1 : (tx + max - 1 < tx1 ? tx + max - 1
                                                             : tx1);
            uint64_t by0 = whole ? ty0 : ty, by1 = whole ? ty1 : ty;
            uint32_t n = add_tiles(t, 0, tx, bx1, by0, by1), m;

            n = split_direct(t, plane, n, !whole, x, y, w, h);
            m = n;
            if (write)
                for (uint32_t i = 0; i < n; i++)
                    t->nofetch[i] = covers(t, plane, t->list[i], x, y, w, h);
            else if (t->ndirect == 0)
                m = read_ahead(t, n, tx, bx1, by0, by1, w >= h);
            if (m > 0 && (rc = ensure(t, m, err, errlen)) < 0)
                return rc;
            for (uint32_t i = 0; i < n; i++)
                copy_tile(t, plane, t->list[i], x, y, w, h, buf, write);
            if (t->ndirect > 0 &&
                (rc = direct_io(t, plane, x, y, w, buf, write, err,
                                errlen)) < 0)
                return rc;
        }
    }
    return 0;
}

#define HIT_MAX_TILES 4          /* small regions straddling tile borders */

/* v / tile size along x (shift 0) or y: a shift for the usual power of two
 * (the hit path runs millions of times for one-pixel reads). */
static uint64_t tile_of(uint64_t v, int shift, uint32_t size)
{
    return shift >= 0 ? v >> shift : v / size;
}

/* The hit path for a region inside one tile (most reads): no per-tile
 * bookkeeping, no division. */
static int read_hit_one(struct dpc_tiles *t, int plane, uint64_t x,
                        uint64_t y, uint64_t w, uint64_t h, uint8_t *dst,
                        uint64_t tx, uint64_t ty)
{
    uint32_t tw = t->cfg.tile_w, bpp = t->cfg.bpp[plane];
    int64_t tile = (int64_t)(ty * t->tx_n + tx);
    int32_t e = __atomic_load_n(&t->where[tile], __ATOMIC_ACQUIRE);
    size_t row = (size_t)(w * bpp), stride = (size_t)tw * bpp;
    const uint8_t *src;
    uint32_t seq;

    if (e == NONE)
        return 0;
    seq = __atomic_load_n(&t->ent[e].seq, __ATOMIC_ACQUIRE);
    if ((seq & 1) ||
        __atomic_load_n(&t->ent[e].tile, __ATOMIC_RELAXED) != tile)
        return 0;
    src = entry_mem(t, e) + t->plane_off[plane] +
          ((y - ty * t->cfg.tile_h) * tw + (x - tx * tw)) * bpp;
    if (row == 8 && h == 1 && ((uintptr_t)src & 7) == 0) {
        /* one Q16 pixel: one load, not a call */
        uint64_t v = __atomic_load_n((const uint64_t *)src, __ATOMIC_RELAXED);

        memcpy(dst, &v, 8);
    } else {
        for (uint64_t r = 0; r < h; r++, dst += row, src += stride)
            shared_load(dst, src, row);
    }
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(&t->ent[e].seq, __ATOMIC_RELAXED) != seq)
        return 0;               /* changed under us: take the locked path */
    if (!__atomic_load_n(&t->ent[e].referenced, __ATOMIC_RELAXED))
        __atomic_store_n(&t->ent[e].referenced, 1, __ATOMIC_RELAXED);
    return 1;
}

int dpc_tiles_read_hit(struct dpc_tiles *t, int plane, uint64_t x,
                       uint64_t y, uint64_t w, uint64_t h, uint8_t *dst)
{
    uint32_t tw = t->cfg.tile_w, th = t->cfg.tile_h, bpp, seq[HIT_MAX_TILES];
    uint64_t tx0, ty0, tx1, ty1;
    int32_t ent[HIT_MAX_TILES];
    int n = 0;

    if (__atomic_load_n(&t->failed, __ATOMIC_RELAXED) || plane < 0 ||
        plane >= DPC_TILES_PLANES ||
        t->cfg.bpp[plane] == 0 || w == 0 || h == 0 ||
        x + w > t->cfg.columns || y + h > t->cfg.rows)
        return 0;
    tx0 = tile_of(x, t->tw_shift, tw);
    ty0 = tile_of(y, t->th_shift, th);
    tx1 = tile_of(x + w - 1, t->tw_shift, tw);
    ty1 = tile_of(y + h - 1, t->th_shift, th);
    if (tx0 == tx1 && ty0 == ty1)
        return read_hit_one(t, plane, x, y, w, h, dst, tx0, ty0);
    if ((tx1 - tx0 + 1) * (ty1 - ty0 + 1) > HIT_MAX_TILES)
        return 0;
    bpp = t->cfg.bpp[plane];
    for (uint64_t ty = ty0; ty <= ty1; ty++)
        for (uint64_t tx = tx0; tx <= tx1; tx++, n++) {
            int64_t tile = (int64_t)(ty * t->tx_n + tx);
            uint64_t x0 = tx * tw > x ? tx * tw : x;
            uint64_t x1 = (tx + 1) * tw < x + w ? (tx + 1) * tw : x + w;
            uint64_t y0 = ty * th > y ? ty * th : y;
            uint64_t y1 = (ty + 1) * th < y + h ? (ty + 1) * th : y + h;
            const uint8_t *base;

            ent[n] = __atomic_load_n(&t->where[tile], __ATOMIC_ACQUIRE);
            if (ent[n] == NONE)
                return 0;
            seq[n] = __atomic_load_n(&t->ent[ent[n]].seq, __ATOMIC_ACQUIRE);
            if ((seq[n] & 1) ||
                __atomic_load_n(&t->ent[ent[n]].tile, __ATOMIC_RELAXED) !=
                    tile)
                return 0;
            base = entry_mem(t, ent[n]) + t->plane_off[plane];
            for (uint64_t r = y0; r < y1; r++)
                shared_load(dst + ((r - y) * w + (x0 - x)) * bpp,
                            base + ((r - ty * th) * tw + (x0 - tx * tw)) * bpp,
                            (size_t)((x1 - x0) * bpp));
        }
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    for (int i = 0; i < n; i++)
        if (__atomic_load_n(&t->ent[ent[i]].seq, __ATOMIC_RELAXED) != seq[i])
            return 0;           /* changed under us: take the locked path */
    for (int i = 0; i < n; i++)
        if (!__atomic_load_n(&t->ent[ent[i]].referenced, __ATOMIC_RELAXED))
            __atomic_store_n(&t->ent[ent[i]].referenced, 1, __ATOMIC_RELAXED);
    return 1;
}

struct split_io {
    struct dpc_tiles *t;
    int plane, write;
    uint8_t *buf;
    char *err;
    size_t errlen;
};

static int rect_io(void *arg, const struct dpc_region_rect *r)
{
    struct split_io *a = arg;

    return region_io(a->t, a->plane, r->x, r->y, r->w, r->h,
                     a->buf + r->at * a->t->cfg.bpp[a->plane], a->write,
                     a->err, a->errlen);
}

/* A region inside the image goes as it is; one whose rows run past the
 * right edge (ImageMagick's rule, dpc_region.h) as the rectangles it
 * covers, row by row. */
static int tiles_io_once(struct dpc_tiles *t, int plane, uint64_t x, uint64_t y,
                    uint64_t w, uint64_t h, uint8_t *buf, int write,
                    char *err, size_t errlen)
{
    struct split_io a = { t, plane, write, buf, err, errlen };

    if (t->fatal != DPC_E_OK)
        return dpc_errc(err, errlen, t->fatal, "%s", t->fatal_why);
    if (plane < 0 || plane >= DPC_TILES_PLANES || t->cfg.bpp[plane] == 0)
        return dpc_errc(err, errlen, DPC_E_INVALID, "no plane %d in this "
                        "cache", plane);
    if (w > 0 && h > 0 && x < t->cfg.columns && y < t->cfg.rows &&
        w <= t->cfg.columns - x && h <= t->cfg.rows - y)
        return region_io(t, plane, x, y, w, h, buf, write, err, errlen);
    if (x > INT64_MAX || y > INT64_MAX)
        return dpc_errc(err, errlen, DPC_E_INVALID, "bad region origin");
    if (dpc_region_check(t->cfg.columns, t->cfg.rows, (int64_t)x,
                         (int64_t)y, w, h, err, errlen) < 0)
        return -DPC_E_INVALID;
    return dpc_region_split(t->cfg.columns, x, y, w, h, rect_io, &a);
}

/* The transfer, then the re-copy of what a host lost on the way held. */
static int tiles_io(struct dpc_tiles *t, int plane, uint64_t x, uint64_t y,
                    uint64_t w, uint64_t h, uint8_t *buf, int write,
                    char *err, size_t errlen)
{
    int rc = tiles_io_once(t, plane, x, y, w, h, buf, write, err, errlen);

    if (rc == 0 && t->recopy_due)
        rc = recopy(t, err, errlen);
    return rc;
}

int dpc_tiles_read(struct dpc_tiles *t, int plane, uint64_t x, uint64_t y,
                   uint64_t w, uint64_t h, uint8_t *dst, char *err,
                   size_t errlen)
{
    return tiles_io(t, plane, x, y, w, h, dst, 0, err, errlen);
}

int dpc_tiles_write(struct dpc_tiles *t, int plane, uint64_t x, uint64_t y,
                    uint64_t w, uint64_t h, const uint8_t *src, char *err,
                    size_t errlen)
{
    return tiles_io(t, plane, x, y, w, h, (uint8_t *)src, 1, err, errlen);
}

int dpc_tiles_flush(struct dpc_tiles *t, char *err, size_t errlen)
{
    size_t hosts = t->nv;
    int any = 0, rc;

    for (size_t h = 0; h < hosts; h++)
        t->puts[h].count = 0;
    if (t->fatal != DPC_E_OK)
        return dpc_errc(err, errlen, t->fatal, "%s", t->fatal_why);
    for (uint32_t e = 0; e < t->nent; e++) {
        struct entry *x = &t->ent[e];

        if (x->tile == NONE || !x->dirty)
            continue;
        put_tile(t, t->puts, x->tile, entry_mem(t, (int32_t)e));
        x->dirty = 0;
        t->st.written_back++;
        any = 1;
    }
    if (!any && !t->unacked)
        return 0;
    lock_links(t);
    rc = round_trip(t, t->puts, 1, 1, NULL, err, errlen);
    unlock_links(t);
    if (rc == 0 && t->recopy_due)
        rc = recopy(t, err, errlen);
    return rc;
}

int dpc_tiles_close(struct dpc_tiles *t, char *err, size_t errlen)
{
    int rc = 0, k;

    if (t == NULL)
        return 0;
    if (t->fatal != DPC_E_OK)
        rc = dpc_errc(err, errlen, t->fatal, "%s", t->fatal_why);
    lock_links(t);
    for (size_t h = 0; h < t->nv; h++)
        if (!t->dead[h] &&
            (k = dpc_link_close_cache(t->links[h], t->handles[h],
                                      rc == 0 ? err : NULL, errlen)) < 0 &&
            rc == 0)
            rc = k;
    unlock_links(t);
    free_all(t);
    return rc;
}

void dpc_tiles_get_stats(const struct dpc_tiles *t, struct dpc_tiles_stats *s)
{
    *s = t->st;
}

int dpc_tiles_host_lost(const struct dpc_tiles *t, size_t h, char *why,
                        size_t len)
{
    if (h >= t->cfg.nlinks || !t->dead[h])
        return 0;
    if (why != NULL && len > 0)
        snprintf(why, len, "%s", t->lost_why[h]);
    return 1;
}
