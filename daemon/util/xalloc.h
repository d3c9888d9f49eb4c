/*
 * Allocation that either succeeds or does not return (compare Postfix util/mymalloc.c):
 * the daemon has no sensible way to go on without memory, so it logs and aborts.
 */
#ifndef DAEMON_XALLOC_H
#define DAEMON_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* xstrndup - a copy of s cut to n bytes, sized to what it holds (strndup(3)). */
char *xstrndup(const char *s, size_t n);

#endif
