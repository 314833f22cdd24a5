/* bench.c -- the plugin bushost runs in the benchmark (service "bench").
 *
 * Built more than once from this file (bench/CMakeLists.txt): the name (and
 * service), the event key and the key of the fanned copies are compile
 * definitions, so that variants (the quorum rows' benchq, the idle services
 * of workload 7) have config sections and queues of their own.
 *
 *   event   BenchEvent  burns burn_us of CPU, then publishes `fanout` copies
 *                       of itself as BenchFanned (0 by default: a no-op)
 *   command Run         answers a success result {"ok": true}
 *
 * When BENCH_STAMP names a stamp file (bench_launch sets it), the plugin
 * stamps the first message it sees, counts finished handlers across every
 * host of the run, and the handler that reaches the target stops every
 * registered host with SIGTERM: bushost's graceful stop then waits for the
 * last confirms and acks, so the run ends when all is settled. */
#include <signal.h>
#include <time.h>

#include "bushost.h"
#include "stamp.h"

#ifndef BENCH_PLUGIN_NAME
#define BENCH_PLUGIN_NAME "bench"
#endif
#ifndef BENCH_EVENT_KEY
#define BENCH_EVENT_KEY "BenchEvent"
#endif
#ifndef BENCH_FANNED_KEY
#define BENCH_FANNED_KEY "BenchFanned"
#endif

typedef struct bench {
    int64_t fanout;
    int64_t burn_ns;
    bench_stamp_t *stamp; /* NULL when not measured */
} bench_t;

/* Busy for `ns` of this thread's CPU time: a handler doing real work. */
static void burn(int64_t ns)
{
    struct timespec ts;
    int64_t start, now;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    start = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    do {
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    } while (now - start < ns);
}

static bh_outcome_t finished(bench_t *b, bh_outcome_t o)
{
    if (bench_stamp_done(b->stamp)) bench_stamp_stop_all(b->stamp);
    return o;
}

static bh_outcome_t on_event(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    bench_t *b = state;

    bench_stamp_first(b->stamp);
    if (b->burn_ns) burn(b->burn_ns);
    for (int64_t i = 0; i < b->fanout; i++) {
        int rc = bh_publish_event_raw(ctx, BENCH_FANNED_KEY, msg->content_type, msg->body,
                                      msg->body_len);
        if (rc != BH_OK) {
            bh_log(ctx, BH_ERROR, "cannot publish %s: %s", BENCH_FANNED_KEY, bh_strerror(rc));
            return finished(b, BH_RETRY);
        }
    }
    return finished(b, BH_DONE);
}

static bh_outcome_t on_run(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    bench_t *b = state;
    bh_value_t *p;
    int rc;

    bench_stamp_first(b->stamp);
    p = bh_map_new(ctx);
    rc = p ? bh_map_set(p, "ok", bh_bool_new(ctx, true)) : BH_ENOMEM;
    if (rc == BH_OK) rc = bh_result_success(ctx, p);
    bh_value_free(p);
    return finished(b, rc == BH_OK ? BH_DONE : BH_RETRY);
}

static int bench_init(bh_ctx_t *ctx, void **state)
{
    bench_t *b = calloc(1, sizeof *b);
    int64_t burn_us = 0;
    int rc;

    if (!b) return BH_ENOMEM;
    rc = bh_config_int(ctx, "fanout", &b->fanout);
    if (rc == BH_OK) rc = bh_config_int(ctx, "burn_us", &burn_us);
    if (rc != BH_OK) {
        free(b);
        return rc;
    }
    b->burn_ns = burn_us * 1000;
    b->stamp = bench_stamp_open();
    bench_stamp_register(b->stamp);
    *state = b;
    return BH_OK;
}

static void bench_fini(bh_ctx_t *ctx, void *state)
{
    bench_t *b = state;

    bench_stamp_close(b->stamp);
    free(b);
}

static const bh_route_t events[] = {
    {.key = BENCH_EVENT_KEY, .handler = on_event},
    {0},
};

static const bh_route_t commands[] = {
    {.key = "Run", .handler = on_run},
    {0},
};

static const bh_config_key_t config[] = {
    {.key = "fanout",
     .type = BH_CONF_INT,
     .def = "0",
     .help = "BenchFanned events published per BenchEvent",
     .min = 0,
     .max = 1000},
    {.key = "burn_us",
     .type = BH_CONF_INT,
     .def = "0",
     .help = "CPU microseconds each BenchEvent handler burns",
     .min = 0,
     .max = 1000000},
    {.key = NULL},
};

BH_PLUGIN(.name = BENCH_PLUGIN_NAME, .version = "1.0.0", .service = BENCH_PLUGIN_NAME,
          .events = events, .commands = commands, .config = config, .init = bench_init,
          .fini = bench_fini);
