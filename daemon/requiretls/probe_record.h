/*
 * One MX probe result as the fleet tier keeps it (issue 13): a line of text that names its
 * own key, so a value cannot be moved to another host, address or TLSA set. No I/O; the
 * value comes from Redis and is untrusted: probe_record_parse() is the fuzzer's entry point
 * (tests/fuzz/fuzz_probe_record.c).
 *
 *   tlspolicyd-probe 1 KEY FETCHED EXPIRES FLAGS NTLSA CAPS TLS_VERSION CIPHER ELAPSED_MS WHY
 *
 * KEY is HOST/ADDR/NTLSA-FINGERPRINT (probe_record_key()); FETCHED and EXPIRES are wall-clock
 * seconds; FLAGS seven 0/1 digits: connected, STARTTLS offered, TLS done, PKIX, DANE,
 * REQUIRETLS advertised, timed out; TLS_VERSION and CIPHER a token or "-"; WHY the rest of
 * the line, printable ASCII.
 */
#ifndef DAEMON_PROBE_RECORD_H
#define DAEMON_PROBE_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "probe.h"

/* A value is at most this long (the why line and the key are the long parts). */
#define PROBE_RECORD_MAX 1024
/* A key: host (253), address (45), the TLSA count and fingerprint. */
#define PROBE_RECORD_KEY_MAX 330

/* probe_record_key - the fleet key name of a probe: HOST/ADDR/NTLSA-FP (FP 16 hex digits). */
void probe_record_key(char *buf, size_t len, const char *host, const char *addr, size_t ntlsa,
                      uint64_t fp);

/*
 * probe_record_encode - r (host and addr not written: the key says them) as a line without
 * newline into buf. Returns its length, or 0 when it does not fit.
 */
size_t probe_record_encode(char *buf, size_t len, const char *key, const struct probe_result *r,
                           int64_t fetched, int64_t expires);

/*
 * probe_record_parse - read buf[0..len): the format above, KEY equal to key, flags
 * consistent (TLS only after a connection and STARTTLS; PKIX, DANE and REQUIRETLS only
 * after TLS; DANE only with TLSA records; no success flag beside timed out), fetched not in
 * the future of now and before expires. Expired records parse (the caller decides). 0 with
 * *r (host and addr NULL), *fetched and *expires filled, or -1 with a reason.
 */
int probe_record_parse(const char *buf, size_t len, const char *key, int64_t now,
                       struct probe_result *r, int64_t *fetched, int64_t *expires,
                       const char **why);

#endif
