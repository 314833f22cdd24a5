/* loader.c -- finding, opening and checking plugin shared objects.
 *
 * Every error names the file, what was expected and what was found, so an
 * operator can act on it without reading this code. The descriptor is
 * checked by the plugin contract (contract.c) as soon as it is found. */
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

#include "contract.h"
#include "crash.h"
#include "schema.h"
#include "topology.h"

static int fail(char *err, size_t errlen, const char *path, const char *fmt, ...) BH_PRINTF(4, 5);
static int fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
    if (err && errlen) {
        int n = snprintf(err, errlen, "%s: ", path);
        if (n >= 0 && (size_t)n < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return BH_EINVAL;
}

/* Two result keys that name one key by the naming rule ("EchoReturn" and
 * "<service>.EchoReturn"): the second route could never be reached. */
static int check_result_names(const char *path, const bh_plugin_t *d, char *err, size_t errlen)
{
    for (size_t i = 0; d->results && d->results[i].key; i++) {
        char *full = bh__topology_result_key(d, d->service, d->results[i].key);
        if (!full) return fail(err, errlen, path, "out of memory");
        for (size_t j = 0; j < i; j++) {
            if (!bh__topology_result_is(d, d->service, d->results[j].key, full)) continue;
            fail(err, errlen, path,
                 "result keys \"%s\" and \"%s\" (entries %zu and %zu) both name \"%s\": "
                 "expected each key once",
                 d->results[j].key, d->results[i].key, j, i, full);
            free(full);
            return BH_EINVAL;
        }
        free(full);
    }
    return BH_OK;
}

int bh__loader_check(const char *path, const bh_plugin_t *d, char *err, size_t errlen)
{
    char why[1024];
    int rc = bh__contract_plugin(d, why, sizeof why);

    return rc ? fail(err, errlen, path, "%s", why) : check_result_names(path, d, err, errlen);
}

/* The ABI 1.0 element sizes: what a descriptor without route_size and
 * config_key_size (or with them 0) has. */
#define ROUTE_SIZE_1_0 (offsetof(bh_route_t, handler) + sizeof(bh_handler_fn))
#define CONFIG_KEY_SIZE_1_0 (offsetof(bh_config_key_t, max) + sizeof(int64_t))

/* Entries of a table of elements `stride` bytes apart, before the one
 * whose key (the first field of each) is NULL. */
static size_t table_len(const void *t, size_t stride)
{
    size_t n = 0;
    for (const char *key;; n++) {
        if (!t) return 0;
        memcpy(&key, (const char *)t + n * stride, sizeof key);
        if (!key) return n;
    }
}

/* Copies n + 1 elements (the terminator too) into the host's layout:
 * fields the plugin's element has (stride covers them) as they are, the
 * others zero. */
static void *table_copy(void *dst, size_t size, const void *src, size_t stride, size_t n)
{
    if (!src) return NULL;
    for (size_t i = 0; i <= n; i++)
        memcpy((char *)dst + i * size, (const char *)src + i * stride,
               stride < size ? stride : size);
    return dst;
}

static int stride_of(const char *path, const char *what, size_t given, size_t min, size_t *out,
                     char *err, size_t errlen)
{
    *out = given ? given : min;
    if (given && (given < min || given % sizeof(void *)))
        return fail(err, errlen, path,
                    "%s %zu bytes, expected a multiple of %zu of at least %zu (the ABI %d.0 "
                    "size): garbled",
                    what, given, sizeof(void *), min, BH_ABI_MAJOR);
    return BH_OK;
}

/* Replaces each route's declared payloads (pointers into the plugin) with
 * checked copies in this host's layout (schema.h). After the first error
 * (in *rc) the rest are only cleared, so that free_schemas frees copies
 * alone. */
static void own_schemas(const char *path, const char *what, bh_route_t *t, int *rc, char *err,
                        size_t errlen)
{
    for (; t && t->key; t++) {
        const bh_schema_t *want[2] = {t->payload, t->reply};
        bh_schema_t *got[2] = {NULL, NULL};
        char why[512];
        t->payload = t->reply = NULL;
        for (int k = 0; k < 2 && !*rc; k++) {
            if (!want[k]) continue;
            if (k && strcmp(what, "command"))
                *rc = fail(err, errlen, path,
                           "%s route \"%s\": a reply schema, but only commands are answered", what,
                           t->key);
            else if ((*rc = bh__schema_copy(want[k], &got[k], why, sizeof why)))
                fail(err, errlen, path, "%s route \"%s\": %s schema: %s", what, t->key,
                     k ? "reply" : "payload", why);
        }
        t->payload = got[0];
        t->reply = got[1];
    }
}

static void free_route_schemas(const bh_route_t *t)
{
    for (; t && t->key; t++) {
        bh__schema_free((bh_schema_t *)t->payload);
        bh__schema_free((bh_schema_t *)t->reply);
    }
}

static void free_own(bh_plugin_t *own)
{
    if (!own) return;
    free_route_schemas(own->events);
    free_route_schemas(own->commands);
    free_route_schemas(own->results);
    free(own);
}

/* The plugin's descriptor as this host's bh_plugin_t, with its tables in
 * this host's bh_route_t and bh_config_key_t layout (ABI GROWTH RULES in
 * bushost.h): one allocation, in *out. Its identity is checked first. */
static int normalize(const char *path, const bh_plugin_t *raw, bh_plugin_t **out, char *err,
                     size_t errlen)
{
    char why[1024];
    bh_plugin_t d;
    size_t rs, ks;
    int rc;

    if (bh__contract_identity(raw, why, sizeof why)) return fail(err, errlen, path, "%s", why);
    memset(&d, 0, sizeof d);
    memcpy(&d, raw, raw->size);
    if ((rc = stride_of(path, "route_size", d.route_size, ROUTE_SIZE_1_0, &rs, err, errlen)) ||
        (rc = stride_of(path, "config_key_size", d.config_key_size, CONFIG_KEY_SIZE_1_0, &ks, err,
                        errlen)))
        return rc;
    size_t ne = table_len(d.events, rs), nc = table_len(d.commands, rs),
           nr = table_len(d.results, rs), nk = table_len(d.config, ks);
    size_t routes = ne + nc + nr + 3;
    bh_plugin_t *p =
        calloc(1, sizeof *p + routes * sizeof(bh_route_t) + (nk + 1) * sizeof(bh_config_key_t));
    if (!p) {
        fail(err, errlen, path, "out of memory");
        return BH_ENOMEM;
    }
    bh_route_t *r = (bh_route_t *)(p + 1);
    *p = d;
    p->route_size = sizeof(bh_route_t);
    p->config_key_size = sizeof(bh_config_key_t);
    p->events = table_copy(r, sizeof *r, d.events, rs, ne);
    p->commands = table_copy(r + ne + 1, sizeof *r, d.commands, rs, nc);
    p->results = table_copy(r + ne + nc + 2, sizeof *r, d.results, rs, nr);
    p->config = table_copy(r + routes, sizeof(bh_config_key_t), d.config, ks, nk);
    rc = BH_OK;
    own_schemas(path, "event", r, &rc, err, errlen);
    own_schemas(path, "command", r + ne + 1, &rc, err, errlen);
    own_schemas(path, "result", r + ne + nc + 2, &rc, err, errlen);
    if (rc) {
        free_own(p);
        return rc;
    }
    *out = p;
    return BH_OK;
}

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
        fail(err, errlen, path, "out of memory");
        return BH_ENOMEM;
    }
    dl = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    free(file);
    if (!dl) {
        e = dlerror();
        return fail(err, errlen, path, "cannot load: %s (check its dependencies with: ldd %s)",
                    e ? e : "unknown dlopen error", path);
    }
    dlerror(); /* clear, so a NULL below is told apart from an error */
    sym = dlsym(dl, BH_PLUGIN_SYMBOL);
    if (!sym) {
        dlclose(dl);
        return fail(err, errlen, path,
                    "no symbol '%s': not a bushost plugin (define it with BH_PLUGIN(...))",
                    BH_PLUGIN_SYMBOL);
    }
    if ((rc = normalize(path, sym, &own, err, errlen)) ||
        (rc = bh__loader_check(path, own, err, errlen))) {
        free_own(own);
        dlclose(dl);
        return rc;
    }
    if (!(out->path = strdup(path))) {
        free_own(own);
        dlclose(dl);
        fail(err, errlen, path, "out of memory");
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
        return fail(err, errlen, full, "cannot read plugin: %s%s", strerror(errno),
                    link ? " (a dangling symlink)" : "");
    if (S_ISDIR(st.st_mode)) return 1;
    if (!S_ISREG(st.st_mode))
        return fail(err, errlen, full, "not a plugin: expected a regular file (mode %06o)",
                    (unsigned)st.st_mode);
    if (access(full, R_OK))
        return fail(err, errlen, full, "cannot read plugin: %s", strerror(errno));
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

    if (!d) return fail(err, errlen, dir, "cannot read plugin folder: %s", strerror(errno));
    for (;;) {
        char *full;
        int rc;
        errno = 0;
        if (!(de = readdir(d))) {
            if (errno) {
                int e = errno;
                closedir(d);
                free_names(names, n);
                return fail(err, errlen, dir, "cannot read plugin folder: %s", strerror(e));
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
        return fail(err, errlen, dir, "no plugins (*.so) found");
    }
    qsort(names, n, sizeof *names, cmp_names);
    *names_out = names;
    *n_out = n;
    return 0;

nomem:
    closedir(d);
    free_names(names, n);
    fail(err, errlen, dir, "out of memory");
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
                return fail(err, errlen, v[i].path,
                            "plugin name '%s' is already used by %s: expected each plugin once",
                            v[i].desc->name, v[j].path);
            if (!strcmp(v[i].desc->service, v[j].desc->service))
                return fail(err, errlen, v[i].path,
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
        fail(err, errlen, dir, "out of memory");
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
        fail(err, errlen, p->path, "init of plugin '%s' failed: %s (%d)", p->desc->name,
             bh_strerror(rc), rc);
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
    free_own(p->own);
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
