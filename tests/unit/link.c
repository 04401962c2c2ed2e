/*
 * Unit tests for dpc_link_connect() against a fake native server on a
 * loopback port, run in a thread: connections the server closes before the
 * client's proof are tried again until one gets through; a rejected proof
 * is reported as such and not retried; a server that keeps closing is given
 * up on when cache:dpc-timeout runs out, with a message saying so; a port
 * nobody listens on is retried only briefly; a silent server costs one
 * timeout; a reply trickled a byte at a time cannot stretch the timeout.
 *
 * Then requests against a real dpc_native host served in a thread
 * (nativehost.h): GETs are pipelined (the host answers nothing until it
 * has them all), more requests than the ring of pending replies holds,
 * replies arriving a few bytes at a time (into strided row buffers too),
 * refusals (no room for an OPEN: the link goes on; an unknown handle: the
 * host closes; a refused PUT breaks the link for every later caller), a
 * host closing in the middle of a batch, and the status request.  Last,
 * the fake answers an OPEN with crafted replies: out of order, of another
 * version, of the wrong length, an oversized reason, cut short, and a
 * refusal with its reason; and a fake refusing every request, whose codes
 * reach dpc_tiles_open (no room, draining, and a status the client does
 * not know).  Last, dpc_pool_reacquire on a lost host: back, gone, and
 * never answering, none of which keeps the caller waiting.
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

#include "dpc_bytes.h"
#include "dpc_link.h"
#include "dpc_link-internal.h"
#include "dpc_pool.h"
#include "dpc_tiles.h"
#include "dpc_util.h"
#include "dpc_wire.h"
#include "nativehost.h"

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
    /* after the proof: take one request, answer with these bytes, and
     * close when script_close */
    const uint8_t *script;
    size_t script_len;
    int script_close;
    int stop;                   /* __atomic */
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
    if (f->script != NULL) {
        uint8_t hdr[DPC_WIRE_HDR_LEN], body[64];
        uint32_t len;

        if (recv_all(fd, hdr, sizeof(hdr)) < 0)
            goto out;
        len = dpc_get_be32(hdr + 8);
        if (len > sizeof(body) || recv_all(fd, body, len) < 0 ||
            send(fd, f->script, f->script_len, MSG_NOSIGNAL) !=
                (ssize_t)f->script_len || f->script_close)
            goto out;
    }
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

    while (!__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE)) {
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
    __atomic_store_n(&f->stop, 1, __ATOMIC_RELEASE);
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

#define SLOT 256                /* bytes per slot in the tests below */
#define NSLOTS 600

/* The byte a test writes at offset i of slot k. */
static uint8_t pattern(uint64_t k, size_t i)
{
    return (uint8_t)(k * 31 + i * 7 + 1);
}

static void fill_slot(uint8_t *p, uint64_t k)
{
    for (size_t i = 0; i < SLOT; i++)
        p[i] = pattern(k, i);
}

static void check_slot(const uint8_t *p, uint64_t k)
{
    for (size_t i = 0; i < SLOT; i++)
        if (p[i] != pattern(k, i))
            fail_msg("slot %llu byte %zu: %u, expected %u",
                     (unsigned long long)k, i, p[i], pattern(k, i));
}

/* Writes slots [0, n) with their patterns, one PUT of up to 64 each. */
static void put_slots(struct dpc_link *l, uint64_t handle, uint64_t n)
{
    static uint8_t data[NSLOTS][SLOT];
    const uint8_t *src[64];
    uint64_t slots[64];
    char err[DPC_ERRLEN] = "";

    assert_true(n <= NSLOTS);
    for (uint64_t k = 0; k < n; k += 64) {
        uint32_t c = n - k < 64 ? (uint32_t)(n - k) : 64;

        for (uint32_t i = 0; i < c; i++) {
            fill_slot(data[k + i], k + i);
            slots[i] = k + i;
            src[i] = data[k + i];
        }
        if (dpc_link_put(l, handle, SLOT, c, slots, src, NULL, err,
                         sizeof(err)) < 0)
            fail_msg("put: %s", err);
    }
    if (dpc_link_wait(l, err, sizeof(err)) < 0)
        fail_msg("wait after put: %s", err);
}

static uint64_t open_cache(struct dpc_link *l, uint64_t slots)
{
    char err[DPC_ERRLEN] = "";
    uint64_t handle = 0;

    if (dpc_link_open(l, SLOT, slots, &handle, err, sizeof(err)) < 0)
        fail_msg("open: %s", err);
    assert_true(handle != 0);
    return handle;
}

/* Forty GETs of one slot each, queued before any reply: the host reads
 * all forty requests before it answers the first, so a client that
 * waited for each reply would have stalled; every slot lands in place. */
static void link_gets_pipelined_test(void **state)
{
    enum { N = 40, GET_LEN = DPC_WIRE_HDR_LEN + DPC_WIRE_SLOTS_FIXED + 8 };
    struct nativehost h = { .hold_after = 3, .hold_bytes = N * GET_LEN };
    static uint8_t dst[N][SLOT];
    uint8_t *ptr[N];            /* read by the link until the wait */
    char err[DPC_ERRLEN] = "";
    struct dpc_link *l;
    uint64_t handle;

    /* requests before the hold: OPEN and two PUTs (64 + 6 slots) */
    memcpy(h.key, key_a, sizeof(key_a));
    nh_start(&h);
    l = nh_connect(&h);
    handle = open_cache(l, 100);
    put_slots(l, handle, 70);
    for (uint64_t k = 0; k < N; k++) {
        uint64_t slot = 69 - k;

        ptr[k] = dst[k];
        if (dpc_link_get(l, handle, SLOT, 1, &slot, &ptr[k], NULL, err,
                         sizeof(err)) < 0)
            fail_msg("get %llu: %s", (unsigned long long)k, err);
    }
    if (dpc_link_wait(l, err, sizeof(err)) < 0)
        fail_msg("wait: %s", err);
    for (uint64_t k = 0; k < N; k++)
        check_slot(dst[k], 69 - k);
    dpc_link_free(l);
    nh_stop(&h);
    assert_true(h.held_ok);
    assert_int_equal(h.requests, 3 + N);
}

/* 600 single-slot GETs without a wait: more than the link's ring of 256
 * pending replies, so queuing collects replies as it goes; all correct. */
static void link_more_requests_than_ring_test(void **state)
{
    struct nativehost h = { 0 };
    static uint8_t dst[NSLOTS][SLOT];
    static uint8_t *ptr[NSLOTS];
    char err[DPC_ERRLEN] = "";
    struct dpc_link *l;
    uint64_t handle;

    memcpy(h.key, key_a, sizeof(key_a));
    nh_start(&h);
    l = nh_connect(&h);
    handle = open_cache(l, NSLOTS);
    put_slots(l, handle, NSLOTS);
    for (uint64_t k = 0; k < NSLOTS; k++) {
        ptr[k] = dst[k];
        if (dpc_link_get(l, handle, SLOT, 1, &k, &ptr[k], NULL, err,
                         sizeof(err)) < 0)
            fail_msg("get %llu: %s", (unsigned long long)k, err);
    }
    if (dpc_link_wait(l, err, sizeof(err)) < 0)
        fail_msg("wait: %s", err);
    for (uint64_t k = 0; k < NSLOTS; k++)
        check_slot(dst[k], k);
    dpc_link_free(l);
    nh_stop(&h);
}

/* Every reply sent three bytes per send(): headers and bodies arrive in
 * pieces; a GET into strided rows (a tile inside a region buffer, rows of
 * 64 bytes 100 apart) and one into plain buffers both come out whole, and
 * so do the OPEN's handle and the status JSON. */
static void link_partial_replies_test(void **state)
{
    struct nativehost h = { .chunk = 3 };
    static uint8_t region[2 * 4 * 100], plain[3][SLOT];
    struct dpc_link_rows rows = { .run = 64, .stride = 100 };
    uint64_t slots[3] = { 5, 0, 9 }, handle;
    uint8_t *dst[3] = { plain[0], plain[1], plain[2] };
    uint8_t *rdst[2] = { region, region + 4 * 100 };
    char err[DPC_ERRLEN] = "", *json = NULL;
    struct dpc_link *l;

    memcpy(h.key, key_a, sizeof(key_a));
    nh_start(&h);
    l = nh_connect(&h);
    handle = open_cache(l, 10);
    put_slots(l, handle, 10);
    memset(region, 0xee, sizeof(region));
    if (dpc_link_get(l, handle, SLOT, 3, slots, dst, NULL, err,
                     sizeof(err)) < 0 ||
        dpc_link_get(l, handle, SLOT, 2, slots, rdst, &rows, err,
                     sizeof(err)) < 0 ||
        dpc_link_wait(l, err, sizeof(err)) < 0)
        fail_msg("get: %s", err);
    for (int i = 0; i < 3; i++)
        check_slot(plain[i], slots[i]);
    for (int t = 0; t < 2; t++)
        for (size_t i = 0; i < SLOT; i++) {
            uint8_t got = rdst[t][i / 64 * 100 + i % 64];

            if (got != pattern(slots[t], i))
                fail_msg("strided tile %d byte %zu: %u", t, i, got);
        }
    for (int r = 0; r < 4; r++)     /* the gaps between rows untouched */
        assert_int_equal(region[r * 100 + 64], 0xee);
    if (dpc_link_status(l, &json, err, sizeof(err)) < 0)
        fail_msg("status: %s", err);
    assert_string_equal(json, "{\"native_copy\":true,\"fake\":true,"
                              "\"calls\":1}");
    free(json);
    dpc_link_free(l);
    nh_stop(&h);
}

/* An OPEN the host has no room for: DPC_E_NO_ROOM, the host's reason; the
 * link is not broken and the next, smaller OPEN succeeds on it. */
static void link_open_no_room_test(void **state)
{
    struct nativehost h = { .mem_budget = 1 << 20 };
    char err[DPC_ERRLEN] = "";
    struct dpc_link *l;
    uint64_t handle = 0;

    memcpy(h.key, key_a, sizeof(key_a));
    nh_start(&h);
    l = nh_connect(&h);
    assert_int_equal(dpc_link_open(l, SLOT, 100000, &handle, err,
                                   sizeof(err)), -DPC_E_NO_ROOM);
    assert_contains(err, "no room for");
    assert_false(dpc_link_broken(l));
    handle = open_cache(l, 16);
    put_slots(l, handle, 16);
    assert_int_equal(dpc_link_close_cache(l, handle, err, sizeof(err)), 0);
    dpc_link_free(l);
    nh_stop(&h);
}

/* A GET of a cache the host does not know: the host answers with its
 * reason and closes; the wait says so (DPC_E_REFUSED) and the link is then
 * unusable. */
static void link_get_unknown_handle_test(void **state)
{
    struct nativehost h = { 0 };
    char err[DPC_ERRLEN] = "";
    uint8_t buf[SLOT], *dst = buf;
    uint64_t slot = 0;
    struct dpc_link *l;

    memcpy(h.key, key_a, sizeof(key_a));
    nh_start(&h);
    l = nh_connect(&h);
    (void)open_cache(l, 4);
    assert_int_equal(dpc_link_get(l, 99, SLOT, 1, &slot, &dst, NULL, err,
                                  sizeof(err)), 0);
    assert_int_equal(dpc_link_wait(l, err, sizeof(err)), -DPC_E_REFUSED);
    assert_contains(err, "unknown cache handle 99");
    err[0] = '\0';
    assert_true(dpc_link_status(l, &(char *){ NULL }, err, sizeof(err)) < 0);
    assert_true(dpc_link_broken(l));
    assert_true(err[0] != '\0');
    dpc_link_free(l);
    nh_stop(&h);
}

/* A refused PUT breaks the link: its wait fails with the host's reason
 * (DPC_E_REFUSED), and so does every later request, with the same reason. */
static void link_refused_put_breaks_link_test(void **state)
{
    struct nativehost h = { 0 };
    char err[DPC_ERRLEN] = "";
    uint8_t buf[SLOT] = { 0 }, *dst = buf;
    const uint8_t *src = buf;
    uint64_t slot = 7, handle;
    struct dpc_link *l;

    memcpy(h.key, key_a, sizeof(key_a));
    nh_start(&h);
    l = nh_connect(&h);
    handle = open_cache(l, 4);          /* slot 7 is past its end */
    assert_int_equal(dpc_link_put(l, handle, SLOT, 1, &slot, &src, NULL, err,
                                  sizeof(err)), 0);
    assert_int_equal(dpc_link_wait(l, err, sizeof(err)), -DPC_E_REFUSED);
    assert_contains(err, "slot 7 of a 4-slot cache");
    assert_true(dpc_link_broken(l));
    err[0] = '\0';
    slot = 0;
    assert_int_equal(dpc_link_get(l, handle, SLOT, 1, &slot, &dst, NULL, err,
                                  sizeof(err)), -DPC_E_REFUSED);
    assert_contains(err, "slot 7 of a 4-slot cache");
    err[0] = '\0';
    assert_int_equal(dpc_link_wait(l, err, sizeof(err)), -DPC_E_REFUSED);
    assert_contains(err, "slot 7 of a 4-slot cache");
    dpc_link_free(l);
    nh_stop(&h);
}

/* The host closes after the third request of a pipelined batch, without
 * answering it: the wait fails with "the server closed the connection"
 * (DPC_E_CLOSED), the link is broken, and it stays that way. */
static void link_host_closes_mid_batch_test(void **state)
{
    struct nativehost h = { .close_after = 3 };
    static uint8_t dst[8][SLOT];
    uint8_t *ptr[8];
    char err[DPC_ERRLEN] = "";
    struct dpc_link *l;
    uint64_t handle;

    memcpy(h.key, key_a, sizeof(key_a));
    nh_start(&h);
    l = nh_connect(&h);
    handle = open_cache(l, 8);                          /* request 1 */
    for (uint64_t k = 0; k < 8; k++) {                  /* requests 2.. */
        ptr[k] = dst[k];
        if (dpc_link_get(l, handle, SLOT, 1, &k, &ptr[k], NULL, err,
                         sizeof(err)) < 0)
            break;                  /* the close may be seen while sending */
    }
    err[0] = '\0';
    assert_int_equal(dpc_link_wait(l, err, sizeof(err)), -DPC_E_CLOSED);
    assert_contains(err, "the server closed the connection");
    assert_true(dpc_link_broken(l));
    assert_int_equal(dpc_link_wait(l, err, sizeof(err)), -DPC_E_CLOSED);
    dpc_link_free(l);
    nh_stop(&h);
    assert_true(h.closed_early);
}

/* A reply header for the first request (id 1) of operation op. */
static void reply_hdr(uint8_t *p, uint8_t version, uint8_t op,
                      uint16_t status, uint32_t id, uint32_t len)
{
    struct dpc_wire_hdr h = { .version = version, .op = op,
                              .status = status, .id = id, .length = len };

    dpc_wire_encode_hdr(p, &h);
}

/* Runs one OPEN against a fake that answers with script; the OPEN must
 * fail with code and want in its error and leave the link broken. */
static void open_against_script(const uint8_t *script, size_t len,
                                int close_after, enum dpc_errcode code,
                                const char *want)
{
    struct fake f = { .script = script, .script_len = len,
                      .script_close = close_after };
    char err[DPC_ERRLEN] = "";
    struct dpc_link *l;
    uint64_t handle = 0;

    memcpy(f.key, key_a, sizeof(key_a));
    fake_start(&f, 1);
    l = dpc_link_connect("127.0.0.1", f.port, key_a, 2000, NULL, err,
                         sizeof(err));
    if (l == NULL)
        fail_msg("connect failed: %s", err);
    assert_int_equal(dpc_link_open(l, 64, 4, &handle, err, sizeof(err)),
                     -(int)code);
    assert_contains(err, want);
    assert_true(dpc_link_broken(l));
    err[0] = '\0';
    assert_int_equal(dpc_link_wait(l, err, sizeof(err)), -(int)code);
    assert_true(err[0] != '\0');
    dpc_link_free(l);
    fake_stop(&f, 1);
}

/* A reply whose id is not the oldest request's: out of step, broken. */
static void link_reply_out_of_order_test(void **state)
{
    uint8_t r[DPC_WIRE_HDR_LEN + 8] = { 0 };

    reply_hdr(r, DPC_WIRE_VERSION, DPC_OP_OPEN, 0, 2, 8);
    open_against_script(r, sizeof(r), 0, DPC_E_PROTOCOL,
                        "reply out of order");
    reply_hdr(r, DPC_WIRE_VERSION, DPC_OP_GET, 0, 1, 8);   /* wrong op */
    open_against_script(r, sizeof(r), 0, DPC_E_PROTOCOL,
                        "reply out of order");
}

/* A reply header that does not decode (another version). */
static void link_reply_malformed_test(void **state)
{
    uint8_t r[DPC_WIRE_HDR_LEN + 8] = { 0 };

    reply_hdr(r, 2, DPC_OP_OPEN, 0, 1, 8);
    open_against_script(r, sizeof(r), 0, DPC_E_PROTOCOL,
                        "malformed reply");
}

/* An OPEN's reply must carry 8 bytes; an error's reason at most 200. */
static void link_reply_bad_length_test(void **state)
{
    uint8_t r[DPC_WIRE_HDR_LEN + 4] = { 0 };

    reply_hdr(r, DPC_WIRE_VERSION, DPC_OP_OPEN, 0, 1, 4);
    open_against_script(r, sizeof(r), 0, DPC_E_PROTOCOL,
                        "reply of unexpected length");
    reply_hdr(r, DPC_WIRE_VERSION, DPC_OP_OPEN, DPC_WS_INTERNAL, 1,
              DPC_WIRE_MAX_REASON + 1);
    open_against_script(r, DPC_WIRE_HDR_LEN, 0, DPC_E_PROTOCOL,
                        "oversized error reply");
}

/* Half a reply, then the connection closes: "the server closed the connection". */
static void link_reply_cut_short_test(void **state)
{
    uint8_t r[DPC_WIRE_HDR_LEN + 3] = { 0 };

    reply_hdr(r, DPC_WIRE_VERSION, DPC_OP_OPEN, 0, 1, 8);
    open_against_script(r, sizeof(r), 1, DPC_E_CLOSED,
                        "the server closed the connection");
    open_against_script(r, 7, 1, DPC_E_CLOSED,          /* mid-header */
                        "the server closed the connection");
}

/* A refusal the client can read (NO_ROOM with its reason) is reported
 * with the reason and DPC_E_NO_ROOM, and the link goes on. */
static void link_reply_refusal_reason_test(void **state)
{
    static const char why[] = "no room for you";
    uint8_t r[DPC_WIRE_HDR_LEN + sizeof(why) - 1];
    struct fake f = { .script = r, .script_len = sizeof(r) };
    char err[DPC_ERRLEN] = "";
    struct dpc_link *l;
    uint64_t handle = 0;

    reply_hdr(r, DPC_WIRE_VERSION, DPC_OP_OPEN, DPC_WS_NO_ROOM, 1,
              sizeof(why) - 1);
    memcpy(r + DPC_WIRE_HDR_LEN, why, sizeof(why) - 1);
    memcpy(f.key, key_a, sizeof(key_a));
    fake_start(&f, 1);
    l = dpc_link_connect("127.0.0.1", f.port, key_a, 2000, NULL, err,
                         sizeof(err));
    if (l == NULL)
        fail_msg("connect failed: %s", err);
    assert_int_equal(dpc_link_open(l, 64, 4, &handle, err, sizeof(err)),
                     -DPC_E_NO_ROOM);
    assert_contains(err, "no room for you");
    assert_false(dpc_link_broken(l));
    assert_int_equal(dpc_link_wait(l, err, sizeof(err)), 0);
    dpc_link_free(l);
    fake_stop(&f, 1);
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
    assert_null(dpc_tiles_open(&cfg, &code, NULL, err, sizeof(err)));
    assert_int_equal(code, DPC_E_NO_ROOM);
    f.refuse = DPC_WS_INTERNAL;
    assert_int_equal(dpc_link_open(l, 64, 4, &handle, err, sizeof(err)),
                     -DPC_E_REFUSED);
    assert_false(dpc_link_broken(l));
    dpc_link_free(l);
    fake_stop(&f, 1);
}

/* A draining host: DPC_E_DRAINING from dpc_link_open up through
 * dpc_tiles_open, which names the host; the link goes on (it serves the
 * caches it has).  A status this client does not know is a refusal
 * (DPC_E_REFUSED), as DPC_WS_DRAINING is to clients older than it. */
static void link_draining_code_test(void **state)
{
    struct fake f = { .refuse = DPC_WS_DRAINING };
    char err[DPC_ERRLEN] = "";
    enum dpc_errcode code = DPC_E_OK;
    struct dpc_tiles_cfg cfg = { .columns = 64, .rows = 64, .bpp = { 8 },
                                 .tile_w = 32, .tile_h = 32,
                                 .cache_bytes = 1 << 20 };
    struct dpc_link *l;
    uint64_t handle;
    size_t host = 99;

    memcpy(f.key, key_a, sizeof(key_a));
    fake_start(&f, 1);
    l = dpc_link_connect("127.0.0.1", f.port, key_a, 5000, &code, err,
                         sizeof(err));
    if (l == NULL)
        fail_msg("connect failed: %s", err);
    assert_int_equal(dpc_link_open(l, 64, 4, &handle, err, sizeof(err)),
                     -DPC_E_DRAINING);
    assert_false(dpc_link_broken(l));
    cfg.links = &l;
    cfg.nlinks = 1;
    assert_null(dpc_tiles_open(&cfg, &code, &host, err, sizeof(err)));
    assert_int_equal(code, DPC_E_DRAINING);
    assert_int_equal(host, 0);
    f.refuse = 99;
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

/* A lost host tried again through dpc_pool_reacquire (a cache's rejoin):
 * back, it is reached in one call; gone (refused), it fails at once, one
 * attempt, and a new cache's dpc_pool_acquire is not kept waiting either;
 * never answering (its accept queue full, so its SYNs are dropped), the
 * call says "still connecting" at once instead of waiting out the
 * timeout, and so does the next, on the same connection under way. */
static void pool_reacquire_does_not_wait_test(void **state)
{
    struct nativehost h = { 0 };
    struct sockaddr_in in = { .sin_family = AF_INET };
    enum dpc_errcode code;
    char err[DPC_ERRLEN] = "";
    struct dpc_link *l, *l2;
    uint64_t handle;
    double t0;
    int lfd, filler, one = 1;

    memcpy(h.key, key_a, sizeof(key_a));
    nh_start(&h);
    l = dpc_pool_acquire("127.0.0.1", h.port, h.key, NULL, 2000, &code, err,
                         sizeof(err));
    if (l == NULL)
        fail_msg("acquire: %s", err);
    open_cache(l, 8);
    __atomic_store_n(&h.drop_after, 1, __ATOMIC_RELEASE);
    assert_true(dpc_link_open(l, SLOT, 8, &handle, err, sizeof(err)) < 0);
    assert_true(dpc_link_broken(l));
    __atomic_store_n(&h.drop_after, 0, __ATOMIC_RELEASE);

    l2 = dpc_pool_reacquire(l, 2000, &code, err, sizeof(err));
    if (l2 == NULL)
        fail_msg("reacquire of a host that is back: %s", err);
    open_cache(l2, 8);
    dpc_pool_release(l2);

    nh_stop(&h);
    t0 = dpc_now();
    assert_null(dpc_pool_reacquire(l, 2000, &code, err, sizeof(err)));
    assert_true(dpc_now() - t0 < 0.5);      /* not the 1 s of retries */
    assert_int_equal(code, DPC_E_REFUSED);
    assert_contains(err, "refused");
    assert_null(strstr(err, "attempts"));
    assert_null(dpc_pool_acquire("127.0.0.1", h.port, h.key, NULL, 2000,
                                 &code, err, sizeof(err)));
    assert_int_equal(code, DPC_E_REFUSED);
    assert_contains(err, "not retried");

    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    in.sin_port = htons((uint16_t)h.port);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    assert_int_equal(bind(lfd, (struct sockaddr *)&in, sizeof(in)), 0);
    assert_int_equal(listen(lfd, 0), 0);
    filler = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(filler, (struct sockaddr *)&in, sizeof(in)), 0);
    for (int i = 0; i < 2; i++) {
        t0 = dpc_now();
        assert_null(dpc_pool_reacquire(l, 2000, &code, err, sizeof(err)));
        assert_true(dpc_now() - t0 < 0.5);  /* not the 2 s timeout */
        assert_int_equal(code, DPC_E_TIMEOUT);
        assert_contains(err, "still connecting");
    }
    close(filler);
    close(lfd);
    dpc_pool_release(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(link_no_room_code_test),
        cmocka_unit_test(link_draining_code_test),
        cmocka_unit_test(link_retries_handshake_closes_test),
        cmocka_unit_test(link_wrong_secret_not_retried_test),
        cmocka_unit_test(link_closed_until_timeout_test),
        cmocka_unit_test(link_refused_retried_briefly_test),
        cmocka_unit_test(link_silent_server_one_timeout_test),
        cmocka_unit_test(link_gets_pipelined_test),
        cmocka_unit_test(link_more_requests_than_ring_test),
        cmocka_unit_test(link_partial_replies_test),
        cmocka_unit_test(link_open_no_room_test),
        cmocka_unit_test(link_get_unknown_handle_test),
        cmocka_unit_test(link_refused_put_breaks_link_test),
        cmocka_unit_test(link_host_closes_mid_batch_test),
        cmocka_unit_test(link_reply_out_of_order_test),
        cmocka_unit_test(link_reply_malformed_test),
        cmocka_unit_test(link_reply_bad_length_test),
        cmocka_unit_test(link_reply_cut_short_test),
        cmocka_unit_test(link_reply_refusal_reason_test),
        cmocka_unit_test(link_trickled_reply_times_out_test),
        cmocka_unit_test(pool_reacquire_does_not_wait_test),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
