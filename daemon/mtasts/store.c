/*
 * The MTA-STS policy store: one JSON document per domain in STATE_DIR/sts/DOMAIN.json,
 * written through on every change (the record's text: store_record.c). A record holds the
 * parsed policy, not the raw body, and is held to the RFC 8461 parser again when read.
 * Writes (put, delete) are jobs on the libuv threadpool, at most one per domain at a time;
 * the store owns the jobs and lives until the last one's after-work callback has run, or
 * (a write stuck in the kernel at shutdown) until the process leaves. The "state" commands
 * use the synchronous side: store_scan() reads without changing, store_put_now() writes.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
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
#include "xalloc.h"

/* The advisory lock between a daemon (shared) and "state import" (exclusive), in state_dir. */
#define STORE_LOCK_NAME "tlspolicyd.lock"
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Buckets of the table of domains with a write in flight (a few at a time, usually). */
#define JOB_BUCKETS 256
/* The shutdown line naming the domains left unwritten stays this short (a log line). */
#define UNWRITTEN_NAMES_MAX 480

enum op { OP_NONE, OP_PUT, OP_DELETE };

/* Where a write failed, for the log line; with the errno the worker saw. */
enum step {
    STEP_OK,
    STEP_OPEN,
    STEP_WRITE,
    STEP_SHORT,
    STEP_FSYNC,
    STEP_RENAME,
    STEP_DIRSYNC,
    STEP_UNLINK
};

/*
 * One domain's writes. The worker thread reads domain, op and text and sets step and
 * errnum; everything else is touched on the loop only, never while the worker runs.
 */
struct job {
    uv_work_t req;
    struct job *hnext;
    struct store *st;
    enum op op; /* running (or queued on the threadpool) */
    char *text; /* the encoded record of OP_PUT, with its newline */
    enum step step;
    int errnum;
    enum op next_op; /* the newest request made while op runs: last write wins */
    char *next_text;
    char domain[DOMAIN_MAX + 1];
};

struct store {
    char *dir;  /* STATE_DIR/sts */
    int dirfd;  /* -1: a read-only store without sts/ (no records) */
    int lockfd; /* the flock(2) held until the store is freed, or -1 */
    int readonly;
    uv_loop_t *loop;
    struct job *jobs[JOB_BUCKETS];
    size_t njobs;
    int closing;            /* store_close() ran: freed when njobs reaches 0 */
    int gave_up;            /* close_timer fired: writes not yet made are dropped */
    uv_timer_t close_timer; /* store_close()'s deadline; initialised when closing with jobs */
    unsigned close_timeout_ms;
};

/*
 * The directory name (relative to at) as one of the daemon's own: created (0750) when
 * missing, opened without following a symbolic link, given to owner/group when the process
 * is root, and refused unless it is then a directory owned by the daemon's user. The user
 * owns state_dir and may have planted anything in it since the last start, so everything
 * after the open goes through the descriptor (fchown, fchmod, and *at calls relative to it),
 * never through the name again. Returns the descriptor, or -1 with a one-line reason.
 */
static int open_dir(int at, const char *name, const char *shown, char *err, size_t errlen)
{
    struct stat sb;
    int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0) {
        int e = errno;

        if (fstatat(at, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(sb.st_mode))
            snprintf(err, errlen, "state_dir: %s is a symbolic link; refusing to follow it", shown);
        else if (fstatat(at, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(sb.st_mode))
            snprintf(err, errlen, "state_dir: %s is not a directory", shown);
        else
            snprintf(err, errlen, "state_dir: cannot open %s: %s", shown, strerror(e));
        errno = e;
    }
    return fd;
}

static int own_dir(int at, const char *name, const char *shown, uid_t owner, gid_t group, char *err,
                   size_t errlen)
{
    uid_t want = owner != (uid_t)-1 ? owner : geteuid();
    struct stat sb;
    int fd;

    if (mkdirat(at, name, 0750) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "state_dir: cannot create %s: %s", shown, strerror(errno));
        return -1;
    }
    fd = open_dir(at, name, shown, err, errlen);
    if (fd < 0)
        return -1;
    if (fstat(fd, &sb) < 0) {
        snprintf(err, errlen, "state_dir: cannot stat %s: %s", shown, strerror(errno));
        goto fail;
    }
    /* Root gives the directory (the real one just opened, not a link) to the daemon's user. */
    if (owner != (uid_t)-1 && geteuid() == 0 && (sb.st_uid != owner || sb.st_gid != group)) {
        if (fchown(fd, owner, group) < 0 || fstat(fd, &sb) < 0) {
            snprintf(err, errlen, "state_dir: cannot give %s to uid %ld: %s", shown, (long)owner,
                     strerror(errno));
            goto fail;
        }
    }
    if (sb.st_uid != want) {
        snprintf(err, errlen,
                 "state_dir: %s is owned by uid %ld, not by the daemon's user (uid %ld)", shown,
                 (long)sb.st_uid, (long)want);
        goto fail;
    }
    /* No one but the daemon's user writes here: a group or others could plant records. */
    if ((sb.st_mode & 07777) != (sb.st_mode & 0750) && fchmod(fd, sb.st_mode & 0750) < 0) {
        snprintf(err, errlen, "state_dir: cannot chmod %s: %s", shown, strerror(errno));
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}

/*
 * The lock file in state_dir (descriptor topfd), flock(2)ed shared or exclusive without
 * waiting. Made by root, it is given to owner, but only when this call created it: an
 * existing name may be a link the directory's user planted, and is only opened (no
 * O_TRUNC, no chown). Returns the descriptor, or -1 with a one-line reason.
 */
static int take_lock(int topfd, const char *top, uid_t owner, gid_t group, int exclusive, char *err,
                     size_t errlen)
{
    int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
    int fd = openat(topfd, STORE_LOCK_NAME, flags | O_CREAT | O_EXCL, 0640), created = fd >= 0;
    struct stat sb;

    if (fd < 0 && errno == EEXIST)
        fd = openat(topfd, STORE_LOCK_NAME, flags);
    if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "state_dir: cannot use %s/%s: %s", top, STORE_LOCK_NAME,
                 fd < 0 ? strerror(errno) : "not a regular file");
        goto fail;
    }
    if (created && owner != (uid_t)-1 && geteuid() == 0 && fchown(fd, owner, group) < 0) {
        snprintf(err, errlen, "state_dir: cannot give %s/%s to uid %ld: %s", top, STORE_LOCK_NAME,
                 (long)owner, strerror(errno));
        goto fail;
    }
    if (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0)
        return fd;
    if (errno != EWOULDBLOCK)
        snprintf(err, errlen, "state_dir: cannot lock %s/%s: %s", top, STORE_LOCK_NAME,
                 strerror(errno));
    else if (exclusive)
        snprintf(err, errlen,
                 "state_dir %s is in use by a running tlspolicyd (or query): stop it first; a "
                 "running daemon does not re-read state_dir, and its writes would race the import",
                 top);
    else
        snprintf(err, errlen,
                 "state_dir %s is locked by a running \"tlspolicyd state import\"; start again "
                 "when it has finished",
                 top);
fail:
    if (fd >= 0)
        close(fd);
    return -1;
}

/* The directories as they are, for reading only: nothing created, changed or locked. */
static int open_readonly(const char *top, const char *sub, int *topfd, int *fd, char *err,
                         size_t errlen)
{
    *topfd = open_dir(AT_FDCWD, top, top, err, errlen);
    if (*topfd < 0)
        return -1;
    *fd = open_dir(*topfd, "sts", sub, err, errlen);
    /* A state_dir without sts/ has no records yet. */
    return *fd >= 0 || errno == ENOENT ? 0 : -1;
}

struct store *store_open(uv_loop_t *loop, const char *dir, uid_t owner, gid_t group,
                         enum store_access access, char *err, size_t errlen)
{
    struct store *st = NULL;
    size_t len = strlen(dir), n = len + sizeof("/sts");
    char *top = xmalloc(len + 1), *sub = xmalloc(n);
    int topfd = -1, fd = -1, lockfd = -1;

    /* A trailing slash would make the kernel follow a link that O_NOFOLLOW must catch. */
    memcpy(top, dir, len + 1);
    while (len > 1 && top[len - 1] == '/')
        top[--len] = '\0';
    snprintf(sub, n, "%s/sts", top);
    if (access == STORE_READONLY) {
        if (open_readonly(top, sub, &topfd, &fd, err, errlen) < 0)
            goto done;
    } else {
        topfd = own_dir(AT_FDCWD, top, top, owner, group, err, errlen);
        if (topfd < 0)
            goto done;
        fd = own_dir(topfd, "sts", sub, owner, group, err, errlen);
        if (fd < 0)
            goto done;
        lockfd = take_lock(topfd, top, owner, group, access == STORE_EXCLUSIVE, err, errlen);
        if (lockfd < 0)
            goto done;
    }
    st = xcalloc(1, sizeof(*st));
    st->dir = sub;
    sub = NULL;
    st->dirfd = fd;
    fd = -1;
    st->lockfd = lockfd;
    st->readonly = access == STORE_READONLY;
    st->loop = loop;
done:
    if (fd >= 0)
        close(fd);
    if (topfd >= 0)
        close(topfd);
    free(top);
    free(sub);
    return st;
}

static void store_free(struct store *st)
{
    if (st->dirfd >= 0)
        close(st->dirfd);
    if (st->lockfd >= 0)
        close(st->lockfd);
    free(st->dir);
    free(st);
}

static void on_close_timer_closed(uv_handle_t *h)
{
    store_free(h->data);
}

/* The deadline of store_close(): name what is left, drop what has not started. */
static void on_close_timeout(uv_timer_t *t)
{
    struct store *st = t->data;
    char names[UNWRITTEN_NAMES_MAX + 1] = "";
    size_t used = 0, named = 0, stuck = 0;

    st->gave_up = 1;
    for (size_t b = 0; b < JOB_BUCKETS; b++) {
        for (struct job *j = st->jobs[b]; j != NULL; j = j->hnext) {
            size_t len = strlen(j->domain) + 2;

            if (used + len <= UNWRITTEN_NAMES_MAX) {
                used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s",
                                         named ? ", " : "", j->domain);
                named++;
            }
            /* Queued writes are cancelled; one a thread is doing cannot be (uv_cancel). */
            if (uv_cancel((uv_req_t *)&j->req) != 0)
                stuck++;
        }
    }
    log_error("state_dir: drain_timeout (%u ms) ran out with writes unfinished; policies not "
              "persisted (%zu): %s%s",
              st->close_timeout_ms, st->njobs, names, named < st->njobs ? ", ..." : "");
    /* A thread stuck in the kernel (a hung fsync) would hold the loop's last run for ever. */
    if (stuck > 0)
        uv_stop(st->loop);
}

void store_close(struct store *st, unsigned timeout_ms)
{
    if (st == NULL)
        return;
    /*
     * Queued writes are finished rather than cancelled: a policy dropped here would be
     * missing after the restart, the downgrade persistence exists to prevent (RFC 8461
     * 5.1). Each is one small file; the loop's last run waits for them, up to timeout_ms.
     */
    if (st->njobs == 0) {
        store_free(st);
        return;
    }
    st->closing = 1;
    st->close_timeout_ms = timeout_ms;
    uv_timer_init(st->loop, &st->close_timer);
    st->close_timer.data = st;
    uv_timer_start(&st->close_timer, on_close_timeout, timeout_ms, 0);
}

/* Domains are normalised A-labels ([a-z0-9.-]), so they are safe file names as they are. */
static int file_name(const char *domain, const char *suffix, char *out, size_t outlen)
{
    if (domain[0] == '\0' || domain[0] == '.' ||
        strspn(domain, "abcdefghijklmnopqrstuvwxyz"
                       "0123456789.-") != strlen(domain))
        return -1;
    return snprintf(out, outlen, "%s%s", domain, suffix) < (int)outlen ? 0 : -1;
}

static struct job **job_slot(struct store *st, const char *domain)
{
    return &st->jobs[hash_string(domain) % JOB_BUCKETS];
}

/* Write all of len bytes; a write that makes no progress is a short write, not an errno. */
static enum step write_all(int fd, const char *p, size_t len, int *errnum)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *errnum = errno;
            return STEP_WRITE;
        }
        if (n == 0)
            return STEP_SHORT;
        p += n;
        len -= (size_t)n;
    }
    return STEP_OK;
}

/* The threadpool side: the file operations of one write, and nothing of the loop's. */
static void do_job(uv_work_t *req)
{
    struct job *j = container_of(req, struct job, req);
    int dirfd = j->st->dirfd, fd;
    char name[DOMAIN_MAX + 16], tmp[DOMAIN_MAX + 16];

    j->step = STEP_OK;
    j->errnum = 0;
    /* The domain was checked by file_name() before the job was made; these cannot fail. */
    snprintf(name, sizeof(name), "%s.json", j->domain);
    snprintf(tmp, sizeof(tmp), "%s.json.tmp", j->domain);
    if (j->op == OP_DELETE) {
        if (unlinkat(dirfd, name, 0) < 0) {
            if (errno != ENOENT) {
                j->step = STEP_UNLINK;
                j->errnum = errno;
            }
        } else if (fsync(dirfd) < 0) {
            j->step = STEP_DIRSYNC;
            j->errnum = errno;
        }
        return;
    }
    /* Crash safety: the new file is complete and on disk before it replaces the old one. */
    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (fd < 0) {
        j->step = STEP_OPEN;
        j->errnum = errno;
        return;
    }
    j->step = write_all(fd, j->text, strlen(j->text), &j->errnum);
    if (j->step == STEP_OK && fsync(fd) < 0) {
        j->step = STEP_FSYNC;
        j->errnum = errno;
    }
    close(fd);
    if (j->step == STEP_OK && renameat(dirfd, tmp, dirfd, name) < 0) {
        j->step = STEP_RENAME;
        j->errnum = errno;
    }
    if (j->step != STEP_OK) {
        unlinkat(dirfd, tmp, 0);
        return;
    }
    if (fsync(dirfd) < 0) {
        j->step = STEP_DIRSYNC;
        j->errnum = errno;
    }
}

/* What a write was doing when it failed, for the log line or a command's message. */
static const char *step_what(enum step step)
{
    static const char *const what[] = {
        [STEP_OK] = "",
        [STEP_OPEN] = "cannot create the temporary file",
        [STEP_WRITE] = "cannot write the temporary file",
        [STEP_SHORT] = "short write to the temporary file (the disk took no more bytes)",
        [STEP_FSYNC] = "cannot fsync the temporary file",
        [STEP_RENAME] = "cannot rename the temporary file over the record",
        [STEP_DIRSYNC] = "cannot fsync the directory",
        [STEP_UNLINK] = "cannot remove the record",
    };

    return what[step];
}

/* On the loop: log and count what the worker did. */
static void report(const struct job *j, int status)
{
    const char *verb = j->op == OP_PUT ? "policy not persisted" : "expired record not removed";

    if (status != 0) {
        log_error("state_dir: %s/%s.json: %s: %s", j->st->dir, j->domain, verb,
                  uv_strerror(status));
    } else if (j->step != STEP_OK) {
        log_error("state_dir: %s/%s.json: %s: %s%s%s", j->st->dir, j->domain, verb,
                  step_what(j->step), j->errnum ? ": " : "", j->errnum ? strerror(j->errnum) : "");
    } else {
        log_debug("state_dir: %s: %s", j->domain,
                  j->op == OP_PUT ? "policy written" : "record removed");
    }
    metrics_store(status == 0 && j->step == STEP_OK);
}

static void queue_job(struct job *j);

static void after_job(uv_work_t *req, int status)
{
    struct job *j = container_of(req, struct job, req);
    struct store *st = j->st;
    struct job **pp;

    /* Cancelled by on_close_timeout(), which named the domain already. */
    if (!(st->gave_up && status == UV_ECANCELED))
        report(j, status);
    free(j->text);
    j->text = NULL;
    /* The newest request made meanwhile runs next: writes of one domain stay in order. */
    if (j->next_op != OP_NONE && !st->gave_up) {
        j->op = j->next_op;
        j->text = j->next_text;
        j->next_op = OP_NONE;
        j->next_text = NULL;
        queue_job(j);
        return;
    }
    for (pp = job_slot(st, j->domain); *pp != j; pp = &(*pp)->hnext)
        ;
    *pp = j->hnext;
    free(j->next_text);
    free(j);
    if (--st->njobs == 0 && st->closing)
        uv_close((uv_handle_t *)&st->close_timer, on_close_timer_closed);
}

static void queue_job(struct job *j)
{
    /* uv_queue_work() fails only without a work callback; should it, write inline. */
    if (uv_queue_work(j->st->loop, &j->req, do_job, after_job) != 0) {
        do_job(&j->req);
        after_job(&j->req, 0);
    }
}

/* Hand op (and text, which the store then owns) to domain's job; start one if none runs. */
static void submit(struct store *st, const char *domain, enum op op, char *text)
{
    struct job **slot = job_slot(st, domain), *j;

    for (j = *slot; j != NULL; j = j->hnext)
        if (strcmp(j->domain, domain) == 0)
            break;
    if (j != NULL) {
        /* A write of this domain runs: this one replaces any that waits behind it. */
        if (j->next_op != OP_NONE)
            log_debug("state_dir: %s: a newer write replaces one not yet made", domain);
        free(j->next_text);
        j->next_op = op;
        j->next_text = text;
        return;
    }
    j = xcalloc(1, sizeof(*j));
    j->st = st;
    j->op = op;
    j->text = text;
    snprintf(j->domain, sizeof(j->domain), "%s", domain);
    j->hnext = *slot;
    *slot = j;
    st->njobs++;
    queue_job(j);
}

void store_put(struct store *st, const struct store_record *rec)
{
    char name[DOMAIN_MAX + 16], *line;

    if (st->closing || st->readonly)
        return;
    if (file_name(rec->domain, ".json.tmp", name, sizeof(name)) < 0) {
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
    char name[DOMAIN_MAX + 16];

    if (!st->closing && !st->readonly && file_name(domain, ".json.tmp", name, sizeof(name)) == 0)
        submit(st, domain, OP_DELETE, NULL);
}

/* read_record's answer for a file the daemon cannot open for a reason of its own. */
#define STORE_READ_LOCAL (-2)
/* read_record's answer for a file that is not there (gone since it was listed). */
#define STORE_READ_MISSING (-3)

/*
 * Read one record file; 0 with *rec filled, -1 with a reason when the file is unusable, or
 * STORE_READ_LOCAL (errno set) when the fault is ours (permissions, descriptors).
 */
static int read_record(struct store *st, const char *fname, int64_t now, struct store_record *rec,
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
    fd = openat(st->dirfd, fname, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
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

size_t store_load(struct store *st, int64_t now, store_load_cb cb, void *arg)
{
    int fd = dup(st->dirfd);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;
    size_t loaded = 0;
    int rc;

    if (dir == NULL) {
        if (fd >= 0)
            close(fd);
        log_error("state_dir: cannot list %s: %s", st->dir, strerror(errno));
        return 0;
    }
    rewinddir(dir);
    while ((de = readdir(dir)) != NULL) {
        size_t n = strlen(de->d_name);
        struct store_record rec;
        const char *why = NULL;

        if (n > 9 && strcmp(de->d_name + n - 9, ".json.tmp") == 0) {
            /* A write that a crash interrupted: the previous record (if any) stands. */
            unlinkat(st->dirfd, de->d_name, 0);
            continue;
        }
        if (n <= 5 || strcmp(de->d_name + n - 5, ".json") != 0)
            continue;
        memset(&rec, 0, sizeof(rec));
        rc = read_record(st, de->d_name, now, &rec, &why);
        if (rc == STORE_READ_MISSING)
            continue;
        if (rc == STORE_READ_LOCAL) {
            /*
             * A record the daemon's user may not read (written by another user, e.g. before
             * an upgrade changed user) is not corrupt: setting it aside would lose a policy
             * in force (RFC 8461 5.1). It stays, and the log says how to repair it.
             */
            log_error("state_dir: %s/%s: cannot open: %s; left in place, not loaded (give "
                      "state_dir and its files to the daemon's user, e.g. chown -R, and restart)",
                      st->dir, de->d_name, strerror(errno));
            continue;
        }
        if (rc < 0) {
            char aside[DOMAIN_MAX + 32];

            snprintf(aside, sizeof(aside), "%.*s.corrupt", (int)(n - 5), de->d_name);
            if (renameat(st->dirfd, de->d_name, st->dirfd, aside) < 0)
                log_warning("state_dir: %s/%s: %s; skipped (cannot set it aside: %s)", st->dir,
                            de->d_name, why ? why : "unreadable", strerror(errno));
            else
                log_warning("state_dir: %s/%s: %s; set aside as %s", st->dir, de->d_name,
                            why ? why : "unreadable", aside);
            continue;
        }
        if (rec.expires <= now) {
            log_info("state_dir: policy of %s expired; removed", rec.domain);
            unlinkat(st->dirfd, de->d_name, 0);
            continue;
        }
        cb(arg, &rec);
        loaded++;
    }
    closedir(dir);
    return loaded;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of the record files of the directory, sorted: the domain order of store_scan(). */
static char **list_records(struct store *st, size_t *count)
{
    int fd = dup(st->dirfd);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0;

    if (dir == NULL) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    rewinddir(dir);
    while ((de = readdir(dir)) != NULL) {
        size_t len = strlen(de->d_name);

        if (len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            names = xrealloc(names, cap * sizeof(*names));
        }
        names[n++] = xstrdup(de->d_name);
    }
    closedir(dir);
    if (n > 0)
        qsort(names, n, sizeof(*names), cmp_names);
    *count = n;
    return names != NULL ? names : xcalloc(1, sizeof(*names));
}

int store_scan(struct store *st, int64_t now, store_scan_cb cb, void *arg, char *err, size_t errlen)
{
    struct store_record rec;
    size_t n = 0;
    char **names;

    if (st->dirfd < 0)
        return 0;
    names = list_records(st, &n);
    if (names == NULL) {
        snprintf(err, errlen, "state_dir: cannot list %s: %s", st->dir, strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const char *why = NULL;
        int rc;

        /* The record's name is its domain: the file name without ".json". */
        memset(&rec, 0, sizeof(rec));
        rc = read_record(st, names[i], now, &rec, &why);
        names[i][strlen(names[i]) - 5] = '\0';
        if (rc == STORE_READ_LOCAL)
            cb(arg, names[i], NULL, strerror(errno));
        else if (rc < 0 && rc != STORE_READ_MISSING)
            cb(arg, names[i], NULL, why ? why : "unreadable");
        else if (rc == 0 && rec.expires <= now)
            cb(arg, names[i], NULL, "expired");
        else if (rc == 0)
            cb(arg, names[i], &rec, NULL);
        free(names[i]);
    }
    free(names);
    return 0;
}

int store_get(struct store *st, const char *domain, int64_t now, struct store_record *rec,
              const char **why)
{
    char name[DOMAIN_MAX + 16];
    int rc;

    if (st->dirfd < 0 || file_name(domain, ".json", name, sizeof(name)) < 0)
        return 0;
    memset(rec, 0, sizeof(*rec));
    rc = read_record(st, name, now, rec, why);
    if (rc == STORE_READ_LOCAL) {
        *why = strerror(errno);
        return -1;
    }
    /* What store_load() would set aside or remove does not stand in a newer record's way. */
    return rc == 0 && rec->expires > now ? 1 : 0;
}

int store_put_now(struct store *st, const struct store_record *rec, char *err, size_t errlen)
{
    struct job j;
    char name[DOMAIN_MAX + 16];

    if (st->readonly || st->dirfd < 0) {
        snprintf(err, errlen, "the store is open read-only");
        return -1;
    }
    if (file_name(rec->domain, ".json.tmp", name, sizeof(name)) < 0) {
        snprintf(err, errlen, "not a storable domain name");
        return -1;
    }
    /* The worker's steps, on this thread: the same crash-safe write as store_put(). */
    memset(&j, 0, sizeof(j));
    j.st = st;
    j.op = OP_PUT;
    j.text = store_record_encode(rec);
    if (j.text == NULL) {
        snprintf(err, errlen, "cannot encode the record");
        return -1;
    }
    snprintf(j.domain, sizeof(j.domain), "%s", rec->domain);
    do_job(&j.req);
    free(j.text);
    if (j.step == STEP_OK)
        return 0;
    snprintf(err, errlen, "%s/%s.json: %s%s%s", st->dir, rec->domain, step_what(j.step),
             j.errnum ? ": " : "", j.errnum ? strerror(j.errnum) : "");
    return -1;
}
