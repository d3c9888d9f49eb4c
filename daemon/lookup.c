/*
 * The path of one lookup: map name, key, facts, decision, and the decision's log line.
 * Answers that need no facts (unknown map, parent probe, invalid key) are given here,
 * before any work, as SPEC section 4 requires. Lookups that need DNS wait on a flight,
 * the one DANE resolution of their domain, and on the service's deadline list.
 */
#include "lookup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dane.h"
#include "escape.h"
#include "log.h"
#include "overrides.h"
#include "xalloc.h"

struct flight {
    struct flight *hnext;
    struct lookup_svc *svc;
    struct dane_lookup *dl;
    struct waiter *waiters;
    int resolving; /* inside dane_start() */
    char domain[DOMAIN_MAX + 1];
};

struct waiter {
    struct waiter *next, *prev;   /* the flight's waiters */
    struct waiter *dnext, *dprev; /* the deadline list */
    struct flight *fl;
    enum engine_map map;
    uint64_t deadline;
    lookup_done_fn done;
    void *arg;
    char key[300]; /* escaped key, for the log */
};

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static void log_decision(const char *key, const struct lookup_result *res)
{
    if (!log_enabled(LOG_DEBUG))
        return;
    log_debug("lookup map=%s key=%s answer=\"%s%s%s\" rule=%s%s%s%s%s", engine_map_name(res->map),
              key, sockmap_status_word(res->ans.status), res->ans.text[0] ? " " : "", res->ans.text,
              res->ans.rule, res->detail ? " detail=" : "", res->detail ? res->detail : "",
              res->facts.dane ? " dane=" : "",
              res->facts.dane ? dane_state_name(res->facts.dane->state) : "");
}

/* Local facts: the overrides table as it is now (reloads swap it whole). */
static void local_facts(struct lookup_svc *svc, struct lookup_result *res)
{
    struct overrides_hit hit;

    memset(&res->facts, 0, sizeof(res->facts));
    res->facts.domain = res->domain;
    if (overrides_find(svc->overrides, res->domain, &hit)) {
        res->facts.has_override = 1;
        res->facts.override_key = hit.key;
        res->facts.override_value = hit.value;
        res->facts.override_level = hit.level;
        res->detail = hit.key;
    }
}

/* Deadline list. */

static void on_deadline(uv_timer_t *t);

static void arm(struct lookup_svc *svc)
{
    uint64_t now = uv_now(svc->loop);

    if (svc->deadline_head == NULL) {
        uv_timer_stop(&svc->timer);
        return;
    }
    uv_timer_start(&svc->timer, on_deadline,
                   svc->deadline_head->deadline > now ? svc->deadline_head->deadline - now : 0, 0);
}

static void unlink_waiter(struct lookup_svc *svc, struct waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        w->fl->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    if (w->dprev)
        w->dprev->dnext = w->dnext;
    else
        svc->deadline_head = w->dnext;
    if (w->dnext)
        w->dnext->dprev = w->dprev;
    else
        svc->deadline_tail = w->dprev;
    svc->lookups_waiting--;
}

static void finish_waiter(struct lookup_svc *svc, struct waiter *w, const struct dane_facts *dane,
                          const char *temp_reason)
{
    struct lookup_result res;

    res.map = w->map;
    snprintf(res.domain, sizeof(res.domain), "%s", w->fl->domain);
    res.detail = NULL;
    res.ans.text[0] = '\0';
    local_facts(svc, &res);
    if (temp_reason != NULL) {
        res.ans.status = SOCKMAP_TEMP;
        res.ans.rule = "lookup/timeout";
        snprintf(res.ans.text, sizeof(res.ans.text), "%s", temp_reason);
    } else {
        res.facts.dane = dane;
        engine_decide(w->map, &res.facts, &res.ans);
    }
    log_decision(w->key, &res);
    w->done(w->arg, &res);
}

static void flight_free(struct lookup_svc *svc, struct flight *fl)
{
    struct flight **pp = &svc->flights[hash(fl->domain) & (svc->nbuckets - 1)];

    while (*pp != fl)
        pp = &(*pp)->hnext;
    *pp = fl->hnext;
    free(fl);
}

static void on_deadline(uv_timer_t *t)
{
    struct lookup_svc *svc = t->data;
    uint64_t now = uv_now(svc->loop);
    struct waiter *w;
    char reason[128];

    snprintf(reason, sizeof(reason), "DNS lookups did not finish within lookup_timeout (%u ms)",
             svc->timeout_ms);
    while ((w = svc->deadline_head) != NULL && w->deadline <= now) {
        /* The flight goes on without this waiter: its answers will still fill the cache. */
        unlink_waiter(svc, w);
        finish_waiter(svc, w, NULL, reason);
        free(w);
    }
    arm(svc);
}

/* A flight's resolution is complete: answer every waiter. */
static void on_dane(void *arg, const struct dane_facts *f)
{
    struct flight *fl = arg;
    struct lookup_svc *svc = fl->svc;
    struct waiter *w;

    fl->dl = NULL;
    while ((w = fl->waiters) != NULL) {
        unlink_waiter(svc, w);
        finish_waiter(svc, w, f, NULL);
        free(w);
    }
    /* Inside dane_start() the starter frees the flight. */
    if (!fl->resolving)
        flight_free(svc, fl);
    arm(svc);
}

static void wait_for_dane(struct lookup_svc *svc, struct lookup_result *res, const char *key,
                          lookup_done_fn done, void *arg)
{
    size_t b = hash(res->domain) & (svc->nbuckets - 1);
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
    w->dprev = svc->deadline_tail;
    if (svc->deadline_tail)
        svc->deadline_tail->dnext = w;
    else
        svc->deadline_head = w;
    svc->deadline_tail = w;
    svc->lookups_waiting++;
    if (svc->deadline_head == w)
        arm(svc);

    if (fl != NULL) {
        /* SPEC 7: concurrent lookups of one domain share one resolution. */
        w->fl = fl;
        w->next = fl->waiters;
        if (w->next)
            w->next->prev = w;
        fl->waiters = w;
        return;
    }
    fl = xcalloc(1, sizeof(*fl));
    fl->svc = svc;
    snprintf(fl->domain, sizeof(fl->domain), "%s", res->domain);
    fl->hnext = svc->flights[b];
    svc->flights[b] = fl;
    w->fl = fl;
    fl->waiters = w;
    fl->resolving = 1;
    fl->dl = dane_start(svc->resolver, fl->domain, on_dane, fl);
    fl->resolving = 0;
    if (fl->dl == NULL)
        flight_free(svc, fl); /* answered from the cache, waiters already done */
}

void lookup_start(struct lookup_svc *svc, const struct sockmap_request *req, lookup_done_fn done,
                  void *arg)
{
    struct lookup_result res;
    const char *why = NULL;
    char key[300];
    int d;

    /* Not a memset: the answer text alone is 4 KiB, and this is the hot path. */
    res.domain[0] = '\0';
    res.ans.text[0] = '\0';
    res.detail = NULL;
    memset(&res.facts, 0, sizeof(res.facts));
    res.map = engine_map_from_name(req->name, req->namelen);
    if (log_enabled(LOG_DEBUG))
        escape_log(key, sizeof(key), req->key, req->keylen);
    else
        key[0] = '\0';

    /* SPEC 4: an unknown map name is a configuration error on the client's side. */
    if (res.map == ENGINE_MAP_UNKNOWN) {
        char name[SOCKMAP_MAX_NAME * 4 + 4];

        escape_log(name, sizeof(name), req->name, req->namelen);
        res.ans.status = SOCKMAP_PERM;
        res.ans.rule = "request/unknown-map";
        snprintf(res.ans.text, sizeof(res.ans.text), "unknown map %s", name);
        goto answer;
    }

    /* SPEC 4: parent-domain probes and keys that are not domains get "NOTFOUND " at once. */
    d = domain_normalize(req->key, req->keylen, res.domain, &why);
    if (d != DOMAIN_OK) {
        res.domain[0] = '\0';
        res.ans.status = SOCKMAP_NOTFOUND;
        res.ans.rule = d == DOMAIN_PARENT ? "request/parent-probe" : "request/not-a-domain";
        res.detail = d == DOMAIN_PARENT ? "parent-domain probe keys are not looked up" : why;
        goto answer;
    }

    local_facts(svc, &res);
    if (engine_needs(res.map, &res.facts) & ENGINE_NEED_DANE) {
        wait_for_dane(svc, &res, key, done, arg);
        return;
    }
    engine_decide(res.map, &res.facts, &res.ans);

answer:
    log_decision(key, &res);
    done(arg, &res);
}

void lookup_svc_init(struct lookup_svc *svc, uv_loop_t *loop)
{
    memset(svc, 0, sizeof(*svc));
    svc->loop = loop;
    svc->nbuckets = 1024;
    svc->flights = xcalloc(svc->nbuckets, sizeof(*svc->flights));
    uv_timer_init(loop, &svc->timer);
    svc->timer.data = svc;
}

static void on_timer_closed(uv_handle_t *h)
{
    (void)h;
}

void lookup_svc_close(struct lookup_svc *svc)
{
    struct waiter *w;

    while ((w = svc->deadline_head) != NULL) {
        struct flight *fl = w->fl;

        unlink_waiter(svc, w);
        finish_waiter(svc, w, NULL, "the daemon is shutting down");
        free(w);
        if (fl->waiters == NULL && fl->dl != NULL) {
            dane_cancel(fl->dl);
            flight_free(svc, fl);
        }
    }
    for (size_t b = 0; b < svc->nbuckets; b++) {
        while (svc->flights[b]) {
            struct flight *fl = svc->flights[b];

            dane_cancel(fl->dl);
            flight_free(svc, fl);
        }
    }
    free(svc->flights);
    svc->flights = NULL;
    uv_close((uv_handle_t *)&svc->timer, on_timer_closed);
}
