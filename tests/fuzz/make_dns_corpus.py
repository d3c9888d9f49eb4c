#!/usr/bin/env python3
"""Write the seed corpus of tests/fuzz/fuzz_dns.c: small realistic DNS messages (RFC 1035
section 4) and the malformed kinds the parser must refuse. Run from anywhere; it rewrites
tests/fuzz/corpus/dns/. The question name always starts at offset 12, so a pointer to it is
0xC00C; other pointer offsets are worked out in the comments."""

import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "dns")

A, CNAME, SOA, MX, TXT, AAAA, OPT, RRSIG, TLSA = 1, 5, 6, 15, 16, 28, 41, 46, 52
PTR12 = b"\xc0\x0c"


def name(text, tail=b"\x00"):
    """Wire form of a dotted name, ending in tail (the root, or a pointer)."""
    out = b""
    for label in text.split(".") if text else []:
        out += bytes([len(label)]) + label.encode("latin-1")
    return out + tail


def ptr(off):
    return struct.pack(">H", 0xC000 | off)


def rr(owner, rtype, ttl, rdata, rclass=1):
    return owner + struct.pack(">HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def opt(payload=1232, flags=0x8000, rdata=b""):
    return rr(b"\x00", OPT, flags, rdata, payload)


def msg(flags, qname, qtype, an=(), ns=(), ar=(), ident=0xD00D):
    head = struct.pack(">HHHHHH", ident, flags, 1 if qname is not None else 0,
                       len(an), len(ns), len(ar))
    q = qname + struct.pack(">HH", qtype, 1) if qname is not None else b""
    return head + q + b"".join(an) + b"".join(ns) + b"".join(ar)


def query(qname, qtype, dnssec_ok=True, ident=0xBEEF):
    """What dns_build_query writes: RD and AD set, and an OPT record with DO if asked."""
    return msg(0x0120, name(qname), qtype, ar=[opt(flags=0x8000 if dnssec_ok else 0)],
               ident=ident)


DIGEST = bytes(range(32))
RRSIG_TLSA = (struct.pack(">HBBIIIH", TLSA, 13, 5, 3600, 0x65000000, 0x64000000, 0x3132)
              + name("example.com") + DIGEST + DIGEST)
AAAA_DOC = bytes.fromhex("20010db8000000000000000000000001")


def corpus():
    c = {}
    c["query_tlsa_do"] = query("_25._tcp.mx1.example.com", TLSA)
    c["query_mx"] = query("example.com", MX, dnssec_ok=False, ident=1)
    # MX data at 41, "mx1" at 43.
    c["answer_mx_compressed"] = msg(0x81A0, name("example.com"), MX,
                                    an=[rr(PTR12, MX, 300, b"\x00\x0a" + name("mx1", PTR12)),
                                        rr(PTR12, MX, 300, b"\x00\x14" + name("mx2", PTR12))],
                                    ar=[rr(ptr(43), A, 300, bytes([192, 0, 2, 1])),
                                        rr(ptr(43), AAAA, 300, AAAA_DOC), opt()])
    # "host" at 46, "example.net" at 51, "real" at 76.
    c["answer_cname_chain"] = msg(0x8180, name("mail.example.org"), A,
                                  an=[rr(PTR12, CNAME, 3600, name("host.example.net")),
                                      rr(ptr(46), CNAME, 3600, name("real", ptr(51))),
                                      rr(ptr(76), A, 60, bytes([198, 51, 100, 7]))])
    c["answer_tlsa_rrsig"] = msg(0x81A0, name("_25._tcp.mx1.example.com"), TLSA,
                                 an=[rr(PTR12, TLSA, 3600, b"\x03\x01\x01" + DIGEST),
                                     rr(PTR12, RRSIG, 3600, RRSIG_TLSA)], ar=[opt()])
    c["answer_tlsa_two"] = msg(0x8180, name("_25._tcp.mx1.example.com"), TLSA,
                               an=[rr(PTR12, TLSA, 3600, b"\x02\x00\x01" + DIGEST),
                                   rr(PTR12, TLSA, 3600, b"\x03\x01\x02" + DIGEST + DIGEST)])
    c["answer_txt_sts"] = msg(0x8180, name("_mta-sts.example.com"), TXT,
                              an=[rr(PTR12, TXT, 300, b"\x1cv=STSv1; id=20240101T000000;")])
    c["answer_txt_several"] = msg(0x8180, name("example.com"), TXT,
                                  an=[rr(PTR12, TXT, 300,
                                         b"\x07v=spf1 \x19include:_spf.example.com \x04-all\x00")])
    # "example.com" of the question at 19.
    soa = (name("ns1", ptr(19)) + name("hostmaster", ptr(19))
           + struct.pack(">IIIII", 2013265921, 3600, 900, 604800, 900))
    c["nxdomain_soa_ad"] = msg(0x81A3, name("nosuch.example.com"), MX,
                               ns=[rr(ptr(19), SOA, 900, soa)], ar=[opt()])
    c["servfail_cd"] = msg(0x8192, name("example.com"), MX, ar=[opt(4096)])
    c["refused_no_question"] = msg(0x8005, None, 0)
    c["null_mx"] = msg(0x8180, name("example.com"), MX, an=[rr(PTR12, MX, 300, b"\x00\x00\x00")])
    # A label holding '.', '\\', ' ', NUL, 0xff and '"'; "example" at 21.
    c["odd_label_bytes"] = msg(0x8180, b"\x08A.b\\ \x00\xff\"\x07example\x00", A,
                               an=[rr(PTR12, CNAME, 300, b"\x03\x7f~!" + ptr(21))])
    c["name_255"] = msg(0x8180, name(".".join(["a" * 63] * 3 + ["a" * 61])), A,
                        an=[rr(b"\x3f" + b"b" * 63 + ptr(76), A, 1, bytes([192, 0, 2, 2]))])
    c["name_over_255_via_pointer"] = msg(0x8180, name(".".join(["a" * 63] * 3 + ["a" * 61])), A,
                                         an=[rr(b"\x01a" + PTR12, A, 1, bytes([192, 0, 2, 1]))])
    # The second owner (at 34) points to the first record's data (at 30), which points back.
    c["pointer_loop"] = msg(0x8180, name("x"), A,
                            an=[rr(b"\x00", 65280, 1, b"\x01b" + ptr(34)),
                                rr(b"\x01a" + ptr(30), A, 1, bytes([192, 0, 2, 1]))])
    c["forward_pointer"] = msg(0x8180, name("x"), A, an=[rr(ptr(21), A, 1, bytes([192, 0, 2, 1]))])
    c["label_type_40"] = msg(0x8180, name("x"), A, an=[rr(b"\x40\x00", A, 1, bytes(4))])
    # A chain of 130 pointers in a private record's data (at 23), read through a CNAME.
    chain, last = b"\x01a\x00", 23
    for _ in range(129):
        here = 23 + len(chain)
        chain += ptr(last)
        last = here
    c["pointer_chain"] = (struct.pack(">HHHHHH", 0xD00D, 0x8180, 0, 2, 0, 0)
                          + rr(b"\x00", 65280, 0, chain) + rr(b"\x00", CNAME, 0, ptr(last)))
    c["rdata_bad_lengths"] = msg(0x8180, name("example.com"), MX,
                                 an=[rr(PTR12, A, 300, bytes(5)), rr(PTR12, AAAA, 300, bytes(4)),
                                     rr(PTR12, TLSA, 300, b"\x03\x01\x01"),
                                     rr(PTR12, TXT, 300, b"\x03ab\x02c"),
                                     rr(PTR12, MX, 300, b"\x00\x0a\x03mx1" + PTR12 + b"\x00")])
    c["truncated_answer"] = c["answer_mx_compressed"][:60]
    c["qname_text"] = b"_25._tcp.mx1.Example.COM."
    # For dns_answer_classify: chains, negative answers, classes and extended RCODEs.
    def hops(n):
        chain = [rr(name("h%d.example.com" % i), CNAME, 20, name("h%d.example.com" % (i + 1)))
                 for i in range(n)]
        return chain + [rr(name("h%d.example.com" % n), A, 300, bytes([192, 0, 2, 1]))]
    c["answer_cname_8_hops"] = msg(0x8180, name("h0.example.com"), A, an=hops(8))
    # Reproducer: the ninth hop was counted before it was refused (cnames 9 > the limit).
    c["answer_cname_9_hops"] = msg(0x8180, name("h0.example.com"), A, an=hops(9))
    c["answer_cname_loop"] = msg(0x8180, name("a.example.com"), A,
                                 an=[rr(PTR12, CNAME, 20, name("b.example.com")),
                                     rr(name("b.example.com"), CNAME, 20, PTR12)])
    c["answer_cname_nxdomain"] = msg(0x81A3, name("www.example.com"), A,
                                     an=[rr(PTR12, CNAME, 100, name("gone.example.net"))],
                                     ns=[rr(name("example.net"), SOA, 900, soa)])
    c["nodata_soa"] = msg(0x8180, name("example.com"), TLSA, ns=[rr(PTR12, SOA, 900, soa)])
    # Reproducers: a record of class CH was counted as the answer to an IN question, and
    # an OPT extended RCODE (BADVERS) under a header NOERROR read as "no data".
    c["answer_class_ch"] = msg(0x8180, name("example.com"), A,
                               an=[rr(PTR12, A, 300, bytes([192, 0, 2, 1]), rclass=3)])
    c["badvers_opt"] = msg(0x8180, name("example.com"), TLSA, ar=[opt(flags=0x01008000)])
    return c


def main():
    os.makedirs(OUT, exist_ok=True)
    for fname, data in sorted(corpus().items()):
        with open(os.path.join(OUT, fname), "wb") as f:
            f.write(data)
    print("wrote %d files to %s" % (len(corpus()), OUT))


if __name__ == "__main__":
    main()
