/*
 * Unit tests for dpc_link_connect() against a fake native server on a
 * loopback port, run in a thread: connections the server closes before the
 * client's proof are tried again until one gets through; a rejected proof
 * is reported as such and not retried; a server that keeps closing is given
 * up on when cache:dpc-timeout runs out, with a message saying so; a port
 * nobody listens on is retried only briefly; a silent server costs one
 * timeout; a reply trickled a byte at a time cannot stretch the timeout.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "dpc_link.h"
#include "dpc_link-internal.h"
#include "dpc_tiles.h"
#include "dpc_util.h"
#include "dpc_wire.h"

#define assert_contains(hay, needle)                                       \
    do {                                                                   \
        if (strstr((hay), (needle)) == NULL)                               \
            fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));   \
    } while (0)

struct fake {
    int lfd;
    unsigned port;
    int close_first;            /* closed at once, before the nonce */
    int close_after_magic;      /* then closed after reading the magic */
    uint16_t refuse;            /* after the proof, the status of every reply */
    uint8_t key[DPC_WIRE_KEY_LEN];
    int accepted;               /* read after fake_stop() */
    int held[8];                /* authenticated connections kept open */
    int nheld;
    volatile int stop;
    pthread_t thread;
};

static const uint8_t key_a[DPC_WIRE_KEY_LEN] = { 1, 2, 3 };
static const uint8_t key_b[DPC_WIRE_KEY_LEN] = { 9, 9, 9 };

static int recv_all(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;

    while (n > 0) {
        ssize_t k = recv(fd, p, n, 0);

        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Answers every request on fd with f->refuse and the reason "no room",
 * until the client closes. */
static void serve_refusals(struct fake *f, int fd)
{
    static const char reason[] = "no room";
    uint8_t in[DPC_WIRE_HDR_LEN], out[DPC_WIRE_HDR_LEN + sizeof(reason) - 1];
    uint8_t body[64];
    struct dpc_wire_hdr h;

    while (recv_all(fd, in, sizeof(in)) == 0 &&
           dpc_wire_decode_hdr(in, &h, NULL, 0) == 0 &&
           h.length <= sizeof(body) && recv_all(fd, body, h.length) == 0) {
        h.status = f->refuse;
        h.length = sizeof(reason) - 1;
        dpc_wire_encode_hdr(out, &h);
        memcpy(out + DPC_WIRE_HDR_LEN, reason, sizeof(reason) - 1);
        if (send(fd, out, sizeof(out), MSG_NOSIGNAL) != sizeof(out))
            break;
    }
}

/* The server's side of the native handshake; the connection stays open
 * when the client's proof is right, is closed when it is wrong. */
static void serve_handshake(struct fake *f, int fd)
{
    uint8_t nonce[8] = { 0 }, magic[DPC_WIRE_MAGIC_LEN];
    uint8_t ns[DPC_WIRE_NONCE_LEN] = { 7 }, in[64], mac[DPC_WIRE_MAC_LEN];

    if (send(fd, nonce, sizeof(nonce), MSG_NOSIGNAL) != sizeof(nonce) ||
        recv_all(fd, magic, sizeof(magic)) < 0 ||
        send(fd, ns, sizeof(ns), MSG_NOSIGNAL) != sizeof(ns) ||
        recv_all(fd, in, sizeof(in)) < 0)
        goto out;
    dpc_wire_proof(f->key, "client", ns, in, mac);
    if (memcmp(mac, in + DPC_WIRE_NONCE_LEN, sizeof(mac)) != 0)
        goto out;
    dpc_wire_proof(f->key, "server", ns, in, mac);
    if (send(fd, mac, sizeof(mac), MSG_NOSIGNAL) != sizeof(mac) ||
        f->nheld == 8)
        goto out;
    if (f->refuse != DPC_WS_OK)
        serve_refusals(f, fd);
    f->held[f->nheld++] = fd;
    return;
out:
    close(fd);
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;

    while (!f->stop) {
        struct pollfd p = { .fd = f->lfd, .events = POLLIN };
        uint8_t nonce[8] = { 0 }, magic[DPC_WIRE_MAGIC_LEN];
        int fd;

        if (poll(&p, 1, 50) <= 0)
            continue;
        fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        f->accepted++;
        if (f->accepted <= f->close_first) {
            close(fd);
        } else if (f->accepted <= f->close_first + f->close_after_magic) {
            if (send(fd, nonce, sizeof(nonce), MSG_NOSIGNAL) == 8)
                (void)recv_all(fd, magic, sizeof(magic));
            close(fd);
        } else {
            serve_handshake(f, fd);
        }
    }
    return NULL;
}

/* A listener on a free loopback port; serve: run the fake in a thread. */
static void fake_start(struct fake *f, int serve)
{
    struct sockaddr_in in = { .sin_family = AF_INET };
    socklen_t len = sizeof(in);

    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->lfd >= 0);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&in, sizeof(in)), 0);
    assert_int_equal(listen(f->lfd, 16), 0);
    assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&in, &len), 0);
    f->port = ntohs(in.sin_port);
    if (serve)
        assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f, int served)
{
    f->stop = 1;
    if (served)
        pthread_join(f->thread, NULL);
    for (int i = 0; i < f->nheld; i++)
        close(f->held[i]);
    close(f->lfd);
}

/* Closed before the nonce twice, after the magic once: the fourth try
 * authenticates. */
static void link_retries_handshake_closes_test(void **state)
{
    struct fake f = { .close_first = 2, .close_after_magic = 1 };
    char err[DPC_ERRLEN] = "";
    enum dpc_errcode code = DPC_E_OTHER;
    struct dpc_link *l;

    memcpy(f.key, key_a, sizeof(key_a));
    fake_start(&f, 1);
    l = dpc_link_connect("127.0.0.1", f.port, key_a, 5000, &code, err,
                         sizeof(err));
    if (l == NULL)
        fail_msg("connect failed: %s", err);
    assert_int_equal(code, DPC_E_OK);
    assert_false(dpc_link_broken(l));
    dpc_link_free(l);
    fake_stop(&f, 1);
    assert_int_equal(f.accepted, 4);
}

/* A proof the server rejects: "authentication failed", DPC_E_AUTH, one
 * connection. */
static void link_wrong_secret_not_retried_test(void **state)
{
    struct fake f = { 0 };
    char err[DPC_ERRLEN] = "";
    enum dpc_errcode code = DPC_E_OK;

    memcpy(f.key, key_b, sizeof(key_b));
    fake_start(&f, 1);
    assert_null(dpc_link_connect("127.0.0.1", f.port, key_a, 5000, &code,
                                 err, sizeof(err)));
    assert_int_equal(code, DPC_E_AUTH);
    assert_contains(err, "authentication failed (is cache:shared-secret the "
                         "same on both sides?)");
    usleep(200 * 1000);
    fake_stop(&f, 1);
    assert_int_equal(f.accepted, 1);
}

/* Closed every time: given up on when the timeout runs out, and the
 * message says the server closed it during the handshake (DPC_E_CLOSED). */
static void link_closed_until_timeout_test(void **state)
{
    struct fake f = { .close_first = INT_MAX };
    char err[DPC_ERRLEN] = "", want[128];
    enum dpc_errcode code = DPC_E_OK;
    double t0 = dpc_now(), took;

    memcpy(f.key, key_a, sizeof(key_a));
    fake_start(&f, 1);
    assert_null(dpc_link_connect("127.0.0.1", f.port, key_a, 1000, &code,
                                 err, sizeof(err)));
    assert_int_equal(code, DPC_E_CLOSED);
    took = dpc_now() - t0;
    fake_stop(&f, 1);
    snprintf(want, sizeof(want), "connection closed by 127.0.0.1:%u during "
             "the handshake (server busy or limit reached", f.port);
    assert_contains(err, want);
    assert_true(took >= 0.8 && took <= 1.5);
    assert_true(f.accepted >= 4);
}

/* Nothing listening: retried for about a second, not the whole timeout;
 * DPC_E_REFUSED. */
static void link_refused_retried_briefly_test(void **state)
{
    struct fake f = { 0 };
    char err[DPC_ERRLEN] = "";
    enum dpc_errcode code = DPC_E_OK;
    unsigned port;
    double t0, took;

    fake_start(&f, 0);
    port = f.port;
    fake_stop(&f, 0);               /* the port is free again */
    t0 = dpc_now();
    assert_null(dpc_link_connect("127.0.0.1", port, key_a, 10000, &code, err,
                                 sizeof(err)));
    assert_int_equal(code, DPC_E_REFUSED);
    took = dpc_now() - t0;
    assert_contains(err, "Connection refused");
    assert_contains(err, "attempts");
    assert_true(took >= 0.8 && took <= 1.6);
}

/* A server that accepts (in the kernel) and says nothing: one timeout,
 * DPC_E_TIMEOUT. */
static void link_silent_server_one_timeout_test(void **state)
{
    struct fake f = { 0 };
    char err[DPC_ERRLEN] = "";
    enum dpc_errcode code = DPC_E_OK;
    double t0, took;

    fake_start(&f, 0);              /* listens, never accepts */
    t0 = dpc_now();
    assert_null(dpc_link_connect("127.0.0.1", f.port, key_a, 500, &code, err,
                                 sizeof(err)));
    assert_int_equal(code, DPC_E_TIMEOUT);
    took = dpc_now() - t0;
    fake_stop(&f, 0);
    assert_contains(err, "no answer in time");
    assert_true(took >= 0.4 && took <= 1.2);
}

/* A host with no room: the code, not errno or the text, says so, from
 * dpc_link_open up through dpc_tiles_open; another refusal is
 * DPC_E_REFUSED. */
static void link_no_room_code_test(void **state)
{
    struct fake f = { .refuse = DPC_WS_NO_ROOM };
    char err[DPC_ERRLEN] = "";
    enum dpc_errcode code = DPC_E_OK;
    struct dpc_tiles_cfg cfg = { .columns = 64, .rows = 64, .bpp = { 8 },
                                 .tile_w = 32, .tile_h = 32,
                                 .cache_bytes = 1 << 20 };
    struct dpc_link *l;
    uint64_t handle;

    memcpy(f.key, key_a, sizeof(key_a));
    fake_start(&f, 1);
    l = dpc_link_connect("127.0.0.1", f.port, key_a, 5000, &code, err,
                         sizeof(err));
    if (l == NULL)
        fail_msg("connect failed: %s", err);
    assert_int_equal(dpc_link_open(l, 64, 4, &handle, err, sizeof(err)),
                     -DPC_E_NO_ROOM);
    assert_contains(err, "no room");
    cfg.links = &l;
    cfg.nlinks = 1;
    assert_null(dpc_tiles_open(&cfg, &code, err, sizeof(err)));
    assert_int_equal(code, DPC_E_NO_ROOM);
    f.refuse = DPC_WS_INTERNAL;
    assert_int_equal(dpc_link_open(l, 64, 4, &handle, err, sizeof(err)),
                     -DPC_E_REFUSED);
    assert_false(dpc_link_broken(l));
    dpc_link_free(l);
    fake_stop(&f, 1);
}

struct trickler {
    int fd;
    uint8_t reply[DPC_WIRE_HDR_LEN + 8];
};

/* Writes the reply one byte every 40 ms (about 1 s in all). */
static void *trickle_main(void *arg)
{
    struct trickler *t = arg;

    for (size_t i = 0; i < sizeof(t->reply); i++) {
        if (send(t->fd, t->reply + i, 1, MSG_NOSIGNAL) != 1)
            break;
        poll(NULL, 0, 40);
    }
    return NULL;
}

/* A reply trickled a byte every 40 ms, each byte well within the 300 ms
 * timeout: the wait still ends at 300 ms, with a timeout. */
static void link_trickled_reply_times_out_test(void **state)
{
    struct dpc_wire_hdr h = { .version = DPC_WIRE_VERSION, .op = DPC_OP_OPEN,
                              .id = 1, .length = 8 };
    struct trickler t;
    struct dpc_link *l;
    pthread_t thread;
    char err[DPC_ERRLEN];
    uint64_t handle;
    double t0;
    int sv[2];

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    memset(&t, 0, sizeof(t));
    t.fd = sv[1];
    dpc_wire_encode_hdr(t.reply, &h);
    l = dpc_link_adopt(sv[0], "trickler", 300);
    assert_non_null(l);
    assert_int_equal(pthread_create(&thread, NULL, trickle_main, &t), 0);
    t0 = dpc_now();
    assert_int_equal(dpc_link_open(l, 64, 4, &handle, err, sizeof(err)),
                     -DPC_E_TIMEOUT);
    assert_true(dpc_now() - t0 < 0.6);
    assert_contains(err, "no answer in time");
    dpc_link_free(l);               /* the trickler's sends now fail */
    pthread_join(thread, NULL);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(link_no_room_code_test),
        cmocka_unit_test(link_retries_handshake_closes_test),
        cmocka_unit_test(link_wrong_secret_not_retried_test),
        cmocka_unit_test(link_closed_until_timeout_test),
        cmocka_unit_test(link_refused_retried_briefly_test),
        cmocka_unit_test(link_silent_server_one_timeout_test),
        cmocka_unit_test(link_trickled_reply_times_out_test),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
