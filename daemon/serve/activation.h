/*
 * Socket activation (systemd's sd_listen_fds(3) protocol, by hand: no libsystemd). When
 * LISTEN_PID is this process, LISTEN_FDS listening sockets start at descriptor 3, named by
 * LISTEN_FDNAMES (colon separated, FileDescriptorName= in the socket unit). The server
 * matches each configured endpoint to an inherited socket bound to the same address before
 * binding anything itself; sockets left over serve socketmap, or /metrics if named
 * "metrics".
 */
#ifndef DAEMON_ACTIVATION_H
#define DAEMON_ACTIVATION_H

#include <stddef.h>
#include <sys/socket.h>

#include "config.h"

/* SD_LISTEN_FDS_START in sd-daemon.h; and the most sockets taken over. */
#define ACTIVATION_FD_START 3
#define ACTIVATION_MAX 32

struct activation_fd {
    int fd;
    int used;
    char name[64];  /* from LISTEN_FDNAMES, or "" */
    char text[180]; /* "unix:PATH" or "inet:HOST:PORT", for logs and matching */
    struct endpoint ep;
};

struct activation {
    struct activation_fd fds[ACTIVATION_MAX];
    size_t n;
};

/*
 * activation_take - collect the sockets passed to this process and unset LISTEN_PID,
 * LISTEN_FDS and LISTEN_FDNAMES so children do not inherit them. Descriptors that are not
 * listening stream sockets are logged and closed. Returns the number kept (0: none passed).
 */
size_t activation_take(struct activation *a);

/*
 * activation_claim - the unused inherited socket bound to ep's address, else (when name is
 * not NULL) the unused one named name; marks it used. -1 when there is none.
 */
int activation_claim(struct activation *a, const struct endpoint *ep, const char *name);

/* activation_has - 1 when an unused inherited socket is bound to ep's address, else 0. */
int activation_has(const struct activation *a, const struct endpoint *ep);

/* activation_close_unused - close every inherited socket nobody claimed. */
void activation_close_unused(struct activation *a);

#endif
