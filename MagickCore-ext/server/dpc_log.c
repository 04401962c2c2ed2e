/*
 * dpc_log: see dpc_log.h.  Each line is written with one fprintf so lines
 * from concurrent processes sharing stderr do not interleave mid-line.
 */
#include "dpc_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

#include "dpc_util.h"

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

void dpc_log_limited(struct dpc_log_limit *lim, enum dpc_log_level level,
                     const char *fmt, ...)
{
    double now = dpc_now();
    char msg[1024];
    va_list ap;

    if (!dpc_log_enabled(level))
        return;
    if (now - lim->second >= 1.0) {
        lim->second = now;
        lim->lines = 0;
    }
    if (lim->lines >= DPC_LOG_LINES_PER_SECOND) {
        lim->left_out++;
        return;
    }
    lim->lines++;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (lim->left_out == 0) {
        dpc_log(level, "%s", msg);
        return;
    }
    dpc_log(level, "%s [%llu similar lines not logged]", msg,
            lim->left_out);
    lim->left_out = 0;
}

void dpc_log_limited_flush(struct dpc_log_limit *lim, enum dpc_log_level level,
                           const char *what)
{
    if (lim->left_out == 0 || dpc_now() - lim->second < 1.0)
        return;
    dpc_log(level, "%llu more %s not logged", lim->left_out, what);
    lim->left_out = 0;
}
