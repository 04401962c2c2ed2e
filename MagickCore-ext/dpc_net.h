/*
 * dpc_net: the client side's socket helpers: connect with a deadline, and
 * exact transfers with a deadline.  Errors name the peer and the cause.
 * No state; safe from any thread.
 */
#ifndef DPC_NET_H
#define DPC_NET_H

#include <stddef.h>

/* A non-blocking TCP_NODELAY socket connected to host:port, trying each
 * address in turn, each within timeout_ms.  -1 with the reason in err. */
int dpc_net_dial(const char *host, unsigned port, unsigned timeout_ms,
                 char *err, size_t errlen);

/* Sends (out) or receives exactly n bytes within timeout_ms of silence.
 * -1 with "NAME: cause" in err (timed out, closed by the server, ...). */
int dpc_net_xfer(int fd, void *buf, size_t n, int out, unsigned timeout_ms,
                 const char *name, char *err, size_t errlen);

#endif
