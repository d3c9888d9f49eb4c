/*
 * Fuzzer for proto/ehlo.c (RFC 5321 4.2 replies, 4.1.1.1 EHLO keywords). The input is fed
 * whole and again in pieces whose sizes come from its first byte; both ways must agree.
 * A complete reply respects the limits of ehlo.h, its text is what the lines said, and the
 * capability extractor finds only keywords present in that text.
 */
#include "ehlo.h"
#include "fuzz_check.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static struct ehlo_reply whole, parts;

/* Does the text hold the keyword at the start of a line other than the first? */
static int has_keyword(const char *text, const char *kw)
{
    size_t n = strlen(kw);
    const char *p = strchr(text, '\n');

    while (p != NULL && p[1] != '\0') {
        p++;
        if (strncasecmp(p, kw, n) == 0 && (p[n] == ' ' || p[n] == '\n'))
            return 1;
        p = strchr(p, '\n');
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data, *why = NULL, *why2 = NULL;
    size_t used = 0, used2 = 0, off = 0, step;
    int rc, rc2 = 0;

    ehlo_reply_init(&whole);
    rc = ehlo_reply_feed(&whole, in, size, &used, &why);
    CHECK(rc == 0 || rc == 1 || (rc < 0 && rc >= EHLO_ECODE));
    if (rc < 0)
        CHECK(why != NULL && *why != '\0');
    if (rc == 0)
        CHECK(used == size);

    /* The same bytes in pieces of 1 to 16. */
    step = size ? (size_t)(data[0] % 16) + 1 : 1;
    ehlo_reply_init(&parts);
    while (off < size) {
        size_t n = size - off < step ? size - off : step;

        rc2 = ehlo_reply_feed(&parts, in + off, n, &used2, &why2);
        if (rc2 != 0) {
            used2 += off;
            break;
        }
        off += n;
    }
    CHECK(rc2 == rc);
    if (rc == 1) {
        CHECK(used2 == used);
        CHECK(parts.code == whole.code && parts.nlines == whole.nlines);
        CHECK(parts.textlen == whole.textlen && memcmp(parts.text, whole.text, whole.textlen) == 0);
    }
    if (rc != 1)
        return 0;

    /* A complete reply: within the limits, and its text is its lines' text. */
    CHECK(used >= 4 && used <= size && used <= EHLO_REPLY_MAX_BYTES);
    CHECK(in[used - 1] == '\n');
    CHECK(whole.nlines >= 1 && whole.nlines <= EHLO_REPLY_MAX_LINES);
    CHECK(whole.code >= 200 && whole.code <= 559);
    CHECK(whole.textlen < used && whole.text[whole.textlen] == '\0');
    CHECK(strlen(whole.text) == whole.textlen);
    CHECK(whole.text[whole.textlen - 1] == '\n');
    {
        unsigned lines = 0;

        for (size_t i = 0; i < whole.textlen; i++) {
            CHECK(whole.text[i] != '\r');
            lines += whole.text[i] == '\n';
        }
        CHECK(lines == whole.nlines);
    }
    /* Each line of the input starts with the same code. */
    {
        char code[4];
        size_t i = 0;

        snprintf(code, sizeof(code), "%03d", whole.code);
        while (i < used) {
            const char *eol = memchr(in + i, '\n', used - i);

            CHECK(eol != NULL);
            CHECK(memcmp(in + i, code, 3) == 0);
            CHECK((size_t)(eol - (in + i)) + 1 <= EHLO_LINE_MAX);
            i = (size_t)(eol - in) + 1;
        }
    }

    /* Capabilities come only from keyword lines of a 250 reply. */
    {
        struct ehlo_caps caps;
        int crc = ehlo_caps_parse(&whole, &caps, &why);

        CHECK(crc == (whole.code == 250 ? EHLO_OK : EHLO_ENOT250));
        CHECK(strlen(caps.domain) <= EHLO_DOMAIN_MAX);
        if (crc != EHLO_OK) {
            CHECK(caps.flags == 0);
            return 0;
        }
        CHECK(!(caps.flags & EHLO_CAP_STARTTLS) == !has_keyword(whole.text, "STARTTLS"));
        CHECK(!(caps.flags & EHLO_CAP_REQUIRETLS) == !has_keyword(whole.text, "REQUIRETLS"));
        CHECK(!(caps.flags & EHLO_CAP_SIZE) == !has_keyword(whole.text, "SIZE"));
    }
    return 0;
}
