/*
 * dpc_shmclient: the client of magick-dpc's Unix socket (dpc_lproto):
 * asks for shared-memory segments and checks every descriptor it is given
 * before anyone maps it.  The server must be who the kernel says it may be
 * (SO_PEERCRED: root, our own uid, or the owner of the socket's directory
 * when only its owner can write there).
 *
 * One connection, one request at a time; not thread-safe (callers lock).
 * Descriptors returned are the caller's to close.
 */
#ifndef DPC_SHMCLIENT_H
#define DPC_SHMCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "dpc_lproto.h"

struct dpc_shmc;

/* What a descriptor must be before it is mapped. */
enum dpc_shm_kind {
    DPC_SHM_CACHE,                  /* private, writable: size seals + SEAL */
    DPC_SHM_PUBLISH,                /* writable until COMMIT: size seals */
    DPC_SHM_ATTACH                  /* read-only: size and write seals */
};

/* The default socket path: $XDG_RUNTIME_DIR/magick-dpc.sock, else
 * /run/magick-dpc/magick-dpc.sock (the system server's).  0, or -1 if it
 * does not fit. */
int dpc_shmc_default_path(char *buf, size_t len);

/* NULL with the reason (naming the path and the fix) in err. */
struct dpc_shmc *dpc_shmc_connect(const char *path, unsigned timeout_ms,
                                  char *err, size_t errlen);
void dpc_shmc_close(struct dpc_shmc *c);
/* The status of the last reply (DPC_LP_OK after a transport error). */
enum dpc_lp_status dpc_shmc_last_status(const struct dpc_shmc *c);

/* ALLOC, PUBLISH, ATTACH: the checked descriptor in *fd, its segment id
 * and size.  For ALLOC and PUBLISH r->size is the size. */
int dpc_shmc_grant(struct dpc_shmc *c, const struct dpc_lp_req *r, int *fd,
                   uint64_t *id, uint64_t *size, char *err, size_t errlen);
/* FREE, COMMIT, REMOVE. */
int dpc_shmc_simple(struct dpc_shmc *c, const struct dpc_lp_req *r,
                    char *err, size_t errlen);
/* LIST or STATUS: the JSON text, NUL-terminated, the caller's to free. */
int dpc_shmc_json(struct dpc_shmc *c, enum dpc_lp_op op, char **json,
                  char *err, size_t errlen);

/* 0 when fd is a regular file of exactly size bytes, no group or other
 * permissions, carrying the seals kind needs; else -1 and why. */
int dpc_shm_check_fd(int fd, uint64_t size, enum dpc_shm_kind kind,
                     char *err, size_t errlen);

#endif
