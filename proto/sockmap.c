/*
 * Socketmap request parsing and reply rendering (Postfix socketmap_table(5)).
 */
#include "sockmap.h"
#include "netstring.h"

#include <string.h>

int sockmap_parse(const char *payload, size_t len, struct sockmap_request *req, const char **why)
{
    const char *sp = memchr(payload, ' ', len);

    if (sp == NULL) {
        *why = "request has no space between map name and key";
        return SOCKMAP_ENOSPACE;
    }
    if (sp == payload) {
        *why = "request has an empty map name";
        return SOCKMAP_ENONAME;
    }
    if ((size_t)(sp - payload) > SOCKMAP_MAX_NAME) {
        *why = "map name is too long";
        return SOCKMAP_ENAME;
    }
    /* Map names are configuration words; refuse anything a log line could misread. */
    for (const char *p = payload; p < sp; p++) {
        if (*p <= ' ' || *p > '~') {
            *why = "map name contains a control, blank or non-ASCII byte";
            return SOCKMAP_ENAME;
        }
    }
    req->name = payload;
    req->namelen = (size_t)(sp - payload);
    req->key = sp + 1;
    req->keylen = len - req->namelen - 1;
    if (req->keylen > SOCKMAP_MAX_KEY) {
        *why = "key is longer than 10000 bytes";
        return SOCKMAP_EKEY;
    }
    if (memchr(req->key, '\0', req->keylen) != NULL) {
        *why = "key contains a NUL byte";
        return SOCKMAP_EKEY;
    }
    return SOCKMAP_EOK;
}

const char *sockmap_status_word(enum sockmap_status st)
{
    switch (st) {
    case SOCKMAP_OK:
        return "OK";
    case SOCKMAP_NOTFOUND:
        return "NOTFOUND";
    case SOCKMAP_TEMP:
        return "TEMP";
    case SOCKMAP_TIMEOUT:
        return "TIMEOUT";
    case SOCKMAP_PERM:
        return "PERM";
    }
    return "TEMP";
}

size_t sockmap_render(char *out, size_t cap, enum sockmap_status st, const char *text)
{
    /* The payload limit leaves room for the status word in Postfix's 100,000-byte reply. */
    char body[SOCKMAP_MAX_TEXT + 16];
    const char *word = sockmap_status_word(st);
    size_t wl = strlen(word), n = 0;

    memcpy(body, word, wl);
    body[wl] = ' ';
    n = wl + 1;
    /* The text is cut at SOCKMAP_MAX_TEXT bytes whatever the status word's length. */
    if (st != SOCKMAP_NOTFOUND && text != NULL) {
        for (const char *p = text; *p && p - text < SOCKMAP_MAX_TEXT; p++)
            body[n++] = ((unsigned char)*p < ' ' || *p == 0x7f) ? '?' : *p;
    }
    /* "NOTFOUND " keeps its space; other replies carry no trailing blank when text is empty. */
    if (st != SOCKMAP_NOTFOUND && n == wl + 1)
        n = wl;
    return netstring_encode(out, cap, body, n, NULL, 0);
}

static const char *const map_names[] = {
    [SOCKMAP_MAP_POLICY] = "policy",
    [SOCKMAP_MAP_TLSOPTIONAL] = "tlsoptional",
    [SOCKMAP_MAP_REQUIRETLS] = "requiretls",
    [SOCKMAP_MAP_REQUIRETLS_ACCESS] = "requiretls-access",
};

enum sockmap_map sockmap_map_from_name(const char *name, size_t len)
{
    for (int m = 0; m < SOCKMAP_MAP_UNKNOWN; m++)
        if (strlen(map_names[m]) == len && memcmp(map_names[m], name, len) == 0)
            return (enum sockmap_map)m;
    return SOCKMAP_MAP_UNKNOWN;
}

const char *sockmap_map_name(enum sockmap_map map)
{
    return map < SOCKMAP_MAP_UNKNOWN ? map_names[map] : "unknown";
}
