/*
 * Unit tests for proto/sockmap.c: request parsing (name/key split, every error code, the
 * name and key limits at and one past the limit), status words and reply rendering
 * (NOTFOUND's trailing space, control characters, the text limit, the buffer size).
 */
#include "check.h"
#include "netstring.h"
#include "sockmap.h"

#include <stdlib.h>

#define S(lit) lit, sizeof(lit) - 1

/* Build prefix + n copies of c + suffix in a fresh heap buffer (freed by the caller). */
static char *build(const char *prefix, int c, size_t n, const char *suffix, size_t *len)
{
    size_t pl = strlen(prefix), sl = strlen(suffix);
    char *p = malloc(pl + n + sl + 1);

    memcpy(p, prefix, pl);
    memset(p + pl, c, n);
    memcpy(p + pl + n, suffix, sl + 1);
    *len = pl + n + sl;
    return p;
}

struct parse_row {
    const char *label;
    const char *in;
    size_t len;
    int rc;
    const char *name; /* on SOCKMAP_EOK */
    size_t namelen;
    const char *key;
    size_t keylen;
};

static void check_parse(const struct parse_row *r)
{
    struct sockmap_request req;
    const char *why = NULL;
    int rc;

    memset(&req, 0, sizeof(req));
    rc = sockmap_parse(r->in, r->len, &req, &why);
    check_int(r->label, "rc", rc, r->rc);
    if (rc != SOCKMAP_EOK || r->rc != SOCKMAP_EOK) {
        if (r->rc != SOCKMAP_EOK)
            check_true(r->label, "why is set", why != NULL && *why != '\0');
        return;
    }
    check_mem(r->label, "name", req.name, req.namelen, r->name, r->namelen);
    check_mem(r->label, "key", req.key, req.keylen, r->key, r->keylen);
    check_true(r->label, "name points into the payload", req.name == r->in);
    check_true(r->label, "key points into the payload",
               req.key == r->in + req.namelen + 1 && req.key + req.keylen == r->in + r->len);
}

static const struct parse_row parse_rows[] = {
    {"policy lookup", S("policy example.com"), SOCKMAP_EOK, S("policy"), S("example.com")},
    {"requiretls lookup", S("requiretls example.com"), SOCKMAP_EOK, S("requiretls"),
     S("example.com")},
    {"parent probe key", S("policy .example.com"), SOCKMAP_EOK, S("policy"), S(".example.com")},
    {"empty key", S("policy "), SOCKMAP_EOK, S("policy"), S("")},
    {"key with a space", S("policy a b"), SOCKMAP_EOK, S("policy"), S("a b")},
    {"two spaces keep the second", S("policy  example.com"), SOCKMAP_EOK, S("policy"),
     S(" example.com")},
    {"key with CR LF and controls", S("policy a\r\n\x01"), SOCKMAP_EOK, S("policy"),
     S("a\r\n\x01")},
    {"key with UTF-8", S("policy b\303\274cher.example"), SOCKMAP_EOK, S("policy"),
     S("b\303\274cher.example")},
    {"one-byte name", S("p k"), SOCKMAP_EOK, S("p"), S("k")},
    {"name with punctuation", S("tls-policy_2.x k"), SOCKMAP_EOK, S("tls-policy_2.x"), S("k")},

    {"no space", S("policy"), SOCKMAP_ENOSPACE, NULL, 0, NULL, 0},
    {"empty payload", S(""), SOCKMAP_ENOSPACE, NULL, 0, NULL, 0},
    {"tab is not the separator", S("policy\texample.com"), SOCKMAP_ENOSPACE, NULL, 0, NULL, 0},
    {"leading space", S(" example.com"), SOCKMAP_ENONAME, NULL, 0, NULL, 0},
    {"a space alone", S(" "), SOCKMAP_ENONAME, NULL, 0, NULL, 0},
    {"name with a tab", S("pol\ticy x"), SOCKMAP_ENAME, NULL, 0, NULL, 0},
    {"name with NUL", S("pol\0icy x"), SOCKMAP_ENAME, NULL, 0, NULL, 0},
    {"name with DEL", S("pol\x7ficy x"), SOCKMAP_ENAME, NULL, 0, NULL, 0},
    {"name with UTF-8", S("p\xc3\xb6licy x"), SOCKMAP_ENAME, NULL, 0, NULL, 0},
    {"name with a control byte", S("\x1bpolicy x"), SOCKMAP_ENAME, NULL, 0, NULL, 0},
    {"key with NUL", S("policy a\0b"), SOCKMAP_EKEY, NULL, 0, NULL, 0},
    {"key of a NUL alone", S("policy \0"), SOCKMAP_EKEY, NULL, 0, NULL, 0},
};

/* Rows with limit-sized names and keys, built at run time. */
static void check_parse_limits(void)
{
    size_t len;
    char *name100 = build("", 'n', SOCKMAP_MAX_NAME, " key", &len);
    size_t name100_len = len;
    char *name101 = build("", 'n', SOCKMAP_MAX_NAME + 1, " key", &len);
    size_t name101_len = len;
    char *key10000 = build("policy ", 'k', SOCKMAP_MAX_KEY, "", &len);
    size_t key10000_len = len;
    char *key10001 = build("policy ", 'k', SOCKMAP_MAX_KEY + 1, "", &len);
    size_t key10001_len = len;
    char *bad_name_long_key = build("po\x01 ", 'k', SOCKMAP_MAX_KEY + 1, "", &len);
    size_t bad_name_long_key_len = len;
    const struct parse_row rows[] = {
        {"name of 100 bytes", name100, name100_len, SOCKMAP_EOK, name100, SOCKMAP_MAX_NAME,
         S("key")},
        {"name of 101 bytes", name101, name101_len, SOCKMAP_ENAME, NULL, 0, NULL, 0},
        {"key of 10000 bytes", key10000, key10000_len, SOCKMAP_EOK, S("policy"), key10000 + 7,
         SOCKMAP_MAX_KEY},
        {"key of 10001 bytes", key10001, key10001_len, SOCKMAP_EKEY, NULL, 0, NULL, 0},
        {"bad name is reported before long key", bad_name_long_key, bad_name_long_key_len,
         SOCKMAP_ENAME, NULL, 0, NULL, 0},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        check_parse(&rows[i]);
    free(name100);
    free(name101);
    free(key10000);
    free(key10001);
    free(bad_name_long_key);
}

struct word_row {
    const char *label;
    enum sockmap_status st;
    const char *want;
};

static const struct word_row word_rows[] = {
    {"OK", SOCKMAP_OK, "OK"},
    {"NOTFOUND", SOCKMAP_NOTFOUND, "NOTFOUND"},
    {"TEMP", SOCKMAP_TEMP, "TEMP"},
    {"TIMEOUT", SOCKMAP_TIMEOUT, "TIMEOUT"},
    {"PERM", SOCKMAP_PERM, "PERM"},
    {"out-of-range status falls back to TEMP", (enum sockmap_status)99, "TEMP"},
};

struct render_row {
    const char *label;
    enum sockmap_status st;
    const char *text;
    size_t cap;
    const char *want; /* NULL: render must return 0 (buffer too small) */
};

static void check_render(const struct render_row *r)
{
    char out[SOCKMAP_MAX_TEXT + 64];
    const char *payload = NULL, *why = NULL;
    size_t n, plen = 0, consumed = 0;

    memset(out, '#', sizeof(out));
    n = sockmap_render(out, r->cap, r->st, r->text);
    if (r->want == NULL) {
        check_int(r->label, "bytes written", (long long)n, 0);
        return;
    }
    check_mem(r->label, "reply", n ? out : "", n, r->want, strlen(r->want));
    check_true(r->label, "nothing written past the reply", n >= sizeof(out) || out[n] == '#');
    /* Whatever is rendered must be exactly one netstring Postfix can read. */
    check_int(r->label, "decodes",
              netstring_decode(out, n, SOCKMAP_MAX_REPLY, &payload, &plen, &consumed, &why),
              NETSTRING_OK);
    check_int(r->label, "one netstring", (long long)consumed, (long long)n);
}

static const struct render_row render_rows[] = {
    {"OK with data", SOCKMAP_OK, "dane-only", 64, "12:OK dane-only,"},
    {"OK with policy", SOCKMAP_OK, "secure match=.example.net servername=hostname", 64,
     "48:OK secure match=.example.net servername=hostname,"},
    {"OK with empty text", SOCKMAP_OK, "", 64, "2:OK,"},
    {"OK with NULL text", SOCKMAP_OK, NULL, 64, "2:OK,"},
    {"NOTFOUND keeps its space", SOCKMAP_NOTFOUND, NULL, 64, "9:NOTFOUND ,"},
    {"NOTFOUND with empty text", SOCKMAP_NOTFOUND, "", 64, "9:NOTFOUND ,"},
    {"NOTFOUND ignores text", SOCKMAP_NOTFOUND, "ignored", 64, "9:NOTFOUND ,"},
    {"TEMP with reason", SOCKMAP_TEMP, "DNS timeout", 64, "16:TEMP DNS timeout,"},
    {"TEMP without reason", SOCKMAP_TEMP, NULL, 64, "4:TEMP,"},
    {"TIMEOUT with reason", SOCKMAP_TIMEOUT, "resolver", 64, "16:TIMEOUT resolver,"},
    {"PERM unknown map", SOCKMAP_PERM, "unknown map foo", 64, "20:PERM unknown map foo,"},
    {"out-of-range status renders TEMP", (enum sockmap_status)42, "x", 64, "6:TEMP x,"},

    /* Control characters become '?', so a reply cannot carry protocol bytes. */
    {"CR LF replaced", SOCKMAP_TEMP, "a\r\nb", 64, "9:TEMP a??b,"},
    {"tab, ESC and DEL replaced", SOCKMAP_PERM, "\tx\x1b[1m\x7f", 64, "12:PERM ?x?[1m?,"},
    {"only controls", SOCKMAP_OK, "\x01\x02", 64, "5:OK ??,"},
    {"0x1f replaced, 0x20 and 0x7e kept", SOCKMAP_OK, "\x1f \x7e", 64, "6:OK ? ~,"},
    {"comma and colon kept", SOCKMAP_TEMP, "1:a,", 64, "9:TEMP 1:a,,"},
    {"UTF-8 kept", SOCKMAP_TEMP, "b\303\274cher", 64, "12:TEMP b\303\274cher,"},

    /* The caller's buffer: exactly big enough, and one byte short. */
    {"cap exactly the reply", SOCKMAP_OK, "dane-only", 16, "12:OK dane-only,"},
    {"cap one byte short", SOCKMAP_OK, "dane-only", 15, NULL},
    {"NOTFOUND cap exact", SOCKMAP_NOTFOUND, NULL, 12, "9:NOTFOUND ,"},
    {"NOTFOUND cap one short", SOCKMAP_NOTFOUND, NULL, 11, NULL},
    {"zero capacity", SOCKMAP_OK, "x", 0, NULL},
};

/* Text at, one past and well past SOCKMAP_MAX_TEXT, for every status that carries text. */
static void check_render_limits(void)
{
    static const enum sockmap_status sts[] = {SOCKMAP_OK, SOCKMAP_TEMP, SOCKMAP_TIMEOUT,
                                              SOCKMAP_PERM};
    static const size_t sizes[] = {SOCKMAP_MAX_TEXT - 1, SOCKMAP_MAX_TEXT, SOCKMAP_MAX_TEXT + 1,
                                   SOCKMAP_MAX_TEXT + 100};
    char label[96];

    for (size_t s = 0; s < sizeof(sts) / sizeof(sts[0]); s++) {
        for (size_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
            size_t tlen, wlen, kept = sizes[z] < SOCKMAP_MAX_TEXT ? sizes[z] : SOCKMAP_MAX_TEXT;
            char *text = build("", 't', sizes[z], "", &tlen);
            char *body = build(sockmap_status_word(sts[s]), ' ', 1, "", &wlen);
            char *want_body = malloc(wlen + kept);
            char *want = malloc(netstring_encoded_len(wlen + kept) + 1);
            size_t want_len;

            memcpy(want_body, body, wlen);
            memset(want_body + wlen, 't', kept);
            want_len = netstring_encode(want, netstring_encoded_len(wlen + kept), want_body,
                                        wlen + kept, NULL, 0);
            want[want_len] = '\0';
            snprintf(label, sizeof(label), "%s with %zu bytes of text", sockmap_status_word(sts[s]),
                     sizes[z]);
            {
                const struct render_row r = {label, sts[s], text, SOCKMAP_MAX_TEXT + 64, want};

                check_render(&r);
            }
            free(text);
            free(body);
            free(want_body);
            free(want);
        }
    }
}

int main(void)
{
    for (size_t i = 0; i < sizeof(parse_rows) / sizeof(parse_rows[0]); i++)
        check_parse(&parse_rows[i]);
    check_parse_limits();
    for (size_t i = 0; i < sizeof(word_rows) / sizeof(word_rows[0]); i++)
        check_str(word_rows[i].label, "word", sockmap_status_word(word_rows[i].st),
                  word_rows[i].want);
    for (size_t i = 0; i < sizeof(render_rows) / sizeof(render_rows[0]); i++)
        check_render(&render_rows[i]);
    check_render_limits();
    return check_summary("test_sockmap");
}
