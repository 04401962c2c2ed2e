/*
 * dpc_net: the client side's socket helpers: connect with a deadline,
 * exact transfers with a deadline, and the pause before a retry.  Errors
 * name the peer and the cause.  No state; safe from any thread.
 */
#ifndef DPC_NET_H
#define DPC_NET_H

#include <stddef.h>
#include <stdint.h>

#define DPC_NET_BACKOFF_FIRST_MS 25
#define DPC_NET_BACKOFF_MAX_MS 1000

#define DPC_NET_ADDRLEN 46      /* INET6_ADDRSTRLEN */

/* "host:port", or "[host]:port" when host is an IPv6 address, into buf. */
void dpc_net_hostport(char *buf, size_t len, const char *host,
                      unsigned port);

/* A peer's name in errors: "host:port", or "ADDR:PORT (host)" when addr,
 * one of the addresses host resolves to, is what is dialed (addr NULL or
 * host itself: the first form); IPv6 addresses in brackets. */
void dpc_net_peer_name(char *buf, size_t len, const char *host,
                       const char *addr, unsigned port);

/* The distinct addresses host resolves to (numeric, IPv4 and IPv6), in
 * the resolver's order, at most max of them into addrs.  How many, or a
 * negative dpc_errcode with the reason in err (DPC_E_INVALID: the name
 * does not resolve). */
int dpc_net_resolve(const char *host, unsigned port,
                    char (*addrs)[DPC_NET_ADDRLEN], size_t max, char *err,
                    size_t errlen);

/* A non-blocking TCP_NODELAY socket connected to host:port, trying each
 * address in turn, all within timeout_ms.  A negative dpc_errcode with
 * the reason in err (DPC_E_REFUSED: nothing listens; DPC_E_TIMEOUT;
 * DPC_E_INVALID: the name does not resolve; else DPC_E_IO), errno set. */
int dpc_net_dial(const char *host, unsigned port, unsigned timeout_ms,
                 char *err, size_t errlen);
/* The same without waiting, to host's first address: a non-blocking
 * socket whose connect() has started (or already ended; see
 * dpc_net_dial_check), or a negative dpc_errcode as dpc_net_dial's, given
 * at once (DPC_E_REFUSED when nothing listens on a local address). */
int dpc_net_dial_start(const char *host, unsigned port, char *err,
                       size_t errlen);
/* Where fd's connect() (dpc_net_dial_start) stands, waiting at most
 * wait_ms: 1 connected (TCP_NODELAY set), 0 still under way, or a negative
 * dpc_errcode with "name: cause" in err.  fd stays the caller's. */
int dpc_net_dial_check(int fd, const char *name, unsigned wait_ms,
                       char *err, size_t errlen);

/* Sends (out) or receives exactly n bytes, all of them within timeout_ms
 * (one deadline for the whole transfer: a peer trickling bytes cannot
 * stretch it).  0, or a negative dpc_errcode with "NAME: cause" in err:
 * DPC_E_TIMEOUT when the bytes did not all move in time, DPC_E_CLOSED when the peer closed (in order
 * or by a reset), else DPC_E_IO. */
int dpc_net_xfer(int fd, void *buf, size_t n, int out, unsigned timeout_ms,
                 const char *name, char *err, size_t errlen);

/* Milliseconds to pause before retry number attempt (0 for the first):
 * DPC_NET_BACKOFF_FIRST_MS doubling up to DPC_NET_BACKOFF_MAX_MS, of which
 * the upper half is jitter drawn from r, so that clients turned away
 * together do not all come back together. */
unsigned dpc_net_backoff_ms(unsigned attempt, uint32_t r);

#endif
