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
 * free/copy/encode recurse, and garbage must not be able to blow the stack.
 * It is also the highest max_depth a limit may set. */
#define BH__VALUE_MAX_DEPTH 64

/* Decoding limits (docs/reliability.md, "Decoding limits"). One set per
 * process, read at the start of every decode: a message over one fails to
 * decode with a reason naming the limit and what the message had. */
typedef struct bh__value_limits {
    size_t max_depth;       /* nesting of arrays and maps, 1..BH__VALUE_MAX_DEPTH */
    size_t max_map_entries; /* entries (key/value pairs) of one map, >= 1 */
    size_t max_nodes;       /* values in one message, map keys included, >= 1 */
} bh__value_limits_t;
#define BH__VALUE_DEFAULT_MAX_MAP_ENTRIES 100000
#define BH__VALUE_DEFAULT_MAX_NODES 1000000
#define BH__VALUE_LIMITS_DEFAULT                                                            \
    {                                                                                       \
        BH__VALUE_MAX_DEPTH, BH__VALUE_DEFAULT_MAX_MAP_ENTRIES, BH__VALUE_DEFAULT_MAX_NODES \
    }
/* The limits in force (the defaults until set). */
bh__value_limits_t bh__value_limits(void);
/* Set them (NULL: back to the defaults). BH_EINVAL with a reason naming the
 * field when one is out of range (max_depth 0 or over 64, a 0 cap); the
 * limits in force are then unchanged. Thread: any; decodes already running
 * keep the limits they started with. */
int bh__value_set_limits(const bh__value_limits_t *l, char *err, size_t errlen);

/* The keyed hash of map keys: SipHash-1-3 under a per-process random key. */
uint64_t bh__value_hash(const void *p, size_t len);

/* Kinds of node a decoder makes beyond bh_type_t. bh__value_type (and so a
 * plugin's bh_type) reports each as the public type it reads as; the codecs
 * ask bh__value_kind and write each back exactly.
 *   UINT     an integer above INT64_MAX, up to 2^64-1          reads as BH_T_INT
 *   NEGINT   an integer below INT64_MIN, down to -2^64         reads as BH_T_INT
 *   BIGNUM   CBOR bignum (tag 2 or 3) beyond 64 bits           reads as BH_T_INT
 *   SIMPLE   CBOR simple value other than false/true/null/undefined  reads as BH_T_NULL
 * bh_as_int refuses the integer kinds (BH_ETYPE: they have no int64 form);
 * bh_as_double gives the nearest double. */
enum {
    BH__K_UINT = 32,
    BH__K_NEGINT,
    BH__K_BIGNUM,
    BH__K_NEGBIGNUM,
    BH__K_SIMPLE,
};
int bh__value_kind(const bh_value_t *v); /* a bh_type_t or a BH__K_* */

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
/* The internal kinds. wide: mag is the value (neg false, mag > INT64_MAX) or
 * the CBOR argument n of the value -1 - n (neg true, n > INT64_MAX); other
 * values are plain integers, which bh__value_wide also makes. bignum: the
 * big-endian magnitude bytes of tag 2 (value n) or tag 3 (value -1 - n). */
bh_value_t *bh__value_wide(const bh_api_t *api, bool neg, uint64_t mag);
bh_value_t *bh__value_bignum(const bh_api_t *api, bool neg, const void *p, size_t len);
bh_value_t *bh__value_simple(const bh_api_t *api, unsigned simple);

/* map[key] = val; an existing key keeps its place and gets the new value.
 * Each takes val (and key_node), also on failure; BH_OK or BH_ENOMEM.
 * map_put copies key (klen bytes, UTF-8); map_put_node takes the text of a
 * detached string node and frees the node. */
int bh__value_map_put(bh_value_t *map, const char *key, size_t klen, bh_value_t *val);
int bh__value_map_put_node(bh_value_t *map, bh_value_t *key_node, bh_value_t *val);
/* A CBOR map entry whose key is not text: kept aside, after the text-keyed
 * entries, for re-encoding only (plugins see text keys alone). Takes both. */
int bh__value_map_put_other(bh_value_t *map, bh_value_t *key, bh_value_t *val);
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
/* The entries with non-text keys: how many, and the i-th. */
size_t bh__value_map_others(const bh_value_t *map);
const bh_value_t *bh__value_map_other_at(const bh_value_t *map, size_t i, const bh_value_t **key);
/* Readers of the internal kinds: BH_ETYPE for any other kind. */
int bh__value_as_wide(const bh_value_t *v, bool *neg, uint64_t *mag);
const void *bh__value_as_bignum(const bh_value_t *v, bool *neg, size_t *len);
int bh__value_as_simple(const bh_value_t *v, unsigned *simple);
/* Test hook: the probes a lookup of every key of a map makes in its index
 * (1 for a key in its home slot), summed; 0 for a map without an index. */
size_t bh__value_map_probes(const bh_value_t *map);
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
