/*
 * DNS messages (RFC 1035 section 4): the query the daemon sends, with the AD bit of RFC 6840
 * 5.7 and an RFC 6891 OPT record, and the records of the answer it gets, decoded for the
 * types the policy needs (MX, CNAME, A, AAAA, TXT, TLSA). Every read is bounded by the
 * message and by the record's rdlen. Nothing is allocated: what comes back either points
 * into the caller's message or is copied into the caller's buffers.
 */
#include "dns.h"

#include <string.h>

/* RFC 1035 2.3.4: a name is at most 255 octets on the wire and a label at most 63. */
#define WIRE_NAME_MAX 255
#define LABEL_MAX 63

/*
 * RFC 1035 4.1.4 compression. 255 octets hold at most 127 labels and the root, and a
 * compressor needs at most one pointer before each of them; more hops than that is a chain
 * built to waste time. (Pointers must also point strictly backwards, so loops are refused
 * before this bound is reached.)
 */
#define MAX_HOPS 128

/* RFC 6891 6.1.3: the DO bit in the OPT record's TTL field (RFC 3225). */
#define EDNS_DO 0x00008000u

/* An OPT record with no options: root owner, TYPE, CLASS, TTL and RDLEN (RFC 6891 6.1.2). */
#define OPT_LEN 11

/* A record's fixed part after its owner: TYPE, CLASS, TTL and RDLEN (RFC 1035 4.1.3). */
#define RR_FIXED 10

/* The longest presentation name: every octet but the root's and one length byte as \DDD. */
_Static_assert(4 * (WIRE_NAME_MAX - 2) <= DNS_NAME_MAX, "DNS_NAME_MAX cannot hold a name");

static int fail(const char **why, int code, const char *text)
{
    if (why != NULL)
        *why = text;
    return code;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

/* Append one label octet to a presentation name: lower case, or \DDD (RFC 1035 5.1). */
static size_t present(char *out, size_t o, uint8_t c)
{
    if (c >= 'A' && c <= 'Z') {
        out[o++] = (char)(c - 'A' + 'a');
    } else if (c < '!' || c > '~' || c == '.' || c == '\\') {
        out[o++] = '\\';
        out[o++] = (char)('0' + c / 100);
        out[o++] = (char)('0' + c / 10 % 10);
        out[o++] = (char)('0' + c % 10);
    } else {
        out[o++] = (char)c;
    }
    return o;
}

/*
 * Read the name that starts at msg[off]. Its octets in place, up to the root label or the
 * first pointer, must lie before limit (limit <= len: the end of the record data for a name
 * inside rdata); what a pointer leads to must lie inside the message. Writes the
 * presentation form to out (DNS_NAME_MAX + 1 bytes, always NUL-terminated) unless out is
 * NULL, and on success the offset just past the octets in place to *next.
 */
static int read_name(const uint8_t *msg, size_t len, size_t off, size_t limit, char *out,
                     size_t *next, const char **why)
{
    size_t pos = off, seg = off, bound = limit, end = 0, wire = 1, o = 0;
    int hops = 0, rc = DNS_EOK;

    for (;;) {
        unsigned c;

        if (pos >= bound) {
            rc = fail(why, DNS_ESHORT, "message ends inside a name");
            goto done;
        }
        c = msg[pos];
        if ((c & 0xC0) == 0xC0) {
            size_t target;

            if (bound - pos < 2) {
                rc = fail(why, DNS_ESHORT, "message ends inside a compression pointer");
                goto done;
            }
            target = (size_t)(c & 0x3F) << 8 | msg[pos + 1];
            /* RFC 1035 4.1.4: a pointer refers to a prior occurrence of the name. Pointing
             * before the labels being read (not merely before the pointer) is what every
             * compressor does, and it makes loops impossible. */
            if (target >= seg) {
                rc = fail(why, DNS_ENAME, "compression pointer does not point backwards");
                goto done;
            }
            if (target < DNS_HEADER_LEN) {
                rc = fail(why, DNS_ENAME, "compression pointer into the message header");
                goto done;
            }
            if (++hops > MAX_HOPS) {
                rc = fail(why, DNS_ENAME, "too many compression pointers in a name");
                goto done;
            }
            if (end == 0)
                end = pos + 2;
            pos = seg = target;
            bound = len;
            continue;
        }
        /* RFC 6891 5 retired the 0x40 extended label type; 0x80 was never assigned. */
        if (c & 0xC0) {
            rc = fail(why, DNS_ENAME, "name has a label of type 0x40 or 0x80");
            goto done;
        }
        if (c == 0) {
            pos++;
            break;
        }
        /* RFC 1035 2.3.4: 255 octets, counting the length octets and the root. */
        wire += 1 + c;
        if (wire > WIRE_NAME_MAX) {
            rc = fail(why, DNS_ENAME, "name longer than 255 octets");
            goto done;
        }
        if (bound - pos - 1 < c) {
            rc = fail(why, DNS_ESHORT, "message ends inside a name");
            goto done;
        }
        if (out != NULL) {
            if (o > 0)
                out[o++] = '.';
            for (size_t i = 0; i < c; i++)
                o = present(out, o, msg[pos + 1 + i]);
        }
        pos += 1 + c;
    }
    *next = end ? end : pos;
done:
    if (out != NULL)
        out[o] = '\0';
    return rc;
}

/*
 * Turn a query name in presentation form (LDH and '_' labels, one optional trailing dot; ""
 * and "." are the root) into wire form in wire[WIRE_NAME_MAX].
 */
static int encode_name(const char *name, uint8_t *wire, size_t *wlen, const char **why)
{
    size_t n, w = 1, lab = 0;

    if (name == NULL)
        return fail(why, DNS_EQUERY, "no query name");
    n = strlen(name);
    if (n > 0 && name[n - 1] == '.')
        n--;
    if (n == 0) {
        wire[0] = 0;
        *wlen = 1;
        return DNS_EOK;
    }
    /* n characters are n + 2 octets on the wire: a length octet for the first label (the
     * others take the place of the dots) and the root. */
    if (n > WIRE_NAME_MAX - 2)
        return fail(why, DNS_EQUERY, "query name longer than 255 octets");
    for (size_t i = 0; i <= n; i++) {
        char c = i < n ? name[i] : '.';

        if (c == '.') {
            size_t l = w - lab - 1;

            if (l == 0)
                return fail(why, DNS_EQUERY, "empty label in query name");
            if (l > LABEL_MAX)
                return fail(why, DNS_EQUERY, "label longer than 63 octets in query name");
            wire[lab] = (uint8_t)l;
            lab = w++;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return fail(why, DNS_EQUERY,
                        "query name has a character other than letters, digits, '-', '_', '.'");
        wire[w++] = (uint8_t)c;
    }
    /* The slot opened after the last label is the root. */
    wire[lab] = 0;
    *wlen = w;
    return DNS_EOK;
}

int dns_build_query(uint8_t *out, size_t cap, uint16_t id, const char *qname, uint16_t qtype,
                    int dnssec_ok, uint16_t payload, size_t *outlen, const char **why)
{
    uint8_t wire[WIRE_NAME_MAX];
    size_t wlen = 0, total, p;
    int rc;

    rc = encode_name(qname, wire, &wlen, why);
    if (rc < 0)
        return rc;
    total = DNS_HEADER_LEN + wlen + 4 + OPT_LEN;
    if (out == NULL || cap < total)
        return fail(why, DNS_ESPACE, "buffer too small for the query");

    /* RFC 1035 4.1.1: a standard query with RD; RFC 6840 5.7: AD asks the resolver to say
     * whether it validated the answer. One question, one additional record (the OPT). */
    memset(out, 0, DNS_HEADER_LEN);
    put16(out, id);
    out[2] = 0x01;
    out[3] = 0x20;
    put16(out + 4, 1);
    put16(out + 10, 1);
    memcpy(out + DNS_HEADER_LEN, wire, wlen);
    p = DNS_HEADER_LEN + wlen;
    put16(out + p, qtype);
    put16(out + p + 2, DNS_CLASS_IN);
    p += 4;

    /* RFC 6891 6.1.2: root owner, CLASS is the payload size, TTL holds extended RCODE 0,
     * version 0 and the flags with DO (RFC 3225) when DNSSEC records are wanted. */
    out[p] = 0;
    put16(out + p + 1, DNS_TYPE_OPT);
    put16(out + p + 3, payload);
    put32(out + p + 5, dnssec_ok ? EDNS_DO : 0);
    put16(out + p + 9, 0);
    *outlen = total;
    return DNS_EOK;
}

int dns_parse_header(const uint8_t *msg, size_t len, struct dns_header *h, const char **why)
{
    if (msg == NULL || len < DNS_HEADER_LEN)
        return fail(why, DNS_ESHORT, "message shorter than a DNS header");

    /* RFC 1035 4.1.1, with AD and CD from RFC 4035 3.2. The Z bit is ignored. */
    h->id = get16(msg);
    h->qr = (msg[2] >> 7) & 1;
    h->opcode = (msg[2] >> 3) & 0xF;
    h->aa = (msg[2] >> 2) & 1;
    h->tc = (msg[2] >> 1) & 1;
    h->rd = msg[2] & 1;
    h->ra = (msg[3] >> 7) & 1;
    h->ad = (msg[3] >> 5) & 1;
    h->cd = (msg[3] >> 4) & 1;
    h->rcode = msg[3] & 0xF;
    h->qdcount = get16(msg + 4);
    h->ancount = get16(msg + 6);
    h->nscount = get16(msg + 8);
    h->arcount = get16(msg + 10);
    return DNS_EOK;
}

int dns_question(const uint8_t *msg, size_t len, char qname[DNS_NAME_MAX + 1], uint16_t *qtype,
                 uint16_t *qclass, const char **why)
{
    size_t pos;
    int rc;

    if (msg == NULL || len < DNS_HEADER_LEN)
        return fail(why, DNS_ESHORT, "message shorter than a DNS header");
    if (get16(msg + 4) == 0)
        return fail(why, DNS_ESHORT, "message has no question");
    rc = read_name(msg, len, DNS_HEADER_LEN, len, qname, &pos, why);
    if (rc < 0)
        return rc;
    if (len - pos < 4)
        return fail(why, DNS_ESHORT, "message ends inside the question");
    *qtype = get16(msg + pos);
    *qclass = get16(msg + pos + 2);
    return DNS_EOK;
}

int dns_iter_init(struct dns_iter *it, const uint8_t *msg, size_t len, const char **why)
{
    size_t pos = DNS_HEADER_LEN;
    unsigned qd;
    int rc;

    /* Until the question section has been skipped, the iterator yields nothing. */
    it->msg = msg;
    it->len = len;
    it->pos = len;
    it->left[0] = it->left[1] = it->left[2] = 0;
    it->section = DNS_SECTION_ADDITIONAL + 1;
    if (msg == NULL || len < DNS_HEADER_LEN)
        return fail(why, DNS_ESHORT, "message shorter than a DNS header");

    /* RFC 1035 4.1.2: every question is a name, QTYPE and QCLASS. */
    qd = get16(msg + 4);
    for (unsigned i = 0; i < qd; i++) {
        rc = read_name(msg, len, pos, len, NULL, &pos, why);
        if (rc < 0)
            return rc;
        if (len - pos < 4)
            return fail(why, DNS_ESHORT, "message ends inside the question");
        pos += 4;
    }
    it->pos = pos;
    it->left[DNS_SECTION_ANSWER] = get16(msg + 6);
    it->left[DNS_SECTION_AUTHORITY] = get16(msg + 8);
    it->left[DNS_SECTION_ADDITIONAL] = get16(msg + 10);
    it->section = DNS_SECTION_ANSWER;
    return DNS_EOK;
}

int dns_iter_next(struct dns_iter *it, struct dns_rr *rr, const char **why)
{
    size_t pos, len = it->len;
    uint16_t rdlen;
    int rc;

    while (it->section >= DNS_SECTION_ANSWER && it->section <= DNS_SECTION_ADDITIONAL &&
           it->left[it->section] == 0)
        it->section++;
    if (it->section < DNS_SECTION_ANSWER || it->section > DNS_SECTION_ADDITIONAL)
        return 0;

    /* RFC 1035 4.1.3. On an error the iterator stays where it is, so it gives the same error
     * again rather than resynchronise on garbage. */
    rc = read_name(it->msg, len, it->pos, len, rr->owner, &pos, why);
    if (rc < 0)
        return rc;
    if (len - pos < RR_FIXED)
        return fail(why, DNS_ESHORT, "message ends inside a resource record");
    rdlen = get16(it->msg + pos + 8);
    if (len - pos - RR_FIXED < rdlen)
        return fail(why, DNS_ESHORT, "message ends inside a record's data");

    rr->type = get16(it->msg + pos);
    rr->rclass = get16(it->msg + pos + 2);
    rr->ttl = get32(it->msg + pos + 4);
    /* RFC 2181 8: a TTL with the top bit set is read as zero (unbound does the same). The
     * OPT record's TTL field is flags (RFC 6891 6.1.3) and is left as it is. */
    if (rr->type != DNS_TYPE_OPT && (rr->ttl & 0x80000000u))
        rr->ttl = 0;
    rr->section = (enum dns_section)it->section;
    rr->rdata_off = pos + RR_FIXED;
    rr->rdata = it->msg + rr->rdata_off;
    rr->rdlen = rdlen;
    it->pos = rr->rdata_off + rdlen;
    it->left[it->section]--;
    return 1;
}

/* Check that rr's data lies inside msg, where names in the data are read. */
static int in_message(const uint8_t *msg, size_t len, const struct dns_rr *rr, const char **why)
{
    if (msg == NULL || rr->rdata_off > len || rr->rdlen > len - rr->rdata_off ||
        rr->rdata != msg + rr->rdata_off)
        return fail(why, DNS_ERDATA, "record is not from this message");
    return DNS_EOK;
}

/* Read a name that fills rr's data exactly from data offset skip on. */
static int rdata_name(const uint8_t *msg, size_t len, const struct dns_rr *rr, size_t skip,
                      char name[DNS_NAME_MAX + 1], const char **why)
{
    size_t end = rr->rdata_off + rr->rdlen, next = 0;
    int rc;

    /* Names in record data may be compressed against the whole message (RFC 1035 4.1.4),
     * but the octets in place belong to the record. */
    rc = read_name(msg, len, rr->rdata_off + skip, end, name, &next, why);
    if (rc == DNS_ESHORT)
        return fail(why, DNS_ERDATA, "name runs past the end of the record data");
    if (rc < 0)
        return rc;
    if (next != end)
        return fail(why, DNS_ERDATA, "record data has bytes after the name");
    return DNS_EOK;
}

int dns_rdata_mx(const uint8_t *msg, size_t len, const struct dns_rr *rr, uint16_t *preference,
                 char host[DNS_NAME_MAX + 1], const char **why)
{
    int rc;

    if (rr == NULL || rr->type != DNS_TYPE_MX)
        return fail(why, DNS_ERDATA, "not an MX record");
    rc = in_message(msg, len, rr, why);
    if (rc < 0)
        return rc;
    /* RFC 1035 3.3.9: PREFERENCE and EXCHANGE; a root EXCHANGE is a null MX (RFC 7505). */
    if (rr->rdlen < 3)
        return fail(why, DNS_ERDATA, "MX record data shorter than a preference and a name");
    rc = rdata_name(msg, len, rr, 2, host, why);
    if (rc < 0)
        return rc;
    *preference = get16(rr->rdata);
    return DNS_EOK;
}

int dns_rdata_cname(const uint8_t *msg, size_t len, const struct dns_rr *rr,
                    char target[DNS_NAME_MAX + 1], const char **why)
{
    int rc;

    if (rr == NULL || rr->type != DNS_TYPE_CNAME)
        return fail(why, DNS_ERDATA, "not a CNAME record");
    rc = in_message(msg, len, rr, why);
    if (rc < 0)
        return rc;
    /* RFC 1035 3.3.1: the data is one name. */
    if (rr->rdlen < 1)
        return fail(why, DNS_ERDATA, "CNAME record has no data");
    return rdata_name(msg, len, rr, 0, target, why);
}

int dns_rdata_addr(const struct dns_rr *rr, uint8_t addr[16], size_t *alen, const char **why)
{
    size_t want;

    /* RFC 1035 3.4.1 and RFC 3596 2.2. */
    if (rr == NULL || (rr->type != DNS_TYPE_A && rr->type != DNS_TYPE_AAAA))
        return fail(why, DNS_ERDATA, "not an A or AAAA record");
    want = rr->type == DNS_TYPE_A ? 4 : 16;
    if (rr->rdlen != want || rr->rdata == NULL)
        return fail(why, DNS_ERDATA,
                    rr->type == DNS_TYPE_A ? "A record data is not 4 bytes"
                                           : "AAAA record data is not 16 bytes");
    memcpy(addr, rr->rdata, want);
    *alen = want;
    return DNS_EOK;
}

int dns_rdata_tlsa(const struct dns_rr *rr, uint8_t *usage, uint8_t *selector, uint8_t *mtype,
                   const uint8_t **data, size_t *dlen, const char **why)
{
    if (rr == NULL || rr->type != DNS_TYPE_TLSA)
        return fail(why, DNS_ERDATA, "not a TLSA record");
    /* RFC 6698 2.1: three one-byte fields and the certificate association data, which the
     * presentation format (2.2) requires to be present. Whether its length suits the
     * matching type is for the caller (RFC 7671 makes such a record unusable, not bad). */
    if (rr->rdlen < 4 || rr->rdata == NULL)
        return fail(why, DNS_ERDATA, "TLSA record data shorter than 4 bytes");
    *usage = rr->rdata[0];
    *selector = rr->rdata[1];
    *mtype = rr->rdata[2];
    *data = rr->rdata + 3;
    *dlen = (size_t)rr->rdlen - 3;
    return DNS_EOK;
}

int dns_rdata_txt(const struct dns_rr *rr, char *out, size_t cap, size_t *outlen, const char **why)
{
    size_t total = 0, i, o = 0;

    if (rr == NULL || rr->type != DNS_TYPE_TXT)
        return fail(why, DNS_ERDATA, "not a TXT record");
    /* RFC 1035 3.3.14: one or more <character-string>s (3.3), a length byte and that many
     * bytes each, filling the data exactly. Check all of it before copying any. */
    if (rr->rdlen == 0 || rr->rdata == NULL)
        return fail(why, DNS_ERDATA, "TXT record has no character-string");
    for (i = 0; i < rr->rdlen; i += 1 + (size_t)rr->rdata[i]) {
        if (rr->rdlen - i - 1 < rr->rdata[i])
            return fail(why, DNS_ERDATA, "TXT character-string runs past the record data");
        total += rr->rdata[i];
    }
    if (out == NULL || cap <= total)
        return fail(why, DNS_ESPACE, "buffer too small for the TXT record");
    for (i = 0; i < rr->rdlen; i += 1 + (size_t)rr->rdata[i]) {
        memcpy(out + o, rr->rdata + i + 1, rr->rdata[i]);
        o += rr->rdata[i];
    }
    out[o] = '\0';
    *outlen = o;
    return DNS_EOK;
}

int dns_name_equal(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return 0;
    for (;; a++, b++) {
        unsigned char x = (unsigned char)*a, y = (unsigned char)*b;

        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y - 'A' + 'a');
        if (x != y)
            return 0;
        if (x == '\0')
            return 1;
    }
}

int dns_answer_next(struct dns_iter *it, const char *owner, uint16_t type, struct dns_rr *rr,
                    const char **why)
{
    int rc;

    while ((rc = dns_iter_next(it, rr, why)) == 1)
        if (rr->section == DNS_SECTION_ANSWER && rr->type == type &&
            dns_name_equal(rr->owner, owner))
            return 1;
    return rc;
}
