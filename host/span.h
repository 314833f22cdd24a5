/* span.h -- each handler run as a span, and each publish it makes.
 *
 * Before the handler runs, the worker reads the message's trace context:
 * `traceparent` (with `tracestate`), else MassTransit's `MT-Activity-Id`,
 * else `Diagnostic-Id`; with none usable, a new trace starts. The handler
 * span gets a new id, its parent being the incoming span. Everything the
 * handler publishes carries a `traceparent` of the same trace with a new
 * span id per publish (the publish span, child of the handler span), the
 * flags as they came and the `tracestate` as it came. When an exporter is
 * set (otlp.h) and the trace is sampled, the handler span is exported when
 * the handler returns, each publish span when the broker confirmed the
 * publish (or it could never be sent). */
#ifndef BH_SPAN_H
#define BH_SPAN_H

#include <stddef.h>

#include "job.h"
#include "log.h"
#include "otlp.h"

#define BH__H_TRACEPARENT "traceparent"
#define BH__H_TRACESTATE "tracestate"
#define BH__H_MT_ACTIVITY "MT-Activity-Id"
#define BH__H_DIAGNOSTIC "Diagnostic-Id"

/* The trace context of job's delivery, and a new handler span, started
 * now; the calling thread runs it (its logs carry it) until
 * bh__span_end. An unusable header is logged (NOTICE, at most one such
 * line every 10 s in the process, counting the others) and ignored. */
void bh__span_begin(bh__job_t *job, bh__otlp_t *otlp, const char *service, bh__logger_t *log);
/* The handler returned (job->outcome set; 0: the payload did not decode). */
void bh__span_end(bh__job_t *job);

/* The trace headers of one publish made while handling job. */
typedef struct bh__span_pub {
    bh__hdr_t h[2];
    size_t n; /* 0 when the job has no trace */
    char traceparent[BH__TRACEPARENT_LEN + 1];
    uint8_t span[BH__SPAN_ID_LEN];
} bh__span_pub_t;
void bh__span_publish(const bh__job_t *job, bh__span_pub_t *p);
/* o was made with p's headers: it is that publish span. */
void bh__span_mark(bh__out_t *o, const bh__span_pub_t *p);
/* The broker confirmed o (error NULL), or o can never be sent (why). I/O
 * thread. */
void bh__span_out_done(const bh__out_t *o, const char *error);

/* The trace headers of d as they came (traceparent, tracestate and the
 * MassTransit ones; at most 4), for the host's own copies of it. */
size_t bh__span_keep(const bh__delivery_t *d, bh__hdr_t h[4]);

#endif
