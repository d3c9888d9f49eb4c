/*
 * "tlspolicyd query [-c FILE] [-o key=value]... [--map NAME] [--json] DOMAIN...": answer
 * lookups without a running daemon, through the same lookup path, and say why.
 */
#ifndef DAEMON_QUERY_H
#define DAEMON_QUERY_H

/*
 * query_main - argv[0] is "query". Returns the process exit status: 0 when every lookup
 * got OK or NOTFOUND, 1 when any got TEMP, TIMEOUT or PERM, 2 on a usage or configuration
 * error (with a one-line message on stderr).
 */
int query_main(int argc, char **argv);

#endif
