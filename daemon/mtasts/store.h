/*
 * Persistence of MTA-STS policies (SPEC section 7: nothing lost across a restart or kill -9)
 * in one LMDB environment, STATE_DIR/policies.mdb (and its lock file policies.mdb-lock):
 * key the domain, value the record's compact JSON line (store_record_encode()). A write is
 * durable once mdb_txn_commit() has returned 0 (no MDB_NOSYNC): LMDB's copy-on-write pages
 * and its two meta pages leave either the old or the new transaction after a crash, never
 * half of one. Writes queue up on the loop and one threadpool job commits each batch, so
 * no fsync stalls the event loop. Reads are lookups in the memory map, on the caller's
 * thread: a page in the page cache costs a few microseconds, a cold page one disk read
 * (about 0.1 ms on an SSD, several ms on a spinning disk) before the record is parsed.
 * A store file LMDB cannot read (not LMDB, wrong version, truncated) is renamed to
 * policies.mdb.corrupt-UNIXTIME, reported, and replaced by an empty one; a fault of ours
 * (permissions, space, descriptors) is an error, never "no policy". The per-file layout of
 * earlier versions (STATE_DIR/sts/DOMAIN.json) is migrated into the environment once.
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
 * store_open - use (and create, mode 0750) dir, the daemon's own directory, and the store
 * files in it (created 0640, the environment itself opened by store_start()). Neither dir
 * nor a store file is ever reached through a symbolic link (refused, not followed). When
 * owner is not (uid_t)-1 and the process is root, dir and the files this call creates are
 * given to owner/group so the daemon can still write after dropping privileges. dir must
 * then be a directory owned by owner (or by the effective user when owner is (uid_t)-1);
 * group and other write and all other permission bits are cleared (mode at most 0750); an
 * existing store file must be a regular file owned by the same user. Writes run on loop's
 * threadpool (uv_queue_work), never on the loop itself. max_size bounds the environment
 * (state_max_size, LMDB's map size; 0: STORE_MAX_SIZE_DEFAULT).
 * access STORE_SHARED or STORE_EXCLUSIVE also takes an advisory lock (flock(2) on
 * dir/tlspolicyd.lock, created when missing and given to owner like the directory), held
 * until the store is freed: a running daemon's shared lock refuses an import, an import's
 * exclusive one refuses a daemon's start. STORE_READONLY only opens what exists (dir must,
 * the store file may be missing: no records), follows no link either, and writes nothing.
 * NULL with a one-line reason in err.
 */
struct store *store_open(uv_loop_t *loop, const char *dir, uid_t owner, gid_t group,
                         enum store_access access, uint64_t max_size, char *err, size_t errlen);

/*
 * store_check - what "tlspolicyd -t" can tell of dir without changing it: the store files,
 * where they exist, must be regular files of owner's (the effective user's when owner is
 * (uid_t)-1) that this process can open for writing. 0, or -1 with a one-line reason.
 */
int store_check(const char *dir, uid_t owner, char *err, size_t errlen);

/* state_max_size's default: 4 GiB of address space; the file grows only as records come. */
#define STORE_MAX_SIZE_DEFAULT (4ULL << 30)

/*
 * store_start - open the LMDB environment, after the switch to the daemon's user (root
 * never opens what that user may have planted). A file LMDB finds invalid or corrupted is
 * set aside (policies.mdb.corrupt-UNIXTIME, one error line) and an empty store created;
 * then an old per-file layout (dir/sts/DOMAIN.json) is migrated: every valid unexpired record
 * moves into the environment in one transaction, invalid ones are set aside as
 * NAME.corrupt, and the files are removed only after the commit (one log line with the
 * counts), so an interrupted migration runs again in full at the next start. A read-only
 * store migrates nothing and reads neither layout's records if the environment is missing.
 * 0, or -1 with a one-line reason in err (permissions, space, descriptors: a fault of
 * ours, not a corrupt file).
 */
int store_start(struct store *st, int64_t now, char *err, size_t errlen);

/*
 * store_set_max_size - a new bound (state_max_size, from a reload), applied on the loop as
 * soon as no batch is committing (LMDB's map is resized while no transaction uses it); the
 * writes that failed for want of room are then tried again at once. Logged.
 */
void store_set_max_size(struct store *st, uint64_t max_size);

/* store_count - records in the store now (LMDB keeps the count; constant time). */
size_t store_count(struct store *st);

/*
 * store_close - no more store_put() or store_delete() after this. Writes already asked for
 * are committed, not dropped (a policy handed to store_put() reaches the disk), for up to
 * timeout_ms (drain_timeout); the store is freed once the last batch has committed, so the
 * caller must run the loop until its handles and requests are gone (uv_run(UV_RUN_DEFAULT)
 * does) before uv_loop_close(). Without writes in flight the store is freed at once.
 * When timeout_ms runs out, one error line names the domains whose writes are unfinished,
 * the writes not yet started are dropped, and if a thread is still inside a commit (a hung
 * fsync on NFS or a dying disk, or another writer holding LMDB's write lock) the store stops
 * the loop (uv_stop): uv_run() then returns non-zero with that batch still pending, and the
 * caller should leave without waiting for it (_exit: libuv's exit-time destructor joins its
 * threads, the stuck one included).
 */
void store_close(struct store *st, unsigned timeout_ms);

/*
 * store_put - write rec through to disk, behind the caller: the record is encoded now (rec
 * is not kept) and queued; a threadpool job commits the queue in one write transaction
 * (STORE_BATCH_MAX writes at most), one batch at a time, so writes of one domain stay in
 * order and a newer request replaces a queued one (the last write wins). The outcome is
 * logged and counted (metrics_store) on the loop, and told to the notify callback.
 */
void store_put(struct store *st, const struct store_record *rec);

/* store_delete - forget domain's record (an expired policy), as store_put(). Missing is fine. */
void store_delete(struct store *st, const char *domain);

/* The most writes one transaction commits; more wait for the next batch. */
#define STORE_BATCH_MAX 10000

/*
 * store_set_notify - cb(arg, domain, ok) on the loop once a store_put() of domain has
 * committed (ok 1) or failed (ok 0); cb NULL: no more calls.
 * store_queued - 1 when a write of domain waits for a batch not yet started.
 */
typedef void (*store_notify_cb)(void *arg, const char *domain, int ok);
void store_set_notify(struct store *st, store_notify_cb cb, void *arg);
int store_queued(struct store *st, const char *domain);

/*
 * store_sweep - remove the records expired at now (and any that no longer parse, each
 * named in the log) off the loop, in transactions of STORE_SWEEP_CHUNK records, behind
 * the queued writes. A sweep already under way is not restarted.
 */
void store_sweep(struct store *st, int64_t now);
#define STORE_SWEEP_CHUNK 5000

/* The record format "version" (store_record_encode() writes it, store_record_parse() wants it). */
#define STORE_VERSION 1

/* A record's text is at most this long: STS_MAX_MX patterns of a domain name each, and more. */
#define STORE_RECORD_MAX (64 * 1024)

/*
 * store_record_parse - read one record's text buf[0..len) (no I/O; the fuzzer's entry
 * point): JSON with today's fields (version 1, domain, id, fetched, expires, mode, max_age,
 * mx), the policy held to RFC 8461 3.2 again by rebuilding the policy text, the domain a
 * normalised domain name equal to the file name fname minus ".json" (fname NULL: a value of
 * the store or a line of "state import", whose caller compares the key itself), no control
 * characters, times consistent and not in the future of now. Expired records parse (the
 * caller decides). 0 with *rec filled, or -1 with a reason.
 */
int store_record_parse(const char *buf, size_t len, const char *fname, int64_t now,
                       struct store_record *rec, const char **why);

/*
 * store_value_parse - a value of the store as read from LMDB under its key (klen bytes, not
 * NUL-terminated, whatever a damaged file holds): store_record_parse() with no file name,
 * and the record's domain equal to the key. 0 with *rec, or -1 with a reason. No I/O
 * (tests/fuzz/fuzz_store.c).
 */
int store_value_parse(const void *key, size_t klen, const void *val, size_t vlen, int64_t now,
                      struct store_record *rec, const char **why);

/*
 * store_record_encode - rec as the store writes it and "state export" prints it: one line of
 * compact JSON, fields in the order above, ending with a newline. The caller frees it; NULL
 * when it cannot be encoded.
 */
char *store_record_encode(const struct store_record *rec);

/*
 * store_scan - read-only walk for "state export", one read transaction in key (domain)
 * order: cb(arg, name, rec, NULL) for every record valid and unexpired at now,
 * cb(arg, name, NULL, why) for every one skipped (invalid, expired); name is the record's
 * key. Nothing is changed. 0, or -1 with a one-line reason in err.
 */
typedef void (*store_scan_cb)(void *arg, const char *name, const struct store_record *rec,
                              const char *why);
int store_scan(struct store *st, int64_t now, store_scan_cb cb, void *arg, char *err,
               size_t errlen);

/*
 * store_get - domain's record as it stands: 1 with *rec filled when a record valid and
 * unexpired at now is stored, 0 when none is (missing, expired, or invalid: logged once by
 * the sweep that removes it), -1 with a reason when the store cannot be read (a fault of
 * ours, or a page LMDB finds corrupted). Synchronous, on the calling thread; inside an open
 * store_batch_begin() it sees the batch's own writes.
 */
int store_get(struct store *st, const char *domain, int64_t now, struct store_record *rec,
              const char **why);

/*
 * The synchronous writes of "state import" (no loop running): store_batch_begin() opens a
 * write transaction, store_batch_put() adds rec to it, store_batch_commit() commits it
 * (durable when it returns 0). Each 0, or -1 with a one-line reason in err. A put refused
 * before LMDB saw it (a name the store cannot hold, a record too long) leaves the batch
 * open; one LMDB refused (MDB_MAP_FULL: state_max_size reached, or an I/O error) returns -2:
 * LMDB has marked the transaction failed, so the batch is aborted here and lost, and err
 * says why. A failed commit loses the batch too.
 */
int store_batch_begin(struct store *st, char *err, size_t errlen);
int store_batch_put(struct store *st, const struct store_record *rec, char *err, size_t errlen);
int store_batch_commit(struct store *st, char *err, size_t errlen);

#endif
