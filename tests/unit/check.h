/*
 * Tiny helpers for the table-driven unit tests (tests/unit/test_<module>.c). Each check
 * compares one field of one table row, prints a FAIL line naming the row and the field, and
 * counts; check_summary() prints one line and gives main() its exit status.
 * Header-only: every test program includes it once.
 */
#ifndef TESTS_CHECK_H
#define TESTS_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

/*
 * Print n bytes quoted, with anything unprintable escaped, so a failure shows the bytes.
 * Long values show their first and last 40 bytes and their length.
 */
static inline void check_show(const char *s, size_t n)
{
    if (s == NULL) {
        fputs("(null)", stdout);
        return;
    }
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        if (n > 100 && i == 40) {
            fputs("...", stdout);
            i = n - 40;
        }
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c >= 0x20 && c < 0x7f)
            putchar(c);
        else
            printf("\\x%02x", c);
    }
    if (n > 100)
        printf("\" (%zu bytes)", n);
    else
        putchar('"');
}

static inline int check_result(int ok, const char *label, const char *what)
{
    if (ok) {
        check_passed++;
        return 1;
    }
    check_failed++;
    /* Never NULL in the tables; GCC's -O2 -Wformat-overflow cannot always tell. */
    printf("FAIL %s: %s: ", label ? label : "(null)", what ? what : "(null)");
    return 0;
}

static inline int check_int(const char *label, const char *what, long long got, long long want)
{
    if (check_result(got == want, label, what))
        return 1;
    printf("got %lld, want %lld\n", got, want);
    return 0;
}

/* Compare byte strings; a NULL pointer only equals NULL. */
static inline int check_mem(const char *label, const char *what, const char *got, size_t glen,
                            const char *want, size_t wlen)
{
    int ok;

    if (got == NULL || want == NULL)
        ok = got == want;
    else
        ok = glen == wlen && memcmp(got, want, glen) == 0;
    if (check_result(ok, label, what))
        return 1;
    fputs("got ", stdout);
    check_show(got, glen);
    fputs(", want ", stdout);
    check_show(want, wlen);
    putchar('\n');
    return 0;
}

static inline int check_str(const char *label, const char *what, const char *got, const char *want)
{
    return check_mem(label, what, got, got ? strlen(got) : 0, want, want ? strlen(want) : 0);
}

static inline int check_true(const char *label, const char *what, int cond)
{
    if (check_result(cond, label, what))
        return 1;
    puts("condition is false");
    return 0;
}

/* Print the summary line; the result is main()'s exit status. */
static inline int check_summary(const char *prog)
{
    printf("%s: %d checks passed, %d failed\n", prog, check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
