/* value_impl.h -- the node layout of the value tree, shared by value.c (the
 * tree: nodes, maps and their index, copy, compare) and value_api.c (the
 * reader and builder calls and the API slots). Nothing else includes it. */
#ifndef BH_VALUE_IMPL_H
#define BH_VALUE_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bushost.h"

/* Maps with more entries than this get a hash index. */
#define INDEX_MIN 8
#define NOPOS ((size_t)-1)

typedef struct node node_t;

typedef struct entry {
    char *key; /* NUL-terminated UTF-8 */
    size_t klen;
    node_t *val;
} entry_t;

typedef struct other {
    node_t *key, *val;
} other_t;

struct node {
    bh_value_t pub; /* first: (bh_value_t *)node is valid both ways */
    int type;       /* a bh_type_t or a BH__K_* kind */
    node_t *parent; /* the container holding this node, or NULL */
    union {
        bool b;
        int64_t i;  /* BH_T_INT; BH__K_SIMPLE */
        uint64_t w; /* BH__K_UINT, BH__K_NEGINT */
        double d;
        struct {
            char *p; /* NUL-terminated (also for bytes), never NULL */
            size_t len;
        } s; /* BH_T_STRING, BH_T_BYTES, BH__K_BIGNUM, BH__K_NEGBIGNUM */
        struct {
            node_t **v;
            size_t n, cap;
        } a; /* BH_T_ARRAY */
        struct {
            entry_t *v;
            size_t n, cap;
            size_t *index;    /* slots hold entry position + 1; 0 = empty */
            size_t index_cap; /* a power of two, or 0 without an index */
            other_t *o;       /* entries whose key is not text */
            size_t on, ocap;
        } m; /* BH_T_MAP */
    } u;
};

static inline node_t *node(bh_value_t *v) { return (node_t *)v; }
static inline const node_t *cnode(const bh_value_t *v) { return (const node_t *)v; }
static inline bh_value_t *pub_of(node_t *n) { return n ? &n->pub : NULL; }

/* value.c, for value_api.c. Each takes what it is given, also on failure. */
node_t *bh__node_new(const bh_api_t *api, int type);
bh_value_t *bh__node_blob(const bh_api_t *api, int type, const void *p, size_t len);
bool bh__node_is_blob(int type); /* its payload is u.s */
void bh__node_free(node_t *n);
node_t *bh__node_copy(const bh_api_t *api, const node_t *src);
int bh__node_array_put(node_t *a, node_t *val);
int bh__node_other_put(node_t *m, node_t *key, node_t *val);
/* The position of key in m's entries, or NOPOS. */
size_t bh__node_map_find(const node_t *m, const char *key, size_t klen);

#endif
