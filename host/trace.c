/* trace.c -- W3C traceparent and .NET Activity ids, read and written. */
#include "trace.h"

#include <string.h>
#include <sys/random.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1; /* uppercase too: the spec's HEXDIGLC */
}

/* n bytes from 2n lowercase hex characters; false on any other character. */
static bool unhex(uint8_t *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i]) return false;
    return true;
}

const char *bh__traceparent_parse(const char *s, size_t n, bh__tctx_t *out)
{
    uint8_t version, flags;
    bh__tctx_t t = {.has_span = true};

    if (n < 3 || s[2] != '-' || !unhex(&version, s, 1))
        return "its version is not 2 lowercase hex digits and a '-'";
    if (version == 0xff) return "version ff is forbidden";
    if (version == 0 && n != BH__TRACEPARENT_LEN) return "version 00 must be 55 characters";
    if (n < BH__TRACEPARENT_LEN) return "shorter than 55 characters";
    if (!unhex(t.trace, s + 3, BH__TRACE_ID_LEN) || s[35] != '-')
        return "its trace-id is not 32 lowercase hex digits and a '-'";
    if (!unhex(t.span, s + 36, BH__SPAN_ID_LEN) || s[52] != '-')
        return "its parent-id is not 16 lowercase hex digits and a '-'";
    if (!unhex(&flags, s + 53, 1)) return "its trace-flags are not 2 lowercase hex digits";
    if (n > BH__TRACEPARENT_LEN && s[55] != '-') return "its trace-flags are not followed by '-'";
    if (all_zero(t.trace, BH__TRACE_ID_LEN)) return "its trace-id is all zeros";
    if (all_zero(t.span, BH__SPAN_ID_LEN)) return "its parent-id is all zeros";
    t.flags = flags & BH__TRACE_SAMPLED;
    *out = t;
    return NULL;
}

void bh__trace_hex(char *out, const uint8_t *b, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * n] = '\0';
}

void bh__traceparent_format(char out[BH__TRACEPARENT_LEN + 1], const uint8_t *trace,
                            const uint8_t *span, uint8_t flags)
{
    memcpy(out, "00-", 3);
    bh__trace_hex(out + 3, trace, BH__TRACE_ID_LEN);
    out[35] = '-';
    bh__trace_hex(out + 36, span, BH__SPAN_ID_LEN);
    out[52] = '-';
    bh__trace_hex(out + 53, &flags, 1);
}

const char *bh__trace_activity_parse(const char *s, size_t n, bh__tctx_t *out)
{
    bh__tctx_t t = {.flags = BH__TRACE_SAMPLED};

    if (n == 0 || s[0] != '|') return bh__traceparent_parse(s, n, out);
    /* Hierarchical: "|<root>." and more elements, each ending in '.' or '_'. */
    if (n < 34 || s[33] != '.' || !unhex(t.trace, s + 1, BH__TRACE_ID_LEN))
        return "a hierarchical id whose root is not a 32-hex trace id";
    if (all_zero(t.trace, BH__TRACE_ID_LEN)) return "its trace id is all zeros";
    if (n >= 51 && s[50] == '.' && unhex(t.span, s + 34, BH__SPAN_ID_LEN) &&
        !all_zero(t.span, BH__SPAN_ID_LEN))
        t.has_span = true;
    *out = t;
    return NULL;
}

const char *bh__tracestate_check(const char *s, size_t n)
{
    if (n > BH__TRACESTATE_MAX) return "over 512 bytes";
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e) return "a byte that is not printable ASCII";
    return NULL;
}

/* xoshiro256** (Blackman and Vigna), one per thread, seeded once from
 * getrandom(): a syscall per id was a tenth of the host's CPU on cheap
 * messages. Ids must be unique and unpredictable enough to not collide
 * across hosts, not secret. */
static _Thread_local uint64_t rng[4];
static _Thread_local bool rng_seeded;

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(void)
{
    uint64_t r = rotl(rng[1] * 5, 7) * 9, t = rng[1] << 17;
    rng[2] ^= rng[0];
    rng[3] ^= rng[1];
    rng[1] ^= rng[2];
    rng[0] ^= rng[3];
    rng[2] ^= t;
    rng[3] = rotl(rng[3], 45);
    return r;
}

void bh__trace_random(uint8_t *out, size_t n)
{
    while (!rng_seeded) {
        uint8_t *b = (uint8_t *)rng;
        size_t got = 0;
        while (got < sizeof rng) {
            ssize_t r = getrandom(b + got, sizeof rng - got, 0);
            if (r > 0) got += (size_t)r;
        }
        rng_seeded = !all_zero(b, sizeof rng);
    }
    do {
        for (size_t i = 0; i < n; i += 8) {
            uint64_t v = rng_next();
            memcpy(out + i, &v, n - i < 8 ? n - i : 8);
        }
    } while (all_zero(out, n));
}

static _Thread_local const char *cur_trace, *cur_span;

void bh__trace_set_current(const char *trace_hex, const char *span_hex)
{
    cur_trace = trace_hex;
    cur_span = span_hex;
}

void bh__trace_current(const char **trace_hex, const char **span_hex)
{
    *trace_hex = cur_trace;
    *span_hex = cur_span;
}
