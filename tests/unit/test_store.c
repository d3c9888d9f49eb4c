/*
 * Unit table for store_record_parse() (daemon/mtasts/store_record.c): which record texts
 * state_dir may hold and be read, and why the others are refused. Then the LMDB store on a
 * loop: batched puts and a delete read back, the sweep, a full store (state_max_size), the
 * migration of the per-file layout, a truncated and a garbage file set aside, and
 * store_close(): a write finishes, and a commit stuck behind another writer is given up
 * after the timeout, named in the log.
 */
#include "check.h"
#include "log.h"
#include "store.h"

#include <fcntl.h>
#include <lmdb.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define NOW 1800000000

static const struct {
    const char *label, *text, *want; /* want: NULL when it loads, else a word of the reason */
    int line;                        /* a line of "state import": no file name, encodes back */
} rows[] = {
    {"enforce policy",
     "{\"version\":1,\"domain\":\"example.com\",\"id\":\"20261129\",\"fetched\":1799990000,"
     "\"expires\":1800076400,\"mode\":\"enforce\",\"max_age\":86400,"
     "\"mx\":[\"mx1.example.com\",\"*.backup.example.net\"]}",
     NULL, 0},
    {"mode none without mx",
     "{\"version\":1,\"domain\":\"example.com\",\"id\":\"a1\",\"fetched\":1,\"expires\":1,\"mode\":"
     "\"none\","
     "\"max_age\":0,\"mx\":[]}",
     NULL, 0},
    {"another domain's record",
     "{\"version\":1,\"domain\":\"example.org\",\"id\":\"1\",\"fetched\":1,\"expires\":2,\"mode\":"
     "\"enforce\","
     "\"max_age\":86400,\"mx\":[\"mx.example.org\"]}",
     "file name", 0},
    {"newline injects a policy line",
     "{\"version\":1,\"domain\":\"example.com\",\"id\":\"1\",\"fetched\":1,\"expires\":2,\"mode\":"
     "\"enforce\","
     "\"max_age\":86400,\"mx\":[\"a\\nmx: evil.example\"]}",
     "control", 0},
    {"newline in mode",
     "{\"version\":1,\"domain\":\"example.com\",\"id\":\"1\",\"fetched\":1,\"expires\":2,"
     "\"mode\":\"enforce\\nmx: x\",\"max_age\":86400,\"mx\":[\"mx.example.com\"]}",
     "control", 0},
    {"fetched in the future",
     "{\"version\":1,\"domain\":\"example.com\",\"id\":\"1\",\"fetched\":1900000000,\"expires\":"
     "1900000001,"
     "\"mode\":\"enforce\",\"max_age\":86400,\"mx\":[\"mx.example.com\"]}",
     "future", 0},
    {"expires before fetched",
     "{\"version\":1,\"domain\":\"example.com\",\"id\":\"1\",\"fetched\":10,\"expires\":5,\"mode\":"
     "\"enforce\","
     "\"max_age\":86400,\"mx\":[\"mx.example.com\"]}",
     "times", 0},
    {"lifetime longer than max_age",
     "{\"version\":1,\"domain\":\"example.com\",\"id\":\"1\",\"fetched\":10,\"expires\":100000,"
     "\"mode\":\"enforce\",\"max_age\":60,\"mx\":[\"mx.example.com\"]}",
     "times", 0},
    {"max_age 0, cached for the floor of an hour",
     "{\"version\":1,\"domain\":\"example.com\",\"id\":\"1\",\"fetched\":1799999000,"
     "\"expires\":1800002600,\"mode\":\"enforce\",\"max_age\":0,"
     "\"mx\":[\"mx.example.com\"]}",
     NULL, 0},
    {"max_age 0, kept longer than the floor",
     "{\"version\":1,\"domain\":\"example.com\",\"id\":\"1\",\"fetched\":1799999000,"
     "\"expires\":1800002602,\"mode\":\"enforce\",\"max_age\":0,"
     "\"mx\":[\"mx.example.com\"]}",
     "times", 0},
    {"invalid id",
     "{\"version\":1,\"domain\":\"example.com\",\"id\":\"not valid!\",\"fetched\":1,\"expires\":2,"
     "\"mode\":\"enforce\",\"max_age\":86400,\"mx\":[\"mx.example.com\"]}",
     "id", 0},
    {"enforce without mx",
     "{\"version\":1,\"domain\":\"example.com\",\"id\":\"1\",\"fetched\":1,\"expires\":2,\"mode\":"
     "\"enforce\","
     "\"max_age\":86400,\"mx\":[]}",
     "", 0},
    {"wrong types",
     "{\"version\":1,\"domain\":\"example.com\",\"id\":\"1\",\"fetched\":\"1\",\"expires\":2,"
     "\"mode\":\"enforce\",\"max_age\":86400,\"mx\":\"mx.example.com\"}",
     "type", 0},
    {"not JSON", "{not json", "JSON", 0},
    {"version missing",
     "{\"domain\":\"example.com\",\"id\":\"1\",\"fetched\":1,\"expires\":2,"
     "\"mode\":\"enforce\",\"max_age\":86400,\"mx\":[\"mx.example.com\"]}",
     "missing", 0},
    {"unknown version",
     "{\"version\":2,\"domain\":\"example.com\",\"id\":\"1\",\"fetched\":1,\"expires\":2,"
     "\"mode\":\"enforce\",\"max_age\":86400,\"mx\":[\"mx.example.com\"]}",
     "version", 0},
    /* Lines of "state import": no file name to match, and a valid one encodes back to the
     * very same text (export round-trips). */
    {"import: canonical line",
     "{\"version\":1,\"domain\":\"mail.example.org\",\"id\":\"20261129\",\"fetched\":"
     "1799990000,\"expires\":1800076400,\"mode\":\"enforce\",\"max_age\":86400,\"mx\":["
     "\"mx1.example.org\",\"*.backup.example.net\"]}\n",
     NULL, 1},
    {"import: testing mode",
     "{\"version\":1,\"domain\":\"xn--bcher-kva.example\",\"id\":\"a\",\"fetched\":1,"
     "\"expires\":2,\"mode\":\"testing\",\"max_age\":86400,\"mx\":[\"mx.example\"]}\n",
     NULL, 1},
    {"import: upper case domain",
     "{\"version\":1,\"domain\":\"Example.com\",\"id\":\"1\",\"fetched\":1,\"expires\":2,"
     "\"mode\":\"enforce\",\"max_age\":86400,\"mx\":[\"mx.example.com\"]}",
     "domain", 1},
    {"import: trailing dot",
     "{\"version\":1,\"domain\":\"example.com.\",\"id\":\"1\",\"fetched\":1,\"expires\":2,"
     "\"mode\":\"enforce\",\"max_age\":86400,\"mx\":[\"mx.example.com\"]}",
     "domain", 1},
    {"import: path in domain",
     "{\"version\":1,\"domain\":\"../etc/passwd\",\"id\":\"1\",\"fetched\":1,\"expires\":2,"
     "\"mode\":\"enforce\",\"max_age\":86400,\"mx\":[\"mx.example.com\"]}",
     "domain", 1},
    {"import: parent probe",
     "{\"version\":1,\"domain\":\".example.com\",\"id\":\"1\",\"fetched\":1,\"expires\":2,"
     "\"mode\":\"enforce\",\"max_age\":86400,\"mx\":[\"mx.example.com\"]}",
     "domain", 1},
    {"import: bad mode",
     "{\"version\":1,\"domain\":\"example.com\",\"id\":\"1\",\"fetched\":1,\"expires\":2,"
     "\"mode\":\"strict\",\"max_age\":86400,\"mx\":[\"mx.example.com\"]}",
     "mode", 1},
    {"import: two records on one line",
     "{\"version\":1,\"domain\":\"example.com\",\"id\":\"1\",\"fetched\":1,\"expires\":2,"
     "\"mode\":\"none\",\"max_age\":86400,\"mx\":[]} {}",
     "JSON", 1},
};

/* A record of domain larger than one page (32 long mx patterns, labels of 63). */
static void big_record(struct store_record *rec, const char *domain)
{
    memset(rec, 0, sizeof(*rec));
    snprintf(rec->domain, sizeof(rec->domain), "%s", domain);
    snprintf(rec->id, sizeof(rec->id), "1");
    rec->fetched = NOW;
    rec->expires = NOW + 86400;
    rec->policy.mode = STS_MODE_ENFORCE;
    rec->policy.max_age = 86400;
    rec->policy.nmx = STS_MAX_MX;
    /* Packed, as the parser writes them (sts.h). */
    for (unsigned i = 0; i < STS_MAX_MX; i++)
        rec->policy.mxlen +=
            (unsigned)snprintf(
                rec->policy.mx + rec->policy.mxlen, sizeof(rec->policy.mx) - rec->policy.mxlen,
                "mx%02u.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
                "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.example",
                i) +
            1;
}

static long long ms_since(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0->tv_sec) * 1000LL + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Run fn with stderr (the log) going to a file; returns what was logged (caller frees). */
static char *logged_during(void (*fn)(void *), void *arg)
{
    char path[] = "/tmp/test_store_log_XXXXXX", *text = calloc(1, 8192);
    int fd = mkstemp(path), saved = dup(2);

    fflush(stderr);
    dup2(fd, 2);
    fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    if (pread(fd, text, 8191, 0) < 0)
        text[0] = '\0';
    close(fd);
    unlink(path);
    return text;
}

struct closing {
    uv_loop_t *loop;
    char dir[64];
    int go[2]; /* the writer child waits for a byte here before it lets go */
    pid_t child;
};

static struct store *open_started(struct closing *c, uint64_t max_size, int64_t now)
{
    char err[256];
    struct store *st =
        store_open(c->loop, c->dir, (uid_t)-1, (gid_t)-1, STORE_SHARED, max_size, err, sizeof(err));

    if (st != NULL && store_start(st, now, err, sizeof(err)) < 0) {
        printf("  store_start: %s\n", err);
        store_close(st, 0);
        return NULL;
    }
    if (st == NULL)
        printf("  store_open: %s\n", err);
    return st;
}

/* Whether the reopened store has domain's record. */
static int stored(struct closing *c, const char *domain)
{
    struct store *st = open_started(c, 0, NOW);
    struct store_record rec;
    const char *why = NULL;
    int rc = st ? store_get(st, domain, NOW, &rec, &why) : -9;

    store_close(st, 0);
    return rc;
}

/* A write that finishes: the record is there after the loop's last run. */
static void close_finished(void *arg)
{
    struct closing *c = arg;
    struct store *st = open_started(c, 0, NOW);
    struct store_record rec;

    if (!check_true("close: write finished", "store opens", st != NULL))
        return;
    big_record(&rec, "done.example");
    store_put(st, &rec);
    store_close(st, 10000);
    check_int("close: write finished", "loop ran to the end", uv_run(c->loop, UV_RUN_DEFAULT), 0);
    check_int("close: write finished", "record committed", stored(c, "done.example"), 1);
}

/*
 * A commit stuck behind LMDB's write lock: a child process holds a write transaction until
 * told to let go, so the batch's worker waits in mdb_txn_begin (as in a hung fsync).
 * store_close() gives up after 1000 ms and stops the loop; then the child lets go, the batch
 * commits and the store is freed.
 */
static void close_stuck(void *arg)
{
    struct closing *c = arg;
    struct store *st = open_started(c, 0, NOW);
    struct store_record rec;
    struct timespec t0;
    int ready[2];
    char byte;

    if (!check_true("close: write stuck", "store opens", st != NULL) || pipe(ready) < 0 ||
        pipe(c->go) < 0)
        return;
    c->child = fork();
    if (c->child == 0) {
        char path[128];
        MDB_env *env;
        MDB_txn *txn;

        snprintf(path, sizeof(path), "%s/policies.mdb", c->dir);
        if (mdb_env_create(&env) != 0 || mdb_env_open(env, path, MDB_NOSUBDIR, 0640) != 0 ||
            mdb_txn_begin(env, NULL, 0, &txn) != 0)
            _exit(1);
        if (write(ready[1], "r", 1) != 1 || read(c->go[0], &byte, 1) != 1)
            _exit(1);
        mdb_txn_abort(txn);
        mdb_env_close(env);
        _exit(0);
    }
    check_int("close: write stuck", "writer child holds the lock", (int)read(ready[0], &byte, 1),
              1);
    big_record(&rec, "stuck.example");
    store_put(st, &rec);
    /* Give the threadpool time to take the batch (a busy machine is slow to), so that it
     * is inside mdb_txn_begin, not cancellable, when the deadline comes. */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (ms_since(&t0) < 300)
        usleep(10000);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    store_close(st, 1000);
    check_true("close: write stuck", "loop stopped with the write pending",
               uv_run(c->loop, UV_RUN_DEFAULT) != 0);
    check_true("close: write stuck", "within the timeout", ms_since(&t0) < 5000);
    /* Let the child go: the batch commits, then the store is freed. */
    check_int("close: write stuck", "child told", (int)write(c->go[1], "g", 1), 1);
    waitpid(c->child, NULL, 0);
    check_int("close: write stuck", "loop ends once the write does",
              uv_run(c->loop, UV_RUN_DEFAULT), 0);
    close(ready[0]);
    close(ready[1]);
    close(c->go[0]);
    close(c->go[1]);
}

static int notified_ok, notified_failed;

static void on_notify(void *arg, const char *domain, int ok)
{
    (void)arg;
    (void)domain;
    if (ok)
        notified_ok++;
    else
        notified_failed++;
}

/* Puts and a delete commit in batches; get reads them back; the count follows. */
static void round_trip(void *arg)
{
    struct closing *c = arg;
    struct store *st = open_started(c, 0, NOW);
    struct store_record rec, got;
    const char *why = NULL;
    char name[64];

    if (!check_true("round trip", "store opens", st != NULL))
        return;
    notified_ok = notified_failed = 0;
    store_set_notify(st, on_notify, NULL);
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof(name), "d%02d.example", i);
        big_record(&rec, name);
        store_put(st, &rec);
    }
    check_int("round trip", "a newer write waits while the first batch runs",
              store_queued(st, "d49.example"), 1);
    store_delete(st, "d00.example");
    uv_run(c->loop, UV_RUN_DEFAULT);
    check_int("round trip", "every put told committed", notified_ok, 50);
    check_int("round trip", "no failure", notified_failed, 0);
    check_int("round trip", "records", (int)store_count(st), 49);
    check_int("round trip", "get d07", store_get(st, "d07.example", NOW, &got, &why), 1);
    check_str("round trip", "get d07: domain", got.domain, "d07.example");
    check_int("round trip", "get d07: patterns", (int)got.policy.nmx, STS_MAX_MX);
    check_int("round trip", "deleted d00", store_get(st, "d00.example", NOW, &got, &why), 0);
    check_int("round trip", "expired is no record",
              store_get(st, "d07.example", NOW + 86400, &got, &why), 0);
    /* The sweep removes what has expired, off the loop. */
    store_sweep(st, NOW + 86400);
    uv_run(c->loop, UV_RUN_DEFAULT);
    check_int("round trip", "swept", (int)store_count(st), 0);
    store_close(st, 0);
}

/* A store bounded at 1 MiB fills up: the writes past it fail, are told and counted. */
static void map_full(void *arg)
{
    struct closing *c = arg;
    struct store *st;
    struct store_record rec;
    char name[64];

    st = open_started(c, 1 << 20, NOW);
    if (!check_true("map full", "store opens", st != NULL))
        return;
    notified_ok = notified_failed = 0;
    store_set_notify(st, on_notify, NULL);
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "full%04d.example", i);
        big_record(&rec, name);
        store_put(st, &rec);
        if (i % 100 == 99)
            uv_run(c->loop, UV_RUN_DEFAULT);
    }
    uv_run(c->loop, UV_RUN_DEFAULT);
    check_true("map full", "some committed", notified_ok > 0);
    check_true("map full", "the rest failed", notified_failed > 0);
    /* Every write is told; a failed one again at each retry (1, 2, 4 s) while the loop runs. */
    check_true("map full", "all told", notified_ok + notified_failed >= 1000);
    check_true("map full", "not all committed", notified_ok < 1000);
    /* The failed writes are held for another try, which store_close() makes (and which
     * fails again): run it out within the deadline. */
    store_close(st, 2000);
    uv_run(c->loop, UV_RUN_DEFAULT);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, "w");
    if (fp != NULL) {
        fputs(text, fp);
        fclose(fp);
    }
}

static int exists(const char *dir, const char *name)
{
    char path[256];
    struct stat sb;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stat(path, &sb) == 0;
}

/* The per-file layout moves in: valid records in, a bad one aside, an expired one gone. */
static void migration(void *arg)
{
    struct closing *c = arg;
    char sts[128];
    struct store *st;

    snprintf(sts, sizeof(sts), "%s/sts", c->dir);
    mkdir(sts, 0750);
    write_file(sts, "a.example.json", rows[0].text);
    write_file(sts, "example.com.json", rows[0].text);
    write_file(sts, "bad.example.json", "{not json");
    write_file(sts, "old.example.json",
               "{\"version\":1,\"domain\":\"old.example\",\"id\":\"1\",\"fetched\":1,\"expires\":"
               "86401,\"mode\":\"enforce\",\"max_age\":86400,\"mx\":[\"mx.example.com\"]}");
    write_file(sts, "x.example.json.tmp", "half");
    st = open_started(c, 0, NOW);
    if (!check_true("migration", "store opens", st != NULL))
        return;
    check_int("migration", "one record moved (a.example.json names another domain)",
              (int)store_count(st), 1);
    store_close(st, 0);
    check_int("migration", "moved record readable", stored(c, "example.com"), 1);
    check_true("migration", "bad file set aside", exists(sts, "bad.example.corrupt"));
    check_true("migration", "mismatched file set aside", exists(sts, "a.example.corrupt"));
    check_true("migration", "migrated file removed", !exists(sts, "example.com.json"));
    check_true("migration", "expired file removed", !exists(sts, "old.example.json"));
    check_true("migration", "temporary file removed", !exists(sts, "x.example.json.tmp"));
}

/* Garbage, and a truncated file: set aside, reported, and a fresh store serves. */
static void corruption(void *arg)
{
    struct closing *c = arg;
    struct store *st = open_started(c, 0, NOW);
    struct store_record rec;
    char path[128], cmd[256];
    char name[64];

    if (!check_true("corrupt", "store opens", st != NULL))
        return;
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "t%03d.example", i);
        big_record(&rec, name);
        store_put(st, &rec);
    }
    uv_run(c->loop, UV_RUN_DEFAULT);
    store_close(st, 0);
    snprintf(path, sizeof(path), "%s/policies.mdb", c->dir);
    check_int("corrupt: truncated", "truncate", truncate(path, 64 * 1024), 0);
    st = open_started(c, 0, NOW);
    check_true("corrupt: truncated", "store opens afresh", st != NULL);
    check_int("corrupt: truncated", "empty", st ? (int)store_count(st) : -1, 0);
    store_close(st, 0);
    snprintf(cmd, sizeof(cmd), "head -c 100000 /dev/urandom > %s", path);
    check_int("corrupt: garbage", "written", system(cmd), 0);
    st = open_started(c, 0, NOW);
    check_true("corrupt: garbage", "store opens afresh", st != NULL);
    if (st != NULL) {
        big_record(&rec, "after.example");
        store_put(st, &rec);
        uv_run(c->loop, UV_RUN_DEFAULT);
        check_int("corrupt: garbage", "serves writes", (int)store_count(st), 1);
    }
    store_close(st, 0);
}

static void run_logged(struct closing *c, const char *label, void (*fn)(void *), const char *want1,
                       const char *want2)
{
    char cmd[256], *log;

    /* Each part starts with an empty store. */
    snprintf(cmd, sizeof(cmd), "rm -f %s/policies.mdb %s/policies.mdb-lock", c->dir, c->dir);
    check_int(label, "store removed", system(cmd), 0);
    log = logged_during(fn, c);

    if (want1 != NULL && !check_true(label, want1, strstr(log, want1) != NULL))
        printf("  log: %s\n", log);
    if (want2 != NULL && !check_true(label, want2, strstr(log, want2) != NULL))
        printf("  log: %s\n", log);
    free(log);
}

static void check_close(void)
{
    struct closing c;
    uv_loop_t loop;
    char cmd[128];

    uv_loop_init(&loop);
    c.loop = &loop;
    snprintf(c.dir, sizeof(c.dir), "/tmp/test_store_XXXXXX");
    if (!check_true("close", "scratch directory", mkdtemp(c.dir) != NULL))
        return;
    log_open(LOG_INFO, 0);
    run_logged(&c, "close: write finished", close_finished, NULL, NULL);
    run_logged(&c, "close: write stuck", close_stuck,
               "drain_timeout (1000 ms) ran out with writes unfinished; "
               "policies not persisted (1): stuck.example\n",
               NULL);
    run_logged(&c, "round trip", round_trip, "49 expired records removed", NULL);
    run_logged(&c, "corrupt", corruption, "set aside as policies.mdb.corrupt-",
               "starting with an empty store");
    run_logged(&c, "migration", migration, "2 set aside, 1 expired", "1 records moved");
    snprintf(cmd, sizeof(cmd), "rm -rf %s", c.dir);
    check_int("close", "scratch removed", system(cmd), 0);
    /* A fresh directory: map_full needs a store that starts empty. */
    snprintf(c.dir, sizeof(c.dir), "/tmp/test_store_full_XXXXXX");
    if (check_true("close", "scratch directory (map full)", mkdtemp(c.dir) != NULL)) {
        run_logged(&c, "map full", map_full, "MDB_MAP_FULL", "state_max_size reached");
        snprintf(cmd, sizeof(cmd), "rm -rf %s", c.dir);
        check_int("close", "scratch removed", system(cmd), 0);
    }
    check_int("close", "loop closes", uv_loop_close(&loop), 0);
}

int main(void)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct store_record rec;
        const char *why = NULL;
        char *text;
        int rc;

        memset(&rec, 0, sizeof(rec));
        rc = store_record_parse(rows[i].text, strlen(rows[i].text),
                                rows[i].line ? NULL : "example.com.json", NOW, &rec, &why);
        if (rows[i].want != NULL) {
            check_int(rows[i].label, "set aside", rc, -1);
            check_true(rows[i].label, "reason", why != NULL && strstr(why, rows[i].want) != NULL);
        } else if (rows[i].line) {
            check_int(rows[i].label, "parses", rc, 0);
            text = store_record_encode(&rec);
            check_str(rows[i].label, "encodes back to the same line", text, rows[i].text);
            free(text);
        } else {
            check_int(rows[i].label, "loads", rc, 0);
            check_str(rows[i].label, "domain", rec.domain, "example.com");
        }
    }
    check_close();
    return check_summary("store");
}
