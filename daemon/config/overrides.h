/*
 * The local overrides table (SPEC section 3, key "overrides"): a Postfix table-source file
 * of "KEY VALUE" lines consulted before any DNS or MTA-STS work. KEY is an exact domain or
 * ".parent" (every name below parent); VALUE is a Postfix TLS policy. Keys are normalised
 * like socketmap keys and values checked at load time, so a typo is an error naming the
 * file and line rather than a delivery failure. The table is immutable once loaded; a
 * reload builds a new one.
 */
#ifndef DAEMON_OVERRIDES_H
#define DAEMON_OVERRIDES_H

#include <stddef.h>

#include "tlspolicy.h"

/* Largest overrides file read, a bound on start-up memory and reload time. */
#define OVERRIDES_MAX_FILE (64u << 20)

struct overrides;

struct overrides_hit {
    const char *key;   /* the entry that matched: "example.com" or ".example.com" */
    const char *value; /* the policy, e.g. "secure match=.example.com" */
    enum tlspolicy_level level;
};

/*
 * overrides_parse - build a table from text. fname names the source in error messages.
 * Returns the table, or NULL with a one-line "FILE:LINE: reason" in err.
 */
struct overrides *overrides_parse(const char *text, size_t len, const char *fname, char *err,
                                  size_t errlen);

/* overrides_load - read and parse the file at path; NULL with a message in err on failure. */
struct overrides *overrides_load(const char *path, char *err, size_t errlen);

/* overrides_empty - a table with no entries (no "overrides" key configured). */
struct overrides *overrides_empty(void);

void overrides_free(struct overrides *ov);

size_t overrides_count(const struct overrides *ov);

/*
 * overrides_find - look up a normalised domain: the exact entry first, then ".parent"
 * entries from the closest parent up, as Postfix does for smtp_tls_policy_maps. Returns 1
 * and fills *hit (pointers valid while the table lives), or 0 when nothing matches.
 */
int overrides_find(const struct overrides *ov, const char *domain, struct overrides_hit *hit);

#endif
