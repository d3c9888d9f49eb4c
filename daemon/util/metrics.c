/*
 * The metrics registry and its exposition in the Prometheus text format 0.0.4
 * (prometheus/docs exposition_formats.md): one HELP and TYPE line per family, every series
 * of a family together, histogram buckets cumulative with le="+Inf" equal to _count. Label
 * values come from the fixed tables below, so none needs escaping but the library versions
 * of tlspolicyd_build_info, which are escaped anyway.
 */
#include "metrics.h"

#include <ares.h>
#include <curl/curl.h>
#include <dirent.h>
#include <jansson.h>
#include <mbedtls/version.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "dns.h"
#include "xalloc.h"

#define NMAPS (SOCKMAP_MAP_UNKNOWN + 1)
#define NSTATUS (SOCKMAP_PERM + 1)

/* DNS query types asked (RFC 7672 and RFC 8461 need these); anything else is "other". */
static const struct {
    uint16_t type;
    const char *name;
} dns_types[] = {
    {DNS_TYPE_MX, "MX"},
    {DNS_TYPE_A, "A"},
    {DNS_TYPE_AAAA, "AAAA"},
    {DNS_TYPE_TLSA, "TLSA"},
    {DNS_TYPE_TXT, "TXT"},
    {DNS_TYPE_CNAME, "CNAME"},
    {0, "other"},
};
#define NDNSTYPES (sizeof(dns_types) / sizeof(dns_types[0]))
enum { DNS_SECURE, DNS_INSECURE, DNS_BOGUS, DNS_ERROR, NDNSOUT };
static const char *const dns_outcomes[NDNSOUT] = {"secure", "insecure", "bogus", "error"};

/*
 * Answer latency buckets: a cached answer takes microseconds, a cold one milliseconds to
 * seconds, and lookup_timeout caps it at 8 s by default (SPEC 7: well inside Postfix's 10 s).
 */
static const uint64_t bucket_us[] = {50,     100,     250,     500,     1000,    2500,
                                     5000,   10000,   25000,   50000,   100000,  250000,
                                     500000, 1000000, 2500000, 5000000, 10000000};
static const char *const bucket_le[] = {"5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025",
                                        "0.005", "0.01",   "0.025",   "0.05",   "0.1",   "0.25",
                                        "0.5",   "1",      "2.5",     "5",      "10"};
#define NBUCKETS (sizeof(bucket_us) / sizeof(bucket_us[0]))

static const char *const fetch_outcomes[METRICS_FETCH_N] = {
    "ok",      "http_status", "content_type", "too_big", "tls",
    "connect", "timeout",     "error",        "local",   "invalid"};
static const char *const probe_outcomes[METRICS_PROBE_N] = {
    "requiretls",    "no_requiretls", "no_starttls", "tls_error",
    "connect_error", "smtp_error",    "timeout",     "error"};
static const char *const cache_names[METRICS_CACHE_N] = {"dns", "sts", "dane"};
static const char *const refresh_names[METRICS_REFRESH_N] = {"recheck", "renewal"};
static const char *const redis_results[METRICS_REDIS_N] = {"ok", "error", "timeout", "dropped",
                                                           "unavailable"};
static const char *const shared_events[METRICS_SHARED_N] = {"hit",    "miss",   "invalid", "write",
                                                            "locked", "waited", "takeover"};
static const char *const shared_kinds[METRICS_SHARED_KIND_N] = {"sts", "probe"};
static const char *const http_handlers[] = {"metrics", "healthz", "other"};
#define NHANDLERS (sizeof(http_handlers) / sizeof(http_handlers[0]))
static const int http_codes[] = {200, 400, 404, 405, 408, 431, 503, 505};
#define NCODES (sizeof(http_codes) / sizeof(http_codes[0]))

static struct {
    uint64_t lookups[NMAPS][NSTATUS];
    uint64_t latency[NMAPS][NBUCKETS + 1]; /* per bucket, not cumulative; last: +Inf */
    uint64_t latency_sum_us[NMAPS];
    uint64_t dns[NDNSTYPES][NDNSOUT];
    uint64_t fetch[METRICS_FETCH_N];
    uint64_t probe[METRICS_PROBE_N];
    uint64_t cache[METRICS_CACHE_N][3];
    uint64_t refresh[METRICS_REFRESH_N];
    uint64_t store[2]; /* [0] errors, [1] ok */
    uint64_t store_bytes, store_records, store_max;
    uint64_t conn[METRICS_CONN_N];
    uint64_t redis[METRICS_REDIS_N];
    uint64_t redis_connect[2]; /* [0] failed, [1] ok */
    uint64_t shared[METRICS_SHARED_KIND_N][METRICS_SHARED_N];
    uint64_t reload[2];
    uint64_t http[NHANDLERS][NCODES];
    double start_time;
} m;

void metrics_init(void)
{
    struct timespec ts;

    memset(&m, 0, sizeof(m));
    clock_gettime(CLOCK_REALTIME, &ts);
    m.start_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void metrics_lookup(enum sockmap_map map, enum sockmap_status st, uint64_t usec)
{
    size_t b = 0;

    if ((unsigned)map >= NMAPS)
        map = SOCKMAP_MAP_UNKNOWN;
    if ((unsigned)st >= NSTATUS)
        st = SOCKMAP_PERM;
    m.lookups[map][st]++;
    while (b < NBUCKETS && usec > bucket_us[b])
        b++;
    m.latency[map][b]++;
    m.latency_sum_us[map] += usec;
}

void metrics_dns(uint16_t qtype, enum dns_outcome outcome, int secure)
{
    size_t t = 0;
    int o;

    while (t < NDNSTYPES - 1 && dns_types[t].type != qtype)
        t++;
    switch (outcome) {
    case DNS_OUT_RECORDS:
    case DNS_OUT_NODATA:
    case DNS_OUT_NXDOMAIN:
        o = secure ? DNS_SECURE : DNS_INSECURE;
        break;
    case DNS_OUT_BOGUS:
        o = DNS_BOGUS;
        break;
    default:
        o = DNS_ERROR;
        break;
    }
    m.dns[t][o]++;
}

void metrics_fetch(int outcome)
{
    if (outcome < 0 || outcome >= METRICS_FETCH_N)
        outcome = METRICS_FETCH_ERROR;
    m.fetch[outcome]++;
}

void metrics_probe(enum metrics_probe outcome)
{
    if ((unsigned)outcome >= METRICS_PROBE_N)
        outcome = METRICS_PROBE_ERROR;
    m.probe[outcome]++;
}

void metrics_cache(enum metrics_cache kind, enum metrics_cache_event ev)
{
    if ((unsigned)kind < METRICS_CACHE_N && (unsigned)ev < 3)
        m.cache[kind][ev]++;
}

void metrics_refresh(enum metrics_refresh trigger)
{
    if ((unsigned)trigger < METRICS_REFRESH_N)
        m.refresh[trigger]++;
}

void metrics_store(int ok)
{
    m.store[ok ? 1 : 0]++;
}

void metrics_store_size(uint64_t bytes, uint64_t records, uint64_t max_bytes)
{
    m.store_bytes = bytes;
    m.store_records = records;
    m.store_max = max_bytes;
}

void metrics_redis_command(enum metrics_redis r)
{
    if ((unsigned)r < METRICS_REDIS_N)
        m.redis[r]++;
}

void metrics_redis_connect(int ok)
{
    m.redis_connect[ok ? 1 : 0]++;
}

void metrics_shared(enum metrics_shared_kind kind, enum metrics_shared ev)
{
    if ((unsigned)kind < METRICS_SHARED_KIND_N && (unsigned)ev < METRICS_SHARED_N)
        m.shared[kind][ev]++;
}

void metrics_conn(enum metrics_conn ev)
{
    if ((unsigned)ev < METRICS_CONN_N)
        m.conn[ev]++;
}

void metrics_reload(int ok)
{
    m.reload[ok ? 1 : 0]++;
}

void metrics_http(enum metrics_http_handler h, int code)
{
    if ((unsigned)h >= NHANDLERS)
        h = METRICS_HTTP_OTHER;
    for (size_t c = 0; c < NCODES; c++)
        if (http_codes[c] == code)
            m.http[h][c]++;
}

/* The output buffer. */

struct out {
    char *buf;
    size_t len, cap;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        o->cap = o->cap * 2 + (n > 0 ? (size_t)n : 0);
        o->buf = xrealloc(o->buf, o->cap);
    }
}

static void family(struct out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A family of one sample without labels. */
static void single(struct out *o, const char *name, const char *type, const char *help,
                   unsigned long long v)
{
    family(o, name, type, help);
    put(o, "%s %llu\n", name, v);
}

/* Label values that come from outside the fixed tables: \, " and newline escaped. */
static void put_label_value(struct out *o, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            put(o, "\\%c", *v);
        else if (*v == '\n')
            put(o, "\\n");
        else
            put(o, "%c", *v);
    }
}

static void render_lookups(struct out *o)
{
    family(o, "tlspolicyd_lookups_total", "counter",
           "Socketmap answers given, by map name and answer status.");
    for (int map = 0; map < NMAPS; map++)
        for (int st = 0; st < NSTATUS; st++) {
            char word[16];

            /* "NOTFOUND" etc. in lower case: label values are conventionally lower case. */
            snprintf(word, sizeof(word), "%s", sockmap_status_word((enum sockmap_status)st));
            for (char *p = word; *p; p++)
                *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
            put(o, "tlspolicyd_lookups_total{map=\"%s\",answer=\"%s\"} %llu\n",
                map == SOCKMAP_MAP_UNKNOWN ? "unknown" : sockmap_map_name((enum sockmap_map)map),
                word, (unsigned long long)m.lookups[map][st]);
        }

    family(o, "tlspolicyd_lookup_duration_seconds", "histogram",
           "Time from a socketmap request's arrival to its answer, by map name.");
    for (int map = 0; map < NMAPS; map++) {
        const char *name =
            map == SOCKMAP_MAP_UNKNOWN ? "unknown" : sockmap_map_name((enum sockmap_map)map);
        uint64_t cum = 0;

        for (size_t b = 0; b < NBUCKETS; b++) {
            cum += m.latency[map][b];
            put(o, "tlspolicyd_lookup_duration_seconds_bucket{map=\"%s\",le=\"%s\"} %llu\n", name,
                bucket_le[b], (unsigned long long)cum);
        }
        cum += m.latency[map][NBUCKETS];
        put(o, "tlspolicyd_lookup_duration_seconds_bucket{map=\"%s\",le=\"+Inf\"} %llu\n", name,
            (unsigned long long)cum);
        put(o, "tlspolicyd_lookup_duration_seconds_sum{map=\"%s\"} %.6f\n", name,
            (double)m.latency_sum_us[map] / 1e6);
        put(o, "tlspolicyd_lookup_duration_seconds_count{map=\"%s\"} %llu\n", name,
            (unsigned long long)cum);
    }
}

static void render_caches(struct out *o, const struct metrics_gauges *g)
{
    static const struct {
        const char *name, *help;
    } events[3] = {
        {"tlspolicyd_cache_hits_total", "Answers taken from a cache, by cache."},
        {"tlspolicyd_cache_misses_total", "Questions a cache could not answer, by cache."},
        {"tlspolicyd_cache_evictions_total",
         "Entries dropped from a cache for room (dns, dane) or at max_age (sts), by cache."},
    };

    family(o, "tlspolicyd_cache_entries", "gauge", "Entries held in each cache.");
    for (int c = 0; c < METRICS_CACHE_N; c++)
        put(o, "tlspolicyd_cache_entries{cache=\"%s\"} %lu\n", cache_names[c], g->cache_entries[c]);
    for (int e = 0; e < 3; e++) {
        family(o, events[e].name, "counter", events[e].help);
        for (int c = 0; c < METRICS_CACHE_N; c++)
            put(o, "%s{cache=\"%s\"} %llu\n", events[e].name, cache_names[c],
                (unsigned long long)m.cache[c][e]);
    }
    single(o, "tlspolicyd_sts_policies", "gauge", "MTA-STS policies in force in the cache.",
           (unsigned long long)g->sts_policies);
}

static void render_upstreams(struct out *o)
{
    family(o, "tlspolicyd_dns_queries_total", "counter",
           "Upstream DNS answers by query type and outcome (secure and insecure: the AD bit).");
    for (size_t t = 0; t < NDNSTYPES; t++)
        for (int r = 0; r < NDNSOUT; r++)
            put(o, "tlspolicyd_dns_queries_total{type=\"%s\",outcome=\"%s\"} %llu\n",
                dns_types[t].name, dns_outcomes[r], (unsigned long long)m.dns[t][r]);

    family(o, "tlspolicyd_sts_fetches_total", "counter",
           "MTA-STS policy fetches by outcome (local: the daemon's own fault, such as its CA "
           "bundle or file descriptors).");
    for (int f = 0; f < METRICS_FETCH_N; f++)
        put(o, "tlspolicyd_sts_fetches_total{outcome=\"%s\"} %llu\n", fetch_outcomes[f],
            (unsigned long long)m.fetch[f]);

    family(o, "tlspolicyd_sts_refreshes_total", "counter",
           "MTA-STS discoveries started in the background, by trigger.");
    for (int r = 0; r < METRICS_REFRESH_N; r++)
        put(o, "tlspolicyd_sts_refreshes_total{trigger=\"%s\"} %llu\n", refresh_names[r],
            (unsigned long long)m.refresh[r]);

    family(o, "tlspolicyd_probes_total", "counter", "REQUIRETLS probes of MX hosts by outcome.");
    for (int p = 0; p < METRICS_PROBE_N; p++)
        put(o, "tlspolicyd_probes_total{outcome=\"%s\"} %llu\n", probe_outcomes[p],
            (unsigned long long)m.probe[p]);

    family(o, "tlspolicyd_store_writes_total", "counter",
           "Policy records written to state_dir, by result.");
    put(o, "tlspolicyd_store_writes_total{result=\"ok\"} %llu\n", (unsigned long long)m.store[1]);
    put(o, "tlspolicyd_store_writes_total{result=\"error\"} %llu\n",
        (unsigned long long)m.store[0]);
    single(o, "tlspolicyd_store_bytes", "gauge",
           "Bytes of state_dir's policies.mdb in use (its pages up to the last written).",
           (unsigned long long)m.store_bytes);
    single(o, "tlspolicyd_store_max_bytes", "gauge",
           "The store's bound (state_max_size); writes fail once bytes in use reach it.",
           (unsigned long long)m.store_max);
    single(o, "tlspolicyd_store_records", "gauge", "MTA-STS policy records in state_dir.",
           (unsigned long long)m.store_records);

    family(o, "tlspolicyd_redis_commands_total", "counter",
           "Commands to the fleet tier's Redis, by result (unavailable: not sent, not connected).");
    for (int r = 0; r < METRICS_REDIS_N; r++)
        put(o, "tlspolicyd_redis_commands_total{result=\"%s\"} %llu\n", redis_results[r],
            (unsigned long long)m.redis[r]);
    family(o, "tlspolicyd_redis_connections_total", "counter",
           "Connections to Redis, by result (ok: answered AUTH or PING).");
    put(o, "tlspolicyd_redis_connections_total{result=\"ok\"} %llu\n",
        (unsigned long long)m.redis_connect[1]);
    put(o, "tlspolicyd_redis_connections_total{result=\"error\"} %llu\n",
        (unsigned long long)m.redis_connect[0]);
    family(o, "tlspolicyd_shared_total", "counter",
           "Fleet tier values by kind and event (invalid: refused by the parser and replaced).");
    for (int k = 0; k < METRICS_SHARED_KIND_N; k++)
        for (int e = 0; e < METRICS_SHARED_N; e++)
            put(o, "tlspolicyd_shared_total{kind=\"%s\",event=\"%s\"} %llu\n", shared_kinds[k],
                shared_events[e], (unsigned long long)m.shared[k][e]);
}

static void render_service(struct out *o, const struct metrics_gauges *g)
{
    single(o, "tlspolicyd_lookups_waiting", "gauge", "Lookups waiting for DNS or MTA-STS facts.",
           (unsigned long long)g->lookups_waiting);
    single(o, "tlspolicyd_connections_open", "gauge", "Socketmap connections open.",
           (unsigned long long)g->conns_open);
    single(o, "tlspolicyd_connections_accepted_total", "counter",
           "Socketmap connections accepted and served.",
           (unsigned long long)m.conn[METRICS_CONN_ACCEPTED]);
    single(o, "tlspolicyd_connections_refused_total", "counter",
           "Socketmap connections closed at once because max_connections were open, each with "
           "a request being answered.",
           (unsigned long long)m.conn[METRICS_CONN_REFUSED]);
    single(o, "tlspolicyd_connections_evicted_total", "counter",
           "Idle or trickling socketmap connections closed to make room for a new client at "
           "max_connections.",
           (unsigned long long)m.conn[METRICS_CONN_EVICTED]);
    single(o, "tlspolicyd_http_connections_open", "gauge", "Metrics endpoint connections open.",
           (unsigned long long)g->http_conns_open);
    family(o, "tlspolicyd_http_connections_total", "counter",
           "Metrics endpoint connections, by event (refused: over the endpoint's limit).");
    put(o, "tlspolicyd_http_connections_total{event=\"accepted\"} %llu\n",
        (unsigned long long)m.conn[METRICS_CONN_HTTP_ACCEPTED]);
    put(o, "tlspolicyd_http_connections_total{event=\"refused\"} %llu\n",
        (unsigned long long)m.conn[METRICS_CONN_HTTP_REFUSED]);
    family(o, "tlspolicyd_http_requests_total", "counter",
           "Metrics endpoint requests answered, by handler and status code.");
    for (size_t h = 0; h < NHANDLERS; h++)
        for (size_t c = 0; c < NCODES; c++)
            if (m.http[h][c] > 0 || (c == 0 && h != METRICS_HTTP_OTHER))
                put(o, "tlspolicyd_http_requests_total{handler=\"%s\",code=\"%d\"} %llu\n",
                    http_handlers[h], http_codes[c], (unsigned long long)m.http[h][c]);
    family(o, "tlspolicyd_config_reloads_total", "counter", "SIGHUP reloads, by result.");
    put(o, "tlspolicyd_config_reloads_total{result=\"ok\"} %llu\n",
        (unsigned long long)m.reload[1]);
    put(o, "tlspolicyd_config_reloads_total{result=\"error\"} %llu\n",
        (unsigned long long)m.reload[0]);
    family(o, "tlspolicyd_up", "gauge",
           "1 while the daemon accepts socketmap connections, 0 while it drains.");
    put(o, "tlspolicyd_up %d\n", g->serving ? 1 : 0);
}

static void render_build_info(struct out *o)
{
    char ver[64];
    const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);

    family(o, "tlspolicyd_build_info", "gauge",
           "Always 1; the labels give the version and the libraries in use.");
    put(o, "tlspolicyd_build_info{version=\"");
    put_label_value(o, TLSPOLICYD_VERSION);
    put(o, "\",libuv=\"");
    put_label_value(o, uv_version_string());
    put(o, "\",cares=\"");
    put_label_value(o, ares_version(NULL));
    put(o, "\",curl=\"");
    put_label_value(o, cv && cv->version ? cv->version : "unknown");
    mbedtls_version_get_string(ver);
    put(o, "\",mbedtls=\"");
    put_label_value(o, ver);
    put(o, "\",jansson=\"");
    put_label_value(o, JANSSON_VERSION);
    put(o, "\"} 1\n");
}

/* process_* as the Prometheus client libraries define them (writing_clientlibs.md). */
static void render_process(struct out *o)
{
    struct rusage ru;
    struct rlimit rl;
    unsigned long vsize_pages = 0, rss_pages = 0;
    long page = sysconf(_SC_PAGESIZE);
    FILE *fp;
    DIR *d;
    unsigned long nfds = 0;

    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        family(o, "process_cpu_seconds_total", "counter",
               "Total user and system CPU time spent in seconds.");
        put(o, "process_cpu_seconds_total %.6f\n",
            (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    }
    fp = fopen("/proc/self/statm", "r");
    if (fp != NULL) {
        if (fscanf(fp, "%lu %lu", &vsize_pages, &rss_pages) == 2) {
            single(o, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
                   (unsigned long long)vsize_pages * (unsigned long long)page);
            single(o, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
                   (unsigned long long)rss_pages * (unsigned long long)page);
        }
        fclose(fp);
    }
    d = opendir("/proc/self/fd");
    if (d != NULL) {
        struct dirent *de;

        while ((de = readdir(d)) != NULL)
            if (de->d_name[0] != '.')
                nfds++;
        closedir(d);
        /* The directory's own descriptor was counted. */
        single(o, "process_open_fds", "gauge", "Number of open file descriptors.",
               (unsigned long long)nfds > 0 ? nfds - 1 : 0);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        single(o, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
               (unsigned long long)rl.rlim_cur == RLIM_INFINITY ? 0ull
                                                                : (unsigned long long)rl.rlim_cur);
    }
    family(o, "process_start_time_seconds", "gauge",
           "Start time of the process since unix epoch in seconds.");
    put(o, "process_start_time_seconds %.3f\n", m.start_time);
}

char *metrics_render(const struct metrics_gauges *g, size_t *len)
{
    struct out o = {.buf = xmalloc(16384), .len = 0, .cap = 16384};

    render_lookups(&o);
    render_caches(&o, g);
    render_upstreams(&o);
    render_service(&o, g);
    render_build_info(&o);
    render_process(&o);
    *len = o.len;
    return o.buf;
}
