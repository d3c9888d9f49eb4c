/*
 * MTA-STS policies on the fleet tier (mtasts_share.h). Keys: PREFIX sts:DOMAIN holds the
 * record, PREFIX sts-lock:DOMAIN the lock (a lease the holder renews) of the daemon fetching it. A
 * request owns at most one fleet command and, for a claim, a poll timer; a cancelled request is
 * freed once the timer has closed.
 */
#include "mtasts_share.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "fleet.h"
#include "log.h"
#include "metrics.h"
#include "xalloc.h"

#define KIND "sts"

struct share_req {
    struct fleet *f;
    struct fleet_req *pending;
    share_cb cb; /* NULL: cancelled */
    void *arg;
    char domain[DOMAIN_MAX + 1];
    char id[STS_ID_MAX + 1]; /* claim: the TXT id a record must carry; "" for a read */
    int claim;
    int waited;        /* claim: counted once as waiting for another daemon */
    int locked;        /* claim: the lock is ours, the record is looked for once more */
    uint64_t deadline; /* claim: stop waiting at this uv_now() */
    uv_loop_t *loop;
    uv_timer_t poll; /* claim only */
};

/* The holder's lease: the lock renewed every third of SHARE_LEASE_MS until stopped or until. */
struct share_lease {
    struct fleet *f;
    uint64_t until; /* uv_now(): no renewal after this */
    uv_timer_t timer;
    char domain[DOMAIN_MAX + 1];
};

static void on_poll_closed(uv_handle_t *h)
{
    free(h->data);
}

static void req_free(struct share_req *r)
{
    if (r->claim)
        uv_close((uv_handle_t *)&r->poll, on_poll_closed);
    else
        free(r);
}

static void done(struct share_req *r, enum share_result res, const struct store_record *rec)
{
    if (r->cb)
        r->cb(r->arg, res, rec);
    req_free(r);
}

int share_value_parse(const char *domain, const char *val, size_t len, int64_t now,
                      struct store_record *rec, const char **why)
{
    *why = NULL;
    if (len > STORE_RECORD_MAX)
        *why = "longer than a record can be";
    else if (store_record_parse(val, len, NULL, now, rec, why) < 0)
        ;
    else if (strcmp(rec->domain, domain) != 0)
        *why = "it names another domain";
    if (*why != NULL)
        return -1;
    return rec->expires > now;
}

/* share_value_parse(), an invalid value logged and counted: 1 with *rec usable, else 0. */
static int parse_value(struct share_req *r, const char *val, size_t len, struct store_record *rec)
{
    const char *why = NULL;
    int rc = share_value_parse(r->domain, val, len, (int64_t)time(NULL), rec, &why);

    if (rc < 0) {
        log_warning("mta-sts: %s: shared record refused: %s; ignored, the next fetch replaces it",
                    r->domain, why);
        metrics_shared(METRICS_SHARED_STS, METRICS_SHARED_INVALID);
        return 0;
    }
    return rc;
}

static void on_read(void *arg, enum fleet_status st, const char *val, size_t len)
{
    struct share_req *r = arg;
    struct store_record rec;

    r->pending = NULL;
    if (st == FLEET_OK && parse_value(r, val, len, &rec)) {
        metrics_shared(METRICS_SHARED_STS, METRICS_SHARED_HIT);
        done(r, SHARE_RECORD, &rec);
        return;
    }
    if (st != FLEET_FAIL)
        metrics_shared(METRICS_SHARED_STS, METRICS_SHARED_MISS);
    done(r, SHARE_NONE, NULL);
}

struct share_req *share_read(struct fleet *f, const char *domain, share_cb cb, void *arg)
{
    struct share_req *r = xcalloc(1, sizeof(*r));

    r->f = f;
    r->cb = cb;
    r->arg = arg;
    snprintf(r->domain, sizeof(r->domain), "%s", domain);
    r->pending = fleet_get(f, KIND, domain, on_read, r);
    if (r->pending == NULL) {
        free(r);
        return NULL;
    }
    return r;
}

static void claim_step(struct share_req *r);

static void on_poll(uv_timer_t *t)
{
    claim_step(t->data);
}

static void on_lock(void *arg, enum fleet_status st, const char *val, size_t len)
{
    struct share_req *r = arg;

    r->pending = NULL;
    if (st == FLEET_OK) {
        /*
         * Ours: look for the record once more. The holder before us may have written it
         * and released the lock between our GET and our SET NX (its SET comes before its
         * release on the same connection, so a GET after our lock sees it).
         */
        r->locked = 1;
        if (r->waited) {
            /*
             * The holder let go without a record of this id: its fetch gave none, or it
             * died (or lost Redis) and its lease lapsed.
             */
            log_notice("mta-sts: %s: the fleet lock is free again without a policy from its "
                       "holder (its fetch failed, or it died); taking over the fetch",
                       r->domain);
            metrics_shared(METRICS_SHARED_STS, METRICS_SHARED_TAKEOVER);
        }
        claim_step(r);
        return;
    }
    if (st == FLEET_FAIL || uv_now(r->loop) >= r->deadline) {
        if (st != FLEET_FAIL)
            log_warning("mta-sts: %s: another daemon's fetch is taking too long; fetching here",
                        r->domain);
        done(r, SHARE_FETCH, NULL);
        return;
    }
    /* Another daemon fetches: wait for its record. */
    if (!r->waited) {
        r->waited = 1;
        metrics_shared(METRICS_SHARED_STS, METRICS_SHARED_WAITED);
        log_debug("mta-sts: %s: another daemon of the fleet is fetching; waiting", r->domain);
    }
    uv_timer_start(&r->poll, on_poll, SHARE_POLL_MS, 0);
}

/* A record of the TXT id, with at least half its life left, saves the fetch. */
static void on_claim_get(void *arg, enum fleet_status st, const char *val, size_t len)
{
    struct share_req *r = arg;
    struct store_record rec;
    int64_t now = (int64_t)time(NULL);

    r->pending = NULL;
    if (st == FLEET_FAIL) {
        done(r, r->locked ? SHARE_FETCH_LOCKED : SHARE_FETCH, NULL);
        return;
    }
    if (st == FLEET_OK && parse_value(r, val, len, &rec) && strcmp(rec.id, r->id) == 0 &&
        now < rec.fetched + (rec.expires - rec.fetched) / 2) {
        if (r->locked)
            fleet_unlock(r->f, KIND, r->domain);
        metrics_shared(METRICS_SHARED_STS, METRICS_SHARED_HIT);
        done(r, SHARE_RECORD, &rec);
        return;
    }
    if (r->locked) {
        metrics_shared(METRICS_SHARED_STS, METRICS_SHARED_LOCKED);
        done(r, SHARE_FETCH_LOCKED, NULL);
        return;
    }
    if (!r->waited)
        metrics_shared(METRICS_SHARED_STS, METRICS_SHARED_MISS);
    /* A short lease: its holder renews it while it fetches (share_lease_start()). */
    r->pending = fleet_lock(r->f, KIND, r->domain, SHARE_LEASE_MS, on_lock, r);
    if (r->pending == NULL)
        done(r, SHARE_FETCH, NULL);
}

static void claim_step(struct share_req *r)
{
    r->pending = fleet_get(r->f, KIND, r->domain, on_claim_get, r);
    if (r->pending == NULL)
        done(r, r->locked ? SHARE_FETCH_LOCKED : SHARE_FETCH, NULL);
}

struct share_req *share_claim(struct fleet *f, const char *domain, const char *id, unsigned wait_ms,
                              share_cb cb, void *arg)
{
    struct share_req *r = xcalloc(1, sizeof(*r));

    r->f = f;
    r->cb = cb;
    r->arg = arg;
    snprintf(r->domain, sizeof(r->domain), "%s", domain);
    snprintf(r->id, sizeof(r->id), "%s", id);
    r->pending = fleet_get(f, KIND, domain, on_claim_get, r);
    if (r->pending == NULL) {
        free(r);
        return NULL;
    }
    r->claim = 1;
    r->loop = fleet_loop(f);
    uv_timer_init(r->loop, &r->poll);
    r->poll.data = r;
    r->deadline = uv_now(r->loop) + wait_ms;
    return r;
}

static void on_renew(uv_timer_t *t)
{
    struct share_lease *l = t->data;

    if (uv_now(t->loop) >= l->until) {
        /* A fetch past its own deadlines: let the lease lapse, another daemon may try. */
        uv_timer_stop(t);
        return;
    }
    fleet_renew(l->f, KIND, l->domain, SHARE_LEASE_MS);
}

struct share_lease *share_lease_start(struct fleet *f, const char *domain, unsigned hold_ms)
{
    struct share_lease *l = xcalloc(1, sizeof(*l));
    uv_loop_t *loop = fleet_loop(f);

    l->f = f;
    l->until = uv_now(loop) + hold_ms;
    snprintf(l->domain, sizeof(l->domain), "%s", domain);
    uv_timer_init(loop, &l->timer);
    l->timer.data = l;
    uv_timer_start(&l->timer, on_renew, SHARE_LEASE_MS / 3, SHARE_LEASE_MS / 3);
    return l;
}

static void on_lease_closed(uv_handle_t *h)
{
    free(h->data);
}

void share_lease_stop(struct share_lease *l)
{
    if (l != NULL)
        uv_close((uv_handle_t *)&l->timer, on_lease_closed);
}

void share_publish(struct fleet *f, const struct store_record *rec, int locked)
{
    char *val = store_record_encode(rec);
    int64_t left = rec->expires - (int64_t)time(NULL);

    if (val != NULL && left > 0) {
        fleet_set(f, KIND, rec->domain, val, strlen(val), (uint64_t)left * 1000);
        metrics_shared(METRICS_SHARED_STS, METRICS_SHARED_WRITE);
    }
    free(val);
    if (locked)
        fleet_unlock(f, KIND, rec->domain);
}

void share_release(struct fleet *f, const char *domain)
{
    fleet_unlock(f, KIND, domain);
}

void share_cancel(struct share_req *r)
{
    if (r == NULL)
        return;
    r->cb = NULL;
    fleet_cancel(r->pending);
    r->pending = NULL;
    if (r->claim)
        uv_timer_stop(&r->poll);
    req_free(r);
}
