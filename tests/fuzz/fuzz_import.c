/*
 * Fuzzer for the input of "tlspolicyd state import" (daemon/cli/state_cmd.c): the file is
 * split into lines by state_read_line() and each line judged by state_import_parse(), as the
 * command does before it writes anything. Unlike fuzz_store (a record file named for its
 * domain), an import line names its own domain, may be blank, overlong or hold a NUL byte.
 * Invariants: the lines are exactly the input's, split at each newline (an overlong one
 * reported as such, one with a NUL as such, never cut short); a line taken is an unexpired
 * record of a normalised domain whose export line ("state export", store_record_encode())
 * is read back by the same two functions to the same record; a skipped line has a reason;
 * a blank line is only blanks.
 */
#include <string.h>

#include "domain.h"
#include "fuzz_check.h"
#include "state_cmd.h"

/* A fixed "now", so the same input always gives the same answer. */
#define NOW 1800000000

static char buf[STORE_RECORD_MAX + 1];

/* An export line read back as an import line: the same record, encoding the same text. */
static void check_round_trip(const struct store_record *rec)
{
    static char again_buf[STORE_RECORD_MAX + 1];
    struct store_record again;
    char *text = store_record_encode(rec), *text2;
    const char *why = NULL;
    FILE *fp;
    long n;

    CHECK(text != NULL);
    fp = fmemopen(text, strlen(text), "r");
    CHECK(fp != NULL);
    n = state_read_line(fp, again_buf, STORE_RECORD_MAX);
    CHECK(n == (long)strlen(text) - 1);
    CHECK(state_read_line(fp, again_buf + n + 1, 0) == STATE_LINE_EOF);
    fclose(fp);
    CHECK(state_import_parse(again_buf, n, NOW, &again, &why) == 1);
    text2 = store_record_encode(&again);
    CHECK(text2 != NULL && strcmp(text, text2) == 0);
    free(text);
    free(text2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    FILE *fp;

    if (size == 0)
        return 0;
    fp = fmemopen((void *)data, size, "r");
    CHECK(fp != NULL);
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((nl ? nl : end) - p);
        long n = state_read_line(fp, buf, STORE_RECORD_MAX);
        struct store_record rec;
        const char *why = NULL;
        char norm[DOMAIN_MAX + 1];
        int rc;

        /* The line as the input has it. */
        if (len > STORE_RECORD_MAX)
            CHECK(n == STATE_LINE_LONG);
        else if (memchr(p, '\0', len) != NULL)
            CHECK(n == STATE_LINE_NUL);
        else
            CHECK(n == (long)len && memcmp(buf, p, len) == 0 && buf[len] == '\0');
        rc = state_import_parse(buf, n, NOW, &rec, &why);
        /* FUZZ_VERBOSE=1 with the replay: what import makes of each line. */
        if (getenv("FUZZ_VERBOSE") != NULL)
            fprintf(stderr, "line of %zu bytes: %d %s %s\n", len, rc, rec.domain,
                    rc < 0 ? why : "");
        switch (rc) {
        case 1:
            CHECK(n > 0 && rec.expires > NOW && rec.fetched <= NOW + 300);
            CHECK(domain_normalize(rec.domain, strlen(rec.domain), norm, &why) == 0);
            CHECK(strcmp(norm, rec.domain) == 0);
            check_round_trip(&rec);
            break;
        case 0:
            CHECK(n >= 0 && buf[strspn(buf, " \t\r")] == '\0');
            break;
        case -1:
            CHECK(why != NULL && *why != '\0');
            break;
        default:
            CHECK(0);
        }
        p += len + (nl != NULL);
    }
    CHECK(state_read_line(fp, buf, STORE_RECORD_MAX) == STATE_LINE_EOF);
    fclose(fp);
    return 0;
}
