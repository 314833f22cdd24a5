/* test_cq.c -- the completion queue (host/cq.c) and when it wakes the I/O
 * thread, with a real loop in the test thread and real pushing threads.
 *
 * The loop's async handle counts its callbacks: libuv folds the sends that
 * came before one callback into it, so a count says "woken since", which
 * is what the policy is about. A check that a push did NOT wake first lets
 * the collect timer fire and then runs the loop a while longer: a send
 * would have been seen by then. Job i is identified by job->gen == i. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "cq.h"
#include "loop_util.h"

enum { WAIT_MS = 5000, BATCH = 4, MAX_JOBS = 4000 };

static struct {
    lu_t lu;
    uv_async_t wake;
    bh__cq_t q;
    bool inited, ended;
    size_t wakes, collects;
    unsigned collect_again; /* collects that ask to look again */
    uint64_t got[MAX_JOBS]; /* ids in the order they were taken */
    size_t n_got;
} T;

typedef struct pusher {
    uv_thread_t thread;
    uint64_t first;
    size_t n;
    bool urgent;
    size_t refused;
} pusher_t;

static void take(bool disarm)
{
    for (bh__job_t *j = bh__cq_take_all(&T.q, disarm), *n; j; j = n) {
        n = j->next;
        assert_true(T.n_got < MAX_JOBS);
        T.got[T.n_got++] = j->gen;
        free(j);
    }
}

static void on_wake(uv_async_t *a)
{
    (void)a;
    T.wakes++;
    take(false);
}

static bool on_collect(void *ud)
{
    (void)ud;
    T.collects++;
    take(true);
    if (!T.collect_again) return false;
    T.collect_again--;
    return true;
}

static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof T);
    lu_init(&T.lu);
    return 0;
}

static void init(size_t batch)
{
    assert_int_equal(uv_async_init(&T.lu.loop, &T.wake, on_wake), 0);
    bh__cq_init(&T.q, &T.lu.loop, &T.wake, batch, on_collect, NULL);
    T.inited = true;
}

static int finish(void)
{
    T.ended = true;
    if (!T.inited) return lu_finish(&T.lu);
    if (!T.q.closed) bh__cq_close(&T.q);
    uv_close((uv_handle_t *)&T.wake, NULL);
    int open = lu_finish(&T.lu);
    take(false); /* what was never collected */
    bh__cq_free(&T.q);
    return open;
}

static int teardown(void **state)
{
    (void)state;
    if (!T.ended) finish();
    return 0;
}

static void end(void) { assert_int_equal(finish(), 0); }

static void push_jobs(void *arg)
{
    pusher_t *p = arg;
    for (size_t i = 0; i < p->n; i++) {
        bh__job_t *j = calloc(1, sizeof *j);
        if (!j) abort();
        j->gen = p->first + i;
        if (!bh__cq_push(&T.q, j, p->urgent)) {
            free(j);
            p->refused++;
        }
    }
}

static void start_pusher(pusher_t *p, uint64_t first, size_t n, bool urgent)
{
    *p = (pusher_t){.first = first, .n = n, .urgent = urgent};
    assert_int_equal(uv_thread_create(&p->thread, push_jobs, p), 0);
}

/* Push jobs first.. from another thread, and wait until it is done.
 * Returns how many were refused. */
static size_t push(uint64_t first, size_t n, bool urgent)
{
    pusher_t p;
    start_pusher(&p, first, n, urgent);
    assert_int_equal(uv_thread_join(&p.thread), 0);
    return p.refused;
}

static void assert_got(uint64_t first, size_t n)
{
    assert_int_equal(T.n_got, n);
    for (size_t i = 0; i < n; i++) assert_int_equal(T.got[i], first + i);
}

/* Let the collect timer fire, then give a wake-up every chance to show. */
static void collect_and_settle(size_t collects)
{
    LU_UNTIL(&T.lu, WAIT_MS, T.collects == collects);
    assert_int_equal(T.collects, collects);
    lu_run_for(&T.lu, 20);
}

static void test_a_push_wakes_the_loop_when_not_armed(void **state)
{
    (void)state;
    init(BATCH);
    assert_int_equal(push(0, 1, false), 0);
    LU_UNTIL(&T.lu, WAIT_MS, T.wakes == 1);
    assert_int_equal(T.wakes, 1);
    assert_got(0, 1);
    assert_int_equal(T.collects, 0);
    end();
}

static void test_armed_pushes_below_the_batch_wait_for_the_timer(void **state)
{
    (void)state;
    init(BATCH);
    bh__cq_arm(&T.q);
    assert_int_equal(push(0, BATCH - 1, false), 0);
    collect_and_settle(1);
    assert_int_equal(T.wakes, 0);
    assert_got(0, BATCH - 1);
    /* The timer took the queue and disarmed it: the next push wakes. */
    assert_int_equal(push(BATCH - 1, 1, false), 0);
    LU_UNTIL(&T.lu, WAIT_MS, T.wakes == 1);
    assert_int_equal(T.wakes, 1);
    assert_got(0, BATCH);
    end();
}

/* Armed, n pushes wake the loop once (and the timer still collects). */
static void armed_pushes_wake(size_t n, bool urgent)
{
    bh__cq_arm(&T.q);
    assert_int_equal(push(0, n, urgent), 0);
    collect_and_settle(1);
    assert_int_equal(T.wakes, 1);
    assert_got(0, n);
    end();
}

static void test_an_urgent_push_always_wakes(void **state)
{
    (void)state;
    init(BATCH);
    armed_pushes_wake(1, true);
}

static void test_a_full_batch_wakes(void **state)
{
    (void)state;
    init(BATCH);
    armed_pushes_wake(BATCH, false);
}

static void test_eager_wakes_on_every_push(void **state)
{
    (void)state;
    init(BATCH);
    bh__cq_eager(&T.q);
    armed_pushes_wake(1, false);
}

static void test_close_refuses_pushes_and_kicks(void **state)
{
    (void)state;
    init(BATCH);
    bh__cq_kick(&T.q);
    LU_UNTIL(&T.lu, WAIT_MS, T.wakes == 1);
    assert_int_equal(T.wakes, 1);
    bh__cq_close(&T.q);
    assert_int_equal(push(0, 3, true), 3);
    bh__cq_kick(&T.q);
    lu_run_for(&T.lu, 20);
    assert_int_equal(T.wakes, 1);
    assert_int_equal(T.n_got, 0);
    end(); /* the timer was closed too */
}

static void test_take_all_is_fifo(void **state)
{
    (void)state;
    init(BATCH);
    assert_int_equal(push(0, 100, false), 0);
    take(false); /* before the loop looks */
    assert_got(0, 100);
    assert_null(bh__cq_take_all(&T.q, false));
    end();
}

static void test_the_collect_timer_looks_again_when_asked(void **state)
{
    (void)state;
    init(BATCH);
    T.collect_again = 1;
    bh__cq_arm(&T.q);
    bh__cq_arm(&T.q); /* runs already */
    collect_and_settle(2);
    assert_int_equal(T.collects, 2);
    end();
}

/* Two threads push while the loop takes: nothing is lost, and each
 * thread's jobs come out in the order it pushed them. */
static void test_concurrent_pushes_keep_each_threads_order(void **state)
{
    (void)state;
    enum { N = 1000 };
    static pusher_t p[2];
    init(BATCH);
    bh__cq_arm(&T.q);
    start_pusher(&p[0], 0, N, false);
    start_pusher(&p[1], N, N, true);
    LU_UNTIL(&T.lu, WAIT_MS, T.n_got == 2 * N);
    for (int i = 0; i < 2; i++) assert_int_equal(uv_thread_join(&p[i].thread), 0);
    assert_int_equal(T.n_got, 2 * N);
    uint64_t next[2] = {0, N};
    for (size_t i = 0; i < 2 * N; i++) {
        int k = T.got[i] >= N;
        assert_int_equal(T.got[i], next[k]);
        next[k]++;
    }
    end();
}

int main(void)
{
#define T_(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T_(test_a_push_wakes_the_loop_when_not_armed),
        T_(test_armed_pushes_below_the_batch_wait_for_the_timer),
        T_(test_an_urgent_push_always_wakes),
        T_(test_a_full_batch_wakes),
        T_(test_eager_wakes_on_every_push),
        T_(test_close_refuses_pushes_and_kicks),
        T_(test_take_all_is_fifo),
        T_(test_the_collect_timer_looks_again_when_asked),
        T_(test_concurrent_pushes_keep_each_threads_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
