/*
 * Write-through persistence of MTA-STS policies (SPEC section 7: nothing lost across a
 * restart or kill -9). One small JSON file per domain under STATE_DIR/sts/, replaced
 * atomically (write a temporary file, fsync, rename, fsync the directory), so a crash
 * leaves either the old record or the new one, never half of either. A file that cannot
 * be read back is renamed to NAME.corrupt and reported; it never stops the daemon.
 */
#ifndef DAEMON_STORE_H
#define DAEMON_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sts.h"

struct store;

/* One persisted policy: what the TXT record and the fetch said, and when. */
struct store_record {
    char domain[DOMAIN_MAX + 1];
    char id[STS_ID_MAX + 1];
    int64_t fetched; /* wall-clock seconds */
    int64_t expires; /* fetched + max_age */
    struct sts_policy policy;
};

/*
 * store_open - use (and create, mode 0750) dir and dir/sts. When owner is not (uid_t)-1
 * and the process is root, both directories are given to owner/group so the daemon can
 * still write after dropping privileges. NULL with a one-line reason in err.
 */
struct store *store_open(const char *dir, uid_t owner, gid_t group, char *err, size_t errlen);
void store_close(struct store *st);

/* store_put - write rec through to disk. 0, or -1 with a reason in err (logged by caller). */
int store_put(struct store *st, const struct store_record *rec, char *err, size_t errlen);

/* store_delete - forget domain's record (an expired policy). Missing is not an error. */
void store_delete(struct store *st, const char *domain);

/*
 * store_load - call cb for every record still valid at now; expired records are deleted,
 * unreadable ones set aside as NAME.corrupt (each logged). Returns the number loaded.
 */
typedef void (*store_load_cb)(void *arg, const struct store_record *rec);
size_t store_load(struct store *st, int64_t now, store_load_cb cb, void *arg);

#endif
