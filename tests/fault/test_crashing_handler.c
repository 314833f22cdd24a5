/* test_crashing_handler.c -- fault 6: a poison message. One marked command
 * makes the handler crash the whole host (SIGSEGV); a supervisor loop (this
 * test) restarts the host each time it dies. Twice: the service opts in to
 * a quorum queue with delivery_limit = 2 and its own dead_letter_exchange,
 * and the broker counts the deliveries and dead-letters the marked message
 * after the limit (6); or it keeps a classic queue and the host's crash
 * journal counts the crashes, and the host dead-letters it after
 * crash_limit (6b). Either way the crash loop ends, the marked message
 * waits in the DLQ, and every other command is handled.
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

/* The poison stream against a host started with opts on `service`: the
 * supervisor (this test) restarts the host whenever it dies, until the
 * marked message is dead-lettered and every other one answered. Checks
 * that the marked message is the one in the DLQ, with x-first-death-reason
 * `reason`, that nothing else is lost, and returns the number of crashes
 * with the host still running. */
static int poison_run(const char *name, const char *service, const it_host_opts_t *opts,
                      const char *reason_wanted, it_host_t **host)
{
    int port = fault_port(0);
    fault_tally_t *t = fault_tally_new(name, COMMANDS);
    fault_conn_t *fc;
    int crashes = 0;
    char reason[64], queue[64];
    json_t *dead;

    fault_observe(port, FAULT_OBSERVE, false, "commands", FAULT_REPLY);
    fc = fault_connect(port, 30000);
    fault_declare_exchange(fc, DLX, "fanout");
    fault_declare_queue(fc, DLQ, false);
    fault_bind(fc, DLQ, DLX, "");
    fault_purge(fc, DLQ);
    fault_close(fc);
    snprintf(queue, sizeof queue, "%s.commands", service);
    it_host_t *h = fault_host_ready(queue, 1, opts, NULL);

    t->excluded = MARKED;
    fault_send_stream(t, service, "Crash", FAULT_REPLY, 0, MARKED);
    for (int64_t deadline = it_now_ms() + 90000;;) {
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
    printf("  the host crashed %d time(s) on the marked message\n", crashes);
    fc = fault_connect(port, 30000);
    dead = fault_get(fc, DLQ, reason, sizeof reason);
    assert_non_null(dead);
    printf("  in %s: id %lld, x-first-death-reason '%s'\n", DLQ,
           (long long)json_integer_value(json_object_get(dead, "id")), reason);
    assert_int_equal(json_integer_value(json_object_get(dead, "id")), t->base + MARKED);
    assert_string_equal(reason, reason_wanted);
    json_decref(dead);
    assert_null(fault_get(fc, DLQ, reason, sizeof reason));
    fault_close(fc);

    assert_int_equal(fault_lost(t), 0);
    assert_int_equal(t->copies[MARKED], 0);
    fault_tally_free(t);
    *host = h;
    return crashes;
}

static void test_poison_message_ends_in_dlq_after_delivery_limit_and_all_others_are_handled(
    void **state)
{
    static const it_host_opts_t opts = {
        .plugins = "testkit",
        .sections = "[testkit]\nservice = crashkit\nworkers = 1\nprefetch = 1\n"
                    "queue_type = quorum\ndelivery_limit = " STR(
                        DELIVERY_LIMIT) "\n"
                                        "dead_letter_exchange = " DLX "\n"};
    it_host_t *h;
    (void)state;
    int crashes = poison_run("crashing_handler", "crashkit", &opts, "delivery_limit", &h);
    /* The crash loop ended by itself, after at most the limit's worth. */
    assert_true(crashes >= 1 && crashes <= DELIVERY_LIMIT + 1);
    assert_true(it_host_alive(h));
    assert_int_equal(it_host_stop(h, 30000), 0);
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
    it_host_t *h;
    char *line;
    (void)state;
    int crashes = poison_run("crashing_handler_classic", "crashclassic", &opts, "rejected", &h);
    /* Exactly crash_limit crashes, each seen by the journal, and the start
     * after the last one gave up on the message. */
    assert_int_equal(crashes, CRASH_LIMIT);
    assert_int_equal(it_log_count(h, "the last process died while a handler ran"), CRASH_LIMIT);
    line = it_log_line(h, "Giving up on crashclassic.Crash", 1);
    assert_non_null(line);
    printf("  %s\n", line);
    assert_non_null(strstr(line, "EMERGENCY"));
    assert_non_null(strstr(line, "crashed the host " STR(CRASH_LIMIT) " time(s)"));
    assert_non_null(strstr(line, "message "));
    free(line);
    assert_int_equal(it_log_count(h, "Giving up on crashclassic.Crash"), 1);
    /* The loop stopped: the host keeps running. */
    it_sleep_ms(1000);
    assert_true(it_host_alive(h));
    assert_int_equal(it_host_stop(h, 30000), 0);
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
