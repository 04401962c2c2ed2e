/*
 * libFuzzer target for dpc_session, the stock protocol's request parser
 * and state machine, with a real dpc_store (16 MiB of RAM, no spill).
 *
 * The harness authenticates by itself so the fuzzer starts at the command
 * stream: SipHash key 00 01 .. 0f, nonce 00 01 .. 0f (IM6 uses 8 bytes),
 * so every command carries the session key
 *   IM6: 62 24 93 9a 79 f5 f5 93      IM7: db 9b c2 57 7f cc 2a 3f
 *
 * Input layout:
 *   byte 0       bit 0: flavor (1: IM7); bits 1-7: p, output is taken in
 *                pieces of p * 13 bytes (0: all at once)
 *   then chunks  a length byte L, then L + 1 bytes received from the client
 *
 * After every chunk the session is driven the way dpc_conn drives it: all
 * output is taken, then every byte received is offered until the session
 * wants more.  It stops when the session is finished or the input ends,
 * then frees everything and checks the store got every cache back.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpc_session.h"
#include "dpc_siphash.h"

#define RAM_BUDGET (16 * 1024 * 1024)

struct harness {
    struct dpc_store *store;
    struct dpc_session *sess;
    uint8_t *in;                        /* received, not yet taken */
    size_t in_len;
    size_t piece;                       /* bytes per dpc_session_sent, 0: all */
    uint64_t sent;                      /* bytes taken from the session */
    volatile uint8_t sink;
};

/* Both 00 01 .. 0f: the SipHash reference key and message. */
static const uint8_t fuzz_key[DPC_SIPHASH_KEYLEN] = {
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
};
static const uint8_t fuzz_nonce[DPC_STOCK_NONCE_MAX] = {
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t status_json(void *arg, char *buf, size_t len)
{
    struct harness *h = arg;
    struct dpc_store_stats st;
    int n;

    dpc_store_get_stats(h->store, &st);
    n = snprintf(buf, len, "{\"caches_open\":%llu,\"bytes_ram\":%llu}",
                 (unsigned long long)st.caches,
                 (unsigned long long)st.bytes_ram);
    return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

/* Takes all output, touching the first and last byte of every iovec. */
static void drain(struct harness *h)
{
    for (;;) {
        struct iovec iov[3];
        int n = dpc_session_output(h->sess, iov, 3);
        size_t total = 0;

        if (n == 0)
            return;
        for (int i = 0; i < n; i++) {
            const uint8_t *p = iov[i].iov_base;

            if (iov[i].iov_len > 0)
                h->sink ^= p[0] ^ p[iov[i].iov_len - 1];
            total += iov[i].iov_len;
        }
        if (h->piece != 0 && total > h->piece)
            total = h->piece;
        dpc_session_sent(h->sess, total);
        h->sent += total;
    }
}

/* Invariants that hold between steps whatever the client sent. */
static void check(const struct harness *h)
{
    const struct dpc_cache *c = dpc_session_cache(h->sess);
    const struct dpc_session_counters *n = dpc_session_counters(h->sess);
    enum dpc_session_state st = dpc_session_state(h->sess);

    if (st >= DPC_SESS_NSTATES)
        abort();
    if (st == DPC_SESS_CLOSING && dpc_session_want(h->sess) != 0)
        abort();
    if (c != NULL && dpc_cache_size(c) > RAM_BUDGET)
        abort();
    if (n->bytes_out > h->sent)
        abort();
}

/* Appends bytes from the client, then runs the session like dpc_conn. */
static void receive(struct harness *h, const uint8_t *p, size_t n)
{
    memcpy(h->in + h->in_len, p, n);
    h->in_len += n;
    for (;;) {
        size_t want, used;

        drain(h);
        check(h);
        if (dpc_session_finished(h->sess))
            return;
        want = dpc_session_want(h->sess);
        if (want == 0 || h->in_len < want)
            return;
        used = dpc_session_input(h->sess, h->in, h->in_len);
        if (used == 0 || used > h->in_len)
            abort();
        memmove(h->in, h->in + used, h->in_len - used);
        h->in_len -= used;
    }
}

/* The proof first, then the fuzzer's chunks. */
static void run(struct harness *h, size_t noncelen, const uint8_t *data,
                size_t size)
{
    uint8_t proof[DPC_STOCK_KEYLEN];

    dpc_siphash_session_key(fuzz_key, fuzz_nonce, noncelen, proof);
    receive(h, proof, sizeof(proof));
    if (!dpc_session_authenticated(h->sess))
        abort();
    while (size > 0 && !dpc_session_finished(h->sess)) {
        size_t n = (size_t)data[0] + 1;

        data++;
        size--;
        n = n < size ? n : size;
        receive(h, data, n);
        data += n;
        size -= n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dpc_store_cfg scfg = { .mem_budget = RAM_BUDGET };
    struct dpc_session_cfg cfg = { .sipkey = fuzz_key, .status = status_json };
    struct harness h = { 0 };
    struct dpc_store_stats st;

    if (size == 0)
        return 0;
    cfg.flavor = (data[0] & 1) ? DPC_STOCK_IM7 : DPC_STOCK_IM6;
    h.piece = (size_t)(data[0] >> 1) * 13;
    h.in = malloc(size + DPC_STOCK_KEYLEN);
    h.store = dpc_store_new(&scfg, NULL, 0);
    cfg.store = h.store;
    cfg.arg = &h;
    if (h.in == NULL || h.store == NULL)
        abort();
    h.sess = dpc_session_new(&cfg, fuzz_nonce);
    if (h.sess == NULL)
        abort();
    run(&h, dpc_stock_nonce_len(cfg.flavor), data + 1, size - 1);
    dpc_session_free(h.sess);
    dpc_store_get_stats(h.store, &st);
    if (st.caches != 0 || st.bytes_ram != 0)
        abort();                        /* the session leaked its cache */
    dpc_store_free(h.store);
    free(h.in);
    return 0;
}
