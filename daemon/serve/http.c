/*
 * HTTP/1.x for /metrics and /healthz on libuv. Each connection has a fixed buffer of one
 * request head (proto/httpreq.c parses it once the blank line has arrived), one timer for
 * the whole exchange, and one response written with Connection: close; after the write the
 * daemon shuts its side down and reads until the client closes, so the response is never
 * cut by a reset. The server owns its connections and is freed after the last close
 * callback (STYLE "Async lifetimes" 2).
 */
#include "http.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fdwatch.h"
#include "httpreq.h"
#include "listener.h"
#include "log.h"
#include "waitlist.h"
#include "xalloc.h"

struct hconn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    struct http_server *hs;
    struct waitlist_link link; /* on the endpoint's list of connections */
    char *out;
    size_t len;     /* bytes of the request head received */
    size_t scanned; /* bytes already searched for the end of the head */
    unsigned handles_open;
    int closing, answered;
    char buf[HTTPREQ_MAX];
};

/*
 * The listening handle's states. Out of descriptors with nothing to shed them with, libuv
 * would call accept() again at once, for ever, and the loop would serve nothing else (a
 * scrape waiting while the daemon had no descriptor spun it at 100% CPU): the handle is
 * closed while spare, a duplicate taken at start, keeps the socket and its backlog, and a
 * timer reopens it on spare once a descriptor can be had (as listener.c does for socketmap).
 */
enum listen_state { LISTENING, PAUSING, PAUSED, SHUT };

/* How often a paused endpoint looks for a descriptor to accept with again (ms). */
#define HTTP_RESUME_MS 250

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_timer_t resume;
    enum listen_state state;
    int spare; /* a duplicate of the listening socket, or -1 */
    struct endpoint ep;
    http_gauges_fn gauges;
    void *arg;
    struct waitlist_link *conns;
    unsigned nconns, handles_open;
    unsigned long refused;
    uint64_t refused_logged_at;
    int closing;
};

/* Every handle of the server and of its connections counts in handles_open. */
static void server_maybe_free(struct http_server *hs)
{
    if (hs->closing && hs->handles_open == 0)
        free(hs);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct hconn *c = h->data;
    struct http_server *hs = c->hs;

    hs->handles_open--;
    if (--c->handles_open == 0) {
        free(c->out);
        free(c);
    }
    server_maybe_free(hs);
}

static void conn_close(struct hconn *c)
{
    struct http_server *hs = c->hs;

    if (c->closing)
        return;
    c->closing = 1;
    waitlist_remove(&c->link);
    hs->nconns--;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_timeout(uv_timer_t *t)
{
    struct hconn *c = t->data;

    /* A request that did not arrive in time gets a 408 if the socket takes it at once. */
    if (!c->answered) {
        static const char msg[] = "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n"
                                  "Connection: close\r\n\r\n";
        uv_buf_t b = uv_buf_init((char *)msg, sizeof(msg) - 1);

        uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        metrics_http(METRICS_HTTP_OTHER, 408);
    }
    conn_close(c);
}

static void on_drain_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct hconn *c = h->data;

    *buf = uv_buf_init(c->buf, sizeof(c->buf));
}

/* After the response: discard whatever the client still sends until it closes. */
static void on_drain_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct hconn *c = st->data;

    if (nread < 0)
        conn_close(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct hconn *c = req->data;

    if (c->closing)
        return;
    if (status < 0 || uv_read_start((uv_stream_t *)&c->tcp, on_drain_alloc, on_drain_read) < 0)
        conn_close(c);
}

static void on_write(uv_write_t *req, int status)
{
    struct hconn *c = req->data;

    free(c->out);
    c->out = NULL;
    if (c->closing)
        return;
    c->sreq.data = c;
    if (status < 0 || uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
        conn_close(c);
}

static const char *reason_phrase(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

/* Send one response and end the exchange; body is copied (or taken when own is set). */
static void respond(struct hconn *c, enum metrics_http_handler h, int code, const char *ctype,
                    char *body, size_t blen, int own, int head_only)
{
    char hdr[256];
    int n;
    uv_buf_t b;

    c->answered = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
    metrics_http(h, code);
    n = snprintf(hdr, sizeof(hdr),
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                 "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                 code, reason_phrase(code), ctype, blen, code == 405 ? "Allow: GET, HEAD\r\n" : "");
    c->out = xmalloc((size_t)n + (head_only ? 0 : blen));
    memcpy(c->out, hdr, (size_t)n);
    if (!head_only && blen > 0)
        memcpy(c->out + n, body, blen);
    if (own)
        free(body);
    b = uv_buf_init(c->out, (unsigned)((size_t)n + (head_only ? 0 : blen)));
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0) {
        free(c->out);
        c->out = NULL;
        conn_close(c);
    }
}

static void respond_text(struct hconn *c, enum metrics_http_handler h, int code, const char *text,
                         int head_only)
{
    respond(c, h, code, "text/plain; charset=utf-8", (char *)text, strlen(text), 0, head_only);
}

static void handle(struct hconn *c, const struct httpreq *req)
{
    struct http_server *hs = c->hs;
    int head_only = req->method == HTTPREQ_HEAD;
    enum metrics_http_handler h = METRICS_HTTP_OTHER;
    struct metrics_gauges g;

    if (req->pathlen == 8 && memcmp(req->path, "/metrics", 8) == 0)
        h = METRICS_HTTP_METRICS;
    else if (req->pathlen == 8 && memcmp(req->path, "/healthz", 8) == 0)
        h = METRICS_HTTP_HEALTHZ;
    if (req->method == HTTPREQ_OTHER) {
        respond_text(c, h, 405, "only GET and HEAD are served\n", 0);
        return;
    }
    if (h == METRICS_HTTP_OTHER) {
        if (req->pathlen == 1)
            respond_text(c, h, 200, "tlspolicyd: see /metrics and /healthz\n", head_only);
        else
            respond_text(c, h, 404, "not found; try /metrics or /healthz\n", head_only);
        return;
    }
    memset(&g, 0, sizeof(g));
    hs->gauges(hs->arg, &g);
    g.http_conns_open = hs->nconns;
    if (h == METRICS_HTTP_HEALTHZ) {
        /* Can the daemon serve? It can while its socketmap listeners accept connections. */
        if (g.serving)
            respond_text(c, h, 200, "ok\n", head_only);
        else
            respond_text(c, h, 503, "not serving: the daemon is draining\n", head_only);
        return;
    }
    {
        size_t len;
        char *text = metrics_render(&g, &len);

        respond(c, h, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, 1, head_only);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct hconn *c = h->data;

    *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof(c->buf) - c->len));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct hconn *c = st->data;
    struct httpreq req;
    const char *why = NULL;
    size_t from;
    int rc;

    if (nread == 0 || nread == UV_ENOBUFS)
        return;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    c->len += (size_t)nread;
    /* Parse only once the head is complete or the buffer full: no work per trickled byte. */
    from = c->scanned > 3 ? c->scanned - 3 : 0;
    c->scanned = c->len;
    if (httpreq_head_end(c->buf + from, c->len - from) == 0 && c->len < sizeof(c->buf))
        return;
    rc = httpreq_parse(c->buf, c->len, &req, &why);
    switch (rc) {
    case HTTPREQ_OK:
        handle(c, &req);
        return;
    case HTTPREQ_MORE:
        return;
    case HTTPREQ_ETOOBIG:
        respond_text(c, METRICS_HTTP_OTHER, 431, "request head too large\n", 0);
        return;
    case HTTPREQ_EVERSION:
        respond_text(c, METRICS_HTTP_OTHER, 505, "only HTTP/1.x is served\n", 0);
        return;
    default:
        log_debug("%s: bad HTTP request: %s", c->hs->ep.text, why);
        respond_text(c, METRICS_HTTP_OTHER, 400, "bad request\n", 0);
        return;
    }
}

static void on_refused_closed(uv_handle_t *h)
{
    struct http_server *hs = h->data;

    free(h);
    hs->handles_open--;
    server_maybe_free(hs);
}

static void on_connection(uv_stream_t *st, int status);

/* The listening handle is gone for good (closed, or never reopened). */
static void on_listener_closed(uv_handle_t *h)
{
    struct http_server *hs = h->data;

    hs->state = SHUT;
    hs->handles_open--;
    server_maybe_free(hs);
}

/* The spare becomes the listening handle again, and a new spare is taken. */
static void on_resume(uv_timer_t *t)
{
    struct http_server *hs = t->data;
    int rc;

    if (hs->closing || fdwatch_probe() != 0)
        return;
    uv_tcp_init(hs->loop, &hs->tcp);
    hs->tcp.data = hs;
    rc = uv_tcp_open(&hs->tcp, hs->spare);
    if (rc < 0)
        close(hs->spare); /* not the handle's: uv_tcp_open() did not take it */
    else
        rc = uv_listen((uv_stream_t *)&hs->tcp, SOMAXCONN, on_connection);
    uv_timer_stop(t);
    if (rc < 0) {
        /* Without a listener, say so and stay closed (the spare went with the handle). */
        log_error("%s: cannot accept connections again: %s", hs->ep.text, uv_strerror(rc));
        hs->spare = -1;
        uv_close((uv_handle_t *)&hs->tcp, on_listener_closed);
        return;
    }
    hs->state = LISTENING;
    hs->spare = fcntl(hs->spare, F_DUPFD_CLOEXEC, 0);
    log_notice("%s: accepting connections again", hs->ep.text);
}

static void on_paused(uv_handle_t *h)
{
    struct http_server *hs = h->data;

    if (hs->closing) {
        on_listener_closed(h);
        return;
    }
    hs->state = PAUSED;
    uv_timer_start(&hs->resume, on_resume, HTTP_RESUME_MS, HTTP_RESUME_MS);
}

static void on_connection(uv_stream_t *st, int status)
{
    struct http_server *hs = st->data;
    struct hconn *c;
    int stuck;

    if (status < 0) {
        if (!listener_shed_all(st, status, &stuck)) {
            log_warning("%s: accept failed: %s", hs->ep.text, uv_strerror(status));
        } else if (stuck && hs->spare >= 0 && hs->state == LISTENING) {
            hs->state = PAUSING;
            log_warning("%s: not accepting connections until a descriptor is free (clients "
                        "wait in the backlog)",
                        hs->ep.text);
            uv_close((uv_handle_t *)&hs->tcp, on_paused);
        }
        return;
    }
    if (hs->nconns >= HTTP_MAX_CONNS) {
        /* Over the limit: accept and close at once, so the backlog does not fill. */
        uv_tcp_t *t = xmalloc(sizeof(*t));
        uint64_t now = uv_now(hs->loop);

        uv_tcp_init(hs->loop, t);
        t->data = hs;
        hs->handles_open++;
        uv_accept(st, (uv_stream_t *)t);
        uv_close((uv_handle_t *)t, on_refused_closed);
        metrics_conn(METRICS_CONN_HTTP_REFUSED);
        hs->refused++;
        if (now - hs->refused_logged_at >= 1000) {
            log_notice("%s: refusing HTTP connections: %d are open; %lu refused", hs->ep.text,
                       HTTP_MAX_CONNS, hs->refused);
            hs->refused = 0;
            hs->refused_logged_at = now;
        }
        return;
    }
    c = xcalloc(1, sizeof(*c));
    c->hs = hs;
    uv_tcp_init(hs->loop, &c->tcp);
    uv_timer_init(hs->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles_open = 2;
    hs->handles_open += 2;
    waitlist_push(&hs->conns, &c->link);
    hs->nconns++;
    if (uv_accept(st, (uv_stream_t *)&c->tcp) < 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
        conn_close(c);
        return;
    }
    metrics_conn(METRICS_CONN_HTTP_ACCEPTED);
    uv_timer_start(&c->timer, on_timeout, HTTP_TIMEOUT_MS, 0);
}

static void on_resume_closed(uv_handle_t *h)
{
    struct http_server *hs = h->data;

    hs->handles_open--;
    server_maybe_free(hs);
}

struct http_server *http_server_open(uv_loop_t *loop, const struct endpoint *ep, int fd,
                                     http_gauges_fn gauges, void *arg, char *err, size_t errlen)
{
    struct http_server *hs = xcalloc(1, sizeof(*hs));
    struct sockaddr_storage ss;
    int rc;

    hs->loop = loop;
    hs->ep = *ep;
    hs->gauges = gauges;
    hs->arg = arg;
    hs->spare = -1;
    uv_tcp_init(loop, &hs->tcp);
    hs->tcp.data = hs;
    uv_timer_init(loop, &hs->resume);
    hs->resume.data = hs;
    hs->handles_open = 2;
    if (fd >= 0) {
        rc = uv_tcp_open(&hs->tcp, fd);
        if (rc < 0) {
            snprintf(err, errlen, "%s: inherited socket %d: %s", ep->text, fd, uv_strerror(rc));
            close(fd); /* not the handle's: uv_tcp_open() did not take it */
        }
    } else {
        if (strchr(ep->host, ':'))
            rc = uv_ip6_addr(ep->host, ep->port, (struct sockaddr_in6 *)&ss);
        else
            rc = uv_ip4_addr(ep->host, ep->port, (struct sockaddr_in *)&ss);
        if (rc == 0)
            rc = uv_tcp_bind(&hs->tcp, (struct sockaddr *)&ss,
                             strchr(ep->host, ':') ? UV_TCP_IPV6ONLY : 0);
        if (rc < 0)
            snprintf(err, errlen, "%s: bind: %s", ep->text, uv_strerror(rc));
    }
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&hs->tcp, SOMAXCONN, on_connection);
        if (rc < 0)
            snprintf(err, errlen, "%s: listen: %s", ep->text, uv_strerror(rc));
    }
    if (rc == 0) {
        uv_os_fd_t lfd;

        if (uv_fileno((uv_handle_t *)&hs->tcp, &lfd) == 0)
            hs->spare = fcntl(lfd, F_DUPFD_CLOEXEC, 0);
    }
    if (rc < 0) {
        http_server_close(hs);
        return NULL;
    }
    return hs;
}

void http_server_close(struct http_server *hs)
{
    if (hs == NULL || hs->closing)
        return;
    hs->closing = 1;
    while (hs->conns)
        conn_close(waitlist_entry(hs->conns, struct hconn, link));
    if (hs->spare >= 0)
        close(hs->spare);
    hs->spare = -1;
    uv_close((uv_handle_t *)&hs->resume, on_resume_closed);
    /* PAUSING: on_paused() finishes it; PAUSED and SHUT: the handle is closed already. */
    if (hs->state == LISTENING)
        uv_close((uv_handle_t *)&hs->tcp, on_listener_closed);
    else if (hs->state == PAUSED)
        hs->handles_open--;
}
