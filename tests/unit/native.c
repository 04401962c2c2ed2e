/*
 * Unit tests for dpc_native: a native-protocol connection driven the way
 * dpc_conn drives it (flush all output, then offer what was received),
 * with a real dpc_store behind it, as tests/unit/session.c does for the
 * stock protocol.  Covers the proof (right, wrong, short), every state of
 * the machine and each transition, OPEN/PUT/GET/CLOSE/STATUS, tiles
 * arriving a byte at a time or through input_span, replies taken a few
 * bytes at a time, an OPEN refused for want of room (answered; the
 * connection goes on), an OPEN while the server drains (answered
 * DPC_WS_DRAINING; the caches open are still served), every rejection
 * (answered, then closed), the
 * counters and trace, and caches released when the connection is freed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dpc_bytes.h"
#include "dpc_native.h"
#include "dpc_store.h"
#include "dpc_util.h"
#include "dpc_wire.h"

#define BUDGET (8ull << 20)
#define SLOT 64

#define assert_contains(hay, needle)                                       \
    do {                                                                   \
        if (strstr((hay), (needle)) == NULL)                               \
            fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));   \
    } while (0)

struct buf {
    uint8_t *p;
    size_t len, cap;
};

struct harness {
    struct dpc_store *store;
    struct dpc_native *s;
    uint8_t key[DPC_WIRE_KEY_LEN];
    uint8_t ns[DPC_WIRE_NONCE_LEN];
    struct buf in, out;
    size_t send_max;            /* bytes per dpc_native_sent; 0: all */
    int status_calls, refused_calls;
    char refused_why[DPC_ERRLEN];
    char trace[2048];
    int no_status;
    int draining;               /* the server's flag, borrowed by cfg */
};

static void buf_add(struct buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void buf_take(struct buf *b, size_t n)
{
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

static size_t status_cb(void *arg, char *buf, size_t len)
{
    struct harness *h = arg;

    h->status_calls++;
    return (size_t)snprintf(buf, len, "{\"calls\":%d}", h->status_calls);
}

static void trace_cb(void *arg, const char *msg)
{
    struct harness *h = arg;
    size_t n = strlen(h->trace);

    snprintf(h->trace + n, sizeof(h->trace) - n, "%s\n", msg);
}

static void refused_cb(void *arg, const char *why)
{
    struct harness *h = arg;

    h->refused_calls++;
    snprintf(h->refused_why, sizeof(h->refused_why), "%s", why);
}

/* Takes everything the connection has to send, send_max at a time. */
static void drain(struct harness *h)
{
    for (;;) {
        struct iovec iov[8];
        int n = dpc_native_output(h->s, iov, 8);
        size_t total = 0;

        if (n == 0)
            return;
        for (int i = 0; i < n; i++) {
            size_t k = iov[i].iov_len;

            if (h->send_max != 0 && k > h->send_max - total)
                k = h->send_max - total;
            buf_add(&h->out, iov[i].iov_base, k);
            total += k;
            if (h->send_max != 0 && total == h->send_max)
                break;
        }
        dpc_native_sent(h->s, total);
    }
}

/* As dpc_conn: flush all output, then offer every byte received. */
static void pump(struct harness *h)
{
    for (;;) {
        size_t want, used;

        drain(h);
        if (dpc_native_finished(h->s))
            return;
        want = dpc_native_want(h->s);
        if (want == 0 || h->in.len < want)
            return;
        used = dpc_native_input(h->s, h->in.p, h->in.len);
        assert_true(used >= 1 && used <= h->in.len);
        buf_take(&h->in, used);
    }
}

static void client_send(struct harness *h, const void *p, size_t n)
{
    buf_add(&h->in, p, n);
    pump(h);
}

static void client_send_bytewise(struct harness *h, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        client_send(h, (const uint8_t *)p + i, 1);
}

static void start(struct harness *h, uint64_t budget)
{
    struct dpc_store_cfg sc = { .mem_budget = budget };
    struct dpc_native_cfg cfg = { .key = h->key, .status = status_cb,
                                  .trace = trace_cb, .refused = refused_cb,
                                  .draining = &h->draining, .arg = h };
    char err[DPC_ERRLEN];

    memset(h, 0, sizeof(*h));
    for (int i = 0; i < DPC_WIRE_NONCE_LEN; i++)
        h->ns[i] = (uint8_t)(0x40 + i);
    dpc_wire_derive_key("native test", 11, h->key);
    h->store = dpc_store_new(&sc, err, sizeof(err));
    if (h->store == NULL)
        fail_msg("dpc_store_new: %s", err);
    cfg.store = h->store;
    h->s = dpc_native_new(&cfg, h->ns);
    assert_non_null(h->s);
}

/* A fresh connection with the status callback left out. */
static void start_no_status(struct harness *h)
{
    struct dpc_native_cfg cfg = { 0 };

    start(h, BUDGET);
    dpc_native_free(h->s);
    cfg.key = h->key;
    cfg.store = h->store;
    cfg.arg = h;
    h->s = dpc_native_new(&cfg, h->ns);
    assert_non_null(h->s);
}

static void finish(struct harness *h)
{
    struct dpc_store_stats st;

    dpc_native_free(h->s);
    dpc_store_get_stats(h->store, &st);
    assert_int_equal(st.caches, 0);
    dpc_store_free(h->store);
    free(h->in.p);
    free(h->out.p);
}

/* The client's half of the proof: Nc and its MAC. */
static void client_proof(struct harness *h, uint8_t out[64], int good)
{
    for (int i = 0; i < DPC_WIRE_NONCE_LEN; i++)
        out[i] = (uint8_t)(0x90 + i);
    dpc_wire_proof(h->key, "client", h->ns, out, out + DPC_WIRE_NONCE_LEN);
    if (!good)
        out[DPC_WIRE_NONCE_LEN] ^= 1;
}

/* start(), then the proof, the server's answer checked and taken. */
static void start_authenticated(struct harness *h, uint64_t budget)
{
    uint8_t proof[64], mac[DPC_WIRE_MAC_LEN];

    start(h, budget);
    pump(h);
    assert_int_equal(h->out.len, DPC_WIRE_NONCE_LEN);
    buf_take(&h->out, DPC_WIRE_NONCE_LEN);
    client_proof(h, proof, 1);
    client_send(h, proof, sizeof(proof));
    dpc_wire_proof(h->key, "server", h->ns, proof, mac);
    assert_int_equal(h->out.len, DPC_WIRE_MAC_LEN);
    assert_memory_equal(h->out.p, mac, DPC_WIRE_MAC_LEN);
    buf_take(&h->out, DPC_WIRE_MAC_LEN);
    assert_int_equal(dpc_native_state(h->s), DPC_NAT_HEADER);
}

static void req_hdr(uint8_t *p, uint8_t op, uint32_t id, uint32_t len)
{
    struct dpc_wire_hdr hd = { .version = DPC_WIRE_VERSION, .op = op,
                               .id = id, .length = len };

    dpc_wire_encode_hdr(p, &hd);
}

static void send_open(struct harness *h, uint32_t id, uint32_t slot_bytes,
                      uint64_t slots)
{
    uint8_t m[DPC_WIRE_HDR_LEN + 16] = { 0 };

    req_hdr(m, DPC_OP_OPEN, id, 16);
    dpc_put_be32(m + 16, slot_bytes);
    dpc_put_be64(m + 24, slots);
    client_send(h, m, sizeof(m));
}

static void send_close(struct harness *h, uint32_t id, uint64_t handle)
{
    uint8_t m[DPC_WIRE_HDR_LEN + 8];

    req_hdr(m, DPC_OP_CLOSE, id, 8);
    dpc_put_be64(m + 16, handle);
    client_send(h, m, sizeof(m));
}

/* A PUT or GET: header, fixed part, slot list (and, for a PUT, data of
 * count x SLOT bytes) in one buffer; the caller frees it. */
static uint8_t *slots_msg(uint8_t op, uint32_t id, uint64_t handle,
                          uint32_t count, const uint64_t *slots,
                          const uint8_t *data, size_t *len)
{
    size_t body = 16 + 8 * (size_t)count +
                  (op == DPC_OP_PUT ? (size_t)count * SLOT : 0);
    uint8_t *m = calloc(1, DPC_WIRE_HDR_LEN + body);

    assert_non_null(m);
    req_hdr(m, op, id, (uint32_t)body);
    dpc_put_be64(m + 16, handle);
    dpc_put_be32(m + 24, count);
    for (uint32_t i = 0; i < count; i++)
        dpc_put_be64(m + 32 + 8 * i, slots[i]);
    if (op == DPC_OP_PUT)
        memcpy(m + 32 + 8 * count, data, (size_t)count * SLOT);
    *len = DPC_WIRE_HDR_LEN + body;
    return m;
}

/* Sends a whole PUT or GET (slots_msg) at once. */
static void send_slots(struct harness *h, uint8_t op, uint32_t id,
                       uint64_t handle, uint32_t count, const uint64_t *slots,
                       const uint8_t *data)
{
    size_t len;
    uint8_t *m = slots_msg(op, id, handle, count, slots, data, &len);

    client_send(h, m, len);
    free(m);
}

/* Takes one reply from the output and checks its header; returns its
 * body length (the body stays at the front of h->out).  Read field by
 * field: the reply to a header that failed to decode carries op 0, which
 * dpc_wire_decode_hdr() itself would refuse. */
static uint32_t expect_reply(struct harness *h, uint8_t op, uint32_t id,
                             uint16_t status)
{
    uint32_t len;

    if (h->out.len < DPC_WIRE_HDR_LEN)
        fail_msg("no reply (%zu bytes out; error \"%s\")", h->out.len,
                 dpc_native_error(h->s));
    assert_int_equal(h->out.p[0], DPC_WIRE_VERSION);
    assert_int_equal(h->out.p[1], op);
    assert_int_equal(h->out.p[2] << 8 | h->out.p[3], status);
    assert_int_equal(dpc_get_be32(h->out.p + 4), id);
    len = dpc_get_be32(h->out.p + 8);
    assert_int_equal(dpc_get_be32(h->out.p + 12), 0);
    assert_true(h->out.len >= DPC_WIRE_HDR_LEN + len);
    buf_take(&h->out, DPC_WIRE_HDR_LEN);
    return len;
}

static uint64_t open_ok(struct harness *h, uint32_t id, uint64_t slots)
{
    uint64_t handle;

    send_open(h, id, SLOT, slots);
    assert_int_equal(expect_reply(h, DPC_OP_OPEN, id, DPC_WS_OK), 8);
    handle = dpc_get_be64(h->out.p);
    buf_take(&h->out, 8);
    return handle;
}

/* A rejection: the reply names the reason, then the connection closes;
 * the session's code is DPC_E_PROTOCOL. */
static void expect_rejected(struct harness *h, uint8_t op, uint32_t id,
                            const char *why)
{
    uint32_t n = expect_reply(h, op, id, DPC_WS_BAD_REQUEST);
    char reason[DPC_WIRE_MAX_REASON + 1];

    assert_true(n > 0 && n <= DPC_WIRE_MAX_REASON);
    memcpy(reason, h->out.p, n);
    reason[n] = '\0';
    buf_take(&h->out, n);
    assert_contains(reason, why);
    assert_int_equal(h->out.len, 0);
    assert_int_equal(dpc_native_state(h->s), DPC_NAT_CLOSING);
    assert_true(dpc_native_finished(h->s));
    assert_contains(dpc_native_error(h->s), why);
    assert_int_equal(dpc_native_errcode(h->s), DPC_E_PROTOCOL);
    assert_int_equal(dpc_native_want(h->s), 0);
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed * 29 + i * 3 + 1);
}

/* ---- the proof ---------------------------------------------------------- */

/* The first output is Ns; nothing is taken before the whole proof. */
static void native_nonce_first_test(void **state)
{
    struct harness h;
    uint8_t proof[64];

    start(&h, BUDGET);
    assert_int_equal(dpc_native_state(h.s), DPC_NAT_PROOF);
    assert_int_equal(dpc_native_want(h.s), 0);      /* Ns still queued */
    pump(&h);
    assert_int_equal(h.out.len, DPC_WIRE_NONCE_LEN);
    assert_memory_equal(h.out.p, h.ns, DPC_WIRE_NONCE_LEN);
    assert_int_equal(dpc_native_want(h.s), 64);
    client_proof(&h, proof, 1);
    assert_int_equal(dpc_native_input(h.s, proof, 63), 0);
    assert_int_equal(dpc_native_state(h.s), DPC_NAT_PROOF);
    assert_false(dpc_native_authenticated(h.s));
    finish(&h);
}

/* A right proof: the server's own proof back, HEADER, authenticated. */
static void native_proof_ok_test(void **state)
{
    struct harness h;

    start_authenticated(&h, BUDGET);
    assert_true(dpc_native_authenticated(h.s));
    assert_false(dpc_native_finished(h.s));
    assert_int_equal(dpc_native_errcode(h.s), DPC_E_OK);
    assert_int_equal(dpc_native_want(h.s), DPC_WIRE_HDR_LEN);
    finish(&h);
}

/* A wrong proof: nothing sent back, CLOSING at once, not authenticated,
 * DPC_E_AUTH. */
static void native_proof_wrong_test(void **state)
{
    struct harness h;
    uint8_t proof[64];

    start(&h, BUDGET);
    pump(&h);
    buf_take(&h.out, DPC_WIRE_NONCE_LEN);
    client_proof(&h, proof, 0);
    client_send(&h, proof, sizeof(proof));
    assert_int_equal(h.out.len, 0);
    assert_int_equal(dpc_native_state(h.s), DPC_NAT_CLOSING);
    assert_true(dpc_native_finished(h.s));
    assert_false(dpc_native_authenticated(h.s));
    assert_contains(dpc_native_error(h.s), "authentication failed");
    assert_int_equal(dpc_native_errcode(h.s), DPC_E_AUTH);
    finish(&h);
}

/* ---- requests ----------------------------------------------------------- */

/* OPEN: handle 1, then 2; each reply echoes its id. */
static void native_open_test(void **state)
{
    struct harness h;

    start_authenticated(&h, BUDGET);
    assert_int_equal(open_ok(&h, 7, 10), 1);
    assert_int_equal(open_ok(&h, 8, 10), 2);
    assert_int_equal(dpc_native_state(h.s), DPC_NAT_HEADER);
    assert_contains(h.trace, "OPEN 10 x 64 bytes in memory");
    finish(&h);
}

/* A PUT of three slots, then a GET of them in another order and of a
 * slot never written (zeros). */
static void native_put_get_test(void **state)
{
    struct harness h;
    uint64_t put_slots[3] = { 4, 0, 9 }, get_slots[4] = { 9, 1, 4, 0 };
    uint8_t data[3 * SLOT];
    uint64_t handle;

    start_authenticated(&h, BUDGET);
    handle = open_ok(&h, 1, 10);
    fill(data, sizeof(data), 3);
    send_slots(&h, DPC_OP_PUT, 2, handle, 3, put_slots, data);
    assert_int_equal(expect_reply(&h, DPC_OP_PUT, 2, DPC_WS_OK), 0);
    send_slots(&h, DPC_OP_GET, 3, handle, 4, get_slots, NULL);
    assert_int_equal(expect_reply(&h, DPC_OP_GET, 3, DPC_WS_OK), 4 * SLOT);
    assert_memory_equal(h.out.p, data + 2 * SLOT, SLOT);        /* 9 */
    for (int i = 0; i < SLOT; i++)
        assert_int_equal(h.out.p[SLOT + i], 0);                 /* 1 */
    assert_memory_equal(h.out.p + 2 * SLOT, data, SLOT);        /* 4 */
    assert_memory_equal(h.out.p + 3 * SLOT, data + SLOT, SLOT); /* 0 */
    buf_take(&h.out, 4 * SLOT);
    assert_int_equal(dpc_native_state(h.s), DPC_NAT_HEADER);
    assert_contains(h.trace, "PUT 3 x 64\nGET 4 x 64\n");
    finish(&h);
}

static void send_copy(struct harness *h, uint32_t id, uint64_t src,
                      uint64_t dst, uint32_t len)
{
    uint8_t m[DPC_WIRE_HDR_LEN + 16];

    req_hdr(m, DPC_OP_COPY, id, len);
    dpc_put_be64(m + 16, src);
    dpc_put_be64(m + 24, dst);
    client_send(h, m, DPC_WIRE_HDR_LEN + (len < 16 ? len : 16));
}

/* COPY: every slot of one cache into another of its shape, read back by
 * GET; caches of another shape, or the same one, refused with a reason
 * and the connection going on; an unknown handle or a body of another
 * length rejected. */
static void native_copy_test(void **state)
{
    struct harness h;
    uint64_t put_slots[3] = { 4, 0, 9 }, get_slots[3] = { 0, 4, 9 };
    uint8_t data[3 * SLOT];
    uint64_t a, b, c;
    uint32_t n;

    (void)state;
    start_authenticated(&h, BUDGET);
    a = open_ok(&h, 1, 10);
    b = open_ok(&h, 2, 10);
    c = open_ok(&h, 3, 11);
    fill(data, sizeof(data), 5);
    send_slots(&h, DPC_OP_PUT, 4, a, 3, put_slots, data);
    assert_int_equal(expect_reply(&h, DPC_OP_PUT, 4, DPC_WS_OK), 0);
    send_copy(&h, 5, a, b, 16);
    assert_int_equal(expect_reply(&h, DPC_OP_COPY, 5, DPC_WS_OK), 0);
    send_slots(&h, DPC_OP_GET, 6, b, 3, get_slots, NULL);
    assert_int_equal(expect_reply(&h, DPC_OP_GET, 6, DPC_WS_OK), 3 * SLOT);
    assert_memory_equal(h.out.p, data + SLOT, SLOT);            /* 0 */
    assert_memory_equal(h.out.p + SLOT, data, SLOT);            /* 4 */
    assert_memory_equal(h.out.p + 2 * SLOT, data + 2 * SLOT, SLOT);
    buf_take(&h.out, 3 * SLOT);
    assert_contains(h.trace, "COPY 640 bytes");
    for (int i = 0; i < 2; i++) {
        send_copy(&h, 7, a, i == 0 ? c : a, 16);
        n = expect_reply(&h, DPC_OP_COPY, 7, DPC_WS_REFUSED);
        assert_true(n > 0 && h.out.len == n);
        assert_memory_equal(h.out.p, "copy between caches of other shapes",
                            n);
        buf_take(&h.out, n);
        assert_int_equal(dpc_native_state(h.s), DPC_NAT_HEADER);
    }
    send_close(&h, 8, c);
    assert_int_equal(expect_reply(&h, DPC_OP_CLOSE, 8, DPC_WS_OK), 0);
    send_copy(&h, 9, a, c, 16);
    expect_rejected(&h, DPC_OP_COPY, 9, "unknown cache handle 3");
    finish(&h);
    start_authenticated(&h, BUDGET);
    a = open_ok(&h, 1, 10);
    send_copy(&h, 2, a, a, 8);
    expect_rejected(&h, DPC_OP_COPY, 2, "too short for operation 6");
    finish(&h);
    start_authenticated(&h, BUDGET);
    a = open_ok(&h, 1, 10);
    b = open_ok(&h, 2, 10);
    send_copy(&h, 3, a, b, 24);
    expect_rejected(&h, DPC_OP_COPY, 3, "body of 24 bytes for operation 6");
    finish(&h);
}

/* Feeding each step exactly what it wants shows every state in turn:
 * HEADER, FIXED, SLOTS, PUT_DATA (until the last tile byte), HEADER;
 * then for a GET, REPLY until its last byte is sent. */
static void native_every_state_test(void **state)
{
    struct harness h;
    uint64_t slot = 2, handle;
    uint8_t data[SLOT], *m;
    size_t len, at = 0;
    struct iovec iov[4];
    int n;

    start_authenticated(&h, BUDGET);
    handle = open_ok(&h, 1, 4);
    fill(data, sizeof(data), 5);
    m = slots_msg(DPC_OP_PUT, 2, handle, 1, &slot, data, &len);
    assert_int_equal(dpc_native_input(h.s, m, 16), 16);
    assert_int_equal(dpc_native_state(h.s), DPC_NAT_FIXED);
    assert_int_equal(dpc_native_want(h.s), DPC_WIRE_SLOTS_FIXED);
    assert_int_equal(dpc_native_input(h.s, m + 16, 16), 16);
    assert_int_equal(dpc_native_state(h.s), DPC_NAT_SLOTS);
    assert_int_equal(dpc_native_want(h.s), 8);
    assert_int_equal(dpc_native_input(h.s, m + 32, 8), 8);
    assert_int_equal(dpc_native_state(h.s), DPC_NAT_PUT_DATA);
    assert_int_equal(dpc_native_want(h.s), 1);
    for (at = 40; at < len - 1; at++)
        assert_int_equal(dpc_native_input(h.s, m + at, 1), 1);
    assert_int_equal(dpc_native_state(h.s), DPC_NAT_PUT_DATA);
    assert_int_equal(dpc_native_input(h.s, m + at, 1), 1);
    assert_int_equal(dpc_native_state(h.s), DPC_NAT_HEADER);
    free(m);
    drain(&h);
    assert_int_equal(expect_reply(&h, DPC_OP_PUT, 2, DPC_WS_OK), 0);

    m = slots_msg(DPC_OP_GET, 3, handle, 1, &slot, NULL, &len);
    assert_int_equal(dpc_native_input(h.s, m, len), 16);
    assert_int_equal(dpc_native_input(h.s, m + 16, len - 16), 16);
    assert_int_equal(dpc_native_input(h.s, m + 32, len - 32), 8);
    free(m);
    assert_int_equal(dpc_native_state(h.s), DPC_NAT_REPLY);
    assert_int_equal(dpc_native_want(h.s), 0);
    n = dpc_native_output(h.s, iov, 4);
    assert_int_equal(n, 2);                 /* header, then the slot */
    assert_int_equal(iov[0].iov_len, DPC_WIRE_HDR_LEN);
    assert_int_equal(iov[1].iov_len, SLOT);
    assert_memory_equal(iov[1].iov_base, data, SLOT);
    dpc_native_sent(h.s, DPC_WIRE_HDR_LEN + SLOT - 1);
    assert_int_equal(dpc_native_state(h.s), DPC_NAT_REPLY);
    dpc_native_sent(h.s, 1);
    assert_int_equal(dpc_native_state(h.s), DPC_NAT_HEADER);
    assert_int_equal(dpc_native_want(h.s), DPC_WIRE_HDR_LEN);
    finish(&h);
}

/* A PUT and a GET delivered one byte at a time, replies taken five bytes
 * at a time: the same result as whole. */
static void native_bytewise_test(void **state)
{
    struct harness h;
    uint64_t slots[2] = { 1, 3 }, handle;
    uint8_t data[2 * SLOT], *m;
    size_t len;

    start_authenticated(&h, BUDGET);
    h.send_max = 5;
    handle = open_ok(&h, 1, 4);
    fill(data, sizeof(data), 6);
    m = slots_msg(DPC_OP_PUT, 2, handle, 2, slots, data, &len);
    client_send_bytewise(&h, m, len);
    free(m);
    assert_int_equal(expect_reply(&h, DPC_OP_PUT, 2, DPC_WS_OK), 0);
    m = slots_msg(DPC_OP_GET, 3, handle, 2, slots, NULL, &len);
    client_send_bytewise(&h, m, len);
    free(m);
    assert_int_equal(expect_reply(&h, DPC_OP_GET, 3, DPC_WS_OK), 2 * SLOT);
    assert_memory_equal(h.out.p, data, 2 * SLOT);
    finish(&h);
}

/* A PUT's tiles received straight into the cache through input_span:
 * each span ends at its slot's end, and the GET returns them. */
static void native_input_span_test(void **state)
{
    struct harness h;
    uint64_t slots[2] = { 3, 0 }, handle;
    uint8_t data[2 * SLOT], *m, *dst;
    size_t len, span = 0, at;

    start_authenticated(&h, BUDGET);
    handle = open_ok(&h, 1, 4);
    fill(data, sizeof(data), 8);
    assert_null(dpc_native_input_span(h.s, &span));     /* not in a PUT */
    m = slots_msg(DPC_OP_PUT, 2, handle, 2, slots, data, &len);
    client_send(&h, m, 48);                 /* up to the tiles */
    assert_int_equal(dpc_native_state(h.s), DPC_NAT_PUT_DATA);
    for (at = 48; at < len;) {
        size_t k;

        dst = dpc_native_input_span(h.s, &span);
        assert_non_null(dst);
        assert_true(span >= 1 && span <= SLOT);
        assert_true(span == SLOT - (at - 48) % SLOT);   /* to slot's end */
        k = span > 1 ? span / 2 : 1;                    /* half of it */
        memcpy(dst, m + at, k);
        dpc_native_input_done(h.s, k);
        at += k;
    }
    free(m);
    assert_int_equal(dpc_native_state(h.s), DPC_NAT_HEADER);
    assert_null(dpc_native_input_span(h.s, &span));
    pump(&h);
    assert_int_equal(expect_reply(&h, DPC_OP_PUT, 2, DPC_WS_OK), 0);
    send_slots(&h, DPC_OP_GET, 3, handle, 2, slots, NULL);
    assert_int_equal(expect_reply(&h, DPC_OP_GET, 3, DPC_WS_OK), 2 * SLOT);
    assert_memory_equal(h.out.p, data, 2 * SLOT);
    finish(&h);
}

/* Pipelined requests in one delivery are answered in order, and while a
 * reply is queued no input is taken. */
static void native_pipelined_in_order_test(void **state)
{
    struct harness h;
    uint8_t m[3 * (DPC_WIRE_HDR_LEN + 16)] = { 0 };

    start_authenticated(&h, BUDGET);
    for (int i = 0; i < 3; i++) {
        req_hdr(m + 32 * i, DPC_OP_OPEN, 10 + (uint32_t)i, 16);
        dpc_put_be32(m + 32 * i + 16, SLOT);
        dpc_put_be64(m + 32 * i + 24, 2);
    }
    assert_int_equal(dpc_native_input(h.s, m, sizeof(m)), 16);
    assert_int_equal(dpc_native_input(h.s, m + 16, sizeof(m) - 16), 16);
    /* the first reply is queued: nothing more is taken until it is sent */
    assert_int_equal(dpc_native_want(h.s), 0);
    assert_int_equal(dpc_native_input(h.s, m + 32, sizeof(m) - 32), 0);
    client_send(&h, m + 32, sizeof(m) - 32);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(expect_reply(&h, DPC_OP_OPEN, 10 + (uint32_t)i,
                                      DPC_WS_OK), 8);
        assert_int_equal(dpc_get_be64(h.out.p), (uint64_t)i + 1);
        buf_take(&h.out, 8);
    }
    finish(&h);
}

/* CLOSE frees the cache: its handle is then unknown, and is reused by the
 * next OPEN. */
static void native_close_test(void **state)
{
    struct harness h;
    uint64_t handle;
    struct dpc_store_stats st;

    start_authenticated(&h, BUDGET);
    handle = open_ok(&h, 1, 4);
    send_close(&h, 2, handle);
    assert_int_equal(expect_reply(&h, DPC_OP_CLOSE, 2, DPC_WS_OK), 0);
    dpc_store_get_stats(h.store, &st);
    assert_int_equal(st.caches, 0);
    assert_contains(h.trace, "CLOSE 1");
    assert_int_equal(open_ok(&h, 3, 4), handle);
    send_close(&h, 4, 2);
    expect_rejected(&h, DPC_OP_CLOSE, 4, "unknown cache handle 2");
    finish(&h);
}

/* STATUS: the callback's JSON as the body, every time it is asked. */
static void native_status_test(void **state)
{
    struct harness h;
    uint8_t m[DPC_WIRE_HDR_LEN];
    uint32_t n;

    start_authenticated(&h, BUDGET);
    for (int i = 1; i <= 2; i++) {
        char want[32];

        req_hdr(m, DPC_OP_STATUS, 40 + (uint32_t)i, 0);
        client_send(&h, m, sizeof(m));
        n = expect_reply(&h, DPC_OP_STATUS, 40 + (uint32_t)i, DPC_WS_OK);
        snprintf(want, sizeof(want), "{\"calls\":%d}", i);
        assert_int_equal(n, strlen(want));
        assert_memory_equal(h.out.p, want, n);
        buf_take(&h.out, n);
    }
    assert_int_equal(h.status_calls, 2);
    assert_contains(h.trace, "STATUS\n");
    finish(&h);
}

/* An OPEN the store has no room for: NO_ROOM with the store's reason, the
 * refused callback told, and the connection goes on. */
static void native_open_no_room_test(void **state)
{
    struct harness h;
    uint32_t n;

    start_authenticated(&h, 1 << 20);
    send_open(&h, 5, SLOT, 1 << 20);                /* 64 MiB */
    n = expect_reply(&h, DPC_OP_OPEN, 5, DPC_WS_NO_ROOM);
    assert_true(n > 0);
    assert_true(memmem(h.out.p, n, "no room", 7) != NULL);
    buf_take(&h.out, n);
    assert_int_equal(h.refused_calls, 1);
    assert_contains(h.refused_why, "no room");
    assert_int_equal(dpc_native_state(h.s), DPC_NAT_HEADER);
    assert_string_equal(dpc_native_error(h.s), "");
    assert_int_equal(open_ok(&h, 6, 4), 1);
    finish(&h);
}

/* While the server drains: an OPEN is answered DPC_WS_DRAINING with a
 * reason (not a no-room refusal), the connection goes on, and the cache it
 * already has is still written and read; once no longer draining, OPEN
 * works again. */
static void native_open_draining_test(void **state)
{
    struct harness h;
    uint64_t slot = 2, handle;
    uint8_t data[SLOT];
    uint32_t n;

    start_authenticated(&h, BUDGET);
    handle = open_ok(&h, 1, 4);
    h.draining = 1;
    send_open(&h, 2, SLOT, 4);
    n = expect_reply(&h, DPC_OP_OPEN, 2, DPC_WS_DRAINING);
    assert_true(n > 0);
    assert_true(memmem(h.out.p, n, "draining", 8) != NULL);
    buf_take(&h.out, n);
    assert_int_equal(h.refused_calls, 0);
    assert_int_equal(dpc_native_state(h.s), DPC_NAT_HEADER);
    assert_string_equal(dpc_native_error(h.s), "");
    assert_contains(h.trace, "refused: draining");
    fill(data, sizeof(data), 5);
    send_slots(&h, DPC_OP_PUT, 3, handle, 1, &slot, data);
    assert_int_equal(expect_reply(&h, DPC_OP_PUT, 3, DPC_WS_OK), 0);
    send_slots(&h, DPC_OP_GET, 4, handle, 1, &slot, NULL);
    assert_int_equal(expect_reply(&h, DPC_OP_GET, 4, DPC_WS_OK), SLOT);
    assert_memory_equal(h.out.p, data, SLOT);
    buf_take(&h.out, SLOT);
    h.draining = 0;
    assert_int_equal(open_ok(&h, 5, 4), 2);
    finish(&h);
}

/* ---- rejections --------------------------------------------------------- */

/* A header of protocol version 9: refused (the reply, op 0, echoes the id). */
static void native_reject_version_test(void **state)
{
    struct harness h;
    uint8_t m[DPC_WIRE_HDR_LEN];

    start_authenticated(&h, BUDGET);
    req_hdr(m, DPC_OP_STATUS, 1, 0);
    m[0] = 9;
    client_send(&h, m, sizeof(m));
    expect_rejected(&h, 0, 1, "protocol version 9");
    finish(&h);
}

/* Operation 77: refused as unknown. */
static void native_reject_unknown_op_test(void **state)
{
    struct harness h;
    uint8_t m[DPC_WIRE_HDR_LEN];

    start_authenticated(&h, BUDGET);
    req_hdr(m, 77, 2, 0);
    client_send(&h, m, sizeof(m));
    expect_rejected(&h, 0, 2, "unknown operation 77");
    finish(&h);
}

/* A body one byte over DPC_WIRE_MAX_BODY: refused before any of it is read. */
static void native_reject_huge_body_test(void **state)
{
    struct harness h;
    uint8_t m[DPC_WIRE_HDR_LEN];

    start_authenticated(&h, BUDGET);
    req_hdr(m, DPC_OP_PUT, 3, DPC_WIRE_MAX_BODY + 1);
    client_send(&h, m, sizeof(m));
    expect_rejected(&h, 0, 3, "exceeds");
    finish(&h);
}

/* A bit set in the header's reserved word: refused. */
static void native_reject_reserved_test(void **state)
{
    struct harness h;
    uint8_t m[DPC_WIRE_HDR_LEN];

    start_authenticated(&h, BUDGET);
    req_hdr(m, DPC_OP_STATUS, 4, 0);
    m[15] = 1;
    client_send(&h, m, sizeof(m));
    expect_rejected(&h, 0, 4, "reserved header bits");
    finish(&h);
}

/* STATUS must have no body. */
static void native_reject_status_body_test(void **state)
{
    struct harness h;
    uint8_t m[DPC_WIRE_HDR_LEN];

    start_authenticated(&h, BUDGET);
    req_hdr(m, DPC_OP_STATUS, 5, 4);
    client_send(&h, m, sizeof(m));
    expect_rejected(&h, DPC_OP_STATUS, 5, "status with a body");
    finish(&h);
}

/* A connection without a status callback refuses STATUS. */
static void native_reject_status_not_served_test(void **state)
{
    struct harness h;
    uint8_t m[DPC_WIRE_HDR_LEN], proof[64];

    start_no_status(&h);
    pump(&h);
    buf_take(&h.out, DPC_WIRE_NONCE_LEN);
    client_proof(&h, proof, 1);
    client_send(&h, proof, sizeof(proof));
    buf_take(&h.out, DPC_WIRE_MAC_LEN);
    req_hdr(m, DPC_OP_STATUS, 6, 0);
    client_send(&h, m, sizeof(m));
    expect_rejected(&h, DPC_OP_STATUS, 6, "status not served here");
    finish(&h);
}

/* Bodies shorter than the operation's fixed part, and OPEN/CLOSE bodies
 * longer than theirs. */
static void native_reject_body_lengths_test(void **state)
{
    static const struct { uint8_t op; uint32_t len; const char *why; } c[] = {
        { DPC_OP_OPEN, 15, "too short for operation 1" },
        { DPC_OP_OPEN, 17, "body of 17 bytes for operation 1" },
        { DPC_OP_CLOSE, 0, "too short for operation 4" },
        { DPC_OP_CLOSE, 9, "body of 9 bytes for operation 4" },
        { DPC_OP_GET, 8, "too short for operation 3" },
        { DPC_OP_PUT, 15, "too short for operation 2" },
    };

    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct harness h;
        uint8_t m[DPC_WIRE_HDR_LEN];

        start_authenticated(&h, BUDGET);
        req_hdr(m, c[i].op, 7, c[i].len);
        client_send(&h, m, sizeof(m));
        expect_rejected(&h, c[i].op, 7, c[i].why);
        finish(&h);
    }
}

/* OPENs of no slots, of empty or oversized slots, of a size that
 * overflows, or with the reserved word set. */
static void native_reject_bad_open_test(void **state)
{
    static const struct { uint32_t slot_bytes, reserved; uint64_t slots; }
        c[] = {
        { 0, 0, 4 },
        { DPC_WIRE_MAX_SLOT_BYTES + 1, 0, 1 },
        { SLOT, 0, 0 },
        { 1u << 20, 0, UINT64_MAX / 2 },
        { SLOT, 1, 4 },
    };

    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct harness h;
        uint8_t m[DPC_WIRE_HDR_LEN + 16] = { 0 };

        start_authenticated(&h, BUDGET);
        req_hdr(m, DPC_OP_OPEN, 8, 16);
        dpc_put_be32(m + 16, c[i].slot_bytes);
        dpc_put_be32(m + 20, c[i].reserved);
        dpc_put_be64(m + 24, c[i].slots);
        client_send(&h, m, sizeof(m));
        expect_rejected(&h, DPC_OP_OPEN, 8, "bad open");
        assert_int_equal(h.refused_calls, 0);
        finish(&h);
    }
}

/* The 65th open cache on one connection. */
static void native_reject_too_many_caches_test(void **state)
{
    struct harness h;

    start_authenticated(&h, BUDGET);
    for (uint32_t i = 1; i <= DPC_NATIVE_MAX_CACHES; i++)
        assert_int_equal(open_ok(&h, i, 1), i);
    send_open(&h, 99, SLOT, 1);
    expect_rejected(&h, DPC_OP_OPEN, 99, "more than 64 caches");
    finish(&h);
}

/* PUT and GET of handles 0, one past the table, and one never opened. */
static void native_reject_unknown_handle_test(void **state)
{
    static const uint64_t handles[] = { 0, DPC_NATIVE_MAX_CACHES + 1, 2,
                                        UINT64_MAX };

    for (size_t i = 0; i < sizeof(handles) / sizeof(handles[0]); i++)
        for (uint8_t op = DPC_OP_PUT; op <= DPC_OP_GET; op++) {
            struct harness h;
            uint64_t slot = 0;
            uint8_t data[SLOT] = { 0 };
            char why[64];

            start_authenticated(&h, BUDGET);
            (void)open_ok(&h, 1, 4);
            send_slots(&h, op, 9, handles[i], 1, &slot, data);
            snprintf(why, sizeof(why), "unknown cache handle %llu",
                     (unsigned long long)handles[i]);
            expect_rejected(&h, op, 9, why);
            finish(&h);
        }
}

/* A PUT or GET whose header length disagrees with its count, a count of
 * zero or past the limit, the reserved word set, a slot past the cache. */
static void native_reject_slots_test(void **state)
{
    enum { LEN, ZERO, MANY, RESERVED, RANGE, NCASES };
    static const char *why[NCASES] = {
        "body of 25 bytes, expected 24", "of 0 slots", "of 4097 slots",
        "expected 24", "slot 4 of a 4-slot cache"
    };

    for (int c = 0; c < NCASES; c++) {
        struct harness h;
        uint64_t slot = c == RANGE ? 4 : 0, handle;
        uint8_t *m, *big;
        size_t len;

        start_authenticated(&h, BUDGET);
        handle = open_ok(&h, 1, 4);
        m = slots_msg(DPC_OP_GET, 10, handle, 1, &slot, NULL, &len);
        big = calloc(1, len + 1);
        assert_non_null(big);
        memcpy(big, m, len);
        if (c == LEN)
            dpc_put_be32(big + 8, 25);
        else if (c == ZERO)
            dpc_put_be32(big + 24, 0);
        else if (c == MANY)
            dpc_put_be32(big + 24, DPC_WIRE_MAX_COUNT + 1);
        else if (c == RESERVED)
            dpc_put_be32(big + 28, 1);
        client_send(&h, big, len + (c == LEN));
        free(m);
        free(big);
        expect_rejected(&h, DPC_OP_GET, 10, why[c]);
        finish(&h);
    }
}

/* A PUT with a slot past the cache is refused before any tile is taken. */
static void native_reject_put_range_test(void **state)
{
    struct harness h;
    uint64_t slots[2] = { 1, 9 }, handle;
    uint8_t data[2 * SLOT] = { 0 };
    const struct dpc_session_counters *k;

    start_authenticated(&h, BUDGET);
    handle = open_ok(&h, 1, 4);
    send_slots(&h, DPC_OP_PUT, 11, handle, 2, slots, data);
    expect_rejected(&h, DPC_OP_PUT, 11, "slot 9 of a 4-slot cache");
    k = dpc_native_counters(h.s);
    assert_int_equal(k->bytes_in, 0);
    assert_int_equal(h.in.len, 2 * SLOT);       /* the tiles, untaken */
    finish(&h);
}

/* ---- accounting --------------------------------------------------------- */

/* Requests are counted as their headers arrive; tile bytes in and out. */
static void native_counters_test(void **state)
{
    struct harness h;
    uint64_t slots[2] = { 0, 1 }, handle;
    uint8_t data[2 * SLOT];
    const struct dpc_session_counters *k;

    start_authenticated(&h, BUDGET);
    handle = open_ok(&h, 1, 4);
    fill(data, sizeof(data), 1);
    send_slots(&h, DPC_OP_PUT, 2, handle, 2, slots, data);
    send_slots(&h, DPC_OP_GET, 3, handle, 1, slots, NULL);
    k = dpc_native_counters(h.s);
    assert_int_equal(k->requests, 3);
    assert_int_equal(k->bytes_in, 2 * SLOT);
    assert_int_equal(k->bytes_out, SLOT);
    finish(&h);
}

/* Freeing a connection closes the caches it left open (finish() checks
 * the store holds none). */
static void native_free_releases_caches_test(void **state)
{
    struct harness h;
    struct dpc_store_stats st;

    start_authenticated(&h, BUDGET);
    (void)open_ok(&h, 1, 4);
    (void)open_ok(&h, 2, 8);
    dpc_store_get_stats(h.store, &st);
    assert_int_equal(st.caches, 2);
    finish(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(native_nonce_first_test),
        cmocka_unit_test(native_proof_ok_test),
        cmocka_unit_test(native_proof_wrong_test),
        cmocka_unit_test(native_open_test),
        cmocka_unit_test(native_put_get_test),
        cmocka_unit_test(native_copy_test),
        cmocka_unit_test(native_every_state_test),
        cmocka_unit_test(native_bytewise_test),
        cmocka_unit_test(native_input_span_test),
        cmocka_unit_test(native_pipelined_in_order_test),
        cmocka_unit_test(native_close_test),
        cmocka_unit_test(native_status_test),
        cmocka_unit_test(native_open_no_room_test),
        cmocka_unit_test(native_open_draining_test),
        cmocka_unit_test(native_reject_version_test),
        cmocka_unit_test(native_reject_unknown_op_test),
        cmocka_unit_test(native_reject_huge_body_test),
        cmocka_unit_test(native_reject_reserved_test),
        cmocka_unit_test(native_reject_status_body_test),
        cmocka_unit_test(native_reject_status_not_served_test),
        cmocka_unit_test(native_reject_body_lengths_test),
        cmocka_unit_test(native_reject_bad_open_test),
        cmocka_unit_test(native_reject_too_many_caches_test),
        cmocka_unit_test(native_reject_unknown_handle_test),
        cmocka_unit_test(native_reject_slots_test),
        cmocka_unit_test(native_reject_put_range_test),
        cmocka_unit_test(native_counters_test),
        cmocka_unit_test(native_free_releases_caches_test),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
