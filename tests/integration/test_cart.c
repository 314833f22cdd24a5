/* test_cart.c -- the cart plugin seen from the bus: each ItemSelected /
 * ItemRemoved event produces one CartUpdated event on `events`, carrying the
 * conversation id of the event that caused it and the cart's items. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "harness.h"

typedef struct cart_test {
    it_conn_t *c;
    it_listener_t *l;
    it_host_t *h;
    char cart[IT_ID_MAX];
} cart_test_t;

static void start(cart_test_t *t)
{
    t->c = it_connect();
    t->l = it_listen("events", (const char *[]){"CartUpdated", NULL});
    t->h = it_host_ready(t->c, "cart.events", &(it_host_opts_t){.plugins = "cart"});
    it_unique(t->cart, "cart");
}

/* Publish `event` with payload (as content_type) in a new conversation and
 * check the CartUpdated it causes: same conversation id, the properties of an
 * event, and {"cart": cart, "items": items}. */
static void expect_update(cart_test_t *t, const char *event, json_t *payload,
                          const char *content_type, json_t *items)
{
    char conv[IT_ID_MAX];
    size_t len;
    void *body = strcmp(content_type, "application/cbor") == 0 ? it_cbor_encode(payload, &len)
                                                               : it_json_encode(payload, &len);
    it_pub_t ev;
    it_msg_t *m;
    json_t *got, *want;

    it_unique(conv, "conv");
    ev = it_event(event, conv, content_type, body, len);
    it_publish(t->c, &ev);
    free(body);
    json_decref(payload);

    m = it_get(t->l, 10000);
    if (!m) IT_FAIL("no CartUpdated within 10 s after %s", event);
    assert_string_equal(m->exchange, "events");
    assert_string_equal(m->routing_key, "CartUpdated");
    assert_non_null(m->conversation_id);
    assert_string_equal(m->conversation_id, conv);
    assert_int_equal(m->props->delivery_mode, 2);
    /* Events carry reply_to and correlation_id as empty strings, no status. */
    assert_non_null(m->reply_to);
    assert_string_equal(m->reply_to, "");
    assert_non_null(m->correlation_id);
    assert_string_equal(m->correlation_id, "");
    assert_null(m->status);
    /* conversation_id and the trace context: no status on an event. */
    assert_int_equal(m->props->headers.num_entries, 2);
    assert_non_null(it_header(m, "traceparent"));

    got = it_payload(m);
    want = json_pack("{s:s, s:o}", "cart", t->cart, "items", items);
    if (!json_equal(got, want)) {
        char *a = json_dumps(got, JSON_COMPACT), *b = json_dumps(want, JSON_COMPACT);
        print_error("after %s: CartUpdated %s, expected %s\n", event, a, b);
        free(a);
        free(b);
        fail();
    }
    json_decref(got);
    json_decref(want);
    it_msg_free(m);
}

/* expect_update for ItemSelected {"cart", "item", "qty"} / ItemRemoved
 * {"cart", "item"} of t's cart. */
static void select_item(cart_test_t *t, const char *item, int qty, const char *content_type,
                        json_t *items)
{
    expect_update(t, "ItemSelected",
                  json_pack("{s:s, s:s, s:i}", "cart", t->cart, "item", item, "qty", qty),
                  content_type, items);
}

static void remove_item(cart_test_t *t, const char *item, const char *content_type, json_t *items)
{
    expect_update(t, "ItemRemoved", json_pack("{s:s, s:s}", "cart", t->cart, "item", item),
                  content_type, items);
}

static void test_item_selected_twice_publishes_cart_updated_with_both_items(void **state)
{
    cart_test_t t;

    start(&t);
    select_item(&t, "apple", 2, "application/cbor", json_pack("{s:i}", "apple", 2));
    select_item(&t, "pear", 1, "application/json", json_pack("{s:i, s:i}", "apple", 2, "pear", 1));
    /* Selecting more of an item adds to its quantity. */
    select_item(&t, "apple", 3, "application/cbor", json_pack("{s:i, s:i}", "apple", 5, "pear", 1));
    assert_int_equal(it_host_stop(t.h, 15000), 0);
    it_pass();
}

static void test_item_removed_publishes_cart_updated_without_the_item(void **state)
{
    cart_test_t t;

    start(&t);
    select_item(&t, "apple", 2, "application/cbor", json_pack("{s:i}", "apple", 2));
    select_item(&t, "pear", 1, "application/cbor", json_pack("{s:i, s:i}", "apple", 2, "pear", 1));
    remove_item(&t, "apple", "application/cbor", json_pack("{s:i}", "pear", 1));
    remove_item(&t, "pear", "application/json", json_object());
    assert_int_equal(it_host_stop(t.h, 15000), 0);
    it_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_item_selected_twice_publishes_cart_updated_with_both_items),
        IT_TEST(test_item_removed_publishes_cart_updated_without_the_item),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
