/*
 * dpc_stockclient: see dpc_stockclient.h.
 */
#include "dpc_stockclient.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dpc_bytes.h"
#include "dpc_net.h"
#include "dpc_util.h"

#define STATUS_MAX (64 * 1024)

struct dpc_stockclient {
    int fd;
    unsigned timeout_ms;
    char name[300];
    uint8_t key[DPC_STOCK_KEYLEN];
};

static int xfer(struct dpc_stockclient *c, void *buf, size_t n, int out,
                char *err, size_t errlen)
{
    return dpc_net_xfer(c->fd, buf, n, out, c->timeout_ms, c->name, err,
                        errlen);
}

struct dpc_stockclient *dpc_stockclient_connect(const char *host,
                                                unsigned port,
                                                enum dpc_stock_flavor flavor,
                                                const uint8_t key[DPC_SIPHASH_KEYLEN],
                                                unsigned timeout_ms, char *err,
                                                size_t errlen)
{
    uint8_t nonce[DPC_STOCK_NONCE_MAX];
    size_t n = dpc_stock_nonce_len(flavor);
    struct dpc_stockclient *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        dpc_errf(err, errlen, "out of memory");
        return NULL;
    }
    c->timeout_ms = timeout_ms;
    snprintf(c->name, sizeof(c->name), "%s:%u", host, port);
    c->fd = dpc_net_dial(host, port, timeout_ms, err, errlen);
    if (c->fd < 0) {
        free(c);
        return NULL;
    }
    if (xfer(c, nonce, n, 0, err, errlen) < 0)
        goto err;
    dpc_siphash_session_key(key, nonce, n, c->key);
    if (xfer(c, c->key, DPC_STOCK_KEYLEN, 1, err, errlen) < 0)
        goto err;
    return c;
err:
    dpc_stockclient_close(c);
    return NULL;
}

void dpc_stockclient_close(struct dpc_stockclient *c)
{
    if (c == NULL)
        return;
    close(c->fd);
    free(c);
}

/* A command answered with u32 len + JSON: 's' or 'D'. */
static int json_request(struct dpc_stockclient *c, uint8_t cmd, char **json,
                        char *err, size_t errlen)
{
    uint8_t hdr[DPC_STOCK_HDRLEN], word[4];
    uint32_t len;

    *json = NULL;
    dpc_stock_encode_header(hdr, cmd, c->key);
    if (xfer(c, hdr, sizeof(hdr), 1, err, errlen) < 0)
        return -1;
    /* A server that rejects the proof closes without a word. */
    if (xfer(c, word, sizeof(word), 0, err, errlen) < 0)
        return dpc_errf(err, errlen, "%s: no answer: authentication failed "
                        "(is cache:shared-secret the same on both sides?) "
                        "or not a magick-dpc server", c->name);
    len = dpc_get_le32(word);
    if (len == 0)
        return dpc_errf(err, errlen, "%s: %s refused (%s)", c->name,
                        cmd == 'D' ? "drain" : "status",
                        cmd == 'D' ? "a magick-dpc server older than drain?"
                                   : "not a magick-dpc server?");
    if (len > STATUS_MAX)
        return dpc_errf(err, errlen, "%s: bad status length %u", c->name, len);
    *json = malloc((size_t)len + 1);
    if (*json == NULL)
        return dpc_errf(err, errlen, "out of memory");
    if (xfer(c, *json, len, 0, err, errlen) < 0) {
        free(*json);
        *json = NULL;
        return -1;
    }
    (*json)[len] = '\0';
    return 0;
}

int dpc_stockclient_status(struct dpc_stockclient *c, char **json, char *err,
                           size_t errlen)
{
    return json_request(c, 's', json, err, errlen);
}

int dpc_stockclient_drain(struct dpc_stockclient *c, char **json, char *err,
                          size_t errlen)
{
    return json_request(c, 'D', json, err, errlen);
}
