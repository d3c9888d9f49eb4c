/*
 * Unit tests for daemon/util/metrics.c: the exposition after known increments. Every line is a
 * HELP, a TYPE or a sample; each family has one HELP and one TYPE before its samples, and
 * its samples are together (never split, never duplicated); labels come only from the
 * fixed sets; counters read back what was counted; histograms are cumulative.
 */
#include "check.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXFAM 128
#define MAXSERIES 1024

static char *text;

/* The value of one series ("name{labels}" exactly as written), or -1 when absent. */
static double value_of(const char *series)
{
    size_t n = strlen(series);

    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');

        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = nl ? nl + 1 : NULL;
    }
    return -1;
}

/* The family a sample belongs to: its name less a histogram suffix. */
static void family_of(const char *name, size_t len, const char *hist, char *out, size_t cap)
{
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};

    snprintf(out, cap, "%.*s", (int)len, name);
    for (size_t i = 0; hist && i < 3; i++) {
        size_t sl = strlen(suffixes[i]);

        if (len > sl && strcmp(out + len - sl, suffixes[i]) == 0 &&
            strncmp(out, hist, len - sl) == 0 && hist[len - sl] == '\0')
            out[len - sl] = '\0';
    }
}

static void check_structure(void)
{
    static char fams[MAXFAM][96], series[MAXSERIES][256];
    size_t nfam = 0, nseries = 0;
    char current[96] = "", type[16] = "", line[1024];
    int saw_help = 0;
    const char *p = text;

    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);

        check_true("exposition", "lines end in newline", nl != NULL);
        snprintf(line, sizeof(line), "%.*s", (int)len, p);
        p += len + (nl ? 1 : 0);
        if (strncmp(line, "# HELP ", 7) == 0) {
            char name[96];

            sscanf(line + 7, "%95s", name);
            for (size_t i = 0; i < nfam; i++)
                if (!check_true(name, "family appears once", strcmp(fams[i], name) != 0))
                    printf("\n");
            snprintf(fams[nfam < MAXFAM ? nfam++ : nfam - 1], 96, "%s", name);
            snprintf(current, sizeof(current), "%s", name);
            check_true(name, "name prefix",
                       strncmp(name, "tlspolicyd_", 11) == 0 || strncmp(name, "process_", 8) == 0);
            saw_help = 1;
            type[0] = '\0';
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[96];

            sscanf(line + 7, "%95s %15s", name, type);
            check_str(line, "TYPE follows its HELP", name, current);
            check_true(line, "HELP before TYPE", saw_help);
            check_true(line, "known type",
                       strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                           strcmp(type, "histogram") == 0);
            continue;
        }
        /* A sample: name{labels} value, or name value. */
        {
            size_t nlen = strcspn(line, "{ ");
            char fam[96];
            const char *sp = strrchr(line, ' ');
            char *end;

            family_of(line, nlen, strcmp(type, "histogram") == 0 ? current : NULL, fam,
                      sizeof(fam));
            if (!check_str(line, "sample belongs to the family above", fam, current))
                continue;
            if (strcmp(type, "counter") == 0)
                check_true(line, "counter name ends in _total",
                           nlen > 6 && strncmp(line + nlen - 6, "_total", 6) == 0);
            check_true(line, "has a value", sp != NULL);
            if (sp == NULL)
                continue;
            strtod(sp + 1, &end);
            check_true(line, "value is a number", *end == '\0' && end != sp + 1);
            for (size_t i = 0; i < nseries; i++)
                if (strncmp(series[i], line, (size_t)(sp - line)) == 0 &&
                    series[i][sp - line] == '\0')
                    check_true(line, "series appears once", 0);
            if (nseries < MAXSERIES)
                snprintf(series[nseries++], 256, "%.*s", (int)(sp - line), line);
            /* Labels hold no domain: values only from the closed sets, no dots but versions. */
            check_true(line, "no example domain in labels", strstr(line, "example") == NULL);
        }
    }
    check_true("exposition", "has families", nfam > 20);
}

int main(void)
{
    struct metrics_gauges g;
    size_t len;

    metrics_init();
    metrics_lookup(SOCKMAP_MAP_POLICY, SOCKMAP_OK, 30);
    metrics_lookup(SOCKMAP_MAP_POLICY, SOCKMAP_OK, 3000);
    metrics_lookup(SOCKMAP_MAP_REQUIRETLS, SOCKMAP_TEMP, 20000000);
    metrics_lookup(SOCKMAP_MAP_UNKNOWN, SOCKMAP_PERM, 0);
    metrics_dns(52, DNS_OUT_RECORDS, 1);
    metrics_dns(15, DNS_OUT_NXDOMAIN, 0);
    metrics_dns(15, DNS_OUT_BOGUS, 0);
    metrics_dns(99, DNS_OUT_FAILED, 0);
    metrics_fetch(METRICS_FETCH_TLS);
    metrics_fetch(METRICS_FETCH_INVALID);
    metrics_fetch(METRICS_FETCH_LOCAL);
    metrics_fetch(METRICS_FETCH_LOCAL);
    metrics_fetch(1000);
    metrics_probe(METRICS_PROBE_REQUIRETLS);
    metrics_cache(METRICS_CACHE_DNS, METRICS_CACHE_HIT);
    metrics_cache(METRICS_CACHE_STS, METRICS_CACHE_EVICTION);
    metrics_refresh(METRICS_REFRESH_RENEWAL);
    metrics_store(1);
    metrics_store(0);
    metrics_conn(METRICS_CONN_REFUSED);
    metrics_conn(METRICS_CONN_EVICTED);
    metrics_conn(METRICS_CONN_EVICTED);
    metrics_http(METRICS_HTTP_METRICS, 200);
    metrics_http(METRICS_HTTP_OTHER, 404);
    metrics_reload(0);

    memset(&g, 0, sizeof(g));
    g.conns_open = 7;
    g.cache_entries[METRICS_CACHE_DNS] = 42;
    g.serving = 1;
    text = metrics_render(&g, &len);
    check_int("render", "length", (long long)len, (long long)strlen(text));
    check_structure();

    struct {
        const char *series;
        double want;
    } rows[] = {
        {"tlspolicyd_lookups_total{map=\"policy\",answer=\"ok\"}", 2},
        {"tlspolicyd_lookups_total{map=\"policy\",answer=\"notfound\"}", 0},
        {"tlspolicyd_lookups_total{map=\"requiretls\",answer=\"temp\"}", 1},
        {"tlspolicyd_lookups_total{map=\"unknown\",answer=\"perm\"}", 1},
        {"tlspolicyd_lookup_duration_seconds_bucket{map=\"policy\",le=\"5e-05\"}", 1},
        {"tlspolicyd_lookup_duration_seconds_bucket{map=\"policy\",le=\"0.0025\"}", 1},
        {"tlspolicyd_lookup_duration_seconds_bucket{map=\"policy\",le=\"0.005\"}", 2},
        {"tlspolicyd_lookup_duration_seconds_bucket{map=\"policy\",le=\"+Inf\"}", 2},
        {"tlspolicyd_lookup_duration_seconds_count{map=\"policy\"}", 2},
        {"tlspolicyd_lookup_duration_seconds_sum{map=\"policy\"}", 0.00303},
        {"tlspolicyd_lookup_duration_seconds_bucket{map=\"requiretls\",le=\"10\"}", 0},
        {"tlspolicyd_lookup_duration_seconds_bucket{map=\"requiretls\",le=\"+Inf\"}", 1},
        {"tlspolicyd_dns_queries_total{type=\"TLSA\",outcome=\"secure\"}", 1},
        {"tlspolicyd_dns_queries_total{type=\"MX\",outcome=\"insecure\"}", 1},
        {"tlspolicyd_dns_queries_total{type=\"MX\",outcome=\"bogus\"}", 1},
        {"tlspolicyd_dns_queries_total{type=\"other\",outcome=\"error\"}", 1},
        {"tlspolicyd_sts_fetches_total{outcome=\"tls\"}", 1},
        {"tlspolicyd_sts_fetches_total{outcome=\"invalid\"}", 1},
        {"tlspolicyd_sts_fetches_total{outcome=\"local\"}", 2},
        {"tlspolicyd_sts_fetches_total{outcome=\"error\"}", 1},
        {"tlspolicyd_probes_total{outcome=\"requiretls\"}", 1},
        {"tlspolicyd_cache_hits_total{cache=\"dns\"}", 1},
        {"tlspolicyd_cache_evictions_total{cache=\"sts\"}", 1},
        {"tlspolicyd_cache_entries{cache=\"dns\"}", 42},
        {"tlspolicyd_sts_refreshes_total{trigger=\"renewal\"}", 1},
        {"tlspolicyd_store_writes_total{result=\"ok\"}", 1},
        {"tlspolicyd_store_writes_total{result=\"error\"}", 1},
        {"tlspolicyd_connections_open", 7},
        {"tlspolicyd_connections_refused_total", 1},
        {"tlspolicyd_connections_evicted_total", 2},
        {"tlspolicyd_http_requests_total{handler=\"metrics\",code=\"200\"}", 1},
        {"tlspolicyd_http_requests_total{handler=\"other\",code=\"404\"}", 1},
        {"tlspolicyd_config_reloads_total{result=\"error\"}", 1},
        {"tlspolicyd_up", 1},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        double got = value_of(rows[i].series);

        if (!check_true(rows[i].series, "value",
                        got > rows[i].want - 1e-9 && got < rows[i].want + 1e-9))
            printf("got %g, want %g\n", got, rows[i].want);
    }
    check_true("build_info", "present", strstr(text, "tlspolicyd_build_info{version=\"") != NULL);
    check_true("process", "cpu", value_of("process_cpu_seconds_total") >= 0);
    check_true("process", "rss", value_of("process_resident_memory_bytes") > 0);
    check_true("process", "fds", value_of("process_open_fds") >= 3);
    check_true("process", "start", value_of("process_start_time_seconds") > 1.6e9);
    free(text);
    return check_summary("test_metrics");
}
