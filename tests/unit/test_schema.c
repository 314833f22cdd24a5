/* test_schema.c -- declared payloads (host/schema.c): the load-time copy
 * and check of a declaration, and the check of decoded messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"
#include "schema.h"
#include "value.h"
#include "value_util.h"

static const char *const colours[] = {"red", "green", NULL};
static const bh_field_t line_fields[] = {{.name = "sku", .type = BH_FIELD_STR},
                                         {.name = "qty",
                                          .type = BH_FIELD_INT,
                                          .flags = BH_FIELD_MIN | BH_FIELD_MAX,
                                          .min = 1,
                                          .max = 99},
                                         {0}};
static const bh_field_t line = {.type = BH_FIELD_MAP, .fields = line_fields};
static const bh_field_t order_fields[] = {
    {.name = "sku",
     .type = BH_FIELD_STR,
     .flags = BH_FIELD_MIN | BH_FIELD_MAX,
     .min = 1,
     .max = 16},
    {.name = "qty", .type = BH_FIELD_INT, .flags = BH_FIELD_MIN, .min = 1},
    {.name = "colour", .type = BH_FIELD_STR, .flags = BH_FIELD_OPTIONAL, .one_of = colours},
    {.name = "note", .type = BH_FIELD_STR, .flags = BH_FIELD_OPTIONAL | BH_FIELD_NULLABLE},
    {.name = "lines",
     .type = BH_FIELD_ARRAY,
     .flags = BH_FIELD_MIN | BH_FIELD_OPTIONAL,
     .min = 1,
     .items = &line},
    {.name = "price", .type = BH_FIELD_NUMBER, .flags = BH_FIELD_MIN | BH_FIELD_OPTIONAL},
    {.name = "gift", .type = BH_FIELD_BOOL, .flags = BH_FIELD_OPTIONAL},
    {.name = "blob", .type = BH_FIELD_BYTES, .flags = BH_FIELD_MAX | BH_FIELD_OPTIONAL, .max = 2},
    {.name = "meta", .type = BH_FIELD_ANY, .flags = BH_FIELD_OPTIONAL},
    {0}};
static const bh_schema_t order = BH_SCHEMA(.fields = order_fields, .doc = "An order");

static bh_schema_t *copy_ok(const bh_schema_t *in)
{
    bh_schema_t *s = NULL;
    char err[300] = "";
    assert_int_equal(bh__schema_copy(in, &s, err, sizeof err), BH_OK);
    assert_non_null(s);
    assert_int_equal(s->field_size, sizeof(bh_field_t));
    return s;
}

static bh_value_t *json(const char *text)
{
    char err[200];
    bh_value_t *v = bh__json_decode(&api, text, strlen(text), err, sizeof err);
    if (!v) fail_msg("%s: %s", text, err);
    return v;
}

/* 0, or the field and expected text of the first mismatch as "field|expected". */
static const char *verdict(const bh_schema_t *s, const char *text, char *out, size_t len)
{
    char field[128], expected[200];
    bh_value_t *v = json(text);
    int rc = bh__schema_check(s, v, field, sizeof field, expected, sizeof expected);
    bh_value_free(v);
    if (rc == BH_OK) return NULL;
    assert_int_equal(rc, BH_EINVAL);
    snprintf(out, len, "%s|%s", field, expected);
    return out;
}

static void valid_payloads_pass(void **state)
{
    (void)state;
    char out[400];
    bh_schema_t *s = copy_ok(&order);
    static const char *const good[] = {
        "{\"sku\":\"a\",\"qty\":1}",
        "{\"sku\":\"éééééééééééééééé\",\"qty\":3}",     /* 16 characters, 32 bytes */
        "{\"sku\":\"a\",\"qty\":18446744073709551615}", /* beyond int64, no max */
        "{\"sku\":\"a\",\"qty\":2,\"colour\":\"green\",\"note\":null,\"price\":0}",
        "{\"sku\":\"a\",\"qty\":2,\"note\":\"hi\",\"price\":2.5,\"gift\":true,\"meta\":[1,{}]}",
        "{\"sku\":\"a\",\"qty\":2,\"lines\":[{\"sku\":\"b\",\"qty\":99},{\"sku\":\"c\",\"qty\":1}]"
        "}",
        "{\"sku\":\"a\",\"qty\":2,\"unknown\":\"keys are allowed\"}",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        const char *why = verdict(s, good[i], out, sizeof out);
        if (why) fail_msg("%s: %s", good[i], why);
    }
    bh__schema_free(s);
}

static void invalid_payloads_name_the_field_and_what_it_should_be(void **state)
{
    (void)state;
    char out[400];
    bh_schema_t *s = copy_ok(&order);
    static const struct {
        const char *json, *want;
    } bad[] = {
        {"{\"sku\":\"a\",\"qty\":0}", "qty|int ≥ 1"},
        {"{\"sku\":\"a\"}", "qty|int ≥ 1"},
        {"{\"sku\":\"a\",\"qty\":\"3\"}", "qty|int ≥ 1"},
        {"{\"sku\":\"a\",\"qty\":1.5}", "qty|int ≥ 1"},
        {"{\"sku\":\"a\",\"qty\":null}", "qty|int ≥ 1"},
        {"{\"sku\":\"a\",\"qty\":-18446744073709551615}", "qty|int ≥ 1"},
        {"{\"sku\":\"\",\"qty\":1}", "sku|string of length ≥ 1 and ≤ 16"},
        {"{\"sku\":\"aaaaaaaaaaaaaaaaa\",\"qty\":1}", "sku|string of length ≥ 1 and ≤ 16"},
        {"{\"qty\":1}", "sku|string of length ≥ 1 and ≤ 16"},
        {"{\"sku\":\"a\",\"qty\":1,\"colour\":\"blue\"}",
         "colour|string, one of \"red\", \"green\""},
        {"{\"sku\":\"a\",\"qty\":1,\"colour\":null}", "colour|string, one of \"red\", \"green\""},
        {"{\"sku\":\"a\",\"qty\":1,\"note\":5}", "note|string or null"},
        {"{\"sku\":\"a\",\"qty\":1,\"lines\":[]}", "lines|array of length ≥ 1"},
        {"{\"sku\":\"a\",\"qty\":1,\"lines\":{}}", "lines|array of length ≥ 1"},
        {"{\"sku\":\"a\",\"qty\":1,\"lines\":[7]}", "lines[0]|map"},
        {"{\"sku\":\"a\",\"qty\":1,\"lines\":[{\"sku\":\"b\",\"qty\":1},{\"sku\":\"c\",\"qty\":100}"
         "]}",
         "lines[1].qty|int ≥ 1 and ≤ 99"},
        {"{\"sku\":\"a\",\"qty\":1,\"lines\":[{\"qty\":1}]}", "lines[0].sku|string"},
        {"{\"sku\":\"a\",\"qty\":1,\"price\":-0.5}", "price|number ≥ 0"},
        {"{\"sku\":\"a\",\"qty\":1,\"price\":\"1\"}", "price|number ≥ 0"},
        {"{\"sku\":\"a\",\"qty\":1,\"gift\":1}", "gift|bool"},
        {"{\"sku\":\"a\",\"qty\":1,\"blob\":\"ab\"}", "blob|bytes of length ≤ 2"},
        {"{\"sku\":\"a\",\"qty\":1,\"meta\":null}", NULL}, /* any value: null too */
        {"[1,2]", "|map"},
        {"\"text\"", "|map"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *got = verdict(s, bad[i].json, out, sizeof out);
        if (!bad[i].want && !got) continue;
        if (!got || !bad[i].want || strcmp(got, bad[i].want))
            fail_msg("%s: got \"%s\", want \"%s\"", bad[i].json, got ? got : "(valid)",
                     bad[i].want ? bad[i].want : "(valid)");
    }
    bh__schema_free(s);
}

/* A later minor's bh_field_t, grown by a field this host does not know. */
typedef struct {
    bh_field_t f;
    const char *future;
} wide_field_t;

static void grown_fields_are_strided_by_field_size(void **state)
{
    (void)state;
    char out[400];
    static const wide_field_t inner[] = {
        {{.name = "n", .type = BH_FIELD_INT, .flags = BH_FIELD_MAX, .max = 5}, "junk"},
        {{0}, "junk"}};
    static const wide_field_t item = {{.type = BH_FIELD_MAP, .fields = &inner[0].f}, "junk"};
    static const wide_field_t top[] = {
        {{.name = "a", .type = BH_FIELD_STR}, "junk"},
        {{.name = "list", .type = BH_FIELD_ARRAY, .items = &item.f}, "junk"},
        {{0}, "junk"}};
    bh_schema_t in = {.size = sizeof(bh_schema_t) + 8, /* a grown schema, too */
                      .field_size = sizeof(wide_field_t),
                      .fields = &top[0].f};
    bh_schema_t *s = copy_ok(&in);
    assert_int_equal(s->size, sizeof(bh_schema_t));
    assert_string_equal(s->fields[1].name, "list");
    assert_null(s->fields[2].name);
    assert_null(verdict(s, "{\"a\":\"x\",\"list\":[{\"n\":5}]}", out, sizeof out));
    assert_string_equal(verdict(s, "{\"a\":\"x\",\"list\":[{\"n\":6}]}", out, sizeof out),
                        "list[0].n|int ≤ 5");
    bh__schema_free(s);
}

static const bh_field_t self_fields[2]; /* a table that contains itself */
static const bh_field_t self_fields[2] = {
    {.name = "me", .type = BH_FIELD_MAP, .fields = self_fields}, {0}};

static void bad_declarations_are_refused_naming_the_field(void **state)
{
    (void)state;
    static const char *const none[] = {NULL};
    static const bh_field_t bad_item = {
        .type = BH_FIELD_INT, .flags = BH_FIELD_MIN | BH_FIELD_MAX, .min = 5, .max = 2};
    static const bh_field_t t_type[] = {{.name = "a", .type = (bh_field_type_t)0}, {0}};
    static const bh_field_t t_flags[] = {{.name = "a", .type = BH_FIELD_INT, .flags = 0x40}, {0}};
    static const bh_field_t t_bound[] = {
        {.name = "a", .type = BH_FIELD_BOOL, .flags = BH_FIELD_MIN}, {0}};
    static const bh_field_t t_minmax[] = {{.name = "qty",
                                           .type = BH_FIELD_INT,
                                           .flags = BH_FIELD_MIN | BH_FIELD_MAX,
                                           .min = 5,
                                           .max = 2},
                                          {0}};
    static const bh_field_t t_neg[] = {
        {.name = "s", .type = BH_FIELD_STR, .flags = BH_FIELD_MIN, .min = -1}, {0}};
    static const bh_field_t t_oneof[] = {{.name = "n", .type = BH_FIELD_INT, .one_of = colours},
                                         {0}};
    static const bh_field_t t_empty_oneof[] = {{.name = "s", .type = BH_FIELD_STR, .one_of = none},
                                               {0}};
    static const bh_field_t t_fields[] = {
        {.name = "s", .type = BH_FIELD_STR, .fields = line_fields}, {0}};
    static const bh_field_t t_items[] = {{.name = "m", .type = BH_FIELD_MAP, .items = &line}, {0}};
    static const bh_field_t t_twice[] = {
        {.name = "a", .type = BH_FIELD_INT}, {.name = "a", .type = BH_FIELD_STR}, {0}};
    static const bh_field_t t_noname[] = {{.name = "", .type = BH_FIELD_INT}, {0}};
    static const bh_field_t t_nested[] = {
        {.name = "lines", .type = BH_FIELD_ARRAY, .items = &bad_item}, {0}};
    static const struct {
        const bh_field_t *fields;
        const char *want;
    } cases[] = {
        {t_type, "field \"a\": unknown type 0"},
        {t_flags, "field \"a\": unknown flags 0x40"},
        {t_bound, "field \"a\": bounds on a bool, which has none"},
        {t_minmax, "field \"qty\": min 5 is above max 2"},
        {t_neg, "field \"s\": length min -1 is negative"},
        {t_oneof, "field \"n\": one_of on a int: only strings have it"},
        {t_empty_oneof, "field \"s\": one_of is empty"},
        {t_fields, "field \"s\": fields on a string: only maps have them"},
        {t_items, "field \"m\": items on a map: only arrays have them"},
        {t_twice, "field \"a\": named twice (fields 0 and 1)"},
        {t_noname, "field 0 has an empty name"},
        {t_nested, "field \"lines[]\": min 5 is above max 2"},
        {self_fields, "nested deeper than 16 levels"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        bh_schema_t in = BH_SCHEMA(.fields = cases[i].fields), *s = (bh_schema_t *)1;
        char err[300] = "";
        if (bh__schema_copy(&in, &s, err, sizeof err) != BH_EINVAL) fail_msg("case %zu taken", i);
        assert_null(s);
        if (!strstr(err, cases[i].want))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].want);
    }
    bh_schema_t small = BH_SCHEMA(.fields = order_fields), *s = NULL;
    char err[300] = "";
    small.size = 3;
    assert_int_equal(bh__schema_copy(&small, &s, err, sizeof err), BH_EINVAL);
    assert_non_null(strstr(err, "size 3 bytes"));
    small.size = sizeof small;
    small.field_size = 4;
    assert_int_equal(bh__schema_copy(&small, &s, err, sizeof err), BH_EINVAL);
    assert_non_null(strstr(err, "field_size 4 bytes"));
    assert_null(s);
}

/* Bounds at the ends of int64 hold exactly: no rounding through double. */
static void bounds_at_the_ends_of_int64_are_exact(void **state)
{
    (void)state;
    char out[400];
    static const bh_field_t f[] = {
        {.name = "i",
         .type = BH_FIELD_INT,
         .flags = BH_FIELD_MIN | BH_FIELD_MAX,
         .min = INT64_MIN,
         .max = INT64_MAX},
        {.name = "n", .type = BH_FIELD_NUMBER, .flags = BH_FIELD_MAX, .max = INT64_MAX},
        {.name = "m",
         .type = BH_FIELD_NUMBER,
         .flags = BH_FIELD_MIN | BH_FIELD_MAX,
         .min = 1,
         .max = 2},
        {0}};
    bh_schema_t in = BH_SCHEMA(.fields = f), *s = copy_ok(&in);
    assert_null(verdict(s, "{\"i\": 9223372036854775807, \"n\": 1, \"m\": 1.5}", out, sizeof out));
    assert_null(verdict(s, "{\"i\": -9223372036854775808, \"n\": 1, \"m\": 2}", out, sizeof out));
    assert_non_null(
        verdict(s, "{\"i\": 9223372036854775808, \"n\": 1, \"m\": 1}", out, sizeof out));
    assert_non_null(
        verdict(s, "{\"i\": -9223372036854775809, \"n\": 1, \"m\": 1}", out, sizeof out));
    assert_non_null(
        verdict(s, "{\"i\": 1, \"n\": 9223372036854775808.0, \"m\": 1}", out, sizeof out));
    assert_non_null(verdict(s, "{\"i\": 1, \"n\": 1, \"m\": 2.000001}", out, sizeof out));
    assert_non_null(verdict(s, "{\"i\": 1, \"n\": 1, \"m\": 0.999999}", out, sizeof out));
    bh__schema_free(s);
}

/* What is too long for its buffer is cut at a character, so it stays UTF-8
 * and the error result that carries it can be made. */
static void long_texts_are_cut_at_a_character(void **state)
{
    (void)state;
    static const char *const words[] = {"ééééééééééééééééééééééééééééééééééééééééééééééééééé",
                                        "ééééééééééééééééééééééééééééééééééééééééééééééééééé",
                                        "ééééééééééééééééééééééééééééééééééééééééééééééééééé",
                                        NULL};
    static const bh_field_t f[] = {{.name = "w", .type = BH_FIELD_STR, .one_of = words}, {0}};
    bh_schema_t in = BH_SCHEMA(.fields = f), *s = copy_ok(&in);
    for (size_t len = 40; len < 60; len++) {
        char field[64], expected[300];
        bh_value_t *v = json("{\"w\": \"x\"}");
        assert_int_equal(bh__schema_check(s, v, field, sizeof field, expected, len), BH_EINVAL);
        assert_true(strlen(expected) < len);
        assert_true(bh__utf8_valid((const unsigned char *)expected, strlen(expected)));
        bh_value_free(v);
    }
    bh__schema_free(s);
    static const char *const bad[] = {"ok", "\xff", NULL};
    static const bh_field_t g[] = {{.name = "w", .type = BH_FIELD_STR, .one_of = bad}, {0}};
    bh_schema_t in2 = BH_SCHEMA(.fields = g), *t = NULL;
    char err[300];
    assert_int_equal(bh__schema_copy(&in2, &t, err, sizeof err), BH_EINVAL);
    assert_non_null(strstr(err, "one_of value 1 is not UTF-8"));
}

static void empty_schema_takes_any_map(void **state)
{
    (void)state;
    char out[400];
    bh_schema_t in = BH_SCHEMA(.doc = "anything"), *s = copy_ok(&in);
    assert_null(verdict(s, "{\"x\":1}", out, sizeof out));
    assert_string_equal(verdict(s, "3", out, sizeof out), "|map");
    bh__schema_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_payloads_pass),
        cmocka_unit_test(invalid_payloads_name_the_field_and_what_it_should_be),
        cmocka_unit_test(grown_fields_are_strided_by_field_size),
        cmocka_unit_test(bad_declarations_are_refused_naming_the_field),
        cmocka_unit_test(bounds_at_the_ends_of_int64_are_exact),
        cmocka_unit_test(long_texts_are_cut_at_a_character),
        cmocka_unit_test(empty_schema_takes_any_map),
    };
    return cmocka_run_group_tests(tests, value_setup, NULL);
}
