/* loader.h -- finding, opening and checking plugin shared objects. */
#ifndef BH_LOADER_H
#define BH_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bushost.h"
#include "trust.h"

typedef struct bh__loaded {
    char *path; /* as found, e.g. "plugins/echo.so" */
    void *dl;   /* dlopen handle */
    /* The descriptor in this host's layout (bh__loader_open copies the
     * object's: fields its size does not cover are zero, route and config
     * tables are strided by its route_size and config_key_size, and
     * route_size/config_key_size then give this host's sizes). */
    const bh_plugin_t *desc;
    bh_plugin_t *own; /* what desc points to when the loader made it, else NULL */
    /* The private copy it was loaded from (removed once loaded: the mapping
     * stays), the object's base address, and the file's identity when it
     * was copied: what a reload compares to tell a changed file. */
    char *copy;
    const void *base;
    uint64_t hash;
    uint64_t size;
} bh__loaded_t;

/* Copy path to a new private folder (under $TMPDIR, else /tmp), so that
 * every load is a new object even when the file's path is the same (dlopen
 * of a path already open returns that object), dlopen(RTLD_NOW |
 * RTLD_LOCAL) the copy, remove it, look up BH_PLUGIN_SYMBOL, copy the
 * descriptor into this host's layout (desc above) and check it
 * (descriptor.h). */
int bh__loader_open(const char *path, bh__loaded_t *out, char *err, size_t errlen);

/* Whether a file of this name is taken for a plugin: "*.so". */
bool bh__loader_is_plugin_name(const char *name);

/* The identity of the file at path now (the hash a load records). */
int bh__loader_identify(const char *path, uint64_t *hash, uint64_t *size, char *err, size_t errlen);

/* The "*.so" files of dir (regular files or links to them, sorted by name;
 * folders skipped), each checked by trust.h along with dir. */
int bh__loader_list(const char *dir, bh__trust_mode_t trust, char ***names, size_t *n, char *err,
                    size_t errlen);
void bh__loader_free_list(char **names, size_t n);

/* Plugins with one name or one service among v[0..n): an error naming both. */
int bh__loader_check_unique(const bh__loaded_t *v, size_t n, char *err, size_t errlen);

/* Open every "*.so" in dir, in name order. Any failure fails the whole load
 * (nothing is skipped: a dangling link or an unreadable file is an error; a
 * folder named "*.so" is not a plugin). An empty folder is an error. Two
 * plugins with the same name or service are an error. Before anything is
 * opened, dir, its folders and each file are checked by trust.h. */
int bh__loader_open_dir(const char *dir, bh__trust_mode_t trust, bh__loaded_t **out, size_t *n,
                        char *err, size_t errlen);

/* Run the plugin's init (if any) with ctx; an error names the file. */
int bh__loader_init(const bh__loaded_t *p, bh_ctx_t *ctx, void **state, char *err, size_t errlen);
/* Run the plugin's fini (if any). Both name the plugin in a crash report
 * (crash.h) should it crash the process meanwhile. */
void bh__loader_fini(const bh__loaded_t *p, bh_ctx_t *ctx, void *state);

/* dlclose. False when the object stayed mapped all the same (a NODELETE
 * object: C++ thread_local destructors, STB_GNU_UNIQUE symbols). */
bool bh__loader_close(bh__loaded_t *p);
void bh__loader_close_all(bh__loaded_t *v, size_t n);

#endif
