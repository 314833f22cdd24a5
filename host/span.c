/* span.c -- trace context in, the handler span, trace context out. */
#include "span.h"

#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* An unusable trace header is worth a line, not one per message: a peer
 * sending broken ones would double the log traffic. */
#define NOTE_EVERY_NS 10000000000ull

static _Atomic uint64_t note_at;
static atomic_uint note_skipped;

static uint64_t clock_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The first header named key in any case (the spec asks receivers to
 * expect any), or NULL. */
static const bh__hdr_t *find(const bh__hdr_t *h, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (!strcasecmp(h[i].key, key)) return &h[i];
    return NULL;
}

static bool is_text(const bh__hdr_t *h)
{
    return h->kind == BH__HDR_STRING || h->kind == BH__HDR_BYTES;
}

static void note(bh__logger_t *log, const bh__job_t *job, const char *header, const char *why)
{
    uint64_t t = clock_ns(CLOCK_MONOTONIC), last = atomic_load(&note_at);
    if ((last && t - last < NOTE_EVERY_NS) || !atomic_compare_exchange_strong(&note_at, &last, t)) {
        atomic_fetch_add(&note_skipped, 1);
        return;
    }
    unsigned skipped = atomic_exchange(&note_skipped, 0);
    bh__log(log, BH_NOTICE, job->msg.conversation_id,
            "ignoring the %s header of %s '%s': %s (%u more ignored since the last such line)",
            header, bh__kind_name(job->msg.kind), job->d->routing_key, why, skipped);
}

/* The incoming context by the first usable header, or false. */
static bool extract(bh__job_t *job, bh__logger_t *log, bh__tctx_t *in)
{
    static const char *const names[] = {BH__H_TRACEPARENT, BH__H_MT_ACTIVITY, BH__H_DIAGNOSTIC};
    const bh__delivery_t *d = job->d;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const bh__hdr_t *h = find(d->headers, d->n_headers, names[i]);
        const char *why;
        if (!h) continue;
        if (!is_text(h)) why = "not a string";
        else if (i == 0) why = bh__traceparent_parse(h->str, h->len, in);
        else why = bh__trace_activity_parse(h->str, h->len, in);
        if (!why) {
            if (i > 0) return true;
            /* tracestate goes only with the traceparent it belongs to. */
            const bh__hdr_t *ts = find(d->headers, d->n_headers, BH__H_TRACESTATE);
            if (ts && !is_text(ts)) why = "not a string";
            else if (ts) why = bh__tracestate_check(ts->str, ts->len);
            if (why) note(log, job, BH__H_TRACESTATE, why);
            else job->trace.tracestate = ts;
            return true;
        }
        note(log, job, names[i], why);
    }
    return false;
}

void bh__span_begin(bh__job_t *job, bh__otlp_t *otlp, const char *service, bh__logger_t *log)
{
    bh__jtrace_t *t = &job->trace;
    bh__tctx_t in;
    memset(t, 0, sizeof *t);
    if (extract(job, log, &in)) {
        memcpy(t->trace, in.trace, sizeof t->trace);
        memcpy(t->parent, in.span, sizeof t->parent);
        t->has_parent = in.has_span;
        t->flags = in.flags;
    } else {
        /* A new trace: recorded unless otlp_sample_percent leaves it out. */
        bh__trace_random(t->trace, sizeof t->trace);
        t->flags = bh__otlp_samples(otlp, t->trace) ? BH__TRACE_SAMPLED : 0;
    }
    bh__trace_random(t->span, sizeof t->span);
    bh__trace_hex(t->trace_hex, t->trace, sizeof t->trace);
    bh__trace_hex(t->span_hex, t->span, sizeof t->span);
    t->otlp = otlp;
    t->service = service;
    t->t0 = clock_ns(CLOCK_REALTIME);
    bh__trace_set_current(t->trace_hex, t->span_hex);
}

static bool exported(const bh__jtrace_t *t) { return t->otlp && (t->flags & BH__TRACE_SAMPLED); }

/* Export a span of t's trace, ending now, with the fields the two kinds
 * share filled from t. */
static void export_span(const bh__jtrace_t *t, bh__otlp_span_t s, const uint8_t *span,
                        const uint8_t *parent)
{
    s.end_ns = clock_ns(CLOCK_REALTIME);
    s.service = t->service;
    s.tracestate = t->tracestate ? t->tracestate->str : NULL;
    memcpy(s.trace, t->trace, sizeof s.trace);
    memcpy(s.span, span, sizeof s.span);
    memcpy(s.parent, parent, sizeof s.parent);
    bh__otlp_push(t->otlp, bh__otlp_span_new(&s));
}

void bh__span_end(bh__job_t *job)
{
    const bh__jtrace_t *t = &job->trace;
    bh__trace_set_current(NULL, NULL);
    if (!exported(t)) return;
    const char *error = job->outcome == BH_RETRY    ? "the handler returned BH_RETRY"
                        : job->outcome == BH_REJECT ? "the handler returned BH_REJECT"
                        : job->outcome == BH_DONE   ? NULL
                                                    : job->err;
    export_span(t,
                (bh__otlp_span_t){.has_parent = t->has_parent,
                                  .kind = BH__OTLP_KIND_CONSUMER,
                                  .start_ns = t->t0,
                                  .operation = "process",
                                  .exchange = job->d->exchange,
                                  .routing_key = job->d->routing_key,
                                  .conversation_id = job->msg.conversation_id,
                                  .error = error},
                t->span, t->parent);
}

void bh__span_publish(const bh__job_t *job, bh__span_pub_t *p)
{
    const bh__jtrace_t *t = &job->trace;
    p->n = 0;
    if (!t->t0) return;
    bh__trace_random(p->span, sizeof p->span);
    bh__traceparent_format(p->traceparent, t->trace, p->span, t->flags);
    p->h[p->n++] = bh__hdr_string(BH__H_TRACEPARENT, p->traceparent);
    if (t->tracestate) {
        p->h[p->n] = *t->tracestate;
        p->h[p->n++].key = BH__H_TRACESTATE;
    }
}

void bh__span_mark(bh__out_t *o, const bh__span_pub_t *p)
{
    if (!p->n) return;
    memcpy(o->span, p->span, sizeof o->span);
    o->span_t0 = clock_ns(CLOCK_REALTIME);
}

void bh__span_out_done(const bh__out_t *o, const char *error)
{
    const bh__job_t *job = o->job;
    if (!o->span_t0 || !job || !exported(&job->trace)) return;
    const bh__jtrace_t *t = &job->trace;
    export_span(t,
                (bh__otlp_span_t){.has_parent = true,
                                  .kind = BH__OTLP_KIND_PRODUCER,
                                  .start_ns = o->span_t0,
                                  .operation = "send",
                                  .exchange = bh__exchange_name(o->exchange),
                                  .routing_key = o->routing_key,
                                  .conversation_id = o->conversation_id,
                                  .error = error},
                o->span, t->span);
}

size_t bh__span_keep(const bh__delivery_t *d, bh__hdr_t h[4])
{
    static const char *const names[] = {BH__H_TRACEPARENT, BH__H_TRACESTATE, BH__H_MT_ACTIVITY,
                                        BH__H_DIAGNOSTIC};
    size_t n = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const bh__hdr_t *x = find(d->headers, d->n_headers, names[i]);
        if (x && is_text(x)) h[n++] = *x;
    }
    return n;
}
