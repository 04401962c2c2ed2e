/*
 * dpc_native: see dpc_native.h.  Every transition goes through set_state().
 */
#include "dpc_native.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpc_bytes.h"
#include "dpc_outq.h"
#include "dpc_util.h"

#define FIXED_OPEN 16
#define FIXED_CLOSE 8
#define FIXED_COPY 16
/* The most one COPY moves: it runs in the event loop, which serves no one
 * else meanwhile (256 MiB: tens of milliseconds).  Larger caches are
 * refused, and the client copies them itself. */
#define COPY_MAX (256ull << 20)

struct native_cache {
    struct dpc_cache *cache;                /* NULL: free entry */
    uint32_t slot_bytes;
    uint64_t slots;
};

struct dpc_native {
    struct dpc_native_cfg cfg;
    enum dpc_native_state state;
    uint8_t ns[DPC_WIRE_NONCE_LEN];
    int authenticated;
    struct native_cache caches[DPC_NATIVE_MAX_CACHES];

    /* the request in progress */
    struct dpc_wire_hdr hdr;
    struct native_cache *cur;
    uint32_t count;
    uint64_t *slots;                        /* DPC_WIRE_MAX_COUNT, owned */
    uint64_t done;                          /* tile bytes moved so far */

    struct dpc_outq out;                    /* headers, small bodies, JSON */

    struct dpc_session_counters counters;
    struct dpc_metrics_timer timer;         /* the request in progress */
    char err[DPC_ERRLEN];
    enum dpc_errcode code;      /* err's, when not a protocol error */
};

static int transition_ok(enum dpc_native_state from, enum dpc_native_state to)
{
    if (to == DPC_NAT_CLOSING)
        return from != DPC_NAT_CLOSING;
    switch (from) {
    case DPC_NAT_PROOF:
        return to == DPC_NAT_HEADER;
    case DPC_NAT_HEADER:
        return to == DPC_NAT_FIXED || to == DPC_NAT_HEADER;
    case DPC_NAT_FIXED:
        return to == DPC_NAT_SLOTS || to == DPC_NAT_HEADER;
    case DPC_NAT_SLOTS:
        return to == DPC_NAT_PUT_DATA || to == DPC_NAT_REPLY;
    case DPC_NAT_PUT_DATA:
    case DPC_NAT_REPLY:
        return to == DPC_NAT_HEADER;
    default:
        return 0;
    }
}

static void set_state(struct dpc_native *s, enum dpc_native_state to)
{
    assert(transition_ok(s->state, to));
    s->state = to;
    /* A request ends with its reply queued (GET's tiles on entering
     * REPLY) or with nothing more to take. */
    if (to == DPC_NAT_HEADER || to == DPC_NAT_REPLY || to == DPC_NAT_CLOSING)
        dpc_metrics_end(s->cfg.metrics, &s->timer);
}

/* The histogram a native operation is timed in; -1 for none. */
static int metrics_op(uint8_t op)
{
    switch (op) {
    case DPC_OP_OPEN: return DPC_METRICS_NATIVE_OPEN;
    case DPC_OP_PUT: return DPC_METRICS_NATIVE_PUT;
    case DPC_OP_GET: return DPC_METRICS_NATIVE_GET;
    case DPC_OP_CLOSE: return DPC_METRICS_NATIVE_CLOSE;
    case DPC_OP_STATUS: return DPC_METRICS_NATIVE_STATUS;
    default: return -1;
    }
}

#define trace(s, ...) dpc_proto_trace((s)->cfg.trace, (s)->cfg.arg, __VA_ARGS__)

/* Queues a reply header for the current request with a body of len. */
static void reply(struct dpc_native *s, enum dpc_wire_status st, uint32_t len)
{
    struct dpc_wire_hdr h = { .version = DPC_WIRE_VERSION, .op = s->hdr.op,
                              .status = (uint16_t)st, .id = s->hdr.id,
                              .length = len };
    uint8_t buf[DPC_WIRE_HDR_LEN];

    dpc_wire_encode_hdr(buf, &h);
    dpc_outq_push(&s->out, buf, sizeof(buf));
}

/* A failure reply carrying s->err as its reason. */
static void reply_error(struct dpc_native *s, enum dpc_wire_status st)
{
    size_t n = strnlen(s->err, sizeof(s->err));

    reply(s, st, (uint32_t)n);
    dpc_outq_push(&s->out, s->err, n);
}

/* A malformed request: say why, then close. */
static size_t reject(struct dpc_native *s, size_t consumed)
{
    reply_error(s, DPC_WS_BAD_REQUEST);
    set_state(s, DPC_NAT_CLOSING);
    return consumed;
}

struct dpc_native *dpc_native_new(const struct dpc_native_cfg *cfg,
                                  const uint8_t *ns)
{
    struct dpc_native *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->slots = malloc(DPC_WIRE_MAX_COUNT * sizeof(*s->slots));
    if (s->slots == NULL) {
        free(s);
        return NULL;
    }
    s->cfg = *cfg;
    s->timer.op = -1;
    memcpy(s->ns, ns, DPC_WIRE_NONCE_LEN);
    dpc_outq_push(&s->out, ns, DPC_WIRE_NONCE_LEN);
    return s;
}

void dpc_native_free(struct dpc_native *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < DPC_NATIVE_MAX_CACHES; i++)
        dpc_cache_close(s->caches[i].cache);
    free(s->slots);
    dpc_outq_clear(&s->out);
    free(s);
}

size_t dpc_native_want(const struct dpc_native *s)
{
    if (!dpc_outq_empty(&s->out))
        return 0;   /* replies go out in order: queued ones first */
    switch (s->state) {
    case DPC_NAT_PROOF:
        return DPC_WIRE_NONCE_LEN + DPC_WIRE_MAC_LEN;
    case DPC_NAT_HEADER:
        return DPC_WIRE_HDR_LEN;
    case DPC_NAT_FIXED:
        return s->hdr.op == DPC_OP_OPEN ? FIXED_OPEN
               : s->hdr.op == DPC_OP_CLOSE ? FIXED_CLOSE
               : s->hdr.op == DPC_OP_COPY ? FIXED_COPY
                                          : DPC_WIRE_SLOTS_FIXED;
    case DPC_NAT_SLOTS:
        return (size_t)s->count * 8;
    case DPC_NAT_PUT_DATA:
        return 1;
    default:
        return 0;
    }
}

static size_t take_proof(struct dpc_native *s, const uint8_t *p)
{
    uint8_t mac[DPC_WIRE_MAC_LEN];

    dpc_wire_proof(s->cfg.key, "client", s->ns, p, mac);
    if (!dpc_equal_ct(mac, p + DPC_WIRE_NONCE_LEN, DPC_WIRE_MAC_LEN)) {
        s->code = DPC_E_AUTH;
        dpc_errf(s->err, sizeof(s->err), "authentication failed");
        set_state(s, DPC_NAT_CLOSING);
        return DPC_WIRE_NONCE_LEN + DPC_WIRE_MAC_LEN;
    }
    dpc_wire_proof(s->cfg.key, "server", s->ns, p, mac);
    dpc_outq_push(&s->out, mac, sizeof(mac));
    s->authenticated = 1;
    set_state(s, DPC_NAT_HEADER);
    return DPC_WIRE_NONCE_LEN + DPC_WIRE_MAC_LEN;
}

static size_t take_status(struct dpc_native *s)
{
    size_t n;
    char *json = dpc_proto_status(s->cfg.status, s->cfg.arg, &n, s->err,
                                  sizeof(s->err));

    if (json == NULL) {
        if (s->cfg.status != NULL)      /* else not served here */
            s->code = DPC_E_NOMEM;
        return reject(s, DPC_WIRE_HDR_LEN);
    }
    reply(s, DPC_WS_OK, (uint32_t)n);
    dpc_outq_push_blob(&s->out, json, n);
    set_state(s, DPC_NAT_HEADER);
    return DPC_WIRE_HDR_LEN;
}

static size_t take_header(struct dpc_native *s, const uint8_t *p)
{
    if (dpc_wire_decode_hdr(p, &s->hdr, s->err, sizeof(s->err)) < 0) {
        s->hdr.op = 0;
        return reject(s, DPC_WIRE_HDR_LEN);
    }
    s->counters.requests++;
    if (metrics_op(s->hdr.op) >= 0)
        dpc_metrics_begin(s->cfg.metrics, &s->timer, metrics_op(s->hdr.op));
    if (s->hdr.op == DPC_OP_STATUS) {
        if (s->hdr.length != 0) {
            dpc_errf(s->err, sizeof(s->err), "status with a body");
            return reject(s, DPC_WIRE_HDR_LEN);
        }
        trace(s, "STATUS");
        return take_status(s);
    }
    set_state(s, DPC_NAT_FIXED);
    if (s->hdr.length < dpc_native_want(s)) {
        dpc_errf(s->err, sizeof(s->err), "body of %u bytes too short for "
                 "operation %u", s->hdr.length, s->hdr.op);
        return reject(s, DPC_WIRE_HDR_LEN);
    }
    if ((s->hdr.op == DPC_OP_OPEN || s->hdr.op == DPC_OP_CLOSE ||
         s->hdr.op == DPC_OP_COPY) &&
        s->hdr.length != dpc_native_want(s)) {
        dpc_errf(s->err, sizeof(s->err), "body of %u bytes for operation %u",
                 s->hdr.length, s->hdr.op);
        return reject(s, DPC_WIRE_HDR_LEN);
    }
    return DPC_WIRE_HDR_LEN;
}

static size_t take_open(struct dpc_native *s, const uint8_t *p)
{
    uint32_t slot_bytes = dpc_get_be32(p);
    uint64_t slots = dpc_get_be64(p + 8), size;
    struct native_cache *nc = NULL;
    uint8_t handle[8];
    size_t i;

    if (slot_bytes == 0 || slot_bytes > DPC_WIRE_MAX_SLOT_BYTES ||
        slots == 0 || dpc_mul_u64(slots, slot_bytes, &size) < 0 ||
        dpc_get_be32(p + 4) != 0) {
        dpc_errf(s->err, sizeof(s->err), "bad open: %llu slots of %u bytes",
                 (unsigned long long)slots, slot_bytes);
        return reject(s, FIXED_OPEN);
    }
    for (i = 0; i < DPC_NATIVE_MAX_CACHES && nc == NULL; i++)
        if (s->caches[i].cache == NULL)
            nc = &s->caches[i];
    if (nc == NULL) {
        dpc_errf(s->err, sizeof(s->err), "more than %d caches on one "
                 "connection", DPC_NATIVE_MAX_CACHES);
        return reject(s, FIXED_OPEN);
    }
    set_state(s, DPC_NAT_HEADER);
    if (s->cfg.draining != NULL && *s->cfg.draining) {
        trace(s, "OPEN %llu x %u bytes refused: draining",
              (unsigned long long)slots, slot_bytes);
        dpc_errf(s->err, sizeof(s->err), "draining: open the cache "
                 "elsewhere");
        reply_error(s, DPC_WS_DRAINING);
        s->err[0] = '\0';           /* answered; the connection goes on */
        return FIXED_OPEN;
    }
    nc->cache = dpc_store_open(s->cfg.store, size, s->err, sizeof(s->err));
    if (nc->cache == NULL) {
        if (s->cfg.refused != NULL)
            s->cfg.refused(s->cfg.arg, s->err);
        reply_error(s, DPC_WS_NO_ROOM);
        s->err[0] = '\0';           /* answered; the connection goes on */
        return FIXED_OPEN;
    }
    nc->slot_bytes = slot_bytes;
    nc->slots = slots;
    trace(s, "OPEN %llu x %u bytes in %s", (unsigned long long)slots,
          slot_bytes,
          dpc_cache_tier(nc->cache) == DPC_TIER_RAM ? "memory" : "spill");
    reply(s, DPC_WS_OK, sizeof(handle));
    dpc_put_be64(handle, (uint64_t)(nc - s->caches) + 1);
    dpc_outq_push(&s->out, handle, sizeof(handle));
    return FIXED_OPEN;
}

static struct native_cache *lookup(struct dpc_native *s, uint64_t handle)
{
    if (handle == 0 || handle > DPC_NATIVE_MAX_CACHES ||
        s->caches[handle - 1].cache == NULL) {
        dpc_errf(s->err, sizeof(s->err), "unknown cache handle %llu",
                 (unsigned long long)handle);
        return NULL;
    }
    return &s->caches[handle - 1];
}

static size_t take_close(struct dpc_native *s, const uint8_t *p)
{
    struct native_cache *nc = lookup(s, dpc_get_be64(p));

    if (nc == NULL)
        return reject(s, FIXED_CLOSE);
    trace(s, "CLOSE %llu", (unsigned long long)dpc_get_be64(p));
    dpc_cache_close(nc->cache);
    memset(nc, 0, sizeof(*nc));
    set_state(s, DPC_NAT_HEADER);
    reply(s, DPC_WS_OK, 0);
    return FIXED_CLOSE;
}

/* COPY: refused (answered, the connection goes on) unless both caches
 * have one shape, live in memory and are at most COPY_MAX. */
static size_t take_copy(struct dpc_native *s, const uint8_t *p)
{
    struct native_cache *src = lookup(s, dpc_get_be64(p)), *dst;
    uint64_t size;
    int refused = 1;

    if (src == NULL || (dst = lookup(s, dpc_get_be64(p + 8))) == NULL)
        return reject(s, FIXED_COPY);
    set_state(s, DPC_NAT_HEADER);
    size = src->slots * src->slot_bytes;        /* checked at OPEN */
    if (dst == src || dst->slots != src->slots ||
        dst->slot_bytes != src->slot_bytes)
        dpc_errf(s->err, sizeof(s->err), "copy between caches of other "
                 "shapes");
    else if (dpc_cache_tier(src->cache) != DPC_TIER_RAM ||
             dpc_cache_tier(dst->cache) != DPC_TIER_RAM)
        dpc_errf(s->err, sizeof(s->err), "copy of a spilled cache");
    else if (size > COPY_MAX)
        dpc_errf(s->err, sizeof(s->err), "copy of %llu bytes, more than "
                 "%llu at once", (unsigned long long)size, COPY_MAX);
    else
        refused = 0;
    if (refused) {
        trace(s, "COPY refused: %s", s->err);
        reply_error(s, DPC_WS_REFUSED);
        s->err[0] = '\0';          /* answered; the connection goes on */
        return FIXED_COPY;
    }
    memcpy(dpc_cache_base(dst->cache), dpc_cache_base(src->cache), size);
    dpc_cache_touched(dst->cache, size);
    trace(s, "COPY %llu bytes", (unsigned long long)size);
    reply(s, DPC_WS_OK, 0);
    return FIXED_COPY;
}

static size_t take_slots_fixed(struct dpc_native *s, const uint8_t *p)
{
    uint64_t expect;

    s->cur = lookup(s, dpc_get_be64(p));
    if (s->cur == NULL)
        return reject(s, DPC_WIRE_SLOTS_FIXED);
    s->count = dpc_get_be32(p + 8);
    expect = dpc_wire_slots_body_len(s->hdr.op, s->count,
                                     s->cur->slot_bytes);
    if (expect == 0 || expect != s->hdr.length || dpc_get_be32(p + 12)) {
        dpc_errf(s->err, sizeof(s->err), "%s of %u slots: body of %u bytes, "
                 "expected %llu", s->hdr.op == DPC_OP_PUT ? "PUT" : "GET",
                 s->count, s->hdr.length, (unsigned long long)expect);
        return reject(s, DPC_WIRE_SLOTS_FIXED);
    }
    set_state(s, DPC_NAT_SLOTS);
    return DPC_WIRE_SLOTS_FIXED;
}

static size_t take_fixed(struct dpc_native *s, const uint8_t *p)
{
    switch (s->hdr.op) {
    case DPC_OP_OPEN:
        return take_open(s, p);
    case DPC_OP_CLOSE:
        return take_close(s, p);
    case DPC_OP_COPY:
        return take_copy(s, p);
    default:
        return take_slots_fixed(s, p);
    }
}

static size_t take_slot_list(struct dpc_native *s, const uint8_t *p)
{
    size_t n = (size_t)s->count * 8;

    for (uint32_t i = 0; i < s->count; i++) {
        s->slots[i] = dpc_get_be64(p + 8 * i);
        if (s->slots[i] >= s->cur->slots) {
            dpc_errf(s->err, sizeof(s->err), "slot %llu of a %llu-slot cache",
                     (unsigned long long)s->slots[i],
                     (unsigned long long)s->cur->slots);
            return reject(s, n);
        }
    }
    s->done = 0;
    if (s->hdr.op == DPC_OP_PUT) {
        set_state(s, DPC_NAT_PUT_DATA);
        return n;
    }
    trace(s, "GET %u x %u", s->count, s->cur->slot_bytes);
    reply(s, DPC_WS_OK, s->count * s->cur->slot_bytes);
    set_state(s, DPC_NAT_REPLY);
    return n;
}

/* The cache address of tile byte `off` of the request, and the bytes from
 * there to the end of its slot. */
static uint8_t *slot_span(const struct dpc_native *s, uint64_t off,
                          uint64_t *run)
{
    uint64_t k = off / s->cur->slot_bytes, in = off % s->cur->slot_bytes;

    *run = s->cur->slot_bytes - in;
    return dpc_cache_base(s->cur->cache) + s->slots[k] * s->cur->slot_bytes +
           in;
}

static size_t take_put_data(struct dpc_native *s, const uint8_t *p, size_t n)
{
    uint64_t total = (uint64_t)s->count * s->cur->slot_bytes;
    size_t taken = 0;

    while (taken < n && s->done < total) {
        uint64_t run;
        uint8_t *dst = slot_span(s, s->done, &run);
        size_t k = run < n - taken ? (size_t)run : n - taken;

        memcpy(dst, p + taken, k);
        taken += k;
        s->done += k;
    }
    s->counters.bytes_in += taken;
    dpc_cache_touched(s->cur->cache, taken);
    if (s->done == total) {
        trace(s, "PUT %u x %u", s->count, s->cur->slot_bytes);
        set_state(s, DPC_NAT_HEADER);
        reply(s, DPC_WS_OK, 0);
    }
    return taken;
}

uint8_t *dpc_native_input_span(struct dpc_native *s, size_t *len)
{
    uint64_t run;
    uint8_t *dst;

    if (s->state != DPC_NAT_PUT_DATA || dpc_native_want(s) == 0)
        return NULL;
    dst = slot_span(s, s->done, &run);
    *len = (size_t)run;
    return dst;
}

void dpc_native_input_done(struct dpc_native *s, size_t n)
{
    uint64_t total = (uint64_t)s->count * s->cur->slot_bytes;

    assert(s->state == DPC_NAT_PUT_DATA && n <= total - s->done);
    s->done += n;
    s->counters.bytes_in += n;
    dpc_cache_touched(s->cur->cache, n);
    if (s->done == total) {
        trace(s, "PUT %u x %u", s->count, s->cur->slot_bytes);
        set_state(s, DPC_NAT_HEADER);
        reply(s, DPC_WS_OK, 0);
    }
}

size_t dpc_native_input(struct dpc_native *s, const uint8_t *p, size_t n)
{
    size_t want = dpc_native_want(s);

    if (want == 0 || n < want)
        return 0;
    switch (s->state) {
    case DPC_NAT_PROOF:
        return take_proof(s, p);
    case DPC_NAT_HEADER:
        return take_header(s, p);
    case DPC_NAT_FIXED:
        return take_fixed(s, p);
    case DPC_NAT_SLOTS:
        return take_slot_list(s, p);
    case DPC_NAT_PUT_DATA:
        return take_put_data(s, p, n);
    default:
        return 0;
    }
}

int dpc_native_output(struct dpc_native *s, struct iovec *iov, int max)
{
    int n = dpc_outq_iov(&s->out, iov, max);
    uint64_t off, total;

    if (s->state != DPC_NAT_REPLY)
        return n;
    total = (uint64_t)s->count * s->cur->slot_bytes;
    for (off = s->done; n < max && off < total; n++) {
        uint64_t run;

        iov[n].iov_base = slot_span(s, off, &run);
        iov[n].iov_len = (size_t)run;
        off += run;
    }
    return n;
}

void dpc_native_sent(struct dpc_native *s, size_t n)
{
    n = dpc_outq_sent(&s->out, n);
    if (s->state == DPC_NAT_REPLY) {
        uint64_t total = (uint64_t)s->count * s->cur->slot_bytes;

        assert(n <= total - s->done);
        s->done += n;
        s->counters.bytes_out += n;
        dpc_cache_touched(s->cur->cache, n);
        if (s->done == total)
            set_state(s, DPC_NAT_HEADER);
    }
}

enum dpc_native_state dpc_native_state(const struct dpc_native *s)
{
    return s->state;
}

int dpc_native_finished(const struct dpc_native *s)
{
    return s->state == DPC_NAT_CLOSING && dpc_outq_empty(&s->out);
}

int dpc_native_authenticated(const struct dpc_native *s)
{
    return s->authenticated;
}

const char *dpc_native_error(const struct dpc_native *s)
{
    return s->err;
}

enum dpc_errcode dpc_native_errcode(const struct dpc_native *s)
{
    if (s->err[0] == '\0')
        return DPC_E_OK;
    return s->code != DPC_E_OK ? s->code : DPC_E_PROTOCOL;
}

const struct dpc_session_counters *
dpc_native_counters(const struct dpc_native *s)
{
    return &s->counters;
}

/* The table: thin casts the compiler folds into the calls above. */
static size_t ops_want(const void *s) { return dpc_native_want(s); }
static size_t ops_input(void *s, const uint8_t *p, size_t n)
{
    return dpc_native_input(s, p, n);
}
static uint8_t *ops_input_span(void *s, size_t *len)
{
    return dpc_native_input_span(s, len);
}
static void ops_input_done(void *s, size_t n) { dpc_native_input_done(s, n); }
static int ops_output(void *s, struct iovec *iov, int max)
{
    return dpc_native_output(s, iov, max);
}
static void ops_sent(void *s, size_t n) { dpc_native_sent(s, n); }
static int ops_finished(const void *s) { return dpc_native_finished(s); }
static int ops_authenticated(const void *s)
{
    return dpc_native_authenticated(s);
}
static int ops_idle(const void *s)
{
    return dpc_native_state(s) == DPC_NAT_HEADER;
}
static int ops_handover(const void *s)
{
    (void)s;
    return 0;
}
static const char *ops_hint(const void *s)
{
    (void)s;
    return NULL;
}
static const char *ops_error(const void *s) { return dpc_native_error(s); }
static enum dpc_errcode ops_errcode(const void *s)
{
    return dpc_native_errcode(s);
}
static const struct dpc_session_counters *ops_counters(const void *s)
{
    return dpc_native_counters(s);
}
static void ops_free(void *s) { dpc_native_free(s); }

const struct dpc_proto_ops dpc_native_ops = {
    .name = "native",
    .want = ops_want, .input = ops_input,
    .input_span = ops_input_span, .input_done = ops_input_done,
    .output = ops_output, .sent = ops_sent,
    .finished = ops_finished, .authenticated = ops_authenticated,
    .idle = ops_idle, .handover = ops_handover, .hint = ops_hint,
    .error = ops_error, .errcode = ops_errcode, .counters = ops_counters, .free = ops_free,
};
