/* run.c -- handler calls, the hand-over to the workers, inline mode. */
#include "run.h"

#include <uv.h>

#include "api.h"
#include "crash.h"
#include "payload.h"
#include "schema.h"
#include "span.h"
#include "value.h"

bh__run_t bh__run_make(const char *service, const bh__loaded_t *plugin, bh_format_t format,
                       bh__logger_t *log, bh__guard_t *guard, bh__otlp_t *otlp)
{
    return (bh__run_t){.service = service,
                       .plugin = plugin,
                       .format = format,
                       .log = log,
                       .guard = guard,
                       .otlp = otlp};
}

/* The payload against its route's declared schema. A command that does not
 * match is answered with the standard error result (outcome BH_DONE); an * event or a result is dead-lettered (outcome 0). Its handler never runs.
 * Which messages are checked: bh__schema_applies. */
static bool invalid_payload(const bh__run_t *r, bh__ctx_t *ctx, bh__job_t *job)
{
    char field[256], expected[256];
    const char *key = job->d->routing_key, *cid = job->msg.conversation_id;
    if (!bh__schema_applies(job->msg.kind, job->msg.status, job->ends_request)) return false;
    if (!job->schema || !bh__schema_check(job->schema, job->payload, field, sizeof field, expected,
                                          sizeof expected))
        return false;
    job->invalid_payload = true;
    if (job->msg.kind != BH_KIND_COMMAND) {
        bh__log(r->log, BH_ERROR, cid,
                "%s '%s' has an invalid payload: field \"%s\": expected %s; dead-lettering it",
                bh__kind_name(job->msg.kind), key, field, expected);
        job->outcome = 0;
        return true;
    }
    int rc = bh__schema_answer(&ctx->pub, field, expected);
    if (rc) {
        bh__log(r->log, BH_CRITICAL, cid,
                "command '%s' has an invalid payload (field \"%s\"), and its error result "
                "cannot be made: %s; requeueing it",
                key, field, bh_strerror(rc));
        job->outcome = BH_RETRY;
        return true;
    }
    bh__log(r->log, BH_WARNING, cid,
            "command '%s' has an invalid payload: field \"%s\": expected %s; answered with an "
            "error result",
            key, field, expected);
    job->outcome = BH_DONE;
    return true;
}

/* bh__run_one with the clock already read (t0: now, uv_hrtime). */
static void run_at(const bh__run_t *r, bh__job_t *job, uint64_t t0)
{
    bh__delivery_t *d = job->d;
    /* In the crash journal from the decoding on: a crash there is the
     * message's too. */
    bh__journal_t *jr = r->guard && !job->origin ? r->guard->journal : NULL;
    bh__metrics_t *m = r->settle ? r->settle->m : NULL;
    if (jr && !job->ident) job->ident = bh__journal_ident(d, job->attempt);
    bh__journal_begin(jr, job->ident, job);
    bh__metrics_running(m, 1);
    job->start_ns = t0;
    bh__span_begin(job, r->otlp, r->service, r->log);
    if (bh__payload_decode(bh__api(), d->content_type, d->body, d->body_len, &job->payload,
                           job->err, sizeof job->err)) {
        bh__journal_end(jr);
        job->outcome = 0;
        job->undecodable = true;
        job->end_ns = uv_hrtime();
        bh__metrics_running(m, -1);
        bh__span_end(job);
        return;
    }
    bh__ctx_t ctx;
    job->msg.payload = job->payload;
    bh__ctx_init(&ctx, r->service, r->format, r->log, job, job->tick ? r->conf : NULL);
    if (r->max_message) ctx.max_message = r->max_message;
    ctx.reqs = r->reqs;
    const bh__loaded_t *p = r->plugin;
    ctx.plugin = p ? p->desc : NULL;
    bh__crash_enter(&(bh__crash_at_t){BH__CRASH_HANDLER, r->service, p ? p->desc->name : NULL,
                                      p ? p->path : NULL, d->routing_key, job->msg.conversation_id,
                                      d->tag, r->guard ? r->guard->crash_fd : -1});
    int o = BH_DONE;
    bool checked_out = !job->tick && invalid_payload(r, &ctx, job);
    if (checked_out) o = job->outcome;
    else if (job->tick) job->tick(&ctx.pub, r->state);
    else o = job->handler(&ctx.pub, &job->msg, r->state);
    job->end_ns = uv_hrtime();
    bh__metrics_running(m, -1);
    bh__crash_leave();
    bh__journal_end(jr);
    if (checked_out) {
        bh_value_free(job->payload);
        job->payload = NULL;
        job->msg.payload = NULL;
        bh__span_end(job);
        return;
    }
    if (o != BH_DONE && o != BH_RETRY && o != BH_REJECT) {
        bh__log(r->log, BH_ALERT, job->msg.conversation_id,
                "handler for %s '%s' returned %d, not a bh_outcome_t; treating it as BH_RETRY",
                bh__kind_name(job->msg.kind), d->routing_key, o);
        o = BH_RETRY;
    }
    job->outcome = (bh_outcome_t)o;
    if (o == BH_DONE && job->msg.kind == BH_KIND_COMMAND && !job->has_result)
        bh__log(r->log, BH_WARNING, job->msg.conversation_id,
                "command '%s' was handled without a result", d->routing_key);
    bh_value_free(job->payload);
    job->payload = NULL;
    job->msg.payload = NULL;
    bh__span_end(job);
}

void bh__run_one(const bh__run_t *r, bh__job_t *job) { run_at(r, job, uv_hrtime()); }

/* A job a handler finished off the I/O thread, back to it. */
static void hand_back(bh__run_t *r, bh__job_t *job, bool urgent)
{
    /* Refused after the shutdown deadline: nobody can settle the message
     * any more, and the broker will redeliver it. */
    if (!bh__cq_push(r->cq, job, urgent || job->outs || job->outcome != BH_DONE || job->origin) &&
        !job->origin) /* an origin job stays on its list, for the shutdown (origin.h) */
        bh__job_free(job);
}

void bh__run_worker(void *ud, bh__job_t *job)
{
    bh__run_t *r = ud;
    bh__run_one(r, job);
    hand_back(r, job, false);
}

void bh__run_submit(bh__run_t *r, bh__job_t *job)
{
    job->next = NULL;
    *r->batch_tail = job;
    r->batch_tail = &job->next;
    r->batch_n++;
}

void bh__run_add(bh__run_t *r, bh__job_t *job)
{
    if (job->msg.kind == BH_KIND_RESULT && r->reqs && bh__requests_match(r->reqs, job)) {
        bh__metrics_settled(job->mroute, BH__V_DONE); /* a late answer: logged */
        bh__acker_done(r->settle->acks, job->d->tag);
        bh__settle_drop(r->settle, job);
        return;
    }
    if (r->guard && !bh__guard_admit(r->guard, job)) {
        bh__metrics_settled(job->mroute, BH__V_DEAD_LETTERED);
        bh__acker_reject(r->settle->acks, job->d->tag, false);
        bh__settle_drop(r->settle, job);
        return;
    }
    bh__run_submit(r, job);
}

/* A handler returned: its counts go once it is settled where it came from. */
static void complete(bh__run_t *r, bh__job_t *j)
{
    if (r->relay && j->end_ns > j->start_ns)
        r->ewma_ns = bh__workers_smooth(r->ewma_ns, j->end_ns - j->start_ns);
    if (r->guard && !j->origin && j->gen == r->settle->conn->gen) bh__guard_done(r->guard, j);
    bh__settle_complete(r->settle, j);
}

/* The plugin promised its handlers never block; one that takes long anyway
 * holds up heartbeats, confirms and acks, so say so. */
static void run_inline(bh__run_t *r, bh__job_t *j)
{
    uint64_t t0 = uv_hrtime(), t1;
    for (bh__job_t *n; j; j = n, t0 = t1) {
        n = j->next;
        j->next = NULL;
        bh__run_one(r, j);
        t1 = uv_hrtime(); /* one clock read per message */
        uint64_t ms = (t1 - t0) / 1000000u;
        if (ms >= BH__INLINE_SLOW_MS)
            bh__log(r->log, BH_WARNING, j->msg.conversation_id,
                    "handler for %s '%s' ran %llu ms on the I/O thread (workers = 0), holding up "
                    "heartbeats, confirms and acks; give this service workers",
                    bh__kind_name(j->msg.kind), j->d->routing_key, (unsigned long long)ms);
        complete(r, j);
    }
}

static void hand_over(bh__run_t *r)
{
    bh__job_t *batch = r->batch, **tail = r->batch_tail;
    size_t n = r->batch_n;
    if (!batch || r->hold) return;
    r->batch = NULL;
    r->batch_tail = &r->batch;
    r->batch_n = 0;
    if (r->inline_) {
        run_inline(r, batch);
        return;
    }
    bh__cq_arm(r->cq); /* before the hand-over, so that no job finishes unseen */
    bh__workers_push_list(r->workers, batch, tail, n);
}

void bh__run_flush(bh__run_t *r)
{
    if (!r->relay) hand_over(r);
}

/* A job waits that the leader may run itself. */
static bool cheap_job_waits(const bh__run_t *r)
{
    return r->batch && !r->hold && r->ewma_ns < BH__RELAY_CHEAP_NS;
}

int bh__run_lead(bh__run_t *r)
{
    int ran = 0;
    /* The burst runs here on one worker's slot (workers.h). */
    bool slot = cheap_job_waits(r) && bh__workers_borrow(r->workers);
    while (slot && cheap_job_waits(r)) {
        /* From bh__relay_begin on, the standby may lead: the job is taken
         * off the batch first, and nothing shared is touched until
         * bh__relay_end says the lead is still here. */
        bh__job_t *j = r->batch;
        if (!(r->batch = j->next)) r->batch_tail = &r->batch;
        r->batch_n--;
        uint64_t t = uv_hrtime();            /* the relay's and the handler's start */
        if (!bh__relay_begin(r->relay, t)) { /* no standby: back in front */
            if (!(j->next = r->batch)) r->batch_tail = &j->next;
            r->batch = j;
            r->batch_n++;
            break;
        }
        j->next = NULL;
        run_at(r, j, t);
        if (!bh__relay_end(r->relay)) { /* the standby leads now; the slot stays with j */
            hand_back(r, j, true);
            bh__workers_repay(r->workers);
            bh__relay_stray_done(r->relay);
            return -1;
        }
        complete(r, j);
        ran++;
    }
    bh__relay_idle(r->relay);
    if (slot) bh__workers_repay(r->workers);
    hand_over(r);
    return ran;
}

void bh__run_hold(bh__run_t *r)
{
    bh__job_t *taken = bh__workers_take_queued(r->workers);
    if (taken) { /* in front of the batch; the tail moves only if it was empty */
        bh__job_t **end = &taken;
        size_t n = 0;
        for (; *end; end = &(*end)->next) n++;
        if (!(*end = r->batch)) r->batch_tail = end;
        r->batch = taken;
        r->batch_n += n;
    }
    r->hold = true;
}

void bh__run_give_back(bh__run_t *r, bool requeue)
{
    bool held = r->hold;
    bh__run_hold(r); /* the held ones go back too */
    bh__job_t *all = r->batch;
    r->batch = NULL;
    r->batch_tail = &r->batch;
    r->batch_n = 0;
    r->hold = held;
    for (bh__job_t *j = all, *n; j; j = n) {
        n = j->next;
        if (requeue && j->gen == r->settle->conn->gen)
            bh__acker_reject(r->settle->acks, j->d->tag, true);
        bh__settle_drop(r->settle, j);
    }
}

void bh__run_lost(bh__run_t *r)
{
    if (r->guard) bh__guard_lost(r->guard, r->settle->conn->why);
    bh__run_give_back(r, false);
}

void bh__run_collect(bh__run_t *r, bool disarm)
{
    for (bh__job_t *j = bh__cq_take_all(r->cq, disarm), *n; j; j = n) {
        n = j->next;
        j->next = NULL;
        complete(r, j);
    }
}

void bh__run_drop_stale(bh__run_t *r)
{
    for (bh__job_t *j = bh__cq_take_all(r->cq, false), *n; j; j = n) {
        n = j->next;
        bh__settle_drop(r->settle, j);
    }
}
