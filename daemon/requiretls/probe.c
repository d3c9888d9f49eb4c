/*
 * The MX probe service (RFC 8689 / draft-ietf-uta-smtp-require-tls 4.2.1): the cache of
 * results per host, address and TLSA set (struct entry: the key, the waiters, the result),
 * the sharing of probes in flight among their askers, the queue behind max_concurrent and
 * its deadline, and background refreshes. Each running entry has one connection
 * (probe_smtp.c, its SMTP dialogue in probe_dialogue.c, TLS in probe_tls.c) that hands its result
 * back through probe_complete(). The service is freed from the last connection's close callback
 * (STYLE "Async lifetimes" 1-5).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "escape.h"
#include "fleet.h"
#include "log.h"
#include "metrics.h"
#include "probe_int.h"
#include "probe_record.h"
#include "xalloc.h"

/* A probe that got no answer at all (no connection, time-out, reset) is remembered for at
 * most this long, so a host that was down briefly is asked again soon. */
#define FAIL_TTL_MS (5u * 60 * 1000)
/* Entries kept at most; beyond it the least recently used idle ones go first (in-flight
 * probes stay). 10,000 results are a few tens of megabytes at most. */
#define CACHE_MAX 10000
/*
 * Probes waiting for a slot, as a multiple of max_concurrent: four rounds of probes. A
 * probe usually takes well under probe_timeout (a few round trips and one handshake), so
 * four rounds normally start within the queue's deadline (probe_timeout, below); an asker
 * beyond them would only wait to be dropped, and a burst of new hosts must not grow the
 * queue without bound. When full, askers get a failure at once (QUEUE_FULL_WHY).
 */
#define QUEUE_FACTOR 4u
#define QUEUE_FULL_WHY "probe queue full"

struct probe_req {
    struct waitlist_link link; /* on the entry's waiters, or on a list being delivered */
    struct entry *e;           /* NULL once delivery has begun */
    probe_cb cb;
    void *arg;
    int delivering;
};

static void pump(struct probe_svc *svc);
static void on_queue_deadline(uv_timer_t *t);

/* Keys. */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static uint64_t tlsa_fingerprint(const struct probe_tlsa *t, size_t n)
{
    uint64_t h = 14695981039346656037ull;

    for (size_t i = 0; i < n; i++) {
        uint8_t head[3] = {t[i].usage, t[i].selector, t[i].mtype};
        uint64_t len = t[i].len;

        h = fnv(h, head, sizeof(head));
        h = fnv(h, &len, sizeof(len));
        h = fnv(h, t[i].data, t[i].len);
    }
    return h;
}

static size_t bucket(const char *host, const char *addr, uint64_t fp)
{
    uint64_t h = fp;

    for (const char *p = host; *p; p++) {
        uint8_t c = (uint8_t)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);

        h = fnv(h, &c, 1);
    }
    h = fnv(h, addr, strlen(addr));
    return (size_t)(h % NBUCKETS);
}

static int same_tlsa(const struct entry *e, const struct probe_tlsa *t, size_t n)
{
    if (e->ntlsa != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (e->tlsa[i].usage != t[i].usage || e->tlsa[i].selector != t[i].selector ||
            e->tlsa[i].mtype != t[i].mtype || e->tlsa[i].len != t[i].len ||
            memcmp(e->tlsa[i].data, t[i].data, t[i].len) != 0)
            return 0;
    return 1;
}

static struct entry *find(struct probe_svc *svc, const char *host, const char *addr, uint64_t fp,
                          const struct probe_tlsa *t, size_t n)
{
    for (struct entry *e = svc->buckets[bucket(host, addr, fp)]; e; e = e->hnext)
        if (e->fp == fp && strcasecmp(e->host, host) == 0 && strcmp(e->addr, addr) == 0 &&
            same_tlsa(e, t, n))
            return e;
    return NULL;
}

/*
 * The queue: first in, first out, on the same list code as the cache's LRU order. Every
 * entry waits at most timeout_ms in it; all wait equally long, so the oldest (the tail) has
 * the first deadline, and one timer follows it.
 */

static unsigned queue_cap(const struct probe_svc *svc)
{
    return QUEUE_FACTOR * svc->opts.max_concurrent;
}

static void queue_arm(struct probe_svc *svc)
{
    struct entry *oldest = lru_entry(svc->queue.tail, struct entry, q);
    uint64_t now = uv_now(svc->loop), due;

    if (svc->destroying)
        return;
    if (oldest == NULL) {
        uv_timer_stop(&svc->qtimer);
        return;
    }
    due = oldest->queued_at + svc->opts.timeout_ms;
    uv_timer_start(&svc->qtimer, on_queue_deadline, due > now ? due - now : 0, 0);
}

static void queue_unlink(struct probe_svc *svc, struct entry *e)
{
    int was_oldest = svc->queue.tail == &e->q;

    lru_unlink(&svc->queue, &e->q);
    svc->queued--;
    if (was_oldest)
        queue_arm(svc);
}

/* An idle entry (out of the LRU order from now on) joins the queue. */
static void queue_append(struct probe_svc *svc, struct entry *e)
{
    lru_unlink(&svc->lru, &e->lru);
    e->state = E_QUEUED;
    e->queued_at = uv_now(svc->loop);
    lru_push_front(&svc->queue, &e->q);
    svc->queued++;
    if (svc->queue.tail == &e->q)
        queue_arm(svc);
}

static void entry_free(struct probe_svc *svc, struct entry *e)
{
    struct entry **pp = &svc->buckets[bucket(e->host, e->addr, e->fp)];
    struct waitlist_link *l;

    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (e->state == E_IDLE)
        lru_unlink(&svc->lru, &e->lru);
    else if (e->state == E_QUEUED)
        queue_unlink(svc, e);
    else if (e->state == E_SHARED) {
        lru_unlink(&svc->shared, &e->q);
        fleet_cancel(e->share);
    }
    while ((l = waitlist_pop(&e->waiters)) != NULL)
        free(waitlist_entry(l, struct probe_req, link));
    if (e->conn)
        e->conn->e = NULL;
    svc->nentries--;
    free(e->tlsa_blob);
    free(e);
}

/*
 * From the least recently used end: drop entries whose result has expired, and any while
 * over CACHE_MAX; stop at the first live one once under it. Only idle entries are in the
 * LRU order, so the sweep never steps over probes in flight. Expired entries further in
 * are dropped when the sweep reaches them or probed again when asked for.
 */
static void sweep(struct probe_svc *svc)
{
    uint64_t now = uv_now(svc->loop);
    struct entry *e;

    while ((e = lru_entry(svc->lru.tail, struct entry, lru)) != NULL) {
        if (e->expires > now && svc->nentries <= CACHE_MAX)
            break;
        entry_free(svc, e);
    }
}

/* Delivery: every waiter of e, from a copy of the result (a callback may destroy svc). */
static void deliver(struct probe_svc *svc, struct waitlist_link **list,
                    const struct probe_result *r, int from_cache)
{
    struct probe_result res = *r;
    char host[HOST_MAX + 1], addr[ADDR_MAX];
    struct waitlist_link *l;

    snprintf(host, sizeof(host), "%s", r->host);
    snprintf(addr, sizeof(addr), "%s", r->addr);
    res.host = host;
    res.addr = addr;
    res.from_cache = from_cache;
    for (l = *list; l; l = l->next)
        waitlist_entry(l, struct probe_req, link)->e = NULL;
    svc->busy++;
    while ((l = waitlist_pop(list)) != NULL) {
        struct probe_req *w = waitlist_entry(l, struct probe_req, link);

        w->delivering = 1;
        if (!svc->destroying)
            w->cb(w->arg, &res);
        free(w);
    }
    svc->busy--;
}

static void svc_maybe_free(struct probe_svc *svc)
{
    if (!svc->destroying || svc->nconns > 0 || svc->busy > 0 || svc->qtimer_open)
        return;
    probe_tls_free(svc);
    free(svc->helo_name);
    free(svc);
}

/* A result worth keeping: authenticated TLS, by PKIX or by DANE. */
static int result_good(const struct probe_result *r)
{
    return r->tls_ok && (r->pkix_ok || r->dane_ok);
}

/*
 * A failure that comes with no answer from the server (uncached): to waiters of a probe
 * that never started, or to an asker turned away.
 */
static void fail_result(struct probe_result *r, const char *host, const char *addr, const char *why)
{
    memset(r, 0, sizeof(*r));
    r->host = host;
    r->addr = addr;
    r->timed_out = 1;
    snprintf(r->why, sizeof(r->why), "%s", why);
}

/* The queue's deadline: probes still waiting for a slot after timeout_ms are dropped. */
static void on_queue_deadline(uv_timer_t *t)
{
    struct probe_svc *svc = container_of(t, struct probe_svc, qtimer);
    struct entry *e;
    char why[sizeof(((struct probe_result *)0)->why)];

    snprintf(why, sizeof(why), "waited in the probe queue longer than probe_timeout (%u ms)",
             svc->opts.timeout_ms);
    /* Each pass reads the queue afresh: a callback may have cancelled or queued probes. */
    while (!svc->destroying && (e = lru_entry(svc->queue.tail, struct entry, q)) != NULL &&
           e->queued_at + svc->opts.timeout_ms <= uv_now(svc->loop)) {
        struct waitlist_link *list;
        struct probe_result res;
        char host[HOST_MAX + 1], addr[ADDR_MAX];

        /*
         * Back to idle: a background refresh keeps its result, and a hit after refresh_at
         * queues it again; an entry without a live result goes.
         */
        waitlist_take(&e->waiters, &list);
        queue_unlink(svc, e);
        e->state = E_IDLE;
        lru_push_front(&svc->lru, &e->lru);
        memcpy(host, e->host, sizeof(host));
        memcpy(addr, e->addr, sizeof(addr));
        if (e->expires <= uv_now(svc->loop))
            entry_free(svc, e);
        if (list == NULL)
            continue;
        fail_result(&res, host, addr, why);
        deliver(svc, &list, &res, 0);
    }
    if (svc->destroying)
        svc_maybe_free(svc);
}

/* ---- Fleet tier hooks (issue 13): a result read before probing, written after one. ---- */

#define SHARE_KIND "rtls"

/* A result cached here goes to the fleet too, with the same lifetime. */
static void share_write(struct probe_svc *svc, const struct entry *e, uint64_t ttl_ms)
{
    char key[PROBE_RECORD_KEY_MAX], val[PROBE_RECORD_MAX + 1];
    int64_t now = (int64_t)time(NULL);
    size_t n;

    if (svc->fleet == NULL || ttl_ms < 1000)
        return;
    probe_record_key(key, sizeof(key), e->host, e->addr, e->ntlsa, e->fp);
    n = probe_record_encode(val, sizeof(val), key, &e->res, now, now + (int64_t)(ttl_ms / 1000));
    if (n == 0)
        return;
    fleet_set(svc->fleet, SHARE_KIND, key, val, n, ttl_ms);
    metrics_shared(METRICS_SHARED_PROBE, METRICS_SHARED_WRITE);
}

/* The fleet's answer for an entry about to be probed: its result, or the probe goes on. */
static void on_share(void *arg, enum fleet_status st, const char *val, size_t len)
{
    struct entry *e = arg;
    struct probe_svc *svc = e->svc;
    char key[PROBE_RECORD_KEY_MAX];
    struct probe_result r;
    struct waitlist_link *list;
    int64_t fetched = 0, expires = 0, now = (int64_t)time(NULL);
    const char *why = NULL;
    uint64_t left_ms;

    e->share = NULL;
    lru_unlink(&svc->shared, &e->q);
    e->state = E_IDLE;
    lru_push_front(&svc->lru, &e->lru);
    probe_record_key(key, sizeof(key), e->host, e->addr, e->ntlsa, e->fp);
    /* Untrusted input: the strict parser, bound to this key (probe_record.h). */
    if (st == FLEET_OK &&
        probe_record_parse(val, len, key, now, &r, &fetched, &expires, &why) < 0) {
        log_warning("probe: %s: shared result refused: %s; ignored, the probe replaces it", key,
                    why);
        metrics_shared(METRICS_SHARED_PROBE, METRICS_SHARED_INVALID);
        st = FLEET_NONE;
    }
    if (st != FLEET_OK || expires <= now) {
        if (st != FLEET_FAIL)
            metrics_shared(METRICS_SHARED_PROBE, METRICS_SHARED_MISS);
        queue_append(svc, e);
        pump(svc);
        return;
    }
    metrics_shared(METRICS_SHARED_PROBE, METRICS_SHARED_HIT);
    log_debug("probe: %s: result from the fleet, probed %llds ago", key,
              (long long)(now - fetched));
    /* Kept no longer than this daemon's own probe_ttl, and refreshed from half of it. */
    left_ms = (uint64_t)(expires - now) * 1000;
    if (left_ms > svc->opts.ttl_ms)
        left_ms = svc->opts.ttl_ms;
    e->res = r;
    e->res.host = e->host;
    e->res.addr = e->addr;
    e->expires = uv_now(svc->loop) + left_ms;
    e->refresh_at = uv_now(svc->loop) + left_ms / 2;
    waitlist_take(&e->waiters, &list);
    deliver(svc, &list, &e->res, 1);
    svc_maybe_free(svc);
}

/* Before a probe: ask the fleet (1: asked, the entry waits in E_SHARED; 0: probe now). */
static int share_read(struct probe_svc *svc, struct entry *e)
{
    char key[PROBE_RECORD_KEY_MAX];

    if (svc->fleet == NULL || svc->opts.ttl_ms == 0)
        return 0;
    probe_record_key(key, sizeof(key), e->host, e->addr, e->ntlsa, e->fp);
    e->share = fleet_get(svc->fleet, SHARE_KIND, key, on_share, e);
    if (e->share == NULL)
        return 0;
    lru_unlink(&svc->lru, &e->lru);
    e->state = E_SHARED;
    lru_push_front(&svc->shared, &e->q);
    return 1;
}

void probe_set_fleet(struct probe_svc *svc, struct fleet *f)
{
    svc->fleet = f;
}

/* ---- End of the fleet tier hooks. ---- */

/*
 * The connection's result goes to its entry's waiters and into the cache. It replaces what
 * was cached, also after a background refresh: the host is as it was seen now. But when a
 * good result is still live and the refresh did not get as far as an authenticated TLS
 * session and the EHLO reply in it (no connection, time-out, no STARTTLS, a failed
 * handshake or certificate), the old result stays until its own expiry, and is probed
 * again after the failure lifetime: a host that is down for a while, or a path that strips
 * STARTTLS, does not turn a known good host into a failure for the whole probe_ttl.
 */
void probe_complete(struct conn *c)
{
    struct entry *e = c->e;
    struct probe_svc *svc = c->svc;
    struct waitlist_link *list;
    struct probe_result res;
    uint64_t ttl, fail_ttl, now;

    if (e == NULL)
        return;
    c->e = NULL;
    e->conn = NULL;
    c->res.elapsed_ms = uv_hrtime() / 1000000 - c->started_ms;
    res = c->res;
    res.host = c->host; /* the entry's key, copied when the probe started */
    res.addr = c->addr;
    e->state = E_IDLE;
    lru_push_front(&svc->lru, &e->lru);
    now = uv_now(svc->loop);
    ttl = svc->opts.ttl_ms;
    fail_ttl = ttl < FAIL_TTL_MS ? ttl : FAIL_TTL_MS;
    if (e->expires > now && result_good(&e->res) && !(result_good(&c->res) && c->ehlo2_read)) {
        e->refresh_at = now + fail_ttl;
    } else {
        /* A probe that got no connection or ran out of time is remembered briefly. From
         * half its lifetime on, a hit also refreshes it. */
        if (!c->res.connected || c->res.timed_out)
            ttl = fail_ttl;
        e->res = c->res;
        e->res.host = e->host;
        e->res.addr = e->addr;
        e->expires = now + ttl;
        e->refresh_at = now + ttl / 2;
        share_write(svc, e, ttl);
    }
    waitlist_take(&e->waiters, &list);
    /* Not cached: the entry goes now; the result is delivered from the connection's copy. */
    if (ttl == 0)
        entry_free(svc, e);
    deliver(svc, &list, &res, 0);
    svc_maybe_free(svc);
}

/* Start queued probes while there is room. */
static void pump(struct probe_svc *svc)
{
    while (!svc->destroying && svc->running < svc->opts.max_concurrent && svc->queue.tail != NULL) {
        struct entry *e = lru_entry(svc->queue.tail, struct entry, q);

        e->state = E_RUNNING;
        queue_unlink(svc, e);
        svc->running++;
        svc->nconns++;
        svc->started++;
        probe_smtp_start(svc, e);
    }
}

void probe_conn_freed(struct probe_svc *svc)
{
    svc->nconns--;
    svc->running--;
    if (!svc->destroying)
        pump(svc);
    svc_maybe_free(svc);
}

/* The API. */

static int host_ok(const char *host)
{
    size_t n = strlen(host);

    if (n == 0 || n > HOST_MAX)
        return 0;
    for (const char *p = host; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '.'))
            return 0;
    return 1;
}

/*
 * probe_start's arguments: 0 with addr's normal form in norm, or -1 with a result in res
 * that says what is wrong (its host and addr point at the arguments).
 */
static int check_args(const char *host, const char *addr, char *norm, struct probe_result *res)
{
    unsigned char bin[16];
    char esc[80];

    if (host != NULL && host_ok(host) && addr != NULL &&
        (inet_pton(AF_INET, addr, bin) == 1 || inet_pton(AF_INET6, addr, bin) == 1)) {
        if (strchr(addr, ':') != NULL)
            inet_ntop(AF_INET6, bin, norm, ADDR_MAX);
        else
            inet_ntop(AF_INET, bin, norm, ADDR_MAX);
        return 0;
    }
    memset(res, 0, sizeof(*res));
    res->host = host ? host : "";
    res->addr = addr ? addr : "";
    if (host == NULL || !host_ok(host)) {
        escape_log(esc, sizeof(esc), host ? host : "(null)", host ? strlen(host) : 6);
        snprintf(res->why, sizeof(res->why), "host name %s unfit for SNI and EHLO", esc);
    } else {
        escape_log(esc, sizeof(esc), addr ? addr : "(null)", addr ? strlen(addr) : 6);
        snprintf(res->why, sizeof(res->why), "%s is not a numeric IPv4 or IPv6 address", esc);
    }
    return -1;
}

/*
 * A hit, also while a refresh runs. Past half its lifetime the result is probed again in
 * the background (no waiter; the queue bounds it like any probe, and when it is full a
 * later hit tries again), so a host in use stays cached and its next asker does not wait.
 */
static void serve_hit(struct probe_svc *svc, struct entry *e, uint64_t now, probe_cb cb, void *arg)
{
    struct probe_result res = e->res;
    char rhost[HOST_MAX + 1], raddr[ADDR_MAX];

    if (e->state == E_IDLE) {
        lru_touch(&svc->lru, &e->lru);
        if (now >= e->refresh_at && svc->queued < queue_cap(svc)) {
            queue_append(svc, e);
            pump(svc);
        }
    }
    /* The callback may destroy svc: nothing of it is touched afterwards. */
    memcpy(rhost, e->host, sizeof(rhost));
    memcpy(raddr, e->addr, sizeof(raddr));
    res.host = rhost;
    res.addr = raddr;
    res.from_cache = 1;
    cb(arg, &res);
}

/* A probe that would have to queue behind a full queue: a failure at once, not cached. */
static void refuse_full(struct probe_svc *svc, const char *host, const char *addr, probe_cb cb,
                        void *arg)
{
    struct probe_result res;
    char why[sizeof(res.why)];

    snprintf(why, sizeof(why),
             QUEUE_FULL_WHY ": %u probes wait behind %u running (probe_max_concurrent %u)",
             svc->queued, svc->running, svc->opts.max_concurrent);
    fail_result(&res, host, addr, why);
    cb(arg, &res);
}

/* A new idle entry for the key, with its own copy of the TLSA records, in the LRU order. */
static struct entry *entry_new(struct probe_svc *svc, const char *host, const char *addr,
                               uint64_t fp, const struct probe_tlsa *tlsa, size_t ntlsa)
{
    struct entry *e = xcalloc(1, sizeof(*e));
    size_t total = 0, off = 0;

    e->svc = svc;
    snprintf(e->host, sizeof(e->host), "%s", host);
    snprintf(e->addr, sizeof(e->addr), "%s", addr);
    e->fp = fp;
    for (size_t i = 0; i < ntlsa; i++)
        total += tlsa[i].len;
    e->tlsa_blob = xmalloc(total ? total : 1);
    for (size_t i = 0; i < ntlsa; i++) {
        e->tlsa[i].usage = tlsa[i].usage;
        e->tlsa[i].selector = tlsa[i].selector;
        e->tlsa[i].mtype = tlsa[i].mtype;
        e->tlsa[i].len = tlsa[i].len;
        e->tlsa[i].data = e->tlsa_blob + off;
        if (tlsa[i].len)
            memcpy(e->tlsa_blob + off, tlsa[i].data, tlsa[i].len);
        off += tlsa[i].len;
    }
    e->ntlsa = ntlsa;
    e->state = E_IDLE; /* not yet queued: the caller queues it */
    e->hnext = svc->buckets[bucket(e->host, e->addr, fp)];
    svc->buckets[bucket(e->host, e->addr, fp)] = e;
    svc->nentries++;
    lru_push_front(&svc->lru, &e->lru);
    return e;
}

struct probe_req *probe_start(struct probe_svc *svc, const char *host, const char *addr,
                              const struct probe_tlsa *tlsa, size_t ntlsa, probe_cb cb, void *arg)
{
    char norm[ADDR_MAX];
    struct probe_result bad;
    struct entry *e;
    struct probe_req *w;
    uint64_t fp, now;

    if (svc->destroying)
        return NULL;
    if (ntlsa > PROBE_MAX_TLSA)
        ntlsa = PROBE_MAX_TLSA;
    /* Bad arguments: a result at once, not cached. */
    if (check_args(host, addr, norm, &bad) < 0) {
        cb(arg, &bad);
        return NULL;
    }
    sweep(svc);
    fp = tlsa_fingerprint(tlsa, ntlsa);
    e = find(svc, host, norm, fp, tlsa, ntlsa);
    now = uv_now(svc->loop);
    if (e != NULL && e->expires > now) {
        serve_hit(svc, e, now, cb, arg);
        return NULL;
    }
    /* A full queue turns new probes away (the next asker may find room); a probe already
     * running or queued is joined instead. */
    if ((e == NULL || e->state == E_IDLE) && svc->queued >= queue_cap(svc)) {
        refuse_full(svc, host, norm, cb, arg);
        return NULL;
    }
    if (e == NULL)
        e = entry_new(svc, host, norm, fp, tlsa, ntlsa);
    w = xcalloc(1, sizeof(*w));
    w->e = e;
    w->cb = cb;
    w->arg = arg;
    waitlist_push(&e->waiters, &w->link);
    if (e->state == E_IDLE && !share_read(svc, e)) {
        /* New, or an expired result: probe again, now or when a slot frees up. */
        queue_append(svc, e);
        pump(svc);
    }
    return w;
}

void probe_cancel(struct probe_req *w)
{
    struct entry *e;

    if (w == NULL || w->delivering)
        return;
    e = w->e;
    waitlist_remove(&w->link);
    free(w);
    /* Nobody waits for a queued probe any more: drop it. */
    if (e != NULL && e->state == E_QUEUED && e->waiters == NULL)
        entry_free(e->svc, e);
}

/* RFC 5321 4.1.1.1: the client's name; the machine's when not given, as Postfix's
 * myhostname. 0, or -1 with a reason in err. */
static int helo_init(struct probe_svc *svc, const char *name, char *err, size_t errlen)
{
    char host[256];

    if (name && name[0]) {
        svc->helo_name = xstrdup(name);
        return 0;
    }
    if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0') {
        snprintf(err, errlen, "probe_helo_name is empty and gethostname() failed");
        return -1;
    }
    host[sizeof(host) - 1] = '\0';
    svc->helo_name = xstrdup(host);
    return 0;
}

struct probe_svc *probe_svc_create(uv_loop_t *loop, const struct probe_opts *opts, char *err,
                                   size_t errlen)
{
    struct probe_svc *svc = xcalloc(1, sizeof(*svc));
    int tls_set_up = 0;

    svc->loop = loop;
    svc->opts = *opts;
    if (svc->opts.timeout_ms == 0)
        svc->opts.timeout_ms = 10000;
    if (svc->opts.max_concurrent == 0)
        svc->opts.max_concurrent = 20;
    if (svc->opts.port == 0)
        svc->opts.port = 25;
    svc->opts.ca = NULL;
    svc->opts.ca_file = NULL;
    if (helo_init(svc, opts->helo_name, err, errlen) < 0)
        goto fail;
    svc->opts.helo_name = svc->helo_name;
    tls_set_up = 1;
    if (probe_tls_init(svc, opts, err, errlen) < 0)
        goto fail;
    uv_timer_init(loop, &svc->qtimer);
    svc->qtimer_open = 1;
    return svc;

fail:
    if (tls_set_up)
        probe_tls_free(svc);
    free(svc->helo_name);
    free(svc);
    return NULL;
}

static void on_qtimer_closed(uv_handle_t *h)
{
    struct probe_svc *svc = container_of((uv_timer_t *)h, struct probe_svc, qtimer);

    svc->qtimer_open = 0;
    svc_maybe_free(svc);
}

void probe_svc_destroy(struct probe_svc *svc)
{
    if (svc == NULL || svc->destroying)
        return;
    svc->destroying = 1;
    /*
     * Pending requests go without callbacks; entries go now (queued ones, running ones
     * through their connections, then the idle ones), connections and the queue's timer
     * when closed (each connection leaves svc->conns as it starts closing).
     */
    while (svc->queue.head != NULL)
        entry_free(svc, lru_entry(svc->queue.head, struct entry, q));
    while (svc->shared.head != NULL)
        entry_free(svc, lru_entry(svc->shared.head, struct entry, q));
    for (struct waitlist_link *l = svc->conns; l != NULL; l = l->next) {
        struct conn *c = waitlist_entry(l, struct conn, link);

        if (c->e != NULL)
            entry_free(svc, c->e);
    }
    while (svc->lru.head != NULL)
        entry_free(svc, lru_entry(svc->lru.head, struct entry, lru));
    while (svc->conns != NULL)
        probe_smtp_close(waitlist_entry(svc->conns, struct conn, link));
    uv_timer_stop(&svc->qtimer);
    uv_close((uv_handle_t *)&svc->qtimer, on_qtimer_closed);
    svc_maybe_free(svc);
}

unsigned long probe_svc_started(const struct probe_svc *svc)
{
    return svc->started;
}

unsigned probe_svc_running(const struct probe_svc *svc)
{
    return svc->running;
}

unsigned probe_svc_queued(const struct probe_svc *svc)
{
    return svc->queued;
}
