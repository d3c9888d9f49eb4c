/*
 * sd_listen_fds(3) by hand. The variables are read once and removed from the environment,
 * as sd_listen_fds(1) does, and every inherited descriptor is made close-on-exec. Each
 * socket's address (getsockname) is turned into the endpoint text the configuration uses,
 * so "listen = unix:/run/tlspolicyd/tlspolicyd.sock" finds the socket systemd opened there.
 */
#include "activation.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

static int parse_ulong(const char *s, unsigned long *out)
{
    char *end;

    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    *out = strtoul(s, &end, 10);
    return errno || *end ? -1 : 0;
}

/* The endpoint a listening socket is bound to; -1 when it is not one we can serve. */
static int describe(struct activation_fd *f)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int type = 0, listening = 0;
    socklen_t olen = sizeof(type);
    char host[INET6_ADDRSTRLEN];
    const char *why = NULL;

    if (getsockopt(f->fd, SOL_SOCKET, SO_TYPE, &type, &olen) < 0 || type != SOCK_STREAM)
        return -1;
    olen = sizeof(listening);
    if (getsockopt(f->fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &olen) < 0 || !listening)
        return -1;
    memset(&ss, 0, sizeof(ss));
    if (getsockname(f->fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    switch (ss.ss_family) {
    case AF_UNIX: {
        struct sockaddr_un *sun = (struct sockaddr_un *)&ss;

        if (sun->sun_path[0] == '\0')
            return -1; /* abstract or unnamed */
        snprintf(f->text, sizeof(f->text), "unix:%.*s", (int)sizeof(sun->sun_path), sun->sun_path);
        break;
    }
    case AF_INET: {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
        snprintf(f->text, sizeof(f->text), "inet:%s:%u", host, ntohs(sin->sin_port));
        break;
    }
    case AF_INET6: {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
        snprintf(f->text, sizeof(f->text), "inet:[%s]:%u", host, ntohs(sin6->sin6_port));
        break;
    }
    default:
        return -1;
    }
    return config_endpoint_parse(f->text, &f->ep, &why);
}

size_t activation_take(struct activation *a)
{
    const char *pid_s = getenv("LISTEN_PID"), *fds_s = getenv("LISTEN_FDS");
    const char *names = getenv("LISTEN_FDNAMES");
    unsigned long pid, n;

    memset(a, 0, sizeof(*a));
    if (pid_s == NULL || fds_s == NULL)
        goto done;
    if (parse_ulong(pid_s, &pid) < 0 || pid != (unsigned long)getpid()) {
        /* Meant for another process (a wrapper that did not exec us). */
        goto done;
    }
    if (parse_ulong(fds_s, &n) < 0) {
        log_warning("socket activation: LISTEN_FDS=%s ignored (not a number)", fds_s);
        goto done;
    }
    if (n > ACTIVATION_MAX) {
        log_warning("socket activation: LISTEN_FDS=%s ignored (at most %d sockets)", fds_s,
                    ACTIVATION_MAX);
        /* Passed but not used: they must not leak into anything the daemon starts. */
        for (unsigned long i = 0; i < n && i < 1024; i++)
            fcntl(ACTIVATION_FD_START + (int)i, F_SETFD, FD_CLOEXEC);
        goto done;
    }
    for (unsigned long i = 0; i < n; i++) {
        struct activation_fd *f = &a->fds[a->n];
        int fd = ACTIVATION_FD_START + (int)i, flags;
        const char *colon;

        memset(f, 0, sizeof(*f));
        f->fd = fd;
        /* LISTEN_FDNAMES: one name per descriptor, in order, colon separated. */
        if (names != NULL) {
            colon = strchr(names, ':');
            snprintf(f->name, sizeof(f->name), "%.*s",
                     (int)(colon ? (size_t)(colon - names) : strlen(names)), names);
            names = colon ? colon + 1 : NULL;
        }
        flags = fcntl(fd, F_GETFD);
        if (flags < 0) {
            log_warning("socket activation: descriptor %d is not open", fd);
            continue;
        }
        fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
        if (describe(f) < 0) {
            log_warning("socket activation: descriptor %d is not a listening unix or TCP stream "
                        "socket; closed",
                        fd);
            close(fd);
            continue;
        }
        a->n++;
    }
done:
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return a->n;
}

static int same_address(const struct endpoint *a, const struct endpoint *b)
{
    unsigned char x[16], y[16];
    int fam = strchr(a->host, ':') ? AF_INET6 : AF_INET;

    if (a->kind != b->kind)
        return 0;
    if (a->kind == ENDPOINT_UNIX)
        return strcmp(a->path, b->path) == 0;
    if (a->port != b->port || (strchr(b->host, ':') ? AF_INET6 : AF_INET) != fam)
        return 0;
    return inet_pton(fam, a->host, x) == 1 && inet_pton(fam, b->host, y) == 1 &&
           memcmp(x, y, fam == AF_INET ? 4 : 16) == 0;
}

int activation_claim(struct activation *a, const struct endpoint *ep, const char *name)
{
    for (size_t i = 0; i < a->n; i++) {
        if (!a->fds[i].used && same_address(&a->fds[i].ep, ep)) {
            a->fds[i].used = 1;
            return a->fds[i].fd;
        }
    }
    for (size_t i = 0; name != NULL && i < a->n; i++) {
        if (!a->fds[i].used && strcmp(a->fds[i].name, name) == 0) {
            a->fds[i].used = 1;
            return a->fds[i].fd;
        }
    }
    return -1;
}

int activation_has(const struct activation *a, const struct endpoint *ep)
{
    for (size_t i = 0; i < a->n; i++)
        if (!a->fds[i].used && same_address(&a->fds[i].ep, ep))
            return 1;
    return 0;
}

void activation_close_unused(struct activation *a)
{
    for (size_t i = 0; i < a->n; i++) {
        if (!a->fds[i].used) {
            close(a->fds[i].fd);
            a->fds[i].used = 1;
        }
    }
}
