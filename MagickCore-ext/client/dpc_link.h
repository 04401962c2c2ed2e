/*
 * dpc_link: one native-protocol connection from a client to one magick-dpc
 * host (its ImageMagick 6 listener).  Requests are pipelined: GET and PUT
 * only queue the request and go on; dpc_link_wait() collects every reply.
 * Reading and writing interleave, so a long pipeline cannot deadlock on
 * full socket buffers.  Every wait has one absolute deadline, timeout_ms
 * from its start, and each poll gets only what is left of it, so a host
 * trickling bytes cannot stretch it: the connection and handshake, the
 * sending of each request, and each reply (counted from the end of the
 * previous one, or from the start of the wait).  Every error names the
 * host and the cause.
 *
 * With a TLS context (dpc_tlsclient), the native protocol runs inside TLS
 * 1.3: the same frames, pipelining and batching, through SSL_read_ex and
 * SSL_write_ex on the same non-blocking socket.
 *
 * Ownership: the caller owns the link and the buffers it passes; a GET's
 * destination must stay valid until dpc_link_wait() returns.  One thread
 * at a time per link: threads sharing one (dpc_pool) use dpc_link_lock().
 */
#ifndef DPC_LINK_H
#define DPC_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "dpc_tlsclient.h"
#include "dpc_util.h"
#include "dpc_wire.h"

struct dpc_link;

/* Connections refused outright (nothing listens) are retried this long. */
#define DPC_LINK_REFUSED_RETRY_MS 1000

/* Connects and runs the mutual proof, all within timeout_ms.  A connection
 * the server closes or resets before the client's proof (the server is
 * busy or at a limit) is tried again after a pause (dpc_net_backoff_ms)
 * until timeout_ms runs out; one refused outright, for up to
 * DPC_LINK_REFUSED_RETRY_MS.  NULL with the reason in err and its code in
 * *code (may be NULL): DPC_E_CLOSED (closed during the handshake),
 * DPC_E_REFUSED, DPC_E_TIMEOUT, DPC_E_AUTH, DPC_E_IO, ...
 *
 * Every int call below returns 0, or a negative dpc_errcode with the
 * reason in err. */
struct dpc_link *dpc_link_connect(const char *host, unsigned port,
                                  const uint8_t key[DPC_WIRE_KEY_LEN],
                                  unsigned timeout_ms,
                                  enum dpc_errcode *code, char *err,
                                  size_t errlen);
/* The same over TLS with tls (borrowed; it must outlive the link), or in
 * plaintext when tls is NULL.  A plaintext link to a server that requires
 * TLS fails with DPC_E_REFUSED and says so; a TLS link to one that does
 * not accept TLS likewise. */
struct dpc_link *dpc_link_connect_tls(const char *host, unsigned port,
                                      const uint8_t key[DPC_WIRE_KEY_LEN],
                                      struct dpc_tlsclient *tls,
                                      unsigned timeout_ms,
                                      enum dpc_errcode *code, char *err,
                                      size_t errlen);
/* The same, dialing addr (a numeric address host resolves to; NULL: host
 * itself) while TLS still checks the certificate against host.  The
 * link's name is then "ADDR:PORT (HOST)" ("[ADDR]:PORT" for IPv6). */
struct dpc_link *dpc_link_connect_at(const char *host, const char *addr,
                                     unsigned port,
                                     const uint8_t key[DPC_WIRE_KEY_LEN],
                                     struct dpc_tlsclient *tls,
                                     unsigned timeout_ms,
                                     enum dpc_errcode *code, char *err,
                                     size_t errlen);
/* The handshake of dpc_link_connect_at over fd, a socket connected to host
 * (at addr) by the caller (dpc_net_dial_start), once, within timeout_ms:
 * for a host tried again in the background.  Takes fd (closed on
 * failure); NULL with the reason in err and its code in *code. */
struct dpc_link *dpc_link_connect_fd(int fd, const char *host,
                                     const char *addr, unsigned port,
                                     const uint8_t key[DPC_WIRE_KEY_LEN],
                                     struct dpc_tlsclient *tls,
                                     unsigned timeout_ms,
                                     enum dpc_errcode *code, char *err,
                                     size_t errlen);
void dpc_link_free(struct dpc_link *l);
const char *dpc_link_name(const struct dpc_link *l);
/* The socket, for callers that report it; the link still owns it. */
int dpc_link_fd(const struct dpc_link *l);
/* 1 once the connection is unusable (lost, timed out, out of step). */
int dpc_link_broken(const struct dpc_link *l);
/* Callers sharing a link hold its lock from their first request to the
 * end of their dpc_link_wait(). */
void dpc_link_lock(struct dpc_link *l);
void dpc_link_unlock(struct dpc_link *l);

/* Synchronous: a cache of slots x slot_bytes.  -DPC_E_NO_ROOM when the
 * host refused it for lack of room (the reason, e.g. "no room", in err),
 * -DPC_E_DRAINING when the host is draining (it takes no new cache; the
 * link goes on serving the caches it has). */
int dpc_link_open(struct dpc_link *l, uint32_t slot_bytes, uint64_t slots,
                  uint64_t *handle, char *err, size_t errlen);
int dpc_link_close_cache(struct dpc_link *l, uint64_t handle, char *err,
                         size_t errlen);
/* Queues a COPY of every slot of cache src into cache dst, on the host
 * (both opened on this link, of one shape); dpc_link_wait() then fails
 * with DPC_E_REFUSED when the host declined (its reason in err; the link
 * goes on).  -DPC_E_REFUSED at once when the host is older than COPY:
 * asked once per link, by a synchronous status, before a first COPY. */
int dpc_link_copy(struct dpc_link *l, uint64_t src, uint64_t dst, char *err,
                  size_t errlen);
/* Synchronous: the server's status JSON; the caller frees *json. */
int dpc_link_status(struct dpc_link *l, char **json, char *err,
                    size_t errlen);

/* Where a slot's bytes lie in the caller's memory: rows of run bytes,
 * stride apart, from the slot's pointer (a tile inside a region buffer).
 * NULL: each slot is slot_bytes in a row.  run must divide slot_bytes. */
struct dpc_link_rows {
    uint32_t run;
    uint64_t stride;
};

/* Queues a GET of count slots into dst[i] (slot_bytes each). */
int dpc_link_get(struct dpc_link *l, uint64_t handle, uint32_t slot_bytes,
                 uint32_t count, const uint64_t *slots, uint8_t *const *dst,
                 const struct dpc_link_rows *rows, char *err, size_t errlen);
/* Queues a PUT of count slots from src[i]; src is sent before return.  A
 * refused PUT breaks the link: the host no longer holds what the client
 * believes, and the reply may be collected by another cache's wait. */
int dpc_link_put(struct dpc_link *l, uint64_t handle, uint32_t slot_bytes,
                 uint32_t count, const uint64_t *slots,
                 const uint8_t *const *src, const struct dpc_link_rows *rows,
                 char *err, size_t errlen);
/* Waits for every queued reply.  A negative dpc_errcode with the first
 * failure in err: DPC_E_NO_ROOM when the host had no room for it,
 * DPC_E_DRAINING when it is draining, DPC_E_REFUSED for other refusals,
 * DPC_E_TIMEOUT, DPC_E_CLOSED, ... for a lost connection. */
int dpc_link_wait(struct dpc_link *l, char *err, size_t errlen);
/* The same, but leaves the replies of the newest `keep` requests owed
 * (replies come in order: PUTs queued after the GETs a caller waits for
 * are acknowledged later, by a later wait). */
int dpc_link_wait_keep(struct dpc_link *l, size_t keep, char *err,
                       size_t errlen);
/* Requests queued on the link so far (wraps): the difference of two
 * calls counts the requests queued in between. */
uint32_t dpc_link_queued(const struct dpc_link *l);

#endif
