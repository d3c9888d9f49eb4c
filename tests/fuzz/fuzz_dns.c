/*
 * Fuzzer for proto/dns.c: read the input as a DNS answer the way the daemon does (header,
 * question, every record, the decoder for each record's type) and check what the module
 * promises: record data inside the message, names NUL-terminated, in canonical presentation
 * form and at most 255 octets on the wire, decoders' results inside their record. A question
 * name that parses is built into a query and read back; so is the input taken as a query name.
 * The input is also classified (proto/dns_answer.c) as the reply to its own question.
 */
#include "dns.h"
#include "dns_answer.h"
#include "fuzz_check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Every record of a message with 3 * 65535 records, and one call to find the end. */
#define MAX_RECORDS (3 * 65535 + 1)

static void check_error(int rc, const char *why)
{
    CHECK(rc == DNS_ESHORT || rc == DNS_ENAME || rc == DNS_ERDATA || rc == DNS_ESPACE ||
          rc == DNS_EQUERY);
    CHECK(why != NULL && *why != '\0');
}

/*
 * A presentation name: NUL-terminated within DNS_NAME_MAX, no upper case, only '!'..'~',
 * '\' only as \DDD of a byte that needs it, labels of 1 to 63 bytes, no dot at either end,
 * at most 255 octets on the wire. Returns the wire length.
 */
static size_t check_name(const char *name)
{
    const char *nul = memchr(name, '\0', DNS_NAME_MAX + 1);
    size_t len, label = 0, wire = 1;

    CHECK(nul != NULL);
    len = (size_t)(nul - name);
    if (len == 0)
        return 1;
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = (unsigned char)name[i];

        if (c == '.' || c == '\0') {
            CHECK(label >= 1 && label <= 63);
            wire += 1 + label;
            label = 0;
            continue;
        }
        CHECK(c >= '!' && c <= '~');
        CHECK(!(c >= 'A' && c <= 'Z'));
        if (c == '\\') {
            unsigned v;

            CHECK(i + 3 < len);
            CHECK(name[i + 1] >= '0' && name[i + 1] <= '2');
            CHECK(name[i + 2] >= '0' && name[i + 2] <= '9');
            CHECK(name[i + 3] >= '0' && name[i + 3] <= '9');
            v = (unsigned)(name[i + 1] - '0') * 100 + (unsigned)(name[i + 2] - '0') * 10 +
                (unsigned)(name[i + 3] - '0');
            CHECK(v <= 255);
            CHECK(v < '!' || v > '~' || v == '.' || v == '\\');
            i += 3;
        }
        label++;
    }
    CHECK(wire <= 255);
    return wire;
}

/*
 * The result of a decoder that yields a name (MX, CNAME): for a record of its type a valid
 * name or a clean failure, for any other type a refusal.
 */
static void check_name_decoder(int rc, int its_type, const char *name, const char *why)
{
    if (!its_type)
        CHECK(rc == DNS_ERDATA);
    else if (rc == DNS_EOK)
        check_name(name);
    else
        CHECK(rc == DNS_ERDATA || rc == DNS_ENAME);
    if (rc < 0)
        check_error(rc, why);
}

/* The decoders for rr's type must succeed or fail cleanly, and the others must refuse it. */
static void check_record(const uint8_t *msg, size_t len, const struct dns_rr *rr)
{
    static char txt[65536];
    char name[DNS_NAME_MAX + 2];
    const char *why = NULL;
    uint8_t addr[16], u, s, m;
    const uint8_t *data = NULL;
    size_t n = 0;
    uint16_t pref;
    int rc;

    /* The guard byte past what a decoder may write. */
    name[DNS_NAME_MAX + 1] = 'G';

    rc = dns_rdata_mx(msg, len, rr, &pref, name, &why);
    check_name_decoder(rc, rr->type == DNS_TYPE_MX, name, why);
    rc = dns_rdata_cname(msg, len, rr, name, &why);
    check_name_decoder(rc, rr->type == DNS_TYPE_CNAME, name, why);
    CHECK(name[DNS_NAME_MAX + 1] == 'G');

    rc = dns_rdata_addr(rr, addr, &n, &why);
    if (rc == DNS_EOK) {
        CHECK((rr->type == DNS_TYPE_A && n == 4) || (rr->type == DNS_TYPE_AAAA && n == 16));
        CHECK(rr->rdlen == n && memcmp(addr, rr->rdata, n) == 0);
    } else {
        CHECK(rc == DNS_ERDATA);
        check_error(rc, why);
        CHECK(!(rr->type == DNS_TYPE_A && rr->rdlen == 4));
        CHECK(!(rr->type == DNS_TYPE_AAAA && rr->rdlen == 16));
    }

    rc = dns_rdata_tlsa(rr, &u, &s, &m, &data, &n, &why);
    if (rc == DNS_EOK) {
        CHECK(rr->type == DNS_TYPE_TLSA);
        CHECK(n >= 1 && n == (size_t)rr->rdlen - 3);
        CHECK(data == rr->rdata + 3);
        CHECK(u == rr->rdata[0] && s == rr->rdata[1] && m == rr->rdata[2]);
    } else {
        CHECK(rc == DNS_ERDATA);
        check_error(rc, why);
        CHECK(rr->type != DNS_TYPE_TLSA || rr->rdlen < 4);
    }

    rc = dns_rdata_txt(rr, txt, sizeof(txt), &n, &why);
    if (rc == DNS_EOK) {
        CHECK(rr->type == DNS_TYPE_TXT);
        /* Each character-string costs its length byte, so the text is shorter than rdlen. */
        CHECK(n < rr->rdlen && txt[n] == '\0');
        /* With exactly enough room it fits; with one byte less it does not. */
        {
            char *exact = malloc(n + 1);
            size_t n2 = 0;

            CHECK(exact != NULL);
            CHECK(dns_rdata_txt(rr, exact, n + 1, &n2, &why) == DNS_EOK);
            CHECK(n2 == n && memcmp(exact, txt, n + 1) == 0);
            CHECK(dns_rdata_txt(rr, exact, n, &n2, &why) == DNS_ESPACE);
            free(exact);
        }
    } else {
        CHECK(rc == DNS_ERDATA);
        check_error(rc, why);
    }
}

/*
 * Classify the message as the reply to its own question and check what dns_answer.h
 * promises: an outcome that agrees with the header, a reason exactly for BOGUS and FAILED,
 * records counted only for RECORDS, the CNAME hop limit, and a presentation name at the end.
 */
static void check_answer(const uint8_t *msg, size_t len, const struct dns_header *h,
                         const char *qname, uint16_t qtype)
{
    struct dns_answer_info info;
    enum dns_outcome o;

    memset(&info, 0xA5, sizeof(info));
    o = dns_answer_classify(msg, len, qname, qtype, &info);
    CHECK(o == info.outcome);
    CHECK(o >= DNS_OUT_RECORDS && o <= DNS_OUT_FAILED);
    CHECK(strcmp(dns_outcome_name(o), "") != 0);
    if (o == DNS_OUT_BOGUS || o == DNS_OUT_FAILED) {
        CHECK(info.why != NULL && *info.why != '\0');
        CHECK(info.secure == 0);
    } else {
        /* Only a complete reply with NOERROR or NXDOMAIN says anything. */
        CHECK(h->qr && !h->tc);
        CHECK(h->rcode == DNS_RCODE_NOERROR || h->rcode == DNS_RCODE_NXDOMAIN);
        CHECK(info.secure == h->ad);
    }
    if (o == DNS_OUT_BOGUS)
        CHECK(h->rcode == DNS_RCODE_SERVFAIL);
    if (o == DNS_OUT_NXDOMAIN)
        CHECK(h->rcode == DNS_RCODE_NXDOMAIN);
    CHECK((info.count > 0) == (o == DNS_OUT_RECORDS));
    CHECK(info.count <= h->ancount);
    CHECK(info.cnames <= DNS_MAX_CNAME_HOPS);
    if (info.cnames == 0)
        CHECK(strcmp(info.final, qname) == 0);
    check_name(info.final);
}

/*
 * What dns_build_query must accept, written independently of it: "" and "." for the root,
 * otherwise labels of 1 to 63 letters, digits, '-' and '_' joined by dots, one optional
 * trailing dot, at most 253 characters without it (255 octets on the wire).
 */
static int valid_qname(const char *name)
{
    size_t n = strlen(name), label = 0;

    if (n > 0 && name[n - 1] == '.')
        n--;
    if (n == 0)
        return 1;
    if (n > 253)
        return 0;
    for (size_t i = 0; i <= n; i++) {
        char c = i < n ? name[i] : '.';

        if (c == '.') {
            if (label == 0 || label > 63)
                return 0;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_') {
            label++;
        } else {
            return 0;
        }
    }
    return 1;
}

/* Build a query for qname and read it back: the same name, type and the OPT record. */
static void check_query(const char *qname, uint16_t qtype, int dnssec_ok)
{
    uint8_t out[600];
    char back[DNS_NAME_MAX + 1];
    struct dns_header h;
    struct dns_iter it;
    struct dns_rr rr;
    const char *why = NULL;
    size_t outlen = 0, wire;
    uint16_t t = 0, c = 0;
    int rc;

    rc = dns_build_query(out, sizeof(out), 0x4242, qname, qtype, dnssec_ok, DNS_EDNS_PAYLOAD,
                         &outlen, &why);
    CHECK((rc == DNS_EOK) == valid_qname(qname));
    if (rc < 0) {
        CHECK(rc == DNS_EQUERY);
        check_error(rc, why);
        return;
    }
    CHECK(rc == DNS_EOK);
    CHECK(outlen >= DNS_HEADER_LEN + 1 + 4 + 11 && outlen <= DNS_HEADER_LEN + 255 + 4 + 11);
    CHECK(dns_build_query(out, outlen - 1, 0x4242, qname, qtype, dnssec_ok, DNS_EDNS_PAYLOAD,
                          &outlen, &why) == DNS_ESPACE);

    CHECK(dns_parse_header(out, outlen, &h, &why) == DNS_EOK);
    CHECK(h.id == 0x4242 && !h.qr && h.rd && h.ad && !h.cd && h.rcode == 0);
    CHECK(h.qdcount == 1 && h.ancount == 0 && h.nscount == 0 && h.arcount == 1);
    CHECK(dns_question(out, outlen, back, &t, &c, &why) == DNS_EOK);
    wire = check_name(back);
    CHECK(outlen == DNS_HEADER_LEN + wire + 4 + 11);
    /* The name comes back in lower case, without the trailing dot. */
    {
        size_t n = strlen(back);

        for (size_t i = 0; i < n; i++) {
            char q = qname[i];

            CHECK(back[i] == ((q >= 'A' && q <= 'Z') ? q - 'A' + 'a' : q));
        }
        CHECK(strcmp(qname + n, "") == 0 || strcmp(qname + n, ".") == 0);
        CHECK(dns_name_equal(back, qname) == (qname[n] == '\0'));
    }
    CHECK(t == qtype && c == DNS_CLASS_IN);
    CHECK(dns_iter_init(&it, out, outlen, &why) == DNS_EOK);
    CHECK(dns_iter_next(&it, &rr, &why) == 1);
    CHECK(rr.type == DNS_TYPE_OPT && rr.owner[0] == '\0' && rr.rclass == DNS_EDNS_PAYLOAD);
    CHECK(rr.ttl == (dnssec_ok ? 0x8000u : 0) && rr.rdlen == 0);
    CHECK(rr.section == DNS_SECTION_ADDITIONAL);
    CHECK(dns_iter_next(&it, &rr, &why) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dns_header h;
    struct dns_iter it;
    static struct dns_rr rr;
    char qname[DNS_NAME_MAX + 2];
    const char *why = NULL;
    uint16_t qtype = 0, qclass = 0;
    size_t last = 0;
    unsigned seen[3] = {0, 0, 0};
    int rc, hrc;

    hrc = dns_parse_header(data, size, &h, &why);
    CHECK((hrc == DNS_EOK) == (size >= DNS_HEADER_LEN));
    if (hrc < 0)
        check_error(hrc, why);

    qname[DNS_NAME_MAX + 1] = 'G';
    why = NULL;
    rc = dns_question(data, size, qname, &qtype, &qclass, &why);
    CHECK(qname[DNS_NAME_MAX + 1] == 'G');
    if (rc == DNS_EOK) {
        CHECK(hrc == DNS_EOK && h.qdcount > 0);
        check_name(qname);
        CHECK(dns_name_equal(qname, qname));
        /* A name that parsed and needs no escapes builds into a query that reads back. */
        check_query(qname, qtype, qclass & 1);
        check_answer(data, size, &h, qname, qtype);
    } else {
        check_error(rc, why);
    }

    why = NULL;
    rc = dns_iter_init(&it, data, size, &why);
    if (rc < 0) {
        check_error(rc, why);
        CHECK(dns_iter_next(&it, &rr, &why) == 0);
    }
    for (size_t i = 0; rc == DNS_EOK && i < MAX_RECORDS; i++) {
        int r = dns_iter_next(&it, &rr, &why);

        if (r == 0)
            break;
        if (r < 0) {
            check_error(r, why);
            /* The iterator stays put and says the same again. */
            CHECK(dns_iter_next(&it, &rr, &why) == r);
            break;
        }
        CHECK(r == 1);
        check_name(rr.owner);
        CHECK(rr.rdata_off >= DNS_HEADER_LEN && rr.rdata_off <= size);
        CHECK(rr.rdlen <= size - rr.rdata_off);
        CHECK(rr.rdata == data + rr.rdata_off);
        CHECK(rr.rdata_off > last);
        last = rr.rdata_off + rr.rdlen;
        CHECK(rr.section <= DNS_SECTION_ADDITIONAL);
        seen[rr.section]++;
        CHECK(rr.type == DNS_TYPE_OPT || !(rr.ttl & 0x80000000u));
        check_record(data, size, &rr);
    }
    if (rc == DNS_EOK) {
        CHECK(seen[0] <= h.ancount && seen[1] <= h.nscount && seen[2] <= h.arcount);
    }

    /* The input (up to a NUL) as a query name. */
    if (size <= 300) {
        char name[301];

        memcpy(name, data, size);
        name[size] = '\0';
        check_query(name, (uint16_t)size, (int)(size & 1));
    }
    return 0;
}
