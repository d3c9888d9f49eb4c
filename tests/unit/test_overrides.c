/*
 * The overrides table (daemon/config/overrides.c): parsing (normalised keys, checked values,
 * errors with file and line, duplicates) and lookup order (exact, then .parent upward).
 */
#include "check.h"
#include "overrides.h"

#include <stdlib.h>

static const char table[] = "# comment\n"
                            "example.com        secure match=.example.com\n"
                            ".example.com       dane-only\n"
                            ".Deep.Example.ORG. verify\n"
                            "xn--bcher-kva.example encrypt\n"
                            "multi.example      secure\n"
                            "    match=mx1.multi.example:mx2.multi.example\n"
                            "\n";

struct find_row {
    const char *label;
    const char *domain;
    const char *want_key; /* NULL: no match */
    const char *want_value;
};

static const struct find_row find_rows[] = {
    {"exact", "example.com", "example.com", "secure match=.example.com"},
    {"child uses .parent", "mx.example.com", ".example.com", "dane-only"},
    {"grandchild uses .parent", "a.b.example.com", ".example.com", "dane-only"},
    {".parent key normalised", "x.deep.example.org", ".deep.example.org", "verify"},
    {".parent does not match itself", "deep.example.org", NULL, NULL},
    {"A-label entry", "xn--bcher-kva.example", "xn--bcher-kva.example", "encrypt"},
    {"continuation joined", "multi.example", "multi.example",
     "secure match=mx1.multi.example:mx2.multi.example"},
    {"unrelated", "example.net", NULL, NULL},
    {"suffix is not a parent", "notexample.com", NULL, NULL},
};

struct parse_row {
    const char *label;
    const char *text;
    const char *want_err; /* NULL: parses */
};

static const struct parse_row parse_rows[] = {
    {"empty table", "", NULL},
    {"comments only", "# x\n   # y\n", NULL},
    {"unknown level", "a.example sekure\n", "t:1: unknown TLS security level"},
    {"unknown attribute", "ok.example may\nb.example secure mtach=x\n",
     "t:2: TLS policy attribute unknown"},
    {"key without value", "a.example\n", "t:1: expected a key, whitespace and a value"},
    {"bad key", "a_b.example may\n", "t:1: domain name contains a character"},
    {"duplicate after normalisation", "a.example may\nA.EXAMPLE. none\n",
     "t: duplicate entry for a.example"},
    {"continuation of nothing", "  a.example may\n", "t:1: line starts with whitespace"},
};

/*
 * A large table (the hash index grows with it): every exact key found, every child of a
 * ".parent" key found by the nearest parent, names in neither not found.
 */
static void check_large(void)
{
    enum { N = 20000 };
    size_t cap = (size_t)N * 64, len = 0;
    char *text = malloc(cap), name[64], err[256] = "";
    struct overrides *ov;
    struct overrides_hit hit;
    unsigned bad = 0;

    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(text + len, cap - len, "%sd%d.example may\n", i % 2 ? "." : "", i);
    len += (size_t)snprintf(text + len, cap - len, ".d1.example.d3.example encrypt\n");
    ov = overrides_parse(text, len, "large", err, sizeof(err));
    if (!check_true("large table", "parses", ov != NULL)) {
        free(text);
        return;
    }
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), i % 2 ? "mx.d%d.example" : "d%d.example", i);
        bad += !overrides_find(ov, name, &hit) || strcmp(hit.key + (i % 2), name + 3 * (i % 2));
        snprintf(name, sizeof(name), i % 2 ? "d%d.example" : "mx.d%d.example", i);
        bad += overrides_find(ov, name, &hit); /* .parent does not match itself; no child */
    }
    check_int("large table", "wrong finds", bad, 0);
    check_true("large table", "nearest parent wins",
               overrides_find(ov, "a.d1.example.d3.example", &hit) &&
                   strcmp(hit.key, ".d1.example.d3.example") == 0);
    overrides_free(ov);
    free(text);
}

static void check_parse(const struct parse_row *r)
{
    char err[256] = "";
    struct overrides *ov = overrides_parse(r->text, strlen(r->text), "t", err, sizeof(err));

    if (r->want_err == NULL) {
        check_true(r->label, "parses", ov != NULL);
        if (ov == NULL)
            printf("  error: %s\n", err);
    } else {
        check_true(r->label, "rejected", ov == NULL);
        check_true(r->label, "message", strncmp(err, r->want_err, strlen(r->want_err)) == 0);
        if (strncmp(err, r->want_err, strlen(r->want_err)) != 0)
            printf("  got \"%s\", want prefix \"%s\"\n", err, r->want_err);
    }
    overrides_free(ov);
}

int main(void)
{
    char err[256] = "";
    struct overrides *ov = overrides_parse(table, strlen(table), "table", err, sizeof(err));
    struct overrides_hit hit;

    if (!check_true("table", "parses", ov != NULL)) {
        printf("  error: %s\n", err);
        return check_summary("test_overrides");
    }
    check_int("table", "count", (long long)overrides_count(ov), 5);
    for (size_t i = 0; i < sizeof(find_rows) / sizeof(find_rows[0]); i++) {
        const struct find_row *r = &find_rows[i];
        int found = overrides_find(ov, r->domain, &hit);

        check_int(r->label, "found", found, r->want_key != NULL);
        if (found && r->want_key) {
            check_str(r->label, "key", hit.key, r->want_key);
            check_str(r->label, "value", hit.value, r->want_value);
        }
    }
    check_true("levels", "secure",
               overrides_find(ov, "example.com", &hit) && hit.level == TLSPOLICY_SECURE);
    overrides_free(ov);

    ov = overrides_empty();
    check_int("empty table", "finds nothing", overrides_find(ov, "example.com", &hit), 0);
    overrides_free(ov);

    for (size_t i = 0; i < sizeof(parse_rows) / sizeof(parse_rows[0]); i++)
        check_parse(&parse_rows[i]);
    check_large();

    ov = overrides_load("/nonexistent/overrides", err, sizeof(err));
    check_true("missing file", "rejected", ov == NULL);
    check_true("missing file", "message names the file",
               strstr(err, "/nonexistent/overrides: cannot open") != NULL);
    return check_summary("test_overrides");
}
