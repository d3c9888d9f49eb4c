/*
 * The MX probe for REQUIRETLS decisions: which MX hosts of a domain offer authenticated
 * TLS and advertise REQUIRETLS (draft-ietf-uta-smtp-require-tls-06 4.2.1). The hosts come
 * from the DANE walk when it validated the MX RRset (with their TLSA records), else from
 * an MX query of their own (RFC 5321 5.1: implicit MX when there is none), read by
 * mxhosts.c as "tlspolicyd probe" reads them; each host's first address is probed by
 * probe.c, which caches results and shares probes in flight.
 */
#include "rtls.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "metrics.h"
#include "mxhosts.h"
#include "probe.h"
#include "resolver.h"
#include "xalloc.h"

struct host_slot {
    struct rtls_lookup *l;
    int index;
    struct resolver_req *a, *aaaa;
    struct probe_req *probe;
    int a_done, aaaa_done;
    int dns_failed; /* an address lookup failed (timeout, SERVFAIL): nothing definite */
    char addr[INET6_ADDRSTRLEN];
    struct probe_tlsa tlsa[DANE_MAX_TLSA];
    struct dane_tlsa tlsa_data[DANE_MAX_TLSA];
    size_t ntlsa;
};

struct rtls_lookup {
    struct resolver *r;
    struct probe_svc *p;
    char domain[DANE_NAME_MAX];
    rtls_cb cb;
    void *arg;
    struct rtls_facts f;
    struct resolver_req *mx;
    struct host_slot slots[RTLS_MAX_HOSTS];
    uint16_t pref[RTLS_MAX_HOSTS];
    unsigned pending; /* questions and probes not yet answered */
    int busy;         /* inside a start: completion waits for it */
};

static void maybe_finish(struct rtls_lookup *l)
{
    if (l->busy || l->pending > 0)
        return;
    l->cb(l->arg, &l->f);
    free(l);
}

static void on_probe(void *arg, const struct probe_result *res)
{
    struct host_slot *s = arg;
    struct rtls_lookup *l = s->l;
    struct rtls_host *h = &l->f.hosts[s->index];

    s->probe = NULL;
    if (!res->from_cache)
        metrics_probe(res->timed_out               ? METRICS_PROBE_TIMEOUT
                      : !res->connected            ? METRICS_PROBE_CONNECT_ERROR
                      : !res->starttls_offered     ? METRICS_PROBE_NO_STARTTLS
                      : !res->tls_ok               ? METRICS_PROBE_TLS_ERROR
                      : res->requiretls_advertised ? METRICS_PROBE_REQUIRETLS
                                                   : METRICS_PROBE_NO_REQUIRETLS);
    h->probed = res->connected;
    /* Nothing definite was learnt: the host may serve the message on a later try. */
    h->transient = !res->connected || res->timed_out;
    h->tls = res->tls_ok;
    h->pkix = res->pkix_ok;
    h->dane = res->dane_ok;
    h->requiretls = res->requiretls_advertised;
    snprintf(h->why, sizeof(h->why), "%s", res->why);
    l->pending--;
    maybe_finish(l);
}

/* Once both address answers are in: probe the first address (IPv4 first, as it came). */
static void addresses_done(struct host_slot *s)
{
    struct rtls_lookup *l = s->l;
    struct rtls_host *h = &l->f.hosts[s->index];
    struct probe_req *req;

    if (s->addr[0] == '\0') {
        /* A failed lookup may work next time; a name without addresses will not. */
        h->transient = s->dns_failed;
        snprintf(h->why, sizeof(h->why), "%s",
                 s->dns_failed ? "the MX host's address lookup failed"
                               : "no address for the MX host");
        l->pending--;
        return;
    }
    l->busy++;
    req = probe_start(l->p, h->name, s->addr, s->tlsa, s->ntlsa, on_probe, s);
    if (req)
        s->probe = req;
    l->busy--;
}

static void on_addr(void *arg, const struct resolver_answer *ans)
{
    struct host_slot *s = arg;
    char first[1][INET6_ADDRSTRLEN];

    if (ans->qtype == DNS_TYPE_A) {
        s->a = NULL;
        s->a_done = 1;
    } else {
        s->aaaa = NULL;
        s->aaaa_done = 1;
    }
    if (ans->info.outcome == DNS_OUT_FAILED || ans->info.outcome == DNS_OUT_BOGUS)
        s->dns_failed = 1;
    /* An A answer replaces an AAAA one: IPv4 first, as Postfix's inet_protocols. */
    if (mxhosts_addrs(ans, first, 1) == 1 && (s->addr[0] == '\0' || ans->qtype == DNS_TYPE_A))
        memcpy(s->addr, first[0], sizeof(s->addr));
    if (s->a_done && s->aaaa_done) {
        struct rtls_lookup *l = s->l;

        addresses_done(s);
        maybe_finish(l);
    }
}

static void add_host(struct rtls_lookup *l, const char *name, uint16_t pref,
                     const struct dane_host *dh)
{
    unsigned i = l->f.nhosts;

    /* Most preferred first; a full list drops its least preferred host for a better one. */
    if (i == RTLS_MAX_HOSTS) {
        if (pref >= l->pref[i - 1])
            return;
        i--;
    } else {
        l->f.nhosts++;
    }
    for (; i > 0 && l->pref[i - 1] > pref; i--) {
        l->f.hosts[i] = l->f.hosts[i - 1];
        l->pref[i] = l->pref[i - 1];
        l->slots[i].ntlsa = l->slots[i - 1].ntlsa;
        memcpy(l->slots[i].tlsa_data, l->slots[i - 1].tlsa_data, sizeof(l->slots[i].tlsa_data));
    }
    memset(&l->f.hosts[i], 0, sizeof(l->f.hosts[i]));
    snprintf(l->f.hosts[i].name, sizeof(l->f.hosts[i].name), "%s", name);
    l->pref[i] = pref;
    l->slots[i].ntlsa = 0;
    if (dh) {
        l->slots[i].ntlsa = dh->ntlsa < DANE_MAX_TLSA ? dh->ntlsa : DANE_MAX_TLSA;
        memcpy(l->slots[i].tlsa_data, dh->tlsa, sizeof(struct dane_tlsa) * l->slots[i].ntlsa);
    }
}

/* Ask for every host's addresses; each host then goes on to its probe. */
static void resolve_hosts(struct rtls_lookup *l)
{
    l->busy++;
    l->pending += l->f.nhosts;
    for (unsigned i = 0; i < l->f.nhosts; i++) {
        struct host_slot *s = &l->slots[i];
        struct resolver_req *req;

        s->l = l;
        s->index = (int)i;
        mxhosts_tlsa(s->tlsa, s->tlsa_data, s->ntlsa);
        req = resolver_query(l->r, l->f.hosts[i].name, DNS_TYPE_A, on_addr, s);
        if (req)
            s->a = req;
        req = resolver_query(l->r, l->f.hosts[i].name, DNS_TYPE_AAAA, on_addr, s);
        if (req)
            s->aaaa = req;
    }
    if (l->f.nhosts == 0 && l->f.why[0] == '\0')
        snprintf(l->f.why, sizeof(l->f.why), "no MX host to probe");
    l->busy--;
}

static void on_mx_host(void *arg, const char *host, uint16_t pref)
{
    /* RFC 7505: a null MX has nothing to probe. */
    if (host[0] != '\0' && strlen(host) < DANE_NAME_MAX)
        add_host(arg, host, pref, NULL);
}

static void on_mx(void *arg, const struct resolver_answer *ans)
{
    struct rtls_lookup *l = arg;

    l->mx = NULL;
    l->pending--;
    switch (ans->info.outcome) {
    case DNS_OUT_RECORDS:
        mxhosts_each(ans, on_mx_host, l);
        break;
    case DNS_OUT_NODATA:
        add_host(l, l->domain, 0, NULL); /* RFC 5321 5.1: the implicit MX */
        break;
    default:
        l->f.transient = 1; /* no hosts known yet; a later try may learn them */
        snprintf(l->f.why, sizeof(l->f.why), "MX lookup for %s: %s", l->domain,
                 ans->info.why ? ans->info.why : dns_outcome_name(ans->info.outcome));
        break;
    }
    resolve_hosts(l);
    maybe_finish(l);
}

struct rtls_lookup *rtls_start(struct resolver *r, struct probe_svc *p, const char *domain,
                               const struct dane_facts *dane, rtls_cb cb, void *arg)
{
    struct rtls_lookup *l = xcalloc(1, sizeof(*l));

    l->r = r;
    l->p = p;
    l->cb = cb;
    l->arg = arg;
    snprintf(l->domain, sizeof(l->domain), "%s", domain);
    l->busy++;
    if (dane != NULL && dane->mx_secure) {
        /* The DANE walk already has the validated hosts and their TLSA records. */
        for (unsigned i = 0; i < dane->nhosts; i++)
            add_host(l, dane->hosts[i].name, dane->hosts[i].preference, &dane->hosts[i]);
        resolve_hosts(l);
    } else {
        struct resolver_req *req;

        l->pending++;
        req = resolver_query(r, domain, DNS_TYPE_MX, on_mx, l);
        if (req)
            l->mx = req;
    }
    l->busy--;
    if (l->pending > 0)
        return l;
    maybe_finish(l); /* everything was cached: the callback runs now and l goes */
    return NULL;
}

void rtls_cancel(struct rtls_lookup *l)
{
    if (l == NULL)
        return;
    resolver_cancel(l->mx);
    for (unsigned i = 0; i < l->f.nhosts; i++) {
        resolver_cancel(l->slots[i].a);
        resolver_cancel(l->slots[i].aaaa);
        probe_cancel(l->slots[i].probe);
    }
    free(l);
}
