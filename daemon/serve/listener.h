/*
 * Listening sockets for socketmap clients: unix-domain sockets (with mode and group, a
 * stale socket from a dead daemon replaced, a live one never stolen) and TCP on IPv4 or
 * IPv6. Each accepted connection goes to conn_accept().
 */
#ifndef DAEMON_LISTENER_H
#define DAEMON_LISTENER_H

#include <stddef.h>
#include <uv.h>

#include "config.h"

struct server;

/* A libuv stream of either transport (unix or TCP), with its generic views. */
union stream_handle {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_pipe_t pipe;
    uv_tcp_t tcp;
};

struct listener {
    union stream_handle h;
    struct server *srv;
    struct endpoint ep;
    int open;
    int inherited; /* passed by systemd (socket activation): never unlinked */
    /*
     * Out of descriptors with nothing to shed them with, the handle is closed (libuv would
     * otherwise call accept() again at once, for ever) while spare, a duplicate taken at
     * start, keeps the socket and its backlog; resume reopens the handle on it once a
     * descriptor can be had (listener.c, pause).
     */
    int spare;
    int paused;
    uv_timer_t resume;
    int resume_init;
};

/*
 * listener_open - bind and listen on ep. Returns 0, or -1 with "ENDPOINT: reason" in err.
 * On failure nothing stays open.
 */
int listener_open(struct server *srv, struct listener *l, const struct endpoint *ep,
                  const struct config *cfg, char *err, size_t errlen);

/*
 * listener_adopt - serve socketmap on fd, a listening socket passed by systemd, bound to
 * ep. Returns 0, or -1 with "ENDPOINT: reason" in err.
 */
int listener_adopt(struct server *srv, struct listener *l, int fd, const struct endpoint *ep,
                   char *err, size_t errlen);

/*
 * listener_check - what binding ep will need, checked without binding: for a unix socket, a
 * directory that exists (libuv reports a missing one as "permission denied"), a path that
 * is absent or a socket, and a socket_group that names a group; nothing for TCP. Returns 0,
 * or -1 with "ENDPOINT: reason" in err.
 */
int listener_check(const struct endpoint *ep, const struct config *cfg, char *err, size_t errlen);

/* listener_check_all - listener_check() on every listen endpoint of cfg. */
int listener_check_all(const struct config *cfg, char *err, size_t errlen);

/*
 * listener_shed_all - for a connection callback (socketmap or metrics) that got status:
 * when it is EMFILE or ENFILE, tell fdwatch (one line per shortage) and close the
 * connections waiting on st unanswered (their clients see the connection closed and retry
 * or defer), so that libuv does not call accept() again and again; returns 1, and sets
 * *stuck when nothing could be shed (no descriptor even for that): the caller must then
 * stop accepting on st (listener.c and http.c pause the handle). Any other status: 0,
 * nothing done.
 */
int listener_shed_all(uv_stream_t *st, int status, int *stuck);

/* listener_close - stop accepting; a unix socket's path is removed where permitted. */
void listener_close(struct listener *l);

#endif
