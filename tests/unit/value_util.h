/* value_util.h -- what the value and codec tests share: the host's value
 * slots behind a ctx, sample trees, and checks that take the codec under test
 * as a function (bh__cbor_decode, bh__json_encode, ...). */
#ifndef VALUE_UTIL_H
#define VALUE_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "bushost.h"

/* Filled by value_setup() with bh__value_fill_api(); ctx = &ctx_s. */
extern bh_api_t api;
extern bh_ctx_t ctx_s;
extern bh_ctx_t *const ctx;
int value_setup(void **state);

/* A map holding one of everything (bytes optional: JSON cannot carry them). */
bh_value_t *sample(bool with_bytes);
/* A one-entry map {"k": v}. */
bh_value_t *wrap(bh_value_t *v);
/* A map holding an array holding an array ...: `levels` containers deep. */
bh_value_t *nested(int levels);

typedef bh_value_t *decode_fn(const bh_api_t *api, const void *body, size_t len, char *err,
                              size_t errlen);
typedef int encode_fn(const bh_value_t *v, unsigned char **out, size_t *len, char *err,
                      size_t errlen);

/* Decoding must give a value. */
bh_value_t *decode_ok(decode_fn *dec, const void *body, size_t len);
/* Decoding must fail with no value and a one-line reason that contains
 * `want`. */
void decode_bad(decode_fn *dec, const void *body, size_t len, const char *want);
/* Encoding must give exactly these bytes. */
void encode_is(const bh_value_t *v, encode_fn *enc, const void *want, size_t wlen);
/* Encoding must fail with want_rc, no output, and a reason containing want. */
void encode_fails(const bh_value_t *v, encode_fn *enc, int want_rc, const char *want);
/* v encoded and decoded again must be equal to v. */
void round_trip(const bh_value_t *v, encode_fn *enc, decode_fn *dec);

#endif
