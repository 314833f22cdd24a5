/* test_relay.c -- the lead of a loop passed between two real threads
 * (relay.h), with a scripted turn in place of a service's loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "relay.h"

static bh__relay_t rl;

/* What the turns did, under mu. */
static struct {
    uv_mutex_t mu;
    uv_cond_t cv;
    int turns;
    int slow_left; /* turns that still run one blocking handler */
    int fast_left; /* cheap handlers still to run, one per turn */
    int fast_lost; /* cheap handlers whose lead was taken (must stay 0) */
    bool blocked;  /* a handler waits for `release` */
    bool release;
    int handovers; /* turns on another thread while a handler waited */
    uv_thread_t blocker, blocked_on[2];
    int stray_seen[2]; /* bh__relay_strays, seen by the other thread then */
    bool end;          /* the next turn ends the loop */
    int ended;
    uv_thread_t ended_on, last_turn;
} T;

static void wait_for(bool (*cond)(void))
{
    uint64_t until = uv_hrtime() + 10000000000u;
    uv_mutex_lock(&T.mu);
    while (!cond() && uv_hrtime() < until) uv_cond_timedwait(&T.cv, &T.mu, 10000000u);
    uv_mutex_unlock(&T.mu);
}

static int turn(void *ud)
{
    (void)ud;
    uv_thread_t self = uv_thread_self();
    uv_mutex_lock(&T.mu);
    T.turns++;
    T.last_turn = self;
    if (T.blocked && !T.release && !uv_thread_equal(&self, &T.blocker)) {
        if (T.handovers < 2) {
            T.blocked_on[T.handovers] = T.blocker;
            T.stray_seen[T.handovers] = bh__relay_strays(&rl);
        }
        T.handovers++;
        T.release = true;
        uv_cond_broadcast(&T.cv);
    }
    bool slow = T.slow_left > 0 && atomic_load(&rl.standby);
    bool fast = !slow && T.fast_left > 0;
    bool end = T.end && !slow && !fast && !T.blocked;
    uv_mutex_unlock(&T.mu);
    if (end) return BH__RELAY_ENDED;
    if (!slow && !fast) {
        uv_sleep(1);
        return BH__RELAY_ON;
    }
    if (!bh__relay_begin(&rl, uv_hrtime())) return BH__RELAY_ON; /* the standby is not there yet */
    if (slow) { /* blocks until another thread has turned the loop */
        uv_mutex_lock(&T.mu);
        T.slow_left--;
        T.blocked = true;
        T.blocker = self;
        uv_cond_broadcast(&T.cv);
        while (!T.release) uv_cond_wait(&T.cv, &T.mu);
        T.blocked = T.release = false;
        uv_mutex_unlock(&T.mu);
    }
    bool kept = bh__relay_end(&rl);
    bh__relay_idle(&rl);
    uv_mutex_lock(&T.mu);
    if (fast) {
        T.fast_left--;
        if (!kept) T.fast_lost++;
    }
    uv_cond_broadcast(&T.cv);
    uv_mutex_unlock(&T.mu);
    if (kept) return BH__RELAY_ON;
    bh__relay_stray_done(&rl);
    return BH__RELAY_LOST;
}

static void ended(void *ud)
{
    (void)ud;
    uv_mutex_lock(&T.mu);
    T.ended++;
    T.ended_on = uv_thread_self();
    uv_mutex_unlock(&T.mu);
}

static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof T);
    uv_mutex_init(&T.mu);
    uv_cond_init(&T.cv);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    uv_cond_destroy(&T.cv);
    uv_mutex_destroy(&T.mu);
    return 0;
}

static bool standby_ready(void) { return atomic_load(&rl.standby); }
static bool fast_done(void) { return T.fast_left == 0; }
static bool handed_over_twice(void) { return T.handovers >= 2 && !T.blocked; }

static void end_and_join(void)
{
    uv_mutex_lock(&T.mu);
    T.end = true;
    uv_mutex_unlock(&T.mu);
    bh__relay_wait_end(&rl);
    assert_int_equal(bh__relay_join(&rl, UINT64_MAX), 0);
    assert_int_equal(T.ended, 1);
    assert_true(uv_thread_equal(&T.ended_on, &T.last_turn)); /* the leader ended it */
    bh__relay_free(&rl);
}

/* Handlers well inside the budget never lose the lead. */
static void cheap_handlers_keep_the_lead(void **state)
{
    (void)state;
    T.fast_left = 2000;
    assert_int_equal(bh__relay_start(&rl, 200000000u, turn, ended, NULL), 0);
    wait_for(fast_done);
    assert_int_equal(T.fast_left, 0);
    assert_int_equal(T.fast_lost, 0);
    end_and_join();
}

/* A handler past the budget: the standby takes the lead and turns the loop
 * while it still runs; the old leader hands back and stands by; the lead
 * can be taken back the other way just the same. */
static void a_blocking_handler_loses_the_lead_to_the_standby(void **state)
{
    (void)state;
    T.slow_left = 2;
    assert_int_equal(bh__relay_start(&rl, BH__RELAY_BUDGET_NS, turn, ended, NULL), 0);
    wait_for(handed_over_twice);
    assert_int_equal(T.handovers, 2);
    assert_int_equal(T.stray_seen[0], 1);
    assert_int_equal(T.stray_seen[1], 1);
    assert_false(uv_thread_equal(&T.blocked_on[0], &T.blocked_on[1]));
    assert_int_equal(T.slow_left, 0);
    wait_for(standby_ready);
    assert_int_equal(bh__relay_strays(&rl), 0);
    end_and_join();
}

/* Ending while the standby sleeps wakes it: both threads exit. */
static void ending_wakes_the_standby(void **state)
{
    (void)state;
    assert_int_equal(bh__relay_start(&rl, BH__RELAY_BUDGET_NS, turn, ended, NULL), 0);
    wait_for(standby_ready);
    end_and_join();
}

int main(void)
{
#define U(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        U(cheap_handlers_keep_the_lead),
        U(a_blocking_handler_loses_the_lead_to_the_standby),
        U(ending_wakes_the_standby),
    };
#undef U
    return cmocka_run_group_tests(tests, NULL, NULL);
}
