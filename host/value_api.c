/* value_api.c -- reading and building value trees: the bh__value_* calls
 * the codecs use and the value slots of a plugin's API table. The tree
 * itself (nodes, maps, copies) is value.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "value.h"
#include "value_impl.h"

/* ------------------------------------------------------------------------ */
/* The API slots, and the calls the codecs build and read trees with        */

int bh__value_kind(const bh_value_t *v) { return v ? cnode(v)->type : BH_T_NONE; }

bh_type_t bh__value_type(const bh_value_t *v)
{
    int k = bh__value_kind(v);
    if (k == BH__K_SIMPLE) return BH_T_NULL;
    return k >= BH__K_UINT ? BH_T_INT : (bh_type_t)k;
}

/* The nearest double of a big-endian magnitude (infinity past DBL_MAX). */
static double mag_double(const unsigned char *p, size_t len)
{
    double x = 0;
    for (size_t i = 0; i < len; i++) x = x * 256 + p[i];
    return x;
}

static const bh_value_t *api_map_get(const bh_value_t *map, const char *key)
{
    const node_t *m = cnode(map);
    size_t i;
    if (!m || m->type != BH_T_MAP || !key) return NULL;
    i = bh__node_map_find(m, key, strlen(key));
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
    } else if (n->type == BH__K_UINT || n->type == BH__K_NEGINT) {
        if (out) *out = n->type == BH__K_UINT ? (double)n->u.w : -1.0 - (double)n->u.w;
    } else if (n->type == BH__K_BIGNUM || n->type == BH__K_NEGBIGNUM) {
        double x = mag_double((const unsigned char *)n->u.s.p, n->u.s.len);
        if (out) *out = n->type == BH__K_BIGNUM ? x : -1.0 - x;
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

bh_value_t *bh__value_wide(const bh_api_t *api, bool neg, uint64_t mag)
{
    node_t *n;
    if (mag <= INT64_MAX) return bh__value_int(api, neg ? -1 - (int64_t)mag : (int64_t)mag);
    n = bh__node_new(api, neg ? BH__K_NEGINT : BH__K_UINT);
    if (n) n->u.w = mag;
    return pub_of(n);
}

bh_value_t *bh__value_bignum(const bh_api_t *api, bool neg, const void *p, size_t len)
{
    return bh__node_blob(api, neg ? BH__K_NEGBIGNUM : BH__K_BIGNUM, p, len);
}

bh_value_t *bh__value_simple(const bh_api_t *api, unsigned simple)
{
    node_t *n = bh__node_new(api, BH__K_SIMPLE);
    if (n) n->u.i = simple;
    return pub_of(n);
}

int bh__value_as_wide(const bh_value_t *v, bool *neg, uint64_t *mag)
{
    const node_t *n = cnode(v);
    if (!n || (n->type != BH__K_UINT && n->type != BH__K_NEGINT)) return BH_ETYPE;
    *neg = n->type == BH__K_NEGINT;
    *mag = n->u.w;
    return BH_OK;
}

const void *bh__value_as_bignum(const bh_value_t *v, bool *neg, size_t *len)
{
    const node_t *n = cnode(v);
    if (!n || (n->type != BH__K_BIGNUM && n->type != BH__K_NEGBIGNUM)) return NULL;
    *neg = n->type == BH__K_NEGBIGNUM;
    *len = n->u.s.len;
    return n->u.s.p;
}

int bh__value_as_simple(const bh_value_t *v, unsigned *simple)
{
    const node_t *n = cnode(v);
    if (!n || n->type != BH__K_SIMPLE) return BH_ETYPE;
    *simple = (unsigned)n->u.i;
    return BH_OK;
}

int bh__value_map_put_other(bh_value_t *map, bh_value_t *key, bh_value_t *val)
{
    return bh__node_other_put(node(map), node(key), node(val));
}

size_t bh__value_map_others(const bh_value_t *map)
{
    const node_t *m = cnode(map);
    return m && m->type == BH_T_MAP ? m->u.m.on : 0;
}

const bh_value_t *bh__value_map_other_at(const bh_value_t *map, size_t i, const bh_value_t **key)
{
    const node_t *m = cnode(map);
    if (!m || m->type != BH_T_MAP || i >= m->u.m.on) return NULL;
    *key = &m->u.m.o[i].key->pub;
    return &m->u.m.o[i].val->pub;
}

bh_value_t *bh__value_new(const bh_api_t *api, bh_type_t type)
{
    return pub_of(bh__node_new(api, type));
}

bh_value_t *bh__value_bool(const bh_api_t *api, bool b)
{
    node_t *n = bh__node_new(api, BH_T_BOOL);
    if (n) n->u.b = b;
    return pub_of(n);
}

bh_value_t *bh__value_int(const bh_api_t *api, int64_t i)
{
    node_t *n = bh__node_new(api, BH_T_INT);
    if (n) n->u.i = i;
    return pub_of(n);
}

bh_value_t *bh__value_double(const bh_api_t *api, double d)
{
    node_t *n = bh__node_new(api, BH_T_FLOAT);
    if (n) n->u.d = d;
    return pub_of(n);
}

int bh__value_array_put(bh_value_t *arr, bh_value_t *val)
{
    return bh__node_array_put(node(arr), node(val));
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
    return v ? pub_of(bh__node_copy(ctx->api, cnode(v))) : NULL;
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
        bh__node_free(n);
        return BH_EINVAL;
    }
    klen = strlen(key);
    if (!bh__utf8_valid((const unsigned char *)key, klen)) {
        bh__node_free(n);
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
        bh__node_free(n);
        return BH_EINVAL;
    }
    return bh__node_array_put(a, n);
}

void bh__value_free(bh_value_t *v)
{
    node_t *n = node(v);
    /* A value inside a container belongs to it: freeing it alone would leave
     * a dangling entry, so that mistake is ignored. */
    if (!n || n->parent) return;
    bh__node_free(n);
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
