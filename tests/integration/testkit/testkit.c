/* testkit.c -- a plugin whose handlers do what an integration test needs.
 *
 *   command Fail    always BH_RETRY (an unexpected failure), logging each
 *                   call at NOTICE with its redelivered flag
 *   command Sleep   {"ms": int} sleeps that long, then answers {"slept": ms}
 *   command Reject  BH_REJECT (dead-letter at once)
 *   event   Tick    {"n": int} publishes Tocked {"n": n, "pid": getpid()}, so a
 *                   test can tell which host instance handled it */
#include <errno.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "bushost.h"

static bh_outcome_t on_fail(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    bh_log(ctx, BH_NOTICE, "Fail called (redelivered=%s)", msg->redelivered ? "true" : "false");
    return BH_RETRY;
}

static bh_outcome_t on_reject(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    return BH_REJECT;
}

static bh_outcome_t on_sleep(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    int64_t ms;
    struct timespec ts;
    bh_value_t *p;
    int rc;

    if (bh_get_int(msg->payload, "ms", &ms) != BH_OK || ms < 0 || ms > 60000) {
        bh_log(ctx, BH_ERROR, "Sleep needs ms, an integer 0..60000");
        return BH_REJECT;
    }
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    p = bh_map_new(ctx);
    rc = p ? bh_map_set(p, "slept", bh_int_new(ctx, ms)) : BH_ENOMEM;
    if (rc == BH_OK)
        rc = bh_result_success(ctx, p);
    bh_value_free(p);
    return rc == BH_OK ? BH_DONE : BH_RETRY;
}

static bh_outcome_t on_tick(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    int64_t n;
    bh_value_t *p;
    int rc;

    if (bh_get_int(msg->payload, "n", &n) != BH_OK) {
        bh_log(ctx, BH_ERROR, "Tick needs n, an integer");
        return BH_REJECT;
    }
    p = bh_map_new(ctx);
    rc = p ? bh_map_set(p, "n", bh_int_new(ctx, n)) : BH_ENOMEM;
    if (rc == BH_OK)
        rc = bh_map_set(p, "pid", bh_int_new(ctx, (int64_t)getpid()));
    if (rc == BH_OK)
        rc = bh_publish_event(ctx, "Tocked", p);
    bh_value_free(p);
    return rc == BH_OK ? BH_DONE : BH_RETRY;
}

static const bh_route_t commands[] = {
    {"Fail", on_fail},
    {"Sleep", on_sleep},
    {"Reject", on_reject},
    {NULL, NULL},
};

static const bh_route_t events[] = {
    {"Tick", on_tick},
    {NULL, NULL},
};

BH_PLUGIN(.name = "testkit", .version = "1.0.0", .service = "testkit", .events = events,
          .commands = commands);
