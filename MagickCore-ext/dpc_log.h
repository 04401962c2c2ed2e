/*
 * dpc_log: the server's log, one line per event on stderr with a UTC
 * timestamp.  The level is process-wide and set once at start-up.
 */
#ifndef DPC_LOG_H
#define DPC_LOG_H

enum dpc_log_level {
    DPC_LOG_ERROR,
    DPC_LOG_WARN,
    DPC_LOG_INFO,
    DPC_LOG_TRACE                   /* -v: every request */
};

void dpc_log_set_level(enum dpc_log_level level);
int dpc_log_enabled(enum dpc_log_level level);
void dpc_log(enum dpc_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
