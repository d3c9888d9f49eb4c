/*
 * The decision table. Each row names the map it serves, a condition on the facts and the
 * answer it gives; the first row whose map and condition match decides. Keep the rows in
 * SPEC section 4's order, and keep every condition a plain function of the facts.
 */
#include "engine.h"

#include <stdio.h>
#include <string.h>

struct row {
    enum engine_map map;
    const char *rule;
    int (*when)(const struct engine_facts *f);
    void (*answer)(const struct engine_facts *f, struct engine_answer *a);
};

static const char *const map_names[] = {
    [ENGINE_MAP_POLICY] = "policy",
    [ENGINE_MAP_TLSOPTIONAL] = "tlsoptional",
    [ENGINE_MAP_REQUIRETLS] = "requiretls",
};

enum engine_map engine_map_from_name(const char *name, size_t len)
{
    for (int m = 0; m < ENGINE_MAP_UNKNOWN; m++)
        if (strlen(map_names[m]) == len && memcmp(map_names[m], name, len) == 0)
            return (enum engine_map)m;
    return ENGINE_MAP_UNKNOWN;
}

const char *engine_map_name(enum engine_map map)
{
    return map < ENGINE_MAP_UNKNOWN ? map_names[map] : "unknown";
}

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
    return f->dane && (f->dane->state == DANE_SOME || f->dane->state == DANE_UNUSABLE);
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
        for (unsigned i = 0; i < p->nmx; i++)
            ADD(" mx_host_pattern=%s", p->mx[i]);
        ADD(" { policy_string = version: STSv1 } { policy_string = mode: %s }",
            sts_mode_name(p->mode));
        for (unsigned i = 0; i < p->nmx; i++)
            ADD(" { policy_string = mx: %s }", p->mx[i]);
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
 * No validated MX path is known yet. Until the DNSSEC, MTA-STS and probe facts exist the
 * answer is a deferral: it never lets a REQUIRETLS message leave unauthenticated.
 */
static void answer_requiretls_unvalidated(const struct engine_facts *f, struct engine_answer *a)
{
    a->status = SOCKMAP_TEMP;
    snprintf(a->text, sizeof(a->text), "5.7.10 REQUIRETLS: no validated MX path to %s is known",
             f->domain);
}

static const struct row rows[] = {
    /* policy: the recipient domain's own policy (SPEC section 4, "Answers for policy"). */
    {ENGINE_MAP_POLICY, "policy/override", has_override, answer_override},
    {ENGINE_MAP_POLICY, "policy/dnssec-temp", dane_temp, answer_dane_temp},
    {ENGINE_MAP_POLICY, "policy/dane-only", dane_all, answer_dane_only},
    {ENGINE_MAP_POLICY, "policy/dane", dane_partial, answer_dane},
    {ENGINE_MAP_POLICY, "policy/sts-enforce", sts_enforce, answer_sts_secure},
    {ENGINE_MAP_POLICY, "policy/none", always, answer_no_policy},

    /* tlsoptional: the recipient's policy is waived, STARTTLS still attempted (RFC 8689 5). */
    {ENGINE_MAP_TLSOPTIONAL, "tlsoptional/may", always, answer_may},

    /* requiretls: authenticated TLS over a validated MX path, or no delivery (draft 4.2.1). */
    {ENGINE_MAP_REQUIRETLS, "requiretls/override", has_authenticated_override, answer_override},
    {ENGINE_MAP_REQUIRETLS, "requiretls/dnssec-temp", dane_temp, answer_dane_temp},
    {ENGINE_MAP_REQUIRETLS, "requiretls/dane-only", dane_usable, answer_dane_only},
    {ENGINE_MAP_REQUIRETLS, "requiretls/sts", sts_validates_mx, answer_sts_secure},
    {ENGINE_MAP_REQUIRETLS, "requiretls/unvalidated", always, answer_requiretls_unvalidated},
};

unsigned engine_needs(enum engine_map map, const struct engine_facts *f)
{

    switch (map) {
    case ENGINE_MAP_POLICY:
        if (has_override(f))
            return 0;
        break;
    case ENGINE_MAP_REQUIRETLS:
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
    if (dane_temp(f) ||
        (map == ENGINE_MAP_POLICY ? dane_all(f) || dane_partial(f) : dane_usable(f)))
        return 0;
    return f->sts == NULL ? ENGINE_NEED_STS : 0;
}

void engine_decide(enum engine_map map, const struct engine_facts *facts, struct engine_answer *ans)
{
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
