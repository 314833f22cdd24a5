/* test_metrics.c -- the metrics registry, its Prometheus exposition, and the
 * HTTP endpoint's answers (bh__http_answer, without a socket). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "http.h"
#include "metrics.h"
#include "otlp.h"

/* The ABI the host reports: the SDK header's, as text. */
#define ABI_STR2(x) #x
#define ABI_STR(x) ABI_STR2(x)
#define ABI ABI_STR(BH_ABI_MAJOR) "." ABI_STR(BH_ABI_MINOR)

static bh_outcome_t handler(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    (void)ctx, (void)msg, (void)state;
    return BH_DONE;
}

static const bh_route_t events[] = {
    {.key = "cart.*", .handler = handler}, {.key = "odd\"key\\with\nall", .handler = handler}, {0}};
static const bh_route_t commands[] = {{.key = "Echo", .handler = handler}, {0}};
static const bh_route_t results[] = {{.key = "stock.Reserve", .handler = handler}, {0}};
static const bh_plugin_t plugin = {.events = events, .commands = commands, .results = results};
static const char *const urls[] = {"amqp://guest:secret@127.0.0.1:5672/"};

static bh__notify_svc_t svc;
static bh__text_t text;

static int setup(void **state)
{
    (void)state;
    memset(&svc, 0, sizeof svc);
    memset(&text, 0, sizeof text);
    return bh__metrics_init(&svc.m, "echo", &plugin, 4, urls, 1);
}

static int teardown(void **state)
{
    (void)state;
    bh__metrics_free(&svc.m);
    free(text.buf);
    return 0;
}

static void render(void)
{
    const bh__metrics_t *ms[] = {&svc.m};
    text.len = 0;
    bh__metrics_render(&text, ms, 1, 0);
    assert_false(text.oom);
    bh__text_printf(&text, "%s", ""); /* NUL-terminated */
}

/* The value of the sample line that starts with `series ` (exact). */
static const char *value_of(const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text.buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, series, n) && p[n] == ' ') return p + n + 1;
    fail_msg("no sample %s in:\n%s", series, text.buf);
    return NULL;
}

static double num(const char *series) { return strtod(value_of(series), NULL); }

static void routes_follow_the_descriptor(void **state)
{
    (void)state;
    assert_int_equal(svc.m.n_routes, 5);
    assert_string_equal(svc.m.routes[0].key, "");
    assert_string_equal(bh__metrics_route(&svc.m, BH_KIND_EVENT, 0)->key, "cart.*");
    assert_string_equal(bh__metrics_route(&svc.m, BH_KIND_COMMAND, 0)->key, "echo.Echo");
    assert_string_equal(bh__metrics_route(&svc.m, BH_KIND_RESULT, 0)->key, "stock.Reserve");
    assert_null(bh__metrics_route(&svc.m, BH_KIND_RESULT, 1));
    assert_null(bh__metrics_route(NULL, BH_KIND_EVENT, 0));
    assert_ptr_equal(bh__metrics_unrouted(&svc.m), &svc.m.routes[0]);
    /* Counting into nothing is harmless. */
    bh__metrics_received(NULL);
    bh__metrics_settled(NULL, BH__V_DONE);
    bh__metrics_ran(NULL, 1, 2, 3);
    bh__metrics_running(NULL, 1);
}

static void counters_are_totals_with_their_labels(void **state)
{
    (void)state;
    bh__mroute_t *echo = bh__metrics_route(&svc.m, BH_KIND_COMMAND, 0);
    for (int i = 0; i < 3; i++) bh__metrics_received(echo);
    bh__metrics_settled(echo, BH__V_DONE);
    bh__metrics_settled(echo, BH__V_DONE);
    bh__metrics_settled(echo, BH__V_UNDECODABLE);
    bh__metrics_settled(bh__metrics_unrouted(&svc.m), BH__V_INVALID_ENVELOPE);
    bh__metrics_add(&svc.m.sent[BH__PUB_RESULT], 2);
    render();
    assert_non_null(strstr(text.buf, "# TYPE bushost_deliveries_received_total counter\n"));
    assert_int_equal(num("bushost_deliveries_received_total{service=\"echo\",key=\"echo.Echo\"}"),
                     3);
    assert_int_equal(num("bushost_deliveries_handled_total{service=\"echo\",key=\"echo.Echo\","
                         "outcome=\"done\"}"),
                     2);
    assert_int_equal(num("bushost_deliveries_handled_total{service=\"echo\",key=\"echo.Echo\","
                         "outcome=\"undecodable\"}"),
                     1);
    assert_int_equal(num("bushost_deliveries_handled_total{service=\"echo\",key=\"\","
                         "outcome=\"invalid_envelope\"}"),
                     1);
    assert_int_equal(num("bushost_publishes_sent_total{service=\"echo\",kind=\"result\"}"), 2);
    assert_int_equal(num("bushost_publishes_sent_total{service=\"echo\",kind=\"event\"}"), 0);
    /* Every counter family ends in _total; build_info is there. */
    assert_non_null(
        strstr(text.buf, "bushost_build_info{version=\"" BH_VERSION "\",abi=\"" ABI "\"} 1\n"));
    for (const char *p = strstr(text.buf, "# TYPE "); p; p = strstr(p + 1, "# TYPE ")) {
        const char *eol = strchr(p, '\n');
        if (eol - p > 8 && !strncmp(eol - 7, "counter", 7)) {
            const char *name_end = strchr(p + 7, ' ');
            assert_memory_equal(name_end - 6, "_total", 6);
        }
    }
}

static void on_tick(bh_ctx_t *ctx, void *state) { (void)ctx, (void)state; }

/* Timers are counted per timer; requests by how they ended; a payload that
 * fails its schema is an outcome of its own. */
static void timers_requests_and_invalid_payloads(void **state)
{
    (void)state;
    static const bh_timer_t timers[] = {{.name = "beat", .interval_ms = 10, .handler = on_tick},
                                        {0}};
    bh_plugin_t p = plugin;
    p.magic = BH_MAGIC;
    p.abi_major = BH_ABI_MAJOR;
    p.abi_minor = BH_ABI_MINOR;
    p.size = sizeof p;
    p.timers = timers;
    bh__metrics_t m;
    atomic_size_t waiting = 2;
    assert_int_equal(bh__metrics_init(&m, "clock", &p, 1, urls, 1), 0);
    assert_int_equal(m.n_timers, 1);
    m.requests_waiting = &waiting;
    bh__metrics_add(&m.timers[0].runs, 5);
    bh__metrics_add(&m.timers[0].skips, 2);
    bh__metrics_add(&m.requests[BH__REQ_TIMEOUT], 3);
    bh__metrics_add(&m.requests[BH__REQ_LATE], 1);
    bh__metrics_settled(bh__metrics_route(&m, BH_KIND_COMMAND, 0), BH__V_INVALID_PAYLOAD);
    const bh__metrics_t *ms[] = {&m, &svc.m};
    text.len = 0;
    bh__metrics_render(&text, ms, 2, 0);
    bh__text_printf(&text, "%s", "");
    assert_int_equal(num("bushost_timer_runs_total{service=\"clock\",timer=\"beat\"}"), 5);
    assert_int_equal(num("bushost_timer_skips_total{service=\"clock\",timer=\"beat\"}"), 2);
    assert_int_equal(num("bushost_requests_ended_total{service=\"clock\",outcome=\"timeout\"}"), 3);
    assert_int_equal(num("bushost_requests_ended_total{service=\"clock\",outcome=\"late\"}"), 1);
    assert_int_equal(num("bushost_requests_ended_total{service=\"echo\",outcome=\"answered\"}"), 0);
    assert_int_equal(num("bushost_requests_waiting{service=\"clock\"}"), 2);
    assert_int_equal(num("bushost_requests_waiting{service=\"echo\"}"), 0);
    assert_int_equal(num("bushost_deliveries_handled_total{service=\"clock\",key=\"clock.Echo\","
                         "outcome=\"invalid_payload\"}"),
                     1);
    assert_null(strstr(text.buf, "timer=\"\"")); /* echo has no timer */
    bh__metrics_free(&m);
}

static void label_values_are_escaped(void **state)
{
    (void)state;
    bh__metrics_received(bh__metrics_route(&svc.m, BH_KIND_EVENT, 1));
    render();
    assert_int_equal(num("bushost_deliveries_received_total{service=\"echo\","
                         "key=\"odd\\\"key\\\\with\\nall\"}"),
                     1);
    /* No raw newline inside a sample line: every line is a comment or a sample. */
    for (const char *p = text.buf; *p; p = strchr(p, '\n') + 1)
        assert_true(*p == '#' || !strncmp(p, "bushost_", 8));
}

static void histograms_are_cumulative_with_inf_sum_and_count(void **state)
{
    (void)state;
    bh__mroute_t *echo = bh__metrics_route(&svc.m, BH_KIND_COMMAND, 0);
    bh__metrics_ran(echo, 1000, 1000 + 50000, 1000 + 50000 + 100000); /* wait 50 us, run 100 us */
    bh__metrics_ran(echo, 1000, 1000, 1000 + 2000000);                /* 0 wait, 2 ms */
    bh__metrics_ran(echo, 1000, 1000, 1000 + 120000000000ull);        /* 120 s: +Inf only */
    render();
#define H "bushost_handler_duration_seconds"
#define L "{service=\"echo\",key=\"echo.Echo\""
    assert_non_null(strstr(text.buf, "# TYPE " H " histogram\n"));
    assert_int_equal(num(H "_bucket" L ",le=\"0.0001\"}"), 1); /* le is inclusive */
    assert_int_equal(num(H "_bucket" L ",le=\"0.001\"}"), 1);
    assert_int_equal(num(H "_bucket" L ",le=\"0.0025\"}"), 2);
    assert_int_equal(num(H "_bucket" L ",le=\"60\"}"), 2);
    assert_int_equal(num(H "_bucket" L ",le=\"+Inf\"}"), 3);
    assert_int_equal(num(H "_count" L "}"), 3);
    assert_float_equal(num(H "_sum" L "}"), 0.0001 + 0.002 + 120, 1e-9);
    assert_int_equal(num("bushost_queue_wait_seconds_bucket" L ",le=\"0.0001\"}"), 3);
    assert_float_equal(num("bushost_queue_wait_seconds_sum" L "}"), 0.00005, 1e-12);
    assert_float_equal(num("bushost_handler_busy_seconds_total{service=\"echo\"}"),
                       0.0001 + 0.002 + 120, 1e-9);
    /* Deliveries without a route have no handler times. */
    assert_null(strstr(text.buf, H "_count{service=\"echo\",key=\"\"}"));
#undef H
#undef L
    bh__hist_snap_t s;
    bh__hist_read(&echo->handler, &s);
    assert_int_equal(s.count, 3);
    assert_int_equal(s.counts[BH__HIST_BOUNDS], 1);
}

static void connection_gauges_and_blocked_time(void **state)
{
    (void)state;
    atomic_store(&svc.m.state, BH__MS_DRAINING);
    atomic_store(&svc.m.blocked, true);
    atomic_store(&svc.m.blocked_ns, 2000000000u);
    atomic_store(&svc.m.blocked_since_ns, 5000000000u);
    const bh__metrics_t *ms[] = {&svc.m};
    bh__metrics_render(&text, ms, 1, 6500000000u);
    bh__text_printf(&text, "%s", "");
    assert_int_equal(num("bushost_connection_state{service=\"echo\",state=\"draining\"}"), 1);
    assert_int_equal(num("bushost_connection_state{service=\"echo\",state=\"up\"}"), 0);
    assert_int_equal(num("bushost_connection_blocked{service=\"echo\"}"), 1);
    assert_float_equal(num("bushost_connection_blocked_seconds_total{service=\"echo\"}"), 3.5,
                       1e-9);
    assert_int_equal(num("bushost_workers{service=\"echo\"}"), 4);
}

/* -- the endpoint's answers ----------------------------------------------- */

static bh__http_t http;

static void answer(const char *method, const char *path, bh__http_reply_t *r)
{
    memset(r, 0, sizeof *r);
    bh__http_answer(&http, method, path, r);
    bh__text_printf(&r->body, "%s", "");
}

static void up(void)
{
    atomic_store(&svc.m.state, BH__MS_UP);
    atomic_store(&svc.m.connected, true);
    atomic_store(&svc.m.consuming, true);
    atomic_store(&svc.m.ever_up, true);
}

static void routes_methods_and_probes(void **state)
{
    bh__notify_svc_t *svcs[] = {&svc};
    bh__http_reply_t r;
    (void)state;
    assert_int_equal(bh__http_init(&http, svcs, 1), 0);
    answer("GET", "/nope", &r);
    assert_int_equal(r.status, 404);
    free(r.body.buf);
    answer("POST", "/metrics", &r);
    assert_int_equal(r.status, 405);
    free(r.body.buf);
    answer("GET", "/metrics", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.type, "text/plain; version=0.0.4; charset=utf-8");
    free(r.body.buf);
    /* Before the first connection: not started, not ready, but alive. */
    answer("GET", "/startupz", &r);
    assert_int_equal(r.status, 503);
    free(r.body.buf);
    answer("HEAD", "/readyz", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body.buf, "echo: not connected to the broker yet\n");
    free(r.body.buf);
    answer("GET", "/livez", &r);
    assert_int_equal(r.status, 200);
    free(r.body.buf);
    up();
    answer("GET", "/readyz", &r);
    assert_int_equal(r.status, 200);
    free(r.body.buf);
    atomic_store(&svc.m.blocked, true);
    answer("GET", "/readyz", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body.buf, "echo: the broker blocks publishing (connection.blocked)\n");
    free(r.body.buf);
    atomic_store(&svc.m.blocked, false);
    atomic_store(&svc.m.connected, false);
    atomic_store(&svc.m.state, BH__MS_DOWN);
    answer("GET", "/readyz", &r);
    assert_string_equal(r.body.buf, "echo: not connected to the broker (reconnecting)\n");
    free(r.body.buf);
    answer("GET", "/startupz", &r); /* start-up stays done */
    assert_int_equal(r.status, 200);
    free(r.body.buf);
    /* A loop that stopped stamping is stuck: the I/O thread's, then the main
     * one. The bound is one a slow (sanitized) run cannot pass between the
     * main loop's stamp and the answer; the I/O thread's stamp is far older. */
    http.stale_ns = 10 * 1000000000ull;
    atomic_store(&svc.m.tick_ns, 1);
    atomic_store(&http.main_ns, uv_hrtime());
    answer("GET", "/livez", &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body.buf, "echo: I/O thread: no progress for "));
    free(r.body.buf);
    atomic_store(&http.main_ns, 1);
    answer("GET", "/livez", &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body.buf, "main loop: no progress for "));
    free(r.body.buf);
    bh__http_free(&http);
}

static void status_is_json_with_the_contracted_fields(void **state)
{
    bh__notify_svc_t *svcs[] = {&svc};
    bh__http_reply_t r;
    json_error_t e;
    (void)state;
    up();
    bh__mroute_t *echo = bh__metrics_route(&svc.m, BH_KIND_COMMAND, 0);
    bh__metrics_received(echo);
    bh__metrics_settled(echo, BH__V_DONE);
    bh__metrics_ran(echo, 1, 1, 1 + 300000);
    assert_int_equal(bh__http_init(&http, svcs, 1), 0);
    answer("GET", "/status", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.type, "application/json");
    json_t *doc = json_loads(r.body.buf, 0, &e);
    free(r.body.buf);
    assert_non_null(doc);
    assert_true(json_is_string(json_object_get(doc, "version")));
    assert_string_equal(json_string_value(json_object_get(doc, "abi")), ABI);
    assert_true(json_is_true(json_object_get(doc, "started")));
    assert_true(json_is_true(json_object_get(doc, "ready")));
    assert_true(json_is_number(json_object_get(doc, "uptime_seconds")));
    json_t *s = json_array_get(json_object_get(doc, "services"), 0);
    assert_string_equal(json_string_value(json_object_get(s, "name")), "echo");
    assert_string_equal(json_string_value(json_object_get(s, "state")), "up");
    assert_string_equal(json_string_value(json_object_get(s, "url")),
                        "amqp://guest:***@127.0.0.1:5672/");
    assert_string_equal(json_string_value(json_object_get(s, "reason")), "");
    static const char *const ints[] = {"reconnects", "workers", "busy_workers",
                                       "in_flight",  "unacked", "received",
                                       "confirmed",  "nacked",  "returned"};
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
        assert_true(json_is_integer(json_object_get(s, ints[i])));
    static const char *const bools[] = {"connected", "consuming", "blocked", "ready"};
    for (size_t i = 0; i < sizeof bools / sizeof *bools; i++)
        assert_true(json_is_boolean(json_object_get(s, bools[i])));
    assert_int_equal(json_integer_value(json_object_get(s, "received")), 1);
    json_t *handled = json_object_get(s, "handled");
    assert_int_equal(json_integer_value(json_object_get(handled, "done")), 1);
    for (int v = 0; v < BH__VERDICTS; v++)
        assert_non_null(json_object_get(handled, bh__verdict_name(v)));
    json_t *pub = json_object_get(s, "published");
    assert_non_null(json_object_get(pub, "event"));
    assert_non_null(json_object_get(pub, "command"));
    assert_non_null(json_object_get(pub, "result"));
    static const char *const hists[] = {"handler_seconds", "queue_wait_seconds", "confirm_seconds"};
    for (size_t i = 0; i < 3; i++) {
        json_t *h = json_object_get(s, hists[i]);
        assert_int_equal(json_array_size(json_object_get(h, "bounds")), BH__HIST_BOUNDS);
        assert_int_equal(json_array_size(json_object_get(h, "counts")), BH__HIST_BOUNDS + 1);
        assert_true(json_is_number(json_object_get(h, "sum")));
        assert_true(json_is_integer(json_object_get(h, "count")));
    }
    json_t *h = json_object_get(s, "handler_seconds");
    assert_float_equal(json_real_value(json_array_get(json_object_get(h, "bounds"), 0)), 0.0001,
                       1e-12);
    /* 300 us: the third bucket (0.0005), counts not cumulative. */
    assert_int_equal(json_integer_value(json_array_get(json_object_get(h, "counts"), 2)), 1);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(h, "counts"), 3)), 0);
    assert_int_equal(json_integer_value(json_object_get(h, "count")), 1);
    json_decref(doc);
    bh__http_free(&http);
}

/* With otlp_endpoint, /metrics also has the exporter's two counts. */
static void the_exporter_counts_only_with_an_exporter(void **state)
{
    bh__notify_svc_t *svcs[] = {&svc};
    bh__http_reply_t r;
    char err[256];
    (void)state;
    assert_int_equal(bh__http_init(&http, svcs, 1), 0);
    answer("GET", "/metrics", &r);
    assert_null(strstr(r.body.buf, "bushost_otlp_"));
    free(r.body.buf);
    http.otlp = bh__otlp_new("http://127.0.0.1:1/v1/traces", err, sizeof err);
    assert_non_null(http.otlp);
    answer("GET", "/metrics", &r);
    assert_non_null(strstr(r.body.buf, "# TYPE bushost_otlp_spans_exported_total counter\n"
                                       "bushost_otlp_spans_exported_total 0\n"));
    assert_non_null(strstr(r.body.buf, "# TYPE bushost_otlp_spans_dropped_total counter\n"
                                       "bushost_otlp_spans_dropped_total 0\n"));
    free(r.body.buf);
    bh__otlp_stop(http.otlp);
    bh__http_free(&http);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(routes_follow_the_descriptor),
        T(counters_are_totals_with_their_labels),
        T(timers_requests_and_invalid_payloads),
        T(label_values_are_escaped),
        T(histograms_are_cumulative_with_inf_sum_and_count),
        T(connection_gauges_and_blocked_time),
        T(routes_methods_and_probes),
        T(status_is_json_with_the_contracted_fields),
        T(the_exporter_counts_only_with_an_exporter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
