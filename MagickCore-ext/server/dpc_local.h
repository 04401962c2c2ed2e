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
 * for the TCP listeners; the connections are on a dpc_list.
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

struct event_base;

#define DPC_LOCAL_MAX_IDS 32

struct dpc_local_cfg {
    char path[108];                 /* sun_path; "" disables the listener */
    int path_is_default;            /* a busy default path is not fatal */
    unsigned mode;                  /* 0600 or 0660 */
    uid_t allow_uids[DPC_LOCAL_MAX_IDS];
    size_t nallow_uids;             /* 0: the server's own uid only */
    gid_t allow_gids[DPC_LOCAL_MAX_IDS];
    size_t nallow_gids;
    uint64_t shm_budget;
    unsigned max_clients;
};

struct dpc_local;

/* Binds and listens.  A stale socket file (nobody answering) is replaced;
 * a live one is an error.  NULL with the reason in err. */
struct dpc_local *dpc_local_new(struct event_base *base,
                                const struct dpc_local_cfg *cfg, char *err,
                                size_t errlen);
void dpc_local_free(struct dpc_local *l);
/* Once a second: drops names whose time to live ran out. */
void dpc_local_sweep(struct dpc_local *l, double now);
/* The shared-memory part of the server's status (dpc_shm_status_json). */
size_t dpc_local_status_json(const struct dpc_local *l, char *buf,
                             size_t len);

#endif
