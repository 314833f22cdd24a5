/* fixture_paths.c -- see fixture_paths.h. */
#include "fixture_paths.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <link.h>
#include <string.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

const char *fx(const char *rel)
{
    static char bufs[4][PATH_MAX];
    static int next;
    const char *root = getenv("BH_FIXTURES");
    char *b = bufs[next++ % 4];
    if (!root || !*root) fail_msg("BH_FIXTURES is not set: run this test through ctest");
    snprintf(b, PATH_MAX, "%s/%s", root, rel);
    return b;
}

struct seek {
    const char *path, *base;
    bool found;
};

/* The object is path itself, or a private copy of it (loader.h):
 * .../bushost-XXXXXX/<its file name>. */
static int seek_one(struct dl_phdr_info *info, size_t size, void *ud)
{
    struct seek *k = ud;
    const char *name = info->dlpi_name, *slash = name ? strrchr(name, '/') : NULL;
    (void)size;
    if (!name || !*name) return 0;
    if (!strcmp(name, k->path) || (slash && !strcmp(slash + 1, k->base) && slash - name >= 15 &&
                                   !strncmp(slash - 15, "/bushost-", 9)))
        k->found = true;
    return k->found;
}

bool fx_loaded(const char *path)
{
    const char *slash = strrchr(path, '/');
    struct seek k = {path, slash ? slash + 1 : path, false};
    dl_iterate_phdr(seek_one, &k);
    return k.found;
}
