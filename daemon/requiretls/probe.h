/*
 * MX probes for REQUIRETLS (draft-ietf-uta-smtp-require-tls-06 / RFC 8689 section 4.2.1):
 * one SMTP session with an MX host address (RFC 5321) that reads the banner, sends EHLO,
 * needs STARTTLS (RFC 3207), makes the TLS handshake with SNI, authenticates the server
 * (PKIX for the MX host name against a CA bundle, and DANE-EE / DANE-TA against the TLSA
 * records the caller passes, RFC 7672), sends EHLO again, reads whether REQUIRETLS is
 * advertised, and QUITs. libuv carries the bytes, mbedTLS does TLS over a memory BIO.
 * Results are cached per host, address and TLSA set; concurrent askers share one probe.
 * A cached result past half its lifetime is still delivered at once, and the hit also
 * starts a background probe whose result replaces it: a host in use stays cached and its
 * askers do not wait. One exception: when the cached result was good (TLS authenticated
 * by PKIX or DANE) and the refresh did not get as far as an authenticated TLS session and
 * the EHLO reply in it (no connection, time-out, no STARTTLS, a failed handshake or
 * certificate), the good result stays until its own expiry and is probed again after the
 * short failure lifetime (5 minutes, or probe_ttl when shorter); a refresh that did reach
 * that point replaces it whatever it says (REQUIRETLS no longer advertised is a change).
 * The cache keeps at most 10,000 entries and evicts the least recently used first.
 * Probes beyond max_concurrent wait in a queue of at most 4 * max_concurrent probes, each
 * for at most timeout_ms: an asker that finds the queue full, or whose probe is still
 * queued after timeout_ms, gets an uncached failure with timed_out set ("probe queue
 * full", "waited in the probe queue longer than probe_timeout").
 */
#ifndef DAEMON_PROBE_H
#define DAEMON_PROBE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct probe_svc;
struct probe_req;
struct cafile;

/* Used when probe_opts.ca_file is NULL or "": Debian's bundle of the system's CAs. */
#define PROBE_SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"
/* TLSA records considered per probe; more are ignored. */
#define PROBE_MAX_TLSA 16

struct probe_opts {
    struct cafile *ca;       /* the CA bundle in memory, parsed once (a reference is taken) */
    const char *ca_file;     /* without ca: PEM bundle for PKIX, loaded at creation; NULL or
                                "": PROBE_SYSTEM_CA_FILE */
    const char *helo_name;   /* EHLO argument; NULL or "": gethostname() */
    unsigned timeout_ms;     /* one whole probe, connect to the EHLO after STARTTLS, and the
                                longest wait in the queue; 0: 10 s */
    unsigned ttl_ms;         /* results are served from the cache this long (refreshed in the
                                background when asked for after half of it); 0: not cached */
    unsigned max_concurrent; /* probes running at once, at most 4 times as many more wait in
                                a queue; 0: 20 */
    unsigned port;           /* 25 except in tests; 0: 25 */
};

/*
 * One TLSA record (RFC 6698 2.1) as the caller got it from DNSSEC-validated DNS. Only
 * usages 2 (DANE-TA) and 3 (DANE-EE), selectors 0 (Cert) and 1 (SPKI) and matching types
 * 0 (Full), 1 (SHA2-256) and 2 (SHA2-512) are used (RFC 7672 3.1); others never match.
 */
struct probe_tlsa {
    uint8_t usage, selector, mtype;
    const uint8_t *data;
    size_t len;
};

struct probe_result {
    const char *host, *addr;   /* as given to probe_start */
    int connected;             /* the TCP connection was made */
    int starttls_offered;      /* STARTTLS in the first EHLO reply */
    int tls_ok;                /* the TLS handshake completed (whatever the certificate) */
    int pkix_ok;               /* the certificate chains to the CA bundle and names host */
    int dane_ok;               /* the certificate matched one of the TLSA records */
    int requiretls_advertised; /* REQUIRETLS in the EHLO reply after STARTTLS */
    int timed_out;             /* the probe ran out of time (why says in which step), or
                                  never started: the queue was full or its wait too long */
    unsigned ntlsa;            /* TLSA records the DANE check had (0: DANE not tried) */
    unsigned caps;             /* EHLO_CAP_* of the last EHLO reply read */
    char tls_version[16];      /* "TLSv1.2"..., or "" */
    char cipher[64];           /* the cipher suite's name, or "" */
    uint64_t elapsed_ms;       /* how long the probe took (the original probe's, when cached) */
    int from_cache;            /* delivered from the cache by probe_start() */
    char why[300];             /* one line for the log: what the probe saw, or where it failed */
};

/*
 * Called exactly once per probe_start() unless cancelled or the service destroyed; res is
 * valid during the call only. The callback may call probe_start(), probe_cancel() on other
 * requests and probe_svc_destroy().
 */
typedef void (*probe_cb)(void *arg, const struct probe_result *res);

/*
 * probe_svc_create - a probe service on loop; opts is copied (strings too) and a reference
 * to opts->ca taken (without one, opts->ca_file is loaded now). Seeds mbedTLS's random
 * generator. NULL with a one-line reason in err (CA file unreadable or without a
 * certificate, no host name for EHLO, mbedTLS set-up failure).
 */
struct probe_svc *probe_svc_create(uv_loop_t *loop, const struct probe_opts *opts, char *err,
                                   size_t errlen);

/*
 * probe_set_ca - handshakes from now on verify against ca (a reference is taken; the old
 * bundle's goes). Safe between handshake steps: mbedTLS reads the CA chain only inside the
 * step that verifies the certificate. Cached results stay until they expire. For SIGHUP.
 */
void probe_set_ca(struct probe_svc *svc, struct cafile *ca);

/*
 * probe_svc_destroy - drop pending probes without callbacks (their probe_req pointers die
 * with them), close every connection and the queue's timer; the memory goes from the last
 * close callback, so the loop must run once more. Safe at any time, also from a probe
 * callback. NULL is ignored.
 */
void probe_svc_destroy(struct probe_svc *svc);

/*
 * probe_start - probe host (the MX host name, A-label form: letters, digits, '-', '.'; SNI
 * and the PKIX reference identity) at addr (a numeric IPv4 or IPv6 address) with the
 * host's usable TLSA records (ntlsa may be 0; at most PROBE_MAX_TLSA are used; copied).
 * A result cached for the same host, address and TLSA set, or a failure to start (bad
 * arguments; a full queue: "probe queue full", timed_out set, not cached), is delivered
 * before this returns, and the result is NULL; a cached result past half its lifetime also
 * queues a background probe of the same key (without waiter, under max_concurrent like any
 * probe; not when the queue is full) unless one is running or queued. Otherwise the
 * request is returned for probe_cancel(), valid until its callback runs; a probe of the same
 * host, address and TLSA set already running or queued is shared. NULL without a callback
 * when svc is being destroyed.
 */
struct probe_req *probe_start(struct probe_svc *svc, const char *host, const char *addr,
                              const struct probe_tlsa *tlsa, size_t ntlsa, probe_cb cb, void *arg);

/*
 * probe_cancel - the callback of req will not run. A running probe goes on (its result is
 * cached for the next asker); a queued one nobody waits for any more is dropped. NULL, or a
 * request whose callback is running: no-op.
 */
void probe_cancel(struct probe_req *req);

/*
 * probe_set_fleet - share results with the other daemons of a fleet through f (fleet.h;
 * NULL: off): a probe that would start reads the fleet's result for the same host, address
 * and TLSA set first, and every result cached here is written there with the same
 * lifetime. The caller destroys f after this service.
 */
struct fleet;
void probe_set_fleet(struct probe_svc *svc, struct fleet *f);

/* Counters for tests and metrics: probes started (connections attempted), now running,
 * now queued. */
unsigned long probe_svc_started(const struct probe_svc *svc);
unsigned probe_svc_running(const struct probe_svc *svc);
unsigned probe_svc_queued(const struct probe_svc *svc);

#endif
