/* settle.c -- publish what a handler published, then settle its delivery. */
#include "settle.h"

#include <stdio.h>
#include <stdlib.h>

#include "span.h"

bh__settle_t bh__settle_make(bh__conn_t *conn, bh__outbox_t *out, bh__acker_t *acks,
                             bh__retry_t *retry, bh__logger_t *log, bh__metrics_t *m)
{
    return (bh__settle_t){
        .conn = conn, .out = out, .acks = acks, .retry = retry, .log = log, .m = m};
}

void bh__settle_drop(bh__settle_t *st, bh__job_t *job)
{
    if (job->origin) st->origin_end(st->origin_ud, job, false);
    bh__job_free(job);
    st->inflight--;
}

static void settle(bh__settle_t *st, bh__job_t *job)
{
    const bh__delivery_t *d = job->d;
    bh__out_t *copy;
    bh__verdict_t v = BH__V_DEAD_LETTERED;
    if (job->origin) {
        st->origin_end(st->origin_ud, job, true); /* no delivery to settle */
        bh__settle_drop(st, job);
        return;
    }
    if (job->gen != st->conn->gen || !bh__conn_ready(st->conn)) {
        bh__settle_drop(st, job); /* not settled: the broker hands it out again */
        return;
    }
    switch ((int)job->outcome) {
    case BH_DONE:
        bh__acker_done(st->acks, d->tag);
        v = job->invalid_payload ? BH__V_INVALID_PAYLOAD : job->retried ? BH__V_RETRY : BH__V_DONE;
        break;
    case BH_REJECT:
        bh__log(st->log, BH_WARNING, job->msg.conversation_id,
                "handler rejected %s '%s': dead-lettered", bh__kind_name(job->msg.kind),
                d->routing_key);
        bh__acker_reject(st->acks, d->tag, false);
        v = BH__V_REJECT;
        break;
    case BH_RETRY:
        switch (bh__retry_decide(st->retry, job, &copy)) {
        case BH__RETRY_REQUEUE:
            bh__acker_reject(st->acks, d->tag, true);
            v = BH__V_RETRY;
            break;
        case BH__RETRY_GIVE_UP:
            bh__acker_reject(st->acks, d->tag, false);
            break;
        case BH__RETRY_COPY:
            job->outcome = BH_DONE; /* once the copy is safe, the original is done */
            job->retried = true;
            copy->job = job;
            job->pending++;
            bh__outbox_send(st->out, copy);
            return;
        }
        break;
    default: /* undecodable, invalid, or what it published cannot be sent: logged already */
        bh__acker_reject(st->acks, d->tag, false);
        if (job->undecodable) v = BH__V_UNDECODABLE;
        if (job->invalid_payload) v = BH__V_INVALID_PAYLOAD;
        break;
    }
    bh__metrics_settled(job->mroute, v);
    bh__settle_drop(st, job);
}

void bh__settle_send(bh__settle_t *st, bh__job_t *job)
{
    for (bh__out_t *o = job->outs, *n; o; o = n) {
        n = o->next;
        job->pending++;
        if (o->tracked && st->reqs) bh__requests_sent(st->reqs, o);
        bh__outbox_send(st->out, o);
    }
    job->outs = NULL;
}

void bh__settle_origin(bh__settle_t *st, bh__job_t *job)
{
    st->inflight++;
    bh__settle_send(st, job);
    if (!job->pending) settle(st, job);
}

void bh__settle_complete(bh__settle_t *st, bh__job_t *job)
{
    st->handled++;
    bh__metrics_ran(job->mroute, job->delivered_ns, job->start_ns, job->end_ns);
    if (job->outcome == 0 && !job->invalid_payload) /* an invalid one is logged by run.c */
        bh__log(st->log, BH_EMERGENCY, job->msg.conversation_id,
                "cannot decode payload of '%s' (content type '%s'): %s; rejecting it",
                job->d->routing_key, job->d->content_type ? job->d->content_type : "", job->err);
    bh__settle_send(st, job);
    if (!job->pending) settle(st, job);
}

void bh__settle_failed(void *ud, bh__out_t *o, const char *why)
{
    bh__settle_t *st = ud;
    bh__job_t *job = o->job;
    if (job && job->outcome != 0) {
        job->outcome = 0; /* dead-lettered once everything else it published is out */
        snprintf(job->err, sizeof job->err, "what its handler published to '%s' cannot be sent: %s",
                 o->routing_key, why);
        bh__log(st->log, BH_EMERGENCY, job->msg.conversation_id, "Giving up on %s: %s",
                job->d->routing_key, job->err);
    }
    bh__span_out_done(o, why);
    free(o);
    if (job && --job->pending == 0) settle(st, job);
}

void bh__settle_confirmed(void *ud, bh__out_t *o)
{
    bh__settle_t *st = ud;
    bh__job_t *job = o->job;
    if (o->returned && o->tracked) {
        if (st->reqs) bh__requests_unroutable(st->reqs, o->correlation_id);
    } else if (o->returned && o->id && job && job->outcome == BH_DONE) {
        /* A delayed-retry copy the broker could not route (its retry queue is
         * gone) is confirmed all the same: the original must not be acked. */
        job->outcome = 0;
        snprintf(job->err, sizeof job->err, "its retry copy to '%s' was returned", o->routing_key);
        bh__log(st->log, BH_EMERGENCY, job->msg.conversation_id, "Giving up on %s: %s",
                job->d->routing_key, job->err);
    }
    bh__span_out_done(o, NULL);
    free(o);
    if (job && --job->pending == 0) settle(st, job);
}
