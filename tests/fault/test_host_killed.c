/* test_host_killed.c -- fault 3: two hosts serve the same service and one
 * gets kill -9 in the middle of a stream of 5,000 events. The broker hands
 * the dead host's unacked messages to the other one: nothing is lost, and
 * the only duplicates are messages of the killed host's unacked window
 * (its prefetch), handled but not yet acked when it died. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "fault.h"

enum { EVENTS = 5000, TICK_MS = 1 };
/* A macro: the config text below spells it. */
#define PREFETCH 16
#define STR_(x) #x
#define STR(x) STR_(x)

static void test_kill_9_of_one_host_loses_nothing_and_duplicates_at_most_its_prefetch(void **state)
{
    static const it_host_opts_t opts = {
        .plugins = "testkit", .sections = "[testkit]\nworkers = 2\nprefetch = " STR(PREFETCH) "\n"};
    int port = fault_port(0);
    fault_tally_t *t = fault_tally_new("host_killed", EVENTS);
    it_host_t *a, *b;
    long done, queued, killed_pid;

    fault_observe(port, FAULT_OBSERVE, false, "events", "Tocked");
    a = fault_host_ready("testkit.events", 1, &opts, NULL);
    b = fault_host_ready("testkit.events", 2, &opts, NULL);

    fault_send_stream(t, "testkit", NULL, NULL, TICK_MS, -1);
    done = fault_wait_depth(port, FAULT_OBSERVE, EVENTS / 4, 60000);
    queued = fault_depth(port, "testkit.events");
    killed_pid = (long)a->pid;
    if (kill(a->pid, SIGKILL) != 0) IT_FAIL("kill -9 %ld failed", killed_pid);
    printf("killed host %ld after %ld outputs, %ld events still queued\n", killed_pid, done,
           queued);
    if (queued <= 0) IT_FAIL("the kill came after the stream ended: the test proves nothing");

    fault_collect(t, port, 1500, 120000);
    assert_int_equal(fault_lost(t), 0);
    if (fault_duplicated(t) > PREFETCH)
        IT_FAIL("%zu duplicates, more than the killed host's unacked window (prefetch %d)",
                fault_duplicated(t), PREFETCH);
    assert_false(it_host_alive(a));
    assert_int_equal(a->status, 128 + SIGKILL);
    assert_int_equal(it_host_stop(b, 30000), 0);
    fault_tally_free(t);
    it_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_kill_9_of_one_host_loses_nothing_and_duplicates_at_most_its_prefetch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
