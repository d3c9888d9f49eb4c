/*
 * Unit tests for proto/ehlo.c: SMTP replies (RFC 5321 4.2), their limits (4.5.3.1.5 and
 * ehlo.h), and EHLO keywords (4.1.1.1). Every reply row is fed whole, one byte at a time
 * and in pieces of 7 bytes, and must give the same result each way. Limit rows are built
 * in code.
 */
#include "check.h"
#include "ehlo.h"

#include <stdio.h>
#include <string.h>

#define S(lit) lit, sizeof(lit) - 1

struct reply_row {
    const char *label;
    const char *in;
    size_t len;
    int rc;           /* 1 complete, 0 needs more, or EHLO_E* */
    int code;         /* when complete */
    unsigned nlines;  /* when complete */
    const char *text; /* when complete */
    size_t used;      /* when complete */
};

static const struct reply_row reply_rows[] = {
    {"banner", S("220 mx.example ESMTP\r\n"), 1, 220, 1, "mx.example ESMTP\n", 22},
    {"bare code", S("250\r\n"), 1, 250, 1, "\n", 5},
    {"bare LF accepted", S("220 hi\n"), 1, 220, 1, "hi\n", 7},
    {"multiline EHLO", S("250-mx.example\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 REQUIRETLS\r\n"),
     1, 250, 4, "mx.example\nPIPELINING\nSTARTTLS\nREQUIRETLS\n", 62},
    {"empty continuation text", S("250-\r\n250 ok\r\n"), 1, 250, 2, "\nok\n", 14},
    {"bytes after the reply are left", S("220 a\r\nEXTRA"), 1, 220, 1, "a\n", 7},
    {"next reply pipelined", S("250 a\r\n250 b\r\n"), 1, 250, 1, "a\n", 7},
    {"incomplete line", S("250-mx"), 0, 0, 0, NULL, 0},
    {"incomplete reply", S("250-mx\r\n250-SIZE 10\r\n"), 0, 0, 0, NULL, 0},
    {"CR without LF yet", S("250 ok\r"), 0, 0, 0, NULL, 0},
    {"empty", S(""), 0, 0, 0, NULL, 0},
    {"4xx", S("454 4.7.0 TLS not available\r\n"), 1, 454, 1, "4.7.0 TLS not available\n", 29},
    {"5xx", S("554 no\r\n"), 1, 554, 1, "no\n", 8},
    {"tab in text", S("250 a\tb\r\n"), 1, 250, 1, "a\tb\n", 9},
    {"8-bit text", S("250 caf\xc3\xa9\r\n"), 1, 250, 1, "caf\xc3\xa9\n", 11},

    /* Syntax errors. */
    {"code too short", S("25\r\n"), EHLO_ESYNTAX, 0, 0, NULL, 0},
    {"empty line", S("\r\n"), EHLO_ESYNTAX, 0, 0, NULL, 0},
    {"letter in code", S("2x0 ok\r\n"), EHLO_ESYNTAX, 0, 0, NULL, 0},
    {"first digit 1", S("150 ok\r\n"), EHLO_ESYNTAX, 0, 0, NULL, 0},
    {"first digit 6", S("650 ok\r\n"), EHLO_ESYNTAX, 0, 0, NULL, 0},
    {"second digit 6", S("260 ok\r\n"), EHLO_ESYNTAX, 0, 0, NULL, 0},
    {"bad separator", S("250_ok\r\n"), EHLO_ESYNTAX, 0, 0, NULL, 0},
    {"four-digit code", S("2500 ok\r\n"), EHLO_ESYNTAX, 0, 0, NULL, 0},
    {"leading space", S(" 250 ok\r\n"), EHLO_ESYNTAX, 0, 0, NULL, 0},
    {"NUL in text", S("250 a\0b\r\n"), EHLO_ESYNTAX, 0, 0, NULL, 0},
    {"bare CR in text", S("250 a\rb\r\n"), EHLO_ESYNTAX, 0, 0, NULL, 0},
    {"CR CR LF", S("250 a\r\r\n"), EHLO_ESYNTAX, 0, 0, NULL, 0},
    {"HTTP instead of SMTP", S("HTTP/1.1 400 Bad Request\r\n"), EHLO_ESYNTAX, 0, 0, NULL, 0},
    {"TLS record instead of SMTP", S("\x16\x03\x03\x00\x05hello"), EHLO_ESYNTAX, 0, 0, NULL, 0},

    /* RFC 5321 4.2.1: one code per reply. */
    {"codes differ", S("250-a\r\n251 b\r\n"), EHLO_ECODE, 0, 0, NULL, 0},
    {"codes differ in the middle", S("250-a\r\n250-b\r\n220-c\r\n250 d\r\n"), EHLO_ECODE, 0, 0,
     NULL, 0},
};

/* Feed in pieces of step bytes (0: all at once); returns rc and sets *used_total. */
static int feed(struct ehlo_reply *r, const char *in, size_t len, size_t step, size_t *used_total,
                const char **why)
{
    size_t off = 0, used;
    int rc = 0;

    ehlo_reply_init(r);
    *used_total = 0;
    if (len == 0)
        return ehlo_reply_feed(r, in, 0, &used, why);
    while (off < len) {
        size_t n = step == 0 || len - off < step ? len - off : step;

        rc = ehlo_reply_feed(r, in + off, n, &used, why);
        if (rc != 0) {
            *used_total = off + used;
            return rc;
        }
        off += n;
    }
    *used_total = off;
    return rc;
}

static void reply_tests(void)
{
    static struct ehlo_reply r;
    static const size_t steps[] = {0, 1, 7};
    char label[200];

    for (size_t i = 0; i < sizeof(reply_rows) / sizeof(reply_rows[0]); i++) {
        const struct reply_row *row = &reply_rows[i];

        for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
            const char *why = NULL;
            size_t used;
            int rc = feed(&r, row->in, row->len, steps[s], &used, &why);

            snprintf(label, sizeof(label), "%s (pieces of %zu)", row->label, steps[s]);
            check_int(label, "rc", rc, row->rc);
            if (rc < 0) {
                check_true(label, "why", why != NULL && *why != '\0');
                /* A failed parser stays failed. */
                check_int(label, "rc again", ehlo_reply_feed(&r, "250 ok\r\n", 8, &used, &why),
                          row->rc);
            }
            if (rc != 1)
                continue;
            check_int(label, "code", r.code, row->code);
            check_int(label, "nlines", r.nlines, row->nlines);
            check_str(label, "text", r.text, row->text);
            check_int(label, "used", (long long)used, (long long)row->used);
            /* A complete parser stays complete and consumes nothing. */
            check_int(label, "rc again", ehlo_reply_feed(&r, "250 x\r\n", 7, &used, NULL), 1);
            check_int(label, "used again", (long long)used, 0);
        }
    }
}

/* The limits, at and beyond their bounds. */
static void limit_tests(void)
{
    static struct ehlo_reply r;
    static char buf[20000];
    const char *why;
    size_t used, n;
    int rc;

    /* RFC 5321 4.5.3.1.5: 512 octets with CRLF is allowed, 513 is not. */
    memcpy(buf, "250 ", 4);
    memset(buf + 4, 'x', 506);
    memcpy(buf + 510, "\r\n", 2);
    rc = feed(&r, buf, 512, 0, &used, &why);
    check_int("line of 512 octets", "rc", rc, 1);
    check_int("line of 512 octets", "text length", (long long)r.textlen, 507);
    memcpy(buf, "250 ", 4);
    memset(buf + 4, 'x', 507);
    memcpy(buf + 511, "\r\n", 2);
    rc = feed(&r, buf, 513, 0, &used, &why);
    check_int("line of 513 octets", "rc", rc, EHLO_ELINE);
    /* An endless line fails at the bound, without waiting for its end. */
    memset(buf, '2', 3);
    buf[3] = '-';
    memset(buf + 4, 'y', 2000);
    rc = feed(&r, buf, 2004, 1, &used, &why);
    check_int("endless line", "rc", rc, EHLO_ELINE);
    check_int("endless line", "stopped at the bound", (long long)r.total, 511);

    /* 64 lines are allowed, 65 are not. */
    n = 0;
    for (int i = 0; i < 63; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "250-L%d\r\n", i);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "250 last\r\n");
    rc = feed(&r, buf, n, 0, &used, &why);
    check_int("64 lines", "rc", rc, 1);
    check_int("64 lines", "nlines", r.nlines, 64);
    n = 0;
    for (int i = 0; i < 64; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "250-L%d\r\n", i);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "250 last\r\n");
    rc = feed(&r, buf, n, 0, &used, &why);
    check_int("65 lines", "rc", rc, EHLO_ETOOBIG);

    /* 8192 bytes are allowed, 8193 are not: 16 lines of 512 bytes. */
    n = 0;
    for (int i = 0; i < 16; i++) {
        memcpy(buf + n, i == 15 ? "250 " : "250-", 4);
        memset(buf + n + 4, 'z', 506);
        memcpy(buf + n + 510, "\r\n", 2);
        n += 512;
    }
    rc = feed(&r, buf, n, 0, &used, &why);
    check_int("reply of 8192 bytes", "rc", rc, 1);
    check_int("reply of 8192 bytes", "text length", (long long)r.textlen, 16 * 507);
    check_int("reply of 8192 bytes", "text NUL", r.text[r.textlen], 0);
    buf[n - 2] = 'z';
    buf[n - 1] = '\r';
    buf[n] = '\n';
    rc = feed(&r, buf, n + 1, 0, &used, &why);
    check_int("reply of 8193 bytes", "rc", rc, EHLO_ELINE);
    memmove(buf + 5, buf, n);
    memcpy(buf, "250-\n", 5);
    rc = feed(&r, buf, n + 5, 0, &used, &why);
    check_int("reply over 8192 bytes", "rc", rc, EHLO_ETOOBIG);

    /* An endless stream of short lines stops at 64 lines. */
    n = 0;
    while (n + 8 < sizeof(buf))
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "250-ab\r\n");
    rc = feed(&r, buf, n, 3, &used, &why);
    check_int("endless reply", "rc", rc, EHLO_ETOOBIG);
    check_int("endless reply", "stopped at line 65", (long long)r.total, 64 * 8 + 8);
}

struct caps_row {
    const char *label;
    const char *in;
    size_t len;
    int rc;
    unsigned flags;
    unsigned long size;
    const char *domain;
};

static const struct caps_row caps_rows[] = {
    {"REQUIRETLS after STARTTLS",
     S("250-mx.example Hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n"
       "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n"
       "250 REQUIRETLS\r\n"),
     EHLO_OK,
     EHLO_CAP_PIPELINING | EHLO_CAP_SIZE | EHLO_CAP_STARTTLS | EHLO_CAP_ENHANCEDSTATUSCODES |
         EHLO_CAP_8BITMIME | EHLO_CAP_DSN | EHLO_CAP_SMTPUTF8 | EHLO_CAP_CHUNKING |
         EHLO_CAP_REQUIRETLS,
     10240000, "mx.example"},
    {"greeting only", S("250 mx.example\r\n"), EHLO_OK, 0, 0, "mx.example"},
    {"lower case keywords", S("250-mx\r\n250-starttls\r\n250 RequireTLS\r\n"), EHLO_OK,
     EHLO_CAP_STARTTLS | EHLO_CAP_REQUIRETLS, 0, "mx"},
    {"keyword must match whole",
     S("250-mx\r\n250-STARTTLSX\r\n250-XREQUIRETLS\r\n250 REQUIRETLS-NOT\r\n"), EHLO_OK, 0, 0,
     "mx"},
    {"keyword with parameters", S("250-mx\r\n250 STARTTLS now please\r\n"), EHLO_OK,
     EHLO_CAP_STARTTLS, 0, "mx"},
    {"keyword in the greeting does not count", S("250 STARTTLS REQUIRETLS\r\n"), EHLO_OK, 0, 0,
     "STARTTLS"},
    {"keyword as text of another line", S("250-mx\r\n250-X-INFO STARTTLS\r\n250 OK\r\n"), EHLO_OK,
     0, 0, "mx"},
    {"leading blank is not a keyword", S("250-mx\r\n250  STARTTLS\r\n250 OK\r\n"), EHLO_OK, 0, 0,
     "mx"},
    {"old AUTH= form skipped", S("250-mx\r\n250-AUTH=LOGIN\r\n250 STARTTLS\r\n"), EHLO_OK,
     EHLO_CAP_STARTTLS, 0, "mx"},
    {"SIZE without a number", S("250-mx\r\n250 SIZE\r\n"), EHLO_OK, EHLO_CAP_SIZE, 0, "mx"},
    {"empty greeting", S("250\r\n"), EHLO_OK, 0, 0, ""},
    {"EHLO refused", S("502 5.5.1 command not implemented\r\n"), EHLO_ENOT250, 0, 0, ""},
    {"EHLO refused, keywords ignored", S("550-STARTTLS\r\n550 REQUIRETLS\r\n"), EHLO_ENOT250, 0, 0,
     ""},
    {"incomplete", S("250-mx\r\n250-STARTTLS\r\n"), EHLO_ESYNTAX, 0, 0, ""},
};

static void caps_tests(void)
{
    static struct ehlo_reply r;
    struct ehlo_caps caps;
    char domain[300];
    static char big[600];
    const char *why = NULL;
    size_t used;

    for (size_t i = 0; i < sizeof(caps_rows) / sizeof(caps_rows[0]); i++) {
        const struct caps_row *row = &caps_rows[i];
        int rc;

        feed(&r, row->in, row->len, 0, &used, &why);
        why = NULL;
        rc = ehlo_caps_parse(&r, &caps, &why);
        check_int(row->label, "rc", rc, row->rc);
        check_int(row->label, "flags", caps.flags, row->flags);
        check_int(row->label, "size", (long long)caps.size, (long long)row->size);
        check_str(row->label, "domain", caps.domain, row->domain);
        if (rc != EHLO_OK)
            check_true(row->label, "why", why != NULL);
    }

    /* The greeting's name is cut at EHLO_DOMAIN_MAX. */
    memcpy(big, "250 ", 4);
    memset(big + 4, 'd', 300);
    memcpy(big + 304, "\r\n", 2);
    feed(&r, big, 306, 0, &used, &why);
    check_int("long greeting", "rc", ehlo_caps_parse(&r, &caps, &why), EHLO_OK);
    check_int("long greeting", "domain length", (long long)strlen(caps.domain), EHLO_DOMAIN_MAX);

    feed(&r, S("250-first line\r\n250 second\r\n"), 0, &used, &why);
    check_str("first line", "text", ehlo_reply_first_line(&r, domain, sizeof(domain)),
              "first line");
    check_str("first line cut", "text", ehlo_reply_first_line(&r, domain, 4), "fir");
    check_str("cap name", "STARTTLS", ehlo_cap_name(EHLO_CAP_STARTTLS), "STARTTLS");
    check_str("cap name", "REQUIRETLS", ehlo_cap_name(EHLO_CAP_REQUIRETLS), "REQUIRETLS");
    check_str("cap name", "unknown", ehlo_cap_name(1u << 30), "?");
}

int main(void)
{
    reply_tests();
    limit_tests();
    caps_tests();
    return check_summary("test_ehlo");
}
