/* flood_keys.h -- map keys chosen to collide in a hash index: what a peer
 * sends to make an unkeyed hash table quadratic (tests/unit/test_flood.c,
 * bench/flood.c, tests/fuzz/regress). */
#ifndef FLOOD_KEYS_H
#define FLOOD_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define FLOOD_KLEN 16   /* bytes per key, printable ASCII */
#define FLOOD_BITS 20   /* the keys agree in this many low bits of FNV-1a */
#define FLOOD_MAX 65536 /* 16 choices in each of 4 blocks */

/* 64-bit FNV-1a, the unkeyed hash the map index once used. */
uint64_t flood_fnv1a(const void *p, size_t len);
/* Fill keys[0..n) (n <= FLOOD_MAX) with distinct keys whose FNV-1a agrees in
 * its low FLOOD_BITS bits, so they share one slot of any index of up to
 * 2^FLOOD_BITS slots. Deterministic; the search runs once per process (not thread-safe). */
void flood_keys(char (*keys)[FLOOD_KLEN], size_t n);
/* A CBOR or JSON payload {key: 0, ...} of those n keys (or of n ordinary
 * keys "k000000000000001"... when colliding is 0), malloc'd. */
unsigned char *flood_cbor(size_t n, int colliding, size_t *len);
char *flood_json(size_t n, int colliding, size_t *len);

#endif
