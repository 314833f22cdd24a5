/* test_forced_close.c -- fault 2: the broker force-closes the host's
 * connection (rabbitmqctl close_connection) three times during a stream of
 * commands. Each time the host reconnects by itself, re-consumes and
 * republishes what was unconfirmed; no command goes without a result. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "fault.h"

enum { COMMANDS = 5000, ECHO_MS = 2, CLOSES = 3 };

static void test_three_forced_closes_mid_stream_lose_no_command(void **state)
{
    static const it_host_opts_t opts = {.plugins = "testkit",
                                        .sections = "[testkit]\nworkers = 2\nprefetch = 16\n"};
    int port = fault_port(0);
    fault_tally_t *t = fault_tally_new("forced_close", COMMANDS);
    it_host_t *h;

    fault_observe(port, FAULT_OBSERVE, false, "commands", FAULT_REPLY);
    h = fault_host_ready("testkit.commands", 1, &opts, NULL);

    fault_send_stream(t, "testkit", "Echo", FAULT_REPLY, ECHO_MS, -1);
    for (int k = 1; k <= CLOSES; k++) {
        char reconnect[32];
        long done = fault_wait_depth(port, FAULT_OBSERVE, (long)COMMANDS * k / 5, 60000);
        long queued = fault_depth(port, "testkit.commands");
        int closed;

        printf("close #%d after %ld results, %ld commands still queued\n", k, done, queued);
        if (queued <= 0)
            IT_FAIL("close #%d came after the stream ended: the test proves nothing", k);
        closed = fault_close_host_connections(port, "fault test: forced close");
        if (closed != 1) IT_FAIL("close #%d closed %d host connections, expected 1", k, closed);
        snprintf(reconnect, sizeof reconnect, "(reconnect #%d)", k);
        if (!it_wait_log(h, reconnect, 1, 30000))
            IT_FAIL("the host did not reconnect after forced close #%d", k);
    }

    fault_collect(t, port, 1500, 120000);
    assert_int_equal(fault_lost(t), 0);
    assert_int_equal(it_log_count(h, "CONNECTION_FORCED"), CLOSES);
    assert_true(it_host_alive(h));
    assert_int_equal(it_host_stop(h, 30000), 0);
    fault_tally_free(t);
    it_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_three_forced_closes_mid_stream_lose_no_command),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
