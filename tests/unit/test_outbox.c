/* test_outbox.c -- publishing (host/outbox.c): order, the confirm window,
 * write room, nacks, lost connections, returns, confirms.
 *
 * The outbox runs with its real neighbours conn.c and confirm.c on a real
 * loop in the test thread (conn_rig.c), against the fake broker, which
 * records every publish with its confirm sequence number and flags a
 * publish that would not have fit in the socket. The ticks do what the
 * service's I/O tick does: poll, send what waits, settle, watch the room.
 * Confirms are mostly handed to bh__outbox_confirm by the test itself.
 *
 * Message bodies start with a letter (or are a number) that names them:
 * sent() spells the publishes on a connection, T.confirmed the confirms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "conn_rig.h"
#include "fake_broker.h"
#include "fake_logq.h"
#include "outbox.h"
#include "retry.h"

enum { WAIT_MS = 5000, BIG = 1000, MAX_CONFIRMED = 2048 };
#define MS 1000000u /* ns */

static struct {
    rig_t rig;
    bh__outbox_t ob;
    bool hold; /* the ticks leave what waits alone */
    size_t outbox_ticks;
    uint64_t outbox_tick_ns; /* the last one */
    size_t n_confirmed;
    char confirmed[MAX_CONFIRMED + 1]; /* first letter of each, in order */
    int confirmed_num[MAX_CONFIRMED];  /* the body as a number */
    bool confirmed_returned[MAX_CONFIRMED];
    size_t n_failed;
    char failed_why[200];
} T;

/* -- a service's worth of ticks ------------------------------------------- */

static void tick(void)
{
    bh__conn_poll(&T.rig.conn, false);
    if (!T.hold) {
        bh__outbox_flush(&T.ob);
        bh__outbox_flush_logs(&T.ob);
    }
    bh__conn_settle(&T.rig.conn);
    bh__outbox_watch(&T.ob);
}

static void on_conn_tick(void *ud, bool pump)
{
    (void)ud;
    (void)pump;
    tick();
}

static void on_outbox_tick(void *ud)
{
    (void)ud;
    T.outbox_ticks++;
    T.outbox_tick_ns = uv_hrtime();
    tick();
}

static void on_lost(void *ud)
{
    (void)ud;
    bh__outbox_lost(&T.ob);
}

static void on_broker_confirm(void *ud, uint64_t tag, bool multiple, bool acked)
{
    (void)ud;
    bh__outbox_confirm(&T.ob, tag, multiple, acked);
}

static void on_returned(void *ud, const char *exchange, const char *key, int code, const char *text,
                        const bh__hdr_t *h, size_t n)
{
    (void)ud;
    bh__outbox_returned(&T.ob, bh__retry_copy_id(h, n), exchange, key, code, text, h, n);
}

static void on_confirmed(void *ud, bh__out_t *o)
{
    (void)ud;
    assert_true(T.n_confirmed < MAX_CONFIRMED);
    T.confirmed[T.n_confirmed] = (char)o->body[0];
    T.confirmed_num[T.n_confirmed] = atoi((const char *)o->body);
    T.confirmed_returned[T.n_confirmed] = o->returned;
    T.n_confirmed++;
    free(o);
}

static void on_failed(void *ud, bh__out_t *o, const char *why)
{
    (void)ud;
    snprintf(T.failed_why, sizeof T.failed_why, "%s", why);
    T.n_failed++;
    free(o);
}

static void close_outbox(void) { bh__outbox_close(&T.ob); }

static void free_outbox(void) { bh__outbox_free(&T.ob); }

static int setup(void **state)
{
    memset(&T, 0, sizeof T);
    *state = &T.rig;
    rig_init(&T.rig, "test_outbox",
             &(bh__conn_ops_t){.lost = on_lost,
                               .tick = on_conn_tick,
                               .confirm = on_broker_confirm,
                               .returned = on_returned},
             close_outbox, free_outbox);
    bh__outbox_init(&T.ob, &T.rig.lu.loop, &T.rig.conn, NULL,
                    &(bh__outbox_done_t){on_confirmed, on_failed, NULL}, on_outbox_tick, NULL);
    return 0;
}

/* Whatever the outbox still holds is freed: ASan sees a leak. */
static void end(void) { rig_end(&T.rig); }

static void up(void) { rig_up(&T.rig); }

static void block(const char *reason)
{
    fb_block(reason);
    LU_UNTIL(&T.rig.lu, WAIT_MS, bh__conn_writable(&T.rig.conn) == !reason);
    assert_int_equal(bh__conn_writable(&T.rig.conn), !reason);
}

/* -- messages --------------------------------------------------------------- */

/* An event whose body is name, padded with dots to len bytes. */
static bh__out_t *msg_len(const char *name, size_t len)
{
    char body[BIG + 1];
    size_t n = strlen(name);
    memset(body, '.', sizeof body);
    memcpy(body, name, n);
    bh__out_t *o = bh__out_new(BH__EX_EVENTS, "svc.happened", "text/plain", "conv-1", NULL, NULL,
                               NULL, body, len > n ? len : n);
    assert_non_null(o);
    return o;
}

static void send_one(const char *name) { bh__outbox_send(&T.ob, msg_len(name, 1)); }

static void send_big(const char *name) { bh__outbox_send(&T.ob, msg_len(name, BIG)); }

static size_t published(unsigned conn) { return fb_count(FB_PUBLISH, conn); }

/* The first letter of each publish on conn (0: any), in order. */
static const char *sent(unsigned conn)
{
    static char s[MAX_CONFIRMED + 1];
    size_t n = 0;
    for (const fb_rec_t *r; n < MAX_CONFIRMED && (r = fb_nth(FB_PUBLISH, conn, n)); n++)
        s[n] = r->body[0];
    s[n] = '\0';
    return s;
}

static void confirm(uint64_t tag, bool multiple, bool acked)
{
    bh__outbox_confirm(&T.ob, tag, multiple, acked);
}

/* -- tests -------------------------------------------------------------------- */

static void test_order_is_kept_behind_what_waits(void **state)
{
    (void)state;
    up();
    block("memory alarm");
    send_one("A");
    send_one("B");
    assert_int_equal(published(0), 0);
    assert_false(bh__outbox_idle(&T.ob));
    T.hold = true;
    block(NULL);
    /* C could go out now, but A and B wait: it goes behind them. */
    send_one("C");
    assert_int_equal(published(0), 0);
    bh__outbox_flush(&T.ob);
    assert_string_equal(sent(0), "ABC");
    for (size_t i = 0; i < 3; i++) assert_int_equal(fb_nth(FB_PUBLISH, 0, i)->tag, i + 1);
    assert_int_equal(bh__outbox_unconfirmed(&T.ob), 3);
    end();
}

static void test_the_window_holds_publish_1001_until_a_confirm(void **state)
{
    (void)state;
    fb_socket_size(4u << 20); /* room is not what holds them back here */
    up();
    char name[16];
    for (int i = 1; i <= BH__CONFIRM_WINDOW + 1; i++) {
        snprintf(name, sizeof name, "%d", i);
        send_one(name);
    }
    assert_int_equal(published(0), BH__CONFIRM_WINDOW);
    assert_int_equal(bh__outbox_unconfirmed(&T.ob), BH__CONFIRM_WINDOW);
    bh__outbox_flush(&T.ob);
    assert_int_equal(published(0), BH__CONFIRM_WINDOW);

    /* Through the broker this time, so that it counts what is in flight;
     * the tick that hands the confirm over sends #1001. */
    fb_confirm(1, false, true);
    LU_UNTIL(&T.rig.lu, WAIT_MS, published(0) == BH__CONFIRM_WINDOW + 1);
    assert_int_equal(T.n_confirmed, 1);
    assert_int_equal(published(0), BH__CONFIRM_WINDOW + 1);
    const fb_rec_t *last = fb_nth(FB_PUBLISH, 0, BH__CONFIRM_WINDOW);
    assert_string_equal(last->body, "1001");
    assert_int_equal(last->tag, BH__CONFIRM_WINDOW + 1);
    assert_int_equal(fb_max_unconfirmed(1), BH__CONFIRM_WINDOW);

    confirm(BH__CONFIRM_WINDOW + 1, true, true);
    assert_int_equal(T.n_confirmed, BH__CONFIRM_WINDOW + 1);
    for (int i = 0; i < BH__CONFIRM_WINDOW + 1; i++) assert_int_equal(T.confirmed_num[i], i + 1);
    assert_true(bh__outbox_idle(&T.ob));
    end();
}

static void test_write_room_holds_publishes_until_the_socket_drains(void **state)
{
    (void)state;
    enum { N = 100 }; /* a kilobyte each: more than the socket takes */
    up();
    fb_socket_stuck(true);
    for (int i = 0; i < N; i++) send_big(i % 2 ? "B" : "A");
    size_t fit = published(0);
    print_message("%zu of %d fit into the socket\n", fit, N);
    assert_in_range(fit, 1, N - 1);
    bh__outbox_watch(&T.ob); /* the end of this tick */
    assert_true(uv_is_active((uv_handle_t *)&T.ob.drain));
    /* The drain timer looks again and again; nothing drains meanwhile. */
    lu_run_for(&T.rig.lu, 50);
    assert_int_equal(published(0), fit);
    assert_in_range(T.outbox_ticks, 2, 50);
    fb_socket_stuck(false);
    LU_UNTIL(&T.rig.lu, WAIT_MS, published(0) == N);
    assert_int_equal(published(0), N);
    for (size_t i = 0; i < N; i++) assert_int_equal(sent(0)[i], i % 2 ? 'B' : 'A');
    LU_UNTIL(&T.rig.lu, WAIT_MS, !uv_is_active((uv_handle_t *)&T.ob.drain)); /* nothing waits */
    assert_false(uv_is_active((uv_handle_t *)&T.ob.drain));
    end(); /* and no publish was larger than the room left (a violation) */
}

static void test_a_nack_is_sent_again_after_a_pause_behind_what_waits(void **state)
{
    (void)state;
    up();
    send_one("A");
    send_one("B");
    block("memory alarm");
    send_one("C");
    uv_update_time(&T.rig.lu.loop); /* the timer counts from the loop's clock */
    uint64_t t0 = uv_hrtime();
    confirm(1, false, false); /* A refused */
    assert_int_equal(T.n_confirmed, 0);
    assert_int_equal(bh__outbox_unconfirmed(&T.ob), 1);
    assert_false(bh__outbox_idle(&T.ob));
    assert_int_equal(fl_count("broker refused (nack) events 'svc.happened'"), 1);
    LU_UNTIL(&T.rig.lu, WAIT_MS, T.outbox_ticks == 1);
    assert_int_equal(T.outbox_ticks, 1);
    uint64_t paused = (T.outbox_tick_ns - t0) / MS;
    print_message("sent again after %llu ms\n", (unsigned long long)paused);
    assert_in_range(paused, BH__NACK_PAUSE_MS - 1, BH__NACK_PAUSE_MS + 1000);
    assert_string_equal(sent(0), "AB");
    block(NULL);
    LU_UNTIL(&T.rig.lu, WAIT_MS, published(0) == 4);
    assert_string_equal(sent(0), "ABCA");
    confirm(4, true, true);
    assert_int_equal(T.n_confirmed, 3);
    T.confirmed[3] = '\0';
    assert_string_equal(T.confirmed, "BCA");
    assert_true(bh__outbox_idle(&T.ob));
    end();
}

static void test_lost_puts_unconfirmed_in_front_oldest_first(void **state)
{
    (void)state;
    up();
    send_big("A");
    send_big("B");
    send_big("C");
    confirm(2, false, true); /* B is done */
    block("memory alarm");
    send_big("D");
    send_big("E");
    /* A small socket next: the room of the old one must not count. */
    fb_socket_size(2 * BIG + 48);
    fb_lose("gone");
    LU_UNTIL(&T.rig.lu, WAIT_MS, published(2) == 4);
    assert_string_equal(sent(2), "ACDE");
    for (size_t i = 0; i < 4; i++) assert_int_equal(fb_nth(FB_PUBLISH, 2, i)->tag, i + 1);
    assert_int_equal(bh__outbox_unconfirmed(&T.ob), 4);
    confirm(4, true, true);
    T.confirmed[T.n_confirmed] = '\0';
    assert_string_equal(T.confirmed, "BACDE");
    end();
}

static void test_a_return_marks_the_publish_with_its_id(void **state)
{
    (void)state;
    up();
    const uint64_t ids[] = {7, 8, 0, 9};
    const char *names[] = {"A", "B", "C", "D"};
    for (size_t i = 0; i < 4; i++) {
        bh__out_t *o = msg_len(names[i], 1);
        o->id = ids[i];
        bh__outbox_send(&T.ob, o);
    }
    bh__hdr_t conv = bh__hdr_string("conversation_id", "conv-1");
    bh__outbox_returned(&T.ob, 8, "commands", "svc.do", 312, "NO_ROUTE", &conv, 1);
    bh__outbox_returned(&T.ob, 0, "commands", "svc.do", 312, "NO_ROUTE", NULL, 0);  /* no id */
    bh__outbox_returned(&T.ob, 99, "commands", "svc.do", 312, "NO_ROUTE", NULL, 0); /* unknown */
    bh__outbox_returned(&T.ob, 9, "commands", "svc.do", 312, "NO_ROUTE", NULL, 0);
    assert_int_equal(fl_count("returned a message published to 'commands' with key 'svc.do': "
                              "312 NO_ROUTE"),
                     4);
    confirm(3, true, true);
    assert_int_equal(T.n_confirmed, 3);
    assert_false(T.confirmed_returned[0]);
    assert_true(T.confirmed_returned[1]);
    assert_false(T.confirmed_returned[2]);
    /* D, returned, is published again on a new connection: that publish
     * has not come back. */
    fb_lose("gone");
    LU_UNTIL(&T.rig.lu, WAIT_MS, published(2) == 1);
    confirm(1, false, true);
    assert_int_equal(T.n_confirmed, 4);
    assert_int_equal(T.confirmed[3], 'D');
    assert_false(T.confirmed_returned[3]);
    end();
}

static void test_each_acked_publish_is_confirmed_once(void **state)
{
    (void)state;
    up();
    for (const char *n = "ABCDE"; *n; n++) send_one((char[]){*n, '\0'});
    confirm(2, false, true);
    confirm(2, false, true); /* again */
    assert_int_equal(T.n_confirmed, 1);
    confirm(4, true, true);
    confirm(4, true, true);
    confirm(3, false, true);
    assert_int_equal(T.n_confirmed, 4);
    confirm(5, false, false); /* refused: not confirmed */
    confirm(9, false, true);  /* unknown */
    assert_int_equal(T.n_confirmed, 4);
    T.confirmed[4] = '\0';
    assert_string_equal(T.confirmed, "BACD");
    assert_int_equal(bh__outbox_unconfirmed(&T.ob), 0);
    assert_false(bh__outbox_idle(&T.ob)); /* E waits to be sent again */
    end();
}

static void test_idle_and_unconfirmed(void **state)
{
    (void)state;
    assert_true(bh__outbox_idle(&T.ob));
    send_one("A"); /* not connected yet: waits */
    assert_false(bh__outbox_idle(&T.ob));
    assert_int_equal(bh__outbox_unconfirmed(&T.ob), 0);
    up();
    assert_string_equal(sent(0), "A");
    assert_int_equal(bh__outbox_unconfirmed(&T.ob), 1);
    assert_false(bh__outbox_idle(&T.ob));
    confirm(1, false, true);
    assert_int_equal(bh__outbox_unconfirmed(&T.ob), 0);
    assert_true(bh__outbox_idle(&T.ob));
    end();
}

/* An event with a body of len bytes (all 'x' after the name) and a
 * conversation id of cid_len bytes. */
static bh__out_t *msg_huge(const char *name, size_t len, size_t cid_len)
{
    char *body = malloc(len), *cid = malloc(cid_len + 1);
    assert_non_null(body);
    assert_non_null(cid);
    memset(body, 'x', len);
    memcpy(body, name, strlen(name));
    memset(cid, 'c', cid_len);
    cid[cid_len] = '\0';
    bh__out_t *o =
        bh__out_new(BH__EX_EVENTS, "svc.happened", "text/plain", cid, NULL, NULL, NULL, body, len);
    free(body);
    free(cid);
    assert_non_null(o);
    return o;
}

static void test_a_message_larger_than_the_room_goes_out_in_pieces(void **state)
{
    (void)state;
    enum { MB = 1 << 20 };
    up();
    fb_socket_stuck(true); /* only what the socket holds goes out at first */
    bh__outbox_send(&T.ob, msg_huge("A", 3 * MB, 10));
    send_one("B");
    send_one("C");
    assert_int_equal(published(0), 1); /* A begun: B and C wait for its body */
    size_t frames = fb_body_frames();
    assert_in_range(frames, 1, 1000);
    bh__outbox_watch(&T.ob);
    assert_true(uv_is_active((uv_handle_t *)&T.ob.drain));
    lu_run_for(&T.rig.lu, 30);
    assert_int_equal(published(0), 1);
    assert_int_equal(fb_body_frames(), frames);
    fb_socket_stuck(false);
    LU_UNTIL(&T.rig.lu, WAIT_MS, published(0) == 3);
    assert_string_equal(sent(0), "ABC");
    /* 3 MiB through a 64 KiB socket: many frames, none over the room (the
     * fake counts a violation), and B only after the last of them. */
    print_message("%zu body frames\n", fb_body_frames());
    assert_true(fb_body_frames() >= 3 * MB / FB_SOCKET_ROOM);
    assert_int_equal(fb_nth(FB_PUBLISH, 0, 0)->tag, 1);
    confirm(3, true, true);
    assert_int_equal(T.n_confirmed, 3);
    assert_true(bh__outbox_idle(&T.ob));
    end();
}

static void test_a_connection_lost_mid_body_sends_the_message_again_whole(void **state)
{
    (void)state;
    up();
    fb_socket_stuck(true);
    bh__outbox_send(&T.ob, msg_huge("A", 1 << 20, 10));
    send_one("B");
    assert_int_equal(published(1), 1);
    fb_socket_stuck(false);
    fb_lose("gone");
    LU_UNTIL(&T.rig.lu, WAIT_MS, published(2) == 2);
    assert_string_equal(sent(2), "AB");
    assert_int_equal(fb_nth(FB_PUBLISH, 2, 0)->len, 1 << 20);
    end();
}

static void test_headers_over_frame_max_fail_that_message_only(void **state)
{
    (void)state;
    up();
    send_one("A");
    bh__outbox_send(&T.ob, msg_huge("X", 10, 131100)); /* headers > 131072 */
    send_one("B");
    LU_UNTIL(&T.rig.lu, WAIT_MS, published(0) == 2); /* X waited for an empty socket */
    assert_string_equal(sent(0), "AB");
    assert_int_equal(T.n_failed, 1);
    assert_non_null(strstr(T.failed_why, "over the broker's frame_max of 131072"));
    assert_true(bh__conn_ready(&T.rig.conn)); /* no connection loss */
    /* Just under the limit goes out, in one frame of headers, on an empty
     * socket smaller than that frame. */
    fb_frame_max(200000);
    bh__outbox_send(&T.ob, msg_huge("Y", 10, 131100));
    LU_UNTIL(&T.rig.lu, WAIT_MS, published(0) == 3); /* once A and B are read */
    assert_string_equal(sent(0), "ABY");
    assert_int_equal(T.n_failed, 1);
    end();
}

static void test_logs_go_out_when_writable(void **state)
{
    (void)state;
    up();
    fl_queue("svc.INFO", "{\"short_message\":\"one\"}");
    fl_queue("svc.INFO", "{\"short_message\":\"two\"}");
    bh__outbox_flush_logs(&T.ob);
    assert_int_equal(fb_count(FB_PUBLISH_LOG, 0), 2);
    assert_string_equal(fb_nth(FB_PUBLISH_LOG, 0, 1)->body, "{\"short_message\":\"two\"}");
    assert_string_equal(fb_nth(FB_PUBLISH_LOG, 0, 1)->key, "svc.INFO");
    assert_int_equal(fl_queued(), 0);
    block("memory alarm");
    fl_queue("svc.INFO", "{\"short_message\":\"three\"}");
    fl_drop(4);
    bh__outbox_flush_logs(&T.ob);
    assert_int_equal(fb_count(FB_PUBLISH_LOG, 0), 2);
    assert_int_equal(fl_queued(), 1); /* put back */
    assert_int_equal(fl_count("4 log records were dropped"), 1);
    block(NULL); /* the tick flushes them */
    assert_int_equal(fb_count(FB_PUBLISH_LOG, 0), 3);
    assert_int_equal(fl_queued(), 0);
    assert_int_equal(bh__outbox_unconfirmed(&T.ob), 0); /* logs have no confirms */
    end();
}

static void test_free_frees_everything(void **state)
{
    (void)state;
    up();
    send_one("A");
    send_one("B");
    confirm(1, false, false); /* A refused, waits for its pause */
    block("memory alarm");
    send_one("C");
    assert_false(bh__outbox_idle(&T.ob));
    end(); /* B unconfirmed, A refused, C unsent: freed, and nothing confirmed */
    assert_int_equal(T.n_confirmed, 0);
}

int main(void)
{
#define T_(f) cmocka_unit_test_setup_teardown(f, setup, rig_teardown)
    const struct CMUnitTest tests[] = {
        T_(test_order_is_kept_behind_what_waits),
        T_(test_the_window_holds_publish_1001_until_a_confirm),
        T_(test_write_room_holds_publishes_until_the_socket_drains),
        T_(test_a_nack_is_sent_again_after_a_pause_behind_what_waits),
        T_(test_lost_puts_unconfirmed_in_front_oldest_first),
        T_(test_a_return_marks_the_publish_with_its_id),
        T_(test_each_acked_publish_is_confirmed_once),
        T_(test_idle_and_unconfirmed),
        T_(test_a_message_larger_than_the_room_goes_out_in_pieces),
        T_(test_a_connection_lost_mid_body_sends_the_message_again_whole),
        T_(test_headers_over_frame_max_fail_that_message_only),
        T_(test_logs_go_out_when_writable),
        T_(test_free_frees_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
