/*
 * Fuzzer for the Exim module's reading of the daemon's answers (contrib/exim/client.c,
 * client_parse_reply): the status word, the Postfix policy level and its match= list
 * translated into Exim host patterns. Input: an optional "DOMAIN\n" (the domain the
 * question named; example.com when the first line is not one), then the reply payload.
 *
 * What the module hands to Exim must never carry list or expansion syntax from the reply:
 * every pattern of a usable verify/secure answer is "*", "*.NAME" or "^(?i)NAME$" with NAME
 * of letters, digits, '-', '_' and (escaped, in the regular expression) '.'; the level of a
 * usable OK answer is one Postfix knows, in lower case; an answer the module cannot express
 * says why in a->bad.
 */
#include "client.h"
#include "fuzz_check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* NAME after "*.": name characters and dots, not empty. */
static int plain_name(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!name_char(*s) && *s != '.')
            return 0;
    return 1;
}

/* "^(?i)NAME$" with every '.' of NAME escaped and nothing else escaped. */
static int anchored_name(const char *s)
{
    size_t n = strlen(s);
    const char *p = s + 5;

    if (n < 7 || strncmp(s, "^(?i)", 5) != 0 || s[n - 1] != '$')
        return 0;
    for (; p < s + n - 1; p++) {
        if (*p == '\\') {
            if (p[1] != '.')
                return 0;
            p++;
        } else if (!name_char(*p)) {
            return 0;
        }
    }
    return 1;
}

static int known_level(const char *l)
{
    static const char *const levels[] = {"none",      "may",    "encrypt", "dane",
                                         "dane-only", "verify", "secure",  NULL};

    for (int i = 0; levels[i]; i++)
        if (strcmp(l, levels[i]) == 0)
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct client_answer a;
    char domain[256] = "example.com", *reply;
    const uint8_t *nl = memchr(data, '\n', size < 256 ? size : 256);
    size_t off = 0, dlen;
    int rc;

    if (nl != NULL && nl > data && memchr(data, '\0', (size_t)(nl - data)) == NULL) {
        memcpy(domain, data, (size_t)(nl - data));
        domain[nl - data] = '\0';
        off = (size_t)(nl - data) + 1;
    }
    /* As ask() hands it over: the payload, NUL-terminated in a buffer of its own. */
    dlen = size - off;
    reply = malloc(dlen + 1);
    CHECK(reply != NULL);
    memcpy(reply, data + off, dlen);
    reply[dlen] = '\0';

    rc = client_parse_reply(reply, dlen, domain, &a);
    CHECK(rc == 0 || rc == -1);
    if (rc == 0) {
        CHECK(a.st >= CLIENT_OK && a.st <= CLIENT_PERM);
        CHECK(a.text >= reply && a.text <= reply + dlen);
        CHECK(memchr(a.level, '\0', sizeof a.level) != NULL);
        CHECK(memchr(a.bad, '\0', sizeof a.bad) != NULL);
        CHECK(a.npat >= 0 && a.npat <= CLIENT_MAX_PATTERNS);
        if (a.st != CLIENT_OK)
            CHECK(a.npat == 0 && a.level[0] == '\0' && a.bad[0] == '\0');
        if (a.st == CLIENT_OK && a.bad[0] == '\0') {
            CHECK(known_level(a.level));
            if (strcmp(a.level, "verify") == 0 || strcmp(a.level, "secure") == 0)
                CHECK(a.npat > 0);
            else
                CHECK(a.npat == 0);
            for (int i = 0; i < a.npat; i++) {
                const char *p = a.pat[i];

                CHECK(memchr(p, '\0', sizeof a.pat[i]) != NULL);
                CHECK(strcmp(p, "*") == 0 || (p[0] == '*' && p[1] == '.' && plain_name(p + 2)) ||
                      anchored_name(p));
            }
        }
    } else {
        CHECK(strncmp(reply, "OK", 2) != 0 || (dlen > 2 && reply[2] != ' '));
    }
    free(reply);
    return 0;
}
