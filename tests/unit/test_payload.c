/* test_payload.c -- message bodies (host/payload.c): content types, the codec
 * each one picks, and the rules every payload follows (an empty body is no
 * payload; the top level is a map). With the real codecs and value tree. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "payload.h"
#include "value_util.h"

/* bh__payload_decode under one content type, in the shape of the shared
 * checks. It also checks the function's own contract: BH_EINVAL and *out
 * NULL on failure, a value on success (the bodies here are never empty). */
static bh_value_t *payload_decode(const char *ct, const bh_api_t *a, const void *body, size_t len,
                                  char *err, size_t errlen)
{
    bh_value_t *v = (bh_value_t *)&ctx_s; /* must be overwritten */
    int rc = bh__payload_decode(a, ct, body, len, &v, err, errlen);
    if (rc == BH_OK ? v == NULL : rc != BH_EINVAL || v != NULL)
        fail_msg("bh__payload_decode: rc=%d with %s", rc, v ? "a value" : "no value");
    return v;
}

static bh_value_t *as_cbor(const bh_api_t *a, const void *body, size_t len, char *err,
                           size_t errlen)
{
    return payload_decode("application/cbor", a, body, len, err, errlen);
}

static bh_value_t *as_json(const bh_api_t *a, const void *body, size_t len, char *err,
                           size_t errlen)
{
    return payload_decode(BH__CT_JSON, a, body, len, err, errlen);
}

static bh_value_t *as_untyped(const bh_api_t *a, const void *body, size_t len, char *err,
                              size_t errlen)
{
    return payload_decode(NULL, a, body, len, err, errlen);
}

static int to_cbor(const bh_value_t *v, unsigned char **out, size_t *len, char *err, size_t errlen)
{
    return bh__payload_encode(v, BH_FORMAT_CBOR, out, len, err, errlen);
}

static int to_json(const bh_value_t *v, unsigned char **out, size_t *len, char *err, size_t errlen)
{
    return bh__payload_encode(v, BH_FORMAT_JSON, out, len, err, errlen);
}

static int to_default(const bh_value_t *v, unsigned char **out, size_t *len, char *err,
                      size_t errlen)
{
    return bh__payload_encode(v, BH_FORMAT_DEFAULT, out, len, err, errlen);
}

#define CBOR_BAD(want, ...)                               \
    do {                                                  \
        static const unsigned char in_[] = {__VA_ARGS__}; \
        decode_bad(as_cbor, in_, sizeof in_, want);       \
    } while (0)

#define JSON_BAD(text, want) decode_bad(as_json, text, strlen(text), want)

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

static void test_content_type_picks_the_codec(void **state)
{
    bh_value_t *m = sample(true), *j = sample(false), *v;
    int64_t i = 0;
    (void)state;
    round_trip(m, to_cbor, as_cbor);
    round_trip(j, to_json, as_json);
    round_trip(j, to_json, as_untyped); /* no content type means JSON */
    v = decode_ok(as_untyped, "{\"a\":1}", 7);
    assert_int_equal(bh_get_int(v, "a", &i), BH_OK);
    assert_int_equal(i, 1);
    bh_value_free(v);
    /* A JSON body under a CBOR content type is CBOR garbage. */
    decode_bad(as_cbor, "{\"a\":1}", 7, "invalid CBOR");
    bh_value_free(m);
    bh_value_free(j);
}

/* Empty bodies ----------------------------------------------------------- */

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

static void test_decode_refuses_a_length_without_a_body(void **state)
{
    bh_value_t *v = (bh_value_t *)&ctx_s;
    char err[64] = "";
    (void)state;
    assert_int_equal(bh__payload_decode(&api, BH__CT_JSON, NULL, 3, &v, err, sizeof err),
                     BH_EINVAL);
    assert_null(v);
    assert_string_equal(err, "no body but a length of 3");
}

/* The top level, and the format ----------------------------------------- */

static void test_top_level_must_be_a_map(void **state)
{
    bh_value_t *arr = bh_array_new(ctx);
    (void)state;
    /* Top level not a map. */
    CBOR_BAD("payload top level is an array, expected a map", 0x82, 0x01, 0x02);
    CBOR_BAD("payload top level is an integer, expected a map", 0x01);
    CBOR_BAD("payload top level is a string, expected a map", 0x61, 'a');
    CBOR_BAD("payload top level is null, expected a map", 0xf6);
    JSON_BAD("[1,2]", "payload top level is an array, expected a map");
    JSON_BAD("\"str\"", "payload top level is a string, expected a map");
    JSON_BAD("5", "payload top level is an integer, expected a map");

    /* The top level must be a map, as on the wire. */
    encode_fails(arr, to_cbor, BH_EINVAL, "top level is an array, expected a map");
    encode_fails(arr, to_json, BH_EINVAL, "top level is an array, expected a map");
    bh_value_free(arr);
}

static void test_encode_needs_a_format(void **state)
{
    bh_value_t *m = bh_map_new(ctx);
    (void)state;
    /* No format. */
    encode_fails(m, to_default, BH_EINVAL, "format");
    bh_value_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_type_selects_cbor_only_for_application_cbor),
        cmocka_unit_test(test_content_type_picks_the_codec),
        cmocka_unit_test(test_empty_body_means_no_payload),
        cmocka_unit_test(test_encode_null_value_gives_empty_body),
        cmocka_unit_test(test_decode_refuses_a_length_without_a_body),
        cmocka_unit_test(test_top_level_must_be_a_map),
        cmocka_unit_test(test_encode_needs_a_format),
    };
    return cmocka_run_group_tests(tests, value_setup, NULL);
}
