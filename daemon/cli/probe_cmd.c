/*
 * The probe command: for each domain, its MX hosts as RFC 5321 5.1 and RFC 7672 2.2 find
 * them (dane_start() for the DNSSEC facts and TLSA records; a plain MX lookup when the MX
 * RRset is not signed), their addresses, and one probe.c probe per address, printed one
 * line per host address (or as JSON). With --connect, one named host at one address is
 * probed without DNS, with the TLSA records given by --tlsa.
 */
#include "probe_cmd.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cmdline.h"
#include "config.h"
#include "dane.h"
#include "dns.h"
#include "domain.h"
#include "ehlo.h"
#include "mxhosts.h"
#include "probe.h"
#include "resolver.h"
#include "xalloc.h"

/* Addresses probed per MX host (Postfix's smtp_mx_address_limit counts all of a domain's;
 * a few per host are enough to see how each behaves). */
#define MAX_ADDRS 4
/* --connect addresses: more than a host has, so tests can fill the probe queue (probe.c
 * takes 4 * probe_max_concurrent waiting probes, 5 in all at probe_max_concurrent=1). */
#define MAX_CONNECT 8
/* --repeat: the same probe started this many times at once (shows the sharing). */
#define MAX_REPEAT 8
#define ADDR_LEN 46

struct job;
struct host;

struct target {
    struct host *h;
    char addr[ADDR_LEN];
    struct probe_req *req;
    int active, done;
    struct probe_result res;
    char why[sizeof(((struct probe_result *)0)->why)];
};

struct aslot {
    struct host *h;
    int aaaa, active, done;
    struct resolver_req *req;
};

struct host {
    struct job *j;
    char name[DANE_NAME_MAX];
    unsigned pref;
    const char *addr_state; /* "secure", "insecure", "none", or NULL: unknown */
    struct probe_tlsa tlsa[DANE_MAX_TLSA + PROBE_MAX_TLSA];
    size_t ntlsa;
    struct aslot a, aaaa;
    char addrs[MAX_CONNECT][ADDR_LEN];
    unsigned naddrs;
    char why[200]; /* why it has no address to probe */
    struct target t[MAX_CONNECT * MAX_REPEAT];
    unsigned nt;
};

struct job {
    const char *arg;
    char domain[DOMAIN_MAX + 1];
    struct resolver *r;
    struct probe_svc *p;
    struct dane_lookup *dl;
    struct resolver_req *mxreq;
    int mx_active;
    struct dane_facts facts; /* TLSA data the probes point into lives here */
    int have_facts;
    struct host hosts[DANE_MAX_HOSTS];
    unsigned nhosts;
    unsigned pending;
    unsigned repeat;
    int done, error;
    char why[400];
};

static void job_check(struct job *j)
{
    if (j->pending == 0)
        j->done = 1;
}

static int passed(const struct probe_result *r)
{
    /* RFC 8689 4.2.1 steps 4 and 5: DANE when the host has TLSA records, else PKIX. */
    return r->tls_ok && r->requiretls_advertised && (r->ntlsa > 0 ? r->dane_ok : r->pkix_ok);
}

/* Probes. */

static void on_probe(void *arg, const struct probe_result *res)
{
    struct target *t = arg;

    t->active = 0;
    t->req = NULL;
    t->done = 1;
    t->res = *res;
    memcpy(t->why, res->why, sizeof(t->why));
    t->res.host = t->h->name;
    t->res.addr = t->addr;
    t->h->j->pending--;
    job_check(t->h->j);
}

static void start_probes(struct host *h)
{
    struct job *j = h->j;

    if (h->naddrs == 0 && h->why[0] == '\0')
        snprintf(h->why, sizeof(h->why), "no IPv4 or IPv6 address");
    for (unsigned i = 0; i < h->naddrs; i++) {
        for (unsigned k = 0; k < j->repeat; k++) {
            struct target *t = &h->t[h->nt++];
            struct probe_req *req;

            t->h = h;
            /* Both are INET6_ADDRSTRLEN buffers (memcpy: GCC's -Wrestrict misreads snprintf
             * between two members of one struct). */
            memcpy(t->addr, h->addrs[i], sizeof(t->addr));
            t->active = 1;
            j->pending++;
            req = probe_start(j->p, h->name, t->addr, h->ntlsa ? h->tlsa : NULL, h->ntlsa, on_probe,
                              t);
            if (t->active)
                t->req = req;
        }
    }
}

/* Address lookups (RFC 7672 2.2.2; RFC 5321 5.1). */

static void on_addr(void *arg, const struct resolver_answer *ans)
{
    struct aslot *s = arg;
    struct host *h = s->h;
    struct job *j = h->j;
    const struct dns_answer_info *in = &ans->info;

    s->active = 0;
    s->req = NULL;
    s->done = 1;
    j->pending--;
    if (in->outcome == DNS_OUT_RECORDS) {
        if (h->naddrs < MAX_ADDRS)
            h->naddrs += mxhosts_addrs(ans, &h->addrs[h->naddrs], MAX_ADDRS - h->naddrs);
    } else if (in->outcome == DNS_OUT_BOGUS || in->outcome == DNS_OUT_FAILED) {
        snprintf(h->why, sizeof(h->why), "%s lookup: %s", s->aaaa ? "AAAA" : "A",
                 in->why ? in->why : dns_outcome_name(in->outcome));
    }
    if (h->a.done && h->aaaa.done)
        start_probes(h);
    job_check(j);
}

static void ask_addr(struct host *h, struct aslot *s, int aaaa)
{
    struct resolver_req *req;

    s->h = h;
    s->aaaa = aaaa;
    s->active = 1;
    h->j->pending++;
    req = resolver_query(h->j->r, h->name, aaaa ? DNS_TYPE_AAAA : DNS_TYPE_A, on_addr, s);
    if (s->active)
        s->req = req;
}

static void resolve_hosts(struct job *j)
{
    /* Hold the job open while the questions go out: answers may come from the cache. */
    j->pending++;
    for (unsigned i = 0; i < j->nhosts; i++) {
        ask_addr(&j->hosts[i], &j->hosts[i].a, 0);
        ask_addr(&j->hosts[i], &j->hosts[i].aaaa, 1);
    }
    j->pending--;
    job_check(j);
}

static struct host *add_host(struct job *j, const char *name, unsigned pref)
{
    struct host *h;

    if (j->nhosts == DANE_MAX_HOSTS || strlen(name) >= DANE_NAME_MAX)
        return NULL;
    for (unsigned i = 0; i < j->nhosts; i++)
        if (dns_name_equal(j->hosts[i].name, name))
            return NULL;
    h = &j->hosts[j->nhosts++];
    h->j = j;
    snprintf(h->name, sizeof(h->name), "%s", name);
    h->pref = pref;
    return h;
}

/* Most preferred first, as a client tries them (a stable sort: ties keep the DNS order). */
static void sort_hosts(struct job *j)
{
    for (unsigned i = 1; i < j->nhosts; i++)
        for (unsigned k = i; k > 0 && j->hosts[k - 1].pref > j->hosts[k].pref; k--) {
            struct host tmp = j->hosts[k];

            j->hosts[k] = j->hosts[k - 1];
            j->hosts[k - 1] = tmp;
        }
    for (unsigned i = 0; i < j->nhosts; i++)
        j->hosts[i].j = j;
}

struct mx_read {
    struct job *j;
    int null_mx; /* a record "MX 0 ." was seen */
};

static void on_mx_host(void *arg, const char *host, uint16_t pref)
{
    struct mx_read *m = arg;

    if (host[0] == '\0')
        m->null_mx = 1;
    else
        add_host(m->j, host, pref);
}

/* The MX RRset when it is not DNSSEC-signed (dane_start stops there). */
static void on_mx(void *arg, const struct resolver_answer *ans)
{
    struct job *j = arg;
    const struct dns_answer_info *in = &ans->info;
    struct mx_read m = {j, 0};

    j->mx_active = 0;
    j->mxreq = NULL;
    j->pending--;
    switch (in->outcome) {
    case DNS_OUT_BOGUS:
    case DNS_OUT_FAILED:
        snprintf(j->why, sizeof(j->why), "MX lookup: %s", in->why ? in->why : "failed");
        j->error = 1;
        break;
    case DNS_OUT_NXDOMAIN:
        snprintf(j->why, sizeof(j->why), "%s does not exist (NXDOMAIN)", j->domain);
        j->error = 1;
        break;
    case DNS_OUT_NODATA:
        /* RFC 5321 5.1: no MX, the domain itself is the host. */
        add_host(j, in->final, 0);
        break;
    case DNS_OUT_RECORDS:
        if (mxhosts_each(ans, on_mx_host, &m) == 1 && m.null_mx) {
            snprintf(j->why, sizeof(j->why), "%s publishes a null MX (RFC 7505)", j->domain);
            j->nhosts = 0;
        }
        break;
    }
    sort_hosts(j);
    resolve_hosts(j);
    job_check(j);
}

static void on_dane(void *arg, const struct dane_facts *f)
{
    struct job *j = arg;
    static const char *const addr[] = {"secure", "insecure", "none"};

    j->dl = NULL;
    j->pending--;
    j->facts = *f;
    j->have_facts = 1;
    if (f->state == DANE_TEMP) {
        snprintf(j->why, sizeof(j->why), "DANE lookup: %s", f->why);
        j->error = 1;
        job_check(j);
        return;
    }
    if (f->null_mx) {
        snprintf(j->why, sizeof(j->why), "%s", f->why);
        job_check(j);
        return;
    }
    if (f->nhosts == 0) {
        /* Not DNSSEC-signed: the MX hosts from a plain lookup, without DANE. */
        j->mx_active = 1;
        j->pending++;
        {
            struct resolver_req *req = resolver_query(j->r, j->domain, DNS_TYPE_MX, on_mx, j);

            if (j->mx_active)
                j->mxreq = req;
        }
        job_check(j);
        return;
    }
    for (unsigned i = 0; i < j->facts.nhosts; i++) {
        const struct dane_host *dh = &j->facts.hosts[i];
        struct host *h = add_host(j, dh->name, dh->preference);

        if (h == NULL)
            continue;
        h->addr_state = addr[dh->addr];
        /* RFC 7672 2.2.3: TLSA records count only where the addresses are secure. */
        if (dh->addr == DANE_ADDR_SECURE) {
            h->ntlsa = dh->ntlsa < DANE_MAX_TLSA ? dh->ntlsa : DANE_MAX_TLSA;
            mxhosts_tlsa(h->tlsa, dh->tlsa, h->ntlsa);
        }
    }
    resolve_hosts(j);
    job_check(j);
}

/* Cancel what is still pending (--destroy-after, or the end). */
static void job_abandon(struct job *j)
{
    if (j->dl)
        dane_cancel(j->dl);
    j->dl = NULL;
    if (j->mx_active)
        resolver_cancel(j->mxreq);
    j->mx_active = 0;
    for (unsigned i = 0; i < j->nhosts; i++) {
        struct host *h = &j->hosts[i];

        if (h->a.active)
            resolver_cancel(h->a.req);
        if (h->aaaa.active)
            resolver_cancel(h->aaaa.req);
        h->a.active = h->aaaa.active = 0;
        for (unsigned k = 0; k < h->nt; k++)
            h->t[k].active = 0; /* the probe service was destroyed: requests are gone */
    }
    j->pending = 0;
    j->done = 1;
}

/* Output. */

static const char *yesno(int v)
{
    return v ? "yes" : "no";
}

static void print_text(const struct job *j)
{
    printf("%s", j->arg);
    if (j->have_facts)
        printf(": MX %s, DANE %s", j->facts.mx_secure ? "secure" : "not secure",
               dane_state_name(j->facts.state));
    if (j->why[0])
        printf(": %s", j->why);
    printf("\n");
    for (unsigned i = 0; i < j->nhosts; i++) {
        const struct host *h = &j->hosts[i];

        if (h->nt == 0) {
            printf("  mx %u %s: not probed: %s\n", h->pref, h->name, h->why);
            continue;
        }
        for (unsigned k = 0; k < h->nt; k++) {
            const struct target *t = &h->t[k];
            const struct probe_result *r = &t->res;

            if (!t->done) {
                printf("  mx %u %s [%s]: abandoned\n", h->pref, h->name, t->addr);
                continue;
            }
            printf("  mx %u %s [%s]: REQUIRETLS %s; connected %s, starttls %s, tls %s, pkix %s, "
                   "dane %s (%u TLSA), requiretls %s, %llu ms%s: %s\n",
                   h->pref, h->name, t->addr, passed(r) ? "ok" : "not ok", yesno(r->connected),
                   yesno(r->starttls_offered), yesno(r->tls_ok), yesno(r->pkix_ok),
                   yesno(r->dane_ok), r->ntlsa, yesno(r->requiretls_advertised),
                   (unsigned long long)r->elapsed_ms, r->from_cache ? ", cached" : "", t->why);
        }
    }
}

static json_t *job_json(const struct job *j)
{
    json_t *hosts = json_array(), *o;

    for (unsigned i = 0; i < j->nhosts; i++) {
        const struct host *h = &j->hosts[i];

        if (h->nt == 0)
            json_array_append_new(hosts, json_pack("{s:s, s:i, s:n, s:s, s:s?}", "name", h->name,
                                                   "preference", h->pref, "address", "why", h->why,
                                                   "addresses", h->addr_state));
        for (unsigned k = 0; k < h->nt; k++) {
            const struct target *t = &h->t[k];
            const struct probe_result *r = &t->res;
            json_t *caps = json_array();

            for (unsigned bit = 1; bit != 0 && bit <= EHLO_CAP_ENHANCEDSTATUSCODES; bit <<= 1)
                if (r->caps & bit)
                    json_array_append_new(caps, json_string(ehlo_cap_name(bit)));
            json_array_append_new(
                hosts,
                json_pack("{s:s, s:i, s:s, s:s?, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:i, "
                          "s:o, s:s, s:s, s:I, s:b, s:b, s:s}",
                          "name", h->name, "preference", h->pref, "address", t->addr, "addresses",
                          h->addr_state, "done", t->done, "connected", r->connected, "starttls",
                          r->starttls_offered, "tls", r->tls_ok, "pkix", r->pkix_ok, "dane",
                          r->dane_ok, "requiretls", r->requiretls_advertised, "timed_out",
                          r->timed_out, "tlsa", (int)r->ntlsa, "caps", caps, "tls_version",
                          r->tls_version, "cipher", r->cipher, "elapsed_ms",
                          (json_int_t)r->elapsed_ms, "from_cache", r->from_cache, "ok",
                          t->done && passed(r), "why", t->done ? t->why : "abandoned"));
        }
    }
    o = json_pack("{s:s, s:s, s:o}", "key", j->arg, "domain", j->domain, "hosts", hosts);
    if (j->have_facts)
        json_object_set_new(o, "dane",
                            json_pack("{s:s, s:b, s:s}", "state", dane_state_name(j->facts.state),
                                      "mx_secure", j->facts.mx_secure, "why", j->facts.why));
    json_object_set_new(o, "why", j->why[0] ? json_string(j->why) : json_null());
    return o;
}

static int job_ok(const struct job *j)
{
    for (unsigned i = 0; i < j->nhosts; i++)
        for (unsigned k = 0; k < j->hosts[i].nt; k++)
            if (j->hosts[i].t[k].done && passed(&j->hosts[i].t[k].res))
                return 1;
    return 0;
}

/* --tlsa "USAGE SELECTOR MTYPE HEX" */
static int parse_tlsa(const char *text, struct probe_tlsa *t, uint8_t *buf, size_t cap)
{
    unsigned u, s, m;
    int off = 0;
    size_t n = 0;
    const char *p;

    if (sscanf(text, "%u %u %u %n", &u, &s, &m, &off) != 3 || u > 255 || s > 255 || m > 255)
        return -1;
    for (p = text + off; p[0] && p[1] && n < cap; p += 2) {
        unsigned v;

        if (sscanf(p, "%2x", &v) != 1)
            return -1;
        buf[n++] = (uint8_t)v;
    }
    if (n == 0 || *p != '\0')
        return -1;
    t->usage = (uint8_t)u;
    t->selector = (uint8_t)s;
    t->mtype = (uint8_t)m;
    t->data = buf;
    t->len = n;
    return 0;
}

static void usage(void)
{
    fprintf(
        stderr,
        "usage: tlspolicyd probe [-c FILE] [-o key=value]... [--port N] [--json] DOMAIN...\n"
        "       tlspolicyd probe [-c FILE] [-o key=value]... [--port N] [--json] "
        "--connect ADDR... [--tlsa 'U S M HEX']... HOST...\n"
        "  --port N           SMTP port of the MX hosts (default 25)\n"
        "  --json             JSON instead of one line per host address\n"
        "  --connect ADDR     probe HOST at ADDR (repeatable) instead of its MX hosts' addresses\n"
        "  --tlsa 'U S M HEX' with --connect: a TLSA record for DANE (repeatable)\n"
        "  --repeat N         start each probe N times at once (they share one connection)\n"
        "  --destroy-after MS destroy the probe service after MS (tests its cancel path)\n"
        "  --wait MS          wait MS between arguments, the loop running (background probes)\n");
}

struct destroy_timer {
    uv_timer_t t;
    struct probe_svc **p;
    int fired;
};

/* --wait: the pause between two arguments, with the loop running. */
static void on_wait_timer(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

static void on_destroy_timer(uv_timer_t *t)
{
    struct destroy_timer *d = (struct destroy_timer *)t;

    d->fired = 1;
    probe_svc_destroy(*d->p);
    *d->p = NULL;
}

int probe_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'P'},
        {"json", no_argument, NULL, 'j'},
        {"connect", required_argument, NULL, 'C'},
        {"tlsa", required_argument, NULL, 'T'},
        {"repeat", required_argument, NULL, 'R'},
        {"destroy-after", required_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},
        {"wait", required_argument, NULL, 'W'},
        {NULL, 0, NULL, 0},
    };
    const char *connect[MAX_CONNECT];
    size_t nconnect = 0, ntlsa = 0;
    struct probe_tlsa tlsa[PROBE_MAX_TLSA];
    static uint8_t tlsa_buf[PROBE_MAX_TLSA][4096];
    unsigned long port = 0, repeat = 1, destroy_after = 0, wait_ms = 0;
    int ch, status = 2;
    struct cmdline cl;
    struct resolver *r = NULL;
    struct probe_svc *p = NULL;
    struct destroy_timer dt;
    uv_timer_t wait_timer;
    int waited = 0;
    char err[512];

    cmdline_init(&cl, argc);
    optind = 1;
    while ((ch = getopt_long(argc, argv, CMDLINE_SHORTOPTS, longopts, NULL)) != -1) {
        char *end;

        if (cmdline_option(&cl, ch, optarg))
            continue;
        switch (ch) {
        case 'P':
            port = strtoul(optarg, &end, 10);
            if (*optarg == '\0' || *end || port == 0 || port > 65535) {
                fprintf(stderr, "tlspolicyd: --port %s: expected 1 to 65535\n", optarg);
                cmdline_free(&cl);
                return 2;
            }
            break;
        case 'C':
            if (nconnect == MAX_CONNECT) {
                fprintf(stderr, "tlspolicyd: at most %d --connect addresses\n", MAX_CONNECT);
                cmdline_free(&cl);
                return 2;
            }
            connect[nconnect++] = optarg;
            break;
        case 'T':
            if (ntlsa == PROBE_MAX_TLSA ||
                parse_tlsa(optarg, &tlsa[ntlsa], tlsa_buf[ntlsa], sizeof(tlsa_buf[0])) < 0) {
                fprintf(stderr, "tlspolicyd: --tlsa %s: expected 'USAGE SELECTOR MTYPE HEX'\n",
                        optarg);
                cmdline_free(&cl);
                return 2;
            }
            ntlsa++;
            break;
        case 'R':
            repeat = strtoul(optarg, &end, 10);
            if (*optarg == '\0' || *end || repeat == 0 || repeat > MAX_REPEAT) {
                fprintf(stderr, "tlspolicyd: --repeat %s: expected 1 to %d\n", optarg, MAX_REPEAT);
                cmdline_free(&cl);
                return 2;
            }
            break;
        case 'D':
            destroy_after = strtoul(optarg, &end, 10);
            if (*optarg == '\0' || *end || destroy_after == 0) {
                fprintf(stderr, "tlspolicyd: --destroy-after %s: expected milliseconds\n", optarg);
                cmdline_free(&cl);
                return 2;
            }
            break;
        case 'W':
            wait_ms = strtoul(optarg, &end, 10);
            if (*optarg == '\0' || *end || wait_ms == 0) {
                fprintf(stderr, "tlspolicyd: --wait %s: expected milliseconds\n", optarg);
                cmdline_free(&cl);
                return 2;
            }
            break;
        default:
            usage();
            cmdline_free(&cl);
            return 2;
        }
    }
    if (optind >= argc || (ntlsa > 0 && nconnect == 0)) {
        usage();
        cmdline_free(&cl);
        return 2;
    }
    if (cmdline_start(&cl) < 0) {
        cmdline_free(&cl);
        return 2;
    }
    {
        struct probe_opts po = {.ca_file = cl.cfg.probe_ca_file,
                                .helo_name = cl.cfg.probe_helo_name,
                                .timeout_ms = cl.cfg.probe_timeout_ms,
                                .ttl_ms = cl.cfg.probe_ttl_ms,
                                .max_concurrent = cl.cfg.probe_max_concurrent,
                                .port = (unsigned)port};

        p = probe_svc_create(&cl.loop, &po, err, sizeof(err));
        if (p == NULL) {
            fprintf(stderr, "tlspolicyd: %s\n", err);
            goto done;
        }
    }
    if (nconnect == 0) {
        r = resolver_create(&cl.loop, &cl.cfg, err, sizeof(err));
        if (r == NULL) {
            fprintf(stderr, "tlspolicyd: %s\n", err);
            goto done;
        }
    }
    if (destroy_after) {
        uv_timer_init(&cl.loop, &dt.t);
        dt.p = &p;
        dt.fired = 0;
        uv_timer_start(&dt.t, on_destroy_timer, destroy_after, 0);
    }
    if (wait_ms) {
        uv_timer_init(&cl.loop, &wait_timer);
        wait_timer.data = &waited;
    }

    status = 0;
    for (int i = optind; i < argc; i++) {
        struct job *j = xcalloc(1, sizeof(*j));
        const char *why = NULL;

        j->arg = argv[i];
        j->r = r;
        j->p = p;
        j->repeat = (unsigned)repeat;
        if (wait_ms && i > optind) {
            waited = 0;
            uv_timer_start(&wait_timer, on_wait_timer, wait_ms, 0);
            while (!waited)
                uv_run(&cl.loop, UV_RUN_ONCE);
        }
        if (domain_normalize(argv[i], strlen(argv[i]), j->domain, &why) != DOMAIN_OK) {
            snprintf(j->why, sizeof(j->why), "not a domain name: %s", why);
            j->error = 1;
        } else if (p == NULL) {
            snprintf(j->why, sizeof(j->why), "probe service destroyed (--destroy-after)");
            j->error = 1;
        } else if (nconnect > 0) {
            struct host *h = add_host(j, j->domain, 0);

            memcpy(h->tlsa, tlsa, ntlsa * sizeof(tlsa[0]));
            h->ntlsa = ntlsa;
            for (size_t k = 0; k < nconnect; k++)
                snprintf(h->addrs[h->naddrs++], ADDR_LEN, "%s", connect[k]);
            j->pending++;
            start_probes(h);
            j->pending--;
        } else {
            j->pending++;
            j->dl = dane_start(r, j->domain, on_dane, j);
        }
        job_check(j);
        /* Probes and DNS answers arrive on the loop; probe_timeout bounds each probe. */
        while (!j->done) {
            uv_run(&cl.loop, UV_RUN_ONCE);
            if (p == NULL && !j->done)
                job_abandon(j);
        }
        if (j->error || !job_ok(j))
            status = 1;
        if (cl.out)
            json_array_append_new(cl.out, job_json(j));
        else
            print_text(j);
        free(j);
    }
    cmdline_print_json(&cl);
done:
    if (destroy_after)
        uv_close((uv_handle_t *)&dt.t, NULL);
    if (wait_ms)
        uv_close((uv_handle_t *)&wait_timer, NULL);
    probe_svc_destroy(p);
    resolver_destroy(r);
    if (cmdline_close_loop(&cl) != 0) {
        fprintf(stderr, "tlspolicyd: handles left open at exit\n");
        status = 2;
    }
    cmdline_free(&cl);
    return status;
}
