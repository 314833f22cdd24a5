/* cbor.c -- CBOR bodies to value trees and back (libcbor).
 *
 * Decoding uses libcbor's streaming decoder feeding our own tree builder, not
 * cbor_load(): libcbor 0.8's cbor_load allocates a declared array/map length
 * up front, so 9 bytes declaring 2^40 items make it ask for terabytes. Here a
 * declared length is checked against the bytes that remain, the limits of
 * bh__value_limits() (depth, entries per map, values per message) apply as
 * items arrive, and no recursion depends on the input before they do.
 * Integers beyond int64, bignums, simple values and non-text keys become
 * value.h's internal kinds, which encode back exactly (wire-conventions.md). */
#include "cbor.h"

/* libcbor's umbrella header is also named cbor.h, and host/ is on the include
 * path: take its parts by their own names. */
#include <cbor/encoding.h>
#include <cbor/streaming.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "value.h"

/* ------------------------------------------------------------------------ */
/* CBOR decoding: libcbor's streaming decoder drives this builder, one data  */
/* item header per cbor_stream_decode() call.                               */

enum frame_kind { F_ARRAY, F_MAP, F_BYTES, F_TEXT };

typedef struct frame {
    enum frame_kind kind;
    bool indefinite;
    uint64_t left;    /* definite containers: items (arrays) or pairs (maps) to come */
    bh_value_t *node; /* the container being filled */
    bh_value_t *key;  /* maps: the key waiting for its value, or NULL */
    uint64_t pairs;   /* maps: pairs so far */
    int bignum;       /* indefinite byte strings: 2 or 3 under a bignum tag, else 0 */
    char *buf;        /* indefinite strings: the chunks so far */
    size_t blen, bcap;
} frame_t;

typedef struct cbor_dec {
    const bh_api_t *api;
    size_t len; /* body length */
    size_t pos; /* offset of the item being decoded, for messages */
    size_t depth;
    bool tagged; /* a tag was read: a data item must follow */
    bool failed;
    int bignum;      /* the last tag, when it was 2 or 3 and is still pending */
    int item_bignum; /* what dec_begin took from `bignum` for the current item */
    size_t nodes;    /* values so far, map keys included */
    bh__value_limits_t lim;
    bh_value_t *root;
    char *err;
    size_t errlen;
    /* Last, and not zeroed: dec_push writes each frame whole before use. */
    frame_t stack[BH__VALUE_MAX_DEPTH + 1]; /* containers, plus one string on top */
} cbor_dec_t;

static void dec_fail(cbor_dec_t *d, const char *fmt, ...) BH_PRINTF(2, 3);
static void dec_fail(cbor_dec_t *d, const char *fmt, ...)
{
    char why[160];
    va_list ap;
    if (d->failed) return;
    d->failed = true;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    bh__value_err(d->err, d->errlen, "invalid CBOR: %s at byte %zu", why, d->pos);
}

static frame_t *dec_top(cbor_dec_t *d) { return d->depth ? &d->stack[d->depth - 1] : NULL; }

/* Every data item starts here: is an item allowed now, and under the node
 * cap? Takes a pending bignum tag for this item. */
static bool dec_begin(cbor_dec_t *d)
{
    frame_t *f = dec_top(d);
    if (d->failed) return false;
    d->tagged = false;
    d->item_bignum = d->bignum;
    d->bignum = 0;
    if (f && (f->kind == F_BYTES || f->kind == F_TEXT)) {
        dec_fail(d, "indefinite-length string chunk is not a definite string of its type");
        return false;
    }
    if (++d->nodes > d->lim.max_nodes) {
        dec_fail(d, "more than %zu values in the message (max_nodes)", d->lim.max_nodes);
        return false;
    }
    return true;
}

/* A complete item: hand it to the open container, closing every definite
 * container it completes. Takes ownership of n. */
static void dec_emit(cbor_dec_t *d, bh_value_t *n)
{
    if (!n) {
        dec_fail(d, "out of memory");
        return;
    }
    for (;;) {
        frame_t *f = dec_top(d);
        if (!f) {
            d->root = n;
            return;
        }
        if (f->kind == F_ARRAY) {
            if (bh__value_array_put(f->node, n) != BH_OK) {
                dec_fail(d, "out of memory");
                return;
            }
        } else if (!f->key) {
            f->key = n;
            return;
        } else {
            int rc = bh__value_kind(f->key) == BH_T_STRING
                         ? bh__value_map_put_node(f->node, f->key, n)
                         : bh__value_map_put_other(f->node, f->key, n);
            f->key = NULL;
            if (rc != BH_OK) {
                dec_fail(d, "out of memory");
                return;
            }
            if (f->indefinite && ++f->pairs > d->lim.max_map_entries) {
                dec_fail(d, "map has more than %zu pairs (max_map_entries)",
                         d->lim.max_map_entries);
                return;
            }
        }
        if (f->indefinite || --f->left > 0) return;
        n = f->node;
        f->node = NULL;
        d->depth--;
    }
}

static void dec_scalar(cbor_dec_t *d, bh_type_t type, int64_t i, double x, bool b)
{
    bh_value_t *n;
    if (!dec_begin(d)) return;
    if (type == BH_T_INT) n = bh__value_int(d->api, i);
    else if (type == BH_T_FLOAT) n = bh__value_double(d->api, x);
    else if (type == BH_T_BOOL) n = bh__value_bool(d->api, b);
    else n = bh__value_new(d->api, type);
    dec_emit(d, n);
}

/* CBOR negative integers carry n for the value -1 - n; beyond int64 either
 * way they become the wide kinds. */
static void dec_int(cbor_dec_t *d, bool neg, uint64_t v)
{
    if (dec_begin(d)) dec_emit(d, bh__value_wide(d->api, neg, v));
}

static void cb_uint8(void *c, uint8_t v) { dec_int(c, false, v); }
static void cb_uint16(void *c, uint16_t v) { dec_int(c, false, v); }
static void cb_uint32(void *c, uint32_t v) { dec_int(c, false, v); }
static void cb_uint64(void *c, uint64_t v) { dec_int(c, false, v); }
static void cb_negint8(void *c, uint8_t v) { dec_int(c, true, v); }
static void cb_negint16(void *c, uint16_t v) { dec_int(c, true, v); }
static void cb_negint32(void *c, uint32_t v) { dec_int(c, true, v); }
static void cb_negint64(void *c, uint64_t v) { dec_int(c, true, v); }

/* A bignum's magnitude: up to 64 bits an ordinary (or wide) integer, as
 * cbor2 would have sent it; beyond, a bignum node keeping its bytes. */
static bh_value_t *bignum(cbor_dec_t *d, int tag, const unsigned char *p, size_t len)
{
    uint64_t mag = 0;
    while (len && !*p) p++, len--;
    if (len > 8) return bh__value_bignum(d->api, tag == 3, p, len);
    for (size_t i = 0; i < len; i++) mag = mag << 8 | p[i];
    return bh__value_wide(d->api, tag == 3, mag);
}
static void cb_float(void *c, float v) { dec_scalar(c, BH_T_FLOAT, 0, v, false); }
static void cb_double(void *c, double v) { dec_scalar(c, BH_T_FLOAT, 0, v, false); }
static void cb_null(void *c) { dec_scalar(c, BH_T_NULL, 0, 0, false); }
static void cb_bool(void *c, bool v) { dec_scalar(c, BH_T_BOOL, 0, 0, v); }

static void dec_chunk(cbor_dec_t *d, frame_t *f, cbor_data data, size_t len)
{
    if (len == 0) return; /* f->buf may still be NULL */
    if (len > f->bcap - f->blen) {
        size_t cap = f->bcap ? f->bcap : 64;
        char *nb;
        while (cap - f->blen < len) {
            if (cap > SIZE_MAX / 2) {
                dec_fail(d, "out of memory");
                return;
            }
            cap *= 2;
        }
        nb = realloc(f->buf, cap);
        if (!nb) {
            dec_fail(d, "out of memory");
            return;
        }
        f->buf = nb;
        f->bcap = cap;
    }
    memcpy(f->buf + f->blen, data, len);
    f->blen += len;
}

static void dec_string(cbor_dec_t *d, bh_type_t type, cbor_data data, size_t len)
{
    frame_t *f = dec_top(d);
    if (d->failed) return;
    if (type == BH_T_STRING && !bh__utf8_valid(data, len)) {
        dec_fail(d, "text string is not valid UTF-8");
        return;
    }
    if (f && f->kind == (type == BH_T_STRING ? F_TEXT : F_BYTES)) {
        dec_chunk(d, f, data, len);
        return;
    }
    if (!dec_begin(d)) return;
    if (type == BH_T_BYTES && d->item_bignum) dec_emit(d, bignum(d, d->item_bignum, data, len));
    else dec_emit(d, bh__value_blob(d->api, type, data, len));
}

static void cb_bytes(void *c, cbor_data data, size_t len) { dec_string(c, BH_T_BYTES, data, len); }
static void cb_text(void *c, cbor_data data, size_t len) { dec_string(c, BH_T_STRING, data, len); }

static frame_t *dec_push(cbor_dec_t *d, enum frame_kind kind, bool indefinite, uint64_t left)
{
    frame_t *f;
    if (kind == F_ARRAY || kind == F_MAP) {
        if (d->depth >= d->lim.max_depth) {
            dec_fail(d, "nesting deeper than %zu levels (max_depth)", d->lim.max_depth);
            return NULL;
        }
    }
    f = &d->stack[d->depth];
    *f = (frame_t){.kind = kind, .indefinite = indefinite, .left = left};
    if (kind == F_ARRAY || kind == F_MAP) {
        f->node = bh__value_new(d->api, kind == F_ARRAY ? BH_T_ARRAY : BH_T_MAP);
        if (!f->node) {
            dec_fail(d, "out of memory");
            return NULL;
        }
    }
    d->depth++;
    return f;
}

static void dec_string_start(cbor_dec_t *d, enum frame_kind kind)
{
    frame_t *f;
    if (!dec_begin(d)) return;
    f = dec_push(d, kind, true, 0);
    if (f && kind == F_BYTES) f->bignum = d->item_bignum;
}

static void cb_bytes_start(void *c) { dec_string_start(c, F_BYTES); }
static void cb_text_start(void *c) { dec_string_start(c, F_TEXT); }

/* Every item takes at least one byte, so a declared count larger than what
 * is left is a lie; refusing it early keeps garbage from reserving memory. */
static void dec_container(cbor_dec_t *d, enum frame_kind kind, bool indefinite, size_t count)
{
    size_t left = d->len - d->pos;
    if (!dec_begin(d)) return;
    if (!indefinite && (kind == F_MAP ? count > left / 2 : count > left)) {
        dec_fail(d, "truncated input: %s declares %zu %s but only %zu bytes follow",
                 kind == F_MAP ? "map" : "array", count, kind == F_MAP ? "pairs" : "items", left);
        return;
    }
    if (!indefinite && kind == F_MAP && count > d->lim.max_map_entries) {
        dec_fail(d, "map declares %zu pairs, more than %zu (max_map_entries)", count,
                 d->lim.max_map_entries);
        return;
    }
    if (!dec_push(d, kind, indefinite, count)) return;
    if (!indefinite && count == 0) {
        frame_t *f = dec_top(d);
        bh_value_t *n = f->node;
        f->node = NULL;
        d->depth--;
        dec_emit(d, n);
    }
}

static void cb_array(void *c, size_t n) { dec_container(c, F_ARRAY, false, n); }
static void cb_indef_array(void *c) { dec_container(c, F_ARRAY, true, 0); }
static void cb_map(void *c, size_t n) { dec_container(c, F_MAP, false, n); }
static void cb_indef_map(void *c) { dec_container(c, F_MAP, true, 0); }

/* Tags are dropped (the payload gets the tagged item), but for bignums
 * (2, 3) on a byte string, which become integers. */
static void cb_tag(void *c, uint64_t tag)
{
    cbor_dec_t *d = c;
    frame_t *f = dec_top(d);
    if (f && (f->kind == F_BYTES || f->kind == F_TEXT))
        dec_fail(d, "tag inside an indefinite-length string");
    d->tagged = true;
    d->bignum = tag == 2 || tag == 3 ? (int)tag : 0;
}

static void cb_undefined(void *c) { cb_null(c); }

static void cb_break(void *c)
{
    cbor_dec_t *d = c;
    frame_t *f = dec_top(d);
    bh_value_t *n;
    if (d->failed) return;
    if (d->tagged) {
        dec_fail(d, "tag without a data item");
        return;
    }
    if (!f || !f->indefinite) {
        dec_fail(d, "unexpected break");
        return;
    }
    if (f->kind == F_MAP && f->key) {
        dec_fail(d, "map key without a value");
        return;
    }
    if (f->kind == F_ARRAY || f->kind == F_MAP) {
        n = f->node;
        f->node = NULL;
    } else if (f->bignum) {
        n = bignum(d, f->bignum, (const unsigned char *)f->buf, f->blen);
        free(f->buf);
        f->buf = NULL;
    } else {
        n = bh__value_blob(d->api, f->kind == F_TEXT ? BH_T_STRING : BH_T_BYTES, f->buf, f->blen);
        free(f->buf);
        f->buf = NULL;
    }
    d->depth--;
    dec_emit(d, n);
}

static const struct cbor_callbacks dec_callbacks = {
    .uint8 = cb_uint8,
    .uint16 = cb_uint16,
    .uint32 = cb_uint32,
    .uint64 = cb_uint64,
    .negint8 = cb_negint8,
    .negint16 = cb_negint16,
    .negint32 = cb_negint32,
    .negint64 = cb_negint64,
    .byte_string_start = cb_bytes_start,
    .byte_string = cb_bytes,
    .string = cb_text,
    .string_start = cb_text_start,
    .indef_array_start = cb_indef_array,
    .array_start = cb_array,
    .indef_map_start = cb_indef_map,
    .map_start = cb_map,
    .tag = cb_tag,
    .float2 = cb_float,
    .float4 = cb_float,
    .float8 = cb_double,
    .undefined = cb_undefined,
    .null = cb_null,
    .boolean = cb_bool,
    .indef_break = cb_break,
};

/* Simple values other than false/true/null/undefined: libcbor 0.8's
 * streaming decoder reports them as errors, so their heads (major type 7,
 * 0xe0-0xf3 and 0xf8 xx) are read here. True when the item at d->pos was
 * one (consumed, or d->failed). */
static bool simple_value(cbor_dec_t *d, const unsigned char *body, size_t len)
{
    unsigned b = body[d->pos], v;
    if (b >= 0xe0 && b <= 0xf3) {
        v = b - 0xe0;
    } else if (b == 0xf8) {
        if (len - d->pos < 2) {
            dec_fail(d, "truncated item");
            return true;
        }
        v = body[d->pos + 1];
        if (v < 32) {
            dec_fail(d, "simple value %u in a two-byte head is malformed", v);
            return true;
        }
    } else {
        return false;
    }
    if (dec_begin(d)) dec_emit(d, bh__value_simple(d->api, v));
    if (!d->failed) d->pos += b == 0xf8 ? 2 : 1;
    return true;
}

bh_value_t *bh__cbor_decode(const bh_api_t *api, const void *data, size_t len, char *err,
                            size_t errlen)
{
    const unsigned char *body = data;
    /* ~6 KiB: kept off worker stacks; only the header is zeroed (clearing
     * the whole stack cost a fifth of a no-op message's instructions). */
    cbor_dec_t *d = malloc(sizeof *d);
    bh_value_t *root;
    if (!d) {
        bh__value_err(err, errlen, "out of memory decoding CBOR");
        return NULL;
    }
    memset(d, 0, offsetof(cbor_dec_t, stack));
    d->lim = bh__value_limits();
    d->api = api;
    d->len = len;
    d->err = err;
    d->errlen = errlen;
    while (!d->root && !d->failed) {
        struct cbor_decoder_result r;
        if (d->pos == len) {
            dec_fail(d, "truncated input: it ends inside an item");
            break;
        }
        if (simple_value(d, body, len)) continue;
        r = cbor_stream_decode(body + d->pos, len - d->pos, &dec_callbacks, d);
        if (r.status == CBOR_DECODER_NEDATA) {
            dec_fail(d, "truncated item");
        } else if (r.status == CBOR_DECODER_ERROR) {
            dec_fail(d, "malformed or unsupported item (initial byte 0x%02x)", body[d->pos]);
        } else if (!d->failed) {
            d->pos += r.read;
        }
    }
    if (!d->failed && d->pos != len) dec_fail(d, "trailing garbage after the top-level item");
    root = d->failed ? NULL : d->root;
    if (d->failed) {
        bh__value_free(d->root);
        for (size_t i = 0; i < d->depth; i++) {
            bh__value_free(d->stack[i].node);
            bh__value_free(d->stack[i].key);
            free(d->stack[i].buf);
        }
    }
    free(d);
    return root;
}

/* ------------------------------------------------------------------------ */
/* CBOR encoding                                                            */

typedef struct buf {
    unsigned char *p;
    size_t len, cap;
} buf_t;

static bool buf_reserve(buf_t *b, size_t more)
{
    size_t cap = b->cap ? b->cap : 256;
    unsigned char *np;
    if (more > SIZE_MAX - b->len) return false;
    if (b->len + more <= b->cap) return true;
    while (cap < b->len + more) {
        if (cap > SIZE_MAX / 2) return false;
        cap *= 2;
    }
    np = realloc(b->p, cap);
    if (!np) return false;
    b->p = np;
    b->cap = cap;
    return true;
}

/* A CBOR head (major type + argument) is at most 9 bytes. */
#define HEAD_MAX 9

static int to_cbor(buf_t *b, const bh_value_t *v, int depth, char *err, size_t errlen)
{
    int type = bh__value_kind(v);
    bool bv = false;
    uint64_t w = 0;
    unsigned simple = 0;
    int64_t i = 0;
    double d = 0;
    const void *p;
    size_t len = 0;
    unsigned char *at;
    size_t room;
    if (!buf_reserve(b, HEAD_MAX)) goto oom;
    at = b->p + b->len;
    room = b->cap - b->len;
    switch (type) {
    case BH_T_NULL:
        b->len += cbor_encode_null(at, room);
        break;
    case BH_T_BOOL:
        bh__value_as_bool(v, &bv);
        b->len += cbor_encode_bool(bv, at, room);
        break;
    case BH_T_INT:
        /* libcbor picks the shortest head, as cbor2 does. */
        bh__value_as_int(v, &i);
        if (i >= 0) b->len += cbor_encode_uint((uint64_t)i, at, room);
        else b->len += cbor_encode_negint((uint64_t)(-1 - i), at, room);
        break;
    case BH__K_UINT:
    case BH__K_NEGINT:
        bh__value_as_wide(v, &bv, &w);
        b->len += bv ? cbor_encode_negint(w, at, room) : cbor_encode_uint(w, at, room);
        break;
    case BH__K_SIMPLE:
        bh__value_as_simple(v, &simple);
        b->len += cbor_encode_ctrl((uint8_t)simple, at, room);
        break;
    case BH__K_BIGNUM:
    case BH__K_NEGBIGNUM:
        p = bh__value_as_bignum(v, &bv, &len);
        b->len += cbor_encode_tag(bv ? 3 : 2, at, room);
        if (!buf_reserve(b, HEAD_MAX + len)) goto oom;
        b->len += cbor_encode_bytestring_start(len, b->p + b->len, b->cap - b->len);
        memcpy(b->p + b->len, p, len);
        b->len += len;
        break;
    case BH_T_FLOAT:
        /* What Python's cbor2 emits by default (canonical=False): finite
         * floats always as float64, NaN and infinities as the 3-byte half
         * forms f97e00 / f97c00 / f9fc00. Byte-exact with cbor2 peers. */
        bh__value_as_double(v, &d);
        if (isnan(d)) b->len += cbor_encode_half(NAN, at, room);
        else if (isinf(d)) b->len += cbor_encode_half(d > 0 ? INFINITY : -INFINITY, at, room);
        else b->len += cbor_encode_double(d, at, room);
        break;
    case BH_T_STRING:
    case BH_T_BYTES:
        p = type == BH_T_STRING ? (const void *)bh__value_as_str(v, &len)
                                : bh__value_as_bytes(v, &len);
        if (!buf_reserve(b, HEAD_MAX + len)) goto oom;
        at = b->p + b->len;
        room = b->cap - b->len;
        b->len += type == BH_T_STRING ? cbor_encode_string_start(len, at, room)
                                      : cbor_encode_bytestring_start(len, at, room);
        if (len) memcpy(b->p + b->len, p, len);
        b->len += len;
        break;
    case BH_T_ARRAY:
        if (depth > BH__VALUE_MAX_DEPTH) goto deep;
        len = bh__value_len(v);
        b->len += cbor_encode_array_start(len, at, room);
        for (size_t k = 0; k < len; k++) {
            int rc = to_cbor(b, bh__value_array_at(v, k), depth + 1, err, errlen);
            if (rc != BH_OK) return rc;
        }
        break;
    case BH_T_MAP:
        if (depth > BH__VALUE_MAX_DEPTH) goto deep;
        len = bh__value_len(v);
        b->len += cbor_encode_map_start(len + bh__value_map_others(v), at, room);
        for (size_t k = 0; k < len; k++) {
            const char *key;
            size_t klen;
            const bh_value_t *c = bh__value_map_at(v, k, &key, &klen);
            int rc;
            if (!buf_reserve(b, HEAD_MAX + klen)) goto oom;
            b->len += cbor_encode_string_start(klen, b->p + b->len, b->cap - b->len);
            memcpy(b->p + b->len, key, klen);
            b->len += klen;
            rc = to_cbor(b, c, depth + 1, err, errlen);
            if (rc != BH_OK) return rc;
        }
        /* Non-text keys last: a CBOR map's order carries no meaning. */
        for (size_t k = 0; k < bh__value_map_others(v); k++) {
            const bh_value_t *key;
            const bh_value_t *c = bh__value_map_other_at(v, k, &key);
            int rc = to_cbor(b, key, depth + 1, err, errlen);
            if (rc == BH_OK) rc = to_cbor(b, c, depth + 1, err, errlen);
            if (rc != BH_OK) return rc;
        }
        break;
    default:
        bh__value_err(err, errlen, "cannot encode a value of type %d", (int)type);
        return BH_EINVAL;
    }
    return BH_OK;
oom:
    bh__value_err(err, errlen, "out of memory encoding CBOR");
    return BH_ENOMEM;
deep:
    bh__value_err(err, errlen, "payload nests deeper than %d levels", BH__VALUE_MAX_DEPTH);
    return BH_EENCODE;
}

int bh__cbor_encode(const bh_value_t *v, unsigned char **out, size_t *len, char *err, size_t errlen)
{
    buf_t b = {0};
    int rc = to_cbor(&b, v, 1, err, errlen);
    if (rc != BH_OK) {
        free(b.p);
        *out = NULL;
        *len = 0;
        return rc;
    }
    *out = b.p;
    *len = b.len;
    return BH_OK;
}
