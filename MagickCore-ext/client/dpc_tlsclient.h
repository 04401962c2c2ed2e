/*
 * dpc_tlsclient: the client's TLS for native links.  A context per
 * configuration (PSK from the shared secret, or a CA to verify the
 * server's certificate, with an optional client certificate), shared by
 * every link of the process, and the handshake on a link's socket within
 * a deadline.
 *
 * Ownership: contexts are made once per distinct configuration and kept
 * for the life of the process (a handful at most; links borrow them).
 * The SSL a handshake returns belongs to the caller.  Thread-safe.
 */
#ifndef DPC_TLSCLIENT_H
#define DPC_TLSCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "dpc_tls.h"
#include "dpc_util.h"

#define DPC_TLSCLIENT_MAX_CTX 16    /* distinct configurations kept */

struct dpc_tlsclient_cfg {
    uint8_t psk[DPC_TLS_PSK_LEN];   /* from cache:shared-secret */
    const char *ca;     /* PEM: verify the server's certificate with it
                           (then no PSK is offered); NULL: PSK */
    const char *cert, *key;         /* PEM: a client certificate, or NULL */
};

struct dpc_tlsclient;

/* The process's context for cfg, made on first use.  NULL with the reason
 * (naming the setting) in err. */
struct dpc_tlsclient *dpc_tlsclient_get(const struct dpc_tlsclient_cfg *cfg,
                                        char *err, size_t errlen);

/* Runs the TLS handshake on fd (non-blocking, borrowed) with the server
 * named host (checked against its certificate in certificate mode), within
 * timeout_ms.  The SSL, or NULL with the reason in err and its code in
 * *code: DPC_E_CLOSED (closed before its answer), DPC_E_REFUSED (the server
 * does not accept TLS), DPC_E_AUTH (keys or certificates do not match),
 * DPC_E_TIMEOUT, DPC_E_IO. */
SSL *dpc_tlsclient_handshake(struct dpc_tlsclient *t, int fd,
                             const char *host, const char *name,
                             unsigned timeout_ms, enum dpc_errcode *code,
                             char *err, size_t errlen);

#endif
