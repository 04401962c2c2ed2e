/*
 * dpc_conn: the server's TCP client connections.  Each reads into a fixed
 * buffer, feeds whole frames to its protocol session through the session's
 * dpc_proto_ops (stock at first, native once the client asks for it), and
 * writes the session's output straight from the cache with sendmsg.  A
 * native client may speak TLS (detected by its ClientHello after the
 * nonce): then the same session runs over SSL_read/SSL_write.
 *
 * The connections live in a dpc_conn_set that their owner (dpc_server)
 * embeds and configures: the set borrows the event base, store, admission
 * and keys, and reaches its owner only through the callbacks it is given
 * (status JSON, a handshake slot freed, a drain requested), so this module
 * does not depend on the server; the owner's draining flag, which the
 * sessions read, lives in the set.  The set owns every connection on its
 * lists.
 * Single-threaded, on the owner's event base.
 */
#ifndef DPC_CONN_H
#define DPC_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "dpc_admit.h"
#include "dpc_list.h"
#include "dpc_log.h"
#include "dpc_metrics.h"
#include "dpc_proto.h"
#include "dpc_stock.h"
#include "dpc_store.h"
#include "dpc_tls.h"
#include "dpc_tlsserver.h"

struct event;
struct event_base;
struct dpc_conn;

#define DPC_CONN_INBUF (64 * 1024)    /* > the largest fixed frame */
#define DPC_CONN_PREAUTH_LOGS 64      /* log budgets for sources, hashed */

struct dpc_conn_set {
    /* Set by the owner before the first connection; all borrowed. */
    struct event_base *base;
    struct dpc_store *store;
    struct dpc_admit *admit;        /* who may run a handshake now */
    const uint8_t *sipkey;          /* stock key (DPC_SIPHASH_KEYLEN) */
    const uint8_t *wirekey;         /* native key (DPC_WIRE_KEY_LEN) */
    unsigned busy_poll_us;          /* see dpc_server_cfg */
    struct dpc_metrics *metrics;    /* request latencies; NULL: none */
    /* Native clients: TLS only (on), either (both) or plaintext only
     * (off, tls NULL).  Stock clients are plaintext in every mode. */
    enum dpc_tls_mode tls_mode;
    struct dpc_tlsserver *tls;
    dpc_proto_status_fn status;     /* the status JSON, for both protocols */
    /* A connection left the handshake (authenticated or closed): the owner
     * greets the waiting connections now admissible. */
    void (*handshake_done)(void *arg);
    /* A client asked the server to drain (the stock 'D'). */
    void (*drain)(void *arg);
    void *arg;                      /* of status, handshake_done, drain */
    /* Set by the owner while it drains: sessions refuse new caches and
     * serve the ones they have. */
    int draining;

    /* waiting: accepted, not greeted yet (their source is at its share of
     * handshakes, or every slot is taken); unauth: in the handshake */
    struct dpc_list waiting, unauth, auth;     /* of dpc_conn, oldest first */
    uint64_t next_id;
    uint64_t requests_closed;       /* requests of connections now closed */
    uint64_t auth_failures;
    /* Warnings a flood could multiply: each kind within its own budget. */
    struct dpc_log_limit drop_log, close_log, open_log;
    struct dpc_log_limit hint_log;  /* the other generation's handshake */
    /* Lines about connections not authenticated (closed, dropped,
     * refused): a budget per source (dpc_conn_preauth_log), so a flood
     * from one source neither floods the log nor hides the others'. */
    struct dpc_log_limit preauth_log[DPC_CONN_PREAUTH_LOGS];
};

struct dpc_conn {
    struct dpc_conn_set *set;
    struct dpc_list_node link;
    struct dpc_list *list;          /* waiting, unauth or auth */
    struct dpc_admit_source *src;   /* until authenticated */
    uint64_t id;
    /* Open connections of the listener that accepted c (the owner's,
     * borrowed): decremented when c closes.  NULL: not counted. */
    uint64_t *open_count;
    int fd;
    char peer[80];
    /* The protocol session (owned) and its table: dpc_session_ops at
     * first, dpc_native_ops after the native magic. */
    const struct dpc_proto_ops *proto;
    void *sess;
    /* Input: in_buf[in_start, in_end) is received but not consumed.  An
     * inline 16 bytes until the client authenticates (idle sockets cost
     * little), then DPC_CONN_INBUF bytes, allocated once. */
    uint8_t *in_buf;
    size_t in_start, in_end, in_cap;
    uint8_t in_small[16];
    struct event *rev, *wev;
    double accepted, last_active;
    int eof;                        /* the peer sent FIN: serve what is
                                       buffered, then close */
    /* TLS: after the nonce, the first bytes are peeked (sniffed) for a
     * ClientHello; then ssl (owned) carries the native session. */
    int sniffed;
    int sniff_wait;                 /* waited (once) for 8 bytes to tell */
    SSL *ssl;
    short tls_want;                 /* POLLIN/POLLOUT the last EAGAIN
                                       of a write waits for */
    int read_wants_write;           /* a read waits for POLLOUT */
    int tls_up;                     /* the TLS handshake completed */
    int tls_full;                   /* the last TLS read filled its room */
    const char *refuse;             /* close with this once output is out */
    char tls_err[DPC_ERRLEN];
    char why[DPC_ERRLEN + 128];     /* a close reason built from it */
};

/* The connection on a set's list at node n; NULL for NULL. */
static inline struct dpc_conn *dpc_conn_of(const struct dpc_list_node *n)
{
    return n != NULL ? DPC_LIST_ENTRY(n, struct dpc_conn, link) : NULL;
}

/* Takes ownership of fd and of src's reference.  greet: send the nonce
 * now (in the handshake), else wait in set->waiting for dpc_conn_greet().
 * NULL (fd closed, src left) on failure. */
struct dpc_conn *dpc_conn_new(struct dpc_conn_set *set, int fd,
                              const char *peer, enum dpc_stock_flavor flavor,
                              struct dpc_admit_source *src, int greet);
/* A waiting connection starts its handshake (admission already counted). */
void dpc_conn_greet(struct dpc_conn *c);
/* The request counters of whichever protocol c speaks. */
const struct dpc_session_counters *dpc_conn_counters(const struct dpc_conn *c);
/* The log budget of k's source (shared with the few sources k's hashes
 * alike), for lines about its connections before they authenticate. */
struct dpc_log_limit *dpc_conn_preauth_log(struct dpc_conn_set *set,
                                           const struct dpc_admit_key *k);
/* Logs the outcome (before authentication: within the source's budget),
 * frees the session (and its cache), closes the socket. */
void dpc_conn_close(struct dpc_conn *c, const char *why);
/* The same for a connection the server gives up on (a timeout): logged as
 * a warning. */
void dpc_conn_drop(struct dpc_conn *c, const char *why);

#endif
