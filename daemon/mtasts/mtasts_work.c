/*
 * One MTA-STS entry's work (RFC 8461): discovery (the TXT record, 3.1), the policy host's
 * addresses (each vetted: SPEC 7), the fetch (3.3) and the parse (3.2), and with a fleet
 * tier its read on a miss and its lock around the fetch. The cache it works for is
 * mtasts.c; mtasts_work_done() hands the outcome back to the entry's waiters.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "dns.h"
#include "escape.h"
#include "fetch.h"
#include "log.h"
#include "metrics.h"
#include "mtasts.h"
#include "mtasts_int.h"
#include "mtasts_share.h"
#include "resolver.h"
#include "store.h"
#include "xalloc.h"

/* Policy host addresses pinned for one fetch. */
#define MAX_ADDRS 16
/* RFC 8461 3.3: the policy lives at this path on the mta-sts host. */
#define POLICY_PATH "/.well-known/mta-sts.txt"
/* A local fault is tried again after 1 << n seconds, n up to this (4 s). */
#define LOCAL_RETRY_SHIFT_MAX 2
/* TXT records longer than this are not STS records (the grammar's fields are short). */
#define TXT_MAX 1024

struct work {
    struct entry *e;
    struct resolver_req *txt_req, *a_req, *aaaa_req;
    struct fetch_req *fetch;
    struct share_req *share;   /* fleet tier: a read or a claim in flight */
    int locked;                /* fleet tier: this daemon holds the domain's fetch lock */
    struct share_lease *lease; /* fleet tier: the lock's renewal while this daemon fetches */
    int a_done, aaaa_done;
    char id[STS_ID_MAX + 1];
    char txt[256];
    char host[DOMAIN_MAX + 16];
    char addrs[MAX_ADDRS][INET6_ADDRSTRLEN];
    size_t naddrs;
    char refused[160]; /* the first address refused, and why */
    const char *addr_why;
    int ended_local;      /* no_new_policy() with END_LOCAL: the local fault goes on */
    int addr_local;       /* an address lookup failed on our side (resolver_answer.local_fault) */
    uint64_t txt_expires; /* the TXT answer's resolver_answer.expires */
};

void mtasts_work_done(struct work *w)
{
    struct entry *e = w->e;
    struct mtasts_svc *svc = e->svc;
    struct waitlist_link *list, *ln;

    /* The work went further than our own fault: say so once, and start the backoff anew. */
    if (!w->ended_local && e->local_faults > 0) {
        log_notice("mta-sts: %s: the local fault is over (%u attempt%s failed on our side)",
                   e->domain, e->local_faults, e->local_faults == 1 ? "" : "s");
        e->local_faults = 0;
    }
    /* The TXT record last seen stays with the entry, for query output. */
    mtasts_set_text(&e->f->txt, w->txt, MTASTS_TXT_MAX);
    /* Fleet: a fetch that gave no policy lets the next daemon try. */
    share_lease_stop(w->lease);
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
     * inner mtasts_work_done() left the entry alone, and the outermost one decides for both.
     */
    if (--e->answering > 0)
        return;
    /* Nothing worth keeping: no policy and no failure to remember. */
    if (e->f->state != MTASTS_POLICY && e->fail_until <= mtasts_now() && e->waiters == NULL &&
        e->work == NULL)
        mtasts_entry_free(e);
    else
        mtasts_idle_update(e);
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
    int64_t now = mtasts_now();
    int local = (how & END_LOCAL) != 0;
    char why[WHY_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (how & END_REMEMBER)
        e->fail_until = now + e->svc->opts.fail_ttl_s;
    if (local) {
        /*
         * Not the domain's failure, so not remembered for sts_fail_ttl; but not tried again
         * at every lookup either while the fault lasts: 1, 2, then every 4 seconds, the
         * lookups meanwhile answered TEMP from the entry (a fetch per lookup would only
         * feed the shortage).
         */
        unsigned n =
            e->local_faults < LOCAL_RETRY_SHIFT_MAX ? e->local_faults : LOCAL_RETRY_SHIFT_MAX;

        e->fail_until = now + (1 << n);
        if (e->local_faults < 255)
            e->local_faults++;
        w->ended_local = 1;
    }
    if ((how & END_TXT) && !mtasts_has_policy(e, now)) {
        uint64_t now_ms = resolver_now(e->svc->r);

        /* Whole seconds, rounded down: never past the answer's own expiry. */
        if (w->txt_expires > now_ms)
            e->fail_until = now + (int64_t)((w->txt_expires - now_ms) / 1000);
    }
    if (mtasts_has_policy(e, now)) {
        /* The next background check of the TXT id waits for sts_recheck again. */
        e->checked = now;
        e->f->local_fault = 0;
        if (local)
            log_msg(e->local_faults == 1 ? LOG_ERR : LOG_DEBUG,
                    "mta-sts: %s: %s; the cached policy (id %s) stays in force", e->domain, why,
                    e->f->id);
        else
            log_info("mta-sts: %s: %s; the cached policy (id %s) stays in force until it "
                     "expires in %llds (RFC 8461 5.1)",
                     e->domain, why, e->f->id, (long long)(e->f->expires - now));
    } else {
        if (!local)
            e->checked = now;
        e->f->local_fault = local;
        mtasts_set_state(e, MTASTS_NONE);
        mtasts_set_text(&e->f->why, why, WHY_MAX);
        /* One line when the fault starts for the domain, not one per attempt. */
        if (local)
            log_msg(e->local_faults == 1 ? LOG_ERR : LOG_DEBUG,
                    "mta-sts: %s: %s; answering TEMP until it works again (tried again "
                    "after 1, 2, then every 4 s; logged once)",
                    e->domain, why);
        else
            log_info("mta-sts: %s: no policy: %s", e->domain, why);
    }
    mtasts_work_done(w);
}

static void on_fetch(void *arg, const struct fetch_result *res)
{
    struct work *w = arg;
    struct entry *e = w->e;
    struct mtasts_svc *svc = e->svc;
    struct sts_policy pol;
    const char *why = NULL;
    int64_t now = mtasts_now();

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
    mtasts_set_state(e, MTASTS_POLICY);
    mtasts_set_policy(e, &pol);
    snprintf(e->f->id, sizeof(e->f->id), "%s", w->id);
    e->f->fetched = now;
    /* Cached at least an hour, so a max_age of 0 is not a fetch per lookup (sts.h). */
    e->f->expires = now + sts_cache_lifetime(pol.max_age);
    mtasts_set_why(e, "policy id %s fetched from %s", w->id, w->host);
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
    mtasts_work_done(w);
}

static void start_fetch(struct work *w)
{
    struct mtasts_svc *svc = w->e->svc;
    const char *addrs[MAX_ADDRS];

    if (w->naddrs == 0) {
        if (w->addr_local)
            no_new_policy(w, END_LOCAL, "policy host %s: address lookup failed: %s", w->host,
                          w->addr_why);
        else if (w->refused[0])
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
        w->addr_local |= ans->local_fault;
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
    int64_t now = mtasts_now();

    w->txt_req = NULL;
    w->txt_expires = ans->expires;
    switch (ans->info.outcome) {
    case DNS_OUT_NODATA:
    case DNS_OUT_NXDOMAIN:
        no_new_policy(w, END_TXT, "no _mta-sts TXT record");
        return;
    case DNS_OUT_BOGUS:
    case DNS_OUT_FAILED:
        /* No socket for the query: our fault, not the domain's "no policy" (TEMP). */
        no_new_policy(w, ans->local_fault ? END_LOCAL : END_REMEMBER,
                      "_mta-sts TXT lookup failed: %s", ans->info.why);
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
    if (mtasts_has_policy(e, now) && strcmp(e->f->id, w->id) == 0 &&
        now < e->f->fetched + (e->f->expires - e->f->fetched) / 2) {
        e->checked = now;
        mtasts_work_done(w);
        return;
    }
    if (mtasts_has_policy(e, now))
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
        if (w->locked)
            w->lease = share_lease_start(e->svc->fleet, e->domain, e->svc->opts.share_lock_ms);
        if (claim)
            resolve_host(w);
        else
            discover(w);
        return;
    }
    if (e->svc->store)
        e->unsaved = 1; /* kept in memory until state_dir has it too (on_stored) */
    mtasts_take_record(e, rec, "the fleet");
    log_info("mta-sts: %s: policy id %s from the fleet, fetched %lld", e->domain, rec->id,
             (long long)rec->fetched);
    if (e->svc->store)
        store_put(e->svc->store, rec);
    e->checked = claim ? mtasts_now() : 0;
    e->fail_until = 0;
    e->used = 0;
    mtasts_work_done(w);
}

/* Before a fetch: with a fleet tier, take its lock or wait for the daemon that has it. */
static void claim_or_fetch(struct work *w)
{
    struct mtasts_svc *svc = w->e->svc;

    if (svc->fleet)
        w->share =
            share_claim(svc->fleet, w->e->domain, w->id, svc->opts.share_wait_ms, on_share, w);
    if (w->share == NULL)
        resolve_host(w);
}

void mtasts_set_fleet(struct mtasts_svc *svc, struct fleet *f)
{
    svc->fleet = f;
}

/* ---- End of the fleet tier hooks. ---- */

int mtasts_start_work(struct entry *e)
{
    struct mtasts_svc *svc = e->svc;
    unsigned long before = svc->completions;
    struct work *w = xcalloc(1, sizeof(*w));

    w->e = e;
    e->work = w;
    mtasts_idle_update(e);
    /* A local miss asks the fleet tier first (never for a policy in force: that is a recheck). */
    if (svc->fleet && !mtasts_has_policy(e, mtasts_now()))
        w->share = share_read(svc->fleet, e->domain, on_share, w);
    if (w->share == NULL)
        discover(w);
    return svc->completions != before;
}

void mtasts_work_cancel(struct work *w)
{
    resolver_cancel(w->txt_req);
    resolver_cancel(w->a_req);
    resolver_cancel(w->aaaa_req);
    fetch_cancel(w->fetch);
    share_cancel(w->share);
    share_lease_stop(w->lease);
    free(w);
}
