/*
 * Unit tests for proto/escape.c: printable ASCII kept, '\' doubled, every other byte as
 * \xNN, output cut at a whole escape with "..." when it does not fit, never a byte past cap.
 */
#include "check.h"
#include "escape.h"

#define S(lit) lit, sizeof(lit) - 1

struct escape_row {
    const char *label;
    const char *in;
    size_t len;
    size_t cap;
    const char *want;
};

static const struct escape_row escape_rows[] = {
    /* What is kept and what is escaped. */
    {"plain text", S("example.com"), 64, "example.com"},
    {"empty input", S(""), 64, ""},
    {"space and tilde kept", S(" ~"), 64, " ~"},
    {"quote kept", S("a\"b'c"), 64, "a\"b'c"},
    {"backslash doubled", S("a\\b"), 64, "a\\\\b"},
    {"CR LF", S("a\r\nb"), 64, "a\\x0d\\x0ab"},
    {"tab", S("\t"), 64, "\\x09"},
    {"NUL", S("a\0b"), 64, "a\\x00b"},
    {"ESC", S("\x1b[1m"), 64, "\\x1b[1m"},
    {"0x1f", S("\x1f"), 64, "\\x1f"},
    {"DEL", S("\x7f"), 64, "\\x7f"},
    {"0x80", S("\x80"), 64, "\\x80"},
    {"0xff", S("\xff"), 64, "\\xff"},
    {"UTF-8", S("b\303\274cher"), 64, "b\\xc3\\xbccher"},
    {"escape text is not re-escaped", S("\\x41"), 64, "\\\\x41"},

    /* Output that fits exactly is not cut. */
    {"exact fit", S("abc"), 4, "abc"},
    {"exact fit of a longer text", S("abcdefghi"), 10, "abcdefghi"},
    {"exact fit ending in an escape", S("a\n"), 6, "a\\x0a"},
    {"exact fit ending in a backslash", S("a\\"), 4, "a\\\\"},
    {"exact fit of an escape alone", S("\n"), 5, "\\x0a"},
    {"empty input, capacity 1", S(""), 1, ""},

    /* Output that does not fit: cut at a whole escape, then "...". */
    {"one byte short", S("abcdef"), 6, "ab..."},
    {"cut long text", S("abcdefghijklmnop"), 8, "abcd..."},
    {"cut before an escape", S("a\001b"), 6, "a..."},
    {"cut keeps a whole escape", S("a\001bcdef"), 9, "a\\x01..."},
    {"cut before a doubled backslash", S("abc\\def"), 7, "abc..."},
    {"escape alone does not fit", S("\n"), 4, "..."},
    {"only the marker fits", S("abcd"), 4, "..."},
    {"too small for the marker", S("abcd"), 3, ""},
    {"capacity 1", S("abc"), 1, ""},
};

static void check_escape(const struct escape_row *r)
{
    char out[128];
    char *ret;

    memset(out, '#', sizeof(out));
    ret = escape_log(out, r->cap, r->in, r->len);
    check_true(r->label, "returns out", ret == out);
    check_str(r->label, "output", out, r->want);
    check_true(r->label, "nothing written past cap", out[r->cap] == '#');
}

int main(void)
{
    char out[4] = "###";

    for (size_t i = 0; i < sizeof(escape_rows) / sizeof(escape_rows[0]); i++)
        check_escape(&escape_rows[i]);

    /* Capacity 0: nothing is written at all. */
    check_true("capacity 0", "returns out", escape_log(out, 0, "abc", 3) == out);
    check_str("capacity 0", "untouched", out, "###");

    return check_summary("test_escape");
}
