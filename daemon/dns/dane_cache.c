/*
 * The DANE facts cache (dane_cache.h): one allocation per domain holding the domain's name
 * next to its header (what a lookup compares) and then its facts up to the last host in use,
 * on a chain of a power-of-two hash table that doubles past one entry per bucket. Eviction
 * is CLOCK, second chance on an LRU-ordered list: a hit only sets a bit in its own entry
 * (moving it to the head would write to two neighbours at random places in memory, a cache
 * miss each with a million domains); when the cache is full, a referenced entry at the tail
 * loses its bit and goes to the head, an unreferenced one is evicted. Every operation is
 * O(1) amortised: nothing walks the whole cache.
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
    int referenced;       /* a hit since the eviction hand last passed */
    struct dane_facts *f; /* in the same allocation, after domain, with the hosts in use */
    char domain[];        /* sized to the name, then padded to align f */
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

    /*
     * An answer it rests on has expired or left the DNS cache: a new walk decides, and its
     * put replaces the entry (or CLOCK evicts it). Not freed here, so that facts handed out
     * stay valid until the next put, whatever else is looked up meanwhile.
     */
    if (e == NULL || e->expires <= resolver_now(c->r) || e->epoch != resolver_epoch(c->r))
        return NULL; /* the miss is counted by the walk it leads to (dane_start) */
    e->referenced = 1;
    metrics_cache(METRICS_CACHE_DANE, METRICS_CACHE_HIT);
    return e->f;
}

void dane_cache_put(struct dane_cache *c, const char *domain, const struct dane_facts *f,
                    uint64_t expires, unsigned long epoch)
{
    uint32_t h = hash_string(domain);
    struct dentry *e = find(c, domain, h);
    size_t fb = facts_bytes(f), dlen = strlen(domain) + 1;
    size_t at = (offsetof(struct dentry, domain) + dlen + 7) & ~(size_t)7;

    if (e != NULL)
        entry_free(c, e);
    /* RFC 7672 2.2: failures are asked again, never remembered as facts. */
    if (expires <= resolver_now(c->r) || epoch != resolver_epoch(c->r) || f->state == DANE_TEMP ||
        f->state == DANE_DEGRADED)
        return;
    /* CLOCK: each entry is passed over at most once per hit it had, so O(1) amortised. */
    while (c->nentries >= c->max_entries && c->lru.tail != NULL) {
        struct dentry *v = lru_entry(c->lru.tail, struct dentry, lru);

        if (v->referenced) {
            v->referenced = 0;
            lru_touch(&c->lru, &v->lru);
            continue;
        }
        entry_free(c, v);
        metrics_cache(METRICS_CACHE_DANE, METRICS_CACHE_EVICTION);
    }
    if (c->nentries >= c->nbuckets)
        grow(c);
    e = xmalloc(at + fb);
    memset(e, 0, offsetof(struct dentry, domain));
    memcpy(e->domain, domain, dlen);
    e->f = (struct dane_facts *)(void *)((char *)e + at);
    dane_facts_copy(e->f, f);
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
