/*
 * dpc_metrics: request latency histograms, and the Prometheus endpoint
 * that serves them with the owner's counters and gauges: GET /metrics on
 * libevent's HTTP server, in the text exposition format (version 0.0.4);
 * any other path is 404.
 *
 * The sessions time their requests (dpc_metrics_begin at a request's
 * header, dpc_metrics_end when its reply is queued); a scrape asks the
 * owner's collect callback for everything else, written through
 * dpc_metrics_family / dpc_metrics_sample, then appends the histograms.
 *
 * Bounds on the HTTP side: GET and HEAD only, 8 KiB of headers, no body,
 * 5 s of silence on a connection, DPC_METRICS_LIFETIME_S for its whole
 * life however it trickles, and DPC_METRICS_MAX_CONNS at once (then the
 * listener pauses and the kernel's backlog holds the next ones).
 * libevent 2.1 has no evhttp_set_max_connections: the connections are
 * counted through the bufferevents evhttp asks us for, each held by a
 * reference until evhttp has let go of it.
 *
 * Ownership: the metrics borrow the event base and the collect argument,
 * and own their HTTP server and listening socket.  Single-threaded, on the
 * owner's event loop.
 */
#ifndef DPC_METRICS_H
#define DPC_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct event_base;

#define DPC_METRICS_MAX_CONNS 16    /* scrape connections at once */
#define DPC_METRICS_TIMEOUT_S 5     /* silence */
#define DPC_METRICS_LIFETIME_S 10   /* a connection's whole life */

/* The operations timed, per protocol. */
enum dpc_metrics_op {
    DPC_METRICS_STOCK_OPEN,
    DPC_METRICS_STOCK_READ,         /* 'r', 'R' */
    DPC_METRICS_STOCK_WRITE,        /* 'w', 'W' */
    DPC_METRICS_STOCK_DESTROY,
    DPC_METRICS_STOCK_STATUS,       /* 's', 'D' */
    DPC_METRICS_NATIVE_OPEN,
    DPC_METRICS_NATIVE_PUT,
    DPC_METRICS_NATIVE_GET,
    DPC_METRICS_NATIVE_CLOSE,
    DPC_METRICS_NATIVE_STATUS,
    DPC_METRICS_NOPS
};

/* One request being timed, in its session.  op < 0: none. */
struct dpc_metrics_timer {
    int op;
    double start;
};

struct dpc_metrics;
struct dpc_metrics_out;

/* The owner's part of a scrape: families and samples written to out. */
typedef void (*dpc_metrics_collect_fn)(void *arg, struct dpc_metrics_out *out);

/* Listens on host:port (port 0: any free one, see dpc_metrics_addr).
 * NULL with the reason in err. */
struct dpc_metrics *dpc_metrics_new(struct event_base *base, const char *host,
                                    unsigned port,
                                    dpc_metrics_collect_fn collect, void *arg,
                                    char *err, size_t errlen);
/* Closes the listener and every scrape connection.  NULL is fine. */
void dpc_metrics_free(struct dpc_metrics *m);
/* The bound address as HOST:PORT (for the log). */
const char *dpc_metrics_addr(const struct dpc_metrics *m);

/* A request of op starts now; nothing when m is NULL (no metrics). */
void dpc_metrics_begin(const struct dpc_metrics *m,
                       struct dpc_metrics_timer *t, enum dpc_metrics_op op);
/* The request t times has its reply queued: counted in its histogram.
 * Nothing when m is NULL or no request is being timed. */
void dpc_metrics_end(struct dpc_metrics *m, struct dpc_metrics_timer *t);
/* Counts one request of op that took seconds. */
void dpc_metrics_observe(struct dpc_metrics *m, enum dpc_metrics_op op,
                         double seconds);

/* For the collect callback: a family's # HELP and # TYPE lines (type
 * "counter" or "gauge"), then its samples.  name without the magick_dpc_
 * prefix, which both add; labels is NULL or the inside of {}, its values
 * escaped already (dpc_metrics_escape). */
void dpc_metrics_family(struct dpc_metrics_out *out, const char *name,
                        const char *type, const char *help);
void dpc_metrics_sample(struct dpc_metrics_out *out, const char *name,
                        const char *labels, double value);
void dpc_metrics_sample_u64(struct dpc_metrics_out *out, const char *name,
                            const char *labels, uint64_t value);
/* A label value escaped (backslash, quote, newline) into buf. */
const char *dpc_metrics_escape(const char *v, char *buf, size_t len);

#endif
