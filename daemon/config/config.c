/*
 * Configuration loading: defaults, file, then -o overrides, each key checked by its own
 * setter. The key table below is the single list of what the daemon understands; the
 * README's table and "tlspolicyd -p" come from the same names.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfline.h"
#include "config_value.h"
#include "log.h"
#include "xalloc.h"

/* Largest configuration file read. */
#define CONFIG_MAX_FILE (1u << 20)
#define MAX_LISTEN 32

typedef int (*setter)(struct config *cfg, const char *value, const char **why);

/* How a reload keeps a restart-only key's value: see config_keep_restart_only(). */
enum keep {
    KEEP_NO,     /* a reload changes the key */
    KEEP_VALUE,  /* a scalar: compared byte for byte */
    KEEP_STRING, /* compared as the string its first field points to */
    KEEP_LISTEN, /* the listen endpoints and their count */
};

struct key {
    const char *name;
    const char *def;
    setter set;
    const char *description;
    enum keep keep;
    size_t off, len; /* the fields of struct config the key sets, from first to last */
};

/* The fields first..last of struct config, for a restart-only key. */
#define SPAN(first, last)                                                                          \
    offsetof(struct config, first), offsetof(struct config, last) +                                \
                                        sizeof(((struct config *)0)->last) -                       \
                                        offsetof(struct config, first)
/* A reload changes the key; the README lists the others (unit_confdoc checks). */
#define RELOADS KEEP_NO, 0, 0
#define RESTART_VALUE(field) KEEP_VALUE, SPAN(field, field)
#define RESTART_STRING(field) KEEP_STRING, SPAN(field, field)

/* Setters: each checks its value completely before changing cfg. */

static int set_listen(struct config *cfg, const char *value, const char **why)
{
    struct endpoint eps[MAX_LISTEN];
    size_t n = 0;
    char *copy = xstrdup(value), *save = NULL, *tok;
    int rc = -1;

    for (tok = strtok_r(copy, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
        if (n == MAX_LISTEN) {
            *why = "too many listen endpoints (at most 32)";
            goto done;
        }
        if (config_endpoint_parse(tok, &eps[n], why) < 0)
            goto done;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(eps[i].text, eps[n].text) == 0) {
                *why = "endpoint listed twice";
                goto done;
            }
        }
        n++;
    }
    if (n == 0) {
        *why = "listen needs at least one endpoint";
        goto done;
    }
    free(cfg->listen);
    cfg->listen = xmalloc(n * sizeof(*eps));
    memcpy(cfg->listen, eps, n * sizeof(*eps));
    cfg->nlisten = n;
    rc = 0;
done:
    free(copy);
    return rc;
}

static int set_socket_mode(struct config *cfg, const char *value, const char **why)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(value, &end, 8);
    if (*value == '\0' || *end || errno || v > 0777) {
        *why = "expected an octal mode such as 0660";
        return -1;
    }
    cfg->socket_mode = (unsigned)v;
    return 0;
}

static int set_string(char **slot, const char *value)
{
    free(*slot);
    *slot = xstrdup(value);
    return 0;
}

static int set_socket_group(struct config *cfg, const char *value, const char **why)
{
    return set_string(&cfg->socket_group, value);
}

static int set_user(struct config *cfg, const char *value, const char **why)
{
    return set_string(&cfg->user, value);
}

static int set_overrides(struct config *cfg, const char *value, const char **why)
{
    return set_string(&cfg->overrides, value);
}

static int set_bounded(unsigned *slot, const char *value, unsigned long lo, unsigned long hi,
                       const char *msg, const char **why)
{
    unsigned long v;

    if (config_parse_uint(value, hi, &v) < 0 || v < lo) {
        *why = msg;
        return -1;
    }
    *slot = (unsigned)v;
    return 0;
}

static int set_max_connections(struct config *cfg, const char *value, const char **why)
{
    return set_bounded(&cfg->max_connections, value, 1, 1000000,
                       "expected a number of connections from 1 to 1000000", why);
}

static int set_max_pipeline(struct config *cfg, const char *value, const char **why)
{
    return set_bounded(&cfg->max_pipeline, value, 1, 1024, "expected a number from 1 to 1024", why);
}

static int set_duration(unsigned *slot, const char *value, unsigned min_ms, const char **why)
{
    unsigned ms;

    if (config_parse_duration(value, &ms, why) < 0)
        return -1;
    if (ms < min_ms) {
        *why = "duration too short (at least 100ms)";
        return -1;
    }
    *slot = ms;
    return 0;
}

static int set_idle_timeout(struct config *cfg, const char *value, const char **why)
{
    return set_duration(&cfg->idle_timeout_ms, value, 100, why);
}

static int set_request_timeout(struct config *cfg, const char *value, const char **why)
{
    return set_duration(&cfg->request_timeout_ms, value, 100, why);
}

static int set_drain_timeout(struct config *cfg, const char *value, const char **why)
{
    return set_duration(&cfg->drain_timeout_ms, value, 100, why);
}

/* "IP[:PORT]" entries, IPv6 as "[::1]:53"; checked here so c-ares never sees a bad one. */
static int set_dns_servers(struct config *cfg, const char *value, const char **why)
{
    char *copy = xstrdup(value), *save = NULL, *tok, *csv = xcalloc(1, strlen(value) + 1);
    int rc = -1;

    for (tok = strtok_r(copy, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
        char host[64];
        const char *port = NULL;
        unsigned char addr[16];
        unsigned long p;

        if (tok[0] == '[') {
            char *close = strchr(tok, ']');

            if (close == NULL || (close[1] != '\0' && close[1] != ':') ||
                (size_t)(close - tok - 1) >= sizeof(host)) {
                *why = "expected IP, IP:PORT or [IPv6]:PORT";
                goto done;
            }
            memcpy(host, tok + 1, (size_t)(close - tok - 1));
            host[close - tok - 1] = '\0';
            port = close[1] == ':' ? close + 2 : NULL;
        } else {
            char *colon = strchr(tok, ':');

            /* A bare IPv6 address has several colons and no port. */
            if (colon != NULL && strchr(colon + 1, ':') == NULL) {
                port = colon + 1;
                *colon = '\0';
            }
            snprintf(host, sizeof(host), "%s", tok);
            if (port)
                *colon = ':';
        }
        if (inet_pton(AF_INET, host, addr) != 1 && inet_pton(AF_INET6, host, addr) != 1) {
            *why = "expected numeric resolver addresses (IP, IP:PORT or [IPv6]:PORT)";
            goto done;
        }
        if (port != NULL && (config_parse_uint(port, 65535, &p) < 0 || p == 0)) {
            *why = "resolver port must be a number from 1 to 65535";
            goto done;
        }
        if (csv[0])
            strcat(csv, ",");
        strcat(csv, tok);
    }
    free(cfg->dns_servers);
    cfg->dns_servers = csv;
    csv = NULL;
    rc = 0;
done:
    free(csv);
    free(copy);
    return rc;
}

static int set_dns_timeout(struct config *cfg, const char *value, const char **why)
{
    return set_duration(&cfg->dns_timeout_ms, value, 100, why);
}

static int set_lookup_timeout(struct config *cfg, const char *value, const char **why)
{
    return set_duration(&cfg->lookup_timeout_ms, value, 100, why);
}

static int set_dns_cache_size(struct config *cfg, const char *value, const char **why)
{
    return set_bounded(&cfg->dns_cache_size, value, 16, 10000000,
                       "expected a number of entries from 16 to 10000000", why);
}

static int set_dane_cache_size(struct config *cfg, const char *value, const char **why)
{
    return set_bounded(&cfg->dane_cache_size, value, 16, 10000000,
                       "expected a number of domains from 16 to 10000000", why);
}

static int set_dns_min_ttl(struct config *cfg, const char *value, const char **why)
{
    return set_duration(&cfg->dns_min_ttl_ms, value, 0, why);
}

static int set_dns_max_ttl(struct config *cfg, const char *value, const char **why)
{
    return set_duration(&cfg->dns_max_ttl_ms, value, 1000, why);
}

static int set_state_dir(struct config *cfg, const char *value, const char **why)
{
    (void)why;
    return set_string(&cfg->state_dir, value);
}

static int set_sts_ca_file(struct config *cfg, const char *value, const char **why)
{
    (void)why;
    return set_string(&cfg->sts_ca_file, value);
}

static int set_yes_no(int *slot, const char *value, const char **why)
{
    if (strcmp(value, "yes") == 0)
        *slot = 1;
    else if (strcmp(value, "no") == 0)
        *slot = 0;
    else {
        *why = "expected yes or no";
        return -1;
    }
    return 0;
}

static int set_sts_allow_private(struct config *cfg, const char *value, const char **why)
{
    return set_yes_no(&cfg->sts_allow_private, value, why);
}

static int set_requiretls_probe(struct config *cfg, const char *value, const char **why)
{
    return set_yes_no(&cfg->requiretls_probe, value, why);
}

static int set_sts_enforce_testing(struct config *cfg, const char *value, const char **why)
{
    return set_yes_no(&cfg->sts_enforce_testing, value, why);
}

static int set_sts_postfix_attributes(struct config *cfg, const char *value, const char **why)
{
    return set_yes_no(&cfg->sts_postfix_attributes, value, why);
}

static int set_sts_connect_timeout(struct config *cfg, const char *value, const char **why)
{
    return set_duration(&cfg->sts_connect_timeout_ms, value, 100, why);
}

static int set_sts_fetch_timeout(struct config *cfg, const char *value, const char **why)
{
    return set_duration(&cfg->sts_fetch_timeout_ms, value, 100, why);
}

static int set_sts_fail_ttl(struct config *cfg, const char *value, const char **why)
{
    return set_duration(&cfg->sts_fail_ttl_ms, value, 0, why);
}

static int set_sts_recheck(struct config *cfg, const char *value, const char **why)
{
    return set_duration(&cfg->sts_recheck_ms, value, 0, why);
}

/* A size in MiB: "512M", "4G", or a bare number of MiB; from 1 MiB to 1 TiB. */
static int set_state_max_size(struct config *cfg, const char *value, const char **why)
{
    char num[32];
    size_t n = strlen(value);
    unsigned long v, mul = 1;

    if (n > 0 && (value[n - 1] == 'G' || value[n - 1] == 'g'))
        mul = 1024;
    if (n > 0 &&
        (value[n - 1] == 'G' || value[n - 1] == 'g' || value[n - 1] == 'M' || value[n - 1] == 'm'))
        n--;
    if (n == 0 || n >= sizeof(num)) {
        *why = "expected a size such as 512M or 4G (1M to 1024G)";
        return -1;
    }
    memcpy(num, value, n);
    num[n] = '\0';
    if (config_parse_uint(num, 1048576, &v) < 0 || v == 0 || v * mul > 1048576) {
        *why = "expected a size such as 512M or 4G (1M to 1024G)";
        return -1;
    }
    cfg->state_max_size_mb = (unsigned)(v * mul);
    return 0;
}

static int set_sts_cache_size(struct config *cfg, const char *value, const char **why)
{
    return set_bounded(&cfg->sts_cache_size, value, 1, 10000000,
                       "expected a number of entries from 1 to 10000000", why);
}

static int set_probe_ca_file(struct config *cfg, const char *value, const char **why)
{
    (void)why;
    return set_string(&cfg->probe_ca_file, value);
}

static int set_probe_timeout(struct config *cfg, const char *value, const char **why)
{
    return set_duration(&cfg->probe_timeout_ms, value, 100, why);
}

static int set_probe_ttl(struct config *cfg, const char *value, const char **why)
{
    return set_duration(&cfg->probe_ttl_ms, value, 0, why);
}

static int set_probe_max_concurrent(struct config *cfg, const char *value, const char **why)
{
    return set_bounded(&cfg->probe_max_concurrent, value, 1, 10000,
                       "expected a number of probes from 1 to 10000", why);
}

/* RFC 5321 4.1.1.1: the EHLO argument is a domain; a letter-digit-hyphen name here. */
static int set_probe_helo_name(struct config *cfg, const char *value, const char **why)
{
    if (strlen(value) > 253 ||
        strspn(value, "abcdefghijklmnopqrstuvwxyz"
                      "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != strlen(value)) {
        *why = "expected a host name of letters, digits, '-' and '.'";
        return -1;
    }
    return set_string(&cfg->probe_helo_name, value);
}

static int set_log_level(struct config *cfg, const char *value, const char **why)
{
    int level = log_level_parse(value);

    if (level < 0) {
        *why = "expected error, warning, notice, info or debug";
        return -1;
    }
    cfg->log_level = level;
    return 0;
}

/* SPEC 6: /metrics on inet:HOST:PORT; empty turns the endpoint off. */
static int set_metrics_listen(struct config *cfg, const char *value, const char **why)
{
    struct endpoint ep;

    if (value[0] != '\0') {
        if (config_endpoint_parse(value, &ep, why) < 0)
            return -1;
        if (ep.kind != ENDPOINT_INET) {
            *why = "metrics_listen must be inet:HOST:PORT (or empty: off)";
            return -1;
        }
        cfg->metrics_ep = ep;
    }
    return set_string(&cfg->metrics_listen, value);
}

static int set_log_format(struct config *cfg, const char *value, const char **why)
{
    if (strcmp(value, "text") == 0)
        cfg->log_json = 0;
    else if (strcmp(value, "json") == 0)
        cfg->log_json = 1;
    else {
        *why = "expected text or json";
        return -1;
    }
    return 0;
}

static int set_log_decisions(struct config *cfg, const char *value, const char **why)
{
    int level = log_level_parse(value);

    if (level != LOG_INFO && level != LOG_DEBUG && level != LOG_NOTICE) {
        *why = "expected debug, info or notice";
        return -1;
    }
    cfg->log_decisions = level;
    return 0;
}

static int set_syslog(struct config *cfg, const char *value, const char **why)
{
    if (strcmp(value, "yes") == 0)
        cfg->syslog = 1;
    else if (strcmp(value, "no") == 0)
        cfg->syslog = 0;
    else {
        *why = "expected yes or no";
        return -1;
    }
    return 0;
}

static int set_redis(struct config *cfg, const char *value, const char **why)
{
    if (value[0] != '\0' && config_endpoint_parse(value, &cfg->redis_ep, why) < 0)
        return -1;
    return set_string(&cfg->redis, value);
}

static int set_redis_prefix(struct config *cfg, const char *value, const char **why)
{
    for (const char *p = value; *p; p++)
        if (*p <= ' ' || *p >= 0x7f || p - value >= 64) {
            *why = "expected at most 64 printable characters without spaces";
            return -1;
        }
    return set_string(&cfg->redis_prefix, value);
}

static int set_redis_auth_file(struct config *cfg, const char *value, const char **why)
{
    return set_string(&cfg->redis_auth_file, value);
}

static int set_redis_timeout(struct config *cfg, const char *value, const char **why)
{
    return set_duration(&cfg->redis_timeout_ms, value, 100, why);
}

/*
 * The keys. Defaults suit the quick start: a unix socket under ./run, loopback only.
 * Postfix's socketmap client closes idle connections after 10 s and any after 100 s
 * (dict_sockmap.c), so the idle timeout is well above both.
 */
static const struct key keys[] = {
    {"listen", "unix:run/tlspolicyd.sock", set_listen,
     "socketmap endpoints: unix:PATH, inet:HOST:PORT, inet:[V6]:PORT; space or comma separated",
     KEEP_LISTEN, SPAN(listen, nlisten)},
    {"socket_mode", "0660", set_socket_mode, "permissions of unix sockets (octal)",
     RESTART_VALUE(socket_mode)},
    {"socket_group", "", set_socket_group,
     "group of unix sockets, e.g. postfix (empty: the daemon's group)",
     RESTART_STRING(socket_group)},
    {"user", "tlspolicyd", set_user,
     "user to switch to after binding when started as root (empty: stay root, not advised)",
     RESTART_STRING(user)},
    {"overrides", "", set_overrides,
     "local policy table consulted first: KEY VALUE lines, KEY a domain or .parent", RELOADS},
    {"max_connections", "2048", set_max_connections,
     "socketmap connections open at once; more are accepted and closed at once", RELOADS},
    {"max_pipeline", "64", set_max_pipeline,
     "requests outstanding per connection before the daemon stops reading from it", RELOADS},
    {"idle_timeout", "300s", set_idle_timeout, "close a connection idle this long", RELOADS},
    {"request_timeout", "10s", set_request_timeout,
     "close a connection whose request arrives, or whose answer leaves, slower than this", RELOADS},
    {"drain_timeout", "10s", set_drain_timeout,
     "on SIGTERM, how long open connections get to finish, then as long for state_dir writes",
     RELOADS},
    {"dns_servers", "", set_dns_servers,
     "validating recursive resolvers, IP[:PORT] list; the AD bit is trusted only from these "
     "(empty: the nameservers of /etc/resolv.conf)",
     RESTART_STRING(dns_servers)},
    {"dns_timeout", "3s", set_dns_timeout, "one DNS query, retries included",
     RESTART_VALUE(dns_timeout_ms)},
    {"lookup_timeout", "8s", set_lookup_timeout,
     "budget for one lookup; when it runs out the answer is TEMP, never a weaker policy", RELOADS},
    {"dns_cache_size", "20000", set_dns_cache_size, "DNS answers kept in memory",
     RESTART_VALUE(dns_cache_size)},
    {"dane_cache_size", "1000000", set_dane_cache_size,
     "domains whose DANE facts are kept in memory (about 0.15 KiB each without DANE); the "
     "least recently used go first",
     RESTART_VALUE(dane_cache_size)},
    {"dns_min_ttl", "5s", set_dns_min_ttl, "DNS answers are kept at least this long",
     RESTART_VALUE(dns_min_ttl_ms)},
    {"dns_max_ttl", "1h", set_dns_max_ttl, "and at most this long, whatever their TTL",
     RESTART_VALUE(dns_max_ttl_ms)},
    {"state_dir", "state", set_state_dir,
     "where MTA-STS policies persist across restarts (empty: nowhere, not advised)",
     RESTART_STRING(state_dir)},
    {"state_max_size", "4G", set_state_max_size,
     "bound of state_dir's policy store (policies.mdb; about 0.4 KiB a policy): past it, "
     "writes fail, are counted and logged, and the policies stay in memory (a reload with a "
     "larger bound lets them through)",
     RELOADS},
    {"sts_ca_file", "", set_sts_ca_file,
     "CA bundle (PEM) for MTA-STS policy fetches, read into memory before the privilege drop "
     "and on SIGHUP (empty: the system bundle)",
     RELOADS},
    {"sts_allow_private", "no", set_sts_allow_private,
     "yes: fetch policies from loopback, private and other special addresses (test labs)", RELOADS},
    {"sts_connect_timeout", "3s", set_sts_connect_timeout, "TCP and TLS set-up of one policy fetch",
     RESTART_VALUE(sts_connect_timeout_ms)},
    {"sts_fetch_timeout", "5s", set_sts_fetch_timeout,
     "one whole policy fetch; keep it below lookup_timeout", RESTART_VALUE(sts_fetch_timeout_ms)},
    {"sts_fail_ttl", "5m", set_sts_fail_ttl,
     "a failed MTA-STS discovery or fetch is not retried for this long", RELOADS},
    {"sts_recheck", "5m", set_sts_recheck,
     "a cached policy's TXT id is checked again, behind the answer, after this long", RELOADS},
    {"sts_cache_size", "20000", set_sts_cache_size,
     "MTA-STS domains kept in memory; remembered failures and stored policies go first, "
     "policies only memory holds never",
     RELOADS},
    {"requiretls_probe", "yes", set_requiretls_probe,
     "yes: REQUIRETLS answers name only MX hosts that the probe saw advertise REQUIRETLS "
     "after STARTTLS with an authenticated certificate",
     RELOADS},
    {"sts_enforce_testing", "no", set_sts_enforce_testing,
     "yes: the policy map answers MTA-STS testing policies like enforce ones", RELOADS},
    {"sts_postfix_attributes", "no", set_sts_postfix_attributes,
     "yes: add policy_type, policy_domain, mx_host_pattern and policy_string for TLSRPT "
     "(Postfix 3.10 or later only; earlier versions reject them)",
     RELOADS},
    {"probe_ca_file", "", set_probe_ca_file,
     "CA bundle (PEM) for verifying MX hosts' certificates in REQUIRETLS probes, read like "
     "sts_ca_file (empty: the system bundle /etc/ssl/certs/ca-certificates.crt)",
     RELOADS},
    {"probe_timeout", "10s", set_probe_timeout,
     "one whole MX probe (connect, EHLO, STARTTLS, TLS handshake, EHLO, QUIT)",
     RESTART_VALUE(probe_timeout_ms)},
    {"probe_ttl", "1h", set_probe_ttl, "MX probe results are kept this long",
     RESTART_VALUE(probe_ttl_ms)},
    {"probe_max_concurrent", "20", set_probe_max_concurrent,
     "MX probes running at once; more wait their turn", RESTART_VALUE(probe_max_concurrent)},
    {"probe_helo_name", "", set_probe_helo_name,
     "name sent in EHLO by MX probes (empty: this machine's host name)",
     RESTART_STRING(probe_helo_name)},
    {"log_level", "info", set_log_level, "error, warning, notice, info or debug", RELOADS},
    {"syslog", "no", set_syslog, "yes: log to syslog (facility mail) instead of stderr", RELOADS},
    {"log_format", "text", set_log_format,
     "text: \"tlspolicyd[PID]: LEVEL: message\" lines; json: one JSON object per line", RELOADS},
    {"log_decisions", "debug", set_log_decisions,
     "level of the one line per lookup (domain, map, answer, reason): debug, info or notice",
     RELOADS},
    {"metrics_listen", "inet:127.0.0.1:9461", set_metrics_listen,
     "inet:HOST:PORT serving Prometheus /metrics and /healthz (empty: off)", KEEP_STRING,
     SPAN(metrics_listen, metrics_ep)},
    {"redis", "", set_redis,
     "the fleet tier shared by several daemons: unix:PATH or inet:HOST:PORT of a Redis server "
     "(empty: off)",
     KEEP_STRING, SPAN(redis, redis_ep)},
    {"redis_prefix", "tlspolicyd:", set_redis_prefix,
     "start of every Redis key the daemon reads and writes (one per deployment)",
     RESTART_STRING(redis_prefix)},
    {"redis_auth_file", "", set_redis_auth_file,
     "file with one line, PASSWORD or USER PASSWORD, for Redis AUTH, read before the privilege "
     "drop; mode 0600 (empty: no AUTH)",
     RESTART_STRING(redis_auth_file)},
    {"redis_timeout", "300ms", set_redis_timeout,
     "one Redis command; past it the connection is dropped and lookups go on without it",
     RESTART_VALUE(redis_timeout_ms)},

};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

const struct config_key_doc *config_keys(void)
{
    static struct config_key_doc docs[NKEYS + 1];

    for (size_t i = 0; i < NKEYS; i++) {
        docs[i].name = keys[i].name;
        docs[i].default_value = keys[i].def;
        docs[i].description = keys[i].description;
        docs[i].restart_only = keys[i].keep != KEEP_NO;
    }
    return docs;
}

/* Whether a and b hold the same value for the restart-only key k. */
static int same_value(const struct key *k, const struct config *a, const struct config *b)
{
    const char *pa = (const char *)a + k->off, *pb = (const char *)b + k->off;

    switch (k->keep) {
    case KEEP_STRING:
        return strcmp(*(char *const *)pa, *(char *const *)pb) == 0;
    case KEEP_LISTEN:
        /* config_endpoint_parse() zeroes each endpoint first: equal text, equal bytes. */
        return a->nlisten == b->nlisten &&
               memcmp(a->listen, b->listen, a->nlisten * sizeof(*a->listen)) == 0;
    default:
        return memcmp(pa, pb, k->len) == 0;
    }
}

/* Exchange the fields of key k between a and b; each keeps owning what it frees. */
static void swap_fields(const struct key *k, struct config *a, struct config *b)
{
    unsigned char tmp[sizeof(struct config)];

    memcpy(tmp, (char *)a + k->off, k->len);
    memcpy((char *)a + k->off, (char *)b + k->off, k->len);
    memcpy((char *)b + k->off, tmp, k->len);
}

size_t config_keep_restart_only(struct config *want, struct config *now, char *changed,
                                size_t changedlen)
{
    size_t n = 0, used = 0;

    if (changedlen > 0)
        changed[0] = '\0';
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].keep == KEEP_NO || same_value(&keys[i], want, now))
            continue;
        swap_fields(&keys[i], want, now);
        if (used < changedlen)
            used += (size_t)snprintf(changed + used, changedlen - used, "%s%s", n ? ", " : "",
                                     keys[i].name);
        n++;
    }
    return n;
}

static int set_key(struct config *cfg, const char *name, const char *value, const char **why)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return keys[i].set(cfg, value, why);
    *why = "unknown parameter";
    return -1;
}

void config_free(struct config *cfg)
{
    free(cfg->listen);
    free(cfg->socket_group);
    free(cfg->user);
    free(cfg->overrides);
    free(cfg->dns_servers);
    free(cfg->state_dir);
    free(cfg->sts_ca_file);
    free(cfg->metrics_listen);
    free(cfg->probe_ca_file);
    free(cfg->probe_helo_name);
    free(cfg->redis);
    free(cfg->redis_prefix);
    free(cfg->redis_auth_file);
    memset(cfg, 0, sizeof(*cfg));
}

static int load_file(struct config *cfg, const char *file, char *err, size_t errlen)
{
    FILE *fp = fopen(file, "r");
    char *buf = NULL, *line = NULL;
    size_t len;
    struct cfreader r;
    unsigned lineno = 0;
    const char *why = NULL;
    int rc = -1, n;

    if (fp == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", file, strerror(errno));
        return -1;
    }
    buf = xmalloc(CONFIG_MAX_FILE + 1);
    len = fread(buf, 1, CONFIG_MAX_FILE + 1, fp);
    if (ferror(fp)) {
        snprintf(err, errlen, "%s: cannot read: %s", file, strerror(errno));
        goto done;
    }
    if (len > CONFIG_MAX_FILE) {
        snprintf(err, errlen, "%s: larger than %u bytes", file, CONFIG_MAX_FILE);
        goto done;
    }
    line = xmalloc(CFLINE_MAX);
    cfreader_init(&r, buf, len);
    while ((n = cfline_next(&r, line, CFLINE_MAX, &lineno, &why)) != CFLINE_EOF) {
        char *key, *value;

        if (n < 0 || cfline_keyvalue(line, &key, &value, &why) < 0) {
            snprintf(err, errlen, "%s:%u: %s", file, lineno, why);
            goto done;
        }
        if (set_key(cfg, key, value, &why) < 0) {
            snprintf(err, errlen, "%s:%u: %s = %s: %s", file, lineno, key, value, why);
            goto done;
        }
    }
    rc = 0;
done:
    free(line);
    free(buf);
    fclose(fp);
    return rc;
}

int config_load(struct config *cfg, const char *file, char *const *opts, size_t nopts, char *err,
                size_t errlen)
{
    const char *why = NULL;

    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].set(cfg, keys[i].def, &why) < 0) {
            snprintf(err, errlen, "built-in default %s = %s: %s", keys[i].name, keys[i].def, why);
            goto fail;
        }
    }
    if (file != NULL && load_file(cfg, file, err, errlen) < 0)
        goto fail;
    for (size_t i = 0; i < nopts; i++) {
        char *copy = xstrdup(opts[i]), *eq = strchr(copy, '='), *k = copy, *v;
        int rc;

        if (eq == NULL) {
            snprintf(err, errlen, "-o %s: expected key=value", opts[i]);
            free(copy);
            goto fail;
        }
        *eq = '\0';
        v = eq + 1;
        /* Allow "-o 'key = value'" as well as "-o key=value". */
        while (*k == ' ' || *k == '\t')
            k++;
        for (char *e = eq; e > k && (e[-1] == ' ' || e[-1] == '\t');)
            *--e = '\0';
        while (*v == ' ' || *v == '\t')
            v++;
        rc = set_key(cfg, k, v, &why);
        if (rc < 0)
            snprintf(err, errlen, "-o %s: %s", opts[i], why);
        free(copy);
        if (rc < 0)
            goto fail;
    }
    return 0;
fail:
    config_free(cfg);
    return -1;
}

void config_print(const struct config *cfg, FILE *fp)
{
    fprintf(fp, "listen =");
    for (size_t i = 0; i < cfg->nlisten; i++)
        fprintf(fp, " %s", cfg->listen[i].text);
    fprintf(fp, "\nsocket_mode = %04o\n", cfg->socket_mode);
    fprintf(fp, "socket_group = %s\n", cfg->socket_group);
    fprintf(fp, "user = %s\n", cfg->user);
    fprintf(fp, "overrides = %s\n", cfg->overrides);
    fprintf(fp, "max_connections = %u\n", cfg->max_connections);
    fprintf(fp, "max_pipeline = %u\n", cfg->max_pipeline);
    fprintf(fp, "idle_timeout = %ums\n", cfg->idle_timeout_ms);
    fprintf(fp, "request_timeout = %ums\n", cfg->request_timeout_ms);
    fprintf(fp, "drain_timeout = %ums\n", cfg->drain_timeout_ms);
    fprintf(fp, "dns_servers = %s\n", cfg->dns_servers);
    fprintf(fp, "dns_timeout = %ums\n", cfg->dns_timeout_ms);
    fprintf(fp, "lookup_timeout = %ums\n", cfg->lookup_timeout_ms);
    fprintf(fp, "dns_cache_size = %u\n", cfg->dns_cache_size);
    fprintf(fp, "dane_cache_size = %u\n", cfg->dane_cache_size);
    fprintf(fp, "dns_min_ttl = %ums\n", cfg->dns_min_ttl_ms);
    fprintf(fp, "dns_max_ttl = %ums\n", cfg->dns_max_ttl_ms);
    fprintf(fp, "state_dir = %s\n", cfg->state_dir);
    fprintf(fp, "state_max_size = %uM\n", cfg->state_max_size_mb);
    fprintf(fp, "sts_ca_file = %s\n", cfg->sts_ca_file);
    fprintf(fp, "sts_allow_private = %s\n", cfg->sts_allow_private ? "yes" : "no");
    fprintf(fp, "sts_connect_timeout = %ums\n", cfg->sts_connect_timeout_ms);
    fprintf(fp, "sts_fetch_timeout = %ums\n", cfg->sts_fetch_timeout_ms);
    fprintf(fp, "sts_fail_ttl = %ums\n", cfg->sts_fail_ttl_ms);
    fprintf(fp, "sts_recheck = %ums\n", cfg->sts_recheck_ms);
    fprintf(fp, "sts_cache_size = %u\n", cfg->sts_cache_size);
    fprintf(fp, "requiretls_probe = %s\n", cfg->requiretls_probe ? "yes" : "no");
    fprintf(fp, "sts_enforce_testing = %s\n", cfg->sts_enforce_testing ? "yes" : "no");
    fprintf(fp, "sts_postfix_attributes = %s\n", cfg->sts_postfix_attributes ? "yes" : "no");
    fprintf(fp, "probe_ca_file = %s\n", cfg->probe_ca_file);
    fprintf(fp, "probe_timeout = %ums\n", cfg->probe_timeout_ms);
    fprintf(fp, "probe_ttl = %ums\n", cfg->probe_ttl_ms);
    fprintf(fp, "probe_max_concurrent = %u\n", cfg->probe_max_concurrent);
    fprintf(fp, "probe_helo_name = %s\n", cfg->probe_helo_name);
    fprintf(fp, "log_level = %s\n",
            cfg->log_level == LOG_ERR       ? "error"
            : cfg->log_level == LOG_WARNING ? "warning"
            : cfg->log_level == LOG_NOTICE  ? "notice"
            : cfg->log_level == LOG_DEBUG   ? "debug"
                                            : "info");
    fprintf(fp, "syslog = %s\n", cfg->syslog ? "yes" : "no");
    fprintf(fp, "log_format = %s\n", cfg->log_json ? "json" : "text");
    fprintf(fp, "log_decisions = %s\n",
            cfg->log_decisions == LOG_NOTICE ? "notice"
            : cfg->log_decisions == LOG_INFO ? "info"
                                             : "debug");
    fprintf(fp, "metrics_listen = %s\n", cfg->metrics_listen);
    fprintf(fp, "redis = %s\nredis_prefix = %s\n", cfg->redis, cfg->redis_prefix);
    fprintf(fp, "redis_auth_file = %s\n", cfg->redis_auth_file);
    fprintf(fp, "redis_timeout = %ums\n", cfg->redis_timeout_ms);
}
