/* service.c -- the I/O thread of one service: connection, dispatch, confirms,
 * acks, logs, reconnection and graceful stop.
 *
 * Everything below marked "I/O thread" runs on the service's own libuv loop
 * and is the only code that touches the broker connection. Worker threads
 * only run handlers (worker_run) and append to `done` under `mu`. */
#include "service.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "api.h"
#include "broker.h"
#include "confirm.h"
#include "envelope.h"
#include "gelf.h"
#include "log.h"
#include "payload.h"
#include "topology.h"
#include "workers.h"

/* Publishes in flight before we hold further ones back: a sliding window,
 * never a wait per message. */
enum { CONFIRM_WINDOW = 1000 };
enum { BACKOFF_MIN_MS = 250, BACKOFF_MAX_MS = 30000 };
enum { NACK_PAUSE_MS = 200, DRAIN_CHECK_MS = 5 };
/* Finished messages wait this long, or until half the prefetch has
 * finished, so that one multiple ack covers many: each ack is a write (the
 * broker still has the other half to deliver meanwhile). The same delay
 * bounds how long a finished job waits for the I/O thread to collect it. */
enum { ACK_DELAY_MS = 2 };
/* workers = 0: a handler running this long on the I/O thread is logged. */
enum { INLINE_SLOW_MS = 100 };
#ifdef SCHED_BATCH
#define WORKER_POLICY SCHED_BATCH
#else
#define WORKER_POLICY (-1) /* worker_scheduling = batch changes nothing here */
#endif

typedef enum { S_CONNECTING, S_RUNNING, S_DRAINING, S_DONE } state_t;

struct bh__service {
    const bh__config_t *cfg;
    const bh__loaded_t *plugin;
    bh__svc_conf_t conf;
    size_t half_prefetch; /* finished messages worth an ack (and a wake-up) at once */
    void *state;
    bool inited;
    bh__logger_t *log;
    bh__topology_t topo;
    char conn_name[256];

    uv_thread_t io;
    bool io_started;
    bh__workers_t *workers;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t pump, health, retry, deadline, renack, drain, ackt, collt;
    uv_poll_t *poll;

    /* I/O thread only. */
    bh__broker_t *broker;
    bool broken; /* a broker call failed inside a callback; reconnect at the next tick */
    char broken_why[512];
    uint64_t gen;
    size_t url_index;
    unsigned attempts;   /* failed connects in a row */
    unsigned reconnects; /* connections made after the first */
    bool connected_once;
    bh__confirms_t confirms;
    bh__acks_t acks;
    bh__out_t *unsent, **unsent_tail;
    bh__job_t *batch, **batch_tail; /* deliveries of this tick, handed over at once */
    size_t batch_n;
    bh__out_t *nacked, **nacked_tail; /* refused by the broker, sent again after a pause */
    bool blocked;
    size_t room;         /* bytes we may write before the socket could block */
    bool want_write;     /* publishes wait for the socket to drain */
    size_t inflight;     /* jobs created and not yet freed */
    size_t acks_waiting; /* finished, to be acked at the next flush */
    state_t st;
    uint64_t stop_at;

    /* Shared with workers and other threads, under mu. */
    uv_mutex_t mu;
    bh__job_t *done, **done_tail;
    size_t done_n;      /* jobs in done */
    bool collect_armed; /* collt will take done: a worker need not wake us */
    bool eager;         /* draining: every completion wakes us */
    bool wake_closed;
    atomic_bool stop_requested;
    atomic_bool clean;

    void (*on_exit)(void *ud);
    void *on_exit_ud;
};

static void slog(bh__service_t *s, bh_level_t level, const char *conv, const char *fmt, ...)
    BH_PRINTF(4, 5);
static void slog(bh__service_t *s, bh_level_t level, const char *conv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bh__vlog(s->log, level, conv, NULL, fmt, ap);
    va_end(ap);
}

static const char *kind_name(bh_kind_t k)
{
    return k == BH_KIND_EVENT ? "event" : k == BH_KIND_COMMAND ? "command" : "result";
}

/* ------------------------------------------------------------------------ */
/* Set-up, on the main thread                                               */

int bh__service_new(bh__service_t **out, const bh__config_t *cfg, const bh__loaded_t *plugin,
                    char *err, size_t errlen)
{
    bh__service_t *s = calloc(1, sizeof *s);
    char host[200];
    *out = NULL;
    if (!s) return snprintf(err, errlen, "out of memory"), BH_ENOMEM;
    uv_mutex_init(&s->mu);
    s->done_tail = &s->done;
    s->unsent_tail = &s->unsent;
    s->batch_tail = &s->batch;
    s->nacked_tail = &s->nacked;
    atomic_init(&s->stop_requested, false);
    atomic_init(&s->clean, true);
    bh__confirms_init(&s->confirms);
    bh__acks_init(&s->acks);
    s->cfg = cfg;
    s->plugin = plugin;
    if (bh__config_service(cfg, plugin->desc->name, plugin->desc->service, plugin->desc->config,
                           &s->conf, err, errlen)) {
        uv_mutex_destroy(&s->mu);
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
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Workers                                                                  */

static bh_handler_fn find_route(const bh_route_t *r, const char *key)
{
    for (; r && r->key; r++)
        if (!strcmp(r->key, key)) return r->handler;
    return NULL;
}

/* Decode the payload and call the handler: on a worker, or on the I/O
 * thread itself with workers = 0. */
static void run_handler(bh__service_t *s, bh__job_t *job)
{
    bh__delivery_t *d = job->d;
    if (bh__payload_decode(bh__api(), d->content_type, d->body, d->body_len, &job->payload,
                           job->err, sizeof job->err)) {
        job->outcome = 0;
    } else {
        bh__ctx_t ctx;
        job->msg.payload = job->payload;
        bh__ctx_init(&ctx, s->conf.service, s->conf.format, s->log, job, NULL);
        int o = job->handler(&ctx.pub, &job->msg, s->state);
        if (o != BH_DONE && o != BH_RETRY && o != BH_REJECT) {
            slog(s, BH_ALERT, job->msg.conversation_id,
                 "handler for %s '%s' returned %d, not a bh_outcome_t; treating it as BH_RETRY",
                 kind_name(job->msg.kind), d->routing_key, o);
            o = BH_RETRY;
        }
        job->outcome = (bh_outcome_t)o;
        if (o == BH_DONE && job->msg.kind == BH_KIND_COMMAND && !job->has_result)
            slog(s, BH_WARNING, job->msg.conversation_id,
                 "command '%s' was handled without a result", d->routing_key);
        bh_value_free(job->payload);
        job->payload = NULL;
        job->msg.payload = NULL;
    }
}

static void worker_run(void *ud, bh__job_t *job)
{
    bh__service_t *s = ud;
    run_handler(s, job);
    uv_mutex_lock(&s->mu);
    if (s->wake_closed) {
        /* The I/O thread gave up waiting (shutdown deadline): nobody can
         * settle this message any more; the broker will redeliver it. */
        uv_mutex_unlock(&s->mu);
        return;
    }
    *s->done_tail = job;
    s->done_tail = &job->next;
    s->done_n++;
    /* Waking the I/O thread is a context switch, often taken from the
     * broker. A finished job that only needs an ack can wait for the
     * collect timer (armed with every hand-over) or for half the prefetch
     * to finish, as its ack would anyway; what it published, a failure, or
     * a stop is handled at once. */
    if (!s->collect_armed || s->eager || job->outs || job->outcome != BH_DONE ||
        s->done_n >= s->half_prefetch)
        uv_async_send(&s->wake);
    uv_mutex_unlock(&s->mu);
}

static void job_free(bh__service_t *s, bh__job_t *job)
{
    /* outs were handed to the confirm tracker or the unsent list. */
    free(job->d);
    free(job);
    s->inflight--;
}

/* ------------------------------------------------------------------------ */
/* Broker plumbing (I/O thread)                                             */

static bool up(const bh__service_t *s) { return s->broker && !s->broken; }

static void broke(bh__service_t *s, const char *why)
{
    if (s->broken) return;
    s->broken = true;
    snprintf(s->broken_why, sizeof s->broken_why, "%s", why);
}

static void schedule_connect(bh__service_t *s);

static void poll_closed(uv_handle_t *h) { free(h); }

static void push_unsent_front(void *ud, void *item)
{
    /* confirms_reset hands items oldest first; collect them in order, then
     * splice them in front of the existing unsent list (see conn_lost). */
    bh__out_t ***tail = ud;
    bh__out_t *o = item;
    o->next = NULL;
    **tail = o;
    *tail = &o->next;
}

/* The connection died: forget its tags, keep every unconfirmed publish for
 * the next connection, drop prefetched jobs (the broker redelivers them). */
static void conn_lost(bh__service_t *s)
{
    bh__out_t *again = NULL, **again_tail = &again;
    slog(s, BH_ERROR, NULL, "connection lost: %s", s->broken_why);
    if (s->poll) {
        uv_poll_stop(s->poll);
        uv_close((uv_handle_t *)s->poll, poll_closed);
        s->poll = NULL;
    }
    uv_timer_stop(&s->pump);
    bh__broker_free(s->broker);
    s->broker = NULL;
    s->broken = false;
    s->blocked = false;
    s->room = 0; /* measured again on the next socket */
    s->acks_waiting = 0;
    uv_timer_stop(&s->ackt);
    s->gen++;
    bh__acks_reset(&s->acks);
    bh__confirms_reset(&s->confirms, push_unsent_front, &again_tail);
    if (again) {
        *again_tail = s->unsent;
        if (!s->unsent) s->unsent_tail = again_tail;
        s->unsent = again;
    }
    for (bh__job_t *j = s->workers ? bh__workers_take_queued(s->workers) : NULL, *n; j; j = n) {
        n = j->next;
        job_free(s, j);
    }
    if (s->st != S_DONE) {
        if (s->st == S_RUNNING) s->st = S_CONNECTING;
        schedule_connect(s);
    }
}

static void park(bh__service_t *s, bh__out_t *o)
{
    o->next = NULL;
    *s->unsent_tail = o;
    s->unsent_tail = &o->next;
}

/* A frame's worth of headers and properties on top of the body. */
static size_t wire_size(const bh__out_t *o) { return o->len + strlen(o->routing_key) + 512; }

/* Publish now; the caller checked that we may. */
static void publish_now(bh__service_t *s, bh__out_t *o)
{
    char err[300];
    s->room -= wire_size(o);
    o->copy_seq = s->confirms.next_seq; /* the seq bh__confirms_add will give it */
    o->returned = false;
    if (bh__broker_publish(s->broker, o, err, sizeof err)) {
        park(s, o);
        broke(s, err);
        return;
    }
    if (!bh__confirms_add(&s->confirms, o)) {
        /* Out of memory for tracking: it is sent but we can't know its fate;
         * treat the connection as unusable so everything is retried. */
        park(s, o);
        broke(s, "out of memory tracking publisher confirms");
    }
}

/* Never write more than the socket takes without blocking: a broker that
 * stopped reading must not freeze this thread (heartbeats need it). */
static bool fits(bh__service_t *s, size_t need)
{
    if (s->room >= need) return true;
    s->room = bh__broker_write_room(s->broker);
    if (s->room >= need) return true;
    s->want_write = true;
    return false;
}

static bool can_publish(bh__service_t *s, const bh__out_t *o)
{
    return up(s) && !s->blocked && bh__confirms_pending(&s->confirms) < CONFIRM_WINDOW &&
           fits(s, wire_size(o));
}

/* Publish, or wait behind what already waits (order is kept). */
static void send_out(bh__service_t *s, bh__out_t *o)
{
    if (s->unsent || !can_publish(s, o)) park(s, o);
    else publish_now(s, o);
}

static void flush_unsent(bh__service_t *s)
{
    while (s->unsent && can_publish(s, s->unsent)) {
        bh__out_t *o = s->unsent;
        if (!(s->unsent = o->next)) s->unsent_tail = &s->unsent;
        o->next = NULL;
        publish_now(s, o);
    }
}

static void reject(bh__service_t *s, uint64_t tag, bool requeue)
{
    char err[300];
    /* Reject first: a later multiple ack must not reach the broker before it. */
    if (up(s) && bh__broker_reject(s->broker, tag, requeue, err, sizeof err)) broke(s, err);
    bh__acks_finished(&s->acks, tag, false);
}

static void flush_acks(bh__service_t *s)
{
    char err[300];
    while (up(s)) {
        uint64_t single = 0, multi = bh__acks_next(&s->acks, &single);
        if (!multi && !single) break;
        if (bh__broker_ack(s->broker, multi ? multi : single, multi != 0, err, sizeof err))
            broke(s, err);
    }
    s->acks_waiting = 0;
    uv_timer_stop(&s->ackt);
}

static void on_ack_timer(uv_timer_t *t);

/* Ack now when enough has finished (or we are stopping), else shortly. */
static void flush_acks_soon(bh__service_t *s)
{
    if (!s->acks_waiting) return;
    if (s->st != S_RUNNING || s->acks_waiting >= s->half_prefetch) flush_acks(s);
    else if (!uv_is_active((uv_handle_t *)&s->ackt))
        uv_timer_start(&s->ackt, on_ack_timer, ACK_DELAY_MS, 0);
}

static void flush_logs(bh__service_t *s)
{
    char err[300];
    size_t dropped;
    bh__logrec_t *r = bh__logger_take(s->log, &dropped);
    if (dropped)
        slog(s, BH_WARNING, NULL, "%zu log records were dropped: the log queue was full", dropped);
    while (r && up(s) && !s->blocked && fits(s, r->len + 512)) {
        bh__logrec_t *next = r->next;
        s->room -= r->len + 512;
        if (bh__broker_publish_log(s->broker, r->key, r->body, r->len, err, sizeof err)) {
            broke(s, err);
            break;
        }
        free(r);
        r = next;
    }
    bh__logger_untake(s->log, r);
}

/* ------------------------------------------------------------------------ */
/* Settling messages (I/O thread)                                           */

static void retry_later(bh__service_t *s, bh__job_t *job);

static void settle_job(bh__service_t *s, bh__job_t *job)
{
    const bh__delivery_t *d = job->d;
    const char *conv = job->msg.conversation_id;
    if (job->gen != s->gen || !up(s)) {
        /* Delivered on a connection that is gone: its tag means nothing now,
         * and the broker has already requeued the message. */
        job_free(s, job);
        return;
    }
    switch ((int)job->outcome) {
    case BH_DONE:
        bh__acks_finished(&s->acks, d->tag, true);
        s->acks_waiting++;
        break;
    case BH_REJECT:
        slog(s, BH_WARNING, conv, "handler rejected %s '%s': dead-lettered",
             kind_name(job->msg.kind), d->routing_key);
        reject(s, d->tag, false);
        break;
    case BH_RETRY:
        if (s->conf.n_retry_delays) {
            retry_later(s, job);
            return;
        }
        if (!d->redelivered) {
            slog(s, BH_ALERT, conv, "handler failed on %s '%s'; requeueing it once",
                 kind_name(job->msg.kind), d->routing_key);
            reject(s, d->tag, true);
        } else {
            slog(s, BH_EMERGENCY, conv, "Giving up on %s", d->routing_key);
            reject(s, d->tag, false);
        }
        break;
    default: /* undecodable payload, logged by complete() */
        reject(s, d->tag, false);
        break;
    }
    job_free(s, job);
}

/* Delayed retry: park a copy in the retry queue for this attempt, and ack the
 * original once the copy is confirmed. After the last delay: dead-letter. */
static void retry_later(bh__service_t *s, bh__job_t *job)
{
    const bh__delivery_t *d = job->d;
    const char *conv = job->msg.conversation_id;
    size_t n = s->conf.n_retry_delays;
    const char *src =
        !strcmp(d->exchange, "events") ? s->topo.events_queue : s->topo.commands_queue;
    const char *q = d->attempt < n ? bh__topology_retry_queue(&s->topo, src, d->attempt) : NULL;
    bh__out_t *o = q ? bh__out_retry(d, q, d->attempt + 1) : NULL;
    if (!o) {
        slog(s, BH_EMERGENCY, conv, "Giving up on %s", d->routing_key);
        if (q) slog(s, BH_CRITICAL, conv, "(out of memory making its retry copy)");
        reject(s, d->tag, false);
        job_free(s, job);
        return;
    }
    slog(s, BH_ALERT, conv, "handler failed on %s '%s'; retry %u of %zu in %u ms",
         kind_name(job->msg.kind), d->routing_key, d->attempt + 1, n,
         s->conf.retry_delays[d->attempt]);
    job->outcome = BH_DONE; /* once the copy is safe, the original is done */
    o->job = job;
    job->pending++;
    send_out(s, o);
}

/* A worker finished a job: send what it published, settle when confirmed. */
static void complete(bh__service_t *s, bh__job_t *job)
{
    if (job->outcome == 0)
        slog(s, BH_EMERGENCY, job->msg.conversation_id,
             "cannot decode payload of '%s' (content type '%s'): %s; rejecting it",
             job->d->routing_key, job->d->content_type ? job->d->content_type : "", job->err);
    for (bh__out_t *o = job->outs, *n; o; o = n) {
        n = o->next;
        job->pending++;
        send_out(s, o);
    }
    job->outs = NULL;
    if (!job->pending) settle_job(s, job);
}

static void tick(bh__service_t *s, bool pump);

/* Refused publishes go out again, behind what already waits. */
static void on_renack(uv_timer_t *t)
{
    bh__service_t *s = t->data;
    if (s->nacked) {
        *s->unsent_tail = s->nacked;
        s->unsent_tail = s->nacked_tail;
        s->nacked = NULL;
        s->nacked_tail = &s->nacked;
    }
    tick(s, false);
}

static void on_confirm_item(void *ud, void *item, bool acked)
{
    bh__service_t *s = ud;
    bh__out_t *o = item;
    bh__job_t *job = o->job;
    if (!acked) {
        /* Published again after a pause (a broker refusing everything, e.g. a
         * queue at its length limit, must not make us spin); logged on the
         * first refusal and then every 10th. */
        if (o->nacks++ % 10 == 0)
            slog(s, BH_WARNING, o->conversation_id,
                 "broker refused (nack) %s '%s', publishing it again in %d ms (refusal %u)",
                 bh__exchange_name(o->exchange), o->routing_key, NACK_PAUSE_MS, o->nacks);
        o->next = NULL;
        *s->nacked_tail = o;
        s->nacked_tail = &o->next;
        if (!uv_is_active((uv_handle_t *)&s->renack))
            uv_timer_start(&s->renack, on_renack, NACK_PAUSE_MS, 0);
        return;
    }
    if (o->returned && job && job->outcome == BH_DONE && o->first_routing_key) {
        /* A delayed-retry copy the broker could not route (its retry queue is
         * gone) is confirmed all the same: the original must not be acked. */
        job->outcome = 0;
        snprintf(job->err, sizeof job->err, "its retry copy to '%s' was returned", o->routing_key);
        slog(s, BH_EMERGENCY, job->msg.conversation_id, "Giving up on %s: %s", job->d->routing_key,
             job->err);
    }
    free(o);
    if (job && --job->pending == 0) settle_job(s, job);
}

/* ------------------------------------------------------------------------ */
/* Broker callbacks (I/O thread, from bh__broker_poll)                      */

static void cb_delivery(void *ud, bh__delivery_t *d)
{
    bh__service_t *s = ud;
    char why[300];
    bh__envelope_t e = {d->exchange, d->conversation_id, d->reply_to, d->status};
    bh_kind_t kind;
    bh_handler_fn h = NULL;

    if (bh__acks_delivered(&s->acks, d->tag)) {
        broke(s, "delivery tags out of order");
        free(d);
        return;
    }
    if (s->st != S_RUNNING) {
        /* Arrived after we cancelled our consumers: give it back. */
        reject(s, d->tag, true);
        free(d);
        return;
    }
    if (d->first_routing_key && !*d->exchange) {
        /* A delayed retry back from its retry queue: dispatch it as what it was. */
        e.exchange = d->exchange = d->first_exchange ? d->first_exchange : "";
        d->routing_key = d->first_routing_key;
    }
    kind = bh__envelope_classify(&e, why, sizeof why);
    if (kind == BH_KIND_EVENT) {
        h = find_route(s->plugin->desc->events, d->routing_key);
    } else if (kind == BH_KIND_COMMAND) {
        size_t n = strlen(s->conf.service);
        if (!strncmp(d->routing_key, s->conf.service, n) && d->routing_key[n] == '.')
            h = find_route(s->plugin->desc->commands, d->routing_key + n + 1);
    } else if (kind == BH_KIND_RESULT) {
        h = find_route(s->plugin->desc->results, d->routing_key);
    }
    if (!kind || !h) {
        if (kind)
            snprintf(why, sizeof why, "no handler for %s '%s'", kind_name(kind), d->routing_key);
        slog(s, BH_EMERGENCY, d->conversation_id, "%s: rejecting message from '%s' with key '%s'",
             why, d->exchange, d->routing_key);
        reject(s, d->tag, false);
        free(d);
        return;
    }
    bh__job_t *job = calloc(1, sizeof *job);
    if (!job) {
        slog(s, BH_CRITICAL, d->conversation_id, "out of memory; requeueing '%s'", d->routing_key);
        reject(s, d->tag, true);
        free(d);
        return;
    }
    job->svc = s;
    job->d = d;
    job->gen = s->gen;
    job->handler = h;
    job->outs_tail = &job->outs;
    job->msg = (bh_msg_t){.kind = kind,
                          .routing_key = d->routing_key,
                          .conversation_id = d->conversation_id,
                          .correlation_id = d->correlation_id ? d->correlation_id : "",
                          .reply_to = d->reply_to ? d->reply_to : "",
                          .status = d->status ? d->status : "",
                          .content_type = d->content_type ? d->content_type : "",
                          .body = d->body,
                          .body_len = d->body_len,
                          .redelivered = d->redelivered};
    s->inflight++;
    /* Handed to the workers at the end of this poll, in one go: one lock and
     * as few wake-ups as the batch needs. */
    *s->batch_tail = job;
    s->batch_tail = &job->next;
    s->batch_n++;
}

static void on_collect(uv_timer_t *t);

static void complete(bh__service_t *s, bh__job_t *job);

/* workers = 0: the handlers run here, on the I/O thread, one after the
 * other. The plugin promised they never block; one that takes long anyway
 * holds up heartbeats, confirms and acks, so say so. */
static void run_inline(bh__service_t *s)
{
    bh__job_t *j = s->batch, *n;
    s->batch = NULL;
    s->batch_tail = &s->batch;
    s->batch_n = 0;
    uint64_t t0 = uv_hrtime(), t1;
    for (; j; j = n, t0 = t1) {
        n = j->next;
        j->next = NULL;
        run_handler(s, j);
        t1 = uv_hrtime(); /* one clock read per message (the next one counts from here) */
        uint64_t ms = (t1 - t0) / 1000000u;
        if (ms >= INLINE_SLOW_MS)
            slog(s, BH_WARNING, j->msg.conversation_id,
                 "handler for %s '%s' ran %llu ms on the I/O thread (workers = 0), holding up "
                 "heartbeats, confirms and acks; give this service workers",
                 kind_name(j->msg.kind), j->d->routing_key, (unsigned long long)ms);
        complete(s, j);
    }
}

static void flush_batch(bh__service_t *s)
{
    if (!s->batch) return;
    if (!s->conf.workers) {
        run_inline(s);
        return;
    }
    /* Armed before the hand-over, so that no job finishes unseen. */
    if (!uv_is_active((uv_handle_t *)&s->collt)) {
        uv_mutex_lock(&s->mu);
        s->collect_armed = true;
        uv_mutex_unlock(&s->mu);
        uv_timer_start(&s->collt, on_collect, ACK_DELAY_MS, 0);
    }
    bh__workers_push_list(s->workers, s->batch, s->batch_tail, s->batch_n);
    s->batch = NULL;
    s->batch_tail = &s->batch;
    s->batch_n = 0;
}

static void cb_confirm(void *ud, uint64_t tag, bool multiple, bool acked)
{
    bh__service_t *s = ud;
    bh__confirms_settle(&s->confirms, tag, multiple, on_confirm_item, s, acked);
}

static void cb_returned(void *ud, const char *exchange, const char *key, int code, const char *text,
                        const char *conv, uint64_t copy_seq)
{
    bh__service_t *s = ud;
    bh__out_t *o = copy_seq ? bh__confirms_get(&s->confirms, copy_seq) : NULL;
    if (o && o->first_routing_key) o->returned = true;
    slog(s, BH_ERROR, conv,
         "the broker returned a message published to '%s' with key '%s': %d %s "
         "(no queue is bound for it; is the service running?)",
         exchange, key, code, text);
}

static void cb_cancelled(void *ud, const char *tag)
{
    bh__service_t *s = ud;
    char why[300];
    snprintf(why, sizeof why, "the broker cancelled consumer %s (queue deleted or node down)", tag);
    broke(s, why);
}

static void cb_blocked(void *ud, const char *reason)
{
    bh__service_t *s = ud;
    s->blocked = reason != NULL;
    if (reason)
        slog(s, BH_WARNING, NULL, "broker blocked publishing (%s): holding publishes", reason);
    else slog(s, BH_NOTICE, NULL, "broker unblocked publishing: resuming");
}

static const bh__broker_cbs_t broker_cbs = {cb_delivery, cb_confirm, cb_returned, cb_cancelled,
                                            cb_blocked};

/* ------------------------------------------------------------------------ */
/* The loop (I/O thread)                                                    */

static void finish(bh__service_t *s);

static void check_drained(bh__service_t *s)
{
    if (s->st != S_DRAINING || s->inflight || s->unsent || s->nacked ||
        bh__confirms_pending(&s->confirms))
        return;
    flush_acks(s);
    finish(s);
}

/* Run after every libuv callback: drain the library, send what waits, and
 * reconnect if a call failed meanwhile. */
static void on_drain(uv_timer_t *t);
static void collect(bh__service_t *s, bool disarm);

static void tick(bh__service_t *s, bool pump)
{
    char err[512];
    s->want_write = false;
    collect(s, false); /* we are awake anyway: take what finished (and wake-ups) */
    for (int round = 0; round < 16; round++) {
        if (up(s) && bh__broker_poll(s->broker, pump, &broker_cbs, s, err, sizeof err))
            broke(s, err);
        flush_batch(s);
        pump = false;
        flush_unsent(s);
        flush_acks_soon(s);
        flush_logs(s);
        if (s->broken) conn_lost(s);
        if (!up(s) || !bh__broker_buffered(s->broker)) break;
    }
    /* Something waits for room in the socket: look again shortly. (Not
     * UV_WRITABLE: the kernel says writable below a fill level of its own,
     * which need not leave the room we ask for, and we would spin.) */
    if (s->want_write && s->st != S_DONE && !uv_is_active((uv_handle_t *)&s->drain))
        uv_timer_start(&s->drain, on_drain, DRAIN_CHECK_MS, 0);
    check_drained(s);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    bh__service_t *s = h->data;
    tick(s, false); /* the library usually knows the real reason first */
    if (status < 0 && s->poll == h && !s->broken && s->broker) {
        char why[200];
        snprintf(why, sizeof why, "socket error: %s", uv_strerror(status));
        broke(s, why);
        tick(s, false);
    }
}

static void on_pump(uv_timer_t *t) { tick(t->data, true); }

static void on_drain(uv_timer_t *t) { tick(t->data, false); }

static void on_ack_timer(uv_timer_t *t)
{
    flush_acks(t->data);
    tick(t->data, false);
}

static void begin_drain(bh__service_t *s);

/* Take what the workers finished. `disarm`: from the collect timer, after
 * which workers must wake us again. */
static void collect(bh__service_t *s, bool disarm)
{
    uv_mutex_lock(&s->mu);
    bh__job_t *list = s->done;
    s->done = NULL;
    s->done_tail = &s->done;
    s->done_n = 0;
    if (disarm) s->collect_armed = false;
    uv_mutex_unlock(&s->mu);
    for (bh__job_t *j = list, *n; j; j = n) {
        n = j->next;
        j->next = NULL;
        complete(s, j);
    }
}

/* Shortly after a hand-over: take what finished and make sure no job waits
 * behind a handler that turned out long while a thread sleeps. */
static void on_collect(uv_timer_t *t)
{
    bh__service_t *s = t->data;
    bool waiting = bh__workers_nudge(s->workers);
    collect(s, !waiting);
    if (waiting) uv_timer_start(&s->collt, on_collect, ACK_DELAY_MS, 0);
    tick(s, false);
}

static void on_wake(uv_async_t *a)
{
    bh__service_t *s = a->data;
    if (atomic_load(&s->stop_requested) && (s->st == S_RUNNING || s->st == S_CONNECTING))
        begin_drain(s);
    tick(s, false);
}

static void on_health(uv_timer_t *t)
{
    bh__service_t *s = t->data;
    static const char *const extra[] = {"healthcheck", "ok", NULL};
    bh__log_extra(s->log, BH_NOTICE, NULL, extra, "healthcheck: ok");
    tick(s, false);
}

static int connect_once(bh__service_t *s, const char *url, char *err, size_t errlen)
{
    if (bh__broker_connect(&s->broker, url, s->cfg->heartbeat, s->conn_name, err, errlen) ||
        bh__broker_declare(s->broker, &s->topo, err, errlen) ||
        (s->st != S_DRAINING &&
         bh__broker_consume(s->broker, &s->topo, s->conf.prefetch, err, errlen)))
        return -1;
    return 0;
}

static void on_retry(uv_timer_t *t)
{
    bh__service_t *s = t->data;
    char err[512], shown[512];
    const char *url = s->cfg->urls[s->url_index % s->cfg->n_urls];
    bh__broker_redact_url(url, shown, sizeof shown);
    if (connect_once(s, url, err, sizeof err)) {
        bh__broker_free(s->broker);
        s->broker = NULL;
        s->attempts++;
        s->url_index++;
        slog(s, BH_ERROR, NULL, "cannot use broker %s: %s (attempt %u)", shown, err, s->attempts);
        schedule_connect(s);
        tick(s, false);
        return;
    }
    if (s->connected_once)
        slog(s, BH_NOTICE, NULL, "reconnected to %s after %u failed attempt(s) (reconnect #%u)",
             shown, s->attempts, ++s->reconnects);
    else slog(s, BH_NOTICE, NULL, "connected to %s", shown);
    s->connected_once = true;
    s->attempts = 0;
    if (s->st == S_CONNECTING) s->st = S_RUNNING;
    s->poll = malloc(sizeof *s->poll);
    if (!s->poll || uv_poll_init_socket(&s->loop, s->poll, bh__broker_fd(s->broker))) {
        free(s->poll);
        s->poll = NULL;
        broke(s, "cannot watch the socket");
    } else {
        s->poll->data = s;
        uv_poll_start(s->poll, UV_READABLE, on_poll);
    }
    /* Pump often enough for heartbeat/2 and for a timely confirm flush. */
    uint64_t every = s->cfg->heartbeat > 0 ? (uint64_t)s->cfg->heartbeat * 250u : 1000u;
    if (every > 1000u) every = 1000u;
    uv_timer_start(&s->pump, on_pump, every, every);
    tick(s, false);
}

static void schedule_connect(bh__service_t *s)
{
    uint64_t delay = 0;
    if (s->attempts) {
        unsigned shift = s->attempts > 8 ? 8 : s->attempts - 1;
        uint64_t base = (uint64_t)BACKOFF_MIN_MS << shift;
        if (base > BACKOFF_MAX_MS) base = BACKOFF_MAX_MS;
        uint32_t r;
        uv_random(NULL, NULL, &r, sizeof r, 0, NULL);
        delay = base / 2 + r % (base / 2 + 1); /* jitter: hosts don't reconnect in lockstep */
        if (s->attempts % s->cfg->n_urls == 0)
            slog(s, BH_WARNING, NULL, "all %zu broker URL(s) failed; next try in %llu ms",
                 s->cfg->n_urls, (unsigned long long)delay);
    }
    uv_timer_start(&s->retry, on_retry, delay, 0);
}

static void on_deadline(uv_timer_t *t)
{
    bh__service_t *s = t->data;
    bh__workers_stats_t ws = {0};
    if (s->workers) bh__workers_stats(s->workers, &ws);
    slog(s, BH_ERROR, NULL,
         "shutdown deadline reached with %zu message(s) in flight (%zu handler(s) running, %zu "
         "publish(es) unconfirmed): they stay unacked and the broker will redeliver them",
         s->inflight, ws.running, bh__confirms_pending(&s->confirms));
    atomic_store(&s->clean, false);
    finish(s);
}

static void begin_drain(bh__service_t *s)
{
    char err[300];
    slog(s, BH_WARNING, NULL, "Shutting down");
    bool was_running = s->st == S_RUNNING;
    s->st = S_DRAINING;
    uv_mutex_lock(&s->mu);
    s->eager = true;
    uv_mutex_unlock(&s->mu);
    if (was_running && up(s) && bh__broker_cancel_all(s->broker, err, sizeof err)) broke(s, err);
    /* Prefetched but not started: give them back now, for other workers. */
    for (bh__job_t *j = bh__workers_take_queued(s->workers), *n; j; j = n) {
        n = j->next;
        if (j->gen == s->gen) reject(s, j->d->tag, true);
        job_free(s, j);
    }
    bh__workers_stop(s->workers);
    uv_timer_start(&s->deadline, on_deadline, (uint64_t)s->cfg->shutdown_timeout, 0);
}

static void close_cb(uv_handle_t *h) { (void)h; }

static void finish(bh__service_t *s)
{
    if (s->st == S_DONE) return;
    s->st = S_DONE;
    flush_logs(s);
    uv_mutex_lock(&s->mu);
    s->wake_closed = true;
    uv_mutex_unlock(&s->mu);
    bh__logger_attach(s->log, NULL); /* later logs: stderr only */
    if (s->poll) {
        uv_poll_stop(s->poll);
        uv_close((uv_handle_t *)s->poll, poll_closed);
        s->poll = NULL;
    }
    if (s->broker) {
        if (s->broken) bh__broker_free(s->broker);
        else bh__broker_close(s->broker);
        s->broker = NULL;
    }
    uv_close((uv_handle_t *)&s->wake, close_cb);
    uv_close((uv_handle_t *)&s->pump, close_cb);
    uv_close((uv_handle_t *)&s->health, close_cb);
    uv_close((uv_handle_t *)&s->retry, close_cb);
    uv_close((uv_handle_t *)&s->deadline, close_cb);
    uv_close((uv_handle_t *)&s->renack, close_cb);
    uv_close((uv_handle_t *)&s->drain, close_cb);
    uv_close((uv_handle_t *)&s->ackt, close_cb);
    uv_close((uv_handle_t *)&s->collt, close_cb);
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
        slog(s, BH_WARNING, NULL,
             "cannot run the workers under SCHED_BATCH (%s): they run as normal threads, which "
             "costs more context switches with cheap handlers; worker_scheduling = normal "
             "asks for that without this warning",
             strerror(perr));
    uv_loop_init(&s->loop);
    uv_async_init(&s->loop, &s->wake, on_wake);
    uv_timer_init(&s->loop, &s->pump);
    uv_timer_init(&s->loop, &s->health);
    uv_timer_init(&s->loop, &s->retry);
    uv_timer_init(&s->loop, &s->deadline);
    uv_timer_init(&s->loop, &s->renack);
    uv_timer_init(&s->loop, &s->drain);
    uv_timer_init(&s->loop, &s->ackt);
    uv_timer_init(&s->loop, &s->collt);
    s->wake.data = s->pump.data = s->health.data = s->retry.data = s->deadline.data = s;
    s->renack.data = s->drain.data = s->ackt.data = s->collt.data = s;
    bh__logger_attach(s->log, &s->wake);
    if (s->cfg->healthcheck_interval > 0) {
        uint64_t every = (uint64_t)s->cfg->healthcheck_interval * 1000u;
        uv_timer_start(&s->health, on_health, every, every);
    }
    slog(s, BH_INFO, NULL, "starting service '%s' from plugin %s %s: %d workers, prefetch %d, %s",
         s->conf.service, s->plugin->desc->name, s->plugin->desc->version, s->conf.workers,
         s->conf.prefetch, bh__format_content_type(s->conf.format));
    schedule_connect(s);
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
    uv_mutex_lock(&s->mu);
    if (s->io_started && !s->wake_closed) uv_async_send(&s->wake);
    uv_mutex_unlock(&s->mu);
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
    /* Completions that arrived after the loop ended are stale: free them. */
    for (bh__job_t *j = s->done, *n; j; j = n) {
        n = j->next;
        for (bh__out_t *o = j->outs, *on; o; o = on) {
            on = o->next;
            free(o);
        }
        job_free(s, j);
    }
    s->done = NULL;
    return atomic_load(&s->clean);
}

static void free_out(void *ud, void *item)
{
    (void)ud;
    free(item);
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
    bh__confirms_reset(&s->confirms, free_out, NULL);
    bh__confirms_free(&s->confirms);
    bh__acks_free(&s->acks);
    for (bh__out_t *lists[2] = {s->unsent, s->nacked}, **l = lists; l < lists + 2; l++)
        for (bh__out_t *o = *l, *n; o; o = n) {
            n = o->next;
            free(o);
        }
    bh__topology_free(&s->topo);
    bh__logger_free(s->log);
    bh__svc_conf_free(&s->conf);
    uv_mutex_destroy(&s->mu);
    free(s);
    return true;
}
