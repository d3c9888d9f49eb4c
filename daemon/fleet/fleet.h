/*
 * daemon/fleet/: the shared tier of a fleet of daemons, on Redis (issue 13). Depends on
 * util/ and config/ only; mtasts/ and requiretls/ use it.
 *
 * fleet: one connection to a Redis server (hiredis' async API on the daemon's libuv loop),
 * AUTH from a file read before the privilege drop, a key prefix per deployment, and five
 * commands: GET, SET with an expiry, a short lock (SET NX PX with a random token), its
 * renewal (compare and PEXPIRE) and its release (compare and delete). Values are opaque bytes; the
 * callers encode and validate them. Every command has a deadline (redis_timeout): when the oldest
 * command in flight passes it the connection is dropped, every command in flight fails, and the
 * tier reconnects with a doubling backoff. While it is not connected, commands are refused at once,
 * so a dead or hung Redis costs a lookup at most one redis_timeout.
 */
#ifndef DAEMON_FLEET_H
#define DAEMON_FLEET_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct config;
struct fleet;
struct fleet_req;

/*
 * Room for the key prefix (redis_prefix) and for one key: prefix, kind, ':' and a name of
 * up to 512 bytes (a probe's HOST/ADDR/N-FP is at most 319). A longer name is cut.
 */
#define FLEET_PREFIX_MAX 64
#define FLEET_KEY_MAX (FLEET_PREFIX_MAX + 16 + 512)

/* A value is at most this long; a longer one is refused as invalid, and a reply that
 * outgrows it while being read drops the connection (fleet.c, on_guard). */
#define FLEET_VALUE_MAX (64 * 1024)

enum fleet_status {
    FLEET_OK,   /* GET: the value is in val/len; LOCK: the lock is ours */
    FLEET_NONE, /* GET: no such key; LOCK: another holder has it */
    FLEET_FAIL, /* error reply, timeout or connection lost (logged and counted by the tier) */
};

/*
 * fleet_reply_status - what a reply other than an error means to the command's caller:
 * FLEET_NONE for nil, FLEET_OK with the bytes in *val and *len for a string or status reply
 * (binary safe: they may hold anything Redis was given), FLEET_OK with no value (NULL, 0)
 * for an integer or an array, FLEET_FAIL for an error reply. No I/O (tests/fuzz/fuzz_redis.c).
 */
struct redisReply;
enum fleet_status fleet_reply_status(const struct redisReply *rep, const char **val, size_t *len);

/* Called once per request unless cancelled; val valid during the call (GET with FLEET_OK). */
typedef void (*fleet_cb)(void *arg, enum fleet_status st, const char *val, size_t len);

/*
 * fleet_check_config - what -t and start-up check: the redis endpoint parses (config), and
 * redis_auth_file, when set, can be read now and holds one line "PASSWORD" or "USER
 * PASSWORD", and is not readable by group or others. 0, or -1 with a one-line reason.
 */
int fleet_check_config(const struct config *cfg, char *err, size_t errlen);

/*
 * fleet_create - the tier for cfg's redis key; *out NULL when redis is empty (off). Reads
 * redis_auth_file now (call it before the privilege drop) and starts connecting on loop.
 * 0, or -1 with a one-line reason in err.
 * fleet_destroy - fail nothing back: pending callbacks are dropped, the connection closed;
 * the memory goes once the loop has run the close callbacks.
 */
int fleet_create(uv_loop_t *loop, const struct config *cfg, struct fleet **out, char *err,
                 size_t errlen);
void fleet_destroy(struct fleet *f);

/*
 * fleet_get - GET PREFIX KIND:NAME. Returns NULL when the tier cannot take a command now
 * (not connected: counted as unavailable; cb is not called); else cb runs later, once.
 */
struct fleet_req *fleet_get(struct fleet *f, const char *kind, const char *name, fleet_cb cb,
                            void *arg);

/*
 * fleet_lock - SET PREFIX KIND-lock:NAME TOKEN NX PX ttl_ms, TOKEN this daemon's own: FLEET_OK
 * when the lock was free and is now ours, FLEET_NONE when another holds it. As fleet_get().
 */
struct fleet_req *fleet_lock(struct fleet *f, const char *kind, const char *name, unsigned ttl_ms,
                             fleet_cb cb, void *arg);

/* fleet_set - SET PREFIX KIND:NAME val PX ttl_ms, behind the caller (the outcome is counted). */
void fleet_set(struct fleet *f, const char *kind, const char *name, const char *val, size_t len,
               uint64_t ttl_ms);

/* fleet_unlock - delete KIND-lock:NAME if it still holds this daemon's token, behind the caller. */
void fleet_unlock(struct fleet *f, const char *kind, const char *name);

/*
 * fleet_renew - set KIND-lock:NAME to expire ttl_ms from now if it still holds this daemon's
 * token (a lease renewal), behind the caller; a lock already lost stays lost.
 */
void fleet_renew(struct fleet *f, const char *kind, const char *name, unsigned ttl_ms);

/* fleet_cancel - cb will not be called; NULL is fine. */
void fleet_cancel(struct fleet_req *r);

/* fleet_loop - the loop the tier runs on. */
uv_loop_t *fleet_loop(const struct fleet *f);

/* fleet_connected - 1 while commands are taken (connected, authenticated, answering). */
int fleet_connected(const struct fleet *f);

#endif
