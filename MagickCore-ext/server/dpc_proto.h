/*
 * dpc_proto: what the stock (dpc_session) and native (dpc_native) protocol
 * sessions share: their request counters, request tracing and the status
 * reply's JSON, and one interface to both, struct dpc_proto_ops, through
 * which a connection drives whichever protocol its client speaks.  A
 * connection picks the table once the protocol is known (stock at accept,
 * native after the native magic), as memcached swaps its parser.
 *
 * No I/O, no state of its own; single-threaded like the sessions.
 */
#ifndef DPC_PROTO_H
#define DPC_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "dpc_util.h"

/* The status JSON's largest size (a status reply's one allocation). */
#define DPC_PROTO_STATUS_MAX (60 * 1024)

/* A session's counters (named for the stock session, which had them
 * first; the native session counts the same way). */
struct dpc_session_counters {
    uint64_t requests;
    uint64_t bytes_in, bytes_out;           /* payload bytes moved */
};

/* Writes the status JSON into buf (NUL-terminated); returns its length. */
typedef size_t (*dpc_proto_status_fn)(void *arg, char *buf, size_t len);
/* A request trace line; msg is only valid during the call. */
typedef void (*dpc_proto_trace_fn)(void *arg, const char *msg);

/* Formats a trace line and hands it to trace(arg, ...); nothing (not even
 * the formatting) when trace is NULL. */
void dpc_proto_trace(dpc_proto_trace_fn trace, void *arg, const char *fmt,
                     ...) __attribute__((format(printf, 3, 4)));

/* The status JSON in a new buffer the caller owns (free()), its length in
 * *len.  NULL with the reason in err when status is NULL (not served
 * here) or out of memory. */
char *dpc_proto_status(dpc_proto_status_fn status, void *arg, size_t *len,
                       char *err, size_t errlen);

/* One protocol session, driven through its table.  Every entry takes the
 * session the table belongs to (a struct dpc_session or dpc_native); see
 * dpc_session.h for what each call means: both protocols keep the same
 * contract. */
struct dpc_proto_ops {
    const char *name;                       /* "stock", "native" */
    size_t (*want)(const void *s);
    size_t (*input)(void *s, const uint8_t *p, size_t n);
    uint8_t *(*input_span)(void *s, size_t *len);
    void (*input_done)(void *s, size_t n);
    int (*output)(void *s, struct iovec *iov, int max);
    void (*sent)(void *s, size_t n);
    int (*finished)(const void *s);
    int (*authenticated)(const void *s);
    /* 1 between requests, where a close is a normal end */
    int (*idle)(const void *s);
    /* 1 when the client asked for another protocol: the caller replaces
     * this session (the stock session seeing the native magic) */
    int (*handover)(const void *s);
    /* a hint about a handshake that went silent, or NULL */
    const char *(*hint)(const void *s);
    const char *(*error)(const void *s);
    enum dpc_errcode (*errcode)(const void *s);
    const struct dpc_session_counters *(*counters)(const void *s);
    void (*free)(void *s);
};

#endif
