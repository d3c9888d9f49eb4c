/*
 * Dropping root for cfg->user (privs.h): getpwnam, initgroups, setgid, setuid, and the check
 * that the switch cannot be undone.
 */
#include "privs.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void privs_owner(const struct config *cfg, uid_t *uid, gid_t *gid)
{
    struct passwd *pw = geteuid() == 0 && cfg->user[0] ? getpwnam(cfg->user) : NULL;

    *uid = pw ? pw->pw_uid : (uid_t)-1;
    *gid = pw ? pw->pw_gid : (gid_t)-1;
}

int privs_drop(const struct config *cfg, char *err, size_t errlen)
{
    struct passwd *pw;

    if (geteuid() != 0 || cfg->user[0] == '\0')
        return 0;
    pw = getpwnam(cfg->user);
    if (pw == NULL) {
        snprintf(err, errlen, "user = %s: no such user", cfg->user);
        return -1;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
        setuid(pw->pw_uid) < 0) {
        snprintf(err, errlen, "user = %s: cannot switch: %s", cfg->user, strerror(errno));
        return -1;
    }
    /* Root must be gone for good: a setuid(0) that succeeds means it was not. */
    if (pw->pw_uid != 0 && setuid(0) == 0) {
        snprintf(err, errlen, "user = %s: privileges could be regained", cfg->user);
        return -1;
    }
    return 1;
}
