/*
 * tlspolicyd: TLS policy for outbound SMTP, served to Postfix over socketmap.
 *
 *   tlspolicyd [-c FILE] [-o key=value]... [-t] [-p]   run in the foreground (or check)
 *   tlspolicyd query ...                               resolve without a daemon
 *   tlspolicyd probe ...                               probe MX hosts for REQUIRETLS
 *   tlspolicyd state export | import FILE|-            persisted policies as JSON lines
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cafile.h"
#include "fleet.h"
#include "config.h"
#include "fdwatch.h"
#include "listener.h"
#include "log.h"
#include "overrides.h"
#include "probe_cmd.h"
#include "query.h"
#include "server.h"
#include "privs.h"
#include "state_cmd.h"
#include "store.h"
#include "xalloc.h"

static void usage(FILE *fp)
{
    fprintf(fp, "usage: tlspolicyd [-c FILE] [-o key=value]... [-t | -p]\n"
                "       tlspolicyd query [-c FILE] [-o key=value]... [--map NAME] [--json] "
                "DOMAIN...\n"
                "       tlspolicyd probe [-c FILE] [-o key=value]... [--port N] [--json] "
                "DOMAIN...\n"
                "       tlspolicyd state export [-c FILE] [-o key=value]...\n"
                "       tlspolicyd state import [-c FILE] [-o key=value]... FILE|-\n"
                "  -c FILE       configuration file (default: built-in defaults only)\n"
                "  -o key=value  override a configuration key (repeatable)\n"
                "  -t            check the configuration and the overrides table, then exit\n"
                "  -p            print the effective configuration, then exit\n"
                "  -V            print the version\n");
}

/* state_dir's store files, as far as a check without opening the store can tell. */
static int check_state(const struct config *cfg, char *err, size_t errlen)
{
    uid_t uid;
    gid_t gid;

    if (cfg->state_dir[0] == '\0')
        return 0;
    privs_owner(cfg, &uid, &gid);
    return store_check(cfg->state_dir, uid, err, errlen);
}

/* -t: everything start-up checks short of binding; -p: print the configuration. */
static int check_only(const char *file, char **opts, size_t nopts, int print)
{
    struct config cfg;
    struct overrides *ov;
    char err[512];

    if (config_load(&cfg, file, opts, nopts, err, sizeof(err)) < 0) {
        fprintf(stderr, "tlspolicyd: %s\n", err);
        return 1;
    }
    /* What start-up will need beyond the configuration: the user, the socket directories. */
    if (!print && (server_check_user(&cfg, err, sizeof(err)) < 0 ||
                   listener_check_all(&cfg, err, sizeof(err)) < 0 ||
                   check_state(&cfg, err, sizeof(err)) < 0)) {
        fprintf(stderr, "tlspolicyd: %s\n", err);
        config_free(&cfg);
        return 1;
    }
    ov = cfg.overrides[0] ? overrides_load(cfg.overrides, err, sizeof(err)) : overrides_empty();
    if (ov == NULL) {
        fprintf(stderr, "tlspolicyd: %s\n", err);
        config_free(&cfg);
        return 1;
    }
    /* The CA files start-up reads into memory: missing, unreadable, or no certificate. */
    if (!print && (cafile_check_config(&cfg, err, sizeof(err)) < 0 ||
                   fleet_check_config(&cfg, err, sizeof(err)) < 0)) {
        fprintf(stderr, "tlspolicyd: %s\n", err);
        overrides_free(ov);
        config_free(&cfg);
        return 1;
    }
    if (print)
        config_print(&cfg, stdout);
    else
        fprintf(stderr, "tlspolicyd: configuration OK (%s; %zu overrides)\n",
                file ? file : "built-in defaults", overrides_count(ov));
    overrides_free(ov);
    config_free(&cfg);
    return 0;
}

int main(int argc, char **argv)
{
    const char *file = NULL;
    char **opts;
    size_t nopts = 0;
    int ch, test = 0, print = 0, rc;
    char err[512] = "";
    uv_loop_t *loop = NULL;
    struct server srv;

    if (argc > 1 && strcmp(argv[1], "query") == 0)
        return query_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "probe") == 0)
        return probe_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "state") == 0)
        return state_main(argc - 1, argv + 1);

    opts = xcalloc((size_t)argc, sizeof(char *));
    while ((ch = getopt(argc, argv, "c:o:tpVh")) != -1) {
        switch (ch) {
        case 'c':
            file = optarg;
            break;
        case 'o':
            opts[nopts++] = optarg;
            break;
        case 't':
            test = 1;
            break;
        case 'p':
            print = 1;
            break;
        case 'V':
            printf("tlspolicyd %s\n", TLSPOLICYD_VERSION);
            free(opts);
            return 0;
        case 'h':
            usage(stdout);
            free(opts);
            return 0;
        default:
            usage(stderr);
            free(opts);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tlspolicyd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        free(opts);
        return 2;
    }
    if (test || print) {
        rc = check_only(file, opts, nopts, print);
        free(opts);
        return rc;
    }

    /* A peer that closes while an answer is in flight must not kill the daemon. */
    signal(SIGPIPE, SIG_IGN);
    /* Below the floor libuv aborts, or gives no loop, before anything could say why. */
    if (fdwatch_floor(err, sizeof(err)) < 0 || (loop = uv_default_loop()) == NULL) {
        fprintf(stderr, "tlspolicyd: fatal: %s\n",
                loop == NULL && err[0] == '\0' ? "cannot make the event loop" : err);
        free(opts);
        return 1;
    }
    if (server_init(&srv, loop, file, opts, nopts) < 0) {
        free(opts);
        return 1;
    }
    rc = server_run(&srv);
    free(opts);
    return rc;
}
