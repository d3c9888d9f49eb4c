/*
 * bench_fetchfloor - the CPU floor of a cold MTA-STS lookup on this machine: fetch each
 * domain's policy once, one after another, through libcurl with the TLS settings the daemon
 * uses (daemon/mtasts/fetch.c: a fresh connection, no session cache, TLS 1.2 or later, the
 * CA bundle parsed once into one OpenSSL store that every handshake's SSL_CTX takes) and
 * nothing else: no DNS (the address is pinned with CURLOPT_RESOLVE), no event loop, no
 * parsing, no store. tests/bench/cold.sh prints its CPU per domain beside the daemon's, from
 * the same run, so the two are compared on the same machine at the same moment.
 *
 * usage: bench_fetchfloor CA_FILE ADDRESS KEYS_FILE
 *   KEYS_FILE: one domain a line; https://mta-sts.DOMAIN/.well-known/mta-sts.txt is fetched
 *   from ADDRESS:443.
 * Output: one JSON line {"fetched": N, "failed": F, "cpu_ms_per_fetch": C, "wall_s": W}.
 * Exit 0 when every fetch returned 200 with a body, 1 otherwise, 2 on bad usage.
 */
#include <curl/curl.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static size_t count_body(char *p, size_t size, size_t n, void *user)
{
    (void)p;
    *(size_t *)user += size * n;
    return size * n;
}

static CURLcode share_store(CURL *easy, void *ssl_ctx, void *user)
{
    (void)easy;
    if (!X509_STORE_up_ref(user))
        return CURLE_SSL_CACERT_BADFILE;
    SSL_CTX_set_cert_store(ssl_ctx, user);
    return CURLE_OK;
}

static double cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static double wall_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* fetch_one - 0 when the policy came back 200 with a body, -1 (reason on stderr) if not. */
static int fetch_one(X509_STORE *store, const char *addr, const char *domain)
{
    char url[512], pin[512];
    struct curl_slist *resolve;
    size_t body = 0;
    long status = 0;
    CURLcode rc;
    CURL *c;

    snprintf(url, sizeof url, "https://mta-sts.%s/.well-known/mta-sts.txt", domain);
    snprintf(pin, sizeof pin, "mta-sts.%s:443:%s", domain, addr);
    if ((c = curl_easy_init()) == NULL || (resolve = curl_slist_append(NULL, pin)) == NULL) {
        fprintf(stderr, "bench_fetchfloor: out of memory\n");
        curl_easy_cleanup(c);
        return -1;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_SESSIONID_CACHE, 0L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(c, CURLOPT_CAINFO, (char *)NULL);
    curl_easy_setopt(c, CURLOPT_CAPATH, (char *)NULL);
    curl_easy_setopt(c, CURLOPT_CA_CACHE_TIMEOUT, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, share_store);
    curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, store);
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, count_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(resolve);
    if (rc != CURLE_OK || status != 200 || body == 0) {
        fprintf(stderr, "bench_fetchfloor: %s: %s, HTTP %ld, %zu bytes\n", url,
                curl_easy_strerror(rc), status, body);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    char line[300];
    unsigned fetched = 0, failed = 0;
    double cpu0, wall0, cpu, wall;
    X509_STORE *store;
    FILE *keys;

    if (argc != 4) {
        fprintf(stderr, "usage: bench_fetchfloor CA_FILE ADDRESS KEYS_FILE\n");
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "bench_fetchfloor: curl_global_init failed\n");
        return 1;
    }
    store = X509_STORE_new();
    if (store == NULL || !X509_STORE_load_file(store, argv[1])) {
        fprintf(stderr, "bench_fetchfloor: %s: OpenSSL cannot load it\n", argv[1]);
        return 1;
    }
    X509_STORE_set_flags(store, X509_V_FLAG_TRUSTED_FIRST | X509_V_FLAG_PARTIAL_CHAIN);
    if ((keys = fopen(argv[3], "r")) == NULL) {
        perror(argv[3]);
        return 1;
    }
    cpu0 = cpu_seconds();
    wall0 = wall_seconds();
    while (fgets(line, sizeof line, keys) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0')
            continue;
        if (fetch_one(store, argv[2], line) == 0)
            fetched++;
        else
            failed++;
    }
    cpu = cpu_seconds() - cpu0;
    wall = wall_seconds() - wall0;
    fclose(keys);
    X509_STORE_free(store);
    curl_global_cleanup();
    printf("{\"fetched\": %u, \"failed\": %u, \"cpu_ms_per_fetch\": %.3f, \"wall_s\": %.3f}\n",
           fetched, failed, fetched + failed ? cpu * 1000 / (fetched + failed) : 0.0, wall);
    return failed == 0 && fetched > 0 ? 0 : 1;
}
