/*
 * dpc_admit: admission of TCP connections that have not authenticated yet.
 *
 * At most max_handshakes connections run their handshake at once; while
 * they all do, the server accepts nothing more and the kernel's listen
 * backlog holds the next clients.  At most per_source of the handshakes
 * belong to one source (an IPv4 address, or an IPv6 /64): the source's
 * further connections wait, accepted but not yet greeted, until one of its
 * handshakes ends, so a burst or a flood from one host cannot take every
 * slot from the others.  A source holding max_pending connections that have
 * not authenticated (in the handshake or waiting) is refused any more.
 * Nothing here ever drops a connection already admitted.
 *
 * Pure bookkeeping: no I/O, clock or logging.  Single-threaded (the
 * server's loop).  A connection holds a reference to its source from
 * dpc_admit_arrive() to dpc_admit_leave(); the source's entry is freed
 * with its last connection.
 */
#ifndef DPC_ADMIT_H
#define DPC_ADMIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define DPC_ADMIT_KEY_STRLEN 64

struct dpc_admit_cfg {
    unsigned max_handshakes;        /* at once, from every source */
    unsigned per_source;            /* at once, from one source */
    unsigned max_pending;           /* not authenticated, from one source */
};

enum dpc_admit_verdict {
    DPC_ADMIT_GREET,                /* start its handshake now */
    DPC_ADMIT_WAIT,                 /* keep it, greet it later */
    DPC_ADMIT_REFUSE,               /* its source is over its share */
    DPC_ADMIT_NOMEM,
};

/* Where a connection comes from: the address, or an IPv6 address's /64. */
struct dpc_admit_key {
    uint8_t family;                 /* 4, 6, or 0 for anything else */
    uint8_t addr[16];
};

struct dpc_admit_source;
struct dpc_admit;

/* NULL when out of memory.  Zero limits are raised to 1. */
struct dpc_admit *dpc_admit_new(const struct dpc_admit_cfg *cfg);
/* Frees the table; every source must have been left. */
void dpc_admit_free(struct dpc_admit *a);

/* The source key of a peer address (IPv4-mapped IPv6 counts as IPv4). */
void dpc_admit_key(const struct sockaddr *sa, struct dpc_admit_key *k);
/* "192.0.2.7", "2001:db8:1:2::/64", or "unknown". */
void dpc_admit_key_str(const struct dpc_admit_key *k, char *buf, size_t len);

/* A new connection from k.  GREET and WAIT count it (in the handshake or
 * waiting) and set *src; REFUSE and NOMEM count nothing and set *src to
 * NULL. */
enum dpc_admit_verdict dpc_admit_arrive(struct dpc_admit *a,
                                        const struct dpc_admit_key *k,
                                        struct dpc_admit_source **src);
/* 1 when a connection waiting from src may start its handshake now. */
int dpc_admit_can_greet(const struct dpc_admit *a,
                        const struct dpc_admit_source *src);
/* Counts one of src's waiting connections as in the handshake (call only
 * when dpc_admit_can_greet() says so). */
void dpc_admit_greet(struct dpc_admit *a, struct dpc_admit_source *src);
/* One of src's connections authenticated or closed; waiting: whether it
 * was still waiting (else in the handshake).  May free src. */
void dpc_admit_leave(struct dpc_admit *a, struct dpc_admit_source *src,
                     int waiting);

/* A number below n for k, the same for every connection of k's source and
 * spread by the table's keyed hash (no client can choose addresses that
 * share one): an index for per-source state kept in a fixed table. */
unsigned dpc_admit_key_slot(const struct dpc_admit *a,
                            const struct dpc_admit_key *k, unsigned n);

/* 1 while every handshake slot is taken: accept nothing. */
int dpc_admit_full(const struct dpc_admit *a);
unsigned dpc_admit_handshakes(const struct dpc_admit *a);
unsigned dpc_admit_waiting(const struct dpc_admit *a);
/* Sources with at least one connection not authenticated. */
unsigned dpc_admit_sources(const struct dpc_admit *a);
const struct dpc_admit_key *dpc_admit_source_key(
    const struct dpc_admit_source *src);

#endif
