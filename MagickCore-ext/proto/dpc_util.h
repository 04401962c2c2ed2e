/*
 * dpc_util: small helpers shared by the core: error codes and error text
 * into a caller buffer, checked arithmetic, a constant-time compare and
 * the monotonic clock (byte order: dpc_bytes.h).  No state, no allocation; safe from any thread.
 */
#ifndef DPC_UTIL_H
#define DPC_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define DPC_ERRLEN 384

/* What an error was, for code to act on; the text in err says it for
 * people.  Functions documented "0, or a negative dpc_errcode" return
 * -code on failure and hand a callee's negative result up unchanged, so
 * the cause survives the layers; -1 is DPC_E_OTHER, the code of every
 * error that says nothing more (plain dpc_errf). */
enum dpc_errcode {
    DPC_E_OK = 0,
    DPC_E_OTHER = 1,            /* nothing more specific */
    DPC_E_TIMEOUT,              /* a peer did not answer in time */
    DPC_E_NO_ROOM,              /* memory, disk or budget refused a size */
    DPC_E_AUTH,                 /* a proof of the shared secret failed */
    DPC_E_PROTOCOL,             /* a malformed or unexpected frame */
    DPC_E_CLOSED,               /* the peer closed or reset the connection */
    DPC_E_IO,                   /* a system call failed */
    DPC_E_NOMEM,                /* our own allocation failed */
    DPC_E_REFUSED,              /* the peer refused a request (not room) */
    DPC_E_INVALID,              /* a bad argument or setting, found locally */
    DPC_E_DRAINING,             /* the host is draining: place it elsewhere */
    DPC_E_COUNT
};

/* Formats into err (may be NULL); returns -(int)code, so callers can
 * "return dpc_errc(...)".  code must not be DPC_E_OK. */
int dpc_errc(char *err, size_t errlen, enum dpc_errcode code,
             const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* dpc_errc with DPC_E_OTHER: always returns -1. */
int dpc_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The code a "0, or a negative dpc_errcode" result carries: DPC_E_OK for
 * rc >= 0, DPC_E_OTHER for a negative value that is no code. */
static inline enum dpc_errcode dpc_errcode_of(int rc)
{
    if (rc >= 0)
        return DPC_E_OK;
    if (rc <= -DPC_E_COUNT)
        return DPC_E_OTHER;
    return (enum dpc_errcode)-rc;
}

/* A short fixed name for a code ("timeout", "no room", ...), for logs
 * and tests. */
const char *dpc_errcode_name(enum dpc_errcode code);

/* 0 and *out = a * b, or -1 on overflow. */
static inline int dpc_mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}

/* 0 and *out = a + b, or -1 on overflow. */
static inline int dpc_add_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    return __builtin_add_overflow(a, b, out) ? -1 : 0;
}

/* Seconds on the monotonic clock. */
double dpc_now(void);

/* 1 when the n bytes are equal; time depends only on n. */
int dpc_equal_ct(const void *a, const void *b, size_t n);

#endif
