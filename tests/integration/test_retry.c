/* test_retry.c -- handler outcomes that dead-letter: BH_RETRY is requeued
 * once, then rejected (ALERT, then EMERGENCY "Giving up on <key>");
 * BH_REJECT is rejected at once. Neither produces a result. The once counts
 * failures: a message a drain gave back (redelivered) still gets it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define RESULT_KEY "itest.TestkitResult"

typedef struct rec {
    char key[64];
    char text[512];
    char conv[IT_ID_MAX];
} rec_t;

/* Every testkit.* log record for `ms` (at most max), in arrival order. */
static size_t collect_logs(it_listener_t *l, rec_t *out, size_t max, int ms)
{
    int64_t deadline = it_now_ms() + ms;
    size_t n = 0;
    it_msg_t *m;

    while (n < max && (m = it_get(l, (int)(deadline - it_now_ms())))) {
        json_t *g = it_gelf(m);
        const char *s = json_string_value(json_object_get(g, "short_message"));
        const char *c = json_string_value(json_object_get(g, "_conversation_id"));
        snprintf(out[n].key, sizeof out[n].key, "%s", m->routing_key);
        snprintf(out[n].text, sizeof out[n].text, "%s", s ? s : "");
        snprintf(out[n].conv, sizeof out[n].conv, "%s", c ? c : "");
        print_message("log %s: %s\n", out[n].key, out[n].text);
        n++;
        json_decref(g);
        it_msg_free(m);
    }
    return n;
}

/* Index of the first record at or after `from` with key and text, or -1. */
static int find(const rec_t *r, size_t n, size_t from, const char *key, const char *text)
{
    for (size_t i = from; i < n; i++)
        if (strcmp(r[i].key, key) == 0 && strstr(r[i].text, text)) return (int)i;
    return -1;
}

static size_t count(const rec_t *r, size_t n, const char *text)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++) k += strstr(r[i].text, text) != NULL;
    return k;
}

/* Send testkit.<cmd> and wait for it in the DLQ; the dead-lettered copy is
 * checked for x-death (reason rejected, from testkit.commands, count 1). */
static void send_and_dead_letter(it_conn_t *c, const char *key, const char *corr, const char *conv)
{
    static const char body[] = "{}";
    const amqp_field_value_t *deaths;
    const amqp_table_t *death;
    const amqp_field_value_t *v;
    it_pub_t cmd =
        it_command(key, RESULT_KEY, corr, conv, "application/json", body, sizeof body - 1);
    it_msg_t *d;
    uint32_t n;
    char *s;

    it_publish(c, &cmd);
    n = it_dlq_wait(c, 1, 10000);
    if (n != 1) IT_FAIL("%s holds %u messages 10 s after %s, expected 1", IT_DLQ, n, key);
    d = it_dlq_get(c);
    assert_non_null(d);
    assert_string_equal(d->routing_key, key);
    assert_non_null(d->correlation_id);
    assert_string_equal(d->correlation_id, corr);
    assert_non_null(d->conversation_id);
    assert_string_equal(d->conversation_id, conv);
    assert_int_equal(d->len, sizeof body - 1);
    assert_memory_equal(d->body, body, sizeof body - 1);

    deaths = it_header(d, "x-death");
    assert_non_null(deaths);
    assert_int_equal(deaths->kind, AMQP_FIELD_KIND_ARRAY);
    assert_int_equal(deaths->value.array.num_entries, 1);
    assert_int_equal(deaths->value.array.entries[0].kind, AMQP_FIELD_KIND_TABLE);
    death = &deaths->value.array.entries[0].value.table;
    s = it_field_str(it_table_get(death, "reason"));
    assert_non_null(s);
    assert_string_equal(s, "rejected");
    free(s);
    s = it_field_str(it_table_get(death, "queue"));
    assert_non_null(s);
    assert_string_equal(s, "testkit.commands");
    free(s);
    s = it_field_str(it_table_get(death, "exchange"));
    assert_non_null(s);
    assert_string_equal(s, "commands");
    free(s);
    /* Dead-lettered once: a requeue is not a death. */
    v = it_table_get(death, "count");
    assert_non_null(v);
    assert_int_equal(v->kind, AMQP_FIELD_KIND_I64);
    assert_int_equal(v->value.i64, 1);
    it_msg_free(d);
}

/* One command through a testkit host: the connection, a listener on the
 * host's logs, the host, and the command's conversation id. */
typedef struct run {
    it_conn_t *c;
    it_listener_t *logs;
    it_host_t *h;
    char conv[IT_ID_MAX];
} run_t;

/* Set up dead-lettering, start a testkit host, and send_and_dead_letter
 * `key` in a new conversation. */
static void start_and_dead_letter(run_t *r, const char *key)
{
    char corr[IT_ID_MAX];

    r->c = it_connect();
    r->logs = it_listen("logs", (const char *[]){"testkit.*", NULL});
    it_dlx_setup(r->c);
    r->h = it_host_ready(r->c, "testkit.commands", &(it_host_opts_t){.plugins = "testkit"});
    it_unique(corr, "corr");
    it_unique(r->conv, "conv");
    send_and_dead_letter(r->c, key, corr, r->conv);
}

static void test_retry_outcome_is_requeued_once_then_dead_lettered_with_alert_then_emergency(
    void **state)
{
    it_listener_t *results = it_listen("commands", (const char *[]){RESULT_KEY, NULL});
    run_t run;
    rec_t recs[64];
    size_t n;
    int first, second, alert, giving_up;
    it_msg_t *r;

    start_and_dead_letter(&run, "testkit.Fail");

    /* Logs travel apart from the dead-lettering: give them a moment, and
     * give a third delivery (which must not happen) the time to show. */
    n = collect_logs(run.logs, recs, 64, 1500);
    first = find(recs, n, 0, "testkit.NOTICE", "Fail called (redelivered=false)");
    /* The requeue is a copy that counts the failure, so the broker never
     * flags it as a redelivery. */
    second = first < 0 ? -1
                       : find(recs, n, (size_t)first + 1, "testkit.NOTICE",
                              "Fail called (redelivered=false)");
    alert = find(recs, n, 0, "testkit.ALERT", "");
    giving_up = find(recs, n, 0, "testkit.EMERGENCY", "Giving up on testkit.Fail");
    if (first < 0 || second < 0)
        IT_FAIL("expected the handler to run twice, neither a redelivery (first at %d, second "
                "at %d of %zu records)",
                first, second, n);
    assert_int_equal(count(recs, n, "Fail called"), 2);
    if (alert < 0 || giving_up < 0 || giving_up < alert)
        IT_FAIL("expected an ALERT, then an EMERGENCY 'Giving up on testkit.Fail' (ALERT at %d, "
                "EMERGENCY at %d of %zu records)",
                alert, giving_up, n);
    assert_string_equal(recs[alert].conv, run.conv);
    assert_string_equal(recs[giving_up].conv, run.conv);

    /* A bug produces no result. */
    r = it_get(results, 0);
    if (r) IT_FAIL("testkit.Fail got a result (status %s)", r->status ? r->status : "(none)");
    assert_int_equal(it_dlq_count(run.c), 0);
    assert_int_equal(it_host_stop(run.h, 15000), 0);
    it_pass();
}

static void test_reject_outcome_is_dead_lettered_at_once_without_retry(void **state)
{
    run_t run;
    rec_t recs[64];
    size_t n;

    start_and_dead_letter(&run, "testkit.Reject");
    n = collect_logs(run.logs, recs, 64, 1000);
    /* The requeue path logs ALERT and EMERGENCY; a reject is not a bug. */
    assert_int_equal(find(recs, n, 0, "testkit.ALERT", ""), -1);
    assert_int_equal(find(recs, n, 0, "testkit.EMERGENCY", ""), -1);
    assert_int_equal(it_host_stop(run.h, 15000), 0);
    it_pass();
}

/* Host A is stopped while a Fail command waits in its prefetch behind a
 * slow Sleep: the drain gives it back, and it comes redelivered to host B.
 * Having failed nowhere yet, it still gets its retry there: two Fail calls
 * on B, then the dead-letter. */
static void test_a_message_a_drain_gave_back_still_gets_its_retry(void **state)
{
    static const char sleep_body[] = "{\"ms\": 1500}", body[] = "{}";
    it_host_opts_t o = {.plugins = "testkit", .sections = "[testkit]\nworkers = 1\nprefetch = 2\n"};
    it_conn_t *c = it_connect();
    it_listener_t *logs = it_listen("logs", (const char *[]){"testkit.*", NULL});
    char corr[IT_ID_MAX], conv[IT_ID_MAX], sconv[IT_ID_MAX];
    rec_t recs[64];
    size_t n;

    it_dlx_setup(c);
    it_host_t *a = it_host_ready(c, "testkit.commands", &o);
    it_unique(sconv, "sleep");
    it_unique(corr, "corr");
    it_unique(conv, "conv");
    it_pub_t sleep = it_command("testkit.Sleep", RESULT_KEY, "s1", sconv, "application/json",
                                sleep_body, sizeof sleep_body - 1);
    it_pub_t fail = it_command("testkit.Fail", RESULT_KEY, corr, conv, "application/json", body,
                               sizeof body - 1);
    it_publish(c, &sleep);
    it_publish(c, &fail);
    it_sleep_ms(500); /* Sleep runs; Fail waits in the prefetch */
    assert_int_equal(it_host_stop(a, 15000), 0);
    n = collect_logs(logs, recs, 64, 300);
    if (count(recs, n, "Fail called"))
        IT_FAIL("host A ran Fail before its drain: the test proves nothing");

    /* Not it_host_ready: that purges the queue, the message with it. */
    it_host_t *b = it_host_start(&(it_host_opts_t){.plugins = "testkit"});
    it_wait_consumers(c, "testkit.commands", 1, 15000, b);
    uint32_t dead = it_dlq_wait(c, 1, 10000);
    n = collect_logs(logs, recs, 64, 1500);
    int first = find(recs, n, 0, "testkit.NOTICE", "Fail called (redelivered=true)");
    int second = first < 0 ? -1
                           : find(recs, n, (size_t)first + 1, "testkit.NOTICE",
                                  "Fail called (redelivered=false)");
    if (first < 0 || second < 0)
        IT_FAIL("expected Fail to run twice on host B, first as the redelivery the drain made, "
                "then as its one retry (first at %d, second at %d of %zu records)",
                first, second, n);
    assert_int_equal(count(recs, n, "Fail called"), 2);
    assert_int_not_equal(find(recs, n, 0, "testkit.EMERGENCY", "Giving up on testkit.Fail"), -1);
    assert_int_equal(dead, 1);
    assert_int_equal(it_host_stop(b, 15000), 0);
    it_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_retry_outcome_is_requeued_once_then_dead_lettered_with_alert_then_emergency),
        IT_TEST(test_reject_outcome_is_dead_lettered_at_once_without_retry),
        IT_TEST(test_a_message_a_drain_gave_back_still_gets_its_retry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
