/*
 * dpc_tiles_hosts: where dpc_tiles keeps its tiles (dpc_tiles.h): copy k
 * of tile t on host (t + k) % n in slot (t / n) * copies + k, until a
 * re-copy moves it; batches of requests per host; rounds of them that
 * survive a host's failure; the re-copy of what a lost host held.
 *
 * A host is lost at its first failed request and none of its caches is
 * used again by this cache, so no copy it held can be read stale; every
 * write goes to all the live copies at once, so any of them holds the
 * tile.  The caches on the hosts are "virtual hosts": the n opened with
 * the tile cache, then spare caches opened on live hosts to take
 * re-copies; a lost host loses all of its caches.  With cfg.rejoin, a lost
 * host is tried again (a new link to its address) at the next re-copy at
 * least DPC_TILES_REJOIN_SECONDS after the loss, backing off while it
 * stays away; once back it takes re-copies in fresh spare caches like any
 * live host.
 *
 * Threading: the caller's lock (dpc_tiles-internal.h); the lock-free hit
 * path of dpc_tiles never reaches here.
 */
#include "dpc_tiles-internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int by_address(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)*(struct dpc_link *const *)a;
    uintptr_t y = (uintptr_t)*(struct dpc_link *const *)b;

    return x < y ? -1 : x > y;
}

/* Links may be shared with other caches (dpc_pool): hold every distinct one
 * of ours, always in address order so two caches cannot deadlock. */
void dpc_tiles_hosts_lock(struct dpc_tiles *t)
{
    for (size_t i = 0; i < t->norder; i++)
        dpc_link_lock(t->order[i]);
}

void dpc_tiles_hosts_unlock(struct dpc_tiles *t)
{
    for (size_t i = t->norder; i-- > 0;)
        dpc_link_unlock(t->order[i]);
}

int dpc_tiles_hosts_lock_order(struct dpc_tiles *t)
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

int dpc_tiles_hosts_alloc(struct dpc_tiles *t)
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
    t->host_link = malloc(n * sizeof(*t->host_link));
    t->host_dead = calloc(n, 1);
    t->rejoin_at = calloc(n, sizeof(*t->rejoin_at));
    t->rejoin_tries = calloc(n, sizeof(*t->rejoin_tries));
    if (t->puts == NULL || t->gets == NULL || t->dead == NULL ||
        t->round_failed == NULL || t->phys == NULL || t->lost_code == NULL ||
        t->lost_why == NULL || t->retry_tile == NULL || t->retry_ptr == NULL ||
        t->host_link == NULL || t->host_dead == NULL ||
        t->rejoin_at == NULL || t->rejoin_tries == NULL)
        return -1;
    for (size_t h = 0; h < n; h++) {
        t->phys[h] = h;
        t->host_link[h] = t->cfg.links[h];
        if (alloc_batch(t, h) < 0)
            return -1;
    }
    t->nv = n;
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
    t->host_dead[p] = 1;
    t->rejoin_tries[p] = 0;
    if (t->copies > 1 && t->cfg.rejoin != NULL) {
        t->rejoin_at[p] = dpc_now() + DPC_TILES_REJOIN_SECONDS;
        if (t->rejoin_next == 0 || t->rejoin_at[p] < t->rejoin_next)
            t->rejoin_next = t->rejoin_at[p];
    }
}

/* Lost host p's next rejoin try, one more failed try on: a second on,
 * doubling up to DPC_TILES_REJOIN_MAX_SECONDS; none after
 * DPC_TILES_REJOIN_TRIES failed tries in a row. */
static void rejoin_backoff(struct dpc_tiles *t, size_t p)
{
    double wait = DPC_TILES_REJOIN_SECONDS;

    for (uint32_t i = 0; i < t->rejoin_tries[p] &&
         wait < DPC_TILES_REJOIN_MAX_SECONDS; i++)
        wait *= 2;
    if (wait > DPC_TILES_REJOIN_MAX_SECONDS)
        wait = DPC_TILES_REJOIN_MAX_SECONDS;
    t->rejoin_tries[p]++;
    t->rejoin_at[p] = dpc_now() + wait;
    if (t->rejoin_tries[p] < DPC_TILES_REJOIN_TRIES &&
        (t->rejoin_next == 0 || t->rejoin_at[p] < t->rejoin_next))
        t->rejoin_next = t->rejoin_at[p];
}

/* Host p, reached again but without a cache of ours, could not open one
 * (draining?): not lost again (it held nothing of ours), only tried again
 * later, a failed try. */
static void rejoin_later(struct dpc_tiles *t, size_t p)
{
    t->host_dead[p] = 1;
    rejoin_backoff(t, p);
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

int dpc_tiles_hosts_open(struct dpc_tiles *t, size_t *failed, char *err,
                         size_t errlen)
{
    size_t n = t->cfg.nlinks;
    char why[DPC_ERRLEN];

    for (size_t h = 0; h < n; h++) {
        uint64_t slots = host_slots(t, h);

        if (slots > t->st.slots_per_host_max)
            t->st.slots_per_host_max = slots;
        int rc = dpc_link_open(t->links[h], t->slot_bytes, slots,
                               &t->handles[h], why, sizeof(why));

        if (rc < 0 && rc != -DPC_E_NO_ROOM && rc != -DPC_E_DRAINING &&
            t->copies > 1) {
            lose_host(t, h, rc, why);   /* the other copies will do */
            continue;
        }
        if (rc < 0) {   /* no room, draining: the caller may go elsewhere */
            *failed = h;
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

int dpc_tiles_hosts_close(struct dpc_tiles *t, char *err, size_t errlen)
{
    int rc = 0, k;

    if (t->fatal != DPC_E_OK)
        rc = dpc_errc(err, errlen, t->fatal, "%s", t->fatal_why);
    dpc_tiles_hosts_lock(t);
    for (size_t h = 0; h < t->nv; h++)
        if (!t->dead[h] &&
            (k = dpc_link_close_cache(t->links[h], t->handles[h],
                                      rc == 0 ? err : NULL, errlen)) < 0 &&
            rc == 0)
            rc = k;
    dpc_tiles_hosts_unlock(t);
    return rc;
}

void dpc_tiles_hosts_free(struct dpc_tiles *t)
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
    for (size_t i = 0; i < t->nown; i++)
        t->cfg.unref(t->cfg.rejoin_arg, t->own[i]);
    free(t->own);
    free(t->host_link);
    free(t->host_dead);
    free(t->rejoin_at);
    free(t->rejoin_tries);
    free(t->puts);
    free(t->gets);
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
void dpc_tiles_hosts_put(struct dpc_tiles *t, struct batch *b, int64_t tile,
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
void dpc_tiles_hosts_get(struct dpc_tiles *t, struct batch *b, int64_t tile,
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
 * With keep, the replies of keep[h].owed requests sent last on host h's
 * link (write-backs behind the GETs) are left for a later wait.  A host
 * whose replies fail is lost. */
static void wait_all(struct dpc_tiles *t, const struct batch *keep)
{
    char why[DPC_ERRLEN];
    int rc;

    for (size_t h = 0; h < t->nv; h++)
        if ((rc = dpc_link_wait_keep(t->links[h],
                                     keep != NULL ? keep[h].owed : 0, why,
                                     sizeof(why))) < 0 &&
            !t->dead[h])
            lose_host(t, h, rc, why);
    t->unacked = keep != NULL;
    t->st.round_trips++;
}

/* Sends the write-backs b behind a round's GETs, each host's count of
 * requests in b[h].owed (hosts sharing a link: all of that link's). */
static void send_behind(struct dpc_tiles *t, struct batch *b)
{
    for (size_t h = 0; h < t->nv; h++)
        b[h].owed = dpc_link_queued(t->links[h]);
    send_batches(t, b, 1, NULL);
    for (size_t h = 0; h < t->nv; h++)
        b[h].owed = dpc_link_queued(t->links[h]) - b[h].owed;
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
        dpc_tiles_hosts_get(t, b, t->retry_tile[i], t->retry_ptr[i]);
    t->st.failovers += m;
    return m;
}

/* One round: b's PUTs (put) or GETs, then every reply unless it is a PUT
 * round that need not wait (a write-back's replies are collected by the
 * next wait: the client copies the next band while the server takes this
 * one).  The GETs a host failed go again to another copy, until all are
 * in.  0, or a negative dpc_errcode when a tile has no copy left.  Links
 * held. */
int dpc_tiles_hosts_round(struct dpc_tiles *t, struct batch *b, int put,
                          int wait, const struct dpc_link_rows *rows,
                          struct batch *then_put, char *err, size_t errlen)
{
    uint64_t lost = t->st.hosts_lost;
    int rc;

    for (;;) {
        memset(t->round_failed, 0, t->nv);
        send_batches(t, b, put, rows);
        if (then_put != NULL)
            send_behind(t, then_put);
        if (!wait) {
            t->unacked = 1;
            break;
        }
        wait_all(t, then_put);
        then_put = NULL;        /* a failover's GETs queue behind them */
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

        if (t->host_dead[p])
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

/* Room for twice as many virtual hosts (their batches are allocated as
 * they are used).  -1 when out of memory. */
static int grow_virtual(struct dpc_tiles *t)
{
    size_t cap = t->nv_cap * 2, old = t->nv_cap;
    void *p;

#define GROW(field)                                                       \
    do {                                                                  \
        if ((p = realloc(t->field, cap * sizeof(*t->field))) == NULL)     \
            return -1;                                                    \
        t->field = p;                                                     \
        memset(t->field + old, 0, (cap - old) * sizeof(*t->field));       \
    } while (0)
    GROW(links);
    GROW(handles);
    GROW(puts);
    GROW(gets);
    GROW(dead);
    GROW(round_failed);
    GROW(phys);
#undef GROW
    t->cfg.links = t->links;
    t->nv_cap = cap;
    return 0;
}

/* A spare cache of slots on host p, as a new virtual host *vp.  0, or -1
 * (no room there, or p lost meanwhile: those copies stay lost). */
static int open_spare(struct dpc_tiles *t, size_t p, uint64_t slots,
                      size_t *vp)
{
    char why[DPC_ERRLEN];
    size_t v = t->nv, u;
    int rc;

    if ((v == t->nv_cap && grow_virtual(t) < 0) ||
        (t->puts[v].slots == NULL && alloc_batch(t, v) < 0))
        return -1;
    rc = dpc_link_open(t->host_link[p], t->slot_bytes, slots,
                       &t->handles[v], why, sizeof(why));
    if (rc < 0) {
        for (u = 0; u < t->nv && (t->dead[u] || t->phys[u] != p); u++)
            ;
        if (u == t->nv)         /* back, no cache of ours yet (draining?) */
            rejoin_later(t, p);
        else if (rc != -DPC_E_NO_ROOM)
            lose_host(t, p, rc, why);
        return -1;
    }
    t->links[v] = t->host_link[p];
    t->rejoin_tries[p] = 0;             /* a cache there: back for good */
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
            dpc_tiles_hosts_get(t, t->gets, moves[i].tile,
                                t->restage + (size_t)f++ * t->slot_bytes);
    if (f > 0 && (rc = dpc_tiles_hosts_round(t, t->gets, 0, 1, NULL, NULL,
                                             err, errlen)) < 0)
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
    if (f > 0 && (rc = dpc_tiles_hosts_round(t, t->puts, 1, 1, NULL, NULL,
                                             err, errlen)) < 0)
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

/* Adds l (a rejoined host's link) to the lock order.  -1 when out of
 * memory.  Links not held. */
static int add_to_order(struct dpc_tiles *t, struct dpc_link *l)
{
    struct dpc_link **order, **own;
    size_t i;

    for (i = 0; i < t->norder && t->order[i] != l; i++)
        ;
    own = realloc(t->own, (t->nown + 1) * sizeof(*own));
    if (own == NULL)
        return -1;
    t->own = own;
    if (i == t->norder) {
        order = realloc(t->order, (t->norder + 1) * sizeof(*order));
        if (order == NULL)
            return -1;
        order[t->norder++] = l;
        qsort(order, t->norder, sizeof(*order), by_address);
        t->order = order;
    }
    t->own[t->nown++] = l;
    return 0;
}

int dpc_tiles_hosts_recopy_due(const struct dpc_tiles *t)
{
    return t->recopy_due || (t->rejoin_next != 0 && t->fatal == DPC_E_OK &&
                             dpc_now() >= t->rejoin_next);
}

/* Tries again each lost host whose turn it is (cfg.rejoin): one that
 * answers is live again, with no cache of ours yet, and a re-copy is due
 * (the copies its loss left unplaced go there).  Links not held. */
static void rejoin_hosts(struct dpc_tiles *t)
{
    char why[DPC_ERRLEN];
    double now = dpc_now();
    struct dpc_link *l;

    t->rejoin_next = 0;
    for (size_t p = 0; p < t->cfg.nlinks; p++) {
        if (!t->host_dead[p] || t->rejoin_tries[p] >= DPC_TILES_REJOIN_TRIES)
            continue;
        if (now >= t->rejoin_at[p]) {
            l = t->cfg.rejoin(t->cfg.rejoin_arg, p, why, sizeof(why));
            if (l != NULL && add_to_order(t, l) < 0) {
                t->cfg.unref(t->cfg.rejoin_arg, l);
                l = NULL;
            }
            if (l != NULL) {
                t->host_link[p] = l;
                t->host_dead[p] = 0;
                t->st.rejoined++;
                t->recopy_due = 1;
            } else {
                rejoin_backoff(t, p);
            }
            continue;
        }
        if (t->rejoin_next == 0 || t->rejoin_at[p] < t->rejoin_next)
            t->rejoin_next = t->rejoin_at[p];
    }
}

/* After hosts were lost: each copy they held is made again on another
 * live host, in a spare cache opened there, so that a later loss is
 * survived too (as long as there are enough hosts).  Runs between the
 * caller's calls, links not held; a failure here is the cache's only when
 * a tile has no copy left. */
int dpc_tiles_hosts_recopy(struct dpc_tiles *t, char *err, size_t errlen)
{
    size_t n = t->cfg.nlinks, *spare = NULL;
    uint64_t *count = NULL;
    uint32_t *next = NULL;
    struct move *moves = NULL;
    int64_t plan[DPC_TILES_MAX_COPIES];
    double t0;
    int rc = 0;

    if (t->rejoin_next != 0 && dpc_now() >= t->rejoin_next)
        rejoin_hosts(t);
    if (!t->recopy_due)
        return 0;
    t0 = dpc_now();             /* the copies' time, not the rejoin's */
    if (make_loc(t) < 0)
        return 0;               /* no memory to track moves: fewer copies */
    spare = calloc(n, sizeof(*spare));
    count = calloc(n, sizeof(*count));
    next = calloc(n, sizeof(*next));
    moves = malloc(t->nent * sizeof(*moves));
    if (spare == NULL || count == NULL || next == NULL || moves == NULL)
        goto out;
    dpc_tiles_hosts_lock(t);
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
    dpc_tiles_hosts_unlock(t);
    t->st.recopy_seconds += dpc_now() - t0;
out:
    free(spare);
    free(count);
    free(next);
    free(moves);
    return rc;
}

/* 1 when src and dst place every tile alike: one geometry on the same
 * links, all alive, no spare cache opened and no copy moved. */
static int same_places(const struct dpc_tiles *dst,
                       const struct dpc_tiles *src)
{
    const struct dpc_tiles_cfg *a = &dst->cfg, *b = &src->cfg;

    if (a->columns != b->columns || a->rows != b->rows ||
        a->bpp[0] != b->bpp[0] || a->bpp[1] != b->bpp[1] ||
        a->tile_w != b->tile_w || a->tile_h != b->tile_h ||
        a->nlinks != b->nlinks || dst->copies != src->copies ||
        dst->slot_bytes != src->slot_bytes || dst->nv != a->nlinks ||
        src->nv != b->nlinks || dst->loc_host != NULL ||
        src->loc_host != NULL || dst->fatal != DPC_E_OK ||
        src->fatal != DPC_E_OK)
        return 0;
    for (size_t h = 0; h < a->nlinks; h++)
        if (dst->links[h] != src->links[h] || dst->dead[h] || src->dead[h])
            return 0;
    return 1;
}

int dpc_tiles_clone(struct dpc_tiles *dst, struct dpc_tiles *src, char *err,
                    size_t errlen)
{
    size_t bitmap = (size_t)((dst->ntiles + 7) / 8);
    int rc = 0;

    if (!same_places(dst, src) || dst->st.misses != 0 ||
        dst->st.direct != 0)
        return dpc_errc(err, errlen, DPC_E_REFUSED, "the caches differ in "
                        "layout or hosts, or the copy was written to");
    if ((rc = dpc_tiles_flush(src, err, errlen)) < 0)
        return rc;
    if (!same_places(dst, src))     /* the flush lost a host */
        return dpc_errc(err, errlen, DPC_E_REFUSED, "a host was lost");
    dpc_tiles_hosts_lock(src);
    for (size_t h = 0; h < src->cfg.nlinks && rc == 0; h++)
        rc = dpc_link_copy(src->links[h], src->handles[h], dst->handles[h],
                           err, errlen);
    /* every host copies at once; then the replies */
    for (size_t h = 0; h < src->cfg.nlinks; h++) {
        int w = dpc_link_wait(src->links[h], err, errlen);

        rc = rc < 0 ? rc : w;
    }
    dpc_tiles_hosts_unlock(src);
    if (rc < 0)
        return rc;
    memcpy(dst->written, src->written, bitmap);
    dst->st.cloned++;
    return 0;
}

int dpc_tiles_host_lost(const struct dpc_tiles *t, size_t h, char *why,
                        size_t len)
{
    if (h >= t->cfg.nlinks || !t->host_dead[h])
        return 0;
    if (why != NULL && len > 0)
        snprintf(why, len, "%s", t->lost_why[h]);
    return 1;
}
