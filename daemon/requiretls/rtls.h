/*
 * daemon/requiretls/: the REQUIRETLS MX probe. rtls (which MX hosts to probe, per domain),
 * mxhosts (the MX walk's reading of answers, shared with "tlspolicyd probe"), probe (the
 * service: result cache, queue, probes in flight shared), probe_smtp (one SMTP/STARTTLS
 * dialogue), probe_tls (mbedTLS, PKIX and DANE check). Depends on dns/, util/, config/,
 * proto/.
 *
 * What the MX probe found for a REQUIRETLS decision (draft-ietf-uta-smtp-require-tls-06
 * 4.2.1, RFC 8689 4.2.1): for each MX host of a domain, most preferred first, whether it
 * offered STARTTLS, whether its certificate authenticated it (PKIX for its name, or DANE),
 * and whether it advertised REQUIRETLS after STARTTLS. rtls.c gathers these facts through
 * the resolver and probe.c; the engine decides with them.
 */
#ifndef DAEMON_RTLS_H
#define DAEMON_RTLS_H

#include <uv.h>

#include "dane.h"

struct resolver;
struct probe_svc;
struct rtls_lookup;

/* MX hosts probed per domain (Postfix tries at most 5 by default: smtp_mx_address_limit). */
#define RTLS_MAX_HOSTS 5

struct rtls_host {
    char name[DANE_NAME_MAX];
    int probed;     /* a probe result exists (else: no address, or the probe failed early) */
    int tls;        /* STARTTLS and the TLS handshake succeeded */
    int pkix;       /* the certificate verified for the host name against the CA bundle */
    int dane;       /* the certificate matched the host's usable TLSA records */
    int requiretls; /* REQUIRETLS advertised in the EHLO reply after STARTTLS */
    int transient;  /* no answer to judge: no connection, a timeout, the probe queue full */
    char why[320];  /* one line: what the probe saw */
};

struct rtls_facts {
    unsigned nhosts;
    struct rtls_host hosts[RTLS_MAX_HOSTS];
    char why[400]; /* a reason when no host could be probed at all */
    int transient; /* the MX lookup itself failed: the hosts are not known yet */
};

/* Called once per rtls_start() that returned non-NULL, unless cancelled. */
typedef void (*rtls_cb)(void *arg, const struct rtls_facts *f);

/*
 * rtls_start - probe the MX hosts of the normalised domain (or the domain itself when it
 * has no MX). dane may be NULL; when given, its TLSA facts go to the probe for DANE
 * verification. Returns NULL when cb already ran (everything cached).
 */
struct rtls_lookup *rtls_start(struct resolver *r, struct probe_svc *p, const char *domain,
                               const struct dane_facts *dane, rtls_cb cb, void *arg);
void rtls_cancel(struct rtls_lookup *l);

#endif
