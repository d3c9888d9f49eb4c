/*
 * daemon/cli/: the commands run by hand. cmdline (shared options and output), query
 * ("tlspolicyd query" through decide/), probe_cmd ("tlspolicyd probe" through dns/ and
 * requiretls/). Nothing else includes them.
 *
 * What the commands run by hand ("tlspolicyd query", "tlspolicyd probe") share: the options
 * -c FILE, -o key=value and --json, the configuration they name, log lines on stderr, a
 * private event loop and, with --json, the array of results printed at the end. Each command
 * runs its own getopt_long() loop and hands every option to cmdline_option() first. The
 * struct lives in the command's stack frame and owns what it holds until cmdline_free().
 */
#ifndef DAEMON_CMDLINE_H
#define DAEMON_CMDLINE_H

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

#include "config.h"

/* The short options every command takes; its long options map "json" to 'j'. */
#define CMDLINE_SHORTOPTS "c:o:h"

struct cmdline {
    const char *file;  /* -c FILE, or NULL */
    char **opts;       /* -o key=value arguments, in order (pointers into argv) */
    size_t nopts;      /* how many */
    int json;          /* --json given */
    struct config cfg; /* from cmdline_start() on */
    uv_loop_t loop;    /* from cmdline_start() on */
    json_t *out;       /* from cmdline_start() on, with --json: the results; else NULL */
    int started;       /* cmdline_start() succeeded */
};

/* cmdline_init - an empty command line with room for the -o options of argc arguments. */
void cmdline_init(struct cmdline *cl, int argc);

/*
 * cmdline_option - take one option from getopt_long(): 'c' (-c FILE), 'o' (-o key=value,
 * kept as a pointer to arg) or 'j' (--json). Returns 1 when it took ch, 0 when ch is the
 * command's own.
 */
int cmdline_option(struct cmdline *cl, int ch, char *arg);

/*
 * cmdline_start - load the configuration (the file, then the -o options), send log lines
 * to stderr at warning level or quieter (the output goes to stdout), initialise the loop
 * and, with --json, create the result array. Returns 0, or -1 after writing a one-line
 * reason to stderr; either way the caller ends with cmdline_free().
 */
int cmdline_start(struct cmdline *cl);

/* cmdline_print_json - with --json, write the result array to stdout and release it. */
void cmdline_print_json(struct cmdline *cl);

/*
 * cmdline_close_loop - after the command has closed its handles, run the loop until their
 * close callbacks are done and close it. Returns uv_loop_close()'s result: 0, or UV_EBUSY
 * when handles are still open. Does nothing and returns 0 before cmdline_start().
 */
int cmdline_close_loop(struct cmdline *cl);

/* cmdline_free - release the configuration, the result array and the option list. */
void cmdline_free(struct cmdline *cl);

#endif
