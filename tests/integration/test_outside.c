/* test_outside.c -- work outside handlers, against the real broker, with the
 * outside plugin (tests/integration/outside/outside.c): timer runs that
 * publish and never overlap, events published from a thread of init and
 * confirmed through their callback, and requests with deadlines that end
 * exactly once (timeout, unroutable, answered, shutdown). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "harness.h"

static it_host_t *start(it_conn_t *c, const char *sections)
{
    char *keys = it_asprintf("http_listen = 127.0.0.1:%s\n", it_env("BH_HTTP_PORT"));
    it_host_t *h = it_host_ready(
        c, "outside.commands",
        &(it_host_opts_t){.plugins = "outside", .sections = sections, .host_keys = keys});
    free(keys);
    return h;
}

/* /metrics of the host: a timer's runs or skips, or how many requests
 * ended so. */
static double timer_count(const char *what, const char *timer)
{
    char *s = it_asprintf("bushost_timer_%s_total{service=\"outside\",timer=\"%s\"}", what, timer);
    double v = it_metric(s);
    free(s);
    return v;
}

static double requests_ended(const char *outcome)
{
    char *s =
        it_asprintf("bushost_requests_ended_total{service=\"outside\",outcome=\"%s\"}", outcome);
    double v = it_metric(s);
    free(s);
    return v;
}

static json_int_t int_of(const json_t *p, const char *key)
{
    const json_t *v = json_object_get(p, key);
    if (!json_is_integer(v)) IT_FAIL("no integer '%s' in the payload", key);
    return json_integer_value(v);
}

/* n Beat events: their arrival times in at[], and no run found another. */
static void beats(it_listener_t *l, int n, int64_t *at)
{
    for (int i = 0; i < n; i++) {
        it_msg_t *m = it_get_key(l, "outside.Beat", 3000);
        if (!m) IT_FAIL("beat %d did not come within 3 s", i);
        at[i] = it_now_ms();
        json_t *p = it_payload(m);
        assert_int_equal(int_of(p, "overlaps"), 0);
        /* Each run starts a conversation of its own. */
        assert_non_null(m->conversation_id);
        assert_int_equal(strlen(m->conversation_id), 36);
        json_decref(p);
        it_msg_free(m);
    }
}

static void timer_case(const char *sections, int64_t min_gap, int64_t max_avg)
{
    int64_t at[6];
    it_conn_t *c = it_connect();
    it_listener_t *l = it_listen("events", (const char *[]){"outside.Beat", NULL});
    it_host_t *h = start(c, sections);
    beats(l, 6, at);
    for (int i = 1; i < 6; i++)
        if (at[i] - at[i - 1] < min_gap)
            IT_FAIL("beats %d and %d came %lld ms apart, expected at least %lld", i - 1, i,
                    (long long)(at[i] - at[i - 1]), (long long)min_gap);
    int64_t avg = (at[5] - at[0]) / 5;
    if (avg > max_avg)
        IT_FAIL("beats came every %lld ms on average, expected at most %lld", (long long)avg,
                (long long)max_avg);
    assert_int_equal(it_host_stop(h, 15000), 0);
    it_pass();
}

/* Every 100 ms, on the workers, and on the I/O thread with workers = 0. */
static void timer_publishes(void **state)
{
    timer_case("[outside]\ntick = true\nworkers = 2\n", 20, 250);
}

static void timer_inline(void **state)
{
    timer_case("[outside]\ntick = true\nworkers = 0\n", 20, 250);
}

/* A run of 300 ms on a 100 ms timer: the ticks in between are skipped
 * (and logged), never run beside it, though two workers are free. */
static void timer_never_overlaps(void **state)
{
    int64_t at[6];
    it_conn_t *c = it_connect();
    it_listener_t *l = it_listen("events", (const char *[]){"outside.Beat", NULL});
    it_host_t *h = start(c, "[outside]\ntick = true\ntick_sleep_ms = 300\nworkers = 3\n");
    beats(l, 6, at);
    for (int i = 1; i < 6; i++)
        if (at[i] - at[i - 1] < 250)
            IT_FAIL("beats %d and %d came %lld ms apart: runs overlapped", i - 1, i,
                    (long long)(at[i] - at[i - 1]));
    /* Both counted on /metrics: each run, and the ticks in between. */
    double runs = timer_count("runs", "beat"), skips = timer_count("skips", "beat");
    if (runs < 6 || skips < 5)
        IT_FAIL("/metrics counts %g runs and %g skips of timer beat after 6 beats of 300 ms", runs,
                skips);
    assert_int_equal(it_host_stop(h, 15000), 0);
    char *out = it_host_output(h);
    if (!strstr(out, "tick skipped")) IT_FAIL("no skipped tick was logged");
    free(out);
    it_pass();
}

/* 50 events from a thread the plugin starts in init (before the service is
 * connected): each arrives once, each with a conversation of its own, and
 * each done callback says confirmed. */
static void init_thread_publishes(void **state)
{
    enum { N = 50 };
    bool hello[N] = {false}, confirmed[N] = {false};
    char *convs[N] = {NULL};
    it_conn_t *c = it_connect();
    it_listener_t *l =
        it_listen("events", (const char *[]){"outside.Hello", "outside.Confirmed", NULL});
    it_host_t *h = start(c, "[outside]\ninit_events = 50\n");
    for (int got = 0; got < 2 * N;) {
        it_msg_t *m = it_get(l, 10000);
        if (!m) IT_FAIL("%d of %d Hello and Confirmed events came", got, 2 * N);
        json_t *p = it_payload(m);
        json_int_t i = int_of(p, "i");
        assert_true(i >= 0 && i < N);
        if (!strcmp(m->routing_key, "outside.Hello")) {
            assert_false(hello[i]);
            hello[i] = true;
            assert_non_null(m->conversation_id);
            for (int j = 0; j < N; j++)
                if (convs[j]) assert_string_not_equal(convs[j], m->conversation_id);
            convs[i] = it_strdup(m->conversation_id);
        } else {
            assert_false(confirmed[i]);
            confirmed[i] = true;
            assert_int_equal(int_of(p, "status"), 0); /* BH_PUB_CONFIRMED */
        }
        got++;
        json_decref(p);
        it_msg_free(m);
    }
    for (int i = 0; i < N; i++) free(convs[i]);
    assert_int_equal(it_host_stop(h, 15000), 0);
    it_pass();
}

/* Send outside.Request; its answer says the command was taken (rc 0). */
static void request(it_conn_t *c, it_listener_t *results, const char *to, int timeout_ms, int id)
{
    char corr[IT_ID_MAX], conv[IT_ID_MAX];
    it_unique(corr, "corr");
    it_unique(conv, "conv");
    json_t *p = json_pack("{s:s, s:i, s:i}", "to", to, "timeout_ms", timeout_ms, "id", id);
    size_t len;
    void *body = it_json_encode(p, &len);
    it_pub_t cmd = it_command("outside.Request", "itest.RequestDone", corr, conv,
                              "application/json", body, len);
    it_publish(c, &cmd);
    it_msg_t *r = it_get(results, 10000);
    if (!r) IT_FAIL("no result for outside.Request");
    json_t *a = it_payload(r);
    assert_int_equal(int_of(a, "rc"), 0);
    json_decref(a);
    it_msg_free(r);
    free(body);
    json_decref(p);
}

/* The Ended event of request id, with its status; NULL after timeout_ms. */
static char *ended(it_listener_t *l, int id, int timeout_ms)
{
    it_msg_t *m = it_get_key(l, "outside.Ended", timeout_ms);
    if (!m) return NULL;
    json_t *p = it_payload(m);
    assert_int_equal(int_of(p, "id"), id);
    char *status = it_strdup(json_string_value(json_object_get(p, "status")));
    json_decref(p);
    it_msg_free(m);
    return status;
}

/* Answer command cmd with success, as the service it went to would. */
static void answer(it_conn_t *c, const it_msg_t *cmd)
{
    it_pub_t a = {.exchange = "commands",
                  .key = cmd->reply_to,
                  .content_type = "application/json",
                  .delivery_mode = 2,
                  .conversation_id = cmd->conversation_id,
                  .status = "success",
                  .correlation_id = cmd->correlation_id,
                  .body = "{}",
                  .len = 2};
    it_publish(c, &a);
}

/* A command to a queue nobody answers from: "timeout" after the deadline,
 * once. */
static void request_times_out(void **state)
{
    it_conn_t *c = it_connect();
    it_listener_t *silent = it_listen("commands", (const char *[]){"silent.Never", NULL});
    it_listener_t *res = it_listen("commands", (const char *[]){"itest.RequestDone", NULL});
    it_listener_t *ev = it_listen("events", (const char *[]){"outside.Ended", NULL});
    it_host_t *h = start(c, "[outside]\nworkers = 2\n");
    int64_t t0 = it_now_ms();
    request(c, res, "silent.Never", 400, 7);
    char *st = ended(ev, 7, 5000);
    int64_t took = it_now_ms() - t0;
    if (!st) IT_FAIL("the request did not end within 5 s");
    assert_string_equal(st, "timeout");
    free(st);
    if (took < 350) IT_FAIL("timed out after %lld ms, before its 400 ms", (long long)took);
    it_msg_t *cmd = it_get(silent, 1000); /* it was sent, with the plugin's payload */
    assert_non_null(cmd);
    assert_string_equal(cmd->reply_to, "outside.Answer");
    /* An answer after the deadline is acked without running the handler. */
    answer(c, cmd);
    if ((st = ended(ev, 7, 1500))) IT_FAIL("the request ended a second time: %s", st);
    it_msg_free(cmd);
    assert_true(requests_ended("timeout") == 1);
    assert_true(requests_ended("late") == 1);
    assert_true(requests_ended("answered") == 0);
    assert_int_equal(it_host_stop(h, 15000), 0);
    char *out = it_host_output(h);
    if (!strstr(out, "came after its timeout")) IT_FAIL("the late answer was not logged");
    free(out);
    it_pass();
}

/* A command no queue is bound for: "unroutable". */
static void request_unroutable(void **state)
{
    it_conn_t *c = it_connect();
    it_listener_t *res = it_listen("commands", (const char *[]){"itest.RequestDone", NULL});
    it_listener_t *ev = it_listen("events", (const char *[]){"outside.Ended", NULL});
    it_host_t *h = start(c, "[outside]\n");
    request(c, res, "nobody.Never", 5000, 8);
    char *st = ended(ev, 8, 4000);
    if (!st) IT_FAIL("the request did not end within 4 s");
    assert_string_equal(st, "unroutable");
    free(st);
    assert_true(requests_ended("unroutable") == 1);
    assert_true(it_metric("bushost_requests_waiting{service=\"outside\"}") == 0);
    assert_int_equal(it_host_stop(h, 15000), 0);
    it_pass();
}

/* Answered in time: the handler sees the answer and its context, and the
 * deadline never fires after it. */
static void request_answered(void **state)
{
    it_conn_t *c = it_connect();
    it_listener_t *svc = it_listen("commands", (const char *[]){"silent.Answer", NULL});
    it_listener_t *res = it_listen("commands", (const char *[]){"itest.RequestDone", NULL});
    it_listener_t *ev = it_listen("events", (const char *[]){"outside.Ended", NULL});
    it_host_t *h = start(c, "[outside]\n");
    request(c, res, "silent.Answer", 600, 9);
    it_msg_t *cmd = it_get(svc, 5000);
    if (!cmd) IT_FAIL("the command did not come");
    answer(c, cmd);
    char *st = ended(ev, 9, 4000);
    if (!st) IT_FAIL("the answer did not reach the result handler");
    assert_string_equal(st, "success");
    free(st);
    if ((st = ended(ev, 9, 1200))) IT_FAIL("the request ended a second time: %s", st);
    it_msg_free(cmd);
    assert_int_equal(it_host_stop(h, 15000), 0);
    it_pass();
}

/* Still waiting when the host stops: its handler runs with "shutdown"
 * before fini (it logs; it cannot publish any more). */
static void request_shutdown(void **state)
{
    it_conn_t *c = it_connect();
    it_listener_t *silent = it_listen("commands", (const char *[]){"silent.Never", NULL});
    it_listener_t *res = it_listen("commands", (const char *[]){"itest.RequestDone", NULL});
    it_host_t *h = start(c, "[outside]\n");
    request(c, res, "silent.Never", 0, 10);
    it_msg_t *cmd = it_get(silent, 5000);
    assert_non_null(cmd);
    it_msg_free(cmd);
    assert_int_equal(it_host_stop(h, 15000), 0);
    char *out = it_host_output(h);
    if (!strstr(out, "request 10 ended: shutdown")) IT_FAIL("no shutdown end was logged");
    free(out);
    it_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(timer_publishes),       IT_TEST(timer_inline),      IT_TEST(timer_never_overlaps),
        IT_TEST(init_thread_publishes), IT_TEST(request_times_out), IT_TEST(request_unroutable),
        IT_TEST(request_answered),      IT_TEST(request_shutdown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
