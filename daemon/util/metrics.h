/*
 * Prometheus metrics (SPEC section 6): a fixed registry of counters and one latency
 * histogram, every label drawn from a small closed set (never a domain, a peer or a key),
 * so the exposition stays the same size however much traffic passes. Other modules call
 * the metrics_*() increments below; gauges (open connections, cache sizes) are read from
 * their owners when /metrics is scraped. The registry is process-wide and single-threaded:
 * every caller runs on the daemon's one libuv loop.
 */
#ifndef DAEMON_METRICS_H
#define DAEMON_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "dns_answer.h"
#include "sockmap.h"

/* Caches, label cache="dns" (resolver answers), cache="sts" (MTA-STS policies) and
 * cache="dane" (DANE facts concluded per domain, dane_cache.h). */
enum metrics_cache { METRICS_CACHE_DNS, METRICS_CACHE_STS, METRICS_CACHE_DANE, METRICS_CACHE_N };
enum metrics_cache_event { METRICS_CACHE_HIT, METRICS_CACHE_MISS, METRICS_CACHE_EVICTION };

/*
 * Policy fetch outcomes, label outcome: the values of enum fetch_outcome (fetch.h) in the
 * same order, then "invalid" for a fetched body the RFC 8461 parser refused.
 */
enum metrics_fetch {
    METRICS_FETCH_OK,
    METRICS_FETCH_HTTP_STATUS,
    METRICS_FETCH_CONTENT_TYPE,
    METRICS_FETCH_TOO_BIG,
    METRICS_FETCH_TLS,
    METRICS_FETCH_CONNECT,
    METRICS_FETCH_TIMEOUT,
    METRICS_FETCH_ERROR,
    METRICS_FETCH_LOCAL, /* our fault (CA bundle, memory, descriptors): not the domain's */
    METRICS_FETCH_INVALID,
    METRICS_FETCH_N
};

/* REQUIRETLS probes of MX hosts, label outcome (for the probe module). */
enum metrics_probe {
    METRICS_PROBE_REQUIRETLS,    /* STARTTLS done, the server offers REQUIRETLS */
    METRICS_PROBE_NO_REQUIRETLS, /* STARTTLS done, REQUIRETLS not offered */
    METRICS_PROBE_NO_STARTTLS,   /* the server does not offer STARTTLS */
    METRICS_PROBE_TLS_ERROR,     /* handshake or certificate check failed */
    METRICS_PROBE_CONNECT_ERROR, /* no TCP connection */
    METRICS_PROBE_SMTP_ERROR,    /* unexpected SMTP reply */
    METRICS_PROBE_TIMEOUT,
    METRICS_PROBE_ERROR, /* anything else */
    METRICS_PROBE_N
};

/* Background MTA-STS work, label trigger: a lookup's TXT recheck, or the sweep's renewal. */
enum metrics_refresh { METRICS_REFRESH_RECHECK, METRICS_REFRESH_RENEWAL, METRICS_REFRESH_N };

/* The fleet tier's Redis commands (fleet.c), label result. */
enum metrics_redis {
    METRICS_REDIS_OK,          /* answered */
    METRICS_REDIS_ERROR,       /* an error reply */
    METRICS_REDIS_TIMEOUT,     /* no answer within redis_timeout: the connection is dropped */
    METRICS_REDIS_DROPPED,     /* in flight when the connection was lost or dropped */
    METRICS_REDIS_UNAVAILABLE, /* not sent: not connected */
    METRICS_REDIS_N
};

/* Values read from the fleet tier, label result (kind: sts or probe). */
enum metrics_shared {
    METRICS_SHARED_HIT,      /* a valid value was used */
    METRICS_SHARED_MISS,     /* none there (or not the one needed) */
    METRICS_SHARED_INVALID,  /* refused by the caller's parser: logged, ignored, replaced */
    METRICS_SHARED_WRITE,    /* a value written */
    METRICS_SHARED_LOCKED,   /* this daemon took the fleet lock to fetch or probe */
    METRICS_SHARED_WAITED,   /* another daemon held it: this one waited for its result */
    METRICS_SHARED_TAKEOVER, /* the lock came free without a result: this one took it */
    METRICS_SHARED_N
};
enum metrics_shared_kind { METRICS_SHARED_STS, METRICS_SHARED_PROBE, METRICS_SHARED_KIND_N };

/* Connection events for socketmap and HTTP listeners. */
enum metrics_conn {
    METRICS_CONN_ACCEPTED,      /* socketmap connection accepted and served */
    METRICS_CONN_REFUSED,       /* socketmap connection over max_connections, all busy */
    METRICS_CONN_HTTP_ACCEPTED, /* metrics endpoint connection accepted */
    METRICS_CONN_HTTP_REFUSED,  /* metrics endpoint connection over its limit */
    METRICS_CONN_EVICTED,       /* idle or trickling socketmap connection closed for a new one */
    METRICS_CONN_N
};

/* HTTP handlers and the status codes the endpoint sends, for http_requests_total. */
enum metrics_http_handler { METRICS_HTTP_METRICS, METRICS_HTTP_HEALTHZ, METRICS_HTTP_OTHER };

/* Gauges the owner of each piece of state fills in at scrape time. */
struct metrics_gauges {
    unsigned long conns_open;      /* socketmap connections */
    unsigned long http_conns_open; /* metrics endpoint connections */
    unsigned long lookups_waiting; /* lookups waiting for DNS or MTA-STS facts */
    unsigned long cache_entries[METRICS_CACHE_N];
    unsigned long sts_policies; /* MTA-STS policies in force */
    int serving;                /* 1: accepting socketmap connections (healthz) */
};

/* metrics_init - note the start time (process_start_time_seconds) and zero the counters. */
void metrics_init(void);

/* metrics_lookup - one answer given for map with status, usec after the request arrived. */
void metrics_lookup(enum sockmap_map map, enum sockmap_status st, uint64_t usec);

/*
 * metrics_dns - one upstream DNS answer (or failure) for qtype: outcome and the AD bit as
 * dns_answer_classify() reported them; counted as secure, insecure, bogus or error.
 */
void metrics_dns(uint16_t qtype, enum dns_outcome outcome, int secure);

/* metrics_fetch - one policy fetch ended: an enum fetch_outcome value or METRICS_FETCH_*. */
void metrics_fetch(int outcome);

/* metrics_probe - one REQUIRETLS probe ended with outcome. */
void metrics_probe(enum metrics_probe outcome);

/* metrics_cache - a hit, miss or eviction in cache kind. */
void metrics_cache(enum metrics_cache kind, enum metrics_cache_event ev);

/* metrics_refresh - background MTA-STS work started without a lookup waiting for it. */
void metrics_refresh(enum metrics_refresh trigger);

/* metrics_store - one write of state_dir: ok 1 when it was committed, 0 on an error. */
void metrics_store(int ok);

/*
 * metrics_store_size - the store's file in use (bytes: pages up to the last one written),
 * its records, and its bound (state_max_size, LMDB's map size), as last seen.
 */
void metrics_store_size(uint64_t bytes, uint64_t records, uint64_t max_bytes);

/* metrics_redis_command - one fleet tier command ended (or was refused) with result r. */
void metrics_redis_command(enum metrics_redis r);

/* metrics_redis_connect - a connection to Redis answered its first command (1) or failed (0). */
void metrics_redis_connect(int ok);

/* metrics_shared - an event of the fleet tier's values of kind. */
void metrics_shared(enum metrics_shared_kind kind, enum metrics_shared ev);

/* metrics_conn - a connection event. */
void metrics_conn(enum metrics_conn ev);

/* metrics_reload - a SIGHUP reload: ok 1 when the new configuration took effect. */
void metrics_reload(int ok);

/* metrics_http - the metrics endpoint answered handler with HTTP status code. */
void metrics_http(enum metrics_http_handler h, int code);

/*
 * metrics_render - the whole exposition (text format 0.0.4) with the gauges g, in a buffer
 * from xmalloc() that the caller frees; its length in *len.
 */
char *metrics_render(const struct metrics_gauges *g, size_t *len);

#endif
