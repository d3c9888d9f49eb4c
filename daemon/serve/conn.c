/*
 * A socketmap connection (SPEC section 4). Requests are numbered slots in a ring of
 * max_pipeline entries; a lookup may complete at any time, but answers leave strictly in
 * slot order: the head slot's answer goes to the output buffer at once, later ones wait in
 * their slot. Reading pauses while the ring is full or too much output is unsent, so a
 * client can never make the daemon hold more than its bounds.
 *
 * Lifetime (STYLE "Async lifetimes"): a conn is freed only when both of its handles are
 * closed and no lookup is in flight; a lookup that completes on a closing conn is dropped.
 */
#include "conn.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "escape.h"
#include "listener.h"
#include "log.h"
#include "lookup.h"
#include "metrics.h"
#include "netstring.h"
#include "server.h"
#include "sockmap.h"
#include "waitlist.h"
#include "xalloc.h"

/* One whole request: SOCKMAP_MAX_REQUEST payload plus its length prefix and comma. */
#define CONN_RBUF (SOCKMAP_MAX_REQUEST + NETSTRING_MAX_DIGITS + 2)
/* Rendered answers not yet accepted by the kernel; reading pauses above this. */
#define CONN_MAX_OUT (256 * 1024)
/*
 * At max_connections, a connection that has sent nothing yet is spared for this long while
 * an idle or trickling one can make room instead: a client such as postmap connects and then
 * writes its request, and under a flood of tricklers (each new one evicting the oldest) it
 * would otherwise be closed between the two whenever it is not scheduled at once.
 */
#define CONN_FRESH_MS 1000
/* One rendered reply: the longest text, status word, length prefix and comma. */
#define REPLY_MAX (SOCKMAP_MAX_TEXT + 32)

struct slot {
    struct conn *c;
    uint64_t started; /* uv_hrtime() at the request's arrival, for the latency histogram */
    char *reply;      /* an answer completed ahead of its turn, or NULL */
    size_t len;
    int done;
};

struct conn {
    union stream_handle h;
    uv_timer_t timer;
    uv_write_t wreq;
    struct server *srv;
    struct waitlist_link link; /* on the server's list of open connections */
    char peer[96];

    char *rbuf; /* received bytes not yet parsed: at most one partial request */
    size_t rlen;

    struct slot *slots; /* ring of requests in arrival order */
    unsigned cap, head, count;
    unsigned inflight; /* lookups started and not yet completed */

    char *obuf; /* answers ready to send */
    size_t olen, ocap;
    char *wbuf; /* answers handed to uv_write */
    size_t wlen, woff, wcap;

    /*
     * req_started: when the partial request in rbuf began to count against request_timeout:
     * its first byte, or the moment reading resumed after a pause (the client could send
     * nothing meanwhile). Later bytes never move it (slowloris).
     */
    uint64_t req_started, last_activity, write_started, timer_due;
    unsigned long served;
    unsigned handles_open;
    unsigned reading : 1, writing : 1, eof : 1, fatal : 1, draining : 1, closing : 1, in_input : 1,
        timer_armed : 1, heard : 1; /* heard: a byte has arrived since the accept */
};

static void process_input(struct conn *c);

struct conn *conn_first(struct server *srv)
{
    return waitlist_entry(srv->conns, struct conn, link);
}

struct conn *conn_next(struct conn *c)
{
    return waitlist_entry(c->link.next, struct conn, link);
}

/* Freeing and closing. */

static void maybe_free(struct conn *c)
{
    if (c->handles_open > 0 || c->inflight > 0)
        return;
    for (unsigned i = 0; i < c->cap; i++)
        free(c->slots[i].reply);
    free(c->slots);
    free(c->rbuf);
    free(c->obuf);
    free(c->wbuf);
    free(c);
}

static void on_close(uv_handle_t *h)
{
    struct conn *c = h->data;

    c->handles_open--;
    maybe_free(c);
}

void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    waitlist_remove(&c->link);
    c->srv->nconns--;
    uv_close(&c->h.handle, on_close);
    uv_close((uv_handle_t *)&c->timer, on_close);
}

/* Close, with a log line saying why, once every answer asked for has left. */
static void maybe_finish(struct conn *c)
{
    if (c->closing || c->writing || c->olen > 0 || c->count > 0)
        return;
    if (c->eof || c->fatal) {
        log_debug("%s: connection closed after %lu answers", c->peer, c->served);
        conn_close(c);
    } else if (c->draining && c->rlen == 0) {
        conn_close(c);
    }
}

/* Timers: one per connection, re-armed only when a deadline moves earlier. */

static uint64_t deadline(const struct conn *c)
{
    const struct config *cfg = &c->srv->cfg;

    if (c->writing)
        return c->write_started + cfg->request_timeout_ms;
    if (c->rlen > 0 && c->count < c->cap && !c->fatal)
        return c->req_started + cfg->request_timeout_ms;
    return c->last_activity + cfg->idle_timeout_ms;
}

static void on_timer(uv_timer_t *t);

/*
 * Bytes the kernel holds for c that the loop has not read yet. libuv runs due timers before
 * it polls for input, so after a stall (the process not scheduled, a long loop iteration) a
 * connection can look idle past idle_timeout while its next request is already waiting.
 */
static int input_waiting(struct conn *c)
{
    uv_os_fd_t fd;
    int n = 0;

    return uv_fileno(&c->h.handle, &fd) == 0 && ioctl(fd, FIONREAD, &n) == 0 && n > 0;
}

static void arm_timer(struct conn *c)
{
    uint64_t now = uv_now(c->srv->loop), due = deadline(c);

    if (c->closing)
        return;
    if (!c->timer_armed || due < c->timer_due) {
        c->timer_due = due;
        c->timer_armed = 1;
        uv_timer_start(&c->timer, on_timer, due > now ? due - now : 0, 0);
    }
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    uint64_t now = uv_now(c->srv->loop), due = deadline(c);

    c->timer_armed = 0;
    if (due > now) {
        arm_timer(c);
        return;
    }
    if (c->writing) {
        log_notice("%s: closing connection: the client has not read its answers for %u ms", c->peer,
                   c->srv->cfg.request_timeout_ms);
    } else if (c->rlen > 0 && c->count < c->cap && !c->fatal) {
        /* SPEC 4: never drop a request being answered; the rest of the input is dropped. */
        if (c->count > 0 || c->inflight > 0) {
            log_notice("%s: closing connection after %u pending answers: incomplete request "
                       "(%zu bytes) for %u ms",
                       c->peer, c->count, c->rlen, c->srv->cfg.request_timeout_ms);
            c->fatal = 1;
            c->rlen = 0;
            process_input(c);
            return;
        }
        log_notice("%s: closing connection: incomplete request (%zu bytes) for %u ms", c->peer,
                   c->rlen, c->srv->cfg.request_timeout_ms);
    } else if (c->count > 0 || c->inflight > 0 || (c->reading && input_waiting(c))) {
        /* Lookups bound their own time; the connection is busy, not idle. A request that
         * is waiting in the kernel is read in this iteration: not idle either (closing would
         * reset the client, its request unread). */
        c->last_activity = now;
        arm_timer(c);
        return;
    } else {
        log_debug("%s: closing idle connection after %u ms", c->peer, c->srv->cfg.idle_timeout_ms);
    }
    conn_close(c);
}

/* Output. */

static void append_out(struct conn *c, const char *p, size_t n)
{
    if (c->olen + n > c->ocap) {
        while (c->olen + n > c->ocap)
            c->ocap = c->ocap ? c->ocap * 2 : 4096;
        c->obuf = xrealloc(c->obuf, c->ocap);
    }
    memcpy(c->obuf + c->olen, p, n);
    c->olen += n;
}

static void flush(struct conn *c);

static void on_write(uv_write_t *req, int status)
{
    struct conn *c = req->data;

    c->writing = 0;
    c->wlen = c->woff = 0;
    if (c->closing)
        return;
    if (status < 0) {
        log_info("%s: closing connection: write failed: %s", c->peer, uv_strerror(status));
        conn_close(c);
        return;
    }
    c->last_activity = uv_now(c->srv->loop);
    /* Room may have opened for buffered requests and for reading. */
    process_input(c);
}

static void flush(struct conn *c)
{
    uv_buf_t b;
    int n;
    char *tmp;
    size_t tcap;

    if (c->closing || c->writing || c->olen == 0)
        return;

    /* Most answers fit the socket buffer: try to write them now, without a callback. */
    b = uv_buf_init(c->obuf, (unsigned)c->olen);
    n = uv_try_write(&c->h.stream, &b, 1);
    if (n == (int)c->olen) {
        c->olen = 0;
        c->last_activity = uv_now(c->srv->loop);
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        log_info("%s: closing connection: write failed: %s", c->peer, uv_strerror(n));
        conn_close(c);
        return;
    }

    /* The rest goes through uv_write; swap buffers so new answers collect meanwhile. */
    tmp = c->wbuf;
    tcap = c->wcap;
    c->wbuf = c->obuf;
    c->wcap = c->ocap;
    c->wlen = c->olen;
    c->woff = n > 0 ? (size_t)n : 0;
    c->obuf = tmp;
    c->ocap = tcap;
    c->olen = 0;

    b = uv_buf_init(c->wbuf + c->woff, (unsigned)(c->wlen - c->woff));
    c->wreq.data = c;
    n = uv_write(&c->wreq, &c->h.stream, &b, 1, on_write);
    if (n < 0) {
        log_info("%s: closing connection: write failed: %s", c->peer, uv_strerror(n));
        conn_close(c);
        return;
    }
    c->writing = 1;
    c->write_started = uv_now(c->srv->loop);
    arm_timer(c);
}

/* Answers leave in request order: move finished slots from the head of the ring. */
static void complete(struct slot *s, enum sockmap_status st, const char *text)
{
    struct conn *c = s->c;
    char reply[REPLY_MAX];
    size_t n = sockmap_render(reply, sizeof(reply), st, text);

    c->served++;
    if (s != &c->slots[c->head]) {
        s->reply = xmalloc(n);
        memcpy(s->reply, reply, n);
        s->len = n;
        s->done = 1;
        return;
    }
    append_out(c, reply, n);
    c->head = (c->head + 1) % c->cap;
    c->count--;
    while (c->count > 0 && c->slots[c->head].done) {
        s = &c->slots[c->head];
        append_out(c, s->reply, s->len);
        free(s->reply);
        s->reply = NULL;
        s->done = 0;
        c->head = (c->head + 1) % c->cap;
        c->count--;
    }
}

static void on_lookup_done(void *arg, const struct lookup_result *res)
{
    struct slot *s = arg;
    struct conn *c = s->c;

    c->inflight--;
    metrics_lookup(res->map, res->ans.status, (uv_hrtime() - s->started) / 1000);
    if (c->closing) {
        /* The client is gone (or the drain timed out): drop the answer. */
        maybe_free(c);
        return;
    }
    complete(s, res->ans.status, res->ans.text);
    /* Inside process_input() the caller batches the flush; otherwise flush now. */
    if (!c->in_input)
        process_input(c);
}

/* Input. */

static void handle_request(struct conn *c, const char *payload, size_t len)
{
    struct slot *s = &c->slots[(c->head + c->count) % c->cap];
    struct sockmap_request req;
    const char *why = NULL;

    s->c = c;
    s->done = 0;
    s->started = uv_hrtime();
    c->count++;
    if (sockmap_parse(payload, len, &req, &why) < 0) {
        char text[128];

        log_notice("%s: malformed request: %s", c->peer, why);
        metrics_lookup(SOCKMAP_MAP_UNKNOWN, SOCKMAP_PERM, 0);
        snprintf(text, sizeof(text), "malformed request: %s", why);
        complete(s, SOCKMAP_PERM, text);
        return;
    }
    c->inflight++;
    lookup_start(&c->srv->svc, &req, on_lookup_done, s);
}

static int want_read(const struct conn *c)
{
    return !c->closing && !c->eof && !c->fatal && !c->draining && c->count < c->cap &&
           c->olen + c->wlen < CONN_MAX_OUT && c->rlen < CONN_RBUF;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;

    *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(CONN_RBUF - c->rlen));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = st->data;

    if (nread == 0 || nread == UV_ENOBUFS)
        return;
    if (nread == UV_EOF) {
        /* A half-close (Exim's readsocket does this) still gets every answer. */
        c->eof = 1;
        if (c->rlen > 0) {
            /* Whatever complete requests are buffered are answered by process_input(). */
            log_debug("%s: client closed its side with %zu bytes unparsed", c->peer, c->rlen);
        }
        process_input(c);
        return;
    }
    if (nread < 0) {
        log_info("%s: closing connection: read failed: %s", c->peer, uv_strerror((int)nread));
        conn_close(c);
        return;
    }
    /* The whole request must arrive within request_timeout of its first byte. */
    if (c->rlen == 0)
        c->req_started = uv_now(c->srv->loop);
    c->rlen += (size_t)nread;
    c->heard = 1;
    c->last_activity = uv_now(c->srv->loop);
    process_input(c);
}

static void process_input(struct conn *c)
{
    size_t off = 0;
    int rc = NETSTRING_MORE;

    if (c->closing)
        return;
    c->in_input = 1;
    while (!c->fatal && c->count < c->cap && c->olen + c->wlen < CONN_MAX_OUT) {
        const char *payload, *why = NULL;
        size_t plen, used;

        rc = netstring_decode(c->rbuf + off, c->rlen - off, SOCKMAP_MAX_REQUEST, &payload, &plen,
                              &used, &why);
        if (rc == NETSTRING_MORE)
            break;
        if (rc < 0) {
            char head[64];

            escape_log(head, sizeof(head), c->rbuf + off, c->rlen - off < 16 ? c->rlen - off : 16);
            log_notice("%s: closing connection: %s (input starts \"%s\")", c->peer, why, head);
            c->fatal = 1;
            break;
        }
        off += used;
        handle_request(c, payload, plen);
        if (c->closing) {
            c->in_input = 0;
            return;
        }
    }
    c->in_input = 0;
    if (off > 0) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
        /* What follows a complete request is the next one, timed from now. */
        c->req_started = uv_now(c->srv->loop);
    }
    if (c->eof && rc == NETSTRING_MORE && c->rlen > 0 && c->count == 0 && !c->fatal) {
        char head[64];

        escape_log(head, sizeof(head), c->rbuf, c->rlen < 16 ? c->rlen : 16);
        log_notice("%s: client closed the connection in the middle of a request (%zu bytes, "
                   "starts \"%s\")",
                   c->peer, c->rlen, head);
        c->rlen = 0;
    }
    flush(c);
    if (c->closing)
        return;

    /* Read while there is room; pause (backpressure) otherwise. */
    if (want_read(c) && !c->reading) {
        int err = uv_read_start(&c->h.stream, on_alloc, on_read);

        if (err < 0) {
            log_info("%s: closing connection: %s", c->peer, uv_strerror(err));
            conn_close(c);
            return;
        }
        c->reading = 1;
        /* A partial request is not timed while reading was paused: the client could not send. */
        c->req_started = uv_now(c->srv->loop);
    } else if (!want_read(c) && c->reading) {
        uv_read_stop(&c->h.stream);
        c->reading = 0;
    }
    maybe_finish(c);
    arm_timer(c);
}

void conn_drain(struct conn *c)
{
    c->draining = 1;
    process_input(c);
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
    c->cap = srv->cfg.max_pipeline;
    c->slots = xcalloc(c->cap, sizeof(*c->slots));
    c->rbuf = xmalloc(CONN_RBUF);
    c->req_started = c->last_activity = uv_now(srv->loop);
    uv_timer_init(srv->loop, &c->timer);
    c->timer.data = c;
    c->handles_open = 2;
    if (!is_unix)
        uv_tcp_nodelay(&c->h.tcp, 1);
    describe_peer(c, is_unix);
    waitlist_push(&srv->conns, &c->link);
    srv->nconns++;
    metrics_conn(METRICS_CONN_ACCEPTED);
    log_debug("%s: connection opened (%u open)", c->peer, srv->nconns);
    process_input(c);
}
