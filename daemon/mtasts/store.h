/*
 * Write-through persistence of MTA-STS policies (SPEC section 7: nothing lost across a
 * restart or kill -9). One small JSON file per domain under STATE_DIR/sts/, replaced
 * atomically (write a temporary file, fsync, rename, fsync the directory), so a crash
 * leaves either the old record or the new one, never half of either. The writes run on the
 * libuv threadpool so that fsync never stalls the event loop. A file that cannot be read
 * back is renamed to NAME.corrupt and reported; it never stops the daemon.
 */
#ifndef DAEMON_STORE_H
#define DAEMON_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

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
 * store_open - use (and create, mode 0750) dir and dir/sts, the daemon's own directories.
 * Neither is ever reached through a symbolic link (a trailing one is refused, not
 * followed); both are opened and then changed only through their descriptors, and every
 * later file operation is relative to dir/sts's descriptor (openat, renameat, unlinkat).
 * When owner is not (uid_t)-1 and the process is root, both are given to owner/group so the
 * daemon can still write after dropping privileges. Each must then be a directory owned by
 * owner (or by the effective user when owner is (uid_t)-1); group and other write and all
 * other permission bits are cleared (mode at most 0750). Writes run on loop's threadpool
 * (uv_queue_work), never on the loop itself. NULL with a one-line reason in err.
 */
struct store *store_open(uv_loop_t *loop, const char *dir, uid_t owner, gid_t group, char *err,
                         size_t errlen);

/*
 * store_close - no more store_put() or store_delete() after this. Writes already asked for
 * are finished, not dropped (a policy handed to store_put() reaches the disk), for up to
 * timeout_ms (drain_timeout); the store is freed once the last has finished, so the caller
 * must run the loop until its handles and requests are gone (uv_run(UV_RUN_DEFAULT) does)
 * before uv_loop_close(). Without writes in flight the store is freed at once.
 * When timeout_ms runs out, one error line names the domains whose writes are unfinished,
 * the writes not yet started are dropped, and if a thread is still inside one (a hung
 * fsync on NFS or a dying disk) the store stops the loop (uv_stop): uv_run() then returns
 * non-zero with that write still pending, and the caller should leave without waiting for
 * it (_exit: libuv's exit-time destructor joins its threads, the stuck one included).
 */
void store_close(struct store *st, unsigned timeout_ms);

/*
 * store_put - write rec through to disk, behind the caller: the record is encoded now (rec
 * is not kept) and written by the threadpool. Writes of one domain run one at a time, in
 * order; a request made while one runs waits, and a newer request replaces a waiting one
 * (the last write wins). The outcome is logged and counted (metrics_store) on the loop.
 */
void store_put(struct store *st, const struct store_record *rec);

/* store_delete - forget domain's record (an expired policy), as store_put(). Missing is fine. */
void store_delete(struct store *st, const char *domain);

/*
 * store_record_parse - read one record file's text buf[0..len) (no I/O; the fuzzer's entry
 * point): JSON with the policy's fields, held to RFC 8461 3.2 again by rebuilding the policy
 * text, the domain equal to the file name fname minus ".json", no control characters, times
 * consistent and not in the future of now. 0 with *rec filled, or -1 with a reason.
 */
int store_record_parse(const char *buf, size_t len, const char *fname, int64_t now,
                       struct store_record *rec, const char **why);

/*
 * store_load - call cb for every record still valid at now; expired records are deleted,
 * unreadable ones (not a regular file, not a valid record, fetched in the future) set aside
 * as NAME.corrupt (each logged). Synchronous: for start-up, before the loop runs, and after
 * the switch to the daemon's user, so root never reads, renames or removes what that user
 * may have planted. Returns the number loaded.
 */
typedef void (*store_load_cb)(void *arg, const struct store_record *rec);
size_t store_load(struct store *st, int64_t now, store_load_cb cb, void *arg);

#endif
