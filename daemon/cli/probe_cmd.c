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
#include <limits.h>
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
    struct dane_facts facts;      /* TLSA data the probes point into lives here */
    char facts_why[DANE_WHY_MAX]; /* facts.why */
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
    dane_facts_copy(&j->facts, f, j->facts_why);
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

/* What the command line asked for, besides the options cmdline.c takes. */
struct args {
    const char *connect[MAX_CONNECT];
    size_t nconnect, ntlsa;
    struct probe_tlsa tlsa[PROBE_MAX_TLSA];
    unsigned long port, repeat, destroy_after, wait_ms;
};

struct destroy_timer {
    uv_timer_t t;
    struct probe_svc **p;
    int fired;
};

/* One run of the command: its arguments, the services and the timers of the options. */
struct run {
    struct args a;
    struct cmdline cl;
    struct resolver *r;
    struct probe_svc *p; /* NULL once --destroy-after has destroyed it */
    struct destroy_timer dt;
    uv_timer_t wait_timer;
    int waited;
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

/*
 * A number option in min..max into *out: 0, or -1 after a message on stderr ("expected
 * milliseconds" when there is no upper bound).
 */
static int number_arg(const char *opt, const char *arg, unsigned long min, unsigned long max,
                      unsigned long *out)
{
    char *end;
    unsigned long v = strtoul(arg, &end, 10);

    if (*arg != '\0' && *end == '\0' && v >= min && v <= max) {
        *out = v;
        return 0;
    }
    if (max == ULONG_MAX)
        fprintf(stderr, "tlspolicyd: --%s %s: expected milliseconds\n", opt, arg);
    else
        fprintf(stderr, "tlspolicyd: --%s %s: expected %lu to %lu\n", opt, arg, min, max);
    return -1;
}

/* One option of the probe command's own: 0, or -1 after a message on stderr. */
static int take_option(struct args *a, int ch, const char *arg)
{
    static uint8_t tlsa_buf[PROBE_MAX_TLSA][4096];

    switch (ch) {
    case 'P':
        return number_arg("port", arg, 1, 65535, &a->port);
    case 'C':
        if (a->nconnect == MAX_CONNECT) {
            fprintf(stderr, "tlspolicyd: at most %d --connect addresses\n", MAX_CONNECT);
            return -1;
        }
        a->connect[a->nconnect++] = arg;
        return 0;
    case 'T':
        if (a->ntlsa == PROBE_MAX_TLSA ||
            parse_tlsa(arg, &a->tlsa[a->ntlsa], tlsa_buf[a->ntlsa], sizeof(tlsa_buf[0])) < 0) {
            fprintf(stderr, "tlspolicyd: --tlsa %s: expected 'USAGE SELECTOR MTYPE HEX'\n", arg);
            return -1;
        }
        a->ntlsa++;
        return 0;
    case 'R':
        return number_arg("repeat", arg, 1, MAX_REPEAT, &a->repeat);
    case 'D':
        return number_arg("destroy-after", arg, 1, ULONG_MAX, &a->destroy_after);
    case 'W':
        return number_arg("wait", arg, 1, ULONG_MAX, &a->wait_ms);
    }
    usage();
    return -1;
}

/* The command line into run->a and run->cl: 0, or -1 after a message on stderr. */
static int parse_args(struct run *run, int argc, char **argv)
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
    int ch;

    run->a.repeat = 1;
    optind = 1;
    while ((ch = getopt_long(argc, argv, CMDLINE_SHORTOPTS, longopts, NULL)) != -1) {
        if (cmdline_option(&run->cl, ch, optarg))
            continue;
        if (take_option(&run->a, ch, optarg) < 0)
            return -1;
    }
    if (optind >= argc || (run->a.ntlsa > 0 && run->a.nconnect == 0)) {
        usage();
        return -1;
    }
    return 0;
}

/* The probe service, the resolver (without --connect) and the timers of the options. */
static int open_services(struct run *run)
{
    const struct config *cfg = &run->cl.cfg;
    struct probe_opts po = {.ca_file = cfg->probe_ca_file,
                            .helo_name = cfg->probe_helo_name,
                            .timeout_ms = cfg->probe_timeout_ms,
                            .ttl_ms = cfg->probe_ttl_ms,
                            .max_concurrent = cfg->probe_max_concurrent,
                            .port = (unsigned)run->a.port};
    char err[512];

    run->p = probe_svc_create(&run->cl.loop, &po, err, sizeof(err));
    if (run->p == NULL) {
        fprintf(stderr, "tlspolicyd: %s\n", err);
        return -1;
    }
    if (run->a.nconnect == 0) {
        run->r = resolver_create(&run->cl.loop, cfg, err, sizeof(err));
        if (run->r == NULL) {
            fprintf(stderr, "tlspolicyd: %s\n", err);
            return -1;
        }
    }
    if (run->a.destroy_after) {
        uv_timer_init(&run->cl.loop, &run->dt.t);
        run->dt.p = &run->p;
        run->dt.fired = 0;
        uv_timer_start(&run->dt.t, on_destroy_timer, run->a.destroy_after, 0);
    }
    if (run->a.wait_ms) {
        uv_timer_init(&run->cl.loop, &run->wait_timer);
        run->wait_timer.data = &run->waited;
    }
    return 0;
}

/* --wait: run the loop for wait_ms (background probes go on meanwhile). */
static void pause_between(struct run *run)
{
    run->waited = 0;
    uv_timer_start(&run->wait_timer, on_wait_timer, run->a.wait_ms, 0);
    while (!run->waited)
        uv_run(&run->cl.loop, UV_RUN_ONCE);
}

/* --connect: the named host at the given addresses, with the --tlsa records. */
static void start_connect(struct job *j, const struct args *a)
{
    struct host *h = add_host(j, j->domain, 0);

    memcpy(h->tlsa, a->tlsa, a->ntlsa * sizeof(a->tlsa[0]));
    h->ntlsa = a->ntlsa;
    for (size_t k = 0; k < a->nconnect; k++)
        snprintf(h->addrs[h->naddrs++], ADDR_LEN, "%s", a->connect[k]);
    j->pending++;
    start_probes(h);
    j->pending--;
}

/* Start the job of one argument: a DANE walk of its MX hosts, or --connect's probes. */
static void start_job(struct run *run, struct job *j, const char *arg)
{
    const char *why = NULL;

    if (domain_normalize(arg, strlen(arg), j->domain, &why) != DOMAIN_OK) {
        snprintf(j->why, sizeof(j->why), "not a domain name: %s", why);
        j->error = 1;
    } else if (run->p == NULL) {
        snprintf(j->why, sizeof(j->why), "probe service destroyed (--destroy-after)");
        j->error = 1;
    } else if (run->a.nconnect > 0) {
        start_connect(j, &run->a);
    } else {
        j->pending++;
        j->dl = dane_start(run->r, NULL, j->domain, on_dane, j);
    }
    job_check(j);
}

/* Probe for one argument and print what was found. Returns 1 when it did not pass. */
static int run_arg(struct run *run, const char *arg, int first)
{
    struct job *j = xcalloc(1, sizeof(*j));
    int failed;

    j->arg = arg;
    j->r = run->r;
    j->p = run->p;
    j->repeat = (unsigned)run->a.repeat;
    if (run->a.wait_ms && !first)
        pause_between(run);
    start_job(run, j, arg);
    /* Probes and DNS answers arrive on the loop; probe_timeout bounds each probe. */
    while (!j->done) {
        uv_run(&run->cl.loop, UV_RUN_ONCE);
        if (run->p == NULL && !j->done)
            job_abandon(j);
    }
    failed = j->error || !job_ok(j);
    if (run->cl.out)
        json_array_append_new(run->cl.out, job_json(j));
    else
        print_text(j);
    free(j);
    return failed;
}

/* Close what open_services() opened; the exit status, 2 when handles were left open. */
static int close_services(struct run *run, int status)
{
    /* Only the timers open_services() got to (it sets dt.p and wait_timer.data). */
    if (run->dt.p != NULL)
        uv_close((uv_handle_t *)&run->dt.t, NULL);
    if (run->wait_timer.data != NULL)
        uv_close((uv_handle_t *)&run->wait_timer, NULL);
    probe_svc_destroy(run->p);
    resolver_destroy(run->r);
    if (cmdline_close_loop(&run->cl) != 0) {
        fprintf(stderr, "tlspolicyd: handles left open at exit\n");
        status = 2;
    }
    return status;
}

int probe_main(int argc, char **argv)
{
    struct run run;
    int status = 2;

    memset(&run, 0, sizeof(run));
    cmdline_init(&run.cl, argc);
    if (parse_args(&run, argc, argv) < 0 || cmdline_start(&run.cl) < 0)
        goto done;
    if (open_services(&run) == 0) {
        status = 0;
        for (int i = optind; i < argc; i++)
            if (run_arg(&run, argv[i], i == optind))
                status = 1;
        cmdline_print_json(&run.cl);
    }
    status = close_services(&run, status);
done:
    cmdline_free(&run.cl);
    return status;
}
