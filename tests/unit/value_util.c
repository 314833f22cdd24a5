/* value_util.c -- see value_util.h. */
#include "value_util.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "value.h"

bh_api_t api;
bh_ctx_t ctx_s = {&api};
bh_ctx_t *const ctx = &ctx_s;

int value_setup(void **state)
{
    (void)state;
    bh__value_fill_api(&api);
    return 0;
}

bh_value_t *decode_ok(decode_fn *dec, const void *body, size_t len)
{
    char err[256] = "";
    bh_value_t *v = dec(&api, body, len, err, sizeof err);
    if (!v) fail_msg("decode failed: %s", err);
    return v;
}

void decode_bad(decode_fn *dec, const void *body, size_t len, const char *want)
{
    char err[256] = "";
    bh_value_t *v = dec(&api, body, len, err, sizeof err);
    if (v != NULL || strstr(err, want) == NULL || strchr(err, '\n'))
        fail_msg("expected failure containing \"%s\", got %s err=\"%s\"", want,
                 v ? "a value" : "no value", err);
}

void encode_is(const bh_value_t *v, encode_fn *enc, const void *want, size_t wlen)
{
    unsigned char *out = NULL;
    size_t len = 0;
    char err[256] = "";
    int rc = enc(v, &out, &len, err, sizeof err);
    if (rc != BH_OK) fail_msg("encode failed: %s", err);
    assert_int_equal(len, wlen);
    assert_memory_equal(out, want, wlen);
    free(out);
}

void encode_fails(const bh_value_t *v, encode_fn *enc, int want_rc, const char *want)
{
    unsigned char *out = (unsigned char *)"x";
    size_t len = 99;
    char err[256] = "";
    int rc = enc(v, &out, &len, err, sizeof err);
    if (rc != want_rc || out != NULL || len != 0 || !strstr(err, want))
        fail_msg("expected rc %d \"%s\", got rc=%d err=\"%s\"", want_rc, want, rc, err);
}

void round_trip(const bh_value_t *v, encode_fn *enc, decode_fn *dec)
{
    unsigned char *out = NULL;
    size_t len = 0;
    bh_value_t *back;
    char err[256] = "";
    if (enc(v, &out, &len, err, sizeof err) != BH_OK) fail_msg("encode failed: %s", err);
    back = decode_ok(dec, out, len);
    assert_true(bh__value_equal(v, back));
    bh_value_free(back);
    free(out);
}

bh_value_t *wrap(bh_value_t *v)
{
    bh_value_t *m = bh_map_new(ctx);
    assert_int_equal(bh_map_set(m, "k", v), BH_OK);
    return m;
}

bh_value_t *nested(int levels)
{
    bh_value_t *deep = bh_map_new(ctx), *at = deep;
    for (int i = 1; i < levels; i++) {
        bh_value_t *next = bh_array_new(ctx);
        if (bh_type(at) == BH_T_MAP) bh_map_set(at, "x", next);
        else bh_array_push(at, next);
        at = next;
    }
    return deep;
}

bh_value_t *sample(bool with_bytes)
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
