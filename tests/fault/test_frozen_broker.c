/* test_frozen_broker.c -- fault 4: the broker's VM is frozen (SIGSTOP) for
 * longer than twice the heartbeat in the middle of a stream, then thawed
 * (SIGCONT). The socket stays open and the kernel still accepts bytes, so
 * only heartbeats can tell: the host must notice within about twice the
 * heartbeat, never block in a write, reconnect once the broker answers,
 * lose nothing, and still stop cleanly on SIGTERM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "fault.h"

enum { COMMANDS = 3000, ECHO_MS = 2, HEARTBEAT = 2, FREEZE_MS = 4 * HEARTBEAT * 1000 };

/* Freeze the broker for FREEZE_MS; the host must notice within about twice
 * the heartbeat, and reconnect after the thaw. */
static void freeze_until_noticed(it_host_t *h, int port)
{
    int64_t t0 = it_now_ms(), noticed;
    pid_t freezer = fault_freeze(port, FREEZE_MS);
    char *line;

    if (!it_wait_log(h, "connection lost", 1, FREEZE_MS)) {
        fault_freeze_wait(freezer);
        IT_FAIL("the host did not notice a broker frozen for %d ms (heartbeat %d s)", FREEZE_MS,
                HEARTBEAT);
    }
    noticed = it_now_ms() - t0;
    fault_freeze_wait(freezer);
    line = it_log_line(h, "connection lost", 1);
    printf("the host noticed after %lld ms (heartbeat %d s): %s\n", (long long)noticed, HEARTBEAT,
           line ? line : "");
    free(line);
    if (noticed > 2 * HEARTBEAT * 1000 + 2000)
        IT_FAIL("the host took %lld ms to notice the frozen broker, more than twice the "
                "heartbeat (%d s) plus 2 s",
                (long long)noticed, HEARTBEAT);
    if (!it_wait_log(h, "reconnected to", 1, 60000))
        IT_FAIL("the host did not reconnect within 60 s of the thaw");
}

static void test_frozen_broker_is_noticed_within_twice_the_heartbeat_and_nothing_is_lost(
    void **state)
{
    static const it_host_opts_t opts = {.plugins = "testkit",
                                        .sections = "[testkit]\nworkers = 2\nprefetch = 16\n"};
    const fault_host_opts_t fopts = {.heartbeat = HEARTBEAT};
    int port = fault_port(0);
    fault_tally_t *t = fault_tally_new("frozen_broker", COMMANDS);
    it_host_t *h;
    long done, queued;

    fault_observe(port, FAULT_OBSERVE, false, "commands", FAULT_REPLY);
    h = fault_host_ready("testkit.commands", 1, &opts, &fopts);

    fault_send_stream(t, "testkit", "Echo", FAULT_REPLY, ECHO_MS, -1);
    done = fault_wait_depth(port, FAULT_OBSERVE, COMMANDS / 5, 60000);
    queued = fault_depth(port, "testkit.commands");
    printf("freezing the broker for %d ms after %ld results, %ld commands still queued\n",
           FREEZE_MS, done, queued);
    if (queued <= 0) IT_FAIL("the freeze came after the stream ended: the test proves nothing");

    freeze_until_noticed(h, port);

    fault_collect(t, port, 1500, 120000);
    assert_int_equal(fault_lost(t), 0);
    /* No thread hangs: the host still stops on SIGTERM, cleanly. */
    assert_int_equal(it_host_stop(h, 30000), 0);
    fault_tally_free(t);
    it_pass();
}

/* The same while the host publishes more than the socket and the frozen
 * broker's receive buffer can take (rabbitmq-c 0.11 may block without limit
 * in such a write, upstream #780): every handler sleeps, the broker freezes,
 * and then they all publish big results at once. */
enum { BIG = 64, BIG_PAD = 512 * 1024, BIG_MS = 1500 };

static void
test_frozen_broker_during_a_publish_that_fills_the_socket_is_noticed_and_nothing_is_lost(
    void **state)
{
    static const it_host_opts_t opts = {.plugins = "testkit",
                                        .sections = "[testkit]\nworkers = 64\nprefetch = 64\n"};
    const fault_host_opts_t fopts = {.heartbeat = HEARTBEAT};
    int port = fault_port(0);
    fault_tally_t *t = fault_tally_new("frozen_broker_full_socket", BIG);
    it_host_t *h;
    int64_t t0;

    fault_observe(port, FAULT_OBSERVE, false, "commands", FAULT_REPLY);
    h = fault_host_ready("testkit.commands", 1, &opts, &fopts);

    t->pad = BIG_PAD;
    t0 = it_now_ms();
    fault_send_stream(t, "testkit", "Echo", FAULT_REPLY, BIG_MS, -1);
    /* Every command is with the host (its handlers sleep) before the freeze. */
    while (fault_depth(port, "testkit.commands") != 0) {
        if (it_now_ms() - t0 > BIG_MS / 2)
            IT_FAIL("the host did not take the %d commands within %d ms", BIG, BIG_MS / 2);
        it_sleep_ms(20);
    }
    if (fault_depth(port, FAULT_OBSERVE) != 0)
        IT_FAIL("results came before the freeze: the test proves nothing");
    printf("freezing the broker for %d ms; %d results of %d KiB are due within %d ms\n", FREEZE_MS,
           BIG, BIG_PAD / 1024, BIG_MS);
    freeze_until_noticed(h, port);

    /* Redelivered commands sleep BIG_MS again before their second result:
     * wait longer than that for duplicates. */
    fault_collect(t, port, BIG_MS + 2000, 120000);
    assert_int_equal(fault_lost(t), 0);
    assert_int_equal(it_host_stop(h, 30000), 0);
    fault_tally_free(t);
    it_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_frozen_broker_is_noticed_within_twice_the_heartbeat_and_nothing_is_lost),
        IT_TEST(
            test_frozen_broker_during_a_publish_that_fills_the_socket_is_noticed_and_nothing_is_lost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
