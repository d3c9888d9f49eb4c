/*
 * The MTA-STS policy store: one LMDB environment, STATE_DIR/policies.mdb, key the domain and
 * value the record's JSON line (store_record.c). A record holds the parsed policy, not the
 * raw body, and is held to the RFC 8461 parser again whenever it is read. Writes (put,
 * delete) queue up on the loop, coalesced per domain (the last write wins), and one
 * threadpool job at a time commits the queue in one write transaction; the store owns the
 * jobs and lives until the last one's after-work callback has run, or (a commit stuck in
 * the kernel at shutdown) until the process leaves. Reads (store_get) are memory-map
 * lookups on the caller's thread through one read transaction that is reset and renewed.
 * Failed writes are tried again on a timer. The "state" commands use the synchronous side,
 * store_sync.c; the old per-file layout is migrated by store_migrate.c.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "log.h"
#include "metrics.h"
#include "store_impl.h"
#include "xalloc.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* The same write failure is logged again after this long at the soonest (milliseconds). */
#define FAIL_LOG_MS 60000
/* Buckets of the table of queued writes (a few at a time, usually). */
#define QUEUE_BUCKETS 1024
/* The shutdown line naming the domains left unwritten stays this short (a log line). */
#define UNWRITTEN_NAMES_MAX 480

enum op { OP_PUT, OP_DELETE };

/* One queued write: on the queue (FIFO) and in its hash table until a batch takes it. */
struct pend {
    struct pend *hnext, *qnext;
    enum op op;
    char *text; /* the encoded record of OP_PUT, with its newline */
    char domain[DOMAIN_MAX + 1];
};

/*
 * One transaction's work. The worker reads ops and the sweep's input and sets rc, where
 * and the figures; everything else is touched on the loop only, never while it runs.
 */
struct batch {
    uv_work_t req;
    struct store *st;
    struct pend **ops;
    size_t nops;
    int rc;            /* 0, or the LMDB/errno code of the step that failed */
    const char *where; /* that step */
    /* The sweep's chunk, when one rides on this batch. */
    int sweep;
    int64_t sweep_now;
    char sweep_from[DOMAIN_MAX + 1]; /* resume at this key ("" from the start) */
    int sweep_done;                  /* the walk reached the end */
    size_t swept, bad;               /* expired and invalid records removed */
    char bad_names[UNWRITTEN_NAMES_MAX + 1];
    int sweep_rc;
    /* The store's size afterwards, for the gauges. */
    uint64_t bytes, records;
};

struct store *store_open(uv_loop_t *loop, const char *dir, uid_t owner, gid_t group,
                         enum store_access access, uint64_t max_size, char *err, size_t errlen)
{
    struct store *st = NULL;
    size_t len = strlen(dir);
    char *top = xmalloc(len + 1);
    int topfd = -1, lockfd = -1;

    /* A trailing slash would make the kernel follow a link that O_NOFOLLOW must catch. */
    memcpy(top, dir, len + 1);
    while (len > 1 && top[len - 1] == '/')
        top[--len] = '\0';
    if (access == STORE_READONLY) {
        topfd = store_open_dir(AT_FDCWD, top, top, err, errlen);
        if (topfd < 0)
            goto fail;
    } else {
        topfd = store_own_dir(AT_FDCWD, top, top, owner, group, err, errlen);
        if (topfd < 0)
            goto fail;
        lockfd = store_take_lock(topfd, top, owner, group, access == STORE_EXCLUSIVE, err, errlen);
        if (lockfd < 0)
            goto fail;
        /* The lock file first: whoever sees the data file may open the store at once. */
        if (store_own_file(topfd, top, STORE_LOCKFILE, owner, group, err, errlen) < 0 ||
            store_own_file(topfd, top, STORE_FILE, owner, group, err, errlen) < 0)
            goto fail;
    }
    st = xcalloc(1, sizeof(*st));
    st->top = top;
    st->topfd = topfd;
    st->lockfd = lockfd;
    st->readonly = access == STORE_READONLY;
    st->max_size = max_size ? max_size : STORE_MAX_SIZE_DEFAULT;
    st->loop = loop;
    st->qbuckets = xcalloc(QUEUE_BUCKETS, sizeof(*st->qbuckets));
    st->qtail = &st->qhead;
    return st;
fail:
    if (lockfd >= 0)
        close(lockfd);
    if (topfd >= 0)
        close(topfd);
    free(top);
    return NULL;
}

int store_env_corrupt(int rc)
{
    return rc == MDB_INVALID || rc == MDB_CORRUPTED || rc == MDB_VERSION_MISMATCH ||
           rc == MDB_PAGE_NOTFOUND || rc == MDB_INCOMPATIBLE || rc == MDB_BAD_DBI;
}

/* A word for an LMDB result or errno, for a log line. */
const char *store_what(int rc)
{
    return mdb_strerror(rc);
}

void store_gauges(struct store *st, MDB_txn *txn)
{
    MDB_envinfo info;
    MDB_stat ms;

    if (mdb_env_info(st->env, &info) != 0 || mdb_stat(txn, st->dbi, &ms) != 0)
        return;
    metrics_store_size((uint64_t)(info.me_last_pgno + 1) * ms.ms_psize, ms.ms_entries,
                       (uint64_t)info.me_mapsize);
}

static void env_close(struct store *st)
{
    if (st->rtxn != NULL)
        mdb_txn_abort(st->rtxn);
    if (st->wtxn != NULL)
        mdb_txn_abort(st->wtxn);
    st->rtxn = st->wtxn = NULL;
    if (st->env != NULL)
        mdb_env_close(st->env);
    st->env = NULL;
}

/*
 * Open the environment and check it: LMDB's header, the main database, and a file that
 * still holds every page the header counts (a truncated file would fault, SIGBUS, when a
 * missing page is touched). 0, an LMDB code or errno; *where says which step failed.
 */
static int env_try(struct store *st, const char *path, const char **where)
{
    unsigned flags = MDB_NOSUBDIR | MDB_NOTLS | (st->readonly ? MDB_RDONLY : 0);
    MDB_envinfo info;
    MDB_stat ms;
    MDB_txn *txn = NULL;
    struct stat sb;
    int rc, fd;

    *where = "mdb_env_create";
    rc = mdb_env_create(&st->env);
    if (rc != 0)
        return rc;
    *where = "mdb_env_set_mapsize";
    rc = mdb_env_set_mapsize(st->env, (size_t)st->max_size);
    if (rc == 0) {
        *where = "mdb_env_open";
        rc = mdb_env_open(st->env, path, flags, 0640);
    }
    if (rc == 0) {
        *where = "mdb_txn_begin";
        rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    }
    if (rc == 0) {
        *where = "mdb_dbi_open";
        rc = mdb_dbi_open(txn, NULL, 0, &st->dbi);
    }
    if (rc == 0) {
        *where = "the file's size";
        rc = mdb_env_info(st->env, &info);
        if (rc == 0)
            rc = mdb_stat(txn, st->dbi, &ms);
        if (rc == 0)
            rc = mdb_env_get_fd(st->env, &fd);
        if (rc == 0 && fstat(fd, &sb) < 0)
            rc = errno;
        /* Truncated: the header counts pages the file no longer has. */
        if (rc == 0 && (uint64_t)sb.st_size < (uint64_t)(info.me_last_pgno + 1) * ms.ms_psize)
            rc = MDB_CORRUPTED;
        if (rc == 0 && !S_ISREG(sb.st_mode))
            rc = MDB_INVALID;
    }
    if (rc == 0) {
        st->psize = ms.ms_psize;
        store_gauges(st, txn);
    }
    if (txn != NULL)
        mdb_txn_abort(txn);
    if (rc != 0)
        env_close(st);
    return rc;
}

/*
 * Whether the file still holds every page LMDB's header counts: a file truncated under the
 * daemon (an administrator's "> policies.mdb") would fault, SIGBUS, at the first read of a
 * page past its end, in the map, on the loop or in a commit. Checked before each read and
 * each batch (an fstat, a few microseconds, off the cached path). 0, or MDB_CORRUPTED.
 */
static int store_whole(struct store *st)
{
    MDB_envinfo info;
    struct stat sb;
    int fd;

    if (mdb_env_get_fd(st->env, &fd) != 0 || fstat(fd, &sb) < 0)
        return 0;
    /* The two meta pages first: mdb_env_info() reads them. */
    if ((uint64_t)sb.st_size < 2ULL * st->psize)
        return MDB_CORRUPTED;
    if (mdb_env_info(st->env, &info) != 0)
        return 0;
    return (uint64_t)sb.st_size < (uint64_t)(info.me_last_pgno + 1) * st->psize ? MDB_CORRUPTED : 0;
}

/* Rename the unreadable store file aside and drop LMDB's lock file (rebuilt from nothing). */
static int set_aside(struct store *st, int64_t now, const char *why, char *err, size_t errlen)
{
    char aside[64];

    snprintf(aside, sizeof(aside), STORE_FILE ".corrupt-%lld", (long long)now);
    if (renameat(st->topfd, STORE_FILE, st->topfd, aside) < 0) {
        snprintf(err, errlen, "state_dir: %s/%s: %s, and it cannot be set aside: %s", st->top,
                 STORE_FILE, why, strerror(errno));
        return -1;
    }
    unlinkat(st->topfd, STORE_LOCKFILE, 0);
    log_error("state_dir: %s/%s: %s; set aside as %s, starting with an empty store (the "
              "policies in it are fetched again as lookups ask for them)",
              st->top, STORE_FILE, why, aside);
    return 0;
}

int store_start(struct store *st, int64_t now, char *err, size_t errlen)
{
    char path[4096], why[256];
    const char *where = "";
    struct stat sb;
    int rc;

    snprintf(path, sizeof(path), "%s/%s", st->top, STORE_FILE);
    if (st->readonly && fstatat(st->topfd, STORE_FILE, &sb, AT_SYMLINK_NOFOLLOW) < 0 &&
        errno == ENOENT) {
        if (fstatat(st->topfd, "sts", &sb, AT_SYMLINK_NOFOLLOW) == 0) {
            snprintf(err, errlen,
                     "state_dir %s still has the per-file layout of an earlier version (sts/): "
                     "start the daemon (or run \"state import\" once) to migrate it",
                     st->top);
            return -1;
        }
        return 0; /* no records yet */
    }
    if (!st->readonly && fstatat(st->topfd, STORE_FILE, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISLNK(sb.st_mode)) {
        snprintf(err, errlen, "state_dir: %s is a symbolic link; refusing to follow it", path);
        return -1;
    }
    rc = env_try(st, path, &where);
    if (rc != 0 && store_env_corrupt(rc) && !st->readonly) {
        snprintf(why, sizeof(why), "%s: %s", where, store_what(rc));
        if (set_aside(st, now, why, err, errlen) < 0)
            return -1;
        rc = env_try(st, path, &where);
    }
    if (rc != 0) {
        snprintf(err, errlen, "state_dir: cannot open %s: %s: %s%s", path, where, store_what(rc),
                 store_env_corrupt(rc) ? " (the file is not a valid store)" : "");
        return -1;
    }
    return st->readonly ? 0 : store_migrate(st, now, err, errlen);
}

size_t store_count(struct store *st)
{
    MDB_txn *txn;
    MDB_stat ms;
    size_t n = 0;

    if (st->env == NULL || store_whole(st) != 0 ||
        mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn) != 0)
        return 0;
    if (mdb_stat(txn, st->dbi, &ms) == 0)
        n = ms.ms_entries;
    mdb_txn_abort(txn);
    return n;
}

static void queue_free(struct pend *p)
{
    free(p->text);
    free(p);
}

static void on_retry_closed(uv_handle_t *h);

static void store_free(struct store *st)
{
    struct pend *p, *next;

    for (p = st->qhead; p != NULL; p = next) {
        next = p->qnext;
        queue_free(p);
    }
    for (p = st->retry; p != NULL; p = next) {
        next = p->qnext;
        queue_free(p);
    }
    if (st->retry_timer != NULL) {
        st->retry_timer->data = NULL;
        uv_close((uv_handle_t *)st->retry_timer, on_retry_closed);
    }
    env_close(st);
    if (st->topfd >= 0)
        close(st->topfd);
    if (st->lockfd >= 0)
        close(st->lockfd);
    free(st->qbuckets);
    free(st->top);
    free(st);
}

static void on_close_timer_closed(uv_handle_t *h)
{
    store_free(h->data);
}

static void submit(struct store *st, const char *domain, enum op op, char *text);

/*
 * Failed writes are tried again: a full disk, a read-only remount or state_max_size met
 * say nothing about the policies, and once the fault is gone their records must reach the
 * store without a restart (or a restart would lose them). A newer write of the same domain
 * queued meanwhile wins over the failed one.
 */
static void retry_now(struct store *st)
{
    struct pend *p, *next;

    for (p = st->retry, st->retry = NULL; p != NULL; p = next) {
        next = p->qnext;
        if (store_queued(st, p->domain))
            free(p->text);
        else
            submit(st, p->domain, p->op, p->text);
        free(p);
    }
}

static void on_retry(uv_timer_t *t)
{
    struct store *st = t->data;

    if (st != NULL)
        retry_now(st);
}

static void on_retry_closed(uv_handle_t *h)
{
    free(h);
}

/* A new state_max_size, between batches: no write transaction is open, reads are reset. */
static void apply_size(struct store *st)
{
    uint64_t want = st->want_size;
    int rc;

    if (want == 0 || st->running != NULL || st->wtxn != NULL)
        return;
    st->want_size = 0;
    if (st->env == NULL || st->readonly || want == st->max_size)
        return;
    rc = mdb_env_set_mapsize(st->env, (size_t)want);
    if (rc != 0) {
        log_error("state_dir: %s/%s: state_max_size stays %llu MiB: %s", st->top, STORE_FILE,
                  (unsigned long long)(st->max_size >> 20), store_what(rc));
        return;
    }
    log_notice("state_dir: %s/%s: state_max_size now %llu MiB (was %llu MiB)", st->top, STORE_FILE,
               (unsigned long long)(want >> 20), (unsigned long long)(st->max_size >> 20));
    st->max_size = want;
    if (st->retry_timer != NULL)
        uv_timer_stop(st->retry_timer);
    st->retry_n = 0;
    retry_now(st);
}

void store_set_max_size(struct store *st, uint64_t max_size)
{
    if (st == NULL || st->closing || max_size == 0)
        return;
    st->want_size = max_size;
    apply_size(st);
}

/* The after-work side of a failed batch: its puts wait for the retry timer. */
static void retry_later(struct store *st, struct pend **ops, size_t n)
{
    /* Milliseconds before the next try: 1, 2, then 4 s for as long as it fails. */
    unsigned delay = 1000u << (st->retry_n < 2 ? st->retry_n : 2);

    for (size_t i = 0; i < n; i++) {
        if (ops[i]->op != OP_PUT || store_queued(st, ops[i]->domain)) {
            free(ops[i]->text);
            free(ops[i]);
        } else {
            ops[i]->qnext = st->retry;
            st->retry = ops[i];
        }
        ops[i] = NULL;
    }
    if (st->retry == NULL)
        return;
    if (st->retry_timer == NULL) {
        st->retry_timer = xcalloc(1, sizeof(*st->retry_timer));
        uv_timer_init(st->loop, st->retry_timer);
        st->retry_timer->data = st;
        uv_unref((uv_handle_t *)st->retry_timer);
    }
    if (!uv_is_active((uv_handle_t *)st->retry_timer)) {
        uv_timer_start(st->retry_timer, on_retry, delay, 0);
        st->retry_n++;
    }
}

/* Append domain to names (a log line's list), while it has room. */
static void name_one(char *names, size_t size, size_t *used, size_t *named, const char *domain)
{
    size_t len = strlen(domain) + 2;

    if (*used + len <= size - 1) {
        *used += (size_t)snprintf(names + *used, size - *used, "%s%s", *named ? ", " : "", domain);
        (*named)++;
    }
}

/* The deadline of store_close(): name what is left, drop what has not started. */
static void on_close_timeout(uv_timer_t *t)
{
    struct store *st = t->data;
    char names[UNWRITTEN_NAMES_MAX + 1] = "";
    size_t used = 0, named = 0, total = st->nqueued;
    struct pend *p, *next;
    int stuck = 0;

    st->gave_up = 1;
    if (st->running != NULL) {
        for (size_t i = 0; i < st->running->nops; i++)
            name_one(names, sizeof(names), &used, &named, st->running->ops[i]->domain);
        total += st->running->nops;
        /* A queued batch is cancelled; one a thread is committing cannot be (uv_cancel). */
        stuck = uv_cancel((uv_req_t *)&st->running->req) != 0;
    }
    for (p = st->qhead; p != NULL; p = next) {
        next = p->qnext;
        name_one(names, sizeof(names), &used, &named, p->domain);
        queue_free(p);
    }
    st->qhead = NULL;
    st->qtail = &st->qhead;
    st->nqueued = 0;
    memset(st->qbuckets, 0, QUEUE_BUCKETS * sizeof(*st->qbuckets));
    log_error("state_dir: drain_timeout (%u ms) ran out with writes unfinished; policies not "
              "persisted (%zu): %s%s",
              st->close_timeout_ms, total, names, named < total ? ", ..." : "");
    /* A thread stuck in the kernel (a hung fsync) would hold the loop's last run for ever. */
    if (stuck)
        uv_stop(st->loop);
    else if (st->running == NULL)
        uv_close((uv_handle_t *)&st->close_timer, on_close_timer_closed);
}

void store_close(struct store *st, unsigned timeout_ms)
{
    if (st == NULL)
        return;
    st->notify = NULL;
    st->sweeping = 0;
    /* Failed writes get one more try, within the same deadline as the queued ones. */
    if (st->retry_timer != NULL)
        uv_timer_stop(st->retry_timer);
    retry_now(st);
    /*
     * Queued writes are committed rather than cancelled: a policy dropped here would be
     * missing after the restart, the downgrade persistence exists to prevent (RFC 8461
     * 5.1). The loop's last run waits for them, up to timeout_ms.
     */
    if (st->running == NULL && st->qhead == NULL) {
        store_free(st);
        return;
    }
    st->closing = 1;
    st->close_timeout_ms = timeout_ms;
    uv_timer_init(st->loop, &st->close_timer);
    st->close_timer.data = st;
    uv_timer_start(&st->close_timer, on_close_timeout, timeout_ms, 0);
}

/* Domains are normalised A-labels ([a-z0-9.-]): nothing else is a key. */
int store_storable(const char *domain)
{
    size_t n = strlen(domain);

    return n > 0 && n <= DOMAIN_MAX &&
           strspn(domain, "abcdefghijklmnopqrstuvwxyz0123456789.-") == n;
}

int store_value_parse(const void *key, size_t klen, const void *val, size_t vlen, int64_t now,
                      struct store_record *rec, const char **why)
{
    memset(rec, 0, sizeof(*rec));
    if (store_record_parse(val, vlen, NULL, now, rec, why) < 0)
        return -1;
    if (strlen(rec->domain) != klen || memcmp(rec->domain, key, klen) != 0) {
        *why = "domain does not match its key";
        return -1;
    }
    return 0;
}

/* store_impl.h: store_value_parse() on LMDB's key and value. */
int store_parse_value(const MDB_val *key, const MDB_val *val, int64_t now, struct store_record *rec,
                      const char **why)
{
    return store_value_parse(key->mv_data, key->mv_size, val->mv_data, val->mv_size, now, rec, why);
}

/* The sweep's chunk, in its own write transaction after the batch's writes. */
static void sweep_chunk(struct store *st, struct batch *b)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val key, val;
    size_t seen = 0, used = 0, named = 0;
    int rc = mdb_txn_begin(st->env, NULL, 0, &txn), op = MDB_SET_RANGE;

    if (rc == 0)
        rc = mdb_cursor_open(txn, st->dbi, &cur);
    key.mv_data = b->sweep_from;
    key.mv_size = strlen(b->sweep_from);
    if (key.mv_size == 0)
        op = MDB_FIRST;
    while (rc == 0 && (rc = mdb_cursor_get(cur, &key, &val, op)) == 0) {
        struct store_record rec;
        const char *why = NULL;

        op = MDB_NEXT;
        if (seen++ == STORE_SWEEP_CHUNK) {
            /* The next chunk starts here. */
            snprintf(b->sweep_from, sizeof(b->sweep_from), "%.*s", (int)key.mv_size,
                     (const char *)key.mv_data);
            break;
        }
        if (store_parse_value(&key, &val, b->sweep_now, &rec, &why) < 0) {
            char name[DOMAIN_MAX + 1];

            snprintf(name, sizeof(name), "%.*s",
                     (int)(key.mv_size > DOMAIN_MAX ? DOMAIN_MAX : key.mv_size),
                     (const char *)key.mv_data);
            name_one(b->bad_names, sizeof(b->bad_names), &used, &named, name);
            b->bad++;
        } else if (rec.expires > b->sweep_now) {
            continue;
        } else {
            b->swept++;
        }
        rc = mdb_cursor_del(cur, 0);
    }
    if (rc == MDB_NOTFOUND) {
        b->sweep_done = 1;
        rc = 0;
    }
    if (cur != NULL)
        mdb_cursor_close(cur);
    if (rc == 0 && txn != NULL) {
        rc = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (txn != NULL)
        mdb_txn_abort(txn);
    b->sweep_rc = rc;
}

/* The threadpool side: one write transaction for the batch, then the sweep's chunk. */
static void do_batch(uv_work_t *req)
{
    struct batch *b = container_of(req, struct batch, req);
    struct store *st = b->st;
    MDB_txn *txn = NULL;
    int rc;

    b->where = "the file's size";
    rc = store_whole(st);
    if (rc != 0) {
        b->rc = rc;
        return;
    }
    b->where = "mdb_txn_begin";
    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    for (size_t i = 0; rc == 0 && i < b->nops; i++) {
        struct pend *p = b->ops[i];
        MDB_val key = {strlen(p->domain), p->domain}, val;

        if (p->op == OP_PUT) {
            b->where = "mdb_put";
            val.mv_size = strlen(p->text);
            val.mv_data = p->text;
            rc = mdb_put(txn, st->dbi, &key, &val, 0);
        } else {
            b->where = "mdb_del";
            rc = mdb_del(txn, st->dbi, &key, NULL);
            if (rc == MDB_NOTFOUND)
                rc = 0;
        }
    }
    if (rc == 0) {
        /* Durable when this returns 0: LMDB fsyncs the data and then the meta page. */
        b->where = "mdb_txn_commit";
        rc = mdb_txn_commit(txn);
    } else if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    b->rc = rc;
    if (b->sweep)
        sweep_chunk(st, b);
}

static void start_batch(struct store *st);

/* On the loop: log, count and tell what the batch did. */
static void report(struct store *st, struct batch *b, int status)
{
    int ok = status == 0 && b->rc == 0;

    /*
     * One line when writes start failing (or fail otherwise), one when they commit again.
     * Near state_max_size writes can fail and succeed by turns (a commit frees pages the
     * next may reuse): the same failure is announced again only after FAIL_LOG_MS.
     */
    int rc = status ? status : b->rc;
    uint64_t now = uv_now(st->loop);

    if (!ok && rc != st->fail_rc &&
        (st->fail_rc != 0 || rc != st->logged_rc || now - st->logged_at >= FAIL_LOG_MS)) {
        log_error("state_dir: %s/%s: %zu write%s not committed: %s: %s%s; the policies stay in "
                  "memory and answer as before, and their writes are tried again every few "
                  "seconds (not logged again until a write succeeds or fails otherwise)",
                  st->top, STORE_FILE, b->nops, b->nops == 1 ? "" : "s",
                  status ? "threadpool" : b->where,
                  status ? uv_strerror(status) : store_what(b->rc),
                  b->rc == MDB_MAP_FULL ? " (state_max_size reached: raise it, or remove "
                                          "records)"
                                        : "");
        st->logged_rc = rc;
        st->logged_at = now;
        st->announced = 1;
    } else if (!ok) {
        log_debug("state_dir: %zu write%s not committed: %s (logged before)", b->nops,
                  b->nops == 1 ? "" : "s", status ? uv_strerror(status) : store_what(b->rc));
    } else if (ok && b->nops > 0) {
        if (st->fail_rc != 0 && st->announced)
            log_notice("state_dir: %s/%s: writes commit again (%lu had failed)", st->top,
                       STORE_FILE, st->nfailed);
        st->fail_rc = 0;
        st->announced = 0;
        st->nfailed = 0;
        st->retry_n = 0;
        log_debug("state_dir: batch of %zu write%s committed", b->nops, b->nops == 1 ? "" : "s");
    }
    if (!ok) {
        st->nfailed += b->nops;
        st->fail_rc = rc;
    }
    for (size_t i = 0; i < b->nops; i++) {
        struct pend *p = b->ops[i];

        if (ok)
            log_debug("state_dir: %s: %s", p->domain,
                      p->op == OP_PUT ? "policy written" : "record removed");
        metrics_store(ok);
        if (p->op == OP_PUT && st->notify != NULL)
            st->notify(st->notify_arg, p->domain, ok);
    }
    if (b->sweep && b->sweep_rc != 0)
        log_error("state_dir: %s/%s: sweep of expired records failed: %s", st->top, STORE_FILE,
                  store_what(b->sweep_rc));
    if (b->sweep && (b->swept > 0 || b->bad > 0))
        log_info("state_dir: %zu expired record%s removed%s%zu invalid removed%s%s", b->swept,
                 b->swept == 1 ? "" : "s", b->bad ? ", " : "", b->bad, b->bad ? ": " : "",
                 b->bad_names);
}

static void after_batch(uv_work_t *req, int status)
{
    struct batch *b = container_of(req, struct batch, req);
    struct store *st = b->st;

    /* Cancelled by on_close_timeout(), which named the domains already. */
    if (!(st->gave_up && status == UV_ECANCELED))
        report(st, b, status);
    if (b->sweep) {
        st->sweeping = status == 0 && b->sweep_rc == 0 && !b->sweep_done;
        memcpy(st->sweep_from, b->sweep_from, sizeof(st->sweep_from));
    }
    if (status == 0 && st->env != NULL && store_whole(st) == 0) {
        MDB_txn *txn;

        if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn) == 0) {
            store_gauges(st, txn);
            mdb_txn_abort(txn);
        }
    }
    if ((status != 0 || b->rc != 0) && !st->gave_up && !st->closing)
        retry_later(st, b->ops, b->nops);
    for (size_t i = 0; i < b->nops; i++)
        if (b->ops[i] != NULL)
            queue_free(b->ops[i]);
    free(b->ops);
    free(b);
    st->running = NULL;
    apply_size(st);
    if (st->running == NULL && !st->gave_up && (st->qhead != NULL || st->sweeping))
        start_batch(st);
    else if (st->closing)
        uv_close((uv_handle_t *)&st->close_timer, on_close_timer_closed);
}

static struct pend **queue_slot(struct store *st, const char *domain)
{
    return &st->qbuckets[hash_string(domain) % QUEUE_BUCKETS];
}

/* The next batch: up to STORE_BATCH_MAX queued writes, oldest first, and a sweep chunk. */
static void start_batch(struct store *st)
{
    struct batch *b = xcalloc(1, sizeof(*b));
    size_t n = st->nqueued < STORE_BATCH_MAX ? st->nqueued : STORE_BATCH_MAX;

    b->st = st;
    b->ops = xcalloc(n ? n : 1, sizeof(*b->ops));
    while (b->nops < n) {
        struct pend *p = st->qhead, **pp;

        st->qhead = p->qnext;
        for (pp = queue_slot(st, p->domain); *pp != p; pp = &(*pp)->hnext)
            ;
        *pp = p->hnext;
        b->ops[b->nops++] = p;
    }
    if (st->qhead == NULL)
        st->qtail = &st->qhead;
    st->nqueued -= n;
    if (st->sweeping) {
        b->sweep = 1;
        b->sweep_now = st->sweep_now;
        memcpy(b->sweep_from, st->sweep_from, sizeof(b->sweep_from));
    }
    st->running = b;
    /* uv_queue_work() fails only without a work callback; should it, commit inline. */
    if (uv_queue_work(st->loop, &b->req, do_batch, after_batch) != 0) {
        do_batch(&b->req);
        after_batch(&b->req, 0);
    }
}

/* Queue op (and text, which the store then owns) for domain; a batch starts if none runs. */
static void submit(struct store *st, const char *domain, enum op op, char *text)
{
    struct pend **slot = queue_slot(st, domain), *p;

    for (p = *slot; p != NULL; p = p->hnext)
        if (strcmp(p->domain, domain) == 0)
            break;
    if (p != NULL) {
        /* A write of this domain waits: this one replaces it (the last write wins). */
        log_debug("state_dir: %s: a newer write replaces one not yet made", domain);
        free(p->text);
        p->op = op;
        p->text = text;
        return;
    }
    p = xcalloc(1, sizeof(*p));
    p->op = op;
    p->text = text;
    snprintf(p->domain, sizeof(p->domain), "%s", domain);
    p->hnext = *slot;
    *slot = p;
    *st->qtail = p;
    st->qtail = &p->qnext;
    st->nqueued++;
    if (st->running == NULL)
        start_batch(st);
}

void store_put(struct store *st, const struct store_record *rec)
{
    char *line;

    if (st->closing || st->readonly || st->env == NULL)
        return;
    if (!store_storable(rec->domain)) {
        log_error("state_dir: %s: policy not persisted: not a storable domain name", rec->domain);
        metrics_store(0);
        return;
    }
    line = store_record_encode(rec);
    if (line == NULL) {
        log_error("state_dir: %s: policy not persisted: cannot encode the record", rec->domain);
        metrics_store(0);
        return;
    }
    submit(st, rec->domain, OP_PUT, line);
}

void store_delete(struct store *st, const char *domain)
{
    if (!st->closing && !st->readonly && st->env != NULL && store_storable(domain))
        submit(st, domain, OP_DELETE, NULL);
}

void store_set_notify(struct store *st, store_notify_cb cb, void *arg)
{
    st->notify = cb;
    st->notify_arg = arg;
}

int store_queued(struct store *st, const char *domain)
{
    for (struct pend *p = *queue_slot(st, domain); p != NULL; p = p->hnext)
        if (strcmp(p->domain, domain) == 0)
            return 1;
    return 0;
}

void store_sweep(struct store *st, int64_t now)
{
    if (st->closing || st->readonly || st->env == NULL || st->sweeping)
        return;
    st->sweeping = 1;
    st->sweep_now = now;
    st->sweep_from[0] = '\0';
    if (st->running == NULL)
        start_batch(st);
}

int store_get(struct store *st, const char *domain, int64_t now, struct store_record *rec,
              const char **why)
{
    MDB_val key = {strlen(domain), (void *)domain}, val;
    MDB_txn *txn = st->wtxn;
    int rc;

    if (st->env == NULL || !store_storable(domain))
        return 0;
    if (txn == NULL && (rc = store_whole(st)) != 0) {
        *why = "the file is shorter than its pages (truncated?)";
        return -1;
    }
    if (txn == NULL) {
        /* One read transaction, reset after each read and renewed for the next. */
        rc = st->rtxn ? mdb_txn_renew(st->rtxn)
                      : mdb_txn_begin(st->env, NULL, MDB_RDONLY, &st->rtxn);
        if (rc != 0) {
            if (st->rtxn != NULL)
                mdb_txn_abort(st->rtxn);
            st->rtxn = NULL;
            *why = store_what(rc);
            return -1;
        }
        txn = st->rtxn;
    }
    rc = mdb_get(txn, st->dbi, &key, &val);
    if (rc == 0) {
        const char *pwhy = NULL;

        /* Invalid: as good as missing here; the sweep names and removes it. */
        rc = store_parse_value(&key, &val, now, rec, &pwhy) == 0 && rec->expires > now ? 1 : 0;
    } else if (rc == MDB_NOTFOUND) {
        rc = 0;
    } else {
        *why = store_what(rc);
        rc = -1;
    }
    if (txn == st->rtxn)
        mdb_txn_reset(st->rtxn);
    return rc;
}
