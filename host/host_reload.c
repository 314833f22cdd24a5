/* host_reload.c -- new plugin versions into a running generation: check
 * everything and init every new version first, then swap each changed
 * service in place (service_swap.h), stop the removed ones and those whose
 * section changed, and start the new ones (host_reload_run.c). */
#include "host_reload.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "descriptor.h"
#include "host_impl.h"
#include "keyspec.h"
#include "log.h"
#include "service_swap.h"

bh__reload_note_t *bh__host_reload_note(bh__host_t *h) { return &h->reload.note; }

void bh__host_watch(bh__host_t *h, void (*added)(void *ud, bh__notify_svc_t *svc),
                    void (*removed)(void *ud, bh__notify_svc_t *svc), void *ud)
{
    h->reload.watch.added = added;
    h->reload.watch.removed = removed;
    h->reload.watch.ud = ud;
}

/* -- the plan: everything checked and inited before anything changes ---- */

typedef struct plan {
    bh__config_t cfg;
    bool loaded, swapped;  /* cfg read; its sections are the host's now */
    size_t n;              /* the host's slots */
    bh__loaded_t **next;   /* per slot: its new version, or a new copy to restart */
    void **state;          /* what the new version's init made (in place) */
    bool *inited;          /* that init ran */
    bool *gone;            /* per slot: removed from plugins_dir */
    bool *restart;         /* per slot: drained, then started anew */
    bh__service_t **fresh; /* per slot: the service that replaces it (a restart) */
    bh__loaded_t **new_p;  /* plugins not running yet */
    bh__service_t **added; /* their services, made and inited */
    size_t n_new;
    char err[BH__RELOAD_NOTE_MAX - 32];
} plan_t;

static int fail(plan_t *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, sizeof p->err, fmt, ap);
    va_end(ap);
    return -1;
}

/* What the plan made and did not hand over, undone (a service's fini runs
 * with its free). */
static void plan_free(bh__host_t *h, plan_t *p)
{
    for (size_t i = 0; i < p->n; i++) {
        if (p->fresh && p->fresh[i]) bh__service_free(p->fresh[i]);
        else if (p->inited && p->inited[i])
            bh__service_fini_version(h->svcs[i], p->next[i], p->state[i]);
        if (p->next && p->next[i]) bh__reload_close_plugin(h, p->next[i]);
    }
    for (size_t k = 0; k < p->n_new; k++) {
        if (p->added[k]) bh__service_free(p->added[k]);
        bh__reload_close_plugin(h, p->new_p[k]);
    }
    if (p->swapped) { /* the host keeps the sections it had */
        bh__section_t *t = h->cfg.sections;
        h->cfg.sections = p->cfg.sections;
        p->cfg.sections = t;
    }
    free(p->next);
    free(p->state);
    free(p->inited);
    free(p->gone);
    free(p->restart);
    free(p->fresh);
    free(p->new_p);
    free(p->added);
    if (p->loaded) bh__config_free(&p->cfg);
}

static long by_name(const bh__host_t *h, const char *name)
{
    for (size_t i = 0; i < h->n_svcs; i++)
        if (h->svcs[i] && !strcmp(bh__service_plugin(h->svcs[i])->desc->name, name)) return (long)i;
    return -1;
}

/* A plugin that is not running yet: its name is new. */
static int take_new(bh__host_t *h, plan_t *p, bh__loaded_t *nv)
{
    for (size_t k = 0; k < p->n_new; k++)
        if (!strcmp(p->new_p[k]->desc->name, nv->desc->name) ||
            !strcmp(p->new_p[k]->desc->service, nv->desc->service)) {
            fail(p, "%s: plugin '%s' (service '%s') clashes with %s: expected each plugin once",
                 nv->path, nv->desc->name, nv->desc->service, p->new_p[k]->path);
            bh__reload_close_plugin(h, nv);
            return -1;
        }
    bh__loaded_t **v = realloc(p->new_p, (p->n_new + 1) * sizeof *v);
    bh__service_t **s = v ? realloc(p->added, (p->n_new + 1) * sizeof *s) : NULL;
    if (v) p->new_p = v;
    if (s) p->added = s;
    if (!s) {
        bh__reload_close_plugin(h, nv);
        return fail(p, "out of memory");
    }
    p->new_p[p->n_new] = nv;
    p->added[p->n_new++] = NULL;
    return 0;
}

/* One "*.so" of the folder: unchanged, a new version of a running plugin,
 * or a new plugin. */
static int take_file(bh__host_t *h, plan_t *p, const char *path, bool *seen)
{
    char err[512];
    for (size_t i = 0; i < p->n; i++) {
        const bh__loaded_t *cur = h->svcs[i] ? bh__service_plugin(h->svcs[i]) : NULL;
        uint64_t hash, size;
        if (!cur || strcmp(cur->path, path)) continue;
        if (bh__loader_identify(path, &hash, &size, err, sizeof err)) return fail(p, "%s", err);
        if (hash == cur->hash && size == cur->size) return seen[i] = true, 0;
    }
    bh__loaded_t *nv = calloc(1, sizeof *nv);
    if (!nv) return fail(p, "out of memory");
    if (bh__loader_open(path, nv, err, sizeof err)) {
        free(nv);
        return fail(p, "%s", err);
    }
    long at = by_name(h, nv->desc->name);
    if (at < 0) return take_new(h, p, nv);
    if (p->next[at]) {
        fail(p, "%s: plugin '%s' is also in %s: expected each plugin once", path, nv->desc->name,
             p->next[at]->path);
        bh__reload_close_plugin(h, nv);
        return -1;
    }
    p->next[at] = nv;
    seen[at] = true;
    return 0;
}

/* Load the new config and every new or changed file. */
static int plan_load(bh__host_t *h, plan_t *p)
{
    char **names = NULL;
    size_t n = 0;
    int rc = 0;
    const bh__keyspec_t *what;
    bool *seen = calloc(p->n ? p->n : 1, sizeof *seen);
    if (!seen) return fail(p, "out of memory");
    if (bh__config_load(h->cfg.path, &p->cfg, p->err, sizeof p->err)) rc = -1;
    else if ((p->loaded = true, what = bh__config_host_diff(&h->cfg, &p->cfg)))
        rc = fail(p, "%s: [%s] %s changed: that takes a restart", h->cfg.path, what->section,
                  what->key);
    else if (bh__loader_list(p->cfg.plugins_dir,
                             p->cfg.plugin_trust_relaxed ? BH__TRUST_RELAXED : BH__TRUST_STRICT,
                             &names, &n, p->err, sizeof p->err))
        rc = -1;
    for (size_t i = 0; !rc && i < n; i++) rc = take_file(h, p, names[i], seen);
    for (size_t i = 0; !rc && i < p->n; i++) p->gone[i] = h->svcs[i] && !seen[i];
    bh__loader_free_list(names, n);
    free(seen);
    return rc;
}

/* The plugin slot i runs on after the reload (NULL: none). */
static const bh__loaded_t *after(const bh__host_t *h, const plan_t *p, size_t i)
{
    if (!h->svcs[i] || p->gone[i]) return NULL;
    return p->next[i] ? p->next[i] : bh__service_plugin(h->svcs[i]);
}

/* Every section names a plugin that runs after the reload; a service whose
 * section or shape changed is restarted, from a copy of its own. */
static int plan_check(bh__host_t *h, plan_t *p)
{
    const char **names = calloc(p->n + p->n_new + 1, sizeof *names);
    size_t n = 0;
    if (!names) return fail(p, "out of memory");
    for (size_t i = 0; i < p->n; i++)
        if (after(h, p, i)) names[n++] = after(h, p, i)->desc->name;
    for (size_t k = 0; k < p->n_new; k++) names[n++] = p->new_p[k]->desc->name;
    int rc = bh__config_check_sections(&p->cfg, names, n, p->err, sizeof p->err);
    free(names);
    for (size_t i = 0; !rc && i < p->n; i++) {
        const bh__loaded_t *a = after(h, p, i);
        bh__svc_conf_t sc;
        if (!a) continue;
        const char *why =
            bh__descriptor_shape_change(bh__service_plugin(h->svcs[i])->desc, a->desc);
        if (bh__config_service(&p->cfg, a->desc->name, a->desc->service, a->desc->config, &sc,
                               p->err, sizeof p->err))
            return -1;
        bool restart = why || !bh__svc_conf_equal(&sc, bh__service_conf(h->svcs[i]));
        bh__svc_conf_free(&sc);
        if (!restart) continue;
        p->restart[i] = true;
        if (p->next[i]) continue;
        char err[512];
        bh__loaded_t *copy = calloc(1, sizeof *copy);
        if (!copy) return fail(p, "out of memory");
        if (bh__loader_open(a->path, copy, err, sizeof err)) {
            free(copy);
            return fail(p, "%s", err);
        }
        p->next[i] = copy;
    }
    return rc;
}

/* A service of p's for plugin v: made and inited, its name unique among
 * those that run after the reload. */
static int make(bh__host_t *h, plan_t *p, bh__loaded_t *v, bh__service_t **out)
{
    if (bh__service_new(out, &h->cfg, v, p->err, sizeof p->err)) return -1;
    const char *name = bh__service_name(*out), *other = NULL;
    for (size_t i = 0; i < p->n && !other; i++) {
        const bh__service_t *s = after(h, p, i) && !p->restart[i] ? h->svcs[i] : p->fresh[i];
        if (s && s != *out && !strcmp(bh__service_name(s), name))
            other = bh__service_plugin(s)->desc->name;
    }
    for (size_t k = 0; k < p->n_new && !other; k++)
        if (p->added[k] && p->added[k] != *out && !strcmp(bh__service_name(p->added[k]), name))
            other = p->new_p[k]->desc->name;
    if (other)
        return fail(p, "%s: plugin '%s' would run as service '%s', as plugin '%s' does", v->path,
                    v->desc->name, name, other);
    return bh__service_init(*out, p->err, sizeof p->err);
}

/* The new versions' init, while the old ones serve; the new services made
 * with the new sections. */
static int plan_init(bh__host_t *h, plan_t *p)
{
    bh__section_t *t = h->cfg.sections;
    h->cfg.sections = p->cfg.sections; /* read on the main thread only */
    p->cfg.sections = t;
    p->swapped = true;
    for (size_t i = 0; i < p->n; i++) {
        if (p->restart[i]) {
            if (make(h, p, p->next[i], &p->fresh[i])) return -1;
            continue;
        }
        if (!p->next[i]) continue;
        if (bh__service_prepare(h->svcs[i], p->next[i], &p->state[i], p->err, sizeof p->err))
            return -1;
        p->inited[i] = true;
    }
    for (size_t k = 0; k < p->n_new; k++)
        if (make(h, p, p->new_p[k], &p->added[k])) return -1;
    return 0;
}

/* Hand everything over: the swaps begin, the services to stop are asked
 * to, the new ones start. */
static void plan_commit(bh__host_t *h, plan_t *p)
{
    bh__reload_t *r = &h->reload;
    for (size_t i = 0; i < p->n; i++) {
        bh__service_t *s = h->svcs[i];
        if (p->restart[i] || p->gone[i]) {
            if (!r->held) bh__host_hold(h); /* a restart of the only service is no end */
            r->held = true;
            bh__log(NULL, BH_NOTICE, NULL, "service '%s' %s: draining it", bh__service_name(s),
                    p->gone[i] ? "is removed (its plugin left plugins_dir)"
                               : "restarts (its section, routes, timers or config keys changed)");
            r->slot[i].fresh = p->fresh[i];
            r->slot[i].stopping = true;
            r->pending++;
            bh__service_stop(s);
            p->fresh[i] = NULL;
            p->next[i] = NULL; /* the fresh service's */
            continue;
        }
        if (!p->next[i]) continue;
        const bh__loaded_t *cur = bh__service_plugin(s);
        bh__log(NULL, BH_NOTICE, NULL, "%s: plugin %s %s takes over from %s", p->next[i]->path,
                p->next[i]->desc->name, p->next[i]->desc->version, cur->desc->version);
        r->slot[i].next = p->next[i];
        r->pending++;
        bh__service_swap(s, p->next[i], p->state[i], &r->notify);
        p->next[i] = NULL; /* the swap's now */
        p->inited[i] = false;
    }
    for (size_t k = 0; k < p->n_new; k++) {
        bh__reload_launch(h, p->added[k]); /* the plugin goes with the service */
        p->added[k] = NULL;
    }
    p->n_new = 0;
}

void bh__host_reload(bh__host_t *h, bh__reload_done_fn done, void *ud)
{
    bh__reload_t *r = &h->reload;
    char note[BH__RELOAD_NOTE_MAX];
    plan_t p = {.n = h->n_svcs};
    r->done = done;
    r->done_ud = ud;
    if (atomic_load(&h->draining)) {
        bh__log(NULL, BH_WARNING, NULL, "reload refused: the host is stopping");
        return;
    }
    if (!atomic_load(&r->notify_ready)) {
        bh__log(NULL, BH_WARNING, NULL, "reload refused: the host has not started yet");
        return;
    }
    if (r->busy) {
        bh__log(NULL, BH_NOTICE, NULL, "reload asked for while one runs: it follows that one");
        r->again = true;
        return;
    }
    bh__log(NULL, BH_NOTICE, NULL, "reloading %s", h->cfg.path);
    size_t n = p.n ? p.n : 1;
    p.next = calloc(n, sizeof *p.next);
    p.state = calloc(n, sizeof *p.state);
    p.inited = calloc(n, sizeof *p.inited);
    p.gone = calloc(n, sizeof *p.gone);
    p.restart = calloc(n, sizeof *p.restart);
    p.fresh = calloc(n, sizeof *p.fresh);
    int rc = !p.next || !p.state || !p.inited || !p.gone || !p.restart || !p.fresh
                 ? fail(&p, "out of memory")
                 : 0;
    if (!rc) rc = plan_load(h, &p);
    if (!rc) rc = plan_check(h, &p);
    if (!rc) rc = plan_init(h, &p);
    if (rc) {
        bh__log(NULL, BH_ERROR, NULL, "reload failed: %s; the running versions serve on", p.err);
        snprintf(note, sizeof note, "reload failed: %s", p.err);
        plan_free(h, &p);
        bh__reload_note_set(&r->note, note);
        if (done) done(ud, false, note);
        return;
    }
    bh__log_set_stderr_level(p.cfg.log_level);
    r->busy = true;
    r->ok = true;
    p.swapped = false; /* the host keeps the new sections */
    bool started = p.n_new > 0;
    plan_commit(h, &p);
    plan_free(h, &p);
    if (!r->pending) {
        bh__log(NULL, BH_NOTICE, NULL, "reload complete%s",
                !r->ok     ? ", but a new service could not start (see above)"
                : !started ? ": no plugin changed"
                           : "");
        bh__reload_finish(h, r->ok, r->ok ? "" : "reload failed: a new service could not start");
    }
}
