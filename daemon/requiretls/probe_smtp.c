/*
 * One probe connection: the SMTP dialogue with an MX host address over libuv (RFC 5321
 * banner and EHLO, STARTTLS per RFC 3207, EHLO again under TLS for REQUIRETLS, RFC 8689
 * 4.2.1, then QUIT), driven by a small state machine over replies parsed by proto/ehlo.c.
 * Each connection owns a uv_tcp_t, a uv_timer_t for its deadline and its mbedTLS session
 * (probe_tls.c). It hands its result to probe.c (probe_complete) and then finishes its QUIT
 * alone; it is freed from its last close callback.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "escape.h"
#include "probe_int.h"
#include "xalloc.h"

/* After the result: how long the server gets to answer QUIT (RFC 5321 4.1.1.10). */
#define QUIT_GRACE_MS 2000u

struct wreq {
    uv_write_t w;
    struct conn *c;
    char data[];
};

static void on_timer(uv_timer_t *t);

void probe_why(struct conn *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->res.why, sizeof(c->res.why), fmt, ap);
    va_end(ap);
}

void probe_why_add(struct conn *c, const char *fmt, ...)
{
    size_t off = strlen(c->res.why);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->res.why + off, sizeof(c->res.why) - off, fmt, ap);
    va_end(ap);
}

/* The probe failed: the reason is in c->res.why; deliver and close. */
static void fail(struct conn *c)
{
    probe_complete(c);
    probe_smtp_close(c);
}

/* Where a probe was, for the reason it gives: "timed out ... waiting for the banner". */
static const char *step_name(enum conn_state st)
{
    static const char *const names[] = {
        [ST_CONNECT] = "connecting",
        [ST_BANNER] = "waiting for the banner",
        [ST_EHLO1] = "waiting for the EHLO reply",
        [ST_STARTTLS] = "waiting for the reply to STARTTLS",
        [ST_HANDSHAKE] = "in the TLS handshake",
        [ST_EHLO2] = "waiting for the EHLO reply after STARTTLS",
        [ST_QUIT] = "waiting for the reply to QUIT",
    };

    return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

/* Writing. */

static void on_write(uv_write_t *w, int status)
{
    struct wreq *wr = container_of(w, struct wreq, w);
    struct conn *c = wr->c;

    free(wr);
    if (status < 0 && !c->closing) {
        if (c->st == ST_QUIT) {
            probe_smtp_close(c);
            return;
        }
        probe_why(c, "sending to %s failed %s: %s", c->addr, step_name(c->st), uv_strerror(status));
        fail(c);
    }
}

int probe_smtp_write(struct conn *c, const void *p, size_t n)
{
    struct wreq *wr;
    uv_buf_t buf;
    int rc;

    if (c->closing)
        return -1;
    wr = xmalloc(sizeof(*wr) + n);
    wr->c = c;
    memcpy(wr->data, p, n);
    buf = uv_buf_init(wr->data, (unsigned)n);
    rc = uv_write(&wr->w, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
    if (rc < 0) {
        free(wr);
        return rc;
    }
    return 0;
}

/* Send one command line, in clear or under TLS. 0, or -1 with the reason set. */
static int send_cmd(struct conn *c, const char *line)
{
    size_t n = strlen(line);

    ehlo_reply_init(&c->reply);
    if (c->tls)
        return probe_tls_write(c, line, n);
    if (probe_smtp_write(c, line, n) < 0) {
        probe_why(c, "sending to %s failed %s", c->addr, step_name(c->st));
        return -1;
    }
    return 0;
}

/* RFC 5321 4.1.1.1: EHLO with our name, in clear and again under TLS. */
static int send_ehlo(struct conn *c)
{
    char line[300];

    snprintf(line, sizeof(line), "EHLO %s\r\n", c->svc->helo_name);
    return send_cmd(c, line);
}

/* Steps. */

static void quit(struct conn *c)
{
    probe_complete(c);
    if (c->closing)
        return;
    c->st = ST_QUIT;
    if (send_cmd(c, "QUIT\r\n") < 0) {
        probe_smtp_close(c);
        return;
    }
    uv_timer_start(
        &c->timer, on_timer,
        QUIT_GRACE_MS < c->svc->opts.timeout_ms ? QUIT_GRACE_MS : c->svc->opts.timeout_ms, 0);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = container_of(req, struct conn, sreq);

    (void)status;
    probe_smtp_close(c);
}

/* The server answered QUIT: say goodbye to TLS, then to TCP. */
static void hang_up(struct conn *c)
{
    if (c->hungup)
        return;
    c->hungup = 1;
    if (c->tls)
        mbedtls_ssl_close_notify(&c->ssl);
    if (c->closing || uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
        probe_smtp_close(c);
}

/* The server turned the step down (what: "EHLO refused"): say so with its reply, and QUIT. */
static void refused(struct conn *c, const char *what, const char *esc)
{
    probe_why(c, "%s: %d %s", what, c->reply.code, esc);
    quit(c);
}

/* RFC 5321 4.3.1: 220 is the greeting; 554 (or anything else) refuses the session. */
static void on_banner(struct conn *c, const char *esc)
{
    if (c->reply.code != 220) {
        refused(c, "banner refused the session", esc);
        return;
    }
    c->st = ST_EHLO1;
    if (send_ehlo(c) < 0)
        fail(c);
}

static void on_ehlo1(struct conn *c, const char *esc)
{
    struct ehlo_caps caps;

    if (ehlo_caps_parse(&c->reply, &caps, NULL) != EHLO_OK) {
        refused(c, "EHLO refused", esc);
        return;
    }
    c->res.caps = caps.flags;
    /* RFC 3207 4: STARTTLS only when the server lists it. */
    if (!(caps.flags & EHLO_CAP_STARTTLS)) {
        probe_why(c, "STARTTLS not offered%s",
                  caps.flags & EHLO_CAP_REQUIRETLS ? " (REQUIRETLS listed in clear, ignored)" : "");
        quit(c);
        return;
    }
    c->res.starttls_offered = 1;
    c->st = ST_STARTTLS;
    if (send_cmd(c, "STARTTLS\r\n") < 0)
        fail(c);
}

static void on_starttls(struct conn *c, const char *esc)
{
    if (c->reply.code != 220) {
        refused(c, "STARTTLS refused", esc);
        return;
    }
    /* RFC 3207 6 (CVE-2011-0411): anything sent in clear after the 220 is dropped. */
    c->rx_off = c->rx_len = 0;
    if (probe_tls_begin(c) < 0) {
        probe_why(c, "cannot set up TLS");
        fail(c);
        return;
    }
    c->st = ST_HANDSHAKE;
}

/* After the TLS verdict in c->res.why: what the EHLO reply under TLS says. */
static void on_ehlo2(struct conn *c, const char *esc)
{
    struct ehlo_caps caps;

    if (ehlo_caps_parse(&c->reply, &caps, NULL) != EHLO_OK) {
        probe_why_add(c, "EHLO after STARTTLS refused: %d %s", c->reply.code, esc);
    } else {
        c->ehlo2_read = 1;
        c->res.caps = caps.flags;
        /* RFC 8689 4.2.1 step 5: REQUIRETLS in the EHLO reply after STARTTLS. */
        c->res.requiretls_advertised = (caps.flags & EHLO_CAP_REQUIRETLS) != 0;
        probe_why_add(c, "REQUIRETLS %s",
                      c->res.requiretls_advertised ? "advertised" : "not advertised");
    }
    quit(c);
}

static void on_quit(struct conn *c, const char *esc)
{
    (void)esc;
    hang_up(c);
}

/* What a reply means in each step (none is read while connecting or in the handshake). */
static void (*const on_step[])(struct conn *c, const char *esc) = {
    [ST_BANNER] = on_banner, [ST_EHLO1] = on_ehlo1, [ST_STARTTLS] = on_starttls,
    [ST_EHLO2] = on_ehlo2,   [ST_QUIT] = on_quit,
};

/* A complete reply in c->reply for the current step. */
static void on_reply(struct conn *c)
{
    char text[120], esc[200];

    ehlo_reply_first_line(&c->reply, text, sizeof(text));
    escape_log(esc, sizeof(esc), text, strlen(text));
    if (on_step[c->st] != NULL)
        on_step[c->st](c, esc);
}

/* Feed n bytes of SMTP to the reply parser; 1: a reply was handled, 0: more needed, -1: failed. */
static int feed_reply(struct conn *c, const uint8_t *p, size_t n, size_t *used)
{
    const char *why = NULL;
    int rc = ehlo_reply_feed(&c->reply, (const char *)p, n, used, &why);

    if (rc == 0)
        return 0;
    if (rc < 0) {
        if (c->st == ST_QUIT) {
            hang_up(c);
            return -1;
        }
        if (c->st == ST_EHLO2)
            probe_why_add(c, "bad reply %s: %s", step_name(c->st), why);
        else
            probe_why(c, "bad reply from %s %s: %s", c->addr, step_name(c->st), why);
        fail(c);
        return -1;
    }
    on_reply(c);
    return 1;
}

/*
 * The steps of process(): each returns 1 when the connection may move on, 0 when it waits
 * for more bytes or has failed.
 */

static int step_handshake(struct conn *c)
{
    int rc = probe_tls_handshake(c);

    if (rc == 0)
        return 0;
    if (rc < 0) {
        fail(c);
        return 0;
    }
    c->st = ST_EHLO2;
    if (send_ehlo(c) < 0) {
        fail(c);
        return 0;
    }
    return 1;
}

/* Under TLS: decrypt what is there; a reply's trailing bytes are dropped. */
static int step_read_tls(struct conn *c)
{
    uint8_t buf[1024];
    char err[200];
    size_t used;
    int n = probe_tls_read(c, buf, sizeof(buf), err, sizeof(err));

    if (n == 0)
        return 0;
    if (n < 0) {
        if (c->st == ST_QUIT) {
            probe_smtp_close(c);
            return 0;
        }
        probe_why_add(c, "%s %s", err, step_name(c->st));
        fail(c);
        return 0;
    }
    return feed_reply(c, buf, (size_t)n, &used) >= 0;
}

/* In clear: the reply parser reads the receive buffer directly. */
static int step_read_clear(struct conn *c)
{
    size_t used = 0;
    int rc;

    if (c->rx_off == c->rx_len)
        return 0;
    rc = feed_reply(c, c->rx + c->rx_off, c->rx_len - c->rx_off, &used);
    if (rc < 0)
        return 0;
    if (rc == 0) {
        c->rx_off = c->rx_len = 0;
        return 0;
    }
    /* After STARTTLS's 220 on_starttls emptied the buffer; elsewhere keep the rest. */
    if (c->rx_len > 0)
        c->rx_off += used;
    return 1;
}

/* Move the connection on as far as the bytes in hand allow. */
static void process(struct conn *c)
{
    while (!c->closing && !c->hungup) {
        int more = c->st == ST_HANDSHAKE ? step_handshake(c)
                   : c->tls              ? step_read_tls(c)
                                         : step_read_clear(c);

        if (!more)
            return;
    }
}

/* libuv callbacks. */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = container_of((uv_tcp_t *)h, struct conn, tcp);

    if (c->rx_off > 0) {
        memmove(c->rx, c->rx + c->rx_off, c->rx_len - c->rx_off);
        c->rx_len -= c->rx_off;
        c->rx_off = 0;
    }
    *buf = uv_buf_init((char *)c->rx + c->rx_len, (unsigned)(RX_CAP - c->rx_len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = container_of((uv_tcp_t *)s, struct conn, tcp);

    if (c->closing || nread == 0)
        return;
    if (nread < 0) {
        if (c->st == ST_QUIT) {
            probe_smtp_close(c);
            return;
        }
        if (c->st == ST_EHLO2)
            probe_why_add(c, "connection %s %s",
                          nread == UV_EOF ? "closed by the server" : uv_strerror((int)nread),
                          step_name(c->st));
        else
            probe_why(c, "connection to %s %s %s", c->addr,
                      nread == UV_EOF       ? "closed by the server"
                      : nread == UV_ENOBUFS ? "overflowed its receive buffer"
                                            : uv_strerror((int)nread),
                      step_name(c->st));
        fail(c);
        return;
    }
    c->rx_len += (size_t)nread;
    process(c);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = container_of(req, struct conn, creq);

    if (c->closing)
        return;
    if (status < 0) {
        probe_why(c, "no connection to %s port %u: %s", c->addr, c->svc->opts.port,
                  uv_strerror(status));
        fail(c);
        return;
    }
    c->res.connected = 1;
    c->st = ST_BANNER;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
        probe_why(c, "cannot read from %s", c->addr);
        fail(c);
    }
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = container_of(t, struct conn, timer);

    if (c->closing)
        return;
    if (c->sync_fail != NULL) {
        probe_why(c, "%s", c->sync_fail);
        fail(c);
        return;
    }
    if (c->st == ST_QUIT) {
        probe_smtp_close(c);
        return;
    }
    /* The probe's deadline: the whole probe, whatever step it is in. */
    c->res.timed_out = 1;
    if (c->st == ST_EHLO2)
        probe_why_add(c, "timed out after %u ms %s", c->svc->opts.timeout_ms, step_name(c->st));
    else
        probe_why(c, "timed out after %u ms %s (%s)", c->svc->opts.timeout_ms, step_name(c->st),
                  c->addr);
    fail(c);
}

static void on_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct probe_svc *svc = c->svc;

    if (--c->open > 0)
        return;
    mbedtls_ssl_free(&c->ssl);
    free(c);
    probe_conn_freed(svc);
}

void probe_smtp_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    waitlist_remove(&c->link);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_closed);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    /* Closed before its result was out (not by probe_svc_destroy, which drops the entry). */
    if (c->e != NULL) {
        if (c->res.why[0] == '\0')
            probe_why(c, "probe of %s ended early", c->addr);
        probe_complete(c);
    }
}

/* addr is numeric (probe_start checked it): IPv6 when it has a colon. */
static void fill_sockaddr(struct sockaddr_storage *ss, const char *addr, unsigned port)
{
    memset(ss, 0, sizeof(*ss));
    if (strchr(addr, ':') != NULL) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, addr, &s6->sin6_addr);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, addr, &s4->sin_addr);
    }
}

void probe_smtp_start(struct probe_svc *svc, struct entry *e)
{
    struct conn *c = xcalloc(1, sizeof(*c));
    struct sockaddr_storage ss;
    int rc;

    c->svc = svc;
    c->e = e;
    e->conn = c;
    c->st = ST_CONNECT;
    c->started_ms = uv_hrtime() / 1000000;
    memcpy(c->host, e->host, sizeof(c->host));
    memcpy(c->addr, e->addr, sizeof(c->addr));
    mbedtls_ssl_init(&c->ssl);
    waitlist_push(&svc->conns, &c->link);
    uv_tcp_init(svc->loop, &c->tcp);
    uv_timer_init(svc->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open = 2;

    fill_sockaddr(&ss, c->addr, svc->opts.port);
    rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&ss, on_connect);
    if (rc < 0) {
        c->sync_fail = uv_strerror(rc);
        uv_timer_start(&c->timer, on_timer, 0, 0);
        return;
    }
    uv_timer_start(&c->timer, on_timer, svc->opts.timeout_ms, 0);
}
