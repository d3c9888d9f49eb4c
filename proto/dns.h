/*
 * DNS messages (RFC 1035 section 4, EDNS RFC 6891, DNSSEC bits RFC 4035 and RFC 6840):
 * building the daemon's queries and reading the answers it gets, with no I/O. c-ares
 * 1.18 carries the bytes; this module decides what they say. Names come out in
 * presentation form: lower case, no trailing dot ("" for the root), any byte outside
 * '!'..'~' and any '.' or '\\' inside a label written as \DDD (RFC 1035 section 5.1).
 */
#ifndef PROTO_DNS_H
#define PROTO_DNS_H

#include <stddef.h>
#include <stdint.h>

#include "domain.h"

enum {
    DNS_TYPE_A = 1,
    DNS_TYPE_NS = 2,
    DNS_TYPE_CNAME = 5,
    DNS_TYPE_SOA = 6,
    DNS_TYPE_MX = 15,
    DNS_TYPE_TXT = 16,
    DNS_TYPE_AAAA = 28,
    DNS_TYPE_OPT = 41,
    DNS_TYPE_DS = 43,
    DNS_TYPE_RRSIG = 46,
    DNS_TYPE_NSEC = 47,
    DNS_TYPE_DNSKEY = 48,
    DNS_TYPE_NSEC3 = 50,
    DNS_TYPE_TLSA = 52,
};

enum {
    DNS_RCODE_NOERROR = 0,
    DNS_RCODE_FORMERR = 1,
    DNS_RCODE_SERVFAIL = 2,
    DNS_RCODE_NXDOMAIN = 3,
    DNS_RCODE_NOTIMP = 4,
    DNS_RCODE_REFUSED = 5,
};

#define DNS_CLASS_IN 1
#define DNS_HEADER_LEN 12
/* RFC 6891 6.2.5 and the DNS flag day 2020 advice: 1232 bytes avoids fragmentation. */
#define DNS_EDNS_PAYLOAD 1232
/* A presentation-form name: 253 characters, or up to 4 times that with \DDD escapes. */
#define DNS_NAME_MAX (4 * DOMAIN_MAX + 4)

enum {
    DNS_EOK = 0,
    DNS_ESHORT = -1, /* message ends inside a header, question, record or name */
    DNS_ENAME = -2,  /* bad name: label type, pointer loop, forward pointer, too long */
    DNS_ERDATA = -3, /* rdata does not fit its type */
    DNS_ESPACE = -4, /* the caller's buffer is too small */
    DNS_EQUERY = -5, /* (building) qname not a valid name */
};

struct dns_header {
    uint16_t id;
    unsigned qr : 1, aa : 1, tc : 1, rd : 1, ra : 1, ad : 1, cd : 1;
    unsigned opcode;
    unsigned rcode; /* the 4-bit header RCODE (extended bits from OPT are not merged) */
    uint16_t qdcount, ancount, nscount, arcount;
};

enum dns_section { DNS_SECTION_ANSWER, DNS_SECTION_AUTHORITY, DNS_SECTION_ADDITIONAL };

struct dns_rr {
    char owner[DNS_NAME_MAX + 1];
    uint16_t type, rclass;
    uint32_t ttl; /* RFC 2181 8: 0 when the top bit is set; OPT's is the raw flags word */
    enum dns_section section;
    const uint8_t *rdata; /* points into the message */
    uint16_t rdlen;
    size_t rdata_off; /* offset of rdata in the message, for names inside rdata */
};

/* Walks the records of one message in order: answer, authority, additional. */
struct dns_iter {
    const uint8_t *msg;
    size_t len;
    size_t pos;
    unsigned left[3];
    int section;
};

/*
 * dns_build_query - write a query for qname/qtype with RD set, AD set (RFC 6840 5.7: ask
 * for the AD bit) and an EDNS OPT record with the given payload size and the DO bit when
 * dnssec_ok. Returns DNS_EOK with the length in *outlen, or a negative code.
 */
int dns_build_query(uint8_t *out, size_t cap, uint16_t id, const char *qname, uint16_t qtype,
                    int dnssec_ok, uint16_t payload, size_t *outlen, const char **why);

/* dns_parse_header - the fixed header. DNS_ESHORT when len < DNS_HEADER_LEN. */
int dns_parse_header(const uint8_t *msg, size_t len, struct dns_header *h, const char **why);

/*
 * dns_question - the first question's name and type (a reply must echo the query's).
 * Returns DNS_EOK, or a negative code; DNS_ESHORT also when qdcount is 0.
 */
int dns_question(const uint8_t *msg, size_t len, char qname[DNS_NAME_MAX + 1], uint16_t *qtype,
                 uint16_t *qclass, const char **why);

/*
 * dns_iter_init - position it after the header and question section.
 * dns_iter_next - the next record: 1 with *rr filled, 0 at the end, or a negative code.
 * OPT records appear like any other (owner "", type DNS_TYPE_OPT). On an error the
 * iterator does not advance (calling again gives the same error); after a failed
 * dns_iter_init, dns_iter_next returns 0.
 */
int dns_iter_init(struct dns_iter *it, const uint8_t *msg, size_t len, const char **why);
int dns_iter_next(struct dns_iter *it, struct dns_rr *rr, const char **why);

/*
 * dns_answer_next - like dns_iter_next, but only answer-section records of type at owner
 * (case ignored), the records an answer is about once its CNAME chain ends at owner.
 */
int dns_answer_next(struct dns_iter *it, const char *owner, uint16_t type, struct dns_rr *rr,
                    const char **why);

/*
 * Rdata decoders; each checks the record's type and rdlen exactly and returns DNS_EOK or a
 * negative code (DNS_ERDATA also for a record of another type).
 */
int dns_rdata_mx(const uint8_t *msg, size_t len, const struct dns_rr *rr, uint16_t *preference,
                 char host[DNS_NAME_MAX + 1], const char **why);
int dns_rdata_cname(const uint8_t *msg, size_t len, const struct dns_rr *rr,
                    char target[DNS_NAME_MAX + 1], const char **why);
/* A (4 bytes) or AAAA (16 bytes) into addr; *alen is 4 or 16. */
int dns_rdata_addr(const struct dns_rr *rr, uint8_t addr[16], size_t *alen, const char **why);
/*
 * RFC 6698 2.1: usage, selector, matching type, and the association data (in the message,
 * at least one byte). Whether dlen suits the matching type is left to the caller.
 */
int dns_rdata_tlsa(const struct dns_rr *rr, uint8_t *usage, uint8_t *selector, uint8_t *mtype,
                   const uint8_t **data, size_t *dlen, const char **why);
/*
 * TXT: the record's character-strings concatenated into out (NUL-terminated, cap bytes; the
 * bytes may include NUL, *outlen counts them without the terminator). DNS_ESPACE when cap
 * is not more than the total.
 */
int dns_rdata_txt(const struct dns_rr *rr, char *out, size_t cap, size_t *outlen, const char **why);

/* dns_name_equal - compare two presentation-form names without regard to ASCII case. */
int dns_name_equal(const char *a, const char *b);

#endif
