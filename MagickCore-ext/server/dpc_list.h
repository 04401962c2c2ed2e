/*
 * dpc_list: an intrusive doubly linked list, oldest first, with a count:
 * the server's TCP connections (dpc_conn) and its Unix-socket ones
 * (dpc_local) each embed a node.  No allocation; the list owns nothing.
 */
#ifndef DPC_LIST_H
#define DPC_LIST_H

#include <stddef.h>
#include <stdint.h>

struct dpc_list_node {
    struct dpc_list_node *prev, *next;
};

struct dpc_list {
    struct dpc_list_node *head, *tail;
    uint64_t count;
};

/* The structure of type `type` whose member `member` is node n. */
#define DPC_LIST_ENTRY(n, type, member) \
    ((type *)(void *)((char *)(n) - offsetof(type, member)))

/* Appends n (on no list) at the tail. */
void dpc_list_push(struct dpc_list *l, struct dpc_list_node *n);
/* Unlinks n, which must be on l. */
void dpc_list_remove(struct dpc_list *l, struct dpc_list_node *n);

#endif
