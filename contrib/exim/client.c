/*
 * The Exim module's socketmap client: one connection to tlspolicyd per Exim process, one
 * question ("TAG DOMAIN" in a netstring) at a time within TLSPOLICYD_EXIM_TIMEOUT seconds,
 * and the answer parsed: its status word, and for an OK answer the Postfix policy level and
 * its match= list translated into Exim host patterns (RFC 8461 4.1 names, Postfix's
 * hostname/nexthop/dot-nexthop). It knows nothing of Exim's API: tlspolicyd_exim.c turns
 * these answers into dlfunc results.
 *
 * Links only proto/ (netstring, sockmap); no event loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "netstring.h"
#include "sockmap.h"

#ifndef TLSPOLICYD_EXIM_TIMEOUT
#define TLSPOLICYD_EXIM_TIMEOUT 10 /* seconds for connect + one question + its answer */
#endif

/* ------------------------------------------------------------------------------------------ */
/* The connection: one per process. */

static int conn_fd = -1;
static pid_t conn_pid;            /* the process that opened conn_fd */
static char conn_endpoint[512];   /* what conn_fd is connected to */
static unsigned long n_connects;  /* connections this process opened */
static unsigned long n_questions; /* questions this process asked */

static char reply_buf[SOCKMAP_MAX_REPLY + 16];

static void conn_close(void)
{
    /* A child that inherited the parent's descriptor only drops its own copy. */
    if (conn_fd >= 0)
        close(conn_fd);
    conn_fd = -1;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int ms_left(double deadline)
{
    double left = deadline - now();
    return left <= 0 ? 0 : (int)(left * 1000) + 1;
}

/* Wait for fd to become ready for events before the deadline: 1 ready, 0 timeout, -1 error. */
static int wait_fd(int fd, short events, double deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int ms = ms_left(deadline), rc;

        if (ms == 0)
            return 0;
        rc = poll(&p, 1, ms);
        if (rc > 0)
            return 1;
        if (rc == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

/* Connect to unix:/path, /path or inet:HOST:PORT, non-blocking, within the deadline. */
static int conn_open(const char *endpoint, double deadline, char *err, size_t errlen)
{
    int fd = -1, rc, soerr = 0;
    socklen_t sl = sizeof soerr;
    struct sockaddr_storage ss;
    socklen_t salen = 0;
    struct addrinfo *ai = NULL;

    memset(&ss, 0, sizeof ss);
    if (strncmp(endpoint, "inet:", 5) == 0) {
        char host[256];
        const char *hp = endpoint + 5, *colon = strrchr(hp, ':');
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
        size_t hl;

        if (!colon || colon == hp) {
            snprintf(err, errlen, "bad socket \"%s\" (want inet:HOST:PORT)", endpoint);
            return -1;
        }
        hl = (size_t)(colon - hp);
        if (hp[0] == '[' && hl >= 2 && hp[hl - 1] == ']') {
            hp++;
            hl -= 2;
        }
        if (hl >= sizeof host) {
            snprintf(err, errlen, "bad socket \"%s\"", endpoint);
            return -1;
        }
        memcpy(host, hp, hl);
        host[hl] = 0;
        if ((rc = getaddrinfo(host, colon + 1, &hints, &ai)) != 0 || !ai) {
            snprintf(err, errlen, "bad socket \"%s\": %s", endpoint, gai_strerror(rc));
            return -1;
        }
        memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
        salen = ai->ai_addrlen;
        freeaddrinfo(ai);
    } else {
        const char *path = strncmp(endpoint, "unix:", 5) == 0 ? endpoint + 5 : endpoint;
        struct sockaddr_un *sun = (struct sockaddr_un *)&ss;

        if (path[0] != '/' || strlen(path) >= sizeof sun->sun_path) {
            snprintf(err, errlen, "bad socket \"%s\" (want unix:/path or inet:HOST:PORT)",
                     endpoint);
            return -1;
        }
        sun->sun_family = AF_UNIX;
        strcpy(sun->sun_path, path);
        salen = sizeof *sun;
    }

    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    rc = connect(fd, (struct sockaddr *)&ss, salen);
    /* On a unix socket EAGAIN means the daemon's backlog is full: no connection is under
     * way, so it is a failure (deferred), not something to wait for. */
    if (rc < 0 && (errno != EINPROGRESS || ss.ss_family == AF_UNIX)) {
        snprintf(err, errlen, "cannot connect to %s: %s", endpoint, strerror(errno));
        close(fd);
        return -1;
    }
    if (rc < 0) {
        rc = wait_fd(fd, POLLOUT, deadline);
        if (rc <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
            snprintf(err, errlen, "cannot connect to %s: %s", endpoint,
                     rc == 0 ? "timed out" : strerror(soerr ? soerr : errno));
            close(fd);
            return -1;
        }
    }
    n_connects++;
    return fd;
}

enum ask_result { ASK_OK, ASK_RETRY, ASK_FAIL };

/* One question on conn_fd. ASK_RETRY: the connection was found closed before any answer. */
static enum ask_result ask_once(const char *req, size_t reqlen, double deadline, const char **data,
                                size_t *dlen, char *err, size_t errlen)
{
    size_t off = 0, have = 0;

    while (off < reqlen) {
        ssize_t n = send(conn_fd, req + off, reqlen - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(conn_fd, POLLOUT, deadline) > 0)
                continue;
            snprintf(err, errlen, "timed out sending to %s", conn_endpoint);
            return ASK_FAIL;
        }
        if (off == 0 && (errno == EPIPE || errno == ECONNRESET))
            return ASK_RETRY;
        snprintf(err, errlen, "send to %s: %s", conn_endpoint, strerror(errno));
        return ASK_FAIL;
    }
    for (;;) {
        const char *why = "";
        size_t consumed;
        int rc = netstring_decode(reply_buf, have, SOCKMAP_MAX_REPLY, data, dlen, &consumed, &why);
        ssize_t n;

        if (rc == NETSTRING_OK) {
            if (consumed != have) {
                snprintf(err, errlen, "%s sent more than one answer", conn_endpoint);
                return ASK_FAIL;
            }
            return ASK_OK;
        }
        if (rc != NETSTRING_MORE) {
            snprintf(err, errlen, "malformed answer from %s: %s", conn_endpoint, why);
            return ASK_FAIL;
        }
        if (have == sizeof reply_buf) {
            snprintf(err, errlen, "answer from %s too long", conn_endpoint);
            return ASK_FAIL;
        }
        n = recv(conn_fd, reply_buf + have, sizeof reply_buf - have, 0);
        if (n > 0) {
            have += (size_t)n;
            continue;
        }
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            if (have == 0)
                return ASK_RETRY; /* closed while idle (idle_timeout, restart): ask again */
            snprintf(err, errlen, "%s closed the connection mid-answer", conn_endpoint);
            return ASK_FAIL;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_fd(conn_fd, POLLIN, deadline) > 0)
                continue;
            snprintf(err, errlen, "no answer from %s within %d s", conn_endpoint,
                     TLSPOLICYD_EXIM_TIMEOUT);
            return ASK_FAIL;
        }
        snprintf(err, errlen, "recv from %s: %s", conn_endpoint, strerror(errno));
        return ASK_FAIL;
    }
}

/*
 * Ask the daemon "tag key" and return its reply payload (in reply_buf, not NUL-terminated
 * by the daemon; terminated here). Returns 0, or -1 with err filled in.
 */
static int ask(const char *endpoint, const char *tag, const char *key, const char **data,
               size_t *dlen, char *err, size_t errlen)
{
    static char req[SOCKMAP_MAX_REQUEST + 32];
    size_t tl = strlen(tag), kl = strlen(key), reqlen;
    char payload[SOCKMAP_MAX_REQUEST + 1];
    double deadline = now() + TLSPOLICYD_EXIM_TIMEOUT;

    if (tl == 0 || tl > SOCKMAP_MAX_NAME || kl > SOCKMAP_MAX_KEY) {
        snprintf(err, errlen, "tag or domain too long");
        return -1;
    }
    memcpy(payload, tag, tl);
    payload[tl] = ' ';
    memcpy(payload + tl + 1, key, kl);
    reqlen = netstring_encode(req, sizeof req, payload, tl + 1 + kl, NULL, 0);
    if (reqlen == 0) {
        snprintf(err, errlen, "request too long");
        return -1;
    }

    /* A connection inherited over fork() belongs to the parent; one to another endpoint is
     * of no use. */
    if (conn_fd >= 0 && (conn_pid != getpid() || strcmp(conn_endpoint, endpoint) != 0))
        conn_close();

    for (int attempt = 0; attempt < 2; attempt++) {
        int fresh = 0;
        enum ask_result r;

        if (conn_fd < 0) {
            if (strlen(endpoint) >= sizeof conn_endpoint) {
                snprintf(err, errlen, "socket name too long");
                return -1;
            }
            if ((conn_fd = conn_open(endpoint, deadline, err, errlen)) < 0)
                return -1;
            conn_pid = getpid();
            strcpy(conn_endpoint, endpoint);
            fresh = 1;
        }
        n_questions++;
        r = ask_once(req, reqlen, deadline, data, dlen, err, errlen);
        if (r == ASK_OK) {
            ((char *)*data)[*dlen] = 0; /* the ',' after the payload becomes the terminator */
            return 0;
        }
        conn_close();
        if (r == ASK_FAIL)
            return -1;
        if (fresh) {
            snprintf(err, errlen, "%s closed the connection without answering", endpoint);
            return -1;
        }
        /* An idle connection the daemon had closed: one more try on a new one. */
    }
    snprintf(err, errlen, "%s closed the connection without answering", endpoint);
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* The answer, parsed. */

static const char *const levels[] = {"none",        "may",    "encrypt", "dane", "dane-only",
                                     "fingerprint", "verify", "secure",  NULL};

/* Is s a host name pattern that is safe inside an Exim host list (no list or lookup syntax)? */
static int safe_name(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '.' ||
              *s == '_'))
            return 0;
    return 1;
}

static void add_pattern(struct client_answer *a, const char *p, const char *domain)
{
    char buf[300], dom[256];
    size_t i;

    if (a->bad[0])
        return;
    if (a->npat == CLIENT_MAX_PATTERNS) {
        snprintf(a->bad, sizeof a->bad, "more than %d match patterns", CLIENT_MAX_PATTERNS);
        return;
    }
    for (i = 0; domain[i] && i < sizeof dom - 1; i++)
        dom[i] = (char)((domain[i] >= 'A' && domain[i] <= 'Z') ? domain[i] + 32 : domain[i]);
    dom[i] = 0;
    if (i && dom[i - 1] == '.')
        dom[i - 1] = 0;

    if (strcasecmp(p, "hostname") == 0) {
        /* Postfix: the certificate names the MX host. Exim checks that for every host. */
        snprintf(buf, sizeof buf, "*");
    } else if (strcasecmp(p, "nexthop") == 0) {
        snprintf(buf, sizeof buf, "%s", dom);
    } else if (strcasecmp(p, "dot-nexthop") == 0) {
        snprintf(buf, sizeof buf, "*.%s", dom);
    } else if (p[0] == '.') {
        snprintf(buf, sizeof buf, "*%s", p); /* Postfix ".example.net": any name below */
    } else {
        snprintf(buf, sizeof buf, "%s", p);
    }
    for (char *c = buf; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c + 32);
    if (strcmp(buf, "*") != 0 && !safe_name(buf[0] == '*' && buf[1] == '.' ? buf + 2 : buf)) {
        snprintf(a->bad, sizeof a->bad, "match pattern \"%.60s\" is not a host name", p);
        return;
    }
    if (strlen(buf) >= sizeof a->pat[0]) {
        snprintf(a->bad, sizeof a->bad, "match pattern too long");
        return;
    }
    /* In an Exim host list a plain name is looked up and compared by address; only
     * wildcards and regular expressions are compared with the host's name. An exact name
     * becomes an anchored regular expression. */
    if (buf[0] != '*') {
        char rx[600];
        size_t o = (size_t)snprintf(rx, sizeof rx, "^(?i)");
        for (const char *c = buf; *c && o < sizeof rx - 4; c++) {
            if (*c == '.')
                rx[o++] = '\\';
            rx[o++] = *c;
        }
        rx[o++] = '$';
        rx[o] = 0;
        if (o >= sizeof a->pat[0]) {
            snprintf(a->bad, sizeof a->bad, "match pattern too long");
            return;
        }
        snprintf(a->pat[a->npat++], sizeof a->pat[0], "%.255s", rx);
        return;
    }
    snprintf(a->pat[a->npat++], sizeof a->pat[0], "%.255s", buf);
}

/* Split the Postfix policy "level attr=value ... { ... }" and translate what Exim needs. */
static void parse_policy(struct client_answer *a, const char *text, const char *domain)
{
    char copy[SOCKMAP_MAX_TEXT + 1];
    char *save = NULL, *tok;
    const char *match = NULL;
    int depth = 0, first = 1;

    snprintf(copy, sizeof copy, "%s", text);
    for (tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        /* Postfix 3.10 attributes such as "{ policy_string = ... }": skipped. */
        if (tok[0] == '{')
            depth++;
        if (depth) {
            if (tok[strlen(tok) - 1] == '}')
                depth--;
            continue;
        }
        if (first) {
            first = 0;
            snprintf(a->level, sizeof a->level, "%s", tok);
            continue;
        }
        if (strncasecmp(tok, "match=", 6) == 0)
            match = text + (tok - copy) + 6;
    }
    if (!a->level[0]) {
        snprintf(a->bad, sizeof a->bad, "empty policy");
        return;
    }
    int known = 0;
    for (int i = 0; levels[i]; i++)
        known |= strcasecmp(a->level, levels[i]) == 0;
    if (!known) {
        snprintf(a->bad, sizeof a->bad, "unknown level \"%.40s\"", a->level);
        return;
    }
    for (char *c = a->level; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c + 32);
    if (strcmp(a->level, "fingerprint") == 0) {
        snprintf(a->bad, sizeof a->bad,
                 "level fingerprint (certificate pinning) cannot be enforced by Exim's smtp "
                 "transport");
        return;
    }
    if (strcmp(a->level, "verify") != 0 && strcmp(a->level, "secure") != 0)
        return;
    if (!match) /* Postfix's defaults */
        match = strcmp(a->level, "secure") == 0 ? "nexthop:dot-nexthop" : "hostname";
    /* The match list ends at the next blank; patterns are separated by ':' (or ','). */
    char list[SOCKMAP_MAX_TEXT + 1];
    size_t n = strcspn(match, " \t");
    snprintf(list, sizeof list, "%.*s", (int)n, match);
    save = NULL;
    for (tok = strtok_r(list, ":,", &save); tok; tok = strtok_r(NULL, ":,", &save))
        add_pattern(a, tok, domain);
    if (!a->bad[0] && a->npat == 0)
        snprintf(a->bad, sizeof a->bad, "empty match list");
}

/* The status word, then for OK the policy (see client.h). */
int client_parse_reply(const char *data, size_t dlen, const char *domain, struct client_answer *a)
{
    static const struct {
        const char *word;
        enum client_status st;
    } words[] = {{"OK", CLIENT_OK},
                 {"NOTFOUND", CLIENT_NOTFOUND},
                 {"TEMP", CLIENT_TEMP},
                 {"TIMEOUT", CLIENT_TIMEOUT},
                 {"PERM", CLIENT_PERM}};

    memset(a, 0, sizeof *a);
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t wl = strlen(words[i].word);
        if (dlen >= wl && memcmp(data, words[i].word, wl) == 0 && (dlen == wl || data[wl] == ' ')) {
            a->st = words[i].st;
            a->text = data + wl + (dlen > wl);
            if (a->st == CLIENT_OK)
                parse_policy(a, a->text, domain);
            return 0;
        }
    }
    return -1;
}

/* Ask and parse (see client.h). */
int client_lookup(const char *endpoint, const char *tag, const char *domain,
                  struct client_answer *a, char *err, size_t errlen)
{
    const char *data;
    size_t dlen;

    memset(a, 0, sizeof *a);
    if (ask(endpoint, tag, domain, &data, &dlen, err, errlen) < 0)
        return -1;
    if (client_parse_reply(data, dlen, domain, a) == 0)
        return 0;
    snprintf(err, errlen, "unexpected answer from %s: \"%.80s\"", endpoint, data);
    conn_close(); /* whatever that was, do not trust the stream any more */
    return -1;
}

void client_stats(unsigned long *connects, unsigned long *questions)
{
    *connects = n_connects;
    *questions = n_questions;
}
