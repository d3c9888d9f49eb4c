/*
 * The request head of an HTTP/1.x request (RFC 9112 section 2 and 3), as far as a
 * metrics endpoint needs it: the method, the path of an origin-form target, the version,
 * and where the head ends. Header fields are checked for shape (RFC 9112 5: "name: value",
 * no obsolete line folding) but not interpreted; the server answers and closes, so bodies
 * and persistent connections never arise. Pure: no I/O, no allocation.
 */
#ifndef PROTO_HTTPREQ_H
#define PROTO_HTTPREQ_H

#include <stddef.h>

/* Largest request head accepted; Prometheus sends about 300 bytes. */
#define HTTPREQ_MAX 8192

enum {
    HTTPREQ_OK = 0,        /* a complete head was parsed */
    HTTPREQ_MORE = 1,      /* valid so far; the blank line ending the head has not arrived */
    HTTPREQ_EBAD = -1,     /* not an HTTP/1.x request head (400) */
    HTTPREQ_ETOOBIG = -2,  /* no complete head within HTTPREQ_MAX bytes (431) */
    HTTPREQ_EVERSION = -3, /* HTTP/2 or later, or not a version at all (505) */
};

enum httpreq_method { HTTPREQ_GET, HTTPREQ_HEAD, HTTPREQ_OTHER };

struct httpreq {
    enum httpreq_method method;
    const char *path; /* inside the caller's buffer, not NUL-terminated; starts with '/' */
    size_t pathlen;   /* the path without any "?query" */
    int minor;        /* HTTP/1.minor */
    size_t headlen;   /* bytes of the head, including the blank line that ends it */
};

/*
 * httpreq_parse - parse the head at the start of buf[0..len). Lines end in CRLF or a bare
 * LF (RFC 9112 2.2 allows a recipient to accept LF). On HTTPREQ_OK *req is filled; on
 * errors why is a static English reason; on MORE nothing is written. Bytes after the head
 * are ignored. A head that would exceed HTTPREQ_MAX is HTTPREQ_ETOOBIG once len reaches it.
 */
int httpreq_parse(const char *buf, size_t len, struct httpreq *req, const char **why);

/* httpreq_head_end - offset just past the blank line ending a head in buf[0..len), or 0. */
size_t httpreq_head_end(const char *buf, size_t len);

#endif
