/*
 * Logical-line reader for Postfix-style configuration and table files (compare Postfix
 * util/readlline.c): comments, blank lines and continuation lines, with line numbers kept
 * for error messages. Everything is copied into the caller's buffer.
 */
#include "cfline.h"

#include <string.h>

static int blank(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

void cfreader_init(struct cfreader *r, const char *buf, size_t len)
{
    r->buf = buf;
    r->len = len;
    r->pos = 0;
    r->lineno = 0;
}

/* One physical line starting at r->pos: [*start, *end) without the newline. */
static void physical(struct cfreader *r, size_t *start, size_t *end)
{
    const char *nl = memchr(r->buf + r->pos, '\n', r->len - r->pos);

    *start = r->pos;
    *end = nl ? (size_t)(nl - r->buf) : r->len;
    r->pos = nl ? *end + 1 : r->len;
    r->lineno++;
}

/* Is the physical line at [s, e) empty, blank or a comment? */
static int skippable(const char *buf, size_t s, size_t e)
{
    while (s < e && blank((unsigned char)buf[s]))
        s++;
    return s == e || buf[s] == '#';
}

int cfline_next(struct cfreader *r, char *out, size_t cap, unsigned *lineno, const char **why)
{
    size_t s, e, n = 0;
    int err = 0;

    /* Find the first line of the next logical line. */
    for (;;) {
        if (r->pos >= r->len)
            return CFLINE_EOF;
        physical(r, &s, &e);
        if (skippable(r->buf, s, e))
            continue;
        *lineno = r->lineno;
        if (blank((unsigned char)r->buf[s])) {
            /* Postfix: a continuation line with nothing before it is an error. Skip any
             * further continuation lines so the caller can report once and go on. */
            err = CFLINE_ECONT;
            *why = "line starts with whitespace but continues nothing";
        }
        break;
    }

    /* Append this physical line and every continuation line after it. */
    for (;;) {
        size_t a = s, b = e;

        while (a < b && blank((unsigned char)r->buf[a]))
            a++;
        while (b > a && blank((unsigned char)r->buf[b - 1]))
            b--;
        if (!err && memchr(r->buf + a, '\0', b - a) != NULL) {
            err = CFLINE_ENUL;
            *why = "line contains a NUL byte";
        }
        if (!err) {
            size_t need = (n ? 1 : 0) + (b - a) + 1;

            if (n + need > cap) {
                err = CFLINE_ETOOLONG;
                *why = "logical line too long";
            } else {
                if (n)
                    out[n++] = ' ';
                memcpy(out + n, r->buf + a, b - a);
                n += b - a;
            }
        }
        /* Find the next continuation line: skip blank and comment lines (as Postfix does
         * inside a logical line), stop at a line that starts with a non-blank. */
        for (;;) {
            size_t save_pos = r->pos;
            unsigned save_line = r->lineno;

            if (r->pos >= r->len)
                goto done;
            physical(r, &s, &e);
            if (skippable(r->buf, s, e))
                continue;
            if (!blank((unsigned char)r->buf[s])) {
                r->pos = save_pos;
                r->lineno = save_line;
                goto done;
            }
            break;
        }
    }
done:
    if (err)
        return err;
    if (cap > 0)
        out[n] = '\0';
    return CFLINE_LINE;
}

int cfline_keyvalue(char *line, char **key, char **value, const char **why)
{
    char *p = line, *k = line, *v;

    while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')
        p++;
    if (p == k) {
        *why = "expected a parameter name (lower-case letters, digits, '_')";
        return CFLINE_ESYNTAX;
    }
    v = p;
    while (blank((unsigned char)*v))
        v++;
    if (*v != '=') {
        *why = "expected '=' after the parameter name";
        return CFLINE_ESYNTAX;
    }
    *p = '\0';
    v++;
    while (blank((unsigned char)*v))
        v++;
    /* The header promises a value without surrounding blanks even for a line that did not
     * come from cfline_next(). */
    for (p = v + strlen(v); p > v && blank((unsigned char)p[-1]); p--)
        p[-1] = '\0';
    *key = k;
    *value = v;
    return 0;
}

int cfline_table(char *line, char **key, char **value, const char **why)
{
    char *p = line, *v;

    while (*p && !blank((unsigned char)*p))
        p++;
    if (p == line || *p == '\0') {
        *why = "expected a key, whitespace and a value";
        return CFLINE_ESYNTAX;
    }
    *p = '\0';
    v = p + 1;
    while (blank((unsigned char)*v))
        v++;
    if (*v == '\0') {
        *why = "expected a value after the key";
        return CFLINE_ESYNTAX;
    }
    *key = line;
    *value = v;
    return 0;
}
