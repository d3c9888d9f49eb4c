/*
 * Unit tests for proto/domain.c: socketmap key normalisation (case, trailing dot, ".parent"
 * probes, label and name limits at and one past the limit, LDH and hyphen rules, addresses,
 * IDN through libidn2, invalid UTF-8, NUL) and domain_parent().
 */
#include "check.h"
#include "domain.h"

#define S(lit) lit, sizeof(lit) - 1

struct norm_row {
    const char *label;
    const char *in;
    size_t len;
    int rc;
    const char *out; /* on DOMAIN_OK and DOMAIN_PARENT */
};

static void check_normalize(const struct norm_row *r)
{
    char out[DOMAIN_MAX + 1 + 16];
    const char *why = NULL;
    int rc;

    memset(out, '#', sizeof(out));
    rc = domain_normalize(r->in, r->len, out, &why);
    check_int(r->label, "rc", rc, r->rc);
    if (r->rc < 0) {
        check_true(r->label, "why is set", why != NULL && *why != '\0');
        return;
    }
    if (rc < 0)
        return;
    check_str(r->label, "out", out, r->out);
    check_true(r->label, "out within DOMAIN_MAX + 1 bytes", out[DOMAIN_MAX + 1] == '#');
    /* A normalised name is a fixed point: normalising it again changes nothing. */
    {
        char again[DOMAIN_MAX + 1];

        check_int(r->label, "renormalise rc", domain_normalize(out, strlen(out), again, &why),
                  DOMAIN_OK);
        check_str(r->label, "renormalised", again, out);
    }
}

static const struct norm_row norm_rows[] = {
    /* Ordinary names and case. */
    {"lower case", S("example.com"), DOMAIN_OK, "example.com"},
    {"upper case", S("EXAMPLE.COM"), DOMAIN_OK, "example.com"},
    {"mixed case", S("Mail.ExAmPle.Org"), DOMAIN_OK, "mail.example.org"},
    {"single label", S("localhost"), DOMAIN_OK, "localhost"},
    {"one-character labels", S("a.b.c"), DOMAIN_OK, "a.b.c"},
    {"digits in labels", S("123.example.c0m"), DOMAIN_OK, "123.example.c0m"},
    {"digits then letters in the TLD", S("example.1a"), DOMAIN_OK, "example.1a"},
    {"all-digit label that is not the last", S("1.example.com"), DOMAIN_OK, "1.example.com"},

    /* Trailing and leading dots. */
    {"trailing dot removed", S("example.com."), DOMAIN_OK, "example.com"},
    {"upper case and trailing dot", S("EXAMPLE.COM."), DOMAIN_OK, "example.com"},
    {"double trailing dot", S("example.com.."), DOMAIN_EINVAL, NULL},
    {"parent probe", S(".example.com"), DOMAIN_PARENT, "example.com"},
    {"parent probe, upper case", S(".EXAMPLE.com"), DOMAIN_PARENT, "example.com"},
    {"parent probe with trailing dot", S(".example.com."), DOMAIN_PARENT, "example.com"},
    {"parent probe of a TLD", S(".com"), DOMAIN_PARENT, "com"},
    {"double leading dot", S("..example.com"), DOMAIN_EINVAL, NULL},
    {"empty label inside", S("a..b"), DOMAIN_EINVAL, NULL},

    /* Empty keys. */
    {"empty key", S(""), DOMAIN_EINVAL, NULL},
    {"a dot alone", S("."), DOMAIN_EINVAL, NULL},
    {"two dots", S(".."), DOMAIN_EINVAL, NULL},
    {"three dots", S("..."), DOMAIN_EINVAL, NULL},

    /* Hyphens: inside a label only (RFC 5890 2.3.1). */
    {"hyphen inside", S("my-host.example"), DOMAIN_OK, "my-host.example"},
    {"double hyphen inside", S("a--b.example"), DOMAIN_OK, "a--b.example"},
    {"A-label passes", S("xn--bcher-kva.example"), DOMAIN_OK, "xn--bcher-kva.example"},
    {"A-label in upper case", S("XN--BCHER-KVA.EXAMPLE"), DOMAIN_OK, "xn--bcher-kva.example"},
    {"leading hyphen", S("-host.example"), DOMAIN_EINVAL, NULL},
    {"trailing hyphen", S("host-.example"), DOMAIN_EINVAL, NULL},
    {"hyphen ending the TLD", S("host.example-"), DOMAIN_EINVAL, NULL},
    {"hyphen starting the TLD", S("host.-example"), DOMAIN_EINVAL, NULL},
    {"a hyphen alone", S("-"), DOMAIN_EINVAL, NULL},
    {"hyphen label", S("a.-.b"), DOMAIN_EINVAL, NULL},

    /* Addresses and things that are not host names. */
    {"IPv4 address", S("192.0.2.1"), DOMAIN_EINVAL, NULL},
    {"IPv4 address with trailing dot", S("192.0.2.1."), DOMAIN_EINVAL, NULL},
    {"all-digit single label", S("12345"), DOMAIN_EINVAL, NULL},
    {"all-digit TLD", S("example.123"), DOMAIN_EINVAL, NULL},
    {"bracketed IPv4 literal", S("[1.2.3.4]"), DOMAIN_EINVAL, NULL},
    {"bracketed IPv6 literal", S("[IPv6:2001:db8::1]"), DOMAIN_EINVAL, NULL},
    {"IPv6 address", S("2001:db8::1"), DOMAIN_EINVAL, NULL},
    {"underscore", S("_mta-sts.example.com"), DOMAIN_EINVAL, NULL},
    {"underscore inside", S("my_host.example"), DOMAIN_EINVAL, NULL},
    {"space", S("exa mple.com"), DOMAIN_EINVAL, NULL},
    {"leading space", S(" example.com"), DOMAIN_EINVAL, NULL},
    {"email address", S("user@example.com"), DOMAIN_EINVAL, NULL},
    {"wildcard", S("*.example.com"), DOMAIN_EINVAL, NULL},
    {"slash", S("example.com/x"), DOMAIN_EINVAL, NULL},
    {"CR LF", S("example.com\r\n"), DOMAIN_EINVAL, NULL},
    {"tab", S("example\t.com"), DOMAIN_EINVAL, NULL},
    {"DEL", S("example\x7f.com"), DOMAIN_EINVAL, NULL},

    /* NUL bytes anywhere. */
    {"NUL inside", S("exam\0ple.com"), DOMAIN_EINVAL, NULL},
    {"NUL at the end", S("example.com\0"), DOMAIN_EINVAL, NULL},
    {"NUL alone", S("\0"), DOMAIN_EINVAL, NULL},
    {"NUL after a parent dot", S(".\0"), DOMAIN_EINVAL, NULL},
    {"NUL in a non-ASCII key", S("b\xc3\xbc\0cher.example"), DOMAIN_EINVAL, NULL},

    /* IDN: U-labels become A-labels (IDNA2008, UTS #46 non-transitional). */
    {"U-label", S("b\303\274cher.example"), DOMAIN_OK, "xn--bcher-kva.example"},
    {"ideographic full stops, trailing one is the root",
     S("b\303\274cher\343\200\202example\343\200\202"), DOMAIN_OK, "xn--bcher-kva.example"},
    {"ASCII root dot after an ideographic one", S("b\303\274cher\343\200\202example\343\200\202."),
     DOMAIN_EINVAL, NULL},
    {"U-label in upper case", S("B\303\234CHER.EXAMPLE"), DOMAIN_OK, "xn--bcher-kva.example"},
    {"U-label with trailing dot", S("b\303\274cher.example."), DOMAIN_OK, "xn--bcher-kva.example"},
    {"U-label parent probe", S(".b\303\274cher.example"), DOMAIN_PARENT, "xn--bcher-kva.example"},
    {"sharp s kept (non-transitional)", S("fa\xc3\x9f.de"), DOMAIN_OK, "xn--fa-hia.de"},
    {"Japanese labels", S("\xe4\xbe\x8b\xe3\x81\x88.\xe3\x83\x86\xe3\x82\xb9\xe3\x83\x88"),
     DOMAIN_OK, "xn--r8jz45g.xn--zckzah"},
    {"full-width letters mapped", S("\xef\xbc\xa1\xef\xbc\xa2\xef\xbc\xa3.com"), DOMAIN_OK,
     "abc.com"},
    {"ideographic full stop as separator", S("example\343\200\202com"), DOMAIN_OK, "example.com"},
    {"U-label with underscore", S("b\xc3\xbc_cher.example"), DOMAIN_EINVAL, NULL},
    {"U-label with all-digit TLD", S("b\303\274cher.123"), DOMAIN_EINVAL, NULL},
    {"U-label with empty label", S("b\xc3\xbc..example"), DOMAIN_EINVAL, NULL},
    {"disallowed code point (U+2010)", S("a\342\200\220b.example"), DOMAIN_EIDN, NULL},
    {"U-label with a space", S("b\xc3\xbc .example"), DOMAIN_EIDN, NULL},

    /* Invalid UTF-8. */
    {"lone continuation byte", S("\x80.example"), DOMAIN_EIDN, NULL},
    {"0xff byte", S("\xff.example"), DOMAIN_EIDN, NULL},
    {"truncated sequence", S("b\xc3.example"), DOMAIN_EIDN, NULL},
    {"overlong encoding of '/'", S("a\xc0\xaf.example"), DOMAIN_EIDN, NULL},
    {"UTF-16 surrogate", S("a\xed\xa0\x80.example"), DOMAIN_EIDN, NULL},
    {"Latin-1 u-umlaut", S("b\374cher.example"), DOMAIN_EIDN, NULL},
};

/*
 * Long names are described by their shape: prefix, labels of the given lengths joined by
 * dots (label i is made of letter 'a' + i), suffix. The expected output, for the rows that
 * succeed, is want_prefix followed by the labels.
 */
struct shape_row {
    const char *label;
    const char *prefix;
    size_t labels[8]; /* 0-terminated */
    const char *suffix;
    int rc;
    const char *want_prefix; /* the output is want_prefix and the labels, */
    const char *want;        /* or this when not NULL */
};

#define U_UMLAUT "\xc3\xbc" /* U+00FC, "xn--tda" as an A-label */

static const struct shape_row shape_rows[] = {
    /* RFC 1035 2.3.4: labels of at most 63 octets. */
    {"label of 63", "", {63}, "", DOMAIN_OK, "", NULL},
    {"label of 63 in a name", "", {63, 3}, "", DOMAIN_OK, "", NULL},
    {"label of 64", "", {64}, "", DOMAIN_ETOOLONG, NULL, NULL},
    {"label of 64 first", "", {64, 3}, "", DOMAIN_ETOOLONG, NULL, NULL},
    {"label of 64 in the middle", "", {3, 64, 3}, "", DOMAIN_ETOOLONG, NULL, NULL},
    {"label of 64 with trailing dot", "", {3, 64}, ".", DOMAIN_ETOOLONG, NULL, NULL},

    /* 253 characters in text form. */
    {"name of 253", "", {63, 63, 63, 61}, "", DOMAIN_OK, "", NULL},
    {"name of 254", "", {63, 63, 63, 62}, "", DOMAIN_ETOOLONG, NULL, NULL},
    {"name of 253 with trailing dot", "", {63, 63, 63, 61}, ".", DOMAIN_OK, "", NULL},
    {"name of 254 with trailing dot", "", {63, 63, 63, 62}, ".", DOMAIN_ETOOLONG, NULL, NULL},
    {"parent probe of a 253 name", ".", {63, 63, 63, 61}, "", DOMAIN_PARENT, "", NULL},
    {"parent probe of a 254 name", ".", {63, 63, 63, 62}, "", DOMAIN_ETOOLONG, NULL, NULL},
    {"name of 1024", "", {63, 63, 63, 63, 63, 63, 63, 63}, "", DOMAIN_ETOOLONG, NULL, NULL},
    {"key of 2000 bytes", "", {1000, 999}, "", DOMAIN_ETOOLONG, NULL, NULL},

    /* The same limits apply to the A-label form of an IDN. */
    {"IDN of 253 as A-labels", U_UMLAUT ".", {63, 63, 63, 53}, "", DOMAIN_OK, "xn--tda.", NULL},
    {"IDN of 254 as A-labels", U_UMLAUT ".", {63, 63, 63, 54}, "", DOMAIN_ETOOLONG, NULL, NULL},
    {"IDN with an ASCII label of 64", U_UMLAUT ".", {64}, "", DOMAIN_ETOOLONG, NULL, NULL},
    {"U-label whose A-label is 63",
     U_UMLAUT,
     {55},
     ".example",
     DOMAIN_OK,
     NULL,
     "xn--aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-oxf.example"},
    {"U-label whose A-label is 64", U_UMLAUT, {56}, ".example", DOMAIN_ETOOLONG, NULL, NULL},
    {"IDN of more than 255", U_UMLAUT ".", {63, 63, 63, 63, 63}, "", DOMAIN_ETOOLONG, NULL, NULL},
};

/* Append the labels of a shape to p; returns the end. */
static char *put_labels(char *p, const size_t *labels)
{
    for (size_t i = 0; i < 8 && labels[i]; i++) {
        if (i > 0)
            *p++ = '.';
        memset(p, 'a' + (int)i, labels[i]);
        p += labels[i];
    }
    return p;
}

static void check_shape(const struct shape_row *r)
{
    static char in[4096], want[4096];
    char *p = in;
    struct norm_row row;

    p += strlen(strcpy(p, r->prefix));
    p = put_labels(p, r->labels);
    p += strlen(strcpy(p, r->suffix));
    row.label = r->label;
    row.in = in;
    row.len = (size_t)(p - in);
    row.rc = r->rc;
    row.out = NULL;
    if (r->want) {
        row.out = r->want;
    } else if (r->want_prefix) {
        char *w = want + strlen(strcpy(want, r->want_prefix));

        *put_labels(w, r->labels) = '\0';
        row.out = want;
    }
    check_normalize(&row);
}

/* domain_parent: one label up, NULL at the top. */
struct parent_row {
    const char *label;
    const char *name;
    const char *want;
};

static const struct parent_row parent_rows[] = {
    {"three labels", "a.b.c", "b.c"},
    {"two labels", "b.c", "c"},
    {"one label", "c", NULL},
    {"A-labels", "mx.xn--bcher-kva.example", "xn--bcher-kva.example"},
};

int main(void)
{
    for (size_t i = 0; i < sizeof(norm_rows) / sizeof(norm_rows[0]); i++)
        check_normalize(&norm_rows[i]);
    for (size_t i = 0; i < sizeof(shape_rows) / sizeof(shape_rows[0]); i++)
        check_shape(&shape_rows[i]);
    for (size_t i = 0; i < sizeof(parent_rows) / sizeof(parent_rows[0]); i++)
        check_str(parent_rows[i].label, "parent", domain_parent(parent_rows[i].name),
                  parent_rows[i].want);
    return check_summary("test_domain");
}
