/*
 * Shared between dpc_server.c (listeners, limits, timers) and dpc_conn.c
 * (one connection's I/O).  Not part of the core's interface.
 */
#ifndef DPC_SERVER_INTERNAL_H
#define DPC_SERVER_INTERNAL_H

#include <event2/event.h>
#include <event2/listener.h>

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
    struct dpc_store *store;
    struct dpc_local *local;        /* NULL: no Unix socket */
    struct dpc_conn_list unauth, auth;
    uint64_t next_id;
    uint64_t requests_closed;       /* requests of connections now closed */
    uint64_t accepted, refused, evicted, auth_failures;
    double started;
    double hint_logged;             /* last other-generation hint logged */
};

struct dpc_conn {
    struct dpc_server *server;
    struct dpc_conn *prev, *next;
    struct dpc_conn_list *list;     /* unauth or auth */
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

/* Takes ownership of fd.  NULL (fd closed) on failure. */
struct dpc_conn *dpc_conn_new(struct dpc_server *s, int fd, const char *peer,
                              enum dpc_stock_flavor flavor);
/* The request counters of whichever protocol c speaks. */
const struct dpc_session_counters *dpc_conn_counters(const struct dpc_conn *c);
/* Logs the outcome, frees the session (and its cache), closes the socket. */
void dpc_conn_close(struct dpc_conn *c, const char *why);

#endif
