/* test_reload.c -- fault 9: hot reload mid-stream. 10,000 Echo commands
 * stream through one host while the test swaps testkit.so in plugins_dir
 * (an atomic rename) between two builds that answer with their version,
 * and sends SIGHUP, five times. Every command gets exactly one result, no
 * delivery comes redelivered, each switch takes effect within the drain
 * time, and the host (its PID) stays the same process throughout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"

enum { COMMANDS = 10000, ECHO_MS = 1, RELOADS = 5, WORKERS = 4, DRAIN_MS = 10000 };

/* What the outputs said, in queue order. */
typedef struct seen {
    size_t redelivered, runs_long, in_short;
    long pid;
    bool other_pid;
} seen_t;

static char **versions; /* one per output, in queue order */
static size_t n_versions;

static void each(void *ud, int64_t i, const json_t *v)
{
    seen_t *s = ud;
    (void)i;
    const char *ver = json_string_value(json_object_get(v, "version"));
    if (json_is_true(json_object_get(v, "redelivered"))) s->redelivered++;
    if (json_integer_value(json_object_get(v, "pid")) != s->pid) s->other_pid = true;
    versions = realloc(versions, (n_versions + 1) * sizeof *versions);
    if (!versions) IT_FAIL("out of memory");
    versions[n_versions++] = it_strdup(ver ? ver : "?");
}

/* The outputs as runs of one version: a switch shows as a new run; an old
 * handler that was still running at the switch may finish just after the
 * first results of the new version, which shows as a run of at most
 * `workers` outputs. */
static void runs(seen_t *s)
{
    for (size_t i = 0; i < n_versions;) {
        size_t j = i;
        while (j < n_versions && !strcmp(versions[j], versions[i])) j++;
        if (j - i > WORKERS) s->runs_long++;
        else s->in_short += j - i;
        i = j;
    }
}

static char *sibling(const char *path, const char *name)
{
    const char *slash = strrchr(path, '/');
    return it_asprintf("%.*s/%s", (int)(slash - path), path, name);
}

static void test_five_reloads_mid_stream_lose_duplicate_and_redeliver_nothing(void **state)
{
    static const it_host_opts_t opts = {.plugins = "testkit",
                                        .host_keys = "shutdown_timeout = 10000\nlog_level = info\n",
                                        .sections = "[testkit]\nworkers = 4\nprefetch = 100\n"};
    int port = fault_port(0);
    fault_tally_t *t = fault_tally_new("reload", COMMANDS);
    char *v1 = it_strdup(it_env("BH_TESTKIT")), *v2 = sibling(v1, "testkit_v2.so");
    seen_t s = {0};
    int64_t switch_ms[RELOADS];
    it_host_t *h;

    fault_observe(port, FAULT_OBSERVE, false, "commands", FAULT_REPLY);
    h = fault_host_ready("testkit.commands", 1, &opts, NULL);
    s.pid = (long)h->pid;
    t->each = each;
    t->each_ud = &s;

    fault_send_stream(t, "testkit", "Echo", FAULT_REPLY, ECHO_MS, -1);
    for (int r = 0; r < RELOADS; r++) {
        long at = fault_wait_depth(port, FAULT_OBSERVE, (long)(r + 1) * COMMANDS / 7, 60000);
        it_plugin_replace(h, "testkit.so", r % 2 ? v1 : v2, NULL);
        int64_t t0 = it_now_ms();
        assert_int_equal(kill(h->pid, SIGHUP), 0);
        if (!it_wait_log(h, "took over from", (size_t)r + 1, DRAIN_MS)) {
            it_host_dump(h);
            IT_FAIL("reload %d: no switch within the drain time (%d ms)", r + 1, DRAIN_MS);
        }
        switch_ms[r] = it_now_ms() - t0;
        if (!it_wait_log(h, "retired and unloaded", (size_t)r + 1, DRAIN_MS)) {
            it_host_dump(h);
            IT_FAIL("reload %d: the old version was not unloaded", r + 1);
        }
        char *line = it_log_line(h, "took over from", (size_t)r + 1);
        const char *held = line ? strstr(line, "; ") : NULL;
        printf("reload %d (to %s) after %ld results: switched within %lld ms of SIGHUP%s\n", r + 1,
               r % 2 ? "1.0.0" : "2.0.0", at, (long long)switch_ms[r], held ? held : "");
        free(line);
        if (at >= COMMANDS) IT_FAIL("the stream ended before reload %d: it proves nothing", r + 1);
    }
    assert_true(it_host_alive(h));
    fault_collect(t, port, 1500, 180000);
    runs(&s);
    printf("FAULT reload: reloads=%d redelivered=%zu version_runs=%zu results_at_a_switch=%zu "
           "pid_unchanged=%s\n",
           RELOADS, s.redelivered, s.runs_long, s.in_short, s.other_pid ? "no" : "yes");
    fflush(stdout);
    assert_int_equal(fault_lost(t), 0);
    assert_int_equal(fault_duplicated(t), 0);
    assert_int_equal(s.redelivered, 0);
    assert_false(s.other_pid);
    /* v1, then v2, v1, v2, v1, v2: one run per generation. */
    assert_int_equal(s.runs_long, RELOADS + 1);
    assert_in_range(s.in_short, 0, (size_t)RELOADS * WORKERS);
    assert_string_equal(versions[n_versions - 1], "2.0.0");
    assert_int_equal(it_log_count(h, "reload failed"), 0);
    assert_int_equal(it_log_count(h, "Shutting down"), 0);
    assert_int_equal(it_host_stop(h, 30000), 0);
    for (size_t i = 0; i < n_versions; i++) free(versions[i]);
    free(versions);
    free(v1);
    free(v2);
    fault_tally_free(t);
    it_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_five_reloads_mid_stream_lose_duplicate_and_redeliver_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
