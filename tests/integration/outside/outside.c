/* outside.c -- a plugin that works outside its handlers, for test_outside.c.
 *
 *   timer   beat      every 100 ms, when `tick` is true: publishes Beat
 *                     {"n": runs, "overlaps": runs that found another one
 *                     still going}, after sleeping `tick_sleep_ms`
 *   init              with `init_events` = N, a thread of its own publishes
 *                     Hello {"i": i} N times through bh_publisher_event; each
 *                     done callback publishes Confirmed {"i": i, "status": s}
 *   command Request   {"to": key, "timeout_ms": int, "id": int} sends `to`
 *                     with bh_send_command_opts, reply_to outside.Answer and
 *                     a request context holding id; answers {"rc": rc}
 *   result  outside.Answer
 *                     publishes Ended {"id": the context's id, or -1,
 *                     "status": msg->status} and logs "request <id> ended:
 *                     <status>", then frees the context */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bushost.h"

typedef struct outside {
    bh_publisher_t *pub;
    int64_t init_events, tick_sleep_ms;
    pthread_t thread;
    bool started;
    atomic_int in_tick, overlaps, runs;
    int64_t ids[1000]; /* what each Hello's done callback reports */
} outside_t;

typedef struct request {
    int64_t id;
} request_t;

static outside_t the;

static bh_value_t *pair(bh_ctx_t *ctx, const char *k1, int64_t v1, const char *k2, int64_t v2)
{
    bh_value_t *m = bh_map_new(ctx);
    if (bh_map_set(m, k1, bh_int_new(ctx, v1)) || bh_map_set(m, k2, bh_int_new(ctx, v2))) {
        bh_value_free(m);
        return NULL;
    }
    return m;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {}
}

static void on_beat(bh_ctx_t *ctx, void *state)
{
    outside_t *o = state;
    const char *tick = bh_config_str(ctx, "tick"); /* timers read config */
    if (!tick || strcmp(tick, "true")) return;
    if (atomic_fetch_add(&o->in_tick, 1)) atomic_fetch_add(&o->overlaps, 1);
    int runs = atomic_fetch_add(&o->runs, 1) + 1;
    sleep_ms(o->tick_sleep_ms);
    bh_value_t *p = pair(ctx, "n", runs, "overlaps", atomic_load(&o->overlaps));
    int rc = bh_publish_event(ctx, "outside.Beat", p);
    if (rc) bh_log(ctx, BH_ERROR, "Beat not published: %s", bh_strerror(rc));
    bh_value_free(p);
    atomic_fetch_sub(&o->in_tick, 1);
}

/* On the I/O thread: tell the test how the Hello ended. */
static void on_hello_done(void *ud, bh_pub_status_t status)
{
    int64_t *i = ud;
    bh_value_t *p = pair(bh_publisher_ctx(the.pub), "i", *i, "status", status);
    bh_publisher_event(the.pub, "outside.Confirmed", p, NULL, NULL);
    bh_value_free(p);
}

static void *hello_thread(void *arg)
{
    outside_t *o = arg;
    for (int64_t i = 0; i < o->init_events; i++) {
        o->ids[i] = i;
        bh_value_t *p = pair(bh_publisher_ctx(o->pub), "i", i, "of", o->init_events);
        while (bh_publisher_event(o->pub, "outside.Hello", p, on_hello_done, &o->ids[i]) ==
               BH_EFULL)
            sleep_ms(10);
        bh_value_free(p);
    }
    return NULL;
}

static int init(bh_ctx_t *ctx, void **state)
{
    outside_t *o = &the;
    if (bh_config_int(ctx, "init_events", &o->init_events) ||
        bh_config_int(ctx, "tick_sleep_ms", &o->tick_sleep_ms))
        return BH_EINVAL;
    if (!(o->pub = bh_publisher(ctx))) return BH_ESTATE;
    *state = o;
    if (o->init_events > 0) {
        if (pthread_create(&o->thread, NULL, hello_thread, o)) return BH_ENOMEM;
        o->started = true;
    }
    return BH_OK;
}

static void fini(bh_ctx_t *ctx, void *state)
{
    outside_t *o = state;
    if (o && o->started) pthread_join(o->thread, NULL);
}

static bh_outcome_t on_request(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    int64_t timeout = 0, id = 0;
    const char *to = bh_get_str(msg->payload, "to");
    if (!to || bh_get_int(msg->payload, "timeout_ms", &timeout) ||
        bh_get_int(msg->payload, "id", &id))
        return BH_REJECT;
    request_t *r = malloc(sizeof *r);
    if (!r) return BH_RETRY;
    r->id = id;
    bh_command_opts_t opts = BH_COMMAND_OPTS(.timeout_ms = (uint32_t)timeout, .request_ctx = r);
    int rc = bh_send_command_opts(ctx, to, msg->payload, "outside.Answer", NULL, &opts);
    if (rc) free(r); /* not taken: the context is still ours */
    bh_value_t *p = pair(ctx, "rc", rc, "id", id);
    bh_result_success(ctx, p);
    bh_value_free(p);
    return BH_DONE;
}

static bh_outcome_t on_answer(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    request_t *r = bh_request_ctx(ctx);
    int64_t id = r ? r->id : -1;
    bh_log(ctx, BH_INFO, "request %lld ended: %s", (long long)id, msg->status);
    bh_value_t *p = bh_map_new(ctx);
    if (!bh_map_set(p, "id", bh_int_new(ctx, id)) &&
        !bh_map_set(p, "status", bh_str_new(ctx, msg->status)))
        bh_publish_event(ctx, "outside.Ended", p); /* refused at shutdown: logged above */
    bh_value_free(p);
    free(r);
    return BH_DONE;
}

static const bh_timer_t timers[] = {{"beat", 100, on_beat}, {NULL, 0, NULL}};
static const bh_route_t commands[] = {{.key = "Request", .handler = on_request}, {0}};
static const bh_route_t results[] = {{.key = "outside.Answer", .handler = on_answer}, {0}};
static const bh_config_key_t config[] = {
    {"tick", BH_CONF_BOOL, "false", "publish Beat from the timer", 0, 0},
    {"tick_sleep_ms", BH_CONF_INT, "0", "how long each timer run takes", 0, 10000},
    {"init_events", BH_CONF_INT, "0", "Hello events published from a thread of init", 0, 1000},
    {NULL, 0, NULL, NULL, 0, 0},
};

BH_PLUGIN(.name = "outside", .version = "1.0", .service = "outside", .commands = commands,
          .results = results, .config = config, .init = init, .fini = fini, .timers = timers);
