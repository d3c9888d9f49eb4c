/*
 * The switch from root to the configured user (SPEC 7, security defaults), shared by the
 * daemon (after binding) and the commands that touch state_dir ("state import", "state
 * export"), so that whatever they write belongs to the user the daemon runs as.
 */
#ifndef DAEMON_PRIVS_H
#define DAEMON_PRIVS_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"

/*
 * privs_owner - the user and group state_dir is given to: cfg->user's when this process
 * runs as root and cfg->user is set and known, else (uid_t)-1 and (gid_t)-1 (the
 * effective user, nothing to give).
 */
void privs_owner(const struct config *cfg, uid_t *uid, gid_t *gid);

/*
 * privs_drop - when root and cfg->user is set, become that user (its groups too), for good:
 * regaining root afterwards is checked to fail. Returns 1 when it switched, 0 when there
 * was nothing to do (not root, or no user set), -1 with a one-line reason in err.
 */
int privs_drop(const struct config *cfg, char *err, size_t errlen);

#endif
