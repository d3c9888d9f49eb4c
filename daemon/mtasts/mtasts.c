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
#include "mtasts_int.h"

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

/* The hash table starts with this many buckets (a power of two) and doubles past one entry
 * per bucket. */
#define BUCKETS_MIN 1024

/* The text of facts that have none (not allocated, never freed). */
static const char no_text[] = "";

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
void mtasts_set_policy(struct entry *e, const struct sts_policy *pol)
{
    size_t n = sts_policy_size(pol);

    e->f = xrealloc(e->f, offsetof(struct mtasts_facts, policy) + n);
    memcpy(&e->f->policy, pol, n);
}

/* *p becomes a copy of s (cut as the facts' bound cuts it), or no_text for "". */
void mtasts_set_text(const char **p, const char *s, size_t max)
{
    if (*p != no_text)
        free((char *)*p);
    *p = s[0] ? xstrndup(s, max - 1) : no_text;
}

/* The entry's reason line, formatted and cut as MTASTS_WHY_MAX cuts it. */

void mtasts_set_why(struct entry *e, const char *fmt, ...)
{
    char why[WHY_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    mtasts_set_text(&e->f->why, why, WHY_MAX);
}

static void facts_free(struct mtasts_facts *f)
{
    mtasts_set_text(&f->txt, "", MTASTS_TXT_MAX);
    mtasts_set_text(&f->why, "", WHY_MAX);
    free(f);
}

int64_t mtasts_now(void)
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
void mtasts_set_state(struct entry *e, enum mtasts_state state)
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
void mtasts_idle_update(struct entry *e)
{
    int policy_kept = e->f->state == MTASTS_POLICY && (e->svc->store == NULL || e->unsaved);
    int idle = !policy_kept && e->work == NULL && e->waiters == NULL && e->answering == 0;

    if (idle && !e->on_idle)
        lru_push_front(&e->svc->idle, &e->idle);
    else if (!idle && e->on_idle)
        lru_unlink(&e->svc->idle, &e->idle);
    e->on_idle = idle;
}

void mtasts_entry_free(struct entry *e)
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
        mtasts_entry_free(v);
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

int mtasts_has_policy(const struct entry *e, int64_t now)
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
    mtasts_set_state(e, MTASTS_NONE);
    e->f->local_fault = 0;
    mtasts_set_why(e, "the cached policy expired");
    mtasts_idle_update(e);
}

/* rec, from state_dir or the fleet tier, becomes the entry's policy in force. */
void mtasts_take_record(struct entry *e, const struct store_record *rec, const char *from)
{
    mtasts_set_state(e, MTASTS_POLICY);
    mtasts_set_policy(e, &rec->policy);
    snprintf(e->f->id, sizeof(e->f->id), "%s", rec->id);
    e->f->fetched = rec->fetched;
    e->f->expires = rec->expires;
    e->f->local_fault = 0;
    mtasts_set_why(e, "policy id %s from %s, fetched %lld", rec->id, from, (long long)rec->fetched);
    mtasts_idle_update(e);
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
    if (mtasts_has_policy(e, now)) {
        e->used = 1;
        metrics_cache(METRICS_CACHE_STS, METRICS_CACHE_HIT);
        if (e->work == NULL && now - e->checked >= (int64_t)svc->opts.recheck_s) {
            metrics_refresh(METRICS_REFRESH_RECHECK);
            mtasts_start_work(e);
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

    return e != NULL ? cached_facts(svc, e, mtasts_now()) : NULL;
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
        mtasts_take_record(*ep, &rec, "state_dir");
    }
    return rc;
}

/* The store cannot be read: facts that say so (the engine answers TEMP), logged once. */
static void deliver_store_fault(struct mtasts_svc *svc, const char *domain, const char *why,
                                mtasts_cb cb, void *arg)
{
    struct mtasts_facts f;
    char line[MTASTS_WHY_MAX];

    memset(&f, 0, sizeof(f));
    f.state = MTASTS_NONE;
    f.local_fault = 1;
    f.txt = "";
    snprintf(line, sizeof(line), "state_dir cannot be read: %s", why);
    f.why = line;
    log_msg(svc->store_fault ? LOG_DEBUG : LOG_ERR,
            "mta-sts: %s: state_dir cannot be read (%s); answering TEMP for domains not in "
            "memory until it can (logged once)",
            domain, why);
    svc->store_fault++;
    cb(arg, &f);
}

struct mtasts_lookup *mtasts_start(struct mtasts_svc *svc, const char *domain, mtasts_cb cb,
                                   void *arg)
{
    struct entry *e = find(svc, domain);
    struct mtasts_lookup *l;
    int64_t now = mtasts_now();
    const char *why = "";

    if (e == NULL) {
        if (from_store(svc, domain, now, &e, &why) < 0) {
            deliver_store_fault(svc, domain, why, cb, arg);
            return NULL;
        }
        if (svc->store_fault) {
            log_notice("mta-sts: state_dir can be read again (%lu lookups were answered TEMP)",
                       svc->store_fault);
            svc->store_fault = 0;
        }
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
    mtasts_idle_update(e);
    if (e->work != NULL)
        return l;
    return mtasts_start_work(e) ? NULL : l;
}

void mtasts_cancel(struct mtasts_lookup *l)
{
    struct entry *e;

    if (l == NULL)
        return;
    e = l->e;
    waitlist_remove(&l->link);
    free(l);
    mtasts_idle_update(e);
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
    mtasts_idle_update(e);
}

/*
 * The sweep: a policy in use is renewed once three quarters of its life have passed even
 * when no lookup comes to trigger the TXT check (RFC 8461 10.2 advises refreshing before
 * expiry); policies that have expired are dropped with their records.
 */
static void on_sweep(uv_timer_t *t)
{
    struct mtasts_svc *svc = t->data;
    int64_t now = mtasts_now();

    for (size_t b = 0; b < svc->nbuckets; b++) {
        struct entry *e = svc->buckets[b], *next;

        for (; e != NULL; e = next) {
            next = e->hnext;
            if (e->work != NULL || e->waiters != NULL)
                continue;
            if (e->f->state == MTASTS_POLICY) {
                expire(e, now);
                if (e->f->state != MTASTS_POLICY) {
                    mtasts_entry_free(e);
                    continue;
                }
                if (e->used && e->fail_until <= now &&
                    e->f->expires - now < (e->f->expires - e->f->fetched) / 4) {
                    metrics_refresh(METRICS_REFRESH_RENEWAL);
                    mtasts_start_work(e);
                }
            } else if (e->fail_until <= now) {
                mtasts_entry_free(e);
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
    /*
     * A reload is how an administrator says a local fault is fixed (a CA bundle read again):
     * domains waiting out their local-fault backoff are tried at their next lookup.
     */
    for (size_t b = 0; b < svc->nbuckets; b++)
        for (struct entry *e = svc->buckets[b]; e != NULL; e = e->hnext)
            if (e->local_faults > 0 && e->f->state != MTASTS_POLICY)
                e->fail_until = 0;
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
            if (e->work)
                mtasts_work_cancel(e->work);
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
