/* cbor.h -- CBOR bodies to value trees and back (libcbor).
 *
 * Not libcbor's <cbor.h>: host/ is on the include path, so code here that
 * needs libcbor includes its parts (<cbor/encoding.h>, <cbor/streaming.h>). */
#ifndef BH_CBOR_H
#define BH_CBOR_H

#include <stddef.h>

#include "bushost.h"

/* Decode exactly one data item of any type filling body[0..len), len > 0.
 * Tags are dropped (the tagged item is kept) but for bignums, undefined
 * becomes null; integers beyond int64, bignums, other simple values and
 * non-text map keys become value.h's internal kinds. Invalid UTF-8 and a
 * message over bh__value_limits() are refused. Nodes carry `api`. NULL on
 * failure, with a one-line reason ("invalid CBOR: ... at byte 3") in err. */
bh_value_t *bh__cbor_decode(const bh_api_t *api, const void *body, size_t len, char *err,
                            size_t errlen);

/* Encode v into a malloc'd buffer: definite lengths, shortest integer forms,
 * float64 for finite floats and half-precision NaN/infinities (what Python's
 * cbor2 emits by default); the internal kinds as they were decoded, entries
 * with non-text keys after the others. On failure *out is NULL, *len 0, and
 * err says why. */
int bh__cbor_encode(const bh_value_t *v, unsigned char **out, size_t *len, char *err,
                    size_t errlen);

#endif
