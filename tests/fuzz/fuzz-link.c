/*
 * libFuzzer target for dpc_link's reply parsing: the fuzzer plays a
 * malicious server.  Input: the bytes the server sends after the
 * handshake, written into one end of a socketpair (then shut for
 * writing, so the client sees them end); the client, a dpc_link adopted
 * over the other end, runs a fixed session against them: OPEN of 16 slots
 * of 64 bytes, a GET of 3 slots, a PUT of 2, a GET of 2 into a strided
 * region (rows of 16 bytes, 32 apart), a wait, STATUS, CLOSE.  Each call
 * must end in success or an error with text, without touching memory it
 * does not own; the session stops at the first error.  The reply ids are
 * 1 to 6 in that order (seeds: tests/fuzz/corpus/link-*).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dpc_link-internal.h"

#define SLOT 64
#define MAX_INPUT (96 * 1024)   /* fits a socketpair's buffer */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The session; 0 when every call succeeded. */
static int session(struct dpc_link *l, char *err, size_t errlen)
{
    static uint8_t a[3][SLOT], b[2][SLOT], region[4 * 32 * 2];
    const uint64_t slots[3] = { 0, 1, 15 };
    uint8_t *dst[3] = { a[0], a[1], a[2] };
    const uint8_t *src[2] = { b[0], b[1] };
    uint8_t *rdst[2] = { region, region + 4 * 32 };
    const struct dpc_link_rows rows = { 16, 32 };
    uint64_t handle = 0;
    char *json = NULL;

    memset(b, 0x5a, sizeof(b));
    if (dpc_link_open(l, SLOT, 16, &handle, err, errlen) < 0 ||
        dpc_link_get(l, handle, SLOT, 3, slots, dst, NULL, err, errlen) < 0 ||
        dpc_link_put(l, handle, SLOT, 2, slots, src, NULL, err, errlen) < 0 ||
        dpc_link_get(l, handle, SLOT, 2, slots, rdst, &rows, err,
                     errlen) < 0 ||
        dpc_link_wait(l, err, errlen) < 0 ||
        dpc_link_status(l, &json, err, errlen) < 0)
        return -1;
    if (strlen(json) > 64 * 1024)       /* NUL-terminated within bounds */
        abort();
    free(json);
    return dpc_link_close_cache(l, handle, err, errlen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2], big = 256 * 1024;
    struct dpc_link *l;
    char err[DPC_ERRLEN] = "";

    if (size > MAX_INPUT)
        return 0;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    if (size > 0 && write(sv[1], data, size) != (ssize_t)size) {
        close(sv[0]);           /* did not fit: not an input we use */
        close(sv[1]);
        return 0;
    }
    shutdown(sv[1], SHUT_WR);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    if ((l = dpc_link_adopt(sv[0], "fuzz", 1000)) == NULL)
        abort();
    if (session(l, err, sizeof(err)) < 0 && err[0] == '\0')
        abort();                /* every failure says why */
    dpc_link_free(l);
    close(sv[1]);
    return 0;
}
