/* test_plugins.c -- the example plugins (echo.so, cart.so), loaded as the real
 * modules and run by the test kit (bushost_test.h), as plugin authors run
 * theirs. */
#include <dlfcn.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bushost_test.h"

#ifndef BH_PLUGIN_DIR
#error "BH_PLUGIN_DIR must name the folder holding echo.so and cart.so"
#endif

static void *echo_dl, *cart_dl;
static const bh_plugin_t *echo_plugin, *cart_plugin;

static const bh_plugin_t *open_plugin(const char *file, void **dl)
{
    char path[4096];
    const bh_plugin_t *p;

    snprintf(path, sizeof path, "%s/%s", BH_PLUGIN_DIR, file);
    *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!*dl) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        return NULL;
    }
    p = dlsym(*dl, BH_PLUGIN_SYMBOL);
    if (!p) fprintf(stderr, "%s: no symbol %s\n", path, BH_PLUGIN_SYMBOL);
    return p;
}

static int load_plugins(void **unused)
{
    echo_plugin = open_plugin("echo.so", &echo_dl);
    cart_plugin = open_plugin("cart.so", &cart_dl);
    return echo_plugin && cart_plugin ? 0 : -1;
}

static int unload_plugins(void **unused)
{
    if (echo_dl) dlclose(echo_dl);
    if (cart_dl) dlclose(cart_dl);
    return 0;
}

/* One plugin instance in a test kit, per test. */
typedef struct fixture {
    bht_t *h;
    bool started;
} fixture_t;

static fixture_t *fixture_new(const bh_plugin_t *p)
{
    fixture_t *f = calloc(1, sizeof *f);

    assert_non_null(f);
    f->h = bht_new(p, NULL);
    assert_non_null(f->h);
    return f;
}

static void start(fixture_t *f)
{
    assert_int_equal(bht_init(f->h), BH_OK);
    f->started = true;
}

static int echo_setup(void **state)
{
    *state = fixture_new(echo_plugin);
    return 0;
}

static int cart_setup(void **state)
{
    *state = fixture_new(cart_plugin);
    return 0;
}

/* Every test ends with fini (so ASan sees what init made freed) and with no
 * breach of the SDK contract recorded by the kit. */
static int teardown(void **state)
{
    fixture_t *f = *state;
    int violations;

    bht_fini(f->h);
    violations = bht_violations(f->h);
    bht_free(f->h);
    free(f);
    return violations == 0 ? 0 : -1;
}

/* Deliver a JSON message of conversation CONV and return the outcome. */
#define CONV "conv-1"
static bht_outcome_t deliver_json(fixture_t *f, bh_kind_t kind, const char *key, const char *json)
{
    return bht_deliver(f->h, kind, key, &(bht_msg_t){.json = json, .conversation_id = CONV});
}

static bht_outcome_t deliver_raw(fixture_t *f, bh_kind_t kind, const char *key, const char *ct,
                                 const void *body, size_t len)
{
    return bht_deliver(
        f->h, kind, key,
        &(bht_msg_t){.content_type = ct, .body = body, .len = len, .conversation_id = CONV});
}

static size_t count_level(fixture_t *f, bh_level_t level)
{
    size_t n = 0;

    for (size_t i = 0; i < bht_count(f->h, BHT_LOG); i++)
        n += bht_rec(f->h, BHT_LOG, i)->level == level;
    return n;
}

/* The only result recorded so far (and there must be exactly one). */
static const bht_rec_t *the_result(fixture_t *f)
{
    assert_int_equal(bht_count(f->h, BHT_RESULT), 1);
    return bht_rec(f->h, BHT_RESULT, 0);
}

/* ------------------------------------------------------------------------ */
/* echo                                                                     */

static void echo_descriptor_names_plugin_service_and_commands(void **state)
{
    assert_string_equal(echo_plugin->name, "echo");
    assert_string_equal(echo_plugin->service, "echo");
    assert_int_equal(echo_plugin->magic, BH_MAGIC);
    assert_string_equal(echo_plugin->commands[0].key, "Echo");
    assert_string_equal(echo_plugin->commands[1].key, "Divide");
    assert_null(echo_plugin->commands[2].key);
    assert_null(echo_plugin->events);
}

static void echo_returns_cbor_bytes_and_content_type_unchanged(void **state)
{
    fixture_t *f = *state;
    /* {"a": h'00ff', "n": 1.5 (as a half float)}: a re-encoder would change
     * the float's width, a string copy would stop at the NUL byte. */
    static const unsigned char cbor[] = {0xa2, 0x61, 0x61, 0x42, 0x00, 0xff,
                                         0x61, 0x6e, 0xf9, 0x3e, 0x00};
    const bht_rec_t *r;

    start(f);
    assert_int_equal(
        deliver_raw(f, BH_KIND_COMMAND, "echo.Echo", "application/cbor", cbor, sizeof cbor),
        BH_DONE);
    r = the_result(f);
    assert_string_equal(r->status, "success");
    assert_null(r->json);
    assert_string_equal(r->content_type, "application/cbor");
    assert_int_equal(r->len, sizeof cbor);
    assert_memory_equal(r->body, cbor, sizeof cbor);
    assert_int_equal(bht_count(f->h, BHT_PUBLISH), 0);
}

/* Valid payloads other services send, with values beyond what a plugin reads
 * (docs/wire-conventions.md, "Numbers and other values"): they decode, and
 * echo.Echo answers each with its own bytes. */
static void echo_returns_any_valid_payload_byte_for_byte(void **state)
{
    fixture_t *f = *state;
    static const struct {
        const char *ct;
        const char *body;
        size_t len;
    } cases[] = {
#define C(s) {"application/cbor", s, sizeof s - 1}
#define J(s)                                \
    {                                       \
        "application/json", s, sizeof s - 1 \
    }
        C("\xa1\x62id\x1b\xff\xff\xff\xff\xff\xff\xff\xff"),        /* 2^64-1 */
        C("\xa1\x61n\x3b\xff\xff\xff\xff\xff\xff\xff\xff"),         /* -2^64 */
        C("\xa1\x61p\xc2\x49\x01\x00\x00\x00\x00\x00\x00\x00\x00"), /* bignum 2^64 */
        C("\xa2\x61s\xf0\x61t\xf8\xff"),                            /* simple values */
        C("\xa2\x01\x02\x61k\x80"),                                 /* an integer key */
        C("\xa1\x61k\x63x\x00y"),                                   /* NUL in text */
        J("{\"id\": 18446744073709551615}"),
        J("{\"n\": -18446744073709551616, \"b\": 123456789012345678901234567890}"),
        J("{\"r\": 1e400}"),
        J("{\"s\": \"x\\u0000y\", \"k\\u0000\": 1}"),
#undef C
#undef J
    };
    start(f);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bht_rec_t *r;
        bht_clear(f->h);
        assert_int_equal(
            deliver_raw(f, BH_KIND_COMMAND, "echo.Echo", cases[i].ct, cases[i].body, cases[i].len),
            BH_DONE);
        r = the_result(f);
        assert_string_equal(r->status, "success");
        assert_int_equal(r->len, cases[i].len);
        assert_memory_equal(r->body, cases[i].body, cases[i].len);
    }
}

/* A message without a content type is JSON (the wire contract): the bytes
 * come back as sent, and the host names them application/json. */
static void echo_answers_no_content_type_as_json(void **state)
{
    fixture_t *f = *state;
    /* Odd spacing: the bytes come back as sent, not re-encoded JSON. */
    static const char body[] = "{ \"k\" :  \"v\" }";
    const bht_rec_t *r;

    start(f);
    assert_int_equal(deliver_raw(f, BH_KIND_COMMAND, "echo.Echo", "", body, strlen(body)), BH_DONE);
    r = the_result(f);
    assert_string_equal(r->status, "success");
    assert_non_null(r->content_type);
    assert_string_equal(r->content_type, "application/json");
    assert_int_equal(r->len, strlen(body));
    assert_memory_equal(r->body, body, strlen(body));
}

static void echo_answers_an_empty_body_with_an_empty_body(void **state)
{
    fixture_t *f = *state;
    const bht_rec_t *r;

    start(f);
    assert_int_equal(deliver_raw(f, BH_KIND_COMMAND, "echo.Echo", "application/json", NULL, 0),
                     BH_DONE);
    r = the_result(f);
    assert_string_equal(r->status, "success");
    assert_string_equal(r->content_type, "application/json");
    assert_int_equal(r->len, 0);
}

static void divide_7_by_2_gives_q_3_5(void **state)
{
    fixture_t *f = *state;
    const bht_rec_t *r;

    start(f);
    assert_int_equal(deliver_json(f, BH_KIND_COMMAND, "echo.Divide", "{\"a\": 7, \"b\": 2}"),
                     BH_DONE);
    r = the_result(f);
    assert_string_equal(r->status, "success");
    assert_true(bht_json_equal(r->json, "{\"q\": 3.5}"));
    assert_int_equal(bht_count(f->h, BHT_LOG), 0);
}

static void divide_of_integers_gives_a_double(void **state)
{
    fixture_t *f = *state;

    start(f);
    assert_int_equal(deliver_json(f, BH_KIND_COMMAND, "echo.Divide", "{\"a\": 6, \"b\": 3}"),
                     BH_DONE);
    /* json_equal tells 2.0 (a real) from 2 (an integer). */
    assert_true(bht_json_equal(the_result(f)->json, "{\"q\": 2.0}"));
}

static void divide_takes_floats_from_cbor(void **state)
{
    fixture_t *f = *state;
    /* {"a": 1.5, "b": -0.5} with half floats; extra field "z" is ignored. */
    static const unsigned char cbor[] = {0xa3, 0x61, 0x61, 0xf9, 0x3e, 0x00, 0x61,
                                         0x62, 0xf9, 0xb8, 0x00, 0x61, 0x7a, 0xf6};
    const bht_rec_t *r;

    start(f);
    assert_int_equal(
        deliver_raw(f, BH_KIND_COMMAND, "echo.Divide", "application/cbor", cbor, sizeof cbor),
        BH_DONE);
    r = the_result(f);
    assert_string_equal(r->status, "success");
    assert_true(bht_json_equal(r->json, "{\"q\": -3.0}"));
}

static void divide_by_zero_gives_the_documented_error_result(void **state)
{
    fixture_t *f = *state;
    static const char *const inputs[] = {
        "{\"a\": 1, \"b\": 0}",
        "{\"a\": 1.5, \"b\": 0.0}",
        "{\"a\": 0, \"b\": -0.0}",
    };

    start(f);
    for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++) {
        const bht_rec_t *r;

        bht_clear(f->h);
        assert_int_equal(deliver_json(f, BH_KIND_COMMAND, "echo.Divide", inputs[i]), BH_DONE);
        r = the_result(f);
        assert_string_equal(r->status, "error");
        assert_true(bht_json_equal(r->json, "{\"error\": \"division by zero\"}"));
        /* An expected outcome, not something to warn an operator about. */
        assert_int_equal(bht_count(f->h, BHT_LOG), 0);
    }
}

static void check_not_numbers(fixture_t *f)
{
    const bht_rec_t *r = the_result(f), *log;

    assert_string_equal(r->status, "error");
    assert_true(bht_json_equal(r->json, "{\"error\": \"a and b must be numbers\"}"));
    assert_int_equal(bht_count(f->h, BHT_LOG), 1);
    log = bht_rec(f->h, BHT_LOG, 0);
    assert_int_equal(log->level, BH_WARNING);
    assert_non_null(strstr(log->text, "conv-1"));
}

static void divide_without_numbers_gives_error_result_and_a_warning(void **state)
{
    fixture_t *f = *state;
    static const char *const inputs[] = {
        "{}",
        "{\"b\": 2}",
        "{\"a\": 2}",
        "{\"a\": \"7\", \"b\": 2}",
        "{\"a\": 7, \"b\": \"2\"}",
        "{\"a\": null, \"b\": 2}",
        "{\"a\": 7, \"b\": true}",
        "{\"a\": [7], \"b\": 2}",
        "{\"a\": 7, \"b\": {\"v\": 2}}",
        "{\"A\": 7, \"B\": 2}",
    };

    start(f);
    for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++) {
        bht_clear(f->h);
        assert_int_equal(deliver_json(f, BH_KIND_COMMAND, "echo.Divide", inputs[i]), BH_DONE);
        check_not_numbers(f);
    }
}

static void divide_with_an_empty_body_gives_error_result(void **state)
{
    fixture_t *f = *state;

    start(f);
    assert_int_equal(deliver_raw(f, BH_KIND_COMMAND, "echo.Divide", "", NULL, 0), BH_DONE);
    check_not_numbers(f);
}

static void divide_refuses_nan_and_infinity_from_cbor(void **state)
{
    fixture_t *f = *state;
    /* {"a": NaN, "b": 1} and {"a": 1, "b": Infinity}, half floats. */
    static const unsigned char nan_a[] = {0xa2, 0x61, 0x61, 0xf9, 0x7e, 0x00, 0x61, 0x62, 0x01};
    static const unsigned char inf_b[] = {0xa2, 0x61, 0x61, 0x01, 0x61, 0x62, 0xf9, 0x7c, 0x00};

    start(f);
    assert_int_equal(
        deliver_raw(f, BH_KIND_COMMAND, "echo.Divide", "application/cbor", nan_a, sizeof nan_a),
        BH_DONE);
    check_not_numbers(f);
    bht_clear(f->h);
    assert_int_equal(
        deliver_raw(f, BH_KIND_COMMAND, "echo.Divide", "application/cbor", inf_b, sizeof inf_b),
        BH_DONE);
    check_not_numbers(f);
}

static void divide_overflow_gives_out_of_range_error(void **state)
{
    fixture_t *f = *state;
    const bht_rec_t *r;

    start(f);
    assert_int_equal(deliver_json(f, BH_KIND_COMMAND, "echo.Divide", "{\"a\": 1e308, \"b\": 0.1}"),
                     BH_DONE);
    r = the_result(f);
    assert_string_equal(r->status, "error");
    assert_true(bht_json_equal(r->json, "{\"error\": \"result out of range\"}"));
}

static void echo_logs_nothing_by_default(void **state)
{
    fixture_t *f = *state;

    start(f);
    assert_int_equal(bht_config_reads(f->h, "log_requests"), 1);
    assert_int_equal(deliver_json(f, BH_KIND_COMMAND, "echo.Echo", "{}"), BH_DONE);
    assert_int_equal(deliver_json(f, BH_KIND_COMMAND, "echo.Divide", "{\"a\":1,\"b\":2}"), BH_DONE);
    assert_int_equal(bht_count(f->h, BHT_LOG), 0);
}

static void echo_log_requests_logs_each_request_at_info(void **state)
{
    fixture_t *f = *state;
    const bht_rec_t *log;

    bht_set_config(f->h, "log_requests", "true");
    start(f);
    assert_int_equal(bht_config_reads(f->h, "log_requests"), 1);
    assert_int_equal(deliver_json(f, BH_KIND_COMMAND, "echo.Echo", "{}"), BH_DONE);
    assert_int_equal(deliver_json(f, BH_KIND_COMMAND, "echo.Divide", "{\"a\":1,\"b\":2}"), BH_DONE);
    assert_int_equal(bht_count(f->h, BHT_LOG), 2);
    assert_int_equal(count_level(f, BH_INFO), 2);
    log = bht_rec(f->h, BHT_LOG, 0);
    assert_non_null(strstr(log->text, "conv-1"));
    assert_non_null(strstr(log->text, "echo.Echo"));
    assert_non_null(strstr(bht_rec(f->h, BHT_LOG, 1)->text, "echo.Divide"));
}

/* ------------------------------------------------------------------------ */
/* cart                                                                     */

/* The n-th CartUpdated published (each must be an event named CartUpdated). */
static const char *update_json(fixture_t *f, size_t i)
{
    const bht_rec_t *r = bht_rec(f->h, BHT_PUBLISH, i);

    assert_non_null(r);
    assert_int_equal(r->kind, BH_KIND_EVENT);
    assert_string_equal(r->key, "CartUpdated");
    assert_string_equal(r->conversation_id, "conv-1");
    return r->json;
}

static bht_outcome_t select_item(fixture_t *f, const char *cart, const char *item, long long qty)
{
    char json[256];

    snprintf(json, sizeof json, "{\"cart\": \"%s\", \"item\": \"%s\", \"qty\": %lld}", cart, item,
             qty);
    return deliver_json(f, BH_KIND_EVENT, "ItemSelected", json);
}

static bht_outcome_t remove_item(fixture_t *f, const char *cart, const char *item)
{
    char json[256];

    snprintf(json, sizeof json, "{\"cart\": \"%s\", \"item\": \"%s\"}", cart, item);
    return deliver_json(f, BH_KIND_EVENT, "ItemRemoved", json);
}

static void cart_descriptor_names_plugin_service_events_and_config(void **state)
{
    assert_string_equal(cart_plugin->name, "cart");
    assert_string_equal(cart_plugin->service, "cart");
    assert_string_equal(cart_plugin->events[0].key, "ItemSelected");
    assert_string_equal(cart_plugin->events[1].key, "ItemRemoved");
    assert_null(cart_plugin->events[2].key);
    assert_null(cart_plugin->commands);
    assert_string_equal(cart_plugin->config[0].key, "max_items");
    assert_int_equal(cart_plugin->config[0].type, BH_CONF_INT);
    assert_string_equal(cart_plugin->config[0].def, "1000");
    assert_int_equal(cart_plugin->config[0].min, 1);
    assert_int_equal(cart_plugin->config[0].max, 1000000);
    assert_null(cart_plugin->config[1].key);
}

static void cart_select_two_apples_and_a_pear_publishes_the_cart(void **state)
{
    fixture_t *f = *state;

    start(f);
    assert_int_equal(select_item(f, "c1", "apple", 2), BH_DONE);
    assert_int_equal(select_item(f, "c1", "pear", 1), BH_DONE);
    assert_int_equal(bht_count(f->h, BHT_PUBLISH), 2);
    assert_true(bht_json_equal(update_json(f, 0), "{\"cart\":\"c1\",\"items\":{\"apple\":2}}"));
    assert_true(
        bht_json_equal(update_json(f, 1), "{\"cart\":\"c1\",\"items\":{\"apple\":2,\"pear\":1}}"));
    assert_int_equal(bht_count(f->h, BHT_RESULT), 0);
    assert_int_equal(bht_count(f->h, BHT_LOG), 0);
}

static void cart_repeated_selection_adds_up(void **state)
{
    fixture_t *f = *state;

    start(f);
    assert_int_equal(select_item(f, "c1", "apple", 2), BH_DONE);
    assert_int_equal(select_item(f, "c1", "apple", 3), BH_DONE);
    assert_true(bht_json_equal(update_json(f, 1), "{\"cart\":\"c1\",\"items\":{\"apple\":5}}"));
}

static void cart_keeps_carts_apart(void **state)
{
    fixture_t *f = *state;

    start(f);
    /* "b" sorts between the two carts' items and before "c1": each update must
     * still hold only its own cart's lines. */
    assert_int_equal(select_item(f, "c2", "pear", 1), BH_DONE);
    assert_int_equal(select_item(f, "c1", "apple", 2), BH_DONE);
    assert_int_equal(select_item(f, "b", "plum", 4), BH_DONE);
    assert_int_equal(select_item(f, "c2", "fig", 3), BH_DONE);
    assert_true(bht_json_equal(update_json(f, 2), "{\"cart\":\"b\",\"items\":{\"plum\":4}}"));
    assert_true(
        bht_json_equal(update_json(f, 3), "{\"cart\":\"c2\",\"items\":{\"pear\":1,\"fig\":3}}"));
}

/* A hot reload (bht_upgrade, as the host does it): cart_upgrade keeps the
 * carts, so the next update holds the items chosen before. The echo
 * plugin's descriptor cannot take over: other routes. */
static void cart_keeps_its_carts_across_a_reload(void **state)
{
    fixture_t *f = *state;

    start(f);
    assert_int_equal(select_item(f, "c1", "apple", 2), BH_DONE);
    void *before = bht_state(f->h);
    assert_int_equal(bht_upgrade(f->h, echo_plugin), BH_EINVAL);
    assert_non_null(strstr(bht_error(), "changes its built-in service"));
    assert_int_equal(bht_upgrade(f->h, cart_plugin), BH_OK);
    assert_ptr_equal(bht_state(f->h), before); /* the old store, taken over */
    assert_non_null(bht_find_log(f->h, BH_INFO, "kept 1 cart line(s) from version 1.0.0"));
    assert_int_equal(select_item(f, "c1", "pear", 1), BH_DONE);
    assert_true(
        bht_json_equal(update_json(f, 1), "{\"cart\":\"c1\",\"items\":{\"apple\":2,\"pear\":1}}"));
}

static void cart_remove_drops_the_item(void **state)
{
    fixture_t *f = *state;

    start(f);
    assert_int_equal(select_item(f, "c1", "apple", 2), BH_DONE);
    assert_int_equal(select_item(f, "c1", "pear", 1), BH_DONE);
    assert_int_equal(remove_item(f, "c1", "apple"), BH_DONE);
    assert_true(bht_json_equal(update_json(f, 2), "{\"cart\":\"c1\",\"items\":{\"pear\":1}}"));
    assert_int_equal(remove_item(f, "c1", "pear"), BH_DONE);
    assert_true(bht_json_equal(update_json(f, 3), "{\"cart\":\"c1\",\"items\":{}}"));
    /* Selecting again starts from zero. */
    assert_int_equal(select_item(f, "c1", "apple", 1), BH_DONE);
    assert_true(bht_json_equal(update_json(f, 4), "{\"cart\":\"c1\",\"items\":{\"apple\":1}}"));
}

static void cart_removing_an_unknown_item_still_publishes(void **state)
{
    fixture_t *f = *state;

    start(f);
    assert_int_equal(remove_item(f, "nowhere", "apple"), BH_DONE);
    assert_true(bht_json_equal(update_json(f, 0), "{\"cart\":\"nowhere\",\"items\":{}}"));
    assert_int_equal(select_item(f, "c1", "apple", 2), BH_DONE);
    assert_int_equal(remove_item(f, "c1", "pear"), BH_DONE);
    assert_true(bht_json_equal(update_json(f, 2), "{\"cart\":\"c1\",\"items\":{\"apple\":2}}"));
    assert_int_equal(bht_count(f->h, BHT_LOG), 0);
}

/* Each bad event is rejected with one ERROR log naming the conversation, and
 * publishes nothing. */
static void check_rejected_raw(fixture_t *f, const char *key, const char *what, const char *ct,
                               const void *body, size_t len)
{
    const bht_rec_t *log;

    bht_clear(f->h);
    if (deliver_raw(f, BH_KIND_EVENT, key, ct, body, len) != BH_REJECT)
        fail_msg("%s %s was not rejected", key, what);
    assert_int_equal(bht_count(f->h, BHT_PUBLISH), 0);
    assert_int_equal(bht_count(f->h, BHT_LOG), 1);
    log = bht_rec(f->h, BHT_LOG, 0);
    assert_int_equal(log->level, BH_ERROR);
    assert_non_null(strstr(log->text, "conv-1"));
}

static void check_rejected(fixture_t *f, const char *key, const char *json)
{
    check_rejected_raw(f, key, json, "application/json", json, strlen(json));
}

/* CBOR text strings may hold a NUL byte, which would cut a name short:
 * {"cart": "c1", "item": "a\0b", "qty": 1} and {"cart": "c\0", "item": "a"}. */
static const unsigned char nul_item[] = {0xa3, 0x64, 'c',  'a', 'r', 't', 0x62, 'c',
                                         '1',  0x64, 'i',  't', 'e', 'm', 0x63, 'a',
                                         0x00, 'b',  0x63, 'q', 't', 'y', 0x01};
static const unsigned char nul_cart[] = {0xa2, 0x64, 'c', 'a', 'r', 't', 0x62, 'c',
                                         0x00, 0x64, 'i', 't', 'e', 'm', 0x61, 'a'};

static void cart_rejects_malformed_ItemSelected_with_an_error_log(void **state)
{
    fixture_t *f = *state;
    static const char *const bad[] = {
        "{}",
        "{\"item\": \"apple\", \"qty\": 1}",
        "{\"cart\": \"c1\", \"qty\": 1}",
        "{\"cart\": \"c1\", \"item\": \"apple\"}",
        "{\"cart\": 1, \"item\": \"apple\", \"qty\": 1}",
        "{\"cart\": \"c1\", \"item\": null, \"qty\": 1}",
        "{\"cart\": \"c1\", \"item\": [\"apple\"], \"qty\": 1}",
        "{\"cart\": \"c1\", \"item\": \"apple\", \"qty\": \"1\"}",
        "{\"cart\": \"c1\", \"item\": \"apple\", \"qty\": 2.0}",
        "{\"cart\": \"c1\", \"item\": \"apple\", \"qty\": true}",
        "{\"cart\": \"c1\", \"item\": \"apple\", \"qty\": 0}",
        "{\"cart\": \"c1\", \"item\": \"apple\", \"qty\": -1}",
        "{\"cart\": \"c1\", \"item\": \"apple\", \"qty\": -9223372036854775808}",
        "{\"cart\": \"\", \"item\": \"apple\", \"qty\": 1}",
        "{\"cart\": \"c1\", \"item\": \"\", \"qty\": 1}",
    };

    start(f);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) check_rejected(f, "ItemSelected", bad[i]);
    check_rejected_raw(f, "ItemSelected", "(NUL in item)", "application/cbor", nul_item,
                       sizeof nul_item);
    /* An empty body (no payload at all) too. */
    bht_clear(f->h);
    assert_int_equal(deliver_raw(f, BH_KIND_EVENT, "ItemSelected", "", NULL, 0), BH_REJECT);
    assert_int_equal(count_level(f, BH_ERROR), 1);
    /* None of them changed the cart. */
    bht_clear(f->h);
    assert_int_equal(remove_item(f, "c1", "none"), BH_DONE);
    assert_true(bht_json_equal(update_json(f, 0), "{\"cart\":\"c1\",\"items\":{}}"));
}

static void cart_rejects_malformed_ItemRemoved_with_an_error_log(void **state)
{
    fixture_t *f = *state;
    static const char *const bad[] = {
        "{}",
        "{\"item\": \"apple\"}",
        "{\"cart\": \"c1\"}",
        "{\"cart\": 1, \"item\": \"apple\"}",
        "{\"cart\": \"c1\", \"item\": false}",
        "{\"cart\": \"c1\", \"item\": {}}",
        "{\"cart\": \"\", \"item\": \"apple\"}",
        "{\"cart\": \"c1\", \"item\": \"\"}",
    };

    start(f);
    assert_int_equal(select_item(f, "c1", "apple", 2), BH_DONE);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) check_rejected(f, "ItemRemoved", bad[i]);
    check_rejected_raw(f, "ItemRemoved", "(NUL in cart)", "application/cbor", nul_cart,
                       sizeof nul_cart);
    bht_clear(f->h);
    assert_int_equal(deliver_raw(f, BH_KIND_EVENT, "ItemRemoved", "", NULL, 0), BH_REJECT);
    assert_int_equal(count_level(f, BH_ERROR), 1);
    /* The apple is still there. */
    bht_clear(f->h);
    assert_int_equal(select_item(f, "c1", "pear", 1), BH_DONE);
    assert_true(
        bht_json_equal(update_json(f, 0), "{\"cart\":\"c1\",\"items\":{\"apple\":2,\"pear\":1}}"));
}

static void cart_init_reads_max_items_through_config(void **state)
{
    fixture_t *f = *state;

    bht_set_config(f->h, "max_items", "2");
    start(f);
    assert_int_equal(bht_config_reads(f->h, "max_items"), 1);
    assert_int_equal(select_item(f, "c1", "a", 1), BH_DONE);
    assert_int_equal(select_item(f, "c1", "b", 1), BH_DONE);
    bht_clear(f->h);
    /* A third distinct item is refused with a WARNING and nothing published... */
    assert_int_equal(select_item(f, "c1", "c", 1), BH_REJECT);
    assert_int_equal(bht_count(f->h, BHT_PUBLISH), 0);
    assert_int_equal(bht_count(f->h, BHT_LOG), 1);
    assert_int_equal(count_level(f, BH_WARNING), 1);
    assert_non_null(strstr(bht_rec(f->h, BHT_LOG, 0)->text, "conv-1"));
    /* ...but more of an item already there is fine, other carts have their
     * own limit, and removing makes room. */
    assert_int_equal(select_item(f, "c1", "a", 5), BH_DONE);
    assert_int_equal(select_item(f, "c2", "c", 1), BH_DONE);
    assert_int_equal(remove_item(f, "c1", "b"), BH_DONE);
    assert_int_equal(select_item(f, "c1", "c", 1), BH_DONE);
    assert_true(bht_json_equal(update_json(f, 3), "{\"cart\":\"c1\",\"items\":{\"a\":6,\"c\":1}}"));
}

static void cart_max_items_defaults_to_1000(void **state)
{
    fixture_t *f = *state;
    char item[32];

    start(f);
    assert_int_equal(bht_config_reads(f->h, "max_items"), 1);
    for (int i = 0; i < 1000; i++) {
        snprintf(item, sizeof item, "item%04d", i);
        assert_int_equal(select_item(f, "c1", item, 1), BH_DONE);
    }
    bht_clear(f->h);
    assert_int_equal(select_item(f, "c1", "one-too-many", 1), BH_REJECT);
    assert_int_equal(count_level(f, BH_WARNING), 1);
}

/* The host refuses these before init: the kit checks them as it does, by
 * the declared key (an integer, 1..1000000). */
static void cart_refuses_a_bad_max_items(void **state)
{
    static const char *const bad[] = {"abc", "0", "-3", "12x", "", "1000001"};

    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        bht_t *h = bht_new(cart_plugin, NULL);

        assert_non_null(h);
        assert_int_equal(bht_set_config(h, "max_items", bad[i]), BH_EINVAL);
        assert_int_equal(bht_set_config(h, "no_such_key", "1"), BH_ENOENT);
        assert_int_equal(bht_init(h), BH_OK); /* the default stays */
        assert_int_equal(bht_violations(h), 0);
        bht_free(h);
    }
}

static void cart_rejects_a_quantity_that_would_overflow(void **state)
{
    fixture_t *f = *state;

    start(f);
    assert_int_equal(select_item(f, "c1", "apple", INT64_MAX), BH_DONE);
    bht_clear(f->h);
    assert_int_equal(select_item(f, "c1", "apple", 1), BH_REJECT);
    assert_int_equal(bht_count(f->h, BHT_PUBLISH), 0);
    assert_int_equal(count_level(f, BH_WARNING), 1);
    assert_int_equal(remove_item(f, "c1", "pear"), BH_DONE);
    assert_true(bht_json_equal(update_json(f, 0),
                               "{\"cart\":\"c1\",\"items\":{\"apple\":9223372036854775807}}"));
}

static void cart_init_and_fini_free_every_cart(void **state)
{
    fixture_t *f = *state;
    char cart[32], item[32];

    /* Many carts and items, some removed: fini must free what is left (the
     * ASan build fails on a leak). */
    start(f);
    for (int i = 0; i < 200; i++) {
        snprintf(cart, sizeof cart, "cart%d", i % 7);
        snprintf(item, sizeof item, "item%d", i);
        assert_int_equal(select_item(f, cart, item, i + 1), BH_DONE);
        assert_int_equal(select_item(f, "big", item, 1), BH_DONE);
        if (i % 3 == 0) assert_int_equal(remove_item(f, "big", item), BH_DONE);
    }
    assert_int_equal(bht_count(f->h, BHT_LOG), 0);
}

/* Concurrency: THREADS workers deliver ROUNDS events each on one cart. */
#define THREADS 8
#define ROUNDS 1000

typedef struct worker {
    fixture_t *f;
    int id;
    int failures;
} worker_t;

static void *select_apples(void *arg)
{
    worker_t *w = arg;
    for (int i = 0; i < ROUNDS; i++)
        w->failures +=
            deliver_json(w->f, BH_KIND_EVENT, "ItemSelected",
                         "{\"cart\": \"c1\", \"item\": \"apple\", \"qty\": 1}") != BH_DONE;
    return NULL;
}

static void *select_distinct(void *arg)
{
    worker_t *w = arg;
    char json[128];

    for (int i = 0; i < ROUNDS / 10; i++) {
        snprintf(json, sizeof json, "{\"cart\": \"c2\", \"item\": \"t%d-%03d\", \"qty\": %d}",
                 w->id, i, w->id + 1);
        w->failures += deliver_json(w->f, BH_KIND_EVENT, "ItemSelected", json) != BH_DONE;
    }
    return NULL;
}

static void run_workers(fixture_t *f, void *(*fn)(void *))
{
    pthread_t t[THREADS];
    worker_t w[THREADS];

    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker_t){.f = f, .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, fn, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(w[i].failures, 0);
    }
}

static json_t *parse_items(const char *json)
{
    json_t *root = json ? json_loads(json, 0, NULL) : NULL;
    json_t *items = json_object_get(root, "items");

    assert_non_null(items);
    json_incref(items);
    json_decref(root);
    return items;
}

static void cart_concurrent_selections_add_up_exactly(void **state)
{
    fixture_t *f = *state;
    const int total = THREADS * ROUNDS;
    char *seen = calloc((size_t)total + 1, 1);

    assert_non_null(seen);
    bht_set_config(f->h, "max_items", "1000000");
    start(f);
    run_workers(f, select_apples);
    assert_int_equal(bht_count(f->h, BHT_PUBLISH), (size_t)total);
    /* Each CartUpdated is a snapshot taken under the lock right after its own
     * change, so the published quantities are exactly 1..total, each once. */
    for (int i = 0; i < total; i++) {
        json_t *items = parse_items(update_json(f, (size_t)i));
        json_int_t q = json_integer_value(json_object_get(items, "apple"));

        assert_int_equal(json_object_size(items), 1);
        assert_in_range(q, 1, total);
        assert_int_equal(seen[q], 0);
        seen[q] = 1;
        json_decref(items);
    }
    free(seen);
    bht_clear(f->h);
    assert_int_equal(select_item(f, "c1", "apple", 1), BH_DONE);
    {
        json_t *items = parse_items(update_json(f, 0));
        assert_int_equal(json_integer_value(json_object_get(items, "apple")), total + 1);
        json_decref(items);
    }
}

static void cart_concurrent_new_items_are_all_kept(void **state)
{
    fixture_t *f = *state;
    json_t *items;
    char key[32];

    bht_set_config(f->h, "max_items", "1000000");
    start(f);
    run_workers(f, select_distinct);
    bht_clear(f->h);
    assert_int_equal(remove_item(f, "c2", "none"), BH_DONE);
    items = parse_items(update_json(f, 0));
    assert_int_equal(json_object_size(items), THREADS * (ROUNDS / 10));
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < ROUNDS / 10; i++) {
            snprintf(key, sizeof key, "t%d-%03d", t, i);
            assert_int_equal(json_integer_value(json_object_get(items, key)), t + 1);
        }
    json_decref(items);
}

int main(void)
{
#define ECHO(t) cmocka_unit_test_setup_teardown(t, echo_setup, teardown)
#define CART(t) cmocka_unit_test_setup_teardown(t, cart_setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(echo_descriptor_names_plugin_service_and_commands),
        ECHO(echo_returns_cbor_bytes_and_content_type_unchanged),
        ECHO(echo_returns_any_valid_payload_byte_for_byte),
        ECHO(echo_answers_no_content_type_as_json),
        ECHO(echo_answers_an_empty_body_with_an_empty_body),
        ECHO(divide_7_by_2_gives_q_3_5),
        ECHO(divide_of_integers_gives_a_double),
        ECHO(divide_takes_floats_from_cbor),
        ECHO(divide_by_zero_gives_the_documented_error_result),
        ECHO(divide_without_numbers_gives_error_result_and_a_warning),
        ECHO(divide_with_an_empty_body_gives_error_result),
        ECHO(divide_refuses_nan_and_infinity_from_cbor),
        ECHO(divide_overflow_gives_out_of_range_error),
        ECHO(echo_logs_nothing_by_default),
        ECHO(echo_log_requests_logs_each_request_at_info),
        cmocka_unit_test(cart_descriptor_names_plugin_service_events_and_config),
        CART(cart_select_two_apples_and_a_pear_publishes_the_cart),
        CART(cart_repeated_selection_adds_up),
        CART(cart_keeps_carts_apart),
        CART(cart_keeps_its_carts_across_a_reload),
        CART(cart_remove_drops_the_item),
        CART(cart_removing_an_unknown_item_still_publishes),
        CART(cart_rejects_malformed_ItemSelected_with_an_error_log),
        CART(cart_rejects_malformed_ItemRemoved_with_an_error_log),
        CART(cart_init_reads_max_items_through_config),
        CART(cart_max_items_defaults_to_1000),
        cmocka_unit_test(cart_refuses_a_bad_max_items),
        CART(cart_rejects_a_quantity_that_would_overflow),
        CART(cart_init_and_fini_free_every_cart),
        CART(cart_concurrent_selections_add_up_exactly),
        CART(cart_concurrent_new_items_are_all_kept),
    };
    return cmocka_run_group_tests(tests, load_plugins, unload_plugins);
}
