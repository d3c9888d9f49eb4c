/*
 * Fuzzer for proto/domain.c: normalise the input as a socketmap key. What comes out must be
 * a name the rest of the daemon can trust: at most 253 characters of lower-case LDH labels
 * of 1 to 63 characters joined by single dots, no hyphen at a label's ends, a last label that
 * is not all digits, and a fixed point (normalising it again gives it back).
 */
#include "domain.h"
#include "fuzz_check.h"

#include <stdint.h>
#include <string.h>

static void check_name(const char *name)
{
    size_t len = strlen(name), label = 0, labels = 0;
    int all_digits = 1;

    CHECK(len >= 1 && len <= DOMAIN_MAX);
    for (size_t i = 0; i <= len; i++) {
        char c = name[i];

        if (c == '.' || c == '\0') {
            CHECK(label >= 1 && label <= DOMAIN_LABEL_MAX);
            CHECK(name[i - label] != '-' && name[i - 1] != '-');
            labels++;
            if (c == '.') {
                label = 0;
                all_digits = 1;
            }
            continue;
        }
        CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
        if (!(c >= '0' && c <= '9'))
            all_digits = 0;
        label++;
    }
    CHECK(!all_digits);

    /* domain_parent walks up one label at a time and stops at the last one. */
    {
        const char *p = name;
        size_t steps = 0;

        while ((p = domain_parent(p)) != NULL) {
            CHECK(p > name && p < name + len && p[-1] == '.');
            steps++;
        }
        CHECK(steps == labels - 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char out[DOMAIN_MAX + 1 + 1];
    const char *in = (const char *)data, *why = NULL;
    int rc;

    out[DOMAIN_MAX + 1] = 'G'; /* a guard byte past what domain_normalize may write */
    rc = domain_normalize(in, size, out, &why);
    CHECK(out[DOMAIN_MAX + 1] == 'G');
    if (rc < 0) {
        CHECK(rc == DOMAIN_EINVAL || rc == DOMAIN_ETOOLONG || rc == DOMAIN_EIDN);
        CHECK(why != NULL && *why != '\0');
        return 0;
    }
    CHECK(rc == DOMAIN_OK || rc == DOMAIN_PARENT);
    CHECK((rc == DOMAIN_PARENT) == (size > 0 && in[0] == '.'));
    check_name(out);

    /* An ASCII key comes out as itself in lower case, less the dots at its ends. */
    {
        size_t s = rc == DOMAIN_PARENT ? 1 : 0, e = size, len = strlen(out);
        int ascii = 1;

        for (size_t i = 0; i < size; i++)
            ascii &= (unsigned char)in[i] < 0x80;
        if (e > s && in[e - 1] == '.')
            e--;
        if (ascii) {
            CHECK(e - s == len);
            for (size_t i = 0; i < len; i++) {
                char c = in[s + i];

                CHECK(out[i] == ((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c));
            }
        }
    }

    /* The output is a fixed point, also as a parent probe and with a trailing dot. */
    {
        char again[DOMAIN_MAX + 1], key[DOMAIN_MAX + 3];
        size_t len = strlen(out);

        CHECK(domain_normalize(out, len, again, &why) == DOMAIN_OK);
        CHECK(strcmp(again, out) == 0);
        key[0] = '.';
        memcpy(key + 1, out, len);
        key[len + 1] = '.';
        CHECK(domain_normalize(key, len + 2, again, &why) == DOMAIN_PARENT);
        CHECK(strcmp(again, out) == 0);
        CHECK(domain_normalize(key + 1, len + 1, again, &why) == DOMAIN_OK);
        CHECK(strcmp(again, out) == 0);
    }
    return 0;
}
