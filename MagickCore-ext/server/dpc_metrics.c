/*
 * dpc_metrics: see dpc_metrics.h.  The histograms are fixed arrays of
 * cumulative-on-output buckets; the HTTP side is evhttp on a listener of
 * our own, so that it can be paused when connections are too many.
 */
#include "dpc_metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "dpc_util.h"

#define PREFIX "magick_dpc_"
#define MAX_HEADERS 8192
#define READ_RATE (64 * 1024)       /* bytes a second per connection */

/* Seconds: 10 us to 10 s, the span from a native GET of a few tiles (a
 * few microseconds) to a large open on a busy spill disk; written out as
 * the le labels say them. */
static const double bounds[] = { 0.00001, 0.000025, 0.00005, 0.0001,
                                 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                                 5, 10 };
static const char *const bound_labels[] = {
    "0.00001", "0.000025", "0.00005", "0.0001", "0.00025", "0.0005",
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
    "0.5", "1", "2.5", "5", "10" };
#define NBOUNDS (sizeof(bounds) / sizeof(*bounds))
_Static_assert(NBOUNDS == sizeof(bound_labels) / sizeof(*bound_labels),
               "a label per bound");

static const struct {
    const char *protocol, *op;
} op_names[DPC_METRICS_NOPS] = {
    [DPC_METRICS_STOCK_OPEN] = { "stock", "open" },
    [DPC_METRICS_STOCK_READ] = { "stock", "read" },
    [DPC_METRICS_STOCK_WRITE] = { "stock", "write" },
    [DPC_METRICS_STOCK_DESTROY] = { "stock", "destroy" },
    [DPC_METRICS_STOCK_STATUS] = { "stock", "status" },
    [DPC_METRICS_NATIVE_OPEN] = { "native", "open" },
    [DPC_METRICS_NATIVE_PUT] = { "native", "put" },
    [DPC_METRICS_NATIVE_GET] = { "native", "get" },
    [DPC_METRICS_NATIVE_CLOSE] = { "native", "close" },
    [DPC_METRICS_NATIVE_STATUS] = { "native", "status" },
};

struct hist {
    uint64_t bucket[NBOUNDS];       /* per bucket, not cumulative */
    uint64_t count;                 /* all, +Inf included */
    double sum;
};

/* A scrape connection's bufferevent, with a reference of ours: evhttp
 * frees its own at the end (clearing its callbacks and descriptor), and
 * ours lets the sweep see that safely. */
struct held {
    struct bufferevent *bev;
    double born;
};

struct dpc_metrics {
    struct event_base *base;
    struct evhttp *http;
    struct evconnlistener *listener;
    struct event *sweep;            /* once a second: held connections */
    /* What a scrape connection may read: a request is a line and a few
     * headers; this bounds what one that keeps sending can make us hold,
     * also after evhttp let go of it and before a sweep frees it. */
    struct ev_token_bucket_cfg *read_limit;
    dpc_metrics_collect_fn collect;
    void *arg;
    struct held held[DPC_METRICS_MAX_CONNS];
    size_t nheld;
    int paused;                     /* listener off: nheld at the cap */
    char addr[80];
    struct hist hist[DPC_METRICS_NOPS];
};

struct dpc_metrics_out {
    struct evbuffer *buf;
};

void dpc_metrics_observe(struct dpc_metrics *m, enum dpc_metrics_op op,
                         double seconds)
{
    struct hist *h;
    size_t i = 0;

    if (m == NULL || (unsigned)op >= DPC_METRICS_NOPS)
        return;
    h = &m->hist[op];
    while (i < NBOUNDS && seconds > bounds[i])
        i++;
    if (i < NBOUNDS)
        h->bucket[i]++;
    h->count++;
    h->sum += seconds;
}

void dpc_metrics_begin(const struct dpc_metrics *m,
                       struct dpc_metrics_timer *t, enum dpc_metrics_op op)
{
    if (m == NULL)
        return;
    t->op = (int)op;
    t->start = dpc_now();
}

void dpc_metrics_end(struct dpc_metrics *m, struct dpc_metrics_timer *t)
{
    if (m == NULL || t->op < 0)
        return;
    dpc_metrics_observe(m, (enum dpc_metrics_op)t->op, dpc_now() - t->start);
    t->op = -1;
}

const char *dpc_metrics_escape(const char *v, char *buf, size_t len)
{
    size_t o = 0;

    for (; *v != '\0' && o + 3 < len; v++) {
        if (*v == '\\' || *v == '"' || *v == '\n') {
            buf[o++] = '\\';
            buf[o++] = *v == '\n' ? 'n' : *v;
        } else {
            buf[o++] = *v;
        }
    }
    buf[o] = '\0';
    return buf;
}

void dpc_metrics_family(struct dpc_metrics_out *out, const char *name,
                        const char *type, const char *help)
{
    evbuffer_add_printf(out->buf, "# HELP " PREFIX "%s %s\n# TYPE " PREFIX
                        "%s %s\n", name, help, name, type);
}

static void sample_head(struct dpc_metrics_out *out, const char *name,
                        const char *labels)
{
    if (labels != NULL && labels[0] != '\0')
        evbuffer_add_printf(out->buf, PREFIX "%s{%s} ", name, labels);
    else
        evbuffer_add_printf(out->buf, PREFIX "%s ", name);
}

void dpc_metrics_sample(struct dpc_metrics_out *out, const char *name,
                        const char *labels, double value)
{
    sample_head(out, name, labels);
    evbuffer_add_printf(out->buf, "%.17g\n", value);
}

void dpc_metrics_sample_u64(struct dpc_metrics_out *out, const char *name,
                            const char *labels, uint64_t value)
{
    sample_head(out, name, labels);
    evbuffer_add_printf(out->buf, "%llu\n", (unsigned long long)value);
}

/* One family for every operation: _bucket (cumulative), _sum, _count. */
static void put_histograms(const struct dpc_metrics *m,
                           struct dpc_metrics_out *out)
{
    const char *name = "request_duration_seconds";
    char labels[128];

    dpc_metrics_family(out, name, "histogram",
                       "Time from a request's arrival to its reply queued, "
                       "per protocol and operation.");
    for (size_t op = 0; op < DPC_METRICS_NOPS; op++) {
        const struct hist *h = &m->hist[op];
        uint64_t cum = 0;

        for (size_t i = 0; i < NBOUNDS; i++) {
            cum += h->bucket[i];
            snprintf(labels, sizeof(labels),
                     "protocol=\"%s\",op=\"%s\",le=\"%s\"",
                     op_names[op].protocol, op_names[op].op, bound_labels[i]);
            dpc_metrics_sample_u64(out, "request_duration_seconds_bucket",
                                   labels, cum);
        }
        snprintf(labels, sizeof(labels), "protocol=\"%s\",op=\"%s\"",
                 op_names[op].protocol, op_names[op].op);
        evbuffer_add_printf(out->buf, PREFIX "request_duration_seconds_bucket"
                            "{%s,le=\"+Inf\"} %llu\n", labels,
                            (unsigned long long)h->count);
        dpc_metrics_sample(out, "request_duration_seconds_sum", labels,
                           h->sum);
        dpc_metrics_sample_u64(out, "request_duration_seconds_count", labels,
                               h->count);
    }
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct dpc_metrics *m = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    struct dpc_metrics_out out = { .buf = evbuffer_new() };
    struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);

    evhttp_add_header(hdr, "Connection", "close");
    if (out.buf == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    if (path == NULL || strcmp(path, "/metrics") != 0) {
        evhttp_add_header(hdr, "Content-Type", "text/plain");
        evbuffer_add_printf(out.buf, "not found: try /metrics\n");
        evhttp_send_reply(req, HTTP_NOTFOUND, "Not Found", out.buf);
    } else {
        m->collect(m->arg, &out);
        put_histograms(m, &out);
        evhttp_add_header(hdr, "Content-Type",
                          "text/plain; version=0.0.4; charset=utf-8");
        evhttp_send_reply(req, HTTP_OK, "OK", out.buf);
    }
    evbuffer_free(out.buf);
}

/* 1 once evhttp has freed the connection (callbacks and descriptor
 * cleared; the bufferevent lives on by our reference). */
static int let_go(struct bufferevent *bev)
{
    bufferevent_data_cb r, w;
    bufferevent_event_cb e;
    void *arg;

    bufferevent_getcb(bev, &r, &w, &e, &arg);
    return bufferevent_getfd(bev) < 0 || (r == NULL && e == NULL);
}

/* Drops the connections evhttp is done with; ends those past their
 * lifetime (shutdown: evhttp sees the end and frees them); resumes
 * accepting below the cap.  Also from dpc_metrics_free (now < 0: all). */
static void sweep(struct dpc_metrics *m, double now)
{
    size_t k = 0;

    for (size_t i = 0; i < m->nheld; i++) {
        struct held *h = &m->held[i];

        if (now < 0 || let_go(h->bev)) {
            bufferevent_decref(h->bev);
            continue;
        }
        if (now - h->born > DPC_METRICS_LIFETIME_S)
            shutdown(bufferevent_getfd(h->bev), SHUT_RDWR);
        m->held[k++] = *h;
    }
    m->nheld = k;
    if (m->paused && m->nheld < DPC_METRICS_MAX_CONNS && now >= 0) {
        m->paused = 0;
        evconnlistener_enable(m->listener);
    }
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sweep(arg, dpc_now());
}

/* Each new connection asks for its bufferevent here: it is counted, and
 * at the cap the listener pauses until a sweep finds room. */
static struct bufferevent *on_connection(struct event_base *base, void *arg)
{
    struct dpc_metrics *m = arg;
    struct bufferevent *bev;

    if (m->nheld == DPC_METRICS_MAX_CONNS)
        sweep(m, dpc_now());
    if (m->nheld == DPC_METRICS_MAX_CONNS)
        return NULL;                /* not reached: paused at the cap */
    bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL)
        return NULL;                /* evhttp tries its own */
    bufferevent_set_rate_limit(bev, m->read_limit);
    bufferevent_incref(bev);
    m->held[m->nheld++] = (struct held){ bev, dpc_now() };
    if (m->nheld == DPC_METRICS_MAX_CONNS) {
        m->paused = 1;
        evconnlistener_disable(m->listener);
    }
    return bev;
}

static int listen_on(struct dpc_metrics *m, const char *host, unsigned port,
                     char *err, size_t errlen)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICHOST |
                                          AI_NUMERICSERV };
    struct addrinfo *ai = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    char portstr[8], ip[INET6_ADDRSTRLEN] = "?";

    snprintf(portstr, sizeof(portstr), "%u", port);
    if (getaddrinfo(host, portstr, &hints, &ai) != 0)
        return dpc_errf(err, errlen, "bad metrics address %s (a numeric "
                        "address)", host);
    m->listener = evconnlistener_new_bind(
        m->base, NULL, NULL,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
        64, ai->ai_addr, (int)ai->ai_addrlen);
    freeaddrinfo(ai);
    if (m->listener == NULL)
        return dpc_errf(err, errlen, "cannot listen on %s:%u for metrics: "
                        "%s", host, port, strerror(errno));
    getsockname(evconnlistener_get_fd(m->listener), (struct sockaddr *)&ss,
                &sslen);
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)&ss;

        evutil_inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        snprintf(m->addr, sizeof(m->addr), "[%s]:%u", ip,
                 ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const void *)&ss;

        evutil_inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        snprintf(m->addr, sizeof(m->addr), "%s:%u", ip, ntohs(a->sin_port));
    }
    if (evhttp_bind_listener(m->http, m->listener) == NULL) {
        evconnlistener_free(m->listener);
        m->listener = NULL;
        return dpc_errf(err, errlen, "out of memory");
    }
    return 0;
}

struct dpc_metrics *dpc_metrics_new(struct event_base *base, const char *host,
                                    unsigned port,
                                    dpc_metrics_collect_fn collect, void *arg,
                                    char *err, size_t errlen)
{
    struct dpc_metrics *m = calloc(1, sizeof(*m));

    if (m == NULL) {
        dpc_errf(err, errlen, "out of memory");
        return NULL;
    }
    m->base = base;
    m->collect = collect;
    m->arg = arg;
    m->http = evhttp_new(base);
    m->sweep = event_new(base, -1, EV_PERSIST, on_sweep, m);
    m->read_limit = ev_token_bucket_cfg_new(READ_RATE, READ_RATE,
                                            EV_RATE_LIMIT_MAX,
                                            EV_RATE_LIMIT_MAX, NULL);
    if (m->http == NULL || m->sweep == NULL || m->read_limit == NULL ||
        event_add(m->sweep, &(struct timeval){ 1, 0 }) < 0) {
        dpc_errf(err, errlen, "out of memory");
        goto err;
    }
    evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_max_headers_size(m->http, MAX_HEADERS);
    evhttp_set_max_body_size(m->http, 0);
    evhttp_set_timeout(m->http, DPC_METRICS_TIMEOUT_S);
    evhttp_set_gencb(m->http, on_request, m);
    evhttp_set_bevcb(m->http, on_connection, m);
    if (listen_on(m, host, port, err, errlen) < 0)
        goto err;
    return m;
err:
    dpc_metrics_free(m);
    return NULL;
}

void dpc_metrics_free(struct dpc_metrics *m)
{
    if (m == NULL)
        return;
    /* evhttp_free closes the bound listener (LEV_OPT_CLOSE_ON_FREE) and
     * every connection. */
    if (m->http != NULL)
        evhttp_free(m->http);
    else if (m->listener != NULL)
        evconnlistener_free(m->listener);
    sweep(m, -1);                   /* evhttp let go of all: our refs */
    if (m->sweep != NULL)
        event_free(m->sweep);
    if (m->read_limit != NULL)
        ev_token_bucket_cfg_free(m->read_limit);
    free(m);
}

const char *dpc_metrics_addr(const struct dpc_metrics *m)
{
    return m->addr;
}
