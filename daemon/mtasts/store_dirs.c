/*
 * The files of state_dir as the daemon's own (store_impl.h): the directory, the advisory
 * lock between a daemon and "state import", and the store files, each checked for owner,
 * mode and type without ever following a symbolic link.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_impl.h"

/*
 * The directory name (relative to at) as one of the daemon's own: created (0750) when
 * missing, opened without following a symbolic link, given to owner/group when the process
 * is root, and refused unless it is then a directory owned by the daemon's user. The user
 * owns state_dir and may have planted anything in it since the last start, so everything
 * after the open goes through the descriptor (fchown, fchmod, and *at calls relative to it),
 * never through the name again. Returns the descriptor, or -1 with a one-line reason.
 */
int store_open_dir(int at, const char *name, const char *shown, char *err, size_t errlen)
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

int store_own_dir(int at, const char *name, const char *shown, uid_t owner, gid_t group, char *err,
                  size_t errlen)
{
    uid_t want = owner != (uid_t)-1 ? owner : geteuid();
    struct stat sb;
    int fd;

    if (mkdirat(at, name, 0750) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "state_dir: cannot create %s: %s", shown, strerror(errno));
        return -1;
    }
    fd = store_open_dir(at, name, shown, err, errlen);
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
int store_take_lock(int topfd, const char *top, uid_t owner, gid_t group, int exclusive, char *err,
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

/* A store file found in state_dir: a regular file (never a link) owned by want, or -1. */
static int file_owned(const struct stat *sb, const char *top, const char *name, uid_t want,
                      char *err, size_t errlen)
{
    if (!S_ISREG(sb->st_mode)) {
        snprintf(err, errlen, "state_dir: %s/%s is %s; refusing to use it", top, name,
                 S_ISLNK(sb->st_mode) ? "a symbolic link" : "not a regular file");
        return -1;
    }
    if (sb->st_uid != want) {
        snprintf(err, errlen,
                 "state_dir: %s/%s is owned by uid %ld, not by the daemon's user (uid %ld)", top,
                 name, (long)sb->st_uid, (long)want);
        return -1;
    }
    return 0;
}

/*
 * A store file as the daemon's own: created 0640 when missing (and then given to
 * owner/group when root), never through a symbolic link, and refused unless it is a
 * regular file owned by the daemon's user. An existing file is only looked at (fstatat,
 * no open): root must not open what that user may have planted.
 */
int store_own_file(int topfd, const char *top, const char *name, uid_t owner, gid_t group,
                   char *err, size_t errlen)
{
    uid_t want = owner != (uid_t)-1 ? owner : geteuid();
    int fd = openat(topfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
    struct stat sb;

    if (fd >= 0) {
        if (owner != (uid_t)-1 && geteuid() == 0 && fchown(fd, owner, group) < 0) {
            snprintf(err, errlen, "state_dir: cannot give %s/%s to uid %ld: %s", top, name,
                     (long)owner, strerror(errno));
            close(fd);
            return -1;
        }
        close(fd);
        return 0;
    }
    if (errno != EEXIST) {
        snprintf(err, errlen, "state_dir: cannot create %s/%s: %s", top, name, strerror(errno));
        return -1;
    }
    if (fstatat(topfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
        snprintf(err, errlen, "state_dir: cannot stat %s/%s: %s", top, name, strerror(errno));
        return -1;
    }
    return file_owned(&sb, top, name, want, err, errlen);
}

/* One store file for store_check(): a regular file of the daemon's user that opens. */
static int check_file(int topfd, const char *top, const char *name, uid_t owner, char *err,
                      size_t errlen)
{
    uid_t want = owner != (uid_t)-1 ? owner : geteuid();
    struct stat sb;
    int fd;

    if (fstatat(topfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "state_dir: cannot stat %s/%s: %s", top, name, strerror(errno));
        return -1;
    }
    if (file_owned(&sb, top, name, want, err, errlen) < 0)
        return -1;
    fd = openat(topfd, name, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "state_dir: cannot open %s/%s: %s", top, name, strerror(errno));
        return -1;
    }
    close(fd);
    return 0;
}

int store_check(const char *dir, uid_t owner, char *err, size_t errlen)
{
    int topfd = openat(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), rc;

    if (topfd < 0 && errno == ENOENT)
        return 0; /* created at start */
    if (topfd < 0)
        return store_open_dir(AT_FDCWD, dir, dir, err, errlen);
    rc = check_file(topfd, dir, STORE_FILE, owner, err, errlen);
    if (rc == 0)
        rc = check_file(topfd, dir, STORE_LOCKFILE, owner, err, errlen);
    close(topfd);
    return rc;
}
