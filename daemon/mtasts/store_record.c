/*
 * One MTA-STS record's text, as the store keeps it and "state export" / "state import" carry
 * it: one line of compact JSON (version, domain, id, fetched, expires, mode, max_age, mx).
 * Parsing rebuilds the policy text and runs the RFC 8461 3.2 parser again (proto/sts.c), so
 * a record edited on disk or handed to "state import" is held to the same rules as one
 * fetched from the web. No I/O; the fuzzer (tests/fuzz/fuzz_store.c) drives the parser.
 */
#include "store.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "xalloc.h"

/* A record's fetched time may run ahead of this machine's clock by at most this much. */
#define STORE_CLOCK_SKEW 300

/* A control character would let a string start a line of its own in the rebuilt policy. */
static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
            return 1;
    return 0;
}

/*
 * Whose record this is: a name a lookup could have asked for (lower case A-labels, no
 * trailing dot) and, read from a file, that file's own name. NULL, or the reason.
 */
static const char *domain_problem(const char *domain, const char *fname)
{
    char norm[DOMAIN_MAX + 1];
    const char *dwhy;
    size_t len = strlen(domain);

    if (domain_normalize(domain, len, norm, &dwhy) != DOMAIN_OK || strcmp(norm, domain) != 0)
        return "domain is not a normalised domain name";
    /* The file name is the domain: a record cannot speak for another domain. */
    if (fname != NULL && (strncmp(fname, domain, len) != 0 || strcmp(fname + len, ".json") != 0))
        return "domain does not match the file name";
    return NULL;
}

int store_record_parse(const char *buf, size_t n, const char *fname, int64_t now,
                       struct store_record *rec, const char **why)
{
    char policy[STS_MAX_MX * (STS_PATTERN_MAX + 8) + 128];
    const char *domain, *id, *mode;
    json_int_t version, fetched, expires, max_age;
    json_t *doc, *mx, *v;
    json_error_t jerr;
    size_t i, off;
    int rc = -1;

    if (n > STORE_RECORD_MAX) {
        *why = "larger than a record can be";
        return -1;
    }
    doc = json_loadb(buf, n, 0, &jerr);
    if (doc == NULL) {
        *why = "not JSON";
        return -1;
    }
    if (json_unpack(doc, "{s:I, s:s, s:s, s:I, s:I, s:s, s:I, s:o}", "version", &version, "domain",
                    &domain, "id", &id, "fetched", &fetched, "expires", &expires, "mode", &mode,
                    "max_age", &max_age, "mx", &mx) < 0 ||
        !json_is_array(mx)) {
        *why = "fields missing or of the wrong type";
        goto done;
    }
    if (version != STORE_VERSION) {
        *why = "unknown record version";
        goto done;
    }
    *why = domain_problem(domain, fname);
    if (*why != NULL)
        goto done;
    if (has_control(id)) {
        *why = "control character in id";
        goto done;
    }
    {
        char idcopy[STS_ID_MAX + 16], txt[STS_ID_MAX + 32];
        const char *twhy;

        snprintf(txt, sizeof(txt), "v=STSv1; id=%.40s", id);
        if (strlen(id) > STS_ID_MAX || sts_txt_parse(txt, strlen(txt), idcopy, &twhy) != 0) {
            *why = "invalid policy id";
            goto done;
        }
    }
    /* Rebuild the policy text and hold it to RFC 8461 3.2 again; one field, one line. */
    if (has_control(mode)) {
        *why = "control character in mode";
        goto done;
    }
    off = (size_t)snprintf(policy, sizeof(policy), "version: STSv1\nmode: %.10s\nmax_age: %lld\n",
                           mode, (long long)max_age);
    json_array_foreach(mx, i, v)
    {
        if (!json_is_string(v) || strlen(json_string_value(v)) > STS_PATTERN_MAX ||
            off + STS_PATTERN_MAX + 8 >= sizeof(policy)) {
            *why = "invalid mx list";
            goto done;
        }
        if (has_control(json_string_value(v))) {
            *why = "control character in mx list";
            goto done;
        }
        off +=
            (size_t)snprintf(policy + off, sizeof(policy) - off, "mx: %s\n", json_string_value(v));
    }
    if (sts_policy_parse(policy, off, &rec->policy, why) != 0)
        goto done;
    if (fetched < 0 || expires < fetched ||
        expires - fetched > (json_int_t)sts_cache_lifetime(rec->policy.max_age) + 1) {
        *why = "inconsistent times";
        goto done;
    }
    /* A record from the future would extend the policy's life past its max_age. */
    if (fetched > now + STORE_CLOCK_SKEW) {
        *why = "fetched in the future";
        goto done;
    }
    snprintf(rec->domain, sizeof(rec->domain), "%s", domain);
    snprintf(rec->id, sizeof(rec->id), "%s", id);
    rec->fetched = fetched;
    rec->expires = expires;
    rc = 0;
done:
    json_decref(doc);
    return rc;
}

char *store_record_encode(const struct store_record *rec)
{
    json_t *doc, *mx = json_array();
    char *text, *line = NULL;
    size_t len;

    for (const char *pat = sts_policy_mx(&rec->policy, 0); pat;
         pat = sts_policy_next(&rec->policy, pat))
        json_array_append_new(mx, json_string(pat));
    doc = json_pack("{s:i, s:s, s:s, s:I, s:I, s:s, s:I, s:O}", "version", STORE_VERSION, "domain",
                    rec->domain, "id", rec->id, "fetched", (json_int_t)rec->fetched, "expires",
                    (json_int_t)rec->expires, "mode", sts_mode_name(rec->policy.mode), "max_age",
                    (json_int_t)rec->policy.max_age, "mx", mx);
    text = doc != NULL ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    /* A record is one line: a file ends with a newline, and so does an exported record. */
    if (text != NULL) {
        len = strlen(text);
        line = xmalloc(len + 2);
        memcpy(line, text, len);
        memcpy(line + len, "\n", 2);
    }
    free(text);
    json_decref(doc);
    json_decref(mx);
    return line;
}
