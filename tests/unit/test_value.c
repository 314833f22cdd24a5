/* test_value.c -- the value tree and the CBOR/JSON codec (host/value.c).
 *
 * Values are reached the way a plugin reaches them: through the SDK's inline
 * functions and a bh_ctx_t whose api table bh__value_fill_api() filled.
 * Expected CBOR bytes come from RFC 8949 Appendix A and from what Python's
 * cbor2 emits by default, written out by hand. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "value.h"

static bh_api_t api;
static bh_ctx_t ctx_s = {&api};
static bh_ctx_t *const ctx = &ctx_s;

static int setup(void **state)
{
    (void)state;
    bh__value_fill_api(&api);
    return 0;
}

/* Helpers ---------------------------------------------------------------- */

static bh_value_t *decode_ok(const char *ct, const void *body, size_t len)
{
    bh_value_t *v = NULL;
    char err[256] = "";
    int rc = bh__payload_decode(&api, ct, body, len, &v, err, sizeof err);
    if (rc != BH_OK) fail_msg("decode failed: %s", err);
    assert_non_null(v);
    return v;
}

/* Decoding must fail with BH_EINVAL, no value, and a one-line reason that
 * contains `want`. */
static void decode_bad(const char *ct, const void *body, size_t len, const char *want)
{
    bh_value_t *v = (bh_value_t *)&ctx_s; /* must be overwritten with NULL */
    char err[256] = "";
    int rc = bh__payload_decode(&api, ct, body, len, &v, err, sizeof err);
    if (rc != BH_EINVAL || v != NULL || strstr(err, want) == NULL || strchr(err, '\n'))
        fail_msg("expected failure containing \"%s\", got rc=%d err=\"%s\"", want, rc, err);
}

#define CBOR_BAD(want, ...)                               \
    do {                                                  \
        static const unsigned char in_[] = {__VA_ARGS__}; \
        decode_bad(BH__CT_CBOR, in_, sizeof in_, want);   \
    } while (0)

#define JSON_BAD(text, want) decode_bad(BH__CT_JSON, text, strlen(text), want)

/* Encode must give exactly these bytes. */
static void encode_is(const bh_value_t *v, bh_format_t fmt, const void *want, size_t wlen)
{
    unsigned char *out = NULL;
    size_t len = 0;
    char err[256] = "";
    int rc = bh__payload_encode(v, fmt, &out, &len, err, sizeof err);
    if (rc != BH_OK) fail_msg("encode failed: %s", err);
    assert_int_equal(len, wlen);
    assert_memory_equal(out, want, wlen);
    free(out);
}

#define CBOR_IS(v, ...)                                     \
    do {                                                    \
        static const unsigned char want_[] = {__VA_ARGS__}; \
        encode_is(v, BH_FORMAT_CBOR, want_, sizeof want_);  \
    } while (0)

/* A one-entry map {"k": v}. */
static bh_value_t *wrap(bh_value_t *v)
{
    bh_value_t *m = bh_map_new(ctx);
    assert_int_equal(bh_map_set(m, "k", v), BH_OK);
    return m;
}

static void round_trip(const bh_value_t *v, bh_format_t fmt)
{
    unsigned char *out = NULL;
    size_t len = 0;
    bh_value_t *back;
    char err[256] = "";
    if (bh__payload_encode(v, fmt, &out, &len, err, sizeof err) != BH_OK)
        fail_msg("encode failed: %s", err);
    back = decode_ok(bh__format_content_type(fmt), out, len);
    assert_true(bh__value_equal(v, back));
    bh_value_free(back);
    free(out);
}

/* A map holding one of everything (bytes optional: JSON cannot carry them). */
static bh_value_t *sample(bool with_bytes)
{
    bh_value_t *m = bh_map_new(ctx), *arr = bh_array_new(ctx), *inner = bh_map_new(ctx);
    assert_int_equal(bh_map_set(m, "null", bh_null_new(ctx)), BH_OK);
    assert_int_equal(bh_map_set(m, "yes", bh_bool_new(ctx, true)), BH_OK);
    assert_int_equal(bh_map_set(m, "no", bh_bool_new(ctx, false)), BH_OK);
    assert_int_equal(bh_map_set(m, "zero", bh_int_new(ctx, 0)), BH_OK);
    assert_int_equal(bh_map_set(m, "min", bh_int_new(ctx, INT64_MIN)), BH_OK);
    assert_int_equal(bh_map_set(m, "max", bh_int_new(ctx, INT64_MAX)), BH_OK);
    assert_int_equal(bh_map_set(m, "neg", bh_int_new(ctx, -1000)), BH_OK);
    assert_int_equal(bh_map_set(m, "pi", bh_double_new(ctx, 3.141592653589793)), BH_OK);
    assert_int_equal(bh_map_set(m, "two", bh_double_new(ctx, 2.0)), BH_OK);
    assert_int_equal(bh_map_set(m, "tiny", bh_double_new(ctx, 5e-324)), BH_OK);
    assert_int_equal(bh_map_set(m, "huge", bh_double_new(ctx, -1.7976931348623157e308)), BH_OK);
    assert_int_equal(bh_map_set(m, "empty", bh_str_new(ctx, "")), BH_OK);
    assert_int_equal(
        bh_map_set(m, "utf8", bh_str_new(ctx, "h\xc3\xa9llo \xe2\x82\xac \xf0\x9d\x84\x9e")),
        BH_OK);
    assert_int_equal(bh_map_set(m, "h\xc3\xa9", bh_str_new(ctx, "non-ASCII key")), BH_OK);
    assert_int_equal(bh_array_push(arr, bh_int_new(ctx, 1)), BH_OK);
    assert_int_equal(bh_array_push(arr, bh_str_new(ctx, "two")), BH_OK);
    assert_int_equal(bh_array_push(arr, bh_array_new(ctx)), BH_OK);
    assert_int_equal(bh_array_push(arr, bh_map_new(ctx)), BH_OK);
    assert_int_equal(bh_map_set(inner, "deep", bh_double_new(ctx, -0.5)), BH_OK);
    assert_int_equal(bh_array_push(arr, inner), BH_OK);
    assert_int_equal(bh_map_set(m, "list", arr), BH_OK);
    if (with_bytes) {
        assert_int_equal(bh_map_set(m, "bytes", bh_bytes_new(ctx, "\x00\x01\xff", 3)), BH_OK);
        assert_int_equal(bh_map_set(m, "nobytes", bh_bytes_new(ctx, NULL, 0)), BH_OK);
        assert_int_equal(bh_map_set(m, "nan", bh_double_new(ctx, NAN)), BH_OK);
        assert_int_equal(bh_map_set(m, "inf", bh_double_new(ctx, -INFINITY)), BH_OK);
        assert_int_equal(bh_map_set(m, "nul", bh_strn_new(ctx, "a\0b", 3)), BH_OK);
    }
    return m;
}

/* Builder and reader API ------------------------------------------------- */

static void test_scalars_report_type_and_value(void **state)
{
    bh_value_t *n = bh_null_new(ctx), *b = bh_bool_new(ctx, true), *i = bh_int_new(ctx, -42),
               *d = bh_double_new(ctx, 2.5), *s = bh_str_new(ctx, "hi"),
               *y = bh_bytes_new(ctx, "\x01\x02", 2);
    bool bv = false;
    int64_t iv = 0;
    double dv = 0;
    size_t len = 0;
    (void)state;
    assert_int_equal(bh_type(n), BH_T_NULL);
    assert_int_equal(bh_type(b), BH_T_BOOL);
    assert_int_equal(bh_type(i), BH_T_INT);
    assert_int_equal(bh_type(d), BH_T_FLOAT);
    assert_int_equal(bh_type(s), BH_T_STRING);
    assert_int_equal(bh_type(y), BH_T_BYTES);
    assert_true(b->api == &api); /* nodes carry the ctx's table */

    assert_int_equal(bh_as_bool(b, &bv), BH_OK);
    assert_true(bv);
    assert_int_equal(bh_as_int(i, &iv), BH_OK);
    assert_int_equal(iv, -42);
    assert_int_equal(bh_as_double(d, &dv), BH_OK);
    assert_true(dv == 2.5);
    assert_int_equal(bh_as_double(i, &dv), BH_OK); /* as_double takes integers */
    assert_true(dv == -42.0);
    assert_string_equal(bh_as_str(s, &len), "hi");
    assert_int_equal(len, 2);
    assert_int_equal(bh_len(s), 2);
    assert_memory_equal(bh_as_bytes(y, &len), "\x01\x02", 2);
    assert_int_equal(len, 2);

    /* Wrong types. */
    assert_int_equal(bh_as_int(d, &iv), BH_ETYPE); /* as_int takes only integers */
    assert_int_equal(bh_as_bool(i, &bv), BH_ETYPE);
    assert_int_equal(bh_as_double(s, &dv), BH_ETYPE);
    assert_int_equal(bh_as_int(n, &iv), BH_ETYPE);
    assert_null(bh_as_str(y, NULL));
    assert_null(bh_as_bytes(s, NULL));
    assert_int_equal(bh_len(i), 0);
    assert_null(bh_map_get(s, "x"));
    assert_null(bh_array_at(s, 0));
    assert_null(bh_map_key_at(s, 0));

    /* A missing value. */
    assert_int_equal(bh_type(NULL), BH_T_NONE);
    assert_int_equal(bh_as_int(NULL, &iv), BH_ENOENT);

    bh_value_free(n);
    bh_value_free(b);
    bh_value_free(i);
    bh_value_free(d);
    bh_value_free(s);
    bh_value_free(y);
}

static void test_str_new_rejects_invalid_utf8(void **state)
{
    static const char *const bad[] = {
        "\xff",             /* never valid */
        "\x80",             /* lone continuation byte */
        "\xc0\x80",         /* overlong NUL */
        "\xe0\x80\xaf",     /* overlong '/' */
        "\xed\xa0\x80",     /* UTF-16 surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "ok\xe2\x82",       /* truncated sequence */
        "\xc3\x28",         /* bad continuation */
    };
    bh_value_t *v;
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (bh_str_new(ctx, bad[i]) != NULL) fail_msg("accepted bad UTF-8 #%zu", i);
    v = bh_str_new(ctx, "\xf4\x8f\xbf\xbf \xef\xbf\xbf \xc2\x80"); /* U+10FFFF, U+FFFF, U+80 */
    assert_non_null(v);
    bh_value_free(v);
    v = bh_strn_new(ctx, "a\0b", 3); /* NUL is valid UTF-8; length is kept */
    assert_int_equal(bh_len(v), 3);
    bh_value_free(v);
    assert_null(bh_str_new(ctx, NULL));
}

static void test_map_keeps_insertion_order_and_set_replaces_in_place(void **state)
{
    bh_value_t *m = bh_map_new(ctx);
    int64_t i = 0;
    (void)state;
    assert_int_equal(bh_map_set(m, "z", bh_int_new(ctx, 1)), BH_OK);
    assert_int_equal(bh_map_set(m, "a", bh_int_new(ctx, 2)), BH_OK);
    assert_int_equal(bh_map_set(m, "m", bh_int_new(ctx, 3)), BH_OK);
    assert_int_equal(bh_map_set(m, "a", bh_str_new(ctx, "replaced")), BH_OK);
    assert_int_equal(bh_len(m), 3);
    assert_string_equal(bh_map_key_at(m, 0), "z");
    assert_string_equal(bh_map_key_at(m, 1), "a");
    assert_string_equal(bh_map_key_at(m, 2), "m");
    assert_null(bh_map_key_at(m, 3));
    assert_null(bh_map_value_at(m, 3));
    assert_string_equal(bh_get_str(m, "a"), "replaced");
    assert_ptr_equal(bh_map_value_at(m, 1), bh_map_get(m, "a"));
    assert_int_equal(bh_get_int(m, "m", &i), BH_OK);
    assert_int_equal(i, 3);
    assert_null(bh_map_get(m, "missing"));
    assert_null(bh_map_get(m, ""));
    assert_int_equal(bh_get_int(m, "missing", &i), BH_ENOENT);
    bh_value_free(m);
}

static void test_large_map_lookups_find_every_key(void **state)
{
    /* Past a few entries maps use a hash index: every key must still be
     * found, replaced in place, and kept in order. */
    bh_value_t *m = bh_map_new(ctx);
    char key[32];
    int64_t v = 0;
    (void)state;
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "key%d", i);
        assert_int_equal(bh_map_set(m, key, bh_int_new(ctx, i)), BH_OK);
    }
    for (int i = 0; i < 2000; i += 7) {
        snprintf(key, sizeof key, "key%d", i);
        assert_int_equal(bh_map_set(m, key, bh_int_new(ctx, -i)), BH_OK);
    }
    assert_int_equal(bh_len(m), 2000);
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "key%d", i);
        assert_int_equal(bh_get_int(m, key, &v), BH_OK);
        assert_int_equal(v, i % 7 == 0 ? -i : i);
        assert_string_equal(bh_map_key_at(m, (size_t)i), key);
    }
    assert_null(bh_map_get(m, "key2000"));
    bh_value_free(m);
}

static void test_array_push_and_read_back(void **state)
{
    bh_value_t *a = bh_array_new(ctx);
    int64_t v = 0;
    (void)state;
    for (int i = 0; i < 100; i++) assert_int_equal(bh_array_push(a, bh_int_new(ctx, i * 3)), BH_OK);
    assert_int_equal(bh_len(a), 100);
    assert_int_equal(bh_as_int(bh_array_at(a, 42), &v), BH_OK);
    assert_int_equal(v, 126);
    assert_null(bh_array_at(a, 100));
    assert_null(bh_map_get(a, "0"));
    bh_value_free(a);
}

/* Under ASan a value not freed by a failing map_set/array_push is a leak, so
 * these checks fail the run if ownership is not taken. */
static void test_map_set_and_array_push_take_ownership_on_failure(void **state)
{
    bh_value_t *m = bh_map_new(ctx), *a = bh_array_new(ctx), *i = bh_int_new(ctx, 1);
    (void)state;
    assert_int_equal(bh_map_set(m, "bad\xff", sample(true)), BH_EINVAL);
    assert_int_equal(bh_map_set(m, NULL, sample(false)), BH_EINVAL);
    assert_int_equal(bh_map_set(m, "x", NULL), BH_ENOMEM);          /* a failed *_new */
    assert_int_equal(bh_map_set(a, "x", sample(false)), BH_EINVAL); /* not a map */
    assert_int_equal(bh_map_set(i, "x", bh_str_new(ctx, "s")), BH_EINVAL);
    assert_int_equal(bh_array_push(m, sample(false)), BH_EINVAL); /* not an array */
    assert_int_equal(bh_array_push(a, NULL), BH_ENOMEM);
    assert_int_equal(bh_len(m), 0);
    assert_int_equal(bh_len(a), 0);
    bh_value_free(m);
    bh_value_free(a);
    bh_value_free(i);
}

static void test_map_set_refuses_cycles_and_values_owned_twice(void **state)
{
    bh_value_t *outer = bh_map_new(ctx), *inner = bh_map_new(ctx), *arr = bh_array_new(ctx);
    bh_value_t *child;
    (void)state;
    assert_int_equal(bh_map_set(outer, "self", outer), BH_EINVAL);
    assert_int_equal(bh_array_push(arr, arr), BH_EINVAL);
    assert_int_equal(bh_map_set(outer, "inner", inner), BH_OK);
    assert_int_equal(bh_map_set(inner, "arr", arr), BH_OK);
    /* An ancestor into its descendant would be a cycle. */
    assert_int_equal(bh_array_push(arr, outer), BH_EINVAL);
    /* A value already inside a container cannot be given to another one. */
    assert_int_equal(bh_map_set(outer, "again", inner), BH_EINVAL);
    /* Nor freed on its own (the map owns it). */
    child = (bh_value_t *)bh_map_get(outer, "inner");
    bh_value_free(child);
    assert_int_equal(bh_type(bh_map_get(outer, "inner")), BH_T_MAP);
    /* Everything is still intact: one free releases the whole tree. */
    assert_int_equal(bh_len(outer), 1);
    assert_int_equal(bh_type(bh_map_get(bh_map_get(outer, "inner"), "arr")), BH_T_ARRAY);
    bh_value_free(outer);
}

static void test_copy_is_deep_and_equal(void **state)
{
    bh_value_t *orig = sample(true), *cp = bh_value_copy(ctx, orig);
    bh_value_t *list;
    (void)state;
    assert_non_null(cp);
    assert_ptr_not_equal(cp, orig);
    assert_true(bh__value_equal(orig, cp));
    assert_ptr_not_equal(bh_get_str(cp, "utf8"), bh_get_str(orig, "utf8"));
    /* Changing the copy leaves the original alone. */
    list = (bh_value_t *)bh_map_get(cp, "list");
    assert_int_equal(bh_array_push(list, bh_null_new(ctx)), BH_OK);
    assert_false(bh__value_equal(orig, cp));
    assert_int_equal(bh_len(bh_map_get(orig, "list")), 5);
    assert_null(bh_value_copy(ctx, NULL));
    bh_value_free(orig);
    bh_value_free(cp);
}

static void test_value_equal_tells_trees_apart(void **state)
{
    bh_value_t *i1 = bh_int_new(ctx, 1), *f1 = bh_double_new(ctx, 1.0);
    bh_value_t *ab = bh_map_new(ctx), *ba = bh_map_new(ctx), *ab2 = bh_map_new(ctx);
    bh_value_t *s1 = bh_str_new(ctx, "x"), *b1 = bh_bytes_new(ctx, "x", 1);
    (void)state;
    assert_false(bh__value_equal(i1, f1)); /* 1 and 1.0 have different types */
    assert_false(bh__value_equal(s1, b1));
    assert_false(bh__value_equal(i1, NULL));
    assert_true(bh__value_equal(NULL, NULL));
    bh_map_set(ab, "a", bh_int_new(ctx, 1));
    bh_map_set(ab, "b", bh_int_new(ctx, 2));
    bh_map_set(ba, "b", bh_int_new(ctx, 2));
    bh_map_set(ba, "a", bh_int_new(ctx, 1));
    bh_map_set(ab2, "a", bh_int_new(ctx, 1));
    bh_map_set(ab2, "b", bh_int_new(ctx, 3));
    assert_false(bh__value_equal(ab, ba)); /* map order is part of the wire form */
    assert_false(bh__value_equal(ab, ab2));
    bh_map_set(ab2, "b", bh_int_new(ctx, 2));
    assert_true(bh__value_equal(ab, ab2));
    bh_value_free(i1);
    bh_value_free(f1);
    bh_value_free(ab);
    bh_value_free(ba);
    bh_value_free(ab2);
    bh_value_free(s1);
    bh_value_free(b1);
}

/* CBOR encoding, byte-exact --------------------------------------------- */

static void test_cbor_encode_matches_cbor2_for_known_maps(void **state)
{
    bh_value_t *m = bh_map_new(ctx);
    (void)state;
    bh_map_set(m, "a", bh_int_new(ctx, 1));
    CBOR_IS(m, 0xa1, 0x61, 0x61, 0x01);
    bh_value_free(m);

    m = bh_map_new(ctx);
    bh_map_set(m, "q", bh_double_new(ctx, 2.5));
    CBOR_IS(m, 0xa1, 0x61, 0x71, 0xfb, 0x40, 0x04, 0, 0, 0, 0, 0, 0);
    bh_value_free(m);

    /* cbor2.dumps({"cart": "c1", "item": "apple", "qty": 2}) */
    m = bh_map_new(ctx);
    bh_map_set(m, "cart", bh_str_new(ctx, "c1"));
    bh_map_set(m, "item", bh_str_new(ctx, "apple"));
    bh_map_set(m, "qty", bh_int_new(ctx, 2));
    CBOR_IS(m, 0xa3, 0x64, 'c', 'a', 'r', 't', 0x62, 'c', '1', 0x64, 'i', 't', 'e', 'm', 0x65, 'a',
            'p', 'p', 'l', 'e', 0x63, 'q', 't', 'y', 0x02);
    bh_value_free(m);

    /* cbor2.dumps({"l": [None, True, False, b"\x01\x02"], "m": {}}) */
    m = bh_map_new(ctx);
    {
        bh_value_t *l = bh_array_new(ctx);
        bh_array_push(l, bh_null_new(ctx));
        bh_array_push(l, bh_bool_new(ctx, true));
        bh_array_push(l, bh_bool_new(ctx, false));
        bh_array_push(l, bh_bytes_new(ctx, "\x01\x02", 2));
        bh_map_set(m, "l", l);
        bh_map_set(m, "m", bh_map_new(ctx));
    }
    CBOR_IS(m, 0xa2, 0x61, 'l', 0x84, 0xf6, 0xf5, 0xf4, 0x42, 0x01, 0x02, 0x61, 'm', 0xa0);
    bh_value_free(m);
}

static void test_cbor_encode_integers_in_shortest_form(void **state)
{
    /* RFC 8949 Appendix A, each wrapped as {"k": n} = a1 61 6b <n>. */
    static const struct {
        int64_t v;
        unsigned char bytes[9];
        size_t len;
    } cases[] = {
        {0, {0x00}, 1},
        {23, {0x17}, 1},
        {24, {0x18, 0x18}, 2},
        {255, {0x18, 0xff}, 2},
        {256, {0x19, 0x01, 0x00}, 3},
        {1000, {0x19, 0x03, 0xe8}, 3},
        {65536, {0x1a, 0x00, 0x01, 0x00, 0x00}, 5},
        {1000000, {0x1a, 0x00, 0x0f, 0x42, 0x40}, 5},
        {4294967296, {0x1b, 0, 0, 0, 1, 0, 0, 0, 0}, 9},
        {INT64_MAX, {0x1b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9},
        {-1, {0x20}, 1},
        {-10, {0x29}, 1},
        {-24, {0x37}, 1},
        {-25, {0x38, 0x18}, 2},
        {-100, {0x38, 0x63}, 2},
        {-256, {0x38, 0xff}, 2},
        {-257, {0x39, 0x01, 0x00}, 3},
        {-1000, {0x39, 0x03, 0xe7}, 3},
        {INT64_MIN, {0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        unsigned char want[16] = {0xa1, 0x61, 'k'};
        bh_value_t *m = wrap(bh_int_new(ctx, cases[i].v));
        memcpy(want + 3, cases[i].bytes, cases[i].len);
        encode_is(m, BH_FORMAT_CBOR, want, 3 + cases[i].len);
        bh_value_free(m);
    }
}

static void test_cbor_encode_floats_as_float64_and_specials_as_half(void **state)
{
    /* cbor2's default: finite floats are always float64; NaN and the
     * infinities take the half-precision forms. */
    static const struct {
        double v;
        unsigned char bytes[9];
        size_t len;
    } cases[] = {
        {0.0, {0xfb, 0, 0, 0, 0, 0, 0, 0, 0}, 9},
        {-0.0, {0xfb, 0x80, 0, 0, 0, 0, 0, 0, 0}, 9},
        {1.0, {0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0}, 9},
        {1.1, {0xfb, 0x3f, 0xf1, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a}, 9},
        {-4.1, {0xfb, 0xc0, 0x10, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66}, 9},
        {1.0e300, {0xfb, 0x7e, 0x37, 0xe4, 0x3c, 0x88, 0x00, 0x75, 0x9c}, 9},
        {INFINITY, {0xf9, 0x7c, 0x00}, 3},
        {-INFINITY, {0xf9, 0xfc, 0x00}, 3},
        {NAN, {0xf9, 0x7e, 0x00}, 3},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        unsigned char want[16] = {0xa1, 0x61, 'k'};
        bh_value_t *m = wrap(bh_double_new(ctx, cases[i].v));
        memcpy(want + 3, cases[i].bytes, cases[i].len);
        encode_is(m, BH_FORMAT_CBOR, want, 3 + cases[i].len);
        bh_value_free(m);
    }
}

static void test_cbor_encode_long_strings_use_definite_length_heads(void **state)
{
    char s[300];
    unsigned char *out = NULL;
    size_t len = 0;
    bh_value_t *m;
    (void)state;
    memset(s, 'x', sizeof s - 1);
    s[sizeof s - 1] = '\0';
    m = wrap(bh_str_new(ctx, s));
    assert_int_equal(bh__payload_encode(m, BH_FORMAT_CBOR, &out, &len, NULL, 0), BH_OK);
    assert_int_equal(len, 3 + 3 + 299);
    assert_int_equal(out[3], 0x79); /* text, 2-byte length */
    assert_int_equal(out[4], 0x01);
    assert_int_equal(out[5], 0x2b); /* 299 */
    free(out);
    bh_value_free(m);
}

/* Round trips ------------------------------------------------------------ */

static void test_cbor_round_trips_every_type(void **state)
{
    bh_value_t *m = sample(true);
    (void)state;
    round_trip(m, BH_FORMAT_CBOR);
    bh_value_free(m);
}

static void test_json_round_trips_every_type_but_bytes(void **state)
{
    bh_value_t *m = sample(false);
    (void)state;
    round_trip(m, BH_FORMAT_JSON);
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
    encode_is(m, BH_FORMAT_JSON, want, sizeof want - 1);
    bh_value_free(m);
}

static void test_encode_null_value_gives_empty_body(void **state)
{
    unsigned char *out = (unsigned char *)"x";
    size_t len = 99;
    (void)state;
    assert_int_equal(bh__payload_encode(NULL, BH_FORMAT_CBOR, &out, &len, NULL, 0), BH_OK);
    assert_int_equal(len, 0);
    free(out);
    out = (unsigned char *)"x";
    assert_int_equal(bh__payload_encode(NULL, BH_FORMAT_JSON, &out, &len, NULL, 0), BH_OK);
    assert_int_equal(len, 0);
    free(out);
}

/* Encoding failures ------------------------------------------------------ */

static void encode_fails(const bh_value_t *v, bh_format_t fmt, int want_rc, const char *want)
{
    unsigned char *out = (unsigned char *)"x";
    size_t len = 99;
    char err[256] = "";
    int rc = bh__payload_encode(v, fmt, &out, &len, err, sizeof err);
    if (rc != want_rc || out != NULL || len != 0 || !strstr(err, want))
        fail_msg("expected rc %d \"%s\", got rc=%d err=\"%s\"", want_rc, want, rc, err);
}

static void test_encode_refuses_what_the_wire_cannot_carry(void **state)
{
    bh_value_t *m = bh_map_new(ctx), *arr = bh_array_new(ctx), *deep, *at;
    (void)state;
    bh_map_set(m, "img", bh_bytes_new(ctx, "\x89PNG", 4));
    encode_fails(m, BH_FORMAT_JSON, BH_EENCODE, "field \"img\" is a byte string");
    bh_value_free(m);

    m = bh_map_new(ctx);
    bh_array_push(arr, bh_bytes_new(ctx, "", 0));
    bh_map_set(m, "list", arr);
    encode_fails(m, BH_FORMAT_JSON, BH_EENCODE, "an array item is a byte string");
    bh_value_free(m);

    m = wrap(bh_double_new(ctx, NAN));
    encode_fails(m, BH_FORMAT_JSON, BH_EENCODE, "JSON cannot carry");
    bh_value_free(m);
    m = wrap(bh_double_new(ctx, INFINITY));
    encode_fails(m, BH_FORMAT_JSON, BH_EENCODE, "field \"k\" is inf");
    bh_value_free(m);

    /* The top level must be a map, as on the wire. */
    arr = bh_array_new(ctx);
    encode_fails(arr, BH_FORMAT_CBOR, BH_EINVAL, "top level is an array, expected a map");
    encode_fails(arr, BH_FORMAT_JSON, BH_EINVAL, "top level is an array, expected a map");
    bh_value_free(arr);

    /* No format. */
    m = bh_map_new(ctx);
    encode_fails(m, BH_FORMAT_DEFAULT, BH_EINVAL, "format");
    bh_value_free(m);

    /* What we could not decode we do not send: 65 levels is one too many. */
    deep = bh_map_new(ctx);
    at = deep;
    for (int i = 1; i < 65; i++) {
        bh_value_t *next = bh_array_new(ctx);
        if (bh_type(at) == BH_T_MAP) bh_map_set(at, "x", next);
        else bh_array_push(at, next);
        at = next;
    }
    encode_fails(deep, BH_FORMAT_CBOR, BH_EENCODE, "deeper than 64");
    encode_fails(deep, BH_FORMAT_JSON, BH_EENCODE, "deeper than 64");
    bh_value_free(deep);
}

/* CBOR decoding ---------------------------------------------------------- */

static void test_cbor_decodes_indefinite_lengths(void **state)
{
    /* {_ "a": [_ 1, 2], "s": (_ "he", "ll"), "b": (_ h'01', h'0203'), "m": {_ }} */
    static const unsigned char in[] = {
        0xbf, 0x61, 'a', 0x9f, 0x01, 0x02, 0xff, 0x61, 's',  0x7f, 0x62, 'h', 'e',  0x62, 'l',  'l',
        0xff, 0x61, 'b', 0x5f, 0x41, 0x01, 0x42, 0x02, 0x03, 0xff, 0x61, 'm', 0xbf, 0xff, 0xff,
    };
    bh_value_t *v = decode_ok(BH__CT_CBOR, in, sizeof in);
    int64_t i = 0;
    size_t len = 0;
    (void)state;
    assert_int_equal(bh_len(v), 4);
    assert_int_equal(bh_len(bh_map_get(v, "a")), 2);
    assert_int_equal(bh_as_int(bh_array_at(bh_map_get(v, "a"), 1), &i), BH_OK);
    assert_int_equal(i, 2);
    assert_string_equal(bh_get_str(v, "s"), "hell");
    assert_memory_equal(bh_as_bytes(bh_map_get(v, "b"), &len), "\x01\x02\x03", 3);
    assert_int_equal(len, 3);
    assert_int_equal(bh_type(bh_map_get(v, "m")), BH_T_MAP);
    assert_int_equal(bh_len(bh_map_get(v, "m")), 0);
    bh_value_free(v);

    /* Empty chunks, and indefinite strings made only of them. */
    {
        static const unsigned char in3[] = {0xa2, 0x61, 's',  0x7f, 0x60, 0x61, 'x',
                                            0x60, 0xff, 0x61, 'b',  0x5f, 0x40, 0xff};
        v = decode_ok(BH__CT_CBOR, in3, sizeof in3);
        assert_string_equal(bh_get_str(v, "s"), "x");
        assert_non_null(bh_as_bytes(bh_map_get(v, "b"), &len));
        assert_int_equal(len, 0);
        bh_value_free(v);
    }

    /* An indefinite string as a map key, and an empty one. */
    {
        static const unsigned char in2[] = {0xa1, 0x7f, 0x61, 'k', 0x61, 'y', 0xff, 0x7f, 0xff};
        v = decode_ok(BH__CT_CBOR, in2, sizeof in2);
        assert_string_equal(bh_map_key_at(v, 0), "ky");
        assert_string_equal(bh_get_str(v, "ky"), "");
        bh_value_free(v);
    }
}

static void test_cbor_decodes_tags_as_the_tagged_item(void **state)
{
    /* {"t": 1(1363896240), "d": 0("2013-03-21"), "b": 2(h'0100'), c0("k"): 55799(55799(7))} */
    static const unsigned char in[] = {
        0xa4, 0x61, 't',  0xc1, 0x1a, 0x51, 0x4b, 0x67, 0xb0, 0x61, 'd',  0xc0, 0x6a,
        '2',  '0',  '1',  '3',  '-',  '0',  '3',  '-',  '2',  '1',  0x61, 'b',  0xc2,
        0x42, 0x01, 0x00, 0xc0, 0x61, 'k',  0xd9, 0xd9, 0xf7, 0xd9, 0xd9, 0xf7, 0x07,
    };
    bh_value_t *v;
    int64_t i = 0;
    size_t len = 0;
    (void)state;
    v = decode_ok(BH__CT_CBOR, in, sizeof in);
    assert_int_equal(bh_get_int(v, "t", &i), BH_OK);
    assert_int_equal(i, 1363896240);
    assert_string_equal(bh_get_str(v, "d"), "2013-03-21");
    assert_memory_equal(bh_as_bytes(bh_map_get(v, "b"), &len), "\x01\x00", 2);
    assert_int_equal(bh_get_int(v, "k", &i), BH_OK);
    assert_int_equal(i, 7);
    bh_value_free(v);

    /* A tagged top-level map (the self-described CBOR prefix). */
    {
        static const unsigned char in2[] = {0xd9, 0xd9, 0xf7, 0xa1, 0x61, 'a', 0x01};
        v = decode_ok(BH__CT_CBOR, in2, sizeof in2);
        assert_int_equal(bh_get_int(v, "a", &i), BH_OK);
        assert_int_equal(i, 1);
        bh_value_free(v);
    }
}

static void test_cbor_decodes_half_single_and_double_floats(void **state)
{
    static const struct {
        unsigned char bytes[9];
        size_t len;
        double want;
    } cases[] = {
        {{0xf9, 0x00, 0x00}, 3, 0.0},
        {{0xf9, 0x3c, 0x00}, 3, 1.0},
        {{0xf9, 0x3e, 0x00}, 3, 1.5},
        {{0xf9, 0xc4, 0x00}, 3, -4.0},
        {{0xf9, 0x7b, 0xff}, 3, 65504.0},
        {{0xf9, 0x00, 0x01}, 3, 5.960464477539063e-8}, /* smallest subnormal */
        {{0xf9, 0x04, 0x00}, 3, 6.103515625e-05},
        {{0xf9, 0x7c, 0x00}, 3, INFINITY},
        {{0xf9, 0xfc, 0x00}, 3, -INFINITY},
        {{0xfa, 0x47, 0xc3, 0x50, 0x00}, 5, 100000.0},
        {{0xfa, 0x7f, 0x7f, 0xff, 0xff}, 5, 3.4028234663852886e+38},
        {{0xfb, 0x3f, 0xf1, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a}, 9, 1.1},
        {{0xfb, 0x7e, 0x37, 0xe4, 0x3c, 0x88, 0x00, 0x75, 0x9c}, 9, 1.0e300},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        unsigned char in[16] = {0xa1, 0x61, 'k'};
        bh_value_t *v;
        double d = 0;
        memcpy(in + 3, cases[i].bytes, cases[i].len);
        v = decode_ok(BH__CT_CBOR, in, 3 + cases[i].len);
        assert_int_equal(bh_type(bh_map_get(v, "k")), BH_T_FLOAT);
        assert_int_equal(bh_get_double(v, "k", &d), BH_OK);
        if (d != cases[i].want) fail_msg("case %zu: got %.17g want %.17g", i, d, cases[i].want);
        bh_value_free(v);
    }
    {
        static const unsigned char nan16[] = {0xa1, 0x61, 'k', 0xf9, 0x7e, 0x00};
        bh_value_t *v = decode_ok(BH__CT_CBOR, nan16, sizeof nan16);
        double d = 0;
        assert_int_equal(bh_get_double(v, "k", &d), BH_OK);
        assert_true(isnan(d));
        bh_value_free(v);
    }
}

static void test_cbor_decodes_integer_limits_and_simple_values(void **state)
{
    /* {"min": -2^63, "max": 2^63-1, "n": -1, "u": undefined, "t": true, "z": null} */
    static const unsigned char in[] = {
        0xa6, 0x63, 'm', 'i',  'n',  0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x63, 'm', 'a',  'x',  0x1b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x61, 'n', 0x20, 0x61, 'u',  0xf7, 0x61, 't',  0xf5, 0x61, 'z',  0xf6,
    };
    bh_value_t *v = decode_ok(BH__CT_CBOR, in, sizeof in);
    int64_t i = 0;
    bool b = false;
    (void)state;
    assert_int_equal(bh_get_int(v, "min", &i), BH_OK);
    assert_true(i == INT64_MIN);
    assert_int_equal(bh_get_int(v, "max", &i), BH_OK);
    assert_true(i == INT64_MAX);
    assert_int_equal(bh_get_int(v, "n", &i), BH_OK);
    assert_true(i == -1);
    assert_int_equal(bh_type(bh_map_get(v, "u")), BH_T_NULL); /* undefined -> null */
    assert_int_equal(bh_get_bool(v, "t", &b), BH_OK);
    assert_true(b);
    assert_int_equal(bh_type(bh_map_get(v, "z")), BH_T_NULL);
    bh_value_free(v);
}

static void test_cbor_duplicate_keys_keep_the_last_value(void **state)
{
    /* cbor2 builds a dict: the last value wins. */
    static const unsigned char in[] = {0xa3, 0x61, 'a', 0x01, 0x61, 'b', 0x02, 0x61, 'a', 0x03};
    bh_value_t *v = decode_ok(BH__CT_CBOR, in, sizeof in);
    int64_t i = 0;
    (void)state;
    assert_int_equal(bh_len(v), 2);
    assert_int_equal(bh_get_int(v, "a", &i), BH_OK);
    assert_int_equal(i, 3);
    assert_string_equal(bh_map_key_at(v, 0), "a");
    bh_value_free(v);
}

static void test_cbor_decoded_nodes_carry_the_given_api(void **state)
{
    static const unsigned char in[] = {0xa1, 0x61, 'a', 0x81, 0x01};
    bh_value_t *v = decode_ok(BH__CT_CBOR, in, sizeof in);
    (void)state;
    assert_ptr_equal(v->api, &api);
    assert_ptr_equal(bh_map_get(v, "a")->api, &api);
    assert_ptr_equal(bh_array_at(bh_map_get(v, "a"), 0)->api, &api);
    bh_value_free(v);
}

static void test_cbor_rejects_every_truncation(void **state)
{
    /* Every proper prefix of a valid payload is an error, never a crash. */
    bh_value_t *m = sample(true);
    unsigned char *out = NULL;
    size_t len = 0;
    (void)state;
    assert_int_equal(bh__payload_encode(m, BH_FORMAT_CBOR, &out, &len, NULL, 0), BH_OK);
    for (size_t n = 1; n < len; n++) {
        bh_value_t *v = NULL;
        char err[256] = "";
        assert_int_equal(bh__payload_decode(&api, BH__CT_CBOR, out, n, &v, err, sizeof err),
                         BH_EINVAL);
        assert_null(v);
        if (!strstr(err, "truncated")) fail_msg("prefix %zu: \"%s\"", n, err);
    }
    free(out);
    bh_value_free(m);
}

static void test_cbor_rejects_bad_input(void **state)
{
    (void)state;
    /* Top level not a map. */
    CBOR_BAD("payload top level is an array, expected a map", 0x82, 0x01, 0x02);
    CBOR_BAD("payload top level is an integer, expected a map", 0x01);
    CBOR_BAD("payload top level is a string, expected a map", 0x61, 'a');
    CBOR_BAD("payload top level is null, expected a map", 0xf6);
    /* Map keys must be text strings. */
    CBOR_BAD("invalid CBOR: map key is not a text string at byte 1", 0xa1, 0x01, 0x02);
    CBOR_BAD("map key is not a text string", 0xa1, 0x41, 'a', 0x02);
    CBOR_BAD("map key is not a text string", 0xa1, 0x80, 0x02);
    CBOR_BAD("map key is not a text string", 0xa1, 0xa0, 0x02);
    CBOR_BAD("map key is not a text string", 0xa1, 0x5f, 0xff, 0x02);
    CBOR_BAD("map key is not a text string", 0xa1, 0xf6, 0x02);
    CBOR_BAD("map key is not a text string", 0xa1, 0xc1, 0x01, 0x02);
    CBOR_BAD("map key is not a text string", 0xbf, 0x61, 'a', 0x01, 0x02, 0x03, 0xff);
    /* Invalid UTF-8 in text. */
    CBOR_BAD("not valid UTF-8", 0xa1, 0x61, 'a', 0x62, 0xc3, 0x28);
    CBOR_BAD("not valid UTF-8", 0xa1, 0x61, 0xff, 0x01);
    CBOR_BAD("not valid UTF-8", 0xa1, 0x61, 'a', 0x7f, 0x61, 0xc3, 0x61, 0xa9, 0xff); /* split */
    /* Trailing garbage. */
    CBOR_BAD("invalid CBOR: trailing garbage after the top-level item at byte 4", 0xa1, 0x61, 'a',
             0x01, 0x00);
    CBOR_BAD("trailing garbage", 0xa0, 0xa0);
    /* Integers outside int64. */
    CBOR_BAD("integer out of range", 0xa1, 0x61, 'a', 0x1b, 0x80, 0, 0, 0, 0, 0, 0, 0);
    CBOR_BAD("integer out of range", 0xa1, 0x61, 'a', 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
             0xff, 0xff);
    CBOR_BAD("integer out of range", 0xa1, 0x61, 'a', 0x3b, 0x80, 0, 0, 0, 0, 0, 0, 0);
    /* Declared lengths far beyond the input. */
    CBOR_BAD("array declares 1099511627776 items", 0xa1, 0x61, 'a', 0x9b, 0, 0, 1, 0, 0, 0, 0, 0,
             0x01);
    CBOR_BAD("map declares", 0xbb, 0x40, 0, 0, 0, 0, 0, 0, 0, 0x61, 'a', 0x01);
    CBOR_BAD("map declares 3 pairs but only 4 bytes follow", 0xa3, 0x61, 'a', 0x01);
    CBOR_BAD("truncated", 0xa1, 0x61, 'a', 0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
             0x00);
    CBOR_BAD("truncated", 0xa1, 0x61, 'a', 0x7a, 0xff, 0xff, 0xff, 0xff, 'x');
    CBOR_BAD("truncated", 0xa1, 0x61, 'a', 0x9f, 0x01); /* never closed */
    /* Breaks and tags in the wrong place. */
    CBOR_BAD("unexpected break", 0xff);
    CBOR_BAD("unexpected break", 0xa1, 0x61, 'a', 0x82, 0x01, 0xff);
    CBOR_BAD("map key without a value", 0xbf, 0x61, 'a', 0xff);
    CBOR_BAD("tag without a data item", 0xa1, 0x61, 'a', 0x9f, 0xc1, 0xff, 0x00);
    CBOR_BAD("truncated", 0xa1, 0x61, 'a', 0xc1);
    CBOR_BAD("tag inside an indefinite-length string", 0xa1, 0x61, 'a', 0x7f, 0xc1, 0x61, 'x',
             0xff);
    /* Indefinite strings take only definite chunks of their own type. */
    CBOR_BAD("chunk", 0xa1, 0x61, 'a', 0x7f, 0x41, 'x', 0xff);
    CBOR_BAD("chunk", 0xa1, 0x61, 'a', 0x5f, 0x61, 'x', 0xff);
    CBOR_BAD("chunk", 0xa1, 0x61, 'a', 0x7f, 0x7f, 0xff, 0xff);
    CBOR_BAD("chunk", 0xa1, 0x61, 'a', 0x5f, 0x01, 0xff);
    /* Reserved and unassigned initial bytes. */
    CBOR_BAD("malformed or unsupported item (initial byte 0x1c) at byte 3", 0xa1, 0x61, 'a', 0x1c);
    CBOR_BAD("initial byte 0xf8", 0xa1, 0x61, 'a', 0xf8, 0x20);
    CBOR_BAD("initial byte 0xfe", 0xa1, 0x61, 'a', 0xfe);
}

static void test_cbor_rejects_nesting_deeper_than_64(void **state)
{
    /* {"a": [[[...]]]}: the map is level 1, so 63 arrays fit, 64 do not. */
    unsigned char in[3 + 100 + 1] = {0xa1, 0x61, 'a'};
    bh_value_t *v;
    (void)state;
    memset(in + 3, 0x81, 62);
    in[3 + 62] = 0x80;
    v = decode_ok(BH__CT_CBOR, in, 3 + 63);
    bh_value_free(v);
    memset(in + 3, 0x81, 63);
    in[3 + 63] = 0x80; /* an empty container counts too */
    decode_bad(BH__CT_CBOR, in, 3 + 64, "nesting deeper than 64 levels");
    /* Garbage of a million nested arrays fails fast and frees everything. */
    {
        size_t n = 1000000;
        unsigned char *big = malloc(n);
        assert_non_null(big);
        big[0] = 0xa1, big[1] = 0x61, big[2] = 'a';
        memset(big + 3, 0x9f, n - 3);
        decode_bad(BH__CT_CBOR, big, n, "nesting deeper than 64 levels");
        free(big);
    }
}

static void test_empty_body_means_no_payload(void **state)
{
    bh_value_t *v = (bh_value_t *)&ctx_s;
    (void)state;
    assert_int_equal(bh__payload_decode(&api, BH__CT_CBOR, "", 0, &v, NULL, 0), BH_OK);
    assert_null(v);
    v = (bh_value_t *)&ctx_s;
    assert_int_equal(bh__payload_decode(&api, BH__CT_JSON, NULL, 0, &v, NULL, 0), BH_OK);
    assert_null(v);
    v = (bh_value_t *)&ctx_s;
    assert_int_equal(bh__payload_decode(&api, NULL, NULL, 0, &v, NULL, 0), BH_OK);
    assert_null(v);
}

/* JSON decoding ---------------------------------------------------------- */

static void test_json_decodes_the_cart_payload(void **state)
{
    static const char in[] = "{\"cart\":\"c1\",\"item\":\"apple\",\"qty\":2}";
    bh_value_t *v = decode_ok(BH__CT_JSON, in, sizeof in - 1);
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
    bh_value_t *v = decode_ok(NULL, in, sizeof in - 1); /* no content type means JSON */
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

static void test_json_rejects_bad_input(void **state)
{
    (void)state;
    JSON_BAD("[1,2]", "payload top level is an array, expected a map");
    JSON_BAD("\"str\"", "payload top level is a string, expected a map");
    JSON_BAD("5", "payload top level is an integer, expected a map");
    JSON_BAD("{\"a\":1} x", "invalid JSON at line 1 column");
    JSON_BAD("{\"a\":1}{}", "invalid JSON");
    JSON_BAD("{\"a\":\"\xff\"}", "invalid JSON");         /* invalid UTF-8 */
    JSON_BAD("{\"a\":\"\xed\xa0\x80\"}", "invalid JSON"); /* encoded surrogate */
    JSON_BAD("{\"\xc3\x28\":1}", "invalid JSON");         /* invalid UTF-8 key */
    JSON_BAD("{\"a\":\"x\\u0000y\"}", "invalid JSON");    /* NUL in a string */
    JSON_BAD("{\"a\":", "invalid JSON at line 1 column");
    JSON_BAD("{\"a\":1,}", "invalid JSON");
    JSON_BAD("{'a':1}", "invalid JSON");
    JSON_BAD("{\"a\":99999999999999999999}", "invalid JSON");
    JSON_BAD("{\"a\":NaN}", "invalid JSON");
    JSON_BAD("   ", "invalid JSON");
    JSON_BAD("{\"a\":1}\n{", "invalid JSON at line 2");
    /* A JSON body under a CBOR content type is CBOR garbage. */
    decode_bad("application/cbor", "{\"a\":1}", 7, "invalid CBOR");
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
    v = decode_ok(BH__CT_JSON, in, n);
    bh_value_free(v);
    n = (size_t)snprintf(in, sizeof in, "{\"a\":");
    for (int i = 0; i < 64; i++) in[n++] = '[';
    for (int i = 0; i < 64; i++) in[n++] = ']';
    in[n++] = '}';
    decode_bad(BH__CT_JSON, in, n, "nesting deeper than 64 levels");
    /* Far deeper garbage is refused by jansson itself, without a crash. */
    {
        size_t big = 200000;
        char *p = malloc(big);
        assert_non_null(p);
        memset(p, '[', big);
        decode_bad(BH__CT_JSON, p, big, "invalid JSON");
        free(p);
    }
}

/* Content types ---------------------------------------------------------- */

static void test_content_type_selects_cbor_only_for_application_cbor(void **state)
{
    (void)state;
    assert_true(bh__content_type_is_cbor("application/cbor"));
    assert_true(bh__content_type_is_cbor("Application/CBOR"));
    assert_true(bh__content_type_is_cbor("application/cbor; charset=binary"));
    assert_true(bh__content_type_is_cbor("application/cbor;x=y"));
    assert_true(bh__content_type_is_cbor("  application/cbor \t"));
    assert_false(bh__content_type_is_cbor("application/cbor2"));
    assert_false(bh__content_type_is_cbor("application/cbor-seq"));
    assert_false(bh__content_type_is_cbor("application/json"));
    assert_false(bh__content_type_is_cbor("application/cbo"));
    assert_false(bh__content_type_is_cbor("text/application/cbor"));
    assert_false(bh__content_type_is_cbor(""));
    assert_false(bh__content_type_is_cbor(NULL));
    assert_string_equal(bh__format_content_type(BH_FORMAT_CBOR), "application/cbor");
    assert_string_equal(bh__format_content_type(BH_FORMAT_JSON), "application/json");
    assert_null(bh__format_content_type(BH_FORMAT_DEFAULT));
}

static const char *fake_service(bh_ctx_t *c)
{
    (void)c;
    return "svc";
}

static void test_fill_api_leaves_other_slots_alone(void **state)
{
    bh_api_t t;
    (void)state;
    memset(&t, 0, sizeof t);
    t.service = fake_service;
    bh__value_fill_api(&t);
    assert_non_null(t.type);
    assert_non_null(t.value_free);
    assert_non_null(t.str_new);
    assert_null(t.publish);
    assert_null(t.result);
    assert_null(t.vlog);
    assert_null(t.config_str);
    assert_ptr_equal(t.service, fake_service);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars_report_type_and_value),
        cmocka_unit_test(test_str_new_rejects_invalid_utf8),
        cmocka_unit_test(test_map_keeps_insertion_order_and_set_replaces_in_place),
        cmocka_unit_test(test_large_map_lookups_find_every_key),
        cmocka_unit_test(test_array_push_and_read_back),
        cmocka_unit_test(test_map_set_and_array_push_take_ownership_on_failure),
        cmocka_unit_test(test_map_set_refuses_cycles_and_values_owned_twice),
        cmocka_unit_test(test_copy_is_deep_and_equal),
        cmocka_unit_test(test_value_equal_tells_trees_apart),
        cmocka_unit_test(test_cbor_encode_matches_cbor2_for_known_maps),
        cmocka_unit_test(test_cbor_encode_integers_in_shortest_form),
        cmocka_unit_test(test_cbor_encode_floats_as_float64_and_specials_as_half),
        cmocka_unit_test(test_cbor_encode_long_strings_use_definite_length_heads),
        cmocka_unit_test(test_cbor_round_trips_every_type),
        cmocka_unit_test(test_json_round_trips_every_type_but_bytes),
        cmocka_unit_test(test_json_encode_is_compact_utf8_in_order),
        cmocka_unit_test(test_encode_null_value_gives_empty_body),
        cmocka_unit_test(test_encode_refuses_what_the_wire_cannot_carry),
        cmocka_unit_test(test_cbor_decodes_indefinite_lengths),
        cmocka_unit_test(test_cbor_decodes_tags_as_the_tagged_item),
        cmocka_unit_test(test_cbor_decodes_half_single_and_double_floats),
        cmocka_unit_test(test_cbor_decodes_integer_limits_and_simple_values),
        cmocka_unit_test(test_cbor_duplicate_keys_keep_the_last_value),
        cmocka_unit_test(test_cbor_decoded_nodes_carry_the_given_api),
        cmocka_unit_test(test_cbor_rejects_every_truncation),
        cmocka_unit_test(test_cbor_rejects_bad_input),
        cmocka_unit_test(test_cbor_rejects_nesting_deeper_than_64),
        cmocka_unit_test(test_empty_body_means_no_payload),
        cmocka_unit_test(test_json_decodes_the_cart_payload),
        cmocka_unit_test(test_json_decodes_every_type),
        cmocka_unit_test(test_json_rejects_bad_input),
        cmocka_unit_test(test_json_rejects_nesting_deeper_than_64),
        cmocka_unit_test(test_content_type_selects_cbor_only_for_application_cbor),
        cmocka_unit_test(test_fill_api_leaves_other_slots_alone),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
