/* value_base.c -- what the value tree and the codecs share beneath the tree:
 * the keyed hash of map keys, the decoding limits, strict UTF-8, error text.
 *
 * The hash is SipHash-1-3 under a key drawn from getrandom() once per
 * process: a peer that cannot learn the key cannot choose keys that collide
 * in a map's index (with an unkeyed hash, 65,536 chosen keys made decoding
 * one map quadratic). */
#include "value.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

void bh__value_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0) return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, <= U+10FFFF. */
bool bh__utf8_valid(const unsigned char *s, size_t len)
{
    static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000}; /* by continuation bytes */
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t more;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0) more = 1;
        else if ((c & 0xF0) == 0xE0) more = 2;
        else if ((c & 0xF8) == 0xF0) more = 3;
        else return false;
        if (len - i - 1 < more) return false;
        cp = c & (0x3Fu >> more);
        for (size_t k = 1; k <= more; k++) {
            unsigned cc = s[i + k];
            if ((cc & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if (cp < min_cp[more] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += more + 1;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Decoding limits: read by every decode, set by the host from its config.  */

static _Atomic size_t lim_depth = BH__VALUE_MAX_DEPTH;
static _Atomic size_t lim_entries = BH__VALUE_DEFAULT_MAX_MAP_ENTRIES;
static _Atomic size_t lim_nodes = BH__VALUE_DEFAULT_MAX_NODES;

bh__value_limits_t bh__value_limits(void)
{
    return (bh__value_limits_t){atomic_load_explicit(&lim_depth, memory_order_relaxed),
                                atomic_load_explicit(&lim_entries, memory_order_relaxed),
                                atomic_load_explicit(&lim_nodes, memory_order_relaxed)};
}

int bh__value_set_limits(const bh__value_limits_t *l, char *err, size_t errlen)
{
    bh__value_limits_t def = BH__VALUE_LIMITS_DEFAULT;
    if (!l) l = &def;
    if (l->max_depth < 1 || l->max_depth > BH__VALUE_MAX_DEPTH) {
        bh__value_err(err, errlen, "max_depth is %zu, expected 1..%d", l->max_depth,
                      BH__VALUE_MAX_DEPTH);
        return BH_EINVAL;
    }
    if (l->max_map_entries < 1 || l->max_nodes < 1) {
        bh__value_err(err, errlen, "%s is 0, expected at least 1",
                      l->max_map_entries < 1 ? "max_map_entries" : "max_nodes");
        return BH_EINVAL;
    }
    atomic_store_explicit(&lim_depth, l->max_depth, memory_order_relaxed);
    atomic_store_explicit(&lim_entries, l->max_map_entries, memory_order_relaxed);
    atomic_store_explicit(&lim_nodes, l->max_nodes, memory_order_relaxed);
    return BH_OK;
}

/* ------------------------------------------------------------------------ */
/* SipHash-1-3 (Aumasson & Bernstein; the variant Rust's HashMap uses)      */

static uint64_t sip_key[2];
static pthread_once_t sip_once = PTHREAD_ONCE_INIT;

static void sip_seed(void)
{
    unsigned char k[16];
    size_t got = 0;
    while (got < sizeof k) {
        ssize_t n = getrandom(k + got, sizeof k - got, 0);
        if (n <= 0) break;
        got += (size_t)n;
    }
    if (got < sizeof k) {
        /* No getrandom (an old kernel, a seccomp filter): weaker, but still
         * unknown to a remote peer. */
        struct timespec ts;
        uint64_t x[2];
        clock_gettime(CLOCK_MONOTONIC, &ts);
        x[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)getpid();
        x[1] = (uint64_t)(uintptr_t)&ts ^ (uint64_t)time(NULL) * 0x9E3779B97F4A7C15u;
        memcpy(k, x, sizeof k);
    }
    memcpy(sip_key, k, sizeof sip_key);
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                            \
    do {                                                                    \
        v0 += v1, v1 = ROTL(v1, 13), v1 ^= v0, v0 = ROTL(v0, 32);           \
        v2 += v3, v3 = ROTL(v3, 16), v3 ^= v2, v0 += v3, v3 = ROTL(v3, 21); \
        v3 ^= v0, v2 += v1, v1 = ROTL(v1, 17), v1 ^= v2, v2 = ROTL(v2, 32); \
    } while (0)

uint64_t bh__value_hash(const void *p, size_t len)
{
    const unsigned char *in = p;
    uint64_t v0, v1, v2, v3, m, b = (uint64_t)len << 56;
    size_t i = 0;
    pthread_once(&sip_once, sip_seed);
    v0 = sip_key[0] ^ 0x736f6d6570736575u;
    v1 = sip_key[1] ^ 0x646f72616e646f6du;
    v2 = sip_key[0] ^ 0x6c7967656e657261u;
    v3 = sip_key[1] ^ 0x7465646279746573u;
    for (; i + 8 <= len; i += 8) {
        m = 0;
        for (int k = 7; k >= 0; k--) m = (m << 8) | in[i + (size_t)k]; /* little endian */
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t k = 0; i + k < len; k++) b |= (uint64_t)in[i + k] << (8 * k);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}
