/* metrics.h -- one service's counters, gauges and histograms, and their
 * Prometheus text exposition (format 0.0.4).
 *
 * Every value is a relaxed atomic, so the HTTP thread reads them without a
 * lock while the service runs. Almost all are written by the service's I/O
 * thread alone (deliveries, outcomes, the handler and queue-wait times the
 * workers stamp into the job, publishes, confirms, the connection), which
 * adds with a plain load and store: no locked instruction on the hot path.
 * Only the gauge of running handlers is changed by the workers (an atomic
 * add). A histogram is a fixed array of bucket counters; its count is the
 * sum of its buckets, so the +Inf bucket always equals _count.
 * docs/observability.md lists every metric. */
#ifndef BH_METRICS_H
#define BH_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bushost.h"

typedef atomic_uint_fast64_t bh__counter_t;

/* Buckets from 100 us to 60 s (upper bounds, seconds), then +Inf. */
enum { BH__HIST_BOUNDS = 18 };
extern const double bh__hist_bounds[BH__HIST_BOUNDS];

typedef struct bh__hist {
    bh__counter_t counts[BH__HIST_BOUNDS + 1]; /* per bucket, not cumulative; last: +Inf */
    bh__counter_t sum_ns;
} bh__hist_t;

typedef struct bh__hist_snap {
    uint64_t counts[BH__HIST_BOUNDS + 1];
    uint64_t count;
    double sum; /* seconds */
} bh__hist_snap_t;

/* Single writer (see above). */
void bh__hist_observe(bh__hist_t *h, uint64_t ns);
/* Thread: any. */
void bh__hist_read(const bh__hist_t *h, bh__hist_snap_t *out);

/* How a delivery ended, once settled (docs/observability.md). */
typedef enum bh__verdict {
    BH__V_DONE,
    BH__V_RETRY,            /* requeued, or a delayed-retry copy is out */
    BH__V_REJECT,           /* the handler rejected it: dead-lettered */
    BH__V_DEAD_LETTERED,    /* the host gave up: retries spent, crash_limit, unsendable */
    BH__V_INVALID_ENVELOPE, /* no valid envelope, no handler for its key, or too big */
    BH__V_UNDECODABLE,      /* the payload did not decode */
    BH__V_INVALID_PAYLOAD,  /* it did not match its route's declared schema */
    BH__VERDICTS
} bh__verdict_t;
const char *bh__verdict_name(bh__verdict_t v);

/* What a publish is: event, command, result, or a delayed-retry copy. */
typedef enum bh__pub_kind {
    BH__PUB_EVENT,
    BH__PUB_COMMAND,
    BH__PUB_RESULT,
    BH__PUB_RETRY,
    BH__PUBS
} bh__pub_kind_t;
const char *bh__pub_kind_name(bh__pub_kind_t k);

/* How a request (bh_send_command_opts) ended; LATE: a result that came
 * after its request had timed out (acked, its handler not run). */
typedef enum bh__req_end {
    BH__REQ_ANSWERED,
    BH__REQ_TIMEOUT,
    BH__REQ_UNROUTABLE,
    BH__REQ_SHUTDOWN,
    BH__REQ_LATE,
    BH__REQ_ENDS
} bh__req_end_t;
const char *bh__req_end_name(bh__req_end_t e);

/* One timer of the plugin: its runs, and the ticks it skipped because the
 * previous run was still going. */
typedef struct bh__mtimer {
    char *name; /* a copy (a new version brings its own descriptor) */
    bh__counter_t runs, skips;
} bh__mtimer_t;

/* One route of the plugin: the routing key it is bound by. */
typedef struct bh__mroute {
    char *key; /* the event or result key, "<service>.<Name>" for a command; "" for none */
    bh__counter_t received;
    bh__counter_t handled[BH__VERDICTS];
    bh__hist_t handler; /* decoding and the handler call */
    bh__hist_t wait;    /* delivery to the handler's start */
} bh__mroute_t;

/* What /status and the probes show of the connection. */
typedef enum bh__mstate {
    BH__MS_DOWN,
    BH__MS_UP,
    BH__MS_DRAINING,
    BH__MS_CLOSED,
    BH__MSTATES
} bh__mstate_t;
const char *bh__mstate_name(bh__mstate_t s);

typedef struct bh__metrics {
    const char *service; /* borrowed, as every field but the routes */
    int workers;
    const char *const *urls; /* the broker URLs (the connection's, shown redacted) */
    size_t n_urls;
    /* routes[0]: deliveries without a route; then events, commands, results
     * in the descriptor's order. */
    bh__mroute_t *routes;
    size_t n_routes, first_command, first_result;
    bh__counter_t sent[BH__PUBS], confirmed[BH__PUBS], nacked[BH__PUBS], returned[BH__PUBS];
    bh__hist_t confirm;    /* publish to its confirm */
    atomic_size_t running; /* handlers running now (written by the workers) */
    /* Stored by the I/O thread at the end of every tick (notify.c). */
    atomic_size_t unacked;
    atomic_int state; /* bh__mstate_t */
    atomic_bool connected, consuming, blocked, ever_up;
    bh__counter_t reconnects, heartbeat_misses, blocked_ns, blocked_since_ns, url_index;
    bh__counter_t tick_ns; /* uv_hrtime of the last tick: the loop's progress */
    bh__mtimer_t *timers;  /* the descriptor's timers, in order */
    size_t n_timers;
    bh__counter_t requests[BH__REQ_ENDS];
    const atomic_size_t *requests_waiting; /* the requests' own count; NULL: none */
    bh__counter_t health_unix_ms;          /* the last health check log, 0 before */
} bh__metrics_t;

/* Build the route table from the plugin's descriptor (main thread). 0 or
 * BH_ENOMEM. A zeroed bh__metrics_t has no routes: counting into it does
 * nothing, as with a NULL one. */
int bh__metrics_init(bh__metrics_t *m, const char *service, const bh_plugin_t *p, int workers,
                     const char *const *urls, size_t n_urls);
void bh__metrics_free(bh__metrics_t *m);
/* The route of the i-th event, command or result of the descriptor. */
bh__mroute_t *bh__metrics_route(bh__metrics_t *m, bh_kind_t kind, size_t i);
/* The route for deliveries that have none (NULL without metrics). */
bh__mroute_t *bh__metrics_unrouted(bh__metrics_t *m);

/* Single-writer counting (see the top); r or m NULL: nothing. */
void bh__metrics_add(bh__counter_t *c, uint64_t n);
void bh__metrics_received(bh__mroute_t *r);
void bh__metrics_settled(bh__mroute_t *r, bh__verdict_t v);
void bh__metrics_ran(bh__mroute_t *r, uint64_t delivered_ns, uint64_t start_ns, uint64_t end_ns);
/* A handler starts (+1) or returns (-1). Thread: a worker, or the I/O thread. */
void bh__metrics_running(bh__metrics_t *m, int delta);

/* A growable text buffer for the renderers. */
typedef struct bh__text {
    char *buf;
    size_t len, cap;
    bool oom;
} bh__text_t;
void bh__text_printf(bh__text_t *t, const char *fmt, ...) BH_PRINTF(2, 3);
/* s as a Prometheus label value: \ " and newline escaped. */
void bh__text_label(bh__text_t *t, const char *s);

/* The exposition of n services, plus bushost_build_info. now_ns: uv_hrtime,
 * for a blocked period still running. Thread: any. */
void bh__metrics_render(bh__text_t *t, const bh__metrics_t *const *m, size_t n, uint64_t now_ns);
/* The seconds a service's publishing has been blocked, the current period
 * included. */
double bh__metrics_blocked_seconds(const bh__metrics_t *m, uint64_t now_ns);

#endif
