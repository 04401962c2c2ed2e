/*
 * dpc_server: see dpc_server.h.  Listeners and their pacing, admission
 * (dpc_admit decides, this file acts), the once-a-second sweep for
 * handshake and idle timeouts, signals, and stats.  The connections
 * themselves are dpc_conn's, in the dpc_conn_set the server embeds and
 * hands its status JSON and admission to as callbacks: dpc_conn does not
 * call back into this file.  The state is in dpc_server-internal.h, which
 * dpc_server_metrics.c reads for a scrape of the metrics endpoint.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/util.h>

#include "dpc_admit.h"
#include "dpc_conn.h"
#include "dpc_listen.h"
#include "dpc_log.h"
#include "dpc_metrics.h"
#include "dpc_server-internal.h"
#include "dpc_server.h"
#include "dpc_systemd.h"
#include "dpc_tlsserver.h"
#include "dpc_util.h"

/* Clients the kernel holds, connected but not accepted, while every
 * handshake slot is taken: enough for a burst of several hundred.  Linux
 * caps it at net.core.somaxconn (4096 by default since 5.4); past it,
 * new SYNs are dropped and clients retransmit them, which only slows them. */
#define LISTEN_BACKLOG 1024

#define DRAIN_TICK_MS 100           /* how often a drain checks its end */

/* Tells systemd (when it runs us with NOTIFY_SOCKET); a failure is
 * logged once, and the server serves on. */
static void notify(struct dpc_server *s, const char *state)
{
    char err[DPC_ERRLEN];

    if (dpc_systemd_notify(state, err, sizeof(err)) < 0 && !s->sd_failed) {
        s->sd_failed = 1;
        dpc_log(DPC_LOG_WARN, "systemd notification failed: %s", err);
    }
}

static uint64_t caches_open(const struct dpc_server *s);

/* STATUS=, when it changed: what systemctl status shows. */
static void notify_status(struct dpc_server *s)
{
    char line[sizeof(s->sd_status)];

    snprintf(line, sizeof(line), "STATUS=%s %llu clients, %llu caches open",
             s->conns.draining ? "draining:" : "serving",
             (unsigned long long)(s->conns.waiting.count +
                                  s->conns.unauth.count +
                                  s->conns.auth.count),
             (unsigned long long)caches_open(s));
    if (strcmp(line, s->sd_status) == 0)
        return;
    memcpy(s->sd_status, line, sizeof(line));
    notify(s, line);
}

/* 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104. */
static int is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)(const void *)sa)
                          ->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a =
            &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;

        return IN6_IS_ADDR_LOOPBACK(a) ||
               (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

static void format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;

        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
        snprintf(buf, len, "%s:%u", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)sa;

        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
        snprintf(buf, len, "[%s]:%u", host, port);
    } else {
        snprintf(buf, len, "unknown");
    }
}

/* Listeners on while a handshake slot is free and accept has not failed
 * just now; off otherwise, leaving new clients in the listen backlog. */
static void update_accepting(struct dpc_server *s)
{
    int want = !s->stopping && !s->accept_failed &&
               !dpc_admit_full(s->admit);

    if (want == s->accepting)
        return;
    s->accepting = want;
    if (!want)
        s->accept_pauses++;
    dpc_log(DPC_LOG_TRACE, "%s accepting: %u handshakes, %u waiting",
            want ? "resumed" : "stopped", dpc_admit_handshakes(s->admit),
            dpc_admit_waiting(s->admit));
    for (size_t i = 0; i < s->nlisteners; i++)
        dpc_listen_enable(s->listeners[i].ln, want);
}

/* A connection left the handshake (authenticated or closed): greets the
 * waiting connections now admissible and resumes accepting if there is
 * room.  The connection set's handshake_done. */
static void admit_next(void *arg)
{
    struct dpc_server *s = arg;
    struct dpc_conn *c, *next;

    if (s->stopping)
        return;
    for (c = dpc_conn_of(s->conns.waiting.head);
         c != NULL && !dpc_admit_full(s->admit); c = next) {
        next = dpc_conn_of(c->link.next);
        if (dpc_admit_can_greet(s->admit, c->src)) {
            dpc_admit_greet(s->admit, c->src);
            dpc_conn_greet(c);
        }
    }
    update_accepting(s);
}

/* Connections one source may hold before authenticating: half of the
 * clients, so that one host cannot take them all. */
static unsigned max_pending(const struct dpc_server *s)
{
    return s->cfg.max_clients > 1 ? s->cfg.max_clients / 2 : 1;
}

/* Closes fd at once, as a warning within the budget of its source. */
static void refuse(struct dpc_server *s, int fd, const char *peer,
                   const struct dpc_admit_key *key, const char *why)
{
    s->refused++;
    dpc_log_limited(dpc_conn_preauth_log(&s->conns, key), DPC_LOG_WARN,
                    "refused %s: %s", peer, why);
    close(fd);
}

static void on_accept(void *arg, int fd, struct sockaddr *sa, int salen)
{
    struct dpc_listener *l = arg;
    struct dpc_server *s = l->server;
    struct dpc_admit_source *src;
    struct dpc_admit_key key;
    struct dpc_conn *c;
    enum dpc_admit_verdict v;
    char peer[80], why[160], from[DPC_ADMIT_KEY_STRLEN];

    (void)salen;
    format_addr(sa, peer, sizeof(peer));
    dpc_admit_key(sa, &key);
    if (s->conns.waiting.count + s->conns.unauth.count +
        s->conns.auth.count >= s->cfg.max_clients) {
        snprintf(why, sizeof(why), "%u clients connected (max-dpc-clients)",
                 s->cfg.max_clients);
        refuse(s, fd, peer, &key, why);
        return;
    }
    v = dpc_admit_arrive(s->admit, &key, &src);
    if (v == DPC_ADMIT_REFUSE || v == DPC_ADMIT_NOMEM) {
        dpc_admit_key_str(&key, from, sizeof(from));
        if (v == DPC_ADMIT_NOMEM)
            snprintf(why, sizeof(why), "out of memory");
        else
            snprintf(why, sizeof(why), "%s already has %u connections not "
                     "yet authenticated (half of max-dpc-clients)", from,
                     max_pending(s));
        refuse(s, fd, peer, &key, why);
        return;
    }
    s->accepted++;
    l->accepted++;
    s->waited += v == DPC_ADMIT_WAIT;
    c = dpc_conn_new(&s->conns, fd, peer, l->flavor, src,
                     v == DPC_ADMIT_GREET);
    if (c != NULL) {
        c->open_count = &l->open;
        l->open++;
        dpc_log(DPC_LOG_TRACE, "conn %llu from %s on %s%s",
                (unsigned long long)s->conns.next_id, peer, l->addr,
                v == DPC_ADMIT_WAIT ? ": waits for a handshake slot" : "");
    } else {
        admit_next(s);
    }
    update_accepting(s);
}

/* One listener failed to accept (out of descriptors, EMFILE & co) and
 * pauses a second: the others pause with it, descriptors are the
 * process's.  Then all resume together. */
static void on_paused(void *arg, int paused)
{
    struct dpc_listener *l = arg;

    l->server->accept_failed = paused;
    update_accepting(l->server);
}

/* since_accept: a handshake must finish in time however slowly its bytes
 * trickle in; an authenticated client is timed from its last activity. */
static void close_expired(struct dpc_server *s, struct dpc_list *l,
                          double limit, double now, int since_accept,
                          const char *why)
{
    struct dpc_conn *c = dpc_conn_of(l->head), *next;

    for (; c != NULL; c = next) {
        next = dpc_conn_of(c->link.next);
        if (now - (since_accept ? c->accepted : c->last_active) <= limit)
            continue;
        if (since_accept) {
            s->handshake_timeouts++;
            dpc_conn_drop(c, why);
        } else {
            dpc_conn_close(c, why);
        }
    }
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct dpc_server *s = arg;
    double now = dpc_now();
    double limit = (double)s->cfg.handshake_timeout_ms / 1000;

    /* The waiting first: a handshake timing out may greet one of them. */
    close_expired(s, &s->conns.waiting, limit, now, 1,
                  "handshake timeout (waited for a slot all along)");
    close_expired(s, &s->conns.unauth, limit, now, 1, "handshake timeout");
    if (s->cfg.idle_timeout_ms != 0)
        close_expired(s, &s->conns.auth,
                      (double)s->cfg.idle_timeout_ms / 1000, now, 0,
                      "idle timeout");
    dpc_log_limited_flush(&s->refuse_log, DPC_LOG_WARN,
                          "failures to accept");
    for (size_t i = 0; i < DPC_CONN_PREAUTH_LOGS; i++)
        dpc_log_limited_flush(&s->conns.preauth_log[i], DPC_LOG_WARN,
                              "lines about unauthenticated connections "
                              "from one source");
    dpc_log_limited_flush(&s->conns.drop_log, DPC_LOG_WARN,
                          "dropped connections");
    dpc_log_limited_flush(&s->conns.close_log, DPC_LOG_WARN,
                          "connections closed on errors");
    dpc_log_limited_flush(&s->conns.open_log, DPC_LOG_WARN,
                          "refused opens");
    dpc_log_limited_flush(&s->conns.hint_log, DPC_LOG_WARN,
                          "hints of the other ImageMagick generation");
    if (s->local != NULL)
        dpc_local_sweep(s->local, now);
    dpc_store_trim(s->store, now);
    notify_status(s);
}

/* Caches open on TCP connections: what a drain waits for. */
static uint64_t caches_open(const struct dpc_server *s)
{
    struct dpc_store_stats st;

    dpc_store_get_stats(s->store, &st);
    return st.caches;
}

/* Ends the loop; cut: caches were still open (a drain cut short). */
static void stop(struct dpc_server *s, int cut)
{
    s->result = cut ? DPC_SERVER_CUT : 0;
    notify(s, "STOPPING=1\nSTATUS=stopping");
    event_base_loopexit(s->base, NULL);
}

/* Every DRAIN_TICK_MS while draining: stops once no cache is open, or
 * when the drain timed out, closing what is left. */
static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    struct dpc_server *s = arg;
    uint64_t n = caches_open(s);
    double now = dpc_now();

    (void)fd;
    (void)what;
    if (n == 0) {
        dpc_log(DPC_LOG_INFO, "drained in %.1f s: no cache open; stopping",
                now - s->drain_started);
        stop(s, 0);
    } else if (now >= s->drain_deadline) {
        dpc_log(DPC_LOG_WARN, "drain timeout after %.1f s: %llu caches still "
                "open on %llu connections are cut; stopping",
                now - s->drain_started, (unsigned long long)n,
                (unsigned long long)s->conns.auth.count);
        stop(s, 1);
    }
}

static void conns_drain(void *arg)
{
    dpc_server_drain(arg, "requested by a client");
}

void dpc_server_drain(struct dpc_server *s, const char *why)
{
    struct timeval tick = { 0, DRAIN_TICK_MS * 1000 };

    if (s->conns.draining)
        return;
    s->conns.draining = 1;
    s->drain_started = dpc_now();
    s->drain_deadline = s->drain_started +
                        (double)s->cfg.drain_timeout_ms / 1000;
    dpc_log(DPC_LOG_INFO, "draining (%s): new caches refused, %llu open "
            "served for up to %.0f s", why,
            (unsigned long long)caches_open(s),
            (double)s->cfg.drain_timeout_ms / 1000);
    notify(s, "STOPPING=1");
    notify_status(s);
    event_add(s->drain_tick, &tick);
    on_drain_tick(-1, 0, s);            /* nothing open: stop now */
}

/* SIGINT stops at once; SIGTERM drains, unless drain_timeout_ms is 0; a
 * second signal during a drain stops at once. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct dpc_server *s = arg;
    char why[32];

    (void)what;
    if (s->conns.draining) {
        uint64_t n = caches_open(s);

        dpc_log(n ? DPC_LOG_WARN : DPC_LOG_INFO, "signal %d while draining: "
                "stopping now, %llu caches cut", (int)sig,
                (unsigned long long)n);
        stop(s, n != 0);
        return;
    }
    if (sig == SIGTERM && s->cfg.drain_timeout_ms != 0) {
        snprintf(why, sizeof(why), "signal %d", (int)sig);
        dpc_server_drain(s, why);
        return;
    }
    dpc_log(DPC_LOG_INFO, "signal %d: stopping", (int)sig);
    stop(s, 0);
}

/* A listening socket systemd passed: non-blocking, and its address. */
static int take_activated(const struct dpc_listen_spec *spec,
                          struct sockaddr_storage *ss, char *err,
                          size_t errlen)
{
    socklen_t sslen = sizeof(*ss);
    int flags = fcntl(spec->fd, F_GETFL);

    if (flags < 0 || fcntl(spec->fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
        getsockname(spec->fd, (struct sockaddr *)ss, &sslen) < 0) {
        dpc_errf(err, errlen, "passed socket %d: %s", spec->fd,
                 strerror(errno));
        close(spec->fd);
        return -1;
    }
    return spec->fd;
}

/* A new listening socket on spec's host:port; its address in ss. */
static int bind_tcp(const struct dpc_listen_spec *spec,
                    struct sockaddr_storage *ss, char *err, size_t errlen)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *ai = NULL;
    socklen_t sslen = sizeof(*ss);
    char port[8];
    int fd = -1, on = 1, rc;

    snprintf(port, sizeof(port), "%u", spec->port);
    rc = getaddrinfo(spec->host, port, &hints, &ai);
    if (rc != 0)
        return dpc_errf(err, errlen, "cannot resolve %s: %s", spec->host,
                        gai_strerror(rc));
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                ai->ai_protocol);
    if (fd < 0)
        goto syserr;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
        listen(fd, LISTEN_BACKLOG) < 0 ||
        getsockname(fd, (struct sockaddr *)ss, &sslen) < 0)
        goto syserr;
    freeaddrinfo(ai);
    return fd;
syserr:
    dpc_errf(err, errlen, "cannot listen on %s:%u: %s", spec->host, spec->port,
             strerror(errno));
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return -1;
}

static int bind_one(struct dpc_server *s, const struct dpc_listen_spec *spec,
                    struct dpc_listener *l, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int fd = spec->activated ? take_activated(spec, &ss, err, errlen)
                             : bind_tcp(spec, &ss, err, errlen);

    if (fd < 0)
        return -1;
    l->server = s;
    l->flavor = spec->flavor;
    format_addr((struct sockaddr *)&ss, l->addr, sizeof(l->addr));
    l->ln = dpc_listen_new(s->base, fd, &(struct dpc_listen_cfg){
        .name = l->addr, .accept = on_accept, .paused = on_paused, .arg = l,
        .log = &s->refuse_log }, err, errlen);
    if (l->ln == NULL)
        return -1;
    dpc_log(DPC_LOG_INFO, "listening on %s (ImageMagick %s clients%s)",
            l->addr, spec->flavor == DPC_STOCK_IM7 ? "7" : "6",
            spec->activated ? ", passed by systemd" : "");
    if (!is_loopback((struct sockaddr *)&ss))
        dpc_log(DPC_LOG_WARN, "%s is reachable beyond this host: stock "
                "ImageMagick clients on it speak plaintext, and the stock "
                "protocol encrypts nothing and has the server prove "
                "nothing, so anyone on the path can read and alter their "
                "pixels and ride their authenticated connections; across a "
                "network you do not trust, use the drop-in libMagickCore "
                "over TLS (cache:dpc-tls=on) instead", l->addr);
    return 0;
}

static int add_events(struct dpc_server *s)
{
    struct timeval second = { 1, 0 };

    s->sigint = evsignal_new(s->base, SIGINT, on_signal, s);
    s->sigterm = evsignal_new(s->base, SIGTERM, on_signal, s);
    s->sweep = event_new(s->base, -1, EV_PERSIST, on_sweep, s);
    s->drain_tick = event_new(s->base, -1, EV_PERSIST, on_drain_tick, s);
    if (s->sigint == NULL || s->sigterm == NULL || s->sweep == NULL ||
        s->drain_tick == NULL)
        return -1;
    return event_add(s->sigint, NULL) | event_add(s->sigterm, NULL) |
           event_add(s->sweep, &second);
}

/* Segments hold one descriptor each: only what RLIMIT_NOFILE (read now,
 * after magick-dpc raised it) leaves once the listeners and every client
 * allowed are provided for, so one local user cannot starve the TCP side
 * of descriptors. */
static void fit_segments(struct dpc_server *s)
{
    struct rlimit rl;
    uint64_t nofile;
    unsigned tcp = s->nlisteners ? s->cfg.max_clients + s->cfg.max_unauth : 0;
    size_t room;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        nofile = UINT64_MAX;
    else
        nofile = rl.rlim_cur;
    room = dpc_local_fd_room(nofile, tcp, (unsigned)s->nlisteners + 1,
                             s->cfg.local.max_clients);
    if (s->cfg.local.max_segments == 0 || room < s->cfg.local.max_segments)
        s->cfg.local.max_segments = room;
    if (room < 1024)
        dpc_log(room == 0 ? DPC_LOG_WARN : DPC_LOG_INFO,
                "descriptors: RLIMIT_NOFILE %llu leaves %zu for shared-memory "
                "segments after those kept for %u TCP and %u local clients "
                "(raise LimitNOFILE, or lower --max-clients, "
                "--max-local-clients)", (unsigned long long)nofile, room,
                tcp, s->cfg.local.max_clients);
}

/* A default socket path already served by another server is not fatal:
 * that one keeps the host's shared memory. */
static int open_local(struct dpc_server *s, char *err, size_t errlen)
{
    fit_segments(s);
    s->local = dpc_local_new(s->base, &s->cfg.local, err, errlen);
    if (s->local != NULL || !s->cfg.local.path_is_default ||
        s->nlisteners == 0)
        return s->local != NULL ? 0 : -1;
    dpc_log(DPC_LOG_WARN, "no shared-memory tier here: %s", err);
    return 0;
}

static int open_store(struct dpc_server *s, char *err, size_t errlen)
{
    double t0 = dpc_now();

    s->store = dpc_store_new(&s->cfg.store, err, errlen);
    if (s->store == NULL)
        return -1;
    if (s->cfg.store.preallocate)
        dpc_log(DPC_LOG_INFO, "preallocated %llu MiB of memory in %.1f s",
                (unsigned long long)(s->cfg.store.mem_budget >> 20),
                dpc_now() - t0);
    return 0;
}

/* The TLS context, unless native clients are plaintext only. */
static int open_tls(struct dpc_server *s, const struct dpc_server_cfg *cfg,
                    char *err, size_t errlen)
{
    struct dpc_tlsserver_cfg tc = { .cert = cfg->tls_cert,
                                    .key = cfg->tls_key, .ca = cfg->tls_ca };

    s->cfg.tls_cert = s->cfg.tls_key = s->cfg.tls_ca = NULL;
    explicit_bzero(s->cfg.tlspsk, sizeof(s->cfg.tlspsk));
    if (cfg->tls == DPC_TLS_OFF || cfg->nlisten == 0)
        return 0;
    memcpy(tc.psk, cfg->tlspsk, sizeof(tc.psk));
    s->tls = dpc_tlsserver_new(&tc, err, errlen);
    explicit_bzero(tc.psk, sizeof(tc.psk));
    if (s->tls == NULL)
        return -1;
    dpc_log(DPC_LOG_INFO, "native clients: TLS 1.3%s (--tls %s)%s%s",
            cfg->tls == DPC_TLS_BOTH ? " or plaintext" : " only",
            dpc_tls_mode_name(cfg->tls),
            cfg->tls_cert != NULL ? ", certificate " : ", PSK only",
            cfg->tls_cert != NULL ? cfg->tls_cert : "");
    return 0;
}

static size_t status_json(void *arg, char *buf, size_t len)
{
    return dpc_server_stats_json(arg, buf, len);
}

static int open_metrics(struct dpc_server *s, char *err, size_t errlen)
{
    if (s->cfg.metrics.host[0] == '\0')
        return 0;
    s->metrics = dpc_metrics_new(s->base, s->cfg.metrics.host,
                                 s->cfg.metrics.port,
                                 dpc_server_metrics_collect, s, err, errlen);
    if (s->metrics == NULL)
        return -1;
    dpc_log(DPC_LOG_INFO, "metrics on http://%s/metrics",
            dpc_metrics_addr(s->metrics));
    return 0;
}

/* The connection set borrows what the server owns. */
static void init_conns(struct dpc_server *s)
{
    struct dpc_conn_set *cs = &s->conns;

    cs->base = s->base;
    cs->store = s->store;
    cs->admit = s->admit;
    cs->sipkey = s->cfg.sipkey;
    cs->wirekey = s->cfg.wirekey;
    cs->busy_poll_us = s->cfg.busy_poll_us;
    cs->metrics = s->metrics;
    cs->tls_mode = s->cfg.tls;
    cs->tls = s->tls;
    cs->status = status_json;
    cs->handshake_done = admit_next;
    cs->drain = conns_drain;
    cs->arg = s;
}

struct dpc_server *dpc_server_new(const struct dpc_server_cfg *cfg, char *err,
                                  size_t errlen)
{
    struct dpc_server *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        dpc_errf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->cfg.listen = NULL;
    if (s->cfg.max_unauth == 0)
        s->cfg.max_unauth = 1;
    if (s->cfg.max_unauth_per_source == 0)
        s->cfg.max_unauth_per_source = (s->cfg.max_unauth + 1) / 2;
    s->started = dpc_now();
    s->accepting = 1;               /* listeners start enabled */
    s->base = event_base_new();
    s->listeners = calloc(cfg->nlisten, sizeof(*s->listeners));
    s->admit = dpc_admit_new(&(struct dpc_admit_cfg){
        .max_handshakes = s->cfg.max_unauth,
        .per_source = s->cfg.max_unauth_per_source,
        .max_pending = max_pending(s) });
    if (s->base == NULL || s->listeners == NULL || s->admit == NULL ||
        add_events(s) < 0) {
        dpc_errf(err, errlen, "out of memory");
        goto err;
    }
    /* The store first: a server that listens is ready, preallocated. */
    if (open_store(s, err, errlen) < 0 || open_tls(s, cfg, err, errlen) < 0)
        goto err;
    if (open_metrics(s, err, errlen) < 0)
        goto err;
    init_conns(s);
    for (; s->nlisteners < cfg->nlisten; s->nlisteners++)
        if (bind_one(s, &cfg->listen[s->nlisteners],
                     &s->listeners[s->nlisteners], err, errlen) < 0)
            goto err;
    if (cfg->local.path[0] != '\0' && open_local(s, err, errlen) < 0)
        goto err;
    return s;
err:
    dpc_server_free(s);
    return NULL;
}

int dpc_server_run(struct dpc_server *s)
{
    /* Listening, the store preallocated (dpc_server_new did both): the
     * kernel completes clients' connections from here on. */
    notify(s, "READY=1");
    notify_status(s);
    return event_base_dispatch(s->base) < 0 ? -1 : s->result;
}

static void close_all(struct dpc_list *l)
{
    while (l->head != NULL)
        dpc_conn_close(dpc_conn_of(l->head), "server stopping");
}

void dpc_server_free(struct dpc_server *s)
{
    if (s == NULL)
        return;
    s->stopping = 1;
    for (size_t i = 0; i < s->nlisteners; i++)
        dpc_listen_free(s->listeners[i].ln);
    close_all(&s->conns.waiting);
    close_all(&s->conns.unauth);
    close_all(&s->conns.auth);
    free(s->listeners);         /* after the connections: they count in it */
    dpc_admit_free(s->admit);
    dpc_local_free(s->local);
    if (s->sigint != NULL)
        event_free(s->sigint);
    if (s->sigterm != NULL)
        event_free(s->sigterm);
    if (s->sweep != NULL)
        event_free(s->sweep);
    if (s->drain_tick != NULL)
        event_free(s->drain_tick);
    dpc_metrics_free(s->metrics);
    dpc_store_free(s->store);
    dpc_tlsserver_free(s->tls);
    if (s->base != NULL)
        event_base_free(s->base);
    free(s);
}

void dpc_server_get_stats(const struct dpc_server *s,
                          struct dpc_server_stats *st)
{
    const struct dpc_list *lists[] = { &s->conns.unauth, &s->conns.auth };

    memset(st, 0, sizeof(*st));
    dpc_store_get_stats(s->store, &st->store);
    st->clients = s->conns.waiting.count + s->conns.unauth.count +
                  s->conns.auth.count;
    st->unauthenticated = s->conns.unauth.count;
    st->waiting = s->conns.waiting.count;
    st->requests = s->conns.requests_closed;
    for (size_t i = 0; i < 2; i++)
        for (const struct dpc_list_node *n = lists[i]->head; n; n = n->next)
            st->requests += dpc_conn_counters(dpc_conn_of(n))->requests;
    st->accepted = s->accepted;
    st->refused = s->refused;
    st->handshake_timeouts = s->handshake_timeouts;
    st->auth_failures = s->conns.auth_failures;
    st->accept_pauses = s->accept_pauses;
    st->waited = s->waited;
    st->uptime = dpc_now() - s->started;
    st->draining = s->conns.draining;
    if (st->draining) {
        st->drain_left = s->drain_deadline - dpc_now();
        if (st->drain_left < 0)
            st->drain_left = 0;
    }
}

size_t dpc_server_stats_json(const struct dpc_server *s, char *buf,
                             size_t len)
{
    struct dpc_server_stats st;
    size_t off;
    int n;

    dpc_server_get_stats(s, &st);
    n = snprintf(buf, len,
                 "{\"native_copy\":true,"
                 "\"caches_open\":%llu,\"bytes_ram\":%llu,"
                 "\"bytes_spilled\":%llu,\"memory_budget\":%llu,"
                 "\"disk_budget\":%llu,\"clients_connected\":%llu,"
                 "\"unauthenticated_clients\":%llu,"
                 "\"clients_waiting\":%llu,\"requests_served\":%llu,"
                 "\"connections_accepted\":%llu,\"connections_refused\":%llu,"
                 "\"handshake_timeouts\":%llu,\"accept_pauses\":%llu,"
                 "\"connections_waited\":%llu,"
                 "\"auth_failures\":%llu,"
                 "\"opens_refused\":%llu,\"bytes_warm\":%llu,"
                 "\"warm_reuses\":%llu,\"preallocated\":%s,"
                 "\"uptime_seconds\":%.3f,\"draining\":%s,"
                 "\"drain_seconds_left\":%.1f,\"drain_timeout_seconds\":%.1f",
                 (unsigned long long)st.store.caches,
                 (unsigned long long)st.store.bytes_ram,
                 (unsigned long long)st.store.bytes_spilled,
                 (unsigned long long)st.store.mem_budget,
                 (unsigned long long)st.store.disk_budget,
                 (unsigned long long)st.clients,
                 (unsigned long long)st.unauthenticated,
                 (unsigned long long)st.waiting,
                 (unsigned long long)st.requests,
                 (unsigned long long)st.accepted,
                 (unsigned long long)st.refused,
                 (unsigned long long)st.handshake_timeouts,
                 (unsigned long long)st.accept_pauses,
                 (unsigned long long)st.waited,
                 (unsigned long long)st.auth_failures,
                 (unsigned long long)st.store.refused,
                 (unsigned long long)st.store.bytes_warm,
                 (unsigned long long)st.store.warm_reuses,
                 st.store.preallocated ? "true" : "false", st.uptime,
                 st.draining ? "true" : "false", st.drain_left,
                 (double)s->cfg.drain_timeout_ms / 1000);
    if (n < 0)
        return 0;
    off = (size_t)n < len ? (size_t)n : len - 1;
    if (s->local != NULL && off + 9 < len) {
        memcpy(buf + off, ",\"shm\":", 7);
        off += 7;
        off += dpc_local_status_json(s->local, buf + off, len - off - 1);
    }
    if (off + 1 < len)
        buf[off++] = '}';
    buf[off] = '\0';
    return off;
}
