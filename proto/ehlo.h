/*
 * SMTP replies (RFC 5321 4.2) and EHLO capabilities (RFC 5321 4.1.1.1, STARTTLS RFC 3207,
 * REQUIRETLS RFC 8689 / draft-ietf-uta-smtp-require-tls): an incremental reply parser fed
 * whatever bytes the connection delivers, with fixed limits so an endless or over-long reply
 * is an error, and a keyword extractor over a complete EHLO reply. No I/O and no
 * allocation: the caller owns the struct ehlo_reply, which holds every byte it keeps.
 */
#ifndef PROTO_EHLO_H
#define PROTO_EHLO_H

#include <stddef.h>

/* RFC 5321 4.5.3.1.5: a reply line is at most 512 octets, code and CRLF included. */
#define EHLO_LINE_MAX 512
/* A whole reply: more lines or bytes than this is an error (a busy real-world EHLO reply
 * has about 15 lines and 300 bytes; these bounds stop a server that never ends its reply). */
#define EHLO_REPLY_MAX_LINES 64
#define EHLO_REPLY_MAX_BYTES 8192

enum {
    EHLO_OK = 0,
    EHLO_ESYNTAX = -1, /* not "DDD-text" / "DDD text" / "DDD", NUL or bare CR in a line */
    EHLO_ELINE = -2,   /* a line over EHLO_LINE_MAX octets */
    EHLO_ETOOBIG = -3, /* over EHLO_REPLY_MAX_LINES lines or EHLO_REPLY_MAX_BYTES bytes */
    EHLO_ECODE = -4,   /* the lines of one reply carry different codes (RFC 5321 4.2.1) */
    EHLO_ENOT250 = -5, /* (ehlo_caps_parse) the reply is not a 250: EHLO was refused */
};

/*
 * One reply being read. Results: code (the three-digit reply code, 0 until a line is
 * complete), nlines, and text: the text of each line (after the code and the separator),
 * each followed by '\n', NUL-terminated; text never holds NUL, CR or LF otherwise.
 * The other fields are the parser's.
 */
struct ehlo_reply {
    int code;
    unsigned nlines;
    size_t textlen;
    char text[EHLO_REPLY_MAX_BYTES + 1];
    /* parser state */
    size_t total;   /* bytes of this reply consumed */
    size_t linelen; /* bytes of the current line, without its line end */
    char head[4];   /* the current line's code and separator */
    int cr;         /* the previous byte was a CR */
    int state;      /* 0 reading, 1 complete, < 0 the error */
    const char *why;
};

/* ehlo_reply_init - ready r for a new reply. */
void ehlo_reply_init(struct ehlo_reply *r);

/*
 * ehlo_reply_feed - consume bytes of buf until the reply is complete. Returns 0 when all
 * len bytes were consumed and more are needed, 1 when the reply is complete (*used says how
 * many bytes of buf it took; the rest belongs to whatever follows), or a negative EHLO_E*
 * code with a static reason in *why. Lines end in CRLF; a bare LF is accepted too. Once
 * complete or failed, further calls return the same result and consume nothing.
 */
int ehlo_reply_feed(struct ehlo_reply *r, const char *buf, size_t len, size_t *used,
                    const char **why);

/* ehlo_reply_first_line - the first line's text (up to n-1 bytes, NUL-terminated) in out. */
char *ehlo_reply_first_line(const struct ehlo_reply *r, char *out, size_t n);

/* Capabilities the probe cares about; other keywords are ignored. */
enum {
    EHLO_CAP_STARTTLS = 1u << 0,            /* RFC 3207 */
    EHLO_CAP_REQUIRETLS = 1u << 1,          /* RFC 8689 */
    EHLO_CAP_PIPELINING = 1u << 2,          /* RFC 2920 */
    EHLO_CAP_8BITMIME = 1u << 3,            /* RFC 6152 */
    EHLO_CAP_SMTPUTF8 = 1u << 4,            /* RFC 6531 */
    EHLO_CAP_SIZE = 1u << 5,                /* RFC 1870 */
    EHLO_CAP_CHUNKING = 1u << 6,            /* RFC 3030 */
    EHLO_CAP_DSN = 1u << 7,                 /* RFC 3461 */
    EHLO_CAP_ENHANCEDSTATUSCODES = 1u << 8, /* RFC 2034 */
};

#define EHLO_DOMAIN_MAX 255

struct ehlo_caps {
    unsigned flags;                   /* EHLO_CAP_* */
    unsigned long size;               /* SIZE's parameter; 0: none or no limit */
    char domain[EHLO_DOMAIN_MAX + 1]; /* the greeting's first word (the server's name) */
};

/*
 * ehlo_caps_parse - the capabilities of a complete EHLO reply. RFC 5321 4.1.1.1: the first
 * line greets, every other line is "keyword *(SP param)"; keywords compare without regard
 * to case and must match whole ("STARTTLSX" is not STARTTLS); a line that is not a keyword
 * is skipped. Returns EHLO_OK, EHLO_ENOT250 when the code is not 250 (caps are then empty),
 * or EHLO_ESYNTAX when r is not a complete reply.
 */
int ehlo_caps_parse(const struct ehlo_reply *r, struct ehlo_caps *caps, const char **why);

/* ehlo_cap_name - "STARTTLS", "REQUIRETLS", ... for one EHLO_CAP_* bit; "?" otherwise. */
const char *ehlo_cap_name(unsigned cap);

#endif
