/* value.h -- the payload value tree behind bh_value_t.
 *
 * Plugins build and read trees through the bh_api_t value slots. The codecs
 * (cbor.c, json.c) use the bh__value_* calls below; the node layout stays in
 * value.c. */
#ifndef BH_VALUE_H
#define BH_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bushost.h"

/* Containers nested deeper than this are refused, decoding and encoding:
 * free/copy/encode recurse, and garbage must not be able to blow the stack. */
#define BH__VALUE_MAX_DEPTH 64

/* Fill the value slots of an API table (everything before `publish`). */
void bh__value_fill_api(bh_api_t *api);

/* Compare two trees (tests, and a debugging aid). */
bool bh__value_equal(const bh_value_t *a, const bh_value_t *b);

/* For the codecs ---------------------------------------------------------- */

/* A detached node carrying `api`, or NULL when out of memory. bh__value_new
 * makes an empty container, a null, or a zero scalar. bh__value_blob makes a
 * BH_T_STRING or BH_T_BYTES node from a copy of p; text is not checked here
 * (see bh__utf8_valid). */
bh_value_t *bh__value_new(const bh_api_t *api, bh_type_t type);
bh_value_t *bh__value_bool(const bh_api_t *api, bool b);
bh_value_t *bh__value_int(const bh_api_t *api, int64_t i);
bh_value_t *bh__value_double(const bh_api_t *api, double d);
bh_value_t *bh__value_blob(const bh_api_t *api, bh_type_t type, const void *p, size_t len);

/* map[key] = val; an existing key keeps its place and gets the new value.
 * Each takes val (and key_node), also on failure; BH_OK or BH_ENOMEM.
 * map_put copies key (klen bytes, UTF-8); map_put_node takes the text of a
 * detached string node and frees the node. */
int bh__value_map_put(bh_value_t *map, const char *key, size_t klen, bh_value_t *val);
int bh__value_map_put_node(bh_value_t *map, bh_value_t *key_node, bh_value_t *val);
/* Append val to an array; takes val, also on failure. */
int bh__value_array_put(bh_value_t *arr, bh_value_t *val);
/* The value_free slot: frees a tree, but not a node inside a container. */
void bh__value_free(bh_value_t *v);

/* Readers: the slots of the same names, and the i-th entry of a map with
 * its key's length (CBOR keys may hold NUL bytes). */
bh_type_t bh__value_type(const bh_value_t *v);
size_t bh__value_len(const bh_value_t *v);
const bh_value_t *bh__value_array_at(const bh_value_t *arr, size_t i);
const bh_value_t *bh__value_map_at(const bh_value_t *map, size_t i, const char **key, size_t *klen);
int bh__value_as_bool(const bh_value_t *v, bool *out);
int bh__value_as_int(const bh_value_t *v, int64_t *out);
int bh__value_as_double(const bh_value_t *v, double *out);
const char *bh__value_as_str(const bh_value_t *v, size_t *len);
const void *bh__value_as_bytes(const bh_value_t *v, size_t *len);

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, <= U+10FFFF. */
bool bh__utf8_valid(const unsigned char *s, size_t len);

/* Write a one-line reason to err (nothing when err is NULL or errlen 0). */
void bh__value_err(char *err, size_t errlen, const char *fmt, ...) BH_PRINTF(3, 4);

#endif
