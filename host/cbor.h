/* cbor.h -- CBOR bodies to value trees and back (libcbor).
 *
 * Not libcbor's <cbor.h>: host/ is on the include path, so code here that
 * needs libcbor includes its parts (<cbor/encoding.h>, <cbor/streaming.h>). */
#ifndef BH_CBOR_H
#define BH_CBOR_H

#include <stddef.h>

#include "bushost.h"

/* Decode exactly one data item of any type filling body[0..len), len > 0.
 * Tags are dropped (the tagged item is kept), undefined becomes null, map keys
 * must be text; nesting past BH__VALUE_MAX_DEPTH, integers outside int64 and
 * invalid UTF-8 are refused. Nodes carry `api`. NULL on failure, with a
 * one-line reason ("invalid CBOR: ... at byte 3") in err. */
bh_value_t *bh__cbor_decode(const bh_api_t *api, const void *body, size_t len, char *err,
                            size_t errlen);

/* Encode v into a malloc'd buffer: definite lengths, shortest integer forms,
 * float64 for finite floats and half-precision NaN/infinities (what Python's
 * cbor2 emits by default). On failure *out is NULL, *len 0, and err says why. */
int bh__cbor_encode(const bh_value_t *v, unsigned char **out, size_t *len, char *err,
                    size_t errlen);

#endif
