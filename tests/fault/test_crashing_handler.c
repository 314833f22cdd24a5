/* test_crashing_handler.c -- fault 6: a poison message. One marked command
 * makes the handler crash the whole host (SIGSEGV). The service opts in to
 * a quorum queue with delivery_limit = 2 and its own dead_letter_exchange;
 * a supervisor loop (this test) restarts the host each time it dies. The
 * broker counts the deliveries and dead-letters the marked message after
 * the limit, so the crash loop ends, the marked message waits in the DLQ,
 * and every other command is handled.
 *
 * prefetch = 1 and workers = 1: a crash returns every message the host had
 * prefetched, and each return counts as a delivery of that message, so
 * with a larger window innocent messages prefetched next to the poison one
 * would share its fate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"

enum { COMMANDS = 200, MARKED = 50, MAX_RESTARTS = 10 };
/* A macro: the config text below spells it. */
#define DELIVERY_LIMIT 2
#define STR_(x) #x
#define STR(x) STR_(x)
#define DLX "fault.dlx"
#define DLQ "fault.dlq"

static void test_poison_message_ends_in_dlq_after_delivery_limit_and_all_others_are_handled(
    void **state)
{
    static const it_host_opts_t opts = {
        .plugins = "testkit",
        .sections = "[testkit]\nservice = crashkit\nworkers = 1\nprefetch = 1\n"
                    "queue_type = quorum\ndelivery_limit = " STR(
                        DELIVERY_LIMIT) "\n"
                                        "dead_letter_exchange = " DLX "\n"};
    int port = fault_port(0);
    fault_tally_t *t = fault_tally_new("crashing_handler", COMMANDS);
    fault_conn_t *fc;
    it_host_t *h;
    int crashes = 0;
    int64_t deadline;
    char reason[64];
    json_t *dead;

    fault_observe(port, FAULT_OBSERVE, false, "commands", FAULT_REPLY);
    fc = fault_connect(port, 30000);
    fault_declare_exchange(fc, DLX, "fanout");
    fault_declare_queue(fc, DLQ, false);
    fault_bind(fc, DLQ, DLX, "");
    fault_purge(fc, DLQ);
    fault_close(fc);
    h = fault_host_ready("crashkit.commands", 1, &opts, NULL);

    t->excluded = MARKED;
    fault_send_stream(t, "crashkit", "Crash", FAULT_REPLY, 0, MARKED);

    /* The supervisor: restart the host whenever it dies, until the marked
     * message is dead-lettered and every other one answered. */
    deadline = it_now_ms() + 90000;
    for (;;) {
        if (!it_host_alive(h)) {
            crashes++;
            printf("supervisor: the host died (status %d); restart #%d\n", h->status, crashes);
            if (crashes > MAX_RESTARTS)
                IT_FAIL("the host died %d times: the poison message was never dead-lettered",
                        crashes);
            fault_host_respawn(h);
        }
        if (fault_depth(port, DLQ) >= 1 && fault_depth(port, FAULT_OBSERVE) >= COMMANDS - 1) break;
        if (it_now_ms() > deadline)
            IT_FAIL("after 90 s: %ld dead-lettered, %ld results of %d", fault_depth(port, DLQ),
                    fault_depth(port, FAULT_OBSERVE), COMMANDS - 1);
        it_sleep_ms(100);
    }

    fault_collect(t, port, 1500, 60000);
    printf("  the host crashed %d time(s) on the marked message (delivery_limit = %d)\n", crashes,
           DELIVERY_LIMIT);
    fc = fault_connect(port, 30000);
    dead = fault_get(fc, DLQ, reason, sizeof reason);
    assert_non_null(dead);
    printf("  in %s: id %lld, x-first-death-reason '%s'\n", DLQ,
           (long long)json_integer_value(json_object_get(dead, "id")), reason);
    assert_int_equal(json_integer_value(json_object_get(dead, "id")), t->base + MARKED);
    assert_string_equal(reason, "delivery_limit");
    json_decref(dead);
    assert_null(fault_get(fc, DLQ, reason, sizeof reason));
    fault_close(fc);

    assert_int_equal(fault_lost(t), 0);
    assert_int_equal(t->copies[MARKED], 0);
    /* The crash loop ended by itself, after at most the limit's worth. */
    assert_true(crashes >= 1 && crashes <= DELIVERY_LIMIT + 1);
    assert_true(it_host_alive(h));
    assert_int_equal(it_host_stop(h, 30000), 0);
    fault_tally_free(t);
    it_pass();
}

/* The same poison message on a classic queue, which counts no deliveries:
 * the host's crash journal ([host] state_dir) counts the crashes instead,
 * and at the start after the crash_limit-th (3, the default) the host
 * dead-letters the message itself with an EMERGENCY, so the loop ends
 * after exactly crash_limit crashes. */
#define CRASH_LIMIT 3

static void test_poison_message_on_a_classic_queue_is_dead_lettered_after_crash_limit_crashes(
    void **state)
{
    static const it_host_opts_t opts = {
        .plugins = "testkit",
        .host_keys = "state_dir = state\n",
        .sections = "[testkit]\nservice = crashclassic\nworkers = 1\nprefetch = 1\n"
                    "dead_letter_exchange = " DLX "\n"};
    int port = fault_port(0);
    fault_tally_t *t = fault_tally_new("crashing_handler_classic", COMMANDS);
    fault_conn_t *fc;
    it_host_t *h;
    int crashes = 0;
    int64_t deadline;
    char reason[64], *line;
    json_t *dead;

    (void)state;
    fault_observe(port, FAULT_OBSERVE, false, "commands", FAULT_REPLY);
    fc = fault_connect(port, 30000);
    fault_declare_exchange(fc, DLX, "fanout");
    fault_declare_queue(fc, DLQ, false);
    fault_bind(fc, DLQ, DLX, "");
    fault_purge(fc, DLQ);
    fault_close(fc);
    h = fault_host_ready("crashclassic.commands", 1, &opts, NULL);

    t->excluded = MARKED;
    fault_send_stream(t, "crashclassic", "Crash", FAULT_REPLY, 0, MARKED);

    deadline = it_now_ms() + 90000;
    for (;;) {
        if (!it_host_alive(h)) {
            crashes++;
            printf("supervisor: the host died (status %d); restart #%d\n", h->status, crashes);
            if (crashes > MAX_RESTARTS)
                IT_FAIL("the host died %d times: the poison message was never dead-lettered",
                        crashes);
            fault_host_respawn(h);
        }
        if (fault_depth(port, DLQ) >= 1 && fault_depth(port, FAULT_OBSERVE) >= COMMANDS - 1) break;
        if (it_now_ms() > deadline)
            IT_FAIL("after 90 s: %ld dead-lettered, %ld results of %d", fault_depth(port, DLQ),
                    fault_depth(port, FAULT_OBSERVE), COMMANDS - 1);
        it_sleep_ms(100);
    }

    fault_collect(t, port, 1500, 60000);
    printf("  the host crashed %d time(s) on the marked message (crash_limit = %d)\n", crashes,
           CRASH_LIMIT);
    /* The journal saw each crash, and the start after the last one gave up. */
    assert_int_equal(fault_log_count(h, "the last process died while a handler ran"), CRASH_LIMIT);
    line = fault_log_line(h, "Giving up on crashclassic.Crash", 1);
    assert_non_null(line);
    printf("  %s\n", line);
    assert_non_null(strstr(line, "EMERGENCY"));
    assert_non_null(strstr(line, "crashed the host " STR(CRASH_LIMIT) " time(s)"));
    assert_non_null(strstr(line, "message "));
    free(line);
    assert_int_equal(fault_log_count(h, "Giving up on crashclassic.Crash"), 1);

    fc = fault_connect(port, 30000);
    dead = fault_get(fc, DLQ, reason, sizeof reason);
    assert_non_null(dead);
    printf("  in %s: id %lld, x-first-death-reason '%s'\n", DLQ,
           (long long)json_integer_value(json_object_get(dead, "id")), reason);
    assert_int_equal(json_integer_value(json_object_get(dead, "id")), t->base + MARKED);
    assert_string_equal(reason, "rejected");
    json_decref(dead);
    assert_null(fault_get(fc, DLQ, reason, sizeof reason));
    fault_close(fc);

    assert_int_equal(fault_lost(t), 0);
    assert_int_equal(t->copies[MARKED], 0);
    /* Exactly crash_limit crashes, then the loop stopped. */
    assert_int_equal(crashes, CRASH_LIMIT);
    it_sleep_ms(1000);
    assert_true(it_host_alive(h));
    assert_int_equal(it_host_stop(h, 30000), 0);
    fault_tally_free(t);
    it_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_poison_message_ends_in_dlq_after_delivery_limit_and_all_others_are_handled),
        IT_TEST(test_poison_message_on_a_classic_queue_is_dead_lettered_after_crash_limit_crashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
