/* test_notify.c -- bushost under systemd, with the test playing systemd: a
 * datagram socket of the test's own as NOTIFY_SOCKET, WATCHDOG_USEC set.
 *
 * The host's broker URL is a relay of the test's on a port that is bound but
 * not listening, so every connection is refused until the test opens it and
 * forwards to the real broker. That shows, in order: no READY=1 while the
 * broker cannot be reached (and the watchdog pinging all the same: the host
 * is alive), READY=1 once the service consumes, STATUS lines with the state
 * and the handled count, WATCHDOG=1 at half the interval, and STOPPING=1 on
 * SIGTERM followed by a clean exit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"

enum { WATCHDOG_USEC = 400000, MAX_MSGS = 4096, DOWN_MS = 3000 };
#define REPLY_KEY "itest.NotifyDone"

/* -- systemd's side: the notify socket -------------------------------------- */

static struct {
    int fd;
    char dir[64], path[96];
    size_t n;
    char *text[MAX_MSGS];
    int64_t at[MAX_MSGS]; /* it_now_ms */
} sd = {.fd = -1};

static void sd_open(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sd.dir, sizeof sd.dir, "/tmp/bh-itest-notify-XXXXXX");
    if (!mkdtemp(sd.dir)) IT_FAIL("mkdtemp: %s", strerror(errno));
    snprintf(sd.path, sizeof sd.path, "%s/notify", sd.dir);
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sd.path);
    sd.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sd.fd < 0 || bind(sd.fd, (struct sockaddr *)&sa, sizeof sa))
        IT_FAIL("notify socket %s: %s", sd.path, strerror(errno));
}

static void sd_close(void)
{
    if (sd.fd >= 0) close(sd.fd);
    sd.fd = -1;
    unlink(sd.path);
    rmdir(sd.dir);
    for (size_t i = 0; i < sd.n; i++) free(sd.text[i]);
    sd.n = 0;
}

/* Take the datagrams that come within ms (each may hold several lines). */
static void sd_read(int ms)
{
    int64_t end = it_now_ms() + ms;
    char buf[4096];
    for (int64_t left; (left = end - it_now_ms()) > 0;) {
        struct pollfd p = {sd.fd, POLLIN, 0};
        if (poll(&p, 1, (int)left) <= 0) continue;
        ssize_t got = recv(sd.fd, buf, sizeof buf - 1, 0);
        if (got < 0) continue;
        buf[got] = '\0';
        char *save = NULL;
        for (char *l = strtok_r(buf, "\n", &save); l && sd.n < MAX_MSGS;
             l = strtok_r(NULL, "\n", &save)) {
            if (getenv("BH_ITEST_VERBOSE")) print_message("notify: %s\n", l);
            sd.at[sd.n] = it_now_ms();
            sd.text[sd.n++] = it_strdup(l);
        }
    }
}

/* The index of the first message from `from` on that starts with prefix and
 * holds `with` (NULL: anything), or -1. */
static long sd_find(size_t from, const char *prefix, const char *with)
{
    for (size_t i = from; i < sd.n; i++)
        if (!strncmp(sd.text[i], prefix, strlen(prefix)) && (!with || strstr(sd.text[i], with)))
            return (long)i;
    return -1;
}

static size_t sd_count(size_t from, size_t to, const char *line)
{
    size_t c = 0;
    for (size_t i = from; i < to; i++) c += strcmp(sd.text[i], line) == 0;
    return c;
}

/* Read until a message like sd_find's comes, for ms at the most. */
static long sd_wait(size_t from, const char *prefix, const char *with, int ms)
{
    int64_t end = it_now_ms() + ms;
    long i;
    while ((i = sd_find(from, prefix, with)) < 0 && it_now_ms() < end) sd_read(50);
    return i;
}

/* -- the relay to the broker ------------------------------------------------ */

static struct {
    int lfd, port, broker_port;
    int stop[2];
    pthread_t thread;
    bool running;
    atomic_int accepted;
} relay = {.lfd = -1, .stop = {-1, -1}};

/* Bound, not listening: a connect is refused, and no one else can take
 * the port meanwhile. */
static void relay_bind(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    relay.broker_port = atoi(it_env("BH_BROKER_PORT"));
    relay.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (relay.lfd < 0 || bind(relay.lfd, (struct sockaddr *)&sa, sizeof sa) ||
        getsockname(relay.lfd, (struct sockaddr *)&sa, &len))
        IT_FAIL("relay socket: %s", strerror(errno));
    relay.port = ntohs(sa.sin_port);
}

static int connect_broker(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)relay.broker_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Copy what `from` has to `to`; false when either side is done. */
static bool pass(int from, int to)
{
    char buf[65536];
    ssize_t got = read(from, buf, sizeof buf);
    if (got <= 0) return false;
    for (ssize_t off = 0, w; off < got; off += w)
        if ((w = write(to, buf + off, (size_t)(got - off))) <= 0) return false;
    return true;
}

/* One connection at a time (the host has one per service); a new one
 * replaces the old. */
static void *relay_main(void *arg)
{
    int a = -1, b = -1;
    (void)arg;
    for (;;) {
        struct pollfd p[4] = {
            {relay.stop[0], POLLIN, 0}, {relay.lfd, POLLIN, 0}, {a, POLLIN, 0}, {b, POLLIN, 0}};
        if (poll(p, 4, -1) < 0) continue;
        if (p[0].revents) break;
        bool ok = true;
        if (p[2].revents) ok = pass(a, b);
        if (ok && p[3].revents) ok = pass(b, a);
        if (!ok) {
            close(a);
            close(b);
            a = b = -1;
        }
        if (p[1].revents) {
            int c = accept4(relay.lfd, NULL, NULL, SOCK_CLOEXEC);
            if (c < 0) continue;
            if (a >= 0) close(a), close(b);
            a = c;
            b = connect_broker();
            if (b < 0) close(a), a = -1;
            else atomic_fetch_add(&relay.accepted, 1);
        }
    }
    if (a >= 0) close(a), close(b);
    return NULL;
}

static void relay_open(void)
{
    if (listen(relay.lfd, 8) || pipe(relay.stop) ||
        pthread_create(&relay.thread, NULL, relay_main, NULL))
        IT_FAIL("relay: %s", strerror(errno));
    relay.running = true;
}

static void relay_close(void)
{
    if (relay.running) {
        if (write(relay.stop[1], "x", 1) != 1) IT_FAIL("relay stop: %s", strerror(errno));
        pthread_join(relay.thread, NULL);
        relay.running = false;
    }
    for (int i = 0; i < 2; i++)
        if (relay.stop[i] >= 0) close(relay.stop[i]), relay.stop[i] = -1;
    if (relay.lfd >= 0) close(relay.lfd), relay.lfd = -1;
}

/* -- the test ------------------------------------------------------------------ */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* bushost as systemd would start it: NOTIFY_SOCKET, WATCHDOG_USEC, and
 * `url` ("BUSHOST_URL=...", NULL: the test's broker). */
static it_host_t *start_under_systemd(const it_host_opts_t *o, const char *url)
{
    static char sock[128], dog[64];
    snprintf(sock, sizeof sock, "NOTIFY_SOCKET=%s", sd.path);
    snprintf(dog, sizeof dog, "WATCHDOG_USEC=%d", WATCHDOG_USEC);
    it_host_t *h = it_host_prepare(o);
    const char *argv[] = {it_env("BH_BUSHOST"), "-c", h->ini, NULL};
    const char *env[] = {sock, dog, "WATCHDOG_PID", url, NULL};
    h->pid = it_spawn(argv, env, h->log);
    return h;
}

/* SIGTERM once (a second would end it at once): STOPPING=1, exit 0. */
static void stop_under_systemd(it_host_t *h, size_t from)
{
    kill(h->pid, SIGTERM);
    if (sd_wait(from, "STOPPING=1", NULL, 10000) < 0)
        IT_FAIL("no STOPPING=1 within 10 s of SIGTERM");
    int64_t end = it_now_ms() + 20000;
    while (it_host_alive(h) && it_now_ms() < end) it_sleep_ms(20);
    if (h->pid) IT_FAIL("bushost still runs 20 s after SIGTERM");
    assert_int_equal(h->status, 0);
}

/* Publish testkit.Echo {"id": id, "ms": ms}, replying to REPLY_KEY. */
static void echo(it_conn_t *c, const char *conv, int id, int ms)
{
    char corr[IT_ID_MAX + 16];
    json_t *v = json_pack("{s:i,s:i}", "id", id, "ms", ms);
    size_t len;
    void *body = it_cbor_encode(v, &len);
    snprintf(corr, sizeof corr, "%s-%d", conv, id);
    it_pub_t cmd = it_command("testkit.Echo", REPLY_KEY, corr, conv, "application/cbor", body, len);
    it_publish(c, &cmd);
    json_decref(v);
    free(body);
}

/* The gaps between the WATCHDOG=1 messages from..to: prints them and
 * returns the median. */
static int64_t ping_median(size_t from, size_t to, const char *phase)
{
    int64_t gaps[MAX_MSGS], prev = -1, sum = 0;
    size_t n = 0;
    for (size_t i = from; i < to; i++) {
        if (strcmp(sd.text[i], "WATCHDOG=1")) continue;
        if (prev >= 0) sum += gaps[n++] = sd.at[i] - prev;
        prev = sd.at[i];
    }
    if (n < 3) IT_FAIL("%s: only %zu gaps between WATCHDOG=1 pings", phase, n);
    qsort(gaps, n, sizeof gaps[0], cmp_i64);
    print_message("%s: %zu WATCHDOG=1 gaps, min %lld ms, median %lld ms, mean %lld ms, max %lld "
                  "ms (WATCHDOG_USEC=%d: expected %d ms)\n",
                  phase, n, (long long)gaps[0], (long long)gaps[n / 2],
                  (long long)(sum / (int64_t)n), (long long)gaps[n - 1], WATCHDOG_USEC,
                  WATCHDOG_USEC / 2000);
    return gaps[n / 2];
}

static void test_ready_only_once_consuming_with_status_pings_and_stopping(void **state)
{
    static const it_host_opts_t opts = {.plugins = "testkit"};
    char url[128], conv[IT_ID_MAX];
    it_conn_t *c = it_connect();
    it_listener_t *l = it_listen("commands", (const char *[]){REPLY_KEY, NULL});
    uint32_t consumers = 0;
    (void)state;

    it_purge(c, "testkit.commands");
    sd_open();
    relay_bind();
    snprintf(url, sizeof url, "BUSHOST_URL=amqp://guest:guest@127.0.0.1:%d/", relay.port);
    it_host_t *h = start_under_systemd(&opts, url);

    /* The broker cannot be reached: no READY, but the host is alive. */
    sd_read(DOWN_MS);
    size_t down_end = sd.n;
    char *out = it_host_output(h);
    bool refused = strstr(out, "cannot use broker") != NULL;
    free(out);
    if (!refused) IT_FAIL("the host did not even try the (refusing) broker in %d ms", DOWN_MS);
    if (!it_host_alive(h)) IT_FAIL("bushost exited with %d", h->status);
    if (sd_find(0, "READY=1", NULL) >= 0) IT_FAIL("READY=1 while the broker cannot be reached");
    if (sd_find(0, "STATUS=", "testkit: connecting") < 0)
        IT_FAIL("no STATUS saying 'testkit: connecting' while the broker was down");
    size_t down_pings = sd_count(0, down_end, "WATCHDOG=1");
    print_message("broker down for %d ms: %zu WATCHDOG=1, no READY=1\n", DOWN_MS, down_pings);
    if (down_pings < 5)
        IT_FAIL("only %zu WATCHDOG=1 in %d ms while the broker was down", down_pings, DOWN_MS);

    /* The broker comes: READY once the service consumes. */
    int64_t opened = it_now_ms();
    relay_open();
    long ready = sd_wait(down_end, "READY=1", NULL, 30000);
    if (ready < 0) IT_FAIL("no READY=1 within 30 s of the broker coming up");
    print_message("READY=1 %lld ms after the broker came up\n", (long long)(sd.at[ready] - opened));
    assert_true(it_queue_info(c, "testkit.commands", NULL, &consumers));
    if (consumers < 1) IT_FAIL("READY=1, but testkit.commands has no consumer");
    long up = sd_find(down_end, "STATUS=", "testkit: consuming");
    if (up < 0 || up > ready) IT_FAIL("no STATUS saying 'testkit: consuming' before READY=1");

    /* Handled messages show in STATUS (repeated every few seconds). */
    it_unique(conv, "conv");
    for (int i = 0; i < 3; i++) echo(c, conv, i, 0);
    for (int i = 0; i < 3; i++) {
        it_msg_t *m = it_get(l, 10000);
        if (!m) IT_FAIL("only %d of 3 results", i);
        it_msg_free(m);
    }
    long handled =
        sd_wait((size_t)ready, "STATUS=", "testkit: consuming, 0 in flight, 3 handled", 15000);
    if (handled < 0) IT_FAIL("no STATUS with '3 handled' within 15 s of the results");
    print_message("%s\n", sd.text[handled]);

    /* The pings: at half the interval. */
    sd_read(2000);
    size_t before_stop = sd.n;
    int64_t median = ping_median((size_t)ready, before_stop, "connected");
    ping_median(0, down_end, "broker down");
    if (median < WATCHDOG_USEC / 2000 - 60 || median > WATCHDOG_USEC / 2000 + 120)
        IT_FAIL("WATCHDOG=1 every %lld ms (median), not about %d", (long long)median,
                WATCHDOG_USEC / 2000);
    if (sd_count((size_t)ready + 1, before_stop, "READY=1"))
        IT_FAIL("READY=1 was sent more than once");

    /* SIGTERM: STOPPING=1, then a clean exit. */
    stop_under_systemd(h, before_stop);
    print_message("STOPPING=1 on SIGTERM; bushost exited 0; the relay saw %d connection(s)\n",
                  atomic_load(&relay.accepted));

    relay_close();
    sd_close();
    it_unlisten(l);
    it_close(c);
    it_pass();
}

/* workers = 0 runs the handler on the I/O thread: a handler of 3 s holds
 * that thread as a stuck call would, and the pings must stop meanwhile. */
static void test_an_io_thread_stuck_in_a_handler_holds_the_watchdog_pings_back(void **state)
{
    static const it_host_opts_t opts = {.plugins = "testkit",
                                        .sections = "[testkit]\nworkers = 0\n"};
    enum { HOLD_MS = 3000 };
    char conv[IT_ID_MAX];
    it_conn_t *c = it_connect();
    it_listener_t *l = it_listen("commands", (const char *[]){REPLY_KEY, NULL});
    (void)state;

    it_purge(c, "testkit.commands");
    sd_open();
    it_host_t *h = start_under_systemd(&opts, NULL);
    long ready = sd_wait(0, "READY=1", NULL, 20000);
    if (ready < 0) IT_FAIL("no READY=1 within 20 s");
    sd_read(1000);

    size_t mark = sd.n;
    int64_t sent = it_now_ms();
    it_unique(conv, "conv");
    echo(c, conv, 1, HOLD_MS);
    it_msg_t *m = it_get(l, HOLD_MS + 10000);
    if (!m) IT_FAIL("no result of the %d ms Echo", HOLD_MS);
    it_msg_free(m);
    sd_read(1500);

    /* The longest silence from the publish on, and pings after it. */
    int64_t prev = sent, gap = 0, gap_end = 0;
    size_t after = 0;
    for (size_t i = mark; i < sd.n; i++) {
        if (strcmp(sd.text[i], "WATCHDOG=1")) continue;
        if (sd.at[i] - prev > gap) gap = sd.at[i] - prev, gap_end = sd.at[i];
        prev = sd.at[i];
    }
    for (size_t i = mark; i < sd.n; i++)
        after += sd.at[i] > gap_end && !strcmp(sd.text[i], "WATCHDOG=1");
    print_message("I/O thread held %d ms by a handler: no WATCHDOG=1 for %lld ms, then %zu "
                  "pings (WATCHDOG_USEC=%d)\n",
                  HOLD_MS, (long long)gap, after, WATCHDOG_USEC);
    /* Pings every 200 ms otherwise: a silence of half the hold shows it. */
    if (gap < HOLD_MS / 2)
        IT_FAIL("the longest gap between pings was %lld ms while the I/O thread was held "
                "for %d ms",
                (long long)gap, HOLD_MS);
    if (after < 3) IT_FAIL("only %zu pings after the I/O thread was free again", after);
    char *out = it_host_output(h);
    bool named = strstr(out, "the I/O thread of service 'testkit' did not answer") != NULL;
    free(out);
    if (!named) IT_FAIL("no CRITICAL line naming the stuck service");

    stop_under_systemd(h, sd.n);
    sd_close();
    it_unlisten(l);
    it_close(c);
    it_pass();
}

/* systemctl reload (Type=notify-reload): SIGHUP gives RELOADING=1 with
 * MONOTONIC_USEC, then READY=1 once the reload ended; one that fails says
 * so in STATUS, and the host serves on. */
static void test_a_reload_says_reloading_then_ready_and_a_failed_one_says_why(void **state)
{
    static const it_host_opts_t opts = {.plugins = "testkit"};
    it_conn_t *c = it_connect();
    (void)state;

    it_purge(c, "testkit.commands");
    sd_open();
    it_host_t *h = start_under_systemd(&opts, NULL);
    if (sd_wait(0, "READY=1", NULL, 20000) < 0) IT_FAIL("no READY=1 within 20 s");
    sd_read(300);

    size_t mark = sd.n;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    unsigned long long before = (unsigned long long)now.tv_sec * 1000000u + now.tv_nsec / 1000u;
    kill(h->pid, SIGHUP);
    long reloading = sd_wait(mark, "RELOADING=1", NULL, 10000);
    if (reloading < 0) IT_FAIL("no RELOADING=1 within 10 s of SIGHUP");
    /* One datagram, read as its lines: MONOTONIC_USEC comes with it. */
    long line = sd_find((size_t)reloading, "MONOTONIC_USEC=", NULL);
    if (line != reloading + 1) IT_FAIL("RELOADING=1 without MONOTONIC_USEC in its datagram");
    const char *usec = sd.text[line];
    unsigned long long at = strtoull(usec + strlen("MONOTONIC_USEC="), NULL, 10);
    clock_gettime(CLOCK_MONOTONIC, &now);
    unsigned long long after = (unsigned long long)now.tv_sec * 1000000u + now.tv_nsec / 1000u;
    if (at < before || at > after)
        IT_FAIL("MONOTONIC_USEC=%llu is not the time of the reload (%llu..%llu)", at, before,
                after);
    if (sd_wait((size_t)reloading + 1, "READY=1", NULL, 10000) < 0)
        IT_FAIL("no READY=1 after RELOADING=1");

    /* A section no plugin has: the reload fails, and STATUS says why. */
    char *ini = it_read_file(h->ini);
    char *bad = it_asprintf("%s\n[nosuchplugin]\nx = 1\n", ini);
    it_write_file(h->ini, bad);
    mark = sd.n;
    kill(h->pid, SIGHUP);
    if (sd_wait(mark, "RELOADING=1", NULL, 10000) < 0) IT_FAIL("no RELOADING=1 the second time");
    if (sd_wait(mark, "STATUS=", "reload failed", 10000) < 0)
        IT_FAIL("no STATUS saying 'reload failed' after a reload with a bad config");
    if (sd_wait(mark, "READY=1", NULL, 10000) < 0) IT_FAIL("no READY=1 after the failed reload");
    assert_true(it_host_alive(h));
    it_write_file(h->ini, ini);
    free(ini);
    free(bad);
    stop_under_systemd(h, sd.n);
    sd_close();
    it_close(c);
    it_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_ready_only_once_consuming_with_status_pings_and_stopping),
        IT_TEST(test_an_io_thread_stuck_in_a_handler_holds_the_watchdog_pings_back),
        IT_TEST(test_a_reload_says_reloading_then_ready_and_a_failed_one_says_why),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    relay_close();
    sd_close();
    return rc;
}
