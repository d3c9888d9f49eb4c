/*
 * Checks of Postfix TLS policy values (postconf(5) smtp_tls_policy_maps, Postfix 3.7).
 */
#include "tlspolicy.h"

#include <string.h>
#include <strings.h>

static const struct {
    const char *word;
    enum tlspolicy_level level;
} levels[] = {
    {"none", TLSPOLICY_NONE},           {"may", TLSPOLICY_MAY},
    {"encrypt", TLSPOLICY_ENCRYPT},     {"dane", TLSPOLICY_DANE},
    {"dane-only", TLSPOLICY_DANE_ONLY}, {"fingerprint", TLSPOLICY_FINGERPRINT},
    {"verify", TLSPOLICY_VERIFY},       {"secure", TLSPOLICY_SECURE},
};

/* Attributes Postfix 3.7's smtp_tls_policy_maps accepts; others make delivery fail. */
static const char *const attrs[] = {
    "ciphers", "exclude", "match", "protocols", "tafile", "connection_reuse", "servername",
};

/* Postfix splits policy values on "\t\n\r ," (smtp_tls_policy.c, tls_policy_lookup_one). */
static int blank(int c)
{
    return c == ' ' || c == '\t' || c == ',' || c == '\r' || c == '\n';
}

int tlspolicy_check(const char *value, enum tlspolicy_level *level, const char **why)
{
    const char *p = value, *w;
    size_t n;
    int found = 0;

    while (blank((unsigned char)*p))
        p++;
    for (w = p; *p && !blank((unsigned char)*p); p++)
        ;
    n = (size_t)(p - w);
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        /* Postfix looks levels up without regard to case (name_code()). */
        if (strlen(levels[i].word) == n && strncasecmp(levels[i].word, w, n) == 0) {
            *level = levels[i].level;
            found = 1;
            break;
        }
    }
    if (!found) {
        *why = "unknown TLS security level (expected none, may, encrypt, dane, dane-only, "
               "fingerprint, verify or secure)";
        return TLSPOLICY_ELEVEL;
    }

    /* Attributes: name=value words separated by blanks. */
    for (;;) {
        const char *eq;
        int known = 0;

        while (blank((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        for (w = p; *p && !blank((unsigned char)*p); p++)
            ;
        eq = memchr(w, '=', (size_t)(p - w));
        if (eq == NULL || eq == w || eq + 1 == p) {
            *why = "TLS policy attribute is not name=value";
            return TLSPOLICY_EATTR;
        }
        /* Attribute names are compared with strcasecmp() in Postfix. */
        for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
            if (strlen(attrs[i]) == (size_t)(eq - w) && strncasecmp(attrs[i], w, eq - w) == 0)
                known = 1;
        }
        if (!known) {
            *why = "TLS policy attribute unknown to Postfix 3.7 (ciphers, exclude, match, "
                   "protocols, tafile, connection_reuse, servername)";
            return TLSPOLICY_EATTR;
        }
        /* Postfix marks the policy invalid (and defers the mail) for "match" outside the
         * fingerprint, verify and secure levels, and "tafile" outside verify and secure. */
        if (eq - w == 5 && strncasecmp(w, "match", 5) == 0 && *level != TLSPOLICY_FINGERPRINT &&
            *level != TLSPOLICY_VERIFY && *level != TLSPOLICY_SECURE) {
            *why = "TLS policy attribute match is valid only with fingerprint, verify or secure";
            return TLSPOLICY_EATTR;
        }
        if (eq - w == 6 && strncasecmp(w, "tafile", 6) == 0 && *level != TLSPOLICY_VERIFY &&
            *level != TLSPOLICY_SECURE) {
            *why = "TLS policy attribute tafile is valid only with verify or secure";
            return TLSPOLICY_EATTR;
        }
    }
    return TLSPOLICY_EOK;
}

int tlspolicy_authenticated(enum tlspolicy_level level)
{
    return level == TLSPOLICY_DANE_ONLY || level == TLSPOLICY_FINGERPRINT ||
           level == TLSPOLICY_VERIFY || level == TLSPOLICY_SECURE;
}
