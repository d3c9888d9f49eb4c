/*
 * The MTA-STS service's insides, shared by its two halves and nothing else: mtasts.c keeps
 * the cache (entries by domain, eviction, the store and the sweep) and answers lookups;
 * mtasts_work.c runs one entry's work (discovery, the policy host's addresses, the fetch,
 * the fleet tier's read and lock) and ends it with mtasts_work_done().
 */
#ifndef DAEMON_MTASTS_INT_H
#define DAEMON_MTASTS_INT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "lru.h"
#include "mtasts.h"
#include "store.h"
#include "waitlist.h"

struct work; /* mtasts_work.c */

struct entry;

struct mtasts_lookup {
    struct waitlist_link link; /* on the entry's waiters */
    struct entry *e;
    mtasts_cb cb;
    void *arg;
};

/* The reason line's room in struct mtasts_facts, which bounds the cache's copy too. */
#define WHY_MAX MTASTS_WHY_MAX

struct entry {
    struct entry *hnext;
    struct mtasts_svc *svc;
    /*
     * The policy in force (state POLICY) or the last outcome: an allocation of struct
     * mtasts_facts up to its policy's last pattern and no more (set_policy), its text heap
     * strings sized to their content (or no_text). Cached answers hand out this very struct.
     */
    struct mtasts_facts *f;
    int64_t checked;            /* when discovery last completed */
    int64_t fail_until;         /* no new work before this after a failure */
    int used;                   /* a lookup was answered from the policy since it was fetched */
    int unsaved;                /* the policy's store write is queued, running or failed */
    unsigned char local_faults; /* work that failed on our side in a row (mtasts_work.c) */
    struct work *work;
    struct waitlist_link *waiters;
    struct lru_link idle; /* on svc->idle while evictable (see idle_update) */
    int on_idle;
    int answering; /* mtasts_work_done() is calling back: the entry must outlive the calls */
    char domain[]; /* sized to the name (create) */
};

struct mtasts_svc {
    uv_loop_t *loop;
    struct resolver *r;
    struct fetch_svc *fetch;
    struct store *store;
    struct fleet *fleet; /* NULL: no fleet tier */
    struct mtasts_opts opts;
    struct entry **buckets;
    size_t nbuckets;
    /* Kept as entries come and go, so a scrape of /metrics walks nothing. */
    unsigned long nentries, npolicies;
    /* Entries that may be evicted, least recently used at the tail. */
    struct lru idle;
    int full_logged;           /* the cap was passed by policies in force alone (logged once) */
    unsigned long store_fault; /* lookups answered TEMP since state_dir stopped being readable */
    unsigned long completions, fetches;
    uv_timer_t sweep;
    unsigned sweeps; /* of the cache; every STORE_SWEEP_EVERY-th also sweeps the store */
};

/* The store's expired records are swept every this many cache sweeps (an hour). */
#define STORE_SWEEP_EVERY 60

/* ---- mtasts.c: the entry and its facts ---- */

int64_t mtasts_now(void); /* wall-clock seconds */
void mtasts_set_state(struct entry *e, enum mtasts_state state);
/* e's facts become pol's (one allocation sized to the policy's patterns). */
void mtasts_set_policy(struct entry *e, const struct sts_policy *pol);
/* *p becomes a heap copy of s, cut to max bytes ("" shares a constant). */
void mtasts_set_text(const char **p, const char *s, size_t max);
void mtasts_set_why(struct entry *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Puts e on the eviction list, or takes it off, as its state now says. */
void mtasts_idle_update(struct entry *e);
int mtasts_has_policy(const struct entry *e, int64_t now);
/* rec, from state_dir or the fleet tier, becomes the entry's policy in force. */
void mtasts_take_record(struct entry *e, const struct store_record *rec, const char *from);
void mtasts_entry_free(struct entry *e);

/* ---- mtasts_work.c: one entry's work ---- */

/* Start discovery for e. Returns 1 when the work completed before returning. */
int mtasts_start_work(struct entry *e);
/* The work is over: answer every waiter with the entry's facts (e may be freed). */
void mtasts_work_done(struct work *w);
/* Stop w's requests and free it (the service is going away; nobody is answered). */
void mtasts_work_cancel(struct work *w);

#endif
