/*
 * The state commands (state_cmd.h). export walks the store in one read transaction
 * (store_scan) and prints each record as store_record_encode() writes it, in domain order,
 * so two exports of the same policies are byte for byte equal. import holds every line to
 * store_record_parse(), the parser a stored record meets when it is read (RFC 8461 3.2
 * again), and writes what passes in transactions of IMPORT_BATCH lines (store_batch_*),
 * each durable when committed, under the store's exclusive lock: a daemon holding state_dir
 * makes import refuse, not race it.
 */
#include "state_cmd.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmdline.h"
#include "privs.h"
#include "store.h"

/* Lines per write transaction of "state import": one commit (two fsyncs) per batch. */
#define IMPORT_BATCH 1000

struct state_cmd {
    struct cmdline cl;
    struct store *st;
    int64_t now;
    size_t done;              /* records exported or imported */
    size_t skipped;           /* records or lines left out, each reported */
    size_t failed;            /* of the skipped lines, those whose write failed */
    size_t pending;           /* records written to the open batch, not yet committed */
    unsigned long first_line; /* the open batch's first line */
    int broken;               /* a commit failed: the rest of the input is not imported */
};

static void usage(void)
{
    fprintf(stderr, "usage: tlspolicyd state export [-c FILE] [-o key=value]...\n"
                    "       tlspolicyd state import [-c FILE] [-o key=value]... FILE|-\n");
}

/*
 * The store of the configured state_dir, opened as the daemon would open it (given to
 * user when root), and then, like the daemon, this process becomes user: what import
 * writes belongs to the daemon's user, and nothing the user planted is read as root.
 */
static int open_store(struct state_cmd *sc, enum store_access access)
{
    const struct config *cfg = &sc->cl.cfg;
    char err[512];
    uid_t uid;
    gid_t gid;

    if (cfg->state_dir[0] == '\0') {
        fprintf(stderr, "tlspolicyd: state_dir is empty: no policies persist; set it (-c FILE "
                        "or -o state_dir=DIR)\n");
        return -1;
    }
    privs_owner(cfg, &uid, &gid);
    if (geteuid() == 0 && cfg->user[0] != '\0' && uid == (uid_t)-1) {
        fprintf(stderr, "tlspolicyd: user = %s: no such user\n", cfg->user);
        return -1;
    }
    sc->st = store_open(&sc->cl.loop, cfg->state_dir, uid, gid, access,
                        (uint64_t)cfg->state_max_size_mb << 20, err, sizeof(err));
    /* As the daemon's user: a corrupt store set aside, the old layout migrated. */
    if (sc->st == NULL || privs_drop(cfg, err, sizeof(err)) < 0 ||
        store_start(sc->st, sc->now, err, sizeof(err)) < 0) {
        fprintf(stderr, "tlspolicyd: %s\n", err);
        return -1;
    }
    return 0;
}

static void on_record(void *arg, const char *name, const struct store_record *rec, const char *why)
{
    struct state_cmd *sc = arg;
    char *line = rec != NULL ? store_record_encode(rec) : NULL;

    if (line == NULL) {
        fprintf(stderr, "tlspolicyd: state export: %s: %s; skipped\n", name,
                why ? why : "cannot encode the record");
        sc->skipped++;
        return;
    }
    fputs(line, stdout);
    free(line);
    sc->done++;
}

static int export_cmd(struct state_cmd *sc)
{
    char err[512];

    if (open_store(sc, STORE_READONLY) < 0)
        return 2;
    if (store_scan(sc->st, sc->now, on_record, sc, err, sizeof(err)) < 0) {
        fprintf(stderr, "tlspolicyd: %s\n", err);
        return 2;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "tlspolicyd: state export: cannot write the output: %s\n", strerror(errno));
        return 2;
    }
    fprintf(stderr, "tlspolicyd: state export: exported %zu, skipped %zu\n", sc->done, sc->skipped);
    return 0;
}

long state_read_line(FILE *fp, char *buf, size_t max)
{
    size_t n = 0;
    int c, nul = 0;

    while ((c = getc_unlocked(fp)) != EOF && c != '\n') {
        if (c == '\0')
            nul = 1;
        if (n < max)
            buf[n] = (char)c;
        n++;
    }
    if (c == EOF && n == 0)
        return STATE_LINE_EOF;
    if (n > max)
        return STATE_LINE_LONG;
    buf[n] = '\0';
    return nul ? STATE_LINE_NUL : (long)n;
}

static void skip_line(struct state_cmd *sc, unsigned long lineno, const char *domain,
                      const char *why)
{
    fprintf(stderr, "tlspolicyd: state import: line %lu: %s%s%s; skipped\n", lineno,
            domain ? domain : "", domain ? ": " : "", why);
    sc->skipped++;
}

int state_import_parse(const char *buf, long n, int64_t now, struct store_record *rec,
                       const char **why)
{
    memset(rec, 0, sizeof(*rec));
    if (n == STATE_LINE_LONG) {
        *why = "longer than a record can be";
        return -1;
    }
    if (n == STATE_LINE_NUL) {
        *why = "NUL byte in the line";
        return -1;
    }
    if (n < 0 || buf[strspn(buf, " \t\r")] == '\0')
        return 0;
    if (store_record_parse(buf, (size_t)n, NULL, now, rec, why) < 0) {
        rec->domain[0] = '\0';
        return -1;
    }
    /* RFC 8461 5.1: an expired policy is no policy; the daemon would remove it at start. */
    if (rec->expires <= now) {
        *why = "expired";
        return -1;
    }
    return 1;
}

/* The open batch, lines first_line to lineno, was lost (err says why): say so, and stop. */
static void lose_batch(struct state_cmd *sc, unsigned long lineno, const char *err)
{
    fprintf(stderr, "tlspolicyd: state import: lines %lu to %lu: %zu records not imported: %s\n",
            sc->first_line, lineno, sc->pending, err);
    sc->skipped += sc->pending;
    sc->failed += sc->pending;
    sc->pending = 0;
    sc->first_line = 0;
    sc->broken = 1;
}

/*
 * One line: parsed as a stored record is, then written unless skipped or older than the
 * record the store holds for the domain (the newer "fetched" wins; a tie keeps the stored).
 */
static int import_line(struct state_cmd *sc, unsigned long lineno, const char *buf, long n)
{
    struct store_record rec, old;
    const char *why = NULL;
    char err[512], reason[600];

    switch (state_import_parse(buf, n, sc->now, &rec, &why)) {
    case 0:
        return 0;
    case -1:
        skip_line(sc, lineno, rec.domain[0] ? rec.domain : NULL, why);
        return 0;
    default:
        break;
    }
    switch (store_get(sc->st, rec.domain, sc->now, &old, &why)) {
    case -1:
        snprintf(reason, sizeof(reason), "cannot read the stored record: %s", why);
        skip_line(sc, lineno, rec.domain, reason);
        return 0;
    case 1:
        if (old.fetched >= rec.fetched) {
            snprintf(reason, sizeof(reason), "not newer than the stored record (fetched %lld)",
                     (long long)old.fetched);
            skip_line(sc, lineno, rec.domain, reason);
            return 0;
        }
        break;
    default:
        break;
    }
    switch (store_batch_put(sc->st, &rec, err, sizeof(err))) {
    case 0:
        sc->pending++;
        return 0;
    case -1:
        snprintf(reason, sizeof(reason), "not written: %s", err);
        skip_line(sc, lineno, rec.domain, reason);
        sc->failed++;
        return 0;
    default:
        /* LMDB refused it: the batch is lost with this line, and the import stops here. */
        sc->pending++;
        lose_batch(sc, lineno, err);
        return -1;
    }
}

/* Commit the open batch (if any) and count it; -1 after a failed commit, which lost it. */
static int commit_batch(struct state_cmd *sc, unsigned long lineno)
{
    char err[512];

    if (store_batch_commit(sc->st, err, sizeof(err)) < 0) {
        lose_batch(sc, lineno, err);
        return -1;
    }
    sc->first_line = 0;
    sc->done += sc->pending;
    sc->pending = 0;
    return 0;
}

/* One line of the input into the open batch (opened when none is); full batches commit. */
static int import_one(struct state_cmd *sc, unsigned long lineno, const char *buf, long n)
{
    char err[512];

    if (sc->first_line == 0) {
        if (store_batch_begin(sc->st, err, sizeof(err)) < 0) {
            fprintf(stderr, "tlspolicyd: state import: %s\n", err);
            sc->broken = 1;
            return -1;
        }
        sc->first_line = lineno;
    }
    if (import_line(sc, lineno, buf, n) < 0)
        return -1;
    if (lineno - sc->first_line + 1 < IMPORT_BATCH)
        return 0;
    return commit_batch(sc, lineno);
}

static int import_cmd(struct state_cmd *sc, const char *path)
{
    static char buf[STORE_RECORD_MAX + 1];
    FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
    unsigned long lineno = 0;
    int status = 2;
    long n;

    /* The input is opened as the invoking user, before any switch to the daemon's. */
    if (fp == NULL) {
        fprintf(stderr, "tlspolicyd: cannot open %s: %s\n", path, strerror(errno));
        return 2;
    }
    if (open_store(sc, STORE_EXCLUSIVE) < 0)
        goto done;
    while ((n = state_read_line(fp, buf, STORE_RECORD_MAX)) != STATE_LINE_EOF) {
        lineno++;
        if (import_one(sc, lineno, buf, n) < 0)
            break;
    }
    /* What was read before a read error is committed: each line stands on its own. */
    if (!sc->broken && sc->first_line != 0)
        commit_batch(sc, lineno);
    if (ferror(fp)) {
        fprintf(stderr, "tlspolicyd: cannot read %s: %s\n", path, strerror(errno));
        goto done;
    }
    if (sc->broken)
        fprintf(stderr,
                "tlspolicyd: state import: stopped at line %lu; the batches committed "
                "before it stay imported\n",
                lineno);
    printf("imported %zu, skipped %zu\n", sc->done, sc->skipped);
    status = sc->broken || (sc->failed > 0 && sc->done == 0) ? 2 : sc->skipped > 0 ? 1 : 0;
done:
    if (fp != stdin)
        fclose(fp);
    return status;
}

int state_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct state_cmd sc;
    const char *verb = argc > 1 ? argv[1] : "";
    int ch, status = 2, import = strcmp(verb, "import") == 0;

    if (!import && strcmp(verb, "export") != 0) {
        usage();
        return 2;
    }
    memset(&sc, 0, sizeof(sc));
    sc.now = (int64_t)time(NULL);
    cmdline_init(&sc.cl, argc);
    /* The options follow the verb: argv + 1 is "export ..." or "import ...". */
    optind = 1;
    while ((ch = getopt_long(argc - 1, argv + 1, CMDLINE_SHORTOPTS, longopts, NULL)) != -1) {
        if (ch == 'j' || !cmdline_option(&sc.cl, ch, optarg)) {
            usage();
            goto done;
        }
    }
    if (optind != argc - 1 - (import ? 1 : 0)) {
        usage();
        goto done;
    }
    if (cmdline_start(&sc.cl) < 0)
        goto done;
    status = import ? import_cmd(&sc, argv[optind + 1]) : export_cmd(&sc);
done:
    /* Closing the store frees it at once: nothing was handed to the threadpool. */
    store_close(sc.st, 0);
    cmdline_close_loop(&sc.cl);
    cmdline_free(&sc.cl);
    return status;
}
