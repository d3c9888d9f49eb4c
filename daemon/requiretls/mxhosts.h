/*
 * The MX walk shared by the REQUIRETLS lookups (rtls.c) and "tlspolicyd probe"
 * (cli/probe_cmd.c): the hosts of an MX answer (RFC 5321 5.1), the addresses of an A or
 * AAAA answer, and a host's DANE TLSA records (dane.c) in the form probe_start() takes.
 * Each caller keeps its own policy: how many hosts, which addresses, what a failure means.
 */
#ifndef DAEMON_MXHOSTS_H
#define DAEMON_MXHOSTS_H

#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>

#include "dane.h"
#include "probe.h"
#include "resolver.h"

/* Called per MX record; host is "" for a null MX (RFC 7505); valid during the call. */
typedef void (*mxhosts_fn)(void *arg, const char *host, uint16_t pref);

/*
 * mxhosts_each - call fn for every MX record of ans (an answer with records), in the
 * answer's order; records that do not parse are skipped. Returns how many fn got.
 */
unsigned mxhosts_each(const struct resolver_answer *ans, mxhosts_fn fn, void *arg);

/*
 * mxhosts_addrs - the first max addresses of ans (an A or AAAA answer) as text, in the
 * answer's order, into out; none unless ans has records. Returns how many were written.
 */
unsigned mxhosts_addrs(const struct resolver_answer *ans, char (*out)[INET6_ADDRSTRLEN],
                       unsigned max);

/* mxhosts_tlsa - out[i] points at in[i]'s data (in must outlive out), for n records. */
void mxhosts_tlsa(struct probe_tlsa *out, const struct dane_tlsa *in, size_t n);

#endif
