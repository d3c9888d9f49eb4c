/*
 * Private to daemon/serve/conn.c and conn_io.c: a socketmap connection's state. conn.c is
 * its state machine (framing, the pipelining ring, answers in request order, backpressure,
 * deadlines, lifetime), moved on by the events of its transport; conn_io.c is the transport
 * on libuv (a stream and a timer, accept and close). tests/fuzz/fuzz_conn.c drives conn.c
 * with a fake transport.
 */
#ifndef DAEMON_CONN_INT_H
#define DAEMON_CONN_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "listener.h"
#include "netstring.h"
#include "sockmap.h"
#include "waitlist.h"

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

/* conn.c: the events of the transport. */

/* conn_start - c was accepted (c->h set up, srv and handles_open = 2): serve it. */
void conn_start(struct conn *c, struct server *srv);

/* conn_received - nread bytes were added at c->rbuf + c->rlen, or nread is UV_EOF or a
 * libuv error (0 and UV_ENOBUFS are ignored). */
void conn_received(struct conn *c, ssize_t nread);

/* conn_written - the write conn_io_write() queued finished with status. */
void conn_written(struct conn *c, int status);

/* conn_timer - the timer conn_io_timer() set fired. */
void conn_timer(struct conn *c);

/* conn_handle_closed - one of c's two handles finished closing (after conn_io_close()). */
void conn_handle_closed(struct conn *c);

/* conn_io.c: the transport. */

/* conn_io_now - the loop's time in ms. */
uint64_t conn_io_now(const struct conn *c);

/* conn_io_try_write - write what the socket takes now: bytes written, UV_EAGAIN, or <0. */
int conn_io_try_write(struct conn *c, const char *p, size_t n);

/* conn_io_write - queue n bytes (p stays valid until conn_written()); 0 or <0. */
int conn_io_write(struct conn *c, const char *p, size_t n);

/* conn_io_read - start (on) or stop reading into c->rbuf + c->rlen; 0 or <0. */
int conn_io_read(struct conn *c, int on);

/* conn_io_input_waiting - whether the kernel holds bytes for c that were not read yet. */
int conn_io_input_waiting(struct conn *c);
/* conn_io_timer - conn_timer() in ms, replacing the timer set before. */
void conn_io_timer(struct conn *c, uint64_t ms);

/* conn_io_close - close both handles; conn_handle_closed() follows for each. */
void conn_io_close(struct conn *c);

#endif
