/*
 * A socketmap connection (SPEC section 4). Requests are numbered slots in a ring of
 * max_pipeline entries; a lookup may complete at any time, but answers leave strictly in
 * slot order: the head slot's answer goes to the output buffer at once, later ones wait in
 * their slot. Reading pauses while the ring is full or too much output is unsent, so a
 * client can never make the daemon hold more than its bounds.
 *
 * Lifetime (STYLE "Async lifetimes"): a conn is freed only when both of its handles are
 * closed and no lookup is in flight; a lookup that completes on a closing conn is dropped.
 *
 * This file is the state machine; it does no I/O of its own. The transport, conn_io.c,
 * reads, writes, times and closes through libuv and tells it what happened (conn_int.h).
 */
#include "conn.h"

#include <stdlib.h>
#include <string.h>

#include "conn_int.h"
#include "escape.h"
#include "log.h"
#include "lookup.h"
#include "metrics.h"
#include "server.h"
#include "xalloc.h"

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

void conn_handle_closed(struct conn *c)
{
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
    conn_io_close(c);
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

static void arm_timer(struct conn *c)
{
    uint64_t now = conn_io_now(c), due = deadline(c);

    if (c->closing)
        return;
    if (!c->timer_armed || due < c->timer_due) {
        c->timer_due = due;
        c->timer_armed = 1;
        conn_io_timer(c, due > now ? due - now : 0);
    }
}

void conn_timer(struct conn *c)
{
    uint64_t now = conn_io_now(c), due = deadline(c);

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
    } else if (c->count > 0 || c->inflight > 0 || (c->reading && conn_io_input_waiting(c))) {
        /* Lookups bound their own time; the connection is busy, not idle. A request that
         * is waiting in the kernel is read in this iteration: not idle either (closing would
         * reset the client, its request unread). libuv runs due timers before it polls for
         * input, so after a stall a connection can look idle while its request waits. */
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

void conn_written(struct conn *c, int status)
{
    c->writing = 0;
    c->wlen = c->woff = 0;
    if (c->closing)
        return;
    if (status < 0) {
        log_info("%s: closing connection: write failed: %s", c->peer, uv_strerror(status));
        conn_close(c);
        return;
    }
    c->last_activity = conn_io_now(c);
    /* Room may have opened for buffered requests and for reading. */
    process_input(c);
}

static void flush(struct conn *c)
{
    int n;
    char *tmp;
    size_t tcap;

    if (c->closing || c->writing || c->olen == 0)
        return;

    /* Most answers fit the socket buffer: try to write them now, without a callback. */
    n = conn_io_try_write(c, c->obuf, c->olen);
    if (n == (int)c->olen) {
        c->olen = 0;
        c->last_activity = conn_io_now(c);
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

    n = conn_io_write(c, c->wbuf + c->woff, c->wlen - c->woff);
    if (n < 0) {
        log_info("%s: closing connection: write failed: %s", c->peer, uv_strerror(n));
        conn_close(c);
        return;
    }
    c->writing = 1;
    c->write_started = conn_io_now(c);
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

void conn_received(struct conn *c, ssize_t nread)
{
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
        c->req_started = conn_io_now(c);
    c->rlen += (size_t)nread;
    c->heard = 1;
    c->last_activity = conn_io_now(c);
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
        c->req_started = conn_io_now(c);
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
        int err = conn_io_read(c, 1);

        if (err < 0) {
            log_info("%s: closing connection: %s", c->peer, uv_strerror(err));
            conn_close(c);
            return;
        }
        c->reading = 1;
        /* A partial request is not timed while reading was paused: the client could not send. */
        c->req_started = conn_io_now(c);
    } else if (!want_read(c) && c->reading) {
        conn_io_read(c, 0);
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

void conn_start(struct conn *c, struct server *srv)
{
    c->srv = srv;
    c->cap = srv->cfg.max_pipeline;
    c->slots = xcalloc(c->cap, sizeof(*c->slots));
    c->rbuf = xmalloc(CONN_RBUF);
    c->req_started = c->last_activity = conn_io_now(c);
    waitlist_push(&srv->conns, &c->link);
    srv->nconns++;
    metrics_conn(METRICS_CONN_ACCEPTED);
    log_debug("%s: connection opened (%u open)", c->peer, srv->nconns);
    process_input(c);
}
