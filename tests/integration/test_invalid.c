/* test_invalid.c -- messages the host must refuse: each is rejected without
 * requeue (so the broker policy dead-letters it, unchanged, to itest.dlq),
 * logged at EMERGENCY on `logs`, and the host goes on answering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define RESULT_KEY "itest.EchoResult"

static void assert_same_str(const char *what, const char *got, const char *want)
{
    if (!got && !want) return;
    if (!got || !want || strcmp(got, want) != 0)
        IT_FAIL("dead-lettered message: %s is %s%s%s, was %s%s%s", what, got ? "'" : "",
                got ? got : "absent", got ? "'" : "", want ? "'" : "", want ? want : "absent",
                want ? "'" : "");
}

/* The dead-lettered copy is the message as published: same key, body and
 * properties; its headers are the original ones plus the broker's x-*. */
static void assert_unchanged(const it_msg_t *d, const it_pub_t *p)
{
    const amqp_table_t *hdr = &d->props->headers;
    const amqp_field_value_t *deaths, *death;
    char *s;

    assert_string_equal(d->routing_key, p->key);
    assert_int_equal(d->len, p->len);
    if (p->len) assert_memory_equal(d->body, p->body, p->len);
    assert_same_str("content_type", d->content_type, p->content_type);
    assert_same_str("reply_to", d->reply_to, p->reply_to);
    assert_same_str("correlation_id", d->correlation_id, p->correlation_id);
    assert_same_str("header conversation_id", d->conversation_id, p->conversation_id);
    assert_same_str("header status", d->status, p->status);
    assert_int_equal(d->props->delivery_mode, p->delivery_mode);
    for (int i = 0; i < hdr->num_entries; i++) {
        const amqp_bytes_t k = hdr->entries[i].key;
        bool known = (k.len >= 2 && memcmp(k.bytes, "x-", 2) == 0) ||
                     (k.len == 15 && memcmp(k.bytes, "conversation_id", 15) == 0) ||
                     (k.len == 6 && memcmp(k.bytes, "status", 6) == 0);
        if (!known)
            IT_FAIL("dead-lettered message has a header it was not sent with: %.*s", (int)k.len,
                    (const char *)k.bytes);
    }

    /* x-death says the broker dead-lettered it from echo.commands because
     * the host rejected it. */
    deaths = it_header(d, "x-death");
    assert_non_null(deaths);
    assert_int_equal(deaths->kind, AMQP_FIELD_KIND_ARRAY);
    assert_true(deaths->value.array.num_entries >= 1);
    death = &deaths->value.array.entries[0];
    assert_int_equal(death->kind, AMQP_FIELD_KIND_TABLE);
    s = it_field_str(it_table_get(&death->value.table, "reason"));
    assert_non_null(s);
    assert_string_equal(s, "rejected");
    free(s);
    s = it_field_str(it_table_get(&death->value.table, "queue"));
    assert_non_null(s);
    assert_string_equal(s, "echo.commands");
    free(s);
}

/* A valid echo.Echo still gets its result. */
static void assert_still_answers(it_conn_t *c, it_listener_t *results)
{
    static const char body[] = "{\"still\": \"alive\"}";
    char corr[IT_ID_MAX], conv[IT_ID_MAX];
    it_pub_t cmd;
    it_msg_t *r;

    it_unique(corr, "corr");
    it_unique(conv, "conv");
    cmd =
        it_command("echo.Echo", RESULT_KEY, corr, conv, "application/json", body, sizeof body - 1);
    it_publish(c, &cmd);
    r = it_get(results, 10000);
    if (!r) IT_FAIL("the host did not answer a valid Echo after the bad message");
    /* Anything else on the result key would be an answer to the bad one. */
    assert_non_null(r->correlation_id);
    assert_string_equal(r->correlation_id, corr);
    assert_non_null(r->status);
    assert_string_equal(r->status, "success");
    assert_int_equal(r->len, sizeof body - 1);
    assert_memory_equal(r->body, body, sizeof body - 1);
    it_msg_free(r);
}

/* Publish echo.Echo with these properties (NULL leaves one out) and check
 * that the host refuses it: dead-lettered unchanged, an EMERGENCY record,
 * no result, and the host still answers. */
static void expect_refused(const char *reply_to, const char *corr, const char *conv,
                           const char *content_type, const void *body, size_t len)
{
    const it_pub_t bad = it_command("echo.Echo", reply_to, corr, conv, content_type, body, len);
    it_conn_t *c = it_connect();
    it_listener_t *logs = it_listen("logs", (const char *[]){"echo.*", NULL});
    it_listener_t *results = it_listen("commands", (const char *[]){RESULT_KEY, NULL});
    it_host_t *h;
    it_msg_t *d;
    json_t *g;
    uint32_t n;

    it_dlx_setup(c);
    h = it_host_ready(c, "echo.commands", &(it_host_opts_t){.plugins = "echo"});

    it_publish(c, &bad);
    n = it_dlq_wait(c, 1, 10000);
    if (n != 1) IT_FAIL("%s holds %u messages 10 s after the bad message, expected 1", IT_DLQ, n);
    d = it_dlq_get(c);
    assert_non_null(d);
    assert_unchanged(d, &bad);
    it_msg_free(d);

    g = it_get_log(logs, "echo.EMERGENCY", NULL, 10000);
    if (!g) IT_FAIL("no GELF record with key echo.EMERGENCY within 10 s");
    assert_int_equal(json_integer_value(json_object_get(g, "level")), 0);
    assert_string_equal(json_string_value(json_object_get(g, "_levelname")), "EMERGENCY");
    json_decref(g);

    /* No result for the refused message: the first result is the valid one. */
    assert_still_answers(c, results);
    assert_int_equal(it_dlq_count(c), 0);
    assert_int_equal(it_host_stop(h, 15000), 0);
    it_pass();
}

/* Fresh correlation and conversation ids for a bad message. */
typedef struct ids {
    char corr[IT_ID_MAX], conv[IT_ID_MAX];
} ids_t;

static ids_t fresh_ids(void)
{
    ids_t id;

    it_unique(id.corr, "corr");
    it_unique(id.conv, "conv");
    return id;
}

static const char cbor_body[] = "\xa1\x61"
                                "a"
                                "\x01"; /* {"a": 1} */

static void test_command_without_conversation_id_is_dead_lettered_and_logged(void **state)
{
    ids_t id = fresh_ids();

    expect_refused(RESULT_KEY, id.corr, NULL, "application/cbor", cbor_body, sizeof cbor_body - 1);
}

static void test_undecodable_cbor_payload_is_dead_lettered_and_logged(void **state)
{
    /* A map of two entries holding only the first key: truncated. */
    static const char garbage[] = "\xa2\x61"
                                  "a";
    ids_t id = fresh_ids();

    expect_refused(RESULT_KEY, id.corr, id.conv, "application/cbor", garbage, sizeof garbage - 1);
}

static void test_undecodable_json_payload_is_dead_lettered_and_logged(void **state)
{
    static const char garbage[] = "{\"a\": ";
    ids_t id = fresh_ids();

    expect_refused(RESULT_KEY, id.corr, id.conv, "application/json", garbage, sizeof garbage - 1);
}

static void test_commands_message_without_reply_to_or_status_is_dead_lettered(void **state)
{
    ids_t id = fresh_ids();

    expect_refused(NULL, NULL, id.conv, "application/cbor", cbor_body, sizeof cbor_body - 1);
}

static void test_commands_message_with_empty_reply_to_and_no_status_is_dead_lettered(void **state)
{
    ids_t id = fresh_ids();

    expect_refused("", "", id.conv, "application/cbor", cbor_body, sizeof cbor_body - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_command_without_conversation_id_is_dead_lettered_and_logged),
        IT_TEST(test_undecodable_cbor_payload_is_dead_lettered_and_logged),
        IT_TEST(test_undecodable_json_payload_is_dead_lettered_and_logged),
        IT_TEST(test_commands_message_without_reply_to_or_status_is_dead_lettered),
        IT_TEST(test_commands_message_with_empty_reply_to_and_no_status_is_dead_lettered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
