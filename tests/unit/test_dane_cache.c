/*
 * The DANE facts cache (daemon/dns/dane_cache.c) with the real walk (dane.c) and resolver
 * (resolver.c, c-ares on libuv) against a small validating-resolver stand-in on loopback:
 * a UDP server in this process that answers from a table of records with the AD bit set, so
 * every answer reads as DNSSEC-secure. What is checked: a cached domain is answered without
 * a query; the facts hold until the earliest expiry of the answers they rest on, also when
 * the DNS cache dropped those answers early, and not a moment longer: then the next lookup
 * walks again and sees the zone as it is now (the answer changes), for DANE facts and for
 * "no DANE" alike; failures are never kept, and a walk that ends in one replaces what was
 * held; the cache stays within its bound (CLOCK eviction); entries are sized to what they
 * hold; a resolver that never answers ends each query at its timeout. The keep and hold
 * rules are checked as a table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "check.h"
#include "config.h"
#include "dane.h"
#include "dane_cache.h"
#include "dns.h"
#include "resolver.h"

/* The zone: owner, type, rdata in wire form; a record with off set is not served. */
struct rec {
    const char *owner;
    uint16_t type;
    const char *rdata;
    size_t rdlen;
    int off;
};

#define S(lit) lit, sizeof(lit) - 1
#define DIGEST                                                                                     \
    "\000\001\002\003\004\005\006\007\010\011\012\013\014\015\016\017"                             \
    "\020\021\022\023\024\025\026\027\030\031\032\033\034\035\036\037"

static struct rec zone[] = {
    {"example.test", DNS_TYPE_MX, S("\000\012\002mx\007example\004test\000"), 0},
    {"mx.example.test", DNS_TYPE_A, S("\300\000\002\001"), 0},
    {"mx.example.test", DNS_TYPE_AAAA, NULL, 0, 1}, /* the name exists: NODATA */
    {"_25._tcp.mx.example.test", DNS_TYPE_TLSA, S("\003\001\001" DIGEST), 0},
    /* Off at first: late.test exists without MX or address (NODATA: no DANE). */
    {"late.test", DNS_TYPE_MX, S("\000\012\002mx\007example\004test\000"), 1},
};
#define NZONE (sizeof(zone) / sizeof(zone[0]))
#define TLSA_REC 3
#define LATE_MX 4

/*
 * How long every answer is cached. The checks that facts still hold run well within it (a
 * few local UDP round trips), with room for a busy machine's stalls; those that they have
 * run out wait past it.
 */
#define TTL_MS 1000

static uv_loop_t loop;
static uv_udp_t server;
static unsigned long served;

/* The question's name in presentation form, lower case; its end in *end. 0, or -1. */
static int read_qname(const uint8_t *m, size_t len, char *out, size_t outlen, size_t *end)
{
    size_t p = DNS_HEADER_LEN, o = 0;

    while (p < len && m[p] != 0) {
        size_t l = m[p++];

        if (l > 63 || p + l > len || o + l + 2 > outlen)
            return -1;
        if (o > 0)
            out[o++] = '.';
        for (size_t i = 0; i < l; i++)
            out[o++] = (char)((m[p + i] >= 'A' && m[p + i] <= 'Z') ? m[p + i] + 32 : m[p + i]);
        p += l;
    }
    if (p + 5 > len)
        return -1;
    out[o] = '\0';
    *end = p + 5; /* the root label, qtype, qclass */
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char mem[4096];

    (void)h;
    (void)suggested;
    *buf = uv_buf_init(mem, sizeof(mem));
}

static void on_sent(uv_udp_send_t *req, int status)
{
    (void)status;
    free(req);
}

/* Answer one query: the records of its name and type, NODATA or NXDOMAIN; AD always set. */
static void on_query(uv_udp_t *h, ssize_t n, const uv_buf_t *buf, const struct sockaddr *from,
                     unsigned flags)
{
    const uint8_t *q = (const uint8_t *)buf->base;
    uint8_t *m;
    char name[DNS_NAME_MAX + 1];
    size_t qend, p;
    uint16_t qtype;
    unsigned an = 0;
    int exists = 0;
    uv_udp_send_t *req;
    uv_buf_t out;

    (void)flags;
    if (n <= 0 || from == NULL || read_qname(q, (size_t)n, name, sizeof(name), &qend) < 0)
        return;
    qtype = (uint16_t)(q[qend - 4] << 8 | q[qend - 3]);
    req = malloc(sizeof(*req) + 1024);
    m = (uint8_t *)(req + 1);
    memcpy(m, q, qend);
    m[2] = (uint8_t)(0x80 | (q[2] & 0x01)); /* QR, RD as asked */
    m[3] = 0xa0;                            /* RA, AD, NOERROR */
    memset(m + 4, 0, 8);
    m[5] = 1;
    p = qend;
    for (size_t i = 0; i < NZONE; i++) {
        if (strcmp(zone[i].owner, name) != 0)
            continue;
        exists = 1;
        if (zone[i].type != qtype || zone[i].off || zone[i].rdata == NULL)
            continue;
        /* The owner as a pointer to the question, class IN, TTL 300. */
        memcpy(m + p, "\300\014", 2);
        m[p + 2] = (uint8_t)(qtype >> 8);
        m[p + 3] = (uint8_t)qtype;
        memcpy(m + p + 4, "\000\001\000\000\001\054", 6);
        m[p + 10] = (uint8_t)(zone[i].rdlen >> 8);
        m[p + 11] = (uint8_t)zone[i].rdlen;
        memcpy(m + p + 12, zone[i].rdata, zone[i].rdlen);
        p += 12 + zone[i].rdlen;
        an++;
    }
    if (!exists)
        m[3] |= 3; /* NXDOMAIN */
    m[7] = (uint8_t)an;
    served++;
    out = uv_buf_init((char *)m, (unsigned)p);
    if (uv_udp_send(req, h, &out, 1, from, on_sent) != 0)
        free(req);
}

static int done;
static struct dane_facts got;
static char got_why[DANE_WHY_MAX];

static void on_facts(void *arg, const struct dane_facts *f)
{
    (void)arg;
    done = 1;
    dane_facts_copy(&got, f, got_why);
}

/* One DANE lookup through the cache, run to its end (at most 5 s). */
static enum dane_state walk(struct resolver *r, struct dane_cache *c, const char *domain)
{
    uint64_t until = uv_now(&loop) + 5000;

    done = 0;
    dane_start(r, c, domain, on_facts, NULL);
    while (!done && uv_now(&loop) < until)
        uv_run(&loop, UV_RUN_ONCE);
    return done ? got.state : (enum dane_state) - 1;
}

static void on_any(void *arg, const struct resolver_answer *ans)
{
    (void)ans;
    (*(int *)arg)--;
}

/* Let loop time pass (the cache's expiries are in loop time). */
static void pass_ms(unsigned ms)
{
    uv_sleep(ms);
    uv_update_time(&loop);
}

static void check_invalidation(struct resolver *r, struct dane_cache *c)
{
    unsigned long before;

    /* A first lookup walks: MX, A, AAAA, TLSA. */
    check_int("first walk", "state", walk(r, c, "example.test"), DANE_ALL);
    check_int("first walk", "queries", (int)resolver_queries_sent(r), 4);
    check_int("first walk", "entries", (int)dane_cache_entries(c), 1);

    /* The second is the cache's: the callback runs inside dane_start, no query. */
    before = served;
    done = 0;
    check_true("cached: answered at once", "holds",
               dane_start(r, c, "example.test", on_facts, NULL) == NULL);
    check_true("cached: callback ran", "holds", done);
    check_int("cached", "state", got.state, DANE_ALL);
    check_int("cached", "no query", (int)(served - before), 0);

    /*
     * The TLSA record goes. While the answers are cached the facts hold (a new walk would
     * read the same cached answers); once the TLSA answer expires the next lookup walks
     * and the answer changes: no TLSA, no DANE.
     */
    zone[TLSA_REC].off = 1;
    check_int("TLSA gone, answers cached", "state", walk(r, c, "example.test"), DANE_ALL);
    pass_ms(TTL_MS + 50); /* past dns_max_ttl below */
    check_true("expired: not held", "holds", dane_cache_get(c, "example.test") == NULL);
    check_int("expired: walks again", "state", walk(r, c, "example.test"), DANE_NONE);
    zone[TLSA_REC].off = 0;
    pass_ms(TTL_MS + 50);
    check_int("TLSA back after expiry", "state", walk(r, c, "example.test"), DANE_ALL);

    /*
     * An answer that leaves the resolver cache before it expires (evicted for room:
     * dns_cache_size 16 below) does not take the facts with it: they hold until the
     * earliest expiry of their answers, as the answers themselves would have. Then the
     * next lookup walks again and sees the zone as it is now.
     */
    check_true("held before eviction", "holds", dane_cache_get(c, "example.test") != NULL);
    zone[TLSA_REC].off = 1;
    {
        int pending = 0;
        char name[64];

        for (int i = 0; i < 20; i++) {
            snprintf(name, sizeof(name), "n%d.example.test", i);
            pending++;
            resolver_query(r, name, DNS_TYPE_A, on_any, &pending);
        }
        for (int i = 0; i < 1000 && pending > 0; i++)
            uv_run(&loop, UV_RUN_ONCE);
        check_int("filler queries", "answered", pending, 0);
    }
    before = served;
    check_int("answers evicted, not expired: facts held", "state", walk(r, c, "example.test"),
              DANE_ALL);
    check_int("answers evicted, not expired", "no query", (int)(served - before), 0);
    pass_ms(TTL_MS + 50);
    check_int("expired after eviction: walks again", "state", walk(r, c, "example.test"),
              DANE_NONE);
    zone[TLSA_REC].off = 0;

    /* "No DANE" expires at its TTL too: the domain gets a signed MX with TLSA. */
    check_int("no MX, no address", "state", walk(r, c, "late.test"), DANE_NONE);
    check_true("no DANE kept", "holds", dane_cache_get(c, "late.test") != NULL);
    zone[LATE_MX].off = 0;
    check_int("MX added, no DANE cached", "state", walk(r, c, "late.test"), DANE_NONE);
    pass_ms(TTL_MS + 50);
    check_true("no DANE expired", "holds", dane_cache_get(c, "late.test") == NULL);
    check_int("MX added, after expiry", "state", walk(r, c, "late.test"), DANE_ALL);
    zone[LATE_MX].off = 1;
}

static struct resolver_answer silent_ans;
static int silent_done;

static void on_silent(void *arg, const struct resolver_answer *ans)
{
    (void)arg;
    silent_done = 1;
    silent_ans.info.outcome = ans->info.outcome;
    silent_ans.info.why = ans->info.why;
}

static void on_guard(uv_timer_t *t)
{
    (void)t;
}

/*
 * A resolver that never answers (its packets dropped, the process stopped): no socket event
 * ever comes, so only the query timer can end the query. It must (dns_timeout below), and
 * the same name must resolve once the resolver answers again, rather than wait for ever
 * behind the first query (the timer once started only after a socket event).
 */
static void check_silent(struct resolver *r)
{
    static uv_timer_t guard; /* outlives the function: closed by the loop after it returns */
    uint64_t t0, until;

    uv_udp_recv_stop(&server);
    uv_timer_init(&loop, &guard);
    uv_timer_start(&guard, on_guard, 3000, 0); /* the loop's bound, should the timer not run */
    t0 = uv_now(&loop);
    until = t0 + 3000;
    silent_done = 0;
    resolver_query(r, "silent.example.test", DNS_TYPE_A, on_silent, NULL);
    while (!silent_done && uv_now(&loop) < until)
        uv_run(&loop, UV_RUN_ONCE);
    check_true("silent resolver: the query ends", "holds", silent_done);
    check_int("silent resolver", "outcome", silent_ans.info.outcome, DNS_OUT_FAILED);
    check_true("silent resolver: timed out", "holds",
               silent_ans.info.why != NULL &&
                   strcmp(silent_ans.info.why, "DNS query timed out") == 0);
    check_true("silent resolver: within dns_timeout and its retry", "holds",
               uv_now(&loop) - t0 < 2000);
    uv_udp_recv_start(&server, on_alloc, on_query);
    silent_done = 0;
    resolver_query(r, "mx.example.test", DNS_TYPE_A, on_silent, NULL);
    while (!silent_done && uv_now(&loop) < until + 3000)
        uv_run(&loop, UV_RUN_ONCE);
    check_int("resolver back", "outcome", silent_ans.info.outcome, DNS_OUT_RECORDS);
    uv_timer_stop(&guard);
    uv_close((uv_handle_t *)&guard, NULL);
}

/* The keep and hold rules (dane_cache.h), pure: state, expiry, now. */
static void check_rules(void)
{
    static const struct {
        enum dane_state state;
        uint64_t expires, now;
        int keeps, holds;
    } rows[] = {
        {DANE_NONE, 2000, 1000, 1, 1},       {DANE_ALL, 2000, 1000, 1, 1},
        {DANE_SOME, 2000, 1000, 1, 1},       {DANE_UNUSABLE, 2000, 1000, 1, 1},
        {DANE_TEMP, 2000, 1000, 0, 1},       {DANE_DEGRADED, 2000, 1000, 0, 1},
        {DANE_NONE, 1000, 1000, 0, 0},       {DANE_ALL, 999, 1000, 0, 0},
        {DANE_NONE, 0, 1000, 0, 0},          {DANE_ALL, 0, 0, 0, 0},
        {DANE_ALL, 1001, 1000, 1, 1},        {(enum dane_state)99, 2000, 1000, 0, 1},
        {DANE_NONE, UINT64_MAX, 1000, 1, 1},
    };
    char label[64];

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        snprintf(label, sizeof(label), "rule %zu (%s)", i, dane_state_name(rows[i].state));
        check_int(label, "keeps", dane_cache_keeps(rows[i].state, rows[i].expires, rows[i].now),
                  rows[i].keeps);
        check_int(label, "holds", dane_cache_holds(rows[i].expires, rows[i].now), rows[i].holds);
    }
}

/* Each entry is one allocation sized to its name, its hosts and its reason line. */
static void check_compact(struct resolver *r)
{
    struct dane_cache *c = dane_cache_create(r, 1000);
    static struct dane_facts f;
    const struct dane_facts *g;
    uint64_t later = resolver_now(r) + 60000;
    const char *why = "d0000001.unsigned.test does not exist (NXDOMAIN)";
    size_t one, two, empty;
    char name[64];

    memset(&f, 0, sizeof(f));
    f.state = DANE_NONE;
    f.why = why;
    one = dane_cache_entry_bytes("d0000001.unsigned.test", &f);
    /* header 39 and name 23, aligned to 64; the facts' head 32; the reason 49 */
    check_int("insecure domain", "entry bytes", (int)one, 145);
    empty = dane_cache_bytes(c);
    dane_cache_put(c, "d0000001.unsigned.test", &f, later);
    check_int("insecure domain", "bytes held", (int)(dane_cache_bytes(c) - empty), (int)one);
    g = dane_cache_get(c, "d0000001.unsigned.test");
    check_true("insecure domain", "held", g != NULL);
    check_str("insecure domain", "why", g != NULL ? g->why : "", why);
    check_true("insecure domain", "why its own copy", g != NULL && g->why != why);

    /* A DANE domain: its two hosts, not ten. */
    f.state = DANE_ALL;
    f.why = "every MX host of two.test has usable TLSA records";
    f.mx_secure = 1;
    f.nhosts = 2;
    snprintf(f.hosts[0].name, sizeof(f.hosts[0].name), "mx1.two.test");
    snprintf(f.hosts[1].name, sizeof(f.hosts[1].name), "mx2.two.test");
    f.hosts[1].ntlsa = 1;
    f.hosts[1].tlsa[0].len = 32;
    f.hosts[1].tlsa[0].data[31] = 0x5a;
    two = dane_cache_entry_bytes("two.test", &f);
    check_int("two hosts", "entry bytes", (int)two,
              (int)(48 + offsetof(struct dane_facts, hosts) + 2 * sizeof(f.hosts[0]) +
                    strlen(f.why) + 1));
    dane_cache_put(c, "two.test", &f, later);
    g = dane_cache_get(c, "two.test");
    check_true("two hosts", "copied",
               g != NULL && g->nhosts == 2 && strcmp(g->hosts[1].name, "mx2.two.test") == 0 &&
                   g->hosts[1].tlsa[0].data[31] == 0x5a && strcmp(g->why, f.why) == 0);

    /* A thousand insecure domains: about 150 bytes each, the hash table included. */
    f.state = DANE_NONE;
    f.nhosts = 0;
    f.why = why;
    empty = dane_cache_bytes(c);
    for (int i = 0; i < 998; i++) {
        snprintf(name, sizeof(name), "d%07d.unsigned.test", i + 2);
        dane_cache_put(c, name, &f, later);
    }
    check_int("1000 domains", "entries", (int)dane_cache_entries(c), 1000);
    check_true("1000 domains", "at most 160 bytes each",
               dane_cache_bytes(c) - empty <= 998 * 160 + 1024 * sizeof(void *));
    dane_cache_destroy(c);
}

/* Failures are asked again, never kept; a walk replaces what was held; the bound holds. */
static void check_put_rules(struct resolver *r)
{
    struct dane_cache *c = dane_cache_create(r, 3);
    struct dane_facts f;
    uint64_t later = resolver_now(r) + 60000;
    char name[32];

    memset(&f, 0, sizeof(f));
    f.why = "why";
    f.state = DANE_TEMP;
    dane_cache_put(c, "temp.test", &f, later);
    check_true("TEMP not kept", "holds", dane_cache_get(c, "temp.test") == NULL);
    f.state = DANE_DEGRADED;
    dane_cache_put(c, "degraded.test", &f, later);
    check_true("DEGRADED not kept", "holds", dane_cache_get(c, "degraded.test") == NULL);
    f.state = DANE_NONE;
    dane_cache_put(c, "zero.test", &f, 0);
    check_true("uncached answer: not kept", "holds", dane_cache_get(c, "zero.test") == NULL);
    dane_cache_put(c, "past.test", &f, resolver_now(r));
    check_true("expired answer: not kept", "holds", dane_cache_get(c, "past.test") == NULL);

    /* A walk that ends in a failure replaces what was held: nothing is kept. */
    f.state = DANE_ALL;
    dane_cache_put(c, "fails.test", &f, later);
    check_true("held", "holds", dane_cache_get(c, "fails.test") != NULL);
    f.state = DANE_TEMP;
    dane_cache_put(c, "fails.test", &f, later);
    check_true("TEMP replaces: dropped", "holds", dane_cache_get(c, "fails.test") == NULL);
    check_int("TEMP replaces", "entries", (int)dane_cache_entries(c), 0);
    f.state = DANE_NONE;

    /* A replaced entry answers with the new facts. */
    dane_cache_put(c, "x.test", &f, later);
    f.state = DANE_SOME;
    dane_cache_put(c, "x.test", &f, later);
    check_true("replaced", "holds",
               dane_cache_get(c, "x.test") != NULL &&
                   dane_cache_get(c, "x.test")->state == DANE_SOME);
    check_int("replaced", "entries", (int)dane_cache_entries(c), 1);
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "d%d.test", i);
        dane_cache_put(c, name, &f, later);
    }
    check_int("bound", "entries", (int)dane_cache_entries(c), 3);
    check_true("a hit's second chance used up, then evicted", "holds",
               dane_cache_get(c, "x.test") == NULL);
    check_true("most recent kept", "holds", dane_cache_get(c, "d4.test") != NULL);
    /* CLOCK: d2 (the tail), d3, d4 held; d2 hit: the next put passes it over, evicts d3. */
    check_true("tail hit", "holds", dane_cache_get(c, "d2.test") != NULL);
    dane_cache_put(c, "e.test", &f, later);
    check_true("hit tail kept (second chance)", "holds", dane_cache_get(c, "d2.test") != NULL);
    check_true("unreferenced next evicted", "holds", dane_cache_get(c, "d3.test") == NULL);
    check_true("new entry", "holds", dane_cache_get(c, "e.test") != NULL);
    dane_cache_destroy(c);
}

int main(void)
{
    struct config cfg;
    struct sockaddr_in sin;
    int namelen = sizeof(sin);
    char err[256], servers[64];
    struct resolver *r;
    struct dane_cache *c;

    uv_loop_init(&loop);
    uv_udp_init(&loop, &server);
    uv_ip4_addr("127.0.0.1", 0, &sin);
    if (uv_udp_bind(&server, (const struct sockaddr *)&sin, 0) != 0 ||
        uv_udp_getsockname(&server, (struct sockaddr *)&sin, &namelen) != 0) {
        printf("FAIL cannot bind a UDP socket on 127.0.0.1\n");
        return 1;
    }
    uv_udp_recv_start(&server, on_alloc, on_query);
    snprintf(servers, sizeof(servers), "127.0.0.1:%u", (unsigned)ntohs(sin.sin_port));
    if (config_load(&cfg, NULL, NULL, 0, err, sizeof(err)) < 0) {
        printf("FAIL config: %s\n", err);
        return 1;
    }
    free(cfg.dns_servers);
    cfg.dns_servers = strdup(servers);
    /* Every answer cached TTL_MS whatever its TTL, and room for 16 answers. */
    cfg.dns_min_ttl_ms = cfg.dns_max_ttl_ms = TTL_MS;
    cfg.dns_cache_size = 16;
    cfg.dns_timeout_ms = 400; /* check_silent: 200 ms a try, two tries */
    r = resolver_create(&loop, &cfg, err, sizeof(err));
    if (r == NULL) {
        printf("FAIL resolver: %s\n", err);
        return 1;
    }
    c = dane_cache_create(r, 100);
    check_invalidation(r, c);
    check_put_rules(r);
    check_silent(r);
    check_rules();
    check_compact(r);
    dane_cache_destroy(c);
    resolver_destroy(r);
    uv_close((uv_handle_t *)&server, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    check_int("loop", "closed", uv_loop_close(&loop), 0);
    config_free(&cfg);
    return check_summary("test_dane_cache");
}
