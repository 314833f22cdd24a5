/* test_trace.c -- trace context across the bus: a command's traceparent (or
 * MassTransit's headers) is continued on its result, in the handler's GELF
 * records and in the SDK's bh_trace_id; a command without one starts a
 * trace; an invalid one is ignored, never the message. With otlp_endpoint,
 * the spans reach a receiver of the test's own (otlp_sink.c) with their
 * parent/child links, and an endpoint that does not answer holds up no
 * message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "otlp_sink.h"

#define RESULT_KEY "itest.TraceResult"
#define TRACE_ID "0af7651916cd43dd8448eb211c80319c"
#define PARENT_ID "b7ad6b7169203331"
#define TRACEPARENT "00-" TRACE_ID "-" PARENT_ID "-01"

typedef struct tp {
    char trace[33], parent[17], flags[3];
} tp_t;

/* A traceparent as bushost must write it: version 00, lowercase hex,
 * non-zero ids. */
static tp_t parse_tp(const char *s)
{
    tp_t t = {0};
    if (!s || strlen(s) != 55 || strncmp(s, "00-", 3) || s[35] != '-' || s[52] != '-')
        IT_FAIL("not a version 00 traceparent: '%s'", s ? s : "(none)");
    for (size_t i = 0; i < 55; i++)
        if (s[i] != '-' && !strchr("0123456789abcdef", s[i]))
            IT_FAIL("traceparent '%s' holds '%c'", s, s[i]);
    memcpy(t.trace, s + 3, 32);
    memcpy(t.parent, s + 36, 16);
    memcpy(t.flags, s + 53, 2);
    if (!strcmp(t.trace, "00000000000000000000000000000000") ||
        !strcmp(t.parent, "0000000000000000"))
        IT_FAIL("traceparent '%s' has a zero id", s);
    return t;
}

typedef struct answer {
    tp_t tp;           /* the result's traceparent */
    char trace_id[33]; /* what bh_trace_id gave the handler */
    char span_id[17];  /* bh_span_id: the handler span */
    char conversation[IT_ID_MAX];
} answer_t;

static void copy_field(char *dst, size_t n, json_t *payload, const char *key)
{
    const char *v = json_string_value(json_object_get(payload, key));
    if (!v || strlen(v) != n - 1) IT_FAIL("the result's %s is '%s'", key, v ? v : "(none)");
    memcpy(dst, v, n);
}

/* Send testkit.Trace with the given extra headers and read its result. */
static answer_t trace_command(it_conn_t *c, it_listener_t *results, const amqp_table_t *headers)
{
    char corr[IT_ID_MAX];
    answer_t a = {0};
    it_unique(corr, "corr");
    it_unique(a.conversation, "conv");
    it_pub_t cmd =
        it_command("testkit.Trace", RESULT_KEY, corr, a.conversation, "application/json", "{}", 2);
    cmd.headers = headers;
    it_publish(c, &cmd);
    it_msg_t *r = it_get(results, 10000);
    if (!r) IT_FAIL("no result on %s within 10 s", RESULT_KEY);
    assert_string_equal(r->status, "success");
    assert_string_equal(r->correlation_id, corr);
    const amqp_field_value_t *h = it_header(r, "traceparent");
    assert_non_null(h);
    assert_int_equal(h->kind, AMQP_FIELD_KIND_UTF8);
    char *s = it_field_str(h);
    a.tp = parse_tp(s);
    free(s);
    json_t *p = it_payload(r);
    copy_field(a.trace_id, sizeof a.trace_id, p, "trace_id");
    copy_field(a.span_id, sizeof a.span_id, p, "span_id");
    json_decref(p);
    it_msg_free(r);
    return a;
}

static amqp_table_t one_header(amqp_table_entry_t *e, const char *key, const char *value)
{
    e->key = amqp_cstring_bytes(key);
    e->value.kind = AMQP_FIELD_KIND_UTF8;
    e->value.value.bytes = amqp_cstring_bytes(value);
    return (amqp_table_t){.num_entries = 1, .entries = e};
}

/* The GELF record of the handler's "Trace called" for conversation conv. */
static json_t *handler_record(it_listener_t *logs, const char *conv)
{
    for (int64_t end = it_now_ms() + 10000; it_now_ms() < end;) {
        it_msg_t *m = it_get(logs, 1000);
        if (!m) continue;
        json_t *g = json_loadb(m->body, m->len, 0, NULL);
        it_msg_free(m);
        const char *text = json_string_value(json_object_get(g, "short_message"));
        const char *c = json_string_value(json_object_get(g, "_conversation_id"));
        if (text && c && !strcmp(text, "Trace called") && !strcmp(c, conv)) return g;
        json_decref(g);
    }
    IT_FAIL("no 'Trace called' record for %s on logs within 10 s", conv);
}

static it_host_t *start(it_conn_t *c, const char *host_keys)
{
    return it_host_ready(c, "testkit.commands",
                         &(it_host_opts_t){.plugins = "testkit", .host_keys = host_keys});
}

static void test_traceparent_is_continued_on_the_result_and_in_the_logs(void **state)
{
    it_conn_t *c = it_connect();
    it_listener_t *results = it_listen("commands", (const char *[]){RESULT_KEY, NULL});
    it_listener_t *logs = it_listen("logs", (const char *[]){"testkit.NOTICE", NULL});
    it_host_t *h = start(c, NULL);
    amqp_table_entry_t e[2] = {0};
    amqp_table_t t = one_header(&e[0], "traceparent", TRACEPARENT);
    e[1].key = amqp_cstring_bytes("tracestate");
    e[1].value.kind = AMQP_FIELD_KIND_UTF8;
    e[1].value.value.bytes = amqp_cstring_bytes("congo=t61rcWkgMzE");
    t.num_entries = 2;

    answer_t a = trace_command(c, results, &t);
    assert_string_equal(a.tp.trace, TRACE_ID);
    assert_string_not_equal(a.tp.parent, PARENT_ID);
    assert_string_equal(a.tp.flags, "01");
    assert_string_equal(a.trace_id, TRACE_ID);
    /* The result's parent is its publish span, a child of the handler span. */
    assert_string_not_equal(a.tp.parent, a.span_id);
    json_t *g = handler_record(logs, a.conversation);
    assert_string_equal(json_string_value(json_object_get(g, "_trace_id")), TRACE_ID);
    assert_string_equal(json_string_value(json_object_get(g, "_span_id")), a.span_id);
    json_decref(g);
    assert_int_equal(it_host_stop(h, 15000), 0);
    it_pass();
}

static void test_a_command_without_one_starts_a_trace(void **state)
{
    it_conn_t *c = it_connect();
    it_listener_t *results = it_listen("commands", (const char *[]){RESULT_KEY, NULL});
    it_host_t *h = start(c, NULL);

    answer_t a = trace_command(c, results, NULL), b = trace_command(c, results, NULL);
    assert_string_equal(a.tp.trace, a.trace_id);
    assert_string_equal(a.tp.flags, "01");
    assert_string_not_equal(a.tp.trace, b.tp.trace);
    assert_string_not_equal(a.tp.parent, a.span_id);
    assert_int_equal(it_host_stop(h, 15000), 0);
    it_pass();
}

static void test_masstransit_headers_continue_the_trace(void **state)
{
    it_conn_t *c = it_connect();
    it_listener_t *results = it_listen("commands", (const char *[]){RESULT_KEY, NULL});
    it_host_t *h = start(c, NULL);
    amqp_table_entry_t e;
    amqp_table_t t = one_header(&e, "MT-Activity-Id", TRACEPARENT);
    answer_t a = trace_command(c, results, &t);
    assert_string_equal(a.tp.trace, TRACE_ID);
    assert_string_not_equal(a.tp.parent, PARENT_ID);
    /* The hierarchical form, when its root is a trace id. */
    t = one_header(&e, "Diagnostic-Id", "|" TRACE_ID "." PARENT_ID ".");
    a = trace_command(c, results, &t);
    assert_string_equal(a.tp.trace, TRACE_ID);
    assert_int_equal(it_host_stop(h, 15000), 0);
    it_pass();
}

static void test_an_invalid_traceparent_starts_a_new_trace_and_is_handled(void **state)
{
    it_conn_t *c = it_connect();
    it_listener_t *results = it_listen("commands", (const char *[]){RESULT_KEY, NULL});
    it_host_t *h = start(c, NULL);
    amqp_table_entry_t e;
    /* Uppercase hex: invalid by the spec, so ignored. */
    amqp_table_t t =
        one_header(&e, "traceparent", "00-0AF7651916CD43DD8448EB211C80319C-" PARENT_ID "-01");
    answer_t a = trace_command(c, results, &t);
    assert_string_not_equal(a.tp.trace, TRACE_ID);
    assert_string_equal(a.tp.trace, a.trace_id);
    assert_int_equal(it_host_stop(h, 15000), 0);
    char *out = it_host_output(h);
    if (!strstr(out, "NOTICE [") || !strstr(out, "ignoring the traceparent header of command "
                                                 "'testkit.Trace': its trace-id is not 32 "
                                                 "lowercase hex digits and a '-'"))
        IT_FAIL("no NOTICE naming the invalid traceparent");
    free(out);
    it_pass();
}

/* -- OTLP export ---------------------------------------------------------- */

/* The span of kind in spans whose spanId is id (NULL: any), or NULL. */
static json_t *span_where(json_t *spans, int kind, const char *id)
{
    size_t i;
    json_t *s;
    json_array_foreach(spans, i, s)
    {
        const char *sid = json_string_value(json_object_get(s, "spanId"));
        if (json_integer_value(json_object_get(s, "kind")) == kind && sid &&
            (!id || !strcmp(sid, id)))
            return s;
    }
    return NULL;
}

static const char *jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static void test_spans_reach_the_otlp_endpoint_with_their_links(void **state)
{
    otlp_sink_t *sink = sink_start();
    it_conn_t *c = it_connect();
    it_listener_t *results = it_listen("commands", (const char *[]){RESULT_KEY, NULL});
    assert_non_null(sink);
    char *keys = it_asprintf("otlp_endpoint = http://127.0.0.1:%u/v1/traces\n", sink_port(sink));
    it_host_t *h = start(c, keys);
    amqp_table_entry_t e;
    amqp_table_t t = one_header(&e, "traceparent", TRACEPARENT);
    answer_t a = trace_command(c, results, &t);
    /* The handler span, and the result's publish span once confirmed. */
    if (!sink_wait_spans(sink, 2, 10000)) IT_FAIL("the endpoint got no 2 spans within 10 s");
    json_t *spans = sink_spans(sink);
    json_t *consumer = span_where(spans, 5, a.span_id),
           *producer = span_where(spans, 4, a.tp.parent);
    if (!consumer || !producer) {
        char *dump = json_dumps(spans, JSON_COMPACT);
        IT_FAIL("no CONSUMER span %s and PRODUCER span %s in %s", a.span_id, a.tp.parent, dump);
    }
    assert_string_equal(jstr(consumer, "traceId"), TRACE_ID);
    assert_string_equal(jstr(consumer, "parentSpanId"), PARENT_ID);
    assert_string_equal(jstr(producer, "traceId"), TRACE_ID);
    assert_string_equal(jstr(producer, "parentSpanId"), a.span_id);
    assert_string_equal(jstr(consumer, "service"), "testkit");
    assert_string_equal(jstr(consumer, "name"), "process testkit.Trace");
    assert_string_equal(jstr(producer, "name"), "send " RESULT_KEY);
    assert_null(json_object_get(consumer, "status"));
    assert_true(strtoull(jstr(consumer, "startTimeUnixNano"), NULL, 10) <=
                strtoull(jstr(consumer, "endTimeUnixNano"), NULL, 10));
    json_decref(spans);
    assert_int_equal(sink_malformed(sink), 0);
    assert_int_equal(it_host_stop(h, 15000), 0);
    free(keys);
    sink_stop(sink);
    it_pass();
}

/* A port nothing listens on: bound, then closed. */
static unsigned dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) ||
        getsockname(fd, (struct sockaddr *)&sa, &len))
        IT_FAIL("cannot find a free port");
    close(fd);
    return ntohs(sa.sin_port);
}

/* n testkit.Trace commands at once; ms until every result came. */
static int64_t burst(it_conn_t *c, it_listener_t *results, int n, const char *url)
{
    char corr[IT_ID_MAX], conv[IT_ID_MAX];
    int64_t t0 = it_now_ms();
    it_unique(conv, "conv");
    for (int i = 0; i < n; i++) {
        it_unique(corr, "corr");
        it_pub_t cmd =
            it_command("testkit.Trace", RESULT_KEY, corr, conv, "application/json", "{}", 2);
        it_publish_async(c, &cmd);
    }
    it_confirm_all(c, 10000);
    for (int i = 0; i < n; i++) {
        it_msg_t *r = it_get(results, 5000);
        if (!r)
            IT_FAIL("%s: result %d of %d missing after %lld ms", url, i + 1, n,
                    (long long)(it_now_ms() - t0));
        it_msg_free(r);
    }
    return it_now_ms() - t0;
}

static void test_an_endpoint_that_does_not_answer_holds_up_nothing(void **state)
{
    enum { N = 200 };
    /* A sink that never answers (held) and a port nothing listens on. */
    otlp_sink_t *sink = sink_start();
    sink_hold(sink, true);
    unsigned ports[2] = {sink_port(sink), dead_port()};
    for (int k = 0; k < 2; k++) {
        it_conn_t *c = it_connect();
        it_listener_t *results = it_listen("commands", (const char *[]){RESULT_KEY, NULL});
        char *url =
            it_asprintf("http://%s127.0.0.1:%u/v1/traces", k ? "user:s3cret@" : "", ports[k]);
        char *keys = it_asprintf("otlp_endpoint = %s\n", url);
        it_host_t *h = start(c, keys);
        burst(c, results, N, url);
        /* The exporter is now posting those spans, and waiting. */
        it_sleep_ms(1500);
        int64_t ms = burst(c, results, N, url);
        print_message("%d commands answered in %lld ms with otlp_endpoint %s\n", N, (long long)ms,
                      k ? "refusing connections" : "never answering");
        /* Far below the exporter's 5 s request timeout: nothing waited on it. */
        if (ms > 4000) IT_FAIL("%d commands took %lld ms", N, (long long)ms);
        /* Stopping waits at most for the post under way and one short last try. */
        int64_t s0 = it_now_ms();
        assert_int_equal(it_host_stop(h, 15000), 0);
        if (it_now_ms() - s0 > 9000)
            IT_FAIL("stopping took %lld ms", (long long)(it_now_ms() - s0));
        char *out = it_host_output(h);
        if (!strstr(out, "cannot export"))
            IT_FAIL("no ERROR about the endpoint that does not answer");
        if (strstr(out, "s3cret")) IT_FAIL("the endpoint's password was shown");
        free(out);
        free(url);
        free(keys);
        it_unlisten(results);
        it_close(c);
    }
    sink_stop(sink);
    it_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_traceparent_is_continued_on_the_result_and_in_the_logs),
        IT_TEST(test_a_command_without_one_starts_a_trace),
        IT_TEST(test_masstransit_headers_continue_the_trace),
        IT_TEST(test_an_invalid_traceparent_starts_a_new_trace_and_is_handled),
        IT_TEST(test_spans_reach_the_otlp_endpoint_with_their_links),
        IT_TEST(test_an_endpoint_that_does_not_answer_holds_up_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
