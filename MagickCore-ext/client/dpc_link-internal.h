/*
 * dpc_link-internal: what tests and the fuzz target need of dpc_link and
 * nothing else may call.
 */
#ifndef DPC_LINK_INTERNAL_H
#define DPC_LINK_INTERNAL_H

#include "dpc_link.h"

/* A link over fd, a connected stream socket whose peer is taken as
 * authenticated (no handshake): the fuzz target plays a server through a
 * socketpair.  Takes ownership of fd (closed by dpc_link_free, or here on
 * failure); NULL when out of memory. */
struct dpc_link *dpc_link_adopt(int fd, const char *name,
                                unsigned timeout_ms);

#endif
