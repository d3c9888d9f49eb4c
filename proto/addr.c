/*
 * Special-purpose address ranges (RFC 6890 and the IANA IPv4/IPv6 special-purpose
 * registries). Tables of {prefix, length, name}; the first match wins, so narrower ranges
 * come first where they nest.
 */
#include "addr.h"

#include <string.h>

struct range {
    uint8_t prefix[16];
    unsigned bits;
    const char *name;
};

static const struct range v4[] = {
    {{0}, 8, "unspecified"},               /* 0.0.0.0/8, RFC 1122 */
    {{10}, 8, "private"},                  /* RFC 1918 */
    {{100, 64}, 10, "shared"},             /* RFC 6598 carrier-grade NAT */
    {{127}, 8, "loopback"},                /* RFC 1122 */
    {{169, 254}, 16, "link-local"},        /* RFC 3927 */
    {{172, 16}, 12, "private"},            /* RFC 1918 */
    {{192, 0, 0}, 24, "reserved"},         /* RFC 6890 IETF protocol assignments */
    {{192, 0, 2}, 24, "documentation"},    /* RFC 5737 */
    {{192, 88, 99}, 24, "reserved"},       /* RFC 7526 deprecated 6to4 relay */
    {{192, 168}, 16, "private"},           /* RFC 1918 */
    {{198, 18}, 15, "benchmarking"},       /* RFC 2544 */
    {{198, 51, 100}, 24, "documentation"}, /* RFC 5737 */
    {{203, 0, 113}, 24, "documentation"},  /* RFC 5737 */
    {{224}, 4, "multicast"},               /* RFC 5771 */
    {{240}, 4, "reserved"},                /* RFC 1112, 255.255.255.255 included */
};

static const struct range v6[] = {
    {{0}, 128, "unspecified"},                                           /* ::/128 */
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, "loopback"}, /* ::1 */
    {{0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 1}, 48, "reserved"},     /* 64:ff9b:1::/48 */
    {{0x01}, 64, "discard"},                                             /* 100::/64, RFC 6666 */
    {{0x20, 0x01, 0x00, 0x00}, 23, "reserved"},                          /* 2001::/23, IETF */
    {{0x20, 0x01, 0x0d, 0xb8}, 32, "documentation"},                     /* RFC 3849 */
    {{0x20, 0x02}, 16, "reserved"},                                      /* 6to4: embeds IPv4 */
    {{0xfc}, 7, "private"},                                              /* RFC 4193 unique local */
    {{0xfe, 0x80}, 10, "link-local"},                                    /* RFC 4291 */
    {{0xfe, 0xc0}, 10, "reserved"},                                      /* deprecated site-local */
    {{0xff}, 8, "multicast"},                                            /* RFC 4291 */
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
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t compat[12] = {0};

    if (alen == 4) {
        for (size_t i = 0; i < sizeof(v4) / sizeof(v4[0]); i++)
            if (in_range(addr, &v4[i]))
                return v4[i].name;
        return NULL;
    }
    if (alen != 16)
        return "invalid";
    /* ::ffff:a.b.c.d is the IPv4 address a.b.c.d as far as a connection goes. */
    if (memcmp(addr, mapped, 12) == 0)
        return addr_special(addr + 12, 4);
    for (size_t i = 0; i < sizeof(v6) / sizeof(v6[0]); i++)
        if (in_range(addr, &v6[i]))
            return v6[i].name;
    /* The deprecated IPv4-compatible form ::a.b.c.d (RFC 4291 2.5.5.1). */
    if (memcmp(addr, compat, 12) == 0)
        return "reserved";
    return NULL;
}
