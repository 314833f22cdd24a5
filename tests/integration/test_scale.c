/* test_scale.c -- two bushost instances running the same logical service
 * share its queues: the broker hands each event to exactly one of them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "harness.h"

enum { TICKS = 1000 };

static void test_two_instances_share_ticks_each_answered_exactly_once(void **state)
{
    static const it_host_opts_t opts = {.plugins = "testkit",
                                        .sections = "[testkit]\nworkers = 2\n"};
    char prefix[IT_ID_MAX], conv[IT_ID_MAX + 16];
    it_conn_t *c = it_connect();
    it_listener_t *l = it_listen("events", (const char *[]){"Tocked", NULL});
    it_host_t *a, *b;
    unsigned seen[TICKS] = {0};
    size_t distinct = 0, dups = 0, from_a = 0, from_b = 0;
    int64_t deadline;
    it_msg_t *m;

    it_purge(c, "testkit.events");
    it_purge(c, "testkit.commands");
    a = it_host_start(&opts);
    b = it_host_start(&opts);
    it_wait_consumers(c, "testkit.events", 2, 15000, a);
    it_wait_consumers(c, "testkit.events", 2, 15000, b);

    it_unique(prefix, "tick");
    for (int n = 0; n < TICKS; n++) {
        json_t *v = json_pack("{s:i}", "n", n);
        size_t len;
        void *body = it_cbor_encode(v, &len);
        it_pub_t ev;
        snprintf(conv, sizeof conv, "%s-%d", prefix, n);
        ev = it_event("Tick", conv, "application/cbor", body, len);
        it_publish_async(c, &ev);
        free(body);
        json_decref(v);
    }
    it_confirm_all(c, 30000);

    /* Collect until every n was answered, then a little longer so that a
     * second answer to any of them has the time to arrive. */
    deadline = it_now_ms() + 30000;
    while ((m = it_get(l, (int)(deadline - it_now_ms())))) {
        json_t *p = it_payload(m);
        json_int_t n = json_integer_value(json_object_get(p, "n"));
        json_int_t pid = json_integer_value(json_object_get(p, "pid"));

        if (!json_is_integer(json_object_get(p, "n")) || n < 0 || n >= TICKS)
            IT_FAIL("Tocked with a bad n: %s", m->routing_key);
        snprintf(conv, sizeof conv, "%s-%d", prefix, (int)n);
        assert_non_null(m->conversation_id);
        assert_string_equal(m->conversation_id, conv);
        if (pid == a->pid) from_a++;
        else if (pid == b->pid) from_b++;
        else
            IT_FAIL("Tocked %d from pid %lld, neither instance (%ld, %ld)", (int)n, (long long)pid,
                    (long)a->pid, (long)b->pid);
        if (seen[n]++) dups++;
        else if (++distinct == TICKS) deadline = it_now_ms() + 500;
        json_decref(p);
        it_msg_free(m);
    }
    print_message("%zu distinct Tocked, %zu duplicates; %zu from pid %ld, %zu from pid %ld\n",
                  distinct, dups, from_a, (long)a->pid, from_b, (long)b->pid);
    if (distinct != TICKS) {
        for (int n = 0; n < TICKS; n++)
            if (!seen[n]) {
                print_error("first missing Tocked: n = %d\n", n);
                break;
            }
        IT_FAIL("%zu of %d Ticks were answered", distinct, TICKS);
    }
    assert_int_equal(dups, 0);
    assert_true(from_a > 0);
    assert_true(from_b > 0);
    assert_int_equal(it_host_stop(a, 15000), 0);
    assert_int_equal(it_host_stop(b, 15000), 0);
    it_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_two_instances_share_ticks_each_answered_exactly_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
