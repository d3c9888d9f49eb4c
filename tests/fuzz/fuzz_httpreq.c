/*
 * Fuzzer for proto/httpreq.c: parse the input as a request head and check what the parser
 * promises: a path inside the head starting with '/', free of spaces and controls; the head
 * inside the input and at most HTTPREQ_MAX bytes, ending in an empty line; every shorter
 * prefix still arriving; the same answer with bytes appended after the head; a reason with
 * every error.
 */
#include "fuzz_check.h"
#include "httpreq.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data, *why = NULL;
    struct httpreq req;
    int rc;

    memset(&req, 0, sizeof(req));
    rc = httpreq_parse(buf, size, &req, &why);
    CHECK(rc == HTTPREQ_OK || rc == HTTPREQ_MORE || rc == HTTPREQ_EBAD || rc == HTTPREQ_ETOOBIG ||
          rc == HTTPREQ_EVERSION);
    if (rc < 0)
        CHECK(why != NULL && *why != '\0');
    if (rc == HTTPREQ_MORE)
        CHECK(size < HTTPREQ_MAX);
    if (rc != HTTPREQ_OK)
        return 0;

    CHECK(req.headlen >= 4 && req.headlen <= size && req.headlen <= HTTPREQ_MAX);
    CHECK(buf[req.headlen - 1] == '\n');
    CHECK(buf[req.headlen - 2] == '\n' ||
          (buf[req.headlen - 2] == '\r' && buf[req.headlen - 3] == '\n'));
    CHECK(req.path > buf && req.path + req.pathlen < buf + req.headlen);
    CHECK(req.pathlen >= 1 && req.path[0] == '/');
    for (size_t i = 0; i < req.pathlen; i++)
        CHECK((unsigned char)req.path[i] > 0x20 && (unsigned char)req.path[i] < 0x7f &&
              req.path[i] != '?' && req.path[i] != '#');
    CHECK(req.minor >= 0 && req.minor <= 9);
    CHECK(req.method == HTTPREQ_GET || req.method == HTTPREQ_HEAD || req.method == HTTPREQ_OTHER);

    /* Every shorter prefix is a head still arriving (checked while cheap). */
    if (req.headlen <= 512) {
        for (size_t k = 0; k < req.headlen; k++) {
            struct httpreq r2;
            const char *w2 = NULL;

            CHECK(httpreq_parse(buf, k, &r2, &w2) == HTTPREQ_MORE);
        }
    }
    /* The head alone parses the same. */
    {
        struct httpreq r3;
        const char *w3 = NULL;

        CHECK(httpreq_parse(buf, req.headlen, &r3, &w3) == HTTPREQ_OK);
        CHECK(r3.headlen == req.headlen && r3.path == req.path && r3.pathlen == req.pathlen &&
              r3.method == req.method && r3.minor == req.minor);
    }
    return 0;
}
