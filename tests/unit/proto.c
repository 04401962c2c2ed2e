/*
 * Unit tests for dpc_proto: the status reply's buffer (not served without
 * a status function; the function's length comes back) and request
 * tracing (formatted and handed over; nothing at all without a function).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dpc_proto.h"
#include "dpc_util.h"

static size_t status_fn(void *arg, char *buf, size_t len)
{
    int *calls = arg;

    (*calls)++;
    assert_int_equal(len, DPC_PROTO_STATUS_MAX);
    return (size_t)snprintf(buf, len, "{\"caches\":%d}", 3);
}

/* No status function: NULL, and the reason says it is not served. */
static void proto_status_not_served_test(void **state)
{
    char err[DPC_ERRLEN] = "";
    size_t len = 77;

    assert_null(dpc_proto_status(NULL, NULL, &len, err, sizeof(err)));
    assert_string_equal(err, "status not served here");
    assert_int_equal(len, 77);
}

/* The JSON the function wrote, in a buffer the caller frees, its length
 * as the function returned it. */
static void proto_status_length_test(void **state)
{
    char err[DPC_ERRLEN] = "";
    size_t len = 0;
    int calls = 0;
    char *json = dpc_proto_status(status_fn, &calls, &len, err, sizeof(err));

    assert_non_null(json);
    assert_int_equal(calls, 1);
    assert_int_equal(len, strlen("{\"caches\":3}"));
    assert_string_equal(json, "{\"caches\":3}");
    free(json);
}

static void trace_fn(void *arg, const char *msg)
{
    snprintf(arg, 64, "%s", msg);
}

/* A trace line is formatted and handed to the function. */
static void proto_trace_formats_test(void **state)
{
    char got[64] = "";

    dpc_proto_trace(trace_fn, got, "GET %u slots of cache %d", 4u, 7);
    assert_string_equal(got, "GET 4 slots of cache 7");
}

/* No trace function: nothing happens (the argument is not touched). */
static void proto_trace_null_test(void **state)
{
    char got[64] = "untouched";

    dpc_proto_trace(NULL, got, "GET %u", 4u);
    assert_string_equal(got, "untouched");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(proto_status_not_served_test),
        cmocka_unit_test(proto_status_length_test),
        cmocka_unit_test(proto_trace_formats_test),
        cmocka_unit_test(proto_trace_null_test),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
