/*
 * Unit table for proto/addr.c: which addresses a policy fetch may not reach.
 */
#include "addr.h"
#include "check.h"

#include <arpa/inet.h>

static const struct {
    const char *label, *addr, *want; /* want NULL: an ordinary global address */
} rows[] = {
    {"doc 1", "192.0.2.0", "documentation"},
    {"global v4 ok", "93.184.216.34", NULL},
    {"global v4 ok 2", "8.8.8.8", NULL},
    {"unspecified", "0.0.0.0", "unspecified"},
    {"this network", "0.1.2.3", "unspecified"},
    {"ten", "10.1.2.3", "private"},
    {"cgnat", "100.64.0.1", "shared"},
    {"cgnat top", "100.127.255.255", "shared"},
    {"just above cgnat", "100.128.0.1", NULL},
    {"loopback", "127.0.0.1", "loopback"},
    {"loopback lab", "127.0.30.1", "loopback"},
    {"link-local", "169.254.169.254", "link-local"},
    {"172.16", "172.16.0.1", "private"},
    {"172.31", "172.31.255.254", "private"},
    {"172.32 is global", "172.32.0.1", NULL},
    {"192.168", "192.168.1.1", "private"},
    {"benchmarking", "198.19.0.1", "benchmarking"},
    {"doc 2", "198.51.100.7", "documentation"},
    {"doc 3", "203.0.113.9", "documentation"},
    {"multicast", "224.0.0.1", "multicast"},
    {"broadcast", "255.255.255.255", "reserved"},
    {"class E", "240.0.0.1", "reserved"},
    {"v6 unspecified", "::", "unspecified"},
    {"v6 loopback", "::1", "loopback"},
    {"v6 mapped loopback", "::ffff:127.0.0.1", "loopback"},
    {"v6 mapped private", "::ffff:10.0.0.1", "private"},
    {"v6 mapped global", "::ffff:93.184.216.34", NULL},
    {"v6 compat", "::10.0.0.1", "reserved"},
    {"v6 ula", "fd00::1", "private"},
    {"v6 ula fc", "fc00::1", "private"},
    {"v6 link-local", "fe80::1", "link-local"},
    {"v6 site-local", "fec0::1", "reserved"},
    {"v6 multicast", "ff02::1", "multicast"},
    {"v6 documentation", "2001:db8::1", "documentation"},
    {"v6 teredo range", "2001:0::1", "reserved"},
    {"v6 6to4", "2002:c000:0204::1", "reserved"},
    {"v6 discard", "100::1", "discard"},
    {"v6 global", "2a00:1450:4001:80b::200e", NULL},
    {"v6 global 2", "2606:4700::1111", NULL},
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
