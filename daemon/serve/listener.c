/*
 * Socketmap listeners on libuv. Unix sockets are created with their mode and group;
 * TCP listeners on anything but loopback are allowed but logged, since the socketmap
 * protocol has no authentication.
 */
#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "conn.h"
#include "fdwatch.h"
#include "log.h"
#include "server.h"

/* One descriptor held back for listener_shed_all(): libuv's own reserve may be gone. */
static int reserve_fd = -1;

static void reserve_take(int base)
{
    if (reserve_fd < 0)
        reserve_fd = fcntl(base, F_DUPFD_CLOEXEC, 0);
}

int listener_shed_all(uv_stream_t *st, int status, int *stuck)
{
    int lfd = -1, fd, shed = 0;

    *stuck = 0;
    if (status != UV_EMFILE && status != UV_ENFILE)
        return 0;
    fdwatch_note("accepting a connection", -status);
    /*
     * libuv 1.44 answers EMFILE by closing a descriptor it keeps in reserve, accepting and
     * closing what waits, and taking the reserve again; it calls here only when that reserve
     * is gone, and then calls accept() again at once. Doing the same with a reserve of our
     * own empties the backlog, so the loop goes back to waiting instead of spinning.
     */
    if (uv_fileno((uv_handle_t *)st, &lfd) < 0)
        return 1;
    if (reserve_fd >= 0) {
        close(reserve_fd);
        reserve_fd = -1;
    }
    while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0 || errno == EINTR)
        if (fd >= 0) {
            close(fd);
            shed++;
        }
    /* Still EMFILE: not even the reserve's slot is below the limit. */
    *stuck = errno != EAGAIN && errno != EWOULDBLOCK;
    reserve_take(lfd);
    log_debug("descriptors exhausted: %d waiting connection%s closed unanswered", shed,
              shed == 1 ? "" : "s");
    return 1;
}

static void pause_listener(struct listener *l);

static void on_connection(uv_stream_t *st, int status)
{
    struct listener *l = st->data;
    int stuck;

    if (status < 0) {
        /* Out of descriptors: one line for the shortage (fdwatch), not one per client. */
        if (!listener_shed_all(st, status, &stuck))
            log_warning("%s: accept failed: %s", l->ep.text, uv_strerror(status));
        else if (stuck)
            pause_listener(l);
        return;
    }
    conn_accept(l->srv, st, l->ep.kind == ENDPOINT_UNIX);
}

/* How often a paused listener looks for a descriptor to accept with again (ms). */
#define RESUME_MS 250

static void on_close_noop(uv_handle_t *h);

/* The spare duplicate becomes the listening handle again, and a new spare is taken. */
static void on_resume(uv_timer_t *t)
{
    struct listener *l = t->data;
    int rc;

    if (fdwatch_probe() != 0)
        return;
    if (l->ep.kind == ENDPOINT_UNIX) {
        uv_pipe_init(l->srv->loop, &l->h.pipe, 0);
        rc = uv_pipe_open(&l->h.pipe, l->spare);
    } else {
        uv_tcp_init(l->srv->loop, &l->h.tcp);
        rc = uv_tcp_open(&l->h.tcp, l->spare);
    }
    l->h.handle.data = l;
    if (rc == 0)
        rc = uv_listen(&l->h.stream, SOMAXCONN, on_connection);
    if (rc < 0) {
        /* The spare is the handle's now; without a listener, say so and stay closed. */
        log_error("%s: cannot accept connections again: %s", l->ep.text, uv_strerror(rc));
        uv_close(&l->h.handle, on_close_noop);
        l->spare = -1;
        uv_timer_stop(t);
        return;
    }
    l->open = 1;
    l->paused = 0;
    l->spare = fcntl(l->spare, F_DUPFD_CLOEXEC, 0);
    reserve_take(l->spare >= 0 ? l->spare : STDERR_FILENO);
    uv_timer_stop(t);
    log_notice("%s: accepting connections again", l->ep.text);
}

static void on_paused(uv_handle_t *h)
{
    struct listener *l = h->data;

    uv_timer_start(&l->resume, on_resume, RESUME_MS, RESUME_MS);
}

/*
 * No descriptor at all, not even for shedding: libuv would call accept() again at once,
 * for ever, and the loop would serve nothing else. The handle is closed (its socket file
 * kept: libuv unlinks a bound pipe's path at close) while the spare keeps the socket, so
 * clients that connect wait in the backlog and are answered once descriptors are back.
 */
static void pause_listener(struct listener *l)
{
    if (l->paused || l->spare < 0 || !l->resume_init)
        return;
    if (l->ep.kind == ENDPOINT_UNIX && l->h.pipe.pipe_fname != NULL) {
        free((char *)l->h.pipe.pipe_fname);
        l->h.pipe.pipe_fname = NULL;
    }
    l->paused = 1;
    l->open = 0;
    log_warning("%s: not accepting connections until a descriptor is free (clients wait in "
                "the backlog)",
                l->ep.text);
    uv_close(&l->h.handle, on_paused);
}

/* After uv_listen(): the spare duplicate and the resume timer (listener_open, _adopt). */
static void listening(struct listener *l, int fd)
{
    l->spare = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    uv_timer_init(l->srv->loop, &l->resume);
    l->resume.data = l;
    l->resume_init = 1;
    reserve_take(fd >= 0 ? fd : STDERR_FILENO);
}

/* A socket file left by a daemon that died is removed; one with a live listener is not. */
static int clear_stale_socket(const char *path, char *err, size_t errlen, const char *ep)
{
    struct stat st;
    struct sockaddr_un sun;
    int fd, rc;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : (snprintf(err, errlen, "%s: %s", ep, strerror(errno)), -1);
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s: %s exists and is not a socket", ep, path);
        return -1;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "%s: socket: %s", ep, strerror(errno));
        return -1;
    }
    rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
    close(fd);
    if (rc == 0) {
        snprintf(err, errlen, "%s: another process is listening on %s", ep, path);
        return -1;
    }
    if (unlink(path) < 0) {
        snprintf(err, errlen, "%s: cannot remove stale socket: %s", ep, strerror(errno));
        return -1;
    }
    log_info("%s: removed stale socket %s", ep, path);
    return 0;
}

int listener_check(const struct endpoint *ep, const struct config *cfg, char *err, size_t errlen)
{
    char dir[sizeof(ep->path)];
    const char *slash;
    struct stat st;

    if (ep->kind != ENDPOINT_UNIX)
        return 0;
    /* The directory the socket goes in: "." for a bare name, "/" for one under the root. */
    slash = strrchr(ep->path, '/');
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == ep->path)
        snprintf(dir, sizeof(dir), "/");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - ep->path), ep->path);
    if (stat(dir, &st) < 0) {
        if (errno == ENOENT)
            snprintf(err, errlen, "%s: directory %s does not exist", ep->text, dir);
        else if (errno == ENOTDIR)
            snprintf(err, errlen, "%s: %s is not a directory", ep->text, dir);
        else
            snprintf(err, errlen, "%s: directory %s: %s", ep->text, dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: %s is not a directory", ep->text, dir);
        return -1;
    }
    if (access(dir, W_OK | X_OK) < 0) {
        snprintf(err, errlen, "%s: cannot create a socket in %s (uid %ld): %s", ep->text, dir,
                 (long)geteuid(), strerror(errno));
        return -1;
    }
    if (lstat(ep->path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s: %s exists and is not a socket", ep->text, ep->path);
        return -1;
    }
    if (cfg->socket_group[0] != '\0' && getgrnam(cfg->socket_group) == NULL) {
        snprintf(err, errlen, "%s: socket_group %s: no such group", ep->text, cfg->socket_group);
        return -1;
    }
    return 0;
}

int listener_check_all(const struct config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->nlisten; i++)
        if (listener_check(&cfg->listen[i], cfg, err, errlen) < 0)
            return -1;
    return 0;
}

/*
 * After bind, the path is checked through a descriptor that cannot follow a link (O_PATH,
 * O_NOFOLLOW): it must still be a socket with the mode and group asked for. The group is
 * set through that descriptor only where bind could not give it (a set-group-ID
 * directory, or a daemon not started as root).
 */
static int check_socket(struct listener *l, mode_t mode, gid_t gid, char *err, size_t errlen)
{
    struct stat sb;
    int fd = open(l->ep.path, O_PATH | O_NOFOLLOW | O_CLOEXEC), rc = -1;

    if (fd < 0) {
        snprintf(err, errlen, "%s: socket gone after bind: %s", l->ep.text, strerror(errno));
        return -1;
    }
    if (fstat(fd, &sb) < 0) {
        snprintf(err, errlen, "%s: stat: %s", l->ep.text, strerror(errno));
        goto done;
    }
    if (!S_ISSOCK(sb.st_mode)) {
        snprintf(err, errlen, "%s: %s was replaced after bind (now %s); refusing to touch it",
                 l->ep.text, l->ep.path, S_ISLNK(sb.st_mode) ? "a symbolic link" : "not a socket");
        goto done;
    }
    if (gid != (gid_t)-1 && sb.st_gid != gid &&
        fchownat(fd, "", (uid_t)-1, gid, AT_EMPTY_PATH) < 0) {
        snprintf(err, errlen, "%s: chown to group %ld: %s", l->ep.text, (long)gid, strerror(errno));
        goto done;
    }
    if ((sb.st_mode & 07777) != mode) {
        snprintf(err, errlen, "%s: socket created with mode %04o, not socket_mode %04o", l->ep.text,
                 (unsigned)(sb.st_mode & 07777), (unsigned)mode);
        goto done;
    }
    rc = 0;
done:
    close(fd);
    return rc;
}

/*
 * The socket is created with its final mode and group: socket_mode through the umask that
 * bind applies, socket_group as the effective group at bind time (root only). Nothing then
 * changes it by name: whoever can write the socket's directory could swap the new socket
 * for a symbolic link between bind and a chmod or chown, which follow links.
 */
static int open_unix(struct listener *l, const struct config *cfg, char *err, size_t errlen)
{
    const char *path = l->ep.path;
    gid_t gid = (gid_t)-1, egid = getegid();
    mode_t mask;
    int rc, switched = 0;

    if (cfg->socket_group[0] != '\0') {
        struct group *gr = getgrnam(cfg->socket_group);

        if (gr == NULL) {
            snprintf(err, errlen, "%s: socket_group %s: no such group", l->ep.text,
                     cfg->socket_group);
            return -1;
        }
        gid = gr->gr_gid;
    }
    if (listener_check(&l->ep, cfg, err, errlen) < 0 ||
        clear_stale_socket(path, err, errlen, l->ep.text) < 0)
        return -1;
    uv_pipe_init(l->srv->loop, &l->h.pipe, 0);
    l->open = 1;
    if (gid != (gid_t)-1 && gid != egid && geteuid() == 0) {
        if (setegid(gid) < 0) {
            snprintf(err, errlen, "%s: setegid %ld: %s", l->ep.text, (long)gid, strerror(errno));
            return -1;
        }
        switched = 1;
    }
    mask = umask(~cfg->socket_mode & 0777);
    rc = uv_pipe_bind(&l->h.pipe, path);
    umask(mask);
    if (switched && setegid(egid) < 0) {
        snprintf(err, errlen, "%s: setegid back to %ld: %s", l->ep.text, (long)egid,
                 strerror(errno));
        return -1;
    }
    if (rc < 0) {
        snprintf(err, errlen, "%s: bind: %s", l->ep.text, uv_strerror(rc));
        return -1;
    }
    return check_socket(l, cfg->socket_mode, gid, err, errlen);
}

static int open_inet(struct listener *l, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    unsigned flags = 0;
    int rc;

    if (strchr(l->ep.host, ':')) {
        rc = uv_ip6_addr(l->ep.host, l->ep.port, (struct sockaddr_in6 *)&ss);
        flags = UV_TCP_IPV6ONLY;
    } else {
        rc = uv_ip4_addr(l->ep.host, l->ep.port, (struct sockaddr_in *)&ss);
    }
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", l->ep.text, uv_strerror(rc));
        return -1;
    }
    uv_tcp_init(l->srv->loop, &l->h.tcp);
    l->open = 1;
    rc = uv_tcp_bind(&l->h.tcp, (struct sockaddr *)&ss, flags);
    if (rc < 0) {
        snprintf(err, errlen, "%s: bind: %s", l->ep.text, uv_strerror(rc));
        return -1;
    }
    if (strcmp(l->ep.host, "127.0.0.1") != 0 && strcmp(l->ep.host, "::1") != 0 &&
        strncmp(l->ep.host, "127.", 4) != 0)
        log_warning("%s: listening beyond loopback; socketmap has no authentication, so "
                    "restrict access with a firewall",
                    l->ep.text);
    return 0;
}

static void on_close_noop(uv_handle_t *h)
{
    (void)h;
}

int listener_open(struct server *srv, struct listener *l, const struct endpoint *ep,
                  const struct config *cfg, char *err, size_t errlen)
{
    int rc;

    memset(l, 0, sizeof(*l));
    l->spare = -1;
    l->srv = srv;
    l->ep = *ep;
    rc = ep->kind == ENDPOINT_UNIX ? open_unix(l, cfg, err, errlen) : open_inet(l, err, errlen);
    if (rc == 0) {
        l->h.handle.data = l;
        rc = uv_listen(&l->h.stream, SOMAXCONN, on_connection);
        if (rc < 0) {
            snprintf(err, errlen, "%s: listen: %s", ep->text, uv_strerror(rc));
        } else {
            int fd = -1;

            uv_fileno(&l->h.handle, &fd);
            listening(l, fd);
        }
    }
    if (rc < 0 && l->open) {
        uv_close(&l->h.handle, on_close_noop);
        l->open = 0;
    }
    return rc < 0 ? -1 : 0;
}

int listener_adopt(struct server *srv, struct listener *l, int fd, const struct endpoint *ep,
                   char *err, size_t errlen)
{
    int rc;

    memset(l, 0, sizeof(*l));
    l->spare = -1;
    l->srv = srv;
    l->ep = *ep;
    l->inherited = 1;
    /* systemd already listens: mode, group and backlog are the socket unit's. */
    if (ep->kind == ENDPOINT_UNIX) {
        uv_pipe_init(srv->loop, &l->h.pipe, 0);
        rc = uv_pipe_open(&l->h.pipe, fd);
    } else {
        uv_tcp_init(srv->loop, &l->h.tcp);
        rc = uv_tcp_open(&l->h.tcp, fd);
    }
    l->open = 1;
    l->h.handle.data = l;
    if (rc == 0)
        rc = uv_listen(&l->h.stream, SOMAXCONN, on_connection);
    if (rc == 0)
        listening(l, fd);
    if (rc < 0) {
        snprintf(err, errlen, "%s: inherited socket %d: %s", ep->text, fd, uv_strerror(rc));
        uv_close(&l->h.handle, on_close_noop);
        l->open = 0;
        return -1;
    }
    return 0;
}

void listener_close(struct listener *l)
{
    if (l->resume_init) {
        uv_close((uv_handle_t *)&l->resume, on_close_noop);
        l->resume_init = 0;
    }
    if (l->spare >= 0)
        close(l->spare);
    l->spare = -1;
    if (!l->open && !l->paused)
        return;
    if (l->open)
        uv_close(&l->h.handle, on_close_noop);
    l->open = l->paused = 0;
    if (l->ep.kind == ENDPOINT_UNIX && !l->inherited && unlink(l->ep.path) < 0 && errno != ENOENT)
        log_debug("%s: cannot remove socket: %s", l->ep.text, strerror(errno));
}
