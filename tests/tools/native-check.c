/*
 * native-check: drives dpc_tiles over real magick-dpc servers and checks
 * every byte against a local copy.
 *
 *   native-check random SECRET W H SEED HOST:PORT...   random regions
 *   native-check random1 SECRET W H SEED HOST:PORT...  the same, one plane
 *   native-check stream SECRET MIB HOST:PORT...        write then read MIB
 *   native-check refuse SECRET HOST:PORT               a refused PUT
 *
 * random: random reads and writes of random regions on both planes, with a
 * tile cache far smaller than the image, so tiles are evicted, written back
 * and fetched again; then a full read.  Prints "ok" or the first mismatch.
 * random1: pixels only, so large regions also move whole tiles past the
 * tile cache (the direct path), mixed with cached ones.
 * stream: full-width writes then reads of a MIB-sized cache; prints MB/s.
 * refuse: a PUT the server refuses (a slot past the cache) is queued like a
 * write-back; the next wait, every later wait and every later request must
 * report the server's reason, never success.  Prints "ok: REASON".
 *
 * The links speak TLS (PSK from SECRET) as the drop-in does by default;
 * NATIVE_CHECK_TLS=off makes them plaintext, NATIVE_CHECK_TLS_CA=FILE
 * verifies the server's certificate instead (NATIVE_CHECK_TLS_CERT and
 * NATIVE_CHECK_TLS_KEY: with a client certificate).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dpc_link.h"
#include "dpc_parse.h"
#include "dpc_tiles.h"
#include "dpc_tlsclient.h"
#include "dpc_util.h"

#define MAX_HOSTS 8

static struct dpc_link *links[MAX_HOSTS];
static size_t nlinks;

static void die(const char *what, const char *err)
{
    fprintf(stderr, "native-check: %s: %s\n", what, err);
    exit(1);
}

static void connect_all(const char *secret, int argc, char **argv)
{
    uint8_t key[DPC_WIRE_KEY_LEN];
    char err[DPC_ERRLEN], host[256];
    const char *mode = getenv("NATIVE_CHECK_TLS");
    struct dpc_tlsclient_cfg tc = { .ca = getenv("NATIVE_CHECK_TLS_CA"),
                                    .cert = getenv("NATIVE_CHECK_TLS_CERT"),
                                    .key = getenv("NATIVE_CHECK_TLS_KEY") };
    struct dpc_tlsclient *tls = NULL;
    unsigned port;

    dpc_wire_derive_key(secret, strlen(secret), key);
    if (mode == NULL || strcmp(mode, "off") != 0) {
        if (dpc_tls_derive_psk(secret, strlen(secret), tc.psk, err,
                               sizeof(err)) < 0 ||
            (tls = dpc_tlsclient_get(&tc, err, sizeof(err))) == NULL)
            die("tls", err);
    }
    for (int i = 0; i < argc && nlinks < MAX_HOSTS; i++) {
        if (dpc_parse_hostport(argv[i], host, sizeof(host), &port, err,
                               sizeof(err)) < 0)
            die(argv[i], err);
        links[nlinks] = dpc_link_connect_tls(host, port, key, tls, 5000, NULL,
                                             err, sizeof(err));
        if (links[nlinks++] == NULL)
            die("connect", err);
    }
}

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One random region op against both the tiles and the reference. */
static void random_op(struct dpc_tiles *t, uint8_t *ref[2], uint8_t *buf,
                      const uint32_t bpp[2], uint64_t W, uint64_t H)
{
    char err[DPC_ERRLEN];
    int plane = bpp[1] != 0 && rand() % 4 == 0 ? 1 : 0, write = rand() % 2;
    uint64_t w = 1 + (uint64_t)rand() % (rand() % 3 ? W : 4);
    uint64_t h = 1 + (uint64_t)rand() % (rand() % 3 ? H : 4);
    uint64_t x = (uint64_t)rand() % (W - w + 1), y = (uint64_t)rand() % (H - h + 1);
    size_t row = (size_t)(w * bpp[plane]);

    if (getenv("NATIVE_CHECK_TRACE"))
        fprintf(stderr, "%s plane %d %llux%llu+%llu+%llu\n",
                write ? "write" : "read", plane, (unsigned long long)w,
                (unsigned long long)h, (unsigned long long)x,
                (unsigned long long)y);

    if (write) {
        for (size_t i = 0; i < w * h * bpp[plane]; i++)
            buf[i] = (uint8_t)rand();
        if (dpc_tiles_write(t, plane, x, y, w, h, buf, err, sizeof(err)) < 0)
            die("write", err);
        for (uint64_t r = 0; r < h; r++)
            memcpy(ref[plane] + ((y + r) * W + x) * bpp[plane], buf + r * row,
                   row);
        return;
    }
    if (dpc_tiles_read(t, plane, x, y, w, h, buf, err, sizeof(err)) < 0)
        die("read", err);
    for (uint64_t r = 0; r < h; r++)
        if (memcmp(ref[plane] + ((y + r) * W + x) * bpp[plane], buf + r * row,
                   row) != 0) {
            fprintf(stderr, "native-check: mismatch: plane %d region "
                    "%llux%llu+%llu+%llu row %llu\n", plane,
                    (unsigned long long)w, (unsigned long long)h,
                    (unsigned long long)x, (unsigned long long)y,
                    (unsigned long long)r);
            exit(1);
        }
}

static int cmd_random(int argc, char **argv, int planes)
{
    uint64_t W = strtoull(argv[3], NULL, 10), H = strtoull(argv[4], NULL, 10);
    uint32_t bpp[2] = { 8, planes == 2 ? 2 : 0 };
    struct dpc_tiles_cfg cfg = { .columns = W, .rows = H, .tile_w = 16,
                                 .tile_h = 16 };
    struct dpc_tiles_stats st;
    uint8_t *ref[2], *buf;
    char err[DPC_ERRLEN];
    struct dpc_tiles *t;

    srand((unsigned)strtoul(argv[5], NULL, 10));
    connect_all(argv[2], argc - 6, argv + 6);
    memcpy(cfg.bpp, bpp, sizeof(bpp));
    cfg.cache_bytes = W * H * 10 / 16;
    cfg.links = links;
    cfg.nlinks = nlinks;
    t = dpc_tiles_open(&cfg, NULL, NULL, err, sizeof(err));
    if (t == NULL)
        die("open", err);
    ref[0] = calloc(W * H, bpp[0]);
    ref[1] = calloc(W * H, bpp[1] ? bpp[1] : 1);
    buf = malloc(W * H * bpp[0]);
    for (int i = 0; i < 3000; i++)
        random_op(t, ref, buf, bpp, W, H);
    if (dpc_tiles_flush(t, err, sizeof(err)) < 0)
        die("flush", err);
    for (int plane = 0; plane < planes; plane++) {
        if (dpc_tiles_read(t, plane, 0, 0, W, H, buf, err, sizeof(err)) < 0)
            die("read", err);
        if (memcmp(buf, ref[plane], W * H * bpp[plane]) != 0)
            die("full read", "mismatch");
    }
    /* Each host's share while the cache is open (striping). */
    for (size_t i = 0; i < nlinks; i++) {
        char *json;

        if (dpc_link_status(links[i], &json, err, sizeof(err)) < 0)
            die("status", err);
        printf("host %zu: %s\n", i, json);
        free(json);
    }
    dpc_tiles_get_stats(t, &st);
    printf("ok: %llu hits, %llu misses, %llu fetched, %llu written back, "
           "%llu direct, %llu round trips, %llu slots on the busiest host\n",
           (unsigned long long)st.hits, (unsigned long long)st.misses,
           (unsigned long long)st.fetched,
           (unsigned long long)st.written_back,
           (unsigned long long)st.direct,
           (unsigned long long)st.round_trips,
           (unsigned long long)st.slots_per_host_max);
    if (dpc_tiles_close(t, err, sizeof(err)) < 0)
        die("close", err);
    free(ref[0]);
    free(ref[1]);
    free(buf);
    return 0;
}

static int cmd_stream(int argc, char **argv)
{
    uint64_t mib = strtoull(argv[3], NULL, 10), W = 4096;
    uint64_t H = mib * 1024 * 1024 / (W * 8), band = 256;
    struct dpc_tiles_cfg cfg = { .columns = W, .rows = H, .bpp = { 8, 0 },
                                 .tile_w = 256, .tile_h = 64,
                                 .cache_bytes = 64 << 20 };
    uint8_t *buf = malloc(W * band * 8);
    char err[DPC_ERRLEN];
    struct dpc_tiles *t;
    double t0, t1, t2;

    connect_all(argv[2], argc - 4, argv + 4);
    cfg.links = links;
    cfg.nlinks = nlinks;
    t = dpc_tiles_open(&cfg, NULL, NULL, err, sizeof(err));
    if (t == NULL)
        die("open", err);
    memset(buf, 0x5a, W * band * 8);
    t0 = now();
    for (uint64_t y = 0; y < H; y += band)
        if (dpc_tiles_write(t, 0, 0, y, W, band, buf, err, sizeof(err)) < 0)
            die("write", err);
    if (dpc_tiles_flush(t, err, sizeof(err)) < 0)
        die("flush", err);
    t1 = now();
    for (uint64_t y = 0; y < H; y += band)
        if (dpc_tiles_read(t, 0, 0, y, W, band, buf, err, sizeof(err)) < 0)
            die("read", err);
    t2 = now();
    if (buf[12345] != 0x5a)
        die("read", "wrong bytes");
    printf("stream %llu MiB over %zu host(s): write %.0f MB/s, read %.0f MB/s\n",
           (unsigned long long)mib, nlinks, mib * 1.048576 / (t1 - t0),
           mib * 1.048576 / (t2 - t1));
    dpc_tiles_close(t, err, sizeof(err));
    free(buf);
    return 0;
}

static int cmd_refuse(int argc, char **argv)
{
    uint8_t tile[64] = { 0 }, *dst[1] = { tile };
    const uint8_t *src[1] = { tile };
    uint64_t handle, bad = 99, good = 0;
    char err[DPC_ERRLEN] = "", again[DPC_ERRLEN] = "";
    int rc;

    connect_all(argv[2], argc - 3, argv + 3);
    if (dpc_link_open(links[0], sizeof(tile), 4, &handle, err,
                      sizeof(err)) < 0)
        die("open", err);
    if (dpc_link_put(links[0], handle, sizeof(tile), 1, &bad, src, NULL, err,
                     sizeof(err)) < 0)
        die("put", "not queued");
    rc = dpc_link_wait(links[0], err, sizeof(err));
    if (rc == 0)
        die("wait", "a refused PUT reported success");
    if (rc != -DPC_E_REFUSED)
        die("wait", "the refusal's code is not DPC_E_REFUSED");
    if (!dpc_link_broken(links[0]))
        die("wait", "the link still counts as usable");
    if (dpc_link_wait(links[0], again, sizeof(again)) != rc ||
        strcmp(again, err) != 0)
        die("second wait", again[0] ? again : "success");
    if (dpc_link_get(links[0], handle, sizeof(tile), 1, &good, dst, NULL,
                     again, sizeof(again)) != rc ||
        strcmp(again, err) != 0)
        die("later GET", again[0] ? again : "queued");
    printf("ok: %s\n", err);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 7 && strcmp(argv[1], "random") == 0)
        return cmd_random(argc, argv, 2);
    if (argc >= 7 && strcmp(argv[1], "random1") == 0)
        return cmd_random(argc, argv, 1);
    if (argc >= 5 && strcmp(argv[1], "stream") == 0)
        return cmd_stream(argc, argv);
    if (argc == 4 && strcmp(argv[1], "refuse") == 0)
        return cmd_refuse(argc, argv);
    fprintf(stderr, "usage: native-check random SECRET W H SEED HOST:PORT...\n"
                    "       native-check random1 SECRET W H SEED HOST:PORT...\n"
                    "       native-check stream SECRET MIB HOST:PORT...\n"
                    "       native-check refuse SECRET HOST:PORT\n");
    return 2;
}
