/*
 * Unit table for probe_record_parse() (daemon/requiretls/probe_record.c): which probe results
 * read from the fleet tier are taken, and why the others are refused; what is taken encodes
 * back to the same text.
 */
#include "check.h"
#include "probe_record.h"

#include <string.h>

#define NOW 1800000000
#define KEY "mx.example.com/192.0.2.1/1-00000000000000ab"
#define P "tlspolicyd-probe 1 " KEY " "

static const struct {
    const char *label, *text, *want; /* want: NULL when taken, else a word of the reason */
} rows[] = {
    {"REQUIRETLS after STARTTLS, PKIX",
     P "1799990000 1799993600 1111010 1 1 TLSv1.3 TLS1-3-AES-256-GCM-SHA384 42 all good", NULL},
    {"connect timed out", P "1799990000 1799990300 0000001 0 0 - - 10000 connect timed out", NULL},
    {"empty why", P "1799990000 1799993600 1100000 0 0 - - 5 ", NULL},
    {"another key",
     "tlspolicyd-probe 1 mx.example.com/192.0.2.2/1-00000000000000ab 1799990000 1799993600 "
     "1110000 0 0 - - 5 x",
     "another key"},
    {"another version", "tlspolicyd-probe 2 " KEY " 1799990000 1799993600 1110000 0 0 - - 5 x",
     "version"},
    {"PKIX without TLS", P "1799990000 1799993600 1101000 0 0 - - 5 x", "without TLS"},
    {"REQUIRETLS without TLS", P "1799990000 1799993600 1100010 0 0 - - 5 x", "without TLS"},
    {"TLS without STARTTLS", P "1799990000 1799993600 1010000 0 0 - - 5 x", "without STARTTLS"},
    {"DANE without TLSA", P "1799990000 1799993600 1111100 0 0 - - 5 x", "TLSA"},
    {"success beside timed out", P "1799990000 1799993600 1111011 1 0 - - 5 x", "timed out"},
    {"fetched in the future", P "1900000000 1900003600 1110000 0 0 - - 5 x", "future"},
    {"expires before fetched", P "1799990000 1799980000 1110000 0 0 - - 5 x", "order"},
    {"a lifetime of a year", P "1769990000 1799990000 1110000 0 0 - - 5 x", "too long"},
    {"a line break in why", P "1799990000 1799993600 1110000 0 0 - - 5 a\nb", "control"},
    {"leading zero", P "01799990000 1799993600 1110000 0 0 - - 5 x", "fetched"},
    {"too many TLSA", P "1799990000 1799993600 1110000 17 0 - - 5 x", "TLSA count"},
    {"a space in the cipher", P "1799990000 1799993600 1110000 0 0 - a b 5 x", "elapsed"},
    {"a quote in the version", P "1799990000 1799993600 1110000 0 0 \"x - 5 x", "TLS version"},
    {"bad flags", P "1799990000 1799993600 11100002 0 0 - - 5 x", "flags"},
    {"no space before an empty why", P "1799990000 1799993600 1100000 1 0 - - 50", "why field"},
    {"truncated", P "1799990000 1799993600", "flags"},
};

int main(void)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct probe_result r;
        int64_t fetched, expires;
        const char *why = NULL;
        char text[PROBE_RECORD_MAX + 1];
        int rc = probe_record_parse(rows[i].text, strlen(rows[i].text), KEY, NOW, &r, &fetched,
                                    &expires, &why);

        if (rows[i].want != NULL) {
            check_int(rows[i].label, "refused", rc, -1);
            if (!check_true(rows[i].label, "reason",
                            why != NULL && strstr(why, rows[i].want) != NULL))
                printf("  why: %s\n", why ? why : "(none)");
            continue;
        }
        check_int(rows[i].label, "taken", rc, 0);
        check_true(rows[i].label, "encodes back to the same text",
                   probe_record_encode(text, sizeof(text), KEY, &r, fetched, expires) ==
                           strlen(rows[i].text) &&
                       strcmp(text, rows[i].text) == 0);
    }
    return check_summary("probe_record");
}
