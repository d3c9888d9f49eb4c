/*
 * Fuzzer for sts_policy_parse, sts_mx_match and sts_match_list (proto/sts.c, RFC 8461 3.2 and
 * 4.1). A policy that parses has a valid mode, a max_age within the RFC's limit, at least one
 * mx pattern unless the mode is none, and patterns that are lower-case ["*."] LDH names with no
 * trailing dot and no duplicates. Each pattern matches the host it describes; the match list
 * is never empty, holds no "*" and fits the buffer it was given.
 */
#include "fuzz_check.h"
#include "sts.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* 1 when the last label is all digits (an IPv4 address: never matched, never listed). */
static int numeric_tld(const char *name)
{
    const char *last = strrchr(name, '.');

    for (last = last ? last + 1 : name; *last; last++)
        if (*last < '0' || *last > '9')
            return 0;
    return 1;
}

/* A stored pattern: "*." or nothing, then a name as domain_normalize would keep it. */
static void check_pattern(const char *pat)
{
    size_t len = strnlen(pat, STS_PATTERN_MAX + 1), label = 0;
    const char *name = pat;

    CHECK(len >= 1 && len <= STS_PATTERN_MAX);
    if (pat[0] == '*') {
        CHECK(len >= 3 && pat[1] == '.');
        name += 2;
    }
    CHECK(strlen(name) <= DOMAIN_MAX);
    for (const char *c = name;; c++) {
        if (*c == '.' || *c == '\0') {
            CHECK(label >= 1 && label <= DOMAIN_LABEL_MAX);
            /* *(c - label), not c[-label]: negating the size_t wraps, and UBSan reports
             * the pointer overflow on every pattern. */
            CHECK(c[-1] != '-' && *(c - label) != '-');
            if (*c == '\0')
                break;
            label = 0;
            continue;
        }
        CHECK((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-');
        label++;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sts_policy p;
    const char *why = NULL;
    int rc;

    rc = sts_policy_parse((const char *)data, size, &p, &why);
    if (rc != STS_POLICY_OK) {
        CHECK(rc == STS_POLICY_INVALID);
        CHECK(why != NULL && *why != '\0');
        return 0;
    }

    CHECK(p.mode == STS_MODE_ENFORCE || p.mode == STS_MODE_TESTING || p.mode == STS_MODE_NONE);
    CHECK(strcmp(sts_mode_name(p.mode), "unknown") != 0);
    CHECK(p.max_age <= STS_MAX_AGE_MAX);
    CHECK(p.nmx <= STS_MAX_MX);
    CHECK(p.nmx >= 1 || p.mode == STS_MODE_NONE);
    /* Version, mode and max_age lines are all there, so the input cannot be tiny. */
    CHECK(size >= 30);
    for (size_t i = 0; i < size; i++)
        CHECK(data[i] != '\0');

    /* The packed patterns: nmx of them, filling mx[0..mxlen) exactly. */
    {
        unsigned count = 0;
        size_t used = 0;

        for (const char *m = sts_policy_mx(&p, 0); m; m = sts_policy_next(&p, m)) {
            count++;
            used += strlen(m) + 1;
        }
        CHECK(count == p.nmx);
        CHECK(used == p.mxlen);
    }
    for (unsigned k = 0; k < p.nmx; k++) {
        const char *pat = sts_policy_mx(&p, k);
        char host[STS_PATTERN_MAX + 2];

        check_pattern(pat);
        for (unsigned j = 0; j < k; j++)
            CHECK(strcmp(sts_policy_mx(&p, j), pat) != 0);

        /* A pattern matches the host it describes ("*." stands for one label), and
         * neither its parent nor a name two labels down; addresses never match. */
        if (pat[0] == '*') {
            snprintf(host, sizeof(host), "x%s", pat + 1);
            if (strlen(pat) <= DOMAIN_MAX) {
                CHECK(sts_mx_match(&p, host) == !numeric_tld(pat));
            }
        } else {
            CHECK(sts_mx_match(&p, pat) == !numeric_tld(pat));
        }
    }
    CHECK(sts_mx_match(&p, "") == 0);
    CHECK(sts_mx_match(&p, "[192.0.2.1]") == 0);
    CHECK(sts_mx_match(&p, "192.0.2.1") == 0);

    /* The match list: never empty, no "*", ':' between usable patterns, and it fits. */
    {
        char list[STS_MAX_MX * (STS_PATTERN_MAX + 1)], small[64];
        int n = sts_match_list(&p, list, sizeof(list));

        if (n < 0) {
            CHECK(n == -1);
        } else {
            CHECK(n > 0 && (size_t)n == strlen(list));
            CHECK(strchr(list, '*') == NULL);
            CHECK(list[0] != ':' && list[n - 1] != ':' && strstr(list, "::") == NULL);
            CHECK(p.nmx >= 1);
        }
        memset(small, 'G', sizeof(small));
        rc = sts_match_list(&p, small, 32);
        CHECK(small[32] == 'G');
        CHECK(rc == -1 || (n >= 0 && rc == n && strcmp(small, list) == 0));
    }
    return 0;
}
