/*
 * A magick-dpc host for unit tests of the native client (dpc_link,
 * dpc_tiles): the real server-side state machine (dpc_native) over a real
 * dpc_store, served on a free loopback port by one thread, one connection
 * at a time, with blocking I/O.  What differs from dpc_conn is only the
 * transport, plus switches that make the hard cases happen on demand:
 *
 *   chunk           send replies at most this many bytes per send(), so
 *                   the client receives headers and bodies in pieces
 *   hold_bytes      once hold_after requests are answered, read this many
 *                   request bytes before answering more (given up after
 *                   NH_HOLD_MS: a client that waits for each reply before
 *                   sending the next never gets there; held_ok says)
 *   close_after     close the connection, unanswered, once this many
 *                   requests have been taken (0: never)
 *   drop_after      (__atomic, may be set while serving) close the
 *                   connection, unanswered, once this many more requests
 *                   have been taken
 *
 * Threading: nh_start() starts the thread; the test thread may read the
 * counters only after nh_stop() joined it, but for the atomic ones.
 */
#ifndef NATIVEHOST_H
#define NATIVEHOST_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dpc_native.h"
#include "dpc_store.h"
#include "dpc_util.h"
#include "dpc_wire.h"

#define NH_HOLD_MS 3000
#define NH_IBUF (1u << 20)

struct nativehost {
    /* set before nh_start() */
    uint64_t mem_budget;        /* 0: 64 MiB */
    size_t chunk;               /* 0: whole iovecs */
    size_t hold_bytes;
    uint64_t hold_after;
    uint64_t close_after;
    uint64_t drop_after;        /* __atomic */
    uint8_t key[DPC_WIRE_KEY_LEN];

    int lfd;
    unsigned port;
    pthread_t thread;
    int stop;                   /* __atomic */
    struct dpc_store *store;

    /* results, read after nh_stop() (or atomically) */
    int connections;            /* __atomic */
    uint64_t requests;          /* over all connections */
    int held_ok;                /* hold_bytes arrived before any reply */
    int closed_early;           /* close_after or drop_after fired: __atomic */
    int status_calls;
    int no_copy;                /* status says nothing of COPY (set first) */
};

static size_t nh_status(void *arg, char *buf, size_t len)
{
    struct nativehost *h = arg;

    h->status_calls++;
    return (size_t)snprintf(buf, len, "{%s\"fake\":true,\"calls\":%d}",
                            h->no_copy ? "" : "\"native_copy\":true,",
                            h->status_calls);
}

static int nh_stopping(struct nativehost *h)
{
    return __atomic_load_n(&h->stop, __ATOMIC_ACQUIRE);
}

/* Waits up to ms for fd to become readable; 1 when it is. */
static int nh_readable(struct nativehost *h, int fd, int ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };

    for (int waited = 0; waited < ms && !nh_stopping(h); waited += 20)
        if (poll(&p, 1, 20) > 0)
            return 1;
    return 0;
}

static int nh_send_all(int fd, const uint8_t *p, size_t n, size_t chunk)
{
    while (n > 0) {
        size_t k = chunk != 0 && chunk < n ? chunk : n;
        ssize_t sent = send(fd, p, k, MSG_NOSIGNAL);

        if (sent <= 0)
            return -1;
        p += sent;
        n -= (size_t)sent;
        if (chunk != 0)
            sched_yield();      /* let the client see a piece */
    }
    return 0;
}

/* Sends everything the state machine has queued. */
static int nh_flush(struct nativehost *h, struct dpc_native *s, int fd)
{
    struct iovec iov[16];
    int n;

    while ((n = dpc_native_output(s, iov, 16)) > 0) {
        size_t total = 0;

        for (int i = 0; i < n; i++) {
            if (nh_send_all(fd, iov[i].iov_base, iov[i].iov_len,
                            h->chunk) < 0)
                return -1;
            total += iov[i].iov_len;
        }
        dpc_native_sent(s, total);
    }
    return 0;
}

/* Reads until hold_bytes are buffered past off, or NH_HOLD_MS of silence;
 * 1 when they all came. */
static int nh_hold(struct nativehost *h, int fd, uint8_t *in, size_t *have,
                   size_t off)
{
    while (*have - off < h->hold_bytes && nh_readable(h, fd, NH_HOLD_MS)) {
        ssize_t k = recv(fd, in + *have, NH_IBUF - *have, 0);

        if (k <= 0)
            break;
        *have += (size_t)k;
    }
    return *have - off >= h->hold_bytes;
}

static void nh_serve(struct nativehost *h, int fd)
{
    struct dpc_native_cfg cfg = { .key = h->key, .store = h->store,
                                  .status = nh_status, .arg = h };
    uint8_t nonce[8] = { 0 }, magic[DPC_WIRE_MAGIC_LEN];
    uint8_t ns[DPC_WIRE_NONCE_LEN];
    uint8_t *in = malloc(NH_IBUF);
    size_t have = 0, off = 0;
    struct dpc_native *s = NULL;
    int one = 1, held = 0, dropping = 0;
    uint64_t base = 0;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    for (size_t i = 0; i < sizeof(ns); i++)
        ns[i] = (uint8_t)(i * 7 + 1);
    if (in == NULL || send(fd, nonce, sizeof(nonce), MSG_NOSIGNAL) != 8 ||
        !nh_readable(h, fd, 5000) ||
        recv(fd, magic, sizeof(magic), MSG_WAITALL) != sizeof(magic) ||
        memcmp(magic, DPC_WIRE_MAGIC, DPC_WIRE_MAGIC_LEN) != 0)
        goto out;
    s = dpc_native_new(&cfg, ns);
    if (s == NULL || nh_flush(h, s, fd) < 0)
        goto out;
    for (;;) {
        size_t used;

        if (nh_flush(h, s, fd) < 0 || dpc_native_finished(s))
            break;
        if (!dropping && __atomic_load_n(&h->drop_after, __ATOMIC_ACQUIRE)) {
            dropping = 1;
            base = dpc_native_counters(s)->requests +
                   __atomic_load_n(&h->drop_after, __ATOMIC_ACQUIRE);
        }
        if ((h->close_after != 0 &&
             dpc_native_counters(s)->requests >= h->close_after) ||
            (dropping && dpc_native_counters(s)->requests >= base)) {
            __atomic_store_n(&h->closed_early, 1, __ATOMIC_RELEASE);
            break;
        }
        if (h->hold_bytes > 0 && !held &&
            dpc_native_counters(s)->requests >= h->hold_after &&
            dpc_native_state(s) == DPC_NAT_HEADER) {
            held = 1;
            h->held_ok = nh_hold(h, fd, in, &have, off);
        }
        used = have > off ? dpc_native_input(s, in + off, have - off) : 0;
        if (used > 0) {
            off += used;
            continue;
        }
        memmove(in, in + off, have - off);
        have -= off;
        off = 0;
        if (!nh_readable(h, fd, 10000))
            break;
        {
            ssize_t k = recv(fd, in + have, NH_IBUF - have, 0);

            if (k <= 0)
                break;
            have += (size_t)k;
        }
    }
out:
    if (s != NULL)
        h->requests += dpc_native_counters(s)->requests;
    dpc_native_free(s);
    free(in);
    close(fd);
}

static void *nh_main(void *arg)
{
    struct nativehost *h = arg;

    while (!nh_stopping(h)) {
        int fd;

        if (!nh_readable(h, h->lfd, 100))
            continue;
        fd = accept(h->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        __atomic_add_fetch(&h->connections, 1, __ATOMIC_RELEASE);
        nh_serve(h, fd);
    }
    return NULL;
}

/* Listens on a free loopback port and serves it in a thread. */
static void nh_start(struct nativehost *h)
{
    struct dpc_store_cfg sc = { .mem_budget = h->mem_budget
                                                  ? h->mem_budget
                                                  : 64ull << 20 };
    struct sockaddr_in in = { .sin_family = AF_INET };
    socklen_t len = sizeof(in);
    char err[DPC_ERRLEN];

    h->store = dpc_store_new(&sc, err, sizeof(err));
    if (h->store == NULL)
        fail_msg("dpc_store_new: %s", err);
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    h->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(h->lfd >= 0);
    /* a test may listen on the port again once the host stopped */
    setsockopt(h->lfd, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int));
    assert_int_equal(bind(h->lfd, (struct sockaddr *)&in, sizeof(in)), 0);
    assert_int_equal(listen(h->lfd, 16), 0);
    assert_int_equal(getsockname(h->lfd, (struct sockaddr *)&in, &len), 0);
    h->port = ntohs(in.sin_port);
    assert_int_equal(pthread_create(&h->thread, NULL, nh_main, h), 0);
}

/* Stops serving (a connection in progress ends when its client closes or
 * goes quiet) and frees the store. */
static void nh_stop(struct nativehost *h)
{
    __atomic_store_n(&h->stop, 1, __ATOMIC_RELEASE);
    pthread_join(h->thread, NULL);
    close(h->lfd);
    dpc_store_free(h->store);
}

/* A link to h, or a failed test. */
static struct dpc_link *nh_connect(struct nativehost *h)
{
    char err[DPC_ERRLEN] = "";
    struct dpc_link *l = dpc_link_connect("127.0.0.1", h->port, h->key, 10000,
                                          NULL, err, sizeof(err));

    if (l == NULL)
        fail_msg("dpc_link_connect: %s", err);
    return l;
}

#endif
