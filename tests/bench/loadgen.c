/*
 * bench_loadgen: a load generator for socketmap servers (Postfix socketmap_table(5): the
 * client sends one netstring "NAME KEY", the server answers with one netstring). It opens
 * N connections, keeps D requests outstanding on each (D = 1 is lockstep like Postfix's
 * smtp processes, D > 1 is pipelining), and after a warm-up reports answers per second and
 * latency percentiles over the measured window. Replies are decoded by an incremental
 * netstring state machine that keeps no payload, so a connection costs O(D) memory; one
 * libuv loop owns every handle, and the run ends by itself with every handle closed.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <uv.h>

#include "benchutil.h"

/* Postfix dict_sockmap.c and socketmap_table(5): keys up to 10,000 bytes, replies up to
 * 100,000 bytes. The map name bound is the daemon's (proto/sockmap.h). */
#define MAX_KEY 10000
#define MAX_NAME 100
#define MAX_REPLY 100000
/* Bound on the keys file, so a wrong path to a huge file fails instead of eating memory. */
#define MAX_KEYS_FILE (64u << 20)

/* Option bounds: large enough for any benchmark, small enough that every product of them
 * (ring buffers, iovec arrays) fits comfortably in memory. */
#define MAX_CONNECTIONS 100000
#define MAX_DEPTH 4096
#define MAX_DURATION 86400.0
#define MAX_WARMUP 3600.0
#define MAX_REQUESTS 1000000000000ull

/* A unix socket whose backlog is full refuses a non-blocking connect() with EAGAIN instead
 * of queueing it the way TCP does. Retry those after a pause, a bounded number of times:
 * the benchmark is about the steady state, and the retries are reported. */
#define CONNECT_RETRY_MS 10
#define CONNECT_MAX_RETRIES 200

/* Read buffer shared by all connections: libuv calls alloc, read(2) and the read callback
 * back to back for one stream, and the decoder keeps nothing that points into it. */
#define READ_BUF_SIZE 65536

/* Reply bytes kept per reply for classification and error messages. */
#define HEAD_MAX 64
/* Messages printed per error kind; the rest are only counted. */
#define MAX_ERROR_LINES 5

/*
 * Latency histogram: log-linear buckets over nanoseconds (HdrHistogram's layout). Values
 * below 2 * HIST_SUB are exact; above, each power of two is split into HIST_SUB buckets, so
 * a bucket is at most 1/128 (0.8%) of its value wide and its midpoint is within 0.4%.
 * 7424 counters cover all of uint64_t in 58 KiB, whatever the number of samples.
 */
#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
    uint64_t count[HIST_BUCKETS];
    uint64_t n;
    uint64_t max;
    uint64_t sum; /* 2^64 ns is 584 years of summed latency */
};

enum ep_kind { EP_UNIX, EP_INET };

struct endpoint {
    enum ep_kind kind;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct sockaddr_storage addr;
};

struct options {
    const char *connect;
    unsigned long connections;
    unsigned long depth;
    double duration;
    double warmup;
    unsigned long long requests; /* 0: bounded by the duration only */
    const char *map;
    const char *keys;
    const char *expect;
    size_t expect_len;
    int json;
    int spread; /* connection i starts at key i * keys / connections, not at key i */
};

/* The reply being received: its framing, and what is kept of its payload. */
struct decoder {
    struct bench_frame frame;
    int mismatch; /* payload differs from --expect */
    char head[HEAD_MAX];
    size_t headlen;
};

enum reply_class {
    REPLY_OK,
    REPLY_NOTFOUND,
    REPLY_TEMP,
    REPLY_TIMEOUT,
    REPLY_PERM,
    REPLY_OTHER,
    REPLY_NCLASS
};
static const char *const class_names[REPLY_NCLASS] = {"OK",      "NOTFOUND", "TEMP",
                                                      "TIMEOUT", "PERM",     "other"};

enum err_kind { E_CONNECT, E_CLOSED, E_MALFORMED, E_UNEXPECTED, E_STALLED, E_NKIND };
static const char *const err_names[E_NKIND] = {"connect", "closed", "malformed", "unexpected",
                                               "stalled"};

enum conn_state { C_CONNECTING, C_OPEN, C_RETRY, C_DEAD };

struct bench;

struct conn {
    union bench_stream u;
    uv_connect_t creq;
    struct bench *b;
    enum conn_state state;
    int has_handle; /* u is initialised and its close callback has not run */
    uint64_t *sent; /* ring of send times of the outstanding requests, oldest at head */
    size_t head;
    size_t inflight;
    size_t next_key;
    unsigned retries;
    struct conn *next_retry;
    struct decoder dec;
};

/* A write request; the buffers point into the immutable request arena, so nothing else
 * needs to live until the callback. Kept on a free list. */
struct wreq {
    uv_write_t req;
    struct wreq *next;
};

struct bench {
    uv_loop_t loop;
    uv_timer_t phase; /* warm-up end, then measurement end */
    uv_timer_t retry; /* reconnects after EAGAIN */
    struct options opt;
    struct endpoint ep;

    char *arena; /* every request, already framed: "LEN:NAME KEY," */
    size_t *req_off;
    size_t *req_len;
    size_t nreq;

    struct conn *conns;
    size_t live; /* connections not dead */
    struct conn *retry_list;
    uv_buf_t *iov; /* scratch for one write of up to depth requests */
    struct wreq *free_wreqs;

    int measuring;
    int stopping;
    const char *stopped_by;
    uint64_t t_begin; /* the start of the run */
    uint64_t t_start; /* the start of the measured window */
    uint64_t t_end;

    uint64_t completed; /* good replies in the measured window */
    uint64_t answered;  /* good replies in the whole run, warm-up included */
    uint64_t classes[REPLY_NCLASS];
    uint64_t errors[E_NKIND];
    unsigned long connect_retries;
    struct hist hist;
};

static char read_buf[READ_BUF_SIZE];

/* Copy s[0..n) into out (outlen bytes, cut if needed) with unprintable bytes as '?'. */
static const char *printable(const char *s, size_t n, char *out, size_t outlen)
{
    size_t i;

    for (i = 0; i < n && i + 1 < outlen; i++)
        out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    out[i] = '\0';
    return out;
}

static void report_error(struct bench *b, enum err_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report_error(struct bench *b, enum err_kind kind, const char *fmt, ...)
{
    va_list ap;

    /* Only the first few of each kind are shown; all are counted. */
    if (b->errors[kind]++ >= MAX_ERROR_LINES)
        return;
    va_start(ap, fmt);
    fprintf(stderr, "bench_loadgen: %s error: ", err_names[kind]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- histogram ---- */

static size_t hist_index(uint64_t v)
{
    int msb, shift;

    if (v < 2 * HIST_SUB)
        return (size_t)v;
    msb = 63 - __builtin_clzll(v);
    shift = msb - HIST_SUB_BITS;
    return (size_t)(shift + 1) * HIST_SUB + (size_t)((v >> shift) - HIST_SUB);
}

/* The midpoint of bucket i, the value reported for every sample in it. */
static uint64_t hist_value(size_t i)
{
    unsigned shift;
    uint64_t lo;

    if (i < 2 * HIST_SUB)
        return i;
    shift = (unsigned)(i / HIST_SUB) - 1;
    lo = (uint64_t)(HIST_SUB + i % HIST_SUB) << shift;
    return lo + (((uint64_t)1 << shift) - 1) / 2;
}

static void hist_add(struct hist *h, uint64_t v)
{
    h->count[hist_index(v)]++;
    h->n++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

/* Nearest-rank percentile (permille/10 percent): the smallest recorded value with at least
 * that share of the samples at or below it, never above the exact maximum. */
static uint64_t hist_percentile(const struct hist *h, unsigned permille)
{
    uint64_t rank, seen = 0;

    if (h->n == 0)
        return 0;
    rank = (h->n * permille + 999) / 1000;
    if (rank == 0)
        rank = 1;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= rank) {
            uint64_t v = hist_value(i);
            return v < h->max ? v : h->max;
        }
    }
    return h->max;
}

/* ---- netstring decoder ---- */

static void decoder_reset(struct decoder *d)
{
    bench_frame_init(&d->frame, MAX_REPLY, "reply longer than 100000 bytes");
    d->mismatch = 0;
    d->headlen = 0;
}

/* What decode() hands the framer for each piece of a reply's payload. */
struct payload_check {
    struct decoder *d;
    const char *expect; /* --expect, or NULL */
    size_t elen;
};

/* A piece of payload at offset off: compare it with --expect, keep the first bytes. */
static void on_payload(void *arg, const char *p, size_t m, size_t off)
{
    struct payload_check *pc = arg;
    struct decoder *d = pc->d;

    if (pc->expect != NULL && !d->mismatch && off < pc->elen) {
        size_t k = pc->elen - off < m ? pc->elen - off : m;

        if (memcmp(p, pc->expect + off, k) != 0)
            d->mismatch = 1;
    }
    if (d->headlen < HEAD_MAX) {
        size_t k = HEAD_MAX - d->headlen < m ? HEAD_MAX - d->headlen : m;

        memcpy(d->head + d->headlen, p, k);
        d->headlen += k;
    }
}

/*
 * decode - feed p[0..n) to the decoder. Stops after the comma of a complete netstring.
 * Returns 1 with a complete reply (its first bytes in d->head), 0 when all input was used
 * without completing one, -1 on malformed input with a reason in *why. *used is the number
 * of bytes taken in every case.
 */
static int decode(struct decoder *d, const char *p, size_t n, const char *expect, size_t elen,
                  size_t *used, const char **why)
{
    struct payload_check pc = {d, expect, elen};
    int rc = bench_frame_feed(&d->frame, p, n, on_payload, &pc, used, why);

    /* A reply of another length differs from --expect whatever its first bytes. */
    if (rc == 1 && expect != NULL && d->frame.len != elen)
        d->mismatch = 1;
    return rc;
}

static enum reply_class classify(const char *head, size_t len)
{
    static const struct {
        const char *word;
        enum reply_class cls;
    } words[] = {{"OK", REPLY_OK},
                 {"NOTFOUND", REPLY_NOTFOUND},
                 {"TEMP", REPLY_TEMP},
                 {"TIMEOUT", REPLY_TIMEOUT},
                 {"PERM", REPLY_PERM}};
    size_t w = 0;

    /* The status word ends at the first space or at the end of the payload. */
    while (w < len && head[w] != ' ')
        w++;
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strlen(words[i].word) == w && memcmp(words[i].word, head, w) == 0)
            return words[i].cls;
    return REPLY_OTHER;
}

/* ---- endpoints and keys ---- */

static void parse_endpoint(const char *spec, struct endpoint *ep)
{
    memset(ep, 0, sizeof(*ep));
    if (strncmp(spec, "unix:", 5) == 0) {
        bench_unix_path(spec, ep->path, sizeof(ep->path));
        ep->kind = EP_UNIX;
        return;
    }
    if (strncmp(spec, "inet:", 5) == 0) {
        struct addrinfo *res = bench_inet_addrs(spec, 0);

        memcpy(&ep->addr, res->ai_addr, res->ai_addrlen);
        freeaddrinfo(res);
        ep->kind = EP_INET;
        return;
    }
    bench_fatal("%s: expected unix:PATH or inet:HOST:PORT", spec);
}

/* Append one framed request "LEN:MAP KEY," to the arena. */
static void add_request(struct bench *b, size_t *cap, const char *key, size_t klen)
{
    size_t mlen = strlen(b->opt.map), plen = mlen + 1 + klen, need;
    char prefix[24];
    int pl;

    if (klen > MAX_KEY)
        bench_fatal("key of %zu bytes exceeds the socketmap limit of %d", klen, MAX_KEY);
    if (memchr(key, '\0', klen) != NULL)
        bench_fatal("key contains a NUL byte");
    pl = snprintf(prefix, sizeof(prefix), "%zu:", plen);
    need = (size_t)pl + plen + 1;
    if (b->nreq % 1024 == 0) {
        b->req_off = bench_xrealloc(b->req_off, (b->nreq + 1024) * sizeof(*b->req_off));
        b->req_len = bench_xrealloc(b->req_len, (b->nreq + 1024) * sizeof(*b->req_len));
    }
    b->req_off[b->nreq] = b->nreq ? b->req_off[b->nreq - 1] + b->req_len[b->nreq - 1] : 0;
    b->req_len[b->nreq] = need;
    if (b->req_off[b->nreq] + need > *cap) {
        while (b->req_off[b->nreq] + need > *cap)
            *cap = *cap ? *cap * 2 : 4096;
        b->arena = bench_xrealloc(b->arena, *cap);
    }
    memcpy(b->arena + b->req_off[b->nreq], prefix, (size_t)pl);
    memcpy(b->arena + b->req_off[b->nreq] + pl, b->opt.map, mlen);
    b->arena[b->req_off[b->nreq] + pl + mlen] = ' ';
    memcpy(b->arena + b->req_off[b->nreq] + pl + mlen + 1, key, klen);
    b->arena[b->req_off[b->nreq] + need - 1] = ',';
    b->nreq++;
}

/* Build the request arena from --keys (one key per line, blank lines skipped). */
static void load_keys(struct bench *b)
{
    size_t cap = 0;
    FILE *f;
    char *text, *p, *end;
    struct stat st;
    size_t n;

    if (b->opt.keys == NULL) {
        add_request(b, &cap, "example.com", strlen("example.com"));
        return;
    }
    f = fopen(b->opt.keys, "r");
    if (f == NULL)
        bench_fatal("%s: %s", b->opt.keys, strerror(errno));
    if (fstat(fileno(f), &st) != 0 || st.st_size > (off_t)MAX_KEYS_FILE)
        bench_fatal("%s: unreadable or larger than %u bytes", b->opt.keys, MAX_KEYS_FILE);
    text = bench_xmalloc((size_t)st.st_size + 1);
    n = fread(text, 1, (size_t)st.st_size, f);
    if (ferror(f))
        bench_fatal("%s: read error", b->opt.keys);
    fclose(f);
    text[n] = '\0';
    for (p = text; p < text + n; p = end + 1) {
        size_t len;

        end = memchr(p, '\n', (size_t)(text + n - p));
        if (end == NULL)
            end = text + n;
        len = (size_t)(end - p);
        if (len > 0 && p[len - 1] == '\r')
            len--;
        if (len > 0)
            add_request(b, &cap, p, len);
    }
    free(text);
    if (b->nreq == 0)
        bench_fatal("%s: no keys", b->opt.keys);
}

/* ---- connections ---- */

static void start_conn(struct conn *c);
static void on_retry(uv_timer_t *t);
static void finish(struct bench *b, const char *why);

static void on_close(uv_handle_t *h)
{
    struct conn *c = container_of(h, struct conn, u.handle);
    struct bench *b = c->b;

    c->has_handle = 0;
    /* A connection refused with EAGAIN waits for the retry timer with a fresh handle. */
    if (c->state == C_RETRY && !b->stopping) {
        c->next_retry = b->retry_list;
        b->retry_list = c;
        if (!uv_is_active((uv_handle_t *)&b->retry))
            uv_timer_start(&b->retry, on_retry, CONNECT_RETRY_MS, 0);
    }
}

static void close_conn(struct conn *c)
{
    if (c->has_handle && !uv_is_closing(&c->u.handle))
        uv_close(&c->u.handle, on_close);
}

/* The connection is lost for the rest of the run; the run ends when none is left. */
static void kill_conn(struct conn *c)
{
    struct bench *b = c->b;

    if (c->state == C_DEAD)
        return;
    c->state = C_DEAD;
    close_conn(c);
    if (--b->live == 0 && !b->stopping)
        finish(b, "no connections left");
}

static struct wreq *get_wreq(struct bench *b)
{
    struct wreq *w = b->free_wreqs;

    if (w != NULL) {
        b->free_wreqs = w->next;
        return w;
    }
    return bench_xmalloc(sizeof(*w));
}

static void put_wreq(struct bench *b, struct wreq *w)
{
    w->next = b->free_wreqs;
    b->free_wreqs = w;
}

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = container_of(req, struct wreq, req);
    struct conn *c = req->data;
    struct bench *b = c->b;

    put_wreq(b, w);
    if (status < 0 && status != UV_ECANCELED && !b->stopping && c->state == C_OPEN) {
        report_error(b, E_CLOSED, "write: %s", uv_strerror(status));
        kill_conn(c);
    }
}

/*
 * Top the connection up to depth outstanding requests, all in one write. uv_try_write()
 * first: a uv_write() that completes at once still queues its callback and re-arms the
 * epoll watcher, one epoll_ctl(2) per write, which would make the load generator, not the
 * server, the bottleneck. Whatever the socket does not take goes through uv_write().
 */
static void fill(struct conn *c, uint64_t now)
{
    struct bench *b = c->b;
    size_t depth = b->opt.depth, n = 0, total = 0, first = 0, done;
    struct wreq *w;
    int rc;

    if (b->stopping || c->state != C_OPEN)
        return;
    while (c->inflight < depth) {
        size_t k = c->next_key;

        b->iov[n++] = uv_buf_init(b->arena + b->req_off[k], (unsigned)b->req_len[k]);
        total += b->req_len[k];
        c->next_key = k + 1 == b->nreq ? 0 : k + 1;
        c->sent[(c->head + c->inflight) % depth] = now;
        c->inflight++;
    }
    if (n == 0)
        return;
    rc = uv_try_write(&c->u.stream, b->iov, (unsigned)n);
    if (rc >= 0 && (size_t)rc == total)
        return;
    if (rc < 0 && rc != UV_EAGAIN) {
        report_error(b, E_CLOSED, "write: %s", uv_strerror(rc));
        kill_conn(c);
        return;
    }
    /* Skip what was written, including the written part of a partly written request. */
    done = rc > 0 ? (size_t)rc : 0;
    while (done >= b->iov[first].len) {
        done -= b->iov[first].len;
        first++;
    }
    b->iov[first].base += done;
    b->iov[first].len -= done;
    w = get_wreq(b);
    w->req.data = c;
    rc = uv_write(&w->req, &c->u.stream, b->iov + first, (unsigned)(n - first), on_write);
    if (rc != 0) {
        put_wreq(b, w);
        report_error(b, E_CLOSED, "write: %s", uv_strerror(rc));
        kill_conn(c);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(read_buf, sizeof(read_buf));
}

/* One complete reply: match it with the oldest outstanding request. Returns -1 when the
 * connection was killed or the run finished. */
static int on_reply(struct conn *c, uint64_t now)
{
    struct bench *b = c->b;
    struct decoder *d = &c->dec;
    uint64_t sent;
    char text[HEAD_MAX + 1];

    if (c->inflight == 0) {
        report_error(b, E_UNEXPECTED, "reply \"%s\" with no request outstanding",
                     printable(d->head, d->headlen, text, sizeof(text)));
        kill_conn(c);
        return -1;
    }
    sent = c->sent[c->head];
    c->head = c->head + 1 == b->opt.depth ? 0 : c->head + 1;
    c->inflight--;
    if (d->mismatch) {
        report_error(b, E_UNEXPECTED, "reply \"%s\"%s (%zu bytes), expected \"%s\"",
                     printable(d->head, d->headlen, text, sizeof(text)),
                     d->frame.len > d->headlen ? "..." : "", d->frame.len, b->opt.expect);
        return 0;
    }
    b->answered++;
    if (!b->measuring)
        return 0;
    hist_add(&b->hist, now - sent);
    b->classes[classify(d->head, d->headlen)]++;
    if (++b->completed == b->opt.requests) {
        b->t_end = now;
        finish(b, "requests");
        return -1;
    }
    return 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = container_of(s, struct conn, u.stream);
    struct bench *b = c->b;
    const char *p = buf->base;
    size_t left;
    uint64_t now;

    if (nread < 0) {
        if (!b->stopping)
            report_error(b, E_CLOSED, "%s with %zu request(s) outstanding",
                         nread == UV_EOF ? "server closed the connection" : uv_strerror((int)nread),
                         c->inflight);
        kill_conn(c);
        return;
    }
    /* Every reply in one read arrived at the same moment; one clock read serves all. */
    now = uv_hrtime();
    left = (size_t)nread;
    while (left > 0) {
        const char *why = NULL;
        size_t used;
        int rc = decode(&c->dec, p, left, b->opt.expect, b->opt.expect_len, &used, &why);

        if (rc < 0) {
            report_error(b, E_MALFORMED, "%s", why);
            kill_conn(c);
            return;
        }
        p += used;
        left -= used;
        if (rc == 1) {
            int stop = on_reply(c, now);

            decoder_reset(&c->dec);
            if (stop < 0)
                return;
        }
    }
    fill(c, now);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = container_of(req, struct conn, creq);
    struct bench *b = c->b;
    int rc;

    if (status == UV_ECANCELED || b->stopping)
        return;
    if (status == UV_EAGAIN && c->retries < CONNECT_MAX_RETRIES) {
        c->retries++;
        b->connect_retries++;
        c->state = C_RETRY;
        close_conn(c);
        return;
    }
    if (status < 0) {
        report_error(b, E_CONNECT, "%s: %s", b->opt.connect, uv_strerror(status));
        kill_conn(c);
        return;
    }
    c->state = C_OPEN;
    if (b->ep.kind == EP_INET)
        uv_tcp_nodelay(&c->u.tcp, 1);
    rc = uv_read_start(&c->u.stream, on_alloc, on_read);
    if (rc != 0) {
        report_error(b, E_CONNECT, "read: %s", uv_strerror(rc));
        kill_conn(c);
        return;
    }
    fill(c, uv_hrtime());
}

static void start_conn(struct conn *c)
{
    struct bench *b = c->b;
    int rc;

    c->state = C_CONNECTING;
    decoder_reset(&c->dec);
    if (b->ep.kind == EP_UNIX) {
        rc = uv_pipe_init(&b->loop, &c->u.pipe, 0);
        if (rc == 0) {
            c->has_handle = 1;
            /* Errors, even immediate ones, come back through on_connect. */
            uv_pipe_connect(&c->creq, &c->u.pipe, b->ep.path, on_connect);
            return;
        }
    } else {
        rc = uv_tcp_init(&b->loop, &c->u.tcp);
        if (rc == 0) {
            c->has_handle = 1;
            rc = uv_tcp_connect(&c->creq, &c->u.tcp, (const struct sockaddr *)&b->ep.addr,
                                on_connect);
            if (rc == 0)
                return;
        }
    }
    report_error(b, E_CONNECT, "%s: %s", b->opt.connect, uv_strerror(rc));
    kill_conn(c);
}

static void on_retry(uv_timer_t *t)
{
    struct bench *b = container_of(t, struct bench, retry);
    struct conn *list = b->retry_list;

    b->retry_list = NULL;
    while (list != NULL && !b->stopping) {
        struct conn *c = list;

        list = c->next_retry;
        start_conn(c);
    }
}

/* ---- run control ---- */

static void finish(struct bench *b, const char *why)
{
    if (b->stopping)
        return;
    b->stopping = 1;
    b->stopped_by = why;
    if (b->t_end == 0)
        b->t_end = uv_hrtime();
    if (!b->measuring)
        b->t_start = b->t_end;
    /* A server that never accepted a connection within the whole run has failed it;
     * when the run ends by request count, connections still on their way are not. */
    if (strcmp(why, "duration") == 0) {
        size_t pending = 0;

        for (size_t i = 0; i < b->opt.connections; i++)
            if (b->conns[i].state == C_CONNECTING || b->conns[i].state == C_RETRY)
                pending++;
        if (pending > 0) {
            report_error(b, E_CONNECT, "%zu connection(s) not established by the end of the run",
                         pending);
            b->errors[E_CONNECT] += pending - 1;
        }
        /* So has one that left a request unanswered for the whole measured window. */
        pending = 0;
        for (size_t i = 0; i < b->opt.connections; i++) {
            struct conn *c = &b->conns[i];

            for (size_t k = 0; c->state == C_OPEN && k < c->inflight; k++)
                if (c->sent[(c->head + k) % b->opt.depth] < b->t_start)
                    pending++;
        }
        if (pending > 0) {
            report_error(b, E_STALLED, "%zu request(s) unanswered for the whole measured window",
                         pending);
            b->errors[E_STALLED] += pending - 1;
        }
    }
    uv_close((uv_handle_t *)&b->phase, NULL);
    uv_close((uv_handle_t *)&b->retry, NULL);
    b->retry_list = NULL;
    for (size_t i = 0; i < b->opt.connections; i++)
        close_conn(&b->conns[i]);
}

static void on_phase(uv_timer_t *t)
{
    struct bench *b = container_of(t, struct bench, phase);

    if (!b->measuring) {
        b->measuring = 1;
        b->t_start = uv_hrtime();
        uv_timer_start(&b->phase, on_phase, (uint64_t)(b->opt.duration * 1000 + 0.5), 0);
        return;
    }
    finish(b, "duration");
}

static void raise_nofile(unsigned long want)
{
    struct rlimit rl;

    /* Each connection is a descriptor; lift the soft limit to the hard one. */
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && want + 32 > rl.rlim_cur)
        fprintf(stderr, "bench_loadgen: warning: %lu connections but only %lu descriptors\n", want,
                (unsigned long)rl.rlim_cur);
}

/* ---- options and output ---- */

static void usage(FILE *f)
{
    fputs("usage: bench_loadgen --connect unix:PATH|inet:HOST:PORT [options]\n"
          "  --connections N   concurrent connections (default 50)\n"
          "  --depth D         requests outstanding per connection; 1 = lockstep (default 1)\n"
          "  --duration S      measured seconds, fractions allowed (default 5)\n"
          "  --requests N      stop after N measured answers (the duration still bounds the "
          "run)\n"
          "  --warmup S        seconds before measuring (default 1)\n"
          "  --map NAME        socketmap name (default policy)\n"
          "  --keys FILE       keys, one per line, cycled (default example.com)\n"
          "  --expect TEXT     every reply payload must equal TEXT\n"
          "  --spread          connection i starts at key i*K/N of K keys and N connections\n"
          "                    (default: at key i), so the keys asked cover the whole list\n"
          "  --json            one JSON object on stdout\n"
          "Exits 0 when answers were measured and nothing went wrong, 1 otherwise, 2 on "
          "usage errors.\n",
          f);
}

static unsigned long long parse_uint(const char *opt, const char *s, unsigned long long lo,
                                     unsigned long long hi)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || *s == '-' || v < lo || v > hi)
        bench_fatal("%s: expected an integer from %llu to %llu, got \"%s\"", opt, lo, hi, s);
    return v;
}

static double parse_seconds(const char *opt, const char *s, double lo, double hi, int lo_open)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi) || (lo_open && v == lo))
        bench_fatal("%s: expected seconds %s %g and at most %g, got \"%s\"", opt,
                    lo_open ? "above" : "from", lo, hi, s);
    return v;
}

static void parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"connect", required_argument, NULL, 'c'},
        {"connections", required_argument, NULL, 'n'},
        {"depth", required_argument, NULL, 'd'},
        {"duration", required_argument, NULL, 't'},
        {"requests", required_argument, NULL, 'r'},
        {"warmup", required_argument, NULL, 'w'},
        {"map", required_argument, NULL, 'm'},
        {"keys", required_argument, NULL, 'k'},
        {"expect", required_argument, NULL, 'e'},
        {"json", no_argument, NULL, 'j'},
        {"spread", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;

    memset(o, 0, sizeof(*o));
    o->connections = 50;
    o->depth = 1;
    o->duration = 5;
    o->warmup = 1;
    o->map = "policy";
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o->connect = optarg;
            break;
        case 'n':
            o->connections = (unsigned long)parse_uint("--connections", optarg, 1, MAX_CONNECTIONS);
            break;
        case 'd':
            o->depth = (unsigned long)parse_uint("--depth", optarg, 1, MAX_DEPTH);
            break;
        case 't':
            o->duration = parse_seconds("--duration", optarg, 0, MAX_DURATION, 1);
            break;
        case 'r':
            o->requests = parse_uint("--requests", optarg, 1, MAX_REQUESTS);
            break;
        case 'w':
            o->warmup = parse_seconds("--warmup", optarg, 0, MAX_WARMUP, 0);
            break;
        case 'm':
            o->map = optarg;
            break;
        case 'k':
            o->keys = optarg;
            break;
        case 'e':
            o->expect = optarg;
            break;
        case 'j':
            o->json = 1;
            break;
        case 's':
            o->spread = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind != argc) {
        fprintf(stderr, "bench_loadgen: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        exit(2);
    }
    if (o->connect == NULL) {
        usage(stderr);
        exit(2);
    }
    /* socketmap_table(5): the name is followed by one space, so it cannot hold one. */
    if (*o->map == '\0' || strlen(o->map) > MAX_NAME || strpbrk(o->map, " \t\r\n") != NULL)
        bench_fatal("--map: a name of 1 to %d bytes without white space", MAX_NAME);
    if (o->expect != NULL) {
        o->expect_len = strlen(o->expect);
        if (o->expect_len > MAX_REPLY)
            bench_fatal("--expect: longer than a reply can be");
    }
}

/* Print s as a JSON string body. */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void print_results(const struct bench *b, uint64_t errors)
{
    const struct options *o = &b->opt;
    double window = (double)(b->t_end - b->t_start) / 1e9;
    double rate = window > 0 ? (double)b->completed / window : 0;
    double us[5];
    static const unsigned permille[3] = {500, 900, 990};

    for (int i = 0; i < 3; i++)
        us[i] = (double)hist_percentile(&b->hist, permille[i]) / 1e3;
    us[3] = (double)b->hist.max / 1e3;
    us[4] = b->hist.n ? (double)b->hist.sum / (double)b->hist.n / 1e3 : 0;

    if (o->json) {
        printf("{\"connect\":");
        json_str(o->connect);
        printf(",\"map\":");
        json_str(o->map);
        printf(",\"connections\":%lu,\"depth\":%lu,\"warmup_s\":%.3f,\"window_s\":%.3f,"
               "\"stopped_by\":",
               o->connections, o->depth, o->warmup, window);
        json_str(b->stopped_by);
        printf(",\"requests\":%" PRIu64 ",\"answers_total\":%" PRIu64 ",\"errors\":%" PRIu64,
               b->completed, b->answered, errors);
        printf(",\"error_kinds\":{");
        for (int i = 0; i < E_NKIND; i++)
            printf("%s\"%s\":%" PRIu64, i ? "," : "", err_names[i], b->errors[i]);
        printf("},\"connect_retries\":%lu,\"answers_per_s\":%.1f", b->connect_retries, rate);
        printf(",\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"max\":%.1f,"
               "\"mean\":%.1f}",
               us[0], us[1], us[2], us[3], us[4]);
        printf(",\"replies\":{");
        for (int i = 0; i < REPLY_NCLASS; i++)
            printf("%s\"%s\":%" PRIu64, i ? "," : "", class_names[i], b->classes[i]);
        printf("}}\n");
        return;
    }
    printf("target      %s map=%s connections=%lu depth=%lu\n", o->connect, o->map, o->connections,
           o->depth);
    printf("window      %.3f s (warm-up %.3f s, stopped by %s)\n", window, o->warmup,
           b->stopped_by);
    printf("requests    %" PRIu64 " (%" PRIu64 " with the warm-up)\n", b->completed, b->answered);
    printf("errors      %" PRIu64 " (", errors);
    for (int i = 0; i < E_NKIND; i++)
        printf("%s%s %" PRIu64, i ? ", " : "", err_names[i], b->errors[i]);
    printf(")\n");
    if (b->connect_retries)
        printf("retries     %lu connect attempts refused with EAGAIN (listen backlog full)\n",
               b->connect_retries);
    printf("answers/s   %.1f\n", rate);
    printf("latency us  p50 %.1f  p90 %.1f  p99 %.1f  max %.1f  mean %.1f\n", us[0], us[1], us[2],
           us[3], us[4]);
    printf("replies    ");
    for (int i = 0; i < REPLY_NCLASS; i++)
        printf(" %s %" PRIu64, class_names[i], b->classes[i]);
    printf("\n");
}

int main(int argc, char **argv)
{
    struct bench *b;
    uint64_t errors = 0;
    int rc, status;

    bench_progname = "bench_loadgen";
    b = bench_xcalloc(1, sizeof(*b));

    parse_options(argc, argv, &b->opt);
    parse_endpoint(b->opt.connect, &b->ep);
    load_keys(b);
    /* A server that closes on us must not kill the benchmark with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    raise_nofile(b->opt.connections);

    rc = uv_loop_init(&b->loop);
    if (rc != 0)
        bench_fatal("uv_loop_init: %s", uv_strerror(rc));
    b->conns = bench_xcalloc(b->opt.connections, sizeof(*b->conns));
    b->iov = bench_xcalloc(b->opt.depth, sizeof(*b->iov));
    uv_timer_init(&b->loop, &b->phase);
    uv_timer_init(&b->loop, &b->retry);
    b->live = b->opt.connections;
    b->t_begin = uv_hrtime();

    /* The warm-up and the measured window are both timed by the phase timer. */
    if (b->opt.warmup > 0) {
        uv_timer_start(&b->phase, on_phase, (uint64_t)(b->opt.warmup * 1000 + 0.5), 0);
    } else {
        b->measuring = 1;
        b->t_start = b->t_begin;
        uv_timer_start(&b->phase, on_phase, (uint64_t)(b->opt.duration * 1000 + 0.5), 0);
    }
    for (size_t i = 0; i < b->opt.connections; i++) {
        struct conn *c = &b->conns[i];

        c->b = b;
        c->sent = bench_xcalloc(b->opt.depth, sizeof(*c->sent));
        /*
         * Connections start at different keys so a key list spreads across them; with
         * --spread evenly over the list, so that a large one is asked all over, not only at
         * its start (the scale benchmark: every part of a table of a million domains).
         */
        c->next_key = b->opt.spread ? (size_t)((unsigned long long)i * b->nreq / b->opt.connections)
                                    : i % b->nreq;
    }
    for (size_t i = 0; i < b->opt.connections && !b->stopping; i++)
        start_conn(&b->conns[i]);
    uv_run(&b->loop, UV_RUN_DEFAULT);

    rc = uv_loop_close(&b->loop);
    if (rc != 0)
        fprintf(stderr, "bench_loadgen: uv_loop_close: %s\n", uv_strerror(rc));
    for (int i = 0; i < E_NKIND; i++)
        errors += b->errors[i];
    print_results(b, errors);
    status = (errors == 0 && b->completed > 0 && rc == 0) ? 0 : 1;

    while (b->free_wreqs != NULL) {
        struct wreq *w = b->free_wreqs;

        b->free_wreqs = w->next;
        free(w);
    }
    for (size_t i = 0; i < b->opt.connections; i++)
        free(b->conns[i].sent);
    free(b->conns);
    free(b->iov);
    free(b->arena);
    free(b->req_off);
    free(b->req_len);
    free(b);
    return status;
}
