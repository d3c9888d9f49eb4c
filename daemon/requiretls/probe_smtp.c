/*
 * The transport of one probe connection: a uv_tcp_t to the MX host address, a uv_timer_t
 * for its deadline (and then for QUIT's grace), and the close of both. What is said on it
 * is probe_dialogue.c's; the bytes read go into c->rx and the dialogue is told
 * (probe_dialogue_input), as are the end of the stream, a failed write and the deadline.
 * A connection is freed from its last close callback.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "probe_int.h"
#include "xalloc.h"

struct wreq {
    uv_write_t w;
    struct conn *c;
    char data[];
};

/* Writing. */

static void on_write(uv_write_t *w, int status)
{
    struct wreq *wr = container_of(w, struct wreq, w);
    struct conn *c = wr->c;

    free(wr);
    if (status < 0)
        probe_dialogue_write_failed(c, status);
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

static void on_timer(uv_timer_t *t);

void probe_smtp_wait(struct conn *c, unsigned ms)
{
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = container_of(req, struct conn, sreq);

    (void)status;
    probe_smtp_close(c);
}

void probe_smtp_hang_up(struct conn *c)
{
    if (c->tls)
        mbedtls_ssl_close_notify(&c->ssl);
    if (c->closing || uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
        probe_smtp_close(c);
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
        probe_dialogue_closed(c, (int)nread);
        return;
    }
    c->rx_len += (size_t)nread;
    probe_dialogue_input(c);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = container_of(req, struct conn, creq);

    if (c->closing)
        return;
    if (status < 0) {
        probe_why(c, "no connection to %s port %u: %s", c->addr, c->svc->opts.port,
                  uv_strerror(status));
        probe_fail(c);
        return;
    }
    probe_dialogue_connected(c);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
        probe_why(c, "cannot read from %s", c->addr);
        probe_fail(c);
    }
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = container_of(t, struct conn, timer);

    if (c->closing)
        return;
    if (c->sync_fail != NULL) {
        probe_why(c, "%s", c->sync_fail);
        probe_fail(c);
        return;
    }
    probe_dialogue_timeout(c);
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
