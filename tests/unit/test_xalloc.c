/*
 * Unit tests for util/xalloc.c's string copies: xstrndup() is strndup(3), a copy cut to n
 * bytes and sized to what it holds. The MTA-STS cache keeps each domain's text with it, bounded
 * by the facts' fields (400 bytes for a reason line): an allocation of the bound instead of the
 * text cost about 400 bytes per cached domain (issue 12). The source rows are exactly their
 * length in memory, so a copy that read past the NUL is an ASan error.
 */
#include <malloc.h>
#include <stdlib.h>

#include "check.h"
#include "xalloc.h"

struct xstrndup_row {
    const char *label;
    const char *in;
    size_t n;
    const char *want;
};

static const struct xstrndup_row rows[] = {
    {"shorter than the bound", "policy id 1 from state_dir", 399, "policy id 1 from state_dir"},
    {"empty", "", 399, ""},
    {"exactly the bound", "abcdef", 6, "abcdef"},
    {"cut at the bound", "abcdef", 3, "abc"},
    {"bound 0", "abc", 0, ""},
};

static void check_row(const struct xstrndup_row *r)
{
    size_t len = strlen(r->in);
    char *in = xmalloc(len + 1); /* just the string: nothing past its NUL to read */
    char *got;

    memcpy(in, r->in, len + 1);
    got = xstrndup(in, r->n);
    check_str(r->label, "copy", got, r->want);
    /* Sized to the copy (glibc rounds up to 24 bytes and then by 16), not to the bound. */
    check_true(r->label, "allocation sized to the copy",
               malloc_usable_size(got) < strlen(r->want) + 32);
    free(got);
    free(in);
}

int main(void)
{
    char *s;

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        check_row(&rows[i]);

    s = xstrdup("mx1.example.com");
    check_str("xstrdup", "copy", s, "mx1.example.com");
    free(s);

    return check_summary("test_xalloc");
}
