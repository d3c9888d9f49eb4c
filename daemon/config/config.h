/*
 * daemon/config/: what the administrator gives the daemon. config (keys, defaults, checks),
 * overrides (the local policy table), cafile (CA bundles read before the privilege drop).
 * Depends on util/ and proto/ only.
 *
 * Configuration (SPEC section 3): a main.cf-style "key = value" file, overridden by
 * repeated "-o key=value", on top of built-in defaults. Every key is known here, with its
 * default and its check; an unknown key, a bad value or an unusable endpoint is a one-line
 * error naming the file and line.
 */
#ifndef DAEMON_CONFIG_H
#define DAEMON_CONFIG_H

#include <stddef.h>
#include <stdio.h>

enum endpoint_kind { ENDPOINT_UNIX, ENDPOINT_INET };

struct endpoint {
    enum endpoint_kind kind;
    char path[108]; /* unix: socket path (sun_path limit) */
    char host[64];  /* inet: numeric IPv4 or IPv6 address */
    int port;       /* inet */
    char text[180]; /* as written, for logs */
};

struct config {
    struct endpoint *listen;
    size_t nlisten;
    unsigned socket_mode; /* permissions of unix sockets */
    char *socket_group;   /* group of unix sockets; empty: the daemon's */
    char *user;           /* drop to this user after binding when root; empty: do not */
    char *overrides;      /* path of the overrides table; empty: none */
    unsigned max_connections;
    unsigned max_pipeline;       /* answers outstanding per connection before reading pauses */
    unsigned idle_timeout_ms;    /* an idle connection is closed after this */
    unsigned request_timeout_ms; /* a partly received request or a stuck write: closed after */
    unsigned drain_timeout_ms;   /* SIGTERM: how long connections get to finish */
    char *dns_servers;           /* "IP[:PORT],..." for c-ares; empty: /etc/resolv.conf */
    unsigned dns_timeout_ms;     /* one DNS query, all retries included */
    unsigned lookup_timeout_ms;  /* budget for one lookup from request to answer */
    unsigned dns_cache_size;     /* DNS answers kept */
    unsigned dane_cache_size;    /* domains whose DANE facts are kept */
    unsigned dns_min_ttl_ms;     /* cache bounds on record TTLs */
    unsigned dns_max_ttl_ms;
    char *state_dir;                 /* persisted MTA-STS policies; empty: none persist */
    unsigned state_max_size_mb;      /* the store's bound (LMDB map size), MiB */
    char *sts_ca_file;               /* CA bundle for policy fetches; empty: the system's */
    int sts_allow_private;           /* policy hosts on special-purpose addresses (labs) */
    unsigned sts_connect_timeout_ms; /* TCP and TLS set-up of a policy fetch */
    unsigned sts_fetch_timeout_ms;   /* a whole policy fetch */
    unsigned sts_fail_ttl_ms;        /* a failed discovery or fetch is remembered this long */
    unsigned sts_recheck_ms;
    unsigned sts_cache_size; /* MTA-STS cache entries; only remembered failures are evicted */
    int sts_enforce_testing; /* policy map: mode testing answered like enforce */
    int sts_postfix_attributes;
    /* Postfix 3.10+ TLSRPT attributes in STS answers */ /* a cached policy's TXT id is checked
                                                            after this long */
    int requiretls_probe;          /* REQUIRETLS answers wait for the MX probe */
    char *probe_ca_file;           /* CA bundle for MX probes; empty: the system's */
    unsigned probe_timeout_ms;     /* one whole MX probe, connect to QUIT */
    unsigned probe_ttl_ms;         /* probe results are cached this long */
    unsigned probe_max_concurrent; /* MX probes at once; more wait in a queue */
    char *probe_helo_name;         /* EHLO name of probes; empty: gethostname() */
    int log_level;                 /* syslog level */
    int syslog;                    /* 1: log to syslog instead of stderr */
    int log_json;                  /* log_format = json: one JSON object per line */
    int log_decisions;             /* syslog level of the one line per lookup decision */
    char *metrics_listen;          /* as written; empty: no metrics endpoint */
    struct endpoint metrics_ep;    /* parsed metrics_listen, when not empty */
    char *redis;                   /* the fleet tier: unix:PATH or inet:HOST:PORT; empty: off */
    struct endpoint redis_ep;      /* parsed redis, when not empty */
    char *redis_prefix;            /* every key the daemon writes starts with this */
    char *redis_auth_file;         /* "PASSWORD" or "USER PASSWORD", read as root; empty: none */
    unsigned redis_timeout_ms;     /* one Redis command; keep it well below lookup_timeout */
};

/*
 * One key as documented: name, default text, a one-line description (for -p), and whether
 * only a restart changes it (a reload keeps the value in force: config_keep_restart_only()).
 */
struct config_key_doc {
    const char *name;
    const char *default_value;
    const char *description;
    int restart_only;
};

/* config_keys - the table of known keys, terminated by an entry with name == NULL. */
const struct config_key_doc *config_keys(void);

/*
 * config_load - build a configuration: defaults, then the file (NULL: none), then each
 * "key=value" in opts. Returns 0, or -1 with a one-line message in err ("FILE:LINE: ...",
 * or "-o key=value: ..."). On failure *cfg is left empty and needs no config_free().
 */
int config_load(struct config *cfg, const char *file, char *const *opts, size_t nopts, char *err,
                size_t errlen);

/*
 * config_keep_restart_only - the reload step for the keys that only a restart may change
 * (listen, user, the resolver, fetcher and prober settings): each such key whose value in
 * want differs from now has its fields exchanged between the two, so that want, which
 * replaces now, shows the values still in force and now, freed next, owns the ones asked for.
 * The names of those keys go into changed, ", " separated (cut at changedlen). Returns how
 * many keys differed; 0 leaves both configurations as they were.
 */
size_t config_keep_restart_only(struct config *want, struct config *now, char *changed,
                                size_t changedlen);

/* config_free - release what config_load() allocated. */
void config_free(struct config *cfg);

/*
 * config_endpoint_parse - parse "unix:PATH" or "inet:HOST:PORT" ("inet:[::1]:PORT" for
 * IPv6). HOST must be a numeric address or "localhost". Returns 0 or -1 with a reason.
 */
int config_endpoint_parse(const char *text, struct endpoint *ep, const char **why);

/* config_print - write the effective configuration, one "key = value" per line. */
void config_print(const struct config *cfg, FILE *fp);

#endif
