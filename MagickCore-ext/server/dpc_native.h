/*
 * dpc_native: one connection speaking magick-dpc's native protocol (see
 * dpc_wire.h), as a state machine with no I/O, in the same shape as
 * dpc_session (both are driven through a struct dpc_proto_ops,
 * dpc_proto.h): the caller feeds received bytes and sends what it is given.
 * A connection starts as a stock dpc_session; when the client answers the
 * nonce with DPC_WIRE_MAGIC the connection continues here.
 *
 *   PROOF --ok--> HEADER --OPEN/CLOSE/PUT/GET--> FIXED --PUT/GET--> SLOTS
 *                   ^  ^------------------------------'               |
 *                   |------ REPLY (GET data) <------------------------+
 *                   '------ PUT_DATA <--------------------------------'
 *   any malformed frame, bad proof --> CLOSING
 *
 * Ownership: borrows the store, the key and the callbacks' argument; owns
 * the caches it opens and closes them when freed.  Single-threaded.
 */
#ifndef DPC_NATIVE_H
#define DPC_NATIVE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "dpc_metrics.h"
#include "dpc_proto.h"
#include "dpc_store.h"
#include "dpc_wire.h"

#define DPC_NATIVE_MAX_CACHES 64        /* open caches per connection */

enum dpc_native_state {
    DPC_NAT_PROOF,          /* Ns sent; waiting for Nc and the client's proof */
    DPC_NAT_HEADER,
    DPC_NAT_FIXED,          /* the fixed part of a body */
    DPC_NAT_SLOTS,          /* a PUT's or GET's slot list */
    DPC_NAT_PUT_DATA,       /* copying a PUT's tiles into the cache */
    DPC_NAT_REPLY,          /* sending a GET's tiles */
    DPC_NAT_CLOSING,
    DPC_NAT_NSTATES
};

struct dpc_native_cfg {
    const uint8_t *key;                     /* DPC_WIRE_KEY_LEN, borrowed */
    struct dpc_store *store;                /* borrowed */
    dpc_proto_status_fn status;
    dpc_proto_trace_fn trace;
    /* An OPEN the store had no room for (answered; the connection goes
     * on), with the store's reason.  May be NULL. */
    void (*refused)(void *arg, const char *why);
    /* Nonzero while the server drains (borrowed; NULL: never): an OPEN is
     * answered DPC_WS_DRAINING and the connection goes on serving the
     * caches it has. */
    const int *draining;
    /* Request latencies go here (borrowed); NULL: not timed. */
    struct dpc_metrics *metrics;
    void *arg;
};

struct dpc_native;

/* ns: DPC_WIRE_NONCE_LEN fresh random bytes, queued as the first output.
 * NULL on allocation failure. */
struct dpc_native *dpc_native_new(const struct dpc_native_cfg *cfg,
                                  const uint8_t *ns);
void dpc_native_free(struct dpc_native *s);

size_t dpc_native_want(const struct dpc_native *s);
size_t dpc_native_input(struct dpc_native *s, const uint8_t *p, size_t n);
/* While a PUT's tiles are arriving: where the next bytes go (see
 * dpc_session_input_span()). */
uint8_t *dpc_native_input_span(struct dpc_native *s, size_t *len);
void dpc_native_input_done(struct dpc_native *s, size_t n);
int dpc_native_output(struct dpc_native *s, struct iovec *iov, int max);
void dpc_native_sent(struct dpc_native *s, size_t n);

enum dpc_native_state dpc_native_state(const struct dpc_native *s);
int dpc_native_finished(const struct dpc_native *s);
int dpc_native_authenticated(const struct dpc_native *s);
const char *dpc_native_error(const struct dpc_native *s);
/* Its code, as dpc_session_errcode's (DPC_E_NOMEM when the status reply
 * could not be built). */
enum dpc_errcode dpc_native_errcode(const struct dpc_native *s);
const struct dpc_session_counters *
dpc_native_counters(const struct dpc_native *s);

/* This protocol's entry in a connection's table (dpc_proto.h). */
extern const struct dpc_proto_ops dpc_native_ops;

#endif
