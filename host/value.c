/* value.c -- the payload value tree behind bh_value_t, and the CBOR/JSON codec.
 *
 * A node is a private struct whose first member is the public bh_value_t, so
 * a node pointer is a bh_value_t pointer and `pub.api` is the table the node
 * was made with. Maps are vectors of entries (insertion order is the wire
 * order) with a hash index once they grow, so that lookups and decoding a
 * map with many keys stay linear. Every node knows its container (`parent`):
 * that is how map_set/array_push refuse cycles and values owned twice.
 *
 * CBOR is decoded with libcbor's streaming decoder feeding our own tree
 * builder, not with cbor_load(): libcbor 0.8's cbor_load allocates a
 * declared array/map length up front, so 9 bytes declaring 2^40 items make
 * it ask for terabytes. Here a declared length is checked against the bytes
 * that remain, nesting is capped at MAX_DEPTH, and no recursion depends on
 * the input before that cap applies. */
#include "value.h"

#include <cbor.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Containers nested deeper than this are refused, decoding and encoding:
 * free/copy/encode recurse, and garbage must not be able to blow the stack. */
#define MAX_DEPTH 64
/* Maps with more entries than this get a hash index. */
#define INDEX_MIN 8
#define NOPOS ((size_t)-1)

typedef struct node node_t;

typedef struct entry {
    char *key; /* NUL-terminated UTF-8 */
    size_t klen;
    node_t *val;
} entry_t;

struct node {
    bh_value_t pub; /* first: (bh_value_t *)node is valid both ways */
    bh_type_t type;
    node_t *parent; /* the container holding this node, or NULL */
    union {
        bool b;
        int64_t i;
        double d;
        struct {
            char *p; /* NUL-terminated (also for bytes), never NULL */
            size_t len;
        } s; /* BH_T_STRING, BH_T_BYTES */
        struct {
            node_t **v;
            size_t n, cap;
        } a; /* BH_T_ARRAY */
        struct {
            entry_t *v;
            size_t n, cap;
            size_t *index;    /* slots hold entry position + 1; 0 = empty */
            size_t index_cap; /* a power of two, or 0 without an index */
        } m;                  /* BH_T_MAP */
    } u;
};

static node_t *node(bh_value_t *v) { return (node_t *)v; }
static const node_t *cnode(const bh_value_t *v) { return (const node_t *)v; }

static void set_err(char *err, size_t errlen, const char *fmt, ...) BH_PRINTF(3, 4);
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0) return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const char *type_name(bh_type_t t)
{
    switch (t) {
    case BH_T_NULL:
        return "null";
    case BH_T_BOOL:
        return "a boolean";
    case BH_T_INT:
        return "an integer";
    case BH_T_FLOAT:
        return "a float";
    case BH_T_STRING:
        return "a string";
    case BH_T_BYTES:
        return "a byte string";
    case BH_T_ARRAY:
        return "an array";
    case BH_T_MAP:
        return "a map";
    default:
        return "nothing";
    }
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, <= U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t len)
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

/* Double the capacity of a vector of `elem`-sized items. */
static bool grow(void **p, size_t *cap, size_t elem)
{
    size_t ncap = *cap ? *cap * 2 : 4;
    void *np;
    if (ncap < *cap || ncap > SIZE_MAX / elem) return false;
    np = realloc(*p, ncap * elem);
    if (!np) return false;
    *p = np;
    *cap = ncap;
    return true;
}

static char *mem_dup(const void *p, size_t len)
{
    char *s;
    if (len == SIZE_MAX) return NULL;
    s = malloc(len + 1);
    if (!s) return NULL;
    if (len) memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

/* ------------------------------------------------------------------------ */
/* Nodes                                                                    */

static node_t *node_new(const bh_api_t *api, bh_type_t type)
{
    node_t *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->pub.api = api;
    n->type = type;
    return n;
}

/* A string or byte string node; `p` is copied. */
static node_t *blob_new(const bh_api_t *api, bh_type_t type, const void *p, size_t len)
{
    node_t *n = node_new(api, type);
    if (!n) return NULL;
    n->u.s.p = mem_dup(p, len);
    if (!n->u.s.p) {
        free(n);
        return NULL;
    }
    n->u.s.len = len;
    return n;
}

static void node_free(node_t *n)
{
    if (!n) return;
    switch (n->type) {
    case BH_T_STRING:
    case BH_T_BYTES:
        free(n->u.s.p);
        break;
    case BH_T_ARRAY:
        for (size_t i = 0; i < n->u.a.n; i++) node_free(n->u.a.v[i]);
        free(n->u.a.v);
        break;
    case BH_T_MAP:
        for (size_t i = 0; i < n->u.m.n; i++) {
            free(n->u.m.v[i].key);
            node_free(n->u.m.v[i].val);
        }
        free(n->u.m.v);
        free(n->u.m.index);
        break;
    default:
        break;
    }
    free(n);
}

/* FNV-1a. */
static size_t hash_key(const char *key, size_t klen)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < klen; i++) {
        h ^= (unsigned char)key[i];
        h *= 0x100000001b3u;
    }
    return (size_t)h;
}

static size_t map_find(const node_t *m, const char *key, size_t klen)
{
    const entry_t *v = m->u.m.v;
    if (m->u.m.index) {
        size_t mask = m->u.m.index_cap - 1;
        for (size_t s = hash_key(key, klen) & mask;; s = (s + 1) & mask) {
            size_t e = m->u.m.index[s];
            if (e == 0) return NOPOS;
            if (v[e - 1].klen == klen && memcmp(v[e - 1].key, key, klen) == 0) return e - 1;
        }
    }
    for (size_t i = 0; i < m->u.m.n; i++)
        if (v[i].klen == klen && memcmp(v[i].key, key, klen) == 0) return i;
    return NOPOS;
}

static void index_put(node_t *m, size_t pos)
{
    size_t mask = m->u.m.index_cap - 1;
    size_t s = hash_key(m->u.m.v[pos].key, m->u.m.v[pos].klen) & mask;
    while (m->u.m.index[s]) s = (s + 1) & mask;
    m->u.m.index[s] = pos + 1;
}

/* Called after appending an entry. The index only speeds lookups up: when it
 * cannot be allocated, the map falls back to a linear search. */
static void map_reindex(node_t *m)
{
    size_t n = m->u.m.n, cap = 16;
    if (n <= INDEX_MIN) return;
    if (m->u.m.index && n <= m->u.m.index_cap / 2) {
        index_put(m, n - 1);
        return;
    }
    while (cap / 2 < n) cap *= 2;
    free(m->u.m.index);
    m->u.m.index = calloc(cap, sizeof *m->u.m.index);
    m->u.m.index_cap = m->u.m.index ? cap : 0;
    if (!m->u.m.index) return;
    for (size_t i = 0; i < n; i++) index_put(m, i);
}

/* map[key] = val. Takes ownership of key (malloc'd, klen bytes) and val,
 * also on failure. An existing key keeps its place. */
static int map_put(node_t *m, char *key, size_t klen, node_t *val)
{
    size_t i = map_find(m, key, klen);
    if (i != NOPOS) {
        free(key);
        node_free(m->u.m.v[i].val);
        m->u.m.v[i].val = val;
        val->parent = m;
        return BH_OK;
    }
    if (m->u.m.n == m->u.m.cap && !grow((void **)&m->u.m.v, &m->u.m.cap, sizeof(entry_t))) {
        free(key);
        node_free(val);
        return BH_ENOMEM;
    }
    m->u.m.v[m->u.m.n++] = (entry_t){key, klen, val};
    val->parent = m;
    map_reindex(m);
    return BH_OK;
}

/* Append val; takes ownership, also on failure. */
static int array_put(node_t *a, node_t *val)
{
    if (a->u.a.n == a->u.a.cap && !grow((void **)&a->u.a.v, &a->u.a.cap, sizeof(node_t *))) {
        node_free(val);
        return BH_ENOMEM;
    }
    a->u.a.v[a->u.a.n++] = val;
    val->parent = a;
    return BH_OK;
}

static node_t *node_copy(const bh_api_t *api, const node_t *src)
{
    node_t *n;
    switch (src->type) {
    case BH_T_STRING:
    case BH_T_BYTES:
        return blob_new(api, src->type, src->u.s.p, src->u.s.len);
    default:
        break;
    }
    n = node_new(api, src->type);
    if (!n) return NULL;
    if (src->type == BH_T_ARRAY) {
        for (size_t i = 0; i < src->u.a.n; i++) {
            node_t *c = node_copy(api, src->u.a.v[i]);
            if (!c || array_put(n, c) != BH_OK) goto fail;
        }
    } else if (src->type == BH_T_MAP) {
        for (size_t i = 0; i < src->u.m.n; i++) {
            const entry_t *e = &src->u.m.v[i];
            node_t *c = node_copy(api, e->val);
            char *k = c ? mem_dup(e->key, e->klen) : NULL;
            if (!k) {
                node_free(c);
                goto fail;
            }
            if (map_put(n, k, e->klen, c) != BH_OK) goto fail;
        }
    } else {
        n->u = src->u; /* scalars */
    }
    return n;
fail:
    node_free(n);
    return NULL;
}

static bool node_equal(const node_t *a, const node_t *b)
{
    if (a == b) return true;
    if (!a || !b || a->type != b->type) return false;
    switch (a->type) {
    case BH_T_NULL:
        return true;
    case BH_T_BOOL:
        return a->u.b == b->u.b;
    case BH_T_INT:
        return a->u.i == b->u.i;
    case BH_T_FLOAT:
        return a->u.d == b->u.d || (isnan(a->u.d) && isnan(b->u.d));
    case BH_T_STRING:
    case BH_T_BYTES:
        return a->u.s.len == b->u.s.len && memcmp(a->u.s.p, b->u.s.p, a->u.s.len) == 0;
    case BH_T_ARRAY:
        if (a->u.a.n != b->u.a.n) return false;
        for (size_t i = 0; i < a->u.a.n; i++)
            if (!node_equal(a->u.a.v[i], b->u.a.v[i])) return false;
        return true;
    case BH_T_MAP:
        /* In order: the order is part of what goes on the wire. */
        if (a->u.m.n != b->u.m.n) return false;
        for (size_t i = 0; i < a->u.m.n; i++) {
            const entry_t *x = &a->u.m.v[i], *y = &b->u.m.v[i];
            if (x->klen != y->klen || memcmp(x->key, y->key, x->klen) != 0 ||
                !node_equal(x->val, y->val))
                return false;
        }
        return true;
    default:
        return false;
    }
}

bool bh__value_equal(const bh_value_t *a, const bh_value_t *b)
{
    return node_equal(cnode(a), cnode(b));
}

/* ------------------------------------------------------------------------ */
/* The API slots                                                            */

static bh_type_t api_type(const bh_value_t *v) { return v ? cnode(v)->type : BH_T_NONE; }

static const bh_value_t *api_map_get(const bh_value_t *map, const char *key)
{
    const node_t *m = cnode(map);
    size_t i;
    if (!m || m->type != BH_T_MAP || !key) return NULL;
    i = map_find(m, key, strlen(key));
    return i == NOPOS ? NULL : &m->u.m.v[i].val->pub;
}

static size_t api_len(const bh_value_t *v)
{
    const node_t *n = cnode(v);
    if (!n) return 0;
    switch (n->type) {
    case BH_T_STRING:
    case BH_T_BYTES:
        return n->u.s.len;
    case BH_T_ARRAY:
        return n->u.a.n;
    case BH_T_MAP:
        return n->u.m.n;
    default:
        return 0;
    }
}

static const bh_value_t *api_array_at(const bh_value_t *arr, size_t i)
{
    const node_t *a = cnode(arr);
    if (!a || a->type != BH_T_ARRAY || i >= a->u.a.n) return NULL;
    return &a->u.a.v[i]->pub;
}

static const char *api_map_key_at(const bh_value_t *map, size_t i)
{
    const node_t *m = cnode(map);
    if (!m || m->type != BH_T_MAP || i >= m->u.m.n) return NULL;
    return m->u.m.v[i].key;
}

static const bh_value_t *api_map_value_at(const bh_value_t *map, size_t i)
{
    const node_t *m = cnode(map);
    if (!m || m->type != BH_T_MAP || i >= m->u.m.n) return NULL;
    return &m->u.m.v[i].val->pub;
}

static int api_as_bool(const bh_value_t *v, bool *out)
{
    const node_t *n = cnode(v);
    if (!n) return BH_ENOENT;
    if (n->type != BH_T_BOOL) return BH_ETYPE;
    if (out) *out = n->u.b;
    return BH_OK;
}

static int api_as_int(const bh_value_t *v, int64_t *out)
{
    const node_t *n = cnode(v);
    if (!n) return BH_ENOENT;
    if (n->type != BH_T_INT) return BH_ETYPE;
    if (out) *out = n->u.i;
    return BH_OK;
}

static int api_as_double(const bh_value_t *v, double *out)
{
    const node_t *n = cnode(v);
    if (!n) return BH_ENOENT;
    if (n->type == BH_T_FLOAT) {
        if (out) *out = n->u.d;
    } else if (n->type == BH_T_INT) {
        if (out) *out = (double)n->u.i;
    } else {
        return BH_ETYPE;
    }
    return BH_OK;
}

static const char *api_as_str(const bh_value_t *v, size_t *len)
{
    const node_t *n = cnode(v);
    if (!n || n->type != BH_T_STRING) return NULL;
    if (len) *len = n->u.s.len;
    return n->u.s.p;
}

static const void *api_as_bytes(const bh_value_t *v, size_t *len)
{
    const node_t *n = cnode(v);
    if (!n || n->type != BH_T_BYTES) return NULL;
    if (len) *len = n->u.s.len;
    return n->u.s.p;
}

static bh_value_t *pub_of(node_t *n) { return n ? &n->pub : NULL; }

static bh_value_t *api_map_new(bh_ctx_t *ctx) { return pub_of(node_new(ctx->api, BH_T_MAP)); }
static bh_value_t *api_array_new(bh_ctx_t *ctx) { return pub_of(node_new(ctx->api, BH_T_ARRAY)); }
static bh_value_t *api_null_new(bh_ctx_t *ctx) { return pub_of(node_new(ctx->api, BH_T_NULL)); }

static bh_value_t *api_bool_new(bh_ctx_t *ctx, bool b)
{
    node_t *n = node_new(ctx->api, BH_T_BOOL);
    if (n) n->u.b = b;
    return pub_of(n);
}

static bh_value_t *api_int_new(bh_ctx_t *ctx, int64_t i)
{
    node_t *n = node_new(ctx->api, BH_T_INT);
    if (n) n->u.i = i;
    return pub_of(n);
}

static bh_value_t *api_double_new(bh_ctx_t *ctx, double d)
{
    node_t *n = node_new(ctx->api, BH_T_FLOAT);
    if (n) n->u.d = d;
    return pub_of(n);
}

static bh_value_t *api_str_new(bh_ctx_t *ctx, const char *s, size_t len)
{
    if (!s && len) return NULL;
    if (len && !utf8_valid((const unsigned char *)s, len)) return NULL;
    return pub_of(blob_new(ctx->api, BH_T_STRING, s, len));
}

static bh_value_t *api_bytes_new(bh_ctx_t *ctx, const void *p, size_t len)
{
    if (!p && len) return NULL;
    return pub_of(blob_new(ctx->api, BH_T_BYTES, p, len));
}

static bh_value_t *api_copy(bh_ctx_t *ctx, const bh_value_t *v)
{
    return v ? pub_of(node_copy(ctx->api, cnode(v))) : NULL;
}

/* True when putting v into container c would make v owned twice or create a
 * cycle. Such a v is left alone: freeing it would free part of another tree
 * (or the container itself). */
static bool misplaced(const node_t *c, const node_t *v)
{
    if (v->parent) return true;
    for (const node_t *p = c; p; p = p->parent)
        if (p == v) return true;
    return false;
}

static int api_map_set(bh_value_t *map, const char *key, bh_value_t *v)
{
    node_t *m = node(map), *n = node(v);
    size_t klen;
    char *k;
    if (!n) return BH_ENOMEM;
    if (m && misplaced(m, n)) return BH_EINVAL;
    if (!m || m->type != BH_T_MAP || !key) {
        node_free(n);
        return BH_EINVAL;
    }
    klen = strlen(key);
    if (!utf8_valid((const unsigned char *)key, klen)) {
        node_free(n);
        return BH_EINVAL;
    }
    k = mem_dup(key, klen);
    if (!k) {
        node_free(n);
        return BH_ENOMEM;
    }
    return map_put(m, k, klen, n);
}

static int api_array_push(bh_value_t *arr, bh_value_t *v)
{
    node_t *a = node(arr), *n = node(v);
    if (!n) return BH_ENOMEM;
    if (a && misplaced(a, n)) return BH_EINVAL;
    if (!a || a->type != BH_T_ARRAY) {
        node_free(n);
        return BH_EINVAL;
    }
    return array_put(a, n);
}

static void api_value_free(bh_value_t *v)
{
    node_t *n = node(v);
    /* A value inside a container belongs to it: freeing it alone would leave
     * a dangling entry, so that mistake is ignored. */
    if (!n || n->parent) return;
    node_free(n);
}

void bh__value_fill_api(bh_api_t *api)
{
    api->type = api_type;
    api->map_get = api_map_get;
    api->len = api_len;
    api->array_at = api_array_at;
    api->map_key_at = api_map_key_at;
    api->map_value_at = api_map_value_at;
    api->as_bool = api_as_bool;
    api->as_int = api_as_int;
    api->as_double = api_as_double;
    api->as_str = api_as_str;
    api->as_bytes = api_as_bytes;
    api->map_new = api_map_new;
    api->array_new = api_array_new;
    api->null_new = api_null_new;
    api->bool_new = api_bool_new;
    api->int_new = api_int_new;
    api->double_new = api_double_new;
    api->str_new = api_str_new;
    api->bytes_new = api_bytes_new;
    api->copy = api_copy;
    api->map_set = api_map_set;
    api->array_push = api_array_push;
    api->value_free = api_value_free;
}

/* ------------------------------------------------------------------------ */
/* Content types                                                            */

const char *bh__format_content_type(bh_format_t fmt)
{
    switch (fmt) {
    case BH_FORMAT_CBOR:
        return BH__CT_CBOR;
    case BH_FORMAT_JSON:
        return BH__CT_JSON;
    default:
        return NULL;
    }
}

bool bh__content_type_is_cbor(const char *ct)
{
    static const char want[] = BH__CT_CBOR;
    const size_t wlen = sizeof want - 1;
    if (!ct) return false;
    while (*ct == ' ' || *ct == '\t') ct++;
    if (strncasecmp(ct, want, wlen) != 0) return false;
    ct += wlen;
    while (*ct == ' ' || *ct == '\t') ct++;
    return *ct == '\0' || *ct == ';';
}

/* ------------------------------------------------------------------------ */
/* CBOR decoding: libcbor's streaming decoder drives this builder, one data  */
/* item header per cbor_stream_decode() call.                               */

enum frame_kind { F_ARRAY, F_MAP, F_BYTES, F_TEXT };

typedef struct frame {
    enum frame_kind kind;
    bool indefinite;
    uint64_t left; /* definite containers: items (arrays) or pairs (maps) to come */
    node_t *node;  /* the container being filled */
    char *key;     /* maps: the key waiting for its value, or NULL */
    size_t klen;
    char *buf; /* indefinite strings: the chunks so far */
    size_t blen, bcap;
} frame_t;

typedef struct cbor_dec {
    const bh_api_t *api;
    size_t len; /* body length */
    size_t pos; /* offset of the item being decoded, for messages */
    size_t depth;
    bool tagged; /* a tag was read: a data item must follow */
    bool failed;
    node_t *root;
    char *err;
    size_t errlen;
    /* Last, and not zeroed: dec_push writes each frame whole before use. */
    frame_t stack[MAX_DEPTH + 1]; /* containers, plus one string on top */
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
    set_err(d->err, d->errlen, "invalid CBOR: %s at byte %zu", why, d->pos);
}

static frame_t *dec_top(cbor_dec_t *d) { return d->depth ? &d->stack[d->depth - 1] : NULL; }

/* Every data item starts here: is an item of this kind allowed now? */
static bool dec_begin(cbor_dec_t *d, bool is_text)
{
    frame_t *f = dec_top(d);
    if (d->failed) return false;
    d->tagged = false;
    if (f && (f->kind == F_BYTES || f->kind == F_TEXT)) {
        dec_fail(d, "indefinite-length string chunk is not a definite string of its type");
        return false;
    }
    if (f && f->kind == F_MAP && !f->key && !is_text) {
        dec_fail(d, "map key is not a text string");
        return false;
    }
    return true;
}

/* A complete item: hand it to the open container, closing every definite
 * container it completes. Takes ownership of n. */
static void dec_emit(cbor_dec_t *d, node_t *n)
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
            if (array_put(f->node, n) != BH_OK) {
                dec_fail(d, "out of memory");
                return;
            }
        } else if (!f->key) { /* a map key; dec_begin made sure it is text */
            f->key = n->u.s.p;
            f->klen = n->u.s.len;
            free(n);
            return;
        } else {
            int rc = map_put(f->node, f->key, f->klen, n);
            f->key = NULL;
            if (rc != BH_OK) {
                dec_fail(d, "out of memory");
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
    node_t *n;
    if (!dec_begin(d, false)) return;
    n = node_new(d->api, type);
    if (n) {
        if (type == BH_T_INT) n->u.i = i;
        else if (type == BH_T_FLOAT) n->u.d = x;
        else if (type == BH_T_BOOL) n->u.b = b;
    }
    dec_emit(d, n);
}

static void dec_uint(cbor_dec_t *d, uint64_t v)
{
    if (v > INT64_MAX) {
        dec_begin(d, false);
        dec_fail(d, "integer out of range");
        return;
    }
    dec_scalar(d, BH_T_INT, (int64_t)v, 0, false);
}

/* CBOR negative integers carry n for the value -1 - n. */
static void dec_negint(cbor_dec_t *d, uint64_t v)
{
    if (v > INT64_MAX) {
        dec_begin(d, false);
        dec_fail(d, "integer out of range");
        return;
    }
    dec_scalar(d, BH_T_INT, -1 - (int64_t)v, 0, false);
}

static void cb_uint8(void *c, uint8_t v) { dec_uint(c, v); }
static void cb_uint16(void *c, uint16_t v) { dec_uint(c, v); }
static void cb_uint32(void *c, uint32_t v) { dec_uint(c, v); }
static void cb_uint64(void *c, uint64_t v) { dec_uint(c, v); }
static void cb_negint8(void *c, uint8_t v) { dec_negint(c, v); }
static void cb_negint16(void *c, uint16_t v) { dec_negint(c, v); }
static void cb_negint32(void *c, uint32_t v) { dec_negint(c, v); }
static void cb_negint64(void *c, uint64_t v) { dec_negint(c, v); }
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
    if (type == BH_T_STRING && !utf8_valid(data, len)) {
        dec_fail(d, "text string is not valid UTF-8");
        return;
    }
    if (f && f->kind == (type == BH_T_STRING ? F_TEXT : F_BYTES)) {
        dec_chunk(d, f, data, len);
        return;
    }
    if (!dec_begin(d, type == BH_T_STRING)) return;
    dec_emit(d, blob_new(d->api, type, data, len));
}

static void cb_bytes(void *c, cbor_data data, size_t len) { dec_string(c, BH_T_BYTES, data, len); }
static void cb_text(void *c, cbor_data data, size_t len) { dec_string(c, BH_T_STRING, data, len); }

static frame_t *dec_push(cbor_dec_t *d, enum frame_kind kind, bool indefinite, uint64_t left)
{
    frame_t *f;
    if (kind == F_ARRAY || kind == F_MAP) {
        if (d->depth >= MAX_DEPTH) {
            dec_fail(d, "nesting deeper than %d levels", MAX_DEPTH);
            return NULL;
        }
    }
    f = &d->stack[d->depth];
    *f = (frame_t){.kind = kind, .indefinite = indefinite, .left = left};
    if (kind == F_ARRAY || kind == F_MAP) {
        f->node = node_new(d->api, kind == F_ARRAY ? BH_T_ARRAY : BH_T_MAP);
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
    if (dec_begin(d, kind == F_TEXT)) dec_push(d, kind, true, 0);
}

static void cb_bytes_start(void *c) { dec_string_start(c, F_BYTES); }
static void cb_text_start(void *c) { dec_string_start(c, F_TEXT); }

/* Every item takes at least one byte, so a declared count larger than what
 * is left is a lie; refusing it early keeps garbage from reserving memory. */
static void dec_container(cbor_dec_t *d, enum frame_kind kind, bool indefinite, size_t count)
{
    size_t left = d->len - d->pos;
    if (!dec_begin(d, false)) return;
    if (!indefinite && (kind == F_MAP ? count > left / 2 : count > left)) {
        dec_fail(d, "truncated input: %s declares %zu %s but only %zu bytes follow",
                 kind == F_MAP ? "map" : "array", count, kind == F_MAP ? "pairs" : "items", left);
        return;
    }
    if (!dec_push(d, kind, indefinite, count)) return;
    if (!indefinite && count == 0) {
        frame_t *f = dec_top(d);
        node_t *n = f->node;
        f->node = NULL;
        d->depth--;
        dec_emit(d, n);
    }
}

static void cb_array(void *c, size_t n) { dec_container(c, F_ARRAY, false, n); }
static void cb_indef_array(void *c) { dec_container(c, F_ARRAY, true, 0); }
static void cb_map(void *c, size_t n) { dec_container(c, F_MAP, false, n); }
static void cb_indef_map(void *c) { dec_container(c, F_MAP, true, 0); }

/* Tags (dates, bignums, ...) are ignored: the payload gets the tagged item. */
static void cb_tag(void *c, uint64_t tag)
{
    cbor_dec_t *d = c;
    frame_t *f = dec_top(d);
    (void)tag;
    if (f && (f->kind == F_BYTES || f->kind == F_TEXT))
        dec_fail(d, "tag inside an indefinite-length string");
    d->tagged = true;
}

static void cb_undefined(void *c) { cb_null(c); }

static void cb_break(void *c)
{
    cbor_dec_t *d = c;
    frame_t *f = dec_top(d);
    node_t *n;
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
    } else {
        n = blob_new(d->api, f->kind == F_TEXT ? BH_T_STRING : BH_T_BYTES, f->buf, f->blen);
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

static node_t *decode_cbor(const bh_api_t *api, const unsigned char *body, size_t len, char *err,
                           size_t errlen)
{
    /* ~6 KiB: kept off worker stacks; only the header is zeroed (clearing
     * the whole stack cost a fifth of a no-op message's instructions). */
    cbor_dec_t *d = malloc(sizeof *d);
    node_t *root;
    if (!d) {
        set_err(err, errlen, "out of memory decoding CBOR");
        return NULL;
    }
    memset(d, 0, offsetof(cbor_dec_t, stack));
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
        node_free(d->root);
        for (size_t i = 0; i < d->depth; i++) {
            node_free(d->stack[i].node);
            free(d->stack[i].key);
            free(d->stack[i].buf);
        }
    }
    free(d);
    return root;
}

/* ------------------------------------------------------------------------ */
/* JSON decoding                                                            */

static int from_json(const bh_api_t *api, json_t *j, int depth, node_t **out, char *err,
                     size_t errlen)
{
    node_t *n = NULL;
    *out = NULL;
    switch (json_typeof(j)) {
    case JSON_OBJECT:
    case JSON_ARRAY:
        if (depth > MAX_DEPTH) {
            set_err(err, errlen, "invalid JSON: nesting deeper than %d levels", MAX_DEPTH);
            return BH_EINVAL;
        }
        n = node_new(api, json_is_object(j) ? BH_T_MAP : BH_T_ARRAY);
        if (!n) break;
        if (json_is_object(j)) {
            const char *key;
            size_t klen;
            json_t *jv;
            json_object_keylen_foreach(j, key, klen, jv)
            {
                node_t *c;
                char *k;
                int rc = from_json(api, jv, depth + 1, &c, err, errlen);
                if (rc != BH_OK) {
                    node_free(n);
                    return rc;
                }
                k = mem_dup(key, klen);
                if (!k) {
                    node_free(c);
                    goto oom;
                }
                if (map_put(n, k, klen, c) != BH_OK) goto oom;
            }
        } else {
            size_t i;
            json_t *jv;
            json_array_foreach(j, i, jv)
            {
                node_t *c;
                int rc = from_json(api, jv, depth + 1, &c, err, errlen);
                if (rc != BH_OK) {
                    node_free(n);
                    return rc;
                }
                if (array_put(n, c) != BH_OK) goto oom;
            }
        }
        break;
    case JSON_STRING:
        n = blob_new(api, BH_T_STRING, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        n = node_new(api, BH_T_INT);
        if (n) n->u.i = json_integer_value(j);
        break;
    case JSON_REAL:
        n = node_new(api, BH_T_FLOAT);
        if (n) n->u.d = json_real_value(j);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        n = node_new(api, BH_T_BOOL);
        if (n) n->u.b = json_is_true(j);
        break;
    case JSON_NULL:
        n = node_new(api, BH_T_NULL);
        break;
    }
    if (!n) goto oom;
    *out = n;
    return BH_OK;
oom:
    node_free(n);
    set_err(err, errlen, "out of memory decoding JSON");
    return BH_ENOMEM;
}

static node_t *decode_json(const bh_api_t *api, const void *body, size_t len, char *err,
                           size_t errlen)
{
    json_error_t je;
    node_t *n;
    /* DECODE_ANY so a scalar top level gets our "expected a map" message;
     * no ALLOW_NUL: strings are also handed out NUL-terminated. */
    json_t *j = json_loadb(body, len, JSON_DECODE_ANY, &je);
    if (!j) {
        set_err(err, errlen, "invalid JSON at line %d column %d: %s", je.line, je.column, je.text);
        return NULL;
    }
    if (from_json(api, j, 1, &n, err, errlen) != BH_OK) n = NULL;
    json_decref(j);
    return n;
}

int bh__payload_decode(const bh_api_t *api, const char *content_type, const void *body, size_t len,
                       bh_value_t **out, char *err, size_t errlen)
{
    node_t *n;
    *out = NULL;
    if (len == 0) return BH_OK;
    if (!body) {
        set_err(err, errlen, "no body but a length of %zu", len);
        return BH_EINVAL;
    }
    n = bh__content_type_is_cbor(content_type) ? decode_cbor(api, body, len, err, errlen)
                                               : decode_json(api, body, len, err, errlen);
    if (!n) return BH_EINVAL;
    if (n->type != BH_T_MAP) {
        set_err(err, errlen, "payload top level is %s, expected a map", type_name(n->type));
        node_free(n);
        return BH_EINVAL;
    }
    *out = &n->pub;
    return BH_OK;
}

/* ------------------------------------------------------------------------ */
/* Encoding                                                                 */

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

static int to_cbor(buf_t *b, const node_t *n, int depth, char *err, size_t errlen)
{
    unsigned char *at;
    size_t room;
    if (!buf_reserve(b, HEAD_MAX)) goto oom;
    at = b->p + b->len;
    room = b->cap - b->len;
    switch (n->type) {
    case BH_T_NULL:
        b->len += cbor_encode_null(at, room);
        break;
    case BH_T_BOOL:
        b->len += cbor_encode_bool(n->u.b, at, room);
        break;
    case BH_T_INT:
        /* libcbor picks the shortest head, as cbor2 does. */
        if (n->u.i >= 0) b->len += cbor_encode_uint((uint64_t)n->u.i, at, room);
        else b->len += cbor_encode_negint((uint64_t)(-1 - n->u.i), at, room);
        break;
    case BH_T_FLOAT:
        /* What Python's cbor2 emits by default (canonical=False): finite
         * floats always as float64, NaN and infinities as the 3-byte half
         * forms f97e00 / f97c00 / f9fc00. Byte-exact with cbor2 peers. */
        if (isnan(n->u.d)) b->len += cbor_encode_half(NAN, at, room);
        else if (isinf(n->u.d))
            b->len += cbor_encode_half(n->u.d > 0 ? INFINITY : -INFINITY, at, room);
        else b->len += cbor_encode_double(n->u.d, at, room);
        break;
    case BH_T_STRING:
    case BH_T_BYTES:
        if (!buf_reserve(b, HEAD_MAX + n->u.s.len)) goto oom;
        at = b->p + b->len;
        room = b->cap - b->len;
        b->len += n->type == BH_T_STRING ? cbor_encode_string_start(n->u.s.len, at, room)
                                         : cbor_encode_bytestring_start(n->u.s.len, at, room);
        if (n->u.s.len) memcpy(b->p + b->len, n->u.s.p, n->u.s.len);
        b->len += n->u.s.len;
        break;
    case BH_T_ARRAY:
        if (depth > MAX_DEPTH) goto deep;
        b->len += cbor_encode_array_start(n->u.a.n, at, room);
        for (size_t i = 0; i < n->u.a.n; i++) {
            int rc = to_cbor(b, n->u.a.v[i], depth + 1, err, errlen);
            if (rc != BH_OK) return rc;
        }
        break;
    case BH_T_MAP:
        if (depth > MAX_DEPTH) goto deep;
        b->len += cbor_encode_map_start(n->u.m.n, at, room);
        for (size_t i = 0; i < n->u.m.n; i++) {
            const entry_t *e = &n->u.m.v[i];
            int rc;
            if (!buf_reserve(b, HEAD_MAX + e->klen)) goto oom;
            b->len += cbor_encode_string_start(e->klen, b->p + b->len, b->cap - b->len);
            memcpy(b->p + b->len, e->key, e->klen);
            b->len += e->klen;
            rc = to_cbor(b, e->val, depth + 1, err, errlen);
            if (rc != BH_OK) return rc;
        }
        break;
    default:
        set_err(err, errlen, "cannot encode a value of type %d", (int)n->type);
        return BH_EINVAL;
    }
    return BH_OK;
oom:
    set_err(err, errlen, "out of memory encoding CBOR");
    return BH_ENOMEM;
deep:
    set_err(err, errlen, "payload nests deeper than %d levels", MAX_DEPTH);
    return BH_EENCODE;
}

/* `key` names the field holding n (NULL in arrays and at the top), so the
 * message for a value JSON cannot carry says where it is. */
static int to_json(const node_t *n, const char *key, int depth, json_t **out, char *err,
                   size_t errlen)
{
    json_t *j = NULL;
    *out = NULL;
    switch (n->type) {
    case BH_T_NULL:
        j = json_null();
        break;
    case BH_T_BOOL:
        j = json_boolean(n->u.b);
        break;
    case BH_T_INT:
        j = json_integer(n->u.i);
        break;
    case BH_T_FLOAT:
        if (!isfinite(n->u.d)) {
            set_err(err, errlen, "%s%s%s is %g, which JSON cannot carry", key ? "field \"" : "",
                    key ? key : "an array item", key ? "\"" : "", n->u.d);
            return BH_EENCODE;
        }
        j = json_real(n->u.d);
        break;
    case BH_T_STRING:
        j = json_stringn(n->u.s.p, n->u.s.len);
        break;
    case BH_T_BYTES:
        set_err(err, errlen, "%s%s%s is a byte string, which JSON cannot carry",
                key ? "field \"" : "", key ? key : "an array item", key ? "\"" : "");
        return BH_EENCODE;
    case BH_T_ARRAY:
    case BH_T_MAP:
        if (depth > MAX_DEPTH) {
            set_err(err, errlen, "payload nests deeper than %d levels", MAX_DEPTH);
            return BH_EENCODE;
        }
        j = n->type == BH_T_ARRAY ? json_array() : json_object();
        if (!j) break;
        for (size_t i = 0; i < (n->type == BH_T_ARRAY ? n->u.a.n : n->u.m.n); i++) {
            const entry_t *e = n->type == BH_T_MAP ? &n->u.m.v[i] : NULL;
            json_t *c;
            int rc =
                to_json(e ? e->val : n->u.a.v[i], e ? e->key : NULL, depth + 1, &c, err, errlen);
            if (rc != BH_OK) {
                json_decref(j);
                return rc;
            }
            /* The *_new setters steal c, also on failure. */
            rc = e ? json_object_setn_new(j, e->key, e->klen, c) : json_array_append_new(j, c);
            if (rc != 0) {
                json_decref(j);
                j = NULL;
                break;
            }
        }
        break;
    default:
        set_err(err, errlen, "cannot encode a value of type %d", (int)n->type);
        return BH_EINVAL;
    }
    if (!j) {
        set_err(err, errlen, "out of memory encoding JSON");
        return BH_ENOMEM;
    }
    *out = j;
    return BH_OK;
}

int bh__payload_encode(const bh_value_t *v, bh_format_t fmt, unsigned char **out, size_t *len,
                       char *err, size_t errlen)
{
    const node_t *n = cnode(v);
    *out = NULL;
    *len = 0;
    if (fmt != BH_FORMAT_CBOR && fmt != BH_FORMAT_JSON) {
        set_err(err, errlen, "no wire format chosen (format %d)", (int)fmt);
        return BH_EINVAL;
    }
    if (!n) return BH_OK;
    if (n->type != BH_T_MAP) {
        set_err(err, errlen, "payload top level is %s, expected a map", type_name(n->type));
        return BH_EINVAL;
    }
    if (fmt == BH_FORMAT_CBOR) {
        buf_t b = {0};
        int rc = to_cbor(&b, n, 1, err, errlen);
        if (rc != BH_OK) {
            free(b.p);
            return rc;
        }
        *out = b.p;
        *len = b.len;
        return BH_OK;
    } else {
        json_t *j;
        size_t need;
        int rc = to_json(n, NULL, 1, &j, err, errlen);
        if (rc != BH_OK) return rc;
        need = json_dumpb(j, NULL, 0, JSON_COMPACT);
        *out = need ? malloc(need) : NULL;
        if (!*out || json_dumpb(j, (char *)*out, need, JSON_COMPACT) != need) {
            json_decref(j);
            free(*out);
            *out = NULL;
            set_err(err, errlen, "out of memory encoding JSON");
            return BH_ENOMEM;
        }
        json_decref(j);
        *len = need;
        return BH_OK;
    }
}
