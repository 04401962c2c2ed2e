/*
 * dpc_admit: see dpc_admit.h.  Sources live in a chained hash table keyed
 * by SipHash under a random key, so no client can choose addresses that
 * pile into one chain; there are never more sources than connections.
 */
#include "dpc_admit.h"

#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "dpc_siphash.h"

#define BUCKETS 256                 /* a power of two */

struct dpc_admit_source {
    struct dpc_admit_source *next;  /* in its bucket */
    struct dpc_admit_key key;
    unsigned handshakes, waiting;
};

struct dpc_admit {
    struct dpc_admit_cfg cfg;
    uint8_t hashkey[DPC_SIPHASH_KEYLEN];
    struct dpc_admit_source *bucket[BUCKETS];
    unsigned handshakes, waiting, sources;
};

struct dpc_admit *dpc_admit_new(const struct dpc_admit_cfg *cfg)
{
    struct dpc_admit *a = calloc(1, sizeof(*a));

    if (a == NULL)
        return NULL;
    a->cfg = *cfg;
    if (a->cfg.max_handshakes == 0)
        a->cfg.max_handshakes = 1;
    if (a->cfg.per_source == 0)
        a->cfg.per_source = 1;
    if (a->cfg.max_pending == 0)
        a->cfg.max_pending = 1;
    /* Without random bytes the table still works, only less evenly. */
    if (RAND_bytes(a->hashkey, sizeof(a->hashkey)) != 1)
        memset(a->hashkey, 0x5a, sizeof(a->hashkey));
    return a;
}

void dpc_admit_free(struct dpc_admit *a)
{
    if (a == NULL)
        return;
    assert(a->sources == 0);
    for (size_t b = 0; b < BUCKETS; b++)
        while (a->bucket[b] != NULL) {
            struct dpc_admit_source *e = a->bucket[b];

            a->bucket[b] = e->next;
            free(e);
        }
    free(a);
}

void dpc_admit_key(const struct sockaddr *sa, struct dpc_admit_key *k)
{
    static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                          0xff, 0xff };

    memset(k, 0, sizeof(*k));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;

        k->family = 4;
        memcpy(k->addr, &in->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        const uint8_t *b = in6->sin6_addr.s6_addr;

        if (memcmp(b, v4mapped, sizeof(v4mapped)) == 0) {
            k->family = 4;
            memcpy(k->addr, b + 12, 4);
        } else {
            /* One host usually holds a whole /64. */
            k->family = 6;
            memcpy(k->addr, b, 8);
        }
    }
}

void dpc_admit_key_str(const struct dpc_admit_key *k, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";

    if (k->family == 4) {
        inet_ntop(AF_INET, k->addr, host, sizeof(host));
        snprintf(buf, len, "%s", host);
    } else if (k->family == 6) {
        inet_ntop(AF_INET6, k->addr, host, sizeof(host));
        snprintf(buf, len, "%s/64", host);
    } else {
        snprintf(buf, len, "unknown");
    }
}

static size_t bucket_of(const struct dpc_admit *a,
                        const struct dpc_admit_key *k)
{
    return (size_t)(dpc_siphash24(a->hashkey, k, sizeof(*k)) &
                    (BUCKETS - 1));
}

unsigned dpc_admit_key_slot(const struct dpc_admit *a,
                            const struct dpc_admit_key *k, unsigned n)
{
    return n == 0 ? 0
                  : (unsigned)(dpc_siphash24(a->hashkey, k, sizeof(*k)) % n);
}

static struct dpc_admit_source *find(const struct dpc_admit *a,
                                     const struct dpc_admit_key *k)
{
    struct dpc_admit_source *e = a->bucket[bucket_of(a, k)];

    while (e != NULL && memcmp(&e->key, k, sizeof(*k)) != 0)
        e = e->next;
    return e;
}

static struct dpc_admit_source *add(struct dpc_admit *a,
                                    const struct dpc_admit_key *k)
{
    struct dpc_admit_source *e = calloc(1, sizeof(*e));
    size_t b = bucket_of(a, k);

    if (e == NULL)
        return NULL;
    e->key = *k;
    e->next = a->bucket[b];
    a->bucket[b] = e;
    a->sources++;
    return e;
}

/* Frees e once no connection refers to it. */
static void drop_if_unused(struct dpc_admit *a, struct dpc_admit_source *e)
{
    struct dpc_admit_source **p;

    if (e->handshakes != 0 || e->waiting != 0)
        return;
    for (p = &a->bucket[bucket_of(a, &e->key)]; *p != e; p = &(*p)->next)
        assert(*p != NULL);
    *p = e->next;
    a->sources--;
    free(e);
}

enum dpc_admit_verdict dpc_admit_arrive(struct dpc_admit *a,
                                        const struct dpc_admit_key *k,
                                        struct dpc_admit_source **src)
{
    struct dpc_admit_source *e = find(a, k);

    *src = NULL;
    if (e == NULL && (e = add(a, k)) == NULL)
        return DPC_ADMIT_NOMEM;
    if (e->handshakes + e->waiting >= a->cfg.max_pending) {
        drop_if_unused(a, e);
        return DPC_ADMIT_REFUSE;
    }
    *src = e;
    if (dpc_admit_can_greet(a, e)) {
        e->handshakes++;
        a->handshakes++;
        return DPC_ADMIT_GREET;
    }
    e->waiting++;
    a->waiting++;
    return DPC_ADMIT_WAIT;
}

int dpc_admit_can_greet(const struct dpc_admit *a,
                        const struct dpc_admit_source *src)
{
    return a->handshakes < a->cfg.max_handshakes &&
           src->handshakes < a->cfg.per_source;
}

void dpc_admit_greet(struct dpc_admit *a, struct dpc_admit_source *src)
{
    assert(src->waiting > 0 && dpc_admit_can_greet(a, src));
    src->waiting--;
    a->waiting--;
    src->handshakes++;
    a->handshakes++;
}

void dpc_admit_leave(struct dpc_admit *a, struct dpc_admit_source *src,
                     int waiting)
{
    if (waiting) {
        assert(src->waiting > 0 && a->waiting > 0);
        src->waiting--;
        a->waiting--;
    } else {
        assert(src->handshakes > 0 && a->handshakes > 0);
        src->handshakes--;
        a->handshakes--;
    }
    drop_if_unused(a, src);
}

int dpc_admit_full(const struct dpc_admit *a)
{
    return a->handshakes >= a->cfg.max_handshakes;
}

unsigned dpc_admit_handshakes(const struct dpc_admit *a)
{
    return a->handshakes;
}

unsigned dpc_admit_waiting(const struct dpc_admit *a)
{
    return a->waiting;
}

unsigned dpc_admit_sources(const struct dpc_admit *a)
{
    return a->sources;
}

const struct dpc_admit_key *dpc_admit_source_key(
    const struct dpc_admit_source *src)
{
    return &src->key;
}
