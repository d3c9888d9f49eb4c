/*
 * Private to the probe service (probe.c, probe_smtp.c, probe_dialogue.c, probe_tls.c); not
 * for other folders. probe.c owns the service and its cache entries (key, waiters, result,
 * queue); probe_smtp.c owns the connections (libuv TCP and a timer each), probe_dialogue.c
 * the SMTP/STARTTLS dialogue on each; probe_tls.c owns the mbedTLS configuration and judges the
 * peer's certificate (PKIX, DANE-EE, DANE-TA). A connection points at its entry until it has
 * delivered the result; it is freed from its last close callback, the service from the last
 * connection's (STYLE "Async lifetimes").
 */
#ifndef DAEMON_PROBE_INT_H
#define DAEMON_PROBE_INT_H

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "ehlo.h"
#include "lru.h"
#include "probe.h"
#include "waitlist.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Ciphertext waiting for mbedTLS: one TLS record is at most 2^14 + 2048 + 5 bytes (RFC 5246
 * 6.2.3); twice that leaves room for the next one. */
#define RX_CAP (2 * (16384 + 2048 + 5))
#define NBUCKETS 16384 /* a power of two above CACHE_MAX (probe.c): chains of one entry or so */
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
struct fleet;
struct fleet_req;

enum entry_state {
    E_IDLE,
    E_QUEUED,
    E_RUNNING,
    E_SHARED, /* reading the fleet tier before probing (in svc->shared, by q) */
};

struct tlsa_rec {
    uint8_t usage, selector, mtype;
    size_t len;
    uint8_t *data; /* into entry->tlsa_blob */
};

struct entry {
    struct entry *hnext; /* hash bucket */
    struct lru_link lru; /* svc->lru, while E_IDLE */
    struct lru_link q;   /* svc->queue, while E_QUEUED */
    struct probe_svc *svc;
    enum entry_state state;
    struct waitlist_link *waiters;
    struct conn *conn;       /* while E_RUNNING */
    struct fleet_req *share; /* while E_SHARED */
    uint64_t expires;        /* loop time in ms: res is served until then; 0: no result yet */
    uint64_t refresh_at;     /* loop time in ms: a hit from then on also probes again */
    uint64_t queued_at;      /* loop time in ms it joined the queue, while E_QUEUED */
    uint64_t fp;             /* fingerprint of the TLSA set, part of the key */
    struct tlsa_rec tlsa[PROBE_MAX_TLSA];
    size_t ntlsa;
    uint8_t *tlsa_blob;
    struct probe_result res;
    char host[HOST_MAX + 1];
    char addr[ADDR_MAX];
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t creq;
    uv_shutdown_t sreq;
    struct probe_svc *svc;
    struct waitlist_link link; /* on svc->conns until conn_close */
    struct entry *e;           /* NULL once the result is out or the entry dropped */
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
    struct lru lru;      /* E_IDLE entries; head: most recently used */
    struct lru queue;    /* E_QUEUED entries: in at the head, out at the tail */
    struct lru shared;   /* E_SHARED entries */
    struct fleet *fleet; /* the fleet tier; NULL: none */
    uv_timer_t qtimer;   /* the deadline of the queue's oldest entry */
    int qtimer_open;     /* qtimer not yet closed */
    size_t nentries;
    unsigned running, queued;
    unsigned long started;
    struct waitlist_link *conns; /* struct conn, by link: those not yet closing */
    unsigned nconns;             /* connections not yet freed */
    unsigned busy;               /* deliveries in progress */
    int destroying;
};

/* probe.c: the service's side of a connection. */

/*
 * probe_complete - the result in c->res goes to the waiters of c's entry and into the
 * cache; c no longer points at the entry. No-op when it does not (already delivered, or
 * the entry dropped). The callbacks may destroy the service: c stays valid (it is freed
 * from its close callbacks only).
 */
void probe_complete(struct conn *c);

/* probe_conn_freed - a connection of svc was freed: start queued probes, or free svc. */
void probe_conn_freed(struct probe_svc *svc);

/* probe_smtp.c: one connection's transport (libuv TCP and its timer). */

/*
 * probe_smtp_start - start the connection of a running entry e (e->conn is set). Failures,
 * synchronous ones too, are delivered from the connection's timer.
 */
void probe_smtp_start(struct probe_svc *svc, struct entry *e);

/* probe_smtp_close - close c (once; later calls are no-ops), delivering first a result
 * not yet out ("ended early" when no reason was set). Freed from the close callbacks. */
void probe_smtp_close(struct conn *c);

/* probe_smtp_write - queue n bytes from p (copied) on c's TCP stream; 0 or <0. A write
 * that fails later is told to probe_dialogue_write_failed(). */
int probe_smtp_write(struct conn *c, const void *p, size_t n);

/* probe_smtp_wait - c's timer fires in ms (probe_dialogue_timeout), replacing the deadline. */
void probe_smtp_wait(struct conn *c, unsigned ms);

/* probe_smtp_hang_up - end TLS (close_notify) and TCP (shutdown), then close c. */
void probe_smtp_hang_up(struct conn *c);

/*
 * probe_dialogue.c: the SMTP dialogue, a state machine moved on by the transport's events;
 * it does no I/O of its own (tests/fuzz/fuzz_probe_dialogue.c drives it without a network).
 */

/* probe_dialogue_connected - the TCP connection is up: the banner is awaited. */
void probe_dialogue_connected(struct conn *c);

/* probe_dialogue_input - bytes were added to c->rx (rx_off..rx_len unread): move on. */
void probe_dialogue_input(struct conn *c);

/* probe_dialogue_closed - the stream ended (UV_EOF) or failed (a libuv error, UV_ENOBUFS
 * when c->rx was full). */
void probe_dialogue_closed(struct conn *c, int err);

/* probe_dialogue_write_failed - a queued write failed with err (libuv error). */
void probe_dialogue_write_failed(struct conn *c, int err);

/* probe_dialogue_timeout - c's timer fired: the probe's deadline, or QUIT's grace. */
void probe_dialogue_timeout(struct conn *c);

/* probe_fail - the probe failed (the reason in c->res.why): deliver it and close c. */
void probe_fail(struct conn *c);

/* probe_step_name - where a probe was, for its reason: "waiting for the banner". */
const char *probe_step_name(enum conn_state st);

/* probe_why - c->res.why from fmt; probe_why_add - appended to what is there. */
void probe_why(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void probe_why_add(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* probe_tls.c: mbedTLS. */

/*
 * probe_tls_init - seed the random generator, take the CA bundle (opts->ca, a reference,
 * or opts->ca_file loaded now) and set up svc->conf for the client side. 0, or -1 with a
 * reason in err; either way probe_tls_free() releases what was set up.
 */
int probe_tls_init(struct probe_svc *svc, const struct probe_opts *opts, char *err, size_t errlen);
void probe_tls_free(struct probe_svc *svc);

/* probe_tls_begin - the TLS session of c over its receive buffer and uv_write; 0 or -1. */
int probe_tls_begin(struct conn *c);

/* probe_tls_handshake - one step: 1 done (c->res has the verdict), 0 more bytes needed,
 * -1 failed (the reason in c->res.why). */
int probe_tls_handshake(struct conn *c);

/* probe_tls_read - decrypt into buf: >0 bytes, 0 more bytes needed, -1 the session ended
 * (the reason in err). */
int probe_tls_read(struct conn *c, uint8_t *buf, size_t len, char *err, size_t errlen);

/* probe_tls_write - all n bytes of p under TLS: 0, or -1 with the reason in c->res.why. */
int probe_tls_write(struct conn *c, const char *p, size_t n);

/* probe_tls_error - mbedTLS's text for rc with its code, into out. */
void probe_tls_error(char *out, size_t n, int rc);

#endif
