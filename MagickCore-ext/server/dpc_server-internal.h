/*
 * dpc_server-internal.h: the server's state, shared by the files of the
 * engine (dpc_server.c, and dpc_server_metrics.c, which reads it for a
 * scrape); not for other modules.  Single-threaded.
 */
#ifndef DPC_SERVER_INTERNAL_H
#define DPC_SERVER_INTERNAL_H

#include <stdint.h>

#include "dpc_admit.h"
#include "dpc_conn.h"
#include "dpc_listen.h"
#include "dpc_local.h"
#include "dpc_log.h"
#include "dpc_metrics.h"
#include "dpc_server.h"
#include "dpc_tlsserver.h"

struct event;
struct event_base;

struct dpc_listener {
    struct dpc_server *server;
    struct dpc_listen *ln;
    enum dpc_stock_flavor flavor;
    uint64_t accepted, open;        /* connections, for the metrics */
    char addr[80];
};

struct dpc_server {
    struct dpc_server_cfg cfg;
    struct event_base *base;
    struct dpc_listener *listeners;
    size_t nlisteners;
    struct event *sigint, *sigterm, *sweep;
    struct event *drain_tick;       /* while draining: done yet? */
    struct dpc_store *store;
    struct dpc_local *local;        /* NULL: no Unix socket */
    struct dpc_admit *admit;        /* who may run a handshake now */
    struct dpc_conn_set conns;      /* waiting, in the handshake, served */
    int accepting;                  /* the listeners are enabled */
    int accept_failed;              /* paused a second after EMFILE & co */
    int stopping;                   /* closing everything: admit nothing */
    uint64_t accepted, refused, handshake_timeouts;
    uint64_t accept_pauses, waited;
    struct dpc_log_limit refuse_log;    /* failures to accept */
    struct dpc_tlsserver *tls;      /* NULL: native clients in plaintext */
    struct dpc_metrics *metrics;    /* NULL: no metrics endpoint */
    double started;
    double drain_started, drain_deadline;   /* conns.draining set */
    int result;                     /* dpc_server_run's: 0, DPC_SERVER_CUT */
    char sd_status[128];            /* the last STATUS= sent to systemd */
    int sd_failed;                  /* a notification failed: said once */
};

/* The metrics endpoint's collect callback (dpc_metrics_collect_fn): the
 * status JSON's numbers, per listener, per uid; arg is the server,
 * borrowed. */
void dpc_server_metrics_collect(void *arg, struct dpc_metrics_out *out);

#endif
