/*
 * Fuzzer for proto/tlspolicy.c: check the input, up to its first NUL, as a Postfix TLS
 * policy value. The result must be a known code; an accepted value must start with a level
 * word; blanks around the value must not change the verdict.
 */
#include "fuzz_check.h"
#include "tlspolicy.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Postfix separates policy words with "\t\n\r ," (smtp_tls_policy.c). */
#define SEP " \t\r\n,"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const words[] = {"none",      "may",         "encrypt", "dane",
                                        "dane-only", "fingerprint", "verify",  "secure"};
    enum tlspolicy_level level = (enum tlspolicy_level) - 1, level2 = (enum tlspolicy_level) - 1;
    const char *why = NULL;
    char *value = malloc(size + 5);
    int rc, rc2, auth;
    size_t len;

    CHECK(value != NULL);
    /* The value as a C string, with room to wrap it in blanks below. */
    value[0] = ' ';
    value[1] = '\t';
    if (size)
        memcpy(value + 2, data, size);
    value[size + 2] = '\0';
    len = strlen(value + 2);

    rc = tlspolicy_check(value + 2, &level, &why);
    if (rc == TLSPOLICY_EOK) {
        const char *w = value + 2;
        size_t wl;

        CHECK(level >= TLSPOLICY_NONE && level <= TLSPOLICY_SECURE);
        w += strspn(w, SEP);
        wl = strcspn(w, SEP);
        CHECK(strlen(words[level]) == wl && strncasecmp(words[level], w, wl) == 0);
        /* Every later word is name=value with a Postfix 3.7 attribute name. */
        for (w += wl;;) {
            static const char *const attrs[] = {"ciphers",   "exclude", "match",
                                                "protocols", "tafile",  "connection_reuse",
                                                "servername"};
            const char *eq;
            int known = 0;

            w += strspn(w, SEP);
            if (*w == '\0')
                break;
            wl = strcspn(w, SEP);
            eq = memchr(w, '=', wl);
            CHECK(eq != NULL && eq > w && eq < w + wl - 1);
            for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++)
                known |= strlen(attrs[i]) == (size_t)(eq - w) &&
                         strncasecmp(attrs[i], w, (size_t)(eq - w)) == 0;
            CHECK(known);
            w += wl;
        }
        auth = tlspolicy_authenticated(level);
        CHECK(auth == (level == TLSPOLICY_DANE_ONLY || level == TLSPOLICY_FINGERPRINT ||
                       level == TLSPOLICY_VERIFY || level == TLSPOLICY_SECURE));
    } else {
        CHECK(rc == TLSPOLICY_ELEVEL || rc == TLSPOLICY_EATTR);
        CHECK(why != NULL && *why != '\0');
    }

    /* Blanks before and after the value change nothing. */
    value[len + 2] = ' ';
    value[len + 3] = '\t';
    value[len + 4] = '\0';
    rc2 = tlspolicy_check(value, &level2, &why);
    CHECK(rc2 == rc);
    if (rc == TLSPOLICY_EOK)
        CHECK(level2 == level);
    free(value);
    return 0;
}
