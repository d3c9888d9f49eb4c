/*
 * The migration of the per-file layout of earlier versions (state_dir/sts/DOMAIN.json, one
 * JSON record per file) into the LMDB environment, run once by store_start(): every valid
 * unexpired record moves in one write transaction; a file that is not a valid record is
 * renamed NAME.corrupt (each logged), as the old loader did; the moved and expired files
 * are removed only after the commit, so an interrupted migration (kill -9) loses nothing
 * and runs again at the next start. A file the daemon's user cannot read is a fault of
 * ours: the migration stops with an error and nothing is removed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "store_impl.h"
#include "xalloc.h"

/* read_record's answer for a file the daemon cannot open for a reason of its own. */
#define STORE_READ_LOCAL (-2)
/* read_record's answer for a file that is not there (gone since it was listed). */
#define STORE_READ_MISSING (-3)

/*
 * Read one record file; 0 with *rec filled, -1 with a reason when the file is unusable, or
 * STORE_READ_LOCAL (errno set) when the fault is ours (permissions, descriptors).
 */
static int read_record(int dirfd, const char *fname, int64_t now, struct store_record *rec,
                       const char **why)
{
    char buf[STORE_RECORD_MAX + 1];
    struct stat sb;
    size_t n = 0;
    int fd;

    /*
     * Not through a symlink, and never blocking: a FIFO or a device named like a record
     * must not hang start-up, so the file is opened O_NONBLOCK and must be a regular one.
     */
    fd = openat(dirfd, fname, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        *why = errno == ELOOP ? "a symbolic link" : "cannot open";
        if (errno == ENOENT)
            return STORE_READ_MISSING;
        /* Our permissions or our descriptors, not the record: leave it where it is. */
        return errno == EACCES || errno == EPERM || errno == EMFILE || errno == ENFILE ||
                       errno == ENOMEM
                   ? STORE_READ_LOCAL
                   : -1;
    }
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        *why = "not a regular file";
        return -1;
    }
    if (sb.st_size > STORE_RECORD_MAX) {
        close(fd);
        *why = "larger than a record can be";
        return -1;
    }
    while (n < sizeof(buf)) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - n);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            close(fd);
            *why = "cannot read";
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (n > STORE_RECORD_MAX) {
        *why = "larger than a record can be";
        return -1;
    }
    return store_record_parse(buf, n, fname, now, rec, why);
}

/* The names of sts/, for the walk (the directory is not changed while it is read). */
static char **list_names(int dirfd, size_t *count)
{
    int fd = dup(dirfd);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0;

    if (dir == NULL) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            names = xrealloc(names, cap * sizeof(*names));
        }
        names[n++] = xstrdup(de->d_name);
    }
    closedir(dir);
    *count = n;
    return names != NULL ? names : xcalloc(1, sizeof(*names));
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n > m && strcmp(s + n - m, suffix) == 0;
}

/* Counts of one migration, for its log line. */
struct moved {
    size_t moved, aside, expired;
};

/* A file that is not a valid record: renamed NAME.corrupt, as the old loader did. */
static void put_aside(int dirfd, const char *top, const char *name, const char *why,
                      struct moved *m)
{
    char aside[DOMAIN_MAX + 32];

    snprintf(aside, sizeof(aside), "%.*s.corrupt", (int)(strlen(name) - 5), name);
    if (renameat(dirfd, name, dirfd, aside) < 0)
        log_warning("state_dir: %s/sts/%s: %s; skipped (cannot set it aside: %s)", top, name,
                    why ? why : "unreadable", strerror(errno));
    else
        log_warning("state_dir: %s/sts/%s: %s; set aside as %s", top, name,
                    why ? why : "unreadable", aside);
    m->aside++;
}

/* rec into txn unless the store holds a record of the domain fetched as late or later. */
static int put_newer(struct store *st, MDB_txn *txn, const struct store_record *rec)
{
    MDB_val key = {strlen(rec->domain), (void *)rec->domain}, val;
    struct store_record old;
    const char *why;
    char *line;
    int rc = mdb_get(txn, st->dbi, &key, &val);

    if (rc == 0 &&
        store_record_parse(val.mv_data, val.mv_size, NULL, rec->fetched, &old, &why) == 0 &&
        old.fetched >= rec->fetched)
        return 0;
    line = store_record_encode(rec);
    if (line == NULL)
        return 0;
    val.mv_size = strlen(line);
    val.mv_data = line;
    rc = mdb_put(txn, st->dbi, &key, &val, 0);
    free(line);
    return rc;
}

/* Each name of sts/ into txn (or aside); *gone gets what to remove after the commit. */
static int migrate_names(struct store *st, int dirfd, MDB_txn *txn, char **names, size_t n,
                         int64_t now, char **gone, struct moved *m, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        struct store_record rec;
        const char *why = NULL;
        int rc;

        gone[i] = NULL;
        if (ends_with(names[i], ".json.tmp")) {
            /* A write that a crash interrupted: the previous record (if any) stands. */
            gone[i] = names[i];
            continue;
        }
        if (!ends_with(names[i], ".json"))
            continue;
        memset(&rec, 0, sizeof(rec));
        rc = read_record(dirfd, names[i], now, &rec, &why);
        if (rc == STORE_READ_MISSING)
            continue;
        if (rc == STORE_READ_LOCAL) {
            snprintf(err, errlen,
                     "state_dir: cannot migrate %s/sts/%s: %s (give state_dir and its files to "
                     "the daemon's user, e.g. chown -R, and start again)",
                     st->top, names[i], strerror(errno));
            return -1;
        }
        if (rc < 0) {
            put_aside(dirfd, st->top, names[i], why, m);
            continue;
        }
        gone[i] = names[i];
        if (rec.expires <= now) {
            m->expired++;
            continue;
        }
        rc = put_newer(st, txn, &rec);
        if (rc != 0) {
            snprintf(err, errlen, "state_dir: cannot migrate %s/sts/ into %s: mdb_put: %s%s",
                     st->top, STORE_FILE, mdb_strerror(rc),
                     rc == MDB_MAP_FULL ? " (raise state_max_size)" : "");
            return -1;
        }
        m->moved++;
    }
    return 0;
}

int store_migrate(struct store *st, int64_t now, char *err, size_t errlen)
{
    int dirfd = openat(st->topfd, "sts", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), rc;
    struct moved m = {0, 0, 0};
    MDB_txn *txn = NULL;
    char **names, **gone;
    size_t n = 0;

    if (dirfd < 0 && errno == ENOENT)
        return 0; /* nothing to migrate */
    if (dirfd < 0) {
        struct stat sb;
        int e = errno;

        /* O_DIRECTORY with O_NOFOLLOW says ENOTDIR for a link: name it as what it is. */
        if (fstatat(st->topfd, "sts", &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(sb.st_mode))
            e = ELOOP;
        snprintf(err, errlen, "state_dir: cannot open %s/sts to migrate it: %s", st->top,
                 e == ELOOP ? "a symbolic link" : strerror(e));
        return -1;
    }
    names = list_names(dirfd, &n);
    if (names == NULL) {
        snprintf(err, errlen, "state_dir: cannot list %s/sts: %s", st->top, strerror(errno));
        close(dirfd);
        return -1;
    }
    {
        size_t records = 0;

        for (size_t i = 0; i < n; i++)
            records += ends_with(names[i], ".json") || ends_with(names[i], ".json.tmp");
        if (records == 0) {
            /* Migrated already: what is left was set aside for the administrator. */
            for (size_t i = 0; i < n; i++)
                free(names[i]);
            free(names);
            close(dirfd);
            return 0;
        }
    }
    gone = xcalloc(n ? n : 1, sizeof(*gone));
    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc != 0)
        snprintf(err, errlen, "state_dir: cannot migrate %s/sts: mdb_txn_begin: %s", st->top,
                 mdb_strerror(rc));
    else if (migrate_names(st, dirfd, txn, names, n, now, gone, &m, err, errlen) < 0)
        rc = -1;
    else if ((rc = mdb_txn_commit(txn)) != 0) {
        txn = NULL;
        snprintf(err, errlen, "state_dir: cannot migrate %s/sts: mdb_txn_commit: %s", st->top,
                 mdb_strerror(rc));
    }
    if (rc == 0) {
        /* Committed: only now may the files go. */
        txn = NULL;
        for (size_t i = 0; i < n; i++)
            if (gone[i] != NULL && unlinkat(dirfd, gone[i], 0) < 0 && errno != ENOENT)
                log_warning("state_dir: %s/sts/%s: migrated but not removed: %s", st->top, gone[i],
                            strerror(errno));
        fsync(dirfd);
        /* Empty now unless files were set aside, which stay for the administrator. */
        unlinkat(st->topfd, "sts", AT_REMOVEDIR);
        log_info("state_dir: migrated %s/sts/ into %s: %zu records moved, %zu set aside, %zu "
                 "expired and dropped",
                 st->top, STORE_FILE, m.moved, m.aside, m.expired);
    }
    if (txn != NULL)
        mdb_txn_abort(txn);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(gone);
    close(dirfd);
    return rc == 0 ? 0 : -1;
}
