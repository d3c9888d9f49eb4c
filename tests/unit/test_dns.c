/*
 * Unit tests for proto/dns.c. Whole messages are assembled from table rows (header flags, a
 * question and records given in wire form, with rdlen and the section counts filled in) and
 * walked as the daemon walks them: header, question, every record through the decoder for its
 * type. Each record is described as one line of text, and a row lists the lines it wants.
 * Every proper prefix of every message must fail cleanly. Then names built in code (pointer
 * chains, 255-octet limits), rdata decoders on their own, query building and name comparison.
 */
#include "check.h"
#include "dns.h"
#include "dnsmsg.h"

#include <stdint.h>
#include <stdlib.h>

/* Labels of 61 to 63 letters, with (W) and without their length octet. */
#define A9 "aaaaaaaaa"
#define A61 A9 A9 A9 A9 A9 A9 "aaaaaaa"
#define A62 A61 "a"
#define A63 A9 A9 A9 A9 A9 A9 A9
#define B63 "b" A62
#define W61 "\075" A61
#define W62 "\076" A62
#define W63 "\077" A63

/* Two-byte fields in wire form (octal escapes, so a following letter is not swallowed). */
#define T_A "\000\001"
#define T_MX "\000\017"
#define T_TLSA "\000\064"
#define T_SOA "\000\006"
#define C_IN "\000\001"

/* DIGEST (dnsmsg.h) in hex. */
#define DIGEST_HEX "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

#define MAX_RRS 8

struct msg_row {
    const char *label;
    uint16_t flags;    /* header bytes 2 and 3 */
    const char *qname; /* the question's name in wire form; NULL for no question */
    size_t qlen;
    uint16_t qtype;
    struct dnsmsg_rr rr[MAX_RRS];
    const char *want[12]; /* header line, question line, one per record, "end" or an error */
};

#define MAXMSG 4096
#define LINE 1400

/* The question of the row used most: example.com MX, its name at offset 12. */
#define Q_EXAMPLE_MX S("\007example\003com\000"), DNS_TYPE_MX

static const struct msg_row msg_rows[] = {
    /* Offsets: question name 12..24, QTYPE and QCLASS 25..28, first record at 29 with its
     * data at 41, where "mx1" is at 43 (octal 053). */
    {"MX answer with compression, glue and OPT",
     0x81a0,
     Q_EXAMPLE_MX,
     {{AN, S("\300\014"), DNS_TYPE_MX, 0, 300, S("\000\012\003mx1\300\014")},
      {AN, S("\300\014"), DNS_TYPE_MX, 0, 300, S("\000\024\003mx2\300\014")},
      {AR, S("\300\053"), DNS_TYPE_A, 0, 300, S("\300\000\002\001")},
      {AR, S("\300\053"), DNS_TYPE_AAAA, 0, 300,
       S("\040\001\015\270\000\000\000\000\000\000\000\000\000\000\000\001")},
      {AR, S("\000"), DNS_TYPE_OPT, 1232, 0x8000, S("")}},
     {"header id 0xd00d qr rd ra ad rcode 0 qd 1 an 2 ns 0 ar 3", "question example.com MX IN",
      "answer example.com MX 300 10 mx1.example.com",
      "answer example.com MX 300 20 mx2.example.com", "additional mx1.example.com A 300 192.0.2.1",
      "additional mx1.example.com AAAA 300 2001:db8:0:0:0:0:0:1",
      "additional (root) OPT payload 1232 flags 0x00008000 rdlen 0", "end"}},

    /* Question 12..29 ("example.org" at 17, octal 021), first record at 34 with its data
     * at 46 ("host" at 46, octal 056; "example.net" at 51, octal 063); the second record
     * at 64, its data at 76 (octal 114); the third at 83. */
    {"CNAME chain",
     0x8180,
     S("\004mail\007example\003org\000"),
     DNS_TYPE_A,
     {{AN, S("\300\014"), DNS_TYPE_CNAME, 0, 3600, S("\004host\007example\003net\000")},
      {AN, S("\300\056"), DNS_TYPE_CNAME, 0, 3600, S("\004real\300\063")},
      {AN, S("\300\114"), DNS_TYPE_A, 0, 60, S("\306\063\144\007")}},
     {"header id 0xd00d qr rd ra rcode 0 qd 1 an 3 ns 0 ar 0", "question mail.example.org A IN",
      "answer mail.example.org CNAME 3600 host.example.net",
      "answer host.example.net CNAME 3600 real.example.net",
      "answer real.example.net A 60 198.51.100.7", "end"}},

    {"TLSA 3 1 1 with its RRSIG and DO in the OPT",
     0x81a0,
     S("\003_25\004_tcp\003mx1\007example\003com\000"),
     DNS_TYPE_TLSA,
     {{AN, S("\300\014"), DNS_TYPE_TLSA, 0, 3600, S("\003\001\001" DIGEST)},
      {AN, S("\300\014"), DNS_TYPE_RRSIG, 0, 3600,
       S(T_TLSA "\015\005\000\000\016\020"
                "\145\000\000\000\144\000\000\000\061\062"
                "\007example\003com\000" DIGEST DIGEST)},
      {AR, S("\000"), DNS_TYPE_OPT, 1232, 0x8000, S("")}},
     {"header id 0xd00d qr rd ra ad rcode 0 qd 1 an 2 ns 0 ar 1",
      "question _25._tcp.mx1.example.com TLSA IN",
      "answer _25._tcp.mx1.example.com TLSA 3600 3 1 1 " DIGEST_HEX,
      "answer _25._tcp.mx1.example.com RRSIG 3600 rdlen 95",
      "additional (root) OPT payload 1232 flags 0x00008000 rdlen 0", "end"}},

    {"TLSA 2 0 1 and 3 1 2 in one RRset",
     0x8180,
     S("\003_25\004_tcp\003mx1\007example\003com\000"),
     DNS_TYPE_TLSA,
     {{AN, S("\300\014"), DNS_TYPE_TLSA, 0, 3600, S("\002\000\001" DIGEST)},
      {AN, S("\300\014"), DNS_TYPE_TLSA, 0, 3600, S("\003\001\002" DIGEST DIGEST)}},
     {"header id 0xd00d qr rd ra rcode 0 qd 1 an 2 ns 0 ar 0",
      "question _25._tcp.mx1.example.com TLSA IN",
      "answer _25._tcp.mx1.example.com TLSA 3600 2 0 1 " DIGEST_HEX,
      "answer _25._tcp.mx1.example.com TLSA 3600 3 1 2 " DIGEST_HEX DIGEST_HEX, "end"}},

    {"TXT with one string",
     0x8180,
     S("\010_mta-sts\007example\003com\000"),
     DNS_TYPE_TXT,
     {{AN, S("\300\014"), DNS_TYPE_TXT, 0, 300, S("\034v=STSv1; id=20240101T000000;")}},
     {"header id 0xd00d qr rd ra rcode 0 qd 1 an 1 ns 0 ar 0",
      "question _mta-sts.example.com TXT IN",
      "answer _mta-sts.example.com TXT 300 \"v=STSv1; id=20240101T000000;\"", "end"}},

    {"TXT with several strings, one empty, and a NUL byte",
     0x8180,
     S("\007example\003com\000"),
     DNS_TYPE_TXT,
     {{AN, S("\300\014"), DNS_TYPE_TXT, 0, 300,
       S("\007v=spf1 \031include:_spf.example.com \004-all\000")},
      {AN, S("\300\014"), DNS_TYPE_TXT, 0, 300, S("\002a\000\000\001b")}},
     {"header id 0xd00d qr rd ra rcode 0 qd 1 an 2 ns 0 ar 0", "question example.com TXT IN",
      "answer example.com TXT 300 \"v=spf1 include:_spf.example.com -all\"",
      "answer example.com TXT 300 \"a\\x00b\"", "end"}},

    /* "example.com" of the question is at 19 (octal 023). */
    {"NXDOMAIN with AD, SOA and RRSIG in the authority",
     0x81a3,
     S("\006nosuch\007example\003com\000"),
     DNS_TYPE_MX,
     {{NS, S("\300\023"), DNS_TYPE_SOA, 0, 900,
       S("\003ns1\300\023\012hostmaster\300\023"
         "\170\000\000\001\000\000\016\020\000\000\003\204\000\011\072\200\000\000\003\204")},
      {NS, S("\300\023"), DNS_TYPE_RRSIG, 0, 900,
       S(T_SOA "\015\002\000\000\003\204"
               "\145\000\000\000\144\000\000\000\061\062"
               "\007example\003com\000" DIGEST)},
      {AR, S("\000"), DNS_TYPE_OPT, 1232, 0x8000, S("")}},
     {"header id 0xd00d qr rd ra ad rcode 3 qd 1 an 0 ns 2 ar 1",
      "question nosuch.example.com MX IN", "authority example.com SOA 900 rdlen 39",
      "authority example.com RRSIG 900 rdlen 63",
      "additional (root) OPT payload 1232 flags 0x00008000 rdlen 0", "end"}},

    {"SERVFAIL with CD and only an OPT",
     0x8192,
     Q_EXAMPLE_MX,
     {{AR, S("\000"), DNS_TYPE_OPT, 4096, 0x8000, S("")}},
     {"header id 0xd00d qr rd ra cd rcode 2 qd 1 an 0 ns 0 ar 1", "question example.com MX IN",
      "additional (root) OPT payload 4096 flags 0x00008000 rdlen 0", "end"}},

    {"authoritative, truncated, opcode 2, REFUSED",
     0x9605,
     Q_EXAMPLE_MX,
     {{0}},
     {"header id 0xd00d qr opcode 2 aa tc rcode 5 qd 1 an 0 ns 0 ar 0",
      "question example.com MX IN", "end"}},

    {"no question, NOTIMP",
     0x8004,
     NULL,
     0,
     0,
     {{0}},
     {"header id 0xd00d qr rcode 4 qd 0 an 0 ns 0 ar 0", "ESHORT", "end"}},

    {"OPT with an extended RCODE, version and an option",
     0x8180,
     Q_EXAMPLE_MX,
     {{AR, S("\000"), DNS_TYPE_OPT, 1232, 0x01018000, S("\000\012\000\002ab")}},
     {"header id 0xd00d qr rd ra rcode 0 qd 1 an 0 ns 0 ar 1", "question example.com MX IN",
      "additional (root) OPT payload 1232 flags 0x01018000 rdlen 6", "end"}},

    {"upper-case names come out in lower case",
     0x8180,
     S("\007ExAmPlE\003COM\000"),
     DNS_TYPE_MX,
     {{AN, S("\300\014"), DNS_TYPE_MX, 0, 300, S("\000\005\004MAIL\300\014")}},
     {"header id 0xd00d qr rd ra rcode 0 qd 1 an 1 ns 0 ar 0", "question example.com MX IN",
      "answer example.com MX 300 5 mail.example.com", "end"}},

    {"null MX (RFC 7505)",
     0x8180,
     Q_EXAMPLE_MX,
     {{AN, S("\300\014"), DNS_TYPE_MX, 0, 300, S("\000\000\000")}},
     {"header id 0xd00d qr rd ra rcode 0 qd 1 an 1 ns 0 ar 0", "question example.com MX IN",
      "answer example.com MX 300 0 (root)", "end"}},

    {"MX and CNAME names without compression",
     0x8180,
     Q_EXAMPLE_MX,
     {{AN, S("\007example\003com\000"), DNS_TYPE_MX, 0, 300,
       S("\000\001\002mx\007example\003net\000")},
      {AN, S("\003www\007example\003com\000"), DNS_TYPE_CNAME, 0, 300,
       S("\007example\003com\000")}},
     {"header id 0xd00d qr rd ra rcode 0 qd 1 an 2 ns 0 ar 0", "question example.com MX IN",
      "answer example.com MX 300 1 mx.example.net", "answer www.example.com CNAME 300 example.com",
      "end"}},

    {"label with odd bytes is escaped",
     0x8180,
     S("\010A.b\\ \000\377\"\007example\000"),
     DNS_TYPE_A,
     {{AN, S("\300\014"), DNS_TYPE_CNAME, 0, 300, S("\003\177~!\300\025")}},
     {"header id 0xd00d qr rd ra rcode 0 qd 1 an 1 ns 0 ar 0",
      "question a\\046b\\092\\032\\000\\255\".example A IN",
      "answer a\\046b\\092\\032\\000\\255\".example CNAME 300 \\127~!.example", "end"}},

    {"root question and a TTL with the top bit set",
     0x8180,
     S("\000"),
     DNS_TYPE_SOA,
     {{AN, S("\000"), DNS_TYPE_A, 0, 0x80000001, S("\177\000\000\001")},
      {AN, S("\000"), DNS_TYPE_A, 0, 0x7fffffff, S("\177\000\000\002")}},
     {"header id 0xd00d qr rd ra rcode 0 qd 1 an 2 ns 0 ar 0", "question (root) SOA IN",
      "answer (root) A 0 127.0.0.1", "answer (root) A 2147483647 127.0.0.2", "end"}},

    /* The question's second label is at 76 (octal 114). */
    {"names of exactly 255 octets, one through a pointer",
     0x8180,
     S(W63 W63 W63 W61 "\000"),
     DNS_TYPE_A,
     {{AN, S(W63 W63 W63 W61 "\000"), DNS_TYPE_A, 0, 1, S("\300\000\002\001")},
      {AN, S("\077" B63 "\300\114"), DNS_TYPE_A, 0, 1, S("\300\000\002\002")}},
     {"header id 0xd00d qr rd ra rcode 0 qd 1 an 2 ns 0 ar 0",
      "question " A63 "." A63 "." A63 "." A61 " A IN",
      "answer " A63 "." A63 "." A63 "." A61 " A 1 192.0.2.1",
      "answer " B63 "." A63 "." A63 "." A61 " A 1 192.0.2.2", "end"}},

    /* Bad record data: the iterator yields the record, its decoder refuses it. */
    {"rdata of the wrong length",
     0x8180,
     Q_EXAMPLE_MX,
     {{AN, S("\300\014"), DNS_TYPE_A, 0, 300, S("\300\000\002\001\000")},
      {AN, S("\300\014"), DNS_TYPE_A, 0, 300, S("\300\000\002")},
      {AN, S("\300\014"), DNS_TYPE_AAAA, 0, 300, S("\300\000\002\001")},
      {AN, S("\300\014"), DNS_TYPE_TLSA, 0, 300, S("\003\001\001")},
      {AN, S("\300\014"), DNS_TYPE_TLSA, 0, 300, S("\003\001")},
      {AN, S("\300\014"), DNS_TYPE_TXT, 0, 300, S("")},
      {AN, S("\300\014"), DNS_TYPE_TXT, 0, 300, S("\003ab\002c")},
      {AN, S("\300\014"), DNS_TYPE_MX, 0, 300, S("\000\012")}},
     {"header id 0xd00d qr rd ra rcode 0 qd 1 an 8 ns 0 ar 0", "question example.com MX IN",
      "answer example.com A 300 ERDATA", "answer example.com A 300 ERDATA",
      "answer example.com AAAA 300 ERDATA", "answer example.com TLSA 300 ERDATA",
      "answer example.com TLSA 300 ERDATA", "answer example.com TXT 300 ERDATA",
      "answer example.com TXT 300 ERDATA", "answer example.com MX 300 ERDATA", "end"}},

    {"names that do not fill their rdata",
     0x8180,
     Q_EXAMPLE_MX,
     {{AN, S("\300\014"), DNS_TYPE_MX, 0, 300, S("\000\012\003mx1\300\014\000")},
      {AN, S("\300\014"), DNS_TYPE_CNAME, 0, 300, S("\003www\000\000")},
      {AN, S("\300\014"), DNS_TYPE_CNAME, 0, 300, S("")},
      {AN, S("\300\014"), DNS_TYPE_MX, 0, 300, S("\000\012\003mx1")}},
     {"header id 0xd00d qr rd ra rcode 0 qd 1 an 4 ns 0 ar 0", "question example.com MX IN",
      "answer example.com MX 300 ERDATA", "answer example.com CNAME 300 ERDATA",
      "answer example.com CNAME 300 ERDATA", "answer example.com MX 300 ERDATA", "end"}},

    /* The first record is at 29 with its data at 41 (octal 051). */
    {"bad names inside rdata",
     0x8180,
     Q_EXAMPLE_MX,
     {{AN, S("\300\014"), DNS_TYPE_CNAME, 0, 300, S("\300\051")},
      {AN, S("\300\014"), DNS_TYPE_MX, 0, 300, S("\000\001\100")},
      {AN, S("\300\014"), DNS_TYPE_MX, 0, 300, S("\000\001\001a\300\000")}},
     {"header id 0xd00d qr rd ra rcode 0 qd 1 an 3 ns 0 ar 0", "question example.com MX IN",
      "answer example.com CNAME 300 ENAME", "answer example.com MX 300 ENAME",
      "answer example.com MX 300 ENAME", "end"}},

    /* Bad owner names stop the walk: the first record starts at 19. */
    {"owner pointing to itself",
     0x8180,
     S("\001x\000"),
     DNS_TYPE_A,
     {{AN, S("\300\023"), DNS_TYPE_A, 0, 1, S("\300\000\002\001")}},
     {"header id 0xd00d qr rd ra rcode 0 qd 1 an 1 ns 0 ar 0", "question x A IN", "ENAME"}},

    {"owner pointing forwards",
     0x8180,
     S("\001x\000"),
     DNS_TYPE_A,
     {{AN, S("\300\025"), DNS_TYPE_A, 0, 1, S("\300\000\002\001")}},
     {"header id 0xd00d qr rd ra rcode 0 qd 1 an 1 ns 0 ar 0", "question x A IN", "ENAME"}},

    /* A pointer loop entered backwards: the second owner (at 34) points to the first
     * record's data (at 30), which points back to 34. */
    {"pointer loop",
     0x8180,
     S("\001x\000"),
     DNS_TYPE_A,
     {{AN, S("\000"), 65280, 0, 1, S("\001b\300\042")},
      {AN, S("\001a\300\036"), DNS_TYPE_A, 0, 1, S("\300\000\002\001")}},
     {"header id 0xd00d qr rd ra rcode 0 qd 1 an 2 ns 0 ar 0", "question x A IN",
      "answer (root) TYPE65280 1 rdlen 4", "ENAME"}},

    {"owner pointing into the header",
     0x8180,
     S("\001x\000"),
     DNS_TYPE_A,
     {{AN, S("\300\002"), DNS_TYPE_A, 0, 1, S("\300\000\002\001")}},
     {"header id 0xd00d qr rd ra rcode 0 qd 1 an 1 ns 0 ar 0", "question x A IN", "ENAME"}},

    {"label type 0x40",
     0x8180,
     S("\001x\000"),
     DNS_TYPE_A,
     {{AN, S("\100\000"), DNS_TYPE_A, 0, 1, S("\300\000\002\001")}},
     {"header id 0xd00d qr rd ra rcode 0 qd 1 an 1 ns 0 ar 0", "question x A IN", "ENAME"}},

    {"label type 0x80",
     0x8180,
     S("\001x\000"),
     DNS_TYPE_A,
     {{AN, S("\201a\000"), DNS_TYPE_A, 0, 1, S("\300\000\002\001")}},
     {"header id 0xd00d qr rd ra rcode 0 qd 1 an 1 ns 0 ar 0", "question x A IN", "ENAME"}},

    {"question label type 0x40 (a 64-octet label)",
     0x8180,
     S("\100" A63 "a\000"),
     DNS_TYPE_A,
     {{0}},
     {"header id 0xd00d qr rd ra rcode 0 qd 1 an 0 ns 0 ar 0", "ENAME", "ENAME"}},

    {"question of 256 octets",
     0x8180,
     S(W63 W63 W63 W62 "\000"),
     DNS_TYPE_A,
     {{0}},
     {"header id 0xd00d qr rd ra rcode 0 qd 1 an 0 ns 0 ar 0", "ENAME", "ENAME"}},

    {"owner over 255 octets through a pointer",
     0x8180,
     S(W63 W63 W63 W61 "\000"),
     DNS_TYPE_A,
     {{AN, S("\001a\300\014"), DNS_TYPE_A, 0, 1, S("\300\000\002\001")}},
     {"header id 0xd00d qr rd ra rcode 0 qd 1 an 1 ns 0 ar 0",
      "question " A63 "." A63 "." A63 "." A61 " A IN", "ENAME"}},

    {"question with a pointer",
     0x8180,
     S("\001x\300\014"),
     DNS_TYPE_A,
     {{0}},
     {"header id 0xd00d qr rd ra rcode 0 qd 1 an 0 ns 0 ar 0", "ENAME", "ENAME"}},
};

static const char *type_name(unsigned t)
{
    switch (t) {
    case DNS_TYPE_A:
        return "A";
    case DNS_TYPE_NS:
        return "NS";
    case DNS_TYPE_CNAME:
        return "CNAME";
    case DNS_TYPE_SOA:
        return "SOA";
    case DNS_TYPE_MX:
        return "MX";
    case DNS_TYPE_TXT:
        return "TXT";
    case DNS_TYPE_AAAA:
        return "AAAA";
    case DNS_TYPE_OPT:
        return "OPT";
    case DNS_TYPE_RRSIG:
        return "RRSIG";
    case DNS_TYPE_TLSA:
        return "TLSA";
    }
    return NULL;
}

static const char *code_name(int rc)
{
    switch (rc) {
    case DNS_ESHORT:
        return "ESHORT";
    case DNS_ENAME:
        return "ENAME";
    case DNS_ERDATA:
        return "ERDATA";
    case DNS_ESPACE:
        return "ESPACE";
    case DNS_EQUERY:
        return "EQUERY";
    }
    return "unexpected code";
}

static const char *shown(const char *name)
{
    return name[0] ? name : "(root)";
}

/* Append printf output to a line, truncating rather than overflowing. */
#define ADD(line, ...)                                                                             \
    do {                                                                                           \
        size_t used_ = strlen(line);                                                               \
        snprintf((line) + used_, LINE - used_, __VA_ARGS__);                                       \
    } while (0)

/* Describe one record's data through the decoder for its type. */
static void describe_rdata(const uint8_t *msg, size_t len, const struct dns_rr *rr, char *line)
{
    char name[DNS_NAME_MAX + 1], txt[700];
    const char *why = NULL;
    uint8_t addr[16], u, s, m;
    const uint8_t *data;
    size_t n;
    uint16_t pref;
    int rc = DNS_EOK;

    switch (rr->type) {
    case DNS_TYPE_A:
    case DNS_TYPE_AAAA:
        rc = dns_rdata_addr(rr, addr, &n, &why);
        if (rc == DNS_EOK && n == 4)
            ADD(line, " %u.%u.%u.%u", addr[0], addr[1], addr[2], addr[3]);
        else if (rc == DNS_EOK)
            for (size_t i = 0; i < 16; i += 2)
                ADD(line, "%s%x", i ? ":" : " ", addr[i] << 8 | addr[i + 1]);
        break;
    case DNS_TYPE_MX:
        rc = dns_rdata_mx(msg, len, rr, &pref, name, &why);
        if (rc == DNS_EOK)
            ADD(line, " %u %s", pref, shown(name));
        break;
    case DNS_TYPE_CNAME:
        rc = dns_rdata_cname(msg, len, rr, name, &why);
        if (rc == DNS_EOK)
            ADD(line, " %s", shown(name));
        break;
    case DNS_TYPE_TLSA:
        rc = dns_rdata_tlsa(rr, &u, &s, &m, &data, &n, &why);
        if (rc == DNS_EOK) {
            ADD(line, " %u %u %u ", u, s, m);
            for (size_t i = 0; i < n; i++)
                ADD(line, "%02x", data[i]);
        }
        break;
    case DNS_TYPE_TXT:
        rc = dns_rdata_txt(rr, txt, sizeof(txt), &n, &why);
        if (rc == DNS_EOK) {
            ADD(line, " \"");
            for (size_t i = 0; i < n; i++)
                ADD(line, (txt[i] >= ' ' && txt[i] <= '~') ? "%c" : "\\x%02x",
                    (unsigned char)txt[i]);
            ADD(line, "\"");
        }
        break;
    case DNS_TYPE_OPT:
        ADD(line, " payload %u flags 0x%08lx rdlen %u", rr->rclass, (unsigned long)rr->ttl,
            rr->rdlen);
        break;
    default:
        ADD(line, " rdlen %u", rr->rdlen);
    }
    if (rc < 0)
        ADD(line, " %s%s", code_name(rc), why && *why ? "" : " without a reason");
}

/*
 * Walk a message as the daemon would; one line per step into lines[], the last "end" or the
 * error that stopped the walk. Returns the number of lines; *final gets the walk's result
 * (0 or the first negative code from the header, question or iterator).
 */
static size_t walk(const uint8_t *msg, size_t len, char (*lines)[LINE], size_t max, int *final)
{
    struct dns_header h;
    struct dns_iter it;
    struct dns_rr rr;
    char qname[DNS_NAME_MAX + 1];
    static const char *const sections[] = {"answer", "authority", "additional"};
    const char *why = NULL;
    uint16_t qtype, qclass;
    size_t n = 0;
    int rc;

    *final = 0;
    lines[0][0] = '\0';
    rc = dns_parse_header(msg, len, &h, &why);
    if (rc < 0) {
        *final = rc;
        ADD(lines[0], "%s", code_name(rc));
        return 1;
    }
    ADD(lines[n], "header id 0x%04x%s", h.id, h.qr ? " qr" : "");
    if (h.opcode)
        ADD(lines[n], " opcode %u", h.opcode);
    ADD(lines[n], "%s%s%s%s%s%s rcode %u qd %u an %u ns %u ar %u", h.aa ? " aa" : "",
        h.tc ? " tc" : "", h.rd ? " rd" : "", h.ra ? " ra" : "", h.ad ? " ad" : "",
        h.cd ? " cd" : "", h.rcode, h.qdcount, h.ancount, h.nscount, h.arcount);
    n++;

    lines[n][0] = '\0';
    rc = dns_question(msg, len, qname, &qtype, &qclass, &why);
    if (rc < 0) {
        ADD(lines[n], "%s", code_name(rc));
        n++;
        if (h.qdcount > 0)
            *final = rc;
    } else {
        ADD(lines[n], "question %s ", shown(qname));
        if (type_name(qtype))
            ADD(lines[n], "%s", type_name(qtype));
        else
            ADD(lines[n], "TYPE%u", qtype);
        ADD(lines[n], qclass == DNS_CLASS_IN ? " IN" : " CLASS%u", qclass);
        n++;
    }

    rc = dns_iter_init(&it, msg, len, &why);
    while (rc >= 0 && n < max - 1) {
        rc = dns_iter_next(&it, &rr, &why);
        if (rc <= 0)
            break;
        lines[n][0] = '\0';
        ADD(lines[n], "%s %s ", sections[rr.section], shown(rr.owner));
        if (type_name(rr.type))
            ADD(lines[n], "%s", type_name(rr.type));
        else
            ADD(lines[n], "TYPE%u", rr.type);
        if (rr.type != DNS_TYPE_OPT)
            ADD(lines[n], " %lu", (unsigned long)rr.ttl);
        describe_rdata(msg, len, &rr, lines[n]);
        n++;
    }
    lines[n][0] = '\0';
    if (rc < 0) {
        if (*final == 0)
            *final = rc;
        ADD(lines[n], "%s", code_name(rc));
    } else {
        ADD(lines[n], "end");
    }
    return n + 1;
}

/* Assemble a row's message: header id 0xd00d, the question, records in their sections. */
static size_t assemble(const struct msg_row *r, uint8_t *m)
{
    size_t p = dnsmsg_question(m, r->flags, r->qname, r->qlen, r->qtype, DNS_CLASS_IN);

    return dnsmsg_records(m, p, r->rr, MAX_RRS);
}

static void check_msg_row(const struct msg_row *r)
{
    static uint8_t m[MAXMSG];
    static char lines[16][LINE];
    char label[200];
    size_t len = assemble(r, m), n, want_n = 0;
    int final, prefix_final;
    uint8_t *copy;

    /* An exact-size copy, so AddressSanitizer sees any read past the end. */
    copy = dnsmsg_copy(m, len);
    n = walk(copy, len, lines, 16, &final);
    while (want_n < 12 && r->want[want_n] != NULL)
        want_n++;
    check_int(r->label, "number of lines", (long long)n, (long long)want_n);
    for (size_t i = 0; i < n && i < want_n; i++) {
        snprintf(label, sizeof(label), "%s, line %zu", r->label, i + 1);
        check_str(label, "description", lines[i], r->want[i]);
    }
    free(copy);

    /* RFC 1035 4.2.1: a UDP answer can be cut anywhere; every cut must fail cleanly. */
    for (size_t k = 0; k < len; k++) {
        copy = dnsmsg_copy(m, k);
        walk(copy, k, lines, 16, &prefix_final);
        snprintf(label, sizeof(label), "%s, first %zu of %zu bytes", r->label, k, len);
        check_true(label, "walk fails", prefix_final < 0);
        free(copy);
    }
}

/*
 * Names built in code: chains of pointers placed in the data of a private-type record (at
 * offset 12 + 1 + 10 = 23, the owner being the root), read through a CNAME record after it
 * whose data is one pointer to the chain's last link.
 */
static size_t chain_msg(uint8_t *m, size_t links, int with_labels, size_t *cname_rdata)
{
    size_t p = DNS_HEADER_LEN, start, last = 0;

    memset(m, 0, DNS_HEADER_LEN);
    m[7] = 2;
    m[p++] = 0; /* owner: root */
    m[p++] = 0xff;
    m[p++] = 0x00; /* type 65280 */
    m[p++] = 0;
    m[p++] = 1;
    p += 4; /* TTL 0 */
    p += 2; /* rdlen, below */
    start = p;
    /* The first link: "a" and the root. Each further link is "a" (or nothing) and a
     * pointer to the link before it. */
    m[p++] = 1;
    m[p++] = 'a';
    m[p++] = 0;
    last = start;
    for (size_t i = 1; i < links; i++) {
        size_t here = p;

        if (with_labels) {
            m[p++] = 1;
            m[p++] = 'a';
        }
        m[p++] = (uint8_t)(0xC0 | last >> 8);
        m[p++] = (uint8_t)last;
        last = here;
    }
    m[start - 2] = (uint8_t)((p - start) >> 8);
    m[start - 1] = (uint8_t)(p - start);

    /* The CNAME: owner root, data a pointer to the last link. */
    m[p++] = 0;
    m[p++] = 0;
    m[p++] = DNS_TYPE_CNAME;
    m[p++] = 0;
    m[p++] = 1;
    p += 4;
    m[p++] = 0;
    m[p++] = 2;
    *cname_rdata = p;
    m[p++] = (uint8_t)(0xC0 | last >> 8);
    m[p++] = (uint8_t)last;
    return p;
}

struct chain_row {
    const char *label;
    size_t links;
    int with_labels;
    int rc;
    size_t labels; /* in the name read, on success */
};

static const struct chain_row chain_rows[] = {
    {"2 labels, 1 pointer", 2, 1, DNS_EOK, 2},
    {"127 labels, each behind a pointer (255 octets)", 127, 1, DNS_EOK, 127},
    {"128 labels (257 octets)", 128, 1, DNS_ENAME, 0},
    {"128 pointers in a row", 128, 0, DNS_EOK, 1},
    {"129 pointers in a row", 129, 0, DNS_ENAME, 0},
    {"5000 pointers in a row", 5000, 0, DNS_ENAME, 0},
};

static void check_chain(const struct chain_row *r)
{
    static uint8_t m[16384];
    char name[DNS_NAME_MAX + 1];
    struct dns_iter it;
    struct dns_rr rr;
    const char *why = NULL;
    size_t cname_rdata, len, labels = 1;
    int rc;

    memset(m, 0, sizeof(m));
    len = chain_msg(m, r->links, r->with_labels, &cname_rdata);

    check_int(r->label, "iter_init", dns_iter_init(&it, m, len, &why), DNS_EOK);
    check_int(r->label, "first record", dns_iter_next(&it, &rr, &why), 1);
    check_int(r->label, "second record", dns_iter_next(&it, &rr, &why), 1);
    check_int(r->label, "second record's type", rr.type, DNS_TYPE_CNAME);
    check_int(r->label, "rdata offset", (long long)rr.rdata_off, (long long)cname_rdata);
    rc = dns_rdata_cname(m, len, &rr, name, &why);
    check_int(r->label, "cname rc", rc, r->rc);
    if (rc == DNS_EOK) {
        for (const char *c = name; *c; c++)
            labels += *c == '.';
        check_int(r->label, "labels", (long long)labels, (long long)r->labels);
        check_true(r->label, "all labels are \"a\"", strspn(name, "a.") == strlen(name));
    } else {
        check_true(r->label, "why is set", why != NULL && *why != '\0');
    }
    check_int(r->label, "end", dns_iter_next(&it, &rr, &why), 0);
}

/* Decoders on records made up in place; rdata need not be inside a message for these. */
struct rdata_row {
    const char *label;
    uint16_t type;
    const char *rdata;
    size_t rdlen;
    size_t cap; /* TXT buffer size */
    const char *want;
};

static const struct rdata_row rdata_rows[] = {
    {"A", DNS_TYPE_A, S("\012\000\000\001"), 0, " 10.0.0.1"},
    {"A of 12 bytes", DNS_TYPE_A, S("\012\000\000\001\000\000\000\000\000\000\000\000"), 0,
     " ERDATA"},
    {"AAAA", DNS_TYPE_AAAA, S("\376\200\000\000\000\000\000\000\000\000\000\000\000\000\000\002"),
     0, " fe80:0:0:0:0:0:0:2"},
    {"AAAA of 17 bytes", DNS_TYPE_AAAA,
     S("\376\200\000\000\000\000\000\000\000\000\000\000\000\000\000\002\000"), 0, " ERDATA"},
    {"AAAA of 0 bytes", DNS_TYPE_AAAA, S(""), 0, " ERDATA"},
    {"TLSA with one byte of data", DNS_TYPE_TLSA, S("\003\001\001\377"), 0, " 3 1 1 ff"},
    {"TLSA with unknown fields", DNS_TYPE_TLSA, S("\377\377\377\001\002"), 0, " 255 255 255 0102"},
    {"TLSA empty", DNS_TYPE_TLSA, S(""), 0, " ERDATA"},
    {"TXT that fits", DNS_TYPE_TXT, S("\003abc\002de"), 6, " \"abcde\""},
    {"TXT one byte too big", DNS_TYPE_TXT, S("\003abc\002de"), 5, " ESPACE"},
    {"TXT no room at all", DNS_TYPE_TXT, S("\003abc"), 0, " ESPACE"},
    {"TXT empty string", DNS_TYPE_TXT, S("\000"), 1, " \"\""},
    {"TXT length byte past the end", DNS_TYPE_TXT, S("\003abc\005de"), 100, " ERDATA"},
    {"TXT a lone length byte", DNS_TYPE_TXT, S("\001"), 100, " ERDATA"},
    {"TXT of 255 and 1", DNS_TYPE_TXT,
     S("\377" A63 A63 A63 A63 "aaa"
       "\001b"),
     258, " \"" A63 A63 A63 A63 "aaab\""},
};

static void check_rdata_row(const struct rdata_row *r)
{
    char line[LINE] = "";
    struct dns_rr rr;
    uint8_t *copy = dnsmsg_copy(r->rdata, r->rdlen);
    const char *why = NULL;
    char txt[300];
    size_t n = 12345;
    int rc;

    memset(&rr, 0, sizeof(rr));
    rr.type = r->type;
    rr.rclass = DNS_CLASS_IN;
    rr.rdata = copy;
    rr.rdlen = (uint16_t)r->rdlen;
    if (r->type == DNS_TYPE_TXT) {
        /* The buffer's cap is the row's, with a guard byte after it. */
        memset(txt, '#', sizeof(txt));
        rc = dns_rdata_txt(&rr, txt, r->cap, &n, &why);
        if (rc == DNS_EOK) {
            check_int(r->label, "terminated", txt[n], '\0');
            txt[n] = '\0';
            snprintf(line, sizeof(line), " \"%s\"", txt);
        } else {
            snprintf(line, sizeof(line), " %s", code_name(rc));
            check_int(r->label, "outlen untouched", (long long)n, 12345);
        }
        check_int(r->label, "guard byte", txt[r->cap], '#');
    } else {
        describe_rdata(NULL, 0, &rr, line);
    }
    check_str(r->label, "decoded", line, r->want);
    free(copy);
}

/* Each decoder refuses a record of another type. */
static void check_wrong_types(void)
{
    static const uint8_t msg[] = {0xd0, 0x0d, 0x81, 0x80, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0,
                                  5,    0,    1,    0,    0, 0, 0, 0, 4, 1, 2, 3, 4};
    struct dns_iter it;
    struct dns_rr rr;
    const char *why = NULL;
    char name[DNS_NAME_MAX + 1], txt[16];
    uint8_t addr[16], u, s, m;
    const uint8_t *data;
    size_t n;
    uint16_t pref;

    check_int("wrong types", "iter_init", dns_iter_init(&it, msg, sizeof(msg), &why), DNS_EOK);
    check_int("wrong types", "record", dns_iter_next(&it, &rr, &why), 1);
    check_int("wrong types", "CNAME of 4 bytes as an address", dns_rdata_addr(&rr, addr, &n, &why),
              DNS_ERDATA);
    check_int("wrong types", "CNAME as MX", dns_rdata_mx(msg, sizeof(msg), &rr, &pref, name, &why),
              DNS_ERDATA);
    check_int("wrong types", "CNAME as TLSA", dns_rdata_tlsa(&rr, &u, &s, &m, &data, &n, &why),
              DNS_ERDATA);
    check_int("wrong types", "CNAME as TXT", dns_rdata_txt(&rr, txt, sizeof(txt), &n, &why),
              DNS_ERDATA);
    rr.type = DNS_TYPE_A;
    check_int("wrong types", "A as CNAME", dns_rdata_cname(msg, sizeof(msg), &rr, name, &why),
              DNS_ERDATA);
    check_true("wrong types", "why is set", why != NULL && *why != '\0');

    /* A record whose offsets do not belong to the message given. */
    rr.type = DNS_TYPE_CNAME;
    check_int("foreign record", "shorter message",
              dns_rdata_cname(msg, sizeof(msg) - 1, &rr, name, &why), DNS_ERDATA);
    rr.rdata_off = 1000;
    check_int("foreign record", "offset past the end",
              dns_rdata_cname(msg, sizeof(msg), &rr, name, &why), DNS_ERDATA);
    check_int("foreign record", "NULL record", dns_rdata_cname(msg, sizeof(msg), NULL, name, &why),
              DNS_ERDATA);
    rr.type = DNS_TYPE_MX;
    check_int("foreign record", "MX offset past the end",
              dns_rdata_mx(msg, sizeof(msg), &rr, &pref, name, &why), DNS_ERDATA);
    rr.rdata_off = 23;
    check_int("foreign record", "MX with another message's data pointer",
              dns_rdata_mx(msg + 1, sizeof(msg) - 1, &rr, &pref, name, &why), DNS_ERDATA);
}

/* The iterator after an error: it stays put and says the same again. */
static void check_iter_errors(void)
{
    static const uint8_t msg[] = {0xd0, 0x0d, 0x81, 0x80, 0, 0, 0, 2, 0, 0, 0, 0,    0, 0,    1, 0,
                                  1,    0,    0,    0,    9, 0, 4, 1, 2, 3, 4, 0xC0, 9, 0xC0, 9};
    struct dns_iter it;
    struct dns_rr rr;
    const char *why = NULL;

    check_int("iterator", "init", dns_iter_init(&it, msg, sizeof(msg), &why), DNS_EOK);
    check_int("iterator", "first", dns_iter_next(&it, &rr, &why), 1);
    check_int("iterator", "TTL", rr.ttl, 9);
    check_int("iterator", "second", dns_iter_next(&it, &rr, &why), DNS_ENAME);
    check_int("iterator", "second again", dns_iter_next(&it, &rr, &why), DNS_ENAME);

    why = NULL;
    check_int("iterator", "init on 11 bytes", dns_iter_init(&it, msg, 11, &why), DNS_ESHORT);
    check_true("iterator", "why is set", why != NULL && *why != '\0');
    check_int("iterator", "next after failed init", dns_iter_next(&it, &rr, &why), 0);
    check_int("iterator", "init on NULL", dns_iter_init(&it, NULL, 0, &why), DNS_ESHORT);
}

struct query_row {
    const char *label;
    uint16_t id;
    const char *qname;
    uint16_t qtype;
    int dnssec_ok;
    uint16_t payload;
    size_t cap;
    int rc;
    const char *want; /* the exact query, on DNS_EOK */
    size_t wlen;
    const char *back; /* the name dns_question reads back */
};

#define TLSA_QUERY                                                                                 \
    "\276\357\001\040\000\001\000\000\000\000\000\001"                                             \
    "\003_25\004_tcp\003mx1\007example\003com\000" T_TLSA C_IN                                     \
    "\000\000\051\004\320\000\000\200\000\000\000"

static const struct query_row query_rows[] = {
    {"TLSA with DO", 0xbeef, "_25._tcp.mx1.example.com", DNS_TYPE_TLSA, 1, DNS_EDNS_PAYLOAD, 512,
     DNS_EOK, S(TLSA_QUERY), "_25._tcp.mx1.example.com"},
    {"TLSA with DO, trailing dot", 0xbeef, "_25._tcp.mx1.example.com.", DNS_TYPE_TLSA, 1,
     DNS_EDNS_PAYLOAD, 512, DNS_EOK, S(TLSA_QUERY), "_25._tcp.mx1.example.com"},
    {"TLSA with DO, exact buffer", 0xbeef, "_25._tcp.mx1.example.com", DNS_TYPE_TLSA, 1,
     DNS_EDNS_PAYLOAD, sizeof(TLSA_QUERY) - 1, DNS_EOK, S(TLSA_QUERY), "_25._tcp.mx1.example.com"},
    {"TLSA with DO, one byte short", 0xbeef, "_25._tcp.mx1.example.com", DNS_TYPE_TLSA, 1,
     DNS_EDNS_PAYLOAD, sizeof(TLSA_QUERY) - 2, DNS_ESPACE, NULL, 0, NULL},
    {"MX without DO, payload 4096", 0x0001, "Example.COM", DNS_TYPE_MX, 0, 4096, 512, DNS_EOK,
     S("\000\001\001\040\000\001\000\000\000\000\000\001"
       "\007Example\003COM\000" T_MX C_IN "\000\000\051\020\000\000\000\000\000\000\000"),
     "example.com"},
    {"root", 0xffff, "", DNS_TYPE_SOA, 1, 1232, 512, DNS_EOK,
     S("\377\377\001\040\000\001\000\000\000\000\000\001"
       "\000" T_SOA C_IN "\000\000\051\004\320\000\000\200\000\000\000"),
     ""},
    {"root as a dot", 0xffff, ".", DNS_TYPE_SOA, 1, 1232, 512, DNS_EOK,
     S("\377\377\001\040\000\001\000\000\000\000\000\001"
       "\000" T_SOA C_IN "\000\000\051\004\320\000\000\200\000\000\000"),
     ""},
    {"one-letter name", 7, "a", DNS_TYPE_A, 0, 1232, 512, DNS_EOK,
     S("\000\007\001\040\000\001\000\000\000\000\000\001"
       "\001a\000" T_A C_IN "\000\000\051\004\320\000\000\000\000\000\000"),
     "a"},
    {"63-octet label", 1, A63 ".example", DNS_TYPE_A, 0, 1232, 512, DNS_EOK, NULL, 0,
     A63 ".example"},
    {"253 characters", 1, A63 "." A63 "." A63 "." A61, DNS_TYPE_A, 0, 1232, 512, DNS_EOK, NULL, 0,
     A63 "." A63 "." A63 "." A61},
    {"253 characters and a dot", 1, A63 "." A63 "." A63 "." A61 ".", DNS_TYPE_A, 0, 1232, 512,
     DNS_EOK, NULL, 0, A63 "." A63 "." A63 "." A61},
    {"254 characters", 1, A63 "." A63 "." A63 "." A61 "a", DNS_TYPE_A, 0, 1232, 512, DNS_EQUERY,
     NULL, 0, NULL},
    {"64-octet label", 1, A63 "a.example", DNS_TYPE_A, 0, 1232, 512, DNS_EQUERY, NULL, 0, NULL},
    {"empty label", 1, "a..b", DNS_TYPE_A, 0, 1232, 512, DNS_EQUERY, NULL, 0, NULL},
    {"leading dot", 1, ".a", DNS_TYPE_A, 0, 1232, 512, DNS_EQUERY, NULL, 0, NULL},
    {"two dots", 1, "..", DNS_TYPE_A, 0, 1232, 512, DNS_EQUERY, NULL, 0, NULL},
    {"two trailing dots", 1, "a..", DNS_TYPE_A, 0, 1232, 512, DNS_EQUERY, NULL, 0, NULL},
    {"space", 1, "a b", DNS_TYPE_A, 0, 1232, 512, DNS_EQUERY, NULL, 0, NULL},
    {"escape", 1, "a\\046b", DNS_TYPE_A, 0, 1232, 512, DNS_EQUERY, NULL, 0, NULL},
    {"non-ASCII", 1,
     "b\xc3\xbc"
     "cher.example",
     DNS_TYPE_A, 0, 1232, 512, DNS_EQUERY, NULL, 0, NULL},
    {"NULL name", 1, NULL, DNS_TYPE_A, 0, 1232, 512, DNS_EQUERY, NULL, 0, NULL},
    {"bad name and no room: the name is reported", 1, "a b", DNS_TYPE_A, 0, 1232, 0, DNS_EQUERY,
     NULL, 0, NULL},
};

static void check_query_row(const struct query_row *r)
{
    uint8_t out[600];
    size_t outlen = 777;
    const char *why = NULL;
    int rc;

    memset(out, '#', sizeof(out));
    rc = dns_build_query(out, r->cap, r->id, r->qname, r->qtype, r->dnssec_ok, r->payload, &outlen,
                         &why);
    check_int(r->label, "rc", rc, r->rc);
    if (rc != DNS_EOK || r->rc != DNS_EOK) {
        check_true(r->label, "why is set", why != NULL && *why != '\0');
        check_int(r->label, "outlen untouched", (long long)outlen, 777);
        check_int(r->label, "nothing written", out[0], '#');
        return;
    }
    if (r->want != NULL)
        check_mem(r->label, "query", (const char *)out, outlen, r->want, r->wlen);
    check_true(r->label, "nothing written past the query",
               outlen < sizeof(out) && out[outlen] == '#');

    /* Read it back. */
    {
        uint8_t *copy = dnsmsg_copy(out, outlen);
        struct dns_header h;
        struct dns_iter it;
        struct dns_rr rr;
        char qname[DNS_NAME_MAX + 1];
        uint16_t qtype = 0, qclass = 0;

        check_int(r->label, "header", dns_parse_header(copy, outlen, &h, &why), DNS_EOK);
        check_int(r->label, "id", h.id, r->id);
        check_true(r->label, "flags",
                   !h.qr && h.opcode == 0 && !h.aa && !h.tc && h.rd && !h.ra && h.ad && !h.cd &&
                       h.rcode == 0);
        check_true(r->label, "counts",
                   h.qdcount == 1 && h.ancount == 0 && h.nscount == 0 && h.arcount == 1);
        check_int(r->label, "question", dns_question(copy, outlen, qname, &qtype, &qclass, &why),
                  DNS_EOK);
        check_str(r->label, "qname", qname, r->back);
        check_int(r->label, "qtype", qtype, r->qtype);
        check_int(r->label, "qclass", qclass, DNS_CLASS_IN);
        check_int(r->label, "iter_init", dns_iter_init(&it, copy, outlen, &why), DNS_EOK);
        check_int(r->label, "OPT", dns_iter_next(&it, &rr, &why), 1);
        check_str(r->label, "OPT owner", rr.owner, "");
        check_int(r->label, "OPT type", rr.type, DNS_TYPE_OPT);
        check_int(r->label, "OPT section", rr.section, DNS_SECTION_ADDITIONAL);
        check_int(r->label, "OPT payload", rr.rclass, r->payload);
        check_int(r->label, "OPT TTL", rr.ttl, r->dnssec_ok ? 0x8000 : 0);
        check_int(r->label, "OPT rdlen", rr.rdlen, 0);
        check_int(r->label, "end", dns_iter_next(&it, &rr, &why), 0);
        free(copy);
    }
}

struct equal_row {
    const char *label;
    const char *a, *b;
    int want;
};

static const struct equal_row equal_rows[] = {
    {"same", "mx1.example.com", "mx1.example.com", 1},
    {"case differs", "MX1.Example.COM", "mx1.example.com", 1},
    {"different", "mx1.example.com", "mx2.example.com", 0},
    {"prefix", "example.com", "example.co", 0},
    {"suffix", "example.com", "www.example.com", 0},
    {"both root", "", "", 1},
    {"root and a name", "", "com", 0},
    {"trailing dot is not ignored", "example.com.", "example.com", 0},
    {"escapes compare as text", "a\\046b", "A\\046B", 1},
    {"escape and its byte differ", "a\\046b", "a.b", 0},
    {"high bytes are not folded", "\xc3\xa4", "\xc3\x84", 0},
    {"a NULL name", NULL, "", 0},
    {"two NULL names", NULL, NULL, 0},
};

static void check_header_short(void)
{
    static const uint8_t twelve[12] = {0x12, 0x34, 0x85, 0xb3, 0xff, 0xff,
                                       0x00, 0x01, 0x00, 0x02, 0x00, 0x03};
    struct dns_header h;
    const char *why = NULL;
    char qname[DNS_NAME_MAX + 1];
    uint16_t qtype, qclass;

    check_int("header", "NULL", dns_parse_header(NULL, 0, &h, &why), DNS_ESHORT);
    check_int("header", "11 bytes", dns_parse_header(twelve, 11, &h, &why), DNS_ESHORT);
    check_true("header", "why is set", why != NULL && *why != '\0');
    check_int("header", "12 bytes", dns_parse_header(twelve, 12, &h, &why), DNS_EOK);
    check_int("header", "id", h.id, 0x1234);
    check_true("header", "flags", h.qr && h.aa && !h.tc && h.rd && h.ra && h.ad && h.cd);
    check_int("header", "opcode", h.opcode, 0);
    check_int("header", "rcode", h.rcode, 3);
    check_int("header", "qdcount", h.qdcount, 0xffff);
    check_int("header", "ancount", h.ancount, 1);
    check_int("header", "nscount", h.nscount, 2);
    check_int("header", "arcount", h.arcount, 3);
    check_int("header", "question in 11 bytes",
              dns_question(twelve, 11, qname, &qtype, &qclass, &why), DNS_ESHORT);
    check_int("header", "question in 12 bytes",
              dns_question(twelve, 12, qname, &qtype, &qclass, &why), DNS_ESHORT);
}

/*
 * dns_answer_next: only answer-section records of the type at the owner (case ignored);
 * authority and additional records, other types and other owners are passed over.
 */
static void check_answer_next(void)
{
    static const struct dnsmsg_rr rr[] = {
        {AN, S("\002mx\007example\000"), DNS_TYPE_A, 0, 60, S("\300\000\002\001")},
        {AN, S("\002MX\007Example\000"), DNS_TYPE_A, 0, 60, S("\300\000\002\002")},
        {AN, S("\002mx\007example\000"), DNS_TYPE_AAAA, 0, 60,
         S("\040\001\015\270\000\000\000\000\000\000\000\000\000\000\000\001")},
        {AN, S("\003mx2\007example\000"), DNS_TYPE_A, 0, 60, S("\300\000\002\003")},
        {NS, S("\002mx\007example\000"), DNS_TYPE_A, 0, 60, S("\300\000\002\004")},
        {AR, S("\002mx\007example\000"), DNS_TYPE_A, 0, 60, S("\300\000\002\005")},
        {0, NULL, 0, 0, 0, 0, NULL, 0},
    };
    uint8_t m[512], addr[16];
    size_t len, alen;
    struct dns_iter it;
    struct dns_rr r;
    const char *why = NULL;
    unsigned n = 0, last = 0;
    int rc;

    len = dnsmsg_question(m, 0x8180, S("\002mx\007example\000"), DNS_TYPE_A, DNS_CLASS_IN);
    len = dnsmsg_records(m, len, rr, sizeof(rr) / sizeof(rr[0]));
    check_int("answer_next", "init", dns_iter_init(&it, m, len, &why), DNS_EOK);
    while ((rc = dns_answer_next(&it, "mx.example", DNS_TYPE_A, &r, &why)) == 1) {
        n++;
        if (dns_rdata_addr(&r, addr, &alen, &why) == DNS_EOK && alen == 4)
            last = addr[3];
    }
    check_int("answer_next", "end", rc, 0);
    check_int("answer_next", "records of the type at the owner, any case", n, 2);
    check_int("answer_next", "the second is the upper-case owner's", last, 2);
}

int main(void)
{
    check_answer_next();
    for (size_t i = 0; i < sizeof(msg_rows) / sizeof(msg_rows[0]); i++)
        check_msg_row(&msg_rows[i]);
    for (size_t i = 0; i < sizeof(chain_rows) / sizeof(chain_rows[0]); i++)
        check_chain(&chain_rows[i]);
    for (size_t i = 0; i < sizeof(rdata_rows) / sizeof(rdata_rows[0]); i++)
        check_rdata_row(&rdata_rows[i]);
    check_wrong_types();
    check_iter_errors();
    check_header_short();
    for (size_t i = 0; i < sizeof(query_rows) / sizeof(query_rows[0]); i++)
        check_query_row(&query_rows[i]);
    for (size_t i = 0; i < sizeof(equal_rows) / sizeof(equal_rows[0]); i++) {
        const struct equal_row *r = &equal_rows[i];

        check_int(r->label, "a = b", dns_name_equal(r->a, r->b), r->want);
        check_int(r->label, "b = a", dns_name_equal(r->b, r->a), r->want);
    }
    return check_summary("test_dns");
}
