/*
 * "tlspolicyd state export" and "tlspolicyd state import FILE|-": the persisted MTA-STS
 * policies of state_dir as JSON lines, out and back in, through the store's API
 * (daemon/mtasts/store.h), never its file layout.
 */
#ifndef DAEMON_STATE_CMD_H
#define DAEMON_STATE_CMD_H

/*
 * state_main - argv[0] is "state", argv[1] "export" or "import". Returns the process exit
 * status. export: 0, or 2 on a usage or configuration error or when the output cannot be
 * written. import: 0 when every record line was imported, 1 when some were skipped, 2 on a
 * usage or configuration error (a daemon holding state_dir is one), when the input cannot
 * be read, or when records were to be written and none could be. Errors are one line on
 * stderr.
 */
int state_main(int argc, char **argv);

#endif
