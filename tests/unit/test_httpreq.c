/*
 * Unit tests for proto/httpreq.c: request heads whole and byte by byte. Each row is
 * {label, input, want rc, method, path, minor}.
 */
#include "check.h"
#include "httpreq.h"

#include <stdlib.h>

#define S(lit) lit, sizeof(lit) - 1

struct row {
    const char *label;
    const char *in;
    size_t len;
    int rc;
    int method;
    const char *path; /* on HTTPREQ_OK */
    int minor;
};

static const struct row rows[] = {
    {"prometheus scrape",
     S("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9461\r\nUser-Agent: Prometheus/2.42.0\r\n"
       "Accept: text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\nAccept-Encoding: gzip\r\n"
       "X-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n"),
     HTTPREQ_OK, HTTPREQ_GET, "/metrics", 1},
    {"HTTP/1.0 without headers", S("GET /healthz HTTP/1.0\r\n\r\n"), HTTPREQ_OK, HTTPREQ_GET,
     "/healthz", 0},
    {"bare LF lines", S("GET /metrics HTTP/1.1\nHost: x\n\n"), HTTPREQ_OK, HTTPREQ_GET, "/metrics",
     1},
    {"query string dropped", S("GET /metrics?x=1&y HTTP/1.1\r\n\r\n"), HTTPREQ_OK, HTTPREQ_GET,
     "/metrics", 1},
    {"HEAD", S("HEAD / HTTP/1.1\r\n\r\n"), HTTPREQ_OK, HTTPREQ_HEAD, "/", 1},
    {"POST parses, method other", S("POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"),
     HTTPREQ_OK, HTTPREQ_OTHER, "/metrics", 1},
    {"leading CRLF ignored", S("\r\nGET / HTTP/1.1\r\n\r\n"), HTTPREQ_OK, HTTPREQ_GET, "/", 1},
    {"empty header value", S("GET / HTTP/1.1\r\nX-Empty:\r\n\r\n"), HTTPREQ_OK, HTTPREQ_GET, "/",
     1},
    {"bytes after the head ignored", S("GET / HTTP/1.1\r\n\r\nGET /x HTTP/1.1\r\n\r\n"), HTTPREQ_OK,
     HTTPREQ_GET, "/", 1},

    {"empty", S(""), HTTPREQ_MORE, 0, NULL, 0},
    {"request line only", S("GET /metrics HTTP/1.1\r\n"), HTTPREQ_MORE, 0, NULL, 0},
    {"half a header", S("GET /metrics HTTP/1.1\r\nHost: 12"), HTTPREQ_MORE, 0, NULL, 0},
    {"garbage without newline stays MORE", S("\x16\x03\x01\x02\x00"), HTTPREQ_MORE, 0, NULL, 0},

    {"TLS hello with newlines", S("\x16\x03\x01\n\n"), HTTPREQ_EBAD, 0, NULL, 0},
    {"HTTP/0.9 request", S("GET /metrics\r\n\r\n"), HTTPREQ_EBAD, 0, NULL, 0},
    {"absolute-form target", S("GET http://x/metrics HTTP/1.1\r\n\r\n"), HTTPREQ_EBAD, 0, NULL, 0},
    {"asterisk-form target", S("OPTIONS * HTTP/1.1\r\n\r\n"), HTTPREQ_EBAD, 0, NULL, 0},
    {"two spaces", S("GET  /metrics HTTP/1.1\r\n\r\n"), HTTPREQ_EBAD, 0, NULL, 0},
    {"lower-case version", S("GET / http/1.1\r\n\r\n"), HTTPREQ_EBAD, 0, NULL, 0},
    {"version with trailing space", S("GET / HTTP/1.1 \r\n\r\n"), HTTPREQ_EBAD, 0, NULL, 0},
    {"HTTP/2", S("GET / HTTP/2.0\r\n\r\n"), HTTPREQ_EVERSION, 0, NULL, 0},
    {"method with slash", S("GE/T / HTTP/1.1\r\n\r\n"), HTTPREQ_EBAD, 0, NULL, 0},
    {"NUL in target", S("GET /a\0b HTTP/1.1\r\n\r\n"), HTTPREQ_EBAD, 0, NULL, 0},
    {"fragment in target", S("GET /a#b HTTP/1.1\r\n\r\n"), HTTPREQ_EBAD, 0, NULL, 0},
    {"folded header", S("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n"), HTTPREQ_EBAD, 0, NULL, 0},
    {"header without colon", S("GET / HTTP/1.1\r\nHost\r\n\r\n"), HTTPREQ_EBAD, 0, NULL, 0},
    {"space before colon", S("GET / HTTP/1.1\r\nHost : x\r\n\r\n"), HTTPREQ_EBAD, 0, NULL, 0},
    {"bare CR in value", S("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n"), HTTPREQ_EBAD, 0, NULL, 0},
    {"NUL in value", S("GET / HTTP/1.1\r\nA: b\0c\r\n\r\n"), HTTPREQ_EBAD, 0, NULL, 0},
    {"empty line only", S("\r\n\r\n"), HTTPREQ_MORE, 0, NULL, 0},
    {"two empty lines", S("\n\n\n"), HTTPREQ_EBAD, 0, NULL, 0},
};

static void run_row(const struct row *r)
{
    struct httpreq req;
    const char *why = NULL;
    int rc = httpreq_parse(r->in, r->len, &req, &why);

    check_int(r->label, "rc", rc, r->rc);
    if (rc < 0)
        check_true(r->label, "why set", why != NULL && *why != '\0');
    if (rc != HTTPREQ_OK || r->rc != HTTPREQ_OK)
        return;
    check_int(r->label, "method", req.method, r->method);
    check_mem(r->label, "path", req.path, req.pathlen, r->path, strlen(r->path));
    check_int(r->label, "minor", req.minor, r->minor);
    check_true(r->label, "headlen within input", req.headlen <= r->len);
    /* Every shorter prefix is still arriving. */
    for (size_t k = 0; k < req.headlen; k++) {
        struct httpreq r2;
        const char *w2 = NULL;

        if (!check_int(r->label, "prefix is MORE", httpreq_parse(r->in, k, &r2, &w2),
                       HTTPREQ_MORE)) {
            printf("(prefix %zu)\n", k);
            break;
        }
    }
}

/* A head that never ends is refused once it reaches the limit, and not before. */
static void test_limit(void)
{
    char *buf = malloc(HTTPREQ_MAX + 16);
    struct httpreq req;
    const char *why = NULL;
    size_t n;

    memcpy(buf, "GET / HTTP/1.1\r\n", 16);
    for (n = 16; n < HTTPREQ_MAX + 16; n++)
        buf[n] = 'a';
    check_int("oversized head", "just below the limit",
              httpreq_parse(buf, HTTPREQ_MAX - 1, &req, &why), HTTPREQ_MORE);
    check_int("oversized head", "at the limit", httpreq_parse(buf, HTTPREQ_MAX, &req, &why),
              HTTPREQ_ETOOBIG);
    /* A complete head ending past the limit is refused too. */
    memcpy(buf + HTTPREQ_MAX + 10, "\r\n\r\n", 4);
    buf[HTTPREQ_MAX + 8] = ':';
    check_int("oversized head", "complete but too long",
              httpreq_parse(buf, HTTPREQ_MAX + 14, &req, &why), HTTPREQ_ETOOBIG);
    free(buf);
}

int main(void)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        run_row(&rows[i]);
    test_limit();
    check_int("head_end", "CRLF", (long long)httpreq_head_end(S("a\r\n\r\nb")), 5);
    check_int("head_end", "LF", (long long)httpreq_head_end(S("a\n\nb")), 3);
    check_int("head_end", "none", (long long)httpreq_head_end(S("a\r\nb\r\n")), 0);
    return check_summary("test_httpreq");
}
