/*
 * MTA-STS per domain (RFC 8461). An entry holds the policy in force for a domain (or the
 * failure remembered for it) and at most one piece of work: discovery (TXT, 3.1), the
 * policy host's addresses (vetted: SPEC 7), the fetch (3.3) and the parse (3.2). Lookups
 * that arrive while work runs wait on the entry; a cached policy answers at once and, when
 * its TXT id has not been checked for recheck_s, starts the work in the background.
 * The cache is bounded by cache_max: entries are evicted least recently used first,
 * remembered failures and policies whose record the store has committed (the store is the
 * truth: a lookup that misses reads the record back, store_get), never a policy whose write
 * is queued, running or failed (5.1). Records are written through to the store, and read
 * from it lazily: nothing is loaded at start-up.
 */
#include "mtasts.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "addr.h"
#include "dns.h"
#include "escape.h"
#include "fetch.h"
#include "hash.h"
#include "log.h"
#include "lru.h"
#include "metrics.h"
#include "mtasts_share.h"
#include "resolver.h"
#include "store.h"
#include "waitlist.h"
#include "xalloc.h"

/* Policy host addresses pinned for one fetch. */
#define MAX_ADDRS 16
/* RFC 8461 3.3: the policy lives at this path on the mta-sts host. */
#define POLICY_PATH "/.well-known/mta-sts.txt"
/* TXT records longer than this are not STS records (the grammar's fields are short). */
#define TXT_MAX 1024
/* The hash table starts with this many buckets (a power of two) and doubles past one entry
 * per bucket. */
#define BUCKETS_MIN 1024

struct entry;

struct mtasts_lookup {
    struct waitlist_link link; /* on the entry's waiters */
    struct entry *e;
    mtasts_cb cb;
    void *arg;
};

struct work {
    struct entry *e;
    struct resolver_req *txt_req, *a_req, *aaaa_req;
    struct fetch_req *fetch;
    struct share_req *share; /* fleet tier: a read or a claim in flight */
    int locked;              /* fleet tier: this daemon holds the domain's fetch lock */
    int a_done, aaaa_done;
    char id[STS_ID_MAX + 1];
    char txt[256];
    char host[DOMAIN_MAX + 16];
    char addrs[MAX_ADDRS][INET6_ADDRSTRLEN];
    size_t naddrs;
    char refused[160]; /* the first address refused, and why */
    const char *addr_why;
    uint64_t txt_expires; /* the TXT answer's resolver_answer.expires */
};

/* The reason line's room in struct mtasts_facts, which bounds the cache's copy too. */
#define WHY_MAX MTASTS_WHY_MAX

/* The text of facts that have none (not allocated, never freed). */
static const char no_text[] = "";

struct entry {
    struct entry *hnext;
    struct mtasts_svc *svc;
    /*
     * The policy in force (state POLICY) or the last outcome: an allocation of struct
     * mtasts_facts up to its policy's last pattern and no more (set_policy), its text heap
     * strings sized to their content (or no_text). Cached answers hand out this very struct.
     */
    struct mtasts_facts *f;
    int64_t checked;    /* when discovery last completed */
    int64_t fail_until; /* no new work before this after a failure */
    int used;           /* a lookup was answered from the policy since it was fetched */
    int unsaved;        /* the policy's store write is queued, running or failed */
    struct work *work;
    struct waitlist_link *waiters;
    struct lru_link idle; /* on svc->idle while evictable (see idle_update) */
    int on_idle;
    int answering; /* work_done() is calling back: the entry must outlive the calls */
    char domain[]; /* sized to the name (create) */
};

struct mtasts_svc {
    uv_loop_t *loop;
    struct resolver *r;
    struct fetch_svc *fetch;
    struct store *store;
    struct fleet *fleet; /* NULL: no fleet tier */
    struct mtasts_opts opts;
    struct entry **buckets;
    size_t nbuckets;
    /* Kept as entries come and go, so a scrape of /metrics walks nothing. */
    unsigned long nentries, npolicies;
    /* Entries that may be evicted, least recently used at the tail. */
    struct lru idle;
    int full_logged; /* the cap was passed by policies in force alone (logged once) */
    unsigned long completions, fetches;
    uv_timer_t sweep;
    unsigned sweeps; /* of the cache; every STORE_SWEEP_EVERY-th also sweeps the store */
};

/* The store's expired records are swept every this many cache sweeps (an hour). */
#define STORE_SWEEP_EVERY 60

/* How often cached policies are looked over for renewal and expiry. */
#define SWEEP_MS 60000

/* The bytes of *f that hold the facts: up to its policy's last pattern and no further. */
static size_t facts_size(const struct mtasts_facts *f)
{
    return offsetof(struct mtasts_facts, policy) + sts_policy_size(&f->policy);
}

void mtasts_facts_copy(struct mtasts_facts *dst, const struct mtasts_facts *src,
                       struct mtasts_text *text)
{
    memcpy(dst, src, facts_size(src));
    snprintf(text->txt, sizeof(text->txt), "%s", src->txt);
    snprintf(text->why, sizeof(text->why), "%s", src->why);
    dst->txt = text->txt;
    dst->why = text->why;
}

/* The entry's facts take pol, their allocation resized to hold its patterns and no more. */
static void set_policy(struct entry *e, const struct sts_policy *pol)
{
    size_t n = sts_policy_size(pol);

    e->f = xrealloc(e->f, offsetof(struct mtasts_facts, policy) + n);
    memcpy(&e->f->policy, pol, n);
}

/* *p becomes a copy of s (cut as the facts' bound cuts it), or no_text for "". */
static void set_text(const char **p, const char *s, size_t max)
{
    if (*p != no_text)
        free((char *)*p);
    *p = s[0] ? xstrndup(s, max - 1) : no_text;
}

/* The entry's reason line, formatted and cut as MTASTS_WHY_MAX cuts it. */
static void set_why(struct entry *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_why(struct entry *e, const char *fmt, ...)
{
    char why[WHY_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    set_text(&e->f->why, why, WHY_MAX);
}

static void facts_free(struct mtasts_facts *f)
{
    set_text(&f->txt, "", MTASTS_TXT_MAX);
    set_text(&f->why, "", WHY_MAX);
    free(f);
}

static int64_t wall_now(void)
{
    return (int64_t)time(NULL);
}

static struct entry **slot_of(struct mtasts_svc *svc, const char *domain)
{
    return &svc->buckets[hash_string(domain) & (svc->nbuckets - 1)];
}

static struct entry *find(struct mtasts_svc *svc, const char *domain)
{
    struct entry *e = *slot_of(svc, domain);

    while (e && strcmp(e->domain, domain) != 0)
        e = e->hnext;
    return e;
}

/* Every change of an entry's state goes through here, for the policies gauge. */
static void set_state(struct entry *e, enum mtasts_state state)
{
    if (e->f->state == MTASTS_POLICY)
        e->svc->npolicies--;
    if (state == MTASTS_POLICY)
        e->svc->npolicies++;
    e->f->state = state;
}

/*
 * An entry may be evicted when it has no work and no waiters and holds either no policy
 * (it only remembers a failure) or a policy the store has committed (a later lookup reads
 * it back: RFC 8461 5.1 keeps a policy in force until it expires, and the store keeps it).
 * A policy without a store, or whose write is pending or failed, stays. Called whenever
 * one of these changes; keeps e on svc->idle exactly when it may go.
 */
static void idle_update(struct entry *e)
{
    int policy_kept = e->f->state == MTASTS_POLICY && (e->svc->store == NULL || e->unsaved);
    int idle = !policy_kept && e->work == NULL && e->waiters == NULL && e->answering == 0;

    if (idle && !e->on_idle)
        lru_push_front(&e->svc->idle, &e->idle);
    else if (!idle && e->on_idle)
        lru_unlink(&e->svc->idle, &e->idle);
    e->on_idle = idle;
}

static void entry_free(struct entry *e)
{
    struct mtasts_svc *svc = e->svc;
    struct entry **pp = slot_of(svc, e->domain);

    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (e->on_idle)
        lru_unlink(&svc->idle, &e->idle);
    if (e->f->state == MTASTS_POLICY)
        svc->npolicies--;
    svc->nentries--;
    facts_free(e->f);
    free(e);
}

/* Double the buckets, so chains stay short however many domains the cache holds. */
static void grow(struct mtasts_svc *svc)
{
    size_t n = svc->nbuckets * 2;
    struct entry **b = xcalloc(n, sizeof(*b));

    for (size_t i = 0; i < svc->nbuckets; i++) {
        struct entry *e, *next;

        for (e = svc->buckets[i]; e != NULL; e = next) {
            struct entry **slot = &b[hash_string(e->domain) & (n - 1)];

            next = e->hnext;
            e->hnext = *slot;
            *slot = e;
        }
    }
    free(svc->buckets);
    svc->buckets = b;
    svc->nbuckets = n;
}

/*
 * Room for one more entry under sts_cache_size: the least recently used idle entries go
 * first (remembered failures, and policies the store holds). A policy in force that only
 * memory holds is never evicted (RFC 8461 5.1); when such policies alone fill the cache it
 * grows past the cap rather than drop one, and says so once.
 */
static void make_room(struct mtasts_svc *svc)
{
    unsigned long cap = svc->opts.cache_max ? svc->opts.cache_max : MTASTS_CACHE_MAX_DEFAULT;

    while (svc->nentries >= cap && svc->idle.tail != NULL) {
        struct entry *v = lru_entry(svc->idle.tail, struct entry, idle);

        log_debug("mta-sts: cache full (sts_cache_size %lu): %s forgotten", cap, v->domain);
        metrics_cache(METRICS_CACHE_STS, METRICS_CACHE_EVICTION);
        entry_free(v);
    }
    if (svc->nentries >= cap && !svc->full_logged) {
        log_warning("mta-sts: %lu entries, %lu of them policies in force: the cache grows past "
                    "sts_cache_size %lu rather than drop a policy not (yet) in the store (RFC "
                    "8461 5.1); logged once",
                    svc->nentries, svc->npolicies, cap);
        svc->full_logged = 1;
    }
}

/* A new entry for domain, which the cache must not hold yet; no other entry is invalidated
 * but evictable ones (idle: no work, no waiters, no policy). */
static struct entry *create(struct mtasts_svc *svc, const char *domain)
{
    struct entry **b, *e;
    size_t len = strnlen(domain, DOMAIN_MAX);

    make_room(svc);
    if (svc->nentries >= svc->nbuckets)
        grow(svc);
    b = slot_of(svc, domain);
    /* The name and no more room (xcalloc ends it with its NUL). */
    e = xcalloc(1, offsetof(struct entry, domain) + len + 1);
    /* No policy yet: the facts up to an empty pattern list. */
    e->f = xcalloc(1, offsetof(struct mtasts_facts, policy) + offsetof(struct sts_policy, mx));
    e->f->txt = e->f->why = no_text;
    e->svc = svc;
    memcpy(e->domain, domain, len);
    e->f->state = MTASTS_NONE;
    e->hnext = *b;
    *b = e;
    svc->nentries++;
    return e;
}

static int has_policy(const struct entry *e, int64_t now)
{
    return e->f->state == MTASTS_POLICY && e->f->expires > now;
}

/* RFC 8461 5.1: an expired policy is gone; so is its record. */
static void expire(struct entry *e, int64_t now)
{
    if (e->f->state != MTASTS_POLICY || e->f->expires > now)
        return;
    log_info("mta-sts: policy of %s (id %s) reached its max_age; dropped", e->domain, e->f->id);
    metrics_cache(METRICS_CACHE_STS, METRICS_CACHE_EVICTION);
    if (e->svc->store)
        store_delete(e->svc->store, e->domain);
    set_state(e, MTASTS_NONE);
    e->f->local_fault = 0;
    set_why(e, "the cached policy expired");
    idle_update(e);
}

/* rec, from state_dir or the fleet tier, becomes the entry's policy in force. */
static void take_record(struct entry *e, const struct store_record *rec, const char *from)
{
    set_state(e, MTASTS_POLICY);
    set_policy(e, &rec->policy);
    snprintf(e->f->id, sizeof(e->f->id), "%s", rec->id);
    e->f->fetched = rec->fetched;
    e->f->expires = rec->expires;
    e->f->local_fault = 0;
    set_why(e, "policy id %s from %s, fetched %lld", rec->id, from, (long long)rec->fetched);
    idle_update(e);
}

/* The work is over: answer every waiter with the entry's facts. */
static void work_done(struct work *w)
{
    struct entry *e = w->e;
    struct mtasts_svc *svc = e->svc;
    struct waitlist_link *list, *ln;

    /* The TXT record last seen stays with the entry, for query output. */
    set_text(&e->f->txt, w->txt, MTASTS_TXT_MAX);
    /* Fleet: a fetch that gave no policy lets the next daemon try. */
    if (w->locked)
        share_release(svc->fleet, e->domain);
    free(w);
    e->work = NULL;
    svc->completions++;
    /* Lookups that arrive during the answers wait for the work they start, not this one. */
    waitlist_take(&e->waiters, &list);
    e->answering++;
    while ((ln = waitlist_pop(&list)) != NULL) {
        struct mtasts_lookup *l = waitlist_entry(ln, struct mtasts_lookup, link);

        /* The entry's own facts; a callback may renew them (e->f is read again each time). */
        e->f->cached = 0;
        l->cb(l->arg, e->f);
        free(l);
    }
    /*
     * A callback may have started new work on this entry that already finished: that
     * inner work_done() left the entry alone, and the outermost one decides for both.
     */
    if (--e->answering > 0)
        return;
    /* Nothing worth keeping: no policy and no failure to remember. */
    if (e->f->state != MTASTS_POLICY && e->fail_until <= wall_now() && e->waiters == NULL &&
        e->work == NULL)
        entry_free(e);
    else
        idle_update(e);
}

/* How the work ended without a new policy (no_new_policy's flags). */
enum {
    END_REMEMBER = 1, /* a failure of the domain's: not asked again for sts_fail_ttl */
    /*
     * The fetch failed on our side (FETCH_LOCAL). RFC 8461's "no policy" is for failures of
     * the policy host; this one says nothing about the domain. A policy in force stays and
     * answers (5.1); without one the entry says local_fault and the engine answers TEMP.
     * Nothing is remembered, so the first lookup after the fault is fixed fetches again.
     */
    END_LOCAL = 2,
    /*
     * The TXT answer alone decided (no record, no STSv1 record, several, an invalid one):
     * without a policy in force the outcome is remembered for as long as the resolver keeps
     * that answer, so lookups in the meantime do not repeat a discovery that could only
     * read the same cached answer again and reach the same end.
     */
    END_TXT = 4,
};

/* The work ended without a new policy: keep the one in force (5.1), else say why. */
static void no_new_policy(struct work *w, unsigned how, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void no_new_policy(struct work *w, unsigned how, const char *fmt, ...)
{
    struct entry *e = w->e;
    int64_t now = wall_now();
    int local = (how & END_LOCAL) != 0;
    char why[WHY_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (how & END_REMEMBER)
        e->fail_until = now + e->svc->opts.fail_ttl_s;
    if ((how & END_TXT) && !has_policy(e, now)) {
        uint64_t now_ms = resolver_now(e->svc->r);

        /* Whole seconds, rounded down: never past the answer's own expiry. */
        if (w->txt_expires > now_ms)
            e->fail_until = now + (int64_t)((w->txt_expires - now_ms) / 1000);
    }
    if (has_policy(e, now)) {
        /* The next background check of the TXT id waits for sts_recheck again. */
        e->checked = now;
        e->f->local_fault = 0;
        if (local)
            log_error("mta-sts: %s: %s; the cached policy (id %s) stays in force", e->domain, why,
                      e->f->id);
        else
            log_info("mta-sts: %s: %s; the cached policy (id %s) stays in force until it "
                     "expires in %llds (RFC 8461 5.1)",
                     e->domain, why, e->f->id, (long long)(e->f->expires - now));
    } else {
        if (!local)
            e->checked = now;
        e->f->local_fault = local;
        set_state(e, MTASTS_NONE);
        set_text(&e->f->why, why, WHY_MAX);
        if (local)
            log_error("mta-sts: %s: %s; answering TEMP until a fetch succeeds", e->domain, why);
        else
            log_info("mta-sts: %s: no policy: %s", e->domain, why);
    }
    work_done(w);
}

static void on_fetch(void *arg, const struct fetch_result *res)
{
    struct work *w = arg;
    struct entry *e = w->e;
    struct mtasts_svc *svc = e->svc;
    struct sts_policy pol;
    const char *why = NULL;
    int64_t now = wall_now();

    w->fetch = NULL;
    snprintf(e->f->fetch, sizeof(e->f->fetch), "%s", fetch_outcome_name(res->outcome));
    if (res->outcome == FETCH_LOCAL) {
        metrics_fetch(res->outcome);
        no_new_policy(w, END_LOCAL, "policy fetch from %s failed: %s", w->host, res->why);
        return;
    }
    if (res->outcome != FETCH_OK) {
        metrics_fetch(res->outcome);
        no_new_policy(w, END_REMEMBER, "policy fetch from %s failed: %s", w->host, res->why);
        return;
    }
    if (sts_policy_parse(res->body, res->len, &pol, &why) != STS_POLICY_OK) {
        snprintf(e->f->fetch, sizeof(e->f->fetch), "invalid");
        metrics_fetch(METRICS_FETCH_INVALID);
        no_new_policy(w, END_REMEMBER, "policy from %s is invalid: %s", w->host, why);
        return;
    }
    metrics_fetch(METRICS_FETCH_OK);
    /* RFC 8461 3.3: the policy is associated with the id of the TXT record that led to it. */
    set_state(e, MTASTS_POLICY);
    set_policy(e, &pol);
    snprintf(e->f->id, sizeof(e->f->id), "%s", w->id);
    e->f->fetched = now;
    /* Cached at least an hour, so a max_age of 0 is not a fetch per lookup (sts.h). */
    e->f->expires = now + sts_cache_lifetime(pol.max_age);
    set_why(e, "policy id %s fetched from %s", w->id, w->host);
    e->checked = now;
    e->fail_until = 0;
    e->used = 0;
    e->f->local_fault = 0;
    log_info("mta-sts: %s: policy id %s, mode %s, max_age %u%s, %u mx pattern%s", e->domain, w->id,
             sts_mode_name(pol.mode), (unsigned)pol.max_age,
             pol.max_age < STS_CACHE_MIN_AGE ? " (cached for the floor of 3600)" : "", pol.nmx,
             pol.nmx == 1 ? "" : "s");
    if (svc->store || svc->fleet) {
        /* Written behind the answer, off the loop; the store logs and counts the outcome. */
        struct store_record rec;

        memset(&rec, 0, sizeof(rec));
        snprintf(rec.domain, sizeof(rec.domain), "%s", e->domain);
        snprintf(rec.id, sizeof(rec.id), "%s", w->id);
        rec.fetched = e->f->fetched;
        rec.expires = e->f->expires;
        rec.policy = pol;
        if (svc->store) {
            /* Not evicted until the store says the record is committed (on_stored). */
            e->unsaved = 1;
            store_put(svc->store, &rec);
        }
        /* Fleet: the record for the others, then the lock released (in that order). */
        if (svc->fleet)
            share_publish(svc->fleet, &rec, w->locked);
        w->locked = 0;
    }
    work_done(w);
}

static void start_fetch(struct work *w)
{
    struct mtasts_svc *svc = w->e->svc;
    const char *addrs[MAX_ADDRS];

    if (w->naddrs == 0) {
        if (w->refused[0])
            no_new_policy(w, END_REMEMBER, "policy host %s has no usable address (%s)", w->host,
                          w->refused);
        else
            no_new_policy(w, END_REMEMBER, "policy host %s has no address%s%s", w->host,
                          w->addr_why ? ": " : "", w->addr_why ? w->addr_why : "");
        return;
    }
    for (size_t i = 0; i < w->naddrs; i++)
        addrs[i] = w->addrs[i];
    svc->fetches++;
    w->fetch = fetch_start(svc->fetch, w->host, POLICY_PATH, addrs, w->naddrs, on_fetch, w);
}

/* SPEC 7: only globally routable addresses, unless sts_allow_private (test labs). */
static void take_addresses(struct work *w, const struct resolver_answer *ans)
{
    struct dns_iter it;
    struct dns_rr rr;
    const char *why = NULL;

    if (ans->info.outcome != DNS_OUT_RECORDS) {
        if (ans->info.outcome == DNS_OUT_BOGUS || ans->info.outcome == DNS_OUT_FAILED)
            w->addr_why = ans->info.why;
        return;
    }
    if (dns_iter_init(&it, ans->msg, ans->len, &why) < 0)
        return;
    while (dns_answer_next(&it, ans->info.final, ans->qtype, &rr, &why) == 1) {
        uint8_t a[16];
        size_t alen;
        const char *special;

        if (dns_rdata_addr(&rr, a, &alen, &why) < 0)
            continue;
        if (w->naddrs == MAX_ADDRS)
            break;
        inet_ntop(alen == 4 ? AF_INET : AF_INET6, a, w->addrs[w->naddrs], INET6_ADDRSTRLEN);
        special = addr_special(a, alen);
        if (special && !w->e->svc->opts.allow_private) {
            if (!w->refused[0])
                snprintf(w->refused, sizeof(w->refused),
                         "%s is a %s address; sts_allow_private = no", w->addrs[w->naddrs],
                         special);
            continue;
        }
        w->naddrs++;
    }
}

static void on_addr(void *arg, const struct resolver_answer *ans)
{
    struct work *w = arg;

    if (ans->qtype == DNS_TYPE_A) {
        w->a_req = NULL;
        w->a_done = 1;
    } else {
        w->aaaa_req = NULL;
        w->aaaa_done = 1;
    }
    take_addresses(w, ans);
    if (w->a_done && w->aaaa_done)
        start_fetch(w);
}

static void resolve_host(struct work *w)
{
    struct resolver *r = w->e->svc->r;
    struct resolver_req *req;

    /* RFC 8461 3.3: the policy host is "mta-sts." in front of the policy domain. */
    snprintf(w->host, sizeof(w->host), "mta-sts.%s", w->e->domain);
    if (strlen(w->host) > DOMAIN_MAX) {
        no_new_policy(w, END_REMEMBER, "policy host name %s is too long", w->host);
        return;
    }
    /*
     * A cached answer calls back before resolver_query() returns (and returns NULL); the
     * AAAA answer may even end the work and free w, so w is touched only for a pending query.
     */
    req = resolver_query(r, w->host, DNS_TYPE_A, on_addr, w);
    if (req)
        w->a_req = req;
    req = resolver_query(r, w->host, DNS_TYPE_AAAA, on_addr, w);
    if (req)
        w->aaaa_req = req;
}

static void claim_or_fetch(struct work *w); /* the fleet tier hooks, below */

/* RFC 8461 3.1: exactly one record starting with v=STSv1, else no policy. */
static void on_txt(void *arg, const struct resolver_answer *ans)
{
    struct work *w = arg;
    struct entry *e = w->e;
    struct dns_iter it;
    struct dns_rr rr;
    const char *why = NULL, *bad = NULL;
    unsigned nsts = 0;
    int64_t now = wall_now();

    w->txt_req = NULL;
    w->txt_expires = ans->expires;
    switch (ans->info.outcome) {
    case DNS_OUT_NODATA:
    case DNS_OUT_NXDOMAIN:
        no_new_policy(w, END_TXT, "no _mta-sts TXT record");
        return;
    case DNS_OUT_BOGUS:
    case DNS_OUT_FAILED:
        no_new_policy(w, END_REMEMBER, "_mta-sts TXT lookup failed: %s", ans->info.why);
        return;
    case DNS_OUT_RECORDS:
        break;
    }
    if (dns_iter_init(&it, ans->msg, ans->len, &why) == 0) {
        while (dns_answer_next(&it, ans->info.final, DNS_TYPE_TXT, &rr, &why) == 1) {
            char txt[TXT_MAX + 1], id[STS_ID_MAX + 1];
            size_t len;
            int rc;

            if (dns_rdata_txt(&rr, txt, sizeof(txt), &len, &why) < 0) {
                /* Too long to be an STS record unless it claims to be one. */
                if (rr.rdlen > 8 && rr.rdata[0] >= 7 && memcmp(rr.rdata + 1, "v=STSv1", 7) == 0) {
                    nsts++;
                    bad = "an over-long v=STSv1 record";
                }
                continue;
            }
            rc = sts_txt_parse(txt, len, id, &why);
            if (rc == STS_TXT_NOT_STS)
                continue;
            nsts++;
            escape_log(w->txt, sizeof(w->txt), txt, len);
            if (rc == STS_TXT_OK)
                snprintf(w->id, sizeof(w->id), "%s", id);
            else
                bad = why;
        }
    }
    if (nsts == 0) {
        no_new_policy(w, END_TXT, "no v=STSv1 TXT record at _mta-sts.%s", e->domain);
        return;
    }
    if (nsts > 1) {
        w->txt[0] = '\0';
        no_new_policy(w, END_TXT,
                      "%u v=STSv1 TXT records at _mta-sts.%s (RFC 8461 3.1: exactly one)", nsts,
                      e->domain);
        return;
    }
    if (bad) {
        no_new_policy(w, END_TXT, "invalid _mta-sts TXT record: %s", bad);
        return;
    }
    /*
     * RFC 8461 5.1: the same id means the same policy; fetch again only to renew it once
     * half its lifetime has passed, so a policy in use never runs out.
     */
    if (has_policy(e, now) && strcmp(e->f->id, w->id) == 0 &&
        now < e->f->fetched + (e->f->expires - e->f->fetched) / 2) {
        e->checked = now;
        work_done(w);
        return;
    }
    if (has_policy(e, now))
        log_info("mta-sts: %s: TXT id %s (cached policy has %s): fetching", e->domain, w->id,
                 e->f->id);
    claim_or_fetch(w);
}

/* Discovery (RFC 8461 3.1): the TXT record lives at _mta-sts.DOMAIN. */
static void discover(struct work *w)
{
    struct resolver_req *req;
    char name[DOMAIN_MAX + 16];

    snprintf(name, sizeof(name), "_mta-sts.%s", w->e->domain);
    if (strlen(name) > DOMAIN_MAX) {
        no_new_policy(w, 0, "%s is too long for an _mta-sts name", w->e->domain);
        return;
    }
    req = resolver_query(w->e->svc->r, name, DNS_TYPE_TXT, on_txt, w);
    if (req)
        w->txt_req = req; /* pending: w lives until on_txt */
}

/* ---- Fleet tier hooks (mtasts_share.h): read on a miss, one fetch across the fleet. ---- */

/*
 * A record from the fleet: after a local miss it answers as a state_dir record would (the
 * next lookup checks the TXT id, behind its answer); after the TXT check (claim) it is the
 * policy another daemon fetched for that id, as good as fetching it here. Kept in state_dir.
 */
static void on_share(void *arg, enum share_result res, const struct store_record *rec)
{
    struct work *w = arg;
    struct entry *e = w->e;
    int claim = w->id[0] != '\0';

    w->share = NULL;
    if (res != SHARE_RECORD) {
        w->locked = res == SHARE_FETCH_LOCKED;
        if (claim)
            resolve_host(w);
        else
            discover(w);
        return;
    }
    if (e->svc->store)
        e->unsaved = 1; /* kept in memory until state_dir has it too (on_stored) */
    take_record(e, rec, "the fleet");
    log_info("mta-sts: %s: policy id %s from the fleet, fetched %lld", e->domain, rec->id,
             (long long)rec->fetched);
    if (e->svc->store)
        store_put(e->svc->store, rec);
    e->checked = claim ? wall_now() : 0;
    e->fail_until = 0;
    e->used = 0;
    work_done(w);
}

/* Before a fetch: with a fleet tier, take its lock or wait for the daemon that has it. */
static void claim_or_fetch(struct work *w)
{
    struct mtasts_svc *svc = w->e->svc;

    if (svc->fleet)
        w->share =
            share_claim(svc->fleet, w->e->domain, w->id, svc->opts.share_lock_ms, on_share, w);
    if (w->share == NULL)
        resolve_host(w);
}

void mtasts_set_fleet(struct mtasts_svc *svc, struct fleet *f)
{
    svc->fleet = f;
}

/* ---- End of the fleet tier hooks. ---- */

/* Start discovery for e. Returns 1 when the work completed before returning. */
static int start_work(struct entry *e)
{
    struct mtasts_svc *svc = e->svc;
    unsigned long before = svc->completions;
    struct work *w = xcalloc(1, sizeof(*w));

    w->e = e;
    e->work = w;
    idle_update(e);
    /* A local miss asks the fleet tier first (never for a policy in force: that is a recheck). */
    if (svc->fleet && !has_policy(e, wall_now()))
        w->share = share_read(svc->fleet, e->domain, on_share, w);
    if (w->share == NULL)
        discover(w);
    return svc->completions != before;
}

/*
 * The entry's facts when the cache answers now, counted as a hit; NULL when it cannot (no
 * entry, work running, nothing remembered), with nothing counted. A policy in force answers
 * (RFC 8461 5.1) and a TXT check that is due starts behind it first, so the facts handed
 * out are the ones in force once it has run (it may complete at once from the DNS cache).
 */
static const struct mtasts_facts *cached_facts(struct mtasts_svc *svc, struct entry *e, int64_t now)
{
    expire(e, now);
    if (has_policy(e, now)) {
        e->used = 1;
        metrics_cache(METRICS_CACHE_STS, METRICS_CACHE_HIT);
        if (e->work == NULL && now - e->checked >= (int64_t)svc->opts.recheck_s) {
            metrics_refresh(METRICS_REFRESH_RECHECK);
            start_work(e);
        }
        /* A policy in force is never dropped by its own check (5.1): e is still here. */
        e->f->cached = 1;
        return e->f;
    }
    if (e->work == NULL && e->fail_until > now) {
        /* A remembered failure answers too (negative caching), and is kept longer. */
        if (e->on_idle)
            lru_touch(&svc->idle, &e->idle);
        metrics_cache(METRICS_CACHE_STS, METRICS_CACHE_HIT);
        e->f->cached = 1;
        return e->f;
    }
    return NULL;
}

const struct mtasts_facts *mtasts_cached(struct mtasts_svc *svc, const char *domain)
{
    struct entry *e = find(svc, domain);

    return e != NULL ? cached_facts(svc, e, wall_now()) : NULL;
}

/*
 * A domain the cache does not hold: its stored record, if the store has a valid unexpired
 * one, becomes a cached policy and answers exactly as one fetched would (the store is
 * the truth for evicted policies). 1 with *ep the new entry, 0 when the store has none,
 * -1 when it cannot be read (a fault of ours: answered TEMP, never "no policy").
 */
static int from_store(struct mtasts_svc *svc, const char *domain, int64_t now, struct entry **ep,
                      const char **why)
{
    struct store_record rec;
    int rc;

    *ep = NULL;
    if (svc->store == NULL)
        return 0;
    rc = store_get(svc->store, domain, now, &rec, why);
    if (rc == 1) {
        *ep = create(svc, domain);
        /* Checked long ago: the first lookup looks at the TXT id again, behind the answer. */
        (*ep)->checked = 0;
        take_record(*ep, &rec, "state_dir");
    }
    return rc;
}

/* The store cannot be read: facts that say so (the engine answers TEMP). */
static void deliver_store_fault(const char *domain, const char *why, mtasts_cb cb, void *arg)
{
    struct mtasts_facts f;
    char line[MTASTS_WHY_MAX];

    memset(&f, 0, sizeof(f));
    f.state = MTASTS_NONE;
    f.local_fault = 1;
    f.txt = "";
    snprintf(line, sizeof(line), "state_dir cannot be read: %s", why);
    f.why = line;
    log_error("mta-sts: %s: state_dir cannot be read (%s); answering TEMP", domain, why);
    cb(arg, &f);
}

struct mtasts_lookup *mtasts_start(struct mtasts_svc *svc, const char *domain, mtasts_cb cb,
                                   void *arg)
{
    struct entry *e = find(svc, domain);
    struct mtasts_lookup *l;
    int64_t now = wall_now();
    const char *why = "";

    if (e == NULL && from_store(svc, domain, now, &e, &why) < 0) {
        deliver_store_fault(domain, why, cb, arg);
        return NULL;
    }
    if (e != NULL) {
        const struct mtasts_facts *f = cached_facts(svc, e, now);

        if (f != NULL) {
            cb(arg, f);
            return NULL;
        }
    } else {
        e = create(svc, domain);
    }
    metrics_cache(METRICS_CACHE_STS, METRICS_CACHE_MISS);
    l = xcalloc(1, sizeof(*l));
    l->e = e;
    l->cb = cb;
    l->arg = arg;
    waitlist_push(&e->waiters, &l->link);
    idle_update(e);
    if (e->work != NULL)
        return l;
    return start_work(e) ? NULL : l;
}

void mtasts_cancel(struct mtasts_lookup *l)
{
    struct entry *e;

    if (l == NULL)
        return;
    e = l->e;
    waitlist_remove(&l->link);
    free(l);
    idle_update(e);
}

/*
 * The store's word on a write of domain: once the last one asked for is committed, the
 * policy may be evicted (the store holds it); a failed one keeps it in memory.
 */
static void on_stored(void *arg, const char *domain, int ok)
{
    struct mtasts_svc *svc = arg;
    struct entry *e = find(svc, domain);

    if (e == NULL || !ok || store_queued(svc->store, domain))
        return;
    e->unsaved = 0;
    idle_update(e);
}

/*
 * The sweep: a policy in use is renewed once three quarters of its life have passed even
 * when no lookup comes to trigger the TXT check (RFC 8461 10.2 advises refreshing before
 * expiry); policies that have expired are dropped with their records.
 */
static void on_sweep(uv_timer_t *t)
{
    struct mtasts_svc *svc = t->data;
    int64_t now = wall_now();

    for (size_t b = 0; b < svc->nbuckets; b++) {
        struct entry *e = svc->buckets[b], *next;

        for (; e != NULL; e = next) {
            next = e->hnext;
            if (e->work != NULL || e->waiters != NULL)
                continue;
            if (e->f->state == MTASTS_POLICY) {
                expire(e, now);
                if (e->f->state != MTASTS_POLICY) {
                    entry_free(e);
                    continue;
                }
                if (e->used && e->fail_until <= now &&
                    e->f->expires - now < (e->f->expires - e->f->fetched) / 4) {
                    metrics_refresh(METRICS_REFRESH_RENEWAL);
                    start_work(e);
                }
            } else if (e->fail_until <= now) {
                entry_free(e);
            }
        }
    }
    /* The records of policies no longer cached expire in the store: removed off the loop. */
    if (svc->store != NULL && ++svc->sweeps % STORE_SWEEP_EVERY == 0)
        store_sweep(svc->store, now);
}

struct mtasts_svc *mtasts_svc_create(uv_loop_t *loop, struct resolver *r, struct fetch_svc *fetch,
                                     struct store *store, const struct mtasts_opts *opts)
{
    struct mtasts_svc *svc = xcalloc(1, sizeof(*svc));

    svc->loop = loop;
    svc->r = r;
    svc->fetch = fetch;
    svc->store = store;
    svc->opts = *opts;
    svc->nbuckets = BUCKETS_MIN;
    svc->buckets = xcalloc(svc->nbuckets, sizeof(*svc->buckets));
    if (store != NULL)
        store_set_notify(store, on_stored, svc);
    uv_timer_init(loop, &svc->sweep);
    svc->sweep.data = svc;
    uv_timer_start(&svc->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    uv_unref((uv_handle_t *)&svc->sweep);
    return svc;
}

void mtasts_set_opts(struct mtasts_svc *svc, const struct mtasts_opts *opts)
{
    svc->opts = *opts;
}

static void on_sweep_closed(uv_handle_t *h)
{
    free(h->data);
}

void mtasts_svc_destroy(struct mtasts_svc *svc)
{
    if (svc == NULL)
        return;
    if (svc->store != NULL)
        store_set_notify(svc->store, NULL, NULL);
    for (size_t b = 0; b < svc->nbuckets; b++) {
        struct entry *e;

        while ((e = svc->buckets[b]) != NULL) {
            struct waitlist_link *l;

            while ((l = waitlist_pop(&e->waiters)) != NULL)
                free(waitlist_entry(l, struct mtasts_lookup, link));
            if (e->work) {
                resolver_cancel(e->work->txt_req);
                resolver_cancel(e->work->a_req);
                resolver_cancel(e->work->aaaa_req);
                fetch_cancel(e->work->fetch);
                share_cancel(e->work->share);
                free(e->work);
            }
            svc->buckets[b] = e->hnext;
            facts_free(e->f);
            free(e);
        }
    }
    free(svc->buckets);
    uv_close((uv_handle_t *)&svc->sweep, on_sweep_closed);
}

unsigned long mtasts_fetches_started(const struct mtasts_svc *svc)
{
    return svc->fetches;
}

unsigned long mtasts_cache_entries(const struct mtasts_svc *svc, unsigned long *policies)
{
    *policies = svc->npolicies;
    return svc->nentries;
}
