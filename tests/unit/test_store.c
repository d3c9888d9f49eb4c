/*
 * Unit table for store_record_parse() (daemon/mtasts/store.c): which record texts state_dir may
 * hold and be loaded, and why the others are set aside.
 */
#include "check.h"
#include "store.h"

#define NOW 1800000000

static const struct {
    const char *label, *text, *want; /* want: NULL when it loads, else a word of the reason */
} rows[] = {
    {"enforce policy",
     "{\"domain\":\"example.com\",\"id\":\"20261129\",\"fetched\":1799990000,"
     "\"expires\":1800076400,\"mode\":\"enforce\",\"max_age\":86400,"
     "\"mx\":[\"mx1.example.com\",\"*.backup.example.net\"]}",
     NULL},
    {"mode none without mx",
     "{\"domain\":\"example.com\",\"id\":\"a1\",\"fetched\":1,\"expires\":1,\"mode\":\"none\","
     "\"max_age\":0,\"mx\":[]}",
     NULL},
    {"another domain's record",
     "{\"domain\":\"example.org\",\"id\":\"1\",\"fetched\":1,\"expires\":2,\"mode\":\"enforce\","
     "\"max_age\":86400,\"mx\":[\"mx.example.org\"]}",
     "file name"},
    {"newline injects a policy line",
     "{\"domain\":\"example.com\",\"id\":\"1\",\"fetched\":1,\"expires\":2,\"mode\":\"enforce\","
     "\"max_age\":86400,\"mx\":[\"a\\nmx: evil.example\"]}",
     "control"},
    {"newline in mode",
     "{\"domain\":\"example.com\",\"id\":\"1\",\"fetched\":1,\"expires\":2,"
     "\"mode\":\"enforce\\nmx: x\",\"max_age\":86400,\"mx\":[\"mx.example.com\"]}",
     "control"},
    {"fetched in the future",
     "{\"domain\":\"example.com\",\"id\":\"1\",\"fetched\":1900000000,\"expires\":1900000001,"
     "\"mode\":\"enforce\",\"max_age\":86400,\"mx\":[\"mx.example.com\"]}",
     "future"},
    {"expires before fetched",
     "{\"domain\":\"example.com\",\"id\":\"1\",\"fetched\":10,\"expires\":5,\"mode\":\"enforce\","
     "\"max_age\":86400,\"mx\":[\"mx.example.com\"]}",
     "times"},
    {"lifetime longer than max_age",
     "{\"domain\":\"example.com\",\"id\":\"1\",\"fetched\":10,\"expires\":100000,"
     "\"mode\":\"enforce\",\"max_age\":60,\"mx\":[\"mx.example.com\"]}",
     "times"},
    {"max_age 0, cached for the floor of an hour",
     "{\"domain\":\"example.com\",\"id\":\"1\",\"fetched\":1799999000,"
     "\"expires\":1800002600,\"mode\":\"enforce\",\"max_age\":0,"
     "\"mx\":[\"mx.example.com\"]}",
     NULL},
    {"max_age 0, kept longer than the floor",
     "{\"domain\":\"example.com\",\"id\":\"1\",\"fetched\":1799999000,"
     "\"expires\":1800002602,\"mode\":\"enforce\",\"max_age\":0,"
     "\"mx\":[\"mx.example.com\"]}",
     "times"},
    {"invalid id",
     "{\"domain\":\"example.com\",\"id\":\"not valid!\",\"fetched\":1,\"expires\":2,"
     "\"mode\":\"enforce\",\"max_age\":86400,\"mx\":[\"mx.example.com\"]}",
     "id"},
    {"enforce without mx",
     "{\"domain\":\"example.com\",\"id\":\"1\",\"fetched\":1,\"expires\":2,\"mode\":\"enforce\","
     "\"max_age\":86400,\"mx\":[]}",
     ""},
    {"wrong types",
     "{\"domain\":\"example.com\",\"id\":\"1\",\"fetched\":\"1\",\"expires\":2,"
     "\"mode\":\"enforce\",\"max_age\":86400,\"mx\":\"mx.example.com\"}",
     "type"},
    {"not JSON", "{not json", "JSON"},
};

int main(void)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct store_record rec;
        const char *why = NULL;
        int rc;

        memset(&rec, 0, sizeof(rec));
        rc = store_record_parse(rows[i].text, strlen(rows[i].text), "example.com.json", NOW, &rec,
                                &why);
        if (rows[i].want == NULL) {
            check_int(rows[i].label, "loads", rc, 0);
            check_str(rows[i].label, "domain", rec.domain, "example.com");
        } else {
            check_int(rows[i].label, "set aside", rc, -1);
            check_true(rows[i].label, "reason", why != NULL && strstr(why, rows[i].want) != NULL);
        }
    }
    return check_summary("store");
}
