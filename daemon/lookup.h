/*
 * One socketmap lookup from request to answer: map name dispatch, key normalisation,
 * gathering the facts for the domain, and the engine's decision. Local facts (the
 * overrides table) are immediate; DNSSEC/DANE facts come from the resolver, with every
 * concurrent lookup of one domain sharing one resolution ("flight"), and every lookup
 * bounded by lookup_timeout: when the budget runs out the answer is TEMP.
 */
#ifndef DAEMON_LOOKUP_H
#define DAEMON_LOOKUP_H

#include <uv.h>

#include "domain.h"
#include "engine.h"
#include "sockmap.h"

struct overrides;
struct resolver;
struct waiter;
struct flight;

/* The lookup service: what a lookup consults. Owned by the server (or the query command). */
struct lookup_svc {
    uv_loop_t *loop;
    struct overrides *overrides; /* never NULL; replaced whole on reload */
    struct resolver *resolver;   /* never NULL */
    unsigned timeout_ms;         /* lookup_timeout */

    /* Private: flights by domain, and waiters in deadline order (all budgets are equal,
     * so arrival order is deadline order). */
    struct flight **flights;
    size_t nbuckets;
    struct waiter *deadline_head, *deadline_tail;
    uv_timer_t timer;
    unsigned long lookups_waiting;
};

struct lookup_result {
    enum engine_map map;
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
 * lookup_svc_close - answer every waiting lookup with TEMP and close the timer (the loop
 * must run once more to finish the close). The resolver is not touched.
 */
void lookup_svc_close(struct lookup_svc *svc);

/*
 * lookup_start - answer the request req (name and key point into the caller's buffer and
 * need to stay valid only during this call).
 */
void lookup_start(struct lookup_svc *svc, const struct sockmap_request *req, lookup_done_fn done,
                  void *arg);

#endif
