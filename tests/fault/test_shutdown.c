/* test_shutdown.c -- fault 8: SIGTERM in the middle of a stream of commands
 * whose handler takes 200 ms. The host cancels its consumers, gives back
 * what it prefetched, lets the running handlers finish, waits for their
 * confirms and acks, and exits 0 well within shutdown_timeout. A restarted
 * host then handles the rest: no command lost, none handled twice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "fault.h"

enum { COMMANDS = 200, ECHO_MS = 200 };
/* A macro: the config text below spells it. */
#define SHUTDOWN_TIMEOUT_MS 5000
#define STR_(x) #x
#define STR(x) STR_(x)

static void test_sigterm_mid_stream_stops_within_deadline_and_handles_nothing_twice(void **state)
{
    static const it_host_opts_t opts = {.plugins = "testkit",
                                        .host_keys =
                                            "shutdown_timeout = " STR(SHUTDOWN_TIMEOUT_MS) "\n",
                                        .sections = "[testkit]\nworkers = 4\nprefetch = 8\n"};
    int port = fault_port(0);
    fault_tally_t *t = fault_tally_new("shutdown", COMMANDS);
    it_host_t *h;
    long done, queued;
    int64_t t0, took;
    int rc;

    fault_observe(port, FAULT_OBSERVE, false, "commands", FAULT_REPLY);
    h = fault_host_ready("testkit.commands", 1, &opts, NULL);

    fault_send_stream(t, "testkit", "Echo", FAULT_REPLY, ECHO_MS, -1);
    done = fault_wait_depth(port, FAULT_OBSERVE, COMMANDS / 10, 60000);
    t0 = it_now_ms();
    rc = it_host_stop(h, 4 * SHUTDOWN_TIMEOUT_MS);
    took = it_now_ms() - t0;
    queued = fault_depth(port, "testkit.commands");
    printf("SIGTERM after %ld results: exit %d after %lld ms (shutdown_timeout %d ms); %ld "
           "commands left in the queue\n",
           done, rc, (long long)took, SHUTDOWN_TIMEOUT_MS, queued);
    assert_int_equal(rc, 0);
    if (took > SHUTDOWN_TIMEOUT_MS)
        IT_FAIL("the host took %lld ms to stop, more than shutdown_timeout (%d ms)",
                (long long)took, SHUTDOWN_TIMEOUT_MS);
    assert_int_equal(it_log_count(h, "shutdown deadline reached"), 0);
    if (queued <= 0) IT_FAIL("no command left after the stop: the test proves nothing");
    /* Nothing stays unacked with the stopped host: all went back. */
    {
        it_conn_t *c = it_connect();
        uint32_t consumers = 1;

        assert_true(it_queue_info(c, "testkit.commands", NULL, &consumers));
        assert_int_equal(consumers, 0);
        it_close(c);
    }

    fault_host_respawn(h);
    fault_collect(t, port, 1500, 120000);
    assert_int_equal(fault_lost(t), 0);
    assert_int_equal(fault_duplicated(t), 0);
    assert_int_equal(it_host_stop(h, 4 * SHUTDOWN_TIMEOUT_MS), 0);
    fault_tally_free(t);
    it_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_sigterm_mid_stream_stops_within_deadline_and_handles_nothing_twice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
