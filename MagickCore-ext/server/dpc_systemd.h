/*
 * dpc_systemd: the two systemd interfaces a service speaks, without
 * libsystemd (both are small, stable, documented protocols):
 *  - readiness (sd_notify(3)): state lines such as "READY=1",
 *    "STOPPING=1" and "STATUS=..." in one datagram to the Unix socket
 *    $NOTIFY_SOCKET names (a path, or an abstract name written '@...');
 *  - socket activation (sd_listen_fds(3)): listening sockets passed from
 *    descriptor 3 on, LISTEN_FDS of them, when LISTEN_PID is this
 *    process; LISTEN_FDNAMES names them (FileDescriptorName=).
 * Outside systemd (no NOTIFY_SOCKET, no LISTEN_FDS) both do nothing.
 *
 * No state of its own; no I/O but the notification datagram.
 */
#ifndef DPC_SYSTEMD_H
#define DPC_SYSTEMD_H

#include <stddef.h>

#define DPC_SYSTEMD_MAX_FDS 16
#define DPC_SYSTEMD_NAME_MAX 64

/* Sends state (one or more NAME=VALUE lines) to $NOTIFY_SOCKET.  0 when
 * sent or when there is no NOTIFY_SOCKET; -1 with the reason in err. */
int dpc_systemd_notify(const char *state, char *err, size_t errlen);

struct dpc_systemd_fd {
    int fd;                             /* close-on-exec once taken */
    char name[DPC_SYSTEMD_NAME_MAX];    /* its LISTEN_FDNAMES entry, or "" */
};

/* The sockets systemd passed, at most max, into fds (the caller owns the
 * descriptors); LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are removed
 * from the environment so that children do not take them.  The count (0:
 * none passed, or not to this process); -1 with the reason in err when
 * the variables are malformed or pass more than max. */
int dpc_systemd_listen_fds(struct dpc_systemd_fd *fds, size_t max, char *err,
                           size_t errlen);

#endif
