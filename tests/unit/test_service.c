/* test_service.c -- the per-plugin I/O thread (host/service.c): dispatch,
 * publisher confirms, consumer acks, logs, reconnection and graceful stop.
 *
 * The real service runs with its real threads, its real neighbours (api,
 * log, gelf, value, confirm, envelope, topology, workers, config, loader)
 * and a fake broker (fake_broker.c) that records every call, models what
 * the broker would think of each delivery tag, and hands the service the
 * events the test injects. The plugin is a descriptor defined here, loaded
 * by hand (no dlopen). Handlers report through fb_mark(), so their steps
 * sit in the same ordered log as the service's broker calls.
 *
 * Waits are bounded (WAIT_MS) and wait for a condition; the few checks that
 * something does NOT happen first let the I/O thread finish the turn that
 * would have done it (fb_settle), or wait a bounded time for it. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "bushost.h"
#include "config.h"
#include "fake_broker.h"
#include "loader.h"
#include "log.h"
#include "service.h"

enum { WAIT_MS = 10000 };

/* -- gates: a handler waits until the test opens its gate ----------------- */

typedef struct gate {
    uv_mutex_t mu;
    uv_cond_t cv;
    bool open;
} gate_t;

static gate_t blocker; /* the Blocking handler; reset by each test */
static gate_t stuck;   /* the Stuck handler: never opened */

static void gate_init(gate_t *g)
{
    uv_mutex_init(&g->mu);
    uv_cond_init(&g->cv);
    g->open = false;
}

static void gate_set(gate_t *g, bool open)
{
    uv_mutex_lock(&g->mu);
    g->open = open;
    uv_cond_broadcast(&g->cv);
    uv_mutex_unlock(&g->mu);
}

static void gate_pass(gate_t *g)
{
    uv_mutex_lock(&g->mu);
    while (!g->open) uv_cond_wait(&g->cv, &g->mu);
    uv_mutex_unlock(&g->mu);
}

/* -- the plugin ----------------------------------------------------------- */

static int plugin_state; /* what init stores; handlers check they get it */

static void enter(const char *key, void *state)
{
    char label[64];
    snprintf(label, sizeof label, "enter:%s", key);
    fb_mark(label);
    if (state != &plugin_state) fb_mark("bad:state");
}

static bh_outcome_t leave(const char *key, bh_outcome_t o)
{
    char label[64];
    snprintf(label, sizeof label, "return:%s", key);
    fb_mark(label);
    return o;
}

/* Publish event `name` with payload {"i": i}; a failure is marked. */
static void publish_i(bh_ctx_t *ctx, const char *name, int64_t i)
{
    bh_value_t *p = bh_map_new(ctx);
    if (bh_map_set(p, "i", bh_int_new(ctx, i)) || bh_publish_event(ctx, name, p))
        fb_mark("bad:publish");
    bh_value_free(p);
}

/* Publishes Out1 then Out2. In between it gives a broken service the chance
 * to send Out1 while the handler still runs (it must not). */
static bh_outcome_t h_two(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    enter("TwoPublished", state);
    publish_i(ctx, "Out1", 1);
    if (fb_wait_count(FB_PUBLISH, 0, 1, 100)) fb_mark("bad:published-during-handler");
    publish_i(ctx, "Out2", 2);
    if (strcmp(msg->conversation_id, "conv-1") || msg->kind != BH_KIND_EVENT ||
        strcmp(msg->routing_key, "TwoPublished"))
        fb_mark("bad:msg");
    return leave("TwoPublished", BH_DONE);
}

/* Publishes payload.n events "Many" with {"i": 0..n-1}. */
static bh_outcome_t h_many(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    int64_t n = 0;
    enter("ManyPublished", state);
    if (bh_get_int(msg->payload, "n", &n)) fb_mark("bad:payload");
    for (int64_t i = 0; i < n; i++) publish_i(ctx, "Many", i);
    return leave("ManyPublished", BH_DONE);
}

static bh_outcome_t h_plain(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    (void)ctx;
    (void)msg;
    enter("Plain", state);
    return leave("Plain", BH_DONE);
}

/* Waits for the test, then publishes "Unblocked". */
static bh_outcome_t h_blocking(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    (void)msg;
    enter("Blocking", state);
    gate_pass(&blocker);
    publish_i(ctx, "Unblocked", 0);
    return leave("Blocking", BH_DONE);
}

/* Never returns (the gate stays shut): a stuck plugin. */
static bh_outcome_t h_stuck(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    (void)ctx;
    (void)msg;
    enter("Stuck", state);
    gate_pass(&stuck);
    return leave("Stuck", BH_DONE);
}

static bh_outcome_t h_retry(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    (void)ctx;
    (void)msg;
    enter("Retry", state);
    return leave("Retry", BH_RETRY);
}

static bh_outcome_t h_reject(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    (void)ctx;
    (void)msg;
    enter("Reject", state);
    return leave("Reject", BH_REJECT);
}

static bh_outcome_t h_logging(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    enter("Logging", state);
    bh_log(ctx, BH_NOTICE, "hello %s", bh_get_str(msg->payload, "who"));
    return leave("Logging", BH_DONE);
}

static uv_thread_t compute_thread, io_thread; /* read after the service is joined */

/* svc.Compute {"a", "b"} -> success {"sum": a + b}. */
static bh_outcome_t h_compute(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    int64_t a = 0, b = 0;
    compute_thread = uv_thread_self();
    enter("Compute", state);
    if (bh_get_int(msg->payload, "a", &a) || bh_get_int(msg->payload, "b", &b))
        fb_mark("bad:payload");
    bh_value_t *r = bh_map_new(ctx);
    if (bh_map_set(r, "sum", bh_int_new(ctx, a + b)) || bh_result_success(ctx, r))
        fb_mark("bad:result");
    bh_value_free(r);
    return leave("Compute", BH_DONE);
}

static bh_outcome_t h_computed(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    (void)ctx;
    enter("Computed", state);
    if (msg->kind != BH_KIND_RESULT || strcmp(msg->status, "success")) fb_mark("bad:msg");
    return leave("Computed", BH_DONE);
}

static int p_init(bh_ctx_t *ctx, void **state)
{
    fb_mark(strcmp(bh_service(ctx), "svc") ? "bad:init-service" : "init");
    *state = &plugin_state;
    return 0;
}

static void p_fini(bh_ctx_t *ctx, void *state)
{
    (void)ctx;
    fb_mark(state == &plugin_state ? "fini" : "bad:fini-state");
}

static const bh_route_t events[] = {
    {.key = "TwoPublished", .handler = h_two},
    {.key = "ManyPublished", .handler = h_many},
    {.key = "Plain", .handler = h_plain},
    {.key = "Blocking", .handler = h_blocking},
    {.key = "Stuck", .handler = h_stuck},
    {.key = "Retry", .handler = h_retry},
    {.key = "Reject", .handler = h_reject},
    {.key = "Logging", .handler = h_logging},
    {0},
};
static const bh_route_t commands[] = {{.key = "Compute", .handler = h_compute}, {0}};
static const bh_route_t results[] = {{.key = "svc.Computed", .handler = h_computed}, {0}};

static const bh_plugin_t plugin = {
    .magic = BH_MAGIC,
    .abi_major = BH_ABI_MAJOR,
    .abi_minor = BH_ABI_MINOR,
    .size = sizeof(bh_plugin_t),
    .name = "testplug",
    .version = "1.0",
    .service = "svc",
    .events = events,
    .commands = commands,
    .results = results,
    .init = p_init,
    .fini = p_fini,
};

static char plugin_path[] = "test_service/testplug.so";
static const bh__loaded_t loaded = {.path = plugin_path, .dl = NULL, .desc = &plugin};

/* -- the config, by hand --------------------------------------------------- */

static char k_workers[] = "workers", v_workers[16] = "4";
static char k_ct[] = "content_type", v_ct[] = "json"; /* readable bodies */
static char k_delays[] = "retry_delays", v_delays[] = "1s, 10s";
static bh__kv_t kv_delays = {k_delays, v_delays, 5, NULL}; /* linked by the tests that want it */
static bh__kv_t kv_ct = {k_ct, v_ct, 4, NULL};
static bh__kv_t kv_workers = {k_workers, v_workers, 3, &kv_ct};
static char sect_name[] = "testplug";
static bh__section_t section = {sect_name, 2, &kv_workers, NULL};
static char url0[] = "amqp://guest:guest@first:5672/";
static char url1[] = "amqp://guest:guest@second:5672/";
static char *urls[] = {url0, url1};
static char cfg_path[] = "test_service.ini";
static bh__config_t cfg = {
    .path = cfg_path,
    .urls = urls,
    .n_urls = 2,
    .heartbeat = 0,
    .log_level = BH_INFO,
    .healthcheck_interval = 0,
    .shutdown_timeout = 5000,
    .sections = &section,
};

/* -- fixture ---------------------------------------------------------------- */

static bh__service_t *svc;
static unsigned conn1; /* the first connection */

static void on_io_exit(void *ud)
{
    (void)ud;
    io_thread = uv_thread_self();
    fb_mark("io-exit");
}

static void no_violations(void)
{
    char why[512];
    if (fb_violations(why, sizeof why)) fail_msg("broker protocol violation: %s", why);
    static const char *const bad[] = {"bad:state",     "bad:publish", "bad:msg",
                                      "bad:payload",   "bad:result",  "bad:init-service",
                                      "bad:fini-state"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (fb_count_mark(bad[i])) fail_msg("the plugin saw something wrong: %s", bad[i]);
}

/* Start the service with `workers` threads; wait until it consumes. */
static void start(int workers, int shutdown_ms)
{
    char err[512] = "";
    snprintf(v_workers, sizeof v_workers, "%d", workers);
    cfg.shutdown_timeout = shutdown_ms;
    assert_int_equal(bh__service_new(&svc, &cfg, &loaded, err, sizeof err), 0);
    assert_string_equal(bh__service_name(svc), "svc");
    assert_int_equal(bh__service_init(svc, err, sizeof err), 0);
    assert_int_equal(fb_count_mark("init"), 1);
    assert_int_equal(bh__service_start(svc, on_io_exit, NULL, err, sizeof err), 0);
    assert_true(fb_wait_count(FB_CONSUME, 0, 1, WAIT_MS));
    conn1 = fb_current();
    assert_int_not_equal(conn1, 0);
    const fb_rec_t *c = fb_nth(FB_CONNECT, 0, 0);
    assert_string_equal(c->text, url0);
    assert_false(c->failed);
    assert_string_equal(fb_nth(FB_CONSUME, conn1, 0)->text, "svc.commands");
    /* Let the start-up logs go out, so tests count only their own. */
    assert_true(fb_settle(WAIT_MS));
}

/* Graceful stop that must succeed and leave nothing open. */
static void stop_ok(void)
{
    bh__service_stop(svc);
    assert_true(bh__service_join(svc));
    assert_int_equal(fb_count_mark("io-exit"), 1);
    assert_true(bh__service_free(svc));
    svc = NULL;
    assert_int_equal(fb_count_mark("fini"), 1);
    assert_int_equal(fb_open_conns(), 0);
    no_violations();
}

static void on_alarm(int sig)
{
    static const char msg[] = "test_service: a test hung (30 s watchdog)\n";
    (void)sig;
    ssize_t n = write(2, msg, sizeof msg - 1);
    (void)n;
    _exit(3);
}

static int setup(void **state)
{
    (void)state;
    fb_reset();
    gate_set(&blocker, false);
    cfg.healthcheck_interval = 0;
    kv_ct.next = NULL; /* no retry_delays */
    alarm(30);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (svc) { /* the test failed half-way: stop what it started */
        gate_set(&blocker, true);
        bh__service_stop(svc);
        bh__service_join(svc);
        bh__service_free(svc);
        svc = NULL;
    }
    alarm(0);
    return 0;
}

/* -- helpers ---------------------------------------------------------------- */

static uint64_t deliver(const char *exchange, const char *key, const char *conv,
                        const char *reply_to, const char *corr, const char *status,
                        const char *body, bool redelivered)
{
    fb_msg_t m = {.exchange = exchange,
                  .routing_key = key,
                  .content_type = "application/json",
                  .conversation_id = conv,
                  .status = status,
                  .reply_to = reply_to,
                  .correlation_id = corr,
                  .body = body,
                  .redelivered = redelivered};
    uint64_t tag = fb_deliver(&m);
    assert_int_not_equal(tag, 0);
    return tag;
}

static uint64_t deliver_event(const char *key, const char *conv, const char *body)
{
    return deliver("events", key, conv, "", "", NULL, body, false);
}

static const fb_rec_t *find_mark(const char *label)
{
    const fb_rec_t *r;
    for (size_t i = 0; (r = fb_nth(FB_MARK, 0, i)); i++)
        if (!strcmp(r->text, label)) return r;
    return NULL;
}

/* The integer field `key` of a JSON body; fails the test if absent. */
static json_int_t json_int(const char *body, const char *key)
{
    json_error_t je;
    json_t *j = json_loads(body, 0, &je);
    if (!j) fail_msg("not JSON: %s (%s)", body, je.text);
    json_t *v = json_object_get(j, key);
    if (!json_is_integer(v)) {
        json_decref(j);
        fail_msg("no integer '%s' in %s", key, body);
    }
    json_int_t i = json_integer_value(v);
    json_decref(j);
    return i;
}

static void assert_json_str(const json_t *o, const char *key, const char *want)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_string(v)) fail_msg("GELF field '%s' is missing or not a string", key);
    assert_string_equal(json_string_value(v), want);
}

/* The GELF record of the first log on `key` holding `needle`, waited for. */
static json_t *wait_gelf(const char *key, const char *needle)
{
    json_error_t je;
    if (!fb_wait_log(key, needle, WAIT_MS)) fail_msg("no log on %s with '%s'", key, needle);
    const fb_rec_t *r = fb_find_log(key, needle);
    json_t *j = json_loads(r->body, 0, &je);
    if (!j) fail_msg("log body is not JSON: %s", r->body);
    return j;
}

/* Every ack on conn, as (tag, multiple): none may cover `tag` (multiple
 * with a greater or equal tag, or that tag itself). */
static void assert_no_ack_covers(unsigned conn, uint64_t tag)
{
    const fb_rec_t *a;
    for (size_t i = 0; (a = fb_nth(FB_ACK, conn, i)); i++) {
        if (a->tag == tag || (a->flag && a->tag > tag))
            fail_msg("ack %llu (multiple=%d) covers tag %llu, still running",
                     (unsigned long long)a->tag, a->flag, (unsigned long long)tag);
    }
}

typedef struct tag_range {
    unsigned conn;
    uint64_t from, to;
    fb_tag_state_t st;
} tag_range_t;

static bool range_is(void *ud)
{
    const tag_range_t *r = ud;
    for (uint64_t t = r->from; t <= r->to; t++)
        if (fb_tag_locked(r->conn, t) != r->st) return false;
    return true;
}

/* ========================================================================= */
/* 1. dispatch, publish after return, ack after every confirm                */

static void delivery_is_acked_only_after_both_of_its_publishes_are_confirmed(void **state)
{
    (void)state;
    start(4, 5000);
    size_t before = fb_now();
    uint64_t tag = deliver_event("TwoPublished", "conv-1", "{\"x\":1}");

    assert_true(fb_wait_mark("return:TwoPublished", 1, WAIT_MS));
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 2, WAIT_MS));
    const fb_rec_t *ret = find_mark("return:TwoPublished"), *in = find_mark("enter:TwoPublished");
    const fb_rec_t *p1 = fb_nth(FB_PUBLISH, conn1, 0), *p2 = fb_nth(FB_PUBLISH, conn1, 1);
    assert_true(in->at >= before);
    assert_int_equal(fb_count_mark("bad:published-during-handler"), 0);
    assert_true(p1->at > ret->at); /* sent once the handler returned, not during it */
    assert_true(p2->at > ret->at);

    /* What it published, in order, carrying the conversation id. */
    assert_string_equal(p1->key, "Out1");
    assert_string_equal(p2->key, "Out2");
    assert_int_equal(json_int(p1->body, "i"), 1);
    assert_int_equal(json_int(p2->body, "i"), 2);
    for (const fb_rec_t *p = p1; p; p = p == p1 ? p2 : NULL) {
        assert_int_equal(p->exchange, BH__EX_EVENTS);
        assert_false(p->mandatory); /* events are not mandatory */
        assert_string_equal(p->conversation_id, "conv-1");
        assert_string_equal(p->content_type, "application/json");
        assert_string_equal(p->reply_to, "");
        assert_string_equal(p->correlation_id, "");
        assert_null(p->status);
    }
    assert_int_equal(p1->tag, 1); /* confirm sequence numbers */
    assert_int_equal(p2->tag, 2);

    /* One confirm of two: still unacked. */
    assert_true(fb_confirm(1, false, true));
    assert_true(fb_settle(WAIT_MS));
    assert_int_equal(fb_tag(conn1, tag), FB_TAG_UNACKED);
    assert_int_equal(fb_count(FB_ACK, 0), 0);

    assert_true(fb_confirm(2, false, true));
    assert_true(fb_wait_tag(conn1, tag, FB_TAG_ACKED, WAIT_MS));
    assert_int_equal(fb_count(FB_ACK, 0), 1);
    assert_int_equal(fb_nth(FB_ACK, conn1, 0)->tag, tag);
    assert_int_equal(fb_count(FB_PUBLISH, 0), 2);
    stop_ok();
}

/* A confirm that arrives before the second publish is even known must not
 * settle the job: confirms out of order (2 then 1) too. */
static void confirms_out_of_order_ack_only_after_the_last(void **state)
{
    (void)state;
    start(4, 5000);
    uint64_t tag = deliver_event("ManyPublished", "conv-1b", "{\"n\":3}");
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 3, WAIT_MS));
    assert_true(fb_confirm(3, false, true));
    assert_true(fb_confirm(1, false, true));
    assert_true(fb_settle(WAIT_MS));
    assert_int_equal(fb_tag(conn1, tag), FB_TAG_UNACKED);
    assert_true(fb_confirm(2, false, true));
    assert_true(fb_wait_tag(conn1, tag, FB_TAG_ACKED, WAIT_MS));
    stop_ok();
}

/* ========================================================================= */
/* 2. ack coalescing                                                         */

static void ten_deliveries_confirmed_by_one_multiple_ack_get_one_multiple_ack(void **state)
{
    (void)state;
    start(4, 5000);
    for (int i = 0; i < 10; i++) deliver_event("ManyPublished", "conv-2", "{\"n\":1}");
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 10, WAIT_MS));
    assert_true(fb_settle(WAIT_MS));
    assert_int_equal(fb_count(FB_ACK, 0), 0); /* nothing confirmed yet */

    assert_true(fb_confirm(10, true, true));
    tag_range_t all = {conn1, 1, 10, FB_TAG_ACKED};
    assert_true(fb_wait(range_is, &all, WAIT_MS));
    assert_true(fb_settle(WAIT_MS));
    size_t n = fb_count(FB_ACK, conn1);
    assert_in_range(n, 1, 2); /* coalesced, not one per message */
    const fb_rec_t *last = fb_nth(FB_ACK, conn1, n - 1);
    assert_int_equal(last->tag, 10);
    assert_true(last->flag);
    stop_ok();
}

static void ack_never_covers_a_delivery_whose_handler_still_runs(void **state)
{
    (void)state;
    start(4, 5000);
    uint64_t t1 = deliver_event("Blocking", "conv-2b", "{}");
    assert_int_equal(t1, 1);
    assert_true(fb_wait_mark("enter:Blocking", 1, WAIT_MS));
    for (int i = 0; i < 10; i++) deliver_event("ManyPublished", "conv-2b", "{\"n\":1}");
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 10, WAIT_MS));
    assert_true(fb_confirm(10, true, true));
    tag_range_t rest = {conn1, 2, 11, FB_TAG_ACKED};
    assert_true(fb_wait(range_is, &rest, WAIT_MS));
    assert_true(fb_settle(WAIT_MS));
    assert_int_equal(fb_tag(conn1, t1), FB_TAG_UNACKED);
    assert_no_ack_covers(conn1, t1);

    gate_set(&blocker, true);
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 11, WAIT_MS));
    assert_string_equal(fb_nth(FB_PUBLISH, conn1, 10)->key, "Unblocked");
    assert_true(fb_settle(WAIT_MS));
    assert_int_equal(fb_tag(conn1, t1), FB_TAG_UNACKED); /* its publish is unconfirmed */
    assert_true(fb_confirm(11, false, true));
    assert_true(fb_wait_tag(conn1, t1, FB_TAG_ACKED, WAIT_MS));
    stop_ok();
}

/* ========================================================================= */
/* 3. nack                                                                   */

static void nacked_publish_is_sent_again_and_input_acked_after_its_ack(void **state)
{
    (void)state;
    start(4, 5000);
    uint64_t tag = deliver_event("ManyPublished", "conv-3", "{\"n\":1}");
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 1, WAIT_MS));
    assert_true(fb_confirm(1, false, false));
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 2, WAIT_MS));
    const fb_rec_t *p1 = fb_nth(FB_PUBLISH, conn1, 0), *p2 = fb_nth(FB_PUBLISH, conn1, 1);
    assert_string_equal(p2->key, p1->key);
    assert_string_equal(p2->body, p1->body);
    assert_string_equal(p2->conversation_id, "conv-3");
    assert_int_equal(p2->tag, 2);
    assert_true(fb_settle(WAIT_MS));
    assert_int_equal(fb_tag(conn1, tag), FB_TAG_UNACKED); /* a nack is no confirm */
    assert_int_equal(fb_count(FB_ACK, 0), 0);
    assert_true(fb_wait_log("svc.WARNING", "nack", WAIT_MS));

    assert_true(fb_confirm(2, false, true));
    assert_true(fb_wait_tag(conn1, tag, FB_TAG_ACKED, WAIT_MS));
    assert_true(fb_settle(WAIT_MS));
    assert_int_equal(fb_count(FB_PUBLISH, 0), 2); /* exactly one re-publish */
    stop_ok();
}

/* A multiple nack covering two publishes of two jobs: both are sent again,
 * in their order, and each input waits for its own re-publish. */
static void multiple_nack_resends_every_covered_publish_in_order(void **state)
{
    (void)state;
    start(1, 5000); /* one worker: the two jobs complete in order */
    uint64_t ta = deliver_event("ManyPublished", "conv-3a", "{\"n\":1}");
    uint64_t tb = deliver_event("TwoPublished", "conv-1", "{}");
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 3, WAIT_MS));
    assert_true(fb_confirm(2, true, false)); /* nack Many and Out1 */
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 5, WAIT_MS));
    assert_string_equal(fb_nth(FB_PUBLISH, conn1, 3)->key, "Many");
    assert_string_equal(fb_nth(FB_PUBLISH, conn1, 4)->key, "Out1");
    assert_true(fb_confirm(3, false, true)); /* Out2 */
    assert_true(fb_confirm(4, false, true)); /* Many again */
    assert_true(fb_wait_tag(conn1, ta, FB_TAG_ACKED, WAIT_MS));
    assert_true(fb_settle(WAIT_MS));
    assert_int_equal(fb_tag(conn1, tb), FB_TAG_UNACKED);
    assert_true(fb_confirm(5, false, true));
    assert_true(fb_wait_tag(conn1, tb, FB_TAG_ACKED, WAIT_MS));
    stop_ok();
}

/* ========================================================================= */
/* 4. reconnection                                                           */

static void reconnect_republishes_unconfirmed_in_order_and_forgets_old_tags(void **state)
{
    (void)state;
    start(4, 5000);
    uint64_t old = deliver_event("ManyPublished", "conv-4", "{\"n\":3}");
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 3, WAIT_MS));
    assert_true(fb_settle(WAIT_MS));

    fb_fail(FB_CONNECT, 1); /* the same URL refuses once; the second one works */
    assert_true(fb_lose("connection lost: fake socket closed"));
    assert_true(fb_wait_count(FB_CONSUME, 0, 2, WAIT_MS));
    unsigned c2 = fb_current();
    assert_int_not_equal(c2, conn1);
    assert_int_equal(fb_count(FB_FREE, conn1), 1); /* dropped, not closed politely */
    assert_int_equal(fb_count(FB_CONNECT, 0), 3);
    assert_string_equal(fb_nth(FB_CONNECT, 0, 1)->text, url0);
    assert_true(fb_nth(FB_CONNECT, 0, 1)->failed);
    assert_string_equal(fb_nth(FB_CONNECT, 0, 2)->text, url1);
    assert_false(fb_nth(FB_CONNECT, 0, 2)->failed);
    assert_true(fb_nth(FB_DECLARE, c2, 0) != NULL); /* topology declared again */

    /* All three again, in their original order (i = 0, 1, 2), once each. */
    assert_true(fb_wait_count(FB_PUBLISH, c2, 3, WAIT_MS));
    assert_true(fb_settle(WAIT_MS));
    assert_int_equal(fb_count(FB_PUBLISH, c2), 3);
    for (size_t i = 0; i < 3; i++) {
        const fb_rec_t *p = fb_nth(FB_PUBLISH, c2, i);
        assert_string_equal(p->key, "Many");
        assert_int_equal(json_int(p->body, "i"), (json_int_t)i);
        assert_string_equal(p->conversation_id, "conv-4");
        assert_int_equal(p->tag, i + 1);
    }

    /* A new delivery on the new connection gets tag 1 again, like the old
     * one; its handler is still running when the old job's publishes are
     * confirmed. The old tag means nothing here (the broker requeued that
     * message): acking it would ack the new, unfinished delivery. */
    uint64_t fresh = deliver_event("Blocking", "conv-4b", "{}");
    assert_int_equal(fresh, old);
    assert_true(fb_wait_mark("enter:Blocking", 1, WAIT_MS));
    assert_true(fb_confirm(3, true, true));
    assert_true(fb_settle(WAIT_MS));
    assert_int_equal(fb_count(FB_ACK, 0), 0);
    assert_int_equal(fb_count(FB_REJECT, 0), 0);
    assert_int_equal(fb_tag(c2, fresh), FB_TAG_UNACKED);
    assert_int_equal(fb_tag(conn1, old), FB_TAG_UNACKED);

    /* Still responsive: the new delivery completes and is acked. */
    gate_set(&blocker, true);
    assert_true(fb_wait_count(FB_PUBLISH, c2, 4, WAIT_MS));
    assert_true(fb_confirm(4, false, true));
    assert_true(fb_wait_tag(c2, fresh, FB_TAG_ACKED, WAIT_MS));
    assert_true(fb_wait_log("svc.ERROR", "connection lost: fake socket closed", WAIT_MS));
    assert_true(fb_wait_log("svc.NOTICE", "reconnected to", WAIT_MS));
    stop_ok();
}

/* Publishes unconfirmed on the old connection go out before those that were
 * still waiting to be sent (held while blocked), each group in its order. */
static void reconnect_sends_unconfirmed_before_held_publishes(void **state)
{
    (void)state;
    start(1, 5000);
    deliver_event("ManyPublished", "conv-4x", "{\"n\":3}");
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 3, WAIT_MS));
    assert_true(fb_block("disk alarm"));
    assert_true(fb_settle(WAIT_MS));
    deliver_event("ManyPublished", "conv-4y", "{\"n\":2}");
    uint64_t last = deliver_event("Plain", "conv-4y", "{}"); /* acked: the above completed */
    assert_true(fb_wait_tag(conn1, last, FB_TAG_ACKED, WAIT_MS));
    assert_true(fb_settle(WAIT_MS));
    assert_int_equal(fb_count(FB_PUBLISH, conn1), 3);

    assert_true(fb_lose("connection lost: reset"));
    assert_true(fb_wait_count(FB_CONSUME, 0, 2, WAIT_MS));
    unsigned c2 = fb_current();
    assert_true(fb_wait_count(FB_PUBLISH, c2, 5, WAIT_MS)); /* not blocked any more */
    static const char *const conv[] = {"conv-4x", "conv-4x", "conv-4x", "conv-4y", "conv-4y"};
    static const int i_of[] = {0, 1, 2, 0, 1};
    for (size_t i = 0; i < 5; i++) {
        const fb_rec_t *p = fb_nth(FB_PUBLISH, c2, i);
        assert_string_equal(p->conversation_id, conv[i]);
        assert_int_equal(json_int(p->body, "i"), i_of[i]);
    }
    assert_true(fb_confirm(5, true, true));
    stop_ok();
}

/* The handler finishes after the connection died: its publishes go out on
 * the new connection, its (old) tag is neither acked nor rejected. */
static void handler_finishing_after_reconnect_publishes_on_new_connection(void **state)
{
    (void)state;
    start(4, 5000);
    uint64_t old = deliver_event("Blocking", "conv-4c", "{}");
    assert_true(fb_wait_mark("enter:Blocking", 1, WAIT_MS));
    assert_true(fb_lose("connection lost: reset"));
    assert_true(fb_wait_count(FB_CONSUME, 0, 2, WAIT_MS));
    unsigned c2 = fb_current();
    gate_set(&blocker, true);
    assert_true(fb_wait_count(FB_PUBLISH, c2, 1, WAIT_MS));
    assert_string_equal(fb_nth(FB_PUBLISH, c2, 0)->key, "Unblocked");
    assert_true(fb_confirm(1, false, true));
    assert_true(fb_settle(WAIT_MS));
    assert_int_equal(fb_count(FB_ACK, 0), 0);
    assert_int_equal(fb_count(FB_REJECT, 0), 0);
    assert_int_equal(fb_tag(conn1, old), FB_TAG_UNACKED);
    stop_ok();
}

/* A broker call that fails makes the service drop that connection (no more
 * calls on it: the fake flags them) and publish again on the next one. */
static void failed_publish_reconnects_and_publishes_everything_again(void **state)
{
    (void)state;
    start(4, 5000);
    fb_fail(FB_PUBLISH, 1);
    deliver_event("ManyPublished", "conv-4d", "{\"n\":2}");
    assert_true(fb_wait_count(FB_CONSUME, 0, 2, WAIT_MS));
    unsigned c2 = fb_current();
    assert_true(fb_nth(FB_PUBLISH, conn1, 0)->failed);
    assert_int_equal(fb_count(FB_PUBLISH, conn1), 1);
    assert_true(fb_wait_count(FB_PUBLISH, c2, 2, WAIT_MS));
    assert_int_equal(json_int(fb_nth(FB_PUBLISH, c2, 0)->body, "i"), 0);
    assert_int_equal(json_int(fb_nth(FB_PUBLISH, c2, 1)->body, "i"), 1);
    assert_true(fb_confirm(2, true, true));
    assert_true(fb_settle(WAIT_MS));
    assert_int_equal(fb_count(FB_ACK, 0), 0); /* its tag died with conn1 */
    stop_ok();
}

static void failed_ack_drops_the_connection_and_reconnects(void **state)
{
    (void)state;
    start(4, 5000);
    fb_fail(FB_ACK, 1);
    deliver_event("Plain", "conv-4e", "{}");
    assert_true(fb_wait_count(FB_CONSUME, 0, 2, WAIT_MS));
    assert_true(fb_nth(FB_ACK, conn1, 0)->failed);
    unsigned c2 = fb_current();
    uint64_t t = deliver_event("Plain", "conv-4e", "{}");
    assert_true(fb_wait_tag(c2, t, FB_TAG_ACKED, WAIT_MS));
    stop_ok();
}

static void consumer_cancelled_by_broker_reconnects_and_consumes_again(void **state)
{
    (void)state;
    start(4, 5000);
    assert_true(fb_cancel("amq.ctag-fake"));
    assert_true(fb_wait_count(FB_CONSUME, 0, 2, WAIT_MS));
    assert_int_not_equal(fb_current(), conn1);
    assert_true(fb_wait_log("svc.ERROR", "amq.ctag-fake", WAIT_MS));
    stop_ok();
}

static void declare_failure_is_retried(void **state)
{
    (void)state;
    fb_fail(FB_DECLARE, 1);
    char err[256];
    snprintf(v_workers, sizeof v_workers, "2");
    assert_int_equal(bh__service_new(&svc, &cfg, &loaded, err, sizeof err), 0);
    assert_int_equal(bh__service_init(svc, err, sizeof err), 0);
    assert_int_equal(bh__service_start(svc, on_io_exit, NULL, err, sizeof err), 0);
    assert_true(fb_wait_count(FB_CONSUME, 0, 1, WAIT_MS));
    assert_int_equal(fb_count(FB_CONNECT, 0), 2);
    assert_true(fb_nth(FB_DECLARE, 0, 0)->failed);
    assert_int_equal(fb_count(FB_FREE, fb_nth(FB_CONNECT, 0, 0)->conn), 1);
    assert_string_equal(fb_nth(FB_CONNECT, 0, 1)->text, url1); /* next URL */
    stop_ok();
}

/* ========================================================================= */
/* 5. the confirm window                                                     */

static void at_most_1000_publishes_unconfirmed_and_all_sent_exactly_once(void **state)
{
    (void)state;
    start(4, 5000);
    uint64_t tag = deliver_event("ManyPublished", "conv-5", "{\"n\":1500}");
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 1000, WAIT_MS));
    assert_true(fb_settle(WAIT_MS));
    assert_int_equal(fb_count(FB_PUBLISH, conn1), 1000);
    assert_int_equal(fb_unconfirmed(conn1), 1000);

    assert_true(fb_confirm(500, true, true));
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 1500, WAIT_MS));
    assert_true(fb_settle(WAIT_MS));
    assert_int_equal(fb_count(FB_PUBLISH, conn1), 1500);
    assert_true(fb_max_unconfirmed(conn1) <= 1000);
    assert_int_equal(fb_tag(conn1, tag), FB_TAG_UNACKED);

    assert_true(fb_confirm(1500, true, true));
    assert_true(fb_wait_tag(conn1, tag, FB_TAG_ACKED, WAIT_MS));
    assert_true(fb_settle(WAIT_MS));
    assert_int_equal(fb_count(FB_PUBLISH, conn1), 1500);
    for (size_t i = 0; i < 1500; i++)
        assert_int_equal(json_int(fb_nth(FB_PUBLISH, conn1, i)->body, "i"), (json_int_t)i);
    stop_ok();
}

/* ========================================================================= */
/* 6. connection.blocked                                                     */

static void publishes_and_logs_are_held_while_blocked_and_sent_after(void **state)
{
    (void)state;
    start(1, 5000); /* one worker: completions come back in delivery order */
    size_t logs = fb_count(FB_PUBLISH_LOG, 0);
    assert_true(fb_block("low on memory"));
    assert_true(fb_settle(WAIT_MS));
    uint64_t tag = deliver_event("ManyPublished", "conv-6", "{\"n\":2}");
    deliver("events", "Logging", "conv-6", "", "", NULL, "{\"who\":\"blocked\"}", false);
    /* Acks are not held: once this one is acked, the two before it were
     * completed, and their publishes and log would have been sent. */
    uint64_t last = deliver_event("Plain", "conv-6", "{}");
    assert_true(fb_wait_tag(conn1, last, FB_TAG_ACKED, WAIT_MS));
    assert_true(fb_settle(WAIT_MS));
    assert_int_equal(fb_count(FB_PUBLISH, 0), 0);
    assert_int_equal(fb_count(FB_PUBLISH_LOG, 0), logs);

    assert_true(fb_block(NULL));
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 2, WAIT_MS));
    assert_true(fb_wait_log("svc.NOTICE", "hello blocked", WAIT_MS));
    assert_true(fb_wait_log("svc.WARNING", "low on memory", WAIT_MS));
    const fb_rec_t *r;
    for (size_t i = 0; (r = fb_nth(FB_PUBLISH, 0, i)); i++) assert_false(r->while_blocked);
    for (size_t i = 0; (r = fb_nth(FB_PUBLISH_LOG, 0, i)); i++) assert_false(r->while_blocked);
    assert_true(fb_confirm(2, true, true));
    assert_true(fb_wait_tag(conn1, tag, FB_TAG_ACKED, WAIT_MS));
    stop_ok();
}

/* rabbitmq-c would block this thread writing to a full socket: with a
 * broker that stopped reading, the service writes no more than the socket
 * takes (the fake flags a write that would block), and resumes once it
 * drains. */
static void publishes_wait_for_room_in_the_socket(void **state)
{
    (void)state;
    start(1, 5000);
    fb_socket_stuck(true);
    uint64_t tag = deliver_event("ManyPublished", "conv-6b", "{\"n\":1000}");
    uint64_t last = deliver_event("Plain", "conv-6b", "{}"); /* acks need no room */
    assert_true(fb_wait_tag(conn1, last, FB_TAG_ACKED, WAIT_MS));
    assert_true(fb_settle(WAIT_MS));
    size_t sent = fb_count(FB_PUBLISH, conn1);
    assert_in_range(sent, 1, 999);
    no_violations();

    fb_socket_stuck(false);
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 1000, WAIT_MS));
    assert_true(fb_confirm(1000, true, true));
    assert_true(fb_wait_tag(conn1, tag, FB_TAG_ACKED, WAIT_MS));
    for (size_t i = 0; i < 1000; i++)
        assert_int_equal(json_int(fb_nth(FB_PUBLISH, conn1, i)->body, "i"), (json_int_t)i);
    stop_ok();
}

/* A new connection is a new socket with its own (maybe smaller) buffer:
 * room measured on the old one must not be spent on it. */
static void socket_room_is_measured_again_after_reconnect(void **state)
{
    (void)state;
    start(1, 5000); /* conn1: a 64 KiB buffer, measured by the start-up logs */
    fb_socket_size(8 * 1024);
    assert_true(fb_lose("connection lost: reset"));
    assert_true(fb_wait_count(FB_CONSUME, 0, 2, WAIT_MS));
    unsigned c2 = fb_current();
    assert_true(fb_settle(WAIT_MS));
    /* 200 publishes of about 100 bytes, sent in one turn if room allows. */
    uint64_t tag = deliver_event("ManyPublished", "conv-6c", "{\"n\":200}");
    assert_true(fb_wait_count(FB_PUBLISH, c2, 200, WAIT_MS));
    no_violations(); /* no write beyond the new socket's room */
    assert_true(fb_confirm(200, true, true));
    assert_true(fb_wait_tag(c2, tag, FB_TAG_ACKED, WAIT_MS));
    stop_ok();
}

/* ========================================================================= */
/* 7. outcomes and bad input                                                 */

/* The Retry event `conv` back on svc.events from the default exchange: a
 * retry copy after `attempt` failures. */
static fb_msg_t retry_copy(const char *conv, const char *body, unsigned attempt)
{
    return (fb_msg_t){.exchange = "",
                      .routing_key = "svc.events",
                      .content_type = "application/json",
                      .conversation_id = conv,
                      .reply_to = "",
                      .correlation_id = "",
                      .body = body,
                      .attempt = attempt,
                      .first_exchange = "events",
                      .first_routing_key = "Retry"};
}

/* Requeue once, counting failures: the first failure of an event puts a
 * copy with x-bushost-attempt 1 straight back on the service's queue and
 * acks the original once the copy is confirmed; the copy failing again is
 * dead-lettered. */
static void retry_copies_the_message_back_once_then_gives_up(void **state)
{
    (void)state;
    start(4, 5000);
    uint64_t tag = deliver_event("Retry", "conv-7a", "{}");
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 1, WAIT_MS));
    const fb_rec_t *p = fb_nth(FB_PUBLISH, conn1, 0);
    assert_int_equal(p->exchange, BH__EX_DEFAULT);
    assert_string_equal(p->key, "svc.events");
    assert_int_equal(p->attempt, 1);
    assert_string_equal(p->first_exchange, "events");
    assert_string_equal(p->first_routing_key, "Retry");
    assert_true(fb_settle(WAIT_MS));
    assert_int_equal(fb_tag(conn1, tag), FB_TAG_UNACKED); /* the copy is not safe yet */
    assert_true(fb_confirm(1, false, true));
    assert_true(fb_wait_tag(conn1, tag, FB_TAG_ACKED, WAIT_MS));
    json_t *g = wait_gelf("svc.ALERT", "requeueing it once");
    assert_json_str(g, "_conversation_id", "conv-7a");
    json_decref(g);

    fb_msg_t back = retry_copy("conv-7a", "{}", 1);
    uint64_t t2 = fb_deliver(&back);
    assert_true(fb_wait_tag(conn1, t2, FB_TAG_DEAD, WAIT_MS));
    g = wait_gelf("svc.EMERGENCY", "Giving up on");
    assert_json_str(g, "short_message", "Giving up on Retry");
    assert_json_str(g, "_conversation_id", "conv-7a");
    assert_int_equal(json_integer_value(json_object_get(g, "level")), 0);
    json_decref(g);
    assert_int_equal(fb_count(FB_PUBLISH, 0), 1);
    stop_ok();
}

/* Redelivered is no failure (a drain, a restart, a lost connection gave it
 * back): the message still gets its one retry. */
static void retry_of_a_redelivery_that_never_failed_still_copies_it_back(void **state)
{
    (void)state;
    start(4, 5000);
    uint64_t tag = deliver("events", "Retry", "conv-7b", "", "", NULL, "{}", true);
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 1, WAIT_MS));
    assert_int_equal(fb_nth(FB_PUBLISH, conn1, 0)->attempt, 1);
    assert_true(fb_confirm(1, false, true));
    assert_true(fb_wait_tag(conn1, tag, FB_TAG_ACKED, WAIT_MS));
    assert_true(fb_wait_log("svc.ALERT", "requeueing it once", WAIT_MS));
    stop_ok();
}

/* Delayed retry (retry_delays = 1s, 10s): BH_RETRY parks a copy in the retry
 * queue of this attempt and acks the original only once the copy is
 * confirmed; the copy comes back through the default exchange and is
 * dispatched as what it was; after the last delay it is dead-lettered. */
static void delayed_retry_parks_a_copy_then_gives_up_after_the_last_delay(void **state)
{
    (void)state;
    kv_ct.next = &kv_delays;
    start(1, 5000);
    uint64_t t1 = deliver_event("Retry", "conv-7r", "{\"k\":1}");
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 1, WAIT_MS));
    const fb_rec_t *p = fb_nth(FB_PUBLISH, conn1, 0);
    assert_int_equal(p->exchange, BH__EX_DEFAULT);
    assert_string_equal(p->key, "svc.events.retry.1000");
    assert_true(p->mandatory);
    assert_int_equal(p->attempt, 1);
    assert_string_equal(p->first_exchange, "events");
    assert_string_equal(p->first_routing_key, "Retry");
    assert_string_equal(p->body, "{\"k\":1}");
    assert_string_equal(p->conversation_id, "conv-7r");
    assert_true(fb_settle(WAIT_MS));
    assert_int_equal(fb_tag(conn1, t1), FB_TAG_UNACKED); /* the copy is not safe yet */
    assert_true(fb_confirm(1, false, true));
    assert_true(fb_wait_tag(conn1, t1, FB_TAG_ACKED, WAIT_MS));
    assert_true(fb_wait_log("svc.ALERT", "retry 1 of 2 in 1000 ms", WAIT_MS));

    /* Back after 1 s: it is the Retry event again; next stop: the 10 s queue. */
    fb_msg_t back = retry_copy("conv-7r", "{\"k\":1}", 1);
    uint64_t t2 = fb_deliver(&back);
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 2, WAIT_MS));
    p = fb_nth(FB_PUBLISH, conn1, 1);
    assert_string_equal(p->key, "svc.events.retry.10000");
    assert_int_equal(p->attempt, 2);
    assert_string_equal(p->first_routing_key, "Retry");
    assert_int_equal(fb_count_mark("enter:Retry"), 2);
    assert_true(fb_confirm(2, false, true));
    assert_true(fb_wait_tag(conn1, t2, FB_TAG_ACKED, WAIT_MS));

    /* Back after the last delay and failing again: dead-lettered. */
    back.attempt = 2;
    uint64_t t3 = fb_deliver(&back);
    assert_true(fb_wait_tag(conn1, t3, FB_TAG_DEAD, WAIT_MS));
    json_t *g = wait_gelf("svc.EMERGENCY", "Giving up on");
    assert_json_str(g, "short_message", "Giving up on Retry");
    json_decref(g);
    assert_true(fb_settle(WAIT_MS));
    assert_int_equal(fb_count(FB_PUBLISH, 0), 2);
    assert_int_equal(fb_count_mark("enter:Retry"), 3);
    stop_ok();
}

/* A message back from a retry queue that now succeeds is just acked; a
 * command keeps its reply_to and correlation id through the retry. */
static void delayed_retry_copy_is_dispatched_as_the_original(void **state)
{
    (void)state;
    kv_ct.next = &kv_delays;
    start(1, 5000);
    fb_msg_t back = {.exchange = "",
                     .routing_key = "svc.commands",
                     .content_type = "application/json",
                     .conversation_id = "conv-7s",
                     .reply_to = "caller.Computed",
                     .correlation_id = "corr-7s",
                     .body = "{\"a\":1,\"b\":1}",
                     .attempt = 1,
                     .first_exchange = "commands",
                     .first_routing_key = "svc.Compute"};
    uint64_t tag = fb_deliver(&back);
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 1, WAIT_MS));
    const fb_rec_t *p = fb_nth(FB_PUBLISH, conn1, 0);
    assert_string_equal(p->key, "caller.Computed");
    assert_string_equal(p->correlation_id, "corr-7s");
    assert_string_equal(p->status, "success");
    assert_int_equal(json_int(p->body, "sum"), 2);
    assert_true(fb_confirm(1, false, true));
    assert_true(fb_wait_tag(conn1, tag, FB_TAG_ACKED, WAIT_MS));
    stop_ok();
}

/* RabbitMQ answers an unroutable mandatory publish with basic.return, then
 * basic.ack. A retry copy returned so (its retry queue is gone) is not safe
 * anywhere: the original must not be acked, or the message is lost. */
static void returned_retry_copy_does_not_ack_the_original(void **state)
{
    (void)state;
    kv_ct.next = &kv_delays;
    start(1, 5000);
    uint64_t tag = deliver_event("Retry", "conv-7t", "{}");
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 1, WAIT_MS));
    assert_true(fb_return("", "svc.events.retry.1000", 312, "NO_ROUTE", "conv-7t"));
    assert_true(fb_confirm(1, false, true));
    assert_true(fb_wait_log("svc.ERROR", "svc.events.retry.1000", WAIT_MS));
    assert_true(fb_settle(WAIT_MS));
    assert_int_not_equal(fb_tag(conn1, tag), FB_TAG_ACKED);
    stop_ok();
}

static void reject_outcome_dead_letters_at_once(void **state)
{
    (void)state;
    start(4, 5000);
    uint64_t tag = deliver_event("Reject", "conv-7c", "{}");
    assert_true(fb_wait_tag(conn1, tag, FB_TAG_DEAD, WAIT_MS));
    assert_int_equal(fb_count(FB_ACK, 0), 0);
    stop_ok();
}

static void message_without_conversation_id_is_dead_lettered_unhandled(void **state)
{
    (void)state;
    start(4, 5000);
    uint64_t t1 = deliver("events", "Plain", NULL, "", "", NULL, "{}", false);
    uint64_t t2 = deliver("events", "Plain", "", "", "", NULL, "{}", false);
    assert_true(fb_wait_tag(conn1, t1, FB_TAG_DEAD, WAIT_MS));
    assert_true(fb_wait_tag(conn1, t2, FB_TAG_DEAD, WAIT_MS));
    assert_true(fb_wait_log("svc.EMERGENCY", "missing conversation_id", WAIT_MS));
    assert_int_equal(fb_count_mark("enter:Plain"), 0);
    stop_ok();
}

static void undecodable_payload_is_dead_lettered_unhandled(void **state)
{
    (void)state;
    start(4, 5000);
    uint64_t t1 = deliver_event("Plain", "conv-7e", "{not json");
    uint64_t t2 = deliver_event("Plain", "conv-7e", "[1, 2]"); /* not a map */
    fb_msg_t m = {.exchange = "events",
                  .routing_key = "Plain",
                  .content_type = "application/cbor",
                  .conversation_id = "conv-7e",
                  .body = "\xff\xff"};
    uint64_t t3 = fb_deliver(&m);
    assert_true(fb_wait_tag(conn1, t1, FB_TAG_DEAD, WAIT_MS));
    assert_true(fb_wait_tag(conn1, t2, FB_TAG_DEAD, WAIT_MS));
    assert_true(fb_wait_tag(conn1, t3, FB_TAG_DEAD, WAIT_MS));
    json_t *g = wait_gelf("svc.EMERGENCY", "cannot decode payload");
    assert_json_str(g, "_conversation_id", "conv-7e");
    json_decref(g);
    assert_int_equal(fb_count_mark("enter:Plain"), 0);
    assert_int_equal(fb_count(FB_ACK, 0), 0);
    stop_ok();
}

static void message_without_handler_or_valid_envelope_is_dead_lettered(void **state)
{
    (void)state;
    start(4, 5000);
    uint64_t t[4];
    t[0] = deliver_event("NobodyListens", "conv-7f", "{}");
    t[1] = deliver("commands", "svc.Nope", "conv-7f", "caller.R", "c1", NULL, "{}", false);
    t[2] = deliver("commands", "other.Compute", "conv-7f", "caller.R", "c1", NULL, "{}", false);
    t[3] = deliver("commands", "svc.Compute", "conv-7f", "", "", NULL, "{}", false);
    for (int i = 0; i < 4; i++) assert_true(fb_wait_tag(conn1, t[i], FB_TAG_DEAD, WAIT_MS));
    assert_true(fb_wait_log("svc.EMERGENCY", "no handler for event 'NobodyListens'", WAIT_MS));
    assert_true(fb_wait_log("svc.EMERGENCY", "invalid envelope", WAIT_MS));
    assert_int_equal(fb_count_mark("enter:Compute"), 0);
    stop_ok();
}

/* The result of svc.Compute {2, 3} on the first connection, confirmed and
 * its command acked. */
static void compute_round_trip(void)
{
    uint64_t tag = deliver("commands", "svc.Compute", "conv-7g", "caller.Computed", "corr-7", NULL,
                           "{\"a\":2,\"b\":3}", false);
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 1, WAIT_MS));
    const fb_rec_t *p = fb_nth(FB_PUBLISH, conn1, 0);
    assert_int_equal(p->exchange, BH__EX_COMMANDS);
    assert_true(p->mandatory);
    assert_string_equal(p->key, "caller.Computed");
    assert_string_equal(p->correlation_id, "corr-7");
    assert_string_equal(p->conversation_id, "conv-7g");
    assert_string_equal(p->reply_to, "");
    assert_non_null(p->status);
    assert_string_equal(p->status, "success");
    assert_int_equal(json_int(p->body, "sum"), 5);
    assert_true(fb_confirm(1, false, true));
    assert_true(fb_wait_tag(conn1, tag, FB_TAG_ACKED, WAIT_MS));
}

/* Headers are copied byte for byte: a conversation_id with a NUL, sent as
 * bytes ('x') or as a string ('S'), comes back whole and of the same kind on
 * the result and on the events published while handling it. */
static void conversation_id_goes_on_byte_for_byte_with_its_kind(void **state)
{
    static const char conv[] = "conv\0nul\xff";
    fb_msg_t cmd = {.exchange = "commands",
                    .routing_key = "svc.Compute",
                    .content_type = "application/json",
                    .conversation_id = conv,
                    .conversation_len = sizeof conv - 1,
                    .conversation_bytes = true,
                    .reply_to = "caller.Computed",
                    .correlation_id = "corr-7",
                    .body = "{\"a\":2,\"b\":3}"};
    fb_msg_t ev = {.exchange = "events",
                   .routing_key = "ManyPublished",
                   .content_type = "application/json",
                   .conversation_id = "a\0b",
                   .conversation_len = 3,
                   .reply_to = "",
                   .correlation_id = "",
                   .body = "{\"n\":1}"};

    (void)state;
    start(1, 5000);
    uint64_t t1 = fb_deliver(&cmd);
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 1, WAIT_MS));
    const fb_rec_t *p = fb_nth(FB_PUBLISH, conn1, 0);
    assert_string_equal(p->status, "success");
    assert_int_equal(p->conversation_len, sizeof conv - 1);
    assert_memory_equal(p->conversation_id, conv, sizeof conv - 1);
    assert_true(p->conversation_bytes);
    uint64_t t2 = fb_deliver(&ev);
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 2, WAIT_MS));
    p = fb_nth(FB_PUBLISH, conn1, 1);
    assert_string_equal(p->key, "Many");
    assert_int_equal(p->conversation_len, 3);
    assert_memory_equal(p->conversation_id, "a\0b", 3);
    assert_false(p->conversation_bytes);
    assert_true(fb_confirm(2, true, true));
    assert_true(fb_wait_tag(conn1, t1, FB_TAG_ACKED, WAIT_MS));
    assert_true(fb_wait_tag(conn1, t2, FB_TAG_ACKED, WAIT_MS));
    stop_ok();
}

static void command_result_goes_to_reply_to_with_correlation_and_status(void **state)
{
    (void)state;
    start(4, 5000);
    compute_round_trip();
    stop_ok();
}

/* One worker: Blocking runs (and waits for the gate), n Plain events are
 * delivered behind it and wait. Returns Blocking's tag. */
static uint64_t blocking_with_plain_behind(const char *conv, uint64_t *tags, int n)
{
    start(1, 5000);
    uint64_t blocked = deliver_event("Blocking", conv, "{}");
    assert_true(fb_wait_mark("enter:Blocking", 1, WAIT_MS));
    for (int i = 0; i < n; i++) tags[i] = deliver_event("Plain", conv, "{}");
    assert_true(fb_settle(WAIT_MS));
    return blocked;
}

/* A handler that blocks on the thread that read it loses the lead of the
 * loop (relay.h), which carries on: the next deliveries are dispatched. With
 * workers = 1 they still run one at a time, in order, after it. */
static void one_worker_stays_one_at_a_time_while_a_blocked_leader_hands_over(void **state)
{
    (void)state;
    uint64_t tags[3], blocked = blocking_with_plain_behind("conv-7r", tags, 3);
    assert_int_equal(fb_count_mark("enter:Plain"), 0);
    gate_set(&blocker, true);
    assert_true(fb_wait_mark("enter:Plain", 3, WAIT_MS));
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 1, WAIT_MS));
    assert_true(fb_confirm(1, false, true));
    assert_true(fb_wait_tag(conn1, blocked, FB_TAG_ACKED, WAIT_MS));
    for (int i = 0; i < 3; i++) assert_true(fb_wait_tag(conn1, tags[i], FB_TAG_ACKED, WAIT_MS));
    stop_ok();
}

/* workers = 0: the same, with the handler on the I/O thread itself. */
static void zero_workers_run_handlers_on_the_io_thread(void **state)
{
    (void)state;
    start(0, 5000);
    compute_round_trip();
    uint64_t tag =
        deliver("commands", "svc.Computed", "conv-7z", "", "corr-7", "success", "{}", false);
    assert_true(fb_wait_tag(conn1, tag, FB_TAG_ACKED, WAIT_MS));
    assert_int_equal(fb_count_mark("enter:Computed"), 1);
    stop_ok();
    assert_true(uv_thread_equal(&compute_thread, &io_thread));
}

/* workers = 0 and a handler that takes 150 ms: it is handled all the same,
 * and a WARNING says it held up the I/O thread. */
static void zero_workers_log_a_slow_handler(void **state)
{
    (void)state;
    start(0, 5000);
    uint64_t tag = deliver_event("Blocking", "conv-7s", "{}");
    assert_true(fb_wait_mark("enter:Blocking", 1, WAIT_MS));
    uv_sleep(150);
    gate_set(&blocker, true);
    json_t *g = wait_gelf("svc.WARNING", "on the I/O thread (workers = 0)");
    assert_json_str(g, "_conversation_id", "conv-7s");
    json_decref(g);
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 1, WAIT_MS)); /* Unblocked */
    assert_true(fb_confirm(1, false, true));
    assert_true(fb_wait_tag(conn1, tag, FB_TAG_ACKED, WAIT_MS));
    stop_ok();
}

static void result_is_handed_to_the_results_handler(void **state)
{
    (void)state;
    start(4, 5000);
    uint64_t tag =
        deliver("commands", "svc.Computed", "conv-7h", "", "corr-7", "success", "{}", false);
    assert_true(fb_wait_tag(conn1, tag, FB_TAG_ACKED, WAIT_MS));
    assert_int_equal(fb_count_mark("enter:Computed"), 1);
    stop_ok();
}

static void returned_message_is_logged_as_an_error(void **state)
{
    (void)state;
    start(4, 5000);
    assert_true(fb_return("commands", "nobody.Listen", 312, "NO_ROUTE", "conv-7i"));
    json_t *g = wait_gelf("svc.ERROR", "nobody.Listen");
    assert_json_str(g, "_conversation_id", "conv-7i");
    json_decref(g);
    stop_ok();
}

/* ========================================================================= */
/* 8, 9. stopping                                                            */

static void graceful_stop_requeues_queued_finishes_running_then_closes(void **state)
{
    (void)state;
    uint64_t queued[5], run = blocking_with_plain_behind("conv-8", queued, 5);

    bh__service_stop(svc);
    tag_range_t back = {conn1, queued[0], queued[4], FB_TAG_REQUEUED};
    assert_true(fb_wait(range_is, &back, WAIT_MS));
    assert_int_equal(fb_count(FB_CANCEL_ALL, conn1), 1);
    const fb_rec_t *cancel = fb_nth(FB_CANCEL_ALL, conn1, 0), *r;
    for (size_t i = 0; (r = fb_nth(FB_REJECT, conn1, i)); i++) {
        assert_true(r->at > cancel->at);
        assert_true(r->flag);
    }
    assert_true(fb_wait_log("svc.WARNING", "Shutting down", WAIT_MS));
    assert_int_equal(fb_count_mark("enter:Plain"), 0);

    /* A delivery that was already on its way after the cancel goes back. */
    uint64_t late = deliver_event("Plain", "conv-8", "{}");
    assert_true(fb_wait_tag(conn1, late, FB_TAG_REQUEUED, WAIT_MS));

    /* The running handler finishes; its publish is confirmed; it is acked;
     * then the connection closes. */
    assert_true(fb_settle(WAIT_MS));
    assert_int_equal(fb_tag(conn1, run), FB_TAG_UNACKED);
    assert_int_equal(fb_count(FB_CLOSE, 0), 0);
    gate_set(&blocker, true);
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 1, WAIT_MS));
    assert_true(fb_settle(WAIT_MS));
    assert_int_equal(fb_count(FB_CLOSE, 0), 0); /* waits for the confirm */
    assert_true(fb_confirm(1, false, true));
    assert_true(fb_wait_count(FB_CLOSE, conn1, 1, WAIT_MS));
    assert_int_equal(fb_tag(conn1, run), FB_TAG_ACKED);
    const fb_rec_t *ack = fb_nth(FB_ACK, conn1, 0), *close = fb_nth(FB_CLOSE, conn1, 0);
    assert_true(ack->at < close->at);
    assert_int_equal(fb_count(FB_FREE, 0), 0);
    assert_int_equal(fb_count_mark("enter:Plain"), 0);
    stop_ok(); /* join returns true */
}

/* Stopping, the connection dies before the last publish is confirmed: it is
 * sent again on a new connection that consumes nothing, then that one is
 * closed. The input's tag died with the old connection: not acked. */
static void connection_lost_while_stopping_resends_without_consuming(void **state)
{
    (void)state;
    start(1, 5000);
    uint64_t run = deliver_event("Blocking", "conv-8b", "{}");
    assert_true(fb_wait_mark("enter:Blocking", 1, WAIT_MS));
    bh__service_stop(svc);
    assert_true(fb_wait_count(FB_CANCEL_ALL, conn1, 1, WAIT_MS));
    gate_set(&blocker, true);
    assert_true(fb_wait_count(FB_PUBLISH, conn1, 1, WAIT_MS));
    assert_true(fb_lose("connection lost: reset"));
    assert_true(fb_wait_count(FB_PUBLISH, 0, 2, WAIT_MS));
    unsigned c2 = fb_current();
    assert_int_not_equal(c2, conn1);
    assert_string_equal(fb_nth(FB_PUBLISH, c2, 0)->key, "Unblocked");
    assert_int_equal(fb_count(FB_DECLARE, c2), 1);
    assert_int_equal(fb_count(FB_CONSUME, c2), 0);
    assert_true(fb_settle(WAIT_MS));
    assert_int_equal(fb_count(FB_CLOSE, c2), 0); /* waits for the confirm */
    assert_true(fb_confirm(1, false, true));
    assert_true(fb_wait_count(FB_CLOSE, c2, 1, WAIT_MS));
    assert_int_equal(fb_count(FB_ACK, 0), 0);
    assert_int_equal(fb_tag(conn1, run), FB_TAG_UNACKED);
    stop_ok();
}

static void stop_while_broker_unreachable_ends_promptly(void **state)
{
    (void)state;
    char err[256];
    fb_fail(FB_CONNECT, 1000);
    snprintf(v_workers, sizeof v_workers, "2");
    cfg.shutdown_timeout = 5000;
    assert_int_equal(bh__service_new(&svc, &cfg, &loaded, err, sizeof err), 0);
    assert_int_equal(bh__service_init(svc, err, sizeof err), 0);
    assert_int_equal(bh__service_start(svc, on_io_exit, NULL, err, sizeof err), 0);
    assert_true(fb_wait_count(FB_CONNECT, 0, 2, WAIT_MS)); /* both URLs tried */
    assert_string_equal(fb_nth(FB_CONNECT, 0, 1)->text, url1);
    uint64_t t0 = uv_hrtime();
    stop_ok();
    assert_true(uv_hrtime() - t0 < 2000000000u); /* not the 5 s deadline */
}

static bh__service_t *stuck_svc; /* never freed: its handler never returns */

/* Last in the list: its worker thread stays stuck until the process ends. */
static void stop_deadline_leaves_a_stuck_message_unsettled(void **state)
{
    (void)state;
    start(1, 300);
    uint64_t tag = deliver_event("Stuck", "conv-9", "{}");
    assert_true(fb_wait_mark("enter:Stuck", 1, WAIT_MS));
    uint64_t t0 = uv_hrtime();
    bh__service_stop(svc);
    assert_false(bh__service_join(svc));
    assert_true(uv_hrtime() - t0 >= 300000000u); /* it did wait for the deadline */
    assert_int_equal(fb_tag(conn1, tag), FB_TAG_UNACKED);
    assert_int_equal(fb_count(FB_ACK, 0), 0);
    assert_int_equal(fb_count(FB_REJECT, 0), 0);
    assert_int_equal(fb_count(FB_CLOSE, conn1), 1); /* the broker requeues it */
    assert_true(fb_find_log("svc.ERROR", "shutdown deadline reached") != NULL);
    /* fini and unloading are unsafe while plugin code runs. */
    assert_false(bh__service_free(svc));
    assert_int_equal(fb_count_mark("fini"), 0);
    stuck_svc = svc;
    svc = NULL;
    no_violations();
}

/* ========================================================================= */
/* 10. logs                                                                  */

static void handler_log_is_published_as_gelf_with_the_conversation_id(void **state)
{
    (void)state;
    start(4, 5000);
    uint64_t tag =
        deliver("events", "Logging", "conv-10", "", "", NULL, "{\"who\":\"world\"}", false);
    json_t *g = wait_gelf("svc.NOTICE", "hello world");
    assert_json_str(g, "version", "1.1");
    assert_json_str(g, "short_message", "hello world");
    assert_json_str(g, "_conversation_id", "conv-10");
    assert_json_str(g, "_logical_service", "svc");
    assert_json_str(g, "_levelname", "NOTICE");
    assert_int_equal(json_integer_value(json_object_get(g, "level")), BH_NOTICE);
    const char *host = json_string_value(json_object_get(g, "host"));
    assert_non_null(host);
    assert_memory_equal(host, "svc@", 4);
    json_decref(g);
    const fb_rec_t *log = fb_find_log("svc.NOTICE", "hello world");
    assert_int_equal(log->conn, conn1);
    assert_true(fb_wait_tag(conn1, tag, FB_TAG_ACKED, WAIT_MS));
    stop_ok();
}

static void healthcheck_is_a_periodic_notice_log(void **state)
{
    (void)state;
    cfg.healthcheck_interval = 1; /* seconds */
    start(1, 5000);
    json_t *g = wait_gelf("svc.NOTICE", "healthcheck");
    assert_json_str(g, "short_message", "healthcheck: ok");
    assert_json_str(g, "_healthcheck", "ok");
    assert_json_str(g, "_conversation_id", "");
    json_decref(g);
    stop_ok();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(delivery_is_acked_only_after_both_of_its_publishes_are_confirmed),
        T(confirms_out_of_order_ack_only_after_the_last),
        T(ten_deliveries_confirmed_by_one_multiple_ack_get_one_multiple_ack),
        T(ack_never_covers_a_delivery_whose_handler_still_runs),
        T(nacked_publish_is_sent_again_and_input_acked_after_its_ack),
        T(multiple_nack_resends_every_covered_publish_in_order),
        T(reconnect_republishes_unconfirmed_in_order_and_forgets_old_tags),
        T(reconnect_sends_unconfirmed_before_held_publishes),
        T(handler_finishing_after_reconnect_publishes_on_new_connection),
        T(failed_publish_reconnects_and_publishes_everything_again),
        T(failed_ack_drops_the_connection_and_reconnects),
        T(consumer_cancelled_by_broker_reconnects_and_consumes_again),
        T(declare_failure_is_retried),
        T(at_most_1000_publishes_unconfirmed_and_all_sent_exactly_once),
        T(publishes_and_logs_are_held_while_blocked_and_sent_after),
        T(publishes_wait_for_room_in_the_socket),
        T(socket_room_is_measured_again_after_reconnect),
        T(retry_copies_the_message_back_once_then_gives_up),
        T(retry_of_a_redelivery_that_never_failed_still_copies_it_back),
        T(delayed_retry_parks_a_copy_then_gives_up_after_the_last_delay),
        T(delayed_retry_copy_is_dispatched_as_the_original),
        T(returned_retry_copy_does_not_ack_the_original),
        T(reject_outcome_dead_letters_at_once),
        T(message_without_conversation_id_is_dead_lettered_unhandled),
        T(undecodable_payload_is_dead_lettered_unhandled),
        T(message_without_handler_or_valid_envelope_is_dead_lettered),
        T(command_result_goes_to_reply_to_with_correlation_and_status),
        T(conversation_id_goes_on_byte_for_byte_with_its_kind),
        T(one_worker_stays_one_at_a_time_while_a_blocked_leader_hands_over),
        T(zero_workers_run_handlers_on_the_io_thread),
        T(zero_workers_log_a_slow_handler),
        T(result_is_handed_to_the_results_handler),
        T(returned_message_is_logged_as_an_error),
        T(handler_log_is_published_as_gelf_with_the_conversation_id),
        T(healthcheck_is_a_periodic_notice_log),
        T(graceful_stop_requeues_queued_finishes_running_then_closes),
        T(connection_lost_while_stopping_resends_without_consuming),
        T(stop_while_broker_unreachable_ends_promptly),
        T(stop_deadline_leaves_a_stuck_message_unsettled), /* last: leaves a thread stuck */
#undef T
    };
    gate_init(&blocker);
    gate_init(&stuck);
    signal(SIGALRM, on_alarm);
    if (!getenv("BH_TEST_VERBOSE")) bh__log_set_stderr_level(BH_EMERGENCY);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
