/*
 * dpc_shmclient: see dpc_shmclient.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "dpc_bytes.h"
#include "dpc_net.h"
#include "dpc_shmclient.h"
#include "dpc_util.h"

#define MAX_FDS 4                   /* room to catch (and close) extras */
#define MAX_ERROR_TEXT 4096

struct dpc_shmc {
    int fd;
    enum dpc_lp_status last;
    unsigned timeout_ms;
    char path[108];
    char name[128];                 /* "magick-dpc at PATH", for errors */
};

int dpc_shmc_default_path(char *buf, size_t len)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int n;

    if (xdg != NULL && xdg[0] == '/')
        n = snprintf(buf, len, "%s/magick-dpc.sock", xdg);
    else
        n = snprintf(buf, len, "/run/magick-dpc/magick-dpc.sock");
    return n > 0 && (size_t)n < len ? 0 : -1;
}

enum dpc_lp_status dpc_shmc_last_status(const struct dpc_shmc *c)
{
    return c->last;
}

/* 1 when no one but root or uid can have put a socket at path: it is
 * absolute, the socket and every directory above it are root's or uid's,
 * and no directory is writable by others unless sticky (as /tmp is: then
 * others cannot replace the entry checked one step before). */
static int path_owned_by(const char *path, uid_t uid)
{
    char p[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct stat st;
    char *slash;

    if (path[0] != '/' || strlen(path) >= sizeof(p))
        return 0;
    memcpy(p, path, strlen(path) + 1);
    if (lstat(p, &st) < 0 || (st.st_uid != 0 && st.st_uid != uid))
        return 0;
    while (strcmp(p, "/") != 0) {
        slash = strrchr(p, '/');
        if (slash == p)
            p[1] = '\0';
        else
            *slash = '\0';
        if (lstat(p, &st) < 0 || !S_ISDIR(st.st_mode) ||
            (st.st_uid != 0 && st.st_uid != uid) ||
            ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 &&
             (st.st_mode & S_ISVTX) == 0))
            return 0;
    }
    return 1;
}

/* Root, ourselves, or a uid that owns the whole way to the socket. */
static int trusted_server(int fd, const char *path, char *err, size_t errlen)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
        return dpc_errf(err, errlen, "%s: SO_PEERCRED: %s", path,
                        strerror(errno));
    if (cr.uid == 0 || cr.uid == geteuid() || path_owned_by(path, cr.uid))
        return 0;
    return dpc_errf(err, errlen, "%s is served by uid %u, which is neither "
                    "root, us, nor the owner of every directory on its path: "
                    "not trusted", path, (unsigned)cr.uid);
}

struct dpc_shmc *dpc_shmc_connect(const char *path, unsigned timeout_ms,
                                  char *err, size_t errlen)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    struct dpc_shmc *c;
    int fd;

    if (strlen(path) >= sizeof(sun.sun_path)) {
        dpc_errf(err, errlen, "socket path too long: %s", path);
        return NULL;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        dpc_errf(err, errlen, "socket: %s", strerror(errno));
        return NULL;
    }
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        dpc_errf(err, errlen, "cannot connect to magick-dpc at %s: %s (is "
                 "'magick-dpc serve' running there? the path is set by "
                 "cache:dpc-socket)", path, strerror(errno));
        goto fail;
    }
    if (trusted_server(fd, path, err, errlen) < 0)
        goto fail;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        dpc_errf(err, errlen, "out of memory");
        goto fail;
    }
    c->fd = fd;
    c->timeout_ms = timeout_ms;
    snprintf(c->path, sizeof(c->path), "%s", path);
    snprintf(c->name, sizeof(c->name), "magick-dpc at %s", path);
    return c;
fail:
    close(fd);
    return NULL;
}

void dpc_shmc_close(struct dpc_shmc *c)
{
    if (c == NULL)
        return;
    close(c->fd);
    free(c);
}

static int io_error(struct dpc_shmc *c, ssize_t n, char *err, size_t errlen)
{
    if (n == 0)
        return dpc_errf(err, errlen, "magick-dpc at %s closed the connection",
                        c->path);
    if (errno == EAGAIN)
        return dpc_errf(err, errlen, "magick-dpc at %s: timed out", c->path);
    return dpc_errf(err, errlen, "magick-dpc at %s: %s", c->path,
                    strerror(errno));
}

static void close_fds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
}

/* The reply header and whatever descriptors came with it. */
static int recv_header(struct dpc_shmc *c, uint8_t hdr[DPC_LP_HDR], int *fds,
                       size_t *nfds, char *err, size_t errlen)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { hdr, DPC_LP_HDR };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = ctl.buf,
                          .msg_controllen = sizeof(ctl.buf) };
    struct cmsghdr *cm;
    ssize_t n;

    *nfds = 0;
    do
        n = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return io_error(c, n, err, errlen);
    for (cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
        size_t k;

        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k && *nfds < MAX_FDS; i++)
            memcpy(&fds[(*nfds)++], CMSG_DATA(cm) + i * sizeof(int),
                   sizeof(int));
    }
    if (msg.msg_flags & MSG_CTRUNC) {
        close_fds(fds, *nfds);
        return dpc_errf(err, errlen, "magick-dpc at %s sent too many "
                        "descriptors", c->path);
    }
    if ((size_t)n < DPC_LP_HDR &&
        dpc_net_xfer(c->fd, hdr + n, DPC_LP_HDR - (size_t)n, 0, c->timeout_ms,
                     c->name, err, errlen) < 0) {
        close_fds(fds, *nfds);
        return -1;
    }
    return 0;
}

/* One round trip.  The body (NUL-terminated) is the caller's to free; *fd
 * is the one descriptor sent, or -1.  An error reply becomes -1 with the
 * server's reason in err. */
static int call(struct dpc_shmc *c, const struct dpc_lp_req *r, char **body,
                uint32_t *len, int *fd, char *err, size_t errlen)
{
    uint8_t req[DPC_LP_HDR + DPC_LP_MAX_REQ], hdr[DPC_LP_HDR];
    int fds[MAX_FDS], rc;
    size_t n = dpc_lp_encode_req(r, req, sizeof(req)), nfds;
    struct dpc_lp_hdr h;

    *body = NULL;
    *fd = -1;
    c->last = DPC_LP_OK;
    if (n == 0)
        return dpc_errf(err, errlen, "invalid %s request (name?)",
                        dpc_lp_op_name(r->op));
    if ((rc = dpc_net_xfer(c->fd, req, n, 1, c->timeout_ms, c->name, err,
                           errlen)) < 0) {
        /* A server that refuses us answers and closes at once, so our
         * request may meet a closed socket while its reason waits to be
         * read: prefer that reason. */
        if (rc != -DPC_E_CLOSED)
            return -1;
        if (recv_header(c, hdr, fds, &nfds, NULL, 0) < 0)
            return -1;
    } else if (recv_header(c, hdr, fds, &nfds, err, errlen) < 0) {
        return -1;
    }
    if (dpc_lp_parse_hdr(hdr, 1, &h, err, errlen) < 0) {
        close_fds(fds, nfds);
        return -1;
    }
    if ((h.op != r->op && h.op != DPC_LP_NONE) ||
        (h.status != DPC_LP_OK && h.len > MAX_ERROR_TEXT) ||
        (h.op == DPC_LP_NONE && h.status == DPC_LP_OK) || nfds > 1) {
        close_fds(fds, nfds);
        return dpc_errf(err, errlen, "magick-dpc at %s: malformed reply to "
                        "%s", c->path, dpc_lp_op_name(r->op));
    }
    *body = malloc((size_t)h.len + 1);
    if (*body == NULL) {
        close_fds(fds, nfds);
        return dpc_errf(err, errlen, "out of memory");
    }
    if (dpc_net_xfer(c->fd, *body, h.len, 0, c->timeout_ms, c->name, err,
                     errlen) < 0) {
        close_fds(fds, nfds);
        free(*body);
        *body = NULL;
        return -1;
    }
    (*body)[h.len] = '\0';
    *len = h.len;
    if (h.status != DPC_LP_OK) {
        c->last = (enum dpc_lp_status)h.status;
        close_fds(fds, nfds);
        dpc_errf(err, errlen, "magick-dpc at %s: %s: %.*s", c->path,
                 dpc_lp_status_name(h.status), (int)strnlen(*body, 400),
                 *body);
        free(*body);
        *body = NULL;
        return -1;
    }
    *fd = nfds == 1 ? fds[0] : -1;
    return 0;
}

int dpc_shm_check_fd(int fd, uint64_t size, enum dpc_shm_kind kind,
                     char *err, size_t errlen)
{
    int need = F_SEAL_SHRINK | F_SEAL_GROW, seals;
    struct stat st;

    if (kind == DPC_SHM_CACHE)
        need |= F_SEAL_SEAL;
    if (kind == DPC_SHM_ATTACH)
        need |= F_SEAL_WRITE;
    if (fstat(fd, &st) < 0)
        return dpc_errf(err, errlen, "fstat: %s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        return dpc_errf(err, errlen, "segment is not a regular file");
    if ((st.st_mode & 077) != 0)
        return dpc_errf(err, errlen, "segment has mode %04o: others may "
                        "open it", (unsigned)(st.st_mode & 07777));
    if (st.st_size < 0 || (uint64_t)st.st_size != size)
        return dpc_errf(err, errlen, "segment is %lld bytes, the server "
                        "said %llu", (long long)st.st_size,
                        (unsigned long long)size);
    seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0)
        return dpc_errf(err, errlen, "segment cannot be sealed (not a memfd "
                        "created with MFD_ALLOW_SEALING)");
    if ((seals & need) != need)
        return dpc_errf(err, errlen, "segment is not sealed (seals %#x, "
                        "need %#x): its size or contents could change under "
                        "us", (unsigned)seals, (unsigned)need);
    if (kind == DPC_SHM_ATTACH && (fcntl(fd, F_GETFL) & O_ACCMODE) != O_RDONLY)
        return dpc_errf(err, errlen, "segment of a published image is "
                        "writable: want a read-only descriptor");
    return 0;
}

int dpc_shmc_grant(struct dpc_shmc *c, const struct dpc_lp_req *r, int *fd,
                   uint64_t *id, uint64_t *size, char *err, size_t errlen)
{
    char *body, why[DPC_ERRLEN];
    uint32_t len = 0;
    enum dpc_shm_kind kind = r->op == DPC_LP_ALLOC ? DPC_SHM_CACHE
                             : r->op == DPC_LP_PUBLISH ? DPC_SHM_PUBLISH
                                                       : DPC_SHM_ATTACH;

    if (call(c, r, &body, &len, fd, err, errlen) < 0)
        return -1;
    if (len != DPC_LP_GRANT_LEN || *fd < 0) {
        free(body);
        if (*fd >= 0)
            close(*fd);
        return dpc_errf(err, errlen, "magick-dpc at %s: malformed %s grant",
                        c->path, dpc_lp_op_name(r->op));
    }
    *id = dpc_get_le64((const uint8_t *)body);
    *size = dpc_get_le64((const uint8_t *)body + 8);
    free(body);
    if ((kind != DPC_SHM_ATTACH && *size != r->size) ||
        dpc_shm_check_fd(*fd, *size, kind, why, sizeof(why)) < 0) {
        close(*fd);
        *fd = -1;
        return dpc_errf(err, errlen, "refusing the segment from magick-dpc "
                        "at %s: %s", c->path,
                        *size != r->size && kind != DPC_SHM_ATTACH
                            ? "not the size asked for" : why);
    }
    return 0;
}

int dpc_shmc_simple(struct dpc_shmc *c, const struct dpc_lp_req *r,
                    char *err, size_t errlen)
{
    char *body;
    uint32_t len;
    int fd;

    if (call(c, r, &body, &len, &fd, err, errlen) < 0)
        return -1;
    free(body);
    if (fd >= 0) {
        close(fd);
        return dpc_errf(err, errlen, "magick-dpc at %s: unexpected "
                        "descriptor", c->path);
    }
    return 0;
}

int dpc_shmc_json(struct dpc_shmc *c, enum dpc_lp_op op, char **json,
                  char *err, size_t errlen)
{
    struct dpc_lp_req r = { .op = op };
    uint32_t len;
    int fd;

    if (call(c, &r, json, &len, &fd, err, errlen) < 0)
        return -1;
    if (fd >= 0)
        close(fd);
    return 0;
}
