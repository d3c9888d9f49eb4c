/*
 * MTA-STS (RFC 8461) parsers: the _mta-sts TXT record (section 3.1) and the policy body
 * (section 3.2), mx pattern matching (section 4.1) and the Postfix match list a policy becomes.
 * Strict where the RFC's ABNF is explicit (case-sensitive keywords, the id charset, max_age
 * digits, mx syntax); lenient only where real policy files differ harmlessly (blank lines, blanks
 * around a line or before ':', a UTF-8 BOM, a trailing dot on an mx). Pure: libc only, no
 * allocation; every result goes to caller-owned memory.
 */
#include "sts.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

/* RFC 8461 3.1 and 3.2: sts-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / "."). */
#define EXT_NAME_MAX 32
/* RFC 8461 3.2: sts-policy-max-age-value = 1*10(DIGIT). */
#define MAX_AGE_DIGITS 10

static int alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int digit(int c)
{
    return c >= '0' && c <= '9';
}

static int alnum(int c)
{
    return alpha(c) || digit(c);
}

/* RFC 5234 B.1: WSP = SP / HTAB. */
static int wsp(int c)
{
    return c == ' ' || c == '\t';
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* Length of the sts-ext-name at s[0..len), or 0 when s does not start with one. */
static size_t ext_name(const char *s, size_t len)
{
    size_t n = 0;

    if (len == 0 || !alnum((unsigned char)s[0]))
        return 0;
    for (n = 1; n < len; n++) {
        int c = (unsigned char)s[n];

        if (!alnum(c) && c != '_' && c != '-' && c != '.')
            break;
    }
    return n;
}

/* RFC 8461 3.1: sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E), VCHAR less "=" and ";". */
static int ext_value_char(int c)
{
    return c >= 0x21 && c <= 0x7e && c != '=' && c != ';';
}

static int same(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && memcmp(s, word, n) == 0;
}

/* sts_txt_parse without the final clearing of id on failure. */
static int txt_parse(const char *txt, size_t len, char id[STS_ID_MAX + 1], const char **why)
{
    static const char version[] = "v=STSv1";
    size_t vlen = sizeof(version) - 1, i;
    int have_id = 0;

    /* RFC 8461 3.1: the record MUST begin with sts-version, %s"v=STSv1" (RFC 7405: case
     * sensitive), and records that do not are discarded. "v=STSv10" or "v=STSv1x" is some
     * other version, not a broken STSv1 record, so it is NOT_STS too; so is leading space. */
    if (len < vlen || memcmp(txt, version, vlen) != 0) {
        *why = "TXT record does not start with \"v=STSv1\"";
        return STS_TXT_NOT_STS;
    }
    i = vlen;
    if (i < len && !wsp((unsigned char)txt[i]) && txt[i] != ';') {
        *why = "TXT record version is not STSv1";
        return STS_TXT_NOT_STS;
    }

    /* RFC 8461 3.1: sts-version 1*(sts-field-delim sts-field) [sts-field-delim], with
     * sts-field-delim = *WSP ";" *WSP. The ABNF lets blanks come before ";" (errata 6285
     * questions that, but the ABNF is what is published). Blanks after the last field
     * without a ";" are outside the ABNF; they are accepted, as nothing can be misread. */
    for (;;) {
        const char *name;
        size_t nlen, vstart;

        while (i < len && wsp((unsigned char)txt[i]))
            i++;
        if (i == len)
            break;
        if (txt[i] != ';') {
            *why = "TXT record fields must be separated by \";\"";
            return STS_TXT_INVALID;
        }
        i++;
        while (i < len && wsp((unsigned char)txt[i]))
            i++;
        if (i == len)
            break; /* the optional trailing sts-field-delim */

        /* sts-extension = sts-ext-name "=" sts-ext-value; sts-id has the same shape. */
        name = txt + i;
        nlen = ext_name(name, len - i);
        if (nlen == 0 || nlen > EXT_NAME_MAX || i + nlen == len || txt[i + nlen] != '=') {
            *why = "TXT record field is not name=value (RFC 8461 3.1 sts-ext-name)";
            return STS_TXT_INVALID;
        }
        vstart = i + nlen + 1;
        for (i = vstart; i < len && ext_value_char((unsigned char)txt[i]); i++)
            ;
        if (i == vstart) {
            *why = "TXT record field has an empty or invalid value";
            return STS_TXT_INVALID;
        }

        /* RFC 8461 3.1: sts-id = %s"id=" 1*32(ALPHA / DIGIT), required. A second id would
         * make policy change detection (section 5.1) ambiguous, so it is refused. */
        if (same(name, nlen, "id")) {
            size_t n = i - vstart;

            if (have_id) {
                *why = "TXT record has more than one id";
                return STS_TXT_INVALID;
            }
            if (n > STS_ID_MAX) {
                *why = "TXT record id is longer than 32 characters";
                return STS_TXT_INVALID;
            }
            for (size_t k = vstart; k < i; k++) {
                if (!alnum((unsigned char)txt[k])) {
                    *why = "TXT record id has a character other than letters and digits";
                    return STS_TXT_INVALID;
                }
            }
            memcpy(id, txt + vstart, n);
            id[n] = '\0';
            have_id = 1;
        } else if (same(name, nlen, "v")) {
            /* "v" is a registered field (IANA MTA-STS TXT Record Fields), not an
             * extension; a second one contradicts the first. */
            *why = "TXT record has more than one v field";
            return STS_TXT_INVALID;
        }
    }
    if (!have_id) {
        *why = "TXT record has no id field";
        return STS_TXT_INVALID;
    }
    return STS_TXT_OK;
}

int sts_txt_parse(const char *txt, size_t len, char id[STS_ID_MAX + 1], const char **why)
{
    int rc;

    id[0] = '\0';
    rc = txt_parse(txt, len, id, why);
    if (rc != STS_TXT_OK)
        id[0] = '\0'; /* an id seen before a later error is not a result */
    return rc;
}

/*
 * Parse one mx value v[0..n) into out (STS_PATTERN_MAX + 1 bytes): RFC 8461 3.2
 * sts-policy-mx-value = ["*."] Domain, with Domain from RFC 5321 4.1.2 (LDH labels, no
 * address literals). Lower-cased; one trailing dot is dropped (an FQDN habit).
 */
static int mx_pattern(const char *v, size_t n, char out[STS_PATTERN_MAX + 1], const char **why)
{
    size_t o = 0, label = 0;

    if (n > 1 && v[n - 1] == '.')
        n--;
    if (n >= 2 && v[0] == '*' && v[1] == '.') {
        out[o++] = '*';
        out[o++] = '.';
        v += 2;
        n -= 2;
    }
    if (n == 0) {
        *why = "mx pattern is empty";
        return -1;
    }
    if (n > DOMAIN_MAX) {
        *why = "mx pattern is longer than 253 characters";
        return -1;
    }
    for (size_t i = 0; i <= n; i++) {
        int c = i < n ? (unsigned char)v[i] : '\0';

        if (c == '.' || c == '\0') {
            /* RFC 5321 4.1.2: sub-domain = Let-dig [Ldh-str], so a label neither starts
             * nor ends with "-"; RFC 1035 2.3.4 caps it at 63 octets. */
            if (label == 0) {
                *why = "mx pattern has an empty label";
                return -1;
            }
            if (v[i - 1] == '-' || v[i - label] == '-') {
                *why = "mx pattern has a label starting or ending with '-'";
                return -1;
            }
            label = 0;
            out[o++] = (char)c;
            continue;
        }
        if (c == '*') {
            /* RFC 8461 3.2 and 4.1: "*" only as the whole leftmost label. */
            *why = "mx pattern has '*' other than as a leading \"*.\"";
            return -1;
        }
        if (c == '[') {
            /* RFC 5321 address literals are not Domain; RFC 8461 mx values are names. */
            *why = "mx pattern is an address literal";
            return -1;
        }
        if (!alnum(c) && c != '-') {
            *why = "mx pattern has a character other than letters, digits, '-' and '.'";
            return -1;
        }
        if (++label > DOMAIN_LABEL_MAX) {
            *why = "mx pattern has a label longer than 63 characters";
            return -1;
        }
        out[o++] = (char)lower(c);
    }
    return 0;
}

/* 1 when the last label of name (NUL-terminated) is all digits: an IPv4 address, which
 * RFC 3696 2 says no top-level domain is. */
static int numeric_tld(const char *name)
{
    const char *last = strrchr(name, '.');

    last = last ? last + 1 : name;
    if (*last == '\0')
        return 0;
    for (; *last; last++)
        if (!digit((unsigned char)*last))
            return 0;
    return 1;
}

/*
 * A pattern Postfix can be given: not an IPv4 address (it would never name an MX host), and
 * not one of the words Postfix's match= attribute reads as a keyword rather than a name
 * (postconf(5) smtp_tls_secure_cert_match: "hostname", "nexthop", "dot-nexthop").
 */
static int usable(const char *pattern)
{
    if (numeric_tld(pattern))
        return 0;
    return strcmp(pattern, "hostname") != 0 && strcmp(pattern, "nexthop") != 0 &&
           strcmp(pattern, "dot-nexthop") != 0;
}

/* RFC 8461 3.2: sts-policy-max-age-value = 1*10(DIGIT), at most 31557600. */
static int max_age(const char *v, size_t n, uint32_t *out, const char **why)
{
    uint64_t x = 0;

    if (n == 0 || n > MAX_AGE_DIGITS) {
        *why = "max_age is not 1 to 10 digits";
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!digit((unsigned char)v[i])) {
            *why = "max_age is not 1 to 10 digits";
            return -1;
        }
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    if (x > STS_MAX_AGE_MAX) {
        *why = "max_age is over 31557600 seconds";
        return -1;
    }
    *out = (uint32_t)x;
    return 0;
}

/* The single-valued policy fields, as bits of a "seen" set. */
enum { SEEN_VERSION = 1, SEEN_MODE = 2, SEEN_MAX_AGE = 4 };

/* Handle one "key: value" line with blanks already trimmed from both ends. */
static int policy_line(const char *s, size_t n, struct sts_policy *p, unsigned *seen,
                       const char **why)
{
    size_t key, i;
    const char *v;
    size_t vn;

    /* RFC 8461 3.2: every field is name ":" *WSP value, the name in sts-ext-name syntax.
     * Blanks before ":" are outside the ABNF but cannot be misread, so they are skipped. */
    key = ext_name(s, n);
    if (key == 0 || key > EXT_NAME_MAX) {
        *why = "policy line does not start with a field name";
        return -1;
    }
    for (i = key; i < n && wsp((unsigned char)s[i]); i++)
        ;
    if (i == n || s[i] != ':') {
        *why = "policy line is not \"name: value\"";
        return -1;
    }
    for (i++; i < n && wsp((unsigned char)s[i]); i++)
        ;
    v = s + i;
    vn = n - i;

    /* RFC 8461 3.2: the field names and the version and mode values are %s"..." strings
     * (RFC 7405), so they match case-sensitively. Duplicates of the single-valued fields
     * are refused rather than resolved by picking one. */
    if (same(s, key, "version")) {
        if (*seen & SEEN_VERSION) {
            *why = "policy has more than one version field";
            return -1;
        }
        *seen |= SEEN_VERSION;
        if (!same(v, vn, "STSv1")) {
            *why = "policy version is not STSv1";
            return -1;
        }
    } else if (same(s, key, "mode")) {
        if (*seen & SEEN_MODE) {
            *why = "policy has more than one mode field";
            return -1;
        }
        *seen |= SEEN_MODE;
        if (same(v, vn, "enforce"))
            p->mode = STS_MODE_ENFORCE;
        else if (same(v, vn, "testing"))
            p->mode = STS_MODE_TESTING;
        else if (same(v, vn, "none"))
            p->mode = STS_MODE_NONE;
        else {
            *why = "policy mode is not enforce, testing or none";
            return -1;
        }
    } else if (same(s, key, "max_age")) {
        if (*seen & SEEN_MAX_AGE) {
            *why = "policy has more than one max_age field";
            return -1;
        }
        *seen |= SEEN_MAX_AGE;
        if (max_age(v, vn, &p->max_age, why) < 0)
            return -1;
    } else if (same(s, key, "mx")) {
        char pat[STS_PATTERN_MAX + 1];

        if (mx_pattern(v, vn, pat, why) < 0)
            return -1;
        size_t plen = strlen(pat);

        /* A repeated pattern adds nothing; only distinct ones count against the limit. */
        for (const char *q = sts_policy_mx(p, 0); q; q = sts_policy_next(p, q))
            if (strcmp(q, pat) == 0)
                return 0;
        if (p->nmx == STS_MAX_MX) {
            *why = "policy has more than 32 mx patterns";
            return -1;
        }
        /* Packed after the others; STS_MX_SPACE holds STS_MAX_MX of the longest. */
        memcpy(p->mx + p->mxlen, pat, plen + 1);
        p->mxlen += (unsigned)plen + 1;
        p->nmx++;
    }
    /* RFC 8461 3.2: other fields are extensions and are ignored. */
    return 0;
}

int sts_policy_parse(const char *body, size_t len, struct sts_policy *p, const char **why)
{
    unsigned seen = 0;
    size_t pos = 0;

    memset(p, 0, sizeof(*p));
    p->mode = STS_MODE_NONE;
    if (len > STS_BODY_MAX) {
        *why = "policy body is over 64 KiB";
        return STS_POLICY_INVALID;
    }
    /* A UTF-8 byte order mark, as some Windows editors write, is not content. */
    if (len >= 3 && memcmp(body, "\xef\xbb\xbf", 3) == 0)
        pos = 3;

    /* RFC 8461 3.2: sts-policy-term = CRLF / LF, and the last line may lack one. */
    while (pos < len) {
        const char *line = body + pos, *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;

        pos += n + (nl ? 1 : 0);
        if (n > 0 && line[n - 1] == '\r')
            n--;

        /* Control characters (NUL, a lone CR, ...) are in no production of the ABNF. */
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)line[i];

            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                *why = "policy has a control character";
                return STS_POLICY_INVALID;
            }
        }

        /* RFC 8461 3.2 allows *WSP after a field. Blanks before it and blank lines are
         * outside the ABNF but common in hand-written files, and cannot be misread. */
        while (n > 0 && wsp((unsigned char)line[n - 1]))
            n--;
        while (n > 0 && wsp((unsigned char)line[0])) {
            line++;
            n--;
        }
        if (n == 0)
            continue;
        if (policy_line(line, n, p, &seen, why) < 0)
            return STS_POLICY_INVALID;
    }

    /* RFC 8461 3.2: version, mode and max_age are required; mx at least once unless the
     * mode is none. */
    if (!(seen & SEEN_VERSION)) {
        *why = "policy has no version field";
        return STS_POLICY_INVALID;
    }
    if (!(seen & SEEN_MODE)) {
        *why = "policy has no mode field";
        return STS_POLICY_INVALID;
    }
    if (!(seen & SEEN_MAX_AGE)) {
        *why = "policy has no max_age field";
        return STS_POLICY_INVALID;
    }
    if (p->mode != STS_MODE_NONE && p->nmx == 0) {
        *why = "policy in enforce or testing mode has no mx field";
        return STS_POLICY_INVALID;
    }
    return STS_POLICY_OK;
}

/* The bytes of mx[] in use, never more than the array holds. */
static size_t mx_used(const struct sts_policy *p)
{
    return p->mxlen <= STS_MX_SPACE ? p->mxlen : STS_MX_SPACE;
}

size_t sts_policy_size(const struct sts_policy *p)
{
    return offsetof(struct sts_policy, mx) + mx_used(p);
}

const char *sts_policy_next(const struct sts_policy *p, const char *pat)
{
    size_t end = mx_used(p), at = (size_t)(pat - p->mx);
    const char *nul = at < end ? memchr(pat, '\0', end - at) : NULL;

    /* The last pattern's NUL ends mx[0..mxlen); nothing after it is read. */
    if (nul == NULL || (size_t)(nul + 1 - p->mx) >= end)
        return NULL;
    return nul + 1;
}

const char *sts_policy_mx(const struct sts_policy *p, unsigned i)
{
    const char *pat = p->mx;

    if (i >= p->nmx || mx_used(p) == 0 || memchr(p->mx, '\0', mx_used(p)) == NULL)
        return NULL;
    while (pat && i-- > 0)
        pat = sts_policy_next(p, pat);
    return pat;
}

/* The length of pat, a pattern of p; more than STS_PATTERN_MAX when it is unusable. */
static size_t pattern_len(const struct sts_policy *p, const char *pat)
{
    size_t room = mx_used(p) - (size_t)(pat - p->mx);
    size_t plen = strnlen(pat, room);

    return plen == room ? STS_PATTERN_MAX + 1 : plen;
}

uint32_t sts_cache_lifetime(uint32_t max_age)
{
    return max_age < STS_CACHE_MIN_AGE ? STS_CACHE_MIN_AGE : max_age;
}

const char *sts_mode_name(enum sts_mode m)
{
    switch (m) {
    case STS_MODE_ENFORCE:
        return "enforce";
    case STS_MODE_TESTING:
        return "testing";
    case STS_MODE_NONE:
        return "none";
    }
    return "unknown";
}

int sts_mx_match(const struct sts_policy *p, const char *host)
{
    size_t hlen = strlen(host);

    if (hlen > 0 && host[hlen - 1] == '.')
        hlen--;
    if (hlen == 0 || hlen > DOMAIN_MAX)
        return 0;
    /* An address (bracketed, IPv6 or dotted quad) is not an MX host name. */
    if (host[0] == '[' || memchr(host, ':', hlen) != NULL)
        return 0;
    {
        char name[DOMAIN_MAX + 1];

        memcpy(name, host, hlen);
        name[hlen] = '\0';
        if (numeric_tld(name))
            return 0;
    }

    for (const char *pat = sts_policy_mx(p, 0); pat; pat = sts_policy_next(p, pat)) {
        size_t plen = pattern_len(p, pat);

        if (plen > STS_PATTERN_MAX || numeric_tld(pat))
            continue;
        if (plen > 2 && pat[0] == '*' && pat[1] == '.') {
            /* RFC 8461 4.1: "*" matches exactly one leftmost label, so "*.example.com"
             * matches "mx.example.com" but neither "example.com" nor "a.b.example.com". */
            const char *suffix = pat + 1; /* ".example.com" */
            size_t slen = plen - 1, first;

            if (hlen <= slen)
                continue;
            first = hlen - slen;
            if (strncasecmp(host + first, suffix, slen) != 0)
                continue;
            if (memchr(host, '.', first) == NULL)
                return 1;
        } else if (plen == hlen && strncasecmp(host, pat, hlen) == 0) {
            return 1;
        }
    }
    return 0;
}

int sts_match_list(const struct sts_policy *p, char *out, size_t outlen)
{
    size_t o = 0;
    int n = 0;

    for (const char *pat = sts_policy_mx(p, 0); pat; pat = sts_policy_next(p, pat)) {
        size_t plen = pattern_len(p, pat);

        if (plen == 0 || plen > STS_PATTERN_MAX || !usable(pat))
            continue;
        /* Postfix reads ".example.net" as any name below example.net, where RFC 8461 4.1
         * allows one label only: Postfix accepts a little more than the policy, and
         * sts_mx_match is the exact rule for callers that need it. */
        if (pat[0] == '*') {
            pat++;
            plen--;
        }
        if (o + (n > 0) + plen + 1 > outlen)
            return -1;
        if (n > 0)
            out[o++] = ':';
        memcpy(out + o, pat, plen);
        o += plen;
        n++;
    }
    if (n == 0)
        return -1;
    out[o] = '\0';
    return (int)o;
}
