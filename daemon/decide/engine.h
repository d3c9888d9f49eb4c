/*
 * The decision table (SPEC section 4): which answer a map name gets for a domain, given
 * the facts resolved for it. A pure function: no I/O, no clock, no allocation. Later
 * capabilities (DANE, MTA-STS, REQUIRETLS probes) add facts and rows here; connection and
 * lookup code do not change.
 */
#ifndef DAEMON_ENGINE_H
#define DAEMON_ENGINE_H

#include <stddef.h>

#include "dane.h"
#include "mtasts.h"
#include "rtls.h"
#include "sockmap.h"
#include "tlspolicy.h"

/* What is known about one domain when the decision is made. */
struct engine_facts {
    const char *domain; /* normalised */
    /* The local overrides table: entry that matched, or has_override == 0. */
    int has_override;
    const char *override_key;
    const char *override_value;
    enum tlspolicy_level override_level;
    /* DNSSEC/DANE (RFC 7672), or NULL when not resolved for this decision. */
    const struct dane_facts *dane;
    /* MTA-STS (RFC 8461), or NULL when not resolved for this decision. */
    const struct mtasts_facts *sts;
    unsigned sts_flags; /* ENGINE_STS_* from the configuration */
    /* The MX probe for REQUIRETLS, or NULL when not gathered for this decision. */
    const struct rtls_facts *rtls;
    int rtls_probe; /* requiretls_probe = yes: REQUIRETLS decisions wait for probe facts */
};

/* Configuration that shapes MTA-STS answers (sts_enforce_testing, sts_postfix_attributes). */
enum {
    ENGINE_STS_ENFORCE_TESTING = 1, /* the policy map treats mode testing like enforce */
    ENGINE_STS_ATTRIBUTES = 2,      /* add Postfix 3.10+ TLSRPT attributes to STS answers */
};

/* What a decision still needs resolved, from engine_needs(). */
enum { ENGINE_NEED_DANE = 1, ENGINE_NEED_STS = 2, ENGINE_NEED_PROBE = 4 };

/*
 * engine_needs - which facts the decision for map may still need beyond those already in
 * facts (a bit set of ENGINE_NEED_*); 0 means engine_decide() can answer now. DANE comes
 * first (RFC 8461 2: DANE takes precedence); MTA-STS is needed only where DANE does not
 * decide.
 */
unsigned engine_needs(enum sockmap_map map, const struct engine_facts *facts);

struct engine_answer {
    enum sockmap_status status;
    char text[SOCKMAP_MAX_TEXT]; /* reply text after the status word ("may", a reason...) */
    const char *rule;            /* name of the table row that decided, for logs and tests */
};

/*
 * engine_decide - fill *ans for map and facts. Every (map, facts) pair reaches exactly one
 * row; map must not be SOCKMAP_MAP_UNKNOWN (unknown names are answered before facts are
 * gathered).
 */
void engine_decide(enum sockmap_map map, const struct engine_facts *facts,
                   struct engine_answer *ans);

#endif
