/*
 * Classification of DNS answers (see dns_answer.h).
 */
#include "dns_answer.h"

#include <stdio.h>
#include <string.h>

/* Negative answers without an SOA are cached this long at most (RFC 2308 5). */
#define NEGATIVE_TTL_DEFAULT 60

const char *dns_outcome_name(enum dns_outcome o)
{
    switch (o) {
    case DNS_OUT_RECORDS:
        return "records";
    case DNS_OUT_NODATA:
        return "nodata";
    case DNS_OUT_NXDOMAIN:
        return "nxdomain";
    case DNS_OUT_BOGUS:
        return "bogus";
    case DNS_OUT_FAILED:
        break;
    }
    return "failed";
}

static enum dns_outcome fail(struct dns_answer_info *info, enum dns_outcome o, const char *why)
{
    info->outcome = o;
    info->why = why;
    info->secure = 0;
    info->count = 0;
    return o;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The header and question: a response, whole, to the question asked. NULL, or why not. */
static const char *check_reply(const uint8_t *msg, size_t len, const char *qname, uint16_t qtype,
                               struct dns_header *h)
{
    char qn[DNS_NAME_MAX + 1];
    uint16_t qt, qc;
    const char *why = NULL;

    if (dns_parse_header(msg, len, h, &why) < 0)
        return "malformed DNS reply header";
    if (!h->qr)
        return "DNS reply is not a response";
    if (h->tc)
        return "DNS reply truncated";
    if (dns_question(msg, len, qn, &qt, &qc, &why) < 0)
        return "malformed question in DNS reply";
    if (qt != qtype || qc != DNS_CLASS_IN || !dns_name_equal(qn, qname))
        return "DNS reply answers a different question";
    return NULL;
}

/*
 * One hop of the CNAME chain from info->final, in whatever order the answer section holds
 * them: 1 when followed, 0 when there is none, -1 with *why.
 */
static int cname_hop(const uint8_t *msg, size_t len, struct dns_answer_info *info, uint32_t *ttl,
                     const char **why)
{
    struct dns_iter it;
    struct dns_rr rr;
    int rc;

    if (dns_iter_init(&it, msg, len, why) < 0) {
        *why = "malformed DNS reply";
        return -1;
    }
    while ((rc = dns_iter_next(&it, &rr, why)) == 1) {
        char target[DNS_NAME_MAX + 1];

        /* Only IN records answer an IN question (RFC 1034 3.6: an RR's class is part of
         * what it says); a CNAME of another class is not followed. */
        if (rr.section != DNS_SECTION_ANSWER || rr.type != DNS_TYPE_CNAME ||
            rr.rclass != DNS_CLASS_IN || !dns_name_equal(rr.owner, info->final))
            continue;
        if (dns_rdata_cname(msg, len, &rr, target, why) < 0) {
            *why = "malformed CNAME in DNS reply";
            return -1;
        }
        /* Refuse the hop before counting it, so cnames never exceeds the limit: it counts
         * hops followed, and a refused one is not. */
        if (info->cnames >= DNS_MAX_CNAME_HOPS) {
            *why = "CNAME chain too long or looping";
            return -1;
        }
        info->cnames++;
        memcpy(info->final, target, strlen(target) + 1);
        if (rr.ttl < *ttl)
            *ttl = rr.ttl;
        return 1;
    }
    if (rc < 0) {
        *why = "malformed DNS reply";
        return -1;
    }
    return 0;
}

/* Records of the asked type at the end of the chain, and the SOA for negative TTLs. */
static const char *count_records(const uint8_t *msg, size_t len, uint16_t qtype,
                                 struct dns_answer_info *info, uint32_t *ttl, uint32_t *neg_ttl)
{
    struct dns_iter it;
    struct dns_rr rr;
    const char *why = NULL;
    int rc;

    if (dns_iter_init(&it, msg, len, &why) < 0)
        return "malformed DNS reply";
    while ((rc = dns_iter_next(&it, &rr, &why)) == 1) {
        if (rr.section == DNS_SECTION_ANSWER && rr.type == qtype && rr.rclass == DNS_CLASS_IN &&
            dns_name_equal(rr.owner, info->final)) {
            info->count++;
            if (rr.ttl < *ttl)
                *ttl = rr.ttl;
        } else if (rr.section == DNS_SECTION_AUTHORITY && rr.type == DNS_TYPE_SOA &&
                   rr.rdlen >= 20) {
            /* RFC 2308 5: the lesser of the SOA's TTL and its MINIMUM field. */
            uint32_t minimum = get32(rr.rdata + rr.rdlen - 4);

            *neg_ttl = rr.ttl < minimum ? rr.ttl : minimum;
        } else if (rr.type == DNS_TYPE_OPT && (rr.ttl >> 24) != 0) {
            /* RFC 6891 6.1.3: the OPT TTL's top byte is the upper 8 bits of a 12-bit RCODE.
             * With it, a header RCODE of 0 is not NOERROR (e.g. BADVERS, 16) and must not
             * read as "no data". */
            return "the resolver answered with an extended error code";
        }
    }
    return rc < 0 ? "malformed DNS reply" : NULL;
}

enum dns_outcome dns_answer_classify(const uint8_t *msg, size_t len, const char *qname,
                                     uint16_t qtype, struct dns_answer_info *info)
{
    struct dns_header h;
    const char *why = NULL;
    uint32_t ttl = UINT32_MAX, neg_ttl = NEGATIVE_TTL_DEFAULT;
    int rc;

    memset(info, 0, sizeof(*info));
    /* A NULL qname matches no question; printing it with %s would be undefined. */
    snprintf(info->final, sizeof(info->final), "%s", qname != NULL ? qname : "");
    if ((why = check_reply(msg, len, qname, qtype, &h)) != NULL)
        return fail(info, DNS_OUT_FAILED, why);

    /* RFC 4035 5.5: a validating resolver answers SERVFAIL when validation fails. */
    switch (h.rcode) {
    case DNS_RCODE_NOERROR:
    case DNS_RCODE_NXDOMAIN:
        break;
    case DNS_RCODE_SERVFAIL:
        return fail(info, DNS_OUT_BOGUS, "SERVFAIL from the validating resolver");
    case DNS_RCODE_REFUSED:
        return fail(info, DNS_OUT_FAILED, "the resolver refused the query");
    default:
        return fail(info, DNS_OUT_FAILED, "the resolver answered with an error code");
    }

    /* Follow the CNAME chain through the answer section, then count what it ends at. */
    while (qtype != DNS_TYPE_CNAME && (rc = cname_hop(msg, len, info, &ttl, &why)) != 0)
        if (rc < 0)
            return fail(info, DNS_OUT_FAILED, why);
    if ((why = count_records(msg, len, qtype, info, &ttl, &neg_ttl)) != NULL)
        return fail(info, DNS_OUT_FAILED, why);

    info->secure = h.ad;
    if (info->count > 0) {
        info->outcome = DNS_OUT_RECORDS;
        info->ttl = ttl;
    } else {
        info->outcome = h.rcode == DNS_RCODE_NXDOMAIN ? DNS_OUT_NXDOMAIN : DNS_OUT_NODATA;
        info->ttl = ttl < neg_ttl ? ttl : neg_ttl;
    }
    return info->outcome;
}
