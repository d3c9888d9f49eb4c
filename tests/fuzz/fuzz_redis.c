/*
 * Fuzzer for what the daemon takes from Redis (the fleet tier, issue 13): the input is the
 * byte stream of a Redis server's replies (RESP), cut into replies by hiredis's own reader
 * (the one the daemon's connection uses), each reply judged by fleet_reply_status() as the
 * fleet tier does (daemon/fleet/fleet.c), and every value it hands on read both ways a
 * value can be read: as the MTA-STS record of example.com (share_value_parse(),
 * daemon/mtasts/mtasts_share.c) and as the REQUIRETLS probe result of one MX host
 * (probe_record_parse(), daemon/requiretls/probe_record.c). Invariants: a value only comes
 * with a string or status reply, nil is "none", an error "failed"; an MTA-STS record taken
 * names example.com, is within the size bound and encodes to a value that reads back the
 * same; a probe result taken encodes back to the same bytes; every refusal has a reason.
 */
#include <hiredis/hiredis.h>
#include <string.h>

#include "fleet.h"
#include "fuzz_check.h"
#include "mtasts_share.h"
#include "probe_record.h"

/* A fixed "now", so the same input always gives the same answer. */
#define NOW 1800000000
#define DOMAIN "example.com"
#define KEY "mx.example.com/192.0.2.1/1-00000000000000ab"

static void check_sts_value(const char *val, size_t len)
{
    struct store_record rec, again;
    const char *why = NULL;
    int rc = share_value_parse(DOMAIN, val, len, NOW, &rec, &why);
    char *text;

    if (rc < 0) {
        CHECK(why != NULL && *why != '\0');
        return;
    }
    CHECK(len <= STORE_RECORD_MAX && strcmp(rec.domain, DOMAIN) == 0);
    CHECK(rc == (rec.expires > NOW));
    text = store_record_encode(&rec);
    CHECK(text != NULL);
    CHECK(share_value_parse(DOMAIN, text, strlen(text), NOW, &again, &why) == rc);
    CHECK(share_value_parse("example.org", text, strlen(text), NOW, &again, &why) < 0);
    free(text);
}

static void check_probe_value(const char *val, size_t len)
{
    struct probe_result r;
    int64_t fetched, expires;
    const char *why = NULL;
    char text[PROBE_RECORD_MAX + 1];
    size_t n;

    if (probe_record_parse(val, len, KEY, NOW, &r, &fetched, &expires, &why) != 0) {
        CHECK(why != NULL && *why != '\0');
        return;
    }
    CHECK(!r.tls_ok || (r.connected && r.starttls_offered));
    CHECK(!r.requiretls_advertised || r.tls_ok);
    n = probe_record_encode(text, sizeof(text), KEY, &r, fetched, expires);
    CHECK(n == len && memcmp(text, val, len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    redisReader *rd = redisReaderCreate();
    void *reply = NULL;

    CHECK(rd != NULL);
    if (redisReaderFeed(rd, (const char *)data, size) != REDIS_OK) {
        redisReaderFree(rd);
        return 0;
    }
    /* Bounded: each reply consumes input, and a protocol error ends the stream (hiredis
     * drops the connection then, and the fleet tier reconnects). */
    for (int i = 0; i < 4096; i++) {
        const redisReply *rep;
        const char *val;
        size_t len;
        enum fleet_status st;

        if (redisReaderGetReply(rd, &reply) != REDIS_OK || reply == NULL)
            break;
        rep = reply;
        st = fleet_reply_status(rep, &val, &len);
        switch (rep->type) {
        case REDIS_REPLY_ERROR:
            CHECK(st == FLEET_FAIL && val == NULL);
            break;
        case REDIS_REPLY_NIL:
            CHECK(st == FLEET_NONE && val == NULL);
            break;
        case REDIS_REPLY_STRING:
        case REDIS_REPLY_STATUS:
            CHECK(st == FLEET_OK && val == rep->str && len == rep->len);
            check_sts_value(val, len);
            check_probe_value(val, len);
            break;
        default:
            CHECK(st == FLEET_OK && val == NULL && len == 0);
            break;
        }
        freeReplyObject(reply);
        reply = NULL;
    }
    redisReaderFree(rd);
    return 0;
}
