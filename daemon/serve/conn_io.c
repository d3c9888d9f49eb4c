/*
 * The transport of a socketmap connection (conn_int.h) on libuv: its stream (TCP or unix)
 * and timer, accepting under max_connections, and closing. What the bytes mean, and when to
 * read, write or close, is conn.c's.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "conn.h"
#include "conn_int.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "xalloc.h"

uint64_t conn_io_now(const struct conn *c)
{
    return uv_now(c->srv->loop);
}

int conn_io_input_waiting(struct conn *c)
{
    uv_os_fd_t fd;
    int n = 0;

    return uv_fileno(&c->h.handle, &fd) == 0 && ioctl(fd, FIONREAD, &n) == 0 && n > 0;
}

int conn_io_try_write(struct conn *c, const char *p, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);

    return uv_try_write(&c->h.stream, &b, 1);
}

static void on_write(uv_write_t *req, int status)
{
    conn_written(req->data, status);
}

int conn_io_write(struct conn *c, const char *p, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);

    c->wreq.data = c;
    return uv_write(&c->wreq, &c->h.stream, &b, 1, on_write);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;

    *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(CONN_RBUF - c->rlen));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    conn_received(st->data, nread);
}

int conn_io_read(struct conn *c, int on)
{
    return on ? uv_read_start(&c->h.stream, on_alloc, on_read) : uv_read_stop(&c->h.stream);
}

static void on_timer(uv_timer_t *t)
{
    conn_timer(t->data);
}

void conn_io_timer(struct conn *c, uint64_t ms)
{
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_close(uv_handle_t *h)
{
    conn_handle_closed(h->data);
}

void conn_io_close(struct conn *c)
{
    uv_close(&c->h.handle, on_close);
    uv_close((uv_handle_t *)&c->timer, on_close);
}

/* Accepting. */

static void describe_peer(struct conn *c, int is_unix)
{
    if (is_unix) {
        struct ucred cred;
        socklen_t len = sizeof(cred);
        uv_os_fd_t fd;

        if (uv_fileno(&c->h.handle, &fd) == 0 &&
            getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
            snprintf(c->peer, sizeof(c->peer), "unix pid=%ld uid=%ld", (long)cred.pid,
                     (long)cred.uid);
        else
            snprintf(c->peer, sizeof(c->peer), "unix");
    } else {
        struct sockaddr_storage ss;
        int len = sizeof(ss);
        char host[64] = "?";
        int port = 0;

        if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) == 0) {
            if (ss.ss_family == AF_INET6) {
                uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof(host));
                port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
            } else {
                uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof(host));
                port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
            }
        }
        snprintf(c->peer, sizeof(c->peer), "[%s]:%d", host, port);
    }
}

static void on_refused_close(uv_handle_t *h)
{
    free(h);
}

/*
 * At max_connections, the connection to close for a new client: the one waiting longest
 * with nothing being answered, idle (since its last activity) or trickling a request that
 * is not complete (since that request began). A connection with a request pending, or
 * answers not yet written, is never chosen (SPEC 4). One accepted less than CONN_FRESH_MS
 * ago that has sent nothing yet goes only when no other can. NULL when every one is busy.
 */
static struct conn *oldest_unbusy(struct server *srv)
{
    struct conn *c, *best = NULL;
    uint64_t now = uv_now(srv->loop), best_since = 0;
    int best_fresh = 1;

    for (c = conn_first(srv); c != NULL; c = conn_next(c)) {
        uint64_t since = c->rlen > 0 ? c->req_started : c->last_activity;
        int fresh = !c->heard && now - c->last_activity < CONN_FRESH_MS;

        if (c->closing || c->count > 0 || c->inflight > 0 || c->writing || c->olen > 0)
            continue;
        if (best == NULL || fresh < best_fresh || (fresh == best_fresh && since < best_since)) {
            best = c;
            best_since = since;
            best_fresh = fresh;
        }
    }
    return best;
}

void conn_accept(struct server *srv, uv_stream_t *server_handle, int is_unix)
{
    struct conn *c;
    int err;

    c = xcalloc(1, sizeof(*c));
    if (is_unix)
        uv_pipe_init(srv->loop, &c->h.pipe, 0);
    else
        uv_tcp_init(srv->loop, &c->h.tcp);
    c->h.handle.data = c;
    err = uv_accept(server_handle, &c->h.stream);
    if (err < 0) {
        log_warning("accept failed: %s", uv_strerror(err));
        uv_close(&c->h.handle, on_refused_close);
        return;
    }

    /*
     * At the limit, an idle or trickling connection makes room (slowloris: clients that
     * send nothing, or a byte now and then, must not hold every slot); when every
     * connection has work in hand, the new one is accepted and closed at once, so the
     * backlog does not fill.
     */
    if (srv->nconns >= srv->cfg.max_connections) {
        struct conn *old = oldest_unbusy(srv);

        if (old != NULL) {
            uint64_t now = uv_now(srv->loop);

            if (old->rlen > 0)
                log_notice("%s: closing connection to make room for a new one (max_connections "
                           "%u open): incomplete request (%zu bytes) for %llu ms",
                           old->peer, srv->cfg.max_connections, old->rlen,
                           (unsigned long long)(now - old->req_started));
            else
                log_notice("%s: closing connection to make room for a new one (max_connections "
                           "%u open): idle for %llu ms",
                           old->peer, srv->cfg.max_connections,
                           (unsigned long long)(now - old->last_activity));
            metrics_conn(METRICS_CONN_EVICTED);
            conn_close(old);
        }
    }
    if (srv->nconns >= srv->cfg.max_connections) {
        uint64_t now = uv_now(srv->loop);

        srv->refused++;
        metrics_conn(METRICS_CONN_REFUSED);
        if (now - srv->refused_logged_at >= 1000) {
            log_warning("refusing connections: max_connections (%u) are open; %lu refused",
                        srv->cfg.max_connections, srv->refused);
            srv->refused = 0;
            srv->refused_logged_at = now;
        }
        uv_close(&c->h.handle, on_refused_close);
        return;
    }

    c->srv = srv;
    uv_timer_init(srv->loop, &c->timer);
    c->timer.data = c;
    c->handles_open = 2;
    if (!is_unix)
        uv_tcp_nodelay(&c->h.tcp, 1);
    describe_peer(c, is_unix);
    conn_start(c, srv);
}
