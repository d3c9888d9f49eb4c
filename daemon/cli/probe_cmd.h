/*
 * "tlspolicyd probe": the REQUIRETLS MX probe (probe.c) run by hand, for each domain's MX
 * hosts as the daemon would find them, or for one host at a given address.
 */
#ifndef DAEMON_PROBE_CMD_H
#define DAEMON_PROBE_CMD_H

/*
 * probe_main - argv[0] is "probe". Returns the process exit status: 0 when every domain (or
 * host) has an address that passed (TLS, PKIX or DANE, REQUIRETLS advertised), 1 when any
 * has none, 2 on a usage or configuration error (with a one-line message on stderr).
 */
int probe_main(int argc, char **argv);

#endif
