/*
 * DANE pieces that are pure (daemon/dns/dane.c): which TLSA records are usable for SMTP
 * (RFC 7672 section 3.1.3). The walk over MX, addresses and TLSA is tested against real
 * signed zones in tests/integration/test_dane.py.
 */
#include "check.h"
#include "dane.h"

struct row {
    const char *label;
    uint8_t usage, selector, mtype;
    size_t dlen;
    int want;
};

static const struct row rows[] = {
    {"DANE-EE SPKI SHA2-256", 3, 1, 1, 32, 1},
    {"DANE-EE Cert SHA2-512", 3, 0, 2, 64, 1},
    {"DANE-TA SPKI Full", 2, 1, 0, 91, 1},
    {"DANE-TA Cert SHA2-256", 2, 0, 1, 32, 1},
    {"PKIX-TA is not usable for SMTP", 0, 0, 1, 32, 0},
    {"PKIX-EE is not usable for SMTP", 1, 1, 1, 32, 0},
    {"unknown usage", 4, 1, 1, 32, 0},
    {"unknown selector", 3, 2, 1, 32, 0},
    {"unknown matching type", 3, 1, 3, 32, 0},
    {"SHA2-256 with wrong length", 3, 1, 1, 31, 0},
    {"SHA2-512 with wrong length", 3, 1, 2, 32, 0},
    {"Full with no data", 3, 1, 0, 0, 0},
};

int main(void)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *r = &rows[i];

        check_int(r->label, "usable", dane_tlsa_usable(r->usage, r->selector, r->mtype, r->dlen),
                  r->want);
    }
    check_str("state names", "temp", dane_state_name(DANE_TEMP), "temp");
    check_str("state names", "all", dane_state_name(DANE_ALL), "all");
    return check_summary("test_dane");
}
