/*
 * dpc_local: see dpc_local.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "dpc_bytes.h"
#include "dpc_list.h"
#include "dpc_listen.h"
#include "dpc_local.h"
#include "dpc_log.h"
#include "dpc_lproto.h"
#include "dpc_shm.h"
#include "dpc_util.h"

#define LISTEN_BACKLOG 64
#define MAX_GROUPS 256
#define STEPS_PER_WAKEUP 64

enum lconn_state {
    LC_READ,                        /* gathering one request */
    LC_WRITE,                       /* sending its reply */
    LC_LAST_WRITE,                  /* sending an error, then closing */
    LC_NSTATES
};

struct lconn {
    struct dpc_local *local;
    struct dpc_list_node link;      /* on local->conns */
    struct dpc_shm_peer peer;
    int fd;
    enum lconn_state state;
    struct event *rev, *wev;
    uint8_t in[DPC_LP_HDR + DPC_LP_MAX_REQ];
    size_t in_len;
    uint8_t *out;                   /* one reply: header and body */
    size_t out_len, out_off;
    int out_fd;                     /* sent with the reply's first byte */
    uint64_t requests;
    uint64_t held;                  /* segments it holds (not idle) */
    double last_active;
};

struct dpc_local {
    struct dpc_local_cfg cfg;
    struct event_base *base;
    struct dpc_listen *ln;          /* pauses itself after EMFILE & co */
    struct dpc_shm *shm;
    struct dpc_list conns;          /* of lconn, oldest first */
    uint64_t next_id, refused;
    struct dpc_log_limit refusal_log;   /* a refused flood cannot fill logs */
    struct dpc_log_limit request_log;   /* nor refused requests */
    int bound;                      /* we created cfg.path: unlink it */
};

static const char *const state_names[LC_NSTATES] = {
    "read", "write", "last-write",
};

static void lconn_close(struct lconn *c, const char *why)
{
    struct dpc_local *l = c->local;
    size_t freed = dpc_shm_conn_closed(l->shm, c->peer.conn);

    dpc_log(freed ? DPC_LOG_INFO : DPC_LOG_TRACE,
            "local %llu (pid %d uid %u): %s; %zu segment%s freed",
            (unsigned long long)c->peer.conn, (int)c->peer.pid,
            (unsigned)c->peer.uid, why, freed, freed == 1 ? "" : "s");
    dpc_list_remove(&l->conns, &c->link);
    event_free(c->rev);
    event_free(c->wev);
    if (c->out_fd >= 0)
        close(c->out_fd);
    free(c->out);
    close(c->fd);
    free(c);
}

/* Every transition goes through here. */
static void set_state(struct lconn *c, enum lconn_state to)
{
    dpc_log(DPC_LOG_TRACE, "local %llu: %s -> %s",
            (unsigned long long)c->peer.conn, state_names[c->state],
            state_names[to]);
    c->state = to;
    if (to == LC_READ) {
        event_del(c->wev);
        event_add(c->rev, NULL);
    } else {
        event_del(c->rev);
    }
}

/* Room for one reply of up to len body bytes; NULL when out of memory. */
static uint8_t *reply_buf(struct lconn *c, size_t len)
{
    c->out = malloc(DPC_LP_HDR + len);
    return c->out != NULL ? c->out + DPC_LP_HDR : NULL;
}

/* Completes the reply in c->out: header for a body of len bytes, and the
 * descriptor to send with it (ownership taken, -1 for none). */
static void reply_seal(struct lconn *c, uint8_t op, enum dpc_lp_status st,
                       size_t len, int fd)
{
    dpc_lp_encode_hdr(c->out, op, (uint8_t)st, (uint32_t)len);
    c->out_len = DPC_LP_HDR + len;
    c->out_off = 0;
    c->out_fd = fd;
}

/* Queues one reply (takes ownership of fd, -1 for none). */
static int reply(struct lconn *c, uint8_t op, enum dpc_lp_status st,
                 const void *body, size_t len, int fd)
{
    uint8_t *b = reply_buf(c, len);

    if (b == NULL) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (len != 0)
        memcpy(b, body, len);
    reply_seal(c, op, st, len, fd);
    return 0;
}

static int reply_grant(struct lconn *c, uint8_t op, uint64_t id,
                       uint64_t size, int fd)
{
    uint8_t b[DPC_LP_GRANT_LEN];

    dpc_put_le64(b, id);
    dpc_put_le64(b + 8, size);
    return reply(c, op, DPC_LP_OK, b, sizeof(b), fd);
}

/* LIST or STATUS, written straight into the reply. */
static int reply_json(struct lconn *c, uint8_t op)
{
    size_t cap = op == DPC_LP_LIST ? DPC_LP_MAX_REPLY : 64 * 1024, n;
    char *json = (char *)reply_buf(c, cap);

    if (json == NULL)
        return -1;
    n = op == DPC_LP_LIST
            ? dpc_shm_list_json(c->local->shm, dpc_now(), json, cap)
            : dpc_shm_status_json(c->local->shm, json, cap);
    reply_seal(c, op, DPC_LP_OK, n, -1);
    return 0;
}

static enum dpc_lp_status serve(struct lconn *c, const struct dpc_lp_req *r,
                                char *err, size_t errlen)
{
    struct dpc_shm *m = c->local->shm;
    enum dpc_lp_status st;
    uint64_t id = 0, size = r->size;
    int fd = -1;

    switch (r->op) {
    case DPC_LP_ALLOC:
    case DPC_LP_PUBLISH:
        st = dpc_shm_create(m, &c->peer, r->size,
                            r->op == DPC_LP_PUBLISH ? r->name : NULL,
                            r->ttl_ms, dpc_now(), &fd, &id, err, errlen);
        break;
    case DPC_LP_ATTACH:
        st = dpc_shm_attach(m, &c->peer, r->owner, r->name, dpc_now(), &fd,
                            &id, &size, err, errlen);
        break;
    case DPC_LP_FREE:
    case DPC_LP_COMMIT:             /* a committed name is the registry's */
        st = r->op == DPC_LP_FREE
                 ? dpc_shm_release(m, &c->peer, r->id, err, errlen)
                 : dpc_shm_commit(m, &c->peer, r->id, dpc_now(), err, errlen);
        if (st == DPC_LP_OK && c->held != 0)
            c->held--;
        return st;
    case DPC_LP_REMOVE:
        return dpc_shm_remove(m, &c->peer, r->owner, r->name, err, errlen);
    default:
        return reply_json(c, r->op) == 0 ? DPC_LP_OK : DPC_LP_EIO;
    }
    if (st == DPC_LP_OK && reply_grant(c, r->op, id, size, fd) < 0)
        return DPC_LP_EIO;
    if (st == DPC_LP_OK && r->op != DPC_LP_ATTACH)
        c->held++;
    return st;
}

/* Successes at trace level, refusals at info, with the request's size,
 * segment id or name. */
static void trace(const struct lconn *c, const struct dpc_lp_req *r,
                  enum dpc_lp_status st, const char *err)
{
    char what[DPC_LP_NAME_MAX + 64] = "";

    if (r->op == DPC_LP_ALLOC || r->op == DPC_LP_PUBLISH)
        snprintf(what, sizeof(what), "%llu bytes %s",
                 (unsigned long long)r->size, r->name);
    else if (r->op == DPC_LP_FREE || r->op == DPC_LP_COMMIT)
        snprintf(what, sizeof(what), "segment %llu",
                 (unsigned long long)r->id);
    else
        snprintf(what, sizeof(what), "%s", r->name);
    if (st == DPC_LP_OK)
        dpc_log(DPC_LOG_TRACE, "local %llu (pid %d uid %u): %s %s",
                (unsigned long long)c->peer.conn, (int)c->peer.pid,
                (unsigned)c->peer.uid, dpc_lp_op_name(r->op), what);
    else                            /* a client's loop cannot fill the log */
        dpc_log_limited(&c->local->request_log, DPC_LOG_INFO,
                        "local %llu (pid %d uid %u): %s %s: %s",
                        (unsigned long long)c->peer.conn, (int)c->peer.pid,
                        (unsigned)c->peer.uid, dpc_lp_op_name(r->op), what,
                        err);
}

/* A whole request is in c->in: serve it and queue the reply. */
static void handle(struct lconn *c)
{
    char err[DPC_ERRLEN] = "";
    struct dpc_lp_hdr h = { 0 };
    struct dpc_lp_req r;
    enum dpc_lp_status st;

    c->requests++;
    c->last_active = dpc_now();
    if (dpc_lp_parse_hdr(c->in, 0, &h, err, sizeof(err)) < 0 ||
        dpc_lp_parse_req(&h, c->in + DPC_LP_HDR, &r, err, sizeof(err)) < 0) {
        dpc_log(DPC_LOG_WARN, "local %llu (pid %d uid %u): bad request: %s",
                (unsigned long long)c->peer.conn, (int)c->peer.pid,
                (unsigned)c->peer.uid, err);
        reply(c, h.op, DPC_LP_EINVAL, err, strlen(err), -1);
        set_state(c, LC_LAST_WRITE);
        return;
    }
    st = serve(c, &r, err, sizeof(err));
    trace(c, &r, st, err);
    if (st != DPC_LP_OK)
        reply(c, r.op, st, err, strlen(err), -1);
    else if (c->out == NULL)
        reply(c, r.op, st, NULL, 0, -1);
    set_state(c, c->out != NULL ? LC_WRITE : LC_LAST_WRITE);
}

/* 1 when the reply is out, 0 when the socket is full, -1 on error. */
static int flush(struct lconn *c)
{
    while (c->out_off < c->out_len) {
        struct iovec iov = { c->out + c->out_off, c->out_len - c->out_off };
        union {
            char buf[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } ctl;
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t n;

        if (c->out_fd >= 0) {
            struct cmsghdr *cm;

            memset(&ctl, 0, sizeof(ctl));
            msg.msg_control = ctl.buf;
            msg.msg_controllen = sizeof(ctl.buf);
            cm = CMSG_FIRSTHDR(&msg);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(cm), &c->out_fd, sizeof(int));
        }
        n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        if (c->out_fd >= 0) {
            close(c->out_fd);
            c->out_fd = -1;
        }
        c->out_off += (size_t)n;
    }
    free(c->out);
    c->out = NULL;
    return 1;
}

static void drive(struct lconn *c);

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    drive(arg);
}

/* 1 with a whole request in c->in, 0 for more later, -1 closed/error. */
static int gather(struct lconn *c)
{
    for (;;) {
        size_t want = DPC_LP_HDR;
        ssize_t n;

        if (c->in_len >= DPC_LP_HDR) {
            uint32_t len = dpc_get_le32(c->in + 4);

            /* An oversized length is refused by the parser: read no body. */
            want += len <= DPC_LP_MAX_REQ ? len : 0;
        }
        if (c->in_len == want)
            return 1;
        n = recv(c->fd, c->in + c->in_len, want - c->in_len, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        if (n <= 0)
            return -1;
        c->in_len += (size_t)n;
    }
}

static void drive(struct lconn *c)
{
    int step;

    for (step = 0; step < STEPS_PER_WAKEUP; step++) {
        int rc;

        switch (c->state) {
        case LC_READ:
            rc = gather(c);
            if (rc < 0) {
                lconn_close(c, "disconnected");
                return;
            }
            if (rc == 0)
                return;
            handle(c);
            c->in_len = 0;
            break;
        case LC_WRITE:
        case LC_LAST_WRITE:
            rc = flush(c);
            if (rc < 0 || (rc == 1 && c->state == LC_LAST_WRITE)) {
                lconn_close(c, rc < 0 ? "send failed" : "closed after error");
                return;
            }
            if (rc == 0) {
                event_add(c->wev, NULL);
                return;
            }
            set_state(c, LC_READ);
            break;
        default:
            return;
        }
    }
    /* Out of steps with a reply pending: finish it on the next wakeup
     * (reading is off until then). */
    if (c->state != LC_READ)
        event_add(c->wev, NULL);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    drive(arg);
}

static int peer_allowed(const struct dpc_local *l, int fd,
                        const struct ucred *cr)
{
    gid_t groups[MAX_GROUPS];
    socklen_t glen = sizeof(groups);

    if (l->cfg.nallow_uids == 0 && l->cfg.nallow_gids == 0)
        return cr->uid == geteuid();
    for (size_t i = 0; i < l->cfg.nallow_uids; i++)
        if (cr->uid == l->cfg.allow_uids[i])
            return 1;
    for (size_t i = 0; i < l->cfg.nallow_gids; i++)
        if (cr->gid == l->cfg.allow_gids[i])
            return 1;
#ifdef SO_PEERGROUPS
    if (l->cfg.nallow_gids != 0 &&
        getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) == 0)
        for (size_t g = 0; g < glen / sizeof(gid_t); g++)
            for (size_t i = 0; i < l->cfg.nallow_gids; i++)
                if (groups[g] == l->cfg.allow_gids[i])
                    return 1;
#else
    (void)fd; (void)groups; (void)glen;
#endif
    return 0;
}

/* A refusal the client reads as the reply to its first request. */
static void refuse(struct dpc_local *l, int fd, const struct ucred *cr,
                   enum dpc_lp_status st, const char *why)
{
    uint8_t buf[DPC_LP_HDR + 256];
    int n = snprintf((char *)buf + DPC_LP_HDR, sizeof(buf) - DPC_LP_HDR,
                     "magick-dpc refused uid %u (pid %d): %s",
                     (unsigned)cr->uid, (int)cr->pid, why);

    l->refused++;
    dpc_log_limited(&l->refusal_log, DPC_LOG_WARN,
                    "local: refused pid %d uid %u gid %u: %s", (int)cr->pid,
                    (unsigned)cr->uid, (unsigned)cr->gid, why);
    n = n < 0 ? 0 : n > 255 ? 255 : n;
    dpc_lp_encode_hdr(buf, DPC_LP_NONE, (uint8_t)st, (uint32_t)n);
    (void)!send(fd, buf, DPC_LP_HDR + (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
}

static size_t uid_conns(const struct dpc_local *l, uid_t uid)
{
    struct dpc_list_node *n;
    size_t k = 0;

    for (n = l->conns.head; n != NULL; n = n->next)
        k += DPC_LIST_ENTRY(n, struct lconn, link)->peer.uid == uid;
    return k;
}

static void on_accept(void *arg, int fd, struct sockaddr *sa, int salen)
{
    struct dpc_local *l = arg;
    struct ucred cr;
    socklen_t crlen = sizeof(cr);
    struct lconn *c;

    (void)sa;
    (void)salen;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0) {
        dpc_log(DPC_LOG_WARN, "local: SO_PEERCRED: %s", strerror(errno));
        close(fd);
        return;
    }
    if (!peer_allowed(l, fd, &cr)) {
        refuse(l, fd, &cr, DPC_LP_EPERM,
               "not allowed by dpc-allow-uids / dpc-allow-gids");
        return;
    }
    if (l->conns.count >= l->cfg.max_clients) {
        refuse(l, fd, &cr, DPC_LP_ENOSPC,
               "too many local clients (max-dpc-local-clients)");
        return;
    }
    if (uid_conns(l, cr.uid) >= l->cfg.max_clients_per_uid) {
        refuse(l, fd, &cr, DPC_LP_ENOSPC, "too many local clients of this "
               "uid (max-dpc-local-clients-per-uid)");
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return;
    }
    c->local = l;
    c->fd = fd;
    c->out_fd = -1;
    c->last_active = dpc_now();
    c->peer = (struct dpc_shm_peer){ ++l->next_id, cr.uid, cr.gid, cr.pid };
    c->rev = event_new(l->base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->wev = event_new(l->base, fd, EV_WRITE, on_write, c);
    if (c->rev == NULL || c->wev == NULL || event_add(c->rev, NULL) < 0) {
        if (c->rev)
            event_free(c->rev);
        if (c->wev)
            event_free(c->wev);
        close(fd);
        free(c);
        return;
    }
    dpc_list_push(&l->conns, &c->link);
    dpc_log(DPC_LOG_TRACE, "local %llu: pid %d uid %u gid %u connected",
            (unsigned long long)c->peer.conn, (int)cr.pid, (unsigned)cr.uid,
            (unsigned)cr.gid);
}

/* 1 when a server answers on path. */
static int path_live(const struct sockaddr_un *sun)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), live;

    if (fd < 0)
        return 0;
    live = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
    close(fd);
    return live;
}

static int make_parent(const char *path)
{
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char *slash;

    snprintf(dir, sizeof(dir), "%s", path);
    slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return 0;
    *slash = '\0';
    return mkdir(dir, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

/* The socket systemd passed (its unit sets the path, owner and mode). */
static int take_activated(struct dpc_local *l, char *err, size_t errlen)
{
    int flags = fcntl(l->cfg.fd, F_GETFL);

    if (flags < 0 || fcntl(l->cfg.fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        close(l->cfg.fd);
        return dpc_errf(err, errlen, "passed socket %d: %s", l->cfg.fd,
                        strerror(errno));
    }
    l->ln = dpc_listen_new(l->base, l->cfg.fd, &(struct dpc_listen_cfg){
        .name = l->cfg.path, .accept = on_accept, .arg = l,
        .log = &l->refusal_log }, err, errlen);
    return l->ln != NULL ? 0 : -1;
}

static int bind_socket(struct dpc_local *l, char *err, size_t errlen)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd, rc;
    mode_t old;

    if (strlen(l->cfg.path) >= sizeof(sun.sun_path))
        return dpc_errf(err, errlen, "socket path too long: %s", l->cfg.path);
    memcpy(sun.sun_path, l->cfg.path, strlen(l->cfg.path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return dpc_errf(err, errlen, "socket: %s", strerror(errno));
    make_parent(l->cfg.path);
    old = umask(0177);              /* born 0600, widened below if asked */
    rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    if (rc < 0 && errno == EADDRINUSE && !path_live(&sun)) {
        unlink(l->cfg.path);        /* stale: its server is gone */
        rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    }
    umask(old);
    if (rc < 0) {
        rc = errno;
        close(fd);
        if (rc == EADDRINUSE)
            return dpc_errf(err, errlen, "another magick-dpc serves %s",
                            l->cfg.path);
        return dpc_errf(err, errlen, "cannot bind %s: %s", l->cfg.path,
                        strerror(rc));
    }
    l->bound = 1;
    if (chmod(l->cfg.path, l->cfg.mode) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        close(fd);
        return dpc_errf(err, errlen, "%s: %s", l->cfg.path, strerror(errno));
    }
    l->ln = dpc_listen_new(l->base, fd, &(struct dpc_listen_cfg){
        .name = l->cfg.path, .accept = on_accept, .arg = l,
        .log = &l->refusal_log }, err, errlen);
    return l->ln != NULL ? 0 : -1;
}

struct dpc_local *dpc_local_new(struct event_base *base,
                                const struct dpc_local_cfg *cfg, char *err,
                                size_t errlen)
{
    struct dpc_local *l = calloc(1, sizeof(*l));
    char how[32];

    if (l == NULL) {
        dpc_errf(err, errlen, "out of memory");
        return NULL;
    }
    l->cfg = *cfg;
    l->base = base;
    if (l->cfg.max_clients_per_uid == 0)
        l->cfg.max_clients_per_uid = l->cfg.max_clients;
    l->shm = dpc_shm_new(cfg->shm_budget);
    if (l->shm == NULL) {
        dpc_errf(err, errlen, "out of memory");
        goto fail;
    }
    dpc_shm_set_limits(l->shm, &cfg->shm_limits);
    dpc_shm_set_max_fds(l->shm, cfg->max_segments);
    if ((cfg->activated ? take_activated(l, err, errlen)
                        : bind_socket(l, err, errlen)) < 0)
        goto fail;
    if (cfg->activated)
        snprintf(how, sizeof(how), "passed by systemd");
    else
        snprintf(how, sizeof(how), "mode %04o", cfg->mode);
    dpc_log(DPC_LOG_INFO, "listening on %s (%s; shared memory budget %llu "
            "bytes, at most %zu segments at once)", cfg->path, how,
            (unsigned long long)cfg->shm_budget, cfg->max_segments);
    return l;
fail:
    dpc_local_free(l);
    return NULL;
}

void dpc_local_free(struct dpc_local *l)
{
    if (l == NULL)
        return;
    while (l->conns.head != NULL)
        lconn_close(DPC_LIST_ENTRY(l->conns.head, struct lconn, link),
                    "server stopping");
    dpc_listen_free(l->ln);
    if (l->bound)
        unlink(l->cfg.path);
    dpc_shm_free(l->shm);
    free(l);
}

/* Connections that hold no segment and sent no whole request for the idle
 * timeout: silent ones, and ones that stalled mid-request or stopped
 * reading their reply. */
static void close_idle(struct dpc_local *l, double t)
{
    struct dpc_list_node *n = l->conns.head, *next;
    double limit = (double)l->cfg.idle_timeout_ms / 1000;

    if (l->cfg.idle_timeout_ms == 0)
        return;
    for (; n != NULL; n = next) {
        struct lconn *c = DPC_LIST_ENTRY(n, struct lconn, link);

        next = n->next;
        if (c->held == 0 && t - c->last_active >= limit)
            lconn_close(c, "idle (dpc-local-idle-timeout)");
    }
}

void dpc_local_sweep(struct dpc_local *l, double t)
{
    size_t n = dpc_shm_expire(l->shm, t);

    close_idle(l, t);
    dpc_log_limited_flush(&l->refusal_log, DPC_LOG_WARN,
                          "local refusals");
    dpc_log_limited_flush(&l->request_log, DPC_LOG_INFO,
                          "refused local requests");
    if (n != 0)
        dpc_log(DPC_LOG_INFO, "local: %zu name%s expired", n,
                n == 1 ? "" : "s");
}

const struct dpc_shm *dpc_local_shm(const struct dpc_local *l)
{
    return l->shm;
}

size_t dpc_local_status_json(const struct dpc_local *l, char *buf,
                             size_t len)
{
    return dpc_shm_status_json(l->shm, buf, len);
}

size_t dpc_local_fd_room(uint64_t nofile, unsigned tcp_clients,
                         unsigned listeners, unsigned local_clients)
{
    uint64_t keep = 2 * (uint64_t)tcp_clients + listeners +
                    2 * (uint64_t)local_clients + DPC_LOCAL_FD_SLACK;

    if (nofile <= keep)
        return 0;
    return nofile - keep > DPC_SHM_MAX_SEGMENTS ? DPC_SHM_MAX_SEGMENTS
                                                : (size_t)(nofile - keep);
}
