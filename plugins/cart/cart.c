/* cart.c -- shopping carts kept in memory, changed by events.
 *
 * Shows: state made in init and shared by handlers running at the same time
 * (so guarded by a mutex), a config key with bounds, rejecting a malformed
 * event, and publishing an event in reaction: CartUpdated carries the
 * conversation id of the event that caused it (the host copies it); and a
 * hot reload that keeps the carts (cart_upgrade). */
/* strdup is POSIX (2008), not ISO C: ask for it whatever the compiler line. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bushost.h"

/* One (cart, item, qty) line. Lines are sorted by cart then item, so a cart's
 * items sit next to each other and a cart with no line is simply empty. */
typedef struct line {
    char *cart;
    char *item;
    int64_t qty;
} line_t;

typedef struct store {
    pthread_mutex_t lock; /* handlers run on several worker threads at once */
    line_t *lines;
    size_t n, cap;
    int64_t max_items; /* [cart] max_items: distinct items per cart */
} store_t;

static int compare(const line_t *l, const char *cart, const char *item)
{
    int c = strcmp(l->cart, cart);
    return c ? c : strcmp(l->item, item);
}

/* Index of (cart, item), or where it would be inserted (binary search). */
static size_t lookup(const store_t *s, const char *cart, const char *item)
{
    size_t lo = 0, hi = s->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (compare(&s->lines[mid], cart, item) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static bool is_at(const store_t *s, size_t i, const char *cart, const char *item)
{
    return i < s->n && compare(&s->lines[i], cart, item) == 0;
}

/* The number of distinct items in cart ("" sorts before any item name). */
static size_t cart_size(const store_t *s, const char *cart)
{
    size_t first = lookup(s, cart, ""), i = first;

    while (i < s->n && strcmp(s->lines[i].cart, cart) == 0) i++;
    return i - first;
}

typedef enum { ADDED, CART_FULL, QTY_OVERFLOW, NO_MEMORY } add_t;

/* Add qty of item to cart. Lock held. */
static add_t add(store_t *s, const char *cart, const char *item, int64_t qty)
{
    size_t i = lookup(s, cart, item);
    line_t l;

    if (is_at(s, i, cart, item)) {
        if (s->lines[i].qty > INT64_MAX - qty) return QTY_OVERFLOW;
        s->lines[i].qty += qty;
        return ADDED;
    }
    if (cart_size(s, cart) >= (size_t)s->max_items) return CART_FULL;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        line_t *v = realloc(s->lines, cap * sizeof *v);
        if (!v) return NO_MEMORY;
        s->lines = v;
        s->cap = cap;
    }
    l = (line_t){strdup(cart), strdup(item), qty};
    if (!l.cart || !l.item) {
        free(l.cart);
        free(l.item);
        return NO_MEMORY;
    }
    memmove(&s->lines[i + 1], &s->lines[i], (s->n - i) * sizeof *s->lines);
    s->lines[i] = l;
    s->n++;
    return ADDED;
}

/* Drop item from cart, if it is there. Lock held. */
static void drop(store_t *s, const char *cart, const char *item)
{
    size_t i = lookup(s, cart, item);

    if (!is_at(s, i, cart, item)) return;
    free(s->lines[i].cart);
    free(s->lines[i].item);
    memmove(&s->lines[i], &s->lines[i + 1], (s->n - i - 1) * sizeof *s->lines);
    s->n--;
}

/* {"cart": cart, "items": {item: qty, ...}} as the cart is now, or NULL when
 * out of memory. Built with the lock held, so it is one consistent state. */
static bh_value_t *snapshot(bh_ctx_t *ctx, const store_t *s, const char *cart)
{
    bh_value_t *out = bh_map_new(ctx), *items = bh_map_new(ctx);
    int rc = out && items ? BH_OK : BH_ENOMEM;

    for (size_t i = lookup(s, cart, ""); rc == BH_OK && i < s->n; i++) {
        if (strcmp(s->lines[i].cart, cart) != 0) break;
        rc = bh_map_set(items, s->lines[i].item, bh_int_new(ctx, s->lines[i].qty));
    }
    if (rc == BH_OK) rc = bh_map_set(out, "cart", bh_str_new(ctx, cart));
    if (rc == BH_OK) {
        rc = bh_map_set(out, "items", items); /* takes items, even on failure */
        items = NULL;
    }
    bh_value_free(items);
    if (rc != BH_OK) {
        bh_value_free(out);
        return NULL;
    }
    return out;
}

/* Publish CartUpdated (update may be NULL: out of memory) and free it. */
static bh_outcome_t publish_update(bh_ctx_t *ctx, const bh_msg_t *msg, bh_value_t *update)
{
    int rc = update ? bh_publish_event(ctx, "CartUpdated", update) : BH_ENOMEM;

    bh_value_free(update);
    if (rc == BH_OK) return BH_DONE;
    /* Unexpected: the host requeues once, then dead-letters. The change
     * itself stays, so a redelivered ItemSelected adds again. */
    bh_log(ctx, BH_ERROR, "conversation %s: cannot publish CartUpdated: %s", msg->conversation_id,
           bh_strerror(rc));
    return BH_RETRY;
}

/* A cart or item name: a non-empty string without an embedded NUL (which
 * would silently cut it short), or NULL. */
static const char *get_name(const bh_value_t *payload, const char *key)
{
    size_t len;
    const char *s = bh_as_str(bh_map_get(payload, key), &len);

    return s && len > 0 && strlen(s) == len ? s : NULL;
}

/* ItemSelected {"cart": str, "item": str, "qty": int > 0} */
static bh_outcome_t on_item_selected(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    store_t *s = state;
    const char *cart = get_name(msg->payload, "cart");
    const char *item = get_name(msg->payload, "item");
    bh_value_t *update = NULL;
    int64_t qty;
    add_t added;

    /* A malformed event is not a bug to retry: dead-letter it at once. */
    if (!cart || !item || bh_get_int(msg->payload, "qty", &qty) != BH_OK || qty <= 0) {
        bh_log(ctx, BH_ERROR,
               "conversation %s: ItemSelected needs cart and item (non-empty strings) "
               "and qty (an integer > 0)",
               msg->conversation_id);
        return BH_REJECT;
    }

    pthread_mutex_lock(&s->lock);
    added = add(s, cart, item, qty);
    if (added == ADDED) update = snapshot(ctx, s, cart);
    pthread_mutex_unlock(&s->lock);

    switch (added) {
    case CART_FULL:
        bh_log(ctx, BH_WARNING,
               "conversation %s: cart %s already holds %" PRId64 " items (max_items), %s refused",
               msg->conversation_id, cart, s->max_items, item);
        return BH_REJECT;
    case QTY_OVERFLOW:
        bh_log(ctx, BH_WARNING, "conversation %s: cart %s: qty of %s would overflow, refused",
               msg->conversation_id, cart, item);
        return BH_REJECT;
    default: /* ADDED, or NO_MEMORY with update NULL */
        return publish_update(ctx, msg, update);
    }
}

/* ItemRemoved {"cart": str, "item": str}; removing an absent item is fine. */
static bh_outcome_t on_item_removed(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    store_t *s = state;
    const char *cart = get_name(msg->payload, "cart");
    const char *item = get_name(msg->payload, "item");
    bh_value_t *update;

    if (!cart || !item) {
        bh_log(ctx, BH_ERROR,
               "conversation %s: ItemRemoved needs cart and item (non-empty strings)",
               msg->conversation_id);
        return BH_REJECT;
    }

    pthread_mutex_lock(&s->lock);
    drop(s, cart, item);
    update = snapshot(ctx, s, cart);
    pthread_mutex_unlock(&s->lock);
    return publish_update(ctx, msg, update);
}

static void cart_fini(bh_ctx_t *ctx, void *state)
{
    (void)ctx;
    store_t *s = state;

    if (!s) return; /* a newer version took the carts over (cart_upgrade) */
    for (size_t i = 0; i < s->n; i++) {
        free(s->lines[i].cart);
        free(s->lines[i].item);
    }
    free(s->lines);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static int cart_init(bh_ctx_t *ctx, void **state)
{
    store_t *s = calloc(1, sizeof *s);
    int rc;

    if (!s) return BH_ENOMEM;
    /* The host has checked the bounds; this guards against a foreign host. */
    rc = bh_config_int(ctx, "max_items", &s->max_items);
    if (rc == BH_OK && s->max_items < 1) rc = BH_EINVAL;
    if (rc != BH_OK) {
        bh_log(ctx, BH_ERROR, "max_items: %s", bh_strerror(rc));
        free(s);
        return rc;
    }
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s);
        return BH_ENOMEM;
    }
    *state = s;
    return BH_OK;
}

/* A hot reload (docs/reload.md): the new version keeps the old one's carts.
 * The store's layout is this file's, so a version that changes it converts
 * here, by old_version. The store the new init made gives way; its
 * max_items, read from the config as it is now, wins. No handler of either
 * version runs meanwhile. */
static int cart_upgrade(bh_ctx_t *ctx, void **state, void *old_state, const char *old_version)
{
    store_t *mine = *state, *old = old_state;

    if (!old) return BH_EINVAL;
    old->max_items = mine->max_items;
    cart_fini(ctx, mine);
    *state = old;
    bh_log(ctx, BH_INFO, "kept %zu cart line(s) from version %s", old->n, old_version);
    return BH_OK;
}

static const bh_route_t events[] = {
    {.key = "ItemSelected", .handler = on_item_selected},
    {.key = "ItemRemoved", .handler = on_item_removed},
    {0},
};

static const bh_config_key_t config[] = {
    {.key = "max_items",
     .type = BH_CONF_INT,
     .def = "1000",
     .help = "most distinct items one cart may hold",
     .min = 1,
     .max = 1000000},
    {.key = NULL},
};

BH_PLUGIN(.name = "cart", .version = "1.0.0", .service = "cart", .events = events, .config = config,
          .init = cart_init, .fini = cart_fini, .upgrade = cart_upgrade);
