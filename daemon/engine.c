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
    {ENGINE_MAP_POLICY, "policy/none", always, answer_no_policy},

    /* tlsoptional: the recipient's policy is waived, STARTTLS still attempted (RFC 8689 5). */
    {ENGINE_MAP_TLSOPTIONAL, "tlsoptional/may", always, answer_may},

    /* requiretls: authenticated TLS over a validated MX path, or no delivery (draft 4.2.1). */
    {ENGINE_MAP_REQUIRETLS, "requiretls/override", has_authenticated_override, answer_override},
    {ENGINE_MAP_REQUIRETLS, "requiretls/dnssec-temp", dane_temp, answer_dane_temp},
    {ENGINE_MAP_REQUIRETLS, "requiretls/dane-only", dane_usable, answer_dane_only},
    {ENGINE_MAP_REQUIRETLS, "requiretls/unvalidated", always, answer_requiretls_unvalidated},
};

unsigned engine_needs(enum engine_map map, const struct engine_facts *f)
{
    /* DANE is resolved unless a row above every DANE row already decides. */
    switch (map) {
    case ENGINE_MAP_POLICY:
        return has_override(f) || f->dane ? 0 : ENGINE_NEED_DANE;
    case ENGINE_MAP_REQUIRETLS:
        return has_authenticated_override(f) || f->dane ? 0 : ENGINE_NEED_DANE;
    default:
        return 0;
    }
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
