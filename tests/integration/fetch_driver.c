/*
 * fetch_driver - run daemon/mtasts/fetch.c against real HTTPS servers (tests/integration/
 * test_fetch.py). One fetch (or N in parallel) of https://HOST[:N]/PATH pinned to ADDR...;
 * prints "outcome=<name> status=<n> len=<n>" and "why: <text>" per fetch and exits 0. The
 * service is destroyed from inside the last callback, and the loop must then close cleanly.
 *
 *   fetch_driver [--ca FILE] [--port N] [--connect-timeout MS] [--timeout MS]
 *                [--max-body N] [--parallel N] [--cancel-after MS] [--destroy-after MS]
 *                [--cancel-now] [--print-body] [--exhaust-fds] HOST PATH ADDR...
 *
 * --exhaust-fds: after the service is created, take every file descriptor left (as a busy
 * daemon at its RLIMIT_NOFILE would have none), so the fetch's socket() fails with EMFILE:
 * a local fault, never the policy host's (issue 10 section 3).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "fetch.h"

#define MAX_PARALLEL 64

struct driver {
    struct fetch_svc *svc;
    struct fetch_req *reqs[MAX_PARALLEL];
    int n, done, print_body;
    uv_timer_t timer;
};

static void usage(void)
{
    fprintf(stderr, "usage: fetch_driver [--ca FILE] [--port N] [--connect-timeout MS] "
                    "[--timeout MS] [--max-body N] [--parallel N] [--cancel-after MS] "
                    "[--destroy-after MS] [--cancel-now] [--print-body] [--exhaust-fds] HOST "
                    "PATH ADDR...\n");
    exit(2);
}

static unsigned long number(const char *s)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);

    if (*s == '\0' || *end != '\0')
        usage();
    return v;
}

struct slot {
    struct driver *d;
    int i;
};

static void on_done(void *arg, const struct fetch_result *res)
{
    struct slot *s = arg;
    struct driver *d = s->d;

    d->reqs[s->i] = NULL;
    printf("outcome=%s status=%ld len=%zu\n", fetch_outcome_name(res->outcome), res->http_status,
           res->len);
    printf("why: %s\n", res->why);
    if (d->print_body && res->outcome == FETCH_OK) {
        printf("body=");
        fwrite(res->body, 1, res->len, stdout);
        printf("\n");
    }
    fflush(stdout);
    /* The last callback destroys the service from inside a fetch callback. */
    if (++d->done == d->n) {
        fetch_svc_destroy(d->svc);
        d->svc = NULL;
        uv_close((uv_handle_t *)&d->timer, NULL);
    }
}

static void on_cancel(uv_timer_t *t)
{
    struct driver *d = t->data;

    for (int i = 0; i < d->n; i++)
        fetch_cancel(d->reqs[i]);
    printf("cancelled\n");
    fetch_svc_destroy(d->svc);
    d->svc = NULL;
    uv_close((uv_handle_t *)&d->timer, NULL);
}

static void on_destroy(uv_timer_t *t)
{
    struct driver *d = t->data;

    printf("destroyed\n");
    fetch_svc_destroy(d->svc);
    d->svc = NULL;
    uv_close((uv_handle_t *)&d->timer, NULL);
}

int main(int argc, char **argv)
{
    struct fetch_opts opts = {.ca_file = NULL,
                              .connect_timeout_ms = 5000,
                              .total_timeout_ms = 10000,
                              .max_body = 65536,
                              .port = 443};
    struct driver d = {.n = 1};
    struct slot slots[MAX_PARALLEL];
    unsigned long cancel_after = 0, destroy_after = 0;
    int cancel_now = 0, exhaust = 0, held[256], nheld = 0;
    uv_loop_t loop;
    char err[256];
    int i = 1, rc;

    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *o = argv[i];

        if (strcmp(o, "--print-body") == 0) {
            d.print_body = 1;
            continue;
        }
        if (strcmp(o, "--cancel-now") == 0) {
            cancel_now = 1;
            continue;
        }
        if (strcmp(o, "--exhaust-fds") == 0) {
            exhaust = 1;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        if (strcmp(o, "--ca") == 0)
            opts.ca_file = argv[++i];
        else if (strcmp(o, "--port") == 0)
            opts.port = (unsigned)number(argv[++i]);
        else if (strcmp(o, "--connect-timeout") == 0)
            opts.connect_timeout_ms = (unsigned)number(argv[++i]);
        else if (strcmp(o, "--timeout") == 0)
            opts.total_timeout_ms = (unsigned)number(argv[++i]);
        else if (strcmp(o, "--max-body") == 0)
            opts.max_body = number(argv[++i]);
        else if (strcmp(o, "--parallel") == 0)
            d.n = (int)number(argv[++i]);
        else if (strcmp(o, "--cancel-after") == 0)
            cancel_after = number(argv[++i]);
        else if (strcmp(o, "--destroy-after") == 0)
            destroy_after = number(argv[++i]);
        else
            usage();
    }
    if (argc - i < 3 || d.n < 1 || d.n > MAX_PARALLEL)
        usage();

    uv_loop_init(&loop);
    d.svc = fetch_svc_create(&loop, &opts, err, sizeof(err));
    if (d.svc == NULL) {
        fprintf(stderr, "fetch_driver: %s\n", err);
        uv_loop_close(&loop);
        return 2;
    }
    uv_timer_init(&loop, &d.timer);
    d.timer.data = &d;
    if (exhaust) {
        /* A low limit, then descriptors until none is left. */
        struct rlimit rl = {.rlim_cur = 64, .rlim_max = 64};
        int fd;

        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            perror("setrlimit");
        while (nheld < (int)(sizeof(held) / sizeof(held[0])) &&
               (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
            held[nheld++] = fd;
    }
    for (int k = 0; k < d.n; k++) {
        slots[k].d = &d;
        slots[k].i = k;
        d.reqs[k] = fetch_start(d.svc, argv[i], argv[i + 1], (const char *const *)&argv[i + 2],
                                (size_t)(argc - i - 2), on_done, &slots[k]);
    }
    /* Cancel before the loop runs: even a failure already known must not be reported. */
    if (cancel_now)
        on_cancel(&d.timer);
    else if (cancel_after)
        uv_timer_start(&d.timer, on_cancel, cancel_after, 0);
    else if (destroy_after)
        uv_timer_start(&d.timer, on_destroy, destroy_after, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    while (nheld > 0)
        close(held[--nheld]);

    /* STYLE "Async lifetimes" 8: every handle closed, nothing left on the loop. */
    rc = uv_loop_close(&loop);
    if (rc != 0) {
        fprintf(stderr, "fetch_driver: uv_loop_close: %s\n", uv_strerror(rc));
        return 3;
    }
    return 0;
}
