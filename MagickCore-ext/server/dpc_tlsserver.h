/*
 * dpc_tlsserver: the server's TLS context for native clients: TLS 1.3
 * with the external PSK derived from the shared secret (dpc_tls.h), and,
 * when configured, a certificate and key for clients that verify the
 * server against a CA, and a CA that client certificates must chain to.
 *
 * Ownership: the context owns its SSL_CTX and PSK session; each SSL it
 * makes belongs to the caller (SSL_free), and must not outlive it.
 * Single-threaded, like the server.
 */
#ifndef DPC_TLSSERVER_H
#define DPC_TLSSERVER_H

#include <stddef.h>
#include <stdint.h>

#include "dpc_tls.h"

struct dpc_tlsserver_cfg {
    uint8_t psk[DPC_TLS_PSK_LEN];
    const char *cert, *key;     /* PEM files; NULL: PSK only */
    const char *ca;             /* PEM file: client certificates must chain
                                   to it; NULL: none asked for */
};

struct dpc_tlsserver;

/* NULL with the reason (naming the file and setting) in err. */
struct dpc_tlsserver *dpc_tlsserver_new(const struct dpc_tlsserver_cfg *cfg,
                                        char *err, size_t errlen);
void dpc_tlsserver_free(struct dpc_tlsserver *t);
/* A server-side SSL on the connected socket fd (borrowed).  NULL on
 * failure (out of memory). */
SSL *dpc_tlsserver_accept(struct dpc_tlsserver *t, int fd);

#endif
