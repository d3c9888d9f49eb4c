/*
 * Fuzzer for the socketmap connection's state machine (daemon/serve/conn.c): framing, the
 * pipelining ring, answers in request order, backpressure, deadlines, drain and close,
 * driven without a network by a fake transport (the conn_io_* functions below, in place of
 * conn_io.c's libuv) and a fake lookup_start() whose lookups complete when the input says.
 * The first byte sets max_pipeline (1 to 8); then each byte is an event:
 *   0x00-0x7f  the client sends (byte + 1) bytes (what is left when shorter); they reach the
 *              connection only while it reads, in the chunks sent (partial reads)
 *   0x80-0x8f  the pending lookup number (byte % pending) completes
 *   0x90-0x97  the socket takes 0, 1, 7, 64 or all bytes at each try_write from now on
 *   0x98-0x9f  the queued write completes          0xa0-0xa3  it fails
 *   0xa4-0xa7  the next try_write fails            0xa8-0xaf  the client half-closes
 *   0xb0-0xb3  a read error                        0xb4-0xbf  time passes ((byte-0xb3)*100 ms)
 *   0xc0-0xc3  drain (SIGTERM)                     0xc4-0xc7  the next lookup answers at once
 *   0xc8-0xcf  conn_close (drain timeout)          0xd0-0xff  time passes ((byte-0xcf) s)
 * A handle close completes at the next event. At the end the client half-closes, every
 * lookup completes in order, the socket takes everything and time runs to the deadlines.
 * Invariants: what the client received is, byte for byte, a prefix of the answers due to
 * the requests the connection read, in request order (a lookup answers "OK L<n>" for the
 * n-th lookup started; a malformed request its PERM reply); the whole of it when nothing
 * failed and no deadline passed; the connection always ends closed and freed (LeakSanitizer
 * sees the rest); nothing is read while reading is stopped, and never more than one write.
 */
#include <string.h>

#include "conn.h"
#include "conn_int.h"
#include "fuzz_check.h"
#include "log.h"
#include "lookup.h"
#include "server.h"

#define MAX_LOOKUPS 512
#define OUT_MAX (256 * 1024) /* answers: at most ~10 bytes of reply per input byte */
#define IN_MAX (64 * 1024)   /* libFuzzer's inputs are shorter; longer ones are cut */

static struct {
    struct server srv;
    uint64_t now;
    int reading, timer_set, closing_handles, handles_closed;
    uint64_t timer_due;
    size_t take;    /* bytes the socket takes per try_write; SIZE_MAX: all */
    int fail_try;   /* the next try_write fails */
    const char *wp; /* the queued write */
    size_t wn;
    int write_pending;
    int sync_next; /* the next lookup answers within lookup_start() */
    int failed;    /* an error or a deadline may have dropped answers */
    struct {
        lookup_done_fn done;
        void *arg;
        unsigned serial;
    } pend[MAX_LOOKUPS];
    unsigned npend, nstarted;
    size_t nout, nin;
} f;
static char out[OUT_MAX]; /* what the client received */
static char in[IN_MAX];   /* what the connection read */

/* The fake lookup service. */

static void answer(lookup_done_fn done, void *arg, unsigned serial)
{
    struct lookup_result res;

    memset(&res, 0, sizeof(res));
    res.map = SOCKMAP_MAP_POLICY;
    res.ans.status = SOCKMAP_OK;
    snprintf(res.ans.text, sizeof(res.ans.text), "L%u", serial);
    done(arg, &res);
}

void lookup_start(struct lookup_svc *svc, const struct sockmap_request *req, lookup_done_fn done,
                  void *arg)
{
    unsigned serial = f.nstarted++;

    (void)svc;
    (void)req;
    if (f.sync_next) {
        f.sync_next = 0;
        answer(done, arg, serial);
        return;
    }
    CHECK(f.npend < MAX_LOOKUPS);
    f.pend[f.npend].done = done;
    f.pend[f.npend].arg = arg;
    f.pend[f.npend].serial = serial;
    f.npend++;
}

static void complete_lookup(unsigned i)
{
    lookup_done_fn done = f.pend[i].done;
    void *arg = f.pend[i].arg;
    unsigned serial = f.pend[i].serial;

    memmove(&f.pend[i], &f.pend[i + 1], (f.npend - i - 1) * sizeof(f.pend[0]));
    f.npend--;
    answer(done, arg, serial);
}

/* The fake transport. */

uint64_t conn_io_now(const struct conn *c)
{
    (void)c;
    return f.now;
}

/* The fake hands every byte to conn_received() at once: nothing waits in a kernel. */
int conn_io_input_waiting(struct conn *c)
{
    (void)c;
    return 0;
}

static void received(const char *p, size_t n)
{
    CHECK(f.nout + n <= OUT_MAX);
    memcpy(out + f.nout, p, n);
    f.nout += n;
}

int conn_io_try_write(struct conn *c, const char *p, size_t n)
{
    size_t k = n < f.take ? n : f.take;

    CHECK(!c->closing && !f.write_pending && n > 0);
    if (f.fail_try) {
        f.fail_try = 0;
        f.failed = 1;
        return UV_EPIPE;
    }
    if (k == 0)
        return UV_EAGAIN;
    received(p, k);
    return (int)k;
}

int conn_io_write(struct conn *c, const char *p, size_t n)
{
    CHECK(!c->closing && !f.write_pending && n > 0);
    f.write_pending = 1;
    f.wp = p;
    f.wn = n;
    return 0;
}

int conn_io_read(struct conn *c, int on)
{
    CHECK(!c->closing && on != f.reading);
    f.reading = on;
    return 0;
}

void conn_io_timer(struct conn *c, uint64_t ms)
{
    CHECK(!c->closing);
    f.timer_set = 1;
    f.timer_due = f.now + ms;
}

void conn_io_close(struct conn *c)
{
    CHECK(f.closing_handles == 0 && f.handles_closed == 0);
    f.closing_handles = 1;
    f.reading = 0;
    f.timer_set = 0;
    (void)c;
}

/* The loop's side: pending close callbacks, the write's completion, the timer. */

static int gone(void)
{
    return f.handles_closed == 2 && f.npend == 0;
}

static void run_closes(struct conn *c)
{
    if (f.closing_handles && f.handles_closed == 0) {
        /* A cancelled write completes before the close callbacks, as in libuv. */
        if (f.write_pending) {
            f.write_pending = 0;
            conn_written(c, UV_ECANCELED);
        }
        f.handles_closed = 1;
        conn_handle_closed(c);
        f.handles_closed = 2;
        conn_handle_closed(c); /* c is freed here unless lookups are pending */
    }
}

static void write_done(struct conn *c, int ok)
{
    if (!f.write_pending)
        return;
    f.write_pending = 0;
    if (ok)
        received(f.wp, f.wn);
    else
        f.failed = 1;
    conn_written(c, ok ? 0 : UV_EPIPE);
}

static void advance(struct conn *c, uint64_t ms)
{
    f.now += ms;
    if (f.timer_set && f.timer_due <= f.now && !c->closing) {
        f.timer_set = 0;
        /* A deadline may close the connection with answers or a request dropped. */
        f.failed = 1;
        conn_timer(c);
    }
}

/* Client bytes waiting to be read: chunks of the input, and the half-close after them. */
struct client {
    const uint8_t *q[4096];
    size_t qn[4096];
    size_t nq, qh;
    int eof, eof_sent;
};

static void pump(struct conn *c, struct client *cl)
{
    while (!gone() && !c->closing && f.reading && cl->qh < cl->nq) {
        size_t room = CONN_RBUF - c->rlen, n = cl->qn[cl->qh];

        CHECK(room > 0);
        if (n > room)
            n = room;
        memcpy(c->rbuf + c->rlen, cl->q[cl->qh], n);
        memcpy(in + f.nin, cl->q[cl->qh], n);
        f.nin += n;
        cl->q[cl->qh] += n;
        cl->qn[cl->qh] -= n;
        if (cl->qn[cl->qh] == 0)
            cl->qh++;
        conn_received(c, (ssize_t)n);
    }
    if (!gone() && !c->closing && f.reading && cl->qh == cl->nq && cl->eof && !cl->eof_sent) {
        cl->eof_sent = 1;
        conn_received(c, UV_EOF);
    }
}

/* The answers due, in order, to the requests in what the connection read. */
static size_t expected(char *exp, size_t cap)
{
    size_t off = 0, n = 0;
    unsigned serial = 0;

    for (;;) {
        const char *payload, *why = NULL;
        size_t plen, used, r;
        struct sockmap_request req;
        char text[128], reply[SOCKMAP_MAX_TEXT + 32]; /* text: as conn.c's */

        if (netstring_decode(in + off, f.nin - off, SOCKMAP_MAX_REQUEST, &payload, &plen, &used,
                             &why) != NETSTRING_OK)
            break;
        off += used;
        if (sockmap_parse(payload, plen, &req, &why) < 0) {
            snprintf(text, sizeof(text), "malformed request: %s", why);
            r = sockmap_render(reply, sizeof(reply), SOCKMAP_PERM, text);
        } else {
            snprintf(text, sizeof(text), "L%u", serial++);
            r = sockmap_render(reply, sizeof(reply), SOCKMAP_OK, text);
        }
        CHECK(r > 0 && n + r <= cap);
        memcpy(exp + n, reply, r);
        n += r;
    }
    return n;
}

static void step(struct conn *c, struct client *cl, const uint8_t *data, size_t size, size_t *pos)
{
    static const size_t takes[] = {0, 1, 7, 64, SIZE_MAX};
    uint8_t op = data[(*pos)++];

    if (op < 0x80) {
        size_t n = (size_t)op + 1 < size - *pos ? (size_t)op + 1 : size - *pos;

        if (!cl->eof && n > 0 && cl->nq < 4096) {
            cl->q[cl->nq] = data + *pos;
            cl->qn[cl->nq++] = n;
        }
        *pos += n;
    } else if (op < 0x90) {
        if (f.npend > 0)
            complete_lookup(op % f.npend);
    } else if (op < 0x98) {
        f.take = takes[(op - 0x90) % 5];
    } else if (op < 0xa0) {
        write_done(c, 1);
    } else if (op < 0xa4) {
        write_done(c, 0);
    } else if (op < 0xa8) {
        f.fail_try = 1;
    } else if (op < 0xb0) {
        cl->eof = 1;
    } else if (op < 0xb4) {
        if (f.reading && !c->closing) {
            f.failed = 1;
            conn_received(c, UV_ECONNRESET);
        }
    } else if (op < 0xc0) {
        advance(c, (uint64_t)(op - 0xb3) * 100);
    } else if (op < 0xc4) {
        if (!c->closing)
            conn_drain(c);
    } else if (op < 0xc8) {
        f.sync_next = 1;
    } else if (op < 0xd0) {
        if (!c->closing) {
            f.failed = 1;
            conn_close(c);
        }
    } else {
        advance(c, (uint64_t)(op - 0xcf) * 1000);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct client cl;
    static char exp[OUT_MAX];
    struct conn *c;
    size_t pos = 1, n;

    if (size == 0)
        return 0;
    memset(&f, 0, sizeof(f));
    cl.nq = cl.qh = 0; /* the queue's arrays are written before they are read */
    cl.eof = cl.eof_sent = 0;
    log_open(LOG_ERR, 0);
    if (size > IN_MAX)
        size = IN_MAX;
    f.take = SIZE_MAX;
    f.now = 1000;
    f.srv.cfg.max_pipeline = 1 + data[0] % 8;
    f.srv.cfg.request_timeout_ms = 10000;
    f.srv.cfg.idle_timeout_ms = 60000;
    c = calloc(1, sizeof(*c));
    CHECK(c != NULL);
    snprintf(c->peer, sizeof(c->peer), "fuzz");
    c->handles_open = 2;
    conn_start(c, &f.srv);

    while (pos < size && !gone()) {
        run_closes(c);
        if (gone())
            break;
        step(c, &cl, data, size, &pos);
        if (!gone())
            pump(c, &cl);
    }
    /* The end: the client is done, every lookup answers, the socket takes everything. */
    cl.eof = 1;
    f.take = SIZE_MAX;
    for (int round = 0; round < 64 && !gone(); round++) {
        run_closes(c);
        if (gone())
            break;
        pump(c, &cl);
        if (gone() || c->closing)
            continue;
        if (f.npend > 0)
            complete_lookup(0);
        else if (f.write_pending)
            write_done(c, 1);
        else
            advance(c, 100000); /* the idle or request deadline */
    }
    /* Lookups still out when the connection closed: answered, and dropped by it. */
    while (f.npend > 0)
        complete_lookup(0);
    run_closes(c);
    CHECK(gone());
    CHECK(f.srv.nconns == 0 && f.srv.conns == NULL);

    n = expected(exp, sizeof(exp));
    CHECK(f.nout <= n && memcmp(out, exp, f.nout) == 0);
    /* FUZZ_VERBOSE=1 with the replay: what each input made of the connection. */
    if (getenv("FUZZ_VERBOSE") != NULL)
        fprintf(stderr, "read %zu bytes, %u lookups, answered %zu of %zu bytes%s: %.*s\n", f.nin,
                f.nstarted, f.nout, n, f.failed ? " (failure injected)" : "",
                (int)(f.nout < 200 ? f.nout : 200), out);
    if (!f.failed)
        CHECK(f.nout == n);
    return 0;
}
