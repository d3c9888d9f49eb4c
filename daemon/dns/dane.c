/*
 * The DANE walk of RFC 7672 section 2.2 as a small state machine over resolver answers:
 * MX (2.2.1), then A and AAAA per MX host (2.2.2), then TLSA where the addresses are
 * secure (2.2.3, first at the CNAME-expanded name, then at the original one). Each
 * question is a slot; the lookup ends when no slot is waiting, or at once on the first
 * bogus or failed answer, which cancels the rest.
 */
#include "dane.h"
#include "dane_cache.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "resolver.h"
#include "xalloc.h"

enum slot_kind { SLOT_MX, SLOT_A, SLOT_AAAA, SLOT_TLSA };

struct slot {
    struct dane_lookup *d;
    enum slot_kind kind;
    int host;
    int active;
    unsigned gen; /* bumped by every ask() on this slot */
    struct resolver_req *req;
};

/* What the address lookups of one host said, as far as the TLSA step needs it. */
struct addr_result {
    int done, has, secure;
    unsigned cnames;
};

struct host_work {
    struct addr_result a, aaaa;
    char final[DANE_NAME_MAX]; /* CNAME-expanded host name from the address lookup */
    int tlsa_retry_done;
};

struct dane_lookup {
    struct resolver *r;
    struct dane_cache *cache; /* where the facts go when they are done; may be NULL */
    uint64_t expires;         /* the earliest expiry of the answers used (0: one was not cached) */
    char domain[DANE_NAME_MAX];
    dane_cb cb;
    void *arg;
    struct slot mx;
    struct slot a[DANE_MAX_HOSTS], aaaa[DANE_MAX_HOSTS], tlsa[DANE_MAX_HOSTS];
    struct host_work work[DANE_MAX_HOSTS];
    unsigned pending, busy;
    int finished;           /* the state is decided (TEMP or NONE early); no more questions */
    char failed_why[320];   /* the first host whose lookups failed, and why */
    char why[DANE_WHY_MAX]; /* f.why points here */
    /* Last: its host array (most of its size) is cleared entry by entry in add_host(). */
    struct dane_facts f;
};

void dane_facts_copy(struct dane_facts *dst, const struct dane_facts *src, char *why)
{
    unsigned n = src->nhosts <= DANE_MAX_HOSTS ? src->nhosts : DANE_MAX_HOSTS;

    memcpy(dst, src, offsetof(struct dane_facts, hosts) + n * sizeof(src->hosts[0]));
    snprintf(why, DANE_WHY_MAX, "%s", src->why != NULL ? src->why : "");
    dst->why = why;
}

const char *dane_state_name(enum dane_state s)
{
    static const char *const names[] = {"none", "all", "some", "unusable", "temp", "degraded"};

    return s <= DANE_DEGRADED ? names[s] : "?";
}

int dane_tlsa_usable(uint8_t usage, uint8_t selector, uint8_t mtype, size_t dlen)
{
    if (usage != 2 && usage != 3)
        return 0;
    if (selector > 1)
        return 0;
    switch (mtype) {
    case 0:
        return dlen > 0;
    case 1:
        return dlen == 32;
    case 2:
        return dlen == 64;
    }
    return 0;
}

static void on_answer(void *arg, const struct resolver_answer *ans);

static void ask(struct dane_lookup *d, struct slot *s, const char *name, uint16_t type)
{
    struct resolver_req *req;
    unsigned gen;

    s->d = d;
    s->active = 1;
    s->req = NULL;
    d->pending++;
    d->busy++;
    /*
     * A cached answer calls back before resolver_query() returns, and its handler may ask
     * again with this same slot (the TLSA retry at the original name). Only a request
     * from this very ask, still pending, belongs in the slot: the generation tells.
     */
    gen = ++s->gen;
    req = resolver_query(d->r, name, type, on_answer, s);
    if (s->active && s->gen == gen)
        s->req = req;
    d->busy--;
}

static void cancel_all(struct dane_lookup *d)
{
    struct slot *all[] = {&d->mx};

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (all[i]->active) {
            resolver_cancel(all[i]->req);
            all[i]->active = 0;
        }
    for (int h = 0; h < DANE_MAX_HOSTS; h++) {
        struct slot *hs[] = {&d->a[h], &d->aaaa[h], &d->tlsa[h]};

        for (int k = 0; k < 3; k++)
            if (hs[k]->active) {
                resolver_cancel(hs[k]->req);
                hs[k]->active = 0;
            }
    }
    d->pending = 0;
}

/* Decide early: TEMP on a bogus or failed step, NONE when DANE does not apply. */
static void decide(struct dane_lookup *d, enum dane_state st, const char *fmt, const char *name,
                   const char *why)
{
    if (d->finished)
        return;
    d->finished = 1;
    d->f.state = st;
    snprintf(d->why, sizeof(d->why), fmt, name, why ? why : "");
}

/*
 * RFC 7672 2.2.2 and 2.2.3: a host whose address or TLSA lookup is bogus or fails cannot be
 * used, but the MX RRset's other hosts still can. Only when no host is left is the domain
 * TEMP; otherwise the failed hosts never lower the answer below "dane", under which
 * Postfix looks the host up itself and defers it.
 */
static void host_failed(struct dane_lookup *d, struct dane_host *x, const char *what,
                        const char *why)
{
    x->failed = 1;
    if (d->failed_why[0] == '\0')
        snprintf(d->failed_why, sizeof(d->failed_why), "%s lookup for MX host %.200s: %.80s", what,
                 x->name, why ? why : "failed");
}

/* Sum the hosts up once every question has been answered. */
static void summarise(struct dane_lookup *d)
{
    unsigned with_addr = 0, usable = 0, unusable = 0, failed = 0;

    for (unsigned h = 0; h < d->f.nhosts; h++) {
        const struct dane_host *x = &d->f.hosts[h];

        if (x->failed) {
            failed++;
            continue;
        }
        if (x->addr == DANE_ADDR_NONE)
            continue;
        with_addr++;
        if (x->tlsa_usable > 0)
            usable++;
        else if (x->tlsa_unusable > 0)
            unusable++;
    }
    if (failed > 0 && with_addr == 0)
        decide(d, DANE_TEMP, "%.280s%s", d->failed_why, NULL);
    else if (failed > 0 && usable == 0)
        decide(d, DANE_DEGRADED, "no usable TLSA on the MX hosts of %.80s that resolved; %.150s",
               d->domain, d->failed_why);
    else if (with_addr == 0)
        decide(d, DANE_NONE, "no MX host of %s has an address%s", d->domain, NULL);
    else if (usable == with_addr)
        decide(d, DANE_ALL, "every MX host of %s has usable TLSA records%s", d->domain, NULL);
    else if (usable > 0)
        decide(d, DANE_SOME, "some MX hosts of %s have usable TLSA records%s", d->domain, NULL);
    else if (unusable > 0)
        decide(d, DANE_UNUSABLE, "MX hosts of %s have only unusable TLSA records%s", d->domain,
               NULL);
    else
        decide(d, DANE_NONE, "secure MX for %s but no TLSA records%s", d->domain, NULL);
}

/*
 * Hosts in MX preference order (RFC 5321 5.1), equal preferences in the order they came,
 * so logs and query output read the way the client will try them. Only the facts are
 * reordered, after the last question: the slots still refer to the hosts by index.
 */
static void sort_hosts(struct dane_facts *f)
{
    for (unsigned i = 1; i < f->nhosts; i++) {
        struct dane_host x = f->hosts[i];
        unsigned j = i;

        for (; j > 0 && f->hosts[j - 1].preference > x.preference; j--)
            f->hosts[j] = f->hosts[j - 1];
        f->hosts[j] = x;
    }
}

/* Deliver and free when nothing is waiting. Returns 1 when d is gone. */
static int maybe_finish(struct dane_lookup *d)
{
    if (d->busy > 0 || (!d->finished && d->pending > 0))
        return 0;
    if (d->finished)
        cancel_all(d);
    else
        summarise(d);
    sort_hosts(&d->f);
    if (d->cache != NULL)
        dane_cache_put(d->cache, d->domain, &d->f, d->expires);
    d->cb(d->arg, &d->f);
    free(d);
    return 1;
}

static void add_host(struct dane_lookup *d, const char *name, uint16_t pref)
{
    struct dane_host *x;

    if (strlen(name) >= DANE_NAME_MAX) {
        log_info("dane: %s: MX host name longer than a domain name not examined", d->domain);
        return;
    }
    for (unsigned h = 0; h < d->f.nhosts; h++)
        if (dns_name_equal(d->f.hosts[h].name, name))
            return;
    if (d->f.nhosts == DANE_MAX_HOSTS) {
        /* Keep the most preferred: replace the worst if this one is better. */
        unsigned worst = 0;

        for (unsigned h = 1; h < d->f.nhosts; h++)
            if (d->f.hosts[h].preference > d->f.hosts[worst].preference)
                worst = h;
        /* Postfix tries at most smtp_mx_address_limit hosts anyway; say what was left out. */
        if (d->f.hosts[worst].preference <= pref) {
            log_info("dane: %s: MX host %s (preference %u) not examined: more than %d hosts",
                     d->domain, name, (unsigned)pref, DANE_MAX_HOSTS);
            return;
        }
        log_info("dane: %s: MX host %s (preference %u) not examined: more than %d hosts", d->domain,
                 d->f.hosts[worst].name, (unsigned)d->f.hosts[worst].preference, DANE_MAX_HOSTS);
        x = &d->f.hosts[worst];
    } else {
        x = &d->f.hosts[d->f.nhosts++];
    }
    memset(x, 0, sizeof(*x));
    snprintf(x->name, sizeof(x->name), "%s", name);
    x->preference = pref;
}

static void on_mx(struct dane_lookup *d, const struct resolver_answer *ans)
{
    const struct dns_answer_info *in = &ans->info;
    struct dns_iter it;
    struct dns_rr rr;
    const char *why = NULL;
    int rc, null_mx = 0, records = 0;

    switch (in->outcome) {
    case DNS_OUT_BOGUS:
    case DNS_OUT_FAILED:
        decide(d, DANE_TEMP, "MX lookup for %s: %s", d->domain, in->why);
        return;
    case DNS_OUT_NXDOMAIN:
        decide(d, DANE_NONE, "%s does not exist (NXDOMAIN)%s", d->domain, NULL);
        return;
    case DNS_OUT_NODATA:
        if (!in->secure) {
            decide(d, DANE_NONE, "no MX for %s and the denial is not DNSSEC-signed%s", d->domain,
                   NULL);
            return;
        }
        /* RFC 7672 2.2.1 and RFC 5321 5.1: the domain itself is the implicit MX. */
        d->f.mx_secure = 1;
        d->f.implicit_mx = 1;
        add_host(d, in->final, 0);
        break;
    case DNS_OUT_RECORDS:
        if (!in->secure) {
            decide(d, DANE_NONE, "the MX RRset of %s is not DNSSEC-signed%s", d->domain, NULL);
            return;
        }
        d->f.mx_secure = 1;
        if (dns_iter_init(&it, ans->msg, ans->len, &why) < 0) {
            decide(d, DANE_TEMP, "MX lookup for %s: %s", d->domain, why);
            return;
        }
        while ((rc = dns_answer_next(&it, in->final, DNS_TYPE_MX, &rr, &why)) == 1) {
            char host[DNS_NAME_MAX + 1];
            uint16_t pref;

            if (dns_rdata_mx(ans->msg, ans->len, &rr, &pref, host, &why) < 0)
                break;
            records++;
            /* RFC 7505 3: a single MX with the root as its exchange means no mail. */
            if (host[0] == '\0')
                null_mx = 1;
            else
                add_host(d, host, pref);
        }
        if (rc < 0 || why) {
            decide(d, DANE_TEMP, "MX lookup for %s: malformed answer: %s", d->domain, why);
            return;
        }
        if (null_mx && records == 1) {
            d->f.null_mx = 1;
            decide(d, DANE_NONE, "%s publishes a null MX (RFC 7505)%s", d->domain, NULL);
            return;
        }
        break;
    }
    for (unsigned h = 0; h < d->f.nhosts && !d->finished; h++) {
        d->a[h].kind = SLOT_A;
        d->a[h].host = (int)h;
        d->aaaa[h].kind = SLOT_AAAA;
        d->aaaa[h].host = (int)h;
        ask(d, &d->a[h], d->f.hosts[h].name, DNS_TYPE_A);
        if (!d->finished)
            ask(d, &d->aaaa[h], d->f.hosts[h].name, DNS_TYPE_AAAA);
    }
}

static void ask_tlsa(struct dane_lookup *d, int h, const char *base)
{
    char owner[DANE_NAME_MAX + 9];

    /* RFC 7672 3: TLSA records for SMTP live at _25._tcp.HOST. */
    if (snprintf(owner, sizeof(owner), "_25._tcp.%s", base) >= (int)sizeof(owner) ||
        strlen(owner) > DOMAIN_MAX)
        return;
    d->tlsa[h].kind = SLOT_TLSA;
    d->tlsa[h].host = h;
    snprintf(d->f.hosts[h].tlsa_owner, sizeof(d->f.hosts[h].tlsa_owner), "%s", owner);
    ask(d, &d->tlsa[h], owner, DNS_TYPE_TLSA);
}

static void on_addr(struct dane_lookup *d, int h, int aaaa, const struct resolver_answer *ans)
{
    struct host_work *w = &d->work[h];
    struct dane_host *x = &d->f.hosts[h];
    const struct dns_answer_info *in = &ans->info;

    {
        struct addr_result *res = aaaa ? &w->aaaa : &w->a;

        res->done = 1;
        if (in->outcome == DNS_OUT_BOGUS || in->outcome == DNS_OUT_FAILED) {
            host_failed(d, x, aaaa ? "AAAA" : "A", in->why);
        } else {
            res->has = in->outcome == DNS_OUT_RECORDS;
            res->secure = in->secure;
            res->cnames = in->cnames;
            if (res->has && in->cnames > 0 && strlen(in->final) < sizeof(w->final))
                memcpy(w->final, in->final, strlen(in->final) + 1);
        }
    }
    if (!w->a.done || !w->aaaa.done || x->failed)
        return;

    /* RFC 7672 2.2.2: TLSA records are looked up only for hosts whose addresses are secure. */
    if (!w->a.has && !w->aaaa.has) {
        x->addr = DANE_ADDR_NONE;
        return;
    }
    if ((w->a.has && !w->a.secure) || (w->aaaa.has && !w->aaaa.secure)) {
        x->addr = DANE_ADDR_INSECURE;
        return;
    }
    x->addr = DANE_ADDR_SECURE;
    /* RFC 7672 2.2.3: first at the CNAME-expanded name. */
    ask_tlsa(d, h, w->final[0] ? w->final : x->name);
}

static void on_tlsa(struct dane_lookup *d, int h, const struct resolver_answer *ans)
{
    struct host_work *w = &d->work[h];
    struct dane_host *x = &d->f.hosts[h];
    const struct dns_answer_info *in = &ans->info;
    struct dns_iter it;
    struct dns_rr rr;
    const char *why = NULL;
    int rc;

    switch (in->outcome) {
    case DNS_OUT_BOGUS:
    case DNS_OUT_FAILED:
        host_failed(d, x, "TLSA", in->why);
        return;
    case DNS_OUT_NODATA:
    case DNS_OUT_NXDOMAIN:
    case DNS_OUT_RECORDS:
        if (in->outcome == DNS_OUT_RECORDS && in->secure)
            break;
        /*
         * RFC 7672 2.2.3: no TLSA, or an insecure TLSA RRset (which cannot be used), at the
         * CNAME-expanded host name: try the original MX host name next.
         */
        if (!w->tlsa_retry_done && w->final[0] && !dns_name_equal(w->final, x->name)) {
            w->tlsa_retry_done = 1;
            ask_tlsa(d, h, x->name);
            return;
        }
        x->tlsa_owner[0] = '\0';
        return;
    }
    if (dns_iter_init(&it, ans->msg, ans->len, &why) < 0) {
        host_failed(d, x, "TLSA", why);
        return;
    }
    while ((rc = dns_answer_next(&it, in->final, DNS_TYPE_TLSA, &rr, &why)) == 1) {
        uint8_t u, s, m;
        const uint8_t *data;
        size_t dlen;

        if (dns_rdata_tlsa(&rr, &u, &s, &m, &data, &dlen, &why) < 0) {
            x->tlsa_unusable++; /* a malformed record is present but cannot be used */
            why = NULL;
            continue;
        }
        if (dane_tlsa_usable(u, s, m, dlen)) {
            x->tlsa_usable++;
            /* Keep the record itself for the MX probe (dane.h: DANE_MAX_TLSA). */
            if (x->ntlsa < DANE_MAX_TLSA && dlen <= DANE_TLSA_DATA_MAX) {
                struct dane_tlsa *t = &x->tlsa[x->ntlsa++];

                t->usage = u;
                t->selector = s;
                t->mtype = m;
                t->len = (uint8_t)dlen;
                memcpy(t->data, data, dlen);
            }
        } else
            x->tlsa_unusable++;
    }
    if (rc < 0) {
        /* Records already counted from a malformed answer must not count. */
        x->tlsa_usable = x->tlsa_unusable = 0;
        x->ntlsa = 0;
        host_failed(d, x, "TLSA", why);
    }
}

static void on_answer(void *arg, const struct resolver_answer *ans)
{
    struct slot *s = arg;
    struct dane_lookup *d = s->d;

    s->active = 0;
    s->req = NULL;
    d->pending--;
    if (!d->finished) {
        /* The facts hold as long as every answer they were concluded from. */
        if (ans->expires < d->expires)
            d->expires = ans->expires;
        d->busy++;
        switch (s->kind) {
        case SLOT_MX:
            on_mx(d, ans);
            break;
        case SLOT_A:
        case SLOT_AAAA:
            on_addr(d, s->host, s->kind == SLOT_AAAA, ans);
            break;
        case SLOT_TLSA:
            on_tlsa(d, s->host, ans);
            break;
        }
        d->busy--;
    }
    maybe_finish(d);
}

struct dane_lookup *dane_start(struct resolver *r, struct dane_cache *cache, const char *domain,
                               dane_cb cb, void *arg)
{
    struct dane_lookup *d;

    if (cache != NULL) {
        const struct dane_facts *f = dane_cache_get(cache, domain);

        if (f != NULL) {
            cb(arg, f);
            return NULL;
        }
        metrics_cache(METRICS_CACHE_DANE, METRICS_CACHE_MISS);
    }
    d = xmalloc(sizeof(*d));

    /* Everything but the host entries, which add_host() clears as it fills them. */
    memset(d, 0, offsetof(struct dane_lookup, f) + offsetof(struct dane_facts, hosts));

    d->r = r;
    d->cache = cache;
    d->expires = UINT64_MAX;
    d->f.why = d->why;
    d->cb = cb;
    d->arg = arg;
    snprintf(d->domain, sizeof(d->domain), "%s", domain);
    d->mx.kind = SLOT_MX;
    d->busy++;
    ask(d, &d->mx, domain, DNS_TYPE_MX);
    d->busy--;
    return maybe_finish(d) ? NULL : d;
}

void dane_cancel(struct dane_lookup *d)
{
    if (d == NULL)
        return;
    cancel_all(d);
    free(d);
}
