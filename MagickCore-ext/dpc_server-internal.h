/*
 * Shared between dpc_server.c (listeners, limits, timers) and dpc_conn.c
 * (one connection's I/O).  Not part of the core's interface.
 */
#ifndef DPC_SERVER_INTERNAL_H
#define DPC_SERVER_INTERNAL_H

#include <event2/event.h>
#include <event2/listener.h>

#include "dpc_admit.h"
#include "dpc_log.h"
#include "dpc_server.h"
#include "dpc_native.h"
#include "dpc_session.h"

struct dpc_conn;

#define DPC_CONN_INBUF (64 * 1024)    /* > the largest fixed frame */

/* A doubly linked list of connections, oldest first. */
struct dpc_conn_list {
    struct dpc_conn *head, *tail;
    uint64_t count;
};

struct dpc_listener {
    struct dpc_server *server;
    struct evconnlistener *ev;
    enum dpc_stock_flavor flavor;
    char addr[80];
};

struct dpc_server {
    struct dpc_server_cfg cfg;
    struct event_base *base;
    struct dpc_listener *listeners;
    size_t nlisteners;
    struct event *sigint, *sigterm, *sweep;
    struct event *resume;           /* ends a pause after accept failed */
    struct dpc_store *store;
    struct dpc_local *local;        /* NULL: no Unix socket */
    struct dpc_admit *admit;        /* who may run a handshake now */
    /* waiting: accepted, not greeted yet (their source is at its share of
     * handshakes, or every slot is taken); unauth: in the handshake */
    struct dpc_conn_list waiting, unauth, auth;
    int accepting;                  /* the listeners are enabled */
    int accept_failed;              /* paused a second after EMFILE & co */
    int stopping;                   /* closing everything: admit nothing */
    uint64_t next_id;
    uint64_t requests_closed;       /* requests of connections now closed */
    uint64_t accepted, refused, handshake_timeouts, auth_failures;
    uint64_t accept_pauses, waited;
    /* Warnings a flood could multiply: each kind within its own budget. */
    struct dpc_log_limit refuse_log, drop_log, close_log, open_log;
    double started;
    double hint_logged;             /* last other-generation hint logged */
};

struct dpc_conn {
    struct dpc_server *server;
    struct dpc_conn *prev, *next;
    struct dpc_conn_list *list;     /* waiting, unauth or auth */
    struct dpc_admit_source *src;   /* until authenticated */
    uint64_t id;
    int fd;
    char peer[80];
    struct dpc_session *session;    /* every connection starts stock */
    struct dpc_native *native;      /* after the native magic, instead */
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
};

void dpc_conn_list_push(struct dpc_conn_list *l, struct dpc_conn *c);
void dpc_conn_list_remove(struct dpc_conn_list *l, struct dpc_conn *c);

/* Takes ownership of fd and of src's reference.  greet: send the nonce
 * now (in the handshake), else wait in s->waiting for dpc_conn_greet().
 * NULL (fd closed, src left) on failure. */
struct dpc_conn *dpc_conn_new(struct dpc_server *s, int fd, const char *peer,
                              enum dpc_stock_flavor flavor,
                              struct dpc_admit_source *src, int greet);
/* A waiting connection starts its handshake (admission already counted). */
void dpc_conn_greet(struct dpc_conn *c);
/* The request counters of whichever protocol c speaks. */
const struct dpc_session_counters *dpc_conn_counters(const struct dpc_conn *c);
/* Logs the outcome, frees the session (and its cache), closes the socket. */
void dpc_conn_close(struct dpc_conn *c, const char *why);
/* The same for a connection the server gives up on (a timeout): logged as
 * a warning. */
void dpc_conn_drop(struct dpc_conn *c, const char *why);

/* A connection left the handshake (authenticated or closed): greets the
 * waiting connections now admissible and resumes accepting if there is
 * room. */
void dpc_server_admit_next(struct dpc_server *s);

#endif
