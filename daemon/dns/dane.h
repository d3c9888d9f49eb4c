/*
 * DANE for SMTP (RFC 7672 section 2.2): for one domain, resolve the MX RRset (or the
 * implicit MX), each MX host's address records and, where those are secure, its TLSA
 * records, and sum them up as facts for the engine. Bogus or failed lookups on a secure
 * path make the facts DANE_TEMP: the engine answers TEMP, never a weaker level.
 */
#ifndef DAEMON_DANE_H
#define DAEMON_DANE_H

#include "dns.h"

struct resolver;
struct dane_lookup;
struct dane_cache;

/* MX hosts examined per domain, lowest preference first (Postfix tries at most 5 by
 * default, smtp_mx_address_limit; 10 leaves room). */
#define DANE_MAX_HOSTS 10

enum dane_state {
    DANE_NONE,     /* no DANE for this domain (why says which step ended it) */
    DANE_ALL,      /* secure MX and every MX host with an address has usable TLSA */
    DANE_SOME,     /* secure MX, some hosts have usable TLSA */
    DANE_UNUSABLE, /* secure MX, TLSA records exist but none is usable */
    DANE_TEMP,     /* a bogus or failed lookup on a secure path, and no host left */
    DANE_DEGRADED, /* secure MX; some hosts' lookups failed, the others have no usable
                      TLSA: Postfix's own DANE checks ("dane") must judge each host */
};

enum dane_host_addr { DANE_ADDR_SECURE, DANE_ADDR_INSECURE, DANE_ADDR_NONE };

/* Host names longer than a domain name can be (escaped odd bytes) are not examined. */
#define DANE_NAME_MAX (DOMAIN_MAX + 1)

/*
 * The usable TLSA records of a host as the MX probe needs them for DANE verification: at
 * most DANE_MAX_TLSA, each with at most DANE_TLSA_DATA_MAX bytes of data (SHA2-256 and
 * SHA2-512 digests; a Full(0) record longer than that is counted but not kept).
 */
#define DANE_MAX_TLSA 8
#define DANE_TLSA_DATA_MAX 64

struct dane_tlsa {
    uint8_t usage, selector, mtype;
    uint8_t len;
    uint8_t data[DANE_TLSA_DATA_MAX];
};

struct dane_host {
    char name[DANE_NAME_MAX];
    uint16_t preference;
    enum dane_host_addr addr;
    char tlsa_owner[DANE_NAME_MAX + 9]; /* "_25._tcp." + name: TLSA asked here, or "" */
    unsigned tlsa_usable, tlsa_unusable;
    int failed;     /* an address or TLSA lookup for this host was bogus or failed */
    unsigned ntlsa; /* records kept in tlsa[] (a subset of the usable ones) */
    struct dane_tlsa tlsa[DANE_MAX_TLSA];
};

/* The longest reason line a walk writes, its NUL included. */
#define DANE_WHY_MAX 300

/*
 * The facts of one domain. why points into memory of whoever owns the struct (the walk, the
 * cache's entry, or the buffer given to dane_facts_copy()), so that the cache keeps each
 * reason at its length (dane_cache.h) and a domain without hosts costs only the header.
 */
struct dane_facts {
    enum dane_state state;
    const char *why; /* one line: what decided the state (< DANE_WHY_MAX) */
    int mx_secure;   /* the MX RRset (or its secure absence) was validated */
    int implicit_mx; /* no MX RRset: the domain itself is the host (RFC 5321 5.1) */
    int null_mx;     /* RFC 7505 "MX 0 ." */
    unsigned nhosts;
    struct dane_host hosts[DANE_MAX_HOSTS];
};

/* Called once with the facts, unless the lookup was cancelled; f valid during the call. */
typedef void (*dane_cb)(void *arg, const struct dane_facts *f);

/*
 * dane_start - resolve DANE facts for the normalised domain. When every answer is cached
 * the callback runs before dane_start returns and the result is NULL; otherwise the result
 * is the pending lookup. cache (may be NULL) answers first when it holds the domain's
 * facts, and keeps what the walk concludes (dane_cache.h).
 */
struct dane_lookup *dane_start(struct resolver *r, struct dane_cache *cache, const char *domain,
                               dane_cb cb, void *arg);

/* dane_cancel - stop a pending lookup; its callback will not run. */
void dane_cancel(struct dane_lookup *d);

/*
 * dane_facts_copy - *dst = *src, but only the host entries in use (of DANE_MAX_HOSTS), with
 * the reason copied into why (DANE_WHY_MAX bytes) and dst->why pointing there: dst stays
 * valid however the walk or the cache that gave src goes on. dst must be a whole struct.
 */
void dane_facts_copy(struct dane_facts *dst, const struct dane_facts *src, char *why);

/* dane_state_name - "none", "all", "some", "unusable", "temp", "degraded". */
const char *dane_state_name(enum dane_state s);

/*
 * dane_tlsa_usable - RFC 7672 3.1.3: usage DANE-TA(2) or DANE-EE(3), selector Cert(0) or
 * SPKI(1), matching type Full(0), SHA2-256(1) or SHA2-512(2) with the matching length.
 */
int dane_tlsa_usable(uint8_t usage, uint8_t selector, uint8_t mtype, size_t dlen);

#endif
