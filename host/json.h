/* json.h -- JSON bodies to value trees and back (jansson). */
#ifndef BH_JSON_H
#define BH_JSON_H

#include <stddef.h>

#include "bushost.h"

/* Decode one JSON text of any type (UTF-8; strings and keys may hold NUL;
 * integers beyond int64 within +-2^64 become value.h's wide kinds, other
 * numbers jansson cannot hold the nearest double or an infinity; within
 * bh__value_limits()). Nodes carry `api`. NULL on failure, with a one-line
 * reason ("invalid JSON at line 1 column 5: ...") in err. */
bh_value_t *bh__json_decode(const bh_api_t *api, const void *body, size_t len, char *err,
                            size_t errlen);

/* Encode v as compact UTF-8 JSON, map entries in order, into a malloc'd
 * buffer (no NUL byte: U+0000 is written \u0000). A byte string, NaN, an
 * infinity, an integer beyond 64 bits or a map with non-text keys cannot be
 * JSON: BH_EENCODE, naming the field. On failure *out is NULL and *len 0. */
int bh__json_encode(const bh_value_t *v, unsigned char **out, size_t *len, char *err,
                    size_t errlen);

#endif
