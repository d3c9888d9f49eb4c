/*
 * Helpers shared by bench_loadgen and bench_ceiling (see benchutil.h): fatal errors and
 * allocation, endpoint parsing, and the netstring framer both run on every read.
 */
#include "benchutil.h"

#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

const char *bench_progname = "bench";

void bench_fatal(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "%s: ", bench_progname);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

void *bench_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (p == NULL)
        bench_fatal("out of memory (%zu bytes)", n);
    return p;
}

void *bench_xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (p == NULL)
        bench_fatal("out of memory (%zu bytes)", n);
    return p;
}

void *bench_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (p == NULL)
        bench_fatal("out of memory (%zu x %zu bytes)", n, size);
    return p;
}

void bench_unix_path(const char *spec, char *out, size_t outlen)
{
    const char *path = spec + 5;

    if (*path == '\0' || strlen(path) >= outlen)
        bench_fatal("%s: unix socket path empty or longer than %zu bytes", spec, outlen - 1);
    strcpy(out, path);
}

struct addrinfo *bench_inet_addrs(const char *spec, int flags)
{
    char host[256];
    const char *h = spec + 5, *port, *end;
    struct addrinfo hints, *res = NULL;
    int rc;

    /* inet:HOST:PORT, with an IPv6 address in brackets: inet:[::1]:PORT. */
    if (*h == '[') {
        end = strchr(h, ']');
        if (end == NULL || end[1] != ':')
            bench_fatal("%s: expected inet:[ADDRESS]:PORT", spec);
        h++;
        port = end + 2;
    } else {
        end = strrchr(h, ':');
        if (end == NULL)
            bench_fatal("%s: expected inet:HOST:PORT", spec);
        port = end + 1;
    }
    if (end == h || (size_t)(end - h) >= sizeof(host) || *port == '\0')
        bench_fatal("%s: empty or overlong host or port", spec);
    memcpy(host, h, (size_t)(end - h));
    host[end - h] = '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | flags;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        bench_fatal("%s: %s", spec, gai_strerror(rc));
    return res;
}

void bench_frame_init(struct bench_frame *f, size_t max, const char *toolong)
{
    memset(f, 0, sizeof(*f));
    f->state = BENCH_FRAME_LEN;
    f->max = max;
    f->toolong = toolong;
}

int bench_frame_feed(struct bench_frame *f, const char *p, size_t n,
                     void (*data)(void *arg, const char *piece, size_t len, size_t off), void *arg,
                     size_t *used, const char **why)
{
    size_t i = 0;

    while (i < n) {
        switch (f->state) {
        case BENCH_FRAME_LEN:
            if (p[i] >= '0' && p[i] <= '9') {
                /* A leading zero makes two spellings of one length; the daemon's decoder
                 * refuses it, and so does this one. */
                if (f->digits == 1 && f->len == 0) {
                    *why = "length with a leading zero";
                    goto bad;
                }
                /* len still holds the previous netstring's length until the first digit. */
                f->len = (f->digits ? f->len * 10 : 0) + (size_t)(p[i] - '0');
                f->digits++;
                if (f->len > f->max) {
                    *why = f->toolong;
                    goto bad;
                }
                i++;
                break;
            }
            if (p[i] != ':' || f->digits == 0) {
                *why = "bad length prefix";
                goto bad;
            }
            i++;
            f->pos = 0;
            f->state = f->len ? BENCH_FRAME_DATA : BENCH_FRAME_COMMA;
            break;
        case BENCH_FRAME_DATA: {
            size_t m = f->len - f->pos < n - i ? f->len - f->pos : n - i;

            if (data != NULL)
                data(arg, p + i, m, f->pos);
            f->pos += m;
            i += m;
            if (f->pos == f->len)
                f->state = BENCH_FRAME_COMMA;
            break;
        }
        case BENCH_FRAME_COMMA:
            if (p[i] != ',') {
                *why = "payload not followed by ','";
                goto bad;
            }
            f->state = BENCH_FRAME_LEN;
            f->digits = 0;
            *used = i + 1;
            return 1;
        }
    }
    *used = i;
    return 0;
bad:
    *used = i;
    return -1;
}
