/* test_sigterm.c -- a graceful stop loses and duplicates nothing: SIGTERM in
 * the middle of a stream of commands, a clean exit, a restart, and in the
 * end every command has exactly one result. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "harness.h"

enum { COMMANDS = 1000, SLEEP_MS = 5 };
#define RESULT_KEY "itest.SleepResult"

typedef struct tally {
    char prefix[IT_ID_MAX];
    unsigned seen[COMMANDS];
    size_t distinct, dups;
} tally_t;

/* Take one result: its correlation id names the command. */
static void count_result(tally_t *t, it_msg_t *m)
{
    size_t plen = strlen(t->prefix);
    json_t *p, *want;
    char *end;
    long i;

    if (!m->correlation_id || strncmp(m->correlation_id, t->prefix, plen) != 0 ||
        m->correlation_id[plen] != '-')
        IT_FAIL("a result with a foreign correlation id: %s",
                m->correlation_id ? m->correlation_id : "(none)");
    i = strtol(m->correlation_id + plen + 1, &end, 10);
    if (*end || i < 0 || i >= COMMANDS)
        IT_FAIL("a result with a bad correlation id: %s", m->correlation_id);
    assert_non_null(m->status);
    assert_string_equal(m->status, "success");
    p = it_payload(m);
    want = json_pack("{s:i}", "slept", SLEEP_MS);
    assert_true(json_equal(p, want));
    json_decref(p);
    json_decref(want);
    if (t->seen[i]++) t->dups++;
    else t->distinct++;
    it_msg_free(m);
}

static void test_sigterm_mid_stream_exits_zero_and_restart_answers_each_command_once(void **state)
{
    static const it_host_opts_t opts = {.plugins = "testkit",
                                        .sections = "[testkit]\nworkers = 4\n"};
    char conv[IT_ID_MAX], corr[IT_ID_MAX + 16];
    it_conn_t *c = it_connect();
    it_listener_t *l = it_listen("commands", (const char *[]){RESULT_KEY, NULL});
    tally_t *t = calloc(1, sizeof *t);
    json_t *v = json_pack("{s:i}", "ms", SLEEP_MS);
    size_t len, before_stop;
    void *body = it_cbor_encode(v, &len);
    it_host_t *h;
    uint32_t left = 0;
    int64_t deadline;
    it_msg_t *m;
    int rc;

    assert_non_null(t);
    json_decref(v);
    h = it_host_ready(c, "testkit.commands", &opts);

    it_unique(t->prefix, "sleep");
    it_unique(conv, "conv");
    for (int i = 0; i < COMMANDS; i++) {
        it_pub_t cmd;
        snprintf(corr, sizeof corr, "%s-%d", t->prefix, i);
        cmd = it_command("testkit.Sleep", RESULT_KEY, corr, conv, "application/cbor", body, len);
        it_publish_async(c, &cmd);
    }
    free(body);
    it_confirm_all(c, 30000);

    /* Stop once the stream is well under way. */
    deadline = it_now_ms() + 20000;
    while (t->distinct < 100 && (m = it_get(l, (int)(deadline - it_now_ms())))) count_result(t, m);
    if (t->distinct < 100) IT_FAIL("only %zu results within 20 s of the commands", t->distinct);
    rc = it_host_stop(h, 20000);
    before_stop = t->distinct;
    assert_int_equal(rc, 0);
    /* The stop came mid-stream: commands were left for the next instance. */
    assert_true(it_queue_info(c, "testkit.commands", &left, NULL));
    print_message("SIGTERM after %zu results; %u commands left in the queue\n", before_stop, left);
    if (left == 0)
        IT_FAIL("no command left in testkit.commands after the stop: the test proves nothing");

    h = it_host_start(&opts);
    deadline = it_now_ms() + 30000;
    while ((m = it_get(l, (int)(deadline - it_now_ms())))) {
        count_result(t, m);
        if (t->distinct == COMMANDS && deadline > it_now_ms() + 500)
            deadline = it_now_ms() + 500; /* time for a duplicate to show */
    }
    print_message("%zu distinct results, %zu duplicates\n", t->distinct, t->dups);
    if (t->distinct != COMMANDS) {
        for (int i = 0; i < COMMANDS; i++)
            if (!t->seen[i]) {
                print_error("first command without a result: %s-%d\n", t->prefix, i);
                break;
            }
        IT_FAIL("%zu of %d commands got a result", t->distinct, COMMANDS);
    }
    assert_int_equal(t->dups, 0);
    assert_int_equal(it_host_stop(h, 20000), 0);
    free(t);
    it_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_sigterm_mid_stream_exits_zero_and_restart_answers_each_command_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
