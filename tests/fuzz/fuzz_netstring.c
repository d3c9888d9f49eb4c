/*
 * Fuzzer for proto/netstring.c: decode netstrings back to back from the input, as a
 * connection's read buffer would, under a few limits, and check what the decoder promises:
 * consumed bytes inside the input, the payload inside those bytes, the limit obeyed,
 * re-encoding reproducing the consumed bytes exactly, every shorter prefix asking for more.
 */
#include "fuzz_check.h"
#include "netstring.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void decode_all(const char *buf, size_t len, size_t max)
{
    size_t off = 0;

    /* Each round consumes at least 3 bytes ("0:,"), so this ends. */
    while (off < len) {
        const char *payload = NULL, *why = NULL;
        size_t plen = 0, consumed = 0;
        int rc = netstring_decode(buf + off, len - off, max, &payload, &plen, &consumed, &why);

        if (rc == NETSTRING_MORE) {
            CHECK(payload == NULL && plen == 0 && consumed == 0);
            return;
        }
        if (rc < 0) {
            CHECK(rc == NETSTRING_EBADLEN || rc == NETSTRING_ETOOLONG || rc == NETSTRING_ENOCOMMA ||
                  rc == NETSTRING_ELEADZERO);
            CHECK(why != NULL && *why != '\0');
            CHECK(payload == NULL && plen == 0 && consumed == 0);
            return;
        }
        CHECK(rc == NETSTRING_OK);
        CHECK(consumed >= 3 && consumed <= len - off);
        CHECK(plen <= max);
        CHECK(payload > buf + off && payload + plen < buf + off + consumed);
        CHECK(buf[off + consumed - 1] == ',');
        CHECK(netstring_encoded_len(plen) == consumed);

        /* Re-encoding the payload gives back exactly the consumed bytes. */
        {
            char *again = malloc(consumed);

            CHECK(again != NULL);
            CHECK(netstring_encode(again, consumed, payload, plen, NULL, 0) == consumed);
            CHECK(memcmp(again, buf + off, consumed) == 0);
            CHECK(netstring_encode(again, consumed - 1, payload, plen, NULL, 0) == 0);
            free(again);
        }

        /* Every shorter prefix is a netstring still arriving (checked while cheap). */
        if (consumed <= 256) {
            for (size_t k = 0; k < consumed; k++) {
                const char *p2 = NULL, *w2 = NULL;
                size_t l2 = 0, c2 = 0;

                CHECK(netstring_decode(buf + off, k, max, &p2, &l2, &c2, &w2) == NETSTRING_MORE);
            }
        }
        off += consumed;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Small limits reach ETOOLONG often; the socketmap request limit is the real one. */
    static const size_t limits[] = {0, 16, 64, 10101};
    const char *buf = (const char *)data;

    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
        decode_all(buf, size, limits[i]);
    return 0;
}
