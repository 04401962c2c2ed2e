/*
 * dpc_net: see dpc_net.h.
 */
#include "dpc_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dpc_util.h"

/* The deadline (dpc_now() seconds) timeout_ms from now. */
static double deadline_in(unsigned timeout_ms)
{
    return dpc_now() + timeout_ms / 1000.0;
}

/* poll() one event until an absolute deadline (dpc_now() seconds), each
 * try given only what is left of it: 1 ready, 0 timed out, -1 error. */
static int wait_one(int fd, short events, double deadline)
{
    struct pollfd p = { .fd = fd, .events = events };
    double left;
    int rc;

    do {
        left = (deadline - dpc_now()) * 1000;
        if (left <= 0)
            return 0;
        rc = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left + 1);
    } while (rc < 0 && errno == EINTR);
    return rc;
}

/* A non-blocking socket whose connect() to a has started (or ended); -1
 * with errno set when it could not start. */
static int connect_start(const struct addrinfo *a)
{
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC |
                    SOCK_NONBLOCK, a->ai_protocol);

    if (fd < 0)
        return -1;
    if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
        int e = errno;

        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Where fd's connect() stands by deadline (looked at once when it has
 * passed): 1 made (TCP_NODELAY set), 0 under way, -1 failed with errno
 * set. */
static int connect_done(int fd, double deadline)
{
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    socklen_t len = sizeof(int);
    int soerr = 0, on = 1, rc;

    rc = deadline > dpc_now() ? wait_one(fd, POLLOUT, deadline)
                              : poll(&p, 1, 0);
    if (rc <= 0)
        return rc;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    if (soerr != 0) {
        errno = soerr;
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    return 1;
}

void dpc_net_hostport(char *buf, size_t len, const char *host,
                      unsigned port)
{
    int v6 = strchr(host, ':') != NULL;

    snprintf(buf, len, "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "",
             port);
}

void dpc_net_peer_name(char *buf, size_t len, const char *host,
                       const char *addr, unsigned port)
{
    size_t n;

    if (addr == NULL || strcmp(addr, host) == 0) {
        dpc_net_hostport(buf, len, host, port);
        return;
    }
    dpc_net_hostport(buf, len, addr, port);
    n = strlen(buf);
    if (n + 1 < len)
        snprintf(buf + n, len - n, " (%s)", host);
}

int dpc_net_resolve(const char *host, unsigned port,
                    char (*addrs)[DPC_NET_ADDRLEN], size_t max, char *err,
                    size_t errlen)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV };
    struct addrinfo *ai, *a;
    char service[8], name[300];
    size_t n = 0;
    int rc;

    snprintf(service, sizeof(service), "%u", port);
    rc = getaddrinfo(host, service, &hints, &ai);
    if (rc != 0) {
        dpc_net_hostport(name, sizeof(name), host, port);
        return dpc_errc(err, errlen, DPC_E_INVALID, "%s: %s", name,
                        gai_strerror(rc));
    }
    for (a = ai; a != NULL && n < max; a = a->ai_next) {
        char addr[DPC_NET_ADDRLEN];
        const void *p = a->ai_family == AF_INET6
                            ? (const void *)&((struct sockaddr_in6 *)
                                                  a->ai_addr)->sin6_addr
                            : (const void *)&((struct sockaddr_in *)
                                                  a->ai_addr)->sin_addr;
        size_t i;

        if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
            inet_ntop(a->ai_family, p, addr, sizeof(addr)) == NULL)
            continue;
        for (i = 0; i < n && strcmp(addrs[i], addr) != 0; i++)
            ;
        if (i == n)
            memcpy(addrs[n++], addr, sizeof(addr));
    }
    freeaddrinfo(ai);
    return (int)n;
}

/* A failed connect's code and "name: cause" in err; errno kept. */
static int dial_error(int e, const char *name, char *err, size_t errlen)
{
    enum dpc_errcode code = e == ETIMEDOUT ? DPC_E_TIMEOUT
                            : e == ECONNREFUSED ? DPC_E_REFUSED : DPC_E_IO;
    int rc = dpc_errc(err, errlen, code, "%s: %s", name, strerror(e));

    errno = e;
    return rc;
}

/* host:port's addresses for a stream socket into *ai (the caller frees
 * them), its name into name; 0, or DPC_E_INVALID's code with the reason
 * in err. */
static int dial_addresses(const char *host, unsigned port,
                          struct addrinfo **ai, char name[300], char *err,
                          size_t errlen)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV };
    char service[8];
    int rc;

    snprintf(service, sizeof(service), "%u", port);
    dpc_net_hostport(name, 300, host, port);
    rc = getaddrinfo(host, service, &hints, ai);
    if (rc != 0) {
        errno = EINVAL;
        return dpc_errc(err, errlen, DPC_E_INVALID, "%s: %s", name,
                        gai_strerror(rc));
    }
    return 0;
}

int dpc_net_dial(const char *host, unsigned port, unsigned timeout_ms,
                 char *err, size_t errlen)
{
    struct addrinfo *ai, *a;
    char name[300];
    int fd = -1, rc, saved = ECONNREFUSED;
    double deadline = deadline_in(timeout_ms);

    if ((rc = dial_addresses(host, port, &ai, name, err, errlen)) < 0)
        return rc;
    for (a = ai; a != NULL && fd < 0; a = a->ai_next) {
        if ((fd = connect_start(a)) < 0) {
            saved = errno;
            continue;
        }
        if ((rc = connect_done(fd, deadline)) <= 0) {
            saved = rc == 0 ? ETIMEDOUT : errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0)
        return dial_error(saved, name, err, errlen);
    return fd;
}

int dpc_net_dial_start(const char *host, unsigned port, char *err,
                       size_t errlen)
{
    struct addrinfo *ai;
    char name[300];
    int fd, rc;

    if ((rc = dial_addresses(host, port, &ai, name, err, errlen)) < 0)
        return rc;
    fd = connect_start(ai);
    rc = errno;
    freeaddrinfo(ai);
    return fd >= 0 ? fd : dial_error(rc, name, err, errlen);
}

int dpc_net_dial_check(int fd, const char *name, unsigned wait_ms,
                       char *err, size_t errlen)
{
    int rc = connect_done(fd, deadline_in(wait_ms));

    return rc >= 0 ? rc : dial_error(errno, name, err, errlen);
}

/* A failed poll, send or recv: the peer's close or reset is
 * DPC_E_CLOSED, the rest DPC_E_IO; errno is kept. */
static int sys_error(const char *name, char *err, size_t errlen)
{
    int e = errno, rc;
    int reset = e == ECONNRESET || e == EPIPE || e == ECONNABORTED;

    rc = dpc_errc(err, errlen, reset ? DPC_E_CLOSED : DPC_E_IO, "%s: %s",
                  name, reset ? "the server closed the connection (reset: "
                                "stopped or crashed?)" : strerror(e));
    errno = e;
    return rc;
}

int dpc_net_xfer(int fd, void *buf, size_t n, int out, unsigned timeout_ms,
                 const char *name, char *err, size_t errlen)
{
    uint8_t *p = buf;
    double deadline = deadline_in(timeout_ms);

    while (n > 0) {
        ssize_t k;
        int rc = wait_one(fd, out ? POLLOUT : POLLIN, deadline);

        if (rc == 0) {
            errno = ETIMEDOUT;
            return dpc_errc(err, errlen, DPC_E_TIMEOUT, "%s: no answer in "
                            "time (server stopped or overloaded?)", name);
        }
        if (rc < 0)
            return sys_error(name, err, errlen);
        k = out ? send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT)
                : recv(fd, p, n, MSG_DONTWAIT);
        if (k == 0) {
            errno = ECONNRESET;
            return dpc_errc(err, errlen, DPC_E_CLOSED, "%s: connection "
                            "closed by the server", name);
        }
        if (k < 0 && errno != EAGAIN && errno != EINTR)
            return sys_error(name, err, errlen);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
        }
    }
    return 0;
}

unsigned dpc_net_backoff_ms(unsigned attempt, uint32_t r)
{
    unsigned base = DPC_NET_BACKOFF_MAX_MS;

    if (attempt < 16 && (DPC_NET_BACKOFF_FIRST_MS << attempt) < (int)base)
        base = (unsigned)DPC_NET_BACKOFF_FIRST_MS << attempt;
    return base / 2 + r % (base - base / 2 + 1);
}
