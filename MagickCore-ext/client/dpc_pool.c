/*
 * dpc_pool: see dpc_pool.h.  A short list; linear search is enough for the
 * few hosts a process talks to.
 */
#include "dpc_pool.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    int fd;                     /* a probe's socket (probes only) */
};

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry *pool;
/* Connections under way to lost hosts (dpc_pool_reacquire): link NULL,
 * fd the socket, retry_at when it is given up. */
static struct entry *probes;

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

/* A link to host:port that broke and is still held by a cache, or NULL. */
static struct entry *lost_link(const char *host, const char *addr,
                               unsigned port, const uint8_t *key,
                               const struct dpc_tlsclient *tls)
{
    for (struct entry *e = pool; e != NULL; e = e->next)
        if (e->link != NULL && dpc_link_broken(e->link) &&
            same_host(e, host, addr, port, key, tls))
            return e;
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

/* A new entry, with no user yet, for link to host:port; NULL when out of
 * memory.  Pool lock held. */
static struct entry *add_link(const char *host, const char *addr,
                              unsigned port, const uint8_t *key,
                              struct dpc_tlsclient *tls, struct dpc_link *link)
{
    struct entry *e = calloc(1, sizeof(*e));

    if (e == NULL)
        return NULL;
    strcpy(e->host, host);
    strcpy(e->addr, addr);
    e->port = port;
    memcpy(e->key, key, DPC_WIRE_KEY_LEN);
    e->tls = tls;
    e->link = link;
    e->next = pool;
    pool = e;
    return e;
}

static void free_probe(struct entry *e)
{
    if (e->fd >= 0)
        close(e->fd);
    OPENSSL_cleanse(e->key, sizeof(e->key));
    free(e);
}

/* Takes the connection under way to at's host out of probes, or starts
 * one (also in place of one older than its time, which the host may have
 * given up on): NULL, with the reason in err and its code in *failed, when
 * it could not start.  Pool lock not held. */
static struct entry *take_probe(const struct entry *at, unsigned timeout_ms,
                                enum dpc_errcode *failed, char *err,
                                size_t errlen)
{
    struct entry **p, *e;

    pthread_mutex_lock(&pool_lock);
    for (p = &probes; (e = *p) != NULL; p = &e->next)
        if (same_host(e, at->host, at->addr, at->port, at->key, at->tls)) {
            *p = e->next;
            break;
        }
    pthread_mutex_unlock(&pool_lock);
    if (e != NULL && dpc_now() < e->retry_at)
        return e;
    if (e != NULL)
        free_probe(e);
    if ((e = calloc(1, sizeof(*e))) == NULL) {
        *failed = dpc_errcode_of(dpc_errc(err, errlen, DPC_E_NOMEM,
                                          "out of memory"));
        return NULL;
    }
    *e = *at;
    e->link = NULL;
    e->users = 0;
    e->retry_at = dpc_now() + timeout_ms / 1000.0;
    e->fd = dpc_net_dial_start(*at->addr != '\0' ? at->addr : at->host,
                               at->port, err, errlen);
    if (e->fd < 0) {
        *failed = dpc_errcode_of(e->fd);
        free_probe(e);
        return NULL;
    }
    return e;
}

/* The link over probe e's connection, once connected (waited for at most
 * wait_ms): NULL while it is under way (e kept in probes until its time is
 * up) or when it failed, with the reason in err and its code in *failed.
 * Takes e. */
static struct dpc_link *probe_link(struct entry *e, const char *name,
                                   unsigned wait_ms, unsigned timeout_ms,
                                   enum dpc_errcode *failed, char *err,
                                   size_t errlen)
{
    struct dpc_link *link;
    double left = (e->retry_at - dpc_now()) * 1000;
    int rc;

    if (left < wait_ms)
        wait_ms = left > 0 ? (unsigned)left : 0;
    rc = dpc_net_dial_check(e->fd, name, wait_ms, err, errlen);
    if (rc == 0 && dpc_now() < e->retry_at) {
        *failed = dpc_errcode_of(dpc_errc(err, errlen, DPC_E_TIMEOUT,
                                          "%s: no answer yet (still "
                                          "connecting)", name));
        pthread_mutex_lock(&pool_lock);
        e->next = probes;
        probes = e;
        pthread_mutex_unlock(&pool_lock);
        return NULL;
    }
    if (rc == 0)
        dpc_errc(err, errlen, DPC_E_TIMEOUT, "%s: no answer to connecting "
                 "in time", name);
    if (rc <= 0) {
        *failed = rc == 0 ? DPC_E_TIMEOUT : dpc_errcode_of(rc);
        free_probe(e);
        return NULL;
    }
    link = dpc_link_connect_fd(e->fd, e->host, *e->addr != '\0' ? e->addr
                               : NULL, e->port, e->key, e->tls, timeout_ms,
                               failed, err, errlen);
    e->fd = -1;
    free_probe(e);
    return link;
}

/* A new user of a link to at's host, lost lately, by way of its probe
 * (dpc_pool_reacquire says how), its connecting waited for at most
 * wait_ms; on failure the failure is remembered.  name: the host's name
 * in errors.  Pool lock not held. */
static struct dpc_link *acquire_by_probe(const struct entry *at,
                                         const char *name, unsigned wait_ms,
                                         unsigned timeout_ms,
                                         enum dpc_errcode *code, char *err,
                                         size_t errlen)
{
    enum dpc_errcode failed = DPC_E_OK;
    struct dpc_link *link = NULL;
    struct entry *e;

    e = take_probe(at, timeout_ms, &failed, err, errlen);
    if (e != NULL)
        link = probe_link(e, name, wait_ms, timeout_ms, &failed, err,
                          errlen);
    pthread_mutex_lock(&pool_lock);
    if (link == NULL)
        remember_failure(at->host, at->addr, at->port, at->key, at->tls,
                         failed, err != NULL ? err : "failed");
    else if ((e = add_link(at->host, at->addr, at->port, at->key, at->tls,
                           link)) != NULL)
        e->users++;
    else {
        dpc_link_free(link);
        link = NULL;
        failed = dpc_errcode_of(dpc_errc(err, errlen, DPC_E_NOMEM,
                                         "out of memory"));
    }
    pthread_mutex_unlock(&pool_lock);
    if (code != NULL)
        *code = failed;
    return link;
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
    struct dpc_link *link;
    struct entry *e, *lost, at;
    char name[320];

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
    if (e == NULL && (lost = lost_link(host, addr, port, key, tls)) != NULL) {
        /* lost lately (its link broke): one try, its handshake not
         * repeated; the link is another cache's, its name copied here */
        at = *lost;
        snprintf(name, sizeof(name), "%s", dpc_link_name(lost->link));
        pthread_mutex_unlock(&pool_lock);
        link = acquire_by_probe(&at, name, timeout_ms, timeout_ms, code, err,
                                errlen);
        OPENSSL_cleanse(at.key, sizeof(at.key));
        return link;
    }
    if (e != NULL && e->link == NULL) {
        failed = e->code;
        dpc_errc(err, errlen, failed, "%s (not retried for %d s)", e->why,
                 DPC_POOL_RETRY_SECONDS);
        e = NULL;
        goto out;
    }
    if (e == NULL) {
        link = dpc_link_connect_at(host, *addr != '\0' ? addr : NULL, port,
                                   key, tls, timeout_ms, &failed, err,
                                   errlen);
        if (link == NULL) {
            remember_failure(host, addr, port, key, tls, failed,
                             err != NULL ? err : "failed");
            goto out;
        }
        if ((e = add_link(host, addr, port, key, tls, link)) == NULL) {
            dpc_link_free(link);
            failed = dpc_errcode_of(dpc_errc(err, errlen, DPC_E_NOMEM,
                                             "out of memory"));
            goto out;
        }
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
    link = acquire_by_probe(&at, dpc_link_name(l), DPC_POOL_PROBE_WAIT_MS,
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
