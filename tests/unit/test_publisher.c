/* test_publisher.c -- the queue behind bh_publisher_event
 * (host/publisher.c): its bound, its refusal once closed, and the handoff
 * from real pushing threads to a loop in the test thread (run under TSan
 * by scripts/test.sh --sanitize thread). Job i is identified by gen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "loop_util.h"
#include "publisher.h"

enum { THREADS = 4, PER_THREAD = 500 };

static struct {
    lu_t lu;
    uv_async_t wake;
    bh__publisher_t p;
    size_t wakes, got;
    uint64_t last[THREADS]; /* per thread: ids must come in order */
} T;

static bh__job_t *job(uint64_t id)
{
    bh__job_t *j = calloc(1, sizeof *j);
    assert_non_null(j);
    j->gen = id;
    return j;
}

static void take(void)
{
    for (bh__job_t *j = bh__publisher_take(&T.p), *n; j; j = n) {
        n = j->next;
        size_t t = (size_t)(j->gen / PER_THREAD);
        assert_true(t < THREADS);
        assert_true(j->gen + 1 > T.last[t]);
        T.last[t] = j->gen + 1;
        T.got++;
        free(j);
        bh__publisher_release(&T.p); /* as its done callback ran */
    }
}

static void on_wake(uv_async_t *a)
{
    (void)a;
    T.wakes++;
    take();
}

static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof T);
    lu_init(&T.lu);
    uv_async_init(&T.lu.loop, &T.wake, on_wake);
    bh__publisher_init(&T.p, "svc", BH_FORMAT_JSON, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bh__publisher_close(&T.p, true);
    take();
    bh__publisher_free(&T.p);
    uv_close((uv_handle_t *)&T.wake, NULL);
    assert_int_equal(lu_finish(&T.lu), 0);
    return 0;
}

static void pusher(void *arg)
{
    uint64_t first = (uint64_t)(uintptr_t)arg;
    for (uint64_t i = 0; i < PER_THREAD; i++) {
        while (bh__publisher_reserve(&T.p) == BH_EFULL) uv_sleep(1);
        assert_true(bh__publisher_push(&T.p, job(first + i)));
    }
}

/* Before the I/O thread runs nobody is woken; attaching wakes it for what
 * waits, and every push from then on wakes it. */
static void held_until_attached_then_handed_over(void **state)
{
    (void)state;
    assert_int_equal(bh__publisher_reserve(&T.p), BH_OK);
    assert_true(bh__publisher_push(&T.p, job(0)));
    lu_run_for(&T.lu, 20);
    assert_int_equal(T.wakes, 0);
    bh__publisher_attach(&T.p, &T.wake);
    LU_UNTIL(&T.lu, 2000, T.got == 1);
    assert_int_equal(T.got, 1);
    assert_int_equal(T.p.unconfirmed, 0);
}

/* Threads push while the loop takes: each one's publishes come in order,
 * none is lost, and the bound holds them back without losing any. */
static void threads_push_while_the_loop_takes(void **state)
{
    (void)state;
    uv_thread_t th[THREADS];
    T.p.max = 64;
    bh__publisher_attach(&T.p, &T.wake);
    for (size_t i = 0; i < THREADS; i++)
        assert_int_equal(uv_thread_create(&th[i], pusher, (void *)(uintptr_t)(i * PER_THREAD)), 0);
    LU_UNTIL(&T.lu, 20000, T.got == THREADS * PER_THREAD);
    for (size_t i = 0; i < THREADS; i++) uv_thread_join(&th[i]);
    take();
    assert_int_equal(T.got, THREADS * PER_THREAD);
    for (size_t i = 0; i < THREADS; i++) assert_int_equal(T.last[i], (i + 1) * PER_THREAD);
}

static void the_bound_gives_efull(void **state)
{
    (void)state;
    T.p.max = 2;
    assert_int_equal(bh__publisher_reserve(&T.p), BH_OK);
    assert_int_equal(bh__publisher_reserve(&T.p), BH_OK);
    assert_int_equal(bh__publisher_reserve(&T.p), BH_EFULL);
    bh__publisher_release(&T.p);
    assert_int_equal(bh__publisher_reserve(&T.p), BH_OK);
}

/* Closed: reservations are refused, and a push that raced the close gives
 * its reservation back and leaves the job to the caller. */
static void closed_refuses(void **state)
{
    (void)state;
    assert_int_equal(bh__publisher_reserve(&T.p), BH_OK);
    bh__publisher_close(&T.p, false);
    assert_int_equal(bh__publisher_reserve(&T.p), BH_ESTATE);
    bh__job_t *j = job(1);
    assert_false(bh__publisher_push(&T.p, j));
    free(j);
    assert_int_equal(T.p.unconfirmed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(held_until_attached_then_handed_over, setup, teardown),
        cmocka_unit_test_setup_teardown(threads_push_while_the_loop_takes, setup, teardown),
        cmocka_unit_test_setup_teardown(the_bound_gives_efull, setup, teardown),
        cmocka_unit_test_setup_teardown(closed_refuses, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
