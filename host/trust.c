/* trust.c -- owner and mode checks of the plugin files and their folders
 * (see trust.h). */
#include "trust.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bushost.h"
#include "log.h"

#define HINT "; fix it (chmod go-w, chown), or set [host] plugin_trust = relaxed for development"

/* A finding: an error in strict mode, else a WARNING and 0. */
static int finding(bh__trust_mode_t mode, char *err, size_t errlen, const char *fmt, ...)
    BH_PRINTF(4, 5);
static int finding(bh__trust_mode_t mode, char *err, size_t errlen, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (mode == BH__TRUST_RELAXED) {
        bh__log(NULL, BH_WARNING, NULL, "%s (accepted: plugin_trust = relaxed)", msg);
        return 0;
    }
    if (err && errlen) snprintf(err, errlen, "%s%s", msg, HINT);
    return BH_EINVAL;
}

/* Who besides the owner may write; "others" takes in the group. */
static const char *who_writes(mode_t m)
{
    return m & S_IWOTH ? "others" : m & S_IWGRP ? "group" : NULL;
}

/* One file or folder, real (resolved); the message starts with shown and
 * calls it what, e.g. "plugins_dir". sticky_ok: a folder above, which may be
 * writable by all with the sticky bit. */
static int check_one(const char *shown, const char *real, const char *what, bool sticky_ok,
                     bh__trust_mode_t mode, char *err, size_t errlen)
{
    struct stat st;
    uid_t me = geteuid();
    const char *w;
    int rc;

    if (stat(real, &st))
        return finding(BH__TRUST_STRICT, err, errlen, "%s: cannot check %s: %s", shown, what,
                       strerror(errno));
    if (st.st_uid != 0 && st.st_uid != me &&
        (rc = finding(mode, err, errlen,
                      "%s: %s is owned by uid %u, expected root or the user the host runs as "
                      "(uid %u)",
                      shown, what, (unsigned)st.st_uid, (unsigned)me)))
        return rc;
    w = who_writes(st.st_mode);
    if (w && !(sticky_ok && (st.st_mode & S_ISVTX)) &&
        (rc = finding(mode, err, errlen, "%s: %s is writable by %s (mode %04o%s)", shown, what, w,
                      (unsigned)(st.st_mode & 07777), sticky_ok ? ", no sticky bit" : "")))
        return rc;
    return 0;
}

/* Each folder above real (a resolved path), up to '/'. */
static int check_above(const char *real, bh__trust_mode_t mode, char *err, size_t errlen)
{
    char up[PATH_MAX], what[PATH_MAX + 32];
    char *slash;
    int rc;

    snprintf(up, sizeof up, "%s", real);
    snprintf(what, sizeof what, "a folder above %s", real);
    while (strcmp(up, "/") && (slash = strrchr(up, '/'))) {
        slash[slash == up] = 0; /* "/x" becomes "/" */
        if ((rc = check_one(up, up, what, true, mode, err, errlen))) return rc;
    }
    return 0;
}

int bh__trust_dir(const char *dir, bh__trust_mode_t mode, char *err, size_t errlen)
{
    char real[PATH_MAX];
    int rc;

    if (!realpath(dir, real))
        return finding(BH__TRUST_STRICT, err, errlen, "%s: cannot resolve plugins_dir: %s", dir,
                       strerror(errno));
    if ((rc = check_one(real, real, "plugins_dir", false, mode, err, errlen))) return rc;
    return check_above(real, mode, err, errlen);
}

int bh__trust_file(const char *path, const char *dir, bh__trust_mode_t mode, char *err,
                   size_t errlen)
{
    char real[PATH_MAX], real_dir[PATH_MAX], what[PATH_MAX + 32] = "plugin file";
    struct stat st;
    char *slash;
    int rc;

    if (!realpath(path, real))
        return finding(BH__TRUST_STRICT, err, errlen, "%s: cannot resolve plugin: %s", path,
                       strerror(errno));
    /* Name a link's target, since that is the file to fix. */
    if (!lstat(path, &st) && S_ISLNK(st.st_mode))
        snprintf(what, sizeof what, "its link target %s", real);
    if ((rc = check_one(path, real, what, false, mode, err, errlen))) return rc;
    /* The target's folders, unless it is in plugins_dir itself. */
    slash = strrchr(real, '/');
    if (!slash || !realpath(dir, real_dir)) return 0;
    if ((size_t)(slash - real) == strlen(real_dir) && !strncmp(real, real_dir, strlen(real_dir)))
        return 0;
    return check_above(real, mode, err, errlen);
}

void bh__trust_warn_root(void)
{
    if (geteuid() == 0)
        bh__log(NULL, BH_WARNING, NULL,
                "running as root: plugins run with every privilege; run bushost as a user of "
                "its own");
}
