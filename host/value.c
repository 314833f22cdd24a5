/* value.c -- the payload value tree behind bh_value_t.
 *
 * A node is a private struct whose first member is the public bh_value_t, so
 * a node pointer is a bh_value_t pointer and `pub.api` is the table the node
 * was made with. Maps are vectors of entries (insertion order is the wire
 * order) with a hash index once they grow, so that lookups and decoding a
 * map with many keys stay linear. Every node knows its container (`parent`):
 * that is how map_set/array_push refuse cycles and values owned twice.
 * The index hashes keys with bh__value_hash, keyed per process, so a peer
 * cannot pick keys that all land in one slot.
 *
 * The layout is value_impl.h, shared with value_api.c only: the codecs build
 * and read trees through the bh__value_* calls of value.h. */
#include "value.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "value_impl.h"

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

node_t *bh__node_new(const bh_api_t *api, int type)
{
    node_t *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->pub.api = api;
    n->type = type;
    return n;
}

bh_value_t *bh__node_blob(const bh_api_t *api, int type, const void *p, size_t len)
{
    node_t *n = bh__node_new(api, type);
    if (!n) return NULL;
    n->u.s.p = mem_dup(p, len);
    if (!n->u.s.p) {
        free(n);
        return NULL;
    }
    n->u.s.len = len;
    return &n->pub;
}

bh_value_t *bh__value_blob(const bh_api_t *api, bh_type_t type, const void *p, size_t len)
{
    return bh__node_blob(api, type, p, len);
}

bool bh__node_is_blob(int type)
{
    return type == BH_T_STRING || type == BH_T_BYTES || type == BH__K_BIGNUM ||
           type == BH__K_NEGBIGNUM;
}

void bh__node_free(node_t *n)
{
    if (!n) return;
    if (bh__node_is_blob(n->type)) free(n->u.s.p);
    switch (n->type) {
    case BH_T_ARRAY:
        for (size_t i = 0; i < n->u.a.n; i++) bh__node_free(n->u.a.v[i]);
        free(n->u.a.v);
        break;
    case BH_T_MAP:
        for (size_t i = 0; i < n->u.m.n; i++) {
            free(n->u.m.v[i].key);
            bh__node_free(n->u.m.v[i].val);
        }
        for (size_t i = 0; i < n->u.m.on; i++) {
            bh__node_free(n->u.m.o[i].key);
            bh__node_free(n->u.m.o[i].val);
        }
        free(n->u.m.v);
        free(n->u.m.index);
        free(n->u.m.o);
        break;
    default:
        break;
    }
    free(n);
}

static size_t hash_key(const char *key, size_t klen) { return (size_t)bh__value_hash(key, klen); }

size_t bh__node_map_find(const node_t *m, const char *key, size_t klen)
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
    size_t i = bh__node_map_find(m, key, klen);
    if (i != NOPOS) {
        free(key);
        bh__node_free(m->u.m.v[i].val);
        m->u.m.v[i].val = val;
        val->parent = m;
        return BH_OK;
    }
    if (m->u.m.n == m->u.m.cap && !grow((void **)&m->u.m.v, &m->u.m.cap, sizeof(entry_t))) {
        free(key);
        bh__node_free(val);
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
        bh__node_free(node(val));
        return BH_ENOMEM;
    }
    return map_put(node(map), k, klen, node(val));
}

int bh__value_map_put_node(bh_value_t *map, bh_value_t *key, bh_value_t *val)
{
    node_t *k = node(key);
    char *p = k->u.s.p; /* the key's text moves into the entry */
    size_t klen = k->u.s.len;
    free(k);
    return map_put(node(map), p, klen, node(val));
}

/* Append val; takes ownership, also on failure. */
int bh__node_array_put(node_t *a, node_t *val)
{
    if (a->u.a.n == a->u.a.cap && !grow((void **)&a->u.a.v, &a->u.a.cap, sizeof(node_t *))) {
        bh__node_free(val);
        return BH_ENOMEM;
    }
    a->u.a.v[a->u.a.n++] = val;
    val->parent = a;
    return BH_OK;
}

int bh__node_other_put(node_t *m, node_t *key, node_t *val)
{
    if (m->u.m.on == m->u.m.ocap && !grow((void **)&m->u.m.o, &m->u.m.ocap, sizeof(other_t))) {
        bh__node_free(key);
        bh__node_free(val);
        return BH_ENOMEM;
    }
    m->u.m.o[m->u.m.on++] = (other_t){key, val};
    key->parent = val->parent = m;
    return BH_OK;
}

node_t *bh__node_copy(const bh_api_t *api, const node_t *src)
{
    node_t *n;
    if (bh__node_is_blob(src->type))
        return node(bh__node_blob(api, src->type, src->u.s.p, src->u.s.len));
    n = bh__node_new(api, src->type);
    if (!n) return NULL;
    if (src->type == BH_T_ARRAY) {
        for (size_t i = 0; i < src->u.a.n; i++) {
            node_t *c = bh__node_copy(api, src->u.a.v[i]);
            if (!c || bh__node_array_put(n, c) != BH_OK) goto fail;
        }
    } else if (src->type == BH_T_MAP) {
        for (size_t i = 0; i < src->u.m.n; i++) {
            const entry_t *e = &src->u.m.v[i];
            node_t *c = bh__node_copy(api, e->val);
            if (!c || bh__value_map_put(&n->pub, e->key, e->klen, &c->pub) != BH_OK) goto fail;
        }
        for (size_t i = 0; i < src->u.m.on; i++) {
            node_t *k = bh__node_copy(api, src->u.m.o[i].key),
                   *c = bh__node_copy(api, src->u.m.o[i].val);
            if (!k || !c) {
                bh__node_free(k);
                bh__node_free(c);
                goto fail;
            }
            if (bh__node_other_put(n, k, c) != BH_OK) goto fail;
        }
    } else {
        n->u = src->u; /* scalars */
    }
    return n;
fail:
    bh__node_free(n);
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
    case BH__K_SIMPLE:
        return a->u.i == b->u.i;
    case BH__K_UINT:
    case BH__K_NEGINT:
        return a->u.w == b->u.w;
    case BH_T_FLOAT:
        return a->u.d == b->u.d || (isnan(a->u.d) && isnan(b->u.d));
    case BH_T_STRING:
    case BH_T_BYTES:
    case BH__K_BIGNUM:
    case BH__K_NEGBIGNUM:
        return a->u.s.len == b->u.s.len && memcmp(a->u.s.p, b->u.s.p, a->u.s.len) == 0;
    case BH_T_ARRAY:
        if (a->u.a.n != b->u.a.n) return false;
        for (size_t i = 0; i < a->u.a.n; i++)
            if (!node_equal(a->u.a.v[i], b->u.a.v[i])) return false;
        return true;
    case BH_T_MAP:
        /* In order: the order is part of what goes on the wire. */
        if (a->u.m.n != b->u.m.n || a->u.m.on != b->u.m.on) return false;
        for (size_t i = 0; i < a->u.m.on; i++)
            if (!node_equal(a->u.m.o[i].key, b->u.m.o[i].key) ||
                !node_equal(a->u.m.o[i].val, b->u.m.o[i].val))
                return false;
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

size_t bh__value_map_probes(const bh_value_t *map)
{
    const node_t *m = cnode(map);
    size_t total = 0, mask;
    if (!m || m->type != BH_T_MAP || !m->u.m.index) return 0;
    mask = m->u.m.index_cap - 1;
    for (size_t i = 0; i < m->u.m.n; i++) {
        size_t s = hash_key(m->u.m.v[i].key, m->u.m.v[i].klen) & mask;
        for (total++; m->u.m.index[s] != i + 1; s = (s + 1) & mask) total++;
    }
    return total;
}

bool bh__value_equal(const bh_value_t *a, const bh_value_t *b)
{
    return node_equal(cnode(a), cnode(b));
}
