/*
 * daemon/mtasts/: RFC 8461. mtasts (discovery, policy cache, refresh), fetch (libcurl on
 * libuv, vetted and pinned addresses), store (state_dir records). Depends on dns/, util/,
 * config/, proto/.
 *
 * MTA-STS for one domain (RFC 8461): discovery of the _mta-sts TXT record through the
 * daemon's resolver, the HTTPS fetch of the policy from vetted, pinned addresses, and the
 * policy cache with its rules: a policy stays in force until max_age runs out even when the
 * TXT record goes or fetches fail (5.1), a changed id triggers a refetch, policies in use are
 * refreshed in the background, failures are remembered briefly, and concurrent lookups of
 * one domain share one discovery and one fetch. Policies are written through to the store and read
 * back from it when a lookup misses the cache (nothing is loaded at start-up).
 */
#ifndef DAEMON_MTASTS_H
#define DAEMON_MTASTS_H

#include <stdint.h>
#include <uv.h>

#include "sts.h"

struct resolver;
struct fetch_svc;
struct store;
struct mtasts_svc;
struct mtasts_lookup;

/* sts_cache_size's default: an entry is about 0.5 KiB (tests/bench/memory.sh), so some 10 MB. */
#define MTASTS_CACHE_MAX_DEFAULT 20000

struct mtasts_opts {
    int allow_private;   /* sts_allow_private: policy hosts on special addresses */
    unsigned fail_ttl_s; /* a failed discovery or fetch is not retried for this long */
    unsigned recheck_s;  /* a cached policy's TXT id is checked again after this long */
    /*
     * sts_cache_size: entries kept; past it the least recently used remembered failures
     * and policies the store holds are evicted, never a policy in force that only memory
     * holds (RFC 8461 5.1). 0: MTASTS_CACHE_MAX_DEFAULT.
     */
    unsigned cache_max;
    /* Fleet tier (mtasts_share.h): how long a holder renews its fleet lock's lease at most
     * (about one policy host lookup and fetch), and the longest wait for another daemon's
     * fetch before fetching here. */
    unsigned share_lock_ms;
    unsigned share_wait_ms;
};

enum mtasts_state {
    MTASTS_NONE,   /* no policy is in force (why says which step ended it) */
    MTASTS_POLICY, /* policy holds the policy in force */
};

/* Bounds of the two text fields of struct mtasts_facts, their NUL included. */
#define MTASTS_TXT_MAX 256
#define MTASTS_WHY_MAX 400

/*
 * The MTA-STS facts of a domain. The cache keeps exactly this struct for each domain (one
 * allocation, up to its policy's last pattern), and a cached answer hands it out as it is:
 * nothing is copied or rebuilt per lookup. The text fields point to strings owned by
 * whoever owns the struct (the cache, or a mtasts_text given to mtasts_facts_copy()).
 */
struct mtasts_facts {
    enum mtasts_state state;
    char id[STS_ID_MAX + 1];
    int64_t fetched, expires; /* wall-clock seconds */
    int cached;               /* answered from the cache, not from a fetch just made */
    char fetch[32];           /* outcome of the last fetch ("ok", "tls", ...), or "" */
    /*
     * state NONE because a fetch failed on our side (FETCH_LOCAL: our CA bundle, memory,
     * descriptors) after the TXT record announced a policy: not the domain's failure, so
     * not RFC 8461's "no policy" (the engine answers TEMP), and not remembered.
     */
    int local_fault;
    const char *txt; /* the TXT record that was found, escaped, or "" (< MTASTS_TXT_MAX) */
    const char *why; /* one line: what decided the state (< MTASTS_WHY_MAX); never NULL */
    /* Last, and its packed mx patterns last in it: the cache keeps and mtasts_facts_copy()
     * copies only the bytes used (sts_policy_size()). */
    struct sts_policy policy;
};

/* Room for the text of facts that must outlive the callback that gave them. */
struct mtasts_text {
    char txt[MTASTS_TXT_MAX];
    char why[MTASTS_WHY_MAX];
};

/*
 * mtasts_facts_copy - *dst = *src, up to src's last mx pattern (the unused room of the
 * pattern array, most of the struct's 9 KiB, is neither read nor written), with the text
 * copied into *text and dst's text fields pointing there: dst stays valid however the
 * cache changes. dst must be a whole struct.
 */
void mtasts_facts_copy(struct mtasts_facts *dst, const struct mtasts_facts *src,
                       struct mtasts_text *text);

/* Called once per mtasts_start() that returned non-NULL unless cancelled; f valid during it. */
typedef void (*mtasts_cb)(void *arg, const struct mtasts_facts *f);

/*
 * mtasts_svc_create - the service; store may be NULL (nothing persists). The caller owns
 * resolver, fetch and store and destroys them after this service.
 * mtasts_svc_destroy - drop every pending lookup without calling back; the memory goes
 * when the loop has run the close callback of the sweep timer.
 */
struct mtasts_svc *mtasts_svc_create(uv_loop_t *loop, struct resolver *r, struct fetch_svc *fetch,
                                     struct store *store, const struct mtasts_opts *opts);
void mtasts_svc_destroy(struct mtasts_svc *svc);

/*
 * mtasts_set_fleet - share policies with the other daemons of a fleet through f (fleet.h;
 * NULL: off): read on a local miss, one fetch per domain across the fleet, written after
 * every fetch. The caller destroys f after this service.
 */
struct fleet;
void mtasts_set_fleet(struct mtasts_svc *svc, struct fleet *f);

/* mtasts_set_opts - new options from a reload; they apply to work started afterwards. */
void mtasts_set_opts(struct mtasts_svc *svc, const struct mtasts_opts *opts);

/*
 * mtasts_start - the MTA-STS facts for the normalised domain. When they are known now (a
 * cached policy, a remembered failure) cb runs before this returns and the result is NULL;
 * otherwise the pending lookup is returned.
 */
struct mtasts_lookup *mtasts_start(struct mtasts_svc *svc, const char *domain, mtasts_cb cb,
                                   void *arg);
/*
 * mtasts_cached - the facts of domain when the cache can answer now (a policy in force, a
 * remembered failure), else NULL and nothing happens (mtasts_start() then does the work).
 * A hit is counted and, like mtasts_start()'s, starts a due TXT check behind the answer.
 * The facts are the cache's own, not a copy: valid until control returns to the loop or
 * the next call into this service, whichever is first. No allocation, no copy.
 */
const struct mtasts_facts *mtasts_cached(struct mtasts_svc *svc, const char *domain);

void mtasts_cancel(struct mtasts_lookup *l);

/* Counters for tests and metrics. */
unsigned long mtasts_fetches_started(const struct mtasts_svc *svc);

/*
 * mtasts_cache_entries - domains the cache holds; *policies: how many have a policy. Both
 * are counters kept as entries change: constant time, for every scrape of /metrics.
 */
unsigned long mtasts_cache_entries(const struct mtasts_svc *svc, unsigned long *policies);

#endif
