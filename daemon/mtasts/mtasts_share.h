/*
 * MTA-STS policies on the fleet tier (daemon/fleet/fleet.h, issue 13): the record read on a
 * local miss, the fleet lock taken before a fetch so that one daemon of the fleet fetches
 * while the others wait for its record, and the record written after a fetch. A value is a
 * state_dir record (store_record_encode()), read back with store_record_parse(), the same
 * validating (and fuzzed) parser as the store's, and must name the domain of its key; a
 * value that fails is logged, counted and ignored, and the next fetch replaces it.
 */
#ifndef DAEMON_MTASTS_SHARE_H
#define DAEMON_MTASTS_SHARE_H

#include "store.h"

struct fleet;
struct share_req;

enum share_result {
    SHARE_RECORD,       /* rec: a valid record from the fleet */
    SHARE_NONE,         /* share_read: none usable (missing, invalid, expired, tier failed) */
    SHARE_FETCH_LOCKED, /* share_claim: the lock is ours; fetch, then share_publish() */
    SHARE_FETCH,        /* share_claim: fetch without the lock (tier failed, waited too long) */
};

/* Called once per request unless cancelled, never before the request function returns. */
typedef void (*share_cb)(void *arg, enum share_result res, const struct store_record *rec);

/*
 * share_read - the domain's record, if one valid and unexpired is on the fleet tier. NULL
 * when the tier cannot be asked now: the caller goes on as without it.
 */
struct share_req *share_read(struct fleet *f, const char *domain, share_cb cb, void *arg);

/*
 * share_claim - before a fetch of domain's policy for TXT id: SHARE_RECORD when the fleet
 * holds a record of that id not yet half through its life (as this daemon would keep its
 * own), now or after waiting for the daemon that holds the lock (polled every
 * SHARE_POLL_MS, for at most wait_ms); SHARE_FETCH_LOCKED when the lock is ours (a lease of
 * SHARE_LEASE_MS: call share_lease_start() at once) and a second look, after taking it,
 * still finds no such record (the previous holder may have written it and let go between
 * our look and our lock); SHARE_FETCH otherwise (wait_ms passed, the tier failed). Each
 * poll that finds no record tries the lock again, so a waiter takes over within a lease
 * of a holder that died. NULL when the tier cannot be asked now: fetch.
 */
struct share_req *share_claim(struct fleet *f, const char *domain, const char *id, unsigned wait_ms,
                              share_cb cb, void *arg);

/*
 * share_lease_start - renew domain's lock, ours, every third of SHARE_LEASE_MS, for at most
 * hold_ms (after that the lease lapses by itself). share_lease_stop - no more renewals
 * (the lock stays until share_publish(), share_release() or its lease ends); NULL is fine.
 */
struct share_lease;
struct share_lease *share_lease_start(struct fleet *f, const char *domain, unsigned hold_ms);
void share_lease_stop(struct share_lease *l);

/* share_publish - write rec for the fleet (expiring with it); then release the lock if held. */
void share_publish(struct fleet *f, const struct store_record *rec, int locked);

/* share_release - release domain's lock after a fetch that gave no policy. */
void share_release(struct fleet *f, const char *domain);

/* share_cancel - cb will not be called; NULL is fine. */
void share_cancel(struct share_req *r);

/*
 * share_value_parse - a value read from the fleet tier for domain's key, which anyone who
 * can write to Redis may have shaped (no I/O; tests/fuzz/fuzz_redis.c drives it): at most
 * STORE_RECORD_MAX bytes, store_record_parse() as a record of the store, naming domain.
 * 1 with *rec a usable record, 0 when it is valid but expired at now, -1 with the reason in
 * *why.
 */
int share_value_parse(const char *domain, const char *val, size_t len, int64_t now,
                      struct store_record *rec, const char **why);

/* How often a daemon waiting for another's fetch looks for its record. */
#define SHARE_POLL_MS 50
/*
 * How long the fleet lock lasts unless its holder renews it: a daemon that dies (kill -9, a
 * crash, a cut link) while fetching holds the others back at most this long.
 */
#define SHARE_LEASE_MS 1500

#endif
