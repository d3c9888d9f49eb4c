/*
 * The decision table (daemon/decide/engine.c), row by row: for each map and each shape of facts,
 * the answer and the rule that gave it. SPEC section 4's tables are the reference.
 */
#include "check.h"
#include "engine.h"

#include <stdio.h>

/* Rows leave the trailing sts field out when MTA-STS is not resolved. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

/* DANE facts shapes used by the rows: -1 for "not resolved" (NULL). */
#define NODANE (-1)

struct row {
    const char *label;
    enum sockmap_map map;
    int has_override;
    const char *override_value;
    enum tlspolicy_level level;
    int dane; /* enum dane_state, or NODANE */
    enum sockmap_status want_status;
    const char *want_text;
    const char *want_rule;
    int sts; /* STS_* below; rows without it leave MTA-STS unresolved */
};

/*
 * MTA-STS facts shapes: unresolved (NULL), no policy, or a policy in one mode; then no
 * policy because the fetch failed on our side (local_fault), and an enforce policy still
 * in force beside such a fault (issue 10 section 3).
 */
enum {
    STS_UNRESOLVED,
    STS_NOPOLICY,
    STS_ENFORCE,
    STS_TESTING,
    STS_MODENONE,
    STS_LOCAL,
    STS_ENFORCE_LOCAL
};
#define LOCAL_WHY "policy fetch from mta-sts.example.com failed: local fault: CA bundle"
#define LOCAL_TEMP "MTA-STS policy of example.com unknown: " LOCAL_WHY
#define STS_MATCH "secure match=mx1.example.com:.backup.example.net servername=hostname"

static const struct row rows[] = {
    /* policy */
    {"policy: override used as is", SOCKMAP_MAP_POLICY, 1, "secure match=.example.com",
     TLSPOLICY_SECURE, NODANE, SOCKMAP_OK, "secure match=.example.com", "policy/override"},
    {"policy: a weak override is still the admin's choice", SOCKMAP_MAP_POLICY, 1, "none",
     TLSPOLICY_NONE, NODANE, SOCKMAP_OK, "none", "policy/override"},
    {"policy: nothing known", SOCKMAP_MAP_POLICY, 0, NULL, 0, NODANE, SOCKMAP_NOTFOUND, "",
     "policy/none"},

    {"policy: override wins over DANE", SOCKMAP_MAP_POLICY, 1, "may", TLSPOLICY_MAY, DANE_ALL,
     SOCKMAP_OK, "may", "policy/override"},
    {"policy: bogus DNSSEC is TEMP", SOCKMAP_MAP_POLICY, 0, NULL, 0, DANE_TEMP, SOCKMAP_TEMP,
     "DNSSEC: why", "policy/dnssec-temp"},
    {"policy: all hosts usable TLSA", SOCKMAP_MAP_POLICY, 0, NULL, 0, DANE_ALL, SOCKMAP_OK,
     "dane-only", "policy/dane-only"},
    {"policy: some hosts usable TLSA", SOCKMAP_MAP_POLICY, 0, NULL, 0, DANE_SOME, SOCKMAP_OK,
     "dane", "policy/dane"},
    {"policy: only unusable TLSA", SOCKMAP_MAP_POLICY, 0, NULL, 0, DANE_UNUSABLE, SOCKMAP_OK,
     "dane", "policy/dane"},
    {"policy: no DANE", SOCKMAP_MAP_POLICY, 0, NULL, 0, DANE_NONE, SOCKMAP_NOTFOUND, "",
     "policy/none"},
    {"policy: some hosts failed, the rest without TLSA: Postfix judges each host",
     SOCKMAP_MAP_POLICY, 0, NULL, 0, DANE_DEGRADED, SOCKMAP_OK, "dane", "policy/dane"},
    {"policy: degraded DANE beside STS enforce: no host unauthenticated", SOCKMAP_MAP_POLICY, 0,
     NULL, 0, DANE_DEGRADED, SOCKMAP_OK, "dane-only", "policy/dane-only-sts", STS_ENFORCE},
    {"policy: degraded DANE beside STS testing stays dane", SOCKMAP_MAP_POLICY, 0, NULL, 0,
     DANE_DEGRADED, SOCKMAP_OK, "dane", "policy/dane", STS_TESTING},
    {"policy: DANE on some hosts beside STS enforce: dane-only", SOCKMAP_MAP_POLICY, 0, NULL, 0,
     DANE_SOME, SOCKMAP_OK, "dane-only", "policy/dane-only-sts", STS_ENFORCE},
    {"policy: DANE on some hosts, no STS policy: dane", SOCKMAP_MAP_POLICY, 0, NULL, 0, DANE_SOME,
     SOCKMAP_OK, "dane", "policy/dane", STS_NOPOLICY},
    {"policy: DANE on some hosts, STS mode none: dane", SOCKMAP_MAP_POLICY, 0, NULL, 0, DANE_SOME,
     SOCKMAP_OK, "dane", "policy/dane", STS_MODENONE},
    {"requiretls: degraded DANE is no DANE path", SOCKMAP_MAP_REQUIRETLS, 0, NULL, 0, DANE_DEGRADED,
     SOCKMAP_TEMP, "5.7.10 REQUIRETLS: no validated MX path to example.com is known",
     "requiretls/unvalidated"},

    /* MTA-STS (RFC 8461) after DANE (RFC 8461 section 2: DANE takes precedence) */
    {"policy: STS enforce", SOCKMAP_MAP_POLICY, 0, NULL, 0, DANE_NONE, SOCKMAP_OK, STS_MATCH,
     "policy/sts-enforce", STS_ENFORCE},
    {"policy: STS enforce, DANE unresolved", SOCKMAP_MAP_POLICY, 0, NULL, 0, NODANE, SOCKMAP_OK,
     STS_MATCH, "policy/sts-enforce", STS_ENFORCE},
    {"policy: STS testing is no policy", SOCKMAP_MAP_POLICY, 0, NULL, 0, DANE_NONE,
     SOCKMAP_NOTFOUND, "", "policy/none", STS_TESTING},
    {"policy: STS mode none", SOCKMAP_MAP_POLICY, 0, NULL, 0, DANE_NONE, SOCKMAP_NOTFOUND, "",
     "policy/none", STS_MODENONE},
    {"policy: no STS policy", SOCKMAP_MAP_POLICY, 0, NULL, 0, DANE_NONE, SOCKMAP_NOTFOUND, "",
     "policy/none", STS_NOPOLICY},
    {"policy: DANE wins over STS", SOCKMAP_MAP_POLICY, 0, NULL, 0, DANE_ALL, SOCKMAP_OK,
     "dane-only", "policy/dane-only", STS_ENFORCE},
    {"policy: unusable TLSA beside STS enforce: the policy's PKIX check", SOCKMAP_MAP_POLICY, 0,
     NULL, 0, DANE_UNUSABLE, SOCKMAP_OK, STS_MATCH, "policy/sts-unusable-dane", STS_ENFORCE},
    {"policy: unusable TLSA, STS testing: dane", SOCKMAP_MAP_POLICY, 0, NULL, 0, DANE_UNUSABLE,
     SOCKMAP_OK, "dane", "policy/dane", STS_TESTING},
    {"policy: bogus DNSSEC wins over STS", SOCKMAP_MAP_POLICY, 0, NULL, 0, DANE_TEMP, SOCKMAP_TEMP,
     "DNSSEC: why", "policy/dnssec-temp", STS_ENFORCE},
    {"policy: override wins over STS", SOCKMAP_MAP_POLICY, 1, "may", TLSPOLICY_MAY, NODANE,
     SOCKMAP_OK, "may", "policy/override", STS_ENFORCE},
    {"requiretls: STS enforce validates the MX", SOCKMAP_MAP_REQUIRETLS, 0, NULL, 0, DANE_NONE,
     SOCKMAP_OK, STS_MATCH, "requiretls/sts", STS_ENFORCE},
    {"requiretls: STS testing validates the MX", SOCKMAP_MAP_REQUIRETLS, 0, NULL, 0, DANE_NONE,
     SOCKMAP_OK, STS_MATCH, "requiretls/sts", STS_TESTING},
    {"requiretls: STS mode none does not", SOCKMAP_MAP_REQUIRETLS, 0, NULL, 0, DANE_NONE,
     SOCKMAP_TEMP, "5.7.10 REQUIRETLS: no validated MX path to example.com is known",
     "requiretls/unvalidated", STS_MODENONE},
    {"requiretls: DANE usable wins over STS", SOCKMAP_MAP_REQUIRETLS, 0, NULL, 0, DANE_SOME,
     SOCKMAP_OK, "dane-only", "requiretls/dane-only", STS_ENFORCE},
    {"requiretls: unusable TLSA, STS enforce", SOCKMAP_MAP_REQUIRETLS, 0, NULL, 0, DANE_UNUSABLE,
     SOCKMAP_OK, STS_MATCH, "requiretls/sts", STS_ENFORCE},

    /* A local fault (our CA, memory, descriptors) is not RFC 8461's "no policy". */
    {"policy: STS local fault is TEMP", SOCKMAP_MAP_POLICY, 0, NULL, 0, DANE_NONE, SOCKMAP_TEMP,
     LOCAL_TEMP, "policy/sts-local-fault", STS_LOCAL},
    {"policy: STS local fault, DANE unresolved", SOCKMAP_MAP_POLICY, 0, NULL, 0, NODANE,
     SOCKMAP_TEMP, LOCAL_TEMP, "policy/sts-local-fault", STS_LOCAL},
    {"policy: STS local fault beside a policy in force", SOCKMAP_MAP_POLICY, 0, NULL, 0, DANE_NONE,
     SOCKMAP_OK, STS_MATCH, "policy/sts-enforce", STS_ENFORCE_LOCAL},
    {"policy: DANE wins over an STS local fault", SOCKMAP_MAP_POLICY, 0, NULL, 0, DANE_ALL,
     SOCKMAP_OK, "dane-only", "policy/dane-only", STS_LOCAL},
    {"policy: DANE on some hosts and an STS local fault: it could be dane-only-sts, so TEMP",
     SOCKMAP_MAP_POLICY, 0, NULL, 0, DANE_SOME, SOCKMAP_TEMP, LOCAL_TEMP, "policy/sts-local-fault",
     STS_LOCAL},
    {"policy: override wins over an STS local fault", SOCKMAP_MAP_POLICY, 1, "may", TLSPOLICY_MAY,
     NODANE, SOCKMAP_OK, "may", "policy/override", STS_LOCAL},
    {"requiretls: STS local fault is TEMP, not 5.7.10", SOCKMAP_MAP_REQUIRETLS, 0, NULL, 0,
     DANE_NONE, SOCKMAP_TEMP, LOCAL_TEMP, "requiretls/sts-local-fault", STS_LOCAL},
    {"requiretls-access: STS local fault stays TEMP, no REJECT", SOCKMAP_MAP_REQUIRETLS_ACCESS, 0,
     NULL, 0, DANE_NONE, SOCKMAP_TEMP, LOCAL_TEMP, "requiretls/sts-local-fault", STS_LOCAL},
    {"requiretls: STS local fault beside a policy in force", SOCKMAP_MAP_REQUIRETLS, 0, NULL, 0,
     DANE_NONE, SOCKMAP_OK, STS_MATCH, "requiretls/sts", STS_ENFORCE_LOCAL},
    {"tlsoptional: STS local fault waived", SOCKMAP_MAP_TLSOPTIONAL, 0, NULL, 0, DANE_NONE,
     SOCKMAP_OK, "may", "tlsoptional/may", STS_LOCAL},
    {"tlsoptional: STS enforce waived", SOCKMAP_MAP_TLSOPTIONAL, 0, NULL, 0, DANE_NONE, SOCKMAP_OK,
     "may", "tlsoptional/may", STS_ENFORCE},

    /* tlsoptional: RFC 8689 section 5, the recipient's policy is waived */
    {"tlsoptional: no facts", SOCKMAP_MAP_TLSOPTIONAL, 0, NULL, 0, NODANE, SOCKMAP_OK, "may",
     "tlsoptional/may"},
    {"tlsoptional: override waived too", SOCKMAP_MAP_TLSOPTIONAL, 1, "dane-only",
     TLSPOLICY_DANE_ONLY, NODANE, SOCKMAP_OK, "may", "tlsoptional/may"},

    /* requiretls: draft-ietf-uta-smtp-require-tls-06 section 4.2.1 */
    {"requiretls: dane-only override", SOCKMAP_MAP_REQUIRETLS, 1, "dane-only", TLSPOLICY_DANE_ONLY,
     NODANE, SOCKMAP_OK, "dane-only", "requiretls/override"},
    {"requiretls: secure override", SOCKMAP_MAP_REQUIRETLS, 1, "secure match=mx.example.com",
     TLSPOLICY_SECURE, NODANE, SOCKMAP_OK, "secure match=mx.example.com", "requiretls/override"},
    {"requiretls: verify override", SOCKMAP_MAP_REQUIRETLS, 1, "verify", TLSPOLICY_VERIFY, NODANE,
     SOCKMAP_OK, "verify", "requiretls/override"},
    {"requiretls: fingerprint override", SOCKMAP_MAP_REQUIRETLS, 1, "fingerprint match=AB:CD",
     TLSPOLICY_FINGERPRINT, NODANE, SOCKMAP_OK, "fingerprint match=AB:CD", "requiretls/override"},
    {"requiretls: may override is not enough", SOCKMAP_MAP_REQUIRETLS, 1, "may", TLSPOLICY_MAY,
     NODANE, SOCKMAP_TEMP, "5.7.10 REQUIRETLS: no validated MX path to example.com is known",
     "requiretls/unvalidated"},
    {"requiretls: encrypt does not authenticate", SOCKMAP_MAP_REQUIRETLS, 1, "encrypt",
     TLSPOLICY_ENCRYPT, NODANE, SOCKMAP_TEMP,
     "5.7.10 REQUIRETLS: no validated MX path to example.com is known", "requiretls/unvalidated"},
    {"requiretls: dane may fall back to may", SOCKMAP_MAP_REQUIRETLS, 1, "dane", TLSPOLICY_DANE,
     NODANE, SOCKMAP_TEMP, "5.7.10 REQUIRETLS: no validated MX path to example.com is known",
     "requiretls/unvalidated"},
    {"requiretls: DANE all", SOCKMAP_MAP_REQUIRETLS, 0, NULL, 0, DANE_ALL, SOCKMAP_OK, "dane-only",
     "requiretls/dane-only"},
    {"requiretls: DANE some: only the DANE hosts", SOCKMAP_MAP_REQUIRETLS, 0, NULL, 0, DANE_SOME,
     SOCKMAP_OK, "dane-only", "requiretls/dane-only"},
    {"requiretls: unusable TLSA is not enough", SOCKMAP_MAP_REQUIRETLS, 0, NULL, 0, DANE_UNUSABLE,
     SOCKMAP_TEMP, "5.7.10 REQUIRETLS: no validated MX path to example.com is known",
     "requiretls/unvalidated"},
    {"requiretls: bogus DNSSEC", SOCKMAP_MAP_REQUIRETLS, 0, NULL, 0, DANE_TEMP, SOCKMAP_TEMP,
     "DNSSEC: why", "requiretls/dnssec-temp"},
    {"requiretls: tlsoptional does not look at DANE", SOCKMAP_MAP_TLSOPTIONAL, 0, NULL, 0,
     DANE_TEMP, SOCKMAP_OK, "may", "tlsoptional/may"},
    {"requiretls: nothing known", SOCKMAP_MAP_REQUIRETLS, 0, NULL, 0, NODANE, SOCKMAP_TEMP,
     "5.7.10 REQUIRETLS: no validated MX path to example.com is known", "requiretls/unvalidated"},
};

static void check_row(const struct row *r)
{
    struct engine_facts f = {.domain = "example.com"};
    struct engine_answer a;
    struct dane_facts df;
    struct mtasts_facts sf;

    f.has_override = r->has_override;
    f.override_key = r->has_override ? "example.com" : NULL;
    f.override_value = r->override_value;
    f.override_level = r->level;
    if (r->dane != NODANE) {
        memset(&df, 0, sizeof(df));
        df.state = (enum dane_state)r->dane;
        df.why = "why";
        f.dane = &df;
    }
    if (r->sts != STS_UNRESOLVED) {
        const char *why = NULL;
        static const char *const bodies[] = {
            [STS_ENFORCE] = "version: STSv1\nmode: enforce\nmx: mx1.example.com\n"
                            "mx: *.backup.example.net\nmax_age: 86400\n",
            [STS_TESTING] = "version: STSv1\nmode: testing\nmx: mx1.example.com\n"
                            "mx: *.backup.example.net\nmax_age: 86400\n",
            [STS_MODENONE] = "version: STSv1\nmode: none\nmax_age: 86400\n",
            [STS_ENFORCE_LOCAL] = "version: STSv1\nmode: enforce\nmx: mx1.example.com\n"
                                  "mx: *.backup.example.net\nmax_age: 86400\n",
        };

        memset(&sf, 0, sizeof(sf));
        sf.state = r->sts == STS_NOPOLICY || r->sts == STS_LOCAL ? MTASTS_NONE : MTASTS_POLICY;
        sf.local_fault = r->sts == STS_LOCAL || r->sts == STS_ENFORCE_LOCAL;
        sf.txt = "";
        sf.why = sf.local_fault ? LOCAL_WHY : "why";
        if (sf.state == MTASTS_POLICY &&
            sts_policy_parse(bodies[r->sts], strlen(bodies[r->sts]), &sf.policy, &why) != 0)
            printf("FAIL %s: test policy does not parse: %s\n", r->label, why);
        f.sts = &sf;
    }
    engine_decide(r->map, &f, &a);
    check_int(r->label, "status", a.status, r->want_status);
    check_str(r->label, "text", a.text, r->want_text);
    check_str(r->label, "rule", a.rule, r->want_rule);
}

static void check_names(void)
{
    struct {
        const char *name;
        enum sockmap_map want;
    } names[] = {
        {"policy", SOCKMAP_MAP_POLICY},
        {"tlsoptional", SOCKMAP_MAP_TLSOPTIONAL},
        {"requiretls", SOCKMAP_MAP_REQUIRETLS},
        {"requiretls-access", SOCKMAP_MAP_REQUIRETLS_ACCESS},
        {"Policy", SOCKMAP_MAP_UNKNOWN},
        {"policyx", SOCKMAP_MAP_UNKNOWN},
        {"polic", SOCKMAP_MAP_UNKNOWN},
        {"", SOCKMAP_MAP_UNKNOWN},
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        enum sockmap_map m = sockmap_map_from_name(names[i].name, strlen(names[i].name));

        check_int(names[i].name, "map", m, names[i].want);
        if (m != SOCKMAP_MAP_UNKNOWN)
            check_str(names[i].name, "round trip", sockmap_map_name(m), names[i].name);
    }
}

/*
 * engine_needs(): DANE and MTA-STS are resolved only when no earlier row can decide, DANE
 * first; MTA-STS only once DANE has not decided.
 */
static void check_needs(void)
{
    struct engine_facts f = {.domain = "example.com"};
    struct dane_facts df = {.state = DANE_NONE, .why = "why"};
    struct mtasts_facts sf = {.state = MTASTS_NONE};
    const unsigned both = ENGINE_NEED_DANE; /* MTA-STS waits for DANE */

    check_int("needs: policy, nothing", "dane first", engine_needs(SOCKMAP_MAP_POLICY, &f), both);
    check_int("needs: tlsoptional", "nothing", engine_needs(SOCKMAP_MAP_TLSOPTIONAL, &f), 0);
    check_int("needs: requiretls", "dane first", engine_needs(SOCKMAP_MAP_REQUIRETLS, &f), both);
    f.has_override = 1;
    f.override_value = "may";
    f.override_level = TLSPOLICY_MAY;
    check_int("needs: policy with override", "nothing", engine_needs(SOCKMAP_MAP_POLICY, &f), 0);
    check_int("needs: requiretls with weak override", "dane first",
              engine_needs(SOCKMAP_MAP_REQUIRETLS, &f), both);
    f.override_level = TLSPOLICY_SECURE;
    check_int("needs: requiretls with secure override", "nothing",
              engine_needs(SOCKMAP_MAP_REQUIRETLS, &f), 0);
    f.has_override = 0;
    f.dane = &df;
    check_int("needs: policy, no DANE", "sts", engine_needs(SOCKMAP_MAP_POLICY, &f),
              ENGINE_NEED_STS);
    f.sts = &sf;
    check_int("needs: policy, no DANE, STS known", "nothing", engine_needs(SOCKMAP_MAP_POLICY, &f),
              0);
    f.sts = NULL;
    f.dane = NULL;
    f.sts = &sf;
    check_int("needs: policy, STS known first", "dane", engine_needs(SOCKMAP_MAP_POLICY, &f),
              ENGINE_NEED_DANE);
    f.sts = NULL;
    f.dane = &df;
    df.state = DANE_ALL;
    check_int("needs: policy, DANE all", "nothing", engine_needs(SOCKMAP_MAP_POLICY, &f), 0);
    df.state = DANE_UNUSABLE;
    check_int("needs: policy, DANE unusable", "sts", engine_needs(SOCKMAP_MAP_POLICY, &f),
              ENGINE_NEED_STS);
    df.state = DANE_SOME;
    check_int("needs: policy, DANE some", "sts", engine_needs(SOCKMAP_MAP_POLICY, &f),
              ENGINE_NEED_STS);
    f.sts = &sf;
    check_int("needs: policy, DANE some, STS known", "nothing",
              engine_needs(SOCKMAP_MAP_POLICY, &f), 0);
    f.sts = NULL;
    df.state = DANE_UNUSABLE;
    check_int("needs: requiretls, DANE unusable", "sts", engine_needs(SOCKMAP_MAP_REQUIRETLS, &f),
              ENGINE_NEED_STS);
    df.state = DANE_TEMP;
    check_int("needs: requiretls, DANE temp", "nothing", engine_needs(SOCKMAP_MAP_REQUIRETLS, &f),
              0);
}

/*
 * REQUIRETLS with the probe (draft-ietf-uta-smtp-require-tls-06 4.2.1): which hosts the
 * answer lets Postfix use, and which refusal code when none qualifies. Hosts are given as
 * "name:flags" where flags are letters: u usable TLSA (DANE facts), p probed, t TLS up,
 * k PKIX ok, d DANE ok, r REQUIRETLS advertised, x transient (no definite probe result).
 */
struct rtls_row {
    const char *label;
    int dane_state; /* enum dane_state */
    int mx_secure;
    int sts;           /* STS_* as above */
    const char *hosts; /* space separated "name:flags" */
    enum sockmap_status want_status;
    const char *want_text;
    const char *want_rule;
};

#define P_MX1 "mx1.example.com"
#define P_MX2 "mx2.example.com"

static const struct rtls_row rtls_rows[] = {
    {"dane, both hosts good", DANE_ALL, 1, STS_UNRESOLVED, P_MX1 ":uptdr " P_MX2 ":uptdr",
     SOCKMAP_OK, "dane-only", "requiretls/dane-only"},
    {"dane, one host lacks REQUIRETLS, good one PKIX too", DANE_ALL, 1, STS_UNRESOLVED,
     P_MX1 ":uptkdr " P_MX2 ":uptd", SOCKMAP_OK, "secure match=" P_MX1 " servername=hostname",
     "requiretls/dane-some-pkix"},
    {"dane, one host lacks REQUIRETLS, good one DANE only", DANE_ALL, 1, STS_UNRESOLVED,
     P_MX1 ":uptdr " P_MX2 ":uptd", SOCKMAP_TEMP,
     "5.7.30 REQUIRETLS support required: " P_MX2 " of example.com authenticates by DANE "
     "without advertising REQUIRETLS, and the hosts that advertise it cannot be chosen alone "
     "(no PKIX certificate)",
     "requiretls/dane-mixed"},
    {"dane, two hosts lack REQUIRETLS, good one DANE only", DANE_ALL, 1, STS_UNRESOLVED,
     P_MX1 ":uptdr " P_MX2 ":uptd mx3.example.com:uptd", SOCKMAP_TEMP,
     "5.7.30 REQUIRETLS support required: " P_MX2 ", mx3.example.com of example.com "
     "authenticate by DANE without advertising REQUIRETLS, and the hosts that advertise it "
     "cannot be chosen alone (no PKIX certificate)",
     "requiretls/dane-mixed"},
    /* Issue 10.2: mx2's TLSA matches nothing, so dane-only keeps Postfix off it anyway. */
    {"dane, good host and one failing DANE: dane-only", DANE_ALL, 1, STS_UNRESOLVED,
     P_MX1 ":uptdr " P_MX2 ":upt", SOCKMAP_OK, "dane-only", "requiretls/dane-only"},
    {"dane, good host and one failing DANE that advertises: dane-only", DANE_ALL, 1, STS_UNRESOLVED,
     P_MX1 ":uptdr " P_MX2 ":uptr", SOCKMAP_OK, "dane-only", "requiretls/dane-only"},
    {"dane, good host and one without STARTTLS: dane-only", DANE_ALL, 1, STS_UNRESOLVED,
     P_MX1 ":uptdr " P_MX2 ":up", SOCKMAP_OK, "dane-only", "requiretls/dane-only"},
    {"dane, good host and one without an address: dane-only", DANE_ALL, 1, STS_UNRESOLVED,
     P_MX1 ":uptdr " P_MX2 ":u", SOCKMAP_OK, "dane-only", "requiretls/dane-only"},
    {"dane, good host and a host without TLSA: dane-only skips it", DANE_SOME, 1, STS_UNRESOLVED,
     P_MX1 ":uptdr " P_MX2 ":ptk", SOCKMAP_OK, "dane-only", "requiretls/dane-only"},
    {"dane, good host, another not judged yet: wait", DANE_ALL, 1, STS_UNRESOLVED,
     P_MX1 ":uptdr " P_MX2 ":ux", SOCKMAP_TEMP,
     "4.4.1 REQUIRETLS: MX hosts of example.com could not be checked yet; trying again later",
     "requiretls/probe-pending"},
    {"dane, good PKIX host, another not judged yet: only the good one", DANE_ALL, 1, STS_UNRESOLVED,
     P_MX1 ":uptkdr " P_MX2 ":ux", SOCKMAP_OK, "secure match=" P_MX1 " servername=hostname",
     "requiretls/dane-some-pkix"},
    {"dane, good host, one unfit and one not judged: the unfit one decides", DANE_ALL, 1,
     STS_UNRESOLVED, P_MX1 ":uptdr " P_MX2 ":uptd mx3.example.com:ux", SOCKMAP_TEMP,
     "5.7.30 REQUIRETLS support required: " P_MX2 " of example.com authenticates by DANE "
     "without advertising REQUIRETLS, and the hosts that advertise it cannot be chosen alone "
     "(no PKIX certificate)",
     "requiretls/dane-mixed"},
    {"dane, no host advertises", DANE_ALL, 1, STS_UNRESOLVED, P_MX1 ":uptd " P_MX2 ":uptd",
     SOCKMAP_TEMP,
     "5.7.30 REQUIRETLS support required: no MX host of example.com that authenticates "
     "advertises REQUIRETLS",
     "requiretls/unsupported"},
    {"dane, DANE check failed everywhere", DANE_ALL, 1, STS_UNRESOLVED,
     P_MX1 ":uptr " P_MX2 ":uptr", SOCKMAP_TEMP,
     "5.7.10 REQUIRETLS: no MX host of example.com offered authenticated TLS",
     "requiretls/unvalidated"},
    {"sts, one good host of two", DANE_NONE, 0, STS_ENFORCE, P_MX1 ":ptkr " P_MX2 ":ptk",
     SOCKMAP_OK, "secure match=" P_MX1 " servername=hostname", "requiretls/sts"},
    {"sts, good host outside the patterns is not used", DANE_NONE, 0, STS_ENFORCE,
     "evil.example.org:ptkr " P_MX1 ":ptk", SOCKMAP_TEMP,
     "5.7.30 REQUIRETLS support required: no MX host of example.com that authenticates "
     "advertises REQUIRETLS",
     "requiretls/unsupported"},
    {"sts, wildcard pattern host", DANE_NONE, 0, STS_ENFORCE, "a.backup.example.net:ptkr",
     SOCKMAP_OK, "secure match=a.backup.example.net servername=hostname", "requiretls/sts"},
    {"sts testing, certificate fails PKIX", DANE_NONE, 0, STS_TESTING, P_MX1 ":ptr", SOCKMAP_TEMP,
     "5.7.10 REQUIRETLS: no MX host of example.com offered authenticated TLS",
     "requiretls/unvalidated"},
    {"sts, no STARTTLS", DANE_NONE, 0, STS_ENFORCE, P_MX1 ":p", SOCKMAP_TEMP,
     "5.7.10 REQUIRETLS: no MX host of example.com offered authenticated TLS",
     "requiretls/unvalidated"},
    {"sts, unreachable: wait and retry", DANE_NONE, 0, STS_ENFORCE, P_MX1 ":x", SOCKMAP_TEMP,
     "4.4.1 REQUIRETLS: MX hosts of example.com could not be checked yet; trying again later",
     "requiretls/probe-pending"},
    {"sts, one host timed out, the other lacks REQUIRETLS: wait", DANE_NONE, 0, STS_ENFORCE,
     P_MX1 ":px " P_MX2 ":ptk", SOCKMAP_TEMP,
     "4.4.1 REQUIRETLS: MX hosts of example.com could not be checked yet; trying again later",
     "requiretls/probe-pending"},
    {"sts, one host timed out, the other good: use the good one", DANE_NONE, 0, STS_ENFORCE,
     P_MX1 ":x " P_MX2 ":ptkr", SOCKMAP_OK, "secure match=" P_MX2 " servername=hostname",
     "requiretls/sts"},
    {"sts, the MX lookup failed (no hosts known): wait", DANE_NONE, 0, STS_ENFORCE, "",
     SOCKMAP_TEMP,
     "4.4.1 REQUIRETLS: MX hosts of example.com could not be checked yet; trying again later",
     "requiretls/probe-pending"},
    {"dane, unreachable: wait", DANE_ALL, 1, STS_UNRESOLVED, P_MX1 ":ux", SOCKMAP_TEMP,
     "4.4.1 REQUIRETLS: MX hosts of example.com could not be checked yet; trying again later",
     "requiretls/probe-pending"},
    {"dnssec MX without TLSA, both good", DANE_NONE, 1, STS_NOPOLICY, P_MX1 ":ptkr " P_MX2 ":ptkr",
     SOCKMAP_OK, "secure match=" P_MX1 ":" P_MX2 " servername=hostname", "requiretls/mx-dnssec"},
    {"dnssec MX without TLSA, none advertises", DANE_NONE, 1, STS_NOPOLICY, P_MX1 ":ptk",
     SOCKMAP_TEMP,
     "5.7.30 REQUIRETLS support required: no MX host of example.com that authenticates "
     "advertises REQUIRETLS",
     "requiretls/unsupported"},
    {"insecure MX, no STS: probe irrelevant", DANE_NONE, 0, STS_NOPOLICY, P_MX1 ":ptkr",
     SOCKMAP_TEMP, "5.7.10 REQUIRETLS: no validated MX path to example.com is known",
     "requiretls/unvalidated"},
};

static void check_rtls_row(const struct rtls_row *r, enum sockmap_map map)
{
    struct engine_facts f = {.domain = "example.com", .rtls_probe = 1};
    static struct dane_facts df;
    static struct mtasts_facts sf;
    static struct rtls_facts rf;
    struct engine_answer a;
    char list[512], *save = NULL, label[200];

    memset(&df, 0, sizeof(df));
    memset(&sf, 0, sizeof(sf));
    memset(&rf, 0, sizeof(rf));
    df.why = "why";
    df.state = (enum dane_state)r->dane_state;
    df.mx_secure = r->mx_secure;
    /* No hosts at all stands for a failed MX lookup (rtls_facts.transient). */
    rf.transient = r->hosts[0] == '\0';
    snprintf(list, sizeof(list), "%s", r->hosts);
    for (char *tok = strtok_r(list, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *colon = strchr(tok, ':');
        struct rtls_host *h = &rf.hosts[rf.nhosts++];
        struct dane_host *dh = &df.hosts[df.nhosts++];

        *colon = '\0';
        snprintf(h->name, sizeof(h->name), "%s", tok);
        snprintf(dh->name, sizeof(dh->name), "%s", tok);
        dh->tlsa_usable = strchr(colon + 1, 'u') != NULL;
        h->probed = strchr(colon + 1, 'p') != NULL;
        h->tls = strchr(colon + 1, 't') != NULL;
        h->pkix = strchr(colon + 1, 'k') != NULL;
        h->dane = strchr(colon + 1, 'd') != NULL;
        h->requiretls = strchr(colon + 1, 'r') != NULL;
        h->transient = strchr(colon + 1, 'x') != NULL;
    }
    f.dane = &df;
    if (r->sts != STS_UNRESOLVED) {
        const char *why = NULL;
        const char *body = r->sts == STS_TESTING
                               ? "version: STSv1\nmode: testing\nmx: mx1.example.com\n"
                                 "mx: mx2.example.com\nmx: *.backup.example.net\nmax_age: 86400\n"
                               : "version: STSv1\nmode: enforce\nmx: mx1.example.com\n"
                                 "mx: mx2.example.com\nmx: *.backup.example.net\nmax_age: 86400\n";

        sf.state = r->sts == STS_NOPOLICY ? MTASTS_NONE : MTASTS_POLICY;
        if (sf.state == MTASTS_POLICY && sts_policy_parse(body, strlen(body), &sf.policy, &why))
            printf("FAIL %s: test policy: %s\n", r->label, why);
        f.sts = &sf;
    }
    snprintf(label, sizeof(label), "%s (%s)", r->label, sockmap_map_name(map));
    check_int(label, "needs the probe", engine_needs(map, &f) & ENGINE_NEED_PROBE,
              strstr(r->want_rule, "unvalidated") && strstr(r->want_text, "path")
                  ? 0
                  : ENGINE_NEED_PROBE);
    f.rtls = &rf;
    check_int(label, "needs nothing more", engine_needs(map, &f), 0);
    engine_decide(map, &f, &a);
    if (map == SOCKMAP_MAP_REQUIRETLS) {
        check_int(label, "status", a.status, r->want_status);
        check_str(label, "text", a.text, r->want_text);
    } else {
        /* requiretls-access: DUNNO for a path, REJECT with the refusal's code, for smtpd. */
        char want[600];

        int stays_temp = strncmp(r->want_text, "5.7.", 4) != 0 && r->want_status == SOCKMAP_TEMP;

        if (r->want_status == SOCKMAP_OK)
            snprintf(want, sizeof(want), "DUNNO");
        else if (stays_temp)
            snprintf(want, sizeof(want), "%s", r->want_text); /* smtpd answers 4xx */
        else
            snprintf(want, sizeof(want), "REJECT %s", r->want_text);
        check_int(label, "status", a.status, stays_temp ? SOCKMAP_TEMP : SOCKMAP_OK);
        check_str(label, "text", a.text, want);
    }
    check_str(label, "rule", a.rule, r->want_rule);
}

int main(void)
{
    for (size_t i = 0; i < sizeof(rtls_rows) / sizeof(rtls_rows[0]); i++) {
        check_rtls_row(&rtls_rows[i], SOCKMAP_MAP_REQUIRETLS);
        check_rtls_row(&rtls_rows[i], SOCKMAP_MAP_REQUIRETLS_ACCESS);
    }
    check_needs();
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        check_row(&rows[i]);
    check_names();
    return check_summary("test_engine");
}
