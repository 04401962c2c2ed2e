/*
 * dpc_util: see dpc_util.h.
 */
#include "dpc_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static const char *const code_names[DPC_E_COUNT] = {
    [DPC_E_OK] = "ok",
    [DPC_E_OTHER] = "error",
    [DPC_E_TIMEOUT] = "timeout",
    [DPC_E_NO_ROOM] = "no room",
    [DPC_E_AUTH] = "authentication",
    [DPC_E_PROTOCOL] = "protocol",
    [DPC_E_CLOSED] = "connection closed",
    [DPC_E_IO] = "I/O",
    [DPC_E_NOMEM] = "out of memory",
    [DPC_E_REFUSED] = "refused",
    [DPC_E_INVALID] = "invalid",
    [DPC_E_DRAINING] = "draining",
};

static int verrc(char *err, size_t errlen, enum dpc_errcode code,
                 const char *fmt, va_list ap)
{
    if (code <= DPC_E_OK || code >= DPC_E_COUNT)
        code = DPC_E_OTHER;
    if (err != NULL && errlen > 0)
        vsnprintf(err, errlen, fmt, ap);
    return -(int)code;
}

int dpc_errc(char *err, size_t errlen, enum dpc_errcode code,
             const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = verrc(err, errlen, code, fmt, ap);
    va_end(ap);
    return rc;
}

int dpc_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = verrc(err, errlen, DPC_E_OTHER, fmt, ap);
    va_end(ap);
    return rc;
}

const char *dpc_errcode_name(enum dpc_errcode code)
{
    if (code < DPC_E_OK || code >= DPC_E_COUNT)
        return "error";
    return code_names[code];
}

int dpc_equal_ct(const void *a, const void *b, size_t n)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t diff = 0;

    for (size_t i = 0; i < n; i++)
        diff |= x[i] ^ y[i];
    return diff == 0;
}

double dpc_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
