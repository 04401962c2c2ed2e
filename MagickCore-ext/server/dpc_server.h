/*
 * dpc_server: the magick-dpc server engine.  One libevent loop serves every
 * connection (no thread per client); each connection runs a dpc_session.
 * Limits: max clients; max connections in the handshake at once (the
 * server then stops accepting, and the kernel's listen backlog holds the
 * next clients until a handshake ends: a burst is taken in at the pace the
 * server authenticates, and no handshake is ever dropped for another);
 * per source address, a share of those handshakes (its further connections
 * wait, accepted but not greeted) and of the connections not yet
 * authenticated (past it the source is refused, not the others);
 * handshake and idle timeouts.
 *
 * Ownership: the server owns its event base, listeners, store and every
 * connection; dpc_server_free() releases them all.  Single-threaded.
 */
#ifndef DPC_SERVER_H
#define DPC_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "dpc_local.h"
#include "dpc_siphash.h"
#include "dpc_stock.h"
#include "dpc_store.h"
#include "dpc_wire.h"

struct dpc_listen_spec {
    char host[256];
    unsigned port;                  /* 0: any free port (see the log) */
    enum dpc_stock_flavor flavor;
};

struct dpc_server_cfg {
    const struct dpc_listen_spec *listen;   /* borrowed during _new */
    size_t nlisten;                         /* 0: local socket only */
    struct dpc_local_cfg local;             /* shared memory, Unix socket */
    struct dpc_store_cfg store;
    uint8_t sipkey[DPC_SIPHASH_KEYLEN];     /* stock key, from the secret */
    uint8_t wirekey[DPC_WIRE_KEY_LEN];      /* native key, from the secret */
    unsigned max_clients;
    unsigned max_unauth;                    /* handshakes at once */
    unsigned max_unauth_per_source;         /* of them from one source;
                                               0: half of max_unauth */
    uint64_t handshake_timeout_ms;
    uint64_t idle_timeout_ms;               /* 0: none */
    /* After a reply, poll this long for the client's next request before
     * sleeping in the event loop; 0 disables.  Stock clients make one
     * synchronous round trip per row (per pixel for a column), so this
     * halves their latency at the cost of a little CPU. */
    unsigned busy_poll_us;
};

struct dpc_server_stats {
    struct dpc_store_stats store;
    uint64_t clients, unauthenticated, waiting;
    uint64_t requests;
    uint64_t accepted, refused, handshake_timeouts, auth_failures;
    uint64_t accept_pauses;         /* listeners stopped: slots all taken */
    uint64_t waited;                /* connections not greeted at once */
    double uptime;
};

struct dpc_server;

/* Binds every listener.  NULL with the reason in err. */
struct dpc_server *dpc_server_new(const struct dpc_server_cfg *cfg, char *err,
                                  size_t errlen);
/* Serves until SIGINT or SIGTERM.  0 on a clean stop, -1 on error. */
int dpc_server_run(struct dpc_server *s);
/* Closes every connection and frees everything. */
void dpc_server_free(struct dpc_server *s);
void dpc_server_get_stats(const struct dpc_server *s,
                          struct dpc_server_stats *st);
/* The stats as one JSON object; returns its length (truncated to len-1). */
size_t dpc_server_stats_json(const struct dpc_server *s, char *buf,
                             size_t len);

#endif
