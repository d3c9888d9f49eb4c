/*
 * The syntax of configuration values that more than one key shares: numbers, durations and
 * listening endpoints (config_value.h). No I/O; the key table is config.c's.
 */
#include "config_value.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int config_parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    unsigned long v;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Durations: a number with an optional unit ms, s, m or h; a bare number is seconds. */
int config_parse_duration(const char *s, unsigned *ms, const char **why)
{
    char *end;
    unsigned long v, mul = 1000;

    errno = 0;
    v = (*s >= '0' && *s <= '9') ? strtoul(s, &end, 10) : 0;
    if (!(*s >= '0' && *s <= '9') || errno) {
        *why = "expected a duration such as 300s, 5m or 500ms";
        return -1;
    }
    if (strcmp(end, "ms") == 0)
        mul = 1;
    else if (*end == '\0' || strcmp(end, "s") == 0)
        mul = 1000;
    else if (strcmp(end, "m") == 0)
        mul = 60000;
    else if (strcmp(end, "h") == 0)
        mul = 3600000;
    else {
        *why = "expected a duration such as 300s, 5m or 500ms";
        return -1;
    }
    if (v > 86400000ul / mul) {
        *why = "duration longer than one day";
        return -1;
    }
    *ms = (unsigned)(v * mul);
    return 0;
}

int config_endpoint_parse(const char *text, struct endpoint *ep, const char **why)
{
    memset(ep, 0, sizeof(*ep));
    if (strlen(text) >= sizeof(ep->text)) {
        *why = "endpoint too long";
        return -1;
    }
    strcpy(ep->text, text);
    if (strncmp(text, "unix:", 5) == 0) {
        const char *path = text + 5;

        if (*path == '\0') {
            *why = "unix: endpoint needs a path";
            return -1;
        }
        if (strlen(path) >= sizeof(ep->path)) {
            *why = "unix socket path longer than 107 bytes";
            return -1;
        }
        ep->kind = ENDPOINT_UNIX;
        strcpy(ep->path, path);
        return 0;
    }
    if (strncmp(text, "inet:", 5) == 0) {
        const char *host = text + 5, *colon;
        unsigned long port;
        size_t hl;
        unsigned char addr[16];

        /* "inet:[::1]:PORT" for IPv6, "inet:127.0.0.1:PORT" or "inet:localhost:PORT". */
        if (*host == '[') {
            const char *close = strchr(host, ']');

            if (close == NULL || close[1] != ':') {
                *why = "IPv6 endpoint must look like inet:[::1]:PORT";
                return -1;
            }
            host++;
            hl = (size_t)(close - host);
            colon = close + 1;
        } else {
            colon = strrchr(host, ':');
            if (colon == NULL) {
                *why = "inet: endpoint must look like inet:HOST:PORT";
                return -1;
            }
            hl = (size_t)(colon - host);
        }
        if (hl == 0 || hl >= sizeof(ep->host)) {
            *why = "inet: endpoint needs a host address";
            return -1;
        }
        memcpy(ep->host, host, hl);
        ep->host[hl] = '\0';
        if (strcmp(ep->host, "localhost") == 0)
            strcpy(ep->host, "127.0.0.1");
        if (inet_pton(AF_INET, ep->host, addr) != 1 && inet_pton(AF_INET6, ep->host, addr) != 1) {
            *why = "inet: host must be a numeric IPv4 or IPv6 address or localhost";
            return -1;
        }
        if (config_parse_uint(colon + 1, 65535, &port) < 0 || port == 0) {
            *why = "inet: port must be a number from 1 to 65535";
            return -1;
        }
        ep->kind = ENDPOINT_INET;
        ep->port = (int)port;
        return 0;
    }
    *why = "endpoint must start with unix: or inet:";
    return -1;
}
