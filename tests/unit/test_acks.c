/* test_acks.c -- the consumer-ack coalescer (host/acks.c).
 *
 * The acker runs with its real neighbours conn.c and confirm.c on a real
 * loop in the test thread (conn_rig.c), against the fake broker, which
 * records every ack and reject and knows the state of each delivery tag:
 * an ack or reject of a tag it no longer holds is a violation. Deliveries
 * come from the fake through bh__conn_poll; the test says when each one is
 * done and when the acker should look (bh__acker_soon), as settle.c and the
 * service's tick do. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "acks.h"
#include "conn_rig.h"
#include "fake_broker.h"

enum { WAIT_MS = 5000, BATCH = 3 };
#define US 1000u /* ns */

static struct {
    rig_t rig;
    bh__acker_t a;
    size_t delivered, refused, lost;
    size_t acker_ticks;
} T;

static void on_lost(void *ud)
{
    (void)ud;
    T.lost++;
    bh__acker_lost(&T.a);
}

static void on_delivery(void *ud, bh__delivery_t *d)
{
    (void)ud;
    if (bh__acker_delivered(&T.a, d->tag)) T.refused++;
    else T.delivered++;
    free(d);
}

static void on_acker_tick(void *ud)
{
    (void)ud;
    T.acker_ticks++;
}

static void close_acker(void) { bh__acker_close(&T.a); }

static void free_acker(void) { bh__acker_free(&T.a); }

static int setup(void **state)
{
    memset(&T, 0, sizeof T);
    *state = &T.rig;
    rig_init(&T.rig, "test_acks", &(bh__conn_ops_t){.lost = on_lost, .delivery = on_delivery},
             close_acker, free_acker);
    bh__acker_init(&T.a, &T.rig.lu.loop, &T.rig.conn, BATCH, on_acker_tick, NULL);
    rig_up(&T.rig);
    return 0;
}

static void end(void) { rig_end(&T.rig); }

/* n more deliveries, handed to the acker. */
static void deliver(size_t n)
{
    size_t want = T.delivered + n;
    for (size_t i = 0; i < n; i++) assert_true(fb_deliver(&(fb_msg_t){.routing_key = "k"}) > 0);
    LU_UNTIL(&T.rig.lu, WAIT_MS, T.delivered == want);
    assert_int_equal(T.delivered, want);
    assert_int_equal(T.refused, 0);
}

static void done(uint64_t tag, bool now)
{
    bh__acker_done(&T.a, tag);
    bh__acker_soon(&T.a, now);
}

static size_t acks(unsigned conn) { return fb_count(FB_ACK, conn); }

static void assert_ack(size_t i, uint64_t tag, bool multiple)
{
    const fb_rec_t *r = fb_nth(FB_ACK, 0, i);
    assert_non_null(r);
    assert_int_equal(r->tag, tag);
    assert_int_equal(r->flag, multiple);
}

static bool timer_runs(void) { return uv_is_active((uv_handle_t *)&T.a.timer); }

static void test_a_batch_is_acked_at_once(void **state)
{
    (void)state;
    deliver(BATCH);
    for (uint64_t tag = 1; tag < BATCH; tag++) {
        done(tag, false);
        assert_int_equal(acks(0), 0);
        assert_true(timer_runs());
    }
    done(BATCH, false);
    assert_int_equal(acks(0), 1);
    assert_ack(0, BATCH, true);
    assert_false(timer_runs());
    for (uint64_t tag = 1; tag <= BATCH; tag++) assert_int_equal(fb_tag(1, tag), FB_TAG_ACKED);
    end();
}

static void test_below_the_batch_the_timer_acks(void **state)
{
    (void)state;
    deliver(2);
    uv_update_time(&T.rig.lu.loop); /* the timer counts from the loop's clock */
    uint64_t t0 = uv_hrtime();
    done(1, false);
    assert_int_equal(acks(0), 0);
    assert_true(timer_runs());
    LU_UNTIL(&T.rig.lu, WAIT_MS, acks(0) == 1);
    uint64_t waited_us = (uv_hrtime() - t0) / US;
    assert_int_equal(acks(0), 1);
    assert_ack(0, 1, true);
    /* Whole milliseconds of the loop's clock: more than DELAY - 1. */
    assert_true(waited_us >= (BH__ACK_DELAY_MS - 1) * 1000u);
    assert_int_equal(T.acker_ticks, 1); /* the owner hears of it */
    assert_int_equal(fb_tag(1, 2), FB_TAG_UNACKED);
    end();
}

static void test_now_acks_at_once(void **state)
{
    (void)state;
    deliver(2);
    bh__acker_soon(&T.a, true); /* nothing finished: nothing to do */
    assert_int_equal(acks(0), 0);
    assert_false(timer_runs());
    done(1, true);
    assert_int_equal(acks(0), 1);
    assert_false(timer_runs());
    end();
}

static void test_a_multiple_ack_covers_only_a_contiguous_run(void **state)
{
    (void)state;
    deliver(5);
    for (uint64_t tag = 1; tag <= 5; tag++)
        if (tag != 4) bh__acker_done(&T.a, tag);
    bh__acker_flush(&T.a);
    assert_int_equal(acks(0), 2);
    assert_ack(0, 3, true);
    assert_ack(1, 5, false); /* stranded behind 4, which still runs */
    assert_int_equal(fb_tag(1, 4), FB_TAG_UNACKED);
    done(4, true);
    assert_int_equal(acks(0), 3);
    assert_ack(2, 4, true);
    for (uint64_t tag = 1; tag <= 5; tag++) assert_int_equal(fb_tag(1, tag), FB_TAG_ACKED);
    end();
}

static void test_a_reject_goes_out_at_once_before_a_later_ack(void **state)
{
    (void)state;
    deliver(4);
    done(1, false);
    bh__acker_reject(&T.a, 2, false);
    assert_int_equal(fb_count(FB_REJECT, 0), 1); /* at once */
    assert_int_equal(acks(0), 0);
    assert_int_equal(fb_tag(1, 2), FB_TAG_DEAD);
    bh__acker_reject(&T.a, 3, true);
    assert_int_equal(fb_tag(1, 3), FB_TAG_REQUEUED);
    done(4, false);
    LU_UNTIL(&T.rig.lu, WAIT_MS, acks(0) == 1);
    assert_int_equal(acks(0), 1);
    assert_ack(0, 4, true); /* covers 1 to 4, after the rejects */
    assert_true(fb_nth(FB_REJECT, 0, 1)->at < fb_nth(FB_ACK, 0, 0)->at);
    assert_int_equal(fb_tag(1, 1), FB_TAG_ACKED);
    assert_int_equal(fb_tag(1, 2), FB_TAG_DEAD);
    assert_int_equal(fb_tag(1, 3), FB_TAG_REQUEUED);
    assert_int_equal(fb_tag(1, 4), FB_TAG_ACKED);
    end(); /* the fake saw no ack of a rejected tag */
}

static void test_lost_forgets_every_tag(void **state)
{
    (void)state;
    deliver(2);
    done(1, false);
    assert_true(timer_runs());
    fb_lose("gone");
    LU_UNTIL(&T.rig.lu, WAIT_MS, T.lost == 1);
    assert_int_equal(T.lost, 1);
    assert_false(timer_runs());
    assert_int_equal(bh__acks_outstanding(&T.a.tags), 0);
    LU_UNTIL(&T.rig.lu, WAIT_MS, bh__conn_ready(&T.rig.conn));
    assert_true(bh__conn_ready(&T.rig.conn));
    /* The new channel numbers from 1 again. */
    deliver(1);
    done(1, true);
    assert_int_equal(acks(1), 0);
    assert_int_equal(acks(2), 1);
    assert_int_equal(fb_tag(2, 1), FB_TAG_ACKED);
    end();
}

static void test_tags_must_rise(void **state)
{
    (void)state;
    assert_int_equal(bh__acker_delivered(&T.a, 5), 0);
    assert_int_equal(bh__acker_delivered(&T.a, 3), BH_EINVAL);
    assert_int_equal(bh__acker_delivered(&T.a, 6), 0);
    end();
}

static void test_nothing_goes_out_on_a_failed_connection(void **state)
{
    (void)state;
    deliver(2);
    bh__acker_done(&T.a, 1);
    bh__conn_fail(&T.rig.conn, "broken");
    bh__acker_flush(&T.a);
    bh__acker_reject(&T.a, 2, true);
    assert_int_equal(acks(0), 0);
    assert_int_equal(fb_count(FB_REJECT, 0), 0);
    end(); /* no call on the dead connection (a violation) */
}

int main(void)
{
#define T_(f) cmocka_unit_test_setup_teardown(f, setup, rig_teardown)
    const struct CMUnitTest tests[] = {
        T_(test_a_batch_is_acked_at_once),
        T_(test_below_the_batch_the_timer_acks),
        T_(test_now_acks_at_once),
        T_(test_a_multiple_ack_covers_only_a_contiguous_run),
        T_(test_a_reject_goes_out_at_once_before_a_later_ack),
        T_(test_lost_forgets_every_tag),
        T_(test_tags_must_rise),
        T_(test_nothing_goes_out_on_a_failed_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
