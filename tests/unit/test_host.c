/* test_host.c -- a host generation (host/host.c): made from a config and a
 * folder of fixture plugins (tests/fixtures), started, drained, joined and
 * freed; two generations side by side in one process and on one loop.
 *
 * Its neighbours are real (config, loader, service and what a service runs
 * on) but for the broker: fake_broker.c records each service's connection,
 * so the test sees which generation's services run and that a drain closes
 * them. Waits are bounded; a 30 s alarm (SIGALRM's default action ends the
 * process) catches a hang. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "fake_broker.h"
#include "fixture_paths.h"
#include "host.h"
#include "value.h"

enum { WAIT_MS = 10000, SHUTDOWN_MS = 2000 };

static char err[1024];
static char tmp[256]; /* this run's folder for configs */
static uv_loop_t loop;

/* One generation and what its on_stopped saw. */
typedef struct gen {
    bh__host_t *h;
    int stopped;          /* on_stopped calls */
    bool free_in_stopped; /* join and free from on_stopped, as a reload would */
    bool clean;           /* what that join said */
} gen_t;

static gen_t g1, g2;
static gen_t *const gens[] = {&g1, &g2};

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

#define assert_contains(hay, needle)                                      \
    do {                                                                  \
        if (!strstr((hay), (needle)))                                     \
            fail_msg("expected \"%s\" in error \"%s\"", (needle), (hay)); \
    } while (0)

/* Write <tmp>/<name> with plugins_dir = the fixture folder `plugins` and
 * `sections` after [host]; returns its path (one of a few rotating buffers). */
static const char *ini(const char *name, const char *plugins, const char *sections)
{
    static char paths[4][PATH_MAX];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, PATH_MAX, "%s/%s", tmp, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fprintf(f,
            "[broker]\nurl = amqp://guest:guest@fake.invalid/\n\n"
            "[host]\nplugins_dir = %s\nshutdown_timeout = %d\nhealthcheck_interval = 0\n\n%s",
            fx(plugins), SHUTDOWN_MS, sections ? sections : "");
    fclose(f);
    return p;
}

static void on_stopped(void *ud)
{
    gen_t *g = ud;
    g->stopped++;
    if (g->free_in_stopped) {
        g->clean = bh__host_join(g->h);
        bh__host_free(g->h);
        g->h = NULL;
    }
}

static void on_late(uv_timer_t *t) { *(bool *)t->data = true; }

/* Run the loop until *count > 0 or ms pass; true if it got there. */
static bool run_until(const int *count, unsigned ms)
{
    uv_timer_t t;
    bool late = false;
    uv_timer_init(&loop, &t);
    t.data = &late;
    uv_timer_start(&t, on_late, ms, 0);
    while (*count == 0 && !late) uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT); /* finish the close */
    return *count > 0;
}

static void new_ok(gen_t *g, const char *path)
{
    err[0] = 0;
    int rc = bh__host_new(&g->h, path, err, sizeof err);
    if (rc) fail_msg("bh__host_new(%s) = %d: %s", path, rc, err);
    assert_non_null(g->h);
}

static void start_ok(gen_t *g)
{
    err[0] = 0;
    int rc = bh__host_start(g->h, &loop, on_stopped, g, err, sizeof err);
    if (rc) fail_msg("bh__host_start = %d: %s", rc, err);
}

static void new_fails(const char *path, int want, const char *needle1, const char *needle2)
{
    bh__host_t *h = (bh__host_t *)&h; /* not NULL: the call must clear it */
    err[0] = 0;
    assert_int_equal(bh__host_new(&h, path, err, sizeof err), want);
    assert_null(h);
    assert_contains(err, needle1);
    if (needle2) assert_contains(err, needle2);
}

/* The queue the consumer on conn reads. */
static const char *consumed(unsigned conn)
{
    const fb_rec_t *r = fb_nth(FB_CONSUME, conn, 0);
    if (!r) fail_msg("connection %u consumes nothing", conn);
    return r->text;
}

static int cmp_names(const void *a, const void *b) { return strcmp(a, b); }

static void no_violations(void)
{
    char why[512] = "";
    if (fb_violations(why, sizeof why)) fail_msg("broker protocol violation: %s", why);
}

static int setup(void **state)
{
    (void)state;
    fb_reset();
    memset(&g1, 0, sizeof g1);
    memset(&g2, 0, sizeof g2);
    assert_int_equal(uv_loop_init(&loop), 0);
    alarm(30);
    return 0;
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static int teardown(void **state)
{
    (void)state;
    /* A test that failed half-way: stop what it started. */
    for (size_t i = 0; i < 2; i++) {
        gen_t *g = gens[i];
        if (!g->h) continue;
        g->free_in_stopped = false;
        bh__host_drain(g->h);
        bh__host_join(g->h);
    }
    uv_walk(&loop, close_any, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    for (size_t i = 0; i < 2; i++) {
        bh__host_free(gens[i]->h);
        gens[i]->h = NULL;
    }
    int rc = uv_loop_close(&loop);
    alarm(0);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Creation: errors name the cause, and a failure leaves nothing behind     */

static void new_refuses_a_missing_config_naming_it(void **state)
{
    (void)state;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/no-such.ini", tmp);
    new_fails(path, BH__EXIT_CONFIG, path, NULL);
}

static void new_refuses_a_folder_with_a_bad_plugin_naming_the_file(void **state)
{
    (void)state;
    new_fails(ini("mixed.ini", "mixed", NULL), BH__EXIT_CONFIG, fx("mixed/middle.so"), "magic");
    /* The good plugins opened before it were closed again. */
    assert_false(fx_loaded(fx("mixed/good.so")));
}

static void new_refuses_a_section_that_names_no_plugin(void **state)
{
    (void)state;
    const char *path = ini("stray.ini", "good", "[good]\nlimit = 5\n\n[nosuch]\nx = 1\n");
    char where[PATH_MAX + 16];
    /* ini() writes 8 lines; a section's line is its first key's. */
    snprintf(where, sizeof where, "%s:13: section [nosuch]", path);
    new_fails(path, BH__EXIT_CONFIG, where, "names no plugin");
    assert_false(fx_loaded(fx("good/good.so")));
}

static void new_refuses_a_bad_plugin_key_naming_file_and_line(void **state)
{
    (void)state;
    const char *path = ini("range.ini", "good", "[good]\nlimit = 500\n");
    char where[PATH_MAX + 16];
    snprintf(where, sizeof where, "%s:10:", path);
    new_fails(path, BH__EXIT_CONFIG, where, "limit");
}

static void new_refuses_two_plugins_on_one_service_naming_both(void **state)
{
    (void)state;
    const char *path = ini("same.ini", "multi", "[second]\nservice = good\n");
    char both[3 * PATH_MAX];
    snprintf(both, sizeof both,
             "%s: plugins 'good' (%s) and 'second' (%s) both run as service 'good'", path,
             fx("multi/good.so"), fx("multi/second.so"));
    new_fails(path, BH__EXIT_CONFIG, both, "another `service =`");
    assert_false(fx_loaded(fx("multi/good.so")));
    assert_false(fx_loaded(fx("multi/second.so")));
}

static void new_refuses_a_failing_init_naming_the_plugin(void **state)
{
    (void)state;
    new_fails(ini("init.ini", "init_fails", NULL), BH__EXIT_CONFIG, fx("init_fails/init_fails.so"),
              NULL);
    assert_false(fx_loaded(fx("init_fails/init_fails.so")));
}

/* What --check prints, and a host that never starts frees cleanly. */
static void new_lists_each_plugin_with_its_service(void **state)
{
    (void)state;
    new_ok(&g1, ini("list.ini", "multi", "[good]\nservice = alpha\n"));
    assert_int_equal(bh__host_count(g1.h), 2);
    assert_string_equal(bh__host_plugin(g1.h, 0)->path, fx("multi/good.so"));
    assert_string_equal(bh__host_plugin(g1.h, 0)->desc->name, "good");
    assert_string_equal(bh__service_name(bh__host_service(g1.h, 0)), "alpha");
    assert_string_equal(bh__host_plugin(g1.h, 1)->desc->name, "second");
    assert_string_equal(bh__service_name(bh__host_service(g1.h, 1)), "second");
    assert_true(fx_loaded(fx("multi/good.so")));
    assert_true(bh__host_join(g1.h)); /* never started: nothing to wait for */
    bh__host_free(g1.h);
    g1.h = NULL;
    assert_false(fx_loaded(fx("multi/good.so")));
    assert_int_equal(fb_count(FB_CONNECT, 0), 0);
}

static void new_applies_the_decoding_limits_of_its_config(void **state)
{
    (void)state;
    new_ok(&g1, ini("limits.ini", "multi", "max_depth = 3\nmax_map_entries = 7\nmax_nodes = 99\n"));
    bh__value_limits_t l = bh__value_limits();
    assert_int_equal(l.max_depth, 3);
    assert_int_equal(l.max_map_entries, 7);
    assert_int_equal(l.max_nodes, 99);
    bh__host_free(g1.h);
    g1.h = NULL;
    new_ok(&g1, ini("limits.ini", "multi", NULL)); /* the defaults again */
    l = bh__value_limits();
    assert_int_equal(l.max_depth, 64);
    assert_int_equal(l.max_map_entries, 100000);
    assert_int_equal(l.max_nodes, 1000000);
    bh__host_free(g1.h);
    g1.h = NULL;
}

/* ------------------------------------------------------------------------ */
/* Two generations                                                          */

/* The reload pattern: generation 2 starts beside generation 1, 1 drains and
 * is freed from its own on_stopped while 2 keeps handling messages; then 2
 * drains. Both on one loop. */
static void two_generations_run_side_by_side_and_stop_apart(void **state)
{
    (void)state;
    new_ok(&g1, ini("gen1.ini", "multi", "[good]\nservice = a1\n\n[second]\nservice = b1\n"));
    new_ok(&g2, ini("gen2.ini", "multi", "[good]\nservice = a2\n\n[second]\nservice = b2\n"));
    start_ok(&g1);
    assert_true(fb_wait_count(FB_CONSUME, 0, 2, WAIT_MS));
    start_ok(&g2);
    assert_true(fb_wait_count(FB_CONSUME, 0, 4, WAIT_MS));
    assert_int_equal(fb_open_conns(), 4);
    /* Connections 1 and 2 are generation 1's, 3 and 4 generation 2's. */
    char seen[4][64];
    for (unsigned c = 1; c <= 4; c++) snprintf(seen[c - 1], sizeof seen[0], "%s", consumed(c));
    qsort(seen, 2, sizeof seen[0], cmp_names);
    qsort(seen + 2, 2, sizeof seen[0], cmp_names);
    assert_string_equal(seen[0], "a1.commands");
    assert_string_equal(seen[1], "b1.commands");
    assert_string_equal(seen[2], "a2.commands");
    assert_string_equal(seen[3], "b2.commands");
    assert_int_equal(bh__host_start(g1.h, &loop, on_stopped, &g1, err, sizeof err), BH_ESTATE);

    /* Generation 1 goes; generation 2 is untouched. */
    g1.free_in_stopped = true;
    bh__host_drain(g1.h);
    assert_true(run_until(&g1.stopped, SHUTDOWN_MS + WAIT_MS));
    assert_int_equal(g1.stopped, 1);
    assert_true(g1.clean);
    assert_null(g1.h);
    assert_int_equal(fb_count(FB_CLOSE, 1), 1);
    assert_int_equal(fb_count(FB_CLOSE, 2), 1);
    assert_int_equal(fb_open_conns(), 2);
    assert_int_equal(g2.stopped, 0);
    /* Generation 2 still holds the plugin files generation 1 also opened. */
    assert_true(fx_loaded(fx("multi/good.so")));
    assert_true(fx_loaded(fx("multi/second.so")));

    /* ... and still handles messages. */
    unsigned conn = fb_current();
    assert_true(conn == 3 || conn == 4);
    fb_msg_t m = {.exchange = "events",
                  .routing_key = "CartValidated",
                  .content_type = "application/json",
                  .conversation_id = "conv-gen2",
                  .body = "{}"};
    uint64_t tag = fb_deliver(&m);
    assert_int_not_equal(tag, 0);
    assert_true(fb_wait_tag(conn, tag, FB_TAG_ACKED, WAIT_MS));

    bh__host_drain(g2.h);
    bh__host_drain(g2.h); /* harmless twice */
    assert_true(run_until(&g2.stopped, SHUTDOWN_MS + WAIT_MS));
    assert_int_equal(g2.stopped, 1);
    assert_true(bh__host_join(g2.h));
    bh__host_free(g2.h);
    g2.h = NULL;
    assert_false(fx_loaded(fx("multi/good.so")));
    assert_false(fx_loaded(fx("multi/second.so")));
    assert_int_equal(fb_open_conns(), 0);
    assert_int_equal(fb_count(FB_CLOSE, 0), 4);
    assert_int_equal(fb_count(FB_FREE, 0), 0);
    no_violations();
    /* Both hosts closed their handles: nothing is left on the loop. */
    assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 0);
}

/* The same config twice (the same services, as a reload of an unchanged
 * config gives): both consume the same queues, and drain together. */
static void two_generations_of_one_config_drain_together(void **state)
{
    (void)state;
    const char *path = ini("twice.ini", "good", NULL);
    new_ok(&g1, path);
    new_ok(&g2, path);
    start_ok(&g1);
    start_ok(&g2);
    assert_true(fb_wait_count(FB_CONSUME, 0, 2, WAIT_MS));
    assert_string_equal(consumed(1), "good.commands");
    assert_string_equal(consumed(2), "good.commands");
    bh__host_drain(g1.h);
    bh__host_drain(g2.h);
    assert_true(run_until(&g1.stopped, SHUTDOWN_MS + WAIT_MS));
    assert_true(run_until(&g2.stopped, SHUTDOWN_MS + WAIT_MS));
    assert_true(bh__host_join(g1.h));
    assert_true(bh__host_join(g2.h));
    bh__host_free(g2.h); /* in either order */
    g2.h = NULL;
    assert_true(fx_loaded(fx("good/good.so")));
    bh__host_free(g1.h);
    g1.h = NULL;
    assert_false(fx_loaded(fx("good/good.so")));
    assert_int_equal(fb_open_conns(), 0);
    no_violations();
}

/* ------------------------------------------------------------------------ */
/* Start and drain                                                          */

/* A broker that never answers: the services keep retrying, and a drain
 * still ends them, well within the shutdown deadline. */
static void drain_ends_services_that_never_reached_a_broker(void **state)
{
    (void)state;
    fb_fail(FB_CONNECT, 1000000);
    new_ok(&g1, ini("down.ini", "multi", NULL));
    start_ok(&g1);
    assert_true(fb_wait_count(FB_CONNECT, 0, 4, WAIT_MS)); /* retrying */
    uint64_t t0 = uv_hrtime();
    bh__host_drain(g1.h);
    assert_true(run_until(&g1.stopped, SHUTDOWN_MS + WAIT_MS));
    assert_true((uv_hrtime() - t0) / 1000000u < SHUTDOWN_MS);
    assert_true(bh__host_join(g1.h));
    for (size_t i = 0; i < fb_count(FB_CONNECT, 0); i++)
        assert_true(fb_nth(FB_CONNECT, 0, i)->failed);
    assert_int_equal(fb_open_conns(), 0);
}

/* Drained before it started: start starts nothing, and on_stopped still comes. */
static void drain_before_start_starts_nothing(void **state)
{
    (void)state;
    new_ok(&g1, ini("early.ini", "multi", NULL));
    bh__host_drain(g1.h);
    start_ok(&g1);
    assert_int_equal(g1.stopped, 0); /* from the loop, not from inside start */
    assert_true(run_until(&g1.stopped, WAIT_MS));
    assert_int_equal(g1.stopped, 1);
    assert_true(bh__host_join(g1.h));
    assert_int_equal(fb_count(FB_CONNECT, 0), 0);
}

static int group_setup(void **state)
{
    (void)state;
    unsetenv("BUSHOST_URL"); /* it would replace the configs' url */
    const char *base = getenv("TMPDIR");
    snprintf(tmp, sizeof tmp, "%s/test_host.XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(tmp) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    static const char *const files[] = {"mixed.ini", "stray.ini", "range.ini", "same.ini",
                                        "init.ini",  "list.ini",  "gen1.ini",  "gen2.ini",
                                        "twice.ini", "down.ini",  "early.ini"};
    char p[PATH_MAX + 16];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", tmp, files[i]);
        unlink(p);
    }
    return rmdir(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(new_refuses_a_missing_config_naming_it),
        T(new_refuses_a_folder_with_a_bad_plugin_naming_the_file),
        T(new_refuses_a_section_that_names_no_plugin),
        T(new_refuses_a_bad_plugin_key_naming_file_and_line),
        T(new_refuses_two_plugins_on_one_service_naming_both),
        T(new_refuses_a_failing_init_naming_the_plugin),
        T(new_lists_each_plugin_with_its_service),
        T(new_applies_the_decoding_limits_of_its_config),
        T(two_generations_run_side_by_side_and_stop_apart),
        T(two_generations_of_one_config_drain_together),
        T(drain_ends_services_that_never_reached_a_broker),
        T(drain_before_start_starts_nothing),
#undef T
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
