/*
 * dpc_session: one stock-protocol connection as a state machine with no
 * I/O.  The caller feeds it received bytes and writes out what it asks to
 * send; every byte is validated here before it touches a cache.
 *
 *   AUTH --proof ok--> HEADER --'o'--> OPEN ---------> HEADER
 *                        |  \--'r','R'--> REGION --> REPLY --> HEADER
 *                        |   \-'w','W'--> REGION --> PAYLOAD -> HEADER
 *                        |            empty region: REGION --> HEADER
 *                        |--'s','D'--> HEADER (the status JSON queued)
 *                        \--'d', error, bad key--> CLOSING
 *
 * Ownership: the session borrows the store, the SipHash key and the
 * callbacks' argument, and owns the one cache a connection may open; it
 * closes that cache when it is freed.  Single-threaded.
 */
#ifndef DPC_SESSION_H
#define DPC_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "dpc_metrics.h"
#include "dpc_proto.h"
#include "dpc_stock.h"
#include "dpc_store.h"
#include "dpc_util.h"

enum dpc_session_state {
    DPC_SESS_AUTH,          /* nonce sent; waiting for the client's proof */
    DPC_SESS_HEADER,        /* waiting for command byte + session key */
    DPC_SESS_OPEN,          /* waiting for the open payload */
    DPC_SESS_REGION,        /* waiting for a 40-byte region */
    DPC_SESS_PAYLOAD,       /* copying a write's bytes into the cache */
    DPC_SESS_REPLY,         /* sending a read's bytes; takes no input */
    DPC_SESS_CLOSING,       /* sending what is queued, then close */
    DPC_SESS_NATIVE,        /* the client speaks the native protocol: hand
                               the connection over to a dpc_native */
    DPC_SESS_NSTATES
};

struct dpc_session_cfg {
    enum dpc_stock_flavor flavor;
    const uint8_t *sipkey;                  /* 16 bytes, borrowed */
    int allow_native;                       /* accept DPC_WIRE_MAGIC */
    struct dpc_store *store;                /* borrowed */
    /* Writes the status JSON into buf (NUL-terminated); returns its length.
     * NULL: 's' is refused. */
    dpc_proto_status_fn status;
    /* Request trace; NULL to skip.  msg is only valid during the call. */
    dpc_proto_trace_fn trace;
    /* Nonzero while the server drains (borrowed; NULL: never): an 'o' is
     * answered with the failure reply and a close, which a stock client
     * reports as an error ("unable to open pixel cache"). */
    const int *draining;
    /* 'D' (drain): starts the server's drain, then answers as 's' does.
     * NULL: 'D' is refused like an unknown command. */
    void (*drain)(void *arg);
    /* Request latencies go here (borrowed); NULL: not timed. */
    struct dpc_metrics *metrics;
    void *arg;
};

struct dpc_session;

/* nonce: dpc_stock_nonce_len(cfg->flavor) fresh random bytes; the session
 * queues it as its first output.  NULL on allocation failure. */
struct dpc_session *dpc_session_new(const struct dpc_session_cfg *cfg,
                                    const uint8_t *nonce);
void dpc_session_free(struct dpc_session *s);

/* Bytes needed before dpc_session_input() can progress; 0 when the session
 * takes no input now (sending a reply, or closing). */
size_t dpc_session_want(const struct dpc_session *s);
/* Takes bytes from p.  n must be >= dpc_session_want(), except while a
 * write's payload is arriving, when any n > 0 is taken.  Returns the bytes
 * consumed. */
size_t dpc_session_input(struct dpc_session *s, const uint8_t *p, size_t n);

/* While a write's payload is arriving: where its next bytes go in the
 * cache and how many fit there (*len), so they can be received in place;
 * NULL otherwise.  dpc_session_input_done() takes n of them. */
uint8_t *dpc_session_input_span(struct dpc_session *s, size_t *len);
void dpc_session_input_done(struct dpc_session *s, size_t n);

/* Fills up to max iovecs with bytes to send next; returns how many. */
int dpc_session_output(struct dpc_session *s, struct iovec *iov, int max);
/* n bytes of that output were sent. */
void dpc_session_sent(struct dpc_session *s, size_t n);

enum dpc_session_state dpc_session_state(const struct dpc_session *s);
const char *dpc_session_state_name(enum dpc_session_state st);
/* 1 once closing and all output sent: the connection can be closed. */
int dpc_session_finished(const struct dpc_session *s);
int dpc_session_authenticated(const struct dpc_session *s);
/* For a session closed while waiting for the client's proof on an IM6
 * listener: what the silence may mean (an ImageMagick 7 client), else
 * NULL. */
const char *dpc_session_hint(const struct dpc_session *s);
/* Why the session is closing; "" after a clean destroy.  A wrong proof is
 * "authentication failed", with a hint after a colon when the proof is an
 * ImageMagick 6 client's answer to an IM7 nonce. */
const char *dpc_session_error(const struct dpc_session *s);
/* The code of that error: DPC_E_OK when there is none, DPC_E_AUTH for a
 * wrong proof, DPC_E_NO_ROOM when the store refused the cache,
 * DPC_E_DRAINING when the open came while the server drains, else
 * DPC_E_PROTOCOL (a request out of place or malformed). */
enum dpc_errcode dpc_session_errcode(const struct dpc_session *s);
/* Requests, and payload bytes of w/W (in) and r/R (out). */
const struct dpc_session_counters *
dpc_session_counters(const struct dpc_session *s);
/* This protocol's entry in a connection's table (dpc_proto.h). */
extern const struct dpc_proto_ops dpc_session_ops;

/* The open cache, or NULL. */
const struct dpc_cache *dpc_session_cache(const struct dpc_session *s);

#endif
