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
 * Draining (SIGTERM, or a client's request): the listeners stay open, so
 * a new client is answered at once (a status, or its open refused with
 * "place it elsewhere") instead of waiting on a closed port; sessions
 * refuse new caches and serve the open ones; the loop ends when the last
 * cache closes or the drain times out.
 *
 * systemd: READY=1 once listening (and preallocated), STATUS= with the
 * clients served, updated once a second, STOPPING=1 when a drain starts
 * and when the loop ends (dpc_systemd; nothing outside systemd).
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
#include "dpc_tls.h"
#include "dpc_wire.h"

struct dpc_listen_spec {
    char host[256];
    unsigned port;                  /* 0: any free port (see the log) */
    enum dpc_stock_flavor flavor;
    /* Socket activation: fd is a listening socket passed in (ownership
     * taken), used instead of binding host:port. */
    int activated;
    int fd;
};

struct dpc_server_cfg {
    const struct dpc_listen_spec *listen;   /* borrowed during _new */
    size_t nlisten;                         /* 0: local socket only */
    struct dpc_local_cfg local;             /* shared memory, Unix socket */
    struct dpc_store_cfg store;
    uint8_t sipkey[DPC_SIPHASH_KEYLEN];     /* stock key, from the secret */
    uint8_t wirekey[DPC_WIRE_KEY_LEN];      /* native key, from the secret */
    /* Native clients over TLS: on (TLS only), both, or off (plaintext
     * only).  The PSK comes from the secret; cert and key (PEM files,
     * together) let clients verify the server against a CA; ca asks
     * certificate clients for a certificate it signed. */
    enum dpc_tls_mode tls;
    uint8_t tlspsk[DPC_TLS_PSK_LEN];
    const char *tls_cert, *tls_key, *tls_ca;    /* borrowed during _new */
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
    /* SIGTERM (or a client's drain request) starts a drain: new caches are
     * refused with "place it elsewhere", open ones are served until they
     * close or this long has passed.  0: SIGTERM stops at once. */
    uint64_t drain_timeout_ms;
    /* Prometheus metrics on http://metrics/metrics; host "": none. */
    struct dpc_listen_spec metrics;
};

struct dpc_server_stats {
    struct dpc_store_stats store;
    uint64_t clients, unauthenticated, waiting;
    uint64_t requests;
    uint64_t accepted, refused, handshake_timeouts, auth_failures;
    uint64_t accept_pauses;         /* listeners stopped: slots all taken */
    uint64_t waited;                /* connections not greeted at once */
    double uptime;
    int draining;
    double drain_left;              /* seconds until the drain times out */
};

struct dpc_server;

/* Binds every listener.  NULL with the reason in err. */
struct dpc_server *dpc_server_new(const struct dpc_server_cfg *cfg, char *err,
                                  size_t errlen);
/* Serves until stopped: SIGINT stops at once; SIGTERM drains (see
 * drain_timeout_ms), and a second SIGTERM or SIGINT during the drain
 * stops at once.  0 on a clean stop (a drain that saw every cache
 * closed), DPC_SERVER_CUT when caches were still open as the drain ended
 * (its timeout, or a second signal), -1 on error. */
#define DPC_SERVER_CUT 3
int dpc_server_run(struct dpc_server *s);
/* Starts draining (as SIGTERM does); nothing when already draining.
 * why: for the log. */
void dpc_server_drain(struct dpc_server *s, const char *why);
/* Closes every connection and frees everything. */
void dpc_server_free(struct dpc_server *s);
void dpc_server_get_stats(const struct dpc_server *s,
                          struct dpc_server_stats *st);
/* The stats as one JSON object; returns its length (truncated to len-1). */
size_t dpc_server_stats_json(const struct dpc_server *s, char *buf,
                             size_t len);

#endif
