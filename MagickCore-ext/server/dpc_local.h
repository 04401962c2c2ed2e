/*
 * dpc_local: the server's Unix-socket side.  Listens on a stream socket
 * (mode 0600 or 0660), identifies every peer by the kernel's SO_PEERCRED
 * (uid, gid, pid) and SO_PEERGROUPS, admits only the uids and gids allowed
 * (by default the server's own uid), and serves the dpc_lproto requests
 * against one dpc_shm registry.  Refusals are logged with the uid.
 *
 * Each connection is a small state machine: READ a whole request, then
 * WRITE its reply (with a descriptor when it grants a segment), then READ
 * again; it never reads ahead while a reply is pending, so a client that
 * does not read cannot make the server buffer without bound.
 *
 * Accepting (and pausing a second when accept fails) is dpc_listen's, as
 * for the TCP listeners; the connections are on a dpc_list, counted apart
 * from the TCP clients, with a share per uid.
 *
 * Runs on the server's event base, single-threaded.  dpc_local owns the
 * listener, its socket file (unlinked at free), the registry and every
 * connection.
 */
#ifndef DPC_LOCAL_H
#define DPC_LOCAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dpc_shm.h"

struct event_base;

#define DPC_LOCAL_MAX_IDS 32
#define DPC_LOCAL_FD_SLACK 64       /* log, event loop, /proc reads, ... */

struct dpc_local_cfg {
    char path[108];                 /* sun_path; "" disables the listener */
    int path_is_default;            /* a busy default path is not fatal */
    /* Socket activation: fd is the listening socket at path, passed in
     * (ownership taken): neither bound, chmod-ed nor unlinked here. */
    int activated;
    int fd;
    unsigned mode;                  /* 0600 or 0660 */
    uid_t allow_uids[DPC_LOCAL_MAX_IDS];
    size_t nallow_uids;             /* 0: the server's own uid only */
    gid_t allow_gids[DPC_LOCAL_MAX_IDS];
    size_t nallow_gids;
    uint64_t shm_budget;
    struct dpc_shm_limits shm_limits;   /* per uid; 0: dpc_shm's defaults */
    size_t max_segments;            /* descriptors segments may hold */
    unsigned max_clients;           /* local connections, apart from TCP */
    unsigned max_clients_per_uid;   /* 0: max_clients */
    /* Closes a connection silent this long that holds no segment (one
     * that holds some is a process using them); 0: never. */
    uint64_t idle_timeout_ms;
};

/* The descriptors shm segments may hold under a limit of nofile (the
 * server's RLIMIT_NOFILE), after keeping two for each TCP client (its
 * socket, a spill file) and each local client (its socket, a reply's
 * descriptor in flight), one per listener, and DPC_LOCAL_FD_SLACK; 0 when
 * nothing is left. */
size_t dpc_local_fd_room(uint64_t nofile, unsigned tcp_clients,
                         unsigned listeners, unsigned local_clients);

struct dpc_local;

/* Binds and listens.  A stale socket file (nobody answering) is replaced;
 * a live one is an error.  NULL with the reason in err. */
struct dpc_local *dpc_local_new(struct event_base *base,
                                const struct dpc_local_cfg *cfg, char *err,
                                size_t errlen);
void dpc_local_free(struct dpc_local *l);
/* Once a second: drops names whose time to live ran out, closes idle
 * connections. */
void dpc_local_sweep(struct dpc_local *l, double now);
/* The registry, for reading its stats (owned by l). */
const struct dpc_shm *dpc_local_shm(const struct dpc_local *l);
/* The shared-memory part of the server's status (dpc_shm_status_json). */
size_t dpc_local_status_json(const struct dpc_local *l, char *buf,
                             size_t len);

#endif
