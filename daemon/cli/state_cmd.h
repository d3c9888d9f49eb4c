/*
 * "tlspolicyd state export" and "tlspolicyd state import FILE|-": the persisted MTA-STS
 * policies of state_dir as JSON lines, out and back in, through the store's API
 * (daemon/mtasts/store.h), never its file layout.
 */
#ifndef DAEMON_STATE_CMD_H
#define DAEMON_STATE_CMD_H

#include <stdint.h>
#include <stdio.h>

#include "store.h"

/*
 * state_main - argv[0] is "state", argv[1] "export" or "import". Returns the process exit
 * status. export: 0, or 2 on a usage or configuration error or when the output cannot be
 * written. import: 0 when every record line was imported, 1 when some were skipped, 2 on a
 * usage or configuration error (a daemon holding state_dir is one), when the input cannot
 * be read, or when records were to be written and none could be. Errors are one line on
 * stderr.
 */
int state_main(int argc, char **argv);

/* What state_read_line() found besides a line. */
#define STATE_LINE_EOF (-1)
#define STATE_LINE_LONG (-2) /* longer than max: the rest of it was read and dropped */
#define STATE_LINE_NUL (-3)  /* held a NUL byte, which no JSON text may (RFC 8259 7) */

/*
 * state_read_line - one line of fp into buf (at most max bytes, NUL-terminated, the newline
 * dropped): its length, or STATE_LINE_EOF, STATE_LINE_LONG or STATE_LINE_NUL. Memory stays
 * bounded whatever the input. How "state import" splits its input.
 */
long state_read_line(FILE *fp, char *buf, size_t max);

/*
 * state_import_parse - what "state import" makes of one line, n being state_read_line()'s
 * result for it (no I/O; tests/fuzz/fuzz_import.c drives it): 1 with *rec a record to write
 * (valid, unexpired at now), 0 for a blank line, -1 with the reason in *why for a line that
 * is skipped (rec->domain names the domain when the line is a record, else is empty).
 */
int state_import_parse(const char *buf, long n, int64_t now, struct store_record *rec,
                       const char **why);

#endif
