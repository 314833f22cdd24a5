/* test_outside.c -- work outside handlers through a whole service
 * (host/service.c with its real modules) and the fake broker
 * (fake_broker.c): publishes made in init are held until the service is
 * connected, published again after a lost connection, and reported once,
 * when confirmed; a drain refuses new ones and the rest end with
 * BH_PUB_SHUTDOWN before fini. Waits are bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "bushost.h"
#include "config.h"
#include "fake_broker.h"
#include "loader.h"
#include "service.h"

enum { WAIT_MS = 10000, N = 3 };

static bh_publisher_t *pub;
static int done_status[N + 1]; /* -1: not called; else the status; [N]: extra calls */
static uv_mutex_t mu;

static void on_done(void *ud, bh_pub_status_t st)
{
    int i = (int)(intptr_t)ud;
    uv_mutex_lock(&mu);
    if (done_status[i] != -1) done_status[N]++;
    done_status[i] = (int)st;
    uv_mutex_unlock(&mu);
}

static int status_of(int i)
{
    uv_mutex_lock(&mu);
    int st = done_status[i];
    uv_mutex_unlock(&mu);
    return st;
}

static bh_outcome_t on_event(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    (void)ctx, (void)msg, (void)state;
    return BH_DONE;
}

static int p_init(bh_ctx_t *ctx, void **state)
{
    (void)state;
    pub = bh_publisher(ctx);
    bh_ctx_t *vc = bh_publisher_ctx(pub);
    for (int i = 0; i < N; i++) {
        bh_value_t *p = bh_map_new(vc);
        bh_map_set(p, "i", bh_int_new(vc, i));
        if (bh_publisher_event(pub, "svc.Hello", p, on_done, (void *)(intptr_t)i))
            fb_mark("bad:publish");
        bh_value_free(p);
    }
    /* Not a message's ctx: publishing through it is refused. */
    if (bh_publish_event(vc, "svc.Nope", NULL) != BH_ESTATE) fb_mark("bad:values-ctx");
    return 0;
}

static void p_fini(bh_ctx_t *ctx, void *state)
{
    (void)ctx, (void)state;
    /* Every publish ended before fini; new ones are refused now. */
    for (int i = 0; i < N; i++)
        if (status_of(i) == -1) fb_mark("bad:not-ended-before-fini");
    if (bh_publisher_event(pub, "svc.Late", NULL, on_done, (void *)(intptr_t)N) != BH_ESTATE)
        fb_mark("bad:late-taken");
    fb_mark("fini");
}

static const bh_route_t events[] = {{.key = "Plain", .handler = on_event}, {0}};
static const bh_plugin_t plugin = {
    .magic = BH_MAGIC,
    .abi_major = BH_ABI_MAJOR,
    .abi_minor = BH_ABI_MINOR,
    .size = sizeof(bh_plugin_t),
    .name = "outplug",
    .version = "1.0",
    .service = "svc",
    .events = events,
    .init = p_init,
    .fini = p_fini,
};
static char plugin_path[] = "test_outside/outplug.so";
static const bh__loaded_t loaded = {.path = plugin_path, .dl = NULL, .desc = &plugin};

static char k_ct[] = "content_type", v_ct[] = "json";
static bh__kv_t kv_ct = {k_ct, v_ct, 4, NULL};
static char sect_name[] = "outplug";
static bh__section_t section = {sect_name, 2, &kv_ct, NULL};
static char url0[] = "amqp://guest:guest@first:5672/";
static char *urls[] = {url0};
static char cfg_path[] = "test_outside.ini";
static bh__config_t cfg = {.path = cfg_path,
                           .urls = urls,
                           .n_urls = 1,
                           .log_level = BH_INFO,
                           .shutdown_timeout = 2000,
                           .sections = &section};

static bh__service_t *svc;

static void no_bad(void)
{
    char why[512];
    if (fb_violations(why, sizeof why)) fail_msg("broker protocol violation: %s", why);
    static const char *const bad[] = {"bad:publish", "bad:values-ctx", "bad:not-ended-before-fini",
                                      "bad:late-taken"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (fb_count_mark(bad[i])) fail_msg("the plugin saw something wrong: %s", bad[i]);
}

static void start(void)
{
    char err[512] = "";
    for (int i = 0; i <= N; i++) done_status[i] = i == N ? 0 : -1;
    assert_int_equal(bh__service_new(&svc, &cfg, &loaded, err, sizeof err), 0);
    assert_int_equal(bh__service_init(svc, err, sizeof err), 0);
    assert_int_equal(fb_count(FB_PUBLISH, 0), 0); /* nothing can go out yet */
    assert_int_equal(bh__service_start(svc, NULL, NULL, err, sizeof err), 0);
}

static void stop(void)
{
    bh__service_stop(svc);
    bh__service_join(svc);
    assert_true(bh__service_free(svc));
    svc = NULL;
    assert_int_equal(fb_count_mark("fini"), 1);
    assert_int_equal(done_status[N], 0); /* no callback ran twice */
    no_bad();
}

static int setup(void **state)
{
    (void)state;
    fb_reset();
    return 0;
}

/* Refused twice, the service connects on the third try: the publishes of
 * init go out then, in order, each with a conversation of its own; lost
 * before their confirms, they go out again; confirmed, each is reported
 * once. */
static void held_until_connected_then_republished_until_confirmed(void **state)
{
    (void)state;
    fb_fail(FB_CONNECT, 2);
    start();
    assert_true(fb_wait_count(FB_PUBLISH, 0, N, WAIT_MS));
    unsigned c1 = fb_current();
    assert_int_equal(fb_count(FB_CONNECT, 0), 3);
    for (int i = 0; i < N; i++) {
        const fb_rec_t *p = fb_nth(FB_PUBLISH, c1, (size_t)i);
        char want[16];
        snprintf(want, sizeof want, "{\"i\":%d}", i);
        assert_string_equal(p->key, "svc.Hello");
        assert_string_equal(p->body, want);
        assert_int_equal(strlen(p->conversation_id), 36);
        if (i)
            assert_string_not_equal(p->conversation_id, fb_nth(FB_PUBLISH, c1, 0)->conversation_id);
    }
    assert_true(fb_settle(WAIT_MS));
    for (int i = 0; i < N; i++) assert_int_equal(status_of(i), -1);

    assert_true(fb_confirm(1, false, true)); /* the first is confirmed */
    assert_true(fb_lose("connection lost: reset"));
    assert_true(fb_wait_count(FB_PUBLISH, 0, 2 * N - 1, WAIT_MS));
    unsigned c2 = fb_current();
    assert_int_not_equal(c2, c1);
    assert_int_equal(fb_count(FB_PUBLISH, c2), N - 1); /* the unconfirmed ones again */
    assert_string_equal(fb_nth(FB_PUBLISH, c2, 0)->body, "{\"i\":1}");
    assert_int_equal(status_of(0), BH_PUB_CONFIRMED);
    assert_int_equal(status_of(1), -1);
    assert_true(fb_confirm(2, true, true));
    assert_true(fb_settle(WAIT_MS));
    for (int i = 0; i < N; i++) assert_int_equal(status_of(i), BH_PUB_CONFIRMED);
    stop();
}

/* Never connected: at shutdown each publish ends with BH_PUB_SHUTDOWN,
 * before fini. */
static void never_connected_ends_with_shutdown(void **state)
{
    (void)state;
    fb_fail(FB_CONNECT, 1000);
    start();
    assert_true(fb_wait_count(FB_CONNECT, 0, 1, WAIT_MS));
    stop();
    assert_int_equal(fb_count(FB_PUBLISH, 0), 0);
    for (int i = 0; i < N; i++) assert_int_equal(status_of(i), BH_PUB_SHUTDOWN);
}

int main(void)
{
    uv_mutex_init(&mu);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(held_until_connected_then_republished_until_confirmed,
                                        setup, NULL),
        cmocka_unit_test_setup_teardown(never_connected_ends_with_shutdown, setup, NULL),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
