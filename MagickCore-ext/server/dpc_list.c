/*
 * dpc_list: see dpc_list.h.
 */
#include "dpc_list.h"

#include <assert.h>

void dpc_list_push(struct dpc_list *l, struct dpc_list_node *n)
{
    n->next = NULL;
    n->prev = l->tail;
    if (l->tail != NULL)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
    l->count++;
}

void dpc_list_remove(struct dpc_list *l, struct dpc_list_node *n)
{
    assert(l->count > 0);
    if (n->prev != NULL)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next != NULL)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
    l->count--;
}
