/*
 * Logical lines of Postfix-style text files: main.cf-like "key = value" configuration and
 * table source files ("KEY VALUE", as read by postmap(1)). As in Postfix's readlline():
 * empty lines and lines whose first non-blank character is '#' are skipped, and a line
 * that starts with whitespace continues the previous logical line. Pure code: the caller
 * owns every buffer.
 */
#ifndef PROTO_CFLINE_H
#define PROTO_CFLINE_H

#include <stddef.h>

/* Longest logical line, after joining continuations. */
#define CFLINE_MAX 8192

enum {
    CFLINE_EOF = 0,
    CFLINE_LINE = 1,
    CFLINE_ETOOLONG = -1, /* logical line longer than the caller's buffer */
    CFLINE_ENUL = -2,     /* a NUL byte in the text */
    CFLINE_ECONT = -3,    /* a continuation line with no logical line to continue */
    CFLINE_ESYNTAX = -4,  /* (key/value split) not "key = value" or "KEY VALUE" */
};

struct cfreader {
    const char *buf;
    size_t len;
    size_t pos;
    unsigned lineno; /* physical lines consumed so far */
};

/*
 * cfreader_init - start reading buf[0..len). The reader points into buf; buf must outlive it.
 */
void cfreader_init(struct cfreader *r, const char *buf, size_t len);

/*
 * cfline_next - the next logical line, NUL-terminated in out (cap bytes), with leading and
 * trailing blanks removed and continuations joined by one space. *lineno is the physical
 * line the logical line starts on (also set on errors, for the message).
 * Returns CFLINE_LINE, CFLINE_EOF, or a negative CFLINE_E* code with a reason in *why; after
 * an error the reader has skipped the offending logical line, so reading may go on.
 */
int cfline_next(struct cfreader *r, char *out, size_t cap, unsigned *lineno, const char **why);

/*
 * cfline_keyvalue - split a configuration line "key = value" in place. The key is
 * [a-z0-9_]+; the value (possibly empty) has surrounding blanks removed. *key and *value
 * point into line. Returns 0 or CFLINE_ESYNTAX with a reason.
 */
int cfline_keyvalue(char *line, char **key, char **value, const char **why);

/*
 * cfline_table - split a table line "KEY VALUE" in place at the first run of blanks. Both
 * parts are non-empty. Returns 0 or CFLINE_ESYNTAX with a reason.
 */
int cfline_table(char *line, char **key, char **value, const char **why);

#endif
