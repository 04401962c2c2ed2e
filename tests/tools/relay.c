/*
 * relay: a TCP relay for tests, between clients and a server on loopback.
 * Listens on 127.0.0.1:0, prints "port N" on stdout, and forwards each
 * connection to 127.0.0.1:TARGET in a child process.
 *
 *   relay record FILE TARGET     append every byte, both ways, to FILE
 *   relay flip N TARGET          from byte N of each server->client stream
 *                                on, flip one bit in every 1000th byte
 *   relay trickle N TARGET       forward in pieces of at most N bytes
 *   relay split N TARGET         forward the client's first N bytes alone,
 *                                then, 200 ms later, the rest as it comes
 *
 * The relay exits after RELAY_SECONDS (default 300) at the latest.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

enum mode { RECORD, FLIP, TRICKLE, SPLIT };

static enum mode mode;
static long arg_n;
static int record_fd = -1;

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);

        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static void set_nodelay(int fd)
{
    int one = 1;

    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Forwards one chunk from -> to; down: server to client. */
static int forward(int from, int to, int down, long *seen)
{
    unsigned char buf[65536];
    size_t max = mode == TRICKLE && arg_n > 0 && (size_t)arg_n < sizeof(buf)
                     ? (size_t)arg_n : sizeof(buf);
    ssize_t n;

    if (mode == SPLIT && !down && *seen < arg_n)
        max = (size_t)(arg_n - *seen);
    n = read(from, buf, max);
    if (n <= 0)
        return -1;
    if (mode == SPLIT && !down && *seen < arg_n &&
        (*seen += n) >= arg_n) {
        if (write_all(to, buf, (size_t)n) < 0)
            return -1;
        usleep(200000);         /* the rest comes as another segment */
        return 0;
    }
    if (mode == RECORD && write_all(record_fd, buf, (size_t)n) < 0)
        die("record");
    if (mode == FLIP && down)
        for (ssize_t i = 0; i < n; i++, (*seen)++)
            if (*seen >= arg_n && (*seen - arg_n) % 1000 == 0)
                buf[i] ^= 0x10;
    return write_all(to, buf, (size_t)n);
}

static void relay(int client, unsigned port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    int server = socket(AF_INET, SOCK_STREAM, 0);
    long seen = 0;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (server < 0 || connect(server, (struct sockaddr *)&a, sizeof(a)) < 0)
        die("connect");
    /* What is forwarded goes out now, as the endpoints' own writes would:
     * Nagle's wait for the ACK of a small segment, against the peer's
     * delayed ACK, would add 40 ms to each small reply. */
    set_nodelay(client);
    set_nodelay(server);
    for (;;) {
        struct pollfd p[2] = { { .fd = client, .events = POLLIN },
                               { .fd = server, .events = POLLIN } };

        if (poll(p, 2, 120000) <= 0)
            break;
        if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) &&
            forward(client, server, 0, &seen) < 0)
            break;
        if ((p[1].revents & (POLLIN | POLLHUP | POLLERR)) &&
            forward(server, client, 1, &seen) < 0)
            break;
    }
    close(server);
    close(client);
}

int main(int argc, char **argv)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t alen = sizeof(a);
    const char *secs = getenv("RELAY_SECONDS");
    unsigned port;
    int l;

    if (argc != 4) {
        fprintf(stderr, "usage: relay record FILE|flip N|trickle N|split N "
                        "TARGET\n");
        return 2;
    }
    if (strcmp(argv[1], "record") == 0) {
        mode = RECORD;
        record_fd = open(argv[2], O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (record_fd < 0)
            die(argv[2]);
    } else if (strcmp(argv[1], "flip") == 0 ||
               strcmp(argv[1], "trickle") == 0 ||
               strcmp(argv[1], "split") == 0) {
        mode = argv[1][0] == 'f' ? FLIP : argv[1][0] == 't' ? TRICKLE : SPLIT;
        arg_n = strtol(argv[2], NULL, 10);
    } else {
        fprintf(stderr, "relay: unknown mode %s\n", argv[1]);
        return 2;
    }
    port = (unsigned)strtoul(argv[3], NULL, 10);
    signal(SIGCHLD, SIG_IGN);
    alarm(secs != NULL ? (unsigned)atoi(secs) : 300);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(l, 64) < 0 || getsockname(l, (struct sockaddr *)&a, &alen) < 0)
        die("listen");
    printf("port %u\n", ntohs(a.sin_port));
    fflush(stdout);
    for (;;) {
        int c = accept(l, NULL, NULL);

        if (c < 0 && errno == EINTR)
            continue;
        if (c < 0)
            die("accept");
        if (fork() == 0) {
            close(l);
            relay(c, port);
            _exit(0);
        }
        close(c);
    }
}
