/* test_requests.c -- the table of requests waiting for a result
 * (host/requests.c), with a real loop for its deadlines, the real job
 * module and a fake logger. The fire callback records the jobs the table
 * hands over: each is a request's end without an answer. */
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
#include "requests.h"

enum { MAX_FIRED = 16 };

static bh_outcome_t on_answer(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    (void)ctx, (void)msg, (void)state;
    return BH_DONE;
}

static const bh_route_t results[] = {{.key = "svc.Answer", .handler = on_answer}, {0}};
static const bh_plugin_t desc = {.name = "svc", .service = "svc", .results = results};

static struct {
    lu_t lu;
    bh__requests_t r;
    bh__metrics_t m; /* only its request counts */
    bh__job_t *fired[MAX_FIRED];
    size_t n_fired, afters;
    uint64_t t0;
} T;

static void fire(void *ud, bh__job_t *job)
{
    (void)ud;
    assert_true(T.n_fired < MAX_FIRED);
    T.fired[T.n_fired++] = job;
}

static void after(void *ud)
{
    (void)ud;
    T.afters++;
}

static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof T);
    fl_reset();
    lu_init(&T.lu);
    bh__requests_init(&T.r, &desc, desc.service, fl_logger());
    T.r.m = &T.m;
    bh__requests_start(&T.r, &T.lu.loop, fire, after, NULL);
    T.t0 = uv_hrtime();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < T.n_fired; i++) bh__job_free(T.fired[i]);
    bh__requests_close(&T.r);
    bh__requests_free(&T.r);
    assert_int_equal(lu_finish(&T.lu), 0);
    return 0;
}

/* The I/O thread takes over a command sent with options. */
static void sent(const char *corr, uint32_t timeout_ms, void *ctx)
{
    bh__out_t *o = bh__out_new(BH__EX_COMMANDS, "other.Do", "application/json", "conv-1",
                               "svc.Answer", corr, NULL, "{}", 2);
    assert_non_null(o);
    o->tracked = true;
    o->timeout_ms = timeout_ms;
    o->request_ctx = ctx;
    bh__requests_sent(&T.r, o);
    free(o);
}

/* A delivered result for corr. */
static bh__job_t *result(const char *corr)
{
    bh__job_t *j =
        bh__job_origin(BH_KIND_RESULT, on_answer, "svc.Answer", "conv-1", corr, "success");
    assert_non_null(j);
    j->origin = false; /* as dispatch makes it */
    return j;
}

static void check_refuses_what_cannot_be_answered(void **state)
{
    (void)state;
    assert_int_equal(bh__requests_check(&T.r, NULL), BH_EINVAL);
    assert_int_equal(bh__requests_check(&T.r, "svc.Other"), BH_EINVAL);
    assert_int_equal(bh__requests_check(&T.r, "svc.Answer"), BH_OK);
    T.r.max = 2;
    sent("a", 0, NULL);
    sent("b", 0, NULL);
    assert_int_equal(bh__requests_check(&T.r, "svc.Answer"), BH_EFULL);
}

static void a_deadline_ends_it_once_with_timeout(void **state)
{
    (void)state;
    int marker;
    sent("c1", 30, &marker);
    LU_UNTIL(&T.lu, 2000, T.n_fired == 1);
    assert_int_equal(T.n_fired, 1);
    assert_true(uv_hrtime() - T.t0 >= 29u * 1000000u);
    bh__job_t *j = T.fired[0];
    assert_true(j->origin);
    assert_int_equal(j->msg.kind, BH_KIND_RESULT);
    assert_string_equal(j->msg.status, "timeout");
    assert_string_equal(j->msg.routing_key, "svc.Answer");
    assert_string_equal(j->msg.correlation_id, "c1");
    assert_string_equal(j->msg.conversation_id, "conv-1"); /* the command's */
    assert_ptr_equal(j->request_ctx, &marker);
    assert_ptr_equal(j->handler, on_answer);
    assert_true(T.afters >= 1);
    assert_int_equal(atomic_load(&T.r.n), 0);
    lu_run_for(&T.lu, 60);
    assert_int_equal(T.n_fired, 1);
    assert_int_equal(atomic_load(&T.m.requests[BH__REQ_TIMEOUT]), 1);
    assert_int_equal(atomic_load(&T.m.requests[BH__REQ_ANSWERED]), 0);
}

static void deadlines_fire_in_order(void **state)
{
    (void)state;
    sent("late", 60, NULL);
    sent("soon", 15, NULL);
    sent("mid", 35, NULL);
    sent("never", 0, NULL);
    LU_UNTIL(&T.lu, 2000, T.n_fired == 3);
    assert_int_equal(T.n_fired, 3);
    assert_string_equal(T.fired[0]->msg.correlation_id, "soon");
    assert_string_equal(T.fired[1]->msg.correlation_id, "mid");
    assert_string_equal(T.fired[2]->msg.correlation_id, "late");
    assert_int_equal(atomic_load(&T.r.n), 1); /* "never" waits on */
}

static void an_answer_in_time_ends_it(void **state)
{
    (void)state;
    int marker;
    sent("c2", 40, &marker);
    bh__job_t *j = result("c2");
    assert_false(bh__requests_match(&T.r, j));
    assert_ptr_equal(j->request_ctx, &marker);
    assert_int_equal(atomic_load(&T.m.requests[BH__REQ_ANSWERED]), 1);
    bh__job_free(j);
    lu_run_for(&T.lu, 80);
    assert_int_equal(T.n_fired, 0); /* the deadline is gone with it */
    j = result("c2");               /* a second answer: unknown now */
    assert_false(bh__requests_match(&T.r, j));
    assert_null(j->request_ctx);
    bh__job_free(j);
}

static void a_late_answer_is_acked_unseen_once(void **state)
{
    (void)state;
    sent("c3", 10, NULL);
    LU_UNTIL(&T.lu, 2000, T.n_fired == 1);
    bh__job_t *j = result("c3");
    assert_true(bh__requests_match(&T.r, j));
    assert_non_null(fl_find(BH_WARNING, "came after its timeout"));
    assert_int_equal(atomic_load(&T.m.requests[BH__REQ_LATE]), 1);
    bh__job_free(j);
    j = result("c3"); /* remembered once only */
    assert_false(bh__requests_match(&T.r, j));
    bh__job_free(j);
}

static void unknown_answers_go_on_as_before(void **state)
{
    (void)state;
    bh__job_t *j = result("nobody");
    assert_false(bh__requests_match(&T.r, j));
    assert_null(j->request_ctx);
    bh__job_free(j);
    assert_int_equal(fl_count(), 0);
}

static void a_return_ends_it_with_unroutable(void **state)
{
    (void)state;
    int marker;
    sent("c4", 5000, &marker);
    bh__requests_unroutable(&T.r, "other");
    assert_int_equal(T.n_fired, 0);
    bh__requests_unroutable(&T.r, "c4");
    assert_int_equal(T.n_fired, 1);
    assert_string_equal(T.fired[0]->msg.status, "unroutable");
    assert_ptr_equal(T.fired[0]->request_ctx, &marker);
    bh__requests_unroutable(&T.r, "c4"); /* ended already */
    assert_int_equal(atomic_load(&T.m.requests[BH__REQ_UNROUTABLE]), 1);
    assert_int_equal(T.n_fired, 1);
    assert_int_equal(atomic_load(&T.r.n), 0);
}

/* A drain stops the deadlines; what waits is taken for "shutdown". */
static void after_stop_what_waits_is_taken(void **state)
{
    (void)state;
    int marker;
    sent("c5", 10, &marker);
    sent("c6", 0, NULL);
    bh__requests_stop(&T.r);
    lu_run_for(&T.lu, 40);
    bh__requests_unroutable(&T.r, "c6");
    assert_int_equal(T.n_fired, 0);
    size_t n = 0;
    for (bh__req_t *q = bh__requests_take(&T.r), *next; q; q = next, n++) {
        next = q->next;
        bh__job_t *j = bh__requests_job(q, "shutdown");
        assert_string_equal(j->msg.status, "shutdown");
        if (!strcmp(q->corr, "c5")) assert_ptr_equal(j->request_ctx, &marker);
        bh__job_free(j);
        free(q);
    }
    assert_int_equal(n, 2);
    assert_int_equal(atomic_load(&T.r.n), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(check_refuses_what_cannot_be_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(a_deadline_ends_it_once_with_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(deadlines_fire_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(an_answer_in_time_ends_it, setup, teardown),
        cmocka_unit_test_setup_teardown(a_late_answer_is_acked_unseen_once, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_answers_go_on_as_before, setup, teardown),
        cmocka_unit_test_setup_teardown(a_return_ends_it_with_unroutable, setup, teardown),
        cmocka_unit_test_setup_teardown(after_stop_what_waits_is_taken, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
