/* test_value.c -- the value tree (host/value.c).
 *
 * Values are reached the way a plugin reaches them: through the SDK's inline
 * functions and a bh_ctx_t whose api table bh__value_fill_api() filled; and
 * the way the codecs reach them, through the bh__value_* calls. */
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
#include "value_util.h"

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

/* The calls the codecs use ---------------------------------------------- */

static void test_codec_calls_build_and_read_trees(void **state)
{
    bh_value_t *m = bh__value_new(&api, BH_T_MAP), *a = bh__value_new(&api, BH_T_ARRAY);
    const char *k = NULL;
    size_t klen = 0, len = 0;
    bool b = false;
    int64_t i = -1;
    double d = 0;
    (void)state;
    /* Keys are counted, not NUL-terminated: a key may hold a NUL byte. */
    assert_int_equal(bh__value_map_put(m, "a\0b", 3, bh__value_int(&api, 1)), BH_OK);
    assert_int_equal(bh__value_map_put_node(m, bh__value_blob(&api, BH_T_STRING, "z", 1),
                                            bh__value_bool(&api, true)),
                     BH_OK);
    assert_int_equal(bh__value_len(m), 2);
    assert_int_equal(bh__value_as_int(bh__value_map_at(m, 0, &k, &klen), &i), BH_OK);
    assert_int_equal(i, 1);
    assert_int_equal(klen, 3);
    assert_memory_equal(k, "a\0b", 3);
    assert_int_equal(bh__value_as_bool(bh__value_map_at(m, 1, &k, &klen), &b), BH_OK);
    assert_true(b);
    assert_string_equal(k, "z");
    /* Both puts replace an existing key in place. */
    assert_int_equal(bh__value_map_put_node(m, bh__value_blob(&api, BH_T_STRING, "z", 1),
                                            bh__value_double(&api, 2.5)),
                     BH_OK);
    assert_int_equal(bh__value_map_put(m, "a\0b", 3, bh__value_new(&api, BH_T_NULL)), BH_OK);
    assert_int_equal(bh__value_len(m), 2);
    assert_int_equal(bh__value_type(bh__value_map_at(m, 0, &k, &klen)), BH_T_NULL);
    assert_int_equal(bh__value_as_double(bh__value_map_at(m, 1, &k, &klen), &d), BH_OK);
    assert_true(d == 2.5);
    assert_string_equal(k, "z");
    assert_null(bh__value_map_at(m, 2, &k, &klen));
    assert_null(bh__value_map_at(a, 0, &k, &klen));

    assert_int_equal(bh__value_array_put(a, bh__value_new(&api, BH_T_INT)), BH_OK); /* zero */
    assert_int_equal(bh__value_array_put(a, bh__value_blob(&api, BH_T_BYTES, "\x01\x02", 2)),
                     BH_OK);
    assert_int_equal(bh__value_array_put(a, bh__value_blob(&api, BH_T_STRING, "", 0)), BH_OK);
    assert_int_equal(bh__value_len(a), 3);
    assert_int_equal(bh__value_as_int(bh__value_array_at(a, 0), &i), BH_OK);
    assert_int_equal(i, 0);
    assert_memory_equal(bh__value_as_bytes(bh__value_array_at(a, 1), &len), "\x01\x02", 2);
    assert_int_equal(len, 2);
    assert_string_equal(bh__value_as_str(bh__value_array_at(a, 2), &len), "");
    assert_int_equal(len, 0);
    assert_null(bh__value_array_at(a, 3));
    assert_ptr_equal(bh__value_array_at(a, 1)->api, &api);
    assert_int_equal(bh__value_map_put(m, "arr", 3, a), BH_OK);
    assert_ptr_equal(bh_map_get(m, "arr"), a);
    /* A node inside a container is its container's to free. */
    bh__value_free(a);
    assert_int_equal(bh_len(bh_map_get(m, "arr")), 3);
    bh__value_free(m);
}

static void test_utf8_and_err_helpers(void **state)
{
    char err[8];
    (void)state;
    assert_true(bh__utf8_valid((const unsigned char *)"", 0));
    assert_true(bh__utf8_valid((const unsigned char *)"h\xc3\xa9\0", 4));
    assert_false(bh__utf8_valid((const unsigned char *)"\xc0\x80", 2));
    assert_false(bh__utf8_valid((const unsigned char *)"\xe2\x82", 2));
    bh__value_err(err, sizeof err, "%s %d", "too long", 42); /* truncated, terminated */
    assert_string_equal(err, "too lon");
    bh__value_err(NULL, 0, "ignored %d", 1);
    bh__value_err(err, 0, "ignored %d", 1);
    assert_string_equal(err, "too lon");
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
        cmocka_unit_test(test_codec_calls_build_and_read_trees),
        cmocka_unit_test(test_utf8_and_err_helpers),
        cmocka_unit_test(test_fill_api_leaves_other_slots_alone),
    };
    return cmocka_run_group_tests(tests, value_setup, NULL);
}
