/*
 * The query command: the daemon's lookup path on a private loop, printed for people
 * (one answer and its reason per domain) or as JSON (jansson) for scripts.
 */
#include "query.h"

#include <getopt.h>
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "cmdline.h"
#include "config.h"
#include "lookup.h"
#include "overrides.h"
#include "resolver.h"

struct query_state {
    const char *key;
    json_t *out; /* array of results, for --json */
    int failed;
    int answered;
};

static json_t *facts_json(const struct lookup_result *res)
{
    json_t *facts = json_object();

    if (res->facts.has_override) {
        json_object_set_new(facts, "override",
                            json_pack("{s:s, s:s}", "entry", res->facts.override_key, "value",
                                      res->facts.override_value));
    } else {
        json_object_set_new(facts, "override", json_null());
    }
    if (res->facts.dane) {
        const struct dane_facts *d = res->facts.dane;
        json_t *hosts = json_array();
        static const char *const addr[] = {"secure", "insecure", "none"};

        for (unsigned i = 0; i < d->nhosts; i++) {
            const struct dane_host *h = &d->hosts[i];

            json_array_append_new(hosts,
                                  json_pack("{s:s, s:i, s:s, s:s?, s:i, s:i, s:b}", "name", h->name,
                                            "preference", h->preference, "addresses", addr[h->addr],
                                            "tlsa_owner", h->tlsa_owner[0] ? h->tlsa_owner : NULL,
                                            "tlsa_usable", h->tlsa_usable, "tlsa_unusable",
                                            h->tlsa_unusable, "failed", h->failed));
        }
        json_object_set_new(facts, "dane",
                            json_pack("{s:s, s:s, s:b, s:b, s:b, s:o}", "state",
                                      dane_state_name(d->state), "why", d->why, "mx_secure",
                                      d->mx_secure, "implicit_mx", d->implicit_mx, "null_mx",
                                      d->null_mx, "hosts", hosts));
    } else {
        json_object_set_new(facts, "dane", json_null());
    }
    if (res->facts.sts) {
        const struct mtasts_facts *m = res->facts.sts;
        json_t *sts =
            json_pack("{s:s, s:s, s:s, s:s, s:b, s:b}", "state",
                      m->state == MTASTS_POLICY ? "policy" : "none", "why", m->why, "txt", m->txt,
                      "fetch", m->fetch, "cached", m->cached, "local_fault", m->local_fault);

        if (m->state == MTASTS_POLICY) {
            json_t *mx = json_array();
            time_t now = time(NULL);

            for (const char *pat = sts_policy_mx(&m->policy, 0); pat;
                 pat = sts_policy_next(&m->policy, pat))
                json_array_append_new(mx, json_string(pat));
            json_object_set_new(sts, "policy",
                                json_pack("{s:s, s:s, s:I, s:o, s:I, s:I, s:I}", "id", m->id,
                                          "mode", sts_mode_name(m->policy.mode), "max_age",
                                          (json_int_t)m->policy.max_age, "mx", mx, "fetched",
                                          (json_int_t)m->fetched, "expires", (json_int_t)m->expires,
                                          "age", (json_int_t)(now - m->fetched)));
        }
        json_object_set_new(facts, "sts", sts);
    } else {
        json_object_set_new(facts, "sts", json_null());
    }
    return facts;
}

static void on_done(void *arg, const struct lookup_result *res)
{
    struct query_state *q = arg;
    const char *word = sockmap_status_word(res->ans.status);

    q->answered = 1;
    if (res->ans.status != SOCKMAP_OK && res->ans.status != SOCKMAP_NOTFOUND)
        q->failed = 1;
    if (q->out != NULL) {
        json_t *o =
            json_pack("{s:s, s:s, s:s, s:s, s:s}", "key", q->key, "map", sockmap_map_name(res->map),
                      "status", word, "answer", res->ans.text, "rule", res->ans.rule);

        json_object_set_new(o, "domain", res->domain[0] ? json_string(res->domain) : json_null());
        json_object_set_new(o, "detail", res->detail ? json_string(res->detail) : json_null());
        if (res->domain[0])
            json_object_set_new(o, "facts", facts_json(res));
        json_array_append_new(q->out, o);
        return;
    }
    printf("%s\t%s%s%s\n", q->key, word, res->ans.text[0] ? " " : "", res->ans.text);
    printf("  map %s, rule %s", sockmap_map_name(res->map), res->ans.rule);
    if (res->domain[0] && strcmp(res->domain, q->key) != 0)
        printf(", normalised to %s", res->domain);
    if (res->facts.has_override)
        printf(", overrides entry %s", res->facts.override_key);
    else if (res->detail)
        printf(": %s", res->detail);
    printf("\n");
    if (res->facts.sts) {
        const struct mtasts_facts *m = res->facts.sts;

        if (m->state == MTASTS_POLICY)
            printf("  mta-sts policy id %s, mode %s, max_age %u, age %llds%s: %s\n", m->id,
                   sts_mode_name(m->policy.mode), (unsigned)m->policy.max_age,
                   (long long)(time(NULL) - m->fetched), m->cached ? " (cached)" : "", m->why);
        else
            printf("  mta-sts none: %s\n", m->why);
    }
    if (res->facts.dane) {
        const struct dane_facts *d = res->facts.dane;

        printf("  dane %s: %s\n", dane_state_name(d->state), d->why);
        for (unsigned i = 0; i < d->nhosts; i++)
            printf("    mx %u %s: %saddresses %s, TLSA %s%s%u usable, %u unusable\n",
                   d->hosts[i].preference, d->hosts[i].name,
                   d->hosts[i].failed ? "lookups FAILED (unusable), " : "",
                   d->hosts[i].addr == DANE_ADDR_SECURE     ? "secure"
                   : d->hosts[i].addr == DANE_ADDR_INSECURE ? "insecure"
                                                            : "none",
                   d->hosts[i].tlsa_owner[0] ? d->hosts[i].tlsa_owner : "not looked up",
                   d->hosts[i].tlsa_owner[0] ? ": " : " ", d->hosts[i].tlsa_usable,
                   d->hosts[i].tlsa_unusable);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: tlspolicyd query [-c FILE] [-o key=value]... [--map NAME] [--json] "
                    "DOMAIN...\n");
}

int query_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"map", required_argument, NULL, 'm'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *map = "policy";
    int ch, status = 2;
    struct cmdline cl;
    struct lookup_svc svc;
    char err[512];

    cmdline_init(&cl, argc);
    optind = 1;
    while ((ch = getopt_long(argc, argv, CMDLINE_SHORTOPTS, longopts, NULL)) != -1) {
        if (cmdline_option(&cl, ch, optarg))
            continue;
        switch (ch) {
        case 'm':
            map = optarg;
            break;
        default:
            usage();
            cmdline_free(&cl);
            return 2;
        }
    }
    if (optind >= argc) {
        usage();
        cmdline_free(&cl);
        return 2;
    }
    if (cmdline_start(&cl) < 0) {
        cmdline_free(&cl);
        return 2;
    }
    lookup_svc_init(&svc, &cl.loop);
    svc.overrides = cl.cfg.overrides[0] ? overrides_load(cl.cfg.overrides, err, sizeof(err))
                                        : overrides_empty();
    if (svc.overrides == NULL) {
        fprintf(stderr, "tlspolicyd: %s\n", err);
        goto done;
    }
    {
        /* state_dir belongs to the daemon's user; root finds it owned by that user. */
        struct passwd *pw = geteuid() == 0 && cl.cfg.user[0] ? getpwnam(cl.cfg.user) : NULL;

        if (lookup_svc_open(&svc, &cl.cfg, pw ? pw->pw_uid : (uid_t)-1, pw ? pw->pw_gid : (gid_t)-1,
                            err, sizeof(err)) < 0) {
            fprintf(stderr, "tlspolicyd: %s\n", err);
            goto done;
        }
    }
    if (lookup_svc_load(&svc, &cl.cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "tlspolicyd: %s\n", err);
        goto done;
    }

    status = 0;
    for (int i = optind; i < argc; i++) {
        struct query_state q = {.key = argv[i], .out = cl.out};
        struct sockmap_request req = {
            .name = map, .namelen = strlen(map), .key = argv[i], .keylen = strlen(argv[i])};

        lookup_start(&svc, &req, on_done, &q);
        /* DNS answers arrive on the loop; lookup_timeout bounds the wait. */
        while (!q.answered)
            uv_run(&cl.loop, UV_RUN_ONCE);
        if (q.failed)
            status = 1;
    }
    cmdline_print_json(&cl);
done:
    lookup_svc_close(&svc);
    cmdline_close_loop(&cl);
    overrides_free(svc.overrides);
    cmdline_free(&cl);
    return status;
}
