/* service.c -- one plugin as one service: the wiring of its modules.
 *
 * The I/O thread runs the service's own libuv loop. Each concern is a module
 * that owns its state and timers: conn (the connection state machine),
 * outbox (publishing and confirms), acks (the ack coalescer), cq (finished
 * jobs coming back from the workers), dispatch (delivery -> job), settle
 * (job -> ack, reject or retry) and handler (one handler call). This file
 * connects them; every callback of the loop ends in tick(). */
#include "service.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "acks.h"
#include "api.h"
#include "conn.h"
#include "cq.h"
#include "dispatch.h"
#include "handler.h"
#include "log.h"
#include "outbox.h"
#include "retry.h"
#include "settle.h"
#include "topology.h"
#include "value.h"
#include "workers.h"

/* workers = 0: a handler running this long on the I/O thread is logged. */
enum { INLINE_SLOW_MS = 100 };
#ifdef SCHED_BATCH
#define WORKER_POLICY SCHED_BATCH
#else
#define WORKER_POLICY (-1) /* worker_scheduling = batch changes nothing here */
#endif

struct bh__service {
    const bh__config_t *cfg;
    const bh__loaded_t *plugin;
    bh__svc_conf_t conf;
    size_t half_prefetch; /* finished messages worth an ack (and a wake-up) at once */
    void *state;
    bool inited;
    bh__logger_t *log;
    bh__topology_t topo;
    bh__handler_env_t env;
    char conn_name[256];

    uv_thread_t io;
    bool io_started, loop_ready;
    bh__workers_t *workers;
    uv_loop_t loop;
    uv_async_t wake; /* workers, loggers and bh__service_stop */
    uv_timer_t health, deadline;

    /* I/O thread only (cq excepted: see cq.h). */
    bh__conn_t conn;
    bh__outbox_t out;
    bh__acker_t acks;
    bh__cq_t cq;
    bh__retry_t retry;
    bh__settle_t settle;
    bh__job_t *batch, **batch_tail; /* deliveries of this tick, handed over at once */
    size_t batch_n;

    atomic_bool stop_requested;
    atomic_bool clean;
    void (*on_exit)(void *ud);
    void *on_exit_ud;
};

/* -- set-up, on the main thread ------------------------------------------ */

int bh__service_new(bh__service_t **out, const bh__config_t *cfg, const bh__loaded_t *plugin,
                    char *err, size_t errlen)
{
    bh__service_t *s = calloc(1, sizeof *s);
    char host[200];
    *out = NULL;
    if (!s) return snprintf(err, errlen, "out of memory"), BH_ENOMEM;
    s->batch_tail = &s->batch;
    atomic_init(&s->stop_requested, false);
    atomic_init(&s->clean, true);
    s->cfg = cfg;
    s->plugin = plugin;
    if (bh__config_service(cfg, plugin->desc->name, plugin->desc->service, plugin->desc->config,
                           &s->conf, err, errlen)) {
        free(s);
        return BH_EINVAL;
    }
    s->half_prefetch = s->conf.prefetch > 1 ? (size_t)s->conf.prefetch / 2 : 1;
    if (!(s->log = bh__logger_new(s->conf.service)) ||
        bh__topology_build(&s->topo, &s->conf, plugin->desc)) {
        snprintf(err, errlen, "out of memory");
        bh__service_free(s);
        return BH_ENOMEM;
    }
    s->retry = (bh__retry_t){s->conf.retry_delays, s->conf.n_retry_delays, &s->topo, s->log, 0};
    s->env = (bh__handler_env_t){s->conf.service, s->conf.format, s->log, NULL};
    if (gethostname(host, sizeof host - 1)) strcpy(host, "localhost");
    host[sizeof host - 1] = '\0';
    snprintf(s->conn_name, sizeof s->conn_name, "bushost %s (%s) %s:%ld", s->conf.service,
             plugin->desc->name, host, (long)uv_os_getpid());
    *out = s;
    return 0;
}

const char *bh__service_name(const bh__service_t *s) { return s->conf.service; }

int bh__service_init(bh__service_t *s, char *err, size_t errlen)
{
    bh__ctx_t ctx;
    bh__ctx_init(&ctx, s->conf.service, s->conf.format, s->log, NULL, &s->conf);
    int rc = bh__loader_init(s->plugin, &ctx.pub, &s->state, err, errlen);
    s->inited = rc == 0;
    s->env.state = s->state;
    return rc;
}

static void worker_run(void *ud, bh__job_t *job)
{
    bh__service_t *s = ud;
    bh__handler_run(&s->env, job);
    /* Refused after the shutdown deadline: nobody can settle the message
     * any more, and the broker will redeliver it. */
    if (!bh__cq_push(&s->cq, job, job->outs || job->outcome != BH_DONE)) bh__job_free(job);
}

/* workers = 0: the handlers run here, one after the other. The plugin
 * promised they never block; one that takes long anyway holds up
 * heartbeats, confirms and acks, so say so. */
static void run_inline(bh__service_t *s, bh__job_t *j)
{
    uint64_t t0 = uv_hrtime(), t1;
    for (bh__job_t *n; j; j = n, t0 = t1) {
        n = j->next;
        j->next = NULL;
        bh__handler_run(&s->env, j);
        t1 = uv_hrtime(); /* one clock read per message */
        uint64_t ms = (t1 - t0) / 1000000u;
        if (ms >= INLINE_SLOW_MS)
            bh__log(s->log, BH_WARNING, j->msg.conversation_id,
                    "handler for %s '%s' ran %llu ms on the I/O thread (workers = 0), holding up "
                    "heartbeats, confirms and acks; give this service workers",
                    bh__kind_name(j->msg.kind), j->d->routing_key, (unsigned long long)ms);
        bh__settle_complete(&s->settle, j);
    }
}

/* The deliveries of one poll go to the workers in one go: one lock, and as
 * few wake-ups as the batch needs (workers.h). */
static void flush_batch(bh__service_t *s)
{
    bh__job_t *batch = s->batch, **tail = s->batch_tail;
    size_t n = s->batch_n;
    if (!batch) return;
    s->batch = NULL;
    s->batch_tail = &s->batch;
    s->batch_n = 0;
    if (!s->conf.workers) {
        run_inline(s, batch);
        return;
    }
    bh__cq_arm(&s->cq); /* before the hand-over, so that no job finishes unseen */
    bh__workers_push_list(s->workers, batch, tail, n);
}

static void collect(bh__service_t *s, bool disarm)
{
    for (bh__job_t *j = bh__cq_take_all(&s->cq, disarm), *n; j; j = n) {
        n = j->next;
        j->next = NULL;
        bh__settle_complete(&s->settle, j);
    }
}

/* -- broker callbacks (I/O thread, from bh__broker_poll) ------------------ */

static void reject_delivery(bh__service_t *s, bh__delivery_t *d, bool requeue)
{
    bh__acker_reject(&s->acks, d->tag, requeue);
    free(d);
}

static void cb_delivery(void *ud, bh__delivery_t *d)
{
    bh__service_t *s = ud;
    char why[300];
    bh__job_t *job;
    if (bh__acker_delivered(&s->acks, d->tag)) {
        bh__conn_fail(&s->conn, "delivery tags out of order");
        free(d);
        return;
    }
    if (!bh__conn_consuming(&s->conn)) {
        reject_delivery(s, d, true); /* came after we cancelled our consumers */
        return;
    }
    switch (bh__dispatch(s->plugin->desc, s->conf.service, d, s->conn.gen, &job, why, sizeof why)) {
    case BH__DISPATCH_INVALID:
        bh__log(s->log, BH_EMERGENCY, d->conversation_id,
                "%s: rejecting message from '%s' with key '%s'", why, d->exchange, d->routing_key);
        reject_delivery(s, d, false);
        return;
    case BH__DISPATCH_NOMEM:
        bh__log(s->log, BH_CRITICAL, d->conversation_id, "out of memory; requeueing '%s'",
                d->routing_key);
        reject_delivery(s, d, true);
        return;
    case BH__DISPATCH_JOB:
        break;
    }
    job->svc = s;
    s->settle.inflight++;
    *s->batch_tail = job;
    s->batch_tail = &job->next;
    s->batch_n++;
}

static void cb_confirm(void *ud, uint64_t tag, bool multiple, bool acked)
{
    bh__service_t *s = ud;
    bh__outbox_confirm(&s->out, tag, multiple, acked);
}

static void cb_returned(void *ud, const char *exchange, const char *key, int code, const char *text,
                        const bh__hdr_t *h, size_t n)
{
    bh__service_t *s = ud;
    bh__out_t *o = bh__outbox_find(&s->out, bh__retry_copy_id(h, n));
    if (o) o->returned = true;
    bh__log(s->log, BH_ERROR, bh__hdr_str(h, n, "conversation_id"),
            "the broker returned a message published to '%s' with key '%s': %d %s "
            "(no queue is bound for it; is the service running?)",
            exchange, key, code, text);
}

static void cb_cancelled(void *ud, const char *tag)
{
    bh__service_t *s = ud;
    char why[300];
    snprintf(why, sizeof why, "the broker cancelled consumer %s (queue deleted or node down)", tag);
    bh__conn_fail(&s->conn, why);
}

static void cb_blocked(void *ud, const char *reason)
{
    bh__service_t *s = ud;
    bh__conn_blocked(&s->conn, reason);
}

static const bh__broker_cbs_t broker_cbs = {cb_delivery, cb_confirm, cb_returned, cb_cancelled,
                                            cb_blocked};

/* -- the I/O tick ---------------------------------------------------------- */

static void finish(bh__service_t *s)
{
    if (bh__conn_closed(&s->conn)) return;
    bh__outbox_flush_logs(&s->out);
    bh__cq_close(&s->cq);
    bh__logger_attach(s->log, NULL); /* later logs: stderr only */
    bh__conn_close(&s->conn);
    bh__outbox_close(&s->out);
    bh__acker_close(&s->acks);
    uv_close((uv_handle_t *)&s->wake, NULL);
    uv_close((uv_handle_t *)&s->health, NULL);
    uv_close((uv_handle_t *)&s->deadline, NULL);
}

/* After every libuv callback: drain the library, send what waits, handle a
 * connection that failed meanwhile (repeated while rabbitmq-c still holds
 * buffered frames or bytes), and end a drain that is complete. */
static void tick(bh__service_t *s, bool pump)
{
    char err[512];
    collect(s, false); /* awake anyway: take what finished */
    for (int round = 0; round < 16; round++) {
        if (bh__conn_ready(&s->conn) &&
            bh__broker_poll(s->conn.broker, pump, &broker_cbs, s, err, sizeof err))
            bh__conn_fail(&s->conn, err);
        flush_batch(s);
        pump = false;
        bh__outbox_flush(&s->out);
        bh__acker_soon(&s->acks, !bh__conn_consuming(&s->conn));
        bh__outbox_flush_logs(&s->out);
        bh__conn_settle(&s->conn);
        if (!bh__conn_ready(&s->conn) || !bh__broker_buffered(s->conn.broker)) break;
    }
    bh__outbox_watch(&s->out);
    if (bh__conn_draining(&s->conn) && !s->settle.inflight && bh__outbox_idle(&s->out)) {
        bh__acker_flush(&s->acks);
        finish(s);
    }
}

/* -- loop callbacks -------------------------------------------------------- */

static void on_tick(void *ud) { tick(ud, false); }

static void on_conn_tick(void *ud, bool pump) { tick(ud, pump); }

static void on_confirmed(void *ud, bh__out_t *o)
{
    bh__service_t *s = ud;
    bh__settle_confirmed(&s->settle, o);
}

/* The collect timer, shortly after a hand-over: take what finished, and
 * make sure no job waits behind a handler that turned out long while a
 * thread sleeps. True: look again shortly. */
static bool on_collect(void *ud)
{
    bh__service_t *s = ud;
    bool waiting = bh__workers_nudge(s->workers);
    collect(s, !waiting);
    tick(s, false);
    return waiting;
}

static int on_setup(void *ud, bh__broker_t *b, bool consume, char *err, size_t errlen)
{
    bh__service_t *s = ud;
    if (bh__broker_declare(b, &s->topo, err, errlen) ||
        (consume && bh__broker_consume(b, &s->topo, s->conf.prefetch, err, errlen)))
        return -1;
    return 0;
}

/* The connection died: forget its tags, keep every unconfirmed publish for
 * the next one, drop prefetched jobs (the broker redelivers them). */
static void on_lost(void *ud)
{
    bh__service_t *s = ud;
    bh__acker_lost(&s->acks);
    bh__outbox_lost(&s->out);
    for (bh__job_t *j = bh__workers_take_queued(s->workers), *n; j; j = n) {
        n = j->next;
        bh__settle_drop(&s->settle, j);
    }
}

static void on_deadline(uv_timer_t *t)
{
    bh__service_t *s = t->data;
    bh__workers_stats_t ws = {0};
    bh__workers_stats(s->workers, &ws);
    bh__log(s->log, BH_ERROR, NULL,
            "shutdown deadline reached with %zu message(s) in flight (%zu handler(s) running, "
            "%zu publish(es) unconfirmed): they stay unacked and the broker will redeliver them",
            s->settle.inflight, ws.running, bh__outbox_unconfirmed(&s->out));
    atomic_store(&s->clean, false);
    finish(s);
}

static void on_wake(uv_async_t *a)
{
    bh__service_t *s = a->data;
    if (atomic_load(&s->stop_requested) && !bh__conn_draining(&s->conn) &&
        !bh__conn_closed(&s->conn)) {
        bh__log(s->log, BH_WARNING, NULL, "Shutting down");
        bh__conn_drain(&s->conn);
        bh__cq_eager(&s->cq);
        /* Prefetched but not started: give them back now, for other workers. */
        for (bh__job_t *j = bh__workers_take_queued(s->workers), *n; j; j = n) {
            n = j->next;
            if (j->gen == s->conn.gen) bh__acker_reject(&s->acks, j->d->tag, true);
            bh__settle_drop(&s->settle, j);
        }
        bh__workers_stop(s->workers);
        uv_timer_start(&s->deadline, on_deadline, (uint64_t)s->cfg->shutdown_timeout, 0);
    }
    tick(s, false);
}

static void on_health(uv_timer_t *t)
{
    bh__service_t *s = t->data;
    static const char *const extra[] = {"healthcheck", "ok", NULL};
    bh__log_extra(s->log, BH_NOTICE, NULL, extra, "healthcheck: ok");
    tick(s, false);
}

static void init_loop(bh__service_t *s)
{
    static const bh__conn_ops_t ops = {on_setup, on_lost, on_conn_tick};
    uv_loop_init(&s->loop);
    uv_async_init(&s->loop, &s->wake, on_wake);
    uv_timer_init(&s->loop, &s->health);
    uv_timer_init(&s->loop, &s->deadline);
    s->wake.data = s->health.data = s->deadline.data = s;
    bh__conn_init(&s->conn, &s->loop, (const char *const *)s->cfg->urls, s->cfg->n_urls,
                  s->cfg->heartbeat, s->conn_name, s->log, &ops, s);
    bh__outbox_init(&s->out, &s->loop, &s->conn, s->log, on_confirmed, on_tick, s);
    bh__acker_init(&s->acks, &s->loop, &s->conn, s->half_prefetch, on_tick, s);
    bh__cq_init(&s->cq, &s->loop, &s->wake, s->half_prefetch, on_collect, s);
    s->settle = (bh__settle_t){&s->conn, &s->out, &s->acks, &s->retry, s->log, 0};
    s->loop_ready = true;
}

static void io_main(void *arg)
{
    bh__service_t *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    uv_loop_close(&s->loop);
    if (s->on_exit) s->on_exit(s->on_exit_ud);
}

int bh__service_start(bh__service_t *s, void (*on_exit)(void *ud), void *ud, char *err,
                      size_t errlen)
{
    s->on_exit = on_exit;
    s->on_exit_ud = ud;
    /* workers = 0 makes a pool without threads: handlers run on the I/O
     * thread (run_inline), and the rest of the service need not know. */
    if (bh__workers_start(&s->workers, s->conf.workers, BH__WORKERS_BUDGET_NS,
                          s->conf.sched_batch ? WORKER_POLICY : -1, worker_run, s)) {
        snprintf(err, errlen, "%s: cannot start %d worker threads", s->conf.service,
                 s->conf.workers);
        return BH_ENOMEM;
    }
    int perr = bh__workers_policy_error(s->workers);
    if (perr)
        bh__log(s->log, BH_WARNING, NULL,
                "cannot run the workers under SCHED_BATCH (%s): they run as normal threads, "
                "which costs more context switches with cheap handlers; worker_scheduling = "
                "normal asks for that without this warning",
                strerror(perr));
    init_loop(s);
    bh__logger_attach(s->log, &s->wake);
    if (s->cfg->healthcheck_interval > 0) {
        uint64_t every = (uint64_t)s->cfg->healthcheck_interval * 1000u;
        uv_timer_start(&s->health, on_health, every, every);
    }
    bh__log(s->log, BH_INFO, NULL,
            "starting service '%s' from plugin %s %s: %d workers, prefetch %d, %s", s->conf.service,
            s->plugin->desc->name, s->plugin->desc->version, s->conf.workers, s->conf.prefetch,
            bh__format_content_type(s->conf.format));
    bh__conn_start(&s->conn);
    if (uv_thread_create(&s->io, io_main, s)) {
        snprintf(err, errlen, "%s: cannot start the I/O thread", s->conf.service);
        return BH_ENOMEM;
    }
    s->io_started = true;
    return 0;
}

void bh__service_stop(bh__service_t *s)
{
    atomic_store(&s->stop_requested, true);
    if (s->io_started) bh__cq_kick(&s->cq);
}

bool bh__service_join(bh__service_t *s)
{
    if (!s->io_started) return true;
    uv_thread_join(&s->io);
    s->io_started = false;
    bh__workers_stop(s->workers);
    /* The deadline already ran on the I/O thread; a handler still running
     * now is stuck: wait only briefly more. */
    if (bh__workers_join(s->workers, atomic_load(&s->clean) ? UINT64_MAX : 100) == 0) {
        bh__workers_free(s->workers);
        s->workers = NULL;
    } else {
        atomic_store(&s->clean, false);
    }
    /* Completions that arrived after the loop ended are stale. */
    for (bh__job_t *j = bh__cq_take_all(&s->cq, false), *n; j; j = n) {
        n = j->next;
        bh__settle_drop(&s->settle, j);
    }
    return atomic_load(&s->clean);
}

bool bh__service_free(bh__service_t *s)
{
    if (!s) return true;
    if (s->workers) {
        /* A handler is still running plugin code: neither fini nor unload
         * is safe. The process is about to exit anyway. */
        return false;
    }
    if (s->inited && s->plugin->desc->fini) {
        bh__ctx_t ctx;
        bh__ctx_init(&ctx, s->conf.service, s->conf.format, s->log, NULL, NULL);
        s->plugin->desc->fini(&ctx.pub, s->state);
    }
    if (s->loop_ready) {
        bh__outbox_free(&s->out);
        bh__acker_free(&s->acks);
        bh__cq_free(&s->cq);
    }
    bh__topology_free(&s->topo);
    bh__logger_free(s->log);
    bh__svc_conf_free(&s->conf);
    free(s);
    return true;
}
