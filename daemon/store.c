/*
 * The MTA-STS policy store: one JSON document per domain in STATE_DIR/sts/DOMAIN.json,
 * written through on every change. A record holds the parsed policy, not the raw body;
 * on load it is rebuilt as policy text and run through the RFC 8461 parser again, so a
 * record edited or damaged on disk is held to the same rules as one fetched from the web.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "xalloc.h"

/* A record file is small: a policy has at most STS_MAX_MX patterns of a domain name each. */
#define STORE_FILE_MAX (64 * 1024)
#define STORE_VERSION 1

struct store {
    char *dir; /* STATE_DIR/sts */
    int dirfd;
};

static int make_dir(const char *path, uid_t owner, gid_t group, char *err, size_t errlen)
{
    if (mkdir(path, 0750) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "state_dir: cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    if (owner != (uid_t)-1 && geteuid() == 0 && chown(path, owner, group) < 0) {
        snprintf(err, errlen, "state_dir: cannot give %s to uid %ld: %s", path, (long)owner,
                 strerror(errno));
        return -1;
    }
    return 0;
}

struct store *store_open(const char *dir, uid_t owner, gid_t group, char *err, size_t errlen)
{
    struct store *st;
    size_t n = strlen(dir) + sizeof("/sts");
    char *sub = xmalloc(n);
    int fd;

    snprintf(sub, n, "%s/sts", dir);
    if (make_dir(dir, owner, group, err, errlen) < 0 ||
        make_dir(sub, owner, group, err, errlen) < 0) {
        free(sub);
        return NULL;
    }
    fd = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "state_dir: cannot open %s: %s", sub, strerror(errno));
        free(sub);
        return NULL;
    }
    st = xcalloc(1, sizeof(*st));
    st->dir = sub;
    st->dirfd = fd;
    return st;
}

void store_close(struct store *st)
{
    if (st == NULL)
        return;
    close(st->dirfd);
    free(st->dir);
    free(st);
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

int store_put(struct store *st, const struct store_record *rec, char *err, size_t errlen)
{
    char name[DOMAIN_MAX + 16], tmp[DOMAIN_MAX + 16];
    json_t *doc = NULL, *mx = json_array();
    char *text = NULL;
    int fd = -1, rc = -1;
    size_t len;

    if (file_name(rec->domain, ".json", name, sizeof(name)) < 0 ||
        file_name(rec->domain, ".json.tmp", tmp, sizeof(tmp)) < 0) {
        snprintf(err, errlen, "store: %s: not a storable domain name", rec->domain);
        goto done;
    }
    for (unsigned i = 0; i < rec->policy.nmx; i++)
        json_array_append_new(mx, json_string(rec->policy.mx[i]));
    doc = json_pack("{s:i, s:s, s:s, s:I, s:I, s:s, s:I, s:O}", "version", STORE_VERSION, "domain",
                    rec->domain, "id", rec->id, "fetched", (json_int_t)rec->fetched, "expires",
                    (json_int_t)rec->expires, "mode", sts_mode_name(rec->policy.mode), "max_age",
                    (json_int_t)rec->policy.max_age, "mx", mx);
    if (doc == NULL || (text = json_dumps(doc, JSON_COMPACT)) == NULL) {
        snprintf(err, errlen, "store: %s: cannot encode the record", rec->domain);
        goto done;
    }
    len = strlen(text);
    /* Crash safety: the new file is complete and on disk before it replaces the old one. */
    fd = openat(st->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1 ||
        fsync(fd) < 0) {
        snprintf(err, errlen, "store: cannot write %s/%s: %s", st->dir, tmp, strerror(errno));
        unlinkat(st->dirfd, tmp, 0);
        goto done;
    }
    if (renameat(st->dirfd, tmp, st->dirfd, name) < 0 || fsync(st->dirfd) < 0) {
        snprintf(err, errlen, "store: cannot replace %s/%s: %s", st->dir, name, strerror(errno));
        unlinkat(st->dirfd, tmp, 0);
        goto done;
    }
    rc = 0;
done:
    if (fd >= 0)
        close(fd);
    free(text);
    json_decref(doc);
    json_decref(mx);
    return rc;
}

void store_delete(struct store *st, const char *domain)
{
    char name[DOMAIN_MAX + 16];

    if (file_name(domain, ".json", name, sizeof(name)) == 0 && unlinkat(st->dirfd, name, 0) == 0)
        fsync(st->dirfd);
}

/* Read one record file; 0 with *rec filled, or -1 with a reason. */
static int read_record(struct store *st, const char *fname, struct store_record *rec,
                       const char **why)
{
    char buf[STORE_FILE_MAX + 1], policy[STS_MAX_MX * (STS_PATTERN_MAX + 8) + 128];
    const char *domain, *id, *mode;
    json_int_t fetched, expires, max_age;
    json_t *doc, *mx, *v;
    json_error_t jerr;
    size_t i, off;
    ssize_t n;
    int fd, rc = -1;

    fd = openat(st->dirfd, fname, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        *why = "cannot open";
        return -1;
    }
    n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n < 0 || n > STORE_FILE_MAX) {
        *why = n < 0 ? "cannot read" : "larger than a record can be";
        return -1;
    }
    buf[n] = '\0';
    doc = json_loadb(buf, (size_t)n, 0, &jerr);
    if (doc == NULL) {
        *why = "not JSON";
        return -1;
    }
    if (json_unpack(doc, "{s:s, s:s, s:I, s:I, s:s, s:I, s:o}", "domain", &domain, "id", &id,
                    "fetched", &fetched, "expires", &expires, "mode", &mode, "max_age", &max_age,
                    "mx", &mx) < 0 ||
        !json_is_array(mx)) {
        *why = "fields missing or of the wrong type";
        goto done;
    }
    /* The file name is the domain: a record cannot speak for another domain. */
    if (file_name(domain, ".json", policy, sizeof(policy)) < 0 || strcmp(policy, fname) != 0) {
        *why = "domain does not match the file name";
        goto done;
    }
    {
        char idcopy[STS_ID_MAX + 16], txt[STS_ID_MAX + 32];
        const char *twhy;

        snprintf(txt, sizeof(txt), "v=STSv1; id=%.40s", id);
        if (strlen(id) > STS_ID_MAX || sts_txt_parse(txt, strlen(txt), idcopy, &twhy) != 0) {
            *why = "invalid policy id";
            goto done;
        }
    }
    /* Rebuild the policy text and hold it to RFC 8461 3.2 again. */
    off = (size_t)snprintf(policy, sizeof(policy), "version: STSv1\nmode: %.10s\nmax_age: %lld\n",
                           mode, (long long)max_age);
    json_array_foreach(mx, i, v)
    {
        if (!json_is_string(v) || strlen(json_string_value(v)) > STS_PATTERN_MAX ||
            off + STS_PATTERN_MAX + 8 >= sizeof(policy)) {
            *why = "invalid mx list";
            goto done;
        }
        off +=
            (size_t)snprintf(policy + off, sizeof(policy) - off, "mx: %s\n", json_string_value(v));
    }
    if (sts_policy_parse(policy, off, &rec->policy, why) != 0)
        goto done;
    if (fetched < 0 || expires < fetched ||
        expires - fetched > (json_int_t)rec->policy.max_age + 1) {
        *why = "inconsistent times";
        goto done;
    }
    snprintf(rec->domain, sizeof(rec->domain), "%s", domain);
    snprintf(rec->id, sizeof(rec->id), "%s", id);
    rec->fetched = fetched;
    rec->expires = expires;
    rc = 0;
done:
    json_decref(doc);
    return rc;
}

size_t store_load(struct store *st, int64_t now, store_load_cb cb, void *arg)
{
    int fd = dup(st->dirfd);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;
    size_t loaded = 0;

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
        if (read_record(st, de->d_name, &rec, &why) < 0) {
            char aside[DOMAIN_MAX + 32];

            snprintf(aside, sizeof(aside), "%.*s.corrupt", (int)(n - 5), de->d_name);
            renameat(st->dirfd, de->d_name, st->dirfd, aside);
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
