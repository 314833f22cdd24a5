/* test_conn.c -- the connection state machine (host/conn.c) on its own.
 *
 * The real conn.c runs on a real libuv loop in the test thread, against the
 * fake broker (fake_broker.c: every call recorded, events injected by the
 * test and handed out by bh__broker_poll). The ops are the test's: setup
 * records whether it was asked to consume, tick does what the service's
 * I/O tick does for the connection (poll, then settle). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "conn.h"
#include "fake_broker.h"
#include "fake_logq.h"
#include "loop_util.h"

enum { WAIT_MS = 5000, MAX_SEEN = 16 };
#define MS 1000000u /* ns */

static const char *const URLS[] = {"amqp://a", "amqp://b", "amqp://c"};

static struct {
    lu_t lu;
    bh__conn_t c;
    bool started, ended;
    size_t setups;
    bool consume[MAX_SEEN];
    unsigned setup_failures; /* the next setups that fail */
    size_t lost;
    uint64_t gen_at_lost;
    bool broker_at_lost;
    bh__conn_state_t st_at_lost;
    size_t ticks, pump_ticks;
    uint64_t setup_ns, pump_ns; /* the last setup, the last pump tick */
    bool no_settle;             /* tick polls but leaves a failure recorded */
    size_t deliveries, confirms, returns;
    char returned[100];            /* the last one */
    uint64_t connect_ns[MAX_SEEN]; /* when each connect attempt was over */
    size_t connects_seen;
} T;

static int on_setup(void *ud, bh__broker_t *b, bool consume, char *err, size_t errlen)
{
    (void)ud;
    assert_non_null(b);
    T.setup_ns = uv_hrtime();
    if (T.setups < MAX_SEEN) T.consume[T.setups] = consume;
    T.setups++;
    if (!T.setup_failures) return 0;
    T.setup_failures--;
    snprintf(err, errlen, "setup refused by the test");
    return -1;
}

static void on_lost(void *ud)
{
    (void)ud;
    T.lost++;
    T.gen_at_lost = T.c.gen;
    T.broker_at_lost = T.c.broker != NULL;
    T.st_at_lost = T.c.st;
}

static void on_tick(void *ud, bool pump)
{
    (void)ud;
    T.ticks++;
    T.pump_ticks += pump;
    if (pump) T.pump_ns = uv_hrtime();
    for (size_t n = fb_count(FB_CONNECT, 0); T.connects_seen < n && T.connects_seen < MAX_SEEN;)
        T.connect_ns[T.connects_seen++] = uv_hrtime();
    bh__conn_poll(&T.c, pump);
    if (!T.no_settle) bh__conn_settle(&T.c);
}

static void on_delivery(void *ud, bh__delivery_t *d)
{
    (void)ud;
    T.deliveries++;
    free(d);
}

static void on_confirm(void *ud, uint64_t tag, bool multiple, bool acked)
{
    (void)ud;
    (void)tag;
    (void)multiple;
    (void)acked;
    T.confirms++;
}

static void on_returned(void *ud, const char *exchange, const char *key, int code, const char *text,
                        const bh__hdr_t *h, size_t n)
{
    (void)ud;
    (void)h;
    (void)n;
    T.returns++;
    snprintf(T.returned, sizeof T.returned, "%s %s %d %s", exchange, key, code, text);
}

static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof T);
    fb_reset();
    fl_reset();
    lu_init(&T.lu);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (!T.ended) {
        if (T.started && !bh__conn_closed(&T.c)) bh__conn_close(&T.c);
        lu_finish(&T.lu);
    }
    fb_reset();
    fl_reset();
    return 0;
}

/* Init and schedule the first attempt. */
static void start(int heartbeat)
{
    static const bh__conn_ops_t ops = {on_setup,    on_lost,    on_tick,
                                       on_delivery, on_confirm, on_returned};
    bh__conn_init(&T.c, &T.lu.loop, URLS, 3, heartbeat, "test_conn", NULL, &ops, NULL);
    T.started = true;
    bh__conn_start(&T.c);
}

static void up(void)
{
    start(0);
    LU_UNTIL(&T.lu, WAIT_MS, bh__conn_ready(&T.c));
    assert_true(bh__conn_ready(&T.c));
}

/* DOWN after a refused first attempt, the next one scheduled. */
static void down(void)
{
    fb_fail(FB_CONNECT, 1);
    start(0);
    LU_UNTIL(&T.lu, WAIT_MS, fb_count(FB_CONNECT, 0) == 1);
    assert_int_equal(fb_count(FB_CONNECT, 0), 1);
    assert_int_equal(T.c.st, BH__CONN_DOWN);
    assert_true(uv_is_active((uv_handle_t *)&T.c.retry));
}

/* Close (unless the test did), and check that every handle was closed and
 * the broker saw no protocol error. */
static void end(void)
{
    char why[512];
    if (!bh__conn_closed(&T.c)) bh__conn_close(&T.c);
    T.ended = true;
    assert_int_equal(lu_finish(&T.lu), 0);
    assert_int_equal(fb_open_conns(), 0);
    assert_int_equal(fb_violations(why, sizeof why), 0);
}

static void test_name(void **state)
{
    (void)state;
    char name[300], want[100];
    bh__conn_name(name, sizeof name, "cart", "cartplug");
    assert_int_equal(strncmp(name, "bushost cart (cartplug) ", 24), 0);
    snprintf(want, sizeof want, ":%ld", (long)getpid());
    assert_string_equal(name + strlen(name) - strlen(want), want);
    T.ended = true;
    lu_finish(&T.lu);
}

static void test_first_connect_consumes(void **state)
{
    (void)state;
    up();
    assert_int_equal(T.setups, 1);
    assert_true(T.consume[0]);
    assert_int_equal(T.c.st, BH__CONN_UP);
    assert_true(bh__conn_consuming(&T.c));
    assert_true(bh__conn_writable(&T.c));
    assert_false(bh__conn_draining(&T.c));
    assert_int_equal(fb_count(FB_CONNECT, 0), 1);
    assert_string_equal(fb_nth(FB_CONNECT, 0, 0)->text, URLS[0]);
    assert_int_equal(T.c.gen, 0);
    assert_int_equal(fl_count("connected to amqp://a"), 1);
    /* What the connection reads goes to the ops. */
    fb_deliver(&(fb_msg_t){.exchange = "events", .routing_key = "k", .body = "x"});
    fb_confirm(1, false, true);
    fb_return("commands", "k", 312, "NO_ROUTE", NULL);
    LU_UNTIL(&T.lu, WAIT_MS, T.returns == 1);
    assert_int_equal(T.deliveries, 1);
    assert_int_equal(T.confirms, 1);
    assert_int_equal(T.returns, 1);
    assert_string_equal(T.returned, "commands k 312 NO_ROUTE");
    assert_int_equal(T.lost, 0);
    end();
}

static void test_refused_connect_backs_off_to_the_next_url(void **state)
{
    (void)state;
    fb_fail(FB_CONNECT, 3);
    start(0);
    LU_UNTIL(&T.lu, WAIT_MS, T.setups == 1);
    assert_int_equal(T.setups, 1);
    assert_int_equal(fb_count(FB_CONNECT, 0), 4);
    const char *want[] = {"amqp://a", "amqp://b", "amqp://c", "amqp://a"};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(fb_nth(FB_CONNECT, 0, i)->text, want[i]);
        assert_int_equal(fb_nth(FB_CONNECT, 0, i)->failed, i < 3);
    }
    /* After failure k the wait is jittered in [base/2, base], base =
     * 250 ms << (k - 1): it grows. The upper bounds leave room for a busy
     * machine. */
    assert_int_equal(T.connects_seen, 4);
    for (unsigned k = 1; k <= 3; k++) {
        uint64_t gap = (T.connect_ns[k] - T.connect_ns[k - 1]) / MS, base = 250u << (k - 1);
        print_message("wait after failure %u: %llu ms\n", k, (unsigned long long)gap);
        assert_in_range(gap, base / 2 - 2, base + 250);
    }
    assert_int_equal(fl_count("all 3 broker URL(s) failed"), 1);
    assert_true(T.consume[0]);
    assert_int_equal(T.c.attempts, 0);
    assert_int_equal(T.c.st, BH__CONN_UP);
    end();
}

/* Every log line shows a URL redacted: a raw '@' in the password hides all
 * of it. */
static void test_urls_are_logged_without_their_password(void **state)
{
    static const char *const secret[] = {"amqp://app:S3c@retPW@h:5672/"};
    static const bh__conn_ops_t ops = {on_setup,    on_lost,    on_tick,
                                       on_delivery, on_confirm, on_returned};

    (void)state;
    fb_fail(FB_CONNECT, 1);
    bh__conn_init(&T.c, &T.lu.loop, secret, 1, 0, "test_conn", NULL, &ops, NULL);
    T.started = true;
    bh__conn_start(&T.c);
    LU_UNTIL(&T.lu, WAIT_MS, bh__conn_ready(&T.c));
    assert_true(bh__conn_ready(&T.c));
    assert_int_equal(fl_count("cannot use broker amqp://app:***@h:5672/"), 1);
    assert_int_equal(fl_count("reconnected to amqp://app:***@h:5672/"), 0);
    assert_int_equal(fl_count("connected to amqp://app:***@h:5672/"), 1);
    assert_int_equal(fl_count("S3c"), 0);
    assert_int_equal(fl_count("etPW"), 0);
    end();
}

static void test_failing_setup_is_a_failed_attempt(void **state)
{
    (void)state;
    T.setup_failures = 1;
    start(0);
    LU_UNTIL(&T.lu, WAIT_MS, bh__conn_ready(&T.c));
    assert_true(bh__conn_ready(&T.c));
    assert_int_equal(T.setups, 2);
    assert_int_equal(fb_count(FB_FREE, 1), 1); /* the half-set-up connection */
    assert_string_equal(fb_nth(FB_CONNECT, 0, 1)->text, URLS[1]);
    assert_int_equal(T.lost, 0); /* never was a connection */
    assert_int_equal(fl_count("setup refused by the test"), 1);
    end();
}

static void test_failure_is_lost_only_at_settle(void **state)
{
    (void)state;
    up();
    bh__conn_fail(&T.c, "first");
    bh__conn_fail(&T.c, "second");
    /* Recorded: no longer ready, but nothing is torn down yet. */
    assert_false(bh__conn_ready(&T.c));
    assert_false(bh__conn_writable(&T.c));
    assert_int_equal(T.lost, 0);
    assert_non_null(T.c.broker);
    assert_int_equal(T.c.st, BH__CONN_UP);
    assert_int_equal(fb_count(FB_FREE, 0), 0);
    assert_string_equal(T.c.why, "first");

    bh__conn_settle(&T.c);
    assert_int_equal(T.lost, 1);
    assert_int_equal(T.gen_at_lost, 1); /* already moved on when lost runs */
    assert_false(T.broker_at_lost);     /* already freed */
    assert_int_equal(T.c.gen, 1);
    assert_int_equal(T.c.st, BH__CONN_DOWN);
    assert_int_equal(fb_count(FB_FREE, 1), 1);
    assert_int_equal(fb_count(FB_CLOSE, 1), 0);
    assert_int_equal(fl_count("connection lost: first"), 1);
    /* Every reconnect backs off (never a 0 ms timer: the loop would not
     * poll, nor see a signal); a connection lost this soon counts. */
    assert_true(uv_is_active((uv_handle_t *)&T.c.retry));
    assert_in_range(uv_timer_get_due_in(&T.c.retry), 125, 250);
    bh__conn_settle(&T.c); /* nothing left to settle */
    assert_int_equal(T.lost, 1);

    LU_UNTIL(&T.lu, WAIT_MS, T.setups == 2);
    assert_int_equal(T.setups, 2);
    assert_true(T.consume[1]);
    assert_string_equal(fb_nth(FB_CONNECT, 0, 1)->text, URLS[0]); /* the same URL */
    assert_int_equal(T.c.reconnects, 1);
    assert_int_equal(fl_count("reconnected to amqp://a"), 1);
    assert_int_equal(T.lost, 1);
    assert_int_equal(T.c.gen, 1);
    end();
}

static void test_connections_lost_at_once_back_off_like_failed_attempts(void **state)
{
    (void)state;
    up();
    for (unsigned k = 1; k <= 4; k++) {
        fb_lose("dropped");
        LU_UNTIL(&T.lu, WAIT_MS, T.lost == k);
        assert_int_equal(T.lost, k);
        /* 250 ms << (k - 1), jittered down to half */
        uint64_t base = 250u << (k - 1);
        assert_in_range(uv_timer_get_due_in(&T.c.retry), base / 2, base);
        LU_UNTIL(&T.lu, 3 * WAIT_MS, T.setups == k + 1);
        assert_int_equal(T.setups, k + 1);
    }
    end();
}

static void test_poll_failure_is_lost(void **state)
{
    (void)state;
    up();
    fb_lose("socket closed by peer");
    LU_UNTIL(&T.lu, WAIT_MS, T.lost == 1);
    assert_int_equal(T.lost, 1);
    assert_non_null(strstr(T.c.why, "socket closed by peer"));
    assert_int_equal(fb_count(FB_FREE, 1), 1);
    LU_UNTIL(&T.lu, WAIT_MS, T.setups == 2);
    assert_int_equal(T.setups, 2);
    assert_true(T.consume[1]);
    assert_int_equal(T.lost, 1);
    end();
}

static void test_cancelled_consumer_is_a_failure(void **state)
{
    (void)state;
    up();
    T.no_settle = true;
    fb_cancel("ctag-7");
    LU_UNTIL(&T.lu, WAIT_MS, T.c.failed);
    assert_true(T.c.failed);
    assert_false(bh__conn_ready(&T.c));
    assert_int_equal(T.lost, 0);
    assert_non_null(strstr(T.c.why, "cancelled consumer ctag-7"));
    bh__conn_settle(&T.c);
    assert_int_equal(T.lost, 1);
    end();
}

/* The n-th connection comes, set up without consuming: draining still. */
static void connects_draining(size_t n)
{
    LU_UNTIL(&T.lu, WAIT_MS, T.setups == n);
    assert_int_equal(T.setups, n);
    assert_false(T.consume[n - 1]);
    assert_int_equal(T.c.st, BH__CONN_DRAIN_UP);
    assert_false(bh__conn_consuming(&T.c));
    assert_true(bh__conn_draining(&T.c));
}

static void test_drain_from_up_cancels_and_reconnects_without_consuming(void **state)
{
    (void)state;
    up();
    bh__conn_drain(&T.c);
    assert_int_equal(T.c.st, BH__CONN_DRAIN_UP);
    assert_int_equal(fb_count(FB_CANCEL_ALL, 1), 1);
    assert_false(bh__conn_consuming(&T.c));
    assert_true(bh__conn_draining(&T.c));
    assert_true(bh__conn_writable(&T.c)); /* publishes still go out */
    bh__conn_drain(&T.c);                 /* once is enough */
    assert_int_equal(fb_count(FB_CANCEL_ALL, 0), 1);

    fb_lose("gone");
    connects_draining(2);
    assert_int_equal(T.lost, 1);
    assert_int_equal(T.st_at_lost, BH__CONN_DRAIN_DOWN);
    assert_int_equal(fb_count(FB_CANCEL_ALL, 0), 1); /* nothing to cancel on the new one */
    end();
}

static void test_drain_with_a_failing_cancel_is_lost(void **state)
{
    (void)state;
    up();
    fb_fail(FB_CANCEL_ALL, 1);
    bh__conn_drain(&T.c);
    assert_false(bh__conn_ready(&T.c));
    bh__conn_settle(&T.c);
    assert_int_equal(T.lost, 1);
    assert_int_equal(T.c.st, BH__CONN_DRAIN_DOWN);
    connects_draining(2);
    end();
}

static void test_drain_from_down_connects_without_consuming(void **state)
{
    (void)state;
    down();
    bh__conn_drain(&T.c);
    assert_int_equal(T.c.st, BH__CONN_DRAIN_DOWN);
    assert_true(bh__conn_draining(&T.c));
    connects_draining(1);
    assert_int_equal(fb_count(FB_CANCEL_ALL, 0), 0);
    end();
}

/* Close now: the broker sees `op` (FB_CLOSE, FB_FREE or 0 for nothing),
 * every handle is closed and no attempt is left (end() checks both). */
static void close_sees(fb_op_t op)
{
    size_t connects = fb_count(FB_CONNECT, 0);
    bh__conn_close(&T.c);
    assert_true(bh__conn_closed(&T.c));
    assert_null(T.c.broker);
    assert_false(bh__conn_ready(&T.c));
    assert_int_equal(fb_count(FB_CLOSE, 0), op == FB_CLOSE);
    assert_int_equal(fb_count(FB_FREE, 0), op == FB_FREE);
    bh__conn_close(&T.c); /* the end is the end */
    bh__conn_drain(&T.c);
    bh__conn_fail(&T.c, "late");
    bh__conn_settle(&T.c);
    assert_int_equal(T.c.st, BH__CONN_CLOSED);
    assert_int_equal(T.lost, 0);
    end();
    assert_int_equal(fb_count(FB_CONNECT, 0), connects);
}

static void test_close_down(void **state)
{
    (void)state;
    down();
    close_sees(0);
}

static void test_close_up(void **state)
{
    (void)state;
    up();
    close_sees(FB_CLOSE);
}

static void test_close_up_after_a_failure_frees(void **state)
{
    (void)state;
    up();
    bh__conn_fail(&T.c, "broken");
    close_sees(FB_FREE);
}

static void test_close_drain_up(void **state)
{
    (void)state;
    up();
    bh__conn_drain(&T.c);
    close_sees(FB_CLOSE);
}

static void test_close_drain_down(void **state)
{
    (void)state;
    down();
    bh__conn_drain(&T.c);
    assert_int_equal(T.c.st, BH__CONN_DRAIN_DOWN);
    close_sees(0);
}

static void test_blocked_is_not_writable(void **state)
{
    (void)state;
    up();
    fb_block("low on memory");
    LU_UNTIL(&T.lu, WAIT_MS, !bh__conn_writable(&T.c));
    assert_false(bh__conn_writable(&T.c));
    assert_true(bh__conn_ready(&T.c));
    assert_int_equal(fl_count("blocked publishing (low on memory)"), 1);
    fb_block(NULL);
    LU_UNTIL(&T.lu, WAIT_MS, bh__conn_writable(&T.c));
    assert_true(bh__conn_writable(&T.c));
    /* connection.blocked belongs to the connection that said it. */
    fb_block("again");
    LU_UNTIL(&T.lu, WAIT_MS, !bh__conn_writable(&T.c));
    assert_false(bh__conn_writable(&T.c));
    fb_lose("gone");
    LU_UNTIL(&T.lu, WAIT_MS, T.setups == 2);
    assert_int_equal(T.setups, 2);
    assert_true(bh__conn_writable(&T.c));
    end();
}

static void test_pump_ticks_with_the_heartbeat(void **state)
{
    (void)state;
    start(1); /* every 250 ms */
    LU_UNTIL(&T.lu, WAIT_MS, T.pump_ticks == 2);
    assert_int_equal(T.pump_ticks, 2);
    assert_in_range((T.pump_ns - T.setup_ns) / MS, 495, 1500);
    end();
}

int main(void)
{
#define T_(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T_(test_name),
        T_(test_first_connect_consumes),
        T_(test_refused_connect_backs_off_to_the_next_url),
        T_(test_urls_are_logged_without_their_password),
        T_(test_failing_setup_is_a_failed_attempt),
        T_(test_failure_is_lost_only_at_settle),
        T_(test_connections_lost_at_once_back_off_like_failed_attempts),
        T_(test_poll_failure_is_lost),
        T_(test_cancelled_consumer_is_a_failure),
        T_(test_drain_from_up_cancels_and_reconnects_without_consuming),
        T_(test_drain_with_a_failing_cancel_is_lost),
        T_(test_drain_from_down_connects_without_consuming),
        T_(test_close_down),
        T_(test_close_up),
        T_(test_close_up_after_a_failure_frees),
        T_(test_close_drain_up),
        T_(test_close_drain_down),
        T_(test_blocked_is_not_writable),
        T_(test_pump_ticks_with_the_heartbeat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
