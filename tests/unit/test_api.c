/* test_api.c -- the host's function table (api.c) as a handler reaches it:
 * every slot filled, headers read and set, the publish options struct, the
 * naming of reply_to keys, and the SDK's conveniences on top. Real value,
 * payload and contract modules; a job made by hand; the logger faked. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "fake_log.h"
#include "job_util.h"
#include "topology.h"

/* Config is read in init only, which these tests do not run. */
const char *bh__svc_conf_get(const bh__svc_conf_t *conf, const char *key)
{
    (void)conf;
    (void)key;
    return NULL;
}

static bh__job_t *job;
static bh__ctx_t c;
static bh_ctx_t *ctx = &c.pub;

static const bh__hdr_t in_headers[] = {
    {JU_STR("conversation_id", "c1")},
    {JU_STR("tenant", "acme")},
    {JU_BYTES("blob", "a\0b")},
    {JU_INT("attempt", 7)},
    {.key = "vip", .kind = BH__HDR_BOOL, .num = 1},
};

/* A command being handled: "shop.Order" from reply_to "caller.Done". */
static int setup(void **state)
{
    (void)state;
    fl_reset();
    ju_msg_t m = {.exchange = "commands",
                  .routing_key = "shop.Order",
                  .reply_to = "caller.Done",
                  .correlation_id = "k1",
                  .headers = in_headers,
                  .n_headers = sizeof in_headers / sizeof in_headers[0],
                  .conversation_id = "c1"};
    job = ju_job(&m, BH_KIND_COMMAND, NULL, 1);
    job->d->conversation_hdr = &in_headers[0];
    bh__ctx_init(&c, "shop", BH_FORMAT_JSON, fl_logger(), job, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bh__job_free(job);
    return 0;
}

static size_t n_outs(void)
{
    size_t n = 0;
    for (bh__out_t *o = job->outs; o; o = o->next) n++;
    return n;
}

static const bh__hdr_t *out_header(const bh__out_t *o, const char *key)
{
    return bh__hdr_find(o->headers, o->n_headers, key);
}

/* -- the table -------------------------------------------------------------- */

/* A plugin of this minor may call any slot: none may be NULL. */
static void every_api_slot_is_filled(void **state)
{
    (void)state;
    const bh_api_t *api = bh__api();
    enum { N = sizeof(bh_api_t) / sizeof(void (*)(void)) };
    assert_int_equal(sizeof(bh_api_t) % sizeof(void (*)(void)), 0);
    for (size_t i = 0; i < N; i++) {
        void (*slot)(void);
        memcpy(&slot, (const char *)api + i * sizeof slot, sizeof slot);
        if (!slot) fail_msg("bh_api_t slot %zu of %d is NULL", i, (int)N);
    }
    /* Spot-check that the count is the header's: the last slot is the newest. */
    assert_non_null(api->publisher_ctx);
    assert_int_equal(offsetof(bh_api_t, publisher_ctx) / sizeof(void (*)(void)), N - 1);
}

/* -- reading headers -------------------------------------------------------- */

static void headers_are_read_typed(void **state)
{
    (void)state;
    bh_header_t h;
    size_t len = 0;
    int64_t i = 0;
    bool b = false;
    assert_string_equal(bh_header_str(ctx, "tenant"), "acme");
    const char *blob = bh_header_bytes(ctx, "blob", &len);
    assert_int_equal(len, 3);
    assert_memory_equal(blob, "a\0b", 3);
    assert_int_equal(bh_header_int(ctx, "attempt", &i), BH_OK);
    assert_int_equal(i, 7);
    assert_int_equal(bh_header_bool(ctx, "vip", &b), BH_OK);
    assert_true(b);
    assert_int_equal(bh_header_get(ctx, "conversation_id", &h), BH_OK);
    assert_int_equal(h.type, BH_HEADER_STRING);
    assert_string_equal(h.str, "c1");
}

static void a_missing_or_other_typed_header_is_told(void **state)
{
    (void)state;
    int64_t i;
    bool b;
    bh_header_t h;
    assert_int_equal(bh_header_get(ctx, "nope", &h), BH_ENOENT);
    assert_int_equal(bh_header_int(ctx, "nope", &i), BH_ENOENT);
    assert_null(bh_header_str(ctx, "attempt"));
    assert_null(bh_header_bytes(ctx, "tenant", NULL));
    assert_int_equal(bh_header_int(ctx, "tenant", &i), BH_ETYPE);
    assert_int_equal(bh_header_bool(ctx, "attempt", &b), BH_ETYPE);
    assert_int_equal(bh_header_get(ctx, NULL, &h), BH_EINVAL);
    c.job = NULL; /* init or fini */
    assert_int_equal(bh_header_get(ctx, "tenant", &h), BH_ESTATE);
    c.job = job;
}

/* -- publishing with options ------------------------------------------------ */

static void publish_carries_custom_headers_expiration_and_priority(void **state)
{
    (void)state;
    bh_header_t hs[] = {
        {.name = "tenant", .type = BH_HEADER_STRING, .str = "acme", .len = 4},
        {.name = "n", .type = BH_HEADER_INT, .num = -5},
        {.name = "raw", .type = BH_HEADER_BYTES, .str = "x\0y", .len = 3},
        {.name = "flag", .type = BH_HEADER_BOOL, .num = 2},
    };
    bh_publish_t p = {.size = sizeof p};
    p.kind = BH_KIND_EVENT;
    p.key = "shop.Ordered";
    p.headers = hs;
    p.n_headers = 4;
    p.expiration_ms = 1500;
    p.priority = 5;
    assert_int_equal(bh_publish(ctx, &p), BH_OK);
    assert_int_equal(n_outs(), 1);
    const bh__out_t *o = job->outs;
    assert_int_equal(o->exchange, BH__EX_EVENTS);
    assert_string_equal(o->routing_key, "shop.Ordered");
    assert_string_equal(o->conversation_id, "c1");
    assert_string_equal(o->expiration, "1500");
    assert_int_equal(o->priority, 5);
    assert_string_equal(out_header(o, "tenant")->str, "acme");
    assert_int_equal(out_header(o, "n")->kind, BH__HDR_INT);
    assert_int_equal(out_header(o, "n")->num, -5);
    assert_memory_equal(out_header(o, "raw")->str, "x\0y", 3);
    assert_int_equal(out_header(o, "flag")->num, 1);
    /* The envelope's header comes first, as on every publish. */
    assert_string_equal(o->headers[0].key, "conversation_id");
}

static void reserved_repeated_or_bad_headers_are_refused(void **state)
{
    (void)state;
    static const char *const reserved[] = {"conversation_id", "status",          "traceparent",
                                           "tracestate",      "x-bushost-retry", "X-Bushost-Id",
                                           "STATUS"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        bh_header_t h = {.name = reserved[i], .type = BH_HEADER_STRING, .str = "v", .len = 1};
        bh_publish_t p = {.size = sizeof p};
        p.kind = BH_KIND_EVENT;
        p.key = "shop.Ordered";
        p.headers = &h;
        p.n_headers = 1;
        assert_int_equal(bh_publish(ctx, &p), BH_EINVAL);
    }
    assert_int_equal(fl_count_match(BH_ERROR, "its name is reserved to the host"), 7);
    bh_header_t twice[] = {{.name = "a", .type = BH_HEADER_INT},
                           {.name = "a", .type = BH_HEADER_INT}};
    bh_header_t bad_type = {.name = "a", .type = (bh_header_type_t)9};
    bh_header_t no_name = {.type = BH_HEADER_INT};
    bh_header_t no_str = {.name = "a", .type = BH_HEADER_STRING, .len = 2};
    const struct {
        const bh_header_t *h;
        size_t n;
        const char *why;
    } bad[] = {{twice, 2, "'a': it is given twice"},
               {&bad_type, 1, "not a bh_header_type_t"},
               {&no_name, 1, "a header has no name"},
               {&no_str, 1, "its str is NULL"},
               {NULL, 1, "headers is NULL"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bh_publish_t p = {.size = sizeof p};
        p.kind = BH_KIND_EVENT;
        p.key = "shop.Ordered";
        p.headers = bad[i].h;
        p.n_headers = bad[i].n;
        assert_int_equal(bh_publish(ctx, &p), BH_EINVAL);
        if (!fl_find(BH_ERROR, bad[i].why)) fail_msg("no ERROR log with '%s'", bad[i].why);
    }
    assert_int_equal(n_outs(), 0);
}

static void bad_options_are_refused(void **state)
{
    (void)state;
    bh_publish_t p = {.size = sizeof p};
    p.kind = BH_KIND_EVENT;
    p.key = "shop.Ordered";
    p.priority = 10;
    assert_int_equal(bh_publish(ctx, &p), BH_EINVAL);
    assert_non_null(fl_find(BH_ERROR, "priority 10, expected 0..9"));
    p.priority = 0;
    p.kind = (bh_kind_t)7;
    assert_int_equal(bh_publish(ctx, &p), BH_EINVAL);
    p.kind = BH_KIND_RESULT; /* a result names no key of its own */
    assert_int_equal(bh_publish(ctx, &p), BH_EINVAL);
    assert_int_equal(bh_publish(ctx, NULL), BH_EINVAL);
    bh_publish_t tiny = {.size = sizeof(size_t)}; /* too small to hold even the kind */
    assert_int_equal(bh_publish(ctx, &tiny), BH_EINVAL);
    c.job = NULL;
    p.kind = BH_KIND_EVENT;
    assert_int_equal(bh_publish(ctx, &p), BH_ESTATE);
    c.job = job;
    assert_int_equal(n_outs(), 0);
}

/* The host reads only the bytes `size` covers: what lies beyond (here a
 * reserved header a shorter struct would not have) is not looked at. */
static void only_what_size_covers_is_read(void **state)
{
    (void)state;
    bh_header_t h = {.name = "status", .type = BH_HEADER_STRING, .str = "x", .len = 1};
    bh_publish_t p = {.size = offsetof(bh_publish_t, headers)};
    p.kind = BH_KIND_EVENT;
    p.key = "shop.Ordered";
    p.headers = &h;
    p.n_headers = 1;
    p.priority = 200;
    assert_int_equal(bh_publish(ctx, &p), BH_OK);
    assert_int_equal(job->outs->priority, 0);
    assert_null(out_header(job->outs, "x"));
    assert_int_equal(job->outs->n_headers, 1); /* conversation_id only */
}

static void a_result_with_options_answers_the_command(void **state)
{
    (void)state;
    bh_header_t h = {.name = "tenant", .type = BH_HEADER_STRING, .str = "acme", .len = 4};
    bh_publish_t p = {.size = sizeof p};
    p.kind = BH_KIND_RESULT;
    p.error = true;
    p.body = "{}";
    p.len = 2;
    p.content_type = "application/json";
    p.headers = &h;
    p.n_headers = 1;
    assert_int_equal(bh_publish(ctx, &p), BH_OK);
    const bh__out_t *o = job->outs;
    assert_string_equal(o->routing_key, "caller.Done");
    assert_string_equal(o->correlation_id, "k1");
    assert_string_equal(o->status, "error");
    assert_string_equal(out_header(o, "tenant")->str, "acme");
    assert_int_equal(bh_publish(ctx, &p), BH_ESTATE); /* answered once */
}

/* -- reply_to and result keys ----------------------------------------------- */

static const bh_route_t noop[] = {{0}};
static const bh_plugin_t p11 = {
    .abi_major = 1, .abi_minor = 1, .service = "inventory", .results = noop};
static const bh_plugin_t p10 = {
    .abi_major = 1, .abi_minor = 0, .service = "inventory", .results = noop};

static const char *sent_reply_to(const bh_plugin_t *p, const char *reply_to)
{
    c.plugin = p;
    c.service = "inv-a";
    assert_int_equal(bh_send_command(ctx, "stock.Reserve", NULL, reply_to, NULL), BH_OK);
    bh__out_t *o = job->outs;
    while (o->next) o = o->next;
    assert_int_not_equal(strlen(o->correlation_id), 0);
    return o->reply_to;
}

static void reply_to_is_named_by_the_result_key_rule(void **state)
{
    (void)state;
    assert_string_equal(sent_reply_to(&p11, "EchoReturn"), "inv-a.EchoReturn");
    assert_string_equal(sent_reply_to(&p11, "inventory.EchoReturn"), "inv-a.EchoReturn");
    assert_string_equal(sent_reply_to(&p11, "billing.Charged"), "billing.Charged");
    /* A 1.0 plugin's keys are taken as written, as they always were. */
    assert_string_equal(sent_reply_to(&p10, "inventory.EchoReturn"), "inventory.EchoReturn");
    assert_string_equal(sent_reply_to(&p10, "EchoReturn"), "EchoReturn");
    /* Relative, it fits alone but not after "<service>.". */
    char name[251];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    c.plugin = &p11;
    assert_int_equal(bh_send_command(ctx, "stock.Reserve", NULL, name, NULL), BH_EINVAL);
    assert_non_null(fl_find(BH_ERROR, "its reply_to as"));
}

static void result_keys_bind_relative_to_the_effective_service(void **state)
{
    (void)state;
    char *k;
    assert_string_equal(k = bh__topology_result_key(&p11, "inv-b", "EchoReturn"),
                        "inv-b.EchoReturn");
    free(k);
    assert_string_equal(k = bh__topology_result_key(&p11, "inv-b", "inventory.EchoReturn"),
                        "inv-b.EchoReturn");
    free(k);
    assert_string_equal(k = bh__topology_result_key(&p10, "inv-b", "inventory.EchoReturn"),
                        "inventory.EchoReturn");
    free(k);
    assert_true(bh__topology_result_is(&p11, "inv-b", "inventory.EchoReturn", "inv-b.EchoReturn"));
    assert_false(bh__topology_result_is(&p11, "inv-b", "inventory.EchoReturn", "inv-a.EchoReturn"));
    assert_false(bh__topology_result_is(&p11, "inv-b", "EchoReturn", "inventory.EchoReturn"));
    assert_true(
        bh__topology_result_is(&p10, "inv-b", "inventory.EchoReturn", "inventory.EchoReturn"));
}

/* -- conveniences ----------------------------------------------------------- */

static void result_errorf_answers_an_error_map(void **state)
{
    (void)state;
    char big[600];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(bh_result_errorf(ctx, "qty %d is not %s", 3, "positive"), BH_OK);
    const bh__out_t *o = job->outs;
    assert_string_equal(o->status, "error");
    assert_string_equal((const char *)o->body, "{\"error\":\"qty 3 is not positive\"}");
    assert_int_equal(bh_result_errorf(ctx, "%s", big), BH_ESTATE); /* answered once */
}

static void result_errorf_formats_long_text(void **state)
{
    (void)state;
    char big[600];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(bh_result_errorf(ctx, "%s!", big), BH_OK);
    char want[700];
    snprintf(want, sizeof want, "{\"error\":\"%s!\"}", big);
    assert_string_equal((const char *)job->outs->body, want);
}

static void map_builders_set_scalars(void **state)
{
    (void)state;
    bh_value_t *m = bh_map_new(ctx);
    int64_t i;
    double d;
    bool b;
    assert_int_equal(bh_map_set_str(ctx, m, "s", "x"), BH_OK);
    assert_int_equal(bh_map_set_int(ctx, m, "i", -4), BH_OK);
    assert_int_equal(bh_map_set_double(ctx, m, "d", 1.5), BH_OK);
    assert_int_equal(bh_map_set_bool(ctx, m, "b", true), BH_OK);
    assert_string_equal(bh_get_str(m, "s"), "x");
    assert_int_equal(bh_get_int(m, "i", &i), BH_OK);
    assert_int_equal(i, -4);
    assert_int_equal(bh_get_double(m, "d", &d), BH_OK);
    assert_true(d == 1.5);
    assert_int_equal(bh_get_bool(m, "b", &b), BH_OK);
    assert_true(b);
    assert_int_equal(bh_map_set_str(ctx, m, "s", NULL), BH_EINVAL);
    assert_int_equal(bh_map_set_str(ctx, m, "s", "\xff"), BH_ENOMEM); /* not UTF-8 */
    assert_int_equal(bh_map_set_int(ctx, NULL, "i", 1), BH_EINVAL);
    bh_value_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(every_api_slot_is_filled),
        T(headers_are_read_typed),
        T(a_missing_or_other_typed_header_is_told),
        T(publish_carries_custom_headers_expiration_and_priority),
        T(reserved_repeated_or_bad_headers_are_refused),
        T(bad_options_are_refused),
        T(only_what_size_covers_is_read),
        T(a_result_with_options_answers_the_command),
        T(reply_to_is_named_by_the_result_key_rule),
        T(result_keys_bind_relative_to_the_effective_service),
        T(result_errorf_answers_an_error_map),
        T(result_errorf_formats_long_text),
        T(map_builders_set_scalars),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
