/*
 * daemon/decide/: turning a request into an answer. lookup (one request: key, facts, flights
 * of one domain, deadline) and engine (the pure decision table). Gathers facts from dns/,
 * mtasts/ and requiretls/; serve/ and cli/ call it.
 *
 * One socketmap lookup from request to answer: map name dispatch, key normalisation,
 * gathering the facts for the domain, and the engine's decision. Local facts (the
 * overrides table) are immediate; DNSSEC/DANE facts come from the resolver, with every
 * concurrent lookup of one domain sharing one resolution ("flight"), and every lookup
 * bounded by lookup_timeout: when the budget runs out the answer is TEMP.
 */
#ifndef DAEMON_LOOKUP_H
#define DAEMON_LOOKUP_H

#include <sys/types.h>
#include <uv.h>

#include "config.h"
#include "lru.h"
#include "mtasts.h"

#include "domain.h"
#include "engine.h"
#include "sockmap.h"

struct overrides;
struct cafile;
struct resolver;
struct dane_cache;
struct fetch_svc;
struct probe_svc;
struct store;
struct fleet;
struct waiter;
struct flight;

/* The lookup service: what a lookup consults. Owned by the server (or the query command). */
struct lookup_svc {
    uv_loop_t *loop;
    struct overrides *overrides;   /* never NULL; replaced whole on reload */
    unsigned long overrides_gen;   /* counts replacements; waiting lookups keep their entry */
    struct resolver *resolver;     /* never NULL */
    struct dane_cache *dane_cache; /* DANE facts per domain (dane_cache.h) */
    struct mtasts_svc *mtasts;     /* never NULL */
    struct fetch_svc *fetch;       /* policy fetches */
    struct probe_svc *probe;       /* MX probes for REQUIRETLS */
    struct store *store;           /* NULL without state_dir */
    struct fleet *fleet;           /* the fleet tier on Redis; NULL without redis */
    struct cafile *sts_ca;         /* sts_ca_file in memory (a reference), for the fetcher */
    struct cafile *probe_ca;       /* probe_ca_file in memory (a reference), for the prober */
    unsigned timeout_ms;           /* lookup_timeout */
    unsigned drain_timeout_ms;     /* drain_timeout: bounds the store's last writes at close */
    unsigned sts_flags;            /* ENGINE_STS_* */
    int rtls_probe;                /* requiretls_probe */

    /* Private: flights by domain, and waiters in deadline order (all budgets are equal,
     * so arrival order is deadline order). */
    struct flight **flights;
    size_t nbuckets;
    struct lru deadlines; /* struct waiter, newest at the head */
    uv_timer_t timer;
    unsigned long lookups_waiting;
};

struct lookup_result {
    enum sockmap_map map;
    char domain[DOMAIN_MAX + 1]; /* normalised domain, or "" when the key was not one */
    struct engine_facts facts;   /* what the decision saw; pointers valid during the callback */
    struct engine_answer ans;
    /* Why the answer came without a decision (bad key, parent probe, unknown map), or the
     * overrides entry used; static or table-owned text, for logs and "query --json". */
    const char *detail;
};

/*
 * lookup_done_fn - called exactly once per lookup_start(), possibly before lookup_start()
 * returns. res is valid only during the call.
 */
typedef void (*lookup_done_fn)(void *arg, const struct lookup_result *res);

/* lookup_svc_init - set up on loop; overrides, resolver and timeout_ms are set by the caller. */
void lookup_svc_init(struct lookup_svc *svc, uv_loop_t *loop);

/*
 * lookup_svc_open - create what lookups consult beyond the overrides table: the CA bundles
 * of sts_ca_file and probe_ca_file read into memory (so call it before giving up root), the
 * resolver, the policy fetcher, the store in state_dir (given to owner/group when root, and
 * refused unless owned by owner, or by the effective user when owner is (uid_t)-1; see
 * store_open()) and MTA-STS, with the store not yet opened (lookup_svc_load). -1 with a
 * one-line reason in err (a CA file's names its key and path); the caller then still calls
 * lookup_svc_close().
 */
int lookup_svc_open(struct lookup_svc *svc, const struct config *cfg, uid_t owner, gid_t group,
                    char *err, size_t errlen);

/*
 * lookup_set_ca - put a CA bundle loaded on SIGHUP in force: sts (for policy fetches) and
 * probe (for MX probes), each NULL to keep the one in force. References are taken; work in
 * flight finishes with the bundle it started with.
 */
void lookup_set_ca(struct lookup_svc *svc, struct cafile *sts, struct cafile *probe);

/*
 * lookup_svc_load - open state_dir's store (store_start(): a corrupt file set aside, the old
 * per-file layout migrated) and log how many policies it holds; none is read now, each is
 * read when a lookup first asks for its domain. A daemon started as root calls this after
 * dropping privileges. -1 with a one-line reason in err (a fault of ours: permissions,
 * space, descriptors).
 */
int lookup_svc_load(struct lookup_svc *svc, const struct config *cfg, char *err, size_t errlen);

/*
 * lookup_set_overrides - put the table ov (reloaded, never NULL) in force, taking it over,
 * and free the one it replaces. Waiting lookups find their entry again in ov when they next
 * look at their facts.
 */
void lookup_set_overrides(struct lookup_svc *svc, struct overrides *ov);

/* lookup_apply_config - the keys that a reload may change: timeouts, MTA-STS options. */
void lookup_apply_config(struct lookup_svc *svc, const struct config *cfg);

/* lookup_mtasts_opts - the MTA-STS options in cfg. */
void lookup_mtasts_opts(const struct config *cfg, struct mtasts_opts *mo);

/*
 * lookup_svc_close - answer every waiting lookup with TEMP, destroy the services opened by
 * lookup_svc_open() and close the timer (the loop must run once more to finish the closes).
 * Safe to call twice.
 */
void lookup_svc_close(struct lookup_svc *svc);

/*
 * lookup_start - answer the request req (name and key point into the caller's buffer and
 * need to stay valid only during this call).
 */
void lookup_start(struct lookup_svc *svc, const struct sockmap_request *req, lookup_done_fn done,
                  void *arg);

#endif
