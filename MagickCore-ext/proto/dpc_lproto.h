/*
 * dpc_lproto: the local protocol spoken over magick-dpc's Unix socket, the
 * codec only (no I/O).  A client asks the server for shared-memory
 * segments; replies that grant one carry its descriptor (SCM_RIGHTS) with
 * the header.  Who the client is comes from the kernel (SO_PEERCRED), never
 * from these bytes.
 *
 * Every frame is an 8-byte header then a body, integers little-endian:
 *
 *   u8 version (1) | u8 op | u8 status (0 in requests) | u8 0 | u32 body_len
 *
 * Request bodies (lengths exact):
 *   ALLOC    u64 size                      a private segment for a cache
 *   FREE     u64 id
 *   PUBLISH  u64 size, u64 ttl_ms, name    a segment to be named at COMMIT
 *   COMMIT   u64 id                        seal it read-only, publish the name
 *   ATTACH   u32 owner_uid, name           DPC_LP_SELF: the caller's uid
 *   REMOVE   u32 owner_uid, name
 *   LIST, STATUS                           empty
 * Reply bodies: ALLOC, PUBLISH and ATTACH: u64 id, u64 size, plus the
 * descriptor; LIST and STATUS: JSON; any error: its reason as text.
 */
#ifndef DPC_LPROTO_H
#define DPC_LPROTO_H

#include <stddef.h>
#include <stdint.h>

#define DPC_LP_VERSION 1
#define DPC_LP_HDR 8
#define DPC_LP_MAX_REQ 256              /* request body */
#define DPC_LP_MAX_REPLY (4u << 20)     /* reply body (LIST, STATUS) */
#define DPC_LP_NAME_MAX 128
#define DPC_LP_SELF 0xffffffffu
#define DPC_LP_GRANT_LEN 16             /* id + size */

enum dpc_lp_op {
    DPC_LP_NONE = 0,                    /* unsolicited: refusal at connect */
    DPC_LP_ALLOC,
    DPC_LP_FREE,
    DPC_LP_PUBLISH,
    DPC_LP_COMMIT,
    DPC_LP_ATTACH,
    DPC_LP_REMOVE,
    DPC_LP_LIST,
    DPC_LP_STATUS,
    DPC_LP_NOPS                         /* sentinel */
};

enum dpc_lp_status {
    DPC_LP_OK = 0,
    DPC_LP_EINVAL,                      /* malformed or out of range */
    DPC_LP_ENOSPC,                      /* the shared-memory budget is spent */
    DPC_LP_EPERM,                       /* uid not allowed, or not the owner */
    DPC_LP_ENOENT,                      /* no such segment or name */
    DPC_LP_EBUSY,                       /* still mapped writable at COMMIT */
    DPC_LP_EIO,                         /* the kernel refused (memfd, seals) */
    DPC_LP_NSTATUS
};

struct dpc_lp_req {
    enum dpc_lp_op op;
    uint64_t size;                      /* ALLOC, PUBLISH */
    uint64_t id;                        /* FREE, COMMIT */
    uint64_t ttl_ms;                    /* PUBLISH; 0: until removed */
    uint32_t owner;                     /* ATTACH, REMOVE */
    char name[DPC_LP_NAME_MAX + 1];     /* PUBLISH, ATTACH, REMOVE */
};

struct dpc_lp_hdr {
    uint8_t op, status;
    uint32_t len;
};

/* Checks version, op, status and the body length against its limit (the
 * request limit unless is_reply).  0, or -1 with the reason. */
int dpc_lp_parse_hdr(const uint8_t buf[DPC_LP_HDR], int is_reply,
                     struct dpc_lp_hdr *h, char *err, size_t errlen);
/* Decodes a request body whose header h passed dpc_lp_parse_hdr. */
int dpc_lp_parse_req(const struct dpc_lp_hdr *h, const uint8_t *body,
                     struct dpc_lp_req *r, char *err, size_t errlen);
/* Encodes header and body; returns the length, 0 if r is invalid or cap is
 * short (cap >= DPC_LP_HDR + DPC_LP_MAX_REQ always suffices). */
size_t dpc_lp_encode_req(const struct dpc_lp_req *r, uint8_t *buf, size_t cap);
void dpc_lp_encode_hdr(uint8_t buf[DPC_LP_HDR], uint8_t op, uint8_t status,
                       uint32_t len);
/* 1 when name is 1..DPC_LP_NAME_MAX of [A-Za-z0-9._-], not starting '.'. */
int dpc_lp_valid_name(const char *name, size_t len);
const char *dpc_lp_op_name(unsigned op);
const char *dpc_lp_status_name(unsigned status);

#endif
