/* test_delayed_retry.c -- opt-in delayed retry (retry_delays) and queue
 * arguments against a real broker: BH_RETRY parks a copy in
 * <queue>.retry.<ms>, the broker brings it back after the delay, and after
 * the last delay the message is dead-lettered, headers of the host's own
 * telling the attempts and where it was first published. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define RESULT_KEY "itest.DelayedResult"

/* The text of every testkit log record within ms, oldest first, one per line. */
static char *collect(it_listener_t *l, int ms)
{
    int64_t deadline = it_now_ms() + ms;
    size_t cap = 8192, len = 0;
    char *all = calloc(1, cap);
    it_msg_t *m;

    assert_non_null(all);
    while ((m = it_get(l, (int)(deadline - it_now_ms())))) {
        json_t *g = it_gelf(m);
        const char *s = json_string_value(json_object_get(g, "short_message"));
        int n = snprintf(all + len, cap - len, "%s %s\n", m->routing_key, s ? s : "");
        if (n > 0 && (size_t)n < cap - len) len += (size_t)n;
        json_decref(g);
        it_msg_free(m);
    }
    return all;
}

static void test_retry_waits_each_delay_then_dead_letters_with_attempt_headers(void **state)
{
    static const char body[] = "{\"n\": 1}";
    it_conn_t *c = it_connect();
    it_listener_t *logs = it_listen("logs", (const char *[]){"testkit.*", NULL});
    char corr[IT_ID_MAX], conv[IT_ID_MAX];
    int64_t t0;
    char *text, *s;

    it_dlx_setup(c);
    it_host_t *h =
        it_host_ready(c, "testkit.commands",
                      &(it_host_opts_t){.plugins = "testkit",
                                        .sections = "[testkit]\nretry_delays = 300ms, 600ms\n"});
    it_unique(corr, "corr");
    it_unique(conv, "conv");
    it_pub_t cmd = it_command("testkit.Fail", RESULT_KEY, corr, conv, "application/json", body,
                              sizeof body - 1);
    t0 = it_now_ms();
    it_publish(c, &cmd);
    if (it_dlq_wait(c, 1, 10000) != 1) IT_FAIL("testkit.Fail did not reach %s within 10 s", IT_DLQ);
    /* Three runs, two waits of 300 + 600 ms in between. */
    if (it_now_ms() - t0 < 850)
        IT_FAIL("dead-lettered after %lld ms, before the two delays (900 ms) passed",
                (long long)(it_now_ms() - t0));

    it_msg_t *d = it_dlq_get(c);
    assert_non_null(d);
    assert_string_equal(d->conversation_id, conv);
    assert_string_equal(d->correlation_id, corr);
    assert_int_equal(d->len, sizeof body - 1);
    assert_memory_equal(d->body, body, sizeof body - 1);
    const amqp_field_value_t *attempt = it_header(d, "x-bushost-attempt");
    assert_non_null(attempt);
    assert_int_equal(attempt->kind, AMQP_FIELD_KIND_I32);
    assert_int_equal(attempt->value.i32, 2);
    s = it_field_str(it_header(d, "x-bushost-routing-key"));
    assert_non_null(s);
    assert_string_equal(s, "testkit.Fail");
    free(s);
    s = it_field_str(it_header(d, "x-bushost-exchange"));
    assert_non_null(s);
    assert_string_equal(s, "commands");
    free(s);
    it_msg_free(d);

    text = collect(logs, 1000);
    print_message("%s", text);
    const char *a1 = strstr(
        text, "testkit.ALERT handler failed on command 'testkit.Fail'; retry 1 of 2 in 300 ms");
    const char *a2 = strstr(
        text, "testkit.ALERT handler failed on command 'testkit.Fail'; retry 2 of 2 in 600 ms");
    const char *e = strstr(text, "testkit.EMERGENCY Giving up on testkit.Fail");
    if (!a1 || !a2 || !e || a2 < a1 || e < a2)
        IT_FAIL("expected ALERT retry 1 of 2, ALERT retry 2 of 2, then EMERGENCY Giving up");
    size_t runs = 0;
    for (const char *p = text; (p = strstr(p, "Fail called")); p++) runs++;
    assert_int_equal(runs, 3);
    free(text);
    assert_int_equal(it_dlq_count(c), 0);
    assert_int_equal(it_host_stop(h, 15000), 0);
    it_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_retry_waits_each_delay_then_dead_letters_with_attempt_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
