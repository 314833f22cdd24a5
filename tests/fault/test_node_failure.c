/* test_node_failure.c -- fault 7: a three-node cluster on loopback
 * (fixture.sh cluster-start), quorum queues, and a host given all three
 * URLs. In the middle of a stream the node the host is connected to stops.
 * The host fails over to another URL, re-declares and re-consumes there,
 * and nothing is lost: the quorum queues keep a majority on the other two
 * nodes. The test itself talks to the last node, which stays up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"

enum { COMMANDS = 3000, ECHO_MS = 2 };

static void test_stopping_the_hosts_node_fails_over_to_another_url_and_loses_nothing(void **state)
{
    static const it_host_opts_t opts = {
        .plugins = "testkit",
        .sections = "[testkit]\nservice = nodekit\nworkers = 2\nprefetch = 16\n"
                    "queue_type = quorum\n"};
    const int ports[3] = {fault_port(0), fault_port(1), fault_port(2)};
    const fault_host_opts_t fopts = {.ports = ports, .n_ports = 3};
    int mine = ports[2];
    fault_tally_t *t = fault_tally_new("node_failure", COMMANDS);
    char first[64], lost_url[64];
    it_host_t *h;
    char *line;
    long done, queued;

    fault_observe(mine, FAULT_OBSERVE, true, "commands", FAULT_REPLY);
    h = fault_host_ready("nodekit.commands", 1, &opts, &fopts);
    /* The host tries its URLs in order: it is on the first node. */
    snprintf(first, sizeof first, "127.0.0.1:%d/", ports[0]);
    line = it_log_line(h, "connected to", 1);
    if (!line || !strstr(line, first))
        IT_FAIL("the host should be connected to the first node (%s): %s", first,
                line ? line : "(no 'connected to' line)");
    free(line);

    fault_send_stream(t, "nodekit", "Echo", FAULT_REPLY, ECHO_MS, -1);
    done = fault_wait_depth(mine, FAULT_OBSERVE, COMMANDS / 5, 60000);
    queued = fault_depth(mine, "nodekit.commands");
    printf("stopping node %d (the host's) after %ld results, %ld commands still queued\n", ports[0],
           done, queued);
    if (queued <= 0) IT_FAIL("the node stopped after the stream ended: the test proves nothing");
    fault_broker_ok(ports[0], 120000, "stop", NULL);
    if (!it_wait_log(h, "reconnected to", 1, 60000))
        IT_FAIL("the host did not fail over within 60 s");
    line = it_log_line(h, "reconnected to", 1);
    printf("  %s\n", line);
    snprintf(lost_url, sizeof lost_url, "127.0.0.1:%d/", ports[0]);
    if (strstr(line, lost_url))
        IT_FAIL("the host 'reconnected' to the node that was stopped: %s", line);
    free(line);

    fault_collect(t, mine, 1500, 120000);
    assert_int_equal(fault_lost(t), 0);
    assert_true(it_host_alive(h));
    assert_int_equal(it_host_stop(h, 30000), 0);
    fault_tally_free(t);
    it_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_stopping_the_hosts_node_fails_over_to_another_url_and_loses_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
