/*
 * MX probes (RFC 8689 / draft-ietf-uta-smtp-require-tls 4.2.1) on libuv with mbedTLS 2.28.
 * A probe is one connection (struct conn: a uv_tcp_t, a uv_timer_t for its deadline, an
 * mbedTLS context whose BIO reads from the connection's receive buffer and writes through
 * uv_write) driven by a small state machine over SMTP replies parsed by proto/ehlo.c. The
 * service owns the cache entries (struct entry: the key, the waiters, the result) and the
 * connections; a connection points at its entry until it has delivered the result, then
 * finishes its QUIT alone. A connection is freed from its last close callback, the service
 * from the last connection's (STYLE "Async lifetimes" 1-5).
 */
#include "probe.h"

#include <arpa/inet.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/sha256.h>
#include <mbedtls/sha512.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "cafile.h"
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ehlo.h"
#include "escape.h"
#include "lru.h"
#include "waitlist.h"
#include "xalloc.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Ciphertext waiting for mbedTLS: one TLS record is at most 2^14 + 2048 + 5 bytes (RFC 5246
 * 6.2.3); twice that leaves room for the next one. */
#define RX_CAP (2 * (16384 + 2048 + 5))
/* A probe that got no answer at all (no connection, time-out, reset) is remembered for at
 * most this long, so a host that was down briefly is asked again soon. */
#define FAIL_TTL_MS (5u * 60 * 1000)
/* After the result: how long the server gets to answer QUIT (RFC 5321 4.1.1.10). */
#define QUIT_GRACE_MS 2000u
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
#define NBUCKETS 1024
#define HOST_MAX 253
#define ADDR_MAX 46 /* INET6_ADDRSTRLEN */

enum conn_state {
    ST_CONNECT,   /* TCP connect in progress */
    ST_BANNER,    /* waiting for 220 */
    ST_EHLO1,     /* waiting for the EHLO reply in clear */
    ST_STARTTLS,  /* waiting for 220 to STARTTLS */
    ST_HANDSHAKE, /* TLS handshake */
    ST_EHLO2,     /* waiting for the EHLO reply under TLS */
    ST_QUIT,      /* the result is out; waiting for the reply to QUIT */
};

/*
 * The probe of an entry; a cached result (res, expires) may be there in any state. Only
 * E_IDLE entries are in svc->lru (the eviction order): E_QUEUED ones are in svc->queue and
 * E_RUNNING ones belong to their connection, and neither may be evicted.
 */
enum entry_state { E_IDLE, E_QUEUED, E_RUNNING };

struct tlsa_rec {
    uint8_t usage, selector, mtype;
    size_t len;
    uint8_t *data; /* into entry->tlsa_blob */
};

struct probe_req {
    struct waitlist_link link; /* on the entry's waiters, or on a list being delivered */
    struct entry *e;           /* NULL once delivery has begun */
    probe_cb cb;
    void *arg;
    int delivering;
};

struct entry {
    struct entry *hnext; /* hash bucket */
    struct lru_link lru; /* svc->lru, while E_IDLE */
    struct lru_link q;   /* svc->queue, while E_QUEUED */
    struct probe_svc *svc;
    enum entry_state state;
    struct waitlist_link *waiters;
    struct conn *conn;   /* while E_RUNNING */
    uint64_t expires;    /* loop time in ms: res is served until then; 0: no result yet */
    uint64_t refresh_at; /* loop time in ms: a hit from then on also probes again */
    uint64_t queued_at;  /* loop time in ms it joined the queue, while E_QUEUED */
    uint64_t fp;         /* fingerprint of the TLSA set, part of the key */
    struct tlsa_rec tlsa[PROBE_MAX_TLSA];
    size_t ntlsa;
    uint8_t *tlsa_blob;
    struct probe_result res;
    char host[HOST_MAX + 1];
    char addr[ADDR_MAX];
};

struct wreq {
    uv_write_t w;
    struct conn *c;
    char data[];
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t creq;
    uv_shutdown_t sreq;
    struct probe_svc *svc;
    struct conn *next, **pprev; /* svc->conns */
    struct entry *e;            /* NULL once the result is out or the entry dropped */
    enum conn_state st;
    int open;              /* handles not yet closed */
    int closing;           /* uv_close called: callbacks arriving now only free memory */
    int tls;               /* ssl is set up and carries the session */
    int hungup;            /* QUIT answered: shutting down, nothing more is read */
    int ehlo2_read;        /* the EHLO reply after STARTTLS was read and parsed */
    const char *sync_fail; /* a failure found while starting, reported from the timer */
    uint64_t started_ms;
    mbedtls_ssl_context ssl;
    struct probe_result res;
    struct ehlo_reply reply;
    char host[HOST_MAX + 1];
    char addr[ADDR_MAX];
    size_t rx_off, rx_len;
    uint8_t rx[RX_CAP];
};

struct probe_svc {
    uv_loop_t *loop;
    struct probe_opts opts;
    char *helo_name;
    struct cafile *ca; /* the bundle the configuration verifies against (a reference) */
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_ssl_config conf;
    struct entry *buckets[NBUCKETS];
    struct lru lru;    /* E_IDLE entries; head: most recently used */
    struct lru queue;  /* E_QUEUED entries: in at the head, out at the tail */
    uv_timer_t qtimer; /* the deadline of the queue's oldest entry */
    int qtimer_open;   /* qtimer not yet closed */
    size_t nentries;
    unsigned running, queued;
    unsigned long started;
    struct conn *conns;
    unsigned nconns; /* connections not yet freed */
    unsigned busy;   /* deliveries in progress */
    int destroying;
};

static void conn_close(struct conn *c);
static void process(struct conn *c);
static void on_timer(uv_timer_t *t);
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
    mbedtls_ssl_config_free(&svc->conf);
    cafile_unref(svc->ca);
    mbedtls_ctr_drbg_free(&svc->drbg);
    mbedtls_entropy_free(&svc->entropy);
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

/*
 * The connection's result goes to its entry's waiters and into the cache. It replaces what
 * was cached, also after a background refresh: the host is as it was seen now. But when a
 * good result is still live and the refresh did not get as far as an authenticated TLS
 * session and the EHLO reply in it (no connection, time-out, no STARTTLS, a failed
 * handshake or certificate), the old result stays until its own expiry, and is probed
 * again after the failure lifetime: a host that is down for a while, or a path that strips
 * STARTTLS, does not turn a known good host into a failure for the whole probe_ttl.
 */
static void complete(struct conn *c)
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
    }
    waitlist_take(&e->waiters, &list);
    /* Not cached: the entry goes now; the result is delivered from the connection's copy. */
    if (ttl == 0)
        entry_free(svc, e);
    deliver(svc, &list, &res, 0);
    svc_maybe_free(svc);
}

static void set_why(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_why(struct conn *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->res.why, sizeof(c->res.why), fmt, ap);
    va_end(ap);
}

/* The probe failed: the reason is in c->res.why; deliver and close. */
static void fail(struct conn *c)
{
    complete(c);
    conn_close(c);
}

static const char *step_name(enum conn_state st)
{
    switch (st) {
    case ST_CONNECT:
        return "connecting";
    case ST_BANNER:
        return "waiting for the banner";
    case ST_EHLO1:
        return "waiting for the EHLO reply";
    case ST_STARTTLS:
        return "waiting for the reply to STARTTLS";
    case ST_HANDSHAKE:
        return "in the TLS handshake";
    case ST_EHLO2:
        return "waiting for the EHLO reply after STARTTLS";
    case ST_QUIT:
        return "waiting for the reply to QUIT";
    }
    return "?";
}

/* Writing. */

static void on_write(uv_write_t *w, int status)
{
    struct wreq *wr = container_of(w, struct wreq, w);
    struct conn *c = wr->c;

    free(wr);
    if (status < 0 && !c->closing) {
        if (c->st == ST_QUIT) {
            conn_close(c);
            return;
        }
        set_why(c, "sending to %s failed %s: %s", c->addr, step_name(c->st), uv_strerror(status));
        fail(c);
    }
}

static int send_raw(struct conn *c, const void *p, size_t n)
{
    struct wreq *wr;
    uv_buf_t buf;
    int rc;

    if (c->closing)
        return -1;
    wr = xmalloc(sizeof(*wr) + n);
    wr->c = c;
    memcpy(wr->data, p, n);
    buf = uv_buf_init(wr->data, (unsigned)n);
    rc = uv_write(&wr->w, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
    if (rc < 0) {
        free(wr);
        return rc;
    }
    return 0;
}

/* mbedTLS BIO: writes go straight to uv_write (a copy each), so they never block. */
static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    struct conn *c = ctx;

    if (send_raw(c, buf, len) < 0)
        return MBEDTLS_ERR_NET_SEND_FAILED;
    return (int)len;
}

/* mbedTLS BIO: reads take what the connection has buffered, else "want read". */
static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct conn *c = ctx;
    size_t n = c->rx_len - c->rx_off;

    if (n == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (n > len)
        n = len;
    memcpy(buf, c->rx + c->rx_off, n);
    c->rx_off += n;
    return (int)n;
}

static void tls_error(char *out, size_t n, int rc)
{
    char buf[160];

    mbedtls_strerror(rc, buf, sizeof(buf));
    snprintf(out, n, "%s (-0x%04x)", buf, (unsigned)-rc);
}

/* Send one command line, in clear or under TLS. 0, or -1 with the reason set. */
static int send_cmd(struct conn *c, const char *line)
{
    size_t n = strlen(line), off = 0;

    ehlo_reply_init(&c->reply);
    if (!c->tls) {
        if (send_raw(c, line, n) < 0) {
            set_why(c, "sending to %s failed %s", c->addr, step_name(c->st));
            return -1;
        }
        return 0;
    }
    while (off < n) {
        int rc = mbedtls_ssl_write(&c->ssl, (const unsigned char *)line + off, n - off);

        if (rc < 0) {
            char err[200];

            tls_error(err, sizeof(err), rc);
            set_why(c, "TLS write to %s failed: %s", c->addr, err);
            return -1;
        }
        off += (size_t)rc;
    }
    return 0;
}

/* Steps. */

static void quit(struct conn *c)
{
    complete(c);
    if (c->closing)
        return;
    c->st = ST_QUIT;
    if (send_cmd(c, "QUIT\r\n") < 0) {
        conn_close(c);
        return;
    }
    uv_timer_start(
        &c->timer, on_timer,
        QUIT_GRACE_MS < c->svc->opts.timeout_ms ? QUIT_GRACE_MS : c->svc->opts.timeout_ms, 0);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = container_of(req, struct conn, sreq);

    (void)status;
    conn_close(c);
}

/* The server answered QUIT: say goodbye to TLS, then to TCP. */
static void hang_up(struct conn *c)
{
    if (c->hungup)
        return;
    c->hungup = 1;
    if (c->tls)
        mbedtls_ssl_close_notify(&c->ssl);
    if (c->closing || uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
        conn_close(c);
}

static const char *pkix_failure(uint32_t flags)
{
    if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
        return "not issued by a trusted CA";
    if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH)
        return "not valid for the MX host name";
    if (flags & MBEDTLS_X509_BADCERT_EXPIRED)
        return "expired";
    if (flags & MBEDTLS_X509_BADCERT_FUTURE)
        return "not yet valid";
    if (flags & MBEDTLS_X509_BADCERT_REVOKED)
        return "revoked";
    if (flags &
        (MBEDTLS_X509_BADCERT_BAD_MD | MBEDTLS_X509_BADCERT_BAD_PK | MBEDTLS_X509_BADCERT_BAD_KEY))
        return "signed with an unacceptable algorithm or key";
    if (flags & (MBEDTLS_X509_BADCERT_KEY_USAGE | MBEDTLS_X509_BADCERT_EXT_KEY_USAGE |
                 MBEDTLS_X509_BADCERT_NS_CERT_TYPE))
        return "not meant for a TLS server";
    return "failed verification";
}

/* RFC 6698 2.1.2-2.1.3 and RFC 7672 3.1: does crt match one record's selector and type? */
static int tlsa_match(const mbedtls_x509_crt *crt, const struct tlsa_rec *t)
{
    const unsigned char *p;
    size_t n;
    unsigned char md[64];

    if (t->selector == 0) {
        p = crt->raw.p;
        n = crt->raw.len;
    } else if (t->selector == 1) {
        p = crt->pk_raw.p;
        n = crt->pk_raw.len;
    } else {
        return 0;
    }
    if (p == NULL || n == 0)
        return 0;
    switch (t->mtype) {
    case 0:
        return n == t->len && memcmp(p, t->data, n) == 0;
    case 1:
        return t->len == 32 && mbedtls_sha256_ret(p, n, md, 0) == 0 && memcmp(md, t->data, 32) == 0;
    case 2:
        return t->len == 64 && mbedtls_sha512_ret(p, n, md, 0) == 0 && memcmp(md, t->data, 64) == 0;
    }
    return 0;
}

/*
 * DANE (RFC 7672 3.1): DANE-EE(3) matches the server's own certificate, and names and dates
 * do not matter (3.1.1). DANE-TA(2) matches a CA certificate the server presented in its
 * chain (3.1.2: servers must include the TA); the chain must then verify up to that
 * certificate as the only trust anchor, for the MX host name (3.2.2) and within its dates.
 * A TA given only as a bare public key outside the chain is not supported.
 * Returns 1 on a match with a description in out.
 */
static int dane_check(struct conn *c, const struct entry *e, char *out, size_t n)
{
    const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&c->ssl);

    if (peer == NULL)
        return 0;
    for (size_t i = 0; i < e->ntlsa; i++) {
        const struct tlsa_rec *t = &e->tlsa[i];

        if (t->usage == 3 && tlsa_match(peer, t)) {
            snprintf(out, n, "DANE-EE %u %u %u", t->usage, t->selector, t->mtype);
            return 1;
        }
        if (t->usage != 2)
            continue;
        for (const mbedtls_x509_crt *ca = peer->next; ca != NULL; ca = ca->next) {
            mbedtls_x509_crt ta;
            uint32_t flags = 0;
            int ok;

            if (!tlsa_match(ca, t))
                continue;
            mbedtls_x509_crt_init(&ta);
            ok = mbedtls_x509_crt_parse_der(&ta, ca->raw.p, ca->raw.len) == 0 &&
                 mbedtls_x509_crt_verify((mbedtls_x509_crt *)peer, &ta, NULL, c->host, &flags, NULL,
                                         NULL) == 0;
            mbedtls_x509_crt_free(&ta);
            if (ok) {
                snprintf(out, n, "DANE-TA %u %u %u", t->usage, t->selector, t->mtype);
                return 1;
            }
        }
    }
    return 0;
}

static void handshake_done(struct conn *c)
{
    uint32_t flags = mbedtls_ssl_get_verify_result(&c->ssl);
    char dane[40] = "";
    const char *v = mbedtls_ssl_get_version(&c->ssl), *cs = mbedtls_ssl_get_ciphersuite(&c->ssl);

    c->res.tls_ok = 1;
    snprintf(c->res.tls_version, sizeof(c->res.tls_version), "%s", v ? v : "");
    snprintf(c->res.cipher, sizeof(c->res.cipher), "%s", cs ? cs : "");
    /* RFC 6125 via mbedTLS: the chain to the CA bundle, and the MX host name in SAN/CN. */
    c->res.pkix_ok = flags == 0;
    c->res.ntlsa = c->e ? (unsigned)c->e->ntlsa : 0;
    if (c->e != NULL && c->e->ntlsa > 0)
        c->res.dane_ok = dane_check(c, c->e, dane, sizeof(dane));
    set_why(c, "%s %s; PKIX %s%s; DANE %s%s; ", c->res.tls_version, c->res.cipher,
            c->res.pkix_ok ? "ok" : "failed: certificate ",
            c->res.pkix_ok ? "" : pkix_failure(flags),
            c->res.ntlsa == 0 ? "not tried (no TLSA records)"
            : c->res.dane_ok  ? "ok: "
                              : "failed: no TLSA record matched",
            c->res.dane_ok ? dane : "");
    c->st = ST_EHLO2;
}

/* A complete reply in c->reply for the current step. */
static void on_reply(struct conn *c)
{
    struct ehlo_reply *r = &c->reply;
    struct ehlo_caps caps;
    char text[120], esc[200], line[300];

    ehlo_reply_first_line(r, text, sizeof(text));
    escape_log(esc, sizeof(esc), text, strlen(text));
    switch (c->st) {
    case ST_BANNER:
        /* RFC 5321 4.3.1: 220 is the greeting; 554 (or anything else) refuses the session. */
        if (r->code != 220) {
            set_why(c, "banner refused the session: %d %s", r->code, esc);
            quit(c);
            return;
        }
        c->st = ST_EHLO1;
        snprintf(line, sizeof(line), "EHLO %s\r\n", c->svc->helo_name);
        if (send_cmd(c, line) < 0)
            fail(c);
        return;
    case ST_EHLO1:
        if (ehlo_caps_parse(r, &caps, NULL) != EHLO_OK) {
            set_why(c, "EHLO refused: %d %s", r->code, esc);
            quit(c);
            return;
        }
        c->res.caps = caps.flags;
        /* RFC 3207 4: STARTTLS only when the server lists it. */
        if (!(caps.flags & EHLO_CAP_STARTTLS)) {
            set_why(c, "STARTTLS not offered%s",
                    caps.flags & EHLO_CAP_REQUIRETLS ? " (REQUIRETLS listed in clear, ignored)"
                                                     : "");
            quit(c);
            return;
        }
        c->res.starttls_offered = 1;
        c->st = ST_STARTTLS;
        if (send_cmd(c, "STARTTLS\r\n") < 0)
            fail(c);
        return;
    case ST_STARTTLS:
        if (r->code != 220) {
            set_why(c, "STARTTLS refused: %d %s", r->code, esc);
            quit(c);
            return;
        }
        /* RFC 3207 6 (CVE-2011-0411): anything sent in clear after the 220 is dropped. */
        c->rx_off = c->rx_len = 0;
        if (mbedtls_ssl_setup(&c->ssl, &c->svc->conf) != 0 ||
            mbedtls_ssl_set_hostname(&c->ssl, c->host) != 0) {
            set_why(c, "cannot set up TLS");
            fail(c);
            return;
        }
        mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
        c->tls = 1;
        c->st = ST_HANDSHAKE;
        return;
    case ST_EHLO2: {
        size_t off = strlen(c->res.why);

        if (ehlo_caps_parse(r, &caps, NULL) != EHLO_OK) {
            snprintf(c->res.why + off, sizeof(c->res.why) - off,
                     "EHLO after STARTTLS refused: %d %s", r->code, esc);
        } else {
            c->ehlo2_read = 1;
            c->res.caps = caps.flags;
            /* RFC 8689 4.2.1 step 5: REQUIRETLS in the EHLO reply after STARTTLS. */
            c->res.requiretls_advertised = (caps.flags & EHLO_CAP_REQUIRETLS) != 0;
            snprintf(c->res.why + off, sizeof(c->res.why) - off, "REQUIRETLS %s",
                     c->res.requiretls_advertised ? "advertised" : "not advertised");
        }
        quit(c);
        return;
    }
    case ST_QUIT:
        hang_up(c);
        return;
    case ST_CONNECT:
    case ST_HANDSHAKE:
        break;
    }
}

/* Feed n bytes of SMTP to the reply parser; 1: a reply was handled, 0: more needed, -1: failed. */
static int feed_reply(struct conn *c, const uint8_t *p, size_t n, size_t *used)
{
    const char *why = NULL;
    int rc = ehlo_reply_feed(&c->reply, (const char *)p, n, used, &why);

    if (rc == 0)
        return 0;
    if (rc < 0) {
        if (c->st == ST_QUIT) {
            hang_up(c);
            return -1;
        }
        if (c->st == ST_EHLO2) {
            size_t off = strlen(c->res.why);

            snprintf(c->res.why + off, sizeof(c->res.why) - off, "bad reply %s: %s",
                     step_name(c->st), why);
        } else {
            set_why(c, "bad reply from %s %s: %s", c->addr, step_name(c->st), why);
        }
        fail(c);
        return -1;
    }
    on_reply(c);
    return 1;
}

/* Move the connection on as far as the bytes in hand allow. */
static void process(struct conn *c)
{
    char line[300];

    while (!c->closing && !c->hungup) {
        if (c->st == ST_HANDSHAKE) {
            int rc = mbedtls_ssl_handshake(&c->ssl);

            if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
                return;
            if (rc != 0) {
                char err[200];

                tls_error(err, sizeof(err), rc);
                set_why(c, "TLS handshake with %s failed: %s", c->addr, err);
                fail(c);
                return;
            }
            handshake_done(c);
            snprintf(line, sizeof(line), "EHLO %s\r\n", c->svc->helo_name);
            if (send_cmd(c, line) < 0) {
                fail(c);
                return;
            }
            continue;
        }
        if (c->tls) {
            /* Under TLS: decrypt what is there; a reply's trailing bytes are dropped. */
            uint8_t buf[1024];
            size_t used;
            int n = mbedtls_ssl_read(&c->ssl, buf, sizeof(buf));

            if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE)
                return;
            if (n <= 0) {
                char err[200];

                if (c->st == ST_QUIT) {
                    conn_close(c);
                    return;
                }
                if (n == 0 || n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
                    snprintf(err, sizeof(err), "the server closed the TLS session");
                else
                    tls_error(err, sizeof(err), n);
                {
                    size_t off = strlen(c->res.why);

                    snprintf(c->res.why + off, sizeof(c->res.why) - off, "%s %s", err,
                             step_name(c->st));
                }
                fail(c);
                return;
            }
            if (feed_reply(c, buf, (size_t)n, &used) < 0)
                return;
            continue;
        }
        /* In clear: the reply parser reads the receive buffer directly. */
        {
            size_t used = 0;
            int rc;

            if (c->rx_off == c->rx_len)
                return;
            rc = feed_reply(c, c->rx + c->rx_off, c->rx_len - c->rx_off, &used);
            if (rc < 0)
                return;
            if (rc == 0) {
                c->rx_off = c->rx_len = 0;
                return;
            }
            /* After STARTTLS's 220 on_reply emptied the buffer; elsewhere keep the rest. */
            if (c->rx_len > 0)
                c->rx_off += used;
        }
    }
}

/* libuv callbacks. */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = container_of((uv_tcp_t *)h, struct conn, tcp);

    (void)suggested;
    if (c->rx_off > 0) {
        memmove(c->rx, c->rx + c->rx_off, c->rx_len - c->rx_off);
        c->rx_len -= c->rx_off;
        c->rx_off = 0;
    }
    *buf = uv_buf_init((char *)c->rx + c->rx_len, (unsigned)(RX_CAP - c->rx_len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = container_of((uv_tcp_t *)s, struct conn, tcp);

    (void)buf;
    if (c->closing || nread == 0)
        return;
    if (nread < 0) {
        if (c->st == ST_QUIT) {
            conn_close(c);
            return;
        }
        if (c->st == ST_EHLO2) {
            size_t off = strlen(c->res.why);

            snprintf(c->res.why + off, sizeof(c->res.why) - off, "connection %s %s",
                     nread == UV_EOF ? "closed by the server" : uv_strerror((int)nread),
                     step_name(c->st));
        } else {
            set_why(c, "connection to %s %s %s", c->addr,
                    nread == UV_EOF       ? "closed by the server"
                    : nread == UV_ENOBUFS ? "overflowed its receive buffer"
                                          : uv_strerror((int)nread),
                    step_name(c->st));
        }
        fail(c);
        return;
    }
    c->rx_len += (size_t)nread;
    process(c);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = container_of(req, struct conn, creq);

    if (c->closing)
        return;
    if (status < 0) {
        set_why(c, "no connection to %s port %u: %s", c->addr, c->svc->opts.port,
                uv_strerror(status));
        fail(c);
        return;
    }
    c->res.connected = 1;
    c->st = ST_BANNER;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
        set_why(c, "cannot read from %s", c->addr);
        fail(c);
    }
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = container_of(t, struct conn, timer);

    if (c->closing)
        return;
    if (c->sync_fail != NULL) {
        set_why(c, "%s", c->sync_fail);
        fail(c);
        return;
    }
    if (c->st == ST_QUIT) {
        conn_close(c);
        return;
    }
    /* The probe's deadline: the whole probe, whatever step it is in. */
    c->res.timed_out = 1;
    if (c->st == ST_EHLO2) {
        size_t off = strlen(c->res.why);

        snprintf(c->res.why + off, sizeof(c->res.why) - off, "timed out after %u ms %s",
                 c->svc->opts.timeout_ms, step_name(c->st));
    } else {
        set_why(c, "timed out after %u ms %s (%s)", c->svc->opts.timeout_ms, step_name(c->st),
                c->addr);
    }
    fail(c);
}

static void on_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct probe_svc *svc = c->svc;

    if (--c->open > 0)
        return;
    mbedtls_ssl_free(&c->ssl);
    free(c);
    svc->nconns--;
    svc->running--;
    if (!svc->destroying)
        pump(svc);
    svc_maybe_free(svc);
}

static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    *c->pprev = c->next;
    if (c->next)
        c->next->pprev = c->pprev;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_closed);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    /* Closed before its result was out (not by probe_svc_destroy, which drops the entry). */
    if (c->e != NULL) {
        if (c->res.why[0] == '\0')
            set_why(c, "probe of %s ended early", c->addr);
        complete(c);
    }
}

/* Start the connection of a running entry. Failures are reported from the timer. */
static void conn_start(struct probe_svc *svc, struct entry *e)
{
    struct conn *c = xcalloc(1, sizeof(*c));
    struct sockaddr_storage ss;
    int rc;

    c->svc = svc;
    c->e = e;
    e->conn = c;
    c->st = ST_CONNECT;
    c->started_ms = uv_hrtime() / 1000000;
    memcpy(c->host, e->host, sizeof(c->host));
    memcpy(c->addr, e->addr, sizeof(c->addr));
    mbedtls_ssl_init(&c->ssl);
    c->next = svc->conns;
    if (c->next)
        c->next->pprev = &c->next;
    c->pprev = &svc->conns;
    svc->conns = c;
    svc->nconns++;
    svc->started++;
    uv_tcp_init(svc->loop, &c->tcp);
    uv_timer_init(svc->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open = 2;

    memset(&ss, 0, sizeof(ss));
    if (strchr(c->addr, ':') != NULL) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)svc->opts.port);
        inet_pton(AF_INET6, c->addr, &s6->sin6_addr);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)svc->opts.port);
        inet_pton(AF_INET, c->addr, &s4->sin_addr);
    }
    rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&ss, on_connect);
    if (rc < 0) {
        c->sync_fail = uv_strerror(rc);
        uv_timer_start(&c->timer, on_timer, 0, 0);
        return;
    }
    uv_timer_start(&c->timer, on_timer, svc->opts.timeout_ms, 0);
}

/* Start queued probes while there is room. */
static void pump(struct probe_svc *svc)
{
    while (!svc->destroying && svc->running < svc->opts.max_concurrent && svc->queue.tail != NULL) {
        struct entry *e = lru_entry(svc->queue.tail, struct entry, q);

        e->state = E_RUNNING;
        queue_unlink(svc, e);
        svc->running++;
        conn_start(svc, e);
    }
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

struct probe_req *probe_start(struct probe_svc *svc, const char *host, const char *addr,
                              const struct probe_tlsa *tlsa, size_t ntlsa, probe_cb cb, void *arg)
{
    char norm[ADDR_MAX], esc[80];
    unsigned char bin[16];
    struct entry *e;
    struct probe_req *w;
    uint64_t fp, now;

    if (svc->destroying)
        return NULL;
    if (ntlsa > PROBE_MAX_TLSA)
        ntlsa = PROBE_MAX_TLSA;

    /* Bad arguments: a result at once, not cached. */
    if (host == NULL || !host_ok(host) || addr == NULL ||
        (inet_pton(AF_INET, addr, bin) != 1 && inet_pton(AF_INET6, addr, bin) != 1)) {
        struct probe_result res;

        memset(&res, 0, sizeof(res));
        res.host = host ? host : "";
        res.addr = addr ? addr : "";
        if (host == NULL || !host_ok(host)) {
            escape_log(esc, sizeof(esc), host ? host : "(null)", host ? strlen(host) : 6);
            snprintf(res.why, sizeof(res.why), "host name %s unfit for SNI and EHLO", esc);
        } else {
            escape_log(esc, sizeof(esc), addr ? addr : "(null)", addr ? strlen(addr) : 6);
            snprintf(res.why, sizeof(res.why), "%s is not a numeric IPv4 or IPv6 address", esc);
        }
        cb(arg, &res);
        return NULL;
    }
    if (strchr(addr, ':') != NULL)
        inet_ntop(AF_INET6, bin, norm, sizeof(norm));
    else
        inet_ntop(AF_INET, bin, norm, sizeof(norm));

    sweep(svc);
    fp = tlsa_fingerprint(tlsa, ntlsa);
    e = find(svc, host, norm, fp, tlsa, ntlsa);
    now = uv_now(svc->loop);
    if (e != NULL && e->expires > now) {
        struct probe_result res = e->res;
        char rhost[HOST_MAX + 1], raddr[ADDR_MAX];

        /*
         * A hit, also while a refresh runs. Past half its lifetime the result is probed
         * again in the background (no waiter; the queue bounds it like any probe, and when
         * it is full a later hit tries again), so a host in use stays cached and its next
         * asker does not wait.
         */
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
        return NULL;
    }
    /*
     * A probe that would have to queue behind a full queue: a failure at once, not cached
     * (the next asker may find room). A probe already running or queued is joined instead.
     */
    if ((e == NULL || e->state == E_IDLE) && svc->queued >= queue_cap(svc)) {
        struct probe_result res;
        char why[sizeof(res.why)];

        snprintf(why, sizeof(why),
                 QUEUE_FULL_WHY ": %u probes wait behind %u running (probe_max_concurrent %u)",
                 svc->queued, svc->running, svc->opts.max_concurrent);
        fail_result(&res, host, norm, why);
        cb(arg, &res);
        return NULL;
    }
    if (e == NULL) {
        size_t total = 0, off = 0;

        e = xcalloc(1, sizeof(*e));
        e->svc = svc;
        snprintf(e->host, sizeof(e->host), "%s", host);
        snprintf(e->addr, sizeof(e->addr), "%s", norm);
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
        e->state = E_IDLE; /* not yet queued: below */
        e->hnext = svc->buckets[bucket(e->host, e->addr, fp)];
        svc->buckets[bucket(e->host, e->addr, fp)] = e;
        svc->nentries++;
        lru_push_front(&svc->lru, &e->lru);
    }

    w = xcalloc(1, sizeof(*w));
    w->e = e;
    w->cb = cb;
    w->arg = arg;
    waitlist_push(&e->waiters, &w->link);
    if (e->state == E_IDLE) {
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

struct probe_svc *probe_svc_create(uv_loop_t *loop, const struct probe_opts *opts, char *err,
                                   size_t errlen)
{
    static const char pers[] = "tlspolicyd probe";
    struct probe_svc *svc = xcalloc(1, sizeof(*svc));
    char host[256], msg[160];
    int rc;

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
    if (opts->helo_name && opts->helo_name[0]) {
        svc->helo_name = xstrdup(opts->helo_name);
    } else {
        /* RFC 5321 4.1.1.1: the client's name; the machine's, as Postfix's myhostname. */
        if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0') {
            snprintf(err, errlen, "probe_helo_name is empty and gethostname() failed");
            goto fail_early;
        }
        host[sizeof(host) - 1] = '\0';
        svc->helo_name = xstrdup(host);
    }
    svc->opts.helo_name = svc->helo_name;

    mbedtls_entropy_init(&svc->entropy);
    mbedtls_ctr_drbg_init(&svc->drbg);
    mbedtls_ssl_config_init(&svc->conf);
    rc = mbedtls_ctr_drbg_seed(&svc->drbg, mbedtls_entropy_func, &svc->entropy,
                               (const unsigned char *)pers, sizeof(pers) - 1);
    if (rc != 0) {
        mbedtls_strerror(rc, msg, sizeof(msg));
        snprintf(err, errlen, "mbedTLS random generator: %s", msg);
        goto fail;
    }
    /* The bundle is parsed once (cafile.c), before the daemon gives up root. */
    svc->ca = opts->ca ? cafile_ref(opts->ca)
                       : cafile_load(opts->ca_file && opts->ca_file[0] ? opts->ca_file
                                                                       : PROBE_SYSTEM_CA_FILE,
                                     err, errlen);
    if (svc->ca == NULL)
        goto fail;
    rc = mbedtls_ssl_config_defaults(&svc->conf, MBEDTLS_SSL_IS_CLIENT,
                                     MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc != 0) {
        mbedtls_strerror(rc, msg, sizeof(msg));
        snprintf(err, errlen, "mbedTLS configuration: %s", msg);
        goto fail;
    }
    /*
     * The handshake completes whatever the certificate; PKIX and DANE are judged afterwards
     * from the verification result and the chain, so the probe can report both (and the
     * EHLO after STARTTLS) whichever fails.
     */
    mbedtls_ssl_conf_authmode(&svc->conf, MBEDTLS_SSL_VERIFY_OPTIONAL);
    mbedtls_ssl_conf_ca_chain(&svc->conf, cafile_chain(svc->ca), NULL);
    mbedtls_ssl_conf_rng(&svc->conf, mbedtls_ctr_drbg_random, &svc->drbg);
    /* RFC 8996: TLS 1.2 at least. */
    mbedtls_ssl_conf_min_version(&svc->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    uv_timer_init(loop, &svc->qtimer);
    svc->qtimer_open = 1;
    return svc;

fail:
    mbedtls_ssl_config_free(&svc->conf);
    cafile_unref(svc->ca);
    mbedtls_ctr_drbg_free(&svc->drbg);
    mbedtls_entropy_free(&svc->entropy);
fail_early:
    free(svc->helo_name);
    free(svc);
    return NULL;
}

void probe_set_ca(struct probe_svc *svc, struct cafile *ca)
{
    /*
     * Connections point at svc->conf, which points at the chain; mbedTLS 2.28 reads the
     * chain only within the handshake step that verifies the peer (no restartable ECC in
     * Debian's build), and the loop runs one step at a time, so no step sees the old chain
     * after this returns and the old one may go.
     */
    cafile_ref(ca);
    mbedtls_ssl_conf_ca_chain(&svc->conf, cafile_chain(ca), NULL);
    cafile_unref(svc->ca);
    svc->ca = ca;
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
     * when closed.
     */
    while (svc->queue.head != NULL)
        entry_free(svc, lru_entry(svc->queue.head, struct entry, q));
    for (struct conn *c = svc->conns; c != NULL; c = c->next)
        if (c->e != NULL)
            entry_free(svc, c->e);
    while (svc->lru.head != NULL)
        entry_free(svc, lru_entry(svc->lru.head, struct entry, lru));
    while (svc->conns != NULL)
        conn_close(svc->conns);
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
