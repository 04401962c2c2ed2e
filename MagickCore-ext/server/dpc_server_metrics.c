/*
 * dpc_server_metrics: what a scrape of the metrics endpoint reports of the
 * server (see dpc_metrics.h for the endpoint and the latency histograms):
 * the status JSON's counters and gauges, connections per listener, and
 * the shared-memory tier's use per uid.  Reads the server's state (owned
 * by dpc_server) on its event loop; keeps nothing.
 */
#include <stdio.h>
#include <sys/types.h>

#include "dpc_metrics.h"
#include "dpc_server-internal.h"
#include "dpc_shm.h"

/* One family of the status JSON's numbers, as Prometheus has it. */
struct stat_family {
    const char *name, *type, *help;
    double value;
};

static void put_families(struct dpc_metrics_out *out,
                         const struct stat_family *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        dpc_metrics_family(out, f[i].name, f[i].type, f[i].help);
        dpc_metrics_sample(out, f[i].name, NULL, f[i].value);
    }
}

#define C "counter"
#define G "gauge"

static void put_server_stats(const struct dpc_server *s,
                             struct dpc_metrics_out *out)
{
    struct dpc_server_stats st;

    dpc_server_get_stats(s, &st);
    const struct stat_family f[] = {
        { "caches_open", G, "Caches open on TCP connections.",
          (double)st.store.caches },
        { "ram_bytes", G, "Bytes of caches in memory.",
          (double)st.store.bytes_ram },
        { "spilled_bytes", G, "Bytes of caches spilled to disk.",
          (double)st.store.bytes_spilled },
        { "memory_budget_bytes", G, "The memory budget (--memory).",
          (double)st.store.mem_budget },
        { "disk_budget_bytes", G, "The spill budget (--disk).",
          (double)st.store.disk_budget },
        { "warm_bytes", G, "Bytes of freed memory kept for reuse.",
          (double)st.store.bytes_warm },
        { "warm_reuses_total", C, "Opens served from kept memory.",
          (double)st.store.warm_reuses },
        { "opens_refused_total", C, "Opens refused for want of room.",
          (double)st.store.refused },
        { "preallocated", G, "1 when --memory was faulted in at start.",
          st.store.preallocated ? 1 : 0 },
        { "clients_connected", G, "TCP connections open.",
          (double)st.clients },
        { "clients_unauthenticated", G, "TCP connections in the handshake.",
          (double)st.unauthenticated },
        { "clients_waiting", G, "TCP connections waiting for a handshake "
          "slot.", (double)st.waiting },
        { "requests_served_total", C, "Requests served, both protocols.",
          (double)st.requests },
        { "connections_accepted_total", C, "TCP connections accepted.",
          (double)st.accepted },
        { "connections_refused_total", C, "TCP connections refused.",
          (double)st.refused },
        { "handshake_timeouts_total", C, "Handshakes timed out.",
          (double)st.handshake_timeouts },
        { "accept_pauses_total", C, "Times accepting stopped, every "
          "handshake slot taken.", (double)st.accept_pauses },
        { "connections_waited_total", C, "Connections not greeted at once.",
          (double)st.waited },
        { "auth_failures_total", C, "Failed proofs of the secret.",
          (double)st.auth_failures },
        { "uptime_seconds", G, "Seconds since the server started.",
          st.uptime },
        { "draining", G, "1 while draining.", st.draining },
        { "drain_seconds_left", G, "Seconds until the drain times out.",
          st.drain_left },
        { "drain_timeout_seconds", G, "The drain timeout (--drain-timeout).",
          (double)s->cfg.drain_timeout_ms / 1000 },
    };

    put_families(out, f, sizeof(f) / sizeof(*f));
}

static void put_listeners(const struct dpc_server *s,
                          struct dpc_metrics_out *out)
{
    char labels[160], addr[100];

    dpc_metrics_family(out, "listener_connections", G,
                       "TCP connections open, per listener.");
    for (size_t i = 0; i < s->nlisteners; i++) {
        snprintf(labels, sizeof(labels), "listener=\"%s\",imagemagick=\"%s\"",
                 dpc_metrics_escape(s->listeners[i].addr, addr, sizeof(addr)),
                 s->listeners[i].flavor == DPC_STOCK_IM7 ? "7" : "6");
        dpc_metrics_sample_u64(out, "listener_connections", labels,
                               s->listeners[i].open);
    }
    dpc_metrics_family(out, "listener_connections_accepted_total", C,
                       "TCP connections accepted, per listener.");
    for (size_t i = 0; i < s->nlisteners; i++) {
        snprintf(labels, sizeof(labels), "listener=\"%s\",imagemagick=\"%s\"",
                 dpc_metrics_escape(s->listeners[i].addr, addr, sizeof(addr)),
                 s->listeners[i].flavor == DPC_STOCK_IM7 ? "7" : "6");
        dpc_metrics_sample_u64(out, "listener_connections_accepted_total",
                               labels, s->listeners[i].accepted);
    }
}

struct uid_pass {
    struct dpc_metrics_out *out;
    int bytes;                      /* this pass: bytes, else segments */
};

static void put_uid(void *arg, uid_t uid, uint64_t segments, uint64_t bytes)
{
    struct uid_pass *p = arg;
    char labels[32];

    snprintf(labels, sizeof(labels), "uid=\"%u\"", (unsigned)uid);
    dpc_metrics_sample_u64(p->out, p->bytes ? "shm_uid_bytes"
                                            : "shm_uid_segments",
                           labels, p->bytes ? bytes : segments);
}

static void put_shm(const struct dpc_server *s, struct dpc_metrics_out *out)
{
    const struct dpc_shm *m = dpc_local_shm(s->local);
    struct uid_pass p = { .out = out, .bytes = 1 };
    struct dpc_shm_stats st;

    dpc_shm_get_stats(m, &st);
    const struct stat_family f[] = {
        { "shm_budget_bytes", G, "The shared-memory budget (--shm-budget).",
          (double)st.budget },
        { "shm_used_bytes", G, "Shared memory in segments.",
          (double)st.used },
        { "shm_peak_bytes", G, "The most shared memory in use at once.",
          (double)st.peak },
        { "shm_segments", G, "Shared-memory segments in use.",
          (double)st.segments },
        { "shm_names", G, "Images published with shm:.", (double)st.names },
        { "shm_refused_total", C, "Shared-memory requests refused.",
          (double)st.refused },
        { "shm_pooled_bytes", G, "Bytes of freed segments kept for reuse.",
          (double)st.pooled },
        { "shm_pool_reuses_total", C, "Segments served from the pool.",
          (double)st.pool_reuses },
        { "shm_max_segments", G, "Segments allowed at once (descriptors).",
          (double)st.max_segments },
    };

    put_families(out, f, sizeof(f) / sizeof(*f));
    dpc_metrics_family(out, "shm_uid_bytes", G,
                       "Shared memory held, per uid.");
    dpc_shm_per_uid(m, put_uid, &p);
    p.bytes = 0;
    dpc_metrics_family(out, "shm_uid_segments", G,
                       "Shared-memory segments held, per uid.");
    dpc_shm_per_uid(m, put_uid, &p);
}

#undef C
#undef G

void dpc_server_metrics_collect(void *arg, struct dpc_metrics_out *out)
{
    const struct dpc_server *s = arg;

    put_server_stats(s, out);
    put_listeners(s, out);
    if (s->local != NULL)
        put_shm(s, out);
}
