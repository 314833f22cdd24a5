/* test_cbor.c -- CBOR bodies to value trees and back (host/cbor.c), with the
 * real value tree.
 *
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

#include "cbor.h"
#include "json.h"
#include "value.h"
#include "value_util.h"

#define CBOR_BAD(want, ...)                                 \
    do {                                                    \
        static const unsigned char in_[] = {__VA_ARGS__};   \
        decode_bad(bh__cbor_decode, in_, sizeof in_, want); \
    } while (0)

#define CBOR_IS(v, ...)                                     \
    do {                                                    \
        static const unsigned char want_[] = {__VA_ARGS__}; \
        encode_is(v, bh__cbor_encode, want_, sizeof want_); \
    } while (0)

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
        encode_is(m, bh__cbor_encode, want, 3 + cases[i].len);
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
        encode_is(m, bh__cbor_encode, want, 3 + cases[i].len);
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
    assert_int_equal(bh__cbor_encode(m, &out, &len, NULL, 0), BH_OK);
    assert_int_equal(len, 3 + 3 + 299);
    assert_int_equal(out[3], 0x79); /* text, 2-byte length */
    assert_int_equal(out[4], 0x01);
    assert_int_equal(out[5], 0x2b); /* 299 */
    free(out);
    bh_value_free(m);
}

static void test_cbor_encode_refuses_nesting_deeper_than_64(void **state)
{
    /* What we could not decode we do not send: 65 levels is one too many. */
    bh_value_t *deep = nested(65), *ok = nested(64);
    unsigned char *out = NULL;
    size_t len = 0;
    (void)state;
    encode_fails(deep, bh__cbor_encode, BH_EENCODE, "deeper than 64");
    assert_int_equal(bh__cbor_encode(ok, &out, &len, NULL, 0), BH_OK);
    free(out);
    bh_value_free(deep);
    bh_value_free(ok);
}

/* Round trips ------------------------------------------------------------ */

static void test_cbor_round_trips_every_type(void **state)
{
    bh_value_t *m = sample(true);
    (void)state;
    round_trip(m, bh__cbor_encode, bh__cbor_decode);
    bh_value_free(m);
}

/* CBOR decoding ---------------------------------------------------------- */

static void test_cbor_decodes_indefinite_lengths(void **state)
{
    /* {_ "a": [_ 1, 2], "s": (_ "he", "ll"), "b": (_ h'01', h'0203'), "m": {_ }} */
    static const unsigned char in[] = {
        0xbf, 0x61, 'a', 0x9f, 0x01, 0x02, 0xff, 0x61, 's',  0x7f, 0x62, 'h', 'e',  0x62, 'l',  'l',
        0xff, 0x61, 'b', 0x5f, 0x41, 0x01, 0x42, 0x02, 0x03, 0xff, 0x61, 'm', 0xbf, 0xff, 0xff,
    };
    bh_value_t *v = decode_ok(bh__cbor_decode, in, sizeof in);
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
        v = decode_ok(bh__cbor_decode, in3, sizeof in3);
        assert_string_equal(bh_get_str(v, "s"), "x");
        assert_non_null(bh_as_bytes(bh_map_get(v, "b"), &len));
        assert_int_equal(len, 0);
        bh_value_free(v);
    }

    /* An indefinite string as a map key, and an empty one. */
    {
        static const unsigned char in2[] = {0xa1, 0x7f, 0x61, 'k', 0x61, 'y', 0xff, 0x7f, 0xff};
        v = decode_ok(bh__cbor_decode, in2, sizeof in2);
        assert_string_equal(bh_map_key_at(v, 0), "ky");
        assert_string_equal(bh_get_str(v, "ky"), "");
        bh_value_free(v);
    }
}

static void test_cbor_decodes_tags_as_the_tagged_item(void **state)
{
    /* {"t": 1(1363896240), "d": 0("2013-03-21"), "b": 2(h'0100'), c0("k"): 55799(55799(7))};
     * the bignum (tag 2) is the integer 256. */
    static const unsigned char in[] = {
        0xa4, 0x61, 't',  0xc1, 0x1a, 0x51, 0x4b, 0x67, 0xb0, 0x61, 'd',  0xc0, 0x6a,
        '2',  '0',  '1',  '3',  '-',  '0',  '3',  '-',  '2',  '1',  0x61, 'b',  0xc2,
        0x42, 0x01, 0x00, 0xc0, 0x61, 'k',  0xd9, 0xd9, 0xf7, 0xd9, 0xd9, 0xf7, 0x07,
    };
    bh_value_t *v;
    int64_t i = 0;
    size_t len = 0;
    (void)state;
    v = decode_ok(bh__cbor_decode, in, sizeof in);
    assert_int_equal(bh_get_int(v, "t", &i), BH_OK);
    assert_int_equal(i, 1363896240);
    assert_string_equal(bh_get_str(v, "d"), "2013-03-21");
    assert_int_equal(bh_get_int(v, "b", &i), BH_OK);
    assert_int_equal(i, 256);
    assert_null(bh_as_bytes(bh_map_get(v, "b"), &len));
    assert_int_equal(bh_get_int(v, "k", &i), BH_OK);
    assert_int_equal(i, 7);
    bh_value_free(v);

    /* A tagged top-level map (the self-described CBOR prefix). */
    {
        static const unsigned char in2[] = {0xd9, 0xd9, 0xf7, 0xa1, 0x61, 'a', 0x01};
        v = decode_ok(bh__cbor_decode, in2, sizeof in2);
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
        v = decode_ok(bh__cbor_decode, in, 3 + cases[i].len);
        assert_int_equal(bh_type(bh_map_get(v, "k")), BH_T_FLOAT);
        assert_int_equal(bh_get_double(v, "k", &d), BH_OK);
        if (d != cases[i].want) fail_msg("case %zu: got %.17g want %.17g", i, d, cases[i].want);
        bh_value_free(v);
    }
    {
        static const unsigned char nan16[] = {0xa1, 0x61, 'k', 0xf9, 0x7e, 0x00};
        bh_value_t *v = decode_ok(bh__cbor_decode, nan16, sizeof nan16);
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
    bh_value_t *v = decode_ok(bh__cbor_decode, in, sizeof in);
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

/* Decoding `in` must succeed and re-encoding give exactly `in` back. */
static bh_value_t *decode_exact(const unsigned char *in, size_t len)
{
    bh_value_t *v = decode_ok(bh__cbor_decode, in, len);
    encode_is(v, bh__cbor_encode, in, len);
    return v;
}

static void test_cbor_keeps_integers_beyond_int64(void **state)
{
    /* {"u": 2^64-1, "h": 2^63, "n": -2^64, "m": -2^63-1} */
    static const unsigned char in[] = {
        0xa4, 0x61, 'u',  0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, //
        0x61, 'h',  0x1b, 0x80, 0,    0,    0,    0,    0,    0,    0,          //
        0x61, 'n',  0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,       //
        0x61, 'm',  0x3b, 0x80, 0,    0,    0,    0,    0,    0,    0,
    };
    bh_value_t *v = decode_exact(in, sizeof in);
    int64_t i = 0;
    double d = 0;
    (void)state;
    assert_int_equal(bh_type(bh_map_get(v, "u")), BH_T_INT);
    assert_int_equal(bh_get_int(v, "u", &i), BH_ETYPE); /* no int64 form */
    assert_int_equal(bh_get_double(v, "u", &d), BH_OK);
    assert_true(d == 18446744073709551615.0);
    assert_int_equal(bh_get_double(v, "h", &d), BH_OK);
    assert_true(d == 9223372036854775808.0);
    assert_int_equal(bh_type(bh_map_get(v, "n")), BH_T_INT);
    assert_int_equal(bh_get_double(v, "n", &d), BH_OK);
    assert_true(d == -18446744073709551616.0);
    assert_int_equal(bh_get_int(v, "m", &i), BH_ETYPE);
    /* A copy keeps them exactly, in CBOR and in JSON. */
    {
        bh_value_t *c = bh_value_copy(ctx, v);
        assert_true(bh__value_equal(c, v));
        encode_is(c, bh__cbor_encode, in, sizeof in);
        round_trip(c, bh__json_encode, bh__json_decode);
        bh_value_free(c);
    }
    bh_value_free(v);
}

static void test_cbor_bignums_become_integers(void **state)
{
    /* {"a": 2(h'0100'), "b": 3(h'00ff'), "c": 2(h'ffffffffffffffff'), "d": 3(h'8000000000000000')} */
    static const unsigned char in[] = {
        0xa4, 0x61, 'a',  0xc2, 0x42, 0x01, 0x00, 0x61, 'b',  0xc3, 0x42, 0x00, 0xff, //
        0x61, 'c',  0xc2, 0x48, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,       //
        0x61, 'd',  0xc3, 0x48, 0x80, 0,    0,    0,    0,    0,    0,    0,
    };
    /* What they are once decoded: plain (or wide) integers, as cbor2 sends. */
    static const unsigned char plain[] = {
        0xa4, 0x61, 'a',  0x19, 0x01, 0x00, 0x61, 'b',  0x38, 0xff,       //
        0x61, 'c',  0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, //
        0x61, 'd',  0x3b, 0x80, 0,    0,    0,    0,    0,    0,    0,
    };
    /* Beyond 64 bits, also as an indefinite byte string: kept as bignums. */
    static const unsigned char big[] = {
        0xa2, 0x61, 'p',  0xc2, 0x49, 0x01, 0, 0, 0, 0, 0,    0, 0, 0, /* 2^64 */
        0x61, 'q',  0xc3, 0x5f, 0x45, 0x01, 0, 0, 0, 0, 0x44, 0, 0, 0, 0, 0xff,
    };
    static const unsigned char big_out[] = {
        0xa2, 0x61, 'p',  0xc2, 0x49, 0x01, 0, 0, 0, 0, 0, 0, 0, 0,
        0x61, 'q',  0xc3, 0x49, 0x01, 0,    0, 0, 0, 0, 0, 0, 0,
    };
    bh_value_t *v = decode_ok(bh__cbor_decode, in, sizeof in);
    int64_t i = 0;
    double d = 0;
    (void)state;
    assert_int_equal(bh_get_int(v, "a", &i), BH_OK);
    assert_int_equal(i, 256);
    assert_int_equal(bh_get_int(v, "b", &i), BH_OK);
    assert_int_equal(i, -256);
    assert_int_equal(bh_get_int(v, "c", &i), BH_ETYPE);
    assert_int_equal(bh_get_int(v, "d", &i), BH_ETYPE);
    encode_is(v, bh__cbor_encode, plain, sizeof plain);
    bh_value_free(v);

    v = decode_ok(bh__cbor_decode, big, sizeof big);
    assert_int_equal(bh_type(bh_map_get(v, "p")), BH_T_INT);
    assert_null(bh_as_bytes(bh_map_get(v, "p"), NULL));
    assert_int_equal(bh_get_int(v, "p", &i), BH_ETYPE);
    assert_int_equal(bh_get_double(v, "p", &d), BH_OK);
    assert_true(d == 18446744073709551616.0);
    assert_int_equal(bh_get_double(v, "q", &d), BH_OK);
    assert_true(d == -18446744073709551617.0);
    encode_is(v, bh__cbor_encode, big_out, sizeof big_out);
    encode_fails(v, bh__json_encode, BH_EENCODE, "field \"p\" is an integer beyond 64 bits");
    bh_value_free(v);

    /* Tag 2 on anything but a byte string is dropped like any tag. */
    {
        static const unsigned char t[] = {0xa1, 0x61, 'x', 0xc2, 0x61, 'y'};
        v = decode_ok(bh__cbor_decode, t, sizeof t);
        assert_string_equal(bh_get_str(v, "x"), "y");
        bh_value_free(v);
    }
}

static void test_cbor_simple_values_read_as_null_and_encode_back(void **state)
{
    /* {"a": simple(0), "b": simple(19), "c": simple(32), "d": simple(255)} */
    static const unsigned char in[] = {
        0xa4, 0x61, 'a', 0xe0, 0x61, 'b', 0xf3, 0x61, 'c', 0xf8, 0x20, 0x61, 'd', 0xf8, 0xff,
    };
    static const char json[] = "{\"a\":null,\"b\":null,\"c\":null,\"d\":null}";
    bh_value_t *v = decode_exact(in, sizeof in);
    unsigned sv = 0;
    (void)state;
    assert_int_equal(bh_type(bh_map_get(v, "a")), BH_T_NULL);
    assert_int_equal(bh_type(bh_map_get(v, "d")), BH_T_NULL);
    assert_int_equal(bh__value_as_simple(bh_map_get(v, "c"), &sv), BH_OK);
    assert_int_equal(sv, 32);
    encode_is(v, bh__json_encode, json, sizeof json - 1);
    bh_value_free(v);
}

static void test_cbor_non_text_keys_are_kept_aside(void **state)
{
    /* {"a": 1, 1: 2, h'00': [3], [1]: {}, {}: null, null: 4} */
    static const unsigned char in[] = {
        0xa6, 0x61, 'a',  0x01, 0x01, 0x02, 0x41, 0x00, 0x81,
        0x03, 0x81, 0x01, 0xa0, 0xa0, 0xf6, 0xf6, 0x04,
    };
    /* Indefinite, text keys after others: the text ones come first again. */
    static const unsigned char mixed[] = {0xbf, 0x01, 0x02, 0x61, 'a', 0x01, 0xff};
    static const unsigned char mixed_out[] = {0xa2, 0x61, 'a', 0x01, 0x01, 0x02};
    bh_value_t *v = decode_exact(in, sizeof in);
    const bh_value_t *key = NULL;
    int64_t i = 0;
    (void)state;
    assert_int_equal(bh_len(v), 1); /* plugins see the text keys */
    assert_string_equal(bh_map_key_at(v, 0), "a");
    assert_null(bh_map_key_at(v, 1));
    assert_int_equal(bh_get_int(v, "a", &i), BH_OK);
    assert_int_equal(bh__value_map_others(v), 5);
    assert_non_null(bh__value_map_other_at(v, 0, &key));
    assert_int_equal(bh_as_int(key, &i), BH_OK);
    assert_int_equal(i, 1);
    encode_fails(v, bh__json_encode, BH_EENCODE, "map with non-text keys");
    {
        bh_value_t *c = bh_value_copy(ctx, v);
        encode_is(c, bh__cbor_encode, in, sizeof in);
        bh_value_free(c);
    }
    bh_value_free(v);
    v = decode_ok(bh__cbor_decode, mixed, sizeof mixed);
    encode_is(v, bh__cbor_encode, mixed_out, sizeof mixed_out);
    bh_value_free(v);
}

static void set_limits(size_t depth, size_t entries, size_t nodes)
{
    bh__value_limits_t l = {depth, entries, nodes};
    char err[128] = "";
    if (bh__value_set_limits(&l, err, sizeof err) != BH_OK) fail_msg("%s", err);
}

static void test_cbor_limits_name_the_cap_and_the_count(void **state)
{
    /* {"a": [1, 2], "b": 3} has 1 + 2 keys + 1 array + 2 items + 1 = 7 values. */
    static const unsigned char in[] = {0xa2, 0x61, 'a', 0x82, 0x01, 0x02, 0x61, 'b', 0x03};
    static const unsigned char indef[] = {0xbf, 0x61, 'a', 0x01, 0x61, 'b',
                                          0x02, 0x61, 'c', 0x03, 0xff};
    bh_value_t *v;
    (void)state;
    set_limits(2, 2, 7);
    v = decode_ok(bh__cbor_decode, in, sizeof in);
    bh_value_free(v);
    set_limits(2, 2, 6);
    decode_bad(bh__cbor_decode, in, sizeof in,
               "invalid CBOR: more than 6 values in the message (max_nodes) at byte 8");
    set_limits(1, 2, 100);
    decode_bad(bh__cbor_decode, in, sizeof in,
               "nesting deeper than 1 levels (max_depth) at byte 3");
    set_limits(2, 1, 100);
    decode_bad(bh__cbor_decode, in, sizeof in,
               "invalid CBOR: map declares 2 pairs, more than 1 (max_map_entries) at byte 0");
    set_limits(2, 2, 100);
    decode_bad(bh__cbor_decode, indef, sizeof indef, "map has more than 2 pairs (max_map_entries)");
    {
        bh__value_limits_t l = {65, 1, 1};
        char err[128] = "";
        assert_int_equal(bh__value_set_limits(&l, err, sizeof err), BH_EINVAL);
        assert_string_equal(err, "max_depth is 65, expected 1..64");
        l = (bh__value_limits_t){64, 0, 1};
        assert_int_equal(bh__value_set_limits(&l, err, sizeof err), BH_EINVAL);
        assert_string_equal(err, "max_map_entries is 0, expected at least 1");
        assert_int_equal(bh__value_limits().max_map_entries, 2); /* unchanged */
    }
    assert_int_equal(bh__value_set_limits(NULL, NULL, 0), BH_OK);
    assert_int_equal(bh__value_limits().max_depth, 64);
    assert_int_equal(bh__value_limits().max_map_entries, 100000);
    assert_int_equal(bh__value_limits().max_nodes, 1000000);
}

static void test_cbor_duplicate_keys_keep_the_last_value(void **state)
{
    /* cbor2 builds a dict: the last value wins. */
    static const unsigned char in[] = {0xa3, 0x61, 'a', 0x01, 0x61, 'b', 0x02, 0x61, 'a', 0x03};
    bh_value_t *v = decode_ok(bh__cbor_decode, in, sizeof in);
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
    bh_value_t *v = decode_ok(bh__cbor_decode, in, sizeof in);
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
    assert_int_equal(bh__cbor_encode(m, &out, &len, NULL, 0), BH_OK);
    for (size_t n = 1; n < len; n++) {
        char err[256] = "";
        bh_value_t *v = bh__cbor_decode(&api, out, n, err, sizeof err);
        assert_null(v);
        if (!strstr(err, "truncated")) fail_msg("prefix %zu: \"%s\"", n, err);
    }
    free(out);
    bh_value_free(m);
}

static void test_cbor_rejects_bad_input(void **state)
{
    (void)state;
    /* Invalid UTF-8 in text. */
    CBOR_BAD("not valid UTF-8", 0xa1, 0x61, 'a', 0x62, 0xc3, 0x28);
    CBOR_BAD("not valid UTF-8", 0xa1, 0x61, 0xff, 0x01);
    CBOR_BAD("not valid UTF-8", 0xa1, 0x61, 'a', 0x7f, 0x61, 0xc3, 0x61, 0xa9, 0xff); /* split */
    /* Trailing garbage. */
    CBOR_BAD("invalid CBOR: trailing garbage after the top-level item at byte 4", 0xa1, 0x61, 'a',
             0x01, 0x00);
    CBOR_BAD("trailing garbage", 0xa0, 0xa0);
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
    CBOR_BAD("simple value 16 in a two-byte head is malformed at byte 3", 0xa1, 0x61, 'a', 0xf8,
             0x10);
    CBOR_BAD("truncated item", 0xa1, 0x61, 'a', 0xf8);
    CBOR_BAD("initial byte 0xfc", 0xa1, 0x61, 'a', 0xfc);
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
    v = decode_ok(bh__cbor_decode, in, 3 + 63);
    bh_value_free(v);
    memset(in + 3, 0x81, 63);
    in[3 + 63] = 0x80; /* an empty container counts too */
    decode_bad(bh__cbor_decode, in, 3 + 64, "nesting deeper than 64 levels");
    /* Garbage of a million nested arrays fails fast and frees everything. */
    {
        size_t n = 1000000;
        unsigned char *big = malloc(n);
        assert_non_null(big);
        big[0] = 0xa1, big[1] = 0x61, big[2] = 'a';
        memset(big + 3, 0x9f, n - 3);
        decode_bad(bh__cbor_decode, big, n, "nesting deeper than 64 levels");
        free(big);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cbor_encode_matches_cbor2_for_known_maps),
        cmocka_unit_test(test_cbor_encode_integers_in_shortest_form),
        cmocka_unit_test(test_cbor_encode_floats_as_float64_and_specials_as_half),
        cmocka_unit_test(test_cbor_encode_long_strings_use_definite_length_heads),
        cmocka_unit_test(test_cbor_encode_refuses_nesting_deeper_than_64),
        cmocka_unit_test(test_cbor_round_trips_every_type),
        cmocka_unit_test(test_cbor_decodes_indefinite_lengths),
        cmocka_unit_test(test_cbor_decodes_tags_as_the_tagged_item),
        cmocka_unit_test(test_cbor_decodes_half_single_and_double_floats),
        cmocka_unit_test(test_cbor_decodes_integer_limits_and_simple_values),
        cmocka_unit_test(test_cbor_keeps_integers_beyond_int64),
        cmocka_unit_test(test_cbor_bignums_become_integers),
        cmocka_unit_test(test_cbor_simple_values_read_as_null_and_encode_back),
        cmocka_unit_test(test_cbor_non_text_keys_are_kept_aside),
        cmocka_unit_test(test_cbor_limits_name_the_cap_and_the_count),
        cmocka_unit_test(test_cbor_duplicate_keys_keep_the_last_value),
        cmocka_unit_test(test_cbor_decoded_nodes_carry_the_given_api),
        cmocka_unit_test(test_cbor_rejects_every_truncation),
        cmocka_unit_test(test_cbor_rejects_bad_input),
        cmocka_unit_test(test_cbor_rejects_nesting_deeper_than_64),
    };
    return cmocka_run_group_tests(tests, value_setup, NULL);
}
