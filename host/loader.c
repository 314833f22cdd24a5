/* loader.c -- finding, opening and checking plugin shared objects.
 *
 * Every error names the file, what was expected and what was found, so an
 * operator can act on it without reading this code. */
#include "loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"

/* The ABI 1.0 descriptor ends with fini: any plugin has at least that. */
#define MIN_DESC_SIZE (offsetof(bh_plugin_t, fini) + sizeof(void (*)(void)))
/* AMQP short strings (routing keys, queue names) hold at most 255 bytes. */
#define MAX_AMQP_NAME 255

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

/* "'.' at byte 3", or the byte in hex when it does not print. */
static void describe_byte(char *buf, size_t len, const char *s, size_t i)
{
    unsigned char c = (unsigned char)s[i];
    if (c > 0x20 && c < 0x7f) snprintf(buf, len, "'%c' at byte %zu", c, i);
    else if (c == ' ') snprintf(buf, len, "a space at byte %zu", i);
    else snprintf(buf, len, "byte 0x%02x at byte %zu", c, i);
}

static bool is_ident_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* Bytes a routing key word may hold: anything but topic wildcards, spaces
 * and control characters. */
static bool is_key_char(unsigned char c) { return c > 0x20 && c != 0x7f && c != '*' && c != '#'; }

/* Plugin and service names: [A-Za-z0-9_-]+, short enough that the queue
 * "<service>.commands" is a valid AMQP name. */
static int check_ident(const char *path, const char *what, const char *s, size_t max, char *err,
                       size_t errlen)
{
    char found[48];
    size_t i;
    if (!s) return fail(err, errlen, path, "no %s: expected .%s = \"...\", found NULL", what, what);
    if (!*s)
        return fail(err, errlen, path, "empty %s: expected letters, digits, '_' or '-', found \"\"",
                    what);
    for (i = 0; s[i]; i++) {
        if (!is_ident_char((unsigned char)s[i])) {
            describe_byte(found, sizeof found, s, i);
            return fail(err, errlen, path,
                        "bad %s \"%s\": expected letters, digits, '_' or '-', found %s", what, s,
                        found);
        }
    }
    if (i > max)
        return fail(err, errlen, path, "%s \"%.20s...\" is %zu bytes long, expected at most %zu",
                    what, s, i, max);
    return 0;
}

enum table { T_EVENTS, T_COMMANDS, T_RESULTS };
static const char *const table_what[] = {"event", "command", "result"};

/* Event names and result keys are routing keys: dot-separated non-empty
 * words. Command keys are one word (the host prefixes "<service>."). */
static int check_key(const char *path, enum table t, const char *key, size_t service_len, char *err,
                     size_t errlen)
{
    const char *what = table_what[t];
    char found[48];
    size_t i, len = strlen(key);
    size_t max = t == T_COMMANDS ? MAX_AMQP_NAME - 1 - service_len : MAX_AMQP_NAME;

    if (len == 0) return fail(err, errlen, path, "empty %s key: expected a name, found \"\"", what);
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (t == T_COMMANDS && c == '.') {
            describe_byte(found, sizeof found, key, i);
            return fail(
                err, errlen, path,
                "command key \"%s\" is not a VerbObject name (the host adds \"<service>.\"): "
                "expected no '.', '*', '#' or spaces, found %s",
                key, found);
        }
        if (!is_key_char(c)) {
            describe_byte(found, sizeof found, key, i);
            return fail(err, errlen, path,
                        "%s key \"%s\" is not a valid routing key: expected dot-separated words "
                        "without '*', '#' or spaces, found %s",
                        what, key, found);
        }
        if (c == '.' && (i == 0 || i + 1 == len || key[i + 1] == '.'))
            return fail(err, errlen, path,
                        "%s key \"%s\" is not a valid routing key: expected dot-separated words, "
                        "found an empty word at byte %zu",
                        what, key, i == 0 ? i : i + 1);
    }
    if (len > max) {
        if (t == T_COMMANDS)
            return fail(err, errlen, path,
                        "command key \"%.20s...\" is %zu bytes long, expected at most %zu "
                        "(\"<service>.<command>\" must fit in %d bytes)",
                        key, len, max, MAX_AMQP_NAME);
        return fail(err, errlen, path, "%s key \"%.20s...\" is %zu bytes long, expected at most %d",
                    what, key, len, MAX_AMQP_NAME);
    }
    return 0;
}

static int check_routes(const char *path, enum table t, const bh_route_t *r, size_t service_len,
                        size_t *count, char *err, size_t errlen)
{
    const char *what = table_what[t];
    size_t i, j;
    int rc;
    if (!r) return 0;
    for (i = 0; r[i].key; i++) {
        if ((rc = check_key(path, t, r[i].key, service_len, err, errlen))) return rc;
        if (!r[i].handler)
            return fail(err, errlen, path,
                        "%s \"%s\" has no handler: expected a function, found NULL", what,
                        r[i].key);
        for (j = 0; j < i; j++)
            if (!strcmp(r[j].key, r[i].key))
                return fail(err, errlen, path,
                            "%s key \"%s\" is listed twice (entries %zu and %zu): expected each "
                            "key once",
                            what, r[i].key, j, i);
    }
    *count += i;
    return 0;
}

/* Config keys must be writable as "key = value" in an INI section. */
static bool is_ini_key_char(unsigned char c)
{
    return c > 0x20 && c != 0x7f && !strchr("=:;#[]", c);
}

static int check_config(const char *path, const bh_config_key_t *k, char *err, size_t errlen)
{
    char found[48];
    size_t i, j, c;
    if (!k) return 0;
    for (i = 0; k[i].key; i++) {
        const char *key = k[i].key;
        if (!*key)
            return fail(err, errlen, path, "config key %zu is empty: expected a name, found \"\"",
                        i);
        for (c = 0; key[c]; c++) {
            if (!is_ini_key_char((unsigned char)key[c])) {
                describe_byte(found, sizeof found, key, c);
                return fail(err, errlen, path,
                            "config key \"%s\" cannot be written in an INI file: expected no "
                            "spaces, '=', ':', ';', '#', '[' or ']', found %s",
                            key, found);
            }
        }
        for (j = 0; j < i; j++)
            if (!strcmp(k[j].key, key))
                return fail(err, errlen, path,
                            "config key \"%s\" is declared twice (entries %zu and %zu): expected "
                            "each key once",
                            key, j, i);
        if (bh__config_reserved_key(key))
            return fail(err, errlen, path,
                        "config key \"%s\" is reserved by the host: expected another name", key);
        switch ((int)k[i].type) {
        case BH_CONF_STR:
        case BH_CONF_BOOL:
        case BH_CONF_DOUBLE:
            break;
        case BH_CONF_INT:
            if (k[i].min > k[i].max)
                return fail(err, errlen, path,
                            "config key \"%s\" has bounds [%lld, %lld]: expected min <= max", key,
                            (long long)k[i].min, (long long)k[i].max);
            break;
        default:
            return fail(err, errlen, path,
                        "config key \"%s\" has type %d: expected BH_CONF_STR, BH_CONF_INT, "
                        "BH_CONF_BOOL or BH_CONF_DOUBLE (%d..%d)",
                        key, (int)k[i].type, BH_CONF_STR, BH_CONF_DOUBLE);
        }
    }
    return 0;
}

int bh__loader_check(const char *path, const bh_plugin_t *d, char *err, size_t errlen)
{
    size_t service_len, routes = 0;
    int rc;

    if (!d) return fail(err, errlen, path, "no descriptor: expected a bh_plugin_t, found NULL");
    /* Identity first: nothing else can be trusted until these match. */
    if (d->magic != BH_MAGIC)
        return fail(err, errlen, path,
                    "bad magic 0x%08x, expected 0x%08x (not a bushost plugin, or garbled)",
                    (unsigned)d->magic, (unsigned)BH_MAGIC);
    if (d->abi_major != BH_ABI_MAJOR)
        return fail(err, errlen, path,
                    "ABI %u.%u, this host speaks %d.%d (major must match): rebuild the plugin",
                    (unsigned)d->abi_major, (unsigned)d->abi_minor, BH_ABI_MAJOR, BH_ABI_MINOR);
    if (d->abi_minor > BH_ABI_MINOR)
        return fail(err, errlen, path, "ABI %u.%u is newer than this host's %d.%d: upgrade bushost",
                    (unsigned)d->abi_major, (unsigned)d->abi_minor, BH_ABI_MAJOR, BH_ABI_MINOR);
    /* A plugin of an older minor may be shorter than our struct (a later host
     * reads appended fields only when size has them), never longer. */
    if (d->size < MIN_DESC_SIZE)
        return fail(err, errlen, path,
                    "descriptor size %u bytes, expected at least %zu (the ABI %d.0 descriptor): "
                    "garbled",
                    (unsigned)d->size, MIN_DESC_SIZE, BH_ABI_MAJOR);
    if (d->size > sizeof(bh_plugin_t))
        return fail(err, errlen, path,
                    "descriptor size %u bytes for ABI %u.%u, expected at most %zu: garbled",
                    (unsigned)d->size, (unsigned)d->abi_major, (unsigned)d->abi_minor,
                    sizeof(bh_plugin_t));

    if ((rc = check_ident(path, "name", d->name, MAX_AMQP_NAME, err, errlen))) return rc;
    if (!d->version)
        return fail(err, errlen, path,
                    "plugin '%s' has no version: expected .version = \"...\", found NULL", d->name);
    if ((rc = check_ident(path, "service", d->service, MAX_AMQP_NAME - strlen(".commands"), err,
                          errlen)))
        return rc;
    service_len = strlen(d->service);

    if ((rc = check_routes(path, T_EVENTS, d->events, service_len, &routes, err, errlen)) ||
        (rc = check_routes(path, T_COMMANDS, d->commands, service_len, &routes, err, errlen)) ||
        (rc = check_routes(path, T_RESULTS, d->results, service_len, &routes, err, errlen)))
        return rc;
    if (routes == 0)
        return fail(err, errlen, path,
                    "plugin '%s' handles nothing: expected at least one event, command or result "
                    "route, found none",
                    d->name);
    return check_config(path, d->config, err, errlen);
}

int bh__loader_open(const char *path, bh__loaded_t *out, char *err, size_t errlen)
{
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
    if ((rc = bh__loader_check(path, sym, err, errlen))) {
        dlclose(dl);
        return rc;
    }
    if (!(out->path = strdup(path))) {
        dlclose(dl);
        fail(err, errlen, path, "out of memory");
        return BH_ENOMEM;
    }
    out->dl = dl;
    out->desc = sym;
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

/* The full paths of the regular files (or links to them) named "*.so" in
 * dir, sorted by name. */
static int list_plugins(const char *dir, char ***names_out, size_t *n_out, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0;
    bool slash = *dir && dir[strlen(dir) - 1] == '/';

    if (!d) return fail(err, errlen, dir, "cannot read plugin folder: %s", strerror(errno));
    for (;;) {
        struct stat st;
        char *full;
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
        if (stat(full, &st) || !S_ISREG(st.st_mode)) {
            free(full); /* a folder, a dangling link... not a plugin */
            continue;
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

int bh__loader_open_dir(const char *dir, bh__loaded_t **out, size_t *n, char *err, size_t errlen)
{
    char **names = NULL;
    size_t count = 0, i;
    bh__loaded_t *v;
    int rc;

    *out = NULL;
    *n = 0;
    if ((rc = list_plugins(dir, &names, &count, err, errlen))) return rc;
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
    if ((rc = p->desc->init(ctx, state)) != 0) {
        fail(err, errlen, p->path, "init of plugin '%s' failed: %s (%d)", p->desc->name,
             bh_strerror(rc), rc);
        return rc < 0 ? rc : BH_EINVAL;
    }
    return 0;
}

void bh__loader_close(bh__loaded_t *p)
{
    if (!p) return;
    if (p->dl) dlclose(p->dl);
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
