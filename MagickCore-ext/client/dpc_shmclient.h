/*
 * dpc_shmclient: the client of magick-dpc's Unix socket (dpc_lproto):
 * asks for shared-memory segments and checks every descriptor it is given
 * before anyone maps it.  The server must be one we trust, as the kernel
 * tells it (SO_PEERCRED): root, our own uid, or the server user
 * (cache:dpc-server-user, by default DPC_SHMC_SERVER_USER when that user
 * exists); and its socket must be where no one else could have put it
 * (dpc_shmc_check_path).
 *
 * One connection, one request at a time; not thread-safe (callers lock).
 * Descriptors returned are the caller's to close.
 */
#ifndef DPC_SHMCLIENT_H
#define DPC_SHMCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <sys/types.h>

#include "dpc_lproto.h"

/* The system user the packaged server runs as (config/magick-dpc.service). */
#define DPC_SHMC_SERVER_USER "magick-dpc"
#define DPC_SHMC_NO_UID ((uid_t)-1)

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

/* The uid a client trusts besides root and itself: server_user is a user
 * name or number; NULL means DPC_SHMC_SERVER_USER, and none
 * (DPC_SHMC_NO_UID) when no such user exists.  0, or -1 when a server_user
 * given is no user. */
int dpc_shmc_server_uid(const char *server_user, uid_t *uid, char *err,
                        size_t errlen);

/* 0 when no one but root, us or server_uid can have put the socket at
 * path: it is absolute; the socket and every directory above it belong to
 * one of them; its own directory is writable by its owner only (sticky or
 * not: anyone who can create a file there can put a socket there); a
 * directory further up is writable by others only when sticky (as /tmp:
 * then no one else can rename or replace the entry below it, which belongs
 * to one of them).  Else -1, naming the directory and the fix. */
int dpc_shmc_check_path(const char *path, uid_t server_uid, char *err,
                        size_t errlen);

/* server_user: as dpc_shmc_server_uid.  NULL with the reason (naming the
 * path and the fix) in err. */
struct dpc_shmc *dpc_shmc_connect(const char *path, const char *server_user,
                                  unsigned timeout_ms, char *err,
                                  size_t errlen);
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
