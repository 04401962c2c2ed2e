/*
 * dpc_link: see dpc_link.h.
 */
#include "dpc_link.h"
#include "dpc_link-internal.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "dpc_bytes.h"
#include "dpc_net.h"
#include "dpc_util.h"

#define MAX_PENDING 256
#define STOCK_NONCE_LEN 8       /* the ImageMagick 6 listener's nonce */
#define STATUS_MAX (64 * 1024)
#define RECV_IOV 1024           /* tile rows per recvmsg */
#define LOWAT_MIN (64 * 1024)   /* a GET owing less wakes for any byte */
#define LOWAT_MAX (512 * 1024)  /* bytes a GET's wait asks to wake for */
/* what OpenSSL may hold undecrypted: its read-ahead and a record */
#define TLS_SLACK (DPC_TLS_READ_BUF + 17 * 1024)

struct pending {
    uint32_t id;
    uint8_t op;
    uint32_t count, slot_bytes;
    uint8_t *const *dst;        /* GET: count buffers of slot_bytes */
    struct dpc_link_rows rows;  /* GET: how each buffer is laid out */
    uint8_t *body;              /* others: where the reply body goes */
    size_t body_cap;
};

struct dpc_link {
    pthread_mutex_t lock;
    int fd;
    struct dpc_tlsclient *tls;  /* borrowed; NULL: plaintext */
    SSL *ssl;                   /* the connection's TLS, owned */
    short want;                 /* what a TLS transfer waits for */
    int tls_full;               /* the last TLS read filled its room */
    unsigned timeout_ms;
    char name[300];
    char addr[DPC_NET_ADDRLEN]; /* dialed instead of the host, "" if none */
    uint8_t key[DPC_WIRE_KEY_LEN];
    uint32_t next_id;

    struct pending q[MAX_PENDING];  /* ring of requests awaiting replies */
    size_t q_head, q_len;

    /* the reply being received */
    uint8_t hdr_buf[DPC_WIRE_HDR_LEN];
    size_t hdr_got;
    struct dpc_wire_hdr hdr;
    uint64_t body_got;
    uint8_t reason[DPC_WIRE_MAX_REASON + 1];
    size_t body_len;            /* of the last completed sync reply */

    int greeted;                /* the last handshake got the nonce */
    int copy_ok;                /* the host takes COPY: 1, -1 not, 0 not
                                 * asked yet */
    int lowat;                  /* SO_RCVLOWAT set, 0 before the first */
    int broken;                 /* the connection is unusable */
    enum dpc_errcode lost_code; /* why it broke, when not by a refusal */
    char lost_why[DPC_ERRLEN];  /* and how, for every later request */
    char fail[512];             /* the first failed reply, "" if none */
    uint16_t fail_status;       /* its status */
    char fail_tls[DPC_ERRLEN];  /* why TLS failed */

    /* Scratch for one request and for receiving, under the link's lock:
     * too large for the stacks of ImageMagick's threads. */
    uint8_t list[8 * DPC_WIRE_MAX_COUNT];
    struct iovec tx_iov[2 + DPC_WIRE_MAX_COUNT];
    struct iovec rx_iov[RECV_IOV];
};

const char *dpc_link_name(const struct dpc_link *l)
{
    return l->name;
}

int dpc_link_fd(const struct dpc_link *l)
{
    return l->fd;
}

int dpc_link_broken(const struct dpc_link *l)
{
    return l->broken;
}

void dpc_link_lock(struct dpc_link *l)
{
    pthread_mutex_lock(&l->lock);
}

void dpc_link_unlock(struct dpc_link *l)
{
    pthread_mutex_unlock(&l->lock);
}

/* The code of a refused reply; a status this client does not know is a
 * refusal like any other. */
static enum dpc_errcode fail_code(const struct dpc_link *l)
{
    switch (l->fail_status) {
    case DPC_WS_NO_ROOM:
        return DPC_E_NO_ROOM;
    case DPC_WS_DRAINING:
        return DPC_E_DRAINING;
    default:
        return DPC_E_REFUSED;
    }
}

/* The error for a request on a broken link: the refusal that broke it,
 * if that is what did. */
static int broken(const struct dpc_link *l, char *err, size_t errlen)
{
    if (l->fail[0] != '\0')
        return dpc_errc(err, errlen, fail_code(l), "%s", l->fail);
    return dpc_errc(err, errlen,
                    l->lost_code != DPC_E_OK ? l->lost_code : DPC_E_CLOSED,
                    "%s: %s", l->name,
                    l->lost_why[0] != '\0' ? l->lost_why : "connection lost");
}

/* The reason of a failed send or receive: TLS's, else ours for a peer
 * that closed, else errno's. */
static const char *io_error(const struct dpc_link *l)
{
    if (l->ssl != NULL && errno == ECONNRESET && l->fail_tls[0] != '\0')
        return l->fail_tls;
    if (errno == ECONNRESET || errno == EPIPE || errno == ECONNABORTED)
        return "the server closed the connection (reset: stopped or "
               "crashed?)";
    return strerror(errno);
}

/* The code of a failed send or receive. */
static enum dpc_errcode sys_code(int e)
{
    return e == ECONNRESET || e == EPIPE || e == ECONNABORTED ? DPC_E_CLOSED
                                                              : DPC_E_IO;
}

static int lost(struct dpc_link *l, enum dpc_errcode code, const char *why,
                char *err, size_t errlen)
{
    int was_broken = l->broken;

    l->broken = 1;
    if (was_broken)             /* e.g. by a refused PUT: that says more */
        return broken(l, err, errlen);
    l->lost_code = code;
    snprintf(l->lost_why, sizeof(l->lost_why), "%s", why);
    return dpc_errc(err, errlen, code, "%s: %s", l->name, why);
}

/* The deadline (dpc_now() seconds) of a wait that starts now. */
static double deadline_from_now(const struct dpc_link *l)
{
    return dpc_now() + l->timeout_ms / 1000.0;
}

/* poll() for events until deadline, each try given only what is left of
 * it, so bytes trickling in cannot stretch a wait; -1 on timeout or
 * error.  Bytes TLS has decrypted already are readable now. */
static int wait_for(struct dpc_link *l, short events, double deadline,
                    short *revents, char *err, size_t errlen)
{
    struct pollfd p = { .fd = l->fd, .events = events };
    double left;
    int rc;

    /* records OpenSSL read ahead and did not hand over (the last read
     * filled its room); a partial one waits for the socket */
    if (l->ssl != NULL && (events & POLLIN) && l->tls_full &&
        SSL_has_pending(l->ssl)) {
        *revents = POLLIN;
        return 0;
    }
    do {
        left = (deadline - dpc_now()) * 1000;
        rc = left <= 0 ? 0
             : poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left + 1);
    } while (rc < 0 && errno == EINTR);
    if (rc == 0) {
        char why[96];

        snprintf(why, sizeof(why), "no answer in time (%g s: server stopped "
                 "or overloaded?)", l->timeout_ms / 1000.0);
        return lost(l, DPC_E_TIMEOUT, why, err, errlen);
    }
    if (rc < 0)
        return lost(l, DPC_E_IO, strerror(errno), err, errlen);
    *revents = p.revents;
    return 0;
}

/* How one try at connecting ended. */
enum attempt {
    ATTEMPT_OK,
    ATTEMPT_RETRY,              /* turned away before the proof: try again */
    ATTEMPT_REFUSED,            /* nothing listens (yet): a short retry */
    ATTEMPT_FAIL,
};

/* dpc_net_xfer through TLS. */
static int tls_xfer(struct dpc_link *l, void *buf, size_t n, int out,
                    double deadline, char *err, size_t errlen)
{
    uint8_t *p = buf;
    size_t done = 0;
    char why[DPC_ERRLEN] = "";

    while (done < n) {
        struct iovec iov = { p + done, n - done };
        struct pollfd pf = { .fd = l->fd };
        ssize_t k = out ? dpc_tls_writev(l->ssl, &iov, 1, &pf.events, why,
                                         sizeof(why))
                        : dpc_tls_readv(l->ssl, &iov, 1, &pf.events, why,
                                        sizeof(why));
        double left = (deadline - dpc_now()) * 1000;

        if (k > 0) {
            done += (size_t)k;
            l->tls_full = !out;     /* more may have been read ahead */
            if (done < n || !out)
                continue;
        }
        if (out && done == n) {         /* out of the write buffer too */
            int f = dpc_tls_flush(l->ssl);

            if (f > 0)
                break;
            if (f < 0)
                return dpc_errc(err, errlen, DPC_E_CLOSED, "%s: %s", l->name,
                                io_error(l));
            pf.events = POLLOUT;
            if (left < 1 || poll(&pf, 1, (int)left) == 0)
                return dpc_errc(err, errlen, DPC_E_TIMEOUT, "%s: no answer "
                                "in time", l->name);
            continue;
        }
        if (k < 0 && errno == ECONNRESET && why[0] != '\0')
            /* TLS refused us after the handshake: a client certificate
             * the server wanted and did not get, or did not accept */
            return dpc_errc(err, errlen, DPC_E_AUTH, "%s: authentication "
                            "failed (%s): does the server's --tls-ca ask "
                            "for a client certificate (cache:dpc-tls-cert, "
                            "cache:dpc-tls-key)?", l->name, why);
        if (k == 0 || (errno != EAGAIN && errno != EINTR))
            return k == 0 || errno == EPIPE || errno == ECONNRESET
                       ? dpc_errc(err, errlen, DPC_E_CLOSED, "%s: connection "
                                  "closed", l->name)
                       : dpc_errc(err, errlen, DPC_E_IO, "%s: %s", l->name,
                                  strerror(errno));
        if (left < 1 || poll(&pf, 1, (int)left) == 0)
            return dpc_errc(err, errlen, DPC_E_TIMEOUT, "%s: no answer in "
                            "time", l->name);
    }
    return 0;
}

/* Milliseconds from now to deadline, at least 1. */
static unsigned ms_left(double deadline)
{
    double left = (deadline - dpc_now()) * 1000;

    return left < 1 ? 1 : left > UINT_MAX ? UINT_MAX : (unsigned)left;
}

/* Exact transfers by deadline, for the handshake: 0, or a negative
 * dpc_errcode. */
static int xfer(struct dpc_link *l, void *buf, size_t n, int out,
                double deadline, char *err, size_t errlen)
{
    int rc = l->ssl != NULL
                 ? tls_xfer(l, buf, n, out, deadline, err, errlen)
                 : dpc_net_xfer(l->fd, buf, n, out, ms_left(deadline),
                                l->name, err, errlen);

    if (rc < 0) {
        l->broken = 1;
        l->lost_code = dpc_errcode_of(rc);
    }
    return rc;
}

/* The server closed or reset the connection. */
static int closed(int rc)
{
    return rc == -DPC_E_CLOSED;
}

/* In place of the native magic: the TLS handshake, after which the native
 * session starts inside TLS from the server's challenge. */
static enum attempt start_tls(struct dpc_link *l, const char *host,
                              double deadline, char *err, size_t errlen)
{
    enum dpc_errcode code = DPC_E_OK;

    l->ssl = dpc_tlsclient_handshake(l->tls, l->fd, host, l->name,
                                     ms_left(deadline), &code, err, errlen);
    if (l->ssl != NULL)
        return ATTEMPT_OK;
    l->broken = 1;
    l->lost_code = code;
    return code == DPC_E_CLOSED ? ATTEMPT_RETRY : ATTEMPT_FAIL;
}

/* The native handshake.  A server closes a connection before the client's
 * proof only when it is busy or at a limit (or stopping): worth another
 * try.  After the proof, closing is how it says the proof was wrong. */
static enum attempt handshake(struct dpc_link *l, const char *host,
                              double deadline, char *err, size_t errlen)
{
    uint8_t nonce[STOCK_NONCE_LEN], ns[DPC_WIRE_NONCE_LEN];
    uint8_t out[DPC_WIRE_NONCE_LEN + DPC_WIRE_MAC_LEN], mac[DPC_WIRE_MAC_LEN];
    enum attempt a;
    int rc;

    l->greeted = 0;
    if ((rc = xfer(l, nonce, sizeof(nonce), 0, deadline, err, errlen)) < 0)
        return closed(rc) ? ATTEMPT_RETRY : ATTEMPT_FAIL;
    l->greeted = 1;
    if (l->tls != NULL) {
        if ((a = start_tls(l, host, deadline, err, errlen)) != ATTEMPT_OK)
            return a;
    } else if ((rc = xfer(l, DPC_WIRE_MAGIC, DPC_WIRE_MAGIC_LEN, 1,
                          deadline, err, errlen)) < 0)
        return closed(rc) ? ATTEMPT_RETRY : ATTEMPT_FAIL;
    if ((rc = xfer(l, ns, sizeof(ns), 0, deadline, err, errlen)) < 0)
        return closed(rc) ? ATTEMPT_RETRY : ATTEMPT_FAIL;
    if (l->ssl == NULL &&
        memcmp(ns, DPC_TLS_REQUIRED_MARK, DPC_TLS_REQUIRED_LEN) == 0) {
        lost(l, DPC_E_REFUSED, "the server requires TLS: set "
             "cache:dpc-tls=on (or run the server with --tls both)", err,
             errlen);
        return ATTEMPT_FAIL;
    }
    if (RAND_bytes(out, DPC_WIRE_NONCE_LEN) != 1) {
        l->lost_code = DPC_E_OTHER;
        dpc_errf(err, errlen, "%s: no random bytes", l->name);
        return ATTEMPT_FAIL;
    }
    dpc_wire_proof(l->key, "client", ns, out, out + DPC_WIRE_NONCE_LEN);
    if ((rc = xfer(l, out, sizeof(out), 1, deadline, err, errlen)) < 0)
        return closed(rc) ? ATTEMPT_RETRY : ATTEMPT_FAIL;
    if ((rc = xfer(l, mac, sizeof(mac), 0, deadline, err, errlen)) < 0) {
        if (closed(rc)) {
            l->lost_code = DPC_E_AUTH;
            dpc_errc(err, errlen, DPC_E_AUTH, "%s: authentication failed (is "
                     "cache:shared-secret the same on both sides?)", l->name);
        }
        return ATTEMPT_FAIL;
    }
    dpc_wire_proof(l->key, "server", ns, out, out + DPC_WIRE_NONCE_LEN);
    if (CRYPTO_memcmp(mac, out + DPC_WIRE_NONCE_LEN, sizeof(mac)) != 0) {
        lost(l, DPC_E_AUTH, "the server does not know the shared secret", err,
             errlen);
        return ATTEMPT_FAIL;
    }
    return ATTEMPT_OK;
}

/* One connection and handshake, within what is left of the deadline. */
static enum attempt attempt(struct dpc_link *l, const char *host,
                            unsigned port, double deadline, char *err,
                            size_t errlen)
{
    enum attempt rc;

    SSL_free(l->ssl);
    l->ssl = NULL;
    if (l->fd >= 0)
        close(l->fd);
    l->broken = 0;
    l->lost_code = DPC_E_OK;
    l->fd = dpc_net_dial(l->addr[0] != '\0' ? l->addr : host, port,
                         ms_left(deadline), err, errlen);
    if (l->fd < 0) {
        l->lost_code = dpc_errcode_of(l->fd);
        return l->fd == -DPC_E_REFUSED ? ATTEMPT_REFUSED : ATTEMPT_FAIL;
    }
    rc = handshake(l, host, deadline, err, errlen);
    if (rc != ATTEMPT_OK)
        l->broken = 1;
    return rc;
}

/* Random bits for the backoff's jitter. */
static uint32_t jitter(void)
{
    uint32_t r = 0;

    if (RAND_bytes((uint8_t *)&r, sizeof(r)) != 1)
        r = (uint32_t)getpid() ^ (uint32_t)(dpc_now() * 1e6);
    return r;
}

struct dpc_link *dpc_link_connect(const char *host, unsigned port,
                                  const uint8_t key[DPC_WIRE_KEY_LEN],
                                  unsigned timeout_ms,
                                  enum dpc_errcode *code, char *err,
                                  size_t errlen)
{
    return dpc_link_connect_tls(host, port, key, NULL, timeout_ms, code, err,
                                errlen);
}

struct dpc_link *dpc_link_connect_tls(const char *host, unsigned port,
                                      const uint8_t key[DPC_WIRE_KEY_LEN],
                                      struct dpc_tlsclient *tls,
                                      unsigned timeout_ms,
                                      enum dpc_errcode *code, char *err,
                                      size_t errlen)
{
    return dpc_link_connect_at(host, NULL, port, key, tls, timeout_ms, code,
                               err, errlen);
}

/* A link not yet connected, named for host (dialed at addr, may be NULL);
 * NULL when out of memory, said in err and *code (may be NULL). */
static struct dpc_link *link_new(const char *host, const char *addr,
                                 unsigned port,
                                 const uint8_t key[DPC_WIRE_KEY_LEN],
                                 struct dpc_tlsclient *tls,
                                 unsigned timeout_ms, enum dpc_errcode *code,
                                 char *err, size_t errlen)
{
    struct dpc_link *l = calloc(1, sizeof(*l));

    if (code != NULL)
        *code = DPC_E_OK;
    if (l == NULL) {
        if (code != NULL)
            *code = DPC_E_NOMEM;
        dpc_errc(err, errlen, DPC_E_NOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&l->lock, NULL);
    l->fd = -1;
    l->tls = tls;
    l->timeout_ms = timeout_ms;
    memcpy(l->key, key, DPC_WIRE_KEY_LEN);
    if (addr != NULL && strlen(addr) < sizeof(l->addr))
        strcpy(l->addr, addr);
    dpc_net_peer_name(l->name, sizeof(l->name), host, l->addr[0] != '\0'
                      ? l->addr : NULL, port);
    return l;
}

struct dpc_link *dpc_link_connect_fd(int fd, const char *host,
                                     const char *addr, unsigned port,
                                     const uint8_t key[DPC_WIRE_KEY_LEN],
                                     struct dpc_tlsclient *tls,
                                     unsigned timeout_ms,
                                     enum dpc_errcode *code, char *err,
                                     size_t errlen)
{
    struct dpc_link *l = link_new(host, addr, port, key, tls, timeout_ms,
                                  code, err, errlen);

    if (l == NULL) {
        close(fd);
        return NULL;
    }
    l->fd = fd;
    /* one try: the caller tries again later, as it sees fit */
    if (handshake(l, host, dpc_now() + timeout_ms / 1000.0, err, errlen) ==
        ATTEMPT_OK)
        return l;
    if (code != NULL)
        *code = l->lost_code != DPC_E_OK ? l->lost_code : DPC_E_OTHER;
    dpc_link_free(l);
    return NULL;
}

struct dpc_link *dpc_link_connect_at(const char *host, const char *addr,
                                     unsigned port,
                                     const uint8_t key[DPC_WIRE_KEY_LEN],
                                     struct dpc_tlsclient *tls,
                                     unsigned timeout_ms,
                                     enum dpc_errcode *code, char *err,
                                     size_t errlen)
{
    struct dpc_link *l;
    double start = dpc_now(), deadline = start + timeout_ms / 1000.0;
    double refused_until = start + DPC_LINK_REFUSED_RETRY_MS / 1000.0, left;
    enum attempt rc;
    unsigned tries = 0, pause;

    if ((l = link_new(host, addr, port, key, tls, timeout_ms, code, err,
                      errlen)) == NULL)
        return NULL;
    for (;;) {
        rc = attempt(l, host, port, deadline, err, errlen);
        tries++;
        if (rc == ATTEMPT_OK)
            return l;
        if (rc == ATTEMPT_FAIL)
            break;
        /* Nothing listening is retried only briefly (a server restarting):
         * a busy server queues connections, it does not refuse them.  Near
         * the end, pauses shrink to half the time left. */
        left = ((rc == ATTEMPT_REFUSED && refused_until < deadline
                     ? refused_until : deadline) - dpc_now()) * 1000;
        if (left < DPC_NET_BACKOFF_FIRST_MS)
            break;
        pause = dpc_net_backoff_ms(tries - 1, jitter());
        if (pause > left / 2)
            pause = (unsigned)(left / 2);
        poll(NULL, 0, (int)pause);
    }
    /* magick-dpc turns clients away before its nonce; a server that closes
     * after it may also be one that does not speak the native protocol
     * (ImageMagick's own closes on our greeting). */
    if (rc == ATTEMPT_RETRY)
        dpc_errc(err, errlen, DPC_E_CLOSED, "connection closed by %s during "
                 "the handshake (server busy or limit reached%s; %u attempts "
                 "in %.1f s)",
                 l->name, l->greeted ? ", or not a magick-dpc server" : "",
                 tries, dpc_now() - start);
    else if (rc == ATTEMPT_REFUSED && tries > 1 && err != NULL)
        snprintf(err + strlen(err), errlen - strlen(err),
                 " (%u attempts in %.1f s)", tries, dpc_now() - start);
    if (code != NULL)
        *code = l->lost_code != DPC_E_OK ? l->lost_code : DPC_E_OTHER;
    dpc_link_free(l);
    return NULL;
}

void dpc_link_free(struct dpc_link *l)
{
    if (l == NULL)
        return;
    SSL_free(l->ssl);
    if (l->fd >= 0)
        close(l->fd);
    OPENSSL_cleanse(l->key, sizeof(l->key));
    pthread_mutex_destroy(&l->lock);
    free(l);
}


/* Where the next bytes of the current reply go: the header, an error
 * reason, a small body, or the GET's tile buffers (several at once, so a
 * batch of tiles takes few recvmsg calls).  Returns the iovec count. */
static int recv_targets(struct dpc_link *l, struct pending *p,
                        struct iovec *iov)
{
    uint64_t k, in;
    int n = 0;

    if (l->hdr_got < DPC_WIRE_HDR_LEN) {
        iov[0] = (struct iovec){ l->hdr_buf + l->hdr_got,
                                 DPC_WIRE_HDR_LEN - l->hdr_got };
        return 1;
    }
    if (l->hdr.status != DPC_WS_OK || p->op != DPC_OP_GET) {
        uint8_t *base = l->hdr.status != DPC_WS_OK ? l->reason : p->body;

        iov[0] = (struct iovec){ base + l->body_got,
                                 l->hdr.length - l->body_got };
        return 1;
    }
    k = l->body_got / p->slot_bytes;
    in = l->body_got % p->slot_bytes;
    iov[0] = (struct iovec){ NULL, 0 };     /* nothing left: complete */
    for (; k < p->count && n < RECV_IOV; k++, in = 0) {
        uint32_t run = p->rows.run;

        for (; in < p->slot_bytes && n < RECV_IOV; in += run - in % run)
            iov[n++] = (struct iovec){ p->dst[k] + in / run * p->rows.stride +
                                           in % run,
                                       run - in % run };
    }
    return n;
}

/* Checks a reply header against the request it answers. */
static int check_reply(struct dpc_link *l, struct pending *p, char *err,
                       size_t errlen)
{
    uint64_t want;

    if (dpc_wire_decode_hdr(l->hdr_buf, &l->hdr, err, errlen) < 0)
        return lost(l, DPC_E_PROTOCOL, "malformed reply", err, errlen);
    if (l->hdr.id != p->id || l->hdr.op != p->op)
        return lost(l, DPC_E_PROTOCOL, "reply out of order", err, errlen);
    if (l->hdr.status != DPC_WS_OK) {
        if (l->hdr.length > DPC_WIRE_MAX_REASON)
            return lost(l, DPC_E_PROTOCOL, "oversized error reply", err,
                        errlen);
        return 0;
    }
    want = p->op == DPC_OP_GET ? (uint64_t)p->count * p->slot_bytes
           : p->op == DPC_OP_OPEN ? 8 : p->op == DPC_OP_STATUS
                                            ? l->hdr.length : 0;
    if (l->hdr.length != want || (p->op != DPC_OP_GET && want > p->body_cap))
        return lost(l, DPC_E_PROTOCOL, "reply of unexpected length", err,
                    errlen);
    return 0;
}

static void complete(struct dpc_link *l)
{
    /* A refused PUT leaves the host's tiles unlike the client's, and its
     * reply may be read on behalf of another cache sharing the link: make
     * every later request on the link fail instead. */
    if (l->hdr.status != DPC_WS_OK && l->q[l->q_head].op == DPC_OP_PUT)
        l->broken = 1;
    if (l->hdr.status != DPC_WS_OK && l->fail[0] == '\0') {
        l->fail_status = l->hdr.status;
        l->reason[l->hdr.length] = '\0';
        snprintf(l->fail, sizeof(l->fail), "%s: %s", l->name,
                 (char *)l->reason);
    }
    l->body_len = l->hdr.length;
    l->q_head = (l->q_head + 1) % MAX_PENDING;
    l->q_len--;
    l->hdr_got = 0;
    l->body_got = 0;
}

/* Receives whatever has arrived, without blocking. */
static int pump(struct dpc_link *l, char *err, size_t errlen)
{
    int rc;

    for (;;) {
        struct pending *p = &l->q[l->q_head];
        struct iovec *iov = l->rx_iov;
        struct msghdr msg = { .msg_iov = iov };
        short rwant;
        ssize_t k;

        if (l->q_len == 0)
            return 0;
        msg.msg_iovlen = (size_t)recv_targets(l, p, iov);
        if (iov[0].iov_len > 0) {
            if (l->ssl != NULL) {
                size_t room = 0;

                for (size_t i = 0; i < msg.msg_iovlen; i++)
                    room += iov[i].iov_len;
                k = dpc_tls_readv(l->ssl, iov, (int)msg.msg_iovlen, &rwant,
                                  l->fail_tls, sizeof(l->fail_tls));
                l->tls_full = k > 0 && (size_t)k == room;
            } else {
                k = recvmsg(l->fd, &msg, MSG_DONTWAIT);
            }
            if (k == 0)
                return lost(l, DPC_E_CLOSED, "the server closed the "
                            "connection", err, errlen);
            if (k < 0)
                return errno == EAGAIN || errno == EINTR
                           ? 0 : lost(l, sys_code(errno), io_error(l),
                                      err, errlen);
            if (l->hdr_got < DPC_WIRE_HDR_LEN) {
                l->hdr_got += (size_t)k;
                if (l->hdr_got == DPC_WIRE_HDR_LEN &&
                    (rc = check_reply(l, p, err, errlen)) < 0)
                    return rc;
            } else {
                l->body_got += (uint64_t)k;
            }
        }
        if (l->hdr_got == DPC_WIRE_HDR_LEN && l->body_got == l->hdr.length)
            complete(l);
    }
}

/* While a large GET reply streams in, wake only once a good part of it has
 * arrived: far fewer wakeups and larger copies per recvmsg (reads of 1 GiB
 * on loopback went from 1.5-1.8 to 2.6-3.1 GB/s).  Never more than the
 * reply still owes, so the wait always ends. */
static void set_lowat(struct dpc_link *l)
{
    const struct pending *p = &l->q[l->q_head];
    int want = 1;

    if (l->q_len > 0 && l->hdr_got == DPC_WIRE_HDR_LEN &&
        p->op == DPC_OP_GET && l->hdr.status == DPC_WS_OK) {
        uint64_t left = l->hdr.length - l->body_got;

        /* under TLS, OpenSSL may hold part of a record already: ask
         * for a record less, or the wait could outlast the reply */
        if (l->ssl != NULL)
            left = left > LOWAT_MIN + TLS_SLACK ? left - TLS_SLACK : 0;
        if (left >= LOWAT_MIN)
            want = left > LOWAT_MAX ? LOWAT_MAX : (int)left;
    }
    if (want != l->lowat &&
        setsockopt(l->fd, SOL_SOCKET, SO_RCVLOWAT, &want, sizeof(want)) == 0)
        l->lowat = want;
}

/* Sends all of iov, receiving replies meanwhile so neither side blocks. */
static int xmit(struct dpc_link *l, struct iovec *iov, int n, char *err,
                size_t errlen)
{
    struct msghdr msg = { 0 };
    double deadline = deadline_from_now(l);
    size_t owed = l->q_len;
    short rev;
    int rc;

    for (;;) {
        ssize_t k;

        if (n == 0) {           /* all given to TLS: out of its buffer too */
            if (l->ssl == NULL || (rc = dpc_tls_flush(l->ssl)) > 0)
                return 0;
            if (rc < 0)
                return lost(l, sys_code(errno), io_error(l), err, errlen);
            l->want = POLLOUT;
        }
        set_lowat(l);
        if (l->q_len < owed) {      /* a reply came: the wait starts anew */
            owed = l->q_len;
            deadline = deadline_from_now(l);
        }
        if ((rc = wait_for(l, (l->want == POLLIN ? 0 : POLLOUT) |
                                  (l->q_len || l->want == POLLIN ? POLLIN : 0),
                           deadline,
                           &rev, err, errlen)) < 0)
            return rc;
        if ((rev & POLLIN) && (rc = pump(l, err, errlen)) < 0)
            return rc;
        if (l->broken)          /* a refused PUT came back meanwhile */
            return broken(l, err, errlen);
        if ((!(rev & (POLLOUT | POLLERR | POLLHUP)) && l->want != POLLIN) ||
            n == 0)
            continue;
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t)(n < 1024 ? n : 1024);
        l->want = POLLOUT;
        if (l->ssl != NULL)
            k = dpc_tls_writev(l->ssl, iov, (int)msg.msg_iovlen, &l->want,
                               l->fail_tls, sizeof(l->fail_tls));
        else
            k = sendmsg(l->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0 && errno != EAGAIN && errno != EINTR)
            return lost(l, sys_code(errno), io_error(l), err, errlen);
        for (; k > 0 && n > 0; iov++, n--) {
            if ((size_t)k < iov->iov_len) {
                iov->iov_base = (uint8_t *)iov->iov_base + k;
                iov->iov_len -= (size_t)k;
                break;
            }
            k -= (ssize_t)iov->iov_len;
        }
    }
}

/* Reserves a pending slot for a new request in *pp; waits when the ring
 * is full.  0, or a negative dpc_errcode. */
static int enqueue(struct dpc_link *l, uint8_t op, struct pending **pp,
                   char *err, size_t errlen)
{
    struct pending *p;
    int rc;

    if (l->broken)
        return broken(l, err, errlen);
    if (l->q_len == MAX_PENDING && (rc = dpc_link_wait(l, err, errlen)) < 0)
        return rc;
    p = &l->q[(l->q_head + l->q_len++) % MAX_PENDING];
    memset(p, 0, sizeof(*p));
    p->id = ++l->next_id;
    p->op = op;
    *pp = p;
    return 0;
}

static void header(uint8_t *buf, const struct pending *p, uint32_t len)
{
    struct dpc_wire_hdr h = { .version = DPC_WIRE_VERSION, .op = p->op,
                              .id = p->id, .length = len };

    dpc_wire_encode_hdr(buf, &h);
}

uint32_t dpc_link_queued(const struct dpc_link *l)
{
    return l->next_id;
}

int dpc_link_wait(struct dpc_link *l, char *err, size_t errlen)
{
    return dpc_link_wait_keep(l, 0, err, errlen);
}

int dpc_link_wait_keep(struct dpc_link *l, size_t keep, char *err,
                       size_t errlen)
{
    double deadline = deadline_from_now(l);
    size_t owed = l->q_len;
    short rev;
    int rc;

    while (l->q_len > keep) {
        if (l->broken)
            return broken(l, err, errlen);
        if (l->q_len < owed) {      /* each reply gets its own deadline */
            owed = l->q_len;
            deadline = deadline_from_now(l);
        }
        set_lowat(l);
        if ((rc = wait_for(l, POLLIN, deadline, &rev, err, errlen)) < 0 ||
            (rc = pump(l, err, errlen)) < 0)
            return rc;
    }
    /* A link broken by a refused PUT keeps saying so to every caller. */
    if (l->broken)
        return broken(l, err, errlen);
    if (l->fail[0] != '\0') {
        rc = dpc_errc(err, errlen, fail_code(l), "%s", l->fail);
        l->fail[0] = '\0';
        return rc;
    }
    return 0;
}

/* Queues and sends a request whose reply body (if any) will land in
 * body. */
static int queue_request(struct dpc_link *l, uint8_t op, const uint8_t *req,
                         uint32_t len, uint8_t *body, size_t cap, char *err,
                         size_t errlen)
{
    uint8_t hdr[DPC_WIRE_HDR_LEN];
    struct iovec iov[2];
    struct pending *p = NULL;
    int rc;

    if ((rc = enqueue(l, op, &p, err, errlen)) < 0)
        return rc;
    p->body = body;
    p->body_cap = cap;
    header(hdr, p, len);
    iov[0] = (struct iovec){ hdr, sizeof(hdr) };
    iov[1] = (struct iovec){ (void *)req, len };
    return xmit(l, iov, len ? 2 : 1, err, errlen);
}

/* The same, alone on the link: every earlier reply first, then its own. */
static int sync_request(struct dpc_link *l, uint8_t op, const uint8_t *req,
                        uint32_t len, uint8_t *body, size_t cap, char *err,
                        size_t errlen)
{
    int rc;

    if ((rc = dpc_link_wait(l, err, errlen)) < 0 ||
        (rc = queue_request(l, op, req, len, body, cap, err, errlen)) < 0)
        return rc;
    return dpc_link_wait(l, err, errlen);
}

int dpc_link_open(struct dpc_link *l, uint32_t slot_bytes, uint64_t slots,
                  uint64_t *handle, char *err, size_t errlen)
{
    uint8_t req[16] = { 0 }, reply[8];
    int rc;

    dpc_put_be32(req, slot_bytes);
    dpc_put_be64(req + 8, slots);
    if ((rc = sync_request(l, DPC_OP_OPEN, req, sizeof(req), reply,
                           sizeof(reply), err, errlen)) < 0)
        return rc;
    *handle = dpc_get_be64(reply);
    return 0;
}

int dpc_link_close_cache(struct dpc_link *l, uint64_t handle, char *err,
                         size_t errlen)
{
    uint8_t req[8];

    dpc_put_be64(req, handle);
    return sync_request(l, DPC_OP_CLOSE, req, sizeof(req), NULL, 0, err,
                        errlen);
}

int dpc_link_copy(struct dpc_link *l, uint64_t src, uint64_t dst, char *err,
                  size_t errlen)
{
    uint8_t req[16];
    char *json;
    int rc;

    if (l->copy_ok == 0) {
        if ((rc = dpc_link_status(l, &json, err, errlen)) < 0)
            return rc;
        l->copy_ok = strstr(json, "\"native_copy\":true") != NULL ? 1 : -1;
        free(json);
    }
    if (l->copy_ok < 0)
        return dpc_errc(err, errlen, DPC_E_REFUSED, "%s: the server is "
                        "older than COPY", l->name);
    dpc_put_be64(req, src);
    dpc_put_be64(req + 8, dst);
    return queue_request(l, DPC_OP_COPY, req, sizeof(req), NULL, 0, err,
                         errlen);
}

int dpc_link_status(struct dpc_link *l, char **json, char *err, size_t errlen)
{
    char *buf = malloc(STATUS_MAX + 1);
    int rc;

    *json = NULL;
    if (buf == NULL)
        return dpc_errc(err, errlen, DPC_E_NOMEM, "out of memory");
    if ((rc = sync_request(l, DPC_OP_STATUS, NULL, 0, (uint8_t *)buf,
                           STATUS_MAX, err, errlen)) < 0) {
        free(buf);
        return rc;
    }
    buf[l->body_len] = '\0';
    *json = buf;
    return 0;
}

/* Header, fixed part and slot list of a PUT or GET, then optional data. */
static int slots_request(struct dpc_link *l, uint8_t op, uint64_t handle,
                         uint32_t slot_bytes, uint32_t count,
                         const uint64_t *slots, const uint8_t *const *src,
                         uint8_t *const *dst, const struct dpc_link_rows *rows,
                         char *err, size_t errlen)
{
    uint64_t len = dpc_wire_slots_body_len(op, count, slot_bytes);
    struct dpc_link_rows r = rows != NULL ? *rows
                             : (struct dpc_link_rows){ slot_bytes, 0 };
    uint8_t head[DPC_WIRE_HDR_LEN + DPC_WIRE_SLOTS_FIXED];
    uint8_t *list = l->list;
    struct iovec *fixed = l->tx_iov, *iov = fixed;
    uint32_t per_slot;
    struct pending *p = NULL;
    int n = 0, rc;

    if (len == 0 || r.run == 0 || slot_bytes % r.run != 0)
        return dpc_errc(err, errlen, DPC_E_INVALID, "%s: bad request of %u "
                        "slots", l->name, count);
    per_slot = slot_bytes / r.run;
    if (src != NULL && per_slot > 1) {
        iov = malloc((2 + (size_t)count * per_slot) * sizeof(*iov));
        if (iov == NULL)
            return dpc_errc(err, errlen, DPC_E_NOMEM, "out of memory");
    }
    if ((rc = enqueue(l, op, &p, err, errlen)) < 0) {
        if (iov != fixed)
            free(iov);
        return rc;
    }
    p->count = count;
    p->slot_bytes = slot_bytes;
    p->dst = dst;
    p->rows = r;
    header(head, p, (uint32_t)len);
    dpc_put_be64(head + DPC_WIRE_HDR_LEN, handle);
    dpc_put_be32(head + DPC_WIRE_HDR_LEN + 8, count);
    dpc_put_be32(head + DPC_WIRE_HDR_LEN + 12, 0);
    for (uint32_t i = 0; i < count; i++)
        dpc_put_be64(list + 8 * i, slots[i]);
    iov[n++] = (struct iovec){ head, sizeof(head) };
    iov[n++] = (struct iovec){ list, (size_t)count * 8 };
    for (uint32_t i = 0; src != NULL && i < count; i++)
        for (uint32_t j = 0; j < per_slot; j++)
            iov[n++] = (struct iovec){ (uint8_t *)src[i] + j * r.stride,
                                       r.run };
    rc = xmit(l, iov, n, err, errlen);
    if (iov != fixed)
        free(iov);
    return rc;
}

int dpc_link_get(struct dpc_link *l, uint64_t handle, uint32_t slot_bytes,
                 uint32_t count, const uint64_t *slots, uint8_t *const *dst,
                 const struct dpc_link_rows *rows, char *err, size_t errlen)
{
    return slots_request(l, DPC_OP_GET, handle, slot_bytes, count, slots, NULL,
                         dst, rows, err, errlen);
}

int dpc_link_put(struct dpc_link *l, uint64_t handle, uint32_t slot_bytes,
                 uint32_t count, const uint64_t *slots,
                 const uint8_t *const *src, const struct dpc_link_rows *rows,
                 char *err, size_t errlen)
{
    return slots_request(l, DPC_OP_PUT, handle, slot_bytes, count, slots, src,
                         NULL, rows, err, errlen);
}

struct dpc_link *dpc_link_adopt(int fd, const char *name, unsigned timeout_ms)
{
    struct dpc_link *l = calloc(1, sizeof(*l));

    if (l == NULL) {
        close(fd);
        return NULL;
    }
    pthread_mutex_init(&l->lock, NULL);
    l->fd = fd;
    l->timeout_ms = timeout_ms;
    snprintf(l->name, sizeof(l->name), "%s", name);
    return l;
}
