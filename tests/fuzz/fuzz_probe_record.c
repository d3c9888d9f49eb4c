/*
 * Fuzzer for probe_record_parse() (daemon/requiretls/probe_record.c): an MX probe result as
 * the fleet tier keeps it in Redis, which anyone who can write there may have shaped. The
 * key is taken to be mx.example.com/192.0.2.1/1-00000000000000ab. What parses must be a
 * result a probe could have produced: its steps in order, printable text, times in order
 * and not in the future; and, encoded again, the same text.
 */
#include <string.h>

#include "fuzz_check.h"
#include "probe_record.h"

/* A fixed "now", so the same input always gives the same answer. */
#define NOW 1800000000
#define KEY "mx.example.com/192.0.2.1/1-00000000000000ab"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct probe_result r, again;
    int64_t fetched, expires, f2, e2;
    const char *why = NULL;
    char text[PROBE_RECORD_MAX + 1];
    size_t n;

    if (probe_record_parse((const char *)data, size, KEY, NOW, &r, &fetched, &expires, &why) != 0) {
        CHECK(why != NULL && *why != '\0');
        return 0;
    }
    CHECK(r.host == NULL && r.addr == NULL);
    CHECK(fetched <= NOW + 60 && expires > fetched);
    CHECK(!r.tls_ok || (r.connected && r.starttls_offered));
    CHECK(!(r.pkix_ok || r.dane_ok || r.requiretls_advertised) || r.tls_ok);
    CHECK(!r.dane_ok || r.ntlsa > 0);
    CHECK(r.ntlsa <= PROBE_MAX_TLSA);
    for (const char *c = r.why; *c; c++)
        CHECK(*c >= 0x20 && *c < 0x7f);
    /* Encoded again: the same text, which parses to the same result. */
    n = probe_record_encode(text, sizeof(text), KEY, &r, fetched, expires);
    CHECK(n == size && memcmp(text, data, size) == 0);
    CHECK(probe_record_parse(text, n, KEY, NOW, &again, &f2, &e2, &why) == 0);
    CHECK(f2 == fetched && e2 == expires && memcmp(&again, &r, sizeof(r)) == 0);
    return 0;
}
