/*
 * dpc_log: the server's log, one line per event on stderr with a UTC
 * timestamp.  The level is process-wide and set once at start-up; a
 * dpc_log_limit belongs to its caller's thread.
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

/* A budget of lines a second for one kind of event, so that a flood of
 * refusals cannot flood the log: lines past the budget are counted, and
 * the next line logged says how many were left out.  Zero-initialise. */
#define DPC_LOG_LINES_PER_SECOND 10

struct dpc_log_limit {
    double second;                  /* start of the current second */
    unsigned lines;                 /* logged in it */
    unsigned long long left_out;    /* since the last line logged */
};

void dpc_log_limited(struct dpc_log_limit *lim, enum dpc_log_level level,
                     const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Once the second is over, says how many lines of this kind (what, e.g.
 * "refused connections") were left out, if any: call it periodically so a
 * flood that stops is still counted in the log. */
void dpc_log_limited_flush(struct dpc_log_limit *lim, enum dpc_log_level level,
                           const char *what);

#endif
