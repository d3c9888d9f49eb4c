/*
 * The DANE facts of each domain as the walk of RFC 7672 2.2 concluded them, kept so that a
 * lookup answered from cache costs one hash lookup instead of a walk that asks the DNS
 * cache (or the resolver) for the MX, A, AAAA and TLSA answers again. An entry holds until
 * the earliest expiry of the answers it rests on (loop time; the TTLs as the resolver
 * bounds them, dns_min_ttl and dns_max_ttl, negative answers by their SOA as RFC 2308
 * says), whether or not the DNS cache still keeps those answers: DNS data is good for its
 * TTL wherever it is held. When it runs out, the next lookup walks again and the new facts
 * replace the entry, whatever they say. Facts that rest on a failed or bogus answer
 * (DANE_TEMP, DANE_DEGRADED, or any answer that was not cached) are never kept. Hashed by
 * domain, the buckets doubling as the cache grows; bounded by entries (dane_cache_size),
 * CLOCK eviction (least recently used first, a hit since buys a second pass); each entry one
 * allocation sized to the domain's name, the hosts in use and its reason line.
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
 * must outlive it (its loop clock). dane_cache_destroy - free it and every entry (NULL is
 * fine).
 */
struct dane_cache *dane_cache_create(struct resolver *r, size_t max_entries);
void dane_cache_destroy(struct dane_cache *c);

/*
 * dane_cache_get - the facts of the normalised domain while they hold, else NULL (a stale
 * entry stays until a walk's put replaces it or eviction takes it). A hit is counted in the
 * "dane" cache's metrics; dane_start() counts the miss when it walks. The facts (and their
 * why) belong to the cache: valid until the next dane_cache_put() to this cache. No
 * allocation.
 */
const struct dane_facts *dane_cache_get(struct dane_cache *c, const char *domain);

/*
 * dane_cache_put - keep a copy of f, concluded for domain from answers valid until expires
 * (loop time in ms; 0: some answer was not cacheable). Replaces the domain's entry, also
 * when the new facts are not kept (dane_cache_keeps()); may evict the least recently used.
 */
void dane_cache_put(struct dane_cache *c, const char *domain, const struct dane_facts *f,
                    uint64_t expires);

/*
 * The rules, pure: dane_cache_keeps - 1 when facts of this state, resting on answers valid
 * until expires, may be kept at loop time now; dane_cache_holds - 1 while an entry that
 * expires then still holds at now.
 */
int dane_cache_keeps(enum dane_state state, uint64_t expires, uint64_t now);
int dane_cache_holds(uint64_t expires, uint64_t now);

/* dane_cache_entries - domains held now (constant time). */
unsigned long dane_cache_entries(const struct dane_cache *c);

/*
 * dane_cache_entry_bytes - the size of the one allocation an entry of domain with f takes;
 * dane_cache_bytes - all entries' and the hash table's (constant time).
 */
size_t dane_cache_entry_bytes(const char *domain, const struct dane_facts *f);
size_t dane_cache_bytes(const struct dane_cache *c);

#endif
