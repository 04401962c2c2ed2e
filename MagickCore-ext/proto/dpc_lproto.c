/*
 * dpc_lproto: see dpc_lproto.h.
 */
#include <string.h>

#include "dpc_lproto.h"
#include "dpc_bytes.h"
#include "dpc_util.h"

static const char *const op_names[DPC_LP_NOPS] = {
    "none", "alloc", "free", "publish", "commit", "attach", "remove", "list",
    "status",
};

static const char *const status_names[DPC_LP_NSTATUS] = {
    "ok", "invalid request", "out of shared memory", "not permitted",
    "no such segment or name", "segment still mapped writable",
    "kernel refused",
};

const char *dpc_lp_op_name(unsigned op)
{
    return op < DPC_LP_NOPS ? op_names[op] : "?";
}

const char *dpc_lp_status_name(unsigned status)
{
    return status < DPC_LP_NSTATUS ? status_names[status] : "?";
}

int dpc_lp_valid_name(const char *name, size_t len)
{
    if (len == 0 || len > DPC_LP_NAME_MAX || name[0] == '.')
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int dpc_lp_parse_hdr(const uint8_t buf[DPC_LP_HDR], int is_reply,
                     struct dpc_lp_hdr *h, char *err, size_t errlen)
{
    uint32_t limit = is_reply ? DPC_LP_MAX_REPLY : DPC_LP_MAX_REQ;

    if (buf[0] != DPC_LP_VERSION)
        return dpc_errf(err, errlen, "local protocol version %u, want %u",
                        buf[0], DPC_LP_VERSION);
    h->op = buf[1];
    h->status = buf[2];
    h->len = dpc_get_le32(buf + 4);
    if (h->op >= DPC_LP_NOPS || (h->op == DPC_LP_NONE && !is_reply))
        return dpc_errf(err, errlen, "unknown op %u", h->op);
    if (h->status >= DPC_LP_NSTATUS || (h->status != 0 && !is_reply))
        return dpc_errf(err, errlen, "bad status %u", h->status);
    if (buf[3] != 0)
        return dpc_errf(err, errlen, "reserved byte set");
    if (h->len > limit)
        return dpc_errf(err, errlen, "body of %u bytes (max %u)", h->len,
                        limit);
    return 0;
}

static int parse_name(const uint8_t *p, size_t len, struct dpc_lp_req *r,
                      char *err, size_t errlen)
{
    if (!dpc_lp_valid_name((const char *)p, len))
        return dpc_errf(err, errlen, "bad name (1-%d of A-Z a-z 0-9 . _ -, "
                        "not starting with '.')", DPC_LP_NAME_MAX);
    memcpy(r->name, p, len);
    r->name[len] = '\0';
    return 0;
}

static int want_len(const struct dpc_lp_hdr *h, uint32_t want, char *err,
                    size_t errlen)
{
    if (h->len != want)
        return dpc_errf(err, errlen, "%s body of %u bytes, want %u",
                        dpc_lp_op_name(h->op), h->len, want);
    return 0;
}

int dpc_lp_parse_req(const struct dpc_lp_hdr *h, const uint8_t *body,
                     struct dpc_lp_req *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    r->op = (enum dpc_lp_op)h->op;
    switch (r->op) {
    case DPC_LP_ALLOC:
        if (want_len(h, 8, err, errlen) < 0)
            return -1;
        r->size = dpc_get_le64(body);
        return r->size != 0 ? 0 : dpc_errf(err, errlen, "size 0");
    case DPC_LP_FREE:
    case DPC_LP_COMMIT:
        if (want_len(h, 8, err, errlen) < 0)
            return -1;
        r->id = dpc_get_le64(body);
        return 0;
    case DPC_LP_PUBLISH:
        if (h->len < 16)
            return want_len(h, 16, err, errlen);
        r->size = dpc_get_le64(body);
        r->ttl_ms = dpc_get_le64(body + 8);
        if (r->size == 0)
            return dpc_errf(err, errlen, "size 0");
        return parse_name(body + 16, h->len - 16, r, err, errlen);
    case DPC_LP_ATTACH:
    case DPC_LP_REMOVE:
        if (h->len < 4)
            return want_len(h, 4, err, errlen);
        r->owner = dpc_get_le32(body);
        return parse_name(body + 4, h->len - 4, r, err, errlen);
    case DPC_LP_LIST:
    case DPC_LP_STATUS:
        return want_len(h, 0, err, errlen);
    default:
        return dpc_errf(err, errlen, "unknown op %u", h->op);
    }
}

void dpc_lp_encode_hdr(uint8_t buf[DPC_LP_HDR], uint8_t op, uint8_t status,
                       uint32_t len)
{
    buf[0] = DPC_LP_VERSION;
    buf[1] = op;
    buf[2] = status;
    buf[3] = 0;
    dpc_put_le32(buf + 4, len);
}

size_t dpc_lp_encode_req(const struct dpc_lp_req *r, uint8_t *buf, size_t cap)
{
    uint8_t *b = buf + DPC_LP_HDR;
    size_t n = 0, namelen = strnlen(r->name, sizeof(r->name));

    if (cap < DPC_LP_HDR + DPC_LP_MAX_REQ)
        return 0;
    switch (r->op) {
    case DPC_LP_ALLOC:
        if (r->size == 0)
            return 0;
        dpc_put_le64(b, r->size);
        n = 8;
        break;
    case DPC_LP_FREE:
    case DPC_LP_COMMIT:
        dpc_put_le64(b, r->id);
        n = 8;
        break;
    case DPC_LP_PUBLISH:
        if (!dpc_lp_valid_name(r->name, namelen) || r->size == 0)
            return 0;
        dpc_put_le64(b, r->size);
        dpc_put_le64(b + 8, r->ttl_ms);
        memcpy(b + 16, r->name, namelen);
        n = 16 + namelen;
        break;
    case DPC_LP_ATTACH:
    case DPC_LP_REMOVE:
        if (!dpc_lp_valid_name(r->name, namelen))
            return 0;
        dpc_put_le32(b, r->owner);
        memcpy(b + 4, r->name, namelen);
        n = 4 + namelen;
        break;
    case DPC_LP_LIST:
    case DPC_LP_STATUS:
        break;
    default:
        return 0;
    }
    dpc_lp_encode_hdr(buf, (uint8_t)r->op, 0, (uint32_t)n);
    return DPC_LP_HDR + n;
}
