/*
 * Unit table for proto/addr.c: which addresses a policy fetch may not reach.
 */
#include "addr.h"
#include "check.h"

#include <arpa/inet.h>

static const struct {
    const char *label, *addr, *want; /* want NULL: an ordinary global address */
} rows[] = {
    /* IANA IPv4 Special-Purpose Address Registry, every row (2025-10-09). */
    {"0.0.0.0/8 this network", "0.1.2.3", "unspecified"},
    {"0.0.0.0/32 this host", "0.0.0.0", "unspecified"},
    {"10.0.0.0/8 private", "10.1.2.3", "private"},
    {"100.64.0.0/10 shared", "100.64.0.1", "shared"},
    {"100.64.0.0/10 shared, top", "100.127.255.255", "shared"},
    {"127.0.0.0/8 loopback", "127.0.0.1", "loopback"},
    {"127.0.0.0/8 loopback, lab", "127.0.30.1", "loopback"},
    {"169.254.0.0/16 link-local", "169.254.169.254", "link-local"},
    {"172.16.0.0/12 private", "172.16.0.1", "private"},
    {"172.16.0.0/12 private, top", "172.31.255.254", "private"},
    {"192.0.0.0/24 IETF protocol assignments", "192.0.0.200", "reserved"},
    {"192.0.0.0/29 IPv4 service continuity", "192.0.0.1", "reserved"},
    {"192.0.0.8/32 IPv4 dummy address", "192.0.0.8", "reserved"},
    {"192.0.0.9/32 PCP anycast: globally reachable", "192.0.0.9", NULL},
    {"192.0.0.10/32 TURN anycast: globally reachable", "192.0.0.10", NULL},
    {"192.0.0.11 back in 192.0.0.0/24", "192.0.0.11", "reserved"},
    {"192.0.0.170/32 NAT64/DNS64 discovery", "192.0.0.170", "reserved"},
    {"192.0.0.171/32 NAT64/DNS64 discovery", "192.0.0.171", "reserved"},
    {"192.0.2.0/24 documentation", "192.0.2.0", "documentation"},
    {"192.31.196.0/24 AS112-v4: globally reachable", "192.31.196.1", NULL},
    {"192.52.193.0/24 AMT: globally reachable", "192.52.193.1", NULL},
    {"192.88.99.0/24 deprecated 6to4 relay anycast", "192.88.99.1", "reserved"},
    {"192.88.99.2/32 6a44 relay anycast", "192.88.99.2", "reserved"},
    {"192.168.0.0/16 private", "192.168.1.1", "private"},
    {"192.175.48.0/24 AS112 direct delegation: globally reachable", "192.175.48.1", NULL},
    {"198.18.0.0/15 benchmarking", "198.18.0.1", "benchmarking"},
    {"198.18.0.0/15 benchmarking, top", "198.19.255.255", "benchmarking"},
    {"198.51.100.0/24 documentation", "198.51.100.7", "documentation"},
    {"203.0.113.0/24 documentation", "203.0.113.9", "documentation"},
    {"240.0.0.0/4 reserved", "240.0.0.1", "reserved"},
    {"255.255.255.255/32 limited broadcast", "255.255.255.255", "reserved"},
    /* Multicast (RFC 5771, its own registry). */
    {"224.0.0.0/4 multicast", "224.0.0.1", "multicast"},
    {"224.0.0.0/4 multicast, top", "239.255.255.255", "multicast"},
    /* Edges and ordinary addresses. */
    {"global v4", "93.184.216.34", NULL},
    {"global v4 2", "8.8.8.8", NULL},
    {"just above 10/8", "11.0.0.1", NULL},
    {"just above shared", "100.128.0.1", NULL},
    {"172.32 is global", "172.32.0.1", NULL},
    {"just below 192.0.0.0/24", "191.255.255.255", NULL},
    {"just above 192.0.0.0/24", "192.0.1.1", NULL},
    {"just above benchmarking", "198.20.0.1", NULL},
    {"just below multicast", "223.255.255.255", NULL},

    /* IANA IPv6 Special-Purpose Address Registry, every row (2025-10-09). */
    {"::1/128 loopback", "::1", "loopback"},
    {"::/128 unspecified", "::", "unspecified"},
    {"::ffff:0:0/96 IPv4-mapped loopback", "::ffff:127.0.0.1", "loopback"},
    {"::ffff:0:0/96 IPv4-mapped private", "::ffff:10.0.0.1", "private"},
    {"::ffff:0:0/96 IPv4-mapped global", "::ffff:93.184.216.34", NULL},
    {"::ffff:0:0/96 IPv4-mapped PCP anycast", "::ffff:192.0.0.9", NULL},
    {"64:ff9b::/96 NAT64 of a global IPv4 address", "64:ff9b::93.184.216.34", NULL},
    {"64:ff9b::/96 NAT64 of 8.8.8.8", "64:ff9b::808:808", NULL},
    {"64:ff9b::/96 NAT64 of a private IPv4 address", "64:ff9b::10.0.0.1", "private"},
    {"64:ff9b::/96 NAT64 of loopback", "64:ff9b::127.0.0.1", "loopback"},
    {"64:ff9b::/96 NAT64 of shared", "64:ff9b::100.64.0.1", "shared"},
    {"64:ff9b::/96 NAT64 of 192.168", "64:ff9b::192.168.1.1", "private"},
    {"64:ff9b::/96 NAT64 of documentation", "64:ff9b::192.0.2.1", "documentation"},
    {"64:ff9b::/96 NAT64 of broadcast", "64:ff9b::255.255.255.255", "reserved"},
    {"64:ff9b:1::/48 local-use NAT64", "64:ff9b:1::1", "local-use NAT64"},
    {"64:ff9b:1::/48 local-use NAT64 of a global", "64:ff9b:1::5db8:d822", "local-use NAT64"},
    {"64:ff9b:1::/48 local-use NAT64, top", "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
     "local-use NAT64"},
    {"100::/64 discard-only", "100::1", "discard"},
    {"100:0:0:1::/64 dummy prefix", "100:0:0:1::1", "reserved"},
    {"2001::/23 IETF protocol assignments", "2001:1ff::1", "reserved"},
    {"2001::/32 TEREDO", "2001:0::1", "reserved"},
    {"2001:1::1/128 PCP anycast: globally reachable", "2001:1::1", NULL},
    {"2001:1::2/128 TURN anycast: globally reachable", "2001:1::2", NULL},
    {"2001:1::3/128 DNS-SD SRP anycast: globally reachable", "2001:1::3", NULL},
    {"2001:1::4 back in 2001::/23", "2001:1::4", "reserved"},
    {"2001:2::/48 benchmarking", "2001:2::1", "benchmarking"},
    {"2001:3::/32 AMT: globally reachable", "2001:3::1", NULL},
    {"2001:4:112::/48 AS112-v6: globally reachable", "2001:4:112::1", NULL},
    {"2001:4:113:: back in 2001::/23", "2001:4:113::1", "reserved"},
    {"2001:10::/28 deprecated ORCHID", "2001:10::1", "reserved"},
    {"2001:20::/28 ORCHIDv2: globally reachable", "2001:20::1", NULL},
    {"2001:30::/28 DRIP DETs: globally reachable", "2001:3f::1", NULL},
    {"2001:db8::/32 documentation", "2001:db8::1", "documentation"},
    {"2002::/16 6to4", "2002:c000:0204::1", "reserved"},
    {"2620:4f:8000::/48 AS112 direct delegation: globally reachable", "2620:4f:8000::1", NULL},
    {"3fff::/20 documentation", "3fff::1", "documentation"},
    {"3fff::/20 documentation, top", "3fff:fff:ffff::1", "documentation"},
    {"5f00::/16 SRv6 SIDs", "5f00::1", "reserved"},
    {"fc00::/7 unique local", "fc00::1", "private"},
    {"fc00::/7 unique local, fd", "fd00::1", "private"},
    {"fe80::/10 link-local", "fe80::1", "link-local"},
    {"fe80::/10 link-local, top", "febf::1", "link-local"},
    /* Beyond the registry: IPv4-translated, deprecated forms, multicast, not 2000::/3. */
    {"::ffff:0:0:0/96 IPv4-translated private", "::ffff:0:10.0.0.1", "private"},
    {"::ffff:0:0:0/96 IPv4-translated loopback", "::ffff:0:127.0.0.1", "loopback"},
    {"::ffff:0:0:0/96 IPv4-translated global", "::ffff:0:93.184.216.34", NULL},
    {"::/96 IPv4-compatible (deprecated)", "::10.0.0.1", "reserved"},
    {"::/96 IPv4-compatible of a global", "::8.8.8.8", "reserved"},
    {"64:ff9b::/48 beyond the /96", "64:ff9b:0:0:1::1", "reserved"},
    {"fec0::/10 site-local (deprecated)", "fec0::1", "reserved"},
    {"ff00::/8 multicast", "ff02::1", "multicast"},
    {"4000::/3 not global unicast", "4000::1", "reserved"},
    {"1000::/4 not global unicast", "1000::1", "reserved"},
    {"200::/7 not global unicast", "200::1", "reserved"},
    /* Edges and ordinary addresses. */
    {"2001:200:: just past 2001::/23", "2001:200::1", NULL},
    {"3fff:1000:: just past 3fff::/20", "3fff:1000::1", NULL},
    {"3ffe:: global unicast", "3ffe::1", NULL},
    {"2000:: first of 2000::/3", "2000::1", NULL},
    {"3fff:ffff:: last of 2000::/3", "3fff:ffff::1", NULL},
    {"global v6", "2a00:1450:4001:80b::200e", NULL},
    {"global v6 2", "2606:4700::1111", NULL},
};

int main(void)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint8_t buf[16];
        size_t alen = strchr(rows[i].addr, ':') ? 16 : 4;
        const char *got;

        if (inet_pton(alen == 16 ? AF_INET6 : AF_INET, rows[i].addr, buf) != 1) {
            printf("FAIL %s: bad test address %s\n", rows[i].label, rows[i].addr);
            check_failed++;
            continue;
        }
        got = addr_special(buf, alen);
        check_str(rows[i].label, "range", got ? got : "(global)",
                  rows[i].want ? rows[i].want : "(global)");
    }
    {
        uint8_t b[16] = {0};

        check_str("length 5", "range", addr_special(b, 5), "invalid");
    }
    return check_summary("addr");
}
