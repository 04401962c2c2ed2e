/*
 * dpc_listen: one listening socket (TCP or Unix) on the server's event
 * loop, the same for the TCP listeners (dpc_server) and the Unix socket
 * (dpc_local): accepted sockets go to the owner's callback, non-blocking
 * and close-on-exec.  When accept fails for a reason that does not pass
 * (out of descriptors, EMFILE or ENFILE, or memory), the listener stops
 * accepting for a second rather than spin on a socket that stays readable
 * (the listen backlog holds the clients meanwhile), says so within the
 * owner's log budget, and tells the owner (which may pause its other
 * listeners too: descriptors run out for the whole process).  EINTR,
 * EAGAIN and ECONNABORTED are not failures.
 *
 * Ownership: takes the listening descriptor and closes it at free;
 * borrows the event base, the log budget and the callbacks' argument.
 * Single-threaded.
 */
#ifndef DPC_LISTEN_H
#define DPC_LISTEN_H

#include <stddef.h>
#include <sys/socket.h>

#include "dpc_log.h"

struct event_base;

struct dpc_listen_cfg {
    const char *name;               /* in log lines; copied */
    /* A new connection: fd is the owner's to keep or close. */
    void (*accept)(void *arg, int fd, struct sockaddr *sa, int salen);
    /* The listener paused (1) after an accept error, or resumed a second
     * later (0).  May be NULL. */
    void (*paused)(void *arg, int paused);
    void *arg;
    struct dpc_log_limit *log;      /* budget for accept-error lines */
};

struct dpc_listen;

/* Listens on fd (bound and listening already; ownership taken, closed on
 * failure too), enabled.  NULL with the reason in err. */
struct dpc_listen *dpc_listen_new(struct event_base *base, int fd,
                                  const struct dpc_listen_cfg *cfg, char *err,
                                  size_t errlen);
/* The owner's wish: accept (1) or leave new clients in the backlog (0).
 * While paused after an error the listener stays off either way, and
 * follows this wish when the pause ends. */
void dpc_listen_enable(struct dpc_listen *l, int on);
/* 1 while paused after an accept error. */
int dpc_listen_paused(const struct dpc_listen *l);
void dpc_listen_free(struct dpc_listen *l);

#endif
