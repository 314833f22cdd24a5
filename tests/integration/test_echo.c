/* test_echo.c -- the echo plugin seen from the bus: a command goes out on
 * `commands`, its result comes back on the reply_to key with exactly the
 * properties docs/wire-conventions.md lists for a result. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define RESULT_KEY "itest.EchoResult"

static const char *echo_sections; /* extra config for [echo], or NULL */

static it_host_t *start_echo(it_conn_t *c)
{
    return it_host_ready(c, "echo.commands",
                         &(it_host_opts_t){.plugins = "echo", .sections = echo_sections});
}

/* A result: on `commands` with the command's reply_to as routing key;
 * delivery_mode 2; reply_to present and ""; the command's correlation_id;
 * headers exactly conversation_id (the command's), status and traceparent,
 * all strings;
 * none of the properties the contract says are not set. */
static void assert_result(const it_msg_t *r, const char *reply_to, const char *corr,
                          const char *conv, const char *status)
{
    const amqp_basic_properties_t *p = r->props;

    assert_string_equal(r->exchange, "commands");
    assert_string_equal(r->routing_key, reply_to);
    assert_true(p->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG);
    assert_int_equal(p->delivery_mode, 2);
    assert_non_null(r->reply_to);
    assert_string_equal(r->reply_to, "");
    assert_non_null(r->correlation_id);
    assert_string_equal(r->correlation_id, corr);
    assert_non_null(r->conversation_id);
    assert_string_equal(r->conversation_id, conv);
    assert_non_null(r->status);
    assert_string_equal(r->status, status);
    assert_int_equal(p->headers.num_entries, 3);
    assert_int_equal(it_header(r, "conversation_id")->kind, AMQP_FIELD_KIND_UTF8);
    assert_int_equal(it_header(r, "status")->kind, AMQP_FIELD_KIND_UTF8);
    /* The trace context (docs/wire-conventions.md): a version 00 traceparent. */
    const amqp_field_value_t *tp = it_header(r, "traceparent");
    assert_non_null(tp);
    assert_int_equal(tp->kind, AMQP_FIELD_KIND_UTF8);
    assert_int_equal(tp->value.bytes.len, 55);
    assert_memory_equal(tp->value.bytes.bytes, "00-", 3);
    assert_false(p->_flags & (AMQP_BASIC_PRIORITY_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
                              AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_APP_ID_FLAG |
                              AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_EXPIRATION_FLAG));
}

/* Send echo.Echo with body as content_type; the result must carry the same
 * content type and the very same bytes. */
static void round_trip(const char *content_type, const void *body, size_t len)
{
    char corr[IT_ID_MAX], conv[IT_ID_MAX];
    it_conn_t *c = it_connect();
    it_listener_t *l = it_listen("commands", (const char *[]){RESULT_KEY, NULL});
    it_host_t *h = start_echo(c);
    it_pub_t cmd;
    it_msg_t *r;

    it_unique(corr, "corr");
    it_unique(conv, "conv");
    cmd = it_command("echo.Echo", RESULT_KEY, corr, conv, content_type, body, len);
    it_publish(c, &cmd);

    r = it_get(l, 10000);
    if (!r) IT_FAIL("no result on %s within 10 s", RESULT_KEY);
    assert_result(r, RESULT_KEY, corr, conv, "success");
    assert_non_null(r->content_type);
    assert_string_equal(r->content_type, content_type);
    assert_int_equal(r->len, len);
    if (len) assert_memory_equal(r->body, body, len);
    it_msg_free(r);

    assert_int_equal(it_host_stop(h, 15000), 0);
}

static json_t *sample(void)
{
    return json_pack("{s:s, s:i, s:i, s:f, s:[i, s, n, b], s:{s:s}}", "text", "h\xc3\xa9llo", "n",
                     42, "neg", -7, "x", 3.25, "list", 1, "two", 1, "nested", "k", "v");
}

static void test_echo_cbor_result_has_result_properties_and_identical_bytes(void **state)
{
    json_t *v = sample();
    size_t len;
    void *body = it_cbor_encode(v, &len);

    round_trip("application/cbor", body, len);
    free(body);
    json_decref(v);
    it_pass();
}

static void test_echo_json_result_has_result_properties_and_identical_bytes(void **state)
{
    /* Spacing and key order a re-encoder would not keep: proves the bytes
     * travel untouched. */
    static const char body[] = "{ \"text\" : \"h\\u00e9llo\",\n  \"n\": 42, \"x\": 3.250 }";

    round_trip("application/json", body, sizeof body - 1);
    it_pass();
}

static void test_echo_empty_body_answers_with_an_empty_body(void **state)
{
    round_trip("application/cbor", "", 0);
    it_pass();
}

/* echo.Divide with payload v (as content_type); the result's status and
 * decoded payload. */
static void divide(json_t *v, const char *content_type, const char *status, json_t *expected)
{
    char corr[IT_ID_MAX], conv[IT_ID_MAX];
    it_conn_t *c = it_connect();
    it_listener_t *l = it_listen("commands", (const char *[]){"itest.DivideResult", NULL});
    it_host_t *h = start_echo(c);
    size_t len;
    void *body = strcmp(content_type, "application/cbor") == 0 ? it_cbor_encode(v, &len)
                                                               : it_json_encode(v, &len);
    it_pub_t cmd;
    it_msg_t *r;
    json_t *got;

    it_unique(corr, "corr");
    it_unique(conv, "conv");
    cmd = it_command("echo.Divide", "itest.DivideResult", corr, conv, content_type, body, len);
    it_publish(c, &cmd);
    free(body);

    r = it_get(l, 10000);
    if (!r) IT_FAIL("no result on itest.DivideResult within 10 s");
    assert_result(r, "itest.DivideResult", corr, conv, status);
    got = it_payload(r);
    if (!json_equal(got, expected)) {
        char *a = json_dumps(got, JSON_COMPACT), *b = json_dumps(expected, JSON_COMPACT);
        print_error("payload %s, expected %s (content type %s)\n", a, b,
                    r->content_type ? r->content_type : "(none)");
        free(a);
        free(b);
        fail();
    }
    json_decref(got);
    it_msg_free(r);
    assert_int_equal(it_host_stop(h, 15000), 0);
}

static void test_divide_by_zero_answers_status_error_with_the_reason(void **state)
{
    json_t *v = json_pack("{s:i, s:i}", "a", 1, "b", 0);
    json_t *want = json_pack("{s:s}", "error", "division by zero");

    divide(v, "application/cbor", "error", want);
    json_decref(v);
    json_decref(want);
    it_pass();
}

static void test_divide_seven_by_two_answers_success_three_and_a_half(void **state)
{
    json_t *v = json_pack("{s:i, s:i}", "a", 7, "b", 2);
    json_t *want = json_pack("{s:f}", "q", 3.5);

    /* Sent as JSON: the result comes in the service's format, decoded by its
     * content type either way. */
    divide(v, "application/json", "success", want);
    json_decref(v);
    json_decref(want);
    it_pass();
}

/* workers = 0: the handlers run on the I/O thread; seen from the bus,
 * nothing changes. */
/* Headers are copied byte for byte: a bytes-typed conversation_id holding a
 * NUL (and a newline and an ESC, which stderr must escape) comes back on the
 * result whole and still bytes-typed. */
static void test_echo_result_carries_a_bytes_conversation_id_byte_for_byte(void **state)
{
    static const char conv[] = "conv\0with nul\n\x1b[2J\xff";
    char corr[IT_ID_MAX];
    it_conn_t *c = it_connect();
    it_listener_t *l = it_listen("commands", (const char *[]){RESULT_KEY, NULL});
    it_host_t *h = start_echo(c);
    const amqp_field_value_t *v;
    it_pub_t cmd;
    it_msg_t *r;

    it_unique(corr, "corr");
    cmd = it_command("echo.Echo", RESULT_KEY, corr, conv, "application/json", "{}", 2);
    cmd.conversation_len = sizeof conv - 1;
    cmd.conversation_bytes = true;
    it_publish(c, &cmd);
    r = it_get(l, 10000);
    if (!r) IT_FAIL("no result on %s within 10 s", RESULT_KEY);
    assert_string_equal(r->correlation_id, corr);
    v = it_header(r, "conversation_id");
    assert_non_null(v);
    assert_int_equal(v->kind, AMQP_FIELD_KIND_BYTES);
    assert_int_equal(v->value.bytes.len, sizeof conv - 1);
    assert_memory_equal(v->value.bytes.bytes, conv, sizeof conv - 1);
    assert_int_equal(it_header(r, "status")->kind, AMQP_FIELD_KIND_UTF8);
    it_msg_free(r);
    assert_int_equal(it_host_stop(h, 15000), 0);
    it_pass();
}

static void test_echo_with_zero_workers_answers_the_same(void **state)
{
    json_t *v = sample(), *d = json_pack("{s:i, s:i}", "a", 1, "b", 0);
    json_t *want = json_pack("{s:s}", "error", "division by zero");
    size_t len;
    void *body = it_cbor_encode(v, &len);

    echo_sections = "[echo]\nworkers = 0\n";
    round_trip("application/cbor", body, len);
    divide(d, "application/cbor", "error", want);
    echo_sections = NULL;
    free(body);
    json_decref(v);
    json_decref(d);
    json_decref(want);
    it_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_echo_cbor_result_has_result_properties_and_identical_bytes),
        IT_TEST(test_echo_json_result_has_result_properties_and_identical_bytes),
        IT_TEST(test_echo_empty_body_answers_with_an_empty_body),
        IT_TEST(test_divide_by_zero_answers_status_error_with_the_reason),
        IT_TEST(test_divide_seven_by_two_answers_success_three_and_a_half),
        IT_TEST(test_echo_with_zero_workers_answers_the_same),
        IT_TEST(test_echo_result_carries_a_bytes_conversation_id_byte_for_byte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
