/* host_reload.c -- new plugin versions into a running generation: check
 * everything first, then swap each changed service in place (service_service_swap.h). */
#include "host_reload.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "descriptor.h"
#include "host_impl.h"
#include "log.h"
#include "service_swap.h"

static void note_set(bh__reload_note_t *n, const char *text)
{
    uv_mutex_lock(&n->mu);
    snprintf(n->text, sizeof n->text, "%s", text);
    uv_mutex_unlock(&n->mu);
}

bh__reload_note_t *bh__host_reload_note(bh__host_t *h) { return &h->reload.note; }

/* -- what may change in place ------------------------------------------- */

static bool same_str(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

/* The first [broker] or [host] key that differs, or NULL. log_level is
 * taken at once, so it is not among them. */
static const char *host_change(const bh__config_t *a, const bh__config_t *b)
{
    bool urls = a->n_urls == b->n_urls;
    for (size_t i = 0; urls && i < a->n_urls; i++) urls = !strcmp(a->urls[i], b->urls[i]);
    const bh__broker_tls_t *x = &a->tls, *y = &b->tls;
    if (!urls) return "[broker] url";
    if (a->heartbeat != b->heartbeat) return "[broker] heartbeat";
    if (!same_str(x->ca, y->ca) || !same_str(x->cert, y->cert) || !same_str(x->key, y->key) ||
        !same_str(x->server_name, y->server_name) || x->no_verify != y->no_verify ||
        x->external != y->external)
        return "[broker] tls_*";
    if (!same_str(a->plugins_dir, b->plugins_dir)) return "[host] plugins_dir";
    if (a->healthcheck_interval != b->healthcheck_interval) return "[host] healthcheck_interval";
    if (a->shutdown_timeout != b->shutdown_timeout) return "[host] shutdown_timeout";
    if (a->max_message_size != b->max_message_size) return "[host] max_message_size";
    if (a->max_depth != b->max_depth || a->max_map_entries != b->max_map_entries ||
        a->max_nodes != b->max_nodes)
        return "[host] max_depth, max_map_entries or max_nodes";
    if (!same_str(a->state_dir, b->state_dir)) return "[host] state_dir";
    if (a->crash_limit != b->crash_limit) return "[host] crash_limit";
    if (a->plugin_trust_relaxed != b->plugin_trust_relaxed) return "[host] plugin_trust";
    if (!same_str(a->http_listen, b->http_listen)) return "[host] http_listen";
    if (!same_str(a->otlp_endpoint, b->otlp_endpoint)) return "[host] otlp_endpoint";
    return NULL;
}

static bool same_conf(const bh__svc_conf_t *a, const bh__svc_conf_t *b)
{
    if (strcmp(a->service, b->service) || a->workers != b->workers || a->prefetch != b->prefetch ||
        a->sched_batch != b->sched_batch || a->format != b->format || a->quorum != b->quorum ||
        a->delivery_limit != b->delivery_limit ||
        !same_str(a->dead_letter_exchange, b->dead_letter_exchange) ||
        a->n_retry_delays != b->n_retry_delays ||
        memcmp(a->retry_delays, b->retry_delays, sizeof a->retry_delays) ||
        a->handler_timeout_ms != b->handler_timeout_ms || a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->keys[i], b->keys[i]) || !same_str(a->values[i], b->values[i])) return false;
    return true;
}

/* -- the plan: everything checked and inited before any swap ------------- */

typedef struct plan {
    bh__config_t cfg;
    bool loaded;
    bh__loaded_t **next; /* per service: its new version, NULL: unchanged */
    void **state;        /* what the new version's init made */
    bool *inited;
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

static void plan_free(bh__host_t *h, plan_t *p)
{
    for (size_t i = 0; p->next && i < h->n_svcs; i++) {
        if (!p->next[i]) continue;
        if (p->inited[i]) bh__service_fini_version(h->svcs[i], p->next[i], p->state[i]);
        bh__loader_close(p->next[i]);
        free(p->next[i]);
    }
    free(p->next);
    free(p->state);
    free(p->inited);
    if (p->loaded) bh__config_free(&p->cfg);
}

static long by_name(const bh__host_t *h, const char *name)
{
    for (size_t i = 0; i < h->n_svcs; i++)
        if (!strcmp(bh__service_plugin(h->svcs[i])->desc->name, name)) return (long)i;
    return -1;
}

/* One "*.so" of the folder: unchanged, or a new version of a loaded plugin. */
static int take_file(bh__host_t *h, plan_t *p, const char *path, bool *seen)
{
    char err[512];
    for (size_t i = 0; i < h->n_svcs; i++) {
        const bh__loaded_t *cur = bh__service_plugin(h->svcs[i]);
        uint64_t hash, size;
        if (strcmp(cur->path, path)) continue;
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
    if (at < 0 || p->next[at]) {
        int rc = at < 0 ? fail(p, "%s: plugin '%s' is not running: adding a plugin takes a restart",
                               path, nv->desc->name)
                        : fail(p, "%s: plugin '%s' is also in %s: expected each plugin once", path,
                               nv->desc->name, p->next[at]->path);
        bh__loader_close(nv);
        free(nv);
        return rc;
    }
    p->next[at] = nv;
    seen[at] = true;
    return 0;
}

/* Load the new config and every new or changed file; check both. */
static int plan_load(bh__host_t *h, plan_t *p)
{
    char **names = NULL;
    size_t n = 0;
    int rc = 0;
    const char *what;
    bool *seen = calloc(h->n_svcs ? h->n_svcs : 1, sizeof *seen);
    if (!seen) return fail(p, "out of memory");
    if (bh__config_load(h->cfg.path, &p->cfg, p->err, sizeof p->err)) rc = -1;
    else if ((p->loaded = true, what = host_change(&h->cfg, &p->cfg)))
        rc = fail(p, "%s: %s changed: that takes a restart", h->cfg.path, what);
    else if (bh__loader_list(p->cfg.plugins_dir,
                             p->cfg.plugin_trust_relaxed ? BH__TRUST_RELAXED : BH__TRUST_STRICT,
                             &names, &n, p->err, sizeof p->err))
        rc = -1;
    for (size_t i = 0; !rc && i < n; i++) rc = take_file(h, p, names[i], seen);
    for (size_t i = 0; !rc && i < h->n_svcs; i++)
        if (!seen[i]) {
            const bh__loaded_t *cur = bh__service_plugin(h->svcs[i]);
            rc = fail(p, "%s: plugin '%s' is gone: removing a plugin takes a restart", cur->path,
                      cur->desc->name);
        }
    bh__loader_free_list(names, n);
    free(seen);
    return rc;
}

/* Every plugin section valid for the version that will read it, and each
 * service's unchanged: a section that changed takes a restart. */
static int plan_check(bh__host_t *h, plan_t *p)
{
    const char **names = calloc(h->n_svcs ? h->n_svcs : 1, sizeof *names);
    if (!names) return fail(p, "out of memory");
    for (size_t i = 0; i < h->n_svcs; i++) names[i] = bh__service_plugin(h->svcs[i])->desc->name;
    int rc = bh__config_check_sections(&p->cfg, names, h->n_svcs, p->err, sizeof p->err);
    free(names);
    for (size_t i = 0; !rc && i < h->n_svcs; i++) {
        const bh__loaded_t *cur = bh__service_plugin(h->svcs[i]), *nv = p->next[i];
        const bh_plugin_t *d = nv ? nv->desc : cur->desc;
        const char *why = nv ? bh__descriptor_shape_change(cur->desc, nv->desc) : NULL;
        bh__svc_conf_t sc;
        if (why) {
            rc = fail(p,
                      "%s: plugin '%s' %s changes %s: only handler code swaps in place, that "
                      "takes a restart",
                      nv->path, d->name, d->version, why);
            break;
        }
        if (bh__config_service(&p->cfg, d->name, d->service, d->config, &sc, p->err,
                               sizeof p->err)) {
            rc = -1;
            break;
        }
        if (!same_conf(&sc, bh__service_conf(h->svcs[i])))
            rc = fail(p, "%s: section [%s] changed: that takes a restart", h->cfg.path, d->name);
        bh__svc_conf_free(&sc);
    }
    return rc;
}

/* The new versions' init, while the old ones serve. */
static int plan_init(bh__host_t *h, plan_t *p)
{
    for (size_t i = 0; i < h->n_svcs; i++) {
        if (!p->next[i]) continue;
        if (bh__service_prepare(h->svcs[i], p->next[i], &p->state[i], p->err, sizeof p->err))
            return -1;
        p->inited[i] = true;
    }
    return 0;
}

static size_t plan_count(const bh__host_t *h, const plan_t *p)
{
    size_t n = 0;
    for (size_t i = 0; i < h->n_svcs; i++) n += p->next[i] != NULL;
    return n;
}

/* -- the swaps ----------------------------------------------------------- */

static void finish(bh__host_t *h, bool ok, const char *note)
{
    bh__reload_t *r = &h->reload;
    r->busy = false;
    r->reloads++;
    note_set(&r->note, note);
    if (r->done) r->done(r->done_ud, ok, note);
    if (r->again && !atomic_load(&h->draining)) {
        r->again = false;
        bh__host_reload(h, r->done, r->done_ud);
    }
}

/* The old version is gone: log how, and forget it. */
static void retired(bh__host_t *h, size_t i, const bh__loaded_t *old)
{
    char name[160];
    snprintf(name, sizeof name, "%s %s", old->desc->name, old->desc->version);
    bh__loaded_t *own = (bh__loaded_t *)old;
    bool gone = bh__loader_close(own);
    if (own != &h->plugins[i]) free(own);
    bh__log(NULL, gone ? BH_INFO : BH_NOTICE, NULL,
            gone ? "plugin %s retired and unloaded"
                 : "plugin %s retired but resident: its object stays mapped (a NODELETE object: "
                   "C++ thread_local destructors or STB_GNU_UNIQUE symbols)",
            name);
}

/* The old version of service i switched out: its fini (NULL state when
 * the new version took it). */
static void fini_old(bh__host_t *h, size_t i)
{
    const bh__loaded_t *old;
    void *state;
    bool taken;
    bh__service_swap_old(h->svcs[i], &old, &state, &taken);
    bh__service_fini_version(h->svcs[i], old, taken ? NULL : state);
}

/* The old version of service i, once switched out. */
static bh__loaded_t *old_of(bh__host_t *h, size_t i)
{
    const bh__loaded_t *old;
    void *state;
    bool taken;
    bh__service_swap_old(h->svcs[i], &old, &state, &taken);
    return (bh__loaded_t *)old;
}

/* The version that was to swap into service i never did: undo its init. */
static void drop_next(bh__host_t *h, size_t i)
{
    bh__reload_t *r = &h->reload;
    bh__service_fini_version(h->svcs[i], r->next[i], bh__service_swap_next_state(h->svcs[i]));
    bh__loader_close(r->next[i]);
    free(r->next[i]);
    r->next[i] = NULL;
    bh__service_swap_reset(h->svcs[i]);
}

/* The swap of service i ended with the new version in: it is the one the
 * service runs now. */
static void swapped_in(bh__host_t *h, size_t i)
{
    bh__reload_t *r = &h->reload;
    r->owned[i] = r->next[i];
    r->next[i] = NULL;
    bh__service_swap_reset(h->svcs[i]);
}

static void on_progress(uv_async_t *a)
{
    bh__host_t *h = a->data;
    bh__reload_t *r = &h->reload;
    for (size_t i = 0; i < h->n_svcs; i++) {
        if (!r->next[i]) continue;
        switch (bh__service_swap_phase(h->svcs[i])) {
        case BH__SWAP_SWITCHED:
            fini_old(h, i);
            bh__service_swap_retire(h->svcs[i]);
            break;
        case BH__SWAP_RETIRED:
            retired(h, i, old_of(h, i));
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
    finish(h, r->ok, r->ok ? "" : "reload failed: the host is stopping");
}

void bh__host_reload(bh__host_t *h, bh__reload_done_fn done, void *ud)
{
    bh__reload_t *r = &h->reload;
    char note[BH__RELOAD_NOTE_MAX];
    plan_t p = {0};
    r->done = done;
    r->done_ud = ud;
    if (atomic_load(&h->draining)) {
        bh__log(NULL, BH_WARNING, NULL, "reload refused: the host is stopping");
        return;
    }
    if (!r->notify_ready) {
        bh__log(NULL, BH_WARNING, NULL, "reload refused: the host has not started yet");
        return;
    }
    if (r->busy) {
        bh__log(NULL, BH_NOTICE, NULL, "reload asked for while one runs: it follows that one");
        r->again = true;
        return;
    }
    bh__log(NULL, BH_NOTICE, NULL, "reloading %s", h->cfg.path);
    size_t n = h->n_svcs ? h->n_svcs : 1;
    p.next = calloc(n, sizeof *p.next);
    p.state = calloc(n, sizeof *p.state);
    p.inited = calloc(n, sizeof *p.inited);
    int rc = !p.next || !p.state || !p.inited ? fail(&p, "out of memory") : 0;
    if (!rc) rc = plan_load(h, &p);
    if (!rc) rc = plan_check(h, &p);
    if (!rc) rc = plan_init(h, &p);
    if (rc) {
        bh__log(NULL, BH_ERROR, NULL, "reload failed: %s; the running versions serve on", p.err);
        snprintf(note, sizeof note, "reload failed: %s", p.err);
        plan_free(h, &p);
        r->reloads++;
        note_set(&r->note, note);
        if (done) done(ud, false, note);
        return;
    }
    bh__log_set_stderr_level(p.cfg.log_level);
    r->busy = true;
    r->ok = true;
    r->pending = plan_count(h, &p);
    for (size_t i = 0; i < h->n_svcs; i++) {
        if (!p.next[i]) continue;
        const bh__loaded_t *cur = bh__service_plugin(h->svcs[i]);
        bh__log(NULL, BH_NOTICE, NULL, "%s: plugin %s %s takes over from %s", p.next[i]->path,
                p.next[i]->desc->name, p.next[i]->desc->version, cur->desc->version);
        r->next[i] = p.next[i];
        bh__service_swap(h->svcs[i], p.next[i], p.state[i], &r->notify);
        p.next[i] = NULL; /* the swap has it now */
    }
    plan_free(h, &p);
    if (!r->pending) {
        bh__log(NULL, BH_NOTICE, NULL, "reload complete: no plugin changed");
        finish(h, true, "");
    }
}

/* -- set-up and teardown ------------------------------------------------- */

int bh__reload_init(bh__host_t *h)
{
    bh__reload_t *r = &h->reload;
    size_t n = h->n_plugins ? h->n_plugins : 1;
    r->owned = calloc(n, sizeof *r->owned);
    r->next = calloc(n, sizeof *r->next);
    r->old = calloc(n, sizeof *r->old);
    if (!r->owned || !r->next || !r->old || uv_mutex_init(&r->note.mu)) return BH_ENOMEM;
    r->note.ready = true;
    return 0;
}

int bh__reload_start(bh__host_t *h, uv_loop_t *loop)
{
    int rc = uv_async_init(loop, &h->reload.notify, on_progress);
    if (rc) return rc;
    h->reload.notify.data = h;
    h->reload.notify_ready = true;
    return 0;
}

static void on_notify_closed(uv_handle_t *handle)
{
    bh__host_t *h = handle->data;
    h->reload.closed(h);
}

void bh__reload_close(bh__host_t *h, void (*closed)(void *h))
{
    if (!h->reload.notify_ready) {
        closed(h);
        return;
    }
    h->reload.notify_ready = false;
    h->reload.closed = closed;
    uv_close((uv_handle_t *)&h->reload.notify, on_notify_closed);
}

void bh__reload_settle(bh__host_t *h)
{
    bh__reload_t *r = &h->reload;
    for (size_t i = 0; r->next && i < h->n_svcs; i++) {
        if (!r->next[i]) continue;
        switch (bh__service_swap_phase(h->svcs[i])) {
        case BH__SWAP_SWITCHED:
            fini_old(h, i);
            /* fall through */
        case BH__SWAP_RETIRING:
        case BH__SWAP_RETIRED:
            /* Closed after the services: a callback of it may still run. */
            r->old[i] = old_of(h, i);
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
    for (size_t i = 0; unload && r->owned && i < h->n_plugins; i++) {
        bh__loaded_t *v[2] = {r->owned[i], r->old[i]};
        for (int k = 0; k < 2; k++) {
            if (!v[k]) continue;
            bh__loader_close(v[k]);
            if (v[k] != &h->plugins[i]) free(v[k]);
        }
    }
    free(r->owned);
    free(r->next);
    free(r->old);
    if (r->note.ready) uv_mutex_destroy(&r->note.mu);
    memset(r, 0, sizeof *r);
}
