/*
 * dpc_shm: see dpc_shm.h.  Segments live in one list; the counts are small
 * (bounded by DPC_SHM_MAX_SEGMENTS) and every operation is one request from
 * a local client, so a linear scan keeps this simple.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dpc_shm.h"
#include "dpc_util.h"

#define MAX_TTL_MS (366ull * 24 * 3600 * 1000)
#define SEALS_SIZE (F_SEAL_SHRINK | F_SEAL_GROW)
#define PAGE 4096u

struct seg {
    struct seg *next;
    uint64_t id, size;
    uint64_t charge;                /* size in whole pages */
    int fd;
    uid_t uid;
    pid_t pid;
    uint64_t conn;                  /* owning connection; 0 once committed */
    int named, committed;
    int pooled;                     /* freed, kept for its uid's next ALLOC */
    double pooled_at;
    char name[DPC_LP_NAME_MAX + 1];
    uint64_t ttl_ms;
    double expires;                 /* 0: never */
};

struct dpc_shm {
    struct seg *head;
    struct dpc_shm_limits lim;
    size_t max_fds;                 /* segments at once (descriptors) */
    uint64_t budget, used, peak, refused, next_id;
    uint64_t pooled, pool_cap, reused;  /* bytes kept, their cap, reuses */
    size_t nsegs, nnames, npooled;
};

struct dpc_shm *dpc_shm_new(uint64_t budget)
{
    struct dpc_shm *m = calloc(1, sizeof(*m));

    if (m != NULL) {
        m->budget = budget;
        m->pool_cap = budget / 8;
        m->next_id = 1;
        dpc_shm_set_limits(m, &(struct dpc_shm_limits){ 0 });
        m->max_fds = DPC_SHM_MAX_SEGMENTS;
    }
    return m;
}

static size_t at_most(size_t v, size_t deflt, size_t cap)
{
    return v == 0 ? deflt : v < cap ? v : cap;
}

void dpc_shm_set_limits(struct dpc_shm *m, const struct dpc_shm_limits *lim)
{
    m->lim.uid_bytes = lim->uid_bytes != 0 ? lim->uid_bytes : m->budget;
    m->lim.uid_segments = at_most(lim->uid_segments, DPC_SHM_MAX_SEGMENTS,
                                  DPC_SHM_MAX_SEGMENTS);
    m->lim.uid_names = at_most(lim->uid_names, DPC_SHM_MAX_NAMES_PER_UID,
                               DPC_SHM_MAX_NAMES);
    m->lim.name_lifetime_ms = lim->name_lifetime_ms;
}

void dpc_shm_set_max_fds(struct dpc_shm *m, size_t n)
{
    m->max_fds = n < DPC_SHM_MAX_SEGMENTS ? n : DPC_SHM_MAX_SEGMENTS;
}

/* Gives the segment's pages back to the kernel: a client still holding a
 * descriptor or mapping of it then holds no memory (it reads zeros).  A
 * segment sealed read-only refuses (EPERM); its readers keep it. */
static void seg_empty(const struct seg *s)
{
    if (!s->committed && s->size != 0)
        (void)fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                        (off_t)s->size);
}

static void seg_destroy(struct dpc_shm *m, struct seg **link)
{
    struct seg *s = *link;

    *link = s->next;
    seg_empty(s);
    close(s->fd);
    if (s->pooled) {
        m->pooled -= s->charge;
        m->npooled--;
    } else {
        m->used -= s->charge;
    }
    m->nsegs--;
    if (s->named)
        m->nnames--;
    free(s);
}

void dpc_shm_free(struct dpc_shm *m)
{
    if (m == NULL)
        return;
    while (m->head != NULL)
        seg_destroy(m, &m->head);
    free(m);
}

/*
 * The pool: a cache segment its connection frees is kept, up to an eighth
 * of the budget and DPC_SHM_POOL_SECONDS, and handed to the next ALLOC of
 * the same size by the same uid (its own bytes, so not cleared), saving the
 * reservation and the kernel's page clearing.  It counts against the budget
 * and is the first to go when a reservation needs the room.
 */
static void seg_release(struct dpc_shm *m, struct seg **link)
{
    struct seg *s = *link;

    if (s->named || s->committed || m->pooled + s->charge > m->pool_cap) {
        seg_destroy(m, link);
        return;
    }
    s->pooled = 1;
    s->pooled_at = dpc_now();
    s->conn = 0;
    s->pid = 0;
    m->used -= s->charge;
    m->pooled += s->charge;
    m->npooled++;
}

/* The link to the oldest pooled segment (there must be one). */
static struct seg **pool_oldest(struct dpc_shm *m)
{
    struct seg **l, **oldest = NULL;

    for (l = &m->head; *l != NULL; l = &(*l)->next)
        if ((*l)->pooled &&
            (oldest == NULL || (*l)->pooled_at < (*oldest)->pooled_at))
            oldest = l;
    return oldest;
}

/* Drops pooled segments, oldest first, until need more bytes fit the
 * budget (need 0: those older than the pool's time). */
static void pool_evict(struct dpc_shm *m, uint64_t need, double older_than)
{
    while (m->npooled != 0) {
        struct seg **oldest;

        if (need != 0 && m->used + m->pooled + need <= m->budget)
            return;
        oldest = pool_oldest(m);
        if (need == 0 && (*oldest)->pooled_at > older_than)
            return;
        seg_destroy(m, oldest);
    }
}

struct own {
    size_t names;                   /* the uid's */
    size_t uid_segments;            /* the uid's, pooled ones aside */
    size_t conn_segments;           /* the connection's */
    uint64_t uid_bytes;             /* the uid's, pooled ones aside */
};

static void count_own(const struct dpc_shm *m, const struct dpc_shm_peer *p,
                      struct own *o);
static uint64_t charge_of(uint64_t size);

/* A pooled segment of this uid and size, taken back into use with a new
 * descriptor in *fd; NULL when there is none (or no descriptor). */
static struct seg *pool_take(struct dpc_shm *m, const struct dpc_shm_peer *p,
                             uint64_t size, int *fd)
{
    struct seg *s;
    struct own o;

    count_own(m, p, &o);            /* the uid's share holds here too */
    if (o.uid_bytes > m->lim.uid_bytes ||
        charge_of(size) > m->lim.uid_bytes - o.uid_bytes ||
        o.uid_segments >= m->lim.uid_segments ||
        o.conn_segments >= DPC_SHM_MAX_SEGMENTS_PER_CONN)
        return NULL;
    for (s = m->head; s != NULL; s = s->next)
        if (s->pooled && s->uid == p->uid && s->size == size)
            break;
    if (s == NULL || (*fd = fcntl(s->fd, F_DUPFD_CLOEXEC, 0)) < 0)
        return NULL;
    s->pooled = 0;
    s->conn = p->conn;
    s->pid = p->pid;
    s->id = m->next_id++;
    m->pooled -= s->charge;
    m->npooled--;
    m->used += s->charge;
    m->reused++;
    return s;
}

/* A reserved, sealed memfd of size bytes, or -1 with *st and the reason. */
static int make_memfd(uint64_t size, int seals, enum dpc_lp_status *st,
                      char *err, size_t errlen)
{
    int fd = memfd_create("magick-dpc", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    int rc;

    *st = DPC_LP_EIO;
    if (fd < 0) {
        dpc_errf(err, errlen, "memfd_create: %s", strerror(errno));
        return -1;
    }
    if (fchmod(fd, 0600) < 0) {
        dpc_errf(err, errlen, "fchmod: %s", strerror(errno));
        goto fail;
    }
    rc = posix_fallocate(fd, 0, (off_t)size);
    if (rc != 0) {
        if (rc == ENOSPC || rc == ENOMEM || rc == EFBIG)
            *st = DPC_LP_ENOSPC;
        dpc_errf(err, errlen, "cannot reserve %llu bytes of shared memory: %s",
                 (unsigned long long)size, strerror(rc));
        goto fail;
    }
    if (fcntl(fd, F_ADD_SEALS, seals) < 0) {
        dpc_errf(err, errlen, "sealing: %s", strerror(errno));
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}

static struct seg **find_id(struct dpc_shm *m, uint64_t id)
{
    struct seg **l;

    for (l = &m->head; *l != NULL; l = &(*l)->next)
        if ((*l)->id == id)
            return l;
    return NULL;
}

static struct seg **find_name(struct dpc_shm *m, uid_t uid, const char *name)
{
    struct seg **l;

    for (l = &m->head; *l != NULL; l = &(*l)->next)
        if ((*l)->committed && (*l)->uid == uid &&
            strcmp((*l)->name, name) == 0)
            return l;
    return NULL;
}

/* Whole pages: a one-byte segment still takes one. */
static uint64_t charge_of(uint64_t size)
{
    return size > UINT64_MAX - PAGE ? UINT64_MAX
                                    : (size + PAGE - 1) / PAGE * PAGE;
}

/* The peer's uid's and connection's segments. */
static void count_own(const struct dpc_shm *m, const struct dpc_shm_peer *p,
                      struct own *o)
{
    const struct seg *s;

    memset(o, 0, sizeof(*o));
    for (s = m->head; s != NULL; s = s->next) {
        if (s->uid == p->uid && !s->pooled) {
            o->uid_segments++;
            o->uid_bytes += s->charge;
            o->names += s->named;
        }
        if (s->conn == p->conn)
            o->conn_segments++;
    }
}

static enum dpc_lp_status refuse(struct dpc_shm *m, char *err, size_t errlen,
                                 const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum dpc_lp_status refuse(struct dpc_shm *m, char *err, size_t errlen,
                                 const char *fmt, ...)
{
    va_list ap;

    m->refused++;
    if (err != NULL && errlen != 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return DPC_LP_ENOSPC;
}

/* Room for a segment of SIZE, named NAME (NULL: a cache segment).  A name
 * the uid already publishes is replaced at COMMIT, so it takes no more of
 * the uid's names. */
static enum dpc_lp_status check_room(struct dpc_shm *m,
                                     const struct dpc_shm_peer *p,
                                     uint64_t size, const char *name,
                                     char *err, size_t errlen)
{
    uint64_t charge = charge_of(size);
    size_t replaced;
    struct own o;

    if (charge <= m->budget && m->used <= m->budget - charge)
        pool_evict(m, charge, 0);
    if (charge > m->budget || m->used + m->pooled > m->budget - charge)
        return refuse(m, err, errlen, "shared-memory budget spent: %llu of "
                      "%llu bytes in use, %llu asked (dpc-shm-budget)",
                      (unsigned long long)m->used,
                      (unsigned long long)m->budget,
                      (unsigned long long)size);
    count_own(m, p, &o);
    if (charge > m->lim.uid_bytes || o.uid_bytes > m->lim.uid_bytes - charge)
        return refuse(m, err, errlen, "uid %u's share of shared memory "
                      "spent: %llu of %llu bytes in use, %llu asked "
                      "(dpc-shm-uid-bytes)", (unsigned)p->uid,
                      (unsigned long long)o.uid_bytes,
                      (unsigned long long)m->lim.uid_bytes,
                      (unsigned long long)size);
    /* Pooled segments hold descriptors too: the oldest go first. */
    while (m->nsegs >= m->max_fds && m->npooled != 0)
        seg_destroy(m, pool_oldest(m));
    if (m->nsegs >= m->max_fds)
        return refuse(m, err, errlen, "no room: descriptors (the %zu "
                      "segments held use every descriptor this server "
                      "keeps for shared memory under its RLIMIT_NOFILE)",
                      m->nsegs);
    if (size > (uint64_t)INT64_MAX || m->nsegs >= DPC_SHM_MAX_SEGMENTS ||
        o.conn_segments >= DPC_SHM_MAX_SEGMENTS_PER_CONN ||
        o.uid_segments >= m->lim.uid_segments)
        return refuse(m, err, errlen, "too many segments (%zu of this "
                      "connection, %zu of uid %u (dpc-shm-uid-segments), "
                      "%zu in all)", o.conn_segments, o.uid_segments,
                      (unsigned)p->uid, m->nsegs);
    replaced = name != NULL && find_name(m, p->uid, name) != NULL;
    if (name != NULL && (m->nnames - replaced >= DPC_SHM_MAX_NAMES ||
                         o.names - replaced >= m->lim.uid_names))
        return refuse(m, err, errlen, "too many names (%zu of uid %u "
                      "(dpc-shm-uid-names), %zu in all)", o.names,
                      (unsigned)p->uid, m->nnames);
    return DPC_LP_OK;
}

enum dpc_lp_status dpc_shm_create(struct dpc_shm *m,
                                  const struct dpc_shm_peer *p, uint64_t size,
                                  const char *name, uint64_t ttl_ms,
                                  double now, int *fd, uint64_t *id,
                                  char *err, size_t errlen)
{
    enum dpc_lp_status st;
    struct seg *s;

    (void)now;
    if (name != NULL && ttl_ms > MAX_TTL_MS) {
        dpc_errf(err, errlen, "time to live over a year");
        return DPC_LP_EINVAL;
    }
    if (name == NULL && (s = pool_take(m, p, size, fd)) != NULL) {
        *id = s->id;
        return DPC_LP_OK;
    }
    st = check_room(m, p, size, name, err, errlen);
    if (st != DPC_LP_OK)
        return st;
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        dpc_errf(err, errlen, "out of memory");
        return DPC_LP_EIO;
    }
    /* A cache segment is sealed for good; a named one takes F_SEAL_WRITE
     * at COMMIT, so F_SEAL_SEAL must wait until then. */
    s->fd = make_memfd(size, name != NULL ? SEALS_SIZE
                                          : SEALS_SIZE | F_SEAL_SEAL,
                       &st, err, errlen);
    if (s->fd < 0 || (*fd = fcntl(s->fd, F_DUPFD_CLOEXEC, 0)) < 0) {
        if (s->fd >= 0) {
            dpc_errf(err, errlen, "dup: %s", strerror(errno));
            close(s->fd);
        }
        free(s);
        return st;
    }
    s->id = m->next_id++;
    s->size = size;
    s->charge = charge_of(size);
    s->uid = p->uid;
    s->pid = p->pid;
    s->conn = p->conn;
    if (name != NULL) {
        s->named = 1;
        snprintf(s->name, sizeof(s->name), "%s", name);
        s->ttl_ms = ttl_ms;
        if (m->lim.name_lifetime_ms != 0 &&
            (ttl_ms == 0 || ttl_ms > m->lim.name_lifetime_ms))
            s->ttl_ms = m->lim.name_lifetime_ms;
        m->nnames++;
    }
    s->next = m->head;
    m->head = s;
    m->nsegs++;
    m->used += s->charge;
    if (m->used + m->pooled > m->peak)
        m->peak = m->used + m->pooled;
    *id = s->id;
    return DPC_LP_OK;
}

/* The connection's own segment that is still its to release or commit. */
static struct seg **owned(struct dpc_shm *m, const struct dpc_shm_peer *p,
                          uint64_t id, char *err, size_t errlen)
{
    struct seg **l = find_id(m, id);

    if (l == NULL || (*l)->conn != p->conn || (*l)->committed) {
        dpc_errf(err, errlen, "segment %llu is not this connection's",
                 (unsigned long long)id);
        return NULL;
    }
    return l;
}

enum dpc_lp_status dpc_shm_release(struct dpc_shm *m,
                                   const struct dpc_shm_peer *p, uint64_t id,
                                   char *err, size_t errlen)
{
    struct seg **l = owned(m, p, id, err, errlen);

    if (l == NULL)
        return DPC_LP_ENOENT;
    seg_release(m, l);
    return DPC_LP_OK;
}

enum dpc_lp_status dpc_shm_commit(struct dpc_shm *m,
                                  const struct dpc_shm_peer *p, uint64_t id,
                                  double now, char *err, size_t errlen)
{
    struct seg **l = owned(m, p, id, err, errlen), *s, **old;

    if (l == NULL)
        return DPC_LP_ENOENT;
    s = *l;
    if (!s->named) {
        dpc_errf(err, errlen, "segment %llu has no name to publish",
                 (unsigned long long)id);
        return DPC_LP_EINVAL;
    }
    if (fcntl(s->fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
        int busy = errno == EBUSY;

        dpc_errf(err, errlen, "sealing '%s' read-only: %s", s->name,
                 busy ? "still mapped writable (unmap before commit)"
                      : strerror(errno));
        return busy ? DPC_LP_EBUSY : DPC_LP_EIO;
    }
    old = find_name(m, s->uid, s->name);
    if (old != NULL)
        seg_destroy(m, old);
    s->committed = 1;
    s->conn = 0;
    s->pid = 0;
    s->expires = s->ttl_ms != 0 ? now + (double)s->ttl_ms / 1000 : 0;
    return DPC_LP_OK;
}

static int reopen_readonly(int fd)
{
    char path[64];
    int ro;

    /* A read-only open file description: writable shared mappings fail
     * even before the seal is consulted. */
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ro = open(path, O_RDONLY | O_CLOEXEC);
    return ro;
}

enum dpc_lp_status dpc_shm_attach(struct dpc_shm *m,
                                  const struct dpc_shm_peer *p, uint32_t owner,
                                  const char *name, double now, int *fd,
                                  uint64_t *id, uint64_t *size, char *err,
                                  size_t errlen)
{
    uid_t uid = owner == DPC_LP_SELF ? p->uid : (uid_t)owner;
    struct seg **l = find_name(m, uid, name);

    /* Past its time but not yet swept: gone already. */
    if (l == NULL || ((*l)->expires != 0 && (*l)->expires <= now)) {
        dpc_errf(err, errlen, "no image named '%s' published by uid %u", name,
                 (unsigned)uid);
        return DPC_LP_ENOENT;
    }
    *fd = reopen_readonly((*l)->fd);
    if (*fd < 0) {
        dpc_errf(err, errlen, "reopen read-only (is /proc mounted?): %s",
                 strerror(errno));
        return DPC_LP_EIO;
    }
    *id = (*l)->id;
    *size = (*l)->size;
    return DPC_LP_OK;
}

enum dpc_lp_status dpc_shm_remove(struct dpc_shm *m,
                                  const struct dpc_shm_peer *p, uint32_t owner,
                                  const char *name, char *err, size_t errlen)
{
    uid_t uid = owner == DPC_LP_SELF ? p->uid : (uid_t)owner;
    struct seg **l;

    if (uid != p->uid && p->uid != geteuid()) {
        dpc_errf(err, errlen, "uid %u may not remove uid %u's names",
                 (unsigned)p->uid, (unsigned)uid);
        return DPC_LP_EPERM;
    }
    l = find_name(m, uid, name);
    if (l == NULL) {
        dpc_errf(err, errlen, "no image named '%s' published by uid %u", name,
                 (unsigned)uid);
        return DPC_LP_ENOENT;
    }
    seg_destroy(m, l);
    return DPC_LP_OK;
}

size_t dpc_shm_conn_closed(struct dpc_shm *m, uint64_t conn)
{
    struct seg **l = &m->head;
    size_t n = 0;

    while (*l != NULL) {
        struct seg *s = *l;

        if (s->conn == conn && !s->committed && !s->pooled) {
            seg_release(m, l);
            n++;
            if (*l == s)            /* pooled: still linked here */
                l = &s->next;
        } else {
            l = &s->next;
        }
    }
    return n;
}

size_t dpc_shm_expire(struct dpc_shm *m, double now)
{
    pool_evict(m, 0, now - DPC_SHM_POOL_SECONDS);
    struct seg **l = &m->head;
    size_t n = 0;

    while (*l != NULL) {
        if ((*l)->committed && (*l)->expires != 0 && (*l)->expires <= now) {
            seg_destroy(m, l);
            n++;
        } else {
            l = &(*l)->next;
        }
    }
    return n;
}

void dpc_shm_get_stats(const struct dpc_shm *m, struct dpc_shm_stats *st)
{
    st->budget = m->budget;
    st->used = m->used;
    st->peak = m->peak;
    st->segments = m->nsegs - m->npooled;
    st->pooled = m->pooled;
    st->names = m->nnames;
    st->refused = m->refused;
    st->pool_reuses = m->reused;
    st->max_segments = m->max_fds;
}

/* Appends to buf at *off like snprintf; *off stops at len - 1. */
static void put(char *buf, size_t len, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void put(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*off + 1 >= len)
        return;
    va_start(ap, fmt);
    n = vsnprintf(buf + *off, len - *off, fmt, ap);
    va_end(ap);
    if (n > 0)
        *off = *off + (size_t)n < len ? *off + (size_t)n : len - 1;
}

struct holder {
    uid_t uid;
    pid_t pid;
    uint64_t segments, bytes;
};

static int holder_cmp(const void *a, const void *b)
{
    const struct holder *x = a, *y = b;

    if (x->uid != y->uid)
        return x->uid < y->uid ? -1 : 1;
    return x->pid < y->pid ? -1 : x->pid > y->pid;
}

/* Segments summed per (uid, pid): sorted, then merged (n log n, so a full
 * table does not stall the event loop). */
static size_t holders(const struct dpc_shm *m, struct holder **out)
{
    struct holder *h = calloc(m->nsegs ? m->nsegs : 1, sizeof(*h));
    const struct seg *s;
    size_t n = 0, k = 0;

    *out = h;
    if (h == NULL)
        return 0;
    for (s = m->head; s != NULL; s = s->next)
        if (!s->pooled)
            h[n++] = (struct holder){ s->uid, s->pid, 1, s->size };
    qsort(h, n, sizeof(*h), holder_cmp);
    for (size_t i = 0; i < n; i++) {
        if (k != 0 && h[k - 1].uid == h[i].uid && h[k - 1].pid == h[i].pid) {
            h[k - 1].segments++;
            h[k - 1].bytes += h[i].bytes;
        } else {
            h[k++] = h[i];
        }
    }
    return k;
}

size_t dpc_shm_status_json(const struct dpc_shm *m, char *buf, size_t len)
{
    struct holder *h;
    size_t off = 0, n;

    if (len == 0)
        return 0;
    buf[0] = '\0';
    put(buf, len, &off, "{\"budget\":%llu,\"used\":%llu,\"peak\":%llu,"
        "\"segments\":%zu,\"names\":%zu,\"refused\":%llu,"
        "\"pooled\":%llu,\"pool_reuses\":%llu,\"max_segments\":%zu,"
        "\"holders\":[",
        (unsigned long long)m->budget, (unsigned long long)m->used,
        (unsigned long long)m->peak, m->nsegs - m->npooled, m->nnames,
        (unsigned long long)m->refused, (unsigned long long)m->pooled,
        (unsigned long long)m->reused, m->max_fds);
    n = holders(m, &h);
    if (n > DPC_SHM_MAX_HOLDERS_LISTED)     /* the JSON stays whole */
        n = DPC_SHM_MAX_HOLDERS_LISTED;
    for (size_t i = 0; i < n; i++)
        put(buf, len, &off, "%s{\"uid\":%u,\"pid\":%d,\"segments\":%llu,"
            "\"bytes\":%llu}", i == 0 ? "" : ",", (unsigned)h[i].uid,
            (int)h[i].pid, (unsigned long long)h[i].segments,
            (unsigned long long)h[i].bytes);
    free(h);
    put(buf, len, &off, "]}");
    return off;
}

int dpc_shm_per_uid(const struct dpc_shm *m,
                    void (*visit)(void *arg, uid_t uid, uint64_t segments,
                                  uint64_t bytes),
                    void *arg)
{
    struct holder *h;
    size_t n = holders(m, &h), i = 0;

    if (h == NULL)
        return -1;
    while (i < n) {                 /* sorted by uid: sum its pids */
        uid_t uid = h[i].uid;
        uint64_t segs = 0, bytes = 0;

        for (; i < n && h[i].uid == uid; i++) {
            segs += h[i].segments;
            bytes += h[i].bytes;
        }
        visit(arg, uid, segs, bytes);
    }
    free(h);
    return 0;
}

size_t dpc_shm_list_json(const struct dpc_shm *m, double now, char *buf,
                         size_t len)
{
    const struct seg *s;
    size_t off = 0;
    int first = 1;

    if (len == 0)
        return 0;
    buf[0] = '\0';
    put(buf, len, &off, "[");
    for (s = m->head; s != NULL; s = s->next) {
        if (!s->committed)
            continue;
        put(buf, len, &off, "%s{\"owner\":%u,\"name\":\"%s\",\"bytes\":%llu,"
            "\"ttl_seconds\":%.0f}", first ? "" : ",", (unsigned)s->uid,
            s->name, (unsigned long long)s->size,
            s->expires != 0 ? (s->expires > now ? s->expires - now : 0) : -1);
        first = 0;
    }
    put(buf, len, &off, "]");
    return off;
}
