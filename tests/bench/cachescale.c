/*
 * bench_cachescale: does a cached lookup stay as fast with a million domains cached as with
 * ten thousand (issue 12: flat within 20%)? It fills the DANE facts cache (dane_cache.c) with
 * N synthetic domains, as many DANE facts as a cached lookup of each would leave, and times
 * lookups of domains picked at random among them, for N = 10,000, 100,000 and 1,000,000 (or
 * the sizes given). Random picks defeat the CPU caches as real traffic over many domains
 * would. Prints a Markdown table: N, ns per lookup, ratio to the first N, bytes of resident
 * memory per entry; times are CPU time of this process. No network: the resolver is created
 * but never asked.
 *
 *   usage: bench_cachescale [N...]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "config.h"
#include "dane.h"
#include "dane_cache.h"
#include "resolver.h"

#define LOOKUPS 2000000

static double now_s(void)
{
    struct timespec ts;

    /* CPU time: other work on a shared machine does not count. */
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Resident memory of this process in bytes (/proc/self/statm, second field). */
static long rss_bytes(void)
{
    long pages = 0, size;
    FILE *fp = fopen("/proc/self/statm", "r");

    if (fp == NULL)
        return 0;
    if (fscanf(fp, "%ld %ld", &size, &pages) != 2)
        pages = 0;
    fclose(fp);
    return pages * 4096;
}

static void name_of(char *buf, size_t len, unsigned long i)
{
    snprintf(buf, len, "d%07lu.example", i);
}

/* One size: fill, then time LOOKUPS random lookups; ns per lookup, *per_entry bytes. */
static double measure(struct resolver *r, unsigned long n, double *per_entry)
{
    struct dane_cache *c = dane_cache_create(r, n);
    struct dane_facts f;
    uint64_t expires = resolver_now(r) + 3600 * 1000;
    unsigned long x = 88172645463325252ul, misses = 0;
    long rss0 = rss_bytes();
    char name[64];
    double t0, t;

    /* A secure MX with one DANE host, as a DANE domain leaves (TLSA data included). */
    memset(&f, 0, sizeof(f));
    f.state = DANE_ALL;
    f.mx_secure = 1;
    f.nhosts = 1;
    f.why = "every MX host has usable TLSA records";
    snprintf(f.hosts[0].name, sizeof(f.hosts[0].name), "mx.example");
    f.hosts[0].addr = DANE_ADDR_SECURE;
    f.hosts[0].tlsa_usable = f.hosts[0].ntlsa = 1;
    for (unsigned long i = 0; i < n; i++) {
        name_of(name, sizeof(name), i);
        dane_cache_put(c, name, &f, expires);
    }
    *per_entry = (double)(rss_bytes() - rss0) / (double)n;
    t0 = now_s();
    for (unsigned long i = 0; i < LOOKUPS; i++) {
        /* xorshift64: a domain at random, its name built as a request's key would be. */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        name_of(name, sizeof(name), x % n);
        if (dane_cache_get(c, name) == NULL)
            misses++;
    }
    t = now_s() - t0;
    if (misses > 0)
        fprintf(stderr, "bench_cachescale: %lu misses at N=%lu\n", misses, n);
    dane_cache_destroy(c);
    return t * 1e9 / LOOKUPS;
}

int main(int argc, char **argv)
{
    static const unsigned long defaults[] = {10000, 100000, 1000000};
    uv_loop_t loop;
    struct config cfg;
    struct resolver *r;
    char err[256];
    double base = 0;
    int nsizes = argc > 1 ? argc - 1 : 3;

    uv_loop_init(&loop);
    if (config_load(&cfg, NULL, NULL, 0, err, sizeof(err)) < 0 ||
        (free(cfg.dns_servers), cfg.dns_servers = strdup("127.0.0.1:9"),
         (r = resolver_create(&loop, &cfg, err, sizeof(err))) == NULL)) {
        fprintf(stderr, "bench_cachescale: %s\n", err);
        return 1;
    }
    printf("| cached domains | ns per lookup | ratio to first | resident bytes per entry |\n");
    printf("|---:|---:|---:|---:|\n");
    for (int i = 0; i < nsizes; i++) {
        unsigned long n = argc > 1 ? strtoul(argv[i + 1], NULL, 10) : defaults[i];
        double per, ns;

        if (n == 0)
            continue;
        /* The time of creating the name is in every row alike. */
        ns = measure(r, n, &per);
        if (base == 0)
            base = ns;
        printf("| %lu | %.0f | %.2f | %.0f |\n", n, ns, ns / base, per);
        fflush(stdout);
    }
    resolver_destroy(r);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    config_free(&cfg);
    return 0;
}
