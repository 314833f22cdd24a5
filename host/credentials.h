/* credentials.h -- the broker password, from outside the ini file.
 *
 * Sources, first found wins:
 *   1. the environment, BUSHOST_PASSWORD (set and not empty);
 *   2. [broker] password_file = FILE: its content, one trailing newline
 *      stripped; the file must be a regular file no one but its owner may
 *      read or write (mode 0600 or 0400);
 *   3. the password written in each URL (or none).
 * A password from 1 or 2 replaces the password of every broker URL, those
 * of the file and those of BUSHOST_URL alike, so the connection code sees
 * plain URLs. BUSHOST_PASSWORD is taken out of the environment once read
 * (and its text wiped), so plugins and the processes they start never see
 * it, and neither does /proc/PID/environ. No message ever holds a password
 * or the file's content. Main thread. */
#ifndef BH_CREDENTIALS_H
#define BH_CREDENTIALS_H

#include <stddef.h>

#define BH__PASSWORD_ENV "BUSHOST_PASSWORD"

/* Longest password_file content taken (bytes). */
enum { BH__PASSWORD_MAX = 4096 };

/* Apply the password (above) to the n URLs in urls (each malloc'd, replaced
 * in place). password_file: NULL for none. 0, or BH_EINVAL / BH_ENOMEM with
 * err naming the file or variable at fault. */
int bh__credentials_apply(char **urls, size_t n, const char *password_file, char *err,
                          size_t errlen);

/* Wipe the kept BUSHOST_PASSWORD (taken out of the environment by the
 * first load and used by the later ones, for the process has one
 * environment): at exit, and between unit tests. */
void bh__credentials_forget(void);

#endif
