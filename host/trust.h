/* trust.h -- whether the plugin files, and the folders they sit in, can be
 * trusted: like sshd's StrictModes, a file or folder that another user could
 * change is refused (or, with [host] plugin_trust = relaxed, warned about).
 *
 * Trusted means: owned by root or by the user the host runs as (geteuid),
 * and writable by neither group nor others. The same holds for each folder
 * above plugins_dir up to '/', except that a folder with the sticky bit
 * (such as /tmp) may be writable by all: others cannot replace what it
 * holds. Paths are checked after resolving symlinks (realpath).
 * Main thread (it logs). */
#ifndef BH_TRUST_H
#define BH_TRUST_H

#include <stddef.h>

typedef enum bh__trust_mode {
    BH__TRUST_STRICT,  /* a finding is an error */
    BH__TRUST_RELAXED, /* a finding is a WARNING on stderr, and loading goes on */
} bh__trust_mode_t;

/* The folder dir and every folder above it. 0, or BH_EINVAL with err
 * "<folder>: plugins_dir is writable by others (mode 0777); ..." (strict). */
int bh__trust_dir(const char *dir, bh__trust_mode_t mode, char *err, size_t errlen);

/* A plugin file found in folder dir (already checked by bh__trust_dir):
 * the file after symlinks, and the folders of a link's target when they are
 * not dir. Errors start with path, the entry as found. */
int bh__trust_file(const char *path, const char *dir, bh__trust_mode_t mode, char *err,
                   size_t errlen);

/* A WARNING when the process runs as root (euid 0). */
void bh__trust_warn_root(void);

#endif
