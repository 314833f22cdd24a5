/* trace.h -- W3C Trace Context (level 1) ids and headers: parsing and
 * writing `traceparent`, mapping .NET's Activity ids (MassTransit's
 * `MT-Activity-Id`, `Diagnostic-Id`), checking a `tracestate` to carry on,
 * random ids, and the span the calling thread is running (for its logs).
 * Pure but for getrandom and the thread-local span; any thread. */
#ifndef BH_TRACE_H
#define BH_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    BH__TRACE_ID_LEN = 16, /* bytes; 32 hex characters */
    BH__SPAN_ID_LEN = 8,   /* bytes; 16 hex characters */
    BH__TRACEPARENT_LEN = 55,
    /* A longer tracestate is not carried on (the spec asks to propagate at
     * least 512 characters and allows dropping beyond). */
    BH__TRACESTATE_MAX = 512,
};
#define BH__TRACE_SAMPLED 0x01 /* the one flag level 1 defines */

/* A parsed trace context. has_span is false for an Activity id that names
 * only its trace. */
typedef struct bh__tctx {
    uint8_t trace[BH__TRACE_ID_LEN];
    uint8_t span[BH__SPAN_ID_LEN];
    uint8_t flags;
    bool has_span;
} bh__tctx_t;

/* A traceparent value of n bytes. NULL when it is valid (*out filled, its
 * flags reduced to the sampled bit: level 1 has no other), else why not.
 * Version 00 must be exactly 55 characters; a higher version (not ff) is
 * read by the spec's forward-compatible rule: at least 55 characters, and
 * anything past the flags must start with '-'. Hex must be lowercase; an
 * all-zero trace or parent id is invalid. */
const char *bh__traceparent_parse(const char *s, size_t n, bh__tctx_t *out);
/* "00-<trace>-<span>-<flags>" and a NUL. */
void bh__traceparent_format(char out[BH__TRACEPARENT_LEN + 1], const uint8_t *trace,
                            const uint8_t *span, uint8_t flags);
/* A .NET Activity id as MassTransit sends it in MT-Activity-Id or
 * Diagnostic-Id: the W3C form (read as a traceparent), or the hierarchical
 * one, "|<root>.<...>", which maps only when its root is a 32-hex trace id
 * (a following 16-hex element ending in '.' is taken as the parent span;
 * the trace counts as sampled). NULL when it maps, else why not. */
const char *bh__trace_activity_parse(const char *s, size_t n, bh__tctx_t *out);
/* NULL when a tracestate of n bytes is carried on: at most
 * BH__TRACESTATE_MAX bytes of printable ASCII; else why not. */
const char *bh__tracestate_check(const char *s, size_t n);

/* n random bytes, never all zero (an invalid trace or span id), from a
 * per-thread generator seeded by getrandom(); also the randomness of
 * bh__uuid. */
void bh__trace_random(uint8_t *out, size_t n);
/* b[0..n) as 2n lowercase hex characters and a NUL. */
void bh__trace_hex(char *out, const uint8_t *b, size_t n);

/* The handler span this thread runs, as hex (NULL, NULL: none): what its
 * log records carry. The strings must outlive the span. */
void bh__trace_set_current(const char *trace_hex, const char *span_hex);
void bh__trace_current(const char **trace_hex, const char **span_hex);

#endif
