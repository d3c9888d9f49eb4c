/*
 * One socketmap lookup from request to answer: map name dispatch, key normalisation,
 * gathering the facts for the domain, and the engine's decision. Today every fact is
 * local (the overrides table), so lookups complete before lookup_start() returns; the
 * interface is asynchronous so that DNS and MTA-STS work can complete later on the loop.
 */
#ifndef DAEMON_LOOKUP_H
#define DAEMON_LOOKUP_H

#include "domain.h"
#include "engine.h"
#include "sockmap.h"

struct overrides;

/* The lookup service: what a lookup consults. Owned by the server (or the query command). */
struct lookup_svc {
    struct overrides *overrides; /* never NULL; replaced whole on reload */
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

/*
 * lookup_start - answer the request req (name and key point into the caller's buffer and
 * need to stay valid only during this call).
 */
void lookup_start(struct lookup_svc *svc, const struct sockmap_request *req, lookup_done_fn done,
                  void *arg);

#endif
