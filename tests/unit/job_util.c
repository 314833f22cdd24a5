/* job_util.c -- see job_util.h. */
#include "job_util.h"

#include <stdlib.h>
#include <string.h>

bh__delivery_t *ju_delivery(const ju_msg_t *m)
{
    /* One allocation, as the broker's: the envelope headers that dispatch
     * would point to live behind the delivery. */
    struct {
        bh__delivery_t d;
        bh__hdr_t conv, status;
    } *all = calloc(1, sizeof *all);
    if (!all) abort();
    bh__delivery_t *d = &all->d;
    d->tag = m->tag;
    d->redelivered = m->redelivered;
    d->exchange = m->exchange ? m->exchange : "";
    d->routing_key = m->routing_key ? m->routing_key : "";
    d->content_type = m->content_type;
    d->reply_to = m->reply_to;
    d->correlation_id = m->correlation_id;
    d->headers = m->headers;
    d->n_headers = m->n_headers;
    d->body = m->body;
    d->body_len = m->body ? strlen(m->body) : 0;
    d->conversation_id = m->conversation_id;
    d->status = m->status;
    d->conversation_hdr = bh__hdr_text(m->headers, m->n_headers, "conversation_id");
    d->status_hdr = bh__hdr_text(m->headers, m->n_headers, "status");
    if (!d->conversation_hdr && m->conversation_id) {
        all->conv = bh__hdr_string("conversation_id", m->conversation_id);
        d->conversation_hdr = &all->conv;
    }
    if (!d->status_hdr && m->status) {
        all->status = bh__hdr_string("status", m->status);
        d->status_hdr = &all->status;
    }
    return d;
}

bh__job_t *ju_job(const ju_msg_t *m, bh_kind_t kind, bh_handler_fn handler, uint64_t gen)
{
    bh__job_t *job = bh__job_new(ju_delivery(m), kind, handler, gen);
    if (!job) abort();
    return job;
}

bh__out_t *ju_add_out(bh__job_t *job, int exchange, const char *routing_key)
{
    bh__out_t *o = bh__out_new(exchange, routing_key, "application/json", job->msg.conversation_id,
                               "", "", NULL, "{}", 2);
    if (!o) abort();
    o->job = job;
    *job->outs_tail = o;
    job->outs_tail = &o->next;
    return o;
}
