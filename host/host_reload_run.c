/* host_reload_run.c -- a reload under way: each swap moved on as its
 * service's I/O thread reports, old versions retired, removed services
 * drained and freed, new ones started (host_reload.h). Main thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_impl.h"
#include "host_reload.h"
#include "log.h"
#include "service_swap.h"

void bh__reload_note_set(bh__reload_note_t *n, const char *text)
{
    uv_mutex_lock(&n->mu);
    snprintf(n->text, sizeof n->text, "%s", text);
    uv_mutex_unlock(&n->mu);
}

/* -- the swaps ----------------------------------------------------------- */

void bh__reload_unhold(bh__host_t *h)
{
    if (!h->reload.held) return;
    h->reload.held = false;
    bh__host_release(h); /* the generation may end once this returns */
}

void bh__reload_finish(bh__host_t *h, bool ok, const char *note)
{
    bh__reload_t *r = &h->reload;
    r->busy = false;
    bh__reload_unhold(h);
    bh__reload_note_set(&r->note, note);
    if (r->done) r->done(r->done_ud, ok, note);
    if (r->again && !atomic_load(&h->draining)) {
        r->again = false;
        bh__host_reload(h, r->done, r->done_ud);
    }
}

bool bh__reload_close_plugin(bh__host_t *h, bh__loaded_t *p)
{
    bool in_place = p >= h->plugins && p < h->plugins + h->n_plugins;
    bool gone = bh__loader_close(p);
    if (!in_place) free(p);
    return gone;
}

/* The old version is gone: log how, and forget it. */
static void retired(bh__host_t *h, const bh__loaded_t *old)
{
    char name[160];
    snprintf(name, sizeof name, "%s %s", old->desc->name, old->desc->version);
    bool gone = bh__reload_close_plugin(h, (bh__loaded_t *)old);
    bh__log(NULL, gone ? BH_INFO : BH_NOTICE, NULL,
            gone ? "plugin %s retired and unloaded"
                 : "plugin %s retired but resident: its object stays mapped (a NODELETE object: "
                   "C++ thread_local destructors or STB_GNU_UNIQUE symbols)",
            name);
}

/* The old version of service i switched out: its fini. */
static void fini_old(bh__host_t *h, size_t i)
{
    void *state;
    const bh__loaded_t *old = bh__service_swap_old(h->svcs[i], &state);
    bh__service_fini_version(h->svcs[i], old, state);
}

/* The version that was to swap into service i never did: undo its init. */
static void drop_next(bh__host_t *h, size_t i)
{
    bh__reload_t *r = &h->reload;
    bh__service_fini_version(h->svcs[i], r->slot[i].next, bh__service_swap_next_state(h->svcs[i]));
    bh__reload_close_plugin(h, r->slot[i].next);
    r->slot[i].next = NULL;
    bh__service_swap_reset(h->svcs[i]);
}

/* The swap of service i ended with the new version in: it is the one the
 * service runs now. */
static void swapped_in(bh__host_t *h, size_t i)
{
    bh__reload_t *r = &h->reload;
    r->slot[i].owned = r->slot[i].next;
    r->slot[i].next = NULL;
    bh__service_swap_reset(h->svcs[i]);
}

/* One more slot for service s, which runs p (the reload's to close). Its
 * index, or -1 out of memory. */
static long add_slot(bh__host_t *h, bh__service_t *s, bh__loaded_t *p)
{
    bh__reload_t *r = &h->reload;
    size_t n = h->n_svcs + 1;
    bh__service_t **svcs = realloc(h->svcs, n * sizeof *svcs);
    if (svcs) h->svcs = svcs;
    bh__reload_slot_t *slot = svcs ? realloc(r->slot, n * sizeof *slot) : NULL;
    if (!slot) return -1;
    r->slot = slot;
    h->svcs[n - 1] = s;
    r->slot[n - 1] = (bh__reload_slot_t){.owned = p};
    h->n_svcs = n;
    return (long)(n - 1);
}

void bh__reload_launch(bh__host_t *h, bh__service_t *s)
{
    char err[512];
    bh__loaded_t *p = (bh__loaded_t *)bh__service_plugin(s);
    long i = atomic_load(&h->draining) ? -1 : add_slot(h, s, p);
    int rc = i < 0 ? -1 : bh__host_start_one(h, s, err, sizeof err);
    if (rc) {
        bh__log(NULL, BH_ERROR, NULL, "cannot start service '%s' of plugin %s %s: %s",
                bh__service_name(s), p->desc->name, p->desc->version,
                i < 0 ? "the host is stopping" : err);
        if (i >= 0) h->svcs[i] = NULL, h->reload.slot[i].owned = NULL;
        bh__service_free(s);
        bh__reload_close_plugin(h, p);
        h->reload.ok = false;
        return;
    }
    if (h->reload.watch.added) h->reload.watch.added(h->reload.watch.ud, bh__service_notify(s));
    bh__log(NULL, BH_NOTICE, NULL, "service '%s' started from plugin %s %s (%s)",
            bh__service_name(s), p->desc->name, p->desc->version, p->path);
}

/* A service a reload stopped has ended: free it, then start what replaces
 * it, if anything does. */
static void removed(bh__host_t *h, size_t i)
{
    bh__reload_t *r = &h->reload;
    bh__service_t *s = h->svcs[i], *fresh = r->slot[i].fresh;
    bh__loaded_t *p = (bh__loaded_t *)bh__service_plugin(s);
    char name[128];
    snprintf(name, sizeof name, "%s", bh__service_name(s));
    bool clean = bh__service_join(s);
    if (r->watch.removed) r->watch.removed(r->watch.ud, bh__service_notify(s));
    bool unload = bh__service_free(s); /* its fini */
    h->svcs[i] = NULL;
    r->slot[i].stopping = false;
    r->slot[i].fresh = NULL;
    r->slot[i].owned = NULL;
    if (unload) bh__reload_close_plugin(h, p); /* else a handler still runs its code: it stays */
    bh__log(NULL, clean ? BH_NOTICE : BH_WARNING, NULL, "service '%s' stopped%s", name,
            clean ? "" : " (not cleanly: see above)");
    r->pending--;
    if (fresh) bh__reload_launch(h, fresh);
}

static void on_progress(uv_async_t *a)
{
    bh__host_t *h = a->data;
    bh__reload_t *r = &h->reload;
    for (size_t i = 0; i < h->n_svcs; i++)
        if (r->slot[i].stopping && bh__service_exited(h->svcs[i])) removed(h, i);
    for (size_t i = 0; i < h->n_svcs; i++) {
        if (!r->slot[i].next) continue;
        switch (bh__service_swap_phase(h->svcs[i])) {
        case BH__SWAP_SWITCHED:
            fini_old(h, i);
            bh__service_swap_retire(h->svcs[i]);
            break;
        case BH__SWAP_RETIRED:
            retired(h, (bh__loaded_t *)bh__service_swap_old(h->svcs[i], NULL));
            swapped_in(h, i);
            r->pending--;
            break;
        case BH__SWAP_CANCELLED:
            drop_next(h, i);
            r->pending--;
            r->ok = false;
            break;
        default:
            break;
        }
    }
    if (!r->busy || r->pending) return;
    bh__log(NULL, r->ok ? BH_NOTICE : BH_WARNING, NULL,
            r->ok ? "reload complete" : "reload cut short: the host is stopping");
    bh__reload_finish(h, r->ok, r->ok ? "" : "reload failed: the host is stopping");
}

/* -- set-up and teardown ------------------------------------------------- */

int bh__reload_init(bh__host_t *h)
{
    bh__reload_t *r = &h->reload;
    size_t n = h->n_plugins ? h->n_plugins : 1;
    r->slot = calloc(n, sizeof *r->slot);
    if (!r->slot || uv_mutex_init(&r->note.mu)) return BH_ENOMEM;
    r->note.ready = true;
    return 0;
}

int bh__reload_start(bh__host_t *h, uv_loop_t *loop)
{
    int rc = uv_async_init(loop, &h->reload.notify, on_progress);
    if (rc) return rc;
    h->reload.notify.data = h;
    atomic_store(&h->reload.notify_ready, true);
    return 0;
}

static void on_notify_closed(uv_handle_t *handle)
{
    bh__host_t *h = handle->data;
    h->reload.closed(h);
}

void bh__reload_close(bh__host_t *h, void (*closed)(void *h))
{
    if (!atomic_load(&h->reload.notify_ready)) {
        closed(h);
        return;
    }
    atomic_store(&h->reload.notify_ready, false);
    h->reload.closed = closed;
    uv_close((uv_handle_t *)&h->reload.notify, on_notify_closed);
}

void bh__reload_settle(bh__host_t *h)
{
    bh__reload_t *r = &h->reload;
    for (size_t i = 0; r->slot && i < h->n_svcs; i++) {
        if (!r->slot[i].fresh) continue; /* made to replace a service, never started */
        bh__loaded_t *p = (bh__loaded_t *)bh__service_plugin(r->slot[i].fresh);
        bh__service_free(r->slot[i].fresh);
        bh__reload_close_plugin(h, p);
        r->slot[i].fresh = NULL;
    }
    for (size_t i = 0; r->slot && i < h->n_svcs; i++) {
        if (!r->slot[i].next) continue;
        switch (bh__service_swap_phase(h->svcs[i])) {
        case BH__SWAP_SWITCHED:
            fini_old(h, i);
            /* fall through */
        case BH__SWAP_RETIRING:
        case BH__SWAP_RETIRED:
            /* Closed after the services: a callback of it may still run. */
            r->slot[i].old = (bh__loaded_t *)bh__service_swap_old(h->svcs[i], NULL);
            swapped_in(h, i);
            break;
        default: /* never switched */
            drop_next(h, i);
            break;
        }
    }
}

void bh__reload_free(bh__host_t *h, bool unload)
{
    bh__reload_t *r = &h->reload;
    for (size_t i = 0; unload && r->slot && i < h->n_svcs; i++) {
        bh__loaded_t *v[2] = {r->slot[i].owned, r->slot[i].old};
        for (int k = 0; k < 2; k++)
            if (v[k]) bh__reload_close_plugin(h, v[k]);
    }
    free(r->slot);
    if (r->note.ready) uv_mutex_destroy(&r->note.mu);
    memset(r, 0, sizeof *r);
}
