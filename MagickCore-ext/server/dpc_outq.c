/*
 * dpc_outq: see dpc_outq.h.
 */
#include "dpc_outq.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

void dpc_outq_push(struct dpc_outq *q, const void *p, size_t n)
{
    assert(q->small_len + n <= sizeof(q->small));
    memcpy(q->small + q->small_len, p, n);
    q->small_len += n;
}

void dpc_outq_push_blob(struct dpc_outq *q, char *blob, size_t len)
{
    assert(q->blob == NULL);
    q->blob = blob;
    q->blob_len = len;
    q->blob_off = 0;
}

int dpc_outq_empty(const struct dpc_outq *q)
{
    return q->small_len == 0 && q->blob == NULL;
}

int dpc_outq_iov(struct dpc_outq *q, struct iovec *iov, int max)
{
    int n = 0;

    if (n < max && q->small_off < q->small_len) {
        iov[n].iov_base = q->small + q->small_off;
        iov[n++].iov_len = q->small_len - q->small_off;
    }
    if (n < max && q->blob != NULL) {
        iov[n].iov_base = q->blob + q->blob_off;
        iov[n++].iov_len = q->blob_len - q->blob_off;
    }
    return n;
}

size_t dpc_outq_sent(struct dpc_outq *q, size_t n)
{
    size_t k = q->small_len - q->small_off;

    k = k < n ? k : n;
    q->small_off += k;
    n -= k;
    if (q->small_off == q->small_len)
        q->small_off = q->small_len = 0;
    if (q->blob != NULL) {
        k = q->blob_len - q->blob_off;
        k = k < n ? k : n;
        q->blob_off += k;
        n -= k;
        if (q->blob_off == q->blob_len)
            dpc_outq_clear(q);
    }
    return n;
}

void dpc_outq_clear(struct dpc_outq *q)
{
    free(q->blob);
    q->blob = NULL;
    q->blob_len = q->blob_off = 0;
}
