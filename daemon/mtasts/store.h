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

/* How a command or the daemon uses the store (store_open()). */
enum store_access {
    STORE_SHARED,    /* the daemon and "query": beside others of their kind, not an import */
    STORE_EXCLUSIVE, /* "state import": alone, refused while a daemon (or query) holds it */
    STORE_READONLY,  /* "state export": nothing created, changed or locked; no writes */
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
 * (uv_queue_work), never on the loop itself.
 * access STORE_SHARED or STORE_EXCLUSIVE also takes an advisory lock (flock(2) on
 * dir/tlspolicyd.lock, created when missing and given to owner like the directories), held
 * until the store is freed: a running daemon's shared lock refuses an import, an import's
 * exclusive one refuses a daemon's start. STORE_READONLY only opens what exists (dir must,
 * dir/sts may be missing: no records), follows no link either, and writes nothing.
 * NULL with a one-line reason in err.
 */
struct store *store_open(uv_loop_t *loop, const char *dir, uid_t owner, gid_t group,
                         enum store_access access, char *err, size_t errlen);

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

/* The record format "version" (store_record_encode() writes it, store_record_parse() wants it). */
#define STORE_VERSION 1

/* A record's text is at most this long: STS_MAX_MX patterns of a domain name each, and more. */
#define STORE_RECORD_MAX (64 * 1024)

/*
 * store_record_parse - read one record's text buf[0..len) (no I/O; the fuzzer's entry
 * point): JSON with today's fields (version 1, domain, id, fetched, expires, mode, max_age,
 * mx), the policy held to RFC 8461 3.2 again by rebuilding the policy text, the domain a
 * normalised domain name equal to the file name fname minus ".json" (fname NULL: a line of
 * "state import", no file to match), no control characters, times consistent and not in
 * the future of now. Expired records parse (the caller decides). 0 with *rec filled, or -1
 * with a reason.
 */
int store_record_parse(const char *buf, size_t len, const char *fname, int64_t now,
                       struct store_record *rec, const char **why);

/*
 * store_record_encode - rec as the store writes it and "state export" prints it: one line of
 * compact JSON, fields in the order above, ending with a newline. The caller frees it; NULL
 * when it cannot be encoded.
 */
char *store_record_encode(const struct store_record *rec);

/*
 * store_load - call cb for every record still valid at now; expired records are deleted,
 * unreadable ones (not a regular file, not a valid record, fetched in the future) set aside
 * as NAME.corrupt (each logged). Synchronous: for start-up, before the loop runs, and after
 * the switch to the daemon's user, so root never reads, renames or removes what that user
 * may have planted. Returns the number loaded.
 */
typedef void (*store_load_cb)(void *arg, const struct store_record *rec);
size_t store_load(struct store *st, int64_t now, store_load_cb cb, void *arg);

/*
 * store_scan - read-only walk for "state export": cb(arg, name, rec, NULL) for every record
 * valid and unexpired at now, cb(arg, name, NULL, why) for every one skipped (unreadable,
 * invalid, expired), in domain order; name is the record's domain as the store knows it.
 * Nothing is renamed, removed or written. 0, or -1 with a one-line reason in err when the
 * store cannot be listed at all.
 */
typedef void (*store_scan_cb)(void *arg, const char *name, const struct store_record *rec,
                              const char *why);
int store_scan(struct store *st, int64_t now, store_scan_cb cb, void *arg, char *err,
               size_t errlen);

/*
 * store_get - domain's record as it stands, for "state import" to compare with. 1 with *rec
 * filled when a record valid and unexpired at now is stored, 0 when none is (missing,
 * expired or unusable: one the daemon would remove or set aside), -1 with a reason when it
 * cannot be read for a fault of ours (permissions, descriptors). Synchronous.
 */
int store_get(struct store *st, const char *domain, int64_t now, struct store_record *rec,
              const char **why);

/*
 * store_put_now - write rec on the calling thread, crash-safe as store_put() (temporary file,
 * fsync, rename, fsync of the directory), for commands that have no loop running. 0, or -1
 * with a one-line reason in err. Not on a store another write of the domain is under way in.
 */
int store_put_now(struct store *st, const struct store_record *rec, char *err, size_t errlen);

#endif
