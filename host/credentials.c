/* credentials.c -- the broker password from the environment or a file
 * (see credentials.h). */
#include "credentials.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker_url.h"
#include "bushost.h"

static void wipe_free(char *s, size_t n)
{
    if (!s) return;
    explicit_bzero(s, n);
    free(s);
}

/* The environment's password, taken out of the environment on the first
 * call and kept for the later ones (a reload reads the config again, and
 * the process has one environment): NULL when unset or empty. *pw is
 * malloc'd. */
static char *kept; /* the process's, as its environment was */

void bh__credentials_forget(void)
{
    if (kept) wipe_free(kept, strlen(kept));
    kept = NULL;
}

static int from_env(char **pw)
{
    char *v = getenv(BH__PASSWORD_ENV);
    size_t n;

    *pw = NULL;
    if (!v) return kept && !(*pw = strdup(kept)) ? BH_ENOMEM : BH_OK;
    n = strlen(v);
    bh__credentials_forget();
    if (n && (!(*pw = strdup(v)) || !(kept = strdup(v)))) {
        free(*pw);
        *pw = NULL;
        return BH_ENOMEM;
    }
    unsetenv(BH__PASSWORD_ENV);
    /* The text outlives unsetenv (in the process's first stack, which
     * /proc/PID/environ shows, or in setenv's copy, which glibc never
     * frees): wipe it. */
    explicit_bzero(v, n);
    return BH_OK;
}

static int from_file(const char *path, char **pw, char *err, size_t errlen)
{
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    ssize_t got;
    /* O_NONBLOCK: a FIFO must be refused below, not wait for a writer. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK), rc = BH_EINVAL;

    *pw = NULL;
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot read password_file: %s", path, strerror(errno));
        return BH_EINVAL;
    }
    if (fstat(fd, &st)) {
        snprintf(err, errlen, "%s: cannot read password_file: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: password_file is not a regular file", path);
    } else if (st.st_mode & 077) {
        snprintf(err, errlen,
                 "%s: password_file is open to group or others (mode %04o): expected 0600 or "
                 "0400 (chmod 600 it)",
                 path, (unsigned)(st.st_mode & 07777));
    } else if (!(buf = malloc(BH__PASSWORD_MAX + 2))) {
        rc = BH_ENOMEM;
    } else {
        while ((got = read(fd, buf + len, BH__PASSWORD_MAX + 1 - len)) > 0 &&
               (len += (size_t)got) <= BH__PASSWORD_MAX)
            ;
        buf[len] = 0;
        if (len && buf[len - 1] == '\n') buf[--len] = 0;
        if (len && buf[len - 1] == '\r') buf[--len] = 0;
        if (got < 0)
            snprintf(err, errlen, "%s: cannot read password_file: %s", path, strerror(errno));
        else if (len > BH__PASSWORD_MAX)
            snprintf(err, errlen, "%s: password_file is longer than %d bytes", path,
                     BH__PASSWORD_MAX);
        else if (!len)
            snprintf(err, errlen, "%s: password_file is empty: expected the password", path);
        else if (strlen(buf) != len)
            snprintf(err, errlen, "%s: password_file holds a NUL byte", path);
        else rc = BH_OK;
    }
    close(fd);
    if (rc) wipe_free(buf, BH__PASSWORD_MAX + 2);
    else *pw = buf;
    return rc;
}

int bh__credentials_apply(char **urls, size_t n, const char *password_file, char *err,
                          size_t errlen)
{
    char *pw = NULL, *url;
    const char *from = BH__PASSWORD_ENV;
    int rc = from_env(&pw);
    size_t i;

    if (!rc && !pw && password_file) {
        from = password_file;
        rc = from_file(password_file, &pw, err, errlen);
    }
    for (i = 0; !rc && pw && i < n; i++) {
        if ((rc = bh__broker_url_with_password(urls[i], pw, &url))) break;
        explicit_bzero(urls[i], strlen(urls[i]));
        free(urls[i]);
        urls[i] = url;
    }
    /* Each URL was accepted already and the password is percent-encoded:
     * only a broken parse-back lands here. */
    if (rc == BH_EINVAL && pw)
        snprintf(err, errlen, "%s: the password cannot be put in broker URL %zu", from, i + 1);
    if (pw) wipe_free(pw, strlen(pw));
    return rc;
}
