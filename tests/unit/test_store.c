/*
 * Unit table for store_record_parse() (daemon/mtasts/store.c): which record texts state_dir may
 * hold and be loaded, and why the others are set aside. Then store_close() on a loop: a write
 * finishes, and a write stuck in the kernel is given up after the timeout, named in the log.
 */
#include "check.h"
#include "log.h"
#include "store.h"

#include <fcntl.h>
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

/* A record of domain whose file is larger than one page (32 long mx patterns). */
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
                "mx%02u.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
                "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.example",
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
    int fifo; /* read end of the FIFO the stuck write writes into */
};

/* A write that finishes: the file is there after the loop's last run. */
static void close_finished(void *arg)
{
    struct closing *c = arg;
    char err[256], path[200];
    struct store *st =
        store_open(c->loop, c->dir, (uid_t)-1, (gid_t)-1, STORE_SHARED, err, sizeof(err));
    struct store_record rec;
    struct stat sb;

    big_record(&rec, "done.example");
    store_put(st, &rec);
    store_close(st, 10000);
    check_int("close: write finished", "loop ran to the end", uv_run(c->loop, UV_RUN_DEFAULT), 0);
    snprintf(path, sizeof(path), "%s/sts/done.example.json", c->dir);
    check_int("close: write finished", "record on disk", stat(path, &sb), 0);
}

/*
 * A write stuck in the kernel: the temporary file is a FIFO whose one-page buffer nobody
 * reads, so the worker blocks in write() (as in a hung fsync). store_close() gives up after
 * 100 ms and stops the loop; then the FIFO is read, the write ends and the store is freed.
 */
static void close_stuck(void *arg)
{
    struct closing *c = arg;
    char err[256], path[200], buf[4096];
    struct store *st =
        store_open(c->loop, c->dir, (uid_t)-1, (gid_t)-1, STORE_SHARED, err, sizeof(err));
    struct store_record rec;
    struct timespec t0;
    int queued = 0;

    snprintf(path, sizeof(path), "%s/sts/stuck.example.json.tmp", c->dir);
    mkfifo(path, 0600);
    c->fifo = open(path, O_RDONLY | O_NONBLOCK);
    fcntl(c->fifo, F_SETPIPE_SZ, 4096);
    big_record(&rec, "stuck.example");
    store_put(st, &rec);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* Wait (up to 10 s) until the worker has filled the pipe and waits in write(). */
    while (ioctl(c->fifo, FIONREAD, &queued) == 0 && queued < 4096 && ms_since(&t0) < 10000)
        usleep(1000);
    check_int("close: write stuck", "worker blocked", queued, 4096);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    store_close(st, 100);
    check_true("close: write stuck", "loop stopped with the write pending",
               uv_run(c->loop, UV_RUN_DEFAULT) != 0);
    check_true("close: write stuck", "within the timeout", ms_since(&t0) < 5000);
    /* Let the worker finish (fsync of a FIFO fails: nothing is stored), then clean up. */
    fcntl(c->fifo, F_SETFL, 0);
    while (read(c->fifo, buf, sizeof(buf)) > 0)
        ;
    close(c->fifo);
    check_int("close: write stuck", "loop ends once the write does",
              uv_run(c->loop, UV_RUN_DEFAULT), 0);
}

static void check_close(void)
{
    struct closing c;
    uv_loop_t loop;
    char *log;

    uv_loop_init(&loop);
    c.loop = &loop;
    snprintf(c.dir, sizeof(c.dir), "/tmp/test_store_XXXXXX");
    if (!check_true("close", "scratch directory", mkdtemp(c.dir) != NULL))
        return;
    log_open(LOG_INFO, 0);
    log = logged_during(close_finished, &c);
    check_true("close: write finished", "nothing left unwritten",
               strstr(log, "drain_timeout") == NULL);
    free(log);
    log = logged_during(close_stuck, &c);
    if (!check_true("close: write stuck", "logged with the domain",
                    strstr(log, "drain_timeout (100 ms) ran out with writes unfinished; "
                                "policies not persisted (1): stuck.example\n") != NULL))
        printf("  log: %s\n", log);
    free(log);
    check_int("close", "loop closes", uv_loop_close(&loop), 0);
    {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", c.dir);
        check_int("close", "scratch removed", system(cmd), 0);
    }
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
