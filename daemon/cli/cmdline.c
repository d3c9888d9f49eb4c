/*
 * The options, configuration, log and loop that "tlspolicyd query" and "tlspolicyd probe"
 * share (cmdline.h). The configuration is config.c's, loaded as the daemon loads it, so a
 * command sees what the daemon would with the same -c and -o.
 */
#include "cmdline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fdwatch.h"
#include "log.h"
#include "xalloc.h"

void cmdline_init(struct cmdline *cl, int argc)
{
    memset(cl, 0, sizeof(*cl));
    /* Each -o takes at least one argument, so argc entries are always enough. */
    cl->opts = xcalloc((size_t)argc + 1, sizeof(char *));
}

int cmdline_option(struct cmdline *cl, int ch, char *arg)
{
    switch (ch) {
    case 'c':
        cl->file = arg;
        return 1;
    case 'o':
        cl->opts[cl->nopts++] = arg;
        return 1;
    case 'j':
        cl->json = 1;
        return 1;
    default:
        return 0;
    }
}

int cmdline_start(struct cmdline *cl)
{
    char err[512];
    int rc;

    if (config_load(&cl->cfg, cl->file, cl->opts, cl->nopts, err, sizeof(err)) < 0) {
        fprintf(stderr, "tlspolicyd: %s\n", err);
        return -1;
    }
    /* Below the floor libuv aborts while it makes the loop, without a word. */
    if (fdwatch_floor(err, sizeof(err)) < 0) {
        fprintf(stderr, "tlspolicyd: %s\n", err);
        config_free(&cl->cfg);
        return -1;
    }
    if ((rc = uv_loop_init(&cl->loop)) != 0) {
        fprintf(stderr, "tlspolicyd: cannot make the event loop: %s\n", uv_strerror(rc));
        config_free(&cl->cfg);
        return -1;
    }
    cl->started = 1;
    /* Log lines go to stderr; the output goes to stdout. */
    log_open(cl->cfg.log_level < LOG_WARNING ? cl->cfg.log_level : LOG_WARNING, 0);
    if (cl->json)
        cl->out = json_array();
    return 0;
}

void cmdline_print_json(struct cmdline *cl)
{
    if (cl->out == NULL)
        return;
    json_dumpf(cl->out, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("\n");
    json_decref(cl->out);
    cl->out = NULL;
}

int cmdline_close_loop(struct cmdline *cl)
{
    if (!cl->started)
        return 0;
    /*
     * Close callbacks run on the loop (libuv design.rst); only then may it close. Work left
     * means a state_dir write stuck in the kernel (store_close()): leave without it.
     */
    if (uv_run(&cl->loop, UV_RUN_DEFAULT) != 0) {
        fprintf(stderr, "tlspolicyd: a state_dir write is stuck in the kernel; exiting\n");
        _exit(1);
    }
    return uv_loop_close(&cl->loop);
}

void cmdline_free(struct cmdline *cl)
{
    json_decref(cl->out);
    cl->out = NULL;
    if (cl->started)
        config_free(&cl->cfg);
    cl->started = 0;
    free(cl->opts);
    cl->opts = NULL;
}
