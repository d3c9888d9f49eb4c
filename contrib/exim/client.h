/*
 * The Exim module's socketmap client (client.c): asks tlspolicyd one question on the one
 * connection of this process and parses the answer into Exim terms. tlspolicyd_exim.c, the
 * dlfunc entry points, is its only user. The names below are hidden: the module exports only
 * its dlfunc functions (and what proto/ exports).
 */
#ifndef TLSPOLICYD_EXIM_CLIENT_H
#define TLSPOLICYD_EXIM_CLIENT_H

#include <stddef.h>

#pragma GCC visibility push(hidden)

/* The status word of a socketmap reply. */
enum client_status { CLIENT_OK, CLIENT_NOTFOUND, CLIENT_TEMP, CLIENT_TIMEOUT, CLIENT_PERM };

/* At most this many match= patterns in one policy; more is an answer Exim cannot apply. */
#define CLIENT_MAX_PATTERNS 64

struct client_answer {
    enum client_status st;
    const char *text; /* after the status word: the policy, or the reason */
    char level[32];   /* OK: the level word */
    int npat;         /* OK, verify/secure: the match list, already in Exim's host-list form */
    char pat[CLIENT_MAX_PATTERNS][256];
    char bad[160]; /* non-empty: the answer cannot be expressed in Exim (the reason) */
};

/*
 * Ask tlspolicyd at endpoint (unix:/path, /path or inet:HOST:PORT) "tag domain" and parse
 * the reply into *a. Returns 0 when the daemon answered (any status), -1 when it could not
 * be asked or its reply made no sense (err filled in). a->text points into a buffer of this
 * module that the next question overwrites.
 */
int client_lookup(const char *endpoint, const char *tag, const char *domain,
                  struct client_answer *a, char *err, size_t errlen);

/*
 * client_parse_reply - a reply payload (dlen bytes at data, NUL-terminated at data[dlen])
 * to the question for domain, parsed into *a: 0 when it starts with a status word (a->text
 * points into data), -1 when it does not. tests/fuzz/fuzz_exim_answer.c drives it.
 */
int client_parse_reply(const char *data, size_t dlen, const char *domain, struct client_answer *a);

/* Connections this process opened and questions it asked. */
void client_stats(unsigned long *connects, unsigned long *questions);

#pragma GCC visibility pop

#endif
