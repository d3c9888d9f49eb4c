/*
 * daemon/dns/: DNSSEC facts. resolver (c-ares on libuv, cache, shared queries) and dane
 * (the RFC 7672 walk over MX, address and TLSA records). Depends on util/, config/, proto/.
 *
 * The daemon's DNS: c-ares 1.18 driven by libuv, queries built by proto/dns.c with the AD
 * and DO bits (c-ares has no API for either), answers classified by proto/dns_answer.c,
 * a TTL-bounded cache, and one upstream query for any number of concurrent askers of the
 * same question. The AD bit is trusted because queries go only to the configured
 * resolvers, which must validate (unbound on localhost is the usual choice).
 */
#ifndef DAEMON_RESOLVER_H
#define DAEMON_RESOLVER_H

#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "dns_answer.h"

struct resolver;
struct resolver_req;

/* One answer as the cache holds it. msg is the raw reply (NULL for FAILED without one). */
struct resolver_answer {
    const char *qname;
    uint16_t qtype;
    struct dns_answer_info info;
    const uint8_t *msg;
    size_t len;
    int from_cache;
    /* FAILED because this process could not open a socket (descriptors, memory): a fault
     * of ours that says nothing about the name (info.why says so). */
    int local_fault;
    /* Loop time in ms until which the answer is good (its TTL within dns_min_ttl and
     * dns_max_ttl); 0: not cached (a failure, a bogus answer, teardown). What rests on the
     * answer is good until then, whether or not the cache keeps it (dane_cache.h). */
    uint64_t expires;
};

/* Called exactly once per resolver_query() that was not cancelled; ans valid during the call. */
typedef void (*resolver_cb)(void *arg, const struct resolver_answer *ans);

/*
 * resolver_create - a resolver on loop using cfg's dns_* keys. NULL with a message in err.
 * resolver_destroy - cancel everything (pending callbacks run with FAILED), close handles;
 * the memory goes when the loop has run the close callbacks.
 */
struct resolver *resolver_create(uv_loop_t *loop, const struct config *cfg, char *err,
                                 size_t errlen);
void resolver_destroy(struct resolver *r);

/*
 * resolver_query - ask for qname/qtype. A fresh cached answer is delivered before this
 * returns, and the result is NULL; otherwise the result identifies the pending request
 * for resolver_cancel(). qname must be a valid name (presentation form).
 */
struct resolver_req *resolver_query(struct resolver *r, const char *qname, uint16_t qtype,
                                    resolver_cb cb, void *arg);

/* resolver_cancel - the callback of req will not run. */
void resolver_cancel(struct resolver_req *req);

/* resolver_now - the loop time (ms) that the cache's expiries are measured in. */
uint64_t resolver_now(const struct resolver *r);

/* Upstream queries sent since start (tests count them to prove sharing). */
unsigned long resolver_queries_sent(const struct resolver *r);

/* resolver_cache_entries - answers (and questions in flight) the cache holds now. */
unsigned long resolver_cache_entries(const struct resolver *r);

#endif
