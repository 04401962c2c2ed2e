/*
 * dpc_session: see dpc_session.h.  All state changes pass through
 * set_state(), which asserts the transition is one the diagram allows.
 */
#include "dpc_session.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpc_bytes.h"
#include "dpc_outq.h"
#include "dpc_siphash.h"
#include "dpc_util.h"
#include "dpc_wire.h"

struct dpc_session {
    struct dpc_session_cfg cfg;
    enum dpc_session_state state;
    uint8_t key[DPC_STOCK_KEYLEN];          /* expected session key */
    uint8_t nonce[DPC_STOCK_NONCE_MAX];     /* ours, for a failed proof's
                                               hint */
    int authenticated;

    /* the connection's one cache */
    struct dpc_cache *cache;
    struct dpc_stock_open open;
    unsigned quantum;                       /* 0 until the first data request */
    uint64_t bpp[DPC_PLANE_COUNT];
    uint64_t plane_off[DPC_PLANE_COUNT];

    /* the request in progress */
    uint8_t cmd;
    enum dpc_stock_plane plane;
    struct dpc_stock_region region;
    uint64_t done;                          /* region bytes moved so far */

    struct dpc_outq out;                    /* nonce, status words, JSON */

    struct dpc_session_counters counters;
    struct dpc_metrics_timer timer;         /* the request in progress */
    char err[DPC_ERRLEN];
    enum dpc_errcode code;      /* err's, when not a protocol error */
};

static const char *const state_names[DPC_SESS_NSTATES] = {
    "auth", "header", "open", "region", "payload", "reply", "closing",
    "native",
};

const char *dpc_session_state_name(enum dpc_session_state st)
{
    return st < DPC_SESS_NSTATES ? state_names[st] : "?";
}

static int transition_ok(enum dpc_session_state from, enum dpc_session_state to)
{
    if (to == DPC_SESS_CLOSING)
        return from != DPC_SESS_CLOSING;
    switch (from) {
    case DPC_SESS_AUTH:
        return to == DPC_SESS_HEADER || to == DPC_SESS_NATIVE;
    case DPC_SESS_HEADER:
        return to == DPC_SESS_OPEN || to == DPC_SESS_REGION ||
               to == DPC_SESS_HEADER;
    case DPC_SESS_OPEN:
    case DPC_SESS_PAYLOAD:
    case DPC_SESS_REPLY:
        return to == DPC_SESS_HEADER;
    case DPC_SESS_REGION:               /* HEADER: an empty region */
        return to == DPC_SESS_PAYLOAD || to == DPC_SESS_REPLY ||
               to == DPC_SESS_HEADER;
    default:
        return 0;
    }
}

static void set_state(struct dpc_session *s, enum dpc_session_state to)
{
    assert(transition_ok(s->state, to));
    s->state = to;
    /* A request ends with its reply queued (a read's bytes are queued on
     * entering REPLY) or with nothing more to take. */
    if (to == DPC_SESS_HEADER || to == DPC_SESS_REPLY ||
        to == DPC_SESS_CLOSING)
        dpc_metrics_end(s->cfg.metrics, &s->timer);
}

/* The histogram a stock command is timed in; -1 for none. */
static int metrics_op(uint8_t cmd)
{
    switch (cmd) {
    case 'o': return DPC_METRICS_STOCK_OPEN;
    case 'r': case 'R': return DPC_METRICS_STOCK_READ;
    case 'w': case 'W': return DPC_METRICS_STOCK_WRITE;
    case 'd': return DPC_METRICS_STOCK_DESTROY;
    case 's': case 'D': return DPC_METRICS_STOCK_STATUS;
    default: return -1;
    }
}

static void queue_status(struct dpc_session *s, uint32_t status)
{
    uint8_t word[DPC_STOCK_STATUS_LEN];

    dpc_put_le32(word, status);
    dpc_outq_push(&s->out, word, sizeof(word));
}

/* The protocol's failure reply (a zero status) and a close. */
static size_t fail(struct dpc_session *s, size_t consumed)
{
    queue_status(s, 0);
    set_state(s, DPC_SESS_CLOSING);
    return consumed;
}

#define trace(s, ...) dpc_proto_trace((s)->cfg.trace, (s)->cfg.arg, __VA_ARGS__)

struct dpc_session *dpc_session_new(const struct dpc_session_cfg *cfg,
                                    const uint8_t *nonce)
{
    struct dpc_session *s = calloc(1, sizeof(*s));
    size_t n = dpc_stock_nonce_len(cfg->flavor);

    if (s == NULL)
        return NULL;
    s->cfg = *cfg;
    s->state = DPC_SESS_AUTH;
    s->timer.op = -1;
    dpc_siphash_session_key(cfg->sipkey, nonce, n, s->key);
    memcpy(s->nonce, nonce, n);
    dpc_outq_push(&s->out, nonce, n);
    return s;
}

void dpc_session_free(struct dpc_session *s)
{
    if (s == NULL)
        return;
    dpc_cache_close(s->cache);
    dpc_outq_clear(&s->out);
    free(s);
}

size_t dpc_session_want(const struct dpc_session *s)
{
    if (!dpc_outq_empty(&s->out))
        return 0;   /* replies go out in order: queued ones first */
    switch (s->state) {
    case DPC_SESS_AUTH:
        return DPC_STOCK_KEYLEN;
    case DPC_SESS_HEADER:
        return DPC_STOCK_HDRLEN;
    case DPC_SESS_OPEN:
        return dpc_stock_open_len(s->cfg.flavor);
    case DPC_SESS_REGION:
        return DPC_STOCK_REGION_LEN;
    case DPC_SESS_PAYLOAD:
        return 1;
    default:
        return 0;
    }
}

/* 1 when a wrong proof on an IM7 listener is an ImageMagick 6 client's: it
 * reads 8 bytes of the 16-byte nonce and answers those.  Computed only on
 * failure, so a good handshake costs one SipHash. */
static int answers_im6(const struct dpc_session *s, const uint8_t *proof)
{
    uint8_t im6[DPC_STOCK_KEYLEN];

    if (s->cfg.flavor != DPC_STOCK_IM7)
        return 0;
    dpc_siphash_session_key(s->cfg.sipkey, s->nonce,
                            dpc_stock_nonce_len(DPC_STOCK_IM6), im6);
    return dpc_equal_ct(proof, im6, DPC_STOCK_KEYLEN);
}

static size_t take_auth(struct dpc_session *s, const uint8_t *p)
{
    if (s->cfg.allow_native &&
        memcmp(p, DPC_WIRE_MAGIC, DPC_WIRE_MAGIC_LEN) == 0) {
        set_state(s, DPC_SESS_NATIVE);
        return DPC_WIRE_MAGIC_LEN;
    }
    if (!dpc_equal_ct(p, s->key, DPC_STOCK_KEYLEN)) {
        /* As the stock server: a wrong proof is closed on silently. */
        s->code = DPC_E_AUTH;
        if (answers_im6(s, p))
            dpc_errf(s->err, sizeof(s->err), "authentication failed: the "
                     "proof covers 8 bytes of our 16-byte nonce, as an "
                     "ImageMagick 6 client's does; point ImageMagick 6 "
                     "clients at the IM6 listener (--listen, dpc-listen)");
        else
            dpc_errf(s->err, sizeof(s->err), "authentication failed");
        set_state(s, DPC_SESS_CLOSING);
        return DPC_STOCK_KEYLEN;
    }
    s->authenticated = 1;
    set_state(s, DPC_SESS_HEADER);
    return DPC_STOCK_KEYLEN;
}

static size_t take_status(struct dpc_session *s)
{
    uint8_t len[4];
    size_t n;
    char *json = dpc_proto_status(s->cfg.status, s->cfg.arg, &n, s->err,
                                  sizeof(s->err));

    if (json == NULL) {
        if (s->cfg.status != NULL)      /* else not served here */
            s->code = DPC_E_NOMEM;
        return fail(s, DPC_STOCK_HDRLEN);
    }
    dpc_put_le32(len, (uint32_t)n);
    dpc_outq_push(&s->out, len, sizeof(len));
    dpc_outq_push_blob(&s->out, json, n);
    set_state(s, DPC_SESS_HEADER);
    return DPC_STOCK_HDRLEN;
}

static size_t take_destroy(struct dpc_session *s)
{
    queue_status(s, s->cache != NULL);
    if (s->cache == NULL)
        dpc_errf(s->err, sizeof(s->err), "destroy without an open cache");
    dpc_cache_close(s->cache);
    s->cache = NULL;
    set_state(s, DPC_SESS_CLOSING);
    return DPC_STOCK_HDRLEN;
}

static size_t take_header(struct dpc_session *s, const uint8_t *p)
{
    uint8_t cmd = p[0];

    if (!dpc_equal_ct(p + 1, s->key, DPC_STOCK_KEYLEN)) {
        dpc_errf(s->err, sizeof(s->err), "wrong session key");
        return fail(s, DPC_STOCK_HDRLEN);
    }
    s->counters.requests++;
    s->cmd = cmd;
    if (metrics_op(cmd) >= 0)
        dpc_metrics_begin(s->cfg.metrics, &s->timer, metrics_op(cmd));
    switch (cmd) {
    case 'o':
        if (s->cache != NULL) {
            dpc_errf(s->err, sizeof(s->err), "second open on one connection");
            return fail(s, DPC_STOCK_HDRLEN);
        }
        set_state(s, DPC_SESS_OPEN);
        return DPC_STOCK_HDRLEN;
    case 'r': case 'R': case 'w': case 'W':
        if (s->cache == NULL) {
            dpc_errf(s->err, sizeof(s->err), "'%c' before open", cmd);
            return fail(s, DPC_STOCK_HDRLEN);
        }
        s->plane = (cmd == 'r' || cmd == 'w') ? DPC_PLANE_PIXELS
                                              : DPC_PLANE_INDEXES;
        set_state(s, DPC_SESS_REGION);
        return DPC_STOCK_HDRLEN;
    case 'd':
        trace(s, "d");
        return take_destroy(s);
    case 's':
        trace(s, "s");
        return take_status(s);
    case 'D':
        if (s->cfg.drain == NULL) {
            dpc_errf(s->err, sizeof(s->err), "unknown command 0x%02x", cmd);
            return fail(s, DPC_STOCK_HDRLEN);
        }
        trace(s, "D");
        s->cfg.drain(s->cfg.arg);
        return take_status(s);
    default:
        dpc_errf(s->err, sizeof(s->err), "unknown command 0x%02x", cmd);
        return fail(s, DPC_STOCK_HDRLEN);
    }
}

static size_t take_open(struct dpc_session *s, const uint8_t *p)
{
    size_t n = dpc_stock_open_len(s->cfg.flavor);
    uint64_t bpp[DPC_PLANE_COUNT], pixels, size;

    if (dpc_stock_parse_open(s->cfg.flavor, p, &s->open, s->err,
                             sizeof(s->err)) < 0)
        return fail(s, n);
    if (s->cfg.draining != NULL && *s->cfg.draining) {
        /* The stock client has no way to hear "elsewhere": it fails the
         * open with an error, at once, instead of starting a job the
         * server would cut short. */
        s->code = DPC_E_DRAINING;
        dpc_errf(s->err, sizeof(s->err), "open refused: the server is "
                 "draining");
        return fail(s, n);
    }
    /* The client's quantum size is not on the wire: reserve for the
     * largest served, and give the rest back once the first request shows
     * it.  parse_open checked that this cannot overflow. */
    dpc_stock_plane_bpp(s->cfg.flavor, &s->open, DPC_STOCK_MAX_QUANTUM, bpp);
    pixels = s->open.columns * s->open.rows;
    size = pixels * (bpp[DPC_PLANE_PIXELS] + bpp[DPC_PLANE_INDEXES]);
    s->cache = dpc_store_open(s->cfg.store, size, s->err, sizeof(s->err));
    if (s->cache == NULL) {
        s->code = DPC_E_NO_ROOM;
        return fail(s, n);
    }
    trace(s, "o %llux%llu class %u colorspace %u%s: %llu bytes in %s",
          (unsigned long long)s->open.columns,
          (unsigned long long)s->open.rows, s->open.storage_class,
          s->open.colorspace, s->open.has_indexes ? " +indexes" : "",
          (unsigned long long)size,
          dpc_cache_tier(s->cache) == DPC_TIER_RAM ? "memory" : "spill");
    queue_status(s, 1);
    set_state(s, DPC_SESS_HEADER);
    return n;
}

/* Fixes the cache's layout from the first data request. */
static int set_layout(struct dpc_session *s)
{
    int q = dpc_stock_infer_quantum(s->cfg.flavor, &s->open, s->plane,
                                    &s->region, s->err, sizeof(s->err));
    uint64_t pixels = s->open.columns * s->open.rows;

    if (q < 0)
        return -1;
    s->quantum = (unsigned)q;
    dpc_stock_plane_bpp(s->cfg.flavor, &s->open, s->quantum, s->bpp);
    s->plane_off[DPC_PLANE_PIXELS] = 0;
    s->plane_off[DPC_PLANE_INDEXES] = pixels * s->bpp[DPC_PLANE_PIXELS];
    return dpc_cache_shrink(s->cache,
                            pixels * (s->bpp[DPC_PLANE_PIXELS] +
                                      s->bpp[DPC_PLANE_INDEXES]),
                            s->err, sizeof(s->err));
}

static size_t take_region(struct dpc_session *s, const uint8_t *p)
{
    struct dpc_stock_region *r = &s->region;
    uint64_t expect;

    dpc_stock_parse_region(p, r);
    if ((r->width == 0 || r->height == 0) && r->length == 0) {
        /* Nothing to move: a no-op, as a memory cache's copy of no rows. */
        trace(s, "%c %llux%llu%+lld%+lld: empty, nothing moved", s->cmd,
              (unsigned long long)r->width, (unsigned long long)r->height,
              (long long)r->x, (long long)r->y);
        set_state(s, DPC_SESS_HEADER);
        return DPC_STOCK_REGION_LEN;
    }
    if (dpc_stock_check_region(r, s->open.columns, s->open.rows, s->err,
                               sizeof(s->err)) < 0)
        return fail(s, DPC_STOCK_REGION_LEN);
    if (s->plane == DPC_PLANE_INDEXES && !s->open.has_indexes) {
        dpc_errf(s->err, sizeof(s->err), "'%c' on a cache without indexes",
                 s->cmd);
        return fail(s, DPC_STOCK_REGION_LEN);
    }
    if (s->quantum == 0 && set_layout(s) < 0)
        return fail(s, DPC_STOCK_REGION_LEN);
    /* Rows of a region wider than the image overlap, so width * height
     * may exceed the image: checked. */
    if (dpc_mul_u64(r->width, r->height, &expect) < 0 ||
        dpc_mul_u64(expect, s->bpp[s->plane], &expect) < 0) {
        dpc_errf(s->err, sizeof(s->err), "'%c' region %llux%llu too large",
                 s->cmd, (unsigned long long)r->width,
                 (unsigned long long)r->height);
        return fail(s, DPC_STOCK_REGION_LEN);
    }
    if (r->length != expect) {
        dpc_errf(s->err, sizeof(s->err),
                 "'%c' length %llu, expected %llu for %llux%llu at %llu "
                 "bytes per pixel", s->cmd, (unsigned long long)r->length,
                 (unsigned long long)expect, (unsigned long long)r->width,
                 (unsigned long long)r->height,
                 (unsigned long long)s->bpp[s->plane]);
        return fail(s, DPC_STOCK_REGION_LEN);
    }
    trace(s, "%c %llux%llu%+lld%+lld %llu", s->cmd,
          (unsigned long long)r->width, (unsigned long long)r->height,
          (long long)r->x, (long long)r->y, (unsigned long long)r->length);
    s->done = 0;
    set_state(s, (s->cmd == 'w' || s->cmd == 'W') ? DPC_SESS_PAYLOAD
                                                  : DPC_SESS_REPLY);
    return DPC_STOCK_REGION_LEN;
}

/* Where region byte `off` lives in the cache, and how many bytes from there
 * are contiguous within the region. */
static uint8_t *region_span(const struct dpc_session *s, uint64_t off,
                            uint64_t *run)
{
    const struct dpc_stock_region *r = &s->region;
    uint64_t bpp = s->bpp[s->plane];
    uint64_t rowlen = r->width * bpp;
    uint64_t row = off / rowlen, col = off % rowlen;
    uint64_t pos = ((uint64_t)(r->y + (int64_t)row) * s->open.columns +
                    (uint64_t)r->x) * bpp + col;

    if (r->width == s->open.columns)        /* whole rows are contiguous */
        *run = r->length - off;
    else
        *run = rowlen - col;
    return dpc_cache_base(s->cache) + s->plane_off[s->plane] + pos;
}

static size_t take_payload(struct dpc_session *s, const uint8_t *p, size_t n)
{
    size_t taken = 0;

    while (taken < n && s->done < s->region.length) {
        uint64_t run;
        uint8_t *dst = region_span(s, s->done, &run);
        size_t k = run < n - taken ? (size_t)run : n - taken;

        memcpy(dst, p + taken, k);
        taken += k;
        s->done += k;
    }
    s->counters.bytes_in += taken;
    dpc_cache_touched(s->cache, taken);
    if (s->done == s->region.length)
        set_state(s, DPC_SESS_HEADER);
    return taken;
}

uint8_t *dpc_session_input_span(struct dpc_session *s, size_t *len)
{
    uint64_t run;
    uint8_t *dst;

    if (s->state != DPC_SESS_PAYLOAD || dpc_session_want(s) == 0)
        return NULL;
    dst = region_span(s, s->done, &run);
    *len = run < SIZE_MAX ? (size_t)run : SIZE_MAX;
    return dst;
}

void dpc_session_input_done(struct dpc_session *s, size_t n)
{
    assert(s->state == DPC_SESS_PAYLOAD && n <= s->region.length - s->done);
    s->done += n;
    s->counters.bytes_in += n;
    dpc_cache_touched(s->cache, n);
    if (s->done == s->region.length)
        set_state(s, DPC_SESS_HEADER);
}

size_t dpc_session_input(struct dpc_session *s, const uint8_t *p, size_t n)
{
    size_t want = dpc_session_want(s);

    if (want == 0 || n < want)
        return 0;
    switch (s->state) {
    case DPC_SESS_AUTH:
        return take_auth(s, p);
    case DPC_SESS_HEADER:
        return take_header(s, p);
    case DPC_SESS_OPEN:
        return take_open(s, p);
    case DPC_SESS_REGION:
        return take_region(s, p);
    case DPC_SESS_PAYLOAD:
        return take_payload(s, p, n);
    default:
        return 0;
    }
}

int dpc_session_output(struct dpc_session *s, struct iovec *iov, int max)
{
    int n = dpc_outq_iov(&s->out, iov, max);
    uint64_t off;

    if (s->state != DPC_SESS_REPLY)
        return n;
    for (off = s->done; n < max && off < s->region.length; n++) {
        uint64_t run;

        iov[n].iov_base = region_span(s, off, &run);
        iov[n].iov_len = (size_t)run;
        off += run;
    }
    return n;
}

void dpc_session_sent(struct dpc_session *s, size_t n)
{
    n = dpc_outq_sent(&s->out, n);
    if (s->state == DPC_SESS_REPLY) {
        assert(n <= s->region.length - s->done);
        s->done += n;
        s->counters.bytes_out += n;
        dpc_cache_touched(s->cache, n);
        if (s->done == s->region.length)
            set_state(s, DPC_SESS_HEADER);
    }
}

enum dpc_session_state dpc_session_state(const struct dpc_session *s)
{
    return s->state;
}

int dpc_session_finished(const struct dpc_session *s)
{
    return s->state == DPC_SESS_CLOSING && dpc_outq_empty(&s->out);
}

int dpc_session_authenticated(const struct dpc_session *s)
{
    return s->authenticated;
}

const char *dpc_session_hint(const struct dpc_session *s)
{
    if (s->state != DPC_SESS_AUTH || s->cfg.flavor != DPC_STOCK_IM6)
        return NULL;
    return "no proof after our 8-byte nonce; an ImageMagick 7 client waits "
           "for 16 bytes and gives up: point ImageMagick 7 clients at the "
           "IM7 listener (--listen-im7, dpc-listen-im7)";
}

const char *dpc_session_error(const struct dpc_session *s)
{
    return s->err;
}

enum dpc_errcode dpc_session_errcode(const struct dpc_session *s)
{
    if (s->err[0] == '\0')
        return DPC_E_OK;
    return s->code != DPC_E_OK ? s->code : DPC_E_PROTOCOL;
}

const struct dpc_session_counters *
dpc_session_counters(const struct dpc_session *s)
{
    return &s->counters;
}

const struct dpc_cache *dpc_session_cache(const struct dpc_session *s)
{
    return s->cache;
}

/* The table: thin casts the compiler folds into the calls above. */
static size_t ops_want(const void *s) { return dpc_session_want(s); }
static size_t ops_input(void *s, const uint8_t *p, size_t n)
{
    return dpc_session_input(s, p, n);
}
static uint8_t *ops_input_span(void *s, size_t *len)
{
    return dpc_session_input_span(s, len);
}
static void ops_input_done(void *s, size_t n) { dpc_session_input_done(s, n); }
static int ops_output(void *s, struct iovec *iov, int max)
{
    return dpc_session_output(s, iov, max);
}
static void ops_sent(void *s, size_t n) { dpc_session_sent(s, n); }
static int ops_finished(const void *s) { return dpc_session_finished(s); }
static int ops_authenticated(const void *s)
{
    return dpc_session_authenticated(s);
}
static int ops_idle(const void *s)
{
    return dpc_session_state(s) == DPC_SESS_HEADER;
}
static int ops_handover(const void *s)
{
    return dpc_session_state(s) == DPC_SESS_NATIVE;
}
static const char *ops_hint(const void *s) { return dpc_session_hint(s); }
static const char *ops_error(const void *s) { return dpc_session_error(s); }
static enum dpc_errcode ops_errcode(const void *s)
{
    return dpc_session_errcode(s);
}
static const struct dpc_session_counters *ops_counters(const void *s)
{
    return dpc_session_counters(s);
}
static void ops_free(void *s) { dpc_session_free(s); }

const struct dpc_proto_ops dpc_session_ops = {
    .name = "stock",
    .want = ops_want, .input = ops_input,
    .input_span = ops_input_span, .input_done = ops_input_done,
    .output = ops_output, .sent = ops_sent,
    .finished = ops_finished, .authenticated = ops_authenticated,
    .idle = ops_idle, .handover = ops_handover, .hint = ops_hint,
    .error = ops_error, .errcode = ops_errcode, .counters = ops_counters, .free = ops_free,
};
