/*
 * HTTPS policy fetches (RFC 8461 3.3): libcurl's multi-socket API on libuv (STYLE "Async
 * lifetimes" 7, after curl's docs/examples/multi-uv.c). CURLMOPT_SOCKETFUNCTION gives one
 * uv_poll_t per curl socket, CURLMOPT_TIMERFUNCTION drives one uv_timer_t, and finished
 * transfers are collected with curl_multi_info_read() after each curl_multi_socket_action().
 * The service owns the multi handle, its handles and every request; a request owns its easy
 * handle, its private DNS share (the CURLOPT_RESOLVE pins live and die with it) and its body.
 * Service and requests each hold a reference to the CA bundle in memory (cafile.h), whose
 * OpenSSL store, built once, each transfer's SSL_CTX takes (CURLOPT_SSL_CTX_FUNCTION). The
 * service's memory goes from the last close callback after fetch_svc_destroy().
 *
 * Outcomes are split by whose fault they are: the policy host's (RFC 8461 3.3: the domain
 * is treated as having no policy) or ours (FETCH_LOCAL: our CA bundle, memory, descriptors,
 * libcurl set-up), which the caller must never read as the domain's.
 */
#include "fetch.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <openssl/ssl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cafile.h"
#include "escape.h"
#include "fdwatch.h"
#include "metrics.h"
#include "waitlist.h"
#include "xalloc.h"

/* The enums of fetch.h and metrics.h must agree (metrics_fetch takes either). */
_Static_assert(METRICS_FETCH_OK == (int)FETCH_OK && METRICS_FETCH_ERROR == (int)FETCH_ERROR &&
                   METRICS_FETCH_TIMEOUT == (int)FETCH_TIMEOUT &&
                   METRICS_FETCH_TLS == (int)FETCH_TLS && METRICS_FETCH_LOCAL == (int)FETCH_LOCAL,
               "enum metrics_fetch follows enum fetch_outcome");

/* fetch.h: a policy host has at most this many vetted addresses. */
#define MAX_ADDRS 16
/* Body buffer growth starts here; the cap is the caller's max_body. */
#define BODY_CHUNK 4096
#define USER_AGENT "tlspolicyd/" TLSPOLICYD_VERSION

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

enum req_state {
    REQ_ACTIVE,     /* easy handle in the multi handle */
    REQ_DEFERRED,   /* failed in fetch_start; reported from the loop */
    REQ_DELIVERING, /* its callback is running: fetch_cancel is a no-op */
};

struct pin {
    int family;
    union {
        struct in_addr v4;
        struct in6_addr v6;
    } a;
};

struct fetch_req {
    struct waitlist_link link; /* on svc->active or svc->deferred; pprev NULL: on neither */
    struct fetch_svc *svc;
    enum req_state state;
    fetch_cb cb;
    void *arg;
    CURL *easy;
    CURLSH *share; /* this request's DNS cache: holds only its CURLOPT_RESOLVE pins */
    struct curl_slist *resolve;
    struct pin pins[MAX_ADDRS];
    size_t npins;
    unsigned port;
    int refused_unpinned; /* the open-socket callback refused an address */
    int socket_errno;     /* socket() failed in the open-socket callback: our fault */
    struct cafile *ca;    /* the bundle whose store the handshake uses: held until freed */
    char *body;           /* xmalloc'd, grown up to max_body */
    size_t len, cap;
    int status;     /* status of the response whose headers are being read */
    long long clen; /* its Content-Length, -1 when absent */
    int rejected;   /* a callback aborted the transfer: outcome and why below */
    enum fetch_outcome outcome;
    char why[180];
    char errbuf[CURL_ERROR_SIZE]; /* CURLOPT_ERRORBUFFER */
};

struct sock {
    uv_poll_t poll;
    struct fetch_svc *svc;
    curl_socket_t fd;
    struct waitlist_link link; /* on svc->socks */
};

struct fetch_svc {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;                        /* curl's next timeout */
    uv_timer_t defer;                        /* reports the requests that failed in fetch_start */
    struct waitlist_link *socks;             /* struct sock */
    struct waitlist_link *active, *deferred; /* struct fetch_req */
    struct cafile *ca;                       /* the bundle new fetches use (a reference) */
    struct fetch_opts opts;
    unsigned open_handles;
    int destroying;
};

/* Take req off the list it is on, if any, and mark it as on none. */
static void req_unlink(struct fetch_req *req)
{
    if (req->link.pprev == NULL)
        return;
    waitlist_remove(&req->link);
    req->link.next = NULL;
    req->link.pprev = NULL;
}

/* The easy handle goes before the share it uses (curl_share_cleanup refuses a share in use). */
static void req_free(struct fetch_req *req)
{
    if (req->easy)
        curl_easy_cleanup(req->easy);
    if (req->share)
        curl_share_cleanup(req->share);
    curl_slist_free_all(req->resolve);
    cafile_unref(req->ca);
    free(req->body);
    free(req);
}

static void reject(struct fetch_req *req, enum fetch_outcome o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reject(struct fetch_req *req, enum fetch_outcome o, const char *fmt, ...)
{
    va_list ap;

    if (req->rejected)
        return;
    req->rejected = 1;
    req->outcome = o;
    va_start(ap, fmt);
    vsnprintf(req->why, sizeof(req->why), fmt, ap);
    va_end(ap);
}

/*
 * RFC 8461 3.3: the media type is "text/plain"; parameters such as a charset may follow.
 * Media types compare case-insensitively (RFC 9110 8.3.1).
 */
static int is_text_plain(const char *ct)
{
    if (ct == NULL)
        return 0;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, "text/plain", 10) != 0)
        return 0;
    ct += 10;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

/* libcurl callbacks of one transfer. */

/* The cap lives here: CURLOPT_MAXFILESIZE does not stop a chunked body in libcurl 7.88. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    struct fetch_req *req = userp;
    size_t n = size * nmemb, max = req->svc->opts.max_body, want;

    if (req->rejected)
        return 0;
    if (n > max - req->len) {
        reject(req, FETCH_TOO_BIG, "body over %zu bytes", max);
        return 0;
    }
    if (req->len + n > req->cap) {
        want = req->cap ? req->cap * 2 : BODY_CHUNK;
        if (want < req->len + n)
            want = req->len + n;
        if (want > max)
            want = max;
        req->body = xrealloc(req->body, want);
        req->cap = want;
    }
    memcpy(req->body + req->len, data, n);
    req->len += n;
    return n;
}

/*
 * Judge the response as soon as its headers are in, so a refused one is not downloaded:
 * 200 only (a 3xx is not followed), text/plain only, and a Content-Length within the cap.
 */
static size_t on_header(char *line, size_t size, size_t nmemb, void *userp)
{
    struct fetch_req *req = userp;
    size_t n = size * nmemb;
    char *ct = NULL, esc[80];

    if (req->rejected)
        return 0;
    /* A status line starts a response (1xx interim ones included). */
    if (n >= 12 && strncmp(line, "HTTP/", 5) == 0) {
        const char *sp = memchr(line, ' ', n);

        req->status = 0;
        req->clen = -1;
        if (sp != NULL && sp + 4 <= line + n && sp[1] >= '0' && sp[1] <= '9' && sp[2] >= '0' &&
            sp[2] <= '9' && sp[3] >= '0' && sp[3] <= '9')
            req->status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
        return n;
    }
    if (n > 15 && strncasecmp(line, "content-length:", 15) == 0) {
        long long v = 0;
        size_t i = 15;

        while (i < n && (line[i] == ' ' || line[i] == '\t'))
            i++;
        for (; i < n && line[i] >= '0' && line[i] <= '9'; i++)
            v = v > (1LL << 50) ? v : v * 10 + (line[i] - '0');
        req->clen = v;
        return n;
    }
    if (!(n == 2 && line[0] == '\r' && line[1] == '\n') && !(n == 1 && line[0] == '\n'))
        return n;

    /* The end of one response's headers. Interim 1xx responses are followed by the real one. */
    if (req->status >= 100 && req->status < 200)
        return n;
    if (req->status != 200) {
        reject(req, FETCH_HTTP_STATUS, "HTTP status %d%s", req->status,
               req->status >= 300 && req->status < 400 ? " (redirects are not followed)" : "");
        return 0;
    }
    curl_easy_getinfo(req->easy, CURLINFO_CONTENT_TYPE, &ct);
    if (!is_text_plain(ct)) {
        if (ct)
            escape_log(esc, sizeof(esc), ct, strlen(ct));
        reject(req, FETCH_CONTENT_TYPE, "content type %s%s%s is not text/plain", ct ? "\"" : "",
               ct ? esc : "(none)", ct ? "\"" : "");
        return 0;
    }
    if (req->clen >= 0 && (unsigned long long)req->clen > req->svc->opts.max_body) {
        reject(req, FETCH_TOO_BIG, "body over %zu bytes (Content-Length %lld)",
               req->svc->opts.max_body, req->clen);
        return 0;
    }
    return n;
}

/*
 * CURLOPT_SSL_CTX_FUNCTION: the bundle's store, built once (cafile.h), not the whole PEM
 * bundle parsed by libcurl at every handshake (87% of the CPU of a cold domain with Debian's
 * 145 certificates). No CAINFO, CAPATH or blob: libcurl adds nothing to it.
 */
static CURLcode on_ssl_ctx(CURL *easy, void *ssl_ctx, void *userp)
{
    struct fetch_req *req = userp;
    const char *why = NULL;
    X509_STORE *store = cafile_x509_store(req->ca, &why);

    (void)easy;
    if (store == NULL || !X509_STORE_up_ref(store)) {
        reject(req, FETCH_LOCAL, "local fault: %s", why ? why : "cannot share the CA store");
        return CURLE_SSL_CACERT_BADFILE;
    }
    SSL_CTX_set_cert_store(ssl_ctx, store);
    return CURLE_OK;
}

/*
 * socket() for a pinned address. Running out of descriptors or memory is our fault, not
 * the host's; other errors (EAFNOSUPPORT on a host without IPv6) are a route we do not
 * have to that address, and stay "no connection".
 */
static curl_socket_t open_pinned(struct fetch_req *req, const struct curl_sockaddr *sa)
{
    int fd = socket(sa->family, sa->socktype | SOCK_CLOEXEC, sa->protocol);

    if (fd < 0 && req->socket_errno == 0 && fdwatch_local(errno)) {
        req->socket_errno = errno;
        fdwatch_note("a policy fetch socket", errno);
    }
    return fd < 0 ? CURL_SOCKET_BAD : fd;
}

/* Defence in depth beside CURLOPT_RESOLVE: connect to the pinned addresses only. */
static curl_socket_t on_open_socket(void *userp, curlsocktype purpose, struct curl_sockaddr *sa)
{
    struct fetch_req *req = userp;

    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    for (size_t i = 0; i < req->npins; i++) {
        const struct pin *p = &req->pins[i];

        if (p->family != sa->family)
            continue;
        if (sa->family == AF_INET && sa->addrlen >= sizeof(struct sockaddr_in)) {
            const struct sockaddr_in *s4 = (const struct sockaddr_in *)&sa->addr;

            if (ntohs(s4->sin_port) == req->port &&
                memcmp(&s4->sin_addr, &p->a.v4, sizeof(p->a.v4)) == 0)
                return open_pinned(req, sa);
        } else if (sa->family == AF_INET6 && sa->addrlen >= sizeof(struct sockaddr_in6)) {
            const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&sa->addr;

            if (ntohs(s6->sin6_port) == req->port &&
                memcmp(&s6->sin6_addr, &p->a.v6, sizeof(p->a.v6)) == 0)
                return open_pinned(req, sa);
        }
    }
    req->refused_unpinned = 1;
    return CURL_SOCKET_BAD;
}

/* Completion. */

/* Fill res for a finished transfer; the why names the address when there was a connection. */
static void judge(struct fetch_req *req, CURLcode rc, struct fetch_result *res)
{
    char *ip = NULL, *ct = NULL, esc[160], via[56] = "";
    long status = 0;

    curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(req->easy, CURLINFO_PRIMARY_IP, &ip);
    if (ip != NULL && *ip != '\0')
        snprintf(via, sizeof(via), " (server %s)", ip);
    res->http_status = status;
    if (req->rejected) {
        res->outcome = req->outcome;
        snprintf(res->why, sizeof(res->why), "%s%s", req->why, via);
        return;
    }
    if (rc == CURLE_COULDNT_CONNECT && req->socket_errno != 0) {
        res->outcome = FETCH_LOCAL;
        snprintf(res->why, sizeof(res->why), "local fault: cannot create a socket: %s",
                 strerror(req->socket_errno));
        return;
    }
    if (rc != CURLE_OK) {
        res->outcome = fetch_curl_outcome(rc);
        if (req->errbuf[0] != '\0')
            escape_log(esc, sizeof(esc), req->errbuf, strlen(req->errbuf));
        else
            snprintf(esc, sizeof(esc), "%s", curl_easy_strerror(rc));
        snprintf(res->why, sizeof(res->why), "%s: %s%s", fetch_outcome_prefix(res->outcome), esc,
                 req->refused_unpinned ? " (an address that is not pinned was refused)" : "");
        return;
    }
    /* The header callback judged already; check again in case no header block ended. */
    if (status != 200) {
        res->outcome = FETCH_HTTP_STATUS;
        snprintf(res->why, sizeof(res->why), "HTTP status %ld%s", status, via);
        return;
    }
    curl_easy_getinfo(req->easy, CURLINFO_CONTENT_TYPE, &ct);
    if (!is_text_plain(ct)) {
        res->outcome = FETCH_CONTENT_TYPE;
        snprintf(res->why, sizeof(res->why), "content type is not text/plain%s", via);
        return;
    }
    res->outcome = FETCH_OK;
    res->body = req->body ? req->body : "";
    res->len = req->len;
    snprintf(res->why, sizeof(res->why), "HTTP 200, %zu bytes%s", req->len, via);
}

static void deliver(struct fetch_req *req, struct fetch_result *res)
{
    req->state = REQ_DELIVERING;
    req->cb(req->arg, res);
    req_free(req);
}

/* Collect finished transfers; stop if a callback destroyed the service. */
static void drain(struct fetch_svc *svc)
{
    CURLMsg *msg;
    int left;

    while (!svc->destroying && (msg = curl_multi_info_read(svc->multi, &left)) != NULL) {
        struct fetch_req *req;
        struct fetch_result res;
        char *priv = NULL;
        CURLcode rc;

        if (msg->msg != CURLMSG_DONE)
            continue;
        rc = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        req = (struct fetch_req *)priv;
        memset(&res, 0, sizeof(res));
        judge(req, rc, &res);
        curl_multi_remove_handle(svc->multi, req->easy);
        req_unlink(req);
        deliver(req, &res);
    }
}

/* libuv glue for the multi handle. */

static void svc_unref(struct fetch_svc *svc)
{
    if (--svc->open_handles == 0 && svc->destroying) {
        cafile_unref(svc->ca);
        free(svc);
    }
}

static void on_sock_closed(uv_handle_t *h)
{
    struct sock *s = container_of(h, struct sock, poll);
    struct fetch_svc *svc = s->svc;

    free(s);
    svc_unref(svc);
}

static void on_timer_closed(uv_handle_t *h)
{
    svc_unref(h->data);
}

static void sock_close(struct sock *s)
{
    waitlist_remove(&s->link);
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct sock *s = container_of(p, struct sock, poll);
    struct fetch_svc *svc = s->svc;
    int flags = 0, running;

    /* On a poll error let curl try both ways, so it sees the error and gives up the socket. */
    if (status < 0)
        flags = CURL_CSELECT_ERR | CURL_CSELECT_IN | CURL_CSELECT_OUT;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(svc->multi, s->fd, flags, &running);
    drain(svc);
}

static void on_timeout(uv_timer_t *t)
{
    struct fetch_svc *svc = t->data;
    int running;

    curl_multi_socket_action(svc->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    drain(svc);
}

/* CURLMOPT_TIMERFUNCTION: -1 stops the timer; 0 runs it on the next loop iteration. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct fetch_svc *svc = userp;

    (void)multi;
    if (svc->destroying)
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&svc->timer);
    else
        uv_timer_start(&svc->timer, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

/* CURLMOPT_SOCKETFUNCTION: one uv_poll_t per socket, attached with curl_multi_assign(). */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct fetch_svc *svc = userp;
    struct sock *s = socketp;
    int events = 0;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            sock_close(s);
            if (!svc->destroying)
                curl_multi_assign(svc->multi, fd, NULL);
        }
        return 0;
    }
    if (svc->destroying)
        return 0;
    /* A watcher left over for this descriptor number (closed without REMOVE) is reused. */
    for (struct waitlist_link *l = svc->socks; s == NULL && l != NULL; l = l->next)
        if (waitlist_entry(l, struct sock, link)->fd == fd)
            s = waitlist_entry(l, struct sock, link);
    if (s == NULL) {
        int uerr;

        s = xcalloc(1, sizeof(*s));
        uerr = uv_poll_init_socket(svc->loop, &s->poll, fd);
        if (uerr < 0) {
            char *priv = NULL;

            /* libcurl aborts the transfer; say that the fault is ours. */
            curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
            if (priv != NULL)
                reject((struct fetch_req *)priv, FETCH_LOCAL,
                       "local fault: cannot watch the socket: %s", uv_strerror(uerr));
            free(s);
            return -1;
        }
        s->svc = svc;
        s->fd = fd;
        waitlist_push(&svc->socks, &s->link);
        svc->open_handles++;
    }
    curl_multi_assign(svc->multi, fd, s);
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&s->poll, events, on_poll);
    return 0;
}

/* Requests that failed in fetch_start are reported from here, never before it returned. */
static void on_defer(uv_timer_t *t)
{
    struct fetch_svc *svc = t->data;
    struct fetch_req *req;

    while (!svc->destroying &&
           (req = waitlist_entry(svc->deferred, struct fetch_req, link)) != NULL) {
        struct fetch_result res;

        req_unlink(req);
        memset(&res, 0, sizeof(res));
        res.outcome = req->outcome;
        snprintf(res.why, sizeof(res.why), "%s", req->why);
        deliver(req, &res);
    }
}

/* The service. */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct fetch_svc *fetch_svc_create(uv_loop_t *loop, const struct fetch_opts *opts, char *err,
                                   size_t errlen)
{
    struct fetch_svc *svc;

    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK) {
        snprintf(err, errlen, "libcurl: %s", curl_easy_strerror(curl_init_rc));
        return NULL;
    }
    svc = xcalloc(1, sizeof(*svc));
    /* The bundle is read here, before the daemon gives up root, and kept in memory. */
    svc->ca = opts->ca ? cafile_ref(opts->ca) : cafile_load(opts->ca_file, err, errlen);
    if (svc->ca == NULL) {
        free(svc);
        return NULL;
    }
    svc->multi = curl_multi_init();
    if (svc->multi == NULL) {
        snprintf(err, errlen, "libcurl: cannot create a multi handle");
        cafile_unref(svc->ca);
        free(svc);
        return NULL;
    }
    svc->loop = loop;
    svc->opts = *opts;
    svc->opts.ca = NULL;
    svc->opts.ca_file = NULL;
    if (svc->opts.port == 0)
        svc->opts.port = 443;
    curl_multi_setopt(svc->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(svc->multi, CURLMOPT_SOCKETDATA, svc);
    curl_multi_setopt(svc->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(svc->multi, CURLMOPT_TIMERDATA, svc);
    uv_timer_init(loop, &svc->timer);
    svc->timer.data = svc;
    uv_timer_init(loop, &svc->defer);
    svc->defer.data = svc;
    svc->open_handles = 2;
    return svc;
}

void fetch_set_ca(struct fetch_svc *svc, struct cafile *ca)
{
    cafile_ref(ca);
    cafile_unref(svc->ca);
    svc->ca = ca;
}

void fetch_svc_destroy(struct fetch_svc *svc)
{
    struct fetch_req *req;

    if (svc == NULL || svc->destroying)
        return;
    svc->destroying = 1;
    /* Pending requests are dropped without callbacks; their sockets close with them. */
    while ((req = waitlist_entry(svc->active, struct fetch_req, link)) != NULL) {
        req_unlink(req);
        curl_multi_remove_handle(svc->multi, req->easy);
        req_free(req);
    }
    while ((req = waitlist_entry(svc->deferred, struct fetch_req, link)) != NULL) {
        req_unlink(req);
        req_free(req);
    }
    curl_multi_cleanup(svc->multi);
    svc->multi = NULL;
    while (svc->socks != NULL)
        sock_close(waitlist_entry(svc->socks, struct sock, link));
    uv_close((uv_handle_t *)&svc->timer, on_timer_closed);
    uv_close((uv_handle_t *)&svc->defer, on_timer_closed);
}

void fetch_cancel(struct fetch_req *req)
{
    if (req == NULL || req->state == REQ_DELIVERING)
        return;
    req_unlink(req);
    if (req->state == REQ_ACTIVE)
        curl_multi_remove_handle(req->svc->multi, req->easy);
    req_free(req);
}

/* A policy host is a DNS name in A-label form: letters, digits, '-', '.', nothing else. */
static int host_ok(const char *host)
{
    size_t n = strlen(host);

    if (n == 0 || n > 253)
        return 0;
    for (const char *p = host; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '.'))
            return 0;
    return 1;
}

/* A path is printable ASCII without spaces or a fragment. */
static int path_ok(const char *path)
{
    for (const char *p = path; *p; p++)
        if (*p <= ' ' || *p > '~' || *p == '#')
            return 0;
    return 1;
}

/* Pin addrs: parse them for the open-socket check and build "HOST:PORT:a,[b],...". */
static int pin(struct fetch_req *req, const char *host, const char *const *addrs, size_t naddrs)
{
    size_t cap = strlen(host) + 8 + naddrs * (INET6_ADDRSTRLEN + 3), off;
    char *entry = xmalloc(cap), text[INET6_ADDRSTRLEN];
    int rc = -1;

    off = (size_t)snprintf(entry, cap, "%s:%u:", host, req->port);
    for (size_t i = 0; i < naddrs; i++) {
        struct pin *p = &req->pins[i];

        if (addrs[i] != NULL && inet_pton(AF_INET, addrs[i], &p->a.v4) == 1) {
            p->family = AF_INET;
            inet_ntop(AF_INET, &p->a.v4, text, sizeof(text));
            off += (size_t)snprintf(entry + off, cap - off, "%s%s", i ? "," : "", text);
        } else if (addrs[i] != NULL && inet_pton(AF_INET6, addrs[i], &p->a.v6) == 1) {
            p->family = AF_INET6;
            inet_ntop(AF_INET6, &p->a.v6, text, sizeof(text));
            off += (size_t)snprintf(entry + off, cap - off, "%s[%s]", i ? "," : "", text);
        } else {
            escape_log(text, sizeof(text), addrs[i] ? addrs[i] : "(null)",
                       addrs[i] ? strlen(addrs[i]) : 6);
            reject(req, FETCH_ERROR, "address %s is not a numeric IPv4 or IPv6 address", text);
            goto done;
        }
    }
    req->npins = naddrs;
    req->resolve = curl_slist_append(NULL, entry);
    if (req->resolve == NULL) {
        reject(req, FETCH_LOCAL, "local fault: libcurl: out of memory");
        goto done;
    }
    rc = 0;
done:
    free(entry);
    return rc;
}

/* Set up the easy handle; 0, or -1 with the reason in req->why. */
static int setup(struct fetch_req *req, const char *host, const char *path)
{
    struct fetch_svc *svc = req->svc;
    const struct fetch_opts *o = &svc->opts;
    char url[300 + 1024];
    CURLcode rc = CURLE_OK;
    int n;

    if (req->port == 443)
        n = snprintf(url, sizeof(url), "https://%s%s%s", host, path[0] == '/' ? "" : "/", path);
    else
        n = snprintf(url, sizeof(url), "https://%s:%u%s%s", host, req->port,
                     path[0] == '/' ? "" : "/", path);
    if (n < 0 || (size_t)n >= sizeof(url)) {
        reject(req, FETCH_ERROR, "URL too long");
        return -1;
    }
    req->easy = curl_easy_init();
    req->share = curl_share_init();
    if (req->easy == NULL || req->share == NULL) {
        reject(req, FETCH_LOCAL, "local fault: libcurl: cannot create a transfer");
        return -1;
    }

    /*
     * The pins go into a DNS cache of this request's own, so concurrent fetches of one host
     * cannot see each other's addresses and the multi handle's cache gains no permanent
     * entries. Connections are never reused for the same reason: a reused connection would
     * skip the open-socket check.
     */
    if (curl_share_setopt(req->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK) {
        reject(req, FETCH_LOCAL, "local fault: libcurl: cannot share a DNS cache");
        return -1;
    }
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(req->easy, opt, val);                                            \
    } while (0)
    SET(CURLOPT_ERRORBUFFER, req->errbuf);
    SET(CURLOPT_PRIVATE, (char *)req);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_URL, url);
    SET(CURLOPT_SHARE, req->share);
    SET(CURLOPT_RESOLVE, req->resolve);
    SET(CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    SET(CURLOPT_OPENSOCKETDATA, req);
    SET(CURLOPT_FRESH_CONNECT, 1L);
    SET(CURLOPT_FORBID_REUSE, 1L);
    /*
     * No TLS session cache either: it would live in this easy handle alone and die unused
     * with it, and keeping each session the server sends (TLS 1.3 tickets) costs CPU.
     */
    SET(CURLOPT_SSL_SESSIONID_CACHE, 0L);
    /* RFC 8461 3.3: HTTPS only; a redirect is a failure, not something to follow. */
    SET(CURLOPT_PROTOCOLS_STR, "https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    /* Proxy variables in the environment (https_proxy, ALL_PROXY) are ignored. */
    SET(CURLOPT_PROXY, "");
    SET(CURLOPT_NOPROXY, "*");
    /* RFC 8461 3.3: a valid certificate for the policy host; TLS 1.2 or later (RFC 8996). */
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    /*
     * Only the bundle read before the daemon gave up root (on_ssl_ctx): not Debian's default
     * CA file and directory; CA_CACHE_TIMEOUT 0: libcurl's cached store (7.87+) would replace
     * ours and hide a bundle reloaded on SIGHUP.
     */
    req->ca = cafile_ref(svc->ca);
    SET(CURLOPT_CAINFO, (char *)NULL);
    SET(CURLOPT_CAPATH, (char *)NULL);
    SET(CURLOPT_CA_CACHE_TIMEOUT, 0L);
    SET(CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
    SET(CURLOPT_SSL_CTX_DATA, req);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)o->connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, (long)o->total_timeout_ms);
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SET(CURLOPT_USERAGENT, USER_AGENT);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, req);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, req);
#undef SET
    if (rc != CURLE_OK) {
        reject(req, FETCH_LOCAL, "local fault: libcurl set-up: %s", curl_easy_strerror(rc));
        return -1;
    }
    return 0;
}

struct fetch_req *fetch_start(struct fetch_svc *svc, const char *host, const char *path,
                              const char *const *addrs, size_t naddrs, fetch_cb cb, void *arg)
{
    struct fetch_req *req;
    CURLMcode mrc;

    if (svc->destroying)
        return NULL;
    req = xcalloc(1, sizeof(*req));
    req->svc = svc;
    req->cb = cb;
    req->arg = arg;
    req->port = svc->opts.port;
    req->clen = -1;

    if (naddrs == 0 || naddrs > MAX_ADDRS)
        reject(req, FETCH_ERROR, "%zu addresses to pin (1 to %d allowed)", naddrs, MAX_ADDRS);
    else if (host == NULL || !host_ok(host))
        reject(req, FETCH_ERROR, "host name unfit for a URL");
    else if (path == NULL || strlen(path) > 1000 || !path_ok(path))
        reject(req, FETCH_ERROR, "path unfit for a URL");
    if (req->rejected || pin(req, host, addrs, naddrs) < 0 || setup(req, host, path) < 0)
        goto failed;
    mrc = curl_multi_add_handle(svc->multi, req->easy);
    if (mrc != CURLM_OK) {
        reject(req, FETCH_LOCAL, "local fault: libcurl: %s", curl_multi_strerror(mrc));
        goto failed;
    }
    req->state = REQ_ACTIVE;
    waitlist_push(&svc->active, &req->link);
    return req;

failed:
    /* The callback must not run before this returns: report from the loop. */
    req->state = REQ_DEFERRED;
    waitlist_push(&svc->deferred, &req->link);
    uv_timer_start(&svc->defer, on_defer, 0, 0);
    return req;
}
