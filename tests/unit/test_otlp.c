/* test_otlp.c -- spans as OTLP/HTTP JSON (otlp.c): the rendering, and the
 * exporter's thread posting to a receiver of the test's own (otlp_sink.c),
 * to nothing, to an endpoint that fails, and past a full queue. The logger
 * is faked; it is read only once the exporter's thread has been joined. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "fake_log.h"
#include "otlp.h"
#include "otlp_sink.h"

static bh__otlp_span_t sample(const char *service, int kind, bool parent, const char *error)
{
    bh__otlp_span_t s = {.has_parent = parent,
                         .kind = kind,
                         .start_ns = 1700000000123456789ull,
                         .end_ns = 1700000000987654321ull,
                         .service = service,
                         .operation = kind == BH__OTLP_KIND_CONSUMER ? "process" : "send",
                         .exchange = "commands",
                         .routing_key = "echo.Echo",
                         .conversation_id = "conv-1",
                         .error = error};
    memset(s.trace, 0x4b, sizeof s.trace);
    memset(s.span, 0x01, sizeof s.span);
    memset(s.parent, 0xa0, sizeof s.parent);
    return s;
}

static const char *attr(json_t *span, const char *key)
{
    size_t i;
    json_t *kv;
    json_array_foreach(json_object_get(span, "attributes"), i, kv)
    {
        if (!strcmp(json_string_value(json_object_get(kv, "key")), key))
            return json_string_value(json_object_get(json_object_get(kv, "value"), "stringValue"));
    }
    return NULL;
}

static json_t *render(const bh__otlp_span_t *list)
{
    size_t len = 0;
    char *text = bh__otlp_render(list, &len);
    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    json_t *doc = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(doc);
    return doc;
}

static void spans_render_as_otlp_json(void **state)
{
    bh__otlp_span_t a = sample("echo", BH__OTLP_KIND_CONSUMER, true, NULL),
                    b = sample("echo", BH__OTLP_KIND_PRODUCER, true, "it failed"),
                    c = sample("cart", BH__OTLP_KIND_CONSUMER, false, NULL);
    (void)state;
    a.tracestate = "rojo=00f067aa0ba902b7";
    a.next = &b;
    b.next = &c;
    json_t *doc = render(&a), *rs = json_object_get(doc, "resourceSpans");
    /* One resourceSpans per service, in order of first appearance. */
    assert_int_equal(json_array_size(rs), 2);
    json_t *r0 = json_array_get(rs, 0);
    json_t *res = json_array_get(json_object_get(json_object_get(r0, "resource"), "attributes"), 0);
    assert_string_equal(json_string_value(json_object_get(res, "key")), "service.name");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(res, "value"), "stringValue")), "echo");
    json_t *scope = json_array_get(json_object_get(r0, "scopeSpans"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(scope, "scope"), "name")),
                        "bushost");
    json_t *spans = json_object_get(scope, "spans");
    assert_int_equal(json_array_size(spans), 2);
    json_t *s0 = json_array_get(spans, 0), *s1 = json_array_get(spans, 1);
    /* Ids as lowercase hex, times as decimal strings, kind as the enum. */
    assert_string_equal(json_string_value(json_object_get(s0, "traceId")),
                        "4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b");
    assert_string_equal(json_string_value(json_object_get(s0, "spanId")), "0101010101010101");
    assert_string_equal(json_string_value(json_object_get(s0, "parentSpanId")), "a0a0a0a0a0a0a0a0");
    assert_string_equal(json_string_value(json_object_get(s0, "traceState")),
                        "rojo=00f067aa0ba902b7");
    assert_string_equal(json_string_value(json_object_get(s0, "startTimeUnixNano")),
                        "1700000000123456789");
    assert_string_equal(json_string_value(json_object_get(s0, "endTimeUnixNano")),
                        "1700000000987654321");
    assert_int_equal(json_integer_value(json_object_get(s0, "kind")), 5);
    assert_int_equal(json_integer_value(json_object_get(s1, "kind")), 4);
    assert_string_equal(json_string_value(json_object_get(s0, "name")), "process echo.Echo");
    assert_string_equal(json_string_value(json_object_get(s1, "name")), "send echo.Echo");
    assert_string_equal(attr(s0, "messaging.system"), "rabbitmq");
    assert_string_equal(attr(s0, "messaging.operation.type"), "process");
    assert_string_equal(attr(s1, "messaging.operation.type"), "send");
    assert_string_equal(attr(s0, "messaging.destination.name"), "commands");
    assert_string_equal(attr(s0, "messaging.rabbitmq.destination.routing_key"), "echo.Echo");
    assert_string_equal(attr(s0, "messaging.message.conversation_id"), "conv-1");
    /* Status: unset on success, ERROR (2) with the message on failure. */
    assert_null(json_object_get(s0, "status"));
    json_t *st = json_object_get(s1, "status");
    assert_int_equal(json_integer_value(json_object_get(st, "code")), 2);
    assert_string_equal(json_string_value(json_object_get(st, "message")), "it failed");
    assert_null(json_object_get(s1, "traceState"));
    json_t *cs = json_array_get(
        json_object_get(json_array_get(json_object_get(json_array_get(rs, 1), "scopeSpans"), 0),
                        "spans"),
        0);
    assert_null(json_object_get(cs, "parentSpanId")); /* a root span */
    json_decref(doc);
}

static void text_that_is_not_utf8_does_not_lose_the_span(void **state)
{
    bh__otlp_span_t a = sample("echo", BH__OTLP_KIND_CONSUMER, true, NULL);
    (void)state;
    a.routing_key = "bad\xff";
    json_t *doc = render(&a);
    json_t *s = json_array_get(
        json_object_get(
            json_array_get(json_object_get(json_array_get(json_object_get(doc, "resourceSpans"), 0),
                                           "scopeSpans"),
                           0),
            "spans"),
        0);
    assert_string_equal(attr(s, "messaging.rabbitmq.destination.routing_key"), "\xEF\xBF\xBD");
    json_decref(doc);
}

static void span_new_copies_its_strings(void **state)
{
    char key[] = "echo.Echo";
    bh__otlp_span_t a = sample("echo", BH__OTLP_KIND_CONSUMER, true, NULL);
    (void)state;
    a.routing_key = key;
    a.conversation_id = NULL;
    bh__otlp_span_t *c = bh__otlp_span_new(&a);
    assert_non_null(c);
    key[0] = 'X';
    assert_string_equal(c->routing_key, "echo.Echo");
    assert_null(c->conversation_id);
    assert_null(c->tracestate);
    assert_null(c->error);
    assert_string_equal(c->service, "echo");
    free(c);
}

/* -- the exporter ------------------------------------------------------------ */

static bh__otlp_t *start(const char *url)
{
    char err[256];
    bh__otlp_t *x = bh__otlp_new(url, err, sizeof err);
    if (!x) fail_msg("%s", err);
    assert_int_equal(bh__otlp_run(x, err, sizeof err), 0);
    assert_int_equal(bh__otlp_run(x, err, sizeof err), 0); /* once */
    return x;
}

static void push_n(bh__otlp_t *x, size_t n)
{
    bh__otlp_span_t a = sample("echo", BH__OTLP_KIND_CONSUMER, true, NULL);
    for (size_t i = 0; i < n; i++) {
        a.span[0] = (uint8_t)i;
        bh__otlp_push(x, bh__otlp_span_new(&a));
    }
}

static void exporter_posts_spans_in_batches(void **state)
{
    char url[128];
    otlp_sink_t *sink = sink_start();
    (void)state;
    assert_non_null(sink);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/traces", sink_port(sink));
    fl_reset();
    bh__otlp_t *x = start(url);
    assert_non_null(x);
    push_n(x, 3);
    /* Within the second the exporter waits for company. */
    assert_true(sink_wait_spans(sink, 3, 3000));
    push_n(x, BH__OTLP_BATCH + 1); /* a full batch goes at once, the rest with the next */
    assert_true(sink_wait_spans(sink, 3 + BH__OTLP_BATCH + 1, 5000));
    assert_int_equal(sink_malformed(sink), 0);
    assert_true(sink_requests(sink) >= 3);
    bh__otlp_stop(x);
    json_t *spans = sink_spans(sink);
    assert_int_equal(json_array_size(spans), 3 + BH__OTLP_BATCH + 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(spans, 0), "service")),
                        "echo");
    json_decref(spans);
    assert_non_null(fl_find(BH_NOTICE, "exporting spans to http://127.0.0.1:"));
    assert_int_equal(fl_count_match(BH_ERROR, ""), 0);
    sink_stop(sink);
}

/* Made and never run (bushost --check): stopping posts nothing. */
static void an_exporter_never_run_posts_nothing(void **state)
{
    char url[128], err[256];
    otlp_sink_t *sink = sink_start();
    (void)state;
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/traces", sink_port(sink));
    fl_reset();
    bh__otlp_t *x = bh__otlp_new(url, err, sizeof err);
    assert_non_null(x);
    push_n(x, 2);
    bh__otlp_stop(x);
    bh__otlp_stop(NULL);
    assert_int_equal(sink_requests(sink), 0);
    assert_int_equal(fl_count(), 0);
    sink_stop(sink);
}

static void spans_left_at_stop_are_posted(void **state)
{
    char url[128];
    otlp_sink_t *sink = sink_start();
    (void)state;
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/traces", sink_port(sink));
    bh__otlp_t *x = start(url);
    push_n(x, 5);
    bh__otlp_stop(x); /* before the second is up */
    json_t *spans = sink_spans(sink);
    assert_int_equal(json_array_size(spans), 5);
    json_decref(spans);
    sink_stop(sink);
}

/* A port nothing listens on: bound, then closed. */
static unsigned dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void unreachable_endpoint_drops_and_says_so_without_the_password(void **state)
{
    char url[128];
    (void)state;
    snprintf(url, sizeof url, "http://otlp:s3cret@127.0.0.1:%u/v1/traces", dead_port());
    fl_reset();
    bh__otlp_t *x = start(url);
    assert_non_null(x);
    push_n(x, 4);
    bh__otlp_stop(x);
    assert_int_equal(
        fl_count_match(BH_ERROR, "cannot export 4 span(s) to http://otlp:***@127.0.0.1:"), 1);
    assert_int_equal(fl_count_match(-1, "s3cret"), 0);
}

static void failing_status_is_a_failure(void **state)
{
    char url[128];
    otlp_sink_t *sink = sink_start();
    (void)state;
    sink_status(sink, 503);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/traces", sink_port(sink));
    fl_reset();
    bh__otlp_t *x = start(url);
    push_n(x, 2);
    assert_true(sink_wait_spans(sink, 2, 3000));
    /* The endpoint answers again: one NOTICE says so. */
    sink_status(sink, 200);
    push_n(x, 1);
    assert_true(sink_wait_spans(sink, 3, 3000));
    /* The sink has it before the exporter has read the answer. */
    for (int i = 0; i < 200 && bh__otlp_sent(x) < 1; i++) usleep(10 * 1000);
    uint64_t dropped = bh__otlp_dropped(x), sent = bh__otlp_sent(x);
    bh__otlp_stop(x);
    assert_int_equal(dropped, 2);
    assert_int_equal(sent, 1);
    assert_int_equal(fl_count_match(BH_ERROR, ": HTTP status 503; they are dropped"), 1);
    assert_int_equal(fl_count_match(BH_NOTICE, "again (1 failed post(s))"), 1);
    sink_stop(sink);
}

static void a_full_queue_drops_and_counts_never_waits(void **state)
{
    char url[128];
    otlp_sink_t *sink = sink_start();
    (void)state;
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/traces", sink_port(sink));
    fl_reset();
    bh__otlp_t *x = start(url);
    sink_hold(sink, true);
    push_n(x, 1);
    /* The exporter takes it within the second and then waits on the sink. */
    usleep(1500 * 1000);
    push_n(x, BH__OTLP_QUEUE_MAX + 7);
    assert_int_equal(bh__otlp_dropped(x), 7);
    sink_hold(sink, false);
    assert_true(sink_wait_spans(sink, BH__OTLP_QUEUE_MAX + 1, 10000));
    bh__otlp_stop(x);
    assert_int_equal(fl_count_match(BH_WARNING, "7 span(s) were dropped since the last report: "
                                                "the export queue to http://127.0.0.1:"),
                     1);
    sink_stop(sink);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spans_render_as_otlp_json),
        cmocka_unit_test(text_that_is_not_utf8_does_not_lose_the_span),
        cmocka_unit_test(span_new_copies_its_strings),
        cmocka_unit_test(exporter_posts_spans_in_batches),
        cmocka_unit_test(an_exporter_never_run_posts_nothing),
        cmocka_unit_test(spans_left_at_stop_are_posted),
        cmocka_unit_test(unreachable_endpoint_drops_and_says_so_without_the_password),
        cmocka_unit_test(failing_status_is_a_failure),
        cmocka_unit_test(a_full_queue_drops_and_counts_never_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
