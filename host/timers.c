/* timers.c -- periodic tasks of a plugin. */
#include "timers.h"

#include <stdlib.h>

int bh__timers_init(bh__timers_t *ts, const bh_timer_t *defs, bh__logger_t *log)
{
    size_t n = 0;
    while (defs && defs[n].handler) n++;
    *ts = (bh__timers_t){.log = log};
    if (!n) return BH_OK;
    if (!(ts->t = calloc(n, sizeof *ts->t))) return BH_ENOMEM;
    ts->n = n;
    for (size_t i = 0; i < n; i++) ts->t[i] = (bh__timer_t){.def = &defs[i], .ts = ts};
    return BH_OK;
}

/* One tick: a run, or a skip while the previous one goes on. */
static void tick(bh__timer_t *t)
{
    bh__timers_t *ts = t->ts;
    if (t->running) {
        if (t->m) bh__metrics_add(&t->m->skips, 1);
        /* Logged on the first skip and then every 100th. */
        if (t->skipped++ % 100 == 0)
            bh__log(ts->log, BH_WARNING, NULL,
                    "timer '%s' is still running from its previous tick: tick skipped (%llu so "
                    "far)",
                    t->def->name, (unsigned long long)t->skipped);
        return;
    }
    bh__job_t *job = bh__job_origin(BH_KIND_EVENT, NULL, t->def->name, NULL, NULL, NULL);
    if (!job) {
        bh__log(ts->log, BH_CRITICAL, NULL, "out of memory: timer '%s' skipped a tick",
                t->def->name);
        t->skipped++;
        if (t->m) bh__metrics_add(&t->m->skips, 1);
        return;
    }
    job->tick = t->def->handler;
    job->timer = t;
    t->running = true;
    t->runs++;
    if (t->m) bh__metrics_add(&t->m->runs, 1);
    ts->fire(ts->ud, job);
}

static void on_tick(uv_timer_t *h)
{
    bh__timer_t *t = h->data;
    tick(t);
    t->ts->after(t->ts->ud); /* hands the run over */
}

void bh__timers_start(bh__timers_t *ts, uv_loop_t *loop, void (*fire)(void *, bh__job_t *),
                      void (*after)(void *), void *ud)
{
    ts->fire = fire;
    ts->after = after;
    ts->ud = ud;
    for (size_t i = 0; i < ts->n; i++) {
        bh__timer_t *t = &ts->t[i];
        uv_timer_init(loop, &t->h);
        t->h.data = t;
        uv_timer_start(&t->h, on_tick, t->def->interval_ms, t->def->interval_ms);
    }
    ts->started = true;
}

void bh__timers_ended(bh__timer_t *t) { t->running = false; }

void bh__timers_stop(bh__timers_t *ts)
{
    for (size_t i = 0; ts->started && i < ts->n; i++) uv_timer_stop(&ts->t[i].h);
}

void bh__timers_close(bh__timers_t *ts)
{
    for (size_t i = 0; ts->started && i < ts->n; i++) uv_close((uv_handle_t *)&ts->t[i].h, NULL);
    ts->started = false;
}

void bh__timers_free(bh__timers_t *ts)
{
    free(ts->t);
    ts->t = NULL;
    ts->n = 0;
}
