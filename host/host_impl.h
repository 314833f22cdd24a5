/* host_impl.h -- the inside of a host generation, for host.c and the
 * reload that changes it in place (host_reload.c). */
#ifndef BH_HOST_IMPL_H
#define BH_HOST_IMPL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <uv.h>

#include "config.h"
#include "host.h"
#include "loader.h"
#include "host_reload.h"
#include "service.h"

struct bh__host {
    bh__config_t cfg;
    bh__loaded_t *plugins;
    size_t n_plugins;
    bh__service_t **svcs; /* svcs[i] runs plugins[i] */
    size_t n_svcs;        /* created so far */
    size_t n_started;
    atomic_bool draining;
    bool started, joined;
    /* The I/O threads still running, plus one while bh__host_start runs:
     * whoever takes it to 0 wakes `exited`, whose close delivers on_stopped. */
    atomic_size_t running;
    uv_async_t exited;
    uv_timer_t none;     /* stands in for `exited` when loop cannot take it */
    bh__reload_t reload; /* host_reload.h */
    void (*on_stopped)(void *ud);
    void *ud;
};

/* Count one more user of the generation, so that it does not end while a
 * reload replaces its only service; release ends what hold began. */
void bh__host_hold(bh__host_t *h);
void bh__host_release(bh__host_t *h);
/* Start one more service of h (a reload's), counted among those running. */
int bh__host_start_one(bh__host_t *h, bh__service_t *s, char *err, size_t errlen);

/* host_reload_run.c, for host_reload.c: set the note; end the reload (the
 * done callback, then a reload asked for meanwhile); start a service a
 * reload made (inited) in a slot of its own, its plugin the reload's. */
void bh__reload_note_set(bh__reload_note_t *n, const char *text);
void bh__reload_finish(bh__host_t *h, bool ok, const char *note);
void bh__reload_launch(bh__host_t *h, bh__service_t *s);
/* Close p, loaded at start-up (in h->plugins) or by a reload (then freed
 * too). False: it stayed mapped (loader.h). */
bool bh__reload_close_plugin(bh__host_t *h, bh__loaded_t *p);
/* The generation is stopping: a reload under way no longer holds it up
 * (what is left of it is settled when the generation is freed). */
void bh__reload_unhold(bh__host_t *h);

#endif
