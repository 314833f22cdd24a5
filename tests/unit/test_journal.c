/* test_journal.c -- the crash journal and the guard built on it.
 *
 * journal.c and guard.c real, in a temporary state folder; the logger is
 * fake_log.c. A crash is simulated as the journal sees one: a handler
 * begins and never ends, and the journal is closed (the mapping goes, as
 * at a process's death) and opened again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "config.h"
#include "fake_log.h"
#include "guard.h"
#include "job_util.h"
#include "journal.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/bh-journal-XXXXXX");
    assert_non_null(mkdtemp(dir));
    fl_reset();
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static bh__journal_t *open_ok(const char *d, const char *name)
{
    bh__journal_t *j = NULL;
    char err[256] = "";
    int rc = bh__journal_open(&j, d, name, err, sizeof err);
    if (rc) fprintf(stderr, "open: %s\n", err);
    assert_int_equal(rc, BH_OK);
    return j;
}

static const ju_msg_t poison = {
    .routing_key = "svc.Crash", .body = "{\"crash\":true}", .conversation_id = "conv-1"};
static const ju_msg_t other = {.routing_key = "svc.Crash", .body = "{\"crash\":false}"};

static bh__job_t *job_of(const ju_msg_t *m) { return ju_job(m, BH_KIND_COMMAND, NULL, 1); }

/* A "process" that starts handling m and dies before the handler returns. */
static void crash_on(const ju_msg_t *m)
{
    bh__journal_t *j = open_ok(dir, "svc");
    bh__job_t *job = job_of(m);
    bh__journal_begin(j, bh__journal_ident(job->d, 0), job);
    bh__journal_close(j);
    bh__job_free(job);
}

static void a_handler_left_running_counts_one_crash_at_the_next_open(void **state)
{
    (void)state;
    crash_on(&poison);
    bh__journal_t *j = open_ok(dir, "svc");
    size_t n;
    const bh__journal_entry_t *const *r = bh__journal_recovered(j, &n);
    bh__job_t *job = job_of(&poison);
    assert_int_equal(n, 1);
    assert_int_equal(r[0]->ident, bh__journal_ident(job->d, 0));
    assert_int_equal(r[0]->crashes, 1);
    assert_string_equal(r[0]->key, "svc.Crash");
    assert_int_equal(bh__journal_counted(j), 1);
    bh__journal_close(j);
    bh__job_free(job);
}

static void a_finished_handler_counts_nothing(void **state)
{
    (void)state;
    bh__journal_t *j = open_ok(dir, "svc");
    bh__job_t *job = job_of(&poison);
    bh__journal_begin(j, bh__journal_ident(job->d, 0), job);
    bh__journal_end(j);
    bh__journal_close(j);
    j = open_ok(dir, "svc");
    size_t n;
    bh__journal_recovered(j, &n);
    assert_int_equal(n, 0);
    assert_int_equal(bh__journal_counted(j), 0);
    bh__journal_close(j);
    bh__job_free(job);
}

static void crashes_add_up_across_restarts(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++) crash_on(&poison);
    bh__journal_t *j = open_ok(dir, "svc");
    bh__job_t *job = job_of(&poison);
    const bh__journal_entry_t *e = bh__journal_entry(j, bh__journal_ident(job->d, 0), false);
    assert_non_null(e);
    assert_int_equal(e->crashes, 3);
    assert_int_equal(e->timeouts, 0);
    bh__journal_close(j);
    bh__job_free(job);
}

static void abandoned_handlers_are_not_crashes(void **state)
{
    (void)state;
    bh__journal_t *j = open_ok(dir, "svc");
    bh__job_t *job = job_of(&poison);
    bh__journal_begin(j, bh__journal_ident(job->d, 0), job);
    bh__journal_abandon(j); /* the shutdown deadline passed with it running */
    bh__journal_close(j);
    j = open_ok(dir, "svc");
    assert_int_equal(bh__journal_counted(j), 0);
    bh__journal_close(j);
    bh__job_free(job);
}

/* Two handler threads: one marks its slot (as the fatal-signal handler
 * does), the other is an innocent bystander. */
typedef struct two {
    bh__journal_t *j;
    bh__job_t *job;
    bool mark;
    uv_sem_t began;
} two_t;

static void run_thread(void *arg)
{
    two_t *t = arg;
    bh__journal_begin(t->j, bh__journal_ident(t->job->d, 0), t->job);
    if (t->mark) bh__journal_mark_crash();
    uv_sem_post(&t->began);
}

static void only_the_slot_that_crashed_is_counted_when_one_is_marked(void **state)
{
    (void)state;
    bh__journal_t *j = open_ok(dir, "svc");
    two_t a = {.j = j, .job = job_of(&poison), .mark = true};
    two_t b = {.j = j, .job = job_of(&other), .mark = false};
    uv_thread_t ta, tb;
    uv_sem_init(&a.began, 0);
    uv_sem_init(&b.began, 0);
    assert_int_equal(uv_thread_create(&ta, run_thread, &a), 0);
    assert_int_equal(uv_thread_create(&tb, run_thread, &b), 0);
    uv_sem_wait(&a.began);
    uv_sem_wait(&b.began);
    uv_thread_join(&ta);
    uv_thread_join(&tb);
    bh__journal_close(j);
    j = open_ok(dir, "svc");
    assert_int_equal(bh__journal_counted(j), 1);
    assert_non_null(bh__journal_entry(j, bh__journal_ident(a.job->d, 0), false));
    assert_null(bh__journal_entry(j, bh__journal_ident(b.job->d, 0), false));
    bh__journal_close(j);
    bh__job_free(a.job);
    bh__job_free(b.job);
    uv_sem_destroy(&a.began);
    uv_sem_destroy(&b.began);
}

static void a_second_host_of_the_service_takes_another_file(void **state)
{
    (void)state;
    char want[128];
    bh__journal_t *a = open_ok(dir, "svc"), *b = open_ok(dir, "svc");
    snprintf(want, sizeof want, "%s/svc.journal", dir);
    assert_string_equal(bh__journal_path(a), want);
    snprintf(want, sizeof want, "%s/svc.1.journal", dir);
    assert_string_equal(bh__journal_path(b), want);
    bh__journal_close(b);
    bh__journal_close(a);
}

static void an_unusable_state_dir_is_an_error_naming_it(void **state)
{
    bh__journal_t *j = NULL;
    char err[256], path[128];
    (void)state;
    snprintf(path, sizeof path, "%s/file", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(path, sizeof path, "%s/file/sub", dir);
    assert_int_equal(bh__journal_open(&j, path, "svc", err, sizeof err), BH_EINVAL);
    assert_null(j);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "Not a directory"));
}

static void in_memory_counts_but_nothing_survives(void **state)
{
    (void)state;
    bh__journal_t *j = open_ok(NULL, "svc");
    assert_null(bh__journal_path(j));
    bh__journal_entry(j, 42, true)->timeouts = 1;
    assert_int_equal(bh__journal_counted(j), 1);
    bh__journal_close(j);
    j = open_ok("", "svc");
    assert_int_equal(bh__journal_counted(j), 0);
    bh__journal_close(j);
}

static void identity_is_stable_and_tells_messages_apart(void **state)
{
    (void)state;
    bh__job_t *a = job_of(&poison), *a2 = job_of(&poison), *b = job_of(&other);
    uint64_t ia = bh__journal_ident(a->d, 0);
    assert_int_equal(ia, bh__journal_ident(a2->d, 0));
    a2->d->redelivered = true; /* a redelivery is the same message */
    assert_int_equal(ia, bh__journal_ident(a2->d, 0));
    assert_int_not_equal(ia, bh__journal_ident(b->d, 0));
    assert_int_not_equal(ia, bh__journal_ident(a->d, 1)); /* a delayed retry is a new attempt */
    assert_int_not_equal(ia, 0);
    bh__job_free(a);
    bh__job_free(a2);
    bh__job_free(b);
}

static void a_full_table_evicts_the_least_counted(void **state)
{
    (void)state;
    bh__journal_t *j = open_ok(NULL, "svc");
    for (uint64_t i = 1; i <= BH__JOURNAL_ENTRIES; i++) bh__journal_entry(j, i, true)->crashes = 2;
    bh__journal_entry(j, 7, false)->crashes = 1;
    assert_int_equal(bh__journal_counted(j), BH__JOURNAL_ENTRIES);
    bh__journal_entry(j, 1000, true)->crashes = 1;
    assert_int_equal(bh__journal_counted(j), BH__JOURNAL_ENTRIES);
    assert_null(bh__journal_entry(j, 7, false));
    assert_non_null(bh__journal_entry(j, 1000, false));
    bh__journal_forget(j, 1000);
    assert_int_equal(bh__journal_counted(j), BH__JOURNAL_ENTRIES - 1);
    bh__journal_close(j);
}

/* -- the guard ------------------------------------------------------------- */

static void start_guard(bh__guard_t *g, const char *state_dir, int crash_limit)
{
    char err[256];
    bh__config_t cfg = {.state_dir = (char *)state_dir, .crash_limit = crash_limit};
    bh__svc_conf_t conf = {.service = "svc"};
    assert_int_equal(bh__guard_start(g, &cfg, &conf, fl_logger(), err, sizeof err), BH_OK);
}

static void a_message_that_crashed_crash_limit_times_is_refused_with_an_emergency(void **state)
{
    bh__guard_t g;
    (void)state;
    for (int i = 0; i < 2; i++) crash_on(&poison);
    start_guard(&g, dir, 3);
    assert_non_null(fl_find(BH_WARNING, "crash 2 of crash_limit 3"));
    bh__job_t *job = job_of(&poison), *ok = job_of(&other);
    assert_true(bh__guard_admit(&g, job)); /* 2 < 3: one more try */
    assert_true(bh__guard_admit(&g, ok));
    bh__guard_free(&g);
    bh__job_free(job);
    crash_on(&poison);
    fl_reset();
    start_guard(&g, dir, 3);
    job = job_of(&poison);
    assert_false(bh__guard_admit(&g, job));
    const fl_rec_t *r = fl_find(BH_EMERGENCY, "Giving up on svc.Crash");
    assert_non_null(r);
    assert_non_null(strstr(r->text, "crashed the host 3 time(s) (crash_limit 3)"));
    assert_non_null(strstr(r->text, "conversation 'conv-1'"));
    char ident[32];
    snprintf(ident, sizeof ident, "message %016llx", (unsigned long long)job->ident);
    assert_non_null(strstr(r->text, ident));
    /* Dead-lettered once: the count is gone with it. */
    assert_int_equal(bh__journal_counted(g.journal), 0);
    bh__guard_free(&g);
    bh__job_free(job);
    bh__job_free(ok);
}

static void a_message_handled_to_the_end_is_forgotten(void **state)
{
    bh__guard_t g;
    (void)state;
    crash_on(&poison);
    start_guard(&g, dir, 3);
    bh__job_t *job = job_of(&poison);
    assert_true(bh__guard_admit(&g, job));
    bh__guard_done(&g, job);
    assert_int_equal(bh__journal_counted(g.journal), 0);
    bh__guard_free(&g);
    bh__job_free(job);
}

static void consumer_timeout_is_recognised_in_the_channel_close(void **state)
{
    (void)state;
    assert_int_equal(bh__guard_consumer_timeout(
                         "broker closed channel 1: 406 PRECONDITION_FAILED - delivery "
                         "acknowledgement on channel 1 timed out. Timeout value used: 5000 ms. "
                         "This timeout value can be configured, see consumers doc guide to learn "
                         "more"),
                     5000);
    assert_int_equal(
        bh__guard_consumer_timeout("broker closed channel 1: 406 PRECONDITION_FAILED "
                                   "- delivery acknowledgement on channel 1 timed out"),
        0);
    assert_int_equal(bh__guard_consumer_timeout("broker closed channel 1: 406 PRECONDITION_FAILED "
                                                "- inequivalent arg 'x-queue-type'"),
                     -1);
    assert_int_equal(bh__guard_consumer_timeout("connection lost: a socket error occurred"), -1);
    assert_int_equal(bh__guard_consumer_timeout(NULL), -1);
}

static void consumer_timeouts_are_counted_per_message_up_to_crash_limit(void **state)
{
    static const char why[] = "broker closed channel 1: 406 PRECONDITION_FAILED - delivery "
                              "acknowledgement on channel 1 timed out. Timeout value used: 0 ms.";
    bh__guard_t g;
    (void)state;
    start_guard(&g, NULL, 2);
    bh__job_t *slow = job_of(&poison);
    slow->msg.kind = BH_KIND_COMMAND;
    for (int i = 1; i <= 2; i++) {
        bh__job_t *again = job_of(&poison);
        assert_true(bh__guard_admit(&g, again));
        bh__journal_begin(g.journal, bh__journal_ident(slow->d, 0), slow);
        fl_reset();
        bh__guard_lost(&g, why);
        bh__journal_end(g.journal);
        const fl_rec_t *r = fl_find(BH_ERROR, "consumer timeout: handler for command 'svc.Crash'");
        assert_non_null(r);
        char want[64];
        snprintf(want, sizeof want, "timeout %d of crash_limit 2", i);
        assert_non_null(strstr(r->text, want));
        bh__job_free(again);
    }
    /* A connection lost for another reason counts nothing. */
    bh__guard_lost(&g, "connection lost: a socket error occurred");
    fl_reset();
    bh__job_t *last = job_of(&poison);
    assert_false(bh__guard_admit(&g, last));
    assert_non_null(fl_find(BH_EMERGENCY, "outlived the broker's consumer_timeout 2 time(s)"));
    bh__guard_stats_t st;
    bh__guard_stats(&g, &st);
    assert_int_equal(st.consumer_timeouts, 2);
    bh__guard_free(&g);
    bh__job_free(slow);
    bh__job_free(last);
}

static void a_handler_past_handler_timeout_ms_is_warned_about_once_and_counted(void **state)
{
    bh__guard_t g;
    bh__guard_stats_t st;
    char err[256];
    uv_loop_t loop;
    bh__config_t cfg = {.crash_limit = 3};
    bh__svc_conf_t conf = {.service = "svc", .handler_timeout_ms = 20};
    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(bh__guard_start(&g, &cfg, &conf, fl_logger(), err, sizeof err), BH_OK);
    bh__guard_watch(&g, &loop);
    bh__job_t *job = job_of(&poison);
    bh__journal_begin(g.journal, 1, job);
    uint64_t until = bh__journal_now_ms() + 100; /* five looks past the limit */
    while (bh__journal_now_ms() < until) uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(fl_count_match(BH_WARNING, "handler for command 'svc.Crash' has run"), 1);
    assert_non_null(fl_find(BH_WARNING, "past handler_timeout_ms = 20"));
    bh__guard_stats(&g, &st);
    assert_int_equal(st.slow_handlers, 1);
    /* The next run in the slot is a new one. */
    bh__journal_end(g.journal);
    bh__journal_begin(g.journal, 1, job);
    until = bh__journal_now_ms() + 60;
    while (bh__journal_now_ms() < until) uv_run(&loop, UV_RUN_ONCE);
    bh__journal_end(g.journal);
    bh__guard_stats(&g, &st);
    assert_int_equal(st.slow_handlers, 2);
    bh__guard_close(&g);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    bh__guard_free(&g);
    bh__job_free(job);
}

/* The report the last process's signal handler left beside the journal
 * is logged once, as an EMERGENCY, and the file emptied for the next. */
static void the_last_crash_report_is_logged_once_as_an_emergency(void **state)
{
    bh__guard_t g;
    char path[128];
    (void)state;
    snprintf(path, sizeof path, "%s/svc.crash", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("bushost: CRASH: SIGSEGV (signal 11) at address 0x10\n", f);
    fclose(f);
    start_guard(&g, dir, 3);
    const fl_rec_t *r = fl_find(BH_EMERGENCY, "the last process crashed");
    assert_non_null(r);
    assert_non_null(strstr(r->text, path));
    assert_non_null(strstr(r->text, "SIGSEGV (signal 11) at address 0x10"));
    assert_true(g.crash_fd >= 0);
    assert_int_equal(write(g.crash_fd, "x", 1), 1); /* the next report goes there */
    bh__guard_free(&g);
    fl_reset();
    start_guard(&g, dir, 3);
    assert_non_null(fl_find(BH_EMERGENCY, "the last process crashed"));
    bh__guard_free(&g);
    fl_reset();
    start_guard(&g, dir, 3);
    assert_null(fl_find(BH_EMERGENCY, "the last process crashed"));
    bh__guard_free(&g);
    /* In memory: no file. */
    start_guard(&g, NULL, 3);
    assert_int_equal(g.crash_fd, -1);
    bh__guard_free(&g);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(a_handler_left_running_counts_one_crash_at_the_next_open),
        T(a_finished_handler_counts_nothing),
        T(crashes_add_up_across_restarts),
        T(abandoned_handlers_are_not_crashes),
        T(only_the_slot_that_crashed_is_counted_when_one_is_marked),
        T(a_second_host_of_the_service_takes_another_file),
        T(an_unusable_state_dir_is_an_error_naming_it),
        T(in_memory_counts_but_nothing_survives),
        T(identity_is_stable_and_tells_messages_apart),
        T(a_full_table_evicts_the_least_counted),
        T(a_message_that_crashed_crash_limit_times_is_refused_with_an_emergency),
        T(a_message_handled_to_the_end_is_forgotten),
        T(consumer_timeout_is_recognised_in_the_channel_close),
        T(consumer_timeouts_are_counted_per_message_up_to_crash_limit),
        T(a_handler_past_handler_timeout_ms_is_warned_about_once_and_counted),
        T(the_last_crash_report_is_logged_once_as_an_emergency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
