/* test_notify.c -- what systemd is told (host/notify.c, notify_systemd.c).
 *
 * The sink is the test's: it records every message. Services are
 * bh__notify_svc_t blocks that the test ticks itself, standing in for their
 * I/O threads, with a real completion queue each (host/cq.c) so that the
 * watchdog's probes are real kicks. One test runs a real I/O thread that
 * answers the probes until the test blocks it; another sends through the
 * real sd_notify to a datagram socket of the test's own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "fake_log.h"
#include "loop_util.h"
#include "notify.h"

enum { MAX_MSGS = 256, N_SVC = 3 };

static struct {
    char msgs[MAX_MSGS][BH__NOTIFY_STATUS_MAX];
    uint64_t at[MAX_MSGS]; /* uv_hrtime of each, ns */
    size_t n;
} sink;

static void sink_send(void *ud, const char *text)
{
    (void)ud;
    if (sink.n == MAX_MSGS) return;
    snprintf(sink.msgs[sink.n], sizeof sink.msgs[0], "%s", text);
    sink.at[sink.n++] = uv_hrtime();
}

/* Messages that start with prefix. */
static size_t count(const char *prefix)
{
    size_t c = 0;
    for (size_t i = 0; i < sink.n; i++) c += strncmp(sink.msgs[i], prefix, strlen(prefix)) == 0;
    return c;
}

/* The last message that starts with prefix, or "". */
static const char *last(const char *prefix)
{
    for (size_t i = sink.n; i-- > 0;)
        if (!strncmp(sink.msgs[i], prefix, strlen(prefix))) return sink.msgs[i];
    return "";
}

/* The services, each with a real queue on a loop that nobody runs (a kick
 * is an async send that is never looked at). */
static struct {
    uv_loop_t loop;
    uv_async_t wake[N_SVC];
    bh__cq_t cq[N_SVC];
    bh__notify_svc_t svc[N_SVC];
    bh__notify_t n;
} t;

static bool no_collect(void *ud)
{
    (void)ud;
    return false;
}

static int setup(void **state)
{
    static const char *const names[N_SVC] = {"echo", "cart", "billing"};
    (void)state;
    memset(&sink, 0, sizeof sink);
    memset(&t, 0, sizeof t);
    fl_reset();
    uv_loop_init(&t.loop);
    for (int i = 0; i < N_SVC; i++) {
        uv_async_init(&t.loop, &t.wake[i], NULL);
        bh__cq_init(&t.cq[i], &t.loop, &t.wake[i], 1, no_collect, NULL);
        bh__notify_svc_init(&t.svc[i], names[i], &t.cq[i]);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bh__notify_free(&t.n);
    for (int i = 0; i < N_SVC; i++) {
        bh__cq_close(&t.cq[i]);
        uv_close((uv_handle_t *)&t.wake[i], NULL);
    }
    uv_run(&t.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&t.loop), 0);
    for (int i = 0; i < N_SVC; i++) bh__cq_free(&t.cq[i]);
    return 0;
}

/* A notifier on the first n services, with a watchdog of usec. */
static void watch(size_t n, uint64_t usec)
{
    bh__notify_sink_t s = {sink_send, NULL, usec};
    assert_int_equal(bh__notify_init(&t.n, &s, n), 0);
    for (size_t i = 0; i < n; i++) bh__notify_add(&t.n, &t.svc[i]);
}

static void tick(int i, bh__conn_state_t st) { bh__notify_svc_tick(&t.svc[i], st, 0, 0); }

static int state_of(int i) { return atomic_load(&t.svc[i].state); }

static void state_follows_the_connection_and_remembers_a_lost_one(void **state)
{
    (void)state;
    assert_int_equal(state_of(0), BH__NOTIFY_STARTING);
    tick(0, BH__CONN_DOWN);
    assert_int_equal(state_of(0), BH__NOTIFY_CONNECTING);
    tick(0, BH__CONN_UP);
    assert_int_equal(state_of(0), BH__NOTIFY_CONSUMING);
    tick(0, BH__CONN_DOWN);
    assert_int_equal(state_of(0), BH__NOTIFY_RECONNECTING);
    tick(0, BH__CONN_DRAIN_DOWN);
    assert_int_equal(state_of(0), BH__NOTIFY_DRAINING);
    tick(0, BH__CONN_DRAIN_UP);
    assert_int_equal(state_of(0), BH__NOTIFY_DRAINING);
    tick(0, BH__CONN_CLOSED);
    assert_int_equal(state_of(0), BH__NOTIFY_STOPPED);
    assert_int_equal(atomic_load(&t.svc[0].beats), 6);
    assert_string_equal(bh__notify_state_name(BH__NOTIFY_RECONNECTING), "reconnecting");
}

static void ready_waits_for_every_service_to_consume(void **state)
{
    (void)state;
    watch(2, 0);
    bh__notify_poll(&t.n, 0);
    tick(0, BH__CONN_UP);
    tick(1, BH__CONN_DOWN);
    bh__notify_poll(&t.n, 200);
    assert_int_equal(count("READY=1"), 0);
    tick(1, BH__CONN_UP);
    bh__notify_poll(&t.n, 400);
    assert_int_equal(count("READY=1"), 1);
    /* STATUS comes first, so systemd shows what READY means. */
    assert_string_equal(sink.msgs[sink.n - 1], "READY=1");
    assert_non_null(strstr(sink.msgs[sink.n - 2], "cart: consuming"));
}

static void ready_is_sent_once_even_after_a_reconnect_while_status_shows_it(void **state)
{
    (void)state;
    watch(1, 0);
    tick(0, BH__CONN_UP);
    bh__notify_poll(&t.n, 0);
    tick(0, BH__CONN_DOWN);
    bh__notify_poll(&t.n, 200);
    assert_non_null(strstr(last("STATUS="), "echo: reconnecting"));
    tick(0, BH__CONN_UP);
    bh__notify_poll(&t.n, 400);
    bh__notify_poll(&t.n, 600);
    assert_non_null(strstr(last("STATUS="), "echo: consuming"));
    assert_int_equal(count("READY=1"), 1);
    assert_int_equal(count("STATUS="), 3);
}

static void status_names_each_service_with_its_state_in_flight_and_handled(void **state)
{
    (void)state;
    watch(3, 0);
    bh__notify_svc_tick(&t.svc[0], BH__CONN_UP, 3, 1520);
    bh__notify_svc_tick(&t.svc[1], BH__CONN_DOWN, 0, 0);
    bh__notify_poll(&t.n, 0);
    assert_string_equal(last("STATUS="), "STATUS=echo: consuming, 3 in flight, 1520 handled; "
                                         "cart: connecting, 0 in flight, 0 handled; "
                                         "billing: starting, 0 in flight, 0 handled");
}

static void status_repeats_changed_counts_only_after_the_period(void **state)
{
    (void)state;
    watch(1, 0);
    bh__notify_svc_tick(&t.svc[0], BH__CONN_UP, 1, 10);
    bh__notify_poll(&t.n, 1000);
    assert_int_equal(count("STATUS="), 1);
    bh__notify_svc_tick(&t.svc[0], BH__CONN_UP, 2, 20); /* counts only: not per message */
    bh__notify_poll(&t.n, 1000 + BH__NOTIFY_STATUS_MS - 1);
    assert_int_equal(count("STATUS="), 1);
    bh__notify_poll(&t.n, 1000 + BH__NOTIFY_STATUS_MS);
    assert_int_equal(count("STATUS="), 2);
    assert_string_equal(last("STATUS="), "STATUS=echo: consuming, 2 in flight, 20 handled");
    /* Nothing changed: nothing is repeated, however long. */
    bh__notify_poll(&t.n, 1000 + 10 * BH__NOTIFY_STATUS_MS);
    assert_int_equal(count("STATUS="), 2);
    /* A state change goes out at once. */
    bh__notify_svc_tick(&t.svc[0], BH__CONN_DRAIN_UP, 2, 20);
    bh__notify_poll(&t.n, 1000 + 10 * BH__NOTIFY_STATUS_MS + 1);
    assert_int_equal(count("STATUS="), 3);
}

static void a_long_status_is_cut_with_dots(void **state)
{
    char name[600];
    (void)state;
    memset(name, 'x', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    t.svc[0].name = t.svc[1].name = name;
    watch(2, 0);
    bh__notify_poll(&t.n, 0);
    const char *s = last("STATUS=");
    assert_int_equal(strlen(s), BH__NOTIFY_STATUS_MAX - 1);
    assert_string_equal(s + strlen(s) - 3, "...");
}

static void stopping_is_sent_once_and_stops_any_later_ready(void **state)
{
    (void)state;
    watch(1, 0);
    tick(0, BH__CONN_DOWN);
    bh__notify_poll(&t.n, 0);
    bh__notify_stopping(&t.n);
    bh__notify_stopping(&t.n);
    assert_int_equal(count("STOPPING=1"), 1);
    tick(0, BH__CONN_UP); /* cannot happen in a drain; READY must not follow anyway */
    bh__notify_poll(&t.n, 200);
    assert_int_equal(count("READY=1"), 0);
}

static void watchdog_pings_while_every_io_thread_beats_and_probes_each(void **state)
{
    (void)state;
    watch(2, 400000);
    for (int round = 0; round < 5; round++) {
        tick(0, BH__CONN_UP);
        tick(1, BH__CONN_DOWN); /* down, but its loop runs: alive */
        assert_true(bh__notify_watchdog(&t.n));
    }
    assert_int_equal(count("WATCHDOG=1"), 5);
    assert_int_equal(fl_count(), 0);
    /* The probes are kicks of each queue: its I/O thread's async handle. */
    uv_run(&t.loop, UV_RUN_NOWAIT);
}

static void watchdog_withholds_pings_from_a_silent_io_thread_and_names_it(void **state)
{
    (void)state;
    watch(2, 400000);
    tick(0, BH__CONN_UP);
    tick(1, BH__CONN_UP);
    assert_true(bh__notify_watchdog(&t.n));
    tick(0, BH__CONN_UP);                   /* cart stops answering from here */
    assert_true(bh__notify_watchdog(&t.n)); /* one probe missed: within the interval */
    tick(0, BH__CONN_UP);
    assert_false(bh__notify_watchdog(&t.n));
    tick(0, BH__CONN_UP);
    assert_false(bh__notify_watchdog(&t.n));
    assert_int_equal(count("WATCHDOG=1"), 2);
    assert_int_equal(fl_count_match(BH_CRITICAL, "I/O thread of service 'cart'"), 1);
    /* It answers again: the pings resume. */
    tick(1, BH__CONN_UP);
    tick(0, BH__CONN_UP);
    assert_true(bh__notify_watchdog(&t.n));
    assert_int_equal(count("WATCHDOG=1"), 3);
    assert_int_equal(fl_count_match(BH_NOTICE, "every I/O thread answers again"), 1);
}

static void once_stopping_the_pings_go_on_without_condition(void **state)
{
    (void)state;
    watch(1, 400000);
    tick(0, BH__CONN_DRAIN_UP);
    bh__notify_stopping(&t.n);
    for (int round = 0; round < 4; round++) assert_true(bh__notify_watchdog(&t.n));
    assert_int_equal(count("WATCHDOG=1"), 4);
    assert_int_equal(fl_count(), 0);
}

static void starting_and_stopped_services_are_not_asked_to_beat(void **state)
{
    (void)state;
    watch(3, 400000);
    tick(1, BH__CONN_CLOSED); /* its loop ends: it ticks no more */
    for (int round = 0; round < 4; round++) {
        tick(0, BH__CONN_UP);
        assert_true(bh__notify_watchdog(&t.n)); /* billing has not started yet */
    }
    assert_int_equal(count("WATCHDOG=1"), 4);
}

static void no_watchdog_interval_means_no_pings(void **state)
{
    (void)state;
    watch(1, 0);
    tick(0, BH__CONN_UP);
    assert_false(bh__notify_watchdog(&t.n));
    assert_int_equal(count("WATCHDOG=1"), 0);
}

static void an_inactive_notifier_does_nothing(void **state)
{
    bh__notify_t n;
    (void)state;
    memset(&n, 0, sizeof n);
    bh__notify_add(&n, &t.svc[0]);
    bh__notify_start(&n, &t.loop);
    bh__notify_poll(&n, 0);
    assert_false(bh__notify_watchdog(&n));
    bh__notify_stopping(&n);
    bh__notify_close(&n);
    bh__notify_free(&n);
    assert_int_equal(sink.n, 0);
}

/* -- a real I/O thread, and the timers -------------------------------------- */

static struct {
    uv_loop_t loop;
    uv_async_t wake;
    bh__cq_t cq;
    bh__notify_svc_t svc;
    uv_thread_t thread;
    atomic_bool block, quit;
    uv_sem_t held, release;
} io;

/* What the service's on_wake does, in short: a tick. When told to block,
 * it hangs as an I/O thread stuck in a call would. */
static void io_wake(uv_async_t *a)
{
    if (atomic_load(&io.quit)) {
        bh__cq_close(&io.cq);
        uv_close((uv_handle_t *)a, NULL);
        return;
    }
    if (atomic_exchange(&io.block, false)) {
        uv_sem_post(&io.held);
        uv_sem_wait(&io.release);
    }
    bh__notify_svc_tick(&io.svc, BH__CONN_UP, 0, 0);
}

static void io_main(void *arg)
{
    (void)arg;
    uv_run(&io.loop, UV_RUN_DEFAULT);
}

/* Pings between the messages from and to. */
static size_t pings(size_t from, size_t to)
{
    size_t c = 0;
    for (size_t i = from; i < to; i++) c += strcmp(sink.msgs[i], "WATCHDOG=1") == 0;
    return c;
}

static void timers_ping_at_half_the_interval_and_stop_while_an_io_thread_is_stuck(void **state)
{
    lu_t lu;
    bh__notify_sink_t s = {sink_send, NULL, 100000}; /* 100 ms: a ping every 50 ms */
    (void)state;
    memset(&io, 0, sizeof io);
    uv_loop_init(&io.loop);
    uv_async_init(&io.loop, &io.wake, io_wake);
    bh__cq_init(&io.cq, &io.loop, &io.wake, 1, no_collect, NULL);
    bh__notify_svc_init(&io.svc, "echo", &io.cq);
    uv_sem_init(&io.held, 0);
    uv_sem_init(&io.release, 0);
    assert_int_equal(uv_thread_create(&io.thread, io_main, NULL), 0);
    bh__cq_kick(&io.cq); /* its first tick */

    lu_init(&lu);
    assert_int_equal(bh__notify_init(&t.n, &s, 1), 0);
    bh__notify_add(&t.n, &io.svc);
    bh__notify_start(&t.n, &lu.loop);
    lu_run_for(&lu, 1000);
    size_t alive = pings(0, sink.n);
    uint64_t span_ns = sink.at[sink.n - 1] - sink.at[0];
    print_message("%zu pings in %.0f ms while the I/O thread answers\n", alive, span_ns / 1e6);
    /* About 20; a loaded machine delays timers, never adds any. */
    assert_in_range(alive, 8, 22);
    assert_int_equal(count("READY=1"), 1);

    atomic_store(&io.block, true);
    bh__cq_kick(&io.cq);
    uv_sem_wait(&io.held); /* stuck from here */
    size_t mark = sink.n;
    lu_run_for(&lu, 500);
    size_t stuck = pings(mark, sink.n);
    print_message("%zu pings in the 500 ms the I/O thread was stuck\n", stuck);
    /* At most the round that had its answer already and the one allowed
     * miss: then nothing, for 400 ms, where systemd would act after 100. */
    assert_in_range(stuck, 0, 2);
    assert_int_equal(fl_count_match(BH_CRITICAL, "I/O thread of service 'echo'"), 1);

    uv_sem_post(&io.release);
    mark = sink.n;
    lu_run_for(&lu, 500);
    print_message("%zu pings in the 500 ms after it was released\n", pings(mark, sink.n));
    assert_true(pings(mark, sink.n) >= 3);

    bh__notify_close(&t.n);
    assert_int_equal(lu_finish(&lu), 0);
    atomic_store(&io.quit, true);
    uv_async_send(&io.wake);
    uv_thread_join(&io.thread);
    assert_int_equal(uv_loop_close(&io.loop), 0);
    bh__cq_free(&io.cq);
    uv_sem_destroy(&io.held);
    uv_sem_destroy(&io.release);
}

/* -- the real sink ------------------------------------------------------------- */

static void systemd_sink_reads_the_environment_and_sends_datagrams(void **state)
{
    char dir[] = "/tmp/bh-notify-XXXXXX", path[64], buf[64];
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    bh__notify_sink_t s;
    (void)state;
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    assert_false(bh__notify_systemd(&s)); /* not under systemd: nothing runs */

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/notify", dir);
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    setenv("NOTIFY_SOCKET", path, 1);
    assert_true(bh__notify_systemd(&s));
    assert_int_equal(s.watchdog_usec, 0);
    setenv("WATCHDOG_USEC", "300000", 1);
    assert_true(bh__notify_systemd(&s));
    assert_int_equal(s.watchdog_usec, 300000);
    setenv("WATCHDOG_PID", "1", 1); /* the watchdog is another process's */
    assert_true(bh__notify_systemd(&s));
    assert_int_equal(s.watchdog_usec, 0);

    s.send(s.ud, "READY=1");
    ssize_t got = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
    assert_int_equal(got, 7);
    buf[got] = '\0';
    assert_string_equal(buf, "READY=1");
    /* The environment stays for the next message. */
    assert_non_null(getenv("NOTIFY_SOCKET"));
    close(fd);
    unlink(path);
    rmdir(dir);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(state_follows_the_connection_and_remembers_a_lost_one),
        T(ready_waits_for_every_service_to_consume),
        T(ready_is_sent_once_even_after_a_reconnect_while_status_shows_it),
        T(status_names_each_service_with_its_state_in_flight_and_handled),
        T(status_repeats_changed_counts_only_after_the_period),
        T(a_long_status_is_cut_with_dots),
        T(stopping_is_sent_once_and_stops_any_later_ready),
        T(watchdog_pings_while_every_io_thread_beats_and_probes_each),
        T(watchdog_withholds_pings_from_a_silent_io_thread_and_names_it),
        T(once_stopping_the_pings_go_on_without_condition),
        T(starting_and_stopped_services_are_not_asked_to_beat),
        T(no_watchdog_interval_means_no_pings),
        T(an_inactive_notifier_does_nothing),
        T(timers_ping_at_half_the_interval_and_stop_while_an_io_thread_is_stuck),
        T(systemd_sink_reads_the_environment_and_sends_datagrams),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
