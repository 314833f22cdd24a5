/* testkit.c -- a plugin whose handlers do what an integration test needs.
 *
 *   command Fail    always BH_RETRY (an unexpected failure), logging each
 *                   call at NOTICE with its redelivered flag
 *   command Sleep   {"ms": int} sleeps that long, then answers {"slept": ms}
 *   command Reject  BH_REJECT (dead-letter at once)
 *   command Echo    {"id": int, "ms": int, "pad": int (both optional)} sleeps ms,
 *                   then answers {"id": id, "pid": getpid(), "version": the
 *                   plugin's, "redelivered": the flag}, plus a "pad" string
 *                   of that many bytes (the fault tests count these)
 *   command Crash   like Echo, but crashes the whole process with SIGSEGV when
 *                   the payload has {"crash": true} (a poison message)
 *   event   Tick    {"n": int, "ms": int (optional)} sleeps ms, then publishes
 *                   Tocked {"n": n, "pid": getpid()}, so a test can tell which
 *                   host instance handled it
 *   command Order   a declared payload (order below), checked by the host:
 *                   answers {"sku": sku, "qty": qty}
 *   event   OrderNoted  the same declared payload: publishes OrderSeen {"sku"} */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bushost.h"

/* Builds of this file for the reload tests (tests/integration/CMakeLists.txt):
 * TESTKIT_VERSION another version; TESTKIT_INIT_FAILS an init that fails;
 * TESTKIT_ABI_MAJOR a descriptor of another ABI major. */
#ifndef TESTKIT_VERSION
#define TESTKIT_VERSION "1.0.0"
#endif

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* The optional "ms" field: 0 when absent, -1 when out of 0..60000. */
static int64_t optional_ms(const bh_msg_t *msg)
{
    int64_t ms = 0;

    if (bh_get_int(msg->payload, "ms", &ms) != BH_OK) return 0;
    return ms < 0 || ms > 60000 ? -1 : ms;
}

static bh_outcome_t on_fail(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    bh_log(ctx, BH_NOTICE, "Fail called (redelivered=%s)", msg->redelivered ? "true" : "false");
    return BH_RETRY;
}

static bh_outcome_t on_reject(bh_ctx_t *ctx, const bh_msg_t *msg, void *state) { return BH_REJECT; }

static bh_outcome_t on_sleep(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    int64_t ms;
    bh_value_t *p;
    int rc;

    if (bh_get_int(msg->payload, "ms", &ms) != BH_OK || ms < 0 || ms > 60000) {
        bh_log(ctx, BH_ERROR, "Sleep needs ms, an integer 0..60000");
        return BH_REJECT;
    }
    sleep_ms(ms);
    p = bh_map_new(ctx);
    rc = p ? bh_map_set(p, "slept", bh_int_new(ctx, ms)) : BH_ENOMEM;
    if (rc == BH_OK) rc = bh_result_success(ctx, p);
    bh_value_free(p);
    return rc == BH_OK ? BH_DONE : BH_RETRY;
}

enum { MAX_PAD = 16 << 20 };

static bh_outcome_t on_echo(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    int64_t id, ms = optional_ms(msg), pad = 0;
    bh_value_t *p;
    int rc;

    if (bh_get_int(msg->payload, "id", &id) != BH_OK || ms < 0 ||
        (bh_get_int(msg->payload, "pad", &pad) == BH_OK && (pad < 0 || pad > MAX_PAD))) {
        bh_log(ctx, BH_ERROR,
               "%s needs id, an integer, and optionally ms, 0..60000, and pad, 0..%d",
               msg->routing_key, MAX_PAD);
        return BH_REJECT;
    }
    sleep_ms(ms);
    p = bh_map_new(ctx);
    rc = p ? bh_map_set(p, "id", bh_int_new(ctx, id)) : BH_ENOMEM;
    if (rc == BH_OK) rc = bh_map_set(p, "pid", bh_int_new(ctx, (int64_t)getpid()));
    if (rc == BH_OK) rc = bh_map_set_str(ctx, p, "version", TESTKIT_VERSION);
    if (rc == BH_OK) rc = bh_map_set_bool(ctx, p, "redelivered", msg->redelivered);
    if (rc == BH_OK && pad > 0) {
        char *text = malloc((size_t)pad);
        if (text) memset(text, 'x', (size_t)pad);
        rc = text ? bh_map_set(p, "pad", bh_strn_new(ctx, text, (size_t)pad)) : BH_ENOMEM;
        free(text);
    }
    if (rc == BH_OK) rc = bh_result_success(ctx, p);
    bh_value_free(p);
    return rc == BH_OK ? BH_DONE : BH_RETRY;
}

static bh_outcome_t on_crash(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    bool crash = false;

    if (bh_get_bool(msg->payload, "crash", &crash) == BH_OK && crash) {
        bh_log(ctx, BH_NOTICE, "Crash: crashing the process (redelivered=%s)",
               msg->redelivered ? "true" : "false");
        /* A real segfault, as a buggy handler would die, without the
         * undefined behaviour of dereferencing NULL. */
        raise(SIGSEGV);
    }
    return on_echo(ctx, msg, state);
}

static bh_outcome_t on_tick(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    int64_t n, ms = optional_ms(msg);
    bh_value_t *p;
    int rc;

    if (bh_get_int(msg->payload, "n", &n) != BH_OK || ms < 0) {
        bh_log(ctx, BH_ERROR, "Tick needs n, an integer, and optionally ms, 0..60000");
        return BH_REJECT;
    }
    sleep_ms(ms);
    p = bh_map_new(ctx);
    rc = p ? bh_map_set(p, "n", bh_int_new(ctx, n)) : BH_ENOMEM;
    if (rc == BH_OK) rc = bh_map_set(p, "pid", bh_int_new(ctx, (int64_t)getpid()));
    if (rc == BH_OK) rc = bh_publish_event(ctx, "Tocked", p);
    bh_value_free(p);
    return rc == BH_OK ? BH_DONE : BH_RETRY;
}

/* testkit.Trace: logs a NOTICE and answers with the trace and span ids the
 * SDK gives the handler (ABI 1.1). */
static bh_outcome_t on_trace(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    const char *trace = bh_trace_id(ctx), *span = bh_span_id(ctx);
    bh_value_t *p = bh_map_new(ctx);
    int rc = p && trace && span ? BH_OK : BH_ENOMEM;

    bh_log(ctx, BH_NOTICE, "Trace called");
    if (rc == BH_OK) rc = bh_map_set(p, "trace_id", bh_str_new(ctx, trace));
    if (rc == BH_OK) rc = bh_map_set(p, "span_id", bh_str_new(ctx, span));
    if (rc == BH_OK) rc = bh_result_success(ctx, p);
    bh_value_free(p);
    return rc == BH_OK ? BH_DONE : BH_RETRY;
}

/* Order and OrderNoted: what the host checks before these handlers run. */
static const char *const colours[] = {"red", "green", NULL};
static const bh_field_t line_fields[] = {
    {.name = "sku", .type = BH_FIELD_STR, .doc = "the article"},
    {.name = "qty",
     .type = BH_FIELD_INT,
     .flags = BH_FIELD_MIN | BH_FIELD_MAX,
     .min = 1,
     .max = 99},
    {0}};
static const bh_field_t line = {.type = BH_FIELD_MAP, .fields = line_fields};
static const bh_field_t order_fields[] = {
    {.name = "sku",
     .type = BH_FIELD_STR,
     .flags = BH_FIELD_MIN | BH_FIELD_MAX,
     .min = 1,
     .max = 16},
    {.name = "qty", .type = BH_FIELD_INT, .flags = BH_FIELD_MIN, .min = 1, .doc = "how many"},
    {.name = "colour", .type = BH_FIELD_STR, .flags = BH_FIELD_OPTIONAL, .one_of = colours},
    {.name = "note", .type = BH_FIELD_STR, .flags = BH_FIELD_OPTIONAL | BH_FIELD_NULLABLE},
    {.name = "lines",
     .type = BH_FIELD_ARRAY,
     .flags = BH_FIELD_OPTIONAL | BH_FIELD_MIN,
     .min = 1,
     .items = &line},
    {.name = "price", .type = BH_FIELD_NUMBER, .flags = BH_FIELD_OPTIONAL | BH_FIELD_MIN},
    {.name = "gift", .type = BH_FIELD_BOOL, .flags = BH_FIELD_OPTIONAL},
    {.name = "tag", .type = BH_FIELD_BYTES, .flags = BH_FIELD_OPTIONAL | BH_FIELD_MAX, .max = 8},
    {.name = "meta", .type = BH_FIELD_ANY, .flags = BH_FIELD_OPTIONAL},
    {0}};
static const bh_schema_t order =
    BH_SCHEMA(.fields = order_fields, .doc = "An order of one article");
static const bh_field_t accepted_fields[] = {
    {.name = "sku", .type = BH_FIELD_STR}, {.name = "qty", .type = BH_FIELD_INT}, {0}};
static const bh_schema_t accepted = BH_SCHEMA(.fields = accepted_fields, .doc = "What was taken");

/* The host has checked the payload: sku and qty are there and valid. */
static bh_outcome_t on_order(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    int64_t qty = 0;
    bh_value_t *p = bh_map_new(ctx);
    int rc = p ? bh_get_int(msg->payload, "qty", &qty) : BH_ENOMEM;
    if (rc == BH_OK) rc = bh_map_set_str(ctx, p, "sku", bh_get_str(msg->payload, "sku"));
    if (rc == BH_OK) rc = bh_map_set_int(ctx, p, "qty", qty);
    if (rc == BH_OK) rc = bh_result_success(ctx, p);
    bh_value_free(p);
    return rc == BH_OK ? BH_DONE : BH_RETRY;
}

static bh_outcome_t on_order_noted(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    bh_value_t *p = bh_map_new(ctx);
    int rc = p ? bh_map_set_str(ctx, p, "sku", bh_get_str(msg->payload, "sku")) : BH_ENOMEM;
    if (rc == BH_OK) rc = bh_publish_event(ctx, "OrderSeen", p);
    bh_value_free(p);
    return rc == BH_OK ? BH_DONE : BH_RETRY;
}

static const bh_route_t commands[] = {
    {.key = "Order", .handler = on_order, .payload = &order, .reply = &accepted},
    {.key = "Fail", .handler = on_fail},
    {.key = "Sleep", .handler = on_sleep},
    {.key = "Reject", .handler = on_reject},
    {.key = "Echo", .handler = on_echo},
    {.key = "Crash", .handler = on_crash},
    {.key = "Trace", .handler = on_trace},
    {0},
};

static const bh_route_t events[] = {
    {.key = "Tick", .handler = on_tick},
    {.key = "OrderNoted", .handler = on_order_noted, .payload = &order},
    {0},
};

static int init(bh_ctx_t *ctx, void **state)
{
    (void)state;
#ifdef TESTKIT_INIT_FAILS
    bh_log(ctx, BH_ERROR, "testkit " TESTKIT_VERSION ": this build's init fails on purpose");
    return BH_EINVAL;
#else
    bh_log(ctx, BH_INFO, "testkit " TESTKIT_VERSION " ready");
    return BH_OK;
#endif
}

#ifdef TESTKIT_ABI_MAJOR
BH_EXPORT extern const bh_plugin_t bh_plugin;
const bh_plugin_t bh_plugin = {.magic = BH_MAGIC,
                               .abi_major = TESTKIT_ABI_MAJOR,
                               .abi_minor = 0,
                               .size = (uint32_t)sizeof(bh_plugin_t),
                               .name = "testkit",
                               .version = TESTKIT_VERSION,
                               .service = "testkit",
                               .events = events,
                               .commands = commands,
                               .init = init};
#else
BH_PLUGIN(.name = "testkit", .version = TESTKIT_VERSION, .service = "testkit", .events = events,
          .commands = commands, .init = init);
#endif
