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
 * This file is the Exim side: the dlfunc entry points and their results in Exim's memory;
 * client.c asks the daemon and parses its answer. Links only proto/ (netstring, sockmap);
 * no event loop.
 */
#define DLFUNC_IMPL
#include <local_scan.h>

#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "sockmap.h"

#ifndef TLSPOLICYD_EXIM_SOCKET
#define TLSPOLICYD_EXIM_SOCKET "/run/tlspolicyd/tlspolicyd.sock"
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
/* The question, from a function's arguments. */

/*
 * Ask and parse: {DOMAIN}{TAG}{SOCKET}, TAG and SOCKET optional. Returns 0 when the daemon
 * answered (any status), -1 when it could not be asked (err filled in).
 */
static int lookup(int argc, uschar *argv[], struct client_answer *a, char *err, size_t errlen)
{
    const char *domain, *tag, *endpoint;

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
    return client_lookup(endpoint, tag, domain, a, err, errlen);
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

static const char *status_word(enum client_status st)
{
    static const char *const w[] = {"OK", "NOTFOUND", "TEMP", "TIMEOUT", "PERM"};
    return w[st];
}

/* The reason a decision function defers, or NULL when the answer is usable. */
static const char *unusable(const struct client_answer *a, char *buf, size_t len)
{
    if (a->st == CLIENT_TEMP || a->st == CLIENT_TIMEOUT || a->st == CLIENT_PERM) {
        snprintf(buf, len, "%s %s", status_word(a->st), a->text);
        return buf;
    }
    if (a->st == CLIENT_OK && a->bad[0]) {
        snprintf(buf, len, "policy \"%.200s\" cannot be applied: %s", a->text, a->bad);
        return buf;
    }
    return NULL;
}

static int is_level(const struct client_answer *a, const char *l)
{
    return a->st == CLIENT_OK && strcmp(a->level, l) == 0;
}

/*
 * Host-list functions share this frame: on any failure they log why and answer `strict`,
 * the list that gives the least away, instead of failing the expansion.
 */
/* A host-list builder: the list, or NULL when it cannot be built whole. */
typedef const char *(*hostlist_fn)(const struct client_answer *a, char *buf, size_t len);

static int hostlist(uschar **yield, int argc, uschar *argv[], const char *name, const char *strict,
                    hostlist_fn fn)
{
    struct client_answer a;
    char err[600], why[SOCKMAP_MAX_TEXT + 300], buf[CLIENT_MAX_PATTERNS * 260 + 8];
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
static const char *pattern_list_sep(const struct client_answer *a, char *buf, size_t len,
                                    int negate, const char *sep)
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

static const char *pattern_list(const struct client_answer *a, char *buf, size_t len, int negate)
{
    return pattern_list_sep(a, buf, len, negate, " : ");
}

/* ------------------------------------------------------------------------------------------ */
/* The functions. */

/* query: the daemon's reply as it came, "OK secure match=...", "NOTFOUND", "TEMP reason". */
int query(uschar **yield, int argc, uschar *argv[])
{
    struct client_answer a;
    char err[600];

    if (lookup(argc, argv, &a, err, sizeof err) < 0)
        return give(yield, DEFER, "tlspolicyd: %s", err);
    if (a.st == CLIENT_NOTFOUND)
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
    struct client_answer a;
    char err[600], why[SOCKMAP_MAX_TEXT + 300];
    const char *u;

    if (lookup(argc, argv, &a, err, sizeof err) < 0)
        return give(yield, DEFER, "tlspolicyd: %s", err);
    if ((a.st == CLIENT_TEMP || a.st == CLIENT_PERM) && a.text[0] == '5' && a.text[1] == '.' &&
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
    struct client_answer a;
    char err[600], why[SOCKMAP_MAX_TEXT + 300];
    const char *u;

    if (lookup(argc, argv, &a, err, sizeof err) < 0)
        return give(yield, DEFER, "tlspolicyd: %s", err);
    if ((u = unusable(&a, why, sizeof why)) != NULL)
        return give(yield, DEFER, "tlspolicyd: %s", u);
    if (a.st == CLIENT_NOTFOUND)
        return give(yield, OK, "nopolicy");
    return give(yield, OK, "%s", a.level);
}

/* require_tls: hosts_require_tls. "*" for encrypt, dane-only, verify, secure; else "". */
static const char *fn_require_tls(const struct client_answer *a, char *buf, size_t len)
{
    return is_level(a, "encrypt") || is_level(a, "dane-only") || is_level(a, "verify") ||
                   is_level(a, "secure")
               ? "*"
               : "";
}

/* verify_hosts: tls_verify_hosts (and tls_verify_cert_hostnames): for verify and secure the
 * match list as Exim host patterns, "mx1.example.com : *.example.net"; else "". */
static const char *fn_verify_hosts(const struct client_answer *a, char *buf, size_t len)
{
    if (!is_level(a, "verify") && !is_level(a, "secure"))
        return "";
    for (int i = 0; i < a->npat; i++)
        if (strcmp(a->pat[i], "*") == 0)
            return "*";
    return pattern_list(a, buf, len, 0);
}

/* require_dane: hosts_require_dane. "*" for dane-only; else "". */
static const char *fn_require_dane(const struct client_answer *a, char *buf, size_t len)
{
    return is_level(a, "dane-only") ? "*" : "";
}

/* try_dane: hosts_try_dane. "" where the policy waives authentication (may, none,
 * encrypt), else "*" (Exim's default). */
static const char *fn_try_dane(const struct client_answer *a, char *buf, size_t len)
{
    /* may/none/encrypt: the policy (an override, or TLS-Required: No) waives authentication. */
    return is_level(a, "may") || is_level(a, "none") || is_level(a, "encrypt") ? "" : "*";
}

/* avoid_tls: hosts_avoid_tls. "*" for level none; else "". Strict value: "". */
static const char *fn_avoid_tls(const struct client_answer *a, char *buf, size_t len)
{
    return is_level(a, "none") ? "*" : "";
}

/* ignore_hosts: the router's ignore_target_hosts. For verify and secure with name patterns,
 * "!mx1.example.com : !*.example.net : *" (every MX host that matches none is ignored);
 * else "". Strict value: "*" (every host ignored: nothing is delivered). */
static const char *fn_ignore_hosts(const struct client_answer *a, char *buf, size_t len)
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

/*
 * HOSTLIST_FUNCTION(name, strict): the dlfunc entry point `name`, the host list that fn_name
 * builds (see each builder above), or `strict` when it cannot be built (see hostlist()).
 */
#define HOSTLIST_FUNCTION(name, strict)                                                            \
    int name(uschar **yield, int argc, uschar *argv[])                                             \
    {                                                                                              \
        return hostlist(yield, argc, argv, #name, strict, fn_##name);                              \
    }

HOSTLIST_FUNCTION(require_tls, "*")
HOSTLIST_FUNCTION(verify_hosts, "*")
HOSTLIST_FUNCTION(require_dane, "*")
HOSTLIST_FUNCTION(try_dane, "*")
HOSTLIST_FUNCTION(avoid_tls, "")
HOSTLIST_FUNCTION(ignore_hosts, "*")

/* stats: "pid=P connections=N questions=M" for this process (no daemon question). */
int stats(uschar **yield, int argc, uschar *argv[])
{
    unsigned long n_connects, n_questions;

    client_stats(&n_connects, &n_questions);
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
    static char rec[CLIENT_MAX_PATTERNS * 270 + SOCKMAP_MAX_TEXT * 2 + 512];
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
    struct client_answer a;
    char err[600], why[SOCKMAP_MAX_TEXT + 300], buf[CLIENT_MAX_PATTERNS * 260 + 8];
    const char *u, *cls, *lvl, *tag, *ignore = "";
    int rtls;

    if (lookup(argc, argv, &a, err, sizeof err) < 0) {
        snprintf(why, sizeof why, "tlspolicyd: %s", err);
        return give_record(yield, "defer", NULL, NULL, NULL, why);
    }
    tag = argc > 1 && argv[1][0] ? (const char *)argv[1] : "policy";
    rtls = strcmp(tag, "requiretls") == 0;
    if ((a.st == CLIENT_TEMP || a.st == CLIENT_PERM) &&
        (strncmp(a.text, "5.7.30 ", 7) == 0 || strncmp(a.text, "5.7.10 ", 7) == 0))
        return give_record(yield, "fail", NULL, NULL, NULL, a.text);
    if ((u = unusable(&a, why, sizeof why)) != NULL) {
        char w2[sizeof why + 16];
        snprintf(w2, sizeof w2, "tlspolicyd: %s", u);
        return give_record(yield, "defer", NULL, NULL, NULL, w2);
    }
    lvl = a.st == CLIENT_NOTFOUND ? "nopolicy" : a.level;

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
