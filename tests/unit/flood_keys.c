/* flood_keys.c -- see flood_keys.h.
 *
 * The low k bits of an FNV-1a state depend only on the low k bits of the
 * state before and the input, so colliding keys are built block by block:
 * for each of 4 blocks, find 16 four-byte strings that take the current
 * state to one same state (mod 2^FLOOD_BITS). Any choice of one string per
 * block then gives the same final value: 16^4 keys. */
#include "flood_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FNV_OFFSET 0xcbf29ce484222325u
#define FNV_PRIME 0x100000001b3u
#define MASK ((1u << FLOOD_BITS) - 1)
#define BLOCKS 4
#define CHOICES 16

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

uint64_t flood_fnv1a(const void *p, size_t len)
{
    const unsigned char *s = p;
    uint64_t h = FNV_OFFSET;
    for (size_t i = 0; i < len; i++) h = (h ^ s[i]) * FNV_PRIME;
    return h;
}

static void block_of(uint32_t i, char out[4])
{
    for (int k = 0; k < 4; k++) out[k] = alphabet[(i >> (6 * k)) & 63];
}

static uint64_t step(uint64_t h, const char b[4])
{
    for (int k = 0; k < 4; k++) h = (h ^ (unsigned char)b[k]) * FNV_PRIME;
    return h;
}

void flood_keys(char (*keys)[FLOOD_KLEN], size_t n)
{
    /* The search is the slow part (seconds under TSan): done once. */
    static char choice[BLOCKS][CHOICES][4];
    static int searched;
    unsigned char *count = searched ? NULL : calloc((size_t)MASK + 1, 1);
    uint64_t h = FNV_OFFSET;
    if (!searched && !count) abort();
    for (int b = 0; !searched && b < BLOCKS; b++) {
        uint32_t target = 0, i, got = 0;
        char blk[4];
        memset(count, 0, (size_t)MASK + 1);
        for (i = 0; i < (1u << 24); i++) {
            uint32_t s;
            block_of(i, blk);
            s = (uint32_t)(step(h, blk) & MASK);
            if (++count[s] == CHOICES) {
                target = s;
                break;
            }
        }
        for (uint32_t j = 0; j <= i && got < CHOICES; j++) {
            block_of(j, blk);
            if ((uint32_t)(step(h, blk) & MASK) == target) memcpy(choice[b][got++], blk, 4);
        }
        h = step(h, choice[b][0]);
    }
    free(count);
    searched = 1;
    for (size_t k = 0; k < n; k++)
        for (int b = 0; b < BLOCKS; b++) memcpy(keys[k] + 4 * b, choice[b][(k >> (4 * b)) & 15], 4);
}

static char (*make_keys(size_t n, int colliding))[FLOOD_KLEN]
{
    char(*keys)[FLOOD_KLEN] = malloc(n * FLOOD_KLEN + 1);
    if (!keys) abort();
    if (colliding) {
        flood_keys(keys, n);
    } else {
        char tmp[32];
        for (size_t k = 0; k < n; k++) {
            snprintf(tmp, sizeof tmp, "k%015zu", (k + 1) % 1000000000000000u);
            memcpy(keys[k], tmp, FLOOD_KLEN);
        }
    }
    return keys;
}

unsigned char *flood_cbor(size_t n, int colliding, size_t *len)
{
    char(*keys)[FLOOD_KLEN] = make_keys(n, colliding);
    unsigned char *p = malloc(5 + n * (FLOOD_KLEN + 2)), *q = p;
    if (!p) abort();
    *q++ = 0xba; /* map, 4-byte count */
    for (int k = 3; k >= 0; k--) *q++ = (unsigned char)(n >> (8 * k));
    for (size_t k = 0; k < n; k++) {
        *q++ = 0x60 + FLOOD_KLEN;
        memcpy(q, keys[k], FLOOD_KLEN);
        q += FLOOD_KLEN;
        *q++ = 0x00;
    }
    free(keys);
    *len = (size_t)(q - p);
    return p;
}

char *flood_json(size_t n, int colliding, size_t *len)
{
    char(*keys)[FLOOD_KLEN] = make_keys(n, colliding);
    char *p = malloc(3 + n * (FLOOD_KLEN + 5)), *q = p;
    if (!p) abort();
    *q++ = '{';
    for (size_t k = 0; k < n; k++) {
        if (k) *q++ = ',';
        *q++ = '"';
        memcpy(q, keys[k], FLOOD_KLEN);
        q += FLOOD_KLEN;
        memcpy(q, "\":0", 3);
        q += 3;
    }
    *q++ = '}';
    *q = '\0';
    free(keys);
    *len = (size_t)(q - p);
    return p;
}
