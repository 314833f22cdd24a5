/* test_run.c -- where and when handlers run.
 *
 * run.c with job.c real. Its neighbours are fakes: the completion queue,
 * the worker pool and acks are fake_io.c, the logger fake_log.c; the
 * payload codec, the API context, settle and the clock (uv_hrtime, which
 * wins over libuv's) are fakes here, each recording into fake_io's log so that
 * the order of events shows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api.h"
#include "fake_io.h"
#include "fake_log.h"
#include "job_util.h"
#include "payload.h"
#include "run.h"
#include "trace.h"

/* -- the clock ---------------------------------------------------------------- */

static uint64_t now_ns = 1000000000u;

uint64_t uv_hrtime(void) { return now_ns; }

/* -- payloads: "bad" does not decode; anything else is a value that counts
 * its frees ----------------------------------------------------------------- */

static unsigned values_freed;

static void value_free(bh_value_t *v)
{
    values_freed++;
    free(v);
}

static const bh_api_t value_api = {.value_free = value_free};

int bh__payload_decode(const bh_api_t *api, const char *content_type, const void *body, size_t len,
                       bh_value_t **out, char *err, size_t errlen)
{
    (void)api, (void)body, (void)len;
    *out = NULL;
    if (content_type && !strcmp(content_type, "bad")) {
        snprintf(err, errlen, "payload top level is an array, expected a map");
        return BH_EINVAL;
    }
    if (!(*out = malloc(sizeof **out))) return BH_ENOMEM;
    (*out)->api = &value_api;
    return 0;
}

/* -- the API context ---------------------------------------------------------- */

static const bh_api_t handler_api;

const bh_api_t *bh__api(void) { return &handler_api; }

void bh__ctx_init(bh__ctx_t *c, const char *service, bh_format_t format, bh__logger_t *log,
                  bh__job_t *job, const bh__svc_conf_t *conf)
{
    *c = (bh__ctx_t){.pub = {.api = bh__api()},
                     .service = service,
                     .format = format,
                     .log = log,
                     .job = job,
                     .conf = conf};
}

/* -- settle: what run hands over ------------------------------------------------ */

void bh__settle_complete(bh__settle_t *st, bh__job_t *job)
{
    assert_null(job->next); /* unlinked from whatever list it came on */
    fio_mark("settled", job);
    bh__job_free(job);
    st->inflight--;
}

void bh__settle_drop(bh__settle_t *st, bh__job_t *job)
{
    fio_mark("dropped", job);
    bh__job_free(job);
    st->inflight--;
}

/* -- the handler: scripted per call ---------------------------------------------- */

static struct {
    int ret[8];     /* what call i returns (0: BH_DONE) */
    uint64_t ms[8]; /* how long call i takes, on the fake clock */
    bool result[8]; /* call i publishes its result */
    bool take[8];   /* during call i the relay's standby takes the lead */
    unsigned calls;
    bool payload_seen;        /* the handler saw the decoded payload */
    size_t journaled;         /* handlers the journal showed running, seen from the handler */
    const char *trace, *span; /* the thread's span, seen from the handler */
} H;

static const bh__run_t *the_run;
static bh__relay_t relay; /* its threads never run: the tests play the standby */

static bh_outcome_t handler(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    bh__ctx_t *c = (bh__ctx_t *)ctx;
    unsigned i = H.calls++;
    /* The context is bound to this job and to the service. */
    assert_ptr_equal(msg, &c->job->msg);
    assert_ptr_equal(state, the_run->state);
    assert_string_equal(c->service, "ping");
    assert_int_equal(c->format, BH_FORMAT_CBOR);
    assert_ptr_equal(c->log, fl_logger());
    assert_ptr_equal(ctx->api, &handler_api);
    H.payload_seen = msg->payload && msg->payload->api == &value_api;
    if (the_run->guard) {
        bh__journal_run_t r[4];
        H.journaled = bh__journal_running(the_run->guard->journal, r, 4);
        if (H.journaled) assert_ptr_equal(r[0].job, c->job);
    }
    if (H.result[i]) c->job->has_result = true;
    bh__trace_current(&H.trace, &H.span);
    fio_mark("handler", c->job);
    now_ns += H.ms[i] * 1000000u;
    if (H.take[i]) assert_true(bh__relay_take(&relay, atomic_load(&relay.word)));
    return H.ret[i] ? (bh_outcome_t)H.ret[i] : BH_DONE;
}

/* -- fixtures ---------------------------------------------------------------------- */

static int plugin_state;
static bh__conn_t conn;
static bh__settle_t st;
static bh__run_t run;
static bh__workers_t *const pool = (bh__workers_t *)&plugin_state; /* never dereferenced */
static bh__cq_t cq;

static int setup(void **state)
{
    (void)state;
    fio_reset();
    fl_reset();
    memset(&H, 0, sizeof H);
    values_freed = 0;
    conn = (bh__conn_t){.gen = 1};
    st = (bh__settle_t){.conn = &conn, .log = fl_logger()};
    run = (bh__run_t){.service = "ping",
                      .format = BH_FORMAT_CBOR,
                      .log = fl_logger(),
                      .state = &plugin_state,
                      .workers = pool,
                      .cq = &cq,
                      .settle = &st};
    run.batch_tail = &run.batch;
    the_run = &run;
    return 0;
}

static bh__job_t *job_of(bh_kind_t kind, uint64_t tag, const char *content_type, uint64_t gen)
{
    static const bh__hdr_t h[] = {{JU_STR("conversation_id", "c1")}};
    ju_msg_t m = {.tag = tag,
                  .exchange = kind == BH_KIND_EVENT ? "events" : "commands",
                  .routing_key = kind == BH_KIND_EVENT ? "OrderPlaced" : "ping.Echo",
                  .reply_to = kind == BH_KIND_COMMAND ? "caller.Back" : "",
                  .content_type = content_type,
                  .body = "x",
                  .headers = h,
                  .n_headers = 1,
                  .conversation_id = "c1"};
    st.inflight++;
    return ju_job(&m, kind, handler, gen);
}

static bh__job_t *event(uint64_t tag) { return job_of(BH_KIND_EVENT, tag, NULL, 1); }

/* The text and job of the i-th record, which must be a mark. */
static void assert_mark(size_t i, const char *text, const bh__job_t *job)
{
    const fio_rec_t *r = fio_at(i);
    assert_non_null(r);
    assert_int_equal(r->op, FIO_MARK);
    assert_string_equal(r->text, text);
    assert_ptr_equal(r->ptr, job);
}

/* -- bh__run_one ----------------------------------------------------------------- */

/* The handler runs in a span of its own (span.h): the thread's logs carry it
 * while it runs, and nothing after. */
static void the_handler_runs_in_its_span(void **state)
{
    const char *t, *sp;
    (void)state;
    bh__job_t *j = event(1);
    bh__run_one(&run, j);
    assert_non_null(H.trace);
    assert_ptr_equal(H.trace, j->trace.trace_hex);
    assert_ptr_equal(H.span, j->trace.span_hex);
    assert_int_equal(strlen(j->trace.trace_hex), 32);
    assert_true(j->trace.t0 > 0);
    bh__trace_current(&t, &sp);
    assert_null(t);
    assert_null(sp);
    bh__settle_drop(&st, j);
}

static void one_call_decodes_calls_and_frees_the_payload(void **state)
{
    (void)state;
    bh__job_t *j = event(1);
    H.ret[0] = BH_REJECT;
    bh__run_one(&run, j);
    assert_int_equal(H.calls, 1);
    assert_true(H.payload_seen);
    assert_int_equal(values_freed, 1);
    assert_null(j->payload);
    assert_null(j->msg.payload);
    assert_int_equal(j->outcome, BH_REJECT);
    assert_int_equal(fl_count(), 0);
    bh__settle_drop(&st, j);
}

static void undecodable_payload_never_reaches_the_handler(void **state)
{
    (void)state;
    bh__job_t *j = job_of(BH_KIND_EVENT, 1, "bad", 1);
    j->outcome = BH_DONE;
    bh__run_one(&run, j);
    assert_int_equal(H.calls, 0);
    assert_int_equal(j->outcome, 0);
    assert_string_equal(j->err, "payload top level is an array, expected a map");
    assert_int_equal(fl_count(), 0); /* settle logs it, on the I/O thread */
    bh__settle_drop(&st, j);
}

static void non_outcome_becomes_retry_with_an_alert(void **state)
{
    (void)state;
    bh__job_t *j = event(1);
    H.ret[0] = 42;
    bh__run_one(&run, j);
    assert_int_equal(j->outcome, BH_RETRY);
    assert_int_equal(fl_count(), 1);
    assert_non_null(fl_find(BH_ALERT, "handler for event 'OrderPlaced' returned 42, not a "
                                      "bh_outcome_t; treating it as BH_RETRY"));
    assert_string_equal(fl_nth(0)->conv, "c1");
    bh__settle_drop(&st, j);
}

static void command_done_without_result_is_warned_about(void **state)
{
    (void)state;
    bh__job_t *j = job_of(BH_KIND_COMMAND, 1, NULL, 1);
    bh__run_one(&run, j);
    assert_int_equal(j->outcome, BH_DONE);
    assert_int_equal(fl_count(), 1);
    assert_non_null(fl_find(BH_WARNING, "command 'ping.Echo' was handled without a result"));
    bh__settle_drop(&st, j);
}

/* With a result, a failure (its retry may answer) or for other kinds: no word. */
static void command_with_result_or_not_done_is_not_warned_about(void **state)
{
    (void)state;
    H.result[0] = true;
    H.ret[1] = BH_RETRY;
    H.ret[2] = BH_REJECT;
    for (int i = 0; i < 3; i++) {
        bh__job_t *j = job_of(BH_KIND_COMMAND, 1, NULL, 1);
        bh__run_one(&run, j);
        bh__settle_drop(&st, j);
    }
    bh__job_t *j = job_of(BH_KIND_RESULT, 1, NULL, 1);
    bh__run_one(&run, j);
    bh__settle_drop(&st, j);
    assert_int_equal(H.calls, 4);
    assert_int_equal(fl_count(), 0);
}

/* -- worker mode ----------------------------------------------------------------- */

static void batch_handed_to_the_workers_after_arming_the_queue(void **state)
{
    (void)state;
    bh__job_t *a = event(1), *b = event(2), *c = event(3);
    bh__run_add(&run, a);
    bh__run_add(&run, b);
    bh__run_add(&run, c);
    assert_int_equal(fio_n(), 0); /* nothing happens before the flush */
    bh__run_flush(&run);
    assert_int_equal(fio_n(), 2);
    assert_int_equal(fio_at(0)->op, FIO_CQ_ARM);
    assert_int_equal(fio_at(1)->op, FIO_WORKERS_PUSH);
    assert_ptr_equal(fio_at(1)->ptr, a);
    assert_int_equal(fio_at(1)->n, 3);
    assert_string_equal(fio_at(1)->text, "list ok");
    assert_ptr_equal(a->next, b);
    assert_ptr_equal(b->next, c);
    assert_int_equal(H.calls, 0); /* the workers run them */
    /* The batch is empty again: a second flush hands nothing over. */
    assert_null(run.batch);
    assert_int_equal(run.batch_n, 0);
    bh__run_flush(&run);
    assert_int_equal(fio_n(), 2);
    /* A new batch starts a new list. */
    bh__job_t *d = event(4);
    bh__run_add(&run, d);
    bh__run_flush(&run);
    assert_ptr_equal(fio_nth(FIO_WORKERS_PUSH, 1)->ptr, d);
    assert_int_equal(fio_nth(FIO_WORKERS_PUSH, 1)->n, 1);
    assert_string_equal(fio_nth(FIO_WORKERS_PUSH, 1)->text, "list ok");
    for (bh__job_t *j = a, *n; j; j = n) {
        n = j->next;
        bh__settle_drop(&st, j);
    }
    bh__settle_drop(&st, d);
    assert_int_equal(st.inflight, 0);
}

/* A worker pushes each job back; only one that needs the I/O thread soon
 * (it published, or did not succeed) is urgent. */
static void worker_pushes_the_job_urgent_when_it_must_be(void **state)
{
    (void)state;
    H.ret[1] = BH_RETRY;
    bh__job_t *quiet = event(1), *failed = event(2), *bad = job_of(BH_KIND_EVENT, 3, "bad", 1),
              *published = event(4);
    ju_add_out(published, BH__EX_EVENTS, "Shipped");
    bh__job_t *jobs[] = {quiet, failed, bad, published};
    const bool urgent[] = {false, true, true, true};
    for (int i = 0; i < 4; i++) {
        bh__run_worker(&run, jobs[i]);
        const fio_rec_t *r = fio_nth(FIO_CQ_PUSH, (size_t)i);
        assert_non_null(r);
        assert_ptr_equal(r->ptr, jobs[i]);
        assert_int_equal(r->flag, urgent[i]);
    }
    assert_int_equal(H.calls, 3);
    for (size_t i = 0; i < fio.n_pushed; i++) bh__settle_drop(&st, fio.pushed[i]);
    assert_int_equal(st.inflight, 0);
}

/* After the shutdown deadline nobody settles it: freed, the broker redelivers. */
static void job_refused_by_a_closed_queue_is_freed(void **state)
{
    (void)state;
    fio.cq_closed = true;
    bh__run_worker(&run, event(1));
    assert_int_equal(fio_count(FIO_CQ_PUSH), 1);
    assert_int_equal(fio.n_pushed, 0);
    /* (no settle: ASan sees the job freed; inflight is the I/O thread's) */
    st.inflight--;
}

static void collect_settles_each_finished_job_in_order(void **state)
{
    (void)state;
    bh__job_t *a = event(1), *b = event(2);
    a->next = b;
    fio.cq_jobs = a;
    bh__run_collect(&run, true);
    assert_int_equal(fio_n(), 3);
    assert_int_equal(fio_at(0)->op, FIO_CQ_TAKE);
    assert_true(fio_at(0)->flag);
    assert_mark(1, "settled", a);
    assert_mark(2, "settled", b);
    bh__run_collect(&run, false);
    assert_false(fio_nth(FIO_CQ_TAKE, 1)->flag);
    assert_int_equal(fio_n(), 4);
    assert_int_equal(st.inflight, 0);
}

/* -- relay mode (leader/follower) --------------------------------------------------- */

static void relay_on(void)
{
    relay = (bh__relay_t){.tfd = -1, .budget_ns = BH__RELAY_BUDGET_NS};
    atomic_store(&relay.standby, true);
    run.relay = &relay;
}

/* Cheap jobs run on the leader itself, one after the other, on one slot
 * lent by the pool; the flush inside the loop's turn hands nothing over. */
static void leader_runs_cheap_jobs_itself_on_a_lent_slot(void **state)
{
    (void)state;
    relay_on();
    bh__job_t *a = event(1), *b = event(2);
    bh__run_add(&run, a);
    bh__run_add(&run, b);
    bh__run_flush(&run);
    assert_int_equal(fio_n(), 0);
    assert_int_equal(bh__run_lead(&run), 2);
    assert_int_equal(fio_n(), 6);
    assert_int_equal(fio_at(0)->op, FIO_BORROW);
    assert_true(fio_at(0)->flag);
    assert_mark(1, "handler", a);
    assert_mark(2, "settled", a);
    assert_mark(3, "handler", b);
    assert_mark(4, "settled", b);
    assert_int_equal(fio_at(5)->op, FIO_REPAY);
    assert_null(run.batch);
    assert_int_equal(st.inflight, 0);
}

/* A handler that took long makes the smoothed time too high to run the next
 * ones on the leader: they go to the workers. */
static void after_a_slow_handler_the_next_jobs_go_to_the_workers(void **state)
{
    (void)state;
    relay_on();
    H.ms[0] = 1;
    bh__job_t *a = event(1), *b = event(2);
    bh__run_add(&run, a);
    bh__run_add(&run, b);
    assert_int_equal(bh__run_lead(&run), 1);
    assert_mark(1, "handler", a);
    assert_mark(2, "settled", a);
    assert_int_equal(fio_at(3)->op, FIO_REPAY);
    assert_int_equal(fio_at(4)->op, FIO_CQ_ARM);
    assert_int_equal(fio_at(5)->op, FIO_WORKERS_PUSH);
    assert_ptr_equal(fio_at(5)->ptr, b);
    assert_true(run.ewma_ns >= BH__RELAY_CHEAP_NS);
    assert_null(run.batch);
    bh__settle_drop(&st, b);
}

/* No slot free (workers all busy, or jobs queued) or no standby to take
 * over: everything goes to the workers, and a lent slot is repaid. */
static void without_a_slot_or_a_standby_everything_goes_to_the_workers(void **state)
{
    (void)state;
    relay_on();
    fio.no_slot = true;
    bh__job_t *a = event(1);
    bh__run_add(&run, a);
    assert_int_equal(bh__run_lead(&run), 0);
    assert_int_equal(fio_n(), 3);
    assert_false(fio_at(0)->flag);
    assert_int_equal(fio_at(1)->op, FIO_CQ_ARM);
    assert_ptr_equal(fio_at(2)->ptr, a);
    fio_reset();
    fio.no_slot = false;
    atomic_store(&relay.standby, false);
    bh__job_t *b = event(2);
    bh__run_add(&run, b);
    assert_int_equal(bh__run_lead(&run), 0);
    assert_int_equal(fio_n(), 4);
    assert_true(fio_at(0)->flag);
    assert_int_equal(fio_at(1)->op, FIO_REPAY);
    assert_ptr_equal(fio_at(3)->ptr, b);
    assert_int_equal(H.calls, 0);
    bh__settle_drop(&st, a);
    bh__settle_drop(&st, b);
}

/* The standby took the lead while a handler ran: the old leader hands its
 * job back like a worker (urgent), repays the slot, leaves the rest of the
 * batch to the new leader and touches nothing else. */
static void a_lead_taken_during_a_handler_leaves_the_rest_to_the_new_leader(void **state)
{
    (void)state;
    relay_on();
    H.take[0] = true;
    bh__job_t *a = event(1), *b = event(2);
    bh__run_add(&run, a);
    bh__run_add(&run, b);
    assert_int_equal(bh__run_lead(&run), -1);
    assert_int_equal(fio_n(), 4);
    assert_mark(1, "handler", a);
    assert_int_equal(fio_at(2)->op, FIO_CQ_PUSH);
    assert_ptr_equal(fio_at(2)->ptr, a);
    assert_true(fio_at(2)->flag);
    assert_int_equal(fio_at(3)->op, FIO_REPAY);
    assert_int_equal(bh__relay_strays(&relay), 0);
    assert_false(atomic_load(&relay.standby)); /* the taker leads */
    assert_ptr_equal(run.batch, b);
    assert_int_equal(run.batch_n, 1);
    /* Only a running handler can be taken: not between two. */
    assert_false(bh__relay_take(&relay, atomic_load(&relay.word)));
    bh__settle_drop(&st, a);
    bh__settle_drop(&st, b);
}

/* -- inline mode (workers = 0) ---------------------------------------------------- */

static void inline_runs_each_handler_then_settles_it_in_order(void **state)
{
    (void)state;
    run.inline_ = true;
    bh__job_t *a = event(1), *b = event(2), *c = job_of(BH_KIND_EVENT, 3, "bad", 1);
    bh__run_add(&run, a);
    bh__run_add(&run, b);
    bh__run_add(&run, c);
    bh__run_flush(&run);
    /* All of it happened within the flush, on this thread, one by one. */
    assert_int_equal(fio_n(), 5);
    assert_mark(0, "handler", a);
    assert_mark(1, "settled", a);
    assert_mark(2, "handler", b);
    assert_mark(3, "settled", b);
    assert_mark(4, "settled", c); /* undecodable: no handler */
    assert_int_equal(fio_count(FIO_CQ_ARM) + fio_count(FIO_WORKERS_PUSH), 0);
    assert_null(run.batch);
    assert_int_equal(st.inflight, 0);
    assert_int_equal(fl_count(), 0);
}

/* A handler that takes BH__INLINE_SLOW_MS or more holds the I/O thread up:
 * logged, naming it. */
static void slow_inline_handler_is_logged(void **state)
{
    (void)state;
    run.inline_ = true;
    H.ms[0] = 5;
    H.ms[1] = BH__INLINE_SLOW_MS;
    H.ms[2] = BH__INLINE_SLOW_MS - 1;
    bh__run_add(&run, event(1));
    bh__run_add(&run, job_of(BH_KIND_COMMAND, 2, NULL, 1));
    bh__run_add(&run, event(3));
    H.result[1] = true;
    bh__run_flush(&run);
    assert_int_equal(H.calls, 3);
    assert_int_equal(fl_count(), 1);
    const fl_rec_t *r = fl_find(BH_WARNING, "handler for command 'ping.Echo' ran 100 ms on the "
                                            "I/O thread (workers = 0)");
    assert_non_null(r);
    assert_non_null(strstr(r->text, "give this service workers"));
    assert_string_equal(r->conv, "c1");
}

/* -- giving jobs back -------------------------------------------------------------- */

/* A drain: the jobs no worker started are requeued for other instances,
 * but only those whose tag belongs to this connection. */
static void give_back_requeues_only_this_generations_jobs(void **state)
{
    (void)state;
    conn.gen = 2;
    bh__job_t *a = job_of(BH_KIND_EVENT, 1, NULL, 2), *b = job_of(BH_KIND_EVENT, 2, NULL, 1),
              *c = job_of(BH_KIND_EVENT, 3, NULL, 2);
    a->next = b;
    b->next = c;
    fio.queued = a;
    bh__run_give_back(&run, true);
    assert_int_equal(fio_count(FIO_WORKERS_TAKE), 1);
    assert_int_equal(fio_count(FIO_REJECT), 2);
    assert_int_equal(fio_nth(FIO_REJECT, 0)->tag, 1);
    assert_true(fio_nth(FIO_REJECT, 0)->flag);
    assert_int_equal(fio_nth(FIO_REJECT, 1)->tag, 3);
    assert_true(fio_nth(FIO_REJECT, 1)->flag);
    assert_int_equal(fio_count(FIO_ACK), 0);
    assert_int_equal(st.inflight, 0);
    assert_int_equal(H.calls, 0);
}

/* A hold (a swap) takes back what no worker started, in front of this
 * poll's jobs, and hands nothing over until it is lifted; with nothing
 * queued and nothing batched, jobs added meanwhile still make one list. */
static void hold_keeps_every_unstarted_job_in_order_until_lifted(void **state)
{
    (void)state;
    bh__run_hold(&run); /* nothing queued, nothing batched */
    bh__job_t *a = event(1), *b = event(2);
    bh__run_add(&run, a);
    bh__run_add(&run, b);
    bh__run_flush(&run);
    assert_int_equal(fio_count(FIO_WORKERS_PUSH), 0);
    run.hold = false;
    bh__run_flush(&run);
    assert_int_equal(fio_count(FIO_WORKERS_PUSH), 1);
    assert_ptr_equal(fio_nth(FIO_WORKERS_PUSH, 0)->ptr, a);
    assert_int_equal(fio_nth(FIO_WORKERS_PUSH, 0)->n, 2);
    assert_string_equal(fio_nth(FIO_WORKERS_PUSH, 0)->text, "list ok");

    /* Taken back from the workers, ahead of a job of this poll. */
    bh__job_t *c = event(3);
    fio.queued = a; /* a, b: still queued, not started */
    bh__run_add(&run, c);
    bh__run_hold(&run);
    assert_ptr_equal(run.batch, a);
    assert_ptr_equal(b->next, c);
    assert_int_equal(run.batch_n, 3);
    bh__job_t *d = event(4);
    bh__run_add(&run, d);
    assert_ptr_equal(c->next, d);
    run.hold = false;
    bh__run_flush(&run);
    assert_ptr_equal(fio_nth(FIO_WORKERS_PUSH, 1)->ptr, a);
    assert_int_equal(fio_nth(FIO_WORKERS_PUSH, 1)->n, 4);
    assert_string_equal(fio_nth(FIO_WORKERS_PUSH, 1)->text, "list ok");
    for (bh__job_t *j = a, *n; j; j = n) {
        n = j->next;
        bh__settle_drop(&st, j);
    }
    assert_int_equal(st.inflight, 0);
}

/* The connection is gone: the broker redelivers them by itself. */
static void give_back_without_requeue_only_drops(void **state)
{
    (void)state;
    bh__job_t *a = event(1), *b = event(2);
    a->next = b;
    fio.queued = a;
    bh__run_give_back(&run, false);
    assert_int_equal(fio_count(FIO_REJECT), 0);
    assert_int_equal(fio_n(), 3);
    assert_mark(1, "dropped", a);
    assert_mark(2, "dropped", b);
    assert_int_equal(st.inflight, 0);
}

/* -- the guard ---------------------------------------------------------------------- */

static void start_guard(bh__guard_t *g)
{
    char err[200];
    bh__config_t cfg = {.crash_limit = 1};
    bh__svc_conf_t conf = {.service = "ping"};
    assert_int_equal(bh__guard_start(g, &cfg, &conf, fl_logger(), err, sizeof err), BH_OK);
    run.guard = g;
}

static void the_handler_runs_in_the_journal_and_leaves_it_when_done(void **state)
{
    bh__guard_t g;
    bh__journal_run_t r[4];
    (void)state;
    start_guard(&g);
    bh__job_t *j = event(1);
    bh__run_one(&run, j);
    assert_int_equal(H.journaled, 1);
    assert_int_not_equal(j->ident, 0);
    assert_int_equal(bh__journal_running(g.journal, r, 4), 0);
    bh__settle_drop(&st, j);
    bh__guard_free(&g);
}

/* A message the journal counted crash_limit times never reaches a
 * handler: it is rejected without requeue at once. */
static void a_message_at_crash_limit_is_dead_lettered_instead_of_queued(void **state)
{
    bh__guard_t g;
    (void)state;
    start_guard(&g);
    bh__job_t *j = event(7);
    bh__journal_entry(g.journal, bh__journal_ident(j->d, 0), true)->crashes = 1;
    bh__run_add(&run, j);
    assert_null(run.batch);
    assert_int_equal(fio_count(FIO_REJECT), 1);
    assert_int_equal(fio_nth(FIO_REJECT, 0)->tag, 7);
    assert_false(fio_nth(FIO_REJECT, 0)->flag);
    assert_int_equal(st.inflight, 0);
    assert_non_null(fl_find(BH_EMERGENCY, "Giving up on OrderPlaced: it crashed the host 1 time"));
    /* Others are queued as ever. */
    bh__run_add(&run, event(8));
    assert_int_equal(run.batch_n, 1);
    bh__settle_drop(&st, run.batch);
    bh__guard_free(&g);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup(f, setup)
    const struct CMUnitTest tests[] = {
        T(the_handler_runs_in_its_span),
        T(one_call_decodes_calls_and_frees_the_payload),
        T(undecodable_payload_never_reaches_the_handler),
        T(non_outcome_becomes_retry_with_an_alert),
        T(command_done_without_result_is_warned_about),
        T(command_with_result_or_not_done_is_not_warned_about),
        T(batch_handed_to_the_workers_after_arming_the_queue),
        T(worker_pushes_the_job_urgent_when_it_must_be),
        T(job_refused_by_a_closed_queue_is_freed),
        T(collect_settles_each_finished_job_in_order),
        T(leader_runs_cheap_jobs_itself_on_a_lent_slot),
        T(after_a_slow_handler_the_next_jobs_go_to_the_workers),
        T(without_a_slot_or_a_standby_everything_goes_to_the_workers),
        T(a_lead_taken_during_a_handler_leaves_the_rest_to_the_new_leader),
        T(inline_runs_each_handler_then_settles_it_in_order),
        T(slow_inline_handler_is_logged),
        T(hold_keeps_every_unstarted_job_in_order_until_lifted),
        T(give_back_requeues_only_this_generations_jobs),
        T(give_back_without_requeue_only_drops),
        T(the_handler_runs_in_the_journal_and_leaves_it_when_done),
        T(a_message_at_crash_limit_is_dead_lettered_instead_of_queued),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
