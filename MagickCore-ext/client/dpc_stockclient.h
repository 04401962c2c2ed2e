/*
 * dpc_stockclient: a small blocking client of the stock protocol, enough to
 * authenticate and ask a magick-dpc server for its status.  Every call has
 * a deadline; errors name the host and the cause.  It can also ask the
 * server to drain.  One client per thread.
 */
#ifndef DPC_STOCKCLIENT_H
#define DPC_STOCKCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "dpc_siphash.h"
#include "dpc_stock.h"

struct dpc_stockclient;

/* Connects to host:port, reads the nonce and proves the secret.  NULL with
 * the reason in err. */
struct dpc_stockclient *dpc_stockclient_connect(const char *host,
                                                unsigned port,
                                                enum dpc_stock_flavor flavor,
                                                const uint8_t key[DPC_SIPHASH_KEYLEN],
                                                unsigned timeout_ms, char *err,
                                                size_t errlen);
void dpc_stockclient_close(struct dpc_stockclient *c);

/* Asks for the server's status JSON; the caller frees *json. */
int dpc_stockclient_status(struct dpc_stockclient *c, char **json, char *err,
                           size_t errlen);
/* Asks a magick-dpc server to drain (its 'D'); *json is its status once
 * draining began.  A server older than 'D' refuses it, which is said. */
int dpc_stockclient_drain(struct dpc_stockclient *c, char **json, char *err,
                          size_t errlen);

#endif
