/*
 * The query command: the daemon's lookup path on a private loop, printed for people
 * (one answer and its reason per domain) or as JSON (jansson) for scripts.
 */
#include "query.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "config.h"
#include "log.h"
#include "lookup.h"
#include "overrides.h"
#include "xalloc.h"

struct query_state {
    const char *key;
    json_t *out; /* array of results, for --json */
    int failed;
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
    return facts;
}

static void on_done(void *arg, const struct lookup_result *res)
{
    struct query_state *q = arg;
    const char *word = sockmap_status_word(res->ans.status);

    if (res->ans.status != SOCKMAP_OK && res->ans.status != SOCKMAP_NOTFOUND)
        q->failed = 1;
    if (q->out != NULL) {
        json_t *o =
            json_pack("{s:s, s:s, s:s, s:s, s:s}", "key", q->key, "map", engine_map_name(res->map),
                      "status", word, "answer", res->ans.text, "rule", res->ans.rule);

        json_object_set_new(o, "domain", res->domain[0] ? json_string(res->domain) : json_null());
        json_object_set_new(o, "detail", res->detail ? json_string(res->detail) : json_null());
        if (res->domain[0])
            json_object_set_new(o, "facts", facts_json(res));
        json_array_append_new(q->out, o);
        return;
    }
    printf("%s\t%s%s%s\n", q->key, word, res->ans.text[0] ? " " : "", res->ans.text);
    printf("  map %s, rule %s", engine_map_name(res->map), res->ans.rule);
    if (res->domain[0] && strcmp(res->domain, q->key) != 0)
        printf(", normalised to %s", res->domain);
    if (res->facts.has_override)
        printf(", overrides entry %s", res->facts.override_key);
    else if (res->detail)
        printf(": %s", res->detail);
    printf("\n");
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
    const char *file = NULL, *map = "policy";
    char **opts = xcalloc((size_t)argc, sizeof(char *));
    size_t nopts = 0;
    int json = 0, ch, status = 2;
    struct config cfg;
    struct lookup_svc svc = {0};
    uv_loop_t loop;
    json_t *out = NULL;
    char err[512];

    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:o:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            file = optarg;
            break;
        case 'o':
            opts[nopts++] = optarg;
            break;
        case 'm':
            map = optarg;
            break;
        case 'j':
            json = 1;
            break;
        default:
            usage();
            free(opts);
            return 2;
        }
    }
    if (optind >= argc) {
        usage();
        free(opts);
        return 2;
    }
    if (config_load(&cfg, file, opts, nopts, err, sizeof(err)) < 0) {
        fprintf(stderr, "tlspolicyd: %s\n", err);
        free(opts);
        return 2;
    }
    /* Log lines go to stderr; the answers go to stdout. */
    log_open(cfg.log_level < LOG_WARNING ? cfg.log_level : LOG_WARNING, 0);
    svc.overrides =
        cfg.overrides[0] ? overrides_load(cfg.overrides, err, sizeof(err)) : overrides_empty();
    if (svc.overrides == NULL) {
        fprintf(stderr, "tlspolicyd: %s\n", err);
        goto done;
    }
    uv_loop_init(&loop);
    if (json)
        out = json_array();

    status = 0;
    for (int i = optind; i < argc; i++) {
        struct query_state q = {.key = argv[i], .out = out};
        struct sockmap_request req = {
            .name = map, .namelen = strlen(map), .key = argv[i], .keylen = strlen(argv[i])};

        lookup_start(&svc, &req, on_done, &q);
        /* Later lookups complete on the loop; run it until this one has answered. */
        uv_run(&loop, UV_RUN_DEFAULT);
        if (q.failed)
            status = 1;
    }
    if (out != NULL) {
        json_dumpf(out, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("\n");
        json_decref(out);
    }
    uv_loop_close(&loop);
done:
    overrides_free(svc.overrides);
    config_free(&cfg);
    free(opts);
    return status;
}
