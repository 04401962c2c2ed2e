/*
 * dpc_outq: the small replies a protocol session queues (status words,
 * nonces, frame headers, short reasons) and at most one owned blob (a
 * status JSON), in the order they go out.  Bulk data (pixels, tiles) is not
 * copied here: sessions hand it out straight from the cache after these.
 * No I/O; single-threaded.
 */
#ifndef DPC_OUTQ_H
#define DPC_OUTQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define DPC_OUTQ_SMALL 256

struct dpc_outq {
    uint8_t small[DPC_OUTQ_SMALL];
    size_t small_len, small_off;
    char *blob;                         /* owned; NULL when none */
    size_t blob_len, blob_off;
};

/* Appends n bytes; the caller never queues more than DPC_OUTQ_SMALL. */
void dpc_outq_push(struct dpc_outq *q, const void *p, size_t n);
/* Queues blob (malloc'd, taken over) after the small bytes. */
void dpc_outq_push_blob(struct dpc_outq *q, char *blob, size_t len);
/* 1 when nothing is queued. */
int dpc_outq_empty(const struct dpc_outq *q);
/* Fills up to max iovecs with what is queued; returns how many. */
int dpc_outq_iov(struct dpc_outq *q, struct iovec *iov, int max);
/* n bytes went out; returns the part of n beyond the queue (bulk data). */
size_t dpc_outq_sent(struct dpc_outq *q, size_t n);
/* Frees the blob, if any. */
void dpc_outq_clear(struct dpc_outq *q);

#endif
