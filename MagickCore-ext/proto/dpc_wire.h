/*
 * dpc_wire: magick-dpc's native protocol, encoding and validation only.
 * Pure functions over caller buffers; no I/O, no allocation.
 *
 * Connection set-up, on the same port as stock clients:
 *   server -> nonce (8 or 16 bytes, as for a stock client)
 *   client -> DPC_WIRE_MAGIC (8 bytes; a stock client sends a SipHash here,
 *             equal to the magic with probability 2^-64)
 *   server -> Ns, 32 random bytes
 *   client -> Nc (32 random bytes) ‖ HMAC-SHA256(K, "magick-dpc client" ‖ Ns ‖ Nc)
 *   server -> HMAC-SHA256(K, "magick-dpc server" ‖ Ns ‖ Nc), or closes
 * K = SHA-256("magick-dpc native v1" ‖ secret): both sides prove the
 * secret, which never crosses the wire; proofs are compared in constant time.
 *
 * Then frames, both ways: a 16-byte header in network byte order
 *   u8 version (1), u8 op, u16 status (replies; 0 in requests),
 *   u32 id (chosen by the client, echoed in the reply),
 *   u32 length of the body that follows, u32 reserved (0)
 * Requests are answered in order, so a client may pipeline many.
 *
 *   OPEN    body: u32 slot_bytes, u32 reserved, u64 slots
 *           reply body: u64 handle
 *   PUT     body: u64 handle, u32 count, u32 reserved, count x u64 slot,
 *           then count x slot_bytes of data;  reply: no body
 *   GET     body: u64 handle, u32 count, u32 reserved, count x u64 slot
 *           reply body: count x slot_bytes (never-written slots read as 0)
 *   CLOSE   body: u64 handle;  reply: no body
 *   STATUS  no body;  reply body: the status JSON
 *   COPY    body: u64 source handle, u64 destination handle;  reply: no
 *           body.  Every slot of the source cache into the destination's
 *           (the same shape, both of this connection), on the host: a
 *           pixel cache cloned without its bytes crossing the network.
 *           Added later: servers that take it say "native_copy":true in
 *           their status JSON, and clients ask that first (a server older
 *           than it closes the connection on an unknown operation).
 * A cache is an array of equal slots; the client decides which tile lives
 * in which slot of which host.  A failed request gets a reply with a
 * nonzero status and a body holding a short UTF-8 reason.  A client must
 * treat a status it does not know as a refusal of that request: so
 * DPC_WS_DRAINING, added later, is an error to clients older than it.
 */
#ifndef DPC_WIRE_H
#define DPC_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define DPC_WIRE_VERSION 1
#define DPC_WIRE_MAGIC "MDPCnat1"
#define DPC_WIRE_MAGIC_LEN 8
#define DPC_WIRE_NONCE_LEN 32
#define DPC_WIRE_MAC_LEN 32
#define DPC_WIRE_KEY_LEN 32
#define DPC_WIRE_HDR_LEN 16

#define DPC_WIRE_MAX_SLOT_BYTES (16u << 20)     /* one tile */
#define DPC_WIRE_MAX_COUNT 4096                 /* slots per GET/PUT */
#define DPC_WIRE_MAX_BODY (64u << 20)           /* any one body */
#define DPC_WIRE_MAX_REASON 200

enum dpc_wire_op {
    DPC_OP_OPEN = 1,
    DPC_OP_PUT = 2,
    DPC_OP_GET = 3,
    DPC_OP_CLOSE = 4,
    DPC_OP_STATUS = 5,
    DPC_OP_COPY = 6,
};

enum dpc_wire_status {
    DPC_WS_OK = 0,
    DPC_WS_BAD_REQUEST = 1,     /* malformed: the connection is closed */
    DPC_WS_NO_ROOM = 2,         /* budgets full */
    DPC_WS_NO_CACHE = 3,        /* unknown handle */
    DPC_WS_INTERNAL = 4,
    DPC_WS_DRAINING = 5,        /* OPEN refused: the server is draining (it
                                   serves the caches it has, takes no new
                                   one); place the cache elsewhere.  The
                                   connection goes on. */
    DPC_WS_REFUSED = 6,         /* COPY refused (caches of other shapes,
                                   spilled, or too large to copy at once):
                                   the client moves the bytes itself.  The
                                   connection goes on. */
};

struct dpc_wire_hdr {
    uint8_t version, op;
    uint16_t status;
    uint32_t id, length;
};

/* Fixed part of PUT and GET bodies, before the slot list. */
#define DPC_WIRE_SLOTS_FIXED 16
#define DPC_WIRE_OPEN_LEN 16

void dpc_wire_encode_hdr(uint8_t *p, const struct dpc_wire_hdr *h);
/* Decodes and validates a header (version, op, length limit).  0, or -1
 * with the reason in err. */
int dpc_wire_decode_hdr(const uint8_t *p, struct dpc_wire_hdr *h, char *err,
                        size_t errlen);

/* The body length a PUT/GET of count slots must have, or 0 when count,
 * slot_bytes, or the tiles moved (either way) are out of bounds. */
uint64_t dpc_wire_slots_body_len(enum dpc_wire_op op, uint32_t count,
                                 uint32_t slot_bytes);

/* K from the secret. */
void dpc_wire_derive_key(const char *secret, size_t len,
                         uint8_t key[DPC_WIRE_KEY_LEN]);
/* HMAC-SHA256(K, label ‖ ns ‖ nc); label is "client" or "server". */
void dpc_wire_proof(const uint8_t key[DPC_WIRE_KEY_LEN], const char *label,
                    const uint8_t ns[DPC_WIRE_NONCE_LEN],
                    const uint8_t nc[DPC_WIRE_NONCE_LEN],
                    uint8_t mac[DPC_WIRE_MAC_LEN]);

#endif
