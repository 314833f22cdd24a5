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

#endif
