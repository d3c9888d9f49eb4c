/*
 * bench_ceiling: the trivial socketmap server tlspolicyd is benchmarked against. One libuv
 * loop accepts connections on a unix or TCP socket, decodes every complete request
 * netstring in each read (framing only, within Postfix socketmap_table(5) limits) and
 * answers each with one constant reply, all the answers to one read in one uv_write. What
 * it reaches is what the machine and libuv allow; the daemon's real work is the rest.
 * Each connection owns its handle and is freed from the close callback; SIGTERM or SIGINT
 * closes everything and the process exits once the loop is empty.
 */
#include <errno.h>
#include <getopt.h>
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
#include <unistd.h>
#include <uv.h>

#include "benchutil.h"

/* Requests are "NAME KEY": a map name of up to 100 bytes (proto/sockmap.h), a space and a
 * key of up to 10,000 bytes (Postfix dict_sockmap.c). */
#define MAX_REQUEST (100 + 1 + 10000)
/* Longest --reply: the daemon's longest answer text (proto/sockmap.h SOCKMAP_MAX_TEXT),
 * well inside Postfix's 100,000 bytes. One read of the shortest requests ("0:,") is
 * answered with up to READ_BUF_SIZE / 3 replies, so this bounds what one read can queue. */
#define MAX_REPLY_TEXT 4096

/* Connections waiting to be accepted; the kernel caps it at net.core.somaxconn. */
#define BACKLOG 4096

/* Read buffer shared by all connections: alloc, read(2) and the read callback run back to
 * back for one stream, and the framer keeps nothing that points into it. */
#define READ_BUF_SIZE 65536

/* A client that sends without reading makes answers queue up; stop reading from it above
 * the high mark and resume below the low one, so its memory stays bounded. */
#define WRITE_QUEUE_HIGH (1u << 20)
#define WRITE_QUEUE_LOW (256u << 10)

struct server;

struct conn {
    union bench_stream u;
    uv_shutdown_t sreq;
    struct server *srv;
    struct conn *prev, *next; /* the server's list, for closing at exit */
    struct bench_frame frame; /* the request being received: only lengths, never the bytes */
    int paused;               /* reading stopped until the write queue drains */
    int ending;               /* a shutdown is under way; close follows */
};

/* One write: the answers to one read, in one contiguous buffer. */
struct wreq {
    uv_write_t req;
    struct conn *conn;
    char data[];
};

struct server {
    uv_loop_t loop;
    union bench_stream listener;
    uv_signal_t sigterm, sigint;
    int is_unix;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char *reply; /* the framed reply, "LEN:TEXT," */
    size_t reply_len;
    struct conn *conns;
    int stopping;
    unsigned long accepted, answered, refused;
};

static char read_buf[READ_BUF_SIZE];
/* Answers are rendered here and written at once when they fit; only what the socket does
 * not take is copied to the heap. */
static char out_buf[65536];

/*
 * frame - count the complete netstrings in p[0..n), carrying partial ones across reads.
 * Returns the count, or -1 on malformed input with a reason in *why (the count of those
 * before it is in *done then).
 */
static long frame(struct conn *c, const char *p, size_t n, long *done, const char **why)
{
    long count = 0;
    size_t off = 0, used;

    while (off < n) {
        int rc = bench_frame_feed(&c->frame, p + off, n - off, NULL, NULL, &used, why);

        if (rc < 0) {
            *done = count;
            return -1;
        }
        off += used;
        count += rc;
    }
    return count;
}

static void on_close(uv_handle_t *h)
{
    struct conn *c = container_of(h, struct conn, u.handle);
    struct server *s = c->srv;

    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    free(c);
}

static void close_conn(struct conn *c)
{
    if (!uv_is_closing(&c->u.handle))
        uv_close(&c->u.handle, on_close);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    close_conn(container_of(req, struct conn, sreq));
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(read_buf, sizeof(read_buf));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = container_of(req, struct wreq, req);
    struct conn *c = w->conn;

    free(w);
    if (status < 0) {
        close_conn(c);
        return;
    }
    if (c->paused && !c->ending && uv_stream_get_write_queue_size(&c->u.stream) < WRITE_QUEUE_LOW) {
        c->paused = 0;
        if (uv_read_start(&c->u.stream, on_alloc, on_read) != 0)
            close_conn(c);
    }
}

/*
 * Send count copies of the reply as one write. uv_try_write() first, as a real server
 * should: a uv_write() that completes at once still queues its callback and re-arms the
 * epoll watcher, one epoll_ctl(2) per answer. What the socket does not take is copied and
 * queued with one uv_write(). Returns 0, or -1 when the connection is being closed.
 */
static int answer(struct conn *c, long count)
{
    struct server *s = c->srv;
    size_t len = (size_t)count * s->reply_len, off;
    struct wreq *w = NULL;
    char *out = out_buf;
    uv_buf_t buf;
    int n;

    if (len > sizeof(out_buf)) {
        w = bench_xmalloc(sizeof(*w) + len);
        out = w->data;
    }
    for (long i = 0; i < count; i++)
        memcpy(out + (size_t)i * s->reply_len, s->reply, s->reply_len);
    s->answered += (unsigned long)count;
    buf = uv_buf_init(out, (unsigned)len);
    n = uv_try_write(&c->u.stream, &buf, 1);
    if (n >= 0 && (size_t)n == len) {
        free(w);
        return 0;
    }
    if (n < 0 && n != UV_EAGAIN) {
        free(w);
        close_conn(c);
        return -1;
    }
    off = n > 0 ? (size_t)n : 0;
    if (w == NULL) {
        w = bench_xmalloc(sizeof(*w) + len - off);
        memcpy(w->data, out + off, len - off);
        off = 0;
    }
    w->conn = c;
    buf = uv_buf_init(w->data + off, (unsigned)(len - off));
    if (uv_write(&w->req, &c->u.stream, &buf, 1, on_write) != 0) {
        free(w);
        close_conn(c);
        return -1;
    }
    return 0;
}

/* Stop reading and close once every queued answer is written: a client that half-closes
 * after its requests still gets its answers. */
static void end_conn(struct conn *c)
{
    if (c->ending)
        return;
    c->ending = 1;
    uv_read_stop(&c->u.stream);
    if (uv_shutdown(&c->sreq, &c->u.stream, on_shutdown) != 0)
        close_conn(c);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = container_of(st, struct conn, u.stream);
    const char *why = NULL;
    long count, done = 0;

    if (nread == UV_EOF) {
        end_conn(c);
        return;
    }
    if (nread < 0) {
        close_conn(c);
        return;
    }
    count = frame(c, buf->base, (size_t)nread, &done, &why);
    if (count < 0) {
        /* Answer what came before the bad bytes, then hang up. */
        fprintf(stderr, "bench_ceiling: closing a connection: %s\n", why);
        c->srv->refused++;
        if (done > 0 && answer(c, done) != 0)
            return;
        end_conn(c);
        return;
    }
    if (count == 0 || answer(c, count) != 0)
        return;
    if (uv_stream_get_write_queue_size(st) > WRITE_QUEUE_HIGH) {
        c->paused = 1;
        uv_read_stop(st);
    }
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct server *s = container_of(listener, struct server, listener.stream);
    struct conn *c;
    int rc;

    if (status < 0) {
        fprintf(stderr, "bench_ceiling: accept: %s\n", uv_strerror(status));
        return;
    }
    c = bench_xmalloc(sizeof(*c));
    memset(c, 0, sizeof(*c));
    c->srv = s;
    bench_frame_init(&c->frame, MAX_REQUEST, "request longer than the socketmap limit");
    rc = s->is_unix ? uv_pipe_init(&s->loop, &c->u.pipe, 0) : uv_tcp_init(&s->loop, &c->u.tcp);
    if (rc != 0) {
        fprintf(stderr, "bench_ceiling: init: %s\n", uv_strerror(rc));
        free(c);
        return;
    }
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    rc = uv_accept(listener, &c->u.stream);
    if (rc == 0 && !s->is_unix)
        rc = uv_tcp_nodelay(&c->u.tcp, 1);
    if (rc == 0)
        rc = uv_read_start(&c->u.stream, on_alloc, on_read);
    if (rc != 0) {
        fprintf(stderr, "bench_ceiling: accept: %s\n", uv_strerror(rc));
        close_conn(c);
        return;
    }
    s->accepted++;
}

static void on_signal(uv_signal_t *sig, int signum)
{
    struct server *s = sig->data;

    (void)signum;
    if (s->stopping)
        return;
    s->stopping = 1;
    uv_close(&s->listener.handle, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    for (struct conn *c = s->conns; c != NULL; c = c->next)
        close_conn(c);
}

static void listen_on(struct server *s, const char *spec)
{
    int rc;

    if (strncmp(spec, "unix:", 5) == 0) {
        const char *path = s->path;
        struct stat st;

        bench_unix_path(spec, s->path, sizeof(s->path));
        /* A socket left by an earlier run is replaced; anything else is not ours. */
        if (lstat(path, &st) == 0) {
            if (!S_ISSOCK(st.st_mode))
                bench_fatal("%s: exists and is not a socket", path);
            if (unlink(path) != 0)
                bench_fatal("%s: %s", path, strerror(errno));
        }
        s->is_unix = 1;
        rc = uv_pipe_init(&s->loop, &s->listener.pipe, 0);
        if (rc == 0)
            rc = uv_pipe_bind(&s->listener.pipe, path);
    } else if (strncmp(spec, "inet:", 5) == 0) {
        struct addrinfo *res = bench_inet_addrs(spec, AI_PASSIVE);

        rc = uv_tcp_init(&s->loop, &s->listener.tcp);
        if (rc == 0)
            rc = uv_tcp_bind(&s->listener.tcp, res->ai_addr, 0);
        freeaddrinfo(res);
    } else {
        bench_fatal("%s: expected unix:PATH or inet:HOST:PORT", spec);
    }
    if (rc == 0)
        rc = uv_listen(&s->listener.stream, BACKLOG, on_connection);
    if (rc != 0)
        bench_fatal("%s: %s", spec, uv_strerror(rc));
}

static void usage(FILE *f)
{
    fputs("usage: bench_ceiling --listen unix:PATH|inet:HOST:PORT [--reply TEXT]\n"
          "  Answers every socketmap request with the netstring TEXT (default \"OK may\").\n"
          "  SIGTERM or SIGINT closes every connection and exits 0.\n",
          f);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"reply", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct server *s;
    const char *spec = NULL, *text = "OK may";
    struct rlimit rl;
    char prefix[24];
    size_t tlen, plen;
    int ch, rc;

    bench_progname = "bench_ceiling";
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'l':
            spec = optarg;
            break;
        case 'r':
            text = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (spec == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (strlen(text) > MAX_REPLY_TEXT)
        bench_fatal("--reply: longer than %d bytes", MAX_REPLY_TEXT);

    /* A client that goes away must not kill the server with SIGPIPE, and every
     * connection is a descriptor: lift the soft limit to the hard one. */
    signal(SIGPIPE, SIG_IGN);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    s = bench_xmalloc(sizeof(*s));
    memset(s, 0, sizeof(*s));
    /* The reply is framed once: "LEN:TEXT,". */
    tlen = strlen(text);
    plen = (size_t)snprintf(prefix, sizeof(prefix), "%zu:", tlen);
    s->reply_len = plen + tlen + 1;
    s->reply = bench_xmalloc(s->reply_len);
    memcpy(s->reply, prefix, plen);
    memcpy(s->reply + plen, text, tlen);
    s->reply[s->reply_len - 1] = ',';

    rc = uv_loop_init(&s->loop);
    if (rc != 0)
        bench_fatal("uv_loop_init: %s", uv_strerror(rc));
    listen_on(s, spec);
    uv_signal_init(&s->loop, &s->sigterm);
    uv_signal_init(&s->loop, &s->sigint);
    s->sigterm.data = s;
    s->sigint.data = s;
    uv_signal_start(&s->sigterm, on_signal, SIGTERM);
    uv_signal_start(&s->sigint, on_signal, SIGINT);
    fprintf(stderr, "bench_ceiling: listening on %s\n", spec);

    uv_run(&s->loop, UV_RUN_DEFAULT);

    rc = uv_loop_close(&s->loop);
    if (rc != 0)
        fprintf(stderr, "bench_ceiling: uv_loop_close: %s\n", uv_strerror(rc));
    if (s->is_unix)
        unlink(s->path);
    fprintf(stderr, "bench_ceiling: %lu connections, %lu answers, %lu refused\n", s->accepted,
            s->answered, s->refused);
    free(s->reply);
    free(s);
    return rc == 0 ? 0 : 1;
}
