/*
 * Unit tests for proto/tlspolicy.c: every security level, the Postfix 3.7 attributes,
 * malformed and unknown attributes, blanks, and which levels authenticate the server.
 */
#include "check.h"
#include "tlspolicy.h"

struct check_row {
    const char *label;
    const char *value;
    int rc;
    enum tlspolicy_level level; /* on TLSPOLICY_EOK */
};

static const struct check_row check_rows[] = {
    /* Every level alone. */
    {"none", "none", TLSPOLICY_EOK, TLSPOLICY_NONE},
    {"may", "may", TLSPOLICY_EOK, TLSPOLICY_MAY},
    {"encrypt", "encrypt", TLSPOLICY_EOK, TLSPOLICY_ENCRYPT},
    {"dane", "dane", TLSPOLICY_EOK, TLSPOLICY_DANE},
    {"dane-only", "dane-only", TLSPOLICY_EOK, TLSPOLICY_DANE_ONLY},
    {"fingerprint", "fingerprint", TLSPOLICY_EOK, TLSPOLICY_FINGERPRINT},
    {"verify", "verify", TLSPOLICY_EOK, TLSPOLICY_VERIFY},
    {"secure", "secure", TLSPOLICY_EOK, TLSPOLICY_SECURE},

    /* Levels with attributes. */
    {"secure with match", "secure match=.example.net", TLSPOLICY_EOK, TLSPOLICY_SECURE},
    {"MTA-STS answer", "secure match=mx1.example.net:.example.net servername=hostname",
     TLSPOLICY_EOK, TLSPOLICY_SECURE},
    {"verify with match", "verify match=hostname:nexthop", TLSPOLICY_EOK, TLSPOLICY_VERIFY},
    {"fingerprint with match", "fingerprint match=3D:95:34:51:24:66:33:B9:D2:40:99:C0:C1",
     TLSPOLICY_EOK, TLSPOLICY_FINGERPRINT},
    {"encrypt with protocols and ciphers", "encrypt protocols=>=TLSv1.2 ciphers=high",
     TLSPOLICY_EOK, TLSPOLICY_ENCRYPT},
    {"may with every other attribute",
     "may exclude=aNULL connection_reuse=yes servername=mx.example.net", TLSPOLICY_EOK,
     TLSPOLICY_MAY},
    {"secure with tafile", "secure tafile=/etc/ta.pem", TLSPOLICY_EOK, TLSPOLICY_SECURE},
    {"dane-only with protocols", "dane-only protocols=!SSLv2:!SSLv3", TLSPOLICY_EOK,
     TLSPOLICY_DANE_ONLY},
    {"protocols split by a comma", "dane-only protocols=!SSLv2,!SSLv3", TLSPOLICY_EATTR,
     TLSPOLICY_NONE},
    {"attribute value holding '='", "secure match=a=b", TLSPOLICY_EOK, TLSPOLICY_SECURE},
    {"same attribute twice", "secure match=a match=b", TLSPOLICY_EOK, TLSPOLICY_SECURE},

    /* Blanks: spaces and tabs around and between words. */
    {"leading and trailing blanks", "  secure  ", TLSPOLICY_EOK, TLSPOLICY_SECURE},
    {"tabs between words", "\tsecure\tmatch=x\t", TLSPOLICY_EOK, TLSPOLICY_SECURE},
    {"runs of blanks", "secure   match=x  \t servername=y", TLSPOLICY_EOK, TLSPOLICY_SECURE},

    /* TLSPOLICY_ELEVEL: unknown or missing level. */
    {"empty value", "", TLSPOLICY_ELEVEL, TLSPOLICY_NONE},
    {"blanks only", " \t ", TLSPOLICY_ELEVEL, TLSPOLICY_NONE},
    {"upper-case level (Postfix ignores case)", "Secure", TLSPOLICY_EOK, TLSPOLICY_SECURE},
    {"level prefix", "secur", TLSPOLICY_ELEVEL, TLSPOLICY_NONE},
    {"level with suffix", "securex", TLSPOLICY_ELEVEL, TLSPOLICY_NONE},
    {"dane_only spelled with underscore", "dane_only", TLSPOLICY_ELEVEL, TLSPOLICY_NONE},
    {"attribute without level", "match=.example.net", TLSPOLICY_ELEVEL, TLSPOLICY_NONE},
    {"socketmap status word", "OK secure", TLSPOLICY_ELEVEL, TLSPOLICY_NONE},
    {"obsolete level", "export", TLSPOLICY_ELEVEL, TLSPOLICY_NONE},
    {"comma separates (Postfix: \"\\t\\n\\r ,\")", "secure,match=x", TLSPOLICY_EOK,
     TLSPOLICY_SECURE},
    {"newline separates too", "secure\nmatch=x", TLSPOLICY_EOK, TLSPOLICY_SECURE},

    /* TLSPOLICY_EATTR: not name=value, or unknown to Postfix 3.7. */
    {"attribute without '='", "secure match", TLSPOLICY_EATTR, TLSPOLICY_NONE},
    {"attribute with empty name", "secure =x", TLSPOLICY_EATTR, TLSPOLICY_NONE},
    {"attribute with empty value", "secure match=", TLSPOLICY_EATTR, TLSPOLICY_NONE},
    {"'=' alone", "secure =", TLSPOLICY_EATTR, TLSPOLICY_NONE},
    {"unknown attribute", "secure foo=bar", TLSPOLICY_EATTR, TLSPOLICY_NONE},
    {"attribute name prefix", "secure matc=x", TLSPOLICY_EATTR, TLSPOLICY_NONE},
    {"attribute name with suffix", "secure matches=x", TLSPOLICY_EATTR, TLSPOLICY_NONE},
    {"upper-case attribute (strcasecmp in Postfix)", "secure MATCH=x", TLSPOLICY_EOK,
     TLSPOLICY_SECURE},
    {"match at may", "may match=x", TLSPOLICY_EATTR, TLSPOLICY_NONE},
    {"match at dane-only", "dane-only match=x", TLSPOLICY_EATTR, TLSPOLICY_NONE},
    {"match at fingerprint", "fingerprint match=AB:CD", TLSPOLICY_EOK, TLSPOLICY_FINGERPRINT},
    {"tafile at encrypt", "encrypt tafile=/x", TLSPOLICY_EATTR, TLSPOLICY_NONE},
    {"tafile at secure", "secure tafile=/x", TLSPOLICY_EOK, TLSPOLICY_SECURE},
    {"good then bad attribute", "secure match=x bogus", TLSPOLICY_EATTR, TLSPOLICY_NONE},
    {"good then unknown attribute", "verify match=x sni=y", TLSPOLICY_EATTR, TLSPOLICY_NONE},
    {"spaces around '='", "secure match = x", TLSPOLICY_EATTR, TLSPOLICY_NONE},
};

static void check_check(const struct check_row *r)
{
    enum tlspolicy_level level = (enum tlspolicy_level) - 1;
    const char *why = NULL;
    int rc = tlspolicy_check(r->value, &level, &why);

    check_int(r->label, "rc", rc, r->rc);
    if (r->rc == TLSPOLICY_EOK && rc == TLSPOLICY_EOK)
        check_int(r->label, "level", level, r->level);
    if (r->rc != TLSPOLICY_EOK)
        check_true(r->label, "why is set", why != NULL && *why != '\0');
}

/* Levels that make Postfix verify the server (what a REQUIRETLS message needs). */
struct auth_row {
    const char *label;
    enum tlspolicy_level level;
    int want;
};

static const struct auth_row auth_rows[] = {
    {"none", TLSPOLICY_NONE, 0},
    {"may", TLSPOLICY_MAY, 0},
    {"encrypt", TLSPOLICY_ENCRYPT, 0},
    {"dane falls back to opportunistic TLS", TLSPOLICY_DANE, 0},
    {"dane-only", TLSPOLICY_DANE_ONLY, 1},
    {"fingerprint", TLSPOLICY_FINGERPRINT, 1},
    {"verify", TLSPOLICY_VERIFY, 1},
    {"secure", TLSPOLICY_SECURE, 1},
};

int main(void)
{
    for (size_t i = 0; i < sizeof(check_rows) / sizeof(check_rows[0]); i++)
        check_check(&check_rows[i]);
    for (size_t i = 0; i < sizeof(auth_rows) / sizeof(auth_rows[0]); i++)
        check_int(auth_rows[i].label, "authenticated", tlspolicy_authenticated(auth_rows[i].level),
                  auth_rows[i].want);
    return check_summary("test_tlspolicy");
}
