/* test_testkit.c -- the test kit (sdk/testkit.c) itself, on a plugin of its
 * own linked into the test: declared payloads, headers, the clock with
 * timers and request deadlines, outside publishes, contract breaches, and
 * loading a .so. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bushost_test.h"

static int ticks, ended;
static char last_status[32];
static void *last_request_ctx;
static bool last_redelivered;

static void on_tick(bh_ctx_t *ctx, void *state)
{
    (void)state;
    ticks++;
    bh_value_t *p = bh_map_new(ctx);
    bh_map_set_int(ctx, p, "tick", ticks);
    bh_publish_event(ctx, "Ticked", p);
    bh_value_free(p);
}

static const bh_field_t ask_fields[] = {
    {.name = "qty", .type = BH_FIELD_INT, .flags = BH_FIELD_MIN, .min = 1}, {0}};
static const bh_schema_t ask = BH_SCHEMA(.fields = ask_fields);

/* Ask: sends Stock.Check with a 500 ms deadline and the qty as its context;
 * answers with the incoming "x-tenant" header. */
static bh_outcome_t on_ask(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    (void)state;
    int64_t qty = 0;
    bh_get_int(msg->payload, "qty", &qty);
    last_redelivered = msg->redelivered;
    bh_command_opts_t o = BH_COMMAND_OPTS(.timeout_ms = 500, .request_ctx = (void *)(intptr_t)qty);
    if (bh_send_command_opts(ctx, "stock.Check", NULL, "Checked", NULL, &o)) return BH_RETRY;
    bh_value_t *p = bh_map_new(ctx);
    const char *tenant = bh_header_str(ctx, "x-tenant");
    bh_map_set_str(ctx, p, "tenant", tenant ? tenant : "none");
    bh_header_t h = {.name = "x-trace-tag", .type = BH_HEADER_INT, .num = 7};
    bh_publish_t r = {
        .size = sizeof r, .kind = BH_KIND_RESULT, .payload = p, .headers = &h, .n_headers = 1};
    int rc = bh_publish(ctx, &r);
    bh_value_free(p);
    return rc ? BH_RETRY : BH_DONE;
}

/* Twice: two results (a breach), and a reserved header. */
static bh_outcome_t on_twice(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    (void)msg;
    (void)state;
    bh_result_success(ctx, NULL);
    bh_result_success(ctx, NULL);
    bh_header_t h = {.name = "conversation_id", .type = BH_HEADER_STRING, .str = "x", .len = 1};
    bh_publish_t e = {
        .size = sizeof e, .kind = BH_KIND_EVENT, .key = "Bad", .headers = &h, .n_headers = 1};
    return bh_publish(ctx, &e) == BH_EINVAL ? BH_DONE : BH_RETRY;
}

static bh_outcome_t on_checked(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    (void)state;
    ended++;
    snprintf(last_status, sizeof last_status, "%s", msg->status);
    last_request_ctx = bh_request_ctx(ctx);
    return BH_DONE;
}

static int pub_done;
static bh_pub_status_t pub_status;
static void on_pub_done(void *ud, bh_pub_status_t status)
{
    (void)ud;
    pub_done++;
    pub_status = status;
}

static const bh_api_t *seen_api;

static int init(bh_ctx_t *ctx, void **state)
{
    (void)state;
    seen_api = ctx->api;
    const char *greeting = bh_config_str(ctx, "greeting");
    bh_value_t *p = bh_map_new(bh_publisher_ctx(bh_publisher(ctx)));
    bh_map_set_str(ctx, p, "greeting", greeting);
    int rc = bh_publisher_event(bh_publisher(ctx), "Started", p, on_pub_done, NULL);
    bh_value_free(p);
    return rc;
}

static const bh_route_t commands[] = {
    {.key = "Ask", .handler = on_ask, .payload = &ask}, {.key = "Twice", .handler = on_twice}, {0}};
static const bh_route_t results[] = {{.key = "Checked", .handler = on_checked}, {0}};
static const bh_timer_t timers[] = {{.name = "tick", .interval_ms = 100, .handler = on_tick}, {0}};
static const bh_config_key_t config[] = {{.key = "greeting", .type = BH_CONF_STR, .def = "hello"},
                                         {0}};
static const bh_plugin_t plugin = {.magic = BH_MAGIC,
                                   .abi_major = BH_ABI_MAJOR,
                                   .abi_minor = BH_ABI_MINOR,
                                   .size = sizeof(bh_plugin_t),
                                   .route_size = sizeof(bh_route_t),
                                   .config_key_size = sizeof(bh_config_key_t),
                                   .name = "kitted",
                                   .version = "1.0",
                                   .service = "kitted",
                                   .commands = commands,
                                   .results = results,
                                   .config = config,
                                   .init = init,
                                   .timers = timers};

static bht_t *up(void)
{
    ticks = ended = pub_done = 0;
    bht_t *t = bht_new(&plugin, "shop");
    assert_non_null(t);
    assert_int_equal(bht_set_config(t, "greeting", "hi"), BH_OK);
    assert_int_equal(bht_init(t), BH_OK);
    return t;
}

static void outside_publishes_are_confirmed_when_the_test_says(void **s)
{
    (void)s;
    bht_t *t = up();
    const bht_rec_t *r = bht_rec(t, BHT_PUBLISH, 0);
    assert_non_null(r);
    assert_string_equal(r->key, "Started");
    assert_true(bht_json_equal(r->json, "{\"greeting\": \"hi\"}"));
    assert_string_equal(r->content_type, "application/cbor");
    assert_int_equal(bht_config_reads(t, "greeting"), 1);
    assert_int_equal(pub_done, 0);
    bht_confirm(t);
    assert_int_equal(pub_done, 1);
    assert_int_equal(pub_status, BH_PUB_CONFIRMED);
    bht_free(t);
}

/* A plugin of this minor may call any slot: the kit fills every one. */
static void every_api_slot_is_filled(void **s)
{
    (void)s;
    bht_t *t = up();
    assert_int_equal(sizeof(bh_api_t) % sizeof(void (*)(void)), 0);
    for (size_t i = 0; i < sizeof(bh_api_t) / sizeof(void (*)(void)); i++) {
        void (*slot)(void);
        memcpy(&slot, (const char *)seen_api + i * sizeof slot, sizeof slot);
        if (!slot) fail_msg("bh_api_t slot %zu is NULL", i);
    }
    bht_free(t);
}

static void timers_run_on_the_kits_clock(void **s)
{
    (void)s;
    bht_t *t = up();
    bht_clear(t);
    bht_advance(t, 99);
    assert_int_equal(ticks, 0);
    bht_advance(t, 1);
    assert_int_equal(ticks, 1);
    bht_advance(t, 350);
    assert_int_equal(ticks, 4);
    assert_int_equal(bht_now_ms(t), 450);
    assert_int_equal(bht_count(t, BHT_PUBLISH), 4);
    const bht_rec_t *a = bht_rec(t, BHT_PUBLISH, 0), *b = bht_rec(t, BHT_PUBLISH, 1);
    assert_string_equal(a->key, "Ticked");
    assert_string_not_equal(a->conversation_id, b->conversation_id); /* each run starts one */
    assert_int_equal(bht_violations(t), 0);
    bht_free(t);
}

static void requests_end_by_answer_timeout_unroutable_or_shutdown(void **s)
{
    (void)s;
    bht_t *t = up();
    bht_clear(t);
    const bh_header_t tenant = {
        .name = "x-tenant", .type = BH_HEADER_STRING, .str = "acme", .len = 4};
    bht_msg_t m = {.json = "{\"qty\": 3}", .headers = &tenant, .n_headers = 1, .redelivered = true};
    assert_int_equal(bht_deliver(t, BH_KIND_COMMAND, "Ask", &m), BH_DONE);
    assert_true(last_redelivered);
    const bht_rec_t *cmd = bht_rec(t, BHT_PUBLISH, 0), *res = bht_rec(t, BHT_RESULT, 0);
    assert_string_equal(cmd->key, "stock.Check");
    assert_string_equal(cmd->reply_to, "shop.Checked"); /* the renamed service's key */
    assert_int_equal(cmd->timeout_ms, 500);
    assert_true(bht_json_equal(res->json, "{\"tenant\": \"acme\"}"));
    assert_string_equal(res->key, "test.Reply");
    assert_int_equal(res->n_headers, 1);
    assert_string_equal(res->headers[0].name, "x-trace-tag");
    assert_int_equal(res->headers[0].num, 7);
    char corr[64];
    snprintf(corr, sizeof corr, "%s", cmd->correlation_id);

    /* The answer ends it, with its context. */
    assert_int_equal(bht_pending_requests(t), 1);
    assert_int_equal(bht_result(t, "shop.Checked", corr, "success", "{}"), BH_DONE);
    assert_string_equal(last_status, "success");
    assert_ptr_equal(last_request_ctx, (void *)(intptr_t)3);
    assert_int_equal(bht_pending_requests(t), 0);

    /* No answer: timeout at the deadline, not before. */
    assert_int_equal(bht_command(t, "shop.Ask", "{\"qty\": 4}"), BH_DONE);
    bht_advance(t, 499);
    assert_int_equal(ended, 1);
    bht_advance(t, 1);
    assert_int_equal(ended, 2);
    assert_string_equal(last_status, "timeout");
    assert_ptr_equal(last_request_ctx, (void *)(intptr_t)4);

    /* Returned by the broker; and one left at shutdown. */
    bht_clear(t);
    assert_int_equal(bht_command(t, "Ask", "{\"qty\": 5}"), BH_DONE);
    assert_int_equal(bht_return_command(t, bht_rec(t, BHT_PUBLISH, 0)->correlation_id), BH_OK);
    assert_string_equal(last_status, "unroutable");
    assert_int_equal(bht_return_command(t, "no-such-id"), BH_ENOENT);
    assert_int_equal(bht_command(t, "Ask", "{\"qty\": 6}"), BH_DONE);
    bht_fini(t);
    assert_string_equal(last_status, "shutdown");
    assert_int_equal(ended, 4);
    assert_int_equal(bht_violations(t), 0);
    bht_free(t);
}

static void the_host_decides_before_a_handler_runs(void **s)
{
    (void)s;
    bht_t *t = up();
    bht_clear(t);
    assert_int_equal(bht_command(t, "Ask", "{\"qty\": 0}"), BHT_INVALID_PAYLOAD);
    const bht_rec_t *r = bht_rec(t, BHT_RESULT, 0);
    assert_string_equal(r->status, "error");
    assert_true(bht_json_equal(
        r->json,
        "{\"error\": \"invalid payload\", \"field\": \"qty\", \"expected\": \"int ≥ 1\"}"));
    const bht_rec_t *w = bht_find_log(t, BH_WARNING, "has an invalid payload");
    assert_non_null(w);
    assert_true(w->by_host);
    assert_int_equal(bht_count(t, BHT_PUBLISH), 0); /* the handler did not run */
    assert_int_equal(bht_command(t, "Ask", "{\"qty\": "), BHT_UNDECODABLE);
    assert_non_null(bht_find_log(t, BH_EMERGENCY, "cannot decode payload"));
    assert_int_equal(bht_command(t, "Nope", "{}"), BHT_NO_HANDLER);
    assert_int_equal(bht_event(t, "Whatever", "{}"), BHT_NO_HANDLER);
    assert_string_equal(bht_outcome_name(BHT_INVALID_PAYLOAD), "invalid_payload");
    assert_int_equal(bht_violations(t), 0);
    bht_free(t);
}

static void contract_breaches_are_counted(void **s)
{
    (void)s;
    bht_t *t = up();
    assert_int_equal(bht_command(t, "Twice", NULL), BH_DONE);
    assert_int_equal(bht_count(t, BHT_RESULT), 1);
    assert_int_equal(bht_violations(t), 2); /* the second result, the reserved header */
    bht_free(t);
}

/* Found in review: each of these once went wrong. */
static int fini_runs;
static int init_fails(bh_ctx_t *ctx, void **state)
{
    (void)ctx, (void)state;
    return BH_EINVAL;
}
static void count_fini(bh_ctx_t *ctx, void *state)
{
    (void)ctx, (void)state;
    fini_runs++;
}
static bh_outcome_t on_plain(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    (void)msg, (void)state;
    /* Untracked (no options), and a request answered on a key it lacks. */
    int rc = bh_send_command_opts(ctx, "stock.Check", NULL, "Checked", NULL, NULL);
    bh_command_opts_t o = BH_COMMAND_OPTS(.timeout_ms = 10);
    int bad = bh_send_command_opts(ctx, "stock.Check", NULL, "Nowhere", NULL, &o);
    return !rc && bad == BH_EINVAL ? BH_DONE : BH_RETRY;
}
static const bh_field_t checked_fields[] = {{.name = "ok", .type = BH_FIELD_BOOL}, {0}};
static const bh_schema_t checked = BH_SCHEMA(.fields = checked_fields);

static void edges_the_host_handles_so_too(void **s)
{
    (void)s;
    /* A failed init: no timers, no fini; init runs once. */
    bh_plugin_t p = plugin;
    p.init = init_fails;
    p.fini = count_fini;
    fini_runs = ticks = 0;
    bht_t *t = bht_new(&p, NULL);
    assert_int_equal(bht_init(t), BH_EINVAL);
    assert_int_equal(bht_init(t), BH_ESTATE);
    bht_advance(t, 1000);
    assert_int_equal(ticks, 0);
    bht_free(t);
    assert_int_equal(fini_runs, 0);

    /* Records stay where they are as more come; the result route's schema
     * is not applied to a request's end, nor to an error result; a late
     * answer is acked unseen; a plain command is no request. */
    static const bh_route_t cmds[] = {
        {.key = "Ask", .handler = on_ask}, {.key = "Plain", .handler = on_plain}, {0}};
    static const bh_route_t res[] = {{.key = "Checked", .handler = on_checked, .payload = &checked},
                                     {0}};
    p = plugin;
    p.commands = cmds;
    p.results = res;
    t = bht_new(&p, NULL);
    assert_int_equal(bht_init(t), BH_OK);
    const bht_rec_t *first = bht_rec(t, BHT_PUBLISH, 0);
    ended = 0;
    for (int i = 0; i < 100; i++) assert_int_equal(bht_command(t, "Ask", "{\"qty\": 1}"), BH_DONE);
    assert_ptr_equal(bht_rec(t, BHT_PUBLISH, 0), first);
    assert_string_equal(first->key, "Started");
    bht_advance(t, 500);
    assert_int_equal(ended, 100);
    assert_string_equal(last_status, "timeout");
    const char *corr = bht_rec(t, BHT_PUBLISH, 1)->correlation_id;
    assert_int_equal(bht_result(t, "kitted.Checked", corr, "success", "{}"), BH_DONE);
    assert_int_equal(ended, 100); /* late: its handler did not run */
    assert_non_null(bht_find_log(t, BH_WARNING, "came after its timeout"));
    assert_int_equal(bht_result(t, "kitted.Checked", "other", "error", "{\"error\": \"x\"}"),
                     BH_DONE);
    assert_int_equal(bht_result(t, "kitted.Checked", "other", "success", "{}"),
                     BHT_INVALID_PAYLOAD);
    assert_int_equal(bht_command(t, "Plain", NULL), BH_DONE);
    assert_int_equal(bht_pending_requests(t), 0);
    assert_int_equal(bht_violations(t), 1); /* the request answered on "Nowhere" */
    assert_non_null(bht_find_log(t, BH_WARNING, "was handled without a result"));
    bht_free(t);
}

static void refused_plugins_and_files_say_why(void **s)
{
    (void)s;
    bh_plugin_t bad = plugin;
    bad.magic = 0;
    assert_null(bht_new(&bad, NULL));
    assert_non_null(strstr(bht_error(), "bad magic"));
    assert_null(bht_load("/nonexistent/x.so", NULL));
    assert_non_null(strstr(bht_error(), "cannot load"));
    char path[4096];
    snprintf(path, sizeof path, "%s/echo.so", BH_PLUGIN_DIR);
    bht_t *t = bht_load(path, NULL);
    assert_non_null(t);
    assert_int_equal(bht_init(t), BH_OK);
    assert_int_equal(bht_command(t, "Echo", "{\"a\": 1}"), BH_DONE);
    assert_true(bht_json_equal(bht_rec(t, BHT_RESULT, 0)->json, "{\"a\": 1}"));
    bht_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(outside_publishes_are_confirmed_when_the_test_says),
        cmocka_unit_test(every_api_slot_is_filled),
        cmocka_unit_test(timers_run_on_the_kits_clock),
        cmocka_unit_test(requests_end_by_answer_timeout_unroutable_or_shutdown),
        cmocka_unit_test(the_host_decides_before_a_handler_runs),
        cmocka_unit_test(contract_breaches_are_counted),
        cmocka_unit_test(edges_the_host_handles_so_too),
        cmocka_unit_test(refused_plugins_and_files_say_why),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
