/*
 * The DANE facts of each domain as the walk of RFC 7672 2.2 concluded them, kept so that a
 * lookup answered from the DNS cache costs one hash lookup instead of a walk that reads and
 * parses the cached MX, A, AAAA and TLSA answers again. An entry is good while every answer
 * it rests on is: until the earliest of their expiries (loop time), and only while no answer
 * has left the resolver cache early (resolver_epoch()). Then the facts are exactly those a
 * new walk over the same cache would reach. Facts that rest on a failed or bogus answer
 * (DANE_TEMP, DANE_DEGRADED) are never kept. Hashed by domain, the buckets doubling as the
 * cache grows; bounded by entries, least recently used evicted first.
 */
#ifndef DAEMON_DANE_CACHE_H
#define DAEMON_DANE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "dane.h"

struct resolver;
struct dane_cache;

/*
 * dane_cache_create - a cache of at most max_entries domains over the answers of r, which
 * must outlive it. dane_cache_destroy - free it and every entry (NULL is fine).
 */
struct dane_cache *dane_cache_create(struct resolver *r, size_t max_entries);
void dane_cache_destroy(struct dane_cache *c);

/*
 * dane_cache_get - the facts of the normalised domain while they hold, else NULL (a stale
 * entry stays until a walk's put replaces it or eviction takes it). A hit is counted in the "dane"
 * cache's metrics; dane_start() counts the miss when it walks. The facts belong to the cache: valid
 * until the next dane_cache_put() to this cache. No allocation.
 */
const struct dane_facts *dane_cache_get(struct dane_cache *c, const char *domain);

/*
 * dane_cache_put - keep a copy of f, concluded for domain from answers valid until expires
 * (loop time in ms; 0: some answer was not cacheable, nothing is kept) by a walk that began
 * at resolver epoch epoch. Replaces the domain's entry; may evict the least recently used.
 */
void dane_cache_put(struct dane_cache *c, const char *domain, const struct dane_facts *f,
                    uint64_t expires, unsigned long epoch);

/* dane_cache_entries - domains held now (constant time). */
unsigned long dane_cache_entries(const struct dane_cache *c);

#endif
