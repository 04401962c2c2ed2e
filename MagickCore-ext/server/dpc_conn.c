/*
 * dpc_conn: see dpc_conn.h.  One client connection: reads into a fixed
 * buffer, feeds whole frames to its protocol session (c->proto), and
 * writes the session's output straight from the cache with sendmsg (no
 * copy, no allocation per request).  While output is blocked the
 * connection stops reading: a client that does not read its replies cannot
 * make the server buffer without bound.
 *
 * Under TLS the handshake runs first (tls_handshake, before any byte of
 * the session), then the same steps run through dpc_tls_readv/writev and
 * dpc_tls_flush.  A write may wait for input (c->tls_want) and a read for
 * output (c->read_wants_write), and records OpenSSL has read ahead but not
 * handed over yet are read before the connection waits for the socket.
 */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/rand.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "dpc_conn.h"
#include "dpc_log.h"
#include "dpc_native.h"
#include "dpc_session.h"
#include "dpc_util.h"

#define STEPS_PER_WAKEUP 256            /* fairness between clients */
#define IOV_BATCH 64
#define SPIN_ROUNDS_PER_WAKEUP 64     /* requests served in one spin run */

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);

/* c joins list l (and leaves it), through its link. */
static void dpc_conn_list_push(struct dpc_list *l, struct dpc_conn *c)
{
    c->list = l;
    dpc_list_push(l, &c->link);
}

static void dpc_conn_list_remove(struct dpc_list *l, struct dpc_conn *c)
{
    dpc_list_remove(l, &c->link);
    c->list = NULL;
}

static size_t status_json(void *arg, char *buf, size_t len)
{
    struct dpc_conn *c = arg;

    return c->set->status(c->set->arg, buf, len);
}

/* A client's 'D': the owner starts draining. */
static void drain_request(void *arg)
{
    struct dpc_conn *c = arg;

    dpc_log(DPC_LOG_INFO, "conn %llu from %s: drain requested",
            (unsigned long long)c->id, c->peer);
    c->set->drain(c->set->arg);
}

static void trace_request(void *arg, const char *msg)
{
    struct dpc_conn *c = arg;

    dpc_log(DPC_LOG_TRACE, "conn %llu: %s", (unsigned long long)c->id, msg);
}

/* A native OPEN the store had no room for: the client moves on (to its
 * next tier, or an error), the server says so. */
static void open_refused(void *arg, const char *why)
{
    struct dpc_conn *c = arg;

    dpc_log_limited(&c->set->open_log, DPC_LOG_WARN,
                    "conn %llu from %s (native): open refused: %s",
                    (unsigned long long)c->id, c->peer, why);
}

/* Without this, a client's header and payload sent as two writes wait on
 * our delayed ACK (Nagle on the client's side). */
static void quickack(int fd)
{
#ifdef TCP_QUICKACK
    static const int on = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof(on));
#endif
}

static int grow_input(struct dpc_conn *c);

const struct dpc_session_counters *dpc_conn_counters(const struct dpc_conn *c)
{
    return c->proto->counters(c->sess);
}

/* The stock session saw the native magic, or the client's ClientHello
 * arrived: continue with a dpc_native.  refuse: send the "TLS required"
 * mark in place of the challenge (then c->refuse closes). */
static int go_native(struct dpc_conn *c, int refuse)
{
    uint8_t ns[DPC_WIRE_NONCE_LEN];
    struct dpc_native_cfg ncfg = {
        .key = c->set->wirekey, .store = c->set->store,
        .status = status_json, .refused = open_refused,
        .draining = &c->set->draining, .metrics = c->set->metrics,
        .arg = c,
    };
    struct dpc_native *native;

    if (dpc_log_enabled(DPC_LOG_TRACE))
        ncfg.trace = trace_request;
    /* the client's proof is larger than the inline buffer */
    if (RAND_bytes(ns, sizeof(ns)) != 1 || grow_input(c) < 0)
        return -1;
    if (refuse)
        memcpy(ns, DPC_TLS_REQUIRED_MARK, DPC_TLS_REQUIRED_LEN);
    native = dpc_native_new(&ncfg, ns);
    if (native == NULL)
        return -1;
    c->proto->free(c->sess);
    c->proto = &dpc_native_ops;
    c->sess = native;
    return 0;
}

struct dpc_conn *dpc_conn_new(struct dpc_conn_set *s, int fd,
                              const char *peer, enum dpc_stock_flavor flavor,
                              struct dpc_admit_source *src, int greet)
{
    uint8_t nonce[DPC_STOCK_NONCE_MAX];
    struct dpc_session_cfg scfg = {
        .flavor = flavor, .sipkey = s->sipkey, .store = s->store,
        .allow_native = 1,
        .status = status_json, .draining = &s->draining,
        .drain = s->drain != NULL ? drain_request : NULL,
        .metrics = s->metrics, .arg = NULL,
    };
    struct dpc_conn *c = calloc(1, sizeof(*c));
    int on = 1;

    if (c == NULL)
        goto err;
    c->set = s;
    c->fd = fd;
    c->id = ++s->next_id;
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    c->accepted = c->last_active = dpc_now();
    scfg.arg = c;
    if (dpc_log_enabled(DPC_LOG_TRACE))
        scfg.trace = trace_request;
    if (RAND_bytes(nonce, (int)dpc_stock_nonce_len(flavor)) != 1)
        goto err;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    c->proto = &dpc_session_ops;
    c->sess = dpc_session_new(&scfg, nonce);
    c->in_buf = c->in_small;
    c->in_cap = sizeof(c->in_small);
    c->rev = event_new(s->base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->wev = event_new(s->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    if (c->sess == NULL || c->rev == NULL || c->wev == NULL)
        goto err;
    c->src = src;
    if (!greet) {
        dpc_conn_list_push(&s->waiting, c);
        return c;
    }
    dpc_conn_list_push(&s->unauth, c);
    /* The nonce goes out at once; on_write takes over if it cannot. */
    event_add(c->wev, NULL);
    return c;
err:
    dpc_admit_leave(s->admit, src, !greet);
    dpc_log(DPC_LOG_ERROR, "conn from %s: out of resources", peer);
    if (c != NULL) {
        dpc_session_free(c->sess);
        if (c->rev != NULL)
            event_free(c->rev);
        if (c->wev != NULL)
            event_free(c->wev);
        free(c);
    }
    close(fd);
    return NULL;
}

void dpc_conn_greet(struct dpc_conn *c)
{
    struct dpc_conn_set *s = c->set;

    dpc_log(DPC_LOG_TRACE, "conn %llu: greeted after waiting %.3fs",
            (unsigned long long)c->id, dpc_now() - c->accepted);
    dpc_conn_list_remove(&s->waiting, c);
    dpc_conn_list_push(&s->unauth, c);
    event_add(c->wev, NULL);        /* the nonce */
}

struct dpc_log_limit *dpc_conn_preauth_log(struct dpc_conn_set *s,
                                           const struct dpc_admit_key *k)
{
    return &s->preauth_log[dpc_admit_key_slot(s->admit, k,
                                              DPC_CONN_PREAUTH_LOGS)];
}

/* Closes c; a warning (within the server's budget for such lines) when it
 * ends on an error or the server gives up on it.  Before authentication
 * every line, info included, is within its source's budget. */
static void close_conn(struct dpc_conn *c, const char *why, int dropped)
{
    struct dpc_conn_set *s = c->set;
    const struct dpc_session_counters *n = dpc_conn_counters(c);
    const char *err = c->proto->error(c->sess);
    struct dpc_list *list = c->list;
    const char *hint = list == &s->unauth ? c->proto->hint(c->sess) : NULL;
    struct dpc_log_limit *pre = list != &s->auth && c->src != NULL
        ? dpc_conn_preauth_log(s, dpc_admit_source_key(c->src)) : NULL;
    struct dpc_log_limit *lim = pre != NULL ? pre
                                : dropped ? &s->drop_log : &s->close_log;
    const char *pname = c->ssl != NULL ? "native, TLS" : c->proto->name;
    static const char fmt[] = "conn %llu from %s (%s): %s after %.3fs, "
                              "%llu requests, %llu bytes in, %llu bytes out";

    if (!c->proto->authenticated(c->sess) && c->proto->errcode(c->sess) == DPC_E_AUTH)
        s->auth_failures++;
    if (hint != NULL)
        dpc_log_limited(pre != NULL ? pre : &s->hint_log, DPC_LOG_WARN,
                        "conn %llu from %s: %s: %s",
                        (unsigned long long)c->id, c->peer, why, hint);
    if (dropped || err[0] != '\0' || pre != NULL)
        dpc_log_limited(lim, dropped || err[0] != '\0' ? DPC_LOG_WARN
                             : DPC_LOG_INFO, fmt, (unsigned long long)c->id,
                        c->peer, pname, why,
                        dpc_now() - c->accepted,
                        (unsigned long long)n->requests,
                        (unsigned long long)n->bytes_in,
                        (unsigned long long)n->bytes_out);
    else
        dpc_log(DPC_LOG_INFO, fmt, (unsigned long long)c->id, c->peer,
                pname, why, dpc_now() - c->accepted,
                (unsigned long long)n->requests,
                (unsigned long long)n->bytes_in,
                (unsigned long long)n->bytes_out);
    s->requests_closed += n->requests;
    if (c->open_count != NULL)
        --*c->open_count;
    dpc_conn_list_remove(list, c);
    if (c->src != NULL)
        dpc_admit_leave(s->admit, c->src, list == &s->waiting);
    event_free(c->rev);
    event_free(c->wev);
    if (c->in_buf != c->in_small)
        free(c->in_buf);
    SSL_free(c->ssl);
    c->proto->free(c->sess);
    close(c->fd);
    free(c);
    if (list != &s->auth)
        s->handshake_done(s->arg);  /* a handshake slot is free */
}

void dpc_conn_close(struct dpc_conn *c, const char *why)
{
    close_conn(c, why, 0);
}

void dpc_conn_drop(struct dpc_conn *c, const char *why)
{
    close_conn(c, why, 1);
}

/* The reason of a failed transfer: TLS's own, else errno's.  A TLS
 * handshake that fails is an authentication failure (a wrong PSK fails
 * the binder check, a certificate its verification). */
static const char *io_error(struct dpc_conn *c)
{
    if (c->ssl == NULL || errno != ECONNRESET || c->tls_err[0] == '\0')
        return strerror(errno);
    if (c->tls_up)
        return c->tls_err;
    c->set->auth_failures++;
    snprintf(c->why, sizeof(c->why), "authentication failed in the TLS "
             "handshake (%s): is cache:shared-secret the same on both "
             "sides, and do the certificates match?", c->tls_err);
    return c->why;
}

/* Runs the TLS handshake on, before any of the session's bytes: 1 when
 * it is done, 0 when it waits for the socket (the events set for it), -1
 * on failure (errno ECONNRESET, the reason in c->tls_err). */
static int tls_handshake(struct dpc_conn *c)
{
    int rc, e;

    ERR_clear_error();
    rc = SSL_do_handshake(c->ssl);
    if (rc == 1) {
        c->tls_up = 1;
        c->tls_full = 1;        /* records may have come with its end */
        return 1;
    }
    e = SSL_get_error(c->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        if (e == SSL_ERROR_WANT_READ) {
            event_del(c->wev);
            if (!c->eof)
                event_add(c->rev, NULL);
        } else {
            event_del(c->rev);
            event_add(c->wev, NULL);
        }
        return 0;
    }
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
        snprintf(c->tls_err, sizeof(c->tls_err), "TLS: %s",
                 errno != 0 ? strerror(errno) : "peer closed");
    else
        dpc_tls_err(c->tls_err, sizeof(c->tls_err), "TLS");
    errno = ECONNRESET;
    return -1;
}

/* 1 when all output went out (under TLS, out of its write buffer too), 0
 * when the socket is full (or a TLS write waits for input: c->tls_want),
 * -1 on error. */
static int flush(struct dpc_conn *c)
{
    struct iovec iov[IOV_BATCH];
    struct msghdr msg = { .msg_iov = iov };
    ssize_t n;

    c->tls_want = POLLOUT;
    for (;;) {
        msg.msg_iovlen = (size_t)c->proto->output(c->sess, iov, IOV_BATCH);
        if (msg.msg_iovlen == 0 && c->ssl != NULL) {
            /* records still in the TLS write buffer go out now */
            int rc = dpc_tls_flush(c->ssl);

            return rc > 0 ? 1 : rc;
        }
        if (msg.msg_iovlen == 0)
            return 1;
        if (c->ssl != NULL)
            n = dpc_tls_writev(c->ssl, iov, (int)msg.msg_iovlen,
                               &c->tls_want, c->tls_err, sizeof(c->tls_err));
        else
            n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n < 0)
            return -1;
        c->proto->sent(c->sess, (size_t)n);
        c->last_active = dpc_now();
    }
}

/* Replaces the small inline input buffer by a full one.  -1 when that
 * cannot be allocated. */
static int grow_input(struct dpc_conn *c)
{
    uint8_t *buf;
    size_t n = c->in_end - c->in_start;

    if (c->in_buf != c->in_small)
        return 0;
    buf = malloc(DPC_CONN_INBUF);
    if (buf == NULL)
        return -1;
    memcpy(buf, c->in_buf + c->in_start, n);
    c->in_buf = buf;
    c->in_start = 0;
    c->in_end = n;
    c->in_cap = DPC_CONN_INBUF;
    return 0;
}

/* Moves c to the authenticated list and gives it a full input buffer; its
 * handshake slot goes to the next client. */
static int authenticated(struct dpc_conn *c)
{
    struct dpc_conn_set *s = c->set;

    if (grow_input(c) < 0)
        return -1;

    dpc_conn_list_remove(&s->unauth, c);
    dpc_conn_list_push(&s->auth, c);
    dpc_admit_leave(s->admit, c->src, 0);
    c->src = NULL;
    s->handshake_done(s->arg);
    return 0;
}

/* One step: feed the session the bytes it wants.  0 when it needs more. */
static int feed(struct dpc_conn *c)
{
    size_t want = c->proto->want(c->sess);
    size_t avail = c->in_end - c->in_start, used;

    if (want == 0 || avail < want)
        return 0;
    used = c->proto->input(c->sess, c->in_buf + c->in_start, avail);
    c->in_start += used;
    if (c->in_start == c->in_end)
        c->in_start = c->in_end = 0;
    return used > 0;
}

/* Runs the session until it needs input, output blocks, or the step budget
 * is spent.  Returns 1 when it waits for input, 0 otherwise (c may have
 * been closed and freed). */
static int drive(struct dpc_conn *c)
{
    int steps = 0, rc;

    if (c->ssl != NULL && !c->tls_up) {
        rc = tls_handshake(c);
        if (rc < 0) {
            dpc_conn_close(c, io_error(c));
            return 0;
        }
        if (rc == 0)
            return 0;
    }
    for (;;) {
        rc = flush(c);
        if (rc < 0) {
            dpc_conn_close(c, io_error(c));
            return 0;
        }
        if (rc == 0 && c->tls_want == POLLIN) {
            /* the TLS handshake waits for the client: on_read resumes */
            event_del(c->wev);
            if (!c->eof)
                event_add(c->rev, NULL);
            return 0;
        }
        if (rc == 0) {          /* wait for room; stop reading meanwhile */
            event_del(c->rev);
            event_add(c->wev, NULL);
            return 0;
        }
        if (c->refuse != NULL) {
            dpc_conn_drop(c, c->refuse);
            return 0;
        }
        if (c->list == &c->set->unauth && c->proto->handover(c->sess)) {
            int refuse = c->ssl == NULL && c->set->tls_mode == DPC_TLS_ON;

            if (go_native(c, refuse) < 0) {
                dpc_conn_close(c, "out of memory");
                return 0;
            }
            if (refuse)
                c->refuse = "plaintext native client refused: this server "
                            "requires TLS (--tls on); set cache:dpc-tls=on "
                            "on the client, or run the server with --tls both";
            continue;           /* send the native challenge */
        }
        if (c->proto->finished(c->sess)) {
            const char *err = c->proto->error(c->sess);

            dpc_conn_close(c, err[0] != '\0' ? err : "closed");
            return 0;
        }
        if (c->list == &c->set->unauth &&
            c->proto->authenticated(c->sess) && authenticated(c) < 0) {
            dpc_conn_close(c, "out of memory");
            return 0;
        }
        if (!feed(c)) {
            if (!c->eof)
                return 1;
            dpc_conn_close(c, c->proto->idle(c->sess)
                                  ? "peer closed" : "peer closed mid-request");
            return 0;
        }
        if (++steps == STEPS_PER_WAKEUP) {
            event_active(c->rev, EV_READ, 0);
            return 0;
        }
    }
}

/* Where a payload's next bytes can be received in place (nothing else is
 * buffered), or NULL. */
static uint8_t *input_span(struct dpc_conn *c, size_t *len)
{
    if (c->in_start != c->in_end)
        return NULL;
    return c->proto->input_span(c->sess, len);
}

/* Room at the end of the input buffer, compacting it when that helps. */
static size_t input_room(struct dpc_conn *c)
{
    if (c->in_start > 0 && c->in_cap - c->in_end < c->in_cap / 2) {
        memmove(c->in_buf, c->in_buf + c->in_start, c->in_end - c->in_start);
        c->in_end -= c->in_start;
        c->in_start = 0;
    }
    return c->in_cap - c->in_end;
}

/* Reads what the socket has; with spin, polls up to that long first.  A
 * stock client sends its next request microseconds after our reply, so a
 * short poll saves a sleep and a wakeup per round trip. */
static ssize_t read_some(struct dpc_conn *c, int fd, double spin)
{
    double until = spin > 0 ? dpc_now() + spin : 0;
    size_t room = input_room(c), span = 0;
    uint8_t *direct = input_span(c, &span);
    ssize_t n;

    for (;;) {
        /* A payload goes straight into the cache: no copy through the
         * input buffer. */
        if (c->ssl != NULL) {
            struct iovec iov = direct != NULL
                ? (struct iovec){ direct, span }
                : (struct iovec){ c->in_buf + c->in_end, room };
            short want;

            n = dpc_tls_readv(c->ssl, &iov, 1, &want, c->tls_err,
                              sizeof(c->tls_err));
            /* short of the room: OpenSSL has nothing whole left */
            c->tls_full = n > 0 && (size_t)n == iov.iov_len;
            c->read_wants_write = n < 0 && errno == EAGAIN &&
                                  want == POLLOUT;
            if (c->read_wants_write) {
                event_add(c->wev, NULL);
                return n;
            }
        } else if (direct != NULL)
            n = recv(fd, direct, span, MSG_DONTWAIT);
        else
            n = recv(fd, c->in_buf + c->in_end, room, MSG_DONTWAIT);
        if (n > 0 && direct != NULL)
            c->proto->input_done(c->sess, (size_t)n);
        else if (n > 0)
            c->in_end += (size_t)n;
        if (n >= 0 || (errno != EAGAIN && errno != EINTR) || spin <= 0 ||
            dpc_now() >= until)
            return n;
    }
}

/* Sets the bytes a read event waits for (SO_RCVLOWAT). */
static void set_lowat(struct dpc_conn *c, int bytes)
{
    if (setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &bytes, sizeof(bytes)) < 0)
        (void)0;                /* then the event wakes early: harmless */
}

/* Right after the nonce: does the client start TLS?  Peeks its first
 * bytes; 1 when the connection now runs TLS (or was refused), 0 when it
 * goes on in plaintext, 2 when it cannot tell yet, -1 when c was closed.
 * Every client's first write holds at least 8 bytes (a ClientHello, the
 * native magic, a stock key or command), so fewer that could begin a
 * ClientHello are waited out once, the socket waking only at 8; a second
 * wake with fewer means the peer closed: plaintext, whose read sees it. */
static int sniff(struct dpc_conn *c)
{
    uint8_t p[8];
    ssize_t n = recv(c->fd, p, sizeof(p), MSG_PEEK | MSG_DONTWAIT);
    int hello;

    if (n <= 0)
        return 0;               /* the normal read sees EOF or the error */
    hello = dpc_tls_is_client_hello(p, (size_t)n);
    if (hello < 0 && !c->sniff_wait) {
        c->sniff_wait = 1;
        set_lowat(c, (int)sizeof(p));
        return 2;
    }
    if (c->sniff_wait)
        set_lowat(c, 1);
    c->sniffed = 1;
    if (hello <= 0)
        return 0;
    if (c->set->tls == NULL) {
        /* fatal no_application_protocol alert: the client names it */
        static const uint8_t alert[] = { 0x15, 0x03, 0x03, 0x00, 0x02,
                                         0x02, 0x78 };

        if (send(c->fd, alert, sizeof(alert), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            (void)0;        /* closing anyway */
        dpc_conn_drop(c, "TLS client refused: this server runs with "
                         "--tls off; run it with --tls on or both, or set "
                         "cache:dpc-tls=off on the client");
        return -1;
    }
    c->ssl = dpc_tlsserver_accept(c->set->tls, c->fd);
    if (c->ssl == NULL || go_native(c, 0) < 0) {
        dpc_conn_close(c, "out of memory");
        return -1;
    }
    return 1;
}

/* OpenSSL holds records it has read ahead and not handed over (the last
 * read filled its room): no readable event comes for them.  A partial
 * record it holds after a short read waits for the socket like the rest. */
static int tls_more(const struct dpc_conn *c)
{
    return c->ssl != NULL && !c->eof && c->tls_full &&
           SSL_has_pending(c->ssl);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct dpc_conn *c = arg;
    double spin = 0;
    ssize_t n;
    int rounds;

    if (!c->sniffed && c->list == &c->set->unauth &&
        c->proto == &dpc_session_ops && c->in_end == 0) {
        int rc = sniff(c);

        if (rc < 0 || rc == 2)
            return;
    }
    for (rounds = 0; rounds < SPIN_ROUNDS_PER_WAKEUP; rounds++) {
        /* A full buffer is drained by drive() before anything more is read:
         * reading 0 bytes would look like the peer closing. */
        if (!c->eof && input_room(c) > 0 && (c->ssl == NULL || c->tls_up)) {
            n = read_some(c, fd, spin);
            if (n == 0) {
                /* Requests that arrived before the FIN are still served. */
                c->eof = 1;
                event_del(c->rev);
            }
            if (n < 0 && errno != EAGAIN && errno != EINTR) {
                dpc_conn_close(c, io_error(c));
                return;
            }
            if (n < 0 && spin > 0)
                return;         /* nothing came: back to the event loop */
            if (n > 0) {
                quickack(fd);
                c->last_active = dpc_now();
            }
        }
        if (!drive(c))
            return;
        /* decrypted bytes OpenSSL still holds: no readable event comes
         * for them */
        if (tls_more(c)) {
            spin = 0;
            continue;
        }
        if (!c->proto->authenticated(c->sess))
            return;
        spin = (double)c->set->busy_poll_us / 1e6;
        if (spin <= 0)
            return;
    }
    if (tls_more(c))
        event_active(c->rev, EV_READ, 0);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct dpc_conn *c = arg;
    int rc;

    if (c->ssl != NULL && !c->tls_up) {     /* the handshake's turn */
        event_del(c->wev);
        drive(c);
        return;
    }
    if (c->read_wants_write) {      /* a TLS read waited for room */
        c->read_wants_write = 0;
        event_active(c->rev, EV_READ, 0);
    }
    rc = flush(c);
    if (rc < 0) {
        dpc_conn_close(c, io_error(c));
        return;
    }
    if (rc == 0 && c->tls_want == POLLIN) {
        event_del(c->wev);
        if (!c->eof)
            event_add(c->rev, NULL);
        return;
    }
    if (rc == 0)
        return;
    event_del(c->wev);
    if (!c->eof)
        event_add(c->rev, NULL);
    drive(c);
}
