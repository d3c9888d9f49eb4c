/*
 * Unit tests for proto/netstring.c: one-shot decoding, byte-by-byte decoding, pipelined
 * netstrings, encoding and round trips. Each table row is {label, input, want}.
 */
#include "check.h"
#include "netstring.h"

#include <stdint.h>
#include <stdlib.h>

/* A string literal and its length, so payloads may hold NUL bytes. */
#define S(lit) lit, sizeof(lit) - 1

#define BIG SIZE_MAX

struct decode_row {
    const char *label;
    const char *in;
    size_t len;
    size_t max;
    int rc;
    const char *payload; /* on NETSTRING_OK */
    size_t plen;
    size_t consumed;
};

static const struct decode_row decode_rows[] = {
    /* Complete netstrings. */
    {"three bytes", S("3:abc,"), 100, NETSTRING_OK, S("abc"), 6},
    {"empty payload", S("0:,"), 100, NETSTRING_OK, S(""), 3},
    {"bytes after the comma are left", S("3:abc,XYZ"), 100, NETSTRING_OK, S("abc"), 6},
    {"payload holds ':' and ','", S("5:a,b:c,"), 100, NETSTRING_OK, S("a,b:c"), 8},
    {"payload holds NUL", S("3:a\0b,"), 100, NETSTRING_OK, S("a\0b"), 6},
    {"payload holds CR LF", S("2:\r\n,"), 100, NETSTRING_OK, S("\r\n"), 5},
    {"socketmap request", S("18:policy example.com,"), 100, NETSTRING_OK, S("policy example.com"),
     22},
    {"two-digit length", S("10:0123456789,"), 100, NETSTRING_OK, S("0123456789"), 14},

    /* Incomplete input. */
    {"empty input", S(""), 100, NETSTRING_MORE, NULL, 0, 0},
    {"a digit", S("3"), 100, NETSTRING_MORE, NULL, 0, 0},
    {"zero alone", S("0"), 100, NETSTRING_MORE, NULL, 0, 0},
    {"length and colon", S("3:"), 100, NETSTRING_MORE, NULL, 0, 0},
    {"zero and colon", S("0:"), 100, NETSTRING_MORE, NULL, 0, 0},
    {"part of the payload", S("3:ab"), 100, NETSTRING_MORE, NULL, 0, 0},
    {"payload without its comma", S("3:abc"), 100, NETSTRING_MORE, NULL, 0, 0},
    {"nine digits accepted", S("999999999:"), BIG, NETSTRING_MORE, NULL, 0, 0},

    /* NETSTRING_EBADLEN. */
    {"no digits", S(":abc,"), 100, NETSTRING_EBADLEN, NULL, 0, 0},
    {"letter after the digits", S("3x:abc,"), 100, NETSTRING_EBADLEN, NULL, 0, 0},
    {"letter first", S("x"), 100, NETSTRING_EBADLEN, NULL, 0, 0},
    {"blank before the length", S(" 3:abc,"), 100, NETSTRING_EBADLEN, NULL, 0, 0},
    {"blank after the length", S("3 :abc,"), 100, NETSTRING_EBADLEN, NULL, 0, 0},
    {"minus sign", S("-1:a,"), 100, NETSTRING_EBADLEN, NULL, 0, 0},
    {"plus sign", S("+3:abc,"), 100, NETSTRING_EBADLEN, NULL, 0, 0},
    {"hexadecimal", S("0x3:abc,"), 100, NETSTRING_EBADLEN, NULL, 0, 0},
    {"NUL instead of colon", S("3\0abc,"), 100, NETSTRING_EBADLEN, NULL, 0, 0},
    {"a comma alone", S(","), 100, NETSTRING_EBADLEN, NULL, 0, 0},

    /* NETSTRING_ENOCOMMA. */
    {"wrong terminator", S("3:abc;"), 100, NETSTRING_ENOCOMMA, NULL, 0, 0},
    {"payload longer than its length", S("2:abc,"), 100, NETSTRING_ENOCOMMA, NULL, 0, 0},
    {"empty payload without comma", S("0:x"), 100, NETSTRING_ENOCOMMA, NULL, 0, 0},
    {"newline instead of comma", S("1:a\n"), 100, NETSTRING_ENOCOMMA, NULL, 0, 0},

    /* NETSTRING_ELEADZERO. */
    {"leading zero", S("01:a,"), 100, NETSTRING_ELEADZERO, NULL, 0, 0},
    {"leading zero before the colon arrives", S("00"), 100, NETSTRING_ELEADZERO, NULL, 0, 0},
    {"20 digits with leading zeros", S("00000000000000000001:a,"), BIG, NETSTRING_ELEADZERO, NULL,
     0, 0},

    /* NETSTRING_ETOOLONG: the caller's limit, at and one past it. */
    {"length at the limit", S("10:0123456789,"), 10, NETSTRING_OK, S("0123456789"), 14},
    {"length one past the limit", S("11:0123456789a,"), 10, NETSTRING_ETOOLONG, NULL, 0, 0},
    {"past the limit before the colon", S("11"), 10, NETSTRING_ETOOLONG, NULL, 0, 0},
    {"limit 0 takes an empty payload", S("0:,"), 0, NETSTRING_OK, S(""), 3},
    {"limit 0 refuses one byte", S("1:a,"), 0, NETSTRING_ETOOLONG, NULL, 0, 0},
    {"SOCKMAP-sized limit", S("10101:"), 10101, NETSTRING_MORE, NULL, 0, 0},
    {"SOCKMAP-sized limit plus one", S("10102:"), 10101, NETSTRING_ETOOLONG, NULL, 0, 0},

    /* NETSTRING_ETOOLONG: more than NETSTRING_MAX_DIGITS digits, whatever the limit. */
    {"ten digits", S("1000000000:"), BIG, NETSTRING_ETOOLONG, NULL, 0, 0},
    {"ten digits before the colon arrives", S("1234567890"), BIG, NETSTRING_ETOOLONG, NULL, 0, 0},
    {"20 digits (2^64)", S("18446744073709551616:x,"), BIG, NETSTRING_ETOOLONG, NULL, 0, 0},
    {"20 nines without colon", S("99999999999999999999"), BIG, NETSTRING_ETOOLONG, NULL, 0, 0},
};

/* Sentinels show that MORE and errors leave the out-parameters alone. */
static const char sentinel[] = "untouched";

static void check_decode(const char *label, const char *in, size_t len, size_t max, int want_rc,
                         const char *want_payload, size_t want_plen, size_t want_consumed)
{
    const char *payload = sentinel, *why = NULL;
    size_t plen = 777, consumed = 777;
    int rc = netstring_decode(in, len, max, &payload, &plen, &consumed, &why);

    check_int(label, "rc", rc, want_rc);
    if (want_rc == NETSTRING_OK && rc == NETSTRING_OK) {
        check_mem(label, "payload", payload, plen, want_payload, want_plen);
        check_true(label, "payload inside the input", payload >= in && payload + plen <= in + len);
        check_int(label, "consumed", (long long)consumed, (long long)want_consumed);
    } else {
        check_true(label, "payload untouched", payload == sentinel);
        check_int(label, "plen untouched", (long long)plen, 777);
        check_int(label, "consumed untouched", (long long)consumed, 777);
    }
    if (want_rc < 0)
        check_true(label, "why is set", why != NULL && *why != '\0');
}

/*
 * Byte-by-byte decoding: every prefix shorter than `decisive` bytes must give
 * NETSTRING_MORE, and every prefix from `decisive` on must give rc (the verdict cannot
 * change once the bytes that decide it have arrived).
 */
struct incremental_row {
    const char *label;
    const char *in;
    size_t len;
    size_t max;
    size_t decisive;
    int rc;
};

static const struct incremental_row incremental_rows[] = {
    {"whole netstring", S("12:hello, world,"), 100, 16, NETSTRING_OK},
    {"empty netstring", S("0:,"), 100, 3, NETSTRING_OK},
    {"netstring with NUL payload", S("4:\0\0\0\0,"), 100, 7, NETSTRING_OK},
    {"leading zero seen at byte 2", S("01:x,"), 100, 2, NETSTRING_ELEADZERO},
    {"bad byte seen at once", S("x:abc,"), 100, 1, NETSTRING_EBADLEN},
    {"bad byte after digits", S("12;abc,"), 100, 3, NETSTRING_EBADLEN},
    {"limit passed at second digit", S("99:abc,"), 50, 2, NETSTRING_ETOOLONG},
    {"tenth digit", S("12345678901:x,"), BIG, 10, NETSTRING_ETOOLONG},
    {"missing comma seen at the end", S("3:abcX"), 100, 6, NETSTRING_ENOCOMMA},
};

static void check_incremental(const struct incremental_row *r)
{
    char label[160];

    for (size_t k = 0; k <= r->len; k++) {
        const char *payload = NULL, *why = NULL;
        size_t plen = 0, consumed = 0;
        int want = k < r->decisive ? NETSTRING_MORE : r->rc;
        /* A copy of exactly k bytes, so ASan sees any read past the prefix. */
        char *prefix = malloc(k ? k : 1);

        memcpy(prefix, r->in, k);
        snprintf(label, sizeof(label), "%s, first %zu bytes", r->label, k);
        check_int(label, "rc",
                  netstring_decode(prefix, k, r->max, &payload, &plen, &consumed, &why), want);
        if (want == NETSTRING_OK)
            check_int(label, "consumed", (long long)consumed, (long long)r->decisive);
        free(prefix);
    }
}

/* Pipelined netstrings back to back: decode, advance by consumed, repeat. */
struct pipeline_row {
    const char *label;
    const char *in;
    size_t len;
    size_t max;
    const char *payloads[6]; /* NUL-free expected payloads, NULL-terminated */
    int final_rc;            /* what the decoder says after the last payload */
};

static const struct pipeline_row pipeline_rows[] = {
    {"four requests",
     S("3:abc,0:,5:hello,2:hi,"),
     100,
     {"abc", "", "hello", "hi", NULL},
     NETSTRING_MORE},
    {"complete then partial", S("3:abc,4:ab"), 100, {"abc", NULL}, NETSTRING_MORE},
    {"complete then partial prefix", S("3:abc,1"), 100, {"abc", NULL}, NETSTRING_MORE},
    {"complete then garbage", S("3:abc,x:"), 100, {"abc", NULL}, NETSTRING_EBADLEN},
    {"complete then oversized", S("1:a,2:bc,999:"), 100, {"a", "bc", NULL}, NETSTRING_ETOOLONG},
    {"complete then leading zero", S("1:a,01:b,"), 100, {"a", NULL}, NETSTRING_ELEADZERO},
    {"missing comma in the second", S("1:a,1:bc"), 100, {"a", NULL}, NETSTRING_ENOCOMMA},
    {"socketmap pipeline",
     S("16:policy a.example,20:requiretls b.example,"),
     100,
     {"policy a.example", "requiretls b.example", NULL},
     NETSTRING_MORE},
};

static void check_pipeline(const struct pipeline_row *r)
{
    size_t off = 0, i = 0;
    int rc;
    char label[160];

    for (;;) {
        const char *payload = NULL, *why = NULL;
        size_t plen = 0, consumed = 0;

        snprintf(label, sizeof(label), "%s, netstring %zu", r->label, i + 1);
        rc = netstring_decode(r->in + off, r->len - off, r->max, &payload, &plen, &consumed, &why);
        if (rc != NETSTRING_OK || r->payloads[i] == NULL)
            break;
        check_mem(label, "payload", payload, plen, r->payloads[i], strlen(r->payloads[i]));
        check_true(label, "consumed within input", consumed <= r->len - off);
        off += consumed;
        i++;
    }
    check_true(label, "all payloads decoded", r->payloads[i] == NULL);
    check_int(label, "final rc", rc, r->final_rc);
}

struct encoded_len_row {
    const char *label;
    size_t len;
    size_t want;
};

static const struct encoded_len_row encoded_len_rows[] = {
    {"empty", 0, 3},
    {"one byte", 1, 4},
    {"nine bytes", 9, 12},
    {"ten bytes", 10, 14},
    {"99 bytes", 99, 103},
    {"100 bytes", 100, 105},
    {"10101 bytes", 10101, 10108},
    {"100000 bytes", 100000, 100008},
};

struct encode_row {
    const char *label;
    const char *a;
    size_t alen;
    const char *b;
    size_t blen;
    size_t cap;
    const char *want; /* NULL: encode must return 0 */
    size_t wlen;
};

static const struct encode_row encode_rows[] = {
    {"one piece", S("abc"), NULL, 0, 6, S("3:abc,")},
    {"one piece, roomy buffer", S("abc"), NULL, 0, 64, S("3:abc,")},
    {"one piece, one byte short", S("abc"), NULL, 0, 5, NULL, 0},
    {"two pieces", S("OK "), S("dane-only"), 16, S("12:OK dane-only,")},
    {"two pieces, one byte short", S("OK "), S("dane-only"), 15, NULL, 0},
    {"empty first piece", S(""), S("x"), 4, S("1:x,")},
    {"both empty", S(""), S(""), 3, S("0:,")},
    {"both empty, no room", S(""), S(""), 2, NULL, 0},
    {"zero capacity", S("a"), NULL, 0, 0, NULL, 0},
    {"ten bytes", S("01234"), S("56789"), 14, S("10:0123456789,")},
    {"NUL bytes", S("\0"), S("\0"), 5, S("2:\0\0,")},
};

static void check_encode(const struct encode_row *r)
{
    char out[128];
    size_t n;

    memset(out, '#', sizeof(out));
    n = netstring_encode(out, r->cap, r->a, r->alen, r->b, r->blen);
    if (r->want == NULL) {
        check_int(r->label, "bytes written", (long long)n, 0);
        return;
    }
    check_mem(r->label, "output", n ? out : "", n, r->want, r->wlen);
    check_int(r->label, "encoded_len", (long long)netstring_encoded_len(r->alen + r->blen),
              (long long)r->wlen);
    check_true(r->label, "nothing written past the netstring", out[n] == '#');
}

/* Encode, then decode with the payload's own length as the limit, and with one less. */
static void check_round_trip(const char *label, const char *payload, size_t len)
{
    size_t cap = netstring_encoded_len(len);
    char *buf = malloc(cap);
    const char *got = NULL, *why = NULL;
    size_t plen = 0, consumed = 0, n;

    n = netstring_encode(buf, cap, payload, len, NULL, 0);
    check_int(label, "encoded size", (long long)n, (long long)cap);
    check_int(label, "decode rc", netstring_decode(buf, n, len, &got, &plen, &consumed, &why),
              NETSTRING_OK);
    check_mem(label, "decoded payload", got, plen, payload, len);
    check_int(label, "consumed", (long long)consumed, (long long)n);
    if (len > 0)
        check_int(label, "decode with limit one less",
                  netstring_decode(buf, n, len - 1, &got, &plen, &consumed, &why),
                  NETSTRING_ETOOLONG);
    /* Split into a prefix and a body, the result is the same bytes. */
    if (len > 1) {
        char *two = malloc(cap);

        check_int(label, "two-piece size",
                  (long long)netstring_encode(two, cap, payload, len / 2, payload + len / 2,
                                              len - len / 2),
                  (long long)cap);
        check_mem(label, "two-piece output", two, cap, buf, cap);
        free(two);
    }
    free(buf);
}

int main(void)
{
    static char big[100000];

    for (size_t i = 0; i < sizeof(decode_rows) / sizeof(decode_rows[0]); i++) {
        const struct decode_row *r = &decode_rows[i];

        check_decode(r->label, r->in, r->len, r->max, r->rc, r->payload, r->plen, r->consumed);
    }
    for (size_t i = 0; i < sizeof(incremental_rows) / sizeof(incremental_rows[0]); i++)
        check_incremental(&incremental_rows[i]);
    for (size_t i = 0; i < sizeof(pipeline_rows) / sizeof(pipeline_rows[0]); i++)
        check_pipeline(&pipeline_rows[i]);
    for (size_t i = 0; i < sizeof(encoded_len_rows) / sizeof(encoded_len_rows[0]); i++)
        check_int(encoded_len_rows[i].label, "encoded_len",
                  (long long)netstring_encoded_len(encoded_len_rows[i].len),
                  (long long)encoded_len_rows[i].want);
    for (size_t i = 0; i < sizeof(encode_rows) / sizeof(encode_rows[0]); i++)
        check_encode(&encode_rows[i]);

    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 7 + 3);
    check_round_trip("round trip: empty", "", 0);
    check_round_trip("round trip: one byte", "x", 1);
    check_round_trip("round trip: binary", S("\0\1,:\xff"));
    check_round_trip("round trip: 9 bytes", big, 9);
    check_round_trip("round trip: 10 bytes", big, 10);
    check_round_trip("round trip: 1000 bytes", big, 1000);
    check_round_trip("round trip: 100000 bytes", big, sizeof(big));

    return check_summary("test_netstring");
}
