/* test_settle.c -- from a finished job to its ack, reject or retry.
 *
 * settle.c with job.c real; acks, outbox and conn are fake_io.c, the logger
 * fake_log.c, and bh__retry_decide a fake here that answers what the test
 * scripts (retry.c has its own test). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_io.h"
#include "fake_log.h"
#include "job_util.h"
#include "settle.h"

/* -- the fake retry policy ------------------------------------------------- */

static struct {
    bh__retry_action_t action;
    unsigned calls;
    const bh__job_t *job;
} R;

bh__retry_action_t bh__retry_decide(bh__retry_t *r, const bh__job_t *job, bh__out_t **copy)
{
    (void)r;
    R.calls++;
    R.job = job;
    *copy = NULL;
    if (R.action == BH__RETRY_COPY) {
        *copy =
            bh__out_new(BH__EX_DEFAULT, "ping.commands.retry.100", "", "c1", "", "", NULL, "", 0);
        assert_non_null(*copy);
        (*copy)->id = 77;
        (*copy)->mandatory = true;
    }
    return R.action;
}

/* -- fixtures ---------------------------------------------------------------- */

static bh__conn_t conn;
static bh__outbox_t outbox;
static bh__acker_t acker;
static bh__retry_t retry;
static bh__settle_t st;

static int setup(void **state)
{
    (void)state;
    fio_reset();
    fl_reset();
    memset(&R, 0, sizeof R);
    conn = (bh__conn_t){.gen = 1};
    st = (bh__settle_t){
        .conn = &conn, .out = &outbox, .acks = &acker, .retry = &retry, .log = fl_logger()};
    return 0;
}

/* A job as dispatch makes it (inflight counted), as its handler left it. */
static bh__job_t *job(uint64_t tag, bh_outcome_t outcome)
{
    static const bh__hdr_t h[] = {{JU_STR("conversation_id", "c1")}};
    ju_msg_t m = {.tag = tag,
                  .exchange = "commands",
                  .routing_key = "ping.Echo",
                  .content_type = "application/cbor",
                  .reply_to = "caller.Back",
                  .headers = h,
                  .n_headers = 1,
                  .conversation_id = "c1"};
    bh__job_t *j = ju_job(&m, BH_KIND_COMMAND, NULL, 1);
    j->outcome = outcome;
    st.inflight++;
    return j;
}

/* Nothing was acked, rejected or sent. */
static void assert_nothing_sent(void)
{
    assert_int_equal(fio_count(FIO_ACK), 0);
    assert_int_equal(fio_count(FIO_REJECT), 0);
}

static void assert_rejected(uint64_t tag, bool requeue)
{
    assert_int_equal(fio_count(FIO_ACK), 0);
    assert_int_equal(fio_count(FIO_REJECT), 1);
    assert_int_equal(fio_nth(FIO_REJECT, 0)->tag, tag);
    assert_int_equal(fio_nth(FIO_REJECT, 0)->flag, requeue);
}

/* -- BH_DONE -------------------------------------------------------------- */

static void done_without_publishes_is_acked_at_once(void **state)
{
    (void)state;
    bh__settle_complete(&st, job(5, BH_DONE));
    assert_int_equal(fio_n(), 1);
    assert_int_equal(fio_nth(FIO_ACK, 0)->tag, 5);
    assert_int_equal(st.inflight, 0);
    assert_int_equal(fl_count(), 0);
}

static void done_is_acked_only_once_every_publish_is_confirmed(void **state)
{
    (void)state;
    bh__job_t *j = job(5, BH_DONE);
    bh__out_t *a = ju_add_out(j, BH__EX_EVENTS, "Echoed");
    bh__out_t *b = ju_add_out(j, BH__EX_COMMANDS, "caller.Back");
    bh__settle_complete(&st, j);
    /* Both go out, in the order published; nothing is acked yet. */
    assert_int_equal(fio_count(FIO_SEND), 2);
    assert_ptr_equal(fio.sent[0], a);
    assert_ptr_equal(fio.sent[1], b);
    assert_null(j->outs);
    assert_int_equal(j->pending, 2);
    assert_int_equal(fio_count(FIO_ACK), 0);
    assert_int_equal(st.inflight, 1);

    bh__settle_confirmed(&st, b);
    assert_int_equal(fio_count(FIO_ACK), 0);
    assert_int_equal(st.inflight, 1);
    bh__settle_confirmed(&st, a);
    assert_int_equal(fio_count(FIO_ACK), 1);
    assert_int_equal(fio_nth(FIO_ACK, 0)->tag, 5);
    assert_int_equal(st.inflight, 0);
}

/* A publish nobody waits for (a log, a message of a dropped job). */
static void confirm_of_a_publish_without_job_just_frees_it(void **state)
{
    (void)state;
    bh__out_t *o = bh__out_new(BH__EX_EVENTS, "Echoed", "", "c1", "", "", NULL, "", 0);
    bh__settle_confirmed(&st, o);
    assert_int_equal(fio_n(), 0);
}

/* A mandatory publish the broker returned was logged by the outbox; the
 * message that caused it is still done. Only a retry copy matters. */
static void returned_ordinary_publish_still_acks(void **state)
{
    (void)state;
    bh__job_t *j = job(5, BH_DONE);
    bh__out_t *o = ju_add_out(j, BH__EX_COMMANDS, "nobody.Listens");
    bh__settle_complete(&st, j);
    o->returned = true;
    bh__settle_confirmed(&st, o);
    assert_int_equal(fio_count(FIO_ACK), 1);
    assert_int_equal(fio_count(FIO_REJECT), 0);
}

/* -- BH_REJECT and undecodable payloads -------------------------------------- */

static void reject_dead_letters_with_a_warning(void **state)
{
    (void)state;
    bh__settle_complete(&st, job(6, BH_REJECT));
    assert_rejected(6, false);
    assert_int_equal(fl_count(), 1);
    assert_non_null(fl_find(BH_WARNING, "handler rejected command 'ping.Echo': dead-lettered"));
    assert_string_equal(fl_nth(0)->conv, "c1");
    assert_int_equal(st.inflight, 0);
}

static void reject_waits_for_what_the_handler_published(void **state)
{
    (void)state;
    bh__job_t *j = job(6, BH_REJECT);
    ju_add_out(j, BH__EX_EVENTS, "Failed");
    bh__settle_complete(&st, j);
    assert_int_equal(fio_count(FIO_SEND), 1);
    assert_int_equal(fio_count(FIO_REJECT), 0);
    bh__settle_confirmed(&st, fio.sent[0]);
    assert_rejected(6, false);
    assert_true(fio_pos(FIO_SEND, 0) < fio_pos(FIO_REJECT, 0));
}

static void undecodable_payload_is_rejected_with_an_emergency(void **state)
{
    (void)state;
    bh__job_t *j = job(7, 0);
    strcpy(j->err, "invalid CBOR: truncated item at byte 3");
    bh__settle_complete(&st, j);
    assert_rejected(7, false);
    assert_int_equal(fl_count(), 1);
    assert_non_null(fl_find(BH_EMERGENCY, "cannot decode payload of 'ping.Echo' (content type "
                                          "'application/cbor'): invalid CBOR: truncated item at "
                                          "byte 3; rejecting it"));
    assert_int_equal(st.inflight, 0);
}

/* -- BH_RETRY ------------------------------------------------------------------ */

static void retry_follows_the_retry_decision(void **state)
{
    (void)state;
    R.action = BH__RETRY_REQUEUE;
    bh__job_t *j = job(8, BH_RETRY);
    bh__settle_complete(&st, j);
    assert_int_equal(R.calls, 1);
    assert_ptr_equal(R.job, j);
    assert_rejected(8, true);
    assert_int_equal(st.inflight, 0);

    fio_reset();
    R.action = BH__RETRY_GIVE_UP;
    bh__settle_complete(&st, job(9, BH_RETRY));
    assert_int_equal(R.calls, 2);
    assert_rejected(9, false);
    assert_int_equal(st.inflight, 0);
}

/* The copy goes out first; the original is acked once the copy is safe. */
static void retry_copy_is_published_then_the_original_acked(void **state)
{
    (void)state;
    R.action = BH__RETRY_COPY;
    bh__job_t *j = job(10, BH_RETRY);
    bh__settle_complete(&st, j);
    assert_int_equal(fio_count(FIO_SEND), 1);
    bh__out_t *copy = fio.sent[0];
    assert_string_equal(copy->routing_key, "ping.commands.retry.100");
    assert_ptr_equal(copy->job, j);
    assert_int_equal(j->pending, 1);
    assert_nothing_sent();
    assert_int_equal(st.inflight, 1);
    bh__settle_confirmed(&st, copy);
    assert_int_equal(fio_count(FIO_ACK), 1);
    assert_int_equal(fio_nth(FIO_ACK, 0)->tag, 10);
    assert_int_equal(fio_count(FIO_REJECT), 0);
    assert_int_equal(R.calls, 1); /* decided once, not again on the confirm */
    assert_int_equal(st.inflight, 0);
}

/* Its retry queue is gone: the broker returned the copy, then confirmed it.
 * The original is dead-lettered, not acked (and so not lost). */
static void returned_retry_copy_dead_letters_the_original(void **state)
{
    (void)state;
    R.action = BH__RETRY_COPY;
    bh__settle_complete(&st, job(11, BH_RETRY));
    bh__out_t *copy = fio.sent[0];
    copy->returned = true;
    bh__settle_confirmed(&st, copy);
    assert_rejected(11, false);
    assert_non_null(fl_find(BH_EMERGENCY, "Giving up on ping.Echo: its retry copy to "
                                          "'ping.commands.retry.100' was returned"));
    assert_int_equal(st.inflight, 0);
}

/* -- what is not settled ---------------------------------------------------- */

/* The tag belongs to a connection that is gone: the broker redelivers. */
static void stale_generation_is_dropped(void **state)
{
    (void)state;
    const bh_outcome_t outcomes[] = {BH_DONE, BH_REJECT, BH_RETRY, 0};
    conn.gen = 2;
    R.action = BH__RETRY_COPY;
    for (size_t i = 0; i < 4; i++) bh__settle_complete(&st, job(12 + i, outcomes[i]));
    assert_int_equal(fio_n(), 0);
    assert_int_equal(R.calls, 0);
    assert_int_equal(st.inflight, 0);
}

static void connection_down_is_dropped(void **state)
{
    (void)state;
    fio.ready = false;
    R.action = BH__RETRY_COPY;
    bh__settle_complete(&st, job(12, BH_DONE));
    bh__settle_complete(&st, job(13, BH_RETRY));
    assert_int_equal(fio_n(), 0);
    assert_int_equal(R.calls, 0);
    assert_int_equal(st.inflight, 0);
}

/* The connection was lost while the publishes waited for confirms: they are
 * published again on the next one, and their confirms settle nothing. */
static void generation_moving_on_while_confirms_wait_drops_the_job(void **state)
{
    (void)state;
    bh__job_t *j = job(14, BH_DONE);
    ju_add_out(j, BH__EX_EVENTS, "Echoed");
    bh__settle_complete(&st, j);
    assert_int_equal(fio_count(FIO_SEND), 1);
    conn.gen = 2;
    bh__settle_confirmed(&st, fio.sent[0]);
    assert_nothing_sent();
    assert_int_equal(st.inflight, 0);
}

static void drop_frees_and_uncounts(void **state)
{
    (void)state;
    bh__job_t *a = job(1, BH_DONE), *b = job(2, BH_DONE);
    ju_add_out(b, BH__EX_EVENTS, "Never.Sent"); /* freed with its job */
    assert_int_equal(st.inflight, 2);
    bh__settle_drop(&st, a);
    assert_int_equal(st.inflight, 1);
    bh__settle_drop(&st, b);
    assert_int_equal(st.inflight, 0);
    assert_int_equal(fio_n(), 0);
}

/* Jobs in flight stay counted until their last confirm, in any order. */
static void inflight_counts_jobs_until_they_are_settled(void **state)
{
    (void)state;
    bh__job_t *a = job(1, BH_DONE), *b = job(2, BH_REJECT), *c = job(3, BH_DONE);
    ju_add_out(a, BH__EX_EVENTS, "A");
    ju_add_out(b, BH__EX_EVENTS, "B");
    bh__settle_complete(&st, a);
    bh__settle_complete(&st, b);
    bh__settle_complete(&st, c); /* nothing to wait for */
    assert_int_equal(st.inflight, 2);
    bh__settle_confirmed(&st, fio.sent[1]);
    assert_int_equal(st.inflight, 1);
    bh__settle_confirmed(&st, fio.sent[0]);
    assert_int_equal(st.inflight, 0);
    assert_int_equal(fio_nth(FIO_ACK, 0)->tag, 3);
    assert_int_equal(fio_nth(FIO_REJECT, 0)->tag, 2);
    assert_int_equal(fio_nth(FIO_ACK, 1)->tag, 1);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup(f, setup)
    const struct CMUnitTest tests[] = {
        T(done_without_publishes_is_acked_at_once),
        T(done_is_acked_only_once_every_publish_is_confirmed),
        T(confirm_of_a_publish_without_job_just_frees_it),
        T(returned_ordinary_publish_still_acks),
        T(reject_dead_letters_with_a_warning),
        T(reject_waits_for_what_the_handler_published),
        T(undecodable_payload_is_rejected_with_an_emergency),
        T(retry_follows_the_retry_decision),
        T(retry_copy_is_published_then_the_original_acked),
        T(returned_retry_copy_dead_letters_the_original),
        T(stale_generation_is_dropped),
        T(connection_down_is_dropped),
        T(generation_moving_on_while_confirms_wait_drops_the_job),
        T(drop_frees_and_uncounts),
        T(inflight_counts_jobs_until_they_are_settled),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
