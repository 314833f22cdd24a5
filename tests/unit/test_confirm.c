/* test_confirm.c -- publisher-confirm and consumer-ack bookkeeping.
 * The randomised tests use a fixed seed, printed; set BH_TEST_SEED to replay
 * another one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bushost.h"
#include "confirm.h"

/* -- helpers -------------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rng(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static size_t rng_below(size_t n) { return (size_t)(rng() % n); }

static uint64_t test_seed(void)
{
    const char *env = getenv("BH_TEST_SEED");
    uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : 20240611u;
    print_message("seed=%llu (BH_TEST_SEED to replay)\n", (unsigned long long)seed);
    return seed;
}

/* Items are slots of one array, so an item tells its index. */
#define NITEMS 10000
static int items[NITEMS];

static int item_index(const void *item) { return (int)((const int *)item - items); }

/* What settle / reset callbacks saw. */
typedef struct seen {
    int idx[NITEMS];
    bool acked[NITEMS];
    size_t n;
} seen_t;

static seen_t seen;

static void on_settle(void *ud, void *item, bool acked)
{
    assert_ptr_equal(ud, &seen);
    assert_true(seen.n < NITEMS);
    seen.idx[seen.n] = item_index(item);
    seen.acked[seen.n] = acked;
    seen.n++;
}

static void on_reset(void *ud, void *item)
{
    assert_ptr_equal(ud, &seen);
    assert_true(seen.n < NITEMS);
    seen.idx[seen.n++] = item_index(item);
}

static void assert_seen(const int *want, size_t n)
{
    assert_int_equal(seen.n, n);
    for (size_t i = 0; i < n; i++) assert_int_equal(seen.idx[i], want[i]);
    seen.n = 0;
}

/* Adds items[0..n-1]; item i gets seq first + i. */
static void add_items(bh__confirms_t *c, int n, uint64_t first)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(bh__confirms_add(c, &items[i]), first + (uint64_t)i);
}

static int setup_confirms(void **state)
{
    static bh__confirms_t c;
    bh__confirms_init(&c);
    seen.n = 0;
    *state = &c;
    return 0;
}

static int teardown_confirms(void **state)
{
    bh__confirms_free(*state);
    return 0;
}

/* -- publisher confirms --------------------------------------------------- */

static void confirms_numbered_from_one(void **state)
{
    bh__confirms_t *c = *state;
    assert_int_equal(bh__confirms_pending(c), 0);
    add_items(c, 3, 1);
    assert_int_equal(bh__confirms_pending(c), 3);
}

static void confirms_null_item_refused_without_using_a_seq(void **state)
{
    bh__confirms_t *c = *state;
    assert_int_equal(bh__confirms_add(c, NULL), 0);
    assert_int_equal(bh__confirms_pending(c), 0);
    assert_int_equal(bh__confirms_add(c, &items[0]), 1);
}

static void confirms_single_acks_in_order(void **state)
{
    bh__confirms_t *c = *state;
    add_items(c, 3, 1);
    for (uint64_t t = 1; t <= 3; t++)
        assert_int_equal(bh__confirms_settle(c, t, false, on_settle, &seen, true), 1);
    assert_seen((int[]){0, 1, 2}, 3);
    assert_int_equal(bh__confirms_pending(c), 0);
}

static void confirms_multiple_settles_everything_up_to_tag(void **state)
{
    bh__confirms_t *c = *state;
    add_items(c, 5, 1);
    assert_int_equal(bh__confirms_settle(c, 3, true, on_settle, &seen, true), 3);
    assert_seen((int[]){0, 1, 2}, 3);
    assert_int_equal(bh__confirms_pending(c), 2);
    assert_int_equal(bh__confirms_settle(c, 5, true, on_settle, &seen, true), 2);
    assert_seen((int[]){3, 4}, 2);
    assert_int_equal(bh__confirms_pending(c), 0);
}

static void confirms_out_of_order_singles_then_multiple_skips_settled(void **state)
{
    bh__confirms_t *c = *state;
    add_items(c, 6, 1);
    assert_int_equal(bh__confirms_settle(c, 3, false, on_settle, &seen, true), 1);
    assert_int_equal(bh__confirms_settle(c, 1, false, on_settle, &seen, true), 1);
    assert_int_equal(bh__confirms_settle(c, 5, false, on_settle, &seen, true), 1);
    assert_seen((int[]){2, 0, 4}, 3);
    assert_int_equal(bh__confirms_pending(c), 3);
    assert_int_equal(bh__confirms_settle(c, 5, true, on_settle, &seen, true), 2);
    assert_seen((int[]){1, 3}, 2);
    assert_int_equal(bh__confirms_pending(c), 1);
    /* Numbering goes on after the front was dropped. */
    assert_int_equal(bh__confirms_add(c, &items[6]), 7);
    assert_int_equal(bh__confirms_settle(c, 7, true, on_settle, &seen, true), 2);
    assert_seen((int[]){5, 6}, 2);
}

static void confirms_nack_flag_and_user_data_passed_through(void **state)
{
    bh__confirms_t *c = *state;
    add_items(c, 3, 1);
    bh__confirms_settle(c, 2, true, on_settle, &seen, false); /* on_settle checks ud */
    bh__confirms_settle(c, 3, false, on_settle, &seen, true);
    assert_int_equal(seen.n, 3);
    assert_false(seen.acked[0]);
    assert_false(seen.acked[1]);
    assert_true(seen.acked[2]);
}

static void confirms_duplicate_and_unknown_tags_ignored(void **state)
{
    bh__confirms_t *c = *state;
    add_items(c, 4, 1);
    assert_int_equal(bh__confirms_settle(c, 2, false, on_settle, &seen, true), 1);
    assert_int_equal(bh__confirms_settle(c, 2, false, on_settle, &seen, true), 0);
    assert_int_equal(bh__confirms_settle(c, 0, false, on_settle, &seen, true), 0);
    assert_int_equal(bh__confirms_settle(c, 0, true, on_settle, &seen, true), 0);
    /* Beyond the last seq handed out: not even the known ones below it. */
    assert_int_equal(bh__confirms_settle(c, 5, false, on_settle, &seen, true), 0);
    assert_int_equal(bh__confirms_settle(c, 99, true, on_settle, &seen, true), 0);
    assert_int_equal(bh__confirms_settle(c, UINT64_MAX, true, on_settle, &seen, true), 0);
    assert_seen((int[]){1}, 1);
    assert_int_equal(bh__confirms_pending(c), 3);
    /* Below the front after it moved on. */
    assert_int_equal(bh__confirms_settle(c, 1, false, on_settle, &seen, true), 1);
    assert_int_equal(bh__confirms_settle(c, 1, true, on_settle, &seen, true), 0);
    assert_int_equal(bh__confirms_settle(c, 2, true, on_settle, &seen, true), 0);
    assert_seen((int[]){0}, 1);
    assert_int_equal(bh__confirms_pending(c), 2);
}

static void confirms_settle_without_callback_still_settles(void **state)
{
    bh__confirms_t *c = *state;
    add_items(c, 3, 1);
    assert_int_equal(bh__confirms_settle(c, 3, true, NULL, NULL, true), 3);
    assert_int_equal(bh__confirms_pending(c), 0);
}

/* A nack is retried from inside the callback: the ring grows mid-settle. */
static int republished;
static void republish_on_nack(void *ud, void *item, bool acked)
{
    bh__confirms_t *c = ud;
    assert_false(acked);
    for (int k = 0; k < 20; k++) { /* many, to force growth */
        uint64_t seq = bh__confirms_add(c, &items[1000 + republished++]);
        assert_int_not_equal(seq, 0);
    }
    seen.idx[seen.n++] = item_index(item);
}

static void confirms_callback_may_publish_during_settle(void **state)
{
    bh__confirms_t *c = *state;
    add_items(c, 5, 1);
    republished = 0;
    assert_int_equal(bh__confirms_settle(c, 4, true, republish_on_nack, c, false), 4);
    assert_seen((int[]){0, 1, 2, 3}, 4);
    assert_int_equal(bh__confirms_pending(c), 1 + 80);
    /* The republished items follow seq 5 in the order they were added. */
    assert_int_equal(bh__confirms_settle(c, 5 + 80, true, on_settle, &seen, true), 81);
    assert_int_equal(seen.idx[0], 4);
    for (int k = 0; k < 80; k++) assert_int_equal(seen.idx[1 + k], 1000 + k);
}

static void confirms_grow_while_wrapped_keeps_order(void **state)
{
    bh__confirms_t *c = *state;
    /* Move the front into the ring, then add past its capacity. */
    add_items(c, 20, 1);
    assert_int_equal(bh__confirms_settle(c, 15, true, on_settle, &seen, true), 15);
    seen.n = 0;
    for (int i = 20; i < 120; i++)
        assert_int_equal(bh__confirms_add(c, &items[i]), (uint64_t)i + 1);
    assert_true(c->cap >= 105);
    assert_int_equal(bh__confirms_settle(c, 120, true, on_settle, &seen, true), 105);
    assert_int_equal(seen.n, 105);
    for (int i = 0; i < 105; i++) assert_int_equal(seen.idx[i], 15 + i);
}

/* 10,000 publishes with settles interleaved at random (singles in any order,
 * multiples, duplicates, unknown tags), checked against a model. */
static bool settled_model[NITEMS + 1]; /* by seq */
static uint64_t last_seen_seq;

static void on_settle_checked(void *ud, void *item, bool acked)
{
    (void)ud;
    (void)acked;
    uint64_t seq = (uint64_t)item_index(item) + 1;
    assert_false(settled_model[seq]); /* settled once */
    assert_true(seq > last_seen_seq); /* in seq order within one settle */
    settled_model[seq] = true;
    last_seen_seq = seq;
}

static void confirms_random_settles_each_item_once_in_order(void **state)
{
    bh__confirms_t *c = *state;
    rng_state = test_seed();
    memset(settled_model, 0, sizeof(settled_model));
    uint64_t added = 0;
    size_t pending = 0, max_pending = 0;
    while (added < NITEMS || pending > 0) {
        size_t r = rng_below(100);
        if (added < NITEMS && (r < 50 || pending == 0)) {
            assert_int_equal(bh__confirms_add(c, &items[added]), added + 1);
            added++;
            pending++;
        } else {
            uint64_t tag = 1 + rng_below(added + 3); /* may be unknown */
            bool multiple = r >= 93;
            size_t want = 0;
            if (tag <= added)
                for (uint64_t s = multiple ? 1 : tag; s <= tag; s++) want += !settled_model[s];
            last_seen_seq = 0;
            assert_int_equal(bh__confirms_settle(c, tag, multiple, on_settle_checked, NULL, true),
                             want);
            pending -= want;
        }
        assert_int_equal(bh__confirms_pending(c), pending);
        if (pending > max_pending) max_pending = pending;
    }
    for (uint64_t s = 1; s <= NITEMS; s++) assert_true(settled_model[s]);
    assert_true(max_pending > 32); /* it did grow past the first capacity */
}

static void confirms_reset_returns_unsettled_in_order_and_renumbers(void **state)
{
    bh__confirms_t *c = *state;
    add_items(c, 6, 1);
    bh__confirms_settle(c, 2, false, NULL, NULL, true);
    bh__confirms_settle(c, 4, false, NULL, NULL, true);
    bh__confirms_reset(c, on_reset, &seen);
    assert_seen((int[]){0, 2, 4, 5}, 4);
    assert_int_equal(bh__confirms_pending(c), 0);
    assert_int_equal(bh__confirms_add(c, &items[7]), 1);
    /* A late frame from the old channel's numbering does not settle a new one. */
    assert_int_equal(bh__confirms_settle(c, 5, true, on_settle, &seen, true), 0);
    assert_int_equal(bh__confirms_settle(c, 1, false, on_settle, &seen, true), 1);
    assert_seen((int[]){7}, 1);
}

static void republish_on_reset(void *ud, void *item)
{
    bh__confirms_t *c = ud;
    assert_int_equal(bh__confirms_add(c, item), (uint64_t)++republished);
}

static void confirms_reset_callback_may_publish_with_new_numbers(void **state)
{
    bh__confirms_t *c = *state;
    add_items(c, 50, 1);
    bh__confirms_settle(c, 10, true, NULL, NULL, true);
    republished = 0;
    bh__confirms_reset(c, republish_on_reset, c);
    assert_int_equal(republished, 40);
    assert_int_equal(seen.n, 0);
    assert_int_equal(bh__confirms_pending(c), 40);
    assert_int_equal(bh__confirms_settle(c, 40, true, on_settle, &seen, true), 40);
    assert_int_equal(seen.n, 40);
    for (int i = 0; i < 40; i++) assert_int_equal(seen.idx[i], 10 + i);
}

static void confirms_reset_and_free_of_empty_tracker(void **state)
{
    bh__confirms_t *c = *state;
    bh__confirms_reset(c, on_reset, &seen);
    assert_int_equal(seen.n, 0);
    bh__confirms_free(c);
    bh__confirms_free(c); /* twice is harmless: free leaves it initialised */
    assert_int_equal(bh__confirms_add(c, &items[0]), 1);
    bh__confirms_reset(c, NULL, NULL); /* drops the items without a callback */
    assert_int_equal(bh__confirms_pending(c), 0);
}

/* -- consumer acks -------------------------------------------------------- */

static int setup_acks(void **state)
{
    static bh__acks_t a;
    bh__acks_init(&a);
    *state = &a;
    return 0;
}

static int teardown_acks(void **state)
{
    bh__acks_free(*state);
    return 0;
}

static void deliver_range(bh__acks_t *a, uint64_t from, uint64_t to)
{
    for (uint64_t t = from; t <= to; t++) assert_int_equal(bh__acks_delivered(a, t), 0);
}

/* next() must say "nothing": 0 and *single = 0. */
static void assert_nothing_to_send(bh__acks_t *a)
{
    uint64_t single = 99;
    assert_int_equal(bh__acks_next(a, &single), 0);
    assert_int_equal(single, 0);
}

static void assert_multiple(bh__acks_t *a, uint64_t tag)
{
    uint64_t single = 99;
    assert_int_equal(bh__acks_next(a, &single), tag);
    assert_int_equal(single, 0);
}

static void assert_single(bh__acks_t *a, uint64_t tag)
{
    uint64_t single = 99;
    assert_int_equal(bh__acks_next(a, &single), 0);
    assert_int_equal(single, tag);
}

static void acks_nothing_to_send_while_all_run(void **state)
{
    bh__acks_t *a = *state;
    assert_nothing_to_send(a);
    deliver_range(a, 1, 3);
    assert_int_equal(bh__acks_outstanding(a), 3);
    assert_nothing_to_send(a);
    assert_int_equal(bh__acks_outstanding(a), 3);
}

static void acks_contiguous_run_is_one_multiple(void **state)
{
    bh__acks_t *a = *state;
    deliver_range(a, 1, 5);
    const uint64_t order[] = {3, 1, 5, 2, 4};
    for (size_t i = 0; i < 5; i++) bh__acks_finished(a, order[i], true);
    assert_int_equal(bh__acks_outstanding(a), 5); /* finished, not yet acked */
    assert_multiple(a, 5);
    assert_nothing_to_send(a);
    assert_int_equal(bh__acks_outstanding(a), 0);
}

static void acks_multiple_stops_before_a_running_tag(void **state)
{
    bh__acks_t *a = *state;
    deliver_range(a, 1, 5);
    bh__acks_finished(a, 1, true);
    bh__acks_finished(a, 2, true);
    bh__acks_finished(a, 4, true);
    assert_int_equal(bh__acks_next(a, NULL), 2); /* multiples need no *single */
    assert_int_equal(bh__acks_next(a, NULL), 0); /* 3 runs: 4 waits without single */
    assert_single(a, 4);
    assert_nothing_to_send(a);
    assert_int_equal(bh__acks_outstanding(a), 2);
}

static void acks_running_head_strands_singles_then_head_ack_ends_them(void **state)
{
    bh__acks_t *a = *state;
    deliver_range(a, 1, 5);
    bh__acks_finished(a, 4, true);
    bh__acks_finished(a, 2, true);
    assert_single(a, 2);
    assert_single(a, 4);
    assert_nothing_to_send(a); /* never the same single twice */
    assert_int_equal(bh__acks_outstanding(a), 3);
    bh__acks_finished(a, 3, true);
    assert_single(a, 3);
    assert_nothing_to_send(a);
    bh__acks_finished(a, 1, true);
    /* 1..4 finished and 2..4 already acked: the ack stops at the run's last
     * positive, 1, and the whole run is done with. */
    assert_multiple(a, 1);
    assert_nothing_to_send(a);
    assert_int_equal(bh__acks_outstanding(a), 1);
    bh__acks_finished(a, 5, true);
    assert_multiple(a, 5);
    assert_int_equal(bh__acks_outstanding(a), 0);
}

static void acks_multiple_may_cover_single_acked_tags_between_positives(void **state)
{
    bh__acks_t *a = *state;
    deliver_range(a, 1, 4);
    bh__acks_finished(a, 2, true);
    assert_single(a, 2);
    bh__acks_finished(a, 1, true);
    bh__acks_finished(a, 3, true);
    assert_multiple(a, 3);
    assert_nothing_to_send(a);
    assert_int_equal(bh__acks_outstanding(a), 1);
}

static void acks_negative_inside_run_does_not_block_it(void **state)
{
    bh__acks_t *a = *state;
    deliver_range(a, 1, 5);
    bh__acks_finished(a, 1, true);
    bh__acks_finished(a, 2, false);
    bh__acks_finished(a, 3, true);
    bh__acks_finished(a, 4, false);
    assert_int_equal(bh__acks_outstanding(a), 3); /* 1, 3 and the running 5 */
    assert_multiple(a, 3);                        /* not 4: nothing to ack there */
    assert_nothing_to_send(a);
    assert_int_equal(bh__acks_outstanding(a), 1);
}

static void acks_negative_is_never_singly_acked(void **state)
{
    bh__acks_t *a = *state;
    deliver_range(a, 1, 4);
    bh__acks_finished(a, 2, false);
    bh__acks_finished(a, 3, true);
    bh__acks_finished(a, 4, false);
    assert_single(a, 3);
    assert_nothing_to_send(a);
    assert_int_equal(bh__acks_outstanding(a), 1);
}

static void acks_run_of_only_negatives_sends_nothing_and_is_forgotten(void **state)
{
    bh__acks_t *a = *state;
    deliver_range(a, 1, 3);
    bh__acks_finished(a, 2, false);
    bh__acks_finished(a, 1, false);
    bh__acks_finished(a, 3, false);
    assert_int_equal(bh__acks_outstanding(a), 0);
    assert_nothing_to_send(a);
    assert_int_equal(bh__acks_delivered(a, 4), 0); /* still rising from 3 */
    assert_int_equal(bh__acks_delivered(a, 3), BH_EINVAL);
}

static void acks_head_rejected_leaves_singly_acked_nothing_to_send(void **state)
{
    bh__acks_t *a = *state;
    deliver_range(a, 1, 3);
    bh__acks_finished(a, 2, true);
    bh__acks_finished(a, 3, true);
    assert_single(a, 2);
    assert_single(a, 3);
    bh__acks_finished(a, 1, false);
    assert_nothing_to_send(a);
    assert_int_equal(bh__acks_outstanding(a), 0);
}

static void acks_tags_must_rise(void **state)
{
    bh__acks_t *a = *state;
    assert_int_equal(bh__acks_delivered(a, 0), BH_EINVAL);
    assert_int_equal(bh__acks_delivered(a, 5), 0);
    assert_int_equal(bh__acks_delivered(a, 5), BH_EINVAL);
    assert_int_equal(bh__acks_delivered(a, 4), BH_EINVAL);
    assert_int_equal(bh__acks_delivered(a, UINT64_MAX), BH_EINVAL);
    /* Still refused once everything was acked and the ring is empty. */
    bh__acks_finished(a, 5, true);
    assert_multiple(a, 5);
    assert_int_equal(bh__acks_delivered(a, 5), BH_EINVAL);
    assert_int_equal(bh__acks_delivered(a, 1), BH_EINVAL);
    assert_int_equal(bh__acks_delivered(a, 6), 0);
    assert_int_equal(bh__acks_outstanding(a), 1);
}

static void acks_unknown_or_repeated_finish_ignored(void **state)
{
    bh__acks_t *a = *state;
    bh__acks_finished(a, 1, true); /* nothing delivered yet */
    assert_nothing_to_send(a);
    deliver_range(a, 1, 3);
    bh__acks_finished(a, 0, true);
    bh__acks_finished(a, 4, true);
    bh__acks_finished(a, UINT64_MAX, true);
    assert_nothing_to_send(a);
    assert_int_equal(bh__acks_outstanding(a), 3);
    bh__acks_finished(a, 1, true);
    bh__acks_finished(a, 1, false); /* the first word stands */
    assert_multiple(a, 1);
    bh__acks_finished(a, 1, true); /* already acked and gone */
    bh__acks_finished(a, 3, true);
    assert_single(a, 3);
    bh__acks_finished(a, 3, true); /* already singly acked */
    assert_nothing_to_send(a);
    assert_int_equal(bh__acks_outstanding(a), 1);
}

static void acks_gap_in_tags_counts_as_forgotten(void **state)
{
    bh__acks_t *a = *state;
    assert_int_equal(bh__acks_delivered(a, 1), 0);
    assert_int_equal(bh__acks_delivered(a, 100000), 0); /* 1 still runs: gap stored */
    assert_int_equal(bh__acks_outstanding(a), 2);
    bh__acks_finished(a, 50, true); /* inside the gap: never delivered here */
    assert_nothing_to_send(a);
    bh__acks_finished(a, 100000, true);
    assert_single(a, 100000);
    bh__acks_finished(a, 1, true);
    assert_multiple(a, 1); /* the gap does not hold the run back nor extend it */
    assert_nothing_to_send(a);
    assert_int_equal(bh__acks_outstanding(a), 0);
}

static void acks_gap_between_positives_is_covered(void **state)
{
    bh__acks_t *a = *state;
    deliver_range(a, 1, 2);
    deliver_range(a, 10, 11);
    bh__acks_finished(a, 1, true);
    bh__acks_finished(a, 2, true);
    bh__acks_finished(a, 10, true);
    assert_multiple(a, 10);
    assert_int_equal(bh__acks_outstanding(a), 1);
}

static void acks_far_tag_with_nothing_outstanding_needs_no_gap(void **state)
{
    bh__acks_t *a = *state;
    deliver_range(a, 1, 1);
    bh__acks_finished(a, 1, false);
    const uint64_t far = (uint64_t)1 << 60;
    assert_int_equal(bh__acks_delivered(a, far), 0);
    assert_true(a->cap < 1024);
    bh__acks_finished(a, far, true);
    assert_multiple(a, far);
}

static void acks_absurd_gap_while_outstanding_refused(void **state)
{
    bh__acks_t *a = *state;
    deliver_range(a, 1, 1);
    assert_int_equal(bh__acks_delivered(a, (uint64_t)1 << 40), BH_ENOMEM);
    assert_int_equal(bh__acks_delivered(a, UINT64_MAX - 1), BH_ENOMEM);
    assert_int_equal(bh__acks_outstanding(a), 1); /* nothing recorded */
    assert_int_equal(bh__acks_delivered(a, 2), 0);
    assert_int_equal(bh__acks_outstanding(a), 2);
}

static void acks_reset_forgets_everything_and_tags_restart(void **state)
{
    bh__acks_t *a = *state;
    deliver_range(a, 1, 40); /* past the first capacity */
    bh__acks_finished(a, 2, true);
    bh__acks_finished(a, 1, true);
    bh__acks_reset(a);
    assert_int_equal(bh__acks_outstanding(a), 0);
    assert_nothing_to_send(a);
    assert_int_equal(bh__acks_delivered(a, 0), BH_EINVAL);
    deliver_range(a, 1, 2);
    bh__acks_finished(a, 2, true);
    assert_single(a, 2);
    bh__acks_finished(a, 1, true);
    assert_multiple(a, 1);
    assert_nothing_to_send(a);
}

/* Randomised: deliveries with rare gaps, out-of-order completions (some
 * negative), drains at random moments, checked against a broker model. The
 * model holds what the broker holds (running or finished-positive tags);
 * a rejected tag leaves it when the caller rejects it. Checks: a multiple
 * never covers a running tag, a single always names a tag the broker holds
 * that finished positive (so never twice, never a negative one), and every
 * positive tag leaves the broker through an ack exactly once. */
enum { M_NONE, M_RUNNING, M_POSITIVE, M_NEGATIVE, M_ACKED };

typedef struct model {
    uint8_t *m;        /* by tag */
    uint64_t low;      /* no tag below is held by the broker */
    uint64_t next_tag; /* the next delivery's tag */
    size_t held;       /* running + positive */
    size_t positives, acked;
    size_t multiples, singles, max_cap; /* to show the run exercised them */
} model_t;

static void drain(bh__acks_t *a, model_t *md)
{
    for (;;) {
        uint64_t single = 99;
        uint64_t t = bh__acks_next(a, &single);
        if (a->cap > md->max_cap) md->max_cap = a->cap;
        if (t != 0) {
            md->multiples++;
            assert_int_equal(single, 0);
            assert_int_equal(md->m[t], M_POSITIVE); /* the ack ends on a positive */
            for (uint64_t s = md->low; s <= t; s++) {
                assert_int_not_equal(md->m[s], M_RUNNING);
                if (md->m[s] == M_POSITIVE) {
                    md->m[s] = M_ACKED;
                    md->acked++;
                    md->held--;
                }
            }
        } else if (single != 0) {
            md->singles++;
            assert_int_equal(md->m[single], M_POSITIVE);
            md->m[single] = M_ACKED;
            md->acked++;
            md->held--;
        } else {
            break;
        }
    }
    while (md->low < md->next_tag && md->m[md->low] != M_RUNNING && md->m[md->low] != M_POSITIVE)
        md->low++;
    assert_int_equal(bh__acks_outstanding(a), md->held);
}

static void acks_random_completion_order_keeps_invariants(void **state)
{
    bh__acks_t *a = *state;
    rng_state = test_seed();
    enum { ROUNDS = 8, DELIVERIES = 20000, MAXTAG = DELIVERIES * 3 };
    model_t md = {0};
    md.m = malloc(MAXTAG + 1);
    assert_non_null(md.m);
    uint64_t *running = malloc(sizeof(uint64_t) * 512);
    assert_non_null(running);

    for (int round = 0; round < ROUNDS; round++) {
        memset(md.m, M_NONE, MAXTAG + 1);
        md.low = 1;
        md.held = md.positives = md.acked = 0;
        size_t prefetch = 1 + rng_below(round % 2 ? 500 : 40);
        size_t nrunning = 0, delivered = 0;
        md.next_tag = 1;
        while (delivered < DELIVERIES || nrunning > 0) {
            size_t r = rng_below(100);
            if (delivered < DELIVERIES && nrunning < prefetch && r < 45) {
                if (rng_below(64) == 0)
                    md.next_tag += 1 + rng_below(3); /* a delivery we never see */
                assert_int_equal(bh__acks_delivered(a, md.next_tag), 0);
                md.m[md.next_tag] = M_RUNNING;
                md.held++;
                running[nrunning++] = md.next_tag++;
                delivered++;
            } else if (nrunning > 0 && r < 92) {
                /* Mostly the older ones finish first, but not always. */
                size_t i =
                    rng_below(4) ? rng_below(nrunning < 4 ? nrunning : 4) : rng_below(nrunning);
                uint64_t t = running[i];
                running[i] = running[--nrunning];
                bool positive = rng_below(5) != 0;
                bh__acks_finished(a, t, positive);
                if (positive) {
                    md.m[t] = M_POSITIVE;
                    md.positives++;
                } else {
                    md.m[t] = M_NEGATIVE; /* the caller rejected it: broker drops it */
                    md.held--;
                }
            } else {
                drain(a, &md);
            }
        }
        drain(a, &md);
        assert_true(md.next_tag <= MAXTAG);
        assert_int_equal(md.acked, md.positives);
        assert_int_equal(md.held, 0);
        for (uint64_t t = 1; t < md.next_tag; t++)
            assert_true(md.m[t] != M_POSITIVE && md.m[t] != M_RUNNING);
        assert_int_equal(bh__acks_outstanding(a), 0);
        bh__acks_reset(a);
    }
    print_message("%zu multiple and %zu single acks, ring up to %zu\n", md.multiples, md.singles,
                  md.max_cap);
    assert_true(md.multiples > 1000 && md.singles > 1000 && md.max_cap > 32);
    free(running);
    free(md.m);
}

int main(void)
{
#define C(t) cmocka_unit_test_setup_teardown(t, setup_confirms, teardown_confirms)
#define A(t) cmocka_unit_test_setup_teardown(t, setup_acks, teardown_acks)
    const struct CMUnitTest tests[] = {
        C(confirms_numbered_from_one),
        C(confirms_null_item_refused_without_using_a_seq),
        C(confirms_single_acks_in_order),
        C(confirms_multiple_settles_everything_up_to_tag),
        C(confirms_out_of_order_singles_then_multiple_skips_settled),
        C(confirms_nack_flag_and_user_data_passed_through),
        C(confirms_duplicate_and_unknown_tags_ignored),
        C(confirms_settle_without_callback_still_settles),
        C(confirms_callback_may_publish_during_settle),
        C(confirms_grow_while_wrapped_keeps_order),
        C(confirms_random_settles_each_item_once_in_order),
        C(confirms_reset_returns_unsettled_in_order_and_renumbers),
        C(confirms_reset_callback_may_publish_with_new_numbers),
        C(confirms_reset_and_free_of_empty_tracker),
        A(acks_nothing_to_send_while_all_run),
        A(acks_contiguous_run_is_one_multiple),
        A(acks_multiple_stops_before_a_running_tag),
        A(acks_running_head_strands_singles_then_head_ack_ends_them),
        A(acks_multiple_may_cover_single_acked_tags_between_positives),
        A(acks_negative_inside_run_does_not_block_it),
        A(acks_negative_is_never_singly_acked),
        A(acks_run_of_only_negatives_sends_nothing_and_is_forgotten),
        A(acks_head_rejected_leaves_singly_acked_nothing_to_send),
        A(acks_tags_must_rise),
        A(acks_unknown_or_repeated_finish_ignored),
        A(acks_gap_in_tags_counts_as_forgotten),
        A(acks_gap_between_positives_is_covered),
        A(acks_far_tag_with_nothing_outstanding_needs_no_gap),
        A(acks_absurd_gap_while_outstanding_refused),
        A(acks_reset_forgets_everything_and_tags_restart),
        A(acks_random_completion_order_keeps_invariants),
    };
#undef C
#undef A
    return cmocka_run_group_tests(tests, NULL, NULL);
}
