/*
 * dpc_systemd: see dpc_systemd.h.  The protocols, as systemd documents
 * them: sd_notify(3) and sd_listen_fds(3).
 */
#include "dpc_systemd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dpc_parse.h"
#include "dpc_util.h"

#define LISTEN_FDS_START 3

int dpc_systemd_notify(const char *state, char *err, size_t errlen)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    size_t len;
    socklen_t salen;
    ssize_t n;
    int fd;

    if (path == NULL || path[0] == '\0')
        return 0;
    len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sun.sun_path))
        return dpc_errf(err, errlen, "NOTIFY_SOCKET '%s': not a socket path "
                        "or abstract name", path);
    memcpy(sun.sun_path, path, len);
    if (path[0] == '@')
        sun.sun_path[0] = '\0';     /* abstract: no terminating NUL */
    salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
                        (path[0] == '/'));
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return dpc_errf(err, errlen, "socket: %s", strerror(errno));
    n = sendto(fd, state, strlen(state), MSG_NOSIGNAL,
               (struct sockaddr *)&sun, salen);
    if (n < 0)
        dpc_errf(err, errlen, "notify %s: %s", path, strerror(errno));
    close(fd);
    return n < 0 ? -1 : 0;
}

/* The i-th name of LISTEN_FDNAMES (colon-separated) into name. */
static void fd_name(const char *names, size_t i, char *name, size_t len)
{
    size_t n;

    name[0] = '\0';
    for (; names != NULL && i > 0; i--) {
        names = strchr(names, ':');
        names = names != NULL ? names + 1 : NULL;
    }
    if (names == NULL)
        return;
    n = strcspn(names, ":");
    snprintf(name, len, "%.*s", (int)(n < len ? n : len - 1), names);
}

static void unset_env(void)
{
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
}

int dpc_systemd_listen_fds(struct dpc_systemd_fd *fds, size_t max, char *err,
                           size_t errlen)
{
    const char *pid_s = getenv("LISTEN_PID"), *n_s = getenv("LISTEN_FDS");
    const char *names = getenv("LISTEN_FDNAMES");
    uint64_t pid, n;
    char e[DPC_ERRLEN];

    if (pid_s == NULL || n_s == NULL)
        return 0;
    if (dpc_parse_u64(pid_s, &pid, e, sizeof(e)) < 0 ||
        dpc_parse_u64(n_s, &n, e, sizeof(e)) < 0) {
        unset_env();
        return dpc_errf(err, errlen, "bad LISTEN_PID '%s' or LISTEN_FDS "
                        "'%s'", pid_s, n_s);
    }
    if (pid != (uint64_t)getpid())
        return 0;                   /* meant for another process */
    if (n > max) {
        unset_env();
        return dpc_errf(err, errlen, "LISTEN_FDS=%llu: at most %zu sockets",
                        (unsigned long long)n, max);
    }
    for (size_t i = 0; i < n; i++) {
        fds[i].fd = LISTEN_FDS_START + (int)i;
        if (fcntl(fds[i].fd, F_SETFD, FD_CLOEXEC) < 0) {
            unset_env();
            return dpc_errf(err, errlen, "passed descriptor %d: %s",
                            fds[i].fd, strerror(errno));
        }
        fd_name(names, i, fds[i].name, sizeof(fds[i].name));
    }
    unset_env();
    return (int)n;
}
