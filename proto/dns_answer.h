/*
 * What a DNS answer says, for the daemon's purposes: records, no data, no such name,
 * bogus or failed, whether the validating resolver vouched for it (the AD bit, RFC 4035
 * 3.2.3, trusted only because the daemon talks to configured resolvers alone), how long
 * it may be cached (RFC 2308 for negative answers), and where a CNAME chain in the answer
 * ends (RFC 1034 3.6.2). Pure: the message is only read.
 */
#ifndef PROTO_DNS_ANSWER_H
#define PROTO_DNS_ANSWER_H

#include <stddef.h>
#include <stdint.h>

#include "dns.h"

enum dns_outcome {
    DNS_OUT_RECORDS,  /* NOERROR with records of the asked type at the end of the chain */
    DNS_OUT_NODATA,   /* NOERROR without them */
    DNS_OUT_NXDOMAIN, /* the name (or the chain's target) does not exist */
    DNS_OUT_BOGUS,    /* SERVFAIL from the validating resolver: validation failed */
    DNS_OUT_FAILED,   /* refused, malformed, mismatched, truncated, timeout */
};

/* CNAME hops followed inside one answer before it is called a failure. */
#define DNS_MAX_CNAME_HOPS 8

struct dns_answer_info {
    enum dns_outcome outcome;
    int secure;      /* the AD bit; meaningful for RECORDS, NODATA and NXDOMAIN */
    uint32_t ttl;    /* smallest TTL of the chain and records, or RFC 2308's negative TTL */
    unsigned count;  /* records of qtype at final */
    unsigned cnames; /* CNAME hops followed */
    char final[DNS_NAME_MAX + 1]; /* where the chain ends; qname when there is none */
    const char *why;              /* for BOGUS and FAILED: a static reason */
};

/*
 * dns_answer_classify - read the reply msg[0..len) to a query for qname/qtype (qname in
 * presentation form, case ignored). Always fills *info; returns its outcome.
 */
enum dns_outcome dns_answer_classify(const uint8_t *msg, size_t len, const char *qname,
                                     uint16_t qtype, struct dns_answer_info *info);

/* dns_outcome_name - "records", "nodata", "nxdomain", "bogus", "failed". */
const char *dns_outcome_name(enum dns_outcome o);

#endif
