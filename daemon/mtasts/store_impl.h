/*
 * What store.c and store_migrate.c share: the store itself. Not for other folders' use.
 */
#ifndef DAEMON_STORE_IMPL_H
#define DAEMON_STORE_IMPL_H

#include <lmdb.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "store.h"

/* The environment's data file in state_dir, and LMDB's lock file beside it. */
#define STORE_FILE "policies.mdb"
#define STORE_LOCKFILE "policies.mdb-lock"

struct pend;
struct batch;

struct store {
    char *top;    /* state_dir, for messages */
    int topfd;    /* state_dir's descriptor: every file operation is relative to it */
    int lockfd;   /* the flock(2) held until the store is freed, or -1 */
    int readonly; /* STORE_READONLY */
    uint64_t max_size;
    uint64_t want_size; /* a new state_max_size from a reload, applied between batches; 0: none */
    MDB_env *env;       /* NULL: not started, or a read-only store without a file (no records) */
    MDB_dbi dbi;
    unsigned psize; /* LMDB's page size, once the environment is open (store_whole) */
    MDB_txn *rtxn;  /* store_get()'s read transaction, reset between reads */
    MDB_txn *wtxn;  /* store_batch_begin()'s write transaction, or NULL */
    uv_loop_t *loop;
    /* Writes not yet taken by a batch: FIFO, and hashed by domain to coalesce them. */
    struct pend **qbuckets;
    struct pend *qhead, **qtail;
    size_t nqueued;
    struct batch *running; /* the one batch on the threadpool, or NULL */
    store_notify_cb notify;
    void *notify_arg;
    int fail_rc;   /* the last batch's failure, or 0 when it committed */
    int logged_rc; /* the failure last logged, and when (loop ms) */
    uint64_t logged_at;
    int announced;         /* the failure under way was logged: its end is too */
    unsigned long nfailed; /* writes failed since the last commit that succeeded */
    /* Failed writes, tried again after 1, 2, then every 4 s (store.c, retry_*). */
    struct pend *retry;
    uv_timer_t *retry_timer; /* allocated on the first failure; freed by its close callback */
    unsigned retry_n;
    int closing;            /* store_close() ran: freed when nothing is queued or running */
    int gave_up;            /* close_timer fired: writes not yet made are dropped */
    uv_timer_t close_timer; /* store_close()'s deadline; initialised when closing with work */
    unsigned close_timeout_ms;
    int sweeping; /* a sweep is under way: the next batch carries its next chunk */
    int64_t sweep_now;
    char sweep_from[DOMAIN_MAX + 1];
};

/*
 * store_migrate - the per-file layout of earlier versions (state_dir/sts/DOMAIN.json) into
 * the environment (store_start()); 0 when there is none or it moved, -1 with a reason.
 */
int store_migrate(struct store *st, int64_t now, char *err, size_t errlen);

/* The advisory lock between a daemon (shared) and "state import" (exclusive), in state_dir. */
#define STORE_LOCK_NAME "tlspolicyd.lock"

/*
 * store_dirs.c: state_dir's directory (store_open_dir: as it is; store_own_dir: created
 * 0750, given to owner when root, checked), the flock(2)ed lock file, and a store file
 * (created 0640 and given to owner, or an existing regular file of the daemon's user).
 * Descriptors (or 0 for store_own_file), or -1 with a one-line reason in err.
 */
int store_open_dir(int at, const char *name, const char *shown, char *err, size_t errlen);
int store_own_dir(int at, const char *name, const char *shown, uid_t owner, gid_t group, char *err,
                  size_t errlen);
int store_take_lock(int topfd, const char *top, uid_t owner, gid_t group, int exclusive, char *err,
                    size_t errlen);
int store_own_file(int topfd, const char *top, const char *name, uid_t owner, gid_t group,
                   char *err, size_t errlen);

/* store_env_error - whether an LMDB result means the file is not (or no longer) LMDB's. */
int store_env_corrupt(int rc);

/* store_storable - domain is a key the store takes: a normalised A-label name. */
int store_storable(const char *domain);

/* store_what - a word for an LMDB result or errno, for a log line or a message. */
const char *store_what(int rc);

/* store_parse_value - the value at key, parsed and held to the key: 0 with *rec, or -1 with
 * a reason (store_record_parse(), and the record's domain must be its key). */
int store_parse_value(const MDB_val *key, const MDB_val *val, int64_t now, struct store_record *rec,
                      const char **why);

/* store_gauges - the size and record count of the open environment, for the metrics. */
void store_gauges(struct store *st, MDB_txn *txn);

#endif
