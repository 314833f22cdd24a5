/* test_schema.c -- declared payloads on a real broker. testkit's Order
 * command and OrderNoted event declare their payload; the host checks each
 * message before the handler runs:
 *   - an invalid command is answered with the standard error result
 *     {"error": "invalid payload", "field": ..., "expected": ...}, acked (the
 *     DLQ stays empty) and logged at WARNING, without its handler running;
 *   - an invalid event is dead-lettered and logged at ERROR naming the field;
 *   - both are counted as outcome "invalid_payload" on /metrics;
 *   - valid messages reach their handlers, and the host goes on serving. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define RESULT_KEY "itest.OrderResult"
#define SERIES "bushost_deliveries_handled_total{service=\"testkit\",key=\"%s\",outcome=\"%s\"}"

/* One sample of the host's /metrics. */
static double metric(const char *key, const char *outcome)
{
    char series[300];
    snprintf(series, sizeof series, SERIES, key, outcome);
    return it_metric(series);
}

typedef struct {
    it_conn_t *c;
    it_host_t *h;
    it_listener_t *results, *logs, *events;
} rig_t;

static rig_t rig_up(void)
{
    rig_t r = {.c = it_connect()};
    char *keys = it_asprintf("http_listen = 127.0.0.1:%s\n", it_env("BH_HTTP_PORT"));
    it_dlx_setup(r.c);
    r.results = it_listen("commands", (const char *[]){RESULT_KEY, NULL});
    r.logs = it_listen("logs", (const char *[]){"testkit.*", NULL});
    r.events = it_listen("events", (const char *[]){"OrderSeen", NULL});
    r.h = it_host_ready(r.c, "testkit.commands",
                        &(it_host_opts_t){.plugins = "testkit", .host_keys = keys});
    free(keys);
    return r;
}

static void rig_down(rig_t *r)
{
    assert_int_equal(it_host_stop(r->h, 15000), 0);
    it_unlisten(r->results);
    it_unlisten(r->logs);
    it_unlisten(r->events);
    it_close(r->c);
}

/* Send testkit.Order with this JSON body; the result's status and payload. */
static json_t *order(rig_t *r, const char *body, const char *want_status)
{
    char corr[IT_ID_MAX], conv[IT_ID_MAX];
    it_unique(corr, "corr");
    it_unique(conv, "conv");
    it_pub_t cmd =
        it_command("testkit.Order", RESULT_KEY, corr, conv, "application/json", body, strlen(body));
    it_publish(r->c, &cmd);
    it_msg_t *m = it_get(r->results, 10000);
    if (!m) IT_FAIL("no result for Order %s within 10 s", body);
    assert_string_equal(m->correlation_id, corr);
    assert_string_equal(m->conversation_id, conv);
    if (!m->status || strcmp(m->status, want_status))
        IT_FAIL("Order %s: status %s, expected %s", body, m->status ? m->status : "(none)",
                want_status);
    json_t *p = it_payload(m);
    it_msg_free(m);
    if (!p) IT_FAIL("Order %s: the result does not decode", body);
    return p;
}

static void expect_refused(rig_t *r, const char *body, const char *field, const char *expected)
{
    json_t *p = order(r, body, "error");
    json_t *want = json_pack("{s:s, s:s, s:s}", "error", "invalid payload", "field", field,
                             "expected", expected);
    if (!json_equal(p, want)) {
        char *got = json_dumps(p, JSON_COMPACT);
        IT_FAIL("Order %s answered %s, expected invalid payload at %s (%s)", body, got, field,
                expected);
    }
    json_decref(want);
    json_decref(p);
    char *text =
        it_asprintf("field \"%s\": expected %s; answered with an error result", field, expected);
    json_t *g = it_get_log(r->logs, "testkit.WARNING", text, 10000);
    if (!g) IT_FAIL("no WARNING naming \"%s\" within 10 s", text);
    json_decref(g);
    free(text);
}

static void commands_with_invalid_payloads_get_the_standard_error_result(void **state)
{
    rig_t r = rig_up();

    json_t *p = order(&r, "{\"sku\": \"A-1\", \"qty\": 2, \"colour\": \"red\"}", "success");
    json_t *want = json_pack("{s:s, s:i}", "sku", "A-1", "qty", 2);
    assert_true(json_equal(p, want));
    json_decref(want);
    json_decref(p);

    expect_refused(&r, "{\"sku\": \"A-1\", \"qty\": 0}", "qty", "int ≥ 1");
    expect_refused(&r, "{\"qty\": 3}", "sku", "string of length ≥ 1 and ≤ 16");
    expect_refused(&r, "{\"sku\": \"A-1\", \"qty\": 1, \"colour\": \"blue\"}", "colour",
                   "string, one of \"red\", \"green\"");
    expect_refused(&r,
                   "{\"sku\": \"A-1\", \"qty\": 1, \"lines\": [{\"sku\": \"b\", \"qty\": 1}, "
                   "{\"sku\": \"c\", \"qty\": 100}]}",
                   "lines[1].qty", "int ≥ 1 and ≤ 99");
    expect_refused(&r, "{\"sku\": \"A-1\", \"qty\": 1, \"gift\": \"yes\"}", "gift", "bool");

    /* Acked, not dead-lettered; counted; the host still serves. */
    assert_int_equal(it_dlq_count(r.c), 0);
    assert_true(metric("testkit.Order", "invalid_payload") == 5);
    assert_true(metric("testkit.Order", "done") == 1);
    p = order(&r, "{\"sku\": \"B\", \"qty\": 7, \"note\": null}", "success");
    json_decref(p);
    rig_down(&r);
    it_pass();
}

static void events_with_invalid_payloads_are_dead_lettered_naming_the_field(void **state)
{
    rig_t r = rig_up();
    static const char bad[] = "{\"sku\": \"A-1\", \"qty\": \"two\"}";
    char conv[IT_ID_MAX];
    it_unique(conv, "conv");
    it_pub_t e = it_event("OrderNoted", conv, "application/json", bad, sizeof bad - 1);
    it_publish(r.c, &e);

    if (it_dlq_wait(r.c, 1, 10000) != 1) IT_FAIL("the invalid event is not in %s", IT_DLQ);
    it_msg_t *d = it_dlq_get(r.c);
    assert_non_null(d);
    assert_string_equal(d->routing_key, "OrderNoted");
    assert_int_equal(d->len, sizeof bad - 1);
    assert_memory_equal(d->body, bad, sizeof bad - 1);
    it_msg_free(d);
    json_t *g = it_get_log(r.logs, "testkit.ERROR",
                           "event 'OrderNoted' has an invalid payload: field \"qty\": expected "
                           "int ≥ 1; dead-lettering it",
                           10000);
    if (!g) IT_FAIL("no ERROR naming the field within 10 s");
    json_decref(g);

    /* Its handler did not run: the first OrderSeen is the valid event's. */
    static const char good[] = "{\"sku\": \"OK-7\", \"qty\": 1}";
    e = it_event("OrderNoted", conv, "application/json", good, sizeof good - 1);
    it_publish(r.c, &e);
    it_msg_t *seen = it_get(r.events, 10000);
    if (!seen) IT_FAIL("no OrderSeen for the valid event within 10 s");
    json_t *p = it_payload(seen), *want = json_pack("{s:s}", "sku", "OK-7");
    assert_true(json_equal(p, want));
    json_decref(p);
    json_decref(want);
    it_msg_free(seen);
    assert_true(metric("OrderNoted", "invalid_payload") == 1);
    assert_true(metric("OrderNoted", "done") == 1);
    rig_down(&r);
    it_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(commands_with_invalid_payloads_get_the_standard_error_result),
        IT_TEST(events_with_invalid_payloads_are_dead_lettered_naming_the_field),
    };
    return cmocka_run_group_tests(tests, it_setup, it_teardown);
}
