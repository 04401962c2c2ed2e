/*
 * dpc_pool: see dpc_pool.h.  A short list; linear search is enough for the
 * few hosts a process talks to.
 */
#include "dpc_pool.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "dpc_net.h"
#include "dpc_util.h"

struct entry {
    struct entry *next;
    struct dpc_link *link;      /* NULL: a failed host, not retried yet */
    double retry_at;            /* for a failed host */
    char why[DPC_ERRLEN];
    enum dpc_errcode code;      /* and its code */
    char host[256];
    char addr[DPC_NET_ADDRLEN];     /* dialed instead of host; "" if none */
    unsigned port;
    uint8_t key[DPC_WIRE_KEY_LEN];
    struct dpc_tlsclient *tls;  /* borrowed (kept for the process) */
    unsigned users;
};

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry *pool;

static int same_host(const struct entry *e, const char *host,
                     const char *addr, unsigned port, const uint8_t *key,
                     const struct dpc_tlsclient *tls)
{
    return e->port == port && strcmp(e->host, host) == 0 &&
           strcmp(e->addr, addr) == 0 && e->tls == tls &&
           CRYPTO_memcmp(e->key, key, DPC_WIRE_KEY_LEN) == 0;
}

/* A usable link with room, or a recent failure of this host (link NULL). */
static struct entry *find(const char *host, const char *addr, unsigned port,
                          const uint8_t *key, const struct dpc_tlsclient *tls)
{
    for (struct entry **p = &pool, *e; (e = *p) != NULL;) {
        if (e->link == NULL && dpc_now() >= e->retry_at) {
            *p = e->next;           /* failure forgotten: try again */
            free(e);
            continue;
        }
        if (same_host(e, host, addr, port, key, tls) &&
            (e->link == NULL || (e->users < DPC_POOL_CACHES_PER_LINK &&
                                 !dpc_link_broken(e->link))))
            return e;
        p = &e->next;
    }
    return NULL;
}

/* Remembers that host:port failed, so the caches that follow fail over at
 * once instead of each waiting out the timeout again. */
static void remember_failure(const char *host, const char *addr,
                             unsigned port, const uint8_t *key,
                             struct dpc_tlsclient *tls, enum dpc_errcode code,
                             const char *why)
{
    struct entry *e = calloc(1, sizeof(*e));

    if (e == NULL)
        return;
    strcpy(e->host, host);
    strcpy(e->addr, addr);
    e->port = port;
    memcpy(e->key, key, DPC_WIRE_KEY_LEN);
    e->tls = tls;
    e->retry_at = dpc_now() + DPC_POOL_RETRY_SECONDS;
    snprintf(e->why, sizeof(e->why), "%s", why);
    e->code = code;
    e->next = pool;
    pool = e;
}

struct dpc_link *dpc_pool_acquire(const char *host, unsigned port,
                                  const uint8_t key[DPC_WIRE_KEY_LEN],
                                  struct dpc_tlsclient *tls,
                                  unsigned timeout_ms,
                                  enum dpc_errcode *code, char *err,
                                  size_t errlen)
{
    return dpc_pool_acquire_at(host, NULL, port, key, tls, timeout_ms, code,
                               err, errlen);
}

struct dpc_link *dpc_pool_acquire_at(const char *host, const char *addr,
                                     unsigned port,
                                     const uint8_t key[DPC_WIRE_KEY_LEN],
                                     struct dpc_tlsclient *tls,
                                     unsigned timeout_ms,
                                     enum dpc_errcode *code, char *err,
                                     size_t errlen)
{
    enum dpc_errcode failed = DPC_E_OK;
    struct entry *e;

    if (addr == NULL)
        addr = "";
    if (strlen(host) >= sizeof(e->host) || strlen(addr) >= sizeof(e->addr)) {
        if (code != NULL)
            *code = DPC_E_INVALID;
        dpc_errc(err, errlen, DPC_E_INVALID, "host name too long");
        return NULL;
    }
    pthread_mutex_lock(&pool_lock);
    e = find(host, addr, port, key, tls);
    if (e != NULL && e->link == NULL) {
        failed = e->code;
        dpc_errc(err, errlen, failed, "%s (not retried for %d s)", e->why,
                 DPC_POOL_RETRY_SECONDS);
        e = NULL;
        goto out;
    }
    if (e == NULL) {
        e = calloc(1, sizeof(*e));
        if (e == NULL) {
            failed = dpc_errcode_of(dpc_errc(err, errlen, DPC_E_NOMEM,
                                             "out of memory"));
            goto out;
        }
        e->link = dpc_link_connect_at(host, *addr != '\0' ? addr : NULL, port,
                                      key, tls, timeout_ms, &failed, err,
                                      errlen);
        if (e->link == NULL) {
            free(e);
            e = NULL;
            remember_failure(host, addr, port, key, tls, failed,
                             err != NULL ? err : "failed");
            goto out;
        }
        strcpy(e->host, host);
        strcpy(e->addr, addr);
        e->port = port;
        memcpy(e->key, key, DPC_WIRE_KEY_LEN);
        e->tls = tls;
        e->next = pool;
        pool = e;
    }
    e->users++;
out:
    pthread_mutex_unlock(&pool_lock);
    if (code != NULL)
        *code = failed;
    return e != NULL ? e->link : NULL;
}

struct dpc_link *dpc_pool_reacquire(const struct dpc_link *l,
                                    unsigned timeout_ms,
                                    enum dpc_errcode *code, char *err,
                                    size_t errlen)
{
    struct entry **p, *e, at = { 0 };
    struct dpc_link *link;

    pthread_mutex_lock(&pool_lock);
    for (e = pool; e != NULL && e->link != l; e = e->next)
        ;
    if (e != NULL)
        at = *e;
    for (p = &pool; e != NULL && (e = *p) != NULL;) {
        if (e->link == NULL && same_host(e, at.host, at.addr, at.port,
                                         at.key, at.tls)) {
            *p = e->next;           /* the failure forgotten */
            free(e);
            continue;
        }
        p = &e->next;
    }
    pthread_mutex_unlock(&pool_lock);
    if (at.link == NULL) {
        if (code != NULL)
            *code = DPC_E_INVALID;
        dpc_errc(err, errlen, DPC_E_INVALID, "not a link of the pool");
        return NULL;
    }
    link = dpc_pool_acquire_at(at.host, at.addr, at.port, at.key, at.tls,
                               timeout_ms, code, err, errlen);
    OPENSSL_cleanse(at.key, sizeof(at.key));
    return link;
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

void dpc_pool_draining(struct dpc_link *l)
{
    struct entry *e;
    char why[DPC_ERRLEN];

    if (l == NULL)
        return;
    pthread_mutex_lock(&pool_lock);
    for (e = pool; e != NULL && e->link != l; e = e->next)
        ;
    if (e != NULL) {
        /* ahead of e in the list: find() meets it first */
        snprintf(why, sizeof(why), "%.160s: draining", dpc_link_name(l));
        remember_failure(e->host, e->addr, e->port, e->key, e->tls,
                         DPC_E_DRAINING, why);
    }
    pthread_mutex_unlock(&pool_lock);
}
