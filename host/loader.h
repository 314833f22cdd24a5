/* loader.h -- finding, opening and checking plugin shared objects. */
#ifndef BH_LOADER_H
#define BH_LOADER_H

#include <stddef.h>

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
} bh__loaded_t;

/* dlopen(RTLD_NOW | RTLD_LOCAL) one file, look up BH_PLUGIN_SYMBOL, copy the
 * descriptor into this host's layout (desc above) and check it
 * (descriptor.h). */
int bh__loader_open(const char *path, bh__loaded_t *out, char *err, size_t errlen);

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

void bh__loader_close(bh__loaded_t *p);
void bh__loader_close_all(bh__loaded_t *v, size_t n);

#endif
