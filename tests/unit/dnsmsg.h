/*
 * DNS wire messages (RFC 1035 4.1) for the unit tests of proto/dns.c and proto/dns_answer.c:
 * a test's table row gives the header flags, a question and records in wire form, and these
 * helpers assemble them into one message with header id 0xd00d, each record's rdlen and the
 * section counts filled in. The caller owns the message buffer and must make it large enough.
 * Header-only: a test program includes it once.
 */
#ifndef TESTS_DNSMSG_H
#define TESTS_DNSMSG_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"

/* A string literal and its length, so wire data may hold NUL bytes. */
#define S(lit) lit, sizeof(lit) - 1

/* The 32 bytes of a SHA-256 digest in a TLSA record: 00 01 02 ... 1f. */
#define DIGEST                                                                                     \
    "\000\001\002\003\004\005\006\007\010\011\012\013\014\015\016\017"                             \
    "\020\021\022\023\024\025\026\027\030\031\032\033\034\035\036\037"

/* The sections after the question; section i's count is header bytes 4 + 2i and 5 + 2i. */
enum { AN = 1, NS, AR };

/* One record of a table row, its owner and data in wire form. */
struct dnsmsg_rr {
    int section; /* AN, NS or AR; 0 ends the list */
    const char *owner;
    size_t olen;
    uint16_t type;
    uint16_t rclass; /* 0 means IN */
    uint32_t ttl;
    const char *rdata;
    size_t rdlen;
};

/*
 * dnsmsg_question - write the header (id 0xd00d, flags as bytes 2 and 3, all counts 0) to m,
 * then the question when qname is not NULL: qlen bytes of name in wire form, qtype and qclass
 * (0 means IN), with QDCOUNT 1. Returns the length written so far.
 */
static inline size_t dnsmsg_question(uint8_t *m, uint16_t flags, const char *qname, size_t qlen,
                                     uint16_t qtype, uint16_t qclass)
{
    size_t p = DNS_HEADER_LEN;

    if (qclass == 0)
        qclass = DNS_CLASS_IN;
    memset(m, 0, DNS_HEADER_LEN);
    m[0] = 0xd0;
    m[1] = 0x0d;
    m[2] = (uint8_t)(flags >> 8);
    m[3] = (uint8_t)flags;
    if (qname != NULL) {
        m[5] = 1;
        memcpy(m + p, qname, qlen);
        p += qlen;
        m[p++] = (uint8_t)(qtype >> 8);
        m[p++] = (uint8_t)qtype;
        m[p++] = (uint8_t)(qclass >> 8);
        m[p++] = (uint8_t)qclass;
    }
    return p;
}

/*
 * dnsmsg_records - append the records of rr (at most max, or up to the first with section 0)
 * to the message m of length p, and set ANCOUNT, NSCOUNT and ARCOUNT to the number in each
 * section. The records must be listed section by section. Returns the message length.
 */
static inline size_t dnsmsg_records(uint8_t *m, size_t p, const struct dnsmsg_rr *rr, size_t max)
{
    unsigned counts[AR + 1] = {0, 0, 0, 0};

    /* Records are listed section by section, so one pass in order keeps them grouped. */
    for (const struct dnsmsg_rr *s = rr; s < rr + max && s->section != 0; s++) {
        uint16_t rclass = s->rclass ? s->rclass : DNS_CLASS_IN;

        counts[s->section]++;
        memcpy(m + p, s->owner, s->olen);
        p += s->olen;
        m[p++] = (uint8_t)(s->type >> 8);
        m[p++] = (uint8_t)s->type;
        m[p++] = (uint8_t)(rclass >> 8);
        m[p++] = (uint8_t)rclass;
        for (int sh = 24; sh >= 0; sh -= 8)
            m[p++] = (uint8_t)(s->ttl >> sh);
        m[p++] = (uint8_t)(s->rdlen >> 8);
        m[p++] = (uint8_t)s->rdlen;
        memcpy(m + p, s->rdata, s->rdlen);
        p += s->rdlen;
    }
    for (int i = AN; i <= AR; i++) {
        m[4 + 2 * i] = (uint8_t)(counts[i] >> 8);
        m[4 + 2 * i + 1] = (uint8_t)counts[i];
    }
    return p;
}

/*
 * dnsmsg_copy - a heap copy of the first len bytes of m, of exactly that size (at least 1
 * byte), so AddressSanitizer sees any read past the end. The caller frees it; aborts when
 * out of memory.
 */
static inline uint8_t *dnsmsg_copy(const void *m, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);

    if (copy == NULL)
        abort();
    memcpy(copy, m, len);
    return copy;
}

#endif
