/*
 * The path of one lookup: map name, key, facts, decision, and the decision's log line.
 * Answers that need no facts (unknown map, parent probe, invalid key) are given here,
 * before any work, as SPEC section 4 requires. Lookups that need DNS wait on a flight,
 * the one DANE resolution of their domain, and on the service's deadline list.
 */
#include "lookup.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cafile.h"
#include "dane.h"
#include "dane_cache.h"
#include "escape.h"
#include "fetch.h"
#include "fleet.h"
#include "hash.h"
#include "log.h"
#include "overrides.h"
#include "probe.h"
#include "resolver.h"
#include "store.h"
#include "waitlist.h"
#include "xalloc.h"

/*
 * The resolutions of one domain that lookups wait on: the DANE walk and the MTA-STS
 * discovery, each started when the first waiter needs it and shared by all later ones.
 */
struct flight {
    struct flight *hnext;
    struct lookup_svc *svc;
    struct dane_lookup *dl;
    struct mtasts_lookup *sl;
    struct rtls_lookup *rl;
    unsigned started, done;        /* ENGINE_NEED_* bits */
    struct waitlist_link *waiters; /* struct waiter */
    int advancing, again;          /* see advance() */
    /* The overrides entry of domain, valid while ov_gen is the service's overrides_gen. */
    unsigned long ov_gen;
    int ov_found;
    struct overrides_hit ov_hit;
    char domain[DOMAIN_MAX + 1];
    /* The facts, each valid once its bit is in done; left uninitialised until then (they
     * are tens of KiB, and a flight is made for every lookup that needs DNS). */
    struct dane_facts dane;
    struct mtasts_facts sts;
    struct rtls_facts rtls;
    struct mtasts_text sts_text; /* the text of sts */
    char dane_why[DANE_WHY_MAX]; /* the reason of dane */
};

struct waiter {
    struct waitlist_link link; /* the flight's waiters */
    struct lru_link dlink;     /* the service's deadline list */
    struct flight *fl;
    enum sockmap_map map;
    uint64_t deadline;
    lookup_done_fn done;
    void *arg;
    char key[300]; /* escaped key, for the log */
};

/* One line per decision at log_decisions' level (key escaped by the caller). */
static void log_decision(const char *key, const struct lookup_result *res)
{
    char answer[SOCKMAP_MAX_TEXT + 16];
    const char *kv[16];
    size_t n = 0;

    if (!log_enabled(log_decisions()))
        return;
    snprintf(answer, sizeof(answer), "%s%s%s", sockmap_status_word(res->ans.status),
             res->ans.text[0] ? " " : "", res->ans.text);
    kv[n++] = "map";
    kv[n++] = res->map == SOCKMAP_MAP_UNKNOWN ? "unknown" : sockmap_map_name(res->map);
    kv[n++] = "key";
    kv[n++] = key;
    kv[n++] = "domain";
    kv[n++] = res->domain[0] ? res->domain : NULL;
    kv[n++] = "answer";
    kv[n++] = answer;
    kv[n++] = "rule";
    kv[n++] = res->ans.rule;
    kv[n++] = "detail";
    kv[n++] = res->detail;
    kv[n++] = "dane";
    kv[n++] = res->facts.dane ? dane_state_name(res->facts.dane->state) : NULL;
    kv[n++] = "sts";
    kv[n++] = res->facts.sts ? (res->facts.sts->state == MTASTS_POLICY
                                    ? sts_mode_name(res->facts.sts->policy.mode)
                                    : "none")
                             : NULL;
    log_fields(log_decisions(), "lookup", kv, n / 2);
}

/* Local facts: the service's settings and the overrides entry hit (NULL: none). */
static void local_facts(struct lookup_svc *svc, struct lookup_result *res,
                        const struct overrides_hit *hit)
{
    memset(&res->facts, 0, sizeof(res->facts));
    res->facts.domain = res->domain;
    res->facts.sts_flags = svc->sts_flags;
    res->facts.rtls_probe = svc->rtls_probe;
    if (hit != NULL) {
        res->facts.has_override = 1;
        res->facts.override_key = hit->key;
        res->facts.override_value = hit->value;
        res->facts.override_level = hit->level;
        res->detail = hit->key;
    }
}

/*
 * The overrides entry of a flight's domain, found again only when a reload has replaced the
 * table since (its pointers point into the table that was in force when it was found).
 */
static const struct overrides_hit *flight_override(struct lookup_svc *svc, struct flight *fl)
{
    if (fl->ov_gen != svc->overrides_gen) {
        fl->ov_found = overrides_find(svc->overrides, fl->domain, &fl->ov_hit);
        fl->ov_gen = svc->overrides_gen;
    }
    return fl->ov_found ? &fl->ov_hit : NULL;
}

/* Deadline list: newest waiter at the head, so the tail has the earliest deadline. */

static void on_deadline(uv_timer_t *t);

static struct waiter *earliest(struct lookup_svc *svc)
{
    return lru_entry(svc->deadlines.tail, struct waiter, dlink);
}

static void arm(struct lookup_svc *svc)
{
    uint64_t now = uv_now(svc->loop);
    struct waiter *w = earliest(svc);

    if (w == NULL) {
        uv_timer_stop(&svc->timer);
        return;
    }
    uv_timer_start(&svc->timer, on_deadline, w->deadline > now ? w->deadline - now : 0, 0);
}

static void unlink_waiter(struct lookup_svc *svc, struct waiter *w)
{
    waitlist_remove(&w->link);
    lru_unlink(&svc->deadlines, &w->dlink);
    svc->lookups_waiting--;
}

/* The facts a waiter's decision sees: local ones now, and what its flight has resolved. */
static void waiter_facts(struct lookup_svc *svc, const struct waiter *w, struct lookup_result *res)
{
    res->map = w->map;
    memcpy(res->domain, w->fl->domain, strlen(w->fl->domain) + 1); /* both DOMAIN_MAX + 1 */
    res->detail = NULL;
    res->ans.text[0] = '\0';
    local_facts(svc, res, flight_override(svc, w->fl));
    res->facts.dane = (w->fl->done & ENGINE_NEED_DANE) ? &w->fl->dane : NULL;
    res->facts.sts = (w->fl->done & ENGINE_NEED_STS) ? &w->fl->sts : NULL;
    res->facts.rtls = (w->fl->done & ENGINE_NEED_PROBE) ? &w->fl->rtls : NULL;
}

static void finish_waiter(struct lookup_svc *svc, struct waiter *w, const char *temp_reason)
{
    struct lookup_result res;

    waiter_facts(svc, w, &res);
    if (temp_reason != NULL) {
        res.ans.status = SOCKMAP_TEMP;
        res.ans.rule = "lookup/timeout";
        snprintf(res.ans.text, sizeof(res.ans.text), "%s", temp_reason);
    } else {
        engine_decide(w->map, &res.facts, &res.ans);
    }
    log_decision(w->key, &res);
    w->done(w->arg, &res);
}

static void flight_free(struct lookup_svc *svc, struct flight *fl)
{
    struct flight **pp = &svc->flights[hash_string(fl->domain) & (svc->nbuckets - 1)];

    /* Nobody waits any more; the resolver and MTA-STS work goes on and fills the caches. */
    dane_cancel(fl->dl);
    mtasts_cancel(fl->sl);
    rtls_cancel(fl->rl);

    while (*pp != fl)
        pp = &(*pp)->hnext;
    *pp = fl->hnext;
    free(fl);
}

static void advance(struct flight *fl);

/*
 * A flight nobody waits for any more (its last waiter timed out). The DANE walk and the
 * MTA-STS discovery go on and fill their caches, each bounded by its own timeouts, and
 * their completion frees the flight (advance()). The probe wait stops: rtls_cancel() drops
 * the flight's probes still queued (a running one still fills the probe cache), and a later
 * waiter starts it again. A flight with nothing left pending goes now, as no completion
 * would come to free it.
 */
static void abandon(struct lookup_svc *svc, struct flight *fl)
{
    if (fl->rl != NULL) {
        rtls_cancel(fl->rl);
        fl->rl = NULL;
        fl->started &= ~(unsigned)ENGINE_NEED_PROBE;
    }
    if (fl->dl == NULL && fl->sl == NULL && fl->rl == NULL)
        flight_free(svc, fl);
}

static void on_deadline(uv_timer_t *t)
{
    struct lookup_svc *svc = t->data;
    uint64_t now = uv_now(svc->loop);
    struct waiter *w;
    char reason[128];

    snprintf(reason, sizeof(reason), "DNS lookups did not finish within lookup_timeout (%u ms)",
             svc->timeout_ms);
    while ((w = earliest(svc)) != NULL && w->deadline <= now) {
        struct flight *fl = w->fl;
        int nested = fl->advancing;

        /*
         * The flight goes on without this waiter. While the answer's callback runs the
         * flight is held as advance() holds it: a lookup of the same domain started from
         * the callback joins it and only marks it for another pass, so it cannot be freed
         * under us. Then that pass runs, or the flight is abandoned when nobody is left.
         */
        unlink_waiter(svc, w);
        fl->advancing = 1;
        finish_waiter(svc, w, reason);
        free(w);
        fl->advancing = nested;
        if (nested)
            continue; /* the pass on the stack sees to it */
        if (fl->waiters != NULL) {
            if (fl->again)
                advance(fl);
        } else {
            abandon(svc, fl);
        }
    }
    arm(svc);
}

static void on_dane(void *arg, const struct dane_facts *f);
static void on_sts(void *arg, const struct mtasts_facts *f);
static void on_rtls(void *arg, const struct rtls_facts *f);

/*
 * Answer every waiter whose decision needs nothing more, start what the others need, and
 * free the flight when nobody waits. Re-entry (a resolution that completes inside its own
 * start, an answer callback that starts another lookup of this domain) only marks the
 * flight for another pass, so the waiter list is never changed under a running pass.
 */
static void advance(struct flight *fl)
{
    struct lookup_svc *svc = fl->svc;

    if (fl->advancing) {
        fl->again = 1;
        return;
    }
    fl->advancing = 1;
    do {
        struct waitlist_link *l, *next;
        unsigned want = 0;

        fl->again = 0;
        for (l = fl->waiters; l != NULL; l = next) {
            struct waiter *w = waitlist_entry(l, struct waiter, link);
            struct lookup_result res;
            unsigned need;

            next = l->next;
            waiter_facts(svc, w, &res);
            need = engine_needs(w->map, &res.facts);
            if (need == 0) {
                unlink_waiter(svc, w);
                finish_waiter(svc, w, NULL);
                free(w);
            } else {
                want |= need;
            }
        }
        /* Start each resolution the first time a waiter needs it. */
        want &= ~fl->started;
        if (want & ENGINE_NEED_DANE) {
            fl->started |= ENGINE_NEED_DANE;
            fl->dl = dane_start(svc->resolver, svc->dane_cache, fl->domain, on_dane, fl);
            fl->again = 1;
        }
        if (want & ENGINE_NEED_STS) {
            fl->started |= ENGINE_NEED_STS;
            fl->sl = mtasts_start(svc->mtasts, fl->domain, on_sts, fl);
            fl->again = 1;
        }
        /* The probe follows DANE (whose validated hosts and TLSA records it uses). */
        if (want & ENGINE_NEED_PROBE) {
            fl->started |= ENGINE_NEED_PROBE;
            fl->rl = rtls_start(svc->resolver, svc->probe, fl->domain,
                                (fl->done & ENGINE_NEED_DANE) ? &fl->dane : NULL, on_rtls, fl);
            fl->again = 1;
        }
    } while (fl->again);
    fl->advancing = 0;
    if (fl->waiters == NULL) {
        flight_free(svc, fl);
        arm(svc);
    }
}

static void on_dane(void *arg, const struct dane_facts *f)
{
    struct flight *fl = arg;

    fl->dl = NULL;
    dane_facts_copy(&fl->dane, f, fl->dane_why);
    fl->done |= ENGINE_NEED_DANE;
    advance(fl);
}

static void on_sts(void *arg, const struct mtasts_facts *f)
{
    struct flight *fl = arg;

    fl->sl = NULL;
    mtasts_facts_copy(&fl->sts, f, &fl->sts_text);
    fl->done |= ENGINE_NEED_STS;
    advance(fl);
}

static void on_rtls(void *arg, const struct rtls_facts *f)
{
    struct flight *fl = arg;

    fl->rl = NULL;
    fl->rtls = *f;
    fl->done |= ENGINE_NEED_PROBE;
    advance(fl);
}

/*
 * The hot path: the facts the decision needs, when the caches hold them now (the DANE facts
 * of the domain, then, where DANE does not decide, its MTA-STS facts), with no flight, no
 * allocation and no copy. 1 when they are enough to decide; 0 sends the lookup to a flight,
 * which asks again. REQUIRETLS decisions that wait for the MX probe always take a flight.
 * The facts are the caches' own: the decision is made before control returns to the loop.
 */
static int cached_facts(struct lookup_svc *svc, struct lookup_result *res, unsigned need)
{
    if (svc->rtls_probe && res->map != SOCKMAP_MAP_POLICY)
        return 0;
    if (need & ENGINE_NEED_DANE) {
        /* The cache's own facts: valid until a DANE walk ends, which none does below. */
        res->facts.dane = dane_cache_get(svc->dane_cache, res->domain);
        if (res->facts.dane == NULL)
            return 0;
        need = engine_needs(res->map, &res->facts);
    }
    if (need & ENGINE_NEED_STS) {
        res->facts.sts = mtasts_cached(svc->mtasts, res->domain);
        if (res->facts.sts == NULL)
            return 0;
        need = engine_needs(res->map, &res->facts);
    }
    return need == 0;
}

static void wait_for_facts(struct lookup_svc *svc, struct lookup_result *res, const char *key,
                           lookup_done_fn done, void *arg)
{
    size_t b = hash_string(res->domain) & (svc->nbuckets - 1);
    struct flight *fl = svc->flights[b];
    struct waiter *w = xcalloc(1, sizeof(*w));

    while (fl && strcmp(fl->domain, res->domain) != 0)
        fl = fl->hnext;
    w->map = res->map;
    w->done = done;
    w->arg = arg;
    w->deadline = uv_now(svc->loop) + svc->timeout_ms;
    snprintf(w->key, sizeof(w->key), "%s", key);

    /* The deadline list is in arrival order, which is deadline order. */
    lru_push_front(&svc->deadlines, &w->dlink);
    svc->lookups_waiting++;
    if (earliest(svc) == w)
        arm(svc);

    if (fl == NULL) {
        fl = xmalloc(sizeof(*fl));
        memset(fl, 0, offsetof(struct flight, dane));
        fl->svc = svc;
        snprintf(fl->domain, sizeof(fl->domain), "%s", res->domain);
        /* The entry lookup_start() found, for the table in force now. */
        fl->ov_gen = svc->overrides_gen;
        fl->ov_found = res->facts.has_override;
        fl->ov_hit.key = res->facts.override_key;
        fl->ov_hit.value = res->facts.override_value;
        fl->ov_hit.level = res->facts.override_level;
        fl->hnext = svc->flights[b];
        svc->flights[b] = fl;
    }
    /* SPEC 7: concurrent lookups of one domain share one resolution. */
    w->fl = fl;
    waitlist_push(&fl->waiters, &w->link);
    advance(fl);
}

void lookup_start(struct lookup_svc *svc, const struct sockmap_request *req, lookup_done_fn done,
                  void *arg)
{
    struct lookup_result res;
    struct overrides_hit hit;
    const char *why = NULL, *kstart;
    size_t klen;
    char key[300];
    unsigned need;
    int d;

    /* Not a memset: the answer text alone is 4 KiB, and this is the hot path. */
    res.domain[0] = '\0';
    res.ans.text[0] = '\0';
    res.detail = NULL;
    memset(&res.facts, 0, sizeof(res.facts));
    res.map = sockmap_map_from_name(req->name, req->namelen);
    kstart = req->key;
    klen = req->keylen;
    if (log_enabled(log_decisions()))
        escape_log(key, sizeof(key), req->key, req->keylen);
    else
        key[0] = '\0';

    /* SPEC 4: an unknown map name is a configuration error on the client's side. */
    if (res.map == SOCKMAP_MAP_UNKNOWN) {
        char name[SOCKMAP_MAX_NAME * 4 + 4];

        escape_log(name, sizeof(name), req->name, req->namelen);
        res.ans.status = SOCKMAP_PERM;
        res.ans.rule = "request/unknown-map";
        snprintf(res.ans.text, sizeof(res.ans.text), "unknown map %s", name);
        goto answer;
    }

    /*
     * Postfix queries a socketmap access table (check_recipient_access) with the whole
     * address only, as it does pattern tables; the decision is the domain's.
     */
    if (res.map == SOCKMAP_MAP_REQUIRETLS_ACCESS) {
        const char *at = memrchr(req->key, '@', req->keylen);

        if (at != NULL) {
            kstart = at + 1;
            klen = req->keylen - (size_t)(kstart - req->key);
        }
    }

    /* SPEC 4: parent-domain probes and keys that are not domains get "NOTFOUND " at once. */
    d = domain_normalize(kstart, klen, res.domain, &why);
    if (d != DOMAIN_OK) {
        res.domain[0] = '\0';
        res.ans.status = SOCKMAP_NOTFOUND;
        res.ans.rule = d == DOMAIN_PARENT ? "request/parent-probe" : "request/not-a-domain";
        res.detail = d == DOMAIN_PARENT ? "parent-domain probe keys are not looked up" : why;
        goto answer;
    }

    local_facts(svc, &res, overrides_find(svc->overrides, res.domain, &hit) ? &hit : NULL);
    need = engine_needs(res.map, &res.facts);
    if (need != 0 && !cached_facts(svc, &res, need)) {
        res.facts.dane = NULL;
        res.facts.sts = NULL;
        wait_for_facts(svc, &res, key, done, arg);
        return;
    }
    engine_decide(res.map, &res.facts, &res.ans);

answer:
    log_decision(key, &res);
    done(arg, &res);
}

void lookup_set_overrides(struct lookup_svc *svc, struct overrides *ov)
{
    overrides_free(svc->overrides);
    svc->overrides = ov;
    svc->overrides_gen++;
}

void lookup_svc_init(struct lookup_svc *svc, uv_loop_t *loop)
{
    memset(svc, 0, sizeof(*svc));
    svc->loop = loop;
    svc->overrides_gen = 1; /* a new flight's 0 means "not looked up yet" */
    svc->nbuckets = 1024;
    svc->flights = xcalloc(svc->nbuckets, sizeof(*svc->flights));
    uv_timer_init(loop, &svc->timer);
    svc->timer.data = svc;
}

static void on_timer_closed(uv_handle_t *h)
{
    (void)h;
}

/* One CA bundle for key (path "" : the system's); the same file as same is shared. */
static int load_ca(struct cafile **slot, const char *key, const char *path, struct cafile *same,
                   char *err, size_t errlen)
{
    const char *file = path[0] ? path : CAFILE_SYSTEM;
    char why[400];

    if (same != NULL && strcmp(cafile_path(same), file) == 0) {
        *slot = cafile_ref(same);
        return 0;
    }
    *slot = cafile_load(file, why, sizeof(why));
    if (*slot == NULL) {
        snprintf(err, errlen, "%s: %s", key, why);
        return -1;
    }
    return 0;
}

/* Said once both are in, so a bad second file is the only line a failed start-up prints. */
static void log_ca(const char *key, const struct cafile *ca)
{
    if (cafile_unparsed(ca) > 0)
        log_warning("%s: %u CA certificates from %s; %u more could not be parsed", key,
                    cafile_count(ca), cafile_path(ca), cafile_unparsed(ca));
    else
        log_info("%s: %u CA certificates from %s", key, cafile_count(ca), cafile_path(ca));
}

int lookup_svc_open(struct lookup_svc *svc, const struct config *cfg, uid_t owner, gid_t group,
                    char *err, size_t errlen)
{
    struct fetch_opts fo = {.ca = NULL,
                            .connect_timeout_ms = cfg->sts_connect_timeout_ms,
                            .total_timeout_ms = cfg->sts_fetch_timeout_ms,
                            .max_body = STS_BODY_MAX,
                            .port = 443};
    struct mtasts_opts mo;

    lookup_apply_config(svc, cfg);
    /*
     * The CA bundles are read now, while the daemon may still be root, and kept in memory:
     * a file readable by root only stays usable after the switch to user (issue 10 s. 3).
     */
    if (load_ca(&svc->sts_ca, "sts_ca_file", cfg->sts_ca_file, NULL, err, errlen) < 0 ||
        load_ca(&svc->probe_ca, "probe_ca_file", cfg->probe_ca_file, svc->sts_ca, err, errlen) < 0)
        return -1;
    log_ca("sts_ca_file", svc->sts_ca);
    log_ca("probe_ca_file", svc->probe_ca);
    fo.ca = svc->sts_ca;
    svc->resolver = resolver_create(svc->loop, cfg, err, errlen);
    if (svc->resolver == NULL)
        return -1;
    svc->dane_cache = dane_cache_create(svc->resolver, cfg->dane_cache_size);
    svc->fetch = fetch_svc_create(svc->loop, &fo, err, errlen);
    if (svc->fetch == NULL)
        return -1;
    if (cfg->state_dir[0] != '\0') {
        svc->store = store_open(svc->loop, cfg->state_dir, owner, group, STORE_SHARED,
                                (uint64_t)cfg->state_max_size_mb << 20, err, errlen);
        if (svc->store == NULL)
            return -1;
    }
    {
        struct probe_opts po = {.ca = svc->probe_ca,
                                .helo_name = cfg->probe_helo_name,
                                .timeout_ms = cfg->probe_timeout_ms,
                                .ttl_ms = cfg->probe_ttl_ms,
                                .max_concurrent = cfg->probe_max_concurrent,
                                .port = 25};

        svc->probe = probe_svc_create(svc->loop, &po, err, errlen);
        if (svc->probe == NULL)
            return -1;
    }
    /* The fleet tier reads redis_auth_file now, before the privilege drop. */
    if (fleet_create(svc->loop, cfg, &svc->fleet, err, errlen) < 0)
        return -1;
    lookup_mtasts_opts(cfg, &mo);
    svc->mtasts = mtasts_svc_create(svc->loop, svc->resolver, svc->fetch, svc->store, &mo);
    mtasts_set_fleet(svc->mtasts, svc->fleet);
    probe_set_fleet(svc->probe, svc->fleet);
    return 0;
}

int lookup_svc_load(struct lookup_svc *svc, const struct config *cfg, char *err, size_t errlen)
{
    if (svc->store == NULL || svc->mtasts == NULL)
        return 0;
    if (store_start(svc->store, (int64_t)time(NULL), err, errlen) < 0)
        return -1;
    log_info("state_dir %s: %zu MTA-STS policies stored, read as lookups ask for them",
             cfg->state_dir, store_count(svc->store));
    return 0;
}

void lookup_set_ca(struct lookup_svc *svc, struct cafile *sts, struct cafile *probe)
{
    if (sts != NULL) {
        cafile_ref(sts);
        cafile_unref(svc->sts_ca);
        svc->sts_ca = sts;
        if (svc->fetch)
            fetch_set_ca(svc->fetch, sts);
    }
    if (probe != NULL) {
        cafile_ref(probe);
        cafile_unref(svc->probe_ca);
        svc->probe_ca = probe;
        if (svc->probe)
            probe_set_ca(svc->probe, probe);
    }
}

void lookup_apply_config(struct lookup_svc *svc, const struct config *cfg)
{
    struct mtasts_opts mo;

    svc->timeout_ms = cfg->lookup_timeout_ms;
    svc->drain_timeout_ms = cfg->drain_timeout_ms;
    svc->rtls_probe = cfg->requiretls_probe;
    svc->sts_flags = (cfg->sts_enforce_testing ? ENGINE_STS_ENFORCE_TESTING : 0) |
                     (cfg->sts_postfix_attributes ? ENGINE_STS_ATTRIBUTES : 0);
    lookup_mtasts_opts(cfg, &mo);
    if (svc->mtasts)
        mtasts_set_opts(svc->mtasts, &mo);
    /* A larger state_max_size is how a full store is fixed without a restart. */
    if (svc->store)
        store_set_max_size(svc->store, (uint64_t)cfg->state_max_size_mb << 20);
}

void lookup_mtasts_opts(const struct config *cfg, struct mtasts_opts *mo)
{
    mo->allow_private = cfg->sts_allow_private;
    mo->fail_ttl_s = cfg->sts_fail_ttl_ms / 1000;
    mo->recheck_s = cfg->sts_recheck_ms / 1000;
    mo->cache_max = cfg->sts_cache_size;
    /* The policy host's addresses (A and AAAA at once) and the fetch, and a second more. */
    mo->share_lock_ms = cfg->dns_timeout_ms + cfg->sts_fetch_timeout_ms + 1000;
    /*
     * A waiter leaves room in lookup_timeout for a fetch of its own (the policy host's
     * addresses and the fetch) when the timeouts allow, and at least half of it otherwise.
     */
    unsigned own = cfg->dns_timeout_ms + cfg->sts_fetch_timeout_ms;
    unsigned half = cfg->lookup_timeout_ms / 2;

    mo->share_wait_ms = cfg->lookup_timeout_ms > own && cfg->lookup_timeout_ms - own > half
                            ? cfg->lookup_timeout_ms - own
                            : half;
}

void lookup_svc_close(struct lookup_svc *svc)
{
    struct waiter *w;

    if (svc->flights == NULL)
        return;
    while ((w = earliest(svc)) != NULL) {
        unlink_waiter(svc, w);
        finish_waiter(svc, w, "the daemon is shutting down");
        free(w);
    }
    for (size_t b = 0; b < svc->nbuckets; b++)
        while (svc->flights[b])
            flight_free(svc, svc->flights[b]);
    free(svc->flights);
    svc->flights = NULL;
    /* Users before what they use: MTA-STS work holds resolver and fetch requests. */
    mtasts_svc_destroy(svc->mtasts);
    svc->mtasts = NULL;
    fetch_svc_destroy(svc->fetch);
    svc->fetch = NULL;
    probe_svc_destroy(svc->probe);
    svc->probe = NULL;
    fleet_destroy(svc->fleet);
    svc->fleet = NULL;
    store_close(svc->store, svc->drain_timeout_ms);
    svc->store = NULL;
    /* After the flights, whose DANE walks write to it. */
    dane_cache_destroy(svc->dane_cache);
    svc->dane_cache = NULL;
    resolver_destroy(svc->resolver);
    svc->resolver = NULL;
    cafile_unref(svc->sts_ca);
    svc->sts_ca = NULL;
    cafile_unref(svc->probe_ca);
    svc->probe_ca = NULL;
    uv_close((uv_handle_t *)&svc->timer, on_timer_closed);
}
