/*
 * daemon/serve/: the running daemon. server (loop, reload, drain), listener (sockets), conn
 * (one socketmap connection, pipelining), http (/metrics, /healthz), activation (systemd
 * sockets). Depends on decide/, config/ and util/; nothing below includes it.
 *
 * The running daemon: the loop, the configuration in force, listeners, open connections,
 * signals (SIGHUP reload, SIGTERM/SIGINT drain and exit). Owns everything else.
 */
#ifndef DAEMON_SERVER_H
#define DAEMON_SERVER_H

#include <uv.h>

#include "activation.h"
#include "config.h"
#include "lookup.h"
#include "waitlist.h"

struct conn;
struct listener;
struct http_server;

struct server {
    uv_loop_t *loop;
    struct config cfg;
    struct lookup_svc svc;

    /* Where the configuration came from, to read it again on SIGHUP. */
    const char *config_file;
    char *const *opts;
    size_t nopts;

    struct listener *listeners;
    size_t nlisteners;

    struct waitlist_link *conns; /* open connections, linked and counted by conn.c */
    unsigned nconns;
    unsigned long refused; /* connections refused over max_connections, since the last log */
    uint64_t refused_logged_at;

    struct activation act;    /* sockets passed by systemd (socket activation) */
    struct http_server *http; /* metrics_listen, or NULL */

    uv_signal_t sighup, sigterm, sigint;
    uv_timer_t drain_timer;
    int draining;
    int svc_open;
    uint64_t drain_started;
};

/*
 * server_init - load the configuration and the overrides table, bind every listener, and
 * drop privileges. Returns 0, or -1 after printing a one-line reason to stderr.
 */
int server_init(struct server *srv, uv_loop_t *loop, const char *config_file, char *const *opts,
                size_t nopts);

/*
 * server_check_user - when this process runs as root, that cfg->user (if set) names a user
 * to switch to. Returns 0, or -1 with a one-line reason in err. Used by start-up and -t.
 */
int server_check_user(const struct config *cfg, char *err, size_t errlen);

/* server_run - serve until SIGTERM/SIGINT has drained every connection; returns 0 on success. */
int server_run(struct server *srv);

/* server_reload - what SIGHUP does: re-read configuration and overrides, keep old on error. */
void server_reload(struct server *srv);

#endif
