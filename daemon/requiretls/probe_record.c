/*
 * The fleet tier's probe result format (probe_record.h): encode, and a strict parser for
 * values read back from Redis.
 */
#include "probe_record.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "tlspolicyd-probe 1 "
#define NFLAGS 7
/* A record claiming a lifetime longer than this is refused (probe_ttl is an hour by default). */
#define MAX_LIFETIME_S (7 * 86400)

void probe_record_key(char *buf, size_t len, const char *host, const char *addr, size_t ntlsa,
                      uint64_t fp)
{
    snprintf(buf, len, "%s/%s/%zu-%016" PRIx64, host, addr, ntlsa, fp);
}

static const char *token_or_dash(const char *s)
{
    return s[0] ? s : "-";
}

size_t probe_record_encode(char *buf, size_t len, const char *key, const struct probe_result *r,
                           int64_t fetched, int64_t expires)
{
    char why[sizeof(r->why)];
    size_t i;
    int n;

    /* The why line is the daemon's own text; anything outside printable ASCII becomes '?'. */
    for (i = 0; r->why[i] && i < sizeof(why) - 1; i++)
        why[i] = r->why[i] >= 0x20 && r->why[i] < 0x7f ? r->why[i] : '?';
    why[i] = '\0';
    n = snprintf(buf, len, MAGIC "%s %lld %lld %d%d%d%d%d%d%d %u %u %s %s %llu %s", key,
                 (long long)fetched, (long long)expires, !!r->connected, !!r->starttls_offered,
                 !!r->tls_ok, !!r->pkix_ok, !!r->dane_ok, !!r->requiretls_advertised,
                 !!r->timed_out, r->ntlsa, r->caps, token_or_dash(r->tls_version),
                 token_or_dash(r->cipher), (unsigned long long)r->elapsed_ms, why);
    return n < 0 || (size_t)n >= len ? 0 : (size_t)n;
}

/* The next space-separated token of [*p, end) into out (at most outlen - 1 bytes). */
static int token(const char **p, const char *end, char *out, size_t outlen)
{
    const char *s = *p, *e = s;

    while (e < end && *e != ' ')
        e++;
    if (e == s || (size_t)(e - s) >= outlen)
        return -1;
    memcpy(out, s, (size_t)(e - s));
    out[e - s] = '\0';
    *p = e < end ? e + 1 : e;
    return 0;
}

/* A decimal number of at most 19 digits, no sign, no leading zeros but "0". */
static int number(const char *s, unsigned long long max, unsigned long long *v)
{
    size_t n = strlen(s);

    if (n == 0 || n > 19 || (n > 1 && s[0] == '0') || strspn(s, "0123456789") != n)
        return -1;
    *v = strtoull(s, NULL, 10);
    return *v <= max ? 0 : -1;
}

/* A token of letters, digits and "-_." (TLS version and cipher names), "-" for empty. */
static int name_token(const char *s, char *out, size_t outlen)
{
    size_t n = strlen(s);

    if (n >= outlen ||
        strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") != n)
        return -1;
    snprintf(out, outlen, "%s", strcmp(s, "-") == 0 ? "" : s);
    return 0;
}

/* RFC 8689 4.2.1's order of steps: no later step without the earlier ones. */
static const char *flags_why(const struct probe_result *r)
{
    if (r->starttls_offered && !r->connected)
        return "STARTTLS without a connection";
    if (r->tls_ok && !r->starttls_offered)
        return "TLS without STARTTLS";
    if ((r->pkix_ok || r->dane_ok || r->requiretls_advertised) && !r->tls_ok)
        return "an authenticated or REQUIRETLS result without TLS";
    if (r->dane_ok && r->ntlsa == 0)
        return "DANE without TLSA records";
    if (r->timed_out && (r->pkix_ok || r->dane_ok || r->requiretls_advertised))
        return "a success flag beside timed out";
    return NULL;
}

static int parse_flags(const char *s, struct probe_result *r)
{
    /* The order of FLAGS (probe_record.h). */
    int *f[NFLAGS] = {&r->connected, &r->starttls_offered,      &r->tls_ok,   &r->pkix_ok,
                      &r->dane_ok,   &r->requiretls_advertised, &r->timed_out};

    if (strlen(s) != NFLAGS || strspn(s, "01") != NFLAGS)
        return -1;
    for (int i = 0; i < NFLAGS; i++)
        *f[i] = s[i] == '1';
    return 0;
}

/* The next token as a number at most max. */
static int next_number(const char **p, const char *end, unsigned long long max,
                       unsigned long long *v)
{
    char tok[24];

    return token(p, end, tok, sizeof(tok)) < 0 ? -1 : number(tok, max, v);
}

int probe_record_parse(const char *buf, size_t len, const char *key, int64_t now,
                       struct probe_result *r, int64_t *fetched, int64_t *expires, const char **why)
{
    const char *p = buf, *end = buf + len;
    char tok[PROBE_RECORD_KEY_MAX + 2];
    unsigned long long v[5];

    memset(r, 0, sizeof(*r));
    if (len > PROBE_RECORD_MAX) {
        *why = "longer than a record can be";
        return -1;
    }
    if (len < sizeof(MAGIC) - 1 || memcmp(buf, MAGIC, sizeof(MAGIC) - 1) != 0) {
        *why = "not a probe record of this version";
        return -1;
    }
    for (const char *q = buf; q < end; q++)
        if (*q < 0x20 || *q >= 0x7f) {
            *why = "a control or non-ASCII byte";
            return -1;
        }
    p += sizeof(MAGIC) - 1;
    if (token(&p, end, tok, sizeof(tok)) < 0 || strcmp(tok, key) != 0) {
        *why = "it names another key";
        return -1;
    }
    if (next_number(&p, end, INT64_MAX, &v[0]) < 0 || next_number(&p, end, INT64_MAX, &v[1]) < 0) {
        *why = "bad fetched or expires";
        return -1;
    }
    if (token(&p, end, tok, sizeof(tok)) < 0 || parse_flags(tok, r) < 0) {
        *why = "bad flags";
        return -1;
    }
    if (next_number(&p, end, PROBE_MAX_TLSA, &v[2]) < 0 ||
        next_number(&p, end, 0xffffffffu, &v[3]) < 0) {
        *why = "bad TLSA count or capabilities";
        return -1;
    }
    if (token(&p, end, tok, sizeof(tok)) < 0 ||
        name_token(tok, r->tls_version, sizeof(r->tls_version)) < 0 ||
        token(&p, end, tok, sizeof(tok)) < 0 || name_token(tok, r->cipher, sizeof(r->cipher)) < 0) {
        *why = "bad TLS version or cipher";
        return -1;
    }
    if (next_number(&p, end, INT64_MAX, &v[4]) < 0) {
        *why = "bad elapsed time";
        return -1;
    }
    /* The why line follows one space, also when it is empty: one text per result. */
    if (p[-1] != ' ') {
        *why = "the why field is missing";
        return -1;
    }
    /* The rest is the why line (may be empty). */
    if ((size_t)(end - p) >= sizeof(r->why)) {
        *why = "why line too long";
        return -1;
    }
    memcpy(r->why, p, (size_t)(end - p));
    r->why[end - p] = '\0';
    *fetched = (int64_t)v[0];
    *expires = (int64_t)v[1];
    r->ntlsa = (unsigned)v[2];
    r->caps = (unsigned)v[3];
    r->elapsed_ms = v[4];
    if (*fetched > now + 60 || *expires <= *fetched || *expires - *fetched > MAX_LIFETIME_S) {
        *why = "times out of order, in the future or too long";
        return -1;
    }
    if ((*why = flags_why(r)) != NULL)
        return -1;
    return 0;
}
