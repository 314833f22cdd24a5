/* otlp.h -- exporting spans over OTLP/HTTP with the JSON encoding
 * ([host] otlp_endpoint).
 *
 * One exporter per host generation, with its own thread. Handlers and I/O
 * threads only append finished spans to a bounded list under a mutex held
 * for a pointer swap, never for I/O; the thread posts them in batches
 * (every second, or as soon as BH__OTLP_BATCH are waiting) with libcurl.
 * When the list is full a span is dropped and counted; the drops and any
 * endpoint failure are logged by the exporter's thread, at most once a
 * batch. Nothing here ever delays a message. */
#ifndef BH_OTLP_H
#define BH_OTLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trace.h"

enum {
    BH__OTLP_BATCH = 512,     /* spans per request */
    BH__OTLP_QUEUE_MAX = 8192 /* spans waiting; more are dropped */
};
/* OTLP's SpanKind and StatusCode values. */
enum { BH__OTLP_KIND_PRODUCER = 4, BH__OTLP_KIND_CONSUMER = 5 };

typedef struct bh__otlp bh__otlp_t;

/* A finished span. Its strings are copied into the same allocation by
 * bh__otlp_span_new. */
typedef struct bh__otlp_span {
    struct bh__otlp_span *next;
    uint8_t trace[BH__TRACE_ID_LEN], span[BH__SPAN_ID_LEN], parent[BH__SPAN_ID_LEN];
    bool has_parent;
    int kind;                    /* BH__OTLP_KIND_* */
    uint64_t start_ns, end_ns;   /* since the epoch */
    const char *service;         /* the resource's service.name */
    const char *operation;       /* messaging.operation.type: "process" or "send" */
    const char *exchange;        /* messaging.destination.name */
    const char *routing_key;     /* messaging.rabbitmq.destination.routing_key */
    const char *conversation_id; /* messaging.message.conversation_id */
    const char *tracestate;      /* NULL: none */
    const char *error;           /* status ERROR with this message; NULL: unset */
} bh__otlp_span_t;

/* A copy of *s (next NULL; NULL strings stay NULL but service, operation,
 * exchange and routing_key become ""), or NULL when out of memory. */
bh__otlp_span_t *bh__otlp_span_new(const bh__otlp_span_t *s);

/* The ExportTraceServiceRequest for a list of spans, grouped into one
 * resourceSpans per service in order of first appearance; malloc'd compact
 * JSON, or NULL when out of memory. */
char *bh__otlp_render(const bh__otlp_span_t *spans, size_t *len);

/* An exporter for url (as bh__http_url_check takes), not running yet:
 * spans pushed meanwhile wait. NULL with err set when out of memory. */
bh__otlp_t *bh__otlp_new(const char *url, char *err, size_t errlen);
/* Record this share of the traces the host starts (0..100; 100 by default). */
void bh__otlp_set_sampling(bh__otlp_t *x, int percent);
/* Whether a trace the host starts with this id is recorded: always without
 * an exporter (the flag is still carried on), else by the id's last 8
 * bytes against the share, so that every host decides alike. */
bool bh__otlp_samples(const bh__otlp_t *x, const uint8_t trace[BH__TRACE_ID_LEN]);
/* Start its thread (once; x NULL: nothing to do). 0, or BH_ENOMEM with err. */
int bh__otlp_run(bh__otlp_t *x, char *err, size_t errlen);
/* Hand a finished span over (takes it; x NULL frees it). Thread: any. */
void bh__otlp_push(bh__otlp_t *x, bh__otlp_span_t *s);
/* Post what is left (one last try, bounded by a short timeout), stop the
 * thread and free (x NULL: nothing). Thread: the one that made x. */
void bh__otlp_stop(bh__otlp_t *x);
/* Spans dropped so far: a full list, or a batch the endpoint did not take. */
uint64_t bh__otlp_dropped(bh__otlp_t *x);
/* Spans the endpoint accepted so far. */
uint64_t bh__otlp_sent(bh__otlp_t *x);

#endif
