/*
 * The synchronous side of the store, for the "state" commands (no loop running):
 * store_scan() reads every record for "state export" without changing anything, and
 * store_batch_*() write the batches of "state import" in one transaction each.
 */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_impl.h"

int store_scan(struct store *st, int64_t now, store_scan_cb cb, void *arg, char *err, size_t errlen)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val key, val;
    int rc;

    if (st->env == NULL)
        return 0;
    rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0 && (rc = mdb_cursor_open(txn, st->dbi, &cur)) != 0)
        mdb_txn_abort(txn);
    if (rc != 0) {
        snprintf(err, errlen, "state_dir: cannot read %s/%s: %s", st->top, STORE_FILE,
                 store_what(rc));
        return -1;
    }
    /* Keys in LMDB's order (bytes compared): domain order, as "state export" promises. */
    while ((rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) == 0) {
        struct store_record rec;
        const char *why = NULL;
        char name[DOMAIN_MAX + 1];

        snprintf(name, sizeof(name), "%.*s",
                 (int)(key.mv_size > DOMAIN_MAX ? DOMAIN_MAX : key.mv_size),
                 (const char *)key.mv_data);
        if (store_parse_value(&key, &val, now, &rec, &why) < 0)
            cb(arg, name, NULL, why ? why : "invalid");
        else if (rec.expires <= now)
            cb(arg, name, NULL, "expired");
        else
            cb(arg, name, &rec, NULL);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (rc != MDB_NOTFOUND) {
        snprintf(err, errlen, "state_dir: cannot read %s/%s: %s", st->top, STORE_FILE,
                 store_what(rc));
        return -1;
    }
    return 0;
}

int store_batch_begin(struct store *st, char *err, size_t errlen)
{
    int rc;

    if (st->readonly || st->env == NULL) {
        snprintf(err, errlen, "the store is open read-only");
        return -1;
    }
    rc = mdb_txn_begin(st->env, NULL, 0, &st->wtxn);
    if (rc != 0) {
        st->wtxn = NULL;
        snprintf(err, errlen, "%s/%s: mdb_txn_begin: %s", st->top, STORE_FILE, store_what(rc));
        return -1;
    }
    return 0;
}

int store_batch_put(struct store *st, const struct store_record *rec, char *err, size_t errlen)
{
    MDB_val key = {strlen(rec->domain), (void *)rec->domain}, val;
    char *line;
    int rc;

    if (st->wtxn == NULL || !store_storable(rec->domain)) {
        snprintf(err, errlen, st->wtxn ? "not a storable domain name" : "no batch open");
        return -1;
    }
    line = store_record_encode(rec);
    if (line == NULL) {
        snprintf(err, errlen, "cannot encode the record");
        return -1;
    }
    val.mv_size = strlen(line);
    val.mv_data = line;
    rc = mdb_put(st->wtxn, st->dbi, &key, &val, 0);
    free(line);
    if (rc != 0) {
        /* LMDB has set the transaction's error flag: every later put and the commit would
         * only say MDB_BAD_TXN, hiding this cause. */
        mdb_txn_abort(st->wtxn);
        st->wtxn = NULL;
        snprintf(err, errlen, "%s/%s: mdb_put: %s%s", st->top, STORE_FILE, store_what(rc),
                 rc == MDB_MAP_FULL ? " (state_max_size reached)" : "");
        return -2;
    }
    return 0;
}

int store_batch_commit(struct store *st, char *err, size_t errlen)
{
    int rc;

    if (st->wtxn == NULL)
        return 0;
    rc = mdb_txn_commit(st->wtxn);
    st->wtxn = NULL;
    if (rc != 0) {
        snprintf(err, errlen, "%s/%s: mdb_txn_commit: %s%s", st->top, STORE_FILE, store_what(rc),
                 rc == MDB_MAP_FULL ? " (state_max_size reached)" : "");
        return -1;
    }
    return 0;
}
