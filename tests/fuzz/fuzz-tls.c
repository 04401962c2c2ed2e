/*
 * libFuzzer target for the server's side of a native connection behind
 * TLS, over a real socketpair with the server's and the client's own TLS
 * contexts (PSK).  Input byte 0 picks what the server faces:
 *
 *   even: the rest is what a peer sends in place of a ClientHello (then
 *         it closes): the server's handshake, our PSK lookup included,
 *         must end without harm;
 *   odd:  a real client completes the handshake and the native proof;
 *         the rest, in chunks of a length byte L then L + 1 bytes, is sent
 *         inside TLS, read by the server with dpc_tls_readv into pieces
 *         whose sizes come from the chunk lengths, and fed to the native
 *         session (with a real dpc_store) as dpc_conn feeds it: input only
 *         once its output is out.  Replies go back through TLS and are
 *         read by the client.  At the end every cache must be back in the
 *         store.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "dpc_native.h"
#include "dpc_tlsclient.h"
#include "dpc_tlsserver.h"

#define RAM_BUDGET (16 * 1024 * 1024)
#define INBUF (64 * 1024)
#define RAW_MAX (64 * 1024)
#define HANDSHAKE_MS 5000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t key[DPC_WIRE_KEY_LEN] = { 1, 2, 3 };
static const uint8_t ns[DPC_WIRE_NONCE_LEN] = { 4, 5, 6 };
static const uint8_t nc[DPC_WIRE_NONCE_LEN] = { 7, 8, 9 };

static struct dpc_tlsserver *server_ctx;
static struct dpc_tlsclient *client_ctx;

/* One connection: the two ends and what the server has read. */
struct pair {
    int sfd, cfd;
    SSL *server, *client;
    struct dpc_native *sess;
    uint8_t in[INBUF];
    size_t in_len;
    size_t piece;           /* the size of the server's read pieces */
    int dead;               /* an end failed: stop moving bytes */
};

struct client_job {
    int fd;
    SSL *ssl;
};

static size_t status_json(void *arg, char *buf, size_t len)
{
    (void)arg;
    return (size_t)snprintf(buf, len, "{}");
}

static void setup(void)
{
    struct dpc_tlsserver_cfg scfg = { .psk = { 42 } };
    struct dpc_tlsclient_cfg ccfg = { .psk = { 42 } };
    char err[DPC_ERRLEN];

    server_ctx = dpc_tlsserver_new(&scfg, err, sizeof(err));
    client_ctx = dpc_tlsclient_get(&ccfg, err, sizeof(err));
    if (server_ctx == NULL || client_ctx == NULL) {
        fprintf(stderr, "fuzz-tls: %s\n", err);
        abort();
    }
}

static void *client_handshake(void *arg)
{
    struct client_job *j = arg;
    enum dpc_errcode code;
    char err[DPC_ERRLEN];

    j->ssl = dpc_tlsclient_handshake(client_ctx, j->fd, "localhost", "fuzz",
                                     HANDSHAKE_MS, &code, err, sizeof(err));
    return NULL;
}

/* The server's handshake, driven until it ends: 1 done, 0 failed. */
static int server_handshake(SSL *ssl, int fd)
{
    for (int i = 0; i < 10000; i++) {
        int rc = SSL_do_handshake(ssl), e;
        struct pollfd p = { .fd = fd };

        if (rc == 1)
            return 1;
        e = SSL_get_error(ssl, rc);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            return 0;
        p.events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        if (poll(&p, 1, HANDSHAKE_MS) <= 0)
            return 0;
    }
    return 0;
}

/* The server's output into TLS and out; 1 when bytes moved. */
static int server_write(struct pair *p)
{
    struct iovec iov[16];
    char err[DPC_ERRLEN];
    short want;
    int n, moved = 0;

    while ((n = dpc_native_output(p->sess, iov, 16)) > 0) {
        ssize_t k = dpc_tls_writev(p->server, iov, n, &want, err,
                                   sizeof(err));

        if (k <= 0) {
            if (k == 0 || errno != EAGAIN)
                p->dead = 1;
            return moved;
        }
        dpc_native_sent(p->sess, (size_t)k);
        moved = 1;
    }
    if (dpc_tls_flush(p->server) < 0)
        p->dead = 1;
    return moved;
}

/* Offers what the server has read to the session while it wants it and
 * its output is out. */
static void server_feed(struct pair *p)
{
    struct iovec iov[1];
    size_t off = 0, used, want;

    while (!dpc_native_finished(p->sess) &&
           dpc_native_output(p->sess, iov, 1) == 0) {
        want = dpc_native_want(p->sess);
        if (want == 0 || p->in_len - off < want)
            break;
        used = dpc_native_input(p->sess, p->in + off, p->in_len - off);
        if (used == 0)
            abort();                        /* wanted bytes must be taken */
        off += used;
    }
    memmove(p->in, p->in + off, p->in_len - off);
    p->in_len -= off;
}

/* Reads from TLS into the input buffer, in pieces of p->piece bytes (the
 * way small iovecs of a reply arrive); 1 when bytes moved. */
static int server_read(struct pair *p)
{
    struct iovec iov[8];
    char err[DPC_ERRLEN];
    size_t room = INBUF - p->in_len, at = p->in_len;
    short want;
    ssize_t k;
    int n = 0;

    while (n < 8 && room > 0) {
        size_t len = p->piece < room ? p->piece : room;

        iov[n].iov_base = p->in + at;
        iov[n++].iov_len = len;
        at += len;
        room -= len;
    }
    if (n == 0)
        return 0;
    k = dpc_tls_readv(p->server, iov, n, &want, err, sizeof(err));
    if (k <= 0) {
        if (k == 0 || errno != EAGAIN)
            p->dead = 1;
        return 0;
    }
    p->in_len += (size_t)k;
    return 1;
}

/* The client reads (and drops) the server's replies; 1 when bytes moved. */
static int client_drain(struct pair *p)
{
    static uint8_t sink[64 * 1024];
    struct iovec iov = { sink, sizeof(sink) };
    char err[DPC_ERRLEN];
    short want;
    ssize_t k = dpc_tls_readv(p->client, &iov, 1, &want, err, sizeof(err));

    if (k <= 0) {
        if (k == 0 || errno != EAGAIN)
            p->dead = 1;
        return 0;
    }
    return 1;
}

/* Moves bytes both ways until none move. */
static void pump(struct pair *p)
{
    int moved;

    do {
        moved = server_write(p);
        moved |= server_read(p);
        server_feed(p);
        moved |= server_write(p);
        moved |= client_drain(p);
    } while (moved && !p->dead && !dpc_native_finished(p->sess));
}

/* The client sends n bytes inside TLS, pumping while the socket is full. */
static void client_send(struct pair *p, const uint8_t *buf, size_t n)
{
    char err[DPC_ERRLEN];
    short want;

    for (int tries = 0; n > 0 && !p->dead && tries < 1000; tries++) {
        struct iovec iov = { (void *)buf, n };
        ssize_t k = dpc_tls_writev(p->client, &iov, 1, &want, err,
                                   sizeof(err));

        if (k < 0 && errno != EAGAIN)
            p->dead = 1;
        if (k > 0) {
            buf += k;
            n -= (size_t)k;
        }
        if (dpc_tls_flush(p->client) < 0)
            p->dead = 1;
        pump(p);
        if (dpc_native_finished(p->sess))
            return;
    }
    for (int tries = 0; !p->dead && tries < 1000 &&
                        dpc_tls_flush(p->client) == 0; tries++)
        pump(p);
    pump(p);
}

static void raw_hello(int sfd, int cfd, const uint8_t *data, size_t size)
{
    SSL *ssl = dpc_tlsserver_accept(server_ctx, sfd);

    (void)dpc_tls_is_client_hello(data, size);
    if (size > RAW_MAX)
        size = RAW_MAX;
    if (write(cfd, data, size) < 0 || shutdown(cfd, SHUT_WR) < 0)
        abort();
    if (ssl == NULL)
        abort();
    (void)server_handshake(ssl, sfd);
    SSL_free(ssl);
}

static void session(struct pair *p, const uint8_t *data, size_t size)
{
    struct dpc_store_cfg scfg = { .mem_budget = RAM_BUDGET };
    struct dpc_store *store = dpc_store_new(&scfg, NULL, 0);
    struct dpc_native_cfg cfg = { .key = key, .store = store,
                                  .status = status_json };
    uint8_t proof[DPC_WIRE_NONCE_LEN + DPC_WIRE_MAC_LEN];
    struct dpc_store_stats st;
    size_t pos = 0;

    if (store == NULL || (p->sess = dpc_native_new(&cfg, ns)) == NULL)
        abort();
    memcpy(proof, nc, sizeof(nc));
    dpc_wire_proof(key, "client", ns, nc, proof + DPC_WIRE_NONCE_LEN);
    p->piece = sizeof(proof);
    client_send(p, proof, sizeof(proof));
    if (!dpc_native_authenticated(p->sess))
        abort();                            /* the proof must get through */
    while (pos < size && !p->dead && !dpc_native_finished(p->sess)) {
        size_t len = (size_t)data[pos++] + 1;

        if (len > size - pos)
            len = size - pos;
        p->piece = len;
        client_send(p, data + pos, len);
        pos += len;
    }
    dpc_native_free(p->sess);
    dpc_store_get_stats(store, &st);
    if (st.caches != 0 || st.bytes_ram != 0)
        abort();                            /* a cache leaked */
    dpc_store_free(store);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pair p = { 0 };
    struct client_job job;
    pthread_t th;
    int fds[2];

    if (server_ctx == NULL)
        setup();
    if (size == 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0)
        return 0;
    p.sfd = fds[0];
    p.cfd = fds[1];
    if (fcntl(p.sfd, F_SETFL, O_NONBLOCK) < 0 ||
        fcntl(p.cfd, F_SETFL, O_NONBLOCK) < 0)
        abort();
    if (data[0] % 2 == 0) {
        raw_hello(p.sfd, p.cfd, data + 1, size - 1);
    } else {
        job.fd = p.cfd;
        job.ssl = NULL;
        if ((p.server = dpc_tlsserver_accept(server_ctx, p.sfd)) == NULL ||
            pthread_create(&th, NULL, client_handshake, &job) != 0)
            abort();
        if (!server_handshake(p.server, p.sfd))
            abort();                        /* our own handshake must work */
        pthread_join(th, NULL);
        if ((p.client = job.ssl) == NULL)
            abort();
        session(&p, data + 1, size - 1);
        SSL_free(p.client);
        SSL_free(p.server);
    }
    close(p.sfd);
    close(p.cfd);
    return 0;
}
