/*
 * Unit tests for proto/cfline.c: logical lines (comments, blank lines, continuations, CRLF,
 * an orphan continuation, over-long lines, NUL bytes, line numbers, going on after an
 * error) and the "key = value" and "KEY VALUE" splits.
 */
#include "check.h"
#include "cfline.h"

#include <stdlib.h>

#define S(lit) lit, sizeof(lit) - 1

/* One expected cfline_next() result; a row's list ends with CFLINE_EOF. */
struct step {
    int rc;
    unsigned lineno;  /* for CFLINE_LINE and errors */
    const char *line; /* for CFLINE_LINE */
};

#define MAX_STEPS 8

struct next_row {
    const char *label;
    const char *in;
    size_t len;
    size_t cap;
    struct step steps[MAX_STEPS];
};

#define LINE(n, text)                                                                              \
    {                                                                                              \
        CFLINE_LINE, n, text                                                                       \
    }
#define ERR(rc, n)                                                                                 \
    {                                                                                              \
        rc, n, NULL                                                                                \
    }
#define END                                                                                        \
    {                                                                                              \
        CFLINE_EOF, 0, NULL                                                                        \
    }

static const struct next_row next_rows[] = {
    /* Blank lines and comments. */
    {"empty text", S(""), 64, {END}},
    {"newlines only", S("\n\n\n"), 64, {END}},
    {"blank lines only", S("  \n\t\n \r\n\f\v\n"), 64, {END}},
    {"comments only", S("# one\n#two\n   # three\n\t#four"), 64, {END}},
    {"one line without newline", S("a = b"), 64, {LINE(1, "a = b"), END}},
    {"one line with newline", S("a = b\n"), 64, {LINE(1, "a = b"), END}},
    {"comments and blanks before",
     S("# c\n\n   \n\t# indented comment\nkey = v\n"),
     64,
     {LINE(5, "key = v"), END}},
    {"trailing blanks removed", S("key = v \t \n"), 64, {LINE(1, "key = v"), END}},
    {"'#' inside a line is text", S("a = b # c\n"), 64, {LINE(1, "a = b # c"), END}},
    {"several lines",
     S("a = 1\nb = 2\n\nc = 3\n"),
     64,
     {LINE(1, "a = 1"), LINE(2, "b = 2"), LINE(4, "c = 3"), END}},

    /* Continuation lines: leading whitespace continues the logical line. */
    {"two continuations",
     S("a = 1\n  2\n\t3\nb = 4\n"),
     64,
     {LINE(1, "a = 1 2 3"), LINE(4, "b = 4"), END}},
    {"continuation at end of text", S("a\n b"), 64, {LINE(1, "a b"), END}},
    {"continuation over a comment", S("a\n# c\n  b\n"), 64, {LINE(1, "a b"), END}},
    {"continuation over a blank line",
     S("a\n\n   \n  b\nc\n"),
     64,
     {LINE(1, "a b"), LINE(5, "c"), END}},
    {"indented comment inside a logical line",
     S("a\n  # not text\n  b\n"),
     64,
     {LINE(1, "a b"), END}},
    {"continuation blanks collapse to one space", S("a   \n   \t b\n"), 64, {LINE(1, "a b"), END}},
    {"table entry with continuation",
     S("example.com\n    secure match=.example.com\n"),
     64,
     {LINE(1, "example.com secure match=.example.com"), END}},

    /* CRLF line ends. */
    {"CRLF lines", S("a = 1\r\nb = 2\r\n"), 64, {LINE(1, "a = 1"), LINE(2, "b = 2"), END}},
    {"CRLF continuation",
     S("a = 1\r\n  2\r\nb = 3\r\n"),
     64,
     {LINE(1, "a = 1 2"), LINE(3, "b = 3"), END}},
    {"CRLF blank line and comment", S("\r\n# c\r\na\r\n"), 64, {LINE(3, "a"), END}},
    {"lone CR line ends are blanks, not newlines", S("a\rb\n"), 64, {LINE(1, "a\rb"), END}},

    /* A continuation with nothing before it: one error, then reading goes on. */
    {"orphan continuation",
     S("  orphan\nkey = v\n"),
     64,
     {ERR(CFLINE_ECONT, 1), LINE(2, "key = v"), END}},
    {"orphan continuation spanning lines",
     S("  orphan\n   more\n\n\tmore\nkey = v\n"),
     64,
     {ERR(CFLINE_ECONT, 1), LINE(5, "key = v"), END}},
    {"orphan continuation after comments",
     S("# c\n\n\tx\nk = v"),
     64,
     {ERR(CFLINE_ECONT, 3), LINE(4, "k = v"), END}},
    {"orphan continuation alone", S(" x"), 64, {ERR(CFLINE_ECONT, 1), END}},

    /* NUL bytes: an error for that logical line only. */
    {"NUL in a line", S("a\0b\nc\n"), 64, {ERR(CFLINE_ENUL, 1), LINE(2, "c"), END}},
    {"NUL alone on a line", S("\0\nc\n"), 64, {ERR(CFLINE_ENUL, 1), LINE(2, "c"), END}},
    {"NUL in a continuation", S("a\n b\0\n c\nd"), 64, {ERR(CFLINE_ENUL, 1), LINE(4, "d"), END}},
    {"NUL in the last line", S("a\nb\0"), 64, {LINE(1, "a"), ERR(CFLINE_ENUL, 2), END}},

    /* The caller's buffer: a line of cap - 1 bytes fits, cap bytes does not. */
    {"line of cap - 1", S("1234567\n"), 8, {LINE(1, "1234567"), END}},
    {"line of cap", S("12345678\n"), 8, {ERR(CFLINE_ETOOLONG, 1), END}},
    {"over-long line, then more",
     S("12345678\nab\n"),
     8,
     {ERR(CFLINE_ETOOLONG, 1), LINE(2, "ab"), END}},
    {"joined line of cap - 1", S("abc\n def\nx"), 8, {LINE(1, "abc def"), LINE(3, "x"), END}},
    {"joined line of cap", S("abcd\n efg\nx"), 8, {ERR(CFLINE_ETOOLONG, 1), LINE(3, "x"), END}},
    {"blanks do not count", S("1234567   \t\n"), 8, {LINE(1, "1234567"), END}},
    {"capacity 1", S("a\n"), 1, {ERR(CFLINE_ETOOLONG, 1), END}},
    {"capacity 0", S("a\n"), 0, {ERR(CFLINE_ETOOLONG, 1), END}},
    {"over-long orphan is reported as orphan",
     S("  123456789\nx"),
     8,
     {ERR(CFLINE_ECONT, 1), LINE(2, "x"), END}},
    {"over-long with NUL is reported as NUL",
     S("12345678\0\nx"),
     8,
     {ERR(CFLINE_ENUL, 1), LINE(2, "x"), END}},
};

static void check_next(const char *label, const char *in, size_t len, size_t cap,
                       const struct step *steps)
{
    struct cfreader r;
    char out[CFLINE_MAX + 1], what[64];
    /* A copy of exactly len bytes, so ASan sees any read past the text. */
    char *text = malloc(len ? len : 1);

    memcpy(text, in, len);
    cfreader_init(&r, text, len);
    for (size_t i = 0; i < MAX_STEPS; i++) {
        unsigned lineno = 0;
        const char *why = NULL;
        int rc;

        memset(out, '#', sizeof(out));
        rc = cfline_next(&r, out, cap, &lineno, &why);
        snprintf(what, sizeof(what), "result %zu rc", i + 1);
        check_int(label, what, rc, steps[i].rc);
        if (rc != steps[i].rc || rc == CFLINE_EOF)
            break;
        snprintf(what, sizeof(what), "result %zu lineno", i + 1);
        check_int(label, what, lineno, steps[i].lineno);
        if (rc == CFLINE_LINE) {
            snprintf(what, sizeof(what), "result %zu line", i + 1);
            check_str(label, what, out, steps[i].line);
            snprintf(what, sizeof(what), "result %zu within cap", i + 1);
            check_true(label, what, out[cap] == '#');
        } else {
            snprintf(what, sizeof(what), "result %zu why", i + 1);
            check_true(label, what, why != NULL && *why != '\0');
        }
    }
    /* EOF is sticky. */
    {
        unsigned lineno = 0;
        const char *why = NULL;

        check_int(label, "EOF again", cfline_next(&r, out, cap, &lineno, &why), CFLINE_EOF);
    }
    free(text);
}

/* Logical lines at CFLINE_MAX: CFLINE_MAX - 1 bytes fit a CFLINE_MAX buffer. */
static void check_next_limits(void)
{
    static char text[2 * CFLINE_MAX + 16], want[CFLINE_MAX];
    size_t n;

    memset(want, 'v', CFLINE_MAX - 1);
    want[CFLINE_MAX - 1] = '\0';

    n = (size_t)snprintf(text, sizeof(text), "%s\nnext\n", want);
    {
        const struct step steps[] = {LINE(1, want), LINE(2, "next"), END};

        check_next("line of CFLINE_MAX - 1", text, n, CFLINE_MAX, steps);
    }
    n = (size_t)snprintf(text, sizeof(text), "v%s\nnext\n", want);
    {
        const struct step steps[] = {ERR(CFLINE_ETOOLONG, 1), LINE(2, "next"), END};

        check_next("line of CFLINE_MAX", text, n, CFLINE_MAX, steps);
    }
    /* Two halves joined by one space: (CFLINE_MAX - 2) / 2 * 2 + 1 = CFLINE_MAX - 1. */
    memset(text, 'w', CFLINE_MAX / 2 - 1);
    memcpy(text + CFLINE_MAX / 2 - 1, "\n ", 2);
    memset(text + CFLINE_MAX / 2 + 1, 'w', CFLINE_MAX / 2 - 1);
    n = CFLINE_MAX;
    memcpy(want, text, CFLINE_MAX / 2 - 1);
    want[CFLINE_MAX / 2 - 1] = ' ';
    memcpy(want + CFLINE_MAX / 2, text + CFLINE_MAX / 2 + 1, CFLINE_MAX / 2 - 1);
    want[CFLINE_MAX - 1] = '\0';
    {
        const struct step steps[] = {LINE(1, want), END};

        check_next("joined line of CFLINE_MAX - 1", text, n, CFLINE_MAX, steps);
    }
    text[n] = 'w';
    {
        const struct step steps[] = {ERR(CFLINE_ETOOLONG, 1), END};

        check_next("joined line of CFLINE_MAX", text, n + 1, CFLINE_MAX, steps);
    }
}

/* cfline_keyvalue and cfline_table: {label, line, rc, key, value}. */
struct split_row {
    const char *label;
    const char *line;
    int rc;
    const char *key;
    const char *value;
};

static const struct split_row keyvalue_rows[] = {
    {"spaced", "key = value", 0, "key", "value"},
    {"unspaced", "key=value", 0, "key", "value"},
    {"space before '='", "key =value", 0, "key", "value"},
    {"space after '='", "key= value", 0, "key", "value"},
    {"tabs", "key\t=\tvalue", 0, "key", "value"},
    {"digits and underscore", "dns_servers2 = 127.0.0.1", 0, "dns_servers2", "127.0.0.1"},
    {"value with blanks inside", "listen = unix:a inet:b", 0, "listen", "unix:a inet:b"},
    {"value with '='", "key = a = b", 0, "key", "a = b"},
    {"empty value", "key =", 0, "key", ""},
    {"empty value with blank", "key = ", 0, "key", ""},
    {"trailing blanks removed", "key = value \t ", 0, "key", "value"},
    {"trailing CR removed", "key = value\r", 0, "key", "value"},
    {"one-character key", "k=v", 0, "k", "v"},

    {"empty line", "", CFLINE_ESYNTAX, NULL, NULL},
    {"no key", "= value", CFLINE_ESYNTAX, NULL, NULL},
    {"upper-case key", "Key = value", CFLINE_ESYNTAX, NULL, NULL},
    {"hyphen in key", "key-name = value", CFLINE_ESYNTAX, NULL, NULL},
    {"dot in key", "key.name = value", CFLINE_ESYNTAX, NULL, NULL},
    {"no '='", "key value", CFLINE_ESYNTAX, NULL, NULL},
    {"key alone", "key", CFLINE_ESYNTAX, NULL, NULL},
    {"key and blanks", "key  ", CFLINE_ESYNTAX, NULL, NULL},
    {"leading blank", " key = value", CFLINE_ESYNTAX, NULL, NULL},
    {"non-ASCII key", "k\xc3\xa9y = value", CFLINE_ESYNTAX, NULL, NULL},
    {"':' instead of '='", "key: value", CFLINE_ESYNTAX, NULL, NULL},
};

static const struct split_row table_rows[] = {
    {"domain and level", "example.com secure", 0, "example.com", "secure"},
    {"value with attributes", "example.com secure match=.example.com", 0, "example.com",
     "secure match=.example.com"},
    {"tab separator", "example.com\tdane-only", 0, "example.com", "dane-only"},
    {"run of blanks", "example.com  \t  may", 0, "example.com", "may"},
    {"parent key", ".example.com encrypt", 0, ".example.com", "encrypt"},
    {"one-character parts", "k v", 0, "k", "v"},

    {"empty line", "", CFLINE_ESYNTAX, NULL, NULL},
    {"key alone", "example.com", CFLINE_ESYNTAX, NULL, NULL},
    {"key and blank", "example.com ", CFLINE_ESYNTAX, NULL, NULL},
    {"key and blanks", "example.com \t ", CFLINE_ESYNTAX, NULL, NULL},
    {"leading blank", " example.com secure", CFLINE_ESYNTAX, NULL, NULL},
    {"blank alone", " ", CFLINE_ESYNTAX, NULL, NULL},
};

typedef int (*split_fn)(char *, char **, char **, const char **);

static void check_split(const char *fname, split_fn fn, const struct split_row *r)
{
    char line[256], label[160];
    char *key = NULL, *value = NULL;
    const char *why = NULL;
    size_t len = strlen(r->line);
    int rc;

    snprintf(label, sizeof(label), "%s: %s", fname, r->label);
    memcpy(line, r->line, len + 1);
    rc = fn(line, &key, &value, &why);
    check_int(label, "rc", rc, r->rc);
    if (r->rc != 0) {
        check_true(label, "why is set", why != NULL && *why != '\0');
        return;
    }
    if (rc != 0)
        return;
    check_str(label, "key", key, r->key);
    check_str(label, "value", value, r->value);
    check_true(label, "key is the start of the line", key == line);
    check_true(label, "value points into the line", value > key && value <= line + len);
}

int main(void)
{
    for (size_t i = 0; i < sizeof(next_rows) / sizeof(next_rows[0]); i++) {
        const struct next_row *r = &next_rows[i];

        check_next(r->label, r->in, r->len, r->cap, r->steps);
    }
    check_next_limits();
    for (size_t i = 0; i < sizeof(keyvalue_rows) / sizeof(keyvalue_rows[0]); i++)
        check_split("cfline_keyvalue", cfline_keyvalue, &keyvalue_rows[i]);
    for (size_t i = 0; i < sizeof(table_rows) / sizeof(table_rows[0]); i++)
        check_split("cfline_table", cfline_table, &table_rows[i]);
    return check_summary("test_cfline");
}
