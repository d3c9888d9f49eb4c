/*
 * c-ares on libuv (STYLE "Async lifetimes" 6): ARES_OPT_SOCK_STATE_CB gives one uv_poll_t
 * per c-ares socket, a uv_timer_t follows ares_timeout(), and ares_process_fd() does the
 * work. ARES_FLAG_NOCHECKRESP keeps SERVFAIL answers (bogus) apart from unreachable
 * servers. Cache entries are keyed by type and name, hashed, and evicted least recently
 * used first; an entry with a query in flight carries the list of its waiters.
 */
#include "resolver.h"

#include <ares.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "dns.h"
#include "fdwatch.h"
#include "log.h"
#include "lru.h"
#include "waitlist.h"
#include "metrics.h"
#include "xalloc.h"

/* Failures and bogus answers are not cached; in-flight sharing already bounds the load. */

/*
 * The resolver's health, logged once per change rather than once per query: it is taken
 * to be failing after this many consecutive failed answers (no reply, connection refused,
 * SERVFAIL) for as many different names, with no good answer between them. One bogus
 * domain asked again and again is that domain's fault and never trips it; a resolver that
 * is gone, silent or answers SERVFAIL for everything trips it within a few lookups.
 */
#define HEALTH_RUN 3

/*
 * The cache is bounded by entries (dns_cache_size) and by the bytes of the replies it keeps:
 * a TCP answer can be 64 KiB, and dns_cache_size of them would be gigabytes.
 */
#define CACHE_MAX_BYTES ((size_t)64 << 20)

struct entry;

struct resolver_req {
    struct waitlist_link link; /* on the entry's waiters */
    struct entry *e;
    resolver_cb cb;
    void *arg;
};

struct entry {
    struct entry *hnext;
    struct lru_link lru; /* r->lru */
    struct resolver *r;
    struct waitlist_link *waiters;
    int inflight;
    int pinned;               /* inside ares_send(): not to be evicted */
    int local_fault;          /* the last failure was ours (resolver_answer.local_fault) */
    unsigned long deliveries; /* answers delivered to waiters so far */
    uint64_t expires;         /* loop time in ms; 0: nothing usable cached */
    uint16_t qtype;
    struct dns_answer_info info;
    uint8_t *msg;
    size_t len;
    char qname[]; /* flexible: sized to the name */
};

struct poll_handle {
    uv_poll_t poll;
    struct resolver *r;
    ares_socket_t fd;
    struct poll_handle *next;
};

struct resolver {
    uv_loop_t *loop;
    ares_channel channel;
    uv_timer_t timer;
    struct poll_handle *polls;
    struct entry **buckets;
    size_t nbuckets, nentries, max_entries;
    size_t bytes;   /* DNS messages kept, in bytes */
    struct lru lru; /* every entry; head: most recently used */
    uint64_t min_ttl_ms, max_ttl_ms;
    unsigned long queries_sent;
    int destroying;
    /* Health (HEALTH_RUN): the current run of failed answers and the questions it covers. */
    int failing;                    /* logged as failing; cleared by the next good answer */
    unsigned run;                   /* failed answers in a row */
    uint32_t run_names[HEALTH_RUN]; /* hashes of the distinct questions in the run */
    unsigned run_distinct;
    uint64_t run_since; /* loop time of the run's first failure */
    char servers[128];  /* dns_servers, for the log, or "(resolv.conf)" */
};

static void rearm(struct resolver *r);

static uint32_t hash(const char *name, uint16_t type)
{
    uint32_t h = 2166136261u ^ type;

    for (const char *p = name; *p; p++) {
        char c = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;

        h = (h ^ (uint8_t)c) * 16777619u;
    }
    return h;
}

static void entry_free(struct resolver *r, struct entry *e)
{
    struct entry **pp = &r->buckets[hash(e->qname, e->qtype) & (r->nbuckets - 1)];

    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(&r->lru, &e->lru);
    r->nentries--;
    r->bytes -= e->len;
    free(e->msg);
    free(e);
}

/* Evict from the cold end, skipping entries with a query in flight. */
static void evict(struct resolver *r)
{
    struct entry *e = lru_entry(r->lru.tail, struct entry, lru);

    while ((r->nentries > r->max_entries || r->bytes > CACHE_MAX_BYTES) && e != NULL) {
        struct entry *prev = lru_entry(e->lru.prev, struct entry, lru);

        if (!e->inflight && !e->pinned) {
            entry_free(r, e);
            metrics_cache(METRICS_CACHE_DNS, METRICS_CACHE_EVICTION);
        }
        e = prev;
    }
}

static struct entry *find(struct resolver *r, const char *qname, uint16_t qtype)
{
    struct entry *e = r->buckets[hash(qname, qtype) & (r->nbuckets - 1)];

    for (; e; e = e->hnext)
        if (e->qtype == qtype && dns_name_equal(e->qname, qname))
            return e;
    return NULL;
}

/* Deliver an entry's answer to every waiter; waiters added meanwhile wait for the next. */
static void deliver(struct entry *e, int from_cache)
{
    struct resolver_answer ans = {.qname = e->qname,
                                  .qtype = e->qtype,
                                  .info = e->info,
                                  .msg = e->msg,
                                  .len = e->len,
                                  .from_cache = from_cache,
                                  .local_fault = e->local_fault,
                                  .expires = e->expires};
    struct waitlist_link *list, *l;

    e->deliveries++;
    waitlist_take(&e->waiters, &list);
    while ((l = waitlist_pop(&list)) != NULL) {
        struct resolver_req *w = waitlist_entry(l, struct resolver_req, link);

        w->cb(w->arg, &ans);
        free(w);
    }
}

/*
 * One line when the resolver starts failing (HEALTH_RUN) and one when it answers again,
 * whatever the number of lookups in between; each lookup's own TEMP answer says the rest.
 */
static void health(struct resolver *r, const struct entry *e)
{
    int failed = e->info.outcome == DNS_OUT_BOGUS || e->info.outcome == DNS_OUT_FAILED;
    uint32_t h = hash(e->qname, e->qtype);
    uint64_t now = uv_now(r->loop);

    if (!failed) {
        if (r->failing)
            log_notice("dns: resolver %s answers again (%s type %u), after %u failed queries in "
                       "%llu ms",
                       r->servers, e->qname, e->qtype, r->run,
                       (unsigned long long)(now - r->run_since));
        r->failing = 0;
        r->run = r->run_distinct = 0;
        return;
    }
    if (r->run++ == 0)
        r->run_since = now;
    if (r->run_distinct < HEALTH_RUN) {
        unsigned i = 0;

        while (i < r->run_distinct && r->run_names[i] != h)
            i++;
        if (i == r->run_distinct)
            r->run_names[r->run_distinct++] = h;
    }
    if (!r->failing && r->run_distinct >= HEALTH_RUN) {
        r->failing = 1;
        log_warning("dns: resolver %s is failing: %u queries in a row (%u different questions) "
                    "failed, the last %s type %u: %s; lookups that need DNS answer TEMP until it "
                    "answers again",
                    r->servers, r->run, r->run_distinct, e->qname, e->qtype,
                    e->info.why ? e->info.why : dns_outcome_name(e->info.outcome));
    }
}

/*
 * Whether a failed query failed on our side. c-ares 1.18 reports a socket() that failed
 * (EMFILE, ENFILE, ENOBUFS, ENOMEM) as ARES_ECONNREFUSED, the word it uses for a resolver
 * that refused, and the query ends inside the same call: a probe now tells the two apart.
 * A resolver that refused while this process was also short of descriptors counts as
 * ours, which makes the answer TEMP, never weaker.
 */
static int local_failure(int status, const char **why)
{
    int err;

    if (status != ARES_ECONNREFUSED && status != ARES_ENOMEM)
        return 0;
    err = status == ARES_ENOMEM ? ENOMEM : fdwatch_probe();
    if (err == 0 || !fdwatch_local(err))
        return 0;
    fdwatch_note("a DNS socket", err);
    *why = err == ENOMEM ? "local fault: cannot open a DNS socket: out of memory"
           : err == ENFILE
               ? "local fault: cannot open a DNS socket: the system's file table is full"
               : "local fault: cannot open a DNS socket: too many open files";
    return 1;
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct entry *e = arg;
    struct resolver *r = e->r;
    uint64_t ttl_ms;

    (void)timeouts;
    e->inflight = 0;
    free(e->msg);
    r->bytes -= e->len;
    e->msg = NULL;
    e->len = 0;
    e->local_fault = 0;
    if (status == ARES_SUCCESS && abuf != NULL && alen > 0) {
        dns_answer_classify(abuf, (size_t)alen, e->qname, e->qtype, &e->info);
        e->msg = xmalloc((size_t)alen);
        memcpy(e->msg, abuf, (size_t)alen);
        e->len = (size_t)alen;
        r->bytes += e->len;
    } else {
        memset(&e->info, 0, sizeof(e->info));
        snprintf(e->info.final, sizeof(e->info.final), "%s", e->qname);
        e->info.outcome = DNS_OUT_FAILED;
        e->info.why = status == ARES_ETIMEOUT       ? "DNS query timed out"
                      : status == ARES_ECONNREFUSED ? "resolver unreachable (connection refused)"
                      : status == ARES_EDESTRUCTION ? "resolver shutting down"
                      : status == ARES_ECANCELLED   ? "DNS query cancelled"
                                                    : "DNS query failed";
        e->local_fault = local_failure(status, &e->info.why);
    }

    /* Cache what is an answer, within the configured TTL bounds (RFC 2308 for negatives). */
    if (e->info.outcome == DNS_OUT_BOGUS || e->info.outcome == DNS_OUT_FAILED || r->destroying) {
        e->expires = 0;
    } else {
        ttl_ms = (uint64_t)e->info.ttl * 1000;
        if (ttl_ms < r->min_ttl_ms)
            ttl_ms = r->min_ttl_ms;
        if (ttl_ms > r->max_ttl_ms)
            ttl_ms = r->max_ttl_ms;
        e->expires = uv_now(r->loop) + ttl_ms;
    }
    if (!r->destroying && status != ARES_ECANCELLED) {
        metrics_dns(e->qtype, e->info.outcome, e->info.secure);
        if (!e->local_fault) /* ours, not the resolver's: fdwatch says it in one line */
            health(r, e);
    }
    if (log_enabled(LOG_DEBUG))
        log_debug("dns %s type %u: %s%s%s%s", e->qname, e->qtype, dns_outcome_name(e->info.outcome),
                  e->info.outcome <= DNS_OUT_NXDOMAIN ? (e->info.secure ? " secure" : " insecure")
                                                      : "",
                  e->info.why ? ": " : "", e->info.why ? e->info.why : "");
    deliver(e, 0);
    if (!r->destroying)
        evict(r);
}

struct resolver_req *resolver_query(struct resolver *r, const char *qname, uint16_t qtype,
                                    resolver_cb cb, void *arg)
{
    struct entry *e = find(r, qname, qtype);
    struct resolver_req *w;
    uint8_t q[DNS_HEADER_LEN + 260 + 4 + 11];
    size_t qlen;
    uint16_t id;
    const char *why = NULL;
    unsigned long deliveries;

    if (r->destroying) {
        /* Teardown: nothing new is sent; the caller hears so at once. */
        struct resolver_answer ans = {.qname = qname, .qtype = qtype};

        ans.info.outcome = DNS_OUT_FAILED;
        ans.info.why = "resolver shutting down";
        snprintf(ans.info.final, sizeof(ans.info.final), "%s", qname);
        cb(arg, &ans);
        return NULL;
    }
    if (e != NULL && !e->inflight && e->expires > uv_now(r->loop)) {
        struct resolver_answer ans = {.qname = e->qname,
                                      .qtype = e->qtype,
                                      .info = e->info,
                                      .msg = e->msg,
                                      .len = e->len,
                                      .from_cache = 1,
                                      .expires = e->expires};

        lru_touch(&r->lru, &e->lru);
        metrics_cache(METRICS_CACHE_DNS, METRICS_CACHE_HIT);
        cb(arg, &ans);
        return NULL;
    }
    metrics_cache(METRICS_CACHE_DNS, METRICS_CACHE_MISS);
    if (e != NULL) {
        /* In use again: away from the cold end, where eviction looks. */
        lru_touch(&r->lru, &e->lru);
    } else {
        size_t n = strlen(qname) + 1;
        size_t b = hash(qname, qtype) & (r->nbuckets - 1);

        e = xcalloc(1, sizeof(*e) + n);
        memcpy(e->qname, qname, n);
        e->qtype = qtype;
        e->r = r;
        e->hnext = r->buckets[b];
        r->buckets[b] = e;
        r->nentries++;
        lru_push_front(&r->lru, &e->lru);
    }

    w = xcalloc(1, sizeof(*w));
    w->e = e;
    w->cb = cb;
    w->arg = arg;
    waitlist_push(&e->waiters, &w->link);
    if (e->inflight)
        return w;

    /* A new upstream query: random ID (c-ares 1.18 sends the ID it is given). */
    if (getrandom(&id, sizeof(id), 0) != sizeof(id))
        id = (uint16_t)(uv_hrtime() ^ (uintptr_t)e);
    if (dns_build_query(q, sizeof(q), id, qname, qtype, 1, DNS_EDNS_PAYLOAD, &qlen, &why) < 0) {
        memset(&e->info, 0, sizeof(e->info));
        e->info.outcome = DNS_OUT_FAILED;
        e->info.why = why;
        e->expires = 0;
        e->local_fault = 0;
        deliver(e, 0);
        return NULL;
    }
    e->inflight = 1;
    r->queries_sent++;
    if (log_enabled(LOG_DEBUG))
        log_debug("dns query %s type %u", qname, qtype);
    /*
     * ares_send() may fail at once (no memory, no socket) and call on_answer() before it
     * returns, which delivers to w and frees it. The entry is pinned so that eviction
     * cannot free it meanwhile, and the delivery count says whether that happened.
     */
    deliveries = e->deliveries;
    e->pinned++;
    ares_send(r->channel, q, (int)qlen, on_answer, e);
    e->pinned--;
    /*
     * The query's timeout starts now. Without this the timer followed only socket events,
     * so a resolver that never answers (packets dropped, the process stopped) left the
     * query in flight for ever, and every later lookup of the name waited behind it.
     */
    rearm(r);
    if (e->deliveries != deliveries) {
        evict(r);
        return NULL;
    }
    return w;
}

void resolver_cancel(struct resolver_req *w)
{
    if (w == NULL)
        return;
    waitlist_remove(&w->link);
    free(w);
}

uint64_t resolver_now(const struct resolver *r)
{
    return uv_now(r->loop);
}

unsigned long resolver_queries_sent(const struct resolver *r)
{
    return r->queries_sent;
}

unsigned long resolver_cache_entries(const struct resolver *r)
{
    return (unsigned long)r->nentries;
}

/* libuv glue. */

static void on_timer(uv_timer_t *t);

static void rearm(struct resolver *r)
{
    struct timeval tv, *tvp = ares_timeout(r->channel, NULL, &tv);

    if (tvp == NULL) {
        uv_timer_stop(&r->timer);
        return;
    }
    uv_timer_start(&r->timer, on_timer, (uint64_t)tvp->tv_sec * 1000 + tvp->tv_usec / 1000 + 1, 0);
}

static void on_timer(uv_timer_t *t)
{
    struct resolver *r = t->data;

    ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    rearm(r);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct poll_handle *ph = p->data;
    struct resolver *r = ph->r;
    ares_socket_t fd = ph->fd;

    /* On a poll error let c-ares read and write, so it sees the error and moves on. */
    if (status < 0)
        events = UV_READABLE | UV_WRITABLE;
    ares_process_fd(r->channel, (events & UV_READABLE) ? fd : ARES_SOCKET_BAD,
                    (events & UV_WRITABLE) ? fd : ARES_SOCKET_BAD);
    rearm(r);
}

static void on_poll_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct resolver *r = data;
    struct poll_handle **pp = &r->polls, *ph;

    while (*pp && (*pp)->fd != fd)
        pp = &(*pp)->next;
    ph = *pp;
    if (!readable && !writable) {
        if (ph) {
            *pp = ph->next;
            uv_poll_stop(&ph->poll);
            uv_close((uv_handle_t *)&ph->poll, on_poll_closed);
        }
        return;
    }
    if (ph == NULL) {
        ph = xcalloc(1, sizeof(*ph));
        ph->r = r;
        ph->fd = fd;
        if (uv_poll_init_socket(r->loop, &ph->poll, fd) < 0) {
            log_error("dns: cannot watch socket %d", (int)fd);
            free(ph);
            return;
        }
        ph->poll.data = ph;
        ph->next = r->polls;
        r->polls = ph;
    }
    uv_poll_start(&ph->poll, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0), on_poll);
}

struct resolver *resolver_create(uv_loop_t *loop, const struct config *cfg, char *err,
                                 size_t errlen)
{
    struct resolver *r = xcalloc(1, sizeof(*r));
    struct ares_options opts;
    int rc, optmask;

    rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
        free(r);
        return NULL;
    }
    memset(&opts, 0, sizeof(opts));
    opts.sock_state_cb = on_sock_state;
    opts.sock_state_cb_data = r;
    /* SERVFAIL must reach us as an answer (bogus), not as "no server answered". */
    opts.flags = ARES_FLAG_NOCHECKRESP | ARES_FLAG_NOSEARCH | ARES_FLAG_EDNS;
    opts.ednspsz = DNS_EDNS_PAYLOAD;
    opts.tries = 2;
    opts.timeout = (int)(cfg->dns_timeout_ms / 2 > 0 ? cfg->dns_timeout_ms / 2 : 1);
    optmask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_FLAGS | ARES_OPT_EDNSPSZ | ARES_OPT_TRIES |
              ARES_OPT_TIMEOUTMS;
    rc = ares_init_options(&r->channel, &opts, optmask);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
        free(r);
        return NULL;
    }
    if (cfg->dns_servers[0] != '\0') {
        rc = ares_set_servers_ports_csv(r->channel, cfg->dns_servers);
        if (rc != ARES_SUCCESS) {
            snprintf(err, errlen, "dns_servers = %s: %s", cfg->dns_servers, ares_strerror(rc));
            ares_destroy(r->channel);
            free(r);
            return NULL;
        }
    }
    r->loop = loop;
    snprintf(r->servers, sizeof(r->servers), "%s",
             cfg->dns_servers[0] ? cfg->dns_servers : "(resolv.conf)");
    r->max_entries = cfg->dns_cache_size;
    for (r->nbuckets = 64; r->nbuckets < r->max_entries; r->nbuckets *= 2)
        ;
    r->buckets = xcalloc(r->nbuckets, sizeof(*r->buckets));
    r->min_ttl_ms = cfg->dns_min_ttl_ms;
    r->max_ttl_ms = cfg->dns_max_ttl_ms;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    return r;
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void resolver_destroy(struct resolver *r)
{
    struct poll_handle *ph, *next;

    if (r == NULL)
        return;
    r->destroying = 1;
    /* Pending queries complete with ARES_EDESTRUCTION; their waiters get FAILED. */
    ares_destroy(r->channel);
    while (r->lru.head)
        entry_free(r, lru_entry(r->lru.head, struct entry, lru));
    free(r->buckets);
    for (ph = r->polls; ph; ph = next) {
        next = ph->next;
        uv_poll_stop(&ph->poll);
        uv_close((uv_handle_t *)&ph->poll, on_poll_closed);
    }
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}
