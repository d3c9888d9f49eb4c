/*
 * The socketmap protocol (Sendmail's socketmap, Postfix socketmap_table(5)): the client
 * sends one netstring "NAME KEY"; the server replies with one netstring "OK data",
 * "NOTFOUND ", "TEMP reason", "TIMEOUT reason" or "PERM reason". This module parses the
 * request payload and renders replies; it does no I/O.
 */
#ifndef PROTO_SOCKMAP_H
#define PROTO_SOCKMAP_H

#include <stddef.h>

/*
 * Limits from Postfix dict_sockmap.c and socketmap_table(5): queries up to 10,000 bytes,
 * replies up to 100,000 bytes. A request payload is the map name, a space and the key.
 */
#define SOCKMAP_MAX_KEY 10000
#define SOCKMAP_MAX_NAME 100
#define SOCKMAP_MAX_REQUEST (SOCKMAP_MAX_NAME + 1 + SOCKMAP_MAX_KEY)
#define SOCKMAP_MAX_REPLY 100000
/* Longest reply text this daemon renders; well inside SOCKMAP_MAX_REPLY. */
#define SOCKMAP_MAX_TEXT 4096

enum sockmap_status {
    SOCKMAP_OK,
    SOCKMAP_NOTFOUND,
    SOCKMAP_TEMP,
    SOCKMAP_TIMEOUT,
    SOCKMAP_PERM,
};

enum {
    SOCKMAP_EOK = 0,
    SOCKMAP_ENOSPACE = -1, /* no space between name and key */
    SOCKMAP_ENONAME = -2,  /* empty map name */
    SOCKMAP_ENAME = -3,    /* map name too long or with bytes outside printable ASCII */
    SOCKMAP_EKEY = -4,     /* key longer than SOCKMAP_MAX_KEY or containing NUL */
};

struct sockmap_request {
    const char *name; /* points into the payload; not NUL-terminated */
    size_t namelen;
    const char *key; /* points into the payload; not NUL-terminated; may be empty */
    size_t keylen;
};

/*
 * sockmap_parse - split a request payload at its first space into map name and key.
 * Returns SOCKMAP_EOK or a negative SOCKMAP_E* code with a static reason in *why.
 */
int sockmap_parse(const char *payload, size_t len, struct sockmap_request *req, const char **why);

/*
 * sockmap_status_word - "OK", "NOTFOUND", "TEMP", "TIMEOUT" or "PERM".
 */
const char *sockmap_status_word(enum sockmap_status st);

/*
 * sockmap_render - write the complete reply netstring for st and text into out (cap bytes).
 * NOTFOUND ignores text and renders "NOTFOUND " as Postfix expects. Control characters in
 * text are replaced by '?' so a reply cannot smuggle protocol bytes; text longer than the
 * reply limit is cut. Returns bytes written, or 0 when cap is too small.
 */
size_t sockmap_render(char *out, size_t cap, enum sockmap_status st, const char *text);

/*
 * The maps this daemon serves: the message tag, carried as the socketmap name (SPEC section
 * 4, "Map names").
 */
enum sockmap_map {
    SOCKMAP_MAP_POLICY,            /* ordinary mail */
    SOCKMAP_MAP_TLSOPTIONAL,       /* "RequireTLS: NO" / "TLS-Required: No" */
    SOCKMAP_MAP_REQUIRETLS,        /* REQUIRETLS-tagged mail */
    SOCKMAP_MAP_REQUIRETLS_ACCESS, /* the same decision as an access(5) action, for smtpd */
    SOCKMAP_MAP_UNKNOWN,
};

/* sockmap_map_from_name - the map for a socketmap name (exact, case-sensitive). */
enum sockmap_map sockmap_map_from_name(const char *name, size_t len);

/* sockmap_map_name - "policy", "tlsoptional", "requiretls". */
const char *sockmap_map_name(enum sockmap_map map);

#endif
