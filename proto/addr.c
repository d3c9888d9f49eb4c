/*
 * Special-purpose address ranges: the IANA IPv4 and IPv6 Special-Purpose Address
 * Registries (RFC 6890, registry versions of 2025-10-09) and the IANA IPv6 Address Space
 * (only 2000::/3 is global unicast). Tables of {prefix, length, name}; the first match
 * wins, so narrower ranges come first where they nest, and a NULL name is a globally
 * reachable exception inside a refused block. IPv6 forms that carry an IPv4 address
 * (IPv4-mapped, IPv4-translated, the NAT64 well-known prefix) are judged by that address.
 */
#include "addr.h"

#include <string.h>

struct range {
    uint8_t prefix[16];
    unsigned bits;
    const char *name; /* NULL: globally reachable (an exception inside a wider block) */
};

/*
 * Allowed without a row, as the registry marks them globally reachable: 192.31.196.0/24
 * (AS112-v4, RFC 7535), 192.52.193.0/24 (AMT, RFC 7450), 192.175.48.0/24 (Direct
 * Delegation AS112 Service, RFC 7534).
 */
static const struct range v4[] = {
    {{192, 0, 0, 9}, 32, NULL},            /* PCP anycast, RFC 7723: globally reachable */
    {{192, 0, 0, 10}, 32, NULL},           /* TURN anycast, RFC 8155: globally reachable */
    {{0}, 8, "unspecified"},               /* "this network", RFC 791; 0.0.0.0/32 included */
    {{10}, 8, "private"},                  /* RFC 1918 */
    {{100, 64}, 10, "shared"},             /* RFC 6598 carrier-grade NAT */
    {{127}, 8, "loopback"},                /* RFC 1122 */
    {{169, 254}, 16, "link-local"},        /* RFC 3927 */
    {{172, 16}, 12, "private"},            /* RFC 1918 */
    {{192, 0, 0}, 24, "reserved"},         /* IETF protocol assignments, RFC 6890: service
                                              continuity /29, dummy .8, NAT64 discovery
                                              .170 and .171 */
    {{192, 0, 2}, 24, "documentation"},    /* RFC 5737 */
    {{192, 88, 99}, 24, "reserved"},       /* deprecated 6to4 relay anycast (RFC 7526), and
                                              the 6a44 relay 192.88.99.2/32 (RFC 6751) */
    {{192, 168}, 16, "private"},           /* RFC 1918 */
    {{198, 18}, 15, "benchmarking"},       /* RFC 2544 */
    {{198, 51, 100}, 24, "documentation"}, /* RFC 5737 */
    {{203, 0, 113}, 24, "documentation"},  /* RFC 5737 */
    {{224}, 4, "multicast"},               /* RFC 5771 */
    {{240}, 4, "reserved"},                /* RFC 1112; limited broadcast 255.255.255.255 */
};

/*
 * Allowed without a row: 2620:4f:8000::/48 (Direct Delegation AS112 Service, RFC 7534)
 * and the rest of 2000::/3.
 */
static const struct range v6[] = {
    {{0}, 128, "unspecified"},                                           /* ::/128 */
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, "loopback"}, /* ::1 */
    /* RFC 8215: local-use NAT64, may translate to private IPv4 of the local network. */
    {{0, 0x64, 0xff, 0x9b, 0, 1}, 48, "local-use NAT64"}, /* 64:ff9b:1::/48 */
    {{0x01}, 64, "discard"},                              /* 100::/64, RFC 6666 */
    {{0x01, 0, 0, 0, 0, 0, 0, 1}, 64, "reserved"},        /* 100:0:0:1::/64 dummy, RFC 9780 */
    /* Globally reachable exceptions inside 2001::/23 (IETF protocol assignments). */
    {{0x20, 0x01, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, NULL}, /* PCP anycast */
    {{0x20, 0x01, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}, 128, NULL}, /* TURN anycast */
    {{0x20, 0x01, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3}, 128, NULL}, /* DNS-SD SRP */
    {{0x20, 0x01, 0, 0x03}, 32, NULL},                 /* 2001:3::/32 AMT, RFC 7450 */
    {{0x20, 0x01, 0, 0x04, 0x01, 0x12}, 48, NULL},     /* 2001:4:112::/48 AS112-v6 */
    {{0x20, 0x01, 0, 0x20}, 28, NULL},                 /* 2001:20::/28 ORCHIDv2, RFC 7343 */
    {{0x20, 0x01, 0, 0x30}, 28, NULL},                 /* 2001:30::/28 DRIP DETs, RFC 9374 */
    {{0x20, 0x01, 0, 0x02, 0, 0}, 48, "benchmarking"}, /* 2001:2::/48, RFC 5180 */
    /* The rest: Teredo 2001::/32 (not judged: N/A), deprecated ORCHID 2001:10::/28. */
    {{0x20, 0x01, 0x00, 0x00}, 23, "reserved"},      /* 2001::/23, RFC 2928 */
    {{0x20, 0x01, 0x0d, 0xb8}, 32, "documentation"}, /* RFC 3849 */
    {{0x20, 0x02}, 16, "reserved"},                  /* 6to4, RFC 3056 (deprecated, N/A) */
    {{0x3f, 0xff, 0x00}, 20, "documentation"},       /* 3fff::/20, RFC 9637 */
    {{0x5f, 0x00}, 16, "reserved"},                  /* SRv6 SIDs, RFC 9602 */
    {{0xfc}, 7, "private"},                          /* RFC 4193 unique local */
    {{0xfe, 0x80}, 10, "link-local"},                /* RFC 4291 */
    {{0xfe, 0xc0}, 10, "reserved"},                  /* deprecated site-local, RFC 3879 */
    {{0xff}, 8, "multicast"},                        /* RFC 4291 */
};

/* IPv6 prefixes whose last 32 bits are an IPv4 address a connection reaches. */
static const uint8_t embeds_v4[][12] = {
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff},    /* ::ffff:0:0/96 IPv4-mapped, RFC 4291 */
    {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0},    /* ::ffff:0:0:0/96 translated, RFC 2765 */
    {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0}, /* 64:ff9b::/96 NAT64, RFC 6052 */
};

static int in_range(const uint8_t *addr, const struct range *r)
{
    unsigned full = r->bits / 8, rest = r->bits % 8;

    if (memcmp(addr, r->prefix, full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    return (addr[full] & (uint8_t)(0xff << (8 - rest))) == r->prefix[full];
}

const char *addr_special(const uint8_t *addr, size_t alen)
{
    if (alen == 4) {
        for (size_t i = 0; i < sizeof(v4) / sizeof(v4[0]); i++)
            if (in_range(addr, &v4[i]))
                return v4[i].name;
        return NULL;
    }
    if (alen != 16)
        return "invalid";
    /*
     * A connection to these reaches the IPv4 address in the last 32 bits (through the
     * kernel, a SIIT translator or the NAT64 behind DNS64), so that address decides. RFC
     * 6052 3.1 keeps non-global IPv4 out of 64:ff9b::/96; a DNS answer need not.
     */
    for (size_t i = 0; i < sizeof(embeds_v4) / sizeof(embeds_v4[0]); i++)
        if (memcmp(addr, embeds_v4[i], 12) == 0)
            return addr_special(addr + 12, 4);
    for (size_t i = 0; i < sizeof(v6) / sizeof(v6[0]); i++)
        if (in_range(addr, &v6[i]))
            return v6[i].name;
    /*
     * RFC 4291 and the IANA IPv6 Address Space: global unicast is 2000::/3; the rest is
     * reserved by the IETF (the deprecated IPv4-compatible ::a.b.c.d included).
     */
    if ((addr[0] & 0xe0) != 0x20)
        return "reserved";
    return NULL;
}
