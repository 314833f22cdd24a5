/* value.c -- the payload value tree behind bh_value_t.
 *
 * A node is a private struct whose first member is the public bh_value_t, so
 * a node pointer is a bh_value_t pointer and `pub.api` is the table the node
 * was made with. Maps are vectors of entries (insertion order is the wire
 * order) with a hash index once they grow, so that lookups and decoding a
 * map with many keys stay linear. Every node knows its container (`parent`):
 * that is how map_set/array_push refuse cycles and values owned twice.
 *
 * The layout stays in this file: the codecs build and read trees through the
 * bh__value_* calls of value.h. */
#include "value.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
static bh_value_t *pub_of(node_t *n) { return n ? &n->pub : NULL; }

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

bh_value_t *bh__value_blob(const bh_api_t *api, bh_type_t type, const void *p, size_t len)
{
    node_t *n = node_new(api, type);
    if (!n) return NULL;
    n->u.s.p = mem_dup(p, len);
    if (!n->u.s.p) {
        free(n);
        return NULL;
    }
    n->u.s.len = len;
    return &n->pub;
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

int bh__value_map_put(bh_value_t *map, const char *key, size_t klen, bh_value_t *val)
{
    char *k = mem_dup(key, klen);
    if (!k) {
        node_free(node(val));
        return BH_ENOMEM;
    }
    return map_put(node(map), k, klen, node(val));
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
        return node(bh__value_blob(api, src->type, src->u.s.p, src->u.s.len));
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
            if (!c || bh__value_map_put(&n->pub, e->key, e->klen, &c->pub) != BH_OK) goto fail;
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
/* The API slots, and the calls the codecs build and read trees with        */

bh_type_t bh__value_type(const bh_value_t *v) { return v ? cnode(v)->type : BH_T_NONE; }

static const bh_value_t *api_map_get(const bh_value_t *map, const char *key)
{
    const node_t *m = cnode(map);
    size_t i;
    if (!m || m->type != BH_T_MAP || !key) return NULL;
    i = map_find(m, key, strlen(key));
    return i == NOPOS ? NULL : &m->u.m.v[i].val->pub;
}

size_t bh__value_len(const bh_value_t *v)
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

const bh_value_t *bh__value_array_at(const bh_value_t *arr, size_t i)
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

const bh_value_t *bh__value_map_at(const bh_value_t *map, size_t i, const char **key, size_t *klen)
{
    const node_t *m = cnode(map);
    if (!m || m->type != BH_T_MAP || i >= m->u.m.n) return NULL;
    *key = m->u.m.v[i].key;
    *klen = m->u.m.v[i].klen;
    return &m->u.m.v[i].val->pub;
}

int bh__value_as_bool(const bh_value_t *v, bool *out)
{
    const node_t *n = cnode(v);
    if (!n) return BH_ENOENT;
    if (n->type != BH_T_BOOL) return BH_ETYPE;
    if (out) *out = n->u.b;
    return BH_OK;
}

int bh__value_as_int(const bh_value_t *v, int64_t *out)
{
    const node_t *n = cnode(v);
    if (!n) return BH_ENOENT;
    if (n->type != BH_T_INT) return BH_ETYPE;
    if (out) *out = n->u.i;
    return BH_OK;
}

int bh__value_as_double(const bh_value_t *v, double *out)
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

const char *bh__value_as_str(const bh_value_t *v, size_t *len)
{
    const node_t *n = cnode(v);
    if (!n || n->type != BH_T_STRING) return NULL;
    if (len) *len = n->u.s.len;
    return n->u.s.p;
}

const void *bh__value_as_bytes(const bh_value_t *v, size_t *len)
{
    const node_t *n = cnode(v);
    if (!n || n->type != BH_T_BYTES) return NULL;
    if (len) *len = n->u.s.len;
    return n->u.s.p;
}

bh_value_t *bh__value_new(const bh_api_t *api, bh_type_t type)
{
    return pub_of(node_new(api, type));
}

bh_value_t *bh__value_bool(const bh_api_t *api, bool b)
{
    node_t *n = node_new(api, BH_T_BOOL);
    if (n) n->u.b = b;
    return pub_of(n);
}

bh_value_t *bh__value_int(const bh_api_t *api, int64_t i)
{
    node_t *n = node_new(api, BH_T_INT);
    if (n) n->u.i = i;
    return pub_of(n);
}

bh_value_t *bh__value_double(const bh_api_t *api, double d)
{
    node_t *n = node_new(api, BH_T_FLOAT);
    if (n) n->u.d = d;
    return pub_of(n);
}

int bh__value_map_put_node(bh_value_t *map, bh_value_t *key, bh_value_t *val)
{
    node_t *k = node(key);
    char *p = k->u.s.p; /* the key's text moves into the entry */
    size_t klen = k->u.s.len;
    free(k);
    return map_put(node(map), p, klen, node(val));
}

int bh__value_array_put(bh_value_t *arr, bh_value_t *val)
{
    return array_put(node(arr), node(val));
}

static bh_value_t *api_map_new(bh_ctx_t *ctx) { return bh__value_new(ctx->api, BH_T_MAP); }
static bh_value_t *api_array_new(bh_ctx_t *ctx) { return bh__value_new(ctx->api, BH_T_ARRAY); }
static bh_value_t *api_null_new(bh_ctx_t *ctx) { return bh__value_new(ctx->api, BH_T_NULL); }
static bh_value_t *api_bool_new(bh_ctx_t *ctx, bool b) { return bh__value_bool(ctx->api, b); }
static bh_value_t *api_int_new(bh_ctx_t *ctx, int64_t i) { return bh__value_int(ctx->api, i); }
static bh_value_t *api_double_new(bh_ctx_t *ctx, double d) { return bh__value_double(ctx->api, d); }

static bh_value_t *api_str_new(bh_ctx_t *ctx, const char *s, size_t len)
{
    if (!s && len) return NULL;
    if (len && !bh__utf8_valid((const unsigned char *)s, len)) return NULL;
    return bh__value_blob(ctx->api, BH_T_STRING, s, len);
}

static bh_value_t *api_bytes_new(bh_ctx_t *ctx, const void *p, size_t len)
{
    if (!p && len) return NULL;
    return bh__value_blob(ctx->api, BH_T_BYTES, p, len);
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
    if (!n) return BH_ENOMEM;
    if (m && misplaced(m, n)) return BH_EINVAL;
    if (!m || m->type != BH_T_MAP || !key) {
        node_free(n);
        return BH_EINVAL;
    }
    klen = strlen(key);
    if (!bh__utf8_valid((const unsigned char *)key, klen)) {
        node_free(n);
        return BH_EINVAL;
    }
    return bh__value_map_put(map, key, klen, v);
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

void bh__value_free(bh_value_t *v)
{
    node_t *n = node(v);
    /* A value inside a container belongs to it: freeing it alone would leave
     * a dangling entry, so that mistake is ignored. */
    if (!n || n->parent) return;
    node_free(n);
}

void bh__value_fill_api(bh_api_t *api)
{
    api->type = bh__value_type;
    api->map_get = api_map_get;
    api->len = bh__value_len;
    api->array_at = bh__value_array_at;
    api->map_key_at = api_map_key_at;
    api->map_value_at = api_map_value_at;
    api->as_bool = bh__value_as_bool;
    api->as_int = bh__value_as_int;
    api->as_double = bh__value_as_double;
    api->as_str = bh__value_as_str;
    api->as_bytes = bh__value_as_bytes;
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
    api->value_free = bh__value_free;
}
