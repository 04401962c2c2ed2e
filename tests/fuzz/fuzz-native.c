/*
 * libFuzzer target for dpc_native, the native protocol's frame parser and
 * state machine, with a real dpc_store (16 MiB of RAM, no spill).
 *
 * The harness runs the mutual proof itself (key, Ns and Nc fixed), so the
 * fuzzer starts at the frame stream.  Input: chunks of a length byte L then
 * L + 1 bytes from the client.  After each chunk the session is driven as
 * dpc_conn drives it: all output taken, then bytes offered while it wants
 * them.  At the end every cache must be back in the store.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpc_native.h"

#define RAM_BUDGET (16 * 1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t key[DPC_WIRE_KEY_LEN] = { 1, 2, 3 };
static const uint8_t ns[DPC_WIRE_NONCE_LEN] = { 4, 5, 6 };
static const uint8_t nc[DPC_WIRE_NONCE_LEN] = { 7, 8, 9 };

static size_t status_json(void *arg, char *buf, size_t len)
{
    (void)arg;
    return (size_t)snprintf(buf, len, "{}");
}

static void drain(struct dpc_native *s)
{
    struct iovec iov[16];
    volatile uint8_t sink = 0;
    int n;

    while ((n = dpc_native_output(s, iov, 16)) > 0) {
        size_t total = 0;

        for (int i = 0; i < n; i++) {
            const uint8_t *p = iov[i].iov_base;

            if (iov[i].iov_len > 0)         /* touch first and last byte */
                sink ^= p[0] ^ p[iov[i].iov_len - 1];
            total += iov[i].iov_len;
        }
        dpc_native_sent(s, total);
    }
    (void)sink;
}

/* Offers buf to the session until it wants more than is left. */
static size_t feed(struct dpc_native *s, const uint8_t *buf, size_t n)
{
    size_t off = 0, used, want;

    for (;;) {
        drain(s);
        want = dpc_native_want(s);
        if (dpc_native_finished(s) || want == 0 || n - off < want)
            return off;
        used = dpc_native_input(s, buf + off, n - off);
        if (used == 0)
            abort();                        /* wanted bytes must be taken */
        off += used;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dpc_store_cfg scfg = { .mem_budget = RAM_BUDGET };
    struct dpc_store *store = dpc_store_new(&scfg, NULL, 0);
    struct dpc_native_cfg cfg = { .key = key, .store = store,
                                  .status = status_json };
    struct dpc_native *s = dpc_native_new(&cfg, ns);
    uint8_t proof[DPC_WIRE_NONCE_LEN + DPC_WIRE_MAC_LEN];
    uint8_t *pending = malloc(size + 1);
    size_t plen = 0, pos = 0;
    struct dpc_store_stats st;

    memcpy(proof, nc, sizeof(nc));
    dpc_wire_proof(key, "client", ns, nc, proof + DPC_WIRE_NONCE_LEN);
    if (feed(s, proof, sizeof(proof)) != sizeof(proof) ||
        !dpc_native_authenticated(s))
        abort();
    while (pos < size && !dpc_native_finished(s)) {
        size_t len = (size_t)data[pos++] + 1, used;

        if (len > size - pos)
            len = size - pos;
        memcpy(pending + plen, data + pos, len);
        plen += len;
        pos += len;
        used = feed(s, pending, plen);
        memmove(pending, pending + used, plen - used);
        plen -= used;
    }
    dpc_native_free(s);
    dpc_store_get_stats(store, &st);
    if (st.caches != 0 || st.bytes_ram != 0)
        abort();                            /* a cache leaked */
    dpc_store_free(store);
    free(pending);
    return 0;
}
