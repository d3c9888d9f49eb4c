/*
 * Fuzzer for sts_txt_parse (proto/sts.c, RFC 8461 3.1). A record that parses has an id of 1
 * to 32 letters and digits that appears in the input as "id=<id>", and the input starts with
 * "v=STSv1"; anything else has a reason. The parser must never write past the id buffer.
 */
#include "fuzz_check.h"
#include "sts.h"

#include <stdint.h>
#include <string.h>

static int alnum(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char id[STS_ID_MAX + 2];
    const char *txt = (const char *)data, *why = NULL;
    size_t n;
    int rc;

    id[STS_ID_MAX + 1] = 'G'; /* a guard byte past what sts_txt_parse may write */
    rc = sts_txt_parse(txt, size, id, &why);
    CHECK(id[STS_ID_MAX + 1] == 'G');
    if (rc != STS_TXT_OK) {
        CHECK(rc == STS_TXT_NOT_STS || rc == STS_TXT_INVALID);
        CHECK(why != NULL && *why != '\0');
        CHECK(id[0] == '\0');
        /* Only a record starting with the version can be a broken STSv1 record. */
        if (rc == STS_TXT_INVALID)
            CHECK(size >= 7 && memcmp(txt, "v=STSv1", 7) == 0);
        return 0;
    }

    /* RFC 8461 3.1: the record starts with v=STSv1 followed by a delimiter. */
    CHECK(size > 7 && memcmp(txt, "v=STSv1", 7) == 0);
    CHECK(txt[7] == ';' || txt[7] == ' ' || txt[7] == '\t');

    /* sts-id = "id=" 1*32(ALPHA / DIGIT), found as such in the input. */
    n = strnlen(id, STS_ID_MAX + 1);
    CHECK(n >= 1 && n <= STS_ID_MAX);
    for (size_t i = 0; i < n; i++)
        CHECK(alnum((unsigned char)id[i]));
    {
        int found = 0;

        for (size_t i = 0; i + 3 + n <= size && !found; i++)
            found = memcmp(txt + i, "id=", 3) == 0 && memcmp(txt + i + 3, id, n) == 0 &&
                    (i + 3 + n == size || !alnum((unsigned char)txt[i + 3 + n]));
        CHECK(found);
    }

    /* Every byte of a valid record is printable ASCII or a blank. */
    for (size_t i = 0; i < size; i++)
        CHECK(data[i] == '\t' || (data[i] >= 0x20 && data[i] < 0x7f));

    /* Parsing is deterministic, and the record still parses with a ";" added after its last
     * field when it had none (the trailing sts-field-delim is optional). */
    {
        char again[STS_ID_MAX + 1], buf[512];
        size_t end = size;

        CHECK(sts_txt_parse(txt, size, again, &why) == STS_TXT_OK);
        CHECK(strcmp(again, id) == 0);
        while (end > 0 && (txt[end - 1] == ' ' || txt[end - 1] == '\t'))
            end--;
        if (end < sizeof(buf) && txt[end - 1] != ';') {
            memcpy(buf, txt, end);
            buf[end] = ';';
            CHECK(sts_txt_parse(buf, end + 1, again, &why) == STS_TXT_OK);
            CHECK(strcmp(again, id) == 0);
        }
    }
    return 0;
}
