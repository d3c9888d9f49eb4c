/*
 * Postfix TLS policy values, as smtp_tls_policy_maps reads them (postconf(5),
 * "smtp_tls_policy_maps"; Postfix 3.7): a security level followed by attributes. This
 * module checks values from the local overrides table before they reach Postfix, so a
 * typo is a start-up error instead of deferred mail, and says which levels authenticate
 * the server (what a REQUIRETLS message needs).
 */
#ifndef PROTO_TLSPOLICY_H
#define PROTO_TLSPOLICY_H

enum tlspolicy_level {
    TLSPOLICY_NONE,
    TLSPOLICY_MAY,
    TLSPOLICY_ENCRYPT,
    TLSPOLICY_DANE,
    TLSPOLICY_DANE_ONLY,
    TLSPOLICY_FINGERPRINT,
    TLSPOLICY_VERIFY,
    TLSPOLICY_SECURE,
};

enum {
    TLSPOLICY_EOK = 0,
    TLSPOLICY_ELEVEL = -1, /* unknown or missing security level */
    TLSPOLICY_EATTR = -2,  /* attribute not "name=value" or not known to Postfix 3.7 */
};

/*
 * tlspolicy_check - check a policy value such as "secure match=.example.net". On success
 * *level is the security level. Returns TLSPOLICY_EOK or a negative code with a reason.
 */
int tlspolicy_check(const char *value, enum tlspolicy_level *level, const char **why);

/*
 * tlspolicy_authenticated - does this level make Postfix verify the server's identity
 * (dane-only, fingerprint, verify, secure)? "dane" does not: without usable TLSA records
 * Postfix falls back to opportunistic TLS.
 */
int tlspolicy_authenticated(enum tlspolicy_level level);

#endif
