/* service.c -- one plugin as one service: the wiring of its modules (conn,
 * outbox, acks, cq, dispatch, run, settle, retry, guard; the metrics live in
 * the notify block) on the service's own I/O loop, whose every callback ends
 * in tick(). docs/architecture.md says what each module owns. */
#include "service.h"
#include "service_impl.h"

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
#include "guard.h"
#include "log.h"
#include "notify.h"
#include "origin.h"
#include "outbox.h"
#include "payload.h"
#include "retry.h"
#include "run.h"
#include "settle.h"
#include "topology.h"
#include "workers.h"

/* -- set-up, on the main thread ------------------------------------------ */

int bh__service_new(bh__service_t **out, const bh__config_t *cfg, const bh__loaded_t *plugin,
                    char *err, size_t errlen)
{
    bh__service_t *s = calloc(1, sizeof *s);
    *out = NULL;
    if (!s) return snprintf(err, errlen, "out of memory"), BH_ENOMEM;
    atomic_init(&s->stop_requested, false);
    atomic_init(&s->clean, true);
    atomic_init(&s->exited, false);
    s->cfg = cfg;
    s->plugin = plugin;
    if (bh__config_service(cfg, plugin->desc->name, plugin->desc->service, plugin->desc->config,
                           &s->conf, err, errlen))
        return free(s), BH_EINVAL;
    s->half_prefetch = s->conf.prefetch > 1 ? (size_t)s->conf.prefetch / 2 : 1;
    if (!(s->log = bh__logger_new(s->conf.service)) ||
        bh__origins_init(&s->orig, plugin->desc, &s->conf, s->log, (size_t)cfg->max_message_size) ||
        bh__topology_build(&s->topo, &s->conf, plugin->desc) ||
        bh__metrics_init(&s->notify.m, s->conf.service, plugin->desc, s->conf.workers,
                         (const char *const *)cfg->urls, cfg->n_urls))
        return bh__service_free(s), snprintf(err, errlen, "out of memory"), BH_ENOMEM;
    s->retry = (bh__retry_t){s->conf.retry_delays, s->conf.n_retry_delays, &s->topo, s->log, 0};
    s->run = bh__run_make(s->conf.service, plugin, s->conf.format, s->log, &s->guard, cfg->otlp);
    bh__conn_name(s->conn_name, sizeof s->conn_name, s->conf.service, plugin->desc->name);
    bh__notify_svc_init(&s->notify, s->conf.service, &s->cq);
    *out = s;
    return 0;
}

const char *bh__service_name(const bh__service_t *s) { return s->conf.service; }

bh__notify_svc_t *bh__service_notify(bh__service_t *s) { return &s->notify; }

int bh__service_init(bh__service_t *s, char *err, size_t errlen)
{
    int rc = bh__service_prepare(s, s->plugin, &s->state, err, errlen);
    s->inited = rc == 0;
    s->run.state = s->state;
    return rc;
}

/* -- what the connection reads (I/O thread, from bh__conn_poll) ---------- */

static void reject_delivery(bh__service_t *s, bh__delivery_t *d, bool requeue)
{
    bh__acker_reject(&s->acks, d->tag, requeue);
    free(d);
}

static void cb_delivery(void *ud, bh__delivery_t *d)
{
    bh__service_t *s = ud;
    bh__job_t *job = NULL;
    if (bh__acker_delivered(&s->acks, d->tag)) {
        bh__conn_fail(&s->conn, "delivery tags out of order");
        free(d);
    } else if (!bh__conn_consuming(&s->conn)) {
        reject_delivery(s, d, true); /* came after we cancelled our consumers */
    } else {
        switch (bh__dispatch(s->plugin->desc, s->conf.service, &s->notify.m, s->log, d, s->conn.gen,
                             &job)) {
        case BH__DISPATCH_INVALID:
            reject_delivery(s, d, false);
            break;
        case BH__DISPATCH_NOMEM:
            reject_delivery(s, d, true);
            break;
        case BH__DISPATCH_JOB:
            s->settle.inflight++;
            bh__run_add(&s->run, job);
            break;
        }
    }
}

static void cb_confirm(void *ud, uint64_t tag, bool multiple, bool acked)
{
    bh__outbox_confirm(&((bh__service_t *)ud)->out, tag, multiple, acked);
}

static void cb_returned(void *ud, const char *exchange, const char *key, int code, const char *text,
                        const bh__hdr_t *h, size_t n)
{
    bh__service_t *s = ud;
    bh__outbox_returned(&s->out, bh__retry_copy_id(h, n), exchange, key, code, text, h, n);
}

/* -- the I/O tick ---------------------------------------------------------- */

static void finish(bh__service_t *s)
{
    if (bh__conn_closed(&s->conn)) return;
    bh__outbox_flush_logs(&s->out);
    bh__cq_close(&s->cq);
    bh__origins_close(&s->orig);
    bh__logger_attach(s->log, NULL); /* later logs: stderr only */
    bh__conn_close(&s->conn);
    bh__outbox_close(&s->out);
    bh__acker_close(&s->acks);
    bh__guard_close(&s->guard);
    bh__swap_close(s);
    uv_close((uv_handle_t *)&s->wake, NULL);
    uv_close((uv_handle_t *)&s->health, NULL);
    uv_close((uv_handle_t *)&s->deadline, NULL);
}

/* After every libuv callback: drain the library, send what waits, handle a
 * connection that failed meanwhile (repeated while rabbitmq-c still holds
 * buffered frames or bytes), and end a drain that is complete. */
static void tick(bh__service_t *s, bool pump)
{
    bh__origins_take(&s->orig);
    bh__run_collect(&s->run, false); /* awake anyway: take what finished */
    bh__swap_tick(s);
    for (int round = 0; round < 16; round++) {
        bh__conn_poll(&s->conn, pump);
        bh__run_flush(&s->run);
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
    bh__notify_svc_conn(&s->notify, &s->conn, s->settle.inflight, s->settle.handled);
}

/* -- loop callbacks -------------------------------------------------------- */

static void on_tick(void *ud) { tick(ud, false); }

static void on_conn_tick(void *ud, bool pump) { tick(ud, pump); }

/* The collect timer, shortly after a hand-over: take what finished, and
 * make sure no job waits behind a handler that turned out long while a
 * thread sleeps. True: look again shortly. */
static bool on_collect(void *ud)
{
    bh__service_t *s = ud;
    bool waiting = bh__workers_nudge(s->workers);
    bh__run_collect(&s->run, !waiting);
    tick(s, false);
    return waiting;
}

static int on_setup(void *ud, bh__broker_t *b, bool consume, char *err, size_t errlen)
{
    bh__service_t *s = ud;
    bh__broker_set_max_body(b, (size_t)s->cfg->max_message_size);
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
    bh__run_lost(&s->run);
}

static void on_deadline(uv_timer_t *t)
{
    bh__service_t *s = t->data;
    bh__workers_stats_t ws = {0};
    bh__workers_stats(s->workers, &ws);
    bh__log(s->log, BH_ERROR, NULL,
            "shutdown deadline reached with %zu message(s) in flight (%zu handler(s) running, "
            "%zu publish(es) unconfirmed): they stay unacked and the broker will redeliver them",
            s->settle.inflight,
            ws.running + (s->run.relay ? (size_t)bh__relay_strays(&s->relay) : 0),
            bh__outbox_unconfirmed(&s->out));
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
        bh__origins_drain(&s->orig);
        bh__swap_cancel(s);
        bh__run_give_back(&s->run, true);
        bh__workers_stop(s->workers);
        uv_timer_start(&s->deadline, on_deadline, (uint64_t)s->cfg->shutdown_timeout, 0);
    }
    tick(s, false);
}

static void on_health(uv_timer_t *t)
{
    bh__notify_health(&((bh__service_t *)t->data)->notify, ((bh__service_t *)t->data)->log);
    tick(t->data, false);
}

static void init_loop(bh__service_t *s)
{
    static const bh__conn_ops_t ops = {on_setup,    on_lost,    on_conn_tick,
                                       cb_delivery, cb_confirm, cb_returned};
    uv_loop_init(&s->loop);
    uv_async_init(&s->loop, &s->wake, on_wake);
    uv_timer_init(&s->loop, &s->health);
    uv_timer_init(&s->loop, &s->deadline);
    s->wake.data = s->health.data = s->deadline.data = s;
    bh__conn_init(&s->conn, &s->loop, (const char *const *)s->cfg->urls, s->cfg->n_urls,
                  s->cfg->heartbeat, s->conn_name, s->log, &ops, s);
    bh__conn_set_tls(&s->conn, &s->cfg->tls);
    bh__outbox_init(&s->out, &s->loop, &s->conn, s->log,
                    &(bh__outbox_done_t){bh__settle_confirmed, bh__settle_failed, &s->settle},
                    on_tick, s);
    s->out.m = &s->notify.m;
    bh__acker_init(&s->acks, &s->loop, &s->conn, s->half_prefetch, on_tick, s);
    bh__cq_init(&s->cq, &s->loop, &s->wake, s->half_prefetch, on_collect, s);
    s->settle = bh__settle_make(&s->conn, &s->out, &s->acks, &s->retry, s->log, &s->notify.m);
    s->run.cq = &s->cq;
    s->run.settle = &s->settle;
    s->run.workers = s->workers;
    s->run.max_message = (size_t)s->cfg->max_message_size;
    s->run.inline_ = !s->conf.workers;
    s->run.batch_tail = &s->run.batch;
    bh__origins_start(&s->orig, &s->loop, &s->wake, &s->run, &s->settle, on_tick, s);
    bh__guard_watch(&s->guard, &s->loop);
    s->loop_ready = true;
}

static void loop_ended(void *arg)
{
    bh__service_t *s = arg;
    uv_loop_close(&s->loop);
    atomic_store(&s->exited, true);
    if (s->on_exit) s->on_exit(s->on_exit_ud);
}

static void io_main(void *arg)
{
    uv_run(&((bh__service_t *)arg)->loop, UV_RUN_DEFAULT);
    loop_ended(arg);
}

/* One turn of the loop as the relay's leader (relay.h), then the handlers
 * of what it delivered, then what they left to send. */
static int lead(void *arg)
{
    bh__service_t *s = arg;
    bool pending = s->run.batch && !s->run.hold;
    int alive = uv_run(&s->loop, pending ? UV_RUN_NOWAIT : UV_RUN_ONCE);
    int ran = bh__run_lead(&s->run);
    if (ran < 0) return BH__RELAY_LOST;
    if (ran) tick(s, false);
    return alive || s->run.batch ? BH__RELAY_ON : BH__RELAY_ENDED;
}

int bh__service_start(bh__service_t *s, void (*on_exit)(void *ud), void *ud, char *err,
                      size_t errlen)
{
    s->on_exit = on_exit;
    s->on_exit_ud = ud;
    if (bh__guard_start(&s->guard, s->cfg, &s->conf, s->log, err, errlen)) return BH_EINVAL;
    /* workers = 0 makes a pool without threads (run.h). */
    if (bh__workers_start(&s->workers, s->conf.workers, BH__WORKERS_BUDGET_NS,
                          s->conf.sched_batch ? BH__WORKERS_BATCH : -1, bh__run_worker, &s->run)) {
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
    if (s->conf.workers) {
        s->run.relay = &s->relay;
        if (bh__relay_start(&s->relay, BH__RELAY_BUDGET_NS, lead, loop_ended, s)) {
            snprintf(err, errlen, "%s: cannot start the I/O threads", s->conf.service);
            return BH_ENOMEM;
        }
    } else if (uv_thread_create(&s->io, io_main, s)) {
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
    if (s->run.relay) bh__relay_wait_end(&s->relay);
    else uv_thread_join(&s->io);
    s->io_started = false;
    bh__workers_stop(s->workers);
    /* The deadline already ran on the I/O thread; a handler still running
     * now is stuck: wait only briefly more. */
    uint64_t wait_ms = atomic_load(&s->clean) ? UINT64_MAX : 100;
    /* A thread left in a handler keeps the pool too: bh__service_free then refuses. */
    bool stuck = s->run.relay && bh__relay_join(&s->relay, wait_ms);
    if (bh__workers_join(s->workers, wait_ms) == 0 && !stuck) {
        bh__workers_free(s->workers);
        s->workers = NULL;
    } else {
        atomic_store(&s->clean, false);
        bh__guard_abandon(&s->guard); /* left running on purpose: not a crash */
    }
    bh__run_drop_stale(&s->run); /* completions that came after the loop ended */
    return atomic_load(&s->clean);
}

bool bh__service_free(bh__service_t *s)
{
    if (!s) return true;
    /* A handler is still running plugin code: neither fini nor unload is
     * safe. The process is about to exit anyway. */
    if (s->workers) return false;
    if (s->run.relay) bh__relay_free(&s->relay);
    bh__origins_end(&s->orig, &s->run);
    if (s->inited) bh__service_fini_version(s, s->plugin, s->state);
    bh__origins_free(&s->orig); /* its threads may publish until fini returns */
    if (s->loop_ready) {
        bh__outbox_free(&s->out);
        bh__acker_free(&s->acks);
        bh__cq_free(&s->cq);
    }
    bh__guard_free(&s->guard);
    bh__topology_free(&s->topo);
    bh__metrics_free(&s->notify.m);
    bh__logger_free(s->log);
    bh__svc_conf_free(&s->conf);
    free(s);
    return true;
}
