/* fixture_paths.c -- see fixture_paths.h. */
#include "fixture_paths.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dlfcn.h>
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

bool fx_loaded(const char *path)
{
    void *dl = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (dl) dlclose(dl);
    return dl != NULL;
}
