/*
 * Fuzzer for store_record_parse() (daemon/mtasts/store.c): the text of an MTA-STS record file in
 * state_dir, which a damaged disk, a crash or a hand edit may leave in any shape. The file
 * is taken to be example.com.json. What parses must be a record a fetch could have
 * produced: the file's domain, a valid id, a policy valid by RFC 8461 3.2 with its
 * max_age, and times that neither run backwards nor lie in the future; and, encoded as
 * "state export" prints it, a line that "state import" reads back to the same text. The same
 * text is also read as a value of the LMDB store under its key (store_value_parse()).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "store.h"

/* A fixed "now", so the same input always gives the same answer. */
#define NOW 1800000000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct store_record rec;
    const char *why = NULL;
    char txt[STS_ID_MAX + 16], id[STS_ID_MAX + 1], list[STS_MAX_MX * (STS_PATTERN_MAX + 1)];
    const char *twhy;

    /* The same text as a value of the store under the key example.com (and under a key
     * with a NUL byte, which a damaged file may hold): taken exactly when it is a record
     * naming that domain. */
    {
        struct store_record v, p;
        const char *vwhy = NULL, *pwhy = NULL;
        int as_value = store_value_parse("example.com", 11, data, size, NOW, &v, &vwhy);
        int as_line = store_record_parse((const char *)data, size, NULL, NOW, &p, &pwhy);

        CHECK(as_value == 0 || (vwhy != NULL && *vwhy != '\0'));
        CHECK((as_value == 0) == (as_line == 0 && strcmp(p.domain, "example.com") == 0));
        CHECK(as_value != 0 || strcmp(v.domain, "example.com") == 0);
        CHECK(store_value_parse("example.com\0x", 13, data, size, NOW, &v, &vwhy) != 0);
    }
    memset(&rec, 0, sizeof(rec));
    if (store_record_parse((const char *)data, size, "example.com.json", NOW, &rec, &why) != 0) {
        CHECK(why != NULL && *why != '\0');
        return 0;
    }
    CHECK(strcmp(rec.domain, "example.com") == 0);
    snprintf(txt, sizeof(txt), "v=STSv1; id=%s", rec.id);
    CHECK(sts_txt_parse(txt, strlen(txt), id, &twhy) == STS_TXT_OK);
    CHECK(rec.fetched >= 0 && rec.expires >= rec.fetched);
    CHECK(rec.expires - rec.fetched <= (int64_t)sts_cache_lifetime(rec.policy.max_age) + 1);
    CHECK(rec.fetched <= NOW + 300);
    CHECK(rec.policy.max_age <= STS_MAX_AGE_MAX);
    CHECK(rec.policy.nmx <= STS_MAX_MX);
    CHECK(rec.policy.mode == STS_MODE_NONE || rec.policy.nmx >= 1);
    for (const char *m = sts_policy_mx(&rec.policy, 0); m; m = sts_policy_next(&rec.policy, m))
        for (const char *c = m; *c; c++)
            CHECK((unsigned char)*c > 0x20 && (unsigned char)*c < 0x7f);
    if (rec.policy.mode != STS_MODE_NONE && sts_match_list(&rec.policy, list, sizeof(list)) >= 0)
        CHECK(strchr(list, '*') == NULL);
    /* "state export" then "state import": the encoded record is a line that parses back to
     * the same record and encodes to the same text. */
    {
        struct store_record again;
        char *text = store_record_encode(&rec), *text2;

        CHECK(text != NULL && strchr(text, '\n') == text + strlen(text) - 1);
        memset(&again, 0, sizeof(again));
        CHECK(store_record_parse(text, strlen(text), NULL, NOW, &again, &why) == 0);
        text2 = store_record_encode(&again);
        CHECK(text2 != NULL && strcmp(text, text2) == 0);
        free(text);
        free(text2);
    }
    return 0;
}
