/*
 * SMTP reply parsing (RFC 5321 4.2) and EHLO keywords (RFC 5321 4.1.1.1). The reply parser
 * is a byte-at-a-time state machine over caller-owned fixed storage, so it can be fed
 * straight from the socket (or from the TLS layer) in pieces of any size; its limits come
 * from RFC 5321 4.5.3.1.5 and from ehlo.h.
 */
#include "ehlo.h"

#include <string.h>
#include <strings.h>

void ehlo_reply_init(struct ehlo_reply *r)
{
    r->code = 0;
    r->nlines = 0;
    r->textlen = 0;
    r->text[0] = '\0';
    r->total = 0;
    r->linelen = 0;
    memset(r->head, 0, sizeof(r->head));
    r->cr = 0;
    r->state = 0;
    r->why = NULL;
}

static int fail(struct ehlo_reply *r, int rc, const char *why, const char **whyp)
{
    r->state = rc;
    r->why = why;
    if (whyp)
        *whyp = why;
    return rc;
}

/* A line has ended (at LF). 1: it was the last line of the reply; 0: more follow. */
static int end_line(struct ehlo_reply *r, const char **why)
{
    int code;

    /* RFC 5321 4.2: Reply-code [ ("-" / SP) textstring ] CRLF; a bare code ends a reply. */
    if (r->linelen < 3)
        return fail(r, EHLO_ESYNTAX, "reply line shorter than a reply code", why);
    code = (r->head[0] - '0') * 100 + (r->head[1] - '0') * 10 + (r->head[2] - '0');
    /* RFC 5321 4.2.1: every line of a multiline reply carries the same code. */
    if (r->nlines > 0 && code != r->code)
        return fail(r, EHLO_ECODE, "reply lines with different codes", why);
    r->code = code;
    if (++r->nlines > EHLO_REPLY_MAX_LINES)
        return fail(r, EHLO_ETOOBIG, "reply of more than 64 lines", why);
    r->text[r->textlen++] = '\n';
    r->text[r->textlen] = '\0';
    {
        int last = r->linelen == 3 || r->head[3] == ' ';

        r->linelen = 0;
        return last;
    }
}

int ehlo_reply_feed(struct ehlo_reply *r, const char *buf, size_t len, size_t *used,
                    const char **why)
{
    size_t i;
    int rc;

    *used = 0;
    if (r->state != 0) {
        if (r->state < 0 && why)
            *why = r->why;
        return r->state;
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];

        if (++r->total > EHLO_REPLY_MAX_BYTES)
            return fail(r, EHLO_ETOOBIG, "reply of more than 8192 bytes", why);
        if (c == '\n') {
            r->cr = 0;
            rc = end_line(r, why);
            if (rc < 0)
                return rc;
            if (rc == 1) {
                *used = i + 1;
                r->state = 1;
                return 1;
            }
            continue;
        }
        /* A CR is part of the line end only right before LF. */
        if (r->cr)
            return fail(r, EHLO_ESYNTAX, "bare CR in a reply line", why);
        if (c == '\r') {
            r->cr = 1;
            continue;
        }
        if (c == '\0')
            return fail(r, EHLO_ESYNTAX, "NUL in a reply line", why);
        /* RFC 5321 4.5.3.1.5: 512 octets per reply line, the CRLF included. */
        if (r->linelen >= EHLO_LINE_MAX - 2)
            return fail(r, EHLO_ELINE, "reply line over 512 octets", why);
        if (r->linelen < 3) {
            /* RFC 5321 4.2.1: first digit 2 to 5, second 0 to 5, third any digit. */
            static const char lo[3] = {'2', '0', '0'}, hi[3] = {'5', '5', '9'};

            if (c < (unsigned char)lo[r->linelen] || c > (unsigned char)hi[r->linelen])
                return fail(r, EHLO_ESYNTAX, "reply line does not start with a reply code", why);
            r->head[r->linelen] = (char)c;
        } else if (r->linelen == 3) {
            if (c != '-' && c != ' ')
                return fail(r, EHLO_ESYNTAX, "no space or hyphen after the reply code", why);
            r->head[3] = (char)c;
        } else {
            r->text[r->textlen++] = (char)c;
        }
        r->linelen++;
    }
    *used = len;
    return 0;
}

char *ehlo_reply_first_line(const struct ehlo_reply *r, char *out, size_t n)
{
    size_t i = 0;

    if (n == 0)
        return out;
    for (; i + 1 < n && i < r->textlen && r->text[i] != '\n'; i++)
        out[i] = r->text[i];
    out[i] = '\0';
    return out;
}

static const struct {
    const char *word;
    unsigned cap;
} keywords[] = {
    {"STARTTLS", EHLO_CAP_STARTTLS},
    {"REQUIRETLS", EHLO_CAP_REQUIRETLS},
    {"PIPELINING", EHLO_CAP_PIPELINING},
    {"8BITMIME", EHLO_CAP_8BITMIME},
    {"SMTPUTF8", EHLO_CAP_SMTPUTF8},
    {"SIZE", EHLO_CAP_SIZE},
    {"CHUNKING", EHLO_CAP_CHUNKING},
    {"DSN", EHLO_CAP_DSN},
    {"ENHANCEDSTATUSCODES", EHLO_CAP_ENHANCEDSTATUSCODES},
};

const char *ehlo_cap_name(unsigned cap)
{
    for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
        if (keywords[i].cap == cap)
            return keywords[i].word;
    return "?";
}

static int is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* One capability line [p, end): RFC 5321 4.1.1.1 ehlo-line = ehlo-keyword *( SP ehlo-param ). */
static void keyword_line(struct ehlo_caps *caps, const char *p, const char *end)
{
    const char *k = p;
    size_t klen;

    /* ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
    if (p == end || !is_alnum(*p))
        return;
    while (p < end && (is_alnum(*p) || *p == '-'))
        p++;
    if (p < end && *p != ' ')
        return;
    klen = (size_t)(p - k);
    for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++) {
        if (strlen(keywords[i].word) != klen || strncasecmp(keywords[i].word, k, klen) != 0)
            continue;
        caps->flags |= keywords[i].cap;
        /* RFC 1870: SIZE [number]; 0 or none means no fixed limit. */
        if (keywords[i].cap == EHLO_CAP_SIZE) {
            unsigned long v = 0;

            while (p < end && *p == ' ')
                p++;
            for (; p < end && *p >= '0' && *p <= '9'; p++)
                v = v > 400000000000ul / 10 ? v : v * 10 + (unsigned long)(*p - '0');
            caps->size = v;
        }
        return;
    }
}

int ehlo_caps_parse(const struct ehlo_reply *r, struct ehlo_caps *caps, const char **why)
{
    const char *p = r->text, *end = r->text + r->textlen;
    size_t n = 0;

    memset(caps, 0, sizeof(*caps));
    if (r->state != 1) {
        if (why)
            *why = "incomplete reply";
        return EHLO_ESYNTAX;
    }
    if (r->code != 250) {
        if (why)
            *why = "EHLO not answered with 250";
        return EHLO_ENOT250;
    }
    /* RFC 5321 4.1.1.1: the first line is "Domain [ SP ehlo-greet ]". */
    while (p < end && *p != '\n' && *p != ' ' && n < EHLO_DOMAIN_MAX)
        caps->domain[n++] = *p++;
    caps->domain[n] = '\0';
    while (p < end && *p != '\n')
        p++;
    if (p < end)
        p++;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));

        if (eol == NULL)
            eol = end;
        keyword_line(caps, p, eol);
        p = eol < end ? eol + 1 : end;
    }
    return EHLO_OK;
}
