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
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crash.h"
#include "descriptor.h"

/* FNV-1a, 64 bits: tells a changed file from an unchanged one. */
static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3u;
    return h;
}

#define FNV_OFFSET 0xcbf29ce484222325u

/* Read in to its end, hashing, and write each block to out (-1: nowhere). */
static int pass_file(int in, int out, uint64_t *hash, uint64_t *size)
{
    unsigned char buf[1 << 16];
    uint64_t h = FNV_OFFSET, total = 0;
    for (;;) {
        ssize_t got = read(in, buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return -1;
        if (got == 0) break;
        h = fnv1a(h, buf, (size_t)got);
        total += (uint64_t)got;
        for (ssize_t done = 0; out >= 0 && done < got;) {
            ssize_t put = write(out, buf + done, (size_t)(got - done));
            if (put < 0 && errno == EINTR) continue;
            if (put < 0) return -1;
            done += put;
        }
    }
    *hash = h;
    *size = total;
    return 0;
}

int bh__loader_identify(const char *path, uint64_t *hash, uint64_t *size, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || pass_file(fd, -1, hash, size)) {
        int e = errno;
        if (fd >= 0) close(fd);
        return bh__descriptor_fail(err, errlen, path, "cannot read plugin: %s", strerror(e));
    }
    close(fd);
    return 0;
}

/* The private folder and file of a copy go once the copy is loaded. */
static void drop_copy(char *copy)
{
    unlink(copy);
    char *slash = strrchr(copy, '/');
    *slash = '\0';
    rmdir(copy);
    *slash = '/';
}

/* path copied to <tmp>/bushost-XXXXXX/<its name>, in *copy (malloc'd). */
static int private_copy(const char *path, char **copy, uint64_t *hash, uint64_t *size, char *err,
                        size_t errlen)
{
    const char *tmp = getenv("TMPDIR"), *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (!tmp || !*tmp) tmp = "/tmp";
    size_t len = strlen(tmp) + strlen(base) + 17;
    char *c = malloc(len);
    if (!c) return bh__descriptor_fail(err, errlen, path, "out of memory"), BH_ENOMEM;
    snprintf(c, len, "%s/bushost-XXXXXX", tmp);
    if (!mkdtemp(c)) {
        int e = errno;
        bh__descriptor_fail(err, errlen, path,
                            "cannot make a folder for its private copy in %s: %s", tmp,
                            strerror(e));
        free(c);
        return BH_EINVAL;
    }
    size_t dir = strlen(c);
    snprintf(c + dir, len - dir, "/%s", base);
    int in = open(path, O_RDONLY | O_CLOEXEC), out = -1, rc = -1;
    if (in >= 0) out = open(c, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0500);
    if (out >= 0) rc = pass_file(in, out, hash, size);
    int e = errno;
    if (out >= 0 && close(out) && !rc) rc = -1, e = errno;
    if (in >= 0) close(in);
    if (rc) {
        bh__descriptor_fail(err, errlen, path, "cannot %s: %s",
                            in < 0 ? "read plugin" : "copy it to a private file", strerror(e));
        drop_copy(c);
        free(c);
        return BH_EINVAL;
    }
    *copy = c;
    return 0;
}

int bh__loader_open(const char *path, bh__loaded_t *out, char *err, size_t errlen)
{
    bh_plugin_t *own = NULL;
    char *copy = NULL;
    const char *e;
    void *dl, *sym;
    Dl_info info;
    uint64_t hash, size;
    int rc;

    memset(out, 0, sizeof *out);
    if ((rc = private_copy(path, &copy, &hash, &size, err, errlen))) return rc;
    dl = dlopen(copy, RTLD_NOW | RTLD_LOCAL);
    drop_copy(copy);
    if (!dl) {
        e = dlerror();
        /* dlerror names the copy: say the file's name instead. */
        const char *tail = e ? strstr(e, copy) : NULL;
        const char *why = tail ? tail + strlen(copy) + (tail[strlen(copy)] == ':' ? 2 : 0)
                          : e  ? e
                               : "unknown dlopen error";
        rc = strstr(why, "failed to map segment")
                 ? bh__descriptor_fail(err, errlen, path,
                                       "cannot load its private copy %s: %s (is that folder on a "
                                       "noexec mount? set TMPDIR to one that is not)",
                                       copy, why)
                 : bh__descriptor_fail(err, errlen, path,
                                       "cannot load: %s (check its dependencies with: ldd %s)", why,
                                       path);
        free(copy);
        return rc;
    }
    dlerror(); /* clear, so a NULL below is told apart from an error */
    sym = dlsym(dl, BH_PLUGIN_SYMBOL);
    if (!sym) {
        dlclose(dl);
        free(copy);
        return bh__descriptor_fail(
            err, errlen, path,
            "no symbol '%s': not a bushost plugin (define it with BH_PLUGIN(...))",
            BH_PLUGIN_SYMBOL);
    }
    if ((rc = bh__descriptor_copy(path, sym, &own, err, errlen)) ||
        (rc = bh__descriptor_check(path, own, err, errlen))) {
        bh__descriptor_free(own);
        dlclose(dl);
        free(copy);
        return rc;
    }
    if (!(out->path = strdup(path))) {
        bh__descriptor_free(own);
        dlclose(dl);
        free(copy);
        bh__descriptor_fail(err, errlen, path, "out of memory");
        return BH_ENOMEM;
    }
    out->dl = dl;
    out->desc = out->own = own;
    out->copy = copy;
    out->base = dladdr(sym, &info) ? info.dli_fbase : NULL;
    out->hash = hash;
    out->size = size;
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

bool bh__loader_is_plugin_name(const char *name)
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
        if (!bh__loader_is_plugin_name(de->d_name)) continue;
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
int bh__loader_check_unique(const bh__loaded_t *v, size_t n, char *err, size_t errlen)
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

void bh__loader_free_list(char **names, size_t n) { free_names(names, n); }

int bh__loader_list(const char *dir, bh__trust_mode_t trust, char ***names, size_t *n, char *err,
                    size_t errlen)
{
    int rc = list_plugins(dir, names, n, err, errlen);
    if (rc) return rc;
    /* Before any dlopen: a constructor in a planted file would run at once. */
    rc = bh__trust_dir(dir, trust, err, errlen);
    for (size_t i = 0; i < *n && !rc; i++)
        rc = bh__trust_file((*names)[i], dir, trust, err, errlen);
    if (rc) {
        free_names(*names, *n);
        *names = NULL;
        *n = 0;
    }
    return rc;
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
    if ((rc = bh__loader_list(dir, trust, &names, &count, err, errlen))) return rc;
    if (!(v = calloc(count, sizeof *v))) {
        free_names(names, count);
        bh__descriptor_fail(err, errlen, dir, "out of memory");
        return BH_ENOMEM;
    }
    for (i = 0; i < count; i++)
        if ((rc = bh__loader_open(names[i], &v[i], err, errlen))) break;
    free_names(names, count);
    if (!rc) rc = bh__loader_check_unique(v, count, err, errlen);
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

bool bh__loader_close(bh__loaded_t *p)
{
    bool gone = true;
    if (!p) return true;
    if (p->dl) {
        dlclose(p->dl);
        /* Still found by its (removed) copy's name: it stayed mapped. */
        void *again = p->copy ? dlopen(p->copy, RTLD_NOW | RTLD_NOLOAD) : NULL;
        if (again) {
            gone = false;
            dlclose(again);
        }
    }
    bh__descriptor_free(p->own);
    free(p->path);
    free(p->copy);
    memset(p, 0, sizeof *p);
    return gone;
}

/* Closes n entries and frees the array itself (as made by open_dir). */
void bh__loader_close_all(bh__loaded_t *v, size_t n)
{
    size_t i;
    if (!v) return;
    for (i = 0; i < n; i++) bh__loader_close(&v[i]);
    free(v);
}
