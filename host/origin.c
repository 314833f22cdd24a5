/* origin.c -- timer runs, outside publishes and unanswered requests as jobs. */
#include "origin.h"

#include <stdlib.h>

#include "api.h"
#include "contract.h"

int bh__origins_init(bh__origins_t *o, const bh_plugin_t *desc, const bh__svc_conf_t *conf,
                     bh__logger_t *log, size_t max_message)
{
    bh__publisher_init(&o->pub, conf->service, conf->format, log);
    o->pub.pub.api = bh__api();
    bh__ctx_init(&o->values, conf->service, conf->format, log, NULL, NULL);
    o->pub.values = &o->values.pub;
    if (max_message) o->pub.max_message = max_message;
    bh__requests_init(&o->reqs, desc, conf->service, log);
    o->conf = conf;
    o->live = NULL;
    o->ready = true;
    return bh__timers_init(&o->timers, bh__contract_timers(desc), log);
}

static void link_live(bh__origins_t *o, bh__job_t *job)
{
    job->oprev = NULL;
    if ((job->onext = o->live)) o->live->oprev = job;
    o->live = job;
}

/* A timer run or the end of a request: run where handlers run. */
static void fire(void *ud, bh__job_t *job)
{
    bh__origins_t *o = ud;
    link_live(o, job);
    o->settle->inflight++;
    bh__run_submit(o->run, job);
}

/* A job with neither handler nor timer is an outside publish. */
static void end(void *ud, bh__job_t *job, bool settled)
{
    bh__origins_t *o = ud;
    if (job->oprev) job->oprev->onext = job->onext;
    else o->live = job->onext;
    if (job->onext) job->onext->oprev = job->oprev;
    job->origin = false; /* ended once */
    if (job->timer) bh__timers_ended(job->timer);
    if (job->tick || job->handler) return;
    if (job->done)
        job->done(job->done_ud, !settled                  ? BH_PUB_SHUTDOWN
                                : job->outcome == BH_DONE ? BH_PUB_CONFIRMED
                                                          : BH_PUB_FAILED);
    bh__publisher_release(&o->pub);
}

static void after(void *ud)
{
    bh__origins_t *o = ud;
    o->tick(o->tick_ud);
}

void bh__origins_start(bh__origins_t *o, uv_loop_t *loop, uv_async_t *wake, bh__run_t *run,
                       bh__settle_t *settle, void (*tick)(void *ud), void *ud)
{
    o->tick = tick;
    o->tick_ud = ud;
    o->run = run;
    o->settle = settle;
    run->reqs = settle->reqs = &o->reqs;
    run->conf = o->conf;
    settle->origin_end = end;
    settle->origin_ud = o;
    /* Their counts on /metrics: the settle's metrics are the service's. */
    if ((o->reqs.m = settle->m)) settle->m->requests_waiting = &o->reqs.n;
    for (size_t i = 0; settle->m && i < o->timers.n && i < settle->m->n_timers; i++)
        o->timers.t[i].m = &settle->m->timers[i];
    bh__timers_start(&o->timers, loop, fire, after, o);
    bh__requests_start(&o->reqs, loop, fire, after, o);
    bh__publisher_attach(&o->pub, wake);
}

void bh__origins_take(bh__origins_t *o)
{
    for (bh__job_t *j = bh__publisher_take(&o->pub), *n; j; j = n) {
        n = j->next;
        j->next = NULL;
        link_live(o, j);
        bh__settle_origin(o->settle, j);
    }
}

void bh__origins_drain(bh__origins_t *o)
{
    bh__timers_stop(&o->timers);
    bh__requests_stop(&o->reqs);
    bh__publisher_close(&o->pub, false);
}

void bh__origins_close(bh__origins_t *o)
{
    bh__publisher_close(&o->pub, true);
    bh__timers_close(&o->timers);
    bh__requests_close(&o->reqs);
}

void bh__origins_end(bh__origins_t *o, const bh__run_t *run)
{
    if (!o->ready) return;
    bh__publisher_close(&o->pub, true);
    for (bh__job_t *j = bh__publisher_take(&o->pub), *n; j; j = n) {
        n = j->next;
        link_live(o, j); /* never reached the I/O thread */
    }
    while (o->live) {
        bh__job_t *j = o->live;
        end(o, j, false);
        bh__job_free(j);
    }
    /* Only the result handler runs: nothing it publishes can go out. */
    bh__run_t alone = {.service = run->service,
                       .plugin = run->plugin,
                       .format = run->format,
                       .log = run->log,
                       .state = run->state,
                       .max_message = run->max_message};
    for (bh__req_t *q = bh__requests_take(&o->reqs), *n; q; q = n) {
        n = q->next;
        bh__job_t *job = bh__requests_job(q, "shutdown");
        if (o->reqs.m) bh__metrics_add(&o->reqs.m->requests[BH__REQ_SHUTDOWN], 1);
        if (job) {
            bh__run_one(&alone, job);
            bh__job_free(job);
        }
        free(q);
    }
}

void bh__origins_free(bh__origins_t *o)
{
    if (!o->ready) return;
    bh__requests_free(&o->reqs);
    bh__timers_free(&o->timers);
    bh__publisher_free(&o->pub);
    o->ready = false;
}
