/*
 * dpc_proto: see dpc_proto.h.
 */
#include "dpc_proto.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "dpc_util.h"

void dpc_proto_trace(dpc_proto_trace_fn trace, void *arg, const char *fmt,
                     ...)
{
    char msg[256];
    va_list ap;

    if (trace == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    trace(arg, msg);
}

char *dpc_proto_status(dpc_proto_status_fn status, void *arg, size_t *len,
                       char *err, size_t errlen)
{
    char *json;

    if (status == NULL) {
        dpc_errf(err, errlen, "status not served here");
        return NULL;
    }
    json = malloc(DPC_PROTO_STATUS_MAX);
    if (json == NULL) {
        dpc_errf(err, errlen, "out of memory for status");
        return NULL;
    }
    *len = status(arg, json, DPC_PROTO_STATUS_MAX);
    return json;
}
