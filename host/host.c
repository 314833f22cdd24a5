/* host.c -- one generation: config, plugins and services, from set-up to
 * teardown. Everything lives in the bh__host_t; nothing is static. */
#include "host.h"
#include "host_impl.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "otlp.h"
#include "value.h"

static int setup(bh__host_t *h, const char *path, char *err, size_t errlen)
{
    if (bh__config_load(path, &h->cfg, err, errlen)) return BH__EXIT_CONFIG;
    bh__log_set_stderr_level(h->cfg.log_level);
    /* Per process, as the log level: the decoders have no service at hand. */
    bh__value_limits_t lim = {(size_t)h->cfg.max_depth, (size_t)h->cfg.max_map_entries,
                              (size_t)h->cfg.max_nodes};
    if (bh__value_set_limits(&lim, err, errlen)) return BH__EXIT_CONFIG;
    bh__trust_warn_root();
    /* Before the services, which hand their spans to it; its thread starts
     * with them (bh__host_start), so that --check starts none. */
    if (h->cfg.otlp_endpoint && !(h->cfg.otlp = bh__otlp_new(h->cfg.otlp_endpoint, err, errlen)))
        return BH__EXIT_RUNTIME;
    bh__otlp_set_sampling(h->cfg.otlp, h->cfg.otlp_sample_percent);
    bh__trust_mode_t trust = h->cfg.plugin_trust_relaxed ? BH__TRUST_RELAXED : BH__TRUST_STRICT;
    if (bh__loader_open_dir(h->cfg.plugins_dir, trust, &h->plugins, &h->n_plugins, err, errlen))
        return BH__EXIT_CONFIG;
    if (bh__reload_init(h)) return snprintf(err, errlen, "out of memory"), BH__EXIT_RUNTIME;
    const char **names = calloc(h->n_plugins, sizeof *names);
    h->svcs = calloc(h->n_plugins, sizeof *h->svcs);
    if (!names || !h->svcs) {
        free(names);
        snprintf(err, errlen, "out of memory");
        return BH__EXIT_RUNTIME;
    }
    for (size_t i = 0; i < h->n_plugins; i++) names[i] = h->plugins[i].desc->name;
    int rc = bh__config_check_sections(&h->cfg, names, h->n_plugins, err, errlen);
    free(names);
    if (rc) return BH__EXIT_CONFIG;
    for (size_t i = 0; i < h->n_plugins; i++) {
        if (bh__service_new(&h->svcs[i], &h->cfg, &h->plugins[i], err, errlen))
            return BH__EXIT_CONFIG;
        h->n_svcs++;
        /* Two plugins on one service would share queues and dead-letter each
         * other's messages as "no handler". */
        for (size_t j = 0; j < i; j++)
            if (!strcmp(bh__service_name(h->svcs[i]), bh__service_name(h->svcs[j]))) {
                snprintf(err, errlen,
                         "%s: plugins '%s' (%s) and '%s' (%s) both run as service "
                         "'%s': give one of them another `service =` in its section",
                         path, h->plugins[j].desc->name, h->plugins[j].path,
                         h->plugins[i].desc->name, h->plugins[i].path,
                         bh__service_name(h->svcs[i]));
                return BH__EXIT_CONFIG;
            }
    }
    for (size_t i = 0; i < h->n_svcs; i++)
        if (bh__service_init(h->svcs[i], err, errlen)) return BH__EXIT_CONFIG;
    return 0;
}

int bh__host_new(bh__host_t **out, const char *config_path, char *err, size_t errlen)
{
    bh__host_t *h = calloc(1, sizeof *h);
    *out = NULL;
    if (!h) return snprintf(err, errlen, "out of memory"), BH__EXIT_RUNTIME;
    atomic_init(&h->draining, false);
    atomic_init(&h->running, 0);
    int rc = setup(h, config_path, err, errlen);
    if (rc) {
        bh__host_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

size_t bh__host_count(const bh__host_t *h) { return h->n_svcs; }

const bh__loaded_t *bh__host_plugin(const bh__host_t *h, size_t i)
{
    return bh__service_plugin(h->svcs[i]);
}

const bh__service_t *bh__host_service(const bh__host_t *h, size_t i) { return h->svcs[i]; }

bh__notify_svc_t *bh__host_notify(bh__host_t *h, size_t i)
{
    return bh__service_notify(h->svcs[i]);
}

const bh__config_t *bh__host_config(const bh__host_t *h) { return &h->cfg; }

static void on_closed(uv_handle_t *handle)
{
    bh__host_t *h = handle->data;
    h->on_stopped(h->ud); /* last: it may free h */
}

static void close_exited(void *ud)
{
    bh__host_t *h = ud;
    uv_close((uv_handle_t *)&h->exited, on_closed);
}

/* The reload watch closes first, then `exited`, whose close ends it all. */
static void on_exited(uv_async_t *a) { bh__reload_close(a->data, close_exited); }

static void release(bh__host_t *h)
{
    if (atomic_fetch_sub(&h->running, 1) == 1) uv_async_send(&h->exited);
}

/* A service's I/O thread is about to end (runs on it). A reload that
 * removes it waits for that; the watch is open until every service ended,
 * and this comes before the last release. */
static void service_exited(void *ud)
{
    bh__host_t *h = ud;
    if (atomic_load(&h->reload.notify_ready)) uv_async_send(&h->reload.notify);
    release(h);
}

void bh__host_hold(bh__host_t *h) { atomic_fetch_add(&h->running, 1); }

void bh__host_release(bh__host_t *h) { release(h); }

int bh__host_start_one(bh__host_t *h, bh__service_t *s, char *err, size_t errlen)
{
    atomic_fetch_add(&h->running, 1);
    int rc = bh__service_start(s, service_exited, h, err, errlen);
    if (rc) atomic_fetch_sub(&h->running, 1);
    return rc;
}

void bh__host_drain(bh__host_t *h)
{
    atomic_store(&h->draining, true);
    for (size_t i = 0; i < h->n_svcs; i++)
        if (h->svcs[i]) bh__service_stop(h->svcs[i]);
    bh__reload_unhold(h);
}

int bh__host_start(bh__host_t *h, uv_loop_t *loop, void (*on_stopped)(void *ud), void *ud,
                   char *err, size_t errlen)
{
    if (h->started) return snprintf(err, errlen, "the host was started already"), BH_ESTATE;
    h->started = true;
    h->on_stopped = on_stopped;
    h->ud = ud;
    int uerr = uv_async_init(loop, &h->exited, on_exited);
    if (uerr) {
        snprintf(err, errlen, "cannot watch the services' threads: %s", uv_strerror(uerr));
        /* Nothing starts; on_stopped still comes from loop, as promised. */
        uv_timer_init(loop, &h->none);
        h->none.data = h;
        uv_close((uv_handle_t *)&h->none, on_closed);
        return BH_ENOMEM;
    }
    h->exited.data = h;
    if ((uerr = bh__reload_start(h, loop))) {
        /* Serving goes on without it: a reload is then refused, and says so. */
        bh__log(NULL, BH_ERROR, NULL, "cannot watch reloads: %s", uv_strerror(uerr));
    }
    atomic_store(&h->running, 1);
    int rc = bh__otlp_run(h->cfg.otlp, err, errlen);
    for (size_t i = 0; !rc && i < h->n_svcs && !atomic_load(&h->draining); i++) {
        if ((rc = bh__host_start_one(h, h->svcs[i], err, errlen))) {
            /* Stop what started; on_stopped then waits for them. */
            for (size_t j = 0; j < i; j++) bh__service_stop(h->svcs[j]);
            break;
        }
        h->n_started++;
        /* A drain that came while this one was starting may have missed it. */
        if (atomic_load(&h->draining)) bh__service_stop(h->svcs[i]);
    }
    release(h);
    return rc;
}

bool bh__host_join(bh__host_t *h)
{
    bool clean = true;
    /* A service not started joins at once (a reload may have added some). */
    for (size_t i = 0; i < h->n_svcs; i++)
        if (h->svcs[i]) clean &= bh__service_join(h->svcs[i]);
    h->joined = true;
    return clean;
}

void bh__host_free(bh__host_t *h)
{
    if (!h) return;
    if (!h->joined) bh__host_join(h);
    bool unload = true;
    bh__reload_settle(h);
    for (size_t i = 0; i < h->n_svcs; i++) unload &= bh__service_free(h->svcs[i]);
    free(h->svcs);
    /* A handler stuck past the deadline still runs plugin code: keep it mapped. */
    bh__reload_free(h, unload);
    if (unload) bh__loader_close_all(h->plugins, h->n_plugins);
    bh__otlp_stop(h->cfg.otlp); /* after the services: their last spans go too */
    bh__config_free(&h->cfg);
    free(h);
}
