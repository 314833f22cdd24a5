/* retry.c -- requeue once, or delayed retry through retry queues. */
#include "retry.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "span.h"

unsigned bh__retry_restore(bh__delivery_t *d)
{
    const char *key = bh__hdr_str(d->headers, d->n_headers, BH__H_ROUTING_KEY);
    const bh__hdr_t *a = bh__hdr_find(d->headers, d->n_headers, BH__H_ATTEMPT);
    if (key && !*d->exchange) {
        const char *ex = bh__hdr_str(d->headers, d->n_headers, BH__H_EXCHANGE);
        d->exchange = ex ? ex : "";
        d->routing_key = key;
    }
    if (!a || a->kind != BH__HDR_INT || a->num < 0) return 0;
    return a->num > UINT32_MAX ? UINT32_MAX : (unsigned)a->num;
}

uint64_t bh__retry_copy_id(const bh__hdr_t *h, size_t n)
{
    const bh__hdr_t *x = bh__hdr_find(h, n, BH__H_COPY);
    return x && x->kind == BH__HDR_INT && x->num > 0 ? (uint64_t)x->num : 0;
}

/* A header of the delivery that its copy carries as it is: not the
 * envelope's (given apart), not the host's own or the trace's (set anew),
 * not one the broker adds when it dead-letters or redelivers. */
static bool carried(const char *key)
{
    static const char *const apart[] = {"conversation_id", "status",         "x-delivery-count",
                                        BH__H_TRACEPARENT, BH__H_TRACESTATE, BH__H_MT_ACTIVITY,
                                        BH__H_DIAGNOSTIC};
    for (size_t i = 0; i < sizeof apart / sizeof *apart; i++)
        if (!strcasecmp(key, apart[i])) return false;
    return strncasecmp(key, "x-bushost-", 10) && strncasecmp(key, "x-death", 7) &&
           strncasecmp(key, "x-first-death-", 14) && strncasecmp(key, "x-last-death-", 13);
}

/* The message as it was, published on `exchange` with `key` (a retry
 * queue, through the default exchange), with the host's headers and the
 * sender's own. */
static bh__out_t *copy_of(bh__retry_t *r, const bh__job_t *job, int exchange, const char *key)
{
    const bh__delivery_t *d = job->d;
    const char *first = !strcmp(d->exchange, "events") ? "events" : "commands";
    uint64_t id = ++r->last_id;
    bh__hdr_t *h = calloc(8 + d->n_headers, sizeof *h);
    if (!h) return NULL;
    bh__hdr_t own[4] = {
        {.key = BH__H_ATTEMPT, .kind = BH__HDR_INT, .num = job->attempt + 1},
        {.key = BH__H_EXCHANGE, .kind = BH__HDR_STRING, .str = first, .len = strlen(first)},
        {.key = BH__H_ROUTING_KEY,
         .kind = BH__HDR_STRING,
         .str = d->routing_key,
         .len = strlen(d->routing_key)},
        {.key = BH__H_COPY, .kind = BH__HDR_INT, .num = (int64_t)(id & INT64_MAX)},
    };
    memcpy(h, own, sizeof own);
    /* The copy is the same message again: it keeps its trace context. */
    size_t n = 4 + bh__span_keep(d, h + 4);
    for (size_t i = 0; i < d->n_headers; i++)
        if (carried(d->headers[i].key)) h[n++] = d->headers[i];
    bh__out_t *o = bh__out_make(exchange, key, d->content_type, d->conversation_hdr, d->reply_to,
                                d->correlation_id, d->status_hdr, h, n, d->body, d->body_len);
    free(h);
    if (!o) return NULL;
    o->id = id;
    o->mandatory = true; /* a missing retry queue must be noticed, not dropped silently */
    return o;
}

bh__retry_action_t bh__retry_decide(bh__retry_t *r, const bh__job_t *job, bh__out_t **copy)
{
    const bh__delivery_t *d = job->d;
    const char *conv = job->msg.conversation_id, *kind = bh__kind_name(job->msg.kind);
    bool event = !strcmp(d->exchange, "events");
    const char *src = event ? r->topo->events_queue : r->topo->commands_queue;
    *copy = NULL;
    if (!r->n_delays) {
        /* Requeue once, counting failures, not redeliveries: a message that
         * a drain, a restart or a lost connection gave back comes
         * redelivered, yet failed nowhere. So the once is a copy that says
         * so (BH__H_ATTEMPT), back on the queue, and the original is acked:
         * a command or result through its own exchange and key, which only
         * this service's queue binds; an event straight to the queue (its
         * key would reach every service that subscribes to it). */
        if (job->attempt == 0 &&
            (*copy = event ? copy_of(r, job, BH__EX_DEFAULT, src)
                           : copy_of(r, job, BH__EX_COMMANDS, d->routing_key))) {
            bh__log(r->log, BH_ALERT, conv, "handler failed on %s '%s'; requeueing it once", kind,
                    d->routing_key);
            return BH__RETRY_COPY;
        }
        if (job->attempt == 0) {
            bh__log(r->log, BH_CRITICAL, conv,
                    "out of memory making the retry copy of %s '%s': requeueing it as it is", kind,
                    d->routing_key);
            return d->redelivered ? BH__RETRY_GIVE_UP : BH__RETRY_REQUEUE;
        }
        bh__log(r->log, BH_EMERGENCY, conv, "Giving up on %s", d->routing_key);
        return BH__RETRY_GIVE_UP;
    }
    const char *q =
        job->attempt < r->n_delays ? bh__topology_retry_queue(r->topo, src, job->attempt) : NULL;
    if (!q || !(*copy = copy_of(r, job, BH__EX_DEFAULT, q))) {
        bh__log(r->log, BH_EMERGENCY, conv, "Giving up on %s", d->routing_key);
        if (q) bh__log(r->log, BH_CRITICAL, conv, "(out of memory making its retry copy)");
        return BH__RETRY_GIVE_UP;
    }
    bh__log(r->log, BH_ALERT, conv, "handler failed on %s '%s'; retry %u of %zu in %u ms", kind,
            d->routing_key, job->attempt + 1, r->n_delays, r->delays[job->attempt]);
    return BH__RETRY_COPY;
}
