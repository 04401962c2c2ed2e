/*
 * delay-relay: a TCP relay for tests that emulates a network link in user
 * space (the test machines have no netem or tbf qdisc).  It listens on an
 * address, prints "port N" on stdout, and forwards each connection to
 * TARGET, holding every byte back for a one-way delay and, optionally,
 * pacing each direction to a bandwidth.
 *
 *   delay-relay [-l ADDR] [-d USEC] [-b BYTES_PER_S] [-q BYTES] [-s SECONDS]
 *               [-r] TARGET
 *
 * -r runs it under SCHED_FIFO, so that on a machine whose cores are busy
 * with the processes it sits between, its threads still move each piece
 * when its delay is over, as a link would, instead of waiting for a core
 * (on a busy 2-core VM a 200 us round trip otherwise took about 600 us
 * more than loopback's); without the privilege it says so and goes on at
 * normal priority.
 *
 * Threading: one thread per direction of each connection.  A thread moves
 * what its source has into a pipe (splice: the bytes stay in the kernel,
 * so the relay costs little CPU beside the processes it sits between, as
 * a network would), noting each piece's length and read time in a queue
 * of chunks, and moves each piece on to its sink no earlier than its read
 * time plus the delay; it sleeps with ppoll on a timespec (timer slack set
 * to 1 ns), as millisecond poll timeouts cannot honour a delay of 100 us.
 * A thread stops reading while its queue holds -q bytes (chunk headers
 * counted, so a flood of one-byte reads is bounded too) or its pipe is
 * full, and a write blocks while its sink is full.  EOF is passed on as a
 * half-close once the queue has drained; an error closes both directions.
 * The connection's first thread owns both sockets and closes them after
 * joining the other.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE                     /* ppoll, accept4, splice */
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RELAY_CHUNK (256 * 1024)  /* bytes one read moves at most */

struct relay_cfg {
    const char *listen;
    const char *target;
    uint64_t delay_ns;
    uint64_t bandwidth;             /* bytes/s per direction, 0: none */
    uint64_t queue_max;             /* bytes queued per direction */
    unsigned seconds;
    int realtime;
};

/* A piece of the pipe's bytes, in order. */
struct chunk {
    struct chunk *next;
    uint64_t at;                    /* when it was read, ns */
    size_t len, off;
};

struct flow {
    int from, to;
    int pipe[2];                    /* the bytes in flight */
    struct chunk *head, *tail;
    uint64_t queued;                /* bytes of chunks, headers too */
    uint64_t free_at;               /* the link is busy until then, ns */
    int eof;
    int full;                       /* the pipe took no more: wait for a
                                     * write to drain it */
};

static struct relay_cfg cfg = { .listen = "127.0.0.1:0",
                                .queue_max = 4 << 20, .seconds = 300 };

static uint64_t now_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Strict decimal: no sign, no junk, no overflow. */
static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

/* "HOST:PORT" or "[V6]:PORT" resolved to its first address. */
static struct addrinfo *resolve(const char *spec, int passive)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                              .ai_flags = passive ? AI_PASSIVE : 0 }, *ai;
    size_t n;

    if (colon == NULL || colon == spec)
        return NULL;
    n = (size_t)(colon - spec);
    if (spec[0] == '[' && n >= 2 && spec[n - 1] == ']')
        spec++, n -= 2;
    if (n >= sizeof(host))
        return NULL;
    memcpy(host, spec, n);
    host[n] = '\0';
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
        return NULL;
    return ai;
}

static void set_nodelay(int fd)
{
    int one = 1;

    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* When the head chunk may next be written: its read time plus the delay,
 * and not before the link has finished pacing the previous bytes. */
static uint64_t due_ns(const struct flow *f)
{
    uint64_t due = f->head->at + cfg.delay_ns;

    return cfg.bandwidth != 0 && f->free_at > due ? f->free_at : due;
}

/* Moves what the source has into the pipe as one chunk; 0 (the pipe may
 * have been full), or -1 at EOF or on an error. */
static int flow_read(struct flow *f)
{
    struct chunk *c = malloc(sizeof(*c));
    ssize_t n;

    if (c == NULL)
        return -1;
    do
        n = splice(f->from, NULL, f->pipe[1], NULL, RELAY_CHUNK,
                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN) {         /* the pipe is full */
        free(c);
        f->full = 1;
        return 0;
    }
    if (n <= 0) {
        free(c);
        return -1;
    }
    *c = (struct chunk){ .at = now_ns(), .len = (size_t)n };
    if (f->tail != NULL)
        f->tail->next = c;
    else
        f->head = c;
    f->tail = c;
    f->queued += sizeof(*c) + (uint64_t)n;
    return 0;
}

/* Writes what is due: every chunk whose time has come, in one splice,
 * without a bandwidth cap; else a millisecond's worth of the head chunk
 * at most.  0, or -1 on a write error. */
static int flow_write(struct flow *f, uint64_t now)
{
    struct chunk *c = f->head;
    size_t n = c->len - c->off;
    ssize_t k;

    if (cfg.bandwidth != 0) {
        size_t piece = cfg.bandwidth / 1000 > 1448 ? cfg.bandwidth / 1000 : 1448;

        n = n < piece ? n : piece;
    } else {
        for (c = c->next; c != NULL && c->at + cfg.delay_ns <= now;
             c = c->next)
            n += c->len;
    }
    k = splice(f->pipe[0], NULL, f->to, NULL, n, SPLICE_F_MOVE);
    if (k <= 0)
        return k < 0 && errno == EINTR ? 0 : -1;
    f->full = 0;
    if (cfg.bandwidth != 0)
        f->free_at = (f->free_at > now ? f->free_at : now) +
                     (uint64_t)k * 1000000000u / cfg.bandwidth;
    while (k > 0) {                         /* the chunks written */
        size_t take;

        c = f->head;
        take = c->len - c->off < (size_t)k ? c->len - c->off : (size_t)k;
        c->off += take;
        k -= (ssize_t)take;
        if (c->off < c->len)
            break;
        f->queued -= sizeof(*c) + c->len;
        f->head = c->next;
        if (f->head == NULL)
            f->tail = NULL;
        free(c);
    }
    return 0;
}

/* One direction until EOF has been passed on or an error closes both. */
static void *flow_run(void *arg)
{
    struct flow *f = arg;

    (void)prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    for (;;) {
        struct pollfd p = { .fd = f->from, .events = POLLIN };
        uint64_t now = now_ns();
        struct timespec ts, *tp = NULL;

        if (f->head != NULL && due_ns(f) <= now) {
            if (flow_write(f, now) < 0)
                break;
            continue;
        }
        if (f->head == NULL && f->eof) {
            shutdown(f->to, SHUT_WR);
            return NULL;
        }
        if (f->eof || f->full || f->queued >= cfg.queue_max)
            p.fd = -1;                      /* only wait for the deadline */
        if (f->head != NULL) {
            uint64_t wait = due_ns(f) - now;

            ts = (struct timespec){ (time_t)(wait / 1000000000u),
                                    (long)(wait % 1000000000u) };
            tp = &ts;
        }
        if (ppoll(&p, 1, tp, NULL) < 0 && errno != EINTR)
            break;
        if (p.fd >= 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) &&
            flow_read(f) < 0)
            f->eof = 1;
    }
    /* A write failed: the peer is gone, so is the other direction. */
    shutdown(f->from, SHUT_RDWR);
    shutdown(f->to, SHUT_RDWR);
    return NULL;
}

static void flow_drop(struct flow *f)
{
    while (f->head != NULL) {
        struct chunk *c = f->head;

        f->head = c->next;
        free(c);
    }
    close(f->pipe[0]);
    close(f->pipe[1]);
}

/* The flow's pipe, as large as the queue may grow (or as the system
 * allows): 0, or -1. */
static int flow_pipe(struct flow *f)
{
    int size = cfg.queue_max < (1u << 30) ? (int)cfg.queue_max : 1 << 30;

    if (pipe2(f->pipe, O_CLOEXEC) < 0)
        return -1;
    while (size > 65536 && fcntl(f->pipe[1], F_SETPIPE_SZ, size) < 0)
        size /= 2;
    return 0;
}

static int connect_target(void)
{
    struct addrinfo *ai = resolve(cfg.target, 0);
    int fd = -1;

    if (ai == NULL)
        return -1;
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

/* A connection: dials the target, runs the upstream direction here and
 * the downstream one in a second thread. */
static void *conn_run(void *arg)
{
    int client = (int)(intptr_t)arg, server = connect_target();
    struct flow up = { .from = client, .to = server },
                down = { .from = server, .to = client };
    pthread_t t;

    if (server < 0) {
        close(client);
        return NULL;
    }
    if (flow_pipe(&up) < 0) {
        close(server);
        close(client);
        return NULL;
    }
    if (flow_pipe(&down) < 0) {
        flow_drop(&up);
        close(server);
        close(client);
        return NULL;
    }
    set_nodelay(client);
    set_nodelay(server);
    if (pthread_create(&t, NULL, flow_run, &down) != 0) {
        flow_drop(&up);
        flow_drop(&down);
        close(server);
        close(client);
        return NULL;
    }
    flow_run(&up);
    pthread_join(t, NULL);
    flow_drop(&up);
    flow_drop(&down);
    close(server);
    close(client);
    return NULL;
}

static int listen_on(const char *spec)
{
    struct addrinfo *ai = resolve(spec, 1);
    struct sockaddr_storage a;
    socklen_t alen = sizeof(a);
    int fd, one = 1;

    if (ai == NULL) {
        fprintf(stderr, "delay-relay: cannot resolve %s\n", spec);
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
        perror("delay-relay: listen");
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    printf("port %u\n", ntohs(a.ss_family == AF_INET6
                                  ? ((struct sockaddr_in6 *)&a)->sin6_port
                                  : ((struct sockaddr_in *)&a)->sin_port));
    fflush(stdout);
    return fd;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: delay-relay [options] TARGET\n"
            "Forwards each TCP connection to TARGET (HOST:PORT, [V6]:PORT)\n"
            "with a one-way delay and a bandwidth cap in each direction.\n"
            "  -l, --listen ADDR      listen address (127.0.0.1:0); prints "
            "\"port N\"\n"
            "  -d, --delay USEC       one-way delay, microseconds (0)\n"
            "  -b, --bandwidth BPS    bytes/s per direction per connection "
            "(0: none)\n"
            "  -q, --queue BYTES      bytes queued per direction before "
            "reading stops (4194304;\n"
            "                         fewer if the system's pipes hold less)\n"
            "  -s, --seconds N        exit after N seconds (300)\n"
            "  -r, --realtime         run under SCHED_FIFO (priority "
            "10) if allowed\n"
            "  -h, --help             this text\n");
}

/* Options into cfg; 0, 1 after --help, or -1 on a bad one. */
static int parse_args(int argc, char **argv)
{
    static const struct option opts[] = {
        { "listen", required_argument, NULL, 'l' },
        { "delay", required_argument, NULL, 'd' },
        { "bandwidth", required_argument, NULL, 'b' },
        { "queue", required_argument, NULL, 'q' },
        { "seconds", required_argument, NULL, 's' },
        { "realtime", no_argument, NULL, 'r' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 } };
    uint64_t v;
    int o;

    while ((o = getopt_long(argc, argv, "l:d:b:q:s:rh", opts, NULL)) != -1) {
        if (o == 'h') {
            usage(stdout);
            return 1;
        }
        if (o == 'l') {
            cfg.listen = optarg;
            continue;
        }
        if (o == 'r') {
            cfg.realtime = 1;
            continue;
        }
        if (o == '?' || parse_u64(optarg, &v) < 0 ||
            (o == 'd' && v > 60000000) || (o == 'q' && v == 0) ||
            (o == 's' && (v == 0 || v > 86400))) {
            if (o != '?')
                fprintf(stderr, "delay-relay: bad value for -%c: %s\n", o,
                        optarg);
            return -1;
        }
        if (o == 'd')
            cfg.delay_ns = v * 1000;
        else if (o == 'b')
            cfg.bandwidth = v;
        else if (o == 'q')
            cfg.queue_max = v;
        else
            cfg.seconds = (unsigned)v;
    }
    if (optind != argc - 1)
        return -1;
    cfg.target = argv[optind];
    return 0;
}

int main(int argc, char **argv)
{
    pthread_attr_t attr;
    int l, rc = parse_args(argc, argv);

    if (rc != 0) {
        if (rc < 0)
            usage(stderr);
        return rc < 0 ? 2 : 0;
    }
    if (cfg.realtime) {             /* the threads inherit it */
        struct sched_param sp = { .sched_priority = 10 };

        if (sched_setscheduler(0, SCHED_FIFO, &sp) < 0)
            fprintf(stderr, "delay-relay: --realtime: %s; at normal "
                    "priority\n", strerror(errno));
    }
    /* Sleeps end within 1 ns of their deadline, not the default 50 us. */
    (void)prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    signal(SIGPIPE, SIG_IGN);
    alarm(cfg.seconds);
    l = listen_on(cfg.listen);
    if (l < 0)
        return 2;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (;;) {
        int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        pthread_t t;

        if (c < 0 && (errno == EMFILE || errno == ENFILE)) {
            usleep(10000);                  /* wait for connections to end */
            continue;
        }
        if (c < 0 && (errno == EINTR || errno == ECONNABORTED))
            continue;
        if (c < 0) {
            perror("delay-relay: accept");
            return 2;
        }
        if (pthread_create(&t, &attr, conn_run, (void *)(intptr_t)c) != 0)
            close(c);
    }
}
