/*
 * Unit tests for dpc_list: pushes keep the order and count, removal from
 * the head, the middle and the tail relinks the neighbours, and
 * DPC_LIST_ENTRY finds the embedding structure.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>

#include <cmocka.h>

#include "dpc_list.h"

struct item {
    int id;
    struct dpc_list_node node;
};

/* The ids from head to tail, checked against the links back too. */
static void expect_ids(const struct dpc_list *l, const int *ids, int n)
{
    const struct dpc_list_node *x = l->head, *prev = NULL;
    int i = 0;

    for (; x != NULL; prev = x, x = x->next, i++) {
        assert_true(i < n);
        assert_int_equal(DPC_LIST_ENTRY(x, struct item, node)->id, ids[i]);
        assert_ptr_equal(x->prev, prev);
    }
    assert_int_equal(i, n);
    assert_ptr_equal(l->tail, prev);
    assert_int_equal(l->count, n);
}

/* Four pushed: oldest first; removed from the middle, head and tail. */
static void list_push_remove_test(void **state)
{
    struct item it[4] = { { .id = 0 }, { .id = 1 }, { .id = 2 },
                          { .id = 3 } };
    struct dpc_list l = { 0 };

    for (int i = 0; i < 4; i++)
        dpc_list_push(&l, &it[i].node);
    expect_ids(&l, (int[]){ 0, 1, 2, 3 }, 4);
    dpc_list_remove(&l, &it[2].node);
    expect_ids(&l, (int[]){ 0, 1, 3 }, 3);
    dpc_list_remove(&l, &it[0].node);
    expect_ids(&l, (int[]){ 1, 3 }, 2);
    dpc_list_remove(&l, &it[3].node);
    expect_ids(&l, (int[]){ 1 }, 1);
    dpc_list_remove(&l, &it[1].node);
    expect_ids(&l, NULL, 0);
    assert_null(l.head);
    dpc_list_push(&l, &it[2].node);       /* usable again when empty */
    expect_ids(&l, (int[]){ 2 }, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(list_push_remove_test),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
