/* test_renamed.c -- one plugin run by two hosts under two service names
 * (tests/fixtures/renamed.c as `service = inv-a` and `service = inv-b`).
 * Its result key is relative, so each instance binds its own
 * "<service>.EchoReturn" and gets only the results of the commands it
 * sent: A's never reach B, nor B's A. Its answers to Ask also carry
 * headers and options the plugin set, through the real broker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "harness.h"

static char *fixture(void) { return it_asprintf("%s/renamed/inventory.so", it_env("BH_FIXTURES")); }

static it_host_t *start(it_conn_t *c, const char *plugins, const char *service)
{
    char *queue = it_asprintf("%s.commands", service);
    char *sections = it_asprintf("[inventory]\nservice = %s\n", service);
    it_host_t *h =
        it_host_ready(c, queue, &(it_host_opts_t){.plugins = plugins, .sections = sections});
    free(queue);
    free(sections);
    return h;
}

/* Ask `service`; its Got event must come, carrying the result it received
 * on "<service>.EchoReturn". */
static void ask(it_conn_t *c, it_listener_t *l, it_listener_t *asked, const char *service)
{
    char corr[IT_ID_MAX], conv[IT_ID_MAX];
    it_unique(corr, "corr");
    it_unique(conv, "conv");
    char *key = it_asprintf("%s.Ask", service), *got = it_asprintf("%s.Got", service),
         *want = it_asprintf("%s.EchoReturn", service);
    it_pub_t cmd = it_command(key, "itest.Asked", corr, conv, "application/json", "{}", 2);
    amqp_table_entry_t tenant = {
        .key = amqp_cstring_bytes("tenant"),
        .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(service)}};
    cmd.headers = &(amqp_table_t){.num_entries = 1, .entries = &tenant};
    it_publish(c, &cmd);
    /* Ask's own result: the tenant header read and sent back, and the
     * options the plugin set. */
    it_msg_t *m = it_get(asked, 10000);
    if (!m) IT_FAIL("no result for %s within 10 s", key);
    assert_string_equal(m->status, "success");
    assert_string_equal(m->correlation_id, corr);
    const amqp_field_value_t *h = it_header(m, "tenant");
    assert_non_null(h);
    assert_int_equal(h->kind, AMQP_FIELD_KIND_UTF8);
    assert_int_equal(h->value.bytes.len, strlen(service));
    assert_memory_equal(h->value.bytes.bytes, service, strlen(service));
    assert_non_null(h = it_header(m, "answer"));
    assert_int_equal(h->kind, AMQP_FIELD_KIND_I32);
    assert_int_equal(h->value.i32, 42);
    assert_true(m->props->_flags & AMQP_BASIC_PRIORITY_FLAG);
    assert_int_equal(m->props->priority, 3);
    assert_true(m->props->_flags & AMQP_BASIC_EXPIRATION_FLAG);
    assert_int_equal(m->props->expiration.len, 5);
    assert_memory_equal(m->props->expiration.bytes, "60000", 5);
    it_msg_free(m);
    m = it_get(l, 10000);
    if (!m) IT_FAIL("no event within 10 s after %s", key);
    assert_string_equal(m->routing_key, got);
    json_t *p = it_payload(m);
    assert_string_equal(json_string_value(json_object_get(p, "correlation_id")), corr);
    assert_string_equal(json_string_value(json_object_get(p, "routing_key")), want);
    json_decref(p);
    it_msg_free(m);
    /* Only the instance that asked got a result: nothing else follows. */
    m = it_get(l, 1500);
    if (m) IT_FAIL("after %s, also got event %s", key, m->routing_key);
    free(key);
    free(got);
    free(want);
}

static void test_renamed_instances_get_only_their_own_results(void **state)
{
    char *fx = fixture(), *with_echo = it_asprintf("echo %s", fx);
    it_conn_t *c = it_connect();
    it_listener_t *l = it_listen("events", (const char *[]){"inv-a.Got", "inv-b.Got", NULL});
    it_listener_t *asked = it_listen("commands", (const char *[]){"itest.Asked", NULL});
    it_host_t *a = start(c, with_echo, "inv-a");
    it_host_t *b = start(c, fx, "inv-b");

    ask(c, l, asked, "inv-a");
    ask(c, l, asked, "inv-b");
    ask(c, l, asked, "inv-a");

    assert_int_equal(it_host_stop(a, 15000), 0);
    assert_int_equal(it_host_stop(b, 15000), 0);
    char *out[2] = {it_host_output(a), it_host_output(b)};
    for (int i = 0; i < 2; i++) {
        if (strstr(out[i], "no handler") || strstr(out[i], "correlation"))
            IT_FAIL("host %c logged a stray result:\n%s", 'a' + i, out[i]);
        free(out[i]);
    }
    it_unlisten(l);
    it_unlisten(asked);
    it_close(c);
    free(fx);
    free(with_echo);
    it_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_renamed_instances_get_only_their_own_results),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
