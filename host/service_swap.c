/* service_swap.c -- a new version of the plugin taking over a running service. */
#include "service_swap.h"

#include <dlfcn.h>
#include <string.h>

#include "contract.h"
#include "crash.h"
#include "dispatch.h"
#include "service_impl.h"

/* The ctx of init and upgrade: no message, the section readable, the
 * service's publisher. */
static void plugin_ctx(bh__service_t *s, bh__ctx_t *ctx)
{
    bh__ctx_init(ctx, s->conf.service, s->conf.format, s->log, NULL, &s->conf);
    ctx->publisher = &s->orig.pub;
}

int bh__service_prepare(bh__service_t *s, const bh__loaded_t *p, void **state, char *err,
                        size_t errlen)
{
    bh__ctx_t ctx;
    plugin_ctx(s, &ctx);
    return bh__loader_init(p, &ctx.pub, state, err, errlen);
}

void bh__service_fini_version(bh__service_t *s, const bh__loaded_t *p, void *state)
{
    /* fini gets a ctx bound to no message, as the plugin's threads have. */
    bh__loader_fini(p, &s->orig.values.pub, state);
}

const bh__loaded_t *bh__service_plugin(const bh__service_t *s) { return s->plugin; }

const bh__svc_conf_t *bh__service_conf(const bh__service_t *s) { return &s->conf; }

bool bh__service_exited(const bh__service_t *s) { return atomic_load(&s->exited); }

const bh__loaded_t *bh__service_swap_old(bh__service_t *s, void **fini_state)
{
    if (fini_state) *fini_state = s->swap.taken ? NULL : s->swap.old_state;
    return s->swap.old;
}

void *bh__service_swap_next_state(bh__service_t *s) { return s->swap.next_state; }

void bh__service_swap(bh__service_t *s, const bh__loaded_t *p, void *state, uv_async_t *notify)
{
    s->swap.next = p;
    s->swap.next_state = state;
    s->swap.old = NULL;
    s->swap.old_state = NULL;
    s->swap.taken = false;
    s->swap.notify = notify;
    atomic_store_explicit(&s->swap.phase, BH__SWAP_ASKED, memory_order_release);
    bh__cq_kick(&s->cq);
}

bh__swap_phase_t bh__service_swap_phase(bh__service_t *s)
{
    return (bh__swap_phase_t)atomic_load_explicit(&s->swap.phase, memory_order_acquire);
}

void bh__service_swap_retire(bh__service_t *s)
{
    atomic_store_explicit(&s->swap.phase, BH__SWAP_RETIRING, memory_order_release);
    bh__cq_kick(&s->cq);
}

void bh__service_swap_reset(bh__service_t *s)
{
    s->swap.next = s->swap.old = NULL;
    s->swap.next_state = s->swap.old_state = NULL;
    atomic_store_explicit(&s->swap.phase, BH__SWAP_NONE, memory_order_release);
}

static void set_phase(bh__service_t *s, bh__swap_phase_t ph)
{
    atomic_store_explicit(&s->swap.phase, ph, memory_order_release);
    if (ph == BH__SWAP_SWITCHED || ph == BH__SWAP_RETIRED || ph == BH__SWAP_CANCELLED)
        uv_async_send(s->swap.notify);
}

static void on_again(uv_timer_t *t) { bh__cq_kick(&((bh__service_t *)t->data)->cq); }

/* Look again shortly: what is awaited ends without waking the loop. */
static void again(bh__service_t *s, uint64_t ms)
{
    if (!s->swap.timer_ready) {
        uv_timer_init(&s->loop, &s->swap.timer);
        s->swap.timer.data = s;
        s->swap.timer_ready = true;
    }
    if (!uv_is_active((uv_handle_t *)&s->swap.timer))
        uv_timer_start(&s->swap.timer, on_again, ms, 0);
}

/* A live job that will still call into old: an outside publish of its
 * threads, whose callback is told how it ended. */
static bool calls_into(const bh__service_t *s, const bh__loaded_t *old)
{
    for (const bh__job_t *j = s->orig.live; j && old->base; j = j->onext) {
        void *fn;
        Dl_info info;
        if (!j->done) continue;
        memcpy(&fn, &j->done, sizeof fn);
        if (dladdr(fn, &info) && info.dli_fbase == old->base) return true;
    }
    return false;
}

/* Point every held job at the new version's code. The routes are the
 * same (a swap is asked for only then: bh__descriptor_shape_change). */
static size_t rebind_held(bh__service_t *s)
{
    size_t n = 0;
    for (bh__job_t *j = s->run.batch; j; j = j->next, n++) {
        if (j->tick) j->tick = j->timer->def->handler;
        else if (j->handler) bh__dispatch_rebind(s->plugin->desc, s->conf.service, j);
    }
    return n;
}

/* None of the old version's code runs: the new one takes over. */
static void switch_now(bh__service_t *s)
{
    const bh__loaded_t *old = s->plugin, *next = s->swap.next;
    void *state = s->swap.next_state;
    bool taken = false;
    if (next->desc->upgrade) {
        bh__ctx_t ctx;
        plugin_ctx(s, &ctx);
        bh__crash_enter(&(bh__crash_at_t){BH__CRASH_INIT, s->conf.service, next->desc->name,
                                          next->path, NULL, NULL, 0, -1});
        taken = next->desc->upgrade(&ctx.pub, &state, s->state, old->desc->version) == 0;
        bh__crash_leave();
    }
    s->swap.old = old;
    s->swap.old_state = s->state;
    s->swap.taken = taken;
    s->plugin = s->run.plugin = next;
    s->state = s->run.state = state;
    bh__requests_rebind(&s->orig.reqs, next->desc);
    const bh_timer_t *defs = bh__contract_timers(next->desc);
    for (size_t i = 0; i < s->orig.timers.n; i++) s->orig.timers.t[i].def = &defs[i];
    size_t held = rebind_held(s);
    s->run.hold = false;
    bh__log(s->log, BH_NOTICE, NULL,
            "plugin %s %s took over from %s%s; %zu message(s) that waited for it run on it "
            "(held %.1f ms)",
            next->desc->name, next->desc->version, old->desc->version,
            next->desc->upgrade ? (taken ? ", with its state" : ", without its state") : "", held,
            (double)(uv_hrtime() - s->swap.held_ns) / 1e6);
    set_phase(s, BH__SWAP_SWITCHED);
    bh__run_flush(&s->run);
}

void bh__swap_tick(bh__service_t *s)
{
    bh__swap_phase_t ph = bh__service_swap_phase(s);
    if (ph == BH__SWAP_ASKED) {
        if (bh__conn_draining(&s->conn) || bh__conn_closed(&s->conn)) {
            set_phase(s, BH__SWAP_CANCELLED);
            return;
        }
        bh__run_hold(&s->run);
        s->swap.held_ns = uv_hrtime();
        set_phase(s, ph = BH__SWAP_HOLDING);
    }
    if (ph == BH__SWAP_HOLDING) {
        bh__workers_stats_t ws = {0};
        bh__workers_stats(s->workers, &ws);
        if (ws.running || (s->run.relay && bh__relay_strays(&s->relay))) again(s, 1);
        else switch_now(s);
    } else if (ph == BH__SWAP_RETIRING) {
        if (calls_into(s, s->swap.old)) again(s, 10);
        else set_phase(s, BH__SWAP_RETIRED);
    }
}

void bh__swap_cancel(bh__service_t *s)
{
    bh__swap_phase_t ph = bh__service_swap_phase(s);
    if (ph != BH__SWAP_ASKED && ph != BH__SWAP_HOLDING) return;
    bh__log(s->log, BH_WARNING, NULL, "the service stops: plugin %s %s does not take over from %s",
            s->swap.next->desc->name, s->swap.next->desc->version, s->plugin->desc->version);
    s->run.hold = false; /* the drain gives the held jobs back */
    set_phase(s, BH__SWAP_CANCELLED);
}

void bh__swap_close(bh__service_t *s)
{
    if (s->swap.timer_ready) uv_close((uv_handle_t *)&s->swap.timer, NULL);
    s->swap.timer_ready = false;
}
