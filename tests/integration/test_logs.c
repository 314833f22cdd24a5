/* test_logs.c -- what the host puts on `logs`: GELF 1.1 records with every
 * field docs/wire-conventions.md lists, sent with no AMQP properties at all, and
 * periodic NOTICE health checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static void assert_str_field(json_t *g, const char *key, const char *want)
{
    json_t *v = json_object_get(g, key);

    if (!json_is_string(v)) IT_FAIL("GELF field %s is missing or not a string", key);
    if (want && strcmp(json_string_value(v), want) != 0)
        IT_FAIL("GELF field %s is '%s', expected '%s'", key, json_string_value(v), want);
}

/* The fields every record carries, for a host run as `service` by pid. */
static void assert_gelf(json_t *g, const char *service, long pid, int level, const char *levelname)
{
    char host[HOST_NAME_MAX + 1], want[HOST_NAME_MAX + 64];
    json_t *ts = json_object_get(g, "timestamp"), *wp = json_object_get(g, "_worker_pid");
    double now = (double)time(NULL);

    assert_int_equal(gethostname(host, sizeof host), 0);
    host[HOST_NAME_MAX] = '\0';
    snprintf(want, sizeof want, "%s@%s", service, host);
    assert_str_field(g, "version", "1.1");
    assert_str_field(g, "host", want);
    assert_str_field(g, "short_message", NULL);
    assert_str_field(g, "full_message", NULL);
    assert_str_field(g, "_levelname", levelname);
    assert_str_field(g, "_conversation_id", NULL);
    assert_str_field(g, "_logical_service", service);
    if (!json_is_integer(json_object_get(g, "level")))
        IT_FAIL("GELF field level is missing or not an integer");
    assert_int_equal(json_integer_value(json_object_get(g, "level")), level);
    if (!json_is_number(ts)) IT_FAIL("GELF field timestamp is missing or not a number");
    if (json_number_value(ts) < now - 60 || json_number_value(ts) > now + 60)
        IT_FAIL("GELF timestamp %.3f is not near now (%.0f)", json_number_value(ts), now);
    if (json_is_integer(wp)) assert_int_equal(json_integer_value(wp), pid);
    else if (json_is_string(wp)) assert_int_equal(strtol(json_string_value(wp), NULL, 10), pid);
    else IT_FAIL("GELF field _worker_pid is missing");
    /* GELF forbids these. */
    assert_null(json_object_get(g, "id"));
    assert_null(json_object_get(g, "_id"));
}

static void assert_no_properties(const it_msg_t *m)
{
    if (m->props->_flags != 0)
        IT_FAIL("log %s has AMQP properties (flags 0x%04x); the contract says none", m->routing_key,
                (unsigned)m->props->_flags);
}

static void test_handler_log_is_gelf_with_every_field_and_no_properties(void **state)
{
    static const char body[] = "{\"hello\": 1}";
    char corr[IT_ID_MAX], conv[IT_ID_MAX];
    it_conn_t *c = it_connect();
    it_listener_t *l = it_listen("logs", (const char *[]){"echo.*", NULL});
    it_host_t *h;
    it_pub_t cmd;
    it_msg_t *m;
    json_t *g = NULL;
    int64_t deadline;

    h = it_host_ready(
        c, "echo.commands",
        &(it_host_opts_t){.plugins = "echo", .sections = "[echo]\nlog_requests = true\n"});
    it_unique(corr, "corr");
    it_unique(conv, "conv");
    cmd = it_command("echo.Echo", "itest.EchoResult", corr, conv, "application/json", body,
                     sizeof body - 1);
    it_publish(c, &cmd);

    /* log_requests makes the handler log at INFO with the message's
     * conversation id; every record on the way must be property-less. */
    deadline = it_now_ms() + 10000;
    while (!g && (m = it_get(l, (int)(deadline - it_now_ms())))) {
        json_t *r = it_gelf(m);
        const char *cv = json_string_value(json_object_get(r, "_conversation_id"));
        assert_no_properties(m);
        if (strcmp(m->routing_key, "echo.INFO") == 0 && cv && strcmp(cv, conv) == 0) g = r;
        else json_decref(r);
        it_msg_free(m);
    }
    if (!g) IT_FAIL("no echo.INFO record with _conversation_id %s within 10 s", conv);
    assert_gelf(g, "echo", (long)h->pid, 6, "INFO");
    json_decref(g);
    assert_int_equal(it_host_stop(h, 15000), 0);
    it_pass();
}

static void test_healthcheck_is_a_periodic_notice_with_healthcheck_ok(void **state)
{
    it_conn_t *c = it_connect();
    it_listener_t *l = it_listen("logs", (const char *[]){"echo.NOTICE", NULL});
    it_host_t *h;
    int64_t deadline, first = 0;
    int seen = 0;
    it_msg_t *m;

    h = it_host_ready(
        c, "echo.commands",
        &(it_host_opts_t){.plugins = "echo", .host_keys = "healthcheck_interval = 1\n"});

    /* Two of them, about a second apart: periodic, not a one-off. */
    deadline = it_now_ms() + 6000;
    while (seen < 2 && (m = it_get(l, (int)(deadline - it_now_ms())))) {
        json_t *g = it_gelf(m);
        const char *hc = json_string_value(json_object_get(g, "_healthcheck"));
        assert_no_properties(m);
        if (hc) {
            assert_string_equal(hc, "ok");
            assert_gelf(g, "echo", (long)h->pid, 5, "NOTICE");
            if (seen++ == 0) first = it_now_ms();
        }
        json_decref(g);
        it_msg_free(m);
    }
    if (seen < 2)
        IT_FAIL("%d health checks within 6 s with healthcheck_interval = 1, expected 2", seen);
    assert_true(it_now_ms() - first >= 500);
    assert_int_equal(it_host_stop(h, 15000), 0);
    it_pass();
}

static void test_sigterm_logs_shutting_down_as_a_warning(void **state)
{
    it_conn_t *c = it_connect();
    it_listener_t *l = it_listen("logs", (const char *[]){"echo.WARNING", NULL});
    it_host_t *h;
    long pid;
    json_t *g;

    h = it_host_ready(c, "echo.commands", &(it_host_opts_t){.plugins = "echo"});
    pid = (long)h->pid;
    assert_int_equal(it_host_stop(h, 15000), 0);
    g = it_get_log(l, "echo.WARNING", "Shutting down", 5000);
    if (!g) IT_FAIL("no echo.WARNING 'Shutting down' record after SIGTERM");
    assert_gelf(g, "echo", pid, 4, "WARNING");
    json_decref(g);
    it_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_handler_log_is_gelf_with_every_field_and_no_properties),
        IT_TEST(test_healthcheck_is_a_periodic_notice_with_healthcheck_ok),
        IT_TEST(test_sigterm_logs_shutting_down_as_a_warning),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
