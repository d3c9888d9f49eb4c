/*
 * The shared tier on Redis (fleet.h). One hiredis async context on the daemon's loop, with
 * hiredis' own libuv adapter. Commands in flight are kept oldest first: Redis answers in
 * order, so the oldest one's deadline is the earliest, and one timer watches it. A command
 * past its deadline means Redis hangs (SIGSTOP, a stuck disk under AOF): the connection is
 * dropped, everything in flight fails at once, and commands are refused until a new
 * connection has answered its first command (AUTH or PING), so a hung server is not asked
 * again before the backoff says so.
 */
#include "fleet.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "xalloc.h"

/* Reconnection backoff: doubled after each failed attempt, reset by a first answer. */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
/*
 * Bytes of one reply hiredis may hold unparsed: a value (FLEET_VALUE_MAX) and its framing.
 * hiredis 0.14 has no bound of its own and buffers a bulk string until its last byte, so a
 * Redis that answers GET with a huge value (one written by anyone with access to the
 * prefix) would otherwise be held in memory whole.
 */
#define REPLY_PENDING_MAX (FLEET_VALUE_MAX + 1024)
/* redis_auth_file: one short line (Redis passwords are at most a few hundred bytes). */
#define AUTH_MAX 512

enum state { DOWN, CONNECTING, UP };
enum op { OP_HELLO, OP_GET, OP_LOCK, OP_SET, OP_UNLOCK, OP_RENEW };

struct fleet_req {
    struct fleet_req *next; /* in flight, oldest first; freed by hiredis' callback only */
    struct fleet *f;
    fleet_cb cb; /* NULL: cancelled, or a command nobody waits for */
    void *arg;
    uint64_t deadline; /* uv_now() */
    enum op op;
    int finished; /* counted and called back; only hiredis' callback is left */
};

struct fleet {
    uv_loop_t *loop;
    redisAsyncContext *ac; /* NULL while DOWN */
    enum state state;
    struct fleet_req *head, *tail; /* in flight on ac */
    uv_timer_t deadline, retry;
    uv_check_t guard; /* after each read: the reply being read within REPLY_PENDING_MAX */
    unsigned backoff_ms, timeout_ms;
    int closing, handles_open;
    int warned; /* a failure was logged as a warning since the last connection */
    struct endpoint ep;
    char prefix[FLEET_PREFIX_MAX + 1];
    char user[AUTH_MAX], password[AUTH_MAX];
    char token[33]; /* this daemon's lock token: 16 random bytes in hex */
};

static const char UNLOCK_SCRIPT[] =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end "
    "return 0";
/* The holder's lease renewal: a new expiry only while the lock still holds our token. */
static const char RENEW_SCRIPT[] =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) "
    "end return 0";

/* Read redis_auth_file: "PASSWORD" or "USER PASSWORD" on its first line. */
static int read_auth(const char *path, char *user, char *password, char *err, size_t errlen)
{
    char buf[AUTH_MAX * 2 + 2], *nl, *sp;
    struct stat st;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC), rc = -1;

    if (fd < 0) {
        snprintf(err, errlen, "redis_auth_file %s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "redis_auth_file %s: not a regular file", path);
        goto done;
    }
    if (st.st_mode & 077) {
        snprintf(err, errlen, "redis_auth_file %s: mode %04o lets others read it; chmod 600", path,
                 (unsigned)(st.st_mode & 07777));
        goto done;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    if (n < 0) {
        snprintf(err, errlen, "redis_auth_file %s: cannot read: %s", path, strerror(errno));
        goto done;
    }
    buf[n] = '\0';
    if ((nl = strchr(buf, '\n')) != NULL)
        *nl = '\0';
    else if ((size_t)n == sizeof(buf) - 1) {
        snprintf(err, errlen, "redis_auth_file %s: first line too long", path);
        goto done;
    }
    sp = strchr(buf, ' ');
    if (sp)
        *sp++ = '\0';
    if (buf[0] == '\0' || (sp && (sp[0] == '\0' || strchr(sp, ' ')))) {
        snprintf(err, errlen, "redis_auth_file %s: expected one line: PASSWORD or USER PASSWORD",
                 path);
        goto done;
    }
    {
        const char *u = sp ? buf : "", *pw = sp ? sp : buf;

        if (strlen(u) >= AUTH_MAX || strlen(pw) >= AUTH_MAX) {
            snprintf(err, errlen, "redis_auth_file %s: user or password too long", path);
            goto done;
        }
        memcpy(user, u, strlen(u) + 1);
        memcpy(password, pw, strlen(pw) + 1);
    }
    rc = 0;
done:
    explicit_bzero(buf, sizeof(buf));
    close(fd);
    return rc;
}

int fleet_check_config(const struct config *cfg, char *err, size_t errlen)
{
    char user[AUTH_MAX], password[AUTH_MAX];
    int rc;

    if (cfg->redis[0] == '\0' || cfg->redis_auth_file[0] == '\0')
        return 0;
    rc = read_auth(cfg->redis_auth_file, user, password, err, errlen);
    explicit_bzero(password, sizeof(password));
    return rc;
}

static void connect_now(struct fleet *f);

static void on_retry(uv_timer_t *t)
{
    connect_now(t->data);
}

static void unlink_req(struct fleet *f, struct fleet_req *r)
{
    struct fleet_req **pp = &f->head, *prev = NULL;

    while (*pp && *pp != r) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp == NULL)
        return;
    *pp = r->next;
    if (f->tail == r)
        f->tail = prev;
    r->next = NULL;
}

/* Report r's outcome once: count it and call back unless cancelled. */
static void finish(struct fleet_req *r, enum fleet_status st, const char *val, size_t len)
{
    struct fleet *f = r->f;

    if (r->finished)
        return;
    r->finished = 1;
    unlink_req(f, r);
    if (r->cb)
        r->cb(r->arg, st, val, len);
}

/* The connection is gone (or given up): fail what was in flight and try again later. */
static void lost(struct fleet *f, const char *why)
{
    int was_up = f->state == UP;

    f->ac = NULL;
    f->state = DOWN;
    uv_timer_stop(&f->deadline);
    while (f->head) {
        metrics_redis_command(METRICS_REDIS_DROPPED);
        finish(f->head, FLEET_FAIL, NULL, 0);
    }
    if (f->closing)
        return;
    if (was_up || !f->warned)
        log_warning("redis %s: %s; lookups go on without the shared tier, reconnecting", f->ep.text,
                    why);
    else
        log_debug("redis %s: %s; next attempt in %u ms", f->ep.text, why, f->backoff_ms);
    f->warned = 1;
    metrics_redis_connect(0);
    uv_timer_start(&f->retry, on_retry, f->backoff_ms, 0);
    f->backoff_ms = f->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : f->backoff_ms * 2;
}

/* Our decision to give up on the connection (a deadline passed, AUTH refused). */
static void drop(struct fleet *f, const char *why)
{
    redisAsyncContext *ac = f->ac;

    lost(f, why);
    if (ac)
        redisAsyncFree(ac); /* deferred by hiredis when called from its own callback */
}

static void on_deadline(uv_timer_t *t)
{
    struct fleet *f = t->data;
    uint64_t now = uv_now(f->loop);

    if (f->head == NULL)
        return;
    if (f->head->deadline > now) {
        uv_timer_start(&f->deadline, on_deadline, f->head->deadline - now, 0);
        return;
    }
    metrics_redis_command(METRICS_REDIS_TIMEOUT);
    finish(f->head, FLEET_FAIL, NULL, 0);
    drop(f, "no answer within redis_timeout");
}

/*
 * Runs after every loop iteration's I/O, so after each read hiredis made (at most 16 KiB a
 * read): a reply that has outgrown any value the daemon writes is a fault of the server's,
 * and the connection goes before the buffer grows further.
 */
static void on_guard(uv_check_t *h)
{
    struct fleet *f = h->data;
    const redisReader *rd = f->ac ? f->ac->c.reader : NULL;

    if (rd == NULL || rd->len - rd->pos <= REPLY_PENDING_MAX)
        return;
    metrics_redis_command(METRICS_REDIS_DROPPED);
    if (f->head)
        finish(f->head, FLEET_FAIL, NULL, 0);
    drop(f, "a reply longer than any value written (over 65 KiB unread): refused, disconnected");
}

enum fleet_status fleet_reply_status(const struct redisReply *rep, const char **val, size_t *len)
{
    *val = NULL;
    *len = 0;
    switch (rep->type) {
    case REDIS_REPLY_ERROR:
        return FLEET_FAIL;
    case REDIS_REPLY_NIL:
        return FLEET_NONE;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        *val = rep->str;
        *len = rep->len;
        return FLEET_OK;
    default:
        return FLEET_OK; /* an integer or an array: the command's answer, without a value */
    }
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct fleet_req *r = privdata;
    struct fleet *f = r->f;
    redisReply *rep = reply;

    if (r->finished || rep == NULL) {
        /* Failed already (lost), or hiredis gives up on it now (lost() follows). */
        if (!r->finished) {
            metrics_redis_command(METRICS_REDIS_DROPPED);
            finish(r, FLEET_FAIL, NULL, 0);
        }
        free(r);
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        metrics_redis_command(METRICS_REDIS_ERROR);
        log_warning("redis %s: %.*s", f->ep.text, (int)rep->len, rep->str);
        finish(r, FLEET_FAIL, NULL, 0);
        if (r->op == OP_HELLO)
            drop(f, "AUTH or PING refused");
    } else {
        metrics_redis_command(METRICS_REDIS_OK);
        if (r->op == OP_HELLO) {
            f->state = UP;
            f->backoff_ms = BACKOFF_MIN_MS;
            f->warned = 0;
            metrics_redis_connect(1);
            log_notice("redis %s: connected%s", f->ep.text,
                       f->password[0] ? ", authenticated" : "");
            finish(r, FLEET_OK, NULL, 0);
        } else {
            const char *val;
            size_t len;
            enum fleet_status st = fleet_reply_status(rep, &val, &len);

            finish(r, st, val, len);
        }
    }
    free(r);
    (void)ac;
}

/* Queue a command (argv form, binary safe). NULL when it cannot be sent now. */
static struct fleet_req *send_cmd(struct fleet *f, enum op op, fleet_cb cb, void *arg, int argc,
                                  const char **argv, const size_t *lens)
{
    struct fleet_req *r;

    if (f == NULL || f->ac == NULL || (f->state != UP && op != OP_HELLO)) {
        metrics_redis_command(METRICS_REDIS_UNAVAILABLE);
        return NULL;
    }
    r = xcalloc(1, sizeof(*r));
    r->f = f;
    r->cb = cb;
    r->arg = arg;
    r->op = op;
    r->deadline = uv_now(f->loop) + f->timeout_ms;
    if (redisAsyncCommandArgv(f->ac, on_reply, r, argc, argv, lens) != REDIS_OK) {
        free(r);
        metrics_redis_command(METRICS_REDIS_UNAVAILABLE);
        return NULL;
    }
    if (f->tail)
        f->tail->next = r;
    else
        f->head = r;
    f->tail = r;
    if (!uv_is_active((uv_handle_t *)&f->deadline))
        uv_timer_start(&f->deadline, on_deadline, f->timeout_ms, 0);
    return r;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct fleet *f = ac->data;

    if (status != REDIS_OK && f->ac == ac)
        lost(f, ac->errstr[0] ? ac->errstr : "cannot connect");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct fleet *f = ac->data;

    if (f->ac == ac)
        lost(f, status == REDIS_OK ? "connection closed" : ac->errstr);
}

static void connect_now(struct fleet *f)
{
    redisAsyncContext *ac;
    const char *argv[3];
    size_t lens[3];
    int argc = 0;

    if (f->ep.kind == ENDPOINT_UNIX)
        ac = redisAsyncConnectUnix(f->ep.path);
    else
        ac = redisAsyncConnect(f->ep.host, f->ep.port);
    if (ac == NULL || ac->err || redisLibuvAttach(ac, f->loop) != REDIS_OK) {
        char why[160];

        snprintf(why, sizeof(why), "cannot connect: %s",
                 ac && ac->err ? ac->errstr : "out of resources");
        if (ac)
            redisAsyncFree(ac);
        f->ac = NULL;
        lost(f, why);
        return;
    }
    ac->data = f;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    f->ac = ac;
    f->state = CONNECTING;
    /* The first command proves the server answers: AUTH when configured, else PING. */
    if (f->password[0]) {
        argv[argc++] = "AUTH";
        if (f->user[0])
            argv[argc++] = f->user;
        argv[argc++] = f->password;
    } else {
        argv[argc++] = "PING";
    }
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    send_cmd(f, OP_HELLO, NULL, NULL, argc, argv, lens);
}

int fleet_create(uv_loop_t *loop, const struct config *cfg, struct fleet **out, char *err,
                 size_t errlen)
{
    struct fleet *f;
    unsigned char rnd[16];

    *out = NULL;
    if (cfg->redis[0] == '\0')
        return 0;
    f = xcalloc(1, sizeof(*f));
    if (cfg->redis_auth_file[0] &&
        read_auth(cfg->redis_auth_file, f->user, f->password, err, errlen) < 0) {
        free(f);
        return -1;
    }
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        snprintf(err, errlen, "redis: no random bytes for the lock token: %s", strerror(errno));
        explicit_bzero(f->password, sizeof(f->password));
        free(f);
        return -1;
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(f->token + 2 * i, 3, "%02x", rnd[i]);
    f->loop = loop;
    f->ep = cfg->redis_ep;
    f->timeout_ms = cfg->redis_timeout_ms;
    f->backoff_ms = BACKOFF_MIN_MS;
    snprintf(f->prefix, sizeof(f->prefix), "%s", cfg->redis_prefix);
    uv_timer_init(loop, &f->deadline);
    uv_timer_init(loop, &f->retry);
    uv_check_init(loop, &f->guard);
    f->deadline.data = f->retry.data = f->guard.data = f;
    f->handles_open = 3;
    uv_check_start(&f->guard, on_guard);
    uv_unref((uv_handle_t *)&f->guard);
    connect_now(f);
    *out = f;
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    struct fleet *f = h->data;

    if (--f->handles_open == 0) {
        explicit_bzero(f->password, sizeof(f->password));
        free(f);
    }
}

void fleet_destroy(struct fleet *f)
{
    if (f == NULL)
        return;
    f->closing = 1;
    for (struct fleet_req *r = f->head; r; r = r->next)
        r->cb = NULL;
    drop(f, "closing");
    uv_close((uv_handle_t *)&f->deadline, on_closed);
    uv_close((uv_handle_t *)&f->retry, on_closed);
    uv_close((uv_handle_t *)&f->guard, on_closed);
}

/* PREFIX KIND[-lock]:NAME into key; its length. */
static size_t make_key(const struct fleet *f, char *key, const char *kind, const char *suffix,
                       const char *name)
{
    int n = snprintf(key, FLEET_KEY_MAX, "%s%s%s:%s", f->prefix, kind, suffix, name);

    return n < 0 ? 0 : (size_t)n >= FLEET_KEY_MAX ? FLEET_KEY_MAX - 1 : (size_t)n;
}

struct fleet_req *fleet_get(struct fleet *f, const char *kind, const char *name, fleet_cb cb,
                            void *arg)
{
    char key[FLEET_KEY_MAX];
    const char *argv[2] = {"GET", key};
    size_t lens[2] = {3, make_key(f, key, kind, "", name)};

    return send_cmd(f, OP_GET, cb, arg, 2, argv, lens);
}

struct fleet_req *fleet_lock(struct fleet *f, const char *kind, const char *name, unsigned ttl_ms,
                             fleet_cb cb, void *arg)
{
    char key[FLEET_KEY_MAX], ttl[24];
    const char *argv[6] = {"SET", key, f->token, "NX", "PX", ttl};
    size_t lens[6] = {3, make_key(f, key, kind, "-lock", name), strlen(f->token), 2, 2, 0};

    lens[5] = (size_t)snprintf(ttl, sizeof(ttl), "%u", ttl_ms ? ttl_ms : 1);
    return send_cmd(f, OP_LOCK, cb, arg, 6, argv, lens);
}

void fleet_set(struct fleet *f, const char *kind, const char *name, const char *val, size_t len,
               uint64_t ttl_ms)
{
    char key[FLEET_KEY_MAX], ttl[24];
    const char *argv[5] = {"SET", key, val, "PX", ttl};
    size_t lens[5] = {3, make_key(f, key, kind, "", name), len, 2, 0};

    lens[4] = (size_t)snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)(ttl_ms ? ttl_ms : 1));
    send_cmd(f, OP_SET, NULL, NULL, 5, argv, lens);
}

void fleet_unlock(struct fleet *f, const char *kind, const char *name)
{
    char key[FLEET_KEY_MAX];
    const char *argv[5] = {"EVAL", UNLOCK_SCRIPT, "1", key, f->token};
    size_t lens[5] = {4, sizeof(UNLOCK_SCRIPT) - 1, 1, make_key(f, key, kind, "-lock", name),
                      strlen(f->token)};

    send_cmd(f, OP_UNLOCK, NULL, NULL, 5, argv, lens);
}

void fleet_renew(struct fleet *f, const char *kind, const char *name, unsigned ttl_ms)
{
    char key[FLEET_KEY_MAX], ttl[24];
    const char *argv[6] = {"EVAL", RENEW_SCRIPT, "1", key, f->token, ttl};
    size_t lens[6] = {
        4, sizeof(RENEW_SCRIPT) - 1, 1, make_key(f, key, kind, "-lock", name), strlen(f->token), 0};

    lens[5] = (size_t)snprintf(ttl, sizeof(ttl), "%u", ttl_ms ? ttl_ms : 1);
    send_cmd(f, OP_RENEW, NULL, NULL, 6, argv, lens);
}

void fleet_cancel(struct fleet_req *r)
{
    if (r != NULL)
        r->cb = NULL;
}

int fleet_connected(const struct fleet *f)
{
    return f != NULL && f->state == UP;
}

uv_loop_t *fleet_loop(const struct fleet *f)
{
    return f->loop;
}
