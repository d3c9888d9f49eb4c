/*
 * Unit tests for proto/dns_answer.c. As in test_dns.c, whole replies are assembled from table
 * rows (header flags, a question and records in wire form, with rdlen and the section counts
 * filled in) and classified as the resolver classifies them; each row lists the outcome, AD,
 * TTL, record count, CNAME hops, where the chain ends and, for failures, a word of the reason.
 * Every proper prefix of every reply must fail cleanly (or stay bogus for a SERVFAIL).
 */
#include "check.h"
#include "dns_answer.h"
#include "dnsmsg.h"

#include <stdint.h>
#include <stdlib.h>

/* Names in wire form (octal escapes, split where a digit follows). */
#define EX "\007example\003com\000"
#define NET "\007example\003net\000"
#define W_EX EX
#define W_WWW "\003www" EX
#define W_OTHER "\005other" EX
#define W_HOST "\004host" NET
#define W_REAL "\004real" NET
#define W_GONE "\004gone" NET
#define W_A "\001a" EX
#define W_B "\001b" EX
#define H(n) "\002h" #n EX

/* Addresses and MX records' data (a TLSA record's digest is DIGEST, in dnsmsg.h). */
#define ADDR1 "\300\000\002\001"
#define ADDR2 "\300\000\002\002"
#define MX10 "\000\012\003mx1" EX
#define MX20 "\000\024\003mx2" EX

/* SOA data (RFC 1035 3.3.13) with the MINIMUM field given as four bytes. */
#define SOA_DATA(zone, minimum)                                                                    \
    "\003ns1" zone "\012hostmaster" zone "\000\000\000\001\000\000\016\020\000\000\003\204"        \
    "\000\011\072\200" minimum
#define MIN300 "\000\000\001\054"
#define MIN3600 "\000\000\016\020"

/* Header bytes 2 and 3: QR RD RA, with AD, and an RCODE. */
#define F_OK 0x8180
#define F_AD 0x81a0

#define MAX_RRS 12

struct want {
    enum dns_outcome outcome;
    int secure;
    uint32_t ttl;
    unsigned count, cnames;
    const char *final;
    const char *why; /* a word of the reason, for BOGUS and FAILED */
};

struct row {
    const char *label;
    uint16_t flags;
    const char *qwire; /* the question's name in wire form; NULL for no question */
    size_t qwlen;
    uint16_t qtype, qclass; /* qclass 0 means IN */
    struct dnsmsg_rr rr[MAX_RRS];
    unsigned extra_an; /* added to ANCOUNT beyond the records given */
    size_t cut;        /* bytes cut off the end of the message */
    const char *ask;   /* what was asked */
    uint16_t ask_type;
    struct want want;
};

#define Q(wire, type) .qwire = wire, .qwlen = sizeof(wire) - 1, .qtype = type
#define ASK(name, type) .ask = name, .ask_type = type
#define WANT(...) .want = {__VA_ARGS__}
#define RECORDS DNS_OUT_RECORDS
#define NODATA DNS_OUT_NODATA
#define NXDOMAIN DNS_OUT_NXDOMAIN
#define BOGUS DNS_OUT_BOGUS
#define FAILED DNS_OUT_FAILED

static const struct row rows[] = {
    /* NOERROR with records: AD passed through, TTL the smallest of the RRset. */
    {"MX records with AD", F_AD, Q(W_EX, DNS_TYPE_MX),
     .rr = {{AN, S("\300\014"), DNS_TYPE_MX, 0, 300, S(MX10)},
            {AN, S("\300\014"), DNS_TYPE_MX, 0, 200, S(MX20)},
            {AR, S("\003mx1" EX), DNS_TYPE_A, 0, 10, S(ADDR1)},
            {AR, S("\000"), DNS_TYPE_OPT, 1232, 0x8000, S("")}},
     ASK("example.com", DNS_TYPE_MX), WANT(RECORDS, 1, 200, 2, 0, "example.com", NULL)},
    {"MX records without AD", F_OK, Q(W_EX, DNS_TYPE_MX),
     .rr = {{AN, S(W_EX), DNS_TYPE_MX, 0, 300, S(MX10)}}, ASK("example.com", DNS_TYPE_MX),
     WANT(RECORDS, 0, 300, 1, 0, "example.com", NULL)},
    {"AD without RA or RD still counts", 0x8020, Q(W_EX, DNS_TYPE_MX),
     .rr = {{AN, S(W_EX), DNS_TYPE_MX, 0, 300, S(MX10)}}, ASK("example.com", DNS_TYPE_MX),
     WANT(RECORDS, 1, 300, 1, 0, "example.com", NULL)},
    {"TLSA records with their RRSIG", F_AD, Q("\003_25\004_tcp\003mx1" EX, DNS_TYPE_TLSA),
     .rr = {{AN, S("\300\014"), DNS_TYPE_TLSA, 0, 3600, S("\003\001\001" DIGEST)},
            {AN, S("\300\014"), DNS_TYPE_RRSIG, 0, 60, S("\000\064\015\005" DIGEST)}},
     ASK("_25._tcp.mx1.example.com", DNS_TYPE_TLSA),
     WANT(RECORDS, 1, 3600, 1, 0, "_25._tcp.mx1.example.com", NULL)},
    {"TTL with the top bit set reads as 0", F_OK, Q(W_EX, DNS_TYPE_A),
     .rr = {{AN, S(W_EX), DNS_TYPE_A, 0, 300, S(ADDR1)},
            {AN, S(W_EX), DNS_TYPE_A, 0, 0x80000000, S(ADDR2)}},
     ASK("example.com", DNS_TYPE_A), WANT(RECORDS, 0, 0, 2, 0, "example.com", NULL)},
    {"question in another case", F_OK, Q("\007ExAmPlE\003COM\000", DNS_TYPE_A),
     .rr = {{AN, S("\300\014"), DNS_TYPE_A, 0, 300, S(ADDR1)}}, ASK("EXAMPLE.com", DNS_TYPE_A),
     WANT(RECORDS, 0, 300, 1, 0, "EXAMPLE.com", NULL)},
    {"SOA in the authority does not change a positive TTL", F_OK, Q(W_EX, DNS_TYPE_A),
     .rr = {{AN, S(W_EX), DNS_TYPE_A, 0, 3600, S(ADDR1)},
            {NS, S(W_EX), DNS_TYPE_SOA, 0, 5, S(SOA_DATA(EX, MIN300))}},
     ASK("example.com", DNS_TYPE_A), WANT(RECORDS, 0, 3600, 1, 0, "example.com", NULL)},

    /* Records not at the end of the chain, of another type or outside the answer section
     * are not the answer. */
    {"records at other owners ignored", F_OK, Q(W_EX, DNS_TYPE_A),
     .rr = {{AN, S(W_OTHER), DNS_TYPE_A, 0, 5, S(ADDR1)},
            {AN, S(W_EX), DNS_TYPE_A, 0, 300, S(ADDR2)},
            {AN,
             S("\003www"
               "\300\014"),
             DNS_TYPE_A, 0, 7, S(ADDR1)}},
     ASK("example.com", DNS_TYPE_A), WANT(RECORDS, 0, 300, 1, 0, "example.com", NULL)},
    {"only records at another owner: nodata", F_OK, Q(W_EX, DNS_TYPE_A),
     .rr = {{AN, S(W_OTHER), DNS_TYPE_A, 0, 5, S(ADDR1)}}, ASK("example.com", DNS_TYPE_A),
     WANT(NODATA, 0, 60, 0, 0, "example.com", NULL)},
    {"records of another type: nodata", F_OK, Q(W_EX, DNS_TYPE_A),
     .rr = {{AN, S(W_EX), DNS_TYPE_AAAA, 0, 300,
             S("\040\001\015\270\000\000\000\000\000\000\000\000\000\000\000\001")}},
     ASK("example.com", DNS_TYPE_A), WANT(NODATA, 0, 60, 0, 0, "example.com", NULL)},
    {"records in the additional section: nodata", F_OK, Q(W_EX, DNS_TYPE_A),
     .rr = {{AR, S(W_EX), DNS_TYPE_A, 0, 300, S(ADDR1)}}, ASK("example.com", DNS_TYPE_A),
     WANT(NODATA, 0, 60, 0, 0, "example.com", NULL)},
    {"records of another class: nodata", F_OK, Q(W_EX, DNS_TYPE_A),
     .rr = {{AN, S(W_EX), DNS_TYPE_A, 3, 300, S(ADDR1)}}, ASK("example.com", DNS_TYPE_A),
     WANT(NODATA, 0, 60, 0, 0, "example.com", NULL)},
    {"record at the CNAME's owner ignored", F_OK, Q(W_WWW, DNS_TYPE_A),
     .rr = {{AN, S(W_WWW), DNS_TYPE_A, 0, 5, S(ADDR1)},
            {AN, S(W_WWW), DNS_TYPE_CNAME, 0, 3600, S(W_HOST)},
            {AN, S(W_HOST), DNS_TYPE_A, 0, 300, S(ADDR2)}},
     ASK("www.example.com", DNS_TYPE_A), WANT(RECORDS, 0, 300, 1, 1, "host.example.net", NULL)},

    /* RFC 2308 5: a negative answer lives min(SOA TTL, SOA MINIMUM), 60 s without an SOA. */
    {"nodata with SOA: MINIMUM smaller", F_AD, Q(W_EX, DNS_TYPE_TLSA),
     .rr = {{NS, S(W_EX), DNS_TYPE_SOA, 0, 900, S(SOA_DATA("\300\014", MIN300))},
            {NS, S(W_EX), DNS_TYPE_NSEC, 0, 900, S("\001a" EX "\000\006\100\000\000\000\003")}},
     ASK("example.com", DNS_TYPE_TLSA), WANT(NODATA, 1, 300, 0, 0, "example.com", NULL)},
    {"nodata with SOA: TTL smaller", F_OK, Q(W_EX, DNS_TYPE_TLSA),
     .rr = {{NS, S(W_EX), DNS_TYPE_SOA, 0, 120, S(SOA_DATA(EX, MIN3600))}},
     ASK("example.com", DNS_TYPE_TLSA), WANT(NODATA, 0, 120, 0, 0, "example.com", NULL)},
    {"nodata with SOA TTL 0", F_OK, Q(W_EX, DNS_TYPE_TLSA),
     .rr = {{NS, S(W_EX), DNS_TYPE_SOA, 0, 0, S(SOA_DATA(EX, MIN3600))}},
     ASK("example.com", DNS_TYPE_TLSA), WANT(NODATA, 0, 0, 0, 0, "example.com", NULL)},
    {"nodata without SOA", F_AD, Q(W_EX, DNS_TYPE_TLSA), ASK("example.com", DNS_TYPE_TLSA),
     WANT(NODATA, 1, 60, 0, 0, "example.com", NULL)},
    {"nodata with the SOA in the answer section", F_OK, Q(W_EX, DNS_TYPE_TLSA),
     .rr = {{AN, S(W_EX), DNS_TYPE_SOA, 0, 10, S(SOA_DATA(EX, MIN300))}},
     ASK("example.com", DNS_TYPE_TLSA), WANT(NODATA, 0, 60, 0, 0, "example.com", NULL)},
    {"nodata with a long SOA TTL", F_OK, Q(W_EX, DNS_TYPE_TLSA),
     .rr = {{NS, S(W_EX), DNS_TYPE_SOA, 0, 86400, S(SOA_DATA(EX, "\000\001\121\200"))}},
     ASK("example.com", DNS_TYPE_TLSA), WANT(NODATA, 0, 86400, 0, 0, "example.com", NULL)},
    {"nxdomain with SOA and AD", 0x81a3, Q("\006nosuch" EX, DNS_TYPE_MX),
     .rr = {{NS, S("\300\023"), DNS_TYPE_SOA, 0, 900, S(SOA_DATA("\300\023", MIN300))},
            {AR, S("\000"), DNS_TYPE_OPT, 1232, 0x8000, S("")}},
     ASK("nosuch.example.com", DNS_TYPE_MX),
     WANT(NXDOMAIN, 1, 300, 0, 0, "nosuch.example.com", NULL)},
    {"nxdomain without SOA", 0x8183, Q("\006nosuch" EX, DNS_TYPE_MX),
     ASK("nosuch.example.com", DNS_TYPE_MX),
     WANT(NXDOMAIN, 0, 60, 0, 0, "nosuch.example.com", NULL)},

    /* RCODEs other than NOERROR and NXDOMAIN. */
    {"SERVFAIL is bogus, AD or not", 0x81a2, Q(W_EX, DNS_TYPE_TLSA),
     .rr = {{AR, S("\000"), DNS_TYPE_OPT, 1232, 0x8000, S("")}}, ASK("example.com", DNS_TYPE_TLSA),
     WANT(BOGUS, 0, 0, 0, 0, "example.com", "SERVFAIL")},
    {"SERVFAIL with records is still bogus", 0x8182, Q(W_EX, DNS_TYPE_A),
     .rr = {{AN, S(W_EX), DNS_TYPE_A, 0, 300, S(ADDR1)}}, ASK("example.com", DNS_TYPE_A),
     WANT(BOGUS, 0, 0, 0, 0, "example.com", "SERVFAIL")},
    {"REFUSED", 0x81a5, Q(W_EX, DNS_TYPE_A), ASK("example.com", DNS_TYPE_A),
     WANT(FAILED, 0, 0, 0, 0, "example.com", "refused")},
    {"FORMERR", 0x8181, Q(W_EX, DNS_TYPE_A), ASK("example.com", DNS_TYPE_A),
     WANT(FAILED, 0, 0, 0, 0, "example.com", "error code")},
    {"NOTIMP", 0x8184, Q(W_EX, DNS_TYPE_A), ASK("example.com", DNS_TYPE_A),
     WANT(FAILED, 0, 0, 0, 0, "example.com", "error code")},
    {"YXDOMAIN", 0x8186, Q(W_EX, DNS_TYPE_A), ASK("example.com", DNS_TYPE_A),
     WANT(FAILED, 0, 0, 0, 0, "example.com", "error code")},
    {"RCODE 15 with records", 0x818f, Q(W_EX, DNS_TYPE_A),
     .rr = {{AN, S(W_EX), DNS_TYPE_A, 0, 300, S(ADDR1)}}, ASK("example.com", DNS_TYPE_A),
     WANT(FAILED, 0, 0, 0, 0, "example.com", "error code")},

    /* RFC 6891 6.1.3: the OPT record's top TTL byte extends the RCODE. */
    {"extended RCODE BADVERS under a header NOERROR", F_OK, Q(W_EX, DNS_TYPE_TLSA),
     .rr = {{AR, S("\000"), DNS_TYPE_OPT, 1232, 0x01008000, S("")}},
     ASK("example.com", DNS_TYPE_TLSA), WANT(FAILED, 0, 0, 0, 0, "example.com", "extended")},
    {"OPT with version 0 and DO is no error", F_AD, Q(W_EX, DNS_TYPE_TLSA),
     .rr = {{AR, S("\000"), DNS_TYPE_OPT, 4096, 0x00008000, S("\000\012\000\002ab")}},
     ASK("example.com", DNS_TYPE_TLSA), WANT(NODATA, 1, 60, 0, 0, "example.com", NULL)},

    /* Header and question: a reply, complete, to this question. */
    {"QR not set", 0x01a0, Q(W_EX, DNS_TYPE_A), .rr = {{AN, S(W_EX), DNS_TYPE_A, 0, 300, S(ADDR1)}},
     ASK("example.com", DNS_TYPE_A), WANT(FAILED, 0, 0, 0, 0, "example.com", "not a response")},
    {"TC set", 0x83a0, Q(W_EX, DNS_TYPE_A), .rr = {{AN, S(W_EX), DNS_TYPE_A, 0, 300, S(ADDR1)}},
     ASK("example.com", DNS_TYPE_A), WANT(FAILED, 0, 0, 0, 0, "example.com", "truncated")},
    {"TC set on a SERVFAIL", 0x8382, Q(W_EX, DNS_TYPE_A), ASK("example.com", DNS_TYPE_A),
     WANT(FAILED, 0, 0, 0, 0, "example.com", "truncated")},
    {"question for another name", F_AD, Q(W_OTHER, DNS_TYPE_A),
     .rr = {{AN, S("\300\014"), DNS_TYPE_A, 0, 300, S(ADDR1)}}, ASK("example.com", DNS_TYPE_A),
     WANT(FAILED, 0, 0, 0, 0, "example.com", "different question")},
    {"question for a parent name", F_OK, Q(W_EX, DNS_TYPE_A), ASK("www.example.com", DNS_TYPE_A),
     WANT(FAILED, 0, 0, 0, 0, "www.example.com", "different question")},
    {"question for another type", F_AD, Q(W_EX, DNS_TYPE_AAAA),
     .rr = {{AN, S(W_EX), DNS_TYPE_A, 0, 300, S(ADDR1)}}, ASK("example.com", DNS_TYPE_A),
     WANT(FAILED, 0, 0, 0, 0, "example.com", "different question")},
    {"question for another class", F_AD, Q(W_EX, DNS_TYPE_A), .qclass = 3,
     .rr = {{AN, S(W_EX), DNS_TYPE_A, 0, 300, S(ADDR1)}}, ASK("example.com", DNS_TYPE_A),
     WANT(FAILED, 0, 0, 0, 0, "example.com", "different question")},
    {"mismatched question on a SERVFAIL", 0x8182, Q(W_OTHER, DNS_TYPE_A),
     ASK("example.com", DNS_TYPE_A), WANT(FAILED, 0, 0, 0, 0, "example.com", "different question")},
    {"no question", 0x8180, .rr = {{AN, S(W_EX), DNS_TYPE_A, 0, 300, S(ADDR1)}},
     ASK("example.com", DNS_TYPE_A), WANT(FAILED, 0, 0, 0, 0, "example.com", "question")},

    /* RFC 1034 3.6.2: CNAME chains inside the answer, in any order. */
    {"CNAME chain in order", F_AD, Q(W_WWW, DNS_TYPE_A),
     .rr = {{AN, S(W_WWW), DNS_TYPE_CNAME, 0, 3600, S(W_HOST)},
            {AN, S(W_HOST), DNS_TYPE_CNAME, 0, 600, S(W_REAL)},
            {AN, S(W_REAL), DNS_TYPE_A, 0, 900, S(ADDR1)},
            {AN, S(W_REAL), DNS_TYPE_A, 0, 900, S(ADDR2)}},
     ASK("www.example.com", DNS_TYPE_A), WANT(RECORDS, 1, 600, 2, 2, "real.example.net", NULL)},
    {"CNAME chain out of order", F_OK, Q(W_WWW, DNS_TYPE_A),
     .rr = {{AN, S(W_REAL), DNS_TYPE_A, 0, 900, S(ADDR1)},
            {AN, S(W_HOST), DNS_TYPE_CNAME, 0, 3600, S(W_REAL)},
            {AN, S(W_WWW), DNS_TYPE_CNAME, 0, 3600, S(W_HOST)}},
     ASK("www.example.com", DNS_TYPE_A), WANT(RECORDS, 0, 900, 1, 2, "real.example.net", NULL)},
    {"CNAME chain with compressed names and a short first TTL", F_OK, Q(W_WWW, DNS_TYPE_A),
     .rr = {{AN, S("\300\014"), DNS_TYPE_CNAME, 0, 30, S("\004host\300\020")},
            {AN, S("\300\055"), DNS_TYPE_A, 0, 900, S(ADDR1)}},
     ASK("www.example.com", DNS_TYPE_A), WANT(RECORDS, 0, 30, 1, 1, "host.example.com", NULL)},
    {"CNAME in another case", F_OK, Q(W_WWW, DNS_TYPE_A),
     .rr = {{AN, S("\003WWW" EX), DNS_TYPE_CNAME, 0, 300, S("\004HOST" NET)},
            {AN, S(W_HOST), DNS_TYPE_A, 0, 900, S(ADDR1)}},
     ASK("www.example.com", DNS_TYPE_A), WANT(RECORDS, 0, 300, 1, 1, "host.example.net", NULL)},
    {"CNAME to nxdomain", 0x81a3, Q(W_WWW, DNS_TYPE_A),
     .rr = {{AN, S(W_WWW), DNS_TYPE_CNAME, 0, 100, S(W_GONE)},
            {NS, S(NET), DNS_TYPE_SOA, 0, 900, S(SOA_DATA(NET, MIN300))}},
     ASK("www.example.com", DNS_TYPE_A), WANT(NXDOMAIN, 1, 100, 0, 1, "gone.example.net", NULL)},
    {"CNAME to nodata: negative TTL below the chain's", F_OK, Q(W_WWW, DNS_TYPE_TLSA),
     .rr = {{AN, S(W_WWW), DNS_TYPE_CNAME, 0, 3600, S(W_HOST)},
            {NS, S(NET), DNS_TYPE_SOA, 0, 900, S(SOA_DATA(NET, MIN300))}},
     ASK("www.example.com", DNS_TYPE_TLSA), WANT(NODATA, 0, 300, 0, 1, "host.example.net", NULL)},
    {"CNAME whose target the answer does not resolve", F_OK, Q(W_WWW, DNS_TYPE_A),
     .rr = {{AN, S(W_WWW), DNS_TYPE_CNAME, 0, 20, S(W_HOST)}}, ASK("www.example.com", DNS_TYPE_A),
     WANT(NODATA, 0, 20, 0, 1, "host.example.net", NULL)},
    {"CNAME in the authority section is not followed", F_OK, Q(W_WWW, DNS_TYPE_A),
     .rr = {{NS, S(W_WWW), DNS_TYPE_CNAME, 0, 20, S(W_HOST)},
            {AR, S(W_HOST), DNS_TYPE_A, 0, 900, S(ADDR1)}},
     ASK("www.example.com", DNS_TYPE_A), WANT(NODATA, 0, 60, 0, 0, "www.example.com", NULL)},
    {"CNAME of another class is not followed", F_OK, Q(W_WWW, DNS_TYPE_A),
     .rr = {{AN, S(W_WWW), DNS_TYPE_CNAME, 3, 20, S(W_HOST)},
            {AN, S(W_HOST), DNS_TYPE_A, 0, 900, S(ADDR1)}},
     ASK("www.example.com", DNS_TYPE_A), WANT(NODATA, 0, 60, 0, 0, "www.example.com", NULL)},
    {"asking for the CNAME itself", F_OK, Q(W_WWW, DNS_TYPE_CNAME),
     .rr = {{AN, S(W_WWW), DNS_TYPE_CNAME, 0, 20, S(W_HOST)},
            {AN, S(W_HOST), DNS_TYPE_CNAME, 0, 20, S(W_REAL)}},
     ASK("www.example.com", DNS_TYPE_CNAME), WANT(RECORDS, 0, 20, 1, 0, "www.example.com", NULL)},
    {"CNAME loop", F_OK, Q(W_A, DNS_TYPE_A),
     .rr = {{AN, S(W_A), DNS_TYPE_CNAME, 0, 20, S(W_B)},
            {AN, S(W_B), DNS_TYPE_CNAME, 0, 20, S(W_A)}},
     ASK("a.example.com", DNS_TYPE_A), WANT(FAILED, 0, 0, 0, 8, NULL, "CNAME")},
    {"CNAME to itself", F_AD, Q(W_A, DNS_TYPE_A),
     .rr = {{AN, S(W_A), DNS_TYPE_CNAME, 0, 20, S(W_A)}}, ASK("a.example.com", DNS_TYPE_A),
     WANT(FAILED, 0, 0, 0, 8, "a.example.com", "CNAME")},
    {"CNAME chain of 8 hops", F_OK, Q(H(0), DNS_TYPE_A),
     .rr = {{AN, S(H(0)), DNS_TYPE_CNAME, 0, 20, S(H(1))},
            {AN, S(H(1)), DNS_TYPE_CNAME, 0, 20, S(H(2))},
            {AN, S(H(2)), DNS_TYPE_CNAME, 0, 20, S(H(3))},
            {AN, S(H(3)), DNS_TYPE_CNAME, 0, 20, S(H(4))},
            {AN, S(H(4)), DNS_TYPE_CNAME, 0, 20, S(H(5))},
            {AN, S(H(5)), DNS_TYPE_CNAME, 0, 20, S(H(6))},
            {AN, S(H(6)), DNS_TYPE_CNAME, 0, 19, S(H(7))},
            {AN, S(H(7)), DNS_TYPE_CNAME, 0, 20, S(H(8))},
            {AN, S(H(8)), DNS_TYPE_A, 0, 300, S(ADDR1)}},
     ASK("h0.example.com", DNS_TYPE_A), WANT(RECORDS, 0, 19, 1, 8, "h8.example.com", NULL)},
    {"CNAME chain of 8 hops, reversed", F_OK, Q(H(0), DNS_TYPE_A),
     .rr = {{AN, S(H(8)), DNS_TYPE_A, 0, 300, S(ADDR1)},
            {AN, S(H(7)), DNS_TYPE_CNAME, 0, 20, S(H(8))},
            {AN, S(H(6)), DNS_TYPE_CNAME, 0, 20, S(H(7))},
            {AN, S(H(5)), DNS_TYPE_CNAME, 0, 20, S(H(6))},
            {AN, S(H(4)), DNS_TYPE_CNAME, 0, 20, S(H(5))},
            {AN, S(H(3)), DNS_TYPE_CNAME, 0, 20, S(H(4))},
            {AN, S(H(2)), DNS_TYPE_CNAME, 0, 20, S(H(3))},
            {AN, S(H(1)), DNS_TYPE_CNAME, 0, 20, S(H(2))},
            {AN, S(H(0)), DNS_TYPE_CNAME, 0, 20, S(H(1))}},
     ASK("h0.example.com", DNS_TYPE_A), WANT(RECORDS, 0, 20, 1, 8, "h8.example.com", NULL)},
    {"CNAME chain of 9 hops", F_OK, Q(H(0), DNS_TYPE_A),
     .rr = {{AN, S(H(0)), DNS_TYPE_CNAME, 0, 20, S(H(1))},
            {AN, S(H(1)), DNS_TYPE_CNAME, 0, 20, S(H(2))},
            {AN, S(H(2)), DNS_TYPE_CNAME, 0, 20, S(H(3))},
            {AN, S(H(3)), DNS_TYPE_CNAME, 0, 20, S(H(4))},
            {AN, S(H(4)), DNS_TYPE_CNAME, 0, 20, S(H(5))},
            {AN, S(H(5)), DNS_TYPE_CNAME, 0, 20, S(H(6))},
            {AN, S(H(6)), DNS_TYPE_CNAME, 0, 20, S(H(7))},
            {AN, S(H(7)), DNS_TYPE_CNAME, 0, 20, S(H(8))},
            {AN, S(H(8)), DNS_TYPE_CNAME, 0, 20, S(H(9))},
            {AN, S(H(9)), DNS_TYPE_A, 0, 300, S(ADDR1)}},
     ASK("h0.example.com", DNS_TYPE_A), WANT(FAILED, 0, 0, 0, 8, "h8.example.com", "CNAME")},

    /* Malformed or cut replies fail with a reason. */
    {"header only", F_OK, .cut = 0, ASK("example.com", DNS_TYPE_A),
     WANT(FAILED, 0, 0, 0, 0, "example.com", "question")},
    {"question cut short", F_OK, Q(W_EX, DNS_TYPE_A), .cut = 2, ASK("example.com", DNS_TYPE_A),
     WANT(FAILED, 0, 0, 0, 0, "example.com", "question")},
    {"ANCOUNT larger than the records", F_OK, Q(W_EX, DNS_TYPE_A),
     .rr = {{AN, S(W_EX), DNS_TYPE_A, 0, 300, S(ADDR1)}}, .extra_an = 1,
     ASK("example.com", DNS_TYPE_A), WANT(FAILED, 0, 0, 0, 0, "example.com", "malformed")},
    {"record data cut short", F_OK, Q(W_EX, DNS_TYPE_A),
     .rr = {{AN, S(W_EX), DNS_TYPE_A, 0, 300, S(ADDR1)}}, .cut = 1, ASK("example.com", DNS_TYPE_A),
     WANT(FAILED, 0, 0, 0, 0, "example.com", "malformed")},
    {"forward pointer in an additional record", F_OK, Q(W_EX, DNS_TYPE_A),
     .rr = {{AN, S(W_EX), DNS_TYPE_A, 0, 300, S(ADDR1)},
            {AR, S("\300\200"), DNS_TYPE_A, 0, 300, S(ADDR1)}},
     ASK("example.com", DNS_TYPE_A), WANT(FAILED, 0, 0, 0, 0, "example.com", "malformed")},
    {"bad owner name after a CNAME", F_OK, Q(W_WWW, DNS_TYPE_A),
     .rr = {{AN, S(W_WWW), DNS_TYPE_CNAME, 0, 20, S(W_HOST)},
            {AN, S("\100x\000"), DNS_TYPE_A, 0, 300, S(ADDR1)}},
     ASK("www.example.com", DNS_TYPE_A), WANT(FAILED, 0, 0, 0, 1, NULL, "malformed")},
    {"CNAME data with bytes after the name", F_OK, Q(W_WWW, DNS_TYPE_A),
     .rr = {{AN, S(W_WWW), DNS_TYPE_CNAME, 0, 20, S(W_HOST "x")},
            {AN, S(W_HOST), DNS_TYPE_A, 0, 300, S(ADDR1)}},
     ASK("www.example.com", DNS_TYPE_A), WANT(FAILED, 0, 0, 0, 0, "www.example.com", "CNAME")},
    {"CNAME with no data", F_OK, Q(W_WWW, DNS_TYPE_A),
     .rr = {{AN, S(W_WWW), DNS_TYPE_CNAME, 0, 20, S("")}}, ASK("www.example.com", DNS_TYPE_A),
     WANT(FAILED, 0, 0, 0, 0, "www.example.com", "CNAME")},
    {"short SOA is ignored", F_OK, Q(W_EX, DNS_TYPE_TLSA),
     .rr = {{NS, S(W_EX), DNS_TYPE_SOA, 0, 5, S("\000\000\000\000\000")}},
     ASK("example.com", DNS_TYPE_TLSA), WANT(NODATA, 0, 60, 0, 0, "example.com", NULL)},
};

#define MAXMSG 4096

/* Assemble a row's message: header id 0xd00d, the question, records in their sections. */
static size_t assemble(const struct row *r, uint8_t *m)
{
    size_t p = dnsmsg_question(m, r->flags, r->qwire, r->qwlen, r->qtype, r->qclass);

    p = dnsmsg_records(m, p, r->rr, MAX_RRS);
    /* An ANCOUNT claiming more records than the message holds. */
    m[7] = (uint8_t)(m[7] + r->extra_an);
    return p - r->cut;
}

/* What holds for every result, whatever the message. */
static void check_contract(const char *label, enum dns_outcome got,
                           const struct dns_answer_info *info)
{
    check_int(label, "return value is the outcome", got, info->outcome);
    check_true(label, "outcome in range", got >= DNS_OUT_RECORDS && got <= DNS_OUT_FAILED);
    if (got == DNS_OUT_BOGUS || got == DNS_OUT_FAILED) {
        check_true(label, "why is set", info->why != NULL && info->why[0] != '\0');
        check_int(label, "not secure", info->secure, 0);
    }
    check_int(label, "count > 0 iff records", info->count > 0, got == DNS_OUT_RECORDS);
    check_true(label, "cnames within the limit", info->cnames <= DNS_MAX_CNAME_HOPS);
    check_true(label, "final NUL-terminated", memchr(info->final, 0, sizeof(info->final)) != NULL);
}

static void check_row(const struct row *r)
{
    static uint8_t m[MAXMSG];
    struct dns_answer_info info;
    const struct want *w = &r->want;
    char label[300];
    size_t len = assemble(r, m);
    enum dns_outcome got;
    uint8_t *copy;

    /* An exact-size copy, so AddressSanitizer sees any read past the end; *info starts
     * dirty, since it must be filled whatever happens. */
    copy = dnsmsg_copy(m, len);
    memset(&info, 0xA5, sizeof(info));
    got = dns_answer_classify(copy, len, r->ask, r->ask_type, &info);
    check_contract(r->label, got, &info);
    check_str(r->label, "outcome", dns_outcome_name(got), dns_outcome_name(w->outcome));
    check_int(r->label, "secure", info.secure, w->secure);
    if (w->outcome != DNS_OUT_BOGUS && w->outcome != DNS_OUT_FAILED)
        check_int(r->label, "ttl", info.ttl, w->ttl);
    check_int(r->label, "count", info.count, w->count);
    check_int(r->label, "cnames", info.cnames, w->cnames);
    if (w->final != NULL)
        check_str(r->label, "final", info.final, w->final);
    if (w->why != NULL && check_true(r->label, "why is set", info.why != NULL)) {
        if (!check_true(r->label, "why", strstr(info.why, w->why) != NULL))
            printf("  why is \"%s\", want it to mention \"%s\"\n", info.why, w->why);
    } else if (w->why == NULL) {
        check_true(r->label, "no why", info.why == NULL);
    }
    free(copy);

    /* RFC 1035 4.2.1: a UDP answer can be cut anywhere. Every cut fails (a SERVFAIL may
     * still read as bogus once its question is whole). */
    for (size_t k = 0; k < len; k++) {
        copy = dnsmsg_copy(m, k);
        memset(&info, 0xA5, sizeof(info));
        got = dns_answer_classify(copy, k, r->ask, r->ask_type, &info);
        snprintf(label, sizeof(label), "%s, first %zu of %zu bytes", r->label, k, len);
        check_contract(label, got, &info);
        if (!(got == DNS_OUT_FAILED || (got == DNS_OUT_BOGUS && w->outcome == DNS_OUT_BOGUS)))
            check_str(label, "outcome", dns_outcome_name(got), "failed");
        free(copy);
    }
}

static void check_edges(void)
{
    struct dns_answer_info info;

    memset(&info, 0xA5, sizeof(info));
    check_int("NULL message", "outcome", dns_answer_classify(NULL, 0, "example.com", 1, &info),
              DNS_OUT_FAILED);
    check_contract("NULL message", info.outcome, &info);
    check_str("NULL message", "final", info.final, "example.com");

    memset(&info, 0xA5, sizeof(info));
    check_int("NULL name", "outcome",
              dns_answer_classify((const uint8_t *)"\320\015\201\200\000\001\000\000\000\000"
                                                   "\000\000\000\000\001\000\001",
                                  17, NULL, 1, &info),
              DNS_OUT_FAILED);
    check_contract("NULL name", info.outcome, &info);
    check_str("NULL name", "final", info.final, "");

    check_str("outcome names", "records", dns_outcome_name(DNS_OUT_RECORDS), "records");
    check_str("outcome names", "nodata", dns_outcome_name(DNS_OUT_NODATA), "nodata");
    check_str("outcome names", "nxdomain", dns_outcome_name(DNS_OUT_NXDOMAIN), "nxdomain");
    check_str("outcome names", "bogus", dns_outcome_name(DNS_OUT_BOGUS), "bogus");
    check_str("outcome names", "failed", dns_outcome_name(DNS_OUT_FAILED), "failed");
}

int main(void)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        check_row(&rows[i]);
    check_edges();
    return check_summary("test_dns_answer");
}
