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
 * Where tiles live on the hosts (replicas, lost hosts, rounds of
 * requests, re-copies) is dpc_tiles_hosts.c's: this file only queues
 * write-backs and fetches (dpc_tiles_hosts_put, _get) and runs rounds of
 * them (dpc_tiles_hosts_round), on the locked path only.
 */
#include "dpc_tiles.h"
#include "dpc_tiles-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dpc_region.h"
#include "dpc_util.h"

#define MIN_ENTRIES 8
/* A batch of at least this many tiles, or a region too large for the tile
 * cache, moves its whole tiles that are not resident straight between the
 * caller's buffer and the hosts: bulk transfers would only evict the cache. */
#define DIRECT_MIN_TILES 8

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

static void free_all(struct dpc_tiles *t)
{
    dpc_tiles_hosts_free(t);
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
    free(t->unread);
    free(t->direct);
    free(t);
}

/* n = 2^k: k; else -1. */
static int log2_exact(uint32_t n)
{
    return n != 0 && (n & (n - 1)) == 0 ? __builtin_ctz(n) : -1;
}

/* cfg's tiles across and down the image, and the bytes of one tile's
 * slot (both planes).  Tile sizes are nonzero. */
static void grid(const struct dpc_tiles_cfg *c, uint64_t *tx_n,
                 uint64_t *ty_n, uint64_t *slot)
{
    *tx_n = (c->columns + c->tile_w - 1) / c->tile_w;
    *ty_n = (c->rows + c->tile_h - 1) / c->tile_h;
    *slot = (uint64_t)c->tile_w * c->tile_h * (c->bpp[0] + c->bpp[1]);
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
    grid(c, &t->tx_n, &t->ty_n, &slot);
    t->tw_shift = log2_exact(c->tile_w);
    t->th_shift = log2_exact(c->tile_h);
    t->ntiles = t->tx_n * t->ty_n;
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

struct dpc_tiles *dpc_tiles_open(const struct dpc_tiles_cfg *cfg,
                                 enum dpc_errcode *code, size_t *host,
                                 char *err, size_t errlen)
{
    struct dpc_tiles *t = calloc(1, sizeof(*t));
    size_t failed = cfg->nlinks;
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
    t->unread = calloc((t->ntiles + 7) / 8, 1);
    t->list = malloc(t->nent * sizeof(*t->list));
    t->direct = malloc(t->nent * sizeof(*t->direct));
    t->nofetch = malloc(t->nent);
    t->zero = malloc(t->nent * sizeof(*t->zero));
    t->admitted = malloc(t->nent * sizeof(*t->admitted));
    t->fetched = malloc(t->nent * sizeof(*t->fetched));
    if (!t->links || !t->handles || !t->ent || !t->mem || !t->where ||
        !t->written || !t->unread || !t->list || !t->direct ||
        !t->nofetch || !t->zero || !t->admitted || !t->fetched ||
        dpc_tiles_hosts_alloc(t) < 0) {
        rc = dpc_errc(err, errlen, DPC_E_NOMEM,
                      "out of memory for a %u-tile cache", t->nent);
        free_all(t);
        goto err;
    }
    memcpy(t->links, cfg->links, cfg->nlinks * sizeof(*t->links));
    t->cfg.links = t->links;
    if (dpc_tiles_hosts_lock_order(t) < 0) {
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
    dpc_tiles_hosts_lock(t);
    if ((rc = dpc_tiles_hosts_open(t, &failed, err, errlen)) < 0) {
        dpc_tiles_hosts_unlock(t);
        free_all(t);
        goto err;
    }
    dpc_tiles_hosts_unlock(t);
    return t;
err:
    if (code != NULL)
        *code = dpc_errcode_of(rc);
    if (host != NULL)
        *host = failed;
    return NULL;
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
 * zero-filled, or queued for fetching.  keep: it is read ahead, kept
 * through one victim search as if hit, so it is there when the walk
 * reaches it. */
static void admit(struct dpc_tiles *t, uint32_t i, int keep, int *flush,
                  int *fetch)
{
    int64_t tile = t->list[i];
    int32_t e = victim(t);

    t->st.misses++;
    seq_begin(t, e);            /* ends once its bytes are in (ensure) */
    t->admitted[t->nadmitted++] = e;
    if (t->ent[e].tile != NONE) {
        int64_t old = t->ent[e].tile;

        if (t->ent[e].dirty) {
            dpc_tiles_hosts_put(t, t->puts, old, entry_mem(t, e));
            set_unread(t, (uint64_t)old, 1);
            t->st.written_back++;
            *flush = 1;
        }
        set_where(t, old, NONE);
    }
    set_tile(t, e, tile);
    t->ent[e].dirty = 0;
    t->ent[e].stamp = t->stamp;
    __atomic_store_n(&t->ent[e].referenced, (uint8_t)keep, __ATOMIC_RELAXED);
    set_where(t, tile, e);
    touch(t, e);
    t->ent[e].pending = t->nofetch[i];
    if (!is_written(t, (uint64_t)tile)) {
        if (!t->nofetch[i])         /* a write covering it needs no zeros */
            t->zero[t->nzero++] = e;    /* its old tile may still be out */
        t->st.zero_filled++;
    } else if (!t->nofetch[i]) {
        dpc_tiles_hosts_get(t, t->gets, tile,
                            t->stage + (size_t)t->nfetched * t->slot_bytes);
        set_unread(t, (uint64_t)tile, 0);
        t->fetched[t->nfetched++] = e;
        t->st.fetched++;
        *fetch = 1;
    }
}

/* Zeroes the entries this batch admitted for tiles never written. */
static void zero_fill(struct dpc_tiles *t)
{
    for (uint32_t i = 0; i < t->nzero; i++)
        shared_zero(entry_mem(t, t->zero[i]), t->slot_bytes);
}

/* One pipelined round: the fetches first (each host answers them before
 * it takes the write-backs queued behind, so a second copy's writes do
 * not delay them), then the write-backs, then every reply; then the
 * zero-fills (the victims' bytes have been sent by then).  A round of
 * write-backs alone does not wait (a failed write-back breaks the link,
 * see dpc_link).  Links held. */
static int exchange(struct dpc_tiles *t, int flush, int fetch, char *err,
                    size_t errlen)
{
    int rc;

    if (fetch)
        rc = dpc_tiles_hosts_round(t, t->gets, 0, 1, NULL,
                                   flush ? t->puts : NULL, err, errlen);
    else
        rc = dpc_tiles_hosts_round(t, t->puts, 1, 0, NULL, NULL, err,
                                   errlen);
    if (rc < 0)
        return rc;
    zero_fill(t);
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
 * pipelined round of write-backs and fetches.  n <= nent; the tiles from
 * keep_from on are read ahead, kept (admit).  */
static int ensure(struct dpc_tiles *t, uint32_t n, uint32_t keep_from,
                  char *err, size_t errlen)
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
            admit(t, i, i >= keep_from, &flush, &fetch);
    if (!flush && !fetch) {
        zero_fill(t);
        rc = 0;
    } else {
        dpc_tiles_hosts_lock(t);
        rc = exchange(t, flush, fetch, err, errlen);
        dpc_tiles_hosts_unlock(t);
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

/* Tile `tile`'s part of region (x, y, w, h): columns [x0, x1) and rows
 * [y0, y1) of the image; ox, oy: the tile's origin. */
struct part {
    uint64_t x0, x1, y0, y1, ox, oy;
};

static struct part part_of(const struct dpc_tiles *t, int64_t tile,
                           uint64_t x, uint64_t y, uint64_t w, uint64_t h)
{
    uint32_t tw = t->cfg.tile_w, th = t->cfg.tile_h;
    uint64_t ox = (uint64_t)tile % t->tx_n * tw;
    uint64_t oy = (uint64_t)tile / t->tx_n * th;

    return (struct part){ .x0 = ox > x ? ox : x,
                          .x1 = ox + tw < x + w ? ox + tw : x + w,
                          .y0 = oy > y ? oy : y,
                          .y1 = oy + th < y + h ? oy + th : y + h,
                          .ox = ox, .oy = oy };
}

/* Copies between buf (the region) and tile `tile`'s part of it. */
static void copy_tile(struct dpc_tiles *t, int plane, int64_t tile,
                      uint64_t x, uint64_t y, uint64_t w, uint64_t h,
                      uint8_t *buf, int write)
{
    uint32_t tw = t->cfg.tile_w, bpp = t->cfg.bpp[plane];
    struct part a = part_of(t, tile, x, y, w, h);
    int32_t e = t->where[tile];
    uint8_t *base = entry_mem(t, e) + t->plane_off[plane];
    size_t run = (size_t)(a.x1 - a.x0) * bpp;

    if (write && !t->ent[e].pending)
        seq_begin(t, e);
    for (uint64_t r = a.y0; r < a.y1; r++) {
        uint8_t *tp = base + ((r - a.oy) * tw + (a.x0 - a.ox)) * bpp;
        uint8_t *bp = buf + ((r - y) * w + (a.x0 - x)) * bpp;

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

/* The scan this fetch continues (it asks for the band where the scan's
 * last read-ahead ended, with the same span), or a new one in place of
 * the oldest. */
static struct dpc_tiles_scan *scan_of(struct dpc_tiles *t, int rowwise,
                                      uint64_t lo, uint64_t hi,
                                      uint64_t band, int *continued)
{
    struct dpc_tiles_scan *s;

    for (uint32_t i = 0; i < DPC_TILES_SCANS; i++) {
        s = &t->scan[i];
        if (s->depth != 0 && s->rowwise == rowwise && s->lo == lo &&
            s->hi == hi && s->next == band) {
            *continued = 1;
            return s;
        }
    }
    *continued = 0;
    s = &t->scan[t->scan_victim++ % DPC_TILES_SCANS];
    *s = (struct dpc_tiles_scan){ .lo = lo, .hi = hi, .rowwise = rowwise };
    return s;
}

/* The tiles around band [tx0,tx1] x [ty0,ty1], DPC_TILES_NEAR deep, that
 * were sent to the hosts and not read since, added to a fetch that starts
 * no scan (the small reads of a resampling walking the image along a
 * slant, where the next band down is seldom the only tile needed next):
 * the tiles ahead of such a walk come in the same round, those behind it,
 * read already, do not.  Leaves out the band read_ahead() adds (the next
 * one along the scan's direction), and stops at half the cache. */
static uint32_t add_near(struct dpc_tiles *t, uint32_t n, uint64_t tx0,
                         uint64_t tx1, uint64_t ty0, uint64_t ty1,
                         int rowwise)
{
    uint64_t x0 = tx0 >= DPC_TILES_NEAR ? tx0 - DPC_TILES_NEAR : 0;
    uint64_t y0 = ty0 >= DPC_TILES_NEAR ? ty0 - DPC_TILES_NEAR : 0;
    uint64_t x1 = tx1 + DPC_TILES_NEAR < t->tx_n ? tx1 + DPC_TILES_NEAR
                                                 : t->tx_n - 1;
    uint64_t y1 = ty1 + DPC_TILES_NEAR < t->ty_n ? ty1 + DPC_TILES_NEAR
                                                 : t->ty_n - 1;
    uint32_t cap = t->nent / 2;

    for (uint64_t ty = y0; ty <= y1; ty++)
        for (uint64_t tx = x0; tx <= x1 && n < cap; tx++) {
            uint64_t tile = ty * t->tx_n + tx;
            int in_band = tx >= tx0 && tx <= tx1 && ty >= ty0 && ty <= ty1;
            int next_band = rowwise ? ty == ty1 + 1 && tx >= tx0 && tx <= tx1
                                    : tx == tx1 + 1 && ty >= ty0 && ty <= ty1;

            if (!in_band && !next_band && t->where[tile] == NONE &&
                is_written(t, tile) && is_unread(t, tile)) {
                t->nofetch[n] = 0;
                t->list[n++] = (int64_t)tile;
            }
        }
    return n;
}

/* Read-ahead, when a fetch is due anyway: the next band in the direction
 * of access, and twice as many bands each time a scan comes back for the
 * band its last read-ahead ended before (a thread walking down a column
 * of tiles pixel by pixel, as MagickCore reads a column reaching past the
 * image's edge), up to DPC_TILES_AHEAD_MAX bands and half the cache less
 * a band: two threads' scans leave a band free for the tiles they pass,
 * and do not evict each other's read-ahead.  So a scan costs a few round
 * trips, not one for every other tile. */
static uint32_t read_ahead(struct dpc_tiles *t, uint32_t n, uint64_t tx0,
                           uint64_t tx1, uint64_t ty0, uint64_t ty1,
                           int rowwise, int near)
{
    uint64_t lo = rowwise ? tx0 : ty0, hi = rowwise ? tx1 : ty1;
    uint64_t first = rowwise ? ty0 : tx0, last = rowwise ? ty1 : tx1;
    uint64_t end = rowwise ? t->ty_n : t->tx_n, span = hi - lo + 1;
    uint64_t room, bands, half;
    struct dpc_tiles_scan *s;
    uint32_t need = 0;
    int continued;

    for (uint32_t i = 0; i < n; i++)
        need |= t->where[t->list[i]] == NONE &&
                is_written(t, (uint64_t)t->list[i]);
    if (!need)
        return n;
    if (last + 1 >= end)
        return near ? add_near(t, n, tx0, tx1, ty0, ty1, rowwise) : n;
    s = scan_of(t, rowwise, lo, hi, first, &continued);
    if (!continued && near)
        n = add_near(t, n, tx0, tx1, ty0, ty1, rowwise);
    half = t->nent > span ? (t->nent - span) / 2 : 0;
    room = half > n ? (half - n) / span : 0;
    bands = continued ? (uint64_t)s->depth * 2 : 1;
    if (bands > DPC_TILES_AHEAD_MAX)
        bands = DPC_TILES_AHEAD_MAX;
    if (bands > end - last - 1)         /* last + 1 < end: checked above */
        bands = end - last - 1;
    if (bands > room)
        bands = room;
    if (bands == 0)
        return n;
    s->depth = (uint32_t)bands;
    s->next = last + 1 + bands;
    if (rowwise)
        return add_tiles(t, n, tx0, tx1, ty1 + 1, ty1 + bands);
    return add_tiles(t, n, tx1 + 1, tx1 + bands, ty0, ty1);
}

/* 1 when the region's part of tile in buf is all zero bytes. */
static int zero_part(const struct dpc_tiles *t, int plane, int64_t tile,
                     uint64_t x, uint64_t y, uint64_t w, uint64_t h,
                     const uint8_t *buf)
{
    uint32_t bpp = t->cfg.bpp[plane];
    struct part a = part_of(t, tile, x, y, w, h);
    size_t run = (size_t)(a.x1 - a.x0) * bpp;

    for (uint64_t r = a.y0; r < a.y1; r++) {
        const uint8_t *p = buf + ((r - y) * w + (a.x0 - x)) * bpp;

        if (p[0] != 0 || memcmp(p, p + 1, run - 1) != 0)
            return 0;
    }
    return 1;
}

/* Drops from a write's n tiles those never written that it writes zeros
 * to: they stay zero without being cached, sent or fetched later (every
 * image ImageMagick reads is first cleared row by row, ResetImagePixels).
 * Returns how many stay. */
static uint32_t drop_zero_writes(struct dpc_tiles *t, int plane, uint32_t n,
                                 uint64_t x, uint64_t y, uint64_t w,
                                 uint64_t h, const uint8_t *buf)
{
    uint32_t k = 0;

    for (uint32_t i = 0; i < n; i++) {
        int64_t tile = t->list[i];

        if (t->where[tile] != NONE || is_written(t, (uint64_t)tile) ||
            !zero_part(t, plane, tile, x, y, w, h, buf))
            t->list[k++] = tile;
    }
    return k;
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
            dpc_tiles_hosts_put(t, b, tile, p);
        } else {
            dpc_tiles_hosts_get(t, b, tile, p);
        }
        set_unread(t, (uint64_t)tile, write);
        t->st.direct++;
        any = 1;
    }
    if (!any)
        return 0;
    dpc_tiles_hosts_lock(t);
    rc = dpc_tiles_hosts_round(t, b, write, !write, &rows, NULL, err,
                               errlen);
    dpc_tiles_hosts_unlock(t);
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
    /* Room for three lines of tiles across the image (the lines two
     * threads walk, and the tiles ahead of them): only then does a read
     * fetch the tiles around it and keep what it reads ahead. */
    int roomy = t->nent >= DPC_TILES_WALK_LINES * (t->tx_n + t->ty_n);

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

            if (write)
                n = drop_zero_writes(t, plane, n, x, y, w, h, buf);
            n = split_direct(t, plane, n, !whole, x, y, w, h);
            m = n;
            if (write)
                for (uint32_t i = 0; i < n; i++)
                    t->nofetch[i] = covers(t, plane, t->list[i], x, y, w, h);
            else if (t->ndirect == 0)
                m = read_ahead(t, n, tx, bx1, by0, by1, w >= h,
                               roomy && w > 1 && w >= h && bx1 - tx < 2 &&
                                   by1 - by0 < 2);
            if (m > 0 && (rc = ensure(t, m, roomy ? n : m, err,
                                      errlen)) < 0)
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

    if (rc == 0 && dpc_tiles_hosts_recopy_due(t))
        rc = dpc_tiles_hosts_recopy(t, err, errlen);
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
        dpc_tiles_hosts_put(t, t->puts, x->tile,
                            entry_mem(t, (int32_t)e));
        set_unread(t, (uint64_t)x->tile, 1);
        x->dirty = 0;
        t->st.written_back++;
        any = 1;
    }
    if (!any && !t->unacked)
        return 0;
    dpc_tiles_hosts_lock(t);
    rc = dpc_tiles_hosts_round(t, t->puts, 1, 1, NULL, NULL, err, errlen);
    dpc_tiles_hosts_unlock(t);
    if (rc == 0 && dpc_tiles_hosts_recopy_due(t))
        rc = dpc_tiles_hosts_recopy(t, err, errlen);
    return rc;
}

int dpc_tiles_close(struct dpc_tiles *t, char *err, size_t errlen)
{
    int rc;

    if (t == NULL)
        return 0;
    rc = dpc_tiles_hosts_close(t, err, errlen);
    free_all(t);
    return rc;
}

uint64_t dpc_tiles_walk_bytes(const struct dpc_tiles_cfg *cfg)
{
    uint64_t tx_n, ty_n, slot;

    if (cfg->tile_w == 0 || cfg->tile_h == 0)
        return 0;
    grid(cfg, &tx_n, &ty_n, &slot);
    return DPC_TILES_WALK_LINES * (tx_n + ty_n) * slot;
}

uint64_t dpc_tiles_cache_bytes(const struct dpc_tiles *t)
{
    return (uint64_t)t->nent * t->slot_bytes;
}

void dpc_tiles_get_stats(const struct dpc_tiles *t, struct dpc_tiles_stats *s)
{
    *s = t->st;
}
