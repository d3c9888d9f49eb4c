/*
 * The decision table (daemon/engine.c), row by row: for each map and each shape of facts,
 * the answer and the rule that gave it. SPEC section 4's tables are the reference.
 */
#include "check.h"
#include "engine.h"

struct row {
    const char *label;
    enum engine_map map;
    int has_override;
    const char *override_value;
    enum tlspolicy_level level;
    enum sockmap_status want_status;
    const char *want_text;
    const char *want_rule;
};

static const struct row rows[] = {
    /* policy */
    {"policy: override used as is", ENGINE_MAP_POLICY, 1, "secure match=.example.com",
     TLSPOLICY_SECURE, SOCKMAP_OK, "secure match=.example.com", "policy/override"},
    {"policy: a weak override is still the admin's choice", ENGINE_MAP_POLICY, 1, "none",
     TLSPOLICY_NONE, SOCKMAP_OK, "none", "policy/override"},
    {"policy: nothing known", ENGINE_MAP_POLICY, 0, NULL, 0, SOCKMAP_NOTFOUND, "", "policy/none"},

    /* tlsoptional: RFC 8689 section 5, the recipient's policy is waived */
    {"tlsoptional: no facts", ENGINE_MAP_TLSOPTIONAL, 0, NULL, 0, SOCKMAP_OK, "may",
     "tlsoptional/may"},
    {"tlsoptional: override waived too", ENGINE_MAP_TLSOPTIONAL, 1, "dane-only",
     TLSPOLICY_DANE_ONLY, SOCKMAP_OK, "may", "tlsoptional/may"},

    /* requiretls: draft-ietf-uta-smtp-require-tls-06 section 4.2.1 */
    {"requiretls: dane-only override", ENGINE_MAP_REQUIRETLS, 1, "dane-only", TLSPOLICY_DANE_ONLY,
     SOCKMAP_OK, "dane-only", "requiretls/override"},
    {"requiretls: secure override", ENGINE_MAP_REQUIRETLS, 1, "secure match=mx.example.com",
     TLSPOLICY_SECURE, SOCKMAP_OK, "secure match=mx.example.com", "requiretls/override"},
    {"requiretls: verify override", ENGINE_MAP_REQUIRETLS, 1, "verify", TLSPOLICY_VERIFY,
     SOCKMAP_OK, "verify", "requiretls/override"},
    {"requiretls: fingerprint override", ENGINE_MAP_REQUIRETLS, 1, "fingerprint match=AB:CD",
     TLSPOLICY_FINGERPRINT, SOCKMAP_OK, "fingerprint match=AB:CD", "requiretls/override"},
    {"requiretls: may override is not enough", ENGINE_MAP_REQUIRETLS, 1, "may", TLSPOLICY_MAY,
     SOCKMAP_TEMP, "5.7.10 REQUIRETLS: no validated MX path to example.com is known",
     "requiretls/unvalidated"},
    {"requiretls: encrypt does not authenticate", ENGINE_MAP_REQUIRETLS, 1, "encrypt",
     TLSPOLICY_ENCRYPT, SOCKMAP_TEMP,
     "5.7.10 REQUIRETLS: no validated MX path to example.com is known", "requiretls/unvalidated"},
    {"requiretls: dane may fall back to may", ENGINE_MAP_REQUIRETLS, 1, "dane", TLSPOLICY_DANE,
     SOCKMAP_TEMP, "5.7.10 REQUIRETLS: no validated MX path to example.com is known",
     "requiretls/unvalidated"},
    {"requiretls: nothing known", ENGINE_MAP_REQUIRETLS, 0, NULL, 0, SOCKMAP_TEMP,
     "5.7.10 REQUIRETLS: no validated MX path to example.com is known", "requiretls/unvalidated"},
};

static void check_row(const struct row *r)
{
    struct engine_facts f = {.domain = "example.com"};
    struct engine_answer a;

    f.has_override = r->has_override;
    f.override_key = r->has_override ? "example.com" : NULL;
    f.override_value = r->override_value;
    f.override_level = r->level;
    engine_decide(r->map, &f, &a);
    check_int(r->label, "status", a.status, r->want_status);
    check_str(r->label, "text", a.text, r->want_text);
    check_str(r->label, "rule", a.rule, r->want_rule);
}

static void check_names(void)
{
    struct {
        const char *name;
        enum engine_map want;
    } names[] = {
        {"policy", ENGINE_MAP_POLICY},
        {"tlsoptional", ENGINE_MAP_TLSOPTIONAL},
        {"requiretls", ENGINE_MAP_REQUIRETLS},
        {"Policy", ENGINE_MAP_UNKNOWN},
        {"policyx", ENGINE_MAP_UNKNOWN},
        {"polic", ENGINE_MAP_UNKNOWN},
        {"", ENGINE_MAP_UNKNOWN},
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        enum engine_map m = engine_map_from_name(names[i].name, strlen(names[i].name));

        check_int(names[i].name, "map", m, names[i].want);
        if (m != ENGINE_MAP_UNKNOWN)
            check_str(names[i].name, "round trip", engine_map_name(m), names[i].name);
    }
}

int main(void)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        check_row(&rows[i]);
    check_names();
    return check_summary("test_engine");
}
