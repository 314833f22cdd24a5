/* test_reload.c -- SIGHUP reloads the plugins in place (docs/reload.md):
 * a new version serves the next messages, a bad one (init fails, another
 * ABI, not a plugin at all) leaves the old one serving with the cause
 * logged and on /readyz and /status, the cart keeps its carts, and what
 * takes a restart is refused by name. The host never stops meanwhile. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define REPLY "itest.ReloadDone"

static char *sibling(const char *name)
{
    const char *v1 = it_env("BH_TESTKIT"), *slash = strrchr(v1, '/');
    return it_asprintf("%.*s/%s", (int)(slash - v1), v1, name);
}

/* Echo a command and return the version that answered (malloc'd). */
static char *echo_version(it_conn_t *c, it_listener_t *l)
{
    static int id;
    char conv[IT_ID_MAX], body[64];
    it_unique(conv, "conv");
    int n = snprintf(body, sizeof body, "{\"id\": %d}", ++id);
    it_pub_t cmd =
        it_command("testkit.Echo", REPLY, conv, conv, "application/json", body, (size_t)n);
    it_publish(c, &cmd);
    it_msg_t *m = it_get(l, 10000);
    if (!m) IT_FAIL("no result of Echo within 10 s");
    json_t *p = it_payload(m);
    const char *v = json_string_value(json_object_get(p, "version"));
    char *out = it_strdup(v ? v : "?");
    json_decref(p);
    it_msg_free(m);
    return out;
}

static void expect_version(it_conn_t *c, it_listener_t *l, const char *want)
{
    char *got = echo_version(c, l);
    if (strcmp(got, want)) IT_FAIL("Echo answered by version %s, expected %s", got, want);
    free(got);
}

/* Wait (15 s at most) for the n-th occurrence of `text` in the output. */
static void wait_output(it_host_t *h, const char *text, size_t n)
{
    if (!it_wait_log(h, text, n, 15000)) {
        it_host_dump(h);
        IT_FAIL("no \"%s\" (#%zu) within 15 s", text, n);
    }
}

/* SIGHUP, then wait_output. */
static void reload(it_host_t *h, const char *text, size_t n)
{
    assert_int_equal(kill(h->pid, SIGHUP), 0);
    wait_output(h, text, n);
}

static void expect_output(it_host_t *h, const char *text) { wait_output(h, text, 1); }

static void expect_http(const char *path, const char *text, bool present)
{
    char *body = it_http_get(path);
    if ((strstr(body, text) != NULL) != present)
        IT_FAIL("GET %s %s \"%s\": %s", path, present ? "lacks" : "still says", text, body);
    free(body);
}

static void test_a_bad_version_leaves_the_old_one_serving_and_a_good_one_takes_over(void **state)
{
    char *keys = it_asprintf("http_listen = 127.0.0.1:%s\n", it_env("BH_HTTP_PORT"));
    it_host_opts_t o = {.plugins = "testkit", .host_keys = keys};
    it_conn_t *c = it_connect();
    it_listener_t *l = it_listen("commands", (const char *[]){REPLY, NULL});
    it_host_t *h = it_host_ready(c, "testkit.commands", &o);
    char *badinit = sibling("testkit_badinit.so"), *badabi = sibling("testkit_badabi.so"),
         *v2 = sibling("testkit_v2.so");
    char *garbage = it_asprintf("%s/garbage.bin", h->dir);
    (void)state;

    it_write_file(garbage, "\x7f"
                           "ELF but not really: a truncated upload\n");
    expect_version(c, l, "1.0.0");
    struct {
        const char *file, *why;
    } bad[] = {
        {badinit, "init of plugin 'testkit' failed"},
        {badabi, "ABI"},
        {garbage, "cannot load"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        it_plugin_replace(h, "testkit.so", bad[i].file, NULL);
        reload(h, "reload failed:", i + 1);
        char *line = it_log_line(h, "reload failed:", i + 1);
        assert_non_null(line);
        print_message("%s\n", line);
        if (!strstr(line, bad[i].why) || !strstr(line, "testkit.so"))
            IT_FAIL("the reload error does not name the file and \"%s\": %s", bad[i].why, line);
        free(line);
        assert_true(it_host_alive(h));
        expect_version(c, l, "1.0.0");
        expect_http("/readyz", "reload failed:", true);
        expect_http("/status", "\"reload\":\"reload failed:", true);
    }
    expect_output(h, "the running versions serve on");

    /* A good version takes over; the note of the failure goes. */
    it_plugin_replace(h, "testkit.so", v2, NULL);
    reload(h, "retired and unloaded", 1);
    expect_output(h, "plugin testkit 2.0.0 took over from 1.0.0");
    expect_version(c, l, "2.0.0");
    expect_http("/readyz", "reload failed", false);
    expect_http("/status", "\"reload\":null", true);
    assert_int_equal(it_host_stop(h, 15000), 0);
    free(badinit);
    free(badabi);
    free(v2);
    free(garbage);
    free(keys);
    it_pass();
}

static uint32_t consumers(it_conn_t *c, const char *queue)
{
    uint32_t n = 0;
    assert_true(it_queue_info(c, queue, NULL, &n));
    return n;
}

/* Echo a command to the echo plugin and wait for its result. */
static void expect_echo(it_conn_t *c, it_listener_t *l)
{
    static const char body[] = "{\"n\": 1}";
    char conv[IT_ID_MAX];
    it_unique(conv, "conv");
    it_pub_t cmd =
        it_command("echo.Echo", REPLY, conv, conv, "application/json", body, sizeof body - 1);
    it_publish(c, &cmd);
    it_msg_t *m = it_get(l, 10000);
    if (!m) IT_FAIL("no result of echo.Echo within 10 s");
    it_msg_free(m);
}

/* A plugin put in plugins_dir starts as at boot; one taken out drains as
 * on SIGTERM; a changed section restarts its service (drained, then
 * started anew with it); [broker] and [host] take a restart, and say so.
 * The host stays the same process, and the other services serve on. */
static void test_plugins_come_and_go_and_a_changed_section_restarts_its_service(void **state)
{
    char *keys = it_asprintf("http_listen = 127.0.0.1:%s\n", it_env("BH_HTTP_PORT"));
    it_host_opts_t o = {
        .plugins = "testkit", .host_keys = keys, .sections = "[testkit]\nprefetch = 10\n"};
    it_conn_t *c = it_connect();
    it_listener_t *l = it_listen("commands", (const char *[]){REPLY, NULL});
    it_host_t *h = it_host_ready(c, "testkit.commands", &o);
    char *echo_so = it_asprintf("%s/plugins/echo.so", h->dir),
         *echo = it_asprintf("%s/echo.so", it_env("BH_PLUGINS"));
    pid_t pid = h->pid;
    (void)state;

    reload(h, "reload complete: no plugin changed", 1);

    /* Added: echo starts, and shows on /status. */
    it_purge(c, "echo.commands");
    it_plugin_replace(h, "echo.so", echo, NULL);
    reload(h, "service 'echo' started from plugin echo 1.0.0", 1);
    it_wait_consumers(c, "echo.commands", 1, 15000, h);
    expect_echo(c, l);
    expect_version(c, l, "1.0.0");
    expect_http("/status", "\"name\":\"echo\"", true);

    /* A changed section: testkit restarts with it; echo is untouched. */
    char *ini = it_read_file(h->ini), *at = strstr(ini, "prefetch = 10");
    assert_non_null(at);
    memcpy(at, "prefetch = 20", 13);
    it_write_file(h->ini, ini);
    reload(h, "service 'testkit' started from plugin testkit", 1);
    expect_output(h, "service 'testkit' restarts (its section");
    expect_output(h, "service 'testkit' stopped");
    it_wait_consumers(c, "testkit.commands", 1, 15000, h);
    expect_version(c, l, "1.0.0");
    expect_echo(c, l);
    expect_output(h, "prefetch 20");

    /* Removed: echo drains and goes, from the broker and from /status. */
    assert_int_equal(unlink(echo_so), 0);
    reload(h, "service 'echo' stopped", 1);
    expect_output(h, "service 'echo' is removed");
    assert_int_equal(consumers(c, "echo.commands"), 0);
    expect_http("/status", "\"name\":\"echo\"", false);
    expect_http("/metrics", "service=\"echo\"", false);
    expect_version(c, l, "1.0.0");

    /* testkit alone now: its restart must not end the host. */
    at = strstr(ini, "prefetch = 20");
    memcpy(at, "prefetch = 30", 13);
    it_write_file(h->ini, ini);
    reload(h, "service 'testkit' started from plugin testkit", 2);
    it_wait_consumers(c, "testkit.commands", 1, 15000, h);
    expect_version(c, l, "1.0.0");
    expect_output(h, "prefetch 30");

    /* [broker] takes a restart. */
    char *hb = strstr(ini, "heartbeat = 10");
    if (!hb) IT_FAIL("the config has no heartbeat line: %s", ini);
    memcpy(hb, "heartbeat = 20", 14);
    it_write_file(h->ini, ini);
    reload(h, "[broker] heartbeat changed: that takes a restart", 1);

    assert_true(it_host_alive(h));
    assert_int_equal(h->pid, pid);
    assert_int_equal(it_host_stop(h, 15000), 0);
    free(ini);
    free(echo_so);
    free(echo);
    free(keys);
    it_pass();
}

/* ItemSelected, reload (a changed file of the same code), ItemSelected:
 * CartUpdated holds both items, for the new version took the old one's
 * carts over (cart_upgrade). */
static void test_the_cart_keeps_its_carts_across_a_reload(void **state)
{
    it_conn_t *c = it_connect();
    it_listener_t *l = it_listen("events", (const char *[]){"CartUpdated", NULL});
    it_host_t *h = it_host_ready(c, "cart.events", &(it_host_opts_t){.plugins = "cart"});
    char cart[IT_ID_MAX];
    char *src = it_asprintf("%s/cart.so", it_env("BH_PLUGINS"));
    (void)state;

    it_unique(cart, "cart");
    const char *items[] = {"apple", "pear"};
    for (int i = 0; i < 2; i++) {
        char conv[IT_ID_MAX], body[256];
        if (i == 1) {
            it_plugin_replace(h, "cart.so", src, "\n(a later build)\n");
            reload(h, "retired and unloaded", 1);
            expect_output(h, "kept 1 cart line(s) from version 1.0.0");
            expect_output(h, "took over from 1.0.0, with its state");
        }
        it_unique(conv, "conv");
        int n = snprintf(body, sizeof body, "{\"cart\": \"%s\", \"item\": \"%s\", \"qty\": 1}",
                         cart, items[i]);
        it_pub_t ev = it_event("ItemSelected", conv, "application/json", body, (size_t)n);
        it_publish(c, &ev);
        it_msg_t *m = it_get(l, 10000);
        if (!m) IT_FAIL("no CartUpdated within 10 s");
        json_t *got = it_payload(m);
        json_t *want =
            i ? json_pack("{s:s, s:{s:i, s:i}}", "cart", cart, "items", "apple", 1, "pear", 1)
              : json_pack("{s:s, s:{s:i}}", "cart", cart, "items", "apple", 1);
        if (!json_equal(got, want)) {
            char *a = json_dumps(got, JSON_COMPACT);
            IT_FAIL("CartUpdated %s after %s", a, i ? "the reload" : "the first item");
        }
        json_decref(got);
        json_decref(want);
        it_msg_free(m);
    }
    assert_int_equal(it_host_stop(h, 15000), 0);
    free(src);
    it_pass();
}

/* KiB of resident memory of pid, and how many mappings of private plugin
 * copies it has (loader.h: .../bushost-XXXXXX/<name>). */
static long rss_kib(pid_t pid, long *copies)
{
    char path[64], line[512];
    long kib = -1;
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kib = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    snprintf(path, sizeof path, "/proc/%ld/maps", (long)pid);
    f = fopen(path, "r");
    char *last = NULL;
    *copies = 0;
    while (f && fgets(line, sizeof line, f)) {
        char *at = strstr(line, "/bushost-");
        if (!at) continue;
        if (!last || strcmp(last, at)) *copies += 1; /* one object: consecutive lines */
        free(last);
        last = it_strdup(at);
    }
    free(last);
    if (f) fclose(f);
    return kib;
}

/* 100 reloads between two builds: every old object is unmapped and each
 * generation's memory freed, so the resident size stays where it was
 * after the first 20. */
static void test_a_hundred_reloads_keep_memory_bounded(void **state)
{
    enum { RELOADS = 100, WARM = 20, GROWTH_KIB = 4096 };
    it_host_opts_t o = {.plugins = "testkit", .host_keys = "log_level = notice\n"};
    it_conn_t *c = it_connect();
    it_listener_t *l = it_listen("commands", (const char *[]){REPLY, NULL});
    it_host_t *h = it_host_ready(c, "testkit.commands", &o);
    char *v1 = it_strdup(it_env("BH_TESTKIT")), *v2 = sibling("testkit_v2.so");
    long warm = 0, copies = 0, most = 0;
    (void)state;

    for (int i = 1; i <= RELOADS; i++) {
        it_plugin_replace(h, "testkit.so", i % 2 ? v2 : v1, NULL);
        reload(h, "reload complete", (size_t)i);
        rss_kib(h->pid, &copies);
        if (copies > most) most = copies;
        if (i == WARM) warm = rss_kib(h->pid, &copies);
    }
    long end = rss_kib(h->pid, &copies);
    expect_version(c, l, "1.0.0");
    print_message("RSS after %d reloads %ld KiB, after %d %ld KiB; at most %ld plugin "
                  "object(s) mapped at once, %ld at the end\n",
                  WARM, warm, RELOADS, end, most, copies);
    /* One object mapped (the running version) once each reload ended. */
    assert_int_equal(copies, 1);
    assert_in_range(most, 1, 1);
    /* ASan keeps freed memory in quarantine: the bound means nothing there. */
    const char *san = getenv("BH_ITEST_SANITIZE");
    if ((!san || !*san) && end - warm > GROWTH_KIB)
        IT_FAIL("RSS grew by %ld KiB over %d reloads (after %d)", end - warm, RELOADS - WARM, WARM);
    assert_int_equal(it_host_stop(h, 15000), 0);
    free(v1);
    free(v2);
    it_pass();
}

/* watch_plugins: a new build put in plugins_dir reloads by itself, once
 * for the burst of changes a copy and a rename make. */
static void test_watch_plugins_reloads_a_changed_file_by_itself(void **state)
{
    it_host_opts_t o = {.plugins = "testkit", .host_keys = "watch_plugins = true\n"};
    it_conn_t *c = it_connect();
    it_listener_t *l = it_listen("commands", (const char *[]){REPLY, NULL});
    it_host_t *h = it_host_ready(c, "testkit.commands", &o);
    char *v2 = sibling("testkit_v2.so");
    (void)state;

    expect_output(h, "a changed *.so reloads (watch_plugins)");
    it_plugin_replace(h, "testkit.so", v2, NULL);
    wait_output(h, "retired and unloaded", 1);
    expect_version(c, l, "2.0.0");
    it_sleep_ms(500);
    assert_int_equal(it_log_count(h, "plugins_dir changed (watch_plugins)"), 1);
    assert_int_equal(it_host_stop(h, 15000), 0);
    free(v2);
    it_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_a_bad_version_leaves_the_old_one_serving_and_a_good_one_takes_over),
        IT_TEST(test_plugins_come_and_go_and_a_changed_section_restarts_its_service),
        IT_TEST(test_the_cart_keeps_its_carts_across_a_reload),
        IT_TEST(test_a_hundred_reloads_keep_memory_bounded),
        IT_TEST(test_watch_plugins_reloads_a_changed_file_by_itself),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
