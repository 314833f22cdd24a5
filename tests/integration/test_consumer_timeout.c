/* test_consumer_timeout.c -- a handler that outlives the broker's
 * consumer_timeout, on a node of its own where that is 5 s (checked every
 * second: scripts/broker.sh BH_BROKER_CONSUMER_TIMEOUT).
 *
 * One testkit.Sleep of 8 s keeps its delivery unacked past the limit: the
 * broker closes the channel with 406 PRECONDITION_FAILED and requeues it.
 * The host logs an ERROR naming the handler and the limit, reconnects,
 * counts the timeout for that message, and once the count reaches
 * crash_limit (2 here) dead-letters the next delivery of it with an
 * EMERGENCY. handler_timeout_ms = 2000 warns well before the broker acts.
 * Meanwhile echoes sent every 200 ms are all answered: the service keeps
 * serving. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define RESULT_KEY "itest.EchoResult"
enum { MAX_ECHOES = 400 };

static size_t count(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* Take the echo results that come for ms, marking their ids. */
static void take_results(it_listener_t *l, bool *answered, size_t n, int ms)
{
    int64_t until = it_now_ms() + ms, left;
    it_msg_t *m;
    while ((left = until - it_now_ms()) > 0 && (m = it_get_key(l, RESULT_KEY, (int)left))) {
        json_t *p = it_payload(m);
        json_int_t id = json_integer_value(json_object_get(p, "id"));
        if (id >= 0 && (size_t)id < n) answered[id] = true;
        json_decref(p);
        it_msg_free(m);
    }
}

static void cut_line(char *s)
{
    char *end = strchr(s, '\n');
    if (end) *end = '\0';
}

static void publish_json(it_conn_t *c, const char *key, const char *reply_to, const char *body)
{
    char corr[IT_ID_MAX], conv[IT_ID_MAX];
    it_unique(corr, "corr");
    it_unique(conv, "conv");
    it_pub_t p = it_command(key, reply_to, corr, conv, "application/json", body, strlen(body));
    it_publish(c, &p);
}

static void
test_handler_past_consumer_timeout_is_dead_lettered_after_crash_limit_and_others_are_served(
    void **state)
{
    static const it_host_opts_t opts = {
        .plugins = "testkit",
        .host_keys = "crash_limit = 2\n",
        .sections = "[testkit]\nworkers = 4\nprefetch = 4\nhandler_timeout_ms = 2000\n"};
    static bool answered[MAX_ECHOES];
    char body[64], *out, *line;
    size_t sent = 0, lost = 0;
    (void)state;

    it_conn_t *c = it_connect();
    it_dlx_setup(c);
    it_listener_t *results = it_listen("commands", (const char *[]){RESULT_KEY, NULL});
    it_host_t *h = it_host_ready(c, "testkit.commands", &opts);

    int64_t t0 = it_now_ms();
    publish_json(c, "testkit.Sleep", "itest.SleepResult", "{\"ms\": 8000}");
    /* Echoes every 200 ms until the slow message is dead-lettered (two
     * timeouts of 5-6 s each), and for 2 s more. */
    int64_t dead_at = 0;
    while (sent < MAX_ECHOES && (!dead_at || it_now_ms() < dead_at + 2000)) {
        snprintf(body, sizeof body, "{\"id\": %zu}", sent);
        publish_json(c, "testkit.Echo", RESULT_KEY, body);
        sent++;
        take_results(results, answered, MAX_ECHOES, 200);
        if (!dead_at && it_dlq_count(c) >= 1) dead_at = it_now_ms();
        if (it_now_ms() - t0 > 45000) IT_FAIL("nothing dead-lettered 45 s after the slow message");
    }
    printf("  dead-lettered %.1f s after it was sent; %zu echoes sent meanwhile\n",
           (double)(dead_at - t0) / 1000.0, sent);
    /* Every echo is answered: 10 s for the ones still in flight. */
    for (int64_t until = it_now_ms() + 10000; it_now_ms() < until;) {
        size_t missing = 0;
        for (size_t i = 0; i < sent; i++) missing += !answered[i];
        if (!missing) break;
        take_results(results, answered, MAX_ECHOES, 200);
    }
    for (size_t i = 0; i < sent; i++) lost += !answered[i];
    printf("  echoes: %zu sent, %zu unanswered\n", sent, lost);
    assert_int_equal(lost, 0);

    /* The slow message is the one in the DLQ, rejected by the host. */
    it_msg_t *d = it_dlq_get(c);
    assert_non_null(d);
    assert_string_equal(d->routing_key, "testkit.Sleep");
    it_msg_free(d);
    assert_int_equal(it_dlq_count(c), 0);

    out = it_host_output(h);
    /* The warning came first, at about 2 s of each run. */
    assert_true(count(out, "has run ") >= 1);
    assert_true(count(out, "past handler_timeout_ms = 2000") >= 1);
    line = strstr(out, "consumer timeout: handler for command 'testkit.Sleep'");
    assert_non_null(line);
    assert_true(strstr(out, "past handler_timeout_ms") < line);
    cut_line(line);
    printf("  %s\n", line);
    assert_non_null(strstr(line, "consumer_timeout (5000 ms)"));
    assert_non_null(strstr(line, "timeout 1 of crash_limit 2"));
    free(out);
    out = it_host_output(h);
    assert_int_equal(count(out, "consumer timeout: handler for command 'testkit.Sleep'"), 2);
    assert_int_equal(count(out, "timeout 2 of crash_limit 2"), 1);
    line = strstr(out, "Giving up on testkit.Sleep: its handler outlived the broker's "
                       "consumer_timeout 2 time(s) (crash_limit 2)");
    assert_non_null(line);
    cut_line(line);
    printf("  %s\n", line);
    free(out);

    it_unlisten(results);
    it_close(c);
    assert_int_equal(it_host_stop(h, 30000), 0);
    it_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(
            test_handler_past_consumer_timeout_is_dead_lettered_after_crash_limit_and_others_are_served),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
