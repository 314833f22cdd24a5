/* test_broker_restart.c -- fault 1: the broker node restarts (scripts/broker.sh
 * stop, then start) in the middle of a stream of 5,000 commands. Durable
 * queues and persistent messages survive it; the host reconnects by itself,
 * and every command gets its result from the same, never restarted, host. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "fault.h"

enum { COMMANDS = 5000, ECHO_MS = 2 };

static void test_broker_restart_mid_stream_every_command_answered_by_the_same_host(void **state)
{
    static const it_host_opts_t opts = {.plugins = "testkit",
                                        .sections = "[testkit]\nworkers = 2\nprefetch = 16\n"};
    int port = fault_port(0);
    fault_tally_t *t = fault_tally_new("broker_restart", COMMANDS);
    it_host_t *h;
    long done, queued;
    pid_t pid;

    fault_observe(port, FAULT_OBSERVE, false, "commands", FAULT_REPLY);
    h = fault_host_ready("testkit.commands", 1, &opts, NULL);
    pid = h->pid;

    fault_send_stream(t, "testkit", "Echo", FAULT_REPLY, ECHO_MS, -1);
    done = fault_wait_depth(port, FAULT_OBSERVE, COMMANDS / 5, 60000);
    queued = fault_depth(port, "testkit.commands");
    printf("stopping the broker after %ld results, %ld commands still queued\n", done, queued);
    if (done < COMMANDS / 5 || queued <= 0)
        IT_FAIL("the fault must strike mid-stream: %ld results, %ld queued", done, queued);

    fault_broker_ok(port, 120000, "stop", NULL);
    if (!it_wait_log(h, "connection lost", 1, 10000))
        IT_FAIL("the host did not notice the broker stopping");
    fault_broker_ok(port, 120000, "start", NULL);
    if (!it_wait_log(h, "reconnected to", 1, 60000))
        IT_FAIL("the host did not reconnect within 60 s of the broker's restart");

    fault_collect(t, port, 1500, 120000);
    {
        char *line = it_log_line(h, "reconnected to", 1);
        printf("  %s\n", line ? line : "");
        free(line);
    }
    assert_int_equal(fault_lost(t), 0);
    /* The host needed no restart: one process, started once, still there. */
    assert_true(it_host_alive(h));
    assert_int_equal(h->pid, pid);
    assert_int_equal(it_log_count(h, "starting service"), 1);
    assert_int_equal(it_host_stop(h, 30000), 0);
    fault_tally_free(t);
    it_pass();
}

/* Whatever happened, leave the node running for the next test. */
static int teardown(void **state)
{
    fault_broker(fault_port(0), 120000, NULL, "start", NULL);
    return it_teardown(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_broker_restart_mid_stream_every_command_answered_by_the_same_host, it_setup,
            teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
