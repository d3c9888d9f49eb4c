/*
 * MTA-STS (RFC 8461) parsing, pure: the _mta-sts TXT record (section 3.1), the policy body
 * (section 3.2), mx pattern matching (section 4.1) and the Postfix "match=" list a policy
 * becomes. No I/O, no allocation: results go to caller-owned structs.
 */
#ifndef PROTO_STS_H
#define PROTO_STS_H

#include <stddef.h>
#include <stdint.h>

#include "domain.h"

/* RFC 8461 3.1: sts-id = 1*32(ALPHA / DIGIT). */
#define STS_ID_MAX 32
/* RFC 8461 3.2: max_age is at most 31557600 seconds (about one year). */
#define STS_MAX_AGE_MAX 31557600u
/*
 * A policy stays cached at least this long (one hour), whatever its max_age. RFC 8461 3.2
 * says senders SHOULD cache a policy for up to max_age and expects weeks; a max_age of 0
 * or a few seconds would make every lookup a fetch and a store write. Caching longer only
 * keeps a policy in force longer, never a weaker one (a changed TXT id is still fetched).
 */
#define STS_CACHE_MIN_AGE 3600u
/* SPEC section 7: a policy body over 64 KiB is refused (RFC 8461 3.3 suggests a limit). */
#define STS_BODY_MAX 65536
/* mx patterns kept per policy; a policy with more is invalid (no real one comes close). */
#define STS_MAX_MX 32
/* A pattern is a domain, optionally with "*." in front. */
#define STS_PATTERN_MAX (DOMAIN_MAX + 2)

enum sts_txt_rc {
    STS_TXT_OK = 0,       /* a v=STSv1 record with a valid id */
    STS_TXT_NOT_STS = -1, /* does not start with "v=STSv1": not an STS record at all */
    STS_TXT_INVALID = -2, /* starts with v=STSv1 but breaks the grammar */
};

/*
 * sts_txt_parse - parse one TXT record (its character-strings already concatenated),
 * txt[0..len). On STS_TXT_OK, id receives the NUL-terminated id; otherwise id is "". *why gets
 * a static reason for anything but STS_TXT_OK. Unknown extension fields are allowed as the
 * grammar says. "v=STSv1" is case-sensitive and must be followed by a blank, ";" or the end:
 * "v=stsv1" and "v=STSv10" are NOT_STS (section 3.1 discards them). A missing, empty, long or
 * non-alphanumeric id, a second id or v field, or a field that is not name=value is INVALID;
 * blanks after the last field are accepted without a trailing ";".
 */
int sts_txt_parse(const char *txt, size_t len, char id[STS_ID_MAX + 1], const char **why);

enum sts_mode { STS_MODE_ENFORCE, STS_MODE_TESTING, STS_MODE_NONE };

/* Room for STS_MAX_MX patterns of the longest length, each with its NUL. */
#define STS_MX_SPACE (STS_MAX_MX * (STS_PATTERN_MAX + 1))

/*
 * A policy. The patterns are packed: nmx NUL-terminated strings one after the other in
 * mx[0..mxlen), so the first sts_policy_size() bytes of the struct are the whole policy and
 * a cache keeps only those (the rest of mx[] is room for the parser, never read).
 */
struct sts_policy {
    enum sts_mode mode;
    uint32_t max_age;      /* seconds */
    unsigned nmx;          /* patterns in mx[] */
    unsigned mxlen;        /* bytes of mx[] used, the NULs included */
    char mx[STS_MX_SPACE]; /* lower case, no trailing dot, "*.x" kept */
};

/*
 * sts_policy_size - the bytes of *p that hold the policy: offsetof(mx) + mxlen. A copy of
 * that many bytes (into storage at least that large) reads as the same policy.
 */
size_t sts_policy_size(const struct sts_policy *p);

/*
 * sts_policy_mx - the i-th pattern (0-based, in the policy's order), NUL-terminated, or NULL
 * when i >= nmx. Walks the packed patterns: O(i).
 */
const char *sts_policy_mx(const struct sts_policy *p, unsigned i);

/*
 * sts_policy_next - the pattern after pat (one returned by sts_policy_mx() or this), or NULL
 * after the last: for (pat = sts_policy_mx(p, 0); pat; pat = sts_policy_next(p, pat)).
 */
const char *sts_policy_next(const struct sts_policy *p, const char *pat);

enum sts_policy_rc { STS_POLICY_OK = 0, STS_POLICY_INVALID = -1 };

/*
 * sts_policy_parse - parse a policy body[0..len) (LF or CRLF lines) into *p. Returns
 * STS_POLICY_OK or STS_POLICY_INVALID with *why set (a static reason). Rules: RFC 8461 3.2;
 * version "STSv1" required, mode and max_age required, mx required (at least one) unless
 * mode is none, unknown keys ignored, duplicate version/mode/max_age invalid. Keys, version
 * and mode are case-sensitive; max_age is 1 to 10 digits up to STS_MAX_AGE_MAX; control
 * characters (NUL, a lone CR) and bodies over STS_BODY_MAX are invalid. Blank lines, blanks
 * at either end of a line or before ':', a leading UTF-8 BOM and a missing final newline are
 * tolerated. An mx value must be ["*."] RFC 5321 Domain (ASCII LDH): it is lower-cased, one
 * trailing dot is dropped, duplicates are kept once, and more than STS_MAX_MX distinct ones
 * are invalid. Address literals ("[192.0.2.1]") are invalid; a bare IPv4 address is Domain
 * syntax and is kept, but never matches and is left out of the match list.
 */
int sts_policy_parse(const char *body, size_t len, struct sts_policy *p, const char **why);

/*
 * sts_cache_lifetime - the seconds a policy with this max_age stays cached: max_age, but
 * at least STS_CACHE_MIN_AGE. The policy keeps (and shows) its own max_age.
 */
uint32_t sts_cache_lifetime(uint32_t max_age);

/* sts_mode_name - "enforce", "testing", "none". */
const char *sts_mode_name(enum sts_mode m);

/*
 * sts_mx_match - 1 when host (normalised, no trailing dot) matches one of the policy's
 * patterns (RFC 8461 4.1: "*.example.com" matches exactly one extra leftmost label),
 * else 0. IP literals never match.
 */
int sts_mx_match(const struct sts_policy *p, const char *host);

/*
 * sts_match_list - write Postfix's match list for the policy, "P1:P2", where "*.x" becomes
 * ".x" (Postfix's "any name below x"), into out[0..outlen), NUL-terminated. Patterns that are
 * IPv4 addresses or Postfix match keywords ("hostname", "nexthop", "dot-nexthop") are left
 * out. Returns the length, or -1 when it does not fit or the policy has no usable pattern
 * (never an empty list).
 */
int sts_match_list(const struct sts_policy *p, char *out, size_t outlen);

#endif
