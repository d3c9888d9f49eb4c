/*
 * The DANE facts cache (dane_cache.h): one allocation per domain holding its facts up to the
 * last host in use and the domain's name, on a chain of a power-of-two hash table that
 * doubles past one entry per bucket, and on an LRU list whose tail is evicted when the cache
 * is full. Every operation is O(1) on average: nothing walks the whole cache.
 */
#include "dane_cache.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "lru.h"
#include "metrics.h"
#include "resolver.h"
#include "xalloc.h"

#define BUCKETS_MIN 1024

struct dentry {
    struct dentry *hnext;
    struct lru_link lru;
    uint64_t expires;    /* loop time in ms: the earliest expiry of the answers used */
    unsigned long epoch; /* resolver_epoch() when the walk began */
    uint32_t hash;
    const char *domain; /* in the same allocation, after the facts */
    /* Last: only the hosts in use are allocated (dane_facts_copy()). */
    struct dane_facts f;
};

struct dane_cache {
    struct resolver *r;
    struct dentry **buckets;
    size_t nbuckets, nentries, max_entries;
    struct lru lru; /* head: most recently used */
};

static size_t facts_bytes(const struct dane_facts *f)
{
    unsigned n = f->nhosts <= DANE_MAX_HOSTS ? f->nhosts : DANE_MAX_HOSTS;

    return offsetof(struct dane_facts, hosts) + n * sizeof(f->hosts[0]);
}

struct dane_cache *dane_cache_create(struct resolver *r, size_t max_entries)
{
    struct dane_cache *c = xcalloc(1, sizeof(*c));

    c->r = r;
    c->max_entries = max_entries > 0 ? max_entries : 1;
    c->nbuckets = BUCKETS_MIN;
    c->buckets = xcalloc(c->nbuckets, sizeof(*c->buckets));
    return c;
}

static void entry_free(struct dane_cache *c, struct dentry *e)
{
    struct dentry **pp = &c->buckets[e->hash & (c->nbuckets - 1)];

    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(&c->lru, &e->lru);
    c->nentries--;
    free(e);
}

void dane_cache_destroy(struct dane_cache *c)
{
    if (c == NULL)
        return;
    while (c->lru.head != NULL)
        entry_free(c, lru_entry(c->lru.head, struct dentry, lru));
    free(c->buckets);
    free(c);
}

static struct dentry *find(struct dane_cache *c, const char *domain, uint32_t h)
{
    struct dentry *e = c->buckets[h & (c->nbuckets - 1)];

    while (e != NULL && (e->hash != h || strcmp(e->domain, domain) != 0))
        e = e->hnext;
    return e;
}

/* Double the buckets so that chains stay short however many domains are cached. */
static void grow(struct dane_cache *c)
{
    size_t n = c->nbuckets * 2;
    struct dentry **b = xcalloc(n, sizeof(*b));

    for (size_t i = 0; i < c->nbuckets; i++) {
        struct dentry *e, *next;

        for (e = c->buckets[i]; e != NULL; e = next) {
            next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = n;
}

const struct dane_facts *dane_cache_get(struct dane_cache *c, const char *domain)
{
    uint32_t h = hash_string(domain);
    struct dentry *e = find(c, domain, h);

    if (e != NULL && (e->expires <= resolver_now(c->r) || e->epoch != resolver_epoch(c->r))) {
        /* An answer it rests on has expired or left the DNS cache: a new walk decides. */
        entry_free(c, e);
        e = NULL;
    }
    if (e == NULL)
        return NULL; /* the miss is counted by the walk it leads to (dane_start) */
    lru_touch(&c->lru, &e->lru);
    metrics_cache(METRICS_CACHE_DANE, METRICS_CACHE_HIT);
    return &e->f;
}

void dane_cache_put(struct dane_cache *c, const char *domain, const struct dane_facts *f,
                    uint64_t expires, unsigned long epoch)
{
    uint32_t h = hash_string(domain);
    struct dentry *e = find(c, domain, h);
    size_t fb = facts_bytes(f), dlen = strlen(domain) + 1;
    char *name;

    if (e != NULL)
        entry_free(c, e);
    /* RFC 7672 2.2: failures are asked again, never remembered as facts. */
    if (expires <= resolver_now(c->r) || epoch != resolver_epoch(c->r) || f->state == DANE_TEMP ||
        f->state == DANE_DEGRADED)
        return;
    while (c->nentries >= c->max_entries && c->lru.tail != NULL) {
        entry_free(c, lru_entry(c->lru.tail, struct dentry, lru));
        metrics_cache(METRICS_CACHE_DANE, METRICS_CACHE_EVICTION);
    }
    if (c->nentries >= c->nbuckets)
        grow(c);
    e = xmalloc(offsetof(struct dentry, f) + fb + dlen);
    memset(e, 0, offsetof(struct dentry, f));
    dane_facts_copy(&e->f, f);
    name = (char *)&e->f + fb;
    memcpy(name, domain, dlen);
    e->domain = name;
    e->hash = h;
    e->expires = expires;
    e->epoch = epoch;
    e->hnext = c->buckets[h & (c->nbuckets - 1)];
    c->buckets[h & (c->nbuckets - 1)] = e;
    lru_push_front(&c->lru, &e->lru);
    c->nentries++;
}

unsigned long dane_cache_entries(const struct dane_cache *c)
{
    return c != NULL ? (unsigned long)c->nentries : 0;
}
