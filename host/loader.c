/* loader.c -- finding, opening and checking plugin shared objects.
 *
 * Every error names the file, what was expected and what was found, so an
 * operator can act on it without reading this code. The descriptor is
 * copied into the host's layout and checked (descriptor.c) as soon as it is
 * found. */
#include "loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crash.h"
#include "descriptor.h"

int bh__loader_open(const char *path, bh__loaded_t *out, char *err, size_t errlen)
{
    bh_plugin_t *own = NULL;
    char *file;
    const char *e;
    void *dl, *sym;
    int rc;

    memset(out, 0, sizeof *out);
    /* Without a '/' dlopen would search the library path; we mean the file. */
    if (strchr(path, '/')) {
        file = strdup(path);
    } else if ((file = malloc(strlen(path) + 3))) {
        strcpy(file, "./");
        strcat(file, path);
    }
    if (!file) {
        bh__descriptor_fail(err, errlen, path, "out of memory");
        return BH_ENOMEM;
    }
    dl = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    free(file);
    if (!dl) {
        e = dlerror();
        return bh__descriptor_fail(err, errlen, path,
                                   "cannot load: %s (check its dependencies with: ldd %s)",
                                   e ? e : "unknown dlopen error", path);
    }
    dlerror(); /* clear, so a NULL below is told apart from an error */
    sym = dlsym(dl, BH_PLUGIN_SYMBOL);
    if (!sym) {
        dlclose(dl);
        return bh__descriptor_fail(
            err, errlen, path,
            "no symbol '%s': not a bushost plugin (define it with BH_PLUGIN(...))",
            BH_PLUGIN_SYMBOL);
    }
    if ((rc = bh__descriptor_copy(path, sym, &own, err, errlen)) ||
        (rc = bh__descriptor_check(path, own, err, errlen))) {
        bh__descriptor_free(own);
        dlclose(dl);
        return rc;
    }
    if (!(out->path = strdup(path))) {
        bh__descriptor_free(own);
        dlclose(dl);
        bh__descriptor_fail(err, errlen, path, "out of memory");
        return BH_ENOMEM;
    }
    out->dl = dl;
    out->desc = out->own = own;
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool ends_with_so(const char *name)
{
    size_t len = strlen(name);
    return len > 3 && !strcmp(name + len - 3, ".so");
}

static void free_names(char **names, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* A "*.so" entry: 0 a plugin to open, 1 a folder (skipped), else an error
 * naming it: a dangling link or an unreadable file is never skipped. */
static int check_entry(const char *full, char *err, size_t errlen)
{
    struct stat st;
    bool link = !lstat(full, &st) && S_ISLNK(st.st_mode);

    if (stat(full, &st))
        return bh__descriptor_fail(err, errlen, full, "cannot read plugin: %s%s", strerror(errno),
                                   link ? " (a dangling symlink)" : "");
    if (S_ISDIR(st.st_mode)) return 1;
    if (!S_ISREG(st.st_mode))
        return bh__descriptor_fail(err, errlen, full,
                                   "not a plugin: expected a regular file (mode %06o)",
                                   (unsigned)st.st_mode);
    if (access(full, R_OK))
        return bh__descriptor_fail(err, errlen, full, "cannot read plugin: %s", strerror(errno));
    return 0;
}

/* The full paths of the regular files (or links to them) named "*.so" in
 * dir, sorted by name. A folder named so is skipped. */
static int list_plugins(const char *dir, char ***names_out, size_t *n_out, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0;
    bool slash = *dir && dir[strlen(dir) - 1] == '/';

    if (!d)
        return bh__descriptor_fail(err, errlen, dir, "cannot read plugin folder: %s",
                                   strerror(errno));
    for (;;) {
        char *full;
        int rc;
        errno = 0;
        if (!(de = readdir(d))) {
            if (errno) {
                int e = errno;
                closedir(d);
                free_names(names, n);
                return bh__descriptor_fail(err, errlen, dir, "cannot read plugin folder: %s",
                                           strerror(e));
            }
            break;
        }
        if (!ends_with_so(de->d_name)) continue;
        if (!(full = malloc(strlen(dir) + strlen(de->d_name) + 2))) goto nomem;
        sprintf(full, "%s%s%s", dir, slash ? "" : "/", de->d_name);
        if ((rc = check_entry(full, err, errlen)) != 0) {
            free(full);
            if (rc > 0) continue;
            closedir(d);
            free_names(names, n);
            return BH_EINVAL;
        }
        if (n == cap) {
            char **grown = realloc(names, (cap = cap ? 2 * cap : 8) * sizeof *names);
            if (!grown) {
                free(full);
                goto nomem;
            }
            names = grown;
        }
        names[n++] = full;
    }
    closedir(d);
    if (n == 0) {
        free(names);
        return bh__descriptor_fail(err, errlen, dir, "no plugins (*.so) found");
    }
    qsort(names, n, sizeof *names, cmp_names);
    *names_out = names;
    *n_out = n;
    return 0;

nomem:
    closedir(d);
    free_names(names, n);
    bh__descriptor_fail(err, errlen, dir, "out of memory");
    return BH_ENOMEM;
}

/* Two plugins with one name would share a config section; with one service,
 * a queue. Either is a mistake of the operator's. */
static int check_unique(const bh__loaded_t *v, size_t n, char *err, size_t errlen)
{
    size_t i, j;
    for (i = 0; i < n; i++) {
        for (j = 0; j < i; j++) {
            if (!strcmp(v[i].desc->name, v[j].desc->name))
                return bh__descriptor_fail(
                    err, errlen, v[i].path,
                    "plugin name '%s' is already used by %s: expected each plugin once",
                    v[i].desc->name, v[j].path);
            if (!strcmp(v[i].desc->service, v[j].desc->service))
                return bh__descriptor_fail(
                    err, errlen, v[i].path,
                    "service '%s' (plugin '%s') is already the service of plugin '%s' in "
                    "%s: expected one plugin per service",
                    v[i].desc->service, v[i].desc->name, v[j].desc->name, v[j].path);
        }
    }
    return 0;
}

int bh__loader_open_dir(const char *dir, bh__trust_mode_t trust, bh__loaded_t **out, size_t *n,
                        char *err, size_t errlen)
{
    char **names = NULL;
    size_t count = 0, i;
    bh__loaded_t *v;
    int rc;

    *out = NULL;
    *n = 0;
    if ((rc = list_plugins(dir, &names, &count, err, errlen))) return rc;
    /* Before any dlopen: a constructor in a planted file would run at once. */
    rc = bh__trust_dir(dir, trust, err, errlen);
    for (i = 0; i < count && !rc; i++) rc = bh__trust_file(names[i], dir, trust, err, errlen);
    if (rc) {
        free_names(names, count);
        return rc;
    }
    if (!(v = calloc(count, sizeof *v))) {
        free_names(names, count);
        bh__descriptor_fail(err, errlen, dir, "out of memory");
        return BH_ENOMEM;
    }
    for (i = 0; i < count; i++)
        if ((rc = bh__loader_open(names[i], &v[i], err, errlen))) break;
    free_names(names, count);
    if (!rc) rc = check_unique(v, count, err, errlen);
    if (rc) {
        bh__loader_close_all(v, i);
        return rc;
    }
    *out = v;
    *n = count;
    return 0;
}

int bh__loader_init(const bh__loaded_t *p, bh_ctx_t *ctx, void **state, char *err, size_t errlen)
{
    int rc;
    *state = NULL;
    if (!p->desc->init) return 0;
    bh__crash_enter(
        &(bh__crash_at_t){BH__CRASH_INIT, NULL, p->desc->name, p->path, NULL, NULL, 0, -1});
    rc = p->desc->init(ctx, state);
    bh__crash_leave();
    if (rc != 0) {
        bh__descriptor_fail(err, errlen, p->path, "init of plugin '%s' failed: %s (%d)",
                            p->desc->name, bh_strerror(rc), rc);
        return rc < 0 ? rc : BH_EINVAL;
    }
    return 0;
}

void bh__loader_fini(const bh__loaded_t *p, bh_ctx_t *ctx, void *state)
{
    if (!p->desc->fini) return;
    bh__crash_enter(
        &(bh__crash_at_t){BH__CRASH_FINI, NULL, p->desc->name, p->path, NULL, NULL, 0, -1});
    p->desc->fini(ctx, state);
    bh__crash_leave();
}

void bh__loader_close(bh__loaded_t *p)
{
    if (!p) return;
    if (p->dl) dlclose(p->dl);
    bh__descriptor_free(p->own);
    free(p->path);
    memset(p, 0, sizeof *p);
}

/* Closes n entries and frees the array itself (as made by open_dir). */
void bh__loader_close_all(bh__loaded_t *v, size_t n)
{
    size_t i;
    if (!v) return;
    for (i = 0; i < n; i++) bh__loader_close(&v[i]);
    free(v);
}
