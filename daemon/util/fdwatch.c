/*
 * One line when descriptors run out, one when they are back (fdwatch.h). The probe is
 * fcntl(F_DUPFD) of the loop's own descriptor: it needs no file system (a chroot, a
 * ProtectSystem= sandbox) and fails exactly as socket() or accept() would, with EMFILE at
 * RLIMIT_NOFILE and ENFILE when the system table is full.
 */
#include "fdwatch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"

/* While all is well, and while a shortage lasts: how often the probe runs. */
#define PROBE_MS 1000

static struct {
    uv_loop_t *loop;
    uv_timer_t timer;
    int started;
    int is_short;           /* a shortage is under way */
    uint64_t since_ms;      /* loop time it was noted */
    unsigned long failures; /* notes during it */
} fw;

int fdwatch_local(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

int fdwatch_probe(void)
{
    int base = fw.loop ? uv_backend_fd(fw.loop) : STDERR_FILENO, fd;

    fd = fcntl(base >= 0 ? base : STDERR_FILENO, F_DUPFD_CLOEXEC, 0);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    /* A base that is not open says nothing about descriptors. */
    return errno == EBADF ? 0 : errno;
}

void fdwatch_note(const char *where, int err)
{
    struct rlimit rl;

    fw.failures++;
    if (fw.is_short)
        return;
    fw.is_short = 1;
    fw.since_ms = fw.loop ? uv_now(fw.loop) : 0;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        rl.rlim_cur = 0;
    log_error("out of file descriptors (%s: %s; RLIMIT_NOFILE %llu): connections that cannot "
              "be accepted are closed, lookups that need a DNS query or a policy fetch answer "
              "TEMP; raise LimitNOFILE= (systemd) or ulimit -n; logged once, until descriptors "
              "are free again",
              where, strerror(err), (unsigned long long)rl.rlim_cur);
}

int fdwatch_short(void)
{
    return fw.is_short;
}

static void on_probe(uv_timer_t *t)
{
    int err = fdwatch_probe();

    (void)t;
    if (err != 0 && fdwatch_local(err)) {
        fdwatch_note("a probe", err);
        return;
    }
    if (err == 0 && fw.is_short) {
        log_notice("file descriptors are available again after %.1f s (%lu operations failed "
                   "for want of one)",
                   (double)(uv_now(fw.loop) - fw.since_ms) / 1000.0, fw.failures);
        fw.is_short = 0;
        fw.failures = 0;
    }
}

void fdwatch_start(uv_loop_t *loop)
{
    if (fw.started)
        return;
    fw.loop = loop;
    uv_timer_init(loop, &fw.timer);
    uv_timer_start(&fw.timer, on_probe, PROBE_MS, PROBE_MS);
    uv_unref((uv_handle_t *)&fw.timer);
    fw.started = 1;
}

void fdwatch_stop(void)
{
    if (!fw.started)
        return;
    uv_close((uv_handle_t *)&fw.timer, NULL);
    fw.started = 0;
    fw.loop = NULL;
}

int fdwatch_floor(char *err, size_t errlen)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0; /* nothing to judge by: let the first failure say it */
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit up = {.rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max};

        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl = up;
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= FDWATCH_START_MIN)
        return 0;
    snprintf(err, errlen,
             "open file limit %lu (hard limit %lu) is below the %d descriptors tlspolicyd needs "
             "to start; raise it (LimitNOFILE=, ulimit -n)",
             (unsigned long)rl.rlim_cur, (unsigned long)rl.rlim_max, FDWATCH_START_MIN);
    return -1;
}
