/*
 * dpc_pool: the process's native connections, shared.  Each link to a
 * host carries up to DPC_POOL_CACHES_PER_LINK caches (the server allows
 * DPC_NATIVE_MAX_CACHES per connection), so a process with thousands of
 * images open needs only a few connections per host.  A link is freed
 * when its last cache lets go of it, or replaced once it breaks.  A host
 * that could not be reached is not tried again for DPC_POOL_RETRY_SECONDS:
 * a hung host then costs one timeout, not one per cache; nor is a host
 * that said it is draining, for as long.
 *
 * Thread-safe: the pool has its own lock; users of a shared link serialize
 * their requests with dpc_link_lock().
 */
#ifndef DPC_POOL_H
#define DPC_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "dpc_link.h"

#define DPC_POOL_CACHES_PER_LINK 48
#define DPC_POOL_RETRY_SECONDS 10   /* a failed host is not retried sooner */
/* dpc_pool_reacquire's wait for a connection to be made: a host nearby
 * answers within it, one that is down costs no more */
#define DPC_POOL_PROBE_WAIT_MS 20

/* A link to host:port proven with key, over TLS with tls (NULL:
 * plaintext), shared with other caches of the same settings.  NULL
 * with the reason in err and its code in *code (may be NULL), as
 * dpc_link_connect gives them; a host that failed recently fails again at
 * once with the same code. */
struct dpc_link *dpc_pool_acquire(const char *host, unsigned port,
                                  const uint8_t key[DPC_WIRE_KEY_LEN],
                                  struct dpc_tlsclient *tls,
                                  unsigned timeout_ms,
                                  enum dpc_errcode *code, char *err,
                                  size_t errlen);
/* The same, dialing addr, one of the addresses host resolves to (NULL:
 * host itself; see dpc_link_connect_at): each address is a host of its
 * own. */
struct dpc_link *dpc_pool_acquire_at(const char *host, const char *addr,
                                     unsigned port,
                                     const uint8_t key[DPC_WIRE_KEY_LEN],
                                     struct dpc_tlsclient *tls,
                                     unsigned timeout_ms,
                                     enum dpc_errcode *code, char *err,
                                     size_t errlen);
/* A new user of a link to l's host (another user of l, which may be
 * broken), the host's remembered failure forgotten first: for a cache that
 * lost that host and tries it again because it may be back (restarted).
 * NULL, as dpc_pool_acquire, when it is not, and the failure remembered
 * again.  It hardly waits for the host: the first call starts a
 * connection, and each call looks for at most DPC_POOL_PROBE_WAIT_MS
 * whether it is made (DPC_E_TIMEOUT, "still connecting", while it is not;
 * given up timeout_ms after it started); only once the host accepted it is
 * the handshake waited for, tried once.  So a host that is down costs the
 * calls next to nothing, whether it refuses, resets or never answers.
 * dpc_pool_acquire too takes this way to a host whose link broke and is
 * still held, waiting for the connection as for any (one handshake). */
struct dpc_link *dpc_pool_reacquire(const struct dpc_link *l,
                                    unsigned timeout_ms,
                                    enum dpc_errcode *code, char *err,
                                    size_t errlen);
/* Gives a link back; the last user frees it. */
void dpc_pool_release(struct dpc_link *l);
/* l's host refused a cache because it is draining (about to stop): for
 * DPC_POOL_RETRY_SECONDS, acquiring that host fails at once with
 * DPC_E_DRAINING, so the caches that follow go elsewhere without asking it
 * (or, once it stopped, without a connection refused).  The caches that
 * hold l keep it. */
void dpc_pool_draining(struct dpc_link *l);

#endif
