/*
 * dpc_pool: see dpc_pool.h.  A short list; linear search is enough for the
 * few hosts a process talks to.
 */
#include "dpc_pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "dpc_util.h"

struct entry {
    struct entry *next;
    struct dpc_link *link;
    char host[256];
    unsigned port;
    uint8_t key[DPC_WIRE_KEY_LEN];
    unsigned users;
};

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry *pool;

static struct entry *find(const char *host, unsigned port, const uint8_t *key)
{
    for (struct entry *e = pool; e != NULL; e = e->next)
        if (e->port == port && e->users < DPC_POOL_CACHES_PER_LINK &&
            !dpc_link_broken(e->link) && strcmp(e->host, host) == 0 &&
            CRYPTO_memcmp(e->key, key, DPC_WIRE_KEY_LEN) == 0)
            return e;
    return NULL;
}

struct dpc_link *dpc_pool_acquire(const char *host, unsigned port,
                                  const uint8_t key[DPC_WIRE_KEY_LEN],
                                  unsigned timeout_ms, char *err,
                                  size_t errlen)
{
    struct entry *e;

    if (strlen(host) >= sizeof(e->host)) {
        dpc_errf(err, errlen, "host name too long");
        return NULL;
    }
    pthread_mutex_lock(&pool_lock);
    e = find(host, port, key);
    if (e == NULL) {
        e = calloc(1, sizeof(*e));
        if (e == NULL) {
            dpc_errf(err, errlen, "out of memory");
            goto out;
        }
        e->link = dpc_link_connect(host, port, key, timeout_ms, err, errlen);
        if (e->link == NULL) {
            free(e);
            e = NULL;
            goto out;
        }
        strcpy(e->host, host);
        e->port = port;
        memcpy(e->key, key, DPC_WIRE_KEY_LEN);
        e->next = pool;
        pool = e;
    }
    e->users++;
out:
    pthread_mutex_unlock(&pool_lock);
    return e != NULL ? e->link : NULL;
}

void dpc_pool_release(struct dpc_link *l)
{
    struct entry **p, *e;

    if (l == NULL)
        return;
    pthread_mutex_lock(&pool_lock);
    for (p = &pool; *p != NULL && (*p)->link != l; p = &(*p)->next)
        ;
    e = *p;
    if (e != NULL && --e->users == 0) {
        *p = e->next;
        dpc_link_free(e->link);
        OPENSSL_cleanse(e->key, sizeof(e->key));
        free(e);
    }
    pthread_mutex_unlock(&pool_lock);
}
