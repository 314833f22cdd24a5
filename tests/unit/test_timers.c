/* test_timers.c -- a plugin's periodic tasks on the I/O loop
 * (host/timers.c), with a real loop, the real job module and a fake
 * logger. The fire callback plays run.c: it keeps each timer job, and the
 * test ends the run when it wants (bh__timers_ended), as settling would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "fake_log.h"
#include "loop_util.h"
#include "timers.h"

enum { MAX_FIRED = 64 };

static void on_fast(bh_ctx_t *ctx, void *state) { (void)ctx, (void)state; }
static void on_slow(bh_ctx_t *ctx, void *state) { (void)ctx, (void)state; }

static const bh_timer_t defs[] = {{"fast", 10, on_fast}, {"slow", 40, on_slow}, {NULL, 0, NULL}};

static struct {
    lu_t lu;
    bh__timers_t ts;
    bh__mtimer_t m[2]; /* their counts on /metrics */
    bh__job_t *fired[MAX_FIRED];
    size_t n_fired, afters;
    bool end_at_once; /* end each run as soon as it fires */
} T;

static void fire(void *ud, bh__job_t *job)
{
    (void)ud;
    assert_true(T.n_fired < MAX_FIRED);
    T.fired[T.n_fired++] = job;
    if (T.end_at_once) bh__timers_ended(job->timer);
}

static void after(void *ud)
{
    (void)ud;
    T.afters++;
}

static size_t fired_of(bh_timer_fn fn)
{
    size_t n = 0;
    for (size_t i = 0; i < T.n_fired; i++) n += T.fired[i]->tick == fn;
    return n;
}

static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof T);
    fl_reset();
    lu_init(&T.lu);
    assert_int_equal(bh__timers_init(&T.ts, defs, fl_logger()), BH_OK);
    assert_int_equal(T.ts.n, 2);
    T.ts.t[0].m = &T.m[0];
    T.ts.t[1].m = &T.m[1];
    bh__timers_start(&T.ts, &T.lu.loop, fire, after, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < T.n_fired; i++) bh__job_free(T.fired[i]);
    bh__timers_close(&T.ts);
    bh__timers_free(&T.ts);
    assert_int_equal(lu_finish(&T.lu), 0);
    return 0;
}

static void each_tick_is_a_job_of_its_timer(void **state)
{
    (void)state;
    T.end_at_once = true;
    lu_run_for(&T.lu, 130);
    size_t fast = fired_of(on_fast), slow = fired_of(on_slow);
    /* 13 ticks of 10 ms and 3 of 40 ms; a loaded machine may lose some. */
    assert_true(fast >= 5 && fast <= 14);
    assert_true(slow >= 1 && slow <= 4);
    assert_true(fast > slow);
    assert_int_equal(T.afters, fast + slow);
    bh__job_t *j = T.fired[0];
    assert_true(j->origin);
    assert_null(j->handler);
    assert_int_equal(strlen(j->msg.conversation_id), 36); /* a new conversation */
    assert_string_not_equal(T.fired[0]->msg.conversation_id, T.fired[1]->msg.conversation_id);
    assert_int_equal(fl_count(), 0);
}

/* A run that has not ended: its timer's ticks are skipped and counted
 * (logged once), the other timer goes on; once it ends, ticks run again. */
static void a_tick_never_overlaps_its_run(void **state)
{
    (void)state;
    LU_UNTIL(&T.lu, 2000, fired_of(on_fast) == 1);
    bh__job_t *run = T.fired[T.n_fired - 1];
    assert_true(run->timer->running);
    lu_run_for(&T.lu, 100);
    assert_int_equal(fired_of(on_fast), 1);
    assert_true(run->timer->skipped >= 3);
    assert_int_equal(atomic_load(&T.m[0].skips), run->timer->skipped);
    assert_int_equal(atomic_load(&T.m[0].runs), 1);
    assert_int_equal(fl_count_match(BH_WARNING, "timer 'fast' is still running"), 1);
    bh__timers_ended(run->timer);
    LU_UNTIL(&T.lu, 2000, fired_of(on_fast) == 2);
    assert_int_equal(fired_of(on_fast), 2);
}

static void stopped_timers_never_tick(void **state)
{
    (void)state;
    T.end_at_once = true;
    bh__timers_stop(&T.ts);
    lu_run_for(&T.lu, 60);
    assert_int_equal(T.n_fired, 0);
}

static void no_table_no_timers(void **state)
{
    (void)state;
    bh__timers_t none;
    assert_int_equal(bh__timers_init(&none, NULL, fl_logger()), BH_OK);
    assert_int_equal(none.n, 0);
    bh__timers_start(&none, &T.lu.loop, fire, after, NULL);
    bh__timers_stop(&none);
    bh__timers_close(&none);
    bh__timers_free(&none);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(each_tick_is_a_job_of_its_timer, setup, teardown),
        cmocka_unit_test_setup_teardown(a_tick_never_overlaps_its_run, setup, teardown),
        cmocka_unit_test_setup_teardown(stopped_timers_never_tick, setup, teardown),
        cmocka_unit_test_setup_teardown(no_table_no_timers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
