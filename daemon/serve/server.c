/*
 * The daemon's life: start-up (configuration, overrides, listeners, privilege drop),
 * SIGHUP reloads, and SIGTERM/SIGINT drains. Start-up errors are fatal with one line;
 * reload errors are logged and the configuration in force stays.
 */
#include "server.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cafile.h"
#include "conn.h"
#include "dane_cache.h"
#include "http.h"
#include "listener.h"
#include "fdwatch.h"
#include "log.h"
#include "metrics.h"
#include "overrides.h"
#include "privs.h"
#include "resolver.h"
#include "xalloc.h"

/* Drain progress is checked this often after SIGTERM. */
#define DRAIN_POLL_MS 20

static struct overrides *load_overrides(const struct config *cfg, char *err, size_t errlen)
{
    if (cfg->overrides[0] == '\0')
        return overrides_empty();
    return overrides_load(cfg->overrides, err, errlen);
}

/* Room for max_connections sockets plus listeners and the resolver's sockets; main() has
 * already raised the soft limit to the hard one (fdwatch_floor()). */
static void warn_fd_limit(unsigned want)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)want + 64)
        log_warning("open file limit %lu is below max_connections %u plus headroom; raise it "
                    "(LimitNOFILE=, ulimit -n)",
                    (unsigned long)rl.rlim_cur, want);
}

int server_check_user(const struct config *cfg, char *err, size_t errlen)
{
    if (geteuid() != 0 || cfg->user[0] == '\0' || getpwnam(cfg->user) != NULL)
        return 0;
    snprintf(err, errlen,
             "user = %s: no such user; create it (adduser --system --group --no-create-home "
             "--home /nonexistent %s) or set user to another one",
             cfg->user, cfg->user);
    return -1;
}

/* After binding: a root daemon becomes cfg->user (SPEC 7, security defaults). */
static int drop_privileges(const struct config *cfg, char *err, size_t errlen)
{
    int rc = privs_drop(cfg, err, errlen);

    if (rc == 0 && geteuid() == 0)
        log_warning("running as root: set user = NAME to drop privileges after binding");
    else if (rc == 1)
        log_info("running as user %s (uid %ld)", cfg->user, (long)getuid());
    return rc < 0 ? -1 : 0;
}

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void finish_drain(struct server *srv)
{
    uv_timer_stop(&srv->drain_timer);
    uv_close((uv_handle_t *)&srv->drain_timer, on_handle_closed);
    uv_close((uv_handle_t *)&srv->sighup, on_handle_closed);
    uv_close((uv_handle_t *)&srv->sigterm, on_handle_closed);
    uv_close((uv_handle_t *)&srv->sigint, on_handle_closed);
    fdwatch_stop();
    http_server_close(srv->http);
    srv->http = NULL;
    lookup_svc_close(&srv->svc);
    srv->svc_open = 0;
    log_notice("stopped");
}

static void on_drain_timer(uv_timer_t *t)
{
    struct server *srv = t->data;
    if (srv->nconns == 0) {
        finish_drain(srv);
        return;
    }
    if (uv_now(srv->loop) >= srv->drain_started + srv->cfg.drain_timeout_ms) {
        log_warning("drain timeout: closing %u connections with work unfinished", srv->nconns);
        while (conn_first(srv))
            conn_close(conn_first(srv));
        finish_drain(srv);
    }
}

static void start_drain(struct server *srv, const char *why)
{
    struct conn *c, *next;

    if (srv->draining)
        return;
    srv->draining = 1;
    log_notice("%s: no new connections; draining %u open connections", why, srv->nconns);
    for (size_t i = 0; i < srv->nlisteners; i++)
        listener_close(&srv->listeners[i]);
    for (c = conn_first(srv); c; c = next) {
        next = conn_next(c);
        conn_drain(c);
    }
    srv->drain_started = uv_now(srv->loop);
    uv_timer_start(&srv->drain_timer, on_drain_timer, 0, DRAIN_POLL_MS);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct server *srv = s->data;

    if (signum == SIGHUP)
        server_reload(srv);
    else
        start_drain(srv, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void swap_str(char **a, char **b)
{
    char *t = *a;

    *a = *b;
    *b = t;
}

/*
 * SIGHUP: read the CA files again (a changed bundle takes effect without a restart). One
 * that is now missing, unreadable or without a certificate is logged and the bundle in
 * memory stays, with its path in cfg so the configuration shown is the one in force. After
 * the switch to user, a file readable by root only cannot be read again: the copy read at
 * start-up stays until the next restart. Returns 0 when every file was loaded.
 */
static int reload_ca_files(struct server *srv, struct config *cfg)
{
    struct {
        const char *key;
        char **now, **want;
        struct cafile *ca;
    } f[] = {{"sts_ca_file", &srv->cfg.sts_ca_file, &cfg->sts_ca_file, NULL},
             {"probe_ca_file", &srv->cfg.probe_ca_file, &cfg->probe_ca_file, NULL}};
    char why[512];
    int rc = 0;

    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        const char *file = (*f[i].want)[0] ? *f[i].want : CAFILE_SYSTEM;

        f[i].ca = cafile_load(file, why, sizeof(why));
        if (f[i].ca != NULL)
            continue;
        rc = -1;
        log_error("reload: %s: %s; keeping the CA bundle read from %s%s", f[i].key, why,
                  (*f[i].now)[0] ? *f[i].now : CAFILE_SYSTEM,
                  geteuid() != 0 && access(file, R_OK) < 0 && errno == EACCES
                      ? " (the daemon no longer runs as root: restart it to read this file)"
                      : "");
        swap_str(f[i].now, f[i].want);
    }
    lookup_set_ca(&srv->svc, f[0].ca, f[1].ca);
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        cafile_unref(f[i].ca);
    return rc;
}

void server_reload(struct server *srv)
{
    struct config cfg;
    struct overrides *ov;
    char err[512], changed[256];
    int ca_ok;

    if (config_load(&cfg, srv->config_file, srv->opts, srv->nopts, err, sizeof(err)) < 0) {
        log_error("reload failed, keeping the configuration in force: %s", err);
        metrics_reload(0);
        return;
    }
    ov = load_overrides(&cfg, err, sizeof(err));
    if (ov == NULL) {
        log_error("reload failed, keeping the configuration in force: %s", err);
        metrics_reload(0);
        config_free(&cfg);
        return;
    }
    /* Keep the start-up settings so the configuration shown matches what is in force. */
    if (config_keep_restart_only(&cfg, &srv->cfg, changed, sizeof(changed)) > 0)
        log_warning("reload: %s changed; listen, socket_mode, socket_group, user, "
                    "metrics_listen, the dns_* keys, state_dir, the sts_*_timeout keys, the "
                    "redis keys and the probe_* keys take effect only at restart (sts_ca_file and "
                    "probe_ca_file are read again now); keeping the current listeners, resolver, "
                    "fetcher and prober",
                    changed);
    ca_ok = reload_ca_files(srv, &cfg) == 0;
    config_free(&srv->cfg);
    srv->cfg = cfg;
    /* Waiting lookups find their entry again in the new table, never keep an old pointer. */
    lookup_set_overrides(&srv->svc, ov);
    lookup_apply_config(&srv->svc, &srv->cfg);
    log_open(srv->cfg.log_level, srv->cfg.syslog);
    log_set_format(srv->cfg.log_json);
    log_set_decisions(srv->cfg.log_decisions);
    /* A CA file kept from before counts as a failed reload: the change did not take. */
    metrics_reload(ca_ok);
    log_notice("reloaded configuration%s%s; %zu overrides", srv->config_file ? " from " : "",
               srv->config_file ? srv->config_file : "", overrides_count(ov));
}

/* The gauges of /metrics and the answer of /healthz, read at each scrape. */
static void fill_gauges(void *arg, struct metrics_gauges *g)
{
    struct server *srv = arg;

    g->conns_open = srv->nconns;
    g->lookups_waiting = srv->svc.lookups_waiting;
    g->cache_entries[METRICS_CACHE_DNS] =
        srv->svc.resolver ? resolver_cache_entries(srv->svc.resolver) : 0;
    g->cache_entries[METRICS_CACHE_STS] =
        srv->svc.mtasts ? mtasts_cache_entries(srv->svc.mtasts, &g->sts_policies) : 0;
    g->cache_entries[METRICS_CACHE_DANE] = dane_cache_entries(srv->svc.dane_cache);
    g->serving = !srv->draining && srv->nlisteners > 0;
}

/*
 * Socketmap listeners and the metrics endpoint. A socket passed by systemd for the same
 * address is used instead of binding; inherited sockets that match nothing configured serve
 * socketmap (or /metrics when named "metrics" in the socket unit).
 */
static int open_listeners(struct server *srv, char *err, size_t errlen)
{
    struct activation *a = &srv->act;
    int fd;

    srv->listeners = xcalloc(srv->cfg.nlisten + a->n, sizeof(*srv->listeners));
    for (size_t i = 0; i < srv->cfg.nlisten; i++) {
        struct listener *l = &srv->listeners[srv->nlisteners];

        fd = activation_claim(a, &srv->cfg.listen[i], NULL);
        if (fd >= 0 ? listener_adopt(srv, l, fd, &srv->cfg.listen[i], err, errlen) < 0
                    : listener_open(srv, l, &srv->cfg.listen[i], &srv->cfg, err, errlen) < 0)
            return -1;
        srv->nlisteners++;
    }
    if (srv->cfg.metrics_listen[0] != '\0') {
        fd = activation_claim(a, &srv->cfg.metrics_ep, "metrics");
        srv->http =
            http_server_open(srv->loop, &srv->cfg.metrics_ep, fd, fill_gauges, srv, err, errlen);
        if (srv->http == NULL)
            return -1;
        log_notice("metrics on http://%s/metrics%s", srv->cfg.metrics_ep.text + 5,
                   fd >= 0 ? " (socket from systemd)" : "");
    }
    for (size_t i = 0; i < a->n; i++) {
        if (a->fds[i].used)
            continue;
        if (strcmp(a->fds[i].name, "metrics") == 0) {
            log_warning("socket activation: %s is named metrics but metrics_listen is %s; "
                        "not used",
                        a->fds[i].text, srv->cfg.metrics_listen[0] ? "elsewhere" : "off");
            continue;
        }
        a->fds[i].used = 1;
        if (listener_adopt(srv, &srv->listeners[srv->nlisteners], a->fds[i].fd, &a->fds[i].ep, err,
                           errlen) < 0)
            return -1;
        log_notice("socket activation: serving socketmap on %s, which listen does not name",
                   a->fds[i].text);
        srv->nlisteners++;
    }
    activation_close_unused(a);
    return 0;
}

/* Endpoints to bind, checked before anything is created; systemd's sockets need no binding. */
static int check_endpoints(const struct server *srv, char *err, size_t errlen)
{
    for (size_t i = 0; i < srv->cfg.nlisten; i++)
        if (!activation_has(&srv->act, &srv->cfg.listen[i]) &&
            listener_check(&srv->cfg.listen[i], &srv->cfg, err, errlen) < 0)
            return -1;
    return 0;
}

/*
 * Run the loop until nothing is left. It comes back with work pending only when the store
 * gave up on a write stuck in the kernel (store_close()); exit() would then wait for that
 * thread (libuv joins its threads at exit), so the daemon leaves at once, unclean.
 */
static void run_to_end(struct server *srv)
{
    if (uv_run(srv->loop, UV_RUN_DEFAULT) == 0)
        return;
    log_error("exiting with a state_dir write still stuck in the kernel");
    _exit(1);
}

/* Finish closing handles, then free what the server owns. 0 when nothing was left open. */
static int teardown(struct server *srv)
{
    if (srv->svc_open)
        lookup_svc_close(&srv->svc);
    run_to_end(srv);
    overrides_free(srv->svc.overrides);
    free(srv->listeners);
    config_free(&srv->cfg);
    return uv_loop_close(srv->loop) == 0 ? 0 : 1;
}

int server_init(struct server *srv, uv_loop_t *loop, const char *config_file, char *const *opts,
                size_t nopts)
{
    char err[512];

    memset(srv, 0, sizeof(*srv));
    srv->loop = loop;
    srv->config_file = config_file;
    srv->opts = opts;
    srv->nopts = nopts;

    metrics_init();
    activation_take(&srv->act);
    if (config_load(&srv->cfg, config_file, opts, nopts, err, sizeof(err)) < 0)
        goto fail;
    /* What binding and the switch of user need, before anything is created or loaded. */
    if (server_check_user(&srv->cfg, err, sizeof(err)) < 0 ||
        check_endpoints(srv, err, sizeof(err)) < 0)
        goto fail;
    log_open(srv->cfg.log_level, srv->cfg.syslog);
    log_set_format(srv->cfg.log_json);
    log_set_decisions(srv->cfg.log_decisions);
    lookup_svc_init(&srv->svc, loop);
    srv->svc_open = 1;
    srv->svc.overrides = load_overrides(&srv->cfg, err, sizeof(err));
    if (srv->svc.overrides == NULL)
        goto fail;
    {
        /* state_dir must stay writable after the switch to user. */
        uid_t uid;
        gid_t gid;

        privs_owner(&srv->cfg, &uid, &gid);
        if (lookup_svc_open(&srv->svc, &srv->cfg, uid, gid, err, sizeof(err)) < 0)
            goto fail;
    }
    warn_fd_limit(srv->cfg.max_connections);

    if (open_listeners(srv, err, sizeof(err)) < 0)
        goto fail;
    if (drop_privileges(&srv->cfg, err, sizeof(err)) < 0)
        goto fail;
    /* As the daemon's user: root never reads or moves what that user may have planted. */
    if (lookup_svc_load(&srv->svc, &srv->cfg, err, sizeof(err)) < 0)
        goto fail;

    uv_signal_init(loop, &srv->sighup);
    uv_signal_init(loop, &srv->sigterm);
    uv_signal_init(loop, &srv->sigint);
    uv_timer_init(loop, &srv->drain_timer);
    srv->sighup.data = srv->sigterm.data = srv->sigint.data = srv->drain_timer.data = srv;
    uv_signal_start(&srv->sighup, on_signal, SIGHUP);
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv->sigint, on_signal, SIGINT);

    for (size_t i = 0; i < srv->nlisteners; i++)
        log_notice("listening on %s%s", srv->listeners[i].ep.text,
                   srv->listeners[i].inherited ? " (socket from systemd)" : "");
    fdwatch_start(loop);
    log_notice("tlspolicyd %s ready; %zu overrides", TLSPOLICYD_VERSION,
               overrides_count(srv->svc.overrides));
    return 0;

fail:
    /* Leave no socket file behind for a daemon that never served. */
    for (size_t i = 0; i < srv->nlisteners; i++)
        listener_close(&srv->listeners[i]);
    http_server_close(srv->http);
    srv->http = NULL;
    activation_close_unused(&srv->act);
    fprintf(stderr, "tlspolicyd: fatal: %s\n", err);
    teardown(srv);
    return -1;
}

int server_run(struct server *srv)
{
    run_to_end(srv);
    return teardown(srv);
}
