/*
 * The decision table. Each row names the map it serves, a condition on the facts and the
 * answer it gives; the first row whose map and condition match decides. Keep the rows in
 * SPEC section 4's order, and keep every condition a plain function of the facts.
 */
#include "engine.h"

#include <stdio.h>
#include <string.h>

struct row {
    enum sockmap_map map;
    const char *rule;
    int (*when)(const struct engine_facts *f);
    void (*answer)(const struct engine_facts *f, struct engine_answer *a);
};

/* Conditions. */

static int always(const struct engine_facts *f)
{
    (void)f;
    return 1;
}

static int has_override(const struct engine_facts *f)
{
    return f->has_override;
}

/* draft-ietf-uta-smtp-require-tls-06 4.2.1: only a level that authenticates the server. */
static int has_authenticated_override(const struct engine_facts *f)
{
    return f->has_override && tlspolicy_authenticated(f->override_level);
}

static int dane_temp(const struct engine_facts *f)
{
    return f->dane && f->dane->state == DANE_TEMP;
}

static int dane_all(const struct engine_facts *f)
{
    return f->dane && f->dane->state == DANE_ALL;
}

/* RFC 7672 2.2: some hosts usable, or TLSA present but unusable: mandatory TLS, "dane". */
static int dane_partial(const struct engine_facts *f)
{
    return f->dane && (f->dane->state == DANE_SOME || f->dane->state == DANE_UNUSABLE ||
                       f->dane->state == DANE_DEGRADED);
}

static int dane_usable(const struct engine_facts *f)
{
    return f->dane && (f->dane->state == DANE_ALL || f->dane->state == DANE_SOME);
}

/*
 * MTA-STS (RFC 8461 5): only an enforce policy constrains ordinary mail, unless the
 * administrator asked for testing policies to be enforced too (sts_enforce_testing).
 */
static int sts_enforce(const struct engine_facts *f)
{
    if (f->sts == NULL || f->sts->state != MTASTS_POLICY)
        return 0;
    return f->sts->policy.mode == STS_MODE_ENFORCE ||
           (f->sts->policy.mode == STS_MODE_TESTING && (f->sts_flags & ENGINE_STS_ENFORCE_TESTING));
}

/*
 * DANE on some MX hosts (or DANE lookups failed for some and the rest have none) beside an
 * MTA-STS enforce policy. "dane" would give the hosts without TLSA unauthenticated TLS,
 * which the MTA-STS policy forbids; "secure" would let MTA-STS override a failing DANE
 * check (RFC 8461 2 says it must not). "dane-only" does neither: the DANE hosts are used,
 * the others skipped, and no host is reached unauthenticated.
 */
static int dane_partial_sts_enforce(const struct engine_facts *f)
{
    return f->dane && (f->dane->state == DANE_SOME || f->dane->state == DANE_DEGRADED) &&
           sts_enforce(f);
}

/*
 * TLSA records exist but none is usable (RFC 7672 2.2: mandatory TLS, nothing to check),
 * beside an MTA-STS enforce policy: no DANE check takes place that MTA-STS could override,
 * so the policy's "secure" (PKIX for the policy's MX patterns) applies; it is stricter than
 * the "dane" answer, never weaker.
 */
static int dane_unusable_sts_enforce(const struct engine_facts *f)
{
    return f->dane && f->dane->state == DANE_UNUSABLE && sts_enforce(f);
}

/*
 * The TXT record announced a policy and the fetch failed on our side (our CA bundle,
 * memory, descriptors), with no policy in force: RFC 8461's "no policy" is for failures of
 * the policy host, not ours (issue 10 section 3).
 */
static int sts_local_fault(const struct engine_facts *f)
{
    return f->sts && f->sts->state != MTASTS_POLICY && f->sts->local_fault;
}

/* draft-ietf-uta-smtp-require-tls-06 4.2.1: an MTA-STS policy in any mode but none
 * validates the MX for a REQUIRETLS message. */
static int sts_validates_mx(const struct engine_facts *f)
{
    return f->sts && f->sts->state == MTASTS_POLICY && f->sts->policy.mode != STS_MODE_NONE;
}

/* Answers. */

static void set(struct engine_answer *a, enum sockmap_status st, const char *text)
{
    a->status = st;
    snprintf(a->text, sizeof(a->text), "%s", text);
}

static void answer_override(const struct engine_facts *f, struct engine_answer *a)
{
    set(a, SOCKMAP_OK, f->override_value);
}

static void answer_no_policy(const struct engine_facts *f, struct engine_answer *a)
{
    (void)f;
    set(a, SOCKMAP_NOTFOUND, "");
}

static void answer_may(const struct engine_facts *f, struct engine_answer *a)
{
    (void)f;
    set(a, SOCKMAP_OK, "may");
}

static void answer_dane_only(const struct engine_facts *f, struct engine_answer *a)
{
    (void)f;
    set(a, SOCKMAP_OK, "dane-only");
}

static void answer_dane(const struct engine_facts *f, struct engine_answer *a)
{
    (void)f;
    set(a, SOCKMAP_OK, "dane");
}

/* SPEC 4: a bogus or failed DNSSEC lookup never yields a weaker answer. */
static void answer_dane_temp(const struct engine_facts *f, struct engine_answer *a)
{
    a->status = SOCKMAP_TEMP;
    snprintf(a->text, sizeof(a->text), "DNSSEC: %s", f->dane->why);
}

/* SPEC 7: in doubt, TEMP; the reason names the local fault so the administrator can fix it. */
static void answer_sts_local_fault(const struct engine_facts *f, struct engine_answer *a)
{
    a->status = SOCKMAP_TEMP;
    snprintf(a->text, sizeof(a->text), "MTA-STS policy of %s unknown: %s", f->domain, f->sts->why);
}

/*
 * Postfix 3.10+ (TLSRPT_README) reads the policy behind an answer from these attributes
 * for its TLS reports: policy_type, policy_domain, one mx_host_pattern per pattern and one
 * "{ policy_string = LINE }" per policy line. Earlier Postfix versions reject them, hence
 * the option. An answer too long for them keeps its security part and goes without.
 */
static void append_sts_attributes(const struct engine_facts *f, struct engine_answer *a)
{
    const struct sts_policy *p = &f->sts->policy;
    size_t len = strlen(a->text), cap = sizeof(a->text);
    int n;

#define ADD(...)                                                                                   \
    do {                                                                                           \
        n = snprintf(a->text + len, cap - len, __VA_ARGS__);                                       \
        if (n < 0 || (size_t)n >= cap - len)                                                       \
            goto too_long;                                                                         \
        len += (size_t)n;                                                                          \
    } while (0)
    {
        size_t base = len;

        ADD(" policy_type=sts policy_domain=%s", f->domain);
        for (const char *m = sts_policy_mx(p, 0); m; m = sts_policy_next(p, m))
            ADD(" mx_host_pattern=%s", m);
        ADD(" { policy_string = version: STSv1 } { policy_string = mode: %s }",
            sts_mode_name(p->mode));
        for (const char *m = sts_policy_mx(p, 0); m; m = sts_policy_next(p, m))
            ADD(" { policy_string = mx: %s }", m);
        ADD(" { policy_string = max_age: %u }", (unsigned)p->max_age);
        return;
    too_long:
        a->text[base] = '\0';
    }
#undef ADD
}

/*
 * RFC 8461 4.1 and 5: the MX host must match a policy pattern and present a certificate
 * valid for its name under the WebPKI; Postfix's "secure" level with the patterns as its
 * match list and servername=hostname does both. A policy with no usable pattern is never
 * rendered as an empty match list (that would match nothing and read as misconfiguration):
 * the answer is TEMP instead.
 */
static void answer_sts_secure(const struct engine_facts *f, struct engine_answer *a)
{
    char list[SOCKMAP_MAX_TEXT - 64];

    if (sts_match_list(&f->sts->policy, list, sizeof(list)) < 0) {
        set(a, SOCKMAP_TEMP, "MTA-STS: the policy has no usable mx pattern");
        return;
    }
    a->status = SOCKMAP_OK;
    snprintf(a->text, sizeof(a->text), "secure match=%s servername=hostname", list);
    if (f->sts_flags & ENGINE_STS_ATTRIBUTES)
        append_sts_attributes(f, a);
}

/*
 * REQUIRETLS (draft-ietf-uta-smtp-require-tls-06 4.2.1, RFC 8689 4.2.1): the MX must be
 * validated (DNSSEC or MTA-STS), the server's certificate must authenticate it (PKIX or
 * DANE), and the server must advertise REQUIRETLS after STARTTLS. The first two come from
 * DANE and MTA-STS facts; the last from the probe, when requiretls_probe is on.
 *
 * A "good" host for a path: probed, TLS up, authenticated the way the path's answer will
 * make Postfix check it, and REQUIRETLS advertised.
 */
enum rtls_path { PATH_DANE, PATH_STS, PATH_MX };

/* Is name a candidate MX host for the path (before looking at the probe)? */
static int candidate(const struct engine_facts *f, enum rtls_path path, const char *name)
{
    switch (path) {
    case PATH_DANE:
        for (unsigned i = 0; i < f->dane->nhosts; i++)
            if (strcmp(f->dane->hosts[i].name, name) == 0)
                return f->dane->hosts[i].tlsa_usable > 0;
        return 0;
    case PATH_STS:
        return sts_mx_match(&f->sts->policy, name);
    case PATH_MX:
        for (unsigned i = 0; i < f->dane->nhosts; i++)
            if (strcmp(f->dane->hosts[i].name, name) == 0)
                return 1;
        return 0;
    }
    return 0;
}

static int good(enum rtls_path path, const struct rtls_host *h)
{
    if (!h->probed || !h->tls || !h->requiretls)
        return 0;
    return path == PATH_DANE ? h->dane : h->pkix;
}

struct tally {
    unsigned candidates, good, good_pkix, authenticated; /* authenticated: TLS + auth ok */
    unsigned transient;                                  /* no definite probe result */
    unsigned leaky;    /* authenticates, definitely without REQUIRETLS: must not be used */
    unsigned unjudged; /* transient and not good: nothing is known about it yet */
};

static struct tally count(const struct engine_facts *f, enum rtls_path path)
{
    struct tally t = {0, 0, 0, 0, 0, 0, 0};

    for (unsigned i = 0; f->rtls && i < f->rtls->nhosts; i++) {
        const struct rtls_host *h = &f->rtls->hosts[i];
        int auth = h->probed && h->tls && (path == PATH_DANE ? h->dane : h->pkix);

        if (!candidate(f, path, h->name))
            continue;
        t.candidates++;
        t.transient += h->transient;
        t.authenticated += auth;
        if (good(path, h)) {
            t.good++;
            t.good_pkix += h->pkix;
        } else if (h->transient) {
            t.unjudged++;
        } else if (auth) {
            t.leaky++;
        }
    }
    return t;
}

static int mx_validated(const struct engine_facts *f)
{
    return f->dane && f->dane->mx_secure && !f->dane->null_mx && f->dane->nhosts > 0;
}

/* Which path validates the MX for REQUIRETLS, in SPEC 4's order; -1 for none. */
static int rtls_path(const struct engine_facts *f)
{
    if (dane_usable(f))
        return PATH_DANE;
    if (sts_validates_mx(f))
        return PATH_STS;
    if (mx_validated(f))
        return PATH_MX;
    return -1;
}

/* Without the probe (requiretls_probe = no) the path alone decides. */
static int unprobed(const struct engine_facts *f)
{
    return !f->rtls_probe;
}

/*
 * "dane-only" lets Postfix deliver to every MX host that authenticates by DANE, and to no
 * other. So it is safe for a REQUIRETLS message when some host qualifies and every DANE
 * candidate that would authenticate also advertises REQUIRETLS. Hosts that fail the DANE
 * check, offer no TLS or have no address are harmless: Postfix cannot use them either. A
 * host the probe could not judge (no connection, a timeout) may still authenticate without
 * advertising REQUIRETLS, so it keeps "dane-only" off until it is judged.
 */
static int rtls_dane_only(const struct engine_facts *f)
{
    struct tally t;

    if (rtls_path(f) != PATH_DANE)
        return 0;
    if (unprobed(f))
        return 1;
    t = count(f, PATH_DANE);
    return t.good > 0 && t.leaky == 0 && t.unjudged == 0;
}

/*
 * Some DANE hosts advertise REQUIRETLS and some do not. "dane-only" cannot keep Postfix off
 * the others, but a match list can, where the good hosts' certificates also verify by PKIX.
 */
static int rtls_dane_some_pkix(const struct engine_facts *f)
{
    struct tally t;

    if (rtls_path(f) != PATH_DANE || unprobed(f))
        return 0;
    t = count(f, PATH_DANE);
    return t.good > 0 && t.good_pkix == t.good;
}

static int rtls_sts(const struct engine_facts *f)
{
    return rtls_path(f) == PATH_STS && (unprobed(f) || count(f, PATH_STS).good > 0);
}

static int rtls_mx(const struct engine_facts *f)
{
    return rtls_path(f) == PATH_MX && (unprobed(f) || count(f, PATH_MX).good > 0);
}

/*
 * A validated path, no good host yet, and a host the probe could not judge (no connection,
 * a timeout, a full probe queue): the message waits and is tried again, as for any
 * temporary failure, rather than bounce on what may be a passing outage.
 */
static int rtls_pending(const struct engine_facts *f)
{
    int path = rtls_path(f);
    struct tally t;

    if (path < 0 || unprobed(f))
        return 0;
    t = count(f, (enum rtls_path)path);
    if (t.good == 0)
        return t.transient > 0 || (f->rtls && f->rtls->transient);
    /* DANE: good hosts, none known to be unfit, some not judged yet (rtls_dane_only). */
    return path == PATH_DANE && t.leaky == 0 && t.unjudged > 0;
}

static void answer_rtls_pending(const struct engine_facts *f, struct engine_answer *a)
{
    a->status = SOCKMAP_TEMP;
    snprintf(a->text, sizeof(a->text),
             "4.4.1 REQUIRETLS: MX hosts of %s could not be checked yet; trying again later",
             f->domain);
}

/*
 * DANE: some hosts qualify, but others authenticate and do not advertise REQUIRETLS, and
 * "dane-only" cannot keep Postfix off them (the good hosts' certificates do not verify by
 * PKIX, so no match list can name them alone): 5.7.30, naming the hosts at fault.
 */
static int rtls_dane_mixed(const struct engine_facts *f)
{
    struct tally t;

    if (rtls_path(f) != PATH_DANE || unprobed(f))
        return 0;
    t = count(f, PATH_DANE);
    return t.good > 0 && t.leaky > 0;
}

static void answer_rtls_dane_mixed(const struct engine_facts *f, struct engine_answer *a)
{
    size_t len;
    unsigned n = 0;

    a->status = SOCKMAP_TEMP;
    len = (size_t)snprintf(a->text, sizeof(a->text), "5.7.30 REQUIRETLS support required: ");
    for (unsigned i = 0; i < f->rtls->nhosts && len < sizeof(a->text); i++) {
        const struct rtls_host *h = &f->rtls->hosts[i];

        if (!candidate(f, PATH_DANE, h->name) || good(PATH_DANE, h) || h->transient ||
            !(h->probed && h->tls && h->dane))
            continue;
        len += (size_t)snprintf(a->text + len, sizeof(a->text) - len, "%s%s", n++ ? ", " : "",
                                h->name);
    }
    if (len < sizeof(a->text))
        snprintf(a->text + len, sizeof(a->text) - len,
                 " of %s authenticate%s by DANE without advertising REQUIRETLS, and the hosts "
                 "that advertise it cannot be chosen alone (no PKIX certificate)",
                 f->domain, n == 1 ? "s" : "");
}

/* A validated path, hosts that authenticate, and none that advertises REQUIRETLS: 5.7.30. */
static int rtls_unsupported(const struct engine_facts *f)
{
    int path = rtls_path(f);

    return path >= 0 && !unprobed(f) && count(f, (enum rtls_path)path).authenticated > 0;
}

/* The good hosts' names as a Postfix match list: only they may receive the message. */
static void answer_good_hosts(const struct engine_facts *f, enum rtls_path path,
                              struct engine_answer *a)
{
    size_t len;

    a->status = SOCKMAP_OK;
    len = (size_t)snprintf(a->text, sizeof(a->text), "secure match=");
    for (unsigned i = 0; i < f->rtls->nhosts; i++) {
        const struct rtls_host *h = &f->rtls->hosts[i];

        if (!candidate(f, path, h->name) || !good(path, h) || (path == PATH_DANE && !h->pkix))
            continue;
        len += (size_t)snprintf(a->text + len, sizeof(a->text) - len, "%s%s",
                                a->text[len - 1] == '=' ? "" : ":", h->name);
    }
    snprintf(a->text + len, sizeof(a->text) - len, " servername=hostname");
}

static void answer_rtls_dane_pkix(const struct engine_facts *f, struct engine_answer *a)
{
    answer_good_hosts(f, PATH_DANE, a);
}

static void answer_rtls_sts(const struct engine_facts *f, struct engine_answer *a)
{
    if (unprobed(f))
        answer_sts_secure(f, a);
    else
        answer_good_hosts(f, PATH_STS, a);
}

static void answer_rtls_mx(const struct engine_facts *f, struct engine_answer *a)
{
    size_t len;

    if (!unprobed(f)) {
        answer_good_hosts(f, PATH_MX, a);
        return;
    }
    /* The host names of a DNSSEC-validated MX RRset are the validated names. */
    a->status = SOCKMAP_OK;
    len = (size_t)snprintf(a->text, sizeof(a->text), "secure match=");
    for (unsigned i = 0; i < f->dane->nhosts; i++)
        len += (size_t)snprintf(a->text + len, sizeof(a->text) - len, "%s%s", i ? ":" : "",
                                f->dane->hosts[i].name);
    snprintf(a->text + len, sizeof(a->text) - len, " servername=hostname");
}

static void answer_rtls_unsupported(const struct engine_facts *f, struct engine_answer *a)
{
    a->status = SOCKMAP_TEMP;
    snprintf(a->text, sizeof(a->text),
             "5.7.30 REQUIRETLS support required: no MX host of %s that authenticates "
             "advertises REQUIRETLS",
             f->domain);
}

/*
 * No validated MX path, or no host on it that authenticates: a refusal (5.7.10), never a
 * level that lets a REQUIRETLS message leave unauthenticated.
 */
static void answer_requiretls_unvalidated(const struct engine_facts *f, struct engine_answer *a)
{
    a->status = SOCKMAP_TEMP;
    if (rtls_path(f) >= 0)
        snprintf(a->text, sizeof(a->text),
                 "5.7.10 REQUIRETLS: no MX host of %s offered authenticated TLS%s%s", f->domain,
                 f->rtls && f->rtls->why[0] ? ": " : "", f->rtls ? f->rtls->why : "");
    else
        snprintf(a->text, sizeof(a->text), "5.7.10 REQUIRETLS: no validated MX path to %s is known",
                 f->domain);
}

static const struct row rows[] = {
    /* policy: the recipient domain's own policy (SPEC section 4, "Answers for policy"). */
    {SOCKMAP_MAP_POLICY, "policy/override", has_override, answer_override},
    {SOCKMAP_MAP_POLICY, "policy/dnssec-temp", dane_temp, answer_dane_temp},
    {SOCKMAP_MAP_POLICY, "policy/dane-only", dane_all, answer_dane_only},
    {SOCKMAP_MAP_POLICY, "policy/dane-only-sts", dane_partial_sts_enforce, answer_dane_only},
    {SOCKMAP_MAP_POLICY, "policy/sts-unusable-dane", dane_unusable_sts_enforce, answer_sts_secure},
    /* Before "dane": a partial DANE domain whose MTA-STS policy we failed to learn could be
     * one that dane-only-sts would answer. */
    {SOCKMAP_MAP_POLICY, "policy/sts-local-fault", sts_local_fault, answer_sts_local_fault},
    {SOCKMAP_MAP_POLICY, "policy/dane", dane_partial, answer_dane},
    {SOCKMAP_MAP_POLICY, "policy/sts-enforce", sts_enforce, answer_sts_secure},
    {SOCKMAP_MAP_POLICY, "policy/none", always, answer_no_policy},

    /* tlsoptional: the recipient's policy is waived, STARTTLS still attempted (RFC 8689 5). */
    {SOCKMAP_MAP_TLSOPTIONAL, "tlsoptional/may", always, answer_may},

    /* requiretls: authenticated TLS over a validated MX path, or no delivery (draft 4.2.1). */
    {SOCKMAP_MAP_REQUIRETLS, "requiretls/override", has_authenticated_override, answer_override},
    {SOCKMAP_MAP_REQUIRETLS, "requiretls/dnssec-temp", dane_temp, answer_dane_temp},
    {SOCKMAP_MAP_REQUIRETLS, "requiretls/dane-only", rtls_dane_only, answer_dane_only},
    {SOCKMAP_MAP_REQUIRETLS, "requiretls/dane-some-pkix", rtls_dane_some_pkix,
     answer_rtls_dane_pkix},
    {SOCKMAP_MAP_REQUIRETLS, "requiretls/sts", rtls_sts, answer_rtls_sts},
    {SOCKMAP_MAP_REQUIRETLS, "requiretls/mx-dnssec", rtls_mx, answer_rtls_mx},
    {SOCKMAP_MAP_REQUIRETLS, "requiretls/probe-pending", rtls_pending, answer_rtls_pending},
    {SOCKMAP_MAP_REQUIRETLS, "requiretls/dane-mixed", rtls_dane_mixed, answer_rtls_dane_mixed},
    {SOCKMAP_MAP_REQUIRETLS, "requiretls/unsupported", rtls_unsupported, answer_rtls_unsupported},
    {SOCKMAP_MAP_REQUIRETLS, "requiretls/sts-local-fault", sts_local_fault, answer_sts_local_fault},
    {SOCKMAP_MAP_REQUIRETLS, "requiretls/unvalidated", always, answer_requiretls_unvalidated},
};

unsigned engine_needs(enum sockmap_map map, const struct engine_facts *f)
{
    switch (map) {
    case SOCKMAP_MAP_POLICY:
        if (has_override(f))
            return 0;
        break;
    case SOCKMAP_MAP_REQUIRETLS:
    case SOCKMAP_MAP_REQUIRETLS_ACCESS:
        if (has_authenticated_override(f))
            return 0;
        break;
    default:
        return 0;
    }
    /*
     * RFC 8461 2: DANE first; MTA-STS only where DANE does not decide. Asking for both at
     * once would save one round trip for MTA-STS domains, but costs every DANE domain that
     * also publishes MTA-STS a discovery and a fetch whose policy is never used.
     */
    if (f->dane == NULL)
        return ENGINE_NEED_DANE;
    if (dane_temp(f))
        return 0;
    if (map == SOCKMAP_MAP_POLICY)
        /* Partial DANE still needs MTA-STS: an enforce policy makes it "dane-only". */
        return dane_all(f) || f->sts ? 0 : ENGINE_NEED_STS;
    /* REQUIRETLS: a validated path first (DANE, MTA-STS, DNSSEC MX), then the probe. */
    if (!dane_usable(f) && f->sts == NULL)
        return ENGINE_NEED_STS;
    if (rtls_path(f) < 0 || !f->rtls_probe)
        return 0;
    return f->rtls == NULL ? ENGINE_NEED_PROBE : 0;
}

/*
 * requiretls-access: the requiretls decision as an access(5) action for an smtpd
 * check_recipient_access restriction, so that Postfix refuses a recipient (and the
 * message bounces with the draft's code) instead of deferring it: OK answers become DUNNO
 * (the next restriction decides), 5.7.x refusals become REJECT with the same text, and
 * other TEMP answers stay TEMP (smtpd then answers 4xx and the sender retries).
 */
static void to_access(struct engine_answer *a)
{
    char text[sizeof(a->text)];

    if (a->status == SOCKMAP_OK) {
        set(a, SOCKMAP_OK, "DUNNO");
    } else if (a->status == SOCKMAP_TEMP && strncmp(a->text, "5.7.", 4) == 0) {
        /* Refusal texts are short; one that is not loses its tail, never its code. */
        snprintf(text, sizeof(text), "REJECT %.*s", (int)sizeof(text) - 8, a->text);
        set(a, SOCKMAP_OK, text);
    }
}

void engine_decide(enum sockmap_map map, const struct engine_facts *facts,
                   struct engine_answer *ans)
{
    if (map == SOCKMAP_MAP_REQUIRETLS_ACCESS) {
        engine_decide(SOCKMAP_MAP_REQUIRETLS, facts, ans);
        to_access(ans);
        return;
    }
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (rows[i].map == map && rows[i].when(facts)) {
            ans->rule = rows[i].rule;
            rows[i].answer(facts, ans);
            return;
        }
    }
    /* Unreachable for known maps: each ends with an unconditional row. */
    ans->rule = "internal/no-row";
    set(ans, SOCKMAP_TEMP, "internal error: no decision row");
}
