/* test_json.c -- JSON bodies to value trees and back (host/json.c), with the
 * real value tree. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cbor.h"
#include "json.h"
#include "value.h"
#include "value_util.h"

#define JSON_BAD(text, want) decode_bad(bh__json_decode, text, strlen(text), want)

/* JSON encoding ---------------------------------------------------------- */

static void test_json_round_trips_every_type_but_bytes(void **state)
{
    bh_value_t *m = sample(false);
    (void)state;
    round_trip(m, bh__json_encode, bh__json_decode);
    bh_value_free(m);
}

static void test_json_encode_is_compact_utf8_in_order(void **state)
{
    static const char want[] =
        "{\"s\":\"h\xc3\xa9\",\"i\":-3,\"d\":2.0,\"n\":null,\"t\":true,\"l\":[1,{}]}";
    bh_value_t *m = bh_map_new(ctx), *l = bh_array_new(ctx);
    (void)state;
    bh_map_set(m, "s", bh_str_new(ctx, "h\xc3\xa9"));
    bh_map_set(m, "i", bh_int_new(ctx, -3));
    bh_map_set(m, "d", bh_double_new(ctx, 2.0));
    bh_map_set(m, "n", bh_null_new(ctx));
    bh_map_set(m, "t", bh_bool_new(ctx, true));
    bh_array_push(l, bh_int_new(ctx, 1));
    bh_array_push(l, bh_map_new(ctx));
    bh_map_set(m, "l", l);
    encode_is(m, bh__json_encode, want, sizeof want - 1);
    bh_value_free(m);
}

static void test_json_encode_refuses_what_json_cannot_carry(void **state)
{
    bh_value_t *m = bh_map_new(ctx), *arr = bh_array_new(ctx), *deep, *ok;
    unsigned char *out = NULL;
    size_t len = 0;
    (void)state;
    bh_map_set(m, "img", bh_bytes_new(ctx, "\x89PNG", 4));
    encode_fails(m, bh__json_encode, BH_EENCODE, "field \"img\" is a byte string");
    bh_value_free(m);

    m = bh_map_new(ctx);
    bh_array_push(arr, bh_bytes_new(ctx, "", 0));
    bh_map_set(m, "list", arr);
    encode_fails(m, bh__json_encode, BH_EENCODE, "an array item is a byte string");
    bh_value_free(m);

    m = wrap(bh_double_new(ctx, NAN));
    encode_fails(m, bh__json_encode, BH_EENCODE, "JSON cannot carry");
    bh_value_free(m);
    m = wrap(bh_double_new(ctx, INFINITY));
    encode_fails(m, bh__json_encode, BH_EENCODE, "field \"k\" is inf");
    bh_value_free(m);

    /* What we could not decode we do not send: 65 levels is one too many. */
    deep = nested(65);
    ok = nested(64);
    encode_fails(deep, bh__json_encode, BH_EENCODE, "deeper than 64");
    assert_int_equal(bh__json_encode(ok, &out, &len, NULL, 0), BH_OK);
    free(out);
    bh_value_free(deep);
    bh_value_free(ok);
}

/* JSON decoding ---------------------------------------------------------- */

static void test_json_decodes_the_cart_payload(void **state)
{
    static const char in[] = "{\"cart\":\"c1\",\"item\":\"apple\",\"qty\":2}";
    bh_value_t *v = decode_ok(bh__json_decode, in, sizeof in - 1);
    int64_t qty = 0;
    double d = 0;
    (void)state;
    assert_string_equal(bh_get_str(v, "cart"), "c1");
    assert_string_equal(bh_get_str(v, "item"), "apple");
    assert_int_equal(bh_type(bh_map_get(v, "qty")), BH_T_INT);
    assert_int_equal(bh_get_int(v, "qty", &qty), BH_OK);
    assert_int_equal(qty, 2);
    assert_int_equal(bh_get_double(v, "qty", &d), BH_OK);
    assert_true(d == 2.0);
    assert_null(bh_get_str(v, "qty"));
    assert_string_equal(bh_map_key_at(v, 0), "cart");
    assert_string_equal(bh_map_key_at(v, 2), "qty");
    assert_ptr_equal(v->api, &api);
    bh_value_free(v);
}

static void test_json_decodes_every_type(void **state)
{
    static const char in[] =
        " {\"i\": -9223372036854775808, \"f\": 2.0, \"e\": 1e2, \"s\": \"\\u00e9\\ud834\\udd1e\","
        " \"t\": true, \"n\": null, \"a\": [1, [], {}], \"m\": {\"x\": false}} \n";
    bh_value_t *v = decode_ok(bh__json_decode, in, sizeof in - 1);
    int64_t i = 0;
    double d = 0;
    bool b = true;
    (void)state;
    assert_int_equal(bh_get_int(v, "i", &i), BH_OK);
    assert_true(i == INT64_MIN);
    assert_int_equal(bh_type(bh_map_get(v, "f")), BH_T_FLOAT); /* 2.0 stays a float */
    assert_int_equal(bh_get_double(v, "e", &d), BH_OK);
    assert_true(d == 100.0);
    assert_int_equal(bh_type(bh_map_get(v, "e")), BH_T_FLOAT);
    assert_string_equal(bh_get_str(v, "s"), "\xc3\xa9\xf0\x9d\x84\x9e");
    assert_int_equal(bh_type(bh_map_get(v, "n")), BH_T_NULL);
    assert_int_equal(bh_len(bh_map_get(v, "a")), 3);
    assert_int_equal(bh_get_bool(bh_map_get(v, "m"), "x", &b), BH_OK);
    assert_false(b);
    bh_value_free(v);
}

static void test_json_numbers_beyond_int64_and_double_decode(void **state)
{
    static const char in[] =
        "{\"u\":18446744073709551615,\"h\":9223372036854775808,\"n\":-18446744073709551616,"
        "\"m\":-9223372036854775809,\"b\":123456789012345678901234567890,\"r\":1e400,"
        "\"s\":-1.5E+400,\"x\":2,\"k\":[18446744073709551615, 1e999]}";
    bh_value_t *v = decode_ok(bh__json_decode, in, sizeof in - 1);
    bool neg = true;
    uint64_t mag = 0;
    int64_t i = 0;
    double d = 0;
    (void)state;
    /* Integers within +-2^64 exactly. */
    assert_int_equal(bh_type(bh_map_get(v, "u")), BH_T_INT);
    assert_int_equal(bh_get_int(v, "u", &i), BH_ETYPE);
    assert_int_equal(bh__value_as_wide(bh_map_get(v, "u"), &neg, &mag), BH_OK);
    assert_false(neg);
    assert_true(mag == UINT64_MAX);
    assert_int_equal(bh__value_as_wide(bh_map_get(v, "h"), &neg, &mag), BH_OK);
    assert_true(mag == (uint64_t)INT64_MAX + 1);
    assert_int_equal(bh__value_as_wide(bh_map_get(v, "n"), &neg, &mag), BH_OK);
    assert_true(neg && mag == UINT64_MAX); /* -1 - (2^64 - 1) */
    assert_int_equal(bh__value_as_wide(bh_map_get(v, "m"), &neg, &mag), BH_OK);
    assert_true(neg && mag == (uint64_t)INT64_MAX + 1);
    /* Beyond: the nearest double; beyond the doubles: infinities. */
    assert_int_equal(bh_type(bh_map_get(v, "b")), BH_T_FLOAT);
    assert_int_equal(bh_get_double(v, "b", &d), BH_OK);
    assert_true(d == 123456789012345678901234567890.0);
    assert_int_equal(bh_get_double(v, "r", &d), BH_OK);
    assert_true(isinf(d) && d > 0);
    assert_int_equal(bh_get_double(v, "s", &d), BH_OK);
    assert_true(isinf(d) && d < 0);
    assert_int_equal(bh_get_int(v, "x", &i), BH_OK);
    assert_int_equal(i, 2);
    assert_int_equal(bh_type(bh_array_at(bh_map_get(v, "k"), 0)), BH_T_INT);
    assert_int_equal(bh_type(bh_array_at(bh_map_get(v, "k"), 1)), BH_T_FLOAT);
    /* The same integers go out exactly, as JSON and as CBOR. */
    {
        static const char want[] =
            "{\"u\":18446744073709551615,\"h\":9223372036854775808,\"n\":-18446744073709551616,"
            "\"m\":-9223372036854775809}";
        bh_value_t *m = bh_map_new(ctx);
        static const char *const keys[] = {"u", "h", "n", "m"};
        for (int k = 0; k < 4; k++)
            assert_int_equal(bh_map_set(m, keys[k], bh_value_copy(ctx, bh_map_get(v, keys[k]))),
                             BH_OK);
        encode_is(m, bh__json_encode, want, sizeof want - 1);
        round_trip(m, bh__json_encode, bh__json_decode);
        bh_value_free(m);
    }
    {
        static const unsigned char u[] = {0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
        unsigned char *out = NULL;
        size_t len = 0;
        bh_value_t *m = bh_map_new(ctx);
        assert_int_equal(bh_map_set(m, "u", bh_value_copy(ctx, bh_map_get(v, "u"))), BH_OK);
        assert_int_equal(bh__cbor_encode(m, &out, &len, NULL, 0), BH_OK);
        assert_int_equal(len, 3 + sizeof u);
        assert_memory_equal(out + 3, u, sizeof u);
        free(out);
        bh_value_free(m);
    }
    bh_value_free(v);
}

static void test_json_markers_cannot_be_forged(void **state)
{
    /* Strings holding the decoder's real marker (the test knows the secret,
     * as a fuzzer learns it), in a message that makes the decoder use
     * markers, stay strings. */
    char in[256], want[64];
    unsigned long long h = (unsigned long long)bh__value_hash("json marker", 11);
    size_t len = 0, wlen = (size_t)snprintf(want, sizeof want, "\001bh%016llx#0", h);
    bh_value_t *v;
    (void)state;
    snprintf(in, sizeof in,
             "{\"a\":\"\\u0001bh%016llx#0\",\"u\":18446744073709551615,\"b\":\"\\u0001bh\"}", h);
    v = decode_ok(bh__json_decode, in, strlen(in));
    assert_int_equal(bh_type(bh_map_get(v, "a")), BH_T_STRING);
    assert_memory_equal(bh_as_str(bh_map_get(v, "a"), &len), want, wlen);
    assert_int_equal(len, wlen);
    assert_int_equal(bh_len(bh_map_get(v, "b")), 3);
    assert_int_equal(bh_type(bh_map_get(v, "u")), BH_T_INT);
    bh_value_free(v);
    /* A key holding it, next to a key with NUL that needs one. */
    snprintf(in, sizeof in, "{\"\\u0001bh%016llx#0\":1,\"k\\u0000\":2}", h);
    v = decode_ok(bh__json_decode, in, strlen(in));
    assert_int_equal(bh_len(v), 2);
    {
        const char *k0 = NULL, *k1 = NULL;
        size_t l0 = 0, l1 = 0;
        assert_int_equal(bh_type(bh__value_map_at(v, 0, &k0, &l0)), BH_T_INT);
        assert_int_equal(l0, wlen);
        assert_memory_equal(k0, want, wlen);
        bh__value_map_at(v, 1, &k1, &l1);
        assert_int_equal(l1, 2);
        assert_memory_equal(k1, "k", 2);
    }
    bh_value_free(v);
}

static void test_json_encoder_markers_cannot_be_forged(void **state)
{
    /* A string and a key holding the encoder's first marker, next to an
     * integer beyond int64 that makes it use one, are written as text. */
    char mark[64];
    unsigned long long h = (unsigned long long)bh__value_hash("json wide 0", 11);
    size_t n = (size_t)snprintf(mark, sizeof mark, "\001bhw%016llx:7", h);
    bh_value_t *m = bh_map_new(ctx);
    (void)state;
    assert_int_equal(bh_map_set(m, "s", bh_strn_new(ctx, mark, n)), BH_OK);
    assert_int_equal(bh__value_map_put(m, mark, n, bh_int_new(ctx, 1)), BH_OK);
    assert_int_equal(bh_map_set(m, "u", bh__value_wide(&api, false, UINT64_MAX)), BH_OK);
    round_trip(m, bh__json_encode, bh__json_decode);
    bh_value_free(m);
}

static void test_json_caps_numbers_it_must_reparse_for(void **state)
{
    /* 32 MiB / 65,536 bytes: 512 re-parses at most. */
    char *in = malloc(65536 + 1);
    size_t n = 1;
    (void)state;
    in[0] = '[';
    for (int k = 0; k < 513; k++) n += (size_t)sprintf(in + n, k ? ",1e400" : "1e400");
    memset(in + n, ' ', 65535 - n);
    in[65535] = ']';
    decode_bad(bh__json_decode, in, 65536,
               "invalid JSON: more than 512 numbers beyond int64 or double, or keys with NUL, in "
               "a message of 65536 bytes");
    memset(in + 1 + 5 + 511 * 6, ' ', 6); /* 512 of them */
    {
        bh_value_t *v = decode_ok(bh__json_decode, in, 65536);
        assert_int_equal(bh_len(v), 512);
        bh_value_free(v);
    }
    free(in);
    /* Not a way around the grammar. */
    JSON_BAD("{1e400:1}", "invalid JSON: a number as an object key");
    JSON_BAD("{18446744073709551615:1}", "a number as an object key");
    JSON_BAD("[1 1e400]", "invalid JSON at line 1 column");
}

static void test_json_strings_and_keys_keep_nul(void **state)
{
    static const char in[] =
        "{\"a\":\"x\\u0000y\",\"k\\u0000\\\"\\\\\\u0000z\":1,\"b\":\"\\u0000\"}";
    static const char out[] =
        "{\"a\":\"x\\u0000y\",\"k\\u0000\\\"\\\\\\u0000z\":1,\"b\":\"\\u0000\"}";
    bh_value_t *v = decode_ok(bh__json_decode, in, sizeof in - 1);
    const char *key = NULL;
    size_t len = 0;
    (void)state;
    assert_memory_equal(bh_as_str(bh_map_get(v, "a"), &len), "x\0y", 4);
    assert_int_equal(len, 3);
    assert_non_null(bh__value_map_at(v, 1, &key, &len));
    assert_int_equal(len, 6);
    assert_memory_equal(key, "k\0\"\\\0z", 6);
    assert_int_equal(bh_len(bh_map_get(v, "b")), 1);
    /* And back out the same way, which this decoder reads again. */
    encode_is(v, bh__json_encode, out, sizeof out - 1);
    round_trip(v, bh__json_encode, bh__json_decode);
    round_trip(v, bh__cbor_encode, bh__cbor_decode);
    bh_value_free(v);
}

static void test_json_limits_name_the_cap_and_the_count(void **state)
{
    static const char in[] = "{\"a\":[1,2],\"b\":3}"; /* 7 values, keys included */
    bh__value_limits_t l = {2, 2, 7};
    bh_value_t *v;
    (void)state;
    assert_int_equal(bh__value_set_limits(&l, NULL, 0), BH_OK);
    v = decode_ok(bh__json_decode, in, sizeof in - 1);
    bh_value_free(v);
    l.max_nodes = 6;
    assert_int_equal(bh__value_set_limits(&l, NULL, 0), BH_OK);
    JSON_BAD(in, "invalid JSON: more than 6 values in the message (max_nodes)");
    l = (bh__value_limits_t){1, 2, 100};
    assert_int_equal(bh__value_set_limits(&l, NULL, 0), BH_OK);
    JSON_BAD(in, "invalid JSON: nesting deeper than 1 levels (max_depth)");
    l = (bh__value_limits_t){2, 1, 100};
    assert_int_equal(bh__value_set_limits(&l, NULL, 0), BH_OK);
    JSON_BAD(in, "invalid JSON: object has 2 entries, more than 1 (max_map_entries)");
    assert_int_equal(bh__value_set_limits(NULL, NULL, 0), BH_OK);
}

static void test_json_rejects_bad_input(void **state)
{
    (void)state;
    JSON_BAD("{\"a\":1} x", "invalid JSON at line 1 column");
    JSON_BAD("{\"a\":1}{}", "invalid JSON");
    JSON_BAD("{\"a\":\"\xff\"}", "invalid JSON");         /* invalid UTF-8 */
    JSON_BAD("{\"a\":\"\xed\xa0\x80\"}", "invalid JSON"); /* encoded surrogate */
    JSON_BAD("{\"\xc3\x28\":1}", "invalid JSON");         /* invalid UTF-8 key */
    JSON_BAD("{\"a\":", "invalid JSON at line 1 column");
    JSON_BAD("{\"a\":1,}", "invalid JSON");
    JSON_BAD("{'a':1}", "invalid JSON");
    JSON_BAD("{\"a\":NaN}", "invalid JSON");
    JSON_BAD("   ", "invalid JSON");
    JSON_BAD("{\"a\":1}\n{", "invalid JSON at line 2");
}

static void test_json_rejects_nesting_deeper_than_64(void **state)
{
    char in[300];
    size_t n = 0;
    bh_value_t *v;
    (void)state;
    /* {"a": [[...]]} with 63 arrays: 64 levels, accepted. */
    n = (size_t)snprintf(in, sizeof in, "{\"a\":");
    for (int i = 0; i < 63; i++) in[n++] = '[';
    for (int i = 0; i < 63; i++) in[n++] = ']';
    in[n++] = '}';
    v = decode_ok(bh__json_decode, in, n);
    bh_value_free(v);
    n = (size_t)snprintf(in, sizeof in, "{\"a\":");
    for (int i = 0; i < 64; i++) in[n++] = '[';
    for (int i = 0; i < 64; i++) in[n++] = ']';
    in[n++] = '}';
    decode_bad(bh__json_decode, in, n, "nesting deeper than 64 levels");
    /* Far deeper garbage is refused by jansson itself, without a crash. */
    {
        size_t big = 200000;
        char *p = malloc(big);
        assert_non_null(p);
        memset(p, '[', big);
        decode_bad(bh__json_decode, p, big, "invalid JSON");
        free(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_round_trips_every_type_but_bytes),
        cmocka_unit_test(test_json_encode_is_compact_utf8_in_order),
        cmocka_unit_test(test_json_encode_refuses_what_json_cannot_carry),
        cmocka_unit_test(test_json_decodes_the_cart_payload),
        cmocka_unit_test(test_json_decodes_every_type),
        cmocka_unit_test(test_json_numbers_beyond_int64_and_double_decode),
        cmocka_unit_test(test_json_markers_cannot_be_forged),
        cmocka_unit_test(test_json_encoder_markers_cannot_be_forged),
        cmocka_unit_test(test_json_caps_numbers_it_must_reparse_for),
        cmocka_unit_test(test_json_strings_and_keys_keep_nul),
        cmocka_unit_test(test_json_limits_name_the_cap_and_the_count),
        cmocka_unit_test(test_json_rejects_bad_input),
        cmocka_unit_test(test_json_rejects_nesting_deeper_than_64),
    };
    return cmocka_run_group_tests(tests, value_setup, NULL);
}
