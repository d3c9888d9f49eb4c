/*
 * Fuzzer for proto/sockmap.c: parse the input as a request payload, and render it as the
 * text of every reply status. A parsed request must describe the payload exactly; a rendered
 * reply must be one netstring within Postfix's limit, start with the status word, carry no
 * control characters and no more than SOCKMAP_MAX_TEXT bytes of text.
 */
#include "fuzz_check.h"
#include "netstring.h"
#include "sockmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void parse(const char *payload, size_t len)
{
    struct sockmap_request req;
    const char *why = NULL;
    int rc;

    memset(&req, 0, sizeof(req));
    rc = sockmap_parse(payload, len, &req, &why);
    if (rc != SOCKMAP_EOK) {
        CHECK(rc == SOCKMAP_ENOSPACE || rc == SOCKMAP_ENONAME || rc == SOCKMAP_ENAME ||
              rc == SOCKMAP_EKEY);
        CHECK(why != NULL && *why != '\0');
        return;
    }
    CHECK(req.name == payload);
    CHECK(req.namelen >= 1 && req.namelen <= SOCKMAP_MAX_NAME);
    for (size_t i = 0; i < req.namelen; i++)
        CHECK(req.name[i] > ' ' && req.name[i] <= '~');
    CHECK(req.key == payload + req.namelen + 1 && req.key[-1] == ' ');
    CHECK(req.namelen + 1 + req.keylen == len);
    CHECK(req.keylen <= SOCKMAP_MAX_KEY);
    CHECK(memchr(req.key, '\0', req.keylen) == NULL);
}

static void render(enum sockmap_status st, const char *text)
{
    static char out[SOCKMAP_MAX_TEXT + 64];
    const char *word = sockmap_status_word(st), *payload = NULL, *why = NULL;
    size_t wl = strlen(word), n, plen = 0, consumed = 0, tl = strlen(text);
    int rc;

    n = sockmap_render(out, sizeof(out), st, text);
    CHECK(n > 0 && n <= sizeof(out));
    rc = netstring_decode(out, n, SOCKMAP_MAX_REPLY, &payload, &plen, &consumed, &why);
    CHECK(rc == NETSTRING_OK && consumed == n);

    /* The status word, then a space and the text, or nothing for an empty text. */
    CHECK(plen >= wl && memcmp(payload, word, wl) == 0);
    if (st == SOCKMAP_NOTFOUND) {
        CHECK(plen == 9 && memcmp(payload, "NOTFOUND ", 9) == 0);
    } else if (tl == 0) {
        CHECK(plen == wl);
    } else {
        size_t kept = tl < SOCKMAP_MAX_TEXT ? tl : SOCKMAP_MAX_TEXT;

        CHECK(plen == wl + 1 + kept && payload[wl] == ' ');
        /* The text is the input with control characters replaced, and nothing else. */
        for (size_t i = 0; i < kept; i++) {
            unsigned char c = (unsigned char)text[i];

            CHECK(payload[wl + 1 + i] == ((c < ' ' || c == 0x7f) ? '?' : text[i]));
        }
    }
    for (size_t i = 0; i < plen; i++)
        CHECK((unsigned char)payload[i] >= ' ' && payload[i] != 0x7f);

    /* One byte less than needed is refused, not cut. */
    CHECK(sockmap_render(out, n - 1, st, text) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum sockmap_status sts[] = {SOCKMAP_OK, SOCKMAP_NOTFOUND, SOCKMAP_TEMP,
                                              SOCKMAP_TIMEOUT, SOCKMAP_PERM};
    char *text;

    /* The input as it is: a request payload is not NUL-terminated on the wire. */
    parse((const char *)data, size);

    /* The same bytes as reply text, which is a C string: it ends at the first NUL. */
    text = malloc(size + 1);
    CHECK(text != NULL);
    if (size)
        memcpy(text, data, size);
    text[size] = '\0';
    for (size_t i = 0; i < sizeof(sts) / sizeof(sts[0]); i++)
        render(sts[i], text);
    free(text);
    return 0;
}
