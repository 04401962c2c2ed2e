/*
 * Unit tests for dpc_session: a stock-protocol connection driven the way
 * dpc_conn drives it (flush all output, then offer what was received),
 * with a real dpc_store behind it.  Covers the handshake, open, pixel and index
 * reads and writes, every rejection, destroy, status, drain (the 'D'
 * request, and opens refused while draining), the IM7 flavor, the
 * counters, and a transcript captured from a real ImageMagick 6 convert.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dpc_session.h"
#include "dpc_siphash.h"
#include "dpc_wire.h"

#define IM6_DIRECT 1
#define IM6_PSEUDO 2
#define IM6_CMYK 12
#define IM6_SRGB 13
#define BUDGET (64ULL * 1024 * 1024)
#define COLS 16
#define ROWS 10
#define Q16 8                           /* IM6 Q16: 4 x 2-byte quanta */

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
    enum dpc_stock_flavor flavor;
    struct dpc_store *store;
    struct dpc_session *sess;
    uint8_t sipkey[DPC_SIPHASH_KEYLEN];
    uint8_t nonce[DPC_STOCK_NONCE_MAX];
    uint8_t proof[DPC_STOCK_KEYLEN];    /* what a good client sends */
    struct buf in;                      /* sent by the client, not yet taken */
    struct buf out;                     /* sent by the server */
    size_t send_max;                    /* bytes per dpc_session_sent; 0: all */
    int status_calls;
    int draining, drain_calls;          /* the server's flag; 'D's seen */
    char trace[1024];                   /* trace lines, '\n'-terminated */
};

static const uint8_t ok_status[4] = { 1, 0, 0, 0 };
static const uint8_t fail_status[4] = { 0, 0, 0, 0 };

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

static void drain_cb(void *arg)
{
    struct harness *h = arg;

    h->drain_calls++;
    h->draining = 1;
}

static size_t status_cb(void *arg, char *buf, size_t len)
{
    struct harness *h = arg;
    struct dpc_store_stats st;
    int n;

    h->status_calls++;
    dpc_store_get_stats(h->store, &st);
    n = snprintf(buf, len, "{\"caches_open\":%llu,\"bytes_ram\":%llu}",
                 (unsigned long long)st.caches,
                 (unsigned long long)st.bytes_ram);
    return (size_t)n;
}

static void trace_cb(void *arg, const char *msg)
{
    struct harness *h = arg;
    size_t n = strlen(h->trace);

    snprintf(h->trace + n, sizeof(h->trace) - n, "%s\n", msg);
}

/* Takes everything the session has to send, send_max bytes at a time. */
static void drain(struct harness *h)
{
    for (;;) {
        struct iovec iov[4];
        int n = dpc_session_output(h->sess, iov, 4);
        size_t total = 0;

        if (n == 0)
            return;
        for (int i = 0; i < n; i++) {
            size_t k = iov[i].iov_len;

            if (h->send_max != 0 && k > h->send_max - total)
                k = h->send_max - total;
            buf_add(&h->out, iov[i].iov_base, k);
            total += k;
        }
        dpc_session_sent(h->sess, total);
    }
}

/* As dpc_conn's drive(): flush all output, then offer every byte received
 * once the session's want is met; it takes one step's worth. */
static void pump(struct harness *h)
{
    for (;;) {
        size_t want, used;

        drain(h);
        if (dpc_session_finished(h->sess))
            return;
        want = dpc_session_want(h->sess);
        if (want == 0 || h->in.len < want)
            return;
        used = dpc_session_input(h->sess, h->in.p, h->in.len);
        assert_true(used >= 1 && used <= h->in.len);
        buf_take(&h->in, used);
    }
}

static void client_send(struct harness *h, const void *p, size_t n)
{
    buf_add(&h->in, p, n);
    pump(h);
}

/* The same bytes, one at a time, as a slow network would deliver them. */
static void client_send_bytewise(struct harness *h, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        client_send(h, (const uint8_t *)p + i, 1);
}

/* Asserts the server sent exactly these bytes since the last check. */
static void expect_out(struct harness *h, const void *want, size_t n)
{
    if (h->out.len != n)
        fail_msg("server sent %zu bytes, expected %zu (error: \"%s\")",
                 h->out.len, n, dpc_session_error(h->sess));
    if (n > 0)
        assert_memory_equal(h->out.p, want, n);
    h->out.len = 0;
}

/* The failure reply (a zero status), the session closed, and why. */
static void expect_failure(struct harness *h, const char *why)
{
    expect_out(h, fail_status, sizeof(fail_status));
    assert_int_equal(dpc_session_state(h->sess), DPC_SESS_CLOSING);
    assert_true(dpc_session_finished(h->sess));
    assert_int_equal(dpc_session_want(h->sess), 0);
    assert_contains(dpc_session_error(h->sess), why);
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void send_header_key(struct harness *h, uint8_t cmd, const uint8_t *key)
{
    uint8_t p[DPC_STOCK_HDRLEN];

    p[0] = cmd;
    memcpy(p + 1, key, DPC_STOCK_KEYLEN);
    client_send(h, p, sizeof(p));
}

static void send_header(struct harness *h, uint8_t cmd)
{
    send_header_key(h, cmd, h->proof);
}

static void im6_open_payload(uint8_t p[DPC_STOCK_OPEN_IM6_LEN], uint32_t klass,
                             uint32_t colorspace, uint64_t cols, uint64_t rows)
{
    memset(p, 0, DPC_STOCK_OPEN_IM6_LEN);
    p[0] = (uint8_t)klass;
    p[4] = (uint8_t)colorspace;
    put_le64(p + 16, cols);
    put_le64(p + 24, rows);
}

static void send_open6(struct harness *h, uint32_t klass, uint32_t colorspace,
                       uint64_t cols, uint64_t rows)
{
    uint8_t p[DPC_STOCK_OPEN_IM6_LEN];

    im6_open_payload(p, klass, colorspace, cols, rows);
    send_header(h, 'o');
    client_send(h, p, sizeof(p));
}

static void send_open7(struct harness *h, uint64_t cols, uint64_t rows,
                       uint64_t nchannels, uint64_t meta)
{
    uint8_t p[DPC_STOCK_OPEN_IM7_LEN];

    memset(p, 0, sizeof(p));
    p[0] = 1;                           /* DirectClass */
    p[4] = 23;                          /* IM7 sRGB */
    put_le64(p + 16, cols);
    put_le64(p + 24, rows);
    put_le64(p + 32, nchannels);
    put_le64(p + 1064, meta);
    send_header(h, 'o');
    client_send(h, p, sizeof(p));
}

static void region_bytes(uint8_t p[DPC_STOCK_REGION_LEN], uint64_t w,
                         uint64_t hh, int64_t x, int64_t y, uint64_t len)
{
    put_le64(p, w);
    put_le64(p + 8, hh);
    put_le64(p + 16, (uint64_t)x);
    put_le64(p + 24, (uint64_t)y);
    put_le64(p + 32, len);
}

static void send_region(struct harness *h, uint8_t cmd, uint64_t w,
                        uint64_t hh, int64_t x, int64_t y, uint64_t len)
{
    uint8_t p[DPC_STOCK_REGION_LEN];

    region_bytes(p, w, hh, x, y, len);
    send_header(h, cmd);
    client_send(h, p, sizeof(p));
}

static void send_write(struct harness *h, uint8_t cmd, uint64_t w, uint64_t hh,
                       int64_t x, int64_t y, const uint8_t *data, size_t len)
{
    send_region(h, cmd, w, hh, x, y, len);
    client_send(h, data, len);
}

static void pattern(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 7 + seed + (i >> 8));
}

static struct dpc_store_stats store_stats(const struct harness *h)
{
    struct dpc_store_stats st;

    dpc_store_get_stats(h->store, &st);
    return st;
}

static struct harness *harness_new(enum dpc_stock_flavor flavor,
                                   const char *secret, const uint8_t *nonce,
                                   int allow_native)
{
    struct harness *h = calloc(1, sizeof(*h));
    struct dpc_store_cfg scfg = { .mem_budget = BUDGET };
    struct dpc_session_cfg cfg = { .flavor = flavor };
    size_t nlen = dpc_stock_nonce_len(flavor);

    assert_non_null(h);
    h->flavor = flavor;
    h->store = dpc_store_new(&scfg, NULL, 0);
    assert_non_null(h->store);
    dpc_siphash_key_from_secret(secret, strlen(secret), h->sipkey);
    memcpy(h->nonce, nonce, nlen);
    dpc_siphash_session_key(h->sipkey, h->nonce, nlen, h->proof);
    cfg.sipkey = h->sipkey;
    cfg.allow_native = allow_native;
    cfg.store = h->store;
    cfg.status = status_cb;
    cfg.trace = trace_cb;
    cfg.draining = &h->draining;
    cfg.drain = drain_cb;
    cfg.arg = h;
    h->sess = dpc_session_new(&cfg, h->nonce);
    assert_non_null(h->sess);
    return h;
}

/* The nonce out, the proof in: the session is ready for commands. */
static void login(struct harness *h)
{
    pump(h);
    expect_out(h, h->nonce, dpc_stock_nonce_len(h->flavor));
    client_send(h, h->proof, sizeof(h->proof));
    assert_int_equal(dpc_session_state(h->sess), DPC_SESS_HEADER);
    expect_out(h, NULL, 0);
}

static void open6(struct harness *h, uint32_t klass, uint32_t colorspace,
                  uint64_t cols, uint64_t rows)
{
    send_open6(h, klass, colorspace, cols, rows);
    expect_out(h, ok_status, sizeof(ok_status));
    assert_non_null(dpc_session_cache(h->sess));
}

static const uint8_t nonce16[DPC_STOCK_NONCE_MAX] = {
    0x3c, 0x91, 0x07, 0xe2, 0x5a, 0x18, 0xbd, 0x44,
    0x6f, 0x02, 0xc8, 0x7b, 0x9e, 0x31, 0xd5, 0x60,
};

static int setup_im6(void **state)
{
    *state = harness_new(DPC_STOCK_IM6, "unit test secret", nonce16, 0);
    return 0;
}

static int setup_im6_native(void **state)
{
    *state = harness_new(DPC_STOCK_IM6, "unit test secret", nonce16, 1);
    return 0;
}

static int setup_im7(void **state)
{
    *state = harness_new(DPC_STOCK_IM7, "unit test secret", nonce16, 0);
    return 0;
}

/* Frees the session, then checks it gave its cache back to the store. */
static int teardown(void **state)
{
    struct harness *h = *state;
    struct dpc_store_stats st;

    if (h == NULL)
        return 0;
    dpc_session_free(h->sess);
    dpc_store_get_stats(h->store, &st);
    dpc_store_free(h->store);
    free(h->in.p);
    free(h->out.p);
    free(h);
    return st.caches == 0 && st.bytes_ram == 0 ? 0 : -1;
}

/* A new session sends its nonce first and waits for the 8-byte proof. */
static void session_nonce_first_test(void **state)
{
    struct harness *h = *state;

    assert_int_equal(dpc_session_state(h->sess), DPC_SESS_AUTH);
    assert_false(dpc_session_finished(h->sess));
    pump(h);
    expect_out(h, nonce16, 8);
    assert_int_equal(dpc_session_state(h->sess), DPC_SESS_AUTH);
    assert_int_equal(dpc_session_want(h->sess), DPC_STOCK_KEYLEN);
    assert_false(dpc_session_authenticated(h->sess));
}

/* The right proof authenticates without a reply. */
static void session_handshake_ok_test(void **state)
{
    struct harness *h = *state;

    login(h);
    assert_true(dpc_session_authenticated(h->sess));
    assert_int_equal(dpc_session_want(h->sess), DPC_STOCK_HDRLEN);
    assert_string_equal(dpc_session_error(h->sess), "");
    assert_int_equal(dpc_session_errcode(h->sess), DPC_E_OK);
    assert_false(dpc_session_finished(h->sess));
}

/* Fewer bytes than wanted are not taken. */
static void session_short_input_not_taken_test(void **state)
{
    struct harness *h = *state;

    pump(h);
    expect_out(h, nonce16, 8);
    assert_int_equal(dpc_session_input(h->sess, h->proof, 7), 0);
    assert_int_equal(dpc_session_state(h->sess), DPC_SESS_AUTH);
    assert_int_equal(dpc_session_input(h->sess, h->proof, 8), 8);
    assert_int_equal(dpc_session_state(h->sess), DPC_SESS_HEADER);
}

/* A wrong proof closes silently: nothing after the nonce. */
static void session_wrong_proof_test(void **state)
{
    struct harness *h = *state;
    uint8_t bad[DPC_STOCK_KEYLEN];

    pump(h);
    expect_out(h, nonce16, 8);
    memcpy(bad, h->proof, sizeof(bad));
    bad[7] ^= 0x80;
    client_send(h, bad, sizeof(bad));
    expect_out(h, NULL, 0);
    assert_int_equal(dpc_session_state(h->sess), DPC_SESS_CLOSING);
    assert_true(dpc_session_finished(h->sess));
    assert_false(dpc_session_authenticated(h->sess));
    assert_string_equal(dpc_session_error(h->sess), "authentication failed");
    assert_int_equal(dpc_session_errcode(h->sess), DPC_E_AUTH);
    assert_int_equal(dpc_session_want(h->sess), 0);
}

/* After destroy the session is not finished until its status is sent. */
static void session_not_finished_until_sent_test(void **state)
{
    struct harness *h = *state;
    uint8_t hdr[DPC_STOCK_HDRLEN];

    login(h);
    open6(h, IM6_DIRECT, IM6_SRGB, COLS, ROWS);
    hdr[0] = 'd';
    memcpy(hdr + 1, h->proof, DPC_STOCK_KEYLEN);
    assert_int_equal(dpc_session_input(h->sess, hdr, sizeof(hdr)),
                     DPC_STOCK_HDRLEN);
    assert_int_equal(dpc_session_state(h->sess), DPC_SESS_CLOSING);
    assert_false(dpc_session_finished(h->sess));
    drain(h);
    expect_out(h, ok_status, sizeof(ok_status));
    assert_true(dpc_session_finished(h->sess));
}

/* Without allow_native the native magic is just a wrong proof. */
static void session_native_magic_refused_test(void **state)
{
    struct harness *h = *state;

    pump(h);
    expect_out(h, nonce16, 8);
    client_send(h, DPC_WIRE_MAGIC, DPC_WIRE_MAGIC_LEN);
    expect_out(h, NULL, 0);
    assert_true(dpc_session_finished(h->sess));
    assert_string_equal(dpc_session_error(h->sess), "authentication failed");
    assert_int_equal(dpc_session_errcode(h->sess), DPC_E_AUTH);
}

/* With allow_native the magic hands the connection over, silently. */
static void session_native_magic_handoff_test(void **state)
{
    struct harness *h = *state;

    pump(h);
    expect_out(h, nonce16, 8);
    client_send(h, DPC_WIRE_MAGIC, DPC_WIRE_MAGIC_LEN);
    expect_out(h, NULL, 0);
    assert_int_equal(dpc_session_state(h->sess), DPC_SESS_NATIVE);
    assert_int_equal(dpc_session_want(h->sess), 0);
    assert_false(dpc_session_authenticated(h->sess));
    assert_false(dpc_session_finished(h->sess));
}

/* With allow_native a stock client's proof still works. */
static void session_native_allowed_stock_proof_test(void **state)
{
    struct harness *h = *state;

    login(h);
    assert_true(dpc_session_authenticated(h->sess));
    open6(h, IM6_DIRECT, IM6_SRGB, COLS, ROWS);
}

/* Open reserves for the largest quantum and answers status 1. */
static void session_open_ok_test(void **state)
{
    struct harness *h = *state;
    struct dpc_store_stats st;

    login(h);
    open6(h, IM6_DIRECT, IM6_SRGB, COLS, ROWS);
    assert_int_equal(dpc_session_state(h->sess), DPC_SESS_HEADER);
    assert_int_equal(dpc_cache_size(dpc_session_cache(h->sess)),
                     COLS * ROWS * 16);
    st = store_stats(h);
    assert_int_equal(st.caches, 1);
    assert_int_equal(st.bytes_ram, COLS * ROWS * 16);
    assert_int_equal(dpc_session_counters(h->sess)->requests, 1);
}

/* A full-image Q16 write reads back byte for byte, whole or in bands. */
static void session_write_read_full_test(void **state)
{
    struct harness *h = *state;
    uint8_t img[COLS * ROWS * Q16];

    login(h);
    open6(h, IM6_DIRECT, IM6_SRGB, COLS, ROWS);
    pattern(img, sizeof(img), 1);
    send_write(h, 'w', COLS, ROWS, 0, 0, img, sizeof(img));
    expect_out(h, NULL, 0);
    assert_int_equal(dpc_session_state(h->sess), DPC_SESS_HEADER);
    /* Q16 known now: the reservation shrank to 8 bytes per pixel. */
    assert_int_equal(dpc_cache_size(dpc_session_cache(h->sess)), sizeof(img));
    assert_int_equal(store_stats(h).bytes_ram, sizeof(img));
    send_region(h, 'r', COLS, ROWS, 0, 0, sizeof(img));
    expect_out(h, img, sizeof(img));
    send_region(h, 'r', COLS, 3, 0, 2, COLS * 3 * Q16);
    expect_out(h, img + 2 * COLS * Q16, COLS * 3 * Q16);
    assert_int_equal(dpc_session_state(h->sess), DPC_SESS_HEADER);
}

/* A 3x2 write at +5+7 lands on exactly those pixels. */
static void session_write_read_subrect_test(void **state)
{
    struct harness *h = *state;
    uint8_t img[COLS * ROWS * Q16], sub[3 * 2 * Q16];

    login(h);
    open6(h, IM6_DIRECT, IM6_SRGB, COLS, ROWS);
    pattern(img, sizeof(img), 1);
    pattern(sub, sizeof(sub), 200);
    send_write(h, 'w', COLS, ROWS, 0, 0, img, sizeof(img));
    send_write(h, 'w', 3, 2, 5, 7, sub, sizeof(sub));
    expect_out(h, NULL, 0);
    send_region(h, 'r', 3, 2, 5, 7, sizeof(sub));
    expect_out(h, sub, sizeof(sub));
    for (int y = 0; y < 2; y++)
        memcpy(img + ((7 + y) * COLS + 5) * Q16, sub + y * 3 * Q16, 3 * Q16);
    send_region(h, 'r', COLS, ROWS, 0, 0, sizeof(img));
    expect_out(h, img, sizeof(img));
}

/* Every client byte arriving on its own gives the same replies. */
static void session_bytewise_input_test(void **state)
{
    struct harness *h = *state;
    uint8_t open[DPC_STOCK_HDRLEN + DPC_STOCK_OPEN_IM6_LEN];
    uint8_t w[DPC_STOCK_HDRLEN + DPC_STOCK_REGION_LEN + 3 * 2 * Q16];
    uint8_t r[DPC_STOCK_HDRLEN + DPC_STOCK_REGION_LEN];
    uint8_t *sub = w + DPC_STOCK_HDRLEN + DPC_STOCK_REGION_LEN;
    struct buf want = { 0 };

    pump(h);
    expect_out(h, nonce16, 8);
    open[0] = 'o';
    memcpy(open + 1, h->proof, DPC_STOCK_KEYLEN);
    im6_open_payload(open + DPC_STOCK_HDRLEN, IM6_DIRECT, IM6_SRGB, COLS,
                     ROWS);
    memcpy(w, open, DPC_STOCK_HDRLEN);
    w[0] = 'w';
    region_bytes(w + DPC_STOCK_HDRLEN, 3, 2, 5, 7, 3 * 2 * Q16);
    pattern(sub, 3 * 2 * Q16, 9);
    memcpy(r, w, sizeof(r));
    r[0] = 'r';
    client_send_bytewise(h, h->proof, sizeof(h->proof));
    client_send_bytewise(h, open, sizeof(open));
    client_send_bytewise(h, w, sizeof(w));
    client_send_bytewise(h, r, sizeof(r));
    buf_add(&want, ok_status, sizeof(ok_status));
    buf_add(&want, sub, 3 * 2 * Q16);
    expect_out(h, want.p, want.len);
    assert_int_equal(dpc_session_state(h->sess), DPC_SESS_HEADER);
    assert_int_equal(h->in.len, 0);
    free(want.p);
}

/* Output taken one byte per send resumes mid-row correctly. */
static void session_partial_sends_test(void **state)
{
    struct harness *h = *state;
    uint8_t img[COLS * ROWS * Q16], want[4 * 5 * Q16];

    h->send_max = 1;
    login(h);
    open6(h, IM6_DIRECT, IM6_SRGB, COLS, ROWS);
    pattern(img, sizeof(img), 77);
    send_write(h, 'w', COLS, ROWS, 0, 0, img, sizeof(img));
    for (int y = 0; y < 5; y++)
        memcpy(want + y * 4 * Q16, img + ((3 + y) * COLS + 11) * Q16,
               4 * Q16);
    send_region(h, 'r', 4, 5, 11, 3, sizeof(want));
    expect_out(h, want, sizeof(want));
    assert_int_equal(dpc_session_counters(h->sess)->bytes_out, sizeof(want));
}

/* While a read's reply is pending the session takes no input. */
static void session_reply_takes_no_input_test(void **state)
{
    struct harness *h = *state;
    uint8_t hdr[DPC_STOCK_HDRLEN], reg[DPC_STOCK_REGION_LEN];
    uint8_t zeros[2 * Q16] = { 0 };

    login(h);
    open6(h, IM6_DIRECT, IM6_SRGB, COLS, ROWS);
    hdr[0] = 'r';
    memcpy(hdr + 1, h->proof, DPC_STOCK_KEYLEN);
    region_bytes(reg, 2, 1, 0, 0, 2 * Q16);
    assert_int_equal(dpc_session_input(h->sess, hdr, sizeof(hdr)),
                     DPC_STOCK_HDRLEN);
    assert_int_equal(dpc_session_state(h->sess), DPC_SESS_REGION);
    assert_int_equal(dpc_session_want(h->sess), DPC_STOCK_REGION_LEN);
    assert_int_equal(dpc_session_input(h->sess, reg, sizeof(reg)),
                     DPC_STOCK_REGION_LEN);
    assert_int_equal(dpc_session_state(h->sess), DPC_SESS_REPLY);
    assert_int_equal(dpc_session_want(h->sess), 0);
    assert_int_equal(dpc_session_input(h->sess, hdr, sizeof(hdr)), 0);
    drain(h);
    expect_out(h, zeros, sizeof(zeros));    /* a fresh cache reads as 0 */
    assert_int_equal(dpc_session_state(h->sess), DPC_SESS_HEADER);
}

/* A write's payload is taken in whatever pieces arrive. */
static void session_payload_pieces_test(void **state)
{
    struct harness *h = *state;
    uint8_t hdr[DPC_STOCK_HDRLEN], reg[DPC_STOCK_REGION_LEN];
    uint8_t data[3 * 2 * Q16], more[sizeof(data) - 31 + 9];

    login(h);
    open6(h, IM6_DIRECT, IM6_SRGB, COLS, ROWS);
    hdr[0] = 'w';
    memcpy(hdr + 1, h->proof, DPC_STOCK_KEYLEN);
    region_bytes(reg, 3, 2, 5, 7, sizeof(data));
    pattern(data, sizeof(data), 5);
    assert_int_equal(dpc_session_input(h->sess, hdr, sizeof(hdr)),
                     DPC_STOCK_HDRLEN);
    assert_int_equal(dpc_session_input(h->sess, reg, sizeof(reg)),
                     DPC_STOCK_REGION_LEN);
    assert_int_equal(dpc_session_state(h->sess), DPC_SESS_PAYLOAD);
    assert_int_equal(dpc_session_want(h->sess), 1);
    assert_int_equal(dpc_session_input(h->sess, data, 1), 1);
    assert_int_equal(dpc_session_input(h->sess, data + 1, 30), 30);
    assert_int_equal(dpc_session_state(h->sess), DPC_SESS_PAYLOAD);
    /* the rest and the next header: only the rest is taken */
    memcpy(more, data + 31, sizeof(data) - 31);
    memset(more + sizeof(data) - 31, 'x', 9);
    assert_int_equal(dpc_session_input(h->sess, more, sizeof(more)),
                     sizeof(data) - 31);
    assert_int_equal(dpc_session_state(h->sess), DPC_SESS_HEADER);
    send_region(h, 'r', 3, 2, 5, 7, sizeof(data));
    expect_out(h, data, sizeof(data));
}

/* PseudoClass: the index plane is separate from the pixels. */
static void session_index_plane_test(void **state)
{
    struct harness *h = *state;
    uint8_t px[8 * 4 * Q16], ix[8 * 4 * 2], ixsub[2 * 2 * 2];

    login(h);
    open6(h, IM6_PSEUDO, IM6_SRGB, 8, 4);
    assert_int_equal(dpc_cache_size(dpc_session_cache(h->sess)), 8 * 4 * 20);
    pattern(px, sizeof(px), 3);
    pattern(ix, sizeof(ix), 101);
    send_write(h, 'w', 8, 4, 0, 0, px, sizeof(px));
    send_write(h, 'W', 8, 4, 0, 0, ix, sizeof(ix));
    expect_out(h, NULL, 0);
    assert_int_equal(dpc_cache_size(dpc_session_cache(h->sess)),
                     8 * 4 * (Q16 + 2));
    send_region(h, 'R', 8, 4, 0, 0, sizeof(ix));
    expect_out(h, ix, sizeof(ix));
    send_region(h, 'r', 8, 4, 0, 0, sizeof(px));
    expect_out(h, px, sizeof(px));
    for (int y = 0; y < 2; y++)
        memcpy(ixsub + y * 4, ix + ((1 + y) * 8 + 6) * 2, 4);
    send_region(h, 'R', 2, 2, 6, 1, sizeof(ixsub));
    expect_out(h, ixsub, sizeof(ixsub));
}

/* CMYK: the first request may be on the index plane; it fixes Q16. */
static void session_index_plane_first_test(void **state)
{
    struct harness *h = *state;
    uint8_t ix[4 * 4 * 2], px[4 * 4 * Q16];

    login(h);
    open6(h, IM6_DIRECT, IM6_CMYK, 4, 4);
    pattern(ix, sizeof(ix), 17);
    pattern(px, sizeof(px), 18);
    send_write(h, 'W', 4, 4, 0, 0, ix, sizeof(ix));
    send_write(h, 'w', 4, 4, 0, 0, px, sizeof(px));
    expect_out(h, NULL, 0);
    send_region(h, 'R', 4, 4, 0, 0, sizeof(ix));
    expect_out(h, ix, sizeof(ix));
    send_region(h, 'r', 4, 4, 0, 0, sizeof(px));
    expect_out(h, px, sizeof(px));
    send_region(h, 'w', 4, 4, 0, 0, 4 * 4 * 16);
    expect_failure(h, "'w' length 256, expected 128");
}

/* A command under the wrong session key is refused. */
static void session_wrong_key_test(void **state)
{
    struct harness *h = *state;
    uint8_t key[DPC_STOCK_KEYLEN];

    login(h);
    memcpy(key, h->proof, sizeof(key));
    key[0] ^= 1;
    send_header_key(h, 'o', key);
    expect_failure(h, "wrong session key");
    assert_null(dpc_session_cache(h->sess));
}

/* An unknown command byte is refused and named. */
static void session_unknown_command_test(void **state)
{
    struct harness *h = *state;

    login(h);
    send_header(h, 'x');
    expect_failure(h, "unknown command 0x78");
}

/* Reading before any open is refused. */
static void session_read_before_open_test(void **state)
{
    struct harness *h = *state;

    login(h);
    send_header(h, 'r');
    expect_failure(h, "'r' before open");
}

/* Writing indexes before any open is refused. */
static void session_write_before_open_test(void **state)
{
    struct harness *h = *state;

    login(h);
    send_header(h, 'W');
    expect_failure(h, "'W' before open");
}

/* A second open on one connection is refused; the first cache stays. */
static void session_second_open_test(void **state)
{
    struct harness *h = *state;

    login(h);
    open6(h, IM6_DIRECT, IM6_SRGB, COLS, ROWS);
    send_header(h, 'o');
    expect_failure(h, "second open on one connection");
    assert_int_equal(store_stats(h).caches, 1);
}

/* A region whose rows run past the right edge onto the next row is
 * served as a memory cache serves it: each row is the run of pixels from
 * its start in the image's row-major layout. */
static void session_region_wraps_test(void **state)
{
    struct harness *h = *state;
    uint8_t img[COLS * ROWS * Q16], run[3 * 2 * Q16], back[3 * 2 * Q16];

    login(h);
    open6(h, IM6_DIRECT, IM6_SRGB, COLS, ROWS);
    pattern(img, sizeof(img), 23);
    send_write(h, 'w', COLS, ROWS, 0, 0, img, sizeof(img));
    send_region(h, 'r', 3, 2, 14, 0, sizeof(run));
    memcpy(run, img + 14 * Q16, 3 * Q16);                  /* 14, 15, 16 */
    memcpy(run + 3 * Q16, img + (COLS + 14) * Q16, 3 * Q16);
    expect_out(h, run, sizeof(run));
    pattern(back, sizeof(back), 24);
    send_write(h, 'w', 3, 2, 15, 7, back, sizeof(back));
    expect_out(h, NULL, 0);
    memcpy(img + (7 * COLS + 15) * Q16, back, 3 * Q16);
    memcpy(img + (8 * COLS + 15) * Q16, back + 3 * Q16, 3 * Q16);
    send_region(h, 'r', COLS, ROWS, 0, 0, sizeof(img));
    expect_out(h, img, sizeof(img));
}

/* A region whose last run passes the end of the cache is refused. */
static void session_region_outside_test(void **state)
{
    struct harness *h = *state;

    login(h);
    open6(h, IM6_DIRECT, IM6_SRGB, COLS, ROWS);
    send_region(h, 'r', 3, 2, 14, 8, 3 * 2 * Q16);
    expect_failure(h, "region 3x2+14+8 runs past the end of the 16x10 image");
}

/* A region below the bottom edge is refused before its payload. */
static void session_region_below_test(void **state)
{
    struct harness *h = *state;

    login(h);
    open6(h, IM6_DIRECT, IM6_SRGB, COLS, ROWS);
    send_region(h, 'w', COLS, 1, 0, ROWS, COLS * Q16);
    expect_failure(h, "starts outside the 16x10 image");
    assert_int_equal(dpc_session_counters(h->sess)->bytes_in, 0);
}

/* A negative x is refused. */
static void session_negative_x_test(void **state)
{
    struct harness *h = *state;

    login(h);
    open6(h, IM6_DIRECT, IM6_SRGB, COLS, ROWS);
    send_region(h, 'w', 3, 2, -1, 0, 3 * 2 * Q16);
    expect_failure(h, "region 3x2-1+0 starts outside");
}

/* An empty region of length 0 moves nothing and the session goes on; one
 * that claims a payload is refused. */
static void session_empty_region_test(void **state)
{
    struct harness *h = *state;
    uint8_t px[2 * Q16];

    login(h);
    open6(h, IM6_DIRECT, IM6_SRGB, COLS, ROWS);
    send_region(h, 'r', 0, 2, 0, 0, 0);
    expect_out(h, NULL, 0);
    send_region(h, 'w', 2, 0, 99, 99, 0);
    expect_out(h, NULL, 0);
    assert_int_equal(dpc_session_state(h->sess), DPC_SESS_HEADER);
    pattern(px, sizeof(px), 25);
    send_write(h, 'w', 2, 1, 3, 3, px, sizeof(px));
    send_region(h, 'r', 2, 1, 3, 3, sizeof(px));
    expect_out(h, px, sizeof(px));
    send_region(h, 'r', 0, 2, 0, 0, 8);
    expect_failure(h, "empty region");
}

/* After Q16 is known, a length that is not w*h*8 is refused. */
static void session_bad_length_test(void **state)
{
    struct harness *h = *state;
    uint8_t row[COLS * Q16] = { 0 };

    login(h);
    open6(h, IM6_DIRECT, IM6_SRGB, COLS, ROWS);
    send_write(h, 'w', COLS, 1, 0, 0, row, sizeof(row));
    send_region(h, 'w', 4, 1, 0, 0, 31);
    expect_failure(h, "'w' length 31, expected 32 for 4x1 at 8 bytes per "
                      "pixel");
}

/* A first request of 3 bytes per pixel fits no quantum. */
static void session_first_length_no_quantum_test(void **state)
{
    struct harness *h = *state;

    login(h);
    open6(h, IM6_DIRECT, IM6_SRGB, COLS, ROWS);
    send_region(h, 'w', 4, 1, 0, 0, 12);
    expect_failure(h, "3 bytes per pixel fits no quantum");
}

/* A first request whose length is not whole pixels is refused. */
static void session_first_length_not_whole_test(void **state)
{
    struct harness *h = *state;

    login(h);
    open6(h, IM6_DIRECT, IM6_SRGB, COLS, ROWS);
    send_region(h, 'r', 4, 1, 0, 0, 33);
    expect_failure(h, "length 33 is not a whole number of pixels");
}

/* Q16 then 16 bytes per pixel: the quantum cannot change. */
static void session_quantum_change_test(void **state)
{
    struct harness *h = *state;
    uint8_t row[4 * Q16] = { 0 };

    login(h);
    open6(h, IM6_DIRECT, IM6_SRGB, COLS, ROWS);
    send_write(h, 'w', 4, 1, 0, 0, row, sizeof(row));
    expect_out(h, NULL, 0);
    send_region(h, 'r', 4, 1, 0, 0, 4 * 16);
    expect_failure(h, "'r' length 64, expected 32");
}

/* 'R' on a DirectClass sRGB image (no index plane) is refused. */
static void session_indexes_on_direct_test(void **state)
{
    struct harness *h = *state;

    login(h);
    open6(h, IM6_DIRECT, IM6_SRGB, COLS, ROWS);
    send_region(h, 'R', 4, 1, 0, 0, 4 * 2);
    expect_failure(h, "'R' on a cache without indexes");
}

/* An open past the RAM budget is refused; nothing stays reserved. */
static void session_open_too_big_test(void **state)
{
    struct harness *h = *state;
    struct dpc_store_stats st;

    login(h);
    send_open6(h, IM6_DIRECT, IM6_SRGB, 4096, 4096);
    expect_failure(h, "no room for 268435456 bytes");
    assert_int_equal(dpc_session_errcode(h->sess), DPC_E_NO_ROOM);
    assert_null(dpc_session_cache(h->sess));
    st = store_stats(h);
    assert_int_equal(st.caches, 0);
    assert_int_equal(st.bytes_ram, 0);
    assert_int_equal(st.refused, 1);
}

/* An invalid open payload is refused with the parser's reason. */
static void session_bad_open_test(void **state)
{
    struct harness *h = *state;

    login(h);
    send_open6(h, IM6_DIRECT, IM6_SRGB, 0, ROWS);
    expect_failure(h, "bad image size 0x10");
    assert_int_equal(dpc_session_errcode(h->sess), DPC_E_PROTOCOL);
    assert_int_equal(store_stats(h).caches, 0);
}

/* Destroy answers 1, releases the cache and finishes the session. */
static void session_destroy_test(void **state)
{
    struct harness *h = *state;

    login(h);
    open6(h, IM6_DIRECT, IM6_SRGB, COLS, ROWS);
    send_header(h, 'd');
    expect_out(h, ok_status, sizeof(ok_status));
    assert_int_equal(dpc_session_state(h->sess), DPC_SESS_CLOSING);
    assert_true(dpc_session_finished(h->sess));
    assert_string_equal(dpc_session_error(h->sess), "");
    assert_null(dpc_session_cache(h->sess));
    assert_int_equal(store_stats(h).caches, 0);
    assert_int_equal(store_stats(h).bytes_ram, 0);
}

/* Destroy with nothing open answers 0 and says why. */
static void session_destroy_without_open_test(void **state)
{
    struct harness *h = *state;

    login(h);
    send_header(h, 'd');
    expect_failure(h, "destroy without an open cache");
}

/* Status answers a u32 length and the callback's JSON, then goes on. */
static void session_status_test(void **state)
{
    static const char json[] = "{\"caches_open\":1,\"bytes_ram\":2560}";
    struct harness *h = *state;
    struct buf want = { 0 };
    uint8_t len[4] = { sizeof(json) - 1, 0, 0, 0 };

    login(h);
    open6(h, IM6_DIRECT, IM6_SRGB, COLS, ROWS);
    send_header(h, 's');
    buf_add(&want, len, sizeof(len));
    buf_add(&want, json, sizeof(json) - 1);
    expect_out(h, want.p, want.len);
    free(want.p);
    assert_int_equal(h->status_calls, 1);
    assert_int_equal(dpc_session_state(h->sess), DPC_SESS_HEADER);
    assert_false(dpc_session_finished(h->sess));
    send_region(h, 'r', 1, 1, 0, 0, Q16);
    expect_out(h, "\0\0\0\0\0\0\0\0", Q16);
}

/* Status works before any open and twice in a row. */
static void session_status_twice_test(void **state)
{
    static const char json[] = "{\"caches_open\":0,\"bytes_ram\":0}";
    struct harness *h = *state;
    struct buf want = { 0 };
    uint8_t len[4] = { sizeof(json) - 1, 0, 0, 0 };

    h->send_max = 3;
    login(h);
    send_header(h, 's');
    send_header(h, 's');
    for (int i = 0; i < 2; i++) {
        buf_add(&want, len, sizeof(len));
        buf_add(&want, json, sizeof(json) - 1);
    }
    expect_out(h, want.p, want.len);
    free(want.p);
    assert_int_equal(h->status_calls, 2);
    assert_int_equal(dpc_session_counters(h->sess)->requests, 2);
}

/* 'D' starts the drain and answers as 's' does; the cache already open
 * is still read and written. */
static void session_drain_test(void **state)
{
    static const char json[] = "{\"caches_open\":1,\"bytes_ram\":2560}";
    struct harness *h = *state;
    struct buf want = { 0 };
    uint8_t len[4] = { sizeof(json) - 1, 0, 0, 0 }, px[Q16];

    login(h);
    open6(h, IM6_DIRECT, IM6_SRGB, COLS, ROWS);
    send_header(h, 'D');
    buf_add(&want, len, sizeof(len));
    buf_add(&want, json, sizeof(json) - 1);
    expect_out(h, want.p, want.len);
    free(want.p);
    assert_int_equal(h->drain_calls, 1);
    assert_true(h->draining);
    assert_int_equal(dpc_session_state(h->sess), DPC_SESS_HEADER);
    pattern(px, sizeof(px), 4);
    send_write(h, 'w', 1, 1, 3, 2, px, sizeof(px));
    send_region(h, 'r', 1, 1, 3, 2, Q16);
    expect_out(h, px, sizeof(px));
    assert_contains(h->trace, "D\n");
}

/* While the server drains, an open gets the failure reply and a close
 * (a stock client reports it as an error), coded DPC_E_DRAINING. */
static void session_open_draining_test(void **state)
{
    struct harness *h = *state;

    login(h);
    h->draining = 1;
    send_open6(h, IM6_DIRECT, IM6_SRGB, COLS, ROWS);
    expect_failure(h, "draining");
    assert_int_equal(dpc_session_errcode(h->sess), DPC_E_DRAINING);
    assert_null(dpc_session_cache(h->sess));
    assert_int_equal(store_stats(h).caches, 0);
}

/* IM7: a 16-byte nonce, a 1072-byte open, pixels and metacontent. */
static void session_im7_test(void **state)
{
    struct harness *h = *state;
    uint8_t px[8 * 4 * 3], meta[8 * 4 * 4], msub[3 * 2 * 4];

    pump(h);
    expect_out(h, nonce16, 16);
    client_send(h, h->proof, sizeof(h->proof));
    assert_true(dpc_session_authenticated(h->sess));
    send_open7(h, 8, 4, 3, 4);
    expect_out(h, ok_status, sizeof(ok_status));
    assert_int_equal(dpc_cache_size(dpc_session_cache(h->sess)),
                     8 * 4 * (3 * 4 + 4));
    pattern(px, sizeof(px), 41);
    pattern(meta, sizeof(meta), 42);
    send_write(h, 'w', 8, 4, 0, 0, px, sizeof(px));     /* Q8: 3 B/pixel */
    send_write(h, 'W', 8, 4, 0, 0, meta, sizeof(meta));
    expect_out(h, NULL, 0);
    assert_int_equal(dpc_cache_size(dpc_session_cache(h->sess)),
                     8 * 4 * (3 + 4));
    send_region(h, 'r', 8, 4, 0, 0, sizeof(px));
    expect_out(h, px, sizeof(px));
    for (int y = 0; y < 2; y++)
        memcpy(msub + y * 12, meta + ((2 + y) * 8 + 4) * 4, 12);
    send_region(h, 'R', 3, 2, 4, 2, sizeof(msub));
    expect_out(h, msub, sizeof(msub));
}

/* IM7: the IM6 8-byte-nonce proof does not authenticate. */
static void session_im7_im6_proof_test(void **state)
{
    struct harness *h = *state;
    uint8_t proof6[DPC_STOCK_KEYLEN];

    dpc_siphash_session_key(h->sipkey, nonce16, 8, proof6);
    pump(h);
    expect_out(h, nonce16, 16);
    client_send(h, proof6, sizeof(proof6));
    expect_out(h, NULL, 0);
    assert_contains(dpc_session_error(h->sess), "authentication failed: ");
    assert_int_equal(dpc_session_errcode(h->sess), DPC_E_AUTH);
    assert_contains(dpc_session_error(h->sess), "an ImageMagick 6 client");
    assert_contains(dpc_session_error(h->sess), "--listen");
    assert_null(dpc_session_hint(h->sess));
}

/* IM6 listener: a session still waiting for its proof names the IM7
 * listener as what the silence may mean; once past the proof, nothing. */
static void session_im6_silent_hint_test(void **state)
{
    struct harness *h = *state;

    pump(h);
    assert_non_null(dpc_session_hint(h->sess));
    assert_contains(dpc_session_hint(h->sess), "--listen-im7");
    login(h);
    assert_null(dpc_session_hint(h->sess));
}

/* IM7: metacontent before any pixel request is refused. */
static void session_im7_metacontent_first_test(void **state)
{
    struct harness *h = *state;

    pump(h);
    expect_out(h, nonce16, 16);
    client_send(h, h->proof, sizeof(h->proof));
    send_open7(h, 8, 4, 3, 4);
    expect_out(h, ok_status, sizeof(ok_status));
    send_region(h, 'W', 8, 4, 0, 0, 8 * 4 * 4);
    expect_failure(h, "metacontent before pixels");
}

/* IM7: an open with 65 channels is refused. */
static void session_im7_bad_open_test(void **state)
{
    struct harness *h = *state;

    pump(h);
    expect_out(h, nonce16, 16);
    client_send(h, h->proof, sizeof(h->proof));
    send_open7(h, 8, 4, 65, 0);
    expect_failure(h, "bad channel count 65");
}

/* requests, bytes_in and bytes_out count what was served. */
static void session_counters_test(void **state)
{
    struct harness *h = *state;
    uint8_t img[COLS * ROWS * Q16], sub[3 * 2 * Q16];
    const struct dpc_session_counters *n;

    login(h);
    open6(h, IM6_DIRECT, IM6_SRGB, COLS, ROWS);
    pattern(img, sizeof(img), 0);
    pattern(sub, sizeof(sub), 0);
    send_write(h, 'w', COLS, ROWS, 0, 0, img, sizeof(img));
    send_write(h, 'w', 3, 2, 5, 7, sub, sizeof(sub));
    send_region(h, 'r', COLS, ROWS, 0, 0, sizeof(img));
    send_region(h, 'r', 3, 2, 5, 7, sizeof(sub));
    send_header(h, 's');
    n = dpc_session_counters(h->sess);
    assert_int_equal(n->requests, 6);
    assert_int_equal(n->bytes_in, sizeof(img) + sizeof(sub));
    assert_int_equal(n->bytes_out, sizeof(img) + sizeof(sub));
}

/* Asserts the trace has n lines, each starting with want[i]. */
static void expect_trace(const struct harness *h, const char *const *want,
                         size_t n)
{
    const char *line = h->trace;

    for (size_t i = 0; i < n; i++) {
        const char *end = strchr(line, '\n');

        if (end == NULL || strncmp(line, want[i], strlen(want[i])) != 0)
            fail_msg("trace line %zu is not \"%s...\" in:\n%s", i, want[i],
                     h->trace);
        line = end + 1;
    }
    if (*line != '\0')
        fail_msg("trace has more than %zu lines:\n%s", n, h->trace);
}

/* Every request is traced with its parameters. */
static void session_trace_test(void **state)
{
    static const char *const want[] = {
        "o 16x10 class 2 colorspace 13 +indexes", "w 3x2+5+7 48",
        "R 3x2+5+7 12", "s", "d",
    };
    struct harness *h = *state;
    uint8_t sub[3 * 2 * Q16] = { 0 };

    login(h);
    open6(h, IM6_PSEUDO, IM6_SRGB, COLS, ROWS);
    send_write(h, 'w', 3, 2, 5, 7, sub, sizeof(sub));
    send_region(h, 'R', 3, 2, 5, 7, 3 * 2 * 2);
    send_header(h, 's');
    send_header(h, 'd');
    expect_trace(h, want, sizeof(want) / sizeof(want[0]));
}

/* Freeing a session with an open cache gives the cache back. */
static void session_free_releases_cache_test(void **state)
{
    struct harness *h = *state;

    login(h);
    open6(h, IM6_DIRECT, IM6_SRGB, COLS, ROWS);
    assert_int_equal(store_stats(h).caches, 1);
    dpc_session_free(h->sess);
    assert_int_equal(store_stats(h).caches, 0);
    assert_int_equal(store_stats(h).bytes_ram, 0);
    h->sess = NULL;
}

/* State names, and "?" for a value out of range. */
static void session_state_names_test(void **state)
{
    static const struct {
        enum dpc_session_state st;
        const char *name;
    } names[] = {
        { DPC_SESS_AUTH, "auth" }, { DPC_SESS_HEADER, "header" },
        { DPC_SESS_OPEN, "open" }, { DPC_SESS_REGION, "region" },
        { DPC_SESS_PAYLOAD, "payload" }, { DPC_SESS_REPLY, "reply" },
        { DPC_SESS_CLOSING, "closing" },
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        assert_string_equal(dpc_session_state_name(names[i].st),
                            names[i].name);
    for (int i = 0; i < DPC_SESS_NSTATES; i++)
        assert_non_null(dpc_session_state_name(i));
    assert_string_equal(dpc_session_state_name(DPC_SESS_NSTATES), "?");
}

/* Requests captured from ImageMagick 6.9.11's convert -size 4x4 xc:red
 * (secret "magick-dpc test vector", nonce 00 .. 07): the proof, the open,
 * four Q16 row writes, then four row reads. */
static const uint8_t im6_transcript[] = {
    0x87, 0xdf, 0x2c, 0x04, 0xc2, 0x28, 0xe8, 0x4c, 0x6f, 0x87, 0xdf, 0x2c,
    0x04, 0xc2, 0x28, 0xe8, 0x4c, 0x01, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x77, 0x87, 0xdf, 0x2c, 0x04, 0xc2, 0x28, 0xe8, 0x4c, 0x04, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x77, 0x87,
    0xdf, 0x2c, 0x04, 0xc2, 0x28, 0xe8, 0x4c, 0x04, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff,
    0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x77, 0x87, 0xdf, 0x2c, 0x04,
    0xc2, 0x28, 0xe8, 0x4c, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0x00, 0x00, 0x77, 0x87, 0xdf, 0x2c, 0x04, 0xc2, 0x28, 0xe8,
    0x4c, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00,
    0x00, 0x72, 0x87, 0xdf, 0x2c, 0x04, 0xc2, 0x28, 0xe8, 0x4c, 0x04, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x72, 0x87, 0xdf, 0x2c, 0x04, 0xc2, 0x28, 0xe8, 0x4c, 0x04,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x72, 0x87, 0xdf, 0x2c, 0x04, 0xc2, 0x28, 0xe8, 0x4c,
    0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x72, 0x87, 0xdf, 0x2c, 0x04, 0xc2, 0x28, 0xe8,
    0x4c, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00,
};

/* The real client's requests are served and its rows read back. */
static void session_real_client_transcript_test(void **state)
{
    static const uint8_t red_q16[8] = { 0, 0, 0, 0, 0xff, 0xff, 0, 0 };
    static const uint8_t nonce[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };
    struct harness *h = harness_new(DPC_STOCK_IM6, "magick-dpc test vector",
                                    nonce, 0);
    struct buf want = { 0 };

    *state = h;
    buf_add(&want, nonce, sizeof(nonce));
    buf_add(&want, ok_status, sizeof(ok_status));
    for (int i = 0; i < 16; i++)
        buf_add(&want, red_q16, sizeof(red_q16));
    client_send(h, im6_transcript, sizeof(im6_transcript));
    expect_out(h, want.p, want.len);
    free(want.p);
    assert_int_equal(dpc_session_state(h->sess), DPC_SESS_HEADER);
    assert_int_equal(dpc_cache_size(dpc_session_cache(h->sess)), 4 * 4 * Q16);
    assert_int_equal(dpc_session_counters(h->sess)->requests, 9);
    assert_int_equal(h->in.len, 0);
}

#define T(name, setup) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(session_nonce_first_test, setup_im6),
        T(session_handshake_ok_test, setup_im6),
        T(session_short_input_not_taken_test, setup_im6),
        T(session_wrong_proof_test, setup_im6),
        T(session_not_finished_until_sent_test, setup_im6),
        T(session_native_magic_refused_test, setup_im6),
        T(session_native_magic_handoff_test, setup_im6_native),
        T(session_native_allowed_stock_proof_test, setup_im6_native),
        T(session_open_ok_test, setup_im6),
        T(session_write_read_full_test, setup_im6),
        T(session_write_read_subrect_test, setup_im6),
        T(session_bytewise_input_test, setup_im6),
        T(session_partial_sends_test, setup_im6),
        T(session_reply_takes_no_input_test, setup_im6),
        T(session_payload_pieces_test, setup_im6),
        T(session_index_plane_test, setup_im6),
        T(session_index_plane_first_test, setup_im6),
        T(session_wrong_key_test, setup_im6),
        T(session_unknown_command_test, setup_im6),
        T(session_read_before_open_test, setup_im6),
        T(session_write_before_open_test, setup_im6),
        T(session_second_open_test, setup_im6),
        T(session_region_wraps_test, setup_im6),
        T(session_region_outside_test, setup_im6),
        T(session_region_below_test, setup_im6),
        T(session_negative_x_test, setup_im6),
        T(session_empty_region_test, setup_im6),
        T(session_bad_length_test, setup_im6),
        T(session_first_length_no_quantum_test, setup_im6),
        T(session_first_length_not_whole_test, setup_im6),
        T(session_quantum_change_test, setup_im6),
        T(session_indexes_on_direct_test, setup_im6),
        T(session_open_too_big_test, setup_im6),
        T(session_bad_open_test, setup_im6),
        T(session_destroy_test, setup_im6),
        T(session_destroy_without_open_test, setup_im6),
        T(session_status_test, setup_im6),
        T(session_status_twice_test, setup_im6),
        T(session_drain_test, setup_im6),
        T(session_open_draining_test, setup_im6),
        T(session_im7_test, setup_im7),
        T(session_im7_im6_proof_test, setup_im7),
        T(session_im6_silent_hint_test, setup_im6),
        T(session_im7_metacontent_first_test, setup_im7),
        T(session_im7_bad_open_test, setup_im7),
        T(session_counters_test, setup_im6),
        T(session_trace_test, setup_im6),
        T(session_free_releases_cache_test, setup_im6),
        cmocka_unit_test(session_state_names_test),
        T(session_real_client_transcript_test, NULL),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
