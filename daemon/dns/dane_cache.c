/*
 * The DANE facts cache (dane_cache.h): one allocation per domain, sized to what it holds:
 * a 39-byte header (what a lookup compares), the domain's name, the facts up to the last
 * host in use, then the reason line at its length. A domain without DANE (no hosts) is the
 * header, its name, the facts' 32-byte head and its reason: about 150 bytes. On a chain of a
 * power-of-two hash table that doubles past one entry per bucket. Eviction is CLOCK, second
 * chance on an LRU-ordered list: a hit only sets a bit in its own entry (moving it to the
 * head would write to two neighbours at random places in memory, a cache miss each with a
 * million domains); when the cache is full, a referenced entry at the tail loses its bit and
 * goes to the head, an unreferenced one is evicted. Every operation is O(1) amortised:
 * nothing walks the whole cache.
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
    uint64_t expires; /* loop time in ms: the earliest expiry of the answers used */
    uint32_t hash;
    uint16_t facts_at;  /* offset of the facts in the entry (after domain, aligned) */
    uint8_t referenced; /* a hit since the eviction hand last passed */
    char domain[];      /* sized to the name; then the facts, then the reason line */
};

struct dane_cache {
    struct resolver *r;
    struct dentry **buckets;
    size_t nbuckets, nentries, max_entries, bytes;
    struct lru lru; /* head: most recently used */
};

int dane_cache_keeps(enum dane_state state, uint64_t expires, uint64_t now)
{
    /*
     * RFC 7672 2.2: failures are asked again, never remembered as facts (TEMP, and DEGRADED,
     * which rests on a failed host lookup). An expiry of 0 or in the past: some answer was
     * not cached (a failure) or has run out.
     */
    if (state != DANE_NONE && state != DANE_ALL && state != DANE_SOME && state != DANE_UNUSABLE)
        return 0;
    return expires > now;
}

int dane_cache_holds(uint64_t expires, uint64_t now)
{
    return expires > now;
}

static size_t hosts_bytes(const struct dane_facts *f)
{
    unsigned n = f->nhosts <= DANE_MAX_HOSTS ? f->nhosts : DANE_MAX_HOSTS;

    return offsetof(struct dane_facts, hosts) + n * sizeof(f->hosts[0]);
}

/* The facts' offset in an entry for domain, aligned for the struct. */
static size_t facts_at(size_t dlen)
{
    size_t a = _Alignof(struct dane_facts);

    return (offsetof(struct dentry, domain) + dlen + 1 + a - 1) & ~(a - 1);
}

size_t dane_cache_entry_bytes(const char *domain, const struct dane_facts *f)
{
    return facts_at(strlen(domain)) + hosts_bytes(f) + strlen(f->why != NULL ? f->why : "") + 1;
}

static struct dane_facts *entry_facts(struct dentry *e)
{
    return (struct dane_facts *)(void *)((char *)e + e->facts_at);
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
    c->bytes -= dane_cache_entry_bytes(e->domain, entry_facts(e));
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
     * An answer it rests on has expired: a new walk decides, and its put replaces the entry
     * (or CLOCK evicts it). Not freed here, so that facts handed out stay valid until the
     * next put, whatever else is looked up meanwhile.
     */
    if (e == NULL || !dane_cache_holds(e->expires, resolver_now(c->r)))
        return NULL; /* the miss is counted by the walk it leads to (dane_start) */
    e->referenced = 1;
    metrics_cache(METRICS_CACHE_DANE, METRICS_CACHE_HIT);
    return entry_facts(e);
}

/* CLOCK: each entry is passed over at most once per hit it had, so O(1) amortised. */
static void make_room(struct dane_cache *c)
{
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
}

void dane_cache_put(struct dane_cache *c, const char *domain, const struct dane_facts *f,
                    uint64_t expires)
{
    uint32_t h = hash_string(domain);
    struct dentry *e = find(c, domain, h);
    const char *why = f->why != NULL ? f->why : "";
    size_t dlen = strlen(domain), at = facts_at(dlen), hb = hosts_bytes(f);
    size_t wlen = strlen(why), bytes = at + hb + wlen + 1;
    struct dane_facts *ef;

    /* The walk's facts replace whatever was held, kept or not. */
    if (e != NULL)
        entry_free(c, e);
    if (!dane_cache_keeps(f->state, expires, resolver_now(c->r)) || at > UINT16_MAX)
        return;
    make_room(c);
    if (c->nentries >= c->nbuckets)
        grow(c);
    e = xmalloc(bytes);
    memset(e, 0, offsetof(struct dentry, domain));
    memcpy(e->domain, domain, dlen + 1);
    e->facts_at = (uint16_t)at;
    ef = entry_facts(e);
    memcpy(ef, f, hb);
    ef->why = (char *)ef + hb;
    memcpy((char *)ef + hb, why, wlen + 1);
    e->hash = h;
    e->expires = expires;
    e->hnext = c->buckets[h & (c->nbuckets - 1)];
    c->buckets[h & (c->nbuckets - 1)] = e;
    lru_push_front(&c->lru, &e->lru);
    c->nentries++;
    c->bytes += bytes;
}

unsigned long dane_cache_entries(const struct dane_cache *c)
{
    return c != NULL ? (unsigned long)c->nentries : 0;
}

size_t dane_cache_bytes(const struct dane_cache *c)
{
    return c != NULL ? c->bytes + c->nbuckets * sizeof(*c->buckets) : 0;
}
