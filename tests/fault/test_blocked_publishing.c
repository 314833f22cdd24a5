/* test_blocked_publishing.c -- fault 5: a memory alarm in the middle of a
 * stream (rabbitmqctl set_vm_memory_high_watermark far below what the node
 * uses), so the broker blocks every publishing connection, then cleared.
 * The host says it holds its publishes, resumes when unblocked, and loses
 * nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "fault.h"

enum { COMMANDS = 3000, ECHO_MS = 2, BLOCKED_MS = 3000 };
#define WATERMARK_LOW "0.000001"
#define WATERMARK_NORMAL "0.4" /* RabbitMQ's default, as fixture.sh sets it */

static void test_memory_alarm_mid_stream_pauses_publishing_and_loses_nothing(void **state)
{
    static const it_host_opts_t opts = {.plugins = "testkit",
                                        .sections = "[testkit]\nworkers = 2\nprefetch = 16\n"};
    int port = fault_port(0);
    fault_tally_t *t = fault_tally_new("blocked_publishing", COMMANDS);
    it_host_t *h;
    long done, queued, at_block, after_wait;

    fault_observe(port, FAULT_OBSERVE, false, "commands", FAULT_REPLY);
    h = fault_host_ready("testkit.commands", 1, &opts, NULL);

    fault_send_stream(t, "testkit", "Echo", FAULT_REPLY, ECHO_MS, -1);
    done = fault_wait_depth(port, FAULT_OBSERVE, COMMANDS / 5, 60000);
    queued = fault_depth(port, "testkit.commands");
    printf("memory alarm after %ld results, %ld commands still queued\n", done, queued);
    if (queued <= 0) IT_FAIL("the alarm came after the stream ended: the test proves nothing");
    fault_broker_ok(port, 30000, "ctl", "-q", "set_vm_memory_high_watermark", WATERMARK_LOW, NULL);
    if (!it_wait_log(h, "broker blocked publishing", 1, 30000))
        IT_FAIL("the host did not report that the broker blocked publishing");
    /* Blocked: the results stop coming (a few may have been on the way). */
    at_block = fault_depth(port, FAULT_OBSERVE);
    it_sleep_ms(BLOCKED_MS);
    after_wait = fault_depth(port, FAULT_OBSERVE);
    printf("while blocked: %ld results, %ld after %d ms more\n", at_block, after_wait, BLOCKED_MS);
    assert_true(it_host_alive(h));
    fault_broker_ok(port, 30000, "ctl", "-q", "set_vm_memory_high_watermark", WATERMARK_NORMAL,
                    NULL);
    if (!it_wait_log(h, "broker unblocked publishing", 1, 30000))
        IT_FAIL("the host did not resume after the alarm cleared");

    fault_collect(t, port, 1500, 120000);
    {
        char *b = it_log_line(h, "broker blocked publishing", 1);
        char *u = it_log_line(h, "broker unblocked publishing", 1);
        printf("  %s\n  %s\n", b ? b : "", u ? u : "");
        free(b);
        free(u);
    }
    assert_int_equal(fault_lost(t), 0);
    /* Held, not dropped: the stream made (almost) no progress while blocked. */
    if (after_wait - at_block > 100)
        IT_FAIL("%ld results arrived while the broker blocked publishing", after_wait - at_block);
    assert_int_equal(it_host_stop(h, 30000), 0);
    fault_tally_free(t);
    it_pass();
}

/* Whatever happened, clear the alarm for the next test. */
static int teardown(void **state)
{
    fault_broker(fault_port(0), 30000, NULL, "ctl", "-q", "set_vm_memory_high_watermark",
                 WATERMARK_NORMAL, NULL);
    return it_teardown(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_memory_alarm_mid_stream_pauses_publishing_and_loses_nothing, it_setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
