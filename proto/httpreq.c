/*
 * HTTP/1.x request heads (RFC 9112). The parser waits for the whole head (it ends with an
 * empty line) and then checks it line by line, so a head is either accepted whole or
 * refused with a reason; a trickling client costs one bounded buffer and no work per byte
 * beyond looking for the end. Only origin-form targets ("/path?query") are accepted: the
 * server answers for itself, never as a proxy (RFC 9112 3.2.1).
 */
#include "httpreq.h"

#include <string.h>

/* RFC 9110 5.6.2: tchar, the characters of a token (methods, field names). */
static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* RFC 3986 characters allowed in an origin-form target: visible ASCII, no '#'. */
static int is_target_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '#';
}

size_t httpreq_head_end(const char *buf, size_t len)
{
    /* The head ends at the first empty line: "\n\r\n" or "\n\n" (a leading CRLF aside). */
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (i + 1 < len && buf[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* Length of the line at p (up to end), without its CRLF or LF; *next is the next line. */
static int line_at(const char *p, const char *end, size_t *linelen, const char **next)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));

    if (nl == NULL)
        return -1;
    *next = nl + 1;
    if (nl > p && nl[-1] == '\r')
        nl--;
    *linelen = (size_t)(nl - p);
    return 0;
}

static int parse_request_line(const char *p, size_t n, struct httpreq *req, const char **why)
{
    const char *end = p + n, *sp1, *sp2, *q;

    /* RFC 9112 3: method SP request-target SP HTTP-version, single spaces. */
    sp1 = memchr(p, ' ', n);
    if (sp1 == NULL || sp1 == p) {
        *why = "request line is not METHOD TARGET VERSION";
        return HTTPREQ_EBAD;
    }
    for (q = p; q < sp1; q++) {
        if (!is_tchar((unsigned char)*q)) {
            *why = "invalid character in method";
            return HTTPREQ_EBAD;
        }
    }
    sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1));
    if (sp2 == NULL || sp2 == sp1 + 1) {
        *why = "request line is not METHOD TARGET VERSION";
        return HTTPREQ_EBAD;
    }
    if (sp1[1] != '/') {
        *why = "request target is not a path (origin-form)";
        return HTTPREQ_EBAD;
    }
    for (q = sp1 + 1; q < sp2; q++) {
        if (!is_target_char((unsigned char)*q)) {
            *why = "invalid character in request target";
            return HTTPREQ_EBAD;
        }
    }
    /* RFC 9112 2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive. */
    if ((size_t)(end - sp2 - 1) != 8 || memcmp(sp2 + 1, "HTTP/", 5) != 0 || sp2[7] != '.' ||
        sp2[6] < '0' || sp2[6] > '9' || sp2[8] < '0' || sp2[8] > '9') {
        *why = "request line does not end in an HTTP version";
        return HTTPREQ_EBAD;
    }
    if (sp2[6] != '1') {
        *why = "only HTTP/1.x is served";
        return HTTPREQ_EVERSION;
    }
    if ((size_t)(sp1 - p) == 3 && memcmp(p, "GET", 3) == 0)
        req->method = HTTPREQ_GET;
    else if ((size_t)(sp1 - p) == 4 && memcmp(p, "HEAD", 4) == 0)
        req->method = HTTPREQ_HEAD;
    else
        req->method = HTTPREQ_OTHER;
    req->path = sp1 + 1;
    q = memchr(req->path, '?', (size_t)(sp2 - req->path));
    req->pathlen = (size_t)((q ? q : sp2) - req->path);
    req->minor = sp2[8] - '0';
    return HTTPREQ_OK;
}

/* RFC 9112 5: field-name ":" OWS field-value OWS; no whitespace before the colon. */
static int check_field_line(const char *p, size_t n, const char **why)
{
    const char *colon = memchr(p, ':', n);

    if (n > 0 && (p[0] == ' ' || p[0] == '\t')) {
        *why = "obsolete line folding in header (RFC 9112 5.2)";
        return HTTPREQ_EBAD;
    }
    if (colon == NULL || colon == p) {
        *why = "header line without a field name and colon";
        return HTTPREQ_EBAD;
    }
    for (const char *q = p; q < colon; q++) {
        if (!is_tchar((unsigned char)*q)) {
            *why = "invalid character in header field name";
            return HTTPREQ_EBAD;
        }
    }
    for (const char *q = colon + 1; q < p + n; q++) {
        unsigned char c = (unsigned char)*q;

        /* RFC 9110 5.5: field values hold no CR, LF or NUL (other controls: obs-text aside). */
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            *why = "control character in header field value";
            return HTTPREQ_EBAD;
        }
    }
    return HTTPREQ_OK;
}

int httpreq_parse(const char *buf, size_t len, struct httpreq *req, const char **why)
{
    struct httpreq r;
    const char *p = buf, *end, *next;
    size_t headlen, n;
    int rc;

    /* RFC 9112 2.2: a server should ignore at least one empty line before the request. */
    if (len >= 2 && buf[0] == '\r' && buf[1] == '\n')
        p += 2;
    else if (len >= 1 && buf[0] == '\n')
        p += 1;
    headlen = httpreq_head_end(p, len - (size_t)(p - buf));
    if (headlen == 0) {
        if (len >= HTTPREQ_MAX) {
            *why = "request head larger than 8192 bytes";
            return HTTPREQ_ETOOBIG;
        }
        return HTTPREQ_MORE;
    }
    headlen += (size_t)(p - buf);
    if (headlen > HTTPREQ_MAX) {
        *why = "request head larger than 8192 bytes";
        return HTTPREQ_ETOOBIG;
    }
    end = buf + headlen;
    memset(&r, 0, sizeof(r));
    if (line_at(p, end, &n, &next) < 0 || n == 0) {
        *why = "empty request line";
        return HTTPREQ_EBAD;
    }
    rc = parse_request_line(p, n, &r, why);
    if (rc != HTTPREQ_OK)
        return rc;
    for (p = next; p < end; p = next) {
        if (line_at(p, end, &n, &next) < 0) {
            *why = "header line without an end";
            return HTTPREQ_EBAD;
        }
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            if (p[i] == '\r' || p[i] == '\0') {
                *why = "bare CR or NUL in header";
                return HTTPREQ_EBAD;
            }
        }
        rc = check_field_line(p, n, why);
        if (rc != HTTPREQ_OK)
            return rc;
    }
    r.headlen = headlen;
    *req = r;
    return HTTPREQ_OK;
}
