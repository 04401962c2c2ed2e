/*
 * dpc_shm: the server's shared-memory segments and their one host-wide
 * budget.  A segment is a sealed memfd: created with
 * memfd_create(MFD_CLOEXEC | MFD_ALLOW_SEALING), reserved whole with
 * posix_fallocate (a full tmpfs or memory cgroup fails here, not as SIGBUS
 * in a client later), mode 0600, sealed against shrinking and growing.
 *
 * Two kinds:
 *  - cache segments (ALLOC) belong to one connection and are freed when it
 *    asks or when it closes (a client that exits or crashes);
 *  - named segments (PUBLISH, then COMMIT) belong to the publisher until
 *    COMMIT seals them read-only and gives them their name, then to the
 *    registry until removed or their time to live runs out.
 * Freeing empties the segment first (fallocate PUNCH_HOLE, which its seals
 * allow until it is sealed read-only), so a client that keeps a descriptor
 * or a mapping of a freed segment keeps no memory; then it closes the
 * server's descriptor.  A published (read-only) segment cannot be emptied:
 * its memory goes when the last reader's descriptor does.  A freed cache
 * segment may first wait in a small pool for its uid's next ALLOC of the
 * same size (see dpc_shm.c).
 *
 * Limits: the budget (bytes, whole pages, host-wide); per uid its bytes,
 * segments and names; per connection its segments; and the descriptors
 * the segments may hold in all (each holds one of the server's).
 *
 * Single-threaded (the server's event loop).  The registry owns every
 * descriptor it holds; descriptors it returns are new and the caller's.
 */
#ifndef DPC_SHM_H
#define DPC_SHM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dpc_lproto.h"

#define DPC_SHM_MAX_SEGMENTS 65536      /* every kind, host-wide */
#define DPC_SHM_MAX_NAMES 4096
#define DPC_SHM_MAX_NAMES_PER_UID 512      /* one uid cannot take them all */
#define DPC_SHM_MAX_SEGMENTS_PER_CONN 4096
#define DPC_SHM_MAX_HOLDERS_LISTED 512     /* status JSON: 80 bytes each */
#define DPC_SHM_POOL_SECONDS 5             /* a freed cache segment kept */

struct dpc_shm;

struct dpc_shm_peer {
    uint64_t conn;                      /* the connection's id */
    uid_t uid;
    gid_t gid;
    pid_t pid;
};

struct dpc_shm_stats {
    uint64_t budget, used, peak, segments, names, refused;
    uint64_t pooled;                /* bytes of freed segments kept */
    uint64_t pool_reuses, max_segments;
};

/* What one uid and the server's descriptors allow; 0 in a field keeps
 * dpc_shm_new's default. */
struct dpc_shm_limits {
    uint64_t uid_bytes;             /* default: the budget */
    unsigned uid_segments;          /* default: DPC_SHM_MAX_SEGMENTS */
    unsigned uid_names;             /* default: DPC_SHM_MAX_NAMES_PER_UID */
    uint64_t name_lifetime_ms;      /* the longest time to live; none */
};

/* NULL when out of memory.  budget: bytes across all segments. */
struct dpc_shm *dpc_shm_new(uint64_t budget);
/* Replaces the limits (fields 0: defaults); at most DPC_SHM_MAX_* each. */
void dpc_shm_set_limits(struct dpc_shm *m, const struct dpc_shm_limits *lim);
/* How many segments (one server descriptor each) may exist at once, 0 for
 * none; at most (and by default) DPC_SHM_MAX_SEGMENTS.  Past it, pooled
 * segments go first, then requests are refused: "no room: descriptors". */
void dpc_shm_set_max_fds(struct dpc_shm *m, size_t n);
void dpc_shm_free(struct dpc_shm *m);

/* ALLOC (named == NULL) or PUBLISH.  On DPC_LP_OK *fd is a new descriptor
 * for the caller to send and close, *id the segment's id. */
enum dpc_lp_status dpc_shm_create(struct dpc_shm *m,
                                  const struct dpc_shm_peer *p, uint64_t size,
                                  const char *name, uint64_t ttl_ms,
                                  double now, int *fd, uint64_t *id,
                                  char *err, size_t errlen);
/* FREE: only the connection's own cache or uncommitted segments. */
enum dpc_lp_status dpc_shm_release(struct dpc_shm *m,
                                   const struct dpc_shm_peer *p, uint64_t id,
                                   char *err, size_t errlen);
/* COMMIT: seals the segment against writes (EBUSY while the publisher
 * still maps it writable) and publishes its name, replacing the owner's
 * previous segment of that name. */
enum dpc_lp_status dpc_shm_commit(struct dpc_shm *m,
                                  const struct dpc_shm_peer *p, uint64_t id,
                                  double now, char *err, size_t errlen);
/* ATTACH: a new read-only descriptor of a committed name whose time to
 * live has not run out by now. */
enum dpc_lp_status dpc_shm_attach(struct dpc_shm *m,
                                  const struct dpc_shm_peer *p, uint32_t owner,
                                  const char *name, double now, int *fd,
                                  uint64_t *id, uint64_t *size, char *err,
                                  size_t errlen);
/* REMOVE: by the owner, or by the server's own uid. */
enum dpc_lp_status dpc_shm_remove(struct dpc_shm *m,
                                  const struct dpc_shm_peer *p, uint32_t owner,
                                  const char *name, char *err, size_t errlen);
/* Frees every segment the connection still owns; returns their count. */
size_t dpc_shm_conn_closed(struct dpc_shm *m, uint64_t conn);
/* Removes names whose time to live has run out; returns their count. */
size_t dpc_shm_expire(struct dpc_shm *m, double now);

void dpc_shm_get_stats(const struct dpc_shm *m, struct dpc_shm_stats *st);
/* JSON: the budget, and segments summed per (uid, pid) of the connection
 * that holds them (named ones under pid 0); returns the length written
 * (truncated to len - 1). */
size_t dpc_shm_status_json(const struct dpc_shm *m, char *buf, size_t len);
/* Calls visit once per uid holding segments (pooled ones aside; named
 * ones count for their owner), with its segments and bytes, uids in
 * increasing order.  -1 when out of memory. */
int dpc_shm_per_uid(const struct dpc_shm *m,
                    void (*visit)(void *arg, uid_t uid, uint64_t segments,
                                  uint64_t bytes),
                    void *arg);
/* JSON array of the names: owner, name, bytes, seconds left (-1: none). */
size_t dpc_shm_list_json(const struct dpc_shm *m, double now, char *buf,
                         size_t len);

#endif
