/*
 * Unit tests for proto/sts.c: the _mta-sts TXT grammar (RFC 8461 3.1), the policy body
 * (3.2), mx pattern matching (4.1) and the Postfix match list. Rows hold raw bytes with
 * their length, so NUL bytes and missing final newlines are what the parser sees. Limits
 * (32 mx patterns, 64 KiB bodies, 255-character patterns) are built in code.
 */
#include "check.h"
#include "sts.h"

#include <stdio.h>
#include <string.h>

/* A string literal and its length, so inputs may hold NUL bytes. */
#define S(lit) lit, sizeof(lit) - 1

#define ID32 "abcdefghijklmnopqrstuvwxyz012345"
#define NAME32 "a_-.bcdefghijklmnopqrstuvwxyz012"

/* The rest of a policy row that wants STS_POLICY_INVALID. */
#define BAD STS_POLICY_INVALID, STS_MODE_NONE, 0, NULL

/* The three required fields of a policy, LF-terminated. */
#define HEAD(mode) "version: STSv1\nmode: " mode "\nmax_age: 86400\n"

struct txt_row {
    const char *label;
    const char *txt;
    size_t len;
    int rc;
    const char *id; /* on STS_TXT_OK */
};

static const struct txt_row txt_rows[] = {
    /* Well-formed records (RFC 8461 3.1). */
    {"RFC example", S("v=STSv1; id=20160831085700Z;"), STS_TXT_OK, "20160831085700Z"},
    {"no trailing delimiter", S("v=STSv1; id=abc"), STS_TXT_OK, "abc"},
    {"no blanks", S("v=STSv1;id=abc;"), STS_TXT_OK, "abc"},
    {"blanks before ';' (ABNF *WSP \";\" *WSP)", S("v=STSv1 ;id=abc ; "), STS_TXT_OK, "abc"},
    {"tabs in delimiters", S("v=STSv1\t;\tid=abc\t;\t"), STS_TXT_OK, "abc"},
    {"trailing blanks without ';' (lenient)", S("v=STSv1; id=abc  "), STS_TXT_OK, "abc"},
    {"id of 1 character", S("v=STSv1; id=1"), STS_TXT_OK, "1"},
    {"id of 32 characters", S("v=STSv1; id=" ID32), STS_TXT_OK, ID32},
    {"id keeps its case", S("v=STSv1; id=AbC123"), STS_TXT_OK, "AbC123"},
    {"extension before id", S("v=STSv1; ext=1; id=x"), STS_TXT_OK, "x"},
    {"extension after id", S("v=STSv1; id=x; rua=mailto:a@b.example"), STS_TXT_OK, "x"},
    {"extension name of 32 characters", S("v=STSv1; id=x; " NAME32 "=v"), STS_TXT_OK, "x"},
    {"extension name with _ - .", S("v=STSv1; id=x; a_b-c.d=1"), STS_TXT_OK, "x"},
    {"extension value with every allowed punctuation",
     S("v=STSv1; id=x; e=!\"#$%&'()*+,-./:<>?@[\\]^_`{|}~"), STS_TXT_OK, "x"},
    {"\"ID=\" is an extension (%s\"id=\" is case-sensitive) beside an id",
     S("v=STSv1; ID=abc; id=def"), STS_TXT_OK, "def"},

    /* Not an STS record at all: another record under _mta-sts, or another version. */
    {"empty", S(""), STS_TXT_NOT_STS, NULL},
    {"SPF record", S("v=spf1 -all"), STS_TXT_NOT_STS, NULL},
    {"lower-case version (%s\"v=STSv1\" is case-sensitive)", S("v=stsv1; id=abc"), STS_TXT_NOT_STS,
     NULL},
    {"upper-case V", S("V=STSv1; id=abc"), STS_TXT_NOT_STS, NULL},
    {"version STSv10", S("v=STSv10; id=abc"), STS_TXT_NOT_STS, NULL},
    {"version STSv1x", S("v=STSv1x; id=abc"), STS_TXT_NOT_STS, NULL},
    {"version STSv2", S("v=STSv2; id=abc"), STS_TXT_NOT_STS, NULL},
    {"leading blank", S(" v=STSv1; id=abc"), STS_TXT_NOT_STS, NULL},
    {"version not first", S("id=abc; v=STSv1"), STS_TXT_NOT_STS, NULL},
    {"prefix of the version", S("v=STS"), STS_TXT_NOT_STS, NULL},

    /* STSv1 records that break the grammar. */
    {"version alone", S("v=STSv1"), STS_TXT_INVALID, NULL},
    {"version and delimiter only", S("v=STSv1;"), STS_TXT_INVALID, NULL},
    {"missing id", S("v=STSv1; ext=1;"), STS_TXT_INVALID, NULL},
    {"upper-case ID only", S("v=STSv1; ID=abc"), STS_TXT_INVALID, NULL},
    {"empty id", S("v=STSv1; id=;"), STS_TXT_INVALID, NULL},
    {"id of 33 characters", S("v=STSv1; id=" ID32 "6"), STS_TXT_INVALID, NULL},
    {"id with '-'", S("v=STSv1; id=2024-01-01"), STS_TXT_INVALID, NULL},
    {"id with '.'", S("v=STSv1; id=1.2"), STS_TXT_INVALID, NULL},
    {"id with '='", S("v=STSv1; id=a=b"), STS_TXT_INVALID, NULL},
    {"id with a space inside", S("v=STSv1; id=a b"), STS_TXT_INVALID, NULL},
    {"id with non-ASCII", S("v=STSv1; id=caf\xc3\xa9"), STS_TXT_INVALID, NULL},
    {"duplicate id", S("v=STSv1; id=a; id=b"), STS_TXT_INVALID, NULL},
    {"duplicate identical id", S("v=STSv1; id=a; id=a"), STS_TXT_INVALID, NULL},
    {"second v field", S("v=STSv1; id=a; v=STSv1"), STS_TXT_INVALID, NULL},
    {"no delimiter after version", S("v=STSv1 id=abc"), STS_TXT_INVALID, NULL},
    {"comma as delimiter", S("v=STSv1, id=abc"), STS_TXT_NOT_STS, NULL},
    {"comma between fields", S("v=STSv1; id=abc, x=1"), STS_TXT_INVALID, NULL},
    {"empty field", S("v=STSv1;; id=abc"), STS_TXT_INVALID, NULL},
    {"two trailing delimiters", S("v=STSv1; id=abc;;"), STS_TXT_INVALID, NULL},
    {"field without '='", S("v=STSv1; id=abc; flag"), STS_TXT_INVALID, NULL},
    {"field with empty value", S("v=STSv1; id=abc; e="), STS_TXT_INVALID, NULL},
    {"field with blanks around '='", S("v=STSv1; id = abc"), STS_TXT_INVALID, NULL},
    {"extension name of 33 characters", S("v=STSv1; id=x; " NAME32 "3=v"), STS_TXT_INVALID, NULL},
    {"extension name starting with '_'", S("v=STSv1; id=x; _e=1"), STS_TXT_INVALID, NULL},
    {"extension value with '='", S("v=STSv1; id=x; e=a=b"), STS_TXT_INVALID, NULL},
    {"extension value with a control character", S("v=STSv1; id=x; e=a\x01"), STS_TXT_INVALID,
     NULL},
    {"extension value with DEL", S("v=STSv1; id=x; e=\x7f"), STS_TXT_INVALID, NULL},
    {"NUL inside (two strings joined badly)", S("v=STSv1; id=abc\0def"), STS_TXT_INVALID, NULL},
    {"NUL after the version", S("v=STSv1\0; id=abc"), STS_TXT_NOT_STS, NULL},
    {"CRLF at the end", S("v=STSv1; id=abc\r\n"), STS_TXT_INVALID, NULL},
};

static void check_txt_row(const struct txt_row *r)
{
    char id[STS_ID_MAX + 1];
    const char *why = NULL;
    int rc;

    memset(id, 'Z', sizeof(id));
    rc = sts_txt_parse(r->txt, r->len, id, &why);
    check_int(r->label, "rc", rc, r->rc);
    if (r->rc == STS_TXT_OK && rc == STS_TXT_OK)
        check_str(r->label, "id", id, r->id);
    if (r->rc != STS_TXT_OK) {
        check_true(r->label, "why is set", why != NULL && *why != '\0');
        check_str(r->label, "id is empty", id, "");
    }
}

struct policy_row {
    const char *label;
    const char *body;
    size_t len;
    int rc;
    /* On STS_POLICY_OK: */
    enum sts_mode mode;
    uint32_t max_age;
    const char *mx; /* the stored patterns joined by spaces */
};

static const struct policy_row policy_rows[] = {
    /* Well-formed policies (RFC 8461 3.2). */
    {"RFC example",
     S("version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\n"
       "mx: backupmx.example.com\nmax_age: 604800\n"),
     STS_POLICY_OK, STS_MODE_ENFORCE, 604800,
     "mail.example.com *.example.net backupmx.example.com"},
    {"CRLF lines", S("version: STSv1\r\nmode: testing\r\nmx: mx.example.com\r\nmax_age: 86400\r\n"),
     STS_POLICY_OK, STS_MODE_TESTING, 86400, "mx.example.com"},
    {"mixed LF and CRLF", S("version: STSv1\nmode: enforce\r\nmx: mx.example.com\nmax_age: 1\r\n"),
     STS_POLICY_OK, STS_MODE_ENFORCE, 1, "mx.example.com"},
    {"no final newline", S("version: STSv1\nmode: enforce\nmax_age: 60\nmx: mx.example.com"),
     STS_POLICY_OK, STS_MODE_ENFORCE, 60, "mx.example.com"},
    {"no final CRLF", S("version: STSv1\r\nmode: none\r\nmax_age: 60"), STS_POLICY_OK,
     STS_MODE_NONE, 60, ""},
    {"mode none without mx", S(HEAD("none")), STS_POLICY_OK, STS_MODE_NONE, 86400, ""},
    {"mode none with mx", S(HEAD("none") "mx: mx.example.com\n"), STS_POLICY_OK, STS_MODE_NONE,
     86400, "mx.example.com"},
    {"fields in any order", S("mx: mx.example.com\nmax_age: 5\nmode: testing\nversion: STSv1\n"),
     STS_POLICY_OK, STS_MODE_TESTING, 5, "mx.example.com"},
    {"no blank after ':'", S("version:STSv1\nmode:enforce\nmax_age:7\nmx:mx.example.com\n"),
     STS_POLICY_OK, STS_MODE_ENFORCE, 7, "mx.example.com"},
    {"tabs after ':'", S("version:\tSTSv1\nmode:\t enforce\nmax_age: \t7\nmx:\tmx.example.com\n"),
     STS_POLICY_OK, STS_MODE_ENFORCE, 7, "mx.example.com"},
    {"trailing blanks (ABNF field *WSP)",
     S("version: STSv1 \nmode: enforce\t\nmax_age: 7  \r\nmx: mx.example.com \t\n"), STS_POLICY_OK,
     STS_MODE_ENFORCE, 7, "mx.example.com"},
    {"blanks before ':' (lenient)", S("version : STSv1\nmode\t: enforce\nmax_age: 7\nmx : a.b\n"),
     STS_POLICY_OK, STS_MODE_ENFORCE, 7, "a.b"},
    {"leading blanks (lenient)", S("  version: STSv1\n\tmode: enforce\n max_age: 7\n mx: a.b\n"),
     STS_POLICY_OK, STS_MODE_ENFORCE, 7, "a.b"},
    {"blank lines (lenient)",
     S("\nversion: STSv1\n\n \t\nmode: enforce\r\n\r\nmax_age: 7\n"
       "mx: a.b\n\n\n"),
     STS_POLICY_OK, STS_MODE_ENFORCE, 7, "a.b"},
    {"UTF-8 byte order mark (lenient)",
     S("\xef\xbb\xbfversion: STSv1\n"
       "mode: enforce\n"
       "max_age: 7\nmx: a.b\n"),
     STS_POLICY_OK, STS_MODE_ENFORCE, 7, "a.b"},
    {"unknown keys ignored",
     S(HEAD("enforce") "mx: a.b\nfoo: bar\nx-y.z_1: any thing \xc3\xa9\n"
                       "Mode: bogus\nMX: bogus\n"),
     STS_POLICY_OK, STS_MODE_ENFORCE, 86400, "a.b"},
    {"unknown key with empty value", S(HEAD("enforce") "mx: a.b\nnote:\n"), STS_POLICY_OK,
     STS_MODE_ENFORCE, 86400, "a.b"},

    /* max_age: 1*10DIGIT, 0 to 31557600. */
    {"max_age 0", S("version: STSv1\nmode: none\nmax_age: 0\n"), STS_POLICY_OK, STS_MODE_NONE, 0,
     ""},
    {"max_age 31557600", S("version: STSv1\nmode: none\nmax_age: 31557600\n"), STS_POLICY_OK,
     STS_MODE_NONE, 31557600, ""},
    {"max_age with 10 digits", S("version: STSv1\nmode: none\nmax_age: 0000086400\n"),
     STS_POLICY_OK, STS_MODE_NONE, 86400, ""},
    {"max_age 31557601", S("version: STSv1\nmode: none\nmax_age: 31557601\n"), BAD},
    {"max_age 9999999999", S("version: STSv1\nmode: none\nmax_age: 9999999999\n"), BAD},
    {"max_age with 11 digits", S("version: STSv1\nmode: none\nmax_age: 00000086400\n"), BAD},
    {"max_age negative", S("version: STSv1\nmode: none\nmax_age: -1\n"), BAD},
    {"max_age with '+'", S("version: STSv1\nmode: none\nmax_age: +1\n"), BAD},
    {"max_age with a unit", S("version: STSv1\nmode: none\nmax_age: 86400s\n"), BAD},
    {"max_age in hex", S("version: STSv1\nmode: none\nmax_age: 0x10\n"), BAD},
    {"max_age with a space inside", S("version: STSv1\nmode: none\nmax_age: 86 400\n"), BAD},
    {"max_age empty", S("version: STSv1\nmode: none\nmax_age:\n"), BAD},

    /* version and mode are case-sensitive (%s"..." in the ABNF). */
    {"version STSv2", S("version: STSv2\nmode: none\nmax_age: 1\n"), BAD},
    {"version stsv1", S("version: stsv1\nmode: none\nmax_age: 1\n"), BAD},
    {"version STSv10", S("version: STSv10\nmode: none\nmax_age: 1\n"), BAD},
    {"version empty", S("version:\nmode: none\nmax_age: 1\n"), BAD},
    {"mode Enforce", S(HEAD("Enforce") "mx: a.b\n"), BAD},
    {"mode report", S(HEAD("report") "mx: a.b\n"), BAD},
    {"mode with a suffix", S(HEAD("enforced") "mx: a.b\n"), BAD},
    {"key Version (keys are case-sensitive)", S("Version: STSv1\nmode: none\nmax_age: 1\n"), BAD},

    /* Required and single-valued fields. */
    {"empty body", S(""), BAD},
    {"blank lines only", S("\n\r\n \n"), BAD},
    {"missing version", S("mode: none\nmax_age: 1\n"), BAD},
    {"missing mode", S("version: STSv1\nmax_age: 1\n"), BAD},
    {"missing max_age", S("version: STSv1\nmode: none\n"), BAD},
    {"enforce without mx", S(HEAD("enforce")), BAD},
    {"testing without mx", S(HEAD("testing")), BAD},
    {"duplicate version", S(HEAD("none") "version: STSv1\n"), BAD},
    {"duplicate mode", S(HEAD("none") "mode: none\n"), BAD},
    {"duplicate max_age", S(HEAD("none") "max_age: 86400\n"), BAD},

    /* Lines that are not "name: value". */
    {"line without ':'", S(HEAD("none") "garbage\n"), BAD},
    {"line with '=' instead of ':'", S(HEAD("none") "foo=bar\n"), BAD},
    {"empty key", S(HEAD("none") ": value\n"), BAD},
    {"key starting with '_'", S(HEAD("none") "_x: 1\n"), BAD},
    {"key with a space inside", S(HEAD("none") "max age: 1\n"), BAD},
    {"key of 33 characters", S(HEAD("none") NAME32 "3: 1\n"), BAD},
    {"key of 32 characters", S(HEAD("none") NAME32 ": 1\n"), STS_POLICY_OK, STS_MODE_NONE, 86400,
     ""},
    {"comment line", S(HEAD("none") "# comment\n"), BAD},
    {"HTML instead of a policy", S("<html><body>Not Found</body></html>\n"), BAD},
    {"JSON instead of a policy", S("{\"version\": \"STSv1\"}\n"), BAD},

    /* Control characters. */
    {"NUL in a value", S("version: STSv1\nmode: none\0\nmax_age: 1\n"), BAD},
    {"NUL in an ignored line", S(HEAD("none") "foo: b\0r\n"), BAD},
    {"NUL alone at the end", S(HEAD("none") "\0"), BAD},
    {"lone CR as line end", S("version: STSv1\rmode: none\rmax_age: 1\r"), BAD},
    {"CR CR LF", S(HEAD("none") "foo: bar\r\r\n"), BAD},
    {"escape character", S(HEAD("none") "foo: \x1b[1m\n"), BAD},
    {"DEL", S(HEAD("none") "foo: \x7f\n"), BAD},

    /* mx patterns: ["*."] Domain (RFC 5321 4.1.2), normalised. */
    {"mx upper case lowered", S(HEAD("enforce") "mx: MX1.Example.COM\nmx: *.EXAMPLE.net\n"),
     STS_POLICY_OK, STS_MODE_ENFORCE, 86400, "mx1.example.com *.example.net"},
    {"mx trailing dot dropped", S(HEAD("enforce") "mx: mx.example.com.\nmx: *.example.net.\n"),
     STS_POLICY_OK, STS_MODE_ENFORCE, 86400, "mx.example.com *.example.net"},
    {"mx duplicates kept once", S(HEAD("enforce") "mx: a.b\nmx: A.B\nmx: a.b.\nmx: *.a.b\n"),
     STS_POLICY_OK, STS_MODE_ENFORCE, 86400, "a.b *.a.b"},
    {"mx single label", S(HEAD("enforce") "mx: localhost\n"), STS_POLICY_OK, STS_MODE_ENFORCE,
     86400, "localhost"},
    {"mx with digits and hyphens", S(HEAD("enforce") "mx: 1-mx.x-1.example\n"), STS_POLICY_OK,
     STS_MODE_ENFORCE, 86400, "1-mx.x-1.example"},
    {"mx A-label", S(HEAD("enforce") "mx: mx.xn--bcher-kva.example\n"), STS_POLICY_OK,
     STS_MODE_ENFORCE, 86400, "mx.xn--bcher-kva.example"},
    {"mx wildcard on a TLD", S(HEAD("enforce") "mx: *.com\n"), STS_POLICY_OK, STS_MODE_ENFORCE,
     86400, "*.com"},
    {"mx IPv4 address kept (Domain grammar allows digits)", S(HEAD("enforce") "mx: 192.0.2.1\n"),
     STS_POLICY_OK, STS_MODE_ENFORCE, 86400, "192.0.2.1"},
    {"mx IPv4 address literal", S(HEAD("enforce") "mx: [192.0.2.1]\n"), BAD},
    {"mx IPv6 address literal", S(HEAD("enforce") "mx: [IPv6:2001:db8::1]\n"), BAD},
    {"mx IPv6 address", S(HEAD("enforce") "mx: 2001:db8::1\n"), BAD},
    {"mx '*' alone", S(HEAD("enforce") "mx: *\n"), BAD},
    {"mx '*.' alone", S(HEAD("enforce") "mx: *.\n"), BAD},
    {"mx '*' inside a label", S(HEAD("enforce") "mx: mx*.example.com\n"), BAD},
    {"mx '*' as a middle label", S(HEAD("enforce") "mx: mx.*.example.com\n"), BAD},
    {"mx two wildcards", S(HEAD("enforce") "mx: *.*.example.com\n"), BAD},
    {"mx '*' without a dot", S(HEAD("enforce") "mx: *example.com\n"), BAD},
    {"mx empty", S(HEAD("enforce") "mx:\n"), BAD},
    {"mx blanks only", S(HEAD("enforce") "mx:   \n"), BAD},
    {"mx two names on one line", S(HEAD("enforce") "mx: a.example b.example\n"), BAD},
    {"mx list with commas", S(HEAD("enforce") "mx: a.example,b.example\n"), BAD},
    {"mx with an underscore", S(HEAD("enforce") "mx: mx_1.example.com\n"), BAD},
    {"mx leading dot", S(HEAD("enforce") "mx: .example.com\n"), BAD},
    {"mx empty label", S(HEAD("enforce") "mx: mx..example.com\n"), BAD},
    {"mx two trailing dots", S(HEAD("enforce") "mx: mx.example.com..\n"), BAD},
    {"mx label starting with '-'", S(HEAD("enforce") "mx: -mx.example.com\n"), BAD},
    {"mx label ending with '-'", S(HEAD("enforce") "mx: mx-.example.com\n"), BAD},
    {"mx U-label",
     S(HEAD("enforce") "mx: mx.b\xc3\xbc"
                       "cher.example\n"),
     BAD},
    {"mx with a port", S(HEAD("enforce") "mx: mx.example.com:25\n"), BAD},
    {"mx URL", S(HEAD("enforce") "mx: https://mx.example.com/\n"), BAD},
    {"bad mx makes mode none invalid too", S(HEAD("none") "mx: a..b\n"), BAD},
};

/* Join the stored patterns with spaces. */
static void join_mx(const struct sts_policy *p, char *out, size_t outlen)
{
    size_t o = 0;

    out[0] = '\0';
    for (const char *m = sts_policy_mx(p, 0); m; m = sts_policy_next(p, m))
        o += (size_t)snprintf(out + o, outlen - o, "%s%s", o ? " " : "", m);
}

static void check_policy_row(const struct policy_row *r)
{
    struct sts_policy p;
    char got[STS_MAX_MX * (STS_PATTERN_MAX + 1) + 1];
    const char *why = NULL;
    int rc = sts_policy_parse(r->body, r->len, &p, &why);

    check_int(r->label, "rc", rc, r->rc);
    if (r->rc != STS_POLICY_OK) {
        check_true(r->label, "why is set", why != NULL && *why != '\0');
        return;
    }
    if (rc != STS_POLICY_OK) {
        printf("     why: %s\n", why ? why : "(null)");
        return;
    }
    check_str(r->label, "mode", sts_mode_name(p.mode), sts_mode_name(r->mode));
    check_int(r->label, "max_age", p.max_age, r->max_age);
    join_mx(&p, got, sizeof(got));
    check_str(r->label, "mx", got, r->mx);
}

/* Parse a policy of the given mode with the mx values in mx (a NULL-terminated list). */
static int make_policy(const char *mode, const char *const *mx, struct sts_policy *p)
{
    char body[STS_BODY_MAX];
    size_t o;
    const char *why;

    o = (size_t)snprintf(body, sizeof(body), "version: STSv1\nmode: %s\nmax_age: 86400\n", mode);
    for (; *mx; mx++)
        o += (size_t)snprintf(body + o, sizeof(body) - o, "mx: %s\n", *mx);
    return sts_policy_parse(body, o, p, &why);
}

struct match_row {
    const char *label;
    const char *mx[4];
    const char *host;
    int want;
};

static const struct match_row match_rows[] = {
    /* RFC 8461 4.1: a wildcard matches exactly one leftmost label. */
    {"wildcard, one label", {"*.example.com"}, "mx.example.com", 1},
    {"wildcard, the base name", {"*.example.com"}, "example.com", 0},
    {"wildcard, two labels", {"*.example.com"}, "a.b.example.com", 0},
    {"wildcard, other domain", {"*.example.com"}, "mx.example.net", 0},
    {"wildcard, suffix inside a label", {"*.example.com"}, "mx.badexample.com", 0},
    {"wildcard, suffix without a dot", {"*.example.com"}, "mxexample.com", 0},
    {"wildcard, empty first label", {"*.example.com"}, ".example.com", 0},
    {"wildcard, host in upper case", {"*.example.com"}, "MX.Example.COM", 1},
    {"wildcard, host with a trailing dot", {"*.example.com"}, "mx.example.com.", 1},
    {"wildcard written in upper case", {"*.EXAMPLE.COM"}, "mx.example.com", 1},

    /* Exact patterns. */
    {"exact", {"mx.example.com"}, "mx.example.com", 1},
    {"exact, case-insensitive", {"mx.example.com"}, "Mx.EXAMPLE.com", 1},
    {"exact pattern in upper case", {"MX.EXAMPLE.COM"}, "mx.example.com", 1},
    {"exact, host with a trailing dot", {"mx.example.com"}, "mx.example.com.", 1},
    {"exact, subdomain of the pattern", {"mx.example.com"}, "a.mx.example.com", 0},
    {"exact, parent of the pattern", {"mx.example.com"}, "example.com", 0},
    {"exact, prefix of the host", {"mx.example.com"}, "mx.example.co", 0},
    {"exact, host longer", {"mx.example.com"}, "mx.example.comx", 0},
    {"second of several patterns", {"a.example", "*.example.net", "b.example"}, "x.example.net", 1},
    {"none of several patterns", {"a.example", "*.example.net", "b.example"}, "c.example", 0},
    {"empty host", {"*.example.com"}, "", 0},
    {"dot host", {"*.example.com"}, ".", 0},

    /* IP literals never match. */
    {"IPv4 pattern and host", {"192.0.2.1"}, "192.0.2.1", 0},
    {"IPv4 host under a wildcard", {"*.0.2.1"}, "192.0.2.1", 0},
    {"bracketed host", {"mx.example.com"}, "[192.0.2.1]", 0},
    {"IPv6 host", {"mx.example.com"}, "2001:db8::1", 0},
    {"IPv4 pattern beside a name", {"192.0.2.1", "mx.example.com"}, "mx.example.com", 1},
};

static void check_match_row(const struct match_row *r)
{
    struct sts_policy p;

    if (!check_int(r->label, "policy parses", make_policy("enforce", r->mx, &p), STS_POLICY_OK))
        return;
    check_int(r->label, "match", sts_mx_match(&p, r->host), r->want);
}

struct list_row {
    const char *label;
    const char *mode;
    const char *mx[5];
    size_t outlen;
    const char *want; /* NULL when -1 is wanted */
};

static const struct list_row list_rows[] = {
    {"one name", "enforce", {"mx.example.com"}, 256, "mx.example.com"},
    {"wildcard becomes a leading dot", "enforce", {"*.example.net"}, 256, ".example.net"},
    {"RFC example",
     "enforce",
     {"mail.example.com", "*.example.net", "backupmx.example.com"},
     256,
     "mail.example.com:.example.net:backupmx.example.com"},
    {"upper case lowered", "testing", {"MX.Example.COM"}, 256, "mx.example.com"},
    {"IPv4 pattern left out", "enforce", {"192.0.2.1", "mx.example.com"}, 256, "mx.example.com"},
    {"Postfix keywords left out",
     "enforce",
     {"hostname", "nexthop", "dot-nexthop", "a.example"},
     256,
     "a.example"},
    {"wildcard keywords kept", "enforce", {"*.hostname", "*.nexthop"}, 256, ".hostname:.nexthop"},
    {"only an IPv4 pattern", "enforce", {"192.0.2.1"}, 256, NULL},
    {"only a Postfix keyword", "enforce", {"nexthop"}, 256, NULL},
    {"empty list (mode none)", "none", {NULL}, 256, NULL},
    {"exact fit", "enforce", {"a.example", "*.b.example"}, 21, "a.example:.b.example"},
    {"one byte short", "enforce", {"a.example", "*.b.example"}, 20, NULL},
    {"first fits, second does not", "enforce", {"a.example", "*.b.example"}, 12, NULL},
    {"no room at all", "enforce", {"a.example"}, 0, NULL},
    {"room for the NUL only", "enforce", {"a.example"}, 1, NULL},
};

static void check_list_row(const struct list_row *r)
{
    struct sts_policy p;
    char out[300];
    int n;

    if (!check_int(r->label, "policy parses", make_policy(r->mode, r->mx, &p), STS_POLICY_OK))
        return;
    memset(out, 'Z', sizeof(out));
    n = sts_match_list(&p, out, r->outlen);
    if (r->want == NULL) {
        check_int(r->label, "rc", n, -1);
    } else if (check_int(r->label, "rc", n, (long long)strlen(r->want))) {
        check_str(r->label, "list", out, r->want);
    }
    /* Nothing is written past outlen. */
    check_true(r->label, "no write past outlen", out[r->outlen] == 'Z');
}

/* Limits built in code: the mx count, the body size and the longest pattern. */
static void check_limits(void)
{
    static const char *const modes[] = {"enforce", "testing", "none"};
    char names[STS_MAX_MX + 2][32], body[STS_BODY_MAX + 2];
    const char *mx[STS_MAX_MX + 3];
    struct sts_policy p;
    const char *why;
    int n;

    for (int i = 0; i < STS_MAX_MX + 2; i++) {
        snprintf(names[i], sizeof(names[i]), "mx%d.example.com", i);
        mx[i] = names[i];
    }
    mx[STS_MAX_MX] = NULL;
    check_int("32 mx lines", "rc", make_policy("enforce", mx, &p), STS_POLICY_OK);
    check_int("32 mx lines", "nmx", p.nmx, STS_MAX_MX);
    mx[STS_MAX_MX] = names[STS_MAX_MX];
    mx[STS_MAX_MX + 1] = NULL;
    check_int("33 mx lines", "rc", make_policy("enforce", mx, &p), STS_POLICY_INVALID);
    check_int("33 mx lines in mode none", "rc", make_policy("none", mx, &p), STS_POLICY_INVALID);
    for (int i = 0; i < STS_MAX_MX + 2; i++)
        mx[i] = "MX.example.com";
    mx[STS_MAX_MX + 2] = NULL;
    check_int("34 identical mx lines", "rc", make_policy("enforce", mx, &p), STS_POLICY_OK);
    check_int("34 identical mx lines", "nmx", p.nmx, 1);

    /* The match list of 32 long names does not fit a small buffer, and does fit a big one. */
    {
        char list[STS_MAX_MX * (STS_PATTERN_MAX + 1)];

        for (int i = 0; i < STS_MAX_MX; i++)
            mx[i] = names[i];
        mx[STS_MAX_MX] = NULL;
        check_int("32 mx lines", "rc", make_policy("enforce", mx, &p), STS_POLICY_OK);
        n = sts_match_list(&p, list, sizeof(list));
        check_true("32 mx lines", "list fits", n > 0 && (size_t)n == strlen(list));
        check_int("32 mx lines", "list in 100 bytes", sts_match_list(&p, list, 100), -1);
    }

    /* A body of STS_BODY_MAX bytes is parsed; one byte more is refused unread. */
    {
        static const char head[] = "version: STSv1\nmode: none\nmax_age: 1\n";
        size_t hl = sizeof(head) - 1;

        memcpy(body, head, hl);
        memset(body + hl, '\n', sizeof(body) - hl);
        check_int("body of 64 KiB", "rc", sts_policy_parse(body, STS_BODY_MAX, &p, &why),
                  STS_POLICY_OK);
        check_int("body of 64 KiB + 1", "rc", sts_policy_parse(body, STS_BODY_MAX + 1, &p, &why),
                  STS_POLICY_INVALID);
    }

    /* The longest pattern: "*." and a 253-character name (labels of 63, 63, 63, 61). */
    {
        char name[DOMAIN_MAX + 4], pat[DOMAIN_MAX + 48], list[STS_PATTERN_MAX + 1];
        const char *one[2] = {pat, NULL};
        size_t o = 0;

        for (int l = 0; l < 4; l++) {
            size_t len = l < 3 ? 63 : 61;

            memset(name + o, 'a' + l, len);
            o += len;
            name[o++] = '.';
        }
        name[--o] = '\0';
        check_int("253-character name", "length", (long long)strlen(name), DOMAIN_MAX);
        snprintf(pat, sizeof(pat), "*.%s", name);
        check_int("255-character pattern", "rc", make_policy("enforce", one, &p), STS_POLICY_OK);
        check_int("255-character pattern", "length", (long long)strlen(sts_policy_mx(&p, 0)),
                  STS_PATTERN_MAX);
        check_int("255-character pattern", "list", sts_match_list(&p, list, sizeof(list)),
                  STS_PATTERN_MAX - 1);
        snprintf(pat, sizeof(pat), "*.%s.", name);
        check_int("255-character pattern and a dot", "rc", make_policy("enforce", one, &p),
                  STS_POLICY_OK);
        snprintf(pat, sizeof(pat), "*.x%s", name);
        check_int("256-character pattern", "rc", make_policy("enforce", one, &p),
                  STS_POLICY_INVALID);
        memset(name, 'a', 64);
        name[64] = '\0';
        snprintf(pat, sizeof(pat), "%s.example", name);
        check_int("64-character label", "rc", make_policy("enforce", one, &p), STS_POLICY_INVALID);
        name[63] = '\0';
        snprintf(pat, sizeof(pat), "%s.example", name);
        check_int("63-character label", "rc", make_policy("enforce", one, &p), STS_POLICY_OK);
    }

    /* Mode names, and a failed parse leaves a defined, empty policy. */
    for (size_t i = 0; i < 3; i++) {
        const char *one[2] = {"a.example", NULL};

        check_int(modes[i], "parses", make_policy(modes[i], one, &p), STS_POLICY_OK);
        check_str(modes[i], "mode name", sts_mode_name(p.mode), modes[i]);
    }
    check_str("unknown mode", "mode name", sts_mode_name((enum sts_mode)42), "unknown");
}

/* How long a policy stays cached: its max_age, but at least an hour (sts.h). */
static const struct {
    const char *label;
    uint32_t max_age, want;
} lifetime_rows[] = {
    {"max_age 0: the floor", 0, 3600},
    {"max_age 1: the floor", 1, 3600},
    {"max_age 3599: the floor", 3599, 3600},
    {"max_age 3600", 3600, 3600},
    {"max_age 3601", 3601, 3601},
    {"max_age one day", 86400, 86400},
    {"max_age the largest", STS_MAX_AGE_MAX, STS_MAX_AGE_MAX},
};

int main(void)
{
    for (size_t i = 0; i < sizeof(lifetime_rows) / sizeof(lifetime_rows[0]); i++)
        check_int(lifetime_rows[i].label, "cache lifetime",
                  sts_cache_lifetime(lifetime_rows[i].max_age), lifetime_rows[i].want);
    for (size_t i = 0; i < sizeof(txt_rows) / sizeof(txt_rows[0]); i++)
        check_txt_row(&txt_rows[i]);
    for (size_t i = 0; i < sizeof(policy_rows) / sizeof(policy_rows[0]); i++)
        check_policy_row(&policy_rows[i]);
    for (size_t i = 0; i < sizeof(match_rows) / sizeof(match_rows[0]); i++)
        check_match_row(&match_rows[i]);
    for (size_t i = 0; i < sizeof(list_rows) / sizeof(list_rows[0]); i++)
        check_list_row(&list_rows[i]);
    check_limits();
    return check_summary("test_sts");
}
