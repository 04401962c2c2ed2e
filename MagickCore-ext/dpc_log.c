/*
 * dpc_log: see dpc_log.h.  Each line is written with one fprintf so lines
 * from concurrent processes sharing stderr do not interleave mid-line.
 */
#include "dpc_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

static enum dpc_log_level current = DPC_LOG_INFO;

static const char *const names[] = { "error", "warning", "info", "trace" };

void dpc_log_set_level(enum dpc_log_level level)
{
    current = level;
}

int dpc_log_enabled(enum dpc_log_level level)
{
    return level <= current;
}

void dpc_log(enum dpc_log_level level, const char *fmt, ...)
{
    char stamp[32], msg[1024];
    struct timeval tv;
    struct tm tm;
    va_list ap;

    if (!dpc_log_enabled(level))
        return;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s.%03ldZ magick-dpc[%s]: %s\n", stamp,
            (long)tv.tv_usec / 1000, names[level], msg);
}
