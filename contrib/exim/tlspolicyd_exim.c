/*
 * tlspolicyd_exim.so - Exim ${dlfunc} functions that ask tlspolicyd for a recipient domain's
 * TLS policy and hand back strings shaped for Exim's router and smtp transport options.
 *
 *   ${dlfunc{/usr/lib/tlspolicyd/tlspolicyd_exim.so}{FUNCTION}{DOMAIN}{TAG}{SOCKET}}
 *
 * TAG is the daemon's map name: policy (ordinary mail), requiretls (REQUIRETLS-tagged mail)
 * or tlsoptional (TLS-Required: No); empty means policy. SOCKET is optional:
 * unix:/path, /path, or inet:HOST:PORT; the default is TLSPOLICYD_EXIM_SOCKET.
 *
 * The module holds no policy logic: it asks the daemon (socketmap, one netstring "TAG DOMAIN"
 * per question) and translates the answer, a Postfix TLS policy such as
 * "secure match=mx1.example.com:.example.net servername=hostname", into Exim terms.
 *
 * decide() is what contrib/exim/debian uses: one question per address, at routing time (as
 * root), answered as a record the routers and the transports read from a router variable,
 * so the transports (as Debian-exim) never ask; it never fails its expansion (a deferral
 * with the reason instead, which keeps Exim's paniclog empty).
 *
 * It keeps one connection per Exim process for the life of the process (a forked child
 * opens its own), waits at most TLSPOLICYD_EXIM_TIMEOUT seconds for an answer, retries once
 * on a connection the daemon closed, and fails closed: when the daemon cannot be asked, or
 * answers TEMP/TIMEOUT/PERM, decide() defers, the other decision functions return DEFER and
 * the host-list functions return their strictest list (Exim treats a failed host-list
 * expansion as "not in the list", which for hosts_require_tls would mean "TLS not
 * required"; but "*" for hosts_require_dane is a bounce for a host without DNSSEC, so they
 * do not belong in a transport).
 *
 * Links only proto/ (netstring, sockmap); no event loop.
 */
#define DLFUNC_IMPL
#include <local_scan.h>

#include <errno.h>
#include <fcntl.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "netstring.h"
#include "sockmap.h"

#ifndef TLSPOLICYD_EXIM_SOCKET
#define TLSPOLICYD_EXIM_SOCKET "/run/tlspolicyd/tlspolicyd.sock"
#endif
#ifndef TLSPOLICYD_EXIM_TIMEOUT
#define TLSPOLICYD_EXIM_TIMEOUT 10 /* seconds for connect + one question + its answer */
#endif

/* Exim's dlfunc entry points: int fn(uschar **yield, int argc, uschar *argv[]). */
int query(uschar **yield, int argc, uschar *argv[]);
int route(uschar **yield, int argc, uschar *argv[]);
int level(uschar **yield, int argc, uschar *argv[]);
int require_tls(uschar **yield, int argc, uschar *argv[]);
int verify_hosts(uschar **yield, int argc, uschar *argv[]);
int require_dane(uschar **yield, int argc, uschar *argv[]);
int try_dane(uschar **yield, int argc, uschar *argv[]);
int avoid_tls(uschar **yield, int argc, uschar *argv[]);
int ignore_hosts(uschar **yield, int argc, uschar *argv[]);
int stats(uschar **yield, int argc, uschar *argv[]);
int decide(uschar **yield, int argc, uschar *argv[]);

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

enum status { ST_OK, ST_NOTFOUND, ST_TEMP, ST_TIMEOUT, ST_PERM };

#define MAX_PATTERNS 64

struct answer {
    enum status st;
    const char *text; /* after the status word: the policy, or the reason */
    char level[32];   /* OK: the level word */
    int npat;         /* OK, verify/secure: the match list, already in Exim's host-list form */
    char pat[MAX_PATTERNS][256];
    char bad[160]; /* non-empty: the answer cannot be expressed in Exim (the reason) */
};

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

static void add_pattern(struct answer *a, const char *p, const char *domain)
{
    char buf[300], dom[256];
    size_t i;

    if (a->bad[0])
        return;
    if (a->npat == MAX_PATTERNS) {
        snprintf(a->bad, sizeof a->bad, "more than %d match patterns", MAX_PATTERNS);
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
static void parse_policy(struct answer *a, const char *text, const char *domain)
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

/*
 * Ask and parse. Returns 0 when the daemon answered (any status), -1 when it could not be
 * asked (err filled in).
 */
static int lookup(int argc, uschar *argv[], struct answer *a, char *err, size_t errlen)
{
    const char *domain, *tag, *endpoint, *data;
    size_t dlen;

    memset(a, 0, sizeof *a);
    if (argc < 1 || argc > 3) {
        snprintf(err, errlen, "usage: {DOMAIN}{TAG}{SOCKET}: TAG and SOCKET optional");
        return -1;
    }
    domain = (const char *)argv[0];
    tag = argc > 1 && argv[1][0] ? (const char *)argv[1] : "policy";
    endpoint = argc > 2 && argv[2][0] ? (const char *)argv[2] : TLSPOLICYD_EXIM_SOCKET;
    if (!domain[0]) {
        snprintf(err, errlen, "empty domain");
        return -1;
    }
    if (ask(endpoint, tag, domain, &data, &dlen, err, errlen) < 0)
        return -1;

    static const struct {
        const char *word;
        enum status st;
    } words[] = {{"OK", ST_OK},
                 {"NOTFOUND", ST_NOTFOUND},
                 {"TEMP", ST_TEMP},
                 {"TIMEOUT", ST_TIMEOUT},
                 {"PERM", ST_PERM}};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t wl = strlen(words[i].word);
        if (dlen >= wl && memcmp(data, words[i].word, wl) == 0 && (dlen == wl || data[wl] == ' ')) {
            a->st = words[i].st;
            a->text = data + wl + (dlen > wl);
            if (a->st == ST_OK)
                parse_policy(a, a->text, domain);
            return 0;
        }
    }
    snprintf(err, errlen, "unexpected answer from %s: \"%.80s\"", endpoint, data);
    conn_close(); /* whatever that was, do not trust the stream any more */
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* Results, in Exim's memory: untainted, like the result of a lookup. */

static int give(uschar **yield, int rc, const char *fmt, ...) PRINTF_FUNCTION(3, 4);
static int give(uschar **yield, int rc, const char *fmt, ...)
{
    va_list ap, ap2;
    int n;
    uschar *s;

    /*
     * Sized, never cut: a host list cut short would let through hosts the policy excludes
     * (ignore_target_hosts losing its final "*", a regex losing its "$").
     */
    va_start(ap, fmt);
    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        log_write(0, LOG_MAIN, "tlspolicyd: cannot format a result");
        *yield = US "tlspolicyd: cannot format a result";
        return DEFER;
    }
    s = store_get(n + 1, GET_UNTAINTED);
    vsnprintf((char *)s, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    *yield = s;
    return rc;
}

static const char *status_word(enum status st)
{
    static const char *const w[] = {"OK", "NOTFOUND", "TEMP", "TIMEOUT", "PERM"};
    return w[st];
}

/* The reason a decision function defers, or NULL when the answer is usable. */
static const char *unusable(const struct answer *a, char *buf, size_t len)
{
    if (a->st == ST_TEMP || a->st == ST_TIMEOUT || a->st == ST_PERM) {
        snprintf(buf, len, "%s %s", status_word(a->st), a->text);
        return buf;
    }
    if (a->st == ST_OK && a->bad[0]) {
        snprintf(buf, len, "policy \"%.200s\" cannot be applied: %s", a->text, a->bad);
        return buf;
    }
    return NULL;
}

static int is_level(const struct answer *a, const char *l)
{
    return a->st == ST_OK && strcmp(a->level, l) == 0;
}

/*
 * Host-list functions share this frame: on any failure they log why and answer `strict`,
 * the list that gives the least away, instead of failing the expansion.
 */
/* A host-list builder: the list, or NULL when it cannot be built whole. */
typedef const char *(*hostlist_fn)(const struct answer *a, char *buf, size_t len);

static int hostlist(uschar **yield, int argc, uschar *argv[], const char *name, const char *strict,
                    hostlist_fn fn)
{
    struct answer a;
    char err[600], why[SOCKMAP_MAX_TEXT + 300], buf[MAX_PATTERNS * 260 + 8];
    const char *u;

    if (lookup(argc, argv, &a, err, sizeof err) < 0) {
        log_write(0, LOG_MAIN, "tlspolicyd: %s{%s}: daemon not asked (%s): using \"%s\"", name,
                  argc > 0 ? (char *)argv[0] : "", err, strict);
        return give(yield, OK, "%s", strict);
    }
    if ((u = unusable(&a, why, sizeof why)) != NULL) {
        log_write(0, LOG_MAIN, "tlspolicyd: %s{%s}: %s: using \"%s\"", name, (char *)argv[0], u,
                  strict);
        return give(yield, OK, "%s", strict);
    }
    if ((u = fn(&a, buf, sizeof buf)) == NULL) {
        log_write(0, LOG_MAIN, "tlspolicyd: %s{%s}: host list too long: using \"%s\"", name,
                  (char *)argv[0], strict);
        return give(yield, OK, "%s", strict);
    }
    return give(yield, OK, "%s", u);
}

/* The match list as an Exim host list: "p1 : p2"; NULL when it does not fit in buf. */
static const char *pattern_list_sep(const struct answer *a, char *buf, size_t len, int negate,
                                    const char *sep)
{
    size_t off = 0;

    buf[0] = 0;
    for (int i = 0; i < a->npat; i++) {
        int n =
            snprintf(buf + off, len - off, "%s%s%s", i ? sep : "", negate ? "!" : "", a->pat[i]);

        if (n < 0 || (size_t)n >= len - off)
            return NULL; /* a partial list would admit what the rest excludes */
        off += (size_t)n;
    }
    return buf;
}

static const char *pattern_list(const struct answer *a, char *buf, size_t len, int negate)
{
    return pattern_list_sep(a, buf, len, negate, " : ");
}

/* ------------------------------------------------------------------------------------------ */
/* The functions. */

/* query: the daemon's reply as it came, "OK secure match=...", "NOTFOUND", "TEMP reason". */
int query(uschar **yield, int argc, uschar *argv[])
{
    struct answer a;
    char err[600];

    if (lookup(argc, argv, &a, err, sizeof err) < 0)
        return give(yield, DEFER, "tlspolicyd: %s", err);
    if (a.st == ST_NOTFOUND)
        return give(yield, OK, "NOTFOUND");
    return give(yield, OK, "%s %s", status_word(a.st), a.text);
}

/*
 * route: the router's decision.
 *   "deliver"           the policy can be applied by the transport
 *   "defer REASON"      the daemon answered TEMP/TIMEOUT/PERM, or a policy Exim cannot apply
 *   "fail CODE REASON"  the daemon refused with a permanent enhanced status code (5.7.30
 *                       REQUIRETLS support required, 5.7.10 no authenticated path)
 * DEFER (the expansion fails) when the daemon cannot be asked.
 */
int route(uschar **yield, int argc, uschar *argv[])
{
    struct answer a;
    char err[600], why[SOCKMAP_MAX_TEXT + 300];
    const char *u;

    if (lookup(argc, argv, &a, err, sizeof err) < 0)
        return give(yield, DEFER, "tlspolicyd: %s", err);
    if ((a.st == ST_TEMP || a.st == ST_PERM) && a.text[0] == '5' && a.text[1] == '.' &&
        (strncmp(a.text, "5.7.30 ", 7) == 0 || strncmp(a.text, "5.7.10 ", 7) == 0))
        return give(yield, OK, "fail %s", a.text);
    if ((u = unusable(&a, why, sizeof why)) != NULL)
        return give(yield, OK, "defer tlspolicyd: %s", u);
    return give(yield, OK, "deliver");
}

/* level: the policy level (none may encrypt dane dane-only verify secure), "nopolicy" for
 * NOTFOUND; DEFER for anything that cannot be applied. */
int level(uschar **yield, int argc, uschar *argv[])
{
    struct answer a;
    char err[600], why[SOCKMAP_MAX_TEXT + 300];
    const char *u;

    if (lookup(argc, argv, &a, err, sizeof err) < 0)
        return give(yield, DEFER, "tlspolicyd: %s", err);
    if ((u = unusable(&a, why, sizeof why)) != NULL)
        return give(yield, DEFER, "tlspolicyd: %s", u);
    if (a.st == ST_NOTFOUND)
        return give(yield, OK, "nopolicy");
    return give(yield, OK, "%s", a.level);
}

static const char *fn_require_tls(const struct answer *a, char *buf, size_t len)
{
    return is_level(a, "encrypt") || is_level(a, "dane-only") || is_level(a, "verify") ||
                   is_level(a, "secure")
               ? "*"
               : "";
}

/* require_tls: hosts_require_tls. "*" for encrypt, dane-only, verify, secure; else "". */
int require_tls(uschar **yield, int argc, uschar *argv[])
{
    return hostlist(yield, argc, argv, "require_tls", "*", fn_require_tls);
}

static const char *fn_verify_hosts(const struct answer *a, char *buf, size_t len)
{
    if (!is_level(a, "verify") && !is_level(a, "secure"))
        return "";
    for (int i = 0; i < a->npat; i++)
        if (strcmp(a->pat[i], "*") == 0)
            return "*";
    return pattern_list(a, buf, len, 0);
}

/* verify_hosts: tls_verify_hosts (and tls_verify_cert_hostnames): for verify and secure the
 * match list as Exim host patterns, "mx1.example.com : *.example.net"; else "". */
int verify_hosts(uschar **yield, int argc, uschar *argv[])
{
    return hostlist(yield, argc, argv, "verify_hosts", "*", fn_verify_hosts);
}

static const char *fn_require_dane(const struct answer *a, char *buf, size_t len)
{
    return is_level(a, "dane-only") ? "*" : "";
}

/* require_dane: hosts_require_dane. "*" for dane-only; else "". */
int require_dane(uschar **yield, int argc, uschar *argv[])
{
    return hostlist(yield, argc, argv, "require_dane", "*", fn_require_dane);
}

static const char *fn_try_dane(const struct answer *a, char *buf, size_t len)
{
    /* may/none/encrypt: the policy (an override, or TLS-Required: No) waives authentication. */
    return is_level(a, "may") || is_level(a, "none") || is_level(a, "encrypt") ? "" : "*";
}

/* try_dane: hosts_try_dane. "" where the policy waives authentication (may, none,
 * encrypt), else "*" (Exim's default). */
int try_dane(uschar **yield, int argc, uschar *argv[])
{
    return hostlist(yield, argc, argv, "try_dane", "*", fn_try_dane);
}

static const char *fn_avoid_tls(const struct answer *a, char *buf, size_t len)
{
    return is_level(a, "none") ? "*" : "";
}

/* avoid_tls: hosts_avoid_tls. "*" for level none; else "". Strict value: "". */
int avoid_tls(uschar **yield, int argc, uschar *argv[])
{
    return hostlist(yield, argc, argv, "avoid_tls", "", fn_avoid_tls);
}

static const char *fn_ignore_hosts(const struct answer *a, char *buf, size_t len)
{
    const char *v = fn_verify_hosts(a, buf, len);

    if (v == NULL)
        return NULL;
    if (!v[0] || strcmp(v, "*") == 0)
        return "";
    if (pattern_list(a, buf, len - 4, 1) == NULL)
        return NULL;
    strcat(buf, " : *");
    return buf;
}

/* ignore_hosts: the router's ignore_target_hosts. For verify and secure with name patterns,
 * "!mx1.example.com : !*.example.net : *" (every MX host that matches none is ignored);
 * else "". Strict value: "*" (every host ignored: nothing is delivered). */
int ignore_hosts(uschar **yield, int argc, uschar *argv[])
{
    return hostlist(yield, argc, argv, "ignore_hosts", "*", fn_ignore_hosts);
}

/* stats: "pid=P connections=N questions=M" for this process (no daemon question). */
int stats(uschar **yield, int argc, uschar *argv[])
{
    return give(yield, OK, "pid=%ld connections=%lu questions=%lu", (long)getpid(), n_connects,
                n_questions);
}

/* ------------------------------------------------------------------------------------------ */
/* decide: the whole routing decision in one question, for a router's "set" option. */

/*
 * Does the resolver Exim uses (glibc's, /etc/resolv.conf) hand over DNSSEC-validated answers
 * for domain? Exim's DANE trusts only the AD bit of glibc's answers, and glibc 2.31 and later
 * clear that bit unless /etc/resolv.conf has "options trust-ad". Without it Exim finds
 * nothing secure, and treats "DANE required, lookup not DNSSEC" as a permanent error (a
 * bounce). Asks for the MX RRset the way Exim does (EDNS0, DO) and looks at AD; a NODATA
 * answer (implicit MX) carries AD as well when validated. Returns 1 when AD is set, else 0
 * with why filled in.
 */
static int resolver_validates(const char *domain, char *why, size_t len)
{
    struct __res_state rs;
    unsigned char ans[4096];
    int n, ok = 0;

    memset(&rs, 0, sizeof rs);
    if (res_ninit(&rs) != 0) {
        snprintf(why, len, "cannot read the resolver configuration (/etc/resolv.conf)");
        return 0;
    }
    if (!(rs.options & RES_TRUSTAD)) {
        snprintf(why, len,
                 "/etc/resolv.conf lacks \"options trust-ad\": glibc drops the DNSSEC AD bit, so "
                 "Exim's DANE would see no validated answer");
        goto done;
    }
    rs.options |= RES_USE_EDNS0 | RES_USE_DNSSEC;
    n = res_nquery(&rs, domain, ns_c_in, ns_t_mx, ans, sizeof ans);
    /* NODATA comes back as -1 with h_errno NO_DATA but the answer in ans: look at it too. */
    if (n < 0 && rs.res_h_errno == NO_DATA)
        n = NS_HFIXEDSZ;
    if (n < NS_HFIXEDSZ) {
        snprintf(why, len, "the MX lookup of %s through /etc/resolv.conf failed", domain);
        goto done;
    }
    if (!(ans[3] & 0x20)) { /* RFC 4035 3.2.3: the AD bit, byte 3 of the header */
        snprintf(why, len,
                 "the resolver in /etc/resolv.conf does not validate %s (no AD bit): Exim's "
                 "DANE needs a validating resolver on this host",
                 domain);
        goto done;
    }
    ok = 1;
done:
    res_nclose(&rs);
    return ok;
}

/* Append `s` to the record as a double-quoted value for ${extract}: '\' and '"' escaped. */
static int put_quoted(char *buf, size_t len, size_t *off, const char *key, const char *s)
{
    size_t o = *off;
    int n = snprintf(buf + o, len - o, " %s=\"", key);

    if (n < 0 || (size_t)n >= len - o)
        return -1;
    o += (size_t)n;
    for (; *s; s++) {
        if (o + 3 >= len)
            return -1;
        if (*s == '\\' || *s == '"')
            buf[o++] = '\\';
        buf[o++] = *s == '\n' ? ' ' : *s;
    }
    if (o + 2 >= len)
        return -1;
    buf[o++] = '"';
    buf[o] = 0;
    *off = o;
    return 0;
}

static int give_record(uschar **yield, const char *action, const char *cls, const char *lvl,
                       const char *ignore, const char *why)
{
    static char rec[MAX_PATTERNS * 270 + SOCKMAP_MAX_TEXT * 2 + 512];
    /* action, class and level are short words of this file: they always fit. */
    int n = snprintf(rec, sizeof rec, "action=%s%s%s%s%s", action, cls ? " class=" : "",
                     cls ? cls : "", lvl ? " level=" : "", lvl ? lvl : "");
    size_t off = n < 0 ? 0 : (size_t)n;

    if ((ignore && put_quoted(rec, sizeof rec, &off, "ignore", ignore) < 0) ||
        (why && put_quoted(rec, sizeof rec, &off, "why", why) < 0)) {
        log_write(0, LOG_MAIN, "tlspolicyd: decision record too long: deferring");
        return give(yield, OK, "action=defer why=\"tlspolicyd: decision record too long\"");
    }
    return give(yield, OK, "%s", rec);
}

/*
 * decide: everything routing and delivery need, asked once (as root, at routing time), as a
 * record for ${extract}. It never fails the expansion: an unreachable daemon is a deferral
 * with its reason, logged by Exim as such (a failed expansion would also be a deferral, but
 * one that Exim writes to its paniclog).
 *
 *   action=deliver class=CLASS level=LEVEL ignore="HOSTLIST"
 *   action=defer why="REASON"
 *   action=fail why="5.7.x REASON"
 *
 * CLASS names the transport (tlspolicyd_CLASS), one per kind of promise a connection makes,
 * because Exim sends further messages over a connection only within the transport that
 * opened it and does not re-check the certificate requirement for them:
 *   waived              TAG tlsoptional: TLS-Required: No / RequireTLS: NO
 *   opportunistic       no policy, none, may, encrypt: no authentication
 *   dane                dane: Exim's DANE where the host has usable TLSA
 *   daneonly            dane-only: DANE or nothing
 *   verify              verify, secure (MTA-STS enforce): PKIX, name of the MX host
 *   requiretls_dane     TAG requiretls answered dane-only
 *   requiretls_verify   TAG requiretls answered secure or verify
 * LEVEL is the daemon's level ("nopolicy" for NOTFOUND). HOSTLIST is for the dnslookup
 * router's ignore_target_hosts, ";"-separated for appending to a "<;" list: empty, or
 * "!P1 ; !P2 ; *" where the policy names the MX hosts.
 * For the classes that rely on Exim's DANE, the decision defers unless this host's resolver
 * (glibc, /etc/resolv.conf) returns validated answers for the domain (see resolver_validates).
 */
int decide(uschar **yield, int argc, uschar *argv[])
{
    struct answer a;
    char err[600], why[SOCKMAP_MAX_TEXT + 300], buf[MAX_PATTERNS * 260 + 8];
    const char *u, *cls, *lvl, *tag, *ignore = "";
    int rtls;

    if (lookup(argc, argv, &a, err, sizeof err) < 0) {
        snprintf(why, sizeof why, "tlspolicyd: %s", err);
        return give_record(yield, "defer", NULL, NULL, NULL, why);
    }
    tag = argc > 1 && argv[1][0] ? (const char *)argv[1] : "policy";
    rtls = strcmp(tag, "requiretls") == 0;
    if ((a.st == ST_TEMP || a.st == ST_PERM) &&
        (strncmp(a.text, "5.7.30 ", 7) == 0 || strncmp(a.text, "5.7.10 ", 7) == 0))
        return give_record(yield, "fail", NULL, NULL, NULL, a.text);
    if ((u = unusable(&a, why, sizeof why)) != NULL) {
        char w2[sizeof why + 16];
        snprintf(w2, sizeof w2, "tlspolicyd: %s", u);
        return give_record(yield, "defer", NULL, NULL, NULL, w2);
    }
    lvl = a.st == ST_NOTFOUND ? "nopolicy" : a.level;

    /* The transport: the promise the connection makes (see above). */
    if (strcmp(tag, "tlsoptional") == 0)
        cls = "waived";
    else if (rtls && is_level(&a, "dane-only"))
        cls = "requiretls_dane";
    else if (rtls && (is_level(&a, "secure") || is_level(&a, "verify")))
        cls = "requiretls_verify";
    else if (rtls) {
        /* The daemon never answers a REQUIRETLS question with a weaker level; should it,
         * the message waits rather than leave without authentication. */
        snprintf(why, sizeof why,
                 "tlspolicyd: level %s does not authenticate the server: not a REQUIRETLS "
                 "delivery",
                 lvl);
        return give_record(yield, "defer", NULL, NULL, NULL, why);
    } else if (is_level(&a, "dane-only"))
        cls = "daneonly";
    else if (is_level(&a, "dane"))
        cls = "dane";
    else if (is_level(&a, "secure") || is_level(&a, "verify"))
        cls = "verify";
    else
        cls = "opportunistic";

    /* MX hosts outside the policy's match list are not used (RFC 8461 4.1). */
    if (is_level(&a, "secure") || is_level(&a, "verify")) {
        const char *v = fn_verify_hosts(&a, buf, sizeof buf);
        if (v && strcmp(v, "*") != 0) {
            if (pattern_list_sep(&a, buf, sizeof buf - 4, 1, " ; ") == NULL)
                return give_record(yield, "defer", NULL, NULL, NULL,
                                   "tlspolicyd: match list too long for Exim");
            strcat(buf, " ; *");
            ignore = buf;
        }
    }

    /* Exim does DANE itself, from glibc's answers: without validated answers a dane-only
     * domain would bounce and a dane one lose its authentication. Defer, saying why. */
    if (strcmp(cls, "dane") == 0 || strcmp(cls, "daneonly") == 0 ||
        strcmp(cls, "requiretls_dane") == 0) {
        char rwhy[400];
        if (!resolver_validates((const char *)argv[0], rwhy, sizeof rwhy)) {
            snprintf(why, sizeof why, "tlspolicyd: %s is %s but %s", (const char *)argv[0], lvl,
                     rwhy);
            return give_record(yield, "defer", NULL, NULL, NULL, why);
        }
    }
    return give_record(yield, "deliver", cls, lvl, ignore, NULL);
}
